#!/usr/bin/env bash
# Builds the snapcron image from the repo's Dockerfile with podman, and prints its name as the
# last line. No image registry is reachable on these machines, so the base comes from Debian's
# own packages: mmdebstrap makes a slim bookworm root filesystem (minbase + ca-certificates,
# no docs, man pages or locales, like debian:bookworm-slim) and podman imports it as
# localhost/snapcron-base:bookworm once (cached: skipped while that image exists). The
# Dockerfile keeps its public default base for users; here it gets --build-arg BASE=<that>.
#
# podman runs with hack/containers.conf (CONTAINERS_CONF): the runc runtime, cgroupfs and
# ulimits within the machine's hard limits, without which it refuses to run here
# (../shared/notes/containers.md).
#
# Environment:
#   SNAPCRON_IMAGE=name   use an existing image instead of building (printed as is)
#   SNAPCRON_IMAGE_TAG    the tag to build (default localhost/snapcron:dev)
#   SNAPCRON_BASE_IMAGE   the base to build on (default localhost/snapcron-base:bookworm, made here)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
log() { echo "[build-image $(date +%H:%M:%S)] $*" >&2; }

if [[ -n "${SNAPCRON_IMAGE:-}" ]]; then
  log "using SNAPCRON_IMAGE=$SNAPCRON_IMAGE"
  echo "$SNAPCRON_IMAGE"
  exit 0
fi

for tool in podman mmdebstrap runc; do
  command -v "$tool" >/dev/null || {
    log "$tool is missing: apt-get install -y podman mmdebstrap runc"
    exit 1
  }
done

export CONTAINERS_CONF="${CONTAINERS_CONF:-$ROOT/hack/containers.conf}"
TAG="${SNAPCRON_IMAGE_TAG:-localhost/snapcron:dev}"
BASE="${SNAPCRON_BASE_IMAGE:-localhost/snapcron-base:bookworm}"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/snapcron/image"
mkdir -p "$CACHE"

# A full-size benchmark may be measuring this machine: stay out of its way.
heavy=()
[[ -e /tmp/bench-running ]] && heavy=(nice -n 19 ionice -c3)

# One build at a time (the image test and a developer's shell may both call this).
exec 9>"$CACHE/lock"
flock 9

if ! podman image exists "$BASE"; then
  [[ "$BASE" == localhost/snapcron-base:* ]] || {
    log "base image $BASE not found (pull it, or unset SNAPCRON_BASE_IMAGE to make one from Debian packages)"
    exit 1
  }
  log "making $BASE from Debian packages with mmdebstrap (about 2-3 minutes)"
  start=$(date +%s)
  tar="$CACHE/base-bookworm.tmp.tar" # the .tar suffix tells mmdebstrap the output format
  # merged-usr hook: the /usr merge without the usrmerge package (and the perl it pulls in).
  "${heavy[@]}" mmdebstrap --variant=minbase --include=ca-certificates \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
    bookworm "$tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >&2
  "${heavy[@]}" podman import --change 'CMD ["/bin/bash"]' "$tar" "$BASE" >&2
  rm -f "$tar"
  log "made $BASE in $(($(date +%s) - start))s"
fi

# npm in the build trusts what this machine trusts (its egress may re-sign TLS with a local
# CA): the host's bundle goes in as a build secret, never into a layer.
CA_BUNDLE="${SNAPCRON_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}"
secret=()
[[ -s "$CA_BUNDLE" ]] && secret=(--secret "id=cacert,src=$CA_BUNDLE")

previous="$(podman image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)"
log "podman build $TAG (BASE=$BASE)"
start=$(date +%s)
# --network host: RUN steps reach the Debian mirror and the npm registry without a bridge.
"${heavy[@]}" podman build --network host --build-arg "BASE=$BASE" "${secret[@]}" --layers \
  -t "$TAG" -f "$ROOT/Dockerfile" "$ROOT" >&2
log "built $TAG in $(($(date +%s) - start))s, $(podman image inspect --format '{{.Size}}' "$TAG") bytes"
# The image this tag named before, now untagged (its layers mostly shared; the build cache stays).
if [[ -n "$previous" && "$previous" != "$(podman image inspect --format '{{.Id}}' "$TAG")" ]]; then
  podman rmi "$previous" >/dev/null 2>&1 || true
fi
echo "$TAG"
