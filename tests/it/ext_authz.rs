//! Envoy's gRPC ext_authz (`envoy.service.auth.v3.Authorization/Check`) against a real server, with
//! CheckRequests built from envoy-types as Envoy sends them: every route of the Feeds table, the default
//! Feeds matrix through the routes, Stream's credentials and error bodies, and denials that travel in
//! the response rather than as gRPC errors.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::collections::{BTreeSet, HashMap};

use common::{SECRET, TestServer, server_token, sign, user_token};
use envoy_types::ext_authz::v3::pb::{CheckRequest, CheckResponse, HttpResponse};
use envoy_types::pb::envoy::config::core::v3::{HeaderMap, HeaderValue};
use envoy_types::pb::envoy::service::auth::v3::AttributeContext;
use envoy_types::pb::envoy::service::auth::v3::attribute_context::{HttpRequest, Request};
use envoy_types::pb::envoy::service::auth::v3::authorization_client::AuthorizationClient;
use serde::Deserialize;
use serde_json::{Value, json};
use tonic::transport::Channel;

const API_KEY: &str = "key123";
const ROUTES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/policies/stream-feeds/routes.yaml"
);

/// An HTTP request as Envoy describes it to the authorization server.
#[derive(Clone, Debug)]
struct Http {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
}

impl Http {
    fn new(method: &str, path: &str) -> Http {
        Http {
            method: method.to_owned(),
            path: path.to_owned(),
            headers: vec![
                ("host".to_owned(), "api.stream-io-api.com".to_owned()),
                ("x-request-id".to_owned(), "4f1c2b7e".to_owned()),
                (
                    "x-stream-client".to_owned(),
                    "stream-javascript-client-node-8.15.0".to_owned(),
                ),
            ],
            body: None,
        }
    }

    /// The path with Stream's query parameters, as the JS client sends them.
    fn stream(method: &str, path: &str) -> Http {
        let sep = if path.contains('?') { '&' } else { '?' };
        Http::new(
            method,
            &format!("{path}{sep}api_key={API_KEY}&location=unspecified"),
        )
    }

    /// Stream's client credentials: the raw JWT and `stream-auth-type: jwt`.
    fn token(self, token: &str) -> Http {
        self.header("authorization", token)
            .header("stream-auth-type", "jwt")
    }

    fn header(mut self, name: &str, value: &str) -> Http {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn json(mut self, body: Value) -> Http {
        self.body = Some(serde_json::to_vec(&body).unwrap());
        self.header("content-type", "application/json")
    }

    fn envoy(&self) -> CheckRequest {
        let headers: HashMap<String, String> = self.headers.iter().cloned().collect();
        CheckRequest {
            attributes: Some(AttributeContext {
                request: Some(Request {
                    http: Some(HttpRequest {
                        id: "7361".to_owned(),
                        method: self.method.clone(),
                        headers,
                        path: self.path.clone(),
                        host: "api.stream-io-api.com".to_owned(),
                        scheme: "https".to_owned(),
                        protocol: "HTTP/1.1".to_owned(),
                        raw_body: self.body.clone().unwrap_or_default(),
                        size: self.body.as_ref().map_or(-1, |b| b.len() as i64),
                        ..HttpRequest::default()
                    }),
                    ..Request::default()
                }),
                ..AttributeContext::default()
            }),
        }
    }
}

/// What came back, flattened.
#[derive(Debug)]
struct Answer {
    grpc_code: i32,
    http_status: u16,
    headers: HashMap<String, String>,
    headers_to_remove: Vec<String>,
    body: String,
}

impl Answer {
    fn allowed(&self) -> bool {
        self.grpc_code == 0 && self.http_status == 200
    }

