//! The YAML file format, as written by people. `compile` turns these documents into the model.
//! Every struct denies unknown fields, so a typo is a load error, not a silently ignored rule.
//!
//! Nodes an error can be about are [`Spanned`], so every error names the line of the node at fault
//! without searching the text again. The parser is `dbt-yaml` (dbt Labs' maintained fork of
//! serde_yaml): it runs the same libyaml as serde_norway did, so syntax errors, their text and line,
//! the nesting and alias-expansion limits and the scalar rules are unchanged, and it records where
//! each `Spanned` node starts. serde-saphyr and marked-yaml were weighed and not taken: their parsers
//! report some syntax errors on another line (a tab in a plain scalar), and marked-yaml refuses tags
//! and accepts several documents in one file.
//!
//! Words with a fixed vocabulary (`effect`, `logic`, `type`, `strategy`, `principal`, ...) stay
//! strings here and are read by one function each below: a wrong word is then a load error with its
//! line, collected with every other error of the load, not a parse error that hides them.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::model::{Effect, Logic, PrincipalFilter, Strategy};

pub use dbt_yaml::Spanned;

/// The 1-based line where `node` starts, when the parser recorded one (a defaulted field has none).
pub fn line_of<T>(node: &Spanned<T>) -> Option<usize> {
    let span = node.span();
    span.is_valid().then(|| span.start.line())
}

/// One policy file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub settings: Option<Spanned<Settings>>,
    #[serde(default)]
    pub lists: BTreeMap<Spanned<String>, Vec<String>>,
    #[serde(default)]
    pub resources: Vec<ResourceDoc>,
    #[serde(default)]
    pub rules: Vec<RuleDoc>,
    #[serde(default)]
    pub chat_policies: Vec<ChatPolicyDoc>,
    #[serde(default)]
    pub policies: Vec<PolicyDoc>,
    #[serde(default)]
    pub permissions: Vec<PermissionDoc>,
    pub revocations: Option<Spanned<RevocationsDoc>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RouteDoc>>,
}

/// An HTTP route: method(s) and path template to the resource kind, id and action it stands for.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteDoc {
    pub name: String,
    pub methods: Option<OneOrMany>,
    pub path: String,
    pub resource: Option<String>,
    pub id: Option<String>,
    pub action: Option<String>,
    /// Resource attributes by name: a value source or a list of them (the first with a value wins).
    #[serde(default)]
    pub attributes: BTreeMap<String, OneOrMany>,
    /// Context fields, as `attributes`.
    #[serde(default)]
    pub context: BTreeMap<String, OneOrMany>,
    pub public: Option<bool>,
    /// Attributes that may take the kind's owner, feed or channel from a source the client controls
    /// (`header.`, `query.`, `body.`): a header the proxy itself sets, or a body that is the very
    /// resource being written.
    #[serde(default)]
    pub trusted: Vec<String>,
    /// More resources of the same kind the request acts on (id templates, as `id`): each that has a
    /// value must be allowed too.
    #[serde(default)]
    pub also_ids: Vec<String>,
}

/// Token revocation, Stream's semantics: every token issued before a time is refused.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevocationsDoc {
    /// Every user and scope token of the app issued before this RFC 3339 time.
    pub app_issued_before: Option<Spanned<String>>,
    /// Per user id: every token of that user issued before the time.
    #[serde(default)]
    pub users: BTreeMap<String, Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub strategy: Option<Spanned<String>>,
    /// `enforcing` (default), `permissive` or `disabled`.
    pub mode: Option<Spanned<String>>,
    /// The mode for requests through the route table (proxies); defaults to `mode`.
    pub route_mode: Option<Spanned<String>>,
    /// The body of proxy denials: `stream` (default) or `problem` (RFC 9457).
    pub route_errors: Option<Spanned<String>>,
}

/// A string or a list of strings.
#[derive(Debug, Clone)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Read by hand rather than as an untagged enum: a wrong value then says what was expected, and the
/// parser keeps its line.
impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = OneOrMany;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany::One(value.to_owned()))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<OneOrMany, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element::<String>()? {
                    values.push(value);
                }
                Ok(OneOrMany::Many(values))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceDoc {
    pub kind: Spanned<String>,
    pub id: Option<Spanned<String>>,
    pub owner: Option<Spanned<String>>,
    pub feed: Option<Spanned<String>>,
    /// The feed groups, so that scope tokens' compact feed ids (`userjack`) read one way only.
    pub feed_groups: Option<Spanned<OneOrMany>>,
    pub channel: Option<Spanned<String>>,
    #[serde(default)]
    pub actions: Spanned<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub effect: String,
    pub priority: Option<Spanned<i64>>,
    pub resource: Spanned<OneOrMany>,
    pub id: Option<Spanned<String>>,
    pub actions: Spanned<OneOrMany>,
    pub when: Option<Spanned<ConditionDoc>>,
    pub unless: Option<Spanned<ConditionDoc>>,
}

