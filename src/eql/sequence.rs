//! `sequence`: ordered events that share join keys, within `maxspan`, matched as a state
//! machine per join key (reference/eql.md §1.9).
//!
//! Semantics, as Elasticsearch runs them over a time-sorted index, for events arriving one at a
//! time:
//! - **Stages.** Items expand (`with runs=N` is N copies) into stages. Each join key has one
//!   slot per stage holding at most one *partial match*: the events that matched the stages so
//!   far. An event matching the first item starts a partial match in the first slot; an event
//!   matching stage k moves the key's partial match out of slot k-1, into slot k (or completes
//!   it at the last stage). A partial match entering an occupied slot *overwrites* the one
//!   there (the newer one wins: Elasticsearch keeps only the most recent per stage and key).
//! - **One event, several stages.** Stages are tried from the last to the first, so one event
//!   can complete a match and start another (`[process where true] [process where true]` on
//!   e1, e2, e3 gives `[e1,e2]`, `[e2,e3]`), but never fills two stages of the same match.
//! - **`maxspan`** bounds the distance from a match's first event to each later one, inclusive:
//!   with `maxspan=5s` events 5000 ms apart join, 5001 ms apart do not (Elasticsearch rejects
//!   only a span *greater* than maxspan; milliseconds and below are kept, `500ms` is 500 ms).
//! - **Join keys** are compared exactly (see [`super::join`]); an event whose key is absent or
//!   null takes no part unless the key is written `?field`.
//! - **`until`**: an event matching the `until` item discards the partial matches of its key;
//!   completed matches are unaffected. It is applied before the event is tried as a stage.
//! - **Missing events `![...]`**, as Elasticsearch checks them after a positive match:
//!   a *middle* missing item rejects the match when an event satisfying it (with the same key)
//!   falls strictly between the neighbouring positive events' timestamps; a *leading* one
//!   rejects it when the latest such event before the first positive event lies within
//!   `maxspan` of the last positive event; a *trailing* one rejects it when such an event after
//!   the last positive event lies within `maxspan` of the first positive event (of the latest
//!   leading missing event, when the sequence has both, and then only if that one exists). A
//!   match with a trailing missing item is therefore held until the safe watermark passes that
//!   deadline — *delayed emission* — or until the end of input. Missing items are checked
//!   before positive ones for the same event, so an event never counts as missing for a match
//!   it is part of. `runs` on a missing item changes nothing (each copy checks the same gap).
//! - **Time and order.** Timestamps decide spans; arrival order breaks ties. A partial match is
//!   never extended by an event older than its last event (counted as `out_of_order`).
//!   Partial matches whose span can no longer be met at the safe watermark are expired.
//! - **Bounds.** At most [`StateLimits::max_keys`] keys and [`StateLimits::max_pending`]
//!   partial matches; past either, expired state is swept and then the least recently used
//!   eighth of the keys is evicted, each counted.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::ast;
use super::error::Error;
use super::join::{decode, KeySpec, KeyTable};
use super::query::{
    may_match, Item, Match, MatchKind, Retain, Role, StateLimits, StateStats, Tick,
};
use super::{Options, Program};
use crate::document::{Document, Retained};

/// How often (event time) expired partial matches are swept when no cap forces it.
const SWEEP_MIN_NS: i64 = 1_000_000_000;
const SWEEP_MAX_NS: i64 = 60_000_000_000;

/// A compiled sequence.
#[derive(Debug)]
pub struct Sequence {
    /// The items as written (each `runs` copy refers to one of these).
    items: Box<[SeqItem]>,
    until: Option<Item>,
    stages: Box<[Stage]>,
    maxspan_ns: Option<i64>,
    /// First and last positive stage.
    first: usize,
    last: usize,
    /// Missing stages before the first / after the last positive stage.
    leading: bool,
    trailing: bool,
}

#[derive(Debug)]
struct SeqItem {
    item: Item,
    missing: bool,
}

