//! Records captured on a real 6.18 kernel (see `tests/fixtures/README.md`), assembled and checked
//! field by field. Each fixture is read three ways: as the plugin stream with `EOE` (events end on
//! `EOE`), as an audit.log without `EOE` (events end on `PROCTITLE`), and record by record through
//! `parse_body` as the netlink socket delivers them; all three must agree.

use std::path::PathBuf;

use execsentry_linux::reader::LineReader;
use execsentry_linux::{
    parse_body, parse_line, types, Assembler, AssemblerConfig, AuditEvent, ExecRecord, NameType,
};

const KEY: &[u8] = b"execsentry-fixture";

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn assemble_text(text: &[u8], config: AssemblerConfig) -> (Vec<AuditEvent>, Assembler) {
    let mut asm = Assembler::new(config);
    let mut events = Vec::new();
    let mut reader = LineReader::new(text);
    reader
        .feed(&mut asm, &mut |e| events.push(e), &mut |e| panic!("{e}"))
        .unwrap();
    asm.flush(&mut |e| events.push(e));
    (events, asm)
}

/// Netlink delivers `type` in the header and the body after `msg=`.
fn assemble_as_netlink(text: &[u8], config: AssemblerConfig) -> Vec<AuditEvent> {
    let mut asm = Assembler::new(config);
    let mut events = Vec::new();
    for line in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let rtype = parse_line(line).unwrap().rtype;
        let body = &line[memchr::memmem::find(line, b"msg=").unwrap() + 4..];
        asm.push(&parse_body(rtype, body).unwrap(), &mut |e| events.push(e));
    }
    asm.flush(&mut |e| events.push(e));
    events
}

fn without_eoe(text: &[u8]) -> Vec<u8> {
    text.split_inclusive(|&b| b == b'\n')
        .filter(|l| !l.starts_with(b"type=EOE "))
        .flatten()
        .copied()
        .collect()
}

fn execs(events: Vec<AuditEvent>) -> Vec<ExecRecord> {
    events
        .into_iter()
        .map(|e| match e {
            AuditEvent::Exec(x) => *x,
            AuditEvent::Other(o) => panic!("unexpected non-exec event {o:?}"),
        })
        .collect()
}

/// The fixture's exec events, checked to be the same through all three paths.
fn load(name: &str, config: AssemblerConfig) -> Vec<ExecRecord> {
    let text = fixture(name);
    let eoe_config = AssemblerConfig {
        end: execsentry_linux::EventEnd::Eoe,
        ..config.clone()
    };
    let (with_eoe, asm) = assemble_text(&text, eoe_config.clone());
    let with_eoe = execs(with_eoe);
    assert_eq!(asm.stats().incomplete, 0, "{name}: every event ends on EOE");
    let (log, _) = assemble_text(&without_eoe(&text), config.clone());
    let mut log = execs(log);
    let netlink = execs(assemble_as_netlink(&text, eoe_config));
    assert_same(
        &netlink,
        &with_eoe,
        &format!("{name}: netlink bodies and plugin lines"),
    );
    // The log has no EOE; otherwise the events must be identical, in the same order.
    for e in &mut log {
        assert!(!e.has(types::EOE));
        e.record_types.push(types::EOE);
    }
    assert_same(
        &log,
        &with_eoe,
        &format!("{name}: audit.log (no EOE) and the EOE stream"),
    );
    for e in &with_eoe {
        assert!(e.complete, "{name}: serial {} complete", e.serial);
        assert_eq!(e.syscall.key.as_deref(), Some(KEY));
        assert_eq!(e.bad_fields, 0, "{name}: serial {}", e.serial);
    }
    with_eoe
}

/// `assert_eq!` without printing megabytes of argv on failure.
fn assert_same(a: &[ExecRecord], b: &[ExecRecord], what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: event count");
    for (x, y) in a.iter().zip(b) {
        if x != y {
            let mut short = [x.clone(), y.clone()];
            for e in &mut short {
                e.argv = execsentry_linux::Argv::default();
            }
            panic!(
                "{what} differ at serial {}: argv equal: {}; without argv: {:?} vs {:?}",
                x.serial,
                x.argv == y.argv,
                short[0],
                short[1]
            );
        }
    }
}

fn roomy() -> AssemblerConfig {
    AssemblerConfig {
        max_arg_bytes: 256 * 1024,
        max_argv_bytes: 512 * 1024,
        ..AssemblerConfig::default()
    }
}

/// The long-argument pattern of `examples/capture.rs`.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b"0123456789abcdefghijklmnopqrstuvwxyz"[(i * 7 + i / 36) % 36])
        .collect()
}

fn argv(e: &ExecRecord) -> Vec<&[u8]> {
    e.argv.iter().collect()
}

