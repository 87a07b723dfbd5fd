{{/*
Envoy's configuration in sidecar mode: the pod's front door on envoy.port asks gatehouse on 127.0.0.1
over gRPC ext_authz (v3) before every request and routes what is allowed to the app on 127.0.0.1. A
second listener on envoy.healthPort answers the kubelet's probes; the admin interface listens on
127.0.0.1 only.
*/}}
{{- define "gatehouse.envoyConfig" -}}
# Every cost has a bound: connections from clients too.
overload_manager:
  resource_monitors:
    - name: envoy.resource_monitors.global_downstream_max_connections
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
        max_active_downstream_connections: {{ .Values.envoy.maxConnections }}
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: {{ .Values.envoy.adminPort }} }
static_resources:
  listeners:
    - name: app
      address:
        socket_address: { address: 0.0.0.0, port_value: {{ .Values.envoy.port }} }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: app
                # Normalise before authorizing, so gatehouse and the app see the same path.
                normalize_path: true
                merge_slashes: true
                path_with_escaped_slashes_action: REJECT_REQUEST
                route_config:
                  name: app
                  virtual_hosts:
                    - name: app
                      domains: ["*"]
                      routes:
                        - match: { prefix: "/" }
                          route: { cluster: app }
                http_filters:
                  - name: envoy.filters.http.ext_authz
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
                      transport_api_version: V3
                      grpc_service:
                        envoy_grpc: { cluster_name: gatehouse }
                        timeout: {{ .Values.envoy.timeout }}
                      # Deny when gatehouse cannot be reached or fails: never configurable.
                      failure_mode_allow: false
                      status_on_error: { code: {{ .Values.envoy.statusOnError }} }
                      {{- if .Values.envoy.withRequestBody.enabled }}
                      with_request_body:
                        max_request_bytes: {{ .Values.envoy.withRequestBody.maxRequestBytes }}
                        allow_partial_message: {{ .Values.envoy.withRequestBody.allowPartialMessage }}
                        pack_as_bytes: true
                      {{- end }}
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
    - name: health
      address:
        socket_address: { address: 0.0.0.0, port_value: {{ .Values.envoy.healthPort }} }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: health
                route_config:
                  name: health
                  virtual_hosts:
                    - name: health
                      domains: ["*"]
                      routes:
                        - match: { prefix: "/" }
                          direct_response: { status: 404 }
                http_filters:
                  # 200 on /ready while Envoy is up and not draining; 503 once it drains.
                  - name: envoy.filters.http.health_check
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.health_check.v3.HealthCheck
                      pass_through_mode: false
                      headers:
                        - name: ":path"
                          string_match: { exact: /ready }
                  - name: envoy.filters.http.router
                    typed_config:
                      "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
    - name: gatehouse
      type: STATIC
      connect_timeout: 0.25s
      # ext_authz over gRPC needs HTTP/2.
      typed_extension_protocol_options:
        envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
          "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
          explicit_http_config:
            http2_protocol_options: {}
      load_assignment:
        cluster_name: gatehouse
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: { address: 127.0.0.1, port_value: {{ .Values.gatehouse.grpcPort }} }
    - name: app
      type: STATIC
      connect_timeout: 1s
      load_assignment:
        cluster_name: app
        endpoints:
          - lb_endpoints:
              - endpoint:
                  address:
                    socket_address: { address: 127.0.0.1, port_value: {{ .Values.app.port }} }
{{- end }}
