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
use std::thread;
use std::time::{Duration, Instant};

use execsentry::rules::builtin::AUDIT_TAMPERING_RULE_ID;
use execsentry_linux::control::StatusChange;
use serde_json::Value;

use cli_support::TempDir;
use live_support::*;

/// How long a tamper alert may take here (the sensor polls every 250 ms).
const ALERT_WITHIN: Duration = Duration::from_secs(2);

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
    let (alerts_path, events_path) = (
        dir.path().join("alerts.ndjson"),
        dir.path().join("events.ndjson"),
    );
    let sensor = Sensor::start(&[
        "run",
        "--source",
        "netlink",
        "--alerts",
        alerts_path.to_str().unwrap(),
        "--events",
        events_path.to_str().unwrap(),
        "--audit-key",
        &audit.key.clone(),
        "--stats-interval",
        "3600",
    ]);
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
        within(ALERT_WITHIN, || audit.control.status().unwrap().enabled
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
        within(ALERT_WITHIN, || audit.rules_with_our_key() == 2).is_some(),
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
