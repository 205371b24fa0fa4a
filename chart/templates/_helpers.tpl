{{/*
Chart name, or nameOverride; cut to 63 characters, the DNS label limit.
*/}}
{{- define "ws-echo.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified name used as the prefix of every resource: the release name,
plus the chart name unless the release name already contains it. Cut to 63
characters because some Kubernetes name fields are DNS labels.
*/}}
{{- define "ws-echo.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "ws-echo.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels on every resource: the chart's, with commonLabels over them (but
never over the selector labels, which ws-echo.validate keeps out of
commonLabels).
*/}}
{{- define "ws-echo.labels" -}}
{{- include "ws-echo.labelsWith" (dict "context" .) }}
{{- end }}

{{/*
ws-echo.labels with an object's own labels (`labels`: a monitor's labels
that Prometheus selects by, a component) over commonLabels. Call with
(dict "context" $ "labels" <map>).
*/}}
{{- define "ws-echo.labelsWith" -}}
{{- $c := .context }}
{{- $chart := dict "helm.sh/chart" (include "ws-echo.chart" $c) "app.kubernetes.io/version" ($c.Values.image.tag | default $c.Chart.AppVersion | toString) "app.kubernetes.io/managed-by" $c.Release.Service "app.kubernetes.io/part-of" "ws-echo" }}
{{- toYaml (merge (include "ws-echo.selectorLabels" $c | fromYaml) (deepCopy (.labels | default dict)) (deepCopy ($c.Values.commonLabels | default dict)) $chart) }}
{{- end }}

{{/*
Labels of the service's pods: the selector labels, podLabels, then
commonLabels.
*/}}
{{- define "ws-echo.podLabels" -}}
{{- toYaml (merge (include "ws-echo.selectorLabels" . | fromYaml) (deepCopy (.Values.podLabels | default dict)) (deepCopy (.Values.commonLabels | default dict))) }}
{{- end }}

{{/*
An object's `annotations:` block: its own annotations (`annotations`) over
commonAnnotations, values as strings; nothing when there are none. Call with
(dict "context" $ "annotations" <map>).
*/}}
{{- define "ws-echo.annotations" -}}
{{- $all := dict }}
{{- range $key, $value := merge (deepCopy (.annotations | default dict)) (deepCopy (.context.Values.commonAnnotations | default dict)) }}
{{- $_ := set $all $key (toString $value) }}
{{- end }}
{{- with $all }}
{{- "annotations:" }}
{{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Labels that select the service's pods. Never change them in an upgrade: a
Deployment's selector is immutable.
*/}}
{{- define "ws-echo.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ws-echo.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Name of the service account the pods run as.
*/}}
{{- define "ws-echo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ws-echo.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: [global.imageRegistry/]repository, then @digest when one is
set (the tag is then ignored: the digest names the image exactly), else
:tag, which defaults to the chart's appVersion.
*/}}
{{- define "ws-echo.image" -}}
{{- $repository := .Values.image.repository }}
{{- with trimSuffix "/" ((.Values.global | default dict).imageRegistry | default "") }}
{{- $repository = printf "%s/%s" . $repository }}
{{- end }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
User containers (initContainers, extraContainers) as a YAML list: each one
without a securityContext gets the chart's, so that the pod still meets the
restricted Pod Security Standard. Call with (dict "context" $ "containers" <list>).
*/}}
{{- define "ws-echo.userContainers" -}}
{{- $containers := list }}
{{- range .containers }}
{{- $container := deepCopy . }}
{{- if not (hasKey $container "securityContext") }}
{{- $_ := set $container "securityContext" $.context.Values.securityContext }}
{{- end }}
{{- $containers = append $containers $container }}
{{- end }}
{{- toYaml $containers }}
{{- end }}

{{/*
A Prometheus duration ("1m30s", "500ms") in seconds, for comparing two.
*/}}
{{- define "ws-echo.durationSeconds" -}}
{{- $seconds := 0.0 }}
{{- $unit := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0 "w" 604800.0 "y" 31536000.0 }}
{{- range regexFindAll "[0-9]+(ms|s|m|h|d|w|y)" (toString .) -1 }}
{{- $number := regexFind "^[0-9]+" . }}
{{- $seconds = addf $seconds (mulf (float64 $number) (get $unit (trimPrefix $number .))) }}
{{- end }}
{{- $seconds }}
{{- end }}

