//! Apple's `eslogger exec fork exit` NDJSON, read into [`EsRecord`]s on any platform.
//!
//! One JSON object per line (macOS 13+, `man 1 eslogger`; the format is not API). Fields are
//! parsed by name because key order varies between lines; unknown fields are skipped, so
//! `env`, `fds` and `stat` blocks cost no allocation. Audit tokens come as objects (message
//! versions up to 9 and 11) or as 8-number arrays in `audit_token_t.val` order (version 10):
//! both are read. Events other than exec, fork and exit are counted and skipped without parsing
//! their process. A bad line is an error carrying its line number and never ends the stream;
//! only an I/O error does.

use std::borrow::Cow;
use std::fmt;
use std::io::{BufRead, ErrorKind};

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::record::{
    ArgsBudget, AuditToken, EsRecord, Event, EventKind, Exec, Exit, Fork, Header, Process,
};
use crate::rfc3339;

/// Lines longer than this are reported and skipped. A real exec line carries argv and the
/// environment (each at most `ARG_MAX`, 1 MiB, together) with `/` escaped as `\/`.
pub const DEFAULT_MAX_LINE_BYTES: usize = 8 * 1024 * 1024;

/// A line that could not be turned into a record, or the input failing.
#[derive(Debug, thiserror::Error)]
#[error("line {line}: {kind}")]
pub struct ReadError {
    /// 1-based line number in the input.
    pub line: u64,
    pub kind: ReadErrorKind,
}

/// What went wrong on one line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadErrorKind {
    /// The input failed; the reader stops after reporting it.
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    /// Not JSON, or not the shape eslogger writes. `column` is 1-based, in bytes.
    #[error("column {column}: {message}")]
    Json { column: usize, message: String },
    /// Over the reader's line limit; the line was skipped unread.
    #[error("line is {len} bytes, over the limit of {max}")]
    TooLong { len: usize, max: usize },
    /// A time field that is not RFC 3339.
    #[error("`{field}`: expected an RFC 3339 time such as 2025-08-07T13:21:35.880814738Z, found {value:?}")]
    BadTime { field: &'static str, value: String },
    /// `event_type` names an exec, fork or exit, but `event` lacks that object.
    #[error("event_type {event_type} is {kind}, but `event` has no `{kind}` object")]
    MissingEvent { event_type: u32, kind: &'static str },
}

/// What the reader has seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReaderStats {
    pub lines: u64,
    pub records: u64,
    /// Empty or whitespace-only lines.
    pub blank: u64,
    /// Well-formed messages of other event types (`eslogger exec open …`), skipped.
    pub other_events: u64,
    pub errors: u64,
}

/// Reads eslogger NDJSON one line at a time, reusing one line buffer.
///
/// As an iterator it yields a record or an error per line and ends at end of input or after
/// an I/O error.
pub struct EsloggerReader<R> {
    input: R,
    buf: Vec<u8>,
    line: u64,
    max_line_bytes: usize,
    stats: ReaderStats,
    done: bool,
}

impl<R: BufRead> EsloggerReader<R> {
    pub fn new(input: R) -> Self {
        EsloggerReader {
            input,
            buf: Vec::new(),
            line: 0,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            stats: ReaderStats::default(),
            done: false,
        }
    }

    /// Sets the longest line accepted (default [`DEFAULT_MAX_LINE_BYTES`]).
    pub fn with_max_line_bytes(mut self, max: usize) -> Self {
        self.max_line_bytes = max;
        self
    }

    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// Number of the last line read (1-based; 0 before the first).
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// Reads the next line into `buf`. `Ok(None)` at end of input; `Ok(Some(len))` with the
    /// line's full length (over the limit when the buffer was left empty).
    fn read_line(&mut self) -> std::io::Result<Option<usize>> {
        self.buf.clear();
        let mut len = 0usize;
        let mut saw_any = false;
        loop {
            let avail = match self.input.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                return Ok(saw_any.then_some(len));
            }
            saw_any = true;
            let (chunk, used, end) = match avail.iter().position(|&b| b == b'\n') {
                Some(i) => (&avail[..i], i + 1, true),
                None => (avail, avail.len(), false),
            };
            len = len.saturating_add(chunk.len());
            if len <= self.max_line_bytes {
                self.buf.extend_from_slice(chunk);
            } else if !self.buf.is_empty() {
                // Over the limit: drop what was kept and only count from here on.
                self.buf = Vec::new();
            }
            self.input.consume(used);
            if end {
                return Ok(Some(len));
            }
        }
    }
}