/// A condition: every key present must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDoc {
    pub roles: Option<Spanned<Vec<String>>>,
    pub groups: Option<Spanned<Vec<String>>>,
    pub users: Option<Spanned<Vec<String>>>,
    pub principal: Option<Spanned<String>>,
    pub channel_roles: Option<Spanned<Vec<String>>>,
    pub owner: Option<Spanned<bool>>,
    pub is_principal: Option<Spanned<OneOrMany>>,
    pub refers_to_principal: Option<Spanned<OneOrMany>>,
    #[serde(rename = "in")]
    pub in_: Option<BTreeMap<Spanned<String>, OneOrMany>>,
    pub equals: Option<BTreeMap<Spanned<String>, String>>,
    pub cel: Option<Spanned<String>>,
    pub all: Option<Vec<Spanned<ConditionDoc>>>,
    pub any: Option<Spanned<Vec<Spanned<ConditionDoc>>>>,
    pub not: Option<Box<Spanned<ConditionDoc>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatPolicyDoc {
    pub name: Spanned<String>,
    pub resources: Spanned<OneOrMany>,
    pub kinds: Option<Spanned<OneOrMany>>,
    pub roles: Spanned<OneOrMany>,
    #[serde(default)]
    pub owner: bool,
    pub action: Spanned<String>,
    pub priority: Spanned<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    pub name: Spanned<String>,
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub logic: Option<Spanned<String>>,
    pub roles: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub users: Option<Vec<String>>,
    pub not_before: Option<Spanned<String>>,
    pub not_after: Option<Spanned<String>>,
    pub hours: Option<Spanned<HoursDoc>>,
    pub condition: Option<Spanned<String>>,
    pub policies: Option<Vec<Spanned<String>>>,
    pub strategy: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoursDoc {
    pub from: u8,
    pub to: u8,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionDoc {
    pub name: Spanned<String>,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type")]
    pub kind: Spanned<String>,
    pub resource: Option<Spanned<OneOrMany>>,
    pub id: Option<Spanned<String>>,
    pub scopes: Option<Spanned<Vec<String>>>,
    pub policies: Vec<Spanned<String>>,
    pub strategy: Option<Spanned<String>>,
    pub priority: Option<Spanned<i64>>,
}

/// What a named policy tests (`type:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    Role,
    Group,
    User,
    Time,
    Condition,
    Aggregated,
}

/// What a permission covers (`type:`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PermissionKind {
    Resource,
    Scope,
}

/// A rule's `effect`, in any letter case.
pub fn effect(word: &str) -> Result<Effect, String> {
    match word.to_ascii_lowercase().as_str() {
        "allow" => Ok(Effect::Allow),
        "deny" => Ok(Effect::Deny),
        other => Err(format!("effect must be allow or deny, not '{other}'")),
    }
}

/// A chat policy's `action`, spelled as Stream Chat does (`Allow`) or in lower case.
pub fn chat_action(word: &str) -> Result<Effect, String> {
    match word {
        "Allow" | "allow" => Ok(Effect::Allow),
        "Deny" | "deny" => Ok(Effect::Deny),
        other => Err(format!("action must be Allow or Deny, not '{other}'")),
    }
}

/// A named policy's `logic`, in any letter case.
pub fn logic(word: &str) -> Result<Logic, String> {
    match word.to_ascii_lowercase().as_str() {
        "positive" => Ok(Logic::Positive),
        "negative" => Ok(Logic::Negative),
        other => Err(format!("logic must be positive or negative, not '{other}'")),
    }
}

/// A `strategy`, in any letter case; `priority` only where `allow_priority` (the set's strategy, not
/// a permission's or an aggregated policy's).
pub fn strategy(word: &str, allow_priority: bool) -> Result<Strategy, String> {
    match word.to_ascii_lowercase().as_str() {
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

/// A condition's `principal`.
pub fn principal(word: &str) -> Result<PrincipalFilter, String> {
    match word {
        "user" => Ok(PrincipalFilter::User),
        "anonymous" => Ok(PrincipalFilter::Anonymous),
        "authenticated" => Ok(PrincipalFilter::Authenticated),
        other => Err(format!(
            "principal must be user, anonymous or authenticated, not '{other}'"
        )),
    }
}

/// A named policy's `type`.
pub fn policy_kind(word: &str) -> Result<PolicyKind, String> {
    match word {
        "role" => Ok(PolicyKind::Role),
        "group" => Ok(PolicyKind::Group),
        "user" => Ok(PolicyKind::User),
        "time" => Ok(PolicyKind::Time),
        "condition" => Ok(PolicyKind::Condition),
        "aggregated" => Ok(PolicyKind::Aggregated),
        other => Err(format!(
            "policy type must be role, group, user, time, condition or aggregated, not '{other}'"
        )),
    }
}

/// A permission's `type`.
pub fn permission_kind(word: &str) -> Result<PermissionKind, String> {
    match word {
        "resource" => Ok(PermissionKind::Resource),
        "scope" => Ok(PermissionKind::Scope),
        other => Err(format!(
            "permission type must be resource or scope, not '{other}'"
        )),
    }
}
