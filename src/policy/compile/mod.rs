//! Policy files to a validated [`PolicySet`], all or nothing.
//!
//! Every problem found is collected with its file and line, so one load reports them all; any problem
//! means no set at all. The line is the one the parser recorded for the node at fault
//! ([`super::file::Spanned`]); the text is never searched again.
//!
//! `mod.rs` drives the two passes; `kinds` reads settings, revocations and resource kinds, `rules`
//! the rules, chat policies, permissions and named policies, `conditions` their conditions, and
//! `route_checks` the route table's checks against the rest of the set.

mod conditions;
use super::hint;
mod kinds;
mod parse;
mod references;
mod route_checks;
mod rules;

use std::collections::{BTreeMap, HashMap};

use super::file::{OneOrMany, PolicyDoc, PolicyFile, RouteDoc, Spanned, line_of};
use super::model::{ErrorFormat, KindDecl, Modes, Revocations, Strategy};
use super::set::{Parts, PolicySet};
use super::source::Source;

pub use super::problem::{LoadError, LoadErrors};

/// Rule priorities are bounded so that they stay readable and can never overflow.
pub const MAX_PRIORITY: i64 = 1_000_000;

/// Compiles a policy set from its files. `list_overrides` replace lists of the same name (the built-in
/// Feeds preset takes its feed groups from the configuration this way).
pub fn compile(
    sources: &[Source],
    list_overrides: &BTreeMap<String, Vec<String>>,
) -> Result<PolicySet, LoadErrors> {
    hint::reset_budget();
    let mut c = Compiler {
        sources: sources.to_vec(),
        ..Compiler::default()
    };
    let mut files = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        if let Some(file) = c.parse(source) {
            files.push((index, file));
        }
    }
    c.collect(&files, list_overrides);
    let set = c.build(files);
    if c.errors.is_empty() {
        set.ok_or(LoadErrors(c.errors))
    } else {
        Err(LoadErrors(c.errors))
    }
}

/// The largest policy file accepted.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;
/// The deepest nesting of flow-style brackets (`[`, `{`) accepted, counted over the whole text.
/// Nested flow collections take the YAML parser time that grows with the square of their depth, and
/// no policy needs more than a few levels.
pub const MAX_FLOW_DEPTH: usize = 64;
/// The deepest indentation accepted, in columns: block-style nesting is bounded by it.
pub const MAX_INDENT: usize = 256;
/// The most rules, policies, permissions and routes one set may hold.
pub const MAX_ITEMS: usize = 50_000;
/// The most actions one kind may have: `AllowedActions` decides each of them.
pub const MAX_ACTIONS_PER_KIND: usize = 256;

