#!/usr/bin/env bash
# Prints a directory holding the CRDs the deploy/ overlays and the Helm chart's options use
# beyond Kubernetes' own APIs: ServiceMonitor and PrometheusRule (prometheus-operator) and
# Certificate and Issuer (cert-manager), read from those projects' Go modules, fetched into the
# Go module cache by name and copied to a cache outside the repo (nothing is committed here).
# The VolumeSnapshotClass CRD comes from hack/snapshot-crds.sh. SNAPCRON_ADDON_CRDS=/dir uses
# an existing directory of such files instead.
set -euo pipefail
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin" # Go lives here on these machines

# The newest version of the root module that the Go module proxy serves.
PROM_OPERATOR_VERSION="${SNAPCRON_PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
CERT_MANAGER_VERSION="${SNAPCRON_CERT_MANAGER_VERSION:-v1.21.2}"

if [[ -n "${SNAPCRON_ADDON_CRDS:-}" ]]; then
  echo "using SNAPCRON_ADDON_CRDS=$SNAPCRON_ADDON_CRDS" >&2
  echo "$SNAPCRON_ADDON_CRDS"
  exit 0
fi

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/snapcron"
OUT="$CACHE_ROOT/addon-crds/prometheus-operator-$PROM_OPERATOR_VERSION-cert-manager-$CERT_MANAGER_VERSION"
if [[ -f "$OUT/.complete" ]]; then
  echo "$OUT"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
module_dir() {
  (cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
}
copy() { # module@version, directory in it, file names
  local mod="$1" sub="$2" dir
  shift 2
  dir="$(module_dir "$mod")"
  for f in "$@"; do
    if [[ ! -f "$dir/$sub/$f" ]]; then
      echo "addon-crds: $mod has no $sub/$f (pin another version with the environment overrides)" >&2
      exit 1
    fi
    cp "$dir/$sub/$f" "$OUT/$f"
  done
}
rm -rf "$OUT"
mkdir -p "$OUT"
copy "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION" example/prometheus-operator-crd \
  monitoring.coreos.com_servicemonitors.yaml monitoring.coreos.com_prometheusrules.yaml
copy "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION" deploy/crds \
  cert-manager.io_certificates.yaml cert-manager.io_issuers.yaml
chmod u+w "$OUT"/*.yaml
touch "$OUT/.complete"
echo "$OUT"
