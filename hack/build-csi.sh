#!/usr/bin/env bash
# Builds the CSI snapshot stack's sidecars from Go modules by name and caches them:
# snapshot-controller and csi-snapshotter (external-snapshotter) and csi-provisioner
# (external-provisioner). Like build-control-plane.sh, a generated wrapper module
# requires each upstream module and rewrites its local replace directives to
# published versions. Prints the bin dir as the last line.
set -euo pipefail
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin" # Go lives here on these machines
SNAPSHOTTER="${SNAPCRON_SNAPSHOTTER_VERSION:-v8.6.0}"
PROVISIONER="${SNAPCRON_PROVISIONER_VERSION:-v5.3.0}"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/snapcron"
BIN_DIR="$CACHE_ROOT/csi/snapshotter-$SNAPSHOTTER-provisioner-$PROVISIONER"
log() { echo "[build-csi $(date +%H:%M:%S)] $*" >&2; }
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
mkdir -p "$BIN_DIR"

build() { # module version rewrite-from rewrite-to cmd...
  local module="$1" version="$2" from="$3" to="$4"; shift 4
  local need=0
  for cmd in "$@"; do [[ -x "$BIN_DIR/$cmd" ]] || need=1; done
  [[ $need == 1 ]] || return 0
  local work="$CACHE_ROOT/build/$(echo "$module" | tr '/' '_')-$version"
  mkdir -p "$work"
  local gomod
  gomod="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
  {
    echo "module snapcron.local/csi"
    echo
    echo "go 1.26.0"
    echo
    echo "require $module $version"
    echo
    grep -E '^replace ' "$gomod" | sed "s#=> $from\$#=> $to#" || true
    sed -n '/^replace (/,/^)/p' "$gomod" | sed "s#=> $from\$#=> $to#" || true
  } > "$work/go.mod"
  {
    echo "//go:build tools"
    echo
    echo "package csi"
    echo
    echo "import ("
    for cmd in "$@"; do echo "	_ \"$module/cmd/$cmd\""; done
    echo ")"
  } > "$work/tools.go"
  log "go mod tidy for $module@$version"
  (cd "$work" && go mod tidy -e >&2)
  for cmd in "$@"; do
    [[ -x "$BIN_DIR/$cmd" ]] && continue
    log "go build $cmd (a few minutes on 2 cores)"
    local start; start=$(date +%s)
    (cd "$work" && go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/$cmd.tmp" "$module/cmd/$cmd" >&2)
    mv "$BIN_DIR/$cmd.tmp" "$BIN_DIR/$cmd"
    log "built $cmd in $(( $(date +%s) - start ))s"
  done
}

build github.com/kubernetes-csi/external-snapshotter/v8 "$SNAPSHOTTER" ./client \
  "github.com/kubernetes-csi/external-snapshotter/client/v8 $SNAPSHOTTER" snapshot-controller csi-snapshotter
build github.com/kubernetes-csi/external-provisioner/v5 "$PROVISIONER" ./nothing ./nothing csi-provisioner
log "ready: $BIN_DIR"
echo "$BIN_DIR"
