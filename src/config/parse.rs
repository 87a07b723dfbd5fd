//! The parsers the settings table names: text (from the environment or the file) to a value, or a
//! message that names what is expected and never repeats the value, which may be a secret. Each
//! trims the text itself, except [`untrimmed`], so that a secret keeps every byte it was given.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::audit::MaskedField;
use crate::authz::ProxyHeaders;

pub(super) fn addr(value: &str) -> Result<SocketAddr, String> {
    value
        .trim()
        .parse()
        .map_err(|_| "expected an address such as 127.0.0.1:50051 or 0.0.0.0:50051".to_owned())
}

pub(super) fn bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err("expected true or false".to_owned()),
    }
}

/// A whole number in `MIN..=MAX`.
pub(super) fn number<const MIN: u64, const MAX: u64>(value: &str) -> Result<u64, String> {
    bounded(value.trim(), MIN, MAX)
}

/// A count in `MIN..=MAX` that fits the platform's `usize`.
pub(super) fn count<const MIN: u64, const MAX: u64>(value: &str) -> Result<usize, String> {
    let value = bounded(value.trim(), MIN, MAX)?;
    usize::try_from(value).map_err(|_| format!("expected at most {}", usize::MAX))
}

/// A whole number in `MIN..=MAX`, for a protocol field that is 32 bits wide.
pub(super) fn small<const MIN: u64, const MAX: u64>(value: &str) -> Result<u32, String> {
    bounded(value.trim(), MIN, MAX).map(|v| u32::try_from(v).unwrap_or(u32::MAX))
}

pub(super) fn bounded(value: &str, min: u64, max: u64) -> Result<u64, String> {
    value
        .parse::<u64>()
        .ok()
        .filter(|v| (min..=max).contains(v))
        .ok_or_else(|| format!("expected a whole number from {min} to {max}"))
}

pub(super) fn duration(value: &str) -> Result<Duration, String> {
    parse_duration(value.trim())
}

/// A duration bounding a connection: long enough to be real, short enough to free it in time.
pub(super) fn limit_duration(value: &str) -> Result<Duration, String> {
    duration(value).and_then(|d| {
        if d.is_zero() || d > Duration::from_secs(3600) {
            Err("expected a duration from 1ms to 1h".to_owned())
        } else {
            Ok(d)
        }
    })
}

/// A duration such as `30s`, `500ms` or `1m`; a bare number counts as seconds.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    humantime::parse_duration(value)
        .map_err(|_| "expected a duration such as 30s, 500ms or 2m".to_owned())
}

pub(super) fn text(value: &str) -> Result<String, String> {
    Ok(value.trim().to_owned())
}

/// The value exactly as given: an inline secret's bytes are all part of it.
pub(super) fn untrimmed(value: &str) -> Result<String, String> {
    Ok(value.to_owned())
}

pub(super) fn path(value: &str) -> Result<PathBuf, String> {
    Ok(PathBuf::from(value.trim()))
}

pub(super) fn existing_dir(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value.trim());
    if path.is_dir() {
        Ok(path)
    } else {
        Err("expected an existing directory of policy files".to_owned())
    }
}

/// A file whose directory exists (the decision log creates the file, not its directory).
pub(super) fn file_in_existing_dir(value: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(value.trim());
    match path.parent() {
        Some(parent) if parent.as_os_str().is_empty() || parent.is_dir() => Ok(path),
        _ => Err("the directory of the decision log file must exist".to_owned()),
    }
}

/// The decision log's OTLP receiver: `http://HOST:PORT`, nothing more (no user, path or query, so
/// nothing secret can hide in it); empty turns the sink off. The message never repeats the value.
pub(super) fn otlp_endpoint(value: &str) -> Result<Option<String>, String> {
    const EXPECTED: &str = "expected http://HOST:PORT of an OTLP/gRPC receiver, such as http://127.0.0.1:4317, or nothing";
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let url = url::Url::parse(value).map_err(|_| EXPECTED.to_owned())?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(
                "https is not supported: send to a Collector on the node or in the pod over http://HOST:PORT"
                    .to_owned(),
            );
        }
        _ => return Err(EXPECTED.to_owned()),
    }
    let plain = url.username().is_empty()
        && url.password().is_none()
        && url.query().is_none()
        && url.fragment().is_none()
        && url.path() == "/";
    let (Some(host), Some(port), true) = (url.host_str(), url.port(), plain) else {
        return Err(EXPECTED.to_owned());
    };
    Ok(Some(format!("http://{host}:{port}")))
}

/// `json` (true) or `text` (false).
pub(super) fn log_format(value: &str) -> Result<bool, String> {
    match value.trim() {
        "json" => Ok(true),
        "text" => Ok(false),
        _ => Err("expected json or text".to_owned()),
    }
}

pub(super) fn log_filter(value: &str) -> Result<String, String> {
    let value = value.trim();
    tracing_subscriber::EnvFilter::try_new(value)
        .map(|_| value.to_owned())
        .map_err(|_| "expected a log filter such as info or gatehouse=debug".to_owned())
}

pub(super) fn proxy(value: &str) -> Result<ProxyHeaders, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "nginx" => Ok(ProxyHeaders::Nginx),
        "traefik" => Ok(ProxyHeaders::Traefik),
        _ => Err("expected nginx (X-Original-Method, X-Original-URI) or traefik (X-Forwarded-Method, X-Forwarded-Uri)".to_owned()),
    }
}

/// A comma-separated list of decision-log fields to mask.
pub(super) fn mask(value: &str) -> Result<Vec<MaskedField>, String> {
    value
        .trim()
        .split(',')
        .filter(|f| !f.trim().is_empty())
        .map(|f| {
            MaskedField::parse(f).ok_or_else(|| {
                format!(
                    "'{}' cannot be masked (principal_id, roles, resource_id, trace_id)",
                    f.trim()
                )
            })
        })
        .collect()
}

/// A YAML structure read into a domain's configuration type, whose serde derive refuses unknown
/// fields. The message is serde's: it names the field and what was expected, never a value.
pub(super) fn tree<T: serde::de::DeserializeOwned>(
    value: serde_norway::Value,
) -> Result<T, String> {
    serde_norway::from_value(value).map_err(|e| e.to_string())
}

/// A browser origin: `scheme://host[:port]` exactly as a browser sends it in `Origin`, so a
/// comparison of the two strings is all that decides. `*`, paths, a trailing slash, user parts and
/// upper case are refused with what to write instead.
pub(super) fn origin(value: &str) -> Result<String, String> {
    if value == "*" || value == "null" {
        return Err(format!(
            "`{value}` is not accepted: list each origin whose pages may ask"
        ));
    }
    let url = url::Url::parse(value).map_err(|e| format!("`{value}` is not an origin: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{value}`: an origin is http:// or https://"));
    }
    let canonical = url.origin().ascii_serialization();
    if canonical != value {
        return Err(format!(
            "`{value}` is not an origin as browsers send it; write `{canonical}`"
        ));
    }
    Ok(canonical)
}
