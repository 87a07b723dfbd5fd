//! The policy RPCs over a real server with the shipped sets: explanations, principals described by a
//! trusted backend, anonymous callers, CheckBatch and AllowedActions.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::collections::BTreeSet;

use common::{
    TestServer, check, check_request, check_status, server_token, sign, to_struct, user_token,
};
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use gatehouse::grpc::pb::principal::Kind;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

fn policy_dir(relative: &str) -> String {
    format!("{}/policies/{relative}", env!("CARGO_MANIFEST_DIR"))
}

async fn serve(relative: &str) -> TestServer {
    TestServer::start_with(&[("GATEHOUSE_POLICY_DIR", &policy_dir(relative))]).await
}

async fn stream_chat() -> TestServer {
    serve("examples/stream-chat").await
}

/// jack: a global user who moderates messaging:general.
fn jack() -> String {
    sign(json!({
        "user_id": "jack",
        "roles": ["user"],
        "channel_roles": {"messaging:general": "channel_moderator"},
    }))
}

/// tommaso: a global user with no channel role.
fn tommaso() -> String {
    sign(json!({"user_id": "tommaso", "roles": ["user"]}))
}

fn message(author: &str, channel: &str) -> pb::Resource {
    pb::Resource {
        kind: "message".into(),
        id: format!("m-{author}"),
        attributes: to_struct(json!({"user_id": author, "channel": channel})),
    }
}

fn channel(id: &str) -> pb::Resource {
    pb::Resource {
        kind: "channel".into(),
        id: id.into(),
        attributes: None,
    }
}

fn with_authorization<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", value.parse().unwrap());
    }
    request
}

fn bearer_server() -> String {
    format!("Bearer {}", server_token())
}

fn jack_input() -> pb::PrincipalInput {
    pb::PrincipalInput {
        user_id: "jack".into(),
        roles: vec!["user".into()],
        channel_roles: [(
            "messaging:general".to_owned(),
            "channel_moderator".to_owned(),
        )]
        .into_iter()
        .collect(),
        ..Default::default()
    }
}

fn request_for(resource: pb::Resource, action: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        action: action.into(),
        resource: Some(resource),
        ..Default::default()
    }
}

async fn check_as(
    client: &mut GatehouseClient<Channel>,
    request: pb::CheckRequest,
    authorization: Option<&str>,
) -> Result<pb::CheckResponse, tonic::Status> {
    client
        .check(with_authorization(request, authorization))
        .await
        .map(tonic::Response::into_inner)
}

// ---------------------------------------------------------------------------------------------------
// explain

