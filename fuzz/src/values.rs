//! JSON values drawn from fuzzer bytes: small pools of keys and strings (so that expressions and
//! policies written in the seeds find them), numbers at the edges of `int`, `uint` and `double`, and
//! nesting up to a fixed depth.

use arbitrary::{Result, Unstructured};
use serde_json::{Map, Number, Value};

/// Text that only ever appears inside request values: an error message that contains it has
/// carried a request value into a log line.
pub const SENTINEL: &str = "Qx7sentinel";

const KEYS: &[&str] = &[
    "a",
    "b",
    "x",
    "owner",
    "level",
    "branch",
    "actor",
    "user_id",
    "ch",
    "amount",
    "tags",
    "",
    "Qx7sentinel",
    "messaging:general",
];

const STRINGS: &[&str] = &[
    "",
    "u0",
    "u1",
    "jack",
    "north",
    "admin",
    "user",
    "v0",
    "SU:u1",
    "timeline:u1",
    "*",
    "true",
    "1",
    "Qx7sentinel",
    "Qx7sentinel-value",
    "\u{0}",
    "é",
    "2023-11-14T22:13:20Z",
    "1h",
];

pub fn key(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 8)? {
        let text: String = u.arbitrary()?;
        return Ok(text.chars().take(16).collect());
    }
    Ok((*u.choose(KEYS)?).to_owned())
}

pub fn string(u: &mut Unstructured<'_>) -> Result<String> {
    if u.ratio(1, 8)? {
        let text: String = u.arbitrary()?;
        return Ok(text.chars().take(32).collect());
    }
    Ok((*u.choose(STRINGS)?).to_owned())
}

pub fn value(u: &mut Unstructured<'_>, depth: u32) -> Result<Value> {
    let choices = if depth == 0 { 8 } else { 10 };
    Ok(match u.choose_index(choices)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.int_in_range(-3i64..=10)?),
        3 => Value::from(*u.choose(&[i64::MIN, i64::MAX, -1, 0, 1_700_000_000, 1 << 53])?),
        4 => Value::from(*u.choose(&[u64::MAX, (i64::MAX as u64) + 1])?),
        5 => {
            let f = *u.choose(&[0.5, -0.0, 1e300, -1e-300, 3.0, 1.7e9])?;
            Number::from_f64(f).map_or(Value::Null, Value::Number)
        }
        6 | 7 => Value::String(string(u)?),
        8 => {
            let len = u.int_in_range(0..=4)?;
            Value::Array(
                (0..len)
                    .map(|_| value(u, depth - 1))
                    .collect::<Result<Vec<_>>>()?,
            )
        }
        _ => Value::Object(object(u, depth - 1)?),
    })
}

pub fn object(u: &mut Unstructured<'_>, depth: u32) -> Result<Map<String, Value>> {
    let len = u.int_in_range(0..=5)?;
    let mut map = Map::new();
    for _ in 0..len {
        map.insert(key(u)?, value(u, depth)?);
    }
    Ok(map)
}

pub fn strings(u: &mut Unstructured<'_>, max: usize) -> Result<Vec<String>> {
    let len = u.int_in_range(0..=max)?;
    (0..len).map(|_| string(u)).collect()
}