#[derive(Debug)]
struct Stage {
    item: usize,
    missing: bool,
    /// The positive stage before this one.
    prev: Option<usize>,
    /// A positive stage with a missing stage between it and `prev`.
    gap_before: bool,
}

impl Sequence {
    pub(crate) fn compile(s: &ast::Sequence, options: &Options) -> Result<Sequence, Error> {
        let items = s
            .items
            .iter()
            .map(|i| {
                Ok(SeqItem {
                    item: Item::compile(i, &s.by, options)?,
                    missing: i.missing,
                })
            })
            .collect::<Result<Box<[_]>, Error>>()?;
        let until = s
            .until
            .as_ref()
            .map(|u| Item::compile(u, &s.by, options))
            .transpose()?;
        let mut stages = Vec::new();
        let mut prev = None;
        let mut gap = false;
        for (i, item) in s.items.iter().enumerate() {
            for _ in 0..item.runs.unwrap_or(1).max(1) {
                let index = stages.len();
                stages.push(Stage {
                    item: i,
                    missing: item.missing,
                    prev,
                    gap_before: !item.missing && gap && prev.is_some(),
                });
                if item.missing {
                    gap = true;
                } else {
                    prev = Some(index);
                    gap = false;
                }
            }
        }
        let positive: Vec<usize> = (0..stages.len()).filter(|&i| !stages[i].missing).collect();
        let (Some(&first), Some(&last)) = (positive.first(), positive.last()) else {
            return Err(Error::invalid(
                s.span,
                "a sequence needs at least one item that is not a missing event '![...]'",
            ));
        };
        let maxspan_ns = s
            .maxspan
            .map(|m| {
                i64::try_from(m.millis)
                    .ok()
                    .and_then(|ms| ms.checked_mul(1_000_000))
                    .ok_or_else(|| Error::invalid(m.span, "maxspan is too large"))
            })
            .transpose()?;
        if stages.iter().any(|st| st.missing) && maxspan_ns.is_none() {
            return Err(Error::invalid(
                s.span,
                "a missing event '![...]' needs the sequence to have 'with maxspan=...'",
            ));
        }
        Ok(Sequence {
            leading: first > 0,
            trailing: last + 1 < stages.len(),
            items,
            until,
            stages: stages.into(),
            maxspan_ns,
            first,
            last,
        })
    }

    pub(crate) fn items(&self) -> Vec<(Role, &Program)> {
        let mut out: Vec<(Role, &Program)> = self
            .items
            .iter()
            .map(|i| {
                let role = if i.missing {
                    Role::Missing
                } else {
                    Role::Required
                };
                (role, &i.item.program)
            })
            .collect();
        if let Some(u) = &self.until {
            out.push((Role::Until, &u.program));
        }
        out
    }

    pub(crate) fn key_specs(&self) -> impl Iterator<Item = &KeySpec> {
        self.items
            .iter()
            .map(|i| &i.item.keys)
            .chain(self.until.as_ref().map(|u| &u.keys))
    }

    /// `maxspan` in nanoseconds.
    pub fn maxspan_ns(&self) -> Option<i64> {
        self.maxspan_ns
    }

    /// Stages after `runs` expansion.
    pub fn stage_count(&self) -> usize {
        self.stages.len()
    }

    /// True when results wait for a trailing missing item's deadline.
    pub fn delays_results(&self) -> bool {
        self.trailing
    }

    fn result(&self, events: Vec<Retained>, key: &[u8]) -> Match {
        let mut positives = events.into_iter();
        Match {
            kind: MatchKind::Sequence,
            events: self
                .stages
                .iter()
                .map(|s| if s.missing { None } else { positives.next() })
                .collect(),
            join_keys: decode(key),
            completed_by: self.last,
        }
    }
}

