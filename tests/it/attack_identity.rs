//! The identity doors attacked as an adversary would, over a real server: hand-made Stream tokens
//! against secrets with key ids, misrouted and oversized OpenID Connect tokens, hostile key sets and
//! discovery documents, look-alike client certificates, and broken secret files. Each attack ends in a
//! clean refusal; none is allowed, none panics, none costs unbounded work.

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use gatehouse::config::Config;
use gatehouse::grpc::pb;
use jsonwebtoken::{Algorithm, EncodingKey};
use rcgen::SanType;
use serde_json::json;
use tonic::Code;

use crate::common::{Deadline, SECRET, check_request};
use crate::mtls::{FEED_SERVER, INDEXER, Setup, client, feed, issue};
use crate::oidc::{Idp, identity_status, refused, verify};
use crate::secret_rotation::{self, NEW, OLD, kubelet_swap, metric, serve};

/// A compact JWT with exactly this header and payload text, HS256-signed with `secret`.
fn raw_token(header: &str, payload: &str, secret: &str) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    sign_part(&signed, secret)
}

fn sign_part(signed: &str, secret: &str) -> String {
    let signature = jsonwebtoken::crypto::sign(
        signed.as_bytes(),
        &EncodingKey::from_secret(secret.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{signed}.{signature}")
}

/// A server whose secret file lists `v2 NEW` (current) and `v1 OLD`.
async fn keyed_server(dir: &Path) -> crate::common::TestServer {
    let file = dir.join("api_secret");
    std::fs::write(&file, format!("v2 {NEW}\nv1 {OLD}\n")).unwrap();
    serve(&file, None).await
}

#[tokio::test]
async fn hand_made_stream_headers_and_signatures_are_refused_with_key_ids() {
    let dir = tempfile::tempdir().unwrap();
    let server = keyed_server(dir.path()).await;
    let mut client = server.client().await;
    let payload = r#"{"user_id":"mallory"}"#;
    let good = raw_token(r#"{"alg":"HS256","kid":"v2"}"#, payload, NEW);
    assert_eq!(
        secret_rotation::verify(&mut client, &good).await.unwrap(),
        "mallory"
    );

    let huge_kid = format!(r#"{{"alg":"HS256","kid":"{}"}}"#, "k".repeat(5000));
    let cases = [
        (raw_token(&huge_kid, payload, NEW), "unknown key id"),
        (
            raw_token(r#"{"alg":"HS256","kid":"v2é"}"#, payload, NEW),
            "unknown key id",
        ),
        (
            raw_token(r#"{"alg":"HS256","kid":"V2"}"#, payload, NEW),
            "unknown key id",
        ),
        (
            raw_token(r#"{"alg":"HS256","kid":["v2"]}"#, payload, NEW),
            "kid is not a string",
        ),
        // Duplicate members: the last one counts, for routing and for the key alike.
        (
            raw_token(r#"{"alg":"HS256","kid":"v2","kid":"v1"}"#, payload, NEW),
            "bad signature",
        ),
        (
            raw_token(r#"{"alg":"HS256","alg":"none","kid":"v2"}"#, payload, NEW),
            "algorithm not allowed: none",
        ),
    ];
    for (token, reason) in &cases {
        let answer = secret_rotation::verify(&mut client, token).await;
        assert!(
            answer.as_ref().is_err_and(|m| m.contains(reason)),
            "{reason}: {answer:?}"
        );
    }

    // A signed payload must be strict base64url: padding and the standard alphabet are refused
    // even under a good signature.
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","kid":"v2"}"#);
    let padded = STANDARD.encode(r#"{"user_id":"mallory1"}"#);
    assert!(padded.ends_with('='));
    let standard = (0..200)
        .map(|i| STANDARD.encode(format!(r#"{{"user_id":"m?>{i}"}}"#)))
        .find(|p| p.contains('+') || p.contains('/'))
        .unwrap();
    for body in [padded, standard] {
        let token = sign_part(&format!("{header}.{body}"), NEW);
        let answer = secret_rotation::verify(&mut client, &token).await;
        assert!(
            answer.as_ref().is_err_and(|m| m.contains("malformed")),
            "{answer:?}"
        );
    }

    // Signatures of the wrong length, or not base64url, never verify.
    let (signed, signature) = good.rsplit_once('.').unwrap();
    for bad in [
        signature[..signature.len() - 4].to_owned(),
        format!("{signature}AAAA"),
        format!("{signature}="),
        String::new(),
        "A".repeat(4000),
    ] {
        let answer = secret_rotation::verify(&mut client, &format!("{signed}.{bad}")).await;
        assert!(
            answer
                .as_ref()
                .is_err_and(|m| m.contains("bad signature") || m.contains("malformed")),
            "{answer:?}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn look_alike_issuers_and_stream_signed_issuer_tokens_are_refused() {
    let idp = Idp::start();
    let server = idp.server("").await;
    let issuer = idp.issuer.clone();
    // Signed by the issuer's own key, but naming it in another spelling or shape: not routed to
    // the issuer, so the Stream path refuses the algorithm.
    for iss in [
        json!(format!("{issuer}/")),
        json!(issuer.to_uppercase()),
        json!([issuer.clone()]),
        json!(7),
    ] {
        let token = idp
            .mint(json!({"kid": "rsa-1", "claims": {"iss": iss}}))
            .await;
        let message = refused(&server, &token).await;
        assert!(message.contains("only HS256"), "{iss}: {message}");
    }

    // An HS256 token made with the API secret that names a configured issuer is the issuer's to
    // verify, which never accepts HS256: the Stream path does not take it.
    let claims =
        json!({"iss": issuer, "aud": "bank-api", "preferred_username": "mallory", "server": true});
    let token = crate::common::sign(claims);
    let message = refused(&server, &token).await;
    assert!(
        message.contains("algorithm not allowed for this issuer: HS256"),
        "{message}"
    );
    // Two `iss` members: the last one routes, as it is the one read after the signature.
    let twice =
        format!(r#"{{"iss":"https://elsewhere.example.com","iss":"{issuer}","server":true}}"#);
    let message = refused(&server, &raw_token(r#"{"alg":"HS256"}"#, &twice, SECRET)).await;
    assert!(message.contains("for this issuer: HS256"), "{message}");
    let twice = format!(
        r#"{{"iss":"{issuer}","iss":"https://elsewhere.example.com","user_id":"mallory"}}"#
    );
    let stream = verify(&server, &raw_token(r#"{"alg":"HS256"}"#, &twice, SECRET))
        .await
        .unwrap();
    assert_eq!(stream.user_id, "mallory");
    assert_eq!(stream.issuer, "", "a Stream token never carries an issuer");

    // Claims of the wrong shape or size, signed by the issuer.
    let many_audiences: Vec<String> = (0..64)
        .map(|i| format!("aud-{i}"))
        .chain(["bank-api".to_owned()])
        .collect();
    let cases = [
        (json!({"aud": many_audiences}), "audience"),
        (json!({"exp": "9999999999"}), "exp must be a number"),
        (
            json!({"preferred_username": "b".repeat(300)}),
            "user id claim",
        ),
        (json!({"preferred_username": "bob\nadmin"}), "user id claim"),
        (json!({"preferred_username": "bob\u{0}"}), "user id claim"),
    ];
    for (claims, reason) in cases {
        let token = idp.mint(json!({"kid": "rsa-1", "claims": claims})).await;
        let message = refused(&server, &token).await;
        assert!(message.contains(reason), "{claims}: {message}");
    }
    // A huge roles list is bounded by the token size, before any signature work.
    let roles: Vec<String> = (0..3000).map(|i| format!("r{i}")).collect();
    let token = idp
        .mint(json!({"kid": "rsa-1", "claims": {"realm_access": {"roles": roles}}}))
        .await;
    let message = refused(&server, &token).await;
    assert!(message.contains("larger than"), "{message}");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn hostile_key_sets_never_lend_a_symmetric_weak_or_mislabelled_key() {
    let idp = Idp::start();
    const HMAC: &str = "a-secret-every-reader-of-the-key-set-knows!";
    idp.post(
        "/extra",
        json!({
            "keys": [{"kty": "oct", "k": URL_SAFE_NO_PAD.encode(HMAC), "kid": "hmac", "alg": "HS256"}],
            "copies": [{"from": "ec-1", "kid": "rsa-1"}],
        }),
    )
    .await;
    let weak = idp
        .post("/rotate", json!({"alg": "RS256", "size": 1024}))
        .await["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let server = idp.server("").await;

    let claims = json!({"iss": idp.issuer, "aud": "bank-api", "preferred_username": "mallory", "exp": 9_999_999_999_i64});
    let hmac = raw_token(r#"{"alg":"HS256","kid":"hmac"}"#, &claims.to_string(), HMAC);
    let message = refused(&server, &hmac).await;
    assert!(message.contains("for this issuer: HS256"), "{message}");
    let named_hmac = idp
        .mint(json!({"kid": "rsa-1", "header_kid": "hmac"}))
        .await;
    assert!(
        refused(&server, &named_hmac)
            .await
            .contains("unknown key id")
    );

    // An RSA key shorter than 2048 bits is not taken from the key set.
    let by_weak = idp.mint(json!({"kid": weak})).await;
    let message = refused(&server, &by_weak).await;
    assert!(message.contains("unknown key id"), "{message}");
    let status = identity_status(&server).await;
    let kids: Vec<&str> = status.keys.iter().map(|k| k.kid.as_str()).collect();
    assert!(
        !kids.contains(&"hmac") && !kids.contains(&weak.as_str()),
        "{kids:?}"
    );

    // Two keys under one kid, of two types: each token is checked with the key of its own type.
    let rsa = idp.mint(json!({"kid": "rsa-1"})).await;
    assert_eq!(verify(&server, &rsa).await.unwrap().user_id, "bob");
    let es384 = raw_token(
        r#"{"alg":"ES384","kid":"rsa-1"}"#,
        &claims.to_string(),
        HMAC,
    );
    assert!(refused(&server, &es384).await.contains("for this issuer"));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_plain_http_key_set_address_on_another_host_is_never_fetched() {
    let idp = Idp::start();
    // `localhost:1` is the user part: the host is what follows the `@`.
    let attacker = idp.attacker.trim_start_matches("http://");
    idp.post(
        "/discovery",
        json!({"jwks_uri": format!("http://localhost:1@{attacker}/jwks")}),
    )
    .await;
    let server = idp.server("").await;
    let status = identity_status(&server).await;
    assert!(status.last_error.contains("jwks_uri"), "{status:?}");
    let counts = idp.post("/counts", json!({})).await;
    assert_eq!(counts["attacker"], 0, "the key set was fetched over http");
    server.stop().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gatehouse.yaml");
    for uri in [
        "http://localhost:80@attacker.example/certs",
        "http://127.0.0.1@attacker.example/certs",
        "http://attacker.example/certs",
    ] {
        std::fs::write(
            &path,
            format!(
                "api_secret: {SECRET}\ntokens:\n  issuers:\n    - issuer: https://sso.example.com/realms/bank\n      audiences: [bank-api]\n      jwks_uri: {uri}\n"
            ),
        )
        .unwrap();
        let error = Config::load_with(Some(&path), &|_| None).unwrap_err();
        assert!(error.to_string().contains("jwks_uri"), "{uri}: {error}");
    }
}

/// Whether a server-only call made with this certificate is refused (in the handshake, or for
/// want of standing).
async fn issue_refused(setup: &Setup, addr: std::net::SocketAddr, names: Vec<SanType>) -> bool {
    let pair = setup.ca.sign(names);
    let mut client = client(addr, &setup.ca, Some(&pair)).await;
    match client.issue_token(issue()).await {
        Ok(_) => false,
        Err(status) => matches!(
            status.code(),
            Code::Unauthenticated | Code::PermissionDenied | Code::Unavailable | Code::Unknown
        ),
    }
}

#[tokio::test]
async fn look_alike_certificate_names_get_no_standing() {
    let setup = Setup::new();
    let tls = format!(
        "{}  trusted_services: [\"{FEED_SERVER}\"]\n  services:\n    - san: {INDEXER}\n      name: indexer\n      roles: [feed-reader]\n",
        setup.mutual()
    );
    let server = setup.start(&tls).await;
    let uri = |s: &str| SanType::URI(s.try_into().unwrap());
    let look_alikes = [
        vec![uri(&format!("{FEED_SERVER}-evil"))],
        vec![uri(&FEED_SERVER[..FEED_SERVER.len() - 1])],
        vec![uri(&format!("{FEED_SERVER}/"))],
        vec![uri(&FEED_SERVER.to_uppercase())],
        // The SPIFFE ID written as a DNS name: a name of another type is another name.
        vec![SanType::DnsName(FEED_SERVER.try_into().unwrap())],
    ];
    for names in look_alikes {
        let shown = format!("{names:?}");
        assert!(issue_refused(&setup, server.addr, names).await, "{shown}");
    }

    // A `services` peer gets its service principal, never server powers: anonymous stays anonymous
    // and describing a principal needs a server token.
    let indexer = setup.ca.client(INDEXER);
    let mut as_indexer = client(server.addr, &setup.ca, Some(&indexer)).await;
    let mut anonymous = feed("read");
    anonymous.anonymous = true;
    let answer = as_indexer.check(anonymous).await.unwrap().into_inner();
    assert_eq!(
        answer.principal.unwrap().kind,
        pb::principal::Kind::Anonymous as i32
    );
    let mut described = check_request("", "read", "feed", "user:jack", json!({}), json!({}));
    described.principal = Some(pb::PrincipalInput {
        user_id: "jack".to_owned(),
        roles: vec!["admin".to_owned()],
        ..Default::default()
    });
    let status = as_indexer.check(described).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    server.stop().await.unwrap();
}

/// Swaps the secret file's contents in (kubelet style) and waits for the failed reload.
async fn swap_and_wait_failed(
    server: &crate::common::TestServer,
    dir: &Path,
    swap: impl FnOnce(&Path),
) {
    let line = "gatehouse_secret_reloads_total{result=\"failed\"}";
    let before = metric(server, line).await;
    swap(dir);
    let deadline = Deadline::new("the failed secret reload to be counted");
    loop {
        let failed = metric(server, line).await;
        if failed != before {
            return;
        }
        deadline.tick(&failed).await;
    }
}

/// Points `..data` at `target` the way the kubelet does.
fn point_data_at(dir: &Path, target: &str) {
    let tmp = dir.join("..data_tmp");
    std::os::unix::fs::symlink(target, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
}

#[tokio::test]
async fn broken_secret_files_keep_the_secrets_in_use_serving() {
    let dir = tempfile::tempdir().unwrap();
    kubelet_swap(dir.path(), "..v0", &format!("{OLD}\n"));
    let file = dir.path().join("api_secret");
    std::os::unix::fs::symlink("..data/api_secret", &file).unwrap();
    let server = serve(&file, None).await;
    let mut client = server.client().await;
    let old = secret_rotation::sign(json!({"user_id": "a"}), OLD, None);
    let new = secret_rotation::sign(json!({"user_id": "b"}), NEW, None);

    let contents = [
        ("..v1", format!("\u{feff}{NEW}\n{OLD}\n")),
        ("..v2", format!("{NEW}\u{0}\n{OLD}\n")),
        ("..v3", format!("{NEW}\n{}\n", "x".repeat(70_000))),
    ];
    for (version, text) in contents {
        swap_and_wait_failed(&server, dir.path(), |d| kubelet_swap(d, version, &text)).await;
        assert!(
            secret_rotation::verify(&mut client, &old).await.is_ok(),
            "{version}"
        );
        assert!(
            secret_rotation::verify(&mut client, &new).await.is_err(),
            "{version}"
        );
    }
    swap_and_wait_failed(&server, dir.path(), |d| {
        std::fs::create_dir_all(d.join("..v4/api_secret")).unwrap();
        point_data_at(d, "..v4");
    })
    .await;
    swap_and_wait_failed(&server, dir.path(), |d| {
        std::os::unix::fs::symlink("..loop_b", d.join("..loop_a")).unwrap();
        std::os::unix::fs::symlink("..loop_a", d.join("..loop_b")).unwrap();
        point_data_at(d, "..loop_a");
    })
    .await;
    assert!(secret_rotation::verify(&mut client, &old).await.is_ok());
    assert!(secret_rotation::verify(&mut client, &new).await.is_err());

    // Windows line ends are not part of a secret: both secrets of this file verify.
    kubelet_swap(dir.path(), "..v5", &format!("{NEW}\r\n{OLD}\r\n"));
    let deadline = Deadline::new("the CRLF secret file to be read");
    loop {
        let answer = secret_rotation::verify(&mut client, &new).await;
        if answer.is_ok() {
            break;
        }
        deadline.tick(&answer).await;
    }
    assert!(secret_rotation::verify(&mut client, &old).await.is_ok());
    server.stop().await.unwrap();
}
