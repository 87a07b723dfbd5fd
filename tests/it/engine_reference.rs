//! The indexed engine against a naive reference evaluator, on random policy sets.
//!
//! Policy sets are generated as YAML text from a small vocabulary (kinds `k0..k5`, actions `a0..a4`,
//! priorities `-3..=3`, roles, users, ownership, `in`/`equals` over attributes, nested `not`/`any`/`all`),
//! compiled with `gatehouse::policy::compile`, and every random request is decided twice: by
//! `gatehouse::engine::decide`, and by the reference below, which follows `docs/policies.md` and looks at
//! every rule in declaration order, without any index. Both the decision and the deciding rule must
//! agree, under each of the four strategies.
//!
//! The run is reproducible: `GATEHOUSE_REFERENCE_SEED` sets the first seed (each set uses the next one)
//! and `GATEHOUSE_REFERENCE_SETS` how many sets are generated. A mismatch prints the seed, the strategy,
//! the request, the expected and actual decisions, and the YAML shrunk to the rules that matter.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::Instant;

use gatehouse::engine::{Request, Resource, allowed_actions, decide, decide_explained};
use gatehouse::policy::{PolicySet, Source, compile};
use gatehouse::principal::Principal;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

// ---------------------------------------------------------------------------------------------------
// The model of a generated policy set: what the YAML says, and what the reference evaluates.
// ---------------------------------------------------------------------------------------------------

const KINDS: [&str; 6] = ["k0", "k1", "k2", "k3", "k4", "k5"];
const ACTIONS: [&str; 5] = ["a0", "a1", "a2", "a3", "a4"];
const ROLES: [&str; 5] = ["r0", "r1", "r2", "user", "anonymous"];
const USERS: [&str; 5] = ["u0", "u1", "u2", "u3", "u4"];
const GROUPS: [&str; 2] = ["g0", "g1"];
const CHANNEL_ROLES: [&str; 2] = ["cm", "cx"];
const VALUES: [&str; 6] = ["v0", "v1", "v2", "u0", "u1", "SU:u1"];
const RULE_IDS: [&str; 9] = [
    "x:*", "*:u1", "x:**", "{g}:{o}", "x:1", "u0", "g:u0", "**", "k:{a}:y",
];
/// The named lists every generated set defines, for `in: { op: $name }`.
const LISTS: [(&str, &[&str]); 2] = [("l0", &["v0", "v1"]), ("l1", &["u0", "SU:u1", "u2"])];

/// Which kinds or actions a rule covers.
#[derive(Debug, Clone)]
enum Sel {
    /// `"*"`, written in one of several equivalent ways (see `render_sel`).
    Any(u8),
    /// Written as a single string when there is one and `single` is set.
    Only { items: Vec<String>, single: bool },
}

