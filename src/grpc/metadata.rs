//! Credentials from call metadata and from the connection's client certificate.
//!
//! A server-only call reads its credential from exactly one source: a connection whose client
//! certificate names a trusted service carries no `authorization` token (one that does is refused:
//! "send one credential"); any other call needs a server token in `authorization`.

use std::fmt;
use std::sync::Arc;

use tonic::Extensions;
use tonic::metadata::MetadataMap;

use crate::error::Error;
use crate::principal::{Principal, PrincipalKind};
use crate::tls::Peer;
use crate::token::{self, TokenError, Verifier};

/// The TLS peer of the call's connection; `None` over plain text.
pub(super) fn peer(extensions: &Extensions) -> Option<&Peer> {
    extensions.get::<Peer>()
}

/// Marks a call that came through a browser door ([`crate::browser`]), with the one token its
/// `Authorization` header carried. The call asks only about that token's user, and the token is read
/// from here alone: never from the message, nor from the metadata, to which a gRPC-Web body's
/// trailers may add another `authorization`.
#[derive(Clone)]
pub struct FromBrowser {
    token: Arc<str>,
}

/// Marks a call the operator console ([`crate::console`]) makes after its gate admitted the peer:
/// on loopback, a trusted service, or holding a valid server token. Server-only calls accept it as
/// they accept a server token; only the console's own handlers set it (an extension is never read
/// from the wire).
#[derive(Debug, Clone, Copy)]
pub struct FromConsole;

impl FromBrowser {
    pub fn new(token: &str) -> FromBrowser {
        FromBrowser {
            token: Arc::from(token),
        }
    }

    pub(super) fn token(&self) -> &str {
        &self.token
    }
}

impl fmt::Debug for FromBrowser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromBrowser(..)")
    }
}

/// The token a call presents: from a browser, its `Authorization` header's; else the message's.
/// Only a hint for fetching an issuer's keys; the caller rules decide.
pub(super) fn presented<'a>(extensions: &'a Extensions, token: &'a str) -> &'a str {
    match extensions.get::<FromBrowser>() {
        Some(browser) => browser.token(),
        None => token,
    }
}

/// The token in the `authorization` metadata, with or without the `Bearer ` prefix.
pub(super) fn bearer_token(metadata: &MetadataMap) -> Result<&str, Error> {
    let value = metadata
        .get("authorization")
        .ok_or(Error::Token(TokenError::Missing))?
        .to_str()
        .map_err(|_| Error::Token(TokenError::Malformed("authorization is not ASCII")))?;
    Ok(token::bearer_token(value))
}

/// Requires the call to carry a valid server token, or to come over a connection whose client
/// certificate names a trusted service, or to be the console's for a peer it admitted
/// ([`FromConsole`]); server-side operations are refused to anyone else.
pub(super) fn require_server(
    metadata: &MetadataMap,
    extensions: &Extensions,
    verifier: &Verifier,
) -> Result<Principal, Error> {
    if extensions.get::<FromConsole>().is_some() {
        return Ok(Principal {
            kind: PrincipalKind::Server,
            ..Principal::anonymous()
        });
    }
    if peer(extensions).is_some_and(Peer::is_trusted) {
        if metadata.contains_key("authorization") {
            return Err(Error::InvalidRequest(
                "send one credential: the client certificate names a trusted service, so the call carries no authorization token",
            ));
        }
        return Ok(Principal {
            kind: PrincipalKind::Server,
            ..Principal::anonymous()
        });
    }
    let principal = verifier.verify(bearer_token(metadata)?)?;
    if principal.kind != PrincipalKind::Server {
        return Err(Error::PermissionDenied(
            "this call needs a server token in the authorization metadata; user and scope tokens are refused",
        ));
    }
    Ok(principal)
}