impl<R: BufRead> Iterator for EsloggerReader<R> {
    type Item = Result<EsRecord, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            let len = match self.read_line() {
                Ok(Some(len)) => len,
                Ok(None) => {
                    self.done = true;
                    break;
                }
                Err(e) => {
                    self.done = true;
                    self.stats.errors += 1;
                    return Some(Err(ReadError {
                        line: self.line + 1,
                        kind: ReadErrorKind::Io(e),
                    }));
                }
            };
            self.line += 1;
            self.stats.lines += 1;
            let outcome = if len > self.max_line_bytes {
                Err(ReadErrorKind::TooLong {
                    len,
                    max: self.max_line_bytes,
                })
            } else if self.buf.iter().all(u8::is_ascii_whitespace) {
                self.stats.blank += 1;
                continue;
            } else {
                parse_line(&self.buf)
            };
            match outcome {
                Ok(Some(record)) => {
                    self.stats.records += 1;
                    return Some(Ok(record));
                }
                Ok(None) => self.stats.other_events += 1,
                Err(kind) => {
                    self.stats.errors += 1;
                    return Some(Err(ReadError {
                        line: self.line,
                        kind,
                    }));
                }
            }
        }
        None
    }
}

/// Parses one eslogger line. `Ok(None)` for a well-formed message of another event type.
pub fn parse_line(line: &[u8]) -> Result<Option<EsRecord>, ReadErrorKind> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let msg: RawMessage<'_> = serde_json::from_slice(line).map_err(|e| json_error(e, 0, ""))?;
    let Some(kind) = EventKind::from_es_event_type(msg.event_type) else {
        return Ok(None);
    };
    let offset =
        |raw: &RawValue| (raw.get().as_ptr() as usize).saturating_sub(line.as_ptr() as usize);

    let raw_process: RawProcess<'_> = serde_json::from_str(msg.process.get())
        .map_err(|e| json_error(e, offset(msg.process), "process"))?;
    let raw_event: RawEvent<'_> = serde_json::from_str(msg.event.get())
        .map_err(|e| json_error(e, offset(msg.event), "event"))?;

    let time_ns = parse_time("time", &msg.time)?;
    let header = Header {
        version: msg.version,
        time_ns,
        mach_time: msg.mach_time,
        seq_num: msg.seq_num,
        global_seq_num: msg.global_seq_num,
        thread_id: msg.thread.and_then(|t| t.thread_id),
    };
    let process = raw_process.into_process()?;
    let missing = || ReadErrorKind::MissingEvent {
        event_type: kind.es_event_type(),
        kind: kind.as_str(),
    };
    let event = match kind {
        EventKind::Exec => {
            let exec = raw_event.exec.ok_or_else(missing)?;
            Event::Exec(Exec {
                target: exec.target.into_process()?,
                args: exec.args.list,
                args_truncated: exec.args.truncated,
                cwd: exec.cwd.map(|f| f.path),
                script: exec.script.map(|f| f.path),
            })
        }
        EventKind::Fork => Event::Fork(Fork {
            child: raw_event.fork.ok_or_else(missing)?.child.into_process()?,
        }),
        EventKind::Exit => Event::Exit(Exit {
            stat: raw_event.exit.ok_or_else(missing)?.stat,
        }),
    };
    Ok(Some(EsRecord {
        header,
        process,
        event,
    }))
}

/// A serde_json error as a column and a message, without serde_json's own "at line 1 column N"
/// (the line is ours to report, and a nested value's column is relative to the value).
fn json_error(e: serde_json::Error, offset: usize, within: &str) -> ReadErrorKind {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    let message = text.strip_suffix(&suffix).unwrap_or(&text);
    let message = if within.is_empty() {
        message.to_owned()
    } else {
        format!("in `{within}`: {message}")
    };
    ReadErrorKind::Json {
        column: offset + e.column(),
        message,
    }
}

fn parse_time(field: &'static str, value: &str) -> Result<i64, ReadErrorKind> {
    rfc3339::parse_ns(value).ok_or_else(|| ReadErrorKind::BadTime {
        field,
        value: value.chars().take(64).collect(),
    })
}

// The JSON shapes. `process` and `event` stay raw until `event_type` says they matter.

