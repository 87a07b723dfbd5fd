//! Reading a suite file: every error of the file in one pass, each with its line. The file is read as
//! YAML nodes first and each principal, resource and test is then read on its own, so one bad test
//! does not hide the next.

use std::collections::{BTreeMap, BTreeSet};

use dbt_yaml::{Span, Spanned, Value as Yaml};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{Case, HttpRequest, PrincipalDoc, ResourceDoc, RouteCase, Suite, SuiteDoor};
use crate::policy::{LoadError, LoadErrors, Source};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteDoc {
    #[serde(default)]
    principals: BTreeMap<String, Yaml>,
    #[serde(default)]
    resources: BTreeMap<String, Yaml>,
    tests: Vec<Yaml>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TestDoc {
    name: String,
    principal: Option<Yaml>,
    resource: Option<Yaml>,
    action: Option<String>,
    context: Option<Map<String, Value>>,
    request: Option<RequestDoc>,
    door: Option<Spanned<String>>,
    expect: Spanned<String>,
    status: Option<u16>,
    rule: Option<Spanned<String>>,
    upstream_headers: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RequestDoc {
    method: String,
    path: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    body: Option<Value>,
}

/// The errors of one file, each with the line of the node at fault.
struct Errors<'s> {
    file: &'s str,
    list: Vec<LoadError>,
}

impl Errors<'_> {
    fn push(&mut self, line: Option<usize>, message: String) {
        self.list.push(LoadError {
            file: self.file.to_owned(),
            line,
            message,
        });
    }
}

/// The 1-based line a span starts on, when the parser recorded one.
fn line(span: &Span) -> Option<usize> {
    span.is_valid().then(|| span.start.line())
}

fn line_of<T>(node: &Spanned<T>) -> Option<usize> {
    line(node.span())
}

/// A YAML parse error's line, else the line of the node it was read from.
fn error_line(error: &dbt_yaml::Error, node: &Yaml) -> Option<usize> {
    error
        .location()
        .map(|l| l.line())
        .filter(|l| *l > 0)
        .or_else(|| line(node.span()))
}

/// Parses a suite: its cases, or every error it has.
pub(super) fn parse_suite(source: &Source) -> Result<Suite, LoadErrors> {
    let (suite, errors) = read_suite(source);
    if errors.is_empty() {
        Ok(suite)
    } else {
        Err(LoadErrors(errors))
    }
}

/// The cases of a suite that read, and the errors of those that did not.
pub(super) fn read_suite(source: &Source) -> (Suite, Vec<LoadError>) {
    let mut errors = Errors {
        file: &source.path,
        list: Vec::new(),
    };
    // Suites are YAML from the same directory as the policies, and cost no more to read.
    if let Err(message) = crate::policy::check_file_shape(&source.text) {
        errors.push(None, message);
        return (Suite::default(), errors.list);
    }
    let doc: SuiteDoc = match dbt_yaml::from_str(&source.text) {
        Ok(doc) => doc,
        Err(e) => {
            errors.push(e.location().map(|l| l.line()), e.to_string());
            return (Suite::default(), errors.list);
        }
    };
    let principals = definitions(&doc.principals, "principal", &mut errors, |doc| {
        let doc: PrincipalDoc = dbt_yaml::from_value(doc.clone())?;
        Ok(doc.to_principal().map(|_| doc))
    });
    let resources = definitions(&doc.resources, "resource", &mut errors, |doc| {
        dbt_yaml::from_value::<ResourceDoc>(doc.clone()).map(Ok)
    });
    let names = Names {
        principals,
        resources,
    };
    let mut suite = Suite::default();
    let mut seen = BTreeSet::new();
    for item in &doc.tests {
        let test = match dbt_yaml::from_value::<TestDoc>(item.clone()) {
            Ok(test) => test,
            Err(e) => {
                let name = item
                    .get("name")
                    .and_then(Yaml::as_str)
                    .map(|n| format!("test '{n}'"))
                    .unwrap_or_else(|| "a test".to_owned());
                errors.push(error_line(&e, item), format!("{name}: {e}"));
                continue;
            }
        };
        let at = line(item.span());
        if !seen.insert(test.name.clone()) {
            errors.push(at, format!("test '{}': the name is used twice", test.name));
        }
        let name = test.name.clone();
        let mut test_errors = TestErrors {
            errors: &mut errors,
            name: &name,
            at,
        };
        test_errors.read(test, &names, &mut suite);
    }
    (suite, errors.list)
}

