//! The table of settings: each names its environment variable, its file key, its default as README
//! shows it, its parser and its description, and says where its value goes. Reading the environment
//! and the file, defaults, parsing and README's configuration table all come from [`SETTINGS`], so a
//! setting is written once.

use super::entry::{Doc, Documented, Entry, FeedGroups, List, Setting, Shown, Tree};
use super::{DEFAULT_LISTEN, parse};
use crate::tls::{ClientAuth, ServiceIdentity};
use crate::token::IssuerConfigs;

/// README's configuration table, rendered from [`SETTINGS`].
pub fn readme_table() -> String {
    let mut table =
        String::from("| Variable | File key | Default | Meaning |\n|---|---|---|---|\n");
    for entry in SETTINGS {
        let doc = entry.doc();
        let key = if doc.key.is_empty() {
            String::new()
        } else {
            format!("`{}`", doc.key)
        };
        let default = match doc.default {
            Shown::Value(value) => format!("`{value}`"),
            Shown::Words(words) => words.to_owned(),
        };
        let cells = [entry.env_cell(), key, default, doc.description.to_owned()];
        for cell in cells {
            if cell.is_empty() {
                table.push_str("| ");
            } else {
                table.push_str(&format!("| {cell} "));
            }
        }
        table.push_str("|\n");
    }
    table
}

/// Shorthand for the table below.
const fn doc(
    env: &'static str,
    key: &'static str,
    default: Shown,
    file_order: u8,
    description: &'static str,
) -> Doc {
    Doc {
        env,
        key,
        default,
        description,
        file_order,
    }
}

use Shown::{Value, Words};

