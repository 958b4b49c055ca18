//! The optional event output (design.md §1): every event the sensor sees, in its ECS JSON form,
//! one NDJSON line each, through any [`Sink`] — the same writers and contract as alerts.
//!
//! It is what lets another tool (or a test) see exactly what the rules saw, and what `replay`
//! reads back. A reader that went away ([`SinkError::Closed`]) stops the event output only;
//! alerts go on.

use crate::document::Document;
use crate::sink::{Sink, SinkError};

/// Serializes documents into `sink`, reusing one line buffer.
pub struct EventWriter<S> {
    sink: S,
    line: Vec<u8>,
    written: u64,
    closed: bool,
}

impl<S: Sink> EventWriter<S> {
    pub fn new(sink: S) -> EventWriter<S> {
        EventWriter {
            sink,
            line: Vec::with_capacity(4096),
            written: 0,
            closed: false,
        }
    }

    /// Writes `doc` as one line. After the reader went away this does nothing and returns `Ok`.
    pub fn write<D: Document + ?Sized>(&mut self, doc: &D) -> Result<(), SinkError> {
        if self.closed {
            return Ok(());
        }
        self.line.clear();
        serde_json::to_writer(&mut self.line, &doc.to_json())
            .map_err(|e| SinkError::from_io("serializing an event", e.into()))?;
        self.line.push(b'\n');
        match self.sink.write_line(&self.line) {
            Ok(()) => {
                self.written += 1;
                Ok(())
            }
            Err(SinkError::Closed) => {
                log::warn!("event output closed by its reader; events are no longer written");
                self.closed = true;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Flushes and returns the sink.
    pub fn finish(mut self) -> Result<S, SinkError> {
        if !self.closed {
            self.sink.flush()?;
        }
        Ok(self.sink)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::JsonDocument;

    fn doc(v: serde_json::Value) -> JsonDocument {
        match v {
            serde_json::Value::Object(m) => JsonDocument::new(m),
            _ => unreachable!(),
        }
    }

    #[test]
    fn one_line_per_document() {
        let mut w = EventWriter::new(Vec::<u8>::new());
        w.write(&doc(serde_json::json!({"process": {"name": "a\nb"}})))
            .unwrap();
        w.write(&doc(serde_json::json!({"n": 2}))).unwrap();
        assert_eq!(w.written(), 2);
        let out = String::from_utf8(w.finish().unwrap()).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(first["process"]["name"], "a\nb");
        assert_eq!(lines[1], r#"{"n":2}"#);
    }

    struct Gone;

    impl Sink for Gone {
        fn write_line(&mut self, _: &[u8]) -> Result<(), SinkError> {
            Err(SinkError::Closed)
        }
        fn flush(&mut self) -> Result<(), SinkError> {
            Err(SinkError::Closed)
        }
    }

    #[test]
    fn a_closed_reader_ends_the_output_quietly() {
        let mut w = EventWriter::new(Gone);
        let d = doc(serde_json::json!({"n": 1}));
        assert!(w.write(&d).is_ok());
        assert!(w.write(&d).is_ok());
        assert_eq!(w.written(), 0);
        assert!(w.finish().is_ok());
    }
}
