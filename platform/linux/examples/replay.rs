//! Replay an audit.log (or a generated one) through the line reader and the assembler, and report
//! events per second of CPU time, which stays meaningful on a busy machine.
//!
//! `replay [FILE...]`: each FILE is read once. Without files, a log of `EXECSENTRY_EVENTS` (default
//! 200 000) synthetic non-root execs is generated in memory and replayed `EXECSENTRY_PASSES`
//! (default 5) times.

use std::io::BufReader;
use std::time::Instant;

use execsentry_linux::reader::LineReader;
use execsentry_linux::{Assembler, AssemblerConfig, AuditEvent};

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_SELF is always valid.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(ru.ru_utime) + t(ru.ru_stime)
}

/// The same shape as `benches/audit.rs`: SYSCALL, EXECVE (one hex argument), CWD, 2 PATH,
/// PROCTITLE, no EOE.
fn generate(events: u32) -> Vec<u8> {
    let mut out = String::with_capacity(events as usize * 1400);
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

struct Tally {
    execs: u64,
    others: u64,
    bytes: u64,
}

fn replay<R: std::io::BufRead>(input: R, tally: &mut Tally) -> execsentry_linux::AssemblerStats {
    let mut asm = Assembler::new(AssemblerConfig::text());
    let mut count = |e: AuditEvent| match e {
        AuditEvent::Exec(e) => {
            tally.execs += 1;
            tally.bytes += e.argv.total_bytes() as u64;
        }
        AuditEvent::Other(_) => tally.others += 1,
    };
    let mut reader = LineReader::new(input);
    let mut bad = 0u64;
    reader
        .feed(&mut asm, &mut count, &mut |e| {
            bad += 1;
            if bad <= 5 {
                eprintln!("{e}");
            }
        })
        .expect("read");
    asm.flush(&mut count);
    asm.stats()
}

fn main() {
    let files: Vec<String> = std::env::args().skip(1).collect();
    let mut tally = Tally {
        execs: 0,
        others: 0,
        bytes: 0,
    };
    let (wall, cpu, input_bytes, stats);
    if files.is_empty() {
        let events = std::env::var("EXECSENTRY_EVENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        let passes: u32 = std::env::var("EXECSENTRY_PASSES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(5);
        let log = generate(events);
        let (c0, w0) = (cpu_seconds(), Instant::now());
        let mut last = None;
        for _ in 0..passes {
            last = Some(replay(&log[..], &mut tally));
        }
        (wall, cpu) = (w0.elapsed().as_secs_f64(), cpu_seconds() - c0);
        input_bytes = log.len() as u64 * u64::from(passes);
        stats = last.unwrap_or_default();
    } else {
        let (c0, w0) = (cpu_seconds(), Instant::now());
        let mut last = None;
        let mut total = 0;
        for f in &files {
            let file = std::fs::File::open(f).unwrap_or_else(|e| panic!("{f}: {e}"));
            total += file.metadata().map(|m| m.len()).unwrap_or(0);
            last = Some(replay(
                BufReader::with_capacity(256 * 1024, file),
                &mut tally,
            ));
        }
        (wall, cpu) = (w0.elapsed().as_secs_f64(), cpu_seconds() - c0);
        input_bytes = total;
        stats = last.unwrap_or_default();
    }
    println!(
        "{} exec events ({} other), {:.1} MB in, argv {:.1} MB out",
        tally.execs,
        tally.others,
        input_bytes as f64 / 1e6,
        tally.bytes as f64 / 1e6
    );
    println!(
        "cpu {cpu:.3} s -> {:.0} exec events/s ({:.0} MB/s); wall {wall:.3} s -> {:.0} events/s",
        tally.execs as f64 / cpu,
        input_bytes as f64 / 1e6 / cpu,
        tally.execs as f64 / wall
    );
    println!("last pass: {stats:?}");
}
