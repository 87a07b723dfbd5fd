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
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tonic::Status;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::app::App;
use crate::error::Error;
use crate::grpc::pb::gatehouse_server::GatehouseServer;
use crate::grpc::{CallLayer, FromBrowser, GatehouseService};

/// The gRPC methods a browser may call.
pub const GRPC_WEB_PATHS: [&str; 4] = [
    "/gatehouse.v1.Gatehouse/Check",
    "/gatehouse.v1.Gatehouse/CheckBatch",
    "/gatehouse.v1.Gatehouse/AllowedActions",
    "/gatehouse.v1.Gatehouse/Capabilities",
];
/// The largest message a browser may send, either way in.
pub const MAX_BROWSER_MESSAGE_BYTES: usize = 1024 * 1024;
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
                .max_decoding_message_size(MAX_BROWSER_MESSAGE_BYTES),
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
    routes
        .layer(middleware::from_fn_with_state(Arc::clone(&app), admit))
        .layer(cors(&app.allowed_origins))
        .layer(middleware::from_fn_with_state(app, refuse_unlisted_origin))
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

/// Requires POST, spends the client address's budget, requires one readable `Authorization` header,
/// marks the call as a browser's and gives it a deadline. Preflights end before: CORS answered them.
async fn admit(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    let grpc_web = is_grpc_web(request.headers());
    let refuse = |error: Error| refusal(error, grpc_web);
    if request.method() != Method::POST {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "the browser calls are POST requests",
        );
    }
    if let Err(limited) = app.admit_browser_address(peer.ip()) {
        return refuse(limited.into());
    }
    match single_header(request.headers(), &header::AUTHORIZATION) {
        Ok(Some(_)) => {}
        Ok(None) => return refuse(Error::Token(crate::token::TokenError::Missing)),
        Err(message) => return refuse(Error::InvalidRequest(message)),
    }
    request.extensions_mut().insert(FromBrowser);
    match tokio::time::timeout(CALL_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => refusal_status(
            Status::deadline_exceeded("the call took longer than 10 s"),
            grpc_web,
        ),
    }
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

fn is_grpc_web(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc-web"))
}

/// A refusal in the caller's protocol.
fn refusal(error: Error, grpc_web: bool) -> Response {
    refusal_status(error.into(), grpc_web)
}

fn refusal_status(status: Status, grpc_web: bool) -> Response {
    if grpc_web {
        grpc_web_status(&status)
    } else {
        json::status_response(&status)
    }
}

/// A gRPC-Web trailers-only answer: HTTP 200 with the status in the headers, as gRPC-Web clients read
/// it.
fn grpc_web_status(status: &Status) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc-web+proto"),
    );
    if status.add_header(&mut headers).is_err() {
        headers.insert("grpc-status", HeaderValue::from_static("13"));
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
