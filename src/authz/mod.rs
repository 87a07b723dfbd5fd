//! Authorizes an HTTP request as a proxy sees it: credentials the way Stream's clients send them, the
//! route table for what the request stands for, and the engine for the decision.
//!
//! Both front ends, Envoy's gRPC ext_authz and the HTTP endpoint (Envoy's HTTP service, nginx
//! `auth_request`, Traefik ForwardAuth), translate their request into an [`HttpCall`] and their answer
//! from an [`Outcome`], so they cannot disagree. Synchronous and free of I/O: the caller brings the
//! policy set, the clock and the bytes, and through a [`Gate`] the two steps that are recorded
//! (verifying the caller's token, deciding a request).
//!
//! Fails closed: a request no route describes is denied (as Keycloak's policy enforcer does), a path or
//! body that cannot be read is refused, and a credential problem is a 401 before any rule is looked at.

mod offline;
mod problem;
mod stream_error;
mod strict;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value};

use crate::decider::Verdict;
use crate::engine;
use crate::policy::{ErrorFormat, IdPiece, PolicySet, Route, RouteMatch, ValueSource, body_values};
use crate::principal::Principal;
use crate::token::{TokenError, bearer_token};

pub use offline::{OfflineGate, verify_caller};
pub use stream_error::{Denial, ErrorKind};

/// A denial as the proxy sends it: the body and its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    pub content_type: &'static str,
    pub text: String,
}

impl Denial {
    /// The body of this denial in the route table's `format`: Stream's error body (with `duration`, how
    /// long the authorization took) or RFC 9457 problem details. Every door renders through here, so
    /// Envoy, nginx and Traefik clients get the same body.
    pub fn render(&self, format: ErrorFormat, duration: Duration) -> ErrorBody {
        match format {
            ErrorFormat::Stream => ErrorBody {
                content_type: "application/json",
                text: self.body(duration),
            },
            ErrorFormat::Problem => ErrorBody {
                content_type: problem::CONTENT_TYPE,
                text: problem::body(self),
            },
        }
    }
}

/// Headers the upstream receives with an allowed request.
pub const USER_ID_HEADER: &str = "x-gatehouse-user-id";
pub const PRINCIPAL_KIND_HEADER: &str = "x-gatehouse-principal-kind";
pub const RULE_HEADER: &str = "x-gatehouse-rule";
pub const REVISION_HEADER: &str = "x-gatehouse-revision";
/// Set (to `true`) when the request passes only because the route mode is permissive.
pub const DRY_RUN_HEADER: &str = "x-gatehouse-dry-run";

/// Which proxy asks `GET /authz`, and so the one pair of headers that carries the original request.
/// Each proxy sets its own pair and passes the client's other headers through, so reading the other
/// pair (or falling back to it) would let a client choose what is authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeaders {
    /// nginx `auth_request`: `X-Original-Method` and `X-Original-URI`, set in its configuration.
    Nginx,
    /// Traefik ForwardAuth: `X-Forwarded-Method` and `X-Forwarded-Uri`.
    Traefik,
}

impl ProxyHeaders {
    /// The (method, URI) header names, lower-case.
    pub fn names(self) -> (&'static str, &'static str) {
        match self {
            ProxyHeaders::Nginx => ("x-original-method", "x-original-uri"),
            ProxyHeaders::Traefik => ("x-forwarded-method", "x-forwarded-uri"),
        }
    }
}

/// The request as the proxy saw it.
pub struct HttpCall<'a> {
    pub method: &'a str,
    /// The request target: the path with its query string, if any.
    pub path: &'a str,
    pub headers: &'a dyn HeaderLookup,
    pub body: CallBody<'a>,
}

/// Looks a header up by its lower-case name. A header given more than once, or whose value is not
/// text, is an error (a 400), never "absent": absent would let the request be decided without it.
pub trait HeaderLookup {
    fn header(&self, lower_case_name: &str) -> Result<Option<&str>, Denial>;
}

