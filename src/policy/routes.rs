//! Route tables: which resource, id and action an HTTP request (method and path) stands for, so a proxy
//! (Envoy's ext_authz, nginx's `auth_request`, Traefik's ForwardAuth) can ask for a decision about a
//! request it knows only as HTTP.
//!
//! A path template is a list of `/`-separated segments: a literal, `{name}` (one segment, captured),
//! `*` (one segment) or, last, `**` / `{name**}` (the rest, possibly empty). A trailing `/` is not
//! significant (Stream's clients always send one; people often forget it), and the query string is
//! never part of matching. When several routes match, the most specific wins, segment by segment from
//! the left: a literal beats a capture or `*`, which beats `**`. Two routes that match exactly the same
//! requests are a load error, so the winner never depends on file order.
//!
//! Pure: matching takes the path as given; decoding, normalising and refusing odd paths happens here too,
//! so every front end (gRPC ext_authz, the HTTP endpoint) treats a path the same way. Finding the route
//! is [`index`]'s, on `matchit` routers, so its cost does not grow with the number of routes.

mod index;

use std::collections::BTreeMap;

use percent_encoding::percent_decode_str;
use serde::Serialize;
use serde_json::Value;

use super::file::{OneOrMany, RouteDoc};
use super::pattern::{Piece, is_capture_name, split_braces};
use index::{Index, Key};

/// The most segments a path template or a request path may have; a longer request path is malformed.
pub const MAX_SEGMENTS: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
enum Segment {
    Literal(String),
    /// One segment; `Some(name)` captures it.
    One(Option<String>),
    /// The rest of the path (zero or more segments); `Some(name)` captures it, joined with `/`.
    Rest(Option<String>),
}

/// Where a value copied into the request's attributes or context comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ValueSource {
    /// A path capture.
    Capture(String),
    /// A query parameter (the first, when repeated).
    Query(String),
    /// A request header (lower-case name).
    Header(String),
    /// A JSON body field by path; a `*` step takes every element of an array.
    Body(Vec<String>),
    /// The caller's user id (nothing for an anonymous caller or a server token without one).
    PrincipalId,
}

impl ValueSource {
    /// Whether the client writes this value itself: a header, the query string or the body. Path
    /// captures and the verified principal are not: the route and the token fix them.
    pub fn client_controlled(&self) -> bool {
        matches!(
            self,
            ValueSource::Query(_) | ValueSource::Header(_) | ValueSource::Body(_)
        )
    }
}

/// One field of `attributes` or `context`: the first of its sources that has a value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldSource {
    pub name: String,
    pub sources: Vec<ValueSource>,
}

/// A piece of the resource id template: text, or a value (`{name}` is capture `name`, `{body.id}` any
/// value source).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum IdPiece {
    Literal(String),
    Value(ValueSource),
}

/// A compiled route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Route {
    pub name: String,
    /// Upper-case methods; empty means any method.
    methods: Vec<String>,
    template: String,
    segments: Vec<Segment>,
    /// Where the index stores the route; derived from `segments`, so not part of the revision.
    #[serde(skip)]
    key: Key,
    /// Public routes are allowed without credentials or a decision.
    pub public: bool,
    pub kind: String,
    pub id: Vec<IdPiece>,
    pub action: String,
    pub attributes: Vec<FieldSource>,
    pub context: Vec<FieldSource>,
    /// Attributes marked as trusted to come from client-controlled sources.
    pub trusted: Vec<String>,
    /// More ids of the same kind the request acts on; each with a value is decided too.
    pub also_ids: Vec<Vec<IdPiece>>,
}

/// Routes, in declaration order, and the index that finds them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RouteTable {
    routes: Vec<Route>,
    /// Built from `routes`, so neither compared nor part of the revision.
    #[serde(skip)]
    index: Index,
}

impl PartialEq for RouteTable {
    fn eq(&self, other: &RouteTable) -> bool {
        self.routes == other.routes
    }
}

impl Eq for RouteTable {}

/// A route that matched, with its captures (percent-decoded).
#[derive(Debug)]
pub struct RouteMatch<'t> {
    pub route: &'t Route,
    pub captures: Vec<(&'t str, String)>,
}

