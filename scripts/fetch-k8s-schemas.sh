#!/usr/bin/env bash
# Puts the Kubernetes 1.30 and 1.34 API models into .tools/k8s-models/, once.
#
# The chart tests check every rendered object against the API of exactly
# these two Kubernetes releases. The official OpenAPI documents are not on
# npm or Debian, but the official JavaScript client is generated from them,
# one client minor per Kubernetes minor, and each generated model class lists
# its fields and their types (`attributeTypeMap`):
#   @kubernetes/client-node 0.22.3  "The version of the OpenAPI document: release-1.30"
#   @kubernetes/client-node 1.4.0   "OpenAPI spec version: v1.34.0"
# Only the generated model files are kept (no dependencies are installed):
# app/testkit/chart/k8s-schemas.ts turns them into JSON Schemas for ajv.
# Idempotent: exits at once when both are there.
set -euo pipefail
cd "$(dirname "$0")/.."

# Test files may run in parallel on a fresh clone: one fetch at a time.
mkdir -p .tools
exec 9>".tools/.fetch-k8s-schemas.lock"
flock 9

declare -A CLIENTS=([1.30]=0.22.3 [1.34]=1.4.0)
out=.tools/k8s-models
mkdir -p "$out" .tools/cache

for k8s in "${!CLIENTS[@]}"; do
  client="${CLIENTS[$k8s]}"
  dir="$out/$k8s"
  if [[ "$(cat "$dir/.client-version" 2>/dev/null)" == "$client" ]]; then continue; fi
  tarball=".tools/cache/kubernetes-client-node-$client.tgz"
  if [[ ! -s "$tarball" ]]; then
    work="$(mktemp -d)"
    (cd "$work" && npm pack --loglevel=error --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 "@kubernetes/client-node@$client" >/dev/null) || { echo "fetch-k8s-schemas: npm pack @kubernetes/client-node@$client failed (is the npm registry reachable?)" >&2; exit 1; }
    mv "$work"/*.tgz "$tarball"
    rm -rf "$work"
  fi
  rm -rf "$dir" && mkdir -p "$dir"
  # 0.x keeps the models in dist/gen/model, 1.x in dist/gen/models; tar
  # complains about the pattern that matches nothing, the check below decides.
  tar -xzf "$tarball" -C "$dir" --strip-components=1 --wildcards \
    package/package.json 'package/dist/gen/model/*.js' 'package/dist/gen/models/*.js' 2>/dev/null || true
  if [[ ! -f "$dir/dist/gen/model/v1Pod.js" && ! -f "$dir/dist/gen/models/V1Pod.js" ]]; then
    echo "fetch-k8s-schemas: no V1Pod model in @kubernetes/client-node@$client" >&2
    exit 1
  fi
  echo "$client" >"$dir/.client-version"
  echo "fetch-k8s-schemas: Kubernetes $k8s models from @kubernetes/client-node@$client" >&2
done
