# Sourced by scripts/golden-update (and usable by hand): the reference
# kustomize, built once from its Go module at a pinned version into a cache
# directory outside the repo, reused when present. Needs Go and the Go module
# proxy (or a warm module cache); never downloads anything else.
#
#   source scripts/lib/kustomize.sh; bin=$(pc_kustomize)
#
# PC_TOOLS_CACHE overrides the cache dir (default ~/.cache/platform-capstone/tools).

PC_KUSTOMIZE_MODULE=sigs.k8s.io/kustomize/kustomize/v5
PC_KUSTOMIZE_VERSION=v5.5.0

# shellcheck source=cache.sh
source "$(dirname "${BASH_SOURCE[0]}")/cache.sh"

# Prints the path of the reference kustomize binary, building it first when
# the cache has none (about a minute on 2 cores; said on stderr).
pc_kustomize() {
  local dir bin
  dir="$(pc_tools_cache)/kustomize-$PC_KUSTOMIZE_VERSION"
  bin="$dir/kustomize"
  if [ -x "$bin" ]; then
    echo "$bin"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "go not found: the reference kustomize builds from its Go module; install Go (1.22 or later)" >&2
    return 1
  fi
  mkdir -p "$dir"
  echo "building the reference kustomize $PC_KUSTOMIZE_VERSION into $dir (once; about a minute)…" >&2
  local started=$SECONDS
  # GOBIN into a temp dir beside the target, then rename: a killed build
  # never leaves a half-written binary that looks cached.
  local tmp
  tmp="$(mktemp -d "$dir/.build-XXXXXX")"
  if ! GOBIN="$tmp" GOFLAGS=-mod=mod go install "$PC_KUSTOMIZE_MODULE@$PC_KUSTOMIZE_VERSION" >&2; then
    rm -rf "$tmp"
    echo "building kustomize failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))" >&2
    return 1
  fi
  mv -f "$tmp/kustomize" "$bin"
  rm -rf "$tmp"
  echo "built $bin in $((SECONDS - started)) s" >&2
  echo "$bin"
}
