//! A policy file's text to its documents, item by item, so that one bad item hides no other.
//!
//! The text is read once into a spanned YAML tree; each section, and each item of a list section,
//! is then checked for unknown and missing keys (with a hint for each) and deserialized on its own.
//! An item with a problem is reported with its line and name and left out; the load fails anyway,
//! so leaving it out only keeps its problems from being reported twice. Its name, when it can be
//! read, is kept as [`Broken`], so that the item still counts as defined: a typo inside a named
//! policy is one error, not one more at every permission that names the policy.

use std::collections::BTreeMap;

use dbt_yaml::{Mapping, Value};
use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

use super::super::file::{
    ChatPolicyDoc, ConditionDoc, HoursDoc, PermissionDoc, PolicyDoc, PolicyFile, ResourceDoc,
    RevocationsDoc, RouteDoc, RuleDoc, Settings, Spanned,
};
use super::hint;

/// How deep below an item a misplaced key is looked for.
const SEARCH_DEPTH: usize = 4;
/// How deep conditions are checked key by key (deeper ones are still deserialized and checked).
const CONDITION_DEPTH: usize = 16;

/// One problem found while reading a file: its line and message.
pub(super) struct Problem {
    pub line: Option<usize>,
    pub message: String,
}

/// The namespaces that items' names live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Namespace {
    List,
    Kind,
    /// Rules, chat policies and permissions share one namespace.
    Candidate,
    Policy,
    Route,
}

/// An item that failed to read but whose name could be read.
#[derive(Debug)]
pub(super) struct Broken {
    pub namespace: Namespace,
    pub name: String,
    /// "rule 'x'", as the item's own errors name it.
    pub label: String,
    pub line: Option<usize>,
}

/// The keys a document may have, and those it must have.
struct Shape {
    what: &'static str,
    /// Where the item's name lives, for the list sections.
    namespace: Option<Namespace>,
    fields: fn() -> &'static [&'static str],
    required: &'static [&'static str],
    /// Keys whose values are conditions, checked key by key too.
    conditions: &'static [&'static str],
    /// Keys whose values are lists of conditions.
    condition_lists: &'static [&'static str],
}

const RULE: Shape = Shape {
    what: "rule",
    namespace: Some(Namespace::Candidate),
    fields: fields_of::<RuleDoc>,
    required: &["name", "effect", "resource", "actions"],
    conditions: &["when", "unless"],
    condition_lists: &[],
};
const CHAT_POLICY: Shape = Shape {
    what: "chat policy",
    namespace: Some(Namespace::Candidate),
    fields: fields_of::<ChatPolicyDoc>,
    required: &["name", "resources", "roles", "action", "priority"],
    conditions: &[],
    condition_lists: &[],
};
const POLICY: Shape = Shape {
    what: "policy",
    namespace: Some(Namespace::Policy),
    fields: fields_of::<PolicyDoc>,
    required: &["name", "type"],
    conditions: &[],
    condition_lists: &[],
};
const PERMISSION: Shape = Shape {
    what: "permission",
    namespace: Some(Namespace::Candidate),
    fields: fields_of::<PermissionDoc>,
    required: &["name", "type", "policies"],
    conditions: &[],
    condition_lists: &[],
};
const ROUTE: Shape = Shape {
    what: "route",
    namespace: Some(Namespace::Route),
    fields: fields_of::<RouteDoc>,
    required: &["name", "path"],
    conditions: &[],
    condition_lists: &[],
};
const RESOURCE: Shape = Shape {
    what: "kind",
    namespace: Some(Namespace::Kind),
    fields: fields_of::<ResourceDoc>,
    required: &["kind"],
    conditions: &[],
    condition_lists: &[],
};
const CONDITION: Shape = Shape {
    what: "condition",
    namespace: None,
    fields: fields_of::<ConditionDoc>,
    required: &[],
    conditions: &["not"],
    condition_lists: &["all", "any"],
};
const SETTINGS: Shape = Shape {
    what: "settings",
    namespace: None,
    fields: fields_of::<Settings>,
    required: &[],
    conditions: &[],
    condition_lists: &[],
};
const REVOCATIONS: Shape = Shape {
    what: "revocations",
    namespace: None,
    fields: fields_of::<RevocationsDoc>,
    required: &[],
    conditions: &[],
    condition_lists: &[],
};
const HOURS: Shape = Shape {
    what: "hours",
    namespace: None,
    fields: fields_of::<HoursDoc>,
    required: &["from", "to"],
    conditions: &[],
    condition_lists: &[],
};

