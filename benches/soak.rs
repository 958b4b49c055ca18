//! Soak: millions of events with random join keys through every rule, watching memory.
//!
//! `cargo bench --bench soak` sends 10 million typed `ProcessEvent`s (`SOAK_EVENTS` to change
//! it) through the whole detection-rules corpus (`DETECTION_RULES_DIR`, default
//! `/work/detection-rules/rules`; without it, 60 generated sequence and sample rules) with every
//! stateful rule running, and reports, every tenth of the way: throughput, peak and current
//! resident memory (`VmHWM`, `VmRSS` from /proc/self/status), partial matches and keys held,
//! and what was evicted or expired. Keys are random — a new entity id per event, pids, users
//! and hosts drawn from large pools — so state only stays bounded because of expiry and the
//! caps. It fails (exit 1) if the rules ever hold more partial matches than their caps allow.
//!
//! Run without `--bench` (as `cargo test --all-targets` does) it is a 20 000-event smoke run.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use execsentry::eql::{Options, StateLimits};
use execsentry::event::{Action, HostInfo, Ids, ProcessEvent, ProcessInfo, SourceFacts};
use execsentry::rules::load::{load_path, load_source};
use execsentry::rules::{Origin, Outcome, RuleSet};

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
        (self.next() % n.max(1) as u64) as usize
    }
}

fn corpus() -> Option<RuleSet> {
    let dir = std::env::var_os("DETECTION_RULES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/detection-rules/rules"));
    let mut reports = Vec::new();
    for sub in ["linux", "macos", "cross-platform"] {
        reports.extend(load_path(&dir.join(sub), &Options::default()).ok()?);
    }
    let (set, _) = RuleSet::from_reports(reports);
    (!set.is_empty()).then_some(set)
}

/// Sequences and samples over process names, keyed like the corpus keys them.
fn generated() -> RuleSet {
    let keys = [
        "host.id",
        "process.entity_id",
        "process.parent.entity_id",
        "user.name",
        "process.pid",
    ];
    let rules = (0..60)
        .map(|i| {
            let (a, b) = (format!("cmd{}", i % 20), format!("cmd{}", (i + 7) % 20));
            let key = keys[i % keys.len()];
            let query = match i % 4 {
                0 => format!(
                    "sequence by {key} with maxspan=30s [process where process.name == \"{a}\"] [process where process.name == \"{b}\"]"
                ),
                1 => format!(
                    "sequence by {key} with maxspan=5m [process where process.name == \"{a}\"] with runs=3 [process where process.name == \"{b}\"]"
                ),
                2 => format!(
                    "sequence by {key} with maxspan=1m [process where process.name == \"{a}\"] ![process where process.name == \"{b}\"]"
                ),
                _ => format!(
                    "sample by {key} [process where process.name == \"{a}\"] [process where process.name == \"{b}\"]"
                ),
            };
            let src = format!(
                "[rule]\nname = \"g{i}\"\nrule_id = \"g{i}\"\ndescription = \"soak\"\nseverity = \"low\"\n\
                 risk_score = 21\ntype = \"eql\"\nquery = '''\n{query}\n'''\n"
            );
            match load_source(Origin::Builtin("soak"), &src, &Options::default()).outcome {
                Outcome::Ok(r) => *r,
                other => panic!("{query}: {other:?}"),
            }
        })
        .collect();
    RuleSet::new(rules)
}

