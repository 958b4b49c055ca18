//! Offline replay: recorded inputs through the rules, alerts to a sink, on the calling thread.
//!
//! The same steps the live pipeline takes per event — evaluate, throttle, build, write — without
//! threads, so a replay is deterministic and `execsentry replay`, the benchmark and the fuzz
//! target all drive this one code path. A `Replay` owns the [`RuleState`] of the stateful rules
//! (sequences, samples): [`Replay::end_of_input`] releases what waits for the end of input.

use std::io::{BufReader, Read};
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::alert::AlertBuilder;
use crate::document::{CachedJson, Document};
use crate::eql::{Hit, StateStats};
use crate::rules::{Rule, RuleSet, RuleState};
use crate::sink::{Sink, SinkError};
use crate::source::ecs_ndjson::NdjsonReader;
use crate::source::{sniff, DetectError, Format};
use crate::throttle::Throttle;

/// How many malformed lines are kept verbatim for the summary.
pub const MALFORMED_SAMPLES: usize = 10;

/// `--format`: one format, or detect it per input.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FormatChoice {
    #[default]
    Auto,
    Fixed(Format),
}

#[derive(Debug, Error)]
pub enum ReplayError {
    #[error("{name}: {source}")]
    Read {
        name: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{name}: {source}")]
    Format {
        name: String,
        #[source]
        source: DetectError,
    },
    #[error(transparent)]
    Sink(SinkError),
}

/// Whether to go on after an input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The sink's reader went away: stop quietly.
    Stop,
}

/// Totals for the summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub files: u64,
    pub lines: u64,
    pub bytes: u64,
    pub events: u64,
    pub malformed: u64,
    /// The first [`MALFORMED_SAMPLES`] malformed lines as `NAME:LINE: reason`.
    pub malformed_samples: Vec<String>,
    pub alerts: u64,
    pub suppressed: u64,
    /// Audit events ended by timeout, cap or end of input rather than their last record.
    pub incomplete: u64,
    /// Audit serials missing from the input.
    pub lost_serials: u64,
    /// Endpoint Security messages missing from eslogger input (sequence-number gaps).
    pub es_seq_gaps: u64,
    /// Events too late (behind the newest event time by more than the tolerance) for
    /// sequences and samples; single-event rules still saw them.
    pub late: u64,
}

/// One replay: rules, alert state and sink, reused across inputs.
pub struct Replay<'r, S> {
    rules: &'r RuleSet,
    state: RuleState,
    ended: bool,
    alerts: AlertBuilder,
    throttle: Throttle,
    sink: S,
    line: Vec<u8>,
    stats: Stats,
    started: Instant,
    /// Detection time for alerts; `None` means the clock (tests pin it).
    clock: Option<i64>,
    /// Audit inputs share one process table, so a parent seen in one file names the children
    /// in the next.
    #[cfg(target_os = "linux")]
    audit: Option<crate::source::linux_audit::AuditNormalizer>,
    /// Likewise for eslogger inputs.
    eslogger: Option<crate::source::eslogger::EsloggerState>,
}

