//! The operator console over a real server: its page's headers, each API call, evaluation equal to
//! the Check RPC's answer and explanation, the decision filters and tail, who is let in (loopback,
//! server tokens; never a forged header), and the bounds. `a_real_browser_uses_the_console` drives
//! the page itself in headless chromium (tests/console/drive.py).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use gatehouse::config::Config;
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tonic::transport::Channel;

use crate::common::{SECRET, server_token, sign, to_struct, user_token, with_server_token};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// A server run in-process whose HTTP listener is bound on `http_ip` (0.0.0.0 to be reached from a
/// non-loopback address).
struct Server {
    grpc: SocketAddr,
    http: SocketAddr,
    _shutdown: oneshot::Sender<()>,
}

impl Server {
    async fn start(env: &[(&str, &str)], http_ip: IpAddr) -> Server {
        let mut vars: std::collections::HashMap<String, String> =
            [("GATEHOUSE_API_SECRET".to_owned(), SECRET.to_owned())].into();
        for (k, v) in env {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::load_with(None, &|name| vars.get(name).cloned()).unwrap();
        let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http = tokio::net::TcpListener::bind(SocketAddr::new(http_ip, 0))
            .await
            .unwrap();
        let (grpc_addr, http_addr) = (grpc.local_addr().unwrap(), http.local_addr().unwrap());
        let (tx, rx) = oneshot::channel::<()>();
        let listeners = gatehouse::Listeners {
            grpc,
            http: Some(http),
        };
        tokio::spawn(gatehouse::run_listeners(config, listeners, async {
            let _ = rx.await;
        }));
        Server {
            grpc: grpc_addr,
            http: http_addr,
            _shutdown: tx,
        }
    }

    async fn examples(name: &str) -> Server {
        let dir = format!("{ROOT}/policies/examples/{name}");
        Server::start(
            &[("GATEHOUSE_POLICY_DIR", &dir)],
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        )
        .await
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.http.port())
    }

