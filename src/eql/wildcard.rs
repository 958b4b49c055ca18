//! String matching without regexes: exact-string sets (`==`, `in`, `in~`) and wildcard lists
//! (`:`, `like`, `like~`), built once per rule and run without allocating.
//!
//! Wildcards follow Elasticsearch: `*` is any run of characters (newlines included), `?` is
//! exactly one character (a Unicode scalar, not a byte), the pattern matches the *whole* value,
//! and there is no escape — a backslash is an ordinary character.
//!
//! Case-insensitive matching folds ASCII letters only. That is what Elasticsearch does for
//! `:`/`like~`/`in~` on keyword fields (`AutomatonQueries.toCaseInsensitiveChar`: "for now we
//! only work with ASCII characters"), so `"É"` and `"é"` are different under `:` — and it lets
//! every comparison fold bytes on the fly instead of lower-casing into a new string.
//!
//! A list of patterns is split by shape so each gets its cheapest test: wildcard-free patterns
//! go into one [`StrSet`], `x*` prefixes and `*x*` infixes into Aho-Corasick automata, `*x`
//! suffixes into a tail comparison, and the rest into [`Glob`]s matched segment by segment.

use aho_corasick::{AhoCorasick, Anchored, Input, StartKind};

/// Sets up to this size are scanned; larger ones are hashed.
const LINEAR_MAX: usize = 8;
/// Prefix lists longer than this use an anchored automaton rather than a scan.
const PREFIX_SCAN_MAX: usize = 4;

/// A set of strings, compared byte for byte or with ASCII case folding.
///
/// Small sets are scanned (lengths differ most of the time, so most comparisons stop at
/// once). Larger ones use an open-addressing table whose hash folds case as it reads, so a
/// case-insensitive lookup neither copies nor lower-cases the value.
#[derive(Clone, Debug)]
pub struct StrSet {
    insensitive: bool,
    /// ASCII-lowercased when `insensitive`; sorted and deduplicated.
    items: Vec<Box<[u8]>>,
    /// Index + 1 into `items`, 0 for an empty slot; empty for small sets.
    slots: Box<[u32]>,
    max_len: usize,
}

impl StrSet {
    pub fn new<'s>(items: impl IntoIterator<Item = &'s str>, insensitive: bool) -> StrSet {
        let mut v: Vec<Box<[u8]>> = items
            .into_iter()
            .map(|s| {
                let mut b = s.as_bytes().to_vec();
                if insensitive {
                    b.make_ascii_lowercase();
                }
                b.into_boxed_slice()
            })
            .collect();
        v.sort();
        v.dedup();
        let max_len = v.iter().map(|b| b.len()).max().unwrap_or(0);
        let slots = if v.len() > LINEAR_MAX {
            // Load factor at most 1/2 keeps probe runs short.
            let n = (v.len() * 2).next_power_of_two();
            let mut slots = vec![0u32; n].into_boxed_slice();
            for (i, item) in v.iter().enumerate() {
                let mut at = (hash(item, false) as usize) & (n - 1);
                while slots[at] != 0 {
                    at = (at + 1) & (n - 1);
                }
                slots[at] = i as u32 + 1;
            }
            slots
        } else {
            Box::default()
        };
        StrSet {
            insensitive,
            items: v,
            slots,
            max_len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when lookups fold ASCII case.
    pub fn insensitive(&self) -> bool {
        self.insensitive
    }

    /// The members (ASCII-lowercased when insensitive).
    pub fn iter(&self) -> impl Iterator<Item = &str> + '_ {
        // Members were built from `&str`s and only ASCII bytes were folded.
        self.items
            .iter()
            .filter_map(|b| std::str::from_utf8(b).ok())
    }

    #[inline]
    pub fn contains(&self, value: &str) -> bool {
        let v = value.as_bytes();
        if v.len() > self.max_len {
            return false;
        }
        let ci = self.insensitive;
        if self.slots.is_empty() {
            return self.items.iter().any(|i| eq_bytes(v, i, ci));
        }
        let mask = self.slots.len() - 1;
        let mut at = (hash(v, ci) as usize) & mask;
        loop {
            match self.slots[at] {
                0 => return false,
                i => {
                    if eq_bytes(v, &self.items[i as usize - 1], ci) {
                        return true;
                    }
                }
            }
            at = (at + 1) & mask;
        }
    }
}

