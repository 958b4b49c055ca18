//! Alert lines appended to a file that other tools tail (Filebeat, Vector, Fluent Bit).
//!
//! The file is opened with `O_APPEND` and created with mode 0600 (alerts describe who ran what).
//! Each line is handed to the kernel in one `write` of the complete line, so a reader never sees
//! a torn line from us and several writers never interleave inside a line. Rotation comes later.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::{Sink, SinkError};

pub struct FileSink {
    file: File,
    path: PathBuf,
}

impl FileSink {
    /// Opens `path` for appending, creating it with mode 0600 if needed. An existing file keeps
    /// its mode.
    pub fn open(path: &Path) -> io::Result<FileSink> {
        let mut options = OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        Ok(FileSink {
            file: options.open(path)?,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: io::Error) -> SinkError {
        SinkError::from_io(&format!("writing alerts to {}", self.path.display()), e)
    }
}

impl Sink for FileSink {
    fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
        // One write(2) for the whole line. write_all only loops if the kernel wrote part of it
        // (a full disk, a signal); finishing the line then is the least torn outcome there is.
        self.file.write_all(line).map_err(|e| self.error(e))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        // Unbuffered: every line is already with the kernel.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_with_mode_0600() {
        let dir = std::env::temp_dir().join(format!("execsentry-filesink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("alerts.ndjson");
        let _ = std::fs::remove_file(&path);
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
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
