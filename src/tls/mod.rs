//! TLS, and mutual TLS, on both listeners: the certificate, key and client CA read from files
//! (a cert-manager or kubelet mount), reloaded when they change, and the caller's identity read from
//! its client certificate. Owns its configuration type, its metrics and its reloader; it reads no
//! request and decides nothing: the services read the [`Peer`] it attaches to each connection.
//!
//! A reload swaps the configuration new handshakes use; connections already open keep the one they
//! were made with, so no call is dropped. Files that fail to load leave the last good configuration
//! serving, with an error logged (naming the file) and counted.

mod accept;
mod config;
mod identity;
mod load;

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

pub use accept::{TlsConn, TlsIncoming, handshake, incoming};
pub use config::{ClientAuth, ServiceIdentity, SettingError, TlsConfig, TlsSettings, names};
pub use identity::{Identities, Identity, Peer, Standing, may_administer};
pub use load::TlsError;

/// How long a client has to finish the TLS handshake once its connection is accepted.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

type ResultLabel = Vec<(&'static str, &'static str)>;

/// The TLS state as `IdentityStatus` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsStatus {
    pub client_auth: &'static str,
    pub not_after: i64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
}

/// The serving TLS state of both listeners.
pub struct Tls {
    config: TlsConfig,
    grpc: ArcSwap<ServerConfig>,
    http: ArcSwap<ServerConfig>,
    identities: Identities,
    /// The fingerprint of the files serving; reloads run one at a time under this lock.
    serving: Mutex<[u8; 32]>,
    reloads: Family<ResultLabel, Counter>,
    not_after: Gauge,
}

impl Tls {
    /// Loads the configured files; at start a file that fails is an error, not a fallback.
    pub fn load(config: &TlsConfig) -> Result<Tls, TlsError> {
        let material = load::load(config)?;
        let not_after = Gauge::default();
        not_after.set(material.not_after);
        Ok(Tls {
            config: config.clone(),
            grpc: ArcSwap::new(material.grpc),
            http: ArcSwap::new(material.http),
            identities: Identities::new(config),
            serving: Mutex::new(material.fingerprint),
            reloads: Family::default(),
            not_after,
        })
    }

    /// Adds the reload counter and the certificate's expiry to the registry and, when OTLP is
    /// configured, to the meter.
    pub fn register_metrics(self: &Arc<Self>, registry: &mut Registry, meter: Option<&Meter>) {
        registry.register(
            "tls_reloads",
            "Reloads of the TLS certificate, key and client CA files, by result",
            self.reloads.clone(),
        );
        registry.register(
            "tls_certificate_not_after_timestamp_seconds",
            "When the serving TLS certificate expires, in seconds since the Unix epoch",
            self.not_after.clone(),
        );
        if let Some(meter) = meter {
            let tls = Arc::clone(self);
            let _reloads = meter
                .u64_observable_counter("gatehouse.tls.reloads")
                .with_description("Reloads of the TLS files, by result")
                .with_callback(move |observer| {
                    for result in ["ok", "error"] {
                        let count = tls.reloads.get_or_create(&vec![("result", result)]).get();
                        observer.observe(count, &[KeyValue::new("result", result)]);
                    }
                })
                .build();
            let tls = Arc::clone(self);
            let _not_after = meter
                .i64_observable_gauge("gatehouse.tls.certificate.not_after")
                .with_description(
                    "When the serving TLS certificate expires, in seconds since the Unix epoch",
                )
                .with_callback(move |observer| observer.observe(tls.not_after.get(), &[]))
                .build();
        }
    }

    /// The gRPC listener's acceptor for the next handshake.
    pub fn grpc_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.grpc.load_full())
    }

    /// The HTTP listener's acceptor for the next handshake.
    pub fn http_acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.http.load_full())
    }

    pub fn identities(&self) -> &Identities {
        &self.identities
    }

    /// Reads the files again and serves them to new connections if they changed and load; on an
    /// error, keeps the configuration serving. Blocking (file reads): run it off the runtime.
    pub fn reload(&self) -> Result<bool, TlsError> {
        let mut serving = self.serving.lock().unwrap_or_else(PoisonError::into_inner);
        let material = load::read(&self.config)
            .and_then(|files| {
                if files.fingerprint == *serving {
                    return Ok(None);
                }
                load::build(&self.config, &files).map(Some)
            })
            .inspect_err(|e| {
                self.count("error");
                tracing::error!(file = %e.file(), error = %e, "TLS files not reloaded: the last good certificate keeps serving");
            })?;
        let Some(material) = material else {
            return Ok(false);
        };
        self.grpc.store(material.grpc);
        self.http.store(material.http);
        self.not_after.set(material.not_after);
        *serving = material.fingerprint;
        self.count("ok");
        tracing::info!(cert_file = %self.config.cert_file.display(), "TLS certificate reloaded");
        Ok(true)
    }

    /// What `IdentityStatus` shows: the client auth mode, the serving certificate's expiry (seconds
    /// since the Unix epoch), and the reloads that succeeded and failed.
    pub fn status(&self) -> TlsStatus {
        let count = |result| self.reloads.get_or_create(&vec![("result", result)]).get();
        TlsStatus {
            client_auth: self.config.client_auth.as_str(),
            not_after: self.not_after.get(),
            reloads_ok: count("ok"),
            reloads_failed: count("error"),
        }
    }

    fn count(&self, result: &'static str) {
        self.reloads.get_or_create(&vec![("result", result)]).inc();
    }

    /// The directories holding the files, each once: these are watched.
    fn dirs(&self) -> Vec<PathBuf> {
        let files = [
            Some(&self.config.cert_file),
            Some(&self.config.key_file),
            self.config.client_ca_file.as_ref(),
        ];
        let mut dirs: Vec<PathBuf> = Vec::new();
        for file in files.into_iter().flatten() {
            let dir = match file.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
                _ => PathBuf::from("."),
            };
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
        dirs
    }
}

/// Watches the directories of the files (only their entries: `/etc/ssl` may hold much else) and
/// reloads on a change, until the returned tasks are aborted. SIGHUP reloads them too (server.rs).
pub fn spawn_reloaders(
    tls: &Arc<Tls>,
    debounce: Duration,
) -> Result<Vec<tokio::task::JoinHandle<()>>, std::io::Error> {
    let mut tasks = Vec::new();
    for dir in tls.dirs() {
        let tls = Arc::clone(tls);
        let task = crate::store::spawn_dir_watcher(
            dir,
            notify::RecursiveMode::NonRecursive,
            debounce,
            move |_| reload_off_runtime(&tls),
        )
        .map_err(std::io::Error::other)?;
        tasks.push(task);
    }
    Ok(tasks)
}

/// Reloads the files on the blocking pool.
pub fn reload_off_runtime(tls: &Arc<Tls>) -> impl std::future::Future<Output = ()> + Send + use<> {
    let tls = Arc::clone(tls);
    async move {
        // The outcome is logged and counted by `reload`.
        let _ = tokio::task::spawn_blocking(move || tls.reload()).await;
    }
}

#[cfg(test)]
mod tests;
