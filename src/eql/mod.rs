//! EQL with Elasticsearch semantics, evaluated on the host.
//!
//! Text → [`lexer`] (spanned tokens) → [`parser`] ([`ast::Query`], every error with its span) →
//! [`compile`] (fields resolved to [`crate::document::FieldPath`]s, literal lists hashed, wildcard
//! lists merged into one automaton, regexes translated from Lucene, case folded once) → a
//! [`Program`] evaluated many times against any [`crate::document::Document`] without allocating.
//!
//! Sequences, samples and pipes remember events: [`query::compile_query`] compiles every query
//! shape into a shared, immutable [`Compiled`], and each evaluator keeps a [`QueryState`] per
//! stateful rule ([`sequence`], [`sample`], [`join`] keys, `pipes`), bounded by [`StateLimits`].
//!
//! Semantics follow Elasticsearch, not the Python `eql` package (design.md §5,
//! reference/eql.md §1): case-sensitive by default, `:`/`~` forms insensitive, wildcards match the
//! whole value, any element of an array may satisfy a predicate while `!=`/`not` negate the whole,
//! and a predicate on a missing field is false before any `not` applies ([`MissingPolicy`]).

pub mod ast;
pub mod compile;
pub mod error;
mod eval;
pub mod functions;
pub(crate) mod join;
pub mod lexer;
pub mod lucene;
pub mod parser;
mod pipes;
pub mod prefilter;
pub mod query;
pub mod sample;
pub mod sequence;
pub mod wildcard;

pub use compile::{compile, Program};
pub use error::{Error, ErrorKind};
pub use query::{
    compile_query, compile_query_str, Clock, Compiled, Hit, Match, MatchKind, QueryState, Retain,
    StateLimits, StateStats, Tick,
};

/// How predicates on absent fields behave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissingPolicy {
    /// Elasticsearch's filter pushdown: a field-vs-literal predicate on a missing field is false,
    /// and `not`/`!=` are its plain complement, so `f != "x"` holds when `f` is absent.
    /// Expressions Elasticsearch cannot push down (arithmetic, most functions) keep three-valued
    /// logic inside, and a null result counts as false before any enclosing `not` applies.
    #[default]
    EsPushdown,
    /// Kleene three-valued logic everywhere (what the Python `eql` engine does).
    Kleene,
}

/// Compile-time settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub missing: MissingPolicy,
}

/// Parses and compiles in one step.
pub fn compile_str(src: &str, options: &Options) -> Result<Program, Vec<Error>> {
    let query = parser::parse(src)?;
    compile(&query, options).map_err(|e| vec![e])
}
