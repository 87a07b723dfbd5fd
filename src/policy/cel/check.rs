//! The load-time validator: a static checker over the parsed expression, kept apart from the
//! evaluator as Cedar keeps its validator apart from its evaluator.
//!
//! The `cel` crate parses and interprets but has no type checker, so this module checks the parsed
//! expression itself: the variables in scope are exactly `principal`, `resource`, `action` and
//! `context`; the fields of `principal` and `resource` are fixed; only the functions of
//! [`FUNCTIONS`] may be called, each of them one the interpreter's environment registers (a unit test
//! holds the two together, and names in [`REFUSED`] what it registers that conditions may not call);
//! and a small type inference rejects expressions that cannot be boolean and obvious operand
//! mismatches between known types. It also refuses what would cost too much: a `matches` pattern from
//! the request, and comprehensions nested deeper than [`MAX_COMPREHENSION_NESTING`].
//!
//! It never evaluates anything.

mod limits;
mod operators;
#[cfg(test)]
mod tests;
mod types;

use ::cel::Program;
use ::cel::common::ast::{
    CallExpr, ComprehensionExpr, EntryExpr, Expr, IdedExpr, ListExpr, LiteralValue, MapExpr,
    SelectExpr,
};

use super::{CelError, MAX_COMPREHENSION_NESTING, Position};
use types::{Object, Ty, one_of};

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

/// How a function is called: `f(x)` or `x.f()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Global,
    Member,
}

/// How the checker types a call of an allowed function.
#[derive(Debug)]
enum Typing {
    /// `size(x)` or `x.size()`: the length of a string, bytes, a list or a map.
    Size,
    /// `matches(text, pattern)`.
    Matches,
    /// `text.f(string)`, a bool: `contains`, `startsWith`, `endsWith`, `matches`.
    StringTest,
    /// `f(x)`, a conversion of a value of one of `from` into a `to`.
    Convert { from: &'static [Ty], to: Ty },
    /// `type(x)`: the type of any value.
    TypeOf,
    /// `dyn(x)`: any value, its static type forgotten.
    Dyn,
    /// `timestamp.f()` or `timestamp.f(time_zone)`: a calendar field, an int.
    DatePart,
    /// `timestamp.f()`, `timestamp.f(time_zone)` or `duration.f()`: a clock field, an int.
    TimePart,
}

/// A function conditions may call.
#[derive(Debug)]
struct Function {
    name: &'static str,
    style: Style,
    typing: Typing,
}

const fn function(name: &'static str, style: Style, typing: Typing) -> Function {
    Function {
        name,
        style,
        typing,
    }
}

/// A conversion `name(x)` of a value of one of `from` into a `to`.
const fn convert(name: &'static str, from: &'static [Ty], to: Ty) -> Function {
    function(name, Style::Global, Typing::Convert { from, to })
}

/// The conversions' argument types: those the standard library has an overload for.
const TO_INT: &[Ty] = &[Ty::Int, Ty::Uint, Ty::Double, Ty::String, Ty::Timestamp];
const TO_UINT: &[Ty] = &[Ty::Int, Ty::Uint, Ty::Double, Ty::String];
const TO_DOUBLE: &[Ty] = &[Ty::Int, Ty::Uint, Ty::Double, Ty::String];
const TO_STRING: &[Ty] = &[
    Ty::Int,
    Ty::Uint,
    Ty::Double,
    Ty::String,
    Ty::Bool,
    Ty::Bytes,
    Ty::Timestamp,
    Ty::Duration,
];
const TO_BOOL: &[Ty] = &[Ty::Bool, Ty::String];
const TO_BYTES: &[Ty] = &[Ty::Bytes, Ty::String];
const TO_TIMESTAMP: &[Ty] = &[Ty::Timestamp, Ty::String, Ty::Int];
const TO_DURATION: &[Ty] = &[Ty::Duration, Ty::String];

/// Every function a condition may call, the one list the checker reads: a call to anything else is
/// an unknown function. Each is one the interpreter's environment registers, called the same way (the
/// `functions_the_checker_allows_are_registered` test holds the two together across upgrades of the
/// `cel` crate).
const FUNCTIONS: &[Function] = &[
    function("size", Style::Global, Typing::Size),
    function("matches", Style::Global, Typing::Matches),
    convert("int", TO_INT, Ty::Int),
    convert("uint", TO_UINT, Ty::Uint),
    convert("double", TO_DOUBLE, Ty::Double),
    convert("string", TO_STRING, Ty::String),
    convert("bool", TO_BOOL, Ty::Bool),
    convert("bytes", TO_BYTES, Ty::Bytes),
    convert("timestamp", TO_TIMESTAMP, Ty::Timestamp),
    convert("duration", TO_DURATION, Ty::Duration),
    function("dyn", Style::Global, Typing::Dyn),
    function("type", Style::Global, Typing::TypeOf),
    function("contains", Style::Member, Typing::StringTest),
    function("startsWith", Style::Member, Typing::StringTest),
    function("endsWith", Style::Member, Typing::StringTest),
    function("matches", Style::Member, Typing::StringTest),
    function("size", Style::Member, Typing::Size),
    function("getFullYear", Style::Member, Typing::DatePart),
    function("getMonth", Style::Member, Typing::DatePart),
    function("getDayOfYear", Style::Member, Typing::DatePart),
    function("getDayOfMonth", Style::Member, Typing::DatePart),
    function("getDate", Style::Member, Typing::DatePart),
    function("getDayOfWeek", Style::Member, Typing::DatePart),
    function("getHours", Style::Member, Typing::TimePart),
    function("getMinutes", Style::Member, Typing::TimePart),
    function("getSeconds", Style::Member, Typing::TimePart),
    function("getMilliseconds", Style::Member, Typing::TimePart),
];

/// Why the optional library is refused.
const NO_OPTIONALS: &str = "optional values: the optional syntax is turned off, and the input holds plain JSON values, never optionals";

/// Functions the interpreter's environment registers that a condition may not call, with the reason:
/// the checker reports a call to one of them as an unknown function. A `matches` pattern taken from
/// the request is refused apart, by [`limits::regex_from_input`]: the function itself is allowed.
#[cfg_attr(
    not(test),
    expect(
        dead_code,
        reason = "the checker refuses these as it refuses any name not in FUNCTIONS; the tests read them"
    )
)]
const REFUSED: &[(&str, Style, &str)] = &[
    ("optional.of", Style::Global, NO_OPTIONALS),
    ("optional.ofNonZeroValue", Style::Global, NO_OPTIONALS),
    ("optional.none", Style::Global, NO_OPTIONALS),
    ("hasValue", Style::Member, NO_OPTIONALS),
    ("value", Style::Member, NO_OPTIONALS),
    ("or", Style::Member, NO_OPTIONALS),
    ("orValue", Style::Member, NO_OPTIONALS),
];

