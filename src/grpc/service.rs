use std::sync::Arc;

use serde_json::{Map, Value};
use tonic::metadata::MetadataMap;
use tonic::{Extensions, Request, Response, Status};

use super::convert::{
    explanation_to_pb, issuer_status_to_pb, principal_from_input, principal_to_pb,
    secrets_status_to_pb, struct_to_map, timestamp, tls_status_to_pb,
};
use super::layer::{CallScope, scope_of};
use super::metadata::{FromBrowser, peer, presented, require_server};
use super::pb;
use crate::app::App;
use crate::audit::{self, Subject};
use crate::decider::{self, Call, Refusal};
use crate::door::Door;
use crate::engine;
use crate::error::Error;
use crate::policy::PolicySet;
use crate::principal::Principal;
use crate::token::{IssueRequest, unix_now};

/// The most items one CheckBatch may carry, and the most resources one Capabilities call may name.
pub const MAX_BATCH_ITEMS: usize = 1_000;
/// The most actions one Capabilities call may narrow itself to.
pub const MAX_CAPABILITY_ACTIONS: usize = 64;

/// `gatehouse.v1.Gatehouse`.
pub struct GatehouseService {
    app: Arc<App>,
}

impl GatehouseService {
    pub fn new(app: Arc<App>) -> Self {
        GatehouseService { app }
    }

    /// Who is asking: a verified token, the anonymous principal, a principal described by a caller
    /// holding a server token, or, when the request names none of these, the `service` principal
    /// the connection's client certificate names. The request's fields choose the credential; a
    /// token that fails is refused, never replaced by the certificate.
    fn caller(
        &self,
        policy: &PolicySet,
        (metadata, extensions): (&MetadataMap, &Extensions),
        token: &str,
        anonymous: bool,
        described: Option<pb::PrincipalInput>,
    ) -> Result<Arc<Principal>, Error> {
        let has_token = !token.trim().is_empty();
        if let Some(browser) = extensions.get::<FromBrowser>() {
            let asks_otherwise = has_token || anonymous || described.is_some();
            return self.browser_caller(policy, browser.token(), asks_otherwise);
        }
        match (has_token, anonymous, described) {
            (_, _, Some(input)) => {
                if has_token || anonymous {
                    return Err(Error::InvalidRequest(
                        "send one of token, anonymous or principal",
                    ));
                }
                require_server(metadata, extensions, &self.app.verifier)?;
                if input.user_id.trim().is_empty() {
                    return Err(Error::InvalidRequest("principal.user_id is required"));
                }
                Ok(Arc::new(principal_from_input(input)))
            }
            (true, true, None) => Err(Error::InvalidRequest("an anonymous check carries no token")),
            (false, true, None) => Ok(Arc::new(Principal::anonymous())),
            (false, false, None) => match peer(extensions).and_then(|p| p.service()) {
                Some(service) => Ok(Arc::new(service)),
                None => self.verified(token, policy),
            },
            (true, false, None) => self.verified(token, policy),
        }
    }

    /// A browser asks only about its own user: the token comes from its `Authorization` header
    /// alone, and a token in the message, an anonymous ask or a described principal is refused. Which
    /// tokens a browser may use is [`App::browser_principal`]'s to say.
    fn browser_caller(
        &self,
        policy: &PolicySet,
        token: &str,
        asks_otherwise: bool,
    ) -> Result<Arc<Principal>, Error> {
        if asks_otherwise {
            return Err(Error::PermissionDenied(
                "a browser asks only about its own user: send the user's token in the Authorization header, and no token, anonymous or principal in the request",
            ));
        }
        self.app.browser_principal(token, policy)
    }

    /// A verified token's principal, unless `policy` (the set deciding the call) revokes the token.
    fn verified(&self, token: &str, policy: &PolicySet) -> Result<Arc<Principal>, Error> {
        Ok(self.app.authenticate(token, policy, unix_now())?)
    }

    /// Puts a call refused for its credentials (a bad, expired or revoked token, or a missing one) in
    /// the decision log, with what it asked as far as one item says it.
    fn record_refusal(
        &self,
        policy: &PolicySet,
        error: &Error,
        call: &Call<'_>,
        asked: Option<&Item>,
        source: Option<&str>,
    ) {
        let Error::Token(token_error) = error else {
            return;
        };
        let refusal = Refusal {
            action: asked.map_or("", |i| i.action.as_str()),
            resource_kind: asked.map_or("", |i| i.kind.as_str()),
            resource_id: asked.map_or("", |i| i.id.as_str()),
            source,
            error: token_error,
        };
        self.app.decider.refused(policy, &refusal, call);
    }

