//! What `gatehouse validate` tells a person who made mistakes: every one of a file's errors in one run,
//! each at the line to fix, naming the item, with a "did you mean" hint where a name is misspelt;
//! and warnings (a role used once and spelt like another) printed after the ok line, exit code 0.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use crate::common;

use std::path::Path;

/// A document editor's policy with ten mistakes, each line marked `# mistake N`. Mistake 9 is a typo
/// inside a named policy that a permission names (the permission is not reported too), mistake 3 a
/// field indented into `when` (one error, not one for the rule and one for `when`).
const TEN_MISTAKES: &str = r#"resources:
  - kind: document
    owner: attributes.owner
    actions: [read, edit, delete]

lists:
  reviewers: [ann]

policies:
  - name: editors
    type: role
    rols: [editor] # mistake 9

rules:
  - name: editors-write
    efect: allow # mistake 1
    resource: document
    actions: [edit]
    when:
      roles: [editor]
  - name: editors-delete
    effect: allow
    resource: document
    acions: [delete] # mistake 2
    when:
      roles: [editor]
  - name: misindented
    effect: allow
    actions: [read]
    when:
      roles: [editor]
      resource: document # mistake 3
  - name: wrong-kind
    effect: allow
    resource: documnet # mistake 4
    actions: [read]
  - name: wrong-action
    effect: allow
    resource: document
    actions: [delet] # mistake 5
  - name: reviewers-read
    effect: allow
    resource: document
    actions: [read]
    when:
      in: { principal.id: $reviewer } # mistake 6
  - name: wrong-kind # mistake 7
    effect: deny
    resource: document
    actions: [edit]
  - name: bad-cel
    effect: allow
    resource: document
    actions: [read]
    when:
      cel: "principal.id ==" # mistake 8

permissions:
  - name: edit-docs
    type: resource
    resource: document
    policies: [editors]

routes:
  - name: doc-read # mistake 10
    methods: [GET]
    path: /docs/{doc}
    resource: document
    id: "{dok}"
    action: read
"#;

/// The 1-based line marked `# mistake n`.
fn marked(text: &str, n: usize) -> usize {
    let marker = format!("# mistake {n}");
    text.lines()
        .position(|l| l.trim_end().ends_with(&marker))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no {marker}"))
}

/// Runs `gatehouse validate` on a directory holding `rules.yaml`.
fn validate(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), text).unwrap();
    validate_dir(dir.path())
}

