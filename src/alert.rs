//! Alerts: the matching event in ECS form plus what matched it, one NDJSON line each.
//!
//! An alert is the whole matching document — every field the event had, `event.id` included,
//! left as it was (a replayed ECS line is kept as read, a live event is its
//! [`crate::event::ProcessEvent`] JSON) — with the fields below set on it. Each is written
//! following the document's own shape ([`crate::document::set_path`]): where the document
//! already uses a dotted key (`"event.kind"`) that key is replaced, where it has an object
//! (`"event": {...}`) the field goes inside it, and otherwise nested objects are created. The
//! result can be indexed in Elasticsearch as-is.
//!
//! | field | type | value |
//! |---|---|---|
//! | `event.kind` | keyword | `"alert"` |
//! | `event.severity` | long | from the rule's severity: low 21, medium 47, high 73, critical 99 |
//! | `event.risk_score` | float | the rule's `risk_score` (0–100) |
//! | `event.created` | date | detection time, RFC 3339 UTC with milliseconds |
//! | `rule.id` | keyword | the rule's `rule_id` |
//! | `rule.uuid` | keyword | the rule's `rule_id` (Elastic's rule ids are UUIDs) |
//! | `rule.name` | keyword | the rule's `name` |
//! | `rule.description` | keyword | the rule's `description` |
//! | `rule.version` | keyword | the rule's `version`, `"1"` when the file has none (Elastic keeps versions outside the rule files) |
//! | `rule.license` | keyword | the rule's `license`; absent when the rule has none |
//! | `rule.author` | keyword array | the rule's `author` list |
//! | `rule.reference` | keyword array | the rule's `references` list |
//! | `rule.ruleset` | keyword | `"builtin"`, or the `--rules` path the rule was loaded from |
//! | `rule.category` | keyword | the event category the query selects (`process`); absent for `any where` |
//! | `threat.framework` | keyword | the first `[[rule.threat]]` framework (`"MITRE ATT&CK"`); `threat.*` is absent when the rule has no threat entries |
//! | `threat.tactic.id`, `.name`, `.reference` | keyword arrays | every tactic of every threat entry, in order, each once |
//! | `threat.technique.id`, `.name`, `.reference` | keyword arrays | every technique, in order, each once |
//! | `threat.technique.subtechnique.id`, `.name`, `.reference` | keyword arrays | every subtechnique; absent when there are none |
//! | `message` | text | one sentence: rule name, process name and command line, user, host (each when present) |
//! | `observer.name` | keyword | `"execsentry"` |
//! | `observer.product` | keyword | `"execsentry"` |
//! | `observer.vendor` | keyword | `"execsentry"` |
//! | `observer.type` | keyword | `"sensor"` |
//! | `observer.version` | keyword | the execsentry version |
//! | `agent.name` | keyword | the detecting host's name (`execsentry` when it has none) — only when the event has no `agent` of its own: a replayed event keeps the collector's `agent.*` whole, and `observer.*` names the detector |
//! | `agent.type` | keyword | `"execsentry"` (same condition) |
//! | `agent.version` | keyword | the execsentry version (same condition) |
//! | `execsentry.alert.id` | keyword | this alert's own id: a random (version 4) UUID, unique per alert |
//!
//! A sequence or sample alert is built the same way from the event that completed the result
//! (a sequence's last event; the sample event that filled its last empty filter), plus:
//!
//! | field | type | value |
//! |---|---|---|
//! | `execsentry.sequence.kind` | keyword | `"sequence"` or `"sample"` |
//! | `execsentry.sequence.events` | object array | every event of the result in query-item order (`runs` expanded), each its whole ECS document; a missing-event item `![...]` is the placeholder `{"missing": true}` |
//! | `execsentry.sequence.join_keys` | array | the join key values, in `by` order (Elasticsearch's `join_keys`) |
//!
//! and `message` ends with `(the last of N events)`.

use std::fs::File;
use std::io::Read;

use serde_json::{Map, Value};

use crate::document::{set_path, Document, FieldPath, JsonDocument, Scalar};
use crate::eql::{Match, MatchKind};
use crate::rules::{Rule, ThreatRef};

