//! The only place that reads configuration: a YAML file (`--config`) and `GATEHOUSE_*` environment
//! variables, the environment winning.
//!
//! Every invalid setting is collected and reported together, so an operator fixes them in one round;
//! the binary then exits with code 64. Error messages name the setting, never its value, because the
//! value may be a secret.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::audit::{DecisionLogConfig, MaskedField};
use crate::authz::ProxyHeaders;
use crate::policy::{FeedGroupPermission, FeedsPreset};
use crate::token::{ApiSecret, VerifyOptions};

/// The listen address when none is configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// A complete, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The HTTP listener (the `/authz` endpoint for proxies); `None`: no HTTP listener.
    pub http_listen: Option<SocketAddr>,
    pub api_key: String,
    pub secret: ApiSecret,
    /// No secret was configured: a random one is in use and the server is loopback-only.
    pub development: bool,
    pub verify: VerifyOptions,
    /// The built-in preset's feed groups; used when no policy directory is configured.
    pub feeds: FeedsPreset,
    /// A directory of policy files (a Kubernetes ConfigMap mount); `None`: the built-in Feeds preset.
    pub policy_dir: Option<PathBuf>,
    /// How long the policy directory must be quiet before a change is reloaded.
    pub reload_debounce: Duration,
    /// How long in-flight calls may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// How long to keep serving (while reporting NOT_SERVING) before closing the listener, so load
    /// balancers and health checkers notice first.
    pub drain_delay: Duration,
    pub log: LogConfig,
    /// Remove the caller's `Authorization` header from requests a proxy lets through, so the upstream
    /// never sees the token.
    pub strip_authorization: bool,
    pub decision_log: DecisionLogConfig,
    /// A second policy directory evaluated beside the live one, to roll out a new policy with evidence.
    pub shadow_policy_dir: Option<PathBuf>,
    /// OpenTelemetry export over OTLP/gRPC; `None`: nothing is exported.
    pub otlp: Option<OtlpConfig>,
    /// Record metrics (default); off only to measure what recording costs.
    pub metrics: bool,
    /// Which headers carry the original request to `GET /authz`: nginx's or Traefik's, never both.
    pub proxy_headers: ProxyHeaders,
    /// Bounds on connections and streams of both listeners.
    pub limits: ConnectionLimits,
    /// Let a reload replace a serving policy set with one that has no rules (normally refused, since
    /// it denies everything).
    pub allow_empty_policy: bool,
}

/// What one client can hold of the server: every bound is configurable and has a default that a
/// sidecar serving one pod never reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long an HTTP client has to send a request's headers (from the connection's start, or from
    /// the end of the previous response); a connection that sends nothing for this long is closed.
    pub http_header_timeout: Duration,
    /// The most HTTP connections open at once; further ones wait in the listen backlog.
    pub http_max_connections: usize,
    /// The most gRPC connections open at once; further ones wait in the listen backlog.
    pub grpc_max_connections: usize,
    /// The most concurrent streams (calls) per gRPC connection, advertised as
    /// `SETTINGS_MAX_CONCURRENT_STREAMS`.
    pub grpc_max_concurrent_streams: u32,
    /// How often an idle gRPC connection is pinged; one that does not answer within
    /// `grpc_keepalive_timeout` is closed.
    pub grpc_keepalive_interval: Duration,
    pub grpc_keepalive_timeout: Duration,
    /// The largest header block (HTTP/2 `SETTINGS_MAX_HEADER_LIST_SIZE`) a gRPC call may send.
    pub grpc_max_header_bytes: u32,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            http_header_timeout: Duration::from_secs(10),
            http_max_connections: 1024,
            grpc_max_connections: 1024,
            grpc_max_concurrent_streams: 128,
            grpc_keepalive_interval: Duration::from_secs(30),
            grpc_keepalive_timeout: Duration::from_secs(10),
            grpc_max_header_bytes: 64 * 1024,
        }
    }
}

/// Where OpenTelemetry data goes, from the standard `OTEL_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Where spans go; none exports no spans (and makes none).
    pub traces_endpoint: Option<String>,
    /// Where metrics go; none exports no metrics over OTLP (`/metrics` is unaffected).
    pub metrics_endpoint: Option<String>,
    pub service_name: String,
    /// How often metrics are exported (`OTEL_METRIC_EXPORT_INTERVAL`, milliseconds).
    pub metric_interval: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub json: bool,
    /// A `tracing` filter such as `info` or `gatehouse=debug`.
    pub filter: String,
}

