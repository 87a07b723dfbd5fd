//! The decision log: a bounded in-memory ring and, when configured, a JSON-lines file with size-based
//! rotation. Recording never blocks a request: each sink is fed through its own bounded queue, and when
//! a sink falls behind (a slow disk, a stalled pipe) its entries are dropped and counted.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};

use super::entry::{DecisionEntry, MaskedField};
use crate::telemetry::metrics::Metrics;

/// How many entries may wait for a sink before new ones are dropped.
const QUEUE: usize = 16 * 1024;

/// Where decisions are written, and how much is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecisionLogConfig {
    /// Entries kept in memory (for ExercisedPermissions and SuggestPolicy); 0 keeps none.
    pub ring_entries: usize,
    pub file: Option<PathBuf>,
    /// Rotate the file when it reaches this size.
    pub max_file_bytes: u64,
    /// Rotated files kept beside the current one (`decisions.jsonl.1` is the newest).
    pub max_files: usize,
    /// Fields pseudonymized in the file.
    pub mask: Vec<MaskedField>,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        DecisionLogConfig {
            ring_entries: 10_000,
            file: None,
            max_file_bytes: 64 * 1024 * 1024,
            max_files: 5,
            mask: Vec::new(),
        }
    }
}

/// The log's writing end, shared by every service.
pub struct DecisionLog {
    ring: Arc<Mutex<VecDeque<DecisionEntry>>>,
    ring_tx: Option<SyncSender<DecisionEntry>>,
    file_tx: Option<SyncSender<DecisionEntry>>,
    metrics: Arc<Metrics>,
}

impl DecisionLog {
    /// Starts the sinks' writer threads. The file is opened by its thread, so that a file that blocks
    /// on open (a pipe nobody reads) stalls only that sink; a file that cannot be opened is logged and
    /// its entries are counted as dropped.
    pub fn start(
        config: &DecisionLogConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<DecisionLog> {
        let ring = Arc::new(Mutex::new(VecDeque::with_capacity(
            config.ring_entries.min(QUEUE),
        )));
        let ring_tx = if config.ring_entries > 0 {
            let (tx, rx) = sync_channel(QUEUE);
            let ring = Arc::clone(&ring);
            let capacity = config.ring_entries;
            std::thread::Builder::new()
                .name("decision-ring".to_owned())
                .spawn(move || fill_ring(&rx, &ring, capacity))?;
            Some(tx)
        } else {
            None
        };
        let file_tx = match &config.file {
            Some(path) => {
                let (tx, rx) = sync_channel(QUEUE);
                let config = config.clone();
                let path = path.clone();
                std::thread::Builder::new()
                    .name("decision-file".to_owned())
                    .spawn(move || {
                        match RotatingFile::open(path, config.max_file_bytes, config.max_files) {
                            Ok(writer) => write_file(&rx, writer, &config.mask),
                            Err(e) => {
                                tracing::error!(error = %e, "cannot open the decision log file; its entries are dropped");
                            }
                        }
                    })?;
                Some(tx)
            }
            None => None,
        };
        Ok(DecisionLog {
            ring,
            ring_tx,
            file_tx,
            metrics,
        })
    }

    /// Hands `entry` to every sink without waiting.
    pub fn record(&self, entry: DecisionEntry) {
        match (&self.ring_tx, &self.file_tx) {
            (Some(ring), Some(file)) => {
                self.offer(file, entry.clone(), "file");
                self.offer(ring, entry, "ring");
            }
            (Some(ring), None) => self.offer(ring, entry, "ring"),
            (None, Some(file)) => self.offer(file, entry, "file"),
            (None, None) => {}
        }
    }

    fn offer(&self, tx: &SyncSender<DecisionEntry>, entry: DecisionEntry, sink: &'static str) {
        match tx.try_send(entry) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.metrics.decision_log_dropped(sink);
            }
        }
    }

    /// A copy of the entries in memory, oldest first.
    pub fn snapshot(&self) -> Vec<DecisionEntry> {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.iter().cloned().collect()
    }
}

