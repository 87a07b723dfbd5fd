//! The server: binds the services to the listeners the caller gives, reloads policies, and shuts
//! down in order (NOT_SERVING, the drain delay, then the grace period for calls in flight).
//!
//! [`run`] serves on a listener the caller binds, until a shutdown future the caller gives completes,
//! so tests run the real server in-process on `127.0.0.1:0`.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use envoy_types::ext_authz::v3::pb::AuthorizationServer;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::app::App;
use crate::config::{self, Config};
use crate::error::ServeError;
use crate::grpc::pb::gatehouse_server::GatehouseServer;
use crate::grpc::{self, ExtAuthzService, GatehouseService, pb};
use crate::{conn, http, store, tls};

/// A call that takes longer than this is cancelled; every RPC here is in-memory work.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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
                .map_err(|source| ServeError::Bind { addr, source })?,
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
    let reloaders = start_reloaders(&app, &config)?;
    let (reporter, health_service) = tonic_health::server::health_reporter();
    set_status(&reporter, ServingStatus::Serving).await;
    log_serving(&app, &listeners, &config);
    await_issuer_keys(&app).await;
    app.ready.store(true, Ordering::Relaxed);

    let (drained_tx, drained_rx) = oneshot::channel::<()>();
    let (stop_tx, stop_rx) = watch::channel(false);
    let draining = Drain {
        app: Arc::clone(&app),
        reporter,
        delay: config.drain_delay,
        stop: stop_tx,
        drained: drained_tx,
    };
    let http_task = listeners.http.map(|listener| {
        tokio::spawn(serve_http(
            Arc::clone(&app),
            listener,
            stop_rx,
            config.limits.clone(),
        ))
    });
    let serve = serve_grpc(
        Arc::clone(&app),
        health_service,
        listeners.grpc,
        config.limits.clone(),
        draining.after(shutdown),
    )?;
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
    if let Err(e) = tokio::task::spawn_blocking(move || app.decider.close_log()).await {
        tracing::warn!(error = %e, "closing the decision log failed");
    }
    served?;
    tracing::info!("stopped");
    Ok(())
}

fn log_serving(app: &App, listeners: &Listeners, config: &Config) {
    let address = |l: &TcpListener| l.local_addr().map(|a| a.to_string()).unwrap_or_default();
    tracing::info!(
        listen = %address(&listeners.grpc),
        http_listen = %listeners.http.as_ref().map_or_else(|| "off".to_owned(), address),
        revision = app.policies.current().revision(),
        development = config.development,
        tls = app.tls.is_some(),
        "serving"
    );
    let exposed = |l: &TcpListener| l.local_addr().is_ok_and(|a| !a.ip().is_loopback());
    if app.tls.is_none()
        && (exposed(&listeners.grpc) || listeners.http.as_ref().is_some_and(exposed))
    {
        tracing::warn!(
            "listening on a non-loopback address without TLS: tokens and decisions cross the network in plain text (set GATEHOUSE_TLS_CERT_FILE and GATEHOUSE_TLS_KEY_FILE)"
        );
    }
}

/// The first steps of shutting down, once the shutdown signal comes.
struct Drain {
    app: Arc<App>,
    reporter: HealthReporter,
    delay: Duration,
    /// Tells the HTTP side to stop accepting.
    stop: watch::Sender<bool>,
    /// Starts the grace period.
    drained: oneshot::Sender<()>,
}

impl Drain {
    /// Completes when the listeners are to close: `shutdown`, then NOT_SERVING for the drain delay.
    async fn after(self, shutdown: impl Future<Output = ()>) {
        shutdown.await;
        self.app.ready.store(false, Ordering::Relaxed);
        tracing::info!("shutdown requested: reporting NOT_SERVING");
        set_status(&self.reporter, ServingStatus::NotServing).await;
        tokio::time::sleep(self.delay).await;
        let _ = self.stop.send(true);
        let _ = self.drained.send(());
    }
}

