# Sourced by the scripts that build reference tools from Go modules: where
# they are cached, outside the repo (PC_TOOLS_CACHE, else
# ~/.cache/platform-capstone/tools), and the build-once-then-reuse step.
pc_tools_cache() {
  echo "${PC_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/platform-capstone/tools}"
}

# pc_cached_build DIR NAME WHAT COMMAND...
# Prints DIR/NAME, building it first when it is not there: COMMAND runs with
# PC_OUT set to a temp dir beside the target and must leave NAME (and any
# other file the tool needs) in it; everything is renamed into place, NAME
# last, so a killed build never leaves a half-written tool that looks
# cached. Progress and the time taken go to stderr.
pc_cached_build() {
  local dir=$1 name=$2 what=$3
  shift 3
  local bin="$dir/$name"
  if [ -x "$bin" ]; then
    echo "$bin"
    return 0
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "go not found: $what builds from Go modules; install Go (1.25 or later)" >&2
    return 1
  fi
  mkdir -p "$dir"
  echo "building $what into $dir (once)…" >&2
  local started=$SECONDS tmp
  tmp="$(mktemp -d "$dir/.build-XXXXXX")"
  if ! PC_OUT="$tmp" "$@" >&2; then
    rm -rf "$tmp"
    echo "building $what failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))" >&2
    return 1
  fi
  local f
  for f in "$tmp"/*; do
    [ "$f" = "$tmp/$name" ] || mv -f "$f" "$dir/"
  done
  mv -f "$tmp/$name" "$bin"
  rm -rf "$tmp"
  echo "built $bin in $((SECONDS - started)) s" >&2
  echo "$bin"
}
