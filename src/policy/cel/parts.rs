//! The top-level parts of a condition (`a && b`, `a || b`, `!a`, each part by its source text), so
//! that an explanation can name the part that was false or failed rather than the whole expression.
//!
//! The `cel` crate records only the offset of each node's own token, not the span of the
//! sub-expression it heads, so parts are found in the source by a small scanner that respects
//! strings, comments and brackets, and each part is compiled as a condition of its own at load time:
//! the same checks and the same evaluation budget apply to it as to the whole. A source the scanner
//! cannot split safely (a top-level `?:`, a part that does not compile alone) is one part.
//!
//! Only explanations evaluate parts; a decision evaluates the whole program once.

use super::{CelCondition, CelInput, MAX_BRACKET_DEPTH};

/// How a condition is built from its top-level parts.
#[derive(Debug, Clone)]
pub(super) enum Shape {
    /// Every part must be true.
    And(Vec<CelCondition>),
    /// One part must be true.
    Or(Vec<CelCondition>),
    /// The part must be false.
    Not(Box<CelCondition>),
}

/// The shape of `source`, or `None` when it is a single term. `depth` bounds the recursion through
/// parentheses and negations, as [`MAX_BRACKET_DEPTH`] bounds the parser's.
pub(super) fn shape(source: &str, depth: usize) -> Option<Shape> {
    if depth > MAX_BRACKET_DEPTH {
        return None;
    }
    let source = source.trim();
    let scan = Scan::of(source);
    if let Some(inner) = scan.parenthesized(source) {
        return shape(inner, depth + 1);
    }
    if scan.ternary {
        return None;
    }
    let compile = |parts: Vec<&str>| -> Option<Vec<CelCondition>> {
        parts
            .into_iter()
            .map(|part| CelCondition::compile_at(part.trim(), depth + 1).ok())
            .collect()
    };
    if !scan.ors.is_empty() {
        return compile(cut(source, &scan.ors)).map(Shape::Or);
    }
    if !scan.ands.is_empty() {
        return compile(cut(source, &scan.ands)).map(Shape::And);
    }
    let rest = source.strip_prefix('!')?;
    if rest.starts_with('=') || !Scan::of(rest).is_term {
        return None;
    }
    let rest = rest.trim();
    let operand = Scan::of(rest).parenthesized(rest).unwrap_or(rest);
    CelCondition::compile_at(operand.trim(), depth + 1)
        .ok()
        .map(|part| Shape::Not(Box::new(part)))
}

/// `source` cut at the two-byte operators starting at `at`.
fn cut<'s>(source: &'s str, at: &[usize]) -> Vec<&'s str> {
    let mut parts = Vec::with_capacity(at.len() + 1);
    let mut start = 0;
    for &i in at {
        parts.push(source.get(start..i).unwrap_or_default());
        start = i + 2;
    }
    parts.push(source.get(start..).unwrap_or_default());
    parts
}

/// What a scan of a source found outside strings, comments and brackets.
#[derive(Debug, Default)]
struct Scan {
    /// Byte offsets of `&&` and `||`.
    ands: Vec<usize>,
    ors: Vec<usize>,
    /// A `?` (the conditional operator, which binds more loosely than `||`).
    ternary: bool,
    /// Where the bracket opened at offset 0 closes, when the source starts with `(`.
    first_close: Option<usize>,
    /// Only names, `.`, and bracketed groups: a unary operand such as `has(a.b)` or `a.b[0]`.
    is_term: bool,
}

impl Scan {
    fn of(source: &str) -> Scan {
        let bytes = source.as_bytes();
        let mut scan = Scan {
            is_term: true,
            ..Scan::default()
        };
        let (mut depth, mut i) = (0usize, 0usize);
        while let Some(&b) = bytes.get(i) {
            match b {
                b'\'' | b'"' => {
                    let raw = i > 0 && matches!(bytes.get(i - 1), Some(b'r' | b'R'));
                    i = skip_string(bytes, i, raw);
                    continue;
                }
                b'/' if bytes.get(i + 1) == Some(&b'/') => {
                    while bytes.get(i).is_some_and(|&c| c != b'\n') {
                        i += 1;
                    }
                    continue;
                }
                b'(' | b'[' | b'{' => depth += 1,
                b')' | b']' | b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 && scan.first_close.is_none() && bytes.first() == Some(&b'(') {
                        scan.first_close = Some(i);
                    }
                }
                _ if depth > 0 => {}
                b'&' | b'|' if bytes.get(i + 1) == Some(&b) => {
                    if b == b'&' {
                        &mut scan.ands
                    } else {
                        &mut scan.ors
                    }
                    .push(i);
                    scan.is_term = false;
                    i += 2;
                    continue;
                }
                b'?' => scan.ternary = true,
                _ => {}
            }
            if depth == 0 && !(b.is_ascii_alphanumeric() || b"_.()[]{}".contains(&b)) {
                scan.is_term = false;
            }
            i += 1;
        }
        scan
    }

    /// The inside of `source` when a pair of parentheses encloses all of it.
    fn parenthesized<'s>(&self, source: &'s str) -> Option<&'s str> {
        (self.first_close? + 1 == source.len())
            .then(|| source.get(1..source.len() - 1))
            .flatten()
    }
}

