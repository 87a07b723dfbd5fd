//! Owns the live policy set.
//!
//! Checks read the set per request through an `ArcSwap` handle, so replacing it applies to connections
//! already open, and a check in flight finishes on the set it started with.

use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::policy::PolicySet;

pub struct PolicyStore {
    current: ArcSwap<PolicySet>,
}

impl PolicyStore {
    pub fn new(initial: PolicySet) -> Self {
        PolicyStore {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// The set to decide a request with; cheap, lock-free.
    pub fn current(&self) -> arc_swap::Guard<Arc<PolicySet>> {
        self.current.load()
    }

    /// Swaps in a new set atomically.
    pub fn replace(&self, next: PolicySet) {
        self.current.store(Arc::new(next));
    }
}
