//! Rotating the API secret over a real server: tokens Stream's SDKs mint with the old and the new
//! secret both verify while the secret file lists both; once the file no longer lists the old one,
//! the server refuses its tokens without a restart. A file that does not read as secrets changes
//! nothing. Key ids route a token to its secret.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::path::Path;

use gatehouse::config::Config;
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};
use tonic::transport::Channel;

use crate::common::{Deadline, TestServer, get_text, with_bearer};
use crate::sdk_tokens::Sdk;

pub(crate) const NEW: &str = "n3wsecretn3wsecretn3wsecretn3wsecretn3wsecretn3wsecretn3wsecret12";
pub(crate) const OLD: &str = "0ldsecret0ldsecret0ldsecret0ldsecret0ldsecret0ldsecret0ldsecret12";

/// A server reading its secrets from `file` (and its policies from `policy_dir`, if given).
pub(crate) async fn serve(file: &Path, policy_dir: Option<&Path>) -> TestServer {
    let mut env = HashMap::from([(
        "GATEHOUSE_API_SECRET_FILE".to_owned(),
        file.to_str().unwrap().to_owned(),
    )]);
    if let Some(dir) = policy_dir {
        env.insert(
            "GATEHOUSE_POLICY_DIR".to_owned(),
            dir.to_str().unwrap().to_owned(),
        );
    }
    let config = Config::load_with(None, &|name| env.get(name).cloned()).unwrap();
    TestServer::start_config(config).await
}

