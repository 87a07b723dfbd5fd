//! Watching a directory, Kubernetes ConfigMap and Secret style: the policy directory, and the
//! directories holding the API secrets and the TLS certificates.
//!
//! The whole directory tree is watched, not the files: the kubelet updates a ConfigMap by writing a new
//! timestamped folder and swapping the `..data` symlink, editors write a temporary file and rename it,
//! CI tools delete and recreate. Every such change is an event in the directory. Bursts are debounced
//! into one reload.
//!
//! A watch follows the directory it was placed on, not its path: when the directory itself is
//! replaced (a new directory renamed over it, a volume remounted), the old watch hears nothing more.
//! So the path's identity (device and inode) is looked at every [`IDENTITY_CHECK`]; when it changed,
//! the watch is placed again on what the path now names, and the policies are reloaded.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::PolicyStore;

/// How often the directory's identity is compared with the one being watched.
const IDENTITY_CHECK: Duration = Duration::from_secs(2);

/// The device and inode `dir` names now (following links); `None` if it cannot be read.
fn identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| (m.dev(), m.ino()))
}

/// Starts watching `dir` and reloading `store` on changes, until the returned task is aborted.
pub fn spawn_watcher(
    store: Arc<PolicyStore>,
    dir: PathBuf,
    debounce: Duration,
) -> Result<tokio::task::JoinHandle<()>, notify::Error> {
    spawn_dir_watcher(dir, RecursiveMode::Recursive, debounce, move |trigger| {
        let store = Arc::clone(&store);
        async move {
            let _ = store.reload_after(trigger).await;
        }
    })
}

/// Why a watcher reloads: its one look at the start, or a change it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The look once the watch is placed, for a change made before it was: finding the directory as
    /// it was loaded is no reload.
    Start,
    /// An event in the directory, the directory replaced, or an operator's request.
    Change,
}

/// Starts watching `dir` (its whole tree, or only its entries: a secret's directory may be shared)
/// and running `reload` after each burst of changes in it (and when the directory itself is
/// replaced), until the returned task is aborted. `reload` runs once at the start too, for a change
/// made before the watch was placed.
pub fn spawn_dir_watcher<F, R>(
    dir: PathBuf,
    mode: RecursiveMode,
    debounce: Duration,
    reload: R,
) -> Result<tokio::task::JoinHandle<()>, notify::Error>
where
    R: Fn(Trigger) -> F + Send + 'static,
    F: Future<Output = ()> + Send,
{
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<Event>| match event {
            Ok(event) if is_change(&event.kind) => {
                let _ = tx.send(());
            }
            Ok(_) => {}
            // A lost event (queue overflow) may hide a change: reload to be sure.
            Err(_) => {
                let _ = tx.send(());
            }
        })?;
    watcher.watch(&dir, mode)?;
    let mut watched = identity(&dir);
    let dir_shown = dir.display().to_string();
    Ok(tokio::spawn(async move {
        tracing::debug!(dir = %dir_shown, "watching a directory");
        // A change between the initial load and the watch raised no event: look once more.
        reload(Trigger::Start).await;
        let mut checks = tokio::time::interval(IDENTITY_CHECK);
        checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = rx.recv() => {
                    if event.is_none() {
                        return;
                    }
                    // Collect the rest of the burst: wait until the directory has been quiet for
                    // `debounce`.
                    while let Ok(Some(())) = tokio::time::timeout(debounce, rx.recv()).await {}
                    tracing::debug!(dir = %dir_shown, "directory changed");
                    reload(Trigger::Change).await;
                }
                _ = checks.tick() => {
                    let now = identity(&dir);
                    if now == watched {
                        continue;
                    }
                    tracing::info!(dir = %dir_shown, "the directory was replaced: watching the new one");
                    let _ = watcher.unwatch(&dir);
                    watched = match watcher.watch(&dir, mode) {
                        Ok(()) => now,
                        // Not there (yet): try again at the next check.
                        Err(_) => None,
                    };
                    reload(Trigger::Change).await;
                }
            }
        }
    }))
}

/// Reads of the directory (our own reloads among them) are not changes.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        _ => true,
    }
}
