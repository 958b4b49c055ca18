//! `ast::Query` → [`Program`]. (Stub until the evaluator lands.)

use super::ast::Query;
use super::error::Error;
use super::Options;
use crate::document::{Document, FieldPath};

/// A compiled single-event query, evaluated many times.
#[derive(Debug)]
pub struct Program {
    category: Option<Box<str>>,
    fields: Vec<FieldPath>,
}

/// Compiles a parsed query.
pub fn compile(query: &Query, _options: &Options) -> Result<Program, Error> {
    Err(Error::unsupported(query.span, "evaluator not written yet"))
}

impl Program {
    /// The event category the query selects; `None` for `any`.
    pub fn category(&self) -> Option<&str> {
        self.category.as_deref()
    }

    /// Every field the query reads (for coverage reports).
    pub fn fields(&self) -> &[FieldPath] {
        &self.fields
    }

    /// Category check and condition.
    pub fn matches<D: Document + ?Sized>(&self, doc: &D) -> bool {
        self.matches_condition(doc)
    }

    /// The condition alone, for callers that dispatched on category already.
    pub fn matches_condition<D: Document + ?Sized>(&self, _doc: &D) -> bool {
        false
    }
}
