//! The kinds of rows in the settings table: a scalar setting, a list, a YAML tree, the Feeds preset's
//! groups and documented-only rows. Each knows its environment variable and file key, reads its value
//! from one of them, and writes it into the [`Draft`].

use std::collections::BTreeMap;

use super::draft::Draft;
use super::{ConfigError, parse};
use crate::policy::{FeedGroupPermission, FeedsPreset};

/// A default as README shows it.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shown {
    /// A value, shown in backticks and parsed like a configured one when nothing is configured.
    Value(&'static str),
    /// Words describing what happens when nothing is configured; no value is parsed.
    Words(&'static str),
}

/// What README says about a setting, and where the file keeps it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Doc {
    /// The environment variable; empty for a setting read from the file only (a [`Tree`]).
    pub env: &'static str,
    /// The dotted file key (`limits.http_max_connections`); empty: not in the file.
    pub key: &'static str,
    pub default: Shown,
    pub description: &'static str,
    /// Where the key comes in the file format's own order, which unknown-key messages list (README
    /// orders the settings differently).
    pub file_order: u8,
}

/// How the file spells a setting's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    Scalar,
    /// A map of names to scalars (`feeds.groups`).
    Map,
    /// Any YAML value (a list of issuers, say), handed whole to the setting's own typed reader.
    Tree,
}

/// One row of the table.
pub(super) trait Entry: Sync {
    fn doc(&self) -> &Doc;
    fn shape(&self) -> Shape {
        Shape::Scalar
    }
    /// README's first cell.
    fn env_cell(&self) -> String {
        format!("`{}`", self.doc().env)
    }
    /// Reads the setting (environment over file over default) into `draft`, recording any error.
    fn load(&self, input: &mut Input<'_>, draft: &mut Draft);
}

/// A setting with one value, parsed by `parse` and stored by `put`.
pub(super) struct Setting<T> {
    pub doc: Doc,
    pub parse: fn(&str) -> Result<T, String>,
    pub put: fn(&mut Draft, T),
}

impl<T> Entry for Setting<T> {
    fn doc(&self) -> &Doc {
        &self.doc
    }

    fn load(&self, input: &mut Input<'_>, draft: &mut Draft) {
        let (source, value) = match input.raw(&self.doc) {
            Some((source, value)) => {
                draft.sources.insert(self.doc.env, source.clone());
                (source, value)
            }
            None => match self.doc.default {
                Shown::Value(value) => (self.doc.env.to_owned(), value.to_owned()),
                Shown::Words(_) => return,
            },
        };
        match (self.parse)(&value) {
            Ok(value) => (self.put)(draft, value),
            Err(message) => input.error(&source, message),
        }
    }
}

/// The built-in preset's feed groups: a map in the file, `group=type,...` in the environment, each
/// merged over the preset's own defaults.
pub(super) struct FeedGroups {
    pub doc: Doc,
}

impl Entry for FeedGroups {
    fn doc(&self) -> &Doc {
        &self.doc
    }

    fn shape(&self) -> Shape {
        Shape::Map
    }

    fn load(&self, input: &mut Input<'_>, draft: &mut Draft) {
        if let Some(FileValue::Map(groups)) = input.file.remove(self.doc.key) {
            draft.feed_groups_configured |= !groups.is_empty();
            for (group, permission) in groups {
                let source = format!("{}.{group}", self.doc.key);
                set_group(&mut draft.feeds, &group, &permission, &source, input);
            }
        }
        let Some(list) = (input.env)(self.doc.env) else {
            return;
        };
        draft.feed_groups_configured = true;
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let Some((group, permission)) = entry.split_once('=') else {
                input.error(
                    self.doc.env,
                    "expected group=permission pairs separated by commas",
                );
                continue;
            };
            set_group(
                &mut draft.feeds,
                group.trim(),
                permission,
                self.doc.env,
                input,
            );
        }
    }
}

