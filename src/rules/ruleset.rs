//! Compiled rules, indexed by the event category their query selects.
//!
//! A `process where ...` rule can only match a document whose `event.category` holds
//! `"process"`, so each event is checked against its categories' rules and the `any where` rules,
//! and most rules are never looked at. The set is immutable once built and can be shared between
//! threads; evaluating never allocates.

use super::{Outcome, Report, Rule};
use crate::document::{Document, FieldPath, Scalar};

#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// Category → indices into `rules`, in load order. A handful of categories at most, so a
    /// list beats a hash map and its scan visits each category once however many values the
    /// event's `event.category` array repeats.
    by_category: Vec<(Box<str>, Vec<usize>)>,
    /// `any where ...` rules, tried on every event.
    any: Vec<usize>,
    category_field: FieldPath,
}

impl RuleSet {
    /// Takes ownership of compiled rules and indexes them.
    pub fn new(rules: Vec<Rule>) -> RuleSet {
        let mut set = RuleSet {
            rules,
            by_category: Vec::new(),
            any: Vec::new(),
            category_field: FieldPath::new("event.category"),
        };
        for (i, rule) in set.rules.iter_mut().enumerate() {
            rule.index = i;
            match rule.program.category() {
                None => set.any.push(i),
                Some(cat) => match set.by_category.iter_mut().find(|(c, _)| &**c == cat) {
                    Some((_, list)) => list.push(i),
                    None => set.by_category.push((cat.into(), vec![i])),
                },
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

    /// Calls `on_match` for every rule whose query matches `doc`: first the rules of each
    /// category the document has (in the order categories were first seen at load), then the
    /// `any` rules. Does not allocate.
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
                if rule.program.matches_condition(doc) {
                    on_match(rule);
                }
            }
        }
    }
}
