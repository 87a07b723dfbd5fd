//! The names items are defined under, each checked for duplicates in the order written, good and
//! broken items alike. A broken item (one that did not read, [`Broken`]) whose name was readable
//! counts as defined: references to it are not reported again, and neither are the actions of a
//! broken kind, so that one mistake gives one error. The load fails anyway, on the item's own error.

use std::collections::HashMap;

use super::super::file::{PolicyFile, RouteDoc, Spanned};
use super::parse::{Broken, Namespace};
use super::{At, Compiler};

/// A name as written: where, the name, and the item's label when errors name the item.
pub(super) struct Written {
    at: At,
    name: String,
    label: Option<String>,
}

impl Written {
    fn new<T>(file: usize, name: &Spanned<T>, text: &str, label: Option<String>) -> Written {
        Written {
            at: At::new(file, name),
            name: text.to_owned(),
            label,
        }
    }
}

impl Compiler {
    /// Keeps the names of a file's broken items.
    pub(super) fn keep_broken(&mut self, file: usize, broken: Vec<Broken>) {
        for item in broken {
            self.broken_kind |= item.namespace == Namespace::Kind;
            self.broken_names
                .insert((item.namespace, item.name.clone()));
            self.broken.push((file, item));
        }
    }

    /// Whether an item of `namespace` named `name` was written but did not read.
    pub(super) fn is_broken(&self, namespace: Namespace, name: &str) -> bool {
        // Looked up only for names not defined, so the key is built on error paths alone.
        self.broken_names.contains(&(namespace, name.to_owned()))
    }

    /// Whether some kind did not read: its actions are unknown.
    pub(super) fn any_broken_kind(&self) -> bool {
        self.broken_kind
    }

    /// The broken items of `namespace`, as names written.
    fn broken_names(&self, namespace: Namespace, labelled: bool) -> Vec<Written> {
        self.broken
            .iter()
            .filter(|(_, b)| b.namespace == namespace)
            .map(|(file, b)| Written {
                at: At {
                    file: *file,
                    line: b.line,
                },
                name: b.name.clone(),
                label: labelled.then(|| b.label.clone()),
            })
            .collect()
    }

    /// Reports every name of `namespace` defined twice, in the order the names are written.
    fn register(&mut self, mut names: Vec<Written>, namespace: Namespace) {
        names.sort_by_key(|w| (w.at.file, w.at.line));
        let mut first: HashMap<String, At> = HashMap::new();
        for written in names {
            if written.name.trim().is_empty() {
                continue;
            }
            let Some(&at) = first.get(&written.name) else {
                first.insert(written.name, written.at);
                continue;
            };
            let place = self.place(at);
            let name = &written.name;
            let message = match namespace {
                Namespace::List => format!("list '{name}' is defined twice, first at {place}"),
                Namespace::Kind => {
                    format!("resource kind '{name}' is declared twice, first at {place}")
                }
                Namespace::Policy => format!("policy '{name}' is defined twice, first at {place}"),
                Namespace::Candidate => format!(
                    "'{name}' is defined twice, first at {place} (rules, chat policies and permissions share one namespace)"
                ),
                Namespace::Route => format!("route '{name}' is defined twice, first at {place}"),
            };
            match written.label {
                Some(label) => self.within(label, |c| c.error(written.at, message)),
                None => self.error(written.at, message),
            }
        }
    }

    /// Checks the names of lists, kinds and named policies for duplicates.
    pub(super) fn register_first_pass(&mut self, files: &[(usize, PolicyFile)]) {
        let mut lists = self.broken_names(Namespace::List, false);
        let mut kinds = self.broken_names(Namespace::Kind, false);
        let mut policies = self.broken_names(Namespace::Policy, false);
        for (file, doc) in files {
            let file = *file;
            lists.extend(doc.lists.keys().map(|n| Written::new(file, n, n, None)));
            let kind =
                |r: &super::super::file::ResourceDoc| Written::new(file, &r.kind, &r.kind, None);
            kinds.extend(doc.resources.iter().map(kind));
            let policy =
                |p: &super::super::file::PolicyDoc| Written::new(file, &p.name, &p.name, None);
            policies.extend(doc.policies.iter().map(policy));
        }
        self.register(lists, Namespace::List);
        self.register(kinds, Namespace::Kind);
        self.register(policies, Namespace::Policy);
    }

    /// Checks the names of rules, chat policies and permissions (one namespace), and of routes,
    /// for duplicates.
    pub(super) fn register_second_pass(&mut self, files: &[(usize, PolicyFile)]) {
        let mut candidates = self.broken_names(Namespace::Candidate, true);
        let mut routes = self.broken_names(Namespace::Route, true);
        for (file, doc) in files {
            let file = *file;
            for rule in &doc.rules {
                let label = format!("rule '{}'", rule.name.as_str());
                candidates.push(Written::new(file, &rule.name, &rule.name, Some(label)));
            }
            for chat in &doc.chat_policies {
                let label = format!("chat policy '{}'", chat.name.as_str());
                candidates.push(Written::new(file, &chat.name, &chat.name, Some(label)));
            }
            for permission in &doc.permissions {
                let label = format!("permission '{}'", permission.name.as_str());
                let name = &permission.name;
                candidates.push(Written::new(file, name, name, Some(label)));
            }
            for route in &doc.routes {
                routes.push(route_name(file, route));
            }
        }
        self.register(candidates, Namespace::Candidate);
        self.register(routes, Namespace::Route);
    }
}

/// A route's errors name the route's first line: the route as a whole is at fault.
fn route_name(file: usize, route: &Spanned<RouteDoc>) -> Written {
    let label = format!("route '{}'", route.name);
    Written::new(file, route, &route.name, Some(label))
}