/// What the proxy forwarded of the request body.
#[derive(Debug, Clone, Copy)]
pub enum CallBody<'a> {
    /// Nothing: the proxy does not forward bodies (nginx), or the request had none.
    Absent,
    Complete(&'a [u8]),
    /// Only a prefix (Envoy's `allow_partial_message`): fields cannot be read from it.
    Truncated,
}

/// How a request may proceed.
#[derive(Debug)]
pub enum Outcome {
    Allowed(Allowed),
    Denied(Denial),
}

/// An allowed request and what the upstream is told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowed {
    pub route: String,
    /// Empty for public routes, server tokens without a user and anonymous callers.
    pub user_id: String,
    /// `user`, `server`, `scoped`, `anonymous`; `public` for a public route.
    pub principal_kind: &'static str,
    pub rule: String,
    pub revision: String,
    /// Allowed only because the route mode is permissive: the policy denies it.
    pub dry_run: bool,
}

impl Allowed {
    /// The headers to set on the upstream request; a header with an empty value is to be removed.
    pub fn upstream_headers(&self) -> [(&'static str, &str); 5] {
        [
            (USER_ID_HEADER, self.user_id.as_str()),
            (PRINCIPAL_KIND_HEADER, self.principal_kind),
            (RULE_HEADER, self.rule.as_str()),
            (REVISION_HEADER, self.revision.as_str()),
            (DRY_RUN_HEADER, if self.dry_run { "true" } else { "" }),
        ]
    }
}

/// What the authorizer asks of the service around it: the two steps whose outcome is recorded (a
/// refused token is counted; a decision is counted, logged and traced).
pub trait Gate {
    /// The caller `token` speaks for, verified at `now` and not revoked by `policy`.
    fn authenticate(
        &self,
        token: &str,
        policy: &PolicySet,
        now: i64,
    ) -> Result<Arc<Principal>, TokenError>;

    /// Records a request to `route` refused for its credentials (`error`), before any rule was asked.
    fn refused(&self, policy: &PolicySet, route: &Route, error: &TokenError);

    /// The verdict on `request`, made with `policy` under its route mode, for the route `route`.
    fn decide<'p>(
        &self,
        policy: &'p PolicySet,
        request: &engine::Request<'_>,
        route: &str,
    ) -> Verdict<'p>;
}

/// What the authorizer needs besides the request.
pub struct Authorizer<'a> {
    /// The app's API key; empty: the `api_key` query parameter is not checked.
    pub api_key: &'a str,
    pub policy: &'a PolicySet,
    /// Seconds since the Unix epoch.
    pub now: i64,
    pub gate: &'a dyn Gate,
}

