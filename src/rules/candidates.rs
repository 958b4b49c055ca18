//! Which rules an event can match: an index from literals to rules.
//!
//! Each program of a rule (the query of a single-event rule, each item of a sequence or sample)
//! implies lists of literals, one of each list held by every event it matches
//! ([`Program::atom_alternatives`]): `process.name in ("sh", "bash")`, `process.command_line :
//! "*/dev/tcp/*"`, `event.action == "load_module"`. A [`Group`] keeps, per field, the programs
//! by those literals — exact values in a hash map, prefixes and substrings in byte-stepped
//! automata — so an event is checked only against the rules its own values name, and a
//! sequence only against the items they name. The index is ASCII-folded and compares numbers
//! by their decimal form: it may hand a rule an event it does not match (the rule then says
//! no), never withhold one it does.

use std::collections::HashMap;

use aho_corasick::automaton::{Automaton, StateID};
use aho_corasick::dfa::DFA;
use aho_corasick::{Anchored, MatchKind, StartKind};

use super::Rule;
use crate::document::{Document, FieldPath, Scalar};
use crate::eql::prefilter::{Atom, AtomKind};
use crate::eql::Program;

/// Fields whose literals select few rules, best first: a rule is indexed by the cheapest
/// literals its query implies, and a literal of an earlier field is cheaper.
const SELECTIVE_FIELDS: &[&str] = &[
    "process.name",
    "process.executable",
    "process.parent.name",
    "process.parent.executable",
    "file.name",
    "file.extension",
    "file.path",
    "dll.name",
    "process.args",
    "process.command_line",
    "process.parent.args",
    "process.parent.command_line",
    "process.working_directory",
];

/// Fields that hold the same few values in most events (`event.type: start`): a rule is
/// indexed by them only when nothing better exists, which still keeps it from events with
/// other values (`event.action == "load_module"` against exec events).
const COMMON_FIELDS: &[&str] = &[
    "event.action",
    "event.type",
    "event.category",
    "event.kind",
    "event.outcome",
    "event.dataset",
    "event.module",
    "host.os.type",
    "host.os.family",
    "host.os.platform",
    "data_stream.dataset",
    "agent.type",
];

/// The price of indexing by one literal: lower selects fewer events. Exact values and
/// prefixes of selective fields first, then substrings of them, then literals of any other
/// field, then the common fields.
fn cost(field: &str, kind: AtomKind) -> Option<u32> {
    let rank = |list: &[&str]| list.iter().position(|f| *f == field).map(|i| i as u32);
    let substring = kind == AtomKind::Contains;
    Some(match (rank(SELECTIVE_FIELDS), rank(COMMON_FIELDS)) {
        (Some(i), _) if substring => 50 + i,
        (Some(i), _) => i,
        (None, Some(i)) => 300 + i,
        (None, None) if substring => 150,
        (None, None) => 100,
    })
}

/// Longest exact value or prefix an index keeps; longer literals are cut to a prefix.
const INDEX_KEY_MAX: usize = 128;
/// Candidates are bitsets on the stack: up to this many words (64 entries each) per group; a
/// bigger group tries all its rules in order (correct, just slower).
const BITSET_WORDS: usize = 32;
/// How many literal lists of one rule the index checks: an event is a candidate for the rule
/// only when it holds a literal of each (`process.name in (...) and process.args like
/// ("/sys/kernel/debug/*")` needs both a name and an argument).
const SLOTS: usize = 3;
/// A list beyond the first is checked only when it is cheaper than this: the common fields
/// hold the wanted value in most events and would only cost lookups.
const SECOND_LIST_MAX_COST: u32 = 300;

/// Rules of one category (or the `any` rules), single-event or stateful. The index works on
/// entries, one per program a rule's events go through (the query of a single-event rule,
/// each item of a sequence or sample), so it also tells a stateful rule which of its items
/// an event may match.
#[derive(Debug, Default)]
pub(super) struct Group {
    /// Every rule, in load order.
    pub(super) rules: Vec<u32>,
    /// Per entry (the position the index names), its rule and item; a rule's entries are
    /// consecutive, in item order.
    entries: Vec<Entry>,
    /// The entries no index covers (their items are tried on every event).
    always_bits: Vec<u64>,
    /// Per slot, the entries with no list there (they need no hit in it).
    free_bits: [Vec<u64>; SLOTS],
    indexes: Vec<FieldIndex>,
}

