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
//! - [`principal`]: the caller as the engine sees it, and the names of its kinds.
//! - [`token`]: verifying and issuing JWTs; owns the API secret and holds OpenID Connect issuers' keys.
//! - [`jwks`]: fetching OpenID Connect issuers' keys (discovery, refresh, refetch), their status and metrics.
//! - [`policy`]: the policy language, its compiler, the Feeds preset and the indexed set; pure.
//! - [`engine`]: `decide(&PolicySet, &Request) -> Decision`; pure and synchronous.
//! - [`store`]: the live policy set behind an atomic swap; reading policy directories; its metrics.
//! - [`suite`]: policy test suites (`*_test.yaml`) and their runner.
//! - [`authz`]: authorizing an HTTP request as a proxy sees it (route table, Stream's credentials and
//!   error bodies), shared by the proxy front ends.
//! - [`door`]: which door a request came through.
//! - [`ratelimit`]: per-caller budgets (by token subject and by address) for the browser doors.
//! - [`decider`]: where every check is decided: enforcement mode, shadow set, and its record.
//! - [`audit`]: the decision log (ring, file, OTLP log records) and reading it back, exercised
//!   permissions and suggested least-privilege policies.
//! - [`telemetry`]: logging (with a runtime filter), OpenTelemetry export, metrics, trace context.
//! - [`app`]: what the services share, and the steps every door takes the same way.
//! - [`grpc`]: thin tonic services: ours, Envoy's ext_authz, health and reflection, under one layer.
//! - [`browser`]: the browser doors on the HTTP listener: gRPC-Web and JSON for a page asking with its
//!   user's own token, under CORS and per-caller rate limits.
//! - [`console`]: the operator console at `/console` on the HTTP listener: one embedded page over a
//!   read-only JSON API (evaluate with explanation, decisions, exercised permissions, policy status),
//!   for loopback, trusted services and server tokens.
//! - [`http`]: the HTTP listener: the `/authz` door for proxies apart from the operator endpoints.
//! - [`conn`]: guards on both listeners' connections: a cap on how many, deadlines on stalled peers.
//! - [`tls`]: TLS and mutual TLS on both listeners: certificates reloaded from files, and the
//!   identity a client certificate names.
//! - [`server`]: wiring the services to the listeners, reloaders and the shutdown sequence.
//! - [`cli`]: the commands people run: issue and verify tokens locally, check against a server.
//!
//! [`run`] serves on a listener the caller binds, until a shutdown future the caller gives completes, so
//! tests run the real server in-process on `127.0.0.1:0`.

#![forbid(unsafe_code)]

pub mod app;
pub mod audit;
pub mod authz;
pub mod browser;
pub mod cli;
pub mod config;
pub mod conn;
pub mod console;
pub mod decider;
pub mod door;
pub mod engine;
pub mod error;
pub mod grpc;
pub mod http;
pub mod jwks;
pub mod policy;
pub mod principal;
pub mod ratelimit;
pub mod server;
pub mod store;
pub mod suite;
pub mod telemetry;
pub mod tls;
pub mod token;

pub use app::App;
pub use server::{Listeners, run, run_listeners};
