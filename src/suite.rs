//! Policy test suites (`*_test.yaml` beside the policies): parse them and run them against a set.
//!
//! Pure: sources in, report out. `gatehouse test DIR` and the test suite of this crate both use it.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::engine::{self, Request, Resource};
use crate::policy::{LoadError, LoadErrors, PolicySet, Source};
use crate::principal::{Principal, PrincipalKind};

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

/// A name defined in the suite, or the thing itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Ref<T> {
    Name(String),
    Inline(T),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteDoc {
    #[serde(default)]
    principals: BTreeMap<String, PrincipalDoc>,
    #[serde(default)]
    resources: BTreeMap<String, ResourceDoc>,
    tests: Vec<TestDoc>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestDoc {
    name: String,
    principal: Ref<PrincipalDoc>,
    resource: Ref<ResourceDoc>,
    action: String,
    #[serde(default)]
    context: Map<String, Value>,
    expect: String,
    rule: Option<String>,
}

/// A test that did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub file: String,
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

    fn merge(&mut self, other: Report) {
        self.passed += other.passed;
        self.failures.extend(other.failures);
    }
}

/// Runs every suite against `set` as of `now`. A suite that does not parse is an error, not a failure.
pub fn run(set: &PolicySet, suites: &[Source], now: i64) -> Result<Report, LoadErrors> {
    let mut report = Report::default();
    let mut errors = Vec::new();
    for source in suites {
        match run_one(set, source, now) {
            Ok(one) => report.merge(one),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(report)
    } else {
        Err(LoadErrors(errors))
    }
}

/// One test of a suite, with its names resolved.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub principal: PrincipalDoc,
    pub resource: ResourceDoc,
    pub action: String,
    pub context: Map<String, Value>,
    /// The expected decision.
    pub allowed: bool,
    /// The expected deciding rule, when the test names one.
    pub rule: Option<String>,
}

/// Parses a suite into its cases.
pub fn parse(source: &Source) -> Result<Vec<Case>, LoadError> {
    let error = |line: Option<usize>, message: String| LoadError {
        file: source.path.clone(),
        line,
        message,
    };
    // The same parser as the policy files, so a suite and a policy read YAML alike.
    let suite: SuiteDoc = dbt_yaml::from_str(&source.text)
        .map_err(|e| error(e.location().map(|l| l.line()), e.to_string()))?;
    let mut cases = Vec::with_capacity(suite.tests.len());
    for test in suite.tests {
        let principal = match test.principal {
            Ref::Name(name) => suite
                .principals
                .get(&name)
                .cloned()
                .ok_or(format!("principal '{name}' is not defined")),
            Ref::Inline(doc) => Ok(doc),
        }
        .map_err(|e| error(None, format!("test '{}': {e}", test.name)))?;
        let resource = match test.resource {
            Ref::Name(name) => suite
                .resources
                .get(&name)
                .cloned()
                .ok_or(format!("resource '{name}' is not defined")),
            Ref::Inline(doc) => Ok(doc),
        }
        .map_err(|e| error(None, format!("test '{}': {e}", test.name)))?;
        let allowed = match test.expect.as_str() {
            "allow" => true,
            "deny" => false,
            other => {
                return Err(error(
                    None,
                    format!(
                        "test '{}': expect must be allow or deny, not '{other}'",
                        test.name
                    ),
                ));
            }
        };
        cases.push(Case {
            name: test.name,
            principal,
            resource,
            action: test.action,
            context: test.context,
            allowed,
            rule: test.rule,
        });
    }
    Ok(cases)
}

fn run_one(set: &PolicySet, source: &Source, now: i64) -> Result<Report, LoadError> {
    let mut report = Report::default();
    for case in parse(source)? {
        let principal = case.principal.to_principal().map_err(|e| LoadError {
            file: source.path.clone(),
            line: None,
            message: format!("test '{}': {e}", case.name),
        })?;
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
            report.passed += 1;
        } else {
            let verdict = |allowed: bool| if allowed { "allow" } else { "deny" };
            let wanted_rule = case
                .rule
                .as_deref()
                .map(|r| format!(" by {r}"))
                .unwrap_or_default();
            let (_, explanation) = engine::decide_explained(set, &request);
            let parts = engine::explain_summary(&explanation, case.rule.as_deref());
            report.failures.push(Failure {
                file: source.path.clone(),
                test: case.name.clone(),
                message: format!(
                    "expected {}{wanted_rule}, got {} by {}: {}\n{parts}",
                    verdict(case.allowed),
                    verdict(decision.allowed),
                    decision.rule,
                    decision.reason(&request)
                )
                .trim_end()
                .to_owned(),
            });
        }
    }
    Ok(report)
}