    /// Decides one item through the decider, with its explanation when asked for.
    fn decide(
        &self,
        policy: &PolicySet,
        request: &engine::Request<'_>,
        call: &Call<'_>,
        explain: bool,
        recording: Recording,
    ) -> pb::CheckResult {
        let judged = match recording {
            Recording::On => self.app.decider.decide(policy, request, call, explain),
            Recording::Off => decider::judge(policy, request, call.door, explain),
        };
        check_result(judged, request)
    }

    /// Check's answer, recorded by the decider or (the console's evaluation) judged the same way and
    /// recorded nowhere.
    async fn check_call(
        &self,
        request: Request<pb::CheckRequest>,
        recording: Recording,
    ) -> Result<pb::CheckResponse, Error> {
        let (metadata, extensions, request) = request.into_parts();
        let scope = scope_of(&extensions);
        // A page's questions are judged like the console's: recorded nowhere.
        let recording = match from_browser(&extensions, request.explain)? {
            true => Recording::Off,
            false => recording,
        };
        let item = item(request.action, request.resource, request.context)?;
        self.app
            .await_keys(presented(&extensions, &request.token))
            .await;
        // One set decides the whole call, its revocations included.
        let policy = self.app.policies.current();
        let call = call_of(&scope, Door::Check);
        let principal = self
            .caller(
                &policy,
                (&metadata, &extensions),
                &request.token,
                request.anonymous,
                request.principal,
            )
            .inspect_err(|e| {
                if recording == Recording::On {
                    self.record_refusal(&policy, e, &call, Some(&item), None);
                }
            })?;
        let asked = item.request(&principal, unix_now());
        engine::bounds::check(&asked)?;
        let result = self.decide(&policy, &asked, &call, request.explain, recording);
        Ok(pb::CheckResponse {
            allowed: result.allowed,
            rule: result.rule,
            reason: result.reason,
            principal: Some(principal_to_pb(&principal)),
            policy_revision: policy.revision().to_owned(),
            explanation: result.explanation,
            dry_run: result.dry_run,
        })
    }

    /// Check with its explanation, as the operator console evaluates a request: the same caller
    /// rules, the same bounds, the same judgement ([`decider::judge`], under the checks' mode) as the
    /// Check RPC, so the two cannot disagree; but recorded nowhere (no decision log entry, metric or
    /// span attribute), since nobody was let in or kept out. A described principal needs the call to
    /// be the console's ([`FromConsole`](super::FromConsole)) or to carry a server token, as in Check.
    pub async fn evaluate(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<pb::CheckResponse, Status> {
        let mut request = request;
        request.get_mut().explain = true;
        Ok(self.check_call(request, Recording::Off).await?)
    }
}

/// Whether a decision is recorded (decision log, decision metrics): every backend's and proxy's is;
/// the console's evaluation and a page's questions are not, since nobody was let in or kept out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recording {
    On,
    Off,
}

/// A verdict and its explanation as the API answers them.
fn check_result(
    (verdict, explanation): (decider::Verdict<'_>, Option<engine::Explanation>),
    request: &engine::Request<'_>,
) -> pb::CheckResult {
    pb::CheckResult {
        allowed: verdict.allowed,
        rule: verdict.decision.rule.to_owned(),
        reason: verdict.reason(request),
        explanation: explanation.as_ref().map(explanation_to_pb),
        dry_run: verdict.dry_run,
    }
}

/// The decider's view of an RPC: its door, no route, and the call scope's span and start.
fn call_of(scope: &CallScope, door: Door) -> Call<'_> {
    Call {
        door,
        route: None,
        span: scope.span(),
        started: scope.started(),
    }
}

/// A validated request item: action and resource present.
struct Item {
    action: String,
    kind: String,
    id: String,
    attributes: Map<String, Value>,
    context: Map<String, Value>,
}

fn item(
    action: String,
    resource: Option<pb::Resource>,
    context: Option<prost_types::Struct>,
) -> Result<Item, Error> {
    if action.trim().is_empty() {
        return Err(Error::InvalidRequest("action is required"));
    }
    let resource = resource.ok_or(Error::InvalidRequest("resource is required"))?;
    if resource.kind.trim().is_empty() {
        return Err(Error::InvalidRequest("resource.kind is required"));
    }
    Ok(Item {
        action,
        kind: resource.kind,
        id: resource.id,
        attributes: struct_to_map(resource.attributes),
        context: struct_to_map(context),
    })
}