/// Refuses, before parsing, a file whose size or nesting would make parsing it costly: a policy
/// file, or a test suite.
pub fn check_file_shape(text: &str) -> Result<(), String> {
    if text.len() > MAX_FILE_BYTES {
        return Err(format!(
            "the file has {} bytes, more than the {MAX_FILE_BYTES} a policy file may have",
            text.len()
        ));
    }
    let mut depth = 0usize;
    for byte in text.bytes() {
        match byte {
            b'[' | b'{' => {
                depth += 1;
                if depth > MAX_FLOW_DEPTH {
                    return Err(format!("brackets nest deeper than {MAX_FLOW_DEPTH} levels"));
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    for (index, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches([' ', '\t']).len();
        if indent > MAX_INDENT {
            return Err(format!(
                "line {} is indented more than {MAX_INDENT} columns",
                index + 1
            ));
        }
    }
    Ok(())
}

#[derive(Default)]
struct Compiler {
    sources: Vec<Source>,
    errors: Vec<LoadError>,
    strategy: Option<(Strategy, usize)>,
    modes: Modes,
    route_errors: ErrorFormat,
    lists: BTreeMap<String, Vec<String>>,
    kinds: BTreeMap<String, KindDecl>,
    /// Where each kind is declared.
    kind_places: HashMap<String, At>,
    policy_names: HashMap<String, usize>,
    /// Where each named policy is defined, by id.
    policy_places: Vec<At>,
    /// The item being compiled ("rule 'x'"), which every error names.
    item: Option<String>,
    /// Problems that do not stop a load.
    warnings: Vec<LoadError>,
    /// Roles and groups as rules, chat policies and named policies use them, for warnings.
    usage: references::Usage,
    revocations: Revocations,
    revocations_seen: bool,
    /// Feed groups of kinds, read once every list is known.
    feed_groups: Vec<(String, OneOrMany, At)>,
}

/// Where a problem was written: the file (its index in the load) and the line of the node at fault.
#[derive(Debug, Clone, Copy)]
struct At {
    file: usize,
    line: Option<usize>,
}

impl At {
    fn new<T>(file: usize, node: &Spanned<T>) -> At {
        At {
            file,
            line: line_of(node),
        }
    }

    /// The place of `node`, in the same file; this place when the parser recorded none for it (a
    /// defaulted field).
    fn of<T>(self, node: &Spanned<T>) -> At {
        At {
            file: self.file,
            line: line_of(node).or(self.line),
        }
    }

    /// The place of `node` when there is one, else this place.
    fn of_opt<T>(self, node: Option<&Spanned<T>>) -> At {
        node.map_or(self, |node| self.of(node))
    }
}

impl Compiler {
    fn parse(&mut self, source: &Source) -> Option<PolicyFile> {
        if source.text.trim().is_empty() {
            return Some(PolicyFile::default());
        }
        if let Err(message) = check_file_shape(&source.text) {
            self.errors.push(LoadError {
                file: source.path.clone(),
                line: None,
                message,
            });
            return None;
        }
        let (file, problems) = parse::parse_file(&source.text);
        for problem in problems {
            self.errors.push(LoadError {
                file: source.path.clone(),
                line: problem.line,
                message: problem.message,
            });
        }
        // A file with problems still gives its clean items, so their own problems are reported
        // too; the load fails either way.
        Some(file)
    }

    /// The error `message` at `at`, naming the item being compiled unless the message already does.
    fn error(&mut self, at: At, message: impl Into<String>) {
        let error = self.problem(at, message.into());
        self.errors.push(error);
    }

    /// A problem that does not stop the load, reported as an error is.
    fn warning(&mut self, at: At, message: impl Into<String>) {
        let warning = self.problem(at, message.into());
        self.warnings.push(warning);
    }

    fn problem(&self, at: At, message: String) -> LoadError {
        let message = match &self.item {
            Some(item) if !message.starts_with(item.as_str()) => format!("{item}: {message}"),
            _ => message,
        };
        LoadError {
            file: self.file_name(at),
            line: at.line,
            message,
        }
    }

    fn file_name(&self, at: At) -> String {
        self.sources
            .get(at.file)
            .map(|source| source.path.clone())
            .unwrap_or_default()
    }

    /// `file:line` of `at`, as errors print it.
    fn place(&self, at: At) -> String {
        match at.line {
            Some(line) => format!("{}:{line}", self.file_name(at)),
            None => self.file_name(at),
        }
    }

    /// Runs `f` with every error it reports naming `item`.
    fn within<R>(&mut self, item: String, f: impl FnOnce(&mut Self) -> R) -> R {
        let outer = self.item.replace(item);
        let result = f(self);
        self.item = outer;
        result
    }

    /// First pass: settings, lists, kinds and policy names, which later items refer to.
    fn collect(
        &mut self,
        files: &[(usize, PolicyFile)],
        list_overrides: &BTreeMap<String, Vec<String>>,
    ) {
        for (index, file) in files {
            if let Some(settings) = &file.settings {
                self.settings(settings, *index);
            }
            if let Some(doc) = &file.revocations {
                self.revocations(doc, *index);
            }
            for (name, values) in &file.lists {
                if self
                    .lists
                    .insert(name.to_string(), values.clone())
                    .is_some()
                {
                    let at = At::new(*index, name);
                    self.error(at, format!("list '{}' is defined twice", name.as_str()));
                }
            }
            for resource in &file.resources {
                let at = At::new(*index, &resource.kind);
                let label = format!("kind '{}'", resource.kind.as_str());
                let decl = self.within(label, |c| c.kind_decl(resource, at));
                if self.kinds.insert(resource.kind.to_string(), decl).is_some() {
                    let first = self.kind_places.get(resource.kind.as_str()).copied();
                    let message = format!(
                        "resource kind '{}' is declared twice{}",
                        resource.kind.as_str(),
                        self.first_at(first)
                    );
                    self.error(at, message);
                } else {
                    self.kind_places.insert(resource.kind.to_string(), at);
                }
            }
            for policy in &file.policies {
                let next = self.policy_names.len();
                let at = At::new(*index, &policy.name);
                let name = policy.name.as_str();
                if let Some(&first) = self.policy_names.get(name) {
                    let first = self.policy_places.get(first).copied();
                    let message =
                        format!("policy '{name}' is defined twice{}", self.first_at(first));
                    self.error(at, message);
                } else {
                    self.policy_names.insert(name.to_owned(), next);
                    self.policy_places.push(at);
                }
            }
        }
        for (name, values) in list_overrides {
            self.lists.insert(name.clone(), values.clone());
        }
        self.resolve_feed_groups();
    }

    /// `, first at file:line` for a name defined twice.
    fn first_at(&self, first: Option<At>) -> String {
        first.map_or_else(String::new, |at| format!(", first at {}", self.place(at)))
    }

    /// Second pass: named policies and candidates, then the set.
    fn build(&mut self, files: Vec<(usize, PolicyFile)>) -> Option<PolicySet> {
        let mut policy_docs: Vec<(usize, PolicyDoc)> = Vec::new();
        let mut candidates = Vec::new();
        let mut names: HashMap<String, At> = HashMap::new();
        let mut route_docs: Vec<(usize, Spanned<RouteDoc>)> = Vec::new();
        for (index, file) in files {
            route_docs.extend(file.routes.into_iter().map(|r| (index, r)));
            policy_docs.extend(file.policies.into_iter().map(|p| (index, p)));
            for rule in file.rules {
                let at = At::new(index, &rule.name);
                let label = format!("rule '{}'", rule.name.as_str());
                candidates.extend(self.within(label, |c| {
                    c.unique_name(&mut names, &rule.name, at);
                    c.rule(rule, at)
                }));
            }
            for chat in file.chat_policies {
                let at = At::new(index, &chat.name);
                let label = format!("chat policy '{}'", chat.name.as_str());
                candidates.extend(self.within(label, |c| {
                    c.unique_name(&mut names, &chat.name, at);
                    c.chat_policy(chat, at)
                }));
            }
            for permission in file.permissions {
                let at = At::new(index, &permission.name);
                let label = format!("permission '{}'", permission.name.as_str());
                candidates.extend(self.within(label, |c| {
                    c.unique_name(&mut names, &permission.name, at);
                    c.permission(permission, at)
                }));
            }
        }
        let policies = self.policies(policy_docs);
        let routes = self.routes(route_docs, &candidates);
        self.role_warnings();
        let strategy = self.strategy.map(|(s, _)| s).unwrap_or_default();
        let items = candidates.len() + policies.len() + routes.routes().len();
        if items > MAX_ITEMS {
            self.errors.push(LoadError {
                file: String::new(),
                line: None,
                message: format!("the set has {items} rules, policies, permissions and routes, more than {MAX_ITEMS}"),
            });
        }
        if !self.errors.is_empty() {
            return None;
        }
        let mut set = PolicySet::new(
            Parts {
                strategy,
                modes: self.modes,
                route_errors: self.route_errors,
                candidates,
                policies,
                kinds: std::mem::take(&mut self.kinds),
                revocations: std::mem::take(&mut self.revocations),
                routes,
            },
            &self.sources,
        );
        if let Some(kind) = set.kind_with_most_actions(MAX_ACTIONS_PER_KIND) {
            self.errors.push(LoadError {
                file: String::new(),
                line: None,
                message: format!("kind '{kind}' has more than {MAX_ACTIONS_PER_KIND} actions (declared or named by rules)"),
            });
            return None;
        }
        set.set_warnings(std::mem::take(&mut self.warnings));
        Some(set)
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    /// The `line: message` of every error of one file.
    fn errors(text: &str) -> Vec<(Option<usize>, String)> {
        let source = Source {
            path: "p.yaml".to_owned(),
            text: text.to_owned(),
        };
        let errors = compile(&[source], &BTreeMap::new()).expect_err("the file is invalid");
        errors.0.into_iter().map(|e| (e.line, e.message)).collect()
    }

    fn line_of_error(errors: &[(Option<usize>, String)], fragment: &str) -> Option<usize> {
        let found = errors.iter().find(|(_, m)| m.contains(fragment));
        found
            .unwrap_or_else(|| panic!("no '{fragment}' in {errors:?}"))
            .0
    }

    #[test]
    fn condition_errors_point_at_the_key_at_fault() {
        let errors = errors(
            "rules:\n  - name: r\n    effect: allow\n    resource: feed\n    actions: [read]\n    when:\n      roles: [admin]\n      principal: robot\n      in: { id: \"$nope\" }\n  - name: s\n    effect: allow\n    resource: feed\n    actions: [read]\n    unless: {}\n",
        );
        assert_eq!(line_of_error(&errors, "principal must be"), Some(8));
        assert_eq!(line_of_error(&errors, "list 'nope'"), Some(9));
        assert_eq!(line_of_error(&errors, "empty condition"), Some(14));
    }

    #[test]
    fn a_bad_effect_points_at_its_rule_and_a_bad_chat_action_at_itself() {
        let errors = errors(
            "rules:\n  - name: r\n    effect: alow\n    resource: feed\n    actions: [read]\nchat_policies:\n  - name: c\n    resources: [ReadChannel]\n    roles: [user]\n    action: Perhaps\n    priority: 10\n",
        );
        assert_eq!(line_of_error(&errors, "effect must be"), Some(2));
        assert_eq!(line_of_error(&errors, "action must be"), Some(10));
    }

    #[test]
    fn a_route_error_points_at_the_route_even_when_name_is_not_its_first_key() {
        let errors = errors(
            "routes:\n  - name: ok\n    path: /a\n    public: true\n  - methods: [GET]\n    name: ''\n    path: /b\n    public: true\n",
        );
        assert_eq!(line_of_error(&errors, "every route needs a name"), Some(5));
    }

    #[test]
    fn yaml_errors_keep_the_parser_line_without_its_position_suffix() {
        let errors = errors(
            "rules:\n  - name: a\n    effect: allow\n    resource: 5\n    actions: [read]\n",
        );
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, Some(4), "{errors:?}");
        assert!(errors[0].1.starts_with("rule 'a': "), "{errors:?}");
        assert!(!errors[0].1.contains(" at line "), "{errors:?}");
    }

    const DOC_KIND: &str = "resources:\n  - kind: doc\n    actions: [read, write]\n";

    /// A rule `effect` over `doc`'s `read` with `extra` (indented as the rule's keys).
    fn rule_with(effect: &str, extra: &str) -> String {
        format!(
            "{DOC_KIND}rules:\n  - name: r\n    effect: {effect}\n    resource: doc\n    actions: [read]\n{extra}"
        )
    }

    #[test]
    fn a_condition_that_holds_nothing_is_refused_whatever_its_effect() {
        let conditions = [
            ("when:\n      all: []\n", "all needs one or more conditions"),
            (
                "when:\n      equals: {}\n",
                "equals needs one or more operands",
            ),
            ("when:\n      in: {}\n", "in needs one or more operands"),
            (
                "when:\n      is_principal: []\n",
                "is_principal needs one or more operands",
            ),
            (
                "unless:\n      refers_to_principal: []\n",
                "refers_to_principal needs one or more operands",
            ),
            (
                "unless:\n      all: []\n",
                "all needs one or more conditions",
            ),
        ];
        for effect in ["allow", "deny"] {
            for (condition, message) in conditions {
                let text = rule_with(effect, &format!("    {condition}"));
                let errors = errors(&text);
                assert!(
                    errors.iter().any(|(_, m)| m.contains(message)),
                    "{effect} {condition}: {errors:?}"
                );
            }
        }
    }

    #[test]
    fn a_key_written_without_a_value_is_refused_not_read_as_left_out() {
        for (extra, key) in [
            ("    when:\n", "when"),
            ("    unless:\n", "unless"),
            ("    id:\n", "id"),
            ("    when:\n      roles: [admin]\n      cel:\n", "cel"),
            ("    when:\n      roles: [admin]\n      not: ~\n", "not"),
        ] {
            let errors = errors(&rule_with("allow", extra));
            let message = format!("'{key}' has no value");
            assert!(
                errors.iter().any(|(_, m)| m.contains(&message)),
                "{extra}: {errors:?}"
            );
        }
    }

    #[test]
    fn a_tag_anywhere_in_an_item_is_refused() {
        // YAML's own `!!str` names the type the value already has; other tags are meaningless here.
        let texts = [
            rule_with("!deny allow", ""),
            rule_with("allow", "    when: !x\n      roles: [admin]\n"),
            format!("{DOC_KIND}lists:\n  staff: !x [a, b]\n"),
            format!("{DOC_KIND}settings: !x\n  route_errors: problem\n"),
        ];
        for text in texts {
            let errors = errors(&text);
            assert!(
                errors.iter().any(|(_, m)| m.contains("tags")),
                "{text}: {errors:?}"
            );
        }
    }
}
