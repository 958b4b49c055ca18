//! `ast::Query` → [`Program`]: names resolved, types checked, constants folded, matchers built.
//!
//! Everything that can be decided from the query alone is decided here, once: field paths
//! become [`FieldPath`]s, literal lists become hash sets, wildcard lists become one
//! [`WildcardSet`], Lucene regexes are translated, CIDR lists parsed, constant sub-expressions
//! evaluated, and a literal of the wrong type for a field whose ECS type is certain is an
//! [`ErrorKind::Invalid`](super::ErrorKind::Invalid) error (Elasticsearch rejects the same
//! query at verification). What is left is a small tree ([`Node`]) that `eval.rs` walks.
//!
//! Lowering rules worth knowing:
//! - `f != x` is `not (f == x)` and `f not in (..)` is `not (f in (..))`, so on a multi-valued
//!   field they hold only when no value matches.
//! - `f == null` / `f != null` test existence (an empty array is absent); `null == null` is true.
//! - Every comparison, match, `in`, boolean function call and bare boolean field is a *leaf*.
//!   Under [`MissingPolicy::EsPushdown`] a leaf whose input is null or missing is false, before
//!   any `not` applies; under [`MissingPolicy::Kleene`] it is null and logic is three-valued.
//! - `and`/`or` chains are flattened and their operands ordered cheapest first (both logics
//!   are commutative, and nothing has side effects).

use regex::Regex;

use super::ast::{
    ArithOp, Category, CmpOp, EventQuery, Expr, ExprKind, Literal, MatchOp, Pipe, Query, QueryBody,
    Span,
};
use super::error::Error;
use super::eval::Ctx;
use super::functions::{self, CidrSet, FunctionDef, Num, StrBuf, Ty};
use super::lucene;
use super::prefilter::{self, Atom, AtomKind};
use super::wildcard::{Anchor, StrSet, WildcardSet};
use super::{MissingPolicy, Options};
use crate::document::{Document, FieldPath, Scalar};

/// How deeply expressions may nest before compilation gives up (the parser has its own limit;
/// this one protects the recursive lowering and evaluation if an AST is built by hand).
const MAX_DEPTH: u32 = 200;
/// Most arguments a non-CIDR function call may take (they are iterated on the stack).
pub(crate) const MAX_ARGS: usize = 16;

/// A compiled single-event query, evaluated many times.
#[derive(Debug)]
pub struct Program {
    category: Option<Box<str>>,
    category_field: FieldPath,
    fields: Vec<FieldPath>,
    root: Node,
    policy: MissingPolicy,
}

/// Compiles a parsed single-event query without pipes. Sequences, samples and pipes are
/// stateful: [`super::query::compile_query`] compiles every shape.
pub fn compile(query: &Query, options: &Options) -> Result<Program, Error> {
    let event = match &query.body {
        QueryBody::Event(e) => e,
        QueryBody::Sequence(s) => {
            return Err(Error::unsupported(
                s.span,
                "a sequence is stateful: compile it with eql::compile_query",
            ))
        }
        QueryBody::Sample(s) => {
            return Err(Error::unsupported(
                s.span,
                "a sample is stateful: compile it with eql::compile_query",
            ))
        }
    };
    if let Some(pipe) = query.pipes.first() {
        let (Pipe::Head(_, span) | Pipe::Tail(_, span)) = *pipe;
        return Err(Error::unsupported(
            span,
            "pipes (| head, | tail) are stateful: compile the query with eql::compile_query",
        ));
    }
    compile_event(event, options)
}

/// Compiles one `CATEGORY where CONDITION` (a whole query, or one item of a sequence or sample).
pub(crate) fn compile_event(event: &EventQuery, options: &Options) -> Result<Program, Error> {
    let mut c = Compiler {
        pushdown: options.missing == MissingPolicy::EsPushdown,
        fields: Vec::new(),
        depth: 0,
    };
    let root = c.cond(&event.condition)?;
    let category = match &event.category {
        Category::Any(_) => None,
        Category::Named(name, _) => Some(name.as_str().into()),
    };
    Ok(Program {
        category,
        category_field: FieldPath::new("event.category"),
        fields: c.fields,
        root,
        policy: options.missing,
    })
}

impl Program {
    /// The event category the query selects; `None` for `any`.
    pub fn category(&self) -> Option<&str> {
        self.category.as_deref()
    }

    /// Every field the query reads (for coverage reports), in order of first use.
    pub fn fields(&self) -> &[FieldPath] {
        &self.fields
    }

    pub fn missing_policy(&self) -> MissingPolicy {
        self.policy
    }

    /// The values `field` must take for the condition to hold, when the query implies them:
    /// `process.name in ("sh", "bash") and ...`, `process.name : "bash" or process.name ==
    /// "sh"`. A rule index can skip this program for events whose field has none of these
    /// values (compared by string form, ASCII-folded when [`Requirement::insensitive`]).
    /// `None` when the query does not pin the field to a literal list.
    pub fn requirement(&self, field: &str) -> Option<Requirement> {
        let (values, insensitive) = requirement(&self.root, field)?;
        let mut values: Vec<String> = values.into_iter().map(str::to_owned).collect();
        if insensitive {
            values.iter_mut().for_each(|v| v.make_ascii_lowercase());
        }
        values.sort();
        values.dedup();
        Some(Requirement {
            values,
            insensitive,
        })
    }

    /// Like [`Program::requirement`], also taking wildcard patterns with a literal start
    /// (`process.name : ("python*", "perl*")`, `like "php?.?"`): the values `field` must equal
    /// or start with for the condition to hold. `None` when the query does not pin the field.
    pub fn literals(&self, field: &str) -> Option<Literals> {
        let mut lits = literals(&self.root, field)?;
        for v in lits.exact.iter_mut().chain(lits.prefixes.iter_mut()) {
            if lits.insensitive {
                v.make_ascii_lowercase();
            }
        }
        lits.exact.sort();
        lits.exact.dedup();
        lits.prefixes.sort();
        lits.prefixes.dedup();
        Some(lits)
    }

