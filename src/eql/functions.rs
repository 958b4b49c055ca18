//! EQL functions as a table: name, parameters (type, must-be-constant), return type, whether a
//! `~` (case-insensitive) form exists, implementation, and a one-line example.
//!
//! Names are case-insensitive (`cidrmatch` is `cidrMatch`). Every function returns null when
//! any argument is null. Arity and argument types are checked when a rule compiles
//! (`compile.rs`); implementations receive arguments already coerced to the parameter type
//! (a number in a string parameter arrives as its string form, a numeric string in a number
//! parameter as the number), so a mismatch that slips through yields null, never a panic.
//!
//! On a multi-valued field a function applies to each element, and the enclosing predicate
//! holds when it holds for some element (Elasticsearch 7.15+ accepts multi-valued input).
//! So `length(process.args) == 3` asks whether some argument is three characters long — not
//! whether there are three arguments (use `process.args_count`).
//!
//! Deliberate choices where Elasticsearch is vague or Java-specific:
//! - lengths and offsets count Unicode scalar values (Java counts UTF-16 units; the two agree
//!   outside the astral planes);
//! - `~` forms fold ASCII letters only, like the case-insensitive queries Elasticsearch runs;
//! - division or modulo by zero, and arithmetic overflow, yield null.

use std::fmt::{self, Write};
use std::net::IpAddr;

use super::ast::ArithOp;
use crate::document::Scalar;

/// What compile time knows of an expression's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// A field of unknown mapping: coerced at run time.
    Any,
    Str,
    Num,
    Bool,
    Null,
}

impl Ty {
    /// "a string", "a number", …, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Ty::Any => "any value",
            Ty::Str => "a string",
            Ty::Num => "a number",
            Ty::Bool => "a boolean",
            Ty::Null => "null",
        }
    }

    /// True when a value of type `self` may be passed where `want` is expected.
    pub fn fits(self, want: Ty) -> bool {
        self == want || matches!(self, Ty::Any | Ty::Null) || want == Ty::Any
    }
}

/// One parameter of a function.
#[derive(Debug)]
pub struct Param {
    pub name: &'static str,
    pub ty: Ty,
    /// Must fold to a constant (a CIDR list, a number base, the `greedy` flag).
    pub constant: bool,
}

/// `for<'a> fn(args, case_insensitive, scratch) -> result`: the result may borrow from the
/// arguments or from the scratch buffer, never from anything else.
pub type Impl = for<'a> fn(&[Scalar<'a>], bool, &'a mut StrBuf) -> Scalar<'a>;

/// One row of the function table. `example` is a line of EQL that must evaluate to true;
/// `tests/eql_semantics.rs` runs every one.
#[derive(Debug)]
pub struct FunctionDef {
    /// Canonical spelling, as Elastic documents it.
    pub name: &'static str,
    pub params: &'static [Param],
    /// How many leading parameters are required.
    pub required: usize,
    /// The last parameter repeats.
    pub variadic: bool,
    pub returns: Ty,
    /// Has a `name~(...)` form.
    pub insensitive: bool,
    pub eval: Impl,
    /// One line of EQL that is true.
    pub example: &'static str,
}

impl FunctionDef {
    /// The parameter the `i`-th argument binds to.
    pub fn param(&self, i: usize) -> Option<&'static Param> {
        match self.params.get(i) {
            Some(p) => Some(p),
            None if self.variadic => self.params.last(),
            None => None,
        }
    }

    /// "2 arguments", "2 or 3 arguments", "at least 2 arguments".
    pub fn arity(&self) -> String {
        let n = self.params.len();
        let plural = |k: usize| if k == 1 { "argument" } else { "arguments" };
        if self.variadic {
            format!("at least {} {}", self.required, plural(self.required))
        } else if self.required == n {
            format!("{n} {}", plural(n))
        } else {
            format!("{} to {n} arguments", self.required)
        }
    }

    pub fn accepts(&self, n: usize) -> bool {
        n >= self.required && (self.variadic || n <= self.params.len())
    }
}

const fn p(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        constant: false,
    }
}

const fn c(name: &'static str, ty: Ty) -> Param {
    Param {
        name,
        ty,
        constant: true,
    }
}

const NUM2: &[Param] = &[p("left", Ty::Num), p("right", Ty::Num)];
const STR2: &[Param] = &[p("source", Ty::Str), p("substring", Ty::Str)];

