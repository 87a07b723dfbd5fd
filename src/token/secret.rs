use std::fmt;

/// The app's API secret. Its `Debug` and `Display` never show the bytes, so it cannot leak through a log
/// line or an error by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiSecret(Vec<u8>);

impl ApiSecret {
    /// RFC 7518 section 3.2: an HS256 key must be at least as long as the hash output.
    pub const MIN_LEN: usize = 32;

    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        ApiSecret(bytes.into())
    }

    /// A random secret for development mode: 64 lowercase alphanumerics, the shape of Stream's secrets.
    pub fn random() -> Self {
        use rand::Rng;
        use rand::distr::Alphanumeric;
        let secret: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(64)
            .map(|b| char::from(b).to_ascii_lowercase())
            .collect();
        ApiSecret(secret.into_bytes())
    }

    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for ApiSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiSecret(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_hides_the_secret() {
        let secret = ApiSecret::new("super-secret-value-that-is-long-enough");
        assert!(!format!("{secret:?}").contains("super-secret"));
    }

    #[test]
    fn random_secrets_are_long_and_distinct() {
        let a = ApiSecret::random();
        assert_eq!(a.len(), 64);
        assert_ne!(a, ApiSecret::random());
    }
}
