//! `cel` conditions: a [CEL](https://github.com/google/cel-spec) expression over the request, parsed and
//! type-checked at load time and interpreted at check time.
//!
//! The `cel` crate parses and interprets but has no type checker, so this module checks the parsed
//! expression itself: the variables in scope are exactly `principal`, `resource`, `action` and
//! `context`; the fields of `principal` and `resource` are fixed; only the standard functions the
//! crate implements may be called; and a small type inference rejects expressions that cannot be
//! boolean and obvious operand mismatches between known types. Values below `principal.claims`,
//! `resource.attributes`, `resource.captures` and `context` are dynamic (`dyn`): anything may be done
//! with them, and what fails is reported at evaluation.
//!
//! Evaluation converts only the parts of the input the expression can see: the variables it uses
//! and, when it only selects fields of them, those fields.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock};

use ::cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, LiteralValue, SelectExpr, operators,
};
use ::cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use ::cel::common::value::Val;
use ::cel::{Context, Env, ExecutionError, Program, Value};
use serde_json::{Map as JsonMap, Value as Json};

/// The interpreter's environment: the standard library, without the optional syntax (`a.?b`).
/// Built once: building it registers every standard overload.
static ENV: LazyLock<Arc<Env>> =
    LazyLock::new(|| Arc::new(Env::stdlib().with_optional_support(false)));

/// The fields of `principal`.
const PRINCIPAL_FIELDS: [&str; 6] = ["id", "kind", "roles", "groups", "channel_roles", "claims"];

/// The fields of `resource`.
const RESOURCE_FIELDS: [&str; 4] = ["kind", "id", "attributes", "captures"];

/// Identifiers that name a type, as in `type(x) == string`.
const TYPE_NAMES: [&str; 10] = [
    "bool",
    "int",
    "uint",
    "double",
    "string",
    "bytes",
    "list",
    "map",
    "null_type",
    "type",
];