    async fn client(&self) -> GatehouseClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.grpc))
            .unwrap()
            .connect()
            .await
            .unwrap();
        GatehouseClient::new(channel)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let response = http().get(self.url(path)).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn evaluate(&self, body: &Value) -> (u16, Value) {
        let response = http()
            .post(self.url("/console/api/evaluate"))
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// The RPC's explanation in the console's JSON form, to compare the two.
fn explanation_json(e: &pb::Explanation) -> Value {
    fn policy(p: &pb::PolicyResult) -> Value {
        json!({"name": p.name, "granted": p.granted, "negative": p.negative, "detail": p.detail,
            "details": p.details, "children": p.children.iter().map(policy).collect::<Vec<_>>()})
    }
    let entries: Vec<Value> = e
        .entries
        .iter()
        .map(|t| {
            json!({"name": t.name, "origin": t.origin, "priority": t.priority, "actions": t.actions,
                "result": t.result, "detail": t.detail, "details": t.details,
                "policies": t.policies.iter().map(policy).collect::<Vec<_>>()})
        })
        .collect();
    json!({"strategy": e.strategy, "entries": entries})
}

/// Asks the Check RPC (server token, described principal, explain) and the console the same question,
/// and requires the same answer and explanation; returns the console's.
async fn same_as_check(server: &Server, principal: Value, action: &str, resource: Value) -> Value {
    let mut client = server.client().await;
    let input = pb::PrincipalInput {
        user_id: principal["user_id"].as_str().unwrap().to_owned(),
        roles: serde_json::from_value(principal["roles"].clone()).unwrap_or_default(),
        groups: vec![],
        channel_roles: serde_json::from_value(principal["channel_roles"].clone())
            .unwrap_or_default(),
        claims: None,
    };
    let rpc = client
        .check(with_server_token(pb::CheckRequest {
            principal: Some(input),
            action: action.to_owned(),
            resource: Some(pb::Resource {
                kind: resource["kind"].as_str().unwrap().to_owned(),
                id: resource["id"].as_str().unwrap_or_default().to_owned(),
                attributes: to_struct(resource.get("attributes").cloned().unwrap_or(json!({}))),
            }),
            explain: true,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let (status, console) = server
        .evaluate(&json!({"principal": principal, "action": action, "resource": resource}))
        .await;
    assert_eq!(status, 200, "{console}");
    assert_eq!(console["allowed"], rpc.allowed, "{console}");
    assert_eq!(console["rule"], rpc.rule.as_str());
    assert_eq!(console["reason"], rpc.reason.as_str());
    assert_eq!(console["policy_revision"], rpc.policy_revision.as_str());
    assert_eq!(console["recorded"], false);
    assert_eq!(
        console["explanation"],
        explanation_json(rpc.explanation.as_ref().unwrap())
    );
    console
}

#[tokio::test]
async fn the_page_and_its_files_are_embedded_under_a_strict_policy() {
    let server = Server::examples("keycloak-bank-unanimous").await;
    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
        ("/console/api/policy", "application/json"),
    ] {
        let response = http().get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        assert_eq!(header("content-security-policy"), CSP, "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("referrer-policy"), "no-referrer", "{path}");
        assert!(header("content-type").starts_with(kind), "{path}");
        if path.starts_with("/console/api/") {
            assert_eq!(header("cache-control"), "no-store", "{path}");
        }
    }
    let page = http()
        .get(server.url("/console"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"<script src="/console/console.js" defer></script>"#));
    assert_eq!(page.matches("<script").count(), 1, "no inline script");
    assert!(!page.contains("style="), "no inline style");
    assert!(!page.contains("http://") && !page.contains("https://"));
    let script = include_str!("../../src/console/assets/console.js");
    assert!(
        !script.contains("innerHTML") && !script.contains("outerHTML"),
        "data is written as text"
    );
    assert!(!script.contains("localStorage") && !script.contains("sessionStorage"));
}

#[tokio::test]
async fn evaluate_equals_the_check_rpc_for_the_keycloak_bank() {
    let server = Server::examples("keycloak-bank-unanimous").await;
    let account = json!({"kind": "account", "id": "42"});
    let teller = same_as_check(
        &server,
        json!({"user_id": "bob", "roles": ["bank_teller"]}),
        "account:view",
        account.clone(),
    )
    .await;
    assert_eq!(teller["allowed"], false);
    assert_eq!(teller["rule"], "view-account-scope");
    let owner = same_as_check(
        &server,
        json!({"user_id": "bob", "roles": ["account_owner"]}),
        "account:view",
        account.clone(),
    )
    .await;
    assert_eq!(owner["allowed"], true);
    assert_eq!(owner["explanation"]["strategy"], "unanimous");
    same_as_check(
        &server,
        json!({"user_id": "bob", "roles": ["user"]}),
        "account:delete",
        account,
    )
    .await;

    // A pasted user token is the Check RPC's token path.
    let token = sign(json!({"user_id": "bob", "roles": ["account_owner"]}));
    let (status, answer) = server
        .evaluate(&json!({"token": token, "action": "account:view",
            "resource": {"kind": "account", "id": "42"}}))
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["principal"]["user_id"], "bob");
}

#[tokio::test]
async fn evaluate_equals_the_check_rpc_for_a_stream_chat_channel_moderator() {
    let server = Server::examples("stream-chat").await;
    let jack = json!({"user_id": "jack", "roles": ["user"],
        "channel_roles": {"messaging:general": "channel_moderator"}});
    let message = |id: &str, channel: &str| {
        json!({"kind": "message", "id": id,
            "attributes": {"user_id": "tommaso", "channel": channel}})
    };
    let general = same_as_check(
        &server,
        jack.clone(),
        "UpdateMessage",
        message("m1", "messaging:general"),
    )
    .await;
    assert_eq!(general["allowed"], true);
    assert_eq!(general["rule"], "channel-moderators-edit-any-message");
    let random = same_as_check(
        &server,
        jack,
        "UpdateMessage",
        message("m2", "messaging:random"),
    )
    .await;
    assert_eq!(random["allowed"], false);
    assert_eq!(random["rule"], "default-deny");
}

#[tokio::test]
async fn an_evaluation_is_not_a_decision() {
    let server = Server::examples("keycloak-bank-unanimous").await;
    let ask = json!({"principal": {"user_id": "bob", "roles": ["bank_teller"]},
        "action": "account:view", "resource": {"kind": "account", "id": "42"}});
    for _ in 0..3 {
        assert_eq!(server.evaluate(&ask).await.0, 200);
    }
    let (_, page) = server.get("/console/api/decisions").await;
    assert_eq!(page["kept"], 0, "evaluations left no entry: {page}");
    let (_, exercised) = server.get("/console/api/exercised?user=bob").await;
    assert_eq!(exercised["permissions"], json!([]));
}

/// Checks through the RPC with user tokens: alice and bob on feeds, as the Feeds preset decides.
async fn some_decisions(server: &Server) {
    let mut client = server.client().await;
    for (user, feed) in [
        ("alice", "user:alice"),
        ("alice", "timeline:bob"),
        ("bob", "user:bob"),
        ("bob", "user:alice"),
        ("carol", "timeline:alice"),
    ] {
        let request = crate::common::check_request(
            &user_token(user),
            "read",
            "feed",
            feed,
            json!({}),
            json!({}),
        );
        client.check(request).await.unwrap();
    }
}

#[tokio::test]
async fn decisions_are_filtered_newest_first_and_tailed_with_a_cursor() {
    let server = Server::start(&[], IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    some_decisions(&server).await;
    let (status, page) = server.get("/console/api/decisions").await;
    assert_eq!(status, 200, "{page}");
    let entries = page["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 5);
    assert_eq!(entries[0]["principal_id"], "carol", "newest first");
    let times: Vec<i64> = entries
        .iter()
        .map(|e| e["time_ms"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]));

    let (_, alice) = server.get("/console/api/decisions?user=alice").await;
    assert!(
        alice["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["principal_id"] == "alice")
    );
    assert_eq!(alice["entries"].as_array().unwrap().len(), 2);
    let (_, denied) = server
        .get("/console/api/decisions?decision=deny&door=check&kind=feed")
        .await;
    let denied = denied["entries"].as_array().unwrap().clone();
    assert!(!denied.is_empty());
    assert!(denied.iter().all(|e| e["decision"] == "deny"));
    let rule = denied[0]["rule"].as_str().unwrap().to_owned();
    let (_, by_rule) = server
        .get(&format!("/console/api/decisions?rule={rule}"))
        .await;
    assert!(
        by_rule["entries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["rule"] == rule.as_str())
    );
    let (_, none) = server.get("/console/api/decisions?door=http").await;
    assert_eq!(none["entries"], json!([]));
    let (_, two) = server.get("/console/api/decisions?limit=2").await;
    assert_eq!(two["entries"].as_array().unwrap().len(), 2);
    assert_eq!(two["truncated"], true);

    // The tail: nothing new after the cursor, then exactly the new decisions.
    let cursor = page["cursor"].as_str().unwrap().to_owned();
    let (_, quiet) = server
        .get(&format!("/console/api/decisions?after={cursor}"))
        .await;
    assert_eq!(quiet["entries"], json!([]));
    some_decisions(&server).await;
    let (_, tail) = server
        .get(&format!("/console/api/decisions?after={cursor}&user=bob"))
        .await;
    assert_eq!(tail["entries"].as_array().unwrap().len(), 2);
    assert_eq!(tail["gap"], false);

    let (status, rate) = server.get("/console/api/rate?minutes=1").await;
    assert_eq!(status, 200);
    let total: u64 = ["allow", "deny"]
        .iter()
        .flat_map(|k| rate[k].as_array().unwrap().iter())
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(total, 10, "{rate}");
}

#[tokio::test]
async fn principals_answer_what_the_exercised_and_suggest_rpcs_answer() {
    let server = Server::start(&[], IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    some_decisions(&server).await;
    let mut client = server.client().await;
    let subject = Some(pb::Subject {
        who: Some(pb::subject::Who::UserId("alice".to_owned())),
    });
    let rpc = client
        .exercised_permissions(with_server_token(pb::ExercisedPermissionsRequest {
            subject: subject.clone(),
            since: None,
        }))
        .await
        .unwrap()
        .into_inner();
    let (status, console) = server.get("/console/api/exercised?user=alice").await;
    assert_eq!(status, 200, "{console}");
    let rows = console["permissions"].as_array().unwrap();
    assert_eq!(rows.len(), rpc.permissions.len());
    for (row, p) in rows.iter().zip(&rpc.permissions) {
        assert_eq!(row["action"], p.action.as_str());
        assert_eq!(row["resource_id_pattern"], p.resource_id_pattern.as_str());
        assert_eq!(row["count"], p.count);
        assert_eq!(row["allowed"], p.allowed);
        assert_eq!(row["rule"], p.rule.as_str());
        assert!(row["first_seen"].is_string() && row["last_seen"].is_string());
    }
    let suggested = client
        .suggest_policy(with_server_token(pb::SuggestPolicyRequest {
            subject,
            since: None,
        }))
        .await
        .unwrap()
        .into_inner();
    let (_, console) = server.get("/console/api/suggest?user=alice").await;
    // The policy carries the time it was written, to the second.
    let body = |policy: &str| {
        policy
            .lines()
            .filter(|l| !l.contains("20"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        body(console["policy"].as_str().unwrap()),
        body(&suggested.policy)
    );
    assert_eq!(console["rules"], suggested.rules);
    assert_eq!(console["file"], "user-alice.yaml");
    let (status, _) = server.get("/console/api/suggest?user=a&role=b").await;
    assert_eq!(status, 400);
    let (status, _) = server.get("/console/api/exercised").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_policy_page_shows_files_rules_reloads_and_the_last_error_by_line() {
    let dir = tempfile::tempdir().unwrap();
    crate::common::write(&dir.path().join("docs.yaml"), crate::common::SET_A);
    let path = dir.path().display().to_string();
    let server = Server::start(
        &[
            ("GATEHOUSE_POLICY_DIR", &path),
            ("GATEHOUSE_SHADOW_POLICY_DIR", &path),
        ],
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    )
    .await;
    let (status, policy) = server.get("/console/api/policy").await;
    assert_eq!(status, 200, "{policy}");
    assert_eq!(policy["files"][0]["path"], "docs.yaml");
    assert_eq!(policy["files"][0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(policy["kinds"]["doc"][0]["name"], "docs-open");
    assert_eq!(policy["kinds"]["doc"][0]["effect"], "allow");
    assert_eq!(policy["shadow"]["differences_in_ring"], 0);
    assert_eq!(policy["last_error"], Value::Null);

    crate::common::write(
        &dir.path().join("docs.yaml"),
        "rules:\n  - name: broken\n    effect: maybe\n",
    );
    let mut client = server.client().await;
    let reload = client
        .reload_policies(with_server_token(pb::ReloadPoliciesRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(!reload.ok);
    let (_, policy) = server.get("/console/api/policy").await;
    // The directory watcher may have reloaded the broken file too.
    assert!(policy["reloads_failed"].as_u64().unwrap() >= 1, "{policy}");
    let error = &policy["last_error"]["errors"][0];
    assert_eq!(error["file"], "docs.yaml", "{policy}");
    assert!(error["line"].as_u64().is_some(), "{policy}");
    assert_eq!(policy["history"][0]["ok"], false);
    assert_eq!(
        policy["kinds"]["doc"][0]["name"], "docs-open",
        "still serving"
    );
}

/// A non-loopback IPv4 address of this machine, if it has one.
fn non_loopback_ipv4() -> Option<Ipv4Addr> {
    let output = std::process::Command::new("hostname")
        .arg("-I")
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|w| w.parse::<Ipv4Addr>().ok())
        .find(|ip| !ip.is_loopback() && !ip.is_unspecified())
}

#[tokio::test]
async fn from_outside_loopback_only_a_server_token_opens_the_api() {
    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("skipping: this machine has no non-loopback IPv4 address");
        return;
    };
    let server = Server::start(&[], IpAddr::V4(Ipv4Addr::UNSPECIFIED)).await;
    let remote = reqwest::Client::builder()
        .no_proxy()
        .local_address(IpAddr::V4(ip))
        .build()
        .unwrap();
    let url = |path: &str| format!("http://{ip}:{}{path}", server.http.port());
    let ask = json!({"principal": {"user_id": "u"}, "action": "read",
        "resource": {"kind": "feed", "id": "user:u"}});
    let paths = [
        "/console/api/decisions",
        "/console/api/rate",
        "/console/api/policy",
        "/console/api/exercised?user=u",
        "/console/api/suggest?user=u",
    ];
    for path in paths {
        let refused = remote
            .get(url(path))
            .header("x-forwarded-for", "127.0.0.1")
            .header("forwarded", "for=127.0.0.1")
            .header("x-real-ip", "127.0.0.1")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 401, "{path} from {ip}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "unauthenticated");
        for (token, status) in [
            (user_token("u"), 403),
            ("not-a-token".to_owned(), 401),
            (
                crate::common::sign_with(json!({"server": true}), b"wrong-secret"),
                401,
            ),
        ] {
            let response = remote
                .get(url(path))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), status, "{path} with {token}");
        }
        let allowed = remote
            .get(url(path))
            .bearer_auth(server_token())
            .send()
            .await
            .unwrap();
        assert_eq!(allowed.status(), 200, "{path} with a server token");
    }
    let refused = remote
        .post(url("/console/api/evaluate"))
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let allowed = remote
        .post(url("/console/api/evaluate"))
        .bearer_auth(server_token())
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), 200);
    // The page itself holds no data and is served, so the operator can paste a token in it.
    let page = remote.get(url("/console")).send().await.unwrap();
    assert_eq!(page.status(), 200);
}

#[tokio::test]
async fn api_inputs_are_bounded_and_wrong_shapes_are_errors() {
    let server = Server::start(&[], IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let good = json!({"principal": {"user_id": "u"}, "action": "read",
        "resource": {"kind": "feed", "id": "user:u"}});
    assert_eq!(server.evaluate(&good).await.0, 200);
    let mut wrong_shapes = vec![
        json!({"principal": {"user_id": "u"}, "action": "read", "resource": {"kind": "feed"}, "context": []}),
        json!({"principal": {"user_id": "u", "roles": "admin"}, "action": "read", "resource": {"kind": "feed"}}),
        json!({"principal": {"user_id": "u", "claims": null}, "action": "read", "resource": {"kind": "feed"}}),
        json!({"principal": {"user_id": "u"}, "action": "read", "resource": {"kind": "feed", "attributes": "x"}}),
        json!({"principal": {"user_id": "u"}, "action": "read", "resource": {"kind": "feed"}, "extra": 1}),
        json!({"principal": {"user_id": "u"}, "token": "t", "action": "read", "resource": {"kind": "feed"}}),
        json!({"principal": {"user_id": "u"}, "action": "", "resource": {"kind": "feed"}}),
        json!({"action": "read", "resource": {"kind": "feed"}}),
    ];
    wrong_shapes.push(json!([]));
    for body in wrong_shapes {
        let (status, answer) = server.evaluate(&body).await;
        assert!(
            status == 400 || status == 401,
            "{body} -> {status} {answer}"
        );
        assert!(answer["message"].is_string(), "{body} -> {answer}");
    }
    let huge = format!(
        r#"{{"principal": {{"user_id": "{}"}}, "action": "read", "resource": {{"kind": "feed"}}}}"#,
        "x".repeat(200_000)
    );
    let response = http()
        .post(server.url("/console/api/evaluate"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    for (body, content_type) in [("{not json", "application/json"), ("{}", "text/plain")] {
        let response = http()
            .post(server.url("/console/api/evaluate"))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body} as {content_type}");
    }
    let long = "x".repeat(300);
    for query in [
        "decision=maybe".to_owned(),
        "door=grpc".to_owned(),
        "limit=0".to_owned(),
        "limit=201".to_owned(),
        "limit=ten".to_owned(),
        "after=yesterday".to_owned(),
        "user=a&user=b".to_owned(),
        "colour=red".to_owned(),
        format!("user={long}"),
    ] {
        let (status, answer) = server.get(&format!("/console/api/decisions?{query}")).await;
        assert_eq!(status, 400, "{query}: {answer}");
    }
    assert_eq!(server.get("/console/api/rate?minutes=31").await.0, 400);
    // Read-only: no method changes state.
    let put = http()
        .put(server.url("/console/api/policy"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 405);
    // Another site's page in the operator's browser is refused.
    let cross = http()
        .get(server.url("/console/api/policy"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
}

/// Headless chromium evaluates the bank and chat examples in the console and finds the RPC's
/// decisions and rule traces, filters the decision list, and downloads a suggested policy that
/// `gatehouse validate` accepts. See tests/console/drive.py.
#[test]
fn a_real_browser_uses_the_console() {
    let setup = std::process::Command::new("bash")
        .arg("scripts/browser-env.sh")
        .current_dir(ROOT)
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "scripts/browser-env.sh failed:\n{}\n{}",
        String::from_utf8_lossy(&setup.stdout),
        String::from_utf8_lossy(&setup.stderr)
    );
    let mut drive =
        std::process::Command::new(format!("{ROOT}/target/browser-env/venv/bin/python"));
    crate::common::without_gatehouse_env(&mut drive);
    let output = drive
        .arg("tests/console/drive.py")
        .current_dir(ROOT)
        .env("GATEHOUSE_BIN", env!("CARGO_BIN_EXE_gatehouse"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "tests/console/drive.py failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A page of another site that rebinds its name to 127.0.0.1 reaches the console from loopback, but
/// with its own name as `Host`: without a server token it is refused.
#[tokio::test]
async fn a_loopback_call_for_another_name_needs_a_token() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(&[], IpAddr::V4(Ipv4Addr::LOCALHOST)).await;
    let port = server.http.port();
    let ask = |host: String| async move {
        let mut stream = tokio::net::TcpStream::connect(server.http).await.unwrap();
        let request = format!(
            "GET /console/api/policy HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await.unwrap();
        answer.lines().next().unwrap_or_default().to_owned()
    };
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "LOCALHOST".to_owned(),
    ] {
        assert!(ask(host.clone()).await.contains(" 200 "), "{host}");
    }
    for host in [
        format!("rebound.example:{port}"),
        "127.0.0.1.rebound.example".to_owned(),
        format!("10.0.0.1:{port}"),
    ] {
        assert!(ask(host.clone()).await.contains(" 401 "), "{host}");
    }
}
