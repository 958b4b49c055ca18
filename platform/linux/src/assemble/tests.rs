use super::*;
use crate::record::parse_line;

/// Feed log lines (one per `&str`, `type=NAME msg=audit(...): ...`) and collect the events.
fn run(asm: &mut Assembler, lines: &[&str]) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for line in lines {
        let rec = parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{line}: {e}"));
        asm.push(&rec, &mut |e| out.push(e));
    }
    out
}

fn flush(asm: &mut Assembler) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    asm.flush(&mut |e| out.push(e));
    out
}

fn exec(e: &AuditEvent) -> &ExecRecord {
    e.as_exec().unwrap_or_else(|| panic!("not an exec: {e:?}"))
}

fn args(e: &ExecRecord) -> Vec<&[u8]> {
    e.argv.iter().collect()
}

const SYSCALL_59: &str = "arch=c000003e syscall=59 success=yes exit=0 a0=55d0c0a1b2c0 a1=55d0c0a1b300 a2=55d0c0a1b320 a3=0 items=2 ppid=100 pid=101 auid=1000 uid=1001 gid=1002 euid=1003 suid=1004 fsuid=1005 egid=1006 sgid=1007 fsgid=1008 tty=pts0 ses=3 comm=\"true\" exe=\"/usr/bin/true\" key=\"es\"";

fn exec_event(serial: u32, t: &str) -> Vec<String> {
    vec![
        format!("type=SYSCALL msg=audit({t}:{serial}): {SYSCALL_59}"),
        format!("type=EXECVE msg=audit({t}:{serial}): argc=2 a0=\"true\" a1=\"x{serial}\""),
        format!("type=CWD msg=audit({t}:{serial}): cwd=\"/tmp\""),
        format!("type=PATH msg=audit({t}:{serial}): item=0 name=\"/bin/true\" inode=42 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0"),
        format!("type=PROCTITLE msg=audit({t}:{serial}): proctitle=7472756500783{}", serial % 10),
        format!("type=EOE msg=audit({t}:{serial}): "),
    ]
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

#[test]
fn eoe_completes_an_exec_with_every_field() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let lines = exec_event(7, "1700000000.120");
    let out = run(&mut asm, &refs(&lines[..5]));
    assert!(out.is_empty(), "no EOE yet");
    let out = run(&mut asm, &refs(&lines[5..]));
    assert_eq!(out.len(), 1);
    let e = exec(&out[0]);
    assert_eq!(e.serial, 7);
    assert_eq!(
        e.time,
        AuditTime {
            sec: 1_700_000_000,
            ms: 120
        }
    );
    let s = &e.syscall;
    assert_eq!(
        (s.arch, s.nr, s.success, s.exit),
        (Some(0xc000003e), Some(59), Some(true), Some(0))
    );
    assert_eq!(
        s.args,
        [
            Some(0x55d0c0a1b2c0),
            Some(0x55d0c0a1b300),
            Some(0x55d0c0a1b320),
            Some(0)
        ]
    );
    assert_eq!(
        (s.ppid, s.pid, s.auid, s.ses, s.items),
        (Some(100), Some(101), Some(1000), Some(3), Some(2))
    );
    assert_eq!(
        [s.uid, s.gid, s.euid, s.suid, s.fsuid, s.egid, s.sgid, s.fsgid],
        [1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008].map(Some)
    );
    assert_eq!(s.tty.as_deref(), Some(&b"pts0"[..]));
    assert_eq!(s.comm.as_deref(), Some(&b"true"[..]));
    assert_eq!(s.exe.as_deref(), Some(&b"/usr/bin/true"[..]));
    assert_eq!(s.keys().collect::<Vec<_>>(), [b"es"]);
    assert_eq!(e.argc, Some(2));
    assert_eq!(args(e), [&b"true"[..], b"x7"]);
    assert!(e.argv_consistent && !e.argv_truncated && e.complete && !e.failed());
    assert_eq!(e.cwd.as_deref(), Some(&b"/tmp"[..]));
    assert_eq!(
        e.paths,
        [PathItem {
            item: Some(0),
            name: Some(b"/bin/true".to_vec()),
            inode: Some(42),
            mode: Some(0o100755),
            ouid: Some(0),
            ogid: Some(0),
            nametype: Some(NameType::Normal),
        }]
    );
    assert_eq!(e.proctitle.as_deref(), Some(&b"true\0x7"[..]));
    assert_eq!(e.record_types, [1300, 1309, 1307, 1302, 1327, 1320]);
    assert_eq!(e.bad_fields, 0);
    assert_eq!(asm.in_flight(), 0);
    let st = asm.stats();
    assert_eq!(
        (st.records, st.exec_events, st.incomplete, st.lost_serials),
        (6, 1, 0, 0)
    );
}