impl Authorizer<'_> {
    /// Decides `call`.
    pub fn authorize(&self, call: &HttpCall<'_>) -> Outcome {
        match self.try_authorize(call) {
            Ok(allowed) => Outcome::Allowed(allowed),
            Err(denial) => Outcome::Denied(denial),
        }
    }

    fn try_authorize(&self, call: &HttpCall<'_>) -> Result<Allowed, Denial> {
        check_method(call.method)?;
        let revision = self.policy.revision();
        let found = self
            .policy
            .routes()
            .find(call.method, call.path)
            .map_err(|e| Denial::new(ErrorKind::Input, format!("cannot route the request: {e}")))?;
        let Some(found) = found else {
            return Err(Denial::new(
                ErrorKind::NotAllowed,
                format!(
                    "no route describes {} {}: requests outside the route table are denied",
                    sanitize(call.method),
                    sanitize(path_only(call.path))
                ),
            )
            .at_revision(revision));
        };
        if found.route.public {
            return Ok(Allowed {
                route: found.route.name.clone(),
                user_id: String::new(),
                principal_kind: "public",
                rule: format!("public-route:{}", found.route.name),
                revision: revision.to_owned(),
                dry_run: false,
            });
        }
        self.check_api_key(call)?;
        let principal = self.principal(call, found.route)?;
        self.decide(call, &found, &principal)
    }

    /// The `api_key` query parameter must be the app's key, as Stream requires of every call.
    fn check_api_key(&self, call: &HttpCall<'_>) -> Result<(), Denial> {
        if self.api_key.is_empty() {
            return Ok(());
        }
        match query_param(call.path, "api_key").map_err(|e| Denial::new(ErrorKind::Input, e))? {
            Some(key) if key == self.api_key => Ok(()),
            Some(_) => Err(Denial::new(
                ErrorKind::ApiKey,
                "api_key does not match this app's key",
            )),
            None => Err(Denial::new(
                ErrorKind::ApiKey,
                "the api_key query parameter is missing",
            )),
        }
    }

    /// The caller: `stream-auth-type: anonymous`, or the JWT in `Authorization` (with or without
    /// `Bearer `), verified and not revoked by the deciding set.
    fn principal(&self, call: &HttpCall<'_>, route: &Route) -> Result<Arc<Principal>, Denial> {
        let auth_type = call
            .headers
            .header("stream-auth-type")?
            .map(str::trim)
            .unwrap_or("jwt");
        if auth_type.eq_ignore_ascii_case("anonymous") {
            return Ok(Arc::new(Principal::anonymous()));
        }
        if !auth_type.eq_ignore_ascii_case("jwt") {
            return Err(Denial::new(
                ErrorKind::Authentication,
                "stream-auth-type must be 'jwt' or 'anonymous'",
            ));
        }
        let token = call
            .headers
            .header("authorization")?
            .map(bearer_token)
            .unwrap_or_default();
        if token.is_empty() {
            self.gate.refused(self.policy, route, &TokenError::Missing);
            return Err(Denial::new(
                ErrorKind::Authentication,
                "the Authorization header with a JWT is missing",
            ));
        }
        self.gate
            .authenticate(token, self.policy, self.now)
            .map_err(|error| {
                self.gate.refused(self.policy, route, &error);
                token_denial(error)
            })
    }

    fn decide(
        &self,
        call: &HttpCall<'_>,
        found: &RouteMatch<'_>,
        principal: &Principal,
    ) -> Result<Allowed, Denial> {
        let route = found.route;
        let body = read_body(route, call.body)?;
        let fields = Fields {
            found,
            call,
            body: body.as_ref(),
            principal,
        };
        let id = fields.resource_id(&route.id)?;
        let attributes = fields.collect(&route.attributes)?;
        let context = fields.collect(&route.context)?;
        let request = engine::Request {
            principal,
            action: &route.action,
            resource: engine::Resource {
                kind: &route.kind,
                id: &id,
                attributes: &attributes,
            },
            context: &context,
            now: self.now,
        };
        engine::bounds::check(&request)
            .map_err(|e| Denial::new(ErrorKind::Input, e.to_string()))?;
        let mut verdict = self.gate.decide(self.policy, &request, &route.name);
        let mut asked = request;
        // The other resources the request acts on: the first one denied decides.
        let also: Vec<String> = route
            .also_ids
            .iter()
            .map(|pieces| fields.resource_id(pieces))
            .collect::<Result<_, _>>()?;
        for id in also.iter().filter(|id| !id.is_empty()) {
            if !verdict.allowed {
                break;
            }
            let other = engine::Request {
                resource: engine::Resource {
                    id,
                    ..request.resource
                },
                ..request
            };
            engine::bounds::check(&other)
                .map_err(|e| Denial::new(ErrorKind::Input, e.to_string()))?;
            verdict = self.gate.decide(self.policy, &other, &route.name);
            asked = other;
        }
        if verdict.allowed && !is_header_value(&principal.user_id) {
            // The upstream learns who the caller is only from this header; a proxy that copies present
            // headers would keep a client's own `x-gatehouse-user-id` if it were left out.
            return Err(Denial::new(
                ErrorKind::Input,
                "the caller's user id cannot be passed on as a header value",
            ));
        }
        if verdict.allowed {
            Ok(Allowed {
                route: route.name.clone(),
                user_id: principal.user_id.clone(),
                principal_kind: principal.kind.as_str(),
                rule: verdict.decision.rule.to_owned(),
                revision: self.policy.revision().to_owned(),
                dry_run: verdict.dry_run,
            })
        } else {
            Err(Denial::new(ErrorKind::NotAllowed, verdict.reason(&asked))
                .with_rule(verdict.decision.rule)
                .at_revision(self.policy.revision()))
        }
    }
}

