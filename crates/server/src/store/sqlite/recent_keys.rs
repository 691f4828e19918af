//! Which idempotency keys may have a kept answer, in memory: Bloom filters over the keys
//! answered in the last day, so that a key never seen (nearly every key) is claimed
//! without a look-up. "Maybe" costs the look-up as before; "no" is never wrong.
//!
//! Three generations of `GENERATION` each hold the keys answered in their time: a key
//! answered within the last day is in one of them. A filter holds about 900,000 keys at a
//! 1 % false-positive rate; fuller, it answers "maybe" more often and the service reads
//! more, nothing else.

use chrono::{DateTime, Duration, Utc};
use std::hash::{BuildHasher, Hasher};
use std::sync::Mutex;

const BITS: usize = 1 << 23;
const HASHES: u64 = 7;

fn generation() -> Duration {
    Duration::hours(12)
}

struct Filter {
    bits: Vec<u64>,
    since: DateTime<Utc>,
}

impl Filter {
    fn new(since: DateTime<Utc>) -> Filter {
        Filter { bits: vec![0; BITS / 64], since }
    }

    /// The bit positions of a key: double hashing of two 64-bit halves.
    fn positions(h: (u64, u64)) -> impl Iterator<Item = usize> {
        (0..HASHES).map(move |i| (h.0.wrapping_add(i.wrapping_mul(h.1)) % BITS as u64) as usize)
    }

    fn insert(&mut self, h: (u64, u64)) {
        for p in Self::positions(h) {
            self.bits[p / 64] |= 1 << (p % 64);
        }
    }

    fn may_contain(&self, h: (u64, u64)) -> bool {
        Self::positions(h).all(|p| self.bits[p / 64] & (1 << (p % 64)) != 0)
    }
}

/// Keys answered in the last day, approximately from above.
pub(super) struct RecentKeys {
    hasher: std::collections::hash_map::RandomState,
    /// Newest first.
    filters: Mutex<Vec<Filter>>,
}

impl RecentKeys {
    pub(super) fn new(now: DateTime<Utc>) -> RecentKeys {
        RecentKeys { hasher: Default::default(), filters: Mutex::new(vec![Filter::new(now)]) }
    }

    fn hash(&self, scope: &str, key: &str) -> (u64, u64) {
        let mut a = self.hasher.build_hasher();
        a.write(scope.as_bytes());
        a.write_u8(0);
        a.write(key.as_bytes());
        let first = a.finish();
        a.write_u8(1);
        (first, a.finish() | 1)
    }

    /// Records a key whose answer is kept from `now`.
    pub(super) fn insert(&self, scope: &str, key: &str, now: DateTime<Utc>) {
        let h = self.hash(scope, key);
        let mut filters = self.filters.lock().unwrap_or_else(|p| p.into_inner());
        if now - filters[0].since >= generation() {
            filters.insert(0, Filter::new(now));
            // Three generations cover the day an answer is kept.
            filters.truncate(3);
        }
        filters[0].insert(h);
    }

    /// False when no answer can be kept for this key.
    pub(super) fn may_contain(&self, scope: &str, key: &str) -> bool {
        let h = self.hash(scope, key);
        self.filters.lock().unwrap_or_else(|p| p.into_inner()).iter().any(|f| f.may_contain(h))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_keys_are_always_found_and_others_rarely() {
        let now = Utc::now();
        let keys = RecentKeys::new(now);
        for i in 0..20_000 {
            keys.insert("t", &format!("k{i}"), now);
        }
        assert!((0..20_000).all(|i| keys.may_contain("t", &format!("k{i}"))));
        let false_positives = (0..20_000).filter(|i| keys.may_contain("t", &format!("other{i}"))).count();
        assert!(false_positives < 20, "{false_positives} of 20,000");
        // Scopes are apart.
        assert!((0..1000).filter(|i| keys.may_contain("t2", &format!("k{i}"))).count() < 5);
    }

    #[test]
    fn a_key_stays_for_a_day_through_the_generations() {
        let t0 = Utc::now();
        let keys = RecentKeys::new(t0);
        keys.insert("t", "old", t0);
        // New generations open as keys come in, every 12 hours.
        keys.insert("t", "a", t0 + Duration::hours(13));
        keys.insert("t", "b", t0 + Duration::hours(25));
        assert!(keys.may_contain("t", "old"), "24 h 59 min later, still there");
        keys.insert("t", "c", t0 + Duration::hours(38));
        assert!(!keys.may_contain("t", "old"), "the oldest generation is gone after three more");
        assert!(keys.may_contain("t", "a") && keys.may_contain("t", "b") && keys.may_contain("t", "c"));
    }
}
