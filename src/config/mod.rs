//! The only place that reads configuration: a YAML file (`--config`) and `GATEHOUSE_*` environment
//! variables, the environment winning, plus the decisions the OpenTelemetry SDK leaves to us.
//!
//! Every setting is one row of [`settings::SETTINGS`], which drives reading, defaults, parsing and
//! README's table. Every invalid setting is collected and reported together, so an operator fixes
//! them in one round; the binary then exits with code 64. Error messages name the setting, never its
//! value, because the value may be a secret. Config depends on the domains' types; no domain imports
//! config.

mod draft;
mod entry;
mod file;
mod otlp;
mod parse;
mod settings;

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::audit::{DecisionLogConfig, OtlpLogConfig};
use crate::authz::ProxyHeaders;
use crate::jwks::JwksOptions;
use crate::policy::FeedsPreset;
use crate::ratelimit::RateLimitConfig;
use crate::tls::TlsConfig;
use crate::token::{ApiSecret, CacheLimits, IssuerConfig, Secrets, VerifyOptions};

pub use crate::telemetry::{LogConfig, OtlpConfig};
pub use parse::parse_duration;
pub use settings::readme_table;

use draft::Draft;
use entry::Input;
use settings::SETTINGS;

/// The listen address when none is configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// A complete, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// The HTTP listener (the `/authz` endpoint for proxies); `None`: no HTTP listener.
    pub http_listen: Option<SocketAddr>,
    pub api_key: String,
    /// The API secrets: the current one signs; every one verifies.
    pub secrets: Secrets,
    /// The file the secrets were read from, reloaded when it changes; `None`: inline or random.
    pub secret_file: Option<PathBuf>,
    /// No secret was configured: a random one is in use and the server is loopback-only.
    pub development: bool,
    pub verify: VerifyOptions,
    /// How many verified tokens, and how many bytes of them, are kept.
    pub token_cache: CacheLimits,
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
    /// Threads answering calls; `None`: as many as the CPUs the process may use.
    pub worker_threads: Option<usize>,
    /// Let a reload replace a serving policy set with one that has no rules (normally refused, since
    /// it denies everything).
    pub allow_empty_policy: bool,
    /// TLS on both listeners; `None`: plain text.
    pub tls: Option<TlsConfig>,
    /// OpenID Connect issuers whose tokens are accepted beside Stream's.
    pub issuers: Vec<IssuerConfig>,
    /// Bounds on fetching the issuers' keys.
    pub jwks: JwksOptions,
    /// The browser doors: which pages may ask, and how often.
    pub browser: BrowserConfig,
}

/// Who may ask from a browser, and how often.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrowserConfig {
    /// Serve the browser doors on the HTTP listener (off by default).
    pub enabled: bool,
    /// Origins exactly as browsers send them (`https://app.example.com:8443`); empty: none.
    pub allowed_origins: Vec<String>,
    pub rate_limits: RateLimitConfig,
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
        let mut input = Input {
            env,
            file: Default::default(),
            errors: Vec::new(),
        };
        if let Some(path) = file {
            input.file = file::read_file(path, &mut input);
        }
        let mut draft = Draft::new();
        for setting in SETTINGS {
            setting.load(&mut input, &mut draft);
        }
        let otlp = otlp::load_otlp(&mut input);
        let config = build(draft, otlp, &mut input);
        match config {
            Some(config) if input.errors.is_empty() => Ok(config),
            _ => Err(ConfigErrors(input.errors)),
        }
    }
}

