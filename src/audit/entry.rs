//! One decision as the decision log keeps it. Never a token, a secret or a request body: who, what, on
//! what, the answer, the rule and revision that gave it, and how long it took.
//!
//! On the request's path a decision is a [`Decided`]: borrowed fields, written straight into one JSON
//! line, which is all the log keeps. Nothing is copied field by field and one allocation holds the
//! whole entry. Readers (ExercisedPermissions, SuggestPolicy, the CLI) parse lines back into
//! [`DecisionEntry`] values when they ask, which is rare next to recording.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use hmac::{Hmac, Mac};
use serde::{Deserialize, Deserializer};
use sha2::Sha256;

/// A logged decision, as read back from a line.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DecisionEntry {
    /// Milliseconds since the Unix epoch; written as `time_ms`, and as `time` in RFC 3339 (UTC).
    pub time_ms: i64,
    pub principal_id: String,
    /// `user`, `server`, `scoped` or `anonymous`.
    pub principal_kind: String,
    #[serde(default)]
    pub roles: Vec<String>,
    pub action: String,
    pub resource_kind: String,
    pub resource_id: String,
    /// The policy's verdict: `allow` or `deny`.
    pub decision: String,
    /// What the caller was told; differs from `decision` only in a dry run.
    pub allowed: bool,
    pub rule: String,
    /// The deciding rule's id pattern, when it has one: the ids it covers, not just this one.
    #[serde(default)]
    pub rule_id_pattern: Option<String>,
    pub revision: String,
    /// `enforcing`, `permissive` or `disabled`.
    pub mode: String,
    #[serde(default)]
    pub dry_run: bool,
    /// `check`, `batch`, `ext_authz` or `http`.
    pub source: String,
    #[serde(default)]
    pub route: Option<String>,
    /// Why the request was refused before any rule was asked (`token expired`), for the rule
    /// `unauthenticated`; never the token.
    #[serde(default)]
    pub reason: Option<String>,
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
    pub decision: String,
    pub rule: String,
    pub revision: String,
}

/// A decision being recorded, borrowing everything from the request and the policy set.
#[derive(Debug, Clone, Copy)]
pub struct Decided<'a> {
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    pub principal_id: &'a str,
    pub principal_kind: &'a str,
    pub roles: &'a [String],
    pub action: &'a str,
    pub resource_kind: &'a str,
    pub resource_id: &'a str,
    /// The policy's verdict: `allow` or `deny`.
    pub decision: &'a str,
    /// What the caller was told.
    pub allowed: bool,
    pub rule: &'a str,
    pub rule_id_pattern: Option<&'a str>,
    pub revision: &'a str,
    pub mode: &'a str,
    pub dry_run: bool,
    pub source: &'a str,
    pub route: Option<&'a str>,
    /// Why the credentials were refused, for the rule `unauthenticated`.
    pub reason: Option<&'a str>,
    pub shadow: Option<ShadowDecided<'a>>,
    pub trace_id: Option<u128>,
    pub latency_us: u64,
}

/// What the shadow set decided, while recording.
#[derive(Debug, Clone, Copy)]
pub struct ShadowDecided<'a> {
    pub decision: &'a str,
    pub rule: &'a str,
    pub revision: &'a str,
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

/// The key the file's pseudonyms are made with. It is derived one way from the API secret, so every
/// replica of an app writes the same pseudonym for the same value, while nobody without the secret
/// can hash a list of likely ids and match them against the file.
#[derive(Clone)]
pub struct MaskKey([u8; 32]);

impl MaskKey {
    const PURPOSE: &'static [u8] = b"gatehouse decision log pseudonyms";

    pub fn derive(secret: &[u8]) -> MaskKey {
        MaskKey(hmac(secret, Self::PURPOSE))
    }
}

impl std::fmt::Debug for MaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MaskKey(..)")
    }
}

/// HMAC-SHA256 of `message` under `key`.
fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().into()
        }
        // HMAC takes keys of any length; this arm is never taken.
        Err(_) => [0; 32],
    }
}

