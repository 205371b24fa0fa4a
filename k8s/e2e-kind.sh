#!/usr/bin/env bash
# End-to-end proof on a local kind cluster, for anyone with Docker: what the
# chart promises, checked on real Kubernetes with real ingress-nginx,
# Prometheus Operator, prometheus-adapter or KEDA, and optionally Calico and
# Envoy Gateway. Every step runs reference clients (app/src/client.ts) through
# the cluster's way in and ends in an assertion; the first one that fails
# stops the run with a line `e2e-kind: FAILED: <step>: <why>`.
#
#   rollout     `kubectl rollout restart` under load: every client reconnects,
#               every close is 1012 (a drain) or 1013 (the rebalancer moving
#               clients to the new, empty pods), nothing lost, corrupted or
#               out of order, no failed upgrade;
#               every pod's drain ended with 0 terminated connections (its
#               DrainFinished Event), and Prometheus, which saw the pods
#               draining, counts no 1006 and no drain termination
#   reload      a second Ingress makes ingress-nginx reload under load:
#               no connection is cut (worker-shutdown-timeout applied): no
#               close but the rebalancer's 1013, no other reconnect
#   netpol      (--network-policy) a pod in another namespace cannot reach the
#               WebSocket port, while the ingress, Prometheus and `helm test` can
#   autoscale   a small per-pod target: the HPA (prometheus-adapter), or KEDA
#               with --autoscaler keda, scales up under a surge of clients, the
#               rebalancer fills the new pods, and it scales down under load
#               with nothing lost
#   gateway     (--gateway) the rollout again, through Envoy Gateway and the
#               chart's HTTPRoute instead of the Ingress
#   drain       `kubectl drain` of a worker under load: the PodDisruptionBudget
#               holds (never more than one pod unavailable), nothing lost
#
# Usage: k8s/e2e-kind.sh [--autoscaler hpa|keda] [--network-policy] [--gateway]
#                        [--steps rollout,reload,...] [--keep-cluster]
# Needs: docker (engine running), kind v0.32.0, kubectl >= 1.30, helm >= 3.8,
# node >= 20 and npm. Writes reports/kind-<time>/ (report.md, report.json,
# connections.svg, the step checks and, after a failure, diagnostics/): attach
# that folder to a bug report. README "Deploying on Kubernetes" says how long
# it takes. Every knob below is an environment variable.
set -euo pipefail
cd "$(dirname "$0")/.."

# ---------------------------------------------------------------- versions
# kind runs the node images built for its own release; its release notes name
# them by digest. This is kind v0.32.0's default image (Kubernetes 1.36.1).
KIND_RELEASE=v0.32.0
KIND_NODE_IMAGE="${KIND_NODE_IMAGE:-kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5}"
INGRESS_NGINX_CHART=4.15.1           # controller v1.15.1, the last release
KUBE_PROMETHEUS_STACK_CHART=88.5.3   # Prometheus Operator v0.93.1
PROMETHEUS_ADAPTER_CHART=5.3.0       # prometheus-adapter v0.12.0
KEDA_CHART=2.20.2
CALICO_CHART=v3.32.1                 # tigera-operator
ENVOY_GATEWAY_CHART=v1.9.0           # Gateway API v1.6.1 CRDs, experimental channel
MIN_KUBECTL=1.30                     # kubectl wait --for=jsonpath, drain --delete-emptydir-data
MIN_HELM=3.8                         # OCI charts (Envoy Gateway)
MIN_NODE=20

# ---------------------------------------------------------------- knobs
CLUSTER="${CLUSTER:-ws-echo}"
NAMESPACE="${NAMESPACE:-realtime}"
RELEASE="${RELEASE:-echo}"
DEPLOY="$RELEASE-ws-echo"
# Reference clients for rollout, reload, gateway and drain (and the base load
# of autoscale), each sending RATE messages a second.
CLIENTS="${CLIENTS:-24}"
RATE="${RATE:-2}"
# ingress-nginx binds the control-plane node's port 80, mapped to 127.0.0.1:8080
# (k8s/kind-config.yaml); the chart's Ingress takes its host from this URL.
INGRESS_URL="${INGRESS_URL:-ws://localhost:8080/echo}"
GATEWAY_URL="${GATEWAY_URL:-ws://localhost:8081/echo}"
# autoscale: pods at least/at most, target connections per pod, extra clients
# of the surge. CLIENTS stays below SCALE_MIN × SCALE_TARGET so that the other
# steps run at SCALE_MIN pods; CLIENTS + SCALE_SURGE_CLIENTS asks for more.
SCALE_MIN="${SCALE_MIN:-3}"
SCALE_MAX="${SCALE_MAX:-6}"
SCALE_TARGET="${SCALE_TARGET:-10}"
SCALE_SURGE_CLIENTS="${SCALE_SURGE_CLIENTS:-36}"
# The HPA's scale-down stabilization window (the chart's default is 300 s).
SCALE_DOWN_WINDOW="${SCALE_DOWN_WINDOW:-60}"
# Seconds: load before an operation, load kept after it, the clients' wait for
# outstanding echoes when they stop, the limit for the clients to connect.
WARMUP_SECONDS="${WARMUP_SECONDS:-15}"
DWELL_SECONDS="${DWELL_SECONDS:-30}"
SETTLE_SECONDS="${SETTLE_SECONDS:-10}"
OPEN_TIMEOUT="${OPEN_TIMEOUT:-60}"
# Seconds: helm --wait of each controller; any other wait (a condition, a
# rollout, a scale); how often a wait asks again.
INSTALL_TIMEOUT="${INSTALL_TIMEOUT:-600}"
TIMEOUT="${TIMEOUT:-300}"
POLL_SECONDS="${POLL_SECONDS:-2}"
KEEP_CLUSTER="${KEEP_CLUSTER:-0}"
REPORT_DIR="${REPORT_DIR:-reports/kind-$(date -u +%Y%m%dT%H%M%SZ)}"
AUTOSCALER=hpa
NETWORK_POLICY=0
GATEWAY=0
STEPS=""
ALL_STEPS="rollout reload netpol autoscale gateway drain"

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p;}' "$0"; }

while (($# > 0)); do
  case "$1" in
    --autoscaler) AUTOSCALER="${2:-}"; shift ;;
    --autoscaler=*) AUTOSCALER="${1#*=}" ;;
    --network-policy) NETWORK_POLICY=1 ;;
    --gateway) GATEWAY=1 ;;
    --steps) STEPS="${2:-}"; shift ;;
    --steps=*) STEPS="${1#*=}" ;;
    --keep-cluster) KEEP_CLUSTER=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "e2e-kind: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