    /// Alternatives of literal lists: every event this program matches holds a literal of
    /// each list of some alternative (see [`super::prefilter`]).
    pub fn atom_alternatives(
        &self,
        cost: &dyn Fn(&str, AtomKind) -> Option<u32>,
    ) -> Vec<Vec<(u32, Vec<Atom<'_>>)>> {
        prefilter::alternatives(&self.root, cost)
    }

    /// Fields that must be present (non-null) for the condition to hold: a positive test of a
    /// field is false on an absent field, an `and` needs what any operand needs, an `or` what
    /// every operand needs; under `not` nothing is required. A coverage report uses this to
    /// tell a rule that can never match a source's events from one that merely reads a field
    /// the source never fills (in a negation, say). Sorted, each once.
    pub fn required_fields(&self) -> Vec<&str> {
        let mut out = required_fields(&self.root);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Category check and condition: some `event.category` value equals the query's category
    /// (case-sensitive), or the query is `any where`.
    #[inline]
    pub fn matches<D: Document + ?Sized>(&self, doc: &D) -> bool {
        if let Some(cat) = &self.category {
            let cat: &str = cat;
            if !doc
                .values(&self.category_field)
                .any(|v| v == Scalar::Str(cat))
            {
                return false;
            }
        }
        self.matches_condition(doc)
    }

    /// The condition alone, for callers that dispatched on category already.
    #[inline]
    pub fn matches_condition<D: Document + ?Sized>(&self, doc: &D) -> bool {
        self.evaluate(doc) == Some(true)
    }

    /// The condition's three-valued result: `None` is null (no match). Under
    /// [`MissingPolicy::EsPushdown`] only constant expressions can still be null here.
    pub fn evaluate<D: Document + ?Sized>(&self, doc: &D) -> Option<bool> {
        let cx = Ctx::new(self.policy == MissingPolicy::EsPushdown);
        self.root.eval(doc, &cx).to_option()
    }
}

/// Values a field must take for a [`Program`] to match: one of `exact`, or a string starting
/// with one of `prefixes` (ASCII-lowercased when `insensitive`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Literals {
    pub exact: Vec<String>,
    pub prefixes: Vec<String>,
    pub insensitive: bool,
}

/// Literal values a field must take for a [`Program`] to match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    /// Sorted; ASCII-lowercased when `insensitive`.
    pub values: Vec<String>,
    /// Some of the tests fold ASCII case, so an index must too.
    pub insensitive: bool,
}

fn literals(node: &Node, field: &str) -> Option<Literals> {
    match node {
        Node::Field { field: f, test } if f.as_str() == field => match test {
            Test::In(set) if set.nums.is_empty() && set.bools == [false; 2] => Some(Literals {
                exact: set.strs.iter().map(str::to_owned).collect(),
                prefixes: Vec::new(),
                insensitive: set.strs.insensitive(),
            }),
            Test::Wild(w) => {
                // Every pattern must pin the start of the value: no substring anchors.
                let mut lits = Literals {
                    exact: Vec::new(),
                    prefixes: Vec::new(),
                    insensitive: w.insensitive(),
                };
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                for anchor in w.anchors()? {
                    match anchor {
                        Anchor::Exact(b) => lits.exact.push(text(b)),
                        Anchor::Prefix(b) => lits.prefixes.push(text(b)),
                        Anchor::Contains(_) => return None,
                    }
                }
                Some(lits)
            }
            _ => None,
        },
        Node::And(nodes) => nodes.iter().find_map(|n| literals(n, field)),
        Node::Or(nodes) => {
            let mut all = Literals {
                exact: Vec::new(),
                prefixes: Vec::new(),
                insensitive: false,
            };
            for n in nodes.iter() {
                let l = literals(n, field)?;
                all.exact.extend(l.exact);
                all.prefixes.extend(l.prefixes);
                all.insensitive |= l.insensitive;
            }
            Some(all)
        }
        _ => None,
    }
}

fn required_fields(node: &Node) -> Vec<&str> {
    match node {
        Node::Field { field, .. } | Node::Exists(field) => vec![field.as_str()],
        Node::And(nodes) => nodes.iter().flat_map(required_fields).collect(),
        Node::Or(nodes) => {
            let mut iter = nodes.iter().map(required_fields);
            let Some(mut common) = iter.next() else {
                return Vec::new();
            };
            for other in iter {
                common.retain(|f| other.contains(f));
            }
            common
        }
        Node::Const(_) | Node::Not(_) | Node::Value { .. } | Node::ValueExists(_) => Vec::new(),
    }
}

/// The literal list `field` must be in for `node` to be true: one operand of an `and`
/// suffices; every operand of an `or` must pin the field, and their lists are united.
fn requirement<'n>(node: &'n Node, field: &str) -> Option<(Vec<&'n str>, bool)> {
    match node {
        Node::Field { field: f, test } if f.as_str() == field => {
            let set = match test {
                Test::In(set) if set.nums.is_empty() && set.bools == [false; 2] => &set.strs,
                Test::Wild(w) => w.as_exact()?,
                _ => return None,
            };
            Some((set.iter().collect(), set.insensitive()))
        }
        Node::And(nodes) => nodes.iter().find_map(|n| requirement(n, field)),
        Node::Or(nodes) => {
            let mut all = Vec::new();
            let mut insensitive = false;
            for n in nodes.iter() {
                let (values, ci) = requirement(n, field)?;
                all.extend(values);
                insensitive |= ci;
            }
            Some((all, insensitive))
        }
        _ => None,
    }
}

/// A three-valued truth value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tri {
    False,
    True,
    Null,
}

impl Tri {
    pub(crate) fn from_bool(b: bool) -> Tri {
        if b {
            Tri::True
        } else {
            Tri::False
        }
    }

    pub(crate) fn not(self) -> Tri {
        match self {
            Tri::False => Tri::True,
            Tri::True => Tri::False,
            Tri::Null => Tri::Null,
        }
    }

    pub(crate) fn to_option(self) -> Option<bool> {
        match self {
            Tri::False => Some(false),
            Tri::True => Some(true),
            Tri::Null => None,
        }
    }
}

/// A folded constant.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Const {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(Box<str>),
}

