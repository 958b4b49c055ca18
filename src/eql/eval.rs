//! Walks a compiled [`Node`] tree against one document. Never sees a field name or a pattern
//! string, and does not allocate: values are borrowed from the document, numbers and booleans
//! that must be compared as strings are formatted into stack buffers, and computed strings
//! (`concat`, `string`) use a stack buffer too unless they outgrow it.
//!
//! Multi-valued fields: a leaf holds when *any* value passes its test; a value expression over
//! several multi-valued inputs ranges over every combination ("there exists an element such
//! that…"), capped by [`COMBINATION_BUDGET`] per event so that two huge arrays cannot make one
//! event cost quadratic time (an exhausted leaf is null, i.e. no match).
//!
//! A leaf is null when it saw no non-null input (or only inputs its test could not compare);
//! under pushdown, [`Ctx::leaf`] turns that null into false before any `not` sees it.

use std::cell::Cell;
use std::cmp::Ordering;

use super::ast::CmpOp;
use super::compile::{Const, InSet, Node, Test, Tri, ValueExpr, MAX_ARGS};
use super::functions::{self, Num, StrBuf, Ty};
use crate::document::{Document, Scalar, Values};

/// Most value combinations evaluated for one event across all computed leaves.
pub(crate) const COMBINATION_BUDGET: u32 = 100_000;

/// Per-evaluation state: the missing-field policy and the combination budget.
pub(crate) struct Ctx {
    pushdown: bool,
    budget: Cell<u32>,
}

impl Ctx {
    pub(crate) fn new(pushdown: bool) -> Ctx {
        Ctx {
            pushdown,
            budget: Cell::new(COMBINATION_BUDGET),
        }
    }

    #[inline]
    fn leaf(&self, t: Tri) -> Tri {
        if self.pushdown && t == Tri::Null {
            Tri::False
        } else {
            t
        }
    }

    /// Spends one combination; false once the budget is gone.
    #[inline]
    fn tick(&self) -> bool {
        let b = self.budget.get();
        if b == 0 {
            return false;
        }
        self.budget.set(b - 1);
        true
    }

    fn exhausted(&self) -> bool {
        self.budget.get() == 0
    }
}

impl Node {
    pub(crate) fn eval<D: Document + ?Sized>(&self, doc: &D, cx: &Ctx) -> Tri {
        match self {
            Node::Const(t) => *t,
            Node::And(nodes) => {
                let mut r = Tri::True;
                for n in nodes.iter() {
                    match n.eval(doc, cx) {
                        Tri::False => return Tri::False,
                        Tri::Null => r = Tri::Null,
                        Tri::True => {}
                    }
                }
                r
            }
            Node::Or(nodes) => {
                let mut r = Tri::False;
                for n in nodes.iter() {
                    match n.eval(doc, cx) {
                        Tri::True => return Tri::True,
                        Tri::Null => r = Tri::Null,
                        Tri::False => {}
                    }
                }
                r
            }
            Node::Not(n) => n.eval(doc, cx).not(),
            Node::Field { field, test } => cx.leaf(field_test(doc.values(field), test)),
            Node::Exists(field) => Tri::from_bool(doc.values(field).any(|v| v != Scalar::Null)),
            Node::Value { expr, test } => {
                let mut hit = false;
                let mut null = false;
                expr.each(doc, cx, &mut |v| match test.test(v) {
                    Tri::True => {
                        hit = true;
                        true
                    }
                    Tri::Null => {
                        null = true;
                        false
                    }
                    Tri::False => false,
                });
                cx.leaf(if hit {
                    Tri::True
                } else if null || cx.exhausted() {
                    Tri::Null
                } else {
                    Tri::False
                })
            }
            Node::ValueExists(expr) => {
                let mut found = false;
                expr.each(doc, cx, &mut |v| {
                    found = v != Scalar::Null;
                    found
                });
                Tri::from_bool(found)
            }
        }
    }
}

/// Any non-null value of the field passes `test`; null when there is none, or when none
/// passed and some could not be compared.
#[inline]
fn field_test(values: Values<'_>, test: &Test) -> Tri {
    let mut seen = false;
    let mut null = false;
    let hit = values.any(|v| {
        if v == Scalar::Null {
            return false;
        }
        seen = true;
        match test.test(v) {
            Tri::True => true,
            Tri::False => false,
            Tri::Null => {
                null = true;
                false
            }
        }
    });
    if hit {
        Tri::True
    } else if null || !seen {
        Tri::Null
    } else {
        Tri::False
    }
}