case "$AUTOSCALER" in hpa | keda) ;; *) echo "e2e-kind: --autoscaler must be hpa or keda, got '$AUTOSCALER'" >&2; exit 2 ;; esac
if [[ -z "$STEPS" ]]; then
  STEPS="rollout,reload,autoscale,drain"
  if ((NETWORK_POLICY)); then STEPS="$STEPS,netpol"; fi
  if ((GATEWAY)); then STEPS="$STEPS,gateway"; fi
fi
for step in ${STEPS//,/ }; do
  case " $ALL_STEPS " in *" $step "*) ;; *) echo "e2e-kind: unknown step '$step'; steps are: ${ALL_STEPS// /, }" >&2; exit 2 ;; esac
done
wants() { case ",$STEPS," in *",$1,"*) return 0 ;; *) return 1 ;; esac; }
# A step that needs an add-on turns it on.
if wants netpol; then NETWORK_POLICY=1; fi
if wants gateway; then GATEWAY=1; fi

# The Ingress host is the one clients use, so an INGRESS_URL of your own routes.
INGRESS_HOST="${INGRESS_URL#*://}"
INGRESS_HOST="${INGRESS_HOST%%[:/]*}"
CONTEXT="kind-$CLUSTER"
# The chart's appVersion, which image.tag defaults to.
IMAGE_TAG="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' chart/Chart.yaml)"
IMAGE="ws-echo:$IMAGE_TAG"
SELECTOR="app.kubernetes.io/name=ws-echo,app.kubernetes.io/instance=$RELEASE"
# Our helm and kubectl downloads (scripts/fetch-helm.sh) only stand in for
# missing ones: the user's own tools come first.
export PATH="$PATH:$PWD/.tools/bin"

# ---------------------------------------------------------------- helpers
say() { printf 'e2e-kind: %s\n' "$*" >&2; }
# phase NAME TEXT: what runs now (the step an unexpected failure is reported under).
phase() {
  CURRENT="$1"
  printf '\n=== %s\n' "$2" >&2
}
CURRENT=preflight
# A check's verdict: printed, and kept for the report once there is a folder.
record() {
  if [[ -d "$REPORT_DIR" ]]; then printf '%s\t%s\t%s\n' "$1" "$2" "$3" | tr -d '\r' >>"$REPORT_DIR/checks.tsv"; fi
}
pass() { say "passed: $1: $2"; record "$1" passed "$2"; }
# A command that fails where no check expected it still ends in a FAILED
# line (set -e would exit silently). Not in subshells: their failure shows
# in the command that ran them.
on_error() {
  if ((BASH_SUBSHELL == 0)); then fail "$CURRENT" "unexpected failure (exit status $1, line $2): $3"; fi
}
set -E
trap 'on_error $? $LINENO "$BASH_COMMAND"' ERR
# fail STEP WHY: the one way out after a failed check (the EXIT trap reports).
fail() {
  printf 'e2e-kind: FAILED: %s: %s\n' "$1" "$2" >&2
  record "$1" FAILED "$2"
  exit 1
}
setting() { if [[ -d "$REPORT_DIR" ]]; then printf '%s\t%s\n' "$1" "$2" >>"$REPORT_DIR/settings.tsv"; fi; }
# Every cluster call names the kind cluster's context: never whatever context
# the user's kubeconfig has current.
k() { kubectl --context "$CONTEXT" "$@"; }
h() { helm --kube-context "$CONTEXT" "$@"; }
e2e() { "$NODE" dist/scripts/e2e-kind.js "$@"; }

