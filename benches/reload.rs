//! Hot reload figures, measured on a real server over loopback gRPC:
//! 1. reload time of a 10,000-rule policy directory (read, validate, compile, index, swap);
//! 2. time from a change on disk to the new revision answering a Check (watcher, debounce, reload);
//! 3. Check latency percentiles with no reloads, then while the directory changes continuously.
//!
//! Run: `cargo bench --bench reload`. Under `cargo test` (no `--bench` argument) it runs a tiny smoke
//! version so the suite stays fast.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use gatehouse::config::Config;
use gatehouse::grpc::pb;
use gatehouse::grpc::pb::gatehouse_client::GatehouseClient;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "4x8kxqmz2ybv9tsm7wqdpcj3hfn6rk5ae2ugbz8yvx4w7q3t9mdr6ypc2kfhn5wa";

struct Sizes {
    rules: usize,
    reload_runs: usize,
    change_runs: usize,
    checks_per_phase: usize,
}

/// A policy set of `rules` rules over `rules / 10` kinds, plus a `doc` rule whose effect marks the
/// version, so a Check tells which version answered.
fn policy_text(rules: usize, version: u32) -> String {
    let mut text = String::from("rules:\n");
    let effect = if version.is_multiple_of(2) {
        "allow"
    } else {
        "deny"
    };
    let _ = writeln!(
        text,
        "  - {{ name: marker, effect: {effect}, resource: doc, actions: [read], priority: 10, description: version {version} }}"
    );
    let kinds = (rules / 10).max(1);
    for i in 0..rules {
        let kind = i % kinds;
        let action = i % 7;
        let _ = match i % 3 {
            0 => writeln!(
                text,
                "  - {{ name: r{i}, effect: allow, resource: k{kind}, actions: [a{action}], when: {{ roles: [role{}] }} }}",
                i % 13
            ),
            1 => writeln!(
                text,
                "  - {{ name: r{i}, effect: deny, resource: k{kind}, actions: [a{action}], priority: 1, when: {{ in: {{ attributes.level: [l{}] }} }} }}",
                i % 5
            ),
            _ => writeln!(
                text,
                "  - {{ name: r{i}, effect: allow, resource: k{kind}, id: \"p{}:*\", actions: \"*\", when: {{ users: [u{}] }} }}",
                i % 11,
                i % 17
            ),
        };
    }
    // Every kind a rule names is declared, with the actions rules name for it.
    text.push_str("resources:\n  - { kind: doc, actions: [read] }\n");
    for kind in 0..kinds {
        let _ = writeln!(
            text,
            "  - {{ kind: k{kind}, actions: [a0, a1, a2, a3, a4, a5, a6] }}"
        );
    }
    text
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn micros(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn millis(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

fn user_token(user: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({ "user_id": user }),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Writes a file the way an editor does: a temporary file renamed over the target.
fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("yaml.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn reload_time(sizes: &Sizes) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), policy_text(sizes.rules, 0)).unwrap();
    let mut times = Vec::new();
    for _ in 0..sizes.reload_runs {
        let started = Instant::now();
        let set = gatehouse::store::load_dir(dir.path()).unwrap();
        times.push(started.elapsed());
        assert_eq!(set.candidates().len(), sizes.rules + 1);
    }
    times.sort();
    println!(
        "reload of a {}-rule directory (read + validate + compile + index): median {}, min {}, max {} over {} runs",
        sizes.rules,
        millis(percentile(&times, 0.5)),
        millis(times[0]),
        millis(times[times.len() - 1]),
        times.len()
    );
}

async fn start_server(dir: &Path) -> String {
    let vars = HashMap::from([
        ("GATEHOUSE_API_SECRET", SECRET.to_owned()),
        ("GATEHOUSE_POLICY_DIR", dir.display().to_string()),
        ("GATEHOUSE_RELOAD_DEBOUNCE", "20ms".to_owned()),
        ("GATEHOUSE_LOG", "error".to_owned()),
    ]);
    let config =
        Config::load_with(None, &|name| vars.get(name).cloned()).expect("valid bench config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(gatehouse::run(config, listener, std::future::pending()));
    url
}

fn doc_request(token: &str) -> pb::CheckRequest {
    pb::CheckRequest {
        token: token.to_owned(),
        action: "read".into(),
        resource: Some(pb::Resource {
            kind: "doc".into(),
            id: "d1".into(),
            attributes: None,
        }),
        ..Default::default()
    }
}

async fn change_to_answer(sizes: &Sizes, small_rules: usize) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, policy_text(small_rules, 0)).unwrap();
    let url = start_server(dir.path()).await;
    let mut client = GatehouseClient::connect(url).await.unwrap();
    let token = user_token("jack");
    let mut times = Vec::new();
    for version in 1..=sizes.change_runs as u32 {
        let expected = version.is_multiple_of(2);
        let started = Instant::now();
        write_atomically(&file, &policy_text(small_rules, version));
        loop {
            let response = client
                .check(doc_request(&token))
                .await
                .unwrap()
                .into_inner();
            if response.allowed == expected {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the change was never picked up"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        times.push(started.elapsed());
    }
    times.sort();
    println!(
        "change on disk -> new revision answering ({} rules, debounce 20 ms): median {}, p90 {}, max {} over {} changes",
        small_rules,
        millis(percentile(&times, 0.5)),
        millis(percentile(&times, 0.9)),
        millis(times[times.len() - 1]),
        times.len()
    );
}

/// Check latencies from `clients` concurrent clients, `total` checks in all.
async fn check_latencies(url: &str, clients: usize, total: usize) -> Vec<Duration> {
    let mut tasks = Vec::new();
    for c in 0..clients {
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut client = GatehouseClient::connect(url).await.unwrap();
            let token = user_token(&format!("u{c}"));
            let mut times = Vec::with_capacity(total / clients);
            for _ in 0..total / clients {
                let started = Instant::now();
                client.check(doc_request(&token)).await.unwrap();
                times.push(started.elapsed());
            }
            times
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all.sort();
    all
}

async fn p99_under_reloads(sizes: &Sizes) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rules.yaml");
    std::fs::write(&file, policy_text(sizes.rules, 0)).unwrap();
    let url = start_server(dir.path()).await;
    // Warm up connections and caches.
    check_latencies(&url, 2, 200.min(sizes.checks_per_phase)).await;
    let quiet = check_latencies(&url, 2, sizes.checks_per_phase).await;

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        let rules = sizes.rules;
        tokio::task::spawn_blocking(move || {
            let mut version = 0;
            let mut writes = 0;
            while !stop.load(Ordering::Relaxed) {
                version += 1;
                write_atomically(&file, &policy_text(rules, version));
                writes += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            writes
        })
    };
    let busy = check_latencies(&url, 2, sizes.checks_per_phase).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.unwrap();
    for (name, times) in [("no reloads", &quiet), ("continuous reloads", &busy)] {
        println!(
            "Check over loopback gRPC, {} rules, 2 clients, {name}: p50 {}, p90 {}, p99 {}, max {} ({} checks)",
            sizes.rules,
            micros(percentile(times, 0.5)),
            micros(percentile(times, 0.9)),
            micros(percentile(times, 0.99)),
            micros(times[times.len() - 1]),
            times.len()
        );
    }
    println!(
        "  reloads during the second phase: {writes} rewrites of the {}-rule file, one every 50 ms; p99 ratio {:.2}",
        sizes.rules,
        percentile(&busy, 0.99).as_secs_f64() / percentile(&quiet, 0.99).as_secs_f64()
    );
}

fn main() {
    if let Ok(filter) = std::env::var("GATEHOUSE_LOG") {
        gatehouse::telemetry::init(&gatehouse::config::LogConfig {
            json: false,
            filter,
        });
    }
    let full = std::env::args().any(|a| a == "--bench");
    let sizes = if full {
        Sizes {
            rules: 10_000,
            reload_runs: 15,
            change_runs: 25,
            checks_per_phase: 20_000,
        }
    } else {
        Sizes {
            rules: 100,
            reload_runs: 2,
            change_runs: 2,
            checks_per_phase: 100,
        }
    };
    reload_time(&sizes);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        change_to_answer(&sizes, 100).await;
        change_to_answer(&sizes, sizes.rules).await;
        p99_under_reloads(&sizes).await;
    });
}
