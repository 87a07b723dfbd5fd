//! What the operator configures for TLS, and the checks that need no file: which settings go
//! together and which names may be listed. Reading the files is [`super::load`]'s job.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::Deserialize;

/// Whether a client must present a certificate from the client CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No certificate, no handshake.
    Required,
    /// A caller without a certificate gets in as without TLS; a presented certificate must verify.
    Optional,
    /// Client certificates are neither asked for nor read.
    None,
}

impl ClientAuth {
    pub fn parse(value: &str) -> Result<ClientAuth, String> {
        match value.trim() {
            "required" => Ok(ClientAuth::Required),
            "optional" => Ok(ClientAuth::Optional),
            "none" => Ok(ClientAuth::None),
            _ => Err("expected required, optional or none".to_owned()),
        }
    }

    /// The mode as the configuration spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuth::Required => "required",
            ClientAuth::Optional => "optional",
            ClientAuth::None => "none",
        }
    }
}

/// A caller that becomes a `service` principal when its certificate names `san`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceIdentity {
    /// A URI SAN (a SPIFFE ID) or a DNS name, compared exactly as written.
    pub san: String,
    /// The principal's id (`principal.id`, the decision log's principal).
    pub name: String,
    #[serde(default)]
    pub roles: Vec<String>,
}

/// The TLS settings as read, before they are checked together.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: Option<ClientAuth>,
    pub trusted_services: Option<Vec<String>>,
    pub services: Option<Vec<ServiceIdentity>>,
}

/// A complete TLS configuration: both listeners serve TLS with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// Verifies client certificates; `None` only with [`ClientAuth::None`].
    pub client_ca_file: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// Certificate names trusted like a server token for the server-only calls.
    pub trusted_services: Vec<String>,
    pub services: Vec<ServiceIdentity>,
}

/// One invalid TLS setting, by its environment variable (or its file key when it has none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub setting: &'static str,
    pub message: String,
}

/// The environment variables (file keys for file-only settings) errors are reported under.
pub mod names {
    pub const CERT_FILE: &str = "GATEHOUSE_TLS_CERT_FILE";
    pub const KEY_FILE: &str = "GATEHOUSE_TLS_KEY_FILE";
    pub const CLIENT_CA_FILE: &str = "GATEHOUSE_TLS_CLIENT_CA_FILE";
    pub const CLIENT_AUTH: &str = "GATEHOUSE_TLS_CLIENT_AUTH";
    pub const TRUSTED_SERVICES: &str = "GATEHOUSE_TLS_TRUSTED_SERVICES";
    pub const SERVICES: &str = "tls.services";
}

const NEEDS_CERTIFICATE: &str =
    "needs a server certificate (GATEHOUSE_TLS_CERT_FILE and GATEHOUSE_TLS_KEY_FILE)";

/// The most names `trusted_services` and `services` may list together.
const MAX_IDENTITIES: usize = 1000;

impl TlsSettings {
    /// The configuration these settings make (`None`: no TLS), or every error found.
    pub fn validate(self) -> Result<Option<TlsConfig>, Vec<SettingError>> {
        let mut errors = Vec::new();
        let mut error = |setting: &'static str, message: &str| {
            errors.push(SettingError {
                setting,
                message: message.to_owned(),
            });
        };
        let trusted = self.trusted_services.unwrap_or_default();
        let services = self.services.unwrap_or_default();
        let (cert_file, key_file) = match (self.cert_file, self.key_file) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) => {
                let given = [
                    (names::CLIENT_CA_FILE, self.client_ca_file.is_some()),
                    (names::CLIENT_AUTH, self.client_auth.is_some()),
                    (names::TRUSTED_SERVICES, !trusted.is_empty()),
                    (names::SERVICES, !services.is_empty()),
                ];
                for (setting, _) in given.into_iter().filter(|(_, given)| *given) {
                    error(setting, NEEDS_CERTIFICATE);
                }
                return if errors.is_empty() {
                    Ok(None)
                } else {
                    Err(errors)
                };
            }
            (Some(_), None) => {
                error(names::KEY_FILE, "a certificate needs its key file");
                return Err(errors);
            }
            (None, Some(_)) => {
                error(names::CERT_FILE, "a key needs its certificate file");
                return Err(errors);
            }
        };
        let client_auth = match (self.client_auth, &self.client_ca_file) {
            (Some(auth), None) if auth != ClientAuth::None => {
                error(
                    names::CLIENT_AUTH,
                    "required and optional need a client CA (GATEHOUSE_TLS_CLIENT_CA_FILE)",
                );
                auth
            }
            (Some(auth), _) => auth,
            (None, Some(_)) => ClientAuth::Required,
            (None, None) => ClientAuth::None,
        };
        let verifies = client_auth != ClientAuth::None;
        if !verifies && !trusted.is_empty() {
            error(
                names::TRUSTED_SERVICES,
                "names come from client certificates, which client_auth none does not read",
            );
        }
        if !verifies && !services.is_empty() {
            error(
                names::SERVICES,
                "names come from client certificates, which client_auth none does not read",
            );
        }
        for message in check_names(&trusted, &services) {
            errors.push(message);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Some(TlsConfig {
            cert_file,
            key_file,
            client_ca_file: self.client_ca_file,
            client_auth,
            trusted_services: trusted,
            services,
        }))
    }
}

/// Each name listed once, in one list; service names and roles present.
fn check_names(trusted: &[String], services: &[ServiceIdentity]) -> Vec<SettingError> {
    let mut errors = Vec::new();
    let mut error = |setting: &'static str, message: String| {
        errors.push(SettingError { setting, message });
    };
    if trusted.len() + services.len() > MAX_IDENTITIES {
        error(
            names::SERVICES,
            format!("at most {MAX_IDENTITIES} names in trusted_services and services together"),
        );
    }
    let mut seen = BTreeSet::new();
    for san in trusted {
        if san.trim().is_empty() {
            error(names::TRUSTED_SERVICES, "an empty name".to_owned());
        } else if !seen.insert(san.as_str()) {
            error(names::TRUSTED_SERVICES, format!("'{san}' is listed twice"));
        }
    }
    let mut service_names = BTreeSet::new();
    for service in services {
        if service.san.trim().is_empty() || service.name.trim().is_empty() {
            error(
                names::SERVICES,
                "each service needs a san and a name".to_owned(),
            );
            continue;
        }
        if trusted.contains(&service.san) {
            error(
                names::SERVICES,
                format!(
                    "'{}' is both a trusted service and a service; list it in one",
                    service.san
                ),
            );
        } else if !seen.insert(service.san.as_str()) {
            error(
                names::SERVICES,
                format!("'{}' is listed twice", service.san),
            );
        }
        if !service_names.insert(service.name.as_str()) {
            error(
                names::SERVICES,
                format!("the name '{}' is given to two services", service.name),
            );
        }
        if service.roles.iter().any(|r| r.trim().is_empty()) {
            error(
                names::SERVICES,
                format!("service '{}' has an empty role", service.name),
            );
        }
    }
    errors
}