/// The settings that depend on one another: feed groups exclude a policy directory, the secret
/// comes from one place, and only loopback may go without one.
fn build(draft: Draft, otlp: Option<OtlpConfig>, input: &mut Input<'_>) -> Option<Config> {
    if draft.feed_groups_configured
        && let Some(source) = draft.sources.get("GATEHOUSE_POLICY_DIR")
    {
        input.error(
            source,
            "feed groups (feeds.groups, GATEHOUSE_FEED_GROUPS) only configure the built-in preset; with a policy directory, edit its lists instead",
        );
    }
    let allowed_origins = load_origins(&draft, input);
    let secret = load_secret(&draft, input);
    let tls = load_tls(&draft, input);
    let listen = draft.listen?;
    let (secrets, development) = match secret {
        SecretSource::Configured(secrets) => (secrets, false),
        SecretSource::Invalid => return None,
        SecretSource::Absent if listen.ip().is_loopback() => {
            (Secrets::single(ApiSecret::random()), true)
        }
        SecretSource::Absent => {
            input.error(
                "GATEHOUSE_API_SECRET",
                "required when listening on a non-loopback address (set it or GATEHOUSE_API_SECRET_FILE)",
            );
            return None;
        }
    };
    let api_key = draft.api_key.unwrap_or_else(|| {
        if development {
            "dev".to_owned()
        } else {
            String::new()
        }
    });
    Some(Config {
        listen,
        http_listen: draft.http_listen,
        api_key,
        secrets,
        secret_file: draft.api_secret_file,
        development,
        verify: draft.verify,
        token_cache: draft.token_cache,
        feeds: draft.feeds,
        policy_dir: draft.policy_dir,
        reload_debounce: draft.reload_debounce,
        shutdown_grace: draft.shutdown_grace,
        drain_delay: draft.drain_delay,
        log: draft.log,
        strip_authorization: draft.strip_authorization,
        decision_log: DecisionLogConfig {
            otlp: draft
                .decision_log_otlp
                .endpoint
                .map(|endpoint| OtlpLogConfig {
                    endpoint,
                    queue_entries: draft.decision_log_otlp.queue_entries,
                    timeout: draft.decision_log_otlp.timeout,
                    service_name: otlp::service_name(input),
                }),
            ..draft.decision_log
        },
        shadow_policy_dir: draft.shadow_policy_dir,
        otlp,
        metrics: draft.metrics,
        proxy_headers: draft.proxy_headers,
        limits: draft.limits,
        worker_threads: draft.worker_threads,
        allow_empty_policy: draft.allow_empty_policy,
        tls: tls?,
        issuers: draft.issuers.0,
        jwks: draft.jwks,
        browser: BrowserConfig {
            enabled: draft.browser_doors,
            allowed_origins,
            rate_limits: draft.rate_limits,
        },
    })
}

/// The allowed browser origins, each as a browser serializes it, or an error naming the first that
/// is not.
fn load_origins(draft: &Draft, input: &mut Input<'_>) -> Vec<String> {
    let mut origins = Vec::new();
    if !draft.browser_doors && !draft.browser_origins.is_empty() {
        input.error(
            "GATEHOUSE_BROWSER_ORIGINS",
            "origins are listed but the browser doors are off: set GATEHOUSE_BROWSER_DOORS=true too",
        );
    }
    for origin in &draft.browser_origins {
        match parse::origin(origin) {
            Ok(origin) => origins.push(origin),
            Err(message) => {
                let source = draft
                    .sources
                    .get("GATEHOUSE_BROWSER_ORIGINS")
                    .map_or("GATEHOUSE_BROWSER_ORIGINS", String::as_str);
                input.error(source, message);
            }
        }
    }
    origins
}

/// The TLS settings checked together, and their files read, so a bad file stops the start with
/// the others' errors; `Some(None)`: no TLS; `None`: invalid.
fn load_tls(draft: &Draft, input: &mut Input<'_>) -> Option<Option<TlsConfig>> {
    let source = |setting: &'static str| {
        draft
            .sources
            .get(setting)
            .cloned()
            .unwrap_or_else(|| setting.to_owned())
    };
    let config = match draft.tls.clone().validate() {
        Ok(config) => config,
        Err(errors) => {
            for e in errors {
                input.error(&source(e.setting), e.message);
            }
            return None;
        }
    };
    if let Some(config) = &config
        && let Err(e) = crate::tls::Tls::load(config)
    {
        input.error(&source(e.setting(config)), e.to_string());
        return None;
    }
    Some(config)
}

enum SecretSource {
    Configured(Secrets),
    Absent,
    Invalid,
}

