//! The route index: which route a request path reaches, looked up in `matchit` routers rather than by
//! trying every route. It owns only the lookup; templates, request paths and captures stay in
//! `routes.rs`.
//!
//! A matchit router tries, at every segment, a literal before a parameter, and backtracks when that
//! branch fails further on. Among routes with as many segments as the request, the first it finds is
//! therefore the most specific from the left, which is the table's precedence. What matchit does not
//! do the same way is kept here:
//! - methods: a set of routers for every method some route names, holding that method's routes and the
//!   any-method routes, and one set for every other method, holding the any-method routes alone. A
//!   request is looked up in one set only, so the winner never has to be picked across methods.
//! - `**`: a route that ends in `**` after `d` segments is stored under those `d` segments, in a
//!   router of its own for depth `d`, and looked up with the request's first `d` segments (at most one
//!   lookup per depth some route uses). matchit's catch-all cannot stand in for it: it never matches
//!   zero segments, and it cannot share a position with a parameter, while `/a/{x}` and `/a/**` may
//!   both be in a table.
//! - empty segments (`/a//b`): a parameter in the middle of a matchit route matches one, a capture or
//!   `*` never does, and a literal is never empty, so such a path is looked up only in the `**`
//!   routers, no deeper than its first empty segment.
//! - the winner: each router gives at most one candidate, and the most specific candidate wins
//!   ([`outranks`]). Candidates from two routers never rank the same: they differ in whether, or
//!   where, they end in `**`. Within a router a key is inserted once, for the first route declared
//!   with it, which is the route that won such a tie before; a second is a load error anyway
//!   ([`Route::same_requests_as`]).
//! - routes with more single-segment wildcards than matchit can name ([`MAX_PARAMS`]) are walked.

use std::collections::{BTreeSet, HashMap, HashSet};

use matchit::Router;

use super::{RequestPath, Route, Segment};

/// matchit 0.8 renames the parameters of a route `a` to `z` when it inserts it and panics past `z`;
/// a route with more single-segment wildcards than this is walked instead (no real table has one).
const MAX_PARAMS: usize = 25;

/// Where a route is stored: the router for routes without `**` (`rest_at: None`) or the one for its
/// `**` depth, under `path`, the segments before any `**` with every capture or `*` written as a
/// parameter named after its position. Two routes have the same key exactly when they match the same
/// paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub(super) struct Key {
    rest_at: Option<usize>,
    path: String,
    params: usize,
}

impl Key {
    pub(super) fn of(segments: &[Segment]) -> Key {
        let mut key = Key::default();
        for (i, segment) in segments.iter().enumerate() {
            match segment {
                // Templates refuse `{`, `}` and `*` in literals, so a literal is never read as a
                // parameter.
                Segment::Literal(literal) => {
                    key.path.push('/');
                    key.path.push_str(literal);
                }
                Segment::One(_) => {
                    key.path.push_str(&format!("/{{s{i}}}"));
                    key.params += 1;
                }
                Segment::Rest(_) => {
                    key.rest_at = Some(i);
                    break;
                }
            }
        }
        if key.path.is_empty() {
            key.path.push('/');
        }
        key
    }
}

/// The routers of one method (or of every method no route names). Values are indexes into the
/// table's routes.
#[derive(Debug, Clone, Default)]
struct Routers {
    /// Routes without `**`, under their whole template.
    exact: Router<usize>,
    /// Routes ending in `**`, by the number of segments before it (ascending).
    rest: Vec<(usize, Router<usize>)>,
}

impl Routers {
    fn insert(&mut self, key: &Key, route: usize) {
        let router = match key.rest_at {
            None => &mut self.exact,
            Some(depth) => {
                let at = match self.rest.binary_search_by_key(&depth, |(d, _)| *d) {
                    Ok(at) => at,
                    Err(at) => {
                        self.rest.insert(at, (depth, Router::new()));
                        at
                    }
                };
                match self.rest.get_mut(at) {
                    Some((_, router)) => router,
                    None => return,
                }
            }
        };
        // The key is new to this router and has only whole-segment parameters, so matchit has
        // nothing to refuse (`the_index_agrees_with_ranking_every_route` would see a route left out).
        let _ = router.insert(key.path.clone(), route);
    }
}

/// Route indexes by method and template; see the module documentation.
#[derive(Debug, Clone, Default)]
pub(super) struct Index {
    by_method: HashMap<String, Routers>,
    any_method: Routers,
    /// Routes with more than [`MAX_PARAMS`] captures and `*`, tried one by one.
    walked: Vec<usize>,
}

