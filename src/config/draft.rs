//! The configuration as it is read: every setting writes its value here, and `build` turns the draft
//! into a [`super::Config`] once all are read.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::ConnectionLimits;
use crate::audit::DecisionLogConfig;
use crate::authz::ProxyHeaders;
use crate::jwks::JwksOptions;
use crate::policy::FeedsPreset;
use crate::ratelimit::RateLimitConfig;
use crate::telemetry::LogConfig;
use crate::tls::TlsSettings;
use crate::token::{CacheLimits, IssuerConfigs, VerifyOptions};

/// The decision log's OTLP settings as read; there is a sink only with an endpoint.
pub(super) struct OtlpDraft {
    pub endpoint: Option<String>,
    pub queue_entries: usize,
    pub timeout: Duration,
}

/// The values read so far. The fields a setting with a default writes start as placeholders, always
/// overwritten unless the setting is invalid (and then no configuration is built).
pub(super) struct Draft {
    pub listen: Option<SocketAddr>,
    pub http_listen: Option<SocketAddr>,
    pub api_key: Option<String>,
    pub api_secret: Option<String>,
    pub api_secret_file: Option<PathBuf>,
    pub verify: VerifyOptions,
    pub token_cache: CacheLimits,
    pub feeds: FeedsPreset,
    /// Feed groups were set (in the file or the environment), which a policy directory excludes.
    pub feed_groups_configured: bool,
    pub policy_dir: Option<PathBuf>,
    pub reload_debounce: Duration,
    pub shutdown_grace: Duration,
    pub drain_delay: Duration,
    pub log: LogConfig,
    pub strip_authorization: bool,
    pub decision_log: DecisionLogConfig,
    /// The decision log's OTLP sink, assembled in `build` with the service name.
    pub decision_log_otlp: OtlpDraft,
    pub shadow_policy_dir: Option<PathBuf>,
    pub metrics: bool,
    pub proxy_headers: ProxyHeaders,
    pub limits: ConnectionLimits,
    pub worker_threads: Option<usize>,
    pub allow_empty_policy: bool,
    pub tls: TlsSettings,
    pub issuers: IssuerConfigs,
    pub jwks: JwksOptions,
    pub browser_doors: bool,
    pub browser_origins: Vec<String>,
    pub rate_limits: RateLimitConfig,
    /// Where each configured setting came from (environment variable or file key), by variable.
    pub sources: BTreeMap<&'static str, String>,
}

impl Draft {
    pub fn new() -> Draft {
        Draft {
            listen: None,
            http_listen: None,
            api_key: None,
            api_secret: None,
            api_secret_file: None,
            verify: VerifyOptions::default(),
            token_cache: CacheLimits::default(),
            feeds: FeedsPreset::default(),
            feed_groups_configured: false,
            policy_dir: None,
            reload_debounce: Duration::ZERO,
            shutdown_grace: Duration::ZERO,
            drain_delay: Duration::ZERO,
            log: LogConfig {
                json: false,
                filter: String::new(),
            },
            strip_authorization: false,
            decision_log: DecisionLogConfig::default(),
            decision_log_otlp: OtlpDraft {
                endpoint: None,
                queue_entries: 0,
                timeout: Duration::ZERO,
            },
            shadow_policy_dir: None,
            metrics: false,
            proxy_headers: ProxyHeaders::Nginx,
            limits: ConnectionLimits::default(),
            worker_threads: None,
            allow_empty_policy: false,
            tls: TlsSettings::default(),
            issuers: IssuerConfigs::default(),
            jwks: JwksOptions::default(),
            browser_doors: false,
            browser_origins: Vec::new(),
            rate_limits: RateLimitConfig::default(),
            sources: BTreeMap::new(),
        }
    }
}
