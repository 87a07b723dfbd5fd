//! The "Writing your first policy" walk-through of docs/policies.md, replayed: its marked YAML blocks
//! are written to a temporary directory in the order the doc gives them, and each marked output block's
//! `$ gatehouse ...` command is run with the real binary there; what it prints must be what the doc
//! shows (revisions, which differ on every run, are shown as `…`). So the doc stays true as the
//! product changes. The serve step's `check --explain` is asked of a real server on the doc's policy.
//!
//! Markers, each an HTML comment on the line before a fenced block:
//! `<!-- walkthrough: PATH -->` writes the block to PATH, `<!-- walkthrough-append: PATH -->` appends
//! it, `<!-- walkthrough-replace-last-test: PATH -->` replaces the suite's last test with it, and
//! `<!-- walkthrough-output: NAME -->` runs the block's first line and compares the rest.

use crate::common;

use std::fs;
use std::path::Path;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The typos the doc asks for before `validate-typo`, as (rule, right text, wrong text).
const TYPOS: [(&str, &str, &str); 2] = [
    (
        "editors-write",
        "resource: document\n",
        "resource: documnet\n",
    ),
    ("owners-delete", "effect: allow\n", "efect: allow\n"),
];

#[derive(Debug)]
enum Step {
    Write(String, String),
    Append(String, String),
    ReplaceLastTest(String, String),
    Output(String, String),
}

/// The marked blocks of the doc, in order.
fn steps(doc: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        let Some(marker) = line
            .strip_prefix("<!-- walkthrough")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let (kind, arg) = marker.split_once(": ").expect("a marker has ': ARG'");
        let fence = lines.next().expect("a block follows its marker");
        assert!(
            fence.starts_with("```"),
            "marker {marker:?} not followed by a fence"
        );
        let body: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        let body = body.join("\n") + "\n";
        let arg = arg.to_string();
        steps.push(match kind {
            "" => Step::Write(arg, body),
            "-append" => Step::Append(arg, body),
            "-replace-last-test" => Step::ReplaceLastTest(arg, body),
            "-output" => Step::Output(arg, body),
            other => panic!("unknown walkthrough marker {other:?}"),
        });
    }
    steps
}

/// A command line as a shell splits it: words, and single-quoted strings kept whole.
fn words(command: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut started = false;
    for c in command.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                started = true;
            }
            ' ' if !quoted => {
                if started {
                    words.push(std::mem::take(&mut word));
                }
                started = false;
            }
            _ => {
                word.push(c);
                started = true;
            }
        }
    }
    assert!(!quoted, "unbalanced quote in {command:?}");
    if started {
        words.push(word);
    }
    words
}

/// Every revision (16 lower-case hex digits standing alone) shown as `…`, as the doc shows it.
fn without_revisions(text: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    for c in text.chars().chain(std::iter::once('\n')) {
        if c.is_ascii_alphanumeric() {
            run.push(c);
            continue;
        }
        let revision = run.len() == 16 && run.chars().all(|r| matches!(r, '0'..='9' | 'a'..='f'));
        out.push_str(if revision { "…" } else { &run });
        run.clear();
        out.push(c);
    }
    out.pop();
    out
}

/// Runs the block's `$ gatehouse ...` line in `dir` and compares stdout then stderr with the rest.
fn run_and_compare(dir: &Path, name: &str, block: &str) {
    let (command, expected) = block
        .split_once('\n')
        .expect("a command line and its output");
    let command = command
        .strip_prefix("$ ")
        .unwrap_or_else(|| panic!("{name}: the block starts with '$ '"));
    let words = words(command);
    assert_eq!(words[0], "gatehouse", "{name}: runs gatehouse");
    let output = common::gatehouse_command()
        .args(&words[1..])
        .current_dir(dir)
        .output()
        .expect("run gatehouse");
    let printed = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        without_revisions(&printed).trim_end(),
        expected.trim_end(),
        "{name}: `{command}` prints what docs/policies.md shows"
    );
}

/// The rule's block of docs.yaml with `right` spelt `wrong`, as the doc's typo step asks.
fn with_typo(policy: &str, rule: &str, right: &str, wrong: &str) -> String {
    let start = policy
        .find(&format!("- name: {rule}\n"))
        .unwrap_or_else(|| panic!("rule {rule} in docs.yaml"));
    let at = start + policy[start..].find(right).expect("the word to misspell");
    format!("{}{wrong}{}", &policy[..at], &policy[at + right.len()..])
}