pub(crate) fn sign(claims: Value, secret: &str, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// The Verify RPC's answer: the principal's user id, or the refusal's message.
pub(crate) async fn verify(
    client: &mut GatehouseClient<Channel>,
    token: &str,
) -> Result<String, String> {
    client
        .verify(pb::VerifyRequest {
            token: token.to_owned(),
        })
        .await
        .map(|r| r.into_inner().principal.unwrap().user_id)
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
}

/// Waits until `token` is refused with a message containing `reason`.
async fn wait_refused(client: &mut GatehouseClient<Channel>, token: &str, reason: &str) {
    let deadline = Deadline::new("the reload to retire the old secret");
    loop {
        let answer = verify(client, token).await;
        if answer.as_ref().is_err_and(|m| m.contains(reason)) {
            return;
        }
        deadline.tick(&answer).await;
    }
}

/// IdentityStatus, asked with a server token signed by `secret`.
async fn identity_status(
    client: &mut GatehouseClient<Channel>,
    secret: &str,
) -> pb::IdentityStatusResponse {
    let request = with_bearer(
        pb::IdentityStatusRequest {},
        &sign(json!({"server": true}), secret, None),
    );
    client.identity_status(request).await.unwrap().into_inner()
}

/// A metric's value as `/metrics` shows it.
pub(crate) async fn metric(server: &TestServer, line_start: &str) -> String {
    let text = get_text(&format!("http://{}/metrics", server.http_addr)).await;
    text.lines()
        .find_map(|line| line.strip_prefix(line_start))
        .unwrap_or_else(|| panic!("no {line_start} in\n{text}"))
        .trim()
        .to_owned()
}

#[tokio::test]
async fn sdk_tokens_of_both_secrets_verify_until_the_old_one_leaves_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api_secret");
    std::fs::write(&file, format!("{NEW}\n{OLD}\n")).unwrap();
    let server = serve(&file, None).await;
    let mut client = server.client().await;

    let mut old_tokens = Vec::new();
    let mut new_tokens = Vec::new();
    for sdk in [Sdk::Python, Sdk::JavaScript] {
        let old = sdk.mint_with_secret(OLD);
        let new = sdk.mint_with_secret(NEW);
        for name in ["feeds_user", "chat_user"] {
            old_tokens.push((sdk, name, old.token(name).to_owned()));
            new_tokens.push((sdk, name, new.token(name).to_owned()));
        }
    }
    for (sdk, name, token) in old_tokens.iter().chain(&new_tokens) {
        let answer = verify(&mut client, token).await;
        assert!(answer.is_ok(), "{sdk:?} {name}: {answer:?}");
    }

    // IssueToken signs with the current secret, the first line.
    let issued = client
        .issue_token(crate::common::with_server_token(pb::IssueTokenRequest {
            user_id: "tommaso".into(),
            ..Default::default()
        }))
        .await;
    // The test's server token is signed with neither secret.
    assert_eq!(issued.unwrap_err().code(), tonic::Code::Unauthenticated);
    let server_token = sign(json!({"server": true}), OLD, None);
    let mut request = tonic::Request::new(pb::IssueTokenRequest {
        user_id: "tommaso".into(),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {server_token}").parse().unwrap(),
    );
    let issued = client
        .issue_token(request)
        .await
        .unwrap()
        .into_inner()
        .token;
    let mut validation = Validation::new(Algorithm::HS256);
    validation.required_spec_claims.clear();
    assert!(
        jsonwebtoken::decode::<Value>(
            &issued,
            &DecodingKey::from_secret(NEW.as_bytes()),
            &validation
        )
        .is_ok()
    );

    // The rotation ends: the file lists the new secret only.
    std::fs::write(&file, format!("{NEW}\n")).unwrap();
    wait_refused(&mut client, &old_tokens[0].2, "bad signature").await;
    for (sdk, name, token) in &old_tokens {
        let answer = verify(&mut client, token).await;
        assert!(
            answer
                .as_ref()
                .is_err_and(|m| m.contains("Unauthenticated")),
            "{sdk:?} {name}: {answer:?}"
        );
    }
    for (sdk, name, token) in &new_tokens {
        let answer = verify(&mut client, token).await;
        assert!(answer.is_ok(), "{sdk:?} {name}: {answer:?}");
    }
    assert_eq!(
        metric(&server, "gatehouse_secret_reloads_total{result=\"ok\"}").await,
        "1"
    );
    assert_eq!(metric(&server, "gatehouse_secrets ").await, "1");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn revocation_reaches_the_tokens_of_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("api_secret");
    std::fs::write(&file, format!("{NEW}\n{OLD}\n")).unwrap();
    let policies = tempfile::tempdir().unwrap();
    std::fs::write(
        policies.path().join("policy.yaml"),
        format!(
            "{}revocations:\n  users:\n    jack: \"2999-01-01T00:00:00Z\"\n",
            crate::common::SET_A
        ),
    )
    .unwrap();
    let server = serve(&file, Some(policies.path())).await;
    let mut client = server.client().await;
    for secret in [NEW, OLD] {
        let jack = sign(
            json!({"user_id": "jack", "iat": 1_700_000_000}),
            secret,
            None,
        );
        let answer = verify(&mut client, &jack).await;
        assert!(
            answer.as_ref().is_err_and(|m| m.contains("token revoked")),
            "{answer:?}"
        );
        let tommaso = sign(json!({"user_id": "tommaso"}), secret, None);
        assert_eq!(verify(&mut client, &tommaso).await.unwrap(), "tommaso");
    }
    server.stop().await.unwrap();
}

/// The way the kubelet updates a Secret mount: a new timestamped directory, and the `..data` link
/// swapped to it in one rename.
pub(crate) fn kubelet_swap(dir: &Path, version: &str, contents: &str) {
    let data = dir.join(version);
    std::fs::create_dir(&data).unwrap();
    std::fs::write(data.join("api_secret"), contents).unwrap();
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(version, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

#[tokio::test]
async fn a_bad_secret_file_changes_nothing_and_a_kubelet_swap_is_read() {
    let dir = tempfile::tempdir().unwrap();
    kubelet_swap(dir.path(), "..2026_11_30_1", &format!("{OLD}\n"));
    let file = dir.path().join("api_secret");
    std::os::unix::fs::symlink("..data/api_secret", &file).unwrap();
    let server = serve(&file, None).await;
    let mut client = server.client().await;
    let old = sign(json!({"user_id": "a"}), OLD, None);
    let new = sign(json!({"user_id": "b"}), NEW, None);
    assert!(verify(&mut client, &old).await.is_ok());

    // A short secret, then an empty file: neither replaces the secrets in use.
    for (version, contents) in [("..2026_11_30_2", "too-short\n"), ("..2026_11_30_3", "")] {
        let failed_before =
            metric(&server, "gatehouse_secret_reloads_total{result=\"failed\"}").await;
        kubelet_swap(dir.path(), version, contents);
        let deadline = Deadline::new("the failed secret reload to be counted");
        loop {
            let failed = metric(&server, "gatehouse_secret_reloads_total{result=\"failed\"}").await;
            if failed != failed_before {
                break;
            }
            deadline.tick(&failed).await;
        }
        assert!(verify(&mut client, &old).await.is_ok());
        assert!(verify(&mut client, &new).await.is_err());
    }
    let status = identity_status(&mut client, OLD).await;
    assert_eq!(
        status.secrets.unwrap().last_error,
        "the secret file is invalid: no secret"
    );

    kubelet_swap(
        dir.path(),
        "..2026_11_30_4",
        &format!("v2 {NEW}\nv1 {OLD}\n"),
    );
    let deadline = Deadline::new("the new secret to be read");
    loop {
        let answer = verify(&mut client, &new).await;
        if answer.is_ok() {
            break;
        }
        deadline.tick(&answer).await;
    }
    // With key ids, a token's kid picks its secret; an unknown one is refused by name.
    assert!(
        verify(&mut client, &sign(json!({"user_id": "a"}), OLD, Some("v1")))
            .await
            .is_ok()
    );
    let wrong = verify(&mut client, &sign(json!({"user_id": "a"}), OLD, Some("v2"))).await;
    assert!(wrong.unwrap_err().contains("bad signature"));
    let unknown = verify(&mut client, &sign(json!({"user_id": "a"}), OLD, Some("v0"))).await;
    assert!(unknown.unwrap_err().contains("unknown key id"));

    // IdentityStatus names the secrets by key id, never by value, with the reloads.
    let status = identity_status(&mut client, NEW).await;
    let secrets = status.secrets.unwrap();
    assert_eq!(secrets.key_ids, ["v2", "v1"]);
    assert_eq!(secrets.file, file.to_str().unwrap());
    assert_eq!((secrets.reloads_ok, secrets.reloads_failed), (1, 2));
    assert_eq!(secrets.last_error, "", "a good reload clears it");
    assert!(!status.tls.unwrap().enabled);
    let shown = format!("{secrets:?}");
    assert!(!shown.contains(NEW) && !shown.contains(OLD));
    server.stop().await.unwrap();
}