{{/*
An alert's runbook_url: metrics.prometheusRule.runbookBaseUrl (else the
runbook in the chart's source repository) and the anchor GitHub gives the
alert's heading in docs/RUNBOOK.md, its name in lower case. Call with
(dict "context" $ "alert" "WsEcho…").
*/}}
{{- define "ws-echo.runbookUrl" -}}
{{- $base := .context.Values.metrics.prometheusRule.runbookBaseUrl }}
{{- if not $base }}
{{- if not .context.Chart.Home }}
{{- fail "metrics.prometheusRule.runbookBaseUrl is empty and Chart.yaml has no home to find docs/RUNBOOK.md in: set runbookBaseUrl to where your runbook is served." }}
{{- end }}
{{- $base = printf "%s/blob/main/docs/RUNBOOK.md" (trimSuffix "/" .context.Chart.Home) }}
{{- end }}
{{- printf "%s#%s" $base (lower .alert) }}
{{- end }}

{{/*
A number as the service's config parser reads it: whole numbers without an
exponent (values.yaml numbers arrive as float64, which prints 1048576 as
1.048576e+06), fractions as they are ("0.5").
*/}}
{{- define "ws-echo.number" -}}
{{- if eq (float64 .) (floor .) }}{{ int64 . }}{{ else }}{{ float64 . }}{{ end }}
{{- end }}

{{/*
terminationGracePeriodSeconds: preStop sleep + drain window + close timeout
+ margin, rounded up. The drain numbers reach the container from the same
values, so the kubelet never kills a pod that is still draining.
*/}}
{{- define "ws-echo.terminationGracePeriodSeconds" -}}
{{- $d := .Values.drain }}
{{- ceil (addf $d.preStop.seconds $d.windowSeconds $d.closeTimeoutSeconds $d.marginSeconds) | int64 }}
{{- end }}

{{/*
The preStop action rendered: sleep, exec or none. It depends on the values
only, never on the cluster's version, so a cluster upgrade does not change the
pod template (which would restart every pod at the next `helm upgrade`).
`auto` is kept for values files written for earlier chart versions and means
`sleep`.
*/}}
{{- define "ws-echo.preStopMode" -}}
{{- $p := .Values.drain.preStop }}
{{- if eq (float64 $p.seconds) 0.0 }}none
{{- else if eq $p.mode "exec" }}exec
{{- else }}sleep
{{- end }}
{{- end }}

{{/*
The container's environment: the chart's variables (app/src/settings.ts has
their meaning), then `extraEnv`. An `extraEnv` entry with the name of a
chart variable replaces it: server-side apply refuses a list with two
entries of one name. The drain numbers come from the same values as
terminationGracePeriodSeconds.
*/}}
{{- define "ws-echo.containerEnv" -}}
{{- $user := dict }}
{{- range .Values.extraEnv }}
{{- if hasKey $user .name }}
{{- fail (printf "extraEnv lists %s twice: the API server refuses a container env with two entries of one name. Keep one." .name) }}
{{- end }}
{{- $_ := set $user .name true }}
{{- end }}
{{- $env := list }}
{{- range (include "ws-echo.chartEnv" . | fromYamlArray) }}
{{- if not (hasKey $user .name) }}
{{- $env = append $env . }}
{{- end }}
{{- end }}
{{- toYaml (concat $env .Values.extraEnv) }}
{{- end }}

{{/*
The chart's own variables, before extraEnv may replace some of them.
*/}}
{{- define "ws-echo.chartEnv" -}}
- name: PORT
  value: {{ .Values.config.port | int64 | quote }}
- name: METRICS_PORT
  value: {{ .Values.config.metricsPort | int64 | quote }}
- name: WS_PATH
  value: {{ .Values.config.wsPath | quote }}
- name: MAX_CONNECTIONS
  value: {{ include "ws-echo.number" .Values.config.maxConnections | quote }}
- name: MAX_PAYLOAD_BYTES
  value: {{ include "ws-echo.number" .Values.config.maxPayloadBytes | quote }}
- name: BACKPRESSURE_BYTES
  value: {{ include "ws-echo.number" .Values.config.backpressureBytes | quote }}
