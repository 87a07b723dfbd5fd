//! `cel` conditions: a [CEL](https://github.com/google/cel-spec) expression over the request, parsed and
//! type-checked at load time and interpreted at check time.
//!
//! The `cel` crate parses and interprets but has no type checker, so `check` checks the parsed
//! expression itself: the variables in scope are exactly `principal`, `resource`, `action` and
//! `context`; the fields of `principal` and `resource` are fixed; only the standard functions the
//! crate implements may be called; and a small type inference rejects expressions that cannot be
//! boolean and obvious operand mismatches between known types. Values below `principal.claims`,
//! `resource.attributes`, `resource.captures` and `context` are dynamic (`dyn`): anything may be done
//! with them, and what fails is reported at evaluation.
//!
//! Evaluation converts only the parts of the input the expression can see: the variables it uses
//! and, when it only selects fields of them, those fields.
//!
//! Layout: this file holds the public types and the compile entry point; `parse` reads the source,
//! `check` is the load-time validator (apart from the evaluator, as Cedar keeps its validator apart
//! from its evaluator), `eval` runs a compiled condition within its budget, and `value` converts
//! the JSON input into CEL values; `parts` splits a condition at its top-level `&&`, `||` and `!` so
//! that explanations name the part that was false.

mod check;
mod eval;
#[cfg(test)]
mod fixtures;
mod parse;
mod parts;
mod value;

use std::fmt;
use std::sync::Arc;

use ::cel::Program;
use serde_json::{Map as JsonMap, Value as Json};

use value::{Projection, Uses};

/// The fields of `principal`.
const PRINCIPAL_FIELDS: [&str; 7] = [
    "id",
    "kind",
    "roles",
    "groups",
    "channel_roles",
    "claims",
    "issuer",
];

/// The fields of `resource`.
const RESOURCE_FIELDS: [&str; 4] = ["kind", "id", "attributes", "captures"];

/// Where something is in a condition's source: 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// Formats an optional position as a suffix: ` at column 7`, ` at line 2, column 3`, or nothing.
fn at(position: &Option<Position>) -> String {
    match position {
        None => String::new(),
        Some(Position { line: 1, column }) => format!(" at column {column}"),
        Some(Position { line, column }) => format!(" at line {line}, column {column}"),
    }
}

/// Why a condition does not compile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CelError {
    /// The source is not a CEL expression.
    #[error("syntax error{}: {message}", at(.position))]
    Syntax {
        message: String,
        position: Option<Position>,
    },
    /// An identifier that is none of the variables in scope.
    #[error(
        "unknown variable '{name}'{}: a condition sees principal, resource, action and context",
        at(.position)
    )]
    UnknownVariable {
        name: String,
        position: Option<Position>,
    },
    /// A field `principal` or `resource` does not have.
    #[error("unknown field '{field}' of {object}{}: {object} has {}", at(.position), fields_of(.object))]
    UnknownField {
        object: &'static str,
        field: String,
        position: Option<Position>,
    },
    /// A call to a function the standard library does not have.
    #[error("unknown function '{name}'{}", at(.position))]
    UnknownFunction {
        name: String,
        position: Option<Position>,
    },
    /// A call with the wrong number of arguments.
    #[error("function '{name}'{} takes {expected}, found {found}", at(.position))]
    WrongArgumentCount {
        name: String,
        expected: &'static str,
        found: usize,
        position: Option<Position>,
    },
    /// An operator or function applied to operands of types it does not take.
    #[error("{message}{}", at(.position))]
    Mismatch {
        message: String,
        position: Option<Position>,
    },
    /// Syntax the conditions do not support, such as message construction.
    #[error("unsupported expression{}: {what}", at(.position))]
    Unsupported {
        what: String,
        position: Option<Position>,
    },
    /// The whole expression is of a type other than `bool`.
    #[error("condition must be boolean, found {found}")]
    NotBoolean { found: String },
    /// A condition too long or too deeply nested to parse and evaluate at a bounded cost.
    #[error("condition is too large: {what}")]
    TooLarge { what: String },
}

impl CelError {
    /// Where the problem is in the source, when known.
    pub fn position(&self) -> Option<Position> {
        match self {
            CelError::Syntax { position, .. }
            | CelError::UnknownVariable { position, .. }
            | CelError::UnknownField { position, .. }
            | CelError::UnknownFunction { position, .. }
            | CelError::WrongArgumentCount { position, .. }
            | CelError::Mismatch { position, .. }
            | CelError::Unsupported { position, .. } => *position,
            CelError::NotBoolean { .. } | CelError::TooLarge { .. } => None,
        }
    }
}

fn fields_of(object: &str) -> String {
    let fields: &[&str] = if object == "principal" {
        &PRINCIPAL_FIELDS
    } else {
        &RESOURCE_FIELDS
    };
    fields.join(", ")
}

