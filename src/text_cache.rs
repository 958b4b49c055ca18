//! One shared [`Text`] per value that repeats from event to event: ids, user names, terminals,
//! working directories, executables, the audit key.
//!
//! An exec event otherwise copies each of these into a string of its own, and the process table
//! keeps tens of thousands of such images: the copies cost allocations, and writing into a
//! recycled image touches as many cold cache lines as it has strings. A cached value is an
//! `Arc` clone of text that is already hot.
//!
//! The cache is direct-mapped: a value hashes to one slot; a hit clones the `Arc` there, a miss
//! replaces it. It is bounded by construction, needs no eviction, and input crafted to collide
//! costs only misses — one allocation each, what a copy would have cost — never a long probe.

use std::sync::Arc;

use crate::event::Text;

/// Slots in a [`TextCache`]: more than the distinct executables, directories and ids a busy host
/// shows in a minute, few enough (64 KiB) to stay in cache.
const SLOTS: usize = 4096;

/// Direct-mapped text cache; see the module documentation.
#[derive(Debug)]
pub struct TextCache {
    slots: Box<[Option<Text>]>,
}

impl Default for TextCache {
    fn default() -> TextCache {
        TextCache::new()
    }
}

impl TextCache {
    pub fn new() -> TextCache {
        TextCache {
            slots: vec![None; SLOTS].into_boxed_slice(),
        }
    }

    /// The shared text equal to `s`.
    pub fn text(&mut self, s: &str) -> Text {
        let slot = &mut self.slots[hash(s.as_bytes()) as usize % SLOTS];
        match slot {
            Some(t) if **t == *s => t.clone(),
            _ => {
                let t = Text::from(s);
                *slot = Some(t.clone());
                t
            }
        }
    }

    /// `bytes` as text, invalid UTF-8 replaced. Only valid text is cached: a lossy value is not
    /// equal to the bytes it came from, so it could not be found again.
    pub fn lossy(&mut self, bytes: &[u8]) -> Text {
        match std::str::from_utf8(bytes) {
            Ok(s) => self.text(s),
            Err(_) => Text::from(String::from_utf8_lossy(bytes)),
        }
    }

    /// The decimal text of a numeric id (ids stay strings, design.md §3).
    pub fn decimal(&mut self, v: u32) -> Text {
        let mut digits = [0u8; 10];
        self.text(decimal_digits(v, &mut digits))
    }
}

/// The last value one field took: a field whose value repeats back to back (the audit key, a
/// session, a working directory) skips the hash and the slot.
#[derive(Debug, Default)]
pub struct Recent(Option<Text>);

impl Recent {
    /// Like [`TextCache::lossy`].
    pub fn lossy(&mut self, cache: &mut TextCache, bytes: &[u8]) -> Text {
        match &self.0 {
            Some(t) if t.as_bytes() == bytes => t.clone(),
            _ => {
                let t = cache.lossy(bytes);
                self.0 = Some(t.clone());
                t
            }
        }
    }
}

/// Sets `slot` to `bytes` as text, unless it already holds that text: an image refilled with the
/// values it had (the same directory, terminal, user) keeps its shared texts and touches no
/// reference count. `make` gives the text otherwise (from a [`TextCache`] or a [`Recent`]).
#[inline]
pub fn refill(slot: &mut Text, bytes: &[u8], make: impl FnOnce(&[u8]) -> Text) {
    if slot.as_bytes() != bytes {
        *slot = make(bytes);
    }
}

/// Like [`refill`], for a value that may be absent.
#[inline]
pub fn refill_opt(slot: &mut Option<Text>, bytes: Option<&[u8]>, make: impl FnOnce(&[u8]) -> Text) {
    match (slot.as_mut(), bytes) {
        (Some(text), Some(bytes)) => refill(text, bytes, make),
        (None, None) => {}
        (_, bytes) => *slot = bytes.map(make),
    }
}

/// Like [`Recent`], for a numeric id shown in decimal.
#[derive(Debug, Default)]
pub struct RecentId(Option<(u32, Text)>);

impl RecentId {
    /// Like [`TextCache::decimal`].
    pub fn decimal(&mut self, cache: &mut TextCache, v: u32) -> Text {
        match &self.0 {
            Some((id, t)) if *id == v => t.clone(),
            _ => {
                let t = cache.decimal(v);
                self.0 = Some((v, t.clone()));
                t
            }
        }
    }

