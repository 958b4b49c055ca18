//! ECS NDJSON in (one JSON object per line, as Elastic Defend, auditbeat or any agent writes
//! it); one [`JsonDocument`] per line out, or a [`LineError`] saying which line and why.
//!
//! Bad lines are the input's problem, not the reader's: each is reported and skipped, and the
//! next line is read. A line longer than the cap is skipped without being held in memory, so
//! hostile input costs at most the cap in memory.

use std::io::{self, BufRead, BufReader, Read};

use memchr::memchr;
use serde_json::Value;
use thiserror::Error;

use crate::document::JsonDocument;

/// Lines longer than this are skipped. Real ECS process events are a few KiB.
pub const DEFAULT_MAX_LINE: usize = 1 << 20;

/// Large reads: fewer syscalls, and a typical file arrives in a few chunks.
const READ_BUFFER: usize = 256 * 1024;

/// Why a line was skipped.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
pub enum LineErrorKind {
    #[error("invalid JSON at column {column}: {message}")]
    Json { column: usize, message: String },
    #[error("not a JSON object (found {0})")]
    NotAnObject(&'static str),
    #[error("invalid UTF-8 at byte {0}")]
    Utf8(usize),
    #[error("line is {len} bytes, over the {max}-byte limit")]
    TooLong { len: u64, max: usize },
}

/// A skipped line: its 1-based number and the reason.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error("line {line}: {kind}")]
pub struct LineError {
    pub line: u64,
    pub kind: LineErrorKind,
}

/// What the reader has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Lines read, blank and malformed ones included.
    pub lines: u64,
    pub blank: u64,
    pub documents: u64,
    pub malformed: u64,
    pub bytes: u64,
}

/// Reads ECS NDJSON documents from a byte stream, reusing one line buffer.
pub struct NdjsonReader<R> {
    input: BufReader<R>,
    line: Vec<u8>,
    max_line: usize,
    counters: Counters,
}

impl<R: Read> NdjsonReader<R> {
    pub fn new(input: R) -> NdjsonReader<R> {
        NdjsonReader::with_max_line(input, DEFAULT_MAX_LINE)
    }

