//! The configuration of OpenID Connect issuers (`tokens.issuers`): read from the file's YAML by serde
//! and validated in one pass, every problem of every issuer reported together.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde::Deserialize;

/// The algorithms an issuer may be configured with: asymmetric only, so a public key can never be
/// used as an HMAC secret.
const ALLOWED: &[(&str, Algorithm)] = &[
    ("RS256", Algorithm::RS256),
    ("RS384", Algorithm::RS384),
    ("RS512", Algorithm::RS512),
    ("PS256", Algorithm::PS256),
    ("PS384", Algorithm::PS384),
    ("PS512", Algorithm::PS512),
    ("ES256", Algorithm::ES256),
    ("ES384", Algorithm::ES384),
    ("EdDSA", Algorithm::EdDSA),
];

/// The most issuers one configuration may name.
pub const MAX_ISSUERS: usize = 32;

/// One issuer as the file spells it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuerDoc {
    issuer: String,
    #[serde(default)]
    jwks_uri: Option<String>,
    #[serde(default)]
    audiences: Vec<String>,
    #[serde(default)]
    algorithms: Option<Vec<String>>,
    #[serde(default)]
    user_id_claim: Option<String>,
    #[serde(default)]
    roles_claims: Vec<String>,
    #[serde(default)]
    groups_claim: Option<String>,
    #[serde(default)]
    strip_group_slash: bool,
    #[serde(default)]
    max_key_age: Option<String>,
    #[serde(default)]
    refetch_cooldown: Option<String>,
    #[serde(default)]
    refresh_interval: Option<String>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
}

/// A validated issuer: who signs, for whom, with what, and how its claims map to a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerConfig {
    /// Matched exactly against a token's `iss`.
    pub issuer: String,
    /// Where the keys are; `None`: found through the issuer's discovery document.
    pub jwks_uri: Option<String>,
    /// A token's `aud` must name one of these.
    pub audiences: Vec<String>,
    pub algorithms: Vec<Algorithm>,
    pub user_id_claim: String,
    /// Dotted claim paths whose lists of strings are merged into the roles.
    pub roles_claims: Vec<Vec<String>>,
    pub groups_claim: Option<Vec<String>>,
    /// Keycloak writes groups as paths (`/admins`); drop the leading `/`.
    pub strip_group_slash: bool,
    /// How long after the last good fetch the keys may still serve while the issuer is unreachable.
    pub max_key_age: Duration,
    /// The least time between two refetches caused by unknown key ids.
    pub refetch_cooldown: Duration,
    /// How often keys are refetched when the response says nothing usable about caching.
    pub refresh_interval: Duration,
    /// An extra CA bundle trusted for this issuer's endpoints, beside the system roots.
    pub ca_file: Option<PathBuf>,
}

/// Every configured issuer, validated (the value of `tokens.issuers`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<IssuerDoc>")]
pub struct IssuerConfigs(pub Vec<IssuerConfig>);

impl TryFrom<Vec<IssuerDoc>> for IssuerConfigs {
    type Error = String;

    fn try_from(docs: Vec<IssuerDoc>) -> Result<Self, String> {
        let mut errors = Vec::new();
        if docs.len() > MAX_ISSUERS {
            errors.push(format!("at most {MAX_ISSUERS} issuers"));
        }
        let mut seen = BTreeSet::new();
        let mut issuers = Vec::new();
        for (index, doc) in docs.into_iter().enumerate() {
            let mut problems = Vec::new();
            if !seen.insert(doc.issuer.clone()) {
                problems.push("the same issuer is configured twice".to_owned());
            }
            let issuer = validate(doc, &mut problems);
            if problems.is_empty() {
                issuers.push(issuer);
            } else {
                errors.extend(problems.into_iter().map(|p| format!("issuer {index}: {p}")));
            }
        }
        if errors.is_empty() {
            Ok(IssuerConfigs(issuers))
        } else {
            Err(errors.join("; "))
        }
    }
}

