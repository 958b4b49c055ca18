//! The processes already running when the sensor starts, for the process table.
//!
//! Endpoint Security only reports what happens after subscription, so without this the first
//! exec of every long-lived shell's child would lack `process.parent.*`. Each pid gets its audit
//! token (`task_name_for_pid` + `TASK_AUDIT_TOKEN`, through endpoint-sec; root), path
//! (`proc_pidpath`), ids and start time (`PROC_PIDTBSDINFO`), working directory
//! (`PROC_PIDVNODEPATHINFO`) and argv (`KERN_PROCARGS2`). Best effort: a process that exits
//! meanwhile, or whose token cannot be had, is left out and counted.

use std::collections::HashMap;
use std::ffi::{c_int, c_void, CStr, OsStr};
use std::mem::{size_of, MaybeUninit};
use std::os::unix::ffi::OsStrExt;

use endpoint_sec::AuditToken as EsToken;

use crate::procargs;
use crate::record::{AuditToken, Process, ProcessKey, RunningProcess};

/// What a backfill found.
#[derive(Debug, Default)]
pub struct Backfill {
    pub processes: Vec<RunningProcess>,
    /// Pids listed but left out (gone meanwhile, kernel processes, no token).
    pub skipped: usize,
}

/// Lists the running processes, oldest first (so parents come before their children).
pub fn running_processes() -> std::io::Result<Backfill> {
    let pids = list_pids()?;
    let tokens: Vec<(libc::pid_t, Option<AuditToken>)> =
        pids.iter().map(|&pid| (pid, token_of(pid))).collect();
    let keys: HashMap<u32, ProcessKey> = tokens
        .iter()
        .filter_map(|(_, t)| t.map(|t| (t.pid, t.key())))
        .collect();
    let key_of = |pid: u32| keys.get(&pid).copied();

    let mut out = Backfill::default();
    for &(pid, token) in &tokens {
        let (Some(token), Some(info)) = (token, bsd_info(pid)) else {
            out.skipped += 1;
            continue;
        };
        let procargs = procargs_of(pid);
        let executable = pid_path(pid)
            .or_else(|| procargs.as_ref().map(|p| p.exec_path.clone()))
            .unwrap_or_default();
        let (args, args_truncated) = procargs.map(|p| (p.args, p.truncated)).unwrap_or_default();
        let start_ns = i64::try_from(info.pbi_start_tvsec)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000_000))
            .and_then(|ns| ns.checked_add(i64::try_from(info.pbi_start_tvusec).ok()? * 1000));
        out.processes.push(RunningProcess {
            process: Process {
                token,
                ppid: info.pbi_ppid,
                original_ppid: info.pbi_ppid,
                parent: key_of(info.pbi_ppid),
                responsible: None,
                group_id: info.pbi_pgid,
                session_id: 0,
                executable,
                executable_truncated: false,
                signing_id: None,
                team_id: None,
                cdhash: None,
                codesigning_flags: 0,
                is_platform_binary: false,
                is_es_client: false,
                tty: None,
                start_time_ns: start_ns,
            },
            args,
            args_truncated,
            cwd: cwd_of(pid),
        });
    }
    out.processes.sort_by_key(|p| {
        (
            p.process.start_time_ns.unwrap_or(i64::MAX),
            p.process.token.pid,
        )
    });
    Ok(out)
}

fn list_pids() -> std::io::Result<Vec<libc::pid_t>> {
    // SAFETY: a null buffer asks for the number of pids.
    let n = unsafe { libc::proc_listallpids(std::ptr::null_mut(), 0) };
    if n <= 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Room for processes started between the two calls.
    let cap = usize::try_from(n).unwrap_or(0) + 64;
    let mut pids: Vec<libc::pid_t> = vec![0; cap];
    let bytes = c_int::try_from(cap * size_of::<libc::pid_t>()).unwrap_or(c_int::MAX);
    // SAFETY: `pids` has room for `bytes` bytes; the call writes at most that many.
    let got = unsafe { libc::proc_listallpids(pids.as_mut_ptr().cast(), bytes) };
    if got <= 0 {
        return Err(std::io::Error::last_os_error());
    }
    pids.truncate(usize::try_from(got).unwrap_or(0).min(cap));
    pids.retain(|&p| p > 0);
    Ok(pids)
}

fn token_of(pid: libc::pid_t) -> Option<AuditToken> {
    EsToken::from_pid(pid)
        .ok()
        .map(|t| AuditToken::from_val(t.raw_token().val))
}

fn bsd_info(pid: libc::pid_t) -> Option<libc::proc_bsdinfo> {
    let mut info = MaybeUninit::<libc::proc_bsdinfo>::zeroed();
    let size = c_int::try_from(size_of::<libc::proc_bsdinfo>()).ok()?;
    // SAFETY: `info` is a writable proc_bsdinfo of `size` bytes.
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            info.as_mut_ptr().cast(),
            size,
        )
    };
    // SAFETY: the kernel filled the whole struct when it returned its size; it was zeroed before.
    (n == size).then(|| unsafe { info.assume_init() })
}

fn pid_path(pid: libc::pid_t) -> Option<String> {
    let mut buf = vec![0u8; libc::PROC_PIDPATHINFO_MAXSIZE as usize];
    let len = u32::try_from(buf.len()).ok()?;
    // SAFETY: `buf` is writable for `len` bytes.
    let n = unsafe { libc::proc_pidpath(pid, buf.as_mut_ptr().cast::<c_void>(), len) };
    let n = usize::try_from(n).ok().filter(|&n| n > 0)?;
    Some(
        OsStr::from_bytes(buf.get(..n)?)
            .to_string_lossy()
            .into_owned(),
    )
}

fn cwd_of(pid: libc::pid_t) -> Option<String> {
    let mut info = MaybeUninit::<libc::proc_vnodepathinfo>::zeroed();
    let size = c_int::try_from(size_of::<libc::proc_vnodepathinfo>()).ok()?;
    // SAFETY: `info` is a writable proc_vnodepathinfo of `size` bytes.
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDVNODEPATHINFO,
            0,
            info.as_mut_ptr().cast(),
            size,
        )
    };
    if n != size {
        return None;
    }
    // SAFETY: filled by the kernel (and zeroed before), plain data.
    let info = unsafe { info.assume_init() };
    // vip_path is char[MAXPATHLEN] spelled as [[c_char; 32]; 32].
    let raw = info.pvi_cdir.vip_path.as_flattened();
    // SAFETY: c_char and u8 have the same size and alignment.
    let bytes: &[u8] = unsafe { std::slice::from_raw_parts(raw.as_ptr().cast(), raw.len()) };
    let path = CStr::from_bytes_until_nul(bytes).ok()?;
    (!path.is_empty()).then(|| path.to_string_lossy().into_owned())
}

fn procargs_of(pid: libc::pid_t) -> Option<procargs::ProcArgs> {
    let mut argmax: c_int = 0;
    let mut size = size_of::<c_int>();
    let mut mib = [libc::CTL_KERN, libc::KERN_ARGMAX];
    // SAFETY: `argmax`/`size` describe a writable c_int.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            2,
            (&mut argmax as *mut c_int).cast(),
            &mut size,
            std::ptr::null_mut(),
            0,
        )
    };
    let cap = usize::try_from(argmax).ok().filter(|_| rc == 0)?;
    let mut buf = vec![0u8; cap];
    let mut len = cap;
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
    // SAFETY: `buf` is writable for `len` bytes; the kernel updates `len` to what it wrote.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    procargs::parse(buf.get(..len)?)
}