impl Index {
    /// Inserts every route in declaration order, so that of two routes with one key the first is
    /// kept, as the first declared won a tie before.
    pub(super) fn new(routes: &[Route]) -> Index {
        let named: BTreeSet<&str> = routes
            .iter()
            .flat_map(|r| r.methods.iter().map(String::as_str))
            .collect();
        let mut index = Index::default();
        let mut seen: HashMap<Option<&str>, HashSet<&Key>> = HashMap::new();
        for (i, route) in routes.iter().enumerate() {
            if route.key.params > MAX_PARAMS {
                index.walked.push(i);
                continue;
            }
            let methods: Vec<Option<&str>> = if route.methods.is_empty() {
                std::iter::once(None)
                    .chain(named.iter().copied().map(Some))
                    .collect()
            } else {
                route.methods.iter().map(|m| Some(m.as_str())).collect()
            };
            for method in methods {
                if !seen.entry(method).or_default().insert(&route.key) {
                    continue;
                }
                let routers = match method {
                    Some(m) => index.by_method.entry(m.to_owned()).or_default(),
                    None => &mut index.any_method,
                };
                routers.insert(&route.key, i);
            }
        }
        index
    }

    /// The index of the route that describes `method` on `request`, if any.
    pub(super) fn find(
        &self,
        routes: &[Route],
        method: &str,
        request: &RequestPath,
    ) -> Option<usize> {
        let routers = self.by_method.get(method).unwrap_or(&self.any_method);
        let mut best: Option<usize> = None;
        let mut consider = |candidate: usize| {
            if best.is_none_or(|b| outranks(routes, candidate, b)) {
                best = Some(candidate);
            }
        };
        if request.first_empty.is_none()
            && let Ok(found) = routers.exact.at(&request.path)
        {
            consider(*found.value);
        }
        let deepest = request.first_empty.unwrap_or(request.segments);
        for (depth, router) in routers.rest.iter().take_while(|(d, _)| *d <= deepest) {
            if let Ok(found) = router.at(request.prefix(*depth)) {
                consider(*found.value);
            }
        }
        for &i in &self.walked {
            if routes
                .get(i)
                .is_some_and(|r| r.allows_method(method) && r.matches(request))
            {
                consider(i);
            }
        }
        best
    }
}

