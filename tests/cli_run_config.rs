//! `execsentry run` as an operator drives it: the config file, flags over it, its errors, and
//! the outputs (rotation, stats file, a failing disk) — through the auditd-plugin source, which
//! reads records from stdin and leaves the kernel's audit state alone, so no root is needed.

#![cfg(target_os = "linux")]

mod cli_support;

use std::path::{Path, PathBuf};

use cli_support::{run, run_with_stdin, TempDir};
use execsentry::config::{Config, SourceKind};

/// A rule that alerts on every exec of `true` (32 of the 33 execs in the fixture).
const TRUE_RULE: &str = r#"[rule]
author = ["Test"]
description = "Any exec of true."
language = "eql"
license = "Apache-2.0"
name = "true runs"
risk_score = 21
rule_id = "44444444-2222-4333-8444-555555555555"
severity = "low"
type = "eql"
query = '''
process where process.name == "true"
'''
"#;

/// Audit records in auditd plugin format: 33 execs (32 of `/usr/bin/true`, one `dash`).
fn fixture() -> Vec<u8> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("platform/linux/tests/fixtures/interleaved.log");
    std::fs::read(path).expect("the interleaved audit fixture")
}

fn json_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("torn line {l:?}: {e}")))
        .collect()
}

fn stats(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn print_config_shows_the_file_with_flags_over_it() {
    let dir = TempDir::new("config-merge");
    let config = dir.write(
        "execsentry.toml",
        "[source]\nkind = \"netlink\"\n[output]\nalerts = \"/var/log/x.ndjson\"\nrotate_keep = 9\n[audit]\nkey = \"from-file\"\nbacklog_limit = 100\n",
    );
    let out = run(&[
        "run",
        "--config",
        &s(&config),
        "--source",
        "multicast",
        "--alerts",
        "-",
        "--audit-key",
        "from-flag",
        "--stats-interval",
        "5m",
        "--rotate-size",
        "1MiB",
        "--max-signals",
        "7",
        "--print-config",
    ]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(out
        .stdout
        .starts_with(&format!("# {} with flags applied\n", s(&config))));
    let effective = Config::parse(&out.stdout, Path::new("stdout")).unwrap();
    assert_eq!(effective.source.kind, SourceKind::Multicast, "flag wins");
    assert_eq!(
        effective.output.alerts,
        Some(PathBuf::from("-")),
        "flag wins"
    );
    assert_eq!(effective.audit.key.0, "from-flag");
    assert_eq!(effective.stats.interval.0.as_secs(), 300);
    assert_eq!(effective.output.rotate_size.0, 1 << 20);
    assert_eq!(effective.throttle.max_signals.map(|c| c.0), Some(7));
    assert_eq!(effective.output.rotate_keep, 9, "the file's value stays");
    assert_eq!(effective.audit.backlog_limit, 100, "the file's value stays");
}

#[test]
fn config_errors_name_file_line_and_column() {
    let dir = TempDir::new("config-errors");
    let cases = [
        (
            "unknown.toml",
            "[audit]\nkey = \"k\"\nbacklog = 5\n",
            ":3:1: unknown field `backlog`",
        ),
        (
            "type.toml",
            "[output]\nrotate_keep = \"five\"\n",
            ":2:15: invalid type: string \"five\", expected u32",
        ),
        (
            "value.toml",
            "\n[source]\nkind = \"ebpf\"\n",
            ":3:8: unknown variant `ebpf`",
        ),
    ];
    for (name, text, want) in cases {
        let path = dir.write(name, text);
        let out = run(&["run", "--config", &s(&path), "--print-config"]);
        assert_eq!(out.code, Some(2), "{name}: {}", out.stderr);
        let expected = format!("execsentry: error: {}{want}", s(&path));
        assert!(out.stderr.contains(&expected), "{name}: {}", out.stderr);
        assert!(
            out.stderr.contains("^"),
            "carets under the spot: {}",
            out.stderr
        );
    }
    let out = run(&["run", "--config", "/nonexistent/execsentry.toml"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("cannot read config file /nonexistent/execsentry.toml: No such file"),
        "{}",
        out.stderr
    );
}

#[test]
fn bad_flag_values_are_refused() {
    for (flag, value) in [
        ("--rotate-size", "10 parsecs"),
        ("--fsync", "sometimes"),
        ("--alert-queue", "0"),
        ("--throttle-interval", "5 minutes"),
    ] {
        let out = run(&[
            "run",
            "--config",
            "/dev/null",
            flag,
            value,
            "--print-config",
        ]);
        assert_eq!(out.code, Some(2), "{flag} {value}");
        assert!(out.stderr.contains(flag), "{flag}: {}", out.stderr);
    }
}

/// The plugin source end to end: a config file sets rotation, the throttle override and the
/// stats file; alerts and events land in rotated 0600 files of whole lines.
#[test]
fn audisp_run_writes_rotated_alerts_events_and_stats() {
    let dir = TempDir::new("run-audisp");
    let rule = dir.write("rules/true.toml", TRUE_RULE);
    let alerts = dir.path().join("alerts.ndjson");
    let events = dir.path().join("events.ndjson");
    let stats_json = dir.path().join("stats.json");
    let config = dir.write(
        "execsentry.toml",
        &format!(
            "[source]\nkind = \"audisp\"\n[rules]\npaths = [{:?}]\nbuiltin = false\n\
             [throttle]\nmax_signals = 20\ninterval = \"1d\"\n\
             [output]\nalerts = {:?}\nevents = {:?}\nrotate_size = \"8KiB\"\nrotate_keep = 2\n\
             [stats]\njson = {:?}\n",
            s(&rule),
            s(&alerts),
            s(&events),
            s(&stats_json)
        ),
    );
    let out = run_with_stdin(&["run", "--config", &s(&config)], &fixture());
    assert_eq!(out.code, Some(0), "{}", out.stderr);

    let st = stats(&stats_json);
    assert_eq!(st["events"], 33, "{st}");
    assert_eq!(st["alerts"], 20, "max_signals from the config: {st}");
    assert_eq!(st["suppressed"], 12, "{st}");
    assert_eq!(st["sink_errors"], 0, "{st}");

    // Alerts are ~2.2 KB: 8 KiB files hold 3 each; the current file and two rotated ones are
    // left, every line whole, in order, the newest last.
    let files = [
        alerts.clone(),
        dir.path().join("alerts.ndjson.1"),
        dir.path().join("alerts.ndjson.2"),
    ];
    assert!(!dir.path().join("alerts.ndjson.3").exists(), "keep 2");
    let mut kept = Vec::new();
    for f in files.iter().rev() {
        assert!(std::fs::metadata(f).unwrap().len() <= 8192, "{}", s(f));
        assert_eq!(mode(f), 0o600, "{}", s(f));
        kept.extend(json_lines(f));
    }
    assert!(kept.len() >= 6 && kept.len() < 20, "{}", kept.len());
    let seqs: Vec<i64> = kept
        .iter()
        .map(|a| a["event"]["sequence"].as_i64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert!(kept.iter().all(|a| a["rule"]["name"] == "true runs"));

    // Events rotate the same way (~1.5 KB each).
    let mut event_lines = 0;
    for f in [events.clone(), dir.path().join("events.ndjson.1")] {
        event_lines += json_lines(&f).len();
    }
    assert!(event_lines > 0);
}

/// The plugin source reports like the others while it runs: a counters line on stderr and the
/// stats file rewritten every interval, not only at exit.
#[test]
fn audisp_run_writes_periodic_stats() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let dir = TempDir::new("run-audisp-stats");
    let rule = dir.write("true.toml", TRUE_RULE);
    let stats_json = dir.path().join("stats.json");
    let mut child = cli_support::command()
        .args([
            "run",
            "--config",
            "/dev/null",
            "--source",
            "audisp",
            "--no-builtin-rules",
            "--rules",
            &s(&rule),
            "--alerts",
            &s(&dir.path().join("alerts.ndjson")),
            "--stats-interval",
            "1",
            "--stats-json",
            &s(&stats_json),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn execsentry");
    let (tx, rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The records go in and stdin stays open: the sensor keeps running.
    let mut input = child.stdin.take().unwrap();
    input.write_all(&fixture()).unwrap();
    input.flush().unwrap();

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stats_line = None;
    while stats_line.is_none() && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            if line.starts_with("execsentry: stats ") && line.contains(" events=33 ") {
                stats_line = Some(line);
            }
        }
    }
    let stats_line = stats_line.expect("a periodic stats line counting the 33 events");
    assert!(stats_line.contains(" alerts=32 "), "{stats_line}");
    // The file is rewritten while running (it starts as all zeros), just after the line.
    let mut st = stats(&stats_json);
    while st["events"] != 33 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        st = stats(&stats_json);
    }
    assert_eq!(st["events"], 33, "{st}");
    assert_eq!(st["alerts"], 32, "{st}");
    assert!(
        child.try_wait().unwrap().is_none(),
        "still running: stdin is open"
    );

    drop(input);
    let status = child.wait().unwrap();
    reader.join().unwrap();
    assert!(status.success(), "{status}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(
        rest.iter().any(|l| l.starts_with("execsentry: stopped; ")),
        "{rest:?}"
    );
}

/// A full disk: every alert write fails; the run still ends normally, and the alerts it could
/// not write are counted (and said) rather than silently gone.
#[test]
fn a_full_disk_is_counted_not_fatal() {
    let dir = TempDir::new("run-full");
    let rule = dir.write("true.toml", TRUE_RULE);
    let stats_json = dir.path().join("stats.json");
    let out = run_with_stdin(
        &[
            "run",
            "--config",
            "/dev/null",
            "--source",
            "audisp",
            "--no-builtin-rules",
            "--rules",
            &s(&rule),
            "--alerts",
            "/dev/full",
            "--alert-queue",
            "10",
            "--stats-json",
            &s(&stats_json),
        ],
        &fixture(),
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let st = stats(&stats_json);
    assert_eq!(st["alerts"], 32, "{st}");
    assert_eq!(
        st["sink_dropped"], 32,
        "10 queued then given up at exit, 22 overflowed: {st}"
    );
    assert_eq!(st["sink_queued"], 0, "{st}");
    assert!(st["sink_errors"].as_u64().unwrap() >= 2, "{st}");
    assert!(
        out.stderr.contains("32 output lines were not written"),
        "{}",
        out.stderr
    );
}

/// Outputs that cannot be opened stop the sensor at start, naming the path, before any audit
/// state is touched.
#[test]
fn unopenable_outputs_fail_at_start() {
    let cases: [(&[&str], &str); 3] = [
        (
            &["--alerts", "/nonexistent-execsentry/alerts.ndjson"],
            "cannot open alerts file /nonexistent-execsentry/alerts.ndjson",
        ),
        (
            &["--stats-json", "/nonexistent-execsentry/stats.json"],
            "cannot write stats file /nonexistent-execsentry/stats.json",
        ),
        (
            &[
                "--alerts",
                "/tmp/x.ndjson",
                "--file-group",
                "no-such-group-execsentry",
            ],
            "output.group \"no-such-group-execsentry\": no group named",
        ),
    ];
    for (flags, want) in cases {
        let mut args = vec!["run", "--config", "/dev/null", "--source", "audisp"];
        args.extend_from_slice(flags);
        let out = run(&args);
        assert_eq!(out.code, Some(2), "{flags:?}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{flags:?}: {}", out.stderr);
        assert!(!out.stderr.contains("ready"), "{}", out.stderr);
    }
}
