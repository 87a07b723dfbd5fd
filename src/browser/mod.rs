//! The browser doors on the HTTP listener: a page asks "can I?" with its own user's token, so the
//! buttons it shows and the server's decisions come from one policy set.
//!
//! Two ways in, one set of rules:
//! - gRPC-Web (tonic-web) at `/gatehouse.v1.Gatehouse/{Check,CheckBatch,AllowedActions,Capabilities}`;
//! - JSON at `POST /v1/check`, `/v1/check-batch`, `/v1/allowed-actions` and `/v1/capabilities`
//!   ([`json`]): the same messages, the same errors as HTTP statuses.
//!
//! Only those four calls are routed here: `IssueToken`, `Verify` and the operator RPCs do not exist on
//! this listener. Every call is marked [`FromBrowser`], so the service takes the user from the
//! `Authorization` header alone and refuses a token, `anonymous` or `principal` in the message, and
//! server tokens. In front of the calls, in this order:
//! 1. [`refuse_unlisted_origin`]: a request whose `Origin` is not listed is refused (403), preflight
//!    included, so no page of another origin gets an answer even where CORS would not stop it.
//! 2. CORS for the listed origins (tower-http): preflight answered, `Authorization` allowed, the
//!    gRPC status headers exposed, no cookies.
//! 3. [`admit`]: the client address's budget, one readable `Authorization` header, a deadline.

mod json;

pub(crate) use json::{check_response_json, json_response, status_response, timestamp};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http_body_util::Limited;
use tonic::Status;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::app::App;
use crate::error::Error;
use crate::grpc::pb::gatehouse_server::GatehouseServer;
use crate::grpc::{CallLayer, FromBrowser, GatehouseService};
use crate::token::{TokenError, bearer_token};

/// The gRPC methods a browser may call.
pub const GRPC_WEB_PATHS: [&str; 4] = [
    "/gatehouse.v1.Gatehouse/Check",
    "/gatehouse.v1.Gatehouse/CheckBatch",
    "/gatehouse.v1.Gatehouse/AllowedActions",
    "/gatehouse.v1.Gatehouse/Capabilities",
];
/// The largest request body a browser may send, either way in: a screen's Capabilities of a few
/// hundred resources fits many times over, and nothing is read before the caller's token verified.
pub const MAX_BROWSER_BODY_BYTES: usize = 256 * 1024;
/// How long one browser call may take, its body included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// What the browser routes share.
pub(crate) struct Browser {
    service: GatehouseService,
}

/// The browser routes, ready to merge into the HTTP listener's.
pub fn router(app: Arc<App>) -> Router {
    let grpc_web = ServiceBuilder::new()
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(CallLayer::new(app.metrics_handle()))
        .service(
            GatehouseServer::new(GatehouseService::new(Arc::clone(&app)))
                .max_decoding_message_size(MAX_BROWSER_BODY_BYTES),
        );
    let browser = Arc::new(Browser {
        service: GatehouseService::new(Arc::clone(&app)),
    });
    let mut routes = Router::new()
        .route("/v1/check", post(json::check))
        .route("/v1/check-batch", post(json::check_batch))
        .route("/v1/allowed-actions", post(json::allowed_actions))
        .route("/v1/capabilities", post(json::capabilities))
        .layer(CallLayer::new(app.metrics_handle()))
        .with_state(browser);
    for path in GRPC_WEB_PATHS {
        routes = routes.route_service(path, grpc_web.clone());
    }
    // Route layers: a path that is not one of these calls is the listener's 404, untouched by them.
    routes
        .route_layer(middleware::from_fn_with_state(Arc::clone(&app), admit))
        .route_layer(cors(&app.allowed_origins))
        .route_layer(middleware::from_fn_with_state(app, refuse_unlisted_origin))
}

/// CORS for the listed origins only.
fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::POST])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-grpc-web"),
            HeaderName::from_static("x-user-agent"),
            HeaderName::from_static("grpc-timeout"),
        ])
        .expose_headers([
            HeaderName::from_static("grpc-status"),
            HeaderName::from_static("grpc-message"),
            HeaderName::from_static("grpc-status-details-bin"),
            header::RETRY_AFTER,
        ])
        .max_age(PREFLIGHT_MAX_AGE)
        // A page of a listed (public) origin may ask the sidecar on a private address.
        .allow_private_network(true)
}

