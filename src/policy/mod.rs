//! The policy model: the YAML language, its compiler, and the compiled, indexed [`PolicySet`]; the
//! built-in Stream Feeds preset.
//!
//! Pure and synchronous: no I/O, no proto types, no clock. `store` reads the files; `engine` evaluates
//! what this module builds.

pub mod cel;
mod compile;
mod feeds;
mod file;
pub mod hint;
mod model;
mod pattern;
mod problem;
mod routes;
mod set;
mod source;

pub use cel::{CelCondition, CelError, CelInput};
pub use compile::{MAX_FILE_BYTES, MAX_PRIORITY, check_file_shape, compile};
pub use feeds::{FeedGroupPermission, FeedsPreset};
pub use model::{
    Actions, Body, Candidate, Condition, Effect, ErrorFormat, KindDecl, Kinds, Logic, Mode, Modes,
    NamedPolicy, Operand, Origin, PolicyBody, PrincipalFilter, Revocations, Strategy,
};
pub use pattern::{Captures, MAX_CAPTURES, Pattern};
pub use problem::{LoadError, LoadErrors};
pub use routes::{
    BodyShapeError, FieldSource, IdPiece, MAX_SEGMENTS, PathError, Route, RouteMatch, RouteTable,
    ValueSource, body_values, is_plain_target,
};
pub use set::PolicySet;
pub use source::Source;
