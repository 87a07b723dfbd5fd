//! The built-in policy: Stream's default Activity Feeds permissions, written in the policy language
//! (`policies/stream-feeds/`) and embedded in the binary, with feed group permission types taken from
//! the configuration.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::compile::{LoadErrors, compile};
use super::set::PolicySet;
use super::source::Source;

/// The preset's files, embedded so the binary runs with no policy directory.
const PRESET: &[(&str, &str)] = &[
    (
        "policies/stream-feeds/feeds.yaml",
        include_str!("../../policies/stream-feeds/feeds.yaml"),
    ),
    (
        "policies/stream-feeds/routes.yaml",
        include_str!("../../policies/stream-feeds/routes.yaml"),
    ),
];

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
    /// everyone, `timeline` feeds private.
    fn default() -> Self {
        FeedsPreset {
            groups: BTreeMap::from([
                ("user".to_owned(), FeedGroupPermission::GlobalRead),
                ("timeline".to_owned(), FeedGroupPermission::Private),
                ("notification".to_owned(), FeedGroupPermission::GlobalWrite),
            ]),
        }
    }
}

impl FeedsPreset {
    /// The preset's sources, for tools that want to show or test them.
    pub fn sources() -> Vec<Source> {
        PRESET
            .iter()
            .map(|(path, text)| Source {
                path: (*path).to_owned(),
                text: (*text).to_owned(),
            })
            .collect()
    }

    /// Compiles the preset with this configuration's feed groups.
    pub fn compile(&self) -> Result<PolicySet, LoadErrors> {
        compile(&Self::sources(), &self.list_overrides())
    }

    /// The preset's group lists, rewritten from the configured permission types.
    pub fn list_overrides(&self) -> BTreeMap<String, Vec<String>> {
        let groups_where = |keep: fn(FeedGroupPermission) -> bool| -> Vec<String> {
            self.groups
                .iter()
                .filter(|(_, permission)| keep(**permission))
                .map(|(group, _)| group.clone())
                .collect()
        };
        BTreeMap::from([
            (
                "feed_groups".to_owned(),
                self.groups.keys().cloned().collect(),
            ),
            (
                "global_read_feed_groups".to_owned(),
                groups_where(FeedGroupPermission::readable_by_all),
            ),
            (
                "global_write_feed_groups".to_owned(),
                groups_where(FeedGroupPermission::writable_by_all),
            ),
        ])
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
}