/// One program of a rule (or one alternative of it).
#[derive(Clone, Copy, Debug)]
struct Entry {
    rule: u32,
    /// Its position in [`crate::eql::Compiled::items`].
    item: u8,
}

/// Every item of a rule may match (bit `i`: item `i`).
pub(super) const ALL_ITEMS: u64 = !0;

/// Rules by the literals one field's values must hold (keys ASCII-lowercased). A posting is
/// a rule's position in its group and the slot of the list the literal came from.
#[derive(Debug)]
struct FieldIndex {
    field: FieldPath,
    /// Bit `n` set when some exact key is `n` bytes long (the last bit: longer ones), so
    /// most values skip the hash lookup.
    exact_lens: u128,
    exact: HashMap<Box<[u8]>, Box<[Posting]>, BuildFx>,
    /// Prefixes: an anchored automaton, which stops at the first byte no prefix continues.
    prefixes: Option<Literals>,
    /// Substrings: an unanchored automaton over the whole value.
    contains: Option<Literals>,
}

/// A rule's position in its group and the slot of one of its literal lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Posting {
    pos: u32,
    slot: u8,
}

/// Literals matched in a value by a DFA stepped byte by byte (a value is often a few bytes,
/// where a search call's setup would cost more than the scan), with the rules of each.
#[derive(Debug)]
struct Literals {
    dfa: DFA,
    start: StateID,
    anchored: Anchored,
    postings: Vec<Box<[Posting]>>,
}

impl Literals {
    fn new(map: Postings, anchored: bool) -> Result<Literals, String> {
        let mut literals: Vec<Box<[u8]>> = Vec::with_capacity(map.len());
        let mut postings = Vec::with_capacity(map.len());
        for (k, v) in map {
            literals.push(k);
            postings.push(dedup(v));
        }
        let (kind, anchored) = if anchored {
            (StartKind::Anchored, Anchored::Yes)
        } else {
            (StartKind::Unanchored, Anchored::No)
        };
        // Standard semantics: every state lists every pattern ending there.
        let dfa = DFA::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .start_kind(kind)
            .build(&literals)
            .map_err(|e| e.to_string())?;
        let start = dfa.start_state(anchored).map_err(|e| e.to_string())?;
        Ok(Literals {
            dfa,
            start,
            anchored,
            postings,
        })
    }

    /// Adds the rules of every literal found in `value` (at its start, when anchored).
    #[inline]
    fn scan(&self, value: &[u8], hits: &mut Hits) {
        let mut sid = self.start;
        for &b in value {
            sid = self.dfa.next_state(self.anchored, sid, b);
            if !self.dfa.is_special(sid) {
                continue;
            }
            if self.dfa.is_dead(sid) {
                return;
            }
            if self.dfa.is_match(sid) {
                for k in 0..self.dfa.match_len(sid) {
                    let pid = self.dfa.match_pattern(sid, k);
                    if let Some(list) = self.postings.get(pid.as_usize()) {
                        hits.add(list);
                    }
                }
            }
        }
    }
}

type Postings = HashMap<Box<[u8]>, Vec<Posting>, BuildFx>;

/// What one field's index is built from.
#[derive(Default)]
struct FieldPostings {
    exact: Postings,
    prefixes: Postings,
    contains: Postings,
}

/// The candidates of one event: per slot, the rules with a hit (or no list) there.
struct Hits {
    bits: [[u64; BITSET_WORDS]; SLOTS],
    /// Scratch for a lowercased value.
    key: [u8; INDEX_KEY_MAX],
    /// While one value is looked up for the cache, every posting it adds.
    record: Option<Vec<Posting>>,
}

impl Hits {
    #[inline]
    fn add(&mut self, list: &[Posting]) {
        if let Some(record) = &mut self.record {
            record.extend_from_slice(list);
        }
        for p in list {
            if let Some(w) = self
                .bits
                .get_mut(usize::from(p.slot))
                .and_then(|b| b.get_mut(p.pos as usize / 64))
            {
                *w |= 1 << (p.pos % 64);
            }
        }
    }
}

