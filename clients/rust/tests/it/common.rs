//! A real gatehouse server with a policy directory, real tokens, and the examples served on
//! 127.0.0.1:0.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use gatehouse::config::Config;
use gatehouse::token::ApiSecret;
use gatehouse_tower::{Decider, GatehouseLayer, Local, Remote};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::{axum_app, grpc_app};

/// The app's API secret: 64 characters, like Stream's.
pub const SECRET: &str = "9vq2xk7mdr4tbw8ycn3hfz6pja5ue2sgk8wx4v7t3qmd9r6ybc2fkh5nwa4pzq7e";

/// Books, the catalog and the health service, as the examples ask about them.
pub const POLICY: &str = r#"
resources:
  - kind: book
    actions: [read, delete]
  - kind: catalog
    actions: [browse]
  - kind: health
    actions: [check, watch]

rules:
  - name: readers-read-books
    description: readers and librarians read books
    effect: allow
    resource: book
    actions: [read]
    when:
      roles: [reader, librarian]
  - name: librarians-delete-books
    description: librarians delete books
    effect: allow
    resource: book
    actions: [delete]
    when:
      roles: [librarian]
  - name: anyone-browses-the-catalog
    description: everyone, signed in or not, browses the catalog
    effect: allow
    resource: catalog
    actions: [browse]
  - name: operators-check-health
    description: operators check the service's health
    effect: allow
    resource: health
    actions: [check]
    when:
      roles: [operator]
"#;

/// A gatehouse server in process, deciding with [`POLICY`] from a directory on disk.
pub struct Gatehouse {
    pub addr: SocketAddr,
    dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Gatehouse {
    pub async fn start() -> Gatehouse {
        let dir = TempDir::new().unwrap();
        std::fs::write(dir.path().join("library.yaml"), POLICY).unwrap();
        let vars = HashMap::from([
            ("GATEHOUSE_API_SECRET", SECRET.to_owned()),
            (
                "GATEHOUSE_POLICY_DIR",
                dir.path().to_str().unwrap().to_owned(),
            ),
        ]);
        let config = Config::load_with(None, &|name| vars.get(name).cloned())
            .expect("the test configuration is valid");
        let grpc = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = grpc.local_addr().unwrap();
        let listeners = gatehouse::Listeners { grpc, http: None };
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(gatehouse::run_listeners(config, listeners, async {
            let _ = rx.await;
        }));
        Gatehouse {
            addr,
            dir,
            shutdown: Some(tx),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Asks this server over gRPC.
    pub fn remote(&self) -> Remote {
        Remote::connect_lazy(self.url()).unwrap()
    }

    /// Decides in process with the same secret and policy directory.
    pub fn local(&self) -> Local {
        Local::from_dir(&ApiSecret::new(SECRET), self.policy_dir()).unwrap()
    }

    pub fn policy_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Gatehouse {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn sign(claims: Value, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

/// A user token with `roles`, signed with the app's secret.
pub fn token(user_id: &str, roles: &[&str]) -> String {
    sign(
        json!({ "user_id": user_id, "roles": roles, "iat": now() }),
        SECRET,
    )
}

pub fn expired_token(user_id: &str) -> String {
    sign(
        json!({ "user_id": user_id, "roles": ["librarian"], "exp": now() - 60 }),
        SECRET,
    )
}

pub fn foreign_token(user_id: &str) -> String {
    sign(
        json!({ "user_id": user_id, "roles": ["librarian"] }),
        "another-secret-that-is-long-enough-to-be-a-real-one-0123456789",
    )
}

pub fn now() -> i64 {
    gatehouse::token::unix_now()
}

/// An address nothing listens on: gatehouse down.
pub async fn closed_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap()
}

/// An address that accepts connections and never answers on them: gatehouse hung.
pub async fn silent_address() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    addr
}

/// The axum example behind `layer`, on 127.0.0.1:0.
pub async fn serve_axum<D: Decider>(layer: GatehouseLayer<D>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum_app::app(layer)).await });
    addr
}

/// The tonic example behind `layer`, on 127.0.0.1:0.
pub async fn serve_tonic<D: Decider>(layer: GatehouseLayer<D>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(grpc_app::serve(layer, listener, std::future::pending()));
    addr
}

/// A request to the axum example: its status and body.
pub async fn send(
    method: reqwest::Method,
    addr: SocketAddr,
    path: &str,
    authorization: &[&str],
) -> (u16, String) {
    let mut request = reqwest::Client::new().request(method, format!("http://{addr}{path}"));
    for value in authorization {
        request = request.header("authorization", *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

pub async fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let authorization: Vec<&str> = bearer.iter().map(String::as_str).collect();
    send(reqwest::Method::GET, addr, path, &authorization).await
}

/// Everything logged at `warn` and above while the guard lives, on this thread (the tests' runtime
/// is current-thread, so the servers' tasks log here too).
pub fn capture_logs() -> (Captured, tracing::subscriber::DefaultGuard) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .with_writer(captured.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    (captured, guard)
}

#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

/// A gRPC health client of the tonic example at `addr`.
pub async fn health_client(
    addr: SocketAddr,
) -> tonic_health::pb::health_client::HealthClient<tonic::transport::Channel> {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    tonic_health::pb::health_client::HealthClient::new(channel)
}
