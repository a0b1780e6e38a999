#!/usr/bin/env bash
# Prints the path of the kubelet's plugin-registration api.proto (k8s.io/kubelet module, in the
# Go module cache; nothing is copied): the protocol node-driver-registrar speaks to the kubelet.
set -euo pipefail
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin" # Go lives here on these machines
VERSION="${SNAPCRON_KUBELET_API_VERSION:-v0.36.3}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
dir="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubelet@$VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
proto="$dir/pkg/apis/pluginregistration/v1/api.proto"
[[ -f "$proto" ]] || { echo "plugin-registration-proto: $proto not found in k8s.io/kubelet $VERSION" >&2; exit 1; }
echo "$proto"
