//! Every query shape compiled, and the mutable state that the stateful ones keep.
//!
//! [`compile_query`] turns any parsed query into a [`Compiled`]: a single-event [`Program`], a
//! [`Sequence`] or a [`Sample`], each with its pipes. A `Compiled` is immutable and shared;
//! whatever a query must remember between events lives in a [`QueryState`] that the caller owns
//! (one per rule per evaluator thread), the way a regex keeps its scratch space apart from the
//! compiled automaton. Results come out as [`Hit`]s: the event being evaluated, or a
//! [`Match`] holding every event of a sequence or sample.
//!
//! Time is event time. The caller passes each event's timestamp and a *safe watermark* in a
//! [`Tick`]: the highest timestamp seen so far minus a tolerance for late events
//! ([`StateLimits::late_tolerance_ns`]). Everything that waits — expiry of partial matches past
//! `maxspan`, delayed emission of sequences ending in a missing event, sample retention — is
//! decided against the safe watermark, so an event up to the tolerance late still counts.
//! Events later than that are the caller's to count and drop (see `rules::RuleState`).

use serde_json::Value;

use super::ast::{self, Expr, ExprKind, Pipe, Query, QueryBody};
use super::compile::compile_event;
use super::error::Error;
use super::join::KeySpec;
use super::pipes::Pipes;
use super::sample::{Sample, SampleState};
use super::sequence::{Sequence, SequenceState};
use super::{parser, Options, Program};
use crate::document::{Document, FieldPath, Retained};

/// A compiled query of any shape, with its pipes.
#[derive(Debug)]
pub struct Compiled {
    body: Body,
    pipes: Box<[Pipe]>,
}

#[derive(Debug)]
pub enum Body {
    Event(Program),
    Sequence(Sequence),
    Sample(Sample),
}

/// Parses and compiles any query.
pub fn compile_query_str(src: &str, options: &Options) -> Result<Compiled, Vec<Error>> {
    let query = parser::parse(src)?;
    compile_query(&query, options).map_err(|e| vec![e])
}

/// Compiles any parsed query.
pub fn compile_query(query: &Query, options: &Options) -> Result<Compiled, Error> {
    let body = match &query.body {
        QueryBody::Event(e) => Body::Event(compile_event(e, options)?),
        QueryBody::Sequence(s) => Body::Sequence(Sequence::compile(s, options)?),
        QueryBody::Sample(s) => Body::Sample(Sample::compile(s, options)?),
    };
    Ok(Compiled {
        body,
        pipes: query.pipes.iter().copied().collect(),
    })
}

/// One item of a sequence or sample, compiled: its condition and its full join key.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) program: Program,
    pub(crate) keys: KeySpec,
}

impl Item {
    /// `shared` keys (`sequence by`, `sample by`) then the item's own `by` keys.
    pub(crate) fn compile(
        item: &ast::SequenceItem,
        shared: &[Expr],
        options: &Options,
    ) -> Result<Item, Error> {
        let program = compile_event(&item.query, options)?;
        let keys = shared
            .iter()
            .chain(&item.by)
            .map(|k| match &k.kind {
                ExprKind::Field(f) => Ok((FieldPath::new(&f.path), f.optional)),
                _ => Err(Error::invalid(
                    k.span,
                    "a join key must be a field, e.g. 'by process.entity_id'",
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Item {
            program,
            keys: KeySpec::new(keys),
        })
    }
}

/// What an item of a query is for (coverage reports ask which items must be fed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A single-event query, a positive sequence item or a sample filter: events must match
    /// it for the query to produce anything.
    Required,
    /// A missing-event item `![...]`: its events prevent results.
    Missing,
    /// The `until` item: its events end pending sequences.
    Until,
}

/// The shape of a query's results.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchKind {
    Event,
    Sequence,
    Sample,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchKind::Event => "event",
            MatchKind::Sequence => "sequence",
            MatchKind::Sample => "sample",
        }
    }
}

impl Compiled {
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The single-event program, for a query without pipes' state.
    pub fn as_event(&self) -> Option<&Program> {
        match &self.body {
            Body::Event(p) => Some(p),
            _ => None,
        }
    }

    pub fn kind(&self) -> MatchKind {
        match self.body {
            Body::Event(_) => MatchKind::Event,
            Body::Sequence(_) => MatchKind::Sequence,
            Body::Sample(_) => MatchKind::Sample,
        }
    }

    /// True when evaluating needs a [`QueryState`]: sequences, samples and any query with pipes.
    pub fn is_stateful(&self) -> bool {
        !matches!(self.body, Body::Event(_)) || !self.pipes.is_empty()
    }