/// One invalid setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where the setting came from: an environment variable, a file key, or the file itself.
    pub setting: String,
    pub message: String,
}

/// Every invalid setting found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for error in &self.0 {
            writeln!(f, "  - {}: {}", error.setting, error.message)?;
        }
        Ok(())
    }
}

/// A scalar from the YAML file, kept as text so file and environment values go through one parser.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<Scalar>,
    http_listen: Option<Scalar>,
    api_key: Option<Scalar>,
    api_secret: Option<Scalar>,
    api_secret_file: Option<Scalar>,
    policy_dir: Option<Scalar>,
    reload_debounce: Option<Scalar>,
    #[serde(default)]
    tokens: FileTokens,
    #[serde(default)]
    feeds: FileFeeds,
    #[serde(default)]
    shutdown: FileShutdown,
    #[serde(default)]
    log: FileLog,
    #[serde(default)]
    authz: FileAuthz,
    #[serde(default)]
    decision_log: FileDecisionLog,
    shadow_policy_dir: Option<Scalar>,
    metrics: Option<Scalar>,
    allow_empty_policy: Option<Scalar>,
    #[serde(default)]
    limits: FileLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLimits {
    http_header_timeout: Option<Scalar>,
    http_max_connections: Option<Scalar>,
    grpc_max_connections: Option<Scalar>,
    grpc_max_concurrent_streams: Option<Scalar>,
    grpc_keepalive_interval: Option<Scalar>,
    grpc_keepalive_timeout: Option<Scalar>,
    grpc_max_header_bytes: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDecisionLog {
    file: Option<Scalar>,
    max_bytes: Option<Scalar>,
    max_files: Option<Scalar>,
    ring_entries: Option<Scalar>,
    mask: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuthz {
    strip_authorization: Option<Scalar>,
    proxy: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTokens {
    leeway_seconds: Option<Scalar>,
    max_bytes: Option<Scalar>,
    allow_dev_tokens: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFeeds {
    #[serde(default)]
    groups: BTreeMap<String, Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileShutdown {
    grace_period: Option<Scalar>,
    drain_delay: Option<Scalar>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    format: Option<Scalar>,
    level: Option<Scalar>,
}

/// A raw setting value and the name of where it came from.
struct Raw {
    source: String,
    value: String,
}

/// Collects raw values, env over file, and the errors found while parsing them.
struct Loader<'e> {
    env: &'e dyn Fn(&str) -> Option<String>,
    errors: Vec<ConfigError>,
}

impl Loader<'_> {
    fn raw(&self, env_name: &str, file_key: &str, file_value: Option<Scalar>) -> Option<Raw> {
        if let Some(value) = (self.env)(env_name) {
            return Some(Raw {
                source: env_name.to_owned(),
                value,
            });
        }
        file_value.map(|v| Raw {
            source: file_key.to_owned(),
            value: v.into_text(),
        })
    }

    fn error(&mut self, setting: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            setting: setting.to_owned(),
            message: message.into(),
        });
    }

    /// The setting named `env_name` in the environment and `file_key` in the file, parsed; `None`
    /// when it is set in neither or does not parse (the error is recorded).
    fn setting<T>(
        &mut self,
        env_name: &str,
        file_key: &str,
        file_value: Option<Scalar>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = self.raw(env_name, file_key, file_value);
        self.parse(raw, parse)
    }

    /// Parses a raw value, recording an error (and returning `None`) when it does not parse.
    fn parse<T>(
        &mut self,
        raw: Option<Raw>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let raw = raw?;
        match parse(raw.value.trim()) {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(&raw.source, message);
                None
            }
        }
    }
}

impl Config {
    /// Loads the configuration from an optional YAML file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigErrors> {
        Self::load_with(file, &|name| std::env::var(name).ok())
    }

    /// Loads the configuration with `env` standing in for the process environment.
    pub fn load_with(
        file: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigErrors> {
        let mut loader = Loader {
            env,
            errors: Vec::new(),
        };
        let file_config = match file {
            Some(path) => read_file(path, &mut loader),
            None => FileConfig::default(),
        };
        let config = build(file_config, &mut loader);
        match config {
            Some(config) if loader.errors.is_empty() => Ok(config),
            _ => Err(ConfigErrors(loader.errors)),
        }
    }
}