/// Why a request path cannot be routed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must start with '/'")]
    NotAbsolute,
    #[error("the path has '.' or '..' segments")]
    DotSegment,
    #[error("the path has an encoded '/' or '\\' or an invalid percent-encoding")]
    BadEncoding,
    #[error("the path has more than {MAX_SEGMENTS} segments")]
    TooLong,
    /// Proxies and servers disagree on these (nginx forwards a `#` verbatim, some servers turn `\`
    /// into `/`), so gatehouse and the upstream could read different paths.
    #[error("the request target has a '#', a '\\', a space or a byte that is not printable ASCII")]
    Ambiguous,
}

impl RouteTable {
    pub(super) fn new(routes: Vec<Route>) -> RouteTable {
        RouteTable {
            index: Index::new(&routes),
            routes,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The route for `method` and `path` (the query string, if any, is ignored). `Ok(None)`: no route
    /// describes the request.
    pub fn find(&self, method: &str, path: &str) -> Result<Option<RouteMatch<'_>>, PathError> {
        let request = RequestPath::parse(path)?;
        let found = self.index.find(&self.routes, method, &request);
        Ok(found
            .and_then(|i| self.routes.get(i))
            .map(|route| RouteMatch {
                captures: route.captures(&request),
                route,
            }))
    }
}

impl Route {
    /// Methods are case-sensitive (RFC 9110): `get` is not `GET`, and a server may treat it as
    /// something else.
    fn allows_method(&self, method: &str) -> bool {
        self.methods.is_empty() || self.methods.iter().any(|m| m == method)
    }

    /// Whether the route matches `request`, walking its segments: for the few routes the index
    /// cannot hold.
    fn matches(&self, request: &RequestPath) -> bool {
        let mut rest = request.segments();
        for segment in &self.segments {
            match segment {
                Segment::Rest(_) => return true,
                Segment::Literal(lit) => {
                    if rest.next() != Some(lit.as_str()) {
                        return false;
                    }
                }
                Segment::One(_) => {
                    if rest.next().is_none_or(str::is_empty) {
                        return false;
                    }
                }
            }
        }
        rest.next().is_none()
    }

    /// Specificity, compared lexicographically: per segment 3 literal, 2 one segment, 1 rest; a route
    /// that ends earlier ranks below one that continues with anything.
    fn rank(&self) -> impl Iterator<Item = u8> + '_ {
        self.segments.iter().map(|s| match s {
            Segment::Literal(_) => 3,
            Segment::One(_) => 2,
            Segment::Rest(_) => 1,
        })
    }

    fn captures(&self, request: &RequestPath) -> Vec<(&str, String)> {
        let mut out = Vec::new();
        for (i, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::One(Some(name)) => {
                    if let Some(value) = request.segments().nth(i) {
                        out.push((name.as_str(), value.to_owned()));
                    }
                }
                Segment::Rest(Some(name)) => {
                    out.push((name.as_str(), request.rest(i).to_owned()));
                }
                _ => {}
            }
        }
        out
    }

    pub fn template(&self) -> &str {
        &self.template
    }

    pub fn methods(&self) -> &[String] {
        &self.methods
    }

    /// Whether any attribute or context field reads the request body.
    pub fn reads_body(&self) -> bool {
        let in_id = self
            .id
            .iter()
            .chain(self.also_ids.iter().flatten())
            .any(|p| matches!(p, IdPiece::Value(ValueSource::Body(_))));
        in_id
            || self
                .attributes
                .iter()
                .chain(&self.context)
                .flat_map(|f| &f.sources)
                .any(|s| matches!(s, ValueSource::Body(_)))
    }

    /// Two routes overlap exactly when they share a method and their templates have the same shape,
    /// that is the same index key: one router would have to hold both under it.
    pub(super) fn same_requests_as(&self, other: &Route) -> bool {
        let methods_overlap = self.methods.is_empty()
            || other.methods.is_empty()
            || self.methods.iter().any(|m| other.methods.contains(m));
        methods_overlap && self.key == other.key
    }
}

/// A request path as routes match it: percent-decoded, without the query string and one trailing
/// `/`. Decoded segments never hold a `/` (an encoded one is refused), so they are kept joined in one
/// string, which is also what the index's routers look up.
#[derive(Debug)]
struct RequestPath {
    /// `/` and the segments joined with `/`; just `/` when there are none.
    path: String,
    /// How many segments (`/a//b` has three).
    segments: usize,
    /// The position of the first empty segment, if any.
    first_empty: Option<usize>,
}

