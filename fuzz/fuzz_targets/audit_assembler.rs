//! Any bytes as lines of an audit stream through the reader and a small assembler: no panic, and
//! the caps hold for every event emitted.
#![no_main]

use execsentry_linux::reader::LineReader;
use execsentry_linux::{Assembler, AssemblerConfig, AuditEvent, EventEnd};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let end = match data.first().map(|b| b % 3) {
        Some(0) => EventEnd::Eoe,
        Some(1) => EventEnd::EoeOrProctitle,
        _ => EventEnd::Auto,
    };
    let config = AssemblerConfig {
        timeout_ms: 2000,
        max_in_flight: 4,
        max_arg_bytes: 64,
        max_argv_bytes: 256,
        max_args: 16,
        max_paths: 4,
        max_proctitle_bytes: 32,
        keep_other: true,
        max_other_bytes: 512,
        end,
    };
    let mut asm = Assembler::new(config.clone());
    let mut emitted = 0u64;
    let mut check = |ev: AuditEvent| {
        emitted += 1;
        match ev {
            AuditEvent::Exec(e) => {
                assert!(e.argv.len() <= config.max_args);
                assert!(e.argv.total_bytes() <= config.max_argv_bytes);
                assert!(e.argv.iter().all(|a| a.len() <= config.max_arg_bytes));
                assert!(e.paths.len() <= config.max_paths);
                assert!(e.proctitle.as_ref().map_or(0, Vec::len) <= config.max_proctitle_bytes);
                if e.argv_consistent {
                    assert_eq!(e.argc.map(|n| n as usize), Some(e.argv.len()));
                }
            }
            AuditEvent::Other(o) => {
                let kept: usize = o.records.iter().map(|r| r.text.len()).sum();
                assert!(kept <= config.max_other_bytes);
            }
        }
    };
    let mut reader = LineReader::with_max_line(data, 64 * 1024);
    let _ = reader.feed(&mut asm, &mut check, &mut |_| {});
    assert!(asm.in_flight() <= config.max_in_flight);
    asm.flush(&mut check);
    assert_eq!(asm.in_flight(), 0);
    let st = asm.stats();
    assert_eq!(st.exec_events + st.other_events, emitted);
});