/// The execsentry version written into `observer.version` and `agent.version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The longest command line quoted in `message`; longer ones are cut with an ellipsis.
const MESSAGE_COMMAND_LINE_MAX: usize = 256;

/// Builds alert documents and serializes them. One per writer thread (it owns the id state).
pub struct AlertBuilder {
    ids: AlertIds,
    agent_name: String,
    fields: MessageFields,
}

/// Field paths read to write `message`, resolved once.
struct MessageFields {
    process_name: FieldPath,
    command_line: FieldPath,
    args: FieldPath,
    user_name: FieldPath,
    process_user_name: FieldPath,
    user_id: FieldPath,
    host_name: FieldPath,
    host_hostname: FieldPath,
}

impl Default for AlertBuilder {
    fn default() -> Self {
        AlertBuilder::new()
    }
}

impl AlertBuilder {
    /// A builder whose ids are seeded from `/dev/urandom` and whose `agent.name` is this host's
    /// name.
    pub fn new() -> AlertBuilder {
        AlertBuilder::with_agent_name(local_hostname().unwrap_or_else(|| "execsentry".into()))
    }

    pub fn with_agent_name(agent_name: impl Into<String>) -> AlertBuilder {
        AlertBuilder {
            ids: AlertIds::from_entropy(),
            agent_name: agent_name.into(),
            fields: MessageFields {
                process_name: FieldPath::new("process.name"),
                command_line: FieldPath::new("process.command_line"),
                args: FieldPath::new("process.args"),
                user_name: FieldPath::new("user.name"),
                process_user_name: FieldPath::new("process.user.name"),
                user_id: FieldPath::new("user.id"),
                host_name: FieldPath::new("host.name"),
                host_hostname: FieldPath::new("host.hostname"),
            },
        }
    }

    /// The alert document for `rule` matching `doc`, detected at `detected_ns`.
    pub fn build<D: Document + ?Sized>(
        &mut self,
        rule: &Rule,
        doc: &D,
        detected_ns: i64,
    ) -> Map<String, Value> {
        let mut alert = match doc.to_json() {
            Value::Object(map) => map,
            // Documents are objects by contract; keep anything else rather than lose it.
            other => {
                let mut map = Map::new();
                map.insert("execsentry.document".into(), other);
                map
            }
        };
        let meta = &rule.meta;
        let mut set = |path: &str, value: Value| set_path(&mut alert, path, value);
        set("event.kind", "alert".into());
        set("event.severity", meta.severity.score().into());
        set("event.risk_score", f64::from(meta.risk_score).into());
        set(
            "event.created",
            crate::time::format_rfc3339_ms(detected_ns).into(),
        );
        set("rule.id", meta.rule_id.clone().into());
        set("rule.uuid", meta.rule_id.clone().into());
        set("rule.name", meta.name.clone().into());
        set("rule.description", meta.description.clone().into());
        set("rule.version", meta.version.unwrap_or(1).to_string().into());
        if let Some(license) = &meta.license {
            set("rule.license", license.clone().into());
        }
        set("rule.author", meta.author.clone().into());
        set("rule.reference", meta.references.clone().into());
        set("rule.ruleset", rule.origin.ruleset().into());
        if let Some(category) = rule.category() {
            set("rule.category", category.into());
        }
        set_threat(&mut alert, rule);
        let message = self.message(rule, doc);
        // The collector's identity is a fact of the event: never mix it with ours.
        let has_agent = alert
            .keys()
            .any(|k| k == "agent" || k.starts_with("agent."));
        let mut set = |path: &str, value: Value| set_path(&mut alert, path, value);
        set("message", message.into());
        set("observer.name", "execsentry".into());
        set("observer.product", "execsentry".into());
        set("observer.vendor", "execsentry".into());
        set("observer.type", "sensor".into());
        set("observer.version", VERSION.into());
        if !has_agent {
            set("agent.name", self.agent_name.clone().into());
            set("agent.type", "execsentry".into());
            set("agent.version", VERSION.into());
        }
        set("execsentry.alert.id", self.ids.next_uuid().into());
        alert
    }

