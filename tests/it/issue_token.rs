//! IssueToken: server-side only, and what it issues verifies and is checked like any Stream user token.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use common::{
    SECRET, TestServer, check, check_request, now, server_token, sign, sign_with, to_struct,
    user_token,
};
use gatehouse::grpc::pb::principal::Kind;
use gatehouse::grpc::pb::{self, gatehouse_client::GatehouseClient};
use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Request};

fn request(user_id: &str, authorization: Option<&str>) -> Request<pb::IssueTokenRequest> {
    let mut request = Request::new(pb::IssueTokenRequest {
        user_id: user_id.to_owned(),
        ..Default::default()
    });
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    request
}

async fn issue(
    client: &mut GatehouseClient<Channel>,
    request: Request<pb::IssueTokenRequest>,
) -> Result<pb::IssueTokenResponse, tonic::Status> {
    client.issue_token(request).await.map(|r| r.into_inner())
}

#[tokio::test]
async fn issue_token_needs_a_server_token() {
    let server = TestServer::start().await;
    let mut client = server.client().await;

    let status = issue(&mut client, request("tommaso", None))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("missing token"));

    let user = format!("Bearer {}", user_token("tommaso"));
    assert_eq!(
        issue(&mut client, request("tommaso", Some(&user)))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    let scoped = sign(json!({"resource": "*", "action": "*", "feed_id": "userjack"}));
    assert_eq!(
        issue(&mut client, request("jack", Some(&scoped)))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    let forged = sign_with(
        json!({"server": true}),
        b"not-the-app-secret-not-the-app-secret!!",
    );
    let status = issue(&mut client, request("tommaso", Some(&forged)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("bad signature"));

    let expired = sign(json!({"server": true, "exp": now() - 1}));
    assert_eq!(
        issue(&mut client, request("tommaso", Some(&expired)))
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    for authorization in [
        format!("Bearer {}", server_token()),
        format!("bearer {}", server_token()),
        server_token(),
        sign(json!({"resource": "*", "action": "*", "feed_id": "*"})),
    ] {
        let issued = issue(&mut client, request("tommaso", Some(&authorization))).await;
        assert!(issued.is_ok(), "{authorization:.12}: {issued:?}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn issued_tokens_carry_the_requested_claims_and_expiry() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let bearer = format!("Bearer {}", server_token());
    let before = now();
    let mut req = request("tommaso", Some(&bearer));
    *req.get_mut() = pb::IssueTokenRequest {
        user_id: "tommaso".into(),
        expires_in_seconds: 3600,
        claims: to_struct(json!({"plan": "pro", "seats": 3})),
        roles: vec!["admin".into(), "editor".into()],
        groups: vec!["staff".into()],
    };
    let issued = issue(&mut client, req).await.unwrap();
    let expires_at = issued.expires_at.unwrap().seconds;
    assert!((before + 3600..=now() + 3600).contains(&expires_at));

    let principal = client
        .verify(pb::VerifyRequest {
            token: issued.token.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .principal
        .unwrap();
    assert_eq!(principal.kind, Kind::User as i32);
    assert_eq!(principal.user_id, "tommaso");
    assert_eq!(principal.roles, ["admin", "editor"]);
    assert_eq!(principal.groups, ["staff"]);
    assert_eq!(principal.expires_at.unwrap().seconds, expires_at);
    assert!(principal.issued_at.is_some());
    let claims = principal.claims.unwrap().fields;
    assert!(
        matches!(claims["seats"].kind, Some(prost_types::value::Kind::NumberValue(n)) if n == 3.0)
    );

    // The payload is plain Stream: user_id, with seats an integer as the SDKs would write it.
    let payload = issued.token.split('.').nth(1).unwrap();
    let payload: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["user_id"], "tommaso");
    assert_eq!(payload["seats"], json!(3));
    assert!(!issued.token.contains(SECRET));

    let response = check(
        &mut client,
        check_request(
            &issued.token,
            "write",
            "feed",
            "user:tommaso",
            json!({}),
            json!({"actor": "tommaso"}),
        ),
    )
    .await;
    assert!(response.allowed, "{}", response.reason);

    let forever = issue(&mut client, request("jack", Some(&bearer)))
        .await
        .unwrap();
    assert!(forever.expires_at.is_none());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn invalid_issue_requests_are_refused() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let bearer = format!("Bearer {}", server_token());
    let cases = [
        (
            pb::IssueTokenRequest {
                user_id: String::new(),
                ..Default::default()
            },
            "user_id",
        ),
        (
            pb::IssueTokenRequest {
                user_id: "a\nb".into(),
                ..Default::default()
            },
            "user_id",
        ),
        (
            pb::IssueTokenRequest {
                user_id: "jack".into(),
                expires_in_seconds: -5,
                ..Default::default()
            },
            "expires_in_seconds",
        ),
        (
            pb::IssueTokenRequest {
                user_id: "jack".into(),
                claims: to_struct(json!({"server": true})),
                ..Default::default()
            },
            "reserved",
        ),
        (
            pb::IssueTokenRequest {
                user_id: "jack".into(),
                claims: to_struct(json!({"user_id": "tommaso"})),
                ..Default::default()
            },
            "reserved",
        ),
        (
            pb::IssueTokenRequest {
                user_id: "jack".into(),
                roles: vec![String::new()],
                ..Default::default()
            },
            "non-empty",
        ),
    ];
    for (body, expected) in cases {
        let mut req = Request::new(body);
        req.metadata_mut()
            .insert("authorization", bearer.parse().unwrap());
        let status = issue(&mut client, req).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(status.message().contains(expected), "{}", status.message());
    }
    server.stop().await.unwrap();
}
