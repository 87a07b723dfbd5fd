//! Reading the certificate, key and client CA files into the two listeners' rustls configurations.
//! Every error names the file and what is wrong with it, never its contents (a key file's bytes are
//! a secret, and a certificate's are noise in a log).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};

use super::config::{ClientAuth, TlsConfig};

/// The largest certificate, key or CA file read; a PEM chain is a few kilobytes.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// Why a certificate, key or CA file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {file}: {kind}")]
    Read { file: String, kind: String },
    #[error("{file} is larger than 1 MiB")]
    TooLarge { file: String },
    #[error("{file} holds no PEM certificate")]
    NoCertificate { file: String },
    #[error("{file} is not a valid PEM certificate file")]
    Certificate { file: String },
    #[error("{file} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1)")]
    Key { file: String },
    #[error("{file} is not a usable client CA bundle")]
    ClientCa { file: String },
    #[error("the key in {key} does not match the certificate in {cert}, or either is unusable")]
    Mismatch { cert: String, key: String },
}

impl TlsError {
    /// The setting naming the file the error is about.
    pub fn setting(&self, config: &TlsConfig) -> &'static str {
        use super::config::names;
        let file = self.file();
        let is = |path: &Option<&PathBuf>| path.is_some_and(|p| p.display().to_string() == file);
        if matches!(self, TlsError::ClientCa { .. }) || is(&config.client_ca_file.as_ref()) {
            names::CLIENT_CA_FILE
        } else if matches!(self, TlsError::Key { .. } | TlsError::Mismatch { .. })
            || is(&Some(&config.key_file))
        {
            names::KEY_FILE
        } else {
            names::CERT_FILE
        }
    }

    /// The file the error is about, for logs.
    pub fn file(&self) -> &str {
        match self {
            TlsError::Read { file, .. }
            | TlsError::TooLarge { file }
            | TlsError::NoCertificate { file }
            | TlsError::Certificate { file }
            | TlsError::Key { file }
            | TlsError::ClientCa { file } => file,
            TlsError::Mismatch { key, .. } => key,
        }
    }
}

/// What the files hold, ready to serve.
pub struct Material {
    /// ALPN `h2`, for gRPC.
    pub grpc: Arc<ServerConfig>,
    /// ALPN `http/1.1`, for the HTTP listener.
    pub http: Arc<ServerConfig>,
    /// The server certificate's not-after, in seconds since the Unix epoch.
    pub not_after: i64,
    /// A hash of the files' contents: a reload that finds the same files changes nothing.
    pub fingerprint: [u8; 32],
}

/// The files' contents and their hash, before anything is parsed.
pub struct Files {
    cert: Vec<u8>,
    key: Vec<u8>,
    ca: Option<Vec<u8>>,
    pub fingerprint: [u8; 32],
}

/// Reads the configured files.
pub fn read(config: &TlsConfig) -> Result<Files, TlsError> {
    let cert = read_file(&config.cert_file)?;
    let key = read_file(&config.key_file)?;
    let ca = match &config.client_ca_file {
        Some(path) if config.client_auth != ClientAuth::None => Some(read_file(path)?),
        _ => None,
    };
    let mut hash = Sha256::new();
    for part in [Some(&cert), Some(&key), ca.as_ref()].into_iter().flatten() {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    Ok(Files {
        cert,
        key,
        ca,
        fingerprint: hash.finalize().into(),
    })
}

/// Parses `files` into both listeners' configurations.
pub fn build(config: &TlsConfig, files: &Files) -> Result<Material, TlsError> {
    let shown = |path: &PathBuf| path.display().to_string();
    let certs = CertificateDer::pem_slice_iter(&files.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::Certificate {
            file: shown(&config.cert_file),
        })?;
    let leaf = certs.first().ok_or_else(|| TlsError::NoCertificate {
        file: shown(&config.cert_file),
    })?;
    let not_after = x509_parser::parse_x509_certificate(leaf)
        .map(|(_, cert)| cert.validity().not_after.timestamp())
        .map_err(|_| TlsError::Certificate {
            file: shown(&config.cert_file),
        })?;
    let key = PrivateKeyDer::from_pem_slice(&files.key).map_err(|_| TlsError::Key {
        file: shown(&config.key_file),
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|_| mismatch(config))?;
    let builder = match (&files.ca, &config.client_ca_file) {
        (Some(ca), Some(path)) => {
            let verifier = client_verifier(ca, config.client_auth, provider)
                .ok_or_else(|| TlsError::ClientCa { file: shown(path) })?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut grpc = builder
        .with_single_cert(certs, key)
        .map_err(|_| mismatch(config))?;
    let mut http = grpc.clone();
    grpc.alpn_protocols = vec![b"h2".to_vec()];
    http.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Material {
        grpc: Arc::new(grpc),
        http: Arc::new(http),
        not_after,
        fingerprint: files.fingerprint,
    })
}

/// Reads and builds in one step, as at start.
pub fn load(config: &TlsConfig) -> Result<Material, TlsError> {
    build(config, &read(config)?)
}

fn mismatch(config: &TlsConfig) -> TlsError {
    TlsError::Mismatch {
        cert: config.cert_file.display().to_string(),
        key: config.key_file.display().to_string(),
    }
}

/// A verifier of client certificates against the CA bundle `pem`; `None` if it holds no usable CA.
fn client_verifier(
    pem: &[u8],
    auth: ClientAuth,
    provider: Arc<CryptoProvider>,
) -> Option<Arc<dyn rustls::server::danger::ClientCertVerifier>> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        roots.add(cert.ok()?).ok()?;
    }
    if roots.is_empty() {
        return None;
    }
    let builder = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
    let builder = match auth {
        ClientAuth::Optional => builder.allow_unauthenticated(),
        ClientAuth::Required | ClientAuth::None => builder,
    };
    builder.build().ok()
}

fn read_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    let file = || path.display().to_string();
    let opened = std::fs::File::open(path).map_err(|e| TlsError::Read {
        file: file(),
        kind: e.kind().to_string(),
    })?;
    let mut bytes = Vec::new();
    opened
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| TlsError::Read {
            file: file(),
            kind: e.kind().to_string(),
        })?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(TlsError::TooLarge { file: file() });
    }
    Ok(bytes)
}