fn fill_ring(rx: &Receiver<DecisionEntry>, ring: &Mutex<VecDeque<DecisionEntry>>, capacity: usize) {
    while let Ok(entry) = rx.recv() {
        let mut ring = ring.lock().unwrap_or_else(PoisonError::into_inner);
        if ring.len() == capacity {
            ring.pop_front();
        }
        ring.push_back(entry);
        // Take whatever else is waiting under the same lock.
        while let Ok(entry) = rx.try_recv() {
            if ring.len() == capacity {
                ring.pop_front();
            }
            ring.push_back(entry);
        }
    }
}

fn write_file(rx: &Receiver<DecisionEntry>, mut file: RotatingFile, mask: &[MaskedField]) {
    while let Ok(entry) = rx.recv() {
        let mut pending = vec![entry];
        while let Ok(entry) = rx.try_recv() {
            pending.push(entry);
            if pending.len() >= 1024 {
                break;
            }
        }
        for entry in pending {
            let entry = if mask.is_empty() {
                entry
            } else {
                entry.masked(mask)
            };
            if let Err(e) = file.write_entry(&entry) {
                tracing::warn!(error = %e, "cannot write the decision log file");
            }
        }
        if let Err(e) = file.flush() {
            tracing::warn!(error = %e, "cannot flush the decision log file");
        }
    }
}

/// A JSON-lines file that rotates by size: `path` is current, `path.1` the newest rotated file.
struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    max_files: usize,
    out: BufWriter<File>,
    written: u64,
}

impl RotatingFile {
    fn open(path: PathBuf, max_bytes: u64, max_files: usize) -> std::io::Result<RotatingFile> {
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        let written = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(RotatingFile {
            path,
            max_bytes,
            max_files,
            out: BufWriter::new(file),
            written,
        })
    }

    fn write_entry(&mut self, entry: &DecisionEntry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let len = u64::try_from(line.len()).unwrap_or(u64::MAX);
        if self.written > 0 && self.written.saturating_add(len) > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(&line)?;
        self.written = self.written.saturating_add(len);
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }

    /// `path.(n-1)` -> `path.n`, ..., `path` -> `path.1`, and a new `path`.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        if self.max_files == 0 {
            fs::remove_file(&self.path)?;
        } else {
            let _ = fs::remove_file(numbered(&self.path, self.max_files));
            for n in (1..self.max_files).rev() {
                let from = numbered(&self.path, n);
                if from.exists() {
                    fs::rename(&from, numbered(&self.path, n + 1))?;
                }
            }
            fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        self.out = BufWriter::new(file);
        self.written = 0;
        Ok(())
    }
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Reads a decision log file (and nothing else): every line that parses, and how many did not.
pub fn read_file(path: &Path) -> std::io::Result<(Vec<DecisionEntry>, usize)> {
    let text = fs::read_to_string(path)?;
    let mut entries = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<DecisionEntry>(line) {
            Ok(entry) => entries.push(entry),
            Err(_) => bad += 1,
        }
    }
    Ok((entries, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: i64) -> DecisionEntry {
        DecisionEntry {
            time: String::new(),
            time_ms: n,
            principal_id: format!("user{n}"),
            principal_kind: "user".to_owned(),
            roles: Vec::new(),
            action: "read".to_owned(),
            resource_kind: "feed".to_owned(),
            resource_id: "user:bob".to_owned(),
            decision: "allow".to_owned(),
            allowed: true,
            rule: "r".to_owned(),
            rule_id_pattern: None,
            revision: "x".to_owned(),
            mode: "enforcing".to_owned(),
            dry_run: false,
            source: "check".to_owned(),
            route: None,
            shadow: None,
            trace_id: String::new(),
            latency_us: 1,
        }
    }

    #[test]
    fn the_file_rotates_by_size_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let mut file = RotatingFile::open(path.clone(), 1000, 2).unwrap();
        for n in 0..100 {
            file.write_entry(&entry(n)).unwrap();
        }
        file.flush().unwrap();
        let (current, bad) = read_file(&path).unwrap();
        let (older, _) = read_file(&numbered(&path, 1)).unwrap();
        assert_eq!(bad, 0);
        assert!(!current.is_empty() && !older.is_empty());
        assert!(!numbered(&path, 3).exists());
        assert!(fs::metadata(&path).unwrap().len() <= 1000);
        assert_eq!(current.last().unwrap().time_ms, 99);
        assert!(older.last().unwrap().time_ms < current.first().unwrap().time_ms);
    }
}
