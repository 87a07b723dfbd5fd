//! The YAML file, read by the keys [`SETTINGS`] names: a top-level key or a `section.key`. Unknown
//! and repeated keys are errors, worded as serde words them for a struct with
//! `deny_unknown_fields` (the file format's messages, with their line and column, predate the table).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::OnceLock;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, MapAccess, Visitor};

use super::entry::{FileValue, Input, Shape};
use super::settings::SETTINGS;

/// A scalar from the YAML file, kept as text so file and environment values go through one parser.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Bool(b) => b.to_string(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Text(s) => s,
        }
    }
}

/// Reads the file's values by dotted key; on any error, records it and reads nothing from the file.
pub(super) fn read_file(path: &Path, input: &mut Input<'_>) -> BTreeMap<&'static str, FileValue> {
    let setting = format!("config file {}", path.display());
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            input.error(&setting, format!("cannot be read: {e}"));
            return BTreeMap::new();
        }
    };
    if text.trim().is_empty() {
        return BTreeMap::new();
    }
    let mut values = BTreeMap::new();
    let top = Section {
        layout: layout(),
        index: 0,
        out: &mut values,
    };
    match top.deserialize(serde_norway::Deserializer::from_str(&text)) {
        Ok(()) => values,
        Err(e) => {
            input.error(&setting, e.to_string());
            BTreeMap::new()
        }
    }
}

/// What a key of a section holds.
#[derive(Debug, Clone, Copy)]
enum Field {
    /// A setting, by its dotted key.
    Setting(&'static str, Shape),
    /// A nested section, by its index in [`Layout::sections`].
    Section(usize),
}

struct SectionLayout {
    /// What serde's messages call the section (`struct FileLimits`).
    expecting: String,
    /// The keys, in the file format's order.
    names: Vec<&'static str>,
    fields: Vec<Field>,
}

/// The file's sections (the top level first), derived once from [`SETTINGS`].
struct Layout {
    sections: Vec<SectionLayout>,
}

fn layout() -> &'static Layout {
    static LAYOUT: OnceLock<Layout> = OnceLock::new();
    LAYOUT.get_or_init(|| {
        let mut entries: Vec<_> = SETTINGS
            .iter()
            .filter(|e| !e.doc().key.is_empty())
            .collect();
        entries.sort_by_key(|e| e.doc().file_order);
        let mut sections = vec![SectionLayout {
            expecting: "struct FileConfig".to_owned(),
            names: Vec::new(),
            fields: Vec::new(),
        }];
        for entry in entries {
            let key = entry.doc().key;
            let setting = Field::Setting(key, entry.shape());
            let Some((section, name)) = key.split_once('.') else {
                sections.push_field(0, key, setting);
                continue;
            };
            let index = match sections.field_of(0, section) {
                Some(Field::Section(index)) => index,
                _ => {
                    sections.push(SectionLayout {
                        expecting: format!("struct File{}", camel_case(section)),
                        names: Vec::new(),
                        fields: Vec::new(),
                    });
                    let index = sections.len() - 1;
                    sections.push_field(0, section, Field::Section(index));
                    index
                }
            };
            sections.push_field(index, name, setting);
        }
        Layout { sections }
    })
}

trait Sections {
    fn push_field(&mut self, section: usize, name: &'static str, field: Field);
    fn field_of(&self, section: usize, name: &str) -> Option<Field>;
}

impl Sections for Vec<SectionLayout> {
    fn push_field(&mut self, section: usize, name: &'static str, field: Field) {
        if let Some(section) = self.get_mut(section) {
            section.names.push(name);
            section.fields.push(field);
        }
    }

    fn field_of(&self, section: usize, name: &str) -> Option<Field> {
        let section = self.get(section)?;
        let index = section.names.iter().position(|n| *n == name)?;
        section.fields.get(index).copied()
    }
}

/// `decision_log` -> `DecisionLog`.
fn camel_case(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Reads one section (a YAML mapping) into `out`.
struct Section<'a> {
    layout: &'static Layout,
    index: usize,
    out: &'a mut BTreeMap<&'static str, FileValue>,
}

impl Section<'_> {
    fn layout(&self) -> Option<&'static SectionLayout> {
        self.layout.sections.get(self.index)
    }
}

impl<'de> DeserializeSeed<'de> for Section<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_struct("", &[], self)
    }
}

impl<'de> Visitor<'de> for Section<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.layout().map_or("", |s| s.expecting.as_str()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some(section) = self.layout() else {
            return Ok(());
        };
        let mut seen = BTreeSet::new();
        while let Some(index) = map.next_key_seed(Key(&section.names))? {
            let (Some(name), Some(field)) = (section.names.get(index), section.fields.get(index))
            else {
                continue;
            };
            if !seen.insert(index) {
                return Err(de::Error::duplicate_field(name));
            }
            match *field {
                Field::Setting(key, Shape::Scalar) => {
                    if let Some(value) = map.next_value::<Option<Scalar>>()? {
                        self.out.insert(key, FileValue::Scalar(value.into_text()));
                    }
                }
                Field::Setting(key, Shape::Map) => {
                    let groups = map.next_value::<BTreeMap<String, Scalar>>()?;
                    let groups = groups.into_iter().map(|(k, v)| (k, v.into_text()));
                    self.out.insert(key, FileValue::Map(groups.collect()));
                }
                Field::Setting(key, Shape::Tree) => {
                    let value = map.next_value::<serde_norway::Value>()?;
                    self.out.insert(key, FileValue::Tree(value));
                }
                Field::Section(index) => map.next_value_seed(Section {
                    layout: self.layout,
                    index,
                    out: &mut *self.out,
                })?,
            }
        }
        Ok(())
    }
}

/// A key of a section: its index among the section's names.
struct Key<'a>(&'a [&'static str]);

impl<'de> DeserializeSeed<'de> for Key<'static> {
    type Value = usize;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<usize, D::Error> {
        deserializer.deserialize_identifier(self)
    }
}

impl<'de> Visitor<'de> for Key<'static> {
    type Value = usize;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("field identifier")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<usize, E> {
        self.0
            .iter()
            .position(|name| *name == value)
            .ok_or_else(|| E::unknown_field(value, self.0))
    }

    fn visit_bytes<E: de::Error>(self, value: &[u8]) -> Result<usize, E> {
        self.visit_str(&String::from_utf8_lossy(value))
    }
}
