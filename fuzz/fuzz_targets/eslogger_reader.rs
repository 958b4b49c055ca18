//! The eslogger NDJSON reader on arbitrary bytes: no panic, no unbounded memory, and its
//! bookkeeping adds up.
#![no_main]

use execsentry_macos::{parse_line, EsloggerReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Line by line, with a small limit so over-long lines are exercised too.
    let mut reader = EsloggerReader::new(data).with_max_line_bytes(4096);
    let mut seen = 0u64;
    for item in reader.by_ref() {
        seen += 1;
        if let Err(e) = item {
            assert!(e.line >= 1);
            let _ = e.to_string();
        }
    }
    let stats = reader.stats();
    assert_eq!(stats.records + stats.errors, seen);
    assert_eq!(
        stats.lines,
        stats.records + stats.errors + stats.blank + stats.other_events
    );
    assert!(stats.lines <= data.iter().filter(|&&b| b == b'\n').count() as u64 + 1);

    // The whole input as one line.
    if let Ok(Some(record)) = parse_line(data) {
        let _ = record.kind();
    }
});