/// The offset after the string literal opening at `start` (quote `'` or `"`, tripled or not; raw
/// literals have no escapes).
fn skip_string(bytes: &[u8], start: usize, raw: bool) -> usize {
    let Some(&quote) = bytes.get(start) else {
        return start + 1;
    };
    let triple = bytes.get(start + 1) == Some(&quote) && bytes.get(start + 2) == Some(&quote);
    let closing: &[u8] = if triple {
        &[quote, quote, quote]
    } else {
        &[quote]
    };
    let mut i = start + closing.len();
    while i < bytes.len() {
        if !raw && bytes.get(i) == Some(&b'\\') {
            i += 2;
        } else if bytes.get(i..i + closing.len()) == Some(closing) {
            return i + closing.len();
        } else {
            i += 1;
        }
    }
    bytes.len()
}

impl CelCondition {
    /// Why the condition does not evaluate to `want` on `input`: the top-level parts responsible,
    /// each named by its source text (`` `principal.id == resource.attributes.owner` is false ``),
    /// and an error by its kind. For `a && b` the first part that is false (or fails), for `a || b`
    /// every part, for `!a` the part itself; recursively. The sentences carry the policy's text,
    /// never a value from the request, so they may be logged. Empty when the condition evaluates to
    /// `want`. Costs one evaluation per part visited, each within the evaluation budget.
    pub fn explain(&self, input: &CelInput<'_>, want: bool) -> Vec<String> {
        let mut out = Vec::new();
        let result = self.evaluate(input);
        if result != Ok(want) {
            self.explain_result(input, &result, &mut out);
        }
        out
    }

    /// Explains why the condition evaluated to `result`.
    fn explain_result(
        &self,
        input: &CelInput<'_>,
        result: &Result<bool, String>,
        out: &mut Vec<String>,
    ) {
        let before = out.len();
        let failed = |r: &Result<bool, String>| r.is_err();
        let is = |value: bool| move |r: &Result<bool, String>| r == &Ok(value);
        match (self.shape.as_deref(), result) {
            (Some(Shape::Not(inner)), _) => {
                let inner_result = inner.evaluate(input);
                inner.explain_result(input, &inner_result, out);
            }
            // A conjunction: the first part that is false, or failed; when it holds, every part.
            (Some(Shape::And(parts)), Ok(false)) => {
                explain_parts(parts, input, is(false), true, out)
            }
            (Some(Shape::And(parts)), Err(_)) => explain_parts(parts, input, failed, true, out),
            (Some(Shape::And(parts)), Ok(true)) => {
                explain_parts(parts, input, is(true), false, out)
            }
            // A disjunction: when it holds, the first true part; else every part that is not true.
            (Some(Shape::Or(parts)), Ok(true)) => explain_parts(parts, input, is(true), true, out),
            (Some(Shape::Or(parts)), _) => {
                explain_parts(parts, input, |r| r != &Ok(true), false, out);
            }
            (None, _) => {}
        }
        if out.len() == before {
            out.push(self.sentence(result));
        }
    }

    fn sentence(&self, result: &Result<bool, String>) -> String {
        match result {
            Ok(value) => format!("`{}` is {value}", self.source),
            Err(error) => format!("`{}` failed: {error}", self.source),
        }
    }

    /// The parts of this condition, for tests.
    #[cfg(test)]
    pub(super) fn part_sources(&self) -> Vec<&str> {
        match self.shape.as_deref() {
            Some(Shape::And(parts) | Shape::Or(parts)) => {
                parts.iter().map(CelCondition::source).collect()
            }
            Some(Shape::Not(part)) => vec![part.source()],
            None => Vec::new(),
        }
    }
}