/// Every setting, in README's order.
pub(super) static SETTINGS: &[&dyn Entry] = &[
    &Setting {
        doc: doc(
            "GATEHOUSE_LISTEN",
            "listen",
            Value(DEFAULT_LISTEN),
            0,
            "gRPC address",
        ),
        parse: parse::addr,
        put: |d, v| d.listen = Some(v),
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_HTTP_LISTEN",
            "http_listen",
            Words("unset: no HTTP listener"),
            1,
            "HTTP address of `/authz`, `/metrics`, `/live`, `/ready`, `/log/level`",
        ),
        parse: parse::addr,
        put: |d, v| d.http_listen = Some(v),
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_API_KEY",
            "api_key",
            Words("unset (`dev` in development mode)"),
            2,
            "the app's API key; proxied requests must carry it as `api_key`",
        ),
        parse: parse::text,
        put: |d, v| d.api_key = Some(v),
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_STRIP_AUTHORIZATION",
            "authz.strip_authorization",
            Value("false"),
            15,
            "Envoy ext_authz removes the caller's `Authorization` header before the upstream",
        ),
        parse: parse::bool,
        put: |d, v| d.strip_authorization = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_AUTHZ_PROXY",
            "authz.proxy",
            Value("nginx"),
            16,
            "which proxy asks `GET /authz`: `nginx` (`X-Original-Method`/`X-Original-URI` only) or `traefik` (`X-Forwarded-Method`/`X-Forwarded-Uri` only)",
        ),
        parse: parse::proxy,
        put: |d, v| d.proxy_headers = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_ALLOW_EMPTY_POLICY",
            "allow_empty_policy",
            Value("false"),
            24,
            "let a reload replace a serving set with one that has no rules, policies or routes (otherwise refused, logged as an error and counted as a failed reload)",
        ),
        parse: parse::bool,
        put: |d, v| d.allow_empty_policy = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_HTTP_HEADER_TIMEOUT",
            "limits.http_header_timeout",
            Value("10s"),
            25,
            "an HTTP client must send a request's headers within this; an idle keep-alive connection is closed after it",
        ),
        parse: parse::limit_duration,
        put: |d, v| d.limits.http_header_timeout = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_HTTP_MAX_CONNECTIONS",
            "limits.http_max_connections",
            Value("1024"),
            26,
            "open HTTP connections; more wait in the listen backlog",
        ),
        parse: parse::count::<1, 1_000_000>,
        put: |d, v| d.limits.http_max_connections = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_GRPC_MAX_CONNECTIONS",
            "limits.grpc_max_connections",
            Value("1024"),
            27,
            "open gRPC connections; more wait in the listen backlog",
        ),
        parse: parse::count::<1, 1_000_000>,
        put: |d, v| d.limits.grpc_max_connections = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_GRPC_MAX_CONCURRENT_STREAMS",
            "limits.grpc_max_concurrent_streams",
            Value("128"),
            28,
            "calls in flight per gRPC connection (`SETTINGS_MAX_CONCURRENT_STREAMS`)",
        ),
        parse: parse::small::<1, 1_000_000>,
        put: |d, v| d.limits.grpc_max_concurrent_streams = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_GRPC_KEEPALIVE_INTERVAL",
            "limits.grpc_keepalive_interval",
            Value("30s"),
            29,
            "HTTP/2 ping (and TCP keepalive) interval on gRPC connections",
        ),
        parse: parse::limit_duration,
        put: |d, v| d.limits.grpc_keepalive_interval = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_GRPC_KEEPALIVE_TIMEOUT",
            "limits.grpc_keepalive_timeout",
            Value("10s"),
            30,
            "a connection that does not answer a ping within this is closed",
        ),
        parse: parse::limit_duration,
        put: |d, v| d.limits.grpc_keepalive_timeout = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_GRPC_MAX_HEADER_BYTES",
            "limits.grpc_max_header_bytes",
            Value("65536"),
            31,
            "largest header block of a gRPC call (`SETTINGS_MAX_HEADER_LIST_SIZE`)",
        ),
        parse: parse::small::<1024, { 16 * 1024 * 1024 }>,
        put: |d, v| d.limits.grpc_max_header_bytes = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_DECISION_LOG_FILE",
            "decision_log.file",
            Words("unset"),
            17,
            "JSON-lines decision log (its directory must exist)",
        ),
        parse: parse::file_in_existing_dir,
        put: |d, v| d.decision_log.file = Some(v),
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_DECISION_LOG_MAX_BYTES",
            "decision_log.max_bytes",
            Value("67108864"),
            18,
            "rotate the file at this size",
        ),
        parse: parse::number::<4096, { 1 << 40 }>,
        put: |d, v| d.decision_log.max_file_bytes = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_DECISION_LOG_MAX_FILES",
            "decision_log.max_files",
            Value("5"),
            19,
            "rotated files kept (`FILE.1` is the newest)",
        ),
        parse: parse::count::<0, 1000>,
        put: |d, v| d.decision_log.max_files = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_DECISION_LOG_RING",
            "decision_log.ring_entries",
            Value("10000"),
            20,
            "decisions kept in memory for `ExercisedPermissions`/`SuggestPolicy`",
        ),
        parse: parse::count::<0, 10_000_000>,
        put: |d, v| d.decision_log.ring_entries = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_DECISION_LOG_MASK",
            "decision_log.mask",
            Words("unset"),
            21,
            "fields pseudonymized in the file and the OTLP records: `principal_id`, `roles`, `resource_id`, `trace_id`",
        ),
        parse: parse::mask,
        put: |d, v| d.decision_log.mask = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_DECISION_LOG_OTLP_ENDPOINT",
            "decision_log.otlp_endpoint",
            Words("unset: not sent"),
            52,
            "also send every decision as an OpenTelemetry log record over OTLP/gRPC to this `http://HOST:PORT` (a Collector's `otlp` receiver), masked as the file; empty: not sent",
        ),
        parse: parse::otlp_endpoint,
        put: |d, v| d.decision_log_otlp.endpoint = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_DECISION_LOG_OTLP_QUEUE",
            "decision_log.otlp_queue",
            Value("4096"),
            53,
            "decisions waiting to be sent over OTLP; when it is full, or an export fails or times out, decisions are dropped and counted",
        ),
        parse: parse::count::<1, 1_000_000>,
        put: |d, v| d.decision_log_otlp.queue_entries = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_DECISION_LOG_OTLP_TIMEOUT",
            "decision_log.otlp_timeout",
            Value("5s"),
            54,
            "the longest one OTLP export of decisions (connecting included) may take",
        ),
        parse: parse::limit_duration,
        put: |d, v| d.decision_log_otlp.timeout = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_SHADOW_POLICY_DIR",
            "shadow_policy_dir",
            Words("unset"),
            22,
            "a policy directory evaluated beside the live one; differences counted and logged",
        ),
        parse: parse::existing_dir,
        put: |d, v| d.shadow_policy_dir = Some(v),
    },
    &Documented {
        doc: doc(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "",
            Words("unset"),
            u8::MAX,
            "OpenTelemetry export over OTLP/gRPC (standard variables)",
        ),
        env_note: " etc.",
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_METRICS",
            "metrics",
            Value("true"),
            23,
            "record metrics; `false` leaves `/metrics` empty (used to measure their cost)",
        ),
        parse: parse::bool,
        put: |d, v| d.metrics = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_API_SECRET",
            "api_secret",
            Words("random, loopback only"),
            3,
            "the app's API secret (at least 32 bytes)",
        ),
        parse: parse::untrimmed,
        put: |d, v| d.api_secret = Some(v),
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_API_SECRET_FILE",
            "api_secret_file",
            Words("unset"),
            4,
            "file holding the secrets, e.g. a Kubernetes Secret mount: one per line, current (signing) first, each optionally preceded by a key id and a space; reloaded when it changes",
        ),
        parse: parse::path,
        put: |d, v| d.api_secret_file = Some(v),
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_TOKEN_LEEWAY_SECONDS",
            "tokens.leeway_seconds",
            Value("0"),
            7,
            "clock skew allowed on `exp`, `nbf`, `iat`",
        ),
        parse: parse::number::<0, 3600>,
        put: |d, v| d.verify.leeway_seconds = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_MAX_TOKEN_BYTES",
            "tokens.max_bytes",
            Value("8192"),
            8,
            "longer tokens are refused unread",
        ),
        parse: parse::count::<256, { 1024 * 1024 }>,
        put: |d, v| d.verify.max_token_bytes = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_WORKER_THREADS",
            "runtime.worker_threads",
            Words(
                "the CPUs the process may use: its cgroup's CPU quota (a Kubernetes CPU limit), else the machine's",
            ),
            48,
            "threads answering calls; a sidecar with a CPU limit of 1 gets 1",
        ),
        parse: parse::count::<1, 256>,
        put: |d, v| d.worker_threads = Some(v),
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_TOKEN_CACHE_ENTRIES",
            "tokens.cache_entries",
            Value("4096"),
            46,
            "verified tokens kept, so a token seen before skips its signature check (expiry and revocation are still checked on every call); 0 turns the cache off",
        ),
        parse: parse::count::<0, 1_000_000>,
        put: |d, v| d.token_cache.max_entries = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_TOKEN_CACHE_BYTES",
            "tokens.cache_bytes",
            Value("4194304"),
            47,
            "the most memory the verified-token cache holds, estimated",
        ),
        parse: parse::count::<0, { 1024 * 1024 * 1024 }>,
        put: |d, v| d.token_cache.max_bytes = v as u64,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_ALLOW_DEV_TOKENS",
            "tokens.allow_dev_tokens",
            Value("false"),
            9,
            "accept Stream's unsigned development tokens",
        ),
        parse: parse::bool,
        put: |d, v| d.verify.allow_dev_tokens = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_POLICY_DIR",
            "policy_dir",
            Words("unset: the built-in Feeds preset"),
            5,
            "a directory of policy files, watched and hot-reloaded",
        ),
        parse: parse::existing_dir,
        put: |d, v| d.policy_dir = Some(v),
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_RELOAD_DEBOUNCE",
            "reload_debounce",
            Value("100ms"),
            6,
            "quiet time before a change in the directory is reloaded",
        ),
        parse: parse::duration,
        put: |d, v| d.reload_debounce = v,
    },
    &Tree {
        doc: doc(
            "",
            "tokens.issuers",
            Words("none"),
            32,
            "OpenID Connect issuers whose tokens are verified with their published keys (see docs/identity.md); file only",
        ),
        parse: parse::tree::<IssuerConfigs>,
        put: |d, v| d.issuers = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_JWKS_STARTUP_WAIT",
            "tokens.jwks_startup_wait",
            Value("10s"),
            33,
            "how long start-up waits for every issuer's first key set before serving anyway",
        ),
        parse: parse::limit_duration,
        put: |d, v| d.jwks.startup_wait = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_JWKS_FETCH_TIMEOUT",
            "tokens.jwks_fetch_timeout",
            Value("5s"),
            34,
            "the longest one discovery or key set fetch may take; also bounds how long a call waits for a refetch",
        ),
        parse: parse::limit_duration,
        put: |d, v| d.jwks.fetch_timeout = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_JWKS_MAX_BYTES",
            "tokens.jwks_max_bytes",
            Value("262144"),
            35,
            "larger discovery documents and key sets are refused while they stream",
        ),
        parse: parse::count::<1024, { 16 * 1024 * 1024 }>,
        put: |d, v| d.jwks.max_bytes = v,
    },
    &FeedGroups {
        doc: doc(
            "GATEHOUSE_FEED_GROUPS",
            "feeds.groups",
            // The preset's own default (`FeedsPreset::default`); a test checks they agree.
            Words("`user=global_read,notification=global_write`"),
            10,
            "per-group permission types of the built-in preset (`group=type,...`), merged over the defaults",
        ),
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_SHUTDOWN_GRACE",
            "shutdown.grace_period",
            Value("30s"),
            11,
            "time in-flight calls get after shutdown",
        ),
        parse: parse::duration,
        put: |d, v| d.shutdown_grace = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_DRAIN_DELAY",
            "shutdown.drain_delay",
            Value("0s"),
            12,
            "time to keep serving while reporting NOT_SERVING",
        ),
        parse: parse::duration,
        put: |d, v| d.drain_delay = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_LOG",
            "log.level",
            Value("info"),
            14,
            "log filter, e.g. `gatehouse=debug`",
        ),
        parse: parse::log_filter,
        put: |d, v| d.log.filter = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_LOG_FORMAT",
            "log.format",
            Value("text"),
            13,
            "`text` or `json`",
        ),
        parse: parse::log_format,
        put: |d, v| d.log.json = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_TLS_CERT_FILE",
            "tls.cert_file",
            Words("unset: plain text"),
            40,
            "PEM certificate chain both listeners serve over TLS; reloaded when it changes",
        ),
        parse: parse::path,
        put: |d, v| d.tls.cert_file = Some(v),
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_TLS_KEY_FILE",
            "tls.key_file",
            Words("unset"),
            41,
            "PEM private key of the certificate (PKCS#8, PKCS#1 or SEC1)",
        ),
        parse: parse::path,
        put: |d, v| d.tls.key_file = Some(v),
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_TLS_CLIENT_CA_FILE",
            "tls.client_ca_file",
            Words("unset"),
            42,
            "PEM CA bundle client certificates must chain to (mutual TLS)",
        ),
        parse: parse::path,
        put: |d, v| d.tls.client_ca_file = Some(v),
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_TLS_CLIENT_AUTH",
            "tls.client_auth",
            Words("`required` with a client CA, else `none`"),
            43,
            "`required`: no client certificate, no connection; `optional`: a presented one must verify; `none`",
        ),
        parse: ClientAuth::parse,
        put: |d, v| d.tls.client_auth = Some(v),
    },
    &List {
        doc: doc(
            "GATEHOUSE_TLS_TRUSTED_SERVICES",
            "tls.trusted_services",
            Words("unset"),
            44,
            "client certificate names (SPIFFE IDs, DNS names) trusted like a server token for the server-only calls",
        ),
        put: |d, v| d.tls.trusted_services = Some(v),
    },
    &Tree {
        doc: doc(
            "",
            "tls.services",
            Words("unset"),
            45,
            "file only: `[{san, name, roles}]`, callers whose certificate names `san` are checked as the `service` principal `name`",
        ),
        parse: parse::tree::<Vec<ServiceIdentity>>,
        put: |d, v| d.tls.services = Some(v),
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_BROWSER_DOORS",
            "browser.enabled",
            Value("false"),
            55,
            "answer pages on the HTTP listener: `/v1/check`, `/v1/check-batch`, `/v1/allowed-actions`, `/v1/capabilities` and their gRPC-Web calls, with the user's own token",
        ),
        parse: parse::bool,
        put: |d, v| d.browser_doors = v,
    },
    &List {
        doc: doc(
            "GATEHOUSE_BROWSER_ORIGINS",
            "browser.allowed_origins",
            Words("none: pages of other origins are refused"),
            49,
            "origins (`https://app.example.com`) whose pages may ask `/v1/*` and gRPC-Web with their user's token (CORS)",
        ),
        put: |d, v| d.browser_origins = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_BROWSER_RATE_PER_USER",
            "browser.rate_per_user",
            Value("20"),
            50,
            "browser calls a second per token subject, in bursts of twice as many; 0 turns it off",
        ),
        parse: parse::small::<0, 1_000_000>,
        put: |d, v| d.rate_limits.per_user = v,
    },
    &Setting {
        doc: doc(
            "GATEHOUSE_BROWSER_RATE_PER_ADDRESS",
            "browser.rate_per_address",
            Value("200"),
            51,
            "browser calls a second per client address (an IPv6 /64), in bursts of twice as many; 0 turns it off",
        ),
        parse: parse::small::<0, 1_000_000>,
        put: |d, v| d.rate_limits.per_address = v,
    },
    &Documented {
        doc: doc(
            "GATEHOUSE_CONFIG",
            "",
            Words(""),
            u8::MAX,
            "the config file, instead of `--config`",
        ),
        env_note: "",
    },
];