impl RequestPath {
    fn parse(path: &str) -> Result<RequestPath, PathError> {
        if !is_plain_target(path) {
            return Err(PathError::Ambiguous);
        }
        let path = path.split('?').next().unwrap_or_default();
        let Some(path) = path.strip_prefix('/') else {
            return Err(PathError::NotAbsolute);
        };
        let path = path.strip_suffix('/').unwrap_or(path);
        let mut request = RequestPath {
            path: String::with_capacity(path.len() + 1),
            segments: 0,
            first_empty: None,
        };
        if path.is_empty() {
            request.path.push('/');
            return Ok(request);
        }
        for raw in path.split('/') {
            if request.segments == MAX_SEGMENTS {
                return Err(PathError::TooLong);
            }
            let lower = raw.to_ascii_lowercase();
            if lower.contains("%2f") || lower.contains("%5c") {
                return Err(PathError::BadEncoding);
            }
            let decoded = percent_decode_str(raw)
                .decode_utf8()
                .map_err(|_| PathError::BadEncoding)?;
            if decoded == "." || decoded == ".." {
                return Err(PathError::DotSegment);
            }
            if has_bad_escape(raw) {
                return Err(PathError::BadEncoding);
            }
            if decoded.is_empty() {
                request.first_empty.get_or_insert(request.segments);
            }
            request.path.push('/');
            request.path.push_str(&decoded);
            request.segments += 1;
        }
        Ok(request)
    }

    /// The decoded segments, in order.
    fn segments(&self) -> impl Iterator<Item = &str> {
        let body = self.path.get(1..).unwrap_or_default();
        body.split('/').take(self.segments)
    }

    /// The path of the first `depth` segments (`/` for none).
    fn prefix(&self, depth: usize) -> &str {
        match self.path.match_indices('/').nth(depth) {
            Some((at, _)) if depth > 0 => self.path.get(..at).unwrap_or_default(),
            Some(_) => "/",
            None => &self.path,
        }
    }

    /// The segments from position `depth` on, joined with `/` (empty when there are none).
    fn rest(&self, depth: usize) -> &str {
        match self.path.match_indices('/').nth(depth) {
            Some((at, _)) => self.path.get(at + 1..).unwrap_or_default(),
            None => "",
        }
    }
}

/// Whether a request target is printable ASCII without `#` or `\`: the only targets that every proxy
/// and server reads the same way. Anything else is refused rather than interpreted.
pub fn is_plain_target(target: &str) -> bool {
    target
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'#' && b != b'\\')
}

