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
WORK="$CACHE_ROOT/build/k8s-$K8S_VERSION"
mkdir -p "$WORK"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
# The Kubernetes release ldflags a real build sets, so `kube-apiserver --version` is honest.
K8S_MINOR="${K8S_VERSION#v1.}"; K8S_MINOR="${K8S_MINOR%%.*}"
LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$K8S_MINOR"

if [[ ! -x "$BIN_DIR/kube-apiserver" || ! -x "$BIN_DIR/kube-controller-manager" ]]; then
  log "resolving k8s.io/kubernetes@$K8S_VERSION"
  GOMOD_PATH="$(cd "$WORK" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  STAGING_VERSION="v0.${K8S_VERSION#v1.}"
  {
    echo "module snapcron.local/controlplane"
    echo
    echo "go 1.26.0"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    # each "k8s.io/x => ./staging/src/k8s.io/x" becomes "k8s.io/x => k8s.io/x v0.Y.Z"
    sed -n 's#^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/.*#\t\1 => \1 '"$STAGING_VERSION"'#p' "$GOMOD_PATH"
    echo ")"
  } > "$WORK/go.mod"
  cat > "$WORK/tools.go" <<'GO'
//go:build tools

package controlplane

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
  log "go mod tidy (downloads a few hundred modules the first time)"
  (cd "$WORK" && go mod tidy -e >&2)
  for cmd in kube-apiserver kube-controller-manager; do
    if [[ ! -x "$BIN_DIR/$cmd" ]]; then
      log "go build $cmd (first build takes several minutes on 2 cores)"
      start=$(date +%s)
      (cd "$WORK" && go build -trimpath -ldflags "$LDFLAGS" -o "$BIN_DIR/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" >&2)
      mv "$BIN_DIR/$cmd.tmp" "$BIN_DIR/$cmd"
      log "built $cmd in $(( $(date +%s) - start ))s"
    fi
  done
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
