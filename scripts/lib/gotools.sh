# Sourced by scripts/test (and the tests themselves when run by hand): the
# Go side of the interoperability tests, `tests/go/interop` (cosign's key
# encryption from go-securesystemslib, go-containerregistry's registry with
# the OCI 1.1 referrers API), built from its pinned go.mod/go.sum into a
# cache directory outside the repo, keyed by a hash of its sources; reused
# when present. Needs Go and the Go module proxy (or a warm module cache).
#
#   source scripts/lib/gotools.sh; bin=$(pc_interop)
#
# PC_TOOLS_CACHE overrides the cache dir (default ~/.cache/platform-capstone/tools).

# shellcheck source=cache.sh
source "$(dirname "${BASH_SOURCE[0]}")/cache.sh"

# Prints the path of the interop binary, building it first when the cache
# has none for these sources (about 30 s on 2 cores; said on stderr).
pc_interop() {
  local src root hash dir bin
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  src="$root/tests/go/interop"
  hash="$(cat "$src/go.mod" "$src/go.sum" "$src"/*.go | sha256sum | cut -c1-16)"
  dir="$(pc_tools_cache)/interop-$hash"
  bin="$dir/interop"
  if [ -x "$bin" ]; then
    echo "$bin"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "go not found: the interop tests build tests/go/interop from Go modules; install Go (1.25 or later)" >&2
    return 1
  fi
  mkdir -p "$dir"
  echo "building tests/go/interop into $dir (once; about 30 s)…" >&2
  local started=$SECONDS tmp
  tmp="$(mktemp -d "$dir/.build-XXXXXX")"
  # Into a temp file beside the target, then rename: a killed build never
  # leaves a half-written binary that looks cached.
  if ! (cd "$src" && GOFLAGS=-mod=readonly go build -trimpath -o "$tmp/interop" .) >&2; then
    rm -rf "$tmp"
    echo "building tests/go/interop failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))" >&2
    return 1
  fi
  mv -f "$tmp/interop" "$bin"
  rm -rf "$tmp"
  echo "built $bin in $((SECONDS - started)) s" >&2
  echo "$bin"
}