/// Explains the parts whose result `pick` selects: the first only when `first`, else all.
fn explain_parts(
    parts: &[CelCondition],
    input: &CelInput<'_>,
    pick: impl Fn(&Result<bool, String>) -> bool,
    first: bool,
    out: &mut Vec<String>,
) {
    for part in parts {
        let result = part.evaluate(input);
        if pick(&result) {
            part.explain_result(input, &result, out);
            if first {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{context, principal, resource};
    use super::super::{CelCondition, CelInput};
    use super::Shape;

    fn compiled(source: &str) -> CelCondition {
        match CelCondition::compile(source) {
            Ok(condition) => condition,
            Err(error) => panic!("{source}: {error}"),
        }
    }

    fn explain(source: &str, want: bool) -> Vec<String> {
        let (principal, resource, context) = (principal(), resource(), context());
        compiled(source).explain(
            &CelInput {
                principal: &principal,
                resource: &resource,
                action: "update",
                context: &context,
            },
            want,
        )
    }

    #[test]
    fn parts_are_found_outside_strings_comments_and_brackets() {
        assert_eq!(
            compiled("principal.id == 'a && b' && (context.count > 1 || context.count < 0)")
                .part_sources(),
            [
                "principal.id == 'a && b'",
                "(context.count > 1 || context.count < 0)"
            ]
        );
        assert_eq!(
            compiled("action == 'x' || action == \"y||z\" && r'x\\' == 'a'").part_sources(),
            ["action == 'x'", "action == \"y||z\" && r'x\\' == 'a'"]
        );
        assert_eq!(
            compiled("(action == 'x' && action == 'y')").part_sources(),
            ["action == 'x'", "action == 'y'"]
        );
        assert_eq!(
            compiled("!has(context.flag)").part_sources(),
            ["has(context.flag)"]
        );
        assert_eq!(
            compiled("action == 'a' // not && this\n && action == 'b'").part_sources(),
            ["action == 'a' // not && this", "action == 'b'"]
        );
        for single in [
            "action == 'x' ? true : false && false",
            "!context.flag == true",
            "action != 'x'",
            "principal.roles.exists(r, r == 'a' && r == 'b')",
        ] {
            assert!(compiled(single).part_sources().is_empty(), "{single}");
        }
    }

    #[test]
    fn a_false_conjunction_names_its_first_false_part() {
        assert_eq!(
            explain(
                "principal.kind == 'user' && resource.attributes.author_id != principal.id && context.count > 1",
                true
            ),
            ["`resource.attributes.author_id != principal.id` is false"]
        );
    }

    #[test]
    fn a_false_disjunction_names_every_part_and_a_negation_its_operand() {
        assert_eq!(
            explain(
                "action == 'read' || !('moderator' in principal.roles)",
                true
            ),
            [
                "`action == 'read'` is false",
                "`'moderator' in principal.roles` is true"
            ]
        );
        assert_eq!(
            explain("action == 'update' && context.count > 1", false),
            [
                "`action == 'update'` is true",
                "`context.count > 1` is true"
            ]
        );
        assert!(explain("action == 'update'", true).is_empty());
    }

    #[test]
    fn a_failing_part_is_named_with_the_error_kind_and_no_value() {
        let lines = explain("principal.kind == 'user' && context.actor > 3", true);
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = lines.first().map(String::as_str).unwrap_or_default();
        assert!(line.starts_with("`context.actor > 3` failed: "), "{line}");
        assert!(!line.contains("SU:jack"), "{line}");
        assert_eq!(
            explain("action == 'update' && context.missing == 1", true),
            ["`context.missing == 1` failed: no such key 'missing'"]
        );
    }

    /// What the parts say the whole is: the shape's operator over its parts' values (`None` for a
    /// single term, or when a part fails).
    fn recombined(condition: &CelCondition, input: &CelInput<'_>) -> Option<bool> {
        let values = |parts: &[CelCondition]| -> Option<Vec<bool>> {
            parts.iter().map(|part| part.evaluate(input).ok()).collect()
        };
        match condition.shape.as_deref()? {
            Shape::And(parts) => values(parts).map(|v| v.iter().all(|&b| b)),
            Shape::Or(parts) => values(parts).map(|v| v.iter().any(|&b| b)),
            Shape::Not(part) => part.evaluate(input).ok().map(|b| !b),
        }
    }

    #[test]
    fn parts_recombine_to_the_whole_on_sources_built_to_split_wrongly() {
        let (principal, resource, context) = (principal(), resource(), context());
        let input = CelInput {
            principal: &principal,
            resource: &resource,
            action: "update",
            context: &context,
        };
        let sources = [
            r#"action == "up\" && \"date" || action == 'x'"#,
            r#"action == '\\' && action == 'update' || true"#,
            r#"action == """a "" && b""" || action == 'update'"#,
            r#"action == '''x '' || y''' && false"#,
            r#"action == r'\' || action == 'update' && false"#,
            r#"b'\\' == b'x' || action == 'update'"#,
            r#"br'\' == b'\\' && action == 'update'"#,
            r#"action == '//' && action == 'update' // && false"#,
            "action == 'a' // it's && not\n || action == 'update'",
            r#"principal.roles.exists(r, r == 'user' && r != 'x') && !(context.count > 9 || false)"#,
            r#"(action == 'update') && (context.count > 1) ? true : false"#,
            r#"!(action == 'update') || !has(context.nope) && context.count == 5"#,
            r#"{'a': 1 == 1 && false}.a || [true || false][0] && action == 'update'"#,
            r#"size('&&||') == 4 && context.actor.startsWith('SU:') || false"#,
        ];
        let mut split = 0;
        for source in sources {
            let condition = compiled(source);
            let whole = condition.evaluate(&input);
            if let Some(parts) = recombined(&condition, &input) {
                split += 1;
                assert_eq!(Ok(parts), whole, "{source}: {:?}", condition.part_sources());
            }
        }
        // Most of them are split, so the comparison above is made.
        assert!(split >= 10, "only {split} sources were split");
    }
}