/// Every function Elasticsearch EQL has.
pub static FUNCTIONS: &[FunctionDef] = &[
    FunctionDef {
        name: "add",
        params: NUM2,
        required: 2,
        variadic: false,
        returns: Ty::Num,
        insensitive: false,
        eval: |a, _, _| arith_args(ArithOp::Add, a),
        example: "add(2, 3) == 5",
    },
    FunctionDef {
        name: "subtract",
        params: NUM2,
        required: 2,
        variadic: false,
        returns: Ty::Num,
        insensitive: false,
        eval: |a, _, _| arith_args(ArithOp::Sub, a),
        example: "subtract(2, 3) == -1",
    },
    FunctionDef {
        name: "multiply",
        params: NUM2,
        required: 2,
        variadic: false,
        returns: Ty::Num,
        insensitive: false,
        eval: |a, _, _| arith_args(ArithOp::Mul, a),
        example: "multiply(2, 3) == 6",
    },
    FunctionDef {
        name: "divide",
        params: NUM2,
        required: 2,
        variadic: false,
        returns: Ty::Num,
        insensitive: false,
        eval: |a, _, _| arith_args(ArithOp::Div, a),
        example: "divide(-7, 2) == -3",
    },
    FunctionDef {
        name: "modulo",
        params: NUM2,
        required: 2,
        variadic: false,
        returns: Ty::Num,
        insensitive: false,
        eval: |a, _, _| arith_args(ArithOp::Mod, a),
        example: "modulo(-10, 6) == -4",
    },
    FunctionDef {
        name: "between",
        params: &[
            p("source", Ty::Str),
            p("left", Ty::Str),
            p("right", Ty::Str),
            c("greedy", Ty::Bool),
        ],
        required: 3,
        variadic: false,
        returns: Ty::Str,
        insensitive: true,
        eval: between,
        example: r#"between("a/b/c", "/", "/") == "b""#,
    },
    FunctionDef {
        name: "cidrMatch",
        params: &[p("ip", Ty::Str), c("cidr", Ty::Str)],
        required: 2,
        variadic: true,
        returns: Ty::Bool,
        insensitive: false,
        eval: cidr_match,
        example: r#"cidrMatch("10.1.2.3", "10.0.0.0/8", "::1")"#,
    },
    FunctionDef {
        name: "concat",
        params: &[p("value", Ty::Any)],
        required: 1,
        variadic: true,
        returns: Ty::Str,
        insensitive: false,
        eval: concat,
        example: r#"concat("pid ", 42, " ", true) == "pid 42 true""#,
    },
    FunctionDef {
        name: "endsWith",
        params: STR2,
        required: 2,
        variadic: false,
        returns: Ty::Bool,
        insensitive: true,
        eval: |a, ci, _| str2(a, |s, x| Scalar::Bool(ends_with(s, x, ci))),
        example: r#"endsWith~("cmd.EXE", ".exe")"#,
    },
    FunctionDef {
        name: "indexOf",
        params: &[
            p("source", Ty::Str),
            p("substring", Ty::Str),
            p("start", Ty::Num),
        ],
        required: 2,
        variadic: false,
        returns: Ty::Num,
        insensitive: true,
        eval: index_of,
        example: r#"indexOf("subdomain.example.com", ".", -6) == 9"#,
    },
    FunctionDef {
        name: "length",
        params: &[p("source", Ty::Str)],
        required: 1,
        variadic: false,
        returns: Ty::Num,
        insensitive: false,
        eval: |a, _, _| match a.first() {
            Some(Scalar::Str(s)) => Scalar::Int(s.chars().count() as i64),
            _ => Scalar::Null,
        },
        example: r#"length("héllo") == 5"#,
    },
    FunctionDef {
        name: "number",
        params: &[p("source", Ty::Str), c("base", Ty::Num)],
        required: 1,
        variadic: false,
        returns: Ty::Num,
        insensitive: false,
        eval: number,
        example: r#"number("  0x1f  ") == 31"#,
    },
    FunctionDef {
        name: "startsWith",
        params: STR2,
        required: 2,
        variadic: false,
        returns: Ty::Bool,
        insensitive: true,
        eval: |a, ci, _| str2(a, |s, x| Scalar::Bool(starts_with(s, x, ci))),
        example: r#"startsWith("bash -c", "bash")"#,
    },
    FunctionDef {
        name: "string",
        params: &[p("value", Ty::Any)],
        required: 1,
        variadic: false,
        returns: Ty::Str,
        insensitive: false,
        eval: |a, _, buf| match a.first() {
            Some(Scalar::Str(s)) => Scalar::Str(s),
            Some(&v) if v != Scalar::Null => {
                buf.clear();
                write_scalar(v, buf);
                Scalar::Str(buf.as_str())
            }
            _ => Scalar::Null,
        },
        example: r#"string(true) == "true""#,
    },
    FunctionDef {
        name: "stringContains",
        params: STR2,
        required: 2,
        variadic: false,
        returns: Ty::Bool,
        insensitive: true,
        eval: |a, ci, _| {
            str2(a, |s, x| {
                Scalar::Bool(!x.is_empty() && find(s, x, ci).is_some())
            })
        },
        example: r#"stringContains~("Regsvr32.exe", "regsvr32")"#,
    },
    FunctionDef {
        name: "substring",
        params: &[p("source", Ty::Str), p("start", Ty::Num), p("end", Ty::Num)],
        required: 2,
        variadic: false,
        returns: Ty::Str,
        insensitive: false,
        eval: substring,
        example: r#"substring("start.exe", -4) == ".exe""#,
    },
];

