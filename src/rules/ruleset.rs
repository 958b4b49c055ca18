//! Compiled rules, indexed by the event categories their queries select.
//!
//! A `process where ...` rule can only match a document whose `event.category` holds
//! `"process"`, so each event is checked against its categories' rules and the `any where` rules,
//! and most rules are never looked at. The set is immutable once built and can be shared between
//! threads; evaluating single-event rules never allocates.
//!
//! Stateful rules — sequences, samples, queries with `| head`/`| tail` — are indexed by the
//! categories of all their items and keep what they remember in a [`RuleState`]: one per
//! evaluator, owned by the caller (`replay::Replay`), so the `RuleSet` stays shared and
//! read-only. The state also keeps event time: the watermark and the late-event tolerance
//! (see [`crate::eql::Clock`]); events later than the tolerance are counted and skipped by
//! stateful rules only.

use super::{Outcome, Report, Rule};
use crate::document::{Document, FieldPath, Scalar};
use crate::eql::query::Role;
use crate::eql::{Clock, Hit, Match, QueryState, Retain, StateLimits, StateStats};

#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Category → indices into `rules`, in load order. A handful of categories at most, so a
    /// list beats a hash map and its scan visits each category once however many values the
    /// event's `event.category` array repeats.
    by_category: Vec<(Box<str>, Vec<usize>)>,
    /// `any where ...` rules, tried on every event.
    any: Vec<usize>,
    /// The same for stateful rules; a rule appears under each category its items select.
    stateful_by_category: Vec<(Box<str>, Vec<usize>)>,
    stateful_any: Vec<usize>,
    /// Every stateful rule.
    stateful: Vec<usize>,
    /// Stateful rules whose results can wait for time to pass (a trailing missing event).
    delayed: Vec<usize>,
    category_field: FieldPath,
}

fn add(lists: &mut Vec<(Box<str>, Vec<usize>)>, cat: &str, i: usize) {
    match lists.iter_mut().find(|(c, _)| &**c == cat) {
        Some((_, list)) => {
            if !list.contains(&i) {
                list.push(i)
            }
        }
        None => lists.push((cat.into(), vec![i])),
    }
}