# version_ge HAVE NEED: dotted versions, numerically (no sort -V on every system).
version_ge() {
  local have="${1#v}" need="${2#v}" i h n
  local IFS=.
  # shellcheck disable=SC2206 # split on dots on purpose
  local -a H=($have) N=($need)
  for ((i = 0; i < ${#N[@]}; i++)); do
    h="${H[i]:-0}" n="${N[i]:-0}"
    h="${h%%[!0-9]*}" n="${n%%[!0-9]*}"
    if ((${h:-0} > ${n:-0})); then return 0; fi
    if ((${h:-0} < ${n:-0})); then return 1; fi
  done
  return 0
}

# wait_until STEP WHAT SECONDS COMMAND...: runs COMMAND every POLL_SECONDS
# until it succeeds; past SECONDS, FAILED with COMMAND's last output. Load
# clients running meanwhile must stay alive.
wait_until() {
  local step="$1" what="$2" timeout="$3" out pidfile running
  shift 3
  local deadline=$((SECONDS + timeout))
  while true; do
    for pidfile in "$REPORT_DIR"/load-*.pid; do
      [[ -e "$pidfile" ]] || continue
      running="${pidfile##*/load-}"
      load_alive "${running%.pid}"
    done
    if out="$("$@" 2>&1)"; then return 0; fi
    if ((SECONDS >= deadline)); then
      fail "$step" "timed out after ${timeout}s waiting for $what (last answer: $(printf '%s' "${out:-nothing}" | tr '\n' ' ' | cut -c1-300))"
    fi
    sleep "$POLL_SECONDS"
  done
}
# equals EXPECTED COMMAND...: COMMAND prints exactly EXPECTED (else prints what it did).
equals() {
  local expected="$1" got
  shift
  got="$("$@")" || return 1
  if [[ "$got" == "$expected" ]]; then return 0; fi
  printf '%s\n' "${got:-<empty>}"
  return 1
}
at_least() {
  local expected="$1" got
  shift
  got="$("$@")" || return 1
  if [[ "$got" =~ ^[0-9]+$ ]] && ((got >= expected)); then return 0; fi
  printf '%s\n' "${got:-<empty>}"
  return 1
}
condition() { # condition KIND/NAME NAMESPACE|- TYPE: that condition's status
  local ns=()
  if [[ "$2" != - ]]; then ns=(-n "$2"); fi
  # ${ns[@]+...}: an empty array is "unbound" to set -u in bash before 4.4 (macOS).
  k get "$1" ${ns[@]+"${ns[@]}"} -o "jsonpath={.status.conditions[?(@.type==\"$3\")].status}"
}

urlencode() {
  local s="$1" out="" c i
  for ((i = 0; i < ${#s}; i++)); do
    c="${s:i:1}"
    case "$c" in
      [a-zA-Z0-9._~-]) out+="$c" ;;
      *) out+="$(printf '%%%02X' "'$c")" ;;
    esac
  done
  printf '%s' "$out"
}
# Prometheus's HTTP API through the API server's service proxy: no port-forward to manage.
promql() {
  k get --raw "/api/v1/namespaces/monitoring/services/kube-prometheus-stack-prometheus:9090/proxy/api/v1/query?query=$(urlencode "$1")"
}
promql_value() {
  local answer
  answer="$(promql "$1")" || return 1
  printf '%s' "$answer" | e2e promql-value
}

exit_text() {
  if (($1 > 128)); then echo "killed by signal $(($1 - 128))"; else echo "exit status $1"; fi
}

# ---------------------------------------------------------------- load
# Reference clients as a background process (scripts/e2e-kind.ts load): they
# connect, send until SIGTERM, wait for outstanding echoes, write their totals.
load_start() { # STEP URL CLIENTS
  local step="$1" url="$2" clients="$3" pid
  rm -f "$REPORT_DIR/load-$step.ready" "$REPORT_DIR/load-$step.json"
  # Node itself in the background (not the e2e function, a subshell): $! is the process to signal.
  "$NODE" dist/scripts/e2e-kind.js load --url "$url" --clients "$clients" --rate "$RATE" --settle "$SETTLE_SECONDS" \
    --out "$REPORT_DIR/load-$step.json" --ready "$REPORT_DIR/load-$step.ready" >"$REPORT_DIR/load-$step.log" 2>&1 &
  pid=$!
  echo "$pid" >"$REPORT_DIR/load-$step.pid"
  local deadline=$((SECONDS + OPEN_TIMEOUT))
  until [[ -e "$REPORT_DIR/load-$step.ready" ]]; do
    load_alive "$step"
    if ((SECONDS >= deadline)); then
      fail "$step" "the $clients load clients did not all connect to $url within ${OPEN_TIMEOUT}s ($(tail -n 1 "$REPORT_DIR/load-$step.log" 2>/dev/null))"
    fi
    sleep "$POLL_SECONDS"
  done
  say "$step: $clients clients connected to $url"
}
# FAILED when a load client exited before its step ended: a dead client
# would otherwise be noticed only when it is told to stop.
load_alive() {
  local step="$1" pid status=0
  pid="$(cat "$REPORT_DIR/load-$step.pid")"
  if kill -0 "$pid" 2>/dev/null; then return 0; fi
  wait "$pid" || status=$?
  rm -f "$REPORT_DIR/load-$step.pid"
  fail "$step" "the load client exited before the step ended ($(exit_text "$status")); its last output: $(tail -n 5 "$REPORT_DIR/load-$step.log" | tr '\n' ' ')"
}
load_stop() {
  local step="$1" pid status=0
  load_alive "$step"
  pid="$(cat "$REPORT_DIR/load-$step.pid")"
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" || status=$?
  rm -f "$REPORT_DIR/load-$step.pid"
  if ((status != 0)) || [[ ! -s "$REPORT_DIR/load-$step.json" ]]; then
    fail "$step" "the load client ended with $(exit_text "$status") and no totals; its last output: $(tail -n 5 "$REPORT_DIR/load-$step.log" | tr '\n' ' ')"
  fi
}
# check_load STEP restart|steady [MIN_RECONNECTS]: the promise on the clients' totals.
check_load() {
  local out
  if out="$(e2e check --file "$REPORT_DIR/load-$1.json" --expect "$2" --min-reconnects "${3:-0}")"; then
    pass "$1" "clients: $out"
  else
    fail "$1" "clients: $out"
  fi
}

# ---------------------------------------------------------------- cluster reads
ready_pods() {
  k get pods -n "$NAMESPACE" -l "$SELECTOR" -o 'jsonpath={range .items[*]}{.metadata.deletionTimestamp}{" "}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' |
    awk '$1 == "True" { n++ } END { print n + 0 }'
}
no_terminating_pods() {
  local terminating
  terminating="$(k get pods -n "$NAMESPACE" -l "$SELECTOR" -o 'jsonpath={range .items[*]}{.metadata.name}{" "}{.metadata.deletionTimestamp}{"\n"}{end}' | awk 'NF > 1 { print $1 }')"
  if [[ -z "$terminating" ]]; then return 0; fi
  echo "still terminating: $terminating"
  return 1
}
grace_seconds() { k get "deployment/$DEPLOY" -n "$NAMESPACE" -o 'jsonpath={.spec.template.spec.terminationGracePeriodSeconds}'; }
drain_events() { # DrainFinished Events the pods posted: "pod: closed N ... terminated M in Xs"
  k get events -n "$NAMESPACE" --field-selector reason=DrainFinished -o 'jsonpath={range .items[*]}{.involvedObject.name}{": "}{.message}{"\n"}{end}'
}
drain_event_count() { drain_events | awk 'NF { n++ } END { print n + 0 }'; }
hpa_current() { k get "hpa/$DEPLOY" -n "$NAMESPACE" -o 'jsonpath={.status.currentReplicas}'; }
per_pod_connections() { promql "sum by (pod) (websocket_connections_active{namespace=\"$NAMESPACE\",pod=~\"$DEPLOY-.*\"})"; }
balanced() { per_pod_connections | e2e balance --pods "$1" --min-share 0.5; }
prometheus_targets_up() { promql_value "count(up{namespace=\"$NAMESPACE\",pod=~\"$DEPLOY-.*\"} == 1)"; }
custom_metric_pods() {
  k get --raw "/apis/custom.metrics.k8s.io/v1beta1/namespaces/$NAMESPACE/pods/*/websocket_connections_active" | e2e count-items
}
reloads() { # how many times ingress-nginx reloaded nginx so far
  k logs -n ingress-nginx deployment/ingress-nginx-controller --tail=-1 | awk '/Backend successfully reloaded/ { n++ } END { print n + 0 }'
}

# check_server STEP DRAINS_BEFORE MIN_NEW_DRAINS [prometheus]: what the pods
# themselves saw. Every drain posts a DrainFinished Event with the count it
# had to terminate; Prometheus (the PodMonitor) keeps every pod's counters.
check_server() {
  local step="$1" before="$2" expected="$3" use_prometheus="${4:-prometheus}" events count bad
  wait_until "$step" "$expected DrainFinished Events (one per drained pod)" "$TIMEOUT" at_least "$((before + expected))" drain_event_count
  events="$(drain_events)"
  count="$(printf '%s\n' "$events" | awk 'NF { n++ } END { print n + 0 }')"
  bad="$(printf '%s\n' "$events" | grep -v ' terminated 0 in ' | awk 'NF' || true)"
  if [[ -n "$bad" ]]; then fail "$step" "a drain terminated connections at its deadline: $(printf '%s' "$bad" | tr '\n' ';')"; fi
  pass "$step" "server: $count drains so far, each closed every connection with 1012 in time (DrainFinished: terminated 0)"
  if [[ "$use_prometheus" != prometheus ]]; then return 0; fi
  local window="$((SECONDS - RUN_STARTED + 60))s" abnormal terminated draining
  abnormal="$(promql_value "sum(max_over_time(websocket_closes_total{namespace=\"$NAMESPACE\",code=\"1006\"}[$window]))")" || fail "$step" "Prometheus did not answer"
  terminated="$(promql_value "sum(max_over_time(websocket_drain_connections_closed_total{namespace=\"$NAMESPACE\",how=\"terminated\"}[$window]))")" || fail "$step" "Prometheus did not answer"
  # The gauge is set when a drain begins: a scrape during any drain shows it.
  draining="$(promql_value "sum(max_over_time(websocket_drain_connections{namespace=\"$NAMESPACE\"}[$window]))")" || fail "$step" "Prometheus did not answer"
  if ((draining == 0)); then fail "$step" "Prometheus saw no pod draining with connections: it does not scrape the pods while they drain, so its zeros below would prove nothing"; fi
  if ((abnormal != 0)); then fail "$step" "Prometheus counted $abnormal closes with 1006 (websocket_closes_total)"; fi
  if ((terminated != 0)); then fail "$step" "Prometheus counted $terminated connections terminated by drains"; fi
  pass "$step" "server: Prometheus saw drains begin with $draining connections in all, 0 closes with 1006, 0 drain terminations over the run"
}

# ---------------------------------------------------------------- exit
CREATED=0
CLUSTER_REACHED=0
WORK=""
RUN_STARTED=$SECONDS
on_exit() {
  local status=$?
  # Best effort from here on: a failing diagnostic must not end the cleanup.
  set +eE
  trap - EXIT ERR
  local pidfile
  for pidfile in "$REPORT_DIR"/load-*.pid; do
    [[ -e "$pidfile" ]] || continue
    kill -TERM "$(cat "$pidfile")" 2>/dev/null
    rm -f "$pidfile"
  done
  if [[ -n "${DRAIN_PID:-}" ]]; then kill "$DRAIN_PID" 2>/dev/null; fi
  if ((status != 0)) && ((CLUSTER_REACHED)); then diagnostics; fi
  if [[ -d "$REPORT_DIR" && -n "${NODE:-}" && -e dist/scripts/e2e-kind.js ]]; then
    e2e report --dir "$REPORT_DIR" --started "$STARTED_AT" --command "$COMMAND_LINE" --result "$([[ $status == 0 ]] && echo passed || echo failed)" >&2 ||
      say "could not write the report into $REPORT_DIR"
  fi
  if ((CREATED)) && [[ "$KEEP_CLUSTER" != 1 ]]; then
    say "deleting kind cluster $CLUSTER (created by this run; KEEP_CLUSTER=1 keeps it)"
    kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || say "kind delete cluster --name $CLUSTER failed; delete it yourself"
  elif ((CREATED == 0)) && ((CLUSTER_REACHED)); then
    say "kind cluster $CLUSTER was not created by this run: left as it is"
  fi
  if [[ -n "$WORK" ]]; then rm -rf "$WORK"; fi
  exit "$status"
}
# What a bug report needs, written before the cluster goes away.
diagnostics() {
  local d="$REPORT_DIR/diagnostics"
  mkdir -p "$d"
  say "failed: writing diagnostics into $d"
  k get nodes -o wide >"$d/nodes.txt" 2>&1
  k get pods -A -o wide >"$d/pods.txt" 2>&1
  k get events -A --sort-by=.lastTimestamp >"$d/events.txt" 2>&1
  k get apiservices >"$d/apiservices.txt" 2>&1
  h list -A >"$d/helm-releases.txt" 2>&1
  k describe hpa -n "$NAMESPACE" >"$d/describe-hpa.txt" 2>&1
  k describe pods -n "$NAMESPACE" >"$d/describe-pods.txt" 2>&1
  k describe pdb -n "$NAMESPACE" >"$d/describe-pdb.txt" 2>&1
  k logs -n "$NAMESPACE" -l "$SELECTOR" --all-containers --prefix --tail=-1 >"$d/logs-ws-echo.txt" 2>&1
  k logs -n "$NAMESPACE" -l "$SELECTOR" --all-containers --prefix --previous >"$d/logs-ws-echo-previous.txt" 2>&1
  k logs -n ingress-nginx -l app.kubernetes.io/component=controller --prefix --tail=2000 >"$d/logs-ingress-nginx.txt" 2>&1
  k logs -n monitoring -l app.kubernetes.io/name=prometheus-adapter --prefix --tail=2000 >"$d/logs-prometheus-adapter.txt" 2>&1
  k logs -n monitoring -l app.kubernetes.io/name=prometheus --all-containers --prefix --tail=2000 >"$d/logs-prometheus.txt" 2>&1
  if [[ "$AUTOSCALER" == keda ]]; then
    k describe scaledobject -n "$NAMESPACE" >"$d/describe-scaledobject.txt" 2>&1
    k logs -n keda -l app=keda-operator --prefix --tail=2000 >"$d/logs-keda-operator.txt" 2>&1
  fi
  if ((GATEWAY)); then
    k describe gateway,httproute -A >"$d/describe-gateway.txt" 2>&1
    k logs -n envoy-gateway-system -l control-plane=envoy-gateway --prefix --tail=2000 >"$d/logs-envoy-gateway.txt" 2>&1
  fi
  if ((NETWORK_POLICY)); then k get tigerastatus -o wide >"$d/tigerastatus.txt" 2>&1; fi
}

# ---------------------------------------------------------------- preflight
# Everything that can fail without a cluster fails here, in seconds.
phase preflight "preflight"
missing=()
hint() {
  case "$1" in
    docker) echo "Docker Engine or Docker Desktop, running" ;;
    kind) echo "kind $KIND_RELEASE (go install sigs.k8s.io/kind@$KIND_RELEASE, or its release binary)" ;;
    kubectl) echo "kubectl $MIN_KUBECTL or newer" ;;
    helm) echo "helm $MIN_HELM or newer (or run scripts/fetch-helm.sh on linux/amd64)" ;;
    node) echo "Node.js $MIN_NODE or newer" ;;
    npm) echo "npm (comes with Node.js)" ;;
  esac
}
for tool in docker kind kubectl helm node npm; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]} > 0)); then
  for tool in "${missing[@]}"; do say "missing: $tool: install $(hint "$tool")"; done
  fail preflight "install ${missing[*]} first (nothing was created)"
