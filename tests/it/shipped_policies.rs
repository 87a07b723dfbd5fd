//! The policy sets shipped under `policies/`, each served by a real server with GATEHOUSE_POLICY_DIR:
//! every case of their `*_test.yaml` suites holds over gRPC (users by signed tokens, anonymous callers
//! without one, backends with a server token), `gatehouse test DIR` passes them all, and the Feeds set
//! decides exactly as the built-in preset does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;
use crate::policy_suite;

use std::path::PathBuf;

use common::TestServer;
use policy_suite::{ask, assert_directory_holds, cases, subdirectories};

fn policies(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("policies")
        .join(relative)
}

/// The example sets this file has a test for (doc-editor's is in doc_editor.rs, with its proxies); a
/// new example must get one.
const EXAMPLES: [&str; 7] = [
    "doc-editor",
    "graphql-qa",
    "keycloak-bank-affirmative",
    "keycloak-bank-resource-only",
    "keycloak-bank-unanimous",
    "ldap-groups",
    "stream-chat",
];

#[test]
fn every_example_set_is_tested_here() {
    assert_eq!(subdirectories(&policies("examples")), EXAMPLES);
}

#[tokio::test]
async fn stream_feeds_suite_holds() {
    assert_directory_holds(&policies("stream-feeds")).await;
}

#[tokio::test]
async fn graphql_qa_suite_holds() {
    assert_directory_holds(&policies("examples/graphql-qa")).await;
}

#[tokio::test]
async fn keycloak_bank_affirmative_suite_holds() {
    assert_directory_holds(&policies("examples/keycloak-bank-affirmative")).await;
}

#[tokio::test]
async fn keycloak_bank_resource_only_suite_holds() {
    assert_directory_holds(&policies("examples/keycloak-bank-resource-only")).await;
}

#[tokio::test]
async fn keycloak_bank_unanimous_suite_holds() {
    assert_directory_holds(&policies("examples/keycloak-bank-unanimous")).await;
}

#[tokio::test]
async fn ldap_groups_suite_holds() {
    assert_directory_holds(&policies("examples/ldap-groups")).await;
}

#[tokio::test]
async fn stream_chat_suite_holds() {
    assert_directory_holds(&policies("examples/stream-chat")).await;
}

/// The shipped suites exercise users, anonymous callers and server tokens between them, so each path
/// of `run_cases` is taken.
#[test]
fn the_suites_cover_every_kind_of_principal() {
    let mut all = Vec::new();
    for dir in ["stream-feeds"]
        .into_iter()
        .map(policies)
        .chain(EXAMPLES.iter().map(|e| policies(&format!("examples/{e}"))))
    {
        all.extend(cases(&dir));
    }
    assert!(all.iter().any(|c| c.principal.anonymous));
    assert!(all.iter().any(|c| c.principal.server));
    assert!(all.iter().any(|c| c.principal.id.is_some()));
    assert!(all.iter().any(|c| c.allowed) && all.iter().any(|c| !c.allowed));
}

/// `policies/stream-feeds` is the built-in default written out: a server on the directory and a server
/// without any policy configuration answer every case of its suite identically.
#[tokio::test]
async fn stream_feeds_directory_decides_as_the_builtin_default() {
    let dir = policies("stream-feeds");
    let cases = cases(&dir);
    assert!(cases.len() > 50, "{} cases", cases.len());
    let from_dir = TestServer::start_with(&[("GATEHOUSE_POLICY_DIR", dir.to_str().unwrap())]).await;
    let builtin = TestServer::start().await;
    let mut dir_client = from_dir.client().await;
    let mut builtin_client = builtin.client().await;
    let mut differences = Vec::new();
    for case in &cases {
        let a = ask(&mut dir_client, case.request(), &case.label).await;
        let b = ask(&mut builtin_client, case.request(), &case.label).await;
        if (a.allowed, &a.rule) != (b.allowed, &b.rule) {
            differences.push(format!(
                "{}: directory {} by {}, built-in {} by {}",
                case.label, a.allowed, a.rule, b.allowed, b.rule
            ));
        }
        if case.mismatch(&b).is_some() {
            differences.push(format!(
                "{}: the built-in default does not answer as the suite expects: {} by {}",
                case.label, b.allowed, b.rule
            ));
        }
    }
    from_dir.stop().await.unwrap();
    builtin.stop().await.unwrap();
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