- name: MAX_MESSAGE_FRAGMENTS
  value: {{ include "ws-echo.number" .Values.config.maxMessageFragments | quote }}
- name: MESSAGE_TIMEOUT_SECONDS
  value: {{ include "ws-echo.number" .Values.config.messageTimeoutSeconds | quote }}
{{- if ne .Values.config.memoryBudgetBytes nil }}
- name: MEMORY_BUDGET_BYTES
  value: {{ include "ws-echo.number" .Values.config.memoryBudgetBytes | quote }}
{{- end }}
{{- if (.Values.resources.limits | default dict).memory }}
- name: MEMORY_LIMIT_BYTES
  valueFrom:
    resourceFieldRef:
      resource: limits.memory
{{- end }}
- name: ALLOWED_ORIGINS
  value: {{ .Values.config.allowedOrigins | quote }}
- name: HEARTBEAT_INTERVAL_SECONDS
  value: {{ include "ws-echo.number" .Values.config.heartbeatIntervalSeconds | quote }}
- name: HTTP_HEADERS_TIMEOUT_SECONDS
  value: {{ include "ws-echo.number" .Values.config.httpHeadersTimeoutSeconds | quote }}
- name: LOG_LEVEL
  value: {{ .Values.config.logLevel | quote }}
- name: DRAIN_WINDOW_SECONDS
  value: {{ include "ws-echo.number" .Values.drain.windowSeconds | quote }}
- name: DRAIN_CLOSE_TIMEOUT_SECONDS
  value: {{ include "ws-echo.number" .Values.drain.closeTimeoutSeconds | quote }}
- name: KUBERNETES_INTEGRATION
  value: {{ ternary "on" "off" .Values.kubernetesIntegration.enabled | quote }}
- name: POD_DELETION_COST_INTERVAL_SECONDS
  value: {{ include "ws-echo.number" .Values.kubernetesIntegration.deletionCostIntervalSeconds | quote }}
- name: REBALANCE
  value: {{ ternary "on" "off" .Values.rebalance.enabled | quote }}
{{- if include "ws-echo.fleetView" . }}
- name: REBALANCE_POD_SELECTOR
  value: {{ include "ws-echo.selectorString" . | quote }}
{{- end }}
- name: REBALANCE_TARGET_CONNECTIONS
  value: {{ include "ws-echo.rebalanceTarget" . | quote }}
- name: REBALANCE_TOLERANCE
  value: {{ include "ws-echo.number" .Values.rebalance.tolerance | quote }}
- name: REBALANCE_RATE
  value: {{ include "ws-echo.number" .Values.rebalance.rate | quote }}
- name: REBALANCE_INTERVAL_SECONDS
  value: {{ include "ws-echo.number" .Values.rebalance.intervalSeconds | quote }}
- name: REBALANCE_COOLDOWN_SECONDS
  value: {{ include "ws-echo.number" .Values.rebalance.cooldownSeconds | quote }}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
- name: POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
{{- end }}

{{/*
minReadySeconds: `auto` is the grace period, so that an old pod has finished
draining before the Deployment removes the next one (terminating pods do not
count against maxSurge or maxUnavailable).
*/}}
{{- define "ws-echo.minReadySeconds" -}}
{{- if eq (toString .Values.minReadySeconds) "auto" }}
{{- include "ws-echo.terminationGracePeriodSeconds" . }}
{{- else }}
{{- .Values.minReadySeconds | int64 }}
{{- end }}
{{- end }}

{{/*
HPA scale-down period: one pod per grace period at least, so a pod removed
by a scale-down has finished draining before the next one goes. The HPA
caps a policy period at 1800 s.
*/}}
{{- define "ws-echo.scaleDownPeriodSeconds" -}}
{{- $grace := include "ws-echo.terminationGracePeriodSeconds" . | int64 }}
{{- min 1800 (max $grace (.Values.autoscaling.scaleDown.periodSeconds | int64)) }}
{{- end }}

