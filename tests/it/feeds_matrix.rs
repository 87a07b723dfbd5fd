//! Stream's default Feeds permissions, row by row, with tommaso and jack, over a real server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use common::{TestServer, check, check_request, user_token};
use gatehouse::grpc::pb::principal::Kind;
use serde::Deserialize;
use serde_json::{Value, json};

/// One case of `tests/corpus/stream-feeds-defaults.yaml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    user: String,
    action: String,
    /// `kind:id`; the id may itself contain colons.
    resource: String,
    #[serde(default = "empty")]
    attributes: Value,
    #[serde(default = "empty")]
    context: Value,
    allowed: bool,
    rule: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Corpus {
    cases: Vec<Case>,
}

fn empty() -> Value {
    json!({})
}

fn matrix() -> Vec<Case> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/corpus/stream-feeds-defaults.yaml"
    );
    let corpus: Corpus = serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert!(corpus.cases.len() > 50);
    corpus.cases
}

#[tokio::test]
async fn every_row_of_the_default_feeds_matrix_holds() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut failures = Vec::new();
    let mut revisions = std::collections::BTreeSet::new();
    for row in matrix() {
        let (kind, id) = row.resource.split_once(':').unwrap_or((&row.resource, ""));
        let request = check_request(
            &user_token(&row.user),
            &row.action,
            kind,
            id,
            row.attributes.clone(),
            row.context.clone(),
        );
        let response = check(&mut client, request).await;
        revisions.insert(response.policy_revision.clone());
        let principal = response.principal.clone().unwrap();
        assert_eq!(principal.user_id, row.user);
        assert_eq!(principal.kind, Kind::User as i32);
        let fits = response.allowed == row.allowed
            && response.rule == row.rule
            && response.reason.starts_with(&format!("user '{}'", row.user))
            && response
                .reason
                .contains(&format!("perform {} on {kind}", row.action));
        if !fits {
            failures.push(format!(
                "{} {} {}: expected ({}, {}), got ({}, {}): {}",
                row.user,
                row.action,
                row.resource,
                row.allowed,
                row.rule,
                response.allowed,
                response.rule,
                response.reason
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "rows that do not hold:\n{}",
        failures.join("\n")
    );
    assert_eq!(revisions.len(), 1, "one policy set decided every row");
    assert!(!revisions.first().unwrap().is_empty());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn denials_read_like_streams_permission_errors() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let response = check(
        &mut client,
        check_request(
            &user_token("jack"),
            "write",
            "feed",
            "timeline:tommaso",
            json!({}),
            json!({"actor": "jack"}),
        ),
    )
    .await;
    assert!(!response.allowed);
    assert!(
        response
            .reason
            .starts_with("user 'jack' is not allowed to perform write on feed timeline:tommaso"),
        "{}",
        response.reason
    );
    let impersonation = check(
        &mut client,
        check_request(
            &user_token("jack"),
            "write",
            "feed",
            "notification:tommaso",
            json!({}),
            json!({"actor": "tommaso"}),
        ),
    )
    .await;
    assert!(
        impersonation.reason.contains("actor"),
        "{}",
        impersonation.reason
    );
    let allowed = check(
        &mut client,
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
        allowed
            .reason
            .starts_with("user 'jack' may perform read on feed user:tommaso")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn feed_group_permission_types_are_configurable() {
    let default = TestServer::start().await;
    let default_revision = check(
        &mut default.client().await,
        check_request(
            &user_token("jack"),
            "read",
            "feed",
            "user:tommaso",
            json!({}),
            json!({}),
        ),
    )
    .await
    .policy_revision;
    default.stop().await.unwrap();

    let server = TestServer::start_with(&[(
        "GATEHOUSE_FEED_GROUPS",
        "timeline=global_read_write,user=private,notification=private,announcements=global_read",
    )])
    .await;
    let mut client = server.client().await;
    let jack = user_token("jack");
    let cases = [
        ("read", "timeline:tommaso", json!({}), true),
        ("write", "timeline:tommaso", json!({"actor": "jack"}), true),
        (
            "write",
            "timeline:tommaso",
            json!({"actor": "tommaso"}),
            false,
        ),
        ("delete", "timeline:tommaso", json!({}), false),
        ("read", "user:tommaso", json!({}), false),
        (
            "write",
            "notification:tommaso",
            json!({"actor": "jack"}),
            false,
        ),
        ("read", "announcements:tommaso", json!({}), true),
        (
            "write",
            "announcements:tommaso",
            json!({"actor": "jack"}),
            false,
        ),
        ("read", "user:jack", json!({}), true),
    ];
    for (action, feed, context, expected) in cases {
        let response = check(
            &mut client,
            check_request(&jack, action, "feed", feed, json!({}), context),
        )
        .await;
        assert_eq!(
            response.allowed, expected,
            "{action} {feed}: {}",
            response.reason
        );
        assert_ne!(response.policy_revision, default_revision);
    }
    server.stop().await.unwrap();
}