/// Which fields a line masks, and the key of their pseudonyms.
#[derive(Debug, Clone)]
pub struct Mask {
    pub fields: Vec<MaskedField>,
    pub key: MaskKey,
}

/// The most bytes of one string field a line keeps; a longer value (an id a caller made up, say) is
/// cut at a character boundary and ends with [`CLIPPED`]. It keeps lines, and so the ring and the
/// file's queue, bounded in bytes.
pub const FIELD_LIMIT: usize = 1024;
/// Ends a value cut to [`FIELD_LIMIT`].
pub const CLIPPED: &str = "…";
/// The most roles a line lists; more are replaced by one [`CLIPPED`] role.
pub const ROLES_LIMIT: usize = 64;
/// 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write.
const LAST_WRITABLE_MS: i64 = 253_402_300_799_999;

/// The text between two members of a line's object: `,"name":`. Keys are this module's own
/// literals, which need no escaping, so each is one copy of a constant.
macro_rules! member {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}

impl Decided<'_> {
    /// Appends the entry to `out` as one JSON line, newline included, with the fields `mask` names
    /// replaced by their [`pseudonym`].
    ///
    /// Written by hand rather than through serde: the entry is flat, this runs once per decision,
    /// and the generic path cost several times as much, most of it escaping strings that need none.
    /// The unit tests read lines back with serde_json.
    pub fn write_line(&self, mask: Option<&Mask>, out: &mut String) {
        let masked = |field| mask.is_some_and(|mask| mask.fields.contains(&field));
        let key_for = |field| mask.map(|mask| &mask.key).filter(|_| masked(field));
        out.push_str("{\"time\":");
        push_time(out, self.time_ms);
        out.push_str(member!("time_ms"));
        push_number(out, self.time_ms);
        out.push_str(member!("principal_id"));
        push_maybe_masked(out, self.principal_id, key_for(MaskedField::PrincipalId));
        out.push_str(member!("principal_kind"));
        escaped(out, self.principal_kind);
        out.push_str(member!("roles"));
        out.push('[');
        for (n, role) in self.roles.iter().enumerate() {
            if n > 0 {
                out.push(',');
            }
            if n == ROLES_LIMIT {
                escaped(out, CLIPPED);
                break;
            }
            push_maybe_masked(out, role, key_for(MaskedField::Roles));
        }
        out.push(']');
        out.push_str(member!("action"));
        escaped(out, self.action);
        out.push_str(member!("resource_kind"));
        escaped(out, self.resource_kind);
        out.push_str(member!("resource_id"));
        push_maybe_masked(out, self.resource_id, key_for(MaskedField::ResourceId));
        out.push_str(member!("decision"));
        escaped(out, self.decision);
        out.push_str(member!("allowed"));
        push_bool(out, self.allowed);
        out.push_str(member!("rule"));
        escaped(out, self.rule);
        push_optional(out, member!("rule_id_pattern"), self.rule_id_pattern);
        out.push_str(member!("revision"));
        escaped(out, self.revision);
        out.push_str(member!("mode"));
        escaped(out, self.mode);
        out.push_str(member!("dry_run"));
        push_bool(out, self.dry_run);
        out.push_str(member!("source"));
        escaped(out, self.source);
        push_optional(out, member!("route"), self.route);
        push_optional(out, member!("reason"), self.reason);
        if let Some(shadow) = &self.shadow {
            out.push_str(member!("shadow"));
            out.push_str("{\"decision\":");
            escaped(out, shadow.decision);
            out.push_str(member!("rule"));
            escaped(out, shadow.rule);
            out.push_str(member!("revision"));
            escaped(out, shadow.revision);
            out.push('}');
        }
        if let Some(trace_id) = self.trace_id {
            out.push_str(member!("trace_id"));
            match key_for(MaskedField::TraceId) {
                Some(key) => escaped(out, &pseudonym(key, &format!("{trace_id:032x}"))),
                None => {
                    // Hex digits need no escaping.
                    out.push('"');
                    push_hex(out, trace_id);
                    out.push('"');
                }
            }
        }
        out.push_str(member!("latency_us"));
        push_number(out, self.latency_us);
        out.push_str("}\n");
    }
}