/// A `%` not followed by two hex digits (percent_decode passes those through unchanged).
fn has_bad_escape(raw: &str) -> bool {
    let bytes = raw.as_bytes();
    bytes.iter().enumerate().any(|(i, b)| {
        *b == b'%'
            && !(bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    })
}

/// Compiles one route document; every problem is returned, each as a sentence.
pub(super) fn compile_route(doc: RouteDoc) -> Result<Route, Vec<String>> {
    let mut errors = Vec::new();
    let methods = methods(doc.methods, &mut errors);
    let (segments, captures) = match parse_template(&doc.path) {
        Ok(parsed) => parsed,
        Err(e) => {
            errors.push(e);
            (Vec::new(), Vec::new())
        }
    };
    let public = doc.public.unwrap_or(false);
    let kind = doc.resource.unwrap_or_default();
    let action = doc.action.unwrap_or_default();
    if !public && kind.trim().is_empty() {
        errors.push("a route needs a resource kind (or public: true)".to_owned());
    }
    if !public && action.trim().is_empty() {
        errors.push("a route needs an action (or public: true)".to_owned());
    }
    let id = match parse_id(doc.id.as_deref().unwrap_or(""), &captures) {
        Ok(id) => id,
        Err(e) => {
            errors.push(e);
            Vec::new()
        }
    };
    let mut also_ids = Vec::new();
    for template in &doc.also_ids {
        match parse_id(template, &captures) {
            Ok(id) => also_ids.push(id),
            Err(e) => errors.push(e),
        }
    }
    let attributes = fields(doc.attributes, &captures, &mut errors);
    let context = fields(doc.context, &captures, &mut errors);
    if public && (!kind.is_empty() || !action.is_empty()) {
        errors.push("a public route is not checked, so it takes no resource or action".to_owned());
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Route {
        name: doc.name,
        methods,
        template: doc.path,
        key: Key::of(&segments),
        segments,
        public,
        kind,
        id,
        action,
        attributes,
        context,
        trusted: doc.trusted,
        also_ids,
    })
}

fn methods(doc: Option<OneOrMany>, errors: &mut Vec<String>) -> Vec<String> {
    let list = doc.map(OneOrMany::into_vec).unwrap_or_default();
    if list.is_empty() {
        errors.push("a route needs methods (a list, or \"*\" for any)".to_owned());
        return Vec::new();
    }
    if list.iter().any(|m| m == "*") {
        return Vec::new();
    }
    let mut out = Vec::new();
    for method in list {
        let valid = !method.is_empty() && method.chars().all(|c| c.is_ascii_alphabetic());
        if valid {
            out.push(method.to_ascii_uppercase());
        } else {
            errors.push(format!("'{method}' is not an HTTP method"));
        }
    }
    out
}

/// Parses a path template into segments and the capture names it declares.
fn parse_template(template: &str) -> Result<(Vec<Segment>, Vec<String>), String> {
    let Some(body) = template.strip_prefix('/') else {
        return Err(format!("path '{template}' must start with '/'"));
    };
    if template.contains(['?', '#']) {
        return Err(format!(
            "path '{template}' has a query or fragment; the query string is never matched"
        ));
    }
    let body = body.strip_suffix('/').unwrap_or(body);
    let mut segments = Vec::new();
    let mut names: Vec<String> = Vec::new();
    let parts: Vec<&str> = if body.is_empty() {
        Vec::new()
    } else {
        body.split('/').collect()
    };
    if parts.len() > MAX_SEGMENTS {
        return Err(format!(
            "path '{template}' has more than {MAX_SEGMENTS} segments"
        ));
    }
    let last = parts.len().saturating_sub(1);
    for (i, part) in parts.iter().enumerate() {
        let segment = parse_segment(part, template)?;
        if let Segment::One(Some(name)) | Segment::Rest(Some(name)) = &segment {
            if names.contains(name) {
                return Err(format!("capture '{name}' appears twice in '{template}'"));
            }
            names.push(name.clone());
        }
        if matches!(segment, Segment::Rest(_)) && i != last {
            return Err(format!("'**' may only be the last segment of '{template}'"));
        }
        segments.push(segment);
    }
    Ok((segments, names))
}

fn parse_segment(part: &str, template: &str) -> Result<Segment, String> {
    if part == "*" {
        return Ok(Segment::One(None));
    }
    if part == "**" {
        return Ok(Segment::Rest(None));
    }
    if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
        let (name, rest) = match inner.strip_suffix("**") {
            Some(name) => (name, true),
            None => (inner, false),
        };
        if !is_capture_name(name) {
            return Err(format!(
                "capture names are letters, digits and '_' in '{template}'"
            ));
        }
        return Ok(if rest {
            Segment::Rest(Some(name.to_owned()))
        } else {
            Segment::One(Some(name.to_owned()))
        });
    }
    if part.is_empty() {
        return Err(format!("path '{template}' has an empty segment ('//')"));
    }
    if part.contains(['{', '}', '*']) {
        return Err(format!(
            "segment '{part}' of '{template}' mixes a literal with a capture or glob; a segment is one or the other"
        ));
    }
    if part == "." || part == ".." {
        return Err(format!("path '{template}' has a '.' or '..' segment"));
    }
    Ok(Segment::Literal(part.to_owned()))
}

/// Parses an id template such as `{group}:{user_id}` or `{body.id}`: captures must come from the path.
fn parse_id(template: &str, captures: &[String]) -> Result<Vec<IdPiece>, String> {
    let pieces = split_braces(template).map_err(|e| format!("{e} in id '{template}'"))?;
    pieces
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(text) => Ok(IdPiece::Literal(text.to_owned())),
            Piece::Brace(name) if name.contains('.') => {
                parse_source(name, captures).map(IdPiece::Value)
            }
            Piece::Brace(name) if captures.iter().any(|c| c == name) => {
                Ok(IdPiece::Value(ValueSource::Capture(name.to_owned())))
            }
            Piece::Brace(name) => Err(format!(
                "id '{template}' uses '{{{name}}}', which the path does not capture"
            )),
        })
        .collect()
}

fn fields(
    doc: BTreeMap<String, OneOrMany>,
    captures: &[String],
    errors: &mut Vec<String>,
) -> Vec<FieldSource> {
    let mut out = Vec::new();
    for (name, sources) in doc {
        let mut parsed = Vec::new();
        for source in sources.into_vec() {
            match parse_source(&source, captures) {
                Ok(s) => parsed.push(s),
                Err(e) => errors.push(format!("'{name}': {e}")),
            }
        }
        if parsed.is_empty() {
            errors.push(format!("'{name}' needs at least one source"));
        }
        out.push(FieldSource {
            name,
            sources: parsed,
        });
    }
    out
}

