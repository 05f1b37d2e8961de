# Sourced by scripts/test and scripts/quickstart: installs the Debian
# packages the build and the tests need, only when missing (idempotent).
# Runs apt-get as root (CI and these machines run as root); otherwise says
# exactly what to install.

# Build: git … make. Local stack: docker-registry, haproxy,
# prometheus, podman + runc + buildah, slirp4netns (pod networking without
# iptables), catatonit (podman's pause process), libc6-dev (static demo),
# systemd (systemd-analyze checks the unit).
PC_APT_PACKAGES=(git openssh-client pkg-config libssl-dev gcc make ca-certificates libc6-dev
  docker-registry haproxy prometheus podman runc buildah slirp4netns catatonit uidmap systemd)

pc_install_deps() {
  local missing=()
  for p in "${PC_APT_PACKAGES[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
      echo "missing packages: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
      return 1
    fi
    echo "installing: ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
      export PATH="$HOME/.cargo/bin:$PATH"
    else
      echo "cargo not found: install the stable Rust toolchain (rustup) first" >&2
      return 1
    fi
  fi
}

# Builds the static demo binary (crt-static glibc: runs in a FROM scratch
# image) into its own target dir; prints its path.
pc_build_demo() {
  RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked \
    -p platform-capstone-demo --target x86_64-unknown-linux-gnu \
    --target-dir target/demo-static >&2
  echo "$PWD/target/demo-static/x86_64-unknown-linux-gnu/release/demo"
}
