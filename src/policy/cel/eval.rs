//! Running a compiled condition on one request: the interpreter's environment, the cost estimate
//! that stops a condition over [`EVALUATION_BUDGET`] before it runs, and the translation of the
//! interpreter's errors into messages that never quote request values.
//!
//! Load-time checking is `check`'s job and the conversion of the input `value`'s: this module only
//! runs what they produced.

use std::sync::{Arc, LazyLock};

use ::cel::common::types::CelString;
use ::cel::{Context, Env, ExecutionError, Value};
use serde_json::Value as Json;

use super::value::{project, project_object};
use super::{CelCondition, CelInput, EVALUATION_BUDGET};

/// The interpreter's environment: the standard library, without the optional syntax (`a.?b`).
/// Built once: building it registers every standard overload. Conditions are parsed with it too,
/// for its macros (`all`, `exists`, ...).
pub(super) static ENV: LazyLock<Arc<Env>> =
    LazyLock::new(|| Arc::new(Env::stdlib().with_optional_support(false)));

impl CelCondition {
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{context, eval, principal, resource};
    use super::super::{CelCondition, CelInput};

    #[test]
    fn ownership() {
        assert_eq!(
            eval("resource.attributes.author_id == principal.id"),
            Ok(true)
        );
        assert_eq!(eval("resource.captures.owner != principal.id"), Ok(false));
    }

    #[test]
    fn issuer() {
        assert_eq!(
            eval("principal.issuer == 'https://sso.example.com/realms/bank'"),
            Ok(true)
        );
        assert_eq!(
            eval("principal.issuer.startsWith('https://other')"),
            Ok(false)
        );
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
    fn shadowed_variables_evaluate() {
        assert_eq!(
            eval("principal.roles.exists(principal, principal == 'user')"),
            Ok(true)
        );
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