/// `member` and the value, when there is one; an absent value leaves the member out.
fn push_optional(out: &mut String, member: &str, value: Option<&str>) {
    if let Some(value) = value {
        out.push_str(member);
        escaped(out, value);
    }
}

/// The value, or its pseudonym under `mask_key` when there is one.
fn push_maybe_masked(out: &mut String, value: &str, mask_key: Option<&MaskKey>) {
    match mask_key {
        Some(mask_key) => escaped(out, &pseudonym(mask_key, value)),
        None => escaped(out, value),
    }
}

fn push_number(out: &mut String, value: impl itoa::Integer) {
    out.push_str(itoa::Buffer::new().format(value));
}

fn push_bool(out: &mut String, value: bool) {
    out.push_str(if value { "true" } else { "false" });
}

/// RFC 3339 with milliseconds, UTC, quoted. The text up to the second is formatted once a second per
/// thread; entries within the second only add their milliseconds.
fn push_time(out: &mut String, time_ms: i64) {
    let time_ms = time_ms.clamp(0, LAST_WRITABLE_MS);
    let second = time_ms.div_euclid(1000);
    out.push('"');
    SECOND_TEXT.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != Some(second) || cached.1.is_empty() {
            let since_epoch = Duration::from_secs(u64::try_from(second).unwrap_or(0));
            let text = humantime::format_rfc3339_seconds(SystemTime::UNIX_EPOCH + since_epoch);
            cached.1.clear();
            // Writing to a String cannot fail.
            let _ = write!(cached.1, "{text}");
            cached.1.pop(); // the trailing `Z`
            cached.0 = Some(second);
        }
        out.push_str(&cached.1);
    });
    let millis = time_ms.rem_euclid(1000);
    let digits = [millis / 100, millis / 10 % 10, millis % 10]
        .map(|d| char::from(b'0' + u8::try_from(d).unwrap_or(0)));
    out.push('.');
    out.extend(digits);
    out.push_str("Z\"");
}

thread_local! {
    /// The RFC 3339 text of the last second this thread wrote (without its `Z`).
    static SECOND_TEXT: std::cell::RefCell<(Option<i64>, String)> =
        const { std::cell::RefCell::new((None, String::new())) };
}

/// The 32 lower-case hex digits of a W3C trace id.
fn push_hex(out: &mut String, value: u128) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for shift in (0..32).rev() {
        let nibble = usize::try_from((value >> (shift * 4)) & 0xf).unwrap_or(0);
        out.push(char::from(DIGITS.get(nibble).copied().unwrap_or(b'0')));
    }
}

/// `value` as a JSON string, cut to [`FIELD_LIMIT`]: copied whole when it needs no escape, as almost
/// every value.
fn escaped(out: &mut String, value: &str) {
    if value.len() > FIELD_LIMIT {
        let mut end = FIELD_LIMIT;
        while !value.is_char_boundary(end) {
            end -= 1;
        }
        let mut clipped = String::with_capacity(end + CLIPPED.len());
        clipped.push_str(value.get(..end).unwrap_or_default());
        clipped.push_str(CLIPPED);
        return escaped_whole(out, &clipped);
    }
    escaped_whole(out, value)
}

fn escaped_whole(out: &mut String, value: &str) {
    out.push('"');
    // Almost every value needs no escape; this test has no early exit, so it runs on whole words.
    let plain = value.bytes().fold(true, |plain, b| {
        plain & (b >= 0x20) & (b != b'"') & (b != b'\\')
    });
    if plain {
        out.push_str(value);
        out.push('"');
        return;
    }
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                // Writing to a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Reads `trace_id` back: 32 hex digits, or none (absent, or masked into a pseudonym).
fn trace_id_from_hex<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u128>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    Ok(text.and_then(|t| u128::from_str_radix(&t, 16).ok()))
}

