//! The cost of one decision, engine alone, with an already verified principal:
//!
//! - `gatehouse_feeds`: `engine::decide` on the built-in Stream Feeds preset;
//! - `gatehouse_10k`: the same requests on a generated set of 10,000 rules over 1,000 kinds, with the
//!   Feeds preset's rules included so that the requests get the same answers;
//! - `cedar_feeds`: Cedar's `Authorizer::is_authorized` on the same Feeds defaults written in Cedar;
//! - `engine_steps`: parts of a decision (id pattern captures, kind and index lookups), for profiling;
//! - `compile`: compiling the Feeds preset and the 10,000-rule set.
//!
//! Both engines get their inputs prepared outside the timed loop (our `Request`, Cedar's `Request` and
//! `Entities`) and are asserted to agree, decision and deciding rule, on every benchmarked request and
//! on a grid of other Feeds requests before anything is timed.
//!
//! Run: `cargo bench --bench engine`

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::hint::black_box;
use std::str::FromStr;
use std::time::Duration;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, EntityUid,
    PolicySet as CedarPolicySet, Request as CedarRequest,
};
use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse::engine::{self, Request, Resource};
use gatehouse::policy::{FeedsPreset, Pattern, PolicySet, Source, compile};
use gatehouse::principal::{Principal, PrincipalKind};
use gatehouse::token::{ApiSecret, IssueRequest, Issuer, Verifier, VerifyOptions};
use serde_json::{Map, Value, json};

const SECRET: &str = "4x8kxqmz2ybv9tsm7wqdpcj3hfn6rk5ae2ugbz8yvx4w7q3t9mdr6ypc2kfhn5wa";

/// Kinds and rules per kind of the generated set.
const KINDS: usize = 1_000;
const RULES_PER_KIND: usize = 10;

/// Stream's default Activity Feeds permissions (`policies/stream-feeds/feeds.yaml`) in Cedar, one policy
/// per rule, each annotated with the rule's name.
///
/// The entities carry what our engine reads from the request: a feed's `group` and `owner` (the
/// captures of `{group}:{owner**}`), the owner of reactions, collections, files and images (their
/// `user_id` or `owner` attribute), and for users their id and Stream's `SU:<id>` reference (Cedar has no
/// string concatenation). The rules that grant to any user (`principal: user`) are scoped to
/// `principal is User`, so anonymous callers (`Anonymous::""`) get nothing. Cedar's forbid-overrides
/// matches our priorities here: the only deny, no-impersonation, has the highest priority.
const FEEDS_CEDAR: &str = r#"
@id("no-impersonation")
forbid (principal, action == Action::"write", resource is Feed)
unless {
  principal is User && context has actor &&
  (context.actor == principal.id || context.actor == principal.stream_ref)
};

@id("own-feeds")
permit (principal, action, resource is Feed)
when { resource has owner && resource.owner == principal };

@id("read-global-read-feeds")
permit (principal is User, action == Action::"read", resource is Feed)
when { resource has group && ["user"].contains(resource.group) };

@id("write-global-write-feeds")
permit (principal is User, action == Action::"write", resource is Feed)
when { resource has group && ["notification"].contains(resource.group) };

@id("read-any-activity")
permit (principal is User, action == Action::"read", resource is Activity);

@id("follow-from-own-feeds")
permit (principal, action, resource is Follower)
when { resource has owner && resource.owner == principal };

@id("read-any-user")
permit (principal is User, action == Action::"read", resource is User);

@id("manage-own-user")
permit (principal, action in [Action::"write", Action::"delete"], resource is User)
when { resource == principal };

@id("upload-files-and-images")
permit (principal is User, action == Action::"write", resource)
when { resource is File || resource is Image };

@id("delete-own-files-and-images")
permit (principal, action == Action::"delete", resource)
when {
  (resource is File || resource is Image) &&
  resource has owner && resource.owner == principal
};

@id("process-own-images")
permit (principal, action == Action::"process", resource is Image)
when { resource has owner && resource.owner == principal };

@id("manage-own-reactions-and-collections")
permit (principal, action in [Action::"write", Action::"delete"], resource)
when {
  (resource is Reaction || resource is Collection) &&
  resource has owner && resource.owner == principal
};