impl Test {
    /// One value against the constants; null for a null value or one the test cannot compare.
    #[inline]
    pub(crate) fn test(&self, v: Scalar<'_>) -> Tri {
        match self {
            Test::In(set) => set.test(v),
            Test::Cmp(op, c) => compare(v, *op, c),
            Test::Wild(w) => with_str(v, |s| w.is_match(s)),
            Test::Regex(r) => with_str(v, |s| r.is_match(s)),
            Test::Cidr(set) => match v {
                Scalar::Null => Tri::Null,
                Scalar::Str(s) => Tri::from_bool(set.contains(s)),
                _ => Tri::False,
            },
            Test::Truthy => match v {
                Scalar::Bool(b) => Tri::from_bool(b),
                Scalar::Str("true") => Tri::True,
                Scalar::Str("false") => Tri::False,
                _ => Tri::Null,
            },
        }
    }
}

/// Runs `f` on the value's string form (a keyword mapping's view of numbers and booleans).
#[inline]
fn with_str(v: Scalar<'_>, f: impl FnOnce(&str) -> bool) -> Tri {
    match v {
        Scalar::Str(s) => Tri::from_bool(f(s)),
        Scalar::Null => Tri::Null,
        other => {
            let mut buf = StrBuf::new();
            functions::write_scalar(other, &mut buf);
            Tri::from_bool(f(buf.as_str()))
        }
    }
}

impl InSet {
    #[inline]
    pub(crate) fn test(&self, v: Scalar<'_>) -> Tri {
        Tri::from_bool(match v {
            Scalar::Null => return Tri::Null,
            Scalar::Str(s) => {
                self.strs.contains(s)
                    || (!self.nums.is_empty()
                        && functions::parse_num(s).is_some_and(|n| num_in(n, &self.nums)))
                    || (self.bools[1] && s == "true")
                    || (self.bools[0] && s == "false")
            }
            Scalar::Int(i) => {
                num_in(Num::Int(i), &self.nums) || num_in(Num::Int(i), &self.str_nums)
            }
            Scalar::Float(f) => {
                num_in(Num::Float(f), &self.nums) || num_in(Num::Float(f), &self.str_nums)
            }
            Scalar::Bool(b) => self.bools[usize::from(b)] || self.str_bools[usize::from(b)],
        })
    }
}

fn num_in(n: Num, set: &[Num]) -> bool {
    set.iter().any(|&m| num_cmp(n, m) == Some(Ordering::Equal))
}

fn num_cmp(a: Num, b: Num) -> Option<Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(&y)),
        _ => a.as_f64().partial_cmp(&b.as_f64()),
    }
}

/// `v OP c` for an ordering operator (or `==`/`!=`, used by constant folding). Strings
/// compare by UTF-8 bytes, i.e. by code point, case-sensitively — what a range query on a
/// keyword does.
fn compare(v: Scalar<'_>, op: CmpOp, c: &Const) -> Tri {
    let ord = match c {
        Const::Int(_) | Const::Float(_) => {
            let want = match c {
                Const::Int(i) => Num::Int(*i),
                Const::Float(f) => Num::Float(*f),
                _ => return Tri::Null,
            };
            match functions::to_num(v) {
                Some(n) => num_cmp(n, want),
                None => None,
            }
        }
        Const::Str(s) => match v {
            Scalar::Null => None,
            Scalar::Str(x) => Some(x.as_bytes().cmp(s.as_bytes())),
            other => {
                let mut buf = StrBuf::new();
                functions::write_scalar(other, &mut buf);
                Some(buf.as_str().as_bytes().cmp(s.as_bytes()))
            }
        },
        Const::Bool(b) => match v {
            Scalar::Bool(x) => Some(x.cmp(b)),
            _ => None,
        },
        Const::Null => None,
    };
    let Some(ord) = ord else {
        return Tri::Null;
    };
    Tri::from_bool(match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    })
}

