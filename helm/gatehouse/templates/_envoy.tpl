{{/*
Envoy's configuration in sidecar mode: the pod's front door on envoy.port asks gatehouse on 127.0.0.1
over gRPC ext_authz (v3) before every request and routes what is allowed to the app on 127.0.0.1. A
second listener on envoy.healthPort answers the kubelet's probes. The admin interface is a Unix socket in
a volume only Envoy mounts, out of the app's reach. Every cost a client controls has a bound: connections,
streams, buffered bytes, heap, and how long a request may take to arrive.
*/}}
{{- define "gatehouse.envoyConfig" -}}
overload_manager:
  refresh_interval: 0.25s
  resource_monitors:
    - name: envoy.resource_monitors.global_downstream_max_connections
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.resource_monitors.downstream_connections.v3.DownstreamConnectionsConfig
        max_active_downstream_connections: {{ .Values.envoy.maxConnections }}
    - name: envoy.resource_monitors.fixed_heap
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.resource_monitors.fixed_heap.v3.FixedHeapConfig
        max_heap_size_bytes: {{ .Values.envoy.maxHeapBytes | int64 }}
  actions:
    # Under memory pressure: shorten idle timeouts, stop keep-alive, return memory, then refuse new requests.
    - name: envoy.overload_actions.reduce_timeouts
      triggers:
        - name: envoy.resource_monitors.fixed_heap
          scaled: { scaling_threshold: 0.85, saturation_threshold: 0.95 }
      typed_config:
        "@type": type.googleapis.com/envoy.config.overload.v3.ScaleTimersOverloadActionConfig
        timer_scale_factors:
          - timer: HTTP_DOWNSTREAM_CONNECTION_IDLE
            min_timeout: 2s
          - timer: HTTP_DOWNSTREAM_STREAM_IDLE
            min_timeout: 2s
    - name: envoy.overload_actions.disable_http_keepalive
      triggers:
        - name: envoy.resource_monitors.fixed_heap
          threshold: { value: 0.90 }
    - name: envoy.overload_actions.shrink_heap
      triggers:
        - name: envoy.resource_monitors.fixed_heap
          threshold: { value: 0.95 }
    - name: envoy.overload_actions.stop_accepting_requests
      triggers:
        - name: envoy.resource_monitors.fixed_heap
          threshold: { value: 0.98 }
admin:
  address:
    pipe: { path: /var/run/envoy-admin/admin.sock, mode: 0600 }
static_resources:
  listeners:
    - name: app
      address:
        socket_address: { address: 0.0.0.0, port_value: {{ .Values.envoy.port }} }
      per_connection_buffer_limit_bytes: 1048576
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
                # Envoy sets X-Forwarded-For from the peer; a client's own value is not trusted.
                use_remote_address: true
                xff_num_trusted_hops: {{ .Values.envoy.xffNumTrustedHops }}
                # A request has this long to send its headers, a stream may sit idle this long, and a
                # whole request (an upload included) must arrive within request_timeout.
                request_headers_timeout: 10s
                stream_idle_timeout: 15s
                request_timeout: {{ .Values.envoy.requestTimeout }}
                common_http_protocol_options:
                  idle_timeout: 60s
                  max_requests_per_connection: 1000
                  # x_gatehouse_user_id would reach the app beside x-gatehouse-user-id, and CGI-style
                  # servers read both as one name.
                  headers_with_underscores_action: REJECT_REQUEST
                http2_protocol_options:
                  max_concurrent_streams: 100
                  initial_stream_window_size: 65536
                  initial_connection_window_size: 1048576
                route_config:
                  name: app
                  # gatehouse decided on the request's method and path; headers that ask the app to
                  # use another one never reach it.
                  request_headers_to_remove:
                    - x-http-method-override
                    - x-http-method
                    - x-method-override
                    - x-original-url
                    - x-rewrite-url
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
      per_connection_buffer_limit_bytes: 16384
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: health
                request_headers_timeout: 5s
                common_http_protocol_options: { idle_timeout: 30s }
                route_config:
                  name: health
                  virtual_hosts:
                    - name: health
                      domains: ["*"]
                      routes:
                        - match: { prefix: "/" }
                          direct_response: { status: 404 }
                http_filters:
                  # 200 on /ready while Envoy is up and not draining.
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
