//! Load-time limits read off the parsed expression: its size and how deeply comprehensions nest (the
//! cost model of [`EVALUATION_BUDGET`](super::super::EVALUATION_BUDGET)), and `matches` calls whose
//! pattern would come from the request.

use ::cel::common::ast::{EntryExpr, Expr, IdedExpr};

/// The id of a `matches` call whose pattern is not a literal, if any.
pub(super) fn regex_from_input(expr: &IdedExpr) -> Option<u64> {
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
pub(super) fn shape(expr: &IdedExpr) -> (u64, u32) {
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
