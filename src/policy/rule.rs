//! Rules as the engine evaluates them: an effect, the resource kinds and actions they cover, and native
//! conditions that compare parts of the request with the principal.

use serde::Serialize;

/// What a matching rule decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    Allow,
    Deny,
}

/// The actions a rule covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Actions {
    Any,
    Only(Vec<String>),
}

/// A value read from the request. An operand that is absent (or not a string) makes the condition that
/// reads it false.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operand {
    /// The resource id.
    ResourceId,
    /// The group of a feed id `group:user_id`.
    FeedGroup,
    /// The user of a feed id `group:user_id`: the feed's owner.
    FeedOwner,
    /// A string attribute of the resource.
    Attribute(String),
    /// A string field of the request context.
    Context(String),
}

/// A condition on the request. All conditions of a rule must hold for it to match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    /// The operand is the principal's user id.
    IsPrincipal(Operand),
    /// The operand refers to the principal: its user id, or Stream's user reference `SU:<user id>`.
    RefersToPrincipal(Operand),
    /// The operand is one of the values.
    OneOf(Operand, Vec<String>),
    Not(Box<Condition>),
}

/// A named rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Returned in `CheckResponse.rule`; unique within a set.
    pub name: String,
    /// Ends the reason sentence: why the rule allows or denies.
    pub description: String,
    pub effect: Effect,
    pub kinds: Vec<String>,
    pub actions: Actions,
    pub conditions: Vec<Condition>,
}

/// How the `feed_id` and `user_id` claims of a scope token apply to a resource kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ScopeBinding {
    /// The feed a resource of this kind belongs to, as a feed id `group:user_id`.
    pub feed: Option<Operand>,
    /// The user who owns a resource of this kind.
    pub owner: Option<Operand>,
}
