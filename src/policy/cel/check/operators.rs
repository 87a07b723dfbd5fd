//! The typing of operator calls: logic, comparison, arithmetic, `in`, indexing and `?:`.

use ::cel::common::ast::{CallExpr, Expr, IdedExpr, LiteralValue, operators};

use super::types::{Ty, arithmetic, one_of, operator_symbol};
use super::{CelError, Checker};

impl Checker<'_> {
    /// The type of an operator call, or `None` when `call` is not an operator.
    pub(super) fn operator(&mut self, id: u64, call: &CallExpr) -> Result<Option<Ty>, CelError> {
        let name = call.func_name.as_str();
        let ty = match call.args.as_slice() {
            [operand] => match name {
                operators::LOGICAL_NOT | operators::NEGATE | operators::NOT_STRICTLY_FALSE => {
                    self.unary(id, name, operand)?
                }
                _ => return Ok(None),
            },
            [left, right] => match name {
                operators::LOGICAL_AND | operators::LOGICAL_OR => {
                    self.logical(id, name, left, right)?
                }
                operators::EQUALS
                | operators::NOT_EQUALS
                | operators::LESS
                | operators::LESS_EQUALS
                | operators::GREATER
                | operators::GREATER_EQUALS => self.comparison(id, name, left, right)?,
                operators::ADD
                | operators::SUBSTRACT
                | operators::MULTIPLY
                | operators::DIVIDE
                | operators::MODULO => {
                    let (left, right) = (self.check(left)?, self.check(right)?);
                    let symbol = operator_symbol(name);
                    arithmetic(name, &left, &right).ok_or_else(|| {
                        self.mismatch(
                            id,
                            format!("operator '{symbol}' does not apply to {left} and {right}"),
                        )
                    })?
                }
                operators::IN => self.membership(id, left, right)?,
                operators::INDEX => self.index(id, left, right)?,
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

    /// `!x`, `-x`, and the `@not_strictly_false` the macros wrap their loop conditions in.
    fn unary(&mut self, id: u64, name: &str, operand: &IdedExpr) -> Result<Ty, CelError> {
        let ty = self.check(operand)?;
        match name {
            operators::LOGICAL_NOT => {
                if !one_of(&ty, &[Ty::Bool]) {
                    return Err(
                        self.mismatch(id, format!("operator '!' expects a bool, found {ty}"))
                    );
                }
                Ok(Ty::Bool)
            }
            operators::NEGATE => {
                if !one_of(&ty, &[Ty::Int, Ty::Double]) {
                    return Err(self.mismatch(id, format!("operator '-' does not apply to {ty}")));
                }
                Ok(ty)
            }
            _ => Ok(Ty::Bool),
        }
    }

    /// `&&` and `||`.
    fn logical(
        &mut self,
        id: u64,
        name: &str,
        left_expr: &IdedExpr,
        right_expr: &IdedExpr,
    ) -> Result<Ty, CelError> {
        let symbol = operator_symbol(name);
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
        Ok(Ty::Bool)
    }

    /// `==` and `!=`, which apply to values that may be equal, and `<`, `<=`, `>` and `>=`, which
    /// apply to values that can be ordered.
    fn comparison(
        &mut self,
        id: u64,
        name: &str,
        left: &IdedExpr,
        right: &IdedExpr,
    ) -> Result<Ty, CelError> {
        let left = self.check(left)?;
        let right = self.check(right)?;
        let comparable = if matches!(name, operators::EQUALS | operators::NOT_EQUALS) {
            left.may_equal(&right)
        } else {
            left.may_order(&right)
        };
        if !comparable {
            let symbol = operator_symbol(name);
            return Err(self.mismatch(
                id,
                format!("cannot compare {left} and {right} with '{symbol}'"),
            ));
        }
        Ok(Ty::Bool)
    }

    /// `element in container`, for a list or a map's keys.
    fn membership(
        &mut self,
        id: u64,
        element: &IdedExpr,
        container: &IdedExpr,
    ) -> Result<Ty, CelError> {
        let element = self.check(element)?;
        let container = self.check(container)?;
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
        Ok(Ty::Bool)
    }

    /// `container[index]`: a list's element, a map's value, or a field of `principal` or `resource`.
    fn index(
        &mut self,
        id: u64,
        container_expr: &IdedExpr,
        index_expr: &IdedExpr,
    ) -> Result<Ty, CelError> {
        let container = self.check(container_expr)?;
        let index = self.check(index_expr)?;
        let cannot_index = || self.mismatch(id, format!("cannot index {container} with {index}"));
        match &container {
            Ty::Dyn => Ok(Ty::Dyn),
            Ty::List(element) => {
                if !one_of(&index, &[Ty::Int, Ty::Uint, Ty::Double]) {
                    return Err(cannot_index());
                }
                Ok((**element).clone())
            }
            Ty::Object(object) => {
                if let Expr::Literal(LiteralValue::String(field)) = &index_expr.expr {
                    object
                        .field(field.inner())
                        .ok_or_else(|| CelError::UnknownField {
                            object: object.name(),
                            field: field.inner().to_owned(),
                            position: self.position(index_expr.id),
                        })
                } else if one_of(&index, &[Ty::String]) {
                    Ok(Ty::Dyn)
                } else {
                    Err(cannot_index())
                }
            }
            Ty::Map(key, value) => {
                if !index.may_equal(key) {
                    return Err(cannot_index());
                }
                Ok((**value).clone())
            }
            other => Err(self.mismatch(id, format!("cannot index {other}"))),
        }
    }
}
