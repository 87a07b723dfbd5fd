//! The API secret file, reloaded like the policy directory: a Kubernetes Secret mount rewritten with
//! the new secret first and the old one after it starts a rotation; rewritten without the old one, it
//! retires the old secret for every call after the reload, without a restart.
//!
//! A file that does not read as secrets (empty, a short secret, a malformed line, or missing in the
//! middle of a swap) changes nothing: the secrets in use keep serving, and the failure is logged by
//! line, never with a secret, and counted.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::token::{Keyring, Secrets, unix_now};

/// The largest secret file read: eight secrets with their key ids and comments fit many times over.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// Reads a secret file (see [`Secrets::parse`]). The message names the line, never a secret.
pub fn read_secret_file(path: &Path) -> Result<Secrets, String> {
    use std::io::Read;
    let cannot_read = |e: std::io::Error| format!("cannot read the secret file: {}", e.kind());
    let file = std::fs::File::open(path).map_err(cannot_read)?;
    let mut text = String::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(cannot_read)?;
    if text.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "the secret file is larger than {MAX_SECRET_FILE_BYTES} bytes"
        ));
    }
    Secrets::parse(&text).map_err(|e| format!("the secret file is invalid: {e}"))
}

/// How the secret file's reloads went.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SecretStatus {
    /// When the secrets in use were read, seconds since the Unix epoch.
    pub loaded_at: i64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// When the last failed reload happened and why; cleared by a reload that reads the file.
    pub last_error: Option<(i64, String)>,
}

/// The secret file and the keyring it feeds.
pub struct SecretFile {
    keyring: Arc<Keyring>,
    path: PathBuf,
    status: Mutex<SecretStatus>,
}

impl SecretFile {
    pub fn new(keyring: Arc<Keyring>, path: PathBuf) -> Arc<SecretFile> {
        Arc::new(SecretFile {
            keyring,
            path,
            status: Mutex::new(SecretStatus {
                loaded_at: unix_now(),
                ..SecretStatus::default()
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn status(&self) -> SecretStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the file again and, if it holds valid secrets that differ from the ones in use, puts
    /// them in use. Returns whether the secrets changed.
    pub fn reload(&self) -> Result<bool, String> {
        let mut status = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        let read = read_secret_file(&self.path);
        if read.is_ok() {
            status.last_error = None;
        }
        match read {
            Ok(secrets) if secrets == self.keyring.secrets() => Ok(false),
            Ok(secrets) => {
                let key_ids = describe_key_ids(&secrets);
                self.keyring.replace(secrets);
                status.loaded_at = unix_now();
                status.reloads_ok += 1;
                tracing::info!(secrets = %key_ids, "API secrets reloaded");
                Ok(true)
            }
            Err(message) => {
                status.reloads_failed += 1;
                status.last_error = Some((unix_now(), message.clone()));
                tracing::error!(file = %self.path.display(), error = %message, "API secrets not reloaded: the secrets in use keep serving");
                Err(message)
            }
        }
    }
}

/// `current=2026, 2025, (no key id)`: what a log line may say about the secrets.
fn describe_key_ids(secrets: &Secrets) -> String {
    let ids: Vec<String> = secrets
        .key_ids()
        .into_iter()
        .map(|id| id.unwrap_or_else(|| "(no key id)".to_owned()))
        .collect();
    format!("{} (current first)", ids.join(", "))
}

/// Adds the secret file's reload counts and the number of secrets in use to the registry.
pub fn register_secret_metrics(file: &Arc<SecretFile>, registry: &mut Registry) {
    registry.register_collector(Box::new(SecretCollector {
        file: Arc::clone(file),
    }));
}

struct SecretCollector {
    file: Arc<SecretFile>,
}

impl fmt::Debug for SecretCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretCollector").finish_non_exhaustive()
    }
}

impl Collector for SecretCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let status = self.file.status();
        {
            let mut family = encoder.encode_descriptor(
                "secret_reloads",
                "Reloads of the API secret file that changed the secrets, or failed",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            for (result, count) in [("ok", status.reloads_ok), ("failed", status.reloads_failed)] {
                let labels = [("result", result)];
                let metric = family.encode_family(&labels)?;
                ConstCounter::new(count).encode(metric)?;
            }
        }
        let count = i64::try_from(self.file.keyring.secrets().key_ids().len()).unwrap_or(0);
        let metric = encoder.encode_descriptor(
            "secrets",
            "API secrets accepted (the current one and the ones kept during a rotation)",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        ConstGauge::new(count).encode(metric)
    }
}
