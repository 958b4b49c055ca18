//! `replay --format eslogger`: Apple's `eslogger exec fork exit` NDJSON through the same
//! normalizer as the live Endpoint Security source, on any platform.
//!
//! Every record updates the process table; only execs reach the rules (see
//! [`super::endpoint_security`] for why). Malformed lines are reported with their line numbers and
//! skipped. Messages the kernel dropped before eslogger saw them show as sequence-number gaps:
//! in `global_seq_num`, which numbers every message of the client, when the input holds only
//! exec, fork and exit; in the per-event-type `seq_num` when it also holds other event types
//! (`eslogger exec open fork exit`), whose numbers the reader skips and which are no loss. Per-type
//! numbers alone would miss a lost message whose type appears only once.

use std::io::{BufReader, Read};
use std::sync::Arc;

use execsentry_macos::{EsloggerReader, ReadErrorKind, SeqGaps};

use crate::event::HostInfo;
use crate::process_table::Limits;
use crate::replay::{Flow, Replay, ReplayError, MALFORMED_SAMPLES};
use crate::sink::Sink;
use crate::source::endpoint_security::EsNormalizer;

/// How often (in record time) dead processes past their grace period leave the table.
const PRUNE_EVERY_NS: i64 = 5_000_000_000;

/// What eslogger inputs share across files: one process table, one sequence-gap counter, so a
/// capture split over several files replays as one stream.
pub struct EsloggerState {
    normalizer: EsNormalizer,
    /// Gaps in `global_seq_num`, and in `seq_num` per event type; which one counts is decided
    /// per input (see the module documentation).
    global_gaps: SeqGaps,
    per_type_gaps: SeqGaps,
    dropped: u64,
    last_prune_ns: Option<i64>,
}

impl EsloggerState {
    pub fn new(host: Arc<HostInfo>, limits: Limits) -> EsloggerState {
        EsloggerState {
            normalizer: EsNormalizer::replay(host, limits),
            global_gaps: SeqGaps::new(),
            per_type_gaps: SeqGaps::new(),
            dropped: 0,
            last_prune_ns: None,
        }
    }

    pub fn normalizer(&self) -> &EsNormalizer {
        &self.normalizer
    }

    /// Messages missing from the inputs so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

/// What one eslogger input adds to the replay summary.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EsloggerInputStats {
    pub lines: u64,
    pub bytes: u64,
    pub records: u64,
    /// Well-formed messages of other event types, skipped.
    pub other_events: u64,
    pub malformed: u64,
    /// The first [`MALFORMED_SAMPLES`] malformed lines as `NAME:LINE[:COLUMN]: reason`.
    pub malformed_samples: Vec<String>,
    /// Messages this input shows were dropped (sequence-number gaps).
    pub seq_gaps: u64,
}

/// Reads one eslogger input to its end (or until the sink's reader goes away).
pub fn replay_input<R: Read, S: Sink>(
    input: R,
    name: &str,
    replay: &mut Replay<'_, S>,
    state: &mut EsloggerState,
) -> Result<(Flow, EsloggerInputStats), ReplayError> {
    let mut input = CountingReader {
        inner: input,
        bytes: 0,
    };
    let mut reader = EsloggerReader::new(BufReader::with_capacity(256 * 1024, &mut input));
    let mut stats = EsloggerInputStats::default();
    let global_before = state.global_gaps.dropped();
    let per_type_before = state.per_type_gaps.dropped();
    let mut flow = Flow::Continue;
    for item in reader.by_ref() {
        let rec = match item {
            Ok(rec) => rec,
            Err(e) => {
                let line = e.line;
                let sample = match e.kind {
                    ReadErrorKind::Io(source) => {
                        return Err(ReplayError::Read {
                            name: name.to_owned(),
                            source,
                        })
                    }
                    ReadErrorKind::Json { column, message } => {
                        format!("{name}:{line}:{column}: {message}")
                    }
                    other => format!("{name}:{line}: {other}"),
                };
                stats.malformed += 1;
                if stats.malformed_samples.len() < MALFORMED_SAMPLES {
                    stats.malformed_samples.push(sample);
                }
                continue;
            }
        };
        let (h, kind) = (&rec.header, Some(rec.kind()));
        state.global_gaps.observe(kind, None, h.global_seq_num);
        state.per_type_gaps.observe(kind, h.seq_num, None);
        let now = h.time_ns;
        if now.saturating_sub(*state.last_prune_ns.get_or_insert(now)) >= PRUNE_EVERY_NS {
            state.normalizer.prune(now, |_| true);
            state.last_prune_ns = Some(now);
        }
        if let Some(event) = state.normalizer.for_rules(rec) {
            if replay.event(&event)? == Flow::Stop {
                flow = Flow::Stop;
                break;
            }
        }
    }
    let r = reader.stats();
    stats.lines = r.lines;
    stats.records = r.records;
    stats.other_events = r.other_events;
    stats.seq_gaps = if r.other_events == 0 {
        state.global_gaps.dropped() - global_before
    } else {
        state.per_type_gaps.dropped() - per_type_before
    };
    state.dropped += stats.seq_gaps;
    drop(reader);
    stats.bytes = input.bytes;
    Ok((flow, stats))
}

/// Counts the bytes read, for the summary.
struct CountingReader<R> {
    inner: R,
    bytes: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use crate::replay::{FormatChoice, Replay, Stats};
    use crate::rules::RuleSet;
    use crate::source::Format;

    const REVERSE_SHELL: &str = include_str!("../../tests/fixtures/macos/reverse_shell.ndjson");
    const SEED_RULE: &str = "a1a0375f-22c2-48c0-81a4-7c2d11cc6856";

