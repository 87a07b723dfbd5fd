//! The request the unit tests evaluate conditions on, and shorthands to compile and evaluate.

use serde_json::{Map as JsonMap, Value as Json, json};

use super::{CelCondition, CelError, CelInput};

pub(super) fn principal() -> Json {
    json!({
        "id": "jack",
        "kind": "user",
        "roles": ["user", "moderator"],
        "groups": ["staff"],
        "channel_roles": { "messaging:general": "channel_moderator", "messaging:random": "channel_member" },
        "claims": { "branch": "north", "level": 3 },
        "issuer": "https://sso.example.com/realms/bank",
    })
}

pub(super) fn resource() -> Json {
    json!({
        "kind": "message",
        "id": "m1",
        "attributes": { "author_id": "jack", "channel": "messaging:general", "tags": ["x", "y"], "branch": "north" },
        "captures": { "owner": "jack" },
    })
}

pub(super) fn context() -> JsonMap<String, Json> {
    let Json::Object(map) = json!({ "count": 5, "actor": "SU:jack", "ratio": 0.5 }) else {
        unreachable!()
    };
    map
}

pub(super) fn eval(source: &str) -> Result<bool, String> {
    let condition = match CelCondition::compile(source) {
        Ok(condition) => condition,
        Err(error) => return Err(format!("compile: {error}")),
    };
    let (principal, resource, context) = (principal(), resource(), context());
    condition.evaluate(&CelInput {
        principal: &principal,
        resource: &resource,
        action: "update",
        context: &context,
    })
}

pub(super) fn compile_error(source: &str) -> CelError {
    match CelCondition::compile(source) {
        Ok(_) => panic!("{source} compiled"),
        Err(error) => error,
    }
}