fn assert_root_true(e: &ExecRecord) {
    let s = &e.syscall;
    assert_eq!(
        (s.arch, s.nr, s.success, s.exit),
        (Some(0xc000_003e), Some(59), Some(true), Some(0))
    );
    assert_eq!(s.exe.as_deref(), Some(&b"/usr/bin/true"[..]));
    assert_eq!(s.comm.as_deref(), Some(&b"true"[..]));
    assert_eq!(
        [s.uid, s.euid, s.suid, s.fsuid, s.gid, s.egid, s.sgid, s.fsgid],
        [Some(0); 8]
    );
    assert_eq!(
        (s.auid, s.ses, s.tty.as_deref()),
        (Some(u32::MAX), Some(u32::MAX), None)
    );
    assert!(s.pid.is_some() && s.ppid.is_some());
    assert_eq!(e.cwd.as_deref(), Some(&b"/work/wt/linux"[..]));
    assert_eq!(e.paths[0].name.as_deref(), Some(&b"/bin/true"[..]));
    assert_eq!(e.paths[0].mode, Some(0o100755));
    assert_eq!(e.paths[0].nametype, Some(NameType::Normal));
    assert!(!e.failed());
}

#[test]
fn hex_arguments() {
    let events = load("hex_args.log", AssemblerConfig::default());
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_root_true(e);
    let want: [&[u8]; 11] = [
        b"/bin/true",
        b"plain",
        b"with space",
        b"dq\"x",
        b"it's",
        b"tab\tx",
        b"nl\nx",
        b"",
        "café".as_bytes(),
        b"bad\xff\xfe",
        b"~!#$%&()*+,-./:;<=>?@[]^_`{|}",
    ];
    assert_eq!(argv(e), want);
    assert_eq!(e.argc, Some(11));
    assert!(e.argv_consistent && !e.argv_truncated);
    assert_eq!(e.syscall.items, Some(2));
    assert_eq!(e.paths.len(), 2);
    assert_eq!(
        e.record_types,
        [
            types::SYSCALL,
            types::BPRM_FCAPS,
            types::EXECVE,
            types::CWD,
            types::PATH,
            types::PROCTITLE,
            types::EOE
        ]
    );
    // PROCTITLE is the NUL-joined cmdline, cut at 128 bytes by the kernel.
    let joined = want.join(&0u8);
    let title = e.proctitle.as_deref().unwrap();
    assert!(title.len() <= 128 && joined.starts_with(title), "{title:?}");
}

#[test]
fn enriched_lines_give_the_same_exec() {
    let plain = load("hex_args.log", AssemblerConfig::default());
    let text = fixture("hex_args.enriched-constructed.log");
    let (events, _) = assemble_text(&text, AssemblerConfig::default());
    let mut enriched = execs(events);
    enriched[0].record_types.push(types::EOE);
    assert_eq!(enriched, plain);
    // The interpretation is kept on the record, unparsed.
    let first = text.split(|&b| b == b'\n').next().unwrap();
    let rec = parse_line(first).unwrap();
    assert!(rec
        .enrichment
        .unwrap()
        .starts_with(b"ARCH=x86_64 SYSCALL=execve AUID=\"unset\""));
    assert_eq!(
        rec.field(b"key")
            .unwrap()
            .string()
            .unwrap()
            .unwrap()
            .as_ref(),
        KEY
    );
}

#[test]
fn argument_of_20k_over_six_records() {
    let text = fixture("long_20k.log");
    assert_eq!(
        text.split(|&b| b == b'\n')
            .filter(|l| l.starts_with(b"type=EXECVE"))
            .count(),
        6
    );
    let e = &load("long_20k.log", roomy())[0];
    assert_root_true(e);
    let big = pattern(20_000);
    assert_eq!(argv(e), [&b"/bin/true"[..], b"short", &big, b"tail"]);
    assert!(e.argv_consistent && !e.argv_truncated);

    // The default caps keep 16 KiB of the argument and say so, without losing positions.
    let e = &load("long_20k.log", AssemblerConfig::default())[0];
    assert!(e.argv_truncated && e.argv_consistent);
    assert_eq!(
        argv(e),
        [&b"/bin/true"[..], b"short", &big[..16 * 1024], b"tail"]
    );
}

#[test]
fn argument_of_128k_over_36_records() {
    let e = &load("long_128k.log", roomy())[0];
    assert_root_true(e);
    let big = pattern(131_071);
    assert_eq!(argv(e), [&b"/bin/true"[..], &big, b"end"]);
    assert_eq!(e.argc, Some(3));
    assert!(e.argv_consistent && !e.argv_truncated);

    let e = &load(
        "long_128k.log",
        AssemblerConfig {
            max_argv_bytes: 100,
            ..AssemblerConfig::default()
        },
    )[0];
    assert!(e.argv_truncated);
    assert_eq!(argv(e), [&b"/bin/true"[..], &big[..91], b""]);
}