fi
DOCKER_VERSION="$(docker version --format '{{.Server.Version}}' 2>&1)" || fail preflight "docker is installed but its engine does not answer ($DOCKER_VERSION): start Docker"
KIND_VERSION="$(kind version 2>&1 | awk '{ print $2 }')"
KUBECTL_VERSION="$(kubectl version --client 2>/dev/null | sed -n 's/^Client Version: //p' || true)"
HELM_VERSION="$(helm version --template '{{.Version}}' 2>/dev/null || true)"
NODE_VERSION="$(node --version)"
say "docker $DOCKER_VERSION ($(command -v docker)), kind $KIND_VERSION, kubectl $KUBECTL_VERSION ($(command -v kubectl)), helm $HELM_VERSION ($(command -v helm)), node $NODE_VERSION"
if [[ "$KIND_VERSION" != "$KIND_RELEASE" && "$KIND_NODE_IMAGE" == kindest/node:v1.36.1@* ]]; then
  fail preflight "kind is $KIND_VERSION; this script pins kind $KIND_RELEASE and its node image. Install kind $KIND_RELEASE, or set KIND_NODE_IMAGE to an image your kind's release notes list (by digest)"
fi
version_ge "$KUBECTL_VERSION" "$MIN_KUBECTL" || fail preflight "kubectl is ${KUBECTL_VERSION:-unknown}; install $(hint kubectl)"
version_ge "$HELM_VERSION" "$MIN_HELM" || fail preflight "helm is ${HELM_VERSION:-unknown}; install $(hint helm)"
version_ge "$NODE_VERSION" "$MIN_NODE" || fail preflight "node is $NODE_VERSION; install $(hint node)"
# The project's own Node (the `node` devDependency) runs the clients.
if [[ ! -d node_modules ]] || ! npm ls --depth=0 >/dev/null 2>&1; then
  say "npm ci (the dependencies are missing or differ from package-lock.json)"
  npm ci --no-audit --no-fund >&2 || fail preflight "npm ci failed"
