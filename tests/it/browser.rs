//! The browser doors over a real server: the JSON API and gRPC-Web on the HTTP listener, asked with
//! a user's own token, against the answers of the native gRPC service; what a browser may never do
//! (name another principal, send a server token, reach IssueToken or the operator RPCs); CORS; the
//! per-user and per-address budgets; and the Capabilities RPC itself.

use std::collections::BTreeSet;

use base64::Engine as _;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use prost::Message;
use reqwest::StatusCode;
use serde_json::{Value, json};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{
    SECRET, TestServer, check_request, server_token, sign, succeed, to_struct, user_token,
    with_server_token, without_gatehouse_env,
};
use gatehouse::config::Config;
use gatehouse::grpc::pb;

/// A server with the browser doors on, and `extra` settings.
async fn browser_server(extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![("GATEHOUSE_BROWSER_DOORS", "true")];
    env.extend_from_slice(extra);
    TestServer::start_with(&env).await
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

async fn post_json(
    server: &TestServer,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut request = client()
        .post(format!("http://{}{path}", server.http_addr))
        .json(&body);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.json::<Value>().await.unwrap_or(Value::Null);
    (status, headers, body)
}

/// The resources of a Feeds screen: feeds, reactions and users of tommaso and jack.
fn screen() -> Value {
    json!([
        {"kind": "feed", "id": "user:tommaso"},
        {"kind": "feed", "id": "user:jack"},
        {"kind": "feed", "id": "timeline:jack"},
        {"kind": "reactions", "id": "r1", "attributes": {"user_id": "tommaso"}},
        {"kind": "reactions", "id": "r2", "attributes": {"user_id": "jack"}},
        {"kind": "users", "id": "tommaso"},
        {"kind": "users", "id": "jack"},
    ])
}

fn actions_of(body: &Value) -> Vec<BTreeSet<String>> {
    body["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["actions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_owned())
                .collect()
        })
        .collect()
}

