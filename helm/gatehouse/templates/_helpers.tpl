{{/*
Names, labels and the pieces both modes share. The named templates `gatehouse.container`,
`gatehouse.envoyContainer` and `gatehouse.sidecarVolumes` are for teams that keep their own Deployment:
include them with this chart's context (`.Subcharts.gatehouse` from a parent chart).
*/}}

{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "gatehouse.fullname" -}}
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

{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: {{ .Values.mode }}
{{- end }}

{{/* An image reference from {repository, tag, digest}; the digest wins, an empty tag is the default. */}}
{{- define "gatehouse.imageRef" -}}
{{- $image := index . 0 }}
{{- $defaultTag := index . 1 }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default $defaultTag $image.tag) }}
{{- end }}
{{- end }}

{{- define "gatehouse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "gatehouse.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "gatehouse.apiSecretName" -}}
{{- if .Values.apiSecret.create }}
{{- printf "%s-api-secret" (include "gatehouse.fullname" .) }}
{{- else }}
{{- required "apiSecret.existingSecret names the Secret holding the API secret (or set apiSecret.create for a try-out)" .Values.apiSecret.existingSecret }}
{{- end }}
{{- end }}

{{/* The ConfigMap of the live policy set; empty when the built-in preset is used. */}}
{{- define "gatehouse.policyConfigMap" -}}
{{- if .Values.existingPolicyConfigMap }}
{{- .Values.existingPolicyConfigMap }}
{{- else if .Values.policies }}
{{- printf "%s-policies" (include "gatehouse.fullname" .) }}
{{- end }}
{{- end }}

{{- define "gatehouse.shadowPolicyConfigMap" -}}
{{- if .Values.existingShadowPolicyConfigMap }}
{{- .Values.existingShadowPolicyConfigMap }}
{{- else if .Values.shadowPolicies }}
{{- printf "%s-shadow-policies" (include "gatehouse.fullname" .) }}
{{- end }}
{{- end }}

{{/*
gatehouse's drain delay: in sidecar mode without native sidecars, two seconds longer than Envoy's preStop
sleep, so Envoy never forwards to a gatehouse that has closed its listener.
*/}}
{{- define "gatehouse.drainDelaySeconds" -}}
{{- if and (eq .Values.mode "sidecar") (not .Values.nativeSidecars) }}
{{- add .Values.gatehouse.drainDelaySeconds 2 }}
{{- else }}
{{- .Values.gatehouse.drainDelaySeconds }}
{{- end }}
{{- end }}

{{/*
The kubelet's patience: standalone, gatehouse's drain and grace; sidecar, first the app's preStop sleep
and stop (native sidecars stop only after the app), then gatehouse's drain and grace; plus 5 seconds.
*/}}
{{- define "gatehouse.terminationGracePeriodSeconds" -}}
{{- if gt (int .Values.terminationGracePeriodSeconds) 0 }}
{{- .Values.terminationGracePeriodSeconds }}
{{- else if eq .Values.mode "sidecar" }}
{{- add .Values.gatehouse.drainDelaySeconds (include "gatehouse.drainDelaySeconds" .) .Values.gatehouse.shutdownGraceSeconds 5 }}
{{- else }}
{{- add .Values.gatehouse.drainDelaySeconds .Values.gatehouse.shutdownGraceSeconds 5 }}
{{- end }}
{{- end }}

{{/* Refuses combinations the schema cannot express. */}}
{{- define "gatehouse.validate" -}}
{{- if and (eq .Values.mode "sidecar") (eq .Values.gatehouse.probe "grpc") }}
{{- fail "gatehouse.probe: grpc needs mode: standalone (sidecar mode keeps gRPC on 127.0.0.1, out of the kubelet's reach); use http" }}
{{- end }}
{{- if and .Values.apiSecret.create (not .Values.apiSecret.value) }}
{{- fail "apiSecret.create needs apiSecret.value" }}
{{- end }}
{{- if and (not .Values.apiSecret.create) .Values.apiSecret.value }}
{{- fail "apiSecret.value is used only with apiSecret.create: true; reference a Secret with apiSecret.existingSecret" }}
{{- end }}
{{- if and .Values.policies .Values.existingPolicyConfigMap }}
{{- fail "set policies or existingPolicyConfigMap, not both" }}
{{- end }}
{{- if and .Values.shadowPolicies .Values.existingShadowPolicyConfigMap }}
{{- fail "set shadowPolicies or existingShadowPolicyConfigMap, not both" }}
{{- end }}
{{- $ports := list (int .Values.gatehouse.grpcPort) (int .Values.gatehouse.httpPort) }}
{{- if eq .Values.mode "sidecar" }}
{{- $ports = concat $ports (list (int .Values.envoy.port) (int .Values.envoy.healthPort) (int .Values.app.port)) }}
{{- end }}
{{- if ne (len $ports) (len (uniq $ports)) }}
{{- fail (printf "the pod's ports must differ (gatehouse.grpcPort, gatehouse.httpPort, envoy.port, envoy.healthPort, app.port): %v" $ports) }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- $replicas := ternary (int .Values.autoscaling.minReplicas) (int .Values.replicaCount) .Values.autoscaling.enabled }}
{{- $minAvailable := toString .Values.podDisruptionBudget.minAvailable }}
{{- if and .Values.podDisruptionBudget.enabled (gt $replicas 1) (or (eq $minAvailable "100%") (and (regexMatch "^[0-9]+$" $minAvailable) (ge (atoi $minAvailable) $replicas))) }}
{{- fail "podDisruptionBudget.minAvailable leaves no pod to evict: nodes could never be drained" }}
{{- end }}
{{- end }}