#[test]
fn four_hundred_arguments_and_the_short_indexed_form() {
    let text = fixture("many_args.log");
    assert!(memchr::memmem::find(&text, b"a209_len=28 a209[0]=\"arg0208-").is_some());
    let e = &load("many_args.log", AssemblerConfig::default())[0];
    assert_root_true(e);
    assert_eq!(e.argc, Some(401));
    assert!(e.argv_consistent);
    let want: Vec<Vec<u8>> = std::iter::once(b"/bin/true".to_vec())
        .chain((0..400).map(|i| format!("arg{i:04}-xxxxxxxxxxxxxxxxxxxx").into_bytes()))
        .collect();
    assert_eq!(e.argv.to_vecs(), want);
}

#[test]
fn shebang_script() {
    let e = &load("script.log", AssemblerConfig::default())[0];
    let s = &e.syscall;
    assert_eq!(s.comm.as_deref(), Some(&b"es-script.sh"[..]));
    assert_eq!(
        s.exe.as_deref(),
        Some(&b"/usr/bin/dash"[..]),
        "exe is the interpreter"
    );
    assert_eq!(
        argv(e),
        [&b"/bin/sh"[..], b"./es-script.sh", b"arg1", b"arg two"]
    );
    assert_eq!(s.items, Some(3));
    let names: Vec<&[u8]> = e.paths.iter().map(|p| p.name.as_deref().unwrap()).collect();
    assert_eq!(
        names,
        [
            &b"./es-script.sh"[..],
            b"/bin/sh",
            b"/lib64/ld-linux-x86-64.so.2"
        ]
    );
    let cwd = e.cwd.as_deref().unwrap();
    assert!(
        cwd.starts_with(b"/tmp/es-capture-") && cwd.ends_with(b"/dir with space"),
        "hex cwd decoded"
    );
}

#[test]
fn failed_exec() {
    let events = load("failed.log", AssemblerConfig::default());
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert!(e.failed());
    assert_eq!(e.syscall.exit, Some(-2));
    assert_eq!(
        e.syscall.comm.as_deref(),
        Some(&b"capture"[..]),
        "still the old image"
    );
    assert!(e.argv.is_empty() && e.argc.is_none() && !e.has(types::EXECVE));
    assert!(!e.argv_consistent);
    assert_eq!(e.paths.len(), 1);
    assert_eq!(
        e.paths[0].name.as_deref(),
        Some(&b"/nonexistent/es-missing"[..])
    );
    assert_eq!(e.paths[0].nametype, Some(NameType::Unknown));
    assert_eq!(e.paths[0].inode, None);
}

#[test]
fn execveat_with_dirfd_and_fexecve() {
    let events = load("execveat.log", AssemblerConfig::default());
    let at: Vec<&ExecRecord> = events
        .iter()
        .filter(|e| e.syscall.nr == Some(322))
        .collect();
    assert_eq!(at.len(), 2);
    for e in &at {
        assert_eq!(e.syscall.args[0], Some(3), "a0 is the dirfd");
        assert_eq!(e.syscall.exe.as_deref(), Some(&b"/usr/bin/true"[..]));
        assert!(e.argv_consistent && !e.failed());
    }
    assert_eq!(argv(at[0]), [&b"true"[..], b"via-dirfd"]);
    assert_eq!(
        at[0].paths[0].name.as_deref(),
        Some(&b"true"[..]),
        "relative to the dirfd"
    );
    assert_eq!(argv(at[1]), [&b"true"[..], b"via-fd"]);
    assert_eq!(
        at[1].paths[0].name.as_deref(),
        Some(&b""[..]),
        "fexecve: empty name, trust exe"
    );
    // The helper's own execve of the capture binary is there too.
    assert_eq!(
        events.iter().filter(|e| e.syscall.nr == Some(59)).count(),
        2
    );
}

#[test]
fn interleaved_events() {
    let text = fixture("interleaved.log");
    let serials: Vec<u32> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| parse_line(l).unwrap().serial)
        .collect();
    assert!(
        serials.windows(2).any(|w| w[1] < w[0]),
        "the capture interleaves"
    );
    let events = load("interleaved.log", AssemblerConfig::default());
    let mut args: Vec<Vec<u8>> = events
        .iter()
        .filter(|e| e.syscall.comm.as_deref() == Some(b"true"))
        .map(|e| {
            assert_root_true(e);
            assert_eq!(e.argv.len(), 2);
            e.argv.get(1).unwrap().to_vec()
        })
        .collect();
    args.sort();
    let mut want: Vec<Vec<u8>> = (1..=16)
        .flat_map(|i| [format!("il{i}").into_bytes(), format!("jl{i}").into_bytes()])
        .collect();
    want.sort();
    assert_eq!(args, want);
}