#[test]
fn interleaved_events_and_syscall_not_first() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let a = exec_event(56, "1.004");
    let b = exec_event(57, "1.004");
    let c = exec_event(58, "1.008");
    // 56 starts, 57 and 58 complete, then the rest of 56 (as measured on 6.18); 58 has its
    // EXECVE before its SYSCALL.
    let order: Vec<&str> = [&a[0], &a[1], &a[2], &a[3]]
        .into_iter()
        .chain(&b)
        .chain([&c[1], &c[0]])
        .chain(&c[2..])
        .chain(&a[4..])
        .map(String::as_str)
        .collect();
    let out = run(&mut asm, &order);
    let serials: Vec<u32> = out.iter().map(AuditEvent::serial).collect();
    assert_eq!(serials, [57, 58, 56]);
    for e in &out {
        let e = exec(e);
        assert!(e.complete && e.argv_consistent);
        assert_eq!(args(e)[1], format!("x{}", e.serial).as_bytes());
        assert_eq!(e.syscall.pid, Some(101));
    }
    assert_eq!(exec(&out[1]).record_types[..2], [1309, 1300]);
    assert_eq!(asm.stats().lost_serials, 0);
}

#[test]
fn standalone_types_end_at_once() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let out = run(
        &mut asm,
        &["type=USER_CMD msg=audit(5.000:9): pid=1 uid=0 msg='cwd=\"/\" cmd=6C73 res=success'"],
    );
    assert_eq!(out.len(), 1);
    let AuditEvent::Other(o) = &out[0] else {
        panic!()
    };
    assert!(o.complete && o.syscall.is_none());
    assert_eq!(o.record_types, [1136]);
    assert_eq!(o.field(1136, b"pid").unwrap().raw, b"1");
    assert_eq!(asm.in_flight(), 0);
}

#[test]
fn config_change_alone_waits_then_is_complete() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let out = run(
        &mut asm,
        &["type=CONFIG_CHANGE msg=audit(10.000:20): auid=0 ses=1 op=remove_rule key=\"es\" list=4 res=1"],
    );
    assert!(out.is_empty(), "it may still get a SYSCALL record");
    let mut out = Vec::new();
    asm.advance_to(11_999, &mut |e| out.push(e));
    assert!(out.is_empty());
    asm.advance_to(12_000, &mut |e| out.push(e));
    assert_eq!(out.len(), 1);
    let AuditEvent::Other(o) = &out[0] else {
        panic!()
    };
    assert!(
        o.complete,
        "CONFIG_CHANGE without a SYSCALL is a whole event"
    );
    assert_eq!(
        o.field(types::CONFIG_CHANGE, b"op").unwrap().raw,
        b"remove_rule"
    );
    assert_eq!(asm.stats().timed_out, 1);
    assert_eq!(asm.stats().incomplete, 0);
}

