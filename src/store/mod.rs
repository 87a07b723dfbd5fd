//! Owns the live policy set: reading it from a policy directory, reloading it (on a change in the
//! directory, SIGHUP or the admin RPC), and keeping the last good set when a reload fails. Owns the
//! reload of the API secret file the same way (`secrets`), and the directory watching both use.
//!
//! Checks read the set per request through an `ArcSwap` handle, so replacing it applies to connections
//! already open, and a check in flight finishes on the set it started with. Reloads compile on the
//! blocking pool, away from the request path, and swap the finished set in atomically.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;

use crate::policy::{LoadError, LoadErrors, PolicySet, Source, compile};
use crate::token::unix_now;

mod metrics;
mod secrets;
mod watch;

pub use metrics::register as register_metrics;
pub use secrets::{SecretFile, SecretStatus, read_secret_file, register_secret_metrics};

pub use watch::{Trigger, spawn_dir_watcher, spawn_watcher};

/// The reload history, for `PolicyStatus`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// When the serving set was swapped in, seconds since the Unix epoch.
    pub loaded_at: i64,
    pub reloads_ok: u64,
    pub reloads_failed: u64,
    /// The latest failed reload's errors and when it happened; cleared by a successful reload.
    pub last_error: Option<(i64, String)>,
    /// The latest counted reloads, oldest first, at most [`RELOAD_HISTORY`]: what the operator
    /// console shows, with each failure's errors by file and line.
    pub history: VecDeque<Reload>,
}

/// How many reloads [`ReloadStatus::history`] keeps.
pub const RELOAD_HISTORY: usize = 16;

/// One counted reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reload {
    /// Seconds since the Unix epoch.
    pub at: i64,
    /// The revision serving after it.
    pub revision: String,
    /// Why it failed; empty when it loaded.
    pub errors: Vec<LoadError>,
}

impl ReloadStatus {
    fn remember(&mut self, reload: Reload) {
        if self.history.len() >= RELOAD_HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(reload);
    }
}