fi
npm run build --silent >&2 || fail preflight "npm run build failed"
NODE="$PWD/node_modules/.bin/node"
[[ -x "$NODE" ]] || NODE="$(command -v node)"
[[ -e dist/scripts/e2e-kind.js ]] || fail preflight "the build did not produce dist/scripts/e2e-kind.js"

STARTED_AT="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
COMMAND_LINE="k8s/e2e-kind.sh --autoscaler $AUTOSCALER --steps $STEPS"
if ((NETWORK_POLICY)); then COMMAND_LINE="$COMMAND_LINE --network-policy"; fi
if ((GATEWAY)); then COMMAND_LINE="$COMMAND_LINE --gateway"; fi
mkdir -p "$REPORT_DIR"
: >"$REPORT_DIR/checks.tsv"
: >"$REPORT_DIR/settings.tsv"
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
pass preflight "docker $DOCKER_VERSION, kind $KIND_VERSION, kubectl $KUBECTL_VERSION, helm $HELM_VERSION, node $NODE_VERSION; built"
for kv in "cluster=$CLUSTER" "node image=$KIND_NODE_IMAGE" "namespace=$NAMESPACE" "release=$RELEASE" "steps=$STEPS" \
  "autoscaler=$AUTOSCALER" "network policy=$NETWORK_POLICY" "gateway=$GATEWAY" "clients=$CLIENTS" "rate per client=$RATE" \
  "ingress url=$INGRESS_URL" "gateway url=$GATEWAY_URL" "scale min/max/target/surge=$SCALE_MIN/$SCALE_MAX/$SCALE_TARGET/$SCALE_SURGE_CLIENTS" \
  "docker=$DOCKER_VERSION" "kind=$KIND_VERSION" "kubectl=$KUBECTL_VERSION" "helm=$HELM_VERSION" \
  "ingress-nginx chart=$INGRESS_NGINX_CHART" "kube-prometheus-stack chart=$KUBE_PROMETHEUS_STACK_CHART" \
  "prometheus-adapter chart=$PROMETHEUS_ADAPTER_CHART" "keda chart=$KEDA_CHART" "calico chart=$CALICO_CHART" "envoy gateway chart=$ENVOY_GATEWAY_CHART"; do
  setting "${kv%%=*}" "${kv#*=}"
done

# ---------------------------------------------------------------- cluster
phase cluster "kind cluster $CLUSTER"
existing="$(kind get clusters 2>/dev/null || true)"
if printf '%s\n' "$existing" | grep -qx "$CLUSTER"; then
  say "reusing kind cluster $CLUSTER: this run did not create it and will not delete it"
  kubectl config get-contexts "$CONTEXT" >/dev/null 2>&1 || kind export kubeconfig --name "$CLUSTER"
  CLUSTER_REACHED=1
  if ((NETWORK_POLICY)) && k get daemonset kindnet -n kube-system >/dev/null 2>&1; then
    fail cluster "cluster $CLUSTER runs kindnet, which does not enforce NetworkPolicy: delete it or pick another CLUSTER for --network-policy"
  fi
else
  # Set first: a half-created cluster is deleted too.
  CREATED=1
  create=(kind create cluster --name "$CLUSTER" --image "$KIND_NODE_IMAGE" --config=-)
  if ((NETWORK_POLICY)); then
    # No CNI until Calico: nodes stay NotReady, so no --wait here.
    { cat k8s/kind-config.yaml; printf 'networking:\n  disableDefaultCNI: true\n  podSubnet: 192.168.0.0/16\n'; } | "${create[@]}" ||
      fail cluster "kind create cluster failed"
  else
    "${create[@]}" --wait "${TIMEOUT}s" <k8s/kind-config.yaml || fail cluster "kind create cluster failed"
  fi
  CLUSTER_REACHED=1
fi

WORK="$(mktemp -d)"
if ((NETWORK_POLICY)); then
  phase cluster "Calico (kindnet does not enforce NetworkPolicy)"
  h repo add projectcalico https://docs.tigera.io/calico/charts --force-update >/dev/null
  h upgrade --install calico projectcalico/tigera-operator --version "$CALICO_CHART" \
    --namespace tigera-operator --create-namespace -f k8s/calico-values.yaml --wait --timeout "${INSTALL_TIMEOUT}s" ||
    fail cluster "Calico did not install"
  k wait --for condition=established --timeout "${TIMEOUT}s" crd/installations.operator.tigera.io crd/tigerastatuses.operator.tigera.io >/dev/null ||
    fail cluster "Calico's CRDs were not established"
  wait_until cluster "Calico Available (tigerastatus/calico)" "$INSTALL_TIMEOUT" equals True condition tigerastatus/calico - Available
