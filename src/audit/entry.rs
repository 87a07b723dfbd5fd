//! One decision as the decision log keeps it. Never a token, a secret or a request body: who, what, on
//! what, the answer, the rule and revision that gave it, and how long it took.
//!
//! An entry is built on the request's path, so it holds what is cheap to take there: names that can
//! only be one of a few values are `&'static str`, the time is a number and the trace id sixteen
//! bytes. Turning those into text is left to [`DecisionEntry::write_line`], which runs on the log's
//! writer thread.

use std::borrow::Cow;
use std::io::Write as _;
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

/// A logged decision.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DecisionEntry {
    /// Milliseconds since the Unix epoch; written as `time_ms`, and as `time` in RFC 3339 (UTC).
    pub time_ms: i64,
    pub principal_id: String,
    /// `user`, `server`, `scoped` or `anonymous`.
    pub principal_kind: Cow<'static, str>,
    #[serde(default)]
    pub roles: Vec<String>,
    pub action: String,
    pub resource_kind: String,
    pub resource_id: String,
    /// The policy's verdict: `allow` or `deny`.
    pub decision: Cow<'static, str>,
    /// What the caller was told; differs from `decision` only in a dry run.
    pub allowed: bool,
    pub rule: String,
    /// The deciding rule's id pattern, when it has one: the ids it covers, not just this one.
    #[serde(default)]
    pub rule_id_pattern: Option<String>,
    pub revision: String,
    /// `enforcing`, `permissive` or `disabled`.
    pub mode: Cow<'static, str>,
    #[serde(default)]
    pub dry_run: bool,
    /// `check`, `batch`, `ext_authz` or `http`.
    pub source: Cow<'static, str>,
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub shadow: Option<ShadowVerdict>,
    /// The W3C trace id of the request, when it had one (a masked id reads back as none).
    #[serde(default, deserialize_with = "trace_id_from_hex")]
    pub trace_id: Option<u128>,
    pub latency_us: u64,
}

/// What the shadow set would have answered.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ShadowVerdict {
    pub decision: Cow<'static, str>,
    pub rule: String,
    pub revision: String,
}

/// Fields that can be masked in the decision log file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaskedField {
    PrincipalId,
    Roles,
    ResourceId,
    TraceId,
}

impl MaskedField {
    pub fn parse(name: &str) -> Option<MaskedField> {
        match name.trim() {
            "principal_id" => Some(MaskedField::PrincipalId),
            "roles" => Some(MaskedField::Roles),
            "resource_id" => Some(MaskedField::ResourceId),
            "trace_id" => Some(MaskedField::TraceId),
            _ => None,
        }
    }
}

impl DecisionEntry {
    /// Appends the entry to `out` as one JSON line, newline included, with the `mask`ed fields
    /// replaced by their [`pseudonym`].
    ///
    /// Written by hand rather than through serde: the entry is flat, and this runs once per decision;
    /// the generic path cost several times as much, most of it escaping strings that need none. The
    /// unit tests read every line back with serde_json.
    pub fn write_line(&self, mask: &[MaskedField], out: &mut Vec<u8>) {
        let masked = |field| mask.contains(&field);
        let mut json = JsonObject::open(out);
        json.time("time", self.time_ms);
        json.number("time_ms", self.time_ms);
        json.maybe_masked(
            "principal_id",
            &self.principal_id,
            masked(MaskedField::PrincipalId),
        );
        json.string("principal_kind", &self.principal_kind);
        json.key("roles");
        json.out.push(b'[');
        for (n, role) in self.roles.iter().enumerate() {
            if n > 0 {
                json.out.push(b',');
            }
            if masked(MaskedField::Roles) {
                escaped(json.out, &pseudonym(role));
            } else {
                escaped(json.out, role);
            }
        }
        json.out.push(b']');
        json.string("action", &self.action);
        json.string("resource_kind", &self.resource_kind);
        json.maybe_masked(
            "resource_id",
            &self.resource_id,
            masked(MaskedField::ResourceId),
        );
        json.string("decision", &self.decision);
        json.boolean("allowed", self.allowed);
        json.string("rule", &self.rule);
        if let Some(pattern) = &self.rule_id_pattern {
            json.string("rule_id_pattern", pattern);
        }
        json.string("revision", &self.revision);
        json.string("mode", &self.mode);
        json.boolean("dry_run", self.dry_run);
        json.string("source", &self.source);
        if let Some(route) = &self.route {
            json.string("route", route);
        }
        if let Some(shadow) = &self.shadow {
            json.key("shadow");
            let mut inner = JsonObject::open(json.out);
            inner.string("decision", &shadow.decision);
            inner.string("rule", &shadow.rule);
            inner.string("revision", &shadow.revision);
            inner.close();
        }
        if let Some(trace_id) = self.trace_id {
            let hex = format!("{trace_id:032x}");
            json.maybe_masked("trace_id", &hex, masked(MaskedField::TraceId));
        }
        json.number("latency_us", self.latency_us);
        json.close();
        out.push(b'\n');
    }
}

/// Writes one JSON object's members in order.
struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> JsonObject<'a> {
    fn open(out: &'a mut Vec<u8>) -> JsonObject<'a> {
        out.push(b'{');
        JsonObject { out, first: true }
    }

    fn close(self) {
        self.out.push(b'}');
    }

    /// Keys are this module's own literals, which need no escaping.
    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        escaped(self.out, value);
    }

    fn maybe_masked(&mut self, key: &str, value: &str, masked: bool) {
        if masked {
            self.string(key, &pseudonym(value));
        } else {
            self.string(key, value);
        }
    }

    fn number(&mut self, key: &str, value: impl std::fmt::Display) {
        self.key(key);
        // Writing to a Vec cannot fail.
        let _ = write!(self.out, "{value}");
    }

    fn boolean(&mut self, key: &str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    /// RFC 3339 with milliseconds, UTC.
    fn time(&mut self, key: &str, time_ms: i64) {
        self.key(key);
        let since_epoch = Duration::from_millis(u64::try_from(time_ms).unwrap_or(0));
        let time = SystemTime::UNIX_EPOCH + since_epoch;
        // Writing to a Vec cannot fail.
        let _ = write!(self.out, "\"{}\"", humantime::format_rfc3339_millis(time));
    }
}

