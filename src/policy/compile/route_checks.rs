//! The route table, checked against the rest of the set: each route names a kind and action that
//! exist, and never lets the client say who owns the resource.

use super::super::file::{RouteDoc, Spanned};
use super::super::model::{Actions, Body, Candidate, Effect, Kinds, Operand};
use super::super::routes::{Route, RouteTable, ValueSource, compile_route};
use super::conditions::compared_with_principal;
use super::{At, Compiler, hint};

impl Compiler {
    /// Compiles the route table. A route must name a declared kind and an action it declares, and requests no other route already describes. Its kind and action are checked
    /// even when the rest of it is wrong, so that one load reports every problem of a route.
    pub(super) fn routes(
        &mut self,
        docs: Vec<(usize, Spanned<RouteDoc>)>,
        candidates: &[Candidate],
    ) -> RouteTable {
        let mut routes: Vec<Route> = Vec::new();
        for (index, doc) in docs {
            // A route's errors name the route's first line: the route as a whole is at fault.
            let at = At::new(index, &doc);
            let doc = doc.into_inner();
            let label = format!("route '{}'", doc.name);
            let route = self.within(label, |c| c.route(doc, candidates, at));
            if let Some(route) = route {
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
        }
        RouteTable::new(routes)
    }

    /// One route; names defined twice are reported by [`Self::register_second_pass`].
    fn route(&mut self, doc: RouteDoc, candidates: &[Candidate], at: At) -> Option<Route> {
        if doc.name.trim().is_empty() {
            self.error(at, "every route needs a name");
        }
        if !doc.public.unwrap_or(false)
            && let (Some(kind), Some(action)) = (&doc.resource, &doc.action)
        {
            self.check_route_target(kind, action, at);
        }
        match compile_route(doc) {
            Ok(route) => {
                if !route.public {
                    self.check_route_trust(&route, candidates, at);
                }
                Some(route)
            }
            Err(errors) => {
                for e in errors {
                    self.error(at, format!("route: {e}"));
                }
                None
            }
        }
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

    /// The route's kind must be declared, and its action one the kind declares.
    fn check_route_target(&mut self, kind: &str, action: &str, at: At) {
        if kind.trim().is_empty() || action.trim().is_empty() {
            // compile_route reports a missing kind or action.
            return;
        }
        match self.kinds.get(kind) {
            Some(decl) if !decl.actions.iter().any(|a| a == action) => {
                let hint = hint::suggest(action, decl.actions.iter().map(String::as_str));
                self.error(
                    at,
                    format!("kind '{kind}' declares no action '{action}'{hint}"),
                );
            }
            Some(_) => {}
            None => self.declared_kinds(&[kind.to_owned()], at),
        }
    }
}