/// Reads a file's text (already checked for size and nesting) into its documents, the problems
/// found and the names of the items that did not read. Problems mean the load fails; the documents
/// are those that read cleanly.
pub(super) fn parse_file(text: &str) -> (PolicyFile, Vec<Problem>, Vec<Broken>) {
    let mut reader = Reader {
        text,
        problems: Vec::new(),
        broken: Vec::new(),
        misplaced: Vec::new(),
    };
    let mut file = PolicyFile::default();
    match dbt_yaml::from_str::<Value>(text) {
        Ok(Value::Mapping(top, _)) => reader.sections(&top, &mut file),
        Ok(Value::Null(_)) => {}
        Ok(other) => reader.push(
            line(&other),
            "a policy file is a mapping of sections (rules:, resources:, ...)",
        ),
        Err(e) => {
            reader.push_error(None, &e, None);
            if let Some(last) = reader.problems.last_mut() {
                last.message
                    .push_str(&indent_hint(text, &last.message, last.line));
            }
        }
    }
    (file, reader.problems, reader.broken)
}

/// For a syntax error that a line indented unlike its neighbours causes, where it is and how far.
/// A key indented further than the line above it continues that line's value, which the parser
/// reports as a mapping where none may be, at the key rather than at the indentation.
fn indent_hint(text: &str, message: &str, line: Option<usize>) -> String {
    const INDENT_ERRORS: [&str; 3] = [
        "mapping values are not allowed",
        "did not find expected key",
        "did not find expected '-' indicator",
    ];
    let Some(line) = line.filter(|_| INDENT_ERRORS.iter().any(|e| message.contains(e))) else {
        return String::new();
    };
    let indent = |l: &str| l.len() - l.trim_start_matches(' ').len();
    let lines: Vec<&str> = text.lines().collect();
    let Some(at) = line.checked_sub(1).and_then(|i| lines.get(i)) else {
        return String::new();
    };
    let above = lines
        .iter()
        .take(line.saturating_sub(1))
        .enumerate()
        .rev()
        .find(|(_, l)| {
            let t = l.trim();
            !t.is_empty() && !t.starts_with('#')
        });
    let here = indent(at);
    let Some((i, l)) = above else {
        return String::new();
    };
    let (number, there) = (i + 1, indent(l));
    if here > there {
        format!(
            " (line {line} is indented {here} columns, more than line {number} above it ({there}): keys of one item line up, and a key indented further is read as part of the value above it)"
        )
    } else if here < there {
        format!(
            " (line {line} is indented {here} columns, less than line {number} above it ({there}): keys of one item line up)"
        )
    } else {
        String::new()
    }
}

struct Reader<'t> {
    text: &'t str,
    problems: Vec<Problem>,
    broken: Vec<Broken>,
    /// The lines of keys that an item misses and that are written elsewhere: the missing field's
    /// error explains them, so they are not also reported as unknown.
    misplaced: Vec<usize>,
}

