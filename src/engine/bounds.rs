//! What one request may carry. The doors (gRPC, ext_authz, `/authz`) check these before deciding, so
//! that the cost of a decision (id patterns, conditions, explanations, the decision log) is bounded by
//! constants rather than by what a caller sends. A request over a bound is refused as invalid, never
//! cut short and decided.

use serde_json::{Map, Value};

use super::Request;
use crate::principal::Principal;

/// The longest resource kind or action, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// The longest resource id or principal id, in bytes. Stream's ids are at most 255 characters; URLs
/// used as ids (open graph scrapes) fit too.
pub const MAX_ID_BYTES: usize = 2048;
/// The most JSON values (each string, number, list and object counts one) in a request's attributes,
/// context and described principal's claims together.
pub const MAX_VALUES: usize = 4096;
/// The deepest nesting of lists and objects in attributes, context and claims.
pub const MAX_DEPTH: usize = 16;
/// The most bytes of text (strings and keys) in attributes, context and claims together.
pub const MAX_TEXT_BYTES: usize = 64 * 1024;
/// The most roles, groups and channel roles a principal may have, together.
pub const MAX_MEMBERSHIPS: usize = 256;

/// Which bound a request is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TooLarge {
    #[error("the resource kind is longer than {MAX_NAME_BYTES} bytes")]
    Kind,
    #[error("the action is longer than {MAX_NAME_BYTES} bytes")]
    Action,
    #[error("the resource id is longer than {MAX_ID_BYTES} bytes")]
    Id,
    #[error("the principal's user id is longer than {MAX_ID_BYTES} bytes")]
    UserId,
    #[error("the principal has more than {MAX_MEMBERSHIPS} roles, groups and channel roles")]
    Memberships,
    #[error(
        "attributes, context and claims hold more than {MAX_VALUES} values, {MAX_TEXT_BYTES} bytes of text or {MAX_DEPTH} levels of nesting"
    )]
    Values,
}

/// Checks every bound of `request`.
pub fn check(request: &Request<'_>) -> Result<(), TooLarge> {
    if request.resource.kind.len() > MAX_NAME_BYTES {
        return Err(TooLarge::Kind);
    }
    if request.action.len() > MAX_NAME_BYTES {
        return Err(TooLarge::Action);
    }
    if request.resource.id.len() > MAX_ID_BYTES {
        return Err(TooLarge::Id);
    }
    check_principal(request.principal)?;
    let mut budget = Budget::default();
    budget.map(request.resource.attributes, 0)?;
    budget.map(request.context, 0)?;
    budget.map(&request.principal.claims, 0)
}

/// Checks the principal's own bounds: its id, memberships and claims.
pub fn check_principal(principal: &Principal) -> Result<(), TooLarge> {
    if principal.user_id.len() > MAX_ID_BYTES {
        return Err(TooLarge::UserId);
    }
    let memberships =
        principal.roles.len() + principal.groups.len() + principal.channel_roles.len();
    if memberships > MAX_MEMBERSHIPS {
        return Err(TooLarge::Memberships);
    }
    Budget::default().map(&principal.claims, 0)
}

/// What is left of the value and text allowances while walking a request.
#[derive(Default)]
struct Budget {
    values: usize,
    text: usize,
}

impl Budget {
    fn map(&mut self, map: &Map<String, Value>, depth: usize) -> Result<(), TooLarge> {
        for (key, value) in map {
            self.add_text(key.len())?;
            self.value(value, depth)?;
        }
        Ok(())
    }

    fn value(&mut self, value: &Value, depth: usize) -> Result<(), TooLarge> {
        self.values += 1;
        if self.values > MAX_VALUES || depth > MAX_DEPTH {
            return Err(TooLarge::Values);
        }
        match value {
            Value::String(text) => self.add_text(text.len()),
            Value::Array(items) => items.iter().try_for_each(|v| self.value(v, depth + 1)),
            Value::Object(map) => self.map(map, depth + 1),
            Value::Null | Value::Bool(_) | Value::Number(_) => Ok(()),
        }
    }

    fn add_text(&mut self, bytes: usize) -> Result<(), TooLarge> {
        self.text += bytes;
        if self.text > MAX_TEXT_BYTES {
            return Err(TooLarge::Values);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Resource;
    use serde_json::json;

    fn request_with<'a>(
        principal: &'a Principal,
        id: &'a str,
        context: &'a Map<String, Value>,
        empty: &'a Map<String, Value>,
    ) -> Request<'a> {
        Request {
            principal,
            action: "read",
            resource: Resource {
                kind: "feed",
                id,
                attributes: empty,
            },
            context,
            now: 0,
        }
    }

    #[test]
    fn requests_over_a_bound_are_refused_and_others_pass() {
        let principal = Principal::user("jack".to_owned());
        let empty = Map::new();
        assert_eq!(
            check(&request_with(&principal, "user:jack", &empty, &empty)),
            Ok(())
        );
        let long_id = "a".repeat(MAX_ID_BYTES + 1);
        assert_eq!(
            check(&request_with(&principal, &long_id, &empty, &empty)),
            Err(TooLarge::Id)
        );
        let wide = json!({"list": vec![1; MAX_VALUES]});
        let wide = wide.as_object().cloned().unwrap_or_default();
        assert_eq!(
            check(&request_with(&principal, "x", &wide, &empty)),
            Err(TooLarge::Values)
        );
        let mut deep = json!(1);
        for _ in 0..=MAX_DEPTH {
            deep = json!([deep]);
        }
        let deep = json!({ "d": deep })
            .as_object()
            .cloned()
            .unwrap_or_default();
        assert_eq!(
            check(&request_with(&principal, "x", &deep, &empty)),
            Err(TooLarge::Values)
        );
    }
}
