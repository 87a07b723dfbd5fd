//! What the services share: the token machinery, the live policy set, the decider, and the few
//! steps every door takes the same way (who is calling, and an authorizer for a proxied request).

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use crate::audit::{self, CountDropped, DecisionLog};
use crate::authz::{self, Authorizer, HttpCall, Outcome, ProxyHeaders};
use crate::config::Config;
use crate::decider::{Call, Decider, Refusal, Verdict};
use crate::door::Door;
use crate::engine;
use crate::error::{Error, ServeError};
use crate::jwks::{self, Identity};
use crate::policy::{LoadErrors, PolicySet, Route};
use crate::principal::{Principal, PrincipalKind};
use crate::ratelimit::{Limited, RateLimits};
use crate::store::{self, PolicyStore, SecretFile};
use crate::telemetry::context::RequestSpan;
use crate::telemetry::metrics::Metrics;
use crate::tls::Tls;
use crate::token::{Issuer, Issuers, Keyring, TokenError, Verifier, unix_now};

/// What the services share.
pub struct App {
    /// The API secrets the verifier and the issuer share, replaced when the secret file changes.
    pub keyring: Arc<Keyring>,
    /// The secret file the keyring is reloaded from; `None`: an inline or random secret.
    pub secret_file: Option<Arc<SecretFile>>,
    pub verifier: Verifier,
    pub issuer: Issuer,
    /// The OpenID Connect issuers' key fetchers (none configured: empty, and free).
    pub identity: Arc<Identity>,
    pub policies: Arc<PolicyStore>,
    /// The app's API key, which proxied requests must carry as `api_key`; empty: not checked.
    pub api_key: String,
    /// Remove the caller's `Authorization` header from requests a proxy lets through.
    pub strip_authorization: bool,
    /// The pair of headers `GET /authz` reads the original request from.
    pub proxy_headers: ProxyHeaders,
    /// Decides and records every check.
    pub decider: Decider,
    metrics: Arc<Metrics>,
    /// Whether the server is accepting work (false once draining); `/ready` reports it.
    pub ready: AtomicBool,
    /// TLS on both listeners; `None`: plain text.
    pub tls: Option<Arc<Tls>>,
    /// The browser doors' per-caller budgets.
    rate_limits: RateLimits,
    /// Whether the HTTP listener serves the browser doors.
    pub browser_doors: bool,
    /// The origins whose pages may ask through the browser doors.
    pub allowed_origins: Vec<String>,
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
        let keyring = Keyring::new(config.secrets.clone());
        let secret_file = config
            .secret_file
            .as_ref()
            .map(|path| SecretFile::new(Arc::clone(&keyring), path.clone()));
        let issuers = Arc::new(Issuers::new(config.issuers.clone()));
        let identity = Arc::new(Identity::new(
            Arc::clone(&issuers),
            config.jwks.clone(),
            config.verify.max_token_bytes,
        )?);
        let verifier = Verifier::with_keyring(Arc::clone(&keyring), config.verify.clone())
            .with_issuers(issuers)
            .with_cache(config.token_cache);
        let mut metrics = Metrics::new(meter.as_ref(), config.metrics);
        metrics.register(|registry, _| {
            crate::telemetry::register_token_cache_metrics(verifier.cache(), registry)
        });
        metrics.register(|registry, meter| store::register_metrics(&policies, registry, meter));
        metrics.register(|registry, _| jwks::register_metrics(&identity, registry));
        if let Some(file) = &secret_file {
            metrics.register(|registry, _| store::register_secret_metrics(file, registry));
        }
        let tls = match &config.tls {
            Some(tls) => Some(Arc::new(Tls::load(tls)?)),
            None => None,
        };
        if let Some(tls) = &tls {
            metrics.register(|registry, meter| tls.register_metrics(registry, meter));
        }
        let metrics = Arc::new(metrics);
        // Masks stay comparable across a rotation: they are keyed by the secret current at start.
        let mask_key = audit::MaskKey::derive(config.secrets.current().secret.expose());
        let counted = Arc::clone(&metrics);
        let count_dropped: CountDropped =
            Arc::new(move |sink, entries| counted.decision_log_dropped(sink, entries));
        let log = DecisionLog::start(&config.decision_log, mask_key, count_dropped)
            .map_err(ServeError::DecisionLog)?;
        Ok(App {
            verifier,
            issuer: Issuer::with_keyring(Arc::clone(&keyring)),
            keyring,
            secret_file,
            identity,
            policies,
            api_key: config.api_key.clone(),
            strip_authorization: config.strip_authorization,
            proxy_headers: config.proxy_headers,
            decider: Decider::new(Arc::clone(&metrics), log, shadow),
            metrics,
            ready: AtomicBool::new(false),
            tls,
            rate_limits: RateLimits::new(config.browser.rate_limits),
            browser_doors: config.browser.enabled,
            allowed_origins: config.browser.allowed_origins.clone(),
        })
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The metrics, for what records beside the services (the gRPC call layer).
    /// The principal a browser asks as: its token's, verified against `policy` (revocations
    /// included), and only a user's. A page never holds a server token, and a scope token speaks for
    /// a scope, not a user who could see buttons.
    pub fn browser_principal(
        &self,
        token: &str,
        policy: &PolicySet,
    ) -> Result<Arc<Principal>, Error> {
        let principal = self.authenticate(token, policy, unix_now())?;
        if principal.kind != PrincipalKind::User {
            return Err(Error::PermissionDenied(
                "a browser asks with its user's own token: server and scope tokens are refused",
            ));
        }
        Ok(principal)
    }