    /// Sets `slot` to `v` in decimal (absent when `v` is), unless it already holds that text.
    pub fn refill(&mut self, cache: &mut TextCache, slot: &mut Option<Text>, v: Option<u32>) {
        let Some(v) = v else {
            *slot = None;
            return;
        };
        if let (Some((id, t)), Some(s)) = (&self.0, slot.as_ref()) {
            if *id == v && Arc::ptr_eq(t, s) {
                return;
            }
        }
        *slot = Some(self.decimal(cache, v));
    }
}

/// `v` in decimal, written at the end of `buf`.
pub fn decimal_digits(mut v: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[i..]).unwrap_or_default()
}

/// A fast hash of short byte strings, eight bytes at a time. Not keyed: a collision only costs a
/// miss in a direct-mapped cache.
#[inline]
fn hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(31);
    }
    // Fold the well-mixed high bits into the low bits the slot index uses.
    h ^ (h >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn equal_values_share_one_allocation() {
        let mut c = TextCache::new();
        let a = c.text("/usr/bin/bash");
        let b = c.lossy(b"/usr/bin/bash");
        assert!(Arc::ptr_eq(&a, &b));
        assert_eq!(&*c.text("/usr/bin/dash"), "/usr/bin/dash");
        assert_eq!(&*c.text(""), "");
    }

    #[test]
    fn colliding_values_are_still_exact() {
        // Far more distinct values than slots: every answer is still the value asked for.
        let mut c = TextCache::new();
        for round in 0..2 {
            for i in 0..3 * SLOTS as u32 {
                let s = format!("/opt/app-{i}/bin");
                assert_eq!(&*c.text(&s), s, "round {round}");
            }
        }
    }

    #[test]
    fn invalid_utf8_is_replaced_not_cached() {
        let mut c = TextCache::new();
        assert_eq!(&*c.lossy(b"/\xff"), "/\u{fffd}");
        assert_eq!(&*c.lossy("/\u{fffd}".as_bytes()), "/\u{fffd}");
    }

    #[test]
    fn recent_values_are_exact() {
        let (mut c, mut r, mut id) = (TextCache::new(), Recent::default(), RecentId::default());
        for v in ["/home/u", "/home/u", "/tmp", "/home/u"] {
            assert_eq!(&*r.lossy(&mut c, v.as_bytes()), v);
        }
        assert_eq!(&*r.lossy(&mut c, b"/\xff"), "/\u{fffd}");
        assert_eq!(&*r.lossy(&mut c, "/\u{fffd}".as_bytes()), "/\u{fffd}");
        for v in [3, 3, 4_294_967_294, 3] {
            assert_eq!(*id.decimal(&mut c, v), v.to_string());
        }
    }

    #[test]
    fn refill_keeps_equal_texts_and_replaces_others() {
        let mut c = TextCache::new();
        let mut slot = Text::from("/home/u");
        let before = slot.clone();
        refill(&mut slot, b"/home/u", |b| c.lossy(b));
        assert!(Arc::ptr_eq(&slot, &before), "equal: kept");
        refill(&mut slot, b"/tmp", |b| c.lossy(b));
        assert_eq!(&*slot, "/tmp");
        refill(&mut slot, b"/\xff", |b| c.lossy(b));
        assert_eq!(&*slot, "/\u{fffd}");

        let mut opt = None;
        refill_opt(&mut opt, None, |b| c.lossy(b));
        assert_eq!(opt, None);
        refill_opt(&mut opt, Some(b"pts0"), |b| c.lossy(b));
        assert_eq!(opt.as_deref(), Some("pts0"));
        let before = opt.clone().unwrap();
        refill_opt(&mut opt, Some(b"pts0"), |b| c.lossy(b));
        assert!(Arc::ptr_eq(opt.as_ref().unwrap(), &before));
        refill_opt(&mut opt, Some(b"pts1"), |b| c.lossy(b));
        assert_eq!(opt.as_deref(), Some("pts1"));
        refill_opt(&mut opt, None, |b| c.lossy(b));
        assert_eq!(opt, None);
    }

    #[test]
    fn decimal_matches_to_string() {
        let mut c = TextCache::new();
        for v in [0, 7, 10, 999, 1000, 65534, 4_294_967_295] {
            assert_eq!(&*c.decimal(v), v.to_string());
        }
    }
}
