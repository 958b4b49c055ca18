//! Lucene `RegExp` syntax (what `regex`/`regex~` mean in Elasticsearch) → the `regex` crate.
//!
//! Lucene patterns always match the whole value, so the translation is wrapped in `\A(?:…)\z`,
//! and `.` matches any character including newlines (`(?s)`). Supported: `. ? + * {n} {n,}
//! {n,m} | ( ) [ ] [^ ]`, `\d \D \s \S \w \W`, `\` before any other character (that character,
//! literally: `\n` is the letter `n`, as in Lucene), and `"…"` quoted literal strings.
//!
//! Rejected with an error, because their meaning depends on flags Elasticsearch may or may not
//! pass to Lucene: `~` (complement), `&` (intersection), `@` (any string), `#` (empty language),
//! `<…>` (numeric intervals / named automata). Also rejected: constructs Lucene parses in a
//! surprising way — an operator with nothing before it (`*a`, `a|`, `(|a)`), and a `-` just
//! before `]` in a class (Lucene reads `]` as the end of a range there).
//!
//! `regex~` folds ASCII letters written as characters (`a`, `[uz]`, `"abc"`) but not ranges
//! (`[a-z]` stays lower-case only) — Lucene's `ASCII_CASE_INSENSITIVE` applies to single
//! characters and strings, never to ranges (Lucene #14378). Letters are emitted as `[aA]`, never
//! through `(?i)`, which would also fold non-ASCII characters.

use std::fmt::Write;

/// Nesting limit for groups, against hostile patterns.
const MAX_DEPTH: usize = 64;

/// A pattern Lucene would reject or whose meaning is uncertain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegexError {
    /// Byte offset in the pattern.
    pub offset: usize,
    pub message: String,
}

/// Translates one Lucene pattern into `regex` crate syntax (unanchored, no flags).
pub fn translate(pattern: &str, insensitive: bool) -> Result<String, RegexError> {
    if pattern.is_empty() {
        // Lucene special-cases the empty pattern as the empty string.
        return Ok(String::new());
    }
    let mut p = Parser {
        chars: pattern.char_indices().collect(),
        pos: 0,
        len: pattern.len(),
        ci: insensitive,
        out: String::with_capacity(pattern.len() * 2),
        depth: 0,
    };
    p.union()?;
    if let Some(&(off, c)) = p.chars.get(p.pos) {
        return Err(err(off, format!("unexpected '{c}'")));
    }
    Ok(p.out)
}

/// Translates a list of patterns into one anchored regex matching any of them.
pub fn build(patterns: &[&str], insensitive: bool) -> Result<regex::Regex, (usize, RegexError)> {
    let mut src = String::from(r"(?s)\A(?:");
    for (i, p) in patterns.iter().enumerate() {
        if i > 0 {
            src.push('|');
        }
        let t = translate(p, insensitive).map_err(|e| (i, e))?;
        src.push_str("(?:");
        src.push_str(&t);
        src.push(')');
    }
    src.push_str(r")\z");
    regex::RegexBuilder::new(&src)
        .size_limit(1 << 22)
        .build()
        .map_err(|e| {
            let msg = match e {
                regex::Error::CompiledTooBig(_) => "pattern is too large once compiled".to_owned(),
                other => other.to_string(),
            };
            (0, err(0, msg))
        })
}

fn err(offset: usize, message: impl Into<String>) -> RegexError {
    RegexError {
        offset,
        message: message.into(),
    }
}

