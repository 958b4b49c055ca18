//! Tamper detection for the live Linux sensor: someone turning kernel audit off, deleting the
//! sensor's rules, or taking the audit daemon role while it runs.
//!
//! The main thread polls the audit status and the sensor's rules every [`POLL`] (well inside
//! the 1 s the sensor promises). Each change found becomes one synthetic ECS document
//! ([`Finding::document`]) that the evaluator runs through the rules like any event, so the
//! built-in rule "Linux Audit System Tampered With While execsentry Runs" turns it into a normal
//! alert. Then the sensor re-arms: audit on again, its rules installed again ([`Watch`]), the
//! daemon role taken back once it is free ([`crate::source::audit_daemon`]).

use std::time::Duration;

use execsentry_linux::control::{AuditConfigGuard, AuditStatus};
use execsentry_linux::Arch;
use serde_json::{json, Map, Value};

use crate::document::JsonDocument;
use crate::event::HostInfo;

/// How often the status and the rule list are polled.
pub const POLL: Duration = Duration::from_millis(250);

/// The `event.action` of a tamper document (what the built-in rule matches).
pub const ACTION: &str = "audit-tampering";

/// One change to the audit configuration the sensor did not make.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// `auditctl -e 0`: the kernel stopped auditing.
    Disabled,
    /// `auditctl -D` or a targeted delete: fewer of the sensor's rules than it installed.
    RulesDeleted { expected: usize, found: usize },
    /// Unicast only: the daemon pid is no longer the sensor's (`now` 0: released).
    PidTaken { ours: u32, now: u32 },
    /// Unicast only: the sensor's registered socket was closed from outside (the kernel still
    /// names the sensor until it next fails to send to it).
    SocketClosed { ours: u32 },
}

impl Finding {
    /// What changed, in words (the document's `message`, and the log line).
    pub fn message(&self, key: &str) -> String {
        match self {
            Finding::Disabled => "kernel audit was disabled (enabled=0) while execsentry runs".into(),
            Finding::RulesDeleted { expected, found } => format!(
                "execsentry's audit rules (key {key:?}) were deleted while it runs: {found} of {expected} left"
            ),
            Finding::PidTaken { ours, now: 0 } => format!(
                "the audit daemon registration of execsentry (pid {ours}) was removed while it runs"
            ),
            Finding::PidTaken { ours, now } => format!(
                "process {now} took the audit daemon role from execsentry (pid {ours}) while it runs"
            ),
            Finding::SocketClosed { ours } => format!(
                "the audit daemon socket of execsentry (pid {ours}) was closed from outside while it runs"
            ),
        }
    }

    fn what(&self) -> &'static str {
        match self {
            Finding::Disabled => "audit-disabled",
            Finding::RulesDeleted { .. } => "rules-deleted",
            Finding::PidTaken { .. } => "daemon-pid-taken",
            Finding::SocketClosed { .. } => "daemon-socket-closed",
        }
    }

    /// The synthetic ECS event the rules see: `event.action` [`ACTION`], what changed under
    /// `auditd.*`, the status as seen under `auditd.status`.
    pub fn document(
        &self,
        key: &str,
        status: &AuditStatus,
        host: &HostInfo,
        now_ns: i64,
    ) -> JsonDocument {
        let mut data = Map::new();
        data.insert("tampering".into(), Value::from(self.what()));
        data.insert("key".into(), Value::from(key));
        match self {
            Finding::Disabled => {}
            Finding::RulesDeleted { expected, found } => {
                data.insert("rules_expected".into(), Value::from(*expected));
                data.insert("rules_found".into(), Value::from(*found));
            }
            Finding::PidTaken { ours, now } => {
                data.insert("sensor_pid".into(), Value::from(*ours));
                data.insert("daemon_pid".into(), Value::from(*now));
            }
            Finding::SocketClosed { ours } => {
                data.insert("sensor_pid".into(), Value::from(*ours));
            }
        }
        let doc = json!({
            "@timestamp": crate::time::format_rfc3339_ms(now_ns),
            "ecs": {"version": "8.11.0"},
            "event": {
                "kind": "event",
                "category": ["configuration"],
                "type": ["change"],
                "action": ACTION,
                "module": "auditd",
                "dataset": "execsentry.tamper",
            },
            "message": self.message(key),
            "host": host_fields(host),
            "auditd": {
                "data": data,
                "status": {
                    "enabled": status.enabled,
                    "pid": status.pid,
                    "failure": status.failure,
                    "backlog_limit": status.backlog_limit,
                    "lost": status.lost,
                },
            },
        });
        let Value::Object(root) = doc else {
            unreachable!("json! of an object literal is an object")
        };
        JsonDocument::new(root)
    }
}