fn validate_dir(dir: &Path) -> (Option<i32>, String, String) {
    let out = common::gatehouse_command()
        .arg("validate")
        .arg(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Every reported error line as (line, message), for `rules.yaml`.
fn reported(stderr: &str) -> Vec<(usize, String)> {
    stderr
        .lines()
        .map(|l| l.strip_prefix("gatehouse: ").unwrap_or(l))
        .filter_map(|l| l.strip_prefix("rules.yaml:"))
        .map(|l| {
            let (line, message) = l.split_once(": ").unwrap();
            (line.parse().unwrap(), message.to_owned())
        })
        .collect()
}

#[test]
fn ten_mistakes_are_reported_in_one_run_each_at_its_line() {
    let (code, stdout, stderr) = validate(TEN_MISTAKES);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    let errors = reported(&stderr);
    let expected = [
        (
            1,
            "rule 'editors-write': unknown field 'efect' (did you mean 'effect'?)",
        ),
        (
            2,
            "rule 'editors-delete': unknown field 'acions' (did you mean 'actions'?)",
        ),
        (
            3,
            "rule 'misindented': 'resource:' at line 32 is inside 'when' (indented 6 columns); the rule's fields are at 4, so the rule has no 'resource'",
        ),
        (
            4,
            "rule 'wrong-kind': resource kind 'documnet' is not declared under resources (did you mean 'document'?)",
        ),
        (
            5,
            "rule 'wrong-action': kind 'document' declares no action 'delet' (did you mean 'delete'?)",
        ),
        (
            6,
            "rule 'reviewers-read': list 'reviewer' is not defined (did you mean 'reviewers'?)",
        ),
        (
            7,
            "rule 'wrong-kind': 'wrong-kind' is defined twice, first at rules.yaml:33",
        ),
        (8, "rule 'bad-cel': "),
        (
            9,
            "policy 'editors': unknown field 'rols' (did you mean 'roles'?)",
        ),
        (10, "route 'doc-read': route: "),
    ];
    for (n, fragment) in expected {
        let line = marked(TEN_MISTAKES, n);
        assert!(
            errors
                .iter()
                .any(|(l, m)| *l == line && m.contains(fragment)),
            "mistake {n} at line {line} ('{fragment}') is not reported:\n{stderr}"
        );
    }
    // Nothing else: exactly one error for each mistake, at its marked line.
    assert_eq!(errors.len(), 10, "{stderr}");
    let lines: Vec<usize> = (1..=10).map(|n| marked(TEN_MISTAKES, n)).collect();
    for (line, message) in &errors {
        assert!(
            lines.contains(line),
            "unexpected error at {line}: {message}\n{stderr}"
        );
    }
    assert_eq!(
        stderr.lines().filter(|l| !l.trim().is_empty()).count(),
        errors.len(),
        "every line names rules.yaml and a line:\n{stderr}"
    );
}

#[test]
fn a_misindented_field_outside_its_rule_points_at_that_line() {
    let text = "rules:\n- name: r\n  effect: allow\n  actions: [read]\nresource: doc\nresources:\n  - kind: doc\n    actions: [read]\n";
    let (code, _, stderr) = validate(text);
    assert_eq!(code, Some(1), "{stderr}");
    let errors = reported(&stderr);
    // One mistake, one error: the stray key is not also an unknown section.
    assert_eq!(
        errors,
        [(
            5,
            "rule 'r': 'resource:' at line 5 is at the top level of the file (indented 0 columns); the rule's fields are at 2, so the rule has no 'resource'".to_owned()
        )],
        "{stderr}"
    );
}

#[test]
fn a_role_used_once_and_spelt_like_another_is_a_warning_and_validation_passes() {
    let text = r#"resources:
  - kind: document
    actions: [read, edit]
rules:
  - name: read
    effect: allow
    resource: document
    actions: [read]
    when:
      roles: [editor, viewer]
  - name: edit
    effect: allow
    resource: document
    actions: [edit]
    when:
      roles: [editr]
  - name: edit-too
    effect: allow
    resource: document
    actions: [edit]
    when:
      roles: [editor]
"#;
    let (code, stdout, stderr) = validate(text);
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("ok:"), "{stdout}");
    assert_eq!(
        lines[1..],
        [
            "warning: rules.yaml:16: rule 'edit': role 'editr' is used nowhere else (did you mean 'editor'?)"
        ],
        "{stdout}"
    );
}

#[test]
fn an_undeclared_action_of_a_rule_over_every_kind_is_an_error_with_a_hint() {
    let text = r#"resources:
  - kind: document
    actions: [read, delete]
rules:
  - name: admins
    effect: allow
    resource: "*"
    actions: [delet]
    when:
      roles: [admin]
"#;
    let (code, _, stderr) = validate(text);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        reported(&stderr),
        [(
            8,
            "rule 'admins': no resource kind declares action 'delet' (did you mean 'delete'?)"
                .to_owned()
        )]
    );
}

#[test]
fn a_key_indented_too_far_is_a_syntax_error_with_the_indentation_of_both_lines() {
    let text = "resources:\n  - kind: doc\n    actions: [read]\nrules:\n  - name: r\n    effect: allow\n      resource: doc\n    actions: [read]\n";
    let (code, _, stderr) = validate(text);
    assert_eq!(code, Some(1), "{stderr}");
    let errors = reported(&stderr);
    assert_eq!(errors.len(), 1, "{stderr}");
    assert_eq!(errors[0].0, 7, "{stderr}");
    assert!(
        errors[0].1.contains(
            "(line 7 is indented 6 columns, more than line 6 above it (4): keys of one item line up"
        ),
        "{stderr}"
    );
}