@id("read-reactions-and-collections")
permit (principal is User, action == Action::"read", resource)
when { resource is Reaction || resource is Collection };

@id("read-open-graph")
permit (principal is User, action == Action::"read", resource is Og);
"#;

/// One request, in the form our engine takes.
struct Case {
    name: &'static str,
    action: &'static str,
    kind: &'static str,
    id: &'static str,
    attributes: Map<String, Value>,
    context: Map<String, Value>,
}

fn object(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

fn case(
    name: &'static str,
    action: &'static str,
    kind: &'static str,
    id: &'static str,
    attributes: Value,
    context: Value,
) -> Case {
    Case {
        name,
        action,
        kind,
        id,
        attributes: object(attributes),
        context: object(context),
    }
}

/// The benchmarked requests, with the decision and rule each one must get.
fn bench_cases() -> Vec<(Case, bool, &'static str)> {
    vec![
        (
            case(
                "allow_own_feed_write",
                "write",
                "feed",
                "timeline:tommaso",
                json!({}),
                json!({"actor": "tommaso"}),
            ),
            true,
            "own-feeds",
        ),
        (
            case(
                "allow_global_read",
                "read",
                "feed",
                "user:jack",
                json!({}),
                json!({}),
            ),
            true,
            "read-global-read-feeds",
        ),
        (
            case(
                "deny_others_reaction",
                "delete",
                "reactions",
                "r1",
                json!({"user_id": "jack"}),
                json!({}),
            ),
            false,
            engine::DEFAULT_DENY,
        ),
        (
            case(
                "deny_unknown_kind",
                "read",
                "personalization",
                "x",
                json!({}),
                json!({}),
            ),
            false,
            engine::DEFAULT_DENY,
        ),
        (
            case(
                "deny_impersonation",
                "write",
                "feed",
                "timeline:tommaso",
                json!({}),
                json!({"actor": "jack"}),
            ),
            false,
            "no-impersonation",
        ),
    ]
}

/// More Feeds requests, only for checking that the Cedar translation agrees with the preset.
fn grid_cases() -> Vec<Case> {
    let resources: &[(&str, &str, Value)] = &[
        ("feed", "timeline:tommaso", json!({})),
        ("feed", "timeline:jack", json!({})),
        ("feed", "user:jack", json!({})),
        ("feed", "user:tommaso", json!({})),
        ("feed", "notification:jack", json!({})),
        ("feed", "notification:tommaso", json!({})),
        ("feed", "user:a:b", json!({})),
        ("feed", "nocolon", json!({})),
        ("follower", "timeline:tommaso", json!({})),
        ("follower", "timeline:jack", json!({})),
        ("users", "tommaso", json!({})),
        ("users", "jack", json!({})),
        ("reactions", "r1", json!({"user_id": "tommaso"})),
        ("reactions", "r2", json!({"user_id": "jack"})),
        ("reactions", "r3", json!({})),
        ("collections", "c1", json!({"user_id": "tommaso"})),
        ("collections", "c2", json!({"user_id": "jack"})),
        ("files", "f1", json!({"owner": "tommaso"})),
        ("files", "f2", json!({"owner": "jack"})),
        ("images", "i1", json!({"owner": "tommaso"})),
        ("images", "i2", json!({"owner": "jack"})),
        ("activities", "a1", json!({})),
        ("og", "https://example.com/", json!({})),
        ("personalization", "x", json!({})),
    ];
    let contexts = [
        json!({}),
        json!({"actor": "tommaso"}),
        json!({"actor": "SU:tommaso"}),
        json!({"actor": "jack"}),
        json!({"actor": ""}),
    ];
    let mut cases = Vec::new();
    for (kind, id, attributes) in resources {
        for action in ["read", "write", "delete", "process", "update"] {
            for context in &contexts {
                cases.push(case(
                    "grid",
                    action,
                    kind,
                    id,
                    attributes.clone(),
                    context.clone(),
                ));
            }
        }
    }
    cases
}

fn request<'a>(principal: &'a Principal, case: &'a Case) -> Request<'a> {
    Request {
        principal,
        action: case.action,
        resource: Resource {
            kind: case.kind,
            id: case.id,
            attributes: &case.attributes,
        },
        context: &case.context,
        now: 0,
    }
}

/// A request and its entities in Cedar's form.
struct CedarInput {
    request: CedarRequest,
    entities: Entities,
}

fn user_ref(id: &str) -> Value {
    json!({"__entity": {"type": "User", "id": id}})
}

fn owner_attr(attrs: &mut Map<String, Value>, owner: Option<&Value>) {
    if let Some(owner) = owner.and_then(Value::as_str).filter(|o| !o.is_empty()) {
        attrs.insert("owner".into(), user_ref(owner));
    }
}

/// The Cedar entity type of one of our kinds.
fn cedar_type(kind: &str) -> String {
    let known = match kind {
        "feed" => "Feed",
        "follower" => "Follower",
        "users" => "User",
        "reactions" => "Reaction",
        "collections" => "Collection",
        "files" => "File",
        "images" => "Image",
        "activities" => "Activity",
        "og" => "Og",
        other => {
            let mut chars = other.chars();
            let first = chars.next().map(|c| c.to_ascii_uppercase());
            return first.into_iter().chain(chars).collect();
        }
    };
    known.to_owned()
}

fn cedar_input(principal: &Principal, case: &Case) -> CedarInput {
    let principal_uid = match principal.kind {
        PrincipalKind::User => json!({"type": "User", "id": principal.user_id}),
        _ => json!({"type": "Anonymous", "id": principal.user_id}),
    };
    let mut entities = vec![json!({
        "uid": principal_uid,
        "attrs": {"id": principal.user_id, "stream_ref": format!("SU:{}", principal.user_id)},
        "parents": [],
    })];
    let resource_type = cedar_type(case.kind);
    let mut attrs = Map::new();
    match case.kind {
        "feed" | "follower" => {
            if let Some((group, owner)) = case.id.split_once(':') {
                if !group.is_empty() {
                    attrs.insert("group".into(), Value::from(group));
                }
                owner_attr(&mut attrs, Some(&Value::from(owner)));
            }
        }
        "reactions" | "collections" => owner_attr(&mut attrs, case.attributes.get("user_id")),
        "files" | "images" => owner_attr(&mut attrs, case.attributes.get("owner")),
        _ => {}
    }
    let resource_uid = json!({"type": resource_type, "id": case.id});
    if resource_uid != principal_uid {
        entities.push(json!({"uid": resource_uid, "attrs": attrs, "parents": []}));
    }
    let uid = |value: &Value| {
        EntityUid::from_json(value.clone()).expect("an entity uid from its JSON form")
    };
    let request = CedarRequest::new(
        uid(&principal_uid),
        EntityUid::from_str(&format!("Action::\"{}\"", case.action)).unwrap(),
        uid(&resource_uid),
        Context::from_json_value(Value::Object(case.context.clone()), None).unwrap(),
        None,
    )
    .unwrap();
    CedarInput {
        request,
        entities: Entities::from_json_value(Value::Array(entities), None).unwrap(),
    }
}

fn cedar_policies() -> CedarPolicySet {
    CedarPolicySet::from_str(FEEDS_CEDAR).unwrap()
}

/// Asserts that Cedar decides `case` as our engine does, naming the same rule: among the permitting
/// policies when allowed, the forbidding one when denied by a rule, none when denied by default.
fn assert_agree(policy: &PolicySet, cedar: &CedarPolicySet, principal: &Principal, case: &Case) {
    let ours = engine::decide(policy, &request(principal, case));
    let input = cedar_input(principal, case);
    let response = Authorizer::new().is_authorized(&input.request, cedar, &input.entities);
    let what = format!(
        "{} {} on {} {} with context {:?} by {:?}",
        case.name, case.action, case.kind, case.id, case.context, principal.user_id
    );
    let errors: Vec<String> = response
        .diagnostics()
        .errors()
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{what}: Cedar errors {errors:?}");
    let reasons: BTreeSet<String> = response
        .diagnostics()
        .reason()
        .map(|id| {
            cedar
                .policy(id)
                .and_then(|p| p.annotation("id"))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        ours.allowed,
        response.decision() == CedarDecision::Allow,
        "{what}: gatehouse {} ({}), Cedar {:?} {reasons:?}",
        ours.allowed,
        ours.rule,
        response.decision()
    );
    if ours.rule == engine::DEFAULT_DENY {
        assert!(reasons.is_empty(), "{what}: Cedar reasons {reasons:?}");
    } else {
        assert!(
            reasons.contains(ours.rule),
            "{what}: gatehouse rule {}, Cedar reasons {reasons:?}",
            ours.rule
        );
    }
}

/// A policy file of `KINDS * RULES_PER_KIND` rules over kinds `k0`..: each kind declared with an id
/// pattern, an owner, a channel and its actions, and ten rules mixing actions, priorities, effects and
/// conditions (roles, groups, users, owner, in with inline lists and named lists, channel roles,
/// composition, and a CEL expression on one kind in ten).
/// The generated kinds and rules of `kinds`, as one file; the lists go in the first file only. Files are
/// kept under the 1 MiB a policy file may have.
fn generated_rules(kinds: std::ops::Range<usize>) -> String {
    let mut yaml = if kinds.start == 0 {
        String::from("lists:\n  gen_visible: [public, team]\n  gen_frozen: [locked, archived]\n\n")
    } else {
        String::new()
    };
    yaml.push_str("resources:\n");
    for k in kinds.clone() {
        writeln!(
            yaml,
            "  - kind: k{k}\n    id: \"{{tenant}}:{{name**}}\"\n    owner: attributes.owner\n    channel: attributes.channel\n    actions: [read, write, delete, share, archive, export]"
        )
        .unwrap();
    }
    yaml.push_str("\nrules:\n");
    for k in kinds {
        let next = (k + 1) % KINDS;
        let tenant = k % 50;
        let rules = [
            format!(
                "  - name: k{k}-readers\n    effect: allow\n    resource: k{k}\n    actions: [read]\n    when:\n      roles: [viewer, editor, admin]"
            ),
            format!(
                "  - name: k{k}-owners\n    effect: allow\n    resource: k{k}\n    actions: [write, delete]\n    when:\n      owner: true"
            ),
            format!(
                "  - name: k{k}-frozen\n    effect: deny\n    priority: 10\n    resource: k{k}\n    actions: [write, delete]\n    when:\n      in: {{ attributes.state: \"$gen_frozen\" }}"
            ),
            format!(
                "  - name: k{k}-share-visible\n    effect: allow\n    resource: k{k}\n    actions: [share]\n    when:\n      all:\n        - owner: true\n        - in: {{ attributes.visibility: \"$gen_visible\" }}"
            ),
            format!(
                "  - name: k{k}-admins\n    effect: allow\n    priority: 5\n    resource: k{k}\n    actions: \"*\"\n    when:\n      roles: [admin]"
            ),
            format!(
                "  - name: k{k}-tenant\n    effect: allow\n    resource: k{k}\n    id: \"t{tenant}:*\"\n    actions: [read, export]\n    when:\n      in: {{ captures.tenant: [t{tenant}] }}"
            ),
            format!(
                "  - name: k{k}-ops-archive\n    effect: allow\n    resource: [k{k}, k{next}]\n    actions: [archive]\n    when:\n      any:\n        - groups: [ops]\n        - users: [root-{k}]"
            ),
            format!(
                "  - name: k{k}-moderators\n    effect: allow\n    resource: k{k}\n    actions: [read, write]\n    when:\n      channel_roles: [channel_moderator]"
            ),
            format!(
                "  - name: k{k}-blocked\n    effect: deny\n    priority: 100\n    resource: k{k}\n    actions: \"*\"\n    when:\n      users: [blocked-{k}]"
            ),
            if k % 10 == 0 {
                format!(
                    "  - name: k{k}-cel-export\n    effect: allow\n    resource: k{k}\n    actions: [export]\n    when:\n      cel: \"resource.attributes.owner == principal.id && action == 'export'\""
                )
            } else {
                format!(
                    "  - name: k{k}-no-anonymous-export\n    effect: deny\n    priority: 1\n    resource: k{k}\n    actions: [export]\n    when:\n      not:\n        principal: authenticated"
                )
            },
        ];
        debug_assert_eq!(rules.len(), RULES_PER_KIND);
        for rule in rules {
            yaml.push_str(&rule);
            yaml.push('\n');
        }
    }
    yaml
}

fn large_sources() -> Vec<Source> {
    const FILES: usize = 4;
    let mut sources = FeedsPreset::sources();
    for file in 0..FILES {
        let kinds = file * KINDS / FILES..(file + 1) * KINDS / FILES;
        sources.push(Source {
            path: format!("generated/k{file}.yaml"),
            text: generated_rules(kinds),
        });
    }
    sources
}

fn bench(c: &mut Criterion) {
    let secret = ApiSecret::new(SECRET);
    let token = Issuer::new(&secret)
        .issue(IssueRequest {
            user_id: "tommaso".into(),
            expires_in_seconds: 3600,
            ..IssueRequest::default()
        })
        .unwrap()
        .token;
    let principal = Verifier::new(&secret, VerifyOptions::default())
        .verify(&token)
        .unwrap();
    let preset = FeedsPreset::default();
    let overrides = preset.list_overrides();
    let feeds = preset.compile().unwrap();
    let sources = large_sources();
    let large = compile(&sources, &overrides).unwrap();
    assert_eq!(
        large.candidates().len(),
        feeds.candidates().len() + KINDS * RULES_PER_KIND
    );
    let cedar = cedar_policies();
    assert_eq!(cedar.policies().count(), feeds.candidates().len());

    // The comparison is only honest if all three answer alike.
    let cases = bench_cases();
    for (case, allowed, rule) in &cases {
        for set in [&feeds, &large] {
            let decision = engine::decide(set, &request(&principal, case));
            assert_eq!(
                (decision.allowed, decision.rule),
                (*allowed, *rule),
                "{}",
                case.name
            );
        }
        assert_agree(&feeds, &cedar, &principal, case);
    }
    let jack = Principal::user("jack");
    for case in grid_cases() {
        for who in [&principal, &jack, &Principal::anonymous()] {
            // Cedar's translation has no action vocabulary: an action the kind does not declare is
            // denied by gatehouse before any rule, and there is nothing to compare.
            if feeds.knows_action(case.kind, case.action) {
                assert_agree(&feeds, &cedar, who, &case);
            } else {
                let decision = engine::decide(&feeds, &request(who, &case));
                assert_eq!(
                    (decision.allowed, decision.rule),
                    (false, "undeclared-action")
                );
            }
            let (small, big) = (
                engine::decide(&feeds, &request(who, &case)),
                engine::decide(&large, &request(who, &case)),
            );
            assert_eq!((small.allowed, small.rule), (big.allowed, big.rule));
        }
    }

    for (group_name, set) in [("gatehouse_feeds", &feeds), ("gatehouse_10k", &large)] {
        let mut group = c.benchmark_group(group_name);
        for (case, _, _) in &cases {
            let request = request(&principal, case);
            group.bench_function(case.name, |b| {
                b.iter(|| engine::decide(set, black_box(&request)))
            });
        }
        group.finish();
    }

    let authorizer = Authorizer::new();
    let mut group = c.benchmark_group("cedar_feeds");
    for (case, _, _) in &cases {
        let input = cedar_input(&principal, case);
        group.bench_function(case.name, |b| {
            b.iter(|| {
                authorizer.is_authorized(
                    black_box(&input.request),
                    black_box(&cedar),
                    black_box(&input.entities),
                )
            })
        });
    }
    group.finish();

    // Steps of a decision, to see where its time goes: the feed id's captures (the Feeds preset's
    // owner and group), the kind's declaration, and the index lookup of the candidates.
    let mut group = c.benchmark_group("engine_steps");
    let feed_id = Pattern::parse("{group}:{owner**}").unwrap();
    group.bench_function("feed_id_captures", |b| {
        b.iter(|| feed_id.captures(black_box("timeline:tommaso")))
    });
    for (name, set) in [("feeds", &feeds), ("10k", &large)] {
        group.bench_function(format!("kind_decl_{name}"), |b| {
            b.iter(|| set.kind(black_box("reactions")))
        });
        group.bench_function(format!("candidate_ids_{name}"), |b| {
            b.iter(|| set.candidate_ids(black_box("reactions"), black_box("delete")))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("compile");
    group.bench_function("feeds_preset", |b| b.iter(|| preset.compile().unwrap()));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.bench_function("rules_10k", |b| {
        b.iter(|| compile(black_box(&sources), &overrides).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
