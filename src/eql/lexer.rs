//! EQL text → tokens with byte spans, following the Elasticsearch lexer.
//!
//! The lexer never stops at a bad character: it records an [`Error`] and moves on, so one pass
//! reports every lexical problem. Where the intent is clear (a single-quoted string, a bad escape)
//! it still yields the token the author meant, so the parser can check the rest of the query;
//! where it is not, it yields [`TokenKind::Error`], which the parser skips silently because the
//! problem has already been reported.
//!
//! Elasticsearch's rules, and where we are stricter or looser:
//! - strings are `"..."` with escapes `\n \r \t \\ \"` and `\u{XXXX}` (2–8 hex digits) and cannot
//!   span lines; raw strings `"""..."""` take every character literally and may end with up to two
//!   extra `"` that belong to the value (`"""a""""` is `a"`). Elasticsearch keeps raw strings on
//!   one line; we also accept newlines in them. Elasticsearch's lexer also passes `\b`, `\f` and
//!   `\'`; we reject them with a message saying what to write instead.
//! - `'...'`, `?"..."` and `?'...'` are legacy strings: reported, then read as the string meant.
//! - identifiers are `[A-Za-z_@][A-Za-z0-9_]*`; keywords are lowercase only (`AND` is a name);
//!   `` `odd-name` `` is a quoted name (a doubled backtick is a literal one); `name~` is a
//!   case-insensitive function name, with `in~`, `like~` and `regex~` as operators.
//! - comments are `// ...` to end of line and `/* ... */`, which nest as in Elasticsearch.
//! - numbers are integers (`u64` here; the parser checks the signed range), decimals (`1.`, `.5`,
//!   `1.5`) and exponents (`1e3`, `2.5E-1`).

use super::ast::Span;
use super::error::Error;

/// Lexing stops recording errors after this many (hostile input could otherwise make millions).
pub const MAX_ERRORS: usize = 64;

#[derive(Clone, Debug, PartialEq)]
pub struct Token<'a> {
    pub kind: TokenKind<'a>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum TokenKind<'a> {
    /// A plain name: a field segment, a category, a function or pipe name.
    Ident(&'a str),
    /// `` `name` `` with the backticks removed and doubled backticks collapsed.
    QuotedIdent(String),
    /// `name~`: a case-insensitive function name (without the `~`).
    TildeIdent(&'a str),
    Keyword(Keyword),
    /// A string literal, decoded. `raw` for `"""..."""`.
    Str {
        value: String,
        raw: bool,
    },
    Int(u64),
    Float(f64),
    /// `==`
    EqEq,
    /// `=`: only valid in `maxspan=` and `runs=`.
    Assign,
    /// `!=`
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    /// `:`
    Colon,
    Plus,
    Minus,
    Star,
    Slash,
    Percent,
    Dot,
    Comma,
    LBracket,
    /// `![`: opens a missing-event sequence item.
    MissingOpen,
    RBracket,
    LParen,
    RParen,
    Pipe,
    /// `?`: marks an optional field.
    Question,
    /// Something that is not EQL; already reported.
    Error,
    Eof,
}

/// Reserved words (lowercase only, as in Elasticsearch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keyword {
    And,
    Any,
    By,
    False,
    In,
    /// `in~`
    InInsensitive,
    Join,
    Like,
    /// `like~`
    LikeInsensitive,
    Maxspan,
    Not,
    Null,
    Of,
    Or,
    Regex,
    /// `regex~`
    RegexInsensitive,
    Sample,
    Sequence,
    True,
    Until,
    Where,
    With,
}

impl Keyword {
    const ALL: [Keyword; 22] = [
        Keyword::And,
        Keyword::Any,
        Keyword::By,
        Keyword::False,
        Keyword::In,
        Keyword::InInsensitive,
        Keyword::Join,
        Keyword::Like,
        Keyword::LikeInsensitive,
        Keyword::Maxspan,
        Keyword::Not,
        Keyword::Null,
        Keyword::Of,
        Keyword::Or,
        Keyword::Regex,
        Keyword::RegexInsensitive,
        Keyword::Sample,
        Keyword::Sequence,
        Keyword::True,
        Keyword::Until,
        Keyword::Where,
        Keyword::With,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Keyword::And => "and",
            Keyword::Any => "any",
            Keyword::By => "by",
            Keyword::False => "false",
            Keyword::In => "in",
            Keyword::InInsensitive => "in~",
            Keyword::Join => "join",
            Keyword::Like => "like",
            Keyword::LikeInsensitive => "like~",
            Keyword::Maxspan => "maxspan",
            Keyword::Not => "not",
            Keyword::Null => "null",
            Keyword::Of => "of",
            Keyword::Or => "or",
            Keyword::Regex => "regex",
            Keyword::RegexInsensitive => "regex~",
            Keyword::Sample => "sample",
            Keyword::Sequence => "sequence",
            Keyword::True => "true",
            Keyword::Until => "until",
            Keyword::Where => "where",
            Keyword::With => "with",
        }
    }

    /// The keyword spelled exactly `word` (lowercase), if any.
    pub fn from_word(word: &str) -> Option<Keyword> {
        Keyword::ALL.into_iter().find(|k| k.as_str() == word)
    }

    /// The keyword `word` would be if it were lowercase: for "keywords are lowercase" hints.
    pub fn from_word_any_case(word: &str) -> Option<Keyword> {
        Keyword::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(word))
    }
}

