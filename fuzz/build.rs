//! Makes the engine's reference evaluator (`tests/it/engine_reference.rs`, owned by the main crate's
//! tests) includable by the `engine` fuzz target: the file is an integration test, so its inner
//! doc comments and inner attributes are dropped; everything else is copied as it is. The `engine`
//! target includes the copy with `include!` into a module of its own, where the reference's private
//! model, generator, evaluator and `check` are in scope.

use std::path::Path;

fn main() {
    let source = Path::new("../tests/it/engine_reference.rs");
    println!("cargo::rerun-if-changed={}", source.display());
    let text = match std::fs::read_to_string(source) {
        Ok(text) => text,
        Err(e) => panic!("cannot read {}: {e}", source.display()),
    };
    let mut out = String::with_capacity(text.len());
    let mut in_inner_attribute = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if in_inner_attribute {
            in_inner_attribute = !trimmed.ends_with(")]");
            continue;
        }
        if trimmed.starts_with("//!") {
            continue;
        }
        if trimmed.starts_with("#![") {
            in_inner_attribute = !trimmed.ends_with(']');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    let Ok(dir) = std::env::var("OUT_DIR") else {
        panic!("OUT_DIR is not set");
    };
    let target = Path::new(&dir).join("engine_reference.rs");
    if let Err(e) = std::fs::write(&target, out) {
        panic!("cannot write {}: {e}", target.display());
    }
}