/// The function called `name`, in any letter case.
pub fn lookup(name: &str) -> Option<&'static FunctionDef> {
    FUNCTIONS.iter().find(|f| f.name.eq_ignore_ascii_case(name))
}

/// A number as arithmetic sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Num {
    Int(i64),
    Float(f64),
}

impl Num {
    pub fn to_scalar(self) -> Scalar<'static> {
        match self {
            Num::Int(i) => Scalar::Int(i),
            Num::Float(f) => Scalar::Float(f),
        }
    }

    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }
}

/// A scalar as a number: numbers as they are, numeric strings parsed (as a long or double
/// mapping would index them); anything else is not a number.
pub fn to_num(v: Scalar<'_>) -> Option<Num> {
    match v {
        Scalar::Int(i) => Some(Num::Int(i)),
        Scalar::Float(f) => Some(Num::Float(f)),
        Scalar::Str(s) => parse_num(s),
        Scalar::Null | Scalar::Bool(_) => None,
    }
}

/// `"42"` → 42, `"-1.5e3"` → -1500.0; no whitespace, no `inf`/`nan`.
pub fn parse_num(s: &str) -> Option<Num> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(Num::Int(i));
    }
    let numeric = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && s.bytes().any(|b| b.is_ascii_digit());
    if !numeric {
        return None;
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Num::Float)
}

/// `a OP b` with Java semantics: integer division truncates toward zero, `%` keeps the sign of
/// the dividend; overflow, division by zero and non-numbers give null.
pub fn arith(op: ArithOp, a: Scalar<'_>, b: Scalar<'_>) -> Scalar<'static> {
    let (Some(x), Some(y)) = (to_num(a), to_num(b)) else {
        return Scalar::Null;
    };
    let r = match (x, y) {
        (Num::Int(x), Num::Int(y)) => match op {
            ArithOp::Add => x.checked_add(y),
            ArithOp::Sub => x.checked_sub(y),
            ArithOp::Mul => x.checked_mul(y),
            ArithOp::Div => x.checked_div(y),
            ArithOp::Mod => x.checked_rem(y),
        }
        .map(Num::Int),
        _ => {
            let (x, y) = (x.as_f64(), y.as_f64());
            let r = match op {
                ArithOp::Add => x + y,
                ArithOp::Sub => x - y,
                ArithOp::Mul => x * y,
                ArithOp::Div if y == 0.0 => f64::NAN,
                ArithOp::Div => x / y,
                ArithOp::Mod if y == 0.0 => f64::NAN,
                ArithOp::Mod => x % y,
            };
            r.is_finite().then_some(Num::Float(r))
        }
    };
    r.map_or(Scalar::Null, Num::to_scalar)
}

