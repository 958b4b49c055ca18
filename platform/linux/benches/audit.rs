//! Record parsing and exec assembly throughput on a generated audit.log.
//!
//! The log mimics what the kernel writes for a non-root `execve` (SYSCALL, EXECVE with a few
//! arguments, one of them hex, CWD, two PATH, PROCTITLE; no EOE, as in audit.log), with
//! consecutive serials. `assemble_log` is the figure to hold against the root crate's
//! ≥ 500k exec events/s replay target (which adds normalization and rules on top).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use execsentry_linux::reader::LineReader;
use execsentry_linux::{parse_line, Assembler, AssemblerConfig};

const EVENTS: u32 = 20_000;

fn generate(events: u32) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..events {
        let serial = 1000 + i;
        let t = format!("1795843539.{:03}:{serial}", (i / 50) % 1000);
        let pid = 20_000 + i % 10_000;
        out.push_str(&format!(
            "type=SYSCALL msg=audit({t}): arch=c000003e syscall=59 success=yes exit=0 a0=55d0c0a1b2c0 a1=55d0c0a1b300 a2=55d0c0a1b320 a3=8 items=2 ppid=1234 pid={pid} auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm=\"grep\" exe=\"/usr/bin/grep\" subj=unconfined key=\"execsentry\"\n\
type=EXECVE msg=audit({t}): argc=4 a0=\"grep\" a1=\"-r\" a2=77697468207370616365 a3=\"/var/log/syslog.{i}\"\n\
type=CWD msg=audit({t}): cwd=\"/home/user/project\"\n\
type=PATH msg=audit({t}): item=0 name=\"/usr/bin/grep\" inode=262321 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0\n\
type=PATH msg=audit({t}): item=1 name=\"/lib64/ld-linux-x86-64.so.2\" inode=325843 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0\n\
type=PROCTITLE msg=audit({t}): proctitle=67726570002D72007769746820737061636500\n"
        ));
    }
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let log = generate(EVENTS);
    let records = 6 * u64::from(EVENTS);

    let mut g = c.benchmark_group("audit");
    g.throughput(Throughput::Elements(records));
    g.bench_function("parse_lines_and_fields", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for line in log.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
                let rec = parse_line(line).unwrap();
                n += rec.fields().count();
            }
            n
        })
    });

    g.throughput(Throughput::Elements(u64::from(EVENTS)));
    g.bench_function("assemble_log", |b| {
        b.iter(|| {
            let mut asm = Assembler::new(AssemblerConfig::text());
            let mut execs = 0u32;
            let mut reader = LineReader::new(&log[..]);
            reader
                .feed(
                    &mut asm,
                    &mut |e| execs += u32::from(e.as_exec().is_some()),
                    &mut |e| panic!("{e}"),
                )
                .unwrap();
            asm.flush(&mut |e| execs += u32::from(e.as_exec().is_some()));
            assert_eq!(execs, EVENTS);
            assert_eq!(asm.stats().lost_serials, 0);
            execs
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