fn read_file(path: &Path, loader: &mut Loader<'_>) -> FileConfig {
    let setting = format!("config file {}", path.display());
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            loader.error(&setting, format!("cannot be read: {e}"));
            return FileConfig::default();
        }
    };
    if text.trim().is_empty() {
        return FileConfig::default();
    }
    serde_norway::from_str(&text).unwrap_or_else(|e| {
        loader.error(&setting, e.to_string());
        FileConfig::default()
    })
}

fn build(file: FileConfig, loader: &mut Loader<'_>) -> Option<Config> {
    let listen = loader
        .setting("GATEHOUSE_LISTEN", "listen", file.listen, parse_addr)
        .or_else(|| DEFAULT_LISTEN.parse().ok());
    let http_listen = loader.setting(
        "GATEHOUSE_HTTP_LISTEN",
        "http_listen",
        file.http_listen,
        parse_addr,
    );
    let api_key = loader
        .raw("GATEHOUSE_API_KEY", "api_key", file.api_key)
        .map(|raw| raw.value.trim().to_owned());
    let groups_configured =
        !file.feeds.groups.is_empty() || (loader.env)("GATEHOUSE_FEED_GROUPS").is_some();
    let policy_dir_raw = loader.raw("GATEHOUSE_POLICY_DIR", "policy_dir", file.policy_dir);
    let policy_dir_source = policy_dir_raw.as_ref().map(|r| r.source.clone());
    let policy_dir = loader.parse(policy_dir_raw, existing_dir);
    if let (Some(source), true) = (policy_dir_source, groups_configured) {
        loader.error(
            &source,
            "feed groups (feeds.groups, GATEHOUSE_FEED_GROUPS) only configure the built-in preset; with a policy directory, edit its lists instead",
        );
    }
    let secret = load_secret(&file.api_secret, &file.api_secret_file, loader);
    let verify = load_verify(file.tokens, loader);
    let feeds = load_feeds(file.feeds, loader);
    let reload_debounce = loader
        .setting(
            "GATEHOUSE_RELOAD_DEBOUNCE",
            "reload_debounce",
            file.reload_debounce,
            parse_duration,
        )
        .unwrap_or(Duration::from_millis(100));
    let shutdown_grace = loader
        .setting(
            "GATEHOUSE_SHUTDOWN_GRACE",
            "shutdown.grace_period",
            file.shutdown.grace_period,
            parse_duration,
        )
        .unwrap_or(Duration::from_secs(30));
    let drain_delay = loader
        .setting(
            "GATEHOUSE_DRAIN_DELAY",
            "shutdown.drain_delay",
            file.shutdown.drain_delay,
            parse_duration,
        )
        .unwrap_or_default();
    let log = load_log(file.log, loader);
    let strip_authorization = loader
        .setting(
            "GATEHOUSE_STRIP_AUTHORIZATION",
            "authz.strip_authorization",
            file.authz.strip_authorization,
            parse_bool,
        )
        .unwrap_or(false);
    let decision_log = load_decision_log(file.decision_log, loader);
    let shadow_policy_dir = loader.setting(
        "GATEHOUSE_SHADOW_POLICY_DIR",
        "shadow_policy_dir",
        file.shadow_policy_dir,
        existing_dir,
    );
    let otlp = load_otlp(loader);
    let metrics = loader
        .setting("GATEHOUSE_METRICS", "metrics", file.metrics, parse_bool)
        .unwrap_or(true);
    let proxy_headers = loader
        .setting(
            "GATEHOUSE_AUTHZ_PROXY",
            "authz.proxy",
            file.authz.proxy,
            parse_proxy,
        )
        .unwrap_or(ProxyHeaders::Nginx);
    let allow_empty_policy = loader
        .setting(
            "GATEHOUSE_ALLOW_EMPTY_POLICY",
            "allow_empty_policy",
            file.allow_empty_policy,
            parse_bool,
        )
        .unwrap_or(false);
    let limits = load_limits(file.limits, loader);

    let listen = listen?;
    let (secret, development) = match secret {
        SecretSource::Configured(secret) => (secret, false),
        SecretSource::Invalid => return None,
        SecretSource::Absent if listen.ip().is_loopback() => (ApiSecret::random(), true),
        SecretSource::Absent => {
            loader.error(
                "GATEHOUSE_API_SECRET",
                "required when listening on a non-loopback address (set it or GATEHOUSE_API_SECRET_FILE)",
            );
            return None;
        }
    };
    let api_key = api_key.unwrap_or_else(|| {
        if development {
            "dev".to_owned()
        } else {
            String::new()
        }
    });
    Some(Config {
        listen,
        http_listen,
        api_key,
        secret,
        development,
        verify,
        feeds,
        policy_dir,
        reload_debounce,
        shutdown_grace,
        drain_delay,
        log,
        strip_authorization,
        decision_log,
        shadow_policy_dir,
        otlp,
        metrics,
        proxy_headers,
        limits,
        allow_empty_policy,
    })
}

