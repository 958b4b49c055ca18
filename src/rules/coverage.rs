//! Can this sensor ever feed a rule? Per source, from what the source produces.
//!
//! Both sources produce one kind of event: [`crate::event::ProcessEvent`], category `process`.
//! On Linux (kernel audit) it is an `exec` (`event.type` `start`, or `info` for a failed exec)
//! with the `auditd.*` facts and no code signature; on macOS (Endpoint Security) it is an
//! `exec`, `fork` or `end` with code-signing facts and no `auditd.*`. A field outside
//! [`crate::event::KnownField`] is never filled by either.
//!
//! A rule is *never fed* by a source when an item that must match (a single-event query, a
//! positive sequence item, a sample filter) selects a category the source never produces,
//! needs a field the source never fills (a positive test of it: see
//! [`crate::eql::Program::required_fields`]), pins `event.category`, `event.action`,
//! `event.type` or `host.os.type` to values the source never writes, or joins on a key field
//! the source never fills. Otherwise it is *fed*, possibly reading never-filled fields where
//! their absence does not prevent a match (under `not`, say); those are listed.

use std::fmt;

use super::Rule;
use crate::eql::query::Role;
use crate::eql::Program;
use crate::event::{KnownField, ProcField};

/// What one source produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Source {
    pub name: &'static str,
    pub platform: Platform,
    pub categories: &'static [&'static str],
    pub actions: &'static [&'static str],
    pub types: &'static [&'static str],
    pub os_type: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Platform {
    Linux,
    Macos,
}

/// Kernel audit (live, auditd plugin, audit.log replay).
pub const LINUX: Source = Source {
    name: "linux",
    platform: Platform::Linux,
    categories: &["process"],
    actions: &["exec"],
    types: &["start", "info"],
    os_type: "linux",
};

/// Endpoint Security (live, eslogger replay).
pub const MACOS: Source = Source {
    name: "macos",
    platform: Platform::Macos,
    categories: &["process"],
    actions: &["exec", "fork", "end"],
    types: &["start", "end"],
    os_type: "macos",
};

pub const SOURCES: [Source; 2] = [LINUX, MACOS];

/// Whether a source ever fills `field` (a dotted ECS path).
pub fn fills(platform: Platform, field: &str) -> bool {
    use KnownField::*;
    let Some(known) = KnownField::from_path(field) else {
        return false;
    };
    let linux = platform == Platform::Linux;
    match known {
        Process(pf) | Parent(pf) => match pf {
            ProcField::CodeSignatureExists
            | ProcField::CodeSignatureTrusted
            | ProcField::CodeSignatureSigningId
            | ProcField::CodeSignatureTeamId
            | ProcField::ExitCode => !linux,
            _ => true,
        },
        AuditdSession | AuditdDataSyscall | UserAuditId | TagsKey => linux,
        _ => true,
    }
}

/// One rule against one source. Reasons come most telling first: category, `host.os.type`,
/// other pinned values, then fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Events of the source can make the rule match; `unfilled` fields are read but never
    /// filled (their tests are false, their negations true).
    Fed { unfilled: Vec<String> },
    /// No event of the source can make the rule match, and why.
    Never { reasons: Vec<String> },
}

impl Verdict {
    pub fn is_fed(&self) -> bool {
        matches!(self, Verdict::Fed { .. })
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Fed { unfilled } if unfilled.is_empty() => f.write_str("fed"),
            Verdict::Fed { unfilled } => {
                write!(f, "fed (never fills {})", unfilled.join(", "))
            }
            Verdict::Never { reasons } => write!(f, "never fed ({})", reasons.join("; ")),
        }
    }
}

/// Whether `source` can feed `rule`.
pub fn assess(rule: &Rule, source: &Source) -> Verdict {
    let q = rule.query();
    let mut reasons: Vec<String> = Vec::new();
    let mut unfilled: Vec<String> = Vec::new();
    let note = |list: &mut Vec<String>, s: String| {
        if !list.contains(&s) {
            list.push(s);
        }
    };
    for (role, p) in q.items() {
        for f in p.fields() {
            if !fills(source.platform, f.as_str()) {
                note(&mut unfilled, f.as_str().to_owned());
            }
        }
        if role != Role::Required {
            continue;
        }
        for r in item_reasons(p, source) {
            note(&mut reasons, r);
        }
    }
    for (key, optional) in q.join_key_fields() {
        if !optional && !fills(source.platform, key.as_str()) {
            note(
                &mut reasons,
                format!("join key {} never filled", key.as_str()),
            );
        }
    }
    if reasons.is_empty() {
        Verdict::Fed { unfilled }
    } else {
        Verdict::Never { reasons }
    }
}

