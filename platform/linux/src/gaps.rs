//! Loss accounting from audit serials.
//!
//! The kernel numbers events from one global u32 counter, so on a loss-free stream the serials are
//! consecutive (measured: perfectly so in every capture without overflow). Events interleave a
//! little, so a serial is declared lost only once it falls out of a sliding window behind the
//! newest one, or when the caller knows nothing older can still arrive ([`SerialGaps::settle_below`],
//! [`SerialGaps::finish`]). All arithmetic wraps at u32.

/// How many serials may still arrive out of order before a hole counts as lost.
pub const WINDOW: u32 = 4096;
const WORDS: usize = (WINDOW / 64) as usize;

/// What [`SerialGaps::observe`] made of a serial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen before: a new event.
    New,
    /// Already seen, or so far behind that it was already counted: a late record.
    Late,
}

/// Tracks which serials were seen and counts the ones that never arrived.
#[derive(Debug, Clone)]
pub struct SerialGaps {
    /// The oldest serial not yet accounted for; every serial before it was seen or counted lost.
    next: Option<u32>,
    /// Bit `i` (ring-indexed from `next`) set when `next + i` was seen.
    bits: [u64; WORDS],
    lost: u64,
    resets: u64,
}

impl Default for SerialGaps {
    fn default() -> Self {
        Self::new()
    }
}

impl SerialGaps {
    /// An empty tracker; the first serial observed becomes the start.
    pub fn new() -> Self {
        SerialGaps {
            next: None,
            bits: [0; WORDS],
            lost: 0,
            resets: 0,
        }
    }

    /// Serials counted as lost so far.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// How often the tracker restarted (a serial far behind, e.g. a new boot in a log file).
    pub fn resets(&self) -> u64 {
        self.resets
    }

    /// Record that `serial` was seen.
    pub fn observe(&mut self, serial: u32) -> Seen {
        let Some(next) = self.next else {
            self.start(serial);
            return Seen::New;
        };
        let d = serial.wrapping_sub(next);
        if d >= 1 << 31 {
            // Behind the accounted-for point: a late record of a finished event, or a restart.
            if next.wrapping_sub(serial) > WINDOW {
                self.restart(serial);
                return Seen::New;
            }
            return Seen::Late;
        }
        if d >= WINDOW {
            self.slide(d - WINDOW + 1);
        }
        let seen = self.test_and_set(serial);
        self.advance_contiguous();
        if seen {
            Seen::Late
        } else {
            Seen::New
        }
    }

    /// Declare every unseen serial before `serial` lost: nothing older can still arrive.
    pub fn settle_below(&mut self, serial: u32) {
        let Some(next) = self.next else { return };
        let d = serial.wrapping_sub(next);
        if d < 1 << 31 {
            self.slide(d);
            self.advance_contiguous();
        }
    }

    /// End of stream: every hole up to the newest serial seen is lost.
    pub fn finish(&mut self) {
        let Some(next) = self.next else { return };
        // The newest seen serial is the highest set bit in the window.
        let mut newest = None;
        for i in (0..WINDOW).rev() {
            let s = next.wrapping_add(i);
            if self.bit(s) {
                newest = Some(i);
                break;
            }
        }
        if let Some(i) = newest {
            self.slide(i + 1);
        }
    }

    /// Start over at `serial` (the caller saw a new boot: a serial behind us with a newer time).
    pub fn restart(&mut self, serial: u32) {
        self.resets += 1;
        self.start(serial);
    }

    fn start(&mut self, serial: u32) {
        self.bits = [0; WORDS];
        self.next = Some(serial.wrapping_add(1));
    }

    fn bit(&self, serial: u32) -> bool {
        let i = (serial % WINDOW) as usize;
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn test_and_set(&mut self, serial: u32) -> bool {
        let i = (serial % WINDOW) as usize;
        let mask = 1u64 << (i % 64);
        let was = self.bits[i / 64] & mask != 0;
        self.bits[i / 64] |= mask;
        was
    }

    fn clear(&mut self, serial: u32) -> bool {
        let i = (serial % WINDOW) as usize;
        let mask = 1u64 << (i % 64);
        let was = self.bits[i / 64] & mask != 0;
        self.bits[i / 64] &= !mask;
        was
    }

    /// Move `next` forward by `n`, counting unseen serials passed over as lost.
    fn slide(&mut self, n: u32) {
        let Some(mut next) = self.next else { return };
        if n >= WINDOW {
            let seen: u32 = self.bits.iter().map(|w| w.count_ones()).sum();
            self.lost += u64::from(n - seen);
            self.bits = [0; WORDS];
            next = next.wrapping_add(n);
        } else {
            for _ in 0..n {
                if !self.clear(next) {
                    self.lost += 1;
                }
                next = next.wrapping_add(1);
            }
        }
        self.next = Some(next);
    }

    fn advance_contiguous(&mut self) {
        let Some(mut next) = self.next else { return };
        while self.clear(next) {
            next = next.wrapping_add(1);
        }
        self.next = Some(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_and_reordered_serials_lose_nothing() {
        let mut g = SerialGaps::new();
        for s in [10, 11, 13, 12, 14, 16, 15] {
            assert_eq!(g.observe(s), Seen::New, "{s}");
        }
        g.finish();
        assert_eq!(g.lost(), 0);
        assert_eq!(g.observe(12), Seen::Late);
    }

    #[test]
    fn holes_count_when_settled_or_finished() {
        let mut g = SerialGaps::new();
        g.observe(100);
        g.observe(105); // 101..=104 missing, but may still arrive
        assert_eq!(g.lost(), 0);
        g.observe(102);
        g.settle_below(104); // 101 and 103 can no longer arrive
        assert_eq!(g.lost(), 2);
        g.observe(110);
        g.finish(); // 104, 106..=109
        assert_eq!(g.lost(), 2 + 1 + 4);
    }

    #[test]
    fn window_overflow_counts_holes() {
        let mut g = SerialGaps::new();
        g.observe(1);
        g.observe(1 + 10 + WINDOW); // pushes 2..=11 out of the window
        assert_eq!(g.lost(), 10);
        g.observe(1 + 10 + 5 * WINDOW); // a jump far beyond the window
        assert_eq!(g.lost(), u64::from(10 + 4 * WINDOW - 1));
        g.finish(); // the rest of the jump that was still inside the window
        assert_eq!(g.lost(), u64::from(10 + 5 * WINDOW - 2));
    }

    #[test]
    fn wraps_at_u32() {
        let mut g = SerialGaps::new();
        for s in [u32::MAX - 2, u32::MAX - 1, u32::MAX, 0, 2] {
            assert_eq!(g.observe(s), Seen::New);
        }
        g.finish();
        assert_eq!(g.lost(), 1, "serial 1 is missing after the wrap");
        assert_eq!(g.observe(u32::MAX), Seen::Late);
    }

    #[test]
    fn far_behind_is_a_restart() {
        let mut g = SerialGaps::new();
        g.observe(1_000_000);
        assert_eq!(g.observe(5), Seen::New);
        assert_eq!(g.resets(), 1);
        assert_eq!(g.observe(6), Seen::New);
        assert_eq!(g.lost(), 0);
    }
}
