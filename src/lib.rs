//! gatehouse: an authorization sidecar that speaks Stream's token and permission model.
//!
//! Backend services and proxies ask it, per call, "may this caller do this?". Callers are identified by
//! Stream-format JWTs; server tokens are trusted, scope tokens are held to their scope, and user tokens
//! and anonymous callers are checked against the policy set (by default Stream's Feeds permissions;
//! see `docs/policies.md` for the language).
//!
//! # Layout
//! - [`config`]: the only place that reads the environment, flags and the config file.
//! - [`error`]: error enums and their one mapping to gRPC status codes.
//! - [`principal`]: the caller as the engine sees it.
//! - [`token`]: verifying and issuing JWTs; owns the API secret.
//! - [`policy`]: the policy language, its compiler, the Feeds preset and the indexed set; pure.
//! - [`engine`]: `decide(&PolicySet, &Request) -> Decision`; pure and synchronous.
//! - [`store`]: the live policy set behind an atomic swap; reading policy directories.
//! - [`suite`]: policy test suites (`*_test.yaml`) and their runner.
//! - [`authz`]: authorizing an HTTP request as a proxy sees it (route table, Stream's credentials and
//!   error bodies), shared by the proxy front ends.
//! - [`grpc`]: thin tonic services: ours, Envoy's ext_authz, health and reflection.
//! - [`http`]: the HTTP listener: the `/authz` endpoint for nginx, Traefik and Envoy's HTTP service.
//! - [`conn`]: guards on both listeners' connections: a cap on how many, deadlines on stalled peers.
//! - [`cli`]: the commands people run: issue and verify tokens locally, check against a server.
//! - [`telemetry`]: logging (with a runtime filter), OpenTelemetry export, metrics, trace context.
//! - [`decider`]: where every check is decided: enforcement mode, shadow set, and its record.
//! - [`audit`]: the decision log, exercised permissions and suggested least-privilege policies.
//!
//! [`run`] serves on a listener the caller binds, until a shutdown future the caller gives completes, so
//! tests run the real server in-process on `127.0.0.1:0`.

#![forbid(unsafe_code)]

pub mod audit;
pub mod authz;
pub mod cli;
pub mod config;
pub mod conn;
pub mod decider;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod http;
pub mod policy;
pub mod principal;
pub mod store;
pub mod suite;
pub mod telemetry;
pub mod token;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::audit::DecisionLog;
use crate::config::Config;
use crate::decider::Decider;
use crate::error::ServeError;
use crate::grpc::pb::gatehouse_server::GatehouseServer;
use crate::grpc::{ExtAuthzService, GatehouseService, pb};
use crate::policy::{LoadErrors, PolicySet};
use crate::store::PolicyStore;
use crate::telemetry::metrics::Metrics;
use crate::token::{Issuer, Verifier};

/// A call that takes longer than this is cancelled; every RPC here is in-memory work.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What the services share: the token machinery and the live policy set.
pub struct App {
    pub verifier: Verifier,
    pub issuer: Issuer,
    pub policies: Arc<PolicyStore>,
    /// The app's API key, which proxied requests must carry as `api_key`; empty: not checked.
    pub api_key: String,
    /// Remove the caller's `Authorization` header from requests a proxy lets through.
    pub strip_authorization: bool,
    /// The pair of headers `GET /authz` reads the original request from.
    pub proxy_headers: authz::ProxyHeaders,
    /// Decides and records every check.
    pub decider: Decider,
    /// Whether the server is accepting work (false once draining); `/ready` reports it.
    pub ready: std::sync::atomic::AtomicBool,
}