fn validate(doc: IssuerDoc, problems: &mut Vec<String>) -> IssuerConfig {
    if let Err(problem) = check_url(&doc.issuer) {
        problems.push(format!("issuer {problem}"));
    }
    if let Some(uri) = &doc.jwks_uri
        && let Err(problem) = check_url(uri)
    {
        problems.push(format!("jwks_uri {problem}"));
    }
    if let Some(path) = &doc.ca_file
        && !path.is_file()
    {
        problems.push("ca_file must be an existing file of PEM certificates".to_owned());
    }
    if doc.audiences.is_empty() || doc.audiences.iter().any(|a| a.trim().is_empty()) {
        problems.push("audiences must be a non-empty list of non-empty names".to_owned());
    }
    let algorithms = algorithms(doc.algorithms, problems);
    let user_id_claim = doc.user_id_claim.unwrap_or_else(|| "sub".to_owned());
    if user_id_claim.trim().is_empty() {
        problems.push("user_id_claim must not be empty".to_owned());
    }
    let roles_claims = doc
        .roles_claims
        .iter()
        .filter_map(|p| claim_path(p, "roles_claims", problems))
        .collect();
    let groups_claim = doc
        .groups_claim
        .as_deref()
        .and_then(|p| claim_path(p, "groups_claim", problems));
    let second = Duration::from_secs(1);
    let day = Duration::from_secs(86_400);
    let hour = Duration::from_secs(3600);
    IssuerConfig {
        issuer: doc.issuer,
        jwks_uri: doc.jwks_uri,
        audiences: doc.audiences,
        algorithms,
        user_id_claim,
        roles_claims,
        groups_claim,
        strip_group_slash: doc.strip_group_slash,
        max_key_age: duration(
            doc.max_key_age,
            "max_key_age",
            hour,
            (second, 7 * day),
            problems,
        ),
        refetch_cooldown: duration(
            doc.refetch_cooldown,
            "refetch_cooldown",
            Duration::from_secs(30),
            (Duration::from_millis(100), hour),
            problems,
        ),
        refresh_interval: duration(
            doc.refresh_interval,
            "refresh_interval",
            Duration::from_secs(300),
            (second, day),
            problems,
        ),
        ca_file: doc.ca_file,
    }
}

/// Whether `url` may be fetched for keys: an absolute `https://` URL, or `http://` to a loopback host (Keycloak's development mode).
/// A user part (`user@host`) is refused: `http://localhost:80@other.example` is a request to
/// `other.example`, and it would otherwise pass for loopback.
pub fn check_url(text: &str) -> Result<(), &'static str> {
    if text.len() > 2048 || text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be at most 2048 bytes, without spaces or control characters");
    }
    // The parser reqwest requests with, so what is checked here is where the fetch goes.
    let url = url::Url::parse(text).map_err(|_| "must be an absolute https:// URL")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry a user name or password");
    }
    if url.fragment().is_some() {
        return Err("must have no fragment");
    }
    let host = url.host().ok_or("must be an absolute URL with a host")?;
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&host) => Ok(()),
        "http" => Err("must be an https:// URL (http:// only for a loopback host)"),
        _ => Err("must be an absolute https:// URL"),
    }
}

fn is_loopback(host: &url::Host<&str>) -> bool {
    match host {
        url::Host::Domain(name) => name.eq_ignore_ascii_case("localhost"),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    }
}

fn algorithms(names: Option<Vec<String>>, problems: &mut Vec<String>) -> Vec<Algorithm> {
    let Some(names) = names else {
        return vec![Algorithm::RS256];
    };
    if names.is_empty() {
        problems.push("algorithms must not be empty".to_owned());
    }
    let mut algorithms = Vec::new();
    for name in &names {
        match ALLOWED.iter().find(|(n, _)| n == name) {
            Some((_, alg)) if !algorithms.contains(alg) => algorithms.push(*alg),
            Some(_) => {}
            None => problems.push(
                "algorithms may be RS256/384/512, PS256/384/512, ES256/384 and EdDSA (never none or HS*)"
                    .to_owned(),
            ),
        }
    }
    algorithms
}