/// What a condition sees.
#[derive(Debug, Clone, Copy)]
pub struct CelInput<'a> {
    /// An object: `id` (string), `kind` (string: user|anonymous|server|scoped|service), `roles` (list of
    /// strings), `groups` (list of strings), `channel_roles` (map of strings), `claims` (map),
    /// `issuer` (string: the OpenID Connect issuer, empty for Stream tokens).
    pub principal: &'a Json,
    /// An object: `kind` (string), `id` (string), `attributes` (map), `captures` (map of strings).
    pub resource: &'a Json,
    pub action: &'a str,
    pub context: &'a JsonMap<String, Json>,
}

/// The longest condition source accepted.
pub const MAX_SOURCE_BYTES: usize = 4096;
/// The deepest nesting of brackets and parentheses accepted in a source (the parser recurses on it).
pub const MAX_BRACKET_DEPTH: usize = 32;
/// The deepest nesting of comprehensions (`all`, `exists`, `map`, `filter`, ...) accepted: each level
/// multiplies the cost by the length of a list in the request.
pub const MAX_COMPREHENSION_NESTING: u32 = 2;
/// The most evaluation steps a condition may be estimated to take on one request (its size times the
/// request's value count to the power of its comprehension nesting). A request over it fails the
/// condition, so it is denied, never evaluated at an unbounded cost.
pub const EVALUATION_BUDGET: u64 = 200_000;

/// A CEL condition, parsed and type-checked at load time.
#[derive(Clone)]
pub struct CelCondition {
    source: String,
    program: Arc<Program>,
    /// Expression nodes, and how deeply comprehensions nest: the cost model of [`EVALUATION_BUDGET`].
    nodes: u64,
    nesting: u32,
    /// What evaluation converts of each variable: `None` when the expression does not use it.
    principal: Option<Projection>,
    resource: Option<Projection>,
    action: bool,
    context: Option<Projection>,
    /// The top-level parts, compiled apart, for explanations only; `None` for a single term.
    shape: Option<Arc<parts::Shape>>,
}

impl fmt::Debug for CelCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CelCondition")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// Two conditions are equal when their sources are.
impl PartialEq for CelCondition {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for CelCondition {}

/// Serialized as its source.
impl serde::Serialize for CelCondition {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

impl CelCondition {
    /// Parses and checks `source`.
    pub fn compile(source: &str) -> Result<CelCondition, CelError> {
        CelCondition::compile_at(source, 0)
    }

    /// Compiles `source`, a whole condition or (at `depth` > 0) a part of one.
    fn compile_at(source: &str, depth: usize) -> Result<CelCondition, CelError> {
        let program = parse::parse(source)?;
        let shape = check::check(&program)?;
        let mut uses = Uses::default();
        uses.collect(program.expression(), &mut Vec::new());
        Ok(CelCondition {
            source: source.to_owned(),
            program: Arc::new(program),
            nodes: shape.nodes,
            nesting: shape.nesting,
            principal: uses.principal,
            resource: uses.resource,
            action: uses.action,
            context: uses.context,
            shape: parts::shape(source, depth).map(Arc::new),
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::fixtures::{principal, resource};
    use super::{CelCondition, CelError, CelInput};

    #[test]
    fn equality_and_serialization() {
        let (Ok(a), Ok(b)) = (
            CelCondition::compile("context.x == 1"),
            CelCondition::compile("context.x == 1"),
        ) else {
            panic!("does not compile");
        };
        assert_eq!(a, b);
        assert_eq!(a.source(), "context.x == 1");
        assert_eq!(serde_json::to_value(&a).ok(), Some(json!("context.x == 1")));
    }

    #[test]
    fn costly_conditions_are_refused_at_load_or_stopped_before_they_run() {
        assert!(CelCondition::compile("context.s.matches('^a+$')").is_ok());
        assert!(matches!(
            CelCondition::compile("context.s.matches(context.p)"),
            Err(CelError::Unsupported { .. })
        ));
        assert!(matches!(
            CelCondition::compile("context.l.all(a, context.l.all(b, context.l.all(c, a == b)))"),
            Err(CelError::TooLarge { .. })
        ));
        let deep = format!("{}true{}", "(".repeat(40), ")".repeat(40));
        assert!(matches!(
            CelCondition::compile(&deep),
            Err(CelError::TooLarge { .. })
        ));
        let nested =
            CelCondition::compile("context.l.all(a, context.l.exists(b, a == b))").unwrap();
        let (principal, resource) = (principal(), resource());
        let small = json!({"l": [1, 2, 3]})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let big = json!({"l": (0..1000).collect::<Vec<_>>()})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let input = |context| CelInput {
            principal: &principal,
            resource: &resource,
            action: "read",
            context,
        };
        assert_eq!(nested.evaluate(&input(&small)), Ok(true));
        let refused = nested.evaluate(&input(&big)).unwrap_err();
        assert!(refused.contains("over the budget"), "{refused}");
    }
}
