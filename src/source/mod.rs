//! Inputs: recorded streams in, [`crate::document::Document`]s out.
//!
//! Each input format has its own reader module; [`Format`] names them and [`detect`] picks one
//! from an input's first non-blank line: ECS NDJSON ([`ecs_ndjson`]) and Linux audit logs
//! ([`linux_audit`], [`audit_live`]). macOS `eslogger` NDJSON comes next: a [`Format`] variant,
//! a rule in [`detect`] (eslogger objects carry `global_seq_num` and a numeric `event_type`) and
//! a module that yields [`crate::event::ProcessEvent`]s.

#[cfg(target_os = "linux")]
pub mod audit_live;
pub mod ecs_ndjson;
#[cfg(target_os = "linux")]
pub mod linux_audit;

use std::fmt;
use std::io::{self, BufRead, Cursor, Read};

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
}

impl Format {
    pub const ALL: &'static [Format] = &[Format::Ecs, Format::Audit];

    /// The name `--format` takes.
    pub fn name(self) -> &'static str {
        match self {
            Format::Ecs => "ecs",
            Format::Audit => "audit",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Format::Ecs => "ECS NDJSON, one JSON object per line",
            Format::Audit => "Linux audit log lines, type=... msg=audit(...)",
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

/// The format of an input whose first non-blank line is `line`.
pub fn detect(line: &[u8]) -> Result<Format, DetectError> {
    let trimmed = line.trim_ascii_start();
    match trimmed.first() {
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

/// Upper bound on what [`sniff`] reads to find the first non-blank line's first bytes.
const SNIFF_MAX: usize = 64 * 1024;

/// Reads `input` up to the start of its first non-blank line (at most [`SNIFF_MAX`] bytes),
/// detects the format there, and returns it with a reader that yields the input from its very
/// first byte, so line numbers are unaffected. An input with no non-blank line is ECS (and
/// yields nothing).
pub fn sniff<R: BufRead>(mut input: R) -> io::Result<(Result<Format, DetectError>, Sniffed<R>)> {
    let mut prefix = Vec::new();
    let format = loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            break Ok(Format::Ecs);
        }
        let take = buf.len().min(SNIFF_MAX.saturating_sub(prefix.len()).max(1));
        prefix.extend_from_slice(&buf[..take]);
        input.consume(take);
        // The first non-blank line starts after the last newline before its first non-space.
        if let Some(first) = prefix.iter().position(|b| !b.is_ascii_whitespace()) {
            let start = prefix[..first]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let end = prefix[first..]
                .iter()
                .position(|&b| b == b'\n')
                .map_or(prefix.len(), |i| first + i);
            break detect(&prefix[start..end]);
        }
        if prefix.len() >= SNIFF_MAX {
            break Ok(Format::Ecs);
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
}