/// Unary minus; `-i64::MIN` overflows to null.
pub fn negate(a: Scalar<'_>) -> Scalar<'static> {
    match to_num(a) {
        Some(Num::Int(i)) => i.checked_neg().map_or(Scalar::Null, Scalar::Int),
        Some(Num::Float(f)) => Scalar::Float(-f),
        None => Scalar::Null,
    }
}

fn arith_args(op: ArithOp, a: &[Scalar<'_>]) -> Scalar<'static> {
    match a {
        [x, y] => arith(op, *x, *y),
        _ => Scalar::Null,
    }
}

/// Two string arguments, or null.
fn str2<'a>(a: &[Scalar<'a>], f: impl FnOnce(&'a str, &'a str) -> Scalar<'a>) -> Scalar<'a> {
    match a {
        [Scalar::Str(s), Scalar::Str(x)] => f(s, x),
        _ => Scalar::Null,
    }
}

/// Byte offset of the first `needle` in `hay` (ASCII-folded when `ci`); char-aligned because
/// the needle is valid UTF-8.
pub fn find(hay: &str, needle: &str, ci: bool) -> Option<usize> {
    if !ci {
        return memchr::memmem::find(hay.as_bytes(), needle.as_bytes());
    }
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len()).find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

fn rfind(hay: &str, needle: &str, ci: bool) -> Option<usize> {
    if !ci {
        return hay.rfind(needle);
    }
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.len() > h.len() {
        return None;
    }
    (0..=h.len() - n.len())
        .rev()
        .find(|&i| h[i..i + n.len()].eq_ignore_ascii_case(n))
}

fn starts_with(s: &str, x: &str, ci: bool) -> bool {
    s.len() >= x.len() && eq(&s.as_bytes()[..x.len()], x.as_bytes(), ci)
}

fn ends_with(s: &str, x: &str, ci: bool) -> bool {
    s.len() >= x.len() && eq(&s.as_bytes()[s.len() - x.len()..], x.as_bytes(), ci)
}

fn eq(a: &[u8], b: &[u8], ci: bool) -> bool {
    if ci {
        a.eq_ignore_ascii_case(b)
    } else {
        a == b
    }
}

/// `between(source, left, right[, greedy])`: the text after the first `left` and before the
/// next `right` (the last `right` when greedy); `""` when either is not found.
fn between<'a>(a: &[Scalar<'a>], ci: bool, _: &'a mut StrBuf) -> Scalar<'a> {
    let (s, l, r) = match a {
        [Scalar::Str(s), Scalar::Str(l), Scalar::Str(r), ..] => (*s, *l, *r),
        _ => return Scalar::Null,
    };
    let greedy = match a.get(3) {
        None => false,
        Some(Scalar::Bool(g)) => *g,
        Some(_) => return Scalar::Null,
    };
    let Some(start) = find(s, l, ci) else {
        return Scalar::Str("");
    };
    let from = start + l.len();
    let end = if greedy {
        rfind(s, r, ci)
    } else {
        find(&s[from..], r, ci).map(|e| e + from)
    };
    match end {
        Some(end) if end >= from => Scalar::Str(&s[from..end]),
        _ => Scalar::Str(""),
    }
}

fn cidr_match<'a>(a: &[Scalar<'a>], _: bool, _: &'a mut StrBuf) -> Scalar<'a> {
    let Some((Scalar::Str(ip), cidrs)) = a.split_first() else {
        return Scalar::Null;
    };
    let mut set = CidrSet::default();
    for c in cidrs {
        match c {
            Scalar::Str(c) => match CidrSet::parse(c) {
                Ok(net) => set.nets.push(net),
                Err(_) => return Scalar::Null,
            },
            _ => return Scalar::Null,
        }
    }
    Scalar::Bool(set.contains(ip))
}

fn concat<'a>(a: &[Scalar<'a>], _: bool, buf: &'a mut StrBuf) -> Scalar<'a> {
    if a.contains(&Scalar::Null) {
        return Scalar::Null;
    }
    buf.clear();
    for v in a {
        write_scalar(*v, buf);
    }
    Scalar::Str(buf.as_str())
}

/// Java `indexOf`: a negative start counts as 0; not found is null.
fn index_of<'a>(a: &[Scalar<'a>], ci: bool, _: &'a mut StrBuf) -> Scalar<'a> {
    let (s, x) = match a {
        [Scalar::Str(s), Scalar::Str(x), ..] => (*s, *x),
        _ => return Scalar::Null,
    };
    let start = match a.get(2) {
        None => 0,
        Some(v) => match to_num(*v) {
            Some(n) => num_to_index(n).max(0),
            None => return Scalar::Null,
        },
    };
    let total = s.chars().count() as i64;
    if start > total {
        return Scalar::Null;
    }
    let from = char_to_byte(s, start);
    match find(&s[from..], x, ci) {
        Some(pos) => Scalar::Int(s[..from + pos].chars().count() as i64),
        None => Scalar::Null,
    }
}