fn load_limits(file: FileLimits, loader: &mut Loader<'_>) -> ConnectionLimits {
    let default = ConnectionLimits::default();
    let duration = |value: &str| {
        parse_duration(value).and_then(|d| {
            if d.is_zero() || d > Duration::from_secs(3600) {
                Err("expected a duration from 1ms to 1h".to_owned())
            } else {
                Ok(d)
            }
        })
    };
    let count = |value: &str| parse_usize(value, 1, 1_000_000);
    let small = |value: &str| {
        parse_bounded(value, 1, 1_000_000).map(|v| u32::try_from(v).unwrap_or(u32::MAX))
    };
    let header_bytes = |value: &str| {
        parse_bounded(value, 1024, 16 * 1024 * 1024).map(|v| u32::try_from(v).unwrap_or(u32::MAX))
    };
    ConnectionLimits {
        http_header_timeout: loader
            .setting(
                "GATEHOUSE_HTTP_HEADER_TIMEOUT",
                "limits.http_header_timeout",
                file.http_header_timeout,
                duration,
            )
            .unwrap_or(default.http_header_timeout),
        http_max_connections: loader
            .setting(
                "GATEHOUSE_HTTP_MAX_CONNECTIONS",
                "limits.http_max_connections",
                file.http_max_connections,
                count,
            )
            .unwrap_or(default.http_max_connections),
        grpc_max_connections: loader
            .setting(
                "GATEHOUSE_GRPC_MAX_CONNECTIONS",
                "limits.grpc_max_connections",
                file.grpc_max_connections,
                count,
            )
            .unwrap_or(default.grpc_max_connections),
        grpc_max_concurrent_streams: loader
            .setting(
                "GATEHOUSE_GRPC_MAX_CONCURRENT_STREAMS",
                "limits.grpc_max_concurrent_streams",
                file.grpc_max_concurrent_streams,
                small,
            )
            .unwrap_or(default.grpc_max_concurrent_streams),
        grpc_keepalive_interval: loader
            .setting(
                "GATEHOUSE_GRPC_KEEPALIVE_INTERVAL",
                "limits.grpc_keepalive_interval",
                file.grpc_keepalive_interval,
                duration,
            )
            .unwrap_or(default.grpc_keepalive_interval),
        grpc_keepalive_timeout: loader
            .setting(
                "GATEHOUSE_GRPC_KEEPALIVE_TIMEOUT",
                "limits.grpc_keepalive_timeout",
                file.grpc_keepalive_timeout,
                duration,
            )
            .unwrap_or(default.grpc_keepalive_timeout),
        grpc_max_header_bytes: loader
            .setting(
                "GATEHOUSE_GRPC_MAX_HEADER_BYTES",
                "limits.grpc_max_header_bytes",
                file.grpc_max_header_bytes,
                header_bytes,
            )
            .unwrap_or(default.grpc_max_header_bytes),
    }
}

fn parse_proxy(value: &str) -> Result<ProxyHeaders, String> {
    match value.to_ascii_lowercase().as_str() {
        "nginx" => Ok(ProxyHeaders::Nginx),
        "traefik" => Ok(ProxyHeaders::Traefik),
        _ => Err("expected nginx (X-Original-Method, X-Original-URI) or traefik (X-Forwarded-Method, X-Forwarded-Uri)".to_owned()),
    }
}