#[test]
fn config_change_with_its_syscall() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let out = run(
        &mut asm,
        &[
            "type=CONFIG_CHANGE msg=audit(10.000:21): op=set audit_pid=9 old=8 res=0",
            "type=SYSCALL msg=audit(10.000:21): arch=c000003e syscall=44 success=yes exit=60 pid=9 comm=\"x\" exe=\"/x\" key=(null)",
            "type=SOCKADDR msg=audit(10.000:21): saddr=100000000000000000000000",
            "type=PROCTITLE msg=audit(10.000:21): proctitle=\"x\"",
            "type=EOE msg=audit(10.000:21): ",
        ],
    );
    assert_eq!(out.len(), 1);
    let AuditEvent::Other(o) = &out[0] else {
        panic!()
    };
    assert!(o.complete);
    let s = o.syscall.as_ref().unwrap();
    assert_eq!((s.nr, s.key.as_deref()), (Some(44), None));
    assert_eq!(
        o.records.iter().map(|r| r.rtype).collect::<Vec<_>>(),
        [1305, 1306]
    );
}

#[test]
fn timeout_runs_on_record_time() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let a = exec_event(1, "100.000");
    let out = run(&mut asm, &refs(&a[..5]));
    assert!(out.is_empty());
    let b = exec_event(2, "101.996");
    let out = run(&mut asm, &refs(&b));
    assert_eq!(
        out.iter().map(AuditEvent::serial).collect::<Vec<_>>(),
        [2],
        "1.996 s is not yet 2 s"
    );
    let c = exec_event(3, "102.000");
    let out = run(&mut asm, &refs(&c[..1]));
    assert_eq!(out.len(), 1);
    let e = exec(&out[0]);
    assert_eq!(e.serial, 1);
    assert!(!e.complete, "timed out before EOE");
    assert!(e.argv_consistent, "all its EXECVE records had arrived");
    // The rest of event 1 is late now: dropped, not a second event.
    let out = run(&mut asm, &refs(&a[5..]));
    assert!(out.is_empty());
    let st = asm.stats();
    assert_eq!((st.timed_out, st.incomplete, st.late_records), (1, 1, 1));
}

#[test]
fn cap_evicts_the_oldest_as_incomplete() {
    let mut asm = Assembler::new(AssemblerConfig {
        max_in_flight: 2,
        ..AssemblerConfig::netlink()
    });
    let mut out = Vec::new();
    for s in 1..=3 {
        out.extend(run(&mut asm, &refs(&exec_event(s, "1.000")[..2])));
    }
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].serial(), 1);
    assert!(!exec(&out[0]).complete);
    assert_eq!(asm.in_flight(), 2);
    assert_eq!(asm.stats().evicted, 1);
    let rest = flush(&mut asm);
    assert_eq!(
        rest.iter().map(AuditEvent::serial).collect::<Vec<_>>(),
        [2, 3]
    );
}

#[test]
fn log_files_end_on_proctitle_and_a_late_eoe_is_dropped() {
    let mut asm = Assembler::new(AssemblerConfig::text());
    let lines = exec_event(5, "1.000");
    let out = run(&mut asm, &refs(&lines[..5]));
    assert_eq!(
        out.len(),
        1,
        "PROCTITLE ends the event while no EOE was seen"
    );
    assert!(exec(&out[0]).complete);
    let out = run(&mut asm, &refs(&lines[5..]));
    assert!(out.is_empty(), "its EOE must not make a second event");
    // From now on the stream is known to carry EOE.
    let lines = exec_event(6, "1.000");
    let out = run(&mut asm, &refs(&lines[..5]));
    assert!(out.is_empty());
    let out = run(&mut asm, &refs(&lines[5..]));
    assert_eq!(out.len(), 1);
}

