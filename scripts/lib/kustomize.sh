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
  pc_cached_build "$(pc_tools_cache)/kustomize-$PC_KUSTOMIZE_VERSION" kustomize \
    "the reference kustomize $PC_KUSTOMIZE_VERSION" _pc_build_kustomize
}

_pc_build_kustomize() {
  GOBIN="$PC_OUT" GOFLAGS=-mod=mod go install "$PC_KUSTOMIZE_MODULE@$PC_KUSTOMIZE_VERSION"
}
