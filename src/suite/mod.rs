//! Policy test suites (`*_test.yaml` beside the policies): parse them, check what they name against a
//! set, and run them.
//!
//! A test asks either the engine (`resource` + `action`) or a door (`request` + `door`): request cases
//! go through the same reading of the proxy's request and writing of its answer as the live doors
//! ([`crate::grpc::answer_ext_authz`], [`crate::http::answer`]), with a real token minted for the
//! principal. Sources in, report out: no server, no decision log. `gatehouse validate`, `gatehouse
//! test`, `gatehouse eval --http` and the test suite of this crate use it.

mod doors;
mod parse;

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::engine::{self, Request, Resource};
use crate::policy::{LoadError, LoadErrors, PolicySet, Source, hint};
use crate::principal::{Principal, PrincipalKind};

pub use doors::{Answer, Offline, SuiteDoor};

/// A principal as tests (and `gatehouse eval`) describe it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalDoc {
    pub id: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub channel_roles: BTreeMap<String, String>,
    #[serde(default)]
    pub claims: Map<String, Value>,
    #[serde(default)]
    pub anonymous: bool,
    #[serde(default)]
    pub server: bool,
    /// The OpenID Connect issuer that vouched for the principal (`principal.issuer` in conditions).
    #[serde(default)]
    pub issuer: Option<String>,
}

impl PrincipalDoc {
    pub fn to_principal(&self) -> Result<Principal, String> {
        let base = match (self.anonymous, self.server, &self.id) {
            (true, false, None) => Principal::anonymous(),
            (false, true, None) => Principal {
                kind: PrincipalKind::Server,
                ..Principal::anonymous()
            },
            (false, false, Some(id)) if !id.is_empty() => Principal::user(id.clone()),
            _ => {
                return Err(
                    "a principal is { id, ... }, { anonymous: true } or { server: true }"
                        .to_owned(),
                );
            }
        };
        Ok(Principal {
            roles: self.roles.clone(),
            groups: self.groups.clone(),
            channel_roles: self.channel_roles.clone(),
            claims: self.claims.clone(),
            issuer: self.issuer.clone(),
            ..base
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceDoc {
    pub kind: String,
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

/// A request to a door, as a suite or `gatehouse eval --http` gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: String,
    /// The request target: the path with its query string, if any.
    pub path: String,
    /// Header names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body as sent; `None`: no body.
    pub body: Option<Vec<u8>>,
}

impl HttpRequest {
    /// Whether the request can be sent as it is: a method, a path from `/`, header names and values
    /// that are header text, each name once.
    pub fn check(&self) -> Result<(), String> {
        if self.method.is_empty() || !self.method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err("the method is not an HTTP method (letters only)".into());
        }
        if !self.path.starts_with('/') || !self.path.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(
                "the path must start with '/' and be printable ASCII without spaces".into(),
            );
        }
        let mut names = BTreeSet::new();
        for (name, value) in &self.headers {
            if axum::http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                // Not echoed: a name that is not one may be a credential written without its colon.
                return Err(
                    "a header name is not one (letters, digits and '-', before the ':')".into(),
                );
            }
            if axum::http::HeaderValue::from_str(value).is_err() {
                return Err(format!("the value of header '{name}' is not header text"));
            }
            if !names.insert(name.as_str()) {
                return Err(format!("header '{name}' is given twice"));
            }
        }
        Ok(())
    }

    /// The value of header `name` (lower-case), if given.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One engine test of a suite (`resource` + `action`), with its names resolved.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    /// The line of the test in its file.
    pub line: Option<usize>,
    /// The line of its `rule:` (else the test's).
    pub rule_line: Option<usize>,
    pub principal: PrincipalDoc,
    pub resource: ResourceDoc,
    pub action: String,
    pub context: Map<String, Value>,
    /// The expected decision.
    pub allowed: bool,
    /// The expected deciding rule, when the test names one.
    pub rule: Option<String>,
}

/// One request test of a suite (`request` + `door`).
#[derive(Debug, Clone)]
pub struct RouteCase {
    pub name: String,
    pub line: Option<usize>,
    pub rule_line: Option<usize>,
    /// `None`: the request carries no credentials but the ones its headers give.
    pub principal: Option<PrincipalDoc>,
    pub request: HttpRequest,
    pub door: SuiteDoor,
    pub allowed: bool,
    /// The expected HTTP status the door answers.
    pub status: Option<u16>,
    pub rule: Option<String>,
    /// Headers the upstream must receive with these values; an empty value: must not receive it.
    pub upstream_headers: BTreeMap<String, String>,
}

/// The tests of one suite file.
#[derive(Debug, Clone, Default)]
pub struct Suite {
    pub cases: Vec<Case>,
    pub routes: Vec<RouteCase>,
}

/// A test that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub file: String,
    pub line: Option<usize>,
    pub test: String,
    pub message: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub passed: usize,
    pub failures: Vec<Failure>,
}

impl Report {
    pub fn failed(&self) -> usize {
        self.failures.len()
    }
}

/// Parses a suite into its engine cases (request cases are left out); every error of the file at once.
pub fn parse(source: &Source) -> Result<Vec<Case>, LoadErrors> {
    parse::parse_suite(source).map(|suite| suite.cases)
}

/// Parses a suite into all its cases; every error of the file at once, each with its line.
pub fn parse_suite(source: &Source) -> Result<Suite, LoadErrors> {
    parse::parse_suite(source)
}

