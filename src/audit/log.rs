//! The decision log: a bounded in-memory ring and, when configured, a JSON-lines file with size-based
//! rotation and OpenTelemetry log records over OTLP (`otlp.rs`). All hold the entry's JSON line,
//! written once on the request's path.
//!
//! Recording never blocks a request on I/O and, once warm, allocates nothing: the line is written
//! into a per-thread scratch buffer and then, under one short lock, copied into the ring slot it
//! evicts and appended to the file's pending text. A writer thread swaps the pending text out on a
//! short interval and writes it. When the file falls behind (a slow disk, a pipe nobody reads) and
//! its pending text is full, entries are dropped and counted. No thread is woken per entry: at tens
//! of thousands of decisions a second, a wake-up per entry would cost more than the decision.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::CountDropped;
use super::entry::{Decided, DecisionEntry, Mask, MaskKey, MaskedField};
use super::otlp::{OtlpLogConfig, OtlpSink};

/// How many entries may wait for the file before new ones are dropped.
const QUEUE: usize = 16 * 1024;
/// How many bytes of entries may wait for the file, whatever their number: fields are clipped, but a
/// burst of long ones must not hold the process's memory either.
const QUEUE_BYTES: usize = 32 * 1024 * 1024;
/// A ring slot that a long line grew past this is given back when a shorter line reuses it.
const SLOT_KEPT: usize = 4 * 1024;
/// Room a new ring slot gets past its line, so the next lines (a longer latency, another id) fit.
const SLOT_SLACK: usize = 32;
/// How long closing waits for the writer to write what is pending.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How often a file that cannot be opened (or failed) is tried again.
const REOPEN_INTERVAL: Duration = Duration::from_secs(1);
/// Bytes gathered before a write to the file: a drain of a busy interval is a few writes.
const WRITE_BUFFER: usize = 64 * 1024;
/// How often the writer thread drains the pending entries.
const DRAIN_INTERVAL: Duration = Duration::from_millis(20);
/// Pending text kept allocated between drains, at most; a burst beyond it is freed after writing.
const KEPT_CAPACITY: usize = 4 * 1024 * 1024;

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
    /// Fields pseudonymized in the file and the OTLP records.
    pub mask: Vec<MaskedField>,
    /// OpenTelemetry log records over OTLP/gRPC; `None`: not sent.
    pub otlp: Option<OtlpLogConfig>,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        DecisionLogConfig {
            ring_entries: 10_000,
            file: None,
            max_file_bytes: 64 * 1024 * 1024,
            max_files: 5,
            mask: Vec::new(),
            otlp: None,
        }
    }
}

/// What recording writes to, under one lock.
#[derive(Default)]
struct Buffers {
    /// The newest lines, oldest first; a full ring's oldest slot is reused for the next line.
    ring: VecDeque<String>,
    ring_capacity: usize,
    /// Lines waiting for the file's writer thread, one after the other.
    pending: String,
    pending_lines: usize,
    /// Set by the writer as it takes its last batch: later lines would never be written, so they
    /// are counted as dropped instead of queued.
    writer_gone: bool,
}