/// A value converted to what a parameter of type `want` expects; strings formed in `buf`.
fn coerce<'a>(v: Scalar<'a>, want: Ty, buf: &'a mut StrBuf) -> Scalar<'a> {
    match (want, v) {
        (_, Scalar::Null) | (Ty::Any | Ty::Null, _) => v,
        (Ty::Str, Scalar::Str(_)) => v,
        (Ty::Str, other) => {
            functions::write_scalar(other, buf);
            Scalar::Str(buf.as_str())
        }
        (Ty::Num, other) => functions::to_num(other).map_or(Scalar::Null, Num::to_scalar),
        (Ty::Bool, Scalar::Bool(_)) => v,
        (Ty::Bool, Scalar::Str("true")) => Scalar::Bool(true),
        (Ty::Bool, Scalar::Str("false")) => Scalar::Bool(false),
        (Ty::Bool, _) => Scalar::Null,
    }
}

/// Callback for each value an expression can take; returns true to stop.
type Each<'k> = dyn FnMut(Scalar<'_>) -> bool + 'k;

impl ValueExpr {
    /// Calls `k` with every value the expression takes on this document (once with null when
    /// it has none); returns true when `k` asked to stop or the budget ran out.
    fn each<D: Document + ?Sized>(&self, doc: &D, cx: &Ctx, k: &mut Each<'_>) -> bool {
        match self {
            ValueExpr::Const(c) => k(c.scalar()),
            ValueExpr::Field(f) => {
                let mut seen = false;
                let stop = doc.values(f).any(|v| {
                    if v == Scalar::Null {
                        return false;
                    }
                    seen = true;
                    !cx.tick() || k(v)
                });
                if seen {
                    stop
                } else {
                    k(Scalar::Null)
                }
            }
            ValueExpr::Arith(op, a, b) => a.each(doc, cx, &mut |x| {
                b.each(doc, cx, &mut |y| {
                    !cx.tick() || k(functions::arith(*op, x, y))
                })
            }),
            ValueExpr::Neg(a) => a.each(doc, cx, &mut |x| k(functions::negate(x))),
            ValueExpr::Cidr { ip, set } => ip.each(doc, cx, &mut |x| {
                k(match x {
                    Scalar::Null => Scalar::Null,
                    Scalar::Str(s) => Scalar::Bool(set.contains(s)),
                    _ => Scalar::Bool(false),
                })
            }),
            ValueExpr::Pred(n) => k(match n.eval(doc, cx) {
                Tri::True => Scalar::Bool(true),
                Tri::False => Scalar::Bool(false),
                Tri::Null => Scalar::Null,
            }),
            ValueExpr::Call {
                def,
                insensitive,
                args,
            } => {
                let call = Call {
                    def,
                    insensitive: *insensitive,
                    args,
                };
                call.product(0, [Scalar::Null; MAX_ARGS], doc, cx, k)
            }
        }
    }
}

struct Call<'p> {
    def: &'p functions::FunctionDef,
    insensitive: bool,
    args: &'p [ValueExpr],
}

impl Call<'_> {
    /// Every combination of argument values, each coerced to its parameter's type.
    fn product<D: Document + ?Sized>(
        &self,
        i: usize,
        acc: [Scalar<'_>; MAX_ARGS],
        doc: &D,
        cx: &Ctx,
        k: &mut Each<'_>,
    ) -> bool {
        let Some(arg) = self.args.get(i) else {
            if !cx.tick() {
                return true;
            }
            let n = i.min(MAX_ARGS);
            if acc[..n].contains(&Scalar::Null) {
                return k(Scalar::Null);
            }
            let mut buf = StrBuf::new();
            let r = (self.def.eval)(&acc[..n], self.insensitive, &mut buf);
            return k(r);
        };
        let want = self.def.param(i).map_or(Ty::Any, |p| p.ty);
        arg.each(doc, cx, &mut |v| {
            let mut buf = StrBuf::new();
            let v = coerce(v, want, &mut buf);
            let mut next = [Scalar::Null; MAX_ARGS];
            next[..i].copy_from_slice(&acc[..i]);
            if let Some(slot) = next.get_mut(i) {
                *slot = v;
            }
            self.product(i + 1, next, doc, cx, k)
        })
    }
}
