//! Inputs: recorded streams in, [`crate::document::Document`]s out.
//!
//! Each input format has its own reader module; [`Format`] names them and [`detect`] picks one
//! from an input's first non-blank line: ECS NDJSON ([`ecs_ndjson`]), Linux audit logs
//! ([`linux_audit`], [`audit_live`]) and macOS `eslogger` NDJSON ([`eslogger`], through the
//! Endpoint Security normalizer [`endpoint_security`], which the live macOS source [`es_live`]
//! shares).

#[cfg(target_os = "linux")]
pub mod audit_daemon;
#[cfg(target_os = "linux")]
pub mod audit_live;
#[cfg(target_os = "linux")]
pub mod audit_tamper;
pub mod ecs_ndjson;
pub mod endpoint_security;
#[cfg(target_os = "macos")]
pub mod es_live;
pub mod eslogger;
#[cfg(target_os = "linux")]
pub mod linux_audit;

use std::fmt;
use std::io::{self, BufRead, Cursor, Read};

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use thiserror::Error;

/// An input format `replay` can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// ECS documents, one JSON object per line (Elastic Defend, auditbeat, execsentry's own
    /// event output).
    Ecs,
    /// Linux audit records as auditd writes them (audit.log, raw or ENRICHED, or the plugin
    /// stream): `type=SYSCALL msg=audit(...): ...`.
    Audit,
    /// Apple's `eslogger exec fork exit` output (macOS 13+): one Endpoint Security message per
    /// line.
    Eslogger,
}

impl Format {
    pub const ALL: &'static [Format] = &[Format::Ecs, Format::Audit, Format::Eslogger];

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Ecs => "ecs",
            Format::Audit => "audit",
            Format::Eslogger => "eslogger",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Format::Ecs => "ECS NDJSON, one JSON object per line",
            Format::Audit => "Linux audit log lines, type=... msg=audit(...)",
            Format::Eslogger => "macOS eslogger NDJSON, from `eslogger exec fork exit`",
        }
    }

    /// `ecs (ECS NDJSON, one JSON object per line), ...` for error messages.
    pub fn list() -> String {
        Format::ALL
            .iter()
            .map(|f| format!("{} ({})", f.name(), f.description()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The first line fits no known format.
#[derive(Clone, Debug, Error, PartialEq, Eq)]
#[error(
    "cannot tell the input format: the first line {found}; known formats: {}",
    Format::list()
)]
pub struct DetectError {
    /// What the first non-blank line looks like, for the message.
    pub found: String,
}

/// The format of an input whose first non-blank line is `line` (or its first [`SNIFF_MAX`]
/// bytes).
pub fn detect(line: &[u8]) -> Result<Format, DetectError> {
    let trimmed = line.trim_ascii_start();
    match trimmed.first() {
        Some(b'{') if is_eslogger(trimmed) => Ok(Format::Eslogger),
        // An object, or the start of a broken one: the NDJSON reader reports the line itself.
        Some(b'{') => Ok(Format::Ecs),
        _ if trimmed.starts_with(b"type=") || trimmed.starts_with(b"node=") => Ok(Format::Audit),
        _ => {
            let shown: String = String::from_utf8_lossy(trimmed).chars().take(40).collect();
            Err(DetectError {
                found: format!("is not a JSON object (it starts {shown:?})"),
            })
        }
    }
}

/// Whether a JSON object line is an eslogger message.
///
/// A whole line that parses as one is. A line that does not — cut short at [`SNIFF_MAX`], or
/// broken further on — is one when its top-level keys, as far as they parse, include a numeric
/// `event_type` and one of eslogger's sequence or schema keys: ECS documents nest `event.type`
/// and never carry these at the top level. Deciding wrongly for ECS would read every eslogger line
/// as an event with no known field: no alert and no error, so a broken first line must not do it.
fn is_eslogger(line: &[u8]) -> bool {
    if execsentry_macos::parse_line(line).is_ok() {
        return true;
    }
    let mut seen = TopKeys::default();
    let mut de = serde_json::Deserializer::from_slice(line);
    // An error only ends the scan: what was seen before it decides.
    let _ = (&mut de).deserialize_map(TopKeysVisitor(&mut seen));
    seen.numeric_event_type && seen.eslogger_key
}

#[derive(Default)]
struct TopKeys {
    numeric_event_type: bool,
    eslogger_key: bool,
}

struct TopKeysVisitor<'s>(&'s mut TopKeys);

