//! The policy corpus: each directory of `tests/corpus/policies/` is a small policy set with a
//! `cases_test.yaml` suite (ignored by the loader as every `*_test.yaml` is). Each is served by a real
//! server with GATEHOUSE_POLICY_DIR pointed at it, every case is asked over gRPC, and `gatehouse test`
//! passes the same cases.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use crate::policy_suite;

use std::path::PathBuf;

use common::{TestServer, check, sign, to_struct};
use gatehouse::grpc::pb;
use policy_suite::{assert_directory_holds, cases, run_cases, subdirectories};
use serde_json::json;

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/policies")
}

fn case_dir(name: &str) -> PathBuf {
    corpus().join(name)
}

/// The corpus directories this file has a test for; a new directory must get one.
const CASES: [&str; 13] = [
    "aggregated-policies",
    "captures-in-conditions",
    "cel-conditions",
    "channel-roles",
    "conditions",
    "id-patterns",
    "implicit-roles",
    "negative-logic",
    "priority-ordering",
    "strategy-affirmative",
    "strategy-consensus",
    "strategy-unanimous",
    "time-policies",
];

#[test]
fn every_corpus_directory_is_tested_here() {
    assert_eq!(subdirectories(&corpus()), CASES);
    for name in CASES {
        let dir = case_dir(name);
        assert!(
            dir.join("cases_test.yaml").is_file(),
            "{name} has no cases_test.yaml"
        );
        assert!(cases(&dir).len() >= 5, "{name} has too few cases");
    }
}

macro_rules! corpus_case {
    ($test:ident, $dir:literal) => {
        #[tokio::test]
        async fn $test() {
            assert_directory_holds(&case_dir($dir)).await;
        }
    };
}

corpus_case!(priority_ordering_and_deny_over_allow, "priority-ordering");
corpus_case!(
    strategy_affirmative_with_three_permissions,
    "strategy-affirmative"
);
corpus_case!(
    strategy_unanimous_with_three_permissions,
    "strategy-unanimous"
);
corpus_case!(
    strategy_consensus_with_three_permissions,
    "strategy-consensus"
);
corpus_case!(negative_logic, "negative-logic");
corpus_case!(aggregated_policies, "aggregated-policies");
corpus_case!(time_policies, "time-policies");
corpus_case!(id_glob_patterns, "id-patterns");
corpus_case!(captures_in_conditions, "captures-in-conditions");
corpus_case!(channel_roles_scoped_to_the_channel, "channel-roles");
corpus_case!(equals_any_all_not_and_principal_conditions, "conditions");
corpus_case!(cel_conditions, "cel-conditions");
corpus_case!(implicit_user_and_anonymous_roles, "implicit-roles");

/// The runner is not a rubber stamp: a case whose expectation is wrong, or whose rule is wrong, is
/// reported.
#[tokio::test]
async fn the_runner_reports_cases_that_do_not_hold() {
    let dir = case_dir("priority-ordering");
    let mut all = cases(&dir);
    let mut wrong_decision = all[0].clone();
    wrong_decision.allowed = !wrong_decision.allowed;
    wrong_decision.label = "wrong decision".into();
    let mut wrong_rule = all[0].clone();
    wrong_rule.rule = Some("no-such-rule".into());
    wrong_rule.label = "wrong rule".into();
    all.truncate(3);
    all.push(wrong_decision);
    all.push(wrong_rule);
    let server = TestServer::start_with(&[("GATEHOUSE_POLICY_DIR", dir.to_str().unwrap())]).await;
    let failures = run_cases(&server, &all).await;
    server.stop().await.unwrap();
    assert_eq!(failures.len(), 2, "{failures:#?}");
    assert!(failures[0].starts_with("wrong decision"), "{failures:#?}");
    assert!(failures[1].starts_with("wrong rule"), "{failures:#?}");
}

fn explained(
    token: &str,
    action: &str,
    resource: pb::Resource,
    context: serde_json::Value,
) -> pb::CheckRequest {
    pb::CheckRequest {
        token: token.into(),
        action: action.into(),
        resource: Some(resource),
        context: to_struct(context),
        explain: true,
        ..Default::default()
    }
}

