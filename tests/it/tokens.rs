//! Server tokens, scope tokens and every way a token is refused, over a real server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    SECRET, TestServer, check, check_request, check_status, now, sign, sign_with, user_token,
};
use gatehouse::grpc::pb::principal::Kind;
use gatehouse::grpc::pb::{self, gatehouse_client::GatehouseClient};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

async fn verify(
    client: &mut GatehouseClient<Channel>,
    token: &str,
) -> Result<pb::Principal, tonic::Status> {
    client
        .verify(pb::VerifyRequest {
            token: token.to_owned(),
        })
        .await
        .map(|r| r.into_inner().principal.unwrap())
}

/// Decides `action` on `kind id` with `token`; returns (allowed, rule).
async fn decide(
    client: &mut GatehouseClient<Channel>,
    token: &str,
    action: &str,
    kind: &str,
    id: &str,
    attributes: Value,
) -> (bool, String) {
    let response = check(
        client,
        check_request(token, action, kind, id, attributes, json!({})),
    )
    .await;
    (response.allowed, response.rule)
}

#[tokio::test]
async fn server_tokens_are_trusted_for_anything() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    for token in [
        sign(json!({"server": true})),
        sign(json!({"resource": "*", "action": "*", "feed_id": "*"})),
    ] {
        let principal = verify(&mut client, &token).await.unwrap();
        assert_eq!(principal.kind, Kind::Server as i32);
        for (action, kind, id) in [
            ("write", "feed", "timeline:tommaso"),
            ("delete", "users", "jack"),
            ("ban", "anything", ""),
        ] {
            let (allowed, rule) = decide(&mut client, &token, action, kind, id, json!({})).await;
            assert!(allowed, "{action} {kind}");
            assert_eq!(rule, "server-token");
        }
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_false_server_flag_is_not_a_server_token() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let token = sign(json!({"server": false, "user_id": "jack"}));
    assert_eq!(
        verify(&mut client, &token).await.unwrap().kind,
        Kind::User as i32
    );
    let (allowed, _) = decide(
        &mut client,
        &token,
        "read",
        "feed",
        "timeline:tommaso",
        json!({}),
    )
    .await;
    assert!(!allowed);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn readonly_feed_token_allows_exactly_reading_that_feed() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    // What stream-python's feed("user", "jack").get_readonly_token() signs.
    let token = sign(json!({"resource": "*", "action": "read", "feed_id": "userjack"}));
    let principal = verify(&mut client, &token).await.unwrap();
    assert_eq!(principal.kind, Kind::Scoped as i32);
    let scope = principal.scope.unwrap();
    assert_eq!(
        (
            scope.resource.as_str(),
            scope.action.as_str(),
            scope.feed_id.as_str()
        ),
        ("*", "read", "userjack")
    );

    let cases = [
        ("read", "feed", "user:jack", true, "token-scope"),
        ("read", "follower", "user:jack", true, "token-scope"),
        ("write", "feed", "user:jack", false, "outside-token-scope"),
        ("read", "feed", "user:tommaso", false, "outside-token-scope"),
        (
            "read",
            "feed",
            "timeline:jack",
            false,
            "outside-token-scope",
        ),
        // Kinds that belong to no feed cannot be shown to be inside a feed scope.
        ("read", "activities", "a1", false, "outside-token-scope"),
        ("read", "users", "jack", false, "outside-token-scope"),
    ];
    for (action, kind, id, allowed, rule) in cases {
        assert_eq!(
            decide(&mut client, &token, action, kind, id, json!({})).await,
            (allowed, rule.to_owned()),
            "{action} {kind} {id}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn scope_lists_and_user_scopes_are_honoured() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let feeds = sign(
        json!({"resource": "feed", "action": "read,write", "feed_id": "userjack,timelinejack"}),
    );
    assert!(
        decide(
            &mut client,
            &feeds,
            "write",
            "feed",
            "timeline:jack",
            json!({})
        )
        .await
        .0
    );
    assert!(
        decide(&mut client, &feeds, "read", "feed", "user:jack", json!({}))
            .await
            .0
    );
    assert!(
        !decide(
            &mut client,
            &feeds,
            "delete",
            "feed",
            "user:jack",
            json!({})
        )
        .await
        .0
    );
    assert!(
        !decide(
            &mut client,
            &feeds,
            "read",
            "follower",
            "user:jack",
            json!({})
        )
        .await
        .0
    );
    assert!(
        !decide(
            &mut client,
            &feeds,
            "read",
            "feed",
            "notification:jack",
            json!({})
        )
        .await
        .0
    );

    let user = sign(json!({"resource": "users,reactions", "action": "*", "user_id": "jack"}));
    let principal = verify(&mut client, &user).await.unwrap();
    assert_eq!(principal.user_id, "jack");
    assert!(
        decide(&mut client, &user, "write", "users", "jack", json!({}))
            .await
            .0
    );
    assert!(
        !decide(&mut client, &user, "write", "users", "tommaso", json!({}))
            .await
            .0
    );
    assert!(
        decide(
            &mut client,
            &user,
            "delete",
            "reactions",
            "r1",
            json!({"user_id": "jack"})
        )
        .await
        .0
    );
    assert!(
        !decide(
            &mut client,
            &user,
            "delete",
            "reactions",
            "r1",
            json!({"user_id": "tommaso"})
        )
        .await
        .0
    );
    assert!(
        !decide(&mut client, &user, "delete", "reactions", "r1", json!({}))
            .await
            .0
    );
    assert!(
        !decide(&mut client, &user, "read", "feed", "user:jack", json!({}))
            .await
            .0
    );

    // getstream's collections token: every action on collections, any user.
    let collections =
        sign(json!({"resource": "collections", "action": "*", "feed_id": "*", "user_id": "*"}));
    assert!(
        decide(
            &mut client,
            &collections,
            "delete",
            "collections",
            "food:cheese",
            json!({"user_id": "tommaso"})
        )
        .await
        .0
    );
    assert!(
        !decide(
            &mut client,
            &collections,
            "read",
            "reactions",
            "r1",
            json!({})
        )
        .await
        .0
    );

    let reason = check(
        &mut client,
        check_request(&feeds, "delete", "feed", "user:jack", json!({}), json!({})),
    )
    .await
    .reason;
    assert!(reason.contains("outside the token's scope"), "{reason}");
    server.stop().await.unwrap();
}

/// Asserts that `token` is refused by both Verify and Check with UNAUTHENTICATED naming `reason`.
async fn assert_refused(client: &mut GatehouseClient<Channel>, token: &str, reason: &str) {
    let status = verify(client, token).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{}", status.message());
    assert!(
        status.message().contains(reason),
        "expected '{reason}' in '{}'",
        status.message()
    );
    let status = check_status(
        client,
        check_request(token, "read", "feed", "user:jack", json!({}), json!({})),
    )
    .await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains(reason),
        "expected '{reason}' in '{}'",
        status.message()
    );
    if token.len() > 20 {
        assert!(
            !status.message().contains(token),
            "the token must not be echoed"
        );
    }
    assert!(!status.message().contains(SECRET));
}

