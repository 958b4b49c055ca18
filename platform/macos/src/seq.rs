//! Messages the kernel dropped, counted from gaps in Endpoint Security sequence numbers.
//!
//! `global_seq_num` grows by one for every message sent to a client and `seq_num` by one per
//! event type: a jump of *n* means *n − 1* messages were dropped because the client fell behind.
//! `global_seq_num` (message version 4+) is used when present, `seq_num` otherwise, never both,
//! so one drop is not counted twice. A number that goes backwards (a new client, captures
//! joined end to end) starts counting afresh and is counted as a reset, not as a drop.
//!
//! Atomics so the live handler — a `Fn` closure on Endpoint Security's serial queue — can use it
//! through a shared reference; replay uses it the same way.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::record::EventKind;

const NONE: u64 = u64::MAX;

/// Gap counter over one stream of messages.
#[derive(Debug)]
pub struct SeqGaps {
    last_global: AtomicU64,
    last_per_kind: [AtomicU64; 3],
    dropped: AtomicU64,
    resets: AtomicU64,
}

impl Default for SeqGaps {
    fn default() -> Self {
        SeqGaps::new()
    }
}

impl SeqGaps {
    pub const fn new() -> SeqGaps {
        SeqGaps {
            last_global: AtomicU64::new(NONE),
            last_per_kind: [
                AtomicU64::new(NONE),
                AtomicU64::new(NONE),
                AtomicU64::new(NONE),
            ],
            dropped: AtomicU64::new(0),
            resets: AtomicU64::new(0),
        }
    }

    /// Records one message; returns how many messages it shows were lost just before it.
    ///
    /// `kind` is `None` for a message of another event type: it still counts for
    /// `global_seq_num`. Callers must observe messages in delivery order (Endpoint Security's
    /// handler queue is serial; a replay reads in file order).
    pub fn observe(
        &self,
        kind: Option<EventKind>,
        seq_num: Option<u64>,
        global_seq_num: Option<u64>,
    ) -> u64 {
        let (slot, now) = match (global_seq_num, seq_num, kind) {
            (Some(g), _, _) => (&self.last_global, g),
            (None, Some(s), Some(k)) => (&self.last_per_kind[kind_index(k)], s),
            _ => return 0,
        };
        if now == NONE {
            return 0;
        }
        let last = slot.swap(now, Relaxed);
        if last == NONE {
            return 0;
        }
        if now <= last {
            self.resets.fetch_add(1, Relaxed);
            return 0;
        }
        let gap = now - last - 1;
        if gap > 0 {
            self.dropped.fetch_add(gap, Relaxed);
        }
        gap
    }

    /// Messages lost so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Relaxed)
    }

    /// Times a sequence number went backwards.
    pub fn resets(&self) -> u64 {
        self.resets.load(Relaxed)
    }
}

fn kind_index(kind: EventKind) -> usize {
    match kind {
        EventKind::Exec => 0,
        EventKind::Fork => 1,
        EventKind::Exit => 2,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::*;

    #[test]
    fn global_gaps_are_drops() {
        let s = SeqGaps::new();
        assert_eq!(s.observe(Some(Exec), Some(0), Some(10)), 0);
        assert_eq!(s.observe(Some(Fork), Some(0), Some(11)), 0);
        assert_eq!(s.observe(Some(Exit), Some(0), Some(15)), 3);
        assert_eq!(s.dropped(), 3);
        assert_eq!(s.resets(), 0);
    }

    #[test]
    fn per_type_numbers_when_there_is_no_global() {
        let s = SeqGaps::new();
        // Interleaved kinds each count from their own last number.
        assert_eq!(s.observe(Some(Exec), Some(5), None), 0);
        assert_eq!(s.observe(Some(Fork), Some(100), None), 0);
        assert_eq!(s.observe(Some(Exec), Some(6), None), 0);
        assert_eq!(s.observe(Some(Fork), Some(103), None), 2);
        assert_eq!(s.observe(Some(Exec), Some(9), None), 2);
        assert_eq!(s.dropped(), 4);
    }

    #[test]
    fn a_drop_is_counted_once_when_both_numbers_jump() {
        let s = SeqGaps::new();
        s.observe(Some(Exec), Some(1), Some(1));
        // One exec lost: both seq_num and global_seq_num skip one.
        assert_eq!(s.observe(Some(Exec), Some(3), Some(3)), 1);
        assert_eq!(s.dropped(), 1);
    }

    #[test]
    fn other_event_types_still_count_for_the_global_number() {
        let s = SeqGaps::new();
        s.observe(Some(Exec), None, Some(1));
        assert_eq!(s.observe(None, None, Some(2)), 0);
        assert_eq!(s.observe(Some(Exit), None, Some(3)), 0);
        assert_eq!(s.dropped(), 0);
    }

    #[test]
    fn going_backwards_is_a_reset_not_a_drop() {
        let s = SeqGaps::new();
        s.observe(Some(Exec), None, Some(500));
        assert_eq!(s.observe(Some(Exec), None, Some(1)), 0);
        assert_eq!(s.observe(Some(Exec), None, Some(2)), 0);
        assert_eq!(s.observe(Some(Exec), None, Some(2)), 0); // a repeat is a reset too
        assert_eq!((s.dropped(), s.resets()), (0, 2));
    }

    #[test]
    fn messages_without_numbers_are_ignored() {
        let s = SeqGaps::new();
        s.observe(Some(Exec), None, Some(1));
        assert_eq!(s.observe(Some(Exec), None, None), 0);
        assert_eq!(
            s.observe(None, Some(7), None),
            0,
            "seq_num of an unknown kind"
        );
        assert_eq!(s.observe(Some(Exec), None, Some(2)), 0);
        assert_eq!(s.dropped(), 0);
    }
}
