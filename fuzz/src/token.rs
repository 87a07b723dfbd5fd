//! Signed HS256 tokens built from fuzzer bytes, and the mutations applied to them.
//!
//! A [`Structured`] input is a header, claims and a list of mutations: the token is signed with
//! [`SECRET`] (by [`hs256`], written here from RFC 7515 rather than taken from jsonwebtoken), then
//! mutated. Some mutations re-sign, so that odd encodings and odd claims also arrive validly signed.

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

/// The API secret every fuzz target signs and verifies with.
pub const SECRET: &[u8] = b"fuzzing-secret-fuzzing-secret-fuzzing-secret-0123";

/// The verification time: 2023-11-14T22:13:20Z.
pub const NOW: i64 = 1_700_000_000;

/// HMAC-SHA256 of `message` under [`SECRET`].
pub fn hs256(message: &[u8]) -> Vec<u8> {
    hmac_sha256(SECRET, message)
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return Vec::new();
    };
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// `header.payload.signature` from the header's and the payload's JSON text, signed with [`SECRET`].
pub fn sign(header: &str, claims: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(header);
    let payload = URL_SAFE_NO_PAD.encode(claims);
    let signature = URL_SAFE_NO_PAD.encode(hs256(format!("{header}.{payload}").as_bytes()));
    format!("{header}.{payload}.{signature}")
}

/// A segment decoded the lenient way gatehouse documents for development tokens: padding and the
/// standard alphabet accepted.
pub fn lenient_segment(segment: &str) -> Option<Value> {
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

#[derive(Debug, Arbitrary)]
pub struct Structured {
    header: HeaderKind,
    claims: Vec<(ClaimName, ClaimValue)>,
    mutations: Vec<Mutation>,
}

#[derive(Debug, Clone, Arbitrary)]
enum HeaderKind {
    Standard,
    NoType,
    WithKeyId(String),
    Algorithm(AlgName),
    /// Header JSON text as given.
    Raw(String),
}

#[derive(Debug, Clone, Copy, Arbitrary)]
enum AlgName {
    Hs256,
    LowerHs256,
    Hs384,
    Hs512,
    Rs256,
    Es256,
    None,
    LowerNone,
    Empty,
    Number,
}

#[derive(Debug, Clone, Arbitrary)]
enum ClaimName {
    UserId,
    Server,
    Exp,
    Nbf,
    Iat,
    Resource,
    Action,
    FeedId,
    Role,
    Roles,
    Groups,
    ChannelRoles,
    Audience,
    Other(String),
}

#[derive(Debug, Clone, Arbitrary)]
enum ClaimValue {
    Text(String),
    Star,
    /// A comma-separated list that contains `*`.
    StarList(String),
    User(u8),
    Integer(i64),
    /// NOW plus a small offset, to sit on either side of the time checks.
    NearNow(i16),
    Float(f64),
    Bool(bool),
    Null,
    List(Vec<String>),
    Map(Vec<(String, String)>),
    Empty,
}

#[derive(Debug, Clone, Arbitrary)]
enum Mutation {
    FlipBit {
        at: u16,
        bit: u8,
    },
    Truncate(u16),
    Insert {
        at: u16,
        byte: u8,
    },
    Delete(u16),
    /// `=` padding after a segment.
    Pad {
        segment: u8,
        count: u8,
    },
    /// `-` and `_` to `+` and `/`.
    StandardAlphabet,
    Whitespace(u8),
    DevSignature,
    EmptySignature,
    ExtraDot,
    /// A new header or payload, keeping the old signature.
    SwapHeader(HeaderKind),
    SwapPayload(Vec<(ClaimName, ClaimValue)>),
    /// Payload JSON text as given, keeping the old signature.
    RawPayload(String),
    /// The payload in standard base64 with padding, as Stream's development tokens are written.
    StandardPayload,
    /// Signs `header.payload` again, with the right secret.
    Resign,
    /// Signs with another secret.
    WrongSecret,
    Uppercase,
}

impl Structured {
    /// The token: signed, then mutated (at most 8 mutations).
    pub fn token(&self) -> String {
        let mut token = sign(
            &text_of(&header_json(&self.header)),
            &claims_json(&self.claims).to_string(),
        );
        for mutation in self.mutations.iter().take(8) {
            token = mutate(token, mutation);
        }
        token
    }
}

fn header_json(kind: &HeaderKind) -> Value {
    match kind {
        HeaderKind::Standard => json!({"alg": "HS256", "typ": "JWT"}),
        HeaderKind::NoType => json!({"alg": "HS256"}),
        HeaderKind::WithKeyId(kid) => json!({"alg": "HS256", "typ": "JWT", "kid": kid}),
        HeaderKind::Algorithm(alg) => {
            let alg = match alg {
                AlgName::Hs256 => json!("HS256"),
                AlgName::LowerHs256 => json!("hs256"),
                AlgName::Hs384 => json!("HS384"),
                AlgName::Hs512 => json!("HS512"),
                AlgName::Rs256 => json!("RS256"),
                AlgName::Es256 => json!("ES256"),
                AlgName::None => json!("None"),
                AlgName::LowerNone => json!("none"),
                AlgName::Empty => json!(""),
                AlgName::Number => json!(256),
            };
            json!({"alg": alg, "typ": "JWT"})
        }
        // Not JSON, so it is carried as a string whose text is the header.
        HeaderKind::Raw(text) => Value::String(text.clone()),
    }
}

fn claims_json(claims: &[(ClaimName, ClaimValue)]) -> Value {
    let mut map = Map::new();
    for (name, value) in claims.iter().take(16) {
        let name = match name {
            ClaimName::UserId => "user_id",
            ClaimName::Server => "server",
            ClaimName::Exp => "exp",
            ClaimName::Nbf => "nbf",
            ClaimName::Iat => "iat",
            ClaimName::Resource => "resource",
            ClaimName::Action => "action",
            ClaimName::FeedId => "feed_id",
            ClaimName::Role => "role",
            ClaimName::Roles => "roles",
            ClaimName::Groups => "groups",
            ClaimName::ChannelRoles => "channel_roles",
            ClaimName::Audience => "aud",
            ClaimName::Other(name) => name.as_str(),
        };
        let value = match value {
            ClaimValue::Text(text) => json!(text),
            ClaimValue::Star => json!("*"),
            ClaimValue::StarList(text) => json!(format!("{text},*")),
            ClaimValue::User(n) => json!(format!("user{}", n % 4)),
            ClaimValue::Integer(n) => json!(n),
            ClaimValue::NearNow(offset) => json!(crate::token::NOW + i64::from(*offset)),
            ClaimValue::Float(f) => {
                serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number)
            }
            ClaimValue::Bool(b) => json!(b),
            ClaimValue::Null => Value::Null,
            ClaimValue::List(items) => json!(items.iter().take(8).collect::<Vec<_>>()),
            ClaimValue::Map(entries) => Value::Object(
                entries
                    .iter()
                    .take(8)
                    .map(|(k, v)| (k.clone(), json!(v)))
                    .collect(),
            ),
            ClaimValue::Empty => json!(""),
        };
        map.insert(name.to_owned(), value);
    }
    Value::Object(map)
}

