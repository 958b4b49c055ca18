//! `process.entity_id`: one stable, host-unique id per process image.
//!
//! A pid is not a process (pids are reused), so the id hashes what makes an image unique:
//! host, boot, pid and a generation (exec serial or start time on Linux, pidversion on macOS).
//! The hash is FNV-1a over 128 bits, written as 32 hex digits: stable across releases and
//! platforms, which `std`'s hasher does not promise.

const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
const PRIME: u128 = 0x0000000001000000000000000000013B;

/// Hashes the parts in order, each followed by a separator so `("ab","c") != ("a","bc")`.
pub fn entity_id(host_id: &str, boot_id: &str, pid: u32, generation: u64) -> String {
    EntityIds::new(host_id, boot_id).id(pid, generation)
}

/// The entity ids of one host and boot: the hash of the host and boot ids is taken once, so each
/// id only hashes the pid and generation.
#[derive(Clone, Copy, Debug)]
pub struct EntityIds {
    prefix: u128,
}

impl EntityIds {
    pub fn new(host_id: &str, boot_id: &str) -> EntityIds {
        let mut h = OFFSET;
        feed(&mut h, host_id.as_bytes());
        feed(&mut h, boot_id.as_bytes());
        EntityIds { prefix: h }
    }

    /// The same as [`entity_id`] for this host and boot.
    pub fn id(&self, pid: u32, generation: u64) -> String {
        let mut out = String::with_capacity(32);
        self.write(pid, generation, &mut out);
        out
    }

    /// Replaces `out` with the id, reusing its allocation.
    pub fn write(&self, pid: u32, generation: u64, out: &mut String) {
        let mut h = self.prefix;
        feed(&mut h, &pid.to_le_bytes());
        feed(&mut h, &generation.to_le_bytes());
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = [0u8; 32];
        for (i, half) in [(h >> 64) as u64, h as u64].into_iter().enumerate() {
            for (j, d) in hex[16 * i..16 * (i + 1)].iter_mut().enumerate() {
                *d = DIGITS[(half >> (60 - 4 * j)) as usize & 0xf];
            }
        }
        out.clear();
        out.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    }
}

/// FNV-1a over `bytes` and a 0xff separator.
#[inline]
fn feed(h: &mut u128, bytes: &[u8]) {
    for &b in bytes.iter().chain(&[0xff]) {
        *h ^= u128::from(b);
        *h = h.wrapping_mul(PRIME);
    }
}

#[cfg(test)]
mod tests {
    use super::entity_id;

    #[test]
    fn stable_and_distinct() {
        let a = entity_id("host", "boot", 42, 7);
        assert_eq!(a.len(), 32);
        assert_eq!(a, entity_id("host", "boot", 42, 7));
        assert_ne!(a, entity_id("host", "boot", 42, 8));
        assert_ne!(a, entity_id("host", "boot2", 42, 7));
        assert_ne!(entity_id("ab", "c", 1, 1), entity_id("a", "bc", 1, 1));
        // Pinned (checked with an independent FNV-1a in Python): ids must not change between releases.
        assert_eq!(entity_id("", "", 0, 0), "7f9d03a829edcd2a7f68358e8a58b619");
        let ids = super::EntityIds::new("host", "boot");
        assert_eq!(ids.id(42, 7), a);
        assert_eq!(ids.id(1, 2), entity_id("host", "boot", 1, 2));
    }

    #[test]
    fn kept_prefix_gives_the_same_ids() {
        let ids = super::EntityIds::new("host", "boot");
        let mut reused = String::from("an old, longer id that must not leak into the new one");
        for (pid, generation) in [(0, 0), (42, 7), (u32::MAX, u64::MAX)] {
            ids.write(pid, generation, &mut reused);
            assert_eq!(reused, entity_id("host", "boot", pid, generation));
            assert_eq!(ids.id(pid, generation), reused);
        }
    }
}