    pub fn with_max_line(input: R, max_line: usize) -> NdjsonReader<R> {
        NdjsonReader {
            input: BufReader::with_capacity(READ_BUFFER, input),
            line: Vec::new(),
            max_line,
            counters: Counters::default(),
        }
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The next document, or the next bad line; `Ok(None)` at the end of input. An `Err` is a
    /// read error on the stream itself (the file, not its content).
    pub fn next_document(&mut self) -> io::Result<Option<Result<JsonDocument, LineError>>> {
        loop {
            let Some(len) = self.read_line()? else {
                return Ok(None);
            };
            if len > self.max_line as u64 {
                return Ok(Some(Err(self.malformed(LineErrorKind::TooLong {
                    len,
                    max: self.max_line,
                }))));
            }
            let mut text: &[u8] = &self.line;
            if let [rest @ .., b'\r'] = text {
                text = rest;
            }
            if text.iter().all(u8::is_ascii_whitespace) {
                self.counters.blank += 1;
                continue;
            }
            let parsed = match std::str::from_utf8(text) {
                Err(e) => Err(LineErrorKind::Utf8(e.valid_up_to())),
                Ok(s) => match serde_json::from_str::<Value>(s) {
                    Ok(Value::Object(map)) => Ok(JsonDocument::new(map)),
                    Ok(other) => Err(LineErrorKind::NotAnObject(type_name(&other))),
                    Err(e) => Err(json_error(&e)),
                },
            };
            return Ok(Some(match parsed {
                Ok(doc) => {
                    self.counters.documents += 1;
                    Ok(doc)
                }
                Err(kind) => Err(self.malformed(kind)),
            }));
        }
    }

    fn malformed(&mut self, kind: LineErrorKind) -> LineError {
        self.counters.malformed += 1;
        LineError {
            line: self.counters.lines,
            kind,
        }
    }

    /// Reads the next line (without its `\n`) into `self.line` and returns its full length.
    /// A line over the cap is consumed but not kept. `None` at end of input.
    fn read_line(&mut self) -> io::Result<Option<u64>> {
        self.line.clear();
        let mut len: u64 = 0;
        let mut seen_any = false;
        loop {
            let available = match self.input.fill_buf() {
                Ok(buf) => buf,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                if !seen_any {
                    return Ok(None);
                }
                break;
            }
            seen_any = true;
            let (chunk, used, done) = match memchr(b'\n', available) {
                Some(i) => (&available[..i], i + 1, true),
                None => (available, available.len(), false),
            };
            len += chunk.len() as u64;
            if len <= self.max_line as u64 {
                self.line.extend_from_slice(chunk);
            } else if !self.line.is_empty() {
                self.line.clear();
            }
            self.counters.bytes += used as u64;
            self.input.consume(used);
            if done {
                break;
            }
        }
        self.counters.lines += 1;
        Ok(Some(len))
    }
}

impl<R: Read> Iterator for NdjsonReader<R> {
    type Item = io::Result<Result<JsonDocument, LineError>>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_document().transpose()
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// serde_json's message without its `at line 1 column N` tail (we report the file's line).
fn json_error(e: &serde_json::Error) -> LineErrorKind {
    let full = e.to_string();
    let message = match full.rfind(" at line ") {
        Some(i) => full[..i].to_owned(),
        None => full,
    };
    LineErrorKind::Json {
        column: e.column(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{Document, FieldPath, Scalar};

    fn read_all(input: &[u8], max: usize) -> (Vec<Result<JsonDocument, LineError>>, Counters) {
        let mut r = NdjsonReader::with_max_line(input, max);
        let mut out = Vec::new();
        while let Some(item) = r.next_document().unwrap() {
            out.push(item);
        }
        (out, r.counters())
    }

    #[test]
    fn documents_blank_lines_and_errors_with_line_numbers() {
        let input = b"{\"process\":{\"name\":\"bash\"}}\n\n  \r\n[1,2]\n{\"a\":\n\"str\"\n{\"b\":\xff}\n{\"c\":1}\r\n{\"d\":2}";
        let (items, c) = read_all(input, DEFAULT_MAX_LINE);
        let errors: Vec<(u64, String)> = items
            .iter()
            .filter_map(|i| i.as_ref().err())
            .map(|e| (e.line, e.kind.to_string()))
            .collect();
        assert_eq!(
            errors,
            vec![
                (4, "not a JSON object (found an array)".into()),
                (
                    5,
                    "invalid JSON at column 5: EOF while parsing a value".into()
                ),
                (6, "not a JSON object (found a string)".into()),
                (7, "invalid UTF-8 at byte 5".into()),
            ]
        );
        let docs: Vec<&JsonDocument> = items.iter().filter_map(|i| i.as_ref().ok()).collect();
        assert_eq!(docs.len(), 3);
        assert_eq!(
            docs[0].values(&FieldPath::new("process.name")).first(),
            Some(Scalar::Str("bash"))
        );
        assert_eq!(
            docs[2].values(&FieldPath::new("d")).first(),
            Some(Scalar::Int(2))
        );
        assert_eq!(
            c,
            Counters {
                lines: 9,
                blank: 2,
                documents: 3,
                malformed: 4,
                bytes: input.len() as u64,
            }
        );
    }

    #[test]
    fn long_lines_are_skipped_and_not_kept() {
        let mut input = b"{\"a\":1}\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend(b"\n{\"b\":2}\n");
        let mut r = NdjsonReader::with_max_line(&input[..], 100);
        assert!(r.next_document().unwrap().unwrap().is_ok());
        let err = r.next_document().unwrap().unwrap().unwrap_err();
        assert_eq!(
            err,
            LineError {
                line: 2,
                kind: LineErrorKind::TooLong {
                    len: 5000,
                    max: 100
                }
            }
        );
        assert!(r.line.capacity() <= 200, "the long line was buffered");
        let doc = r.next_document().unwrap().unwrap().unwrap();
        assert_eq!(
            doc.values(&FieldPath::new("b")).first(),
            Some(Scalar::Int(2))
        );
        assert!(r.next_document().unwrap().is_none());
    }

    #[test]
    fn line_at_exactly_the_cap_is_kept() {
        let line = format!("{{\"k\":\"{}\"}}", "v".repeat(92));
        assert_eq!(line.len(), 100);
        let (items, _) = read_all(format!("{line}\n").as_bytes(), 100);
        assert!(items[0].is_ok());
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        let (items, c) = read_all(deep.as_bytes(), DEFAULT_MAX_LINE);
        assert_eq!(c.malformed, 1);
        assert!(items[0].is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let (items, c) = read_all(&bytes, 64);
            proptest::prop_assert_eq!(items.len() as u64, c.documents + c.malformed);
            proptest::prop_assert_eq!(c.bytes, bytes.len() as u64);
        }
    }
}