pub struct PolicyStore {
    current: ArcSwap<PolicySet>,
    /// The directory the set comes from; `None` for the built-in preset, which never reloads.
    dir: Option<PathBuf>,
    status: Mutex<ReloadStatus>,
    /// Reloads run one at a time, so a slow one can never overwrite a newer one.
    reloading: Mutex<()>,
    /// Whether a reload may replace a set that has rules with one that has none.
    allow_empty: bool,
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
            allow_empty: false,
        }
    }

    /// Lets a reload replace the serving set with an empty one. Without it such a reload fails: an
    /// empty set denies everything, and a directory emptied by one bad ConfigMap edit should not take
    /// every caller down.
    pub fn allowing_empty(mut self, allow: bool) -> Self {
        self.allow_empty = allow;
        self
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
        self.reload_counting(Trigger::Change)
    }

    /// Like [`PolicyStore::reload_blocking`]; a look at start-up that finds the directory as it was
    /// loaded is no reload and is not counted, whereas an asked-for reload is counted even then.
    fn reload_counting(&self, trigger: Trigger) -> Result<String, LoadErrors> {
        let Some(dir) = &self.dir else {
            return Ok(self.current().revision().to_owned());
        };
        let _one_at_a_time = self
            .reloading
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let loaded = load_dir(dir).and_then(|set| {
            if set.is_empty() && !self.allow_empty && !self.current().is_empty() {
                Err(LoadErrors(vec![LoadError {
                    file: dir.display().to_string(),
                    line: None,
                    message: "the directory holds no rules, policies or routes; an empty set would deny every request, so it is refused (set GATEHOUSE_ALLOW_EMPTY_POLICY=true to allow it)".to_owned(),
                }]))
            } else {
                Ok(set)
            }
        });
        match loaded {
            Ok(set) => {
                let revision = set.revision().to_owned();
                let previous = self.current().revision().to_owned();
                let cleared = {
                    // Counted before the swap, so whoever sees the new revision sees the reload counted.
                    let mut status = self.status();
                    let changed = revision != previous
                        || set.files() != self.current().files()
                        || status.last_error.is_some();
                    if changed || trigger == Trigger::Change {
                        status.reloads_ok += 1;
                        status.remember(Reload {
                            at: unix_now(),
                            revision: revision.clone(),
                            errors: Vec::new(),
                        });
                    }
                    status.last_error.take().is_some()
                };
                if revision != previous || set.files() != self.current().files() {
                    for warning in set.warnings() {
                        tracing::warn!(%warning, "policy warning");
                    }
                }
                if revision != previous {
                    self.replace(set);
                    tracing::info!(%revision, %previous, "policies reloaded");
                } else if set.files() != self.current().files() {
                    // Same rules, other text (a comment, say): serve it so PolicyStatus matches the disk.
                    self.replace(set);
                    tracing::info!(%revision, "policy files reloaded; the rules did not change");
                } else if !cleared {
                    tracing::debug!(%revision, "policies unchanged");
                }
                if cleared {
                    // A file fixed back to the serving text changes no revision: without this line the
                    // operator who fixed it would see the error and nothing after it.
                    tracing::info!(%revision, "policies reloaded; the previous error is cleared");
                }
                Ok(revision)
            }
            Err(errors) => {
                self.failed(&errors);
                Err(errors)
            }
        }
    }

    /// A failed reload: logged, counted and remembered; the last good set keeps serving.
    fn failed(&self, errors: &LoadErrors) {
        let serving = self.current().revision().to_owned();
        tracing::error!(
            errors = %errors,
            serving,
            "policy reload failed; the last good set keeps serving"
        );
        let mut status = self.status();
        status.reloads_failed += 1;
        let at = unix_now();
        status.last_error = Some((at, errors.to_string()));
        status.remember(Reload {
            at,
            revision: serving,
            errors: errors.0.clone(),
        });
    }

    /// [`PolicyStore::reload_blocking`] on the blocking pool.
    pub async fn reload(self: &Arc<Self>) -> Result<String, LoadErrors> {
        self.reload_after(Trigger::Change).await
    }

    /// A reload on the blocking pool, counted as [`PolicyStore::reload_counting`] says.
    pub async fn reload_after(self: &Arc<Self>, trigger: Trigger) -> Result<String, LoadErrors> {
        let store = Arc::clone(self);
        match tokio::task::spawn_blocking(move || store.reload_counting(trigger)).await {
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

/// No real policy tree is this deep.
const MAX_DEPTH: usize = 16;
/// The most directory entries read in a whole tree, files of other kinds included.
pub const MAX_ENTRIES: usize = 10_000;
/// The most policy files, and the most bytes of them, one tree may hold.
pub const MAX_FILES: usize = 1_000;
pub const MAX_TREE_BYTES: u64 = 16 * 1024 * 1024;

/// A walk of a policy tree, with what it has read so far. Each directory is entered once, by its
/// device and inode, so symlinks that loop (or branch back into the tree) cost nothing more.
struct Walk {
    wanted: fn(&str) -> bool,
    sources: Vec<Source>,
    errors: Vec<LoadError>,
    visited: std::collections::HashSet<(u64, u64)>,
    entries: usize,
    bytes: u64,
}

fn read_tree(dir: &Path, wanted: fn(&str) -> bool) -> (Vec<Source>, Vec<LoadError>) {
    let mut walk = Walk {
        wanted,
        sources: Vec::new(),
        errors: Vec::new(),
        visited: std::collections::HashSet::new(),
        entries: 0,
        bytes: 0,
    };
    walk.dir(dir, dir, 0);
    let Walk {
        mut sources,
        errors,
        ..
    } = walk;
    sources.sort_by(|a, b| a.path.cmp(&b.path));
    (sources, errors)
}

fn limit_error(path: &Path, message: String) -> LoadError {
    LoadError {
        file: path.display().to_string(),
        line: None,
        message,
    }
}

fn io_error(path: &Path, e: &std::io::Error) -> LoadError {
    LoadError {
        file: path.display().to_string(),
        line: None,
        message: format!("cannot be read: {e}"),
    }
}

impl Walk {
    fn dir(&mut self, root: &Path, dir: &Path, depth: usize) {
        use std::os::unix::fs::MetadataExt;
        if depth > MAX_DEPTH {
            self.errors
                .push(limit_error(dir, "directories nest too deep".to_owned()));
            return;
        }
        match std::fs::metadata(dir) {
            Ok(meta) => {
                if !self.visited.insert((meta.dev(), meta.ino())) {
                    self.errors.push(limit_error(
                        dir,
                        "a directory link leads back into the tree (a loop or a second path to the same directory)".to_owned(),
                    ));
                    return;
                }
            }
            Err(e) => return self.errors.push(io_error(dir, &e)),
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) => return self.errors.push(io_error(dir, &e)),
        };
        for entry in entries {
            self.entries += 1;
            if self.entries > MAX_ENTRIES {
                self.errors.push(limit_error(
                    root,
                    format!("the tree has more than {MAX_ENTRIES} entries"),
                ));
                return;
            }
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    self.errors.push(io_error(dir, &e));
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
                Ok(meta) if meta.is_dir() => self.dir(root, &path, depth + 1),
                Ok(meta) if meta.is_file() && (self.wanted)(&name) => {
                    self.file(root, &path, meta.len());
                }
                Ok(_) => {}
                Err(e) => self.errors.push(io_error(&path, &e)),
            }
        }
    }

    fn file(&mut self, root: &Path, path: &Path, len: u64) {
        let max_file = u64::try_from(crate::policy::MAX_FILE_BYTES).unwrap_or(u64::MAX);
        if len > max_file {
            return self.errors.push(limit_error(
                path,
                format!(
                    "the file has {len} bytes, more than the {max_file} a policy file may have"
                ),
            ));
        }
        self.bytes += len;
        if self.sources.len() >= MAX_FILES || self.bytes > MAX_TREE_BYTES {
            return self.errors.push(limit_error(
                root,
                format!("the tree holds more than {MAX_FILES} policy files or {MAX_TREE_BYTES} bytes of them"),
            ));
        }
        // Read at most one byte past the limit, in case the file grew since it was measured.
        let mut text = String::new();
        let read = std::fs::File::open(path).and_then(|file| {
            use std::io::Read;
            file.take(max_file + 1).read_to_string(&mut text)
        });
        match read {
            Ok(_) => self.sources.push(Source {
                path: path
                    .strip_prefix(root)
                    .unwrap_or(path)
                    .display()
                    .to_string(),
                text,
            }),
            Err(e) => self.errors.push(io_error(path, &e)),
        }
    }
}
