#!/usr/bin/env bash
# End-to-end check on a local kind cluster, for machines with Docker:
#   1. a kind cluster (k8s/kind-config.yaml: 1 control plane + 3 workers in 3 zones)
#   2. ingress-nginx with k8s/ingress-nginx-values.yaml
#   3. kube-prometheus-stack (Prometheus Operator + Prometheus)
#   4. prometheus-adapter with k8s/prometheus-adapter-values.yaml
#   5. the ws-echo image, built and loaded into the nodes
#   6. the chart, with Ingress, HPA, PodMonitor and alerts; `helm test`
#   7. a reconnecting load client through the Ingress while
#      `kubectl rollout restart` replaces every pod; it fails unless every
#      message was echoed, no close was abnormal and no upgrade failed.
#
# Usage: k8s/e2e-kind.sh            (KEEP_CLUSTER=1 keeps the cluster afterwards)
# Needs: docker, kind, kubectl, helm (scripts/fetch-helm.sh puts helm and
# kubectl into .tools/bin), node and npm. Takes 5-10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

CLUSTER="${CLUSTER:-ws-echo}"
NAMESPACE="${NAMESPACE:-realtime}"
RELEASE="${RELEASE:-echo}"
# The chart's appVersion, which image.tag defaults to.
IMAGE_TAG="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' chart/Chart.yaml)"
IMAGE="ws-echo:${IMAGE_TAG}"
CLIENTS="${CLIENTS:-50}"
# ingress-nginx listens on the control-plane node's port 80, mapped to this port.
INGRESS_URL="${INGRESS_URL:-ws://localhost:8080/echo}"