/// Roles and groups of test principals that the set names nowhere but spells like one it does: most
/// likely a typo, in the suite or in a rule. Warnings, not errors: a principal may hold a role that no
/// rule grants anything to on purpose, and the set learns roles from tokens, not from suites. One
/// warning per name and file, at the first test that uses it.
pub fn principal_warnings(set: &PolicySet, suites: &[(String, Suite)]) -> Vec<LoadError> {
    hint::reset_budget();
    let mut warnings = Vec::new();
    for (file, suite) in suites {
        let mut seen = BTreeSet::new();
        let principals = suite
            .cases
            .iter()
            .map(|c| (&c.name, c.line, Some(&c.principal)))
            .chain(
                suite
                    .routes
                    .iter()
                    .map(|c| (&c.name, c.line, c.principal.as_ref())),
            );
        for (test, line, principal) in principals {
            let Some(principal) = principal else { continue };
            let roles = principal
                .roles
                .iter()
                .chain(principal.channel_roles.values())
                .map(|r| ("role", r, set.roles_named()));
            let groups = principal
                .groups
                .iter()
                .map(|g| ("group", g, set.groups_named()));
            for (word, name, named) in roles.chain(groups) {
                if named.contains(name) || !seen.insert((word, name.clone())) {
                    continue;
                }
                let Some(close) = hint::closest(name, named.iter().map(String::as_str)) else {
                    continue;
                };
                warnings.push(LoadError {
                    file: file.clone(),
                    line,
                    message: format!(
                        "test '{test}': the principal's {word} '{name}' is named by no rule or policy of the set (did you mean '{close}'?)"
                    ),
                });
            }
        }
    }
    warnings
}

/// Parses every suite and checks what its tests name against `set`: every error of every file. This is
/// what `gatehouse validate` does with the suites; nothing is run.
pub fn check(set: &PolicySet, suites: &[Source]) -> Result<Vec<(String, Suite)>, LoadErrors> {
    hint::reset_budget();
    let known = rule_names(set);
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    for source in suites {
        let (suite, mut more) = parse::read_suite(source);
        errors.append(&mut more);
        let named = suite
            .cases
            .iter()
            .map(|c| (&c.name, c.rule_line, &c.rule))
            .chain(suite.routes.iter().map(|c| (&c.name, c.rule_line, &c.rule)));
        for (test, line, rule) in named {
            let Some(rule) = rule else { continue };
            if !known.contains(rule.as_str()) {
                let hint = hint::suggest(rule, known.iter().map(String::as_str));
                errors.push(LoadError {
                    file: source.path.clone(),
                    line,
                    message: format!(
                        "test '{test}': rule '{rule}' is no rule, chat policy or permission of the set, nor a built-in rule name{hint}"
                    ),
                });
            }
        }
        parsed.push((source.path.clone(), suite));
    }
    errors.sort_by(|a, b| (&a.file, a.line).cmp(&(&b.file, b.line)));
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(LoadErrors(errors))
    }
}

/// The rule names a decision of `set` can report: its rules, chat policies and permissions, the
/// engine's built-in names, and `public-route:NAME` for its public routes.
fn rule_names(set: &PolicySet) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = set.candidates().iter().map(|c| c.name.clone()).collect();
    names.extend(
        [
            engine::DEFAULT_DENY,
            engine::SERVER_TOKEN,
            engine::MODE_DISABLED,
            engine::TOKEN_SCOPE,
            engine::OUTSIDE_TOKEN_SCOPE,
            engine::UNDECLARED_ACTION,
        ]
        .map(str::to_owned),
    );
    for route in set.routes().routes().iter().filter(|r| r.public) {
        names.insert(format!("public-route:{}", route.name));
    }
    names
}

/// Runs every suite against `set` as of `now`. A suite that does not parse, or names what the set
/// does not have, is an error, not a failure; the errors of every file are reported together.
pub fn run(set: &PolicySet, suites: &[Source], now: i64) -> Result<Report, LoadErrors> {
    let parsed = check(set, suites)?;
    let mut report = Report::default();
    let offline = Offline::new(set, now);
    for (file, suite) in &parsed {
        for case in &suite.cases {
            match run_case(set, case, now) {
                None => report.passed += 1,
                Some(message) => report
                    .failures
                    .push(failure(file, &case.name, case.line, message)),
            }
        }
        for case in &suite.routes {
            match offline.run(case) {
                Ok(()) => report.passed += 1,
                Err(message) => report
                    .failures
                    .push(failure(file, &case.name, case.line, message)),
            }
        }
    }
    Ok(report)
}

fn failure(file: &str, test: &str, line: Option<usize>, message: String) -> Failure {
    Failure {
        file: file.to_owned(),
        line,
        test: test.to_owned(),
        message,
    }
}

/// Why `case` does not hold, if it does not.
fn run_case(set: &PolicySet, case: &Case, now: i64) -> Option<String> {
    let principal = match case.principal.to_principal() {
        Ok(principal) => principal,
        Err(e) => return Some(e),
    };
    let request = Request {
        principal: &principal,
        action: &case.action,
        resource: Resource {
            kind: &case.resource.kind,
            id: &case.resource.id,
            attributes: &case.resource.attributes,
        },
        context: &case.context,
        now,
    };
    let decision = engine::decide(set, &request);
    let rule_ok = case.rule.as_deref().is_none_or(|r| r == decision.rule);
    if decision.allowed == case.allowed && rule_ok {
        return None;
    }
    let wanted_rule = case
        .rule
        .as_deref()
        .map(|r| format!(" by {r}"))
        .unwrap_or_default();
    let (_, explanation) = engine::decide_explained(set, &request);
    let parts = engine::explain_summary(&explanation, case.rule.as_deref());
    Some(
        format!(
            "expected {}{wanted_rule}, got {} by {}: {}\n{parts}",
            engine::verdict_name(case.allowed),
            engine::verdict_name(decision.allowed),
            decision.rule,
            decision.reason(&request)
        )
        .trim_end()
        .to_owned(),
    )
}

#[cfg(test)]
mod tests;