/// Fx-style multiplicative hash of the (ASCII-folded when `fold`) bytes. Set keys come from
/// rules, so a keyed hash buys nothing, and SipHash would cost more than the comparison.
#[inline]
fn hash(bytes: &[u8], fold: bool) -> u64 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        if fold {
            w.make_ascii_lowercase();
        }
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        if fold {
            w.make_ascii_lowercase();
        }
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    h
}

/// Why a pattern list could not be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError(pub String);

/// One list of wildcard patterns, matched as "any pattern matches the whole value".
#[derive(Clone, Debug)]
pub struct WildcardSet {
    insensitive: bool,
    /// Only wildcard-free patterns: the set lookup decides.
    exact_only: bool,
    /// Some pattern is only stars: every string matches.
    any: bool,
    exact: StrSet,
    /// `x*`, lowercased when insensitive; scanned when few.
    prefixes: Vec<Box<[u8]>>,
    prefix_ac: Option<AhoCorasick>,
    /// `*x`.
    suffixes: Vec<Box<[u8]>>,
    /// `*x*`.
    infix_ac: Option<AhoCorasick>,
    globs: Vec<Glob>,
    /// One literal each pattern's matches must hold (see [`WildcardSet::anchors`]).
    anchors: Option<Vec<Anchor>>,
}

/// A literal every value matched by one pattern holds, for rule indexes: the value equals it,
/// starts with it or contains it (compared ASCII-folded when the set is insensitive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Anchor {
    Exact(Box<[u8]>),
    Prefix(Box<[u8]>),
    Contains(Box<[u8]>),
}

impl Anchor {
    /// The anchor of one pattern: its literal start, or else its longest literal run; `None`
    /// for a pattern without a literal (`*`, `?*`).
    fn of(p: &str, shape: &Shape<'_>) -> Option<Anchor> {
        let bytes = |s: &str| s.as_bytes().into();
        Some(match *shape {
            Shape::Exact => Anchor::Exact(bytes(p)),
            Shape::Any => return None,
            Shape::Prefix(x) => Anchor::Prefix(bytes(x)),
            Shape::Suffix(x) | Shape::Infix(x) => Anchor::Contains(bytes(x)),
            Shape::General => {
                let lead = &p[..p.find(['*', '?']).unwrap_or(p.len())];
                if lead.is_empty() {
                    let run = p.split(['*', '?']).max_by_key(|r| r.len())?;
                    if run.is_empty() {
                        return None;
                    }
                    Anchor::Contains(bytes(run))
                } else {
                    Anchor::Prefix(bytes(lead))
                }
            }
        })
    }
}