/// The request's fields as the route's value sources read them.
struct Fields<'r> {
    found: &'r RouteMatch<'r>,
    call: &'r HttpCall<'r>,
    body: Option<&'r Value>,
    principal: &'r Principal,
}

impl Fields<'_> {
    /// The resource id: the template's text with its values filled in (an absent value adds nothing).
    fn resource_id(&self, pieces: &[IdPiece]) -> Result<String, Denial> {
        let mut id = String::new();
        for piece in pieces {
            match piece {
                IdPiece::Literal(text) => id.push_str(text),
                IdPiece::Value(source) => match combine(self.read(source)?) {
                    Some(Value::String(text)) => id.push_str(&text),
                    Some(Value::Number(n)) => id.push_str(&n.to_string()),
                    Some(Value::Bool(b)) => id.push_str(if b { "true" } else { "false" }),
                    None => {}
                    Some(_) => {
                        return Err(Denial::new(
                            ErrorKind::Input,
                            "the request names more than one value for the resource id",
                        ));
                    }
                },
            }
        }
        Ok(id)
    }

    /// Every field with the values its sources find. A field reads all its sources: equal values count
    /// once, and different ones make a list, which no string condition accepts. So a request that
    /// names two actors (`{"actor": "alice", "activities": [{"actor": "bob"}]}`) or a body user id
    /// that is not the caller's never passes for the caller.
    fn collect(&self, fields: &[crate::policy::FieldSource]) -> Result<Map<String, Value>, Denial> {
        let mut out = Map::new();
        for field in fields {
            let mut values = Vec::new();
            for source in &field.sources {
                values.extend(self.read(source)?);
            }
            if let Some(value) = combine(values) {
                out.insert(field.name.clone(), value);
            }
        }
        Ok(out)
    }

    /// A source's values; empty when the request does not carry it. A value of the wrong shape, or a
    /// query parameter or header given twice, is refused: each has one reading, never a first-wins.
    fn read(&self, source: &ValueSource) -> Result<Vec<Value>, Denial> {
        let present = |s: &str| {
            if s.is_empty() {
                Vec::new()
            } else {
                vec![Value::String(s.to_owned())]
            }
        };
        let input = |e: String| Denial::new(ErrorKind::Input, e);
        Ok(match source {
            ValueSource::Capture(name) => self
                .found
                .captures
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| present(v))
                .unwrap_or_default(),
            ValueSource::Query(name) => query_param(self.call.path, name)
                .map_err(input)?
                .map(|v| present(&v))
                .unwrap_or_default(),
            ValueSource::Header(name) => self
                .call
                .headers
                .header(name)?
                .map(present)
                .unwrap_or_default(),
            ValueSource::PrincipalId => present(&self.principal.user_id),
            ValueSource::Body(steps) => match self.body {
                Some(body) => body_values(body, steps)
                    .map_err(|e| input(e.to_string()))?
                    .into_iter()
                    .cloned()
                    .collect(),
                None => Vec::new(),
            },
        })
    }
}

/// One value, or a list of the distinct values in order; `None` for none.
fn combine(values: Vec<Value>) -> Option<Value> {
    if values.len() <= 1 {
        return values.into_iter().next();
    }
    let mut distinct: Vec<Value> = Vec::with_capacity(values.len());
    for value in values {
        if !distinct.contains(&value) {
            distinct.push(value);
        }
    }
    match distinct.len() {
        0 => None,
        1 => distinct.pop(),
        _ => Some(Value::Array(distinct)),
    }
}