impl Const {
    pub(crate) fn scalar(&self) -> Scalar<'_> {
        match self {
            Const::Null => Scalar::Null,
            Const::Bool(b) => Scalar::Bool(*b),
            Const::Int(i) => Scalar::Int(*i),
            Const::Float(f) => Scalar::Float(*f),
            Const::Str(s) => Scalar::Str(s),
        }
    }

    fn from_scalar(v: Scalar<'_>) -> Const {
        match v {
            Scalar::Null => Const::Null,
            Scalar::Bool(b) => Const::Bool(b),
            Scalar::Int(i) => Const::Int(i),
            Scalar::Float(f) => Const::Float(f),
            Scalar::Str(s) => Const::Str(s.into()),
        }
    }

    fn from_tri(t: Tri) -> Const {
        match t {
            Tri::Null => Const::Null,
            Tri::True => Const::Bool(true),
            Tri::False => Const::Bool(false),
        }
    }

    fn ty(&self) -> Ty {
        match self {
            Const::Null => Ty::Null,
            Const::Bool(_) => Ty::Bool,
            Const::Int(_) | Const::Float(_) => Ty::Num,
            Const::Str(_) => Ty::Str,
        }
    }

    /// `string "2"`, `number 2`, `boolean true`, `null`.
    fn describe(&self) -> String {
        match self {
            Const::Null => "null".into(),
            Const::Bool(b) => format!("boolean {b}"),
            Const::Int(i) => format!("number {i}"),
            Const::Float(f) => format!("number {f:?}"),
            Const::Str(s) => format!("string {s:?}"),
        }
    }
}

/// A boolean expression of the compiled program.
#[derive(Debug)]
pub(crate) enum Node {
    Const(Tri),
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    /// Some value of the field passes the test.
    Field {
        field: FieldPath,
        test: Test,
    },
    /// The field has a non-null value (`f != null`).
    Exists(FieldPath),
    /// Some value of the computed expression passes the test.
    Value {
        expr: ValueExpr,
        test: Test,
    },
    /// The computed expression has a non-null value.
    ValueExists(ValueExpr),
}

/// A test of one value against constants.
#[derive(Debug)]
pub(crate) enum Test {
    /// `==`, `in`, `in~`.
    In(Box<InSet>),
    /// `value OP constant`, ordering only (`==`/`!=` go through `In`).
    Cmp(CmpOp, Const),
    /// `:`, `like`, `like~`.
    Wild(Box<WildcardSet>),
    /// `regex`, `regex~`.
    Regex(Regex),
    /// `cidrMatch(field, ...)`.
    Cidr(CidrSet),
    /// A bare boolean used as a condition.
    Truthy,
}

/// Membership in a list of literals, with the coercions a mapping would apply: a string
/// literal matches a number whose string form it is, a numeric literal matches a string that
/// parses to it, `true`/`false` literals match the strings `"true"`/`"false"`.
#[derive(Debug)]
pub(crate) struct InSet {
    pub(crate) strs: StrSet,
    /// Numeric literals.
    pub(crate) nums: Vec<Num>,
    /// String literals that are numbers (integers only in canonical form, `"0"` not `"00"`).
    pub(crate) str_nums: Vec<Num>,
    /// Boolean literals `[false, true]`.
    pub(crate) bools: [bool; 2],
    /// String literals `"false"`/`"true"` (folded under `in~`).
    pub(crate) str_bools: [bool; 2],
}

impl InSet {
    fn new<'c>(items: impl IntoIterator<Item = &'c Const>, insensitive: bool) -> InSet {
        let mut strs = Vec::new();
        let mut set = InSet {
            strs: StrSet::new([], false),
            nums: Vec::new(),
            str_nums: Vec::new(),
            bools: [false; 2],
            str_bools: [false; 2],
        };
        for c in items {
            match c {
                Const::Null => {}
                Const::Bool(b) => set.bools[usize::from(*b)] = true,
                Const::Int(i) => set.nums.push(Num::Int(*i)),
                Const::Float(f) => set.nums.push(Num::Float(*f)),
                Const::Str(s) => {
                    strs.push(&**s);
                    match functions::parse_num(s) {
                        Some(Num::Int(i)) if i.to_string() == **s => set.str_nums.push(Num::Int(i)),
                        Some(Num::Float(f)) => set.str_nums.push(Num::Float(f)),
                        _ => {}
                    }
                    let eq = |w: &str| {
                        if insensitive {
                            s.eq_ignore_ascii_case(w)
                        } else {
                            **s == *w
                        }
                    };
                    if eq("false") {
                        set.str_bools[0] = true;
                    }
                    if eq("true") {
                        set.str_bools[1] = true;
                    }
                }
            }
        }
        set.strs = StrSet::new(strs, insensitive);
        set
    }
}

/// A value-producing expression that reads the document.
#[derive(Debug)]
pub(crate) enum ValueExpr {
    Const(Const),
    Field(FieldPath),
    Arith(ArithOp, Box<ValueExpr>, Box<ValueExpr>),
    Neg(Box<ValueExpr>),
    Call {
        def: &'static FunctionDef,
        insensitive: bool,
        args: Box<[ValueExpr]>,
    },
    /// `cidrMatch` with its networks parsed once.
    Cidr {
        ip: Box<ValueExpr>,
        set: CidrSet,
    },
    /// A boolean expression used as a value (`(a == "x") == true`).
    Pred(Box<Node>),
}

/// What lowering an expression gives.
enum Low {
    Const(Const),
    Value {
        expr: ValueExpr,
        ty: Ty,
        /// How errors name it: the field path, or `length(...)`.
        desc: String,
    },
    Pred(Node),
}

impl Low {
    fn ty(&self) -> Ty {
        match self {
            Low::Const(c) => c.ty(),
            Low::Value { ty, .. } => *ty,
            Low::Pred(_) => Ty::Bool,
        }
    }

    fn describe(&self) -> String {
        match self {
            Low::Const(c) => c.describe(),
            Low::Value { desc, .. } => desc.clone(),
            Low::Pred(_) => "a condition".into(),
        }
    }

    fn into_value(self) -> ValueExpr {
        match self {
            Low::Const(c) => ValueExpr::Const(c),
            Low::Value { expr, .. } => expr,
            Low::Pred(n) => match n {
                Node::Const(t) => ValueExpr::Const(Const::from_tri(t)),
                n => ValueExpr::Pred(Box::new(n)),
            },
        }
    }
}

