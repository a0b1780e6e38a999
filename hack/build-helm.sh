#!/usr/bin/env bash
# Builds helm from its Go module by name (helm.sh/helm/v3, cmd/helm), caches it outside the
# repo keyed by version, and prints the binary's path as the last line.
# SNAPCRON_HELM=/path/to/helm uses an existing one instead. The tests use it as a user would:
# `helm lint`, `helm template` and `helm install` of deploy/helm/snapcron.
#
# Helm 3, the major the ACK app catalog installs charts with. A throwaway module requires it
# (as for kubectl), so a replace directive upstream adds later cannot break `go install`.
set -euo pipefail
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin" # Go lives here on these machines

HELM_VERSION="${SNAPCRON_HELM_VERSION:-v3.22.0}"

if [[ -n "${SNAPCRON_HELM:-}" ]]; then
  echo "using SNAPCRON_HELM=$SNAPCRON_HELM" >&2
  echo "$SNAPCRON_HELM"
  exit 0
fi

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/snapcron"
BIN_DIR="$CACHE_ROOT/helm/$HELM_VERSION"
log() { echo "[build-helm $(date +%H:%M:%S)] $*" >&2; }

if [[ -x "$BIN_DIR/helm" ]]; then
  log "cached: $BIN_DIR/helm"
  echo "$BIN_DIR/helm"
  exit 0
fi

mkdir -p "$BIN_DIR"
WORK="$CACHE_ROOT/build/helm-$HELM_VERSION"
mkdir -p "$WORK"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
# The release ldflag, so `helm version` names the version it was built from.
LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"

cat > "$WORK/go.mod" <<MOD
module snapcron.local/helm

go 1.26.0

require helm.sh/helm/v3 $HELM_VERSION
MOD
cat > "$WORK/tools.go" <<'GO'
//go:build tools

package helm

import (
	_ "helm.sh/helm/v3/cmd/helm"
)
GO
log "go mod tidy (helm.sh/helm/v3@$HELM_VERSION)"
(cd "$WORK" && go mod tidy -e >&2)
# As helm's Makefile does: the Kubernetes version `helm template` and `helm lint` assume
# without a cluster is that of the client-go it is built with (else v1.20, and a chart's
# kubeVersion check fails).
K8S_MODULES_VERSION="$(cd "$WORK" && go list -m -f '{{.Version}}' k8s.io/client-go)"
K8S_MODULES_VERSION="${K8S_MODULES_VERSION#v}"
K8S_MAJOR=$(( ${K8S_MODULES_VERSION%%.*} + 1 ))
K8S_MINOR="${K8S_MODULES_VERSION#*.}"; K8S_MINOR="${K8S_MINOR%%.*}"
for pkg in pkg/chartutil pkg/lint/rules; do
  LDFLAGS+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=$K8S_MAJOR -X helm.sh/helm/v3/$pkg.k8sVersionMinor=$K8S_MINOR"
done
log "go build helm (a few minutes on 2 cores the first time)"
start=$(date +%s)
(cd "$WORK" && go build -trimpath -ldflags "$LDFLAGS" -o "$BIN_DIR/helm.tmp" helm.sh/helm/v3/cmd/helm >&2)
mv "$BIN_DIR/helm.tmp" "$BIN_DIR/helm"
log "built helm in $(( $(date +%s) - start ))s"
log "ready: $BIN_DIR/helm"
echo "$BIN_DIR/helm"
