//! Policy loading: YAML text to a compiled, indexed set (`gatehouse::policy::compile`), policy test
//! suites (`gatehouse::suite`), and a few decisions with whatever set loads.
//!
//! Input: the first byte holds flags, the rest is up to four files separated by NUL bytes (which YAML
//! never contains). Flag 1: the last file is a test suite (`cases_test.yaml`), run against the set
//! (or, when no policy file is left, against the built-in Feeds preset). Flag 2: the Feeds preset's
//! list overrides are applied, as the built-in set is compiled.
//!
//! Invariants: loading returns a set or errors, each with a message, and never panics; loading is
//! deterministic (the same files give the same revision); a loaded set decides without panicking;
//! everything in bounded time.

#![no_main]

use std::collections::BTreeMap;
use std::sync::LazyLock;

use gatehouse::engine::{Request, Resource, allowed_actions, decide, decide_explained};
use gatehouse::policy::{Actions, FeedsPreset, Kinds, PolicySet, Source, compile};
use gatehouse::principal::Principal;
use gatehouse_fuzz::token::NOW;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value, json};

static FEEDS: LazyLock<Option<PolicySet>> = LazyLock::new(|| FeedsPreset::default().compile().ok());

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let mut files: Vec<&str> = text.split('\0').take(4).collect();
    let suite = if flags & 1 == 1 { files.pop() } else { None };
    let overrides = if flags & 2 == 2 {
        FeedsPreset::default().list_overrides()
    } else {
        BTreeMap::new()
    };
    let sources: Vec<Source> = files
        .iter()
        .enumerate()
        .map(|(i, text)| Source {
            path: format!("policies/p{i}.yaml"),
            text: (*text).to_owned(),
        })
        .collect();

    let loaded = if sources.is_empty() {
        None
    } else {
        match compile(&sources, &overrides) {
            Ok(set) => Some(set),
            Err(errors) => {
                assert!(!errors.0.is_empty(), "a failed load with no error");
                for error in &errors.0 {
                    assert!(!error.message.is_empty(), "an empty load error");
                    let _ = error.to_string();
                }
                None
            }
        }
    };

    if let Some(set) = &loaded {
        let again = compile(&sources, &overrides).expect("the same files load twice");
        assert_eq!(
            set.revision(),
            again.revision(),
            "loading is not deterministic"
        );
        exercise(set);
    }

    if let Some(suite) = suite {
        let source = Source {
            path: "policies/cases_test.yaml".to_owned(),
            text: suite.to_owned(),
        };
        let _ = gatehouse::suite::parse(&source);
        let set = loaded.as_ref().or(FEEDS.as_ref());
        if let Some(set) = set {
            if let Ok(report) = gatehouse::suite::run(set, &[source], NOW) {
                let _ = report.failed();
            }
        }
    }
});

/// Decides a few requests for every kind and action the set names, and routes its own templates.
fn exercise(set: &PolicySet) {
    let mut kinds: Vec<&str> = vec!["feed", "k0"];
    let mut actions: Vec<&str> = vec!["read", "a0"];
    for candidate in set.candidates().iter().take(16) {
        if let Kinds::Only(only) = &candidate.kinds {
            kinds.extend(only.iter().take(2).map(String::as_str));
        }
        if let Actions::Only(only) = &candidate.actions {
            actions.extend(only.iter().take(2).map(String::as_str));
        }
    }
    kinds.sort_unstable();
    kinds.dedup();
    actions.sort_unstable();
    actions.dedup();

    let mut user = Principal::user("u1");
    user.roles = vec!["admin".to_owned()];
    user.groups = vec!["g0".to_owned()];
    user.channel_roles = BTreeMap::from([("messaging:general".to_owned(), "cm".to_owned())]);
    let principals = [Principal::user("u0"), user, Principal::anonymous()];
    let attributes: Map<String, Value> =
        json!({"owner": "u1", "a": "v0", "ch": "messaging:general"})
            .as_object()
            .cloned()
            .unwrap_or_default();
    let context: Map<String, Value> = json!({"c": "u1", "actor": "u0"})
        .as_object()
        .cloned()
        .unwrap_or_default();
    for kind in kinds.iter().take(6) {
        for id in ["", "user:u1", "timeline:u0:x", "u1"] {
            for principal in &principals {
                let request = |action: &'static str| Request {
                    principal,
                    action,
                    resource: Resource {
                        kind,
                        id,
                        attributes: &attributes,
                    },
                    context: &context,
                    now: NOW,
                };
                for action in actions.iter().take(6) {
                    let request = Request {
                        action,
                        ..request("")
                    };
                    let decision = decide(set, &request);
                    let (explained, _) = decide_explained(set, &request);
                    assert_eq!(
                        (decision.allowed, decision.rule),
                        (explained.allowed, explained.rule),
                        "decide and decide_explained disagree on {kind} {id} {action}"
                    );
                    let _ = decision.reason(&request);
                }
                let _ = allowed_actions(set, &request("read"));
            }
        }
    }

    for route in set.routes().routes().iter().take(32) {
        let path = route
            .template()
            .replace("{", "")
            .replace("**}", "")
            .replace("}", "")
            .replace("**", "rest/of/it")
            .replace('*', "any");
        let method = route.methods().first().map_or("GET", String::as_str);
        let _ = set.routes().find(method, &path);
    }
}
