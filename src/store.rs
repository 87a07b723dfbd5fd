//! Owns the live policy set and reading it from a policy directory.
//!
//! Checks read the set per request through an `ArcSwap` handle, so replacing it applies to connections
//! already open, and a check in flight finishes on the set it started with.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::policy::{LoadError, LoadErrors, PolicySet, Source, compile};

pub struct PolicyStore {
    current: ArcSwap<PolicySet>,
}

impl PolicyStore {
    pub fn new(initial: PolicySet) -> Self {
        PolicyStore {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// The set to decide a request with; cheap, lock-free.
    pub fn current(&self) -> arc_swap::Guard<Arc<PolicySet>> {
        self.current.load()
    }

    /// Swaps in a new set atomically.
    pub fn replace(&self, next: PolicySet) {
        self.current.store(Arc::new(next));
    }
}

/// Reads and compiles a policy directory: every `*.yaml`/`*.yml` file in the tree, except names starting
/// with `.` (Kubernetes' `..data` folders, reached through their symlinks) and `*_test.yaml` suites.
pub fn load_dir(dir: &Path) -> Result<PolicySet, LoadErrors> {
    let (sources, errors) = read_tree(dir, is_policy_file);
    if !errors.is_empty() {
        return Err(LoadErrors(errors));
    }
    compile(&sources, &BTreeMap::new())
}

/// The test suites (`*_test.yaml`) of a policy directory.
pub fn load_test_suites(dir: &Path) -> Result<Vec<Source>, LoadErrors> {
    let (sources, errors) = read_tree(dir, is_test_file);
    if errors.is_empty() {
        Ok(sources)
    } else {
        Err(LoadErrors(errors))
    }
}

fn is_yaml(name: &str) -> bool {
    name.ends_with(".yaml") || name.ends_with(".yml")
}

fn is_test_file(name: &str) -> bool {
    name.ends_with("_test.yaml") || name.ends_with("_test.yml")
}

fn is_policy_file(name: &str) -> bool {
    is_yaml(name) && !is_test_file(name)
}

/// Symlinked directories could loop; no real policy tree is this deep.
const MAX_DEPTH: usize = 16;

fn read_tree(dir: &Path, wanted: fn(&str) -> bool) -> (Vec<Source>, Vec<LoadError>) {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    walk(dir, dir, wanted, 0, &mut sources, &mut errors);
    sources.sort_by(|a, b| a.path.cmp(&b.path));
    (sources, errors)
}

fn io_error(path: &Path, e: &std::io::Error) -> LoadError {
    LoadError {
        file: path.display().to_string(),
        line: None,
        message: format!("cannot be read: {e}"),
    }
}

fn walk(
    root: &Path,
    dir: &Path,
    wanted: fn(&str) -> bool,
    depth: usize,
    sources: &mut Vec<Source>,
    errors: &mut Vec<LoadError>,
) {
    if depth > MAX_DEPTH {
        errors.push(LoadError {
            file: dir.display().to_string(),
            line: None,
            message: "directories nest too deep".to_owned(),
        });
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => return errors.push(io_error(dir, &e)),
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                errors.push(io_error(dir, &e));
                continue;
            }
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        // `metadata` follows symlinks, as a ConfigMap's file links must be followed.
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(root, &path, wanted, depth + 1, sources, errors),
            Ok(meta) if meta.is_file() && wanted(&name) => match std::fs::read_to_string(&path) {
                Ok(text) => sources.push(Source {
                    path: path
                        .strip_prefix(root)
                        .unwrap_or(&path)
                        .display()
                        .to_string(),
                    text,
                }),
                Err(e) => errors.push(io_error(&path, &e)),
            },
            Ok(_) => {}
            Err(e) => errors.push(io_error(&path, &e)),
        }
    }
}