/// Refuses a request whose `Origin` is not listed (or is repeated or unreadable). A request without
/// `Origin` is not a browser's cross-origin call and goes on to the same rules as any other.
async fn refuse_unlisted_origin(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    match single_header(request.headers(), &header::ORIGIN) {
        Ok(None) => next.run(request).await,
        Ok(Some(origin)) if app.allowed_origins.iter().any(|o| o == origin) => {
            next.run(request).await
        }
        Ok(Some(_)) => plain(
            StatusCode::FORBIDDEN,
            "pages of this origin may not ask: list it in GATEHOUSE_BROWSER_ORIGINS",
        ),
        Err(message) => plain(StatusCode::BAD_REQUEST, message),
    }
}

/// Requires POST, spends the client address's budget, reads the one `Authorization` header, verifies
/// its token (only a user's) and spends the user's budget, all before the body is read; then marks the
/// call as a browser's with that token, bounds its body and gives it a deadline. Preflights end
/// before: CORS answered them.
async fn admit(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let protocol = Protocol::of(request.headers());
    if request.method() != Method::POST {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "the browser calls are POST requests",
        );
    }
    let token = match admitted_token(&app, peer, request.headers()).await {
        Ok(token) => token,
        Err(error) => return refusal(error.into(), protocol),
    };
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(FromBrowser::new(&token));
    let body = Body::new(Limited::new(body, MAX_BROWSER_BODY_BYTES));
    match tokio::time::timeout(CALL_TIMEOUT, next.run(Request::from_parts(parts, body))).await {
        Ok(response) => response,
        Err(_) => refusal(
            Status::deadline_exceeded("the call took longer than 10 s"),
            protocol,
        ),
    }
}

/// The token of a call the address's and the user's budgets admit.
async fn admitted_token(app: &App, peer: SocketAddr, headers: &HeaderMap) -> Result<String, Error> {
    app.admit_browser_address(peer.ip())?;
    let header = single_header(headers, &header::AUTHORIZATION)
        .map_err(Error::InvalidRequest)?
        .ok_or(Error::Token(TokenError::Missing))?;
    let token = bearer_token(header);
    app.await_keys(token).await;
    let principal = app.browser_principal(token, &app.policies.current())?;
    app.admit_browser_user(&principal)?;
    Ok(token.to_owned())
}

/// The header's one value as text; `Err` when it is repeated or not visible ASCII.
fn single_header<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
) -> Result<Option<&'h str>, &'static str> {
    let mut values = headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(match *name {
            header::ORIGIN => "the Origin header is given more than once",
            _ => "the Authorization header is given more than once",
        });
    }
    value.to_str().map(Some).map_err(|_| match *name {
        header::ORIGIN => "the Origin header is not ASCII",
        _ => "the Authorization header is not ASCII",
    })
}

/// How a call is answered: JSON, or gRPC-Web in the encoding it was asked in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    Json,
    GrpcWeb,
    GrpcWebText,
}

impl Protocol {
    fn of(headers: &HeaderMap) -> Protocol {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if content_type.starts_with("application/grpc-web-text") {
            Protocol::GrpcWebText
        } else if content_type.starts_with("application/grpc-web") {
            Protocol::GrpcWeb
        } else {
            Protocol::Json
        }
    }
}

/// A refusal in the caller's protocol: for gRPC-Web a trailers-only answer, HTTP 200 with the status
/// in the headers, as gRPC-Web clients read it.
fn refusal(status: Status, protocol: Protocol) -> Response {
    let content_type = match protocol {
        Protocol::Json => return json::status_response(&status),
        Protocol::GrpcWeb => "application/grpc-web+proto",
        Protocol::GrpcWebText => "application/grpc-web-text+proto",
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if status.add_header(&mut headers).is_err() {
        headers.insert("grpc-status", HeaderValue::from_static("13"));
    }
    if let Some(wait) = status.metadata().get("retry-after")
        && let Ok(wait) = HeaderValue::from_bytes(wait.as_bytes())
    {
        headers.insert(header::RETRY_AFTER, wait);
    }
    (StatusCode::OK, headers).into_response()
}

fn plain(status: StatusCode, message: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        message,
    )
        .into_response()
}