fn load_secret(draft: &Draft, input: &mut Input<'_>) -> SecretSource {
    let source = |env: &str| draft.sources.get(env).cloned().unwrap_or_default();
    match (&draft.api_secret, &draft.api_secret_file) {
        (None, None) => SecretSource::Absent,
        (Some(_), Some(_)) => {
            let inline = source("GATEHOUSE_API_SECRET");
            let message = format!(
                "set either {inline} or {}, not both",
                source("GATEHOUSE_API_SECRET_FILE")
            );
            input.error(&inline, message);
            SecretSource::Invalid
        }
        (Some(inline), None) if inline.len() < ApiSecret::MIN_LEN => {
            input.error(
                &source("GATEHOUSE_API_SECRET"),
                format!(
                    "the API secret must be at least {} bytes (HS256 keys must be as long as the hash)",
                    ApiSecret::MIN_LEN
                ),
            );
            SecretSource::Invalid
        }
        (Some(inline), None) => {
            SecretSource::Configured(Secrets::single(ApiSecret::new(inline.clone())))
        }
        (None, Some(path)) => match crate::store::read_secret_file(path) {
            Ok(secrets) => SecretSource::Configured(secrets),
            Err(message) => {
                input.error(&source("GATEHOUSE_API_SECRET_FILE"), message);
                SecretSource::Invalid
            }
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::policy::FeedGroupPermission;
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
    fn the_decision_log_otlp_endpoint_is_validated_and_empty_turns_it_off() {
        let otlp = |env: &[(&str, &str)]| load(None, env).map(|c| c.decision_log.otlp);
        assert_eq!(otlp(&[]).unwrap(), None);
        assert_eq!(
            otlp(&[("GATEHOUSE_DECISION_LOG_OTLP_ENDPOINT", " ")]).unwrap(),
            None
        );
        let on = otlp(&[(
            "GATEHOUSE_DECISION_LOG_OTLP_ENDPOINT",
            "http://collector:4317/",
        )])
        .unwrap()
        .unwrap();
        assert_eq!(
            on,
            OtlpLogConfig {
                endpoint: "http://collector:4317".to_owned(),
                queue_entries: OtlpLogConfig::DEFAULT_QUEUE_ENTRIES,
                timeout: OtlpLogConfig::DEFAULT_TIMEOUT,
                service_name: "gatehouse".to_owned(),
            }
        );
        let named = load(
            Some("decision_log:\n  otlp_endpoint: http://10.0.0.1:4317\n  otlp_queue: 10\n  otlp_timeout: 250ms\n"),
            &[("OTEL_SERVICE_NAME", "checkout-authz")],
        )
        .unwrap()
        .decision_log
        .otlp
        .unwrap();
        assert_eq!(named.queue_entries, 10);
        assert_eq!(named.timeout, Duration::from_millis(250));
        assert_eq!(named.service_name, "checkout-authz");
        for bad in [
            "collector:4317",
            "http://collector",
            "http://user:pw-secret@collector:4317",
            "http://collector:4317/v1/logs",
            "http://collector:4317/?token=pw-secret",
            "grpc://collector:4317",
            "https://collector:4317",
        ] {
            let errors = otlp(&[("GATEHOUSE_DECISION_LOG_OTLP_ENDPOINT", bad)]).unwrap_err();
            assert_eq!(errors.0.len(), 1, "{bad}: {errors}");
            assert_eq!(errors.0[0].setting, "GATEHOUSE_DECISION_LOG_OTLP_ENDPOINT");
            assert!(!errors.to_string().contains("pw-secret"), "{errors}");
            assert!(!errors.to_string().contains("collector"), "{errors}");
        }
        let errors = otlp(&[("GATEHOUSE_DECISION_LOG_OTLP_QUEUE", "0")]).unwrap_err();
        assert_eq!(errors.0[0].setting, "GATEHOUSE_DECISION_LOG_OTLP_QUEUE");
    }

    #[test]
    fn no_configuration_is_development_mode_on_loopback() {
        let config = load(None, &[]).unwrap();
        assert!(config.development);
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.secrets.current().secret.len(), 64);
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
    fn issuers_are_read_from_the_file_and_validated() {
        let config = load(
            Some("tokens:\n  issuers:\n    - issuer: https://sso.example.com/realms/bank\n      audiences: [bank-api]\n"),
            &[],
        )
        .unwrap();
        assert_eq!(config.issuers.len(), 1);
        let errors = load(
            Some("tokens:\n  issuers:\n    - issuer: https://sso.example.com\n      audiences: [a]\n      algorithms: [HS256]\n"),
            &[],
        )
        .unwrap_err();
        assert_eq!(errors.0[0].setting, "tokens.issuers");
        assert!(errors.to_string().contains("never none or HS*"), "{errors}");
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
        assert_eq!(config.secrets.current().secret.expose(), SECRET.as_bytes());
        assert_eq!(config.secret_file.as_deref(), Some(secret.path()));
    }

    #[test]
    fn a_secret_file_may_hold_several_secrets_and_a_bad_one_names_its_line() {
        let mut secret = tempfile::NamedTempFile::new().unwrap();
        writeln!(secret, "new {SECRET}XY\nold {SECRET}").unwrap();
        let path = secret.path().to_str().unwrap().to_owned();
        let config = load(None, &[("GATEHOUSE_API_SECRET_FILE", &path)]).unwrap();
        assert_eq!(
            config.secrets.key_ids(),
            vec![Some("new".to_owned()), Some("old".to_owned())]
        );
        let mut bad = tempfile::NamedTempFile::new().unwrap();
        writeln!(bad, "{SECRET}\ntoo-short").unwrap();
        let path = bad.path().to_str().unwrap().to_owned();
        let errors = load(None, &[("GATEHOUSE_API_SECRET_FILE", &path)]).unwrap_err();
        assert!(errors.to_string().contains("line 2"), "{errors}");
        assert!(!errors.to_string().contains(SECRET), "{errors}");
    }

    #[test]
    fn the_table_defaults_are_the_domains_defaults() {
        let config = load(None, &[]).unwrap();
        assert_eq!(config.verify, VerifyOptions::default());
        assert_eq!(config.decision_log, DecisionLogConfig::default());
        assert_eq!(config.limits, ConnectionLimits::default());
        assert_eq!(config.jwks, JwksOptions::default());
        // README shows the preset's groups that are not private; setting them changes nothing.
        let shown = load(
            None,
            &[(
                "GATEHOUSE_FEED_GROUPS",
                "user=global_read,notification=global_write",
            )],
        )
        .unwrap();
        assert_eq!(shown.feeds, FeedsPreset::default());
    }

    #[test]
    fn each_setting_has_its_own_variable_key_and_place_in_the_file() {
        let mut envs = std::collections::BTreeSet::new();
        let mut keys = std::collections::BTreeSet::new();
        let mut orders = std::collections::BTreeSet::new();
        for setting in SETTINGS {
            let doc = setting.doc();
            assert!(
                doc.env.is_empty() || envs.insert(doc.env),
                "{} twice",
                doc.env
            );
            if !doc.key.is_empty() {
                assert!(keys.insert(doc.key), "{} twice", doc.key);
                assert!(
                    orders.insert(doc.file_order),
                    "{} shares its place",
                    doc.key
                );
            }
        }
    }

    #[test]
    fn unknown_keys_are_named_with_the_keys_the_file_knows() {
        let errors = load(Some("listn: 127.0.0.1:1\n"), &[]).unwrap_err();
        assert_eq!(errors.0.len(), 1);
        assert!(
            errors.0[0].message.ends_with(
                "unknown field `listn`, expected one of `listen`, `http_listen`, `api_key`, `api_secret`, `api_secret_file`, `policy_dir`, `reload_debounce`, `tokens`, `feeds`, `shutdown`, `log`, `authz`, `decision_log`, `shadow_policy_dir`, `metrics`, `allow_empty_policy`, `limits`, `tls`, `runtime`, `browser`"
            ),
            "{errors}"
        );
        let errors = load(Some("log:\n  lvl: x\n"), &[]).unwrap_err();
        assert!(
            errors.0[0].message.ends_with(
                "log: unknown field `lvl`, expected `format` or `level` at line 2 column 3"
            ),
            "{errors}"
        );
    }
}
