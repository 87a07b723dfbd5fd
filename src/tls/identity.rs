//! Who a verified client certificate names, and what that name is configured to be: a trusted
//! service (trusted like a server token for the server-only calls), a `service` principal, or nothing.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;

use super::config::{ServiceIdentity, TlsConfig};
use crate::principal::{Principal, PrincipalKind};

/// The most names of a certificate that are read; a certificate naming more gets no standing.
const MAX_NAMES: usize = 64;

/// What a certificate's name is configured to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// No certificate, or one that names nothing configured: no privileges.
    None,
    /// Listed in `trusted_services`.
    Trusted,
    /// Listed in `services`: a `service` principal with these roles.
    Service { name: String, roles: Vec<String> },
}

/// The peer of a TLS connection: its address, the names its certificate carries and their standing.
/// gRPC handlers find it in the request extensions (it is the connection's `ConnectInfo`); HTTP
/// handlers find it as a request extension.
#[derive(Debug, Clone)]
pub struct Peer {
    pub remote: SocketAddr,
    pub identity: Arc<Identity>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The certificate's URI SANs (SPIFFE IDs) and DNS names; empty without a certificate.
    pub names: Vec<String>,
    pub standing: Standing,
}

/// Whether a peer may use the operator's endpoints (`/log/level`, the console): it is on the pod
/// itself (its TCP address is loopback; no header is read), or its client certificate names a trusted
/// service. The one rule, so the endpoints cannot drift apart.
pub fn may_administer(remote: SocketAddr, peer: Option<&Peer>) -> bool {
    remote.ip().is_loopback() || peer.is_some_and(Peer::is_trusted)
}

impl Peer {
    /// Whether the peer's certificate names a trusted service.
    pub fn is_trusted(&self) -> bool {
        self.identity.standing == Standing::Trusted
    }

    /// The `service` principal the certificate names, if any.
    pub fn service(&self) -> Option<Principal> {
        match &self.identity.standing {
            Standing::Service { name, roles } => Some(Principal {
                kind: PrincipalKind::Service,
                user_id: name.clone(),
                roles: roles.clone(),
                ..Principal::anonymous()
            }),
            Standing::None | Standing::Trusted => None,
        }
    }
}

/// The configured names, looked up once per handshake.
#[derive(Debug, Default)]
pub struct Identities {
    by_name: BTreeMap<String, Standing>,
}

impl Identities {
    pub fn new(config: &TlsConfig) -> Identities {
        let mut by_name: BTreeMap<String, Standing> = config
            .trusted_services
            .iter()
            .map(|san| (san.clone(), Standing::Trusted))
            .collect();
        for ServiceIdentity { san, name, roles } in &config.services {
            by_name.insert(
                san.clone(),
                Standing::Service {
                    name: name.clone(),
                    roles: roles.clone(),
                },
            );
        }
        Identities { by_name }
    }

    /// The identity of the verified end-entity certificate `leaf` (`None`: the client sent none).
    /// A certificate whose names point at two different standings gets none: which one it meant
    /// cannot be told.
    pub fn of(&self, leaf: Option<&CertificateDer<'_>>) -> Identity {
        let names = leaf.map(names).unwrap_or_default();
        let mut standing = Standing::None;
        for name in &names {
            let Some(found) = self.by_name.get(name) else {
                continue;
            };
            if standing == Standing::None {
                standing = found.clone();
            } else if standing != *found {
                tracing::warn!(
                    "a client certificate names two configured identities: it gets no privileges"
                );
                standing = Standing::None;
                break;
            }
        }
        Identity { names, standing }
    }
}

/// The certificate's URI and DNS subject alternative names; none if it cannot be read or names
/// more than [`MAX_NAMES`]. A DNS name that is not shaped like a host name is skipped: both kinds
/// share one namespace here, so a "DNS name" spelling a SPIFFE ID must not pass for the URI.
fn names(leaf: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(leaf) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    if san.value.general_names.len() > MAX_NAMES {
        return Vec::new();
    }
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some((*uri).to_owned()),
            GeneralName::DNSName(dns) if is_host_name(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect()
}

/// Letters, digits, `-`, `_`, `.` and a `*` wildcard: what a DNS name holds, and never `:` or `/`.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'*'))
}
