//! EQL text → [`Query`], the Elasticsearch dialect, with every error the text allows us to find.
//!
//! Grammar (lowest precedence first; `*` repeats, `?` is optional):
//!
//! ```text
//! query     = body ("|" ("head" | "tail") INT)*
//! body      = event | "sequence" seq | "sample" ("by" keys)? item+
//! event     = (IDENT | "any" | STRING) "where" expr
//! seq       = ("by" keys)? ("with" "maxspan" "=" INT UNIT)? item+ ("until" item)?
//! item      = ("[" | "![") event "]" ("by" keys)? ("with" "runs" "=" INT)?
//! keys      = expr ("," expr)*
//! expr      = and ("or" and)*
//! and       = not ("and" not)*
//! not       = "not" not | predicate
//! predicate = sum (CMP sum | MATCH patterns | "not"? ("in" | "in~") "(" expr ("," expr)* ")")?
//! sum       = product (("+" | "-") product)*
//! product   = unary (("*" | "/" | "%") unary)*
//! unary     = ("-" | "+") unary | primary
//! primary   = literal | field | NAME "(" args? ")" | NAME~ "(" args? ")" | "(" expr ")"
//! field     = "?"? segment ("." segment)*        segment = IDENT | `quoted`
//! ```
//!
//! Shapes worth knowing when reading the AST:
//! - comparisons do not chain (`a == b == c` is an error), and `not x == y` is `not (x == y)`;
//! - `:`/`like`/`regex` patterns are literals, as in Elasticsearch's grammar;
//! - a minus sign directly before a number literal is folded into it (`-5` is `Int(-5)`, which is
//!   how `-9223372036854775808` is written); other operands get [`ExprKind::Neg`];
//! - `and`/`or` chains are built as balanced trees (`a or b or c or d` is
//!   `(a or b) or (c or d)`): the same meaning and left-to-right order, but a thousand-term chain
//!   is ten levels deep, not a thousand.
//!
//! Input safety: nesting (parentheses, `not`, signs, calls and lists) is limited to [`MAX_DEPTH`]
//! levels, and so is the height of every expression tree we return, so neither this parser nor
//! any consumer that walks the tree recursively can be driven into a stack overflow. At the limit
//! parsing uses about 400 KiB of stack in release builds (under 1 MiB in debug builds). Lexing
//! and parsing are linear in the input apart from recovery, which rescans at most once per
//! nesting level; at most [`lexer::MAX_ERRORS`] errors are kept.

use super::ast::{
    ArithOp, Category, CmpOp, EventQuery, Expr, ExprKind, Field, Literal, MatchOp, Pipe, Query,
    QueryBody, Sample, Sequence, SequenceItem, Span, TimeSpan,
};
use super::error::{line_col, Error};
use super::lexer::{self, Keyword, Token, TokenKind};

/// Deepest nesting of parentheses/`not`/signs, and tallest expression tree, that we accept.
pub const MAX_DEPTH: u32 = 128;

/// Most `with runs=N` repetitions Elasticsearch allows.
pub const MAX_RUNS: u64 = 100;

/// Parses a whole query; on failure returns every error found, first one first.
pub fn parse(src: &str) -> Result<Query, Vec<Error>> {
    let (tokens, mut errors) = lexer::tokenize(src);
    let mut parser = Parser {
        src,
        tokens,
        pos: 0,
        errors: Vec::new(),
        depth: 0,
        abort: false,
    };
    let query = parser.query();
    errors.append(&mut parser.errors);
    match query {
        Ok(query) if errors.is_empty() => Ok(query),
        _ => {
            if errors.is_empty() {
                // Unreachable by construction (every failure reports), but never return Err([]).
                errors.push(Error::syntax(Span::new(0, src.len()), "invalid query"));
            }
            errors.sort_by_key(|e| (e.span.start, e.span.end));
            errors.dedup();
            errors.truncate(lexer::MAX_ERRORS);
            Err(errors)
        }
    }
}

/// The error has been recorded in [`Parser::errors`]; unwind to a place that can recover.
#[derive(Debug)]
struct Reported;

type PResult<T> = Result<T, Reported>;

/// An expression and the height of its tree, so depth limits see long operator chains too.
struct Tree {
    expr: Expr,
    height: u32,
}

impl Tree {
    fn leaf(kind: ExprKind, span: Span) -> Tree {
        Tree {
            expr: Expr { kind, span },
            height: 1,
        }
    }

    fn span(&self) -> Span {
        self.expr.span
    }
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token<'s>>,
    /// Index of the current token; the last token is always `Eof` and is never consumed.
    pos: usize,
    errors: Vec<Error>,
    /// Current nesting of parentheses, `not` and signs.
    depth: u32,
    /// Set when nesting overflowed: stop recovering and unwind.
    abort: bool,
}

// ---------------------------------------------------------------------------------------------
// Token plumbing and error reporting.