/// Every gRPC service on `listener` under the call layer, the connection bounds and the global
/// limits, until `signal` completes.
fn serve_grpc(
    app: Arc<App>,
    health: tonic_health::pb::health_server::HealthServer<
        impl tonic_health::pb::health_server::Health,
    >,
    listener: TcpListener,
    limits: config::ConnectionLimits,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Result<Serving, ServeError> {
    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;
    let tls = app.tls.clone();
    let router = Server::builder()
        .timeout(REQUEST_TIMEOUT)
        // At most this many calls are decoded and decided at once, over all connections: with the
        // message size limits, what a flood of streams can make the server buffer is bounded.
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            MAX_CALLS_IN_FLIGHT,
        ))
        .layer(grpc::CallLayer::new(app.metrics_handle()))
        .max_concurrent_streams(Some(limits.grpc_max_concurrent_streams))
        .http2_keepalive_interval(Some(limits.grpc_keepalive_interval))
        .http2_keepalive_timeout(Some(limits.grpc_keepalive_timeout))
        .http2_max_header_list_size(Some(limits.grpc_max_header_bytes))
        .tcp_keepalive(Some(limits.grpc_keepalive_interval))
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            GatehouseServer::new(GatehouseService::new(Arc::clone(&app)))
                .max_decoding_message_size(MAX_API_MESSAGE_BYTES),
        )
        .add_service(
            AuthorizationServer::new(ExtAuthzService::new(app))
                .max_decoding_message_size(MAX_EXT_AUTHZ_MESSAGE_BYTES),
        );
    let deadlines = conn::Deadlines {
        // A client sends the HTTP/2 preface (or its TLS hello) at once; an idle one still answers
        // the keepalive pings, so silence past two intervals and the timeout is a dead peer.
        first_read: Some(limits.grpc_keepalive_timeout),
        read_idle: Some(limits.grpc_keepalive_interval * 2 + limits.grpc_keepalive_timeout),
        write_stall: Some(limits.grpc_keepalive_interval),
    };
    let max = limits.grpc_max_connections;
    Ok(match tls {
        Some(tls) => {
            let incoming = tls::incoming(listener, tls, max, deadlines);
            Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
        }
        None => {
            // Without TCP_NODELAY a small response can wait for the peer's delayed ACK (~40 ms).
            let tcp = TcpIncoming::from(listener).with_nodelay(Some(true));
            let incoming = conn::limited_incoming(tcp, max, deadlines);
            Box::pin(router.serve_with_incoming_shutdown(incoming, signal))
        }
    })
}

/// The gRPC server running, plain or over TLS.
type Serving = Pin<Box<dyn Future<Output = Result<(), tonic::transport::Error>> + Send>>;

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
    use hyper_util::rt::TokioTimer;

    let tls = app.tls.clone();
    let router = http::router(app);
    let stopping = stop.clone();
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
        let connection = HttpConnection {
            builder: builder.clone(),
            router: router.clone(),
            remote: peer,
            watcher: graceful.watcher(),
            stopping: stopping.clone(),
        };
        connection.spawn(tcp, tls.as_ref());
    }
    drop(listener);
    graceful.shutdown().await;
}

/// One accepted HTTP connection, and what serving it needs.
struct HttpConnection {
    builder: hyper::server::conn::http1::Builder,
    router: axum::Router,
    remote: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
    /// Turns true when the listener stops: a handshake still under way is abandoned, so that
    /// shutdown does not wait for it.
    stopping: watch::Receiver<bool>,
}

impl HttpConnection {
    /// Serves `tcp` in a task of its own; over TLS, the handshake runs there too, under the
    /// connection's permit.
    fn spawn(self, tcp: conn::Limited<tokio::net::TcpStream>, tls: Option<&Arc<tls::Tls>>) {
        let Some(tls) = tls else {
            tokio::spawn(self.serve(tcp, None));
            return;
        };
        let tls = Arc::clone(tls);
        let mut stopping = self.stopping.clone();
        tokio::spawn(async move {
            let acceptor = tls.http_acceptor();
            let handshake = tls::handshake(acceptor, tcp, self.remote, tls.identities());
            let tcp = tokio::select! {
                tcp = handshake => tcp,
                _ = stopping.wait_for(|stop| *stop) => None,
            };
            let Some(tcp) = tcp else {
                return;
            };
            let identity = tcp.peer().clone();
            self.serve(tcp, Some(identity)).await;
        });
    }