struct Parser {
    chars: Vec<(usize, char)>,
    pos: usize,
    len: usize,
    ci: bool,
    out: String,
    depth: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|&(_, c)| c)
    }

    fn offset(&self) -> usize {
        self.chars.get(self.pos).map_or(self.len, |&(o, _)| o)
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn union(&mut self) -> Result<(), RegexError> {
        self.concat()?;
        while self.peek() == Some('|') {
            self.pos += 1;
            self.out.push('|');
            self.concat()?;
        }
        Ok(())
    }

    fn concat(&mut self) -> Result<(), RegexError> {
        match self.peek() {
            None | Some('|') | Some(')') => {
                return Err(err(
                    self.offset(),
                    "empty alternative: Lucene reads the next character literally here; write () for an empty match",
                ))
            }
            _ => {}
        }
        while !matches!(self.peek(), None | Some('|') | Some(')')) {
            self.repeat()?;
        }
        Ok(())
    }

    fn repeat(&mut self) -> Result<(), RegexError> {
        let start = self.out.len();
        self.atom()?;
        loop {
            let op = match self.peek() {
                Some('*') => "*".to_owned(),
                Some('+') => "+".to_owned(),
                Some('?') => "?".to_owned(),
                Some('{') => {
                    self.pos += 1;
                    let (min, max) = self.bounds()?;
                    match max {
                        Some(m) if m == min => format!("{{{min}}}"),
                        Some(m) => format!("{{{min},{m}}}"),
                        None => format!("{{{min},}}"),
                    }
                }
                _ => return Ok(()),
            };
            if op.len() == 1 {
                self.pos += 1;
            }
            // Wrap what came before so stacked operators (`a+?`, `a{2}{3}`) keep Lucene's
            // meaning (repeat of a repeat) instead of becoming lazy or invalid.
            self.out.insert_str(start, "(?:");
            self.out.push(')');
            self.out.push_str(&op);
        }
    }

    /// After `{`: `n}`, `n,}` or `n,m}`.
    fn bounds(&mut self) -> Result<(u32, Option<u32>), RegexError> {
        let at = self.offset();
        let min = self
            .number()
            .ok_or_else(|| err(at, "expected a number after '{'"))?;
        let max = if self.peek() == Some(',') {
            self.pos += 1;
            if self.peek() == Some('}') {
                None
            } else {
                let at = self.offset();
                Some(
                    self.number()
                        .ok_or_else(|| err(at, "expected a number or '}' after ','"))?,
                )
            }
        } else {
            Some(min)
        };
        if self.next() != Some('}') {
            return Err(err(at, "expected '}' to close the repetition"));
        }
        if let Some(m) = max {
            if m < min {
                return Err(err(at, format!("repetition {{{min},{m}}} has max < min")));
            }
        }
        Ok((min, max))
    }

    fn number(&mut self) -> Option<u32> {
        let mut n: u32 = 0;
        let mut any = false;
        while let Some(d) = self.peek().and_then(|c| c.to_digit(10)) {
            n = n.checked_mul(10)?.checked_add(d)?;
            self.pos += 1;
            any = true;
        }
        any.then_some(n)
    }

    fn atom(&mut self) -> Result<(), RegexError> {
        let at = self.offset();
        let Some(c) = self.next() else {
            return Err(err(at, "unexpected end of pattern"));
        };
        match c {
            '.' => self.out.push('.'),
            '(' => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(err(at, "groups nested too deeply"));
                }
                self.out.push_str("(?:");
                if self.peek() != Some(')') {
                    self.union()?;
                }
                if self.next() != Some(')') {
                    return Err(err(at, "unclosed '('"));
                }
                self.out.push(')');
                self.depth -= 1;
            }
            '[' => self.class(at)?,
            '"' => {
                let mut closed = false;
                while let Some(c) = self.next() {
                    if c == '"' {
                        closed = true;
                        break;
                    }
                    self.literal(c);
                }
                if !closed {
                    return Err(err(at, "unclosed '\"' quoted string"));
                }
            }
            '\\' => {
                let Some(e) = self.next() else {
                    return Err(err(at, "pattern ends with a lone '\\'"));
                };
                match predefined(e) {
                    Some(class) => self.out.push_str(class),
                    None => self.literal(e),
                }
            }
            '*' | '+' | '?' | '{' => {
                return Err(err(
                    at,
                    format!("'{c}' has nothing to repeat (Lucene would read it literally; escape it as \\{c})"),
                ))
            }
            '~' => return Err(unsupported(at, '~', "complement")),
            '&' => return Err(unsupported(at, '&', "intersection")),
            '@' => return Err(unsupported(at, '@', "any string")),
            '#' => return Err(unsupported(at, '#', "empty language")),
            '<' => return Err(unsupported(at, '<', "numeric interval or named automaton")),
            other => self.literal(other),
        }
        Ok(())
    }

    /// After `[` at `at`.
    fn class(&mut self, at: usize) -> Result<(), RegexError> {
        self.out.push('[');
        if self.peek() == Some('^') {
            self.pos += 1;
            self.out.push('^');
        }
        let mut first = true;
        loop {
            let here = self.offset();
            let Some(c) = self.next() else {
                return Err(err(at, "unclosed '['"));
            };
            if c == ']' && !first {
                break;
            }
            first = false;
            let lo = if c == '\\' {
                let Some(e) = self.next() else {
                    return Err(err(here, "pattern ends with a lone '\\'"));
                };
                if let Some(class) = predefined_in_class(e) {
                    if self.peek() == Some('-')
                        && self.chars.get(self.pos + 1).map(|x| x.1) != Some(']')
                    {
                        return Err(err(
                            here,
                            "a range cannot start at a shorthand class like \\d",
                        ));
                    }
                    self.out.push_str(class);
                    continue;
                }
                e
            } else {
                c
            };
            if self.peek() == Some('-') {
                if self.chars.get(self.pos + 1).map(|x| x.1) == Some(']') {
                    return Err(err(
                        self.offset(),
                        "'-' right before ']' is read by Lucene as a range to ']'; escape it as \\-",
                    ));
                }
                self.pos += 1;
                let hi_at = self.offset();
                let hi = match self.next() {
                    Some('\\') => self
                        .next()
                        .ok_or_else(|| err(hi_at, "pattern ends with a lone '\\'"))?,
                    Some(h) => h,
                    None => return Err(err(at, "unclosed '['")),
                };
                if hi < lo {
                    return Err(err(here, format!("invalid range {lo}-{hi}")));
                }
                push_class_char(&mut self.out, lo);
                self.out.push('-');
                push_class_char(&mut self.out, hi);
            } else if self.ci && lo.is_ascii_alphabetic() {
                push_class_char(&mut self.out, lo.to_ascii_lowercase());
                push_class_char(&mut self.out, lo.to_ascii_uppercase());
            } else {
                push_class_char(&mut self.out, lo);
            }
        }
        self.out.push(']');
        Ok(())
    }

    fn literal(&mut self, c: char) {
        if self.ci && c.is_ascii_alphabetic() {
            self.out.push('[');
            self.out.push(c.to_ascii_lowercase());
            self.out.push(c.to_ascii_uppercase());
            self.out.push(']');
        } else if c.is_ascii_alphanumeric() {
            self.out.push(c);
        } else {
            let _ = write!(self.out, "\\x{{{:X}}}", c as u32);
        }
    }
}