export PATH="$PWD/.tools/bin:$PATH"
log() { printf '\n=== %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null || { echo "e2e-kind: $1 is not installed" >&2; exit 1; }; }
for tool in docker kind kubectl helm node npm; do need "$tool"; done

cleanup() {
  if [[ -n "${LOAD_PID:-}" ]]; then kill "$LOAD_PID" 2>/dev/null || true; fi
  if [[ "${KEEP_CLUSTER:-0}" != 1 ]]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

log "kind cluster $CLUSTER"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --config k8s/kind-config.yaml --wait 120s

log "ingress-nginx"
helm repo add ingress-nginx https://kubernetes.github.io/ingress-nginx --force-update >/dev/null
helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
# On kind the controller binds the node's ports 80/443 (kind-config.yaml maps
# them to the host), so one replica on the ingress-ready control-plane node.
# --set-string: a node selector value must be the string "true"; --set would
# render a YAML boolean, which the API server rejects.
helm upgrade --install ingress-nginx ingress-nginx/ingress-nginx \
  --namespace ingress-nginx --create-namespace \
  -f k8s/ingress-nginx-values.yaml \
  --set controller.replicaCount=1 \
  --set controller.minAvailable=0 \
  --set controller.hostPort.enabled=true \
  --set controller.service.type=ClusterIP \
  --set-string controller.nodeSelector.ingress-ready=true \
  --set-json 'controller.tolerations=[{"key":"node-role.kubernetes.io/control-plane","operator":"Exists","effect":"NoSchedule"}]' \
  --wait --timeout 5m

log "kube-prometheus-stack (Prometheus Operator, Prometheus)"
# Select PodMonitors and PrometheusRules of every release, not only its own.
helm upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
  --namespace monitoring --create-namespace \
  --set grafana.enabled=false \
  --set alertmanager.enabled=false \
  --set nodeExporter.enabled=false \
  --set prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues=false \
  --set prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues=false \
  --set prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false \
  --set prometheus.prometheusSpec.scrapeInterval=10s \
  --wait --timeout 10m

log "prometheus-adapter"
helm upgrade --install prometheus-adapter prometheus-community/prometheus-adapter \
  --namespace monitoring -f k8s/prometheus-adapter-values.yaml \
  --wait --timeout 5m

log "image $IMAGE"
docker build -t "$IMAGE" .
kind load docker-image "$IMAGE" --name "$CLUSTER"

log "chart: release $RELEASE in $NAMESPACE"
helm upgrade --install "$RELEASE" ./chart \
  --namespace "$NAMESPACE" --create-namespace \
  --set image.repository=ws-echo --set image.tag="$IMAGE_TAG" \
  --set ingress.enabled=true --set 'ingress.hosts[0]=localhost' \
  --set autoscaling.enabled=true --set autoscaling.minReplicas=3 \
  --set metrics.podMonitor.enabled=true --set metrics.prometheusRule.enabled=true \
  --wait --timeout 5m
helm test "$RELEASE" --namespace "$NAMESPACE" --logs

log "custom metric websocket_connections_active through prometheus-adapter"
for _ in $(seq 60); do
  if kubectl get --raw "/apis/custom.metrics.k8s.io/v1beta1/namespaces/$NAMESPACE/pods/*/websocket_connections_active" 2>/dev/null | grep -q '"metricName":"websocket_connections_active"'; then
    echo "served"; break
  fi
  sleep 5
done
kubectl get hpa -n "$NAMESPACE"

log "load: $CLIENTS reconnecting clients on $INGRESS_URL during kubectl rollout restart"
npm run build >/dev/null
report="$(mktemp)"
# Each client sends a message every 200 ms and resends what was not echoed
# after a reconnect (app/src/client.ts). SIGTERM stops them and prints totals
# (not SIGINT: a background job of a script starts with SIGINT ignored).
# shellcheck disable=SC2016 # JavaScript, not shell
INGRESS_URL="$INGRESS_URL" CLIENTS="$CLIENTS" node --input-type=module -e '
  import { EchoClient } from "./dist/app/src/client.js";
  const clients = Array.from({ length: Number(process.env.CLIENTS) }, (_, i) =>
    new EchoClient({ urls: [process.env.INGRESS_URL], id: `e2e-${i}`, paddingBytes: 64 }).start());
  const timer = setInterval(() => { for (const c of clients) c.send(); }, 200);
  process.once("SIGTERM", async () => {
    clearInterval(timer);
    const lost = (await Promise.all(clients.map((c) => c.stop(10000)))).reduce((a, b) => a + b, 0);
    const total = (k) => clients.reduce((a, c) => a + c.stats[k], 0);
    const result = { sent: total("sent"), echoed: total("echoed"), lost, duplicated: total("duplicated"),
      abnormalCloses: total("abnormalCloses"), failedUpgrades: total("failedUpgrades"), reconnects: total("reconnects") };
    console.log(JSON.stringify(result));
    process.exit(lost === 0 && result.abnormalCloses === 0 && result.failedUpgrades === 0 ? 0 : 1);
  });
' >"$report" &
LOAD_PID=$!
sleep 20
kubectl rollout restart "deployment/$RELEASE-ws-echo" -n "$NAMESPACE"
kubectl rollout status "deployment/$RELEASE-ws-echo" -n "$NAMESPACE" --timeout 10m
# The last old pod is still draining when the rollout reports done: wait out its grace period.
grace="$(kubectl get "deployment/$RELEASE-ws-echo" -n "$NAMESPACE" -o jsonpath='{.spec.template.spec.terminationGracePeriodSeconds}')"
sleep "$((grace + 5))"
kubectl get events -n "$NAMESPACE" --field-selector involvedObject.kind=Pod | grep -i drain || true
kill -TERM "$LOAD_PID"
status=0
wait "$LOAD_PID" || status=$?
LOAD_PID=""
cat "$report"
if [[ "$status" != 0 ]]; then
  echo "e2e-kind: FAILED: the rollout lost messages, closed sockets abnormally or refused upgrades" >&2
  exit 1
fi
echo "e2e-kind: passed: no message lost, no abnormal close, no failed upgrade across the rollout"