    /// Spends one browser call of the client address's budget; a refusal is counted.
    pub fn admit_browser_address(&self, address: std::net::IpAddr) -> Result<(), Limited> {
        self.rate_limits
            .admit_address(address)
            .inspect_err(|l| self.metrics.rate_limited(l.by.as_str()))
    }

    /// Spends one browser call of the user's budget; a refusal is counted.
    pub fn admit_browser_user(&self, principal: &Principal) -> Result<(), Limited> {
        self.rate_limits
            .admit_user(principal)
            .inspect_err(|l| self.metrics.rate_limited(l.by.as_str()))
    }

    pub fn metrics_handle(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// The caller `token` speaks for: verified at `now`, and not revoked by `policy` (the set that
    /// decides the call). Every refusal is counted by reason. The one path from a token to a caller,
    /// for every door.
    pub fn authenticate(
        &self,
        token: &str,
        policy: &PolicySet,
        now: i64,
    ) -> Result<Arc<Principal>, TokenError> {
        authz::verify_caller(&self.verifier, token, policy, now)
            .inspect_err(|e| self.metrics.token_rejected(e.reason()))
    }

    /// What every door awaits before [`App::authenticate`]: when `token` names a configured OpenID
    /// Connect issuer and a key id its keys lack, one refetch (shared, rate-limited, bounded by the
    /// fetch timeout), so the first token signed with a newly published key is accepted. Verification
    /// itself stays synchronous.
    pub async fn await_keys(&self, token: &str) {
        self.identity.await_keys(token).await;
    }

    /// Authorizes a request a proxy asks about through `door`, decided by `policy` and recorded with
    /// the request's span and start.
    pub fn authorize(
        &self,
        policy: &PolicySet,
        door: Door,
        span: &RequestSpan,
        started: Instant,
        call: &HttpCall<'_>,
    ) -> Outcome {
        let gate = DoorGate {
            app: self,
            door,
            span,
            started,
        };
        Authorizer {
            api_key: &self.api_key,
            policy,
            now: unix_now(),
            gate: &gate,
        }
        .authorize(call)
    }
}

/// One proxied call's [`authz::Gate`]: the app's authentication, and the decider recording for the
/// call's door, span and start.
struct DoorGate<'a> {
    app: &'a App,
    door: Door,
    span: &'a RequestSpan,
    started: Instant,
}

impl authz::Gate for DoorGate<'_> {
    fn authenticate(
        &self,
        token: &str,
        policy: &PolicySet,
        now: i64,
    ) -> Result<Arc<Principal>, TokenError> {
        self.app.authenticate(token, policy, now)
    }

    fn refused(&self, policy: &PolicySet, route: &Route, error: &TokenError) {
        let call = Call {
            door: self.door,
            route: Some(&route.name),
            span: self.span,
            started: self.started,
        };
        let refusal = Refusal {
            action: &route.action,
            resource_kind: &route.kind,
            // The id is read from the request only for a caller who got this far.
            resource_id: "",
            source: None,
            error,
        };
        self.app.decider.refused(policy, &refusal, &call);
    }

    fn decide<'p>(
        &self,
        policy: &'p PolicySet,
        request: &engine::Request<'_>,
        route: &str,
    ) -> Verdict<'p> {
        let call = Call {
            door: self.door,
            route: Some(route),
            span: self.span,
            started: self.started,
        };
        self.app.decider.decide(policy, request, &call, false).0
    }
}

/// The policy directory's set, or the built-in Feeds preset when none is configured.
pub fn initial_policies(config: &Config) -> Result<PolicySet, LoadErrors> {
    match &config.policy_dir {
        Some(dir) => store::load_dir(dir),
        None => config.feeds.compile(),
    }
}
