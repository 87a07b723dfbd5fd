use std::sync::Arc;

use ::cel::{Context, ExecutionError};

use super::super::eval::ENV;
use super::super::fixtures::compile_error;
use super::super::{CelCondition, CelError, Position};
use super::types::Ty;
use super::{FUNCTIONS, REFUSED, Style, Typing};

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
        "unknown field 'name' of principal at column 11: principal has id, kind, roles, groups, channel_roles, claims, issuer"
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

/// The names of the CEL functions known here, kept apart from [`FUNCTIONS`] and [`REFUSED`] so that
/// dropping a name from either makes [`registered_functions_are_allowed_or_refused`] fail: those of
/// the specification's standard definitions, of its optional library, and of the common extensions.
/// Each is probed both ways, as a global function and as a method.
const CEL_FUNCTIONS: &[&str] = &[
    "size",
    "matches",
    "int",
    "uint",
    "double",
    "string",
    "bool",
    "bytes",
    "timestamp",
    "duration",
    "dyn",
    "type",
    "contains",
    "startsWith",
    "endsWith",
    "getFullYear",
    "getMonth",
    "getDayOfYear",
    "getDayOfMonth",
    "getDate",
    "getDayOfWeek",
    "getHours",
    "getMinutes",
    "getSeconds",
    "getMilliseconds",
    "optional.of",
    "optional.ofNonZeroValue",
    "optional.none",
    "hasValue",
    "value",
    "or",
    "orValue",
    "charAt",
    "indexOf",
    "lastIndexOf",
    "lowerAscii",
    "upperAscii",
    "replace",
    "split",
    "substring",
    "trim",
    "join",
    "format",
    "quote",
    "strings.quote",
    "reverse",
    "distinct",
    "flatten",
    "slice",
    "sort",
    "sortBy",
    "first",
    "last",
    "lists.range",
    "math.greatest",
    "math.least",
    "math.abs",
    "math.ceil",
    "math.floor",
    "math.round",
    "math.sign",
    "math.trunc",
    "math.sqrt",
    "math.isNaN",
    "math.isInf",
    "math.isFinite",
    "math.bitAnd",
    "math.bitOr",
    "math.bitXor",
    "math.bitNot",
    "math.bitShiftLeft",
    "math.bitShiftRight",
    "sets.contains",
    "sets.equivalent",
    "sets.intersects",
    "base64.encode",
    "base64.decode",
    "cel.bind",
    "getTimezone",
    "list",
    "null_type",
    "optional.unwrap",
    "optMap",
    "optFlatMap",
];

/// A call of `name`, as `style` says, with literal `null` arguments.
fn probe(name: &str, style: Style, arguments: usize) -> String {
    let arguments = vec!["null"; arguments].join(", ");
    match style {
        Style::Global => format!("{name}({arguments})"),
        Style::Member => format!("null.{name}({arguments})"),
    }
}

/// Whether the interpreter's environment, the one evaluation runs in, has a function `name` called
/// as `style` says: calling it with whatever arguments fails with anything but "undeclared
/// reference" to it (or to its namespace, for `math.greatest`).
fn registered(name: &str, style: Style) -> bool {
    let source = probe(name, style, 1);
    let program = match ENV.compile(&source) {
        Ok(program) => program,
        Err(errors) => panic!("probe {source} does not parse: {errors:?}"),
    };
    let context = Context::with_env(Arc::clone(&ENV));
    match program.execute(&context) {
        Err(ExecutionError::UndeclaredReference(undeclared)) => {
            let namespace = name.split_once('.').map(|(namespace, _)| namespace);
            !(undeclared.as_str() == name || Some(undeclared.as_str()) == namespace)
        }
        _ => true,
    }
}

#[test]
fn functions_the_checker_allows_are_registered() {
    for function in FUNCTIONS {
        assert!(
            registered(function.name, function.style),
            "the checker allows {} ({:?}), which the interpreter's environment does not register",
            function.name,
            function.style
        );
    }
}

#[test]
fn conversions_the_checker_allows_have_overloads() {
    let sample = |ty: &Ty| match ty {
        Ty::Int => "1",
        Ty::Uint => "1u",
        Ty::Double => "1.0",
        Ty::String => "'1'",
        Ty::Bool => "true",
        Ty::Bytes => "b'1'",
        Ty::Timestamp => "timestamp(0)",
        Ty::Duration => "duration('1s')",
        other => panic!("no sample of {other}"),
    };
    let context = Context::with_env(Arc::clone(&ENV));
    for function in FUNCTIONS {
        let Typing::Convert { from, .. } = &function.typing else {
            continue;
        };
        for ty in *from {
            let source = format!("{}({})", function.name, sample(ty));
            let Ok(program) = ENV.compile(&source) else {
                panic!("{source} does not parse");
            };
            assert!(
                !matches!(
                    program.execute(&context),
                    Err(ExecutionError::NoSuchOverload(_))
                ),
                "the checker lets {} convert a {ty}, which the interpreter has no overload for",
                function.name
            );
        }
    }
}

#[test]
fn refused_functions_are_registered_and_refused() {
    for (name, style, reason) in REFUSED {
        assert!(!reason.is_empty());
        assert!(
            registered(name, *style),
            "{name} ({style:?}) is refused but not registered: drop it from REFUSED"
        );
        let source = format!("{} == null", probe(name, *style, 0));
        assert!(
            matches!(
                CelCondition::compile(&source),
                Err(CelError::UnknownFunction { .. })
            ),
            "{source}: {:?}",
            CelCondition::compile(&source)
        );
    }
}

#[test]
fn registered_functions_are_allowed_or_refused() {
    for &name in CEL_FUNCTIONS {
        for style in [Style::Global, Style::Member] {
            if style == Style::Member && name.contains('.') {
                // `x.math.abs()` would call `abs` on `x.math`: a method's name has no namespace.
                continue;
            }
            let allowed = FUNCTIONS
                .iter()
                .any(|function| function.name == name && function.style == style);
            let refused = REFUSED.iter().any(|(n, s, _)| *n == name && *s == style);
            assert!(
                allowed || refused || !registered(name, style),
                "the interpreter's environment registers {name} ({style:?}), which the checker \
                 neither allows (FUNCTIONS) nor refuses with a reason (REFUSED)"
            );
        }
    }
}
