//! Stream's error responses: the JSON body and status its clients turn into their exception classes
//! (stream-python's `exceptions.py` and the JS client's `StreamApiError` read `code` and `exception`).

use std::time::Duration;

use serde::Serialize;

/// Where Stream's error bodies point for more information.
const MORE_INFO: &str = "https://getstream.io/activity-feeds/docs/api_error_responses";

/// The Stream error a denial is reported as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// `ApiKeyException`: the `api_key` query parameter is missing or wrong.
    ApiKey,
    /// `SignatureException`: no token, or one that fails verification (bad signature, expired,
    /// revoked, malformed).
    Authentication,
    /// `InputException`: a request that cannot be read (a path that cannot be routed, a body that is
    /// not JSON).
    Input,
    /// `NotAllowedException`: the policy denies it, or no route describes the request.
    NotAllowed,
}

impl ErrorKind {
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::ApiKey | ErrorKind::Authentication => 401,
            ErrorKind::Input => 400,
            ErrorKind::NotAllowed => 403,
        }
    }

    /// Stream's numeric error code.
    pub fn code(self) -> u32 {
        match self {
            ErrorKind::ApiKey => 2,
            ErrorKind::Authentication => 3,
            ErrorKind::Input => 4,
            ErrorKind::NotAllowed => 17,
        }
    }

    pub fn exception(self) -> &'static str {
        match self {
            ErrorKind::ApiKey => "ApiKeyException",
            ErrorKind::Authentication => "SignatureException",
            ErrorKind::Input => "InputException",
            ErrorKind::NotAllowed => "NotAllowedException",
        }
    }
}

/// A refused request. The detail never holds a token or secret: it is built from token error
/// descriptions, route names and the decision's reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub kind: ErrorKind,
    pub detail: String,
    /// The rule that denied, when a decision was made.
    pub rule: Option<String>,
    /// The policy revision that denied, when the set was consulted.
    pub revision: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: u32,
    detail: &'a str,
    duration: String,
    exception: &'static str,
    status_code: u16,
    more_info: &'static str,
}

impl Denial {
    pub fn new(kind: ErrorKind, detail: impl Into<String>) -> Denial {
        Denial {
            kind,
            detail: detail.into(),
            rule: None,
            revision: None,
        }
    }

    pub fn with_rule(mut self, rule: &str) -> Denial {
        self.rule = Some(rule.to_owned());
        self
    }

    pub fn at_revision(mut self, revision: &str) -> Denial {
        self.revision = Some(revision.to_owned());
        self
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// Stream's error body; `duration` is how long the authorization took, in Stream's `"0.12ms"` form.
    pub fn body(&self, duration: Duration) -> String {
        let body = Body {
            code: self.kind.code(),
            detail: &self.detail,
            duration: format!("{:.2}ms", duration.as_secs_f64() * 1000.0),
            exception: self.kind.exception(),
            status_code: self.kind.status(),
            more_info: MORE_INFO,
        };
        serde_json::to_string(&body).unwrap_or_else(|_| {
            format!(
                "{{\"code\":{},\"exception\":\"{}\",\"status_code\":{}}}",
                self.kind.code(),
                self.kind.exception(),
                self.kind.status()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_streams_fields() {
        let denial = Denial::new(ErrorKind::NotAllowed, "no \"way\"");
        let body: serde_json::Value =
            serde_json::from_str(&denial.body(Duration::from_micros(1500))).unwrap();
        assert_eq!(body["code"], 17);
        assert_eq!(body["exception"], "NotAllowedException");
        assert_eq!(body["status_code"], 403);
        assert_eq!(body["detail"], "no \"way\"");
        assert_eq!(body["duration"], "1.50ms");
        assert!(body["more_info"].as_str().unwrap().starts_with("https://"));
    }
}