enum SecretSource {
    Configured(ApiSecret),
    Absent,
    Invalid,
}

fn load_secret(
    file_secret: &Option<Scalar>,
    file_secret_path: &Option<Scalar>,
    loader: &mut Loader<'_>,
) -> SecretSource {
    let inline = loader.raw("GATEHOUSE_API_SECRET", "api_secret", file_secret.clone());
    let from_file = loader.raw(
        "GATEHOUSE_API_SECRET_FILE",
        "api_secret_file",
        file_secret_path.clone(),
    );
    let (source, secret) = match (inline, from_file) {
        (None, None) => return SecretSource::Absent,
        (Some(a), Some(b)) => {
            loader.error(
                &a.source,
                format!("set either {} or {}, not both", a.source, b.source),
            );
            return SecretSource::Invalid;
        }
        (Some(inline), None) => (inline.source, inline.value),
        (None, Some(path)) => match std::fs::read_to_string(PathBuf::from(path.value.trim())) {
            // Kubernetes Secret files and `echo` often end with a newline that is not part of the secret.
            Ok(contents) => (
                path.source,
                contents.trim_end_matches(['\r', '\n']).to_owned(),
            ),
            Err(e) => {
                loader.error(
                    &path.source,
                    format!("cannot read the secret file: {}", e.kind()),
                );
                return SecretSource::Invalid;
            }
        },
    };
    if secret.len() < ApiSecret::MIN_LEN {
        loader.error(
            &source,
            format!(
                "the API secret must be at least {} bytes (HS256 keys must be as long as the hash)",
                ApiSecret::MIN_LEN
            ),
        );
        return SecretSource::Invalid;
    }
    SecretSource::Configured(ApiSecret::new(secret))
}

fn load_verify(file: FileTokens, loader: &mut Loader<'_>) -> VerifyOptions {
    let defaults = VerifyOptions::default();
    VerifyOptions {
        leeway_seconds: loader
            .setting(
                "GATEHOUSE_TOKEN_LEEWAY_SECONDS",
                "tokens.leeway_seconds",
                file.leeway_seconds,
                |v| parse_bounded(v, 0, 3600),
            )
            .unwrap_or(defaults.leeway_seconds),
        max_token_bytes: loader
            .setting(
                "GATEHOUSE_MAX_TOKEN_BYTES",
                "tokens.max_bytes",
                file.max_bytes,
                |v| parse_usize(v, 256, 1024 * 1024),
            )
            .unwrap_or(defaults.max_token_bytes),
        allow_dev_tokens: loader
            .setting(
                "GATEHOUSE_ALLOW_DEV_TOKENS",
                "tokens.allow_dev_tokens",
                file.allow_dev_tokens,
                parse_bool,
            )
            .unwrap_or(defaults.allow_dev_tokens),
    }
}

fn load_feeds(file: FileFeeds, loader: &mut Loader<'_>) -> FeedsPreset {
    let mut preset = FeedsPreset::default();
    for (group, permission) in file.groups {
        let raw = Raw {
            source: format!("feeds.groups.{group}"),
            value: permission.into_text(),
        };
        set_group(&mut preset, &group, raw, loader);
    }
    if let Some(list) = (loader.env)("GATEHOUSE_FEED_GROUPS") {
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((group, permission)) = entry.split_once('=') else {
                loader.error(
                    "GATEHOUSE_FEED_GROUPS",
                    "expected group=permission pairs separated by commas",
                );
                continue;
            };
            let raw = Raw {
                source: "GATEHOUSE_FEED_GROUPS".to_owned(),
                value: permission.to_owned(),
            };
            set_group(&mut preset, group.trim(), raw, loader);
        }
    }
    preset
}

fn set_group(preset: &mut FeedsPreset, group: &str, raw: Raw, loader: &mut Loader<'_>) {
    let valid_name = !group.is_empty()
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_name {
        loader.error(
            &raw.source,
            "feed group names are letters, digits, '_' and '-'",
        );
        return;
    }
    if let Some(permission) = loader.parse(Some(raw), |v| v.parse::<FeedGroupPermission>()) {
        preset.groups.insert(group.to_owned(), permission);
    }
}