{{/*
HPA behavior, shared by the HPA and KEDA's HPA config.
*/}}
{{- define "ws-echo.hpaBehavior" -}}
scaleUp:
  stabilizationWindowSeconds: {{ .Values.autoscaling.scaleUp.stabilizationWindowSeconds | int64 }}
  selectPolicy: Max
  policies:
    - type: Percent
      value: {{ .Values.autoscaling.scaleUp.percent | int64 }}
      periodSeconds: {{ .Values.autoscaling.scaleUp.periodSeconds | int64 }}
    - type: Pods
      value: {{ .Values.autoscaling.scaleUp.pods | int64 }}
      periodSeconds: {{ .Values.autoscaling.scaleUp.periodSeconds | int64 }}
scaleDown:
  stabilizationWindowSeconds: {{ .Values.autoscaling.scaleDown.stabilizationWindowSeconds | int64 }}
  selectPolicy: Min
  policies:
    - type: Pods
      value: 1
      periodSeconds: {{ include "ws-echo.scaleDownPeriodSeconds" . }}
{{- end }}

{{/*
PromQL label matchers for this release's pods, shared by the KEDA trigger and
the alerts. Prometheus Operator's PodMonitor and ServiceMonitor both attach
`namespace` and `pod` labels.
*/}}
{{- define "ws-echo.promSelector" -}}
namespace="{{ .Release.Namespace }}",pod=~"{{ include "ws-echo.fullname" . }}-.*"
{{- end }}

{{/*
The Deployment's spec.replicas, or nothing. Without an autoscaler:
replicaCount. With one, the autoscaler owns the count, and the chart renders
the live Deployment's count (`lookup`, which `helm upgrade` and `helm install`
answer from the cluster): a manifest without spec.replicas makes Helm 3's
three-way merge and Helm 4's server-side apply reset it to 1, so turning an
autoscaler on would drain all pods but one at once. Where there is no live
Deployment (a fresh install, or `helm template` and the GitOps tools built on
it), it renders nothing and the autoscaler sets the count.
*/}}
{{- define "ws-echo.replicas" -}}
{{- if not (include "ws-echo.autoscaled" .) }}
{{- .Values.replicaCount | int64 }}
{{- else }}
{{- $live := lookup "apps/v1" "Deployment" .Release.Namespace (include "ws-echo.fullname" .) }}
{{- with (($live).spec).replicas }}
{{- . | int64 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"true" when the ValidatingAdmissionPolicy that confines the service
account's pod patches is rendered: with the Kubernetes integration and the
chart's RBAC, and where the cluster serves the API (`auto`; GA in 1.30) or
when asked to (`true`).
*/}}
{{- define "ws-echo.admissionPolicy" -}}
{{- $mode := toString .Values.rbac.admissionPolicy }}
{{- $served := .Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy" }}
{{- if and .Values.kubernetesIntegration.enabled .Values.rbac.create (or (eq $mode "true") (and (eq $mode "auto") $served)) }}true{{ end }}
{{- end }}

{{/*
Whether an autoscaler owns the replica count.
*/}}
{{- define "ws-echo.autoscaled" -}}
{{- if or .Values.autoscaling.enabled .Values.keda.enabled }}true{{ end }}
{{- end }}

{{/*
"true" when the rebalancer reads the fleet from the Kubernetes API (it then
needs the integration's token and `list pods`), empty otherwise.
*/}}
{{- define "ws-echo.fleetView" -}}
{{- if and .Values.rebalance.enabled .Values.rebalance.fleetView .Values.kubernetesIntegration.enabled }}true{{ end }}
{{- end }}

{{/*
The selector labels as an equality label selector ("k=v,k=v"), for the
rebalancer's pod list: the same pods the Deployment selects.
*/}}
{{- define "ws-echo.selectorString" -}}
{{- $pairs := list }}
{{- range $key, $value := include "ws-echo.selectorLabels" . | fromYaml }}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/*
The rebalancer's fallback share: rebalance.targetConnections, else the
autoscaling target when an autoscaler runs, else 0 (none).
*/}}
{{- define "ws-echo.rebalanceTarget" -}}
{{- if gt (.Values.rebalance.targetConnections | int64) 0 -}}
{{ .Values.rebalance.targetConnections | int64 }}
{{- else if include "ws-echo.autoscaled" . -}}
{{ .Values.autoscaling.targetConnectionsPerPod | int64 }}
{{- else -}}
0
{{- end }}
{{- end }}