/// Reads each named definition on its own; a bad one is an error and is left out (its name stays
/// known, so tests that use it are not reported again).
fn definitions<T>(
    docs: &BTreeMap<String, Yaml>,
    what: &str,
    errors: &mut Errors<'_>,
    read: impl Fn(&Yaml) -> Result<Result<T, String>, dbt_yaml::Error>,
) -> BTreeMap<String, Option<T>> {
    let mut out = BTreeMap::new();
    for (name, doc) in docs {
        let value = match read(doc) {
            Ok(Ok(value)) => Some(value),
            Ok(Err(message)) => {
                errors.push(line(doc.span()), format!("{what} '{name}': {message}"));
                None
            }
            Err(e) => {
                errors.push(error_line(&e, doc), format!("{what} '{name}': {e}"));
                None
            }
        };
        out.insert(name.clone(), value);
    }
    out
}

/// The suite's named principals and resources; `None` for a definition that did not read.
struct Names {
    principals: BTreeMap<String, Option<PrincipalDoc>>,
    resources: BTreeMap<String, Option<ResourceDoc>>,
}

/// What both kinds of test have, read.
struct Common {
    principal: Option<PrincipalDoc>,
    allowed: Option<bool>,
    rule: Option<String>,
    rule_line: Option<usize>,
}

/// Collects the errors of one test under its name.
struct TestErrors<'e, 's> {
    errors: &'e mut Errors<'s>,
    name: &'e str,
    at: Option<usize>,
}

impl TestErrors<'_, '_> {
    fn push(&mut self, line: Option<usize>, message: impl std::fmt::Display) {
        let line = line.or(self.at);
        self.errors
            .push(line, format!("test '{}': {message}", self.name));
    }

    /// Reads one test into a case of `suite`, or records its errors.
    fn read(&mut self, mut test: TestDoc, names: &Names, suite: &mut Suite) {
        let allowed = match test.expect.as_str() {
            "allow" => Some(true),
            "deny" => Some(false),
            other => {
                let message = format!("expect must be allow or deny, not '{other}'");
                self.push(line_of(&test.expect), message);
                None
            }
        };
        let common = Common {
            principal: test
                .principal
                .as_ref()
                .and_then(|p| self.principal(p, names)),
            allowed,
            rule: test.rule.as_ref().map(|r| r.as_str().to_owned()),
            rule_line: test.rule.as_ref().and_then(line_of).or(self.at),
        };
        match test.request.take() {
            Some(request) => self.route_case(test, request, common, suite),
            None => self.engine_case(test, names, common, suite),
        }
    }

    fn route_case(
        &mut self,
        test: TestDoc,
        request: RequestDoc,
        common: Common,
        suite: &mut Suite,
    ) {
        for (given, field) in [
            (test.resource.is_some(), "resource"),
            (test.action.is_some(), "action"),
            (test.context.is_some(), "context"),
        ] {
            if given {
                let message =
                    format!("a request case gives request, not {field}: the route decides it");
                self.push(None, message);
            }
        }
        let door = self.door(test.door.as_ref());
        let request = self.request(request);
        if test.principal.is_some() && common.principal.is_none() {
            return;
        }
        if let (Some(allowed), Some(door), Some(request)) = (common.allowed, door, request) {
            suite.routes.push(RouteCase {
                name: test.name,
                line: self.at,
                rule_line: common.rule_line,
                principal: common.principal,
                request,
                door,
                allowed,
                status: test.status,
                rule: common.rule,
                upstream_headers: test.upstream_headers.unwrap_or_default(),
            });
        }
    }

