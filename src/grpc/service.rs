use std::sync::Arc;

use tonic::{Request, Response, Status};

use super::convert::{principal_to_pb, struct_to_map, timestamp};
use super::metadata::require_server;
use super::pb;
use crate::App;
use crate::engine;
use crate::error::Error;
use crate::token::IssueRequest;

/// `gatehouse.v1.Gatehouse`.
pub struct GatehouseService {
    app: Arc<App>,
}

impl GatehouseService {
    pub fn new(app: Arc<App>) -> Self {
        GatehouseService { app }
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
        let principal = self
            .app
            .verifier
            .verify(&request.get_ref().token)
            .map_err(Error::from)?;
        Ok(Response::new(pb::VerifyResponse {
            principal: Some(principal_to_pb(&principal)),
        }))
    }

    async fn check(
        &self,
        request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let request = request.into_inner();
        if request.action.trim().is_empty() {
            return Err(Error::InvalidRequest("action is required").into());
        }
        let resource = request
            .resource
            .ok_or(Error::InvalidRequest("resource is required"))?;
        if resource.kind.trim().is_empty() {
            return Err(Error::InvalidRequest("resource.kind is required").into());
        }
        let principal = self
            .app
            .verifier
            .verify(&request.token)
            .map_err(Error::from)?;
        let attributes = struct_to_map(resource.attributes);
        let context = struct_to_map(request.context);
        let policy = self.app.policies.current();
        let decision = engine::decide(
            &policy,
            &engine::Request {
                principal: &principal,
                action: &request.action,
                resource: engine::Resource {
                    kind: &resource.kind,
                    id: &resource.id,
                    attributes: &attributes,
                },
                context: &context,
            },
        );
        tracing::debug!(
            allowed = decision.allowed,
            rule = decision.rule,
            action = %request.action,
            kind = %resource.kind,
            revision = policy.revision(),
            "check"
        );
        Ok(Response::new(pb::CheckResponse {
            allowed: decision.allowed,
            rule: decision.rule.to_owned(),
            reason: decision.reason,
            principal: Some(principal_to_pb(&principal)),
            policy_revision: policy.revision().to_owned(),
        }))
    }
}