/// Candidates of values seen lately, per group and field, for one evaluator (kept in its
/// `RuleState`). Exec streams repeat a few executables, parents and arguments, and what the
/// index finds for a value depends on its bytes alone, so a repeated value costs a hash and a
/// comparison instead of a hash lookup and two automaton walks. Each field has a small table
/// indexed by the value's hash, where a new value replaces the old: crafted values that
/// collide only cost the walks they would have cost anyway.
#[derive(Debug, Default)]
pub struct HitCache {
    /// By group (the categories' in order, then `any`), then by field index.
    groups: Vec<Vec<FieldCache>>,
}

/// Slots per field.
const CACHE_SLOTS: usize = 64;
/// Longer values (command lines, mostly unique) are not cached.
const CACHE_VALUE_MAX: usize = 96;

#[derive(Debug, Default)]
pub(super) struct FieldCache {
    slots: Vec<CacheSlot>,
}

#[derive(Debug, Default)]
struct CacheSlot {
    filled: bool,
    hash: u64,
    value: Vec<u8>,
    postings: Vec<Posting>,
}

impl HitCache {
    /// The caches of group `at` with `fields` indexes.
    pub(super) fn group(&mut self, at: usize, fields: usize) -> &mut [FieldCache] {
        if self.groups.len() <= at {
            self.groups.resize_with(at + 1, Vec::new);
        }
        let group = &mut self.groups[at];
        if group.len() < fields {
            group.resize_with(fields, FieldCache::default);
        }
        group
    }
}

impl Group {
    /// Indexes `members`; `programs` gives the queries a rule's events go through (the one
    /// of a single-event rule, every item of a sequence or sample). An entry whose program
    /// implies literals is a candidate for an event that holds a literal of each of up to
    /// [`SLOTS`] of its lists; the others are candidates for every event.
    pub(super) fn new<'r>(
        rules: &'r [Rule],
        members: Vec<usize>,
        programs: impl Fn(&'r Rule) -> Vec<&'r Program>,
    ) -> Group {
        let mut group = Group {
            rules: members.iter().map(|&i| i as u32).collect(),
            ..Group::default()
        };
        let mut lists = Vec::new();
        for &i in &members {
            let Some(rule) = rules.get(i) else {
                continue;
            };
            for (item, p) in programs(rule).into_iter().enumerate() {
                for alternative in p.atom_alternatives(&cost) {
                    group.entries.push(Entry {
                        rule: i as u32,
                        item: item.min(63) as u8,
                    });
                    lists.push(slotted(alternative));
                }
            }
        }
        drop_refinements_that_do_not_pay(&mut lists);
        let words = group.entries.len().div_ceil(64);
        if words > BITSET_WORDS {
            log::warn!(
                "{} rules with {} indexed items and alternatives in one category: more than the \
                 rule index holds ({}), so each of its events is tried against all of them",
                group.rules.len(),
                group.entries.len(),
                BITSET_WORDS * 64
            );
        }
        group.always_bits = vec![0; words];
        group.free_bits = std::array::from_fn(|_| vec![0; words]);
        let mut by_field: Vec<(FieldPath, FieldPostings)> = Vec::new();
        for (pos, lists) in lists.into_iter().enumerate() {
            let bit = 1u64 << (pos % 64);
            // Items past the 63rd share bit 63 of the item mask; not worth indexing.
            if lists.is_empty() || group.entries[pos].item == 63 {
                group.always_bits[pos / 64] |= bit;
                continue;
            }
            for (slot, free) in group.free_bits.iter_mut().enumerate() {
                if !lists.iter().any(|(s, _)| *s == slot) {
                    free[pos / 64] |= bit;
                }
            }
            for (slot, atom) in lists {
                let at = match by_field.iter().position(|(f, _)| f == atom.field) {
                    Some(p) => p,
                    None => {
                        by_field.push((atom.field.clone(), FieldPostings::default()));
                        by_field.len() - 1
                    }
                };
                by_field[at].1.add(&atom, pos, slot);
            }
        }
        group.indexes = by_field
            .into_iter()
            .map(|(field, p)| FieldIndex::new(field, p))
            .collect();
        group
    }

