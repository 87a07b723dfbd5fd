//! What the console reads from the decision log's ring, computed when the page asks and never on a
//! Check: a filtered page of decisions with a cursor for the live tail, decisions per interval for
//! the chart, and where the shadow set decided otherwise.
//!
//! The ring keeps no sequence number (counting would cost every Check), so a cursor names an entry by
//! its time and a hash of its content, and the tail is what comes after that entry in the ring. When
//! the entry has left the ring (more decisions than it holds since the last poll), the answer says so
//! (`gap`) and starts from the cursor's time.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use crate::audit::DecisionEntry;

/// The most entries one page holds.
pub const MAX_PAGE: usize = 200;
/// The page size when none is asked for.
pub const DEFAULT_PAGE: usize = 50;

/// Which decisions to show; `None` shows every value.
#[derive(Debug, Default)]
pub struct Filter {
    pub user: Option<String>,
    /// `true`: the policy allowed (`allow`); `false`: it denied.
    pub allowed: Option<bool>,
    pub rule: Option<String>,
    pub kind: Option<String>,
    pub door: Option<String>,
}

impl Filter {
    fn keeps(&self, entry: &DecisionEntry) -> bool {
        self.user.as_ref().is_none_or(|u| entry.principal_id == *u)
            && self
                .allowed
                .is_none_or(|a| (entry.decision == "allow") == a)
            && self.rule.as_ref().is_none_or(|r| entry.rule == *r)
            && self.kind.as_ref().is_none_or(|k| entry.resource_kind == *k)
            && self.door.as_ref().is_none_or(|d| entry.source == *d)
    }
}

/// An entry's name for cursors and re-evaluation: its time in milliseconds and a hash of its content.
pub fn cursor_of(entry: &DecisionEntry) -> String {
    let mut hasher = DefaultHasher::new();
    format!("{entry:?}").hash(&mut hasher);
    format!("{}-{:016x}", entry.time_ms, hasher.finish())
}

/// The time a cursor names; `None` for text that is not a cursor.
pub fn cursor_time(cursor: &str) -> Option<i64> {
    let (time, hash) = cursor.split_once('-')?;
    (hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| time.parse().ok())
        .flatten()
}

/// One page of decisions, newest first.
#[derive(Debug)]
pub struct Page<'e> {
    pub entries: Vec<&'e DecisionEntry>,
    /// The newest entry in the ring, filtered or not: where the next poll starts.
    pub cursor: Option<String>,
    /// More entries matched than the page holds (the oldest are left out).
    pub truncated: bool,
    /// The cursor's entry has left the ring; entries from its time on are given.
    pub gap: bool,
}

/// The entries of `ring` (oldest first) that `filter` keeps, newest first, at most `limit`: all of
/// them, or those after the entry `after` names.
pub fn page<'e>(
    ring: &'e [DecisionEntry],
    filter: &Filter,
    after: Option<(&str, i64)>,
    limit: usize,
) -> Page<'e> {
    let mut gap = false;
    let newer = match after {
        None => ring,
        Some((cursor, time)) => match ring.iter().rposition(|e| cursor_of(e) == cursor) {
            Some(at) => ring.get(at + 1..).unwrap_or_default(),
            None => {
                gap = true;
                let from = ring.partition_point(|e| e.time_ms < time);
                ring.get(from..).unwrap_or_default()
            }
        },
    };
    let mut entries: Vec<&DecisionEntry> = newer
        .iter()
        .rev()
        .filter(|e| filter.keeps(e))
        .take(limit + 1)
        .collect();
    let truncated = entries.len() > limit;
    entries.truncate(limit);
    Page {
        entries,
        cursor: ring.last().map(cursor_of),
        truncated,
        gap,
    }
}

/// An entry as the API shows it.
pub fn entry_json(entry: &DecisionEntry) -> Value {
    json!({
        "id": cursor_of(entry),
        "time_ms": entry.time_ms,
        "principal_id": entry.principal_id,
        "principal_kind": entry.principal_kind,
        "roles": entry.roles,
        "action": entry.action,
        "resource_kind": entry.resource_kind,
        "resource_id": entry.resource_id,
        "decision": entry.decision,
        "allowed": entry.allowed,
        "rule": entry.rule,
        "rule_id_pattern": entry.rule_id_pattern,
        "revision": entry.revision,
        "mode": entry.mode,
        "dry_run": entry.dry_run,
        "door": entry.source,
        "route": entry.route,
        "reason": entry.reason,
        "shadow": entry.shadow.as_ref().map(|s| json!({
            "decision": s.decision, "rule": s.rule, "revision": s.revision,
        })),
        "latency_us": entry.latency_us,
    })
}

