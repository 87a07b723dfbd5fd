//! One fetch: the HTTPS client (system roots plus an optional CA file, no redirects), discovery, and
//! a key set read with a size cap while it streams.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::Value;

use super::{Fetched, JwksOptions};
use crate::token::{IssuerConfig, JwksError, KeySet, check_url};

/// The shortest and longest time a response's `Cache-Control: max-age` may keep keys.
const MIN_MAX_AGE: Duration = Duration::from_secs(30);
const MAX_MAX_AGE: Duration = Duration::from_secs(3600);

/// Why a fetch failed. Messages never quote a response body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("the CA file cannot be read or holds no certificate")]
    CaFile,
    #[error("the HTTPS client cannot be built")]
    Client,
    #[error("the request failed or timed out")]
    Request,
    #[error("the issuer answered with status {0}")]
    Status(u16),
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the discovery document is not valid: {0}")]
    Discovery(&'static str),
    #[error("{0}")]
    KeySet(JwksError),
}

impl FetchError {
    /// A short, fixed label for metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::CaFile | FetchError::Client => "client",
            FetchError::Request => "request",
            FetchError::Status(_) => "status",
            FetchError::TooLarge(_) => "too_large",
            FetchError::Discovery(_) => "discovery",
            FetchError::KeySet(JwksError::TooManyKeys(_)) => "too_many_keys",
            FetchError::KeySet(_) => "malformed",
        }
    }
}

/// An HTTPS client trusting the system roots and `ca_file`, following no redirect.
pub(super) fn client(
    ca_file: Option<&Path>,
    options: &JwksOptions,
) -> Result<reqwest::Client, FetchError> {
    let mut roots = rustls::RootCertStore::empty();
    // Roots the system store cannot parse are skipped, as browsers do; the CA file's must all parse.
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|_| FetchError::CaFile)?
            .collect::<Result<_, _>>()
            .map_err(|_| FetchError::CaFile)?;
        if certs.is_empty() {
            return Err(FetchError::CaFile);
        }
        for cert in certs {
            roots.add(cert).map_err(|_| FetchError::CaFile)?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| FetchError::Client)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(options.fetch_timeout)
        .connect_timeout(options.fetch_timeout)
        .build()
        .map_err(|_| FetchError::Client)
}

/// The issuer's key set: from `jwks_uri`, or from the address its discovery document gives.
pub(super) async fn key_set(
    client: &reqwest::Client,
    config: &IssuerConfig,
    options: &JwksOptions,
) -> Result<Fetched, FetchError> {
    let jwks_uri = match &config.jwks_uri {
        Some(uri) => uri.clone(),
        None => discover(client, config, options).await?,
    };
    let (body, max_age) = get(client, &jwks_uri, options).await?;
    let keys =
        KeySet::from_jwks(&body, options.max_keys, Instant::now()).map_err(FetchError::KeySet)?;
    Ok(Fetched {
        keys,
        jwks_uri,
        max_age,
    })
}

/// `<issuer>/.well-known/openid-configuration`: its `issuer` must be the configured one, and its
/// `jwks_uri` an address we would accept in the configuration.
async fn discover(
    client: &reqwest::Client,
    config: &IssuerConfig,
    options: &JwksOptions,
) -> Result<String, FetchError> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        config.issuer.trim_end_matches('/')
    );
    let (body, _) = get(client, &url, options).await?;
    let Ok(Value::Object(document)) = serde_json::from_slice::<Value>(&body) else {
        return Err(FetchError::Discovery("not a JSON object"));
    };
    match document.get("issuer") {
        Some(Value::String(issuer)) if *issuer == config.issuer => {}
        _ => {
            return Err(FetchError::Discovery(
                "its issuer is not the configured one",
            ));
        }
    }
    match document.get("jwks_uri") {
        Some(Value::String(uri)) if check_url(uri).is_ok() => Ok(uri.clone()),
        _ => Err(FetchError::Discovery(
            "jwks_uri is missing or not an https URL",
        )),
    }
}

/// A GET whose body is read chunk by chunk and refused once it passes the cap, with the clamped
/// `Cache-Control: max-age` of the response.
async fn get(
    client: &reqwest::Client,
    url: &str,
    options: &JwksOptions,
) -> Result<(Vec<u8>, Option<Duration>), FetchError> {
    let mut response = client
        .get(url)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|_| FetchError::Request)?;
    let status = response.status();
    if !status.is_success() {
        return Err(FetchError::Status(status.as_u16()));
    }
    let cap = options.max_bytes;
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(FetchError::TooLarge(cap));
    }
    let max_age = response
        .headers()
        .get("cache-control")
        .and_then(|v| v.to_str().ok())
        .and_then(max_age);
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|_| FetchError::Request)? {
        if body.len() + chunk.len() > cap {
            return Err(FetchError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body, max_age))
}

/// `max-age` of a `Cache-Control` value, clamped; `no-cache`/`no-store` leave it to the interval.
fn max_age(value: &str) -> Option<Duration> {
    let mut age = None;
    for directive in value.split(',').map(str::trim) {
        let lower = directive.to_ascii_lowercase();
        if lower == "no-cache" || lower == "no-store" {
            return None;
        }
        if let Some(seconds) = lower.strip_prefix("max-age=") {
            age = seconds.trim_matches('"').parse::<u64>().ok();
        }
    }
    age.map(|s| Duration::from_secs(s).clamp(MIN_MAX_AGE, MAX_MAX_AGE))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_clamped_and_no_store_ignores_it() {
        assert_eq!(
            max_age("public, max-age=600"),
            Some(Duration::from_secs(600))
        );
        assert_eq!(max_age("max-age=1"), Some(MIN_MAX_AGE));
        assert_eq!(max_age("max-age=999999"), Some(MAX_MAX_AGE));
        assert_eq!(max_age("no-store, max-age=600"), None);
        assert_eq!(max_age("private"), None);
    }
}