#[tokio::test]
async fn json_capabilities_are_exactly_what_checks_over_grpc_allow() {
    let server = browser_server(&[]).await;
    let mut grpc = server.client().await;
    for user in ["tommaso", "jack"] {
        let token = user_token(user);
        let context = json!({"actor": user});
        let (status, _, body) = post_json(
            &server,
            "/v1/capabilities",
            Some(&token),
            json!({"resources": screen(), "context": context}),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["principal"]["user_id"], user);
        let answered = actions_of(&body);
        for (resource, actions) in screen().as_array().unwrap().iter().zip(&answered) {
            let mut expected = BTreeSet::new();
            for action in ["read", "write", "delete"] {
                let request = check_request(
                    &token,
                    action,
                    resource["kind"].as_str().unwrap(),
                    resource["id"].as_str().unwrap(),
                    resource.get("attributes").cloned().unwrap_or(json!({})),
                    context.clone(),
                );
                if grpc.check(request).await.unwrap().into_inner().allowed {
                    expected.insert(action.to_owned());
                }
            }
            assert_eq!(actions, &expected, "{user} on {resource}");
        }
    }
    // What the Feeds defaults say, spelled out for tommaso.
    let (_, _, body) = post_json(
        &server,
        "/v1/capabilities",
        Some(&user_token("tommaso")),
        json!({"resources": screen(), "context": {"actor": "tommaso"}}),
    )
    .await;
    let tommaso = actions_of(&body);
    let set = |names: &[&str]| {
        names
            .iter()
            .map(|s| (*s).to_owned())
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(tommaso[0], set(&["delete", "read", "write"]));
    assert_eq!(tommaso[1], set(&["read"]));
    assert_eq!(tommaso[2], set(&[]));
}

#[tokio::test]
async fn json_check_batch_and_allowed_actions_answer_like_the_service() {
    let server = browser_server(&[]).await;
    let token = user_token("tommaso");
    let (status, _, body) = post_json(
        &server,
        "/v1/check",
        Some(&token),
        json!({"action": "read", "resource": {"kind": "feed", "id": "timeline:jack"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], false);
    assert_eq!(body["rule"], "default-deny");
    assert!(body["reason"].as_str().unwrap().contains("tommaso"));
    assert!(body["explanation"].is_null());
    assert_eq!(body["principal"]["kind"], "user");
    assert!(body["policy_revision"].as_str().unwrap().len() > 8);

    let (status, _, body) = post_json(
        &server,
        "/v1/check-batch",
        Some(&token),
        json!({"items": [
            {"action": "read", "resource": {"kind": "feed", "id": "user:jack"}},
            {"action": "delete", "resource": {"kind": "feed", "id": "user:jack"}},
        ]}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"][0]["allowed"], true);
    assert_eq!(body["results"][0]["rule"], "read-global-read-feeds");
    assert_eq!(body["results"][1]["allowed"], false);

    let (status, _, body) = post_json(
        &server,
        "/v1/allowed-actions",
        Some(&token),
        json!({"resource": {"kind": "users", "id": "jack"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["actions"], json!(["read"]));
}

#[tokio::test]
async fn a_browser_asks_only_about_its_own_user() {
    let server = browser_server(&[]).await;
    let token = user_token("jack");
    let ask = json!({"action": "read", "resource": {"kind": "feed", "id": "timeline:tommaso"}});
    let with = |key: &str, value: Value| {
        let mut body = ask.clone();
        body[key] = value;
        body
    };
    for body in [
        with(
            "principal",
            json!({"user_id": "tommaso", "roles": ["admin"]}),
        ),
        with("token", json!(user_token("tommaso"))),
        with("anonymous", json!(true)),
    ] {
        let (status, _, answer) = post_json(&server, "/v1/check", Some(&token), body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
        assert_eq!(answer["code"], "permission_denied");
        assert!(answer["message"].as_str().unwrap().contains("its own user"));
    }
    // A server token is for backends, never a page.
    let (status, _, answer) =
        post_json(&server, "/v1/check", Some(&server_token()), ask.clone()).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("server and scope tokens are refused")
    );
    // No token, a bad one, two of them.
    let (status, _, answer) = post_json(&server, "/v1/check", None, ask.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{answer}");
    assert_eq!(answer["code"], "unauthenticated");
    let (status, _, _) = post_json(&server, "/v1/check", Some("not.a.token"), ask.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let response = client()
        .post(format!("http://{}/v1/check", server.http_addr))
        .header("authorization", format!("Bearer {token}"))
        .header("authorization", format!("Bearer {}", user_token("tommaso")))
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    // The token never comes back in an error.
    let (_, _, answer) = post_json(
        &server,
        "/v1/check",
        Some(&token),
        with("token", json!(user_token("tommaso"))),
    )
    .await;
    assert!(!answer.to_string().contains(&user_token("tommaso")));
}

#[tokio::test]
async fn malformed_json_is_a_clear_400_and_changes_nothing() {
    let server = browser_server(&[]).await;
    let token = user_token("jack");
    let (status, _, answer) = post_json(
        &server,
        "/v1/check",
        Some(&token),
        json!({"action": "read", "resource": {"kind": "feed", "id": "user:jack"}, "admin": true}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `admin`")
    );
    let (status, _, answer) = post_json(
        &server,
        "/v1/check",
        Some(&token),
        json!({"action": "", "resource": {"kind": "feed", "id": "user:jack"}}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["message"], "action is required");
    let url = format!("http://{}/v1/check", server.http_addr);
    let response = client()
        .post(&url)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "text/plain")
        .body(r#"{"action":"read","resource":{"kind":"feed","id":"user:jack"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let huge = json!({"action": "read", "resource": {"kind": "feed", "id": "x".repeat(2 << 20)}});
    let (status, _, answer) = post_json(&server, "/v1/check", Some(&token), huge).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["message"].as_str().unwrap().contains("256 KiB"));
    let too_many = json!({"resources": vec![json!({"kind": "feed", "id": "user:jack"}); 1001]});
    let (status, _, answer) = post_json(&server, "/v1/capabilities", Some(&token), too_many).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

/// A gRPC-Web request body: one uncompressed data frame.
fn grpc_web_frame(message: &impl Message) -> Bytes {
    let encoded = message.encode_to_vec();
    let mut frame = BytesMut::with_capacity(5 + encoded.len());
    frame.put_u8(0);
    frame.put_u32(u32::try_from(encoded.len()).unwrap());
    frame.put_slice(&encoded);
    frame.freeze()
}

/// A gRPC-Web answer: the message (if a data frame came) and the grpc-status, from the trailer
/// frame or, for a trailers-only answer, the headers.
struct GrpcWebAnswer {
    http: StatusCode,
    message: Option<Bytes>,
    status: String,
    grpc_message: String,
}

async fn grpc_web(
    server: &TestServer,
    method: &str,
    token: Option<&str>,
    body: Bytes,
    origin: Option<&str>,
) -> GrpcWebAnswer {
    let mut request = client()
        .post(format!(
            "http://{}/gatehouse.v1.Gatehouse/{method}",
            server.http_addr
        ))
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .body(body);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    let response = request.send().await.unwrap();
    let http = response.status();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let mut status = header("grpc-status");
    let mut grpc_message = header("grpc-message");
    let mut bytes = response.bytes().await.unwrap();
    let mut message = None;
    while bytes.len() >= 5 {
        let flag = bytes.get_u8();
        let len = bytes.get_u32() as usize;
        let frame = bytes.split_to(len);
        if flag & 0x80 == 0 {
            message = Some(frame);
        } else {
            for line in String::from_utf8(frame.to_vec()).unwrap().split("\r\n") {
                if let Some((name, value)) = line.split_once(':') {
                    match name.trim() {
                        "grpc-status" => status = Some(value.trim().to_owned()),
                        "grpc-message" => grpc_message = Some(value.trim().to_owned()),
                        _ => {}
                    }
                }
            }
        }
    }
    GrpcWebAnswer {
        http,
        message,
        status: status.unwrap_or_default(),
        grpc_message: grpc_message.unwrap_or_default(),
    }
}

#[tokio::test]
async fn grpc_web_answers_checks_and_refuses_what_a_browser_may_not_do() {
    let server = browser_server(&[]).await;
    let token = user_token("tommaso");
    let ask = check_request("", "read", "feed", "user:jack", json!({}), json!({}));
    let answer = grpc_web(&server, "Check", Some(&token), grpc_web_frame(&ask), None).await;
    assert_eq!(answer.http, StatusCode::OK);
    assert_eq!(answer.status, "0", "{}", answer.grpc_message);
    let decided = pb::CheckResponse::decode(answer.message.unwrap()).unwrap();
    assert!(decided.allowed);
    assert_eq!(decided.principal.unwrap().user_id, "tommaso");

    let capabilities = pb::CapabilitiesRequest {
        resources: vec![pb::Resource {
            kind: "feed".to_owned(),
            id: "timeline:jack".to_owned(),
            attributes: None,
        }],
        ..Default::default()
    };
    let answer = grpc_web(
        &server,
        "Capabilities",
        Some(&token),
        grpc_web_frame(&capabilities),
        None,
    )
    .await;
    assert_eq!(answer.status, "0", "{}", answer.grpc_message);
    let listed = pb::CapabilitiesResponse::decode(answer.message.unwrap()).unwrap();
    assert_eq!(listed.resources[0].actions, Vec::<String>::new());

    // Naming another principal, or the token in the message.
    let mut described = ask.clone();
    described.principal = Some(pb::PrincipalInput {
        user_id: "jack".to_owned(),
        ..Default::default()
    });
    let answer = grpc_web(
        &server,
        "Check",
        Some(&server_token()),
        grpc_web_frame(&described),
        None,
    )
    .await;
    assert_eq!(answer.status, "7", "{}", answer.grpc_message);
    let mut in_message = ask.clone();
    in_message.token = token.clone();
    let answer = grpc_web(&server, "Check", None, grpc_web_frame(&in_message), None).await;
    assert_eq!(
        answer.status, "16",
        "no Authorization header: {}",
        answer.grpc_message
    );
    let answer = grpc_web(
        &server,
        "Check",
        Some(&token),
        grpc_web_frame(&in_message),
        None,
    )
    .await;
    assert_eq!(answer.status, "7", "{}", answer.grpc_message);

    // IssueToken, Verify and the operator RPCs do not exist on this listener, whoever asks.
    let issue = pb::IssueTokenRequest {
        user_id: "mallory".to_owned(),
        ..Default::default()
    };
    for method in [
        "IssueToken",
        "Verify",
        "PolicyStatus",
        "ReloadPolicies",
        "SuggestPolicy",
    ] {
        let answer = grpc_web(
            &server,
            method,
            Some(&server_token()),
            grpc_web_frame(&issue),
            None,
        )
        .await;
        assert_eq!(answer.http, StatusCode::NOT_FOUND, "{method}");
        assert!(answer.message.is_none(), "{method}");
    }
}

#[tokio::test]
async fn cors_answers_listed_origins_and_refuses_the_rest() {
    let server = browser_server(&[("GATEHOUSE_BROWSER_ORIGINS", "http://app.example:8080")]).await;
    let url = format!("http://{}/v1/capabilities", server.http_addr);
    let preflight = |origin: &str| {
        client()
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("http://app.example:8080").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(
        headers["access-control-allow-origin"],
        "http://app.example:8080"
    );
    let allow_headers = headers["access-control-allow-headers"].to_str().unwrap();
    assert!(allow_headers.contains("authorization"), "{allow_headers}");
    assert!(headers.get("access-control-allow-credentials").is_none());
    // Chrome asks before a public page reaches a private address; a listed origin may.
    let private = client()
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://app.example:8080")
        .header("access-control-request-method", "POST")
        .header("access-control-request-private-network", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(
        private.headers()["access-control-allow-private-network"],
        "true"
    );
    // Only POST reaches a call.
    let get = client().get(&url).send().await.unwrap();
    assert_eq!(get.status(), StatusCode::METHOD_NOT_ALLOWED);

    for other in [
        "http://evil.example",
        "http://app.example:8081",
        "https://app.example:8080",
        "null",
    ] {
        let refused = preflight(other).await.unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{other}");
        assert!(
            refused
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
        let refused = client()
            .post(&url)
            .header("origin", other)
            .header("authorization", format!("Bearer {}", user_token("jack")))
            .json(&json!({"resources": screen()}))
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "{other}");
    }
    let answered = client()
        .post(&url)
        .header("origin", "http://app.example:8080")
        .header("authorization", format!("Bearer {}", user_token("jack")))
        .json(&json!({"resources": screen()}))
        .send()
        .await
        .unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    assert_eq!(
        answered.headers()["access-control-allow-origin"],
        "http://app.example:8080"
    );
    let exposed = answered.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap();
    assert!(exposed.contains("grpc-status"), "{exposed}");

    // With no origin listed (the default), every page of another origin is refused.
    let closed = browser_server(&[]).await;
    let refused = client()
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{}/v1/check", closed.http_addr),
        )
        .header("origin", "http://app.example:8080")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

#[test]
fn origins_must_be_written_as_browsers_send_them() {
    let load = |origins: &str| {
        Config::load_with(None, &|name| match name {
            "GATEHOUSE_API_SECRET" => Some(SECRET.to_owned()),
            "GATEHOUSE_BROWSER_DOORS" => Some("true".to_owned()),
            "GATEHOUSE_BROWSER_ORIGINS" => Some(origins.to_owned()),
            _ => None,
        })
    };
    let config = load("https://app.example.com, http://127.0.0.1:8080").unwrap();
    assert!(config.browser.enabled);
    // Origins with the doors off are a mistake, named.
    let off = Config::load_with(None, &|name| match name {
        "GATEHOUSE_API_SECRET" => Some(SECRET.to_owned()),
        "GATEHOUSE_BROWSER_ORIGINS" => Some("https://app.example.com".to_owned()),
        _ => None,
    })
    .unwrap_err()
    .to_string();
    assert!(off.contains("GATEHOUSE_BROWSER_DOORS=true"), "{off}");
    assert_eq!(
        config.browser.allowed_origins,
        ["https://app.example.com", "http://127.0.0.1:8080"]
    );
    for (bad, hint) in [
        (
            "https://app.example.com/",
            "write `https://app.example.com`",
        ),
        ("https://App.example.com", "write `https://app.example.com`"),
        (
            "https://app.example.com:443",
            "write `https://app.example.com`",
        ),
        ("*", "list each origin"),
        ("null", "list each origin"),
        ("ftp://files.example.com", "http:// or https://"),
        ("app.example.com", "not an origin"),
    ] {
        let error = load(bad).unwrap_err().to_string();
        assert!(
            error.contains("GATEHOUSE_BROWSER_ORIGINS") && error.contains(hint),
            "{bad}: {error}"
        );
    }
}

#[tokio::test]
async fn each_user_and_each_address_has_a_budget() {
    let server = browser_server(&[
        ("GATEHOUSE_BROWSER_RATE_PER_USER", "1"),
        ("GATEHOUSE_BROWSER_RATE_PER_ADDRESS", "0"),
    ])
    .await;
    let ask = json!({"action": "read", "resource": {"kind": "feed", "id": "user:jack"}});
    let jack = user_token("jack");
    // A burst of twice the rate passes; then, at once, calls are refused with how long to wait. (A
    // call is allowed again each second, so the refusal is looked for over a few calls, never timed.)
    for _ in 0..2 {
        let (status, _, _) = post_json(&server, "/v1/check", Some(&jack), ask.clone()).await;
        assert_eq!(status, StatusCode::OK);
    }
    let mut refused = None;
    for _ in 0..20 {
        let (status, headers, answer) =
            post_json(&server, "/v1/check", Some(&jack), ask.clone()).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some((headers, answer));
            break;
        }
    }
    let (headers, answer) = refused.expect("jack's calls are refused once over the budget");
    assert_eq!(answer["code"], "resource_exhausted");
    let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1);
    // Over gRPC-Web the same budget, as RESOURCE_EXHAUSTED.
    let mut statuses = Vec::new();
    for _ in 0..20 {
        let frame = grpc_web_frame(&check_request(
            "",
            "read",
            "feed",
            "user:jack",
            json!({}),
            json!({}),
        ));
        let answer = grpc_web(&server, "Check", Some(&jack), frame, None).await;
        statuses.push(answer.status);
        if statuses.last().is_some_and(|s| s == "8") {
            break;
        }
    }
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("8"),
        "{statuses:?}"
    );
    // Another user is not held back by jack, and backends over gRPC are not limited at all.
    let (status, _, _) = post_json(
        &server,
        "/v1/check",
        Some(&user_token("tommaso")),
        ask.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut grpc = server.client().await;
    for _ in 0..5 {
        let request = check_request(&jack, "read", "feed", "user:jack", json!({}), json!({}));
        assert!(grpc.check(request).await.unwrap().into_inner().allowed);
    }

    let by_address = browser_server(&[
        ("GATEHOUSE_BROWSER_RATE_PER_USER", "0"),
        ("GATEHOUSE_BROWSER_RATE_PER_ADDRESS", "1"),
    ])
    .await;
    let mut statuses = Vec::new();
    for user in (0..20).map(|n| format!("user-{n}")) {
        let (status, _, _) = post_json(
            &by_address,
            "/v1/check",
            Some(&user_token(&user)),
            ask.clone(),
        )
        .await;
        statuses.push(status);
        if status == StatusCode::TOO_MANY_REQUESTS {
            break;
        }
    }
    assert_eq!(statuses[..2], [StatusCode::OK, StatusCode::OK]);
    assert_eq!(
        statuses.last(),
        Some(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    // Each refusal is counted by the budget that refused it.
    let scrape = |s: &TestServer| format!("http://{}/metrics", s.http_addr);
    let metrics = crate::common::get_text(&scrape(&server)).await;
    // JSON calls are timed under their own name; gRPC-Web calls under the RPC's.
    assert!(metrics.contains("rpc=\"json/Check\""), "{metrics}");
    assert!(
        metrics.contains("gatehouse_rate_limited_total{by=\"user\"} 2"),
        "{metrics}"
    );
    let metrics = crate::common::get_text(&scrape(&by_address)).await;
    assert!(
        metrics.contains("gatehouse_rate_limited_total{by=\"address\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn capabilities_over_grpc_for_a_backend_describing_a_user() {
    let server = browser_server(&[]).await;
    let mut grpc = server.client().await;
    let resources = vec![
        pb::Resource {
            kind: "reactions".to_owned(),
            id: "r1".to_owned(),
            attributes: to_struct(json!({"user_id": "jack"})),
        },
        pb::Resource {
            kind: "reactions".to_owned(),
            id: "r2".to_owned(),
            attributes: to_struct(json!({"user_id": "tommaso"})),
        },
    ];
    let answer = grpc
        .capabilities(with_server_token(pb::CapabilitiesRequest {
            principal: Some(pb::PrincipalInput {
                user_id: "jack".to_owned(),
                ..Default::default()
            }),
            resources: resources.clone(),
            actions: vec!["delete".to_owned(), "fly".to_owned()],
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.resources.len(), 2);
    assert_eq!(answer.resources[0].id, "r1");
    assert_eq!(answer.resources[0].actions, ["delete"]);
    assert_eq!(answer.resources[1].actions, Vec::<String>::new());

    let too_many = pb::CapabilitiesRequest {
        token: user_token("jack"),
        resources: vec![resources[0].clone(); 1001],
        ..Default::default()
    };
    let refused = grpc.capabilities(too_many).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    let no_kind = pb::CapabilitiesRequest {
        token: user_token("jack"),
        resources: vec![pb::Resource::default()],
        ..Default::default()
    };
    assert_eq!(
        grpc.capabilities(no_kind).await.unwrap_err().code(),
        tonic::Code::InvalidArgument
    );
}

#[tokio::test]
async fn grpc_web_text_is_understood_too() {
    let server = browser_server(&[]).await;
    let ask = check_request("", "read", "users", "jack", json!({}), json!({}));
    let body = base64::engine::general_purpose::STANDARD.encode(grpc_web_frame(&ask));
    let response = client()
        .post(format!(
            "http://{}/gatehouse.v1.Gatehouse/Check",
            server.http_addr
        ))
        .header("content-type", "application/grpc-web-text")
        .header("accept", "application/grpc-web-text")
        .header("authorization", format!("Bearer {}", user_token("tommaso")))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    // Each frame is its own padded base64 chunk; four characters always decode on their own.
    let mut decoded = Vec::new();
    for group in text.as_bytes().chunks(4) {
        decoded.extend(
            base64::engine::general_purpose::STANDARD
                .decode(group)
                .unwrap(),
        );
    }
    let mut bytes = Bytes::from(decoded);
    assert_eq!(bytes.get_u8(), 0);
    let len = bytes.get_u32() as usize;
    let decided = pb::CheckResponse::decode(bytes.split_to(len)).unwrap();
    assert!(decided.allowed);
}

/// Headless chromium loads a page from a listed origin that asks over gRPC-Web and JSON with tokens
/// made by Stream's JS clients, and shows exactly the buttons the server allows tommaso and jack on
/// feeds, reactions and users; the page's attempts to name a principal or call IssueToken are
/// refused, and a page of an unlisted origin reads nothing. See tests/browser/drive.py.
#[test]
fn a_real_browser_shows_exactly_the_allowed_buttons() {
    let root = env!("CARGO_MANIFEST_DIR");
    succeed(
        std::process::Command::new("bash")
            .arg("scripts/browser-env.sh")
            .current_dir(root),
    );
    let mut drive =
        std::process::Command::new(format!("{root}/target/browser-env/venv/bin/python"));
    succeed(
        without_gatehouse_env(&mut drive)
            .arg("tests/browser/drive.py")
            .current_dir(root)
            .env("GATEHOUSE_BIN", env!("CARGO_BIN_EXE_gatehouse")),
    );
}

#[tokio::test]
async fn the_browser_doors_are_off_unless_turned_on() {
    let server = TestServer::start().await;
    let (status, _, _) = post_json(
        &server,
        "/v1/check",
        Some(&user_token("jack")),
        json!({"action": "read", "resource": {"kind": "feed", "id": "user:jack"}}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let frame = grpc_web_frame(&check_request(
        "",
        "read",
        "feed",
        "user:jack",
        json!({}),
        json!({}),
    ));
    let answer = grpc_web(&server, "Check", Some(&user_token("jack")), frame, None).await;
    assert_eq!(answer.http, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_a_users_token_is_verified_before_any_body_is_read() {
    let server = browser_server(&[]).await;
    let ask = json!({"action": "read", "resource": {"kind": "feed", "id": "user:jack"}});
    // A scope token speaks for a scope, not for a user with buttons; a wildcard one least of all.
    for claims in [
        json!({"resource": "*", "action": "*"}),
        json!({"resource": "feed", "action": "read", "feed_id": "*", "user_id": "jack"}),
    ] {
        let (status, _, answer) =
            post_json(&server, "/v1/check", Some(&sign(claims)), ask.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    }
    // A bad token is refused before the body: a body that never ends does not hold the answer up.
    let mut stream = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    let head = "POST /gatehouse.v1.Gatehouse/Check HTTP/1.1\r\nhost: x\r\n\
                content-type: application/grpc-web+proto\r\nauthorization: Bearer garbage\r\n\
                content-length: 100000000\r\n\r\n";
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[0u8; 4096]).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("the refusal comes before the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]).to_lowercase();
    assert!(answer.contains("grpc-status: 16"), "{answer}");
    // With a good token, a body over 256 KiB is cut off rather than read to the end.
    let mut frames = Vec::new();
    let small = grpc_web_frame(&check_request(
        "",
        "read",
        "feed",
        "user:jack",
        json!({}),
        json!({}),
    ));
    while frames.len() < 512 * 1024 {
        frames.extend_from_slice(&small);
    }
    let answer = grpc_web(
        &server,
        "Check",
        Some(&user_token("jack")),
        Bytes::from(frames),
        None,
    )
    .await;
    assert_ne!(answer.status, "0", "{}", answer.grpc_message);
    // A token that claims to expire after the year 9999 is answered, not a dropped connection.
    let far = sign(json!({"user_id": "jack", "exp": 300_000_000_000i64}));
    let (status, _, answer) = post_json(&server, "/v1/check", Some(&far), ask.clone()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["principal"]["expires_at"], 300_000_000_000i64);
    // Wrong types in the credential fields are errors, not absent values.
    let (status, _, _) = post_json(
        &server,
        "/v1/check",
        Some(&user_token("jack")),
        json!({
            "action": "read", "resource": {"kind": "feed", "id": "user:jack"}, "token": false
        }),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_trailer_cannot_replace_the_authorization_header() {
    let server = browser_server(&[]).await;
    let frame = grpc_web_frame(&check_request(
        "",
        "read",
        "feed",
        "timeline:tommaso",
        json!({}),
        json!({}),
    ));
    let mut request = format!(
        "POST /gatehouse.v1.Gatehouse/Check HTTP/1.1\r\nhost: x\r\ncontent-type: application/grpc-web+proto\r\n\
         authorization: Bearer {}\r\ntransfer-encoding: chunked\r\ntrailer: authorization\r\n\r\n{:x}\r\n",
        user_token("jack"),
        frame.len()
    )
    .into_bytes();
    request.extend_from_slice(&frame);
    request.extend_from_slice(
        format!(
            "\r\n0\r\nauthorization: Bearer {}\r\n\r\n",
            user_token("tommaso")
        )
        .as_bytes(),
    );
    let mut stream = tokio::net::TcpStream::connect(server.http_addr)
        .await
        .unwrap();
    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 8192];
    while !answer.windows(11).any(|w| w == b"grpc-status") {
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut buffer))
                .await
                .unwrap()
                .unwrap();
        assert!(read > 0, "{}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.contains("jack"), "{text}");
    assert!(!text.contains("tommaso' may"), "{text}");
}

#[tokio::test]
async fn browsers_get_no_explanations_and_leave_no_decision_log() {
    let server = browser_server(&[]).await;
    let token = user_token("jack");
    let (status, _, answer) = post_json(
        &server,
        "/v1/check",
        Some(&token),
        json!({"action": "read", "resource": {"kind": "feed", "id": "user:jack"}, "explain": true}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("explanations"));
    for _ in 0..3 {
        let (status, _, _) = post_json(
            &server,
            "/v1/check-batch",
            Some(&token),
            json!({"items": [{"action": "read", "resource": {"kind": "feed", "id": "user:jack"}}]}),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    // What a page asked is not what the user did: nothing was exercised.
    let mut grpc = server.client().await;
    let exercised = grpc
        .exercised_permissions(with_server_token(pb::ExercisedPermissionsRequest {
            subject: Some(pb::Subject {
                who: Some(pb::subject::Who::UserId("jack".to_owned())),
            }),
            since: None,
        }))
        .await
        .unwrap()
        .into_inner();
    assert!(exercised.permissions.is_empty(), "{exercised:?}");
    assert_eq!(exercised.entries_kept, 0);
    // A path that is not a browser call is the listener's 404, whatever it carries.
    let response = client()
        .post(format!(
            "http://{}/gatehouse.v1.Gatehouse/IssueToken",
            server.http_addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
}
