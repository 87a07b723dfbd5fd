//! Which door a request came through: the gRPC Check RPCs or one of the proxy front ends. Decisions
//! are counted, logged and put under the set's modes by door.

use crate::policy::{Mode, PolicySet};

/// Which door a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Check,
    Batch,
    ExtAuthz,
    Http,
}

impl Door {
    pub const ALL: [Door; 4] = [Door::Check, Door::Batch, Door::ExtAuthz, Door::Http];

    /// The door's place in [`Door::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// The door's name in metrics (`source`) and the decision log.
    pub fn as_str(self) -> &'static str {
        match self {
            Door::Check => "check",
            Door::Batch => "batch",
            Door::ExtAuthz => "ext_authz",
            Door::Http => "http",
        }
    }

    /// Proxied requests follow the set's route mode, checks its mode.
    pub fn mode(self, policy: &PolicySet) -> Mode {
        match self {
            Door::Check | Door::Batch => policy.modes().checks,
            Door::ExtAuthz | Door::Http => policy.modes().routes,
        }
    }
}
