//! `--stats-json PATH`: the pipeline counters for machines, one JSON object replaced whole.
//!
//! Each write goes to a temporary file beside the target and is renamed over it, so a reader
//! (a monitoring agent, `jq`) always sees one complete object, never a half-written one.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;

use crate::pipeline::Snapshot;

/// The object written.
#[derive(Serialize)]
struct Stats<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    pid: u32,
    uptime_seconds: u64,
    /// Everything that means an exec may have gone unseen ([`Snapshot::lost`]).
    lost: u64,
    #[serde(flatten)]
    counters: &'a Snapshot,
}

/// The stats file at one path.
#[derive(Debug)]
pub struct StatsFile {
    path: PathBuf,
    tmp: PathBuf,
    started: Instant,
}

impl StatsFile {
    /// Checks that the file can be written (a bad path fails at start) by writing `initial`.
    pub fn create(path: &Path, initial: &Snapshot) -> io::Result<StatsFile> {
        let mut name = OsString::from(".");
        name.push(path.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the path names no file")
        })?);
        name.push(".tmp");
        let stats = StatsFile {
            path: path.to_owned(),
            tmp: path.with_file_name(name),
            started: Instant::now(),
        };
        stats.write(initial)?;
        Ok(stats)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file with `snapshot` (one JSON object and a newline).
    pub fn write(&self, snapshot: &Snapshot) -> io::Result<()> {
        let stats = Stats {
            timestamp: crate::time::format_rfc3339_ms(crate::time::now_ns()),
            pid: std::process::id(),
            uptime_seconds: self.started.elapsed().as_secs(),
            lost: snapshot.lost(),
            counters: snapshot,
        };
        let mut text = serde_json::to_vec(&stats).map_err(io::Error::other)?;
        text.push(b'\n');
        let mut file = std::fs::File::create(&self.tmp)?;
        file.write_all(&text)?;
        drop(file);
        std::fs::rename(&self.tmp, &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_file_with_one_object() {
        let dir = std::env::temp_dir().join(format!("execsentry-stats-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stats.json");
        let stats = StatsFile::create(&path, &Snapshot::default()).unwrap();
        let snapshot = Snapshot {
            records: 10,
            events: 4,
            serial_gaps: 1,
            kernel_lost: 2,
            alerts: 3,
            ..Snapshot::default()
        };
        stats.write(&snapshot).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["records"], 10);
        assert_eq!(v["events"], 4);
        assert_eq!(v["alerts"], 3);
        assert_eq!(v["lost"], 3);
        assert_eq!(v["pid"], std::process::id());
        assert!(v["@timestamp"].as_str().unwrap().ends_with('Z'));
        // Only the target is left behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["stats.json"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_directory_fails_at_start() {
        let e = StatsFile::create(
            Path::new("/nonexistent-execsentry/stats.json"),
            &Snapshot::default(),
        )
        .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }
}
