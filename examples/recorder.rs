//! A stand-in upstream app for the deployment tests (tests/deploy.rs): it answers every request with a
//! Stream-shaped JSON body and records what reached it (method, path, headers), so a test can tell what
//! Envoy let through and with which `x-gatehouse-*` headers.
//!
//! recorder APP_ADDR RECORDS_ADDR
//!
//! APP_ADDR takes the traffic (Envoy's upstream); `GET /requests` on RECORDS_ADDR returns everything
//! recorded so far as a JSON array. It is packed into an image of its own by the tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use serde_json::{Value, json};

type Records = Arc<Mutex<Vec<Value>>>;

async fn record(State(records): State<Records>, request: Request) -> impl IntoResponse {
    let mut headers = BTreeMap::new();
    for (name, value) in request.headers() {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        headers
            .entry(name.as_str().to_owned())
            .or_insert_with(Vec::new)
            .push(value);
    }
    let seen = json!({
        "method": request.method().as_str(),
        "path": request.uri().path_and_query().map_or("/", |p| p.as_str()),
        "headers": headers,
    });
    if let Ok(mut list) = records.lock() {
        list.push(seen);
    }
    (
        [(CONTENT_TYPE, "application/json")],
        json!({ "results": [], "next": "", "duration": "0.01ms" }).to_string(),
    )
}

async fn list(State(records): State<Records>) -> impl IntoResponse {
    let body = match records.lock() {
        Ok(list) => Value::Array(list.clone()).to_string(),
        Err(_) => "[]".to_owned(),
    };
    ([(CONTENT_TYPE, "application/json")], body)
}

fn address(arg: Option<String>) -> Result<SocketAddr, String> {
    let text = arg.ok_or("usage: recorder APP_ADDR RECORDS_ADDR")?;
    text.parse().map_err(|e| format!("{text}: {e}"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let app_addr = address(args.next())?;
    let records_addr = address(args.next())?;
    let records = Records::default();

    let app = Router::new()
        .fallback(record)
        .with_state(Arc::clone(&records));
    let records_app = Router::new()
        .route("/requests", get(list))
        .with_state(records);
    let app_listener = tokio::net::TcpListener::bind(app_addr)
        .await
        .map_err(|e| format!("bind {app_addr}: {e}"))?;
    let records_listener = tokio::net::TcpListener::bind(records_addr)
        .await
        .map_err(|e| format!("bind {records_addr}: {e}"))?;
    eprintln!("recorder: app on {app_addr}, records on {records_addr}");

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| e.to_string())?;
    tokio::select! {
        result = axum::serve(app_listener, app) => result.map_err(|e| e.to_string()),
        result = axum::serve(records_listener, records_app) => result.map_err(|e| e.to_string()),
        _ = terminate.recv() => Ok(()),
    }
}
