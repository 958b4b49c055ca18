//! EQL text → [`super::ast::Query`]. (Stub until the parser lands.)

use super::ast::{Query, Span};
use super::error::Error;

/// Parses a whole query; on failure returns every error found, first one first.
pub fn parse(_src: &str) -> Result<Query, Vec<Error>> {
    Err(vec![Error::unsupported(
        Span::default(),
        "parser not written yet",
    )])
}
