//! The caller as the engine sees it.
//!
//! `token` builds a [`Principal`] from a verified JWT, `tls` from a client certificate; `engine` reads
//! it; `grpc` converts it to the wire form. It holds no token text and no secret, so it is safe to log and return.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

/// How far a caller is trusted, following Stream's split between server-side and client-side auth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A user token (`{"user_id": ...}`): every call is permission-checked.
    User,
    /// A server token: trusted, allowed anything.
    Server,
    /// A scope token: allowed exactly what lies inside its scope.
    Scoped,
    /// No token at all (`CheckRequest.anonymous`, like Stream's `stream-auth-type: anonymous`).
    Anonymous,
    /// A workload named by its client certificate (`tls.services`): decided by its roles, like a
    /// user, never trusted like a server.
    Service,
}

impl PrincipalKind {
    /// The kind's name in CEL (`principal.kind`), spans, metrics, the decision log and the headers
    /// a proxy passes upstream.
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Server => "server",
            PrincipalKind::Scoped => "scoped",
            PrincipalKind::Anonymous => "anonymous",
            PrincipalKind::Service => "service",
        }
    }
}

/// A verified caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub kind: PrincipalKind,
    /// The user id; empty for server tokens and for scope tokens without a user; a service's name.
    pub user_id: String,
    pub roles: Vec<String>,
    pub groups: Vec<String>,
    /// Roles per channel (claim `channel_roles`), e.g. `messaging:general` -> `channel_moderator`.
    pub channel_roles: BTreeMap<String, String>,
    /// Set for [`PrincipalKind::Scoped`].
    pub scope: Option<Scope>,
    /// Every claim of the token, as signed.
    pub claims: Map<String, Value>,
    /// `iat`, in seconds since the Unix epoch.
    pub issued_at: Option<i64>,
    /// `exp`, in seconds since the Unix epoch.
    pub expires_at: Option<i64>,
    /// The OpenID Connect issuer that vouched for the caller; `None` for Stream tokens.
    pub issuer: Option<String>,
}

/// The scope of a scope token: which resource kinds, actions, feeds and users it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub resource: ScopeList,
    pub action: ScopeList,
    /// Stream's compact feed ids (`userjack`); `None` when the claim is absent.
    pub feed_id: Option<ScopeList>,
    pub user_id: Option<ScopeList>,
}

/// A scope claim: `*` or a comma-separated list of values, as Stream's SDKs join them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopeList {
    Any,
    Values(Vec<String>),
}

impl ScopeList {
    /// Parses a claim value. A list containing `*` is `Any`, as in Stream's JS SDK, which collapses it.
    pub fn parse(claim: &str) -> Self {
        let values: Vec<String> = claim
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect();
        if values.iter().any(|v| v == "*") {
            ScopeList::Any
        } else {
            ScopeList::Values(values)
        }
    }

    pub fn allows(&self, value: &str) -> bool {
        match self {
            ScopeList::Any => true,
            ScopeList::Values(values) => values.iter().any(|v| v == value),
        }
    }

    pub fn is_any(&self) -> bool {
        matches!(self, ScopeList::Any)
    }

    /// The listed values; none for `Any`.
    pub fn values(&self) -> &[String] {
        match self {
            ScopeList::Any => &[],
            ScopeList::Values(values) => values,
        }
    }
}

/// How a principal is named in a reason.
struct Described<'a>(&'a Principal);

impl std::fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let principal = self.0;
        match principal.kind {
            PrincipalKind::User => write!(f, "user '{}'", principal.user_id),
            PrincipalKind::Server => f.write_str("server"),
            PrincipalKind::Scoped if principal.user_id.is_empty() => f.write_str("scope token"),
            PrincipalKind::Scoped => write!(f, "scope token of user '{}'", principal.user_id),
            PrincipalKind::Anonymous => f.write_str("anonymous caller"),
            PrincipalKind::Service => write!(f, "service '{}'", principal.user_id),
        }
    }
}

impl std::fmt::Display for ScopeList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScopeList::Any => f.write_str("*"),
            ScopeList::Values(values) => f.write_str(&values.join(",")),
        }
    }
}

impl Principal {
    /// How the principal is named in a reason: `user 'jack'`, `server`, or the scoped user.
    pub fn describe(&self) -> String {
        self.described().to_string()
    }

    /// [`Principal::describe`], written where it is needed without a string of its own.
    pub fn described(&self) -> impl std::fmt::Display + '_ {
        Described(self)
    }

    /// The principal of a call without a token.
    pub fn anonymous() -> Principal {
        Principal {
            kind: PrincipalKind::Anonymous,
            user_id: String::new(),
            roles: Vec::new(),
            groups: Vec::new(),
            channel_roles: BTreeMap::new(),
            scope: None,
            claims: Map::new(),
            issued_at: None,
            expires_at: None,
            issuer: None,
        }
    }

    /// A user principal described directly (by a trusted backend, or a policy test).
    pub fn user(user_id: impl Into<String>) -> Principal {
        Principal {
            kind: PrincipalKind::User,
            user_id: user_id.into(),
            ..Principal::anonymous()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_list_parses_wildcards_and_comma_lists() {
        assert_eq!(ScopeList::parse("*"), ScopeList::Any);
        assert_eq!(ScopeList::parse("read,*"), ScopeList::Any);
        let list = ScopeList::parse("read, write");
        assert!(list.allows("read"));
        assert!(list.allows("write"));
        assert!(!list.allows("delete"));
        assert!(!ScopeList::parse("").allows(""));
    }
}
