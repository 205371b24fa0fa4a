# ws-echo container image. Build: docker build -t ws-echo .
# NODE_IMAGE is an argument only so that tests can substitute a local base of
# the same Node major (no registry is reachable there); users keep the default.
ARG NODE_IMAGE=docker.io/library/node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json ./
# --ignore-scripts: the `node` devDependency only exists to give npm scripts
# Node 24 on older machines; this image already is Node 24.
RUN npm ci --ignore-scripts
COPY app/src ./app/src
RUN node_modules/.bin/tsc -p . --rootDir . --outDir dist

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts && npm cache clean --force
COPY --from=build /app/dist/app/src ./dist/app/src
# A numeric non-root user, so Kubernetes can verify runAsNonRoot without /etc/passwd.
USER 10001:10001
EXPOSE 8000 9100
# Exec form: node is PID 1 and receives SIGTERM itself, which starts the drain.
CMD ["node", "--enable-source-maps", "dist/app/src/main.js"]
