use std::sync::Arc;

use serde_json::{Map, Value};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status};

use super::convert::{
    explanation_to_pb, principal_from_input, principal_to_pb, struct_to_map, timestamp,
};
use super::metadata::require_server;
use super::pb;
use crate::App;
use crate::engine;
use crate::error::Error;
use crate::policy::PolicySet;
use crate::principal::Principal;
use crate::token::{IssueRequest, TokenError, unix_now};

/// The most items one CheckBatch may carry.
pub const MAX_BATCH_ITEMS: usize = 1_000;

/// `gatehouse.v1.Gatehouse`.
pub struct GatehouseService {
    app: Arc<App>,
}

impl GatehouseService {
    pub fn new(app: Arc<App>) -> Self {
        GatehouseService { app }
    }

    /// Who is asking: a verified token, the anonymous principal, or a principal described by a caller
    /// holding a server token.
    fn caller(
        &self,
        policy: &PolicySet,
        metadata: &MetadataMap,
        token: &str,
        anonymous: bool,
        described: Option<pb::PrincipalInput>,
    ) -> Result<Principal, Error> {
        let has_token = !token.trim().is_empty();
        match (has_token, anonymous, described) {
            (_, _, Some(input)) => {
                if has_token || anonymous {
                    return Err(Error::InvalidRequest(
                        "send one of token, anonymous or principal",
                    ));
                }
                require_server(metadata, &self.app.verifier)?;
                if input.user_id.trim().is_empty() {
                    return Err(Error::InvalidRequest("principal.user_id is required"));
                }
                Ok(principal_from_input(input))
            }
            (true, true, None) => Err(Error::InvalidRequest("an anonymous check carries no token")),
            (false, true, None) => Ok(Principal::anonymous()),
            (_, false, None) => self.verified(token, policy),
        }
    }

    /// A verified token's principal, unless `policy` (the set deciding the call) revokes the token.
    fn verified(&self, token: &str, policy: &PolicySet) -> Result<Principal, Error> {
        let principal = self.app.verifier.verify(token)?;
        if policy.revokes(&principal) {
            return Err(Error::Token(TokenError::Revoked));
        }
        Ok(principal)
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

/// Decides one item, with its explanation when asked for.
fn decide(policy: &PolicySet, request: &engine::Request<'_>, explain: bool) -> pb::CheckResult {
    let (decision, explanation) = if explain {
        let (decision, explanation) = engine::decide_explained(policy, request);
        (decision, Some(explanation_to_pb(&explanation)))
    } else {
        (engine::decide(policy, request), None)
    };
    for error in &decision.errors {
        tracing::warn!(
            rule = %error.rule,
            error = %error.message,
            revision = policy.revision(),
            "a condition failed to evaluate and counted as not matching"
        );
    }
    tracing::debug!(
        allowed = decision.allowed,
        rule = decision.rule,
        action = request.action,
        kind = request.resource.kind,
        revision = policy.revision(),
        "check"
    );
    pb::CheckResult {
        allowed: decision.allowed,
        rule: decision.rule.to_owned(),
        reason: decision.reason(request),
        explanation,
    }
}

#[tonic::async_trait]
impl pb::gatehouse_server::Gatehouse for GatehouseService {
    async fn issue_token(
        &self,
        request: Request<pb::IssueTokenRequest>,
    ) -> Result<Response<pb::IssueTokenResponse>, Status> {
        require_server(request.metadata(), &self.app.verifier)?;
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
        let principal = self.verified(&request.get_ref().token, &self.app.policies.current())?;
        Ok(Response::new(pb::VerifyResponse {
            principal: Some(principal_to_pb(&principal)),
        }))
    }

    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        let item = item(request.action, request.resource, request.context)?;
        // One set decides the whole call, its revocations included.
        let policy = self.app.policies.current();
        let principal = self.caller(
            &policy,
            &metadata,
            &request.token,
            request.anonymous,
            request.principal,
        )?;
        let result = decide(
            &policy,
            &item.request(&principal, unix_now()),
            request.explain,
        );
        Ok(Response::new(pb::CheckResponse {
            allowed: result.allowed,
            rule: result.rule,
            reason: result.reason,
            principal: Some(principal_to_pb(&principal)),
            policy_revision: policy.revision().to_owned(),
            explanation: result.explanation,
        }))
    }

    async fn check_batch(
        &self,
        request: Request<pb::CheckBatchRequest>,
    ) -> Result<Response<pb::CheckBatchResponse>, Status> {
        let (metadata, _, request) = request.into_parts();
        if request.items.len() > MAX_BATCH_ITEMS {
            return Err(Error::InvalidRequest("a batch holds at most 1000 items").into());
        }
        let items = request
            .items
            .into_iter()
            .map(|i| item(i.action, i.resource, i.context))
            .collect::<Result<Vec<_>, _>>()?;
        // One set decides the whole call, its revocations included.
        let policy = self.app.policies.current();
        let principal = self.caller(
            &policy,
            &metadata,
            &request.token,
            request.anonymous,
            request.principal,
        )?;
        let now = unix_now();
        let results = items
            .iter()
            .map(|item| decide(&policy, &item.request(&principal, now), request.explain))
            .collect();
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
        let (metadata, _, request) = request.into_parts();
        // The action is filled in per known action; a placeholder passes validation.
        let item = item("*".to_owned(), request.resource, request.context)?;
        // One set decides the whole call, its revocations included.
        let policy = self.app.policies.current();
        let principal = self.caller(
            &policy,
            &metadata,
            &request.token,
            request.anonymous,
            request.principal,
        )?;
        let actions = engine::allowed_actions(&policy, &item.request(&principal, unix_now()))
            .into_iter()
            .map(str::to_owned)
            .collect();
        Ok(Response::new(pb::AllowedActionsResponse {
            actions,
            principal: Some(principal_to_pb(&principal)),
            policy_revision: policy.revision().to_owned(),
        }))
    }

    async fn reload_policies(
        &self,
        request: Request<pb::ReloadPoliciesRequest>,
    ) -> Result<Response<pb::ReloadPoliciesResponse>, Status> {
        require_server(request.metadata(), &self.app.verifier)?;
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
        require_server(request.metadata(), &self.app.verifier)?;
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
}
