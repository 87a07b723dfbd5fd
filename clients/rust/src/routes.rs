//! Which question a request asks: its method and path, matched against a route table (matchit, the
//! router axum uses, so a pattern matches here as it does in the app), give the action and the
//! resource. A gRPC method is a route too: `POST /pkg.Service/Method`.
//!
//! A request no route matches is refused: the table is an allow list of questions, and a route the
//! app adds without a question never becomes reachable by accident. Open endpoints (health, metrics)
//! are marked [`Routes::public`].

use std::collections::HashMap;
use std::sync::Arc;

use http::{HeaderMap, Method, Uri};
use percent_encoding::percent_decode_str;
use serde_json::{Map, Value};
use thiserror::Error;

/// The resource a request acts on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resource {
    pub kind: String,
    pub id: String,
    /// Attributes the policy's rules read (`attributes.owner`, ...).
    pub attributes: Map<String, Value>,
}

impl Resource {
    pub fn new(kind: impl Into<String>, id: impl Into<String>) -> Resource {
        Resource {
            kind: kind.into(),
            id: id.into(),
            attributes: Map::new(),
        }
    }

    /// The resource with one more attribute.
    pub fn attribute(mut self, key: impl Into<String>, value: impl Into<Value>) -> Resource {
        self.attributes.insert(key.into(), value.into());
        self
    }
}

/// What a matched route sees of the request: the pattern's parameters, percent-decoded as axum's
/// `Path` decodes them (so the resource gatehouse is asked about is the one the handler acts on), and
/// the URI and headers for anything else.
pub struct Params<'a> {
    values: Vec<(&'a str, String)>,
    uri: &'a Uri,
    headers: &'a HeaderMap,
}

impl Params<'_> {
    /// The parameter `name` of the pattern (`{id}` gives `id`); empty when the pattern has none.
    pub fn get(&self, name: &str) -> &str {
        self.values
            .iter()
            .find(|(key, _)| *key == name)
            .map_or("", |(_, value)| value.as_str())
    }

    pub fn uri(&self) -> &Uri {
        self.uri
    }

    pub fn headers(&self) -> &HeaderMap {
        self.headers
    }
}

type ResourceFn = Arc<dyn Fn(&Params<'_>) -> Resource + Send + Sync>;

enum Access {
    /// Ask gatehouse whether the caller may perform `action` on the resource.
    Checked {
        action: String,
        resource: ResourceFn,
        anonymous: bool,
    },
    /// Pass on without asking.
    Public,
}

struct Entry {
    method: Method,
    pattern: String,
    access: Access,
}

/// Why a route table cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RouteError {
    #[error("route {method} {pattern}: {reason}")]
    Pattern {
        method: Method,
        pattern: String,
        reason: String,
    },
    #[error("route {method} {pattern}: the action is empty")]
    EmptyAction { method: Method, pattern: String },
    #[error("allow_anonymous must follow a route that asks gatehouse")]
    AnonymousWithoutRoute,
}

/// The route table, built with [`Routes::route`], [`Routes::grpc`] and [`Routes::public`].
#[derive(Default)]
pub struct Routes {
    entries: Vec<Entry>,
    misuse: Option<RouteError>,
}

impl Routes {
    pub fn new() -> Routes {
        Routes::default()
    }