impl App {
    pub fn from_config(config: &Config) -> Result<App, ServeError> {
        let policies = Arc::new(
            PolicyStore::new(initial_policies(config)?, config.policy_dir.clone())
                .allowing_empty(config.allow_empty_policy),
        );
        let shadow = match &config.shadow_policy_dir {
            Some(dir) => Some(Arc::new(PolicyStore::new(
                store::load_dir(dir)?,
                Some(dir.clone()),
            ))),
            None => None,
        };
        let meter = config
            .otlp
            .as_ref()
            .map(|_| opentelemetry::global::meter("gatehouse"));
        let metrics = Arc::new(Metrics::new(
            Arc::clone(&policies),
            meter.as_ref(),
            config.metrics,
        ));
        let mask_key = audit::MaskKey::derive(config.secret.expose());
        let log = DecisionLog::start(&config.decision_log, mask_key, Arc::clone(&metrics))
            .map_err(|e| ServeError::DecisionLog(e.to_string()))?;
        Ok(App {
            verifier: Verifier::new(&config.secret, config.verify.clone()),
            issuer: Issuer::new(&config.secret),
            policies,
            api_key: config.api_key.clone(),
            strip_authorization: config.strip_authorization,
            proxy_headers: config.proxy_headers,
            decider: Decider {
                metrics,
                log,
                shadow,
                condition_warnings: decider::OncePerSecond::default(),
            },
            ready: std::sync::atomic::AtomicBool::new(false),
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.decider.metrics
    }
}

/// The policy directory's set, or the built-in Feeds preset when none is configured.
pub fn initial_policies(config: &Config) -> Result<PolicySet, LoadErrors> {
    match &config.policy_dir {
        Some(dir) => store::load_dir(dir),
        None => config.feeds.compile(),
    }
}

/// The sockets to serve on, bound by the caller (tests bind `127.0.0.1:0`).
pub struct Listeners {
    pub grpc: TcpListener,
    /// The HTTP listener for the `/authz` endpoint; `None`: no HTTP side.
    pub http: Option<TcpListener>,
}

/// Serves gRPC on `listener`, and HTTP on the configured `http_listen` if any, until `shutdown`
/// completes. See [`run_listeners`].
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let http = match config.http_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|e| ServeError::Bind(addr.to_string(), e.to_string()))?,
        ),
        None => None,
    };
    let listeners = Listeners {
        grpc: listener,
        http,
    };
    run_listeners(config, listeners, shutdown).await
}

/// Serves until `shutdown` completes, then reports NOT_SERVING, keeps serving for the drain delay,
/// stops accepting, and gives in-flight calls the grace period to finish.
pub async fn run_listeners(
    config: Config,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let app = Arc::new(App::from_config(&config)?);
    let closing = Arc::clone(&app);
    let reloaders = start_reloaders(&app, &config)?;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    set_status(&reporter, ServingStatus::Serving).await;
    let address = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        listen = %address(&listeners.grpc),
        http_listen = %listeners.http.as_ref().map(address).unwrap_or_default(),
        revision = app.policies.current().revision(),
        development = config.development,
        "serving"
    );

    app.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    let (drained_tx, drained_rx) = oneshot::channel::<()>();
    let (stop_tx, stop_rx) = watch::channel(false);
    let drain_delay = config.drain_delay;
    let draining_app = Arc::clone(&app);
    let signal = async move {
        shutdown.await;
        draining_app
            .ready
            .store(false, std::sync::atomic::Ordering::Relaxed);
        tracing::info!("shutdown requested: reporting NOT_SERVING");
        set_status(&reporter, ServingStatus::NotServing).await;
        tokio::time::sleep(drain_delay).await;
        let _ = stop_tx.send(true);
        let _ = drained_tx.send(());
    };
    let limits = config.limits.clone();
    let http_task = listeners.http.map(|listener| {
        tokio::spawn(serve_http(
            Arc::clone(&app),
            listener,
            stop_rx,
            limits.clone(),
        ))
    });
    let serve = Server::builder()
        .timeout(REQUEST_TIMEOUT)
        // At most this many calls are decoded and decided at once, over all connections: with the
        // message size limits, what a flood of streams can make the server buffer is bounded.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            MAX_CALLS_IN_FLIGHT,
        ))
        .max_concurrent_streams(Some(limits.grpc_max_concurrent_streams))
        .http2_keepalive_interval(Some(limits.grpc_keepalive_interval))
        .http2_keepalive_timeout(Some(limits.grpc_keepalive_timeout))
        .http2_max_header_list_size(Some(limits.grpc_max_header_bytes))
        .tcp_keepalive(Some(limits.grpc_keepalive_interval))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            GatehouseServer::new(GatehouseService::new(Arc::clone(&app)))
                .max_decoding_message_size(MAX_API_MESSAGE_BYTES),
        )
        .add_service(
            AuthorizationServer::new(ExtAuthzService::new(app))
                .max_decoding_message_size(MAX_EXT_AUTHZ_MESSAGE_BYTES),
        )
        // Without TCP_NODELAY a small response can wait for the peer's delayed ACK (~40 ms).
        .serve_with_incoming_shutdown(
            conn::limited_incoming(
                TcpIncoming::from(listeners.grpc).with_nodelay(Some(true)),
                limits.grpc_max_connections,
                conn::Deadlines {
                    // A client sends the HTTP/2 preface at once; an idle one still answers the
                    // keepalive pings, so silence past two intervals and the timeout is a dead peer.
                    first_read: Some(limits.grpc_keepalive_timeout),
                    read_idle: Some(
                        limits.grpc_keepalive_interval * 2 + limits.grpc_keepalive_timeout,
                    ),
                    write_stall: Some(limits.grpc_keepalive_interval),
                },
            ),
            signal,
        );
    tokio::pin!(serve);
    let grace = config.shutdown_grace;
    let served = tokio::select! {
        result = &mut serve => result,
        () = grace_expired(drained_rx, grace) => {
            tracing::warn!(grace_seconds = grace.as_secs_f64(), "grace period over: closing calls still in flight");
            Ok(())
        }
    };
    if let Some(task) = http_task {
        // The HTTP side stopped accepting with the gRPC side; its in-flight requests get the grace
        // period too.
        if tokio::time::timeout(grace, task).await.is_err() {
            tracing::warn!("grace period over: closing HTTP requests still in flight");
        }
    }
    for task in reloaders {
        task.abort();
    }
    // Decisions made up to here reach the decision log file before `run` returns.
    if let Err(e) = tokio::task::spawn_blocking(move || closing.decider.log.close()).await {
        tracing::warn!(error = %e, "closing the decision log failed");
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

/// Serves the HTTP routes until `stop` turns true. Each connection must send a request's headers
/// within the header timeout (also between requests, so an idle connection is closed after it), and
/// at most `http_max_connections` are open at once: the rest wait in the listen backlog, so a client
/// holding connections cannot use up the process's file descriptors.
async fn serve_http(
    app: Arc<App>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    limits: config::ConnectionLimits,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let router = http::router(app);
    let stopped = async move {
        let _ = stop.wait_for(|stop| *stop).await;
    };
    tokio::pin!(stopped);
    let permits = Arc::new(tokio::sync::Semaphore::new(limits.http_max_connections));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.http_header_timeout)
        .max_buf_size(MAX_HTTP_HEAD_BYTES);
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut stopped => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting an HTTP connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stopped => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY on an HTTP connection");
        }
        // hyper times out a client that is slow to send headers; this closes one that stops reading
        // the responses (pipelined requests whose answers it never takes).
        let tcp = conn::Limited::new(
            tcp,
            permit,
            conn::Deadlines {
                write_stall: Some(limits.http_header_timeout),
                ..conn::Deadlines::default()
            },
        );
        let router = router.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            request
                .extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(tcp), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Calls decoded and decided at once, over every gRPC connection.
