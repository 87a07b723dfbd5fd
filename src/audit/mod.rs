//! Audit: the decision log (a bounded ring, a rotating JSON-lines file and OpenTelemetry log records
//! over OTLP), reading it back (from its files or a Collector's), which permissions a principal
//! exercised, and least-privilege policies suggested from them.

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
pub use log::{CountDropped, DecisionLog, DecisionLogConfig};
pub use otlp::{EVENT_NAME, OtlpLogConfig, SCOPE_NAME};
pub use read::{
    FileRead, LogFormat, MAX_LINE_BYTES, MAX_TOTAL_BYTES, ReadError, ReadLogs, read_logs,
};
pub use suggest::{Suggestion, suggest};
