//! The YAML file format, as written by people. `compile` turns these documents into the model.
//! Every struct denies unknown fields, so a typo is a load error, not a silently ignored rule.

use std::collections::BTreeMap;

use serde::Deserialize;

/// One policy file. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub settings: Option<Settings>,
    #[serde(default)]
    pub lists: BTreeMap<String, Vec<String>>,
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
    pub revocations: Option<RevocationsDoc>,
    #[serde(default)]
    pub routes: Vec<RouteDoc>,
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
    pub app_issued_before: Option<String>,
    /// Per user id: every token of that user issued before the time.
    #[serde(default)]
    pub users: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub strategy: Option<String>,
    /// `enforcing` (default), `permissive` or `disabled`.
    pub mode: Option<String>,
    /// The mode for requests through the route table (proxies); defaults to `mode`.
    pub route_mode: Option<String>,
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
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
    pub kind: String,
    pub id: Option<String>,
    pub owner: Option<String>,
    pub feed: Option<String>,
    /// The feed groups, so that scope tokens' compact feed ids (`userjack`) read one way only.
    pub feed_groups: Option<OneOrMany>,
    pub channel: Option<String>,
    #[serde(default)]
    pub actions: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDoc {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub effect: String,
    pub priority: Option<i64>,
    pub resource: OneOrMany,
    pub id: Option<String>,
    pub actions: OneOrMany,
    pub when: Option<ConditionDoc>,
    pub unless: Option<ConditionDoc>,
}

/// A condition: every key present must hold.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDoc {
    pub roles: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub users: Option<Vec<String>>,
    pub principal: Option<String>,
    pub channel_roles: Option<Vec<String>>,
    pub owner: Option<bool>,
    pub is_principal: Option<OneOrMany>,
    pub refers_to_principal: Option<OneOrMany>,
    #[serde(rename = "in")]
    pub in_: Option<BTreeMap<String, OneOrMany>>,
    pub equals: Option<BTreeMap<String, String>>,
    pub cel: Option<String>,
    pub all: Option<Vec<ConditionDoc>>,
    pub any: Option<Vec<ConditionDoc>>,
    pub not: Option<Box<ConditionDoc>>,
}

impl ConditionDoc {
    /// No key at all: `when: {}`.
    pub fn is_empty(&self) -> bool {
        self.roles.is_none()
            && self.groups.is_none()
            && self.users.is_none()
            && self.principal.is_none()
            && self.channel_roles.is_none()
            && self.owner.is_none()
            && self.is_principal.is_none()
            && self.refers_to_principal.is_none()
            && self.in_.is_none()
            && self.equals.is_none()
            && self.cel.is_none()
            && self.all.is_none()
            && self.any.is_none()
            && self.not.is_none()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChatPolicyDoc {
    pub name: String,
    pub resources: OneOrMany,
    pub kinds: Option<OneOrMany>,
    pub roles: OneOrMany,
    #[serde(default)]
    pub owner: bool,
    pub action: String,
    pub priority: i64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyDoc {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub logic: Option<String>,
    pub roles: Option<Vec<String>>,
    pub groups: Option<Vec<String>>,
    pub users: Option<Vec<String>>,
    pub not_before: Option<String>,
    pub not_after: Option<String>,
    pub hours: Option<HoursDoc>,
    pub condition: Option<String>,
    pub policies: Option<Vec<String>>,
    pub strategy: Option<String>,
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
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub resource: Option<OneOrMany>,
    pub id: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub policies: Vec<String>,
    pub strategy: Option<String>,
    pub priority: Option<i64>,
}
