# ws-echo container image.
#   docker build -t ws-echo:0.2.0 .        (or: podman build -t ws-echo:0.2.0 .)
# NODE_IMAGE is an argument only so that tests can substitute a local base of
# the same Node major (scripts/build-image.sh; no registry is reachable
# there); users keep the default, the official Node 24 LTS image.
ARG NODE_IMAGE=docker.io/library/node:24-bookworm-slim

# Production dependencies only, the optional bufferutil included (ws unmasks
# client frames with it: 0.65x the CPU per 64 KiB message, README
# "Performance"). --ignore-scripts: bufferutil's install script would only
# compile it where no prebuilt binary fits, and ws falls back to JavaScript
# there anyway; the `node` devDependency's downloads a Node binary that this
# image already has.
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# The npm cache lives in a build cache mount, never in a layer.
# Type declarations are never loaded at run time: dropping them saves ~32 MB.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && find node_modules -type f \( -name '*.d.ts' -o -name '*.d.cts' -o -name '*.d.mts' -o -name '*.d.ts.map' \) -delete
# bufferutil ships a binary for linux-x64 only: there the build fails unless ws
# loads it; elsewhere (arm64) ws masks in JavaScript and the build says so.
RUN node -e "const r = require('node:module').createRequire(require.resolve('ws')); \
  const native = r('./lib/buffer-util.js').mask.toString().includes('bufferUtil.mask'); \
  console.log('bufferutil ' + (native ? 'loaded by ws' : 'not loaded: ws masks in JavaScript') + ' on ' + process.arch); \
  if (!native && process.arch === 'x64') process.exit(1);"

# TypeScript -> dist/, with the dev dependencies.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
RUN --mount=type=cache,target=/root/.npm npm ci --ignore-scripts --no-audit --no-fund
COPY app/src ./app/src
RUN node node_modules/typescript7/bin/tsc -p . --rootDir . --outDir dist

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# Owned by root and read-only for the service user: it writes nothing, so the
# container runs with a read-only root filesystem.
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist/app/src ./dist/app/src
# A numeric non-root user, so Kubernetes can verify runAsNonRoot without /etc/passwd.
USER 10001:10001
EXPOSE 8000 9100
# Exec form, no shell in between: node ends up as PID 1 and receives SIGTERM
# itself, which starts the drain. (The official image's entrypoint,
# docker-entrypoint.sh, execs this command, so it does not stay in between.)
CMD ["node", "--enable-source-maps", "dist/app/src/main.js"]
