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