fi
k wait --for=condition=Ready nodes --all --timeout "${TIMEOUT}s" >/dev/null || fail cluster "the nodes did not become Ready"
pass cluster "$(k get nodes --no-headers | awk 'END { print NR }') nodes Ready ($( ((CREATED)) && echo created || echo reused))"

phase controllers "ingress-nginx $INGRESS_NGINX_CHART"
h repo add ingress-nginx https://kubernetes.github.io/ingress-nginx --force-update >/dev/null
h repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
# On kind the controller binds the control-plane node's ports 80/443, mapped
# to the host, so one replica there. A surge pod could never get those ports:
# the update strategy replaces the old pod first (maxSurge 0), so a re-run
# that changes the controller's template does not hang. --set-string: a node
# selector value must be the string "true".
h upgrade --install ingress-nginx ingress-nginx/ingress-nginx --version "$INGRESS_NGINX_CHART" \
  --namespace ingress-nginx --create-namespace \
  -f k8s/ingress-nginx-values.yaml \
  --set controller.replicaCount=1 \
  --set controller.minAvailable=0 \
  --set controller.hostPort.enabled=true \
  --set controller.service.type=ClusterIP \
  --set-json 'controller.updateStrategy={"type":"RollingUpdate","rollingUpdate":{"maxSurge":0,"maxUnavailable":1}}' \
  --set-string controller.nodeSelector.ingress-ready=true \
  --set-json 'controller.tolerations=[{"key":"node-role.kubernetes.io/control-plane","operator":"Exists","effect":"NoSchedule"}]' \
  --wait --timeout "${INSTALL_TIMEOUT}s" || fail controllers "ingress-nginx did not install"

phase controllers "kube-prometheus-stack $KUBE_PROMETHEUS_STACK_CHART (Prometheus Operator, Prometheus)"
# Select PodMonitors and PrometheusRules of every release, not only its own.
h upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack --version "$KUBE_PROMETHEUS_STACK_CHART" \
  --namespace monitoring --create-namespace \
  --set grafana.enabled=false \
  --set alertmanager.enabled=false \
  --set nodeExporter.enabled=false \
  --set prometheus.prometheusSpec.podMonitorSelectorNilUsesHelmValues=false \
  --set prometheus.prometheusSpec.serviceMonitorSelectorNilUsesHelmValues=false \
  --set prometheus.prometheusSpec.ruleSelectorNilUsesHelmValues=false \
  --set prometheus.prometheusSpec.scrapeInterval=10s \
  --wait --timeout "${INSTALL_TIMEOUT}s" || fail controllers "kube-prometheus-stack did not install"
k wait --for condition=established --timeout "${TIMEOUT}s" crd/podmonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com >/dev/null ||
  fail controllers "the Prometheus Operator CRDs were not established"
wait_until controllers "Prometheus to answer queries" "$TIMEOUT" promql_value 'vector(1)'

# The chart runs with its autoscaler as in production, whichever steps run:
# every run proves the metrics path (APIService Available, ScalingActive).
if [[ "$AUTOSCALER" == hpa ]]; then
  phase controllers "prometheus-adapter $PROMETHEUS_ADAPTER_CHART"
  h upgrade --install prometheus-adapter prometheus-community/prometheus-adapter --version "$PROMETHEUS_ADAPTER_CHART" \
    --namespace monitoring -f k8s/prometheus-adapter-values.yaml \
    --wait --timeout "${INSTALL_TIMEOUT}s" || fail controllers "prometheus-adapter did not install"
  wait_until controllers "APIService v1beta1.custom.metrics.k8s.io Available" "$TIMEOUT" \
    equals True condition apiservice/v1beta1.custom.metrics.k8s.io - Available
else
  phase controllers "KEDA $KEDA_CHART"
  h repo add kedacore https://kedacore.github.io/charts --force-update >/dev/null
  h upgrade --install keda kedacore/keda --version "$KEDA_CHART" \
    --namespace keda --create-namespace --wait --timeout "${INSTALL_TIMEOUT}s" || fail controllers "KEDA did not install"
  k wait --for condition=established --timeout "${TIMEOUT}s" crd/scaledobjects.keda.sh >/dev/null || fail controllers "KEDA's CRDs were not established"
  wait_until controllers "APIService v1beta1.external.metrics.k8s.io Available" "$TIMEOUT" \
    equals True condition apiservice/v1beta1.external.metrics.k8s.io - Available
fi

if ((GATEWAY)); then
  phase controllers "Envoy Gateway $ENVOY_GATEWAY_CHART"
  h upgrade --install eg oci://docker.io/envoyproxy/gateway-helm --version "$ENVOY_GATEWAY_CHART" \
    --namespace envoy-gateway-system --create-namespace --wait --timeout "${INSTALL_TIMEOUT}s" || fail controllers "Envoy Gateway did not install"
  k wait --for condition=established --timeout "${TIMEOUT}s" crd/gatewayclasses.gateway.networking.k8s.io crd/gateways.gateway.networking.k8s.io \
    crd/httproutes.gateway.networking.k8s.io crd/envoyproxies.gateway.envoyproxy.io >/dev/null || fail controllers "the Gateway API CRDs were not established"
  k apply -f k8s/envoy-gateway.yaml >/dev/null || fail controllers "k8s/envoy-gateway.yaml was refused"
  wait_until controllers "Gateway ws-echo Programmed" "$TIMEOUT" equals True condition gateway/ws-echo envoy-gateway-system Programmed
fi
pass controllers "ingress-nginx, kube-prometheus-stack, $( [[ $AUTOSCALER == hpa ]] && echo prometheus-adapter || echo KEDA)$( ((GATEWAY)) && echo ', Envoy Gateway') installed and answering"

phase image "image $IMAGE"
docker build -t "$IMAGE" . >&2 || fail image "docker build failed"
# `kind load docker-image` fails for some images on Docker's containerd image
# store (kubernetes-sigs/kind#3795); an archive works with either store.
docker save -o "$WORK/ws-echo.tar" "$IMAGE" || fail image "docker save failed"
kind load image-archive "$WORK/ws-echo.tar" --name "$CLUSTER" >&2 || fail image "kind load image-archive failed"
pass image "$IMAGE built and loaded into every node"

