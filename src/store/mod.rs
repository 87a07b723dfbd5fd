//! Owns the live policy set: reading it from a policy directory, reloading it (on a change in the
//! directory, SIGHUP or the admin RPC), and keeping the last good set when a reload fails.
//!
//! Checks read the set per request through an `ArcSwap` handle, so replacing it applies to connections
//! already open, and a check in flight finishes on the set it started with. Reloads compile on the
//! blocking pool, away from the request path, and swap the finished set in atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;

use crate::policy::{LoadError, LoadErrors, PolicySet, Source, compile};
use crate::token::unix_now;

mod watch;

pub use watch::spawn_watcher;

/// The reload history, for `PolicyStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// When the serving set was swapped in, seconds since the Unix epoch.
    pub loaded_at: i64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// The latest failed reload's errors and when it happened; cleared by a successful reload.
    pub last_error: Option<(i64, String)>,
}

pub struct PolicyStore {
    current: ArcSwap<PolicySet>,
    /// The directory the set comes from; `None` for the built-in preset, which never reloads.
    dir: Option<PathBuf>,
    status: Mutex<ReloadStatus>,
    /// Reloads run one at a time, so a slow one can never overwrite a newer one.
    reloading: Mutex<()>,
}

impl PolicyStore {
    pub fn new(initial: PolicySet, dir: Option<PathBuf>) -> Self {
        PolicyStore {
            current: ArcSwap::from_pointee(initial),
            dir,
            status: Mutex::new(ReloadStatus {
                loaded_at: unix_now(),
                ..ReloadStatus::default()
            }),
            reloading: Mutex::new(()),
        }
    }

    /// The set to decide a request with; cheap, lock-free.
    pub fn current(&self) -> arc_swap::Guard<Arc<PolicySet>> {
        self.current.load()
    }

    /// Swaps in a new set atomically; checks in flight finish on the set they loaded.
    pub fn replace(&self, next: PolicySet) {
        // Stamped first, so whoever sees the new set sees when it was loaded.
        self.status().loaded_at = unix_now();
        self.current.store(Arc::new(next));
    }

    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    pub fn status(&self) -> MutexGuard<'_, ReloadStatus> {
        // The status holds plain counters: a panic while it was held cannot leave it inconsistent.
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads and compiles the directory, and swaps the set in if it loaded; otherwise the last good
    /// set keeps serving and the error is kept. Blocking: run it off the request path.
    pub fn reload_blocking(&self) -> Result<String, LoadErrors> {
        let Some(dir) = &self.dir else {
            return Ok(self.current().revision().to_owned());
        };
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match load_dir(dir) {
            Ok(set) => {
                let revision = set.revision().to_owned();
                let previous = self.current().revision().to_owned();
                {
                    // Counted before the swap, so whoever sees the new revision sees the reload counted.
                    let mut status = self.status();
                    status.reloads_ok += 1;
                    status.last_error = None;
                }
                if revision != previous {
                    self.replace(set);
                    tracing::info!(%revision, %previous, "policies reloaded");
                } else if set.files() != self.current().files() {
                    // Same rules, other text (a comment, say): serve it so PolicyStatus matches the disk.
                    self.replace(set);
                    tracing::info!(%revision, "policy files reloaded; the rules did not change");
                } else {
                    tracing::debug!(%revision, "policies unchanged");
                }
                Ok(revision)
            }
            Err(errors) => {
                tracing::error!(
                    errors = %errors,
                    serving = self.current().revision(),
                    "policy reload failed; the last good set keeps serving"
                );
                let mut status = self.status();
                status.reloads_failed += 1;
                status.last_error = Some((unix_now(), errors.to_string()));
                Err(errors)
            }
        }
    }

    /// [`PolicyStore::reload_blocking`] on the blocking pool.
    pub async fn reload(self: &Arc<Self>) -> Result<String, LoadErrors> {
        let store = Arc::clone(self);
        match tokio::task::spawn_blocking(move || store.reload_blocking()).await {
            Ok(result) => result,
            Err(e) => Err(LoadErrors(vec![LoadError {
                file: String::new(),
                line: None,
                message: format!("reload did not complete: {e}"),
            }])),
        }
    }
}

/// Reads and compiles a policy directory: every `*.yaml`/`*.yml` file in the tree, except names starting
/// with `.` and `*_test.yaml` suites.
///
/// A Kubernetes ConfigMap mount is read through its `..data` link, resolved once: every key then comes
/// from the same version, even while the kubelet swaps the link. If the link moved during the read, the
/// read starts over.
pub fn load_dir(dir: &Path) -> Result<PolicySet, LoadErrors> {
    const ATTEMPTS: usize = 5;
    let mut last = Vec::new();
    for _ in 0..ATTEMPTS {
        let version = configmap_version(dir);
        let root = version.clone().unwrap_or_else(|| dir.to_path_buf());
        let (sources, errors) = read_tree(&root, is_policy_file);
        if version.is_some() && configmap_version(dir) != version {
            last = errors;
            continue;
        }
        if !errors.is_empty() {
            return Err(LoadErrors(errors));
        }
        return compile(&sources, &BTreeMap::new());
    }
    if last.is_empty() {
        last.push(LoadError {
            file: dir.display().to_string(),
            line: None,
            message: "the ConfigMap kept changing while it was read".to_owned(),
        });
    }
    Err(LoadErrors(last))
}

/// The folder a ConfigMap mount's `..data` link points at now, if `dir` is such a mount.
fn configmap_version(dir: &Path) -> Option<PathBuf> {
    let link = dir.join("..data");
    std::fs::symlink_metadata(&link).ok()?;
    std::fs::canonicalize(link).ok()
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