    /// The rules with an item no literal covers (tried on every event), once per item.
    pub(super) fn unindexed_rules(&self) -> impl Iterator<Item = u32> + '_ {
        self.entries
            .iter()
            .enumerate()
            .filter(|(pos, _)| self.always_bits[pos / 64] & (1 << (pos % 64)) != 0)
            .map(|(_, e)| e.rule)
    }

    /// Calls `try_rule` with every rule `doc` may match, in load order, each once, with the
    /// items it may match (bit `i`: item `i`; bit 63 stands for every item from the 63rd on).
    pub(super) fn visit<D: Document + ?Sized>(
        &self,
        doc: &D,
        cache: Option<&mut HitCache>,
        at: usize,
        mut try_rule: impl FnMut(u32, u64),
    ) {
        let words = self.always_bits.len();
        if words > BITSET_WORDS {
            self.rules.iter().for_each(|&i| try_rule(i, ALL_ITEMS));
            return;
        }
        let mut hits = Hits {
            bits: [[0u64; BITSET_WORDS]; SLOTS],
            key: [0; INDEX_KEY_MAX],
            record: None,
        };
        for (bits, free) in hits.bits.iter_mut().zip(&self.free_bits) {
            bits[..words].copy_from_slice(free);
        }
        let mut fields = cache.map(|c| c.group(at, self.indexes.len()));
        for (j, index) in self.indexes.iter().enumerate() {
            let field_cache = fields.as_deref_mut().and_then(|f| f.get_mut(j));
            if !index.add_candidates(doc, &mut hits, field_cache) {
                self.rules.iter().for_each(|&i| try_rule(i, ALL_ITEMS));
                return;
            }
        }
        // Entries of one rule are consecutive: gather their items, then try the rule once.
        let mut current: Option<(u32, u64)> = None;
        for w in 0..words {
            let mut x = self.always_bits[w];
            let mut need = !0u64;
            for bits in &hits.bits {
                need &= bits[w];
            }
            x |= need;
            while x != 0 {
                let pos = w * 64 + x.trailing_zeros() as usize;
                x &= x - 1;
                let Some(e) = self.entries.get(pos) else {
                    continue;
                };
                let item = 1u64 << e.item;
                match &mut current {
                    Some((rule, items)) if *rule == e.rule => *items |= item,
                    _ => {
                        if let Some((rule, items)) = current {
                            try_rule(rule, items);
                        }
                        current = Some((e.rule, item));
                    }
                }
            }
        }
        if let Some((rule, items)) = current {
            try_rule(rule, items);
        }
    }
}