/// `number(source[, base])`: surrounding whitespace ignored, `+`/`-` accepted, `0x` means hex
/// (with no base or base 16); base 10 also reads decimals. Unparseable is null.
fn number<'a>(a: &[Scalar<'a>], _: bool, _: &'a mut StrBuf) -> Scalar<'a> {
    let s = match a.first() {
        Some(Scalar::Str(s)) => *s,
        Some(v @ (Scalar::Int(_) | Scalar::Float(_))) if a.len() == 1 => return *v,
        _ => return Scalar::Null,
    };
    let base = match a.get(1) {
        None => None,
        Some(v) => match to_num(*v) {
            Some(Num::Int(b)) if (2..=36).contains(&b) => Some(b as u32),
            _ => return Scalar::Null,
        },
    };
    parse_number(s, base).map_or(Scalar::Null, Num::to_scalar)
}

/// The parser behind `number()`.
pub fn parse_number(s: &str, base: Option<u32>) -> Option<Num> {
    let t = s.trim_matches(|c: char| c <= ' ');
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let hex = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"));
    let (radix, body) = match (base, hex) {
        (None | Some(16), Some(h)) => (16, h),
        (None, None) => (10, digits),
        (Some(b), _) => (b, digits),
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok();
    if let Some(m) = magnitude {
        let v = if neg {
            0i64.checked_sub_unsigned(m)?
        } else {
            i64::try_from(m).ok()?
        };
        return Some(Num::Int(v));
    }
    if radix != 10 {
        return None;
    }
    match parse_num(body)? {
        Num::Float(f) => Some(Num::Float(if neg { -f } else { f })),
        Num::Int(i) => Some(Num::Int(if neg { i.checked_neg()? } else { i })),
    }
}

/// Python-style slice by characters: negative offsets count from the end, out-of-range offsets
/// clamp, and an empty range is `""`.
fn substring<'a>(a: &[Scalar<'a>], _: bool, _: &'a mut StrBuf) -> Scalar<'a> {
    let s = match a.first() {
        Some(Scalar::Str(s)) => *s,
        _ => return Scalar::Null,
    };
    let n = s.chars().count() as i64;
    let norm = |v: &Scalar<'_>| -> Option<i64> {
        let i = num_to_index(to_num(*v)?);
        Some(if i < 0 { (i + n).max(0) } else { i.min(n) })
    };
    let Some(start) = a.get(1).and_then(norm) else {
        return Scalar::Null;
    };
    let end = match a.get(2) {
        None => n,
        Some(v) => match norm(v) {
            Some(e) => e,
            None => return Scalar::Null,
        },
    };
    if start >= end {
        return Scalar::Str("");
    }
    Scalar::Str(&s[char_to_byte(s, start)..char_to_byte(s, end)])
}

fn num_to_index(n: Num) -> i64 {
    match n {
        Num::Int(i) => i,
        // Saturating, truncating toward zero (Java's (int) cast, widened).
        Num::Float(f) => f as i64,
    }
}

/// Byte offset of the `i`-th character (the length when past the end).
fn char_to_byte(s: &str, i: i64) -> usize {
    if i <= 0 {
        return 0;
    }
    s.char_indices().nth(i as usize).map_or(s.len(), |(b, _)| b)
}

/// IPv4 and IPv6 networks, all held as IPv6 (IPv4 as `::ffff:a.b.c.d`), so an IPv4-mapped
/// IPv6 address matches IPv4 networks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CidrSet {
    nets: Vec<(u128, u8)>,
}

