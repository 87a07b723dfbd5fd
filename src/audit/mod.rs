//! Audit: the decision log (a bounded ring and a rotating JSON-lines file), which permissions a
//! principal exercised, and least-privilege policies suggested from them.

mod entry;
mod exercised;
mod log;
mod suggest;

pub use entry::{
    Decided, DecisionEntry, Mask, MaskKey, MaskedField, ShadowDecided, ShadowVerdict, pseudonym,
};
pub use exercised::{Exercised, IdGroup, Subject, exercised, group_by_id};
pub use log::{CountDropped, DecisionLog, DecisionLogConfig, read_file};
pub use suggest::{Suggestion, suggest};
