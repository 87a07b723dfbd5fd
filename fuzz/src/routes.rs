//! A reference route matcher, written from the documentation of route tables (module docs of
//! `gatehouse::policy::routes` and `docs/policies.md`) and reading only what a [`Route`] shows: its
//! template text and methods.
//!
//! A template is `/`-separated segments: a literal, `{name}` or `*` (one non-empty segment), or, last,
//! `**` / `{name**}` (the rest, possibly empty). One trailing `/` is not significant; the query never
//! takes part. A request target must be printable ASCII without `#` or `\` (anything else is
//! ambiguous between proxies and servers, and refused). Request segments are percent-decoded; a path
//! with an encoded `/` or `\`, a bad escape, invalid UTF-8, a `.` or `..` segment or more than 64
//! segments is refused. Methods are case-sensitive (RFC 9110). Among the
//! routes that match, the most specific wins, segment by segment from the left (literal over one
//! segment over the rest; a route that ends earlier ranks lower); equal ranks go to the first declared.

use gatehouse::policy::{MAX_SEGMENTS, Route};

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    One(Option<String>),
    Rest(Option<String>),
}

fn template_segments(template: &str) -> Vec<Segment> {
    let body = template.strip_prefix('/').unwrap_or(template);
    let body = body.strip_suffix('/').unwrap_or(body);
    if body.is_empty() {
        return Vec::new();
    }
    body.split('/')
        .map(|part| match part {
            "*" => Segment::One(None),
            "**" => Segment::Rest(None),
            _ => match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some(inner) => match inner.strip_suffix("**") {
                    Some(name) => Segment::Rest(Some(name.to_owned())),
                    None => Segment::One(Some(inner.to_owned())),
                },
                None => Segment::Literal(part.to_owned()),
            },
        })
        .collect()
}

/// The decoded segments of a request path, or `None` when the path is refused.
pub fn request_segments(path: &str) -> Option<Vec<String>> {
    if !path
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'#' && b != b'\\')
    {
        return None;
    }
    let end = path.find('?').unwrap_or(path.len());
    let path = path.get(..end)?;
    let path = path.strip_prefix('/')?;
    let path = path.strip_suffix('/').unwrap_or(path);
    if path.is_empty() {
        return Some(Vec::new());
    }
    let raw: Vec<&str> = path.split('/').collect();
    if raw.len() > MAX_SEGMENTS {
        return None;
    }
    raw.into_iter().map(decode_segment).collect()
}

fn decode_segment(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hi = bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16))?;
            let lo = bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16))?;
            let decoded = (hi * 16 + lo) as u8;
            if decoded == b'/' || decoded == b'\\' {
                return None;
            }
            out.push(decoded);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    let text = String::from_utf8(out).ok()?;
    if text == "." || text == ".." {
        return None;
    }
    Some(text)
}

/// The captures when `route`'s template matches `segments`.
fn matches(segments: &[Segment], path: &[String]) -> Option<Vec<(String, String)>> {
    let mut captures = Vec::new();
    let mut i = 0;
    for segment in segments {
        match segment {
            Segment::Rest(name) => {
                if let Some(name) = name {
                    captures.push((name.clone(), path.get(i..)?.join("/")));
                }
                return Some(captures);
            }
            Segment::Literal(literal) => {
                if path.get(i) != Some(literal) {
                    return None;
                }
            }
            Segment::One(name) => {
                let value = path.get(i).filter(|v| !v.is_empty())?;
                if let Some(name) = name {
                    captures.push((name.clone(), value.clone()));
                }
            }
        }
        i += 1;
    }
    (i == path.len()).then_some(captures)
}

fn rank(segments: &[Segment]) -> Vec<u8> {
    segments
        .iter()
        .map(|s| match s {
            Segment::Literal(_) => 3,
            Segment::One(_) => 2,
            Segment::Rest(_) => 1,
        })
        .collect()
}

/// What the reference finds: `Err(())` for a refused path, else the index of the winning route and
/// its captures.
#[allow(clippy::result_unit_err)]
pub fn find(
    routes: &[Route],
    method: &str,
    path: &str,
) -> Result<Option<(usize, Vec<(String, String)>)>, ()> {
    let segments = request_segments(path).ok_or(())?;
    let mut best: Option<(usize, Vec<u8>, Vec<(String, String)>)> = None;
    for (index, route) in routes.iter().enumerate() {
        let methods = route.methods();
        if !methods.is_empty() && !methods.iter().any(|m| m == method) {
            continue;
        }
        let template = template_segments(route.template());
        let Some(captures) = matches(&template, &segments) else {
            continue;
        };
        let rank = rank(&template);
        if best.as_ref().is_none_or(|(_, r, _)| rank > *r) {
            best = Some((index, rank, captures));
        }
    }
    Ok(best.map(|(index, _, captures)| (index, captures)))
}

/// A request path for `template`: each capture or glob filled with the next of `fills`, `**` with
/// zero or more segments.
pub fn path_for(template: &str, fills: &[String], trailing_slash: bool) -> String {
    let mut fills = fills.iter().cycle();
    let mut next = || fills.next().cloned().unwrap_or_else(|| "x".to_owned());
    let mut out = String::new();
    for segment in template_segments(template) {
        match segment {
            Segment::Literal(literal) => {
                out.push('/');
                out.push_str(&literal);
            }
            Segment::One(_) => {
                out.push('/');
                out.push_str(&next());
            }
            Segment::Rest(_) => {
                let rest = next();
                if !rest.is_empty() {
                    out.push('/');
                    out.push_str(&rest);
                }
            }
        }
    }
    if out.is_empty() || trailing_slash {
        out.push('/');
    }
    out
}
