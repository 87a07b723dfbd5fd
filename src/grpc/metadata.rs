//! Credentials from call metadata.

use tonic::metadata::MetadataMap;

use crate::error::Error;
use crate::principal::{Principal, PrincipalKind};
use crate::token::{self, TokenError, Verifier};

/// The token in the `authorization` metadata, with or without the `Bearer ` prefix.
pub(super) fn bearer_token(metadata: &MetadataMap) -> Result<&str, Error> {
    let value = metadata
        .get("authorization")
        .ok_or(Error::Token(TokenError::Missing))?
        .to_str()
        .map_err(|_| Error::Token(TokenError::Malformed("authorization is not ASCII")))?;
    Ok(token::bearer_token(value))
}

/// Requires the call to carry a valid server token; server-side operations are refused to anyone else.
pub(super) fn require_server(
    metadata: &MetadataMap,
    verifier: &Verifier,
) -> Result<Principal, Error> {
    let principal = verifier.verify(bearer_token(metadata)?)?;
    if principal.kind != PrincipalKind::Server {
        return Err(Error::PermissionDenied(
            "this call needs a server token in the authorization metadata; user and scope tokens are refused",
        ));
    }
    Ok(principal)
}