impl Reader<'_> {
    fn push(&mut self, line: Option<usize>, message: impl Into<String>) {
        self.problems.push(Problem {
            line,
            message: message.into(),
        });
    }

    /// A parser or type error; the parser appends " at line N column M", reported as the line.
    fn push_error(&mut self, label: Option<&str>, e: &dbt_yaml::Error, fallback: Option<usize>) {
        let text = e.to_string();
        let text = text.split(" at line ").next().unwrap_or(&text);
        let text = text.replace('`', "'");
        let message = match label {
            Some(label) => format!("{label}: {text}"),
            None => text,
        };
        let at = e.location().or_else(|| e.span().map(|span| span.start));
        let line = at.map(|l| l.line()).filter(|&l| l > 0).or(fallback);
        self.push(line, message);
    }

    fn sections(&mut self, top: &Mapping, file: &mut PolicyFile) {
        let known = fields_of::<PolicyFile>();
        let mut unknown = Vec::new();
        for (key, value) in top {
            let Some(name) = key.as_str() else {
                self.push(line(key), "section names are strings");
                continue;
            };
            if matches!(value, Value::Null(_)) {
                continue;
            }
            match name {
                "settings" => file.settings = self.single(value, &SETTINGS, top),
                "revocations" => file.revocations = self.single(value, &REVOCATIONS, top),
                "lists" => {
                    self.plain(value, "lists");
                    file.lists = self.lists(value);
                }
                "resources" => file.resources = self.items(value, name, &RESOURCE, top),
                "rules" => file.rules = self.items(value, name, &RULE, top),
                "chat_policies" => file.chat_policies = self.items(value, name, &CHAT_POLICY, top),
                "policies" => file.policies = self.items(value, name, &POLICY, top),
                "permissions" => file.permissions = self.items(value, name, &PERMISSION, top),
                "routes" => file.routes = self.items(value, name, &ROUTE, top),
                other => unknown.push((other, line(key))),
            }
        }
        // Known sections first: a key that an item misses and that is written at the top level is
        // reported once, by the item.
        for (name, at) in unknown {
            if at.is_some_and(|at| self.misplaced.contains(&at)) {
                continue;
            }
            let hint = hint::suggest(name, known.iter().copied());
            self.push(at, format!("unknown section '{name}'{hint}"));
        }
    }

    /// The lists section, each list read on its own.
    fn lists(&mut self, value: &Value) -> BTreeMap<Spanned<String>, Vec<String>> {
        let entries: BTreeMap<Spanned<String>, Value> =
            self.whole(value, "lists").unwrap_or_default();
        let mut lists = BTreeMap::new();
        for (name, values) in entries {
            match dbt_yaml::from_value::<Vec<String>>(values.clone()) {
                Ok(values) => {
                    lists.insert(name, values);
                }
                Err(e) => {
                    let label = format!("list '{}'", name.as_str());
                    self.push_error(Some(&label), &e, line(&values));
                    self.broken.push(Broken {
                        namespace: Namespace::List,
                        name: name.to_string(),
                        label,
                        line: line(&values),
                    });
                }
            }
        }
        lists
    }

    /// A whole value deserialized at once (lists: each is a plain list of strings).
    fn whole<T: DeserializeOwned>(&mut self, value: &Value, label: &str) -> Option<T> {
        match dbt_yaml::from_value::<T>(value.clone()) {
            Ok(doc) => Some(doc),
            Err(e) => {
                self.push_error(Some(label), &e, line(value));
                None
            }
        }
    }

    /// A section that is one document (settings, revocations).
    fn single<T: DeserializeOwned>(
        &mut self,
        value: &Value,
        shape: &Shape,
        top: &Mapping,
    ) -> Option<Spanned<T>> {
        let plain = self.plain(value, shape.what);
        let clean = self.check(value, shape, shape.what, top) && plain;
        let doc = self.whole::<Spanned<T>>(value, shape.what);
        doc.filter(|_| clean)
    }

    /// A list section, each item read on its own.
    fn items<T: DeserializeOwned>(
        &mut self,
        value: &Value,
        section: &str,
        shape: &Shape,
        top: &Mapping,
    ) -> Vec<T> {
        let Value::Sequence(items, _) = value else {
            self.push(
                line(value),
                format!("{section} is a list (each item starting with '- ')"),
            );
            return Vec::new();
        };
        let mut docs = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let label = label(item, shape, index);
            let plain = self.plain(item, &label);
            if !self.check(item, shape, &label, top) || !plain {
                self.broken(item, shape, label);
                continue;
            }
            match dbt_yaml::from_value::<T>(item.clone()) {
                Ok(doc) => docs.push(doc),
                Err(e) => {
                    self.item_error::<T>(item, &label, &e);
                    self.broken(item, shape, label);
                }
            }
        }
        docs
    }

    /// Keeps the name of an item that did not read, when it has one.
    fn broken(&mut self, item: &Value, shape: &Shape, label: String) {
        let Some(namespace) = shape.namespace else {
            return;
        };
        let Some(name) = item.get(name_key(shape)).filter(|n| n.as_str().is_some()) else {
            return;
        };
        self.broken.push(Broken {
            namespace,
            name: name.as_str().unwrap_or_default().to_owned(),
            label,
            line: line(name),
        });
    }

    /// An item that did not deserialize. A tree carries no position in its type errors, so the item's
    /// own text is read again, where it stands in the file, for the line of the value at fault.
    fn item_error<T: DeserializeOwned>(&mut self, item: &Value, label: &str, e: &dbt_yaml::Error) {
        let span = item.span();
        let again = span.is_valid().then(|| {
            let snippet = self.text.get(span.start.index()..span.end.index())?;
            let indent = " ".repeat(span.start.column().saturating_sub(1));
            dbt_yaml::from_str::<T>(&format!("{indent}{snippet}")).err()
        });
        match again.flatten() {
            Some(e) if e.location().is_some() => {
                let offset = span.start.line().saturating_sub(1);
                let at = e.location().map(|l| l.line() + offset);
                self.push_error(Some(label), &e, None);
                if let Some(last) = self.problems.last_mut() {
                    last.line = at;
                }
            }
            _ => self.push_error(Some(label), e, line(item)),
        }
    }

    /// Reports, anywhere under `value`, a key written without a value and a tag (`!x`); whether there
    /// were none. Deserializing reads a key without a value as left out and ignores tags, so
    /// `when:` with its condition lost (or `effect: !deny allow`) would load meaning something other
    /// than it says. The parser bounds the tree's depth.
    fn plain(&mut self, value: &Value, label: &str) -> bool {
        match value {
            Value::Mapping(map, _) => {
                let mut plain = true;
                for (key, inner) in map {
                    if matches!(inner, Value::Null(_)) {
                        let name = key.as_str().unwrap_or("?");
                        self.push(
                            line(key),
                            format!(
                                "{label}: '{name}' has no value (give it one, or leave the key out)"
                            ),
                        );
                        plain = false;
                    }
                    plain &= self.plain(key, label) & self.plain(inner, label);
                }
                plain
            }
            Value::Sequence(items, _) => items
                .iter()
                .fold(true, |plain, item| self.plain(item, label) & plain),
            Value::Tagged(..) => {
                self.push(
                    line(value),
                    format!("{label}: tags (such as '!str') are not part of the policy format"),
                );
                false
            }
            _ => true,
        }
    }

    /// Unknown and missing keys of `value` (a document of `shape`); whether there were none.
    fn check(&mut self, value: &Value, shape: &Shape, label: &str, top: &Mapping) -> bool {
        let Value::Mapping(map, _) = value else {
            // Deserializing reports the wrong type.
            return true;
        };
        let before = self.problems.len();
        let meant = self.unknown_keys(map, shape, label, 0);
        for field in shape.required {
            // A misspelt key already has its hint; its field is not missing twice.
            if !map.contains_key(*field) && !meant.contains(field) {
                let (at, message) = missing(map, field, shape, label, top);
                if let Some(at) = at {
                    // The key written in the wrong place is this one mistake, not another.
                    self.misplaced.push(at);
                    let unknown = format!("unknown field '{field}'");
                    let mut own = self.problems.split_off(before);
                    own.retain(|p| p.line != Some(at) || !p.message.contains(&unknown));
                    self.problems.append(&mut own);
                }
                self.push(at.or(line(value)), message);
            }
        }
        self.problems.len() == before
    }

    /// Reports the keys of `map` that `shape` does not have; returns the fields they were hinted at.
    fn unknown_keys(
        &mut self,
        map: &Mapping,
        shape: &Shape,
        label: &str,
        depth: usize,
    ) -> Vec<&'static str> {
        let fields = (shape.fields)();
        let mut meant = Vec::new();
        for (key, value) in map {
            let Some(name) = key.as_str() else { continue };
            if !fields.contains(&name) {
                let close = hint::closest(name, fields.iter().copied());
                meant.extend(close);
                let hint = close.map_or_else(String::new, |f| format!(" (did you mean '{f}'?)"));
                self.push(line(key), format!("{label}: unknown field '{name}'{hint}"));
                continue;
            }
            if depth >= CONDITION_DEPTH {
                continue;
            }
            let inner = format!("{label}, {name}");
            if shape.conditions.contains(&name) {
                if let Value::Mapping(inner_map, _) = value {
                    self.unknown_keys(inner_map, &CONDITION, &inner, depth + 1);
                }
            } else if shape.condition_lists.contains(&name) {
                if let Value::Sequence(list, _) = value {
                    for item in list {
                        if let Value::Mapping(inner_map, _) = item {
                            self.unknown_keys(inner_map, &CONDITION, &inner, depth + 1);
                        }
                    }
                }
            } else if name == "hours"
                && let Value::Mapping(inner_map, _) = value
            {
                self.unknown_keys(inner_map, &HOURS, &inner, depth + 1);
            }
        }
        meant
    }
}

