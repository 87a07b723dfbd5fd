//! Tokens verified before: a signature check costs microseconds and a busy caller sends the same
//! token on every call, so the principal a token verified to is kept, keyed on the whole token text.
//!
//! What a hit still checks, so that a cached answer is never more permissive than a fresh one:
//! - the keys that verified the token are still the ones in use (a rotated secret, a refreshed or
//!   aged-out issuer key set empties the cache instead);
//! - `exp`, `nbf` and `iat` against the call's clock, by the same rule as a fresh verification;
//! - revocation is not the cache's business: it is checked per call by whoever asks
//!   (`authz::verify_caller`), against the set deciding that call.
//!
//! Only successes are kept, so a flood of made-up tokens never displaces a real one; every entry was
//! signed by a key we trust. The cache is bounded both in entries and in (estimated) bytes.

use std::mem::size_of;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, OptionsBuilder, Weighter};

use super::keyring::Keys;
use super::oidc::{IssuerKeys, KeySet};
use crate::principal::Principal;

/// How large the cache may grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// At most this many tokens; 0 turns the cache off.
    pub max_entries: usize,
    /// At most this many bytes of tokens and principals, estimated.
    pub max_bytes: u64,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_entries: 4096,
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

/// The keys a token was verified with; an entry is good only while they are still the ones in use.
#[derive(Clone)]
pub(super) enum Vouched {
    /// One of the Stream API secrets of this generation of the keyring.
    Secrets(Arc<Keys>),
    /// An OpenID Connect issuer's key set as fetched at the time.
    Issuer(Arc<IssuerKeys>, Arc<KeySet>),
}

impl Vouched {
    /// Whether the keys are still the ones serving: the same keyring generation, or the same fetched
    /// issuer key set, not older than the issuer allows.
    fn still_serving(&self, keyring_now: &Arc<Keys>) -> bool {
        match self {
            Vouched::Secrets(keys) => Arc::ptr_eq(keys, keyring_now),
            Vouched::Issuer(issuer, set) => issuer.keys().is_some_and(|now| {
                Arc::ptr_eq(&now, set) && set.fetched_at.elapsed() <= issuer.config.max_key_age
            }),
        }
    }
}

#[derive(Clone)]
struct Entry {
    principal: Arc<Principal>,
    vouched: Vouched,
    /// Estimated bytes held by the principal.
    bytes: u64,
}

/// Hits, misses and evictions since start, for the metrics.
#[derive(Debug, Default)]
pub struct CacheCounts {
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    /// Times the whole cache was emptied because the keys changed.
    flushes: AtomicU64,
}

/// What the metrics show about the cache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheReport {
    pub hits: u64,
    pub misses: u64,
    pub evictions: u64,
    pub flushes: u64,
    pub entries: u64,
    pub bytes: u64,
    pub limits: Option<CacheLimits>,
}

/// An entry's weight: its estimated bytes, but never less than `max_bytes / max_entries`, so the
/// byte bound also bounds the number of entries.
#[derive(Clone)]
struct ByBytes {
    min_weight: u64,
}

impl Weighter<Box<str>, Entry> for ByBytes {
    fn weight(&self, token: &Box<str>, entry: &Entry) -> u64 {
        (token.len() as u64 + entry.bytes).max(self.min_weight)
    }
}

/// Counts evictions (entries pushed out by the bounds; a flush is counted apart).
#[derive(Clone)]
struct CountEvictions(Arc<CacheCounts>);

impl Lifecycle<Box<str>, Entry> for CountEvictions {
    type RequestState = ();

    fn on_evict(&self, _state: &mut (), _token: Box<str>, _entry: Entry) {
        self.0.evictions.fetch_add(1, Ordering::Relaxed);
    }
}

type Entries = Cache<Box<str>, Entry, ByBytes, DefaultHashBuilder, CountEvictions>;

/// The verified-token cache: a concurrent, sharded S3-FIFO map (quick_cache).
pub struct TokenCache {
    entries: Option<Entries>,
    limits: CacheLimits,
    counts: Arc<CacheCounts>,
}

/// A cached principal found for a token, and whether its keys still serve.
pub(super) enum Lookup {
    Hit(Arc<Principal>),
    Miss,
}

impl TokenCache {
    pub fn new(limits: CacheLimits) -> TokenCache {
        let counts = Arc::new(CacheCounts::default());
        let entries = (limits.max_entries > 0 && limits.max_bytes > 0).then(|| {
            let min_weight = (limits.max_bytes / limits.max_entries as u64).max(1);
            let options = OptionsBuilder::new()
                // A small first guess: the table grows with use, so an idle sidecar holds little.
                .estimated_items_capacity(limits.max_entries.min(256))
                .weight_capacity(limits.max_bytes)
                .build();
            options.ok().map(|options| {
                Cache::with_options(
                    options,
                    ByBytes { min_weight },
                    DefaultHashBuilder::default(),
                    CountEvictions(Arc::clone(&counts)),
                )
            })
        });
        TokenCache {
            entries: entries.flatten(),
            limits,
            counts,
        }
    }

    /// A cache that keeps nothing.
    pub fn off() -> TokenCache {
        TokenCache::new(CacheLimits {
            max_entries: 0,
            max_bytes: 0,
        })
    }

    /// The principal `token` verified to, if it is cached and its keys still serve. An entry whose
    /// keys no longer serve means the keys changed: the whole cache is emptied.
    pub(super) fn get(&self, token: &str, keyring_now: &Arc<Keys>) -> Lookup {
        let Some(entries) = &self.entries else {
            return Lookup::Miss;
        };
        match entries.get(token) {
            Some(entry) if entry.vouched.still_serving(keyring_now) => {
                self.counts.hits.fetch_add(1, Ordering::Relaxed);
                Lookup::Hit(entry.principal)
            }
            Some(_) => {
                entries.clear();
                self.counts.flushes.fetch_add(1, Ordering::Relaxed);
                self.counts.misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Miss
            }
            None => {
                self.counts.misses.fetch_add(1, Ordering::Relaxed);
                Lookup::Miss
            }
        }
    }

    /// Keeps `principal` as what `token` verifies to with `vouched`.
    pub(super) fn insert(&self, token: &str, principal: Arc<Principal>, vouched: Vouched) {
        let Some(entries) = &self.entries else {
            return;
        };
        let bytes = estimated_bytes(&principal, token.len());
        entries.insert(
            token.into(),
            Entry {
                principal,
                vouched,
                bytes,
            },
        );
    }

    /// Forgets `token` (its entry is no longer good: expired, say).
    pub(super) fn remove(&self, token: &str) {
        if let Some(entries) = &self.entries {
            entries.remove(token);
        }
    }

    pub fn report(&self) -> CacheReport {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheReport {
            hits: load(&self.counts.hits),
            misses: load(&self.counts.misses),
            evictions: load(&self.counts.evictions),
            flushes: load(&self.counts.flushes),
            entries: self.entries.as_ref().map_or(0, |e| e.len() as u64),
            bytes: self.entries.as_ref().map_or(0, Cache::weight),
            limits: self.entries.as_ref().map(|_| self.limits),
        }
    }
}

/// Bytes a principal holds, estimated from what it was read from: the claims were decoded from a
/// payload about three quarters of the token's length, and a JSON map costs a few times its text.
fn estimated_bytes(principal: &Principal, token_len: usize) -> u64 {
    let strings: usize = principal.user_id.len()
        + principal.roles.iter().map(String::len).sum::<usize>()
        + principal.groups.iter().map(String::len).sum::<usize>();
    (size_of::<Principal>() + size_of::<Entry>() + strings + 3 * token_len) as u64
}
