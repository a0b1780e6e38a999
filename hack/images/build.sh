#!/usr/bin/env bash
# Builds the local node's two images without a registry, Docker or podman: one layer holding
# Debian's static busybox (from `apt-get download busybox-static`) and two OCI image archives
# made with tar and sha256sum alone:
#   snapcron.local/pause:1  the pod sandbox (a shell that sleeps, exits on TERM, reaps children)
#   snapcron.local/web:1    the same layer; pods give it a command (busybox sh, httpd, wget)
# Caches them under ~/.cache/snapcron/images/busybox-<version> and prints that dir (holding
# pause.tar and web.tar, for `ctr -n k8s.io images import`) as the last line.
set -euo pipefail
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/snapcron"
log() { echo "[build-images $(date +%H:%M:%S)] $*" >&2; }

version="$(apt-cache policy busybox-static | sed -n 's/^ *Candidate: //p')"
if [[ -z "$version" || "$version" == "(none)" ]]; then
  apt-get update -qq >&2
  version="$(apt-cache policy busybox-static | sed -n 's/^ *Candidate: //p')"
fi
[[ -n "$version" && "$version" != "(none)" ]] || { log "apt knows no busybox-static package; check /etc/apt/sources.list"; exit 1; }
OUT="$CACHE_ROOT/images/busybox-${version//[:+~]/_}"
if [[ -f "$OUT/pause.tar" && -f "$OUT/web.tar" ]]; then
  log "cached: $OUT"
  echo "$OUT"
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# apt's sandbox user cannot write root's temp dirs; the download itself is the same.
(cd "$work" && apt-get download -o APT::Sandbox::User=root "busybox-static=$version" >&2)
dpkg-deb -x "$work"/busybox-static_*.deb "$work/deb"
root="$work/rootfs"
mkdir -p "$root/bin" "$root/tmp" "$root/etc" "$root/data"
cp "$work/deb/bin/busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [[ -e "$root/bin/$applet" ]] || ln -s busybox "$root/bin/$applet"
done
echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
echo 'root:x:0:' >"$root/etc/group"
chmod 1777 "$root/tmp"

blobs="$work/blobs/sha256"
mkdir -p "$blobs"
# Fixed times, owners and order: the same package gives the same layer digest.
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$work/layer.tar" .
layer="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
layer_size="$(stat -c %s "$work/layer.tar")"
mv "$work/layer.tar" "$blobs/$layer"

blob() { # file -> prints "digest size" after moving it into blobs/
  local d s
  d="$(sha256sum "$1" | cut -d' ' -f1)"
  s="$(stat -c %s "$1")"
  mv "$1" "$blobs/$d"
  echo "$d $s"
}

image() { # name tag cmd-json
  local name="$1" tag="$2" cmd="$3" dir="$work/$1" config manifest cd cs md ms
  mkdir -p "$dir"
  printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":%s,"WorkingDir":"/"},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created_by":"hack/images/build.sh from busybox-static %s"}]}' \
    "$cmd" "$layer" "$version" >"$dir/config.json"
  read -r cd cs < <(blob "$dir/config.json")
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:%s","size":%s}]}' \
    "$cd" "$cs" "$layer" "$layer_size" >"$dir/manifest.json"
  read -r md ms < <(blob "$dir/manifest.json")
  mkdir -p "$dir/oci/blobs/sha256"
  for d in "$layer" "$cd" "$md"; do cp "$blobs/$d" "$dir/oci/blobs/sha256/$d"; done
  echo '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci/oci-layout"
  printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"io.containerd.image.name":"snapcron.local/%s:%s","org.opencontainers.image.ref.name":"%s"}}]}' \
    "$md" "$ms" "$name" "$tag" "$tag" >"$dir/oci/index.json"
  mkdir -p "$OUT"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$dir/oci" -cf "$OUT/$name.tar.tmp" .
  mv "$OUT/$name.tar.tmp" "$OUT/$name.tar"
  log "built snapcron.local/$name:$tag ($(stat -c %s "$OUT/$name.tar") bytes)"
}

# PID 1 of the sandbox: no signal handler means SIGTERM is ignored in a PID namespace, so trap it.
image pause 1 '["/bin/sh","-c","trap \"exit 0\" TERM INT; while true; do sleep 3600 & wait $!; done"]'
image web 1 '["/bin/httpd","-f","-p","8080","-h","/data"]'
log "ready: $OUT"
echo "$OUT"