const MAX_CALLS_IN_FLIGHT: usize = 256;
/// The largest message of our API (a CheckBatch of 1000 small items fits several times over).
const MAX_API_MESSAGE_BYTES: usize = 1024 * 1024;
/// The largest ext_authz CheckRequest: Envoy's `max_request_bytes` of body (1 MiB in our example) and
/// the request's headers.
const MAX_EXT_AUTHZ_MESSAGE_BYTES: usize = 2 * 1024 * 1024;

/// The largest request head (request line and headers) an HTTP client may send.
const MAX_HTTP_HEAD_BYTES: usize = 64 * 1024;

/// With a policy directory: reload on every change in it and on SIGHUP.
fn start_reloaders(
    app: &Arc<App>,
    config: &Config,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ServeError> {
    let mut tasks = Vec::new();
    if let (Some(shadow), Some(dir)) = (&app.decider.shadow, &config.shadow_policy_dir) {
        tasks.push(
            store::spawn_watcher(Arc::clone(shadow), dir.clone(), config.reload_debounce)
                .map_err(|e| ServeError::Watch(e.to_string()))?,
        );
    }
    let Some(dir) = &config.policy_dir else {
        return Ok(tasks);
    };
    let watcher = store::spawn_watcher(
        Arc::clone(&app.policies),
        dir.clone(),
        config.reload_debounce,
    )
    .map_err(|e| ServeError::Watch(e.to_string()))?;
    tasks.push(watcher);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups =
            signal(SignalKind::hangup()).map_err(|e| ServeError::Watch(e.to_string()))?;
        let store = Arc::clone(&app.policies);
        tasks.push(tokio::spawn(async move {
            while hangups.recv().await.is_some() {
                tracing::info!("SIGHUP: reloading policies");
                let _ = store.reload().await;
            }
        }));
    }
    Ok(tasks)
}

/// Completes `grace` after draining began; never, if the server stopped first.
async fn grace_expired(drained: oneshot::Receiver<()>, grace: Duration) {
    match drained.await {
        Ok(()) => tokio::time::sleep(grace).await,
        Err(_) => std::future::pending().await,
    }
}

async fn set_status(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter
        .set_service_status("gatehouse.v1.Gatehouse", status)
        .await;
}

fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}
