//! Line readers for the auditd plugin stream (stdin) and audit.log files, raw or ENRICHED.
//!
//! Both are one record per line in the same text format (the plugin stream also carries `EOE`
//! lines, the log does not), so one reader serves both; pair it with
//! [`AssemblerConfig::text`](crate::AssemblerConfig::text). A line that lies whole in the
//! `BufRead`'s buffer is parsed where it lies (nearly every line: audit lines are short next to a
//! read buffer); one that spans reads is copied into one reused buffer with a length cap, so a
//! hostile stream cannot grow memory without bound. A malformed line is reported with its line
//! number and column and skipped; reading goes on.

use std::fmt;
use std::io::{self, BufRead};

use crate::assemble::{Assembler, AuditEvent};
use crate::record::{parse_line, ParseError, Record};

/// Longest line kept (auditd lines are < 10 KB; ENRICHED adds a little).
pub const DEFAULT_MAX_LINE: usize = 1024 * 1024;

/// A line that could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: u64,
    /// 1-based byte column where the problem was found.
    pub column: usize,
    /// What was wrong.
    pub kind: LineErrorKind,
}

/// Why a line was skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineErrorKind {
    /// The record did not parse.
    Parse(ParseError),
    /// Longer than the cap; skipped whole.
    TooLong {
        /// Bytes in the line.
        len: usize,
    },
}

impl fmt::Display for LineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            LineErrorKind::Parse(e) => {
                write!(f, "line {}, column {}: {}", self.line, self.column, e.kind)
            }
            LineErrorKind::TooLong { len } => {
                write!(
                    f,
                    "line {}: {len} bytes, longer than the line limit; skipped",
                    self.line
                )
            }
        }
    }
}

impl std::error::Error for LineError {}

/// Counters of a [`LineReader`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Lines read (including blank and bad ones).
    pub lines: u64,
    /// Records parsed.
    pub records: u64,
    /// Lines skipped as malformed or too long.
    pub bad_lines: u64,
}

/// Reads audit text lines from any `BufRead` (a file, stdin).
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Bytes of `inner`'s buffer that the last line, parsed in place, still occupies: consumed
    /// on the next call, once its record is no longer borrowed.
    in_place: usize,
    max_line: usize,
    stats: ReaderStats,
}

impl<R: BufRead> LineReader<R> {
    /// A reader with the default line cap.
    pub fn new(inner: R) -> Self {
        Self::with_max_line(inner, DEFAULT_MAX_LINE)
    }