struct Compiler {
    pushdown: bool,
    fields: Vec<FieldPath>,
    depth: u32,
}

impl Compiler {
    /// A constant leaf result: null becomes false under pushdown.
    fn leaf_const(&self, t: Tri) -> Node {
        Node::Const(if self.pushdown && t == Tri::Null {
            Tri::False
        } else {
            t
        })
    }

    fn cond(&mut self, e: &Expr) -> Result<Node, Error> {
        let low = self.low(e)?;
        self.as_condition(low, e.span)
    }

    /// A lowered expression used as a condition.
    fn as_condition(&mut self, low: Low, span: Span) -> Result<Node, Error> {
        match low {
            Low::Pred(n) => Ok(n),
            Low::Const(Const::Bool(b)) => Ok(Node::Const(Tri::from_bool(b))),
            Low::Const(Const::Null) => Ok(self.leaf_const(Tri::Null)),
            Low::Const(c) => Err(Error::invalid(
                span,
                format!("a condition must be a boolean; found {}", c.describe()),
            )),
            Low::Value { expr, ty, desc } => {
                if !ty.fits(Ty::Bool) {
                    return Err(Error::invalid(
                        span,
                        format!("{desc} is {}, not a condition", ty.describe()),
                    ));
                }
                Ok(match expr {
                    ValueExpr::Cidr { ip, set } => match *ip {
                        ValueExpr::Field(field) => Node::Field {
                            field,
                            test: Test::Cidr(set),
                        },
                        ip => Node::Value {
                            expr: ValueExpr::Cidr {
                                ip: Box::new(ip),
                                set,
                            },
                            test: Test::Truthy,
                        },
                    },
                    expr => leaf(expr, Test::Truthy),
                })
            }
        }
    }