    fn rules() -> RuleSet {
        let reports = crate::rules::load::load_builtin(&crate::eql::Options::default());
        RuleSet::from_reports(reports).0
    }

    /// Replays `inputs` as eslogger; returns the alerts and the summary's counts.
    fn replay(inputs: &[&str]) -> (Vec<Value>, Stats) {
        let rules = rules();
        let mut r = Replay::new(&rules, Vec::<u8>::new());
        for (i, input) in inputs.iter().enumerate() {
            let name = format!("in{i}.ndjson");
            r.input(
                &name,
                input.as_bytes(),
                FormatChoice::Fixed(Format::Eslogger),
            )
            .expect("replay");
        }
        let stats = r.stats().clone();
        let out = r.finish().expect("flush");
        let alerts = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (alerts, stats)
    }

    fn lines() -> Vec<Value> {
        REVERSE_SHELL
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn join(lines: &[Value]) -> String {
        lines.iter().map(|v| format!("{v}\n")).collect()
    }

    /// The reverse shell's bash forks a child (same image, same argv): only the exec is a process
    /// start for the rules, so one alert, as on Linux where the fork is never seen.
    #[test]
    fn forks_update_the_table_but_do_not_alert() {
        let mut l = lines();
        let mut fork = l[1].clone();
        fork["process"] = l[2]["event"]["exec"]["target"].clone();
        let child = &mut fork["event"]["fork"]["child"];
        *child = l[2]["event"]["exec"]["target"].clone();
        child["audit_token"]["pid"] = 5002.into();
        child["audit_token"]["pidversion"] = 12004.into();
        child["parent_audit_token"] = l[2]["event"]["exec"]["target"]["audit_token"].clone();
        fork["seq_num"] = 42.into();
        fork["global_seq_num"] = 223.into();
        let mut exit = l.pop().unwrap();
        exit["global_seq_num"] = 224.into();
        l.push(fork);
        l.push(exit);

        let (alerts, stats) = replay(&[&join(&l)]);
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0]["rule"]["id"], SEED_RULE);
        assert_eq!(alerts[0]["process"]["pid"], 5001);
        assert_eq!(alerts[0]["event"]["action"], "exec");
        assert_eq!(
            stats.events, 2,
            "two execs evaluated; two forks and an exit only kept the table"
        );
        assert_eq!((stats.lines, stats.malformed, stats.es_seq_gaps), (5, 0, 0));
    }

    /// A lost fork shows in `global_seq_num` (the only fork: its own `seq_num` cannot show it).
    #[test]
    fn global_sequence_gaps_are_counted() {
        let mut l = lines();
        l.remove(1);
        let (alerts, stats) = replay(&[&join(&l)]);
        assert_eq!(stats.es_seq_gaps, 1);
        assert_eq!(
            alerts.len(),
            1,
            "the exec still alerts, without its parent's fork"
        );
        // python3's exec is still in the table: the parent token finds it.
        assert_eq!(alerts[0]["process"]["parent"]["name"], "python3");
    }

    /// Other event types in the capture advance `global_seq_num` without being losses: then the
    /// per-type numbers count, and a lost exec shows in them.
    #[test]
    fn other_event_types_are_no_loss() {
        let mut l = lines();
        let open = serde_json::json!({
            "schema_version": 1, "version": 9, "time": "2026-03-02T10:30:01.500000000Z",
            "event_type": 25, "seq_num": 7, "global_seq_num": 221,
            "process": l[0]["process"].clone(), "event": {"open": {"fflag": 1}}
        });
        for v in &mut l[1..] {
            let g = v["global_seq_num"].as_u64().unwrap();
            v["global_seq_num"] = (g + 1).into();
        }
        l.insert(1, open);
        let (_, stats) = replay(&[&join(&l)]);
        assert_eq!(stats.es_seq_gaps, 0);
        assert_eq!(stats.events, 2);

        let mut exec = l[3].clone();
        exec["seq_num"] = 85.into(); // 84 was lost
        exec["global_seq_num"] = 300.into();
        l.insert(4, exec);
        let (_, stats) = replay(&[&join(&l)]);
        assert_eq!(stats.es_seq_gaps, 1);
    }

    /// Bad lines are reported with their line numbers (and the column, for JSON), skipped, and
    /// the good ones around them still replay.
    #[test]
    fn malformed_lines_are_reported_with_line_numbers() {
        let l: Vec<&str> = REVERSE_SHELL.lines().collect();
        let input = format!(
            "{}\nnot json\n\n{}\n{{\"event_type\":9,\"time\":\"yesterday\",\"process\":{},\"event\":{{}}}}\n{}\n",
            l[0],
            l[1],
            serde_json::from_str::<Value>(l[0]).unwrap()["process"],
            l[2]
        );
        let (alerts, stats) = replay(&[&input]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(stats.malformed, 2);
        assert_eq!(stats.lines, 6);
        assert_eq!(
            stats.malformed_samples,
            [
                "in0.ndjson:2:2: expected ident".to_string(),
                "in0.ndjson:5: `time`: expected an RFC 3339 time such as 2025-08-07T13:21:35.880814738Z, found \"yesterday\"".to_string(),
            ]
        );
    }

    /// One capture split over two files replays as one stream: the table carries over.
    #[test]
    fn the_table_spans_inputs() {
        let l: Vec<&str> = REVERSE_SHELL.lines().collect();
        let (alerts, stats) = replay(&[&format!("{}\n", l[0]), &format!("{}\n{}\n", l[1], l[2])]);
        assert_eq!(alerts.len(), 1);
        assert_eq!(
            alerts[0]["process"]["parent"]["command_line"],
            "python3 /tmp/.cache/update.py"
        );
        assert_eq!((stats.files, stats.es_seq_gaps), (2, 0));
    }
}