/// `captures.NAME`, `query.NAME`, `header.NAME`, `body.a.b` (with `*` for each array element) or
/// `principal.id`.
fn parse_source(source: &str, captures: &[String]) -> Result<ValueSource, String> {
    if source == "principal.id" {
        return Ok(ValueSource::PrincipalId);
    }
    let (scope, rest) = source.split_once('.').ok_or_else(|| bad_source(source))?;
    if rest.is_empty() {
        return Err(bad_source(source));
    }
    match scope {
        "captures" if captures.iter().any(|c| c == rest) => {
            Ok(ValueSource::Capture(rest.to_owned()))
        }
        "captures" => Err(format!("the path does not capture '{rest}'")),
        "query" => Ok(ValueSource::Query(rest.to_owned())),
        "header" => Ok(ValueSource::Header(rest.to_ascii_lowercase())),
        "body" => {
            let steps: Vec<String> = rest.split('.').map(str::to_owned).collect();
            if steps.iter().any(String::is_empty) {
                return Err(bad_source(source));
            }
            Ok(ValueSource::Body(steps))
        }
        _ => Err(bad_source(source)),
    }
}

fn bad_source(source: &str) -> String {
    format!(
        "'{source}' is not a value source (captures.NAME, query.NAME, header.NAME, body.PATH or principal.id)"
    )
}

/// A body field that is not what a route reads there: the route expects a string, number or boolean at
/// the end of its path, an object at every named step and an array at every `*`. A value of another
/// shape is never skipped, because skipping it would decide the request as if the field were absent
/// (an activity whose `actor` is `["bob"]` would pass as one without an actor).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("body field '{path}' is not a {expected}")]
pub struct BodyShapeError {
    /// The route's path to the field, as written (`activities.*.actor`).
    pub path: String,
    pub expected: &'static str,
}

/// A key as a case-insensitive JSON decoder compares it: lower case, with the two letters whose
/// simple case folding Go also applies (`ſ` to `s`, the Kelvin sign to `k`).
fn fold_key(key: &str) -> String {
    key.to_lowercase().replace('\u{17f}', "s")
}

