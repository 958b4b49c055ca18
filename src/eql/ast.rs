//! The EQL syntax tree, faithful to the text: every node keeps its byte span, and operators keep
//! their exact identity and case mode (`:` vs `like~`, `in` vs `in~`) so that compile errors point
//! at what the author wrote. `compile.rs` lowers this to the evaluated form.

/// A byte range in the query text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// A whole query: what it selects, then its pipes.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub body: QueryBody,
    pub pipes: Vec<Pipe>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum QueryBody {
    /// `process where ...`
    Event(EventQuery),
    /// `sequence [by ...] [with maxspan=...] [..] [..] [until [..]]`
    Sequence(Sequence),
    /// `sample by ... [..] [..]`
    Sample(Sample),
}

/// `CATEGORY where CONDITION`.
#[derive(Clone, Debug, PartialEq)]
pub struct EventQuery {
    pub category: Category,
    pub condition: Expr,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Category {
    /// `any where ...`: every event, including ones with no category.
    Any(Span),
    /// A plain identifier or a quoted string (`"my-cat" where ...`).
    Named(String, Span),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sequence {
    /// `sequence by k1, k2`: prepended to every item's own keys.
    pub by: Vec<Expr>,
    pub maxspan: Option<TimeSpan>,
    pub items: Vec<SequenceItem>,
    pub until: Option<SequenceItem>,
    pub span: Span,
}

/// One bracketed item of a sequence or sample.
#[derive(Clone, Debug, PartialEq)]
pub struct SequenceItem {
    pub query: EventQuery,
    /// Per-item `by` keys.
    pub by: Vec<Expr>,
    /// `with runs=N`.
    pub runs: Option<u32>,
    /// `![...]`: a missing event.
    pub missing: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub by: Vec<Expr>,
    pub items: Vec<SequenceItem>,
    pub span: Span,
}

/// `maxspan=N(ms|s|m|h|d)`, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeSpan {
    pub millis: u64,
    pub span: Span,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pipe {
    Head(u64, Span),
    Tail(u64, Span),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Literal(Literal),
    Field(Field),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    /// `==` `!=` `<` `<=` `>` `>=`
    Compare(CmpOp, Box<Expr>, Box<Expr>),
    /// `:` `like` `like~` `regex` `regex~`, with one pattern or a parenthesised list.
    Match {
        op: MatchOp,
        value: Box<Expr>,
        patterns: Vec<Expr>,
    },
    /// `in` `in~` `not in` `not in~`.
    In {
        value: Box<Expr>,
        list: Vec<Expr>,
        insensitive: bool,
        negated: bool,
    },
    Arith(ArithOp, Box<Expr>, Box<Expr>),
    /// Unary minus.
    Neg(Box<Expr>),
    /// `name(args)` or `name~(args)`; `name` as written (names are case-insensitive).
    Call {
        name: String,
        insensitive: bool,
        args: Vec<Expr>,
        name_span: Span,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// A field reference: `process.name`, `` `odd-name`.x ``, `?optional.field`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Dotted path with backticks removed.
    pub path: String,
    /// Written with a leading `?`.
    pub optional: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MatchOp {
    /// `:` — wildcards, case-insensitive.
    Colon,
    Like,
    LikeInsensitive,
    Regex,
    RegexInsensitive,
}

impl MatchOp {
    pub fn insensitive(self) -> bool {
        matches!(
            self,
            MatchOp::Colon | MatchOp::LikeInsensitive | MatchOp::RegexInsensitive
        )
    }

    pub fn is_regex(self) -> bool {
        matches!(self, MatchOp::Regex | MatchOp::RegexInsensitive)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Colon => ":",
            MatchOp::Like => "like",
            MatchOp::LikeInsensitive => "like~",
            MatchOp::Regex => "regex",
            MatchOp::RegexInsensitive => "regex~",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
}
