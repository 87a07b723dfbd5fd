//! The server as infrastructure sees it: gRPC health, reflection, and graceful shutdown.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::time::Duration;

use common::{TestServer, check, check_request, user_token};
use serde_json::json;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

async fn health(server: &TestServer, service: &str) -> ServingStatus {
    let mut client = HealthClient::new(server.channel().await);
    let response = client
        .check(HealthCheckRequest {
            service: service.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    ServingStatus::try_from(response.status).unwrap()
}

#[tokio::test]
async fn health_reports_serving_for_the_server_and_the_service() {
    let server = TestServer::start().await;
    assert_eq!(health(&server, "").await, ServingStatus::Serving);
    assert_eq!(
        health(&server, "gatehouse.v1.Gatehouse").await,
        ServingStatus::Serving
    );
    let mut client = HealthClient::new(server.channel().await);
    let unknown = client
        .check(HealthCheckRequest {
            service: "nope.v1.Nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn reflection_v1_lists_and_describes_the_services() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let server = TestServer::start().await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let requests = vec![
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "gatehouse.v1.Gatehouse".into(),
            )),
        },
    ];
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "gatehouse.v1.Gatehouse",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }
    let Some(MessageResponse::FileDescriptorResponse(files)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected file descriptors");
    };
    assert!(!files.file_descriptor_proto.is_empty());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn reflection_v1alpha_answers_for_older_tools() {
    use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;

    let server = TestServer::start().await;
    let mut client = ServerReflectionClient::new(server.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        responses.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    assert!(
        list.service
            .iter()
            .any(|s| s.name == "gatehouse.v1.Gatehouse")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_reports_not_serving_while_draining_then_stops_cleanly() {
    let mut server = TestServer::start_with(&[
        ("GATEHOUSE_DRAIN_DELAY", "2s"),
        ("GATEHOUSE_SHUTDOWN_GRACE", "5s"),
    ])
    .await;
    // Connections opened before the signal keep working during the drain delay.
    let channel = server.channel().await;
    let mut health = HealthClient::new(channel.clone());
    let mut gatehouse = gatehouse::grpc::pb::gatehouse_client::GatehouseClient::new(channel);
    server.signal_shutdown();
    let mut status = ServingStatus::Serving;
    for _ in 0..100 {
        let response = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        status = ServingStatus::try_from(response.status).unwrap();
        if status == ServingStatus::NotServing {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(status, ServingStatus::NotServing);
    let response = health
        .check(HealthCheckRequest {
            service: "gatehouse.v1.Gatehouse".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ServingStatus::try_from(response.status).unwrap(),
        ServingStatus::NotServing
    );
    let decision = check(
        &mut gatehouse,
        check_request(
            &user_token("jack"),
            "read",
            "feed",
            "user:tommaso",
            json!({}),
            json!({}),
        ),
    )
    .await;
    assert!(
        decision.allowed,
        "checks in the drain window are still answered"
    );
    drop(health);
    drop(gatehouse);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_call_that_never_ends_does_not_hold_shutdown_past_the_grace_period() {
    let mut server = TestServer::start_with(&[("GATEHOUSE_SHUTDOWN_GRACE", "1s")]).await;
    let mut health = HealthClient::new(server.channel().await);
    // Watch is a server stream that stays open until the server goes away.
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ServingStatus::try_from(watch.message().await.unwrap().unwrap().status).unwrap(),
        ServingStatus::Serving
    );
    server.signal_shutdown();
    let stopped = tokio::time::timeout(Duration::from_secs(30), server.stop()).await;
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "run returns once the grace period is over"
    );
}