impl WildcardSet {
    pub fn new<'s>(
        patterns: impl IntoIterator<Item = &'s str>,
        insensitive: bool,
    ) -> Result<WildcardSet, BuildError> {
        let mut any = false;
        let mut exact = Vec::new();
        let mut prefixes: Vec<Box<[u8]>> = Vec::new();
        let mut suffixes: Vec<Box<[u8]>> = Vec::new();
        let mut infixes: Vec<&str> = Vec::new();
        let mut globs = Vec::new();
        let mut anchors: Option<Vec<Anchor>> = Some(Vec::new());
        let fold = |s: &str| -> Box<[u8]> {
            let mut b = s.as_bytes().to_vec();
            if insensitive {
                b.make_ascii_lowercase();
            }
            b.into_boxed_slice()
        };
        for p in patterns {
            let shape = Shape::of(p);
            anchors = anchors.and_then(|mut a| {
                a.push(Anchor::of(p, &shape)?);
                Some(a)
            });
            match shape {
                Shape::Exact => exact.push(p),
                Shape::Any => any = true,
                Shape::Prefix(x) => prefixes.push(fold(x)),
                Shape::Suffix(x) => suffixes.push(fold(x)),
                Shape::Infix(x) => infixes.push(x),
                Shape::General => globs.push(Glob::new(p, insensitive)),
            }
        }
        prefixes.sort();
        prefixes.dedup();
        suffixes.sort();
        suffixes.dedup();
        let prefix_ac = if prefixes.len() > PREFIX_SCAN_MAX {
            Some(
                AhoCorasick::builder()
                    .ascii_case_insensitive(insensitive)
                    .start_kind(StartKind::Anchored)
                    .build(&prefixes)
                    .map_err(|e| BuildError(format!("prefix patterns: {e}")))?,
            )
        } else {
            None
        };
        let infix_ac = if infixes.is_empty() {
            None
        } else {
            Some(
                AhoCorasick::builder()
                    .ascii_case_insensitive(insensitive)
                    .build(&infixes)
                    .map_err(|e| BuildError(format!("infix patterns: {e}")))?,
            )
        };
        let exact_only = !any
            && prefixes.is_empty()
            && suffixes.is_empty()
            && infixes.is_empty()
            && globs.is_empty();
        Ok(WildcardSet {
            insensitive,
            exact_only,
            any,
            exact: StrSet::new(exact, insensitive),
            prefixes,
            prefix_ac,
            suffixes,
            infix_ac,
            globs,
            anchors,
        })
    }

    /// Per pattern, a literal its matches hold: a value matches only if it equals, starts
    /// with or contains one of these (ASCII-folded when insensitive). `None` when some
    /// pattern has no literal at all. For rule indexes.
    pub fn anchors(&self) -> Option<&[Anchor]> {
        self.anchors.as_deref()
    }

    /// Whether matching folds ASCII case.
    pub fn insensitive(&self) -> bool {
        self.insensitive
    }

    /// The patterns, when all of them are wildcard-free: the set is then an exact-string set.
    pub fn as_exact(&self) -> Option<&StrSet> {
        self.exact_only.then_some(&self.exact)
    }

    /// True when some pattern matches the whole of `value`.
    #[inline]
    pub fn is_match(&self, value: &str) -> bool {
        if self.exact_only {
            return self.exact.contains(value);
        }
        if self.any || self.exact.contains(value) {
            return true;
        }
        let v = value.as_bytes();
        if let Some(ac) = &self.prefix_ac {
            if ac.is_match(Input::new(v).anchored(Anchored::Yes)) {
                return true;
            }
        } else if self
            .prefixes
            .iter()
            .any(|p| v.len() >= p.len() && eq_bytes(&v[..p.len()], p, self.insensitive))
        {
            return true;
        }
        if self
            .suffixes
            .iter()
            .any(|s| v.len() >= s.len() && eq_bytes(&v[v.len() - s.len()..], s, self.insensitive))
        {
            return true;
        }
        if let Some(ac) = &self.infix_ac {
            if ac.is_match(v) {
                return true;
            }
        }
        self.globs.iter().any(|g| g.is_match(v))
    }
}

/// `a == b` where `b` is already folded when `insensitive`.
#[inline]
fn eq_bytes(a: &[u8], folded: &[u8], insensitive: bool) -> bool {
    if insensitive {
        a.eq_ignore_ascii_case(folded)
    } else {
        a == folded
    }
}