/// Whether route `a` wins over route `b` for a request both match: the more specific from the left
/// (see [`Route::rank`]), and at equal rank the first declared.
fn outranks(routes: &[Route], a: usize, b: usize) -> bool {
    let (Some(route_a), Some(route_b)) = (routes.get(a), routes.get(b)) else {
        return false;
    };
    match route_a.rank().cmp(route_b.rank()) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => a < b,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::super::tests::{route, table};
    use super::*;

    /// What the table answered before the index: every route that allows the method and matches the
    /// segments, ranked per segment (literal 3, one segment 2, rest 1), the first declared at a tie.
    /// Request paths here need no decoding.
    fn by_ranking(routes: &[Route], method: &str, path: &str) -> Option<(String, Vec<String>)> {
        let body = path.strip_prefix('/').unwrap();
        let body = body.strip_suffix('/').unwrap_or(body);
        let path: Vec<&str> = if body.is_empty() {
            Vec::new()
        } else {
            body.split('/').collect()
        };
        let mut best: Option<(&Route, Vec<u8>, Vec<String>)> = None;
        for route in routes {
            if !route.methods.is_empty() && !route.methods.iter().any(|m| m == method) {
                continue;
            }
            let mut captures = Vec::new();
            let mut matched = true;
            let mut at = 0;
            for segment in &route.segments {
                match segment {
                    Segment::Rest(name) => {
                        if name.is_some() {
                            captures.push(path.get(at..).unwrap_or_default().join("/"));
                        }
                        at = path.len();
                        break;
                    }
                    Segment::Literal(l) if path.get(at) == Some(&l.as_str()) => {}
                    Segment::One(name) if path.get(at).is_some_and(|s| !s.is_empty()) => {
                        if name.is_some() {
                            captures.push(path[at].to_owned());
                        }
                    }
                    _ => matched = false,
                }
                at += 1;
            }
            if !matched || at != path.len() {
                continue;
            }
            let rank: Vec<u8> = route.rank().collect();
            if best.as_ref().is_none_or(|(_, r, _)| rank > *r) {
                best = Some((route, rank, captures));
            }
        }
        best.map(|(route, _, captures)| (route.name.clone(), captures))
    }

    /// A small deterministic generator (xorshift), so a failure names its seed.
    struct Draw(u64);

    impl Draw {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    fn template(draw: &mut Draw) -> String {
        let len = draw.below(4);
        let mut out = String::new();
        for i in 0..len {
            let last = i + 1 == len;
            let part = match draw.below(if last { 7 } else { 5 }) {
                0 | 1 => "a".to_owned(),
                2 => "b".to_owned(),
                3 => format!("{{c{i}}}"),
                4 => "*".to_owned(),
                5 => "**".to_owned(),
                _ => "{rest**}".to_owned(),
            };
            out.push('/');
            out.push_str(&part);
        }
        if out.is_empty() || draw.below(3) == 0 {
            out.push('/');
        }
        out
    }

    #[test]
    fn the_index_agrees_with_ranking_every_route() {
        let methods: [&[&str]; 4] = [&["GET"], &["POST"], &["*"], &["GET", "POST"]];
        let mut requests = vec!["/".to_owned(), "//".to_owned()];
        for len in 1..=4 {
            let mut next = Vec::new();
            for r in requests.iter().filter(|r| r.matches('/').count() == len) {
                for s in ["a", "b", "c", ""] {
                    next.push(format!("{r}{s}/"));
                }
            }
            requests.extend(next);
        }
        let requests: Vec<String> = requests
            .iter()
            .flat_map(|r| [r.clone(), r.trim_end_matches('/').to_owned()])
            .filter(|r| r.starts_with('/'))
            .collect();
        for seed in 1..200_u64 {
            let mut draw = Draw(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let routes: Vec<Route> = (0..1 + draw.below(8))
                .map(|i| {
                    let m = methods[draw.below(methods.len())];
                    route(&format!("r{i}"), m, &template(&mut draw))
                })
                .collect();
            let t = table(routes.clone());
            for method in ["GET", "POST", "PUT"] {
                for path in &requests {
                    let found = t.find(method, path).unwrap().map(|m| {
                        let captures = m.captures.into_iter().map(|(_, v)| v).collect();
                        (m.route.name.clone(), captures)
                    });
                    assert_eq!(
                        found,
                        by_ranking(&routes, method, path),
                        "seed {seed}: {method} {path} in {:?}",
                        routes
                            .iter()
                            .map(|r| (r.methods(), r.template()))
                            .collect::<Vec<_>>()
                    );
                }
            }
        }
    }

    #[test]
    fn a_rest_route_outranks_an_exact_one_on_its_own_prefix() {
        let t = table(vec![
            route("exact", &["GET"], "/a"),
            route("rest", &["GET"], "/a/**"),
            route("capture", &["GET"], "/{x}/**"),
        ]);
        let name = |p: &str| t.find("GET", p).unwrap().map(|m| m.route.name.clone());
        assert_eq!(name("/a").as_deref(), Some("rest"));
        assert_eq!(name("/a/").as_deref(), Some("rest"));
        assert_eq!(name("/b").as_deref(), Some("capture"));
    }

    #[test]
    fn empty_segments_reach_only_rest_routes_before_them() {
        let t = table(vec![
            route("deep", &["GET"], "/a/{x}/**"),
            route("shallow", &["GET"], "/a/{rest**}"),
            route("exact", &["GET"], "/a/{x}/b"),
        ]);
        let found = |p: &str| {
            t.find("GET", p)
                .unwrap()
                .map(|m| (m.route.name.clone(), m.captures))
        };
        assert_eq!(
            found("/a//b"),
            Some(("shallow".to_owned(), vec![("rest", "/b".to_owned())]))
        );
        assert_eq!(found("/a/x/b").map(|(n, _)| n).as_deref(), Some("exact"));
        assert_eq!(found("/a/x//").map(|(n, _)| n).as_deref(), Some("deep"));
    }

    #[test]
    fn literals_that_share_a_first_byte_are_told_apart() {
        // `é` and `è` are two bytes each and share the first: matchit's tree splits between them.
        let t = table(vec![
            route("acute", &["GET"], "/caf\u{e9}/{x}"),
            route("grave", &["GET"], "/caf\u{e8}/b"),
            route("capture", &["GET"], "/{y}/b"),
        ]);
        let name = |p: &str| t.find("GET", p).unwrap().map(|m| m.route.name.clone());
        assert_eq!(name("/caf%C3%A9/b").as_deref(), Some("acute"));
        assert_eq!(name("/caf%C3%A8/b").as_deref(), Some("grave"));
        assert_eq!(name("/caf%C3%A8/c"), None);
        assert_eq!(name("/caf%C3%AA/b").as_deref(), Some("capture"));
    }

    #[test]
    fn methods_without_a_router_of_their_own_reach_any_method_routes() {
        let t = table(vec![
            route("get", &["GET"], "/a/b"),
            route("any", &["*"], "/a/{x}"),
        ]);
        let name = |m: &str, p: &str| t.find(m, p).unwrap().map(|m| m.route.name.clone());
        assert_eq!(name("GET", "/a/b").as_deref(), Some("get"));
        assert_eq!(name("GET", "/a/c").as_deref(), Some("any"));
        assert_eq!(name("PATCH", "/a/b").as_deref(), Some("any"));
        assert_eq!(name("get", "/a/b").as_deref(), Some("any"));
    }

    #[test]
    fn routes_with_more_wildcards_than_matchit_takes_still_match() {
        for count in [MAX_PARAMS, MAX_PARAMS + 1, 62] {
            let template = format!("/x{}", "/*".repeat(count));
            let t = table(vec![
                route("many", &["GET"], &template),
                route("fewer", &["GET"], "/x/**"),
            ]);
            assert_eq!(t.index.walked.len(), usize::from(count > MAX_PARAMS));
            let path = format!("/x{}", "/v".repeat(count));
            let name = |p: &str| t.find("GET", p).unwrap().map(|m| m.route.name.clone());
            assert_eq!(name(&path).as_deref(), Some("many"), "{count}");
            assert_eq!(name(&format!("{path}/v")).as_deref(), Some("fewer"));
            assert_eq!(name("/x/v").as_deref(), Some("fewer"));
        }
    }
}
