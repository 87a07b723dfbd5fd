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

{{- define "gatehouse.terminationGracePeriodSeconds" -}}
{{- if gt (int .Values.terminationGracePeriodSeconds) 0 }}
{{- .Values.terminationGracePeriodSeconds }}
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
{{- if and (eq .Values.mode "sidecar") (has (int .Values.envoy.port) (list (int .Values.gatehouse.grpcPort) (int .Values.gatehouse.httpPort) (int .Values.envoy.healthPort) (int .Values.envoy.adminPort) (int .Values.app.port))) }}
{{- fail "envoy.port must differ from the other ports of the pod" }}
{{- end }}
{{- end }}
