//! Remembers accepted signatures for `HMAC_REPLAY_TTL` so that a replay is refused.
//!
//! Entries expire in the order they were added (the TTL is one constant), so a queue beside the
//! set makes both the check and the expiry O(1). The set is bounded; when full, new requests
//! are refused as busy rather than evicting live entries, which would reopen the replay window.
//! Accepted signatures are also written with their batch, and [`ReplayGuard::restore`] reloads
//! them at start-up, so a restart does not forget them.
//!
//! Memory: the guard holds rate x TTL entries (at 30,000 requests/s and 120 s, 3.6 million), so
//! each keeps only half the HMAC (128 bits of it: a false match among millions is about as
//! likely as guessing the secret): 24 bytes in the expiry queue and 17 in the set's table, which
//! growth in powers of two makes up to about twice that, so 40-80 bytes a signature.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

pub(crate) type Signature = [u8; 32];

/// The part of a signature that is remembered.
type Key = [u8; 16];

fn key(sig: &Signature) -> Key {
    let mut k = [0; 16];
    k.copy_from_slice(&sig[..16]);
    k
}

/// An HMAC is already uniformly random, so its first bytes are the hash; SipHash over it would
/// only cost time under the guard's lock.
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReplayCheck {
    Fresh,
    Replay,
    Full,
}

#[derive(Debug, Default)]
struct Inner {
    seen: HashSet<Key, BuildHasherDefault<KeyHasher>>,
    /// Expiry in unix milliseconds with the key, oldest first.
    expiry: VecDeque<(i64, Key)>,
}

#[derive(Debug)]
pub(crate) struct ReplayGuard {
    inner: Mutex<Inner>,
    ttl_ms: i64,
    capacity: usize,
}

impl ReplayGuard {
    pub(crate) fn new(ttl_ms: i64, capacity: usize) -> Self {
        Self { inner: Mutex::new(Inner::default()), ttl_ms, capacity }
    }

    /// Loads signatures persisted before a restart; `entries` are `(expires_ms, signature)`.
    pub(crate) fn restore(&self, mut entries: Vec<(i64, Signature)>, now_ms: i64) {
        entries.sort_unstable_by_key(|(expires, _)| *expires);
        let mut inner = self.lock();
        for (expires, sig) in entries.into_iter().filter(|(e, _)| *e > now_ms) {
            if inner.seen.insert(key(&sig)) {
                inner.expiry.push_back((expires, key(&sig)));
            }
        }
    }

    /// Records `sig` unless it was seen within the TTL. Returns its expiry time when fresh.
    pub(crate) fn check_and_insert(&self, sig: Signature, now_ms: i64) -> (ReplayCheck, i64) {
        let mut inner = self.lock();
        while let Some(&(expires, old)) = inner.expiry.front() {
            if expires > now_ms {
                break;
            }
            inner.expiry.pop_front();
            inner.seen.remove(&old);
        }
        let expires = now_ms + self.ttl_ms;
        let k = key(&sig);
        if inner.seen.contains(&k) {
            return (ReplayCheck::Replay, expires);
        }
        if inner.seen.len() >= self.capacity {
            return (ReplayCheck::Full, expires);
        }
        inner.seen.insert(k);
        inner.expiry.push_back((expires, k));
        (ReplayCheck::Fresh, expires)
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().seen.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the set inconsistent in a harmful way:
        // at worst one signature is remembered without its expiry entry.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(n: u8) -> Signature {
        [n; 32]
    }

    #[test]
    fn a_signature_is_refused_until_it_expires() {
        let guard = ReplayGuard::new(1000, 10);
        assert_eq!(guard.check_and_insert(sig(1), 0).0, ReplayCheck::Fresh);
        assert_eq!(guard.check_and_insert(sig(1), 999).0, ReplayCheck::Replay);
        assert_eq!(guard.check_and_insert(sig(1), 1000).0, ReplayCheck::Fresh);
    }

    #[test]
    fn memory_is_bounded_and_expiry_frees_room() {
        let guard = ReplayGuard::new(1000, 2);
        assert_eq!(guard.check_and_insert(sig(1), 0).0, ReplayCheck::Fresh);
        assert_eq!(guard.check_and_insert(sig(2), 10).0, ReplayCheck::Fresh);
        assert_eq!(guard.check_and_insert(sig(3), 20).0, ReplayCheck::Full);
        assert_eq!(guard.len(), 2);
        assert_eq!(guard.check_and_insert(sig(3), 1001).0, ReplayCheck::Fresh);
        assert_eq!(guard.len(), 2);
    }

    #[test]
    fn signatures_differing_only_past_the_remembered_half_count_as_one() {
        let guard = ReplayGuard::new(1000, 10);
        let mut other = sig(1);
        other[31] = 9;
        assert_eq!(guard.check_and_insert(sig(1), 0).0, ReplayCheck::Fresh);
        assert_eq!(guard.check_and_insert(other, 1).0, ReplayCheck::Replay);
        let mut first_half = sig(1);
        first_half[0] = 9;
        assert_eq!(guard.check_and_insert(first_half, 2).0, ReplayCheck::Fresh);
    }

    #[test]
    fn restored_entries_are_refused_and_expired_ones_dropped() {
        let guard = ReplayGuard::new(1000, 10);
        guard.restore(vec![(2000, sig(2)), (500, sig(5)), (1500, sig(1))], 1000);
        assert_eq!(guard.len(), 2);
        assert_eq!(guard.check_and_insert(sig(2), 1100).0, ReplayCheck::Replay);
        assert_eq!(guard.check_and_insert(sig(5), 1100).0, ReplayCheck::Fresh);
        // Sorted on restore, so the earlier expiry leaves first.
        assert_eq!(guard.check_and_insert(sig(1), 1600).0, ReplayCheck::Fresh);
    }
}
