//! Reading a compact JWT: its parts, its base64url JSON segments and its time claims. Shared by the
//! Stream path (`verify`) and the OpenID Connect path (`oidc`), so both read tokens one way.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::TokenError;
use super::claims::numeric_claim;

/// The `header.payload` part a signature covers.
pub(super) fn signed_part<'t>(token: &'t str, signature: &str) -> Result<&'t str, TokenError> {
    token
        .len()
        .checked_sub(signature.len() + 1)
        .and_then(|end| token.get(..end))
        .ok_or(TokenError::Malformed("expected three dot-separated parts"))
}

pub(super) fn split_token(token: &str) -> Result<(&str, &str, &str), TokenError> {
    let mut parts = token.split('.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) if !h.is_empty() && !p.is_empty() => Ok((h, p, s)),
        _ => Err(TokenError::Malformed("expected three dot-separated parts")),
    }
}

/// The payload of a token whose signature verified: strict base64url, a JSON object.
pub(super) fn signed_payload(payload: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed("a part is not base64url-encoded"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(claims)) => Ok(claims),
        _ => Err(TokenError::Malformed("payload is not a JSON object")),
    }
}

/// A JSON segment of a signed token: strict base64url (no padding, the URL alphabet), as Stream and
/// jsonwebtoken read signed tokens, so a header no other verifier would read is not read here.
pub(super) fn strict_json_segment(segment: &str) -> Option<Value> {
    let bytes = URL_SAFE_NO_PAD.decode(segment).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Decodes a base64url segment, also accepting padding and the standard alphabet because Stream's
/// development tokens are encoded that way.
pub(super) fn decode_json_segment(segment: &str) -> Option<Value> {
    let normalized: String = segment
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let bytes = URL_SAFE_NO_PAD.decode(normalized).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// An attacker-chosen header value, cut down to something safe to put in an error message.
pub(super) fn printable(value: &str) -> String {
    let cleaned: String = value
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(16)
        .collect();
    if cleaned.is_empty() {
        "unrecognized".to_owned()
    } else {
        cleaned
    }
}

pub(super) fn check_times(
    claims: &Map<String, Value>,
    now: i64,
    leeway: u64,
) -> Result<(), TokenError> {
    let leeway = i64::try_from(leeway).unwrap_or(i64::MAX);
    if let Some(exp) = numeric_claim(claims, "exp")?
        && now.saturating_sub(leeway) >= exp
    {
        return Err(TokenError::Expired);
    }
    if let Some(nbf) = numeric_claim(claims, "nbf")?
        && now.saturating_add(leeway) < nbf
    {
        return Err(TokenError::NotYetValid);
    }
    if let Some(iat) = numeric_claim(claims, "iat")?
        && iat > now.saturating_add(leeway)
    {
        return Err(TokenError::IssuedInFuture);
    }
    Ok(())
}
