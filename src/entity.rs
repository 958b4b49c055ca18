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
    ///
    /// The same FNV-1a as [`feed`], unrolled over the fixed 14 bytes (pid, separator,
    /// generation, separator) and with the multiply by the sparse prime spelled out: this runs
    /// once per exec.
    pub fn write(&self, pid: u32, generation: u64, out: &mut String) {
        let mut bytes = [0xffu8; 14];
        bytes[..4].copy_from_slice(&pid.to_le_bytes());
        bytes[5..13].copy_from_slice(&generation.to_le_bytes());
        let mut h = self.prefix;
        for b in bytes {
            h = times_prime(h ^ u128::from(b));
        }
        let mut hex = [0u8; 32];
        hex[..16].copy_from_slice(&hex16((h >> 64) as u64));
        hex[16..].copy_from_slice(&hex16(h as u64));
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

/// `h * PRIME` (mod 2^128) with PRIME = 2^88 + 0x13b: one 64×64→128 multiply, one 64-bit
/// multiply and a shift, where a general u128 multiply takes three multiplies.
#[inline(always)]
fn times_prime(h: u128) -> u128 {
    const LOW: u64 = PRIME as u64;
    const HIGH_SHIFT: u32 = (PRIME >> 64).trailing_zeros();
    const _: () = assert!(PRIME == (1u128 << (64 + HIGH_SHIFT)) + LOW as u128);
    let (lo, hi) = (h as u64, (h >> 64) as u64);
    let high = hi.wrapping_mul(LOW).wrapping_add(lo << HIGH_SHIFT);
    (u128::from(lo) * u128::from(LOW)).wrapping_add(u128::from(high) << 64)
}

/// `v` as 16 lowercase hex digits, most significant first, without a per-digit table lookup:
/// each nibble is spread into its own byte, then all sixteen become ASCII at once.
#[inline(always)]
fn hex16(v: u64) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&hex8((v >> 32) as u32));
    out[8..].copy_from_slice(&hex8(v as u32));
    out
}

#[inline(always)]
fn hex8(v: u32) -> [u8; 8] {
    // Byte i of `x` holds nibble i of `v`.
    let mut x = u64::from(v);
    x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    x = (x | (x << 8)) & 0x00ff_00ff_00ff_00ff;
    x = (x | (x << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // 1 in each byte whose nibble is 10 or more; no byte carries into the next.
    let letters = ((x + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    let ascii = x + 0x3030_3030_3030_3030 + letters * (b'a' - b'0' - 10) as u64;
    ascii.to_be_bytes()
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

    /// The unrolled hash and the bit-twiddled hex against the byte-at-a-time definition.
    #[test]
    fn fast_write_matches_the_definition() {
        let reference = |host: &str, boot: &str, pid: u32, generation: u64| {
            let mut h = super::OFFSET;
            for part in [
                host.as_bytes(),
                boot.as_bytes(),
                &pid.to_le_bytes(),
                &generation.to_le_bytes(),
            ] {
                super::feed(&mut h, part);
            }
            format!("{h:032x}")
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut samples = vec![
            (0, 0),
            (u32::MAX, u64::MAX),
            (1, 1 << 63),
            (0xabcd, 0xf0f0_f0f0_0a0a_0a0a),
        ];
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push(((x >> 32) as u32, x.rotate_left(17)));
        }
        let mut out = String::new();
        for (host, boot) in [
            ("", ""),
            ("host", "boot"),
            ("a-much-longer-host-identifier", "b"),
        ] {
            let ids = super::EntityIds::new(host, boot);
            for &(pid, generation) in &samples {
                ids.write(pid, generation, &mut out);
                assert_eq!(
                    out,
                    reference(host, boot, pid, generation),
                    "{pid} {generation}"
                );
            }
        }
        for &(_, v) in &samples {
            assert_eq!(super::hex16(v), format!("{v:016x}").as_bytes());
        }
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