    /// Requests `method pattern` (a matchit pattern: `/books/{id}`, `/files/{*path}`) ask whether
    /// the caller may perform `action` on the resource `resource` makes of the request.
    pub fn route<F>(mut self, method: Method, pattern: &str, action: &str, resource: F) -> Routes
    where
        F: Fn(&Params<'_>) -> Resource + Send + Sync + 'static,
    {
        self.entries.push(Entry {
            method,
            pattern: pattern.to_owned(),
            access: Access::Checked {
                action: action.to_owned(),
                resource: Arc::new(resource),
                anonymous: false,
            },
        });
        self
    }

    /// A gRPC method, by its path `/package.Service/Method`: gRPC calls are `POST`s to it.
    pub fn grpc<F>(self, path: &str, action: &str, resource: F) -> Routes
    where
        F: Fn(&Params<'_>) -> Resource + Send + Sync + 'static,
    {
        self.route(Method::POST, path, action, resource)
    }

    /// Requests `method pattern` pass on without a question (health checks, metrics).
    pub fn public(mut self, method: Method, pattern: &str) -> Routes {
        self.entries.push(Entry {
            method,
            pattern: pattern.to_owned(),
            access: Access::Public,
        });
        self
    }

    /// The route added last also takes callers without an `authorization` header, asking about them
    /// as gatehouse's anonymous principal. A repeated or malformed header is still refused.
    pub fn allow_anonymous(mut self) -> Routes {
        match self.entries.last_mut().map(|entry| &mut entry.access) {
            Some(Access::Checked { anonymous, .. }) => *anonymous = true,
            _ => {
                self.misuse.get_or_insert(RouteError::AnonymousWithoutRoute);
            }
        }
        self
    }

    pub(crate) fn compile(self) -> Result<RouteTable, RouteError> {
        if let Some(error) = self.misuse {
            return Err(error);
        }
        let mut routers: HashMap<Method, matchit::Router<usize>> = HashMap::new();
        let mut targets = Vec::with_capacity(self.entries.len());
        for (index, entry) in self.entries.into_iter().enumerate() {
            if let Access::Checked { action, .. } = &entry.access
                && action.trim().is_empty()
            {
                return Err(RouteError::EmptyAction {
                    method: entry.method,
                    pattern: entry.pattern,
                });
            }
            let router = routers.entry(entry.method.clone()).or_default();
            if let Err(e) = router.insert(entry.pattern.clone(), index) {
                return Err(RouteError::Pattern {
                    method: entry.method,
                    pattern: entry.pattern,
                    reason: e.to_string(),
                });
            }
            targets.push(entry.access);
        }
        Ok(RouteTable { routers, targets })
    }
}

/// The compiled table the layer looks requests up in.
pub(crate) struct RouteTable {
    routers: HashMap<Method, matchit::Router<usize>>,
    targets: Vec<Access>,
}

/// What the table says of a request.
pub(crate) enum Lookup<'t> {
    Checked {
        action: &'t str,
        resource: Resource,
        anonymous: bool,
    },
    Public,
    /// No route matches: refused.
    Unmapped,
    /// A parameter is not valid percent-encoded UTF-8: refused, since the handler could not read it
    /// as gatehouse would be asked about it.
    BadPath,
}

impl RouteTable {
    pub(crate) fn lookup(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Lookup<'_> {
        let Some(matched) = self
            .routers
            .get(method)
            .and_then(|router| router.at(uri.path()).ok())
        else {
            return Lookup::Unmapped;
        };
        match self.targets.get(*matched.value) {
            None => Lookup::Unmapped,
            Some(Access::Public) => Lookup::Public,
            Some(Access::Checked {
                action,
                resource,
                anonymous,
            }) => {
                let mut values = Vec::new();
                for (key, raw) in matched.params.iter() {
                    match percent_decode_str(raw).decode_utf8() {
                        Ok(value) => values.push((key, value.into_owned())),
                        Err(_) => return Lookup::BadPath,
                    }
                }
                let params = Params {
                    values,
                    uri,
                    headers,
                };
                Lookup::Checked {
                    action,
                    resource: resource(&params),
                    anonymous: *anonymous,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        Routes::new()
            .route(Method::GET, "/books/{id}", "read", |p| {
                Resource::new("book", p.get("id"))
            })
            .route(Method::GET, "/catalog", "browse", |_| {
                Resource::new("catalog", "")
            })
            .allow_anonymous()
            .grpc("/pkg.Service/Method", "call", |_| Resource::new("svc", ""))
            .public(Method::GET, "/healthz")
            .compile()
            .unwrap()
    }

    fn look(table: &RouteTable, method: Method, path: &str) -> Option<(String, Resource, bool)> {
        let uri: Uri = path.parse().unwrap();
        match table.lookup(&method, &uri, &HeaderMap::new()) {
            Lookup::Checked {
                action,
                resource,
                anonymous,
            } => Some((action.to_owned(), resource, anonymous)),
            _ => None,
        }
    }

    #[test]
    fn a_route_gives_its_action_and_the_decoded_resource() {
        let table = table();
        let (action, resource, anonymous) = look(&table, Method::GET, "/books/a%3Ab?x=1").unwrap();
        assert_eq!(action, "read");
        assert_eq!(resource, Resource::new("book", "a:b"));
        assert!(!anonymous);
        assert!(look(&table, Method::GET, "/catalog").unwrap().2);
        let (action, _, _) = look(&table, Method::POST, "/pkg.Service/Method").unwrap();
        assert_eq!(action, "call");
    }

    #[test]
    fn other_methods_and_paths_are_unmapped_and_public_routes_are_public() {
        let table = table();
        let uri = |p: &str| p.parse::<Uri>().unwrap();
        let headers = HeaderMap::new();
        for (method, path) in [
            (Method::DELETE, "/books/1"),
            (Method::GET, "/books/1/extra"),
            (Method::GET, "/pkg.Service/Method"),
            (Method::POST, "/pkg.Service/Other"),
        ] {
            assert!(
                matches!(
                    table.lookup(&method, &uri(path), &headers),
                    Lookup::Unmapped
                ),
                "{method} {path}"
            );
        }
        assert!(matches!(
            table.lookup(&Method::GET, &uri("/healthz"), &headers),
            Lookup::Public
        ));
        assert!(matches!(
            table.lookup(&Method::GET, &uri("/books/%FF"), &headers),
            Lookup::BadPath
        ));
    }

    #[test]
    fn mistakes_in_the_table_are_errors() {
        let conflict = Routes::new()
            .public(Method::GET, "/a/{x}")
            .public(Method::GET, "/a/{y}")
            .compile();
        assert!(matches!(conflict, Err(RouteError::Pattern { .. })));
        let anonymous_public = Routes::new()
            .public(Method::GET, "/a")
            .allow_anonymous()
            .compile();
        assert!(matches!(
            anonymous_public,
            Err(RouteError::AnonymousWithoutRoute)
        ));
        let no_action = Routes::new()
            .route(Method::GET, "/a", " ", |_| Resource::new("a", ""))
            .compile();
        assert!(matches!(no_action, Err(RouteError::EmptyAction { .. })));
    }
}