# ---------------------------------------------------------------- chart
chart_args=(
  --namespace "$NAMESPACE" --create-namespace
  --set image.repository=ws-echo --set "image.tag=$IMAGE_TAG" --set image.pullPolicy=Never
  --set ingress.enabled=true --set "ingress.hosts[0]=$INGRESS_HOST"
  --set metrics.podMonitor.enabled=true --set metrics.podMonitor.interval=5s --set metrics.podMonitor.scrapeTimeout=4s
  --set metrics.prometheusRule.enabled=true
  --set "replicaCount=$SCALE_MIN"
)
# A target the clients reach: with the chart's 5,000 per pod nothing would scale.
chart_args+=(--set "autoscaling.minReplicas=$SCALE_MIN" --set "autoscaling.maxReplicas=$SCALE_MAX"
  --set "autoscaling.targetConnectionsPerPod=$SCALE_TARGET"
  --set "autoscaling.scaleDown.stabilizationWindowSeconds=$SCALE_DOWN_WINDOW")
if [[ "$AUTOSCALER" == hpa ]]; then
  chart_args+=(--set autoscaling.enabled=true)
else
  chart_args+=(--set keda.enabled=true --set keda.pollingInterval=5)
fi
if ((NETWORK_POLICY)); then chart_args+=(--set networkPolicy.enabled=true); fi
if ((GATEWAY)); then
  chart_args+=(--set httpRoute.enabled=true --set 'httpRoute.parentRefs[0].name=ws-echo'
    --set 'httpRoute.parentRefs[0].namespace=envoy-gateway-system' --set 'httpRoute.parentRefs[0].sectionName=http')
  # Envoy Gateway runs its proxies in its own namespace.
  chart_args+=(--set-json 'networkPolicy.gatewayPeers=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"envoy-gateway-system"}},"podSelector":{"matchLabels":{"app.kubernetes.io/name":"envoy"}}}]')
fi
phase chart "chart: release $RELEASE in $NAMESPACE"
h upgrade --install "$RELEASE" ./chart "${chart_args[@]}" --wait --timeout "${INSTALL_TIMEOUT}s" >&2 || fail chart "helm upgrade --install of the chart failed"
h test "$RELEASE" --namespace "$NAMESPACE" --logs >&2 || fail chart "helm test failed: a client inside the cluster could not echo through the Service"
wait_until chart "Prometheus to scrape every pod" "$TIMEOUT" at_least "$SCALE_MIN" prometheus_targets_up
if [[ "$AUTOSCALER" == hpa ]]; then
  wait_until chart "prometheus-adapter to serve websocket_connections_active for every pod" "$TIMEOUT" at_least "$SCALE_MIN" custom_metric_pods
else
  wait_until chart "ScaledObject $DEPLOY Ready" "$TIMEOUT" equals True condition "scaledobject/$DEPLOY" "$NAMESPACE" Ready
fi
wait_until chart "HPA $DEPLOY ScalingActive (it reads the metric)" "$TIMEOUT" equals True condition "hpa/$DEPLOY" "$NAMESPACE" ScalingActive
if ((GATEWAY)); then
  wait_until chart "HTTPRoute $DEPLOY Accepted by the Gateway" "$TIMEOUT" equals True \
    k get "httproute/$DEPLOY" -n "$NAMESPACE" -o 'jsonpath={.status.parents[0].conditions[?(@.type=="Accepted")].status}'
fi
pass chart "installed, helm test passed, $(ready_pods) pods ready and scraped, the HPA reading websocket_connections_active"

# ---------------------------------------------------------------- steps
# rollout_under_load STEP URL: `kubectl rollout restart` while CLIENTS clients talk.
rollout_under_load() {
  local step="$1" url="$2" before old grace
  phase "$step" "$step: $CLIENTS clients on $url during kubectl rollout restart"
  old="$(ready_pods)"
  before="$(drain_event_count)"
  load_start "$step" "$url" "$CLIENTS"
  sleep "$WARMUP_SECONDS"
  load_alive "$step"
  k rollout restart "deployment/$DEPLOY" -n "$NAMESPACE" >&2 || fail "$step" "kubectl rollout restart failed"
  k rollout status "deployment/$DEPLOY" -n "$NAMESPACE" --timeout "${TIMEOUT}s" >&2 || fail "$step" "the rollout did not finish within ${TIMEOUT}s"
  # The last old pods still drain when the rollout reports done.
  grace="$(grace_seconds)"
  wait_until "$step" "the old pods to finish draining" "$((grace + 30))" no_terminating_pods
  sleep "$WARMUP_SECONDS"
  load_stop "$step"
  # Every client was on an old pod, so every client reconnected at least once.
  check_load "$step" restart "$CLIENTS"
  check_server "$step" "$before" "$old"
}

step_reload() {
  local step=reload before configured expected
  phase reload "reload: $CLIENTS clients on $INGRESS_URL while a new Ingress makes ingress-nginx reload"
  expected="$(sed -n "s/^ *worker-shutdown-timeout: *'\{0,1\}\([^']*\)'\{0,1\}$/\1/p" k8s/ingress-nginx-values.yaml)"
  configured="$(k get configmap ingress-nginx-controller -n ingress-nginx -o 'jsonpath={.data.worker-shutdown-timeout}')"
  [[ "$configured" == "$expected" ]] || fail "$step" "ingress-nginx runs with worker-shutdown-timeout '$configured', not k8s/ingress-nginx-values.yaml's '$expected'"
  load_start "$step" "$INGRESS_URL" "$CLIENTS"
  sleep "$WARMUP_SECONDS"
  before="$(reloads)"
  # A new host is a change ingress-nginx cannot apply without reloading nginx.
  k apply -f - >/dev/null <<EOF || fail "$step" "the second Ingress was refused"
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: $DEPLOY-reload-probe
  namespace: $NAMESPACE
spec:
  ingressClassName: nginx
  rules:
    - host: reload-probe.$INGRESS_HOST
      http:
        paths:
          - path: /echo
            pathType: Exact
            backend:
              service:
                name: $DEPLOY
                port:
                  name: ws
EOF
  wait_until "$step" "ingress-nginx to reload nginx" "$TIMEOUT" at_least "$((before + 1))" reloads
  sleep "$DWELL_SECONDS"
  load_stop "$step"
  k delete ingress "$DEPLOY-reload-probe" -n "$NAMESPACE" >/dev/null || fail "$step" "could not delete the second Ingress"
  check_load "$step" steady
  pass "$step" "ingress-nginx reloaded (worker-shutdown-timeout $configured) and no connection was cut"
}