/// The state of one sequence rule.
#[derive(Debug)]
pub(crate) struct SequenceState {
    table: KeyTable<KeyState>,
    /// Partial matches in slots plus matches waiting for their deadline.
    pending: usize,
    waiting: usize,
    /// Per stage, how many keys hold a partial match in its slot: a later stage with nothing
    /// held before it cannot advance, so an event matching only it costs no key lookup.
    held_at: Box<[usize]>,
    due: BinaryHeap<Reverse<Due>>,
    next_id: u64,
    next_sweep: i64,
    limits: StateLimits,
    scratch: Scratch,
}

/// A match waiting for a trailing missing event's deadline.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Due {
    deadline: i64,
    id: u64,
    key: Box<[u8]>,
}

#[derive(Debug)]
struct KeyState {
    /// One slot per stage (missing stages' slots stay empty).
    slots: Box<[Option<Partial>]>,
    /// Leading missing events seen for this key.
    lead: Option<Lead>,
    waiting: Vec<Waiting>,
}

impl KeyState {
    fn new(stages: usize) -> KeyState {
        KeyState {
            slots: (0..stages).map(|_| None).collect(),
            lead: None,
            waiting: Vec::new(),
        }
    }

    fn held(&self) -> usize {
        self.slots.iter().flatten().count() + self.waiting.len()
    }

    fn is_empty(&self) -> bool {
        self.lead.is_none() && self.waiting.is_empty() && self.slots.iter().all(Option::is_none)
    }
}

#[derive(Debug)]
struct Partial {
    events: Vec<Retained>,
    start: i64,
    last: i64,
    /// The earliest middle-missing event after `last` (it rejects the next stage if earlier).
    gap: Option<i64>,
    /// The latest leading-missing event before `start`.
    lead: Option<i64>,
}

#[derive(Clone, Copy, Debug)]
struct Lead {
    latest: i64,
    /// The latest one strictly before `latest`.
    before: Option<i64>,
}

impl Lead {
    fn seen(lead: Option<Lead>, ts: i64) -> Lead {
        match lead {
            None => Lead {
                latest: ts,
                before: None,
            },
            Some(l) if ts > l.latest => Lead {
                latest: ts,
                before: Some(l.latest),
            },
            Some(l) if ts == l.latest => l,
            Some(l) => Lead {
                latest: l.latest,
                before: Some(l.before.map_or(ts, |b| b.max(ts))),
            },
        }
    }

    /// The latest leading event strictly before `ts`.
    fn before(&self, ts: i64) -> Option<i64> {
        if self.latest < ts {
            Some(self.latest)
        } else {
            self.before.filter(|b| *b < ts)
        }
    }
}

#[derive(Debug)]
struct Waiting {
    id: u64,
    events: Vec<Retained>,
    last: i64,
    /// Trailing missing events within maxspan of this reject the match.
    anchor: i64,
}

/// Per-event scratch: which items matched, and their keys, computed at most once each.
#[derive(Debug, Default)]
struct Scratch {
    matched: Vec<bool>,
    keys: Vec<Vec<u8>>,
    /// 0 not computed, 1 absent (joins nothing), 2 in `keys`.
    known: Vec<u8>,
}

impl Scratch {
    fn key<D: Document + ?Sized>(&mut self, spec: &KeySpec, i: usize, doc: &D) -> Option<&[u8]> {
        let (Some(state), Some(buf)) = (self.known.get_mut(i), self.keys.get_mut(i)) else {
            return None;
        };
        if *state == 0 {
            *state = if spec.encode(doc, buf) { 2 } else { 1 };
        }
        (*state == 2).then_some(buf.as_slice())
    }
}

impl SequenceState {
    pub(crate) fn new(seq: &Sequence, limits: &StateLimits) -> SequenceState {
        let n = seq.items.len() + 1;
        SequenceState {
            table: KeyTable::default(),
            pending: 0,
            waiting: 0,
            held_at: vec![0; seq.stages.len()].into_boxed_slice(),
            due: BinaryHeap::new(),
            next_id: 0,
            next_sweep: i64::MIN,
            limits: *limits,
            scratch: Scratch {
                matched: vec![false; seq.items.len()],
                keys: vec![Vec::new(); n],
                known: vec![0; n],
            },
        }
    }

