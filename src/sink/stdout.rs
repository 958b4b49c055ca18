//! Alert lines to standard output, buffered until [`Sink::flush`].
//!
//! Rust ignores SIGPIPE, so a reader that goes away (`execsentry replay x | head -1`) shows up
//! as `EPIPE` on write; that is [`SinkError::Closed`], a quiet end, never a panic.

use std::io::{self, BufWriter, Stdout, Write};

use super::{Sink, SinkError};

pub struct StdoutSink {
    out: BufWriter<Stdout>,
}

impl Default for StdoutSink {
    fn default() -> Self {
        StdoutSink::new()
    }
}

impl StdoutSink {
    pub fn new() -> StdoutSink {
        StdoutSink {
            out: BufWriter::with_capacity(64 * 1024, io::stdout()),
        }
    }
}

impl Sink for StdoutSink {
    fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
        self.out
            .write_all(line)
            .map_err(|e| SinkError::from_io("writing alerts to stdout", e))
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        self.out
            .flush()
            .map_err(|e| SinkError::from_io("writing alerts to stdout", e))
    }
}
