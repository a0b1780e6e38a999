#!/usr/bin/env bash
# Builds kubectl from the same Kubernetes module and version as the harness's
# kube-apiserver (k8s.io/kubernetes/cmd/kubectl, pinned like hack/build-control-plane.sh),
# caches it outside the repo keyed by version, and prints the binary's path as the last
# line. SNAPCRON_KUBECTL=/path/to/kubectl uses an existing one instead. The tests use it as the client a user has (`kubectl snapcron report`).
#
# As for the control plane, k8s.io/kubernetes cannot be `go install`ed (its go.mod replaces
# every staging module with a local path), so a throwaway module requires it and pins each
# staging module to the matching v0.x release.
set -euo pipefail
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin" # Go lives here on these machines

K8S_VERSION="${SNAPCRON_K8S_VERSION:-v1.36.3}"

if [[ -n "${SNAPCRON_KUBECTL:-}" ]]; then
  echo "using SNAPCRON_KUBECTL=$SNAPCRON_KUBECTL" >&2
  echo "$SNAPCRON_KUBECTL"
  exit 0
fi

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/snapcron"
BIN_DIR="$CACHE_ROOT/kubectl/k8s-$K8S_VERSION"
log() { echo "[build-kubectl $(date +%H:%M:%S)] $*" >&2; }

if [[ -x "$BIN_DIR/kubectl" ]]; then
  log "cached: $BIN_DIR/kubectl"
  echo "$BIN_DIR/kubectl"
  exit 0
fi

export GOFLAGS="${GOFLAGS:--buildvcs=false}"
# shellcheck source=hack/lib/k8s-module.sh
source "$(dirname "$0")/lib/k8s-module.sh"
k8s_build_cmds "$CACHE_ROOT/build/kubectl-$K8S_VERSION" "$BIN_DIR" kubectl "$K8S_VERSION" kubectl
log "ready: $BIN_DIR/kubectl"
echo "$BIN_DIR/kubectl"