/// `hmac:` and the first 16 hex digits of the value's HMAC-SHA256 under `key`; empty stays empty.
pub fn pseudonym(key: &MaskKey, value: &str) -> String {
    if value.is_empty() {
        return String::new();
    }
    let digest = hmac(&key.0, value.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("hmac:{hex}")
}

/// The entry as it was being recorded, so tests can write it again.
#[cfg(test)]
impl DecisionEntry {
    pub(super) fn decided(&self) -> Decided<'_> {
        Decided {
            time_ms: self.time_ms,
            principal_id: &self.principal_id,
            principal_kind: &self.principal_kind,
            roles: &self.roles,
            action: &self.action,
            resource_kind: &self.resource_kind,
            resource_id: &self.resource_id,
            decision: &self.decision,
            allowed: self.allowed,
            rule: &self.rule,
            rule_id_pattern: self.rule_id_pattern.as_deref(),
            revision: &self.revision,
            mode: &self.mode,
            dry_run: self.dry_run,
            source: &self.source,
            route: self.route.as_deref(),
            reason: self.reason.as_deref(),
            shadow: self.shadow.as_ref().map(|s| ShadowDecided {
                decision: &s.decision,
                rule: &s.rule,
                revision: &s.revision,
            }),
            trace_id: self.trace_id,
            latency_us: self.latency_us,
        }
    }
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
        reason: None,
        shadow: None,
        trace_id: None,
        latency_us: 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn key() -> MaskKey {
        MaskKey::derive(b"an app secret of at least thirty-two bytes")
    }

    fn line(entry: &DecisionEntry, fields: &[MaskedField]) -> String {
        let mask = Mask {
            fields: fields.to_vec(),
            key: key(),
        };
        let mut out = String::new();
        entry
            .decided()
            .write_line(Some(&mask).filter(|m| !m.fields.is_empty()), &mut out);
        assert!(out.ends_with('\n'));
        assert_eq!(out.matches('\n').count(), 1);
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
        full.reason = Some("token expired".to_owned());
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
            let read: DecisionEntry = serde_json::from_str(&line).unwrap();
            assert_eq!(read, entry);
        }
    }

    #[test]
    fn long_values_and_many_roles_are_clipped_to_keep_lines_bounded() {
        let mut entry = sample(0);
        // A multi-byte character across the limit: the cut must fall on a character boundary.
        entry.resource_id = format!("{}é{}", "x".repeat(FIELD_LIMIT - 1), "y".repeat(4 << 20));
        entry.action = "\"".repeat(FIELD_LIMIT + 1);
        entry.roles = (0..1000).map(|n| format!("role{n}")).collect();
        let text = line(&entry, &[]);
        assert!(text.len() < 8 * FIELD_LIMIT, "{} bytes", text.len());
        let read: DecisionEntry = serde_json::from_str(&text).unwrap();
        assert_eq!(
            read.resource_id,
            format!("{}{CLIPPED}", "x".repeat(FIELD_LIMIT - 1))
        );
        assert_eq!(
            read.action,
            format!("{}{CLIPPED}", "\"".repeat(FIELD_LIMIT))
        );
        assert_eq!(read.roles.len(), ROLES_LIMIT + 1);
        assert_eq!(
            read.roles.get(ROLES_LIMIT).map(String::as_str),
            Some(CLIPPED)
        );
        assert_eq!(read.roles.first().map(String::as_str), Some("role0"));
        // A value at the limit is kept whole.
        entry.resource_id = "z".repeat(FIELD_LIMIT);
        let read: DecisionEntry = serde_json::from_str(&line(&entry, &[])).unwrap();
        assert_eq!(read.resource_id, entry.resource_id);
    }

    #[test]
    fn any_time_is_written_as_valid_json() {
        for time_ms in [
            i64::MIN,
            -1,
            0,
            LAST_WRITABLE_MS,
            LAST_WRITABLE_MS + 1,
            i64::MAX,
        ] {
            let value: Value = serde_json::from_str(&line(&sample(time_ms), &[])).unwrap();
            assert_eq!(value["time_ms"], time_ms);
            assert!(value["time"].is_string(), "{value}");
        }
        let value: Value = serde_json::from_str(&line(&sample(i64::MAX), &[])).unwrap();
        assert_eq!(value["time"], "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn times_in_and_across_seconds_are_written_in_full() {
        let cases = [
            (1_700_000_000_007, "2023-11-14T22:13:20.007Z"),
            (1_700_000_000_070, "2023-11-14T22:13:20.070Z"),
            (1_700_000_000_999, "2023-11-14T22:13:20.999Z"),
            (1_700_000_001_000, "2023-11-14T22:13:21.000Z"),
            (1_700_000_000_500, "2023-11-14T22:13:20.500Z"),
            (0, "1970-01-01T00:00:00.000Z"),
        ];
        for (time_ms, text) in cases {
            let value: Value = serde_json::from_str(&line(&sample(time_ms), &[])).unwrap();
            assert_eq!(value["time"], text);
        }
        let mut hex = String::new();
        push_hex(&mut hex, 0x0af7651916cd43dd8448eb211c80319c);
        assert_eq!(hex, "0af7651916cd43dd8448eb211c80319c");
        hex.clear();
        push_hex(&mut hex, 7);
        assert_eq!(hex, format!("{:032x}", 7));
    }

    #[test]
    fn time_is_rfc3339_milliseconds_of_time_ms() {
        let value: Value = serde_json::from_str(&line(&sample(1_700_000_000_123), &[])).unwrap();
        assert_eq!(value["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(value["time_ms"], 1_700_000_000_123_i64);
    }

    #[test]
    fn optional_fields_are_left_out_when_absent() {
        let value: Value = serde_json::from_str(&line(&sample(0), &[])).unwrap();
        for absent in ["rule_id_pattern", "route", "shadow", "trace_id"] {
            assert!(value.get(absent).is_none(), "{absent} in {value}");
        }
    }

    #[test]
    fn masking_pseudonymizes_only_the_named_fields() {
        let mut entry = sample(0);
        entry.trace_id = Some(7);
        let value: Value = serde_json::from_str(&line(
            &entry,
            &[MaskedField::PrincipalId, MaskedField::TraceId],
        ))
        .unwrap();
        assert_eq!(value["principal_id"], pseudonym(&key(), "user0"));
        assert_eq!(value["trace_id"], pseudonym(&key(), &format!("{:032x}", 7)));
        assert_eq!(value["resource_id"], "user:bob");
        assert_eq!(value["roles"][0], "admin");
        let value: Value = serde_json::from_str(&line(
            &entry,
            &[MaskedField::Roles, MaskedField::ResourceId],
        ))
        .unwrap();
        assert_eq!(value["roles"][0], pseudonym(&key(), "admin"));
        assert_eq!(value["resource_id"], pseudonym(&key(), "user:bob"));
        assert_eq!(value["principal_id"], "user0");
        let read: DecisionEntry =
            serde_json::from_str(&line(&entry, &[MaskedField::TraceId])).unwrap();
        assert_eq!(read.trace_id, None, "a masked trace id is not a trace id");
    }

    #[test]
    fn pseudonyms_are_keyed_hmac_prefixes() {
        let p = pseudonym(&key(), "alice");
        assert!(p.starts_with("hmac:"), "{p}");
        assert_eq!(p.len(), "hmac:".len() + 16);
        assert_eq!(pseudonym(&key(), ""), "");
        assert_ne!(p, pseudonym(&key(), "bob"));
        assert_eq!(p, pseudonym(&key(), "alice"), "stable for one key");
        let other = MaskKey::derive(b"another app secret of thirty-two bytes");
        assert_ne!(
            p,
            pseudonym(&other, "alice"),
            "another app's key, another pseudonym"
        );
        // RFC 4231 test case 2, to pin the construction: HMAC-SHA256("Jefe", "what do ya want...").
        assert_eq!(
            hmac(b"Jefe", b"what do ya want for nothing?")[..8],
            [0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e]
        );
        assert_eq!(format!("{:?}", key()), "MaskKey(..)");
    }
}