impl Sel {
    fn contains(&self, value: &str) -> bool {
        match self {
            Sel::Any(_) => true,
            Sel::Only { items, .. } => items.iter().any(|i| i == value),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Operand {
    Id,
    Kind,
    Action,
    PrincipalId,
    Attribute(&'static str),
    Context(&'static str),
    Capture(&'static str),
}

impl Operand {
    fn text(&self) -> String {
        match self {
            Operand::Id => "id".to_owned(),
            Operand::Kind => "kind".to_owned(),
            Operand::Action => "action".to_owned(),
            Operand::PrincipalId => "principal.id".to_owned(),
            Operand::Attribute(k) => format!("attributes.{k}"),
            Operand::Context(k) => format!("context.{k}"),
            Operand::Capture(n) => format!("captures.{n}"),
        }
    }
}

#[derive(Debug, Clone)]
enum InValues {
    List(Vec<String>),
    One(String),
    Named(&'static str),
}

/// One key of a condition map.
#[derive(Debug, Clone)]
enum Cond {
    Roles(Vec<String>),
    Groups(Vec<String>),
    Users(Vec<String>),
    Principal(&'static str),
    ChannelRoles(Vec<String>),
    Owner,
    IsPrincipal(Vec<Operand>),
    RefersToPrincipal(Vec<Operand>),
    In(Vec<(Operand, InValues)>),
    Equals(Vec<(Operand, String)>),
    All(Vec<CondMap>),
    Any(Vec<CondMap>),
    Not(Box<CondMap>),
}

/// A condition map: every key must hold.
#[derive(Debug, Clone)]
struct CondMap(Vec<Cond>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
struct Rule {
    name: String,
    effect: Effect,
    /// `None`: the key is left out (priority 0).
    priority: Option<i32>,
    kinds: Sel,
    id: Option<&'static str>,
    actions: Sel,
    when: Option<CondMap>,
    unless: Option<CondMap>,
}

impl Rule {
    fn priority(&self) -> i32 {
        self.priority.unwrap_or(0)
    }
}

#[derive(Debug, Clone)]
struct KindDecl {
    kind: &'static str,
    pattern: Option<&'static str>,
    owner: Option<Operand>,
    channel: Option<Operand>,
    actions: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Priority,
    Affirmative,
    Unanimous,
    Consensus,
}

const STRATEGIES: [Strategy; 4] = [
    Strategy::Priority,
    Strategy::Affirmative,
    Strategy::Unanimous,
    Strategy::Consensus,
];

#[derive(Debug, Clone)]
struct Set {
    /// `None` writes no `settings` (the default, priority).
    strategy: Option<Strategy>,
    decls: Vec<KindDecl>,
    rules: Vec<Rule>,
}

impl Set {
    fn strategy(&self) -> Strategy {
        self.strategy.unwrap_or(Strategy::Priority)
    }

    fn decl(&self, kind: &str) -> Option<&KindDecl> {
        self.decls.iter().find(|d| d.kind == kind)
    }
}

#[derive(Debug, Clone)]
struct Req {
    /// `None`: anonymous.
    user: Option<&'static str>,
    roles: Vec<String>,
    groups: Vec<String>,
    channel_roles: BTreeMap<String, String>,
    kind: String,
    action: String,
    id: String,
    attributes: Map<String, Value>,
    context: Map<String, Value>,
}

// ---------------------------------------------------------------------------------------------------
// Rendering a set as YAML.
// ---------------------------------------------------------------------------------------------------

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

fn list(items: &[String]) -> String {
    let items: Vec<String> = items.iter().map(|s| quoted(s)).collect();
    format!("[{}]", items.join(", "))
}

fn render_sel(sel: &Sel, vocabulary: &[&str]) -> String {
    match sel {
        Sel::Any(0) => "\"*\"".to_owned(),
        Sel::Any(1) => "[\"*\"]".to_owned(),
        Sel::Any(_) => format!("[{}, \"*\"]", quoted(vocabulary[0])),
        Sel::Only { items, single } if *single && items.len() == 1 => quoted(&items[0]),
        Sel::Only { items, .. } => list(items),
    }
}

fn render_cond(map: &CondMap) -> String {
    let entries: Vec<String> = map.0.iter().map(render_key).collect();
    format!("{{{}}}", entries.join(", "))
}

fn render_operands(ops: &[Operand]) -> String {
    if let [one] = ops {
        quoted(&one.text())
    } else {
        let texts: Vec<String> = ops.iter().map(Operand::text).collect();
        list(&texts)
    }
}

fn render_key(cond: &Cond) -> String {
    match cond {
        Cond::Roles(v) => format!("roles: {}", list(v)),
        Cond::Groups(v) => format!("groups: {}", list(v)),
        Cond::Users(v) => format!("users: {}", list(v)),
        Cond::Principal(p) => format!("principal: {}", quoted(p)),
        Cond::ChannelRoles(v) => format!("channel_roles: {}", list(v)),
        Cond::Owner => "owner: true".to_owned(),
        Cond::IsPrincipal(ops) => format!("is_principal: {}", render_operands(ops)),
        Cond::RefersToPrincipal(ops) => {
            format!("refers_to_principal: {}", render_operands(ops))
        }
        Cond::In(pairs) => {
            let entries: Vec<String> = pairs
                .iter()
                .map(|(op, values)| {
                    let values = match values {
                        InValues::List(v) => list(v),
                        InValues::One(v) => quoted(v),
                        InValues::Named(name) => quoted(&format!("${name}")),
                    };
                    format!("{}: {values}", quoted(&op.text()))
                })
                .collect();
            format!("in: {{{}}}", entries.join(", "))
        }
        Cond::Equals(pairs) => {
            let entries: Vec<String> = pairs
                .iter()
                .map(|(op, value)| format!("{}: {}", quoted(&op.text()), quoted(value)))
                .collect();
            format!("equals: {{{}}}", entries.join(", "))
        }
        Cond::All(items) => {
            let items: Vec<String> = items.iter().map(render_cond).collect();
            format!("all: [{}]", items.join(", "))
        }
        Cond::Any(items) => {
            let items: Vec<String> = items.iter().map(render_cond).collect();
            format!("any: [{}]", items.join(", "))
        }
        Cond::Not(inner) => format!("not: {}", render_cond(inner)),
    }
}

fn strategy_name(strategy: Strategy) -> &'static str {
    match strategy {
        Strategy::Priority => "priority",
        Strategy::Affirmative => "affirmative",
        Strategy::Unanimous => "unanimous",
        Strategy::Consensus => "consensus",
    }
}

fn render(set: &Set) -> String {
    let mut out = String::new();
    if let Some(strategy) = set.strategy {
        writeln!(out, "settings:\n  strategy: {}", strategy_name(strategy)).unwrap();
    }
    out.push_str("lists:\n");
    for (name, values) in LISTS {
        let values: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        writeln!(out, "  {name}: {}", list(&values)).unwrap();
    }
    let decls = declared(set);
    if !decls.is_empty() {
        out.push_str("resources:\n");
        for decl in &decls {
            writeln!(out, "  - kind: {}", quoted(decl.kind)).unwrap();
            if let Some(pattern) = decl.pattern {
                writeln!(out, "    id: {}", quoted(pattern)).unwrap();
            }
            if let Some(owner) = &decl.owner {
                writeln!(out, "    owner: {}", quoted(&owner.text())).unwrap();
            }
            if let Some(channel) = &decl.channel {
                writeln!(out, "    channel: {}", quoted(&channel.text())).unwrap();
            }
            if !decl.actions.is_empty() {
                writeln!(out, "    actions: {}", list(&decl.actions)).unwrap();
            }
        }
    }
    if !set.rules.is_empty() {
        out.push_str("rules:\n");
    }
    for rule in &set.rules {
        writeln!(out, "  - name: {}", quoted(&rule.name)).unwrap();
        let effect = match rule.effect {
            Effect::Allow => "allow",
            Effect::Deny => "deny",
        };
        writeln!(out, "    effect: {effect}").unwrap();
        if let Some(priority) = rule.priority {
            writeln!(out, "    priority: {priority}").unwrap();
        }
        writeln!(out, "    resource: {}", render_sel(&rule.kinds, &KINDS)).unwrap();
        if let Some(id) = rule.id {
            writeln!(out, "    id: {}", quoted(id)).unwrap();
        }
        writeln!(out, "    actions: {}", render_sel(&rule.actions, &ACTIONS)).unwrap();
        if let Some(when) = &rule.when {
            writeln!(out, "    when: {}", render_cond(when)).unwrap();
        }
        if let Some(unless) = &rule.unless {
            writeln!(out, "    unless: {}", render_cond(unless)).unwrap();
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------------
// Generating sets and requests.
// ---------------------------------------------------------------------------------------------------

fn pick<T: Clone>(rng: &mut StdRng, items: &[T]) -> T {
    items.choose(rng).unwrap().clone()
}

/// A non-empty subset of `vocabulary`, in random order.
fn some_of(rng: &mut StdRng, vocabulary: &[&str], max: usize) -> Vec<String> {
    let n = rng.random_range(1..=max.min(vocabulary.len()));
    let mut picked: Vec<String> = vocabulary.iter().map(|s| (*s).to_owned()).collect();
    for i in 0..picked.len() {
        let j = rng.random_range(i..picked.len());
        picked.swap(i, j);
    }
    picked.truncate(n);
    picked
}

/// The declarations as written: every kind must be declared with every action a rule names for it,
/// so each kind a rule names is declared (plainly, when the set has no declaration for it), with the
/// actions of the rules that cover it, those over every kind included. That is the vocabulary the
/// set had before declarations were required, so the reference's `reference_known_actions` holds.
fn declared(set: &Set) -> Vec<KindDecl> {
    let mut decls = set.decls.clone();
    for rule in &set.rules {
        if let Sel::Only { items, .. } = &rule.kinds {
            for kind in KINDS.iter().filter(|k| items.iter().any(|i| i == *k)) {
                if !decls.iter().any(|d| d.kind == *kind) {
                    decls.push(KindDecl {
                        kind,
                        pattern: None,
                        owner: None,
                        channel: None,
                        actions: Vec::new(),
                    });
                }
            }
        }
    }
    let any_kind = set
        .rules
        .iter()
        .any(|r| matches!(r.kinds, Sel::Any(_)) && matches!(r.actions, Sel::Only { .. }));
    if any_kind && decls.is_empty() {
        decls.push(KindDecl {
            kind: KINDS[0],
            pattern: None,
            owner: None,
            channel: None,
            actions: Vec::new(),
        });
    }
    for decl in &mut decls {
        for action in reference_known_actions(set, decl.kind) {
            if !decl.actions.contains(&action) {
                decl.actions.push(action);
            }
        }
    }
    decls
}

fn gen_decls(rng: &mut StdRng) -> Vec<KindDecl> {
    let mut decls = Vec::new();
    for kind in KINDS {
        if rng.random_bool(0.35) {
            continue;
        }
        let pattern = pick(
            rng,
            &[
                None,
                None,
                Some("{g}:{o}"),
                Some("{g}:{o**}"),
                Some("p:{o}"),
            ],
        );
        let has_o = pattern.is_some();
        let has_g = pattern.is_some_and(|p| p.contains("{g}"));
        let mut owners = vec![None, Some(Operand::Attribute("owner"))];
        if has_o {
            owners.extend([Some(Operand::Capture("o")), Some(Operand::Capture("o"))]);
        }
        if rng.random_bool(0.05) {
            owners.push(Some(Operand::PrincipalId));
        }
        let owner = pick(rng, &owners);
        let mut channels = vec![None, Some(Operand::Attribute("ch"))];
        if has_g {
            channels.push(Some(Operand::Capture("g")));
        }
        let channel = pick(rng, &channels);
        let actions = if rng.random_bool(0.3) {
            some_of(rng, &["a0", "a3", "d0", "d1"], 2)
        } else {
            Vec::new()
        };
        decls.push(KindDecl {
            kind,
            pattern,
            owner,
            channel,
            actions,
        });
    }
    decls
}

/// What a condition of a rule over `kinds` may use without making the set invalid.
struct Allowed {
    owner: bool,
    channel: bool,
    captures: Vec<&'static str>,
}

fn allowed_for(kinds: &Sel, decls: &[KindDecl]) -> Allowed {
    match kinds {
        // Rules over every kind may use them all: they read nothing on kinds without a declaration.
        Sel::Any(_) => Allowed {
            owner: true,
            channel: true,
            captures: vec!["g", "o", "zz"],
        },
        Sel::Only { items, .. } => {
            let decl = |k: &String| decls.iter().find(|d| d.kind == k);
            let every =
                |f: &dyn Fn(&KindDecl) -> bool| items.iter().all(|k| decl(k).is_some_and(f));
            let captures = ["g", "o"]
                .into_iter()
                .filter(|name| {
                    every(&|d: &KindDecl| {
                        d.pattern.is_some_and(|p| {
                            p.contains(&format!("{{{name}}}"))
                                || p.contains(&format!("{{{name}**}}"))
                        })
                    })
                })
                .collect();
            Allowed {
                owner: every(&|d: &KindDecl| d.owner.is_some()),
                channel: every(&|d: &KindDecl| d.channel.is_some()),
                captures,
            }
        }
    }
}

fn gen_operand(rng: &mut StdRng, allowed: &Allowed) -> Operand {
    let mut ops = vec![
        Operand::Attribute("a"),
        Operand::Attribute("a"),
        Operand::Attribute("b"),
        Operand::Attribute("owner"),
        Operand::Context("c"),
        Operand::Id,
        Operand::Kind,
        Operand::Action,
        Operand::PrincipalId,
    ];
    for name in &allowed.captures {
        ops.push(Operand::Capture(name));
    }
    pick(rng, &ops)
}

/// Values an operand is compared with: a bit of everything the requests carry.
fn gen_value(rng: &mut StdRng, op: &Operand) -> String {
    let pool: &[&str] = match op {
        Operand::Id => &["x:1", "g:u0", "u0", "p:u1", "k:x:y"],
        Operand::Kind => &["k0", "k1", "k9"],
        Operand::Action => &["a0", "a1", "d0", "a9"],
        Operand::PrincipalId => &["u0", "u1", "u2"],
        Operand::Capture(_) => &["g", "x", "u0", "u1", "x:y"],
        _ => &VALUES,
    };
    pick(rng, pool).to_owned()
}

fn gen_cond(rng: &mut StdRng, allowed: &Allowed, depth: u32) -> CondMap {
    let mut keys = vec![
        "roles",
        "roles",
        "users",
        "users",
        "principal",
        "groups",
        "in",
        "in",
        "equals",
        "is_principal",
        "refers_to_principal",
    ];
    if allowed.owner {
        keys.extend(["owner", "owner", "owner"]);
    }
    if allowed.channel {
        keys.push("channel_roles");
    }
    if depth < 2 {
        keys.extend(["not", "not", "any", "any", "all"]);
    }
    let count = if rng.random_bool(0.75) { 1 } else { 2 };
    let mut chosen: Vec<&str> = Vec::new();
    while chosen.len() < count {
        let key = pick(rng, &keys);
        if !chosen.contains(&key) {
            chosen.push(key);
        }
    }
    let conds = chosen
        .into_iter()
        .map(|key| match key {
            "roles" => Cond::Roles(some_of(rng, &ROLES, 2)),
            "users" => Cond::Users(some_of(rng, &USERS[..4], 2)),
            "groups" => Cond::Groups(some_of(rng, &GROUPS, 2)),
            "principal" => Cond::Principal(pick(rng, &["user", "anonymous", "authenticated"])),
            "channel_roles" => Cond::ChannelRoles(some_of(rng, &CHANNEL_ROLES, 2)),
            "owner" => Cond::Owner,
            "is_principal" | "refers_to_principal" => {
                let ops = vec![pick(
                    rng,
                    &[Operand::Attribute("owner"), Operand::Context("c")],
                )];
                let ops = if rng.random_bool(0.2) {
                    let mut ops = ops;
                    ops.push(gen_operand(rng, allowed));
                    ops.dedup();
                    ops
                } else {
                    ops
                };
                if key == "is_principal" {
                    Cond::IsPrincipal(ops)
                } else {
                    Cond::RefersToPrincipal(ops)
                }
            }
            "in" => {
                let mut pairs: Vec<(Operand, InValues)> = Vec::new();
                for _ in 0..rng.random_range(1..=2) {
                    let op = gen_operand(rng, allowed);
                    if pairs.iter().any(|(o, _)| *o == op) {
                        continue;
                    }
                    let values = match rng.random_range(0..6) {
                        0 => InValues::One(gen_value(rng, &op)),
                        1 => InValues::Named(pick(rng, &["l0", "l1"])),
                        _ => InValues::List(
                            (0..rng.random_range(1..=3))
                                .map(|_| gen_value(rng, &op))
                                .collect(),
                        ),
                    };
                    pairs.push((op, values));
                }
                Cond::In(pairs)
            }
            "equals" => {
                let op = gen_operand(rng, allowed);
                let value = gen_value(rng, &op);
                Cond::Equals(vec![(op, value)])
            }
            "not" => Cond::Not(Box::new(gen_cond(rng, allowed, depth + 1))),
            "any" => Cond::Any(
                (0..rng.random_range(1..=3))
                    .map(|_| gen_cond(rng, allowed, depth + 1))
                    .collect(),
            ),
            "all" => Cond::All(
                (0..rng.random_range(1..=2))
                    .map(|_| gen_cond(rng, allowed, depth + 1))
                    .collect(),
            ),
            other => unreachable!("{other}"),
        })
        .collect();
    CondMap(conds)
}

fn gen_sel(rng: &mut StdRng, vocabulary: &[&str], any: f64) -> Sel {
    if rng.random_bool(any) {
        Sel::Any(rng.random_range(0..3))
    } else {
        let mut items = some_of(rng, vocabulary, 3);
        if rng.random_bool(0.05) {
            // A repeated name must not make the rule count twice.
            items.push(items[0].clone());
        }
        Sel::Only {
            items,
            single: rng.random_bool(0.5),
        }
    }
}

fn gen_set(rng: &mut StdRng) -> Set {
    let decls = gen_decls(rng);
    let n = rng.random_range(1..=40);
    let rules = (0..n)
        .map(|i| {
            let kinds = gen_sel(rng, &KINDS, 0.2);
            let allowed = allowed_for(&kinds, &decls);
            let priority = if rng.random_bool(0.25) {
                None
            } else {
                Some(rng.random_range(-3..=3))
            };
            Rule {
                name: format!("rule{i}"),
                effect: if rng.random_bool(0.5) {
                    Effect::Allow
                } else {
                    Effect::Deny
                },
                priority,
                kinds,
                id: rng.random_bool(0.2).then(|| pick(rng, &RULE_IDS)),
                actions: gen_sel(rng, &ACTIONS, 0.2),
                when: rng.random_bool(0.6).then(|| gen_cond(rng, &allowed, 0)),
                unless: rng.random_bool(0.2).then(|| gen_cond(rng, &allowed, 0)),
            }
        })
        .collect();
    Set {
        strategy: None,
        decls,
        rules,
    }
}

fn gen_value_json(rng: &mut StdRng, pool: &[&str]) -> Option<Value> {
    match rng.random_range(0..10) {
        0 => None,
        1 => Some(json!("")),
        2 => Some(json!(7)),
        3 => Some(json!(true)),
        _ => Some(json!(pick(rng, pool))),
    }
}

fn gen_request(rng: &mut StdRng) -> Req {
    let user = rng.random_bool(0.8).then(|| pick(rng, &USERS));
    let roles = if user.is_some() && rng.random_bool(0.6) {
        some_of(rng, &["r0", "r1", "r2", "admin", "user", "anonymous"], 2)
    } else {
        Vec::new()
    };
    let groups = if user.is_some() && rng.random_bool(0.4) {
        some_of(rng, &GROUPS, 2)
    } else {
        Vec::new()
    };
    let mut channel_roles = BTreeMap::new();
    if user.is_some() {
        for channel in ["ch0", "ch1", "g", "x"] {
            if rng.random_bool(0.3) {
                channel_roles.insert(
                    channel.to_owned(),
                    pick(rng, &["cm", "cx", "cy"]).to_owned(),
                );
            }
        }
    }
    let kind = pick(rng, &["k0", "k1", "k2", "k3", "k4", "k5", "k9", "*"]);
    let kind = if kind == "*" && rng.random_bool(0.8) {
        "k0"
    } else {
        kind
    };
    let action = pick(rng, &["a0", "a1", "a2", "a3", "a4", "a9", "d0", "*"]);
    let action = if action == "*" && rng.random_bool(0.8) {
        "a1"
    } else {
        action
    };
    let user_id = user.unwrap_or("u0");
    let id = match rng.random_range(0..12) {
        0 => String::new(),
        1 => "x:".to_owned(),
        2 => "x:1".to_owned(),
        3 => "x:a:b".to_owned(),
        4 => user_id.to_owned(),
        5 => format!("g:{user_id}"),
        6 => format!("p:{}", pick(rng, &USERS)),
        7 => "k:x:y".to_owned(),
        8 => format!("x:{}", pick(rng, &USERS)),
        9 => "g:u0:z".to_owned(),
        10 => ":u1".to_owned(),
        _ => format!("{}:{}", pick(rng, &["g", "x", "y"]), pick(rng, &USERS)),
    };
    let mut attributes = Map::new();
    let owner_pool: Vec<&str> = USERS.iter().copied().chain([user_id, user_id]).collect();
    for (key, pool) in [
        ("owner", owner_pool.as_slice()),
        ("a", &VALUES[..]),
        ("b", &VALUES[..]),
        ("ch", &["ch0", "ch1", "ch2"][..]),
    ] {
        if let Some(v) = gen_value_json(rng, pool) {
            attributes.insert(key.to_owned(), v);
        }
    }
    let mut context = Map::new();
    let su = format!("SU:{user_id}");
    if let Some(v) = gen_value_json(rng, &[user_id, su.as_str(), "u1", "SU:u2", "v0"]) {
        context.insert("c".to_owned(), v);
    }
    Req {
        user,
        roles,
        groups,
        channel_roles,
        kind: kind.to_owned(),
        action: action.to_owned(),
        id,
        attributes,
        context,
    }
}

// ---------------------------------------------------------------------------------------------------
// The reference evaluator: every rule, in declaration order, straight from docs/policies.md.
// ---------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    /// `*`, `**`, `{name}` or `{name**}`: a non-empty run, with `:` when `colons`.
    Run {
        colons: bool,
        capture: Option<usize>,
    },
}

/// Parses one of the patterns this test writes (they are all valid).
fn tokens(pattern: &str) -> (Vec<Token>, Vec<String>) {
    let mut out = Vec::new();
    let mut names = Vec::new();
    let mut rest = pattern;
    while let Some(c) = rest.chars().next() {
        if let Some(after) = rest.strip_prefix("**") {
            out.push(Token::Run {
                colons: true,
                capture: None,
            });
            rest = after;
        } else if let Some(after) = rest.strip_prefix('*') {
            out.push(Token::Run {
                colons: false,
                capture: None,
            });
            rest = after;
        } else if let Some(after) = rest.strip_prefix('{') {
            let end = after.find('}').unwrap();
            let name = &after[..end];
            let (name, colons) = match name.strip_suffix("**") {
                Some(n) => (n, true),
                None => (name, false),
            };
            names.push(name.to_owned());
            out.push(Token::Run {
                colons,
                capture: Some(names.len() - 1),
            });
            rest = &after[end + 1..];
        } else {
            out.push(Token::Char(c));
            rest = &rest[c.len_utf8()..];
        }
    }
    (out, names)
}

/// Matches the whole of `id`, recording the capture of each run.
fn glob(tokens: &[Token], id: &[char], captures: &mut Vec<(usize, String)>) -> bool {
    match tokens.first() {
        None => id.is_empty(),
        Some(Token::Char(c)) => id.first() == Some(c) && glob(&tokens[1..], &id[1..], captures),
        Some(Token::Run { colons, capture }) => {
            for len in 1..=id.len() {
                if !colons && id[len - 1] == ':' {
                    break;
                }
                let mark = captures.len();
                if glob(&tokens[1..], &id[len..], captures) {
                    if let Some(index) = capture {
                        captures.push((*index, id[..len].iter().collect()));
                    }
                    return true;
                }
                captures.truncate(mark);
            }
            false
        }
    }
}

/// The captures of `id` under `pattern`, by name, or `None` when it does not match.
fn pattern_captures(pattern: &str, id: &str) -> Option<BTreeMap<String, String>> {
    let (tokens, names) = tokens(pattern);
    let chars: Vec<char> = id.chars().collect();
    let mut found = Vec::new();
    glob(&tokens, &chars, &mut found).then(|| {
        found
            .into_iter()
            .map(|(i, value)| (names[i].clone(), value))
            .collect()
    })
}

struct Ctx<'a> {
    set: &'a Set,
    req: &'a Req,
    /// The action asked, which AllowedActions varies over the kind's known actions.
    action: &'a str,
    /// The captures of the id under the request kind's declared pattern, if it matches.
    captures: Option<BTreeMap<String, String>>,
}

impl Ctx<'_> {
    fn principal_id(&self) -> Option<&str> {
        self.req.user
    }

    /// The principal's global roles, with the implicit `user` (no role claim) and `anonymous`.
    fn has_role(&self, wanted: &[String]) -> bool {
        let mut roles = self.req.roles.clone();
        match self.req.user {
            None => roles.push("anonymous".to_owned()),
            Some(_) if roles.is_empty() => roles.push("user".to_owned()),
            Some(_) => {}
        }
        roles.iter().any(|r| wanted.contains(r))
    }

    /// An operand's value; absent, empty and non-string values read as nothing.
    fn operand(&self, op: &Operand) -> Option<String> {
        let req = self.req;
        let value = match op {
            Operand::Id => Some(req.id.clone()),
            Operand::Kind => Some(req.kind.clone()),
            Operand::Action => Some(self.action.to_owned()),
            Operand::PrincipalId => req.user.map(str::to_owned),
            Operand::Attribute(k) => req
                .attributes
                .get(*k)
                .and_then(Value::as_str)
                .map(str::to_owned),
            Operand::Context(k) => req
                .context
                .get(*k)
                .and_then(Value::as_str)
                .map(str::to_owned),
            Operand::Capture(name) => self.captures.as_ref()?.get(*name).cloned(),
        };
        value.filter(|v| !v.is_empty())
    }

    fn holds(&self, map: &CondMap) -> bool {
        map.0.iter().all(|c| self.holds_key(c))
    }

    fn holds_key(&self, cond: &Cond) -> bool {
        let me = self.principal_id();
        match cond {
            Cond::Roles(roles) => self.has_role(roles),
            Cond::Groups(groups) => self.req.groups.iter().any(|g| groups.contains(g)),
            Cond::Users(users) => me.is_some_and(|me| users.iter().any(|u| u == me)),
            Cond::Principal(kind) => match *kind {
                "user" | "authenticated" => self.req.user.is_some(),
                "anonymous" => self.req.user.is_none(),
                other => unreachable!("{other}"),
            },
            Cond::ChannelRoles(roles) => self
                .set
                .decl(&self.req.kind)
                .and_then(|d| d.channel.as_ref())
                .and_then(|op| self.operand(op))
                .and_then(|channel| self.req.channel_roles.get(&channel))
                .is_some_and(|role| roles.contains(role)),
            Cond::Owner => {
                let owner = self
                    .set
                    .decl(&self.req.kind)
                    .and_then(|d| d.owner.as_ref())
                    .and_then(|op| self.operand(op));
                me.is_some() && owner.as_deref() == me
            }
            Cond::IsPrincipal(ops) => ops
                .iter()
                .all(|op| me.is_some() && self.operand(op).as_deref() == me),
            Cond::RefersToPrincipal(ops) => ops.iter().all(|op| {
                me.is_some_and(|me| {
                    self.operand(op)
                        .is_some_and(|v| v == me || v == format!("SU:{me}"))
                })
            }),
            Cond::In(pairs) => pairs.iter().all(|(op, values)| {
                let values: Vec<String> = match values {
                    InValues::List(v) => v.clone(),
                    InValues::One(v) => vec![v.clone()],
                    InValues::Named(name) => LISTS
                        .iter()
                        .find(|(n, _)| n == name)
                        .unwrap()
                        .1
                        .iter()
                        .map(|v| (*v).to_owned())
                        .collect(),
                };
                self.operand(op).is_some_and(|v| values.contains(&v))
            }),
            Cond::Equals(pairs) => pairs
                .iter()
                .all(|(op, value)| self.operand(op).as_ref() == Some(value)),
            Cond::All(items) => items.iter().all(|c| self.holds(c)),
            Cond::Any(items) => items.iter().any(|c| self.holds(c)),
            Cond::Not(inner) => !self.holds(inner),
        }
    }

    fn applies(&self, rule: &Rule) -> bool {
        rule.kinds.contains(&self.req.kind)
            && rule.actions.contains(self.action)
            && rule
                .id
                .is_none_or(|p| pattern_captures(p, &self.req.id).is_some())
            && rule.when.as_ref().is_none_or(|c| self.holds(c))
            && !rule.unless.as_ref().is_some_and(|c| self.holds(c))
    }
}

/// The expected decision and deciding rule.
fn reference(set: &Set, req: &Req) -> (bool, String) {
    reference_for(set, req, &req.action)
}

/// The expected decision and deciding rule, for `action` instead of the request's.
fn reference_for(set: &Set, req: &Req, action: &str) -> (bool, String) {
    // An action outside the kind's vocabulary is denied before any rule, `actions: "*"` included.
    if !reference_known_actions(set, &req.kind).contains(action) {
        return (false, "undeclared-action".to_owned());
    }
    let captures = set
        .decl(&req.kind)
        .and_then(|d| d.pattern)
        .and_then(|pattern| pattern_captures(pattern, &req.id));
    let cx = Ctx {
        set,
        req,
        action,
        captures,
    };
    // Every vote, in declaration order.
    let votes: Vec<&Rule> = set.rules.iter().filter(|r| cx.applies(r)).collect();
    if votes.is_empty() {
        return (false, "default-deny".to_owned());
    }
    // The first vote with `effect` among the highest-priority ones (declaration order breaks ties).
    let first = |effect: Effect| -> Option<&Rule> {
        let top = votes
            .iter()
            .filter(|r| r.effect == effect)
            .map(|r| r.priority())
            .max()?;
        votes
            .iter()
            .find(|r| r.effect == effect && r.priority() == top)
            .copied()
    };
    let permits = votes.iter().filter(|r| r.effect == Effect::Allow).count();
    let denies = votes.len() - permits;
    let allowed = match set.strategy() {
        Strategy::Priority => {
            let top = votes.iter().map(|r| r.priority()).max().unwrap();
            !votes
                .iter()
                .any(|r| r.priority() == top && r.effect == Effect::Deny)
        }
        Strategy::Affirmative => permits > 0,
        Strategy::Unanimous => permits > 0 && denies == 0,
        Strategy::Consensus => permits > denies,
    };
    // The rule named is the "first" vote of the winning effect. Under priority, that is the first
    // declared one at the top priority (which is the winning effect's highest). Under the counting
    // strategies docs/policies.md says "the first permitting one" / "the first denying one" without
    // saying first in what order; the engine takes the order it considers candidates in (highest
    // priority first, then declaration order), so priorities still choose the name there.
    let decider = first(if allowed { Effect::Allow } else { Effect::Deny });
    (allowed, decider.unwrap().name.clone())
}

/// The actions AllowedActions may answer for the request's kind: declared for the kind, or named by a
/// rule that covers it.
fn reference_known_actions(set: &Set, kind: &str) -> BTreeSet<String> {
    let mut known: BTreeSet<String> = set
        .decl(kind)
        .map(|d| d.actions.iter().cloned().collect())
        .unwrap_or_default();
    for rule in &set.rules {
        if let (true, Sel::Only { items, .. }) = (rule.kinds.contains(kind), &rule.actions) {
            known.extend(items.iter().cloned());
        }
    }
    known
}

// ---------------------------------------------------------------------------------------------------
// Running both and comparing.
// ---------------------------------------------------------------------------------------------------

fn principal_of(req: &Req) -> Principal {
    let mut principal = match req.user {
        Some(id) => Principal::user(id),
        None => Principal::anonymous(),
    };
    principal.roles = req.roles.clone();
    principal.groups = req.groups.clone();
    principal.channel_roles = req.channel_roles.clone();
    principal
}

fn compile_set(set: &Set) -> Result<PolicySet, String> {
    let source = Source {
        path: "generated.yaml".to_owned(),
        text: render(set),
    };
    compile(&[source], &BTreeMap::new()).map_err(|e| e.to_string())
}

/// Compares `decide`, `decide_explained` and, when `every_action`, `allowed_actions` with the
/// reference; the error says how they disagree.
fn check(policy: &PolicySet, set: &Set, req: &Req, every_action: bool) -> Result<(), String> {
    let principal = principal_of(req);
    let request = Request {
        principal: &principal,
        action: &req.action,
        resource: Resource {
            kind: &req.kind,
            id: &req.id,
            attributes: &req.attributes,
        },
        context: &req.context,
        now: 0,
    };
    let expected = reference(set, req);
    let decision = decide(policy, &request);
    let actual = (decision.allowed, decision.rule.to_owned());
    if actual != expected {
        return Err(format!(
            "decide: expected {expected:?}, got {actual:?} ({})",
            decision.reason(&request)
        ));
    }
    let (explained, explanation) = decide_explained(policy, &request);
    let explained = (explained.allowed, explained.rule.to_owned());
    if explained != expected || (explanation.allowed, explanation.rule.clone()) != expected {
        return Err(format!(
            "decide_explained: expected {expected:?}, got {explained:?} (explanation: {}, {})",
            explanation.allowed, explanation.rule
        ));
    }
    if !every_action {
        return Ok(());
    }
    let allowed: BTreeSet<String> = allowed_actions(policy, &request)
        .into_iter()
        .map(str::to_owned)
        .collect();
    let expected_allowed: BTreeSet<String> = reference_known_actions(set, &req.kind)
        .into_iter()
        .filter(|action| reference_for(set, req, action).0)
        .collect();
    if allowed != expected_allowed {
        return Err(format!(
            "allowed_actions: expected {expected_allowed:?}, got {allowed:?}"
        ));
    }
    Ok(())
}

/// Which comparison failed: `decide`, `decide_explained` or `allowed_actions`.
fn failed_call(why: &str) -> &str {
    why.split(':').next().unwrap_or_default()
}

/// Whether `set` still fails on `req` in the same call as the original failure `why`.
fn still_fails(set: &Set, req: &Req, why: &str) -> bool {
    compile_set(set).is_ok_and(|policy| {
        check(&policy, set, req, true).is_err_and(|e| failed_call(&e) == failed_call(why))
    })
}

/// Drops rules, kind declarations and parts of rules while the mismatch remains.
fn shrink(mut set: Set, req: &Req, why: &str) -> Set {
    let mut progress = true;
    while progress {
        progress = false;
        let mut i = 0;
        while i < set.rules.len() {
            let mut smaller = set.clone();
            smaller.rules.remove(i);
            if still_fails(&smaller, req, why) {
                set = smaller;
                progress = true;
            } else {
                i += 1;
            }
        }
        let mut i = 0;
        while i < set.decls.len() {
            let mut smaller = set.clone();
            smaller.decls.remove(i);
            if still_fails(&smaller, req, why) {
                set = smaller;
                progress = true;
            } else {
                i += 1;
            }
        }
        for i in 0..set.rules.len() {
            let edits: [fn(&mut Rule); 4] = [
                |r| r.when = None,
                |r| r.unless = None,
                |r| r.id = None,
                |r| r.priority = None,
            ];
            for edit in edits {
                let mut smaller = set.clone();
                edit(&mut smaller.rules[i]);
                let changed = format!("{:?}", smaller.rules[i]) != format!("{:?}", set.rules[i]);
                if changed && still_fails(&smaller, req, why) {
                    set = smaller;
                    progress = true;
                }
            }
        }
    }
    set
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// What one run over a range of seeds found.
#[derive(Default)]
struct Report {
    cases: usize,
    outcomes: BTreeMap<&'static str, usize>,
    /// Every disagreeing case's seed, and a full report of the first few.
    failures: Vec<(u64, Option<String>)>,
}

const REPORTED_FAILURES: usize = 3;

fn run_seed(seed: u64, requests_per_set: usize, report: &mut Report) {
    let mut rng = StdRng::seed_from_u64(seed);
    let base = gen_set(&mut rng);
    let requests: Vec<Req> = (0..requests_per_set)
        .map(|_| gen_request(&mut rng))
        .collect();
    for strategy in STRATEGIES {
        let set = Set {
            // The default strategy is written out in half of the sets.
            strategy: match strategy {
                Strategy::Priority if seed.is_multiple_of(2) => None,
                s => Some(s),
            },
            ..base.clone()
        };
        let policy = compile_set(&set).unwrap_or_else(|e| {
            panic!(
                "seed {seed}: the generated set does not compile: {e}\n{}",
                render(&set)
            )
        });
        for (i, req) in requests.iter().enumerate() {
            report.cases += 1;
            let (allowed, rule) = reference(&set, req);
            let outcome = match (allowed, rule.as_str()) {
                (_, "default-deny") => "default-deny",
                (_, "undeclared-action") => "undeclared action",
                (true, _) => "allowed by a rule",
                (false, _) => "denied by a rule",
            };
            *report.outcomes.entry(outcome).or_default() += 1;
            // AllowedActions decides every known action: a third of the requests suffice.
            let Err(why) = check(&policy, &set, req, i.is_multiple_of(3)) else {
                continue;
            };
            let detail = (report.failures.len() < REPORTED_FAILURES).then(|| {
                let small = shrink(set.clone(), req, &why);
                let why_small = compile_set(&small)
                    .map(|p| check(&p, &small, req, true).err().unwrap_or_default())
                    .unwrap_or_default();
                format!(
                    "seed {seed}, strategy {}:\n  {why}\n  request: {req:?}\n  shrunk: {why_small}\n--- shrunk YAML ---\n{}--- full YAML ---\n{}",
                    strategy_name(strategy),
                    render(&small),
                    render(&set),
                )
            });
            report.failures.push((seed, detail));
        }
    }
}

#[test]
fn the_indexed_engine_decides_as_the_reference_does() {
    let first_seed = env_number("GATEHOUSE_REFERENCE_SEED", 0x6a7e_4005e);
    let sets = env_number("GATEHOUSE_REFERENCE_SETS", 300);
    let requests_per_set = 30;
    let started = Instant::now();
    // Compiling dominates in debug builds, so the seeds are shared out over the cores.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8) as u64;
    let reports: Vec<Report> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    let mut report = Report::default();
                    let mut seed = first_seed + t;
                    while seed < first_seed + sets {
                        run_seed(seed, requests_per_set, &mut report);
                        seed += threads;
                    }
                    report
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let mut cases = 0;
    let mut outcomes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for report in reports {
        cases += report.cases;
        for (outcome, n) in report.outcomes {
            *outcomes.entry(outcome).or_default() += n;
        }
        failures.extend(report.failures);
    }
    failures.sort_by_key(|(seed, _)| *seed);
    println!(
        "{cases} cases over {sets} sets x 4 strategies (seeds {first_seed}..{}) in {:?} on {threads} threads: {outcomes:?}",
        first_seed + sets,
        started.elapsed()
    );
    let failures_count = failures.len();
    let seeds: BTreeSet<u64> = failures.iter().map(|(seed, _)| *seed).collect();
    let details: Vec<String> = failures
        .into_iter()
        .filter_map(|(_, detail)| detail)
        .take(REPORTED_FAILURES)
        .collect();
    let shown: Vec<u64> = seeds.iter().copied().take(20).collect();
    assert!(
        seeds.is_empty(),
        "{} cases of {} sets disagree with the reference (seeds {shown:?}{}); the first ones:\n\n{}",
        failures_count,
        seeds.len(),
        if seeds.len() > shown.len() {
            ", ..."
        } else {
            ""
        },
        details.join("\n\n")
    );
    // The generator must produce every kind of outcome, or the comparison proves little.
    for outcome in [
        "default-deny",
        "allowed by a rule",
        "denied by a rule",
        "undeclared action",
    ] {
        assert!(
            outcomes.get(outcome).copied().unwrap_or(0) > cases / 20,
            "too few '{outcome}' outcomes: {outcomes:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// Fixed cases.
// ---------------------------------------------------------------------------------------------------

fn fixed_request(user: Option<&'static str>, kind: &str, action: &str, id: &str) -> Req {
    Req {
        user,
        roles: Vec::new(),
        groups: Vec::new(),
        channel_roles: BTreeMap::new(),
        kind: kind.to_owned(),
        action: action.to_owned(),
        id: id.to_owned(),
        attributes: Map::new(),
        context: Map::new(),
    }
}

fn rule(name: &str, effect: Effect, priority: i32, kinds: &[&str], actions: &[&str]) -> Rule {
    let sel = |items: &[&str]| {
        if items == ["*"] {
            Sel::Any(0)
        } else {
            Sel::Only {
                items: items.iter().map(|s| (*s).to_owned()).collect(),
                single: false,
            }
        }
    };
    Rule {
        name: name.to_owned(),
        effect,
        priority: Some(priority),
        kinds: sel(kinds),
        id: None,
        actions: sel(actions),
        when: None,
        unless: None,
    }
}

/// Checks a hand-written case against both the stated answer and the reference.
fn assert_case(set: &Set, req: &Req, allowed: bool, rule: &str) {
    assert_eq!(
        reference(set, req),
        (allowed, rule.to_owned()),
        "the reference, on\n{}",
        render(set)
    );
    let policy = compile_set(set).unwrap();
    if let Err(why) = check(&policy, set, req, true) {
        panic!("{why}\n{}", render(set));
    }
}

/// A kind that declares `actions` and nothing else, so that requests for them are in its vocabulary.
fn actions_of(kind: &'static str, actions: &[&str]) -> KindDecl {
    KindDecl {
        kind,
        pattern: None,
        owner: None,
        channel: None,
        actions: actions.iter().map(|a| (*a).to_owned()).collect(),
    }
}

#[test]
fn priority_ties_go_to_the_first_declared_deny_across_wildcard_and_named_rules() {
    // Declared allow-first, with the kinds and actions spread over the index's buckets: a named kind
    // and action, a wildcard kind, and a wildcard action.
    let set = Set {
        strategy: None,
        decls: vec![
            actions_of("k0", &["a0", "a1"]),
            actions_of("k1", &["a0", "a1"]),
            actions_of("k9", &["a9"]),
        ],
        rules: vec![
            rule("low-deny", Effect::Deny, -1, &["k0"], &["a0"]),
            rule("allow-any", Effect::Allow, 2, &["*"], &["*"]),
            rule("deny-kind", Effect::Deny, 2, &["k0"], &["*"]),
            rule("deny-action", Effect::Deny, 2, &["*"], &["a0"]),
            rule("allow-named", Effect::Allow, 2, &["k0"], &["a0"]),
        ],
    };
    assert_case(
        &set,
        &fixed_request(Some("u0"), "k0", "a0", "x:1"),
        false,
        "deny-kind",
    );
    assert_case(
        &set,
        &fixed_request(Some("u0"), "k1", "a0", "x:1"),
        false,
        "deny-action",
    );
    assert_case(
        &set,
        &fixed_request(Some("u0"), "k1", "a1", "x:1"),
        true,
        "allow-any",
    );
    assert_case(
        &set,
        &fixed_request(None, "k9", "a9", ""),
        true,
        "allow-any",
    );
    let mut only_low = set.clone();
    only_low
        .rules
        .retain(|r| r.name == "low-deny" || r.name == "allow-named");
    assert_case(
        &only_low,
        &fixed_request(Some("u0"), "k0", "a0", "x:1"),
        true,
        "allow-named",
    );
    only_low.rules.retain(|r| r.name == "low-deny");
    assert_case(
        &only_low,
        &fixed_request(Some("u0"), "k0", "a0", "x:1"),
        false,
        "low-deny",
    );
    assert_case(
        &only_low,
        &fixed_request(Some("u0"), "k0", "a1", "x:1"),
        false,
        "default-deny",
    );
}

#[test]
fn counting_strategies_count_every_vote_and_name_the_highest_priority_one() {
    let base = vec![
        rule("allow-low", Effect::Allow, -2, &["k0"], &["a0"]),
        rule("deny-low", Effect::Deny, -2, &["*"], &["a0"]),
        rule("allow-high", Effect::Allow, 3, &["*"], &["*"]),
        rule("deny-high", Effect::Deny, 1, &["k0"], &["*"]),
        rule("allow-mid", Effect::Allow, 1, &["k0"], &["a0", "a1"]),
    ];
    let req = fixed_request(Some("u1"), "k0", "a0", "x:1");
    let with = |strategy| Set {
        strategy: Some(strategy),
        decls: vec![
            actions_of("k0", &["a0", "a1", "a2"]),
            actions_of("k1", &["a0", "a3"]),
        ],
        rules: base.clone(),
    };
    // Three permits, two denies.
    assert_case(&with(Strategy::Affirmative), &req, true, "allow-high");
    assert_case(&with(Strategy::Unanimous), &req, false, "deny-high");
    assert_case(&with(Strategy::Consensus), &req, true, "allow-high");
    assert_case(&with(Strategy::Priority), &req, true, "allow-high");
    // a1: allow-high, deny-high, allow-mid; a2: allow-high, deny-high.
    let a1 = fixed_request(Some("u1"), "k0", "a1", "x:1");
    assert_case(&with(Strategy::Consensus), &a1, true, "allow-high");
    let a2 = fixed_request(Some("u1"), "k0", "a2", "x:1");
    assert_case(&with(Strategy::Consensus), &a2, false, "deny-high");
    assert_case(&with(Strategy::Unanimous), &a2, false, "deny-high");
    // Another kind: allow-high alone, or with deny-low on a0.
    let other = fixed_request(None, "k1", "a0", "");
    assert_case(&with(Strategy::Unanimous), &other, false, "deny-low");
    assert_case(&with(Strategy::Consensus), &other, false, "deny-low");
    assert_case(&with(Strategy::Affirmative), &other, true, "allow-high");
    let other = fixed_request(None, "k1", "a3", "");
    assert_case(&with(Strategy::Unanimous), &other, true, "allow-high");
}

#[test]
fn conditions_read_roles_ownership_and_captures_as_documented() {
    let set = Set {
        strategy: None,
        decls: vec![KindDecl {
            kind: "k0",
            pattern: Some("{g}:{o}"),
            owner: Some(Operand::Capture("o")),
            channel: None,
            actions: vec!["d0".to_owned()],
        }],
        rules: vec![
            Rule {
                when: Some(CondMap(vec![Cond::Owner])),
                ..rule("owners", Effect::Allow, 0, &["k0"], &["*"])
            },
            Rule {
                when: Some(CondMap(vec![Cond::Roles(vec!["user".to_owned()])])),
                id: Some("x:*"),
                ..rule("plain-users", Effect::Allow, 0, &["*"], &["a0"])
            },
            Rule {
                unless: Some(CondMap(vec![Cond::Not(Box::new(CondMap(vec![
                    Cond::Roles(vec!["anonymous".to_owned()]),
                ])))])),
                ..rule("no-anonymous", Effect::Deny, 1, &["*"], &["*"])
            },
        ],
    };
    assert_case(
        &set,
        &fixed_request(Some("u0"), "k0", "d0", "g:u0"),
        true,
        "owners",
    );
    assert_case(
        &set,
        &fixed_request(Some("u0"), "k0", "d0", "g:u1"),
        false,
        "default-deny",
    );
    assert_case(
        &set,
        &fixed_request(Some("u0"), "k0", "d0", "g:u0:z"),
        false,
        "default-deny",
    );
    assert_case(
        &set,
        &fixed_request(Some("u2"), "k1", "a0", "x:1"),
        true,
        "plain-users",
    );
    assert_case(
        &set,
        &fixed_request(Some("u2"), "k1", "a0", "x:"),
        false,
        "default-deny",
    );
    let mut admin = fixed_request(Some("u2"), "k1", "a0", "x:1");
    admin.roles = vec!["r0".to_owned()];
    assert_case(&set, &admin, false, "default-deny");
    assert_case(
        &set,
        &fixed_request(None, "k0", "d0", "g:u0"),
        false,
        "no-anonymous",
    );
}