/// The buffers and the writer thread's stop flag, shared with that thread.
#[derive(Default)]
struct Shared {
    buffers: Mutex<Buffers>,
    /// Set when the log is dropped: the writer drains what is left and stops.
    closed: AtomicBool,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffers> {
        self.buffers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The log's writing end, shared by every service.
pub struct DecisionLog {
    shared: Arc<Shared>,
    keeps_ring: bool,
    keeps_file: bool,
    /// Fields pseudonymized in the file and the OTLP records (the ring keeps them, for the
    /// server-token RPCs); none when nothing is masked.
    mask: Option<Mask>,
    count_dropped: CountDropped,
    /// The file's writer thread, until the log is closed.
    writer: Mutex<Option<Writer>>,
    /// The OTLP sink, which gets the file's (masked) line.
    otlp: Option<OtlpSink>,
}

/// The file's writer thread, and what tells that it has finished.
struct Writer {
    thread: std::thread::Thread,
    /// Disconnected when the thread ends (its sender is dropped then).
    finished: mpsc::Receiver<()>,
}

/// A thread's buffers for the lines it is about to record.
#[derive(Default)]
struct Scratch {
    line: String,
    masked: String,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl DecisionLog {
    /// Starts the file's writer thread, if there is a file. The file is opened by that thread, so a
    /// file that blocks on open (a pipe nobody reads) stalls only the file. While the file cannot be
    /// opened or written, its entries are dropped and counted, and it is tried again every second.
    pub fn start(
        config: &DecisionLogConfig,
        mask_key: MaskKey,
        count_dropped: CountDropped,
    ) -> std::io::Result<DecisionLog> {
        let shared = Arc::new(Shared::default());
        {
            let mut buffers = shared.lock();
            buffers.ring_capacity = config.ring_entries;
            buffers.ring = VecDeque::with_capacity(config.ring_entries.min(QUEUE));
        }
        let mut writer = None;
        if let Some(path) = &config.file {
            let queue = Arc::clone(&shared);
            let file = FileSpec {
                path: path.clone(),
                max_bytes: config.max_file_bytes,
                max_files: config.max_files,
            };
            let count = Arc::clone(&count_dropped);
            let (finished_tx, finished) = mpsc::sync_channel::<()>(0);
            let handle = std::thread::Builder::new()
                .name("decision-file".to_owned())
                .spawn(move || {
                    let _finished = finished_tx;
                    write_file(&queue, &file, &*count);
                })?;
            writer = Some(Writer {
                thread: handle.thread().clone(),
                finished,
            });
        }
        let otlp = match &config.otlp {
            Some(otlp) => Some(OtlpSink::start(otlp, Arc::clone(&count_dropped))?),
            None => None,
        };
        Ok(DecisionLog {
            shared,
            keeps_ring: config.ring_entries > 0,
            keeps_file: config.file.is_some(),
            mask: (!config.mask.is_empty()).then(|| Mask {
                fields: config.mask.clone(),
                key: mask_key,
            }),
            count_dropped,
            writer: Mutex::new(writer),
            otlp,
        })
    }

    /// Has the file's writer write what is pending and the OTLP exporter send it, and both stop,
    /// waiting for them a bounded time together (a file that blocks, such as a pipe nobody reads, or
    /// a stalled collector must not hold up shutdown). Entries recorded afterwards, and those still
    /// pending when the wait ends, are counted as dropped from their sink; the ring keeps taking
    /// them.
    pub fn close(&self) {
        let deadline = Instant::now() + CLOSE_WAIT;
        if let Some(otlp) = &self.otlp {
            otlp.signal_close();
        }
        self.close_file();
        if let Some(otlp) = &self.otlp {
            otlp.wait_closed(deadline);
        }
    }

    fn close_file(&self) {
        self.shared.closed.store(true, Ordering::Release);
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(writer) = writer {
            writer.thread.unpark();
            if let Err(RecvTimeoutError::Timeout) = writer.finished.recv_timeout(CLOSE_WAIT) {
                let lost = {
                    let mut buffers = self.shared.lock();
                    buffers.writer_gone = true;
                    buffers.pending.clear();
                    std::mem::take(&mut buffers.pending_lines)
                };
                (self.count_dropped)("file", u64::try_from(lost).unwrap_or(u64::MAX));
                tracing::warn!(
                    lost,
                    "the decision log file did not take its last entries in time"
                );
            }
        }
    }

    /// Whether any sink keeps entries; when none does, callers need not build them.
    pub fn is_enabled(&self) -> bool {
        self.keeps_ring || self.keeps_file || self.otlp.is_some()
    }

    /// Records `entry` in the ring and the file's buffer, without waiting for any I/O.
    pub fn record(&self, entry: &Decided<'_>) {
        SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
            Ok(mut scratch) => self.record_with(entry, &mut scratch),
            // Only reachable if recording recorded another entry on the same thread.
            Err(_) => self.record_with(entry, &mut Scratch::default()),
        });
    }

    fn record_with(&self, entry: &Decided<'_>, scratch: &mut Scratch) {
        scratch.line.clear();
        entry.write_line(None, &mut scratch.line);
        let sends = self.keeps_file || self.otlp.is_some();
        let for_file = if let (true, Some(mask)) = (sends, &self.mask) {
            scratch.masked.clear();
            entry.write_line(Some(mask), &mut scratch.masked);
            &scratch.masked
        } else {
            &scratch.line
        };
        let mut buffers = self.shared.lock();
        let mut dropped = false;
        if self.keeps_file {
            let fits = !buffers.writer_gone
                && buffers.pending_lines < QUEUE
                && buffers.pending.len().saturating_add(for_file.len()) <= QUEUE_BYTES;
            if fits {
                buffers.pending.push_str(for_file);
                buffers.pending_lines += 1;
            } else {
                dropped = true;
            }
        }
        if self.keeps_ring {
            let mut slot = if buffers.ring.len() >= buffers.ring_capacity {
                buffers.ring.pop_front().unwrap_or_default()
            } else {
                String::new()
            };
            // Sized afresh when the line does not fit: growing in place would double the slot, and a
            // full ring of slots grown one byte past their line holds twice the lines' bytes.
            let needed = scratch.line.len();
            if slot.capacity() < needed || (slot.capacity() > SLOT_KEPT && needed <= SLOT_KEPT) {
                slot = String::with_capacity(needed + SLOT_SLACK);
            }
            slot.clear();
            slot.push_str(&scratch.line);
            buffers.ring.push_back(slot);
        }
        drop(buffers);
        if dropped {
            (self.count_dropped)("file", 1);
        }
        if let Some(otlp) = &self.otlp {
            otlp.record(for_file);
        }
    }

    /// The entries in memory, oldest first.
    pub fn snapshot(&self) -> Vec<DecisionEntry> {
        let lines: Vec<String> = self.shared.lock().ring.iter().cloned().collect();
        lines.iter().filter_map(|line| parse_line(line)).collect()
    }
}

/// One line read back; none for a line that is not an entry.
fn parse_line(line: &str) -> Option<DecisionEntry> {
    serde_json::from_str(line).ok()
}

impl Drop for DecisionLog {
    /// Tells the writer to write what is left and stop, without waiting for it ([`DecisionLog::close`]
    /// waits).
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        if let Some(writer) = self
            .writer
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            writer.thread.unpark();
        }
    }
}

