//! RFC 9457 problem details for denials of an API that is not Stream's (`settings: route_errors:
//! problem`): a body any HTTP client can read, without Stream's exception codes or its getstream.io link.

use serde::Serialize;

use super::stream_error::{Denial, ErrorKind};

/// The media type of a problem details body.
pub const CONTENT_TYPE: &str = "application/problem+json";

/// A problem's `type` (a stable URN per kind of denial, so clients can branch on it) and `title`
/// (the same for every problem of that type, as RFC 9457 asks).
fn type_and_title(kind: ErrorKind) -> (&'static str, &'static str) {
    match kind {
        ErrorKind::ApiKey => ("urn:gatehouse:problem:api-key", "Missing or wrong API key"),
        ErrorKind::Authentication => ("urn:gatehouse:problem:unauthenticated", "Unauthenticated"),
        ErrorKind::Input => ("urn:gatehouse:problem:invalid-request", "Invalid request"),
        ErrorKind::NotAllowed => ("urn:gatehouse:problem:not-allowed", "Not allowed"),
    }
}

/// RFC 9457's members, then two extension members: the rule and the policy revision that denied.
#[derive(Serialize)]
struct Problem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    title: &'static str,
    status: u16,
    detail: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rule: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    revision: Option<&'a str>,
}

/// The problem details body of `denial`. Its detail never holds a token (see [`Denial`]), and the
/// token is not a member.
pub fn body(denial: &Denial) -> String {
    let (kind, title) = type_and_title(denial.kind);
    let problem = Problem {
        kind,
        title,
        status: denial.status(),
        detail: &denial.detail,
        rule: denial.rule.as_deref(),
        revision: denial.revision.as_deref(),
    };
    // Serializing strings and numbers cannot fail; should it, the body still names the problem.
    serde_json::to_string(&problem).unwrap_or_else(|_| {
        format!(
            "{{\"type\":\"{kind}\",\"title\":\"{title}\",\"status\":{}}}",
            denial.status()
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn parsed(denial: &Denial) -> Value {
        serde_json::from_str(&body(denial)).unwrap()
    }

    #[test]
    fn a_policy_denial_is_a_403_problem_naming_the_rule_and_revision() {
        let denial = Denial::new(
            ErrorKind::NotAllowed,
            "user 'v' may not \"update\" document",
        )
        .with_rule("editors-write")
        .at_revision("abc123");
        assert_eq!(
            parsed(&denial),
            json!({
                "type": "urn:gatehouse:problem:not-allowed",
                "title": "Not allowed",
                "status": 403,
                "detail": "user 'v' may not \"update\" document",
                "rule": "editors-write",
                "revision": "abc123",
            })
        );
    }

    #[test]
    fn credential_problems_are_401_problems_without_rule_or_revision() {
        for (kind, problem_type) in [
            (
                ErrorKind::Authentication,
                "urn:gatehouse:problem:unauthenticated",
            ),
            (ErrorKind::ApiKey, "urn:gatehouse:problem:api-key"),
        ] {
            let body = parsed(&Denial::new(kind, "the Authorization header is missing"));
            assert_eq!(body["status"], 401, "{body}");
            assert_eq!(body["type"], problem_type, "{body}");
            assert!(body.get("rule").is_none(), "{body}");
            assert!(body.get("revision").is_none(), "{body}");
            let mut members: Vec<&String> = body.as_object().unwrap().keys().collect();
            members.sort();
            assert_eq!(members, ["detail", "status", "title", "type"], "{body}");
        }
    }

    #[test]
    fn an_unreadable_request_is_a_400_problem() {
        let denial = Denial::new(ErrorKind::Input, "cannot route the request").at_revision("r1");
        let body = parsed(&denial);
        assert_eq!(body["status"], 400);
        assert_eq!(body["type"], "urn:gatehouse:problem:invalid-request");
        assert_eq!(body["title"], "Invalid request");
        assert_eq!(body["revision"], "r1");
    }

    #[test]
    fn a_problem_carries_nothing_of_streams_body() {
        let text = body(&Denial::new(ErrorKind::NotAllowed, "no rule allows it"));
        for stream_member in [
            "getstream",
            "more_info",
            "exception",
            "\"code\"",
            "duration",
        ] {
            assert!(!text.contains(stream_member), "{stream_member} in {text}");
        }
    }
}
