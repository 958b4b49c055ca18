//! Maps byte offsets in a decoded TOML string back to the rule file, so an EQL error inside a
//! `query = '''...'''` points at the author's own line and column.
//!
//! The toml crate gives the span of the raw string token; this walks that token the way TOML
//! decodes it (delimiters, the newline trimmed after a multi-line opener, escapes, line-ending
//! backslashes) and records where each decoded byte came from.

/// For each byte of `decoded`, its offset within `token` (the raw string token, delimiters
/// included), plus one entry for the end of the string. `None` when `token` is not a TOML
/// string that decodes to `decoded` (the caller then points at the token itself).
pub(crate) fn source_offsets(token: &str, decoded: &str) -> Option<Vec<usize>> {
    let b = token.as_bytes();
    let (delim, literal, multiline) = if token.starts_with("'''") {
        (3, true, true)
    } else if token.starts_with("\"\"\"") {
        (3, false, true)
    } else if token.starts_with('\'') {
        (1, true, false)
    } else if token.starts_with('"') {
        (1, false, false)
    } else {
        return None;
    };
    if b.len() < 2 * delim {
        return None;
    }
    let end = b.len() - delim;
    let mut i = delim;
    if multiline {
        if b.get(i..i + 2) == Some(b"\r\n") {
            i += 2;
        } else if b.get(i) == Some(&b'\n') {
            i += 1;
        }
    }
    let want = decoded.as_bytes();
    let mut out = Vec::with_capacity(want.len() + 1);
    let mut got: Vec<u8> = Vec::with_capacity(want.len());
    while i < end {
        let c = b[i];
        if literal || c != b'\\' {
            // A parser may normalise CRLF to LF inside multi-line strings; follow what it did.
            if c == b'\r' && b.get(i + 1) == Some(&b'\n') && want.get(got.len()) != Some(&b'\r') {
                i += 1;
                continue;
            }
            out.push(i);
            got.push(c);
            i += 1;
            continue;
        }
        let start = i;
        let escaped = *b.get(i + 1)?;
        let ch: Option<char> = match escaped {
            b'b' => Some('\u{8}'),
            b't' => Some('\t'),
            b'n' => Some('\n'),
            b'f' => Some('\u{c}'),
            b'r' => Some('\r'),
            b'e' => Some('\u{1b}'),
            b'"' => Some('"'),
            b'\\' => Some('\\'),
            b'x' | b'u' | b'U' => {
                let len = match escaped {
                    b'x' => 2,
                    b'u' => 4,
                    _ => 8,
                };
                let hex = token.get(i + 2..i + 2 + len)?;
                let code = u32::from_str_radix(hex, 16).ok()?;
                i += len;
                Some(char::from_u32(code)?)
            }
            b' ' | b'\t' | b'\r' | b'\n' if multiline => None,
            _ => return None,
        };
        match ch {
            Some(ch) => {
                let mut utf8 = [0u8; 4];
                for &byte in ch.encode_utf8(&mut utf8).as_bytes() {
                    out.push(start);
                    got.push(byte);
                }
                i += 2;
            }
            None => {
                // Line-ending backslash: it and all whitespace up to the next content vanish.
                i += 1;
                while i < end && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
                    i += 1;
                }
            }
        }
    }
    out.push(end);
    (got == want).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `token` with the toml crate, then checks every decoded byte maps back to a source
    /// byte that produced it.
    fn check(token: &str) -> Vec<usize> {
        let doc = format!("v = {token}\n");
        let table: toml::Table = toml::from_str(&doc).unwrap();
        let decoded = table["v"].as_str().unwrap().to_owned();
        let map = source_offsets(token, &decoded).expect("mapping");
        assert_eq!(map.len(), decoded.len() + 1);
        map
    }

    #[test]
    fn literal_multiline_trims_the_first_newline() {
        let tok = "'''\nprocess where x\n'''";
        let map = check(tok);
        assert_eq!(&tok[map[0]..map[0] + 7], "process");
        let tok = "'''\r\nab'''";
        let map = check(tok);
        assert_eq!(map[0], 5);
        assert_eq!(map[2], tok.len() - 3);
    }

    #[test]
    fn single_line_strings() {
        assert_eq!(check("'abc'"), vec![1, 2, 3, 4]);
        assert_eq!(check("\"a\\tb\""), vec![1, 2, 4, 5]);
        let map = check("\"\\u00e9x\"");
        assert_eq!(map, vec![1, 1, 7, 8]);
    }

    #[test]
    fn basic_multiline_with_line_ending_backslash() {
        let tok = "\"\"\"\nab \\\n    cd\\n\"\"\"";
        let map = check(tok);
        // "ab cd\n": 'c' comes from after the indentation.
        assert_eq!(&tok[map[3]..map[3] + 2], "cd");
        assert_eq!(&tok[map[5]..map[5] + 2], "\\n");
    }

    #[test]
    fn mismatch_is_none() {
        assert_eq!(source_offsets("'abc'", "abd"), None);
        assert_eq!(source_offsets("abc", "abc"), None);
        assert_eq!(source_offsets("\"\\q\"", "q"), None);
        assert_eq!(source_offsets("\"", ""), None);
    }
}