/// Reads `steps` from a JSON body. A `*` step fans out over an array; the values found are returned in
/// order. A missing key adds nothing; a value of the wrong shape anywhere on the path is an error.
pub fn body_values<'v>(
    body: &'v Value,
    steps: &[String],
) -> Result<Vec<&'v Value>, BodyShapeError> {
    let shape = |expected| BodyShapeError {
        path: steps.join("."),
        expected,
    };
    let mut current = vec![body];
    for step in steps {
        let mut next = Vec::new();
        for value in current {
            if step == "*" {
                match value {
                    Value::Array(items) => next.extend(items.iter()),
                    _ => return Err(shape("list where the route reads '*'")),
                }
            } else {
                match value {
                    Value::Object(map) => {
                        // Servers that match keys regardless of case (Go's encoding/json, for one)
                        // would read `ACTOR` as `actor`: a second spelling is refused, not ignored.
                        let folded = fold_key(step);
                        if map.keys().any(|k| k != step && fold_key(k) == folded) {
                            return Err(shape("single key: another key differs only in case"));
                        }
                        next.extend(map.get(step.as_str()));
                    }
                    _ => return Err(shape("JSON object on the way to the field")),
                }
            }
        }
        current = next;
    }
    for value in &current {
        if !matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
            return Err(shape("string, number or boolean"));
        }
    }
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route to `feed` `read`; the index's tests build theirs with it too.
    pub(super) fn route(name: &str, methods: &[&str], path: &str) -> Route {
        compile_route(RouteDoc {
            name: name.to_owned(),
            methods: Some(OneOrMany::Many(
                methods.iter().map(|m| (*m).to_owned()).collect(),
            )),
            path: path.to_owned(),
            resource: Some("feed".to_owned()),
            id: None,
            action: Some("read".to_owned()),
            attributes: BTreeMap::new(),
            context: BTreeMap::new(),
            public: None,
            trusted: Vec::new(),
            also_ids: Vec::new(),
        })
        .unwrap()
    }

    pub(super) fn table(routes: Vec<Route>) -> RouteTable {
        RouteTable::new(routes)
    }

    #[test]
    fn literal_beats_capture_beats_rest() {
        let t = table(vec![
            route("rest", &["GET"], "/api/**"),
            route("capture", &["GET"], "/api/feed/{group}/{user}/"),
            route("literal", &["GET"], "/api/feed/user/{user}/"),
        ]);
        let name = |p: &str| t.find("GET", p).unwrap().map(|m| m.route.name.clone());
        assert_eq!(name("/api/feed/user/bob/").as_deref(), Some("literal"));
        assert_eq!(name("/api/feed/timeline/bob").as_deref(), Some("capture"));
        assert_eq!(name("/api/other").as_deref(), Some("rest"));
        assert_eq!(name("/api").as_deref(), Some("rest"));
        assert_eq!(name("/elsewhere"), None);
        assert_eq!(
            t.find("POST", "/api/x")
                .unwrap()
                .map(|m| m.route.name.clone()),
            None
        );
    }

    #[test]
    fn captures_are_decoded_and_query_ignored() {
        let t = table(vec![route("f", &["*"], "/feed/{group}/{user}/")]);
        let m = t
            .find("DELETE", "/feed/user/a%20b/?api_key=k")
            .unwrap()
            .unwrap();
        assert_eq!(
            m.captures,
            vec![("group", "user".to_owned()), ("user", "a b".to_owned())]
        );
    }

    #[test]
    fn odd_paths_are_refused() {
        let t = table(vec![route("any", &["*"], "/**")]);
        assert_eq!(t.find("GET", "feed").unwrap_err(), PathError::NotAbsolute);
        assert_eq!(t.find("GET", "/a/../b").unwrap_err(), PathError::DotSegment);
        assert_eq!(
            t.find("GET", "/a/%2e%2E/b").unwrap_err(),
            PathError::DotSegment
        );
        assert_eq!(t.find("GET", "/a%2Fb").unwrap_err(), PathError::BadEncoding);
        assert_eq!(t.find("GET", "/a%zz").unwrap_err(), PathError::BadEncoding);
        assert_eq!(t.find("GET", "/a%ff").unwrap_err(), PathError::BadEncoding);
        for ambiguous in ["/a\\b", "/a#b", "/a b", "/a/\u{e9}", "/a?x=\u{e9}", "/a\t"] {
            assert_eq!(
                t.find("GET", ambiguous).unwrap_err(),
                PathError::Ambiguous,
                "{ambiguous}"
            );
        }
    }

    #[test]
    fn empty_segments_do_not_match_captures() {
        let t = table(vec![route("f", &["GET"], "/feed/{group}/{user}")]);
        assert!(t.find("GET", "/feed//bob").unwrap().is_none());
    }

    #[test]
    fn templates_are_validated() {
        assert!(parse_template("/a/**/b").is_err());
        assert!(parse_template("/a/x{y}").is_err());
        assert!(parse_template("a").is_err());
        assert!(parse_template("/a/{x}/{x}").is_err());
        assert!(parse_template("/a?b=c").is_err());
        assert!(parse_id("{nope}", &["x".to_owned()]).is_err());
    }

    #[test]
    fn body_paths_fan_out() {
        let body =
            serde_json::json!({"actor": "a", "activities": [{"actor": "b"}, {"actor": "c"}, {}]});
        let steps = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        assert_eq!(body_values(&body, &steps("actor")).unwrap(), vec!["a"]);
        assert_eq!(
            body_values(&body, &steps("activities.*.actor")).unwrap(),
            vec!["b", "c"]
        );
        assert!(body_values(&body, &steps("missing.x")).unwrap().is_empty());
    }

    #[test]
    fn a_body_key_in_another_case_is_refused() {
        let steps = |s: &str| s.split('.').map(str::to_owned).collect::<Vec<_>>();
        for body in [
            serde_json::json!({"actor": "jack", "ACTOR": "tommaso"}),
            serde_json::json!({"actor": "jack", "Actor": "tommaso"}),
        ] {
            assert!(body_values(&body, &steps("actor")).is_err(), "{body}");
        }
        assert!(body_values(&serde_json::json!({"ACTOR": "tommaso"}), &steps("actor")).is_err());
        assert!(
            body_values(
                &serde_json::json!({"user_id": "j", "u\u{17f}er_id": "t"}),
                &steps("user_id")
            )
            .is_err()
        );
        assert!(
            body_values(
                &serde_json::json!({"actor": "a", "verb": "b"}),
                &steps("actor")
            )
            .is_ok()
        );
    }
}