/// Names the stateful rules look for (so their stages fill), and ordinary ones.
fn names(set: &RuleSet) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in set.rules() {
        for (_, p) in r.query().items() {
            for field in ["process.name", "process.parent.name"] {
                if let Some(l) = p.literals(field) {
                    out.extend(l.exact);
                    out.extend(l.prefixes.iter().map(|p| format!("{p}1")));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out.extend(
        [
            "ls", "git", "cat", "grep", "python3", "curl", "ssh", "make", "sed", "ps",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    out
}

fn status(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let total: u64 = std::env::var("SOAK_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if bench { 10_000_000 } else { 20_000 });
    let (set, what) = match corpus() {
        Some(set) => (set, "the detection-rules corpus"),
        None => (generated(), "60 generated sequence and sample rules"),
    };
    let limits = StateLimits::default();
    let mut state = set.new_state_with(&limits);
    let names = names(&set);
    let hosts: Vec<Arc<HostInfo>> = (0..64)
        .map(|i| {
            Arc::new(HostInfo {
                name: format!("host-{i}"),
                hostname: format!("host-{i}"),
                id: Some(format!("{i:032x}")),
                os_type: if i % 8 == 0 { "macos" } else { "linux" }.into(),
                ..Default::default()
            })
        })
        .collect();
    let parent_pool: Vec<Arc<ProcessInfo>> = (0..256)
        .map(|i| {
            let mut p = ProcessInfo {
                pid: 1000 + i,
                ppid: 1,
                entity_id: format!("parent-{i}"),
                executable: format!("/usr/bin/{}", names[i as usize % names.len()]).into(),
                args: vec![names[i as usize % names.len()].clone()],
                ..Default::default()
            };
            p.derive_names();
            Arc::new(p)
        })
        .collect();
    println!(
        "soak: {total} events through {what}: {} rules, {} stateful; caps per rule: {} keys, {} partial matches",
        set.len(),
        set.stateful_count(),
        limits.max_keys,
        limits.max_pending
    );
    println!(
        "{:>11} {:>9} {:>10} {:>9} {:>9} {:>9} {:>8} {:>11} {:>11} {:>9}",
        "events",
        "secs",
        "events/s",
        "VmHWM kB",
        "VmRSS kB",
        "pending",
        "keys",
        "evicted",
        "expired",
        "results"
    );
    let cap = (limits.max_pending * set.stateful_count()) as u64;
    let mut rng = Rng(0x005e_ed0f_50a6);
    let started = Instant::now();
    let mut results = 0u64;
    let mut over_cap = false;
    let step = (total / 10).max(1);
    for i in 0..total {
        let name = &names[rng.below(names.len())];
        let parent = &parent_pool[rng.below(parent_pool.len())];
        let mut p = ProcessInfo {
            pid: rng.below(4_000_000) as u32,
            ppid: parent.pid,
            entity_id: format!("{:016x}", rng.next()),
            executable: format!("/usr/bin/{name}").into(),
            args: vec![name.clone(), "-c".into(), format!("x{}", rng.below(100))],
            working_directory: Some("/tmp".into()),
            ids: Arc::new(Ids {
                user_id: rng.below(2000).to_string(),
                user_name: Some(format!("user{}", rng.below(10_000))),
                ..Default::default()
            }),
            ..Default::default()
        };
        p.derive_names();
        let event = ProcessEvent {
            // 1 ms apart on average, jittered: some events arrive up to 3 ms late.
            timestamp_ns: 1_800_000_000_000_000_000 + i as i64 * 1_000_000
                - rng.below(3_000_000) as i64,
            sequence: i,
            action: Action::Exec,
            process: Arc::new(p),
            parent: Some(Arc::clone(parent)),
            host: Arc::clone(&hosts[rng.below(hosts.len())]),
            source: SourceFacts::None,
        };
        set.evaluate_with_state(&event, &mut state, |_, _| results += 1);
        if (i + 1) % step == 0 || i + 1 == total {
            let st = state.stats();
            over_cap |= st.pending > cap;
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{:>11} {:>9.1} {:>10.0} {:>9} {:>9} {:>9} {:>8} {:>11} {:>11} {:>9}",
                i + 1,
                secs,
                (i + 1) as f64 / secs,
                status("VmHWM:"),
                status("VmRSS:"),
                st.pending,
                st.keys,
                st.evicted_pending,
                st.expired,
                results
            );
        }
    }
    let st = state.stats();
    println!(
        "soak: done; peak partial matches of any rule summed {} (cap {cap} across {} stateful rules), \
         {} late events, {} out of order",
        st.peak_pending,
        set.stateful_count(),
        state.late_events(),
        st.out_of_order
    );
    if over_cap {
        eprintln!("soak: FAILED: state went over its caps");
        std::process::exit(1);
    }
}