/// A CEL condition that fails at evaluation is reported in the explanation as an error of its rule,
/// and the rule does not allow.
#[tokio::test]
async fn a_cel_evaluation_error_is_explained_and_does_not_allow() {
    let dir = case_dir("cel-conditions");
    let server = TestServer::start_with(&[("GATEHOUSE_POLICY_DIR", dir.to_str().unwrap())]).await;
    let mut client = server.client().await;
    let payment = pb::Resource {
        kind: "payment".into(),
        id: "eur-1".into(),
        attributes: to_struct(json!({"status": "open"})),
    };
    let uma = sign(json!({"user_id": "uma"}));

    let response = check(
        &mut client,
        explained(&uma, "inspect", payment.clone(), json!({})),
    )
    .await;
    assert!(!response.allowed);
    assert_eq!(response.rule, "default-deny");
    let explanation = response.explanation.unwrap();
    let entry = explanation
        .entries
        .iter()
        .find(|e| e.name == "audit-inspections")
        .unwrap_or_else(|| panic!("{:?}", explanation.entries));
    assert_eq!(entry.result, "error", "{entry:?}");
    assert!(!entry.detail.is_empty(), "{entry:?}");
    assert!(
        entry.detail.contains("reason"),
        "the error names the key: {entry:?}"
    );

    // A type mismatch at evaluation is an error too.
    let response = check(
        &mut client,
        explained(&uma, "approve", payment.clone(), json!({"amount": "50"})),
    )
    .await;
    assert!(!response.allowed);
    let explanation = response.explanation.unwrap();
    let entry = explanation
        .entries
        .iter()
        .find(|e| e.name == "small-payments")
        .unwrap_or_else(|| panic!("{:?}", explanation.entries));
    assert_eq!(entry.result, "error", "{entry:?}");

    // With the key, the same rule permits and the entry says so.
    let response = check(
        &mut client,
        explained(&uma, "inspect", payment, json!({"reason": "audit"})),
    )
    .await;
    assert!(response.allowed);
    let explanation = response.explanation.unwrap();
    let entry = explanation
        .entries
        .iter()
        .find(|e| e.name == "audit-inspections")
        .unwrap();
    assert_eq!(entry.result, "permit");
    assert!(entry.detail.is_empty(), "{entry:?}");
    server.stop().await.unwrap();
}

/// Aggregated policies are explained as a tree: each child's result under its parent.
#[tokio::test]
async fn aggregated_policies_are_explained_as_a_tree() {
    let dir = case_dir("aggregated-policies");
    let server = TestServer::start_with(&[("GATEHOUSE_POLICY_DIR", dir.to_str().unwrap())]).await;
    let mut client = server.client().await;
    let ledger = pb::Resource {
        kind: "ledger".into(),
        id: "2024".into(),
        attributes: None,
    };
    let teller = sign(json!({"user_id": "tom", "roles": ["teller"]}));
    let response = check(
        &mut client,
        explained(&teller, "approve", ledger.clone(), json!({})),
    )
    .await;
    assert!(!response.allowed);
    assert_eq!(response.rule, "approve-ledger");
    let explanation = response.explanation.unwrap();
    assert_eq!(explanation.strategy, "priority");
    let entry = explanation
        .entries
        .iter()
        .find(|e| e.name == "approve-ledger")
        .unwrap();
    assert_eq!(entry.result, "deny");
    assert_eq!(entry.origin, "permission");
    let top = &entry.policies[..];
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].name, "branch-teller-or-manager");
    assert!(!top[0].granted);
    let children: Vec<(&str, bool)> = top[0]
        .children
        .iter()
        .map(|c| (c.name.as_str(), c.granted))
        .collect();
    assert_eq!(
        children,
        [("teller-in-branch-a", false), ("managers", false)]
    );
    let grandchildren: Vec<(&str, bool)> = top[0].children[0]
        .children
        .iter()
        .map(|c| (c.name.as_str(), c.granted))
        .collect();
    assert_eq!(grandchildren, [("tellers", true), ("branch-a", false)]);

    // Negative logic is shown, and granted is after it.
    let clerk = sign(json!({"user_id": "cid", "roles": ["clerk"]}));
    let response = check(&mut client, explained(&clerk, "comment", ledger, json!({}))).await;
    assert!(response.allowed);
    let explanation = response.explanation.unwrap();
    let entry = explanation
        .entries
        .iter()
        .find(|e| e.name == "comment-ledger")
        .unwrap();
    assert_eq!(entry.result, "permit");
    assert_eq!(entry.policies[0].name, "neither-teller-nor-manager");
    assert!(entry.policies[0].negative);
    assert!(entry.policies[0].granted);
    server.stop().await.unwrap();
}
