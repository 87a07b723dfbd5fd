//! The route table, checked against the rest of the set: each route names a kind and action that
//! exist, and never lets the client say who owns the resource.

use std::collections::HashSet;

use super::super::file::{RouteDoc, Spanned};
use super::super::model::{Actions, Body, Candidate, Effect, Kinds, Operand};
use super::super::routes::{Route, RouteTable, ValueSource, compile_route};
use super::conditions::compared_with_principal;
use super::{At, Compiler};

impl Compiler {
    /// Compiles the route table. A route must name a kind that is declared or that some rule names, an
    /// action the kind declares (when it declares any), a unique name, and requests no other route
    /// already describes.
    pub(super) fn routes(
        &mut self,
        docs: Vec<(usize, Spanned<RouteDoc>)>,
        candidates: &[Candidate],
    ) -> RouteTable {
        let mut routes: Vec<Route> = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        for (index, doc) in docs {
            // A route's errors name the route's first line: the route as a whole is at fault.
            let at = At::new(index, &doc);
            let doc = doc.into_inner();
            if doc.name.trim().is_empty() {
                self.error(at, "every route needs a name");
            } else if !names.insert(doc.name.clone()) {
                self.error(at, format!("route '{}' is defined twice", doc.name));
            }
            let route = match compile_route(doc) {
                Ok(route) => route,
                Err(errors) => {
                    for e in errors {
                        self.error(at, format!("route: {e}"));
                    }
                    continue;
                }
            };
            if !route.public {
                self.check_route_target(&route, candidates, at);
                self.check_route_trust(&route, candidates, at);
            }
            if let Some(other) = routes.iter().find(|r| r.same_requests_as(&route)) {
                let message = format!(
                    "route '{}' matches the same requests as route '{}' ({} {})",
                    route.name,
                    other.name,
                    other.methods().join(","),
                    other.template()
                );
                self.error(at, message);
            }
            routes.push(route);
        }
        RouteTable::new(routes)
    }

    /// A route may not let the client name who owns the resource: a field the kind's declaration
    /// reads its owner, feed or channel from, or one an allow rule for the route's kind and action
    /// compares with the caller (`is_principal`, `refers_to_principal`), filled from a header, query
    /// parameter or body, is an error unless the route marks it `trusted`. Deny rules may compare
    /// such fields freely: there a forged value can only deny.
    fn check_route_trust(&mut self, route: &Route, candidates: &[Candidate], at: At) {
        for name in &route.trusted {
            if !route
                .attributes
                .iter()
                .chain(&route.context)
                .any(|f| &f.name == name)
            {
                self.error(
                    at,
                    format!(
                        "route '{}' trusts '{name}', which it does not fill",
                        route.name
                    ),
                );
            }
        }
        let decl = self.kinds.get(&route.kind);
        let mut identity: Vec<Operand> = decl
            .into_iter()
            .flat_map(|d| [&d.owner, &d.feed, &d.channel])
            .flatten()
            .cloned()
            .collect();
        for candidate in candidates {
            let covers_kind = match &candidate.kinds {
                Kinds::Any => true,
                Kinds::Only(kinds) => kinds.contains(&route.kind),
            };
            let covers_action = match &candidate.actions {
                Actions::Any => true,
                Actions::Only(actions) => actions.contains(&route.action),
            };
            if let (
                true,
                true,
                Body::Rule {
                    effect: Effect::Allow,
                    when,
                    unless,
                },
            ) = (covers_kind, covers_action, &candidate.body)
            {
                for condition in when.iter().chain(unless.iter()) {
                    compared_with_principal(condition, &mut identity);
                }
            }
        }
        let mut errors = Vec::new();
        let fields = route
            .attributes
            .iter()
            .map(|f| (f, Operand::Attribute(f.name.clone())))
            .chain(
                route
                    .context
                    .iter()
                    .map(|f| (f, Operand::Context(f.name.clone()))),
            );
        for (field, operand) in fields {
            let client = field.sources.iter().any(ValueSource::client_controlled);
            if client && identity.contains(&operand) && !route.trusted.contains(&field.name) {
                errors.push(format!(
                    "route '{}' fills '{operand}', which decides who owns the {} or is compared with the caller to allow it, from a header, query parameter or body that the client writes; list it under `trusted` only if the proxy sets that header itself or the body is the resource being written",
                    route.name, route.kind
                ));
            }
        }
        for message in errors {
            self.error(at, message);
        }
    }

    fn check_route_target(&mut self, route: &Route, candidates: &[Candidate], at: At) {
        match self.kinds.get(&route.kind) {
            Some(decl) if !decl.actions.is_empty() && !decl.actions.contains(&route.action) => {
                let message = format!(
                    "route '{}': kind '{}' has no action '{}' (it declares {})",
                    route.name,
                    route.kind,
                    route.action,
                    decl.actions.join(", ")
                );
                self.error(at, message);
            }
            Some(_) => {}
            None => {
                let named = candidates
                    .iter()
                    .any(|c| matches!(&c.kinds, Kinds::Only(kinds) if kinds.contains(&route.kind)));
                if !named {
                    let message = format!(
                        "route '{}': resource kind '{}' is neither declared under resources nor named by a rule",
                        route.name, route.kind
                    );
                    self.error(at, message);
                }
            }
        }
    }
}
