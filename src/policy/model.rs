//! The compiled policy model the engine evaluates: candidates (rules, chat policies, permissions),
//! named policies, kind declarations, and native conditions.

use std::fmt;

use serde::Serialize;

use super::cel::CelCondition;
use super::pattern::Pattern;

/// What a matching rule decides, or how a permission voted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Deny,
}

/// Whether a set's decisions are enforced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Decisions are answered as made.
    #[default]
    Enforcing,
    /// Decisions are made and logged, but every request is allowed; the answer says it was a dry run.
    Permissive,
    /// Nothing is evaluated; every request is allowed.
    Disabled,
}

impl Mode {
    pub fn parse(value: &str) -> Result<Mode, String> {
        match value {
            "enforcing" => Ok(Mode::Enforcing),
            "permissive" => Ok(Mode::Permissive),
            "disabled" => Ok(Mode::Disabled),
            other => Err(format!(
                "mode must be enforcing, permissive or disabled, not '{other}'"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforcing => "enforcing",
            Mode::Permissive => "permissive",
            Mode::Disabled => "disabled",
        }
    }
}

/// The enforcement modes of a set: for checks, and for requests that come through the route table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Modes {
    pub checks: Mode,
    pub routes: Mode,
}

/// The body a proxy's denial carries (`settings: route_errors`). Stream's clients turn Stream's error
/// body into their exception classes, so the Feeds preset keeps it; an API that is not Stream's gets
/// RFC 9457 problem details instead of Stream's codes and a getstream.io link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorFormat {
    /// Stream's JSON error body (`code`, `exception`, `more_info`, ...), `application/json`.
    #[default]
    Stream,
    /// RFC 9457 problem details, `application/problem+json`.
    Problem,
}

impl ErrorFormat {
    pub fn parse(value: &str) -> Result<ErrorFormat, String> {
        match value {
            "stream" => Ok(ErrorFormat::Stream),
            "problem" => Ok(ErrorFormat::Problem),
            other => Err(format!(
                "route_errors must be stream or problem, not '{other}'"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorFormat::Stream => "stream",
            ErrorFormat::Problem => "problem",
        }
    }

    /// Whether this is the default, which the revision leaves out so that sets written before the
    /// setting existed keep their revision.
    pub fn is_default(&self) -> bool {
        *self == ErrorFormat::Stream
    }
}

/// How votes (or a permission's policies) combine into one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The highest-priority vote decides; at equal priority a deny beats an allow.
    #[default]
    Priority,
    /// At least one PERMIT.
    Affirmative,
    /// Every vote PERMIT (and at least one vote).
    Unanimous,
    /// More PERMIT than DENY.
    Consensus,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Priority => "priority",
            Strategy::Affirmative => "affirmative",
            Strategy::Unanimous => "unanimous",
            Strategy::Consensus => "consensus",
        })
    }
}

impl Strategy {
    /// Combines PERMIT/DENY counts with a Keycloak strategy; `Priority` is not a counting strategy and
    /// is treated as unanimous here (it only reaches this for permissions' policies, where it is refused
    /// at load time).
    pub fn combine(self, permits: usize, denies: usize) -> bool {
        match self {
            Strategy::Affirmative => permits > 0,
            Strategy::Unanimous | Strategy::Priority => permits > 0 && denies == 0,
            Strategy::Consensus => permits > denies,
        }
    }
}

/// A value read from the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operand {
    Id,
    Kind,
    Action,
    PrincipalId,
    /// A capture of the kind's id pattern.
    Capture(String),
    Attribute(String),
    Context(String),
}

impl Operand {
    pub fn parse(text: &str) -> Result<Operand, String> {
        let text = text.trim();
        let field = |prefix: &str| {
            text.strip_prefix(prefix)
                .filter(|rest| !rest.is_empty())
                .map(str::to_owned)
        };
        match text {
            "id" | "resource.id" => Ok(Operand::Id),
            "kind" | "resource.kind" => Ok(Operand::Kind),
            "action" => Ok(Operand::Action),
            "principal.id" => Ok(Operand::PrincipalId),
            _ => {
                if let Some(name) = field("captures.").or_else(|| field("resource.captures.")) {
                    Ok(Operand::Capture(name))
                } else if let Some(key) =
                    field("attributes.").or_else(|| field("resource.attributes."))
                {
                    Ok(Operand::Attribute(key))
                } else if let Some(key) = field("context.") {
                    Ok(Operand::Context(key))
                } else {
                    Err(format!(
                        "unknown operand '{text}' (expected id, kind, action, principal.id, captures.<name>, attributes.<key> or context.<key>)"
                    ))
                }
            }
        }
    }
}

impl fmt::Display for Operand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Operand::Id => f.write_str("id"),
            Operand::Kind => f.write_str("kind"),
            Operand::Action => f.write_str("action"),
            Operand::PrincipalId => f.write_str("principal.id"),
            Operand::Capture(n) => write!(f, "captures.{n}"),
            Operand::Attribute(k) => write!(f, "attributes.{k}"),
            Operand::Context(k) => write!(f, "context.{k}"),
        }
    }
}

