//! The one reading of the caller's credential: the `authorization` header, `Bearer <token>`, present
//! exactly once. Anything else is refused by the layer, never read as "no token".

use std::fmt;

use http::HeaderMap;
use http::header::AUTHORIZATION;
use thiserror::Error;

/// A bearer token. Its `Debug` output is `Token(..)` and it has no `Display`, so it cannot end up in
/// a message or a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    pub fn new(token: impl Into<String>) -> Token {
        Token(token.into())
    }

    /// The token itself, for the one place that sends it on.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

/// Why the `authorization` header gave no token. Messages never quote the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HeaderError {
    #[error("missing authorization header")]
    Missing,
    #[error("more than one authorization header")]
    Repeated,
    #[error("malformed authorization header: expected `Bearer <token>`")]
    Malformed,
}

/// The token of the request's only `authorization` header, which must read `Bearer <token>` (the
/// scheme in any case, RFC 7235) with a token of RFC 6750's `b64token` characters.
pub fn bearer(headers: &HeaderMap) -> Result<Token, HeaderError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let value = values.next().ok_or(HeaderError::Missing)?;
    if values.next().is_some() {
        return Err(HeaderError::Repeated);
    }
    let text = value.to_str().map_err(|_| HeaderError::Malformed)?;
    let (scheme, token) = text.split_once(' ').ok_or(HeaderError::Malformed)?;
    let token = token.trim_start_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") || !is_b64token(token) {
        return Err(HeaderError::Malformed);
    }
    Ok(Token(token.to_owned()))
}

/// `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn headers(values: &[&'static str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(AUTHORIZATION, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn one_bearer_header_gives_its_token() {
        let token = bearer(&headers(&["Bearer a.b.c"])).unwrap();
        assert_eq!(token.expose(), "a.b.c");
        assert_eq!(
            bearer(&headers(&["bearer  a.b.c"])).unwrap().expose(),
            "a.b.c"
        );
    }

    #[test]
    fn missing_repeated_and_garbled_headers_give_no_token() {
        assert_eq!(bearer(&headers(&[])), Err(HeaderError::Missing));
        assert_eq!(
            bearer(&headers(&["Bearer a.b.c", "Bearer a.b.c"])),
            Err(HeaderError::Repeated)
        );
        for garbled in [
            "a.b.c",
            "Bearer",
            "Bearer ",
            "Basic a.b.c",
            "Bearer a b",
            "Bearer ==",
            "Bearer a,b",
        ] {
            assert_eq!(
                bearer(&headers(&[garbled])),
                Err(HeaderError::Malformed),
                "{garbled}"
            );
        }
    }

    #[test]
    fn a_token_never_shows_in_debug_output() {
        let token = Token::new("secret.token.value");
        assert_eq!(format!("{token:?}"), "Token(..)");
    }
}
