//! Stream's default Activity Feeds permissions, as rules.
//!
//! Every paragraph of Stream's "Default Permissions" list is one rule here; anything no rule allows is
//! denied. Feed groups carry one of Stream's permission types, configurable per group.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::rule::{Actions, Condition, Effect, Operand, Rule, ScopeBinding};
use super::set::{CompileError, PolicySet};

/// Stream's feed group permission types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeedGroupPermission {
    /// Only the feed's owner reads and writes (Stream's default for every group).
    Private,
    /// Anyone reads; only the owner writes (Stream's `user` group).
    GlobalRead,
    /// Anyone writes; only the owner reads (Stream's `notification` group).
    GlobalWrite,
    /// Anyone reads and writes.
    GlobalReadWrite,
}

impl FeedGroupPermission {
    fn readable_by_all(self) -> bool {
        matches!(self, Self::GlobalRead | Self::GlobalReadWrite)
    }

    fn writable_by_all(self) -> bool {
        matches!(self, Self::GlobalWrite | Self::GlobalReadWrite)
    }
}

impl FromStr for FeedGroupPermission {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s
            .trim()
            .to_ascii_lowercase()
            .replace(['-', ' ', '/'], "_")
            .as_str()
        {
            "private" => Ok(Self::Private),
            "global_read" | "read" => Ok(Self::GlobalRead),
            "global_write" | "write" => Ok(Self::GlobalWrite),
            "global_read_write" | "read_write" => Ok(Self::GlobalReadWrite),
            other => Err(format!(
                "unknown feed group permission '{other}' (expected private, global_read, global_write or global_read_write)"
            )),
        }
    }
}

impl fmt::Display for FeedGroupPermission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Private => "private",
            Self::GlobalRead => "global_read",
            Self::GlobalWrite => "global_write",
            Self::GlobalReadWrite => "global_read_write",
        })
    }
}

/// The Feeds defaults, parameterized by the permission type of each feed group. Groups not listed are
/// private.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedsPreset {
    pub groups: BTreeMap<String, FeedGroupPermission>,
}

impl Default for FeedsPreset {
    /// Stream's defaults: `user` feeds are readable by everyone, `notification` feeds writable by
    /// everyone.
    fn default() -> Self {
        FeedsPreset {
            groups: BTreeMap::from([
                ("user".to_owned(), FeedGroupPermission::GlobalRead),
                ("notification".to_owned(), FeedGroupPermission::GlobalWrite),
            ]),
        }
    }
}

/// Splits a feed id `group:user_id` at its first colon; `None` unless both sides are non-empty.
pub fn split_feed_id(id: &str) -> Option<(&str, &str)> {
    id.split_once(':')
        .filter(|(group, user)| !group.is_empty() && !user.is_empty())
}

impl FeedsPreset {
    pub fn compile(&self) -> Result<PolicySet, CompileError> {
        PolicySet::compile(self.rules(), scope_bindings())
    }

    pub fn rules(&self) -> Vec<Rule> {
        let groups_where = |keep: fn(FeedGroupPermission) -> bool| -> Vec<String> {
            self.groups
                .iter()
                .filter(|(_, permission)| keep(**permission))
                .map(|(group, _)| group.clone())
                .collect()
        };
        let readable = groups_where(FeedGroupPermission::readable_by_all);
        let writable = groups_where(FeedGroupPermission::writable_by_all);

        let mut rules = vec![
            rule(
                "no-impersonation",
                "an activity's actor (context.actor) must be the user itself or 'SU:<user id>'",
                Effect::Deny,
                &["feed"],
                &["write"],
                vec![Condition::Not(Box::new(Condition::RefersToPrincipal(
                    Operand::Context("actor".into()),
                )))],
            ),
            rule(
                "own-feeds",
                "a user may do any operation on feeds whose user id is its own",
                Effect::Allow,
                &["feed"],
                &[],
                vec![Condition::IsPrincipal(Operand::FeedOwner)],
            ),
        ];
        if !readable.is_empty() {
            rules.push(rule(
                "read-global-read-feeds",
                &format!(
                    "feeds of the groups {} are readable by any user",
                    readable.join(", ")
                ),
                Effect::Allow,
                &["feed"],
                &["read"],
                vec![Condition::OneOf(Operand::FeedGroup, readable)],
            ));
        }
        if !writable.is_empty() {
            rules.push(rule(
                "write-global-write-feeds",
                &format!(
                    "any user may add activities to feeds of the groups {}",
                    writable.join(", ")
                ),
                Effect::Allow,
                &["feed"],
                &["write"],
                vec![Condition::OneOf(Operand::FeedGroup, writable)],
            ));
        }
        rules.extend(fixed_rules());
        rules
    }
}