impl<'de> Visitor<'de> for TopKeysVisitor<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "event_type" => {
                    map.next_value::<u64>()?;
                    self.0.numeric_event_type = true;
                }
                "global_seq_num" | "seq_num" | "schema_version" | "mach_time" | "action_type" => {
                    map.next_value::<IgnoredAny>()?;
                    self.0.eslogger_key = true;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

/// Upper bound on what [`sniff`] reads: the first non-blank line up to this many bytes (an
/// eslogger exec line carries the whole environment).
const SNIFF_MAX: usize = 1024 * 1024;

/// Reads `input` through its first non-blank line (at most [`SNIFF_MAX`] bytes), detects the
/// format there, and returns it with a reader that yields the input from its very first byte, so
/// line numbers are unaffected. An input with no non-blank line is ECS (and yields nothing).
pub fn sniff<R: BufRead>(mut input: R) -> io::Result<(Result<Format, DetectError>, Sniffed<R>)> {
    let mut prefix = Vec::new();
    // Where the first non-blank byte is, and how far `prefix` has been searched (for it, then
    // for the newline ending its line), so each byte is looked at once.
    let mut first: Option<usize> = None;
    let mut scanned = 0;
    loop {
        if first.is_none() {
            first = prefix[scanned..]
                .iter()
                .position(|b: &u8| !b.is_ascii_whitespace())
                .map(|i| scanned + i);
        }
        if let Some(f) = first {
            if memchr::memchr(b'\n', &prefix[scanned.max(f)..]).is_some() {
                break;
            }
        }
        scanned = prefix.len();
        if prefix.len() >= SNIFF_MAX {
            break;
        }
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break;
        }
        let take = buf.len().min(SNIFF_MAX - prefix.len());
        prefix.extend_from_slice(&buf[..take]);
        input.consume(take);
    }
    let format = match first {
        None => Ok(Format::Ecs),
        Some(first) => {
            // The first non-blank line starts after the last newline before its first non-space.
            let start = prefix[..first]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let end = memchr::memchr(b'\n', &prefix[first..]).map_or(prefix.len(), |i| first + i);
            detect(&prefix[start..end])
        }
    };
    Ok((format, Cursor::new(prefix).chain(input)))
}

