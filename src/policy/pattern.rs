//! Resource id patterns: literals, `*` (any run without `:`), `**` (any run), and captures `{name}`
//! (a run without `:`) or `{name**}` (any run). A pattern matches the whole id.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    /// A run of characters; `colons` says whether it may contain `:`. `capture` names it.
    Run {
        colons: bool,
        capture: Option<usize>,
    },
}

/// A compiled id pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    source: String,
    parts: Vec<Part>,
    capture_names: Vec<String>,
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Pattern {
    pub fn parse(source: &str) -> Result<Pattern, String> {
        let mut parts = Vec::new();
        let mut names: Vec<String> = Vec::new();
        let mut literal = String::new();
        let pieces = split_braces(source).map_err(|e| format!("{e} in pattern '{source}'"))?;
        for piece in pieces {
            match piece {
                Piece::Text(text) => {
                    let mut chars = text.chars().peekable();
                    while let Some(c) = chars.next() {
                        if c == '*' {
                            let colons = chars.next_if_eq(&'*').is_some();
                            push_run(&mut parts, &mut literal, colons, None)?;
                        } else {
                            literal.push(c);
                        }
                    }
                }
                Piece::Brace(inner) => {
                    let (name, colons) = match inner.strip_suffix("**") {
                        Some(stripped) => (stripped, true),
                        None => (inner, false),
                    };
                    if !is_capture_name(name) {
                        return Err(format!(
                            "capture names are letters, digits and '_' in '{source}'"
                        ));
                    }
                    if names.len() == MAX_CAPTURES {
                        return Err(format!("at most {MAX_CAPTURES} captures in '{source}'"));
                    }
                    if names.iter().any(|n| n == name) {
                        return Err(format!("capture '{name}' appears twice in '{source}'"));
                    }
                    names.push(name.to_owned());
                    push_run(&mut parts, &mut literal, colons, Some(names.len() - 1))?;
                }
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(Pattern {
            source: source.to_owned(),
            parts,
            capture_names: names,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn capture_names(&self) -> &[String] {
        &self.capture_names
    }

    pub fn is_match(&self, id: &str) -> bool {
        self.captures(id).is_some()
    }

    /// The captured values, in the order of [`Pattern::capture_names`], if `id` matches.
    pub fn captures<'a>(&self, id: &'a str) -> Option<Captures<'a>> {
        let mut values = Captures {
            values: [""; MAX_CAPTURES],
            len: self.capture_names.len(),
        };
        let matched = if self.backtracking_is_cheap(id) {
            match_parts(&self.parts, id, &mut values.values)
        } else {
            match_table(&self.parts, id, &mut values.values)
        };
        matched.then_some(values)
    }

    /// Backtracking tries every place a run may end, so its cost grows with the id's length to the
    /// power of the runs that are followed by more text. With at most one such run and a short id it
    /// is the faster of the two matchers; otherwise [`match_table`] bounds the cost.
    fn backtracking_is_cheap(&self, id: &str) -> bool {
        let inner_runs = self
            .parts
            .windows(2)
            .filter(|pair| matches!(pair, [Part::Run { .. }, _]))
            .count();
        inner_runs <= 1 && id.len() <= BACKTRACKING_MAX_ID
    }
}

/// A piece of a template written with `{…}` braces: text between them, or what one pair encloses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece<'a> {
    Text(&'a str),
    Brace(&'a str),
}

/// Splits `template` at its `{…}` braces (no nesting, no escapes), as id patterns and route
/// templates both write captures. The error says which brace is unpaired.
pub(crate) fn split_braces(template: &str) -> Result<Vec<Piece<'_>>, &'static str> {
    let mut pieces = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let open = rest.find('{');
        let close = rest.find('}');
        match (open, close) {
            (_, Some(close)) if open.is_none_or(|open| close < open) => {
                return Err("unmatched '}'");
            }
            (Some(open), _) => {
                let (text, after) = rest.split_at(open);
                let after = after.get(1..).unwrap_or_default();
                let Some(end) = after.find('}') else {
                    return Err("unclosed '{'");
                };
                if !text.is_empty() {
                    pieces.push(Piece::Text(text));
                }
                pieces.push(Piece::Brace(after.get(..end).unwrap_or_default()));
                rest = after.get(end + 1..).unwrap_or_default();
            }
            _ => {
                pieces.push(Piece::Text(rest));
                rest = "";
            }
        }
    }
    Ok(pieces)
}

/// Capture names are letters, digits and `_`.
pub(crate) fn is_capture_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The longest id the backtracking matcher is used for (see [`Pattern::captures`]).
const BACKTRACKING_MAX_ID: usize = 256;

/// The most captures a pattern may have; enough for any id, and it keeps captures off the heap.
pub const MAX_CAPTURES: usize = 8;

/// Captured values, without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Captures<'a> {
    values: [&'a str; MAX_CAPTURES],
    len: usize,
}

impl<'a> Captures<'a> {
    pub fn get(&self, index: usize) -> Option<&'a str> {
        self.values.get(..self.len)?.get(index).copied()
    }

    pub fn as_slice(&self) -> &[&'a str] {
        self.values.get(..self.len).unwrap_or_default()
    }
}

/// Two adjacent runs would make matching ambiguous, so a run must be followed by a literal or the end.
fn push_run(
    parts: &mut Vec<Part>,
    literal: &mut String,
    colons: bool,
    capture: Option<usize>,
) -> Result<(), String> {
    if literal.is_empty() && matches!(parts.last(), Some(Part::Run { .. })) {
        return Err("two wildcards or captures must be separated by literal text".to_owned());
    }
    if !literal.is_empty() {
        parts.push(Part::Literal(std::mem::take(literal)));
    }
    parts.push(Part::Run { colons, capture });
    Ok(())
}

fn match_parts<'a>(parts: &[Part], input: &'a str, values: &mut [&'a str]) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return input.is_empty();
    };
    match first {
        Part::Literal(text) => input
            .strip_prefix(text.as_str())
            .is_some_and(|remaining| match_parts(rest, remaining, values)),
        Part::Run { colons, capture } => {
            let fits = |run: &str| !run.is_empty() && (*colons || !run.contains(':'));
            let take = |run: &'a str, values: &mut [&'a str]| {
                if let Some(slot) = capture.and_then(|i| values.get_mut(i)) {
                    *slot = run;
                }
            };
            match rest.first() {
                // The last part takes the rest of the id.
                None => {
                    let matched = fits(input);
                    if matched {
                        take(input, values);
                    }
                    matched
                }
                // A run ends where its following literal starts: try each such place, shortest first.
                Some(Part::Literal(text)) => {
                    let mut from = 0;
                    while let Some(found) = input.get(from..).and_then(|s| s.find(text.as_str())) {
                        let end = from + found;
                        let (Some(run), Some(tail)) = (input.get(..end), input.get(end..)) else {
                            return false;
                        };
                        if !*colons && run.contains(':') {
                            return false;
                        }
                        if fits(run) && match_parts(rest, tail, values) {
                            take(run, values);
                            return true;
                        }
                        // Step past this occurrence's first character.
                        from = end + text.chars().next().map_or(1, char::len_utf8);
                    }
                    false
                }
                // Parsing never puts two runs side by side.
                Some(Part::Run { .. }) => false,
            }
        }
    }
}

