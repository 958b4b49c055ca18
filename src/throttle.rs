//! `max_signals` per `interval`, per rule: Elastic's cap on how many alerts one rule run may
//! produce, applied here as a rate limit.
//!
//! Windows are aligned on multiples of the rule's interval since the epoch and keyed on the
//! *event's* time, so replaying the same input always suppresses the same alerts. An event older
//! than the current window counts against the current window (windows never move backwards), so
//! out-of-order input cannot reopen a full window.

use crate::rules::{Rule, RuleSet};

#[derive(Clone, Copy, Debug, Default)]
struct Window {
    /// `event time / interval` of the window being counted; `None` before the first alert.
    current: Option<i64>,
    emitted: u32,
    suppressed: u64,
}

impl Window {
    fn admit(&mut self, window: i64, max_signals: u32) -> bool {
        if self.current.is_none_or(|current| window > current) {
            self.current = Some(window);
            self.emitted = 0;
        }
        if self.emitted < max_signals {
            self.emitted += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }
}

/// Per-rule alert counts for the current window, and what was suppressed.
#[derive(Clone, Debug, Default)]
pub struct Throttle {
    windows: Vec<Window>,
}

impl Throttle {
    /// State for every rule of `rules` (rules are addressed by [`Rule::index`]).
    pub fn new(rules: &RuleSet) -> Throttle {
        Throttle {
            windows: vec![Window::default(); rules.len()],
        }
    }

    /// True when `rule` may alert on an event at `event_ns`; false (and counted) when it has
    /// already produced `max_signals` alerts in that event's window.
    pub fn admit(&mut self, rule: &Rule, event_ns: i64) -> bool {
        let i = rule.index();
        if i >= self.windows.len() {
            self.windows.resize(i + 1, Window::default());
        }
        let window = event_ns.div_euclid(rule.meta.interval_ns.max(1));
        self.windows[i].admit(window, rule.meta.max_signals)
    }

    /// Alerts suppressed for the rule at `index`.
    pub fn suppressed(&self, index: usize) -> u64 {
        self.windows.get(index).map_or(0, |w| w.suppressed)
    }

    pub fn total_suppressed(&self) -> u64 {
        self.windows.iter().map(|w| w.suppressed).sum()
    }

    /// `(rule, suppressed)` for every rule that had alerts suppressed, in rule order.
    pub fn suppressed_by_rule<'r>(
        &'r self,
        rules: &'r RuleSet,
    ) -> impl Iterator<Item = (&'r Rule, u64)> + 'r {
        rules
            .rules()
            .iter()
            .map(|r| (r, self.suppressed(r.index())))
            .filter(|(_, n)| *n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_max_per_window_and_counts_the_rest() {
        let mut w = Window::default();
        let admitted: Vec<bool> = (0..5).map(|_| w.admit(7, 2)).collect();
        assert_eq!(admitted, [true, true, false, false, false]);
        assert_eq!(w.suppressed, 3);
        // The next window starts afresh; suppression totals accumulate.
        assert!(w.admit(8, 2));
        assert!(w.admit(8, 2));
        assert!(!w.admit(8, 2));
        assert_eq!(w.suppressed, 4);
    }

    #[test]
    fn late_events_count_against_the_current_window() {
        let mut w = Window::default();
        assert!(w.admit(10, 1));
        assert!(!w.admit(9, 1), "an older window must not reopen");
        assert!(w.admit(11, 1));
        assert_eq!(w.suppressed, 1);
    }
}
