//! A fast hasher for maps keyed by small integer ids (pids, uids, gids), looked up per event.
//!
//! `std`'s SipHash costs more than the rest of a lookup for a 4-byte key. Ids here can come from a
//! replayed log, which anyone may craft, so the hash is still keyed: each map draws a random seed
//! (from `RandomState`) and mixes it in with a full 64-bit finalizer, so colliding ids cannot be
//! chosen ahead of time.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

/// A `HashMap` keyed by integer ids.
pub type IdMap<K, V> = HashMap<K, V, IdHashState>;

/// A new, empty [`IdMap`] with its own random seed.
pub fn id_map<K, V>() -> IdMap<K, V> {
    HashMap::with_hasher(IdHashState::new())
}

/// Builds [`IdHasher`]s that share one random seed.
#[derive(Clone, Debug)]
pub struct IdHashState {
    seed: u64,
}

impl IdHashState {
    pub fn new() -> IdHashState {
        IdHashState {
            seed: RandomState::new().hash_one(0x6964_u64),
        }
    }
}

impl Default for IdHashState {
    fn default() -> IdHashState {
        IdHashState::new()
    }
}

impl BuildHasher for IdHashState {
    type Hasher = IdHasher;

    fn build_hasher(&self) -> IdHasher {
        IdHasher { state: self.seed }
    }
}

/// Seeded multiply-xorshift mixing of the written integers.
#[derive(Clone, Debug)]
pub struct IdHasher {
    state: u64,
}

impl IdHasher {
    #[inline]
    fn add(&mut self, v: u64) {
        // splitmix64's finalizer over state ^ v: every input bit reaches every output bit.
        let mut z = (self.state ^ v).wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        self.state = z ^ (z >> 31);
    }
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.state
    }

    fn write(&mut self, bytes: &[u8]) {
        // Not the ids' path (they use the integer writes); correct for any key all the same.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word) ^ (chunk.len() as u64) << 59);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_work_and_low_bits_spread() {
        let mut m: IdMap<u32, u32> = id_map();
        for pid in 0..10_000u32 {
            m.insert(pid * 4096, pid);
        }
        assert_eq!(m.len(), 10_000);
        assert!((0..10_000u32).all(|pid| m.get(&(pid * 4096)) == Some(&pid)));
        // Ids that differ only in high bits still land in different buckets (low hash bits).
        let state = IdHashState::new();
        let buckets: std::collections::HashSet<u64> = (0..1024u32)
            .map(|i| state.hash_one(i << 20) & 1023)
            .collect();
        assert!(
            buckets.len() > 500,
            "{} of 1024 buckets used",
            buckets.len()
        );
    }

    #[test]
    fn seeds_differ_between_maps() {
        let (a, b) = (IdHashState::new(), IdHashState::new());
        assert_ne!(a.hash_one(42u32), b.hash_one(42u32));
    }
}