#[tokio::test]
async fn explain_shows_both_keycloak_permissions_under_unanimous() {
    let server = serve("examples/keycloak-bank-unanimous").await;
    let mut client = server.client().await;
    let teller = sign(json!({"user_id": "bob", "roles": ["bank_teller"]}));
    let mut request = check_request(
        &teller,
        "account:view",
        "account",
        "42",
        json!({}),
        json!({}),
    );
    request.explain = true;
    let response = check(&mut client, request).await;
    assert!(!response.allowed);
    assert_eq!(response.rule, "view-account-scope");
    let explanation = response
        .explanation
        .expect("explain returns an explanation");
    assert_eq!(explanation.strategy, "unanimous");

    let entry = |name: &str| -> pb::TraceEntry {
        explanation
            .entries
            .iter()
            .find(|e| e.name == name)
            .cloned()
            .unwrap_or_else(|| panic!("no entry {name} in {:?}", explanation.entries))
    };
    let resource = entry("view-account-resource");
    assert_eq!(resource.origin, "permission");
    assert_eq!(resource.result, "permit");
    assert_eq!(resource.policies.len(), 1, "{:?}", resource.policies);
    assert_eq!(
        resource.policies[0].name,
        "only-bank-teller-and-account-owner"
    );
    assert!(resource.policies[0].granted);
    assert!(!resource.policies[0].negative);

    let scope = entry("view-account-scope");
    assert_eq!(scope.origin, "permission");
    assert_eq!(scope.result, "deny");
    assert_eq!(scope.actions, ["account:view"]);
    assert_eq!(scope.policies.len(), 1, "{:?}", scope.policies);
    assert_eq!(scope.policies[0].name, "only-account-owner");
    assert!(!scope.policies[0].granted);

    // The same question without explain: the same answer, and no explanation.
    let plain = check(
        &mut client,
        check_request(
            &teller,
            "account:view",
            "account",
            "42",
            json!({}),
            json!({}),
        ),
    )
    .await;
    assert!(!plain.allowed);
    assert_eq!(plain.rule, "view-account-scope");
    assert!(plain.explanation.is_none(), "{:?}", plain.explanation);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn explain_lists_every_chat_policy_considered_with_its_result() {
    let server = stream_chat().await;
    let mut client = server.client().await;
    let mut request = request_for(message("tommaso", "messaging:general"), "UpdateMessage");
    request.token = jack();
    request.explain = true;
    let response = check(&mut client, request).await;
    assert!(response.allowed, "{}", response.reason);
    assert_eq!(response.rule, "channel-moderators-edit-any-message");
    let explanation = response.explanation.unwrap();
    assert_eq!(explanation.strategy, "priority");
    let results: Vec<(&str, &str, i32)> = explanation
        .entries
        .iter()
        .map(|e| (e.name.as_str(), e.result.as_str(), e.priority))
        .collect();
    // Every chat policy whose kinds and actions cover UpdateMessage on a message, by priority.
    assert_eq!(
        results,
        [
            ("anonymous-cannot-write", "not_applicable", 999),
            ("admins-do-everything", "not_applicable", 900),
            ("channel-moderators-edit-any-message", "permit", 70),
            ("members-edit-own-messages", "not_applicable", 60),
        ]
    );
    for entry in &explanation.entries {
        assert_eq!(entry.origin, "chat_policy");
        if entry.result == "not_applicable" {
            assert!(!entry.detail.is_empty(), "{entry:?} says why not");
        }
    }

    // A channel where jack is no moderator: every candidate is not applicable and nothing votes.
    let mut request = request_for(message("tommaso", "messaging:random"), "UpdateMessage");
    request.token = jack();
    request.explain = true;
    let response = check(&mut client, request).await;
    assert!(!response.allowed);
    assert_eq!(response.rule, "default-deny");
    let explanation = response.explanation.unwrap();
    assert!(!explanation.entries.is_empty());
    assert!(
        explanation
            .entries
            .iter()
            .all(|e| e.result == "not_applicable"),
        "{:?}",
        explanation.entries
    );
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// principal described by a trusted backend

#[tokio::test]
async fn a_described_principal_needs_a_server_token_in_the_metadata() {
    let server = stream_chat().await;
    let mut client = server.client().await;
    let described = || pb::CheckRequest {
        principal: Some(jack_input()),
        ..request_for(message("tommaso", "messaging:general"), "DeleteMessage")
    };

    let missing = check_as(&mut client, described(), None).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated, "{missing:?}");

    let user = format!("Bearer {}", user_token("jack"));
    let refused = check_as(&mut client, described(), Some(&user))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

    let forged = format!(
        "Bearer {}",
        common::sign_with(json!({"server": true}), b"another-secret")
    );
    let forged = check_as(&mut client, described(), Some(&forged))
        .await
        .unwrap_err();
    assert_eq!(forged.code(), Code::Unauthenticated, "{forged:?}");

    let response = check_as(&mut client, described(), Some(&bearer_server()))
        .await
        .unwrap();
    assert!(response.allowed, "{}", response.reason);
    assert_eq!(response.rule, "channel-moderators-edit-any-message");
    let principal = response.principal.unwrap();
    assert_eq!(principal.kind, Kind::User as i32);
    assert_eq!(principal.user_id, "jack");
    assert_eq!(principal.roles, ["user"]);
    assert_eq!(
        principal
            .channel_roles
            .get("messaging:general")
            .map(String::as_str),
        Some("channel_moderator")
    );

    // Decided as that user: the channel role does not carry over to another channel, and the bare JWT
    // (without "Bearer ") is accepted too.
    let elsewhere = pb::CheckRequest {
        principal: Some(jack_input()),
        ..request_for(message("tommaso", "messaging:random"), "DeleteMessage")
    };
    let response = check_as(&mut client, elsewhere, Some(&server_token()))
        .await
        .unwrap();
    assert!(!response.allowed);
    assert_eq!(response.rule, "default-deny");

    // Without the channel role, jack is a plain member.
    let plain = pb::CheckRequest {
        principal: Some(pb::PrincipalInput {
            channel_roles: Default::default(),
            ..jack_input()
        }),
        ..request_for(message("tommaso", "messaging:general"), "DeleteMessage")
    };
    let response = check_as(&mut client, plain, Some(&bearer_server()))
        .await
        .unwrap();
    assert!(!response.allowed);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_described_principal_is_one_of_token_anonymous_or_principal_and_names_a_user() {
    let server = stream_chat().await;
    let mut client = server.client().await;
    let base = || request_for(message("tommaso", "messaging:general"), "DeleteMessage");

    let both = pb::CheckRequest {
        token: jack(),
        principal: Some(jack_input()),
        ..base()
    };
    let status = check_as(&mut client, both, Some(&bearer_server()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let anonymous_too = pb::CheckRequest {
        anonymous: true,
        principal: Some(jack_input()),
        ..base()
    };
    let status = check_as(&mut client, anonymous_too, Some(&bearer_server()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let nameless = pb::CheckRequest {
        principal: Some(pb::PrincipalInput {
            user_id: String::new(),
            ..jack_input()
        }),
        ..base()
    };
    let status = check_as(&mut client, nameless, Some(&bearer_server()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("user_id"), "{status:?}");

    let blank = pb::CheckRequest {
        principal: Some(pb::PrincipalInput {
            user_id: "   ".into(),
            ..jack_input()
        }),
        ..base()
    };
    let status = check_as(&mut client, blank, Some(&bearer_server()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// anonymous callers

#[tokio::test]
async fn anonymous_callers_read_channels_but_never_write() {
    let server = stream_chat().await;
    let mut client = server.client().await;
    let anonymous = |resource, action| pb::CheckRequest {
        anonymous: true,
        ..request_for(resource, action)
    };

    let post = check(
        &mut client,
        anonymous(channel("messaging:general"), "CreateMessage"),
    )
    .await;
    assert!(!post.allowed);
    assert_eq!(post.rule, "anonymous-cannot-write");
    let principal = post.principal.unwrap();
    assert_eq!(principal.kind, Kind::Anonymous as i32);
    assert!(principal.user_id.is_empty());

    let read = check(
        &mut client,
        anonymous(channel("messaging:general"), "ReadChannel"),
    )
    .await;
    assert!(read.allowed, "{}", read.reason);
    assert_eq!(read.rule, "anyone-reads-channels");
    assert_eq!(read.principal.unwrap().kind, Kind::Anonymous as i32);

    let delete = check(
        &mut client,
        anonymous(message("tommaso", "messaging:general"), "DeleteMessage"),
    )
    .await;
    assert!(!delete.allowed);
    assert_eq!(delete.rule, "anonymous-cannot-write");

    let with_token = pb::CheckRequest {
        token: tommaso(),
        ..anonymous(channel("messaging:general"), "ReadChannel")
    };
    let status = check_status(&mut client, with_token).await;
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    // Neither token nor anonymous: no credentials at all.
    let status = check_status(
        &mut client,
        request_for(channel("messaging:general"), "ReadChannel"),
    )
    .await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// CheckBatch

fn item(resource: pb::Resource, action: &str) -> pb::CheckItem {
    pb::CheckItem {
        action: action.into(),
        resource: Some(resource),
        context: None,
    }
}

#[tokio::test]
async fn check_batch_answers_in_the_order_of_the_items() {
    let server = stream_chat().await;
    let mut client = server.client().await;
    let items = vec![
        item(message("tommaso", "messaging:general"), "UpdateMessage"),
        item(message("tommaso", "messaging:random"), "UpdateMessage"),
        item(channel("messaging:random"), "CreateMessage"),
        item(message("tommaso", "messaging:random"), "DeleteMessage"),
        item(channel("messaging:general"), "FreezeChannel"),
        item(message("jack", "messaging:random"), "DeleteMessage"),
        item(channel("messaging:general"), "ReadChannel"),
    ];
    let expected = [
        (true, "channel-moderators-edit-any-message"),
        (false, "default-deny"),
        (true, "members-post-messages"),
        (false, "default-deny"),
        (false, "default-deny"),
        (true, "members-edit-own-messages"),
        (true, "anyone-reads-channels"),
    ];
    let response = client
        .check_batch(pb::CheckBatchRequest {
            token: jack(),
            items: items.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(bool, &str)> = response
        .results
        .iter()
        .map(|r| (r.allowed, r.rule.as_str()))
        .collect();
    assert_eq!(got, expected);
    assert!(response.results.iter().all(|r| r.explanation.is_none()));
    assert_eq!(response.principal.unwrap().user_id, "jack");

    // One revision, the same a single Check reports; each item answers as a single Check would.
    let single = check(
        &mut client,
        pb::CheckRequest {
            token: jack(),
            ..request_for(channel("messaging:general"), "ReadChannel")
        },
    )
    .await;
    assert!(!response.policy_revision.is_empty());
    assert_eq!(response.policy_revision, single.policy_revision);
    for (item, (allowed, rule)) in items.iter().zip(expected) {
        let one = check(
            &mut client,
            pb::CheckRequest {
                token: jack(),
                action: item.action.clone(),
                resource: item.resource.clone(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!((one.allowed, one.rule.as_str()), (allowed, rule));
    }

    // Reversed, the answers are reversed.
    let reversed = client
        .check_batch(pb::CheckBatchRequest {
            token: jack(),
            items: items.iter().rev().cloned().collect(),
            explain: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let got: Vec<(bool, &str)> = reversed
        .results
        .iter()
        .map(|r| (r.allowed, r.rule.as_str()))
        .collect();
    let mut expected_reversed = expected.to_vec();
    expected_reversed.reverse();
    assert_eq!(got, expected_reversed);
    assert!(reversed.results.iter().all(|r| r.explanation.is_some()));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn check_batch_takes_at_most_a_thousand_items_each_with_an_action() {
    let server = stream_chat().await;
    let mut client = server.client().await;
    let thousand: Vec<pb::CheckItem> = (0..1_000)
        .map(|i| {
            if i % 2 == 0 {
                item(channel("messaging:general"), "ReadChannel")
            } else {
                item(channel("messaging:general"), "CreateMessage")
            }
        })
        .collect();
    let response = client
        .check_batch(pb::CheckBatchRequest {
            anonymous: true,
            items: thousand.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.results.len(), 1_000);
    for (i, result) in response.results.iter().enumerate() {
        assert_eq!(result.allowed, i % 2 == 0, "item {i}: {}", result.rule);
    }
    assert_eq!(response.principal.unwrap().kind, Kind::Anonymous as i32);

    let mut too_many = thousand.clone();
    too_many.push(item(channel("messaging:general"), "ReadChannel"));
    let status = client
        .check_batch(pb::CheckBatchRequest {
            anonymous: true,
            items: too_many,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");

    let without_action = vec![
        item(channel("messaging:general"), "ReadChannel"),
        item(channel("messaging:general"), ""),
    ];
    let status = client
        .check_batch(pb::CheckBatchRequest {
            anonymous: true,
            items: without_action,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("action"), "{status:?}");

    let without_resource = vec![pb::CheckItem {
        action: "ReadChannel".into(),
        resource: None,
        context: None,
    }];
    let status = client
        .check_batch(pb::CheckBatchRequest {
            anonymous: true,
            items: without_resource,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// AllowedActions

async fn allowed_actions(
    client: &mut GatehouseClient<Channel>,
    token: String,
    resource: pb::Resource,
    context: Value,
) -> BTreeSet<String> {
    client
        .allowed_actions(pb::AllowedActionsRequest {
            token,
            resource: Some(resource),
            context: to_struct(context),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .actions
        .into_iter()
        .collect()
}

fn set(actions: &[&str]) -> BTreeSet<String> {
    actions.iter().map(|a| (*a).to_owned()).collect()
}

const MESSAGE_ACTIONS: [&str; 3] = ["CreateMessage", "UpdateMessage", "DeleteMessage"];

fn message_actions(actions: &BTreeSet<String>) -> BTreeSet<String> {
    actions
        .iter()
        .filter(|a| MESSAGE_ACTIONS.contains(&a.as_str()))
        .cloned()
        .collect()
}

#[tokio::test]
async fn allowed_actions_for_a_channel_moderator_and_a_plain_member() {
    let server = stream_chat().await;
    let mut client = server.client().await;
    let others_message = message("ana", "messaging:general");

    let moderator = allowed_actions(&mut client, jack(), others_message.clone(), json!({})).await;
    assert_eq!(
        message_actions(&moderator),
        set(&["UpdateMessage", "DeleteMessage"]),
        "{moderator:?}"
    );
    // Nothing else either: CreateMessage is known for messages (a chat policy names it for every
    // kind), but only channels take it.
    assert_eq!(moderator, set(&["UpdateMessage", "DeleteMessage"]));

    let member = allowed_actions(&mut client, tommaso(), others_message.clone(), json!({})).await;
    assert!(message_actions(&member).is_empty(), "{member:?}");
    assert!(member.is_empty(), "{member:?}");

    // The moderator in a channel it does not moderate is a plain member there.
    let elsewhere = allowed_actions(
        &mut client,
        jack(),
        message("ana", "messaging:random"),
        json!({}),
    )
    .await;
    assert!(message_actions(&elsewhere).is_empty(), "{elsewhere:?}");

    // On its own message, the member may edit and delete it.
    let own = allowed_actions(
        &mut client,
        tommaso(),
        message("tommaso", "messaging:random"),
        json!({}),
    )
    .await;
    assert_eq!(
        message_actions(&own),
        set(&["UpdateMessage", "DeleteMessage"]),
        "{own:?}"
    );

    // Each action AllowedActions returns, Check allows; each it leaves out, Check denies.
    for action in [
        "UpdateMessage",
        "DeleteMessage",
        "CreateMessage",
        "ReadChannel",
    ] {
        let one = check(
            &mut client,
            pb::CheckRequest {
                token: jack(),
                ..request_for(others_message.clone(), action)
            },
        )
        .await;
        assert_eq!(one.allowed, moderator.contains(action), "{action}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn allowed_actions_on_feeds_with_the_default_set() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let feed = |id: &str| pb::Resource {
        kind: "feed".into(),
        id: id.into(),
        attributes: None,
    };

    let own = allowed_actions(
        &mut client,
        user_token("tommaso"),
        feed("timeline:tommaso"),
        json!({"actor": "tommaso"}),
    )
    .await;
    assert_eq!(own, set(&["read", "write", "delete"]));

    // Without an actor, writing would be impersonation.
    let no_actor = allowed_actions(
        &mut client,
        user_token("tommaso"),
        feed("timeline:tommaso"),
        json!({}),
    )
    .await;
    assert_eq!(no_actor, set(&["read", "delete"]));

    let other = allowed_actions(
        &mut client,
        user_token("jack"),
        feed("user:tommaso"),
        json!({"actor": "jack"}),
    )
    .await;
    assert_eq!(other, set(&["read"]));

    let private = allowed_actions(
        &mut client,
        user_token("jack"),
        feed("timeline:tommaso"),
        json!({"actor": "jack"}),
    )
    .await;
    assert!(private.is_empty(), "{private:?}");

    let response = client
        .allowed_actions(pb::AllowedActionsRequest {
            anonymous: true,
            resource: Some(feed("user:tommaso")),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(response.actions.is_empty(), "{:?}", response.actions);
    assert_eq!(response.principal.unwrap().kind, Kind::Anonymous as i32);
    assert!(!response.policy_revision.is_empty());
    server.stop().await.unwrap();
}

/// The first answer to `(action, kind, id, context)` as `token`.
async fn decide(
    client: &mut GatehouseClient<Channel>,
    token: &str,
    kind: &str,
    context: Value,
) -> pb::CheckResponse {
    check(
        client,
        check_request(token, "read", kind, "1", json!({}), context),
    )
    .await
}

#[tokio::test]
async fn a_condition_that_cannot_be_evaluated_never_lets_a_request_through() {
    // A deny rule and a Keycloak negative-logic policy both read `context.risk`; a caller that leaves
    // it out, or sends what cannot be compared with a number, must not get past either.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("set.yaml"),
        r#"settings:
  strategy: priority
resources:
  - kind: note
    actions: [read]
  - kind: report
    actions: [read]
rules:
  - name: anyone-reads-notes
    effect: allow
    resource: note
    actions: [read]
  - name: blocked-callers-read-nothing
    effect: deny
    resource: note
    actions: [read]
    when:
      cel: "context.risk > 3"
policies:
  - name: unless-blocked
    type: condition
    condition: "context.risk > 3"
    logic: negative
permissions:
  - name: read-reports-unless-blocked
    type: resource
    resource: report
    policies: [unless-blocked]
"#,
    )
    .unwrap();
    let server =
        TestServer::start_with(&[("GATEHOUSE_POLICY_DIR", dir.path().to_str().unwrap())]).await;
    let mut client = server.client().await;
    let alice = user_token("alice");
    for kind in ["note", "report"] {
        let open = decide(&mut client, &alice, kind, json!({"risk": 1})).await;
        assert!(open.allowed, "{kind}: {open:#?}");
        let blocked = decide(&mut client, &alice, kind, json!({"risk": 5})).await;
        assert!(!blocked.allowed, "{kind}: {blocked:#?}");
        for unreadable in [json!({}), json!({"risk": "high"}), json!({"risk": [9]})] {
            let answer = decide(&mut client, &alice, kind, unreadable.clone()).await;
            assert!(!answer.allowed, "{kind} with {unreadable}: {answer:#?}");
        }
    }
    let missing = decide(&mut client, &alice, "note", json!({})).await;
    assert_eq!(missing.rule, "blocked-callers-read-nothing");
}
