//! Arbitrary bytes as an ECS NDJSON input: sniffing, the line reader, the built-in rules and
//! alert serialization must neither panic nor misbehave on any of it.
//!
//! `cargo +nightly fuzz run ndjson_reader` (from the repository root).

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

use execsentry::eql::Options;
use execsentry::replay::{FormatChoice, Replay};
use execsentry::rules::{load_builtin, RuleSet};
use execsentry::sink::NullSink;
use execsentry::source::ecs_ndjson::NdjsonReader;

fn rules() -> &'static RuleSet {
    static RULES: OnceLock<RuleSet> = OnceLock::new();
    RULES.get_or_init(|| RuleSet::from_reports(load_builtin(&Options::default())).0)
}

fuzz_target!(|data: &[u8]| {
    // The reader alone, with a small line cap so the over-long path is reached too.
    let mut reader = NdjsonReader::with_max_line(data, 256);
    let mut items = 0u64;
    while let Ok(Some(_)) = reader.next_document() {
        items += 1;
    }
    let c = reader.counters();
    assert_eq!(items, c.documents + c.malformed);
    assert_eq!(c.bytes, data.len() as u64);

    // The whole replay path: format detection, rules, throttle, alerts.
    let mut replay = Replay::new(rules(), NullSink::default());
    if replay.input("fuzz", data, FormatChoice::Auto).is_ok() {
        let stats = replay.stats().clone();
        let sink = replay.finish().expect("the null sink never fails");
        assert_eq!(sink.lines, stats.alerts);
    }
});
