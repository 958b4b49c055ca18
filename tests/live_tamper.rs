//! Tamper detection against the real kernel audit subsystem, as root: while the sensor is the
//! audit daemon, audit is disabled and then its rules are deleted (through the crate's
//! `Control`, as `auditctl -e 0` and `auditctl -D` would); each raises the built-in tamper alert
//! within the promised second (two allowed here for a loaded CI machine) and the sensor re-arms.
//!
//! Same discipline as `live_run.rs`: the machine-wide audit lock for the whole run, the audit
//! status and rule list recorded first and asserted equal afterwards, guards that stop only the
//! sensor this test started and put audit back even when an assertion fails. Where live audit is
//! not possible the test says why and returns, unless `EXECSENTRY_REQUIRE_LIVE=1`.

#![cfg(target_os = "linux")]

mod cli_support;
#[allow(dead_code)]
mod live_support;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use execsentry::rules::builtin::{AUDIT_TAMPERING_RULE_ID, REVERSE_SHELL_RULE_ID};
use execsentry_linux::control::StatusChange;
use execsentry_linux::netlink::{Received, RecordSocket, SocketOptions, Stopper};
use serde_json::Value;

use cli_support::TempDir;
use live_support::*;

/// How long a tamper alert may take: the deadline (the sensor polls every 250 ms;
/// about 0.25 s is typical).
const ALERT_WITHIN: Duration = Duration::from_secs(1);
/// How long re-arming may take after the alert.
const REARM_WITHIN: Duration = Duration::from_secs(2);

fn tamper_alerts(path: &Path, what: &str) -> Vec<Value> {
    lines(path)
        .into_iter()
        .filter(|a| a["rule"]["id"] == AUDIT_TAMPERING_RULE_ID)
        .filter(|a| a["auditd"]["data"]["tampering"] == what)
        .collect()
}

/// Waits for `f`, returning how long it took; `None` past `timeout`.
fn within(timeout: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return Some(start.elapsed());
        }
        thread::sleep(Duration::from_millis(20));
    }
    None
}

#[test]
fn disabling_audit_or_deleting_the_rules_alerts_and_rearms() {
    let test = "disabling_audit_or_deleting_the_rules_alerts_and_rearms";
    let Some(mut audit) = AuditSession::begin(test, true) else {
        return;
    };
    let dir = TempDir::new("live-tamper");
    let (sensor, alerts_path, events_path) =
        Sensor::run_into(&dir, &audit.key, &["--source", "netlink"]);
    let running = audit.state();
    assert_eq!(running.pid, sensor.pid, "the sensor is the audit daemon");
    assert_eq!(running.enabled, 1);
    assert_eq!(audit.rules_with_our_key(), 2);
    assert!(
        tamper_alerts(&alerts_path, "audit-disabled").is_empty(),
        "no tamper alert for the sensor's own setup"
    );

    // `auditctl -e 0`.
    audit
        .control
        .set(&StatusChange::default().enabled(0))
        .expect("disable audit");
    let took = within(ALERT_WITHIN, || {
        !tamper_alerts(&alerts_path, "audit-disabled").is_empty()
    });
    assert!(
        took.is_some(),
        "no tamper alert within {ALERT_WITHIN:?} of disabling audit; stderr:\n{}",
        sensor.stderr.lock().unwrap()
    );
    eprintln!("audit-disabled alert after {took:?}");
    assert!(
        within(REARM_WITHIN, || audit.control.status().unwrap().enabled
            == 1)
        .is_some(),
        "audit enabled again"
    );
    let a = &tamper_alerts(&alerts_path, "audit-disabled")[0];
    assert_eq!(a["event"]["kind"], "alert");
    assert_eq!(a["event"]["risk_score"], 73.0, "{a:#}");
    assert_eq!(a["event"]["action"], "audit-tampering");
    assert_eq!(a["event"]["category"], serde_json::json!(["configuration"]));
    assert_eq!(a["auditd"]["status"]["enabled"], 0, "what was seen");
    let threat = &a["threat"];
    assert_eq!(
        threat["tactic"]["id"],
        serde_json::json!(["TA0005"]),
        "{a:#}"
    );
    assert_eq!(threat["technique"]["id"], serde_json::json!(["T1562"]));
    assert_eq!(
        threat["technique"]["subtechnique"]["id"],
        serde_json::json!(["T1562.012"])
    );
    assert!(a["host"]["name"].is_string());

    // `auditctl -D` for the sensor's rules (the others are not the test's to touch).
    let ours = audit
        .control
        .rules_with_key(audit.key.as_bytes())
        .expect("AUDIT_LIST_RULES");
    for rule in &ours {
        // The sensor may re-arm between two deletes: a rule already gone is fine.
        let _ = audit.control.delete_rule(rule);
    }
    let took = within(ALERT_WITHIN, || {
        !tamper_alerts(&alerts_path, "rules-deleted").is_empty()
    });
    assert!(
        took.is_some(),
        "no tamper alert within {ALERT_WITHIN:?} of deleting the rules; stderr:\n{}",
        sensor.stderr.lock().unwrap()
    );
    eprintln!("rules-deleted alert after {took:?}");
    assert!(
        within(REARM_WITHIN, || audit.rules_with_our_key() == 2).is_some(),
        "the sensor's rules installed again"
    );
    // Re-armed for real: a later exec is still an event.
    let sync = format!("es-sync-tamper-{}", std::process::id());
    run_marker(&sync);
    Tail::new(&events_path).wait_for(&sync, Duration::from_secs(30));

    let (status, stderr) = sensor.stop(libc::SIGTERM);
    audit.assert_restored();
    let counters = assert_clean_stop(status, &stderr, &alerts_path, &events_path);
    assert!(counters["tamper_events"] >= 2, "{stderr}");
    assert!(
        stderr.contains("tamper: kernel audit was disabled"),
        "{stderr}"
    );
}

