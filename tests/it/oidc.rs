//! OpenID Connect issuers over a real server: a Keycloak-shaped provider (tests/oidc/idp.py, HTTPS
//! with its own CA) serves discovery and keys and mints tokens; gatehouse fetches the keys and
//! verifies the tokens against the Keycloak bank example policy.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use gatehouse::config::Config;
use gatehouse::grpc::pb;
use serde_json::{Value, json};
use tonic::Code;

use crate::common::{SECRET, TestServer, gatehouse_command, sign, user_token, with_server_token};
use crate::sdk_tokens::sdk_env;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

pub(crate) struct Idp {
    child: Child,
    pub(crate) issuer: String,
    control: String,
    pub(crate) attacker: String,
    ca: PathBuf,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Idp {
    pub(crate) fn start() -> Idp {
        sdk_env();
        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("idp-ca.pem");
        let mut child = Command::new(PathBuf::from(ROOT).join("target/sdk-env/venv/bin/python"))
            .arg(PathBuf::from(ROOT).join("tests/oidc/idp.py"))
            .arg("--ca-out")
            .arg(&ca)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the OpenID provider stand-in");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ports: Value = serde_json::from_str(&line).expect("the provider prints its ports");
        Idp {
            issuer: ports["issuer"].as_str().unwrap().to_owned(),
            control: format!("http://127.0.0.1:{}", ports["control"]),
            attacker: format!("http://127.0.0.1:{}", ports["attacker"]),
            child,
            ca,
            dir,
            http: reqwest::Client::new(),
        }
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> Value {
        self.http
            .post(format!("{}{path}", self.control))
            .body(body.to_string())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub(crate) async fn mint(&self, request: Value) -> String {
        self.post("/mint", request).await["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    async fn jwks_fetches(&self) -> u64 {
        self.post("/counts", json!({})).await["jwks"]
            .as_u64()
            .unwrap()
    }

    /// A server with the Keycloak bank policy and this provider as an issuer; `extra` adds lines
    /// to the issuer's entry.
    pub(crate) async fn server(&self, extra: &str) -> TestServer {
        let policies = format!("{ROOT}/policies/examples/keycloak-bank-affirmative");
        self.server_with(&policies, extra).await
    }

    async fn server_with(&self, policy_dir: &str, extra: &str) -> TestServer {
        let config = format!(
            "api_secret: {SECRET}\npolicy_dir: {policy_dir}\ntokens:\n  jwks_startup_wait: 5s\n  jwks_fetch_timeout: 2s\n  issuers:\n    - issuer: {issuer}\n      audiences: [bank-api]\n      algorithms: [RS256, ES256, EdDSA]\n      user_id_claim: preferred_username\n      roles_claims: [realm_access.roles, resource_access.bank-api.roles]\n      groups_claim: groups\n      strip_group_slash: true\n      ca_file: {ca}\n{extra}",
            issuer = self.issuer,
            ca = self.ca.display(),
        );
        let path = self.dir.path().join("gatehouse.yaml");
        std::fs::write(&path, config).unwrap();
        let config = Config::load_with(Some(&path), &|_| None).expect("valid configuration");
        TestServer::start_config(config).await
    }
}

pub(crate) async fn verify(
    server: &TestServer,
    token: &str,
) -> Result<pb::Principal, tonic::Status> {
    server
        .client()
        .await
        .verify(pb::VerifyRequest {
            token: token.to_owned(),
        })
        .await
        .map(|r| r.into_inner().principal.unwrap())
}

pub(crate) async fn refused(server: &TestServer, token: &str) -> String {
    let status = verify(server, token).await.expect_err("token is refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    status.message().to_owned()
}

async fn may_view_account(server: &TestServer, token: &str) -> bool {
    server
        .client()
        .await
        .check(pb::CheckRequest {
            token: token.to_owned(),
            action: "account:view".to_owned(),
            resource: Some(pb::Resource {
                kind: "account".to_owned(),
                id: "42".to_owned(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .allowed
}

async fn metrics(server: &TestServer) -> String {
    reqwest::get(format!("http://{}/metrics", server.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn keycloak_tokens_of_each_algorithm_are_verified_and_checked_through_discovery() {
    let idp = Idp::start();
    let server = idp.server("").await;
    for kid in ["rsa-1", "ec-1", "ed-1"] {
        let token = idp.mint(json!({"kid": kid})).await;
        let principal = verify(&server, &token).await.unwrap();
        assert_eq!(principal.user_id, "bob");
        assert_eq!(principal.issuer, idp.issuer);
        assert_eq!(
            principal.roles,
            vec!["bank_teller", "offline_access", "account_viewer"]
        );
        assert_eq!(principal.groups, vec!["tellers"]);
        assert!(may_view_account(&server, &token).await, "{kid}");
        let plain_user = idp
            .mint(json!({"kid": kid, "claims": {"realm_access": {"roles": ["user"]}, "resource_access": null}}))
            .await;
        assert!(!may_view_account(&server, &plain_user).await, "{kid}");
    }
    let text = metrics(&server).await;
    assert!(text.contains("jwks_keys{issuer=\""), "{text}");
}

#[tokio::test]
async fn forged_and_misdirected_tokens_are_refused_and_header_urls_never_fetched() {
    let idp = Idp::start();
    let server = idp.server("").await;
    let jku = format!("{}/jwks", idp.attacker);
    let cases = [
        (
            json!({"kid": "rsa-1", "claims": {"aud": "other-api"}}),
            "audience",
        ),
        (
            json!({"kid": "rsa-1", "claims": {"exp": 1_000_000}}),
            "expired",
        ),
        (
            json!({"kid": "rsa-1", "claims": {"exp": null}}),
            "exp is required",
        ),
        (
            json!({"sign": "hs256-pem", "kid": "rsa-1"}),
            "algorithm not allowed for this issuer: HS256",
        ),
        (
            json!({"sign": "hs256-jwk", "kid": "rsa-1"}),
            "algorithm not allowed for this issuer: HS256",
        ),
        (
            json!({"sign": "none"}),
            "algorithm not allowed for this issuer: none",
        ),
        (json!({"sign": "embedded", "kid": "rsa-1"}), "bad signature"),
        (
            json!({"kid": "rsa-1", "header_kid": "attacker-1", "header": {"jku": jku}}),
            "unknown key id",
        ),
        (
            json!({"kid": "rsa-1", "header_kid": "attacker-2", "header": {"x5u": jku}}),
            "unknown key id",
        ),
    ];
    for (request, reason) in cases {
        let token = idp.mint(request.clone()).await;
        let message = refused(&server, &token).await;
        assert!(message.contains(reason), "{request}: {message}");
    }
    // An issuer that is not configured takes the Stream path, which accepts HS256 with the app
    // secret only.
    let other = idp
        .mint(
            json!({"kid": "rsa-1", "claims": {"iss": "https://elsewhere.example.com/realms/bank"}}),
        )
        .await;
    assert!(refused(&server, &other).await.contains("only HS256"));
    let counts = idp.post("/counts", json!({})).await;
    assert_eq!(counts["attacker"], 0, "a header URL was fetched");
}

#[tokio::test]
async fn a_rotated_key_is_accepted_after_one_refetch_and_a_removed_one_is_refused() {
    let idp = Idp::start();
    let server = idp
        .server("      refetch_cooldown: 1s\n      refresh_interval: 1h\n")
        .await;
    let old = idp.mint(json!({"kid": "rsa-1"})).await;
    assert!(verify(&server, &old).await.is_ok());
    let kid = idp.post("/rotate", json!({"alg": "RS256"})).await["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let before = idp.jwks_fetches().await;
    let new = idp.mint(json!({"kid": kid})).await;
    assert_eq!(verify(&server, &new).await.unwrap().user_id, "bob");
    assert_eq!(idp.jwks_fetches().await, before + 1, "exactly one refetch");
    assert!(
        verify(&server, &old).await.is_ok(),
        "the old key is still published"
    );
    idp.post("/remove", json!({"kid": "rsa-1"})).await;
    // After the cooldown, a token with a key id we lack refetches, and the removed key goes.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let unknown = idp
        .mint(json!({"kid": kid, "header_kid": "not-published"}))
        .await;
    assert!(refused(&server, &unknown).await.contains("unknown key id"));
    assert!(refused(&server, &old).await.contains("unknown key id"));
    assert!(verify(&server, &new).await.is_ok());
    let status = identity_status(&server).await;
    let kids: Vec<&str> = status.keys.iter().map(|k| k.kid.as_str()).collect();
    assert_eq!(kids, vec!["ec-1", "ed-1", kid.as_str()]);
    assert!(status.keys.iter().any(|k| k.kid == kid && k.alg == "RS256"));
    assert!(status.ready);
    assert_eq!(status.refetches, 2);
    assert!(status.jwks_uri.ends_with("/protocol/openid-connect/certs"));
}

pub(crate) async fn identity_status(server: &TestServer) -> pb::IssuerStatus {
    let mut issuers = server
        .client()
        .await
        .identity_status(with_server_token(pb::IdentityStatusRequest {}))
        .await
        .unwrap()
        .into_inner()
        .issuers;
    assert_eq!(issuers.len(), 1);
    issuers.remove(0)
}

#[tokio::test]
async fn identity_status_needs_a_server_token() {
    let idp = Idp::start();
    let server = idp.server("").await;
    let mut request = tonic::Request::new(pb::IdentityStatusRequest {});
    request
        .metadata_mut()
        .insert("authorization", user_token("bob").parse().unwrap());
    let refused = server
        .client()
        .await
        .identity_status(request)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let status = identity_status(&server).await;
    assert_eq!(status.issuer, idp.issuer);
    assert_eq!(status.fetches_ok, 1);
    assert_eq!(status.keys.len(), 3);
}

#[tokio::test]
async fn a_flood_of_made_up_key_ids_fetches_at_most_once_per_cooldown() {
    let idp = Idp::start();
    let server = idp
        .server("      refetch_cooldown: 1h\n      refresh_interval: 1h\n")
        .await;
    // The server answers once its first key set is in.
    assert!(
        verify(&server, &idp.mint(json!({"kid": "ec-1"})).await)
            .await
            .is_ok()
    );
    let mut tokens = Vec::new();
    for i in 0..50 {
        let token = idp
            .mint(json!({"kid": "ec-1", "header_kid": format!("made-up-{i}")}))
            .await;
        tokens.push(token);
    }
    let before = idp.jwks_fetches().await;
    // All at once: they share the one refetch in flight, then the cooldown holds the rest back.
    let client = server.client().await;
    let mut calls = tokio::task::JoinSet::new();
    for token in tokens {
        let mut client = client.clone();
        calls.spawn(async move { client.verify(pb::VerifyRequest { token }).await });
    }
    while let Some(result) = calls.join_next().await {
        let status = result.unwrap().expect_err("a made-up kid is refused");
        assert!(status.message().contains("unknown key id"), "{status:?}");
    }
    assert_eq!(idp.jwks_fetches().await, before + 1);
    let text = metrics(&server).await;
    let suppressed = text
        .lines()
        .find(|l| l.starts_with("gatehouse_jwks_refetches_total") && l.contains("suppressed"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(suppressed.ends_with(" 49"), "{suppressed}");
}

#[tokio::test]
async fn when_the_provider_is_down_cached_keys_serve_until_max_key_age() {
    let idp = Idp::start();
    let server = idp
        .server("      max_key_age: 2s\n      refresh_interval: 1s\n")
        .await;
    let token = idp.mint(json!({"kid": "ed-1"})).await;
    assert!(verify(&server, &token).await.is_ok());
    idp.post("/mode", json!({"mode": "down"})).await;
    assert!(verify(&server, &token).await.is_ok());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(refused(&server, &token).await.contains("too old"));
    let text = metrics(&server).await;
    assert!(text.contains("reason=\"status\""), "{text}");
}

#[tokio::test]
async fn oversized_and_malformed_key_sets_keep_the_last_good_keys() {
    let idp = Idp::start();
    let server = idp.server("      refresh_interval: 1s\n").await;
    let token = idp.mint(json!({"kid": "rsa-1"})).await;
    assert!(verify(&server, &token).await.is_ok());
    for (mode, reason) in [("oversized", "too_large"), ("malformed", "malformed")] {
        idp.post("/mode", json!({"mode": mode})).await;
        let before = idp.jwks_fetches().await;
        while idp.jwks_fetches().await < before + 2 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(verify(&server, &token).await.is_ok(), "{mode}");
        let text = metrics(&server).await;
        assert!(text.contains(&format!("reason=\"{reason}\"")), "{text}");
    }
}

#[tokio::test]
async fn an_unreachable_issuer_is_waited_for_then_reported() {
    let idp = Idp::start();
    let dead = "https://127.0.0.1:9/realms/gone";
    let server = idp
        .server(&format!(
            "    - issuer: {dead}\n      audiences: [bank-api]\n      jwks_uri: {dead}/certs\n"
        ))
        .await;
    let ready = reqwest::get(format!("http://{}/ready", server.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        ready.contains(&format!("issuer {dead} has no keys")),
        "{ready}"
    );
    let token = idp
        .mint(json!({"kid": "rsa-1", "claims": {"iss": dead}}))
        .await;
    assert!(
        refused(&server, &token)
            .await
            .contains("have not been fetched yet")
    );
    // The reachable issuer is unaffected.
    assert!(
        verify(&server, &idp.mint(json!({"kid": "rsa-1"})).await)
            .await
            .is_ok()
    );
}

/// Accounts may be viewed by bank tellers vouched for by the issuer `{issuer}` only.
const ISSUER_POLICY: &str = "\
resources:
  - kind: account
    actions: [\"account:view\"]
policies:
  - name: tellers
    type: role
    roles: [bank_teller]
  - name: vouched-for-by-keycloak
    type: condition
    condition: \"principal.issuer == '{issuer}'\"
  - name: keycloak-tellers
    type: aggregated
    policies: [tellers, vouched-for-by-keycloak]
    strategy: unanimous
permissions:
  - name: view-account
    type: resource
    resource: account
    policies: [keycloak-tellers]
";

const ISSUER_SUITE: &str = "\
principals:
  keycloak-teller: { id: bob, roles: [bank_teller], issuer: \"{issuer}\" }
  stream-teller: { id: bob, roles: [bank_teller] }
resources:
  account-42: { kind: account, id: \"42\" }
tests:
  - name: a teller vouched for by the issuer may view
    principal: keycloak-teller
    resource: account-42
    action: \"account:view\"
    expect: allow
  - name: the same teller from a Stream token may not
    principal: stream-teller
    resource: account-42
    action: \"account:view\"
    expect: deny
";

#[tokio::test]
async fn policies_and_suites_can_require_the_issuer() {
    let idp = Idp::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bank.yaml"),
        ISSUER_POLICY.replace("{issuer}", &idp.issuer),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("bank_test.yaml"),
        ISSUER_SUITE.replace("{issuer}", &idp.issuer),
    )
    .unwrap();
    let suite = gatehouse_command()
        .arg("test")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        suite.status.success(),
        "{}{}",
        String::from_utf8_lossy(&suite.stdout),
        String::from_utf8_lossy(&suite.stderr)
    );
    let server = idp.server_with(dir.path().to_str().unwrap(), "").await;
    assert!(may_view_account(&server, &idp.mint(json!({"kid": "rsa-1"})).await).await);
    let stream_teller = sign(json!({"user_id": "bob", "roles": ["bank_teller"]}));
    assert!(!may_view_account(&server, &stream_teller).await);
}
