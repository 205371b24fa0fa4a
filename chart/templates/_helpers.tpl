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
Labels on every resource.
*/}}
{{- define "ws-echo.labels" -}}
helm.sh/chart: {{ include "ws-echo.chart" . }}
{{ include "ws-echo.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ws-echo
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
Image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "ws-echo.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
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
The preStop action actually rendered: sleep, exec or none. `auto` picks the
native sleep action from Kubernetes 1.30, where PodLifecycleSleepAction is
beta and on by default (alpha in 1.29, GA in 1.34).
*/}}
{{- define "ws-echo.preStopMode" -}}
{{- $p := .Values.drain.preStop }}
{{- if eq (float64 $p.seconds) 0.0 }}none
{{- else if ne $p.mode "auto" }}{{ $p.mode }}
{{- else if semverCompare ">=1.30.0-0" .Capabilities.KubeVersion.Version }}sleep
{{- else }}exec
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
Checks the schema cannot express (cross-field rules). Each message says what
is wrong and what to do, since `helm install` shows nothing else.
*/}}
{{- define "ws-echo.validate" -}}
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
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "httpRoute.enabled is true but httpRoute.parentRefs is empty: name the Gateway to attach to, e.g. --set httpRoute.parentRefs[0].name=my-gateway." }}
{{- end }}
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
