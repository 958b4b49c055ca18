//! Size-based rotation by renaming: `alerts.ndjson` → `alerts.ndjson.1` → … → `alerts.ndjson.N`.
//!
//! Renaming (never copying) keeps every line whole and lets shippers that follow inodes
//! (Filebeat, Elastic Agent, Vector, Fluent Bit) finish the old file before moving on. The
//! writer reopens the path afterwards; the oldest file beyond `keep` is overwritten by the
//! rename onto it, so there are never more than `keep` rotated files.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

/// When and how far to rotate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate before a write would take the file past this many bytes. A single line longer
    /// than this still goes whole into a fresh file.
    pub max_bytes: u64,
    /// Rotated files kept (`.1` newest … `.keep` oldest); 0 keeps none (the file starts over).
    pub keep: u32,
}

impl Rotation {
    /// True when a line of `line_len` bytes must go to a fresh file, the current one holding
    /// `size` bytes. An empty file is never rotated (a long line would rotate forever).
    pub fn due(&self, size: u64, line_len: usize) -> bool {
        size > 0 && size.saturating_add(line_len as u64) > self.max_bytes
    }
}

/// `path.n`.
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Shifts `path.1..path.(keep-1)` up by one and renames `path` to `path.1`; with `keep == 0`,
/// removes `path`. Missing files in the chain are skipped. The caller reopens `path`.
pub fn rotate(path: &Path, keep: u32) -> io::Result<()> {
    if keep == 0 {
        return ignore_missing(std::fs::remove_file(path));
    }
    for n in (1..keep).rev() {
        ignore_missing(std::fs::rename(numbered(path, n), numbered(path, n + 1)))?;
    }
    ignore_missing(std::fs::rename(path, numbered(path, 1)))
}

fn ignore_missing(r: io::Result<()>) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_only_past_the_limit_and_never_on_an_empty_file() {
        let r = Rotation {
            max_bytes: 100,
            keep: 2,
        };
        assert!(!r.due(0, 500), "a fresh file takes any line");
        assert!(!r.due(90, 10), "exactly at the limit still fits");
        assert!(r.due(90, 11));
    }

    #[test]
    fn shifts_the_chain_and_drops_the_oldest() {
        let dir = std::env::temp_dir().join(format!("execsentry-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("a.ndjson");
        let read = |p: PathBuf| std::fs::read_to_string(p).ok();
        for gen in 0..4 {
            std::fs::write(&path, format!("{gen}\n")).unwrap();
            rotate(&path, 2).unwrap();
        }
        assert_eq!(read(path.clone()), None);
        assert_eq!(read(numbered(&path, 1)).as_deref(), Some("3\n"));
        assert_eq!(read(numbered(&path, 2)).as_deref(), Some("2\n"));
        assert_eq!(read(numbered(&path, 3)), None, "keep 2 means two files");
        std::fs::write(&path, "x\n").unwrap();
        rotate(&path, 0).unwrap();
        assert_eq!(read(path.clone()), None, "keep 0 starts over");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
