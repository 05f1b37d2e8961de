# A real Kubernetes control plane on loopback, for tests and local use:
# etcd, kube-apiserver and kube-controller-manager built once from their Go
# modules at pinned versions into the tools cache (outside the repo), then
# started with generated certificates and a token, with the Gateway API CRDs
# (standard channel) installed and Established, stopped with nothing left.
# No kubelet: pods are created by the controllers and stay Pending until
# something (the test kubelet) binds and runs them.
#
#   source scripts/lib/kube.sh
#   pc_kube_bins                 # prints the binaries' directory (builds once, ~9 min on 2 cores)
#   pc_kube_up STATE_DIR         # starts the plane; writes STATE_DIR/kubeconfig
#   pc_kube_status STATE_DIR     # says whether the API server is ready, and where
#   pc_kube_down STATE_DIR       # stops it; no process or port left
#
# Or as a command: bash scripts/lib/kube.sh up|status|down STATE_DIR
#
# PC_TOOLS_CACHE overrides the cache dir (default ~/.cache/platform-capstone/tools).

PC_K8S_VERSION=v1.34.2
# The staging modules at the matching v0.X.Y, and the etcd of that release.
PC_K8S_STAGING=v0.34.2
PC_ETCD_VERSION=v3.6.4
# The Gateway API CRDs (standard channel), from the module that ships them.
PC_GATEWAY_API_VERSION=v1.4.1
PC_K8S_STAGING_MODULES="api apiextensions-apiserver apimachinery apiserver cli-runtime client-go
  cloud-provider cluster-bootstrap code-generator component-base component-helpers
  controller-manager cri-api cri-client csi-translation-lib dynamic-resource-allocation
  endpointslice externaljwt kms kube-aggregator kube-controller-manager kube-proxy
  kube-scheduler kubectl kubelet metrics mount-utils pod-security-admission sample-apiserver
  sample-cli-plugin sample-controller"

# shellcheck source=cache.sh
source "$(dirname "${BASH_SOURCE[0]}")/cache.sh"

# Prints the directory holding etcd, kube-apiserver and kube-controller-manager.
pc_kube_bins() {
  local dir
  dir="$(pc_tools_cache)/kubernetes-$PC_K8S_VERSION"
  pc_cached_build "$dir" kube-apiserver \
    "etcd $PC_ETCD_VERSION, kube-apiserver and kube-controller-manager $PC_K8S_VERSION (about 9 min on 2 cores)" \
    _pc_build_kube >/dev/null || return 1
  echo "$dir"
}

# A throwaway module requiring the pinned release, every staging module
# pinned by `replace`, built in one go.
_pc_build_kube() {
  local mod m
  mod="$(mktemp -d)"
  {
    echo "module platform-capstone/kube-build"
    echo
    echo "go 1.25.0"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $PC_K8S_VERSION"
    echo "	go.etcd.io/etcd/server/v3 $PC_ETCD_VERSION"
    echo ")"
    for m in $PC_K8S_STAGING_MODULES; do
      echo "replace k8s.io/$m => k8s.io/$m $PC_K8S_STAGING"
    done
  } > "$mod/go.mod"
  cat > "$mod/tools.go" <<'EOF'
//go:build tools

package kubebuild

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
EOF
  (
    cd "$mod" &&
      GOFLAGS=-mod=mod go mod tidy &&
      GOFLAGS=-mod=mod go build -trimpath -o "$PC_OUT/" \
        k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager &&
      GOFLAGS=-mod=mod go build -trimpath -o "$PC_OUT/etcd" go.etcd.io/etcd/server/v3
  )
  local rc=$?
  rm -rf "$mod"
  return $rc
}

# A free loopback port.
_pc_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts PROGRAM ARGS... in its own session, output to LOG, pid into PIDFILE.
_pc_spawn() {
  local pidfile=$1 log=$2
  shift 2
  setsid "$@" >"$log" 2>&1 < /dev/null &
  echo $! >"$pidfile"
}

