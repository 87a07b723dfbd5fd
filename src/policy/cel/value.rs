//! What evaluation converts of the input: the parts of `principal`, `resource` and `context` an
//! expression can see ([`Uses`], collected at load time), turned into CEL values on each request
//! ([`project`]), borrowing the request's strings.
//!
//! Owns the JSON-to-CEL conversion; knows nothing of types or evaluation errors.

use std::collections::{BTreeMap, HashMap};

use ::cel::common::ast::{EntryExpr, Expr, IdedExpr};
use ::cel::common::types::{
    CelBool, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString, CelUInt,
};
use ::cel::common::value::Val;
use serde_json::{Map as JsonMap, Value as Json};

/// The part of a JSON value an expression can see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Projection {
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
pub(super) struct Uses {
    pub(super) principal: Option<Projection>,
    pub(super) resource: Option<Projection>,
    pub(super) action: bool,
    pub(super) context: Option<Projection>,
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
    pub(super) fn collect(&mut self, expr: &IdedExpr, shadowed: &mut Vec<String>) {
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
pub(super) fn project<'v>(value: &'v Json, projection: &Projection) -> Box<dyn Val + 'v> {
    match (value, projection) {
        (Json::Object(object), Projection::Fields(_)) => project_object(object, projection),
        _ => to_val(value),
    }
}

pub(super) fn project_object<'v>(
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
    use super::super::CelCondition;
    use super::super::fixtures::eval;
    use super::Projection;

    #[test]
    fn whole_values_are_visible() {
        assert_eq!(eval("size(principal.claims) == 2"), Ok(true));
        assert_eq!(
            eval("size(principal) == 7 && principal.id == 'jack'"),
            Ok(true)
        );
        assert_eq!(eval("principal['id'] == 'jack'"), Ok(true));
        assert_eq!(
            eval("[principal.id, resource.id].exists(x, x == 'm1')"),
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
}