#[test]
fn split_arguments_across_records() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let out = run(
        &mut asm,
        &[
            "type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=59 success=yes exit=0",
            // a1: 6 bytes in two hex chunks across two records; a2: quoted short indexed form;
            // a3: a chunk boundary inside a hex pair.
            "type=EXECVE msg=audit(1.000:9): argc=4 a0=\"prog\" a1_len=12 a1[0]=414243",
            "type=EXECVE msg=audit(1.000:9):  a1[1]=444546 a2_len=5 a2[0]=\"hello\" a3_len=4 a3[0]=6",
            "type=EXECVE msg=audit(1.000:9):  a3[1]=162",
            "type=EOE msg=audit(1.000:9): ",
        ],
    );
    let e = exec(&out[0]);
    assert_eq!(args(e), [&b"prog"[..], b"ABCDEF", b"hello", b"ab"]);
    assert!(e.argv_consistent);
}

#[test]
fn argc_mismatch_and_broken_chunks_are_flagged() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let cases: [(&str, &str, Vec<&[u8]>); 4] = [
        ("argc=3 a0=\"x\" a1=\"y\"", "argc says 3", vec![b"x", b"y"]),
        (
            "argc=2 a0=\"x\" a1_len=8 a1[0]=4142",
            "chunks short of aN_len",
            vec![b"x", b"AB"],
        ),
        (
            "argc=2 a0=\"x\" a1_len=4 a1[1]=4142",
            "chunk 0 missing",
            vec![b"x", b""],
        ),
        (
            "argc=3 a0=\"x\" a2=\"z\"",
            "a1 missing",
            vec![b"x", b"", b"z"],
        ),
    ];
    for (i, (execve, why, want)) in cases.into_iter().enumerate() {
        let serial = 100 + i;
        let out = run(
            &mut asm,
            &[
                &format!("type=EXECVE msg=audit(1.000:{serial}): {execve}"),
                &format!("type=EOE msg=audit(1.000:{serial}): "),
            ],
        );
        let e = exec(&out[0]);
        assert!(!e.argv_consistent, "{why}");
        assert_eq!(args(e), want, "{why}");
    }
    assert_eq!(asm.stats().argv_inconsistent, 4);
}

#[test]
fn size_caps_truncate_and_flag() {
    let mut asm = Assembler::new(AssemblerConfig {
        max_arg_bytes: 4,
        max_argv_bytes: 10,
        ..AssemblerConfig::netlink()
    });
    let out = run(
        &mut asm,
        &[
            "type=EXECVE msg=audit(1.000:1): argc=4 a0=\"abcdef\" a1=414243444546 a2_len=12 a2[0]=414243 a2[1]=444546 a3=\"zz\"",
            "type=EOE msg=audit(1.000:1): ",
        ],
    );
    let e = exec(&out[0]);
    assert!(e.argv_truncated);
    assert!(e.argv_consistent, "truncation keeps positions and argc");
    assert_eq!(args(e), [&b"abcd"[..], b"ABCD", b"AB", b""]);
    assert_eq!(asm.stats().argv_truncated, 1);
}

#[test]
fn failed_exec_is_tagged() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let out = run(
        &mut asm,
        &[
            "type=SYSCALL msg=audit(1.000:3): arch=c000003e syscall=59 success=no exit=-2 items=1 pid=5 comm=\"sh\" exe=\"/bin/sh\" key=\"es\"",
            "type=CWD msg=audit(1.000:3): cwd=\"/\"",
            "type=PATH msg=audit(1.000:3): item=0 name=\"/nope\" nametype=UNKNOWN cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0",
            "type=PROCTITLE msg=audit(1.000:3): proctitle=\"sh\"",
            "type=EOE msg=audit(1.000:3): ",
        ],
    );
    let e = exec(&out[0]);
    assert!(e.failed() && e.complete);
    assert_eq!(e.syscall.exit, Some(-2));
    assert!(e.argv.is_empty() && e.argc.is_none() && !e.has(types::EXECVE));
    assert_eq!(e.paths[0].nametype, Some(NameType::Unknown));
    assert_eq!(
        asm.stats().argv_inconsistent,
        0,
        "no EXECVE, nothing to be inconsistent"
    );
}

