//! Linux kernel audit, as plain records.
//!
//! In: audit netlink datagrams (unicast as the audit daemon, or multicast beside one), auditd plugin
//! lines on stdin, audit.log lines (raw or ENRICHED). Out: one [`AuditEvent`] per audit serial — an
//! [`ExecRecord`] for execve/execveat with argv rebuilt from every EXECVE record, or an
//! [`OtherRecord`] — after `EOE`, a standalone type, a timeout or the in-flight cap.
//!
//! The layers, each usable alone:
//! - [`record`]: parse one record in place ([`parse_body`] for netlink, [`parse_line`] for text);
//!   field-aware decoding of quoted-or-hex strings and per-field radix.
//! - [`assemble`]: the pure state machine from records to events, with loss counted from serial
//!   gaps ([`gaps`]).
//! - [`netlink`]: the NETLINK_AUDIT record socket (all `unsafe` lives there).
//! - [`control`]: status, the sensor's own exec rules, and a guard that restores both.
//! - [`reader`]: line readers for the plugin stream and log files.
//!
//! Knows nothing of ECS or rules: `execsentry`'s `source::linux_audit` maps these records into
//! `ProcessEvent`.

pub mod arch;
pub mod assemble;
pub mod control;
pub mod error;
pub mod gaps;
pub mod netlink;
pub mod reader;
pub mod record;
pub mod types;

pub use arch::Arch;
pub use assemble::{
    Argv, Assembler, AssemblerConfig, AssemblerStats, AuditEvent, EventEnd, ExecRecord, NameType,
    OtherRecord, PathItem, RawRecord, SyscallInfo,
};
pub use error::Error;
pub use record::{parse_body, parse_line, AuditTime, Field, ParseError, ParseErrorKind, Record};