    pub fn pipes(&self) -> &[Pipe] {
        &self.pipes
    }

    /// Every item with its role, in query order (`until` last).
    pub fn items(&self) -> Vec<(Role, &Program)> {
        match &self.body {
            Body::Event(p) => vec![(Role::Required, p)],
            Body::Sequence(s) => s.items(),
            Body::Sample(s) => s.items().map(|p| (Role::Required, p)).collect(),
        }
    }

    /// The categories of events the query must see, each once; `None` when some item is
    /// `any where` (the query must see every event).
    pub fn categories(&self) -> Option<Vec<&str>> {
        let mut out: Vec<&str> = Vec::new();
        for (_, p) in self.items() {
            let cat = p.category()?;
            if !out.contains(&cat) {
                out.push(cat);
            }
        }
        Some(out)
    }

    /// Every join key field, each once, with whether it is optional (`?field`): a required
    /// key that a source never fills means the query never joins.
    pub fn join_key_fields(&self) -> Vec<(&FieldPath, bool)> {
        let mut out: Vec<(&FieldPath, bool)> = Vec::new();
        let specs: Vec<&KeySpec> = match &self.body {
            Body::Event(_) => Vec::new(),
            Body::Sequence(s) => s.key_specs().collect(),
            Body::Sample(s) => s.key_specs().collect(),
        };
        for (p, optional) in specs.into_iter().flat_map(KeySpec::fields) {
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, optional));
            }
        }
        out
    }

    /// How long a sample keeps an event waiting for the rest of its sample (event time).
    /// Elasticsearch bounds a sample by the search window; a rule loader sets the rule's
    /// look-back here. No effect on other shapes.
    pub fn set_sample_retention(&mut self, ns: i64) {
        if let Body::Sample(s) = &mut self.body {
            s.set_retention(ns);
        }
    }

    /// Fresh state for evaluating this query.
    pub fn new_state(&self, limits: &StateLimits) -> QueryState {
        QueryState {
            inner: match &self.body {
                Body::Event(_) => Inner::Event,
                Body::Sequence(s) => Inner::Sequence(SequenceState::new(s, limits)),
                Body::Sample(s) => Inner::Sample(SampleState::new(s, limits)),
            },
            pipes: Pipes::new(&self.pipes),
            stats: StateStats::default(),
        }
    }
}

/// Bounds on what one stateful rule keeps. The defaults hold a few megabytes per rule at most.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateLimits {
    /// Most distinct join keys with state; past it the least recently used eighth is evicted.
    pub max_keys: usize,
    /// Most partial matches (sequence stages, sequences waiting for a trailing missing event,
    /// filled sample slots) across all keys; past it, likewise.
    pub max_pending: usize,
    /// How late (event time, behind the newest event seen) an event may arrive and still take
    /// part in sequences and samples; it also delays expiry and delayed emission by as much.
    pub late_tolerance_ns: i64,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            max_keys: 4096,
            max_pending: 8192,
            late_tolerance_ns: 2_000_000_000,
        }
    }
}

/// The time of one event as stateful queries see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tick {
    /// The event's timestamp (nanoseconds since the epoch).
    pub ts: i64,
    /// The newest timestamp seen so far minus the late tolerance: nothing older can arrive
    /// (anything older is dropped by the caller), so waits that end before it are over.
    pub safe: i64,
}

/// Event time for stateful queries: the watermark (newest timestamp seen) and the tolerance
/// for late events. One per evaluator, shared by all its rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    watermark: Option<i64>,
    tolerance: i64,
}

impl Clock {
    pub fn new(late_tolerance_ns: i64) -> Clock {
        Clock {
            watermark: None,
            tolerance: late_tolerance_ns.max(0),
        }
    }

    /// Places an event in time: `None` when it is later than the tolerance allows (stateful
    /// queries skip it). An event without a timestamp takes the watermark's time (arrival
    /// order), or 0 before any timestamp was seen.
    pub fn tick(&mut self, ts: Option<i64>) -> Option<Tick> {
        let ts = match (ts, self.watermark) {
            (Some(ts), _) => ts,
            (None, Some(w)) => w,
            (None, None) => 0,
        };
        if let Some(w) = self.watermark {
            if ts < w.saturating_sub(self.tolerance) {
                return None;
            }
        }
        let w = self.watermark.map_or(ts, |w| w.max(ts));
        self.watermark = Some(w);
        Some(Tick {
            ts,
            safe: w.saturating_sub(self.tolerance),
        })
    }

