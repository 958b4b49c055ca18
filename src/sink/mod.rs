//! Where alert (and event) lines go: stdout, a file (rotated), or nowhere (benchmarks); and the
//! stats file.
//!
//! Every sink receives complete NDJSON lines and follows the [`Sink`] contract, so the pipeline
//! never needs to know which one it drives.

pub mod events;
pub mod file;
pub mod rotate;
pub mod stats;
pub mod stdout;

use std::io;

use thiserror::Error;

pub use events::EventWriter;
pub use file::{FileOptions, FileSink, Fsync};
pub use rotate::Rotation;
pub use stdout::StdoutSink;

/// A destination for NDJSON lines.
///
/// Contract:
/// - [`Sink::write_line`] takes one complete line: it ends in `\n` and holds no other newline.
///   A sink never writes part of a line on its own: either the whole line reaches the
///   destination or (on error) the caller is told. A sink may buffer whole lines until `flush`.
/// - [`Sink::flush`] hands every line written so far to the destination (the OS for files and
///   pipes; it does not `fsync`). The pipeline calls it at the end of each input and before
///   exiting; a sink must not lose buffered lines when it is flushed then dropped.
/// - [`SinkError::Closed`] means the reader went away (a closed pipe, e.g. `| head`): the
///   caller stops producing output quietly and exits normally; nothing is wrong with the input.
/// - [`SinkError::Io`] means the line was not written (disk full, permission, a removed
///   directory) and nothing of it was left behind, so the caller may retry the same line later
///   (the live sink thread does, holding alerts in a bounded queue) or stop with a failure
///   (`replay` does): alerts must not vanish silently.
/// - [`Sink::idle`] is called at least every few hundred milliseconds while no line arrives,
///   for time-based work (an fsync interval); the default does nothing.
pub trait Sink {
    fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError>;
    fn flush(&mut self) -> Result<(), SinkError>;
    fn idle(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

#[derive(Debug, Error)]
pub enum SinkError {
    #[error("the output was closed by its reader")]
    Closed,
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl SinkError {
    /// Maps an I/O error on `what`: a broken pipe is [`SinkError::Closed`].
    pub fn from_io(what: &str, source: io::Error) -> SinkError {
        if source.kind() == io::ErrorKind::BrokenPipe {
            SinkError::Closed
        } else {
            SinkError::Io {
                what: what.to_owned(),
                source,
            }
        }
    }
}

/// Counts lines and discards them (benchmarks, `--alerts /dev/null` without the syscalls).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NullSink {
    pub lines: u64,
    pub bytes: u64,
}

impl Sink for NullSink {
    fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
        self.lines += 1;
        self.bytes += line.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Lines collected in memory (tests, and callers that post-process alerts).
impl Sink for Vec<u8> {
    fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
        self.extend_from_slice(line);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
        (**self).write_line(line)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        (**self).flush()
    }

    fn idle(&mut self) -> Result<(), SinkError> {
        (**self).idle()
    }
}

impl<S: Sink + ?Sized> Sink for Box<S> {
    fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
        (**self).write_line(line)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        (**self).flush()
    }

    fn idle(&mut self) -> Result<(), SinkError> {
        (**self).idle()
    }
}