impl<'s> Parser<'s> {
    fn token(&self) -> &Token<'s> {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[self.pos.min(last)]
    }

    fn kind(&self) -> &TokenKind<'s> {
        &self.token().kind
    }

    fn span(&self) -> Span {
        self.token().span
    }

    fn nth_kind(&self, n: usize) -> &TokenKind<'s> {
        let last = self.tokens.len().saturating_sub(1);
        &self.tokens[(self.pos + n).min(last)].kind
    }

    fn at(&self, kind: &TokenKind<'_>) -> bool {
        self.kind() == kind
    }

    fn at_keyword(&self, keyword: Keyword) -> bool {
        matches!(self.kind(), TokenKind::Keyword(k) if *k == keyword)
    }

    /// Consumes the current token and returns it (`Eof` stays put).
    fn bump(&mut self) -> Token<'s> {
        let token = self.token().clone();
        if token.kind != TokenKind::Eof {
            self.pos += 1;
        }
        token
    }

    fn eat(&mut self, kind: &TokenKind<'_>) -> Option<Span> {
        if self.at(kind) {
            Some(self.bump().span)
        } else {
            None
        }
    }

    fn eat_keyword(&mut self, keyword: Keyword) -> Option<Span> {
        if self.at_keyword(keyword) {
            Some(self.bump().span)
        } else {
            None
        }
    }

    #[cold]
    #[inline(never)]
    fn error(&mut self, span: Span, message: impl Into<String>) -> Reported {
        self.errors.push(Error::syntax(span, message));
        Reported
    }

    /// "expected X, found Y" at the current token, with a hint where a common slip explains it.
    /// Silent on an error token: the lexer has already said what is wrong there.
    #[cold]
    #[inline(never)]
    fn unexpected(&mut self, expected: &str) -> Reported {
        let token = self.token().clone();
        if token.kind == TokenKind::Error {
            return Reported;
        }
        let mut message = format!("expected {expected}, found {}", token.kind.describe());
        if let Some(hint) = hint_for(&token.kind) {
            message.push_str("; ");
            message.push_str(&hint);
        }
        self.error(token.span, message)
    }

    /// `line:col` of a byte offset, for "opened at" notes.
    #[cold]
    #[inline(never)]
    fn position(&self, span: Span) -> String {
        let (line, col) = line_col(self.src, span.start as usize);
        format!("{line}:{col}")
    }

    /// Skips to just after the `close` token that ends the group we are in, stepping over nested
    /// groups. Stops without consuming at a mismatched closer, a pipe or the end; returns whether
    /// `close` was consumed.
    fn skip_past(&mut self, close: &TokenKind<'_>) -> bool {
        if self.abort {
            return false;
        }
        let mut nested = 0usize;
        loop {
            match self.kind() {
                TokenKind::Eof => return false,
                TokenKind::Pipe if nested == 0 => return false,
                TokenKind::LParen | TokenKind::LBracket | TokenKind::MissingOpen => nested += 1,
                TokenKind::RParen | TokenKind::RBracket if nested == 0 => {
                    if self.at(close) {
                        self.bump();
                        return true;
                    }
                    return false;
                }
                TokenKind::RParen | TokenKind::RBracket => nested -= 1,
                _ => {}
            }
            self.bump();
        }
    }

    /// After a broken operand of `and`/`or`, skips to the next `and`/`or` of this group.
    /// Returns whether one was found (the parser then stands on it).
    fn recover_to_logical_operator(&mut self) -> bool {
        if self.abort {
            return false;
        }
        let mut nested = 0usize;
        loop {
            match self.kind() {
                TokenKind::Keyword(Keyword::And | Keyword::Or) if nested == 0 => return true,
                TokenKind::Eof | TokenKind::Pipe => return false,
                TokenKind::LParen => nested += 1,
                TokenKind::LBracket | TokenKind::MissingOpen if nested == 0 => return false,
                TokenKind::RParen | TokenKind::RBracket | TokenKind::Comma if nested == 0 => {
                    return false
                }
                TokenKind::Keyword(
                    Keyword::By | Keyword::With | Keyword::Until | Keyword::Where,
                ) if nested == 0 => return false,
                TokenKind::RParen => nested -= 1,
                _ => {}
            }
            self.bump();
        }
    }

    /// Runs `f` one nesting level deeper, or reports that the input nests too deeply.
    fn nested<T>(&mut self, span: Span, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        if self.depth >= MAX_DEPTH {
            return Err(self.too_deep(span));
        }
        self.depth += 1;
        let result = f(self);
        self.depth -= 1;
        result
    }

    #[cold]
    #[inline(never)]
    fn too_deep(&mut self, span: Span) -> Reported {
        if !self.abort {
            self.abort = true;
            self.error(
                span,
                format!("expression nested too deeply (more than {MAX_DEPTH} levels)"),
            );
        }
        Reported
    }

    /// A node over children whose tallest is `child_height`, refused if the tree gets too tall.
    fn node(&mut self, kind: ExprKind, span: Span, child_height: u32) -> PResult<Tree> {
        let height = child_height.saturating_add(1);
        if height > MAX_DEPTH {
            return Err(self.too_deep(span));
        }
        Ok(Tree {
            expr: Expr { kind, span },
            height,
        })
    }
}

/// A hint for a token that is a common slip wherever it appears unexpectedly.
fn hint_for(kind: &TokenKind<'_>) -> Option<String> {
    match kind {
        TokenKind::Ident(word) => Keyword::from_word_any_case(word)
            .map(|k| format!("keywords are lowercase: write '{}'", k.as_str())),
        TokenKind::Assign => Some("use '==' for equality".to_string()),
        _ => None,
    }
}

/// Whether a token can begin a value (operand).
fn starts_operand(kind: &TokenKind<'_>) -> bool {
    matches!(
        kind,
        TokenKind::Int(_)
            | TokenKind::Float(_)
            | TokenKind::Str { .. }
            | TokenKind::Ident(_)
            | TokenKind::QuotedIdent(_)
            | TokenKind::TildeIdent(_)
            | TokenKind::LParen
            | TokenKind::Minus
            | TokenKind::Plus
            | TokenKind::Question
            | TokenKind::Keyword(Keyword::True | Keyword::False | Keyword::Null)
    )
}

/// Whether a token can begin a condition (a value, or `not`).
fn starts_condition(kind: &TokenKind<'_>) -> bool {
    starts_operand(kind) || matches!(kind, TokenKind::Keyword(Keyword::Not))
}

// ---------------------------------------------------------------------------------------------
// Queries: event, sequence, sample, pipes.

