//! Cheap necessary conditions of a compiled query, for rule indexes.
//!
//! Most rules cannot match an event unless some field holds one of a few literals:
//! `process.name in ("sh", "bash")`, `process.command_line : "*/dev/tcp/*"`, `event.action ==
//! "load_module"`. Such a literal is an [`Atom`]. For a condition this module finds lists of
//! atoms such that every event the condition matches holds an atom of each list (the operands
//! of a top-level `and` give one list each), and splits a top-level `or` into alternatives, so
//! an index can skip the rule for events that hold none of them. It is a necessary condition
//! only: the rule still runs on the events it is handed.
//!
//! An index compares atoms ASCII-folded and by string form (a number by its decimal form),
//! which can only hand a rule more events than it matches, never fewer.

use super::compile::{Node, Test};
use super::wildcard::Anchor;
use crate::document::FieldPath;

/// How an atom's literal must appear in one of the field's values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AtomKind {
    /// The value is the literal.
    Exact,
    /// The value starts with the literal.
    Prefix,
    /// The value contains the literal.
    Contains,
}

/// One literal test a matching event may pass; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Atom<'p> {
    pub field: &'p FieldPath,
    pub kind: AtomKind,
    /// As written in the rule (folded when the rule's test folds case).
    pub literal: &'p [u8],
}

/// Most `or` operands split into alternatives.
const MAX_ALTERNATIVES: usize = 16;

/// The alternatives of `node`, each as lists of atoms it implies independently (see
/// [`conjuncts`]); an event the condition matches holds an atom of every list of some
/// alternative. An `or` among the operands of a top-level `and` (or a top-level `or`) splits
/// into one alternative per operand, each keeping the lists of the other `and` operands:
/// `name : "python*" and cmdline : "*fromhex*" or name == "xxd" and args : "-r*"` needs a
/// `python` name with `fromhex`, or `xxd` with `-r`, not any of the four. The first `or` whose
/// operands all imply atoms and some imply two lists is split; otherwise there is one
/// alternative, the lists of [`conjuncts`].
pub(crate) fn alternatives<'n>(
    node: &'n Node,
    cost: &dyn Fn(&str, AtomKind) -> Option<u32>,
) -> Vec<Vec<(u32, Vec<Atom<'n>>)>> {
    let operands: &[Node] = match node {
        Node::And(nodes) => nodes,
        other => std::slice::from_ref(other),
    };
    let split = operands.iter().enumerate().find_map(|(at, n)| {
        let Node::Or(branches) = n else {
            return None;
        };
        if branches.len() > MAX_ALTERNATIVES {
            return None;
        }
        let lists: Vec<_> = branches.iter().map(|b| conjuncts(b, cost)).collect();
        let usable = lists.iter().all(|l| !l.is_empty()) && lists.iter().any(|l| l.len() > 1);
        usable.then_some((at, lists))
    });
    let Some((at, branches)) = split else {
        return vec![conjuncts(node, cost)];
    };
    let others: Vec<_> = operands
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != at)
        .filter_map(|(_, n)| atoms(n, cost))
        .collect();
    branches
        .into_iter()
        .map(|mut lists| {
            lists.extend(others.iter().cloned());
            lists.sort_by_key(|(c, list)| (*c, list.len()));
            lists
        })
        .collect()
}

/// Lists of atoms `node` implies independently, cheapest first: one per operand of a top-level
/// `and` that implies any (an event must then hold an atom of every list), or the one list of
/// any other node. Each list as [`atoms`] prices it.
pub(crate) fn conjuncts<'n>(
    node: &'n Node,
    cost: &dyn Fn(&str, AtomKind) -> Option<u32>,
) -> Vec<(u32, Vec<Atom<'n>>)> {
    let mut lists: Vec<_> = match node {
        Node::And(nodes) => nodes.iter().filter_map(|n| atoms(n, cost)).collect(),
        other => atoms(other, cost).into_iter().collect(),
    };
    lists.sort_by_key(|(c, list)| (*c, list.len()));
    lists
}

/// The cheapest list of atoms `node` implies, by `cost`: an `and` needs any one operand's list
/// (the cheapest is taken), an `or` needs one from every operand (their lists are united); a
/// leaf gives a list when it tests a field against literals. `cost` prices one atom (`None`:
/// not usable); a list costs its dearest atom, and of two equal lists the shorter wins.
/// `None` when no list exists (a negation, a function, a regex, a number comparison).
pub(crate) fn atoms<'n>(
    node: &'n Node,
    cost: &dyn Fn(&str, AtomKind) -> Option<u32>,
) -> Option<(u32, Vec<Atom<'n>>)> {
    match node {
        Node::Field { field, test } => leaf(field, test, cost),
        Node::And(nodes) => nodes
            .iter()
            .filter_map(|n| atoms(n, cost))
            .min_by_key(|(c, list)| (*c, list.len())),
        Node::Or(nodes) => {
            let mut all = Vec::new();
            let mut dearest = 0;
            for n in nodes.iter() {
                let (c, list) = atoms(n, cost)?;
                dearest = dearest.max(c);
                all.extend(list);
            }
            (!all.is_empty()).then_some((dearest, all))
        }
        Node::Const(_)
        | Node::Not(_)
        | Node::Exists(_)
        | Node::Value { .. }
        | Node::ValueExists(_) => None,
    }
}

fn leaf<'n>(
    field: &'n FieldPath,
    test: &'n Test,
    cost: &dyn Fn(&str, AtomKind) -> Option<u32>,
) -> Option<(u32, Vec<Atom<'n>>)> {
    let list: Vec<Atom<'n>> = match test {
        // Numeric and boolean literals also match values of other types; not worth indexing.
        Test::In(set) if set.nums.is_empty() && set.bools == [false; 2] => set
            .strs
            .iter()
            .map(|s| Atom {
                field,
                kind: AtomKind::Exact,
                literal: s.as_bytes(),
            })
            .collect(),
        Test::Wild(w) => w
            .anchors()?
            .iter()
            .map(|a| {
                let (kind, literal) = match a {
                    Anchor::Exact(l) => (AtomKind::Exact, l),
                    Anchor::Prefix(l) => (AtomKind::Prefix, l),
                    Anchor::Contains(l) => (AtomKind::Contains, l),
                };
                Atom {
                    field,
                    kind,
                    literal,
                }
            })
            .collect(),
        _ => return None,
    };
    if list.is_empty() {
        return None;
    }
    let mut dearest = 0;
    for a in &list {
        dearest = dearest.max(cost(field.as_str(), a.kind)?);
    }
    Some((dearest, list))
}