fn set_group(
    preset: &mut FeedsPreset,
    group: &str,
    permission: &str,
    source: &str,
    input: &mut Input<'_>,
) {
    let valid_name = !group.is_empty()
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid_name {
        input.error(source, "feed group names are letters, digits, '_' and '-'");
        return;
    }
    match permission.trim().parse::<FeedGroupPermission>() {
        Ok(permission) => {
            preset.groups.insert(group.to_owned(), permission);
        }
        Err(message) => input.error(source, message),
    }
}

/// A row README documents that is read elsewhere: the `OTEL_*` variables (see `otlp`) or the
/// command line's `--config`.
pub(super) struct Documented {
    pub doc: Doc,
    /// Follows the variable's name in README (`etc.` for a family of variables).
    pub env_note: &'static str,
}

impl Entry for Documented {
    fn doc(&self) -> &Doc {
        &self.doc
    }

    fn env_cell(&self) -> String {
        format!("`{}`{}", self.doc.env, self.env_note)
    }

    fn load(&self, _: &mut Input<'_>, _: &mut Draft) {}
}

/// A setting whose value is a YAML structure (a list of records, say), read from the file only into
/// a type of its domain by `parse`, which refuses unknown fields.
pub(super) struct Tree<T> {
    pub doc: Doc,
    pub parse: fn(serde_norway::Value) -> Result<T, String>,
    pub put: fn(&mut Draft, T),
}

impl<T> Entry for Tree<T> {
    fn doc(&self) -> &Doc {
        &self.doc
    }

    fn shape(&self) -> Shape {
        Shape::Tree
    }

    fn env_cell(&self) -> String {
        String::new()
    }

    fn load(&self, input: &mut Input<'_>, draft: &mut Draft) {
        let Some(FileValue::Tree(value)) = input.file.remove(self.doc.key) else {
            return;
        };
        match (self.parse)(value) {
            Ok(value) => (self.put)(draft, value),
            Err(message) => input.error(self.doc.key, message),
        }
    }
}

/// A list of names: comma-separated in the environment, a YAML list (or the same comma-separated
/// text) in the file.
pub(super) struct List {
    pub doc: Doc,
    pub put: fn(&mut Draft, Vec<String>),
}

impl Entry for List {
    fn doc(&self) -> &Doc {
        &self.doc
    }

    fn shape(&self) -> Shape {
        Shape::Tree
    }

    fn load(&self, input: &mut Input<'_>, draft: &mut Draft) {
        let from_file = input.file.remove(self.doc.key);
        let (source, items) = if let Some(list) = (input.env)(self.doc.env) {
            (self.doc.env, split_list(&list))
        } else {
            match from_file {
                Some(FileValue::Tree(serde_norway::Value::String(list))) => {
                    (self.doc.key, split_list(&list))
                }
                Some(FileValue::Tree(value)) => match parse::tree::<Vec<String>>(value) {
                    Ok(items) => (self.doc.key, items),
                    Err(_) => {
                        input.error(self.doc.key, "expected a list of strings");
                        return;
                    }
                },
                _ => return,
            }
        };
        draft.sources.insert(self.doc.env, source.to_owned());
        (self.put)(draft, items);
    }
}

fn split_list(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A setting's value as the file gives it.
pub(super) enum FileValue {
    Scalar(String),
    Map(BTreeMap<String, String>),
    Tree(serde_norway::Value),
}

/// What the settings are read from, and the errors found so far.
pub(super) struct Input<'e> {
    pub env: &'e dyn Fn(&str) -> Option<String>,
    /// The file's values by dotted key.
    pub file: BTreeMap<&'static str, FileValue>,
    pub errors: Vec<ConfigError>,
}

impl Input<'_> {
    pub fn error(&mut self, setting: &str, message: impl Into<String>) {
        self.errors.push(ConfigError {
            setting: setting.to_owned(),
            message: message.into(),
        });
    }

    /// The configured text and where it came from: the environment, else the file.
    fn raw(&mut self, doc: &Doc) -> Option<(String, String)> {
        if let Some(value) = (self.env)(doc.env) {
            return Some((doc.env.to_owned(), value));
        }
        match self.file.remove(doc.key) {
            Some(FileValue::Scalar(value)) => Some((doc.key.to_owned(), value)),
            _ => None,
        }
    }
}