impl<'s> Parser<'s> {
    fn query(&mut self) -> PResult<Query> {
        let start = self.span();
        let body = match self.kind() {
            TokenKind::Keyword(Keyword::Sequence) => self.sequence().map(QueryBody::Sequence),
            TokenKind::Keyword(Keyword::Sample) => self.sample().map(QueryBody::Sample),
            TokenKind::Keyword(Keyword::Join) => {
                let span = self.span();
                self.errors.push(Error::unsupported(
                    span,
                    "'join' is not supported by Elasticsearch EQL; use 'sequence' instead",
                ));
                Err(Reported)
            }
            _ => self.event_query().map(QueryBody::Event),
        };
        if body.is_err() {
            // Still look at the pipes, so their errors are reported too.
            while !matches!(self.kind(), TokenKind::Pipe | TokenKind::Eof) {
                self.bump();
            }
        }
        let pipes = self.pipes();
        if body.is_ok() && !self.at(&TokenKind::Eof) {
            let expected = if pipes.as_ref().is_ok_and(|p| !p.is_empty()) {
                "a pipe '|' or the end of the query"
            } else if matches!(body, Ok(QueryBody::Event(_))) {
                "'and', 'or', a pipe '|' or the end of the query"
            } else {
                "a sequence item '[...]', a pipe '|' or the end of the query"
            };
            if self.at(&TokenKind::RParen) {
                let span = self.span();
                return Err(self.error(span, "unmatched ')': no '(' is open here"));
            }
            if self.at(&TokenKind::RBracket) {
                let span = self.span();
                return Err(self.error(span, "unmatched ']': no '[' is open here"));
            }
            return Err(self.unexpected(expected));
        }
        let body = body?;
        let pipes = pipes?;
        let end = pipes.last().map_or_else(|| body_span(&body), pipe_span);
        Ok(Query {
            body,
            pipes,
            span: start.to(end),
        })
    }

    /// `CATEGORY where CONDITION`.
    fn event_query(&mut self) -> PResult<EventQuery> {
        let token = self.token().clone();
        let category = match &token.kind {
            TokenKind::Keyword(Keyword::Any) => Category::Any(token.span),
            TokenKind::Ident(name) => Category::Named(name.to_string(), token.span),
            TokenKind::Str { value, .. } => Category::Named(value.clone(), token.span),
            TokenKind::Keyword(Keyword::Where) => {
                return Err(self.error(
                    token.span,
                    "missing event category before 'where': write e.g. 'process where ...' \
                     or 'any where ...'",
                ))
            }
            _ => return Err(self.unexpected("an event category (e.g. 'process' or 'any')")),
        };
        self.bump();
        if self.eat_keyword(Keyword::Where).is_none() {
            let shown = match &token.kind {
                TokenKind::Ident(name) => format!("'{name}'"),
                TokenKind::Str { value, .. } => format!("{value:?}"),
                _ => "'any'".to_string(),
            };
            if self.at(&TokenKind::Error) {
                return Err(Reported);
            }
            let span = self.span();
            let message = format!(
                "expected 'where' after the event category {shown}, found {}; a query reads \
                 'CATEGORY where CONDITION', e.g. 'process where process.name == \"bash\"'",
                self.kind().describe()
            );
            return Err(self.error(span, message));
        }
        if !starts_condition(self.kind()) {
            return Err(self.unexpected("a condition after 'where'"));
        }
        let condition = self.expr()?;
        Ok(EventQuery {
            category,
            span: token.span.to(condition.span()),
            condition: condition.expr,
        })
    }

    fn sequence(&mut self) -> PResult<Sequence> {
        let keyword = self.bump().span;
        let mut failed = false;
        let mut by = Vec::new();
        if self.at_keyword(Keyword::By) {
            match self.join_keys() {
                Ok(keys) => by = keys,
                Err(_) => failed = true,
            }
        }
        let mut maxspan = None;
        if self.at_keyword(Keyword::With) {
            match self.maxspan() {
                Ok(span) => maxspan = Some(span),
                Err(_) => failed = true,
            }
            if self.at_keyword(Keyword::By) {
                let span = self.span();
                self.error(
                    span,
                    "'by' must come before 'with': write 'sequence by ... with maxspan=...'",
                );
                failed = true;
                let _ = self.join_keys();
            }
        }
        let mut items = Vec::new();
        let mut until = None;
        while matches!(self.kind(), TokenKind::LBracket | TokenKind::MissingOpen) {
            match self.item(ItemContext::Sequence) {
                Ok(item) => items.push(item),
                Err(_) => failed = true,
            }
        }
        if items.is_empty() && !failed {
            return Err(self.unexpected("a sequence item '[category where condition]'"));
        }
        if self.eat_keyword(Keyword::Until).is_some() {
            if matches!(self.kind(), TokenKind::LBracket | TokenKind::MissingOpen) {
                match self.item(ItemContext::Until) {
                    Ok(item) => until = Some(item),
                    Err(_) => failed = true,
                }
            } else {
                self.unexpected("an item '[category where condition]' after 'until'");
                failed = true;
            }
        }
        if failed {
            return Err(Reported);
        }
        let end = until
            .as_ref()
            .or(items.last())
            .map_or(keyword, |item| item.span);
        let sequence = Sequence {
            by,
            maxspan,
            items,
            until,
            span: keyword.to(end),
        };
        self.check_sequence(&sequence)?;
        Ok(sequence)
    }

    /// The rules Elasticsearch checks while building a sequence.
    fn check_sequence(&mut self, sequence: &Sequence) -> PResult<()> {
        let before = self.errors.len();
        let expanded: u64 = sequence
            .items
            .iter()
            .map(|item| u64::from(item.runs.unwrap_or(1)))
            .sum();
        if expanded < 2 {
            self.error(
                sequence.span,
                "a sequence needs at least two items, or one item 'with runs=N' (N of 2 or more)",
            );
        }
        if let Some(missing) = sequence.items.iter().find(|item| item.missing) {
            if sequence.maxspan.is_none() {
                self.error(
                    missing.span,
                    "a missing event '![...]' needs the sequence to have 'with maxspan=...'",
                );
            }
            if sequence.items.iter().all(|item| item.missing) {
                self.error(
                    sequence.span,
                    "a sequence needs at least one item that is not a missing event '![...]'",
                );
            }
        }
        self.check_key_counts(sequence.items.iter().chain(sequence.until.as_ref()));
        if self.errors.len() > before {
            Err(Reported)
        } else {
            Ok(())
        }
    }

