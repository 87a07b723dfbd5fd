//! The policy model: rules, the built-in Stream Feeds preset, and the compiled, indexed [`PolicySet`].
//!
//! Pure and synchronous: no I/O, no proto types, no clock. `engine` evaluates what this module builds;
//! `store` holds the live set.

mod feeds;
mod rule;
mod set;

pub use feeds::{FeedGroupPermission, FeedsPreset, split_feed_id};
pub use rule::{Actions, Condition, Effect, Operand, Rule, ScopeBinding};
pub use set::{CompileError, PolicySet};