fn host_fields(host: &HostInfo) -> Value {
    let mut h = json!({
        "name": host.name,
        "hostname": host.hostname,
        "os": {"type": host.os_type},
    });
    if let Some(id) = &host.id {
        h["id"] = Value::from(id.as_str());
    }
    if let Some(arch) = &host.architecture {
        h["architecture"] = Value::from(arch.as_str());
    }
    if let Some(k) = &host.os_kernel {
        h["os"]["kernel"] = Value::from(k.as_str());
    }
    h
}

/// The configuration the sensor set up and watches (the daemon role has its own watch,
/// [`crate::source::audit_daemon::DaemonWatch`]).
pub struct Watch {
    key: String,
    arch: Arch,
    /// Rules with the key the sensor installed (and re-installs).
    expected_rules: usize,
}

impl Watch {
    pub fn new(key: &str, arch: Arch, expected_rules: usize) -> Watch {
        Watch {
            key: key.to_owned(),
            arch,
            expected_rules,
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// One poll: what changed, and the status seen.
    pub fn check(
        &mut self,
        guard: &mut AuditConfigGuard,
    ) -> Result<(Vec<Finding>, AuditStatus), execsentry_linux::Error> {
        let status = guard.control().status()?;
        let mut found = Vec::new();
        if status.enabled == 0 {
            found.push(Finding::Disabled);
        }
        if self.expected_rules > 0 {
            let n = guard.control().rules_with_key(self.key.as_bytes())?.len();
            if n < self.expected_rules {
                found.push(Finding::RulesDeleted {
                    expected: self.expected_rules,
                    found: n,
                });
            }
        }
        Ok((found, status))
    }

    /// Undoes what `findings` found, as far as it can.
    pub fn rearm(&mut self, guard: &mut AuditConfigGuard, findings: &[Finding]) {
        for f in findings {
            match f {
                Finding::Disabled => match guard.ensure_enabled() {
                    Ok(()) => log::warn!("tamper: kernel audit enabled again"),
                    Err(e) => log::error!("tamper: cannot enable kernel audit again: {e}"),
                },
                Finding::RulesDeleted { .. } => self.reinstall(guard),
                // The daemon watch's findings: re-armed by the reader, not here.
                Finding::PidTaken { .. } | Finding::SocketClosed { .. } => {}
            }
        }
    }

    /// Deletes what is left of the sensor's rules and installs the full set again.
    fn reinstall(&mut self, guard: &mut AuditConfigGuard) {
        let key = self.key.as_bytes();
        let left = guard.control().rules_with_key(key).unwrap_or_default();
        for rule in left {
            if let Err(e) = guard.control().delete_rule(&rule) {
                log::warn!(
                    "tamper: deleting a partial rule {}: {e}",
                    rule.to_auditctl()
                );
            }
        }
        match guard.install_exec_rules(self.arch, key) {
            Ok(_) => {
                let now = guard
                    .control()
                    .rules_with_key(key)
                    .map(|r| r.len())
                    .unwrap_or(0);
                self.expected_rules = now.max(1);
                log::warn!(
                    "tamper: exec audit rules with key {:?} installed again ({now})",
                    self.key
                );
            }
            Err(e) => log::error!("tamper: cannot install the exec audit rules again: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Document;

    fn host() -> HostInfo {
        HostInfo {
            name: "h1".into(),
            hostname: "h1".into(),
            id: Some("abc".into()),
            os_type: "linux".into(),
            os_family: None,
            os_kernel: Some("6.1".into()),
            architecture: Some("x86_64".into()),
        }
    }

    #[test]
    fn documents_say_what_changed() {
        let status = AuditStatus {
            enabled: 0,
            pid: 42,
            ..AuditStatus::default()
        };
        let f = Finding::RulesDeleted {
            expected: 2,
            found: 0,
        };
        let doc = f.document("execsentry", &status, &host(), 1_700_000_000_000_000_000);
        let v = doc.to_json();
        assert_eq!(v["event"]["action"], ACTION);
        assert_eq!(v["event"]["category"], json!(["configuration"]));
        assert_eq!(v["event"]["type"], json!(["change"]));
        assert_eq!(v["auditd"]["data"]["tampering"], "rules-deleted");
        assert_eq!(v["auditd"]["data"]["rules_found"], 0);
        assert_eq!(v["auditd"]["status"]["enabled"], 0);
        assert_eq!(v["host"]["os"]["kernel"], "6.1");
        assert!(v["message"].as_str().unwrap().contains("0 of 2 left"));
        assert_eq!(doc.timestamp_ns(), Some(1_700_000_000_000_000_000));
        let taken = Finding::PidTaken { ours: 7, now: 9 }.message("k");
        assert!(taken.contains("process 9 took"), "{taken}");
        let closed = Finding::SocketClosed { ours: 7 }.document("k", &status, &host(), 0);
        let v = closed.to_json();
        assert_eq!(v["auditd"]["data"]["tampering"], "daemon-socket-closed");
        assert_eq!(v["auditd"]["data"]["sensor_pid"], 7);
    }
}