#[test]
fn exec_arch_matters() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let out = run(
        &mut asm,
        &[
            "type=SYSCALL msg=audit(1.000:1): arch=40000003 syscall=11 success=yes exit=0",
            "type=EOE msg=audit(1.000:1): ",
            "type=SYSCALL msg=audit(1.000:2): arch=40000003 syscall=59 success=yes exit=0",
            "type=EOE msg=audit(1.000:2): ",
        ],
    );
    assert!(out[0].as_exec().is_some(), "i386 execve is 11");
    assert!(out[1].as_exec().is_none(), "59 on i386 is not execve");
}

#[test]
fn serial_gaps_with_wrap() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let mut lines = Vec::new();
    for s in [u32::MAX - 1, u32::MAX, 1, 3] {
        lines.extend(exec_event(s, "1.000"));
    }
    let out = run(&mut asm, &refs(&lines));
    assert_eq!(out.len(), 4);
    assert_eq!(asm.stats().lost_serials, 0, "0 and 2 may still arrive");
    flush(&mut asm);
    assert_eq!(asm.stats().lost_serials, 2, "0 and 2 never came");
}

#[test]
fn a_timeout_settles_older_gaps() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let mut lines = exec_event(10, "1.000");
    lines.extend(exec_event(12, "1.000"));
    lines.push("type=SYSCALL msg=audit(1.000:13): arch=c000003e syscall=59".into());
    lines.extend(exec_event(14, "3.000"));
    run(&mut asm, &refs(&lines));
    assert_eq!(asm.stats().timed_out, 1);
    assert_eq!(asm.stats().lost_serials, 1, "11 is older than timed-out 13");
}

#[test]
fn new_boot_in_a_log_restarts_serials() {
    let mut asm = Assembler::new(AssemblerConfig::text());
    let mut lines = exec_event(900, "1.000");
    lines.extend(exec_event(3, "500.000"));
    let out = run(&mut asm, &refs(&lines));
    assert_eq!(out.len(), 2);
    assert_eq!(asm.stats().serial_restarts, 1);
    assert_eq!(asm.stats().late_records, 1, "only the EOE after PROCTITLE");
}

#[test]
fn other_events_can_be_only_counted() {
    let mut asm = Assembler::new(AssemblerConfig {
        keep_other: false,
        ..AssemblerConfig::netlink()
    });
    let out = run(
        &mut asm,
        &[
            "type=SYSCALL msg=audit(1.000:1): arch=c000003e syscall=42 success=yes exit=0",
            "type=EOE msg=audit(1.000:1): ",
            "type=DAEMON_START msg=audit(1.000:2): op=start ver=3.0.9",
        ],
    );
    assert!(out.is_empty());
    assert_eq!(asm.stats().other_events, 2);
}

#[test]
fn bad_fields_are_counted_not_fatal() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let out = run(
        &mut asm,
        &[
            "type=SYSCALL msg=audit(1.000:1): arch=zz syscall=59 pid=x comm=ZZ exe=\"/bin/x\"",
            "type=EXECVE msg=audit(1.000:1): argc=1 a0=4",
            "type=EOE msg=audit(1.000:1): ",
        ],
    );
    let e = exec(&out[0]);
    assert_eq!(e.bad_fields, 3);
    assert_eq!(e.syscall.exe.as_deref(), Some(&b"/bin/x"[..]));
    assert!(!e.argv_consistent, "a half hex pair");
    assert_eq!(asm.stats().bad_fields, 3);
}

#[test]
fn hostile_argument_indices_stay_bounded() {
    let mut asm = Assembler::new(AssemblerConfig {
        max_args: 8,
        ..AssemblerConfig::netlink()
    });
    let out = run(
        &mut asm,
        &[
            "type=EXECVE msg=audit(1.000:1): argc=4294967295 a0=\"x\" a4000000=\"y\" a4294967295=\"z\" a99999999999=\"w\" a5_len=99999999999999999999 a5[0]=41",
            "type=EOE msg=audit(1.000:1): ",
        ],
    );
    let e = exec(&out[0]);
    assert_eq!(e.argv.len(), 8, "positions filled only up to max_args");
    assert!(e.argv_truncated && !e.argv_consistent);
    assert_eq!(e.argv.get(0), Some(&b"x"[..]));
}