impl Item {
    fn request<'a>(&'a self, principal: &'a Principal, now: i64) -> engine::Request<'a> {
        engine::Request {
            principal,
            action: &self.action,
            resource: engine::Resource {
                kind: &self.kind,
                id: &self.id,
                attributes: &self.attributes,
            },
            context: &self.context,
            now,
        }
    }
}

#[tonic::async_trait]
impl pb::gatehouse_server::Gatehouse for GatehouseService {
    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        require_server(request.metadata(), request.extensions(), &self.app.verifier)?;
        let request = request.into_inner();
        let issued = self
            .app
            .issuer
            .issue(IssueRequest {
                user_id: request.user_id,
                expires_in_seconds: request.expires_in_seconds,
                claims: struct_to_map(request.claims),
                roles: request.roles,
                groups: request.groups,
            })
            .map_err(Error::from)?;
        Ok(Response::new(pb::IssueTokenResponse {
            token: issued.token,
            expires_at: issued.expires_at.map(timestamp),
        }))
    }

    async fn verify(
        &self,
        request: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        self.app.await_keys(&request.get_ref().token).await;
        let principal = self.verified(&request.get_ref().token, &self.app.policies.current())?;
        Ok(Response::new(pb::VerifyResponse {
            principal: Some(principal_to_pb(&principal)),
        }))
    }

    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        Ok(Response::new(
            self.check_call(request, Recording::On).await?,
        ))
    }

    async fn check_batch(
        &self,
        request: Request<pb::CheckBatchRequest>,
    ) -> Result<Response<pb::CheckBatchResponse>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        let scope = scope_of(&extensions);
        let span = scope.span();
        span.set(
            "items",
            i64::try_from(request.items.len()).unwrap_or(i64::MAX),
        );
        let recording = match from_browser(&extensions, request.explain)? {
            true => Recording::Off,
            false => Recording::On,
        };
        if request.items.len() > MAX_BATCH_ITEMS {
            return Err(Error::InvalidRequest("a batch holds at most 1000 items").into());
        }
        let items = request
            .items
            .into_iter()
            .map(|i| item(i.action, i.resource, i.context))
            .collect::<Result<Vec<_>, _>>()?;
        self.app
            .await_keys(presented(&extensions, &request.token))
            .await;
        // One set decides the whole call, its revocations included.
        let policy = self.app.policies.current();
        let call = call_of(&scope, Door::Batch);
        // A refused batch is one entry, naming its item only when it has one.
        let only = match items.as_slice() {
            [only] => Some(only),
            _ => None,
        };
        let principal = self
            .caller(
                &policy,
                (&metadata, &extensions),
                &request.token,
                request.anonymous,
                request.principal,
            )
            .inspect_err(|e| self.record_refusal(&policy, e, &call, only, None))?;
        let now = unix_now();
        for item in &items {
            engine::bounds::check(&item.request(&principal, now)).map_err(Error::from)?;
        }
        let results: Vec<pb::CheckResult> = items
            .iter()
            .map(|item| {
                self.decide(
                    &policy,
                    &item.request(&principal, now),
                    &call,
                    request.explain,
                    recording,
                )
            })
            .collect();
        if span.is_recording() {
            let allowed = results.iter().filter(|r| r.allowed).count();
            span.set("allowed_items", i64::try_from(allowed).unwrap_or(i64::MAX));
            span.set("revision", policy.revision().to_owned());
            span.set("principal.kind", principal.kind.as_str());
        }
        Ok(Response::new(pb::CheckBatchResponse {
            results,
            principal: Some(principal_to_pb(&principal)),
            policy_revision: policy.revision().to_owned(),
        }))
    }

    async fn allowed_actions(
        &self,
        request: Request<pb::AllowedActionsRequest>,
    ) -> Result<Response<pb::AllowedActionsResponse>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        let scope = scope_of(&extensions);
        // The action is filled in per known action; a placeholder passes validation.
        let item = item("*".to_owned(), request.resource, request.context)?;
        self.app
            .await_keys(presented(&extensions, &request.token))
            .await;
        // One set decides the whole call, its revocations included.
        let policy = self.app.policies.current();
        let call = call_of(&scope, Door::Check);
        let principal = self
            .caller(
                &policy,
                (&metadata, &extensions),
                &request.token,
                request.anonymous,
                request.principal,
            )
            .inspect_err(|e| {
                self.record_refusal(&policy, e, &call, Some(&item), Some("allowed_actions"));
            })?;
        let asked = item.request(&principal, unix_now());
        engine::bounds::check(&asked).map_err(Error::from)?;
        let actions = engine::allowed_actions(&policy, &asked)
            .into_iter()
            .map(str::to_owned)
            .collect();
        Ok(Response::new(pb::AllowedActionsResponse {
            actions,
            principal: Some(principal_to_pb(&principal)),
            policy_revision: policy.revision().to_owned(),
        }))
    }

    async fn capabilities(
        &self,
        request: Request<pb::CapabilitiesRequest>,
    ) -> Result<Response<pb::CapabilitiesResponse>, Status> {
        let (metadata, extensions, request) = request.into_parts();
        let scope = scope_of(&extensions);
        if request.resources.len() > MAX_BATCH_ITEMS {
            return Err(
                Error::InvalidRequest("a capabilities call names at most 1000 resources").into(),
            );
        }
        if request.actions.len() > MAX_CAPABILITY_ACTIONS {
            return Err(
                Error::InvalidRequest("a capabilities call names at most 64 actions").into(),
            );
        }
        let context = struct_to_map(request.context);
        let items = request
            .resources
            .into_iter()
            .map(|resource| item("*".to_owned(), Some(resource), None))
            .collect::<Result<Vec<_>, _>>()?;
        self.app
            .await_keys(presented(&extensions, &request.token))
            .await;
        // One set decides the whole call, its revocations included.
        let policy = self.app.policies.current();
        let call = call_of(&scope, Door::Batch);
        let only = match items.as_slice() {
            [only] => Some(only),
            _ => None,
        };
        let principal = self
            .caller(
                &policy,
                (&metadata, &extensions),
                &request.token,
                request.anonymous,
                request.principal,
            )
            .inspect_err(|e| self.record_refusal(&policy, e, &call, only, Some("capabilities")))?;
        let now = unix_now();
        let mut resources = Vec::with_capacity(items.len());
        for item in &items {
            let asked = engine::Request {
                context: &context,
                ..item.request(&principal, now)
            };
            engine::bounds::check(&asked).map_err(Error::from)?;
            resources.push(pb::ResourceCapabilities {
                actions: engine::allowed_actions_among(&policy, &asked, &request.actions)
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
                kind: item.kind.clone(),
                id: item.id.clone(),
            });
        }
        Ok(Response::new(pb::CapabilitiesResponse {
            resources,
            principal: Some(principal_to_pb(&principal)),
            policy_revision: policy.revision().to_owned(),
        }))
    }

    async fn reload_policies(
        &self,
        request: Request<pb::ReloadPoliciesRequest>,
    ) -> Result<Response<pb::ReloadPoliciesResponse>, Status> {
        require_server(request.metadata(), request.extensions(), &self.app.verifier)?;
        let result = self.app.policies.reload().await;
        let serving = self.app.policies.current().revision().to_owned();
        Ok(Response::new(match result {
            Ok(_) => pb::ReloadPoliciesResponse {
                ok: true,
                policy_revision: serving,
                error: String::new(),
            },
            Err(errors) => pb::ReloadPoliciesResponse {
                ok: false,
                policy_revision: serving,
                error: errors.to_string(),
            },
        }))
    }

    async fn policy_status(
        &self,
        request: Request<pb::PolicyStatusRequest>,
    ) -> Result<Response<pb::PolicyStatusResponse>, Status> {
        require_server(request.metadata(), request.extensions(), &self.app.verifier)?;
        let store = &self.app.policies;
        let policy = store.current();
        let status = store.status().clone();
        Ok(Response::new(pb::PolicyStatusResponse {
            policy_revision: policy.revision().to_owned(),
            loaded_at: Some(timestamp(status.loaded_at)),
            policy_dir: store
                .dir()
                .map(|d| d.display().to_string())
                .unwrap_or_default(),
            files: policy
                .files()
                .iter()
                .map(|(path, sha256)| pb::PolicyFile {
                    path: path.clone(),
                    sha256: sha256.clone(),
                })
                .collect(),
            reloads_ok: status.reloads_ok,
            reloads_failed: status.reloads_failed,
            last_error_at: status.last_error.as_ref().map(|(at, _)| timestamp(*at)),
            last_error: status.last_error.map(|(_, e)| e).unwrap_or_default(),
        }))
    }

    async fn identity_status(
        &self,
        request: Request<pb::IdentityStatusRequest>,
    ) -> Result<Response<pb::IdentityStatusResponse>, Status> {
        require_server(request.metadata(), request.extensions(), &self.app.verifier)?;
        let issuers = self
            .app
            .identity
            .report()
            .into_iter()
            .map(issuer_status_to_pb)
            .collect();
        let secrets =
            secrets_status_to_pb(&self.app.keyring.secrets(), self.app.secret_file.as_deref());
        let tls = self
            .app
            .tls
            .as_ref()
            .map(|tls| tls_status_to_pb(tls.status()));
        Ok(Response::new(pb::IdentityStatusResponse {
            issuers,
            secrets: Some(secrets),
            tls: Some(tls.unwrap_or_default()),
        }))
    }

    async fn exercised_permissions(
        &self,
        request: Request<pb::ExercisedPermissionsRequest>,
    ) -> Result<Response<pb::ExercisedPermissionsResponse>, Status> {
        require_server(request.metadata(), request.extensions(), &self.app.verifier)?;
        let request = request.into_inner();
        let subject = subject(request.subject)?;
        let entries = self.app.decider.recent();
        let since = since_ms(request.since);
        let permissions = audit::exercised(&entries, &subject, since)
            .into_iter()
            .map(|e| pb::ExercisedPermission {
                action: e.action,
                resource_kind: e.resource_kind,
                resource_id_pattern: e.resource_id_pattern,
                pattern: e.is_pattern,
                allowed: e.allowed,
                count: e.count,
                first_seen: Some(timestamp_ms(e.first_seen_ms)),
                last_seen: Some(timestamp_ms(e.last_seen_ms)),
                rule: e.rule,
            })
            .collect();
        Ok(Response::new(pb::ExercisedPermissionsResponse {
            permissions,
            entries_kept: u64::try_from(entries.len()).unwrap_or(u64::MAX),
            oldest_entry: entries.first().map(|e| timestamp_ms(e.time_ms)),
        }))
    }

    async fn suggest_policy(
        &self,
        request: Request<pb::SuggestPolicyRequest>,
    ) -> Result<Response<pb::SuggestPolicyResponse>, Status> {
        require_server(request.metadata(), request.extensions(), &self.app.verifier)?;
        let request = request.into_inner();
        let subject = subject(request.subject)?;
        let entries = self.app.decider.recent();
        let exercised = audit::exercised(&entries, &subject, since_ms(request.since));
        let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
        let live = self.app.policies.current();
        let suggestion = audit::suggest(&live, &subject, &exercised, &now);
        Ok(Response::new(pb::SuggestPolicyResponse {
            policy: suggestion.yaml,
            rules: u32::try_from(suggestion.rules).unwrap_or(u32::MAX),
            notes: suggestion.notes,
        }))
    }
}

/// Whether the call came through a browser door; a browser may not ask for an explanation, which
/// describes the policy (rule names, user lists, conditions) rather than the user's own rights.
fn from_browser(extensions: &Extensions, explain: bool) -> Result<bool, Error> {
    let browser = extensions.get::<FromBrowser>().is_some();
    if browser && explain {
        return Err(Error::PermissionDenied(
            "explanations describe the policy and are not given to browsers: ask from a backend or the console",
        ));
    }
    Ok(browser)
}

fn subject(subject: Option<pb::Subject>) -> Result<Subject, Error> {
    match subject.and_then(|s| s.who) {
        Some(pb::subject::Who::UserId(id)) if !id.trim().is_empty() => Ok(Subject::User(id)),
        Some(pb::subject::Who::Role(role)) if !role.trim().is_empty() => Ok(Subject::Role(role)),
        _ => Err(Error::InvalidRequest(
            "subject.user_id or subject.role is required",
        )),
    }
}

fn since_ms(since: Option<prost_types::Timestamp>) -> i64 {
    since.map_or(i64::MIN, |t| {
        t.seconds
            .saturating_mul(1000)
            .saturating_add(i64::from(t.nanos / 1_000_000))
    })
}

fn timestamp_ms(ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}