    fn error(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    fn rule(&self) -> &str {
        self.headers
            .get("x-gatehouse-rule")
            .map(String::as_str)
            .unwrap_or("")
    }
}

fn answer(response: CheckResponse) -> Answer {
    let status = response.status.expect("every answer carries a status");
    match response
        .http_response
        .expect("every answer carries an HTTP response")
    {
        HttpResponse::OkResponse(ok) => Answer {
            grpc_code: status.code,
            http_status: 200,
            headers: ok
                .headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
            headers_to_remove: ok.headers_to_remove,
            body: String::new(),
        },
        HttpResponse::DeniedResponse(denied) => Answer {
            grpc_code: status.code,
            http_status: u16::try_from(denied.status.unwrap().code).unwrap(),
            headers: denied
                .headers
                .iter()
                .filter_map(|h| h.header.as_ref())
                .map(|h| (h.key.clone(), h.value.clone()))
                .collect(),
            headers_to_remove: Vec::new(),
            body: denied.body,
        },
        other => panic!("unexpected response {other:?}"),
    }
}

async fn envoy_client(server: &TestServer) -> AuthorizationClient<Channel> {
    AuthorizationClient::new(server.channel().await)
}

async fn ask(client: &mut AuthorizationClient<Channel>, http: &Http) -> Answer {
    let response = client
        .check(http.envoy())
        .await
        .unwrap_or_else(|s| panic!("ext_authz answers every request without a gRPC error: {s:?}"));
    answer(response.into_inner())
}

async fn feeds_server() -> TestServer {
    TestServer::start_with(&[("GATEHOUSE_API_KEY", API_KEY)]).await
}

// ---------------------------------------------------------------------------------------------------
// Every route of the Feeds table.

/// A concrete request for a route, and whether alice (a user token) may make it. Server tokens may
/// make every one; anonymous callers none but the public ones.
struct RouteCase {
    route: &'static str,
    http: Http,
    alice: bool,
    public: bool,
}

fn case(route: &'static str, method: &str, path: &str, alice: bool) -> RouteCase {
    RouteCase {
        route,
        http: Http::stream(method, path),
        alice,
        public: false,
    }
}

fn with_body(mut c: RouteCase, body: Value) -> RouteCase {
    c.http = c.http.json(body);
    c
}

fn route_cases() -> Vec<RouteCase> {
    let v = "/api/v1.0";
    let mut preflight = case(
        "cors-preflight",
        "OPTIONS",
        "/api/v1.0/feed/user/bob/",
        true,
    );
    preflight.public = true;
    vec![
        preflight,
        case("feed-read", "GET", &format!("{v}/feed/user/bob/"), true),
        case(
            "feed-read-enriched",
            "GET",
            &format!("{v}/enrich/feed/timeline/alice/?limit=5"),
            true,
        ),
        with_body(
            case(
                "feed-add-activities",
                "POST",
                &format!("{v}/feed/user/alice/"),
                true,
            ),
            json!({"actor": "SU:alice", "verb": "post", "object": "picture:1"}),
        ),
        case(
            "feed-remove-activity",
            "DELETE",
            &format!("{v}/feed/user/alice/act-uuid-1/"),
            true,
        ),
        with_body(
            case(
                "feed-update-activity-to-targets",
                "POST",
                &format!("{v}/feed_targets/user/alice/activity_to_targets/"),
                false,
            ),
            json!({"foreign_id": "post:1", "time": "2024-01-01T00:00:00", "new_targets": ["timeline:bob"]}),
        ),
        with_body(
            case(
                "feed-add-to-many",
                "POST",
                &format!("{v}/feed/add_to_many/"),
                false,
            ),
            json!({"activity": {"actor": "alice", "verb": "post", "object": "x"}, "feeds": ["user:alice"]}),
        ),
        with_body(
            case(
                "follow",
                "POST",
                &format!("{v}/feed/timeline/alice/following/"),
                true,
            ),
            json!({"target": "user:bob", "activity_copy_limit": 10}),
        ),
        case(
            "unfollow",
            "DELETE",
            &format!("{v}/feed/timeline/alice/following/user:bob/?keep_history=1"),
            true,
        ),
        case(
            "following",
            "GET",
            &format!("{v}/feed/timeline/alice/following/?limit=10"),
            true,
        ),
        with_body(
            case(
                "follow-python",
                "POST",
                &format!("{v}/feed/timeline/alice/follows/"),
                true,
            ),
            json!({"target": "user:bob"}),
        ),
        case(
            "unfollow-python",
            "DELETE",
            &format!("{v}/feed/timeline/alice/follows/user:bob/"),
            true,
        ),
        case(
            "following-python",
            "GET",
            &format!("{v}/feed/timeline/alice/follows/"),
            true,
        ),
        case(
            "followers",
            "GET",
            &format!("{v}/feed/user/alice/followers/"),
            true,
        ),
        case(
            "follow-stats",
            "GET",
            &format!("{v}/stats/follow/?followers=user:alice&following=user:alice"),
            true,
        ),
        with_body(
            case("follow-many", "POST", &format!("{v}/follow_many/"), false),
            json!([{"source": "timeline:alice", "target": "user:bob"}]),
        ),
        with_body(
            case(
                "unfollow-many",
                "POST",
                &format!("{v}/unfollow_many/"),
                false,
            ),
            json!([{"source": "timeline:alice", "target": "user:bob"}]),
        ),
        case(
            "activities-get",
            "GET",
            &format!("{v}/activities/?ids=a1"),
            true,
        ),
        case(
            "activities-get-enriched",
            "GET",
            &format!("{v}/enrich/activities/?ids=a1,a2"),
            true,
        ),
        with_body(
            case(
                "activities-update",
                "POST",
                &format!("{v}/activities/"),
                false,
            ),
            json!({"activities": [{"id": "a1", "actor": "alice"}]}),
        ),
        with_body(
            case(
                "activity-partial-update",
                "POST",
                &format!("{v}/activity/"),
                false,
            ),
            json!({"id": "a1", "set": {"x": 1}}),
        ),
        with_body(
            case("reaction-add", "POST", &format!("{v}/reaction/"), true),
            json!({"kind": "like", "activity_id": "a1", "data": {}}),
        ),
        case(
            "reaction-get",
            "GET",
            &format!("{v}/reaction/reaction-1/"),
            true,
        ),
        with_body(
            case(
                "reaction-update",
                "PUT",
                &format!("{v}/reaction/reaction-1/"),
                false,
            ),
            json!({"data": {"text": "edited"}}),
        ),
        case(
            "reaction-restore",
            "PUT",
            &format!("{v}/reaction/reaction-1/restore/"),
            false,
        ),
        case(
            "reaction-delete",
            "DELETE",
            &format!("{v}/reaction/reaction-1/?soft=true"),
            false,
        ),
        case(
            "reactions-filter",
            "GET",
            &format!("{v}/reaction/user_id/alice/?limit=10"),
            true,
        ),
        case(
            "reactions-filter-kind",
            "GET",
            &format!("{v}/reaction/activity_id/act-uuid-1/like/?limit=5"),
            true,
        ),
        with_body(
            case(
                "collection-entry-add",
                "POST",
                &format!("{v}/collections/food/"),
                true,
            ),
            json!({"id": "pizza", "data": {"name": "pizza"}}),
        ),
        case(
            "collection-entry-get",
            "GET",
            &format!("{v}/collections/food/pizza/"),
            true,
        ),
        with_body(
            case(
                "collection-entry-update",
                "PUT",
                &format!("{v}/collections/food/pizza/"),
                false,
            ),
            json!({"data": {"name": "pizza"}}),
        ),
        case(
            "collection-entry-delete",
            "DELETE",
            &format!("{v}/collections/food/pizza/"),
            false,
        ),
        case(
            "collections-select",
            "GET",
            &format!("{v}/collections/?foreign_ids=food:pizza"),
            true,
        ),
        with_body(
            case(
                "collections-upsert",
                "POST",
                &format!("{v}/collections/"),
                false,
            ),
            json!({"data": {"food": [{"id": "pizza"}]}}),
        ),
        case(
            "collections-delete-many",
            "DELETE",
            &format!("{v}/collections/?collection_name=food&ids=pizza"),
            false,
        ),
        with_body(
            case(
                "user-add",
                "POST",
                &format!("{v}/user/?get_or_create=true"),
                true,
            ),
            json!({"id": "alice", "data": {"name": "Alice"}}),
        ),
        case("user-get", "GET", &format!("{v}/user/bob/"), true),
        with_body(
            case("user-update", "PUT", &format!("{v}/user/alice/"), true),
            json!({"data": {"name": "Alice"}}),
        ),
        case("user-delete", "DELETE", &format!("{v}/user/alice/"), true),
        case(
            "users-get-many",
            "GET",
            &format!("{v}/users/?ids=alice,bob"),
            true,
        ),
        with_body(
            case("users-add-many", "POST", &format!("{v}/users/"), false),
            json!({"users": [{"id": "u1"}]}),
        ),
        case(
            "users-delete-many",
            "DELETE",
            &format!("{v}/users/?ids=u1"),
            false,
        ),
        case("file-upload", "POST", &format!("{v}/files/"), true),
        case(
            "file-delete",
            "DELETE",
            &format!("{v}/files/?url=https:%2F%2Fcdn%2Fx%2Fa.txt"),
            false,
        ),
        case("image-upload", "POST", &format!("{v}/images/"), true),
        case(
            "image-delete",
            "DELETE",
            &format!("{v}/images/?url=https:%2F%2Fcdn%2Fx%2Fa.png"),
            false,
        ),
        case(
            "image-process",
            "GET",
            &format!("{v}/images/?w=50&h=50&url=https:%2F%2Fcdn%2Fx%2Fa.png"),
            false,
        ),
        case(
            "og",
            "GET",
            &format!("{v}/og/?url=https:%2F%2Fexample.com%2F"),
            true,
        ),
        case(
            "personalization-read",
            "GET",
            "/personalization/v1.0/follow_recommendations/?user_id=alice",
            false,
        ),
        with_body(
            case(
                "personalization-write",
                "POST",
                "/personalization/v1.0/meta/",
                false,
            ),
            json!({"data": {}}),
        ),
        case(
            "personalization-delete",
            "DELETE",
            "/personalization/v1.0/meta/?x=1",
            false,
        ),
        case(
            "personalization-read-enriched",
            "GET",
            &format!("{v}/enrich/personalization/feed/?feed_slug=timeline&user_id=alice"),
            false,
        ),
        case(
            "audit-logs",
            "GET",
            &format!("{v}/audit_logs/?entity_type=activity&entity_id=a1"),
            false,
        ),
        case(
            "data-privacy-export",
            "GET",
            &format!("{v}/data_privacy/export_ids/alice"),
            false,
        ),
        with_body(
            case(
                "data-privacy-delete",
                "POST",
                &format!("{v}/data_privacy/delete_activities/"),
                false,
            ),
            json!({"user_id": "alice"}),
        ),
        with_body(
            case(
                "moderation-flag",
                "POST",
                &format!("{v}/moderation/flag"),
                false,
            ),
            json!({"entity_type": "user", "entity_id": "bob"}),
        ),
    ]
}

#[derive(Deserialize)]
struct RouteFile {
    routes: Vec<RouteEntry>,
}

#[derive(Deserialize)]
struct RouteEntry {
    name: String,
    #[serde(default)]
    public: bool,
}

fn shipped_routes() -> Vec<RouteEntry> {
    let file: RouteFile =
        serde_norway::from_str(&std::fs::read_to_string(ROUTES).unwrap()).unwrap();
    file.routes
}

#[tokio::test]
async fn every_feeds_route_is_routed_and_decided_for_users_servers_and_anonymous_callers() {
    let cases = route_cases();
    let shipped = shipped_routes();
    let named: BTreeSet<&str> = cases.iter().map(|c| c.route).collect();
    let missing: Vec<&str> = shipped
        .iter()
        .map(|r| r.name.as_str())
        .filter(|n| !named.contains(n))
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a case here: {missing:?}"
    );
    assert_eq!(named.len(), cases.len(), "one case per route");