/// The hex appender as first written, a digit at a time: (error offset, truncated, broken).
fn reference_append_hex(
    bytes: &mut Vec<u8>,
    raw: &[u8],
    nibble: &mut Option<u8>,
    carry_is_local: bool,
    mut room: usize,
) -> (Option<usize>, bool, bool) {
    let mut truncated = false;
    for (i, &d) in raw.iter().enumerate() {
        let Some(v) = hex_digit(d) else {
            return (Some(i), false, true);
        };
        match nibble.take() {
            None => *nibble = Some(v),
            Some(hi) => {
                if room > 0 {
                    bytes.push(hi << 4 | v);
                    room -= 1;
                } else {
                    truncated = true;
                }
            }
        }
    }
    (None, truncated, carry_is_local && nibble.is_some())
}

#[test]
fn hex_pairs_agree_with_the_digit_at_a_time_appender() {
    const DIGITS: &[u8] = b"0123456789abcdefABCDEFz";
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for _ in 0..20_000 {
        let len = rand(24);
        let raw: Vec<u8> = (0..len)
            .map(|_| {
                // Mostly valid, sometimes one bad digit somewhere.
                let d = DIGITS[rand(DIGITS.len() - 1)];
                if rand(30) == 0 {
                    b'z'
                } else {
                    d
                }
            })
            .collect();
        let prior = rand(3);
        let room = rand(16);
        let chunked = rand(2) == 0;
        let start_nibble = if chunked && rand(2) == 0 {
            Some(rand(16) as u8)
        } else {
            None
        };
        let cfg = AssemblerConfig {
            max_arg_bytes: prior + room,
            ..AssemblerConfig::default()
        };

        let mut ev = InFlight::new(1, AuditTime::default(), 1000, None, &mut Vec::new());
        ev.rec.argv.start_arg();
        ev.rec.argv.bytes.extend(std::iter::repeat_n(b'.', prior));
        let field = Field {
            rtype: types::EXECVE,
            key: b"a0",
            raw: &raw,
            offset: 100,
        };
        let mut nibble = start_nibble;
        let got = ev.append_value(&field, &cfg, chunked.then_some(&mut nibble));

        let mut want_bytes = vec![b'.'; prior];
        let mut want_nibble = start_nibble;
        let (want_err, want_truncated, want_broken) =
            reference_append_hex(&mut want_bytes, &raw, &mut want_nibble, !chunked, room);

        let what = format!("{raw:?} prior={prior} room={room} nibble={start_nibble:?}");
        assert_eq!(got.err().map(|e| e.offset - 100), want_err, "{what}");
        assert_eq!(ev.rec.argv.get(0), Some(&want_bytes[..]), "{what}");
        assert_eq!(ev.rec.argv_truncated, want_truncated, "{what}");
        assert_eq!(ev.args.broken, want_broken, "{what}");
        if chunked {
            assert_eq!(nibble, want_nibble, "{what}");
        }
    }
}

