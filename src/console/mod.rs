//! The operator console at `/console` on the HTTP listener: one page (HTML, JS and CSS compiled into
//! the binary, nothing fetched from elsewhere) over a read-only JSON API under `/console/api/`.
//!
//! Thin glue, like the gRPC services: evaluation is the Check RPC's own path
//! ([`GatehouseService::evaluate`]: the same caller rules and judgement, recorded nowhere), the
//! exercised permissions, suggested policy and policy status are the RPCs' own answers, and the
//! decision list and the chart read the decision log's ring ([`ring`]) only when the page asks. No
//! Check pays for the console: it adds no counter, lock or branch to the request path.
//!
//! Who may use it: the page and its script are served to anyone (they hold no data, and a browser
//! cannot send a token with a navigation); every `/console/api/` call passes [`admit`]: a peer on
//! loopback that asked for a loopback name (`Host`), or one whose client certificate names a trusted
//! service (as `/log/level`), or any peer whose `Authorization: Bearer` carries a valid server token. A token
//! that is sent is always checked, even from loopback. No endpoint changes state: no reload, no log
//! level, and an evaluation is not a decision.

mod api;
mod ring;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tonic::Status;

use crate::app::App;
use crate::browser::status_response;
use crate::grpc::{FromConsole, GatehouseService};
use crate::principal::PrincipalKind;
use crate::tls::Peer;

/// The console's page, script and style sheet, compiled in.
const PAGE: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// What every console response is sent with: nothing but the console's own files may run or load,
/// and no page may frame it.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";
/// How long one API call may take, its body included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// What the API handlers share.
pub(crate) struct Console {
    app: Arc<App>,
    service: GatehouseService,
}

/// The console's routes, ready to merge into the HTTP listener's.
pub fn router(app: Arc<App>) -> Router {
    let console = Arc::new(Console {
        service: GatehouseService::new(Arc::clone(&app)),
        app: Arc::clone(&app),
    });
    let api = Router::new()
        .route("/console/api/evaluate", post(api::evaluate))
        .route("/console/api/decisions", get(api::decisions))
        .route("/console/api/rate", get(api::rate))
        .route("/console/api/exercised", get(api::exercised))
        .route("/console/api/suggest", get(api::suggest))
        .route("/console/api/policy", get(api::policy))
        .with_state(console)
        .route_layer(middleware::from_fn_with_state(app, admit));
    Router::new()
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(style))
        .merge(api)
        // Route layers: another path on the listener is untouched by the console's gate and headers.
        .route_layer(middleware::from_fn(secure_headers))
}

async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// The console's headers on every response: its Content-Security-Policy, no sniffing, no referrer,
/// and no caching of data.
async fn secure_headers(request: Request, next: Next) -> Response {
    let is_api = request.uri().path().starts_with("/console/api/");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if is_api {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// Admits an API call (see the module docs), refuses one another site's page makes, marks it
/// [`FromConsole`] and gives it a deadline. A refusal says what is needed and nothing about the
/// token or the data, and nothing is logged.
async fn admit(
    State(app): State<Arc<App>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Err(status) = same_site(request.headers()) {
        return status_response(&status);
    }
    let operator = operator(remote, &request);
    if let Err(status) = server_token(&app, request.headers(), operator) {
        return status_response(&status);
    }
    request.extensions_mut().insert(FromConsole);
    match tokio::time::timeout(CALL_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => status_response(&Status::deadline_exceeded("the call took longer than 10 s")),
    }
}

/// Whether the peer may use the console without a token: one whose client certificate names a
/// trusted service, or one on loopback that asked for a loopback name. A page of another site that
/// rebinds its own name to 127.0.0.1 reaches loopback with that name as `Host`, so it is not let in
/// without a token.
fn operator(remote: SocketAddr, request: &Request) -> bool {
    let peer = request.extensions().get::<Peer>();
    if !remote.ip().is_loopback() {
        return crate::tls::may_administer(remote, peer);
    }
    peer.is_some_and(Peer::is_trusted) || names_loopback(request.headers())
}

/// Whether the request's one `Host` names loopback: `localhost`, an IPv4 loopback address or `[::1]`,
/// with any port.
fn names_loopback(headers: &HeaderMap) -> bool {
    let mut hosts = headers.get_all(header::HOST).iter();
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return false;
    };
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    };
    name.eq_ignore_ascii_case("localhost")
        || name == "[::1]"
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Refuses a call another site's page makes from the operator's browser: the console's own page
/// sends its calls same-origin.
fn same_site(headers: &HeaderMap) -> Result<(), Status> {
    let site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none");
    if matches!(site, "cross-site" | "same-site") {
        return Err(Status::permission_denied(
            "the console's API answers the console's own page only",
        ));
    }
    Ok(())
}

/// The credential rule: a token that is sent must be one valid server token; without one, only an
/// operator peer (loopback or a trusted service) is let in.
fn server_token(app: &App, headers: &HeaderMap, operator: bool) -> Result<(), Status> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let value = match (values.next(), values.next()) {
        (None, _) if operator => return Ok(()),
        (None, _) => {
            return Err(Status::unauthenticated(
                "from outside the pod the console needs a server token: paste one in the page",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(Status::invalid_argument(
                "the Authorization header is given more than once",
            ));
        }
        (Some(value), None) => value,
    };
    let token = value
        .to_str()
        .map(crate::token::bearer_token)
        .map_err(|_| Status::invalid_argument("the Authorization header is not ASCII"))?;
    match app.verifier.verify(token) {
        Ok(principal) if principal.kind == PrincipalKind::Server => Ok(()),
        Ok(_) => Err(Status::permission_denied(
            "the console needs a server token; user and scope tokens are refused",
        )),
        Err(_) => Err(Status::unauthenticated(
            "the token is not a valid server token",
        )),
    }
}

/// A JSON error in the API's form.
fn invalid(message: impl Into<String>) -> Response {
    status_response(&Status::invalid_argument(message.into()))
}

/// The API's answers: JSON with 200.
fn ok_json(value: &serde_json::Value) -> Response {
    crate::browser::json_response(StatusCode::OK, value)
}