fn with_header(header: Value, claims: Value, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        signature
    )
}

#[tokio::test]
async fn every_bad_token_is_unauthenticated_with_its_reason() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let now = now();
    assert_refused(&mut client, "", "missing token").await;
    assert_refused(&mut client, "not-a-jwt", "malformed").await;
    assert_refused(&mut client, "a.b.c.d", "malformed").await;
    assert_refused(&mut client, "!!!.???.sig", "malformed").await;
    assert_refused(
        &mut client,
        &sign(json!({"user_id": "jack", "exp": now - 10})),
        "expired",
    )
    .await;
    assert_refused(
        &mut client,
        &sign(json!({"user_id": "jack", "nbf": now + 600})),
        "not yet valid",
    )
    .await;
    assert_refused(
        &mut client,
        &sign(json!({"user_id": "jack", "iat": now + 600})),
        "issued in the future",
    )
    .await;
    assert_refused(
        &mut client,
        &sign_with(
            json!({"user_id": "jack"}),
            b"some-other-apps-secret-some-other-apps",
        ),
        "bad signature",
    )
    .await;
    let mut tampered = user_token("jack");
    tampered.push('x');
    assert_refused(&mut client, &tampered, "bad signature").await;
    assert_refused(
        &mut client,
        &with_header(
            json!({"alg": "none", "typ": "JWT"}),
            json!({"server": true}),
            "",
        ),
        "algorithm not allowed",
    )
    .await;
    let hs512 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS512),
        &json!({"server": true}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    assert_refused(&mut client, &hs512, "algorithm not allowed").await;
    assert_refused(
        &mut client,
        &with_header(
            json!({"alg": "RS256", "typ": "JWT"}),
            json!({"server": true}),
            "c2ln",
        ),
        "algorithm not allowed",
    )
    .await;
    assert_refused(
        &mut client,
        &sign(json!({"user_id": "jack", "pad": "x".repeat(9000)})),
        "larger than",
    )
    .await;
    assert_refused(&mut client, &sign(json!({"user_id": ""})), "invalid claims").await;
    assert_refused(
        &mut client,
        &sign(json!({"role": "admin"})),
        "invalid claims",
    )
    .await;
    assert_refused(
        &mut client,
        &sign(json!({"user_id": "jack", "exp": "tomorrow"})),
        "invalid claims",
    )
    .await;
    let dev = with_header(
        json!({"alg": "HS256", "typ": "JWT"}),
        json!({"user_id": "jack"}),
        "devtoken",
    );
    assert_refused(&mut client, &dev, "development tokens").await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn leeway_size_cap_and_dev_tokens_follow_the_config() {
    let server = TestServer::start_with(&[
        ("GATEHOUSE_TOKEN_LEEWAY_SECONDS", "60"),
        ("GATEHOUSE_MAX_TOKEN_BYTES", "512"),
        ("GATEHOUSE_ALLOW_DEV_TOKENS", "true"),
    ])
    .await;
    let mut client = server.client().await;
    let now = now();
    assert!(
        verify(
            &mut client,
            &sign(json!({"user_id": "jack", "exp": now - 10}))
        )
        .await
        .is_ok()
    );
    assert!(
        verify(
            &mut client,
            &sign(json!({"user_id": "jack", "iat": now + 30}))
        )
        .await
        .is_ok()
    );
    assert_refused(
        &mut client,
        &sign(json!({"user_id": "jack", "exp": now - 120})),
        "expired",
    )
    .await;
    assert_refused(
        &mut client,
        &sign(json!({"user_id": "jack", "pad": "x".repeat(600)})),
        "larger than 512",
    )
    .await;
    let dev = with_header(
        json!({"alg": "HS256", "typ": "JWT"}),
        json!({"user_id": "jack"}),
        "devtoken",
    );
    let principal = verify(&mut client, &dev).await.unwrap();
    assert_eq!(
        (principal.kind, principal.user_id.as_str()),
        (Kind::User as i32, "jack")
    );
    let dev_server = with_header(
        json!({"alg": "HS256", "typ": "JWT"}),
        json!({"server": true}),
        "devtoken",
    );
    assert_refused(&mut client, &dev_server, "invalid claims").await;
    server.stop().await.unwrap();
}

#[tokio::test]
async fn verify_returns_every_claim_roles_groups_and_times() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let now = now();
    let token = sign(json!({
        "user_id": "jack", "iat": now - 5, "exp": now + 3600, "role": "moderator",
        "roles": ["editor"], "groups": ["staff", "emea"], "plan": "pro", "n": 3
    }));
    let principal = verify(&mut client, &token).await.unwrap();
    assert_eq!(principal.kind, Kind::User as i32);
    assert_eq!(principal.roles, ["moderator", "editor"]);
    assert_eq!(principal.groups, ["staff", "emea"]);
    assert_eq!(principal.issued_at.unwrap().seconds, now - 5);
    assert_eq!(principal.expires_at.unwrap().seconds, now + 3600);
    let claims = principal.claims.unwrap().fields;
    assert_eq!(claims.len(), 8);
    assert!(
        matches!(&claims["plan"].kind, Some(prost_types::value::Kind::StringValue(s)) if s == "pro")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_check_requests_are_invalid_arguments() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let token = user_token("jack");
    let no_action = check_request(&token, "", "feed", "user:jack", json!({}), json!({}));
    assert_eq!(
        check_status(&mut client, no_action).await.code(),
        Code::InvalidArgument
    );
    let no_kind = check_request(&token, "read", " ", "user:jack", json!({}), json!({}));
    assert_eq!(
        check_status(&mut client, no_kind).await.code(),
        Code::InvalidArgument
    );
    let mut no_resource = check_request(&token, "read", "feed", "user:jack", json!({}), json!({}));
    no_resource.resource = None;
    let status = check_status(&mut client, no_resource).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("resource"));
    server.stop().await.unwrap();
}
