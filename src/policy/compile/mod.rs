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
mod names;
mod parse;
mod references;
mod route_checks;
mod rules;

use std::collections::{BTreeMap, HashMap, HashSet};

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
        if let Some((file, broken)) = c.parse(source) {
            c.keep_broken(index, broken);
            files.push((index, file));
        }
    }
    c.collect(&files, list_overrides);
    let set = c.build(files);
    if c.errors.is_empty() {
        set.ok_or(LoadErrors(c.errors))
    } else {
        Err(LoadErrors(in_reading_order(c.errors, sources)))
    }
}

/// The errors file by file in load order, each file's from its first line down (the passes find them
/// in another order), so a reader fixes them top to bottom. Errors without a line lead their file.
fn in_reading_order(mut errors: Vec<LoadError>, sources: &[Source]) -> Vec<LoadError> {
    let position = |file: &str| sources.iter().position(|s| s.path == file);
    errors.sort_by_key(|e| (position(&e.file), e.line));
    errors
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
    /// Named policies' ids: their places in the order read.
    policy_names: HashMap<String, usize>,
    /// Items that did not read but whose names did, by file.
    broken: Vec<(usize, parse::Broken)>,
    /// The same names, to look up.
    broken_names: HashSet<(parse::Namespace, String)>,
    /// Whether some kind did not read.
    broken_kind: bool,
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
    fn parse(&mut self, source: &Source) -> Option<(PolicyFile, Vec<parse::Broken>)> {
        if source.text.trim().is_empty() {
            return Some((PolicyFile::default(), Vec::new()));
        }
        if let Err(message) = check_file_shape(&source.text) {
            self.errors.push(LoadError {
                file: source.path.clone(),
                line: None,
                message,
            });
            return None;
        }
        let (file, problems, broken) = parse::parse_file(&source.text);
        for problem in problems {
            self.errors.push(LoadError {
                file: source.path.clone(),
                line: problem.line,
                message: problem.message,
            });
        }
        // A file with problems still gives its clean items, so their own problems are reported
        // too; the load fails either way.
        Some((file, broken))
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
        self.register_first_pass(files);
        for (index, file) in files {
            if let Some(settings) = &file.settings {
                self.settings(settings, *index);
            }
            if let Some(doc) = &file.revocations {
                self.revocations(doc, *index);
            }
            for (name, values) in &file.lists {
                self.lists
                    .entry(name.to_string())
                    .or_insert_with(|| values.clone());
            }
            for resource in &file.resources {
                let at = At::new(*index, &resource.kind);
                let label = format!("kind '{}'", resource.kind.as_str());
                let decl = self.within(label, |c| c.kind_decl(resource, at));
                self.kinds.entry(resource.kind.to_string()).or_insert(decl);
            }
        }
        // Ids are places in the order `build` compiles the policies; a name defined twice keeps
        // its first.
        let policies = files.iter().flat_map(|(_, file)| &file.policies);
        for (id, policy) in policies.enumerate() {
            self.policy_names
                .entry(policy.name.to_string())
                .or_insert(id);
        }
        for (name, values) in list_overrides {
            self.lists.insert(name.clone(), values.clone());
        }
        self.resolve_feed_groups();
    }

    /// Second pass: named policies and candidates, then the set.
    fn build(&mut self, files: Vec<(usize, PolicyFile)>) -> Option<PolicySet> {
        self.register_second_pass(&files);
        let mut policy_docs: Vec<(usize, PolicyDoc)> = Vec::new();
        let mut candidates = Vec::new();
        let mut route_docs: Vec<(usize, Spanned<RouteDoc>)> = Vec::new();
        for (index, file) in files {
            route_docs.extend(file.routes.into_iter().map(|r| (index, r)));
            policy_docs.extend(file.policies.into_iter().map(|p| (index, p)));
            for rule in file.rules {
                let at = At::new(index, &rule.name);
                let label = format!("rule '{}'", rule.name.as_str());
                candidates.extend(self.within(label, |c| {
                    c.named(&rule.name, at);
                    c.rule(rule, at)
                }));
            }
            for chat in file.chat_policies {
                let at = At::new(index, &chat.name);
                let label = format!("chat policy '{}'", chat.name.as_str());
                candidates.extend(self.within(label, |c| {
                    c.named(&chat.name, at);
                    c.chat_policy(chat, at)
                }));
            }
            for permission in file.permissions {
                let at = At::new(index, &permission.name);
                let label = format!("permission '{}'", permission.name.as_str());
                candidates.extend(self.within(label, |c| {
                    c.named(&permission.name, at);
                    c.permission(permission, at)
                }));
            }
        }
        let policies = self.policies(policy_docs);
        let routes = self.routes(route_docs, &candidates);
        let roles = self.names_used(references::Family::Role);
        let groups = self.names_used(references::Family::Group);
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
        set.set_names(roles, groups);
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

    /// The messages of every error, for a file that must fail to load.
    fn messages(text: &str) -> Vec<String> {
        errors(text).into_iter().map(|(_, m)| m).collect()
    }

    const DOC_KIND: &str = "resources:\n  - kind: doc\n    actions: [read]\n";

    #[test]
    fn a_typo_inside_a_named_policy_is_one_error_not_one_per_reference() {
        let text = format!(
            "{DOC_KIND}policies:\n  - name: editors\n    type: role\n    rols: [editor]\n  - name: both\n    type: aggregated\n    policies: [editors]\npermissions:\n  - name: p\n    type: resource\n    resource: doc\n    policies: [editors, both]\n"
        );
        assert_eq!(
            messages(&text),
            ["policy 'editors': unknown field 'rols' (did you mean 'roles'?)"]
        );
    }

    #[test]
    fn a_broken_kind_is_one_error_and_its_actions_are_not_judged() {
        let text = "resources:\n  - kind: doc\n    actions: [read]\n    ownr: attributes.owner\nrules:\n  - name: r\n    effect: allow\n    resource: doc\n    actions: [read]\n  - name: s\n    effect: allow\n    resource: \"*\"\n    actions: [read]\nroutes:\n  - name: get\n    methods: [GET]\n    path: /docs/{d}\n    resource: doc\n    id: \"{d}\"\n    action: read\n";
        assert_eq!(
            messages(text),
            ["kind 'doc': unknown field 'ownr' (did you mean 'owner'?)"]
        );
    }

    #[test]
    fn a_broken_list_is_one_error_and_its_uses_are_not_reported() {
        let text = format!(
            "{DOC_KIND}lists:\n  reviewers: {{ ann: 1 }}\nrules:\n  - name: r\n    effect: allow\n    resource: doc\n    actions: [read]\n    when:\n      in: {{ principal.id: $reviewers }}\n"
        );
        let found = messages(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("list 'reviewers': "), "{found:?}");
    }

    #[test]
    fn a_broken_item_still_counts_for_names_defined_twice() {
        let text = format!(
            "{DOC_KIND}policies:\n  - name: p\n    type: role\n    rols: [a]\n  - name: p\n    type: role\n    roles: [a]\nrules:\n  - name: r\n    efect: allow\n    resource: doc\n    actions: [read]\npermissions:\n  - name: r\n    type: resource\n    resource: doc\n    policies: [p]\nroutes:\n  - name: get\n    pth: /a\n  - name: get\n    methods: [GET]\n    path: /b\n    public: true\n"
        );
        let found = errors(&text);
        let lines: Vec<Option<usize>> = found.iter().map(|(l, _)| *l).collect();
        assert_eq!(found.len(), 6, "{found:?}");
        assert_eq!(
            line_of_error(&found, "policy 'p' is defined twice, first at p.yaml:5"),
            Some(8)
        );
        assert_eq!(
            line_of_error(
                &found,
                "permission 'r': 'r' is defined twice, first at p.yaml:12"
            ),
            Some(17)
        );
        assert_eq!(
            line_of_error(&found, "route 'get' is defined twice, first at p.yaml:22"),
            Some(24)
        );
        assert!(lines.contains(&Some(23)), "{found:?}");
    }

    #[test]
    fn a_misindented_key_is_one_error_on_its_line() {
        let text = format!(
            "{DOC_KIND}rules:\n  - name: r\n    effect: allow\n    actions: [read]\n    when:\n      roles: [a]\n      resource: doc\n"
        );
        assert_eq!(
            errors(&text),
            [(
                Some(10),
                "rule 'r': 'resource:' at line 10 is inside 'when' (indented 6 columns); the rule's fields are at 4, so the rule has no 'resource'".to_owned()
            )]
        );
    }

    #[test]
    fn a_key_indented_too_little_gets_an_indentation_hint() {
        let text = format!("{DOC_KIND}rules:\n  - name: r\n    effect: allow\n   resource: doc\n");
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, Some(7), "{found:?}");
        assert!(
            found[0].1.ends_with("(line 7 is indented 3 columns, less than line 6 above it (4): keys of one item line up)"),
            "{found:?}"
        );
    }

    #[test]
    fn a_key_indented_too_far_gets_an_indentation_hint() {
        let text =
            format!("{DOC_KIND}rules:\n  - name: r\n    effect: allow\n      resource: doc\n");
        let found = errors(&text);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, Some(7), "{found:?}");
        assert!(
            found[0].1.ends_with("(line 7 is indented 6 columns, more than line 6 above it (4): keys of one item line up, and a key indented further is read as part of the value above it)"),
            "{found:?}"
        );
    }

    const DOC_READ_WRITE: &str = "resources:\n  - kind: doc\n    actions: [read, write]\n";

    /// A rule `effect` over `doc`'s `read` with `extra` (indented as the rule's keys).
    fn rule_with(effect: &str, extra: &str) -> String {
        format!(
            "{DOC_READ_WRITE}rules:\n  - name: r\n    effect: {effect}\n    resource: doc\n    actions: [read]\n{extra}"
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
            format!("{DOC_READ_WRITE}lists:\n  staff: !x [a, b]\n"),
            format!("{DOC_READ_WRITE}settings: !x\n  route_errors: problem\n"),
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