fn typo_step(dir: &Path, doc: &str, block: &str) {
    let path = dir.join("my-policies/docs.yaml");
    let right = fs::read_to_string(&path).unwrap();
    let mut wrong = right.clone();
    for (rule, good, bad) in TYPOS {
        assert!(
            doc.contains(&format!("`{}`", bad.trim_end())),
            "the doc asks for {bad:?}"
        );
        wrong = with_typo(&wrong, rule, good, bad);
    }
    fs::write(&path, wrong).unwrap();
    run_and_compare(dir, "validate-typo", block);
    fs::write(&path, right).unwrap();
}

fn replace_last_test(suite: &str, test: &str) -> String {
    let last = suite.rfind("\n  - name: ").expect("a suite with tests");
    format!("{}\n{test}", &suite[..last])
}

#[test]
fn the_first_policy_walkthrough_holds() {
    let doc = fs::read_to_string(Path::new(ROOT).join("docs/policies.md")).unwrap();
    let steps = steps(&doc);
    let outputs: Vec<&str> = steps
        .iter()
        .filter_map(|s| match s {
            Step::Output(name, _) => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        outputs,
        [
            "validate-ok",
            "validate-typo",
            "test-fail",
            "test-ok",
            "eval",
            "test-routes",
            "eval-http"
        ],
        "the walk-through's checked outputs"
    );
    let dir = tempfile::tempdir().unwrap();
    for step in &steps {
        match step {
            Step::Write(path, body) => {
                let path = dir.path().join(path);
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(path, body).unwrap();
            }
            Step::Append(path, body) => {
                let path = dir.path().join(path);
                let suite = fs::read_to_string(&path).unwrap();
                fs::write(path, suite + body).unwrap();
            }
            Step::ReplaceLastTest(path, body) => {
                let path = dir.path().join(path);
                let suite = fs::read_to_string(&path).unwrap();
                fs::write(path, replace_last_test(&suite, body)).unwrap();
            }
            Step::Output(name, block) if name == "validate-typo" => {
                typo_step(dir.path(), &doc, block);
            }
            Step::Output(name, block) => run_and_compare(dir.path(), name, block),
        }
    }
}

#[test]
fn revisions_and_quoted_words_are_read_as_the_doc_means() {
    assert_eq!(
        without_revisions("revision 9bd3466f9b38f481; rule editors-write"),
        "revision …; rule editors-write"
    );
    assert_eq!(
        words(r#"gatehouse eval d --principal '{"id": "ed"}' --door nginx"#),
        [
            "gatehouse",
            "eval",
            "d",
            "--principal",
            r#"{"id": "ed"}"#,
            "--door",
            "nginx"
        ]
    );
}

/// The serve step: a server on the walk-through's first docs.yaml answers `check --explain` with the
/// trace the doc shows, down to the part of the rule that did not hold.
#[tokio::test]
async fn check_explain_shows_the_walkthroughs_trace() {
    let doc = fs::read_to_string(Path::new(ROOT).join("docs/policies.md")).unwrap();
    let policy = steps(&doc)
        .into_iter()
        .find_map(|s| match s {
            Step::Write(path, body) if path == "my-policies/docs.yaml" => Some(body),
            _ => None,
        })
        .expect("the walk-through's docs.yaml");
    let trace = "  rule editors-write (priority 0): not applicable: its when condition does not hold\n    - requires one of roles [editor]; the principal has [viewer]\n";
    assert!(doc.contains(trace), "the doc shows the trace");

    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("docs.yaml"), policy).unwrap();
    let server =
        common::TestServer::start_with(&[("GATEHOUSE_POLICY_DIR", dir.path().to_str().unwrap())])
            .await;
    let vera = common::sign(serde_json::json!({"user_id": "vera", "roles": ["viewer"]}));
    let args = [
        "check",
        "--addr",
        &server.url(),
        "--token",
        &vera,
        "--action",
        "write",
        "--resource",
        "document:plan",
        "--explain",
    ]
    .map(str::to_owned);
    let output = tokio::task::spawn_blocking(move || {
        common::gatehouse_command().args(args).output().unwrap()
    })
    .await
    .unwrap();
    let printed = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "denied: {printed}");
    assert!(
        printed.starts_with("DENIED by rule default-deny"),
        "{printed}"
    );
    assert!(printed.contains(trace), "{printed}");
}
