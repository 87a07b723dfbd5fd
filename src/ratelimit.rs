//! Per-caller rate limits for the browser doors: one budget per token subject and one per client
//! address, so a page (or a script holding a user's token) cannot hammer the sidecar.
//!
//! Each budget is governor's GCRA over a keyed map. Keys are fixed-size hashes (a user id may be long),
//! and the map is bounded: stale keys are swept every few thousand checks, and when it is still full a
//! new caller is refused rather than let the map grow. Pure and synchronous, like the engine.

use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::principal::Principal;

/// The most callers each budget tracks at once.
pub const MAX_TRACKED: usize = 65_536;
/// Checks between sweeps of callers whose budget has refilled.
const SWEEP_EVERY: u64 = 4_096;

/// The configured budgets, in calls a second; 0 turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitConfig {
    pub per_user: u32,
    pub per_address: u32,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            per_user: 20,
            per_address: 200,
        }
    }
}

/// Which budget refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitedBy {
    User,
    Address,
}

impl LimitedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            LimitedBy::User => "user",
            LimitedBy::Address => "address",
        }
    }
}

/// A call over its budget: by which, and how long until the next one would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many calls from this {}: try again in {} s", by.as_str(), retry_after_secs(*retry_after))]
pub struct Limited {
    pub by: LimitedBy,
    pub retry_after: Duration,
}

/// Whole seconds to wait, at least one, as `Retry-After` says it.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Both budgets.
pub struct RateLimits {
    user: Option<Budget>,
    address: Option<Budget>,
    /// Hashes keys so that every tracked caller costs the same few bytes; seeded per process.
    hasher: std::collections::hash_map::RandomState,
}