fn unsupported(at: usize, c: char, what: &str) -> RegexError {
    err(
        at,
        format!("'{c}' ({what}) is an optional Lucene operator whose meaning depends on flags; escape it as \\{c} to match it literally"),
    )
}

/// `\d \D \s \S \w \W` as one character each; `\s` is Java's whitespace set.
fn predefined(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "[0-9]",
        'D' => "[^0-9]",
        's' => r"[\t\n\x0B\x0C\r ]",
        'S' => r"[^\t\n\x0B\x0C\r ]",
        'w' => "[a-zA-Z0-9_]",
        'W' => "[^a-zA-Z0-9_]",
        _ => return None,
    })
}

fn predefined_in_class(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "0-9",
        'D' => "[^0-9]",
        's' => r"\t\n\x0B\x0C\r ",
        'S' => r"[^\t\n\x0B\x0C\r ]",
        'w' => "a-zA-Z0-9_",
        'W' => "[^a-zA-Z0-9_]",
        _ => return None,
    })
}

fn push_class_char(out: &mut String, c: char) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else {
        let _ = write!(out, "\\x{{{:X}}}", c as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, ci: bool, v: &str) -> bool {
        build(&[p], ci).unwrap().is_match(v)
    }

    fn rejected(p: &str) -> RegexError {
        translate(p, false).expect_err(p)
    }

    #[test]
    fn anchored_at_both_ends() {
        assert!(!m("ba", false, "bash"));
        assert!(m("ba.*", false, "bash"));
        assert!(!m("ash", false, "bash"));
        assert!(m("", false, ""));
        assert!(m("()", false, ""));
    }

    #[test]
    fn dot_matches_newline() {
        assert!(m("a.b", false, "a\nb"));
        assert!(m(".*tcp.*", false, "x\ny/dev/tcp/"));
    }

    #[test]
    fn operators() {
        assert!(m("a{2,3}", false, "aaa"));
        assert!(!m("a{2,3}", false, "aaaa"));
        assert!(m("a{2,}", false, "aaaaa"));
        assert!(m("a{2}", false, "aa"));
        assert!(m("(ab|cd)+", false, "abcdab"));
        assert!(m("colou?r", false, "color"));
        assert!(m("[^-]*[uz][^-]*", false, "xuy"));
        assert!(!m("[^-]*[uz][^-]*", false, "x-uy"));
        assert!(m("a+?", false, ""), "Lucene a+? is (a+)?, not a lazy a+");
        assert!(m("a{2}{2}", false, "aaaa"));
        assert!(m("[24][0-9]{3}", false, "4755"));
        assert!(m(r"\d+\s\w+", false, "12 ab_9"));
        assert!(!m(r"\D", false, "5"));
        assert!(m(r"[\d.]+", false, "1.2"));
        assert!(
            m(r#"a"+*?"b"#, false, "a+*?b"),
            "quoted strings are literal"
        );
        assert!(m(r"\.\*", false, ".*"));
        assert!(m(r"\n", false, "n"), "Lucene reads \\n as the letter n");
        assert!(
            m("^a$", false, "^a$"),
            "^ and $ are ordinary characters in Lucene"
        );
        assert!(m("a]}", false, "a]}"));
        assert!(m("é.", false, "éé"));
    }

    #[test]
    fn corpus_patterns_translate() {
        let ip = r".*[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]{1,5}:[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]{1,5}.*";
        assert!(m(ip, false, "ssh -L 10.0.0.1:80:10.0.0.2:8080 host"));
        assert!(m(r"/[a-z0-9\s_\-\\./]+\s", true, "/usr/bin/sshd "));
        assert!(m(r"\.[a-z0-9_\-][a-z0-9_\-\.]{1,254}", true, ".hidden"));
        assert!(m(r"php?[0-9]?\.?[0-9]{0,2}", true, "PHP7.4"));
        assert!(m("-[A-NP-Za-np-z][A-Za-z]*[RLDwW][A-Za-z]*", false, "-fNR"));
        assert!(!m("-[A-NP-Za-np-z][A-Za-z]*[RLDwW][A-Za-z]*", false, "-oR"));
    }

    #[test]
    fn insensitive_folds_letters_not_ranges() {
        assert!(m("bash", true, "BASH"));
        assert!(
            !m("[a-z]+", true, "BASH"),
            "ranges stay case-sensitive (Lucene #14378)"
        );
        assert!(m("[uz]", true, "U"), "single class members fold");
        assert!(!m("[^u]", true, "U"));
        assert!(m(r#""AbC""#, true, "abc"));
        assert!(!m("é", true, "É"), "only ASCII folds");
        assert!(!m("bash", false, "BASH"));
    }

    #[test]
    fn uncertain_constructs_are_rejected() {
        for (p, at) in [("a~b", 1), ("a&b", 1), ("a@", 1), ("#", 0), ("<1-5>", 0)] {
            let e = rejected(p);
            assert_eq!(e.offset, at, "{p}: {e:?}");
            assert!(e.message.contains("optional Lucene operator"), "{p}: {e:?}");
        }
        assert!(rejected("*a").message.contains("nothing to repeat"));
        assert!(rejected("a|").message.contains("empty alternative"));
        assert!(rejected("(|a)").message.contains("empty alternative"));
        assert!(rejected("[a-]").message.contains("'-' right before ']'"));
        assert!(rejected("[z-a]").message.contains("invalid range"));
        assert!(rejected("a{3,2}").message.contains("max < min"));
        assert!(rejected("a{x}").message.contains("expected a number"));
        assert!(rejected("(a").message.contains("unclosed '('"));
        assert!(rejected("a)").message.contains("unexpected ')'"));
        assert!(rejected("[ab").message.contains("unclosed '['"));
        assert!(rejected("a\\").message.contains("lone"));
        assert!(rejected("\"ab").message.contains("unclosed"));
        assert!(rejected(&"(".repeat(100))
            .message
            .contains("nested too deeply"));
        // Literal inside classes and when escaped.
        assert!(m("[~&@#<]+", false, "~&@#<"));
        assert!(m(r"\~\&\@\#\<", false, "~&@#<"));
    }

    #[test]
    fn lists_are_any_of() {
        let r = build(&["a.*", "b"], false).unwrap();
        assert!(r.is_match("abc") && r.is_match("b") && !r.is_match("bc"));
        assert_eq!(build(&["ok", "a~"], false).unwrap_err().0, 1);
        assert!(build(&["a{1000}{1000}"], false).is_err());
    }
}
