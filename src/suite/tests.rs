#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use super::*;
use crate::policy::compile;

const POLICY: &str = r#"
resources:
  - kind: doc
    actions: [read, delete]
rules:
  - name: read-docs
    effect: allow
    resource: doc
    actions: [read]
routes:
  - name: doc-read
    methods: [GET]
    path: /docs/{id}
    resource: doc
    id: "{id}"
    action: read
  - name: health
    methods: [GET]
    path: /health
    public: true
"#;

fn set() -> PolicySet {
    let source = Source {
        path: "policy.yaml".into(),
        text: POLICY.into(),
    };
    compile(&[source], &BTreeMap::new()).unwrap()
}

fn suite(text: &str) -> Source {
    Source {
        path: "s_test.yaml".into(),
        text: text.into(),
    }
}

#[test]
fn every_bad_test_is_reported_with_its_line_and_the_good_ones_still_read() {
    let text = "principals:\n  jack: { id: jack }\ntests:\n  - name: a\n    principal: jak\n    resource: { kind: doc, id: d }\n    action: read\n    expect: allow\n  - name: b\n    principal: jack\n    resource: { kind: doc, id: d }\n    action: read\n    expect: perhaps\n  - name: c\n    principal: jack\n    resource: { kind: doc, id: d }\n    action: read\n    expect: allow\n";
    let errors = parse_suite(&suite(text)).unwrap_err().0;
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "s_test.yaml:5: test 'a': principal 'jak' is not defined (did you mean 'jack'?)",
            "s_test.yaml:13: test 'b': expect must be allow or deny, not 'perhaps'",
        ]
    );
    let (read, _) = parse::read_suite(&suite(text));
    assert_eq!(read.cases.len(), 1);
    assert_eq!(read.cases[0].name, "c");
    assert_eq!(read.cases[0].line, Some(14));
}

#[test]
fn a_rule_the_set_does_not_have_is_an_error_with_a_hint_and_built_in_names_are_known() {
    let text = "tests:\n  - name: typo\n    principal: { id: jack }\n    resource: { kind: doc, id: d }\n    action: read\n    expect: allow\n    rule: read-doc\n  - name: builtin\n    principal: { id: jack }\n    resource: { kind: doc, id: d }\n    action: delete\n    expect: deny\n    rule: default-deny\n  - name: public\n    request: { method: GET, path: /health }\n    expect: allow\n    rule: public-route:health\n";
    let errors = check(&set(), &[suite(text)]).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, Some(7));
    assert!(
        errors[0].message.ends_with("(did you mean 'read-docs'?)"),
        "{}",
        errors[0].message
    );
    assert!(run(&set(), &[suite(text)], 0).is_err());
}

#[test]
fn request_cases_run_through_the_doors_with_a_minted_token() {
    let text = "tests:\n  - name: jack reads\n    principal: { id: jack }\n    request: { method: GET, path: /docs/d1 }\n    expect: allow\n    status: 200\n    rule: read-docs\n    upstream_headers: { x-gatehouse-user-id: jack, x-gatehouse-dry-run: \"\" }\n  - name: nginx too\n    door: nginx\n    principal: { id: jack }\n    request: { method: GET, path: /docs/d1 }\n    expect: allow\n  - name: no token\n    door: traefik\n    request: { method: GET, path: /docs/d1 }\n    expect: deny\n    status: 401\n  - name: no route\n    door: envoy-http\n    principal: { id: jack }\n    request: { method: DELETE, path: /docs/d1 }\n    expect: deny\n    status: 403\n";
    let report = run(&set(), &[suite(text)], crate::token::unix_now()).unwrap();
    assert_eq!(report.failures, []);
    assert_eq!(report.passed, 4);
}

#[test]
fn a_wrong_expectation_fails_saying_what_was_expected_and_what_came() {
    let text = "tests:\n  - name: wrong\n    principal: { id: jack }\n    request: { method: GET, path: /docs/d1 }\n    expect: deny\n    status: 403\n";
    let report = run(&set(), &[suite(text)], crate::token::unix_now()).unwrap();
    assert_eq!(report.passed, 0);
    let failure = &report.failures[0];
    assert_eq!(failure.line, Some(2));
    assert!(
        failure
            .message
            .starts_with("expected deny, got allow; expected status 403, got 200 (door envoy"),
        "{}",
        failure.message
    );
}

#[test]
fn request_and_engine_fields_do_not_mix() {
    let text = "tests:\n  - name: mixed\n    principal: { id: jack }\n    request: { method: GET, path: /docs/d1 }\n    action: read\n    expect: allow\n  - name: engine\n    principal: { id: jack }\n    resource: { kind: doc }\n    action: read\n    door: nginx\n    expect: allow\n";
    let errors = parse_suite(&suite(text)).unwrap_err().0;
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].message.contains("not action"));
    assert!(errors[1].message.contains("door is for request cases only"));
}

#[test]
fn a_suite_is_refused_before_parsing_when_its_nesting_would_make_parsing_costly() {
    let deep = format!("tests: {}{}\n", "[".repeat(5_000), "]".repeat(5_000));
    let errors = parse_suite(&suite(&deep)).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].message.contains("brackets nest deeper"),
        "{errors:?}"
    );
    let indented = format!("tests:\n{}- a\n", " ".repeat(1_000));
    let errors = parse_suite(&suite(&indented)).unwrap_err().0;
    assert!(
        errors[0].message.contains("indented more than"),
        "{errors:?}"
    );
}

#[test]
fn a_principal_role_the_set_never_names_but_spells_alike_is_a_warning() {
    let policy = "resources:\n  - kind: doc\n    actions: [read]\nrules:\n  - name: editors-read\n    effect: allow\n    resource: doc\n    actions: [read]\n    when:\n      roles: [editor]\n      groups: [staff]\n";
    let set = compile(
        &[Source {
            path: "p.yaml".into(),
            text: policy.into(),
        }],
        &BTreeMap::new(),
    )
    .unwrap();
    let text = "principals:\n  ed: { id: ed, roles: [editr], groups: [staf] }\n  guest: { id: g, roles: [guest] }\ntests:\n  - name: first\n    principal: ed\n    resource: { kind: doc }\n    action: read\n    expect: deny\n  - name: again\n    principal: ed\n    resource: { kind: doc }\n    action: read\n    expect: deny\n  - name: a role no rule grants, on purpose\n    principal: guest\n    resource: { kind: doc }\n    action: read\n    expect: deny\n";
    let checked = check(&set, &[suite(text)]).unwrap();
    let warnings = principal_warnings(&set, &checked);
    let messages: Vec<(Option<usize>, &str)> = warnings
        .iter()
        .map(|w| (w.line, w.message.as_str()))
        .collect();
    assert_eq!(
        messages,
        [
            (
                Some(5),
                "test 'first': the principal's role 'editr' is named by no rule or policy of the set (did you mean 'editor'?)"
            ),
            (
                Some(5),
                "test 'first': the principal's group 'staf' is named by no rule or policy of the set (did you mean 'staff'?)"
            ),
        ],
        "one warning per name, none for a role that is like nothing the set names"
    );
}
