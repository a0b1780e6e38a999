#!/usr/bin/env bash
# Builds promtool from the Prometheus Go module by name (github.com/prometheus/prometheus,
# whose v0.3XX.Y module versions are Prometheus 3.XX.Y), caches it outside the repo keyed
# by version, and prints the binary's path as the last line. SNAPCRON_PROMTOOL=/path/to/promtool
# uses an existing one instead. The tests use it to check the monitoring overlay's alert
# rules (`promtool test rules`) and the controller's real /metrics (`promtool check metrics`).
#
# The module has no replace directives today, so `go install mod@version` would do; a
# throwaway module is used anyway (as for kubectl) so a future replace cannot break the build.
# The remove_all_sd tag leaves out the cloud service-discovery plugins (AWS, Azure, GCE, …),
# which only `promtool check service-discovery` uses: a much shorter build.
set -euo pipefail
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin" # Go lives here on these machines

PROM_MODULE_VERSION="${SNAPCRON_PROMETHEUS_VERSION:-v0.316.0}"

if [[ -n "${SNAPCRON_PROMTOOL:-}" ]]; then
  echo "using SNAPCRON_PROMTOOL=$SNAPCRON_PROMTOOL" >&2
  echo "$SNAPCRON_PROMTOOL"
  exit 0
fi

CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/snapcron"
BIN_DIR="$CACHE_ROOT/promtool/$PROM_MODULE_VERSION"
log() { echo "[build-promtool $(date +%H:%M:%S)] $*" >&2; }

if [[ -x "$BIN_DIR/promtool" ]]; then
  log "cached: $BIN_DIR/promtool"
  echo "$BIN_DIR/promtool"
  exit 0
fi

mkdir -p "$BIN_DIR"
WORK="$CACHE_ROOT/build/promtool-$PROM_MODULE_VERSION"
mkdir -p "$WORK"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
# v0.316.0 -> 3.16.0, so `promtool --version` names the release it was built from.
MINOR_PATCH="${PROM_MODULE_VERSION#v0.3}"
PROM_VERSION="3.$((10#${MINOR_PATCH%%.*})).${MINOR_PATCH#*.}"
LDFLAGS="-s -w -X github.com/prometheus/common/version.Version=$PROM_VERSION -X github.com/prometheus/common/version.Branch=module -X github.com/prometheus/common/version.Revision=$PROM_MODULE_VERSION"

cat > "$WORK/go.mod" <<MOD
module snapcron.local/promtool

go 1.26.0

require github.com/prometheus/prometheus $PROM_MODULE_VERSION
MOD
cat > "$WORK/tools.go" <<'GO'
//go:build tools

package promtool

import (
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
GO
log "go mod tidy (github.com/prometheus/prometheus@$PROM_MODULE_VERSION)"
(cd "$WORK" && go mod tidy -e >&2)
log "go build promtool (several minutes on 2 cores the first time)"
start=$(date +%s)
(cd "$WORK" && go build -trimpath -tags remove_all_sd -ldflags "$LDFLAGS" -o "$BIN_DIR/promtool.tmp" github.com/prometheus/prometheus/cmd/promtool >&2)
mv "$BIN_DIR/promtool.tmp" "$BIN_DIR/promtool"
log "built promtool $PROM_VERSION in $(( $(date +%s) - start ))s"
log "ready: $BIN_DIR/promtool"
echo "$BIN_DIR/promtool"
