#!/usr/bin/env bash
# Times .ci/run as a fresh machine would run it, on this one: a clean clone of HEAD, an empty
# HOME (so empty Go module and build caches, npm cache and ~/.cache/snapcron) and empty podman
# storage. Only the Debian packages stay installed. The machine's Go and npm settings are copied
# over, since a fresh machine of this kind has them too. Needs about 15 GB under $FRESH.
# Usage: bash hack/ci-fresh.sh [FRESH=/tmp/snapcron-fresh]; prints the exit status and seconds.
set -u
FRESH="${1:-/tmp/snapcron-fresh}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
chmod -R u+w "$FRESH" 2>/dev/null # the Go module cache is read-only
rm -rf "$FRESH" && mkdir -p "$FRESH/home/.config/go"
[[ -f ~/.npmrc ]] && cp ~/.npmrc "$FRESH/home/"
[[ -f ~/.config/go/env ]] && cp ~/.config/go/env "$FRESH/home/.config/go/"
printf '[storage]\ndriver = "overlay"\ngraphroot = "%s/storage"\nrunroot = "%s/run"\n' "$FRESH" "$FRESH" >"$FRESH/storage.conf"
git clone -q "$ROOT" "$FRESH/repo"
cd "$FRESH/repo" || exit 1
start=$SECONDS
HOME="$FRESH/home" CONTAINERS_STORAGE_CONF="$FRESH/storage.conf" CI=true setsid .ci/run </dev/null >"$FRESH/ci.log" 2>&1
status=$?
echo "exit $status after $((SECONDS - start)) s; log: $FRESH/ci.log"
exit $status