impl CidrSet {
    /// Builds the set, or names the first entry that is not a CIDR or an address.
    pub fn new<'s>(items: impl IntoIterator<Item = &'s str>) -> Result<CidrSet, String> {
        let mut nets = Vec::new();
        for i in items {
            nets.push(CidrSet::parse(i)?);
        }
        Ok(CidrSet { nets })
    }

    /// `"10.0.0.0/8"`, `"fe80::/10"`, or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Result<(u128, u8), String> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let ip: IpAddr = addr
            .parse()
            .map_err(|_| format!("\"{s}\" is not an IP address or CIDR block"))?;
        let (bits, max, offset) = match ip {
            IpAddr::V4(v4) => (u128::from(v4.to_ipv6_mapped()), 32u8, 96u8),
            IpAddr::V6(v6) => (u128::from(v6), 128u8, 0u8),
        };
        let len = match len {
            None => max,
            Some(l) => match l.parse::<u8>() {
                Ok(n) if n <= max && !l.starts_with('+') => n,
                _ => return Err(format!("\"{s}\": prefix length must be 0 to {max}")),
            },
        };
        let total = len + offset;
        Ok((bits & mask(total), total))
    }

    /// Adds the networks of `other`.
    pub fn extend(&mut self, other: CidrSet) {
        self.nets.extend(other.nets);
    }

    /// True when `ip` parses as an address inside one of the networks.
    pub fn contains(&self, ip: &str) -> bool {
        let Ok(addr) = ip.parse::<IpAddr>() else {
            return false;
        };
        let bits = match addr {
            IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
            IpAddr::V6(v6) => u128::from(v6),
        };
        self.nets.iter().any(|&(net, len)| bits & mask(len) == net)
    }
}

fn mask(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len.min(128)))
    }
}

/// A string built without touching the heap unless it outgrows the stack part.
pub struct StrBuf {
    stack: [u8; 256],
    len: usize,
    heap: String,
    spilled: bool,
}

impl Default for StrBuf {
    fn default() -> Self {
        StrBuf::new()
    }
}

impl StrBuf {
    pub fn new() -> StrBuf {
        StrBuf {
            stack: [0; 256],
            len: 0,
            heap: String::new(),
            spilled: false,
        }
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.heap.clear();
        self.spilled = false;
    }

    pub fn as_str(&self) -> &str {
        if self.spilled {
            &self.heap
        } else {
            // Only whole `&str`s are ever copied in, so this is valid UTF-8.
            std::str::from_utf8(&self.stack[..self.len]).unwrap_or("")
        }
    }
}

impl Write for StrBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !self.spilled {
            if let Some(dst) = self.stack.get_mut(self.len..self.len + s.len()) {
                dst.copy_from_slice(s.as_bytes());
                self.len += s.len();
                return Ok(());
            }
            let head = std::str::from_utf8(&self.stack[..self.len]).unwrap_or("");
            self.heap.push_str(head);
            self.spilled = true;
        }
        self.heap.push_str(s);
        Ok(())
    }
}

/// The string form of a value, as a keyword mapping would index it: `42`, `1.5`, `true`.
/// Doubles follow Java's `Double.toString` (`1.0`, `1.0E10`). Null writes nothing.
pub fn write_scalar(v: Scalar<'_>, out: &mut impl Write) {
    let _ = match v {
        Scalar::Null => Ok(()),
        Scalar::Bool(b) => out.write_str(if b { "true" } else { "false" }),
        Scalar::Int(i) => write!(out, "{i}"),
        Scalar::Str(s) => out.write_str(s),
        Scalar::Float(f) => write_double(f, out),
    };
}

