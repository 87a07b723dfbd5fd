//! Fetching the signing keys of OpenID Connect issuers: discovery, JWKS over HTTPS, refresh, refetch
//! on an unknown key id, and the status and metrics of each issuer.
//!
//! Owns every network call made for keys; `token` holds the keys and verifies with them, synchronously.
//! Every fetch has a timeout and a size cap, follows no redirect, and keeps the last good keys when it
//! fails. An unknown `kid` causes at most one refetch per issuer per cooldown, shared by every request
//! waiting for it, so made-up key ids cannot make us hammer the issuer. Nothing here logs or returns
//! key material or tokens.

mod fetch;
mod metrics;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::token::{IssuerKeys, Issuers, KeySet, algorithm_name};
pub use fetch::FetchError;
pub use metrics::register_metrics;

/// Bounds on fetching keys, shared by every issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksOptions {
    /// How long start-up waits for every issuer's first key set before serving anyway.
    pub startup_wait: Duration,
    /// The whole of one fetch (discovery and key set each), connection included.
    pub fetch_timeout: Duration,
    /// The largest discovery document or key set read; larger ones are refused while streaming.
    pub max_bytes: usize,
    /// The most keys one key set may hold.
    pub max_keys: usize,
}

impl Default for JwksOptions {
    fn default() -> Self {
        JwksOptions {
            startup_wait: Duration::from_secs(10),
            fetch_timeout: Duration::from_secs(5),
            max_bytes: 256 * 1024,
            max_keys: 64,
        }
    }
}

/// What is known of one issuer's fetching, for status and metrics.
#[derive(Debug, Clone, Default)]
pub struct IssuerStatus {
    pub issuer: String,
    /// The key set's address: configured, or found through discovery.
    pub jwks_uri: Option<String>,
    pub fetches_ok: u64,
    /// Failed fetches by reason (`timeout`, `too_large`, `malformed`, ...).
    pub fetches_failed: BTreeMap<&'static str, u64>,
    pub last_error: Option<String>,
    pub refetches: u64,
    pub refetches_suppressed: u64,
    /// Unix seconds of the last good fetch.
    pub last_success_unix: Option<i64>,
}

/// One issuer's fetcher state.
struct Source {
    keys: Arc<IssuerKeys>,
    client: reqwest::Client,
    status: Mutex<IssuerStatus>,
    /// When the last unknown-kid refetch started; held across the refetch, so concurrent requests
    /// wait for the one in flight instead of starting their own.
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
    /// Bumped on every good fetch; start-up waits on it.
    fetched: watch::Sender<u64>,
}

/// Every issuer's fetcher.
pub struct Identity {
    issuers: Arc<Issuers>,
    sources: Vec<Arc<Source>>,
    options: JwksOptions,
    max_token_bytes: usize,
}

/// An issuer as the status reports it.
#[derive(Debug, Clone)]
pub struct IssuerReport {
    pub status: IssuerStatus,
    /// `(kid, alg)` of each key held; empty strings where the key names none.
    pub keys: Vec<(String, String)>,
    /// Seconds since the keys held were fetched.
    pub key_age_seconds: Option<u64>,
    pub ready: bool,
}

