//! Audit: the decision log (a bounded ring, a rotating JSON-lines file and OpenTelemetry log records
//! over OTLP), reading it back (from its files or a Collector's), which permissions a principal
//! exercised, and least-privilege policies suggested from them.

use std::sync::Arc;

mod entry;
mod exercised;
mod log;
mod otlp;
mod read;
mod suggest;

pub use entry::{
    Decided, DecisionEntry, Mask, MaskKey, MaskedField, ShadowDecided, ShadowVerdict, pseudonym,
};
pub use exercised::{Exercised, IdGroup, Subject, exercised, group_by_id};
pub use log::{DecisionLog, DecisionLogConfig};
pub use otlp::{EVENT_NAME, OtlpLogConfig, SCOPE_NAME};
pub use read::{
    FileRead, LogFormat, MAX_LINE_BYTES, MAX_TOTAL_BYTES, ReadError, ReadLogs, read_logs,
};
pub use suggest::{Suggestion, suggest};

/// Counts entries a sink dropped: `(sink, entries)`. Given by whoever keeps the counts (the
/// service's metrics), so the sinks know nothing of how they are exposed.
pub type CountDropped = Arc<dyn Fn(&'static str, u64) + Send + Sync>;