    /// The alert for a sequence or sample result (or a single event held by `| tail`).
    pub fn build_match(&mut self, rule: &Rule, m: &Match, detected_ns: i64) -> Map<String, Value> {
        let mut alert = match m.last() {
            Some(doc) => self.build(rule, &**doc, detected_ns),
            None => self.build(rule, &JsonDocument::new(Map::new()), detected_ns),
        };
        if m.kind == MatchKind::Event {
            return alert;
        }
        let events: Vec<Value> = m
            .events
            .iter()
            .map(|e| match e {
                Some(doc) => doc.to_json(),
                None => serde_json::json!({ "missing": true }),
            })
            .collect();
        let present = m.events.iter().flatten().count();
        if let Some(Value::String(message)) = alert.get_mut("message") {
            if message.ends_with('.') {
                message.pop();
            }
            message.push_str(&format!(" (the last of {present} events)."));
        }
        set_path(
            &mut alert,
            "execsentry.sequence.kind",
            m.kind.as_str().into(),
        );
        set_path(
            &mut alert,
            "execsentry.sequence.events",
            Value::Array(events),
        );
        set_path(
            &mut alert,
            "execsentry.sequence.join_keys",
            Value::Array(m.join_keys.clone()),
        );
        alert
    }

    /// [`Self::write_ndjson`] for a sequence or sample result.
    pub fn write_match_ndjson(
        &mut self,
        rule: &Rule,
        m: &Match,
        detected_ns: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), serde_json::Error> {
        let alert = Value::Object(self.build_match(rule, m, detected_ns));
        out.clear();
        serde_json::to_writer(&mut *out, &alert)?;
        out.push(b'\n');
        Ok(())
    }

    /// Replaces `out` with the alert as one NDJSON line (ending in `\n`).
    pub fn write_ndjson<D: Document + ?Sized>(
        &mut self,
        rule: &Rule,
        doc: &D,
        detected_ns: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), serde_json::Error> {
        let alert = Value::Object(self.build(rule, doc, detected_ns));
        out.clear();
        serde_json::to_writer(&mut *out, &alert)?;
        out.push(b'\n');
        Ok(())
    }

