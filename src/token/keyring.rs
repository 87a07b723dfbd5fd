//! The app's API secrets: the current one, which signs, and the ones still accepted while a rotation
//! is under way. Held behind an `ArcSwap`, so a reload of the secret file retires a secret for every
//! call after it without a restart, and a call in flight finishes with the keys it started with.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_lc_rs::hmac;

use super::ApiSecret;

/// The most secrets configured at once. A token without a key id is tried against each, so this
/// bounds the work one forged token can cause.
pub const MAX_SECRETS: usize = 8;

/// The longest key id.
const MAX_KEY_ID_BYTES: usize = 64;

/// One accepted secret, with the key id tokens name it by (JWT header `kid`), if it has one.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyedSecret {
    pub key_id: Option<String>,
    pub secret: ApiSecret,
}

impl fmt::Debug for KeyedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedSecret")
            .field("key_id", &self.key_id)
            .field("secret", &self.secret)
            .finish()
    }
}

/// Why a list of secrets was refused. Never quotes a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("no secret")]
    Empty,
    #[error("more than {MAX_SECRETS} secrets")]
    TooMany,
    #[error(
        "line {line}: the secret must be at least {} bytes (HS256 keys must be as long as the hash)",
        ApiSecret::MIN_LEN
    )]
    TooShort { line: usize },
    #[error("line {line}: expected the secret, or a key id and the secret separated by a space")]
    Shape { line: usize },
    #[error("line {line}: a key id is at most {MAX_KEY_ID_BYTES} letters, digits, '.', '_' or '-'")]
    KeyId { line: usize },
    #[error("line {line}: key id '{key_id}' is used twice")]
    DuplicateKeyId { line: usize, key_id: String },
    #[error("line {line}: the same secret is listed twice")]
    DuplicateSecret { line: usize },
    #[error(
        "line {line}: a secret is printable ASCII (no byte-order mark, NUL or other control character)"
    )]
    Characters { line: usize },
}

/// Every accepted secret: the current (signing) one, and the older ones still accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Secrets {
    current: KeyedSecret,
    older: Vec<KeyedSecret>,
}

impl Secrets {
    /// One secret without a key id: the common case, and the inline `GATEHOUSE_API_SECRET`.
    pub fn single(secret: ApiSecret) -> Secrets {
        Secrets {
            current: KeyedSecret {
                key_id: None,
                secret,
            },
            older: Vec::new(),
        }
    }

    /// Reads a secret file: one secret per line, current first, each optionally preceded by its key
    /// id and a space. Blank lines and lines starting with `#` are skipped; a line's trailing `\r` and
    /// surrounding spaces are not part of it. A secret is printable ASCII.
    pub fn parse(text: &str) -> Result<Secrets, SecretsError> {
        let mut keys: Vec<KeyedSecret> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line_number = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let key = parse_line(line, line_number)?;
            check_unique(&keys, &key, line_number)?;
            if keys.len() == MAX_SECRETS {
                return Err(SecretsError::TooMany);
            }
            keys.push(key);
        }
        let mut keys = keys.into_iter();
        let current = keys.next().ok_or(SecretsError::Empty)?;
        Ok(Secrets {
            current,
            older: keys.collect(),
        })
    }

    /// The secret that signs.
    pub fn current(&self) -> &KeyedSecret {
        &self.current
    }

    /// Every accepted secret, the current one first.
    pub fn all(&self) -> impl Iterator<Item = &KeyedSecret> {
        std::iter::once(&self.current).chain(&self.older)
    }

    /// The key ids, in order, for status pages (never the secrets).
    pub fn key_ids(&self) -> Vec<Option<String>> {
        self.all().map(|k| k.key_id.clone()).collect()
    }
}

fn parse_line(line: &str, line_number: usize) -> Result<KeyedSecret, SecretsError> {
    let mut fields = line.split_whitespace();
    let (key_id, secret) = match (fields.next(), fields.next(), fields.next()) {
        (Some(secret), None, None) => (None, secret),
        (Some(key_id), Some(secret), None) => (Some(key_id), secret),
        _ => return Err(SecretsError::Shape { line: line_number }),
    };
    if let Some(key_id) = key_id {
        let valid = key_id.len() <= MAX_KEY_ID_BYTES
            && key_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !valid {
            return Err(SecretsError::KeyId { line: line_number });
        }
    }
    // A byte-order mark or a NUL would otherwise become part of the secret and silently retire
    // the one in use.
    if !secret.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(SecretsError::Characters { line: line_number });
    }
    if secret.len() < ApiSecret::MIN_LEN {
        return Err(SecretsError::TooShort { line: line_number });
    }
    Ok(KeyedSecret {
        key_id: key_id.map(str::to_owned),
        secret: ApiSecret::new(secret),
    })
}