#[derive(Deserialize)]
struct RawMessage<'a> {
    #[serde(default)]
    version: u32,
    #[serde(borrow)]
    time: Cow<'a, str>,
    #[serde(default)]
    mach_time: Option<u64>,
    event_type: u64,
    #[serde(default)]
    seq_num: Option<u64>,
    #[serde(default)]
    global_seq_num: Option<u64>,
    #[serde(default)]
    thread: Option<RawThread>,
    #[serde(borrow)]
    process: &'a RawValue,
    #[serde(borrow)]
    event: &'a RawValue,
}

#[derive(Deserialize)]
struct RawThread {
    #[serde(default)]
    thread_id: Option<u64>,
}

#[derive(Deserialize)]
struct RawProcess<'a> {
    audit_token: Token,
    #[serde(default)]
    parent_audit_token: Option<Token>,
    #[serde(default)]
    responsible_audit_token: Option<Token>,
    ppid: u32,
    #[serde(default)]
    original_ppid: Option<u32>,
    #[serde(default)]
    group_id: u32,
    #[serde(default)]
    session_id: u32,
    executable: RawFile,
    #[serde(default)]
    signing_id: Option<String>,
    #[serde(default)]
    team_id: Option<String>,
    #[serde(default, borrow)]
    cdhash: Option<Cow<'a, str>>,
    #[serde(default)]
    codesigning_flags: u32,
    #[serde(default)]
    is_platform_binary: bool,
    #[serde(default)]
    is_es_client: bool,
    #[serde(default)]
    tty: Option<RawFile>,
    #[serde(default, borrow)]
    start_time: Option<Cow<'a, str>>,
}

impl RawProcess<'_> {
    fn into_process(self) -> Result<Process, ReadErrorKind> {
        let start_time_ns = match &self.start_time {
            Some(s) => Some(parse_time("start_time", s)?),
            None => None,
        };
        Ok(Process {
            token: self.audit_token.0,
            ppid: self.ppid,
            original_ppid: self.original_ppid.unwrap_or(self.ppid),
            parent: self.parent_audit_token.map(|t| t.0.key()),
            responsible: self.responsible_audit_token.map(|t| t.0.key()),
            group_id: self.group_id,
            session_id: self.session_id,
            executable: self.executable.path,
            executable_truncated: self.executable.path_truncated,
            signing_id: self.signing_id.filter(|s| !s.is_empty()),
            team_id: self.team_id.filter(|s| !s.is_empty()),
            cdhash: self.cdhash.as_deref().and_then(parse_cdhash),
            codesigning_flags: self.codesigning_flags,
            is_platform_binary: self.is_platform_binary,
            is_es_client: self.is_es_client,
            tty: self.tty.map(|f| f.path),
            start_time_ns,
        })
    }
}

/// `cdhash` as eslogger prints it: 40 hex digits; all zero (unsigned) or malformed → `None`.
fn parse_cdhash(hex: &str) -> Option<[u8; 20]> {
    let b = hex.as_bytes();
    if b.len() != 40 {
        return None;
    }
    let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = [0u8; 20];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    (out != [0u8; 20]).then_some(out)
}

#[derive(Deserialize)]
struct RawFile {
    path: String,
    #[serde(default)]
    path_truncated: bool,
}

#[derive(Deserialize)]
struct RawEvent<'a> {
    #[serde(default, borrow)]
    exec: Option<RawExec<'a>>,
    #[serde(default, borrow)]
    fork: Option<RawFork<'a>>,
    #[serde(default)]
    exit: Option<RawExit>,
}

#[derive(Deserialize)]
struct RawExec<'a> {
    #[serde(borrow)]
    target: RawProcess<'a>,
    #[serde(default)]
    args: Args,
    #[serde(default)]
    cwd: Option<RawFile>,
    #[serde(default)]
    script: Option<RawFile>,
}

#[derive(Deserialize)]
struct RawFork<'a> {
    #[serde(borrow)]
    child: RawProcess<'a>,
}

#[derive(Deserialize)]
struct RawExit {
    stat: i32,
}

/// argv, kept within [`crate::record::MAX_ARGS_BYTES`] as it is read.
#[derive(Default)]
struct Args {
    list: Vec<String>,
    truncated: bool,
}

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ArgsVisitor;
        impl<'de> Visitor<'de> for ArgsVisitor {
            type Value = Args;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an array of argument strings")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Args, E> {
                Ok(Args::default())
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Args, A::Error> {
                let mut budget = ArgsBudget::default();
                let mut list = Vec::with_capacity(seq.size_hint().unwrap_or(4).min(64));
                while let Some(arg) = seq.next_element::<String>()? {
                    budget.push(&mut list, arg);
                }
                Ok(Args {
                    list,
                    truncated: budget.truncated(),
                })
            }
        }
        d.deserialize_any(ArgsVisitor)
    }
}

