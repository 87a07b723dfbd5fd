//! A real gatehouse server on 127.0.0.1:0, run in-process, and real tokens for it.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;

use gatehouse::config::Config;
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Map, Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The app's API secret in these tests: 64 characters, like Stream's.
pub const SECRET: &str = "4x8kxqmz2ybv9tsm7wqdpcj3hfn6rk5ae2ugbz8yvx4w7q3t9mdr6ypc2kfhn5wa";

pub struct TestServer {
    pub addr: SocketAddr,
    /// The HTTP listener (`/authz`), bound on 127.0.0.1:0 like the gRPC one.
    pub http_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), gatehouse::error::ServeError>>,
}

impl TestServer {
    /// A server with the test secret and default settings.
    pub async fn start() -> TestServer {
        Self::start_with(&[]).await
    }

    /// A server configured through the same environment variables operators use.
    pub async fn start_with(env: &[(&str, &str)]) -> TestServer {
        let mut vars: HashMap<String, String> =
            HashMap::from([("GATEHOUSE_API_SECRET".to_owned(), SECRET.to_owned())]);
        for (k, v) in env {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        let config = Config::load_with(None, &|name| vars.get(name).cloned())
            .expect("test configuration is valid");
        Self::start_config(config).await
    }

    pub async fn start_config(config: Config) -> TestServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = http.local_addr().unwrap();
        let listeners = gatehouse::Listeners {
            grpc: listener,
            http: Some(http),
        };
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(gatehouse::run_listeners(config, listeners, async {
            let _ = rx.await;
        }));
        TestServer {
            addr,
            http_addr,
            shutdown: Some(tx),
            handle,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        // The listener is bound before `run` starts, so connecting cannot race the server's start.
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .expect("connect to the test server")
    }

    pub async fn client(&self) -> GatehouseClient<Channel> {
        GatehouseClient::new(self.channel().await)
    }

    /// Signals shutdown without waiting.
    pub fn signal_shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn stop(mut self) -> Result<(), gatehouse::error::ServeError> {
        self.signal_shutdown();
        self.handle.await.expect("server task did not panic")
    }
}

pub fn now() -> i64 {
    gatehouse::token::unix_now()
}

/// The binary with a clean environment: no GATEHOUSE_* or OTEL_* variable leaks in from the caller.
pub fn gatehouse_command() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    without_gatehouse_env(&mut command);
    command
}

/// Runs the command and returns its stdout; fails the test, with both outputs, when it fails.
pub fn succeed(command: &mut std::process::Command) -> String {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Keeps the caller's GATEHOUSE_* and OTEL_* variables from leaking into `command`.
pub fn without_gatehouse_env(command: &mut std::process::Command) -> &mut std::process::Command {
    for (name, _) in std::env::vars() {
        if name.starts_with("GATEHOUSE_") || name.starts_with("OTEL_") {
            command.env_remove(name);
        }
    }
    command
}

/// An Envoy ext_authz CheckRequest for a Stream API call (`path` with its query string), carrying a
/// user's JWT as Stream's clients send it, plus `extra` headers.
pub fn envoy_check(
    method: &str,
    path: &str,
    token: &str,
    extra: &[(&str, String)],
) -> envoy_types::ext_authz::v3::pb::CheckRequest {
    use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
    use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
    let mut headers: HashMap<String, String> = HashMap::from([
        ("host".to_owned(), "api.stream-io-api.com".to_owned()),
        ("authorization".to_owned(), token.to_owned()),
        ("stream-auth-type".to_owned(), "jwt".to_owned()),
    ]);
    for (name, value) in extra {
        headers.insert((*name).to_owned(), value.clone());
    }
    envoy_types::ext_authz::v3::pb::CheckRequest {
        attributes: Some(AttributeContext {
            request: Some(Request {
                http: Some(HttpRequest {
                    id: "7361".to_owned(),
                    method: method.to_owned(),
                    headers,
                    path: path.to_owned(),
                    host: "api.stream-io-api.com".to_owned(),
                    scheme: "https".to_owned(),
                    protocol: "HTTP/1.1".to_owned(),
                    size: -1,
                    ..HttpRequest::default()
                }),
                ..Request::default()
            }),
            ..AttributeContext::default()
        }),
    }
}

/// Milliseconds since the Unix epoch, as decision log entries record time.
pub fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since_epoch.as_millis()).unwrap()
}

/// Signs claims with HS256 and the test secret, as Stream's SDKs do.
pub fn sign(claims: Value) -> String {
    sign_with(claims, SECRET.as_bytes())
}

pub fn sign_with(claims: Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )
    .unwrap()
}

pub fn user_token(user_id: &str) -> String {
    sign(json!({ "user_id": user_id }))
}

pub fn server_token() -> String {
    sign(json!({ "server": true }))
}