/// The input again from its first byte, after [`sniff`] looked at its start.
pub type Sniffed<R> = io::Chain<Cursor<Vec<u8>>, R>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_json_objects_and_rejects_the_rest() {
        assert_eq!(detect(b"{\"a\":1}"), Ok(Format::Ecs));
        assert_eq!(detect(b"  {broken"), Ok(Format::Ecs));
        assert_eq!(
            detect(b"type=EXECVE msg=audit(1.2:3): argc=1"),
            Ok(Format::Audit)
        );
        assert_eq!(
            detect(b"node=web1 type=EOE msg=audit(1.2:3): "),
            Ok(Format::Audit)
        );
        let e = detect(b"Nov 28 sshd[1]: Accepted").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("\"Nov 28"), "{msg}");
        assert!(msg.contains("known formats: ecs (ECS NDJSON"), "{msg}");
        assert!(msg.contains("audit (Linux audit"), "{msg}");
        assert!(detect(b"[1]").is_err());
    }

    #[test]
    fn sniff_keeps_every_byte() {
        let input: &[u8] = b"\n  \n{\"a\":1}\n{\"b\":2}\n";
        let (format, mut rest) = sniff(input).unwrap();
        assert_eq!(format, Ok(Format::Ecs));
        let mut all = Vec::new();
        rest.read_to_end(&mut all).unwrap();
        assert_eq!(all, input);

        let (format, _) = sniff(&b"\n\nhello\n"[..]).unwrap();
        assert!(format.unwrap_err().found.contains("\"hello\""));
        let (format, _) = sniff(&b""[..]).unwrap();
        assert_eq!(format, Ok(Format::Ecs));
    }

    #[test]
    fn sniff_across_small_reads() {
        // A BufReader of 2 bytes makes the first line arrive in pieces.
        let input: &[u8] = b"\n\n   x-not-json\n";
        let (format, mut rest) = sniff(io::BufReader::with_capacity(2, input)).unwrap();
        assert!(format.is_err());
        let mut all = Vec::new();
        rest.read_to_end(&mut all).unwrap();
        assert_eq!(all, input);
    }

    const EXEC_FORK_EXIT: &str = include_str!("../../tests/fixtures/macos/exec_fork_exit.ndjson");
    const ARRAY_TOKENS: &str = include_str!("../../tests/fixtures/macos/array_tokens_v10.ndjson");

    fn first_line(s: &str) -> &[u8] {
        s.lines().next().unwrap().as_bytes()
    }

    #[test]
    fn detects_eslogger_lines() {
        assert_eq!(detect(first_line(EXEC_FORK_EXIT)), Ok(Format::Eslogger));
        assert_eq!(detect(first_line(ARRAY_TOKENS)), Ok(Format::Eslogger));
        // A message of an event type execsentry does not map is still eslogger.
        let open = br#"{"schema_version":1,"version":9,"time":"2026-03-02T10:00:00Z","event_type":25,"global_seq_num":9,"process":{},"event":{"open":{}}}"#;
        assert_eq!(detect(open), Ok(Format::Eslogger));
    }

    /// A first line cut short (over the sniff limit) or broken further on is still recognized
    /// by the top-level keys before the break.
    #[test]
    fn detects_eslogger_lines_that_do_not_parse() {
        let line = first_line(EXEC_FORK_EXIT);
        let cut = line
            .windows(8)
            .position(|w| w == b"\"event\":")
            .expect("the fork line has an event object");
        assert!(execsentry_macos::parse_line(&line[..cut]).is_err());
        assert_eq!(detect(&line[..cut]), Ok(Format::Eslogger));
        let broken = br#"{"event_type":9,"seq_num":3,"process":{"audit_token":[1,2"#;
        assert_eq!(detect(broken), Ok(Format::Eslogger));
    }

    /// ECS documents that mention the same names are ECS: nested (execsentry's own `macos.es`
    /// output), not numeric, or without any eslogger sequence key.
    #[test]
    fn ecs_documents_that_look_alike_stay_ecs() {
        for line in [
            &br#"{"event":{"type":["start"]},"macos":{"es":{"global_seq_num":4,"seq_num":1}}}"#[..],
            br#"{"event_type":"9","global_seq_num":4}"#,
            br#"{"event_type":9,"message":"global_seq_num"}"#,
            br#"{"event_type":9.5,"seq_num":1}"#,
            br#"{"message":"\"event_type\":9,\"seq_num\":1"}"#,
        ] {
            assert_eq!(
                detect(line),
                Ok(Format::Ecs),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    /// eslogger exec lines carry the whole environment: the sniffer reads the whole first line,
    /// past any read buffer, and gives every byte back.
    #[test]
    fn sniff_reads_a_long_first_line_whole() {
        let line = first_line(EXEC_FORK_EXIT);
        let env = format!(r#""env":["X={}"],"#, "y".repeat(300_000));
        let mut long = b"{".to_vec();
        long.extend_from_slice(env.as_bytes());
        long.extend_from_slice(&line[1..]);
        let mut input = b"\n".to_vec();
        input.extend_from_slice(&long);
        input.extend_from_slice(b"\n{}\n");
        let (format, mut rest) = sniff(io::BufReader::with_capacity(8192, &input[..])).unwrap();
        assert_eq!(format, Ok(Format::Eslogger));
        let mut all = Vec::new();
        rest.read_to_end(&mut all).unwrap();
        assert_eq!(all, input);
    }
}