/// The literals of one alternative of a program (its lists, cheapest first), each with its
/// slot: the first list always, and up to [`SLOTS`]` - 1` more below
/// [`SECOND_LIST_MAX_COST`]. Empty when the alternative implies no literal.
fn slotted(lists: Vec<(u32, Vec<Atom<'_>>)>) -> Vec<(usize, Atom<'_>)> {
    let mut out = Vec::new();
    for (slot, (price, list)) in lists.into_iter().enumerate() {
        if slot >= SLOTS || (slot > 0 && price >= SECOND_LIST_MAX_COST) {
            break;
        }
        out.extend(list.into_iter().map(|a| (slot, a)));
    }
    out
}

/// Drops the refining lists (slot 1 and on) that cost more than they save. A refining list
/// costs a lookup of its fields on every event. Exact values are cheap to look up (most values
/// are not even of a key's length); walking values for prefixes and substrings pays when the
/// group walks those fields anyway, not for one rule's sake.
fn drop_refinements_that_do_not_pay(lists: &mut [Vec<(usize, Atom<'_>)>]) {
    let mut walked: Vec<&FieldPath> = Vec::new();
    for (_, atom) in lists.iter().flatten().filter(|(slot, _)| *slot == 0) {
        if !walked.contains(&atom.field) {
            walked.push(atom.field);
        }
    }
    for entry in lists.iter_mut() {
        let dropped: Vec<usize> = entry
            .iter()
            .filter(|(slot, a)| {
                *slot > 0 && a.kind != AtomKind::Exact && !walked.contains(&a.field)
            })
            .map(|(slot, _)| *slot)
            .collect();
        entry.retain(|(slot, _)| !dropped.contains(slot));
    }
}

impl FieldPostings {
    /// Files entry `pos` under `atom`'s literal (lowercased; an exact value or prefix longer
    /// than [`INDEX_KEY_MAX`] is cut to a prefix of that length).
    fn add(&mut self, atom: &Atom<'_>, pos: usize, slot: usize) {
        let mut kind = atom.kind;
        let mut key = atom.literal.to_ascii_lowercase();
        if kind != AtomKind::Contains && key.len() > INDEX_KEY_MAX {
            key.truncate(INDEX_KEY_MAX);
            kind = AtomKind::Prefix;
        }
        let map = match kind {
            AtomKind::Exact => &mut self.exact,
            AtomKind::Prefix => &mut self.prefixes,
            AtomKind::Contains => &mut self.contains,
        };
        map.entry(key.into_boxed_slice())
            .or_default()
            .push(Posting {
                pos: pos as u32,
                slot: slot as u8,
            });
    }
}

impl FieldIndex {
    fn new(field: FieldPath, p: FieldPostings) -> FieldIndex {
        // Literals from rules are far below the automaton's size limits; if building failed
        // anyway, the rules would lose candidates, so say it loudly.
        let automaton = |map: Postings, anchored: bool| -> Option<Literals> {
            if map.is_empty() {
                return None;
            }
            Literals::new(map, anchored)
                .map_err(|e| log::error!("rule index for {}: {e}", field.as_str()))
                .ok()
        };
        let prefixes = automaton(p.prefixes, true);
        let contains = automaton(p.contains, false);
        let exact_lens = p.exact.keys().fold(0u128, |m, k| m | 1 << k.len().min(127));
        FieldIndex {
            field,
            exact_lens,
            exact: p.exact.into_iter().map(|(k, v)| (k, dedup(v))).collect(),
            prefixes,
            contains,
        }
    }

    /// Sets the bits of the rules this field's values name, through `cache` when there is
    /// one. False when a value cannot be looked up (a boolean or a float, which a literal may
    /// match by its string form): the caller then tries every rule.
    fn add_candidates<D: Document + ?Sized>(
        &self,
        doc: &D,
        hits: &mut Hits,
        mut cache: Option<&mut FieldCache>,
    ) -> bool {
        let mut lookable = true;
        doc.values(&self.field).any(|v| {
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
                Scalar::Bool(_) | Scalar::Float(_) => {
                    lookable = false;
                    return true;
                }
            };
            // Exact values alone are one hash lookup: as cheap as the cache.
            let walks = self.prefixes.is_some() || self.contains.is_some();
            match cache.as_deref_mut() {
                Some(cache) if walks && bytes.len() <= CACHE_VALUE_MAX => {
                    self.cached(bytes, hits, cache)
                }
                _ => self.look_up(bytes, hits),
            }
            false
        });
        lookable
    }

    /// [`FieldIndex::look_up`], remembered per value.
    fn cached(&self, bytes: &[u8], hits: &mut Hits, cache: &mut FieldCache) {
        if cache.slots.is_empty() {
            cache.slots.resize_with(CACHE_SLOTS, CacheSlot::default);
        }
        let mut h = Fx(0);
        std::hash::Hasher::write(&mut h, bytes);
        let hash = std::hash::Hasher::finish(&h);
        let Some(slot) = cache.slots.get_mut(hash as usize % CACHE_SLOTS) else {
            return self.look_up(bytes, hits);
        };
        if slot.filled && slot.hash == hash && slot.value == bytes {
            hits.add(&slot.postings);
            return;
        }
        let mut record = std::mem::take(&mut slot.postings);
        record.clear();
        hits.record = Some(record);
        self.look_up(bytes, hits);
        slot.postings = hits.record.take().unwrap_or_default();
        slot.value.clear();
        slot.value.extend_from_slice(bytes);
        slot.hash = hash;
        slot.filled = true;
    }

    /// Sets the bits of the rules one value names.
    fn look_up(&self, bytes: &[u8], hits: &mut Hits) {
        if self.exact_lens & (1 << bytes.len().min(127)) != 0 && bytes.len() <= INDEX_KEY_MAX {
            let k = &mut hits.key[..bytes.len()];
            // Lowercased while copied: a short value is not worth a call to memcpy.
            for (to, from) in k.iter_mut().zip(bytes) {
                *to = from.to_ascii_lowercase();
            }
            if let Some(list) = self.exact.get(&*k) {
                hits.add(list);
            }
        }
        if let Some(p) = &self.prefixes {
            p.scan(bytes, hits);
        }
        if let Some(c) = &self.contains {
            c.scan(bytes, hits);
        }
    }
}

fn dedup(mut v: Vec<Posting>) -> Box<[Posting]> {
    v.sort_unstable();
    v.dedup();
    v.into_boxed_slice()
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