impl TokenKind<'_> {
    /// How the token reads in an error message: `'=='`, `'and'`, `string "abc"`, `end of query`.
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Ident(name) => format!("'{name}'"),
            TokenKind::QuotedIdent(name) => format!("'`{}`'", name.replace('`', "``")),
            TokenKind::TildeIdent(name) => format!("'{name}~'"),
            TokenKind::Keyword(k) => format!("'{}'", k.as_str()),
            TokenKind::Str { value, .. } => {
                let mut shown: String = value.chars().take(24).collect();
                if shown.len() < value.len() {
                    shown.push_str("...");
                }
                format!("string {shown:?}")
            }
            TokenKind::Int(n) => format!("number {n}"),
            TokenKind::Float(f) => format!("number {f}"),
            TokenKind::Error => "an invalid token".to_string(),
            TokenKind::Eof => "end of query".to_string(),
            punct => format!("'{}'", punct.punct_str()),
        }
    }

    fn punct_str(&self) -> &'static str {
        match self {
            TokenKind::EqEq => "==",
            TokenKind::Assign => "=",
            TokenKind::NotEq => "!=",
            TokenKind::Lt => "<",
            TokenKind::LtEq => "<=",
            TokenKind::Gt => ">",
            TokenKind::GtEq => ">=",
            TokenKind::Colon => ":",
            TokenKind::Plus => "+",
            TokenKind::Minus => "-",
            TokenKind::Star => "*",
            TokenKind::Slash => "/",
            TokenKind::Percent => "%",
            TokenKind::Dot => ".",
            TokenKind::Comma => ",",
            TokenKind::LBracket => "[",
            TokenKind::MissingOpen => "![",
            TokenKind::RBracket => "]",
            TokenKind::LParen => "(",
            TokenKind::RParen => ")",
            TokenKind::Pipe => "|",
            TokenKind::Question => "?",
            _ => "?",
        }
    }
}

/// Splits `src` into tokens (always ending with [`TokenKind::Eof`]) and every lexical error.
pub fn tokenize(src: &str) -> (Vec<Token<'_>>, Vec<Error>) {
    let mut lexer = Lexer {
        src,
        pos: 0,
        tokens: Vec::new(),
        errors: Vec::new(),
    };
    lexer.run();
    (lexer.tokens, lexer.errors)
}

struct Lexer<'a> {
    src: &'a str,
    /// Byte offset of the next unread character; always on a char boundary.
    pos: usize,
    tokens: Vec<Token<'a>>,
    errors: Vec<Error>,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == '@'
}

