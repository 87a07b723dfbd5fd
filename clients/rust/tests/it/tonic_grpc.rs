//! The tonic example (gRPC health) behind the layer, asking a real gatehouse server, over real gRPC.

use std::net::SocketAddr;

use gatehouse_tower::GatehouseLayer;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::common::{Gatehouse, expired_token, health_client, serve_tonic, token};
use crate::grpc_app;

async fn service(gatehouse: &Gatehouse) -> SocketAddr {
    serve_tonic(GatehouseLayer::new(gatehouse.remote(), grpc_app::routes()).unwrap()).await
}

async fn client(addr: SocketAddr) -> HealthClient<Channel> {
    health_client(addr).await
}

fn request(authorization: Option<&str>) -> tonic::Request<HealthCheckRequest> {
    let mut request = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    request
}

async fn check(
    addr: SocketAddr,
    authorization: Option<&str>,
) -> Result<HealthCheckResponse, tonic::Status> {
    client(addr)
        .await
        .check(request(authorization))
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test]
async fn an_operator_checks_health_over_grpc() {
    let gatehouse = Gatehouse::start().await;
    let addr = service(&gatehouse).await;
    let bearer = format!("Bearer {}", token("olga", &["operator"]));
    let answer = check(addr, Some(&bearer)).await.unwrap();
    assert_eq!(answer.status, ServingStatus::Serving as i32);
}

#[tokio::test]
async fn a_reader_is_denied_health_with_permission_denied_and_the_reason() {
    let gatehouse = Gatehouse::start().await;
    let addr = service(&gatehouse).await;
    let jack = token("jack", &["reader"]);
    let status = check(addr, Some(&format!("Bearer {jack}")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("user 'jack' is not allowed to perform check on health grpc"),
        "{status:?}"
    );
    assert!(!status.message().contains(&jack));
}

#[tokio::test]
async fn a_call_without_a_token_or_with_a_bad_one_is_unauthenticated() {
    let gatehouse = Gatehouse::start().await;
    let addr = service(&gatehouse).await;
    let status = check(addr, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("missing authorization header"));
    let status = check(addr, Some("Bearer not a token")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let expired = format!("Bearer {}", expired_token("olga"));
    let status = check(addr, Some(&expired)).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(status.message().contains("token expired"), "{status:?}");
}

#[tokio::test]
async fn an_unmapped_grpc_method_is_refused_with_permission_denied() {
    let gatehouse = Gatehouse::start().await;
    let addr = service(&gatehouse).await;
    let bearer = format!("Bearer {}", token("olga", &["operator"]));
    let status = client(addr)
        .await
        .watch(request(Some(&bearer)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("no route maps this request"));
}