/// The sensor's NETLINK_AUDIT descriptors: (fd, netlink port id), from its `/proc/PID/fd`
/// links and the kernel's netlink table (protocol 9 is NETLINK_AUDIT).
fn audit_sockets(pid: u32) -> Vec<(u32, u32)> {
    let table = std::fs::read_to_string("/proc/net/netlink").expect("/proc/net/netlink");
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    let ports: std::collections::HashMap<String, u32> = table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.get(1) != Some(&"9") {
                return None;
            }
            Some((cols.get(9)?.to_string(), cols.get(2)?.parse().ok()?))
        })
        .collect();
    let mut found = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).expect("the sensor's fds") {
        let entry = entry.unwrap();
        let Ok(link) = std::fs::read_link(entry.path()) else {
            continue;
        };
        let link = link.to_string_lossy().into_owned();
        let Some(ino) = link
            .strip_prefix("socket:[")
            .and_then(|l| l.strip_suffix(']'))
        else {
            continue;
        };
        if let Some(&port) = ports.get(ino) {
            let fd = entry.file_name().to_string_lossy().parse().unwrap();
            found.push((fd, port));
        }
    }
    found.sort_unstable();
    found
}

/// Closes descriptor `fd` inside process `pid`, as root can: gdb attaches and calls close(2).
fn close_in(pid: u32, fd: u32) -> Result<(), String> {
    let out = std::process::Command::new("gdb")
        .args(["-p", &pid.to_string(), "-batch", "-nx", "-ex"])
        .arg(format!("call (int)close({fd})"))
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("gdb: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("$1 = 0") {
        Ok(())
    } else {
        Err(format!(
            "gdb close({fd}) in {pid} failed ({}):\n{text}",
            out.status
        ))
    }
}

