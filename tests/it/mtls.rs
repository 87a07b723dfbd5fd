//! Mutual TLS on both listeners, over a real server with certificates made per test: who gets in,
//! what a client certificate's name is worth, and certificates rotated on disk while serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use gatehouse::config::Config;
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, SanType};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};

use crate::common::{Deadline, SECRET, TestServer, check_request, user_token, with_server_token};

pub(crate) const INDEXER: &str = "spiffe://cluster.local/ns/feeds/sa/indexer";
pub(crate) const FEED_SERVER: &str = "spiffe://cluster.local/ns/feeds/sa/feed-server";
const STRANGER: &str = "spiffe://cluster.local/ns/feeds/sa/stranger";

/// A certificate authority that signs the server's and the clients' certificates.
pub(crate) struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, in PEM.
pub(crate) struct Pair {
    cert: String,
    key: String,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub(crate) fn sign(&self, names: Vec<SanType>) -> Pair {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = names;
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Pair {
            cert: cert.pem(),
            key: key.serialize_pem(),
        }
    }

    fn server(&self) -> Pair {
        self.sign(vec![
            SanType::DnsName("localhost".try_into().unwrap()),
            SanType::IpAddress("127.0.0.1".parse().unwrap()),
        ])
    }

    pub(crate) fn client(&self, uri: &str) -> Pair {
        self.sign(vec![SanType::URI(uri.try_into().unwrap())])
    }
}

/// The served leaf certificates a client saw, one per connection, in order.
type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

