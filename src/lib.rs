//! execsentry: process executions in, Elastic EQL detections out, as ECS JSON.
//!
//! Sources (`source`) turn kernel audit records, Endpoint Security messages or ECS NDJSON into
//! [`Document`]s — the typed [`event::ProcessEvent`] or a pass-through [`document::JsonDocument`].
//! Rules (`rules`) are Elastic detection-rules TOML compiled by the EQL engine (`eql`) once and
//! evaluated per event; matches become ECS alerts (`alert`) written by a sink (`sink`).

pub mod alert;
pub mod config;
pub mod document;
pub mod eql;
pub mod event;
pub mod replay;
pub mod rules;
pub mod sink;
pub mod source;
pub mod throttle;
pub mod time;

pub mod entity;
pub mod host;
pub mod id_hash;
pub mod pipeline;
pub mod process_table;
#[cfg(target_os = "linux")]
pub mod procfs;
pub mod text_cache;
pub mod users;

pub use document::{Document, FieldPath, JsonDocument, Scalar, Values};
pub use event::ProcessEvent;
