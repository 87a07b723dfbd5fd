//! CEL conditions: the load-time checker (`CelCondition::compile`) on arbitrary expressions, and
//! evaluation of the ones it accepts against fuzzed principals, resources and contexts.
//!
//! Input: the expression (at most 512 bytes), a NUL byte, then bytes that draw the request's values
//! (`gatehouse_fuzz::values`).
//!
//! Invariants:
//! - checking and evaluating never panic, and finish in bounded time;
//! - an evaluation error never carries a request value: with [`SENTINEL`] in the request's strings
//!   and keys, no error message contains it unless the expression itself spells it;
//! - differential: gatehouse converts only the parts of the input an expression uses (its
//!   projection); evaluating the same program with the whole input converted must give the same
//!   answer (both `Ok(bool)` equal, or both errors). Answers that change from run to run (CEL maps
//!   iterate in hash order) are not compared.

#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use arbitrary::Unstructured;
use cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use cel::common::value::Val;
use cel::{Context, Env, Program, Value as CelValue};
use gatehouse::policy::{CelCondition, CelInput};
use gatehouse_fuzz::values::{self, SENTINEL};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

const MAX_EXPRESSION: usize = 512;

/// The interpreter's environment as gatehouse configures it: the standard library, no optional
/// syntax.
static ENV: LazyLock<Arc<Env>> =
    LazyLock::new(|| Arc::new(Env::stdlib().with_optional_support(false)));

struct Input {
    principal: Value,
    resource: Value,
    action: String,
    context: Map<String, Value>,
}

fn draw(u: &mut Unstructured<'_>) -> arbitrary::Result<Input> {
    let kind = *u.choose(&["user", "anonymous", "server", "scoped"])?;
    let mut channel_roles = Map::new();
    for _ in 0..u.int_in_range(0..=2)? {
        channel_roles.insert(values::key(u)?, Value::String(values::string(u)?));
    }
    let principal = json!({
        "id": values::string(u)?,
        "kind": kind,
        "roles": values::strings(u, 3)?,
        "groups": values::strings(u, 2)?,
        "channel_roles": channel_roles,
        "claims": values::object(u, 2)?,
    });
    let mut captures = Map::new();
    for _ in 0..u.int_in_range(0..=2)? {
        captures.insert(values::key(u)?, Value::String(values::string(u)?));
    }
    let resource = json!({
        "kind": values::string(u)?,
        "id": values::string(u)?,
        "attributes": values::object(u, 2)?,
        "captures": captures,
    });
    Ok(Input {
        principal,
        resource,
        action: values::string(u)?,
        context: values::object(u, 2)?,
    })
}

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let (source, rest) = data.split_at(split);
    if source.len() > MAX_EXPRESSION {
        return;
    }
    let Ok(source) = std::str::from_utf8(source) else {
        return;
    };
    let condition = match CelCondition::compile(source) {
        Ok(condition) => condition,
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty());
            return;
        }
    };
    assert_eq!(condition.source(), source);

    let mut u = Unstructured::new(rest.get(1..).unwrap_or_default());
    let Ok(input) = draw(&mut u) else {
        return;
    };
    let cel_input = CelInput {
        principal: &input.principal,
        resource: &input.resource,
        action: &input.action,
        context: &input.context,
    };
    let actual = condition.evaluate(&cel_input);
    if let Err(message) = &actual {
        assert!(
            source.contains(SENTINEL) || !message.contains(SENTINEL),
            "an evaluation error carries a request value: {message:?} for {source:?}"
        );
    }

    let Some(expected) = whole(source, &input) else {
        return;
    };
    let agree = match (&actual, &expected) {
        (Ok(a), Ok(e)) => a == e,
        (Err(_), Err(_)) => true,
        _ => false,
    };
    if !agree && stable(&condition, &cel_input, &actual) && stable_whole(source, &input, &expected)
    {
        panic!(
            "projected and whole inputs disagree on {source:?}: gatehouse {actual:?}, whole input {expected:?}\ninput: principal {} resource {} action {:?} context {}",
            input.principal,
            input.resource,
            input.action,
            Value::Object(input.context.clone()),
        );
    }
});

/// The program evaluated with every variable converted whole; `None` if it does not compile here.
fn whole(source: &str, input: &Input) -> Option<Result<bool, String>> {
    let program: Program = ENV.compile(source).ok()?;
    let mut context = Context::with_env(Arc::clone(&ENV));
    context.add_variable_as_val("principal", to_val(&input.principal));
    context.add_variable_as_val("resource", to_val(&input.resource));
    context.add_variable_as_val("action", Box::new(CelString::from(input.action.as_str())));
    context.add_variable_as_val("context", object_val(&input.context));
    Some(match program.execute(&context) {
        Ok(CelValue::Bool(b)) => Ok(b),
        Ok(other) => Err(format!("not a bool: {other:?}")),
        Err(e) => Err(format!("{e:?}")),
    })
}

fn same(a: &Result<bool, String>, b: &Result<bool, String>) -> bool {
    match (a, b) {
        (Ok(a), Ok(b)) => a == b,
        (Err(_), Err(_)) => true,
        _ => false,
    }
}

fn stable(condition: &CelCondition, input: &CelInput<'_>, first: &Result<bool, String>) -> bool {
    (0..4).all(|_| same(&condition.evaluate(input), first))
}

fn stable_whole(source: &str, input: &Input, first: &Result<bool, String>) -> bool {
    (0..4).all(|_| whole(source, input).is_some_and(|r| same(&r, first)))
}

/// JSON to CEL as gatehouse documents it: an integer is an `int` when it fits, else a `uint`.
fn to_val(value: &Value) -> Box<dyn Val + '_> {
    match value {
        Value::Null => Box::new(CelNull),
        Value::Bool(b) => Box::new(CelBool::from(*b)),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Box::new(CelInt::from(i)),
            (None, Some(u)) => Box::new(CelUInt::from(u)),
            (None, None) => Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN))),
        },
        Value::String(s) => Box::new(CelString::from(s.as_str())),
        Value::Array(items) => {
            Box::new(CelList::from(items.iter().map(to_val).collect::<Vec<_>>()))
        }
        Value::Object(object) => object_val(object),
    }
}

fn object_val(object: &Map<String, Value>) -> Box<dyn Val + '_> {
    let map: HashMap<CelMapKey<'_>, Box<dyn Val + '_>> = object
        .iter()
        .map(|(k, v)| (CelMapKey::from(k.as_str()), to_val(v)))
        .collect();
    Box::new(CelMap::from(map))
}