fn item_reasons(p: &Program, source: &Source) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(cat) = p.category() {
        if !source.categories.contains(&cat) {
            out.push(format!("category {cat} never produced"));
        }
    }
    let pinned: [(&str, &[&str]); 4] = [
        ("host.os.type", std::slice::from_ref(&source.os_type)),
        ("event.category", source.categories),
        ("event.action", source.actions),
        ("event.type", source.types),
    ];
    for (field, produced) in pinned {
        let Some(req) = p.requirement(field) else {
            continue;
        };
        let hit = produced.iter().any(|v| {
            req.values.iter().any(|want| {
                if req.insensitive {
                    want.eq_ignore_ascii_case(v)
                } else {
                    want == v
                }
            })
        });
        if !hit {
            out.push(format!(
                "{field} must be {} but is always {}",
                quoted(&req.values),
                quoted(produced)
            ));
        }
    }
    for f in p.required_fields() {
        if !fills(source.platform, f) {
            out.push(format!("field {f} never filled"));
        }
    }
    out
}

fn quoted<S: AsRef<str>>(values: &[S]) -> String {
    let list: Vec<String> = values
        .iter()
        .map(|v| format!("\"{}\"", v.as_ref()))
        .collect();
    match list.len() {
        1 => list[0].clone(),
        _ => format!("one of {}", list.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eql::Options;
    use crate::rules::load::load_source;
    use crate::rules::{Origin, Outcome};

    fn rule(query: &str) -> Rule {
        let src = format!(
            "[rule]\nname = \"t\"\nrule_id = \"t\"\ndescription = \"t\"\nseverity = \"low\"\n\
             risk_score = 21\ntype = \"eql\"\nlanguage = \"eql\"\nquery = '''\n{query}\n'''\n"
        );
        match load_source(Origin::Builtin("t"), &src, &Options::default()).outcome {
            Outcome::Ok(r) => *r,
            other => panic!("{other:?}"),
        }
    }

    fn reasons(v: Verdict) -> Vec<String> {
        match v {
            Verdict::Never { reasons } => reasons,
            Verdict::Fed { .. } => vec![],
        }
    }

    #[test]
    fn fields_by_platform() {
        assert!(fills(Platform::Linux, "process.parent.name"));
        assert!(fills(Platform::Linux, "auditd.data.syscall"));
        assert!(!fills(Platform::Macos, "auditd.data.syscall"));
        assert!(fills(Platform::Macos, "process.code_signature.trusted"));
        assert!(!fills(
            Platform::Linux,
            "process.parent.code_signature.trusted"
        ));
        assert!(!fills(
            Platform::Linux,
            "process.Ext.effective_parent.executable"
        ));
        assert!(!fills(Platform::Macos, "file.path"));
    }

    #[test]
    fn single_event_rules() {
        let r = rule(
            r#"process where host.os.type == "linux" and event.type == "start" and process.name == "sh""#,
        );
        assert_eq!(assess(&r, &LINUX), Verdict::Fed { unfilled: vec![] });
        assert_eq!(
            reasons(assess(&r, &MACOS)),
            ["host.os.type must be \"linux\" but is always \"macos\""]
        );
        let r = rule(r#"file where file.path : "/etc/*""#);
        assert_eq!(
            reasons(assess(&r, &LINUX)),
            [
                "category file never produced",
                "field file.path never filled"
            ]
        );
        let r = rule(r#"process where event.action == "executed""#);
        assert_eq!(
            reasons(assess(&r, &LINUX)),
            ["event.action must be \"executed\" but is always \"exec\""]
        );
        // A never-filled field under `not` does not stop a match.
        let r = rule(
            r#"process where process.name == "sh" and not process.Ext.effective_parent.executable : "/x""#,
        );
        assert_eq!(
            assess(&r, &LINUX),
            Verdict::Fed {
                unfilled: vec!["process.Ext.effective_parent.executable".into()]
            }
        );
        let r = rule(r#"process where process.env_vars : "LD_PRELOAD=*""#);
        assert_eq!(
            reasons(assess(&r, &MACOS)),
            ["field process.env_vars never filled"]
        );
        let r = rule(r#"process where event.action : ("EXEC", "start")"#);
        assert!(assess(&r, &LINUX).is_fed());
    }

    #[test]
    fn sequences_need_every_positive_item_and_key() {
        let r = rule(
            "sequence by process.entity_id with maxspan=1m [process where true] [network where true] ![file where true]",
        );
        // The missing item's category does not matter; the network item's does.
        assert_eq!(
            reasons(assess(&r, &LINUX)),
            ["category network never produced"]
        );
        let r = rule("sequence by source.ip [process where true] [process where true]");
        assert_eq!(
            reasons(assess(&r, &LINUX)),
            ["join key source.ip never filled"]
        );
        let r = rule("sequence by ?source.ip [process where true] [process where true]");
        assert!(assess(&r, &LINUX).is_fed());
        let r = rule(
            "sample by host.id [process where auditd.data.syscall == \"socket\"] [process where true]",
        );
        assert!(assess(&r, &LINUX).is_fed());
        assert_eq!(
            reasons(assess(&r, &MACOS)),
            ["field auditd.data.syscall never filled"]
        );
    }
}
