#!/usr/bin/env bash
# Prints the path of csi.proto from the CSI spec Go module (module cache); nothing is copied.
set -euo pipefail
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin" # Go lives here on these machines
VERSION="${SNAPCRON_CSI_SPEC_VERSION:-v1.13.0}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
dir="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "github.com/container-storage-interface/spec@$VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
[[ -f "$dir/csi.proto" ]] || { echo "csi-proto: csi.proto not found in the spec module $VERSION" >&2; exit 1; }
echo "$dir/csi.proto"