fn client_config(ca: &Ca, identity: Option<&Pair>, alpn: &[u8]) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.pem().as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(pair) => {
            let certs = CertificateDer::pem_slice_iter(pair.cert.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .unwrap();
            let key = PrivateKeyDer::from_pem_slice(pair.key.as_bytes()).unwrap();
            builder.with_client_auth_cert(certs, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// A TLS connection to `addr`, recording the served certificate in `seen`.
async fn connect_tls(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    seen: &Seen,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    let tls = TlsConnector::from(config).connect(name, tcp).await?;
    if let Some(leaf) = tls.get_ref().1.peer_certificates().and_then(|c| c.first()) {
        seen.lock().unwrap().push(leaf.to_vec());
    }
    Ok(tls)
}

/// A gRPC channel over TLS (ALPN h2) to `addr`.
async fn channel(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    seen: &Seen,
) -> Result<Channel, tonic::transport::Error> {
    let seen = Arc::clone(seen);
    let connector = tower::service_fn(move |_: tonic::codegen::http::Uri| {
        let config = Arc::clone(&config);
        let seen = Arc::clone(&seen);
        async move {
            let tls = connect_tls(addr, config, &seen).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
        }
    });
    Endpoint::from_static("http://localhost")
        .connect_with_connector(connector)
        .await
}

pub(crate) async fn client(
    addr: SocketAddr,
    ca: &Ca,
    identity: Option<&Pair>,
) -> GatehouseClient<Channel> {
    let seen = Seen::default();
    let config = client_config(ca, identity, b"h2");
    GatehouseClient::new(channel(addr, config, &seen).await.expect("TLS connect"))
}

/// Whether a call over a channel made with `identity` fails for the connection (refused in the
/// handshake, which TLS 1.3 reports to the client at its first read).
async fn refused(addr: SocketAddr, ca: &Ca, identity: Option<&Pair>) -> bool {
    let seen = Seen::default();
    let config = client_config(ca, identity, b"h2");
    let Ok(channel) = channel(addr, config, &seen).await else {
        return true;
    };
    let request = pb::VerifyRequest {
        token: user_token("jack"),
    };
    match GatehouseClient::new(channel).verify(request).await {
        Ok(_) => false,
        Err(status) => status.code() == Code::Unavailable || status.code() == Code::Unknown,
    }
}

/// `GET path` over TLS (ALPN http/1.1) on the HTTP listener: the status line and body, or the error.
async fn http_get(
    addr: SocketAddr,
    config: Arc<ClientConfig>,
    path: &str,
) -> std::io::Result<String> {
    let mut tls = connect_tls(addr, config, &Seen::default()).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    tls.read_to_string(&mut response).await?;
    Ok(response)
}

/// A directory holding the server's certificate, key and client CA, and the config file.
pub(crate) struct Setup {
    dir: tempfile::TempDir,
    pub(crate) ca: Ca,
}

impl Setup {
    pub(crate) fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new("gatehouse test CA");
        let setup = Setup { dir, ca };
        let server = setup.ca.server();
        setup.write_server(&server);
        std::fs::write(setup.path("ca.crt"), setup.ca.pem()).unwrap();
        setup
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write_server(&self, pair: &Pair) {
        std::fs::write(self.path("tls.crt"), &pair.cert).unwrap();
        std::fs::write(self.path("tls.key"), &pair.key).unwrap();
    }

    /// A server configured by `tls` (the config file's `tls:` section, without the file names).
    pub(crate) async fn start(&self, tls: &str) -> TestServer {
        TestServer::start_config(self.config(tls).unwrap()).await
    }

    fn config(&self, tls: &str) -> Result<Config, gatehouse::config::ConfigErrors> {
        let file = self.path("gatehouse.yaml");
        let text = format!(
            "api_secret: {SECRET}\nreload_debounce: 20ms\ndecision_log:\n  file: {log}\ntls:\n  cert_file: {cert}\n  key_file: {key}\n{tls}",
            log = self.path("decisions.log").display(),
            cert = self.path("tls.crt").display(),
            key = self.path("tls.key").display(),
        );
        std::fs::write(&file, text).unwrap();
        let policy = self.path("policies");
        let env = |name: &str| {
            (name == "GATEHOUSE_POLICY_DIR" && policy.is_dir())
                .then(|| policy.display().to_string())
        };
        Config::load_with(Some(&file), &env)
    }

    pub(crate) fn mutual(&self) -> String {
        format!("  client_ca_file: {}\n", self.path("ca.crt").display())
    }
}

#[tokio::test]
async fn tls_without_client_auth_serves_a_normal_client() {
    let setup = Setup::new();
    let server = setup.start("").await;
    let mut client = client(server.addr, &setup.ca, None).await;
    let response = client
        .verify(pb::VerifyRequest {
            token: user_token("jack"),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.principal.unwrap().user_id, "jack");
    // A client speaking plain text to the TLS port gets nothing.
    let plain = Channel::from_shared(server.url()).unwrap().connect().await;
    if let Ok(plain) = plain {
        let mut plain = GatehouseClient::new(plain);
        let request = pb::VerifyRequest {
            token: user_token("jack"),
        };
        assert!(plain.verify(request).await.is_err());
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn required_client_auth_refuses_no_certificate_and_another_ca() {
    let setup = Setup::new();
    let server = setup.start(&setup.mutual()).await;
    assert!(refused(server.addr, &setup.ca, None).await);
    let other = Ca::new("another CA");
    let foreign = other.client(FEED_SERVER);
    assert!(refused(server.addr, &setup.ca, Some(&foreign)).await);
    let own = setup.ca.client(STRANGER);
    assert!(!refused(server.addr, &setup.ca, Some(&own)).await);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn optional_client_auth_lets_a_caller_without_certificate_in_but_not_another_ca() {
    let setup = Setup::new();
    let tls = format!("{}  client_auth: optional\n", setup.mutual());
    let server = setup.start(&tls).await;
    assert!(!refused(server.addr, &setup.ca, None).await);
    let foreign = Ca::new("another CA").client(FEED_SERVER);
    assert!(refused(server.addr, &setup.ca, Some(&foreign)).await);
    server.stop().await.unwrap();
}

pub(crate) fn issue() -> pb::IssueTokenRequest {
    pb::IssueTokenRequest {
        user_id: "jack".to_owned(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_trusted_service_may_issue_tokens_without_a_token_and_an_unlisted_one_may_not() {
    let setup = Setup::new();
    let tls = format!(
        "{}  trusted_services: [\"{FEED_SERVER}\"]\n",
        setup.mutual()
    );
    let server = setup.start(&tls).await;
    let trusted = setup.ca.client(FEED_SERVER);
    let mut client_trusted = client(server.addr, &setup.ca, Some(&trusted)).await;
    let issued = client_trusted
        .issue_token(issue())
        .await
        .unwrap()
        .into_inner();
    assert!(!issued.token.is_empty());
    // One credential: the certificate, so a token beside it is refused, even a server token.
    let both = client_trusted
        .issue_token(with_server_token(issue()))
        .await
        .unwrap_err();
    assert_eq!(both.code(), Code::InvalidArgument, "{both:?}");
    assert!(both.message().contains("send one credential"), "{both:?}");

    // It may describe the principal a Check decides for, as a server token may.
    let mut described = check_request("", "read", "feed", "user:jack", json!({}), json!({}));
    described.principal = Some(pb::PrincipalInput {
        user_id: "jack".to_owned(),
        ..Default::default()
    });
    let answer = client_trusted
        .check(described.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answer.principal.unwrap().user_id, "jack");

    let stranger = setup.ca.client(STRANGER);
    let mut client_stranger = client(server.addr, &setup.ca, Some(&stranger)).await;
    let not_trusted = client_stranger.check(described).await.unwrap_err();
    assert_eq!(not_trusted.code(), Code::Unauthenticated, "{not_trusted:?}");
    let refused = client_stranger.issue_token(issue()).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
    // An unlisted caller still gets in with a server token, as without TLS.
    let with_token = client_stranger
        .issue_token(with_server_token(issue()))
        .await;
    assert!(with_token.is_ok(), "{with_token:?}");
    server.stop().await.unwrap();
}

const SERVICE_POLICY: &str = "\
resources:
  - kind: feed
    actions: [read, index, write]
rules:
  - name: feed-readers-read
    effect: allow
    resource: feed
    actions: [read]
    when:
      roles: [feed-reader]
  - name: the-indexer-indexes
    effect: allow
    resource: feed
    actions: [index]
    when:
      cel: \"principal.kind == 'service' && principal.id == 'indexer'\"
";

pub(crate) fn feed(action: &str) -> pb::CheckRequest {
    check_request("", action, "feed", "user:jack", json!({}), json!({}))
}

#[tokio::test]
async fn a_service_certificate_is_checked_as_its_service_principal() {
    let setup = Setup::new();
    std::fs::create_dir(setup.path("policies")).unwrap();
    std::fs::write(setup.path("policies/feeds.yaml"), SERVICE_POLICY).unwrap();
    let tls = format!(
        "{}  services:\n    - san: {INDEXER}\n      name: indexer\n      roles: [feed-reader]\n",
        setup.mutual()
    );
    let server = setup.start(&tls).await;
    let indexer = setup.ca.client(INDEXER);
    let mut client_indexer = client(server.addr, &setup.ca, Some(&indexer)).await;
    let read = client_indexer
        .check(feed("read"))
        .await
        .unwrap()
        .into_inner();
    assert!(read.allowed, "{read:?}");
    assert_eq!(read.rule, "feed-readers-read");
    let principal = read.principal.unwrap();
    assert_eq!(principal.user_id, "indexer");
    assert_eq!(principal.roles, ["feed-reader"]);
    let index = client_indexer
        .check(feed("index"))
        .await
        .unwrap()
        .into_inner();
    assert!(index.allowed, "{index:?}");
    assert_eq!(index.rule, "the-indexer-indexes");
    let write = client_indexer
        .check(feed("write"))
        .await
        .unwrap()
        .into_inner();
    assert!(!write.allowed, "{write:?}");
    // A token in the request decides instead of the certificate.
    let as_jack = check_request(
        &user_token("jack"),
        "read",
        "feed",
        "user:jack",
        json!({}),
        json!({}),
    );
    let jack = client_indexer.check(as_jack).await.unwrap().into_inner();
    assert_eq!(jack.principal.unwrap().user_id, "jack");
    assert!(!jack.allowed);
    // A service is not a server: the server-only calls stay closed to it.
    let issue = client_indexer.issue_token(issue()).await.unwrap_err();
    assert_eq!(issue.code(), Code::Unauthenticated);
    // Any other certificate of the CA names nobody.
    let stranger = setup.ca.client(STRANGER);
    let mut client_stranger = client(server.addr, &setup.ca, Some(&stranger)).await;
    let missing = client_stranger.check(feed("read")).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);

    server.stop().await.unwrap();
    let log = std::fs::read_to_string(setup.path("decisions.log")).unwrap();
    let entries: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let by_service: Vec<&Value> = entries
        .iter()
        .filter(|e| e["principal_kind"] == "service" && e["principal_id"] == "indexer")
        .collect();
    assert_eq!(by_service.len(), 3, "{log}");
    assert!(
        by_service
            .iter()
            .any(|e| e["action"] == "write" && e["decision"] == "deny"),
        "{log}"
    );
}

/// Waits until a new connection is served a certificate other than `old`, and returns it.
async fn wait_for_new_certificate(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    old: &[u8],
) -> Vec<u8> {
    let deadline = Deadline::new("the rotated certificate to be served");
    loop {
        let seen = Seen::default();
        let _ = connect_tls(addr, Arc::clone(config), &seen).await;
        let served = seen.lock().unwrap().first().cloned();
        if let Some(served) = served
            && served != old
        {
            return served;
        }
        deadline.tick(&"the old certificate").await;
    }
}

fn der(pem: &str) -> Vec<u8> {
    CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

/// The reloads counted with `result`, from the TLS HTTP listener's `/metrics`.
async fn reloads(server: &TestServer, config: &Arc<ClientConfig>, result: &str) -> u64 {
    let text = http_get(server.http_addr, Arc::clone(config), "/metrics")
        .await
        .unwrap();
    let prefix = format!("gatehouse_tls_reloads_total{{result=\"{result}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |n| n.trim().parse().unwrap())
}

#[tokio::test]
async fn a_rotated_certificate_serves_new_connections_while_open_ones_keep_working() {
    let setup = Setup::new();
    let server = setup.start(&setup.mutual()).await;
    let first = der(&std::fs::read_to_string(setup.path("tls.crt")).unwrap());
    let caller = setup.ca.client(STRANGER);
    let config = client_config(&setup.ca, Some(&caller), b"h2");
    let seen = Seen::default();
    let open = channel(server.addr, Arc::clone(&config), &seen)
        .await
        .unwrap();
    let mut open = GatehouseClient::new(open);
    let verify = || pb::VerifyRequest {
        token: user_token("jack"),
    };
    open.verify(verify()).await.unwrap();
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        std::slice::from_ref(&first)
    );

    // The kubelet's way: the new files are written beside, then renamed over the old ones.
    let next = setup.ca.server();
    std::fs::write(setup.path("tls.crt.new"), &next.cert).unwrap();
    std::fs::write(setup.path("tls.key.new"), &next.key).unwrap();
    std::fs::rename(setup.path("tls.key.new"), setup.path("tls.key")).unwrap();
    std::fs::rename(setup.path("tls.crt.new"), setup.path("tls.crt")).unwrap();
    let served = wait_for_new_certificate(server.addr, &config, &first).await;
    assert_eq!(served, der(&next.cert));

    // The connection opened before the rotation still answers, on the certificate it was made with.
    for _ in 0..3 {
        open.verify(verify()).await.unwrap();
    }
    assert_eq!(seen.lock().unwrap().as_slice(), [first]);
    let http = client_config(&setup.ca, Some(&caller), b"http/1.1");
    assert!(reloads(&server, &http, "ok").await >= 1);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_broken_certificate_on_disk_keeps_the_last_good_one_serving() {
    let setup = Setup::new();
    let server = setup.start(&setup.mutual()).await;
    let good = der(&std::fs::read_to_string(setup.path("tls.crt")).unwrap());
    let caller = setup.ca.client(STRANGER);
    let http = client_config(&setup.ca, Some(&caller), b"http/1.1");
    let before = reloads(&server, &http, "error").await;
    std::fs::write(
        setup.path("tls.crt"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .unwrap();
    let deadline = Deadline::new("the failed reload to be counted");
    while reloads(&server, &http, "error").await <= before {
        deadline.tick(&"no failed reload yet").await;
    }
    let config = client_config(&setup.ca, Some(&caller), b"h2");
    let seen = Seen::default();
    let mut fresh = GatehouseClient::new(channel(server.addr, config, &seen).await.unwrap());
    fresh
        .verify(pb::VerifyRequest {
            token: user_token("jack"),
        })
        .await
        .unwrap();
    assert_eq!(seen.lock().unwrap().as_slice(), [good]);
    let status = fresh
        .identity_status(with_server_token(pb::IdentityStatusRequest {}))
        .await
        .unwrap()
        .into_inner()
        .tls
        .unwrap();
    assert!(status.enabled);
    assert_eq!(status.client_auth, "required");
    assert!(status.reloads_failed >= 1, "{status:?}");
    assert!(
        status.certificate_not_after.unwrap().seconds > common_now(),
        "{status:?}"
    );
    server.stop().await.unwrap();
}

fn common_now() -> i64 {
    crate::common::now()
}

#[tokio::test]
async fn the_http_listener_serves_tls_and_requires_the_client_certificate() {
    let setup = Setup::new();
    let tls = format!(
        "{}  trusted_services: [\"{FEED_SERVER}\"]\n",
        setup.mutual()
    );
    let server = setup.start(&tls).await;
    let caller = setup.ca.client(STRANGER);
    let with_cert = client_config(&setup.ca, Some(&caller), b"http/1.1");
    let live = http_get(server.http_addr, with_cert, "/live")
        .await
        .unwrap();
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    let without = client_config(&setup.ca, None, b"http/1.1");
    let refused = http_get(server.http_addr, without, "/live").await;
    assert!(
        refused.as_ref().is_err() || refused.as_ref().is_ok_and(|r| !r.contains("200")),
        "{refused:?}"
    );
    server.stop().await.unwrap();
}

#[test]
fn a_certificate_file_that_does_not_parse_is_a_configuration_error_naming_the_file() {
    let setup = Setup::new();
    let secret_looking =
        "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n";
    std::fs::write(setup.path("tls.key"), secret_looking).unwrap();
    let errors = setup.config("").unwrap_err();
    let text = errors.to_string();
    assert_eq!(errors.0.len(), 1, "{text}");
    assert_eq!(errors.0[0].setting, "tls.key_file", "{text}");
    assert!(
        text.contains(&setup.path("tls.key").display().to_string()),
        "{text}"
    );
    assert!(!text.contains("c2VjcmV0LWJ5dGVz"), "{text}");
    std::fs::write(setup.path("tls.crt"), "garbage").unwrap();
    let errors = setup.config("").unwrap_err();
    assert_eq!(errors.0[0].setting, "tls.cert_file", "{errors}");
}

#[tokio::test]
async fn environment_variables_configure_tls() {
    let setup = Setup::new();
    let cert = setup.path("tls.crt").display().to_string();
    let key = setup.path("tls.key").display().to_string();
    let ca = setup.path("ca.crt").display().to_string();
    let server = TestServer::start_with(&[
        ("GATEHOUSE_TLS_CERT_FILE", &cert),
        ("GATEHOUSE_TLS_KEY_FILE", &key),
        ("GATEHOUSE_TLS_CLIENT_CA_FILE", &ca),
        (
            "GATEHOUSE_TLS_TRUSTED_SERVICES",
            &format!("{STRANGER}, {FEED_SERVER}"),
        ),
    ])
    .await;
    assert!(refused(server.addr, &setup.ca, None).await);
    let trusted = setup.ca.client(FEED_SERVER);
    let mut client = client(server.addr, &setup.ca, Some(&trusted)).await;
    client.issue_token(issue()).await.unwrap();
    server.stop().await.unwrap();
}

#[tokio::test]
async fn a_silent_client_does_not_hold_up_the_handshakes_of_others() {
    let setup = Setup::new();
    let server = setup.start(&setup.mutual()).await;
    // Connected, and never says a word: its handshake waits in a task of its own.
    let _silent = TcpStream::connect(server.addr).await.unwrap();
    let _silent_http = TcpStream::connect(server.http_addr).await.unwrap();
    let caller = setup.ca.client(STRANGER);
    let mut client = client(server.addr, &setup.ca, Some(&caller)).await;
    let request = pb::VerifyRequest {
        token: user_token("jack"),
    };
    client.verify(request).await.unwrap();
    let http = client_config(&setup.ca, Some(&caller), b"http/1.1");
    let live = http_get(server.http_addr, http, "/live").await.unwrap();
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
    server.stop().await.unwrap();
}

#[test]
fn the_file_spells_trusted_services_as_a_list_or_a_comma_list_and_services_strictly() {
    let setup = Setup::new();
    let ca = setup.mutual();
    let list = setup
        .config(&format!(
            "{ca}  trusted_services: [\"{FEED_SERVER}\", \"{STRANGER}\"]\n"
        ))
        .unwrap();
    let comma = setup
        .config(&format!(
            "{ca}  trusted_services: \"{FEED_SERVER}, {STRANGER}\"\n"
        ))
        .unwrap();
    let trusted = [FEED_SERVER.to_owned(), STRANGER.to_owned()];
    assert_eq!(list.tls.unwrap().trusted_services, trusted);
    assert_eq!(comma.tls.unwrap().trusted_services, trusted);
    let nested = setup
        .config(&format!("{ca}  trusted_services: [[\"{FEED_SERVER}\"]]\n"))
        .unwrap_err();
    assert_eq!(nested.0[0].setting, "tls.trusted_services", "{nested}");
    let unknown = setup
        .config(&format!(
            "{ca}  services:\n    - san: {INDEXER}\n      name: indexer\n      role: [x]\n"
        ))
        .unwrap_err();
    assert_eq!(unknown.0[0].setting, "tls.services", "{unknown}");
    assert!(
        unknown.to_string().contains("unknown field `role`"),
        "{unknown}"
    );
    let both = setup
        .config(&format!(
            "{ca}  trusted_services: [{INDEXER}]\n  services:\n    - san: {INDEXER}\n      name: indexer\n"
        ))
        .unwrap_err();
    assert!(
        both.to_string()
            .contains("both a trusted service and a service"),
        "{both}"
    );
}

/// Lays out `pair` as the kubelet does a Secret: the files in a timestamped directory `version`, a
/// `..data` symlink naming it, and `tls.crt`/`tls.key` symlinks through `..data`.
fn kubelet_write(setup: &Setup, version: &str, pair: &Pair) {
    let dir = setup.path(version);
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("tls.crt"), &pair.cert).unwrap();
    std::fs::write(dir.join("tls.key"), &pair.key).unwrap();
    let staged = setup.path("..data_tmp");
    std::os::unix::fs::symlink(version, &staged).unwrap();
    std::fs::rename(&staged, setup.path("..data")).unwrap();
}

#[tokio::test]
async fn a_kubelet_style_symlink_swap_serves_the_new_certificate() {
    let setup = Setup::new();
    let first = setup.ca.server();
    for file in ["tls.crt", "tls.key"] {
        std::fs::remove_file(setup.path(file)).unwrap();
    }
    kubelet_write(&setup, "..2026_12_01_v1", &first);
    for file in ["tls.crt", "tls.key"] {
        std::os::unix::fs::symlink(format!("..data/{file}"), setup.path(file)).unwrap();
    }
    let server = setup.start(&setup.mutual()).await;
    let caller = setup.ca.client(STRANGER);
    let config = client_config(&setup.ca, Some(&caller), b"h2");
    let seen = Seen::default();
    let mut open = GatehouseClient::new(
        channel(server.addr, Arc::clone(&config), &seen)
            .await
            .unwrap(),
    );
    let verify = || pb::VerifyRequest {
        token: user_token("jack"),
    };
    open.verify(verify()).await.unwrap();

    let next = setup.ca.server();
    kubelet_write(&setup, "..2026_12_01_v2", &next);
    let served = wait_for_new_certificate(server.addr, &config, &der(&first.cert)).await;
    assert_eq!(served, der(&next.cert));
    open.verify(verify()).await.unwrap();
    assert_eq!(seen.lock().unwrap().as_slice(), [der(&first.cert)]);
    server.stop().await.unwrap();
}