impl Identity {
    /// Fetchers for `issuers`; an issuer whose CA file cannot be read is an error.
    pub fn new(
        issuers: Arc<Issuers>,
        options: JwksOptions,
        max_token_bytes: usize,
    ) -> Result<Identity, FetchError> {
        let mut sources = Vec::new();
        for keys in issuers.all() {
            let client = fetch::client(keys.config.ca_file.as_deref(), &options)?;
            sources.push(Arc::new(Source {
                status: Mutex::new(IssuerStatus {
                    issuer: keys.config.issuer.clone(),
                    jwks_uri: keys.config.jwks_uri.clone(),
                    ..IssuerStatus::default()
                }),
                keys: Arc::clone(keys),
                client,
                last_refetch: tokio::sync::Mutex::new(None),
                fetched: watch::channel(0).0,
            }));
        }
        Ok(Identity {
            issuers,
            sources,
            options,
            max_token_bytes,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.sources.is_empty()
    }

    /// Starts one refresh task per issuer; they end when the runtime does.
    pub fn start(&self) {
        for source in &self.sources {
            let source = Arc::clone(source);
            let options = self.options.clone();
            tokio::spawn(async move { source.refresh_loop(&options).await });
        }
    }

    /// Waits until every issuer has keys or the start-up wait is over; returns the issuers still
    /// without keys, each with the last error.
    pub async fn wait_ready(&self) -> Vec<(String, String)> {
        let deadline = tokio::time::Instant::now() + self.options.startup_wait;
        for source in &self.sources {
            let mut fetched = source.fetched.subscribe();
            let _ = tokio::time::timeout_at(deadline, async {
                while source.keys.keys().is_none() {
                    if fetched.changed().await.is_err() {
                        break;
                    }
                }
            })
            .await;
        }
        self.not_ready()
    }

    /// The issuers without keys, with the last error each reported.
    pub fn not_ready(&self) -> Vec<(String, String)> {
        self.sources
            .iter()
            .filter(|s| s.keys.keys().is_none())
            .map(|s| {
                let status = s.status();
                let reason = status
                    .last_error
                    .unwrap_or_else(|| "no fetch has finished yet".to_owned());
                (status.issuer, reason)
            })
            .collect()
    }

    /// Before a token is verified: when it names a configured issuer and a `kid` that issuer's keys
    /// lack, refetch them once (within the cooldown, shared with concurrent requests), bounded by the
    /// fetch timeout. Any other token returns at once.
    pub async fn await_keys(&self, token: &str) {
        if self.sources.is_empty() {
            return;
        }
        let Some(issuer) = self.issuers.missing_kid(token, self.max_token_bytes) else {
            return;
        };
        let Some(source) = self.sources.iter().find(|s| Arc::ptr_eq(&s.keys, &issuer)) else {
            return;
        };
        let options = &self.options;
        let _ = tokio::time::timeout(options.fetch_timeout, source.refetch(options)).await;
    }

    /// Every issuer's status and keys, for `IdentityStatus`.
    pub fn report(&self) -> Vec<IssuerReport> {
        self.sources
            .iter()
            .map(|source| {
                let held = source.keys.keys();
                IssuerReport {
                    status: source.status(),
                    keys: held.as_ref().map_or_else(Vec::new, |set| {
                        set.keys
                            .iter()
                            .map(|k| {
                                (
                                    k.kid.clone().unwrap_or_default(),
                                    k.alg.map(algorithm_name).unwrap_or_default().to_owned(),
                                )
                            })
                            .collect()
                    }),
                    key_age_seconds: held.as_ref().map(|set| set.fetched_at.elapsed().as_secs()),
                    ready: held.is_some_and(|set| {
                        set.fetched_at.elapsed() <= source.keys.config.max_key_age
                    }),
                }
            })
            .collect()
    }
}

impl Source {
    fn status(&self) -> IssuerStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn update(&self, change: impl FnOnce(&mut IssuerStatus)) {
        change(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// Fetches at start, then again when the keys' lifetime or the refresh interval is up; after a
    /// failure, sooner, backing off from one second up to the refresh interval.
    async fn refresh_loop(&self, options: &JwksOptions) {
        let config = &self.keys.config;
        let mut backoff = Duration::from_secs(1);
        loop {
            let wait = match self.fetch(options).await {
                Ok(lifetime) => {
                    backoff = Duration::from_secs(1);
                    lifetime.unwrap_or(config.refresh_interval)
                }
                Err(()) => {
                    let wait = backoff.min(config.refresh_interval);
                    backoff = backoff.saturating_mul(2);
                    wait
                }
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// One refetch for an unknown key id, unless one ran within the cooldown.
    async fn refetch(&self, options: &JwksOptions) {
        let mut last = self.last_refetch.lock().await;
        if last.is_some_and(|at| at.elapsed() < self.keys.config.refetch_cooldown) {
            self.update(|s| s.refetches_suppressed += 1);
            return;
        }
        *last = Some(Instant::now());
        self.update(|s| s.refetches += 1);
        let _ = self.fetch(options).await;
    }

    /// Fetches the key set (finding it through discovery first when needed) and, if it is good,
    /// replaces the keys. Returns how long the response says the keys may be cached, clamped.
    async fn fetch(&self, options: &JwksOptions) -> Result<Option<Duration>, ()> {
        let config = &self.keys.config;
        let result = fetch::key_set(&self.client, config, options).await;
        match result {
            Ok(fetched) => {
                let count = fetched.keys.keys.len();
                self.keys.replace(fetched.keys);
                self.update(|s| {
                    s.fetches_ok += 1;
                    s.jwks_uri = Some(fetched.jwks_uri);
                    s.last_error = None;
                    s.last_success_unix = Some(crate::token::unix_now());
                });
                self.fetched.send_modify(|n| *n += 1);
                tracing::debug!(issuer = %config.issuer, keys = count, "fetched the issuer's keys");
                Ok(fetched.max_age)
            }
            Err(error) => {
                tracing::warn!(issuer = %config.issuer, error = %error, "fetching the issuer's keys failed; the last good keys stay in use");
                self.update(|s| {
                    *s.fetches_failed.entry(error.reason()).or_default() += 1;
                    s.last_error = Some(error.to_string());
                });
                Err(())
            }
        }
    }
}

/// A key set as fetched, with where it came from and how long it may be cached.
struct Fetched {
    keys: KeySet,
    jwks_uri: String,
    max_age: Option<Duration>,
}
