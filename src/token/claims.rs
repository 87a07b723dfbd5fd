//! Reading Stream's claims into a principal: which kind of token it is, and its roles and groups.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::TokenError;
use crate::principal::{Principal, PrincipalKind, Scope, ScopeList};

pub(super) fn principal_from_claims(claims: Map<String, Value>) -> Result<Principal, TokenError> {
    let kind_and_scope = classify(&claims)?;
    let (kind, user_id, scope) = kind_and_scope;
    Ok(Principal {
        kind,
        user_id,
        roles: roles(&claims)?,
        groups: string_list(&claims, "groups")?,
        channel_roles: channel_roles(&claims)?,
        scope,
        issued_at: numeric_claim(&claims, "iat")?,
        expires_at: numeric_claim(&claims, "exp")?,
        issuer: None,
        claims,
    })
}

type Classified = (PrincipalKind, String, Option<Scope>);

/// Tells a server token, a scope token and a user token apart, in that order of precedence.
fn classify(claims: &Map<String, Value>) -> Result<Classified, TokenError> {
    match claims.get("server") {
        Some(Value::Bool(true)) => return Ok((PrincipalKind::Server, String::new(), None)),
        None | Some(Value::Bool(false)) => {}
        Some(_) => return Err(invalid("server must be a boolean")),
    }
    if claims.contains_key("resource") || claims.contains_key("action") {
        return classify_scope(claims);
    }
    match claims.get("user_id") {
        Some(Value::String(id)) if !id.is_empty() => Ok((PrincipalKind::User, id.clone(), None)),
        Some(_) => Err(invalid("user_id must be a non-empty string")),
        None => Err(invalid(
            "no user_id, no server flag and no resource/action scope",
        )),
    }
}

fn classify_scope(claims: &Map<String, Value>) -> Result<Classified, TokenError> {
    let resource = required_string(claims, "resource")?;
    let action = required_string(claims, "action")?;
    let feed_id = optional_string(claims, "feed_id")?;
    let user_id = optional_string(claims, "user_id")?;
    let scope = Scope {
        resource: ScopeList::parse(resource),
        action: ScopeList::parse(action),
        feed_id: feed_id.map(ScopeList::parse),
        user_id: user_id.map(ScopeList::parse),
    };
    // Stream's server-side SDKs sign every call with this wildcard scope token.
    let is_server = scope.resource.is_any()
        && scope.action.is_any()
        && scope.feed_id.as_ref().is_some_and(ScopeList::is_any)
        && scope.user_id.as_ref().is_none_or(ScopeList::is_any);
    if is_server {
        return Ok((PrincipalKind::Server, String::new(), None));
    }
    let scoped_user = match &scope.user_id {
        Some(ScopeList::Values(ids)) if ids.len() == 1 => ids.concat(),
        _ => String::new(),
    };
    Ok((PrincipalKind::Scoped, scoped_user, Some(scope)))
}

/// Roles come from `role` (Stream Chat's single role) and `roles` (a list), merged without duplicates.
fn roles(claims: &Map<String, Value>) -> Result<Vec<String>, TokenError> {
    let mut roles = Vec::new();
    match claims.get("role") {
        None | Some(Value::Null) => {}
        Some(Value::String(role)) if !role.is_empty() => roles.push(role.clone()),
        Some(_) => return Err(invalid("role must be a non-empty string")),
    }
    for role in string_list(claims, "roles")? {
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    Ok(roles)
}

/// `channel_roles`: a map from channel id (`messaging:general`) to the role in that channel.
pub(crate) fn channel_roles(
    claims: &Map<String, Value>,
) -> Result<BTreeMap<String, String>, TokenError> {
    match claims.get("channel_roles") {
        None | Some(Value::Null) => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(channel, role)| match role {
                Value::String(role) if !role.is_empty() && !channel.is_empty() => {
                    Ok((channel.clone(), role.clone()))
                }
                _ => Err(invalid("channel_roles must map channel ids to role names")),
            })
            .collect(),
        Some(_) => Err(invalid("channel_roles must map channel ids to role names")),
    }
}

/// A list-of-strings claim; a single string counts as a list of one.
fn string_list(claims: &Map<String, Value>, name: &'static str) -> Result<Vec<String>, TokenError> {
    let list = match claims.get(name) {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => Ok(s.clone()),
                _ => Err(invalid_list(name)),
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err(invalid_list(name)),
    };
    if list.iter().any(String::is_empty) {
        return Err(invalid_list(name));
    }
    Ok(list)
}

/// A JWT NumericDate claim (`exp`, `nbf`, `iat`): absent, or a number of seconds.
pub(super) fn numeric_claim(
    claims: &Map<String, Value>,
    name: &'static str,
) -> Result<Option<i64>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
            .map(Some)
            .ok_or_else(|| invalid(&format!("{name} must be a number of seconds"))),
        Some(_) => Err(invalid(&format!("{name} must be a number of seconds"))),
    }
}

fn required_string<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<&'a str, TokenError> {
    match claims.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s),
        _ => Err(invalid(&format!(
            "scope tokens need both resource and action as non-empty strings ({name})"
        ))),
    }
}

fn optional_string<'a>(
    claims: &'a Map<String, Value>,
    name: &'static str,
) -> Result<Option<&'a str>, TokenError> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s)),
        Some(_) => Err(invalid(&format!("{name} must be a non-empty string"))),
    }
}

fn invalid(message: &str) -> TokenError {
    TokenError::InvalidClaims(message.to_owned())
}

fn invalid_list(name: &str) -> TokenError {
    invalid(&format!("{name} must be a list of non-empty strings"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn principal(claims: Value) -> Result<Principal, TokenError> {
        let Value::Object(map) = claims else {
            unreachable!("tests pass objects")
        };
        principal_from_claims(map)
    }

    #[test]
    fn chat_server_token_is_server() {
        assert_eq!(
            principal(json!({"server": true})).unwrap().kind,
            PrincipalKind::Server
        );
    }

    #[test]
    fn feeds_wildcard_scope_token_is_server() {
        let p = principal(json!({"resource": "*", "action": "*", "feed_id": "*"})).unwrap();
        assert_eq!(p.kind, PrincipalKind::Server);
        let p = principal(json!({"resource": "*", "action": "*", "feed_id": "*", "user_id": "*"}))
            .unwrap();
        assert_eq!(p.kind, PrincipalKind::Server);
    }

    #[test]
    fn readonly_feed_token_is_scoped() {
        let p =
            principal(json!({"resource": "*", "action": "read", "feed_id": "userjack"})).unwrap();
        assert_eq!(p.kind, PrincipalKind::Scoped);
        let scope = p.scope.unwrap();
        assert!(scope.feed_id.unwrap().allows("userjack"));
        assert!(!scope.action.allows("write"));
    }

    #[test]
    fn roles_merge_role_and_roles() {
        let p = principal(json!({"user_id": "a", "role": "admin", "roles": ["admin", "editor"], "groups": "staff"}))
            .unwrap();
        assert_eq!(p.roles, vec!["admin", "editor"]);
        assert_eq!(p.groups, vec!["staff"]);
    }

    #[test]
    fn malformed_claims_are_refused() {
        assert!(principal(json!({"user_id": ""})).is_err());
        assert!(principal(json!({"user_id": 7})).is_err());
        assert!(principal(json!({"server": "yes"})).is_err());
        assert!(principal(json!({"resource": "feed"})).is_err());
        assert!(principal(json!({"user_id": "a", "roles": [1]})).is_err());
        assert!(principal(json!({})).is_err());
    }
}