    /// (partial matches held, keys).
    pub(crate) fn held(&self) -> (usize, usize) {
        (self.pending, self.table.len())
    }

    pub(crate) fn next_due(&self) -> Option<i64> {
        self.due.peek().map(|d| d.0.deadline)
    }

    pub(crate) fn on_event<D: Document + ?Sized>(
        &mut self,
        seq: &Sequence,
        tick: Tick,
        retain: &mut Retain<'_, D>,
        may: u64,
        stats: &mut StateStats,
        emit: &mut dyn FnMut(Match),
    ) {
        self.emit_due(seq, tick.safe, stats, emit);
        let doc = retain.doc();
        let mut any = false;
        for (i, (m, item)) in self
            .scratch
            .matched
            .iter_mut()
            .zip(seq.items.iter())
            .enumerate()
        {
            *m = may_match(may, i) && item.item.program.matches(doc);
            any |= *m;
        }
        let until = may_match(may, seq.items.len())
            && seq
                .until
                .as_ref()
                .filter(|u| u.program.matches(doc))
                .is_some();
        if !any && !until {
            return;
        }
        self.scratch.known.fill(0);
        if tick.safe >= self.next_sweep {
            self.sweep(seq, tick.safe, stats);
        }
        let ts = tick.ts;
        let SequenceState {
            table,
            pending,
            waiting,
            held_at,
            due,
            next_id,
            scratch,
            ..
        } = self;

        if let Some(u) = seq.until.as_ref().filter(|_| until) {
            if let Some(key) = scratch.key(&u.keys, seq.items.len(), doc) {
                if let Some(entry) = table.get_mut(key) {
                    for (slot, held) in entry.slots.iter_mut().zip(held_at.iter_mut()) {
                        if slot.take().is_some() {
                            *pending -= 1;
                            *held -= 1;
                            stats.until += 1;
                        }
                    }
                }
            }
        }

        // Missing items first: an event is never "missing" from a match it belongs to.
        for (s, stage) in seq.stages.iter().enumerate() {
            if !stage.missing || !scratch.matched[stage.item] {
                continue;
            }
            let Some(key) = scratch.key(&seq.items[stage.item].item.keys, stage.item, doc) else {
                continue;
            };
            if s < seq.first {
                let entry = table.get_or_insert_with(key, || KeyState::new(seq.stages.len()));
                entry.lead = Some(Lead::seen(entry.lead, ts));
            } else if s > seq.last {
                let span = seq.maxspan_ns.unwrap_or(i64::MAX);
                if let Some(entry) = table.get_mut(key) {
                    let before = entry.waiting.len();
                    entry
                        .waiting
                        .retain(|w| !(ts > w.last && ts.saturating_sub(w.anchor) <= span));
                    let rejected = before - entry.waiting.len();
                    *pending -= rejected;
                    *waiting -= rejected;
                    stats.missing += rejected as u64;
                }
            } else if let Some(prev) = stage.prev.filter(|&p| held_at[p] > 0) {
                if let Some(p) = table
                    .get_mut(key)
                    .and_then(|e| e.slots.get_mut(prev))
                    .and_then(Option::as_mut)
                {
                    if ts > p.last {
                        p.gap = Some(p.gap.map_or(ts, |g| g.min(ts)));
                    }
                }
            }
        }

        let mut done = Done {
            seq,
            due,
            next_id,
            pending,
            waiting,
            held_at,
            stats,
            emit,
        };
        for s in (seq.first..=seq.last).rev() {
            let stage = &seq.stages[s];
            if stage.missing || !scratch.matched[stage.item] {
                continue;
            }
            // Nothing waits in the stage before: no key to look up.
            if s != seq.first && stage.prev.is_none_or(|p| done.held_at[p] == 0) {
                continue;
            }
            let Some(key) = scratch.key(&seq.items[stage.item].item.keys, stage.item, doc) else {
                continue;
            };
            if s == seq.first {
                let entry = table.get_or_insert_with(key, || KeyState::new(seq.stages.len()));
                let lead = if seq.leading {
                    entry.lead.and_then(|l| l.before(ts))
                } else {
                    None
                };
                let p = Partial {
                    events: vec![retain.get()],
                    start: ts,
                    last: ts,
                    gap: None,
                    lead,
                };
                if seq.first == seq.last {
                    done.complete(p, key, entry);
                } else {
                    done.place(entry, s, p);
                }
                continue;
            }
            let Some(prev) = stage.prev else { continue };
            let Some(entry) = table.get_mut(key) else {
                continue;
            };
            let Some(mut p) = entry.slots[prev].take() else {
                continue;
            };
            *done.pending -= 1;
            done.held_at[prev] -= 1;
            if seq
                .maxspan_ns
                .is_some_and(|span| ts.saturating_sub(p.start) > span)
            {
                done.stats.expired += 1;
                continue;
            }
            if ts < p.last {
                done.stats.out_of_order += 1;
                entry.slots[prev] = Some(p);
                *done.pending += 1;
                done.held_at[prev] += 1;
                continue;
            }
            if stage.gap_before && p.gap.is_some_and(|g| g < ts) {
                done.stats.missing += 1;
                continue;
            }
            p.events.push(retain.get());
            p.last = ts;
            p.gap = None;
            if s == seq.last {
                done.complete(p, key, entry);
            } else {
                done.place(entry, s, p);
            }
        }
        self.enforce_caps(seq, tick.safe, stats);
        debug_assert!(self.held_at_is_exact(), "per-stage counts drifted");
    }

