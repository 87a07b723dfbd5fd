//! The HTTP listener (`GATEHOUSE_HTTP_LISTEN`): the authorization door for proxies that ask over HTTP
//! rather than Envoy's gRPC ext_authz ([`authz`](self::authz)), and apart from it the operator's
//! endpoints: metrics, probes and the log level ([`admin`]), as linkerd keeps its admin server apart
//! from the proxy. The browser doors ([`crate::browser`]) and the operator console
//! ([`crate::console`]) are merged in from their own modules.

mod admin;
mod authz;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use axum::routing::{any, get};

use crate::app::App;

pub use authz::{
    AUTHZ_PREFIX, ENVOY_HEADERS_TO_REMOVE, ERROR_HEADER, MAX_BODY_BYTES, Original, Received, answer,
};

/// The HTTP routes.
pub fn router(app: Arc<App>) -> Router {
    let router = Router::new()
        .route(AUTHZ_PREFIX, any(authz::authorize_from_headers))
        .route("/authz/", any(authz::authorize_from_path))
        .route("/authz/{*original}", any(authz::authorize_from_path))
        .route("/metrics", get(admin::metrics))
        .route("/live", get(admin::live))
        .route("/ready", get(admin::ready))
        .route(
            "/log/level",
            get(admin::log_level).put(admin::set_log_level),
        )
        .with_state(Arc::clone(&app));
    let router = if app.browser_doors {
        router.merge(crate::browser::router(Arc::clone(&app)))
    } else {
        router
    };
    router.merge(crate::console::router(app))
}

/// Sets a header; values that are not valid header text (never expected) and empty values are left out.
pub(crate) fn insert(response: &mut Response, name: &str, value: &str) {
    if value.is_empty() {
        return;
    }
    if let (Ok(name), Ok(value)) = (
        HeaderName::from_bytes(name.as_bytes()),
        HeaderValue::from_str(value),
    ) {
        response.headers_mut().insert(name, value);
    }
}
