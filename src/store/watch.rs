//! Watching a policy directory, Kubernetes ConfigMap style.
//!
//! The whole directory tree is watched, not the files: the kubelet updates a ConfigMap by writing a new
//! timestamped folder and swapping the `..data` symlink, editors write a temporary file and rename it,
//! CI tools delete and recreate. Every such change is an event in the directory. Bursts are debounced
//! into one reload.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::PolicyStore;

/// Starts watching `dir` and reloading `store` on changes, until the returned task is aborted.
pub fn spawn_watcher(
    store: Arc<PolicyStore>,
    dir: PathBuf,
    debounce: Duration,
) -> Result<tokio::task::JoinHandle<()>, notify::Error> {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let kick = tx.clone();
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
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    // A change between the initial load and this point raised no event: look once more.
    let _ = kick.send(());
    let dir_shown = dir.display().to_string();
    Ok(tokio::spawn(async move {
        // The watcher lives as long as this task.
        let _watcher = watcher;
        tracing::debug!(dir = %dir_shown, "watching the policy directory");
        while rx.recv().await.is_some() {
            // Collect the rest of the burst: wait until the directory has been quiet for `debounce`.
            while let Ok(Some(())) = tokio::time::timeout(debounce, rx.recv()).await {}
            tracing::debug!("policy directory changed");
            let _ = store.reload().await;
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