pc_kube_up() {
  local state=$1 bins
  [ -n "$state" ] || { echo "usage: pc_kube_up STATE_DIR" >&2; return 2; }
  if pc_kube_status "$state" >/dev/null 2>&1; then
    pc_kube_status "$state"
    return 0
  fi
  pc_kube_down "$state" >/dev/null 2>&1
  bins="$(pc_kube_bins)" || return 1
  mkdir -p "$state/pki"
  chmod 700 "$state"
  local pki="$state/pki"
  (
    cd "$pki" &&
      openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key \
        -out ca.crt -days 365 -subj /CN=platform-capstone-local-ca 2>/dev/null &&
      openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout apiserver.key \
        -out apiserver.csr -subj /CN=kube-apiserver 2>/dev/null &&
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' >ext.cnf &&
      openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
        -out apiserver.crt -days 365 -extfile ext.cnf 2>/dev/null &&
      openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out sa.key 2>/dev/null &&
      openssl pkey -in sa.key -pubout -out sa.pub 2>/dev/null
  ) || { echo "pc_kube_up: generating certificates in $pki failed (is openssl installed?)" >&2; return 1; }
  local token etcd_port peer_port api_port
  token="$(openssl rand -hex 24)"
  (umask 077 && echo "$token,platform-capstone-admin,platform-capstone-admin,system:masters" >"$pki/tokens.csv" && echo "$token" >"$state/token")
  etcd_port="$(_pc_free_port)"
  peer_port="$(_pc_free_port)"
  api_port="$(_pc_free_port)"
  echo "$api_port" >"$state/api_port"
  _pc_spawn "$state/etcd.pid" "$state/etcd.log" "$bins/etcd" --name local \
    --data-dir "$state/etcd" --log-level error \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "local=http://127.0.0.1:$peer_port"
  # --endpoint-reconciler-type=none: the `kubernetes` Service's endpoints
  # may not be a loopback address, and nothing here needs them.
  _pc_spawn "$state/apiserver.pid" "$state/apiserver.log" "$bins/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 --advertise-address 127.0.0.1 \
    --secure-port "$api_port" --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$pki/sa.pub" \
    --service-account-signing-key-file "$pki/sa.key" --service-cluster-ip-range 10.96.0.0/24 \
    --authorization-mode RBAC --endpoint-reconciler-type none
  cat >"$state/kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: platform-capstone-local
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: platform-capstone-admin
  user:
    token: $token
contexts:
- name: platform-capstone-local
  context:
    cluster: platform-capstone-local
    user: platform-capstone-admin
current-context: platform-capstone-local
EOF
  chmod 600 "$state/kubeconfig"
  local started=$SECONDS
  until _pc_kube_ready "$state"; do
    if [ $((SECONDS - started)) -ge 60 ]; then
      echo "pc_kube_up: the API server was not ready within 60 s; its log ends:" >&2
      tail -5 "$state/apiserver.log" >&2
      pc_kube_down "$state" >/dev/null 2>&1
      return 1
    fi
    sleep 0.5
  done
  _pc_spawn "$state/controller-manager.pid" "$state/controller-manager.log" "$bins/kube-controller-manager" \
    --kubeconfig "$state/kubeconfig" --service-account-private-key-file "$pki/sa.key" \
    --root-ca-file "$pki/ca.crt" --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 \
    --controllers '*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller,-route'
  _pc_gateway_crds "$state" || { pc_kube_down "$state" >/dev/null 2>&1; return 1; }
  echo "kubernetes $PC_K8S_VERSION ready at https://127.0.0.1:$api_port in $((SECONDS - started)) s, Gateway API $PC_GATEWAY_API_VERSION CRDs established; KUBECONFIG=$state/kubeconfig" >&2
}

# curl against the plane's API server with its token; extra args follow.
_pc_kube_curl() {
  local state=$1
  shift
  curl -s --max-time 10 --cacert "$state/pki/ca.crt" -H "Authorization: Bearer $(cat "$state/token")" "$@"
}

# Installs the Gateway API CRDs from their Go module and waits (bounded)
# until the API serves HTTPRoute.
_pc_gateway_crds() {
  local state=$1 dir f code api started
  dir="$(cd "$(mktemp -d)" && go mod download -json "sigs.k8s.io/gateway-api@$PC_GATEWAY_API_VERSION" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')" || {
    echo "pc_kube_up: cannot fetch sigs.k8s.io/gateway-api@$PC_GATEWAY_API_VERSION from the Go module proxy" >&2
    return 1
  }
  api="https://127.0.0.1:$(cat "$state/api_port")"
  for f in "$dir"/config/crd/standard/*.yaml; do
    code="$(_pc_kube_curl "$state" -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/yaml' \
      --data-binary "@$f" "$api/apis/apiextensions.k8s.io/v1/customresourcedefinitions")"
    case "$code" in
      201 | 409) ;;
      *) echo "pc_kube_up: installing $(basename "$f") answered HTTP $code" >&2; return 1 ;;
    esac
  done
  started=$SECONDS
  until _pc_kube_curl "$state" "$api/apis/gateway.networking.k8s.io/v1" | grep -q '"name": "httproutes"'; do
    if [ $((SECONDS - started)) -ge 30 ]; then
      echo "pc_kube_up: the Gateway API CRDs were not Established within 30 s" >&2
      return 1
    fi
    sleep 0.5
  done
}

_pc_kube_ready() {
  local state=$1
  [ -f "$state/api_port" ] && [ -f "$state/token" ] || return 1
  _pc_kube_curl "$state" -f --max-time 2 "https://127.0.0.1:$(cat "$state/api_port")/readyz" >/dev/null 2>&1
}

pc_kube_status() {
  local state=$1
  if _pc_kube_ready "$state"; then
    echo "kubernetes: ready at https://127.0.0.1:$(cat "$state/api_port") (KUBECONFIG=$state/kubeconfig)"
    return 0
  fi
  echo "kubernetes: not running"
  return 1
}

pc_kube_down() {
  local state=$1 p pid
  for p in controller-manager apiserver etcd; do
    [ -f "$state/$p.pid" ] || continue
    pid="$(cat "$state/$p.pid")"
    # Each runs in its own session: end the whole group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 40); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$state/$p.pid"
  done
  rm -rf "$state/etcd" "$state/api_port" "$state/token" "$state/kubeconfig" "$state/pki"
  echo "kubernetes: stopped; no process left"
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    up) pc_kube_up "${2:?STATE_DIR}" ;;
    status) pc_kube_status "${2:?STATE_DIR}" ;;
    down) pc_kube_down "${2:?STATE_DIR}" ;;
    bins) pc_kube_bins ;;
    *) echo "usage: bash scripts/lib/kube.sh up|status|down STATE_DIR | bins" >&2; exit 2 ;;
  esac
fi
