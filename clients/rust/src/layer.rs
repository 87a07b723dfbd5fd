//! [`GatehouseLayer`]: for every request, find its route, read the token, ask the [`Decider`], and
//! pass the request on (with the [`Caller`] as an extension) or refuse it.
//!
//! Fail closed throughout: an unmapped route, a missing, repeated or garbled `authorization` header,
//! a refused token, a denial, and by default gatehouse being unreachable all refuse the request.
//! Only [`FailureMode::Open`], which the app must choose, lets a request through without an answer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use tower::{Layer, Service};

use crate::credential::{self, HeaderError};
use crate::decider::{Credential, DecideError, Decider, Question};
use crate::refusal::{Refusal, is_grpc};
use crate::routes::{Lookup, RouteError, RouteTable, Routes};

/// What the layer does when gatehouse cannot answer (unreachable, past the deadline).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FailureMode {
    /// Refuse: 503 for HTTP, `UNAVAILABLE` for gRPC.
    #[default]
    Closed,
    /// Let the request through without a [`Caller`], logging a warning for each. Only for routes
    /// where availability matters more than authorization.
    Open,
}

/// The caller gatehouse allowed, put in the request's extensions for the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The principal's user id; empty for an anonymous caller.
    pub user_id: String,
    /// The rule that allowed the request.
    pub rule: String,
}

/// The layer to add to an axum router or a tonic server.
pub struct GatehouseLayer<D> {
    shared: Arc<Shared<D>>,
    failure: FailureMode,
}

struct Shared<D> {
    decider: D,
    routes: RouteTable,
}

impl<D> Clone for GatehouseLayer<D> {
    fn clone(&self) -> Self {
        GatehouseLayer {
            shared: Arc::clone(&self.shared),
            failure: self.failure,
        }
    }
}

impl<D: Decider> GatehouseLayer<D> {
    /// A layer asking `decider` about the requests `routes` maps, and refusing the others.
    pub fn new(decider: D, routes: Routes) -> Result<GatehouseLayer<D>, RouteError> {
        Ok(GatehouseLayer {
            shared: Arc::new(Shared {
                decider,
                routes: routes.compile()?,
            }),
            failure: FailureMode::Closed,
        })
    }

    /// What to do when gatehouse cannot answer; [`FailureMode::Closed`] unless set.
    pub fn failure_mode(mut self, mode: FailureMode) -> GatehouseLayer<D> {
        self.failure = mode;
        self
    }
}

impl<S, D> Layer<S> for GatehouseLayer<D> {
    type Service = Gatehouse<S, D>;

    fn layer(&self, inner: S) -> Gatehouse<S, D> {
        Gatehouse {
            inner,
            shared: Arc::clone(&self.shared),
            failure: self.failure,
        }
    }
}

/// The service [`GatehouseLayer`] wraps around the app.
pub struct Gatehouse<S, D> {
    inner: S,
    shared: Arc<Shared<D>>,
    failure: FailureMode,
}

impl<S: Clone, D> Clone for Gatehouse<S, D> {
    fn clone(&self) -> Self {
        Gatehouse {
            inner: self.inner.clone(),
            shared: Arc::clone(&self.shared),
            failure: self.failure,
        }
    }
}

/// The inner service's body, or a refusal's.
pub type GatehouseBody<B> = Either<B, Full<Bytes>>;

type Answered<B, E> = Pin<Box<dyn Future<Output = Result<Response<GatehouseBody<B>>, E>> + Send>>;

impl<S, D, ReqBody, ResBody> Service<Request<ReqBody>> for Gatehouse<S, D>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
    D: Decider,
{
    type Response = Response<GatehouseBody<ResBody>>;
    type Error = S::Error;
    type Future = Answered<ResBody, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // The instance polled ready serves this request; the clone stays for the next poll_ready.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let grpc = is_grpc(request.headers());
        let lookup = self
            .shared
            .routes
            .lookup(request.method(), request.uri(), request.headers());
        let question = match lookup {
            Lookup::Public => return pass(inner, request),
            Lookup::Unmapped => return refuse(Refusal::Unmapped, grpc),
            Lookup::BadPath => return refuse(Refusal::BadPath, grpc),
            Lookup::Checked {
                action,
                resource,
                anonymous,
            } => {
                let credential = match credential::bearer(request.headers()) {
                    Ok(token) => Credential::Token(token),
                    Err(HeaderError::Missing) if anonymous => Credential::Anonymous,
                    Err(e) => return refuse(Refusal::Unauthenticated(e.to_string()), grpc),
                };
                Question {
                    credential,
                    action: action.to_owned(),
                    resource,
                }
            }
        };
        let shared = Arc::clone(&self.shared);
        let failure = self.failure;
        Box::pin(async move {
            let refusal = match shared.decider.decide(&question).await {
                Ok(answer) if answer.allowed => {
                    request.extensions_mut().insert(Caller {
                        user_id: answer.user_id,
                        rule: answer.rule,
                    });
                    return answer_with(inner.call(request).await);
                }
                Ok(answer) => Refusal::Denied(answer.reason),
                Err(DecideError::Unauthenticated(why)) => Refusal::Unauthenticated(why),
                Err(error) if error.is_unavailable() => {
                    if failure == FailureMode::Open {
                        tracing::warn!(
                            action = %question.action,
                            resource.kind = %question.resource.kind,
                            %error,
                            "gatehouse did not answer: letting the request through (failure mode open)"
                        );
                        return answer_with(inner.call(request).await);
                    }
                    tracing::warn!(
                        action = %question.action,
                        resource.kind = %question.resource.kind,
                        %error,
                        "gatehouse did not answer: refusing the request"
                    );
                    Refusal::Unavailable
                }
                Err(error) => {
                    tracing::error!(
                        action = %question.action,
                        resource.kind = %question.resource.kind,
                        %error,
                        "gatehouse refused the question this route asks"
                    );
                    Refusal::Failed
                }
            };
            Ok(refusal.into_response(grpc).map(Either::Right))
        })
    }
}

fn pass<S, ReqBody, ResBody>(mut inner: S, request: Request<ReqBody>) -> Answered<ResBody, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    ResBody: Send + 'static,
{
    let future = inner.call(request);
    Box::pin(async move { answer_with(future.await) })
}

fn refuse<B: Send + 'static, E: Send + 'static>(refusal: Refusal, grpc: bool) -> Answered<B, E> {
    let response = refusal.into_response(grpc).map(Either::Right);
    Box::pin(std::future::ready(Ok(response)))
}

fn answer_with<B, E>(result: Result<Response<B>, E>) -> Result<Response<GatehouseBody<B>>, E> {
    result.map(|response| response.map(Either::Left))
}
