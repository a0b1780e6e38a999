# snapcron controller image. Node 24 LTS; runs as a non-root user.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Skip install scripts here: the node@24 devDependency is not needed inside a Node 24 image.
RUN npm ci --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# Call tsc through the image's node: with --ignore-scripts the node@24 package's bin shim is not set up.
RUN node node_modules/typescript/bin/tsc -p tsconfig.build.json && npm prune --omit=dev --ignore-scripts

FROM node:24-bookworm-slim
ENV NODE_ENV=production
# Bounded V8 heap, as deploy/controller.yaml sets it (BENCHMARKS.md).
ENV NODE_OPTIONS="--max-old-space-size=384 --max-semi-space-size=4"
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY crds ./crds
USER 65532:65532
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["controller"]