/// "rule 'x'" by the item's name, else "rule #3" by its place (from 1).
fn label(item: &Value, shape: &Shape, index: usize) -> String {
    match item.get(name_key(shape)).and_then(Value::as_str) {
        Some(name) if !name.trim().is_empty() => format!("{} '{name}'", shape.what),
        _ => format!("{} #{}", shape.what, index + 1),
    }
}

/// The key that names an item: `kind` for resource kinds, `name` for the rest.
fn name_key(shape: &Shape) -> &'static str {
    if shape.what == "kind" { "kind" } else { "name" }
}

/// The line and message for a required `field` missing from `map`: when the key is written
/// elsewhere, under one of the item's keys or among the file's sections, the line of that key (the
/// line to fix), with where it is and where the item's keys are.
fn missing(
    map: &Mapping,
    field: &str,
    shape: &Shape,
    label: &str,
    top: &Mapping,
) -> (Option<usize>, String) {
    let plain = format!("{label}: missing field '{field}'");
    let own = map.keys().next().map(column).unwrap_or_default();
    let found = map
        .iter()
        .find_map(|(key, value)| find_key(value, field, key.as_str().unwrap_or("?"), SEARCH_DEPTH))
        .or_else(|| {
            top.keys()
                .find(|key| key.as_str() == Some(field))
                .map(|key| (key.clone(), "at the top level of the file".to_owned()))
        });
    match found {
        Some((key, place)) => (
            line(&key),
            format!(
                "{label}: '{field}:' at line {} is {place} (indented {} columns); the {what}'s fields are at {own}, so the {what} has no '{field}'",
                line(&key).unwrap_or_default(),
                column(&key),
                what = shape.what
            ),
        ),
        None => (None, plain),
    }
}