/// The cheapest matcher a single pattern needs.
#[derive(Debug, PartialEq, Eq)]
enum Shape<'a> {
    Exact,
    Any,
    Prefix(&'a str),
    Suffix(&'a str),
    Infix(&'a str),
    General,
}

impl<'a> Shape<'a> {
    fn of(p: &'a str) -> Shape<'a> {
        if !p.contains(['*', '?']) {
            return Shape::Exact;
        }
        if p.contains('?') {
            return Shape::General;
        }
        let inner = p.trim_matches('*');
        if inner.is_empty() {
            return Shape::Any;
        }
        if inner.contains('*') {
            return Shape::General;
        }
        match (p.starts_with('*'), p.ends_with('*')) {
            (false, true) => Shape::Prefix(inner),
            (true, false) => Shape::Suffix(inner),
            (true, true) => Shape::Infix(inner),
            (false, false) => Shape::General,
        }
    }
}

/// A general wildcard pattern: segments of literals and `?`, separated by `*`.
#[derive(Clone, Debug)]
pub struct Glob {
    insensitive: bool,
    /// No `*` at all: the single segment must cover the whole value.
    starless: bool,
    /// Segment anchored at the start (pattern does not begin with `*`).
    head: Option<Segment>,
    /// Segments found left to right between stars.
    middle: Vec<Segment>,
    /// Segment anchored at the end (pattern does not end with `*`).
    tail: Option<Segment>,
}

type Segment = Vec<Piece>;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    /// Literal bytes (valid UTF-8 on its own), folded when insensitive.
    Lit(Box<[u8]>),
    /// `?`: one character.
    One,
}

impl Glob {
    pub fn new(pattern: &str, insensitive: bool) -> Glob {
        let mut segs: Vec<Segment> = pattern
            .split('*')
            .map(|s| segment(s, insensitive))
            .collect();
        let starless = segs.len() == 1;
        let tail = if starless {
            None
        } else {
            segs.pop().filter(|s| !s.is_empty())
        };
        let head = Some(segs.remove(0)).filter(|s| starless || !s.is_empty());
        segs.retain(|s| !s.is_empty());
        Glob {
            insensitive,
            starless,
            head,
            middle: segs,
            tail,
        }
    }

    pub fn is_match(&self, v: &[u8]) -> bool {
        let ci = self.insensitive;
        if self.starless {
            return match &self.head {
                Some(seg) => match_at(seg, v, 0, ci) == Some(v.len()),
                None => v.is_empty(),
            };
        }
        let mut pos = 0;
        if let Some(seg) = &self.head {
            match match_at(seg, v, 0, ci) {
                Some(end) => pos = end,
                None => return false,
            }
        }
        let mut limit = v.len();
        if let Some(seg) = &self.tail {
            match match_back(seg, v, v.len(), ci) {
                Some(start) if start >= pos => limit = start,
                _ => return false,
            }
        }
        let window = &v[..limit];
        for seg in &self.middle {
            match find(seg, window, pos, ci) {
                Some(end) => pos = end,
                None => return false,
            }
        }
        true
    }
}

fn segment(s: &str, insensitive: bool) -> Segment {
    let mut out = Vec::new();
    for (i, part) in s.split('?').enumerate() {
        if i > 0 {
            out.push(Piece::One);
        }
        if !part.is_empty() {
            let mut b = part.as_bytes().to_vec();
            if insensitive {
                b.make_ascii_lowercase();
            }
            out.push(Piece::Lit(b.into_boxed_slice()));
        }
    }
    out
}

/// Length in bytes of the UTF-8 character starting with `lead`.
#[inline]
fn char_len(lead: u8) -> usize {
    match lead {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[inline]
fn is_continuation(b: u8) -> bool {
    b & 0xc0 == 0x80
}

/// Matches `seg` starting exactly at `pos`; returns where it ends.
fn match_at(seg: &[Piece], v: &[u8], mut pos: usize, ci: bool) -> Option<usize> {
    for piece in seg {
        match piece {
            Piece::Lit(lit) => {
                let end = pos.checked_add(lit.len())?;
                if end > v.len() || !eq_bytes(&v[pos..end], lit, ci) {
                    return None;
                }
                pos = end;
            }
            Piece::One => {
                let lead = *v.get(pos)?;
                pos = (pos + char_len(lead)).min(v.len());
            }
        }
    }
    Some(pos)
}

/// Matches `seg` ending exactly at `end`; returns where it starts.
fn match_back(seg: &[Piece], v: &[u8], mut end: usize, ci: bool) -> Option<usize> {
    for piece in seg.iter().rev() {
        match piece {
            Piece::Lit(lit) => {
                let start = end.checked_sub(lit.len())?;
                if !eq_bytes(&v[start..end], lit, ci) {
                    return None;
                }
                end = start;
            }
            Piece::One => {
                if end == 0 {
                    return None;
                }
                end -= 1;
                while end > 0 && is_continuation(v[end]) {
                    end -= 1;
                }
            }
        }
    }
    Some(end)
}

/// Leftmost match of `seg` at or after `from` (at a character boundary); returns its end.
/// Taking the leftmost occurrence of each middle segment leaves the most room for the rest,
/// so no backtracking is needed.
fn find(seg: &[Piece], v: &[u8], from: usize, ci: bool) -> Option<usize> {
    let first_byte = match seg.first() {
        Some(Piece::Lit(lit)) => lit.first().copied(),
        _ => None,
    };
    let mut start = from;
    while start <= v.len() {
        if let Some(b) = first_byte {
            let rest = v.get(start..)?;
            let off = if ci && b.is_ascii_alphabetic() {
                memchr::memchr2(b, b.to_ascii_uppercase(), rest)?
            } else {
                memchr::memchr(b, rest)?
            };
            start += off;
        } else if start < v.len() && is_continuation(v[start]) {
            start += 1;
            continue;
        }
        if let Some(end) = match_at(seg, v, start, ci) {
            return Some(end);
        }
        start += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(patterns: &[&str], ci: bool, v: &str) -> bool {
        WildcardSet::new(patterns.iter().copied(), ci)
            .unwrap()
            .is_match(v)
    }

    /// Every pattern alone, through the set and through a bare glob, must agree.
    fn both(p: &str, ci: bool, v: &str) -> bool {
        let set = m(&[p], ci, v);
        let glob = Glob::new(p, ci).is_match(v.as_bytes());
        assert_eq!(set, glob, "set and glob disagree on {p:?} vs {v:?}");
        set
    }

    #[test]
    fn shapes() {
        assert_eq!(Shape::of("abc"), Shape::Exact);
        assert_eq!(Shape::of("**"), Shape::Any);
        assert_eq!(Shape::of("ab*"), Shape::Prefix("ab"));
        assert_eq!(Shape::of("*ab"), Shape::Suffix("ab"));
        assert_eq!(Shape::of("**ab**"), Shape::Infix("ab"));
        assert_eq!(Shape::of("a*b"), Shape::General);
        assert_eq!(Shape::of("a?"), Shape::General);
    }

    #[test]
    fn whole_value_star_and_question() {
        assert!(both("ba?h", false, "bash"));
        assert!(!both("ba?h", false, "bassh"));
        assert!(!both("ba?h", false, "bah"));
        assert!(both("?*", false, "x"));
        assert!(!both("?*", false, ""));
        assert!(both("*", false, ""));
        assert!(both("", false, ""));
        assert!(!both("", false, "a"));
        assert!(both("a*b*c", false, "abc"));
        assert!(both("a*b*c", false, "aXbYc"));
        assert!(!both("a*b*c", false, "aXbYcd"));
        assert!(!both("a*a", false, "a"));
        assert!(both("a*a", false, "aa"));
        assert!(both("*a*b*", false, "xxaxxbxx"));
        assert!(!both("*a*b*", false, "xxbxxaxx"));
        assert!(both("*ab?d*", false, "zzabcdzz"));
        assert!(both("?", false, "é"), "? is one character, not one byte");
        assert!(!both("??", false, "é"));
        assert!(both("*é?", false, "xéy"));
        assert!(both("?é", false, "éé"));
    }

    #[test]
    fn star_crosses_newlines() {
        assert!(both("*/dev/tcp/*", false, "bash -c 'x\n/dev/tcp/1/2'"));
        assert!(both("a*z", false, "a\n\nz"));
        assert!(both("a?z", false, "a\nz"));
    }

    #[test]
    fn backslash_is_literal_and_star_cannot_be_escaped() {
        assert!(both("C:\\Windows\\*", true, "c:\\windows\\x"));
        assert!(both("*\\x*\\x*", false, "echo \\x41\\x42"));
        assert!(
            both("a\\*", false, "a\\anything"),
            "\\* is a backslash then a star"
        );
        assert!(!both("a\\*", false, "a*"));
    }

    #[test]
    fn ascii_folding_only() {
        assert!(both("BA*", true, "bash"));
        assert!(!both("BA*", false, "bash"));
        assert!(both("*TCP*", true, "/dev/tcp/x"));
        assert!(both("ba?H", true, "BASH"));
        assert!(
            !both("É*", true, "é"),
            "non-ASCII letters do not fold (as in Elasticsearch)"
        );
        assert!(both("É*", true, "Éa"));
        let s = StrSet::new(["Bash"], true);
        assert!(s.contains("bASH"));
        assert!(!s.contains("bash "));
        let s = StrSet::new(["École"], true);
        assert!(!s.contains("éCOLE") && s.contains("ÉCOLE"));
    }

    #[test]
    fn many_patterns_use_automata_and_sets() {
        let prefixes: Vec<String> = (0..20).map(|i| format!("/opt/p{i}/")).collect();
        let mut pats: Vec<String> = prefixes.iter().map(|p| format!("{p}*")).collect();
        pats.extend((0..20).map(|i| format!("exact{i}")));
        pats.extend((0..20).map(|i| format!("*mid{i}*")));
        pats.push("*.SO".into());
        let set = WildcardSet::new(pats.iter().map(String::as_str), true).unwrap();
        assert!(set.prefix_ac.is_some() && !set.exact.slots.is_empty());
        assert!(set.is_match("/OPT/p7/bin"));
        assert!(!set.is_match("x/opt/p7/bin"));
        assert!(set.is_match("EXACT19"));
        assert!(!set.is_match("exact20"));
        assert!(set.is_match("xxMID3yy"));
        assert!(set.is_match("libc.so"));
        assert!(!set.is_match("libc.so.6"));
    }

    #[test]
    fn str_set_hashing_and_long_values() {
        let items: Vec<String> = (0..100).map(|i| format!("name{i}")).collect();
        let s = StrSet::new(items.iter().map(String::as_str), false);
        assert!(s.contains("name42") && !s.contains("Name42") && !s.contains("name100"));
        for i in &items {
            assert!(s.contains(i));
        }
        let s = StrSet::new(items.iter().map(String::as_str), true);
        assert!(s.contains("NAME42") && s.contains("name99") && !s.contains("name100"));
        assert!(!s.contains("nameé"));
        let long = "x".repeat(300);
        let s = StrSet::new([long.as_str()], true);
        assert!(s.contains(&"X".repeat(300)));
    }

    /// The reference meaning of a wildcard pattern, through the regex crate: ASCII-fold both
    /// sides when insensitive, then `?` is `.`, `*` is `.*`, with `.` matching newlines.
    fn reference(p: &str, ci: bool, v: &str) -> bool {
        let (p, v) = if ci {
            (p.to_ascii_lowercase(), v.to_ascii_lowercase())
        } else {
            (p.to_owned(), v.to_owned())
        };
        let mut re = String::from("(?s)^");
        for c in p.chars() {
            match c {
                '*' => re.push_str(".*"),
                '?' => re.push('.'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
        }
        re.push('$');
        regex::Regex::new(&re).unwrap().is_match(&v)
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_reference(
            p in "[aAbé*?\\\n]{0,8}",
            v in "[aAbé\\\n]{0,10}",
            ci in proptest::bool::ANY,
        ) {
            proptest::prop_assert_eq!(both(&p, ci, &v), reference(&p, ci, &v), "pattern {:?} value {:?}", p, v);
        }

        #[test]
        fn lists_are_any_of(
            ps in proptest::collection::vec("[ab*?]{0,4}", 1..12),
            v in "[abAB]{0,6}",
            ci in proptest::bool::ANY,
        ) {
            let want = ps.iter().any(|p| reference(p, ci, &v));
            let set = WildcardSet::new(ps.iter().map(String::as_str), ci).unwrap();
            proptest::prop_assert_eq!(set.is_match(&v), want);
        }
    }
}
