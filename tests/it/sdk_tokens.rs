//! Compatibility with Stream's official SDKs, black-box over a real server.
//!
//! Tokens minted by stream-python, stream-chat (Python), getstream and stream-chat (JavaScript) must
//! verify in gatehouse unchanged, as the principal Stream would see; and tokens gatehouse issues must
//! verify in the JWT libraries those SDKs sign with (PyJWT and jsonwebtoken). The SDKs, pinned in
//! tests/sdk/, are installed into target/sdk-env/ by scripts/sdk-env.sh; if they cannot be installed the
//! tests fail rather than skip.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{SECRET, TestServer, check, check_request, server_token, sign_with};
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use gatehouse::grpc::pb::principal::Kind;
use serde_json::{Map, Value, json};
use tonic::transport::Channel;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Installs the pinned SDKs once per test process; every test that needs them fails if that fails.
pub(crate) fn sdk_env() {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    let ready = READY.get_or_init(|| {
        let script = PathBuf::from(ROOT).join("scripts").join("sdk-env.sh");
        let output = Command::new("bash")
            .arg(&script)
            .current_dir(ROOT)
            .output()
            .map_err(|e| format!("could not run bash {}: {e}", script.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}); the SDK compatibility tests need Stream's SDKs installed.\n\
                 --- stdout ---\n{}\n--- stderr ---\n{}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(message) = ready {
        panic!("{message}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sdk {
    Python,
    JavaScript,
}

impl Sdk {
    /// Runs `tests/sdk/<name>.<py|js>` with the SDK's runtime and the test secret, returning stdout, or
    /// stderr as the error when it exits non-zero.
    fn run(self, name: &str, args: &[&str]) -> Result<String, String> {
        self.run_with_secret(name, args, SECRET)
    }

    /// [`Sdk::run`] with another secret.
    fn run_with_secret(self, name: &str, args: &[&str], secret: &str) -> Result<String, String> {
        sdk_env();
        let root = PathBuf::from(ROOT);
        let mut command = match self {
            Sdk::Python => {
                let mut c = Command::new(root.join("target/sdk-env/venv/bin/python"));
                c.arg(root.join(format!("tests/sdk/{name}.py")));
                c
            }
            Sdk::JavaScript => {
                let mut c = Command::new("node");
                c.arg(root.join(format!("tests/sdk/{name}.js")))
                    .env("GATEHOUSE_SDK_NODE_DIR", root.join("target/sdk-env/node"));
                c
            }
        };
        let output = command
            .args(args)
            .env("GATEHOUSE_TEST_SECRET", secret)
            .output()
            .unwrap_or_else(|e| panic!("could not run the {self:?} {name} script: {e}"));
        let stdout = String::from_utf8(output.stdout).unwrap();
        if output.status.success() {
            Ok(stdout)
        } else {
            Err(format!(
                "{} ({}): {}",
                name,
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// Tokens minted by this language's SDKs, and the clock they were minted by.
    fn mint(self) -> Minted {
        self.mint_with_secret(SECRET)
    }

    /// Tokens minted by this language's SDKs with `secret`.
    pub(crate) fn mint_with_secret(self, secret: &str) -> Minted {
        let stdout = self
            .run_with_secret("mint", &[], secret)
            .unwrap_or_else(|e| panic!("{self:?} SDKs could not mint tokens: {e}"));
        let parsed: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("mint printed no JSON ({e}): {stdout}"));
        Minted {
            now: parsed["now"].as_i64().unwrap(),
            tokens: serde_json::from_value(parsed["tokens"].clone()).unwrap(),
        }
    }

    /// The claims, if the SDK's own JWT library verifies `token` with the test secret.
    fn decode(self, token: &str) -> Result<Value, String> {
        let stdout = self.run("verify", &[token])?;
        Ok(serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("verify printed no JSON ({e}): {stdout}")))
    }
}

pub(crate) struct Minted {
    now: i64,
    tokens: BTreeMap<String, String>,
}

impl Minted {
    pub(crate) fn token(&self, name: &str) -> &str {
        self.tokens
            .get(name)
            .unwrap_or_else(|| panic!("the SDK minted no token named {name}"))
    }
}

/// What gatehouse must make of one SDK token.
#[derive(Debug)]
enum Outcome {
    User(&'static str),
    Server,
    Scoped {
        resource: &'static str,
        action: &'static str,
        feed_id: &'static str,
        scope_user_id: &'static str,
        /// The principal's user_id: the scope's single user, if it names exactly one.
        user_id: &'static str,
    },
    /// UNAUTHENTICATED, with this in the message.
    Rejected(&'static str),
}

/// An `iat` claim: absent, set by the caller to now plus an offset, or stamped by the JWT library.
#[derive(Debug, Clone, Copy)]
enum Iat {
    Absent,
    At(i64),
    Stamped,
}

#[derive(Debug)]
struct Expected {
    name: &'static str,
    outcome: Outcome,
    /// Every claim except `exp` and `iat`.
    claims: Value,
    /// `exp` as an offset from the mint clock.
    exp: Option<i64>,
    iat: Iat,
}

fn expect(name: &'static str, outcome: Outcome, claims: Value) -> Expected {
    Expected {
        name,
        outcome,
        claims,
        exp: None,
        iat: Iat::Absent,
    }
}

impl Expected {
    fn exp(mut self, offset: i64) -> Self {
        self.exp = Some(offset);
        self
    }

    fn iat(mut self, iat: Iat) -> Self {
        self.iat = iat;
        self
    }
}

fn scoped(
    resource: &'static str,
    action: &'static str,
    feed_id: &'static str,
    scope_user_id: &'static str,
    user_id: &'static str,
) -> Outcome {
    Outcome::Scoped {
        resource,
        action,
        feed_id,
        scope_user_id,
        user_id,
    }
}

fn python_expectations() -> Vec<Expected> {
    vec![
        // stream-python: client.create_user_token("tommaso")
        expect(
            "feeds_user",
            Outcome::User("tommaso"),
            json!({"user_id": "tommaso"}),
        ),
        // stream-python: client.create_user_token("tommaso", exp=now+3600, plan="pro")
        expect(
            "feeds_user_exp_plan",
            Outcome::User("tommaso"),
            json!({"user_id": "tommaso", "plan": "pro"}),
        )
        .exp(3600),
        // stream-python: client.create_jwt_token("feed", "read", feed_id="userjack")
        expect(
            "feeds_scope_feed_read",
            scoped("feed", "read", "userjack", "", ""),
            json!({"resource": "feed", "action": "read", "feed_id": "userjack"}),
        ),
        // stream-python: client.create_jwt_token("*", "*", feed_id="*"), what its server calls sign with
        expect(
            "feeds_server",
            Outcome::Server,
            json!({"resource": "*", "action": "*", "feed_id": "*"}),
        ),
        // stream-python: client.feed("user", "jack").get_readonly_token()
        expect(
            "feeds_readonly",
            scoped("*", "read", "userjack", "", ""),
            json!({"resource": "*", "action": "read", "feed_id": "userjack"}),
        ),
        // stream-python: client.feed("timeline", "jack").token
        expect(
            "feeds_feed_token",
            scoped("feed", "*", "*", "", ""),
            json!({"resource": "feed", "action": "*", "feed_id": "*"}),
        ),
        // stream-python: client.create_jwt_token("users", "write", user_id="jack")
        expect(
            "feeds_scope_users_write",
            scoped("users", "write", "", "jack", "jack"),
            json!({"resource": "users", "action": "write", "user_id": "jack"}),
        ),
        // stream-python: client.collections.token
        expect(
            "feeds_collections",
            scoped("collections", "*", "*", "*", ""),
            json!({"resource": "collections", "action": "*", "feed_id": "*", "user_id": "*"}),
        ),
        // stream-python: client.personalization.token
        expect(
            "feeds_personalization",
            scoped("personalization", "*", "*", "*", ""),
            json!({"resource": "personalization", "action": "*", "feed_id": "*", "user_id": "*"}),
        ),
        // stream-chat: client.create_token("jack")
        expect(
            "chat_user",
            Outcome::User("jack"),
            json!({"user_id": "jack"}),
        ),
        // stream-chat: client.create_token("jack", exp=now+3600, iat=now-10)
        expect(
            "chat_user_exp_iat",
            Outcome::User("jack"),
            json!({"user_id": "jack"}),
        )
        .exp(3600)
        .iat(Iat::At(-10)),
        // stream-chat: client.create_token("jack", exp=now-60)
        expect(
            "chat_expired",
            Outcome::Rejected("expired"),
            json!({"user_id": "jack"}),
        )
        .exp(-60),
        // stream-chat: client.auth_token, {"server": true}
        expect("chat_server", Outcome::Server, json!({"server": true})),
    ]
}

fn javascript_expectations() -> Vec<Expected> {
    vec![
        // getstream: client.createUserToken('tommaso')
        expect(
            "feeds_user",
            Outcome::User("tommaso"),
            json!({"user_id": "tommaso"}),
        ),
        // getstream: client.createUserToken('tommaso', {plan: 'pro'})
        expect(
            "feeds_user_plan",
            Outcome::User("tommaso"),
            json!({"user_id": "tommaso", "plan": "pro"}),
        ),
        // getstream: stream.connect(key, secret, null, {expireTokens: true}).createUserToken('tommaso')
        expect(
            "feeds_user_iat",
            Outcome::User("tommaso"),
            json!({"user_id": "tommaso"}),
        )
        .iat(Iat::Stamped),
        // getstream: client.getReadOnlyToken('user', 'jack')
        expect(
            "feeds_readonly",
            scoped("*", "read", "userjack", "", ""),
            json!({"resource": "*", "action": "read", "feed_id": "userjack"}),
        ),
        // getstream: client.getReadWriteToken('timeline', 'jack')
        expect(
            "feeds_readwrite",
            scoped("*", "*", "timelinejack", "", ""),
            json!({"resource": "*", "action": "*", "feed_id": "timelinejack"}),
        ),
        // getstream: client.feed('user', 'jack').token
        expect(
            "feeds_feed_token",
            scoped("*", "*", "userjack", "", ""),
            json!({"resource": "*", "action": "*", "feed_id": "userjack"}),
        ),
        // getstream: client.getOrCreateToken(), what its server calls sign with
        expect(
            "feeds_server",
            Outcome::Server,
            json!({"resource": "*", "action": "*", "feed_id": "*"}),
        ),
        // getstream: client.getPersonalizationToken()
        expect(
            "feeds_personalization",
            scoped("personalization", "*", "*", "*", ""),
            json!({"resource": "personalization", "action": "*", "feed_id": "*", "user_id": "*"}),
        ),
        // getstream: client.getCollectionsToken()
        expect(
            "feeds_collections",
            scoped("collections", "*", "*", "", ""),
            json!({"resource": "collections", "action": "*", "feed_id": "*"}),
        ),
        // getstream: client.getAnalyticsToken()
        expect(
            "feeds_analytics",
            scoped("analytics", "*", "", "*", ""),
            json!({"resource": "analytics", "action": "*", "user_id": "*"}),
        ),
        // getstream/lib/signing: JWTScopeToken(secret, '*', '*', {feedId: '*'})
        expect(
            "feeds_signing_server",
            Outcome::Server,
            json!({"resource": "*", "action": "*", "feed_id": "*"}),
        ),
        // getstream/lib/signing: JWTScopeToken(secret, ['feed', 'follower'], ['read', 'write'],
        //   {feedId: ['timelinejack', 'userjack']})
        expect(
            "feeds_signing_lists",
            scoped(
                "feed,follower",
                "read,write",
                "timelinejack,userjack",
                "",
                "",
            ),
            json!({
                "resource": "feed,follower",
                "action": "read,write",
                "feed_id": "timelinejack,userjack"
            }),
        ),
        // stream-chat: client.createToken('jack')
        expect(
            "chat_user",
            Outcome::User("jack"),
            json!({"user_id": "jack"}),
        ),
        // stream-chat: client.createToken('jack', now + 3600, now - 10)
        expect(
            "chat_user_exp_iat",
            Outcome::User("jack"),
            json!({"user_id": "jack"}),
        )
        .exp(3600)
        .iat(Iat::At(-10)),
        // stream-chat: client.createToken('jack', now - 60)
        expect(
            "chat_expired",
            Outcome::Rejected("expired"),
            json!({"user_id": "jack"}),
        )
        .exp(-60),
        // stream-chat: client._getToken(), the server client's JWTServerToken
        expect("chat_server", Outcome::Server, json!({"server": true})),
        // stream-chat: client.devToken('jack'), refused unless development tokens are enabled
        expect(
            "chat_dev",
            Outcome::Rejected("development tokens"),
            json!({"user_id": "jack"}),
        ),
        expect(
            "chat_dev_padded",
            Outcome::Rejected("development tokens"),
            json!({"user_id": "jack-2"}),
        ),
    ]
}

/// The claims a token carries, read without verifying (base64url or, as in development tokens,
/// padded standard base64).
fn payload(token: &str) -> Value {
    let segment = token.split('.').nth(1).expect("a payload segment");
    let normalized: String = segment
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(normalized).unwrap()).unwrap()
}

fn without_times(claims: &Value) -> Value {
    let mut map = claims.as_object().cloned().unwrap();
    map.remove("exp");
    map.remove("iat");
    Value::Object(map)
}

/// protobuf Struct to JSON, with whole numbers as integers as in the token.
fn struct_to_json(value: &prost_types::Struct) -> Value {
    use prost_types::value::Kind as V;
    fn convert(value: &prost_types::Value) -> Value {
        match &value.kind {
            None | Some(V::NullValue(_)) => Value::Null,
            Some(V::BoolValue(b)) => Value::Bool(*b),
            Some(V::NumberValue(n)) if n.fract() == 0.0 && n.abs() < 9.0e15 => json!(*n as i64),
            Some(V::NumberValue(n)) => json!(*n),
            Some(V::StringValue(s)) => Value::String(s.clone()),
            Some(V::ListValue(list)) => Value::Array(list.values.iter().map(convert).collect()),
            Some(V::StructValue(s)) => struct_to_json(s),
        }
    }
    Value::Object(
        value
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), convert(v)))
            .collect::<Map<_, _>>(),
    )
}

async fn verify(
    client: &mut GatehouseClient<Channel>,
    token: &str,
) -> Result<pb::Principal, tonic::Status> {
    client
        .verify(pb::VerifyRequest {
            token: token.to_owned(),
        })
        .await
        .map(|r| r.into_inner().principal.expect("a principal"))
}

/// Checks one minted token against its expectation; returns what does not hold.
async fn verify_as_expected(
    client: &mut GatehouseClient<Channel>,
    minted: &Minted,
    expected: &Expected,
) -> Vec<String> {
    let name = expected.name;
    let token = minted.token(name);
    let claims = payload(token);
    let mut failures = Vec::new();
    let mut fail = |what: String| failures.push(format!("{name}: {what}"));

    // What the SDK minted is what this test expects it to mint.
    if without_times(&claims) != expected.claims {
        fail(format!(
            "the SDK minted {claims}, expected {}",
            expected.claims
        ));
    }
    let exp = expected.exp.map(|offset| minted.now + offset);
    if claims.get("exp").and_then(Value::as_i64) != exp {
        fail(format!("exp is {:?}, expected {exp:?}", claims.get("exp")));
    }
    let iat = claims.get("iat").and_then(Value::as_i64);
    let iat_ok = match expected.iat {
        Iat::Absent => iat.is_none(),
        Iat::At(offset) => iat == Some(minted.now + offset),
        Iat::Stamped => iat.is_some_and(|t| (minted.now..=minted.now + 5).contains(&t)),
    };
    if !iat_ok {
        fail(format!("iat is {iat:?}, expected {:?}", expected.iat));
    }

    let result = verify(client, token).await;
    let principal = match (&expected.outcome, result) {
        (Outcome::Rejected(needle), Err(status)) => {
            if status.code() != tonic::Code::Unauthenticated || !status.message().contains(needle) {
                fail(format!(
                    "expected UNAUTHENTICATED mentioning '{needle}', got {:?}: {}",
                    status.code(),
                    status.message()
                ));
            }
            return failures;
        }
        (Outcome::Rejected(needle), Ok(principal)) => {
            fail(format!(
                "expected a rejection mentioning '{needle}', got {principal:?}"
            ));
            return failures;
        }
        (outcome, Err(status)) => {
            fail(format!(
                "gatehouse rejected the token with claims {claims}: {:?} {} (expected {outcome:?})",
                status.code(),
                status.message()
            ));
            return failures;
        }
        (_, Ok(principal)) => principal,
    };

    let (kind, user_id, scope) = match &expected.outcome {
        Outcome::User(user) => (Kind::User, *user, None),
        Outcome::Server => (Kind::Server, "", None),
        Outcome::Scoped {
            resource,
            action,
            feed_id,
            scope_user_id,
            user_id,
        } => (
            Kind::Scoped,
            *user_id,
            Some(pb::Scope {
                resource: (*resource).to_owned(),
                action: (*action).to_owned(),
                feed_id: (*feed_id).to_owned(),
                user_id: (*scope_user_id).to_owned(),
            }),
        ),
        Outcome::Rejected(_) => unreachable!(),
    };
    if principal.kind != kind as i32 {
        fail(format!(
            "kind is {:?}, expected {kind:?}",
            Kind::try_from(principal.kind)
        ));
    }
    if principal.user_id != user_id {
        fail(format!(
            "user_id is '{}', expected '{user_id}'",
            principal.user_id
        ));
    }
    if principal.scope != scope {
        fail(format!(
            "scope is {:?}, expected {scope:?}",
            principal.scope
        ));
    }
    if !principal.roles.is_empty() || !principal.groups.is_empty() {
        fail(format!(
            "roles {:?} and groups {:?} from no such claims",
            principal.roles, principal.groups
        ));
    }
    let preserved = principal.claims.as_ref().map(struct_to_json);
    if preserved.as_ref() != Some(&claims) {
        fail(format!(
            "claims came back as {preserved:?}, the token carries {claims}"
        ));
    }
    let expires_at = principal.expires_at.map(|t| t.seconds);
    if expires_at != exp {
        fail(format!("expires_at is {expires_at:?}, expected {exp:?}"));
    }
    let issued_at = principal.issued_at.map(|t| t.seconds);
    if issued_at != iat {
        fail(format!(
            "issued_at is {issued_at:?}, the token's iat is {iat:?}"
        ));
    }
    failures
}

async fn every_token_verifies_as_expected(sdk: Sdk, expectations: Vec<Expected>) {
    let minted = sdk.mint();
    let expected_names: BTreeSet<&str> = expectations.iter().map(|e| e.name).collect();
    let minted_names: BTreeSet<&str> = minted.tokens.keys().map(String::as_str).collect();
    assert_eq!(
        minted_names, expected_names,
        "every token the {sdk:?} SDKs mint has an expectation"
    );

    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut failures = Vec::new();
    for expected in &expectations {
        failures.extend(verify_as_expected(&mut client, &minted, expected).await);
    }
    assert!(
        failures.is_empty(),
        "{sdk:?} SDK tokens that gatehouse does not read as Stream does:\n{}",
        failures.join("\n")
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn python_sdk_tokens_verify_unchanged() {
    every_token_verifies_as_expected(Sdk::Python, python_expectations()).await;
}

#[tokio::test]
async fn javascript_sdk_tokens_verify_unchanged() {
    every_token_verifies_as_expected(Sdk::JavaScript, javascript_expectations()).await;
}

/// One Check with an SDK token and the answer it must get.
struct Case {
    token: &'static str,
    action: &'static str,
    resource: (&'static str, &'static str),
    attributes: Value,
    context: Value,
    allowed: bool,
    rule: &'static str,
}

fn case(
    token: &'static str,
    action: &'static str,
    resource: (&'static str, &'static str),
    attributes: Value,
    context: Value,
    expected: (bool, &'static str),
) -> Case {
    Case {
        token,
        action,
        resource,
        attributes,
        context,
        allowed: expected.0,
        rule: expected.1,
    }
}

async fn checks_hold(sdk: Sdk, cases: Vec<Case>) {
    let minted = sdk.mint();
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let mut failures = Vec::new();
    for case in cases {
        let request = check_request(
            minted.token(case.token),
            case.action,
            case.resource.0,
            case.resource.1,
            case.attributes.clone(),
            case.context.clone(),
        );
        let response = check(&mut client, request).await;
        if response.allowed != case.allowed || response.rule != case.rule {
            failures.push(format!(
                "{} {} {} {} {}: expected ({}, {}), got ({}, {}): {}",
                case.token,
                case.action,
                case.resource.0,
                case.resource.1,
                case.context,
                case.allowed,
                case.rule,
                response.allowed,
                response.rule,
                response.reason
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{sdk:?} SDK tokens decided wrongly:\n{}",
        failures.join("\n")
    );
    server.stop().await.unwrap();
}

const ALLOW: bool = true;
const DENY: bool = false;

#[rustfmt::skip]
fn python_cases() -> Vec<Case> {
    let none = || json!({});
    let actor = |a: &str| json!({ "actor": a });
    vec![
        // A user token is a user: own feeds yes, other people's timelines no.
        case("feeds_user", "write", ("feed", "user:tommaso"), none(), actor("tommaso"), (ALLOW, "own-feeds")),
        case("feeds_user", "write", ("feed", "timeline:jack"), none(), actor("tommaso"), (DENY, "default-deny")),
        case("feeds_user_exp_plan", "read", ("feed", "timeline:tommaso"), none(), none(), (ALLOW, "own-feeds")),
        case("chat_user", "read", ("feed", "user:tommaso"), none(), none(), (ALLOW, "read-global-read-feeds")),
        case("chat_user", "write", ("feed", "notification:tommaso"), none(), actor("jack"), (ALLOW, "write-global-write-feeds")),
        case("chat_user", "write", ("feed", "notification:tommaso"), none(), actor("tommaso"), (DENY, "no-impersonation")),
        // The read-only feed token: reads of its feed, nothing else.
        case("feeds_readonly", "read", ("feed", "user:jack"), none(), none(), (ALLOW, "token-scope")),
        case("feeds_readonly", "read", ("follower", "user:jack"), none(), none(), (ALLOW, "token-scope")),
        case("feeds_readonly", "write", ("feed", "user:jack"), none(), actor("jack"), (DENY, "outside-token-scope")),
        case("feeds_readonly", "read", ("feed", "user:tommaso"), none(), none(), (DENY, "outside-token-scope")),
        // Scope tokens for one resource kind and action.
        case("feeds_scope_feed_read", "read", ("feed", "user:jack"), none(), none(), (ALLOW, "token-scope")),
        case("feeds_scope_feed_read", "read", ("follower", "user:jack"), none(), none(), (DENY, "outside-token-scope")),
        case("feeds_scope_users_write", "write", ("users", "jack"), none(), none(), (ALLOW, "token-scope")),
        case("feeds_scope_users_write", "write", ("users", "tommaso"), none(), none(), (DENY, "outside-token-scope")),
        case("feeds_scope_users_write", "read", ("users", "jack"), none(), none(), (DENY, "outside-token-scope")),
        case("feeds_feed_token", "delete", ("feed", "timeline:tommaso"), none(), none(), (ALLOW, "token-scope")),
        case("feeds_feed_token", "read", ("reactions", "r1"), json!({"user_id": "jack"}), none(), (DENY, "outside-token-scope")),
        case("feeds_collections", "write", ("collections", "food:cheese"), json!({"user_id": "jack"}), none(), (ALLOW, "token-scope")),
        case("feeds_collections", "read", ("feed", "user:jack"), none(), none(), (DENY, "outside-token-scope")),
        // Server tokens are trusted with anything.
        case("chat_server", "delete", ("feed", "timeline:jack"), none(), none(), (ALLOW, "server-token")),
        case("chat_server", "write", ("feed", "user:tommaso"), none(), actor("jack"), (ALLOW, "server-token")),
        case("chat_server", "delete", ("users", "tommaso"), none(), none(), (ALLOW, "server-token")),
        case("feeds_server", "write", ("activities", "a1"), none(), none(), (ALLOW, "server-token")),
    ]
}

#[rustfmt::skip]
fn javascript_cases() -> Vec<Case> {
    let none = || json!({});
    let actor = |a: &str| json!({ "actor": a });
    vec![
        // User tokens are users.
        case("feeds_user", "write", ("feed", "user:tommaso"), none(), actor("tommaso"), (ALLOW, "own-feeds")),
        case("feeds_user", "write", ("feed", "timeline:jack"), none(), actor("tommaso"), (DENY, "default-deny")),
        case("feeds_user_iat", "delete", ("feed", "timeline:tommaso"), none(), none(), (ALLOW, "own-feeds")),
        case("chat_user", "write", ("users", "jack"), none(), none(), (ALLOW, "manage-own-user")),
        case("chat_user", "write", ("users", "tommaso"), none(), none(), (DENY, "default-deny")),
        // The read-only feed token: reads of its feed, nothing else.
        case("feeds_readonly", "read", ("feed", "user:jack"), none(), none(), (ALLOW, "token-scope")),
        case("feeds_readonly", "write", ("feed", "user:jack"), none(), actor("jack"), (DENY, "outside-token-scope")),
        case("feeds_readonly", "read", ("feed", "user:tommaso"), none(), none(), (DENY, "outside-token-scope")),
        // Read-write feed tokens: anything on their feed, nothing on others.
        case("feeds_readwrite", "write", ("feed", "timeline:jack"), none(), actor("jack"), (ALLOW, "token-scope")),
        case("feeds_readwrite", "delete", ("follower", "timeline:jack"), none(), json!({"target": "user:tommaso"}), (ALLOW, "token-scope")),
        case("feeds_readwrite", "read", ("feed", "user:jack"), none(), none(), (DENY, "outside-token-scope")),
        case("feeds_feed_token", "delete", ("feed", "user:jack"), none(), none(), (ALLOW, "token-scope")),
        case("feeds_feed_token", "read", ("feed", "timeline:jack"), none(), none(), (DENY, "outside-token-scope")),
        // Comma lists from the signing module.
        case("feeds_signing_lists", "write", ("follower", "timeline:jack"), none(), json!({"target": "user:tommaso"}), (ALLOW, "token-scope")),
        case("feeds_signing_lists", "read", ("feed", "user:jack"), none(), none(), (ALLOW, "token-scope")),
        case("feeds_signing_lists", "delete", ("feed", "user:jack"), none(), none(), (DENY, "outside-token-scope")),
        case("feeds_signing_lists", "read", ("feed", "user:tommaso"), none(), none(), (DENY, "outside-token-scope")),
        case("feeds_signing_lists", "read", ("reactions", "r1"), json!({"user_id": "jack"}), none(), (DENY, "outside-token-scope")),
        case("feeds_analytics", "write", ("analytics", ""), none(), none(), (ALLOW, "token-scope")),
        case("feeds_analytics", "read", ("feed", "user:jack"), none(), none(), (DENY, "outside-token-scope")),
        case("feeds_personalization", "read", ("personalization", "feed"), none(), none(), (ALLOW, "token-scope")),
        // Server tokens are trusted with anything.
        case("feeds_server", "delete", ("feed", "timeline:jack"), none(), none(), (ALLOW, "server-token")),
        case("feeds_signing_server", "write", ("users", "tommaso"), none(), none(), (ALLOW, "server-token")),
        case("chat_server", "write", ("feed", "user:tommaso"), none(), actor("jack"), (ALLOW, "server-token")),
    ]
}

#[tokio::test]
async fn python_sdk_tokens_are_held_to_streams_permissions() {
    checks_hold(Sdk::Python, python_cases()).await;
}

#[tokio::test]
async fn javascript_sdk_tokens_are_held_to_streams_permissions() {
    checks_hold(Sdk::JavaScript, javascript_cases()).await;
}

#[tokio::test]
async fn javascript_dev_tokens_verify_only_when_enabled() {
    let minted = Sdk::JavaScript.mint();
    let tokens = [("chat_dev", "jack"), ("chat_dev_padded", "jack-2")];
    for (name, _) in tokens {
        assert!(
            minted.token(name).ends_with(".devtoken"),
            "{name} is a development token"
        );
    }

    let default = TestServer::start().await;
    let mut client = default.client().await;
    for (name, _) in tokens {
        let status = verify(&mut client, minted.token(name)).await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{name}");
        assert!(
            status.message().contains("development tokens"),
            "{name}: {}",
            status.message()
        );
    }
    let refused = client
        .check(check_request(
            minted.token("chat_dev"),
            "read",
            "feed",
            "user:jack",
            json!({}),
            json!({}),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    default.stop().await.unwrap();

    let dev = TestServer::start_with(&[("GATEHOUSE_ALLOW_DEV_TOKENS", "true")]).await;
    let mut client = dev.client().await;
    for (name, user) in tokens {
        let principal = verify(&mut client, minted.token(name)).await.unwrap();
        assert_eq!(principal.kind, Kind::User as i32, "{name}");
        assert_eq!(principal.user_id, user, "{name}");
        assert_eq!(
            principal.claims.as_ref().map(struct_to_json),
            Some(json!({"user_id": user})),
            "{name}"
        );
        assert_eq!(principal.expires_at, None, "{name}");
    }
    let response = check(
        &mut client,
        check_request(
            minted.token("chat_dev"),
            "write",
            "feed",
            "user:jack",
            json!({}),
            json!({"actor": "jack"}),
        ),
    )
    .await;
    assert!(response.allowed);
    assert_eq!(response.rule, "own-feeds");
    // Enabling development tokens does not make a forged signature acceptable.
    let forged = format!("{}x", minted.token("chat_user"));
    let status = verify(&mut client, &forged).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    assert!(
        status.message().contains("signature"),
        "{}",
        status.message()
    );
    dev.stop().await.unwrap();
}

async fn issue(
    client: &mut GatehouseClient<Channel>,
    request: pb::IssueTokenRequest,
) -> pb::IssueTokenResponse {
    let mut request = tonic::Request::new(request);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", server_token()).parse().unwrap(),
    );
    client
        .issue_token(request)
        .await
        .expect("IssueToken succeeds")
        .into_inner()
}

async fn issued_tokens_verify_in(sdk: Sdk) {
    let server = TestServer::start().await;
    let mut client = server.client().await;

    let before = common::now();
    let issued = issue(
        &mut client,
        pb::IssueTokenRequest {
            user_id: "tommaso".to_owned(),
            expires_in_seconds: 3600,
            claims: common::to_struct(json!({"plan": "pro"})),
            roles: vec!["admin".to_owned()],
            groups: vec![],
        },
    )
    .await;
    let after = common::now();
    let exp = issued.expires_at.expect("an expiry").seconds;
    assert!((before + 3600..=after + 3600).contains(&exp), "exp {exp}");
    let claims = sdk
        .decode(&issued.token)
        .unwrap_or_else(|e| panic!("{sdk:?}'s JWT library rejected a token gatehouse issued: {e}"));
    let iat = claims["iat"].as_i64().expect("an iat");
    assert!((before..=after).contains(&iat), "iat {iat}");
    assert_eq!(
        claims,
        json!({"user_id": "tommaso", "exp": exp, "iat": iat, "roles": ["admin"], "plan": "pro"})
    );

    let forever = issue(
        &mut client,
        pb::IssueTokenRequest {
            user_id: "tommaso".to_owned(),
            ..pb::IssueTokenRequest::default()
        },
    )
    .await;
    assert_eq!(forever.expires_at, None);
    let claims = sdk
        .decode(&forever.token)
        .unwrap_or_else(|e| panic!("{sdk:?}'s JWT library rejected a token gatehouse issued: {e}"));
    let iat = claims["iat"].as_i64().expect("an iat");
    assert_eq!(claims, json!({"user_id": "tommaso", "iat": iat}));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn issued_tokens_verify_in_pyjwt() {
    issued_tokens_verify_in(Sdk::Python).await;
}

#[tokio::test]
async fn issued_tokens_verify_in_jsonwebtoken() {
    issued_tokens_verify_in(Sdk::JavaScript).await;
}

/// The verify scripts really verify: a token signed with another secret, an expired one and a tampered
/// one are refused, so the tests above could not pass on tokens the SDKs' libraries would reject.
#[test]
fn sdk_jwt_libraries_refuse_what_they_should() {
    let other = sign_with(
        json!({"user_id": "tommaso"}),
        b"another-secret-another-secret-another-secret-another-secret-ab",
    );
    let expired = common::sign(json!({"user_id": "tommaso", "exp": common::now() - 60}));
    let good = common::sign(json!({"user_id": "tommaso"}));
    let (head, _) = good.rsplit_once('.').unwrap();
    let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode([0u8; 32]));
    for sdk in [Sdk::Python, Sdk::JavaScript] {
        assert_eq!(
            sdk.decode(&good).unwrap(),
            json!({"user_id": "tommaso"}),
            "{sdk:?}"
        );
        for (what, token) in [
            ("another secret", &other),
            ("expired", &expired),
            ("tampered", &tampered),
        ] {
            let result = sdk.decode(token);
            assert!(
                result.is_err(),
                "{sdk:?} accepted a token that is {what}: {result:?}"
            );
        }
    }
}
