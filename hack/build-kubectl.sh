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

mkdir -p "$BIN_DIR"
WORK="$CACHE_ROOT/build/kubectl-$K8S_VERSION"
mkdir -p "$WORK"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
# The release ldflags, so `kubectl version --client` names the version it was built from.
K8S_MINOR="${K8S_VERSION#v1.}"; K8S_MINOR="${K8S_MINOR%%.*}"
LDFLAGS="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$K8S_MINOR"

log "resolving k8s.io/kubernetes@$K8S_VERSION"
GOMOD_PATH="$(cd "$WORK" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
STAGING_VERSION="v0.${K8S_VERSION#v1.}"
{
  echo "module snapcron.local/kubectl"
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

package kubectl

import (
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
log "go mod tidy"
(cd "$WORK" && go mod tidy -e >&2)
log "go build kubectl (a few minutes on 2 cores the first time)"
start=$(date +%s)
(cd "$WORK" && go build -trimpath -ldflags "$LDFLAGS" -o "$BIN_DIR/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl >&2)
mv "$BIN_DIR/kubectl.tmp" "$BIN_DIR/kubectl"
log "built kubectl in $(( $(date +%s) - start ))s"
log "ready: $BIN_DIR/kubectl"
echo "$BIN_DIR/kubectl"
