//! The checker's types: what it knows of an expression's value, and which operators apply to which
//! types.

use std::fmt;

use ::cel::common::ast::operators;

/// A known object: `principal` or `resource`, whose fields are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Object {
    Principal,
    Resource,
}

impl Object {
    pub(super) fn name(self) -> &'static str {
        match self {
            Object::Principal => "principal",
            Object::Resource => "resource",
        }
    }

    pub(super) fn field(self, field: &str) -> Option<Ty> {
        let string_list = || Ty::List(Box::new(Ty::String));
        let map_of = |value: Ty| Ty::Map(Box::new(Ty::String), Box::new(value));
        match (self, field) {
            (Object::Principal, "id" | "kind" | "issuer") | (Object::Resource, "kind" | "id") => {
                Some(Ty::String)
            }
            (Object::Principal, "roles" | "groups") => Some(string_list()),
            (Object::Principal, "channel_roles") | (Object::Resource, "captures") => {
                Some(map_of(Ty::String))
            }
            (Object::Principal, "claims") | (Object::Resource, "attributes") => {
                Some(map_of(Ty::Dyn))
            }
            _ => None,
        }
    }
}

/// The static type of an expression, as far as it is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ty {
    /// Unknown until evaluation.
    Dyn,
    Null,
    Bool,
    Int,
    Uint,
    Double,
    String,
    Bytes,
    Timestamp,
    Duration,
    /// A type value, as `int` in `type(x) == int`.
    Type,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    Object(Object),
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ty::Dyn => f.write_str("dyn"),
            Ty::Null => f.write_str("null"),
            Ty::Bool => f.write_str("bool"),
            Ty::Int => f.write_str("int"),
            Ty::Uint => f.write_str("uint"),
            Ty::Double => f.write_str("double"),
            Ty::String => f.write_str("string"),
            Ty::Bytes => f.write_str("bytes"),
            Ty::Timestamp => f.write_str("timestamp"),
            Ty::Duration => f.write_str("duration"),
            Ty::Type => f.write_str("type"),
            Ty::List(element) => write!(f, "list<{element}>"),
            Ty::Map(key, value) => write!(f, "map<{key}, {value}>"),
            Ty::Object(object) => f.write_str(object.name()),
        }
    }
}

impl Ty {
    pub(super) fn is_numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    /// Whether `<`, `<=`, `>` and `>=` apply to values of this type.
    pub(super) fn is_orderable(&self) -> bool {
        matches!(
            self,
            Ty::Dyn
                | Ty::Bool
                | Ty::Int
                | Ty::Uint
                | Ty::Double
                | Ty::String
                | Ty::Bytes
                | Ty::Timestamp
                | Ty::Duration
        )
    }

    /// The key and value types, for a map or an object.
    pub(super) fn as_map(&self) -> Option<(Ty, Ty)> {
        match self {
            Ty::Map(key, value) => Some(((**key).clone(), (**value).clone())),
            Ty::Object(_) => Some((Ty::String, Ty::Dyn)),
            _ => None,
        }
    }

    /// The type of both `self` and `other`: their common type, else `dyn`.
    pub(super) fn join(&self, other: &Ty) -> Ty {
        match (self, other) {
            (a, b) if a == b => a.clone(),
            (Ty::List(a), Ty::List(b)) => Ty::List(Box::new(a.join(b))),
            (Ty::Map(ka, va), Ty::Map(kb, vb)) => {
                Ty::Map(Box::new(ka.join(kb)), Box::new(va.join(vb)))
            }
            _ => Ty::Dyn,
        }
    }

    /// Whether values of the two types may be equal: CEL compares numbers across types, and
    /// `null` and `dyn` with anything.
    pub(super) fn may_equal(&self, other: &Ty) -> bool {
        match (self, other) {
            (Ty::Dyn | Ty::Null, _) | (_, Ty::Dyn | Ty::Null) => true,
            (a, b) if a.is_numeric() && b.is_numeric() => true,
            (Ty::List(a), Ty::List(b)) => a.may_equal(b),
            (a, b) => match (a.as_map(), b.as_map()) {
                (Some((ka, va)), Some((kb, vb))) => ka.may_equal(&kb) && va.may_equal(&vb),
                _ => a == b,
            },
        }
    }

