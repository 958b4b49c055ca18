//! NDJSON lines appended to a file that other tools tail (Filebeat, Elastic Agent, Vector).
//!
//! - Whole lines only. Each line goes to the kernel in one `write`; if the kernel takes only
//!   part of it (a full disk), the rest is retried at once, and if that fails the file is cut
//!   back to where the line began, so a failed line leaves nothing behind and can be retried.
//! - Private by default: files it creates get mode 0600 (alerts say who ran what), or 0640 and
//!   a chosen group for a log shipper that runs unprivileged.
//! - It follows its path, not its inode: before every write it checks that the path still names
//!   the open file, and reopens it otherwise — after an external logrotate, or when a removed
//!   directory reappears (until then writes fail, and the caller retries).
//! - Size-based rotation ([`Rotation`]) and an fsync policy ([`Fsync`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::rotate::{rotate, Rotation};
use super::{Sink, SinkError};

/// When written lines are forced to stable storage.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Fsync {
    /// Leave it to the kernel (lines survive a crash of the sensor, not of the machine).
    #[default]
    Never,
    /// `fdatasync` after every line: nothing acknowledged is lost, at a cost per alert.
    EveryWrite,
    /// `fdatasync` at most this often while lines are waiting (and when idle or stopping).
    Interval(Duration),
}

/// How a [`FileSink`] treats its file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FileOptions {
    pub rotation: Option<Rotation>,
    pub fsync: Fsync,
    /// Files get this group and mode 0640 (every time they are opened), so a shipper in that
    /// group can read them; `None`: files are created 0600 and existing ones keep their mode.
    pub group: Option<u32>,
}

/// An append-only NDJSON file.
pub struct FileSink {
    path: PathBuf,
    options: FileOptions,
    file: Option<Opened>,
    /// Lines written since the last `fdatasync`.
    unsynced: bool,
    last_sync: Instant,
    /// A partial line could not be cut back: the next write starts on a new line.
    fragment_left: bool,
    last_rotate_warning: Option<Instant>,
}

struct Opened {
    file: File,
    size: u64,
    /// Identity of the file, to notice when the path names another one (or none).
    id: (u64, u64),
    regular: bool,
}

impl FileSink {
    /// Opens `path` for appending with default options (0600, no rotation, no fsync).
    pub fn open(path: &Path) -> io::Result<FileSink> {
        FileSink::with_options(path, FileOptions::default())
    }

    /// Opens `path` now, so a bad path or group fails at start rather than at the first alert.
    pub fn with_options(path: &Path, options: FileOptions) -> io::Result<FileSink> {
        let mut sink = FileSink {
            path: path.to_owned(),
            options,
            file: None,
            unsynced: false,
            last_sync: Instant::now(),
            fragment_left: false,
            last_rotate_warning: None,
        };
        sink.file = Some(sink.open_file()?);
        Ok(sink)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: io::Error) -> SinkError {
        SinkError::from_io(&format!("writing to {}", self.path.display()), e)
    }