    fn engine_case(&mut self, test: TestDoc, names: &Names, common: Common, suite: &mut Suite) {
        for (given, field) in [
            (test.door.is_some(), "door"),
            (test.status.is_some(), "status"),
            (test.upstream_headers.is_some(), "upstream_headers"),
        ] {
            if given {
                self.push(None, format!("{field} is for request cases only"));
            }
        }
        if test.principal.is_none() {
            self.push(None, "principal is missing");
        }
        if test.action.is_none() {
            self.push(None, "action is missing (or give request)");
        }
        let resource = match &test.resource {
            Some(r) => self.resource(r, names),
            None => {
                self.push(None, "resource is missing (or give request)");
                None
            }
        };
        if let (Some(principal), Some(resource), Some(action), Some(allowed)) =
            (common.principal, resource, test.action, common.allowed)
        {
            suite.cases.push(Case {
                name: test.name,
                line: self.at,
                rule_line: common.rule_line,
                principal,
                resource,
                action,
                context: test.context.unwrap_or_default(),
                allowed,
                rule: common.rule,
            });
        }
    }

    fn principal(&mut self, node: &Yaml, names: &Names) -> Option<PrincipalDoc> {
        if let Some(name) = node.as_str() {
            return self.named(name, &names.principals, "principal", node);
        }
        let doc = match dbt_yaml::from_value::<PrincipalDoc>(node.clone()) {
            Ok(doc) => doc,
            Err(e) => {
                self.push(error_line(&e, node), format!("principal: {e}"));
                return None;
            }
        };
        match doc.to_principal() {
            Ok(_) => Some(doc),
            Err(e) => {
                self.push(line(node.span()), e);
                None
            }
        }
    }

    fn resource(&mut self, node: &Yaml, names: &Names) -> Option<ResourceDoc> {
        if let Some(name) = node.as_str() {
            return self.named(name, &names.resources, "resource", node);
        }
        match dbt_yaml::from_value::<ResourceDoc>(node.clone()) {
            Ok(doc) => Some(doc),
            Err(e) => {
                self.push(error_line(&e, node), format!("resource: {e}"));
                None
            }
        }
    }

    /// A definition by name; an undefined name is an error with the closest defined one as a hint.
    fn named<T: Clone>(
        &mut self,
        name: &str,
        defined: &BTreeMap<String, Option<T>>,
        what: &str,
        node: &Yaml,
    ) -> Option<T> {
        match defined.get(name) {
            Some(found) => found.clone(),
            None => {
                let hint = crate::policy::hint::suggest(name, defined.keys().map(String::as_str));
                self.push(
                    line(node.span()),
                    format!("{what} '{name}' is not defined{hint}"),
                );
                None
            }
        }
    }

    fn door(&mut self, door: Option<&Spanned<String>>) -> Option<SuiteDoor> {
        let Some(door) = door else {
            return Some(SuiteDoor::Envoy);
        };
        let found = SuiteDoor::parse(door);
        if found.is_none() {
            self.push(
                line_of(door),
                format!(
                    "door must be one of {}, not '{}'",
                    SuiteDoor::NAMES.join(", "),
                    door.as_str()
                ),
            );
        }
        found
    }

    fn request(&mut self, doc: RequestDoc) -> Option<HttpRequest> {
        let body = doc.body.map(|body| match body {
            Value::String(text) => text.into_bytes(),
            other => other.to_string().into_bytes(),
        });
        let headers: Vec<(String, String)> = doc
            .headers
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect();
        let request = HttpRequest {
            method: doc.method,
            path: doc.path,
            headers,
            body,
        };
        match request.check() {
            Ok(()) => Some(request),
            Err(problem) => {
                self.push(None, format!("request: {problem}"));
                None
            }
        }
    }
}