    /// Every item must add the same number of join keys (Elasticsearch: "Inconsistent number of
    /// join keys").
    fn check_key_counts<'i>(&mut self, mut items: impl Iterator<Item = &'i SequenceItem>) {
        let Some(first) = items.next() else { return };
        let expected = first.by.len();
        for item in items {
            if item.by.len() != expected {
                let span = match (item.by.first(), item.by.last()) {
                    (Some(a), Some(b)) => a.span.to(b.span),
                    _ => item.span,
                };
                self.error(
                    span,
                    format!(
                        "inconsistent number of join keys: the first item has {expected} \
                         'by' key{}, this one has {}",
                        if expected == 1 { "" } else { "s" },
                        item.by.len()
                    ),
                );
            }
        }
    }

    fn sample(&mut self) -> PResult<Sample> {
        let keyword = self.bump().span;
        let mut failed = false;
        let mut by = Vec::new();
        if self.at_keyword(Keyword::By) {
            match self.join_keys() {
                Ok(keys) => by = keys,
                Err(_) => failed = true,
            }
        }
        if self.at_keyword(Keyword::With) {
            let span = self.span();
            self.error(
                span,
                "a sample takes no 'with' options (no maxspan, no runs)",
            );
            return Err(Reported);
        }
        let mut items = Vec::new();
        while matches!(self.kind(), TokenKind::LBracket | TokenKind::MissingOpen) {
            match self.item(ItemContext::Sample) {
                Ok(item) => items.push(item),
                Err(_) => failed = true,
            }
        }
        if items.is_empty() && !failed {
            return Err(self.unexpected("a sample item '[category where condition]'"));
        }
        if self.at_keyword(Keyword::Until) {
            let span = self.span();
            self.error(span, "a sample has no 'until' (only sequences do)");
            failed = true;
        }
        if failed {
            return Err(Reported);
        }
        let before = self.errors.len();
        self.check_key_counts(items.iter());
        if self.errors.len() > before {
            return Err(Reported);
        }
        let end = items.last().map_or(keyword, |item| item.span);
        Ok(Sample {
            by,
            items,
            span: keyword.to(end),
        })
    }

    /// `by k1, k2, ...`
    fn join_keys(&mut self) -> PResult<Vec<Expr>> {
        self.bump();
        let mut keys = Vec::new();
        loop {
            if !starts_operand(self.kind()) {
                let what = if keys.is_empty() { "'by'" } else { "','" };
                return Err(self.unexpected(&format!("a join key (a field) after {what}")));
            }
            keys.push(self.expr()?.expr);
            if self.eat(&TokenKind::Comma).is_none() {
                return Ok(keys);
            }
        }
    }

    /// `with maxspan=N(ms|s|m|h|d)`
    fn maxspan(&mut self) -> PResult<TimeSpan> {
        self.bump();
        if self.eat_keyword(Keyword::Maxspan).is_none() {
            if matches!(self.kind(), TokenKind::Ident("runs")) {
                let span = self.span();
                return Err(self.error(
                    span,
                    "'with runs=N' belongs after a sequence item, e.g. '[process where true] with runs=3'",
                ));
            }
            return Err(self.unexpected("'maxspan' after 'with'"));
        }
        self.expect_assign("maxspan")?;
        let number = self.token().clone();
        let value = match number.kind {
            TokenKind::Int(n) => n,
            TokenKind::Float(_) => {
                return Err(self.error(
                    number.span,
                    "maxspan must be a whole number with a unit, e.g. 500ms rather than 0.5s",
                ))
            }
            _ => return Err(self.unexpected("a time span after 'maxspan=', e.g. 5s")),
        };
        self.bump();
        let unit = self.token().clone();
        let TokenKind::Ident(unit_name) = unit.kind else {
            return Err(self.error(
                number.span,
                format!(
                    "maxspan needs a time unit (ms, s, m, h or d), e.g. {value}s; found {}",
                    unit.kind.describe()
                ),
            ));
        };
        let per_unit: u64 = match unit_name {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(self.error(
                    unit.span,
                    format!(
                        "unknown time unit '{unit_name}' in maxspan; expected ms, s, m, h or d"
                    ),
                ))
            }
        };
        self.bump();
        let span = number.span.to(unit.span);
        if value == 0 {
            return Err(self.error(span, "maxspan must be greater than zero"));
        }
        let Some(millis) = value.checked_mul(per_unit) else {
            return Err(self.error(span, "maxspan is too large"));
        };
        Ok(TimeSpan { millis, span })
    }

    fn expect_assign(&mut self, after: &str) -> PResult<()> {
        if self.eat(&TokenKind::Assign).is_some() {
            return Ok(());
        }
        if self.at(&TokenKind::EqEq) {
            let span = self.span();
            return Err(self.error(
                span,
                format!("use a single '=' after '{after}', as in '{after}=5'"),
            ));
        }
        Err(self.unexpected(&format!("'=' after '{after}'")))
    }

    /// One bracketed item, with its `by` keys and `with runs=N`.
    fn item(&mut self, context: ItemContext) -> PResult<SequenceItem> {
        let open = self.bump();
        let missing = open.kind == TokenKind::MissingOpen;
        let mut failed = false;
        if missing && context != ItemContext::Sequence {
            let message = match context {
                ItemContext::Until => "the 'until' item cannot be a missing event '![...]'",
                _ => "a sample cannot have missing events '![...]'",
            };
            self.error(open.span, message);
            failed = true;
        }
        let what = context.noun();
        let query = self.event_query();
        let mut close = open.span;
        match (&query, self.eat(&TokenKind::RBracket)) {
            (Ok(_), Some(span)) => close = span,
            (Ok(_), None) => {
                let opened = self.position(open.span);
                self.unexpected(&format!("']' to close the {what} opened at {opened}"));
                if !self.skip_past(&TokenKind::RBracket) {
                    return Err(Reported);
                }
            }
            (Err(_), Some(_)) => {}
            (Err(_), None) => {
                if !self.skip_past(&TokenKind::RBracket) {
                    return Err(Reported);
                }
            }
        }
        let mut by = Vec::new();
        if self.at_keyword(Keyword::By) {
            match self.join_keys() {
                Ok(keys) => {
                    if let Some(last) = keys.last() {
                        close = close.to(last.span);
                    }
                    by = keys;
                }
                Err(_) => failed = true,
            }
        }
        let mut runs = None;
        if self.at_keyword(Keyword::With) {
            match self.runs(context) {
                Ok((n, span)) => {
                    runs = Some(n);
                    close = close.to(span);
                }
                Err(_) => failed = true,
            }
        }
        let query = query?;
        if failed {
            return Err(Reported);
        }
        Ok(SequenceItem {
            query,
            by,
            runs,
            missing,
            span: open.span.to(close),
        })
    }

    /// `with runs=N` after an item.
    fn runs(&mut self, context: ItemContext) -> PResult<(u32, Span)> {
        let with = self.bump().span;
        if context != ItemContext::Sequence {
            let message = match context {
                ItemContext::Until => "the 'until' item takes no 'with runs=N'",
                _ => "sample items take no 'with runs=N'",
            };
            return Err(self.error(with, message));
        }
        match self.kind() {
            TokenKind::Ident("runs") => {
                self.bump();
            }
            TokenKind::Keyword(Keyword::Maxspan) => {
                let span = self.span();
                return Err(self.error(
                    span,
                    "'with maxspan=...' belongs to the sequence: write 'sequence [by ...] with \
                     maxspan=...' before the first item",
                ));
            }
            _ => return Err(self.unexpected("'runs' after 'with'")),
        }
        self.expect_assign("runs")?;
        let token = self.token().clone();
        let TokenKind::Int(n) = token.kind else {
            return Err(self.unexpected("a number of runs after 'runs='"));
        };
        self.bump();
        if !(1..=MAX_RUNS).contains(&n) {
            return Err(self.error(
                token.span,
                format!("runs must be between 1 and {MAX_RUNS}, found {n}"),
            ));
        }
        // In range, so it fits.
        Ok((n as u32, with.to(token.span)))
    }

    /// `| head N`, `| tail N`; other pipes are reported and skipped.
    fn pipes(&mut self) -> PResult<Vec<Pipe>> {
        let mut pipes = Vec::new();
        let mut failed = false;
        while let Some(bar) = self.eat(&TokenKind::Pipe) {
            match self.pipe(bar) {
                Ok(pipe) => pipes.push(pipe),
                Err(_) => {
                    failed = true;
                    while !matches!(self.kind(), TokenKind::Pipe | TokenKind::Eof) {
                        self.bump();
                    }
                }
            }
        }
        if failed {
            Err(Reported)
        } else {
            Ok(pipes)
        }
    }

    fn pipe(&mut self, bar: Span) -> PResult<Pipe> {
        let name = self.token().clone();
        let head = match name.kind {
            TokenKind::Ident("head") => true,
            TokenKind::Ident("tail") => false,
            TokenKind::Ident(other) => {
                return Err(self.error(
                    name.span,
                    format!(
                        "pipe '{other}' is not supported: Elasticsearch EQL supports only \
                         '| head N' and '| tail N'"
                    ),
                ))
            }
            _ => return Err(self.unexpected("a pipe name ('head' or 'tail') after '|'")),
        };
        self.bump();
        let count = self.token().clone();
        let TokenKind::Int(n) = count.kind else {
            let which = if head { "head" } else { "tail" };
            return Err(self.unexpected(&format!("a number of results after '{which}'")));
        };
        self.bump();
        let span = bar.to(count.span);
        Ok(if head {
            Pipe::Head(n, span)
        } else {
            Pipe::Tail(n, span)
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ItemContext {
    Sequence,
    Until,
    Sample,
}

impl ItemContext {
    fn noun(self) -> &'static str {
        match self {
            ItemContext::Sequence => "sequence item",
            ItemContext::Until => "'until' item",
            ItemContext::Sample => "sample item",
        }
    }
}

fn body_span(body: &QueryBody) -> Span {
    match body {
        QueryBody::Event(event) => event.span,
        QueryBody::Sequence(sequence) => sequence.span,
        QueryBody::Sample(sample) => sample.span,
    }
}

fn pipe_span(pipe: &Pipe) -> Span {
    match pipe {
        Pipe::Head(_, span) | Pipe::Tail(_, span) => *span,
    }
}

// ---------------------------------------------------------------------------------------------
// Expressions.

impl<'s> Parser<'s> {
    /// A full condition: `or` of `and`s.
    fn expr(&mut self) -> PResult<Tree> {
        let span = self.span();
        self.nested(span, |p| p.logical_chain(Keyword::Or))
    }

    /// `operand (op operand)*` for `or` (operands are `and` chains) or `and` (operands are
    /// `not`s). A broken operand is reported and skipped up to the next `and`/`or`, so one pass
    /// finds the errors in every operand.
    fn logical_chain(&mut self, op: Keyword) -> PResult<Tree> {
        let mut operands = Vec::new();
        let mut failed = false;
        'operands: loop {
            let operand = if op == Keyword::Or {
                self.logical_chain(Keyword::And)
            } else {
                self.not_expr()
            };
            match operand {
                Ok(tree) => operands.push(tree),
                Err(_) => {
                    failed = true;
                    // An `and` chain skips to the next `and`/`or`; an `or` chain goes on only if
                    // its broken `and` chain stopped on an `or`.
                    let recovered = if op == Keyword::And {
                        self.recover_to_logical_operator()
                    } else {
                        !self.abort && self.at_keyword(Keyword::Or)
                    };
                    if !recovered {
                        return Err(Reported);
                    }
                }
            }
            // The operator, then something that can start a condition.
            loop {
                if self.eat_keyword(op).is_none() {
                    break 'operands;
                }
                if starts_condition(self.kind()) {
                    break;
                }
                self.unexpected(&format!("a condition after '{}'", op.as_str()));
                failed = true;
                if !self.recover_to_logical_operator() {
                    return Err(Reported);
                }
            }
        }
        if failed {
            return Err(Reported);
        }
        self.balanced(operands, op)
    }

    /// Joins `operands` with `op` as a balanced tree (depth log2 n), keeping their order.
    fn balanced(&mut self, mut operands: Vec<Tree>, op: Keyword) -> PResult<Tree> {
        while operands.len() > 1 {
            let mut paired = Vec::with_capacity(operands.len().div_ceil(2));
            let mut iter = operands.into_iter();
            while let Some(left) = iter.next() {
                match iter.next() {
                    Some(right) => {
                        let span = left.span().to(right.span());
                        let height = left.height.max(right.height);
                        let (l, r) = (Box::new(left.expr), Box::new(right.expr));
                        let kind = if op == Keyword::Or {
                            ExprKind::Or(l, r)
                        } else {
                            ExprKind::And(l, r)
                        };
                        paired.push(self.node(kind, span, height)?);
                    }
                    None => paired.push(left),
                }
            }
            operands = paired;
        }
        match operands.pop() {
            Some(tree) => Ok(tree),
            None => Err(self.unexpected("a condition")),
        }
    }

    /// `not x` (any number of times), or a predicate.
    fn not_expr(&mut self) -> PResult<Tree> {
        let Some(not) = self.eat_keyword(Keyword::Not) else {
            return self.predicate();
        };
        if !starts_condition(self.kind()) {
            return Err(self.unexpected("a condition after 'not'"));
        }
        let inner = self.nested(not, |p| p.not_expr())?;
        let span = not.to(inner.span());
        self.node(ExprKind::Not(Box::new(inner.expr)), span, inner.height)
    }

    /// A value, optionally compared, matched or tested for membership; never chained.
    fn predicate(&mut self) -> PResult<Tree> {
        let value = self.sum()?;
        let op_token = self.token().clone();
        let tree = match &op_token.kind {
            TokenKind::EqEq
            | TokenKind::NotEq
            | TokenKind::Lt
            | TokenKind::LtEq
            | TokenKind::Gt
            | TokenKind::GtEq
            | TokenKind::Assign => self.comparison(value)?,
            TokenKind::Colon
            | TokenKind::Keyword(
                Keyword::Like
                | Keyword::LikeInsensitive
                | Keyword::Regex
                | Keyword::RegexInsensitive,
            ) => self.matching(value)?,
            TokenKind::Keyword(Keyword::In | Keyword::InInsensitive) => {
                self.membership(value, false)?
            }
            TokenKind::Keyword(Keyword::Not)
                if matches!(
                    self.nth_kind(1),
                    TokenKind::Keyword(Keyword::In | Keyword::InInsensitive)
                ) =>
            {
                self.bump();
                self.membership(value, true)?
            }
            TokenKind::Keyword(Keyword::Not) => {
                return Err(self.error(
                    op_token.span,
                    "unexpected 'not' after a value: write 'not' before the condition it \
                     negates ('not x : \"a\"'), or use 'not in'",
                ))
            }
            _ => return Ok(value),
        };
        let not_in = self.at_keyword(Keyword::Not)
            && matches!(
                self.nth_kind(1),
                TokenKind::Keyword(Keyword::In | Keyword::InInsensitive)
            );
        if is_predicate_operator(self.kind()) || not_in {
            let span = self.span();
            return Err(self.error(
                span,
                format!(
                    "unexpected {} after a comparison: comparisons cannot be chained; join \
                     them with 'and', or add parentheses",
                    self.kind().describe()
                ),
            ));
        }
        Ok(tree)
    }

    fn comparison(&mut self, left: Tree) -> PResult<Tree> {
        let op_token = self.bump();
        let op = match op_token.kind {
            TokenKind::EqEq => CmpOp::Eq,
            TokenKind::NotEq => CmpOp::Ne,
            TokenKind::Lt => CmpOp::Lt,
            TokenKind::LtEq => CmpOp::Le,
            TokenKind::Gt => CmpOp::Gt,
            TokenKind::GtEq => CmpOp::Ge,
            _ => {
                // `=`: report, then read it as the `==` it surely meant.
                self.error(
                    op_token.span,
                    "'=' is not a comparison operator; use '==' for equality",
                );
                CmpOp::Eq
            }
        };
        if !starts_operand(self.kind()) {
            let shown = op_token.kind.describe();
            return Err(self.unexpected(&format!("a value after {shown}")));
        }
        let right = self.sum()?;
        let span = left.span().to(right.span());
        let height = left.height.max(right.height);
        self.node(
            ExprKind::Compare(op, Box::new(left.expr), Box::new(right.expr)),
            span,
            height,
        )
    }

    /// `value : pattern`, `value like~ ("a*", "b")`, ...
    fn matching(&mut self, value: Tree) -> PResult<Tree> {
        let op_token = self.bump();
        let op = match op_token.kind {
            TokenKind::Keyword(Keyword::Like) => MatchOp::Like,
            TokenKind::Keyword(Keyword::LikeInsensitive) => MatchOp::LikeInsensitive,
            TokenKind::Keyword(Keyword::Regex) => MatchOp::Regex,
            TokenKind::Keyword(Keyword::RegexInsensitive) => MatchOp::RegexInsensitive,
            _ => MatchOp::Colon,
        };
        let name = op.as_str();
        let (patterns, end) = if let Some(open) = self.eat(&TokenKind::LParen) {
            let owner = format!("'{name}'");
            self.list(open, "pattern", &owner, |p| p.pattern(name))?
        } else {
            let pattern = self.pattern(name)?;
            let span = pattern.span;
            (vec![pattern], span)
        };
        let span = value.span().to(end);
        self.node(
            ExprKind::Match {
                op,
                value: Box::new(value.expr),
                patterns,
            },
            span,
            value.height,
        )
    }

    /// One literal pattern of `:`/`like`/`regex` (Elasticsearch's grammar takes constants only).
    fn pattern(&mut self, op: &str) -> PResult<Expr> {
        let token = self.token().clone();
        let literal = match token.kind {
            TokenKind::Str { value, .. } => Literal::Str(value),
            TokenKind::Int(n) => Literal::Int(self.int_literal(n, token.span)),
            TokenKind::Float(f) => Literal::Float(f),
            TokenKind::Keyword(Keyword::True) => Literal::Bool(true),
            TokenKind::Keyword(Keyword::False) => Literal::Bool(false),
            TokenKind::Keyword(Keyword::Null) => Literal::Null,
            TokenKind::Ident(_) | TokenKind::QuotedIdent(_) | TokenKind::Question => {
                return Err(self.unexpected(&format!(
                    "a pattern string after '{op}' (patterns are literal strings; a field \
                     cannot be matched against another field)"
                )))
            }
            _ => return Err(self.unexpected(&format!("a pattern string after '{op}'"))),
        };
        self.bump();
        Ok(Expr {
            kind: ExprKind::Literal(literal),
            span: token.span,
        })
    }

    /// `value [not] in[~] (a, b, ...)`; the parser stands on `in`/`in~`.
    fn membership(&mut self, value: Tree, negated: bool) -> PResult<Tree> {
        let op_token = self.bump();
        let insensitive = op_token.kind == TokenKind::Keyword(Keyword::InInsensitive);
        let name = if insensitive { "in~" } else { "in" };
        let Some(open) = self.eat(&TokenKind::LParen) else {
            return Err(self.unexpected(&format!(
                "'(' after '{name}': its values are a parenthesised list, e.g. {name} (\"a\", \"b\")"
            )));
        };
        let owner = format!("'{name}'");
        let mut height = value.height;
        let (list, close) = self.list(open, "value", &owner, |p| {
            if !starts_condition(p.kind()) {
                return Err(p.unexpected(&format!("a value in the list after '{name}'")));
            }
            let tree = p.expr()?;
            height = height.max(tree.height);
            Ok(tree.expr)
        })?;
        let span = value.span().to(close);
        self.node(
            ExprKind::In {
                value: Box::new(value.expr),
                list,
                insensitive,
                negated,
            },
            span,
            height,
        )
    }

    /// The items of a parenthesised, non-empty list after its `(` at `open`, up to its `)`:
    /// `noun`s of `owner` (e.g. values of `'in'`). A broken item is reported and the next one
    /// still parsed.
    fn list<T>(
        &mut self,
        open: Span,
        noun: &str,
        owner: &str,
        mut item: impl FnMut(&mut Self) -> PResult<T>,
    ) -> PResult<(Vec<T>, Span)> {
        if let Some(close) = self.eat(&TokenKind::RParen) {
            return Err(self.error(
                open.to(close),
                format!("empty list after {owner}: expected at least one {noun}"),
            ));
        }
        let mut items = Vec::new();
        let mut failed = false;
        loop {
            match item(self) {
                Ok(value) => items.push(value),
                Err(_) => {
                    failed = true;
                    if self.abort {
                        return Err(Reported);
                    }
                    if !matches!(self.kind(), TokenKind::Comma | TokenKind::RParen) {
                        self.skip_past(&TokenKind::RParen);
                        return Err(Reported);
                    }
                }
            }
            if self.eat(&TokenKind::Comma).is_some() {
                if self.at(&TokenKind::RParen) {
                    self.unexpected(&format!("a {noun} after ','"));
                    self.bump();
                    return Err(Reported);
                }
                continue;
            }
            if let Some(close) = self.eat(&TokenKind::RParen) {
                return if failed {
                    Err(Reported)
                } else {
                    Ok((items, close))
                };
            }
            let opened = self.position(open);
            self.unexpected(&format!("',' or ')' to close the list opened at {opened}"));
            self.skip_past(&TokenKind::RParen);
            return Err(Reported);
        }
    }

    /// `product (("+" | "-") product)*`, left-associative.
    fn sum(&mut self) -> PResult<Tree> {
        let mut left = self.product()?;
        loop {
            let op = match self.kind() {
                TokenKind::Plus => ArithOp::Add,
                TokenKind::Minus => ArithOp::Sub,
                _ => return Ok(left),
            };
            left = self.arith(left, op, Self::product)?;
        }
    }

    /// `unary (("*" | "/" | "%") unary)*`, left-associative.
    fn product(&mut self) -> PResult<Tree> {
        let mut left = self.unary()?;
        loop {
            let op = match self.kind() {
                TokenKind::Star => ArithOp::Mul,
                TokenKind::Slash => ArithOp::Div,
                TokenKind::Percent => ArithOp::Mod,
                _ => return Ok(left),
            };
            left = self.arith(left, op, Self::unary)?;
        }
    }

    fn arith(
        &mut self,
        left: Tree,
        op: ArithOp,
        operand: fn(&mut Self) -> PResult<Tree>,
    ) -> PResult<Tree> {
        let op_token = self.bump();
        if !starts_operand(self.kind()) {
            let shown = op_token.kind.describe();
            return Err(self.unexpected(&format!("a value after {shown}")));
        }
        let right = operand(self)?;
        let span = left.span().to(right.span());
        let height = left.height.max(right.height);
        self.node(
            ExprKind::Arith(op, Box::new(left.expr), Box::new(right.expr)),
            span,
            height,
        )
    }

    /// `-x`, `+x`, or a primary. A minus directly before a number literal is folded into it.
    fn unary(&mut self) -> PResult<Tree> {
        let sign = self.token().clone();
        let negative = match sign.kind {
            TokenKind::Minus => true,
            TokenKind::Plus => false,
            _ => return self.primary(),
        };
        self.bump();
        if !starts_operand(self.kind()) {
            return Err(self.unexpected(&format!("a value after {}", sign.kind.describe())));
        }
        let number = self.token().clone();
        let folded = match number.kind {
            TokenKind::Int(n) if negative => Some(Literal::Int(
                self.negative_int(n, sign.span.to(number.span)),
            )),
            TokenKind::Int(n) => Some(Literal::Int(self.int_literal(n, number.span))),
            TokenKind::Float(f) => Some(Literal::Float(if negative { -f } else { f })),
            _ => None,
        };
        if let Some(literal) = folded {
            self.bump();
            return Ok(Tree::leaf(
                ExprKind::Literal(literal),
                sign.span.to(number.span),
            ));
        }
        let inner = self.nested(sign.span, |p| p.unary())?;
        let span = sign.span.to(inner.span());
        if negative {
            self.node(ExprKind::Neg(Box::new(inner.expr)), span, inner.height)
        } else {
            Ok(Tree {
                expr: Expr {
                    kind: inner.expr.kind,
                    span,
                },
                height: inner.height,
            })
        }
    }

    /// An integer literal that must fit `i64`; out of range is reported (and read as 0).
    fn int_literal(&mut self, n: u64, span: Span) -> i64 {
        i64::try_from(n).unwrap_or_else(|_| {
            self.error(
                span,
                format!(
                    "integer {n} is too large: integers must fit in a signed 64-bit integer \
                     (at most {})",
                    i64::MAX
                ),
            );
            0
        })
    }

    /// `-n`, which reaches one further than `n` (down to `i64::MIN`).
    fn negative_int(&mut self, n: u64, span: Span) -> i64 {
        if n == i64::MIN.unsigned_abs() {
            return i64::MIN;
        }
        match i64::try_from(n) {
            Ok(v) => -v,
            Err(_) => {
                self.error(
                    span,
                    format!(
                        "integer -{n} is too small: integers must fit in a signed 64-bit integer \
                         (at least {})",
                        i64::MIN
                    ),
                );
                0
            }
        }
    }

    fn primary(&mut self) -> PResult<Tree> {
        let token = self.token().clone();
        let literal = match token.kind {
            TokenKind::Int(n) => Some(Literal::Int(self.int_literal(n, token.span))),
            TokenKind::Float(f) => Some(Literal::Float(f)),
            TokenKind::Str { ref value, .. } => Some(Literal::Str(value.clone())),
            TokenKind::Keyword(Keyword::True) => Some(Literal::Bool(true)),
            TokenKind::Keyword(Keyword::False) => Some(Literal::Bool(false)),
            TokenKind::Keyword(Keyword::Null) => Some(Literal::Null),
            _ => None,
        };
        if let Some(literal) = literal {
            self.bump();
            return Ok(Tree::leaf(ExprKind::Literal(literal), token.span));
        }
        match token.kind {
            TokenKind::LParen => self.parenthesised(),
            TokenKind::Ident(name) if self.nth_kind(1) == &TokenKind::LParen => {
                self.call(name, false)
            }
            TokenKind::TildeIdent(name) => {
                if self.nth_kind(1) != &TokenKind::LParen {
                    return Err(self.error(
                        token.span,
                        format!(
                            "expected '(' after '{name}~': '~' marks a case-insensitive \
                             function call, e.g. {name}~(field, \"x\")"
                        ),
                    ));
                }
                self.call(name, true)
            }
            TokenKind::Ident(_) | TokenKind::QuotedIdent(_) => self.field(false, token.span),
            TokenKind::Question => {
                self.bump();
                if !matches!(self.kind(), TokenKind::Ident(_) | TokenKind::QuotedIdent(_)) {
                    return Err(self.unexpected("a field name after '?'"));
                }
                self.field(true, token.span)
            }
            _ => Err(self.unexpected("a value")),
        }
    }

    fn parenthesised(&mut self) -> PResult<Tree> {
        let open = self.bump().span;
        if !starts_condition(self.kind()) {
            if self.at(&TokenKind::RParen) {
                let close = self.bump().span;
                return Err(self.error(
                    open.to(close),
                    "empty parentheses: expected a value or condition inside '()'",
                ));
            }
            return Err(self.unexpected("a value or condition after '('"));
        }
        let inner = match self.expr() {
            Ok(inner) => inner,
            Err(reported) => {
                self.skip_past(&TokenKind::RParen);
                return Err(reported);
            }
        };
        let Some(close) = self.eat(&TokenKind::RParen) else {
            let opened = self.position(open);
            let reported = self.unexpected(&format!("')' to close the '(' opened at {opened}"));
            self.skip_past(&TokenKind::RParen);
            return Err(reported);
        };
        Ok(Tree {
            expr: Expr {
                kind: inner.expr.kind,
                span: open.to(close),
            },
            height: inner.height,
        })
    }

    /// `name(args)` or `name~(args)`; the parser stands on the name.
    fn call(&mut self, name: &str, insensitive: bool) -> PResult<Tree> {
        let name_span = self.bump().span;
        let open = self.bump().span;
        let mut height = 0;
        let (args, close) = if let Some(close) = self.eat(&TokenKind::RParen) {
            (Vec::new(), close)
        } else {
            let owner = format!("'{name}'");
            self.list(open, "argument", &owner, |p| {
                if !starts_condition(p.kind()) {
                    return Err(p.unexpected(&format!("an argument of '{name}'")));
                }
                let tree = p.expr()?;
                height = height.max(tree.height);
                Ok(tree.expr)
            })?
        };
        self.node(
            ExprKind::Call {
                name: name.to_string(),
                insensitive,
                args,
                name_span,
            },
            name_span.to(close),
            height,
        )
    }

    /// A dotted field path; the parser stands on its first segment (after any `?` at `start`).
    fn field(&mut self, optional: bool, start: Span) -> PResult<Tree> {
        let mut path = String::new();
        let mut end: Span;
        loop {
            let token = self.token().clone();
            match &token.kind {
                TokenKind::Ident(name) => path.push_str(name),
                TokenKind::QuotedIdent(name) => path.push_str(name),
                // After a dot a keyword can only be a name (`event.sequence`).
                TokenKind::Keyword(k) if !path.is_empty() && !k.as_str().ends_with('~') => {
                    path.push_str(k.as_str())
                }
                _ => return Err(self.unexpected("a field name after '.'")),
            }
            self.bump();
            end = token.span;
            if self.eat(&TokenKind::Dot).is_none() {
                break;
            }
            path.push('.');
        }
        if self.at(&TokenKind::LBracket) && matches!(self.nth_kind(1), TokenKind::Int(_)) {
            let open = self.bump().span;
            self.bump();
            let close = self.eat(&TokenKind::RBracket).unwrap_or(open);
            self.errors.push(Error::unsupported(
                open.to(close),
                format!("array indexes like '{path}[0]' are not supported by Elasticsearch EQL"),
            ));
            return Err(Reported);
        }
        Ok(Tree::leaf(
            ExprKind::Field(Field { path, optional }),
            start.to(end),
        ))
    }
}

fn is_predicate_operator(kind: &TokenKind<'_>) -> bool {
    matches!(
        kind,
        TokenKind::EqEq
            | TokenKind::NotEq
            | TokenKind::Lt
            | TokenKind::LtEq
            | TokenKind::Gt
            | TokenKind::GtEq
            | TokenKind::Assign
            | TokenKind::Colon
            | TokenKind::Keyword(
                Keyword::Like
                    | Keyword::LikeInsensitive
                    | Keyword::Regex
                    | Keyword::RegexInsensitive
                    | Keyword::In
                    | Keyword::InInsensitive
            )
    )
}