    /// A reader that skips lines longer than `max_line` bytes.
    pub fn with_max_line(inner: R, max_line: usize) -> Self {
        LineReader {
            inner,
            buf: Vec::with_capacity(16 * 1024),
            in_place: 0,
            max_line,
            stats: ReaderStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> ReaderStats {
        self.stats
    }

    /// The next non-blank line as a record (`Ok(None)` at end of input). The record borrows the
    /// reader's buffer until the next call.
    pub fn next_record(&mut self) -> io::Result<Option<Result<Record<'_>, LineError>>> {
        let (line, in_place) = loop {
            self.inner.consume(std::mem::take(&mut self.in_place));
            let (len, in_place) = match self.whole_line_in_buffer()? {
                Some(len) => (len, true),
                None => match self.read_line()? {
                    Some(len) => (len, false),
                    None => return Ok(None),
                },
            };
            if len > self.max_line {
                self.stats.bad_lines += 1;
                return Ok(Some(Err(LineError {
                    line: self.stats.lines,
                    column: 1,
                    kind: LineErrorKind::TooLong { len },
                })));
            }
            let text = if in_place {
                // Still buffered: `fill_buf` returns the same bytes without reading.
                self.inner.fill_buf()?.get(..len).unwrap_or_default()
            } else {
                &self.buf[..]
            };
            if !trim_line(text).is_empty() {
                break (self.stats.lines, in_place);
            }
        };
        let text = if in_place {
            self.inner
                .fill_buf()?
                .get(..self.in_place)
                .unwrap_or_default()
        } else {
            &self.buf[..]
        };
        Ok(Some(match parse_line(trim_line(text)) {
            Ok(rec) => {
                self.stats.records += 1;
                Ok(rec)
            }
            Err(e) => {
                self.stats.bad_lines += 1;
                Err(LineError {
                    line,
                    column: e.offset + 1,
                    kind: LineErrorKind::Parse(e),
                })
            }
        }))
    }

    /// Read to the end, pushing every record into `asm`; events go to `emit`, skipped lines to
    /// `on_error`. Does not flush the assembler (a live stream may continue).
    pub fn feed(
        &mut self,
        asm: &mut Assembler,
        emit: &mut impl FnMut(AuditEvent),
        on_error: &mut impl FnMut(&LineError),
    ) -> io::Result<()> {
        while let Some(item) = self.next_record()? {
            match item {
                Ok(rec) => asm.push(&rec, emit),
                Err(e) => on_error(&e),
            }
        }
        Ok(())
    }

    /// When the next line lies whole in `inner`'s buffer: its length (without the newline), with
    /// the line and its newline left there, to be consumed on the next call.
    fn whole_line_in_buffer(&mut self) -> io::Result<Option<usize>> {
        let chunk = loop {
            match self.inner.fill_buf() {
                Ok(c) => break c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        let Some(len) = memchr::memchr(b'\n', chunk) else {
            return Ok(None);
        };
        self.in_place = len + 1;
        self.stats.lines += 1;
        Ok(Some(len))
    }

    /// Read one line into `buf` (kept up to `max_line + 1` bytes); returns its full length.
    fn read_line(&mut self) -> io::Result<Option<usize>> {
        self.buf.clear();
        let mut len = 0usize;
        let mut any = false;
        let mut newline = false;
        loop {
            let chunk = match self.inner.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (take, done) = match memchr::memchr(b'\n', chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            let room = (self.max_line + 1).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&chunk[..take.min(room)]);
            len += take;
            self.inner.consume(take);
            if done {
                newline = true;
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        self.stats.lines += 1;
        Ok(Some(len - usize::from(newline)))
    }
}

fn trim_line(mut b: &[u8]) -> &[u8] {
    while let [head @ .., b'\n' | b'\r'] = b {
        b = head;
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::assemble::AssemblerConfig;

    const EXEC: &str = "type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=59 success=yes exit=0 pid=7 comm=\"true\" exe=\"/usr/bin/true\" key=\"k\"\x1dARCH=x86_64 SYSCALL=execve\n\
type=EXECVE msg=audit(1.000:1): argc=1 a0=\"true\"\n\
type=PROCTITLE msg=audit(1.000:1): proctitle=\"true\"\n";

    #[test]
    fn reads_lines_and_reports_bad_ones_with_position() {
        let input = format!("\n{EXEC}type=SYSCALL msg=audit(1.x:2): a=b\nnot a record\r\n");
        let mut r = LineReader::new(input.as_bytes());
        let mut asm = Assembler::new(AssemblerConfig::text());
        let mut events = Vec::new();
        let mut errors = Vec::new();
        r.feed(&mut asm, &mut |e| events.push(e), &mut |e| {
            errors.push(e.clone())
        })
        .unwrap();
        assert_eq!(events.len(), 1);
        let e = events[0].as_exec().unwrap();
        assert_eq!(e.syscall.pid, Some(7));
        assert_eq!(e.argv.to_vecs(), [b"true".to_vec()]);
        assert_eq!(errors.len(), 2);
        assert_eq!((errors[0].line, errors[0].column), (5, 26));
        assert_eq!(
            errors[0].to_string(),
            "line 5, column 26: malformed record header: expected milliseconds (0-999)"
        );
        assert_eq!((errors[1].line, errors[1].column), (6, 1));
        assert_eq!(
            r.stats(),
            ReaderStats {
                lines: 6,
                records: 3,
                bad_lines: 2
            }
        );
    }

    #[test]
    fn long_lines_are_skipped_whole() {
        let long = "x".repeat(100);
        let input = format!("{long}\ntype=EOE msg=audit(1.000:1): \n{long}");
        let mut r = LineReader::with_max_line(input.as_bytes(), 50);
        let first = r.next_record().unwrap().unwrap().unwrap_err();
        assert_eq!(first.kind, LineErrorKind::TooLong { len: 100 });
        assert_eq!(r.next_record().unwrap().unwrap().unwrap().serial, 1);
        let last = r.next_record().unwrap().unwrap().unwrap_err();
        assert_eq!(
            (last.line, last.kind),
            (3, LineErrorKind::TooLong { len: 100 })
        );
        assert!(r.next_record().unwrap().is_none());
    }

    #[test]
    fn small_reads_across_line_boundaries() {
        let input = EXEC.as_bytes();
        let mut r = LineReader::new(io::BufReader::with_capacity(7, input));
        let mut n = 0;
        while let Some(rec) = r.next_record().unwrap() {
            rec.unwrap();
            n += 1;
        }
        assert_eq!(n, 3);
    }

    /// Lines parsed in place and lines copied across reads give the same records, errors and
    /// line numbers, whatever the read buffer's size.
    #[test]
    fn every_buffer_size_reads_the_same() {
        let long = "y".repeat(200);
        let input = format!("\n{EXEC}\r\n\n{long}\nnot a record\n{EXEC}");
        let read = |cap: usize| {
            let mut r =
                LineReader::with_max_line(io::BufReader::with_capacity(cap, input.as_bytes()), 150);
            let mut out = Vec::new();
            while let Some(item) = r.next_record().unwrap() {
                out.push(match item {
                    Ok(rec) => format!("{:?} {}", rec.rtype, rec.serial),
                    Err(e) => format!("{} {}:{:?}", e.line, e.column, e.kind),
                });
            }
            (out, r.stats())
        };
        let (want, stats) = read(1 << 16);
        assert_eq!(want.len(), 8, "{want:?}");
        assert_eq!(stats.bad_lines, 2);
        for cap in 1..input.len() + 2 {
            assert_eq!(read(cap), (want.clone(), stats), "buffer of {cap} bytes");
        }
    }
}