    let server = feeds_server().await;
    let mut client = envoy_client(&server).await;
    let alice = user_token("alice");
    let server_jwt = server_token();
    let mut failures = Vec::new();
    for case in &cases {
        let public = shipped.iter().any(|r| r.name == case.route && r.public);
        assert_eq!(public, case.public, "{}", case.route);

        let as_alice = ask(&mut client, &case.http.clone().token(&alice)).await;
        let as_server = ask(&mut client, &case.http.clone().token(&server_jwt)).await;
        let as_anonymous = ask(
            &mut client,
            &case.http.clone().header("stream-auth-type", "anonymous"),
        )
        .await;
        let route_of = |a: &Answer| a.headers.get("x-gatehouse-rule").cloned();
        if as_alice.allowed() != case.alice {
            failures.push(format!(
                "{}: alice allowed={} (expected {}): {}",
                case.route,
                as_alice.allowed(),
                case.alice,
                as_alice.body
            ));
        }
        if !as_alice.allowed() && as_alice.http_status != 403 {
            failures.push(format!(
                "{}: alice denied with {} (expected 403): {}",
                case.route, as_alice.http_status, as_alice.body
            ));
        }
        if !as_server.allowed() {
            failures.push(format!(
                "{}: server token denied: {}",
                case.route, as_server.body
            ));
        } else if !case.public && route_of(&as_server).as_deref() != Some("server-token") {
            failures.push(format!(
                "{}: server allowed by {:?}",
                case.route,
                route_of(&as_server)
            ));
        }
        if as_anonymous.allowed() != case.public {
            failures.push(format!(
                "{}: anonymous allowed={} (expected {})",
                case.route,
                as_anonymous.allowed(),
                case.public
            ));
        }
        if case.public {
            assert_eq!(
                route_of(&as_alice).as_deref(),
                Some("public-route:cors-preflight")
            );
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// The default Feeds matrix, through the routes.

/// One case of `tests/corpus/stream-feeds-defaults.yaml`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MatrixCase {
    user: String,
    action: String,
    resource: String,
    #[serde(default)]
    attributes: serde_json::Map<String, Value>,
    #[serde(default)]
    context: serde_json::Map<String, Value>,
    allowed: bool,
    rule: String,
}

#[derive(Deserialize)]
struct Matrix {
    cases: Vec<MatrixCase>,
}

/// A route as the matrix translation needs it, read from the YAML on its own terms.
#[derive(Deserialize, Clone)]
struct RouteSpec {
    name: String,
    #[serde(default)]
    methods: Vec<String>,
    path: String,
    #[serde(default)]
    resource: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    attributes: HashMap<String, OneOrMany>,
    #[serde(default)]
    context: HashMap<String, OneOrMany>,
}

#[derive(Deserialize, Clone)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn list(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

#[derive(Deserialize)]
struct SpecFile {
    routes: Vec<RouteSpec>,
}

/// What a translation must put where: path captures, query parameters and body fields.
#[derive(Default, Debug)]
struct Placement {
    captures: HashMap<String, String>,
    query: Vec<(String, String)>,
    body: serde_json::Map<String, Value>,
}

impl Placement {
    /// Places `value` where `source` reads it; false if the request cannot carry it there.
    fn put(&mut self, source: &str, value: &str) -> bool {
        if let Some(name) = source.strip_prefix("captures.") {
            return match self.captures.get(name) {
                Some(existing) => existing == value,
                None => {
                    self.captures.insert(name.to_owned(), value.to_owned());
                    true
                }
            };
        }
        if let Some(name) = source.strip_prefix("query.") {
            self.query.push((name.to_owned(), value.to_owned()));
            return true;
        }
        if let Some(path) = source.strip_prefix("body.") {
            if path.contains('*') || path.contains('.') {
                return false;
            }
            self.body.insert(path.to_owned(), json!(value));
            return true;
        }
        false
    }
}

/// Splits `id` by the id template into the values of its `{...}` pieces; `None` if it does not fit.
fn split_id(template: &str, id: &str) -> Option<Vec<(String, String)>> {
    let mut pieces: Vec<(bool, String)> = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('{') {
            let end = after.find('}')?;
            pieces.push((true, after[..end].to_owned()));
            rest = &after[end + 1..];
        } else {
            let end = rest.find('{').unwrap_or(rest.len());
            pieces.push((false, rest[..end].to_owned()));
            rest = &rest[end..];
        }
    }
    let mut values = Vec::new();
    let mut text = id;
    for (i, (is_value, piece)) in pieces.iter().enumerate() {
        if !is_value {
            text = text.strip_prefix(piece.as_str())?;
            continue;
        }
        // A value runs to the next literal, or to the end for the last piece.
        let value = match pieces.get(i + 1) {
            Some((false, literal)) => {
                let end = text.find(literal.as_str())?;
                let (value, tail) = text.split_at(end);
                text = tail;
                value
            }
            _ => std::mem::take(&mut text),
        };
        if value.is_empty() {
            return None;
        }
        values.push((piece.clone(), value.to_owned()));
    }
    text.is_empty().then_some(values)
}

/// The HTTP request `route` makes for a matrix case, if the route can express it exactly.
fn translate(route: &RouteSpec, kind: &str, id: &str, case: &MatrixCase) -> Option<Http> {
    if route.resource != kind || route.action != case.action {
        return None;
    }
    let mut placement = Placement::default();
    if id.is_empty() {
        // An id made only of one request value is empty when the request leaves that value out.
        let single_value = route.id.starts_with('{')
            && route.id.ends_with('}')
            && route.id.matches('{').count() == 1
            && route.id.contains('.');
        if !route.id.is_empty() && !single_value {
            return None;
        }
    } else if route.id.is_empty() {
        return None;
    }
    let parts = if id.is_empty() {
        Vec::new()
    } else {
        split_id(&route.id, id)?
    };
    for (source, value) in parts {
        let source = if source.contains('.') {
            source
        } else {
            format!("captures.{source}")
        };
        if !placement.put(&source, &value) {
            return None;
        }
    }
    for (fields, given) in [
        (&route.attributes, &case.attributes),
        (&route.context, &case.context),
    ] {
        for (name, value) in given {
            let sources = fields.get(name)?.list();
            let value = value.as_str()?;
            // The first source the request can carry, and nothing earlier in the list that would win.
            let first = sources.first()?;
            if first == "principal.id" {
                if value != case.user {
                    return None;
                }
            } else if !placement.put(first, value) {
                return None;
            }
        }
        for (name, sources) in fields {
            // A field the case does not give must stay absent: a principal.id fallback would set it.
            if !given.contains_key(name) && sources.list().iter().any(|s| s == "principal.id") {
                return None;
            }
        }
    }
    let mut path = String::new();
    for segment in route.path.trim_end_matches('/').split('/').skip(1) {
        path.push('/');
        if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            let value = placement
                .captures
                .get(name)
                .cloned()
                .unwrap_or_else(|| format!("{name}-1"));
            path.push_str(&value);
        } else if segment.contains('*') {
            return None;
        } else {
            path.push_str(segment);
        }
    }
    path.push('/');
    let query: Vec<String> = placement
        .query
        .iter()
        .map(|(k, v)| format!("{k}={}", v.replace(':', "%3A").replace('/', "%2F")))
        .collect();
    if !query.is_empty() {
        path.push('?');
        path.push_str(&query.join("&"));
    }
    let method = route.methods.first()?;
    let http = Http::stream(method, &path);
    Some(if placement.body.is_empty() {
        http
    } else {
        http.json(Value::Object(placement.body))
    })
}

#[tokio::test]
async fn the_default_feeds_matrix_holds_through_the_route_table() {
    let matrix: Matrix = serde_norway::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/corpus/stream-feeds-defaults.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    let routes: SpecFile =
        serde_norway::from_str(&std::fs::read_to_string(ROUTES).unwrap()).unwrap();
    let server = feeds_server().await;
    let mut client = envoy_client(&server).await;
    let mut failures = Vec::new();
    let mut translated = 0;
    let mut untranslatable = Vec::new();
    let mut routes_used = BTreeSet::new();
    for case in &matrix.cases {
        let (kind, id) = case
            .resource
            .split_once(':')
            .unwrap_or((&case.resource, ""));
        let requests: Vec<(String, Http)> = routes
            .routes
            .iter()
            .filter_map(|r| translate(r, kind, id, case).map(|h| (r.name.clone(), h)))
            .collect();
        if requests.is_empty() {
            untranslatable.push(format!("{} {} {}", case.user, case.action, case.resource));
            continue;
        }
        translated += 1;
        for (route, http) in requests {
            routes_used.insert(route.clone());
            let got = ask(&mut client, &http.clone().token(&user_token(&case.user))).await;
            let rule = if got.allowed() {
                got.rule().to_owned()
            } else {
                got.headers
                    .get("x-gatehouse-rule")
                    .cloned()
                    .unwrap_or_default()
            };
            if got.allowed() != case.allowed || rule != case.rule {
                failures.push(format!(
                    "{} {} {} via {route} ({} {}): allowed={} rule={rule}, expected allowed={} rule={}: {}",
                    case.user,
                    case.action,
                    case.resource,
                    http.method,
                    http.path,
                    got.allowed(),
                    case.allowed,
                    case.rule,
                    got.body
                ));
            }
            if got.allowed() {
                assert_eq!(got.headers["x-gatehouse-user-id"], case.user);
            } else {
                assert_eq!(got.http_status, 403, "{}", got.body);
                assert_eq!(got.error()["code"], 17);
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    eprintln!(
        "{translated} of {} matrix cases went through {} routes; not expressible as a request: {untranslatable:?}",
        matrix.cases.len(),
        routes_used.len()
    );
    // The cases a proxy cannot express are those whose facts live in stored data or in a resource
    // the Feeds API has no route for (e.g. an action Stream's API has no endpoint for).
    assert!(
        translated >= 40,
        "only {translated} of {} matrix cases went through routes; not expressible: {untranslatable:#?}",
        matrix.cases.len()
    );
    assert!(routes_used.len() >= 15, "routes used: {routes_used:?}");
    server.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------------
// Credentials, answers and headers.

#[tokio::test]
async fn allowed_requests_tell_the_upstream_who_and_why() {
    let server = feeds_server().await;
    let mut client = envoy_client(&server).await;
    let got = ask(
        &mut client,
        &Http::stream("GET", "/api/v1.0/feed/user/bob/")
            .token(&user_token("alice"))
            .header("x-gatehouse-user-id", "mallory"),
    )
    .await;
    assert!(got.allowed(), "{got:?}");
    assert_eq!(got.headers["x-gatehouse-user-id"], "alice");
    assert_eq!(got.headers["x-gatehouse-principal-kind"], "user");
    assert_eq!(got.headers["x-gatehouse-rule"], "read-global-read-feeds");
    assert_eq!(got.headers["x-gatehouse-revision"].len(), 16);
    // The client's header is overwritten, not appended to.
    let mut gatehouse = server.client().await;
    let status = gatehouse
        .policy_status(common::with_server_token(
            gatehouse::grpc::pb::PolicyStatusRequest {},
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.headers["x-gatehouse-revision"], status.policy_revision);
    // Only the header this answer leaves unset: a client cannot pass its own dry-run mark on.
    assert_eq!(got.headers_to_remove, ["x-gatehouse-dry-run"]);

    // A server token has no user: the client's x-gatehouse-user-id is removed rather than passed on.
    let got = ask(
        &mut client,
        &Http::stream("GET", "/api/v1.0/feed/timeline/bob/")
            .token(&server_token())
            .header("x-gatehouse-user-id", "mallory"),
    )
    .await;
    assert!(got.allowed());
    assert_eq!(got.headers["x-gatehouse-principal-kind"], "server");
    assert!(!got.headers.contains_key("x-gatehouse-user-id"));
    assert!(
        got.headers_to_remove
            .contains(&"x-gatehouse-user-id".to_owned())
    );
    // The raw Authorization header stays unless configured otherwise.
    assert!(!got.headers_to_remove.contains(&"authorization".to_owned()));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_authorization_header_can_be_stripped_for_the_upstream() {
    let server = TestServer::start_with(&[
        ("GATEHOUSE_API_KEY", API_KEY),
        ("GATEHOUSE_STRIP_AUTHORIZATION", "true"),
    ])
    .await;
    let mut client = envoy_client(&server).await;
    let got = ask(
        &mut client,
        &Http::stream("GET", "/api/v1.0/feed/user/bob/").token(&user_token("alice")),
    )
    .await;
    assert!(got.allowed());
    assert!(got.headers_to_remove.contains(&"authorization".to_owned()));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn credentials_are_read_as_streams_clients_send_them() {
    let server = feeds_server().await;
    let mut client = envoy_client(&server).await;
    let path = "/api/v1.0/feed/timeline/alice/";
    let alice = user_token("alice");

    // Raw JWT or Bearer, with or without stream-auth-type.
    for value in [
        alice.clone(),
        format!("Bearer {alice}"),
        format!("bearer {alice}"),
    ] {
        let got = ask(
            &mut client,
            &Http::stream("GET", path).header("authorization", &value),
        )
        .await;
        assert!(got.allowed(), "{value}: {got:?}");
    }
    // Envoy's raw header map (encode_raw_headers) works as well as the lower-cased map.
    let mut request = Http::stream("GET", path).envoy();
    let http = request
        .attributes
        .as_mut()
        .unwrap()
        .request
        .as_mut()
        .unwrap()
        .http
        .as_mut()
        .unwrap();
    http.header_map = Some(HeaderMap {
        headers: vec![
            HeaderValue {
                key: "authorization".to_owned(),
                value: String::new(),
                raw_value: alice.clone().into_bytes(),
            },
            HeaderValue {
                key: "stream-auth-type".to_owned(),
                value: String::new(),
                raw_value: b"jwt".to_vec(),
            },
        ],
    });
    let got = answer(client.check(request).await.unwrap().into_inner());
    assert!(got.allowed(), "{got:?}");

    // Anonymous: a principal of its own, which the Feeds defaults allow nothing.
    let got = ask(
        &mut client,
        &Http::stream("GET", "/api/v1.0/feed/user/bob/").header("stream-auth-type", "anonymous"),
    )
    .await;
    assert_eq!(got.http_status, 403);
    assert_eq!(got.grpc_code, tonic::Code::PermissionDenied as i32);
    assert!(
        got.error()["detail"]
            .as_str()
            .unwrap()
            .contains("anonymous"),
        "{}",
        got.body
    );

    // No token, a bad token, an expired one, another app's: 401 SignatureException, in the response.
    let other_app = common::sign_with(json!({"user_id": "alice"}), &[b'x'; 40]);
    let expired = sign(json!({"user_id": "alice", "exp": common::now() - 60}));
    for (what, http) in [
        ("no token", Http::stream("GET", path)),
        ("garbage", Http::stream("GET", path).token("not-a-jwt")),
        ("other app", Http::stream("GET", path).token(&other_app)),
        ("expired", Http::stream("GET", path).token(&expired)),
        (
            "unknown auth type",
            Http::stream("GET", path)
                .header("authorization", &alice)
                .header("stream-auth-type", "cookie"),
        ),
    ] {
        let got = ask(&mut client, &http).await;
        assert_eq!(got.http_status, 401, "{what}: {got:?}");
        assert_eq!(got.grpc_code, tonic::Code::Unauthenticated as i32, "{what}");
        let error = got.error();
        assert_eq!(error["code"], 3, "{what}");
        assert_eq!(error["exception"], "SignatureException", "{what}");
        assert_eq!(error["status_code"], 401, "{what}");
        for token in [&alice, &other_app, &expired] {
            assert!(
                !got.body.contains(token.as_str()),
                "{what}: the token leaks"
            );
        }
        assert!(!got.body.contains(SECRET));
    }

    // The api_key must be the app's.
    for (what, target) in [
        ("missing", path.to_owned()),
        ("wrong", format!("{path}?api_key=other")),
    ] {
        let got = ask(&mut client, &Http::new("GET", &target).token(&alice)).await;
        assert_eq!(got.http_status, 401, "{what}");
        assert_eq!(got.error()["code"], 2, "{what}");
        assert_eq!(got.error()["exception"], "ApiKeyException", "{what}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn denials_carry_streams_error_body_in_the_response_never_a_grpc_error() {
    let server = feeds_server().await;
    let mut client = envoy_client(&server).await;
    let alice = user_token("alice");

    let got = ask(
        &mut client,
        &Http::stream("GET", "/api/v1.0/feed/timeline/bob/").token(&alice),
    )
    .await;
    assert_eq!(got.grpc_code, tonic::Code::PermissionDenied as i32);
    assert_eq!(got.http_status, 403);
    assert_eq!(got.headers["content-type"], "application/json");
    assert_eq!(got.headers["x-gatehouse-rule"], "default-deny");
    let error = got.error();
    assert_eq!(error["code"], 17);
    assert_eq!(error["exception"], "NotAllowedException");
    assert_eq!(error["status_code"], 403);
    assert!(
        error["detail"]
            .as_str()
            .unwrap()
            .contains("read on feed timeline:bob"),
        "{error}"
    );
    assert!(error["duration"].as_str().unwrap().ends_with("ms"));
    assert!(error["more_info"].as_str().unwrap().starts_with("https://"));

    // No route: denied, as Keycloak's enforcer does.
    let got = ask(
        &mut client,
        &Http::stream("GET", "/api/v1.0/nope/").token(&alice),
    )
    .await;
    assert_eq!(got.http_status, 403);
    assert!(
        got.error()["detail"].as_str().unwrap().contains("no route"),
        "{}",
        got.body
    );

    // Paths that cannot be routed safely, and a missing http attribute: 400 InputException.
    for target in [
        "/api/v1.0/feed/user/../timeline/bob/",
        "/api/v1.0/feed/user/bob%2F..%2Fx/",
        "api/v1.0/feed/user/bob/",
    ] {
        let got = ask(&mut client, &Http::stream("GET", target).token(&alice)).await;
        assert_eq!(got.http_status, 400, "{target}: {got:?}");
        assert_eq!(got.grpc_code, tonic::Code::InvalidArgument as i32);
        assert_eq!(got.error()["code"], 4);
    }
    let got = answer(
        client
            .check(CheckRequest::default())
            .await
            .unwrap()
            .into_inner(),
    );
    assert_eq!(got.http_status, 400);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn no_impersonation_is_enforced_from_the_forwarded_body() {
    let server = feeds_server().await;
    let mut client = envoy_client(&server).await;
    let alice = user_token("alice");
    let post = |body: Option<Value>| {
        let http = Http::stream("POST", "/api/v1.0/feed/user/alice/").token(&alice);
        match body {
            Some(body) => http.json(body),
            None => http,
        }
    };
    let cases = [
        (
            Some(json!({"actor": "alice", "verb": "post", "object": "x"})),
            true,
        ),
        (
            Some(json!({"actor": "SU:alice", "verb": "post", "object": "x"})),
            true,
        ),
        (
            Some(json!({"actor": "bob", "verb": "post", "object": "x"})),
            false,
        ),
        (
            Some(json!({"activities": [{"actor": "SU:alice"}, {"actor": "SU:alice"}]})),
            true,
        ),
        (
            Some(json!({"activities": [{"actor": "SU:alice"}, {"actor": "bob"}]})),
            false,
        ),
        (
            Some(json!({"actor": "alice", "activities": [{"actor": "bob"}]})),
            false,
        ),
        (Some(json!({"verb": "post"})), false),
        (None, false),
    ];
    for (body, allowed) in cases {
        let got = ask(&mut client, &post(body.clone())).await;
        assert_eq!(got.allowed(), allowed, "{body:?}: {got:?}");
        if !allowed {
            assert_eq!(got.http_status, 403);
        }
    }
    // A body that is not JSON, or that Envoy cut short, cannot be read: 400.
    let mut garbage = post(None);
    garbage.body = Some(b"{not json".to_vec());
    let got = ask(&mut client, &garbage).await;
    assert_eq!(got.http_status, 400, "{got:?}");
    let partial = post(Some(json!({"actor": "alice"}))).header("x-envoy-auth-partial-body", "true");
    let got = ask(&mut client, &partial).await;
    assert_eq!(got.http_status, 400, "{got:?}");
    // A server token writes with any actor (server-side calls are trusted).
    let got = ask(
        &mut client,
        &Http::stream("POST", "/api/v1.0/feed/user/alice/")
            .token(&server_token())
            .json(json!({"actor": "bob"})),
    )
    .await;
    assert!(got.allowed());
    server.stop().await.unwrap();
}

/// `examples/envoy/envoy.yaml` is what README points operators to: its ext_authz filter must reach
/// gatehouse's default gRPC port over HTTP/2, deny on failure, forward bodies and bound the wait.
#[test]
fn the_envoy_example_sends_every_request_to_gatehouse() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/envoy/envoy.yaml"
    ))
    .unwrap();
    let config: Value = serde_norway::from_str(&text).unwrap();
    let resources = &config["static_resources"];
    let manager = &resources["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    let filters = manager["http_filters"].as_array().unwrap();
    let names: Vec<&str> = filters
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["envoy.filters.http.ext_authz", "envoy.filters.http.router"],
        "ext_authz runs before the router"
    );
    let authz = &filters[0]["typed_config"];
    assert_eq!(
        authz["@type"],
        "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz"
    );
    assert_eq!(authz["transport_api_version"], "V3");
    assert_eq!(authz["failure_mode_allow"], false);
    assert!(authz["grpc_service"]["timeout"].is_string());
    assert!(
        authz["with_request_body"]["max_request_bytes"]
            .as_u64()
            .unwrap()
            >= 4096
    );
    assert_eq!(authz["with_request_body"]["allow_partial_message"], true);
    let cluster_name = authz["grpc_service"]["envoy_grpc"]["cluster_name"]
        .as_str()
        .unwrap();
    let cluster = resources["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == cluster_name)
        .expect("the ext_authz cluster is defined");
    let options = &cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
    assert!(options["explicit_http_config"]["http2_protocol_options"].is_object());
    let port = cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"]["port_value"]
        .as_u64()
        .unwrap();
    let default_port: std::net::SocketAddr = gatehouse::config::DEFAULT_LISTEN.parse().unwrap();
    assert_eq!(port, u64::from(default_port.port()));
}