/// Parses the body when the route reads it; a body that is present but unreadable is refused.
fn read_body(route: &Route, body: CallBody<'_>) -> Result<Option<Value>, Denial> {
    if !route.reads_body() {
        return Ok(None);
    }
    match body {
        CallBody::Absent => Ok(None),
        CallBody::Complete(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(None),
        CallBody::Complete(bytes) => serde_json::from_slice::<strict::Strict>(bytes)
            .map(|strict| Some(strict.0))
            .map_err(|e| {
                Denial::new(
                    ErrorKind::Input,
                    format!("the request body is not valid JSON, or repeats a key ({e})"),
                )
            }),
        CallBody::Truncated => Err(Denial::new(
            ErrorKind::Input,
            "the request body reached the authorizer cut short, and this route reads fields from it; raise the proxy's body limit",
        )),
    }
}

fn token_denial(error: TokenError) -> Denial {
    Denial::new(ErrorKind::Authentication, error.to_string())
}

/// The value of query parameter `name`, decoded; a parameter given more than once is an error, since
/// servers differ on which of the values they take.
pub fn query_param(target: &str, name: &str) -> Result<Option<String>, String> {
    let Some((_, query)) = target.split_once('?') else {
        return Ok(None);
    };
    let mut found = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == name {
            if found.is_some() {
                return Err(format!(
                    "the query parameter '{}' is given more than once",
                    sanitize(name)
                ));
            }
            found = Some(value.into_owned());
        }
    }
    Ok(found)
}

/// The method must be an HTTP token: what a proxy forwards and a server reads the same way.
fn check_method(method: &str) -> Result<(), Denial> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if method.is_empty() || method.len() > 32 || !method.bytes().all(token) {
        return Err(Denial::new(
            ErrorKind::Input,
            "the original method is not an HTTP method",
        ));
    }
    Ok(())
}

/// Whether `value` can be sent as a header value as it is (printable ASCII and spaces, not at the
/// ends), so the upstream receives exactly the id that was decided on.
pub fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b.is_ascii_graphic() || b == b' ')
        && !value.starts_with(' ')
        && !value.ends_with(' ')
}

fn path_only(target: &str) -> &str {
    target.split(['?', '#']).next().unwrap_or(target)
}

/// Caller-supplied text echoed in an error: printable ASCII only, and short.
fn sanitize(text: &str) -> String {
    text.chars()
        .take(200)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_decoded_and_never_repeated() {
        assert_eq!(
            query_param("/a/?api_key=k%20y&x=1", "api_key")
                .unwrap()
                .as_deref(),
            Some("k y")
        );
        assert_eq!(query_param("/a/?x=1", "api_key"), Ok(None));
        assert_eq!(query_param("/a/", "api_key"), Ok(None));
        assert!(query_param("/a/?api_key=a&api_key=b", "api_key").is_err());
        assert!(query_param("/a/?api_key=a&x=1&api_%6Bey=a", "api_key").is_err());
    }

    #[test]
    fn methods_are_http_tokens() {
        assert!(check_method("GET").is_ok());
        assert!(check_method("PATCH").is_ok());
        for bad in ["", "G ET", "GET\n", "G\u{e9}T", &"A".repeat(33)] {
            assert!(check_method(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_denial_renders_in_the_route_tables_format() {
        let denial =
            Denial::new(ErrorKind::NotAllowed, "no rule allows it").with_rule("default-deny");
        let stream = denial.render(ErrorFormat::Stream, Duration::from_millis(1));
        assert_eq!(stream.content_type, "application/json");
        let body: Value = serde_json::from_str(&stream.text).unwrap();
        assert_eq!(body["exception"], "NotAllowedException");
        let problem = denial.render(ErrorFormat::Problem, Duration::from_millis(1));
        assert_eq!(problem.content_type, "application/problem+json");
        let body: Value = serde_json::from_str(&problem.text).unwrap();
        assert_eq!(body["type"], "urn:gatehouse:problem:not-allowed");
        assert_eq!(body["rule"], "default-deny");
    }

    #[test]
    fn echoed_text_is_sanitized() {
        assert_eq!(sanitize("/a b\n"), "/a?b?");
    }
}