/// An audit token as an object with named fields or as `[auid, euid, egid, ruid, rgid, pid,
/// asid, pidversion]`.
struct Token(AuditToken);

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TokenVisitor;
        impl<'de> Visitor<'de> for TokenVisitor {
            type Value = Token;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "an audit token (an object with pid, pidversion, … or an array of 8 numbers)",
                )
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Token, A::Error> {
                let mut val = [0u32; 8];
                for (i, v) in val.iter_mut().enumerate() {
                    *v = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(9, &self));
                }
                Ok(Token(AuditToken::from_val(val)))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Token, A::Error> {
                let mut t = AuditToken::default();
                let (mut pid, mut pidversion) = (false, false);
                while let Some(key) = map.next_key::<TokenField>()? {
                    let slot = match key {
                        TokenField::Auid => &mut t.auid,
                        TokenField::Euid => &mut t.euid,
                        TokenField::Egid => &mut t.egid,
                        TokenField::Ruid => &mut t.ruid,
                        TokenField::Rgid => &mut t.rgid,
                        TokenField::Asid => &mut t.asid,
                        TokenField::Pid => {
                            pid = true;
                            &mut t.pid
                        }
                        TokenField::Pidversion => {
                            pidversion = true;
                            &mut t.pidversion
                        }
                        TokenField::Other => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value()?;
                }
                if !pid {
                    return Err(de::Error::missing_field("pid"));
                }
                if !pidversion {
                    return Err(de::Error::missing_field("pidversion"));
                }
                Ok(Token(t))
            }
        }
        d.deserialize_any(TokenVisitor)
    }
}

/// An audit token's field names, read without allocating; unknown names are skipped.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "lowercase")]
enum TokenField {
    Auid,
    Euid,
    Egid,
    Ruid,
    Rgid,
    Pid,
    Asid,
    Pidversion,
    #[serde(other)]
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::ProcessKey;
    use std::io::{BufReader, Cursor, Read};

    const PROC: &str = r#"{"audit_token":{"pid":10,"pidversion":20,"euid":0},"ppid":1,"executable":{"path":"\/bin\/sh"}}"#;

    fn line(event_type: u32, event: &str) -> String {
        format!(
            r#"{{"time":"2026-03-02T10:00:00Z","event_type":{event_type},"process":{PROC},"event":{event}}}"#
        )
    }