fn write_double(f: f64, out: &mut impl Write) -> fmt::Result {
    if f.is_nan() {
        return out.write_str("NaN");
    }
    if f.is_infinite() {
        return out.write_str(if f > 0.0 { "Infinity" } else { "-Infinity" });
    }
    let a = f.abs();
    if a == 0.0 || (1e-3..1e7).contains(&a) {
        if f.fract() == 0.0 {
            write!(out, "{f:.1}")
        } else {
            write!(out, "{f}")
        }
    } else {
        let mut tmp = StrBuf::new();
        write!(tmp, "{f:e}")?;
        let s = tmp.as_str();
        let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
        out.write_str(mantissa)?;
        if !mantissa.contains('.') {
            out.write_str(".0")?;
        }
        out.write_char('E')?;
        out.write_str(exp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call<'a>(name: &str, ci: bool, args: &[Scalar<'a>], buf: &'a mut StrBuf) -> Scalar<'a> {
        let f = lookup(name).unwrap_or_else(|| panic!("no function {name}"));
        assert!(f.accepts(args.len()), "{name} arity");
        (f.eval)(args, ci, buf)
    }

    fn s(v: &str) -> Scalar<'_> {
        Scalar::Str(v)
    }

    #[test]
    fn names_are_case_insensitive_and_rows_unique() {
        assert_eq!(lookup("cidrmatch").unwrap().name, "cidrMatch");
        assert_eq!(lookup("STRINGCONTAINS").unwrap().name, "stringContains");
        assert!(lookup("arrayContains").is_none());
        for (i, f) in FUNCTIONS.iter().enumerate() {
            assert!(FUNCTIONS[i + 1..]
                .iter()
                .all(|g| !g.name.eq_ignore_ascii_case(f.name)));
            assert!(f.required >= 1 && f.required <= f.params.len());
        }
    }

    #[test]
    fn java_arithmetic() {
        assert_eq!(
            arith(ArithOp::Div, Scalar::Int(-7), Scalar::Int(2)),
            Scalar::Int(-3)
        );
        assert_eq!(
            arith(ArithOp::Mod, Scalar::Int(-10), Scalar::Int(6)),
            Scalar::Int(-4)
        );
        assert_eq!(
            arith(ArithOp::Div, Scalar::Int(4), Scalar::Int(3)),
            Scalar::Int(1)
        );
        assert_eq!(
            arith(ArithOp::Div, Scalar::Float(4.0), Scalar::Int(2)),
            Scalar::Float(2.0)
        );
        assert_eq!(
            arith(ArithOp::Div, Scalar::Int(1), Scalar::Int(0)),
            Scalar::Null
        );
        assert_eq!(
            arith(ArithOp::Mod, Scalar::Int(1), Scalar::Int(0)),
            Scalar::Null
        );
        assert_eq!(
            arith(ArithOp::Div, Scalar::Float(1.0), Scalar::Float(0.0)),
            Scalar::Null
        );
        assert_eq!(
            arith(ArithOp::Add, Scalar::Int(i64::MAX), Scalar::Int(1)),
            Scalar::Null
        );
        assert_eq!(
            arith(ArithOp::Div, Scalar::Int(i64::MIN), Scalar::Int(-1)),
            Scalar::Null
        );
        assert_eq!(
            arith(ArithOp::Add, s("40"), Scalar::Int(2)),
            Scalar::Int(42)
        );
        assert_eq!(arith(ArithOp::Add, s("x"), Scalar::Int(2)), Scalar::Null);
        assert_eq!(
            arith(ArithOp::Add, Scalar::Null, Scalar::Int(2)),
            Scalar::Null
        );
        assert_eq!(negate(Scalar::Int(i64::MIN)), Scalar::Null);
    }

    #[test]
    fn string_functions() {
        let mut b = StrBuf::new();
        assert_eq!(
            call("between", false, &[s("a/b/c/d"), s("/"), s("/")], &mut b),
            s("b")
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call(
                "between",
                false,
                &[s("a/b/c/d"), s("/"), s("/"), Scalar::Bool(true)],
                &mut b
            ),
            s("b/c")
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("between", false, &[s("aXbXc"), s("x"), s("x")], &mut b),
            s("")
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("between", true, &[s("aXbXc"), s("x"), s("x")], &mut b),
            s("b")
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call(
                "between",
                false,
                &[s("abc"), s("b"), s("a"), Scalar::Bool(true)],
                &mut b
            ),
            s("")
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("endsWith", false, &[s(""), s("")], &mut b),
            Scalar::Bool(true)
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("endsWith", false, &[s("a.EXE"), s(".exe")], &mut b),
            Scalar::Bool(false)
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("endsWith", true, &[s("a.EXE"), s(".exe")], &mut b),
            Scalar::Bool(true)
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("stringContains", false, &[s("bash"), s("")], &mut b),
            Scalar::Bool(false)
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("stringContains", false, &[s("bash"), s("as")], &mut b),
            Scalar::Bool(true)
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("startsWith", false, &[Scalar::Null, s("as")], &mut b),
            Scalar::Null
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call(
                "indexOf",
                false,
                &[s("subdomain.example.com"), s("."), Scalar::Int(-6)],
                &mut b
            ),
            Scalar::Int(9)
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call(
                "indexOf",
                false,
                &[s("subdomain.example.com"), s("."), Scalar::Int(10)],
                &mut b
            ),
            Scalar::Int(17)
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("indexOf", false, &[s("abc"), s("z")], &mut b),
            Scalar::Null
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("indexOf", false, &[s("éa"), s("a")], &mut b),
            Scalar::Int(1)
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("indexOf", true, &[s("xABC"), s("bc")], &mut b),
            Scalar::Int(2)
        );
        let mut b = StrBuf::new();
        assert_eq!(call("length", false, &[s("héllo")], &mut b), Scalar::Int(5));
        let mut b = StrBuf::new();
        assert_eq!(
            call(
                "substring",
                false,
                &[s("start.exe"), Scalar::Int(-4)],
                &mut b
            ),
            s(".exe")
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call(
                "substring",
                false,
                &[s("start.exe"), Scalar::Int(1), Scalar::Int(-4)],
                &mut b
            ),
            s("tart")
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call(
                "substring",
                false,
                &[s("abc"), Scalar::Int(5), Scalar::Int(1)],
                &mut b
            ),
            s("")
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call(
                "substring",
                false,
                &[s("héllo"), Scalar::Int(1), Scalar::Int(2)],
                &mut b
            ),
            s("é")
        );
    }

    #[test]
    fn concat_and_string_forms() {
        let mut b = StrBuf::new();
        assert_eq!(
            call(
                "concat",
                false,
                &[
                    s("pid "),
                    Scalar::Int(42),
                    s(" "),
                    Scalar::Bool(true),
                    Scalar::Float(1.5)
                ],
                &mut b
            ),
            s("pid 42 true1.5")
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("concat", false, &[s("a"), Scalar::Null], &mut b),
            Scalar::Null
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("string", false, &[Scalar::Bool(true)], &mut b),
            s("true")
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("string", false, &[Scalar::Float(1.0)], &mut b),
            s("1.0")
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("string", false, &[Scalar::Float(1e10)], &mut b),
            s("1.0E10")
        );
        let mut b = StrBuf::new();
        assert_eq!(
            call("string", false, &[Scalar::Float(2.5e-5)], &mut b),
            s("2.5E-5")
        );
        let long = "x".repeat(300);
        let mut b = StrBuf::new();
        let r = call("concat", false, &[s(&long), s("yz")], &mut b);
        assert_eq!(r, Scalar::Str(&format!("{long}yz")));
    }

    #[test]
    fn number_parsing() {
        let n = |v: &str, base| parse_number(v, base);
        assert_eq!(n("  1337  ", None), Some(Num::Int(1337)));
        assert_eq!(n("+1337", None), Some(Num::Int(1337)));
        assert_eq!(n("-1337", None), Some(Num::Int(-1337)));
        assert_eq!(n("42.5", None), Some(Num::Float(42.5)));
        assert_eq!(n("0xdeadbeef", None), Some(Num::Int(3_735_928_559)));
        assert_eq!(n("-0x10", None), Some(Num::Int(-16)));
        assert_eq!(n("deadbeef", Some(16)), Some(Num::Int(3_735_928_559)));
        assert_eq!(n("0xff", Some(16)), Some(Num::Int(255)));
        assert_eq!(n("101", Some(2)), Some(Num::Int(5)));
        assert_eq!(n("0x10", Some(10)), None);
        assert_eq!(n("", None), None);
        assert_eq!(n("abc", None), None);
        assert_eq!(n("--1", None), None);
        assert_eq!(n("1.5", Some(16)), None);
        assert_eq!(n("-9223372036854775808", None), Some(Num::Int(i64::MIN)));
        assert_eq!(n("0xffffffffffffffffff", None), None);
        assert_eq!(parse_num("inf"), None);
        assert_eq!(parse_num("1e3"), Some(Num::Float(1000.0)));
    }

    #[test]
    fn cidr() {
        let set = CidrSet::new(["10.0.0.0/8", "fe80::/10", "::1", "192.168.1.7"]).unwrap();
        assert!(set.contains("10.1.1.1"));
        assert!(!set.contains("11.1.1.1"));
        assert!(set.contains("fe80::1"));
        assert!(set.contains("::1"));
        assert!(!set.contains("::2"));
        assert!(set.contains("192.168.1.7") && !set.contains("192.168.1.8"));
        assert!(
            set.contains("::ffff:10.2.3.4"),
            "IPv4-mapped IPv6 matches IPv4 networks"
        );
        assert!(!set.contains("not an ip"));
        assert!(CidrSet::new(["0.0.0.0/0"]).unwrap().contains("8.8.8.8"));
        assert!(!CidrSet::new(["0.0.0.0/0"]).unwrap().contains("2001:db8::1"));
        assert!(CidrSet::new(["10.0.0.0/33"]).is_err());
        assert!(CidrSet::new(["10.0.0/8"]).is_err());
        assert!(CidrSet::new(["fe80::/129"]).is_err());
        assert!(CidrSet::new(["FE80::/10"]).unwrap().contains("fe80::abcd"));
    }
}