/// Allowed and denied decisions per interval of `bucket_ms`, the last `buckets` intervals up to
/// `now_ms`, oldest first; an entry stamped after `now_ms` (recorded while this ran) counts in the
/// last interval.
pub fn rate(
    ring: &[DecisionEntry],
    now_ms: i64,
    bucket_ms: i64,
    buckets: usize,
) -> Vec<(u64, u64)> {
    let mut counts = vec![(0u64, 0u64); buckets];
    let span = bucket_ms.saturating_mul(i64::try_from(buckets).unwrap_or(i64::MAX));
    let start = now_ms.saturating_sub(span);
    for entry in ring.iter().rev() {
        if entry.time_ms < start {
            // The ring is in recording order; a few entries may be a millisecond or two apart from
            // it, which only blurs the oldest interval.
            break;
        }
        let Ok(index) = usize::try_from((entry.time_ms - start) / bucket_ms.max(1)) else {
            continue;
        };
        if let Some(count) = counts.get_mut(index.min(buckets.saturating_sub(1))) {
            if entry.decision == "allow" {
                count.0 += 1;
            } else {
                count.1 += 1;
            }
        }
    }
    counts
}

/// The entries the shadow set decided otherwise than the live set, newest first, at most `limit`,
/// and how many the ring holds.
pub fn shadow_differences(ring: &[DecisionEntry], limit: usize) -> (usize, Vec<&DecisionEntry>) {
    let differs = |e: &&DecisionEntry| {
        e.shadow
            .as_ref()
            .is_some_and(|s| s.decision != e.decision && e.mode != "disabled")
    };
    let count = ring.iter().filter(differs).count();
    (
        count,
        ring.iter().rev().filter(differs).take(limit).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(time_ms: i64, user: &str, decision: &str) -> DecisionEntry {
        serde_json::from_value(json!({
            "time_ms": time_ms, "principal_id": user, "principal_kind": "user",
            "action": "read", "resource_kind": "feed", "resource_id": "user:1",
            "decision": decision, "allowed": decision == "allow", "rule": "r",
            "revision": "rev", "mode": "enforcing", "source": "check", "latency_us": 3,
        }))
        .unwrap()
    }

    #[test]
    fn a_page_is_newest_first_filtered_and_bounded() {
        let ring: Vec<_> = (0..10)
            .map(|i| entry(i, if i % 2 == 0 { "a" } else { "b" }, "allow"))
            .collect();
        let filter = Filter {
            user: Some("a".to_owned()),
            ..Filter::default()
        };
        let page = page(&ring, &filter, None, 3);
        let times: Vec<i64> = page.entries.iter().map(|e| e.time_ms).collect();
        assert_eq!(times, [8, 6, 4]);
        assert!(page.truncated);
        assert_eq!(page.cursor, Some(cursor_of(&ring[9])));
    }

    #[test]
    fn the_tail_is_what_follows_the_cursor_and_a_lost_cursor_is_a_gap() {
        let ring: Vec<_> = (0..5).map(|i| entry(i * 10, "a", "deny")).collect();
        let cursor = cursor_of(&ring[2]);
        let tail = page(&ring, &Filter::default(), Some((&cursor, 20)), 50);
        assert_eq!(tail.entries.len(), 2);
        assert!(!tail.gap);
        let lost = page(
            &ring,
            &Filter::default(),
            Some(("15-0000000000000000", 15)),
            50,
        );
        assert!(lost.gap);
        assert_eq!(lost.entries.len(), 3);
        assert_eq!(cursor_time(&cursor), Some(20));
        assert_eq!(cursor_time("20-xyz"), None);
    }

    #[test]
    fn rate_counts_allows_and_denies_per_interval() {
        let ring = vec![
            entry(1_000, "a", "allow"),
            entry(5_500, "a", "deny"),
            entry(5_600, "a", "allow"),
            entry(9_999, "a", "deny"),
        ];
        assert_eq!(rate(&ring, 10_000, 5_000, 2), vec![(1, 0), (1, 2)]);
    }
}