    fn open_file(&self) -> io::Result<Opened> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
        let mut options = OpenOptions::new();
        options
            .create(true)
            .append(true)
            .mode(if self.options.group.is_some() {
                0o640
            } else {
                0o600
            });
        let file = options.open(&self.path)?;
        let meta = file.metadata()?;
        if meta.is_dir() {
            return Err(io::Error::other("it is a directory"));
        }
        if let (Some(gid), true) = (self.options.group, meta.is_file()) {
            std::os::unix::fs::fchown(&file, None, Some(gid)).map_err(|e| {
                io::Error::new(e.kind(), format!("setting its group to {gid}: {e}"))
            })?;
            file.set_permissions(std::fs::Permissions::from_mode(0o640))?;
        }
        Ok(Opened {
            size: meta.len(),
            id: (meta.dev(), meta.ino()),
            regular: meta.is_file(),
            file,
        })
    }

    /// The open file, reopened if the path no longer names it (moved, deleted, or its
    /// directory removed: then the open fails with the reason, and the caller retries later).
    fn current(&mut self) -> io::Result<&mut Opened> {
        use std::os::unix::fs::MetadataExt;
        let stale = match (&self.file, std::fs::metadata(&self.path)) {
            (None, _) => true,
            (Some(open), Ok(meta)) => open.id != (meta.dev(), meta.ino()),
            (Some(_), Err(_)) => true,
        };
        if stale {
            if let Some(old) = self.file.take() {
                log::warn!("{} was moved or removed; reopening it", self.path.display());
                self.sync_file(&old.file);
            }
            self.file = Some(self.open_file()?);
        }
        self.file
            .as_mut()
            .ok_or_else(|| io::Error::other("file not open"))
    }

    /// Rotates when `line_len` more bytes would pass the limit. A failing rotation is logged
    /// (once a minute) and writing goes on in the current file: alerts come before size.
    fn rotate_if_due(&mut self, line_len: usize) -> io::Result<()> {
        let Some(rotation) = self.options.rotation else {
            return Ok(());
        };
        let due = self
            .file
            .as_ref()
            .is_some_and(|f| f.regular && rotation.due(f.size, line_len));
        if !due {
            return Ok(());
        }
        if let Some(old) = self.file.take() {
            self.sync_file(&old.file);
        }
        if let Err(e) = rotate(&self.path, rotation.keep) {
            let quiet = self
                .last_rotate_warning
                .is_some_and(|t| t.elapsed() < Duration::from_secs(60));
            if !quiet {
                log::warn!(
                    "cannot rotate {}: {e}; writing on past {} bytes",
                    self.path.display(),
                    rotation.max_bytes
                );
                self.last_rotate_warning = Some(Instant::now());
            }
        }
        self.file = Some(self.open_file()?);
        Ok(())
    }

    fn sync_file(&mut self, file: &File) {
        if self.options.fsync != Fsync::Never && self.unsynced {
            if let Err(e) = file.sync_data() {
                log::error!("fsync of {}: {e}", self.path.display());
            }
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
    }

    fn sync_if_due(&mut self) -> io::Result<()> {
        let due = match self.options.fsync {
            Fsync::Never => false,
            Fsync::EveryWrite => true,
            Fsync::Interval(every) => self.last_sync.elapsed() >= every,
        };
        if !(due && self.unsynced) {
            return Ok(());
        }
        if let Some(open) = &self.file {
            open.file.sync_data()?;
        }
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn write_inner(&mut self, line: &[u8]) -> io::Result<()> {
        self.current()?;
        self.rotate_if_due(line.len())?;
        let fragment_left = self.fragment_left;
        let open = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("file not open"))?;
        if fragment_left {
            // End the fragment a failed cut-back left, so it cannot swallow this line.
            append_whole(&mut open.file, b"\n")?;
            open.size += 1;
        }
        let outcome = append_whole(&mut open.file, line);
        match outcome {
            Ok(()) => {
                open.size += line.len() as u64;
                self.fragment_left = false;
                self.unsynced = true;
                Ok(())
            }
            Err(Failed { error, fragment }) => {
                if fragment {
                    log::error!(
                        "{}: a partial line could not be removed; the next line starts a new one",
                        self.path.display()
                    );
                }
                self.fragment_left = fragment;
                Err(error)
            }
        }
    }
}

impl Sink for FileSink {
    fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
        self.write_inner(line).map_err(|e| self.error(e))?;
        // The line is written: a failing fsync is reported, never turned into a retry that
        // would duplicate it.
        if let Err(e) = self.sync_if_due() {
            log::error!("fsync of {}: {e}", self.path.display());
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        // Unbuffered: every line is already with the kernel.
        self.sync_if_due().map_err(|e| self.error(e))
    }

