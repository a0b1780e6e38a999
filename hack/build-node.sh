#!/usr/bin/env bash
# Builds the parts of a real node from Go modules by name and caches them:
# kubelet and kube-scheduler (k8s.io/kubernetes, the same pinned wrapper module as
# build-control-plane.sh) and containerd v2 with its runc shim and ctr. runc and
# the CNI plugins come from Debian (apt-get install runc containernetworking-plugins
# iptables). Prints the bin dir as the last line; SNAPCRON_NODE_BIN uses an existing one.
#
# node-driver-registrar is not served by the Go module proxy here (its v2 tags sit
# on a module path without /v2), so dev/csi-driver.ts speaks the kubelet's small
# plugin-registration protocol itself; nothing of it is built here.
set -euo pipefail
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin" # Go lives here on these machines

K8S_VERSION="${SNAPCRON_K8S_VERSION:-v1.36.3}"
CONTAINERD_VERSION="${SNAPCRON_CONTAINERD_VERSION:-v2.4.2}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/snapcron"
BIN_DIR="${SNAPCRON_NODE_BIN:-$CACHE_ROOT/node/k8s-$K8S_VERSION-containerd-$CONTAINERD_VERSION}"
log() { echo "[build-node $(date +%H:%M:%S)] $*" >&2; }
K8S_CMDS=(kubelet kube-scheduler)
CTRD_CMDS=(containerd containerd-shim-runc-v2 ctr)

have_all() { for c in "${K8S_CMDS[@]}" "${CTRD_CMDS[@]}"; do [[ -x "$BIN_DIR/$c" ]] || return 1; done; }
if have_all; then
  log "cached: $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi
[[ -z "${SNAPCRON_NODE_BIN:-}" ]] || { log "SNAPCRON_NODE_BIN=$BIN_DIR lacks one of ${K8S_CMDS[*]} ${CTRD_CMDS[*]}"; exit 1; }
mkdir -p "$BIN_DIR"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

need_k8s=0
for c in "${K8S_CMDS[@]}"; do [[ -x "$BIN_DIR/$c" ]] || need_k8s=1; done
if [[ $need_k8s == 1 ]]; then
  # shellcheck source=hack/lib/k8s-module.sh
  source "$(dirname "$0")/lib/k8s-module.sh"
  k8s_build_cmds "$CACHE_ROOT/build/k8s-node-$K8S_VERSION" "$BIN_DIR" node "$K8S_VERSION" "${K8S_CMDS[@]}"
fi

need_ctrd=0
for c in "${CTRD_CMDS[@]}"; do [[ -x "$BIN_DIR/$c" ]] || need_ctrd=1; done
if [[ $need_ctrd == 1 ]]; then
  CWORK="$CACHE_ROOT/build/containerd-$CONTAINERD_VERSION"
  mkdir -p "$CWORK"
  cat > "$CWORK/go.mod" <<GOMOD
module snapcron.local/containerd

go 1.26.0

require github.com/containerd/containerd/v2 $CONTAINERD_VERSION
GOMOD
  {
    echo "//go:build tools"
    echo
    echo "package containerd"
    echo
    echo "import ("
    for c in "${CTRD_CMDS[@]}"; do echo "	_ \"github.com/containerd/containerd/v2/cmd/$c\""; done
    echo ")"
  } > "$CWORK/tools.go"
  log "go mod tidy for containerd $CONTAINERD_VERSION"
  (cd "$CWORK" && CGO_ENABLED=0 GOFLAGS="$GOFLAGS -tags=no_btrfs" go mod tidy -e >&2)
  for c in "${CTRD_CMDS[@]}"; do
    [[ -x "$BIN_DIR/$c" ]] && continue
    log "go build $c"
    start=$(date +%s)
    # static, and without btrfs (its headers are cgo); containerd finds the shim beside itself
    (cd "$CWORK" && CGO_ENABLED=0 go build -trimpath -tags no_btrfs -ldflags "-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION" \
      -o "$BIN_DIR/$c.tmp" "github.com/containerd/containerd/v2/cmd/$c" >&2)
    mv "$BIN_DIR/$c.tmp" "$BIN_DIR/$c"
    log "built $c in $(( $(date +%s) - start ))s"
  done
fi

log "ready: $BIN_DIR"
echo "$BIN_DIR"