/// A JSON value's text, or the text itself when the value stands for raw text.
fn text_of(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn mutate(token: String, mutation: &Mutation) -> String {
    let mut bytes = token.into_bytes();
    let at = |i: u16, len: usize| if len == 0 { 0 } else { usize::from(i) % len };
    let parts = |bytes: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(bytes)
            .split('.')
            .map(str::to_owned)
            .collect()
    };
    match mutation {
        Mutation::FlipBit { at: i, bit } => {
            let i = at(*i, bytes.len());
            if let Some(b) = bytes.get_mut(i) {
                *b ^= 1 << (bit % 7);
            }
        }
        Mutation::Truncate(n) => bytes.truncate(at(*n, bytes.len() + 1)),
        Mutation::Insert { at: i, byte } => {
            let i = at(*i, bytes.len() + 1);
            bytes.insert(i, *byte);
        }
        Mutation::Delete(i) => {
            let i = at(*i, bytes.len());
            if i < bytes.len() {
                bytes.remove(i);
            }
        }
        Mutation::Pad { segment, count } => {
            let mut p = parts(&bytes);
            let n = p.len();
            if let Some(s) = p.get_mut(usize::from(*segment) % n.max(1)) {
                s.push_str(&"=".repeat(usize::from(count % 4)));
            }
            bytes = p.join(".").into_bytes();
        }
        Mutation::StandardAlphabet => {
            for b in &mut bytes {
                *b = match *b {
                    b'-' => b'+',
                    b'_' => b'/',
                    other => other,
                };
            }
        }
        Mutation::Whitespace(kind) => {
            let ws = [" ", "\t", "\n", "\r\n", "\u{a0}", "\u{2028}"][usize::from(kind % 6)];
            let mut text = String::from_utf8_lossy(&bytes).into_owned();
            if kind & 0x80 == 0 {
                text = format!("{ws}{text}{ws}");
            } else {
                text.push_str(ws);
            }
            bytes = text.into_bytes();
        }
        Mutation::DevSignature | Mutation::EmptySignature => {
            let mut p = parts(&bytes);
            if let Some(last) = p.last_mut() {
                *last = if matches!(mutation, Mutation::DevSignature) {
                    "devtoken".to_owned()
                } else {
                    String::new()
                };
            }
            bytes = p.join(".").into_bytes();
        }
        Mutation::ExtraDot => bytes.push(b'.'),
        Mutation::SwapHeader(kind) => {
            let mut p = parts(&bytes);
            if let Some(first) = p.first_mut() {
                *first = URL_SAFE_NO_PAD.encode(text_of(&header_json(kind)));
            }
            bytes = p.join(".").into_bytes();
        }
        Mutation::SwapPayload(claims) => {
            let mut p = parts(&bytes);
            if let Some(second) = p.get_mut(1) {
                *second = URL_SAFE_NO_PAD.encode(claims_json(claims).to_string());
            }
            bytes = p.join(".").into_bytes();
        }
        Mutation::RawPayload(text) => {
            let mut p = parts(&bytes);
            if let Some(second) = p.get_mut(1) {
                *second = URL_SAFE_NO_PAD.encode(text);
            }
            bytes = p.join(".").into_bytes();
        }
        Mutation::StandardPayload => {
            let mut p = parts(&bytes);
            if let Some(second) = p.get_mut(1)
                && let Ok(raw) = URL_SAFE_NO_PAD.decode(second.as_bytes())
            {
                *second = STANDARD.encode(raw);
            }
            bytes = p.join(".").into_bytes();
        }
        Mutation::Resign | Mutation::WrongSecret => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let signed = match text.rsplit_once('.') {
                Some((signed, _)) => signed.to_owned(),
                None => text,
            };
            let mac = if matches!(mutation, Mutation::Resign) {
                hs256(signed.as_bytes())
            } else {
                hmac_sha256(
                    b"another-secret-another-secret-another-secret",
                    signed.as_bytes(),
                )
            };
            bytes = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac)).into_bytes();
        }
        Mutation::Uppercase => bytes.make_ascii_uppercase(),
    }
    String::from_utf8_lossy(&bytes).into_owned()
}
