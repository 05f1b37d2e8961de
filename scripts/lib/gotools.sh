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
  local root hash
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  _PC_INTEROP_SRC="$root/tests/go/interop"
  hash="$(cat "$_PC_INTEROP_SRC/go.mod" "$_PC_INTEROP_SRC/go.sum" "$_PC_INTEROP_SRC"/*.go | sha256sum | cut -c1-16)"
  pc_cached_build "$(pc_tools_cache)/interop-$hash" interop "tests/go/interop" _pc_build_interop
}

_pc_build_interop() {
  (cd "$_PC_INTEROP_SRC" && GOFLAGS=-mod=readonly go build -trimpath -o "$PC_OUT/interop" .)
}