    /// Debug builds check after every event that `held_at` counts exactly the occupied slots:
    /// a count too low would skip a stage that can advance and lose a result.
    fn held_at_is_exact(&self) -> bool {
        let mut counted = vec![0usize; self.held_at.len()];
        for entry in self.table.values() {
            for (slot, n) in entry.slots.iter().zip(counted.iter_mut()) {
                *n += usize::from(slot.is_some());
            }
        }
        *counted == *self.held_at
    }

    /// Emits the waiting matches whose trailing deadline is before `safe` (all of them when
    /// `safe` is `i64::MAX`: the end of input).
    pub(crate) fn emit_due(
        &mut self,
        seq: &Sequence,
        safe: i64,
        stats: &mut StateStats,
        emit: &mut dyn FnMut(Match),
    ) {
        while let Some(Reverse(top)) = self.due.peek() {
            if !(safe == i64::MAX || safe > top.deadline) {
                break;
            }
            let Some(Reverse(due)) = self.due.pop() else {
                break;
            };
            let Some(entry) = self.table.get_mut(&due.key) else {
                continue;
            };
            let Some(i) = entry.waiting.iter().position(|w| w.id == due.id) else {
                continue;
            };
            let w = entry.waiting.remove(i);
            self.pending -= 1;
            self.waiting -= 1;
            stats.completed += 1;
            emit(seq.result(w.events, &due.key));
        }
        // Rejected or evicted matches leave their deadline behind; rebuild when those dominate.
        if self.due.len() > 2 * self.waiting + 1024 {
            let mut live = BinaryHeap::with_capacity(self.waiting);
            for d in std::mem::take(&mut self.due).into_vec() {
                let Reverse(d) = d;
                let alive = self
                    .table
                    .get_mut(&d.key)
                    .is_some_and(|e| e.waiting.iter().any(|w| w.id == d.id));
                if alive {
                    live.push(Reverse(d));
                }
            }
            self.due = live;
        }
    }

