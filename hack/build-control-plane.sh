#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd from Go modules by name,
# caches them outside the repo keyed by version, and prints the directory that
# holds them (envtest's KUBEBUILDER_ASSETS layout) as the last line.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every staging
# module with a local path. We generate a throwaway module that requires it and
# pins each staging module to the matching v0.x release instead.
set -euo pipefail
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin" # Go lives here on these machines

K8S_VERSION="${SNAPCRON_K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${SNAPCRON_ETCD_VERSION:-v3.6.8}"

if [[ -n "${KUBEBUILDER_ASSETS:-}" ]]; then
  echo "using KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS" >&2
  echo "$KUBEBUILDER_ASSETS"
  exit 0
fi

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/snapcron"
BIN_DIR="$CACHE_ROOT/control-plane/k8s-$K8S_VERSION-etcd-$ETCD_VERSION"
log() { echo "[build-control-plane $(date +%H:%M:%S)] $*" >&2; }

if [[ -x "$BIN_DIR/kube-apiserver" && -x "$BIN_DIR/kube-controller-manager" && -x "$BIN_DIR/etcd" ]]; then
  log "cached: $BIN_DIR"
  echo "$BIN_DIR"
  exit 0
fi

mkdir -p "$BIN_DIR"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
# shellcheck source=hack/lib/k8s-module.sh
source "$(dirname "$0")/lib/k8s-module.sh"
if [[ ! -x "$BIN_DIR/kube-apiserver" || ! -x "$BIN_DIR/kube-controller-manager" ]]; then
  k8s_build_cmds "$CACHE_ROOT/build/k8s-$K8S_VERSION" "$BIN_DIR" controlplane "$K8S_VERSION" \
    kube-apiserver kube-controller-manager
fi

if [[ ! -x "$BIN_DIR/etcd" ]]; then
  EWORK="$CACHE_ROOT/build/etcd-$ETCD_VERSION"
  mkdir -p "$EWORK"
  # etcd's own root module carries replace directives too; its server module
  # exports etcdmain, so a three-line main of ours builds the same server.
  cat > "$EWORK/go.mod" <<GOMOD
module snapcron.local/etcd

go 1.26.0

require go.etcd.io/etcd/server/v3 $ETCD_VERSION
GOMOD
  cat > "$EWORK/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  log "go mod tidy for etcd $ETCD_VERSION"
  (cd "$EWORK" && go mod tidy >&2)
  log "go build etcd"
  start=$(date +%s)
  (cd "$EWORK" && go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd.tmp" . >&2)
  mv "$BIN_DIR/etcd.tmp" "$BIN_DIR/etcd"
  log "built etcd in $(( $(date +%s) - start ))s"
fi

log "ready: $BIN_DIR"
echo "$BIN_DIR"