/// Matches in time proportional to the id's length times the pattern's, with the same answer and
/// captures as [`match_parts`] (each run as short as the rest allows, from the left).
///
/// `next[i][p]` is the first position `q >= p` from which `parts[i..]` matches `input[q..]`, or
/// `NONE`; it is filled from the last part backwards, each row from the end of the id.
fn match_table<'a>(parts: &[Part], input: &'a str, values: &mut [&'a str]) -> bool {
    let len = input.len();
    let width = len + 2;
    let none = usize::MAX;
    let mut next = vec![none; (parts.len() + 1) * width];
    let index = |i: usize, p: usize| i * width + p;
    let get = |next: &[usize], i: usize, p: usize| next.get(index(i, p)).copied().unwrap_or(none);
    // No parts left: they match at the end of the id only, which is the first such place from anywhere.
    for p in 0..=len {
        if let Some(slot) = next.get_mut(index(parts.len(), p)) {
            *slot = len;
        }
    }
    for (i, part) in parts.iter().enumerate().rev() {
        let mut colon_at = len;
        for p in (0..=len).rev() {
            if input.as_bytes().get(p) == Some(&b':') {
                colon_at = p;
            }
            let matches_here = input.is_char_boundary(p)
                && match part {
                    Part::Literal(text) => {
                        input.get(p..).is_some_and(|s| s.starts_with(text.as_str()))
                            && get(&next, i + 1, p + text.len()) == p + text.len()
                    }
                    Part::Run { colons, .. } => {
                        let limit = if *colons { len } else { colon_at };
                        get(&next, i + 1, p + 1) <= limit
                    }
                };
            let value = if matches_here {
                p
            } else {
                get(&next, i, p + 1)
            };
            if let Some(slot) = next.get_mut(index(i, p)) {
                *slot = value;
            }
        }
    }
    if get(&next, 0, 0) != 0 {
        return false;
    }
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        match part {
            Part::Literal(text) => pos += text.len(),
            Part::Run { capture, .. } => {
                let end = get(&next, i + 1, pos + 1);
                if let (Some(slot), Some(run)) =
                    (capture.and_then(|c| values.get_mut(c)), input.get(pos..end))
                {
                    *slot = run;
                }
                pos = end;
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both matchers, on every pattern and id here, agree on the answer and the captures.
    fn both(pattern: &str, id: &str) -> Option<Vec<String>> {
        let p = Pattern::parse(pattern).unwrap();
        let mut a = [""; MAX_CAPTURES];
        let mut b = [""; MAX_CAPTURES];
        let slow = match_parts(&p.parts, id, &mut a);
        let fast = match_table(&p.parts, id, &mut b);
        assert_eq!(slow, fast, "{pattern} on {id}");
        if slow {
            assert_eq!(a, b, "{pattern} on {id}");
        }
        slow.then(|| {
            a.iter()
                .take(p.capture_names.len())
                .map(|s| (*s).to_owned())
                .collect()
        })
    }

    #[test]
    fn the_table_matcher_agrees_with_backtracking() {
        let patterns = [
            "{group}:{owner**}",
            "**:team:**:doc:*",
            "{a}-x-{b}",
            "timeline:*",
            "a*b*c",
            "{x**}:{y}",
            "42",
            "é*:{z}",
        ];
        let ids = [
            "",
            "timeline:tommaso",
            "user:a:b",
            "userjack",
            ":jack",
            "user:",
            "1-x-2-x-3",
            "1-x-",
            "org:team:x:y:doc:1",
            "a:team:b:doc:c:d",
            "abc",
            "aXbYc",
            "abbc",
            "a:b:c",
            "éa:z",
            "é:q",
            "::",
            "team:doc:",
            "x:team:y:doc:z",
        ];
        for pattern in patterns {
            for id in ids {
                both(pattern, id);
            }
        }
        assert_eq!(both("**:team:**:doc:*", "org:team:x:y:doc:1"), Some(vec![]));
        assert_eq!(
            both("{x**}:{y}", "a:b:c"),
            Some(vec!["a:b".into(), "c".into()])
        );
    }

    #[test]
    fn a_long_id_against_many_runs_is_matched_in_linear_time() {
        // Backtracking would try every split of the id among the runs: 100,000^4 steps.
        let p = Pattern::parse("**:team:**:doc:**:x:**:y:*").unwrap();
        let id = "team:doc:".repeat(11_000);
        assert!(!p.is_match(&id));
        let id = format!("{}:team:a:doc:b:x:c:y:d", "q".repeat(100_000));
        assert!(p.is_match(&id));
    }

    #[test]
    fn braces_split_text_from_captures() {
        use Piece::{Brace, Text};
        assert_eq!(
            split_braces("{group}:{user_id}"),
            Ok(vec![Brace("group"), Text(":"), Brace("user_id")])
        );
        assert_eq!(
            split_braces("feed-{id}.json"),
            Ok(vec![Text("feed-"), Brace("id"), Text(".json")])
        );
        assert_eq!(split_braces("plain"), Ok(vec![Text("plain")]));
        assert_eq!(split_braces(""), Ok(vec![]));
        assert_eq!(split_braces("{}"), Ok(vec![Brace("")]));
        assert_eq!(split_braces("a{b{c}"), Ok(vec![Text("a"), Brace("b{c")]));
        assert_eq!(split_braces("a}{b}"), Err("unmatched '}'"));
        assert_eq!(split_braces("{a}}"), Err("unmatched '}'"));
        assert_eq!(split_braces("a{b"), Err("unclosed '{'"));
    }

    #[test]
    fn unpaired_braces_and_bad_names_are_errors() {
        for bad in ["{a", "a}", "{}", "{a-b}", "{a}{a}", "{a}{b}", "{a}x{a}"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        assert!(Pattern::parse("{a}x{b**}").is_ok());
    }

    #[test]
    fn captures_split_feed_ids() {
        let p = Pattern::parse("{group}:{owner**}").unwrap();
        let values = |id| p.captures(id).map(|c| c.as_slice().to_vec());
        assert_eq!(
            values("timeline:tommaso"),
            Some(vec!["timeline", "tommaso"])
        );
        assert_eq!(values("user:a:b"), Some(vec!["user", "a:b"]));
        assert_eq!(values("userjack"), None);
        assert_eq!(values(":jack"), None);
        assert_eq!(values("user:"), None);
        let p = Pattern::parse("{a}-x-{b}").unwrap();
        let values = |id| p.captures(id).map(|c| c.as_slice().to_vec());
        assert_eq!(values("1-x-2-x-3"), Some(vec!["1", "2-x-3"]));
        assert_eq!(values("1-x-"), None);
    }

    #[test]
    fn globs_match_whole_ids() {
        let p = Pattern::parse("timeline:*").unwrap();
        assert!(p.is_match("timeline:jack"));
        assert!(!p.is_match("timeline:a:b"));
        assert!(!p.is_match("user:jack"));
        assert!(
            Pattern::parse("timeline:**")
                .unwrap()
                .is_match("timeline:a:b")
        );
        assert!(Pattern::parse("42").unwrap().is_match("42"));
        assert!(!Pattern::parse("42").unwrap().is_match("420"));
        assert!(
            Pattern::parse("account/{id}")
                .unwrap()
                .is_match("account/42")
        );
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(Pattern::parse("{a").is_err());
        assert!(Pattern::parse("{a}{b}").is_err());
        assert!(Pattern::parse("*{a}").is_err());
        assert!(Pattern::parse("{a}:{a}").is_err());
        assert!(Pattern::parse("{a-b}").is_err());
        assert!(Pattern::parse("a}").is_err());
    }
}