/// Which principals a `principal:` condition admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalFilter {
    User,
    Anonymous,
    Authenticated,
}

/// A condition on the request, compiled natively except for `Cel`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Roles(Vec<String>),
    Groups(Vec<String>),
    Users(Vec<String>),
    Principal(PrincipalFilter),
    /// The principal's role in the resource's channel (the kind's `channel` operand) is one of these.
    ChannelRoles(Vec<String>),
    /// The kind's owner operand is the principal.
    Owner,
    IsPrincipal(Operand),
    /// The operand is the principal's id or Stream's user reference `SU:<id>`.
    RefersToPrincipal(Operand),
    In(Operand, Vec<String>),
    Equals(Operand, String),
    Cel(#[serde(serialize_with = "cel_source")] CelCondition),
}

fn cel_source<S: serde::Serializer>(cel: &CelCondition, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(cel.source())
}

/// Which actions a candidate covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actions {
    Any,
    Only(Vec<String>),
}

/// Which kinds a candidate covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kinds {
    Any,
    Only(Vec<String>),
}

/// Where a candidate was written, for explanations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Rule,
    ChatPolicy,
    Permission,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Origin::Rule => "rule",
            Origin::ChatPolicy => "chat policy",
            Origin::Permission => "permission",
        })
    }
}

/// What a candidate does when it applies.
#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Body {
    /// Votes its effect when `when` holds and `unless` does not.
    Rule {
        effect: Effect,
        when: Option<Box<Condition>>,
        unless: Option<Box<Condition>>,
    },
    /// Always votes: PERMIT when its policies, combined by its strategy, grant.
    Permission {
        policies: Vec<usize>,
        strategy: Strategy,
    },
}

/// Something that may cast a vote on a request.
#[derive(Debug, Serialize)]
pub struct Candidate {
    pub name: String,
    pub description: String,
    pub origin: Origin,
    pub priority: i32,
    pub kinds: Kinds,
    pub id: Option<String>,
    #[serde(skip)]
    pub id_pattern: Option<Pattern>,
    pub actions: Actions,
    pub body: Body,
}

impl Candidate {
    /// The effect a rule casts, or `None` for permissions (which vote either way).
    pub fn fixed_effect(&self) -> Option<Effect> {
        match &self.body {
            Body::Rule { effect, .. } => Some(*effect),
            Body::Permission { .. } => None,
        }
    }
}

/// Keycloak's policy logic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Logic {
    #[default]
    Positive,
    Negative,
}

/// A Keycloak-style named policy.
#[derive(Debug, Serialize)]
pub struct NamedPolicy {
    pub name: String,
    pub logic: Logic,
    pub body: PolicyBody,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyBody {
    Role(Vec<String>),
    Group(Vec<String>),
    User(Vec<String>),
    Time {
        not_before: Option<i64>,
        not_after: Option<i64>,
        hours: Option<(u8, u8)>,
    },
    Condition(#[serde(serialize_with = "cel_source")] CelCondition),
    Aggregated {
        policies: Vec<usize>,
        strategy: Strategy,
    },
}

/// Revoked tokens: a token whose `iat` (0 when absent) is before the cut-off is refused.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Revocations {
    /// Seconds since the Unix epoch; user and scope tokens of the whole app issued before are revoked.
    pub app_issued_before: Option<i64>,
    /// Per user id.
    pub users: std::collections::BTreeMap<String, i64>,
}

impl Revocations {
    /// Whether a token of `user_id` issued at `issued_at` is revoked. Server tokens are never revoked
    /// here (Stream's SDKs sign them without `iat`); rotating the secret revokes them.
    pub fn revokes(&self, user_id: &str, issued_at: Option<i64>) -> bool {
        let issued_at = issued_at.unwrap_or(0);
        let before = |cutoff: &i64| issued_at < *cutoff;
        self.app_issued_before.as_ref().is_some_and(before)
            || (!user_id.is_empty() && self.users.get(user_id).is_some_and(before))
    }
}

/// A declared resource kind.
#[derive(Debug, Default, Serialize)]
pub struct KindDecl {
    pub id: Option<String>,
    #[serde(skip)]
    pub id_pattern: Option<Pattern>,
    pub owner: Option<Operand>,
    pub feed: Option<Operand>,
    /// The feed groups a compact feed id (`userjack`) is read against; required with `feed`.
    pub feed_groups: Vec<String>,
    pub channel: Option<Operand>,
    pub actions: Vec<String>,
}

impl KindDecl {
    /// The groups that a compact feed id could begin with, as (group, rest) pairs with a non-empty
    /// rest. One pair means the id reads one way; none or several mean it cannot be read safely.
    pub fn split_compact_feed<'a>(&'a self, compact: &'a str) -> Vec<(&'a str, &'a str)> {
        self.feed_groups
            .iter()
            .filter_map(|group| {
                compact
                    .strip_prefix(group.as_str())
                    .filter(|rest| !rest.is_empty())
                    .map(|rest| (group.as_str(), rest))
            })
            .collect()
    }
}
