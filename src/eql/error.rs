//! EQL errors with the author's coordinates: what was expected, where, and the line with carets.

use std::fmt;

use super::ast::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The text is not EQL (lexer or parser).
    Syntax,
    /// Valid syntax that Elasticsearch would reject at verification (types, arity, unknown
    /// function, field-to-field comparison, untranslatable regex).
    Invalid,
    /// Valid EQL this engine does not evaluate (yet).
    Unsupported,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub span: Span,
    /// One sentence: what was found and what was expected.
    pub message: String,
}

impl Error {
    pub fn syntax(span: Span, message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Syntax,
            span,
            message: message.into(),
        }
    }

    pub fn invalid(span: Span, message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Invalid,
            span,
            message: message.into(),
        }
    }

    pub fn unsupported(span: Span, message: impl Into<String>) -> Error {
        Error {
            kind: ErrorKind::Unsupported,
            span,
            message: message.into(),
        }
    }

    /// Line and column (1-based, columns in characters) of the error's start within `src`.
    pub fn line_col(&self, src: &str) -> (usize, usize) {
        line_col(src, self.span.start as usize)
    }

    /// `line:col: message`, then the offending line with carets under the span.
    pub fn render(&self, src: &str) -> String {
        let (line, col) = self.line_col(src);
        format!(
            "{line}:{col}: {}\n{}",
            self.message,
            caret_snippet(src, self.span)
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at byte {})", self.message, self.span.start)
    }
}

impl std::error::Error for Error {}

/// 1-based line and character column of byte `offset` (clamped to `src`).
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The line holding `span.start`, and a caret line under the span (clipped to that line).
pub fn caret_snippet(src: &str, span: Span) -> String {
    let start = (span.start as usize).min(src.len());
    let (line_no, col) = line_col(src, start);
    let text = src.lines().nth(line_no - 1).unwrap_or("");
    let width = src
        .get(start..(span.end as usize).min(src.len()))
        .map_or(1, |s| {
            s.split('\n').next().unwrap_or("").chars().count().max(1)
        });
    let width = width.min(text.chars().count().saturating_sub(col - 1).max(1));
    format!("  {text}\n  {}{}", " ".repeat(col - 1), "^".repeat(width))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_carets() {
        let src = "process where\n  process.name == 'x'";
        let e = Error::syntax(Span::new(32, 35), "single quotes are reserved; use \"...\"");
        assert_eq!(e.line_col(src), (2, 19));
        assert_eq!(
            e.render(src),
            "2:19: single quotes are reserved; use \"...\"\n    process.name == 'x'\n                    ^^^"
        );
        assert_eq!(line_col("é x", 2), (1, 2));
        assert_eq!(line_col("é x", 3), (1, 3));
        assert_eq!(line_col("abc", 99), (1, 4));
    }
}
