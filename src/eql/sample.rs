//! `sample by`: unordered events that share join keys, one per filter (reference/eql.md §1.10).
//!
//! Elasticsearch answers a sample query over the whole searched window; on a stream there is
//! no window, so a sample here is bounded by a *retention*: an event waits for the rest of its
//! sample for at most that long (event time), measured against the safe watermark. A rule
//! loader sets it to the rule's look-back (`from = "now-9m"`: 9 minutes; otherwise its
//! `interval`), which is the window one run of the rule would have searched; the default is 5
//! minutes.
//!
//! Per join key, one slot per filter holds the first event that matched it. An event fills at
//! most one slot: the first empty one, in filter order, among the filters it matches (an event
//! satisfying two filters does not make a sample alone). When every slot of a key is filled the
//! sample is emitted — events in filter order, whatever order they came in — and the key starts
//! afresh. Keys and filled slots count against the same caps as sequences.

use super::ast;
use super::error::Error;
use super::join::{decode, KeySpec, KeyTable};
use super::query::{may_match, Item, Match, MatchKind, Retain, StateLimits, StateStats, Tick};
use super::{Options, Program};
use crate::document::{Document, Retained};

/// The retention when nobody sets one: Elastic's default rule interval.
pub const DEFAULT_RETENTION_NS: i64 = 5 * 60 * 1_000_000_000;

/// A compiled sample.
#[derive(Debug)]
pub struct Sample {
    items: Box<[Item]>,
    retention_ns: i64,
}

impl Sample {
    pub(crate) fn compile(s: &ast::Sample, options: &Options) -> Result<Sample, Error> {
        let items = s
            .items
            .iter()
            .map(|i| Item::compile(i, &s.by, options))
            .collect::<Result<Box<[_]>, _>>()?;
        if items.is_empty() {
            return Err(Error::invalid(s.span, "a sample needs at least one filter"));
        }
        Ok(Sample {
            items,
            retention_ns: DEFAULT_RETENTION_NS,
        })
    }

    pub(crate) fn items(&self) -> impl Iterator<Item = &Program> {
        self.items.iter().map(|i| &i.program)
    }

    pub(crate) fn key_specs(&self) -> impl Iterator<Item = &KeySpec> {
        self.items.iter().map(|i| &i.keys)
    }

    pub(crate) fn set_retention(&mut self, ns: i64) {
        self.retention_ns = ns.max(1);
    }

    pub fn retention_ns(&self) -> i64 {
        self.retention_ns
    }
}

#[derive(Debug)]
pub(crate) struct SampleState {
    table: KeyTable<Slots>,
    pending: usize,
    limits: StateLimits,
    key: Vec<u8>,
    /// Event time of the next sweep of expired slots.
    next_sweep: i64,
}

#[derive(Debug)]
struct Slots {
    events: Box<[Option<(i64, Retained)>]>,
    filled: usize,
}

impl Slots {
    /// Empties slots older than the retention; returns how many.
    fn expire(&mut self, oldest: i64) -> usize {
        let mut n = 0;
        for slot in self.events.iter_mut() {
            if slot.as_ref().is_some_and(|(ts, _)| *ts < oldest) {
                *slot = None;
                n += 1;
            }
        }
        self.filled -= n;
        n
    }
}

impl SampleState {
    pub(crate) fn new(_sample: &Sample, limits: &StateLimits) -> SampleState {
        SampleState {
            table: KeyTable::default(),
            pending: 0,
            limits: *limits,
            key: Vec::new(),
            next_sweep: i64::MIN,
        }
    }

    pub(crate) fn held(&self) -> (usize, usize) {
        (self.pending, self.table.len())
    }

    pub(crate) fn on_event<D: Document + ?Sized>(
        &mut self,
        sample: &Sample,
        tick: Tick,
        retain: &mut Retain<'_, D>,
        may: u64,
        stats: &mut StateStats,
        emit: &mut dyn FnMut(Match),
    ) {
        let doc = retain.doc();
        let oldest = tick.safe.saturating_sub(sample.retention_ns);
        if tick.safe >= self.next_sweep {
            self.sweep(oldest, stats);
            let every = (sample.retention_ns / 2).clamp(1_000_000_000, 60_000_000_000);
            self.next_sweep = tick.safe.saturating_add(every);
        }
        for (i, item) in sample.items.iter().enumerate() {
            if !may_match(may, i)
                || !item.program.matches(doc)
                || !item.keys.encode(doc, &mut self.key)
            {
                continue;
            }
            let n = sample.items.len();
            let entry = self.table.get_or_insert_with(&self.key, || Slots {
                events: (0..n).map(|_| None).collect(),
                filled: 0,
            });
            let expired = entry.expire(oldest);
            self.pending -= expired;
            stats.expired += expired as u64;
            let Some(slot) = entry.events.get_mut(i) else {
                continue;
            };
            if slot.is_some() {
                continue;
            }
            *slot = Some((tick.ts, retain.get()));
            entry.filled += 1;
            self.pending += 1;
            if entry.filled == n {
                if let Some(done) = self.table.remove(&self.key) {
                    self.pending -= n;
                    stats.completed += 1;
                    emit(Match {
                        kind: MatchKind::Sample,
                        events: done
                            .events
                            .into_vec()
                            .into_iter()
                            .map(|s| s.map(|(_, e)| e))
                            .collect(),
                        join_keys: decode(&self.key),
                        completed_by: i,
                    });
                }
            }
            break;
        }
        self.enforce_caps(oldest, stats);
    }

    /// Empties slots older than the retention, and drops keys left with none.
    fn sweep(&mut self, oldest: i64, stats: &mut StateStats) {
        let pending = &mut self.pending;
        self.table.retain(|_, e| {
            let n = e.expire(oldest);
            *pending -= n;
            stats.expired += n as u64;
            e.filled > 0
        });
    }

    fn enforce_caps(&mut self, oldest: i64, stats: &mut StateStats) {
        let over =
            |s: &SampleState| s.table.len() > s.limits.max_keys || s.pending > s.limits.max_pending;
        if !over(self) {
            return;
        }
        self.sweep(oldest, stats);
        while over(self) && self.table.len() > 0 {
            let n = (self.table.len() / 8).max(1);
            let pending = &mut self.pending;
            self.table.evict_oldest(n, |e| {
                stats.evicted_keys += 1;
                stats.evicted_pending += e.filled as u64;
                *pending -= e.filled;
            });
        }
    }
}
