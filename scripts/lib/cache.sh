# Sourced by the scripts that build reference tools: where they are cached,
# outside the repo (PC_TOOLS_CACHE, else ~/.cache/platform-capstone/tools).
pc_tools_cache() {
  echo "${PC_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/platform-capstone/tools}"
}
