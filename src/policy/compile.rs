//! Policy files to a validated [`PolicySet`], all or nothing.
//!
//! Every problem found is collected with its file and line, so one load reports them all; any problem
//! means no set at all.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use super::cel::CelCondition;
use super::file::{
    ChatPolicyDoc, ConditionDoc, OneOrMany, PermissionDoc, PolicyDoc, PolicyFile, ResourceDoc,
    RevocationsDoc, RouteDoc, RuleDoc,
};
use super::model::{
    Actions, Body, Candidate, Condition, Effect, KindDecl, Kinds, Logic, Mode, Modes, NamedPolicy,
    Operand, Origin, PolicyBody, PrincipalFilter, Revocations, Strategy,
};
use super::pattern::Pattern;
use super::routes::{Route, RouteTable, ValueSource, compile_route};
use super::set::{Parts, PolicySet};
use super::source::Source;

/// Rule priorities are bounded so that they stay readable and can never overflow.
pub const MAX_PRIORITY: i64 = 1_000_000;

/// A problem in the policy files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Every problem found in a load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct LoadErrors(pub Vec<LoadError>);

impl fmt::Display for LoadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Compiles a policy set from its files. `list_overrides` replace lists of the same name (the built-in
/// Feeds preset takes its feed groups from the configuration this way).
pub fn compile(
    sources: &[Source],
    list_overrides: &BTreeMap<String, Vec<String>>,
) -> Result<PolicySet, LoadErrors> {
    let mut c = Compiler::default();
    let mut files = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        if let Some(file) = c.parse(source) {
            files.push((index, source, file));
        }
    }
    c.sources = sources.to_vec();
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

/// Collects the operands `condition` compares with the caller.
fn compared_with_principal(condition: &Condition, out: &mut Vec<Operand>) {
    match condition {
        Condition::All(all) | Condition::Any(all) => {
            for c in all {
                compared_with_principal(c, out);
            }
        }
        Condition::Not(inner) => compared_with_principal(inner, out),
        Condition::IsPrincipal(op) | Condition::RefersToPrincipal(op) => out.push(op.clone()),
        _ => {}
    }
}

/// Refuses, before parsing, a file whose size or nesting would make parsing it costly.
fn check_file_shape(text: &str) -> Result<(), String> {
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
    lists: BTreeMap<String, Vec<String>>,
    kinds: BTreeMap<String, KindDecl>,
    policy_names: HashMap<String, usize>,
    revocations: Revocations,
    revocations_seen: bool,
    /// How many items of each name each file has defined so far, to point at duplicates.
    seen: HashMap<(usize, String), usize>,
    /// Feed groups of kinds, read once every list is known.
    feed_groups: Vec<(String, OneOrMany, At)>,
}

/// Where an item was written: the file index and the text that names it.
struct At {
    file: usize,
    key: String,
    value: String,
    /// Which definition of `key: value` in the file (0: the first), for duplicates.
    occurrence: usize,
    /// A field of the item to point at instead of the item itself.
    field: Option<&'static str>,
    /// The top-level key (e.g. `routes`) whose block holds the item, when its names have their own
    /// namespace: a rule of the same name elsewhere in the file is then not mistaken for it.
    section: Option<&'static str>,
}

impl At {
    fn new(file: usize, key: &str, value: &str) -> At {
        At {
            file,
            key: key.to_owned(),
            value: value.to_owned(),
            occurrence: 0,
            field: None,
            section: None,
        }
    }

    fn field(&self, field: &'static str) -> At {
        At {
            file: self.file,
            key: self.key.clone(),
            value: self.value.clone(),
            occurrence: self.occurrence,
            field: Some(field),
            section: self.section,
        }
    }

    fn nth(self, occurrence: usize) -> At {
        At { occurrence, ..self }
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
        match serde_norway::from_str::<PolicyFile>(&source.text) {
            Ok(file) => Some(file),
            Err(e) => {
                let line = e.location().map(|l| l.line());
                let message = e.to_string();
                // serde_norway appends " at line N column M"; the line is reported separately.
                let message = message
                    .split(" at line ")
                    .next()
                    .unwrap_or(&message)
                    .to_owned();
                self.errors.push(LoadError {
                    file: source.path.clone(),
                    line,
                    message,
                });
                None
            }
        }
    }

    fn error(&mut self, at: &At, message: impl Into<String>) {
        let (file, line) = match self.sources.get(at.file) {
            Some(source) => (source.path.clone(), locate(&source.text, at)),
            None => (String::new(), None),
        };
        self.errors.push(LoadError {
            file,
            line,
            message: message.into(),
        });
    }

    /// First pass: settings, lists, kinds and policy names, which later items refer to.
    fn collect(
        &mut self,
        files: &[(usize, &Source, PolicyFile)],
        list_overrides: &BTreeMap<String, Vec<String>>,
    ) {
        for (index, _, file) in files {
            let at = |key: &str, value: &str| At::new(*index, key, value);
            // Duplicates within this file are reported at the later definition.
            let mut in_file: HashMap<String, usize> = HashMap::new();
            let mut nth = |name: &str| {
                let n = in_file.entry(name.to_owned()).or_insert(0);
                *n += 1;
                *n - 1
            };
            if let Some(settings) = &file.settings {
                let value = settings.strategy.as_deref().unwrap_or("priority");
                match (parse_strategy(value, true), self.strategy) {
                    (_, Some(_)) => {
                        self.error(&at("settings", ""), "settings may appear in one file only")
                    }
                    (Ok(strategy), None) => self.strategy = Some((strategy, *index)),
                    (Err(e), None) => self.error(&at("strategy", value), e),
                }
                self.modes(settings, *index);
            }
            if let Some(doc) = &file.revocations {
                self.revocations(doc, *index);
            }
            for (name, values) in &file.lists {
                if self.lists.insert(name.clone(), values.clone()).is_some() {
                    self.error(&at(name, ""), format!("list '{name}' is defined twice"));
                }
            }
            for resource in &file.resources {
                let kind_at =
                    at("kind", &resource.kind).nth(nth(&format!("kind:{}", resource.kind)));
                let decl = self.kind_decl(resource, &kind_at);
                if self.kinds.insert(resource.kind.clone(), decl).is_some() {
                    self.error(
                        &kind_at,
                        format!("resource kind '{}' is declared twice", resource.kind),
                    );
                }
            }
            for policy in &file.policies {
                let policy_at = at("name", &policy.name).nth(nth(&policy.name));
                let next = self.policy_names.len();
                if self
                    .policy_names
                    .insert(policy.name.clone(), next)
                    .is_some()
                {
                    self.error(
                        &policy_at,
                        format!("policy '{}' is defined twice", policy.name),
                    );
                }
            }
        }
        for (name, values) in list_overrides {
            self.lists.insert(name.clone(), values.clone());
        }
        self.resolve_feed_groups();
    }

    /// A kind with `feed` needs its feed groups, each a non-empty name without ':'.
    fn resolve_feed_groups(&mut self) {
        for (kind, groups, at) in std::mem::take(&mut self.feed_groups) {
            let groups = self.values(groups, &at);
            if groups
                .iter()
                .any(|g| g.is_empty() || g.contains(':') || g == "*")
            {
                self.error(&at, "feed groups are names without ':' (and not '*')");
            }
            if let Some(decl) = self.kinds.get_mut(&kind) {
                decl.feed_groups = groups;
            }
        }
    }

    fn revocations(&mut self, doc: &RevocationsDoc, file: usize) {
        let at = At::new(file, "revocations", "");
        if std::mem::replace(&mut self.revocations_seen, true) {
            self.error(&at, "revocations may appear in one file only");
            return;
        }
        if let Some(time) = &doc.app_issued_before {
            self.revocations.app_issued_before = self.time(time, &at.field("app_issued_before"));
        }
        for (user, time) in &doc.users {
            if let Some(cutoff) = self.time(time, &At::new(file, user, time)) {
                self.revocations.users.insert(user.clone(), cutoff);
            }
        }
    }

    /// An RFC 3339 time as seconds since the Unix epoch.
    fn time(&mut self, value: &str, at: &At) -> Option<i64> {
        match humantime::parse_rfc3339_weak(value) {
            Ok(t) => t
                .duration_since(std::time::UNIX_EPOCH)
                .ok()
                .and_then(|d| i64::try_from(d.as_secs()).ok()),
            Err(_) => {
                self.error(at, format!("'{value}' is not an RFC 3339 time"));
                None
            }
        }
    }

    fn kind_decl(&mut self, doc: &ResourceDoc, at: &At) -> KindDecl {
        if doc.kind.trim().is_empty() || doc.kind == "*" {
            self.error(at, "a resource kind needs a name (and cannot be '*')");
        }
        let mut operand = |text: &Option<String>| {
            text.as_deref().and_then(|t| match Operand::parse(t) {
                Ok(op) => Some(op),
                Err(e) => {
                    self.error(at, e);
                    None
                }
            })
        };
        let owner = operand(&doc.owner);
        let feed = operand(&doc.feed);
        let channel = operand(&doc.channel);
        let id_pattern = doc.id.as_deref().and_then(|p| match Pattern::parse(p) {
            Ok(p) => Some(p),
            Err(e) => {
                self.error(at, e);
                None
            }
        });
        if doc.actions.len() > MAX_ACTIONS_PER_KIND {
            self.error(
                at,
                format!(
                    "kind '{}' declares {} actions, more than {MAX_ACTIONS_PER_KIND}",
                    doc.kind,
                    doc.actions.len()
                ),
            );
        }
        match &doc.feed_groups {
            Some(groups) => {
                self.feed_groups
                    .push((doc.kind.clone(), groups.clone(), at.field("feed_groups")));
            }
            None if doc.feed.is_some() => self.error(
                at,
                "a kind with a feed needs feed_groups, so that scope tokens' compact feed ids (userjack) read one way only",
            ),
            None => {}
        }
        let decl = KindDecl {
            id: doc.id.clone(),
            id_pattern,
            owner,
            feed,
            feed_groups: Vec::new(),
            channel,
            actions: doc.actions.clone(),
        };
        for op in [&decl.owner, &decl.feed, &decl.channel]
            .into_iter()
            .flatten()
        {
            if let Operand::Capture(name) = op
                && !has_capture(Some(&decl), name)
            {
                self.error(at, unknown_capture(name));
            }
        }
        decl
    }

    /// Second pass: named policies and candidates, then the set.
    fn build(&mut self, files: Vec<(usize, &Source, PolicyFile)>) -> Option<PolicySet> {
        let mut policy_docs: Vec<(usize, PolicyDoc)> = Vec::new();
        let mut candidates = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        let mut route_docs: Vec<(usize, RouteDoc)> = Vec::new();
        for (index, _, file) in files {
            route_docs.extend(file.routes.into_iter().map(|r| (index, r)));
            for policy in file.policies {
                policy_docs.push((index, policy));
            }
            for rule in file.rules {
                let at = self.item_at(index, &rule.name);
                self.unique_name(&mut names, &rule.name, &at);
                if let Some(c) = self.rule(rule, &at) {
                    candidates.push(c);
                }
            }
            for chat in file.chat_policies {
                let at = self.item_at(index, &chat.name);
                self.unique_name(&mut names, &chat.name, &at);
                if let Some(c) = self.chat_policy(chat, &at) {
                    candidates.push(c);
                }
            }
            for permission in file.permissions {
                let at = self.item_at(index, &permission.name);
                self.unique_name(&mut names, &permission.name, &at);
                if let Some(c) = self.permission(permission, &at) {
                    candidates.push(c);
                }
            }
        }
        let policies = self.policies(policy_docs);
        let routes = self.routes(route_docs, &candidates);
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
        let set = PolicySet::new(
            Parts {
                strategy,
                modes: self.modes,
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
        Some(set)
    }

    /// Compiles the route table. A route must name a kind that is declared or that some rule names, an
    /// action the kind declares (when it declares any), a unique name, and requests no other route
    /// already describes.
    fn routes(&mut self, docs: Vec<(usize, RouteDoc)>, candidates: &[Candidate]) -> RouteTable {
        let mut routes: Vec<Route> = Vec::new();
        let mut names: HashSet<String> = HashSet::new();
        for (index, doc) in docs {
            let at = self.route_at(index, &doc.name);
            if doc.name.trim().is_empty() {
                self.error(&at, "every route needs a name");
            } else if !names.insert(doc.name.clone()) {
                self.error(&at, format!("route '{}' is defined twice", doc.name));
            }
            let route = match compile_route(doc) {
                Ok(route) => route,
                Err(errors) => {
                    for e in errors {
                        self.error(&at, format!("route: {e}"));
                    }
                    continue;
                }
            };
            if !route.public {
                self.check_route_target(&route, candidates, &at);
                self.check_route_trust(&route, candidates, &at);
            }
            if let Some(other) = routes.iter().find(|r| r.same_requests_as(&route)) {
                let message = format!(
                    "route '{}' matches the same requests as route '{}' ({} {})",
                    route.name,
                    other.name,
                    other.methods().join(","),
                    other.template()
                );
                self.error(&at, message);
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
    fn check_route_trust(&mut self, route: &Route, candidates: &[Candidate], at: &At) {
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

    fn check_route_target(&mut self, route: &Route, candidates: &[Candidate], at: &At) {
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

    /// Where route `name` is written in `file` (routes have their own namespace).
    fn route_at(&mut self, file: usize, name: &str) -> At {
        let count = self
            .seen
            .entry((file, format!("route\u{0}{name}")))
            .or_insert(0);
        let at = At {
            occurrence: *count,
            section: Some("routes"),
            ..At::new(file, "name", name)
        };
        *count += 1;
        at
    }

    /// The set's enforcement modes; `route_mode` defaults to `mode`.
    fn modes(&mut self, settings: &super::file::Settings, file: usize) {
        let mut parse = |key: &str, value: Option<&String>| -> Option<Mode> {
            let value = value?;
            match Mode::parse(value) {
                Ok(mode) => Some(mode),
                Err(e) => {
                    self.error(&At::new(file, key, value), e);
                    None
                }
            }
        };
        let checks = parse("mode", settings.mode.as_ref()).unwrap_or_default();
        let routes = parse("route_mode", settings.route_mode.as_ref()).unwrap_or(checks);
        self.modes = Modes { checks, routes };
    }

    /// Where the next item called `name` in `file` is written.
    fn item_at(&mut self, file: usize, name: &str) -> At {
        let count = self.seen.entry((file, name.to_owned())).or_insert(0);
        let at = At {
            occurrence: *count,
            ..At::new(file, "name", name)
        };
        *count += 1;
        at
    }

    fn unique_name(&mut self, names: &mut HashSet<String>, name: &str, at: &At) {
        if name.trim().is_empty() {
            self.error(at, "every rule, chat policy and permission needs a name");
        } else if !names.insert(name.to_owned()) {
            self.error(at, format!("'{name}' is defined twice (rules, chat policies and permissions share one namespace)"));
        }
    }

    fn priority(&mut self, value: Option<i64>, range: (i64, i64), at: &At) -> i32 {
        let value = value.unwrap_or(0);
        if !(range.0..=range.1).contains(&value) {
            self.error(
                at,
                format!("priority {value} is out of range {}..={}", range.0, range.1),
            );
            return 0;
        }
        i32::try_from(value).unwrap_or(0)
    }

    fn kinds(&mut self, resource: OneOrMany, at: &At) -> Kinds {
        let kinds = resource.into_vec();
        if kinds.iter().any(|k| k == "*") {
            return Kinds::Any;
        }
        if kinds.is_empty() || kinds.iter().any(|k| k.trim().is_empty()) {
            self.error(at, "resource must name one or more kinds, or '*'");
        }
        Kinds::Only(kinds)
    }

    fn actions(&mut self, actions: OneOrMany, at: &At) -> Actions {
        let actions = actions.into_vec();
        if actions.iter().any(|a| a == "*") {
            return Actions::Any;
        }
        if actions.is_empty() || actions.iter().any(|a| a.trim().is_empty()) {
            self.error(at, "actions must name one or more actions, or '*'");
        }
        Actions::Only(actions)
    }

    fn id_pattern(&mut self, id: &Option<String>, at: &At) -> Option<Pattern> {
        id.as_deref().and_then(|p| match Pattern::parse(p) {
            Ok(p) => Some(p),
            Err(e) => {
                self.error(at, e);
                None
            }
        })
    }

    fn rule(&mut self, doc: RuleDoc, at: &At) -> Option<Candidate> {
        let effect = match doc.effect.to_ascii_lowercase().as_str() {
            "allow" => Effect::Allow,
            "deny" => Effect::Deny,
            other => {
                self.error(at, format!("effect must be allow or deny, not '{other}'"));
                Effect::Deny
            }
        };
        let priority = self.priority(doc.priority, (-MAX_PRIORITY, MAX_PRIORITY), at);
        let kinds = self.kinds(doc.resource, at);
        let actions = self.actions(doc.actions, at);
        let id_pattern = self.id_pattern(&doc.id, at);
        let when = doc.when.map(|c| Box::new(self.condition(c, &kinds, at)));
        let unless = doc.unless.map(|c| Box::new(self.condition(c, &kinds, at)));
        Some(Candidate {
            name: doc.name,
            description: doc.description,
            origin: Origin::Rule,
            priority,
            kinds,
            id: doc.id,
            id_pattern,
            actions,
            body: Body::Rule {
                effect,
                when,
                unless,
            },
        })
    }

    fn chat_policy(&mut self, doc: ChatPolicyDoc, at: &At) -> Option<Candidate> {
        let effect = match doc.action.as_str() {
            "Allow" | "allow" => Effect::Allow,
            "Deny" | "deny" => Effect::Deny,
            other => {
                self.error(at, format!("action must be Allow or Deny, not '{other}'"));
                Effect::Deny
            }
        };
        let priority = self.priority(Some(doc.priority), (1, 999), at);
        let kinds = match doc.kinds {
            Some(kinds) => self.kinds(kinds, at),
            None => Kinds::Any,
        };
        let actions = self.actions(doc.resources, at);
        let roles = doc.roles.into_vec();
        let mut conditions = Vec::new();
        if !roles.iter().any(|r| r == "*") {
            if roles.is_empty() {
                self.error(at, "roles must name one or more roles, or '*'");
            }
            // Stream Chat matches a policy's roles against the user's global role and its role in the
            // resource's channel.
            conditions.push(Condition::Any(vec![
                Condition::Roles(roles.clone()),
                Condition::ChannelRoles(roles),
            ]));
        }
        if doc.owner {
            self.require_decl(&kinds, |d| d.owner.is_some(), "owner", at);
            conditions.push(Condition::Owner);
        }
        let when = match conditions.len() {
            0 => None,
            1 => conditions.pop().map(Box::new),
            _ => Some(Box::new(Condition::All(conditions))),
        };
        Some(Candidate {
            name: doc.name,
            description: String::new(),
            origin: Origin::ChatPolicy,
            priority,
            kinds,
            id: None,
            id_pattern: None,
            actions,
            body: Body::Rule {
                effect,
                when,
                unless: None,
            },
        })
    }

    fn permission(&mut self, doc: PermissionDoc, at: &At) -> Option<Candidate> {
        let (kinds, actions) = match doc.kind.as_str() {
            "resource" => {
                let Some(resource) = doc.resource else {
                    self.error(at, "a resource permission needs a resource");
                    return None;
                };
                if doc.scopes.is_some() {
                    self.error(
                        at,
                        "a resource permission applies to every action; use type: scope for scopes",
                    );
                }
                (self.kinds(resource, at), Actions::Any)
            }
            "scope" => {
                let kinds = match doc.resource {
                    Some(resource) => self.kinds(resource, at),
                    None => Kinds::Any,
                };
                let scopes = doc.scopes.unwrap_or_default();
                (kinds, self.actions(OneOrMany::Many(scopes), at))
            }
            other => {
                self.error(
                    at,
                    format!("permission type must be resource or scope, not '{other}'"),
                );
                return None;
            }
        };
        let strategy = self.counting_strategy(doc.strategy.as_deref(), at);
        let policies = self.policy_refs(&doc.policies, at);
        if doc.policies.is_empty() {
            self.error(at, "a permission needs one or more policies");
        }
        let priority = self.priority(doc.priority, (-MAX_PRIORITY, MAX_PRIORITY), at);
        let id_pattern = self.id_pattern(&doc.id, at);
        Some(Candidate {
            name: doc.name,
            description: doc.description,
            origin: Origin::Permission,
            priority,
            kinds,
            id: doc.id,
            id_pattern,
            actions,
            body: Body::Permission { policies, strategy },
        })
    }

    fn counting_strategy(&mut self, value: Option<&str>, at: &At) -> Strategy {
        match parse_strategy(value.unwrap_or("unanimous"), false) {
            Ok(s) => s,
            Err(e) => {
                self.error(at, e);
                Strategy::Unanimous
            }
        }
    }

    fn policy_refs(&mut self, names: &[String], at: &At) -> Vec<usize> {
        let mut ids = Vec::new();
        for name in names {
            match self.policy_names.get(name) {
                Some(&id) => ids.push(id),
                None => self.error(at, format!("policy '{name}' is not defined")),
            }
        }
        ids
    }

    fn policies(&mut self, docs: Vec<(usize, PolicyDoc)>) -> Vec<NamedPolicy> {
        let mut compiled = Vec::with_capacity(docs.len());
        let mut edges: Vec<Vec<usize>> = Vec::with_capacity(docs.len());
        let mut places = Vec::with_capacity(docs.len());
        for (file, doc) in docs {
            let at = self.item_at(file, &doc.name);
            places.push((file, doc.name.clone()));
            let policy = self.policy(doc, &at);
            edges.push(match &policy.body {
                PolicyBody::Aggregated { policies, .. } => policies.clone(),
                _ => Vec::new(),
            });
            compiled.push(policy);
        }
        if let Some(cycle) = find_cycle(&edges) {
            let names: Vec<String> = cycle
                .iter()
                .filter_map(|&i| places.get(i).map(|(_, n)| n.clone()))
                .collect();
            if let Some((file, name)) = cycle.first().and_then(|&i| places.get(i)).cloned() {
                self.error(
                    &At::new(file, "name", &name),
                    format!("aggregated policies form a cycle: {}", names.join(" -> ")),
                );
            }
        }
        compiled
    }

    fn policy(&mut self, doc: PolicyDoc, at: &At) -> NamedPolicy {
        let logic = match doc.logic.as_deref().map(str::to_ascii_lowercase).as_deref() {
            None | Some("positive") => Logic::Positive,
            Some("negative") => Logic::Negative,
            Some(other) => {
                self.error(
                    at,
                    format!("logic must be positive or negative, not '{other}'"),
                );
                Logic::Positive
            }
        };
        let list = |values: Option<Vec<String>>, field: &str, this: &mut Self| -> Vec<String> {
            let values = values.unwrap_or_default();
            if values.is_empty() {
                this.error(at, format!("a {} policy needs {field}", doc.kind));
            }
            values
        };
        let body = match doc.kind.as_str() {
            "role" => PolicyBody::Role(list(doc.roles, "roles", self)),
            "group" => PolicyBody::Group(list(doc.groups, "groups", self)),
            "user" => PolicyBody::User(list(doc.users, "users", self)),
            "time" => {
                let not_before = doc.not_before.as_deref().and_then(|v| self.time(v, at));
                let not_after = doc.not_after.as_deref().and_then(|v| self.time(v, at));
                let hours = doc.hours.map(|h| (h.from, h.to));
                if hours.is_some_and(|(from, to)| from > 23 || to > 24 || from >= to) {
                    self.error(at, "hours need 0 <= from < to <= 24");
                }
                if not_before.is_none() && not_after.is_none() && hours.is_none() {
                    self.error(at, "a time policy needs not_before, not_after or hours");
                }
                PolicyBody::Time {
                    not_before,
                    not_after,
                    hours,
                }
            }
            "condition" => match doc.condition.as_deref().map(CelCondition::compile) {
                Some(Ok(cel)) => PolicyBody::Condition(cel),
                Some(Err(e)) => {
                    self.error(at, format!("condition: {e}"));
                    PolicyBody::Role(Vec::new())
                }
                None => {
                    self.error(at, "a condition policy needs condition");
                    PolicyBody::Role(Vec::new())
                }
            },
            "aggregated" => {
                let names = list(doc.policies, "policies", self);
                let policies = self.policy_refs(&names, at);
                let strategy = self.counting_strategy(doc.strategy.as_deref(), at);
                PolicyBody::Aggregated { policies, strategy }
            }
            other => {
                self.error(at, format!("policy type must be role, group, user, time, condition or aggregated, not '{other}'"));
                PolicyBody::Role(Vec::new())
            }
        };
        NamedPolicy {
            name: doc.name,
            logic,
            body,
        }
    }

    /// Every named kind must declare what a condition needs (an owner, a channel).
    fn require_decl(&mut self, kinds: &Kinds, has: fn(&KindDecl) -> bool, what: &str, at: &At) {
        let Kinds::Only(kinds) = kinds else { return };
        for kind in kinds {
            if !self.kinds.get(kind).is_some_and(has) {
                self.error(
                    at,
                    format!("kind '{kind}' declares no {what} (add it under resources)"),
                );
            }
        }
    }

    fn condition(&mut self, doc: ConditionDoc, kinds: &Kinds, at: &At) -> Condition {
        let empty = doc.is_empty();
        let mut all = Vec::new();
        if let Some(roles) = doc.roles {
            all.push(Condition::Roles(self.non_empty(roles, "roles", at)));
        }
        if let Some(groups) = doc.groups {
            all.push(Condition::Groups(self.non_empty(groups, "groups", at)));
        }
        if let Some(users) = doc.users {
            all.push(Condition::Users(self.non_empty(users, "users", at)));
        }
        if let Some(kind) = doc.principal {
            let filter = match kind.as_str() {
                "user" => PrincipalFilter::User,
                "anonymous" => PrincipalFilter::Anonymous,
                "authenticated" => PrincipalFilter::Authenticated,
                other => {
                    self.error(
                        at,
                        format!(
                            "principal must be user, anonymous or authenticated, not '{other}'"
                        ),
                    );
                    PrincipalFilter::User
                }
            };
            all.push(Condition::Principal(filter));
        }
        if let Some(roles) = doc.channel_roles {
            self.require_decl(kinds, |d| d.channel.is_some(), "channel", at);
            all.push(Condition::ChannelRoles(self.non_empty(
                roles,
                "channel_roles",
                at,
            )));
        }
        match doc.owner {
            Some(true) => {
                self.require_decl(kinds, |d| d.owner.is_some(), "owner", at);
                all.push(Condition::Owner);
            }
            Some(false) => self.error(at, "owner: false is not a condition; leave it out"),
            None => {}
        }
        for text in doc
            .is_principal
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
        {
            if let Some(op) = self.operand(&text, kinds, at) {
                all.push(Condition::IsPrincipal(op));
            }
        }
        for text in doc
            .refers_to_principal
            .map(OneOrMany::into_vec)
            .unwrap_or_default()
        {
            if let Some(op) = self.operand(&text, kinds, at) {
                all.push(Condition::RefersToPrincipal(op));
            }
        }
        for (text, values) in doc.in_.unwrap_or_default() {
            let values = self.values(values, at);
            if let Some(op) = self.operand(&text, kinds, at) {
                all.push(Condition::In(op, values));
            }
        }
        for (text, value) in doc.equals.unwrap_or_default() {
            if let Some(op) = self.operand(&text, kinds, at) {
                all.push(Condition::Equals(op, value));
            }
        }
        if let Some(source) = doc.cel {
            match CelCondition::compile(&source) {
                Ok(cel) => all.push(Condition::Cel(cel)),
                Err(e) => self.error(&at.field("cel"), format!("cel: {e}")),
            }
        }
        if let Some(items) = doc.all {
            let items = items
                .into_iter()
                .map(|c| self.condition(c, kinds, at))
                .collect();
            all.push(Condition::All(items));
        }
        if let Some(items) = doc.any {
            let items: Vec<Condition> = items
                .into_iter()
                .map(|c| self.condition(c, kinds, at))
                .collect();
            if items.is_empty() {
                self.error(at, "any needs one or more conditions");
            }
            all.push(Condition::Any(items));
        }
        if let Some(inner) = doc.not {
            all.push(Condition::Not(Box::new(self.condition(*inner, kinds, at))));
        }
        match all.len() {
            0 => {
                // A condition whose parts all failed has had its errors reported already.
                if empty {
                    self.error(at, "empty condition");
                }
                Condition::Any(Vec::new())
            }
            1 => all.pop().unwrap_or(Condition::Any(Vec::new())),
            _ => Condition::All(all),
        }
    }

    fn non_empty(&mut self, values: Vec<String>, field: &str, at: &At) -> Vec<String> {
        if values.is_empty() {
            self.error(at, format!("{field} needs one or more values"));
        }
        values
    }

    /// A list of values, or `$name` of a list.
    fn values(&mut self, values: OneOrMany, at: &At) -> Vec<String> {
        match values {
            OneOrMany::One(name) => match name.strip_prefix('$') {
                Some(list) => match self.lists.get(list) {
                    Some(values) => values.clone(),
                    None => {
                        self.error(at, format!("list '{list}' is not defined"));
                        Vec::new()
                    }
                },
                None => vec![name],
            },
            OneOrMany::Many(values) => values,
        }
    }

    fn operand(&mut self, text: &str, kinds: &Kinds, at: &At) -> Option<Operand> {
        match Operand::parse(text) {
            Ok(op) => {
                if let (Operand::Capture(name), Kinds::Only(names)) = (&op, kinds)
                    && names
                        .iter()
                        .any(|kind| !has_capture(self.kinds.get(kind), name))
                {
                    self.error(at, unknown_capture(name));
                }
                Some(op)
            }
            Err(e) => {
                self.error(at, e);
                None
            }
        }
    }
}

/// Whether the kind's id pattern captures `name`.
fn has_capture(decl: Option<&KindDecl>, name: &str) -> bool {
    decl.and_then(|d| d.id_pattern.as_ref())
        .is_some_and(|p| p.capture_names().iter().any(|n| n == name))
}

fn unknown_capture(name: &str) -> String {
    format!("captures.{name} is not a capture of the kind's id pattern")
}

fn parse_strategy(value: &str, allow_priority: bool) -> Result<Strategy, String> {
    match value.to_ascii_lowercase().as_str() {
        "priority" if allow_priority => Ok(Strategy::Priority),
        "affirmative" => Ok(Strategy::Affirmative),
        "unanimous" => Ok(Strategy::Unanimous),
        "consensus" => Ok(Strategy::Consensus),
        other if allow_priority => Err(format!(
            "strategy must be priority, affirmative, unanimous or consensus, not '{other}'"
        )),
        other => Err(format!(
            "strategy must be affirmative, unanimous or consensus, not '{other}'"
        )),
    }
}

/// A cycle in the graph of aggregated policies, as the list of its nodes.
fn find_cycle(edges: &[Vec<usize>]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    fn visit(
        node: usize,
        edges: &[Vec<usize>],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        match marks.get(node).copied() {
            Some(Mark::Done) | None => return None,
            Some(Mark::Open) => {
                let start = path.iter().position(|&n| n == node).unwrap_or(0);
                let mut cycle: Vec<usize> = path.get(start..).unwrap_or_default().to_vec();
                cycle.push(node);
                return Some(cycle);
            }
            Some(Mark::New) => {}
        }
        if let Some(mark) = marks.get_mut(node) {
            *mark = Mark::Open;
        }
        path.push(node);
        for &next in edges.get(node).map(Vec::as_slice).unwrap_or_default() {
            if let Some(cycle) = visit(next, edges, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        if let Some(mark) = marks.get_mut(node) {
            *mark = Mark::Done;
        }
        None
    }
    let mut marks = vec![Mark::New; edges.len()];
    (0..edges.len()).find_map(|node| visit(node, edges, &mut marks, &mut Vec::new()))
}

/// The 1-based line where the item is written: the `occurrence`-th `key: value` line (list items and
/// flow mappings included), then, when a field is asked for, the first line of that field after it.
fn locate(text: &str, at: &At) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let (first, end) = at
        .section
        .map_or((0, lines.len()), |section| section_lines(&lines, section));
    let lines = lines.get(first..end)?;
    let defines = |line: &str| {
        let line = line.trim_start().trim_start_matches("- ").trim_start();
        let line = line.trim_start_matches('{').trim_start();
        line.strip_prefix(at.key.as_str())
            .and_then(|rest| rest.trim_start().strip_prefix(':'))
            .map(|rest| {
                let rest = rest.split(',').next().unwrap_or(rest);
                let rest = rest.trim().trim_end_matches('}').trim();
                at.value.is_empty() || rest.trim_matches(|c| c == '"' || c == '\'') == at.value
            })
            .unwrap_or(false)
    };
    let item = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| defines(line))
        .nth(at.occurrence)
        .map(|(i, _)| i)
        .or_else(|| {
            // Anything else that names the value, e.g. deep inside a flow mapping.
            let needle = if at.value.is_empty() {
                at.key.as_str()
            } else {
                at.value.as_str()
            };
            lines.iter().position(|line| line.contains(needle))
        })?;
    let Some(field) = at.field else {
        return Some(first + item + 1);
    };
    let field_key = format!("{field}:");
    let found = lines
        .iter()
        .enumerate()
        .skip(item)
        .find(|(_, line)| line.contains(&field_key))
        .map(|(i, _)| i);
    Some(first + found.unwrap_or(item) + 1)
}

/// The lines (as a range of 0-based indexes) of the block under the top-level `key:`: from its own
/// line to the next top-level key. All lines when the file has no such key.
fn section_lines(lines: &[&str], key: &str) -> (usize, usize) {
    let is_top_level_key = |line: &&str| {
        line.chars()
            .next()
            .is_some_and(|c| !c.is_whitespace() && !matches!(c, '#' | '-'))
    };
    let Some(start) = lines.iter().position(|line| {
        line.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with(':'))
    }) else {
        return (0, lines.len());
    };
    let end = lines
        .iter()
        .enumerate()
        .skip(start + 1)
        .find(|(_, line)| is_top_level_key(line))
        .map_or(lines.len(), |(i, _)| i);
    // The key's own line is part of the block: `routes: [{name: a, ...}]` is written on it.
    (start, end)
}