/// The standard macros: a call to one of these names that reaches the checker has the wrong arity.
const MACROS: [(&str, &str); 7] = [
    ("has", "1 argument"),
    ("all", "2 arguments"),
    ("exists", "2 arguments"),
    ("exists_one", "2 arguments"),
    ("existsOne", "2 arguments"),
    ("map", "2 or 3 arguments"),
    ("filter", "2 arguments"),
];

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
    /// An object: `id` (string), `kind` (string: user|anonymous|server|scoped), `roles` (list of
    /// strings), `groups` (list of strings), `channel_roles` (map of strings), `claims` (map).
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
        check_source_size(source)?;
        let program = ENV.compile(source).map_err(|errors| {
            let first = errors.errors.first();
            let message = first.map_or_else(|| "invalid expression".to_owned(), |e| e.msg.clone());
            let message = message
                .strip_prefix("Syntax error: ")
                .map_or_else(|| lower_first(&message), str::to_owned);
            let position = first.and_then(|e| {
                Some(Position {
                    line: usize::try_from(e.pos.0).ok().filter(|l| *l > 0)?,
                    column: usize::try_from(e.pos.1).ok().filter(|c| *c > 0)?,
                })
            });
            CelError::Syntax { message, position }
        })?;
        let mut checker = Checker {
            program: &program,
            scope: Vec::new(),
        };
        let ty = checker.check(program.expression())?;
        if !matches!(ty, Ty::Bool | Ty::Dyn) {
            return Err(CelError::NotBoolean {
                found: ty.to_string(),
            });
        }
        let mut uses = Uses::default();
        uses.collect(program.expression(), &mut Vec::new());
        if let Some(id) = regex_from_input(program.expression()) {
            return Err(CelError::Unsupported {
                what: "matches() takes a literal pattern: a pattern from the request would be compiled on every evaluation".to_owned(),
                position: checker.position(id),
            });
        }
        let (nodes, nesting) = shape(program.expression());
        if nesting > MAX_COMPREHENSION_NESTING {
            return Err(CelError::TooLarge {
                what: format!(
                    "comprehensions nest {nesting} deep, at most {MAX_COMPREHENSION_NESTING} are allowed"
                ),
            });
        }
        Ok(CelCondition {
            source: source.to_owned(),
            program: Arc::new(program),
            nodes,
            nesting,
            principal: uses.principal,
            resource: uses.resource,
            action: uses.action,
            context: uses.context,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates to a bool; an evaluation error (missing key, type mismatch, non-bool result) is
    /// `Err(message)`.
    pub fn evaluate(&self, input: &CelInput<'_>) -> Result<bool, String> {
        self.within_budget(input)?;
        let mut context = Context::with_env(Arc::clone(&ENV));
        if let Some(projection) = &self.principal {
            context.add_variable_as_val("principal", project(input.principal, projection));
        }
        if let Some(projection) = &self.resource {
            context.add_variable_as_val("resource", project(input.resource, projection));
        }
        if self.action {
            context.add_variable_as_val("action", Box::new(CelString::from(input.action)));
        }
        if let Some(projection) = &self.context {
            context.add_variable_as_val("context", project_object(input.context, projection));
        }
        match self.program.execute(&context) {
            Ok(Value::Bool(result)) => Ok(result),
            Ok(other) => Err(format!(
                "condition evaluated to {}, not a bool",
                other.type_of()
            )),
            Err(error) => Err(execution_error(&error, &self.source)),
        }
    }
}

impl CelCondition {
    /// Estimates the evaluation's cost before running it: a comprehension can iterate over any list in
    /// the input, so each nesting level multiplies the expression's size by the input's value count.
    fn within_budget(&self, input: &CelInput<'_>) -> Result<(), String> {
        if self.nesting == 0 {
            return Ok(());
        }
        let mut values = 0u64;
        if self.principal.is_some() {
            values += count_values(input.principal);
        }
        if self.resource.is_some() {
            values += count_values(input.resource);
        }
        if self.context.is_some() {
            values += input.context.values().map(count_values).sum::<u64>();
        }
        let cost = (0..self.nesting).fold(self.nodes, |cost, _| cost.saturating_mul(values + 1));
        if cost > EVALUATION_BUDGET {
            return Err(format!(
                "the condition would take about {cost} steps on this request, over the budget of {EVALUATION_BUDGET}"
            ));
        }
        Ok(())
    }
}

/// How many JSON values `value` holds, itself included.
fn count_values(value: &Json) -> u64 {
    match value {
        Json::Array(items) => 1 + items.iter().map(count_values).sum::<u64>(),
        Json::Object(map) => 1 + map.values().map(count_values).sum::<u64>(),
        _ => 1,
    }
}

/// Refuses a source the parser would take long or deep recursion to read.
fn check_source_size(source: &str) -> Result<(), CelError> {
    if source.len() > MAX_SOURCE_BYTES {
        return Err(CelError::TooLarge {
            what: format!("{} bytes, at most {MAX_SOURCE_BYTES}", source.len()),
        });
    }
    let mut depth = 0usize;
    for byte in source.bytes() {
        match byte {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > MAX_BRACKET_DEPTH {
                    return Err(CelError::TooLarge {
                        what: format!("brackets nest deeper than {MAX_BRACKET_DEPTH}"),
                    });
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// The id of a `matches` call whose pattern is not a literal, if any.
fn regex_from_input(expr: &IdedExpr) -> Option<u64> {
    if let Expr::Call(call) = &expr.expr
        && call.func_name == "matches"
        && !call
            .args
            .last()
            .is_some_and(|pattern| matches!(pattern.expr, Expr::Literal(_)))
    {
        return Some(expr.id);
    }
    children(expr).into_iter().find_map(regex_from_input)
}

/// The expression's node count and comprehension nesting depth.
fn shape(expr: &IdedExpr) -> (u64, u32) {
    let (nodes, nesting) = children(expr)
        .into_iter()
        .map(shape)
        .fold((1, 0), |(n, d), (cn, cd)| (n + cn, d.max(cd)));
    match expr.expr {
        Expr::Comprehension(_) => (nodes, nesting + 1),
        _ => (nodes, nesting),
    }
}

/// The direct subexpressions of `expr`.
fn children(expr: &IdedExpr) -> Vec<&IdedExpr> {
    match &expr.expr {
        Expr::Select(select) => vec![&select.operand],
        Expr::Call(call) => call.target.iter().map(|t| &**t).chain(&call.args).collect(),
        Expr::Comprehension(c) => vec![
            &c.iter_range,
            &c.accu_init,
            &c.loop_cond,
            &c.loop_step,
            &c.result,
        ],
        Expr::List(list) => list.elements.iter().collect(),
        Expr::Map(map) => map
            .entries
            .iter()
            .filter_map(|entry| match &entry.expr {
                EntryExpr::MapEntry(entry) => Some([&entry.key, &entry.value]),
                _ => None,
            })
            .flatten()
            .collect(),
        Expr::Ident(_) | Expr::Struct(_) | Expr::Literal(_) | Expr::Unspecified => Vec::new(),
    }
}

/// What went wrong, naming the types of the values involved but never the values: they are request
/// data (claims, ids, a header a route copied into the context, even a bearer token), and the message
/// is logged. Names are kept only when the condition's own text (`source`) spells them.
#[allow(deprecated)]
fn execution_error(error: &ExecutionError, source: &str) -> String {
    let named = |name: &str| {
        if source.contains(name) {
            format!("'{name}'")
        } else {
            "a name from the request".to_owned()
        }
    };
    match error {
        ExecutionError::NoSuchKey(key) => format!("no such key {}", named(key)),
        ExecutionError::UndeclaredReference(name) => {
            format!("undeclared reference {}", named(name))
        }
        ExecutionError::InvalidArgumentCount { expected, actual } => {
            format!("expected {expected} arguments, got {actual}")
        }
        ExecutionError::UnsupportedTargetType { target } => {
            format!("a {} is not a valid argument here", target.type_of())
        }
        ExecutionError::NotSupportedAsMethod { method, target } => {
            format!("{} is not a method of {}", named(method), target.type_of())
        }
        ExecutionError::UnsupportedKeyType(key) => {
            format!("a {} cannot be a map key", key.type_of())
        }
        ExecutionError::UnexpectedType { got, want } => {
            format!("expected a value of type {want}, got {got}")
        }
        ExecutionError::NoSuchOverload(_) => {
            "no overload of a function or operator takes these argument types".to_owned()
        }
        ExecutionError::MissingArgumentOrTarget => "missing argument or target".to_owned(),
        ExecutionError::ValuesNotComparable(a, b) => {
            format!("a {} cannot be compared to a {}", a.type_of(), b.type_of())
        }
        ExecutionError::UnsupportedUnaryOperator(op, value) => {
            format!("operator '{op}' does not apply to a {}", value.type_of())
        }
        ExecutionError::UnsupportedBinaryOperator(op, a, b) => format!(
            "operator '{op}' does not apply to a {} and a {}",
            a.type_of(),
            b.type_of()
        ),
        ExecutionError::UnsupportedMapIndex(index)
        | ExecutionError::UnsupportedListIndex(index) => {
            format!("a {} cannot be an index", index.type_of())
        }
        ExecutionError::UnsupportedIndex(index, target) => {
            format!("a {} cannot index a {}", index.type_of(), target.type_of())
        }
        ExecutionError::FunctionError { function, .. } => {
            format!("function {} failed", named(function))
        }
        ExecutionError::DivisionByZero(_) => "division by zero".to_owned(),
        ExecutionError::RemainderByZero(_) => "remainder by zero".to_owned(),
        ExecutionError::Overflow(op, _, _) => format!("overflow in '{op}'"),
        ExecutionError::IndexOutOfBounds(_) => "index out of bounds".to_owned(),
        ExecutionError::DuplicateKey(key) => {
            format!("a map literal repeats a {} key", key.type_of())
        }
        _ => "the condition could not be evaluated".to_owned(),
    }
}

fn lower_first(message: &str) -> String {
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Static checking
// ---------------------------------------------------------------------------------------------

/// A known object: `principal` or `resource`, whose fields are fixed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Object {
    Principal,
    Resource,
}

impl Object {
    fn name(self) -> &'static str {
        match self {
            Object::Principal => "principal",
            Object::Resource => "resource",
        }
    }

    fn field(self, field: &str) -> Option<Ty> {
        let string_list = || Ty::List(Box::new(Ty::String));
        let map_of = |value: Ty| Ty::Map(Box::new(Ty::String), Box::new(value));
        match (self, field) {
            (Object::Principal, "id" | "kind") | (Object::Resource, "kind" | "id") => {
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
enum Ty {
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
    fn is_numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::Uint | Ty::Double)
    }

    /// Whether `<`, `<=`, `>` and `>=` apply to values of this type.
    fn is_orderable(&self) -> bool {
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
    fn as_map(&self) -> Option<(Ty, Ty)> {
        match self {
            Ty::Map(key, value) => Some(((**key).clone(), (**value).clone())),
            Ty::Object(_) => Some((Ty::String, Ty::Dyn)),
            _ => None,
        }
    }

    /// The type of both `self` and `other`: their common type, else `dyn`.
    fn join(&self, other: &Ty) -> Ty {
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
    fn may_equal(&self, other: &Ty) -> bool {
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
    fn may_order(&self, other: &Ty) -> bool {
        match (self, other) {
            (Ty::Dyn, t) | (t, Ty::Dyn) => t.is_orderable(),
            (a, b) if a.is_numeric() && b.is_numeric() => true,
            (a, b) => a == b && a.is_orderable(),
        }
    }
}

/// Whether `ty` is `dyn` or one of `allowed`.
fn one_of(ty: &Ty, allowed: &[Ty]) -> bool {
    *ty == Ty::Dyn || allowed.contains(ty)
}

/// The type of an arithmetic operation, or `None` when it does not apply to the operands.
fn arithmetic(op: &str, left: &Ty, right: &Ty) -> Option<Ty> {
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
fn operator_symbol(name: &str) -> &str {
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

/// The type checker: walks the parsed expression with the comprehension variables in scope.
struct Checker<'p> {
    program: &'p Program,
    /// Comprehension variables, innermost last.
    scope: Vec<(String, Ty)>,
}

impl Checker<'_> {
    fn source(&self) -> &str {
        &self.program.source_info().source
    }

    /// The position of the byte at `offset`.
    fn position_of(&self, offset: usize) -> Option<Position> {
        let before = self.source().get(..offset)?;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Some(Position {
            line: before.matches('\n').count() + 1,
            column: before.get(line_start..)?.chars().count() + 1,
        })
    }

    /// The byte offset where the parser placed node `id`.
    fn offset(&self, id: u64) -> Option<usize> {
        let (start, _) = self.program.source_info().offset_for(id)?;
        usize::try_from(start).ok()
    }

    fn position(&self, id: u64) -> Option<Position> {
        self.position_of(self.offset(id)?)
    }

    /// The position of a call's function name: the parser places a call at its `(`.
    fn call_position(&self, id: u64, name: &str) -> Option<Position> {
        let offset = self.offset(id)?;
        let before = self.source().get(..offset)?.trim_end();
        match before.strip_suffix(name) {
            Some(rest) if self.source().get(offset..)?.starts_with('(') => {
                self.position_of(rest.len())
            }
            _ => self.position_of(offset),
        }
    }

    /// The position of a selected field: the parser places a selection at its `.`.
    fn field_position(&self, id: u64) -> Option<Position> {
        let offset = self.offset(id)?;
        let after = self.source().get(offset..)?;
        match after.strip_prefix('.') {
            Some(rest) => self.position_of(offset + 1 + rest.len() - rest.trim_start().len()),
            None => self.position_of(offset),
        }
    }

    fn mismatch(&self, id: u64, message: String) -> CelError {
        CelError::Mismatch {
            message,
            position: self.position(id),
        }
    }

    fn check(&mut self, expr: &IdedExpr) -> Result<Ty, CelError> {
        match &expr.expr {
            Expr::Literal(literal) => Ok(match literal {
                LiteralValue::Boolean(_) => Ty::Bool,
                LiteralValue::Bytes(_) => Ty::Bytes,
                LiteralValue::Double(_) => Ty::Double,
                LiteralValue::Int(_) => Ty::Int,
                LiteralValue::Null => Ty::Null,
                LiteralValue::String(_) => Ty::String,
                LiteralValue::UInt(_) => Ty::Uint,
            }),
            Expr::Ident(name) => self.ident(expr.id, name),
            Expr::Select(select) => self.select(expr.id, select),
            Expr::Call(call) => self.call(expr.id, call),
            Expr::Comprehension(comprehension) => self.comprehension(expr.id, comprehension),
            Expr::List(list) => {
                let mut element: Option<Ty> = None;
                for item in &list.elements {
                    let ty = self.check(item)?;
                    element = Some(element.map_or(ty.clone(), |e| e.join(&ty)));
                }
                Ok(Ty::List(Box::new(element.unwrap_or(Ty::Dyn))))
            }
            Expr::Map(map) => {
                let mut key_ty: Option<Ty> = None;
                let mut value_ty: Option<Ty> = None;
                for entry in &map.entries {
                    let EntryExpr::MapEntry(entry) = &entry.expr else {
                        return Err(CelError::Unsupported {
                            what: "a field initializer in a map".to_owned(),
                            position: self.position(expr.id),
                        });
                    };
                    let key = self.check(&entry.key)?;
                    if !one_of(&key, &[Ty::Bool, Ty::Int, Ty::Uint, Ty::String]) {
                        return Err(self.mismatch(
                            entry.key.id,
                            format!("a map key must be bool, int, uint or string, found {key}"),
                        ));
                    }
                    let value = self.check(&entry.value)?;
                    key_ty = Some(key_ty.map_or(key.clone(), |k| k.join(&key)));
                    value_ty = Some(value_ty.map_or(value.clone(), |v| v.join(&value)));
                }
                Ok(Ty::Map(
                    Box::new(key_ty.unwrap_or(Ty::Dyn)),
                    Box::new(value_ty.unwrap_or(Ty::Dyn)),
                ))
            }
            Expr::Struct(structure) => Err(CelError::Unsupported {
                what: format!("message construction '{}{{...}}'", structure.type_name),
                position: self.position(expr.id),
            }),
            Expr::Unspecified => Err(CelError::Unsupported {
                what: "an incomplete expression".to_owned(),
                position: self.position(expr.id),
            }),
        }
    }

    fn ident(&self, id: u64, name: &str) -> Result<Ty, CelError> {
        if let Some((_, ty)) = self.scope.iter().rev().find(|(n, _)| n == name) {
            return Ok(ty.clone());
        }
        match name {
            "principal" => Ok(Ty::Object(Object::Principal)),
            "resource" => Ok(Ty::Object(Object::Resource)),
            "action" => Ok(Ty::String),
            "context" => Ok(Ty::Map(Box::new(Ty::String), Box::new(Ty::Dyn))),
            _ if TYPE_NAMES.contains(&name) => Ok(Ty::Type),
            _ => Err(CelError::UnknownVariable {
                name: name.to_owned(),
                position: self.position(id),
            }),
        }
    }

    /// The type of field `field` of a value of type `ty`.
    fn field_of(&self, id: u64, ty: &Ty, field: &str) -> Result<Ty, CelError> {
        match ty {
            Ty::Object(object) => object.field(field).ok_or_else(|| CelError::UnknownField {
                object: object.name(),
                field: field.to_owned(),
                position: self.field_position(id),
            }),
            Ty::Map(_, value) => Ok((**value).clone()),
            Ty::Dyn => Ok(Ty::Dyn),
            other => Err(CelError::Mismatch {
                message: format!("cannot select field '{field}' of {other}"),
                position: self.field_position(id),
            }),
        }
    }

    fn select(&mut self, id: u64, select: &SelectExpr) -> Result<Ty, CelError> {
        let operand = self.check(&select.operand)?;
        let field = self.field_of(id, &operand, &select.field)?;
        Ok(if select.test { Ty::Bool } else { field })
    }

    fn comprehension(&mut self, id: u64, c: &ComprehensionExpr) -> Result<Ty, CelError> {
        let range = self.check(&c.iter_range)?;
        let (first, second) = match &range {
            Ty::List(element) => (Ty::Int, (**element).clone()),
            Ty::Dyn => (Ty::Dyn, Ty::Dyn),
            other => match other.as_map() {
                Some((key, value)) => (key, value),
                None => return Err(self.mismatch(id, format!("cannot iterate over {other}"))),
            },
        };
        let accu = self.check(&c.accu_init)?;
        let depth = self.scope.len();
        self.scope.push((c.accu_var.clone(), accu));
        let result = (|| {
            self.check(&c.loop_cond)?;
            let loop_depth = self.scope.len();
            match &c.iter_var2 {
                // One variable: a list's elements, a map's keys.
                None => {
                    let var = if matches!(range, Ty::List(_)) {
                        second
                    } else {
                        first
                    };
                    self.scope.push((c.iter_var.clone(), var));
                }
                Some(var2) => {
                    self.scope.push((c.iter_var.clone(), first));
                    self.scope.push((var2.clone(), second));
                }
            }
            let step = self.check(&c.loop_step);
            self.scope.truncate(loop_depth);
            step?;
            self.check(&c.result)
        })();
        self.scope.truncate(depth);
        result
    }

    fn call(&mut self, id: u64, call: &CallExpr) -> Result<Ty, CelError> {
        let name = call.func_name.as_str();
        if call.target.is_none()
            && let Some(ty) = self.operator(id, call)?
        {
            return Ok(ty);
        }
        if let Some((_, expected)) = MACROS.iter().find(|(m, _)| *m == name) {
            return Err(CelError::WrongArgumentCount {
                name: name.to_owned(),
                expected,
                found: call.args.len(),
                position: self.call_position(id, name),
            });
        }
        // `math.greatest(..)` is a call to a function of a namespace, not a method of a variable.
        if let Some(target) = &call.target
            && let Expr::Ident(namespace) = &target.expr
            && self.ident(target.id, namespace).is_err()
        {
            return Err(CelError::UnknownFunction {
                name: format!("{namespace}.{name}"),
                position: self.position(target.id),
            });
        }
        let target = match &call.target {
            Some(target) => Some(self.check(target)?),
            None => None,
        };
        let mut args = Vec::with_capacity(call.args.len());
        for arg in &call.args {
            args.push(self.check(arg)?);
        }
        let position = || self.call_position(id, name);
        let arity = |expected: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(CelError::WrongArgumentCount {
                    name: name.to_owned(),
                    expected,
                    found: call.args.len(),
                    position: position(),
                })
            }
        };
        let mismatch = |ty: &Ty| CelError::Mismatch {
            message: format!("function '{name}' does not apply to {ty}"),
            position: position(),
        };
        let expect = |ty: &Ty, allowed: &[Ty]| {
            if one_of(ty, allowed) {
                Ok(())
            } else {
                Err(mismatch(ty))
            }
        };
        let sized = |ty: &Ty| {
            matches!(
                ty,
                Ty::Dyn | Ty::String | Ty::Bytes | Ty::List(_) | Ty::Map(..) | Ty::Object(_)
            )
        };
        let arg = |i: usize| args.get(i).cloned().unwrap_or(Ty::Dyn);
        match target {
            None => match name {
                "size" => {
                    arity("1 argument", args.len() == 1)?;
                    let ty = arg(0);
                    if !sized(&ty) {
                        return Err(mismatch(&ty));
                    }
                    Ok(Ty::Int)
                }
                "matches" => {
                    arity("2 arguments", args.len() == 2)?;
                    expect(&arg(0), &[Ty::String])?;
                    expect(&arg(1), &[Ty::String])?;
                    Ok(Ty::Bool)
                }
                "int" | "uint" | "double" | "string" | "bool" | "bytes" | "dyn" | "type"
                | "timestamp" | "duration" => {
                    arity("1 argument", args.len() == 1)?;
                    let ty = arg(0);
                    let (allowed, result): (&[Ty], Ty) = match name {
                        "int" => (
                            &[Ty::Int, Ty::Uint, Ty::Double, Ty::String, Ty::Timestamp],
                            Ty::Int,
                        ),
                        "uint" => (&[Ty::Int, Ty::Uint, Ty::Double, Ty::String], Ty::Uint),
                        "double" => (&[Ty::Int, Ty::Uint, Ty::Double, Ty::String], Ty::Double),
                        "string" => (
                            &[
                                Ty::Int,
                                Ty::Uint,
                                Ty::Double,
                                Ty::String,
                                Ty::Bool,
                                Ty::Bytes,
                                Ty::Timestamp,
                                Ty::Duration,
                            ],
                            Ty::String,
                        ),
                        "bool" => (&[Ty::Bool, Ty::String], Ty::Bool),
                        "bytes" => (&[Ty::Bytes, Ty::String], Ty::Bytes),
                        "timestamp" => (&[Ty::Timestamp, Ty::String, Ty::Int], Ty::Timestamp),
                        "duration" => (&[Ty::Duration, Ty::String], Ty::Duration),
                        "type" => return Ok(Ty::Type),
                        _ => return Ok(Ty::Dyn),
                    };
                    expect(&ty, allowed)?;
                    Ok(result)
                }
                _ => Err(CelError::UnknownFunction {
                    name: name.to_owned(),
                    position: position(),
                }),
            },
            Some(target) => match name {
                "contains" | "startsWith" | "endsWith" | "matches" => {
                    arity("1 argument", args.len() == 1)?;
                    expect(&target, &[Ty::String])?;
                    expect(&arg(0), &[Ty::String])?;
                    Ok(Ty::Bool)
                }
                "size" => {
                    arity("no argument", args.is_empty())?;
                    if !sized(&target) {
                        return Err(mismatch(&target));
                    }
                    Ok(Ty::Int)
                }
                "getFullYear" | "getMonth" | "getDayOfYear" | "getDayOfMonth" | "getDate"
                | "getDayOfWeek" => {
                    arity("at most 1 argument (a time zone)", args.len() <= 1)?;
                    expect(&target, &[Ty::Timestamp])?;
                    expect(&arg(0), &[Ty::String])?;
                    Ok(Ty::Int)
                }
                "getHours" | "getMinutes" | "getSeconds" | "getMilliseconds" => {
                    if target == Ty::Duration {
                        arity("no argument on a duration", args.is_empty())?;
                    } else {
                        arity("at most 1 argument (a time zone)", args.len() <= 1)?;
                    }
                    expect(&target, &[Ty::Timestamp, Ty::Duration])?;
                    expect(&arg(0), &[Ty::String])?;
                    Ok(Ty::Int)
                }
                _ => Err(CelError::UnknownFunction {
                    name: name.to_owned(),
                    position: position(),
                }),
            },
        }
    }

    /// The type of an operator call, or `None` when `call` is not an operator.
    fn operator(&mut self, id: u64, call: &CallExpr) -> Result<Option<Ty>, CelError> {
        let name = call.func_name.as_str();
        let symbol = operator_symbol(name);
        let ty = match call.args.as_slice() {
            [operand] => match name {
                operators::LOGICAL_NOT => {
                    let ty = self.check(operand)?;
                    if !one_of(&ty, &[Ty::Bool]) {
                        return Err(
                            self.mismatch(id, format!("operator '!' expects a bool, found {ty}"))
                        );
                    }
                    Ty::Bool
                }
                operators::NEGATE => {
                    let ty = self.check(operand)?;
                    if !one_of(&ty, &[Ty::Int, Ty::Double]) {
                        return Err(
                            self.mismatch(id, format!("operator '-' does not apply to {ty}"))
                        );
                    }
                    ty
                }
                operators::NOT_STRICTLY_FALSE => {
                    self.check(operand)?;
                    Ty::Bool
                }
                _ => return Ok(None),
            },
            [left_expr, right_expr] => match name {
                operators::LOGICAL_AND | operators::LOGICAL_OR => {
                    let left = self.check(left_expr)?;
                    let right = self.check(right_expr)?;
                    // The loop step of `all` and `exists` is `@result && predicate`.
                    let in_macro = matches!(&left_expr.expr, Expr::Ident(n) if n.starts_with('@'));
                    for (ty, expr) in [(&left, left_expr), (&right, right_expr)] {
                        if !one_of(ty, &[Ty::Bool]) {
                            let message = if in_macro {
                                format!("the predicate must be boolean, found {ty}")
                            } else {
                                format!("operator '{symbol}' expects bool operands, found {ty}")
                            };
                            let position = if in_macro {
                                self.position(expr.id)
                            } else {
                                self.position(id)
                            };
                            return Err(CelError::Mismatch { message, position });
                        }
                    }
                    Ty::Bool
                }
                operators::EQUALS | operators::NOT_EQUALS => {
                    let left = self.check(left_expr)?;
                    let right = self.check(right_expr)?;
                    if !left.may_equal(&right) {
                        return Err(self.mismatch(
                            id,
                            format!("cannot compare {left} and {right} with '{symbol}'"),
                        ));
                    }
                    Ty::Bool
                }
                operators::LESS
                | operators::LESS_EQUALS
                | operators::GREATER
                | operators::GREATER_EQUALS => {
                    let left = self.check(left_expr)?;
                    let right = self.check(right_expr)?;
                    if !left.may_order(&right) {
                        return Err(self.mismatch(
                            id,
                            format!("cannot compare {left} and {right} with '{symbol}'"),
                        ));
                    }
                    Ty::Bool
                }
                operators::ADD
                | operators::SUBSTRACT
                | operators::MULTIPLY
                | operators::DIVIDE
                | operators::MODULO => {
                    let left = self.check(left_expr)?;
                    let right = self.check(right_expr)?;
                    arithmetic(name, &left, &right).ok_or_else(|| {
                        self.mismatch(
                            id,
                            format!("operator '{symbol}' does not apply to {left} and {right}"),
                        )
                    })?
                }
                operators::IN => {
                    let element = self.check(left_expr)?;
                    let container = self.check(right_expr)?;
                    let member = match &container {
                        Ty::Dyn => Ty::Dyn,
                        Ty::List(member) => (**member).clone(),
                        other => match other.as_map() {
                            Some((key, _)) => key,
                            None => {
                                return Err(self.mismatch(
                                    id,
                                    format!("operator 'in' expects a list or a map, found {other}"),
                                ));
                            }
                        },
                    };
                    if !element.may_equal(&member) {
                        return Err(self.mismatch(id, format!("{element} is never in {container}")));
                    }
                    Ty::Bool
                }
                operators::INDEX => {
                    let container = self.check(left_expr)?;
                    let index = self.check(right_expr)?;
                    match &container {
                        Ty::Dyn => Ty::Dyn,
                        Ty::List(element) => {
                            if !one_of(&index, &[Ty::Int, Ty::Uint, Ty::Double]) {
                                return Err(self.mismatch(
                                    id,
                                    format!("cannot index {container} with {index}"),
                                ));
                            }
                            (**element).clone()
                        }
                        Ty::Object(object) => {
                            if let Expr::Literal(LiteralValue::String(field)) = &right_expr.expr {
                                object.field(field.inner()).ok_or_else(|| {
                                    CelError::UnknownField {
                                        object: object.name(),
                                        field: field.inner().to_owned(),
                                        position: self.position(right_expr.id),
                                    }
                                })?
                            } else if one_of(&index, &[Ty::String]) {
                                Ty::Dyn
                            } else {
                                return Err(self.mismatch(
                                    id,
                                    format!("cannot index {container} with {index}"),
                                ));
                            }
                        }
                        Ty::Map(key, value) => {
                            if !index.may_equal(key) {
                                return Err(self.mismatch(
                                    id,
                                    format!("cannot index {container} with {index}"),
                                ));
                            }
                            (**value).clone()
                        }
                        other => {
                            return Err(self.mismatch(id, format!("cannot index {other}")));
                        }
                    }
                }
                _ => return Ok(None),
            },
            [condition, then, otherwise] if name == operators::CONDITIONAL => {
                let ty = self.check(condition)?;
                if !one_of(&ty, &[Ty::Bool]) {
                    return Err(self.mismatch(
                        id,
                        format!("the condition of '?:' must be boolean, found {ty}"),
                    ));
                }
                let then = self.check(then)?;
                let otherwise = self.check(otherwise)?;
                then.join(&otherwise)
            }
            _ => return Ok(None),
        };
        Ok(Some(ty))
    }
}

// ---------------------------------------------------------------------------------------------
// Projections: what evaluation converts of the input
// ---------------------------------------------------------------------------------------------

/// The part of a JSON value an expression can see.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Projection {
    /// The whole value.
    All,
    /// Only these fields of an object, each with its own projection; the value itself is used only
    /// through them.
    Fields(BTreeMap<String, Projection>),
}

impl Projection {
    /// Adds the value at `path` below this one, whole.
    fn add(&mut self, path: &[&str]) {
        let Some((first, rest)) = path.split_first() else {
            *self = Projection::All;
            return;
        };
        if let Projection::Fields(fields) = self {
            fields
                .entry((*first).to_owned())
                .or_insert_with(|| Projection::Fields(BTreeMap::new()))
                .add(rest);
        }
    }
}

/// What of each variable an expression uses.
#[derive(Debug, Default)]
struct Uses {
    principal: Option<Projection>,
    resource: Option<Projection>,
    action: bool,
    context: Option<Projection>,
}

impl Uses {
    fn add(&mut self, variable: &str, path: &[&str]) {
        let slot = match variable {
            "principal" => &mut self.principal,
            "resource" => &mut self.resource,
            "context" => &mut self.context,
            "action" => {
                self.action = true;
                return;
            }
            _ => return,
        };
        slot.get_or_insert_with(|| Projection::Fields(BTreeMap::new()))
            .add(path);
    }

    /// Records the uses in `expr`, where the names in `shadowed` are comprehension variables.
    fn collect(&mut self, expr: &IdedExpr, shadowed: &mut Vec<String>) {
        match &expr.expr {
            Expr::Ident(name) => {
                if !shadowed.contains(name) {
                    self.add(name, &[]);
                }
            }
            Expr::Select(select) => {
                // A chain of field selections on a variable uses only the selected path.
                let mut path = vec![select.field.as_str()];
                let mut operand = &select.operand.expr;
                loop {
                    match operand {
                        Expr::Select(inner) if !inner.test => {
                            path.push(inner.field.as_str());
                            operand = &inner.operand.expr;
                        }
                        Expr::Ident(name) if !shadowed.contains(name) => {
                            path.reverse();
                            self.add(name, &path);
                            return;
                        }
                        _ => break,
                    }
                }
                self.collect(&select.operand, shadowed);
            }
            Expr::Call(call) => {
                if let Some(target) = &call.target {
                    self.collect(target, shadowed);
                }
                for arg in &call.args {
                    self.collect(arg, shadowed);
                }
            }
            Expr::Comprehension(c) => {
                self.collect(&c.iter_range, shadowed);
                self.collect(&c.accu_init, shadowed);
                let depth = shadowed.len();
                shadowed.push(c.accu_var.clone());
                shadowed.push(c.iter_var.clone());
                shadowed.extend(c.iter_var2.iter().cloned());
                self.collect(&c.loop_cond, shadowed);
                self.collect(&c.loop_step, shadowed);
                self.collect(&c.result, shadowed);
                shadowed.truncate(depth);
            }
            Expr::List(list) => {
                for element in &list.elements {
                    self.collect(element, shadowed);
                }
            }
            Expr::Map(map) => {
                for entry in &map.entries {
                    if let EntryExpr::MapEntry(entry) = &entry.expr {
                        self.collect(&entry.key, shadowed);
                        self.collect(&entry.value, shadowed);
                    }
                }
            }
            Expr::Struct(_) | Expr::Literal(_) | Expr::Unspecified => {}
        }
    }
}

/// The CEL value of the part of `value` that `projection` keeps, borrowing its strings.
fn project<'v>(value: &'v Json, projection: &Projection) -> Box<dyn Val + 'v> {
    match (value, projection) {
        (Json::Object(object), Projection::Fields(_)) => project_object(object, projection),
        _ => to_val(value),
    }
}

fn project_object<'v>(
    object: &'v JsonMap<String, Json>,
    projection: &Projection,
) -> Box<dyn Val + 'v> {
    let map: HashMap<CelMapKey<'v>, Box<dyn Val + 'v>> = match projection {
        Projection::All => object
            .iter()
            .map(|(key, value)| (CelMapKey::from(key.as_str()), to_val(value)))
            .collect(),
        Projection::Fields(fields) => fields
            .iter()
            .filter_map(|(field, projection)| {
                let (key, value) = object.get_key_value(field)?;
                Some((CelMapKey::from(key.as_str()), project(value, projection)))
            })
            .collect(),
    };
    Box::new(CelMap::from(map))
}

/// The CEL value of a JSON value: an integer is an `int` when it fits, else a `uint`.
fn to_val(value: &Json) -> Box<dyn Val + '_> {
    match value {
        Json::Null => Box::new(CelNull),
        Json::Bool(b) => Box::new(CelBool::from(*b)),
        Json::Number(n) => {
            if let Some(i) = n.as_i64() {
                Box::new(CelInt::from(i))
            } else if let Some(u) = n.as_u64() {
                Box::new(CelUInt::from(u))
            } else {
                Box::new(CelDouble::from(n.as_f64().unwrap_or(f64::NAN)))
            }
        }
        Json::String(s) => Box::new(CelString::from(s.as_str())),
        Json::Array(items) => Box::new(CelList::from(items.iter().map(to_val).collect::<Vec<_>>())),
        Json::Object(object) => project_object(object, &Projection::All),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn principal() -> Json {
        json!({
            "id": "jack",
            "kind": "user",
            "roles": ["user", "moderator"],
            "groups": ["staff"],
            "channel_roles": { "messaging:general": "channel_moderator", "messaging:random": "channel_member" },
            "claims": { "branch": "north", "level": 3 },
        })
    }

    fn resource() -> Json {
        json!({
            "kind": "message",
            "id": "m1",
            "attributes": { "author_id": "jack", "channel": "messaging:general", "tags": ["x", "y"], "branch": "north" },
            "captures": { "owner": "jack" },
        })
    }

    fn context() -> JsonMap<String, Json> {
        let Json::Object(map) = json!({ "count": 5, "actor": "SU:jack", "ratio": 0.5 }) else {
            unreachable!()
        };
        map
    }

    fn eval(source: &str) -> Result<bool, String> {
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

    fn compile_error(source: &str) -> CelError {
        match CelCondition::compile(source) {
            Ok(_) => panic!("{source} compiled"),
            Err(error) => error,
        }
    }

    #[test]
    fn ownership() {
        assert_eq!(
            eval("resource.attributes.author_id == principal.id"),
            Ok(true)
        );
        assert_eq!(eval("resource.captures.owner != principal.id"), Ok(false));
    }

    #[test]
    fn role_membership() {
        assert_eq!(eval("'moderator' in principal.roles"), Ok(true));
        assert_eq!(eval("'admin' in principal.roles"), Ok(false));
        assert_eq!(
            eval("'staff' in principal.groups && principal.kind == 'user'"),
            Ok(true)
        );
    }

    #[test]
    fn macros() {
        assert_eq!(
            eval("principal.roles.exists(r, r == 'moderator')"),
            Ok(true)
        );
        assert_eq!(eval("principal.roles.all(r, r.startsWith('m'))"), Ok(false));
        assert_eq!(
            eval("principal.roles.exists_one(r, r.endsWith('r'))"),
            Ok(false)
        );
        assert_eq!(
            eval("principal.roles.filter(r, r != 'user').size() == 1"),
            Ok(true)
        );
        assert_eq!(eval("principal.roles.map(r, size(r)) == [4, 9]"), Ok(true));
        assert_eq!(
            eval("resource.attributes.tags.exists(t, t == 'x')"),
            Ok(true)
        );
        assert_eq!(
            eval("principal.channel_roles.exists(c, c.startsWith('messaging:'))"),
            Ok(true)
        );
        assert_eq!(
            eval("has(principal.claims.branch) && !has(principal.claims.team)"),
            Ok(true)
        );
    }

    #[test]
    fn channel_role_lookup() {
        assert_eq!(
            eval("principal.channel_roles[resource.attributes.channel] == 'channel_moderator'"),
            Ok(true)
        );
    }

    #[test]
    fn context_and_action() {
        assert_eq!(eval("context.count > 3"), Ok(true));
        assert_eq!(
            eval("context.count + 1 == 6 && context.ratio < 1"),
            Ok(true)
        );
        assert_eq!(eval("context.actor == 'SU:' + principal.id"), Ok(true));
        assert_eq!(
            eval("action == 'update' && action.matches('^up')"),
            Ok(true)
        );
        assert_eq!(
            eval("principal.claims.branch == resource.attributes.branch"),
            Ok(true)
        );
        assert_eq!(eval("principal.claims.level >= 3"), Ok(true));
        assert_eq!(
            eval("type(context.count) == int && 'count' in context"),
            Ok(true)
        );
    }

    #[test]
    fn whole_values_are_visible() {
        assert_eq!(eval("size(principal.claims) == 2"), Ok(true));
        assert_eq!(
            eval("size(principal) == 6 && principal.id == 'jack'"),
            Ok(true)
        );
        assert_eq!(eval("principal['id'] == 'jack'"), Ok(true));
        assert_eq!(
            eval("[principal.id, resource.id].exists(x, x == 'm1')"),
            Ok(true)
        );
    }

    #[test]
    fn evaluation_errors() {
        let missing = eval("resource.attributes.parent == 'x'");
        assert_eq!(missing, Err("no such key 'parent'".to_owned()));
        assert!(eval("context.missing > 3").is_err());
        assert!(
            eval("context.actor > 3").is_err(),
            "a type mismatch on dynamic values"
        );
        assert!(eval("context.count").is_err(), "a non-boolean result");
        assert!(eval("principal.channel_roles['messaging:other'] == 'x'").is_err());
    }

    #[test]
    fn evaluation_errors_never_carry_request_values() {
        // Every value of the test request that an error could quote.
        let values = [
            "SU:jack",
            "jack",
            "north",
            "moderator",
            "messaging:general",
            "0.5",
        ];
        for source in [
            "context.actor > 3",
            "context.actor - 1 == 0",
            "context[context.actor] == 1",
            "principal.claims[principal.id] == 1",
            "principal.roles[context.actor] == 'x'",
            "-context.actor == 1",
            "context.count / 0 == 1",
            "context.count % 0 == 1",
            "principal.roles[7] == 'x'",
            "context.actor.size() > principal.claims.branch",
        ] {
            let Err(message) = eval(source) else {
                panic!("{source} evaluated")
            };
            for value in values {
                assert!(
                    !message.contains(value),
                    "{source}: '{message}' quotes {value}"
                );
            }
        }
        assert_eq!(
            eval("context.missing == 1"),
            Err("no such key 'missing'".to_owned()),
            "a name the condition spells is kept"
        );
        assert_eq!(
            eval("context[context.actor] == 1"),
            Err("no such key a name from the request".to_owned())
        );
    }

    #[test]
    fn syntax_errors() {
        let error = compile_error("principal.id == ");
        assert!(matches!(error, CelError::Syntax { .. }), "{error:?}");
        assert_eq!(
            error.position(),
            Some(Position {
                line: 1,
                column: 17
            })
        );
        assert!(
            error.to_string().starts_with("syntax error at column 17: "),
            "{error}"
        );
        assert!(matches!(
            compile_error("context.?x"),
            CelError::Syntax { .. }
        ));
    }

    #[test]
    fn unknown_variable() {
        let error = compile_error("user.id == 'jack'");
        assert_eq!(
            error,
            CelError::UnknownVariable {
                name: "user".to_owned(),
                position: Some(Position { line: 1, column: 1 }),
            }
        );
        assert_eq!(
            error.to_string(),
            "unknown variable 'user' at column 1: a condition sees principal, resource, action and context"
        );
        // A loop variable is only in scope inside its macro.
        assert!(matches!(
            compile_error("principal.roles.exists(r, r == 'a') || r == 'b'"),
            CelError::UnknownVariable { .. }
        ));
    }

    #[test]
    fn unknown_field() {
        let error = compile_error("principal.name == 'jack'");
        assert_eq!(
            error,
            CelError::UnknownField {
                object: "principal",
                field: "name".to_owned(),
                position: Some(Position {
                    line: 1,
                    column: 11
                }),
            }
        );
        assert_eq!(
            error.to_string(),
            "unknown field 'name' of principal at column 11: principal has id, kind, roles, groups, channel_roles, claims"
        );
        assert!(matches!(
            compile_error("resource.owner == principal.id"),
            CelError::UnknownField {
                object: "resource",
                ..
            }
        ));
        assert!(matches!(
            compile_error("has(principal.name)"),
            CelError::UnknownField { .. }
        ));
        assert!(matches!(
            compile_error("principal['name'] == 'x'"),
            CelError::UnknownField { .. }
        ));
    }

    #[test]
    fn unknown_function() {
        let error = compile_error("foo(1)");
        assert_eq!(
            error,
            CelError::UnknownFunction {
                name: "foo".to_owned(),
                position: Some(Position { line: 1, column: 1 }),
            }
        );
        assert_eq!(error.to_string(), "unknown function 'foo' at column 1");
        let error = compile_error("principal.id.lowerAscii() == 'jack'");
        assert_eq!(
            error.to_string(),
            "unknown function 'lowerAscii' at column 14"
        );
        assert_eq!(
            compile_error("math.greatest(1, 2) == 2").to_string(),
            "unknown function 'math.greatest' at column 1"
        );
        assert!(matches!(
            compile_error("size(principal.roles, 1) == 2"),
            CelError::WrongArgumentCount { found: 2, .. }
        ));
        assert!(matches!(
            compile_error("principal.roles.exists(r) == true"),
            CelError::WrongArgumentCount { .. }
        ));
    }

    #[test]
    fn not_boolean() {
        let error = compile_error("1 + 2");
        assert_eq!(
            error,
            CelError::NotBoolean {
                found: "int".to_owned()
            }
        );
        assert_eq!(error.to_string(), "condition must be boolean, found int");
        assert_eq!(
            compile_error("principal.roles").to_string(),
            "condition must be boolean, found list<string>"
        );
        assert_eq!(
            compile_error("principal.roles.map(r, r == 'a')").to_string(),
            "condition must be boolean, found list<dyn>"
        );
    }

    #[test]
    fn mismatches() {
        let error = compile_error("principal.id + 1 == 'x'");
        assert_eq!(
            error.to_string(),
            "operator '+' does not apply to string and int at column 14"
        );
        for source in [
            "action > 3",
            "!principal.id",
            "principal.roles && true",
            "principal.id == 1",
            "1 in principal.roles",
            "principal.roles.exists(r, r + 1)",
            "principal.roles.exists(r, r)",
            "principal.id.size() > 'a'",
            "principal.id.x == 1",
            "principal.kind[0] == 'u'",
            "'a' in principal.id",
            "-principal.id == 1",
            "principal.id.startsWith(1)",
            "int(principal.roles) == 1",
            "size(1) == 1",
            "1 ? true : false",
        ] {
            assert!(
                matches!(compile_error(source), CelError::Mismatch { .. }),
                "{source}: {:?}",
                CelCondition::compile(source)
            );
        }
        assert!(matches!(
            compile_error("pkg.Message{a: 1}"),
            CelError::Unsupported { .. }
        ));
    }

    #[test]
    fn dynamic_expressions_compile() {
        for source in [
            "context.count > 3",
            "resource.attributes.tags.exists(t, t == 'x')",
            "context.a.b.c == principal.claims.d[0].e",
            "context.n + 1 > 2 && context.s + 'x' == 'yx'",
            "context.flag",
            "!context.flag || context.other",
            "context.list.all(x, x.y > 1)",
            "context.m.exists(k, context.m[k] == 1)",
            "principal.claims.level * 2.0 < 10.5",
            "size(resource.attributes.tags) > 0",
            "resource.attributes.tags.size() > 0",
            "int(context.n) % 2 == 0",
            "timestamp(context.at) < timestamp('2030-01-01T00:00:00Z')",
            "duration(context.ttl) > duration('1h')",
            "timestamp(context.at).getHours('UTC') > 8",
            "string(context.n) == '1' && double(context.n) == 1.0 && uint(1) == 1u",
            "context.x == null",
            "type(context.x) == string",
            "dyn(principal.id) == 1",
            "principal.claims.branch in ['north', 'south']",
            "principal.id in {'jack': true}",
            "principal.roles + ['x'] == context.roles",
            "(context.ok ? principal.id : resource.id) == 'jack'",
            "matches(principal.id, '^j') && principal.id.contains('a')",
            "[1, 2, 3].exists(x, x > 2)",
            "{'a': 1}.a == 1",
            "context.a < context.b",
            "1 < 2u && 1.5 > 1",
            "[principal.roles].exists(rs, rs.exists(r, r == 'x'))",
            "principal.roles.exists(principal, principal == 'user')",
        ] {
            if let Err(error) = CelCondition::compile(source) {
                panic!("{source}: {error}");
            }
        }
    }

    #[test]
    fn shadowed_variables_evaluate() {
        assert_eq!(
            eval("principal.roles.exists(principal, principal == 'user')"),
            Ok(true)
        );
    }

    #[test]
    fn projections_keep_only_what_is_selected() {
        let Ok(condition) = CelCondition::compile(
            "principal.claims.branch == resource.attributes.branch && has(principal.claims.x)",
        ) else {
            panic!("does not compile");
        };
        let fields = |entries: &[(&str, Projection)]| {
            Projection::Fields(
                entries
                    .iter()
                    .map(|(k, p)| ((*k).to_owned(), p.clone()))
                    .collect(),
            )
        };
        assert_eq!(
            condition.principal,
            Some(fields(&[(
                "claims",
                fields(&[("branch", Projection::All), ("x", Projection::All)])
            )]))
        );
        assert_eq!(
            condition.resource,
            Some(fields(&[(
                "attributes",
                fields(&[("branch", Projection::All)])
            )]))
        );
        assert!(!condition.action);
        assert_eq!(condition.context, None);
        let Ok(condition) =
            CelCondition::compile("size(principal.claims) > 0 && principal.claims.a == 1")
        else {
            panic!("does not compile");
        };
        assert_eq!(
            condition.principal,
            Some(fields(&[("claims", Projection::All)]))
        );
    }

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

    /// Prints the cost of one evaluation: `cargo test --release --lib policy::cel -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing, run by hand"]
    fn timing() {
        let (principal, resource, context) = (principal(), resource(), context());
        let input = CelInput {
            principal: &principal,
            resource: &resource,
            action: "update",
            context: &context,
        };
        for source in [
            "resource.attributes.author_id == principal.id",
            "'moderator' in principal.roles",
            "principal.channel_roles[resource.attributes.channel] == 'channel_moderator'",
            "principal.roles.exists(r, r == 'moderator') && context.count > 3",
            "size(principal) == 6",
            "true",
            "action == 'update'",
            "principal.id == 'jack'",
            "principal.id == 'jack' && principal.kind == 'user'",
        ] {
            let Ok(condition) = CelCondition::compile(source) else {
                panic!("{source} does not compile");
            };
            let n = 100_000;
            let start = std::time::Instant::now();
            for _ in 0..n {
                assert_eq!(condition.evaluate(std::hint::black_box(&input)), Ok(true));
            }
            let per = start.elapsed() / n;
            println!("{per:?} per evaluation of {source}");
        }
        let start = std::time::Instant::now();
        let n = 1_000;
        for _ in 0..n {
            let _ = std::hint::black_box(CelCondition::compile(
                "principal.channel_roles[resource.attributes.channel] == 'channel_moderator'",
            ));
        }
        println!("{:?} per compilation", start.elapsed() / n);
    }
}
