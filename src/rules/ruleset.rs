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

use std::collections::HashMap;

use super::{Outcome, Report, Rule};
use crate::document::{Document, FieldPath, Scalar};
use crate::eql::compile::Literals;
use crate::eql::query::Role;
use crate::eql::{Clock, Hit, Match, Program, QueryState, Retain, StateLimits, StateStats};

#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Category → its single-event rules. A handful of categories at most, so a list beats a
    /// hash map and its scan visits each category once however many values the event's
    /// `event.category` array repeats.
    by_category: Vec<(Box<str>, Group)>,
    /// `any where ...` rules, tried on every event.
    any: Group,
    /// The same for stateful rules; a rule appears under each category its items select, and
    /// is indexed only when every item (missing and `until` ones included) pins a field.
    stateful_by_category: Vec<(Box<str>, Group)>,
    stateful_any: Group,
    /// Every stateful rule.
    stateful: Vec<usize>,
    /// Stateful rules whose results can wait for time to pass (a trailing missing event).
    delayed: Vec<usize>,
    category_field: FieldPath,
}

/// The program of a single-event rule.
fn single(r: &Rule) -> Vec<&Program> {
    r.query.as_event().into_iter().collect()
}

/// Every item of a stateful rule.
fn items(r: &Rule) -> Vec<&Program> {
    r.query.items().into_iter().map(|(_, p)| p).collect()
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
        let mut by_category: Vec<(Box<str>, Vec<usize>)> = Vec::new();
        let mut any = Vec::new();
        let mut stateful_by_category: Vec<(Box<str>, Vec<usize>)> = Vec::new();
        let mut stateful_any = Vec::new();
        let mut set = RuleSet {
            rules,
            by_category: Vec::new(),
            any: Group::default(),
            stateful_by_category: Vec::new(),
            stateful_any: Group::default(),
            stateful: Vec::new(),
            delayed: Vec::new(),
            category_field: FieldPath::new("event.category"),
        };
        for (i, rule) in set.rules.iter_mut().enumerate() {
            rule.index = i;
            let q = &rule.query;
            if !q.is_stateful() {
                match q.as_event().and_then(|p| p.category()) {
                    None => any.push(i),
                    Some(cat) => add(&mut by_category, cat, i),
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
                None => stateful_any.push(i),
                Some(cats) => {
                    for cat in cats {
                        add(&mut stateful_by_category, cat, i);
                    }
                }
            }
        }
        set.any = Group::new(&set.rules, any, single);
        set.by_category = by_category
            .into_iter()
            .map(|(cat, list)| (cat, Group::new(&set.rules, list, single)))
            .collect();
        set.stateful_any = Group::new(&set.rules, stateful_any, items);
        set.stateful_by_category = stateful_by_category
            .into_iter()
            .map(|(cat, list)| (cat, Group::new(&set.rules, list, items)))
            .collect();
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
    /// seen at load; within a category, in load order), then the `any` rules. Stateful rules
    /// are not run (see [`RuleSet::evaluate_with_state`]). Does not allocate.
    ///
    /// Most rules pin a field such as `process.name` to a list of literals; those are indexed
    /// by it ([`INDEX_FIELDS`]), so an event is checked only against the rules its own values
    /// name and the rules no index covers.
    pub fn evaluate<D: Document + ?Sized>(&self, doc: &D, mut on_match: impl FnMut(&Rule)) {
        let categories = doc.values(&self.category_field);
        if !categories.is_missing() {
            for (category, group) in &self.by_category {
                if categories.any(|v| matches!(v, Scalar::Str(s) if s == &**category)) {
                    group.run(&self.rules, doc, &mut on_match);
                }
            }
        }
        self.any.run(&self.rules, doc, &mut on_match);
    }

    /// How many (single-event, stateful) rules are reached only through a literal index; the
    /// rest are tried on every event of their categories.
    pub fn indexed_count(&self) -> (usize, usize) {
        let count = |groups: &mut dyn Iterator<Item = &Group>| -> usize {
            groups.map(|g| g.all.len() - g.always.len()).sum()
        };
        let single = count(
            &mut self
                .by_category
                .iter()
                .map(|(_, g)| g)
                .chain(std::iter::once(&self.any)),
        );
        // A stateful rule is in several category groups; count it once.
        let mut seen: Vec<u32> = Vec::new();
        for g in self
            .stateful_by_category
            .iter()
            .map(|(_, g)| g)
            .chain(std::iter::once(&self.stateful_any))
        {
            for &i in &g.all {
                if !g.always.contains(&i) && !seen.contains(&i) {
                    seen.push(i);
                }
            }
        }
        (single, seen.len())
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
            for (category, group) in &self.stateful_by_category {
                if categories.any(|v| matches!(v, Scalar::Str(s) if s == &**category)) {
                    group.visit(doc, |i| {
                        self.run_stateful(i as usize, tick, &mut retain, state, &mut on_hit)
                    });
                }
            }
        }
        self.stateful_any.visit(doc, |i| {
            self.run_stateful(i as usize, tick, &mut retain, state, &mut on_hit)
        });
    }

    fn run_stateful<D: Document + ?Sized>(
        &self,
        i: usize,
        tick: crate::eql::Tick,
        retain: &mut Retain<'_, D>,
        state: &mut RuleState,
        on_hit: &mut impl FnMut(&Rule, Hit<'_, D>),
    ) {
        let (Some(rule), Some(Some(st)), Some(seen)) = (
            self.rules.get(i),
            state.states.get_mut(i),
            state.seen.get_mut(i),
        ) else {
            return;
        };
        // A rule listed under two of the event's categories runs once.
        if *seen == state.epoch || state.inert.get(i).copied().unwrap_or(false) || st.done() {
            return;
        }
        *seen = state.epoch;
        st.on_event(&rule.query, tick, retain, &mut |hit| on_hit(rule, hit));
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

/// Fields a rule may be indexed by, most telling first. A rule is indexed by the first of
/// these whose values its query pins to a list of literals (`process.name in ("sh", "bash")`,
/// `process.name : "curl"`); fields that hold the same value for most events (`host.os.type`,
/// `event.type`, `event.action`) would select nothing and are not used.
pub const INDEX_FIELDS: &[&str] = &[
    "process.name",
    "process.executable",
    "process.parent.name",
    "process.parent.executable",
    "file.name",
    "file.extension",
    "file.path",
    "dll.name",
    "process.args",
];

/// Longest literal an index keeps; a rule pinned to a longer one is not indexed by that field.
const INDEX_KEY_MAX: usize = 128;
/// Candidates are a bitset on the stack: up to this many words (64 rules each) per group; a
/// bigger group tries all its rules in order (correct, just slower).
const BITSET_WORDS: usize = 32;

/// The single-event rules of one category (or the `any` rules).
#[derive(Debug, Default)]
struct Group {
    /// Every rule, in load order; an index names rules by their position here.
    all: Vec<u32>,
    /// The rules no index covers, in load order.
    always: Vec<u32>,
    /// The same, as a bitset over positions in `all`.
    always_bits: Vec<u64>,
    indexes: Vec<LiteralIndex>,
}

/// Rules by a literal value their query requires of `field`: equal to a key of `exact`, or
/// starting with a key of `prefixes` (keys ASCII-lowercased, values folded to match).
#[derive(Debug)]
struct LiteralIndex {
    field: FieldPath,
    exact_max: usize,
    exact: HashMap<Box<[u8]>, Box<[u32]>, BuildFx>,
    /// The distinct prefix lengths, each probed once per value.
    prefix_lens: Vec<usize>,
    prefixes: HashMap<Box<[u8]>, Box<[u32]>, BuildFx>,
}

type Postings = HashMap<Box<[u8]>, Vec<u32>, BuildFx>;

impl Group {
    /// Indexes `members`; `programs` gives the queries a rule's events go through (the one
    /// of a single-event rule, every item of a sequence or sample). A rule is indexed when
    /// each of its programs pins an index field; it is then a candidate for an event whose
    /// values any of them names.
    fn new<'r>(
        rules: &'r [Rule],
        members: Vec<usize>,
        programs: impl Fn(&'r Rule) -> Vec<&'r Program>,
    ) -> Group {
        let mut group = Group {
            all: members.iter().map(|&i| i as u32).collect(),
            ..Group::default()
        };
        let mut by_field: Vec<(FieldPath, Postings, Postings)> = Vec::new();
        group.always_bits = vec![0; members.len().div_ceil(64)];
        for (pos, &i) in members.iter().enumerate() {
            let Some(rule) = rules.get(i) else {
                continue;
            };
            let chosen: Option<Vec<(&str, Literals)>> = programs(rule)
                .into_iter()
                .map(|p| {
                    INDEX_FIELDS.iter().find_map(|field| {
                        let lits = p.literals(field)?;
                        let all = || lits.exact.iter().chain(&lits.prefixes);
                        let usable = all().next().is_some()
                            && all().all(|v| v.len() <= INDEX_KEY_MAX)
                            && lits.prefixes.iter().all(|p| !p.is_empty());
                        usable.then_some((*field, lits))
                    })
                })
                .collect();
            let Some(chosen) = chosen.filter(|c| !c.is_empty()) else {
                group.always.push(i as u32);
                group.always_bits[pos / 64] |= 1 << (pos % 64);
                continue;
            };
            for (field, lits) in chosen {
                let slot = match by_field.iter().position(|(f, ..)| f.as_str() == field) {
                    Some(p) => p,
                    None => {
                        by_field.push((
                            FieldPath::new(field),
                            Postings::default(),
                            Postings::default(),
                        ));
                        by_field.len() - 1
                    }
                };
                let key = |v: &String| v.to_ascii_lowercase().into_bytes().into_boxed_slice();
                for v in &lits.exact {
                    by_field[slot].1.entry(key(v)).or_default().push(pos as u32);
                }
                for v in &lits.prefixes {
                    by_field[slot].2.entry(key(v)).or_default().push(pos as u32);
                }
            }
        }
        let freeze = |map: Postings| -> HashMap<Box<[u8]>, Box<[u32]>, BuildFx> {
            map.into_iter()
                .map(|(k, mut v)| {
                    v.dedup();
                    (k, v.into_boxed_slice())
                })
                .collect()
        };
        group.indexes = by_field
            .into_iter()
            .map(|(field, exact, prefixes)| {
                let mut prefix_lens: Vec<usize> = prefixes.keys().map(|k| k.len()).collect();
                prefix_lens.sort_unstable();
                prefix_lens.dedup();
                LiteralIndex {
                    field,
                    exact_max: exact.keys().map(|k| k.len()).max().unwrap_or(0),
                    exact: freeze(exact),
                    prefix_lens,
                    prefixes: freeze(prefixes),
                }
            })
            .collect();
        group
    }

    /// Runs the single-event rules `doc` may match, in load order.
    fn run<D: Document + ?Sized>(&self, rules: &[Rule], doc: &D, on_match: &mut impl FnMut(&Rule)) {
        self.visit(doc, |i| {
            if let Some(rule) = rules.get(i as usize) {
                if rule
                    .query
                    .as_event()
                    .is_some_and(|p| p.matches_condition(doc))
                {
                    on_match(rule);
                }
            }
        });
    }

    /// Calls `try_rule` with every rule `doc` may match, in load order, each once.
    fn visit<D: Document + ?Sized>(&self, doc: &D, mut try_rule: impl FnMut(u32)) {
        let words = self.always_bits.len();
        if self.indexes.is_empty() || words > BITSET_WORDS {
            let list = if self.indexes.is_empty() {
                &self.always
            } else {
                &self.all
            };
            list.iter().for_each(|&i| try_rule(i));
            return;
        }
        // Candidates as a bitset over the group's positions: the rules no index covers, then
        // every rule an index names for one of the event's values.
        let mut bits = [0u64; BITSET_WORDS];
        bits[..words].copy_from_slice(&self.always_bits);
        let mut everything = false;
        let mut key = [0u8; INDEX_KEY_MAX];
        for index in &self.indexes {
            doc.values(&index.field).any(|v| {
                let mut number = [0u8; 24];
                let bytes: &[u8] = match v {
                    Scalar::Str(s) => s.as_bytes(),
                    Scalar::Int(i) => {
                        let mut w = &mut number[..];
                        let _ = std::io::Write::write_fmt(&mut w, format_args!("{i}"));
                        let len = 24 - w.len();
                        &number[..len]
                    }
                    Scalar::Null => return false,
                    // A literal can match a boolean or a float by its string form
                    // ("true", "1.5"); rare enough to try every rule instead.
                    Scalar::Bool(_) | Scalar::Float(_) => {
                        everything = true;
                        return true;
                    }
                };
                let take = bytes.len().min(INDEX_KEY_MAX);
                let k = &mut key[..take];
                k.copy_from_slice(&bytes[..take]);
                k.make_ascii_lowercase();
                let mut add = |list: &[u32]| {
                    for &pos in list {
                        if let Some(w) = bits.get_mut(pos as usize / 64) {
                            *w |= 1 << (pos % 64);
                        }
                    }
                };
                if bytes.len() <= index.exact_max {
                    if let Some(list) = index.exact.get(&*k) {
                        add(list);
                    }
                }
                for &len in &index.prefix_lens {
                    if let Some(list) = k.get(..len).and_then(|p| index.prefixes.get(p)) {
                        add(list);
                    }
                }
                false
            });
            if everything {
                self.all.iter().for_each(|&i| try_rule(i));
                return;
            }
        }
        for (w, word) in bits[..words].iter().enumerate() {
            let mut x = *word;
            while x != 0 {
                let pos = w * 64 + x.trailing_zeros() as usize;
                x &= x - 1;
                if let Some(&i) = self.all.get(pos) {
                    try_rule(i);
                }
            }
        }
    }
}

/// FxHash: the index's keys come from rules and never grow, so a keyed hash buys nothing and
/// would cost more than the lookups it serves.
#[derive(Clone, Copy, Debug, Default)]
struct BuildFx;

impl std::hash::BuildHasher for BuildFx {
    type Hasher = Fx;
    fn build_hasher(&self) -> Fx {
        Fx(0)
    }
}

struct Fx(u64);

impl std::hash::Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eql::Options;
    use crate::rules::load::load_source;
    use crate::rules::Origin;
    use crate::JsonDocument;
    use serde_json::json;

    fn set(queries: &[&str]) -> RuleSet {
        let rules = queries
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let src = format!(
                    "[rule]\nname = \"r{i}\"\nrule_id = \"r{i}\"\ndescription = \"t\"\n\
                     severity = \"low\"\nrisk_score = 21\ntype = \"eql\"\nquery = '''\n{q}\n'''\n"
                );
                match load_source(Origin::Builtin("t"), &src, &Options::default()).outcome {
                    Outcome::Ok(r) => *r,
                    other => panic!("{q}: {other:?}"),
                }
            })
            .collect();
        RuleSet::new(rules)
    }

    fn doc(v: serde_json::Value) -> JsonDocument {
        JsonDocument::new(v.as_object().cloned().unwrap())
    }

    /// The index must never change a verdict: every rule is also tried by brute force.
    fn same_verdicts(set: &RuleSet, docs: &[JsonDocument]) -> usize {
        let mut hits = 0;
        for d in docs {
            let mut indexed = Vec::new();
            set.evaluate(d, |r| indexed.push(r.index()));
            let brute: Vec<usize> = set
                .rules()
                .iter()
                .filter(|r| r.program().is_some_and(|p| p.matches(d)))
                .map(Rule::index)
                .collect();
            assert_eq!(indexed, brute, "{:?}", d.to_json());
            hits += brute.len();
        }
        hits
    }

    #[test]
    fn the_literal_index_keeps_verdicts_and_load_order() {
        let set = set(&[
            r#"process where process.name == "bash""#,
            r#"process where process.name : ("python*", "PERL*", "php?.?") and process.args == "-c""#,
            r#"process where process.name in~ ("SH", "dash") or process.name like "zsh*""#,
            r#"process where process.parent.name == "nginx" and process.name != "nginx""#,
            r#"process where process.args : "*/dev/tcp/*""#,
            r#"process where process.name : "*sh""#,
            r#"process where process.name == "true""#,
            r#"process where process.name == "7""#,
            r#"any where process.name == "bash""#,
        ]);
        // Rule 4 (args) and rule 5 (suffix) cannot be indexed by the name.
        assert_eq!(set.indexed_count(), (7, 0));
        let docs: Vec<JsonDocument> = [
            json!({"event": {"category": "process"}, "process": {"name": "bash"}}),
            json!({"event": {"category": "process"}, "process": {"name": "BASH"}}),
            json!({"event": {"category": "process"}, "process": {"name": "python3.11", "args": ["-c"]}}),
            json!({"event": {"category": "process"}, "process": {"name": "Perl5", "args": ["x", "-c"]}}),
            json!({"event": {"category": "process"}, "process": {"name": "php8.2", "args": "-c"}}),
            json!({"event": {"category": "process"}, "process": {"name": "sh", "parent": {"name": "nginx"}}}),
            json!({"event": {"category": "process"}, "process": {"name": "Dash"}}),
            json!({"event": {"category": "process"}, "process": {"name": "zsh-5.9"}}),
            json!({"event": {"category": "process"}, "process": {"name": ["bash", "sh", "bash"]}}),
            json!({"event": {"category": "process"}, "process": {"name": true}}),
            json!({"event": {"category": "process"}, "process": {"name": 7}}),
            json!({"event": {"category": "process"}, "process": {"name": 7.0}}),
            json!({"event": {"category": "process"}, "process": {"name": "bash", "args": ["-c", "x >& /dev/tcp/1/2"]}}),
            json!({"event": {"category": ["network", "process"]}, "process": {"name": "p"}}),
            json!({"process": {"name": "bash"}}),
            json!({"event": {"category": "process"}, "process": {"name": "x".repeat(300)}}),
        ]
        .into_iter()
        .map(doc)
        .collect();
        assert!(same_verdicts(&set, &docs) > 10);
    }

    /// (rule index, the result's process names).
    type Results = Vec<(usize, String)>;

    /// Results of the rule set, and of every stateful rule run on every event.
    fn stateful_results(set: &RuleSet, docs: &[JsonDocument]) -> (Results, Results) {
        let name = FieldPath::new("process.name");
        let names = |m: &Match| -> String {
            m.events
                .iter()
                .map(|e| match e.as_ref().and_then(|d| d.values(&name).first()) {
                    Some(Scalar::Str(s)) => s.to_owned(),
                    _ => "-".to_owned(),
                })
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut via_set = Vec::new();
        let mut state = set.new_state();
        for d in docs {
            set.evaluate_with_state(d, &mut state, |rule, hit| {
                if let Hit::Match(m) = hit {
                    via_set.push((rule.index(), names(m)));
                }
            });
        }
        set.finish(&mut state, |rule, m| via_set.push((rule.index(), names(m))));
        let mut brute = Vec::new();
        for rule in set.rules().iter().filter(|r| r.query.is_stateful()) {
            let q = &rule.query;
            let mut st = q.new_state(&StateLimits::default());
            let mut clock = Clock::new(StateLimits::default().late_tolerance_ns);
            for d in docs {
                let Some(tick) = clock.tick(d.timestamp_ns()) else {
                    continue;
                };
                st.advance(q, tick.safe, &mut |m| brute.push((rule.index(), names(m))));
                let mut retain = Retain::new(d);
                st.on_event(q, tick, &mut retain, &mut |hit| {
                    if let Hit::Match(m) = hit {
                        brute.push((rule.index(), names(m)));
                    }
                });
            }
            st.flush(q, &mut |m| brute.push((rule.index(), names(m))));
        }
        via_set.sort();
        brute.sort();
        (via_set, brute)
    }

    #[test]
    fn stateful_rules_are_skipped_only_for_events_no_item_can_match() {
        let set = set(&[
            r#"sequence by host.id with maxspan=10s [process where process.name == "a"] ![process where process.name == "m"] [process where process.name : "b*"]"#,
            r#"sequence with maxspan=10s [process where process.name == "a"] [process where process.name == "c"] until [process where process.name == "stop"]"#,
            r#"sequence [process where true] [process where process.name == "c"]"#,
            r#"sample by host.id [process where process.name == "c"] [process where process.parent.name == "a"]"#,
            r#"sequence with maxspan=5s [process where process.name == "a"] ![process where process.name == "m"]"#,
            r#"process where process.name == "c" | tail 1"#,
        ]);
        // Only `[process where true]` keeps rule 2 out of the index.
        assert_eq!(set.indexed_count(), (0, 5));
        let stream = [
            "a", "x", "b1", "a", "m", "b2", "a", "c", "stop", "a", "stop", "c", "z", "a", "c", "x",
        ];
        let docs: Vec<JsonDocument> = stream
            .iter()
            .enumerate()
            .map(|(i, n)| {
                doc(
                    json!({"@timestamp": 1000 * i as i64, "event": {"category": "process"},
                           "host": {"id": "h"}, "process": {"name": n, "parent": {"name": "a"}}}),
                )
            })
            .collect();
        let (via_set, brute) = stateful_results(&set, &docs);
        assert_eq!(via_set, brute);
        assert!(via_set.len() >= 6, "{via_set:?}");
    }

    #[test]
    fn the_set_is_shared_and_the_state_moves_between_threads() {
        fn sync<T: Send + Sync>() {}
        fn send<T: Send>() {}
        sync::<RuleSet>();
        send::<RuleState>();
    }

    #[test]
    fn many_candidates_keep_load_order() {
        let queries: Vec<String> = (0..200)
            .map(|i| format!(r#"process where process.name == "bash" and process.pid != {i}"#))
            .collect();
        let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
        let set = set(&refs);
        let d =
            doc(json!({"event": {"category": "process"}, "process": {"name": "bash", "pid": 3}}));
        assert_eq!(same_verdicts(&set, &[d]), 199);
    }
}