/// `value` as a JSON string: copied whole when it needs no escape, as almost every value.
fn escaped(out: &mut Vec<u8>, value: &str) {
    out.push(b'"');
    let bytes = value.as_bytes();
    // Almost every value needs no escape; this test has no early exit, so it runs on whole words.
    let plain = bytes.iter().fold(true, |plain, &b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    for c in value.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if u32::from(c) < 0x20 => {
                // Writing to a Vec cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out.push(b'"');
}

/// Reads `trace_id` back: 32 hex digits, or none (absent, or masked into a pseudonym).
fn trace_id_from_hex<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u128>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.and_then(|t| u128::from_str_radix(&t, 16).ok()))
}

/// `sha256:` and the first 16 hex digits of the value's SHA-256; empty stays empty.
pub fn pseudonym(value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    let digest = Sha256::digest(value.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// An entry for unit tests: user `user<n>` read `feed user:bob` at `time_ms` n.
#[cfg(test)]
pub(super) fn sample(n: i64) -> DecisionEntry {
    DecisionEntry {
        time_ms: n,
        principal_id: format!("user{n}"),
        principal_kind: "user".into(),
        roles: vec!["admin".to_owned()],
        action: "read".to_owned(),
        resource_kind: "feed".to_owned(),
        resource_id: "user:bob".to_owned(),
        decision: "allow".into(),
        allowed: true,
        rule: "r".to_owned(),
        rule_id_pattern: None,
        revision: "x".to_owned(),
        mode: "enforcing".into(),
        dry_run: false,
        source: "check".into(),
        route: None,
        shadow: None,
        trace_id: None,
        latency_us: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn line(entry: &DecisionEntry, mask: &[MaskedField]) -> Vec<u8> {
        let mut out = Vec::new();
        entry.write_line(mask, &mut out);
        assert_eq!(out.last(), Some(&b'\n'));
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        out
    }

    #[test]
    fn a_line_reads_back_as_the_same_entry() {
        let plain = sample(1_700_000_000_123);
        let mut full = sample(1_700_000_000_456);
        full.principal_id = "ali\"ce\\ \n\r\t\u{1}\u{1f} é 😀".to_owned();
        full.roles = vec!["a".to_owned(), "b\"".to_owned()];
        full.resource_id = "user:</script>".to_owned();
        full.rule_id_pattern = Some("user:*".to_owned());
        full.route = Some("GET /feed/{group}/{id}".to_owned());
        full.shadow = Some(ShadowVerdict {
            decision: "deny".into(),
            rule: "default-deny".to_owned(),
            revision: "y".to_owned(),
        });
        full.trace_id = Some(0x0af7651916cd43dd8448eb211c80319c);
        full.dry_run = true;
        full.latency_us = u64::MAX;
        full.roles.push(String::new());
        for entry in [plain, full] {
            let line = line(&entry, &[]);
            let read: DecisionEntry = serde_json::from_slice(&line).unwrap();
            assert_eq!(read, entry);
        }
    }

    #[test]
    fn time_is_rfc3339_milliseconds_of_time_ms() {
        let value: Value = serde_json::from_slice(&line(&sample(1_700_000_000_123), &[])).unwrap();
        assert_eq!(value["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(value["time_ms"], 1_700_000_000_123_i64);
    }

    #[test]
    fn optional_fields_are_left_out_when_absent() {
        let value: Value = serde_json::from_slice(&line(&sample(0), &[])).unwrap();
        for absent in ["rule_id_pattern", "route", "shadow", "trace_id"] {
            assert!(value.get(absent).is_none(), "{absent} in {value}");
        }
    }

    #[test]
    fn masking_pseudonymizes_only_the_named_fields() {
        let mut entry = sample(0);
        entry.trace_id = Some(7);
        let value: Value = serde_json::from_slice(&line(
            &entry,
            &[MaskedField::PrincipalId, MaskedField::TraceId],
        ))
        .unwrap();
        assert_eq!(value["principal_id"], pseudonym("user0"));
        assert_eq!(value["trace_id"], pseudonym(&format!("{:032x}", 7)));
        assert_eq!(value["resource_id"], "user:bob");
        assert_eq!(value["roles"][0], "admin");
        let value: Value = serde_json::from_slice(&line(
            &entry,
            &[MaskedField::Roles, MaskedField::ResourceId],
        ))
        .unwrap();
        assert_eq!(value["roles"][0], pseudonym("admin"));
        assert_eq!(value["resource_id"], pseudonym("user:bob"));
        assert_eq!(value["principal_id"], "user0");
        let read: DecisionEntry =
            serde_json::from_slice(&line(&entry, &[MaskedField::TraceId])).unwrap();
        assert_eq!(read.trace_id, None, "a masked trace id is not a trace id");
    }

    #[test]
    fn pseudonyms_are_sha256_prefixes() {
        let p = pseudonym("alice");
        assert!(p.starts_with("sha256:"));
        assert_eq!(p.len(), "sha256:".len() + 16);
        assert_eq!(pseudonym(""), "");
        assert_ne!(pseudonym("alice"), pseudonym("bob"));
    }
}