#[test]
fn key_tags_are_distinct() {
    let tags = [
        key::ARCH,
        key::SYSCALL,
        key::SUCCESS,
        key::EXIT,
        key::A0,
        key::A1,
        key::A2,
        key::A3,
        key::ITEMS,
        key::PPID,
        key::PID,
        key::AUID,
        key::UID,
        key::GID,
        key::EUID,
        key::SUID,
        key::FSUID,
        key::EGID,
        key::SGID,
        key::FSGID,
        key::SES,
        key::TTY,
        key::COMM,
        key::EXE,
        key::KEY,
        key::ITEM,
        key::NAME,
        key::INODE,
        key::MODE,
        key::OUID,
        key::OGID,
        key::NAMETYPE,
    ];
    let unique: std::collections::HashSet<_> = tags.iter().collect();
    assert_eq!(unique.len(), tags.len());
    assert!(!tags.contains(&0));
    // Names that only look like a known one are not it.
    let rec = parse_line(
        b"type=SYSCALL msg=audit(1.000:1): pid=7 pid\0=5 syscall=59 syscall_=9 syscal=1",
    )
    .unwrap();
    let mut s = SyscallInfo::default();
    let mut fields = rec.fields();
    while let Some(Ok((tag, f))) = fields.next_tagged() {
        s.apply(tag, &f, &mut Vec::new()).unwrap();
    }
    assert_eq!((s.pid, s.nr), (Some(7), Some(59)));
}

/// Every fixture capture, then synthetic events that leave fields out, fail, split arguments,
/// carry bad hex and interleave non-exec records: the record mix a recycled record must forget.
fn varied_log() -> Vec<u8> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut log = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    names.sort();
    for name in names {
        log.extend(std::fs::read(name).unwrap());
    }
    for serial in 1..=40u32 {
        let t = format!("1800000000.{:03}", serial % 1000);
        let lines = match serial % 5 {
            0 => exec_event(serial, &t),
            1 => vec![
                format!("type=SYSCALL msg=audit({t}:{serial}): arch=c000003e syscall=59 success=no exit=-2 items=1 pid=9 comm=\"sh\" key=(null)"),
                format!("type=PATH msg=audit({t}:{serial}): item=0 name=\"./nope\" nametype=UNKNOWN"),
                format!("type=PROCTITLE msg=audit({t}:{serial}): proctitle=(null)"),
            ],
            2 => vec![
                format!("type=EXECVE msg=audit({t}:{serial}): argc=3 a0=\"x\" a1_len=6 a1[0]=414 a1[1]=243 a2=4G"),
                format!("type=CWD msg=audit({t}:{serial}): cwd=2F746D70"),
                format!("type=PROCTITLE msg=audit({t}:{serial}): proctitle=78"),
            ],
            3 => vec![
                format!("type=SYSCALL msg=audit({t}:{serial}): arch=c000003e syscall=2 success=yes exit=3 items=0 pid=9 tty=(none)"),
                format!("type=CONFIG_CHANGE msg=audit({t}:{serial}): op=add_rule key=\"k\" res=1"),
                format!("type=PROCTITLE msg=audit({t}:{serial}): proctitle=\"cat\""),
            ],
            _ => {
                let mut v = exec_event(serial, &t);
                v.insert(4, format!("type=PATH msg=audit({t}:{serial}): item=1 name=(null) inode=7 nametype=PARENT"));
                v
            }
        };
        for l in lines.iter().filter(|l| !l.starts_with("type=EOE")) {
            log.extend_from_slice(l.as_bytes());
            log.push(b'\n');
        }
    }
    log
}

fn assemble_all(log: &[u8], recycle: bool) -> Vec<AuditEvent> {
    let mut asm = Assembler::new(AssemblerConfig {
        // Small caps, so truncation paths run too.
        max_arg_bytes: 64,
        max_argv_bytes: 512,
        max_paths: 3,
        max_proctitle_bytes: 16,
        ..AssemblerConfig::text()
    });
    let recycler = asm.recycler();
    let mut out = Vec::new();
    let mut emit = |e: AuditEvent| match e {
        AuditEvent::Exec(rec) if recycle => {
            out.push(AuditEvent::Exec(rec.clone()));
            recycler.give(rec);
        }
        e => out.push(e),
    };
    for line in log.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        if let Ok(rec) = parse_line(line) {
            asm.push(&rec, &mut emit);
        }
    }
    asm.flush(&mut emit);
    out
}