fn is_ident_continue(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A character as an error message shows it: printable ones quoted, others as `U+XXXX`.
fn show_char(c: char) -> String {
    if c.is_control() || c.is_whitespace() || c == '\u{feff}' {
        format!("U+{:04X}", c as u32)
    } else {
        format!("'{c}'")
    }
}

impl<'a> Lexer<'a> {
    fn rest(&self) -> &'a str {
        self.src.get(self.pos..).unwrap_or("")
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        Some(c)
    }

    fn error(&mut self, start: usize, end: usize, message: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors
                .push(Error::syntax(Span::new(start, end), message));
        }
    }

    fn push(&mut self, kind: TokenKind<'a>, start: usize) {
        self.tokens.push(Token {
            kind,
            span: Span::new(start, self.pos),
        });
    }

    fn run(&mut self) {
        while let Some(c) = self.peek() {
            let start = self.pos;
            match c {
                ' ' | '\t' | '\r' | '\n' => {
                    self.bump();
                }
                '/' if self.peek_at(1) == Some('/') => self.line_comment(),
                '/' if self.peek_at(1) == Some('*') => self.block_comment(),
                '"' => self.string(),
                '\'' => self.legacy_string(start, start, '\''),
                '?' if matches!(self.peek_at(1), Some('"' | '\'')) => {
                    self.bump();
                    let quote = self.peek().unwrap_or('"');
                    self.legacy_string(start, self.pos, quote);
                }
                '`' => self.quoted_ident(),
                '0'..='9' => self.number(),
                '.' if matches!(self.peek_at(1), Some('0'..='9')) => self.number(),
                c if is_ident_start(c) => self.word(),
                _ => self.punct(c),
            }
        }
        let end = self.src.len();
        self.tokens.push(Token {
            kind: TokenKind::Eof,
            span: Span::new(end, end),
        });
    }

    fn line_comment(&mut self) {
        while let Some(c) = self.peek() {
            if c == '\n' {
                break;
            }
            self.bump();
        }
    }

    /// `/* ... */`, nesting like Elasticsearch's `BRACKETED_COMMENT`.
    fn block_comment(&mut self) {
        let start = self.pos;
        self.pos += 2;
        let mut depth = 1usize;
        while depth > 0 {
            let rest = self.rest();
            if rest.starts_with("*/") {
                self.pos += 2;
                depth -= 1;
            } else if rest.starts_with("/*") {
                self.pos += 2;
                depth += 1;
            } else if self.bump().is_none() {
                self.error(
                    start,
                    start + 2,
                    "unterminated comment: '/*' has no matching '*/'",
                );
                return;
            }
        }
    }

    /// `"..."` with escapes, or `"""..."""` raw.
    fn string(&mut self) {
        let start = self.pos;
        if self.rest().starts_with("\"\"\"") {
            return self.raw_string();
        }
        self.bump();
        let mut value = String::new();
        loop {
            match self.peek() {
                None | Some('\n') | Some('\r') => {
                    self.error(
                        start,
                        self.pos,
                        "unterminated string: expected a closing '\"' before the end of the line \
                         (strings cannot span lines; write \\n for a newline)",
                    );
                    break;
                }
                Some('"') => {
                    self.bump();
                    break;
                }
                Some('\\') => self.escape(&mut value),
                Some(c) => {
                    self.bump();
                    value.push(c);
                }
            }
        }
        self.push(TokenKind::Str { value, raw: false }, start);
    }

    /// One escape sequence at `\`, decoded into `value` (or reported).
    fn escape(&mut self, value: &mut String) {
        let start = self.pos;
        self.bump();
        let Some(c) = self.peek() else {
            return; // the unterminated string is reported by the caller
        };
        match c {
            'n' | 'r' | 't' | '\\' | '"' => {
                self.bump();
                value.push(match c {
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    other => other,
                });
            }
            'u' => {
                self.bump();
                if let Some(decoded) = self.unicode_escape(start) {
                    value.push(decoded);
                }
            }
            '\n' | '\r' => {
                self.error(
                    start,
                    self.pos,
                    "a backslash cannot continue a string onto the next line; write \\n for a newline",
                );
            }
            _ => {
                self.bump();
                let hint = if c == '\'' {
                    "a single quote needs no escape inside \"...\"; write ' as it is".to_string()
                } else {
                    "valid escapes are \\n \\r \\t \\\\ \\\" and \\u{XXXX}; for a literal backslash \
                     write \\\\ or use a raw string \"\"\"...\"\"\""
                        .to_string()
                };
                self.error(
                    start,
                    self.pos,
                    format!("unknown escape sequence '\\{c}' in string: {hint}"),
                );
                value.push('\\');
                value.push(c);
            }
        }
    }

    /// The `{XXXX}` of `\u{XXXX}`; `start` is the backslash.
    fn unicode_escape(&mut self, start: usize) -> Option<char> {
        if self.peek() != Some('{') {
            self.error(
                start,
                self.pos,
                "invalid unicode escape: expected '{' after \\u (write \\u{XXXX} with 2 to 8 hex digits)",
            );
            return None;
        }
        self.bump();
        let digits_start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
            self.bump();
        }
        let digits = self.src.get(digits_start..self.pos).unwrap_or("");
        if self.peek() != Some('}') {
            let found = match self.peek() {
                None | Some('"') | Some('\n') | Some('\r') => "the end of the string".to_string(),
                Some(c) => show_char(c),
            };
            self.error(
                start,
                self.pos,
                format!(
                    "invalid unicode escape: expected hex digits and a closing '}}' in \\u{{...}}, \
                     found {found}"
                ),
            );
            return None;
        }
        self.bump();
        if !(2..=8).contains(&digits.len()) {
            self.error(
                start,
                self.pos,
                format!(
                    "invalid unicode escape: \\u{{...}} takes 2 to 8 hex digits, found {}",
                    digits.len()
                ),
            );
            return None;
        }
        let code = u32::from_str_radix(digits, 16).ok();
        match code.and_then(char::from_u32) {
            Some(c) => Some(c),
            None => {
                let why = match code {
                    Some(0xD800..=0xDFFF) => "is a surrogate, not a character",
                    _ => "is beyond U+10FFFF",
                };
                self.error(
                    start,
                    self.pos,
                    format!("invalid unicode escape: code point U+{digits} {why}"),
                );
                None
            }
        }
    }

    /// `"""..."""`: every character literal, up to two extra closing quotes kept in the value.
    fn raw_string(&mut self) {
        let start = self.pos;
        self.pos += 3;
        let body_start = self.pos;
        match self.rest().find("\"\"\"") {
            Some(offset) => {
                let mut body_end = body_start + offset;
                self.pos = body_end + 3;
                for _ in 0..2 {
                    if self.peek() == Some('"') {
                        self.bump();
                        body_end += 1;
                    }
                }
                let value = self.src.get(body_start..body_end).unwrap_or("").to_string();
                self.push(TokenKind::Str { value, raw: true }, start);
            }
            None => {
                self.pos = self.src.len();
                self.error(
                    start,
                    start + 3,
                    "unterminated raw string: '\"\"\"' has no matching closing '\"\"\"'",
                );
                let value = self.src.get(body_start..).unwrap_or("").to_string();
                self.push(TokenKind::Str { value, raw: true }, start);
            }
        }
    }

    /// `'...'`, `?"..."` or `?'...'`: reported, then read up to the closing `quote` so parsing
    /// can continue. `body` is where the opening quote is.
    fn legacy_string(&mut self, start: usize, body: usize, quote: char) {
        self.pos = body;
        self.bump();
        let verbatim = start != body;
        let mut value = String::new();
        let mut closed = false;
        while let Some(c) = self.peek() {
            if c == '\n' || c == '\r' {
                break;
            }
            self.bump();
            if c == quote {
                closed = true;
                break;
            }
            if c == '\\' && !verbatim {
                if let Some(next) = self.bump() {
                    value.push(next);
                }
                continue;
            }
            if c == '\\' && self.peek() == Some(quote) {
                self.bump();
                value.push(quote);
                continue;
            }
            value.push(c);
        }
        let message = if verbatim {
            format!(
                "'?{quote}...{quote}' strings are not supported; use a raw string \"\"\"...\"\"\" \
                 for text without escapes"
            )
        } else {
            "single quotes are reserved; use double quotes for strings: \"...\"".to_string()
        };
        self.error(start, self.pos, message);
        if !closed {
            self.error(
                start,
                self.pos,
                format!(
                    "unterminated string: expected a closing {quote} before the end of the line"
                ),
            );
        }
        self.push(
            TokenKind::Str {
                value,
                raw: verbatim,
            },
            start,
        );
    }

    /// `` `name` `` with doubled backticks standing for one.
    fn quoted_ident(&mut self) {
        let start = self.pos;
        self.bump();
        let mut name = String::new();
        loop {
            match self.bump() {
                None => {
                    self.error(
                        start,
                        start + 1,
                        "unterminated quoted name: '`' has no matching closing '`'",
                    );
                    self.push(TokenKind::Error, start);
                    return;
                }
                Some('`') if self.peek() == Some('`') => {
                    self.bump();
                    name.push('`');
                }
                Some('`') => break,
                Some(c) => name.push(c),
            }
        }
        if name.is_empty() {
            self.error(start, self.pos, "empty quoted name: '``' names nothing");
            self.push(TokenKind::Error, start);
            return;
        }
        self.push(TokenKind::QuotedIdent(name), start);
    }

    fn number(&mut self) {
        let start = self.pos;
        let mut is_float = false;
        self.digits();
        if self.peek() == Some('.') && !matches!(self.peek_at(1), Some(c) if is_ident_start(c)) {
            is_float = true;
            self.bump();
            self.digits();
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.peek_at(1), Some('+' | '-')));
            if matches!(self.peek_at(1 + sign), Some('0'..='9')) {
                is_float = true;
                self.pos += 1 + sign;
                self.digits();
            }
        }
        let text = self.src.get(start..self.pos).unwrap_or("");
        let kind = if is_float {
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => TokenKind::Float(f),
                _ => {
                    self.error(
                        start,
                        self.pos,
                        format!("number {text} is too large for a 64-bit float"),
                    );
                    TokenKind::Error
                }
            }
        } else {
            match text.parse::<u64>() {
                Ok(n) => TokenKind::Int(n),
                Err(_) => {
                    self.error(
                        start,
                        self.pos,
                        format!(
                            "integer {text} is too large: integers must fit in a signed 64-bit \
                             integer (at most {})",
                            i64::MAX
                        ),
                    );
                    TokenKind::Error
                }
            }
        };
        self.push(kind, start);
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
    }

    /// A name, a keyword, `name~`, or one of `in~` `like~` `regex~`.
    fn word(&mut self) {
        let start = self.pos;
        self.bump();
        while self.peek().is_some_and(is_ident_continue) {
            self.bump();
        }
        let word = self.src.get(start..self.pos).unwrap_or("");
        if self.peek() == Some('~') {
            self.bump();
            let kind = match word {
                "in" => TokenKind::Keyword(Keyword::InInsensitive),
                "like" => TokenKind::Keyword(Keyword::LikeInsensitive),
                "regex" => TokenKind::Keyword(Keyword::RegexInsensitive),
                _ => TokenKind::TildeIdent(word),
            };
            return self.push(kind, start);
        }
        let kind = match Keyword::from_word(word) {
            Some(k) => TokenKind::Keyword(k),
            None => TokenKind::Ident(word),
        };
        self.push(kind, start);
    }

    fn punct(&mut self, c: char) {
        let start = self.pos;
        let next = self.peek_at(1);
        let (kind, len) = match (c, next) {
            ('=', Some('=')) => (TokenKind::EqEq, 2),
            ('=', _) => (TokenKind::Assign, 1),
            ('!', Some('=')) => (TokenKind::NotEq, 2),
            ('!', Some('[')) => (TokenKind::MissingOpen, 2),
            ('<', Some('=')) => (TokenKind::LtEq, 2),
            ('<', _) => (TokenKind::Lt, 1),
            ('>', Some('=')) => (TokenKind::GtEq, 2),
            ('>', _) => (TokenKind::Gt, 1),
            (':', _) => (TokenKind::Colon, 1),
            ('+', _) => (TokenKind::Plus, 1),
            ('-', _) => (TokenKind::Minus, 1),
            ('*', _) => (TokenKind::Star, 1),
            ('/', _) => (TokenKind::Slash, 1),
            ('%', _) => (TokenKind::Percent, 1),
            ('.', _) => (TokenKind::Dot, 1),
            (',', _) => (TokenKind::Comma, 1),
            ('[', _) => (TokenKind::LBracket, 1),
            (']', _) => (TokenKind::RBracket, 1),
            ('(', _) => (TokenKind::LParen, 1),
            (')', _) => (TokenKind::RParen, 1),
            ('|', Some('|')) => return self.invalid(2, "unexpected '||': use 'or'"),
            ('|', _) => (TokenKind::Pipe, 1),
            ('?', _) => (TokenKind::Question, 1),
            ('&', Some('&')) => return self.invalid(2, "unexpected '&&': use 'and'"),
            ('!', _) => {
                return self.invalid(
                    1,
                    "unexpected '!': use 'not' to negate, '!=' for inequality, '![' for a missing event",
                )
            }
            ('~', _) => {
                return self.invalid(
                    1,
                    "unexpected '~': write it right after the operator or function name, as in \
                     'in~', 'like~', 'regex~' or 'name~('",
                )
            }
            _ => {
                let message = format!("unexpected character {}", show_char(c));
                return self.invalid(c.len_utf8(), message);
            }
        };
        self.pos += len;
        self.push(kind, start);
    }

    /// Reports `len` bytes at the cursor and yields an [`TokenKind::Error`] token for them.
    fn invalid(&mut self, len: usize, message: impl Into<String>) {
        let start = self.pos;
        self.pos += len;
        self.error(start, self.pos, message);
        self.push(TokenKind::Error, start);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind<'_>> {
        let (tokens, errors) = tokenize(src);
        assert!(errors.is_empty(), "{errors:?}");
        tokens.into_iter().map(|t| t.kind).collect()
    }

    fn str_tok(value: &str, raw: bool) -> TokenKind<'static> {
        TokenKind::Str {
            value: value.to_string(),
            raw,
        }
    }

    #[test]
    fn words_keywords_and_tildes() {
        assert_eq!(
            kinds("process where in~ like~ regex~ startsWith~ AND @timestamp"),
            vec![
                TokenKind::Ident("process"),
                TokenKind::Keyword(Keyword::Where),
                TokenKind::Keyword(Keyword::InInsensitive),
                TokenKind::Keyword(Keyword::LikeInsensitive),
                TokenKind::Keyword(Keyword::RegexInsensitive),
                TokenKind::TildeIdent("startsWith"),
                TokenKind::Ident("AND"),
                TokenKind::Ident("@timestamp"),
                TokenKind::Eof,
            ]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            kinds("1 1.5 1. .5 1e3 2.5E-1 5s 18446744073709551615"),
            vec![
                TokenKind::Int(1),
                TokenKind::Float(1.5),
                TokenKind::Float(1.0),
                TokenKind::Float(0.5),
                TokenKind::Float(1000.0),
                TokenKind::Float(0.25),
                TokenKind::Int(5),
                TokenKind::Ident("s"),
                TokenKind::Int(u64::MAX),
                TokenKind::Eof,
            ]
        );
        // `1.e` is not a decimal followed by an exponent missing its digits: the dot starts a name.
        assert_eq!(
            kinds("1.x"),
            vec![
                TokenKind::Int(1),
                TokenKind::Dot,
                TokenKind::Ident("x"),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn strings() {
        assert_eq!(
            kinds(r#""a\n\t\r\\\"b" "\u{41}\u{1F600}" """C:\x\"""" "#),
            vec![
                str_tok("a\n\t\r\\\"b", false),
                str_tok("A\u{1F600}", false),
                str_tok("C:\\x\\\"", true),
                TokenKind::Eof,
            ]
        );
        assert_eq!(
            kinds("\"\"\"a\"\"\"\"\"x"),
            vec![
                str_tok("a\"\"", true),
                TokenKind::Ident("x"),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn comments_nest() {
        assert_eq!(
            kinds("a /* x /* y */ z */ b // c\nd"),
            vec![
                TokenKind::Ident("a"),
                TokenKind::Ident("b"),
                TokenKind::Ident("d"),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn quoted_names() {
        assert_eq!(
            kinds("`my-field`.`a``b`"),
            vec![
                TokenKind::QuotedIdent("my-field".into()),
                TokenKind::Dot,
                TokenKind::QuotedIdent("a`b".into()),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn every_error_is_collected_and_lexing_goes_on() {
        let (tokens, errors) = tokenize("'a' # \"\\q\" ?\"b\" x");
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(errors.len(), 4, "{messages:?}");
        assert!(messages[0].starts_with("single quotes are reserved"));
        assert!(messages[1].starts_with("unexpected character '#'"));
        assert!(messages[2].starts_with("unknown escape sequence '\\q'"));
        assert!(messages[3].starts_with("'?\"...\"' strings are not supported"));
        assert_eq!(tokens[0].kind, str_tok("a", false));
        assert_eq!(tokens[1].kind, TokenKind::Error);
        assert_eq!(tokens[4].kind, TokenKind::Ident("x"));
    }

    #[test]
    fn error_count_is_capped() {
        let (_, errors) = tokenize(&"#".repeat(10_000));
        assert_eq!(errors.len(), MAX_ERRORS);
    }
}