/// The decision log file and its rotation.
struct FileSpec {
    path: PathBuf,
    max_bytes: u64,
    max_files: usize,
}

/// Takes the pending text every interval and writes it; once the log is closed, writes what is left
/// and stops. The text taken is swapped for the one written last time, so both keep their capacity.
/// The file is opened here, and opened again after any failure, at most once per
/// [`REOPEN_INTERVAL`]; entries that cannot be written meanwhile are dropped and counted.
fn write_file(
    shared: &Shared,
    spec: &FileSpec,
    count_dropped: &(dyn Fn(&'static str, u64) + Send + Sync),
) {
    let mut file: Option<RotatingFile> = None;
    let mut last_open: Option<Instant> = None;
    let mut failing = false;
    let mut batch = String::new();
    loop {
        let closed = shared.closed.load(Ordering::Acquire);
        if !closed {
            std::thread::park_timeout(DRAIN_INTERVAL);
        }
        if file.is_none() && last_open.is_none_or(|at| at.elapsed() >= REOPEN_INTERVAL) {
            last_open = Some(Instant::now());
            match RotatingFile::open(spec) {
                Ok(opened) => {
                    if failing {
                        tracing::info!("the decision log file is written again");
                    }
                    failing = false;
                    file = Some(opened);
                }
                Err(e) if !failing => {
                    failing = true;
                    tracing::error!(error = %e, "cannot open the decision log file; its entries are dropped until it can be");
                }
                Err(_) => {}
            }
        }
        let lines = {
            let mut buffers = shared.lock();
            std::mem::swap(&mut buffers.pending, &mut batch);
            buffers.writer_gone = closed;
            std::mem::take(&mut buffers.pending_lines)
        };
        let written = match &mut file {
            Some(open) => write_batch(open, &batch),
            None => Ok(()),
        };
        let dropped = match (written, file.is_some()) {
            (Ok(()), true) => 0,
            (Ok(()), false) => lines,
            (Err(e), _) => {
                if !failing {
                    failing = true;
                    tracing::error!(error = %e, "cannot write the decision log file; its entries are dropped until it can be");
                }
                // What the buffer holds is thrown away, not written again when it is dropped; the
                // batch's lines cannot be told apart from what reached the file, so all count as
                // dropped.
                if let Some(broken) = file.take() {
                    broken.discard();
                }
                lines
            }
        };
        if dropped > 0 {
            count_dropped("file", u64::try_from(dropped).unwrap_or(u64::MAX));
        }
        batch.clear();
        if batch.capacity() > KEPT_CAPACITY {
            batch.shrink_to(KEPT_CAPACITY);
        }
        if closed {
            break;
        }
    }
}

/// Writes and flushes `batch`.
fn write_batch(file: &mut RotatingFile, batch: &str) -> std::io::Result<()> {
    for line in batch.split_inclusive('\n') {
        file.write_line(line)?;
    }
    if batch.is_empty() {
        return Ok(());
    }
    file.flush()
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
    /// Opens `spec.path` for appending. A file that a failed write left ending mid-line gets a
    /// newline first, so the next entry starts a line of its own.
    fn open(spec: &FileSpec) -> std::io::Result<RotatingFile> {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.path)?;
        let mut written = file.metadata().map(|m| m.len()).unwrap_or(0);
        if written > 0 && !ends_with_newline(&spec.path)? {
            file.write_all(b"\n")?;
            written += 1;
        }
        Ok(RotatingFile {
            path: spec.path.clone(),
            max_bytes: spec.max_bytes,
            max_files: spec.max_files,
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

    /// Closes the file without writing what its buffer holds (after a failed write).
    fn discard(self) {
        let (_file, _unwritten) = self.out.into_parts();
    }

    /// `path.(n-1)` -> `path.n`, ..., `path` -> `path.1`, and a new `path`. A file that is not
    /// there (moved away by someone else) is skipped, so rotation still ends in a new `path`.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.out.flush()?;
        if self.max_files == 0 {
            unless_missing(fs::remove_file(&self.path))?;
        } else {
            // Best effort: the rename below replaces it anyway where it can.
            let _ = fs::remove_file(numbered(&self.path, self.max_files));
            for n in (1..self.max_files).rev() {
                let from = numbered(&self.path, n);
                unless_missing(fs::rename(&from, numbered(&self.path, n + 1)))?;
            }
            unless_missing(fs::rename(&self.path, numbered(&self.path, 1)))?;
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

/// Whether the file's last byte is a newline.
fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = File::open(path)?;
    file.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    file.read_exact(&mut last)?;
    Ok(last == *b"\n")
}

/// A file operation's result, with "no such file" counted as done.
fn unless_missing(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Reads a decision log file (and nothing else): every line that parses, and how many did not.
#[cfg(test)]
pub(super) fn read_file(path: &Path) -> std::io::Result<(Vec<DecisionEntry>, usize)> {
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
    use crate::telemetry::metrics::Metrics;

    fn line(n: i64) -> String {
        let mut line = String::new();
        super::super::entry::sample(n)
            .decided()
            .write_line(None, &mut line);
        line
    }

    fn log(ring_entries: usize, file: Option<PathBuf>, mask: Vec<MaskedField>) -> DecisionLog {
        let config = DecisionLogConfig {
            ring_entries,
            file,
            mask,
            ..DecisionLogConfig::default()
        };
        DecisionLog::start(&config, key(), counter(&metrics())).unwrap()
    }

    fn key() -> MaskKey {
        MaskKey::derive(b"an app secret of at least thirty-two bytes")
    }

    fn metrics() -> Arc<Metrics> {
        Arc::new(Metrics::new(None, true))
    }

    fn counter(metrics: &Arc<Metrics>) -> CountDropped {
        let metrics = Arc::clone(metrics);
        Arc::new(move |sink, entries| metrics.decision_log_dropped(sink, entries))
    }

    /// A log keeping `ring_entries` and writing `path`, and the metrics it counts drops in.
    fn log_and_metrics(ring_entries: usize, path: &Path) -> (DecisionLog, Arc<Metrics>) {
        let metrics = metrics();
        let config = DecisionLogConfig {
            ring_entries,
            file: Some(path.to_owned()),
            ..DecisionLogConfig::default()
        };
        let log = DecisionLog::start(&config, key(), counter(&metrics)).unwrap();
        (log, metrics)
    }

    /// `gatehouse_decision_log_dropped_total{sink="file"}` as exposed.
    fn dropped(metrics: &Metrics) -> u64 {
        let text = metrics.render().unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("gatehouse_decision_log_dropped_total{sink=\"file\"} "))
            .map_or(0, |v| v.trim().parse().unwrap())
    }

    #[test]
    fn ring_slots_hold_their_line_and_a_little_more_however_lines_grow() {
        let log = log(50, None, Vec::new());
        // Times of growing width make each line a byte or so longer than the slot it reuses.
        for n in 0..5000 {
            record(&log, n * 1_000_003);
        }
        let buffers = log.shared.lock();
        for slot in &buffers.ring {
            assert!(
                slot.capacity() <= slot.len() + SLOT_SLACK + 8,
                "{} bytes held for a line of {}",
                slot.capacity(),
                slot.len()
            );
        }
    }

    #[test]
    fn closing_writes_every_entry_recorded_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let log = log(0, Some(path.clone()), Vec::new());
        for n in 0..5000 {
            record(&log, n);
        }
        log.close();
        let (written, bad) = read_file(&path).unwrap();
        assert_eq!(bad, 0);
        let times: Vec<i64> = written.iter().map(|e| e.time_ms).collect();
        assert_eq!(times, (0..5000).collect::<Vec<_>>());
        // Closing twice, and dropping after closing, are harmless.
        log.close();
        drop(log);
    }

    #[test]
    fn entries_recorded_after_closing_are_counted_as_dropped_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let (log, metrics) = log_and_metrics(10, &path);
        for n in 0..3 {
            record(&log, n);
        }
        log.close();
        for n in 3..5 {
            record(&log, n);
        }
        assert_eq!(read_file(&path).unwrap().0.len(), 3);
        assert_eq!(dropped(&metrics), 2);
        assert_eq!(log.snapshot().len(), 5, "the ring keeps taking entries");
    }

    #[test]
    fn a_line_cut_short_by_a_failed_write_is_ended_before_the_next() {
        let (_dir, path, spec) = small_file();
        fs::write(&path, "{\"time_ms\":1,\"princ").unwrap();
        let mut file = RotatingFile::open(&spec).unwrap();
        file.write_line(&line(2)).unwrap();
        file.flush().unwrap();
        let (entries, bad) = read_file(&path).unwrap();
        assert_eq!(bad, 1, "the cut line stays unreadable");
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].time_ms, 2);
    }

    #[test]
    fn entries_that_cannot_reach_the_file_are_counted_as_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing").join("decisions.jsonl");
        let (log, metrics) = log_and_metrics(3, &path);
        for n in 0..10 {
            record(&log, n);
        }
        log.close();
        assert_eq!(dropped(&metrics), 10);
        assert_eq!(log.snapshot().len(), 3, "the ring keeps its entries");
        assert!(!path.exists());
    }

    /// A file of at most 1,000 bytes and two rotated ones, in a new directory.
    fn small_file() -> (tempfile::TempDir, PathBuf, FileSpec) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let spec = FileSpec {
            path: path.clone(),
            max_bytes: 1000,
            max_files: 2,
        };
        (dir, path, spec)
    }

    #[test]
    fn a_file_moved_away_by_someone_else_is_started_again_at_rotation() {
        let (dir, path, spec) = small_file();
        let mut file = RotatingFile::open(&spec).unwrap();
        for n in 0..3 {
            file.write_line(&line(n)).unwrap();
        }
        file.flush().unwrap();
        fs::rename(&path, dir.path().join("elsewhere.jsonl")).unwrap();
        for n in 3..100 {
            file.write_line(&line(n)).unwrap();
        }
        file.flush().unwrap();
        let (current, bad) = read_file(&path).unwrap();
        assert_eq!(bad, 0);
        assert_eq!(current.last().unwrap().time_ms, 99);
        assert!(numbered(&path, 1).exists() && numbered(&path, 2).exists());
        assert!(!numbered(&path, 3).exists());
        let spec = FileSpec {
            max_files: 0,
            ..spec
        };
        let mut file = RotatingFile::open(&spec).unwrap();
        fs::remove_file(&path).unwrap();
        for n in 0..100 {
            file.write_line(&line(n)).unwrap();
        }
        file.flush().unwrap();
        assert_eq!(read_file(&path).unwrap().0.last().unwrap().time_ms, 99);
    }

    fn record(log: &DecisionLog, n: i64) {
        let mut entry = super::super::entry::sample(n);
        // Lines of different lengths, so that reused ring slots must be cleared and grown.
        entry.resource_id = format!("user:{}", "x".repeat(usize::try_from(n % 7).unwrap()));
        log.record(&entry.decided());
    }

    #[test]
    fn the_ring_keeps_the_newest_entries_in_order() {
        let log = log(5, None, Vec::new());
        for n in 0..23 {
            record(&log, n);
        }
        let kept = log.snapshot();
        let times: Vec<i64> = kept.iter().map(|e| e.time_ms).collect();
        assert_eq!(times, [18, 19, 20, 21, 22]);
        for entry in &kept {
            let x = usize::try_from(entry.time_ms % 7).unwrap();
            assert_eq!(entry.resource_id, format!("user:{}", "x".repeat(x)));
        }
    }

    #[test]
    fn the_file_gets_masked_lines_and_the_ring_plain_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let log = log(10, Some(path.clone()), vec![MaskedField::PrincipalId]);
        for n in 0..3 {
            record(&log, n);
        }
        let plain: Vec<String> = log.snapshot().into_iter().map(|e| e.principal_id).collect();
        assert_eq!(plain, ["user0", "user1", "user2"]);
        drop(log);
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        let written = loop {
            let (written, bad) = read_file(&path).unwrap_or_default();
            assert_eq!(bad, 0);
            if written.len() == 3 || std::time::Instant::now() > deadline {
                break written;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let masked: Vec<String> = written.into_iter().map(|e| e.principal_id).collect();
        assert_eq!(
            masked,
            ["user0", "user1", "user2"].map(|id| super::super::entry::pseudonym(&key(), id))
        );
    }

    #[test]
    fn the_file_rotates_by_size_and_keeps_the_newest_files() {
        let (_dir, path, spec) = small_file();
        let mut file = RotatingFile::open(&spec).unwrap();
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