fn load_log(file: FileLog, loader: &mut Loader<'_>) -> LogConfig {
    let json = loader
        .setting(
            "GATEHOUSE_LOG_FORMAT",
            "log.format",
            file.format,
            |v| match v {
                "json" => Ok(true),
                "text" => Ok(false),
                _ => Err("expected json or text".to_owned()),
            },
        )
        .unwrap_or(false);
    let filter = loader
        .setting("GATEHOUSE_LOG", "log.level", file.level, |v| {
            tracing_subscriber::EnvFilter::try_new(v)
                .map(|_| v.to_owned())
                .map_err(|_| "expected a log filter such as info or gatehouse=debug".to_owned())
        })
        .unwrap_or_else(|| "info".to_owned());
    LogConfig { json, filter }
}

fn existing_dir(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value);
    if path.is_dir() {
        Ok(path)
    } else {
        Err("expected an existing directory of policy files".to_owned())
    }
}

fn load_decision_log(file: FileDecisionLog, loader: &mut Loader<'_>) -> DecisionLogConfig {
    let defaults = DecisionLogConfig::default();
    let path = loader.setting(
        "GATEHOUSE_DECISION_LOG_FILE",
        "decision_log.file",
        file.file,
        |v| {
            let path = PathBuf::from(v);
            match path.parent() {
                Some(parent) if parent.as_os_str().is_empty() || parent.is_dir() => Ok(path),
                _ => Err("the directory of the decision log file must exist".to_owned()),
            }
        },
    );
    DecisionLogConfig {
        file: path,
        max_file_bytes: loader
            .setting(
                "GATEHOUSE_DECISION_LOG_MAX_BYTES",
                "decision_log.max_bytes",
                file.max_bytes,
                |v| parse_bounded(v, 4096, 1 << 40),
            )
            .unwrap_or(defaults.max_file_bytes),
        max_files: loader
            .setting(
                "GATEHOUSE_DECISION_LOG_MAX_FILES",
                "decision_log.max_files",
                file.max_files,
                |v| parse_usize(v, 0, 1000),
            )
            .unwrap_or(defaults.max_files),
        ring_entries: loader
            .setting(
                "GATEHOUSE_DECISION_LOG_RING",
                "decision_log.ring_entries",
                file.ring_entries,
                |v| parse_usize(v, 0, 10_000_000),
            )
            .unwrap_or(defaults.ring_entries),
        mask: loader
            .setting(
                "GATEHOUSE_DECISION_LOG_MASK",
                "decision_log.mask",
                file.mask,
                parse_mask,
            )
            .unwrap_or_default(),
    }
}

/// OTLP export is on when an endpoint is set and the SDK is not disabled (the standard variables).
/// Each signal goes to its own endpoint if one is set, else to the common one; `OTEL_TRACES_EXPORTER`
/// or `OTEL_METRICS_EXPORTER` set to `none` turns that signal off.
fn load_otlp(loader: &mut Loader<'_>) -> Option<OtlpConfig> {
    let env = loader.env;
    let disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if disabled {
        return None;
    }
    let base = env("OTEL_EXPORTER_OTLP_ENDPOINT").filter(|v| !v.trim().is_empty());
    let mut signal = |exporter: &str, endpoint: &str| {
        let wanted = match env(exporter).map(|v| v.trim().to_ascii_lowercase()) {
            None => true,
            Some(v) if v.is_empty() || v == "otlp" => true,
            Some(v) if v == "none" => false,
            Some(_) => {
                loader.error(exporter, "only otlp and none are supported");
                false
            }
        };
        let endpoint = env(endpoint).filter(|v| !v.trim().is_empty());
        wanted.then(|| endpoint.or_else(|| base.clone())).flatten()
    };
    let traces = signal("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let metrics = signal(
        "OTEL_METRICS_EXPORTER",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    );
    if traces.is_none() && metrics.is_none() {
        return None;
    }
    if let Some(protocol) = env("OTEL_EXPORTER_OTLP_PROTOCOL")
        && protocol.trim() != "grpc"
    {
        loader.error(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "only grpc is supported (OTLP/gRPC)",
        );
    }
    let interval = env("OTEL_METRIC_EXPORT_INTERVAL")
        .map(|v| match parse_bounded(v.trim(), 10, 3_600_000) {
            Ok(ms) => Duration::from_millis(ms),
            Err(e) => {
                loader.error("OTEL_METRIC_EXPORT_INTERVAL", e);
                Duration::from_secs(60)
            }
        })
        .unwrap_or(Duration::from_secs(60));
    Some(OtlpConfig {
        traces_endpoint: traces,
        metrics_endpoint: metrics,
        service_name: env("OTEL_SERVICE_NAME")
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| "gatehouse".to_owned()),
        metric_interval: interval,
    })
}