    fn exit_line() -> String {
        line(15, r#"{"exit":{"stat":0}}"#)
    }

    fn read_all(input: &str) -> (Vec<Result<EsRecord, ReadError>>, ReaderStats) {
        let mut r = EsloggerReader::new(Cursor::new(input.as_bytes().to_vec()));
        let out: Vec<_> = r.by_ref().collect();
        (out, r.stats())
    }

    fn json_column(kind: &ReadErrorKind) -> (usize, &str) {
        match kind {
            ReadErrorKind::Json { column, message } => (*column, message.as_str()),
            other => panic!("not a JSON error: {other:?}"),
        }
    }

    #[test]
    fn minimal_lines_use_defaults() {
        let rec = parse_line(exit_line().as_bytes()).unwrap().unwrap();
        assert_eq!(rec.header.time_ns, 1_772_445_600_000_000_000);
        assert_eq!(rec.header.version, 0);
        assert_eq!(rec.header.seq_num, None);
        assert_eq!(
            rec.process.key(),
            ProcessKey {
                pid: 10,
                pidversion: 20
            }
        );
        assert_eq!(rec.process.original_ppid, 1, "defaults to ppid");
        assert_eq!(rec.process.parent, None);
        assert_eq!(rec.process.executable, "/bin/sh");
        assert_eq!(rec.event, Event::Exit(Exit { stat: 0 }));
    }

    #[test]
    fn bad_lines_are_reported_with_their_numbers_and_reading_goes_on() {
        let input = format!(
            "{}\n\nnot json\n{}\n{}\n{}\r\n",
            exit_line(),
            r#"{"time":"2026-03-02T10:00:00Z"}"#,
            line(10, r#"{"open":{}}"#),
            exit_line()
        );
        let (out, stats) = read_all(&input);
        assert_eq!(out.len(), 4);
        assert!(out[0].is_ok());
        let e = out[1].as_ref().unwrap_err();
        assert_eq!(e.line, 3);
        // `n` could begin `null`: serde_json stops at the `o`.
        assert_eq!(json_column(&e.kind).0, 2);
        let e = out[2].as_ref().unwrap_err();
        assert_eq!(e.line, 4);
        assert!(
            json_column(&e.kind)
                .1
                .contains("missing field `event_type`"),
            "{e}"
        );
        assert!(out[3].is_ok(), "CRLF line");
        assert_eq!(
            stats,
            ReaderStats {
                lines: 6,
                records: 2,
                blank: 1,
                other_events: 1,
                errors: 2
            }
        );
        assert!(e.to_string().starts_with("line 4: column "), "{e}");
    }

    #[test]
    fn nested_errors_point_into_the_line() {
        let bad = line(15, r#"{"exit":{"stat":"zero"}}"#);
        let err = parse_line(bad.as_bytes()).unwrap_err();
        let (column, message) = json_column(&err);
        assert!(
            message.starts_with("in `event`: invalid type: string \"zero\""),
            "{message}"
        );
        // The column lands on the bad value (serde points just past it).
        let at = bad.find(r#""zero""#).unwrap() + r#""zero""#.len();
        assert_eq!(column, at, "{bad}");

        let bad = exit_line().replace(r#""ppid":1"#, r#""ppid":-1"#);
        let err = parse_line(bad.as_bytes()).unwrap_err();
        let (_, message) = json_column(&err);
        assert!(
            message.starts_with("in `process`: invalid value: integer `-1`"),
            "{message}"
        );
    }

    #[test]
    fn tokens_in_both_shapes() {
        let arr = exit_line().replace(
            r#"{"pid":10,"pidversion":20,"euid":0}"#,
            "[501,0,20,501,20,10,100019,21]",
        );
        let rec = parse_line(arr.as_bytes()).unwrap().unwrap();
        assert_eq!(
            rec.process.token,
            AuditToken::from_val([501, 0, 20, 501, 20, 10, 100_019, 21])
        );
        for (bad, what) in [
            ("[1,2,3]", "invalid length 3"),
            ("[1,2,3,4,5,6,7,8,9]", "invalid length 9"),
            (r#"{"pidversion":1}"#, "missing field `pid`"),
            (r#"{"pid":1}"#, "missing field `pidversion`"),
            (r#"{"pid":1,"pidversion":2,"pid":3}"#, ""),
            (r#""token""#, "expected an audit token"),
            ("[1,2,3,4,5,6,7,4294967296]", "invalid value"),
        ] {
            let l = exit_line().replace(r#"{"pid":10,"pidversion":20,"euid":0}"#, bad);
            match parse_line(l.as_bytes()) {
                Err(ReadErrorKind::Json { message, .. }) => {
                    assert!(message.contains(what), "{bad}: {message}")
                }
                Ok(r) if what.is_empty() => {
                    // A repeated key: the last one wins, as in serde_json's maps.
                    assert_eq!(r.unwrap().process.token.pid, 3);
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_fields_and_null_optionals_are_accepted() {
        let l = line(
            9,
            r#"{"exec":{"new_in_v12":{"x":[1,2,{"y":null}]},"target":{"audit_token":{"pid":10,"pidversion":21,"future":7},"ppid":1,"executable":{"path":"\/bin\/ls","stat":{}},"team_id":null,"signing_id":"","tty":null,"start_time":null,"cdhash":"zz"},"args":null,"cwd":null,"script":null,"env":["A=b"]}}"#,
        );
        let rec = parse_line(l.as_bytes()).unwrap().unwrap();
        let Event::Exec(exec) = rec.event else {
            panic!()
        };
        assert_eq!(
            exec.target.key(),
            ProcessKey {
                pid: 10,
                pidversion: 21
            }
        );
        assert_eq!(exec.target.signing_id, None, "empty means unsigned");
        assert_eq!(exec.target.cdhash, None, "malformed cdhash is dropped");
        assert!(exec.args.is_empty() && exec.cwd.is_none() && exec.script.is_none());
    }

    #[test]
    fn missing_event_objects_and_bad_times_are_typed() {
        let err = parse_line(line(11, r#"{"exit":{"stat":0}}"#).as_bytes()).unwrap_err();
        assert!(matches!(
            err,
            ReadErrorKind::MissingEvent {
                event_type: 11,
                kind: "fork"
            }
        ));
        let bad_time = exit_line().replace("2026-03-02T10:00:00Z", "yesterday");
        let err = parse_line(bad_time.as_bytes()).unwrap_err();
        assert!(
            matches!(err, ReadErrorKind::BadTime { field: "time", ref value } if value == "yesterday")
        );
        let bad_start = exit_line().replace(
            r#""ppid":1"#,
            r#""ppid":1,"start_time":"2026-13-01T00:00:00Z""#,
        );
        assert!(matches!(
            parse_line(bad_start.as_bytes()).unwrap_err(),
            ReadErrorKind::BadTime {
                field: "start_time",
                ..
            }
        ));
    }

    #[test]
    fn other_event_types_are_not_parsed_further() {
        // An open event whose process would not parse: skipped, not an error.
        let l = r#"{"time":"2026-03-02T10:00:00Z","event_type":10,"process":{"bogus":true},"event":{"open":{}}}"#;
        assert_eq!(parse_line(l.as_bytes()).unwrap(), None);
    }

    #[test]
    fn long_lines_are_skipped_and_the_next_line_is_read() {
        let long = line(
            9,
            &format!(
                r#"{{"exec":{{"target":{PROC},"args":["{}"]}}}}"#,
                "a".repeat(5000)
            ),
        );
        let input = format!("{long}\n{}\n", exit_line());
        let mut r = EsloggerReader::new(BufReader::with_capacity(64, Cursor::new(input)))
            .with_max_line_bytes(1024);
        let first = r.next().unwrap().unwrap_err();
        assert_eq!(first.line, 1);
        assert!(
            matches!(first.kind, ReadErrorKind::TooLong { len, max: 1024 } if len == long.len())
        );
        assert!(r.next().unwrap().is_ok());
        assert!(r.next().is_none());
    }

    #[test]
    fn args_past_the_budget_are_cut_and_flagged() {
        let big = "x".repeat(100 * 1024);
        let l = line(
            9,
            &format!(
                r#"{{"exec":{{"target":{PROC},"args":["sh","{big}","{big}","{big}","tail"]}}}}"#
            ),
        );
        let Event::Exec(exec) = parse_line(l.as_bytes()).unwrap().unwrap().event else {
            panic!()
        };
        assert_eq!(exec.args.len(), 3);
        assert!(exec.args_truncated);
    }

    #[test]
    fn last_line_without_newline_and_invalid_utf8() {
        let mut input = exit_line().into_bytes();
        input.extend_from_slice(b"\n{\"time\":\"\xff\"}\n");
        input.extend_from_slice(exit_line().as_bytes());
        let mut r = EsloggerReader::new(Cursor::new(input));
        assert!(r.next().unwrap().is_ok());
        let e = r.next().unwrap().unwrap_err();
        assert_eq!(e.line, 2);
        assert_eq!(
            json_column(&e.kind),
            (10, "invalid unicode code point"),
            "{e}"
        );
        assert!(r.next().unwrap().is_ok());
        assert!(r.next().is_none());
        assert_eq!(r.line_number(), 3);
    }

    /// Input that fails after its first line.
    struct Failing(Cursor<Vec<u8>>);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(std::io::Error::other("disk gone")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn an_io_error_ends_the_stream() {
        let input = format!("{}\n", exit_line()).into_bytes();
        let mut r = EsloggerReader::new(BufReader::new(Failing(Cursor::new(input))));
        assert!(r.next().unwrap().is_ok());
        let e = r.next().unwrap().unwrap_err();
        assert_eq!(e.line, 2);
        assert!(matches!(e.kind, ReadErrorKind::Io(_)));
        assert!(r.next().is_none());
    }

    #[test]
    fn cdhash_hex() {
        assert_eq!(parse_cdhash(&"0".repeat(40)), None);
        assert_eq!(parse_cdhash("ab"), None);
        let mut want = [0u8; 20];
        want[19] = 0xab;
        assert_eq!(parse_cdhash(&format!("{}AB", "0".repeat(38))), Some(want));
        assert_eq!(parse_cdhash(&format!("{}ab", "0".repeat(38))), Some(want));
        assert_eq!(parse_cdhash(&format!("{}\u{e9}", "0".repeat(38))), None);
    }
}