fn gdb_available() -> bool {
    std::process::Command::new("gdb")
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The test's own audit daemon registration: records are read (and dropped) by a thread so the
/// kernel never blocks on a full socket; dropping it unregisters.
struct Holder {
    stopper: Stopper,
    records: Arc<AtomicU64>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Holder {
    fn new(mut socket: RecordSocket) -> Holder {
        let stopper = socket.stopper();
        let records = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&records);
        let thread = thread::spawn(move || {
            loop {
                match socket.recv(None) {
                    Ok(Received::Record { .. }) => {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(Received::Overrun | Received::Idle) => {}
                    Ok(Received::Stopped) | Err(_) => break,
                }
            }
            // Dropping the socket unregisters (pid 0).
            drop(socket);
        });
        Holder {
            stopper,
            records,
            thread: Some(thread),
        }
    }

    fn release(&mut self) {
        self.stopper.stop();
        if let Some(t) = self.thread.take() {
            t.join().expect("holder thread");
        }
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        self.release();
    }
}

#[test]
fn taking_the_daemon_role_alerts_reads_on_and_rearms() {
    let test = "taking_the_daemon_role_alerts_reads_on_and_rearms";
    let Some(mut audit) = AuditSession::begin(test, true) else {
        return;
    };
    if !gdb_available() {
        skip(
            test,
            "gdb is not installed (it closes the sensor's socket from outside)",
        );
        return;
    }
    let dir = TempDir::new("live-takeover");
    let (sensor, alerts_path, events_path) =
        Sensor::run_into(&dir, &audit.key, &["-v", "--source", "netlink"]);
    assert_eq!(
        audit.state().pid,
        sensor.pid,
        "the sensor is the audit daemon"
    );
    let me = std::process::id();

    // The sensor's two audit sockets: control first (it gets the process's pid as its port),
    // then the registered record socket.
    let sockets = audit_sockets(sensor.pid);
    let record: Vec<_> = sockets.iter().filter(|s| s.1 != sensor.pid).collect();
    assert!(
        sockets.len() == 2 && record.len() == 1,
        "expected a control and a record socket: {sockets:?}"
    );
    let record_fd = record[0].0;

    // An attacker with root: close the sensor's registered socket, then register.
    close_in(sensor.pid, record_fd).unwrap_or_else(|e| panic!("{e}"));
    let mut holder = None;
    let deadline = Instant::now() + Duration::from_secs(5);
    while holder.is_none() && Instant::now() < deadline {
        // The kernel drops the dead registration at its next failed send: make it send.
        run_marker("es-takeover-nudge");
        match RecordSocket::unicast(SocketOptions {
            rcvbuf: 1 << 20,
            enable: false,
        }) {
            Ok(s) => holder = Some(Holder::new(s)),
            Err(execsentry_linux::Error::DaemonRegistered { .. }) => {
                thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("registering the test as the audit daemon: {e}"),
        }
    }
    let taken_at = Instant::now();
    let mut holder = holder.expect("the test registered within 5 s of closing the socket");
    assert_eq!(
        audit.control.status().unwrap().pid,
        me,
        "the test holds the pid"
    );

    let taken = |path: &Path| -> Vec<Value> {
        tamper_alerts(path, "daemon-pid-taken")
            .into_iter()
            .filter(|a| a["auditd"]["data"]["daemon_pid"] == me)
            .collect()
    };
    let took = within(ALERT_WITHIN, || !taken(&alerts_path).is_empty());
    assert!(
        took.is_some(),
        "no daemon-pid-taken alert within {ALERT_WITHIN:?} of the takeover; stderr:\n{}",
        sensor.stderr.lock().unwrap()
    );
    eprintln!("daemon-pid-taken alert after {:?}", taken_at.elapsed());
    let a = &taken(&alerts_path)[0];
    assert_eq!(a["rule"]["id"], AUDIT_TAMPERING_RULE_ID);
    assert_eq!(a["auditd"]["data"]["sensor_pid"], sensor.pid, "{a:#}");
    assert_eq!(a["auditd"]["status"]["pid"], me, "{a:#}");
    assert_eq!(
        a["threat"]["technique"]["subtechnique"]["id"],
        serde_json::json!(["T1562.012"])
    );

    // While the test holds the pid the sensor reads the multicast group: a (benign, never
    // connecting) reverse-shell command line still alerts.
    let marker = format!("es-takeover-{me}");
    let cmd = format!("echo /dev/tcp/192.0.2.1/4444 {marker}");
    assert!(run_shell("bash", &cmd, Duration::from_secs(10)).is_some_and(|s| s.success()));
    let seen = within(Duration::from_secs(10), || {
        lines(&alerts_path).iter().any(|a| {
            a["rule"]["id"] == REVERSE_SHELL_RULE_ID
                && a["process"]["command_line"]
                    .as_str()
                    .is_some_and(|c| c.contains(&marker))
        })
    });
    assert!(
        seen.is_some(),
        "the exec made while the test held the pid was not alerted; stderr:\n{}",
        sensor.stderr.lock().unwrap()
    );
    // The sensor leaves a live holder alone (no fight): past its settle time the pid is
    // still the test's, which really is the daemon (records arrive at its socket).
    let settle = Duration::from_millis(1500);
    thread::sleep(settle.saturating_sub(taken_at.elapsed()));
    assert_eq!(
        audit.control.status().unwrap().pid,
        me,
        "the sensor took the pid back from a live holder"
    );
    assert!(
        holder.records.load(Ordering::Relaxed) > 0,
        "the test's socket got records"
    );

    // The test lets go: the sensor registers again and reads its own socket.
    holder.release();
    let back = within(Duration::from_secs(5), || {
        audit.control.status().unwrap().pid == sensor.pid
    });
    assert!(
        back.is_some(),
        "the sensor did not register again within 5 s; stderr:\n{}",
        sensor.stderr.lock().unwrap()
    );
    eprintln!("sensor registered again {back:?} after the release");
    let sync = format!("es-sync-rearmed-{me}");
    run_marker(&sync);
    Tail::new(&events_path).wait_for(&sync, Duration::from_secs(30));

    let sensor_pid = sensor.pid;
    let (status, stderr) = sensor.stop(libc::SIGTERM);
    drop(holder);
    audit.assert_restored();
    let counters = assert_clean_stop(status, &stderr, &alerts_path, &events_path);
    assert_eq!(counters["daemon_lost"], 1, "{stderr}");
    assert_eq!(counters["daemon_regained"], 1, "{stderr}");
    // The socket closing may be seen before the takeover (one more alert), never more.
    assert!(
        (1..=2).contains(&counters["tamper_events"]),
        "one alert per takeover: {stderr}"
    );
    assert_eq!(taken(&alerts_path).len(), 1, "{stderr}");
    let said = format!(
        "tamper: process {me} took the audit daemon role from execsentry (pid {})",
        sensor_pid
    );
    assert!(stderr.contains(&said), "{said:?} in:\n{stderr}");
    assert!(
        stderr.contains("registered again as the audit daemon"),
        "{stderr}"
    );
    eprintln!("sensor stderr:\n{stderr}");
}