fn fixed_rules() -> Vec<Rule> {
    let owner_is =
        |attribute: &str| vec![Condition::IsPrincipal(Operand::Attribute(attribute.into()))];
    vec![
        rule(
            "read-any-activity",
            "any activity can be read by its id",
            Effect::Allow,
            &["activities"],
            &["read"],
            vec![],
        ),
        rule(
            "follow-from-own-feeds",
            "a user may follow and unfollow any feed from a follower feed of its own",
            Effect::Allow,
            &["follower"],
            &[],
            vec![Condition::IsPrincipal(Operand::FeedOwner)],
        ),
        rule(
            "read-any-user",
            "user data is readable by any user",
            Effect::Allow,
            &["users"],
            &["read"],
            vec![],
        ),
        rule(
            "manage-own-user",
            "a user may create, update and delete its own user",
            Effect::Allow,
            &["users"],
            &["write", "delete"],
            vec![Condition::IsPrincipal(Operand::ResourceId)],
        ),
        rule(
            "upload-files-and-images",
            "any user may upload files and images",
            Effect::Allow,
            &["files", "images"],
            &["write"],
            vec![],
        ),
        rule(
            "delete-own-files-and-images",
            "a user may delete the files and images it uploaded (attributes.owner)",
            Effect::Allow,
            &["files", "images"],
            &["delete"],
            owner_is("owner"),
        ),
        rule(
            "process-own-images",
            "a user may process the images it uploaded (attributes.owner)",
            Effect::Allow,
            &["images"],
            &["process"],
            owner_is("owner"),
        ),
        rule(
            "manage-own-reactions-and-collections",
            "a user may create, update and delete reactions and collection entries whose user_id is its own",
            Effect::Allow,
            &["reactions", "collections"],
            &["write", "delete"],
            owner_is("user_id"),
        ),
        rule(
            "read-reactions-and-collections",
            "reactions and collection entries are readable by any user",
            Effect::Allow,
            &["reactions", "collections"],
            &["read"],
            vec![],
        ),
        rule(
            "read-open-graph",
            "any user may request Open Graph data for any URL",
            Effect::Allow,
            &["og"],
            &["read"],
            vec![],
        ),
    ]
}

/// Feeds and follow relations belong to a feed; the other kinds have an owner but no feed.
fn scope_bindings() -> BTreeMap<String, ScopeBinding> {
    let feed_addressed = ScopeBinding {
        feed: Some(Operand::ResourceId),
        owner: Some(Operand::FeedOwner),
    };
    let owned_by = |operand: Operand| ScopeBinding {
        feed: None,
        owner: Some(operand),
    };
    BTreeMap::from([
        ("feed".to_owned(), feed_addressed.clone()),
        ("follower".to_owned(), feed_addressed),
        ("users".to_owned(), owned_by(Operand::ResourceId)),
        (
            "reactions".to_owned(),
            owned_by(Operand::Attribute("user_id".into())),
        ),
        (
            "collections".to_owned(),
            owned_by(Operand::Attribute("user_id".into())),
        ),
        (
            "files".to_owned(),
            owned_by(Operand::Attribute("owner".into())),
        ),
        (
            "images".to_owned(),
            owned_by(Operand::Attribute("owner".into())),
        ),
    ])
}

/// A rule covering `actions` of `kinds`; no actions means every action.
fn rule(
    name: &str,
    description: &str,
    effect: Effect,
    kinds: &[&str],
    actions: &[&str],
    conditions: Vec<Condition>,
) -> Rule {
    Rule {
        name: name.to_owned(),
        description: description.to_owned(),
        effect,
        kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
        actions: if actions.is_empty() {
            Actions::Any
        } else {
            Actions::Only(actions.iter().map(|a| (*a).to_owned()).collect())
        },
        conditions,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn permission_types_parse_in_several_spellings() {
        assert_eq!("global-read".parse(), Ok(FeedGroupPermission::GlobalRead));
        assert_eq!(
            "read_write".parse(),
            Ok(FeedGroupPermission::GlobalReadWrite)
        );
        assert!("public".parse::<FeedGroupPermission>().is_err());
    }

    #[test]
    fn default_preset_compiles_and_group_changes_change_the_revision() {
        let default = FeedsPreset::default().compile().unwrap();
        let mut preset = FeedsPreset::default();
        preset
            .groups
            .insert("timeline".into(), FeedGroupPermission::GlobalRead);
        assert_ne!(default.revision(), preset.compile().unwrap().revision());
    }

    #[test]
    fn feed_ids_split_at_the_first_colon() {
        assert_eq!(
            split_feed_id("timeline:tommaso"),
            Some(("timeline", "tommaso"))
        );
        assert_eq!(split_feed_id("user:a:b"), Some(("user", "a:b")));
        assert_eq!(split_feed_id("userjack"), None);
        assert_eq!(split_feed_id(":jack"), None);
    }
}
