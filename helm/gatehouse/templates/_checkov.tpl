{{/*
checkov's checks this chart cannot pass by construction, each skipped with its reason beside it (checkov
reads `checkov.io/skipN` annotations). Only the skips that apply to the values given are rendered.
*/}}
{{- define "gatehouse.checkovSkips" -}}
{{- $skips := list }}
{{- if not .Values.image.digest }}
{{- $skips = append $skips "CKV_K8S_43=images are pinned by tag by default; set image.digest (and envoy.image.digest, app.image.digest) to pin by digest" }}
{{- end }}
{{- if and (eq .Values.mode "sidecar") (not .Values.app.livenessProbe) }}
{{- $skips = append $skips "CKV_K8S_8=the app's liveness probe is the app's own (app.livenessProbe); gatehouse and Envoy have theirs" }}
{{- end }}
{{- if and (eq .Values.mode "sidecar") (not .Values.app.readinessProbe) }}
{{- $skips = append $skips "CKV_K8S_9=the app's readiness probe is the app's own (app.readinessProbe); gatehouse and Envoy have theirs" }}
{{- end }}
{{- $skips = append $skips "CKV_K8S_15=IfNotPresent is right for immutable tags and digests; set the pullPolicy values to Always for mutable tags" }}
{{- range $i, $skip := $skips }}
{{- if $i }}{{ "\n" }}{{ end }}checkov.io/skip{{ add1 $i }}: {{ $skip | quote }}
{{- end }}
{{- end }}