impl RateLimits {
    pub fn new(config: RateLimitConfig) -> RateLimits {
        RateLimits {
            user: Budget::new(config.per_user, LimitedBy::User),
            address: Budget::new(config.per_address, LimitedBy::Address),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Spends one call of the address's budget. IPv6 addresses count by their /64, which one
    /// client usually holds whole.
    pub fn admit_address(&self, address: IpAddr) -> Result<(), Limited> {
        let Some(budget) = &self.address else {
            return Ok(());
        };
        let key = match address.to_canonical() {
            IpAddr::V4(v4) => self.hasher.hash_one((4u8, v4.octets())),
            IpAddr::V6(v6) => {
                let segments = v6.segments();
                self.hasher.hash_one((6u8, &segments[..4]))
            }
        };
        budget.admit(key)
    }

    /// Spends one call of the principal's budget: its issuer and user id.
    pub fn admit_user(&self, principal: &Principal) -> Result<(), Limited> {
        let Some(budget) = &self.user else {
            return Ok(());
        };
        budget.admit(self.key(&(&principal.issuer, &principal.user_id)))
    }

    fn key(&self, what: &impl Hash) -> u64 {
        self.hasher.hash_one(what)
    }
}

/// One keyed budget.
struct Budget {
    limiter: DefaultKeyedRateLimiter<u64>,
    clock: DefaultClock,
    checks: AtomicU64,
    by: LimitedBy,
}

impl Budget {
    /// `per_second` calls a second, with bursts of twice as many; `None` when 0.
    fn new(per_second: u32, by: LimitedBy) -> Option<Budget> {
        let rate = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(per_second.saturating_mul(2)).unwrap_or(rate);
        Some(Budget::with_quota(
            Quota::per_second(rate).allow_burst(burst),
            by,
        ))
    }

    fn with_quota(quota: Quota, by: LimitedBy) -> Budget {
        Budget {
            limiter: RateLimiter::keyed(quota),
            clock: DefaultClock::default(),
            checks: AtomicU64::new(0),
            by,
        }
    }

    fn admit(&self, key: u64) -> Result<(), Limited> {
        let checks = self.checks.fetch_add(1, Ordering::Relaxed);
        if checks % SWEEP_EVERY == SWEEP_EVERY - 1 || self.limiter.len() >= MAX_TRACKED {
            self.limiter.retain_recent();
            if self.limiter.len() >= MAX_TRACKED {
                // Full of callers still within their window: refuse rather than grow.
                return Err(Limited {
                    by: self.by,
                    retry_after: Duration::from_secs(1),
                });
            }
        }
        self.limiter.check_key(&key).map_err(|not_until| Limited {
            by: self.by,
            retry_after: not_until.wait_time_from(self.clock.now()),
        })
    }

    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.limiter.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn user(id: &str) -> Principal {
        Principal {
            user_id: id.to_owned(),
            ..Principal::anonymous()
        }
    }

    #[test]
    fn a_user_gets_a_burst_of_twice_the_rate_then_is_refused_with_a_wait() {
        let limits = RateLimits::new(RateLimitConfig {
            per_user: 5,
            per_address: 0,
        });
        for _ in 0..10 {
            assert_eq!(limits.admit_user(&user("jack")), Ok(()));
        }
        let refused = limits.admit_user(&user("jack")).unwrap_err();
        assert_eq!(refused.by, LimitedBy::User);
        assert!(refused.retry_after > Duration::ZERO);
        assert!(refused.retry_after <= Duration::from_millis(200));
        assert_eq!(retry_after_secs(refused.retry_after), 1);
        // Another user has a budget of its own, and the address budget is off.
        assert_eq!(limits.admit_user(&user("tommaso")), Ok(()));
        assert_eq!(limits.admit_address(Ipv4Addr::LOCALHOST.into()), Ok(()));
    }

    #[test]
    fn the_same_user_id_from_another_issuer_is_another_caller() {
        let limits = RateLimits::new(RateLimitConfig {
            per_user: 1,
            per_address: 0,
        });
        let stream = user("jack");
        let keycloak = Principal {
            issuer: Some("https://sso.example.com".to_owned()),
            ..user("jack")
        };
        for _ in 0..2 {
            assert_eq!(limits.admit_user(&stream), Ok(()));
        }
        assert!(limits.admit_user(&stream).is_err());
        assert_eq!(limits.admit_user(&keycloak), Ok(()));
    }

    #[test]
    fn ipv6_addresses_share_their_64_and_mapped_ipv4_is_ipv4() {
        let limits = RateLimits::new(RateLimitConfig {
            per_user: 0,
            per_address: 1,
        });
        let a: IpAddr = "2001:db8:1:2::1".parse::<Ipv6Addr>().unwrap().into();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse::<Ipv6Addr>().unwrap().into();
        assert_eq!(limits.admit_address(a), Ok(()));
        assert_eq!(limits.admit_address(b), Ok(()));
        assert_eq!(limits.admit_address(a).unwrap_err().by, LimitedBy::Address);
        let v4: IpAddr = Ipv4Addr::new(10, 0, 0, 1).into();
        let mapped: IpAddr = Ipv4Addr::new(10, 0, 0, 1).to_ipv6_mapped().into();
        assert_eq!(limits.admit_address(v4), Ok(()));
        assert_eq!(limits.admit_address(mapped), Ok(()));
        assert!(limits.admit_address(v4).is_err());
    }

    #[test]
    fn zero_turns_a_budget_off() {
        let limits = RateLimits::new(RateLimitConfig {
            per_user: 0,
            per_address: 0,
        });
        for _ in 0..1000 {
            assert_eq!(limits.admit_user(&user("jack")), Ok(()));
            assert_eq!(limits.admit_address(Ipv4Addr::LOCALHOST.into()), Ok(()));
        }
    }

    #[test]
    fn the_map_of_callers_is_bounded() {
        // A rate so slow that no key is stale by the time the map fills, however slow the machine.
        let hourly = Quota::per_hour(NonZeroU32::MIN).allow_burst(NonZeroU32::MIN);
        let budget = Budget::with_quota(hourly, LimitedBy::Address);
        let mut refused = 0;
        for key in 0..(MAX_TRACKED as u64 + 100) {
            if budget.admit(key).is_err() {
                refused += 1;
            }
        }
        assert!(budget.tracked() <= MAX_TRACKED);
        assert_eq!(refused, 100);
    }
}