fn claim_path(path: &str, setting: &str, problems: &mut Vec<String>) -> Option<Vec<String>> {
    let parts: Vec<String> = path.split('.').map(str::to_owned).collect();
    if path.len() > 256 || parts.len() > 8 || parts.iter().any(|p| p.trim().is_empty()) {
        problems.push(format!(
            "{setting} are dotted claim paths of non-empty names (at most 8)"
        ));
        return None;
    }
    Some(parts)
}

fn duration(
    value: Option<String>,
    setting: &str,
    default: Duration,
    (min, max): (Duration, Duration),
    problems: &mut Vec<String>,
) -> Duration {
    let Some(value) = value else {
        return default;
    };
    let value = value.trim();
    let parsed = value
        .parse::<u64>()
        .map(Duration::from_secs)
        .ok()
        .or_else(|| humantime::parse_duration(value).ok());
    match parsed {
        Some(d) if d >= min && d <= max => d,
        _ => {
            problems.push(format!(
                "{setting} must be a duration from {} to {}",
                humantime::format_duration(min),
                humantime::format_duration(max)
            ));
            default
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<IssuerConfigs, String> {
        serde_norway::from_str::<IssuerConfigs>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn a_keycloak_issuer_reads_with_defaults() {
        let configs = parse(
            "- issuer: https://sso.example.com/realms/bank\n  audiences: [bank-api]\n  roles_claims: [realm_access.roles, resource_access.bank-api.roles]\n",
        )
        .unwrap();
        let issuer = configs.0.first().unwrap();
        assert_eq!(issuer.algorithms, vec![Algorithm::RS256]);
        assert_eq!(issuer.user_id_claim, "sub");
        assert_eq!(
            issuer.roles_claims.get(1).unwrap(),
            &vec!["resource_access", "bank-api", "roles"]
        );
        assert_eq!(issuer.max_key_age, Duration::from_secs(3600));
    }

    #[test]
    fn every_problem_is_reported() {
        let error = parse(
            "- issuer: http://sso.example.com\n  audiences: []\n  algorithms: [HS256, none]\n  roles_claims: [a..b]\n  max_key_age: 0s\n- issuer: http://sso.example.com\n  audiences: [x]\n",
        )
        .unwrap_err();
        for expected in [
            "issuer 0: issuer must be an https://",
            "audiences must be a non-empty",
            "never none or HS*",
            "roles_claims are dotted",
            "max_key_age must be",
            "issuer 1: the same issuer is configured twice",
        ] {
            assert!(error.contains(expected), "{expected} missing from {error}");
        }
    }

    #[test]
    fn loopback_http_is_allowed_and_unknown_fields_are_not() {
        assert!(parse("- issuer: http://127.0.0.1:8080/realms/dev\n  audiences: [a]\n").is_ok());
        assert!(parse("- issuer: http://localhost/realms/dev\n  audiences: [a]\n").is_ok());
        assert!(parse("- issuer: http://[::1]\n  audiences: [a]\n").is_ok());
        assert!(parse("- issuer: http://[::1]:8080/x\n  audiences: [a]\n").is_ok());
        assert!(parse("- issuer: http://127.0.0.1.evil.com/x\n  audiences: [a]\n").is_err());
        for hostile in [
            "http://localhost:80@evil.example/x",
            "http://evil.example\\.localhost/x",
            "https://user:pass@sso.example.com/x",
            "https://sso.example.com/x#frag",
            "ftp://sso.example.com/x",
        ] {
            assert!(check_url(hostile).is_err(), "{hostile}");
        }
        assert!(
            parse("- issuer: https://a\n  audiences: [a]\n  ca_file: /nonexistent.pem\n").is_err()
        );
        assert!(parse("- issuer: https://a\n  audiences: [a]\n  jku: x\n").is_err());
        assert!(parse("- issuer: sso.example.com\n  audiences: [a]\n").is_err());
    }
}