/// A mapping key `field` somewhere under `value`, with the key of the item it sits under.
fn find_key(value: &Value, field: &str, under: &str, depth: usize) -> Option<(Value, String)> {
    if depth == 0 {
        return None;
    }
    match value {
        Value::Mapping(map, _) => map.iter().find_map(|(key, inner)| {
            if key.as_str() == Some(field) {
                Some((key.clone(), format!("inside '{under}'")))
            } else {
                find_key(inner, field, under, depth - 1)
            }
        }),
        Value::Sequence(items, _) => items
            .iter()
            .find_map(|item| find_key(item, field, under, depth - 1)),
        _ => None,
    }
}

/// The 1-based line where `value` starts.
fn line(value: &Value) -> Option<usize> {
    let span = value.span();
    span.is_valid().then(|| span.start.line())
}

/// The column (0-based: the indentation) where `value` starts.
fn column(value: &Value) -> usize {
    let span = value.span();
    if span.is_valid() {
        span.start.column().saturating_sub(1)
    } else {
        0
    }
}

/// The field names serde knows for `T`, read from its derived `Deserialize` without a document.
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

/// A deserializer that records the field names a struct asks for, and fails.
struct FieldProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("only structs"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("probed"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<(Option<usize>, String)> {
        let (_, problems, _) = parse_file(text);
        problems.into_iter().map(|p| (p.line, p.message)).collect()
    }

    #[test]
    fn field_names_come_from_the_documents_themselves() {
        let fields = fields_of::<RuleDoc>();
        for field in RULE.required {
            assert!(fields.contains(field), "{field}");
        }
        assert!(fields_of::<ConditionDoc>().contains(&"in"));
        assert!(fields_of::<PolicyDoc>().contains(&"type"));
    }

    #[test]
    fn every_bad_item_is_reported_and_the_good_ones_are_kept() {
        let text = "rules:\n  - name: a\n    efect: allow\n    resource: r\n    actions: [x]\n  - name: b\n    effect: allow\n    resource: r\n    acions: [x]\n  - name: c\n    effect: allow\n    resource: r\n    actions: [x]\n";
        let (file, found, _) = parse_file(text);
        assert_eq!(file.rules.len(), 1);
        let found: Vec<(Option<usize>, String)> =
            found.into_iter().map(|p| (p.line, p.message)).collect();
        assert_eq!(
            found,
            [
                (
                    Some(3),
                    "rule 'a': unknown field 'efect' (did you mean 'effect'?)".to_owned()
                ),
                (
                    Some(9),
                    "rule 'b': unknown field 'acions' (did you mean 'actions'?)".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn an_unnamed_item_is_named_by_its_place_and_a_wrong_type_points_at_its_value() {
        let found = problems(
            "rules:\n  - effect: allow\n    resource: r\n    actions: [x]\n  - name: p\n    effect: allow\n    resource: r\n    actions: [x]\n    priority: high\n",
        );
        assert_eq!(
            found[0],
            (Some(2), "rule #1: missing field 'name'".to_owned())
        );
        assert_eq!(found[1].0, Some(9), "{found:?}");
        assert!(
            found[1].1.starts_with("rule 'p': priority: invalid type"),
            "{found:?}"
        );
    }

    #[test]
    fn an_unknown_section_gets_a_hint() {
        assert_eq!(
            problems("rule:\n  - name: a\n"),
            [(
                Some(1),
                "unknown section 'rule' (did you mean 'rules'?)".to_owned()
            )]
        );
    }
}
