use super::super::fixtures::compile_error;
use super::super::{CelCondition, CelError, Position};

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