impl<'r, S: Sink> Replay<'r, S> {
    pub fn new(rules: &'r RuleSet, sink: S) -> Replay<'r, S> {
        Replay::with_alerts(rules, sink, AlertBuilder::new())
    }

    pub fn with_alerts(rules: &'r RuleSet, sink: S, alerts: AlertBuilder) -> Replay<'r, S> {
        Replay {
            rules,
            state: rules.new_state(),
            ended: false,
            alerts,
            throttle: Throttle::new(rules),
            sink,
            line: Vec::with_capacity(4096),
            stats: Stats::default(),
            started: Instant::now(),
            clock: None,
            #[cfg(target_os = "linux")]
            audit: None,
            eslogger: None,
        }
    }

    /// Replaces the state of the stateful rules (other limits, or a source restriction made
    /// with [`RuleState::only_categories`]).
    pub fn with_state(mut self, state: RuleState) -> Self {
        self.state = state;
        self
    }

    /// The same replay on another rule set (a live reload): the sink, alert builder and totals
    /// carry over; the state of stateful rules and the throttle start fresh, because both are
    /// laid out per rule of the old set. Partial sequence matches are dropped, not completed.
    pub fn with_rules(self, rules: &RuleSet) -> Replay<'_, S> {
        Replay {
            rules,
            state: rules.new_state(),
            ended: false,
            alerts: self.alerts,
            throttle: Throttle::new(rules),
            sink: self.sink,
            line: self.line,
            stats: self.stats,
            started: self.started,
            clock: self.clock,
            #[cfg(target_os = "linux")]
            audit: self.audit,
            eslogger: self.eslogger,
        }
    }

    /// Stamps every alert with `event.created` = `ns` instead of the clock.
    pub fn with_fixed_clock(mut self, ns: i64) -> Self {
        self.clock = Some(ns);
        self
    }

    /// Reads one input to its end. Malformed lines are counted and skipped; an error is a read
    /// error on the input, an undetectable format, or a failing sink.
    pub fn input<R: Read>(
        &mut self,
        name: &str,
        input: R,
        format: FormatChoice,
    ) -> Result<Flow, ReplayError> {
        let read_err = |source| ReplayError::Read {
            name: name.to_owned(),
            source,
        };
        self.stats.files += 1;
        let (format, input) = match format {
            FormatChoice::Fixed(f) => (f, Box::new(input) as Box<dyn Read + '_>),
            FormatChoice::Auto => {
                let (detected, sniffed) = sniff(BufReader::new(input)).map_err(read_err)?;
                let format = detected.map_err(|source| ReplayError::Format {
                    name: name.to_owned(),
                    source,
                })?;
                (format, Box::new(sniffed) as Box<dyn Read + '_>)
            }
        };
        match format {
            Format::Ecs => self.ecs(name, input),
            Format::Audit => self.audit(name, input),
            Format::Eslogger => self.eslogger(name, input),
        }
    }

    /// eslogger NDJSON through the Endpoint Security normalizer; only execs reach the rules.
    fn eslogger<R: Read>(&mut self, name: &str, input: R) -> Result<Flow, ReplayError> {
        use crate::source::eslogger::{replay_input, EsloggerState};
        let mut state = self.eslogger.take().unwrap_or_else(|| {
            let host = std::sync::Arc::new(crate::host::local());
            EsloggerState::new(host, crate::process_table::Limits::default())
        });
        let result = replay_input(input, name, self, &mut state);
        self.eslogger = Some(state);
        let (flow, input_stats) = result?;
        self.stats.lines += input_stats.lines;
        self.stats.bytes += input_stats.bytes;
        self.stats.malformed += input_stats.malformed;
        self.stats.es_seq_gaps += input_stats.seq_gaps;
        for s in input_stats.malformed_samples {
            if self.stats.malformed_samples.len() < MALFORMED_SAMPLES {
                self.stats.malformed_samples.push(s);
            }
        }
        match flow {
            Flow::Continue => self.flush(),
            Flow::Stop => Ok(Flow::Stop),
        }
    }

    /// Linux audit log text through the same assembler and normalizer as `run`.
    #[cfg(target_os = "linux")]
    fn audit<R: Read>(&mut self, name: &str, input: R) -> Result<Flow, ReplayError> {
        use crate::source::linux_audit::AuditNormalizer;
        let mut normalizer = self.audit.take().unwrap_or_else(|| {
            let host = std::sync::Arc::new(crate::host::local());
            AuditNormalizer::replay(host, crate::process_table::Limits::default())
        });
        let result = crate::source::audit_live::replay_log(input, name, self, &mut normalizer);
        self.audit = Some(normalizer);
        let (log, flow) = result?;
        self.stats.lines += log.lines;
        self.stats.malformed += log.malformed;
        self.stats.incomplete += log.incomplete;
        self.stats.lost_serials += log.lost_serials;
        for s in log.malformed_samples {
            if self.stats.malformed_samples.len() < MALFORMED_SAMPLES {
                self.stats.malformed_samples.push(s);
            }
        }
        match flow {
            Flow::Continue => self.flush(),
            Flow::Stop => Ok(Flow::Stop),
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn audit<R: Read>(&mut self, name: &str, _input: R) -> Result<Flow, ReplayError> {
        Err(ReplayError::Read {
            name: name.to_owned(),
            source: std::io::Error::other("Linux audit logs can be replayed only by a Linux build"),
        })
    }

    fn ecs<R: Read>(&mut self, name: &str, input: R) -> Result<Flow, ReplayError> {
        let mut reader = NdjsonReader::new(input);
        let mut flow = Flow::Continue;
        loop {
            let item = reader.next_document().map_err(|source| ReplayError::Read {
                name: name.to_owned(),
                source,
            })?;
            match item {
                None => break,
                Some(Ok(doc)) => {
                    if self.event(&CachedJson::new(&doc))? == Flow::Stop {
                        flow = Flow::Stop;
                        break;
                    }
                }
                Some(Err(bad)) => {
                    self.stats.malformed += 1;
                    if self.stats.malformed_samples.len() < MALFORMED_SAMPLES {
                        self.stats
                            .malformed_samples
                            .push(format!("{name}:{}: {}", bad.line, bad.kind));
                    }
                }
            }
        }
        let c = reader.counters();
        self.stats.lines += c.lines;
        self.stats.bytes += c.bytes;
        if flow == Flow::Continue {
            flow = self.flush()?;
        }
        Ok(flow)
    }

    /// The rules, their state, and a writer over the alert path, borrowed apart.
    fn writer(&mut self) -> (&'r RuleSet, &mut RuleState, Writer<'_, S>) {
        let out = Writer {
            alerts: &mut self.alerts,
            throttle: &mut self.throttle,
            sink: &mut self.sink,
            line: &mut self.line,
            stats: &mut self.stats,
            clock: self.clock,
            failure: None,
        };
        (self.rules, &mut self.state, out)
    }

    /// Evaluates one document and writes its alerts.
    pub fn event<D: Document + ?Sized>(&mut self, doc: &D) -> Result<Flow, ReplayError> {
        self.stats.events += 1;
        let (rules, state, mut out) = self.writer();
        rules.evaluate_with_state(doc, state, |rule, hit| match hit {
            Hit::Event(d) => out.write(rule, d.timestamp_ns(), |a, now, line| {
                a.write_ndjson(rule, d, now, line)
            }),
            Hit::Match(m) => out.write(
                rule,
                m.last().and_then(|d| d.timestamp_ns()),
                |a, now, line| a.write_match_ndjson(rule, m, now, line),
            ),
        });
        let failure = out.failure;
        self.stats.late = self.state.late_events();
        out_result(failure)
    }

    /// The end of all input: writes what stateful rules held back (sequences waiting for a
    /// trailing missing event's deadline, `| tail` results). Runs once; [`Replay::finish`]
    /// calls it too.
    pub fn end_of_input(&mut self) -> Result<Flow, ReplayError> {
        if self.ended {
            return Ok(Flow::Continue);
        }
        self.ended = true;
        let (rules, state, mut out) = self.writer();
        rules.finish(state, |rule, m| {
            out.write(
                rule,
                m.last().and_then(|d| d.timestamp_ns()),
                |a, now, line| a.write_match_ndjson(rule, m, now, line),
            )
        });
        match out_result(out.failure)? {
            Flow::Stop => Ok(Flow::Stop),
            Flow::Continue => self.flush(),
        }
    }

    /// Declares that every input of this replay (or live run) produces only events of
    /// `categories`: stateful rules that need another category are not run (see
    /// [`RuleState::only_categories`]). The live sensors produce `process` events only.
    pub fn source_produces(mut self, categories: &[&str]) -> Self {
        let inert = self.state.only_categories(self.rules, categories);
        if inert > 0 {
            log::info!(
                "{inert} sequence/sample rules need events this source never produces; not run"
            );
        }
        self
    }

    /// Copies the alert and state counters into the live pipeline's counters.
    pub fn publish(&self, counters: &crate::pipeline::Counters) {
        use std::sync::atomic::Ordering::Relaxed;
        let st = self.state.stats();
        counters.alerts.store(self.stats.alerts, Relaxed);
        counters.suppressed.store(self.stats.suppressed, Relaxed);
        counters.partial_matches.store(st.pending, Relaxed);
        counters.state_keys.store(st.keys, Relaxed);
        counters.state_evicted.store(st.evicted_pending, Relaxed);
        counters
            .late_events
            .store(self.state.late_events(), Relaxed);
    }

    /// Counters of the stateful rules (all rules summed).
    pub fn state_stats(&self) -> StateStats {
        self.state.stats()
    }

    /// The stateful rules' state, for per-rule counters.
    pub fn state(&self) -> &RuleState {
        &self.state
    }

    fn flush(&mut self) -> Result<Flow, ReplayError> {
        match self.sink.flush() {
            Ok(()) => Ok(Flow::Continue),
            Err(SinkError::Closed) => Ok(Flow::Stop),
            Err(e) => Err(ReplayError::Sink(e)),
        }
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    pub fn throttle(&self) -> &Throttle {
        &self.throttle
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Writes what stateful rules held back, flushes the sink and returns it.
    pub fn finish(mut self) -> Result<S, ReplayError> {
        self.end_of_input()?;
        self.flush()?;
        Ok(self.sink)
    }
}

/// Throttles, builds and writes alerts; remembers the first sink failure.
struct Writer<'a, S> {
    alerts: &'a mut AlertBuilder,
    throttle: &'a mut Throttle,
    sink: &'a mut S,
    line: &'a mut Vec<u8>,
    stats: &'a mut Stats,
    clock: Option<i64>,
    failure: Option<SinkError>,
}

impl<S: Sink> Writer<'_, S> {
    fn write(
        &mut self,
        rule: &Rule,
        event_ns: Option<i64>,
        build: impl FnOnce(&mut AlertBuilder, i64, &mut Vec<u8>) -> Result<(), serde_json::Error>,
    ) {
        if self.failure.is_some() {
            return;
        }
        let clock = self.clock;
        let now = || clock.unwrap_or_else(crate::time::now_ns);
        if !self.throttle.admit(rule, event_ns.unwrap_or_else(now)) {
            self.stats.suppressed += 1;
            return;
        }
        if let Err(e) = build(self.alerts, now(), self.line) {
            // Serializing a serde_json::Value cannot fail short of running out of memory.
            log::error!("rule {}: cannot serialize alert: {e}", rule.meta.rule_id);
            return;
        }
        match self.sink.write_line(self.line) {
            Ok(()) => self.stats.alerts += 1,
            Err(e) => self.failure = Some(e),
        }
    }
}

fn out_result(failure: Option<SinkError>) -> Result<Flow, ReplayError> {
    match failure {
        None => Ok(Flow::Continue),
        Some(SinkError::Closed) => Ok(Flow::Stop),
        Some(e) => Err(ReplayError::Sink(e)),
    }
}