    /// The newest timestamp seen.
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// The watermark minus the tolerance: what no future on-time event can be older than.
    pub fn safe(&self) -> Option<i64> {
        self.watermark.map(|w| w.saturating_sub(self.tolerance))
    }
}

/// What a stateful query did and holds, for summaries and live stats.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateStats {
    /// Join keys with state now.
    pub keys: u64,
    /// Partial matches held now (incl. sequences waiting on a trailing missing event, sample
    /// slots and `tail` results).
    pub pending: u64,
    /// The most partial matches held at once.
    pub peak_pending: u64,
    /// Results produced (before `head`/`tail`).
    pub completed: u64,
    /// Partial matches replaced by a newer one in the same stage and key.
    pub overwritten: u64,
    /// Partial matches dropped because `maxspan` (or a sample's retention) ran out.
    pub expired: u64,
    /// Partial matches ended by an `until` event.
    pub until: u64,
    /// Sequences rejected because a missing event `![...]` was seen.
    pub missing: u64,
    /// Events that could not extend a partial match whose last event is later than they are.
    pub out_of_order: u64,
    /// Keys evicted at the cap, and the partial matches they held.
    pub evicted_keys: u64,
    pub evicted_pending: u64,
}

impl StateStats {
    /// Sums counters; `keys`/`pending`/`peak_pending` add up too (a total across rules).
    pub fn add(&mut self, o: &StateStats) {
        self.keys += o.keys;
        self.pending += o.pending;
        self.peak_pending += o.peak_pending;
        self.completed += o.completed;
        self.overwritten += o.overwritten;
        self.expired += o.expired;
        self.until += o.until;
        self.missing += o.missing;
        self.out_of_order += o.out_of_order;
        self.evicted_keys += o.evicted_keys;
        self.evicted_pending += o.evicted_pending;
    }

    pub(crate) fn set_pending(&mut self, pending: usize, keys: usize) {
        self.pending = pending as u64;
        self.keys = keys as u64;
        self.peak_pending = self.peak_pending.max(self.pending);
    }
}

/// The events of one sequence or sample result (or of a single event held by `| tail`).
#[derive(Clone)]
pub struct Match {
    pub kind: MatchKind,
    /// One per (expanded) item, in query order; `None` for a missing-event item.
    pub events: Vec<Option<Retained>>,
    /// The join key values, as Elasticsearch reports them in `join_keys`.
    pub join_keys: Vec<Value>,
    /// Which of `events` completed the result: a sequence's last positive event, the event
    /// that filled a sample's last empty filter.
    pub completed_by: usize,
}

impl Match {
    /// The event that completed the result: its fields are an alert's top-level fields.
    pub fn last(&self) -> Option<&Retained> {
        self.events
            .get(self.completed_by)
            .and_then(Option::as_ref)
            .or_else(|| self.events.iter().rev().flatten().next())
    }
}

impl std::fmt::Debug for Match {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Match")
            .field("kind", &self.kind)
            .field(
                "events",
                &self
                    .events
                    .iter()
                    .map(|e| e.as_ref().map(|d| d.to_json()))
                    .collect::<Vec<_>>(),
            )
            .field("join_keys", &self.join_keys)
            .field("completed_by", &self.completed_by)
            .finish()
    }
}

/// A result: the event being evaluated, or a [`Match`] of several (or held) events.
pub enum Hit<'a, D: ?Sized> {
    Event(&'a D),
    Match(&'a Match),
}

/// The current event, retained (made owned, shared) at most once however many partial matches
/// keep it.
pub struct Retain<'a, D: ?Sized> {
    doc: &'a D,
    kept: Option<Retained>,
}

impl<'a, D: Document + ?Sized> Retain<'a, D> {
    pub fn new(doc: &'a D) -> Self {
        Retain { doc, kept: None }
    }

    pub fn doc(&self) -> &'a D {
        self.doc
    }

    pub fn get(&mut self) -> Retained {
        self.kept.get_or_insert_with(|| self.doc.retain()).clone()
    }
}

/// Everything one stateful query remembers between events.
#[derive(Debug)]
pub struct QueryState {
    inner: Inner,
    pipes: Pipes,
    stats: StateStats,
}

#[derive(Debug)]
enum Inner {
    Event,
    Sequence(SequenceState),
    Sample(SampleState),
}

impl QueryState {
    /// True when no result can come out any more (an exhausted `| head`): skip the query.
    pub fn done(&self) -> bool {
        self.pipes.exhausted()
    }