/// JSON object to protobuf Struct.
pub fn to_struct(value: Value) -> Option<prost_types::Struct> {
    let Value::Object(map) = value else {
        panic!("expected a JSON object")
    };
    Some(map_to_struct(&map))
}

fn map_to_struct(map: &Map<String, Value>) -> prost_types::Struct {
    use prost_types::value::Kind;
    fn convert(value: &Value) -> prost_types::Value {
        let kind = match value {
            Value::Null => Kind::NullValue(0),
            Value::Bool(b) => Kind::BoolValue(*b),
            Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
            Value::String(s) => Kind::StringValue(s.clone()),
            Value::Array(items) => Kind::ListValue(prost_types::ListValue {
                values: items.iter().map(convert).collect(),
            }),
            Value::Object(map) => Kind::StructValue(map_to_struct(map)),
        };
        prost_types::Value { kind: Some(kind) }
    }
    prost_types::Struct {
        fields: map.iter().map(|(k, v)| (k.clone(), convert(v))).collect(),
    }
}

/// A Check request with string attributes and context.
pub fn check_request(
    token: &str,
    action: &str,
    kind: &str,
    id: &str,
    attributes: Value,
    context: Value,
) -> pb::CheckRequest {
    pb::CheckRequest {
        token: token.to_owned(),
        action: action.to_owned(),
        resource: Some(pb::Resource {
            kind: kind.to_owned(),
            id: id.to_owned(),
            attributes: to_struct(attributes),
        }),
        context: to_struct(context),
        ..Default::default()
    }
}

/// The body of `GET url` (no proxy), failing the test on any transport error.
pub async fn get_text(url: &str) -> String {
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let response = client.get(url).send().await.unwrap();
    response.text().await.unwrap()
}

/// Asks the server and returns the response, failing the test on any gRPC error.
pub async fn check(
    client: &mut GatehouseClient<Channel>,
    request: pb::CheckRequest,
) -> pb::CheckResponse {
    client
        .check(request)
        .await
        .expect("check succeeds")
        .into_inner()
}

/// Asks the server and returns the gRPC error, failing the test if the call succeeded.
pub async fn check_status(
    client: &mut GatehouseClient<Channel>,
    request: pb::CheckRequest,
) -> tonic::Status {
    match client.check(request).await {
        Ok(response) => panic!("expected an error, got {:?}", response.into_inner()),
        Err(status) => status,
    }
}

/// A request carrying a server token in `authorization` metadata, as the admin RPCs require.
pub fn with_server_token<T>(message: T) -> tonic::Request<T> {
    with_bearer(message, &server_token())
}

/// A request carrying `token` in `authorization` metadata.
pub fn with_bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

/// How long a wait for something the server does in the background (a reload, a log entry) may take
/// before the test fails; a fair share of the time on a loaded machine, never a timing assertion.
pub const DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);
pub const POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// A wait for something, polled; fails the test with what was last seen once [`DEADLINE`] passes.
pub struct Deadline {
    what: &'static str,
    until: std::time::Instant,
}

impl Deadline {
    pub fn new(what: &'static str) -> Deadline {
        Deadline {
            what,
            until: std::time::Instant::now() + DEADLINE,
        }
    }

    /// Whether the deadline has passed, for waits that end some other way than failing.
    pub fn expired(&self) -> bool {
        std::time::Instant::now() >= self.until
    }

    pub async fn tick(&self, last_seen: &dyn std::fmt::Debug) {
        assert!(
            std::time::Instant::now() < self.until,
            "gave up after {DEADLINE:?} waiting for {}; last seen: {last_seen:#?}",
            self.what
        );
        tokio::time::sleep(POLL).await;
    }
}

pub fn write(path: &std::path::Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Set A: everyone may read documents.
pub const SET_A: &str = "\
resources:
  - kind: doc
    actions: [read, write]
rules:
  - name: docs-open
    effect: allow
    resource: doc
    actions: [read]
";

/// Set B: nobody may read documents, under another rule name.
pub const SET_B: &str = "\
resources:
  - kind: doc
    actions: [read, write]
rules:
  - name: docs-closed
    effect: deny
    resource: doc
    actions: [read]
";

/// The server's PolicyStatus, asked with a server token.
pub async fn status(client: &mut GatehouseClient<Channel>) -> pb::PolicyStatusResponse {
    client
        .policy_status(with_server_token(pb::PolicyStatusRequest {}))
        .await
        .expect("PolicyStatus with a server token succeeds")
        .into_inner()
}

/// Waits until a reload failed after the `before` count.
pub async fn wait_for_failed_reload(
    client: &mut GatehouseClient<Channel>,
    before: u64,
) -> pb::PolicyStatusResponse {
    let deadline = Deadline::new("a failed reload");
    loop {
        let status = status(client).await;
        if status.reloads_failed > before {
            return status;
        }
        deadline.tick(&status).await;
    }
}
