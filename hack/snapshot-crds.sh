#!/usr/bin/env bash
# Prints the directory of the snapshot.storage.k8s.io v1 CRDs (VolumeSnapshot,
# VolumeSnapshotContent, VolumeSnapshotClass) inside the external-snapshotter client
# module, fetched into the Go module cache by name. Nothing is copied into this repo.
set -euo pipefail
command -v go >/dev/null || export PATH="$PATH:/usr/local/go/bin" # Go lives here on these machines
VERSION="${SNAPCRON_SNAPSHOTTER_VERSION:-v8.6.0}"
MODULE="github.com/kubernetes-csi/external-snapshotter/client/v8@$VERSION"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
dir="$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$MODULE" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')"
if [[ -z "$dir" || ! -d "$dir/config/crd" ]]; then
  echo "snapshot-crds: could not fetch $MODULE through the Go module proxy" >&2
  exit 1
fi
echo "$dir/config/crd"