    /// Whether values of the two types can be ordered.
    pub(super) fn may_order(&self, other: &Ty) -> bool {
        match (self, other) {
            (Ty::Dyn, t) | (t, Ty::Dyn) => t.is_orderable(),
            (a, b) if a.is_numeric() && b.is_numeric() => true,
            (a, b) => a == b && a.is_orderable(),
        }
    }
}

/// Whether `ty` is `dyn` or one of `allowed`.
pub(super) fn one_of(ty: &Ty, allowed: &[Ty]) -> bool {
    *ty == Ty::Dyn || allowed.contains(ty)
}

/// The type of an arithmetic operation, or `None` when it does not apply to the operands.
pub(super) fn arithmetic(op: &str, left: &Ty, right: &Ty) -> Option<Ty> {
    use Ty::{Bytes, Double, Duration, Dyn, Int, List, String, Timestamp, Uint};
    let same_numeric = |a: &Ty, b: &Ty| (a.is_numeric() && a == b).then(|| a.clone());
    match op {
        operators::ADD => match (left, right) {
            (Int, Int) | (Uint, Uint) | (Double, Double) | (String, String) | (Bytes, Bytes) => {
                Some(left.clone())
            }
            (List(a), List(b)) => Some(List(Box::new(a.join(b)))),
            (Timestamp, Duration) | (Duration, Timestamp) => Some(Timestamp),
            (Duration, Duration) => Some(Duration),
            (Dyn, Dyn) => Some(Dyn),
            (Dyn, t) | (t, Dyn) => match t {
                Int | Uint | Double | String | Bytes | Timestamp => Some(t.clone()),
                List(_) => Some(List(Box::new(Dyn))),
                Duration => Some(Dyn),
                _ => None,
            },
            _ => None,
        },
        operators::SUBSTRACT => match (left, right) {
            (Timestamp, Timestamp) | (Duration, Duration) => Some(Duration),
            (Timestamp, Duration) => Some(Timestamp),
            (Dyn, Dyn) => Some(Dyn),
            (Dyn, t) | (t, Dyn) => match t {
                Int | Uint | Double => Some(t.clone()),
                Timestamp | Duration => Some(Dyn),
                _ => None,
            },
            (a, b) => same_numeric(a, b),
        },
        operators::MULTIPLY | operators::DIVIDE => match (left, right) {
            (Dyn, Dyn) => Some(Dyn),
            (Dyn, t) | (t, Dyn) => t.is_numeric().then(|| t.clone()),
            (a, b) => same_numeric(a, b),
        },
        operators::MODULO => match (left, right) {
            (Dyn, Dyn) => Some(Dyn),
            (Dyn, t) | (t, Dyn) => matches!(t, Int | Uint).then(|| t.clone()),
            (Int, Int) | (Uint, Uint) => Some(left.clone()),
            _ => None,
        },
        _ => None,
    }
}

/// How an operator is written, for messages.
pub(super) fn operator_symbol(name: &str) -> &str {
    match name {
        operators::LOGICAL_AND => "&&",
        operators::LOGICAL_OR => "||",
        operators::LOGICAL_NOT => "!",
        operators::NEGATE => "-",
        operators::ADD => "+",
        operators::SUBSTRACT => "-",
        operators::MULTIPLY => "*",
        operators::DIVIDE => "/",
        operators::MODULO => "%",
        operators::EQUALS => "==",
        operators::NOT_EQUALS => "!=",
        operators::LESS => "<",
        operators::LESS_EQUALS => "<=",
        operators::GREATER => ">",
        operators::GREATER_EQUALS => ">=",
        operators::IN => "in",
        operators::INDEX => "[]",
        operators::CONDITIONAL => "?:",
        other => other,
    }
}