impl RuleSet {
    /// Takes ownership of compiled rules and indexes them.
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let mut set = RuleSet {
            rules,
            by_category: Vec::new(),
            any: Vec::new(),
            stateful_by_category: Vec::new(),
            stateful_any: Vec::new(),
            stateful: Vec::new(),
            delayed: Vec::new(),
            category_field: FieldPath::new("event.category"),
        };
        for (i, rule) in set.rules.iter_mut().enumerate() {
            rule.index = i;
            let q = &rule.query;
            if !q.is_stateful() {
                match q.as_event().and_then(|p| p.category()) {
                    None => set.any.push(i),
                    Some(cat) => add(&mut set.by_category, cat, i),
                }
                continue;
            }
            set.stateful.push(i);
            if let crate::eql::query::Body::Sequence(s) = q.body() {
                if s.delays_results() {
                    set.delayed.push(i);
                }
            }
            match q.categories() {
                None => set.stateful_any.push(i),
                Some(cats) => {
                    for cat in cats {
                        add(&mut set.stateful_by_category, cat, i);
                    }
                }
            }
        }
        set
    }

    /// Builds a set from the rules that compiled; returns the other reports (unsupported,
    /// skipped, errors) so the caller can say why they are not in the set.
    pub fn from_reports(reports: Vec<Report>) -> (RuleSet, Vec<Report>) {
        let mut rules = Vec::new();
        let mut rest = Vec::new();
        for report in reports {
            match report.outcome {
                Outcome::Ok(rule) => rules.push(*rule),
                _ => rest.push(report),
            }
        }
        (RuleSet::new(rules), rest)
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Every rule, in load order; `rules()[i].index() == i`.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// How many rules keep state (sequences, samples, pipes).
    pub fn stateful_count(&self) -> usize {
        self.stateful.len()
    }

    /// Fresh state for the stateful rules, with default limits.
    pub fn new_state(&self) -> RuleState {
        self.new_state_with(&StateLimits::default())
    }

    pub fn new_state_with(&self, limits: &StateLimits) -> RuleState {
        let states = self
            .rules
            .iter()
            .map(|r| r.query.is_stateful().then(|| r.query.new_state(limits)))
            .collect();
        RuleState {
            states,
            inert: vec![false; self.rules.len()],
            clock: Clock::new(limits.late_tolerance_ns),
            seen: vec![0; self.rules.len()],
            epoch: 0,
            late: 0,
        }
    }

    /// Calls `on_match` for every single-event rule (without pipes) whose query matches `doc`:
    /// first the rules of each category the document has (in the order categories were first
    /// seen at load), then the `any` rules. Stateful rules are not run (see
    /// [`RuleSet::evaluate_with_state`]). Does not allocate.
    pub fn evaluate<D: Document + ?Sized>(&self, doc: &D, mut on_match: impl FnMut(&Rule)) {
        let categories = doc.values(&self.category_field);
        if !categories.is_missing() {
            for (category, indices) in &self.by_category {
                if categories.any(|v| matches!(v, Scalar::Str(s) if s == &**category)) {
                    self.run(indices, doc, &mut on_match);
                }
            }
        }
        self.run(&self.any, doc, &mut on_match);
    }

    fn run<D: Document + ?Sized>(
        &self,
        indices: &[usize],
        doc: &D,
        on_match: &mut impl FnMut(&Rule),
    ) {
        for &i in indices {
            if let Some(rule) = self.rules.get(i) {
                if rule
                    .query
                    .as_event()
                    .is_some_and(|p| p.matches_condition(doc))
                {
                    on_match(rule);
                }
            }
        }
    }

    /// Every rule, stateful ones included: single-event matches as [`Hit::Event`], sequence and
    /// sample results (and results released by pipes) as [`Hit::Match`]. Results of different
    /// rules come in rule-index order within each group; a sequence waiting for a trailing
    /// missing event comes out on the first event past its deadline, whichever rule that event
    /// is for.
    pub fn evaluate_with_state<D: Document + ?Sized>(
        &self,
        doc: &D,
        state: &mut RuleState,
        mut on_hit: impl FnMut(&Rule, Hit<'_, D>),
    ) {
        self.evaluate(doc, |rule| on_hit(rule, Hit::Event(doc)));
        if self.stateful.is_empty() {
            return;
        }
        let Some(tick) = state.clock.tick(doc.timestamp_ns()) else {
            state.late += 1;
            return;
        };
        state.epoch += 1;
        for &i in &self.delayed {
            if let (Some(rule), Some(Some(st))) = (self.rules.get(i), state.states.get_mut(i)) {
                if st.wants_advance(tick.safe) {
                    st.advance(&rule.query, tick.safe, &mut |m| on_hit(rule, Hit::Match(m)));
                }
            }
        }
        let mut retain = Retain::new(doc);
        let categories = doc.values(&self.category_field);
        if !categories.is_missing() {
            for (category, indices) in &self.stateful_by_category {
                if categories.any(|v| matches!(v, Scalar::Str(s) if s == &**category)) {
                    self.run_stateful(indices, tick, &mut retain, state, &mut on_hit);
                }
            }
        }
        self.run_stateful(&self.stateful_any, tick, &mut retain, state, &mut on_hit);
    }

    fn run_stateful<D: Document + ?Sized>(
        &self,
        indices: &[usize],
        tick: crate::eql::Tick,
        retain: &mut Retain<'_, D>,
        state: &mut RuleState,
        on_hit: &mut impl FnMut(&Rule, Hit<'_, D>),
    ) {
        for &i in indices {
            let (Some(rule), Some(Some(st)), Some(seen)) = (
                self.rules.get(i),
                state.states.get_mut(i),
                state.seen.get_mut(i),
            ) else {
                continue;
            };
            // A rule listed under two of the event's categories runs once.
            if *seen == state.epoch || state.inert.get(i).copied().unwrap_or(false) || st.done() {
                continue;
            }
            *seen = state.epoch;
            st.on_event(&rule.query, tick, retain, &mut |hit| on_hit(rule, hit));
        }
    }

    /// End of input: sequences waiting for a trailing missing event are emitted (nothing can
    /// come to reject them now) and `| tail` results are released.
    pub fn finish(&self, state: &mut RuleState, mut on_match: impl FnMut(&Rule, &Match)) {
        for &i in &self.stateful {
            if let (Some(rule), Some(Some(st))) = (self.rules.get(i), state.states.get_mut(i)) {
                st.flush(&rule.query, &mut |m| on_match(rule, m));
            }
        }
    }
}

/// What stateful rules remember, for one evaluator; made by [`RuleSet::new_state`].
#[derive(Debug)]
pub struct RuleState {
    /// By rule index; `None` for single-event rules.
    states: Vec<Option<QueryState>>,
    /// Rules that can never be fed by this evaluator's source (see [`RuleState::only_categories`]).
    inert: Vec<bool>,
    clock: Clock,
    /// The event epoch each stateful rule last ran in.
    seen: Vec<u64>,
    epoch: u64,
    late: u64,
}

impl RuleState {
    /// Declares that this evaluator's source produces only events of `categories` (the audit
    /// and Endpoint Security sources produce `process` events only). A stateful rule with a
    /// required item of another category can never complete, so it is not run at all — it
    /// would only hold partial matches. Returns how many rules became inert.
    pub fn only_categories(&mut self, rules: &RuleSet, categories: &[&str]) -> usize {
        let mut n = 0;
        for &i in &rules.stateful {
            let Some(rule) = rules.rules.get(i) else {
                continue;
            };
            let fed = rule.query.items().iter().all(|(role, p)| {
                *role != Role::Required || p.category().is_none_or(|c| categories.contains(&c))
            });
            if let Some(slot) = self.inert.get_mut(i) {
                *slot = !fed;
                n += usize::from(!fed);
            }
        }
        n
    }

    /// Events that came later than the tolerance allows, skipped by stateful rules.
    pub fn late_events(&self) -> u64 {
        self.late
    }

    /// Totals over every stateful rule.
    pub fn stats(&self) -> StateStats {
        let mut total = StateStats::default();
        for st in self.states.iter().flatten() {
            total.add(&st.stats());
        }
        total
    }

    /// One rule's counters (`None` for a single-event rule).
    pub fn rule_stats(&self, index: usize) -> Option<StateStats> {
        self.states.get(index)?.as_ref().map(QueryState::stats)
    }

    /// The newest event time seen.
    pub fn watermark(&self) -> Option<i64> {
        self.clock.watermark()
    }
}