/// What the evaluation cost model needs of a checked expression.
pub(super) struct Shape {
    /// Expression nodes.
    pub(super) nodes: u64,
    /// How deeply comprehensions nest.
    pub(super) nesting: u32,
}

/// Checks a parsed condition: well typed, boolean, no `matches` pattern from the request, and
/// comprehensions nested at most [`MAX_COMPREHENSION_NESTING`] deep.
pub(super) fn check(program: &Program) -> Result<Shape, CelError> {
    let mut checker = Checker {
        program,
        scope: Vec::new(),
    };
    let ty = checker.check(program.expression())?;
    if !matches!(ty, Ty::Bool | Ty::Dyn) {
        return Err(CelError::NotBoolean {
            found: ty.to_string(),
        });
    }
    if let Some(id) = limits::regex_from_input(program.expression()) {
        return Err(CelError::Unsupported {
            what: "matches() takes a literal pattern: a pattern from the request would be compiled on every evaluation".to_owned(),
            position: checker.position(id),
        });
    }
    let (nodes, nesting) = limits::shape(program.expression());
    if nesting > MAX_COMPREHENSION_NESTING {
        return Err(CelError::TooLarge {
            what: format!(
                "comprehensions nest {nesting} deep, at most {MAX_COMPREHENSION_NESTING} are allowed"
            ),
        });
    }
    Ok(Shape { nodes, nesting })
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
            Expr::List(list) => self.list(list),
            Expr::Map(map) => self.map(expr.id, map),
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

    /// A list literal: a list of its elements' common type.
    fn list(&mut self, list: &ListExpr) -> Result<Ty, CelError> {
        let mut element: Option<Ty> = None;
        for item in &list.elements {
            let ty = self.check(item)?;
            element = Some(element.map_or(ty.clone(), |e| e.join(&ty)));
        }
        Ok(Ty::List(Box::new(element.unwrap_or(Ty::Dyn))))
    }

    /// A map literal: a map of its keys' and values' common types.
    fn map(&mut self, id: u64, map: &MapExpr) -> Result<Ty, CelError> {
        let mut key_ty: Option<Ty> = None;
        let mut value_ty: Option<Ty> = None;
        for entry in &map.entries {
            let EntryExpr::MapEntry(entry) = &entry.expr else {
                return Err(CelError::Unsupported {
                    what: "a field initializer in a map".to_owned(),
                    position: self.position(id),
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
        let site = CallSite {
            checker: self,
            id,
            name,
            args: &args,
        };
        let style = if target.is_some() {
            Style::Member
        } else {
            Style::Global
        };
        match FUNCTIONS
            .iter()
            .find(|function| function.name == name && function.style == style)
        {
            Some(function) => site.typing(&function.typing, target),
            None => Err(CelError::UnknownFunction {
                name: name.to_owned(),
                position: site.position(),
            }),
        }
    }
}

/// A call of a function of [`FUNCTIONS`], its target and arguments checked: what its typing needs to
/// report a mismatch where the call is.
struct CallSite<'c, 'p> {
    checker: &'c Checker<'p>,
    id: u64,
    name: &'c str,
    args: &'c [Ty],
}

impl CallSite<'_, '_> {
    fn position(&self) -> Option<Position> {
        self.checker.call_position(self.id, self.name)
    }

    fn arity(&self, expected: &'static str, ok: bool) -> Result<(), CelError> {
        if ok {
            Ok(())
        } else {
            Err(CelError::WrongArgumentCount {
                name: self.name.to_owned(),
                expected,
                found: self.args.len(),
                position: self.position(),
            })
        }
    }

    fn mismatch(&self, ty: &Ty) -> CelError {
        let name = self.name;
        CelError::Mismatch {
            message: format!("function '{name}' does not apply to {ty}"),
            position: self.position(),
        }
    }

    fn expect(&self, ty: &Ty, allowed: &[Ty]) -> Result<(), CelError> {
        if one_of(ty, allowed) {
            Ok(())
        } else {
            Err(self.mismatch(ty))
        }
    }

    /// Argument `i`'s type; `dyn` for a missing optional one.
    fn arg(&self, i: usize) -> Ty {
        self.args.get(i).cloned().unwrap_or(Ty::Dyn)
    }

    /// The type of the call, typed as `typing` says; `target` is `None` for a global call.
    fn typing(&self, typing: &Typing, target: Option<Ty>) -> Result<Ty, CelError> {
        let sized = |ty: &Ty| {
            matches!(
                ty,
                Ty::Dyn | Ty::String | Ty::Bytes | Ty::List(_) | Ty::Map(..) | Ty::Object(_)
            )
        };
        let args = self.args.len();
        match (typing, target) {
            (Typing::Size, None) => {
                self.arity("1 argument", args == 1)?;
                let ty = self.arg(0);
                if !sized(&ty) {
                    return Err(self.mismatch(&ty));
                }
                Ok(Ty::Int)
            }
            (Typing::Size, Some(target)) => {
                self.arity("no argument", args == 0)?;
                if !sized(&target) {
                    return Err(self.mismatch(&target));
                }
                Ok(Ty::Int)
            }
            (Typing::Matches, _) => {
                self.arity("2 arguments", args == 2)?;
                self.expect(&self.arg(0), &[Ty::String])?;
                self.expect(&self.arg(1), &[Ty::String])?;
                Ok(Ty::Bool)
            }
            (Typing::Convert { from, to }, _) => {
                self.arity("1 argument", args == 1)?;
                self.expect(&self.arg(0), from)?;
                Ok(to.clone())
            }
            (Typing::TypeOf, _) => {
                self.arity("1 argument", args == 1)?;
                Ok(Ty::Type)
            }
            (Typing::Dyn, _) => {
                self.arity("1 argument", args == 1)?;
                Ok(Ty::Dyn)
            }
            (Typing::StringTest, target) => {
                self.arity("1 argument", args == 1)?;
                self.expect(&target.unwrap_or(Ty::Dyn), &[Ty::String])?;
                self.expect(&self.arg(0), &[Ty::String])?;
                Ok(Ty::Bool)
            }
            (Typing::DatePart, target) => {
                self.arity("at most 1 argument (a time zone)", args <= 1)?;
                self.expect(&target.unwrap_or(Ty::Dyn), &[Ty::Timestamp])?;
                self.expect(&self.arg(0), &[Ty::String])?;
                Ok(Ty::Int)
            }
            (Typing::TimePart, target) => {
                let target = target.unwrap_or(Ty::Dyn);
                if target == Ty::Duration {
                    self.arity("no argument on a duration", args == 0)?;
                } else {
                    self.arity("at most 1 argument (a time zone)", args <= 1)?;
                }
                self.expect(&target, &[Ty::Timestamp, Ty::Duration])?;
                self.expect(&self.arg(0), &[Ty::String])?;
                Ok(Ty::Int)
            }
        }
    }
}