    fn idle(&mut self) -> Result<(), SinkError> {
        self.sync_if_due().map_err(|e| self.error(e))
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        if let Some(open) = self.file.take() {
            self.sync_file(&open.file);
        }
    }
}

/// A file a line can be appended to and cut back (a seam for tests of partial writes).
trait Appendable: Write {
    fn end(&self) -> io::Result<u64>;
    fn cut_to(&self, len: u64) -> io::Result<()>;
}

impl Appendable for File {
    fn end(&self) -> io::Result<u64> {
        Ok(self.metadata()?.len())
    }

    fn cut_to(&self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

/// A failed append: the error, and whether part of the line is still in the file.
struct Failed {
    error: io::Error,
    fragment: bool,
}

impl From<Failed> for io::Error {
    fn from(f: Failed) -> io::Error {
        f.error
    }
}

/// Appends all of `line` or, as far as the file allows, nothing.
fn append_whole<F: Appendable>(f: &mut F, line: &[u8]) -> Result<(), Failed> {
    let mut written = 0;
    while written < line.len() {
        let error = match f.write(&line[written..]) {
            Ok(0) => io::Error::new(io::ErrorKind::WriteZero, "the file took no more bytes"),
            Ok(n) => {
                written += n;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => e,
        };
        let fragment = written > 0
            && f.end()
                .and_then(|end| f.cut_to(end.saturating_sub(written as u64)))
                .is_err();
        return Err(Failed { error, fragment });
    }
    Ok(())
}

/// The gid of a group given by name or number (`adm`, `4`).
pub fn resolve_group(group: &str) -> io::Result<u32> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let name = std::ffi::CString::new(group)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "group name holds a NUL"))?;
    let mut buf = vec![0u8; 4096];
    loop {
        // SAFETY: zeroed `group` is a valid out-parameter; `buf` is live for `buf.len()` bytes
        // and outlives the call; `result` is a live out-pointer.
        let (rc, found) = unsafe {
            let mut grp: libc::group = std::mem::zeroed();
            let mut result: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrnam_r(
                name.as_ptr(),
                &mut grp,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            (rc, (!result.is_null()).then_some(grp.gr_gid))
        };
        match (rc, found) {
            (libc::ERANGE, _) if buf.len() < 1 << 20 => buf.resize(buf.len() * 2, 0),
            (0, Some(gid)) => return Ok(gid),
            (0, None) => {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no group named {group:?}"),
                ))
            }
            (rc, _) => return Err(io::Error::from_raw_os_error(rc)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    struct Dir(PathBuf);

    impl Dir {
        fn new(tag: &str) -> Dir {
            let dir = std::env::temp_dir()
                .join(format!("execsentry-filesink-{tag}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn appends_with_mode_0600() {
        let dir = Dir::new("append");
        let path = dir.0.join("alerts.ndjson");
        let mut sink = FileSink::open(&path).unwrap();
        sink.write_line(b"{\"a\":1}\n").unwrap();
        drop(sink);
        let mut sink = FileSink::open(&path).unwrap();
        sink.write_line(b"{\"a\":2}\n").unwrap();
        sink.flush().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"a\":1}\n{\"a\":2}\n"
        );
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_group_gets_read_access() {
        let dir = Dir::new("group");
        let path = dir.0.join("alerts.ndjson");
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        // Our own group: chown to it needs no privilege.
        // SAFETY: getegid has no preconditions.
        let gid = unsafe { libc::getegid() };
        let options = FileOptions {
            group: Some(gid),
            ..FileOptions::default()
        };
        let mut sink = FileSink::with_options(&path, options).unwrap();
        sink.write_line(b"{}\n").unwrap();
        assert_eq!(
            mode(&path),
            0o640,
            "an existing file is opened up to the group"
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(&path).unwrap().gid(), gid);
    }

    #[test]
    fn groups_resolve_by_name_and_number() {
        assert_eq!(resolve_group("0").unwrap(), 0);
        assert_eq!(resolve_group("root").unwrap(), 0);
        let e = resolve_group("no-such-group-execsentry").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn rotates_by_size_keeping_n_files_of_whole_lines() {
        let dir = Dir::new("rotate");
        let path = dir.0.join("alerts.ndjson");
        let options = FileOptions {
            rotation: Some(Rotation {
                max_bytes: 100,
                keep: 3,
            }),
            ..FileOptions::default()
        };
        let mut sink = FileSink::with_options(&path, options).unwrap();
        // 30-byte lines: three fit in 100 bytes, the fourth rotates.
        for i in 0..20 {
            let line = format!("{{\"n\":{i:>2},\"pad\":\"{}\"}}\n", "x".repeat(12));
            assert_eq!(line.len(), 30);
            sink.write_line(line.as_bytes()).unwrap();
        }
        drop(sink);
        let read = |p: &Path| std::fs::read_to_string(p).ok();
        let numbers = |text: &str| -> Vec<u32> {
            text.lines()
                .map(|l| {
                    let v: serde_json::Value = serde_json::from_str(l).unwrap();
                    v["n"].as_u64().unwrap() as u32
                })
                .collect()
        };
        // 20 lines, 3 per file: files hold 0-2, 3-5, ..., 15-17, 18-19.
        assert_eq!(numbers(&read(&path).unwrap()), [18, 19]);
        assert_eq!(
            numbers(&read(&super::super::rotate::numbered(&path, 1)).unwrap()),
            [15, 16, 17]
        );
        assert_eq!(
            numbers(&read(&super::super::rotate::numbered(&path, 3)).unwrap()),
            [9, 10, 11]
        );
        assert_eq!(read(&super::super::rotate::numbered(&path, 4)), None);
        for n in 1..=3 {
            let p = super::super::rotate::numbered(&path, n);
            assert!(std::fs::metadata(&p).unwrap().len() <= 100);
            assert_eq!(mode(&p), 0o600);
        }
    }

    #[test]
    fn a_line_longer_than_the_limit_goes_whole_into_its_own_file() {
        let dir = Dir::new("long");
        let path = dir.0.join("a.ndjson");
        let options = FileOptions {
            rotation: Some(Rotation {
                max_bytes: 10,
                keep: 1,
            }),
            ..FileOptions::default()
        };
        let mut sink = FileSink::with_options(&path, options).unwrap();
        let long = format!("\"{}\"\n", "y".repeat(40));
        sink.write_line(b"1\n").unwrap();
        sink.write_line(long.as_bytes()).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), long);
        let rotated = super::super::rotate::numbered(&path, 1);
        assert_eq!(std::fs::read_to_string(rotated).unwrap(), "1\n");
    }

    #[test]
    fn dev_full_fails_whole_lines() {
        let mut sink = FileSink::open(Path::new("/dev/full")).unwrap();
        let e = sink.write_line(b"{\"a\":1}\n").unwrap_err();
        match e {
            SinkError::Io { source, .. } => {
                assert_eq!(source.raw_os_error(), Some(libc::ENOSPC), "{source}")
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_removed_directory_fails_writes_until_it_reappears() {
        let dir = Dir::new("removed");
        let sub = dir.0.join("log");
        std::fs::create_dir(&sub).unwrap();
        let path = sub.join("alerts.ndjson");
        let mut sink = FileSink::open(&path).unwrap();
        sink.write_line(b"1\n").unwrap();
        std::fs::remove_dir_all(&sub).unwrap();
        let e = sink.write_line(b"2\n").unwrap_err();
        assert!(
            matches!(&e, SinkError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound),
            "{e}"
        );
        std::fs::create_dir(&sub).unwrap();
        sink.write_line(b"2\n").unwrap();
        sink.write_line(b"3\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "2\n3\n");
    }

    #[test]
    fn follows_the_path_after_an_external_rotation() {
        let dir = Dir::new("moved");
        let path = dir.0.join("alerts.ndjson");
        let mut sink = FileSink::open(&path).unwrap();
        sink.write_line(b"old\n").unwrap();
        std::fs::rename(&path, dir.0.join("alerts.ndjson.1")).unwrap();
        sink.write_line(b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        assert_eq!(
            std::fs::read_to_string(dir.0.join("alerts.ndjson.1")).unwrap(),
            "old\n"
        );
    }

    #[test]
    fn fsync_policies_write_the_same_lines() {
        let dir = Dir::new("fsync");
        for (i, fsync) in [
            Fsync::Never,
            Fsync::EveryWrite,
            Fsync::Interval(Duration::ZERO),
        ]
        .into_iter()
        .enumerate()
        {
            let path = dir.0.join(format!("{i}.ndjson"));
            let options = FileOptions {
                fsync,
                ..FileOptions::default()
            };
            let mut sink = FileSink::with_options(&path, options).unwrap();
            sink.write_line(b"a\n").unwrap();
            sink.idle().unwrap();
            sink.write_line(b"b\n").unwrap();
            sink.flush().unwrap();
            assert!(!sink.unsynced || fsync == Fsync::Never, "{fsync:?}");
            drop(sink);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), "a\nb\n");
        }
    }

    /// A file that takes `room` more bytes, then fails like a full disk; `cut_fails` makes the
    /// cut-back fail too.
    struct Tight {
        data: Vec<u8>,
        room: usize,
        cut_fails: bool,
    }

    impl Write for Tight {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::Error::from_raw_os_error(libc::ENOSPC));
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.data.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Appendable for Tight {
        fn end(&self) -> io::Result<u64> {
            Ok(self.data.len() as u64)
        }

        fn cut_to(&self, _len: u64) -> io::Result<()> {
            Err(io::Error::other("unused"))
        }
    }

    /// `Tight` with a working cut-back needs interior mutability: wrap it.
    struct Cuttable(std::cell::RefCell<Tight>);

    impl Write for Cuttable {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.get_mut().write(buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Appendable for Cuttable {
        fn end(&self) -> io::Result<u64> {
            Ok(self.0.borrow().data.len() as u64)
        }

        fn cut_to(&self, len: u64) -> io::Result<()> {
            let mut t = self.0.borrow_mut();
            if t.cut_fails {
                return Err(io::Error::other("EIO"));
            }
            t.data.truncate(len as usize);
            Ok(())
        }
    }

    #[test]
    fn a_short_write_is_cut_back_to_the_last_whole_line() {
        let mut f = Cuttable(std::cell::RefCell::new(Tight {
            data: b"{\"a\":1}\n".to_vec(),
            room: 5,
            cut_fails: false,
        }));
        let failed = append_whole(&mut f, b"{\"a\":2}\n").err().unwrap();
        assert_eq!(failed.error.raw_os_error(), Some(libc::ENOSPC));
        assert!(!failed.fragment);
        assert_eq!(f.0.borrow().data, b"{\"a\":1}\n");
        // Room again: the retried line goes in whole.
        f.0.borrow_mut().room = 100;
        assert!(append_whole(&mut f, b"{\"a\":2}\n").is_ok());
        assert_eq!(f.0.borrow().data, b"{\"a\":1}\n{\"a\":2}\n");
    }

    #[test]
    fn a_fragment_that_cannot_be_cut_is_reported() {
        let mut f = Cuttable(std::cell::RefCell::new(Tight {
            data: Vec::new(),
            room: 3,
            cut_fails: true,
        }));
        let failed = append_whole(&mut f, b"{\"a\":2}\n").err().unwrap();
        assert!(failed.fragment);
        let mut t = Tight {
            data: Vec::new(),
            room: 0,
            cut_fails: false,
        };
        let failed = append_whole(&mut t, b"x\n").err().unwrap();
        assert!(!failed.fragment, "nothing written, nothing to cut");
    }
}
