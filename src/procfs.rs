//! `/proc` as a seed and a fallback for the process table (Linux).
//!
//! Never the primary source of parent facts (the race is measured in linux-audit.md §7): the
//! table is seeded from here at start, and a later miss reads `/proc/<pid>` only to be trusted
//! when the process there started no later than the event that asks for it.

use std::fs;
use std::path::Path;

use crate::event::{basename, Ids, ProcessInfo};
use crate::users::NameCache;

/// Boot time and clock tick, to turn `/proc/<pid>/stat` start ticks into wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    boot_time_s: i64,
    ticks_per_s: i64,
}

impl Clock {
    pub fn read() -> Option<Clock> {
        let stat = fs::read_to_string("/proc/stat").ok()?;
        let boot_time_s = stat
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        // SAFETY: sysconf has no memory-safety preconditions.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Some(Clock {
            boot_time_s,
            ticks_per_s: if ticks > 0 { ticks as i64 } else { 100 },
        })
    }

    fn ticks_to_ns(&self, ticks: u64) -> i64 {
        let ticks = ticks as i64;
        self.boot_time_s * 1_000_000_000
            + ticks / self.ticks_per_s * 1_000_000_000
            + (ticks % self.ticks_per_s) * 1_000_000_000 / self.ticks_per_s
    }
}

/// The kernel's boot id (differs at every boot; part of entity ids).
pub fn boot_id() -> Option<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_owned())
}

/// Facts about `pid` from `/proc`, with its start time in clock ticks since boot (a generation
/// that survives pid reuse). `None` when the process is gone or is a kernel thread.
pub fn read_process(
    root: &Path,
    pid: u32,
    clock: &Clock,
    names: &mut NameCache,
) -> Option<(ProcessInfo, u64)> {
    let dir = root.join(pid.to_string());
    let stat = fs::read(dir.join("stat")).ok()?;
    let (ppid, start_ticks) = parse_stat(&stat)?;
    let executable = fs::read_link(dir.join("exe"))
        .ok()?
        .to_string_lossy()
        .into_owned();
    let executable = executable
        .strip_suffix(" (deleted)")
        .unwrap_or(&executable)
        .to_owned();
    let args = fs::read(dir.join("cmdline"))
        .map(|raw| split_cmdline(&raw))
        .unwrap_or_default();
    let working_directory = fs::read_link(dir.join("cwd"))
        .ok()
        .map(|p| p.to_string_lossy().into());
    let status = fs::read_to_string(dir.join("status")).ok()?;
    let uids = status_ids(&status, "Uid:")?;
    let gids = status_ids(&status, "Gid:")?;
    let ids = std::sync::Arc::new(Ids {
        user_id: uids[1].to_string(),
        user_name: names.user(uids[1]),
        real_user_id: uids[0].to_string(),
        real_user_name: names.user(uids[0]),
        group_id: gids[1].to_string(),
        group_name: names.group(gids[1]),
        real_group_id: gids[0].to_string(),
        real_group_name: names.group(gids[0]),
    });
    let info = ProcessInfo {
        pid,
        ppid,
        entity_id: String::new(),
        name: basename(&executable).into(),
        command_line: args.join(" "),
        executable: executable.into(),
        args,
        working_directory,
        ids,
        start_ns: Some(clock.ticks_to_ns(start_ticks)),
        ..Default::default()
    };
    Some((info, start_ticks))
}

/// Every numeric entry of `/proc`.
pub fn pids(root: &Path) -> Vec<u32> {
    fs::read_dir(root)
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// `(ppid, starttime)` from `/proc/<pid>/stat`; the command name may contain spaces and
/// parentheses, so fields are counted after its last `)`.
fn parse_stat(stat: &[u8]) -> Option<(u32, u64)> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    let mut fields = rest.split_ascii_whitespace();
    // After the name: state(3) ppid(4) ... starttime(22).
    let ppid = fields.nth(1)?.parse().ok()?;
    let start = fields.nth(17)?.parse().ok()?;
    Some((ppid, start))
}

fn split_cmdline(raw: &[u8]) -> Vec<String> {
    let raw = raw.strip_suffix(&[0]).unwrap_or(raw);
    if raw.is_empty() {
        return Vec::new();
    }
    raw.split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// `[real, effective, saved, fs]` from a `Uid:`/`Gid:` line.
fn status_ids(status: &str, key: &str) -> Option<[u32; 4]> {
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    let mut it = line.split_ascii_whitespace().map(|v| v.parse::<u32>());
    Some([
        it.next()?.ok()?,
        it.next()?.ok()?,
        it.next()?.ok()?,
        it.next()?.ok()?,
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_hostile_command_name() {
        let stat =
            b"4242 (a) b (c) S 17 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 987654 0 0";
        assert_eq!(parse_stat(stat), Some((17, 987654)));
        assert_eq!(parse_stat(b"garbage"), None);
    }

    #[test]
    fn cmdline_splits_on_nul() {
        assert_eq!(
            split_cmdline(b"bash\0-c\0echo hi\0"),
            vec!["bash", "-c", "echo hi"]
        );
        assert!(split_cmdline(b"").is_empty());
    }

    #[test]
    fn reads_this_process() {
        let clock = Clock::read().expect("/proc/stat");
        let mut names = NameCache::new();
        let me = std::process::id();
        let (info, ticks) =
            read_process(Path::new("/proc"), me, &clock, &mut names).expect("own /proc entry");
        assert_eq!(info.pid, me);
        assert_eq!(
            &*info.executable,
            std::env::current_exe().unwrap().to_string_lossy()
        );
        assert!(!info.args.is_empty());
        // SAFETY: getppid/geteuid have no preconditions.
        let (ppid, euid) = unsafe { (libc::getppid() as u32, libc::geteuid()) };
        assert_eq!(info.ppid, ppid);
        assert_eq!(info.ids.user_id, euid.to_string());
        let start = info.start_ns.unwrap();
        assert!(
            start <= crate::time::now_ns()
                && start > crate::time::now_ns() - 86_400_000_000_000 * 365
        );
        assert!(ticks > 0);
        assert!(pids(Path::new("/proc")).contains(&me));
    }
}