#[test]
fn recycling_changes_nothing_on_mutated_logs() {
    let log = varied_log();
    const BYTES: &[u8] = b" =\"'0aF9x()[]_\n\x1d";
    let mut seed = 0x5851_f42d_4c95_7f2du64;
    let mut rand = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };
    for round in 0..200 {
        let mut mutated = log.clone();
        for _ in 0..1 + rand(40) {
            let at = rand(mutated.len());
            match rand(3) {
                0 => mutated[at] = BYTES[rand(BYTES.len())],
                1 => {
                    mutated.remove(at);
                }
                _ => mutated.insert(at, BYTES[rand(BYTES.len())]),
            }
        }
        let fresh = assemble_all(&mutated, false);
        let recycled = assemble_all(&mutated, true);
        assert!(
            fresh == recycled,
            "round {round}: recycling changed the events"
        );
    }
}

#[test]
fn recycled_records_give_the_same_events() {
    let log = varied_log();
    let fresh = assemble_all(&log, false);
    let recycled = assemble_all(&log, true);
    assert!(fresh.iter().filter(|e| e.as_exec().is_some()).count() > 40);
    assert_eq!(fresh.len(), recycled.len());
    for (a, b) in fresh.iter().zip(&recycled) {
        assert!(a == b, "serial {}: {a:?}\n!=\n{b:?}", a.serial());
    }
}

#[test]
fn recycling_reuses_the_buffers() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let recycler = asm.recycler();
    let mut first = None;
    let lines = exec_event(1, "1.000");
    run(&mut asm, &refs(&lines)).into_iter().for_each(|e| {
        if let AuditEvent::Exec(rec) = e {
            first = Some((&*rec as *const ExecRecord, rec.argv.bytes.as_ptr()));
            recycler.give(rec);
        }
    });
    let lines = exec_event(2, "1.001");
    let out = run(&mut asm, &refs(&lines));
    let second = exec(&out[0]);
    assert_eq!(
        Some((second as *const ExecRecord, second.argv.bytes.as_ptr())),
        first
    );
    assert_eq!(second.serial, 2);
    // Bounded: a record that held huge arguments is not kept.
    let mut big = Box::new(second.clone());
    big.argv = Argv::from_slices([vec![b'x'; MAX_RECYCLED_ARGV_BYTES + 1]]);
    recycler.give(big);
    assert!(recycler.take().is_none());
}

#[test]
fn hex_chunks_split_mid_byte_and_bad_digits() {
    let mut asm = Assembler::new(AssemblerConfig::netlink());
    let out = run(
        &mut asm,
        &[
            "type=EXECVE msg=audit(1.000:1): argc=3 a0_len=8 a0[0]=414 a0[1]=2434 a0[2]=4 a1=41ZZ a2_len=4 a2[0]=61",
            "type=EXECVE msg=audit(1.000:1):  a2[1]=62",
            "type=EOE msg=audit(1.000:1): ",
        ],
    );
    let e = exec(&out[0]);
    assert_eq!(args(e), [&b"ABCD"[..], b"A", b"ab"]);
    assert_eq!(e.bad_fields, 1, "a1");
    assert!(!e.argv_consistent && !e.argv_truncated);

    // The same split argument under a 3-byte cap: cut, flagged, still checked for bad digits.
    let mut asm = Assembler::new(AssemblerConfig {
        max_arg_bytes: 3,
        ..AssemblerConfig::netlink()
    });
    let out = run(
        &mut asm,
        &[
            "type=EXECVE msg=audit(1.000:1): argc=2 a0_len=8 a0[0]=414 a0[1]=2434 a0[2]=4 a1=4142434Q",
            "type=EOE msg=audit(1.000:1): ",
        ],
    );
    let e = exec(&out[0]);
    assert_eq!(args(e), [&b"ABC"[..], b"ABC"]);
    assert!(e.argv_truncated);
    assert_eq!(e.bad_fields, 1, "the dropped tail of a1 is not hex");
}
