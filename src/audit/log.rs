//! The decision log: a bounded in-memory ring and, when configured, a JSON-lines file with size-based
//! rotation. Both hold the entry's JSON line, written once on the request's path. Recording never
//! blocks a request on I/O: the line is pushed into the ring and into the file's pending buffer, each
//! under a lock held only for the push, and a writer thread drains the buffer on a short interval. When the file falls behind (a slow disk, a pipe nobody reads) and its
//! buffer is full, entries are dropped and counted. No thread is woken per entry: at tens of thousands
//! of decisions a second, a wake-up per entry would cost more than the decision.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use std::cell::RefCell;

use super::entry::{Decided, DecisionEntry, MaskedField};
use crate::telemetry::metrics::Metrics;

/// How many entries may wait for the file before new ones are dropped.
const QUEUE: usize = 16 * 1024;
/// Bytes gathered before a write to the file: a drain of a busy interval is a few writes.
const WRITE_BUFFER: usize = 64 * 1024;
/// How often the writer thread drains the pending entries.
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);

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

/// One entry's JSON line, shared by the ring and the file's buffer.
type Line = Arc<str>;

/// The newest entries, oldest first.
struct Ring {
    lines: VecDeque<Line>,
    capacity: usize,
}

/// Lines waiting for the file's writer thread.
#[derive(Default)]
struct Pending {
    lines: Mutex<Vec<Line>>,
    /// Set when the log is dropped: the writer drains what is left and stops.
    closed: AtomicBool,
}

/// The log's writing end, shared by every service.
pub struct DecisionLog {
    ring: Option<Mutex<Ring>>,
    file: Option<Arc<Pending>>,
    /// Fields pseudonymized in the file (the ring keeps them, for the server-token RPCs).
    mask: Vec<MaskedField>,
    metrics: Arc<Metrics>,
}

thread_local! {
    /// Where a line is written before it is copied into its one allocation.
    static SCRATCH: RefCell<String> = RefCell::new(String::with_capacity(1024));
}

/// `entry` as a shared line, with `mask`ed fields pseudonymized.
fn line(entry: &Decided<'_>, mask: &[MaskedField]) -> Line {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            entry.write_line(mask, &mut scratch);
            Line::from(scratch.as_str())
        }
        // Only reachable if writing a line recorded another; stay correct without the scratch.
        Err(_) => {
            let mut own = String::new();
            entry.write_line(mask, &mut own);
            Line::from(own)
        }
    })
}

impl DecisionLog {
    /// Starts the file's writer thread, if there is a file. The file is opened by that thread, so a
    /// file that blocks on open (a pipe nobody reads) stalls only the file; one that cannot be opened
    /// is logged, and its entries are counted as dropped once the buffer is full.
    pub fn start(
        config: &DecisionLogConfig,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<DecisionLog> {
        let ring = (config.ring_entries > 0).then(|| {
            Mutex::new(Ring {
                lines: VecDeque::with_capacity(config.ring_entries.min(QUEUE)),
                capacity: config.ring_entries,
            })
        });
        let file = match &config.file {
            Some(path) => {
                let pending = Arc::new(Pending::default());
                let queue = Arc::clone(&pending);
                let config = config.clone();
                let path = path.clone();
                std::thread::Builder::new()
                    .name("decision-file".to_owned())
                    .spawn(move || {
                        match RotatingFile::open(path, config.max_file_bytes, config.max_files) {
                            Ok(writer) => write_file(&queue, writer),
                            Err(e) => {
                                tracing::error!(error = %e, "cannot open the decision log file; its entries are dropped");
                            }
                        }
                    })?;
                Some(pending)
            }
            None => None,
        };
        Ok(DecisionLog {
            ring,
            file,
            mask: config.mask.clone(),
            metrics,
        })
    }

    /// Whether any sink keeps entries; when none does, callers need not build them.
    pub fn is_enabled(&self) -> bool {
        self.ring.is_some() || self.file.is_some()
    }

    /// Records `entry` in the ring and the file's buffer, without waiting for any I/O.
    pub fn record(&self, entry: &Decided<'_>) {
        let plain = line(entry, &[]);
        if let Some(file) = &self.file {
            let for_file = if self.mask.is_empty() {
                Arc::clone(&plain)
            } else {
                line(entry, &self.mask)
            };
            let mut pending = file.lines.lock().unwrap_or_else(PoisonError::into_inner);
            if pending.len() < QUEUE {
                pending.push(for_file);
            } else {
                drop(pending);
                self.metrics.decision_log_dropped("file");
            }
        }
        if let Some(ring) = &self.ring {
            let mut ring = ring.lock().unwrap_or_else(PoisonError::into_inner);
            let evicted = if ring.lines.len() == ring.capacity {
                ring.lines.pop_front()
            } else {
                None
            };
            ring.lines.push_back(plain);
            drop(ring);
            // The evicted line is freed after the lock is released.
            drop(evicted);
        }
    }

    /// The entries in memory, oldest first.
    pub fn snapshot(&self) -> Vec<DecisionEntry> {
        let lines: Vec<Line> = match &self.ring {
            Some(ring) => {
                let ring = ring.lock().unwrap_or_else(PoisonError::into_inner);
                ring.lines.iter().cloned().collect()
            }
            None => Vec::new(),
        };
        lines.iter().filter_map(|line| parse_line(line)).collect()
    }
}

/// One line read back; none for a line that is not an entry.
fn parse_line(line: &str) -> Option<DecisionEntry> {
    serde_json::from_str(line).ok()
}

impl Drop for DecisionLog {
    fn drop(&mut self) {
        if let Some(file) = &self.file {
            file.closed.store(true, Ordering::Release);
        }
    }
}

/// Drains the pending lines into the file every interval; once the log is dropped, writes what is
/// left and stops.
fn write_file(pending: &Pending, mut file: RotatingFile) {
    loop {
        let closed = pending.closed.load(Ordering::Acquire);
        if !closed {
            std::thread::sleep(DRAIN_INTERVAL);
        }
        let batch =
            std::mem::take(&mut *pending.lines.lock().unwrap_or_else(PoisonError::into_inner));
        for line in &batch {
            if let Err(e) = file.write_line(line) {
                tracing::warn!(error = %e, "cannot write the decision log file");
            }
        }
        if !batch.is_empty()
            && let Err(e) = file.flush()
        {
            tracing::warn!(error = %e, "cannot flush the decision log file");
        }
        if closed {
            break;
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
            out: BufWriter::with_capacity(WRITE_BUFFER, file),
            written,
        })
    }

    /// Appends `line` (newline included), rotating first if it would not fit.
    fn write_line(&mut self, line: &str) -> std::io::Result<()> {
        let len = u64::try_from(line.len()).unwrap_or(u64::MAX);
        if self.written > 0 && self.written.saturating_add(len) > self.max_bytes {
            self.rotate()?;
        }
        self.out.write_all(line.as_bytes())?;
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
        self.out = BufWriter::with_capacity(WRITE_BUFFER, file);
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
        match parse_line(line) {
            Some(entry) => entries.push(entry),
            None => bad += 1,
        }
    }
    Ok((entries, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(n: i64) -> String {
        let mut line = String::new();
        super::super::entry::sample(n)
            .decided()
            .write_line(&[], &mut line);
        line
    }

    #[test]
    fn the_file_rotates_by_size_and_keeps_the_newest_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let mut file = RotatingFile::open(path.clone(), 1000, 2).unwrap();
        for n in 0..100 {
            file.write_line(&line(n)).unwrap();
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