    /// Serves `io` until it closes or shutdown ends it; each request carries the peer's address
    /// and, over TLS, its [`tls::Peer`].
    async fn serve<IO>(self, io: IO, peer: Option<tls::Peer>)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        use tower::ServiceExt;

        let HttpConnection {
            builder,
            router,
            remote,
            watcher,
            ..
        } = self;
        let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
            let extensions = request.extensions_mut();
            extensions.insert(axum::extract::ConnectInfo(remote));
            if let Some(peer) = &peer {
                extensions.insert(peer.clone());
            }
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = builder.serve_connection(hyper_util::rt::TokioIo::new(io), service);
        if let Err(e) = watcher.watch(connection).await {
            tracing::debug!(error = %e, "HTTP connection ended with an error");
        }
    }
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

/// Reloads the policy directory (and the shadow one), the secret file and the TLS files, each on
/// every change in it, and all of them on SIGHUP.
fn start_reloaders(
    app: &Arc<App>,
    config: &Config,
) -> Result<Vec<tokio::task::JoinHandle<()>>, ServeError> {
    let mut tasks = Vec::new();
    if let Some(tls) = &app.tls {
        tasks.extend(
            tls::spawn_reloaders(tls, config.reload_debounce).map_err(ServeError::TlsWatch)?,
        );
    }
    if let (Some(shadow), Some(dir)) = (app.decider.shadow(), &config.shadow_policy_dir) {
        tasks.push(
            store::spawn_watcher(Arc::clone(shadow), dir.clone(), config.reload_debounce)
                .map_err(ServeError::Watch)?,
        );
    }
    if let Some(dir) = &config.policy_dir {
        tasks.push(
            store::spawn_watcher(
                Arc::clone(&app.policies),
                dir.clone(),
                config.reload_debounce,
            )
            .map_err(ServeError::Watch)?,
        );
    }
    if let Some(file) = &app.secret_file {
        tasks.push(watch_secret_file(file, config)?);
    }
    if config.policy_dir.is_some() || app.secret_file.is_some() || app.tls.is_some() {
        tasks.push(reload_on_hangup(app)?);
    }
    Ok(tasks)
}

/// Watches the directory holding the secret file (only its entries: it may be a shared directory),
/// which is where a Kubernetes Secret mount swaps its `..data` link.
fn watch_secret_file(
    file: &Arc<store::SecretFile>,
    config: &Config,
) -> Result<tokio::task::JoinHandle<()>, ServeError> {
    let dir = match file.path().parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let file = Arc::clone(file);
    store::spawn_dir_watcher(
        dir,
        notify::RecursiveMode::NonRecursive,
        config.reload_debounce,
        move |_| {
            let file = Arc::clone(&file);
            async move {
                let _ = tokio::task::spawn_blocking(move || file.reload()).await;
            }
        },
    )
    .map_err(ServeError::Watch)
}

fn reload_on_hangup(app: &Arc<App>) -> Result<tokio::task::JoinHandle<()>, ServeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangups = signal(SignalKind::hangup()).map_err(ServeError::Signal)?;
    let app = Arc::clone(app);
    Ok(tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading policies, secrets and TLS files");
            if app.policies.dir().is_some() {
                let _ = app.policies.reload().await;
            }
            if let Some(tls) = &app.tls {
                tls::reload_off_runtime(tls).await;
            }
            if let Some(file) = app.secret_file.clone() {
                let _ = tokio::task::spawn_blocking(move || file.reload()).await;
            }
        }
    }))
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

/// Fetches every OpenID Connect issuer's keys and waits for the first key sets, up to the start-up
/// wait; then serves anyway, naming each issuer still without keys (its tokens are refused with that
/// reason while fetching retries).
async fn await_issuer_keys(app: &App) {
    if app.identity.is_empty() {
        return;
    }
    app.identity.start();
    for (issuer, reason) in app.identity.wait_ready().await {
        tracing::warn!(%issuer, %reason, "serving without this issuer's keys: its tokens are refused until a fetch succeeds");
    }
}