fn check_unique(
    keys: &[KeyedSecret],
    key: &KeyedSecret,
    line_number: usize,
) -> Result<(), SecretsError> {
    if let Some(key_id) = &key.key_id
        && keys.iter().any(|k| k.key_id.as_ref() == Some(key_id))
    {
        return Err(SecretsError::DuplicateKeyId {
            line: line_number,
            key_id: key_id.clone(),
        });
    }
    if keys.iter().any(|k| k.secret == key.secret) {
        return Err(SecretsError::DuplicateSecret { line: line_number });
    }
    Ok(())
}

/// The secrets as the verifier uses them: HMAC-SHA256 keys made once per reload (a key's set-up is
/// a quarter of what verifying a token's signature costs when made per call).
pub(super) struct Keys {
    pub secrets: Secrets,
    pub decoding: Vec<(Option<String>, hmac::Key)>,
    /// Whether any secret has a key id; if none has, a token's `kid` is not looked at.
    pub any_key_id: bool,
}

impl Keys {
    fn new(secrets: Secrets) -> Keys {
        let decoding = secrets
            .all()
            .map(|k| {
                (
                    k.key_id.clone(),
                    hmac::Key::new(hmac::HMAC_SHA256, k.secret.expose()),
                )
            })
            .collect();
        let any_key_id = secrets.all().any(|k| k.key_id.is_some());
        Keys {
            secrets,
            decoding,
            any_key_id,
        }
    }
}

/// The live secrets, shared by the verifier and the issuer and replaced whole on a reload.
pub struct Keyring {
    keys: ArcSwap<Keys>,
}

impl Keyring {
    pub fn new(secrets: Secrets) -> Arc<Keyring> {
        Arc::new(Keyring {
            keys: ArcSwap::from_pointee(Keys::new(secrets)),
        })
    }

    /// Replaces every secret at once: a secret not in `secrets` is refused from the next call on.
    pub fn replace(&self, secrets: Secrets) {
        self.keys.store(Arc::new(Keys::new(secrets)));
    }

    /// The secrets now in use.
    pub fn secrets(&self) -> Secrets {
        self.keys.load().secrets.clone()
    }

    pub(super) fn keys(&self) -> arc_swap::Guard<Arc<Keys>> {
        self.keys.load()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn a_file_lists_secrets_current_first_with_optional_key_ids() {
        let secrets =
            Secrets::parse(&format!("# rotated 2026-11\n{A}\r\n\n  2025 {B}  \n")).unwrap();
        assert_eq!(secrets.current().secret.expose(), A.as_bytes());
        assert_eq!(secrets.key_ids(), vec![None, Some("2025".to_owned())]);
    }

    #[test]
    fn bad_files_are_refused_by_line_without_quoting_secrets() {
        let cases = [
            ("", SecretsError::Empty),
            ("# nothing\n\n", SecretsError::Empty),
            ("short\n", SecretsError::TooShort { line: 1 }),
            (
                &format!("{A}\na b c\n") as &str,
                SecretsError::Shape { line: 2 },
            ),
            (&format!("k/1 {A}\n"), SecretsError::KeyId { line: 1 }),
            (
                &format!("k {A}\nk {B}\n"),
                SecretsError::DuplicateKeyId {
                    line: 2,
                    key_id: "k".to_owned(),
                },
            ),
            (
                &format!("{A}\nk {A}\n"),
                SecretsError::DuplicateSecret { line: 2 },
            ),
            (
                &format!("\u{feff}{A}\n"),
                SecretsError::Characters { line: 1 },
            ),
            (
                &format!("{B}\n{A}\u{0}\n"),
                SecretsError::Characters { line: 2 },
            ),
        ];
        for (text, expected) in cases {
            let error = Secrets::parse(text).unwrap_err();
            assert_eq!(error, expected, "{text:?}");
            assert!(!error.to_string().contains(A));
        }
        let many: String = (0..=MAX_SECRETS).map(|i| format!("{A}{i}\n")).collect();
        assert_eq!(Secrets::parse(&many).unwrap_err(), SecretsError::TooMany);
    }

    #[test]
    fn debug_output_hides_every_secret() {
        let secrets = Secrets::parse(&format!("one {A}\n{B}\n")).unwrap();
        let shown = format!("{secrets:?}");
        assert!(!shown.contains(A) && !shown.contains(B), "{shown}");
        assert!(shown.contains("one"));
    }
}
