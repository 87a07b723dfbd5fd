{{/*
The gatehouse container, as one item of a container list. Sidecar mode keeps gRPC on 127.0.0.1 (only
Envoy asks it); the HTTP port listens on all addresses for the kubelet's probes and /metrics (/log/level
answers loopback only). Standalone mode listens on all addresses.
*/}}
{{- define "gatehouse.container" -}}
{{- $sidecar := eq .Values.mode "sidecar" -}}
- name: gatehouse
  image: {{ include "gatehouse.imageRef" (list .Values.image .Chart.AppVersion) | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: [serve]
  {{- if and $sidecar .Values.nativeSidecars }}
  restartPolicy: Always
  {{- end }}
  ports:
    - name: grpc
      containerPort: {{ .Values.gatehouse.grpcPort }}
      protocol: TCP
    - name: http
      containerPort: {{ .Values.gatehouse.httpPort }}
      protocol: TCP
  env:
    - name: GATEHOUSE_LISTEN
      value: {{ printf "%s:%v" (ternary "127.0.0.1" "0.0.0.0" $sidecar) .Values.gatehouse.grpcPort | quote }}
    - name: GATEHOUSE_HTTP_LISTEN
      value: {{ printf "0.0.0.0:%v" .Values.gatehouse.httpPort | quote }}
    - name: GATEHOUSE_API_SECRET_FILE
      value: {{ printf "/var/run/secrets/gatehouse/%s" .Values.apiSecret.key | quote }}
    {{- with .Values.gatehouse.apiKey }}
    - name: GATEHOUSE_API_KEY
      value: {{ . | quote }}
    {{- end }}
    {{- if include "gatehouse.policyConfigMap" . }}
    - name: GATEHOUSE_POLICY_DIR
      value: {{ .Values.policyMountPath | quote }}
    {{- end }}
    {{- if include "gatehouse.shadowPolicyConfigMap" . }}
    - name: GATEHOUSE_SHADOW_POLICY_DIR
      value: {{ .Values.shadowPolicyMountPath | quote }}
    {{- end }}
    - name: GATEHOUSE_LOG
      value: {{ .Values.gatehouse.logLevel | quote }}
    - name: GATEHOUSE_LOG_FORMAT
      value: {{ .Values.gatehouse.logFormat | quote }}
    - name: GATEHOUSE_AUTHZ_PROXY
      value: {{ .Values.gatehouse.authzProxy | quote }}
    - name: GATEHOUSE_DRAIN_DELAY
      value: {{ printf "%vs" (include "gatehouse.drainDelaySeconds" .) | quote }}
    - name: GATEHOUSE_SHUTDOWN_GRACE
      value: {{ printf "%vs" .Values.gatehouse.shutdownGraceSeconds | quote }}
    - name: GATEHOUSE_RELOAD_DEBOUNCE
      value: {{ .Values.gatehouse.reloadDebounce | quote }}
    - name: TOKIO_WORKER_THREADS
      value: {{ .Values.gatehouse.workerThreads | quote }}
    {{- with .Values.otel.endpoint }}
    - name: OTEL_EXPORTER_OTLP_ENDPOINT
      value: {{ . | quote }}
    {{- end }}
    {{- with .Values.otel.tracesEndpoint }}
    - name: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
      value: {{ . | quote }}
    {{- end }}
    {{- with .Values.otel.metricsEndpoint }}
    - name: OTEL_EXPORTER_OTLP_METRICS_ENDPOINT
      value: {{ . | quote }}
    {{- end }}
    {{- if or .Values.otel.endpoint .Values.otel.tracesEndpoint .Values.otel.metricsEndpoint }}
    - name: OTEL_SERVICE_NAME
      value: {{ default (include "gatehouse.fullname" .) .Values.otel.serviceName | quote }}
    {{- with .Values.otel.resourceAttributes }}
    - name: OTEL_RESOURCE_ATTRIBUTES
      value: {{ . | quote }}
    {{- end }}
    {{- end }}
    {{- with .Values.gatehouse.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- if eq .Values.gatehouse.probe "grpc" }}
  startupProbe:
    grpc: {port: {{ .Values.gatehouse.grpcPort }}}
    periodSeconds: 1
    failureThreshold: 30
  # Liveness asks /live: gRPC health reports NOT_SERVING while draining, which is not a fault.
  livenessProbe:
    httpGet: {path: /live, port: http}
    periodSeconds: 10
    failureThreshold: 3
  readinessProbe:
    grpc: {port: {{ .Values.gatehouse.grpcPort }}}
    periodSeconds: 2
    timeoutSeconds: 2
    failureThreshold: 2
  {{- else }}
  startupProbe:
    httpGet: {path: /ready, port: http}
    periodSeconds: 1
    failureThreshold: 30
  livenessProbe:
    httpGet: {path: /live, port: http}
    periodSeconds: 10
    failureThreshold: 3
  readinessProbe:
    httpGet: {path: /ready, port: http}
    periodSeconds: 2
    timeoutSeconds: 2
    failureThreshold: 2
  {{- end }}
  resources:
    {{- toYaml .Values.gatehouse.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: gatehouse-api-secret
      mountPath: /var/run/secrets/gatehouse
      readOnly: true
    {{- if include "gatehouse.policyConfigMap" . }}
    - name: gatehouse-policies
      mountPath: {{ .Values.policyMountPath }}
      readOnly: true
    {{- end }}
    {{- if include "gatehouse.shadowPolicyConfigMap" . }}
    - name: gatehouse-shadow-policies
      mountPath: {{ .Values.shadowPolicyMountPath }}
      readOnly: true
    {{- end }}
{{- end }}

{{/* The Envoy container (sidecar mode), as one item of a container list. */}}
{{- define "gatehouse.envoyContainer" -}}
- name: envoy
  image: {{ include "gatehouse.imageRef" (list .Values.envoy.image "") | quote }}
  imagePullPolicy: {{ .Values.envoy.image.pullPolicy }}
  command:
    {{- toYaml .Values.envoy.command | nindent 4 }}
  args:
    - --config-path
    - /etc/envoy/envoy.yaml
    - --log-level
    - {{ .Values.envoy.logLevel | quote }}
    # One Envoy per pod: no hot restart, so no shared memory is needed.
    - --disable-hot-restart
    - --concurrency
    - {{ .Values.envoy.concurrency | quote }}
    - --drain-time-s
    - {{ .Values.gatehouse.drainDelaySeconds | quote }}
  {{- if .Values.nativeSidecars }}
  restartPolicy: Always
  {{- else }}
  # Keep proxying while the endpoints update; gatehouse keeps deciding two seconds longer.
  lifecycle:
    preStop:
      sleep:
        seconds: {{ .Values.gatehouse.drainDelaySeconds }}
  {{- end }}
  ports:
    - name: envoy
      containerPort: {{ .Values.envoy.port }}
      protocol: TCP
    - name: envoy-health
      containerPort: {{ .Values.envoy.healthPort }}
      protocol: TCP
  startupProbe:
    httpGet: {path: /ready, port: envoy-health}
    periodSeconds: 1
    failureThreshold: 30
  livenessProbe:
    tcpSocket: {port: envoy-health}
    periodSeconds: 10
    failureThreshold: 3
  readinessProbe:
    httpGet: {path: /ready, port: envoy-health}
    periodSeconds: 2
    timeoutSeconds: 2
    failureThreshold: 2
  resources:
    {{- toYaml .Values.envoy.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: envoy-config
      mountPath: /etc/envoy
      readOnly: true
    # The admin socket, in a volume no other container mounts.
    - name: envoy-admin
      mountPath: /var/run/envoy-admin
{{- end }}

{{/* The volumes the two sidecars mount, as items of a volume list. */}}
{{- define "gatehouse.sidecarVolumes" -}}
- name: gatehouse-api-secret
  secret:
    secretName: {{ include "gatehouse.apiSecretName" . }}
    optional: false
    defaultMode: 0440
    items:
      - key: {{ .Values.apiSecret.key }}
        path: {{ .Values.apiSecret.key }}
{{- with include "gatehouse.policyConfigMap" . }}
- name: gatehouse-policies
  configMap:
    name: {{ . }}
    optional: false
{{- end }}
{{- with include "gatehouse.shadowPolicyConfigMap" . }}
- name: gatehouse-shadow-policies
  configMap:
    name: {{ . }}
    optional: false
{{- end }}
{{- if eq .Values.mode "sidecar" }}
- name: envoy-config
  configMap:
    name: {{ include "gatehouse.fullname" . }}-envoy
    optional: false
- name: envoy-admin
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
{{- end }}
