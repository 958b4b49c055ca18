//! macOS Endpoint Security, as plain records.
//!
//! In: Endpoint Security `NOTIFY_EXEC`/`FORK`/`EXIT` messages (live client, macOS only) or Apple's
//! `eslogger` NDJSON (replay, every platform). Out: [`EsRecord`]s with instigator and target
//! process facts, plus (macOS) the processes already running at start. Knows nothing of ECS or
//! rules: `execsentry`'s `source::eslogger` maps these records into `ProcessEvent`.
//!
//! - [`record`]: the record model, shared by every source.
//! - [`eslogger`]: the NDJSON reader, built everywhere (replay, golden tests, fuzzing).
//! - [`seq`]: sequence-number gap counting (kernel drops), for live and replayed streams.
//! - [`client_error`]: what each `es_new_client` failure means and whether to retry.
//! - [`live`]: the live client's configuration, counters and mapping, testable off macOS.
//! - `client` (macOS): the live Endpoint Security client feeding a bounded channel.
//! - `process_list` (macOS): running processes at start, for the process table.
//!
//! A record's `process` is the instigator; for an exec the new image is `Exec::target` (same pid,
//! new pidversion, possibly a new euid). Parents are found by `Process::parent`, a
//! [`ProcessKey`] `(pid, pidversion)`, never by pid alone.
//!
//! ```
//! use execsentry_macos::{EsloggerReader, Event};
//!
//! let line = br#"{"time":"2026-03-02T10:30:02.001Z","event_type":9,"global_seq_num":7,
//!   "process":{"audit_token":[501,501,20,501,20,5001,100019,12002],"ppid":5000,
//!              "executable":{"path":"\/usr\/bin\/python3"}},
//!   "event":{"exec":{"target":{"audit_token":[501,501,20,501,20,5001,100019,12003],
//!     "parent_audit_token":[501,501,20,501,20,5000,100019,12001],"ppid":5000,
//!     "executable":{"path":"\/bin\/bash"}},"args":["bash","-i"],"cwd":{"path":"\/tmp"}}}}"#;
//! let one_line: Vec<u8> = line.iter().copied().filter(|&b| b != b'\n').collect();
//! for record in EsloggerReader::new(&one_line[..]) {
//!     let record = record?; // a bad line is an error with its line number, not the end
//!     if let Event::Exec(exec) = &record.event {
//!         assert_eq!(exec.target.executable, "/bin/bash");
//!         assert_eq!(exec.target.parent.map(|k| (k.pid, k.pidversion)), Some((5000, 12001)));
//!     }
//! }
//! # Ok::<(), execsentry_macos::ReadError>(())
//! ```

pub mod client_error;
pub mod eslogger;
pub mod live;
pub mod record;
pub mod seq;

#[cfg(target_os = "macos")]
pub mod client;
#[cfg(target_os = "macos")]
pub mod process_list;

mod procargs;
mod rfc3339;

pub use client_error::{ClientError, NewClientFailure};
pub use live::{ClientConfig, ClientCounters, ClientState, CountersSnapshot};
pub use seq::SeqGaps;

pub use eslogger::{parse_line, EsloggerReader, ReadError, ReadErrorKind, ReaderStats};
pub use record::{
    AuditToken, EsRecord, Event, EventKind, Exec, Exit, Fork, Header, Process, ProcessKey,
    RunningProcess,
};