    fn low(&mut self, e: &Expr) -> Result<Low, Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(Error::invalid(e.span, "expression nested too deeply"));
        }
        let r = self.low_inner(e);
        self.depth -= 1;
        r
    }

    fn low_inner(&mut self, e: &Expr) -> Result<Low, Error> {
        Ok(match &e.kind {
            ExprKind::Literal(l) => Low::Const(match l {
                Literal::Null => Const::Null,
                Literal::Bool(b) => Const::Bool(*b),
                Literal::Int(i) => Const::Int(*i),
                Literal::Float(f) => Const::Float(*f),
                Literal::Str(s) => Const::Str(s.as_str().into()),
            }),
            ExprKind::Field(f) => {
                let path = FieldPath::new(&f.path);
                if !self.fields.contains(&path) {
                    self.fields.push(path.clone());
                }
                Low::Value {
                    expr: ValueExpr::Field(path),
                    ty: field_type(&f.path),
                    desc: f.path.clone(),
                }
            }
            ExprKind::Not(x) => Low::Pred(match self.cond(x)? {
                Node::Const(t) => Node::Const(t.not()),
                Node::Not(inner) => *inner,
                n => Node::Not(Box::new(n)),
            }),
            ExprKind::And(..) | ExprKind::Or(..) => Low::Pred(self.logic(e)?),
            ExprKind::Compare(op, a, b) => Low::Pred(self.compare(*op, a, b, e.span)?),
            ExprKind::Match {
                op,
                value,
                patterns,
            } => Low::Pred(self.matching(*op, value, patterns, e.span)?),
            ExprKind::In {
                value,
                list,
                insensitive,
                negated,
            } => {
                let n = self.membership(value, list, *insensitive)?;
                Low::Pred(if *negated {
                    match n {
                        Node::Const(t) => Node::Const(t.not()),
                        n => Node::Not(Box::new(n)),
                    }
                } else {
                    n
                })
            }
            ExprKind::Arith(op, a, b) => self.arith(*op, a, b)?,
            ExprKind::Neg(a) => {
                let x = self.low(a)?;
                self.expect_num(&x, a.span, "unary '-'")?;
                match x {
                    Low::Const(c) => Low::Const(Const::from_scalar(functions::negate(c.scalar()))),
                    x => Low::Value {
                        desc: format!("-{}", x.describe()),
                        expr: ValueExpr::Neg(Box::new(x.into_value())),
                        ty: Ty::Num,
                    },
                }
            }
            ExprKind::Call {
                name,
                insensitive,
                args,
                name_span,
            } => self.call(name, *insensitive, args, *name_span, e.span)?,
        })
    }

    /// Flattens an `and`/`or` chain, folds constants, orders operands cheapest first.
    fn logic(&mut self, e: &Expr) -> Result<Node, Error> {
        let is_and = matches!(e.kind, ExprKind::And(..));
        let mut operands = Vec::new();
        let mut stack = vec![e];
        while let Some(x) = stack.pop() {
            match (&x.kind, is_and) {
                (ExprKind::And(a, b), true) | (ExprKind::Or(a, b), false) => {
                    stack.push(b);
                    stack.push(a);
                }
                _ => operands.push(x),
            }
        }
        let (absorbing, neutral) = if is_and {
            (Tri::False, Tri::True)
        } else {
            (Tri::True, Tri::False)
        };
        let mut nodes = Vec::with_capacity(operands.len());
        for x in operands {
            match self.cond(x)? {
                Node::Const(t) if t == absorbing => return Ok(Node::Const(t)),
                Node::Const(t) if t == neutral => {}
                n => nodes.push(n),
            }
        }
        nodes.sort_by_key(cost);
        Ok(match nodes.len() {
            0 => Node::Const(neutral),
            1 => nodes.pop().unwrap_or(Node::Const(neutral)),
            _ if is_and => Node::And(nodes.into_boxed_slice()),
            _ => Node::Or(nodes.into_boxed_slice()),
        })
    }

    fn compare(&mut self, op: CmpOp, a: &Expr, b: &Expr, span: Span) -> Result<Node, Error> {
        let la = self.low(a)?;
        let lb = self.low(b)?;
        // Put the constant on the right.
        let (value, constant, op, const_span) = match (la, lb) {
            (Low::Const(x), Low::Const(y)) => {
                let ty_ok = x.ty().fits(y.ty()) || y.ty().fits(x.ty());
                if !ty_ok {
                    return Err(Error::invalid(
                        span,
                        format!("cannot compare {} with {}", x.describe(), y.describe()),
                    ));
                }
                if matches!(op, CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge)
                    && (x.ty() == Ty::Bool || y.ty() == Ty::Bool)
                {
                    return Err(Error::invalid(span, "booleans cannot be ordered"));
                }
                let t = match (&x, &y) {
                    (Const::Null, _) | (_, Const::Null) => match op {
                        CmpOp::Eq => Tri::from_bool(x == y),
                        CmpOp::Ne => Tri::from_bool(x != y),
                        _ => Tri::Null,
                    },
                    _ => compare_test(op, &y).test(x.scalar()),
                };
                return Ok(self.leaf_const(t));
            }
            (Low::Const(c), v) => (v, c, flip(op), a.span),
            (v, Low::Const(c)) => (v, c, op, b.span),
            (x, y) => {
                return Err(Error::invalid(
                    span,
                    format!(
                        "cannot compare {} with {}: one side must be a constant",
                        x.describe(),
                        y.describe()
                    ),
                ))
            }
        };
        if constant == Const::Null {
            let exists = match value.into_value() {
                ValueExpr::Field(f) => Node::Exists(f),
                v => Node::ValueExists(v),
            };
            return Ok(match op {
                CmpOp::Ne => exists,
                CmpOp::Eq => Node::Not(Box::new(exists)),
                _ => self.leaf_const(Tri::Null),
            });
        }
        self.check_type(&value, &constant, const_span)?;
        let ordering = !matches!(op, CmpOp::Eq | CmpOp::Ne);
        if ordering && constant.ty() == Ty::Bool {
            return Err(Error::invalid(span, "booleans cannot be ordered"));
        }
        let node = leaf(value.into_value(), compare_test(op, &constant));
        Ok(if op == CmpOp::Ne {
            Node::Not(Box::new(node))
        } else {
            node
        })
    }

    /// A literal of the wrong type for a value whose type is certain.
    fn check_type(&self, value: &Low, constant: &Const, span: Span) -> Result<(), Error> {
        let ty = value.ty();
        if constant.ty().fits(ty) || ty.fits(constant.ty()) {
            return Ok(());
        }
        Err(Error::invalid(
            span,
            format!(
                "{} is {}; found {}",
                value.describe(),
                ty.describe(),
                constant.describe()
            ),
        ))
    }

    fn matching(
        &mut self,
        op: MatchOp,
        value: &Expr,
        patterns: &[Expr],
        span: Span,
    ) -> Result<Node, Error> {
        let v = self.low(value)?;
        if !v.ty().fits(Ty::Str) {
            return Err(Error::invalid(
                value.span,
                format!(
                    "{} is {}; `{}` needs a string",
                    v.describe(),
                    v.ty().describe(),
                    op.as_str()
                ),
            ));
        }
        let mut pats: Vec<&str> = Vec::with_capacity(patterns.len());
        let mut owned: Vec<Box<str>> = Vec::with_capacity(patterns.len());
        for p in patterns {
            match self.low(p)? {
                Low::Const(Const::Str(s)) => owned.push(s),
                other => {
                    return Err(Error::invalid(
                        p.span,
                        format!(
                            "`{}` patterns must be string constants; found {}",
                            op.as_str(),
                            other.describe()
                        ),
                    ))
                }
            }
        }
        pats.extend(owned.iter().map(|s| &**s));
        let test = if op.is_regex() {
            let re = lucene::build(&pats, op.insensitive()).map_err(|(i, e)| {
                let at = patterns.get(i).map_or(span, |p| p.span);
                Error::invalid(
                    at,
                    format!(
                        "regex {:?}: {} (at byte {} of the pattern)",
                        pats.get(i).copied().unwrap_or(""),
                        e.message,
                        e.offset
                    ),
                )
            })?;
            Test::Regex(re)
        } else {
            let w = WildcardSet::new(pats.iter().copied(), op.insensitive())
                .map_err(|e| Error::invalid(span, e.0))?;
            Test::Wild(Box::new(w))
        };
        Ok(match v {
            Low::Const(c) => self.leaf_const(test.test(c.scalar())),
            v => leaf(v.into_value(), test),
        })
    }

    fn membership(&mut self, value: &Expr, list: &[Expr], ci: bool) -> Result<Node, Error> {
        let v = self.low(value)?;
        let mut items = Vec::with_capacity(list.len());
        let mut has_null = false;
        for item in list {
            match self.low(item)? {
                Low::Const(Const::Null) => has_null = true,
                Low::Const(c) => {
                    self.check_type(&v, &c, item.span)?;
                    items.push(c);
                }
                other => {
                    return Err(Error::invalid(
                        item.span,
                        format!(
                            "`in` list items must be constants; found {}",
                            other.describe()
                        ),
                    ))
                }
            }
        }
        let set = InSet::new(&items, ci);
        let test = Test::In(Box::new(set));
        let node = match v {
            Low::Const(Const::Null) => return Ok(Node::Const(Tri::from_bool(has_null))),
            Low::Const(c) => self.leaf_const(test.test(c.scalar())),
            v if has_null => {
                let expr = v.into_value();
                let missing = match &expr {
                    ValueExpr::Field(f) => Node::Exists(f.clone()),
                    _ => {
                        // Lower the value twice rather than clone the tree.
                        let again = self.low(value)?.into_value();
                        Node::ValueExists(again)
                    }
                };
                let found = leaf(expr, test);
                let mut both = vec![found, Node::Not(Box::new(missing))];
                both.sort_by_key(cost);
                Node::Or(both.into_boxed_slice())
            }
            v => leaf(v.into_value(), test),
        };
        Ok(node)
    }

    fn arith(&mut self, op: ArithOp, a: &Expr, b: &Expr) -> Result<Low, Error> {
        let x = self.low(a)?;
        let y = self.low(b)?;
        let what = match op {
            ArithOp::Add => "'+'",
            ArithOp::Sub => "'-'",
            ArithOp::Mul => "'*'",
            ArithOp::Div => "'/'",
            ArithOp::Mod => "'%'",
        };
        self.expect_num(&x, a.span, what)?;
        self.expect_num(&y, b.span, what)?;
        check_divisor(op, &y, b.span)?;
        Ok(match (x, y) {
            (Low::Const(x), Low::Const(y)) => Low::Const(Const::from_scalar(functions::arith(
                op,
                x.scalar(),
                y.scalar(),
            ))),
            (x, y) => Low::Value {
                desc: format!("{} {} {}", x.describe(), &what[1..2], y.describe()),
                expr: ValueExpr::Arith(op, Box::new(x.into_value()), Box::new(y.into_value())),
                ty: Ty::Num,
            },
        })
    }

    fn expect_num(&self, x: &Low, span: Span, what: &str) -> Result<(), Error> {
        if x.ty().fits(Ty::Num) {
            Ok(())
        } else {
            Err(Error::invalid(
                span,
                format!("{what} needs numbers; found {}", describe_typed(x)),
            ))
        }
    }

    fn call(
        &mut self,
        name: &str,
        ci: bool,
        args: &[Expr],
        name_span: Span,
        span: Span,
    ) -> Result<Low, Error> {
        let def = functions::lookup(name)
            .ok_or_else(|| Error::invalid(name_span, format!("unknown function {name}()")))?;
        if ci && !def.insensitive {
            return Err(Error::invalid(
                name_span,
                format!(
                    "{}() has no case-insensitive form {}~()",
                    def.name, def.name
                ),
            ));
        }
        if !def.accepts(args.len()) {
            return Err(Error::invalid(
                span,
                format!("{}() takes {}; found {}", def.name, def.arity(), args.len()),
            ));
        }
        let is_cidr = def.name == "cidrMatch";
        if args.len() > MAX_ARGS && !is_cidr {
            return Err(Error::unsupported(
                span,
                format!("{}() with more than {MAX_ARGS} arguments", def.name),
            ));
        }
        let mut lowered = Vec::with_capacity(args.len());
        for (i, a) in args.iter().enumerate() {
            let x = self.low(a)?;
            let Some(param) = def.param(i) else {
                return Err(Error::invalid(
                    a.span,
                    format!("{}(): too many arguments", def.name),
                ));
            };
            if !x.ty().fits(param.ty) {
                return Err(Error::invalid(
                    a.span,
                    format!(
                        "argument {} ({}) of {}() must be {}; found {}",
                        i + 1,
                        param.name,
                        def.name,
                        param.ty.describe(),
                        describe_typed(&x)
                    ),
                ));
            }
            if param.constant && !matches!(x, Low::Const(_)) {
                return Err(Error::invalid(
                    a.span,
                    format!(
                        "argument {} ({}) of {}() must be a constant",
                        i + 1,
                        param.name,
                        def.name
                    ),
                ));
            }
            lowered.push(x);
        }
        match def.name {
            "divide" => check_divisor(ArithOp::Div, &lowered[1], args[1].span)?,
            "modulo" => check_divisor(ArithOp::Mod, &lowered[1], args[1].span)?,
            "number" => {
                if let Some(Low::Const(c)) = lowered.get(1) {
                    let ok = matches!(c, Const::Null)
                        || matches!(c, Const::Int(b) if (2..=36).contains(b));
                    if !ok {
                        return Err(Error::invalid(
                            args[1].span,
                            format!(
                                "number() base must be an integer from 2 to 36; found {}",
                                c.describe()
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
        let desc = format!("{}()", def.name);
        let ty = def.returns;
        if is_cidr {
            let mut set = CidrSet::default();
            for (x, a) in lowered[1..].iter().zip(&args[1..]) {
                match x {
                    Low::Const(Const::Str(net)) => {
                        let one = CidrSet::new([&**net])
                            .map_err(|m| Error::invalid(a.span, format!("cidrMatch(): {m}")))?;
                        set.extend(one);
                    }
                    Low::Const(Const::Null) => {}
                    _ => {
                        return Err(Error::invalid(
                            a.span,
                            "cidrMatch() networks must be strings",
                        ))
                    }
                }
            }
            let has_null = lowered[1..]
                .iter()
                .any(|x| matches!(x, Low::Const(Const::Null)));
            let ip = lowered.swap_remove(0);
            return Ok(match ip {
                _ if has_null => Low::Const(Const::Null),
                Low::Const(Const::Str(s)) => Low::Const(Const::Bool(set.contains(&s))),
                Low::Const(_) => Low::Const(Const::Null),
                ip => Low::Value {
                    expr: ValueExpr::Cidr {
                        ip: Box::new(ip.into_value()),
                        set,
                    },
                    ty,
                    desc,
                },
            });
        }
        if lowered.iter().all(|x| matches!(x, Low::Const(_))) {
            let consts: Vec<Scalar<'_>> = lowered
                .iter()
                .map(|x| match x {
                    Low::Const(c) => c.scalar(),
                    _ => Scalar::Null,
                })
                .collect();
            let folded = if consts.contains(&Scalar::Null) {
                Const::Null
            } else {
                let mut buf = StrBuf::new();
                Const::from_scalar((def.eval)(&consts, ci, &mut buf))
            };
            return Ok(Low::Const(folded));
        }
        Ok(Low::Value {
            expr: ValueExpr::Call {
                def,
                insensitive: ci,
                args: lowered.into_iter().map(Low::into_value).collect(),
            },
            ty,
            desc,
        })
    }
}

/// A leaf node testing a value: the field fast path when the value is a plain field.
fn leaf(value: ValueExpr, test: Test) -> Node {
    match value {
        ValueExpr::Field(field) => Node::Field { field, test },
        expr => Node::Value { expr, test },
    }
}

/// The test for `value OP constant`; `!=` is built as the `==` test and negated by the caller.
fn compare_test(op: CmpOp, c: &Const) -> Test {
    match op {
        CmpOp::Eq | CmpOp::Ne => Test::In(Box::new(InSet::new([c], false))),
        op => Test::Cmp(op, c.clone()),
    }
}

/// `c OP v` → `v OP' c`.
fn flip(op: CmpOp) -> CmpOp {
    match op {
        CmpOp::Lt => CmpOp::Gt,
        CmpOp::Le => CmpOp::Ge,
        CmpOp::Gt => CmpOp::Lt,
        CmpOp::Ge => CmpOp::Le,
        other => other,
    }
}

fn check_divisor(op: ArithOp, divisor: &Low, span: Span) -> Result<(), Error> {
    let zero = match divisor {
        Low::Const(Const::Int(0)) => true,
        Low::Const(Const::Float(f)) => *f == 0.0,
        _ => false,
    };
    if zero && matches!(op, ArithOp::Div | ArithOp::Mod) {
        return Err(Error::invalid(span, "division by zero"));
    }
    Ok(())
}

/// `string "x"` for constants, `process.name (a string)` for typed values.
fn describe_typed(x: &Low) -> String {
    match x {
        Low::Const(c) => c.describe(),
        other => format!("{} ({})", other.describe(), other.ty().describe()),
    }
}

/// Rough evaluation cost, to test cheap operands of `and`/`or` first. Fields that are the
/// same on almost every process event (`event.type`, `host.os.type`, …) rank last: they
/// hardly ever decide an `and`, which any other test is likelier to make false. A negation
/// ranks after the test it negates: rules negate exclusions, which mostly hold.
fn cost(n: &Node) -> u32 {
    match n {
        Node::Const(_) => 0,
        Node::Exists(_) => 1,
        Node::Field { field, test } => {
            let base = match test {
                Test::In(_) | Test::Cmp(..) | Test::Truthy => 2,
                Test::Wild(_) => 5,
                Test::Cidr(_) => 6,
                Test::Regex(_) => 20,
            };
            let common = matches!(
                field.as_str(),
                "event.type" | "event.action" | "event.category" | "event.kind" | "host.os.type"
            );
            base + if common { 50 } else { 0 }
        }
        Node::Value { .. } | Node::ValueExists(_) => 30,
        Node::Not(x) => cost(x).saturating_add(8),
        Node::And(xs) | Node::Or(xs) => xs.iter().map(cost).fold(0u32, u32::saturating_add),
    }
}

/// The ECS type of a field when it is certain; [`Ty::Any`] otherwise (values are then coerced
/// at run time, as a mapping would at index time).
pub fn field_type(path: &str) -> Ty {
    const LONG_SUFFIXES: &[&str] = &[".pid", ".ppid", ".pgid", ".args_count", ".exit_code"];
    const LONG: &[&str] = &[
        "destination.port",
        "source.port",
        "client.port",
        "server.port",
        "event.sequence",
        "event.severity",
        "process.thread.id",
    ];
    const BOOL_SUFFIXES: &[&str] = &[
        ".code_signature.trusted",
        ".code_signature.exists",
        ".interactive",
    ];
    const KEYWORD_SUFFIXES: &[&str] = &[
        ".user.id",
        ".group.id",
        ".real_user.id",
        ".real_group.id",
        ".saved_user.id",
        ".saved_group.id",
        ".entity_id",
        ".name",
        ".executable",
        ".command_line",
        ".working_directory",
        ".args",
    ];
    const KEYWORD: &[&str] = &[
        "user.id",
        "group.id",
        "host.id",
        "event.category",
        "event.type",
        "event.action",
        "event.kind",
        "event.outcome",
        "host.os.type",
        "source.ip",
        "destination.ip",
        "host.ip",
        "client.ip",
        "server.ip",
        "file.path",
        "file.extension",
    ];
    if LONG.contains(&path) || LONG_SUFFIXES.iter().any(|s| path.ends_with(s)) {
        Ty::Num
    } else if BOOL_SUFFIXES.iter().any(|s| path.ends_with(s)) {
        Ty::Bool
    } else if KEYWORD.contains(&path)
        || (path.starts_with("process.") && KEYWORD_SUFFIXES.iter().any(|s| path.ends_with(s)))
    {
        Ty::Str
    } else {
        Ty::Any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::JsonDocument;
    use crate::eql::ast::{EventQuery, Field};
    use crate::eql::ErrorKind;
    use serde_json::json;

    // Hand-built ASTs, so these tests do not depend on the parser.
    fn sp() -> Span {
        Span::default()
    }
    fn ex(kind: ExprKind) -> Expr {
        Expr { kind, span: sp() }
    }
    fn field(p: &str) -> Expr {
        ex(ExprKind::Field(Field {
            path: p.into(),
            optional: false,
        }))
    }
    fn s(v: &str) -> Expr {
        ex(ExprKind::Literal(Literal::Str(v.into())))
    }
    fn int(v: i64) -> Expr {
        ex(ExprKind::Literal(Literal::Int(v)))
    }
    fn cmp(op: CmpOp, a: Expr, b: Expr) -> Expr {
        ex(ExprKind::Compare(op, Box::new(a), Box::new(b)))
    }
    fn not(a: Expr) -> Expr {
        ex(ExprKind::Not(Box::new(a)))
    }
    fn and(a: Expr, b: Expr) -> Expr {
        ex(ExprKind::And(Box::new(a), Box::new(b)))
    }
    fn colon(v: Expr, pats: &[&str]) -> Expr {
        ex(ExprKind::Match {
            op: MatchOp::Colon,
            value: Box::new(v),
            patterns: pats.iter().map(|p| s(p)).collect(),
        })
    }
    fn call(name: &str, args: Vec<Expr>) -> Expr {
        ex(ExprKind::Call {
            name: name.into(),
            insensitive: false,
            args,
            name_span: sp(),
        })
    }
    fn query(cat: &str, cond: Expr) -> Query {
        Query {
            body: QueryBody::Event(EventQuery {
                category: if cat == "any" {
                    Category::Any(sp())
                } else {
                    Category::Named(cat.into(), sp())
                },
                condition: cond,
                span: sp(),
            }),
            pipes: vec![],
            span: sp(),
        }
    }
    fn doc(v: serde_json::Value) -> JsonDocument {
        match v {
            serde_json::Value::Object(m) => JsonDocument::new(m),
            _ => unreachable!(),
        }
    }
    fn run(cond: Expr, d: serde_json::Value, missing: MissingPolicy) -> Option<bool> {
        compile(&query("any", cond), &Options { missing })
            .unwrap()
            .evaluate(&doc(d))
    }

    #[test]
    fn category_dispatch() {
        let p = compile(
            &query("process", ex(ExprKind::Literal(Literal::Bool(true)))),
            &Options::default(),
        )
        .unwrap();
        assert_eq!(p.category(), Some("process"));
        assert!(p.matches(&doc(json!({"event": {"category": ["network", "process"]}}))));
        assert!(!p.matches(&doc(json!({"event": {"category": ["Process"]}}))));
        assert!(!p.matches(&doc(json!({}))));
        assert!(p.matches_condition(&doc(json!({}))));
    }

    #[test]
    fn missing_policies_differ_only_on_null() {
        let pd = MissingPolicy::EsPushdown;
        let kl = MissingPolicy::Kleene;
        let ne = || {
            cmp(
                CmpOp::Ne,
                field("process.parent.command_line"),
                s("runc init"),
            )
        };
        assert_eq!(run(ne(), json!({}), pd), Some(true));
        assert_eq!(run(ne(), json!({}), kl), None);
        let nc = || not(colon(field("process.parent.command_line"), &["runc init"]));
        assert_eq!(run(nc(), json!({}), pd), Some(true));
        assert_eq!(run(nc(), json!({}), kl), None);
        let nn = || cmp(CmpOp::Eq, field("x"), ex(ExprKind::Literal(Literal::Null)));
        assert_eq!(run(nn(), json!({}), kl), Some(true));
        assert_eq!(run(nn(), json!({"x": []}), pd), Some(true));
        assert_eq!(run(nn(), json!({"x": 1}), pd), Some(false));
    }

    #[test]
    fn type_errors_name_the_field() {
        let q = query(
            "process",
            cmp(CmpOp::Ge, field("process.args_count"), s("2")),
        );
        let e = compile(&q, &Options::default()).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Invalid);
        assert_eq!(
            e.message,
            "process.args_count is a number; found string \"2\""
        );
        let q = query(
            "process",
            cmp(
                CmpOp::Eq,
                field("process.name"),
                field("process.parent.name"),
            ),
        );
        let e = compile(&q, &Options::default()).unwrap_err();
        assert!(e.message.contains("one side must be a constant"), "{e:?}");
        let q = query("process", call("lenght", vec![field("process.name")]));
        let e = compile(&q, &Options::default()).unwrap_err();
        assert_eq!(e.message, "unknown function lenght()");
        let q = query(
            "process",
            cmp(
                CmpOp::Gt,
                call("length", vec![field("a"), field("b")]),
                int(1),
            ),
        );
        let e = compile(&q, &Options::default()).unwrap_err();
        assert_eq!(e.message, "length() takes 1 argument; found 2");
    }

    #[test]
    fn constants_fold() {
        let q = query(
            "any",
            and(
                cmp(
                    CmpOp::Eq,
                    ex(ExprKind::Arith(
                        ArithOp::Div,
                        Box::new(int(-7)),
                        Box::new(int(2)),
                    )),
                    int(-3),
                ),
                cmp(CmpOp::Eq, call("modulo", vec![int(-10), int(6)]), int(-4)),
            ),
        );
        let p = compile(&q, &Options::default()).unwrap();
        assert!(matches!(p.root, Node::Const(Tri::True)));
        let q = query(
            "any",
            cmp(CmpOp::Eq, call("divide", vec![field("x"), int(0)]), int(1)),
        );
        let e = compile(&q, &Options::default()).unwrap_err();
        assert_eq!(e.message, "division by zero");
    }

    #[test]
    fn unsupported_shapes() {
        let mut q = query("process", ex(ExprKind::Literal(Literal::Bool(true))));
        q.pipes.push(Pipe::Head(1, sp()));
        assert_eq!(
            compile(&q, &Options::default()).unwrap_err().kind,
            ErrorKind::Unsupported
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let nested = |depth: usize| {
            let mut e = cmp(CmpOp::Eq, field("a"), int(1));
            for i in 0..depth {
                e = if i % 2 == 0 {
                    not(e)
                } else {
                    and(e, cmp(CmpOp::Eq, field("b"), int(2)))
                };
            }
            query("any", e)
        };
        // The parser allows 128 levels; compiling them must fit a 2 MiB thread in debug builds.
        let q = nested(190);
        let ok = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || compile(&q, &Options::default()).map(|_| ()))
            .unwrap()
            .join()
            .unwrap();
        assert!(ok.is_ok(), "{ok:?}");
        let err = compile(&nested(1_000), &Options::default()).unwrap_err();
        assert!(err.message.contains("nested too deeply"));
    }

    #[test]
    fn requirements_for_rule_indexes() {
        let name = |v: &str| cmp(CmpOp::Eq, field("process.name"), s(v));
        let or = |a: Expr, b: Expr| ex(ExprKind::Or(Box::new(a), Box::new(b)));
        let p = |e: Expr| compile(&query("process", e), &Options::default()).unwrap();
        let r = p(and(
            cmp(CmpOp::Eq, field("event.type"), s("start")),
            or(name("sh"), colon(field("process.name"), &["BASH"])),
        ))
        .requirement("process.name")
        .unwrap();
        assert_eq!(r.values, ["bash", "sh"]);
        assert!(r.insensitive);
        let r = p(and(name("zsh"), name("zsh")))
            .requirement("process.name")
            .unwrap();
        assert_eq!(
            r,
            Requirement {
                values: vec!["zsh".into()],
                insensitive: false
            }
        );
        // Not pinned: a wildcard, a negation, an `or` with a free branch.
        assert!(p(colon(field("process.name"), &["ba*"]))
            .requirement("process.name")
            .is_none());
        assert!(p(not(name("sh"))).requirement("process.name").is_none());
        assert!(p(or(name("sh"), cmp(CmpOp::Eq, field("user.id"), s("0"))))
            .requirement("process.name")
            .is_none());
        assert!(p(name("sh")).requirement("process.executable").is_none());
    }

    #[test]
    fn programs_are_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Program>();
    }

    #[test]
    fn field_types() {
        assert_eq!(field_type("process.pid"), Ty::Num);
        assert_eq!(field_type("process.parent.args_count"), Ty::Num);
        assert_eq!(
            field_type("process.parent.code_signature.trusted"),
            Ty::Bool
        );
        assert_eq!(field_type("user.id"), Ty::Str);
        assert_eq!(field_type("process.parent.user.id"), Ty::Str);
        assert_eq!(field_type("auditd.data.a2"), Ty::Any);
        assert_eq!(field_type("process.thread.id"), Ty::Num);
    }
}
