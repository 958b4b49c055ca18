//! Inputs: one file per source, each mapping its records into documents.

#[cfg(target_os = "linux")]
pub mod linux_audit;
