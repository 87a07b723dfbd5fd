//! gatehouse hung, down, or refusing the question: the failure mode decides only the first two.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use gatehouse_tower::{FailureMode, GatehouseLayer, Remote, Resource, Routes};
use http::Method;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;

use crate::common::{
    Gatehouse, capture_logs, closed_address, get, health_client, serve_axum, serve_tonic,
    silent_address, token,
};
use crate::{axum_app, grpc_app};

fn remote(addr: SocketAddr, deadline: Duration) -> Remote {
    Remote::connect_lazy(format!("http://{addr}"))
        .unwrap()
        .with_deadline(deadline)
}

#[tokio::test]
async fn a_gatehouse_that_never_answers_fails_closed_with_503_within_the_deadline() {
    let (logs, _guard) = capture_logs();
    let silent = silent_address().await;
    let layer = GatehouseLayer::new(
        remote(silent, Duration::from_millis(300)),
        axum_app::routes(),
    )
    .unwrap();
    let app = serve_axum(layer).await;
    let started = Instant::now();
    let (status, body) = get(app, "/books/7", Some(&token("jack", &["reader"]))).await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("authorization is unavailable"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let logged = logs.text();
    assert!(logged.contains("did not answer within 300ms"), "{logged}");
}

#[tokio::test]
async fn with_gatehouse_down_the_closed_mode_refuses_with_503_and_unavailable() {
    let down = closed_address().await;
    let layer = GatehouseLayer::new(remote(down, Duration::from_secs(2)), axum_app::routes())
        .unwrap()
        .failure_mode(FailureMode::Closed);
    let app = serve_axum(layer).await;
    let (status, body) = get(app, "/books/7", Some(&token("jack", &["reader"]))).await;
    assert_eq!(status, 503, "{body}");

    let layer =
        GatehouseLayer::new(remote(down, Duration::from_secs(2)), grpc_app::routes()).unwrap();
    let service = serve_tonic(layer).await;
    let mut request = tonic::Request::new(HealthCheckRequest::default());
    let bearer = format!("Bearer {}", token("olga", &["operator"]));
    request
        .metadata_mut()
        .insert("authorization", bearer.parse().unwrap());
    let status = health_client(service)
        .await
        .check(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(status.message(), "authorization is unavailable");
}

#[tokio::test]
async fn with_gatehouse_down_the_open_mode_lets_requests_through_unverified_and_warns_without_the_token()
 {
    let (logs, _guard) = capture_logs();
    let down = closed_address().await;
    let layer = GatehouseLayer::new(remote(down, Duration::from_secs(2)), axum_app::routes())
        .unwrap()
        .failure_mode(FailureMode::Open);
    let app = serve_axum(layer).await;
    let jack = token("jack", &["reader"]);
    let (status, body) = get(app, "/books/7", Some(&jack)).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "book 7 for an unverified caller\n")
    );
    let logged = logs.text();
    assert!(logged.contains("failure mode open"), "{logged}");
    assert!(logged.contains("action=read"), "{logged}");
    assert!(!logged.contains(&jack), "{logged}");
    // Open is about gatehouse being down, not about the caller: no token is still refused.
    let (status, _) = get(app, "/books/7", None).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_question_gatehouse_rejects_is_refused_even_in_the_open_mode() {
    let gatehouse = Gatehouse::start().await;
    // A route that forgot to name the kind: gatehouse answers INVALID_ARGUMENT.
    let routes = Routes::new().route(Method::GET, "/books/{id}", "read", |p| {
        Resource::new("", p.get("id"))
    });
    let layer = GatehouseLayer::new(gatehouse.remote(), routes)
        .unwrap()
        .failure_mode(FailureMode::Open);
    let app = serve_axum(layer).await;
    let (status, body) = get(app, "/books/7", Some(&token("jack", &["reader"]))).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.contains("authorization failed"), "{body}");
}