{{/*
A Kubernetes memory quantity ("512Mi", "1Gi", "500M", "1e9", "536870912")
in bytes, as a whole number; fails on a form no memory limit means.
*/}}
{{- define "ws-echo.bytes" -}}
{{- if or (kindIs "float64" .) (kindIs "int64" .) (kindIs "int" .) }}
{{- int64 . }}
{{- else }}
{{- $q := toString . }}
{{- if regexMatch "^[0-9]+(\\.[0-9]+)?m$" $q }}
{{- fail (printf "resources.limits.memory is %q: the suffix m means thousandths of a byte. Did you mean %sMi?" $q (trimSuffix "m" $q)) }}
{{- end }}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?((Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)|[eE][0-9]+)?$" $q) }}
{{- fail (printf "resources.limits.memory is %q: write it as a number of bytes or with a suffix (Ki, Mi, Gi, Ti, k, M, G, T), e.g. 512Mi." $q) }}
{{- end }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?" $q }}
{{- $suffix := trimPrefix $number $q }}
{{- $factor := 1.0 }}
{{- if regexMatch "^[eE]" $suffix }}
{{- range until (int (trimPrefix "e" (lower $suffix))) }}{{ $factor = mulf $factor 10 }}{{ end }}
{{- else }}
{{- $factor = get (dict "" 1 "Ki" 1024 "Mi" 1048576 "Gi" 1073741824 "Ti" 1099511627776 "Pi" 1125899906842624 "Ei" 1152921504606846976 "k" 1000 "M" 1000000 "G" 1000000000 "T" 1000000000000 "P" 1000000000000000 "E" 1000000000000000000) $suffix }}
{{- end }}
{{- int64 (ceil (mulf (float64 $number) $factor)) }}
{{- end }}
{{- end }}

{{/*
Bytes as MiB with one decimal, for messages.
*/}}
{{- define "ws-echo.mib" -}}
{{- printf "%.1f MiB" (divf . 1048576) }}
{{- end }}

{{/*
The memory budget as the service derives it (app/src/memory-budget.ts): 60 %
of what the memory limit leaves after 64 MiB for the runtime and 8 KiB per
MAX_CONNECTIONS; config.memoryBudgetBytes when set. Fails when the values
cannot work together, naming them, so a too-small limit is refused at
`helm install` rather than by a pod in CrashLoopBackOff. Renders the budget
(0: off or no limit to derive it from).
*/}}
{{- define "ws-echo.memoryBudget" -}}
{{- $c := .Values.config }}
{{- $allowance := add (int64 $c.backpressureBytes) (mul 2 (int64 $c.maxPayloadBytes)) }}
{{- $reserve := add 67108864 (mul 8192 (int64 $c.maxConnections)) }}
{{- $memory := (.Values.resources.limits | default dict).memory }}
{{- $limit := 0 }}
{{- if $memory }}{{ $limit = include "ws-echo.bytes" $memory | int64 }}{{ end }}
{{- if ne $c.memoryBudgetBytes nil }}
{{- $budget := int64 $c.memoryBudgetBytes }}
{{- if and (gt $budget 0) $limit (gt $budget (sub $limit $reserve)) }}
{{- fail (printf "config.memoryBudgetBytes (%s) is more than resources.limits.memory (%s) leaves after the runtime and config.maxConnections (%d) idle connections (%s): lower it, raise the limit or lower maxConnections." (include "ws-echo.mib" $budget) $memory (int64 $c.maxConnections) (include "ws-echo.mib" $reserve)) }}
{{- end }}
{{- if and (gt $budget 0) (lt $budget $allowance) }}
{{- fail (printf "config.memoryBudgetBytes (%s) is less than one connection may hold (%s: config.backpressureBytes + 2 × config.maxPayloadBytes): raise it or lower those." (include "ws-echo.mib" $budget) (include "ws-echo.mib" $allowance)) }}
{{- end }}
{{- $budget }}
{{- else if $limit }}
{{- $budget := int64 (floor (mulf (sub $limit $reserve) 0.6)) }}
{{- if lt $budget $allowance }}
{{- fail (printf "resources.limits.memory (%s) is too small for these values: the runtime and config.maxConnections (%d) idle connections need %s, which leaves a memory budget of %s for what clients hold, less than one connection may hold (%s: config.backpressureBytes + 2 × config.maxPayloadBytes). Raise the limit, lower maxConnections, maxPayloadBytes or backpressureBytes, or set config.memoryBudgetBytes." $memory (int64 $c.maxConnections) (include "ws-echo.mib" $reserve) (include "ws-echo.mib" (max 0 $budget)) (include "ws-echo.mib" $allowance)) }}
{{- end }}
{{- $budget }}
{{- else -}}
0
{{- end }}
{{- end }}

{{/*
The pod's securityContext: podSecurityContext, with the socket buffer sysctls
added when socketBuffers says so. A sysctl the user sets in
podSecurityContext.sysctls wins over ours of the same name.
*/}}
{{- define "ws-echo.podSecurityContext" -}}
{{- $context := deepCopy .Values.podSecurityContext }}
{{- if .Values.socketBuffers.enabled }}
{{- $sysctls := $context.sysctls | default list }}
{{- $names := list }}
{{- range $sysctls }}{{ $names = append $names .name }}{{ end }}
{{- range $name, $value := dict "net.ipv4.tcp_rmem" .Values.socketBuffers.tcpRmem "net.ipv4.tcp_wmem" .Values.socketBuffers.tcpWmem }}
{{- if not (has $name $names) }}
{{- $sysctls = append $sysctls (dict "name" $name "value" $value) }}
{{- end }}
{{- end }}
{{- $_ := set $context "sysctls" $sysctls }}
{{- end }}
{{- toYaml $context }}
{{- end }}

{{/*
Checks the schema cannot express (cross-field rules). Each message says what
is wrong and what to do, since `helm install` shows nothing else.
*/}}
{{- define "ws-echo.validate" -}}
{{- $_ := include "ws-echo.memoryBudget" . }}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are both true: two autoscalers would fight over the replica count. Enable one: the HPA (needs prometheus-adapter) or KEDA (queries Prometheus itself)." }}
{{- end }}
{{- $mu := toString .Values.rollingUpdate.maxUnavailable }}
{{- if and (not (has $mu (list "0" "0%"))) (not .Values.rollingUpdate.allowUnavailable) }}
{{- fail (printf "rollingUpdate.maxUnavailable is %s, but this chart promises that a rollout drops no client: a pod taken away before its replacement is ready leaves its reconnecting clients nowhere to go. Keep it 0 (use maxSurge for speed), or set rollingUpdate.allowUnavailable=true to accept the risk." $mu) }}
{{- end }}
{{- if and (has $mu (list "0" "0%")) (has (toString .Values.rollingUpdate.maxSurge) (list "0" "0%")) }}
{{- fail "rollingUpdate.maxSurge and rollingUpdate.maxUnavailable are both 0: a rollout could never make progress. Give maxSurge at least 1." }}
{{- end }}
{{- if eq (int64 .Values.config.port) (int64 .Values.config.metricsPort) }}
{{- fail (printf "config.port and config.metricsPort are both %d: metrics must never be served on the public port. Pick two different ports." (int64 .Values.config.port)) }}
{{- end }}
{{- if gt (int64 .Values.autoscaling.minReplicas) (int64 .Values.autoscaling.maxReplicas) }}
{{- fail (printf "autoscaling.minReplicas (%d) is greater than autoscaling.maxReplicas (%d)." (int64 .Values.autoscaling.minReplicas) (int64 .Values.autoscaling.maxReplicas)) }}
{{- end }}
{{- if and (include "ws-echo.autoscaled" .) (ge (float64 .Values.autoscaling.targetConnectionsPerPod) (float64 .Values.config.maxConnections)) }}
{{- fail (printf "autoscaling.targetConnectionsPerPod (%s) must be below config.maxConnections (%s): pods would refuse clients before the autoscaler adds capacity." (include "ws-echo.number" .Values.autoscaling.targetConnectionsPerPod) (include "ws-echo.number" .Values.config.maxConnections)) }}
{{- end }}
{{- if and .Values.metrics.podMonitor.enabled .Values.metrics.serviceMonitor.enabled }}
{{- fail "metrics.podMonitor.enabled and metrics.serviceMonitor.enabled are both true: every pod would be scraped twice and the alerts would count double. Enable one (the PodMonitor sees draining pods)." }}
{{- end }}
{{- $hb := float64 .Values.config.heartbeatIntervalSeconds }}
{{- if and .Values.ingress.enabled (gt $hb 0.0) (le (float64 .Values.ingress.proxyTimeoutSeconds) $hb) }}
{{- fail (printf "ingress.proxyTimeoutSeconds (%s) must be longer than config.heartbeatIntervalSeconds (%s): nginx would cut idle sockets between two pings." (include "ws-echo.number" .Values.ingress.proxyTimeoutSeconds) (include "ws-echo.number" .Values.config.heartbeatIntervalSeconds)) }}
{{- end }}
{{- if and (include "ws-echo.autoscaled" .) (not (or .Values.metrics.podMonitor.enabled .Values.metrics.serviceMonitor.enabled .Values.autoscaling.metricsScrapedElsewhere)) }}
{{- fail "an autoscaler is on (autoscaling.enabled or keda.enabled), but nothing scrapes websocket_connections_active: the autoscaler would never see a connection and never scale. Enable metrics.podMonitor (recommended) or metrics.serviceMonitor, or set autoscaling.metricsScrapedElsewhere=true if your Prometheus scrapes the pods another way." }}
{{- end }}
{{- if and .Values.kubernetesIntegration.enabled (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "kubernetesIntegration.enabled is true and serviceAccount.create is false, but serviceAccount.name is empty: the pods would run as the namespace's default service account with a token that may patch and list pods, and so would every other pod using it. Name the service account to use (serviceAccount.name), let the chart create one (serviceAccount.create=true), or turn the integration off." }}
{{- end }}
{{- include "ws-echo.validateDisruptionBudget" . }}
{{- range $selector := list "app.kubernetes.io/name" "app.kubernetes.io/instance" }}
{{- if hasKey ($.Values.commonLabels | default dict) $selector }}
{{- fail (printf "commonLabels sets %s, one of the labels that select the pods: a Deployment's selector cannot change after install, and the Service and the PodDisruptionBudget would stop finding the pods. Remove it from commonLabels (nameOverride changes the name)." $selector) }}
{{- end }}
{{- end }}
{{- range $kind := list "podMonitor" "serviceMonitor" }}
{{- $m := get $.Values.metrics $kind }}
{{- if and $m.enabled (gt (include "ws-echo.durationSeconds" $m.scrapeTimeout | float64) (include "ws-echo.durationSeconds" $m.interval | float64)) }}
{{- fail (printf "metrics.%s.scrapeTimeout (%s) is longer than metrics.%s.interval (%s): Prometheus refuses a scrape timeout above the scrape interval. Shorten the timeout or lengthen the interval." $kind $m.scrapeTimeout $kind $m.interval) }}
{{- end }}
{{- end }}
{{- $names := list "ws-echo" }}
{{- range concat (.Values.initContainers | default list) (.Values.extraContainers | default list) }}
{{- if has .name $names }}
{{- fail (printf "initContainers and extraContainers name a container %q twice (ws-echo is the service's own): every container of a pod needs a name of its own. Rename it." .name) }}
{{- end }}
{{- $names = append $names .name }}
{{- end }}
{{- if and .Values.ingress.enabled (eq .Values.ingress.affinity "hash") .Values.rebalance.enabled }}
{{- fail "ingress.affinity=hash and rebalance.enabled=true do not go together: ingress-nginx's hash balancer sends every retry and every reconnect of a client to the same pod, so the clients a pod sheds come straight back and a refused upgrade is never retried elsewhere. Use ingress.affinity=cookie (browsers) or none, or set rebalance.enabled=false." }}
{{- end }}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.enabled is true but httpRoute.parentRefs is empty: name the Gateway to attach to, e.g. --set httpRoute.parentRefs[0].name=my-gateway." }}
{{- end }}
{{- end }}

{{/*
"true" when the PodDisruptionBudget is rendered: enabled, and more than one
replica or an autoscaler (with one pod it would only block node drains).
*/}}
{{- define "ws-echo.disruptionBudget" -}}
{{- if and .Values.podDisruptionBudget.enabled (or (include "ws-echo.autoscaled" .) (gt (int64 .Values.replicaCount) 1)) }}true{{ end }}
{{- end }}

{{/*
podDisruptionBudget: exactly one of maxUnavailable and minAvailable, and one
that leaves a pod evictable, or every node drain would block forever.
minAvailable is compared with the fewest pods the Deployment may have:
replicaCount, or autoscaling.minReplicas with an autoscaler (a percentage
rounded up, as the disruption controller does).
*/}}
{{- define "ws-echo.validateDisruptionBudget" -}}
{{- $pdb := .Values.podDisruptionBudget }}
{{- if include "ws-echo.disruptionBudget" . }}
{{- $max := include "ws-echo.disruptionField" $pdb.maxUnavailable }}
{{- $min := include "ws-echo.disruptionField" $pdb.minAvailable }}
{{- if and $max $min }}
{{- fail (printf "podDisruptionBudget.maxUnavailable (%s) and podDisruptionBudget.minAvailable (%s) are both set, and a PodDisruptionBudget takes one. To use minAvailable, set podDisruptionBudget.maxUnavailable to \"\"." $max $min) }}
{{- end }}
{{- if not (or $max $min) }}
{{- fail "podDisruptionBudget.maxUnavailable and podDisruptionBudget.minAvailable are both empty: set one (maxUnavailable 1 is one node drain at a time), or turn the budget off with podDisruptionBudget.enabled=false." }}
{{- end }}
{{- if has $max (list "0" "0%") }}
{{- fail "podDisruptionBudget.maxUnavailable is 0: no pod could ever be evicted, so every node drain would block forever. Use 1 (one drain at a time) or turn the budget off with podDisruptionBudget.enabled=false." }}
{{- end }}
{{- if $min }}
{{- $autoscaled := eq (include "ws-echo.autoscaled" .) "true" }}
{{- $fewest := ternary .Values.autoscaling.minReplicas .Values.replicaCount $autoscaled | int64 }}
{{- $kept := 0 }}
{{- if hasSuffix "%" $min }}
{{- $kept = ceil (divf (mulf (trimSuffix "%" $min | float64) $fewest) 100) | int64 }}
{{- else }}
{{- $kept = $min | int64 }}
{{- end }}
{{- if ge $kept $fewest }}
{{- fail (printf "podDisruptionBudget.minAvailable (%s) keeps %d of the %d pods the Deployment may have (%s) available: no pod could ever be evicted, so every node drain would block forever. Lower minAvailable, or use maxUnavailable." $min $kept $fewest (ternary "autoscaling.minReplicas" "replicaCount" $autoscaled)) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A PodDisruptionBudget field as text: "" when unset ("" or null), else the
number or percentage.
*/}}
{{- define "ws-echo.disruptionField" -}}
{{- if ne . nil }}{{ if kindIs "string" . }}{{ . }}{{ else }}{{ int64 . }}{{ end }}{{ end }}
{{- end }}

{{/*
An int-or-string field (maxSurge: 1 or "25%"): numbers as integers, strings quoted.
*/}}
{{- define "ws-echo.intOrString" -}}
{{- if kindIs "string" . }}{{ . | quote }}{{ else }}{{ int64 . }}{{ end }}
{{- end }}

{{/*
Labels of the helm test pod. Not the selector labels: the Service must not
route clients to it.
*/}}
{{- define "ws-echo.testSelectorLabels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: helm-test
{{- end }}

{{/*
Gateway API SessionPersistence from httpRoute.sessionPersistence, the same
wherever it is attached, in the shape of the installed CRDs: Gateway API
v1.7 made it a union (`cookie.name` or `header.name`) where earlier releases
had `sessionName`.
*/}}
{{- define "ws-echo.sessionPersistence" -}}
{{- $sp := .sessionPersistence -}}
type: {{ $sp.type }}
{{- if semverCompare ">=1.7.0-0" .crdsVersion }}
{{- if eq $sp.type "Cookie" }}
cookie:
  name: {{ $sp.sessionName | quote }}
{{- else }}
header:
  name: {{ $sp.sessionName | quote }}
{{- end }}
{{- else }}
sessionName: {{ $sp.sessionName | quote }}
{{- end }}
{{- with $sp.absoluteTimeout }}
absoluteTimeout: {{ . | quote }}
{{- end }}
{{- end }}