step_netpol() {
  local step=netpol probe=ws-echo-netpol-probe phase
  phase netpol "netpol: a pod outside $NAMESPACE tries the WebSocket port"
  k delete pod "$probe" -n default --ignore-not-found >/dev/null
  k run "$probe" -n default --image="$IMAGE" --image-pull-policy=Never --restart=Never \
    --env="SELFTEST_URL=ws://$DEPLOY.$NAMESPACE.svc:8000/echo" --env=SELFTEST_MESSAGES=1 --env=SELFTEST_TIMEOUT_SECONDS=10 \
    --command -- node dist/app/src/selftest.js >/dev/null || fail "$step" "could not start the probe pod"
  probe_done() {
    phase="$(k get pod "$probe" -n default -o 'jsonpath={.status.phase}')"
    [[ "$phase" == Succeeded || "$phase" == Failed ]] || { echo "phase ${phase:-unknown}"; return 1; }
  }
  wait_until "$step" "the probe pod to finish" "$TIMEOUT" probe_done
  probe_done
  k logs "$probe" -n default >"$REPORT_DIR/netpol-probe.log" 2>&1 || true
  k delete pod "$probe" -n default --ignore-not-found >/dev/null
  if [[ "$phase" == Succeeded ]]; then
    fail "$step" "a pod in namespace default echoed through $DEPLOY:8000: the NetworkPolicy is not enforced"
  fi
  pass "$step" "a pod in namespace default could not open the WebSocket ($(tr '\n' ' ' <"$REPORT_DIR/netpol-probe.log" | cut -c1-160)); the ingress, Prometheus and helm test could"
}

step_autoscale() {
  local step=autoscale base=autoscale surge=autoscale-surge total want before removed
  total=$((CLIENTS + SCALE_SURGE_CLIENTS))
  want=$(((total + SCALE_TARGET - 1) / SCALE_TARGET))
  if ((want > SCALE_MAX)); then want=$SCALE_MAX; fi
  phase autoscale "autoscale ($AUTOSCALER): $CLIENTS clients, then $SCALE_SURGE_CLIENTS more; target $SCALE_TARGET per pod"
  ((want > SCALE_MIN)) || fail "$step" "$total clients at $SCALE_TARGET per pod ask for $want pods, not more than SCALE_MIN=$SCALE_MIN: raise SCALE_SURGE_CLIENTS"
  load_start "$base" "$INGRESS_URL" "$CLIENTS"
  sleep "$WARMUP_SECONDS"
  load_start "$surge" "$INGRESS_URL" "$SCALE_SURGE_CLIENTS"
  wait_until "$step" "the HPA to scale up to $want pods" "$TIMEOUT" at_least "$want" hpa_current
  k rollout status "deployment/$DEPLOY" -n "$NAMESPACE" --timeout "${TIMEOUT}s" >&2 || fail "$step" "the new pods did not become ready"
  pass "$step" "scaled up to $(hpa_current) pods for $total clients"
  # New pods start empty; the rebalancer moves clients to them (1012 + reconnect).
  wait_until "$step" "the rebalancer to fill the new pods (each pod at least half the mean)" "$TIMEOUT" balanced "$want"
  pass "$step" "rebalanced: $(per_pod_connections | e2e balance --pods "$want" --min-share 0.5)"
  load_alive "$base"
  before="$(drain_event_count)"
  load_stop "$surge"
  check_load "$surge" restart 0
  wait_until "$step" "the HPA to scale down to $SCALE_MIN pods" "$((TIMEOUT + SCALE_DOWN_WINDOW))" equals "$SCALE_MIN" hpa_current
  wait_until "$step" "the removed pods to finish draining" "$TIMEOUT" no_terminating_pods
  removed=$((want - SCALE_MIN))
  sleep "$WARMUP_SECONDS"
  load_stop "$base"
  check_load "$base" restart 0
  check_server "$step" "$before" "$removed"
}

step_drain() {
  local step=drain node min available replicas before status=0
  phase drain "drain: kubectl drain of a worker under load"
  replicas="$(ready_pods)"
  node="$(k get pods -n "$NAMESPACE" -l "$SELECTOR" -o 'jsonpath={.items[0].spec.nodeName}')"
  [[ -n "$node" ]] || fail "$step" "no ws-echo pod to find a node by"
  local on_node
  on_node="$(k get pods -n "$NAMESPACE" -l "$SELECTOR" --field-selector "spec.nodeName=$node" -o name | awk 'END { print NR }')"
  before="$(drain_event_count)"
  load_start "$step" "$INGRESS_URL" "$CLIENTS"
  sleep "$WARMUP_SECONDS"
  load_alive "$step"
  min="$replicas"
  k drain "$node" --ignore-daemonsets --delete-emptydir-data --timeout "${TIMEOUT}s" >"$REPORT_DIR/drain.log" 2>&1 &
  DRAIN_PID=$!
  # The PDB (maxUnavailable 1) must hold all along: sample the ready pods.
  while kill -0 "$DRAIN_PID" 2>/dev/null; do
    available="$(ready_pods)"
    if ((available < min)); then min=$available; fi
    sleep "$POLL_SECONDS"
  done
  wait "$DRAIN_PID" || status=$?
  DRAIN_PID=""
  ((status == 0)) || fail "$step" "kubectl drain $node failed ($(exit_text "$status")): $(tail -n 3 "$REPORT_DIR/drain.log" | tr '\n' ' ')"
  wait_until "$step" "$replicas ready pods again" "$TIMEOUT" at_least "$replicas" ready_pods
  wait_until "$step" "the evicted pods to finish draining" "$TIMEOUT" no_terminating_pods
  sleep "$WARMUP_SECONDS"
  load_stop "$step"
  k uncordon "$node" >/dev/null || fail "$step" "kubectl uncordon $node failed"
  ((min >= replicas - 1)) || fail "$step" "only $min of $replicas pods were ready during the drain: the PodDisruptionBudget (maxUnavailable 1) did not hold"
  pass "$step" "drained $node ($on_node ws-echo pods): never fewer than $min of $replicas pods ready"
  check_load "$step" restart 1
  # The drain may evict Prometheus (its data is an emptyDir): the Events are the server's word here.
  check_server "$step" "$before" "$on_node" events-only
}

for step in $ALL_STEPS; do
  wants "$step" || continue
  case "$step" in
    rollout) rollout_under_load rollout "$INGRESS_URL" ;;
    reload) step_reload ;;
    netpol) step_netpol ;;
    autoscale) step_autoscale ;;
    gateway) rollout_under_load gateway "$GATEWAY_URL" ;;
    drain) step_drain ;;
  esac
done
say "passed: every step ($STEPS); report in $REPORT_DIR"