/// A comma-separated list of decision-log fields to mask.
fn parse_mask(value: &str) -> Result<Vec<MaskedField>, String> {
    value
        .split(',')
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            MaskedField::parse(f).ok_or_else(|| {
                format!(
                    "'{}' cannot be masked (principal_id, roles, resource_id, trace_id)",
                    f.trim()
                )
            })
        })
        .collect()
}

/// A count in `min..=max` that fits the platform's `usize`.
fn parse_usize(value: &str, min: u64, max: u64) -> Result<usize, String> {
    let value = parse_bounded(value, min, max)?;
    usize::try_from(value).map_err(|_| format!("expected at most {}", usize::MAX))
}

fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| "expected an address such as 127.0.0.1:50051 or 0.0.0.0:50051".to_owned())
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

fn parse_bounded(value: &str, min: u64, max: u64) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| format!("expected a whole number from {min} to {max}"))
}

/// A duration such as `30s`, `500ms` or `1m`; a bare number counts as seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(value)
        .map_err(|_| "expected a duration such as 30s, 500ms or 2m".to_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::Write;

    const SECRET: &str = "0123456789abcdef0123456789abcdef0123";

    fn load(file: Option<&str>, env: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        if let Some(text) = file {
            tmp.write_all(text.as_bytes()).unwrap();
        }
        Config::load_with(file.map(|_| tmp.path()), &|name| env.get(name).cloned())
    }

    fn otlp(env: &[(&str, &str)]) -> Option<OtlpConfig> {
        load(None, env).unwrap().otlp
    }

    #[test]
    fn each_otlp_signal_goes_only_where_an_endpoint_says() {
        assert_eq!(otlp(&[]), None);
        let common = otlp(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")]).unwrap();
        assert_eq!(common.traces_endpoint.as_deref(), Some("http://c:4317"));
        assert_eq!(common.metrics_endpoint.as_deref(), Some("http://c:4317"));
        // A signal-specific endpoint alone does not send the other signal anywhere.
        let metrics = otlp(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4317")]).unwrap();
        assert_eq!(metrics.traces_endpoint, None);
        assert_eq!(metrics.metrics_endpoint.as_deref(), Some("http://m:4317"));
        let traces = otlp(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4317")]).unwrap();
        assert_eq!(traces.traces_endpoint.as_deref(), Some("http://t:4317"));
        assert_eq!(traces.metrics_endpoint, None);
        let both = otlp(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4317"),
        ])
        .unwrap();
        assert_eq!(both.traces_endpoint.as_deref(), Some("http://t:4317"));
        assert_eq!(both.metrics_endpoint.as_deref(), Some("http://c:4317"));
    }

    #[test]
    fn an_otlp_signal_can_be_turned_off() {
        let no_traces = otlp(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ])
        .unwrap();
        assert_eq!(no_traces.traces_endpoint, None);
        assert_eq!(no_traces.metrics_endpoint.as_deref(), Some("http://c:4317"));
        let nothing = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "none"),
        ];
        assert_eq!(otlp(&nothing), None);
        let off = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_SDK_DISABLED", "true"),
        ];
        assert_eq!(otlp(&off), None);
        let errors = load(
            None,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                ("OTEL_METRICS_EXPORTER", "prometheus"),
            ],
        )
        .unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].setting, "OTEL_METRICS_EXPORTER");
    }

    #[test]
    fn no_configuration_is_development_mode_on_loopback() {
        let config = load(None, &[]).unwrap();
        assert!(config.development);
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.secret.len(), 64);
    }

    #[test]
    fn non_loopback_needs_a_secret() {
        let errors = load(None, &[("GATEHOUSE_LISTEN", "0.0.0.0:50051")]).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert_eq!(errors.0[0].setting, "GATEHOUSE_API_SECRET");
    }

    #[test]
    fn environment_wins_over_file() {
        let config = load(
            Some("listen: 127.0.0.1:7000\napi_secret: 0123456789abcdef0123456789abcdefXXXX\n"),
            &[("GATEHOUSE_LISTEN", "127.0.0.1:7001")],
        )
        .unwrap();
        assert_eq!(config.listen.port(), 7001);
        assert!(!config.development);
    }

    #[test]
    fn every_invalid_setting_is_reported_without_values() {
        let errors = load(
            None,
            &[
                ("GATEHOUSE_LISTEN", "nowhere"),
                ("GATEHOUSE_API_SECRET", "short-secret-value"),
                ("GATEHOUSE_TOKEN_LEEWAY_SECONDS", "-3"),
                ("GATEHOUSE_ALLOW_DEV_TOKENS", "perhaps"),
                ("GATEHOUSE_FEED_GROUPS", "timeline=public"),
                ("GATEHOUSE_SHUTDOWN_GRACE", "forever"),
            ],
        )
        .unwrap_err();
        let settings: Vec<&str> = errors.0.iter().map(|e| e.setting.as_str()).collect();
        for expected in [
            "GATEHOUSE_LISTEN",
            "GATEHOUSE_API_SECRET",
            "GATEHOUSE_TOKEN_LEEWAY_SECONDS",
            "GATEHOUSE_ALLOW_DEV_TOKENS",
            "GATEHOUSE_FEED_GROUPS",
            "GATEHOUSE_SHUTDOWN_GRACE",
        ] {
            assert!(
                settings.contains(&expected),
                "{expected} missing from {errors}"
            );
        }
        assert!(!errors.to_string().contains("short-secret-value"));
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let errors = load(Some("listn: 127.0.0.1:1\n"), &[]).unwrap_err();
        assert!(errors.to_string().contains("listn"), "{errors}");
    }

    #[test]
    fn feed_groups_merge_over_defaults() {
        let config = load(
            Some("feeds:\n  groups:\n    timeline: global_read_write\n    user: private\n"),
            &[("GATEHOUSE_API_SECRET", SECRET)],
        )
        .unwrap();
        let groups = &config.feeds.groups;
        assert_eq!(groups["timeline"], FeedGroupPermission::GlobalReadWrite);
        assert_eq!(groups["user"], FeedGroupPermission::Private);
        assert_eq!(groups["notification"], FeedGroupPermission::GlobalWrite);
    }

    #[test]
    fn policy_dir_must_exist_and_excludes_preset_groups() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let config = load(None, &[("GATEHOUSE_POLICY_DIR", path)]).unwrap();
        assert_eq!(config.policy_dir.as_deref(), Some(dir.path()));
        let missing = load(None, &[("GATEHOUSE_POLICY_DIR", "/nonexistent/policies")]).unwrap_err();
        assert_eq!(missing.0[0].setting, "GATEHOUSE_POLICY_DIR");
        let both = load(
            None,
            &[
                ("GATEHOUSE_POLICY_DIR", path),
                ("GATEHOUSE_FEED_GROUPS", "timeline=global_read"),
            ],
        )
        .unwrap_err();
        assert!(both.to_string().contains("built-in preset"), "{both}");
    }

    #[test]
    fn the_shipped_example_config_loads() {
        let mut secret = tempfile::NamedTempFile::new().unwrap();
        writeln!(secret, "{SECRET}").unwrap();
        let path = secret.path().to_str().unwrap().to_owned();
        let example = Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/gatehouse.yaml"
        ));
        let env = HashMap::from([("GATEHOUSE_API_SECRET_FILE".to_owned(), path)]);
        let config = Config::load_with(Some(example), &|name| env.get(name).cloned()).unwrap();
        assert_eq!(config.verify.leeway_seconds, 5);
        assert_eq!(config.drain_delay, Duration::from_secs(5));
        assert!(config.log.json);
        assert!(!config.development);
    }

    #[test]
    fn secret_file_is_read_and_trimmed() {
        let mut secret = tempfile::NamedTempFile::new().unwrap();
        writeln!(secret, "{SECRET}").unwrap();
        let path = secret.path().to_str().unwrap().to_owned();
        let config = load(None, &[("GATEHOUSE_API_SECRET_FILE", &path)]).unwrap();
        assert_eq!(config.secret.expose(), SECRET.as_bytes());
    }
}
