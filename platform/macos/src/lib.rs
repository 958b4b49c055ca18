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