    /// Drops partial matches that can no longer meet `maxspan`, leading marks too old to
    /// matter, and keys left with nothing.
    fn sweep(&mut self, seq: &Sequence, safe: i64, stats: &mut StateStats) {
        let span = seq.maxspan_ns;
        let (pending, held_at) = (&mut self.pending, &mut self.held_at);
        self.table.retain(|_, e| {
            if let Some(span) = span {
                for (slot, held) in e.slots.iter_mut().zip(held_at.iter_mut()) {
                    if slot
                        .as_ref()
                        .is_some_and(|p| safe.saturating_sub(p.start) > span)
                    {
                        *slot = None;
                        *pending -= 1;
                        *held -= 1;
                        stats.expired += 1;
                    }
                }
                if e.lead.is_some_and(|l| safe.saturating_sub(l.latest) > span) {
                    e.lead = None;
                }
            }
            !e.is_empty()
        });
        let every = span.map_or(SWEEP_MAX_NS, |s| (s / 2).clamp(SWEEP_MIN_NS, SWEEP_MAX_NS));
        self.next_sweep = safe.saturating_add(every);
    }

    fn enforce_caps(&mut self, seq: &Sequence, safe: i64, stats: &mut StateStats) {
        let over = |s: &SequenceState| {
            s.table.len() > s.limits.max_keys || s.pending > s.limits.max_pending
        };
        if !over(self) {
            return;
        }
        self.sweep(seq, safe, stats);
        while over(self) && self.table.len() > 0 {
            let n = (self.table.len() / 8).max(1);
            let (pending, waiting, held_at) =
                (&mut self.pending, &mut self.waiting, &mut self.held_at);
            self.table.evict_oldest(n, |e| {
                let held = e.held();
                stats.evicted_keys += 1;
                stats.evicted_pending += held as u64;
                *pending -= held;
                *waiting -= e.waiting.len();
                for (slot, at) in e.slots.iter().zip(held_at.iter_mut()) {
                    *at -= usize::from(slot.is_some());
                }
            });
        }
    }
}

/// What completing or advancing a partial match needs, borrowed once per event.
struct Done<'a> {
    seq: &'a Sequence,
    due: &'a mut BinaryHeap<Reverse<Due>>,
    next_id: &'a mut u64,
    pending: &'a mut usize,
    waiting: &'a mut usize,
    held_at: &'a mut [usize],
    stats: &'a mut StateStats,
    emit: &'a mut dyn FnMut(Match),
}

impl Done<'_> {
    /// Puts a partial match in stage `s`'s slot, overwriting an older one.
    fn place(&mut self, entry: &mut KeyState, s: usize, p: Partial) {
        if entry.slots[s].replace(p).is_some() {
            self.stats.overwritten += 1;
        } else {
            *self.pending += 1;
            self.held_at[s] += 1;
        }
    }

    /// All positive stages matched: check leading missing events, then emit or wait for the
    /// trailing deadline.
    fn complete(&mut self, p: Partial, key: &[u8], entry: &mut KeyState) {
        let seq = self.seq;
        let span = seq.maxspan_ns.unwrap_or(i64::MAX);
        if seq.trailing {
            let anchor = if seq.leading {
                match p.lead {
                    // Elasticsearch: with leading and trailing missing items, a match is
                    // rejected only when both kinds of missing events exist within maxspan.
                    None => return self.emit(p.events, key),
                    Some(l) => l,
                }
            } else {
                p.start
            };
            *self.next_id += 1;
            let id = *self.next_id;
            entry.waiting.push(Waiting {
                id,
                events: p.events,
                last: p.last,
                anchor,
            });
            self.due.push(Reverse(Due {
                deadline: anchor.saturating_add(span),
                id,
                key: key.into(),
            }));
            *self.pending += 1;
            *self.waiting += 1;
            return;
        }
        if seq.leading {
            if let Some(l) = p.lead {
                if p.last.saturating_sub(l) <= span {
                    self.stats.missing += 1;
                    return;
                }
            }
        }
        self.emit(p.events, key);
    }

    fn emit(&mut self, events: Vec<Retained>, key: &[u8]) {
        self.stats.completed += 1;
        (self.emit)(self.seq.result(events, key));
    }
}