    pub fn stats(&self) -> StateStats {
        let mut s = self.stats;
        let (pending, keys) = match &self.inner {
            Inner::Event => (0, 0),
            Inner::Sequence(st) => st.held(),
            Inner::Sample(st) => st.held(),
        };
        s.pending = (pending + self.pipes.held()) as u64;
        s.keys = keys as u64;
        s
    }

    /// Evaluates one event. `q` must be the query this state was made for.
    pub fn on_event<D: Document + ?Sized>(
        &mut self,
        q: &Compiled,
        tick: Tick,
        retain: &mut Retain<'_, D>,
        out: &mut dyn FnMut(Hit<'_, D>),
    ) {
        self.on_candidate(q, tick, retain, !0, out)
    }

    /// Evaluates one event that can match only the items whose bits are set in `items` (bit
    /// `i`: item `i` of [`Compiled::items`]; bit 63 stands for every item from the 63rd on),
    /// as a rule index knows: the other items are taken as not matching, unevaluated.
    pub fn on_candidate<D: Document + ?Sized>(
        &mut self,
        q: &Compiled,
        tick: Tick,
        retain: &mut Retain<'_, D>,
        items: u64,
        out: &mut dyn FnMut(Hit<'_, D>),
    ) {
        if self.pipes.exhausted() {
            return;
        }
        let QueryState {
            inner,
            pipes,
            stats,
        } = self;
        match (inner, &q.body) {
            (Inner::Event, Body::Event(p)) => {
                if !may_match(items, 0) || !p.matches(retain.doc()) {
                    return;
                }
                stats.completed += 1;
                if pipes.passes_through() {
                    pipes.pass();
                    out(Hit::Event(retain.doc()));
                } else {
                    let m = Match {
                        kind: MatchKind::Event,
                        events: vec![Some(retain.get())],
                        join_keys: Vec::new(),
                        completed_by: 0,
                    };
                    pipes.push(m, &mut |m| out(Hit::Match(m)));
                }
            }
            (Inner::Sequence(st), Body::Sequence(s)) => {
                st.on_event(s, tick, retain, items, stats, &mut |m| {
                    pipes.push(m, &mut |m| out(Hit::Match(m)))
                });
            }
            (Inner::Sample(st), Body::Sample(s)) => {
                st.on_event(s, tick, retain, items, stats, &mut |m| {
                    pipes.push(m, &mut |m| out(Hit::Match(m)))
                });
            }
            _ => debug_assert!(false, "a QueryState evaluated with another query"),
        }
        let (pending, keys) = match &self.inner {
            Inner::Event => (0, 0),
            Inner::Sequence(st) => st.held(),
            Inner::Sample(st) => st.held(),
        };
        self.stats.set_pending(pending + self.pipes.held(), keys);
    }

    /// Time passed without an event for this query (another rule's event, or a clock tick):
    /// sequences whose trailing missing event can no longer come are emitted.
    pub fn advance(&mut self, q: &Compiled, safe: i64, out: &mut dyn FnMut(&Match)) {
        if let (Inner::Sequence(st), Body::Sequence(s)) = (&mut self.inner, &q.body) {
            let pipes = &mut self.pipes;
            st.emit_due(s, safe, &mut self.stats, &mut |m| pipes.push(m, out));
        }
    }

    /// True when [`Self::advance`] has something to do at `safe`.
    pub fn wants_advance(&self, safe: i64) -> bool {
        match &self.inner {
            Inner::Sequence(st) => st.next_due().is_some_and(|due| safe > due),
            _ => false,
        }
    }

    /// End of input: sequences waiting on a trailing missing event are complete (no event can
    /// come to reject them), and `tail` releases its results.
    pub fn flush(&mut self, q: &Compiled, out: &mut dyn FnMut(&Match)) {
        if let (Inner::Sequence(st), Body::Sequence(s)) = (&mut self.inner, &q.body) {
            let pipes = &mut self.pipes;
            st.emit_due(s, i64::MAX, &mut self.stats, &mut |m| pipes.push(m, out));
        }
        self.pipes.flush(out);
        let (pending, keys) = match &self.inner {
            Inner::Event => (0, 0),
            Inner::Sequence(st) => st.held(),
            Inner::Sample(st) => st.held(),
        };
        self.stats.set_pending(pending + self.pipes.held(), keys);
    }
}

/// Item `i` may match, by a rule index's item mask (see [`QueryState::on_candidate`]).
#[inline]
pub(crate) fn may_match(items: u64, i: usize) -> bool {
    items & (1 << i.min(63)) != 0
}