    /// `Rule name: process bash ran "bash -i ..." as user root on host web-1.`
    fn message<D: Document + ?Sized>(&self, rule: &Rule, doc: &D) -> String {
        let f = &self.fields;
        let text = |path: &FieldPath| match doc.values(path).first() {
            Some(Scalar::Str(s)) if !s.is_empty() => Some(s.to_owned()),
            Some(Scalar::Int(i)) => Some(i.to_string()),
            _ => None,
        };
        let mut out = rule.meta.name.clone();
        let name = text(&f.process_name);
        let command_line = text(&f.command_line).or_else(|| {
            let args: Vec<String> = doc
                .values(&f.args)
                .iter()
                .filter_map(|s| match s {
                    Scalar::Str(s) => Some(s.to_owned()),
                    _ => None,
                })
                .collect();
            (!args.is_empty()).then(|| args.join(" "))
        });
        let user = text(&f.user_name)
            .or_else(|| text(&f.process_user_name))
            .or_else(|| text(&f.user_id).map(|id| format!("id {id}")));
        let host = text(&f.host_name).or_else(|| text(&f.host_hostname));
        if name.is_some() || command_line.is_some() {
            out.push_str(": process");
            if let Some(name) = name {
                out.push(' ');
                out.push_str(&name);
            }
            if let Some(cmd) = command_line {
                out.push_str(" ran \"");
                out.push_str(&shorten(&cmd, MESSAGE_COMMAND_LINE_MAX));
                out.push('"');
            }
        }
        if let Some(user) = user {
            out.push_str(" as user ");
            out.push_str(&user);
        }
        if let Some(host) = host {
            out.push_str(" on host ");
            out.push_str(&host);
        }
        out.push('.');
        out
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// `threat.*` as ECS arrays collected across every `[[rule.threat]]` entry.
fn set_threat(alert: &mut Map<String, Value>, rule: &Rule) {
    let threat = &rule.meta.threat;
    let Some(framework) = threat.iter().map(|t| &t.framework).find(|f| !f.is_empty()) else {
        return;
    };
    let mut tactics: Vec<&ThreatRef> = Vec::new();
    let mut techniques: Vec<&ThreatRef> = Vec::new();
    let mut subtechniques: Vec<&ThreatRef> = Vec::new();
    for t in threat {
        if let Some(tactic) = &t.tactic {
            add(&mut tactics, tactic);
        }
        for tech in &t.techniques {
            add(&mut techniques, &tech.technique);
            for sub in &tech.subtechniques {
                add(&mut subtechniques, sub);
            }
        }
    }
    set_path(alert, "threat.framework", framework.clone().into());
    for (prefix, list) in [
        ("threat.tactic", &tactics),
        ("threat.technique", &techniques),
        ("threat.technique.subtechnique", &subtechniques),
    ] {
        if list.is_empty() {
            continue;
        }
        let column = |f: fn(&ThreatRef) -> &String| -> Value {
            list.iter().map(|r| Value::from(f(r).clone())).collect()
        };
        set_path(alert, &format!("{prefix}.id"), column(|r| &r.id));
        set_path(alert, &format!("{prefix}.name"), column(|r| &r.name));
        set_path(
            alert,
            &format!("{prefix}.reference"),
            column(|r| &r.reference),
        );
    }
}

fn add<'a>(list: &mut Vec<&'a ThreatRef>, r: &'a ThreatRef) {
    if !list.iter().any(|seen| seen.id == r.id) {
        list.push(r);
    }
}

/// Random (version 4) UUIDs without a dependency: a 128-bit key from `/dev/urandom`, and for
/// each alert a counter mixed with that key through a bijective 64-bit mixer, so ids never repeat
/// within a run and cannot be predicted across runs.
struct AlertIds {
    key: [u64; 2],
    counter: u64,
}

impl AlertIds {
    fn from_entropy() -> AlertIds {
        let mut seed = [0u8; 16];
        let read = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed));
        if read.is_err() {
            // No /dev/urandom (a sandbox): time, pid and an address are still unique per run.
            let t = crate::time::now_ns() as u64;
            let here = &seed as *const _ as u64;
            seed[..8].copy_from_slice(&mix64(t ^ u64::from(std::process::id())).to_le_bytes());
            seed[8..].copy_from_slice(&mix64(here ^ t.rotate_left(32)).to_le_bytes());
        }
        let (a, b) = seed.split_at(8);
        let word = |s: &[u8]| {
            let mut w = [0u8; 8];
            w.copy_from_slice(s);
            u64::from_le_bytes(w)
        };
        AlertIds {
            key: [word(a), word(b)],
            counter: 0,
        }
    }

    fn next_uuid(&mut self) -> String {
        self.counter = self.counter.wrapping_add(1);
        let hi = mix64(self.key[0].wrapping_add(self.counter));
        let lo = mix64(self.key[1] ^ hi.rotate_left(17) ^ self.counter);
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&hi.to_be_bytes());
        b[8..].copy_from_slice(&lo.to_be_bytes());
        b[6] = (b[6] & 0x0f) | 0x40; // version 4
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
        let mut s = String::with_capacity(36);
        for (i, byte) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                s.push('-');
            }
            s.push(char::from(HEX[usize::from(byte >> 4)]));
            s.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        s
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// SplitMix64's finalizer: a bijection on u64 that spreads every input bit over the output.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// This machine's host name, for `agent.name`.
fn local_hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the pointer and length describe `buf`, which outlives the call; gethostname writes
    // at most `len` bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..len]).into_owned();
    (!name.is_empty()).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn uuids_are_v4_and_unique() {
        let mut ids = AlertIds::from_entropy();
        let mut seen = HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next_uuid();
            assert_eq!(id.len(), 36);
            let b = id.as_bytes();
            assert_eq!((b[8], b[13], b[18], b[23]), (b'-', b'-', b'-', b'-'));
            assert_eq!(b[14], b'4', "{id}");
            assert!(matches!(b[19], b'8' | b'9' | b'a' | b'b'), "{id}");
            assert!(id
                .bytes()
                .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
            assert!(seen.insert(id));
        }
        // A second builder (another run) does not repeat the first one's ids.
        let mut other = AlertIds::from_entropy();
        assert!(!seen.contains(&other.next_uuid()));
    }

    #[test]
    fn shorten_cuts_on_char_boundaries() {
        assert_eq!(shorten("abc", 5), "abc");
        assert_eq!(shorten("abcdef", 3), "abc…");
        assert_eq!(shorten("ééé", 3), "é…");
    }
}
