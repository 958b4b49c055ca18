//! The `KERN_PROCARGS2` sysctl buffer: a process's argv, read at start-up backfill.
//!
//! Layout (xnu `sysctl_procargsx`): `argc` as a native `i32` (little-endian on both Mac
//! architectures), the executable path, NUL padding, then `argc` NUL-terminated arguments, then
//! the environment (ignored). Another process's memory: treated as hostile, never indexed
//! unchecked. Compiled everywhere so it is tested on Linux.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::record::ArgsBudget;

/// What `KERN_PROCARGS2` says of a process.
#[derive(Debug, PartialEq, Eq)]
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub(crate) struct ProcArgs {
    pub(crate) exec_path: String,
    pub(crate) args: Vec<String>,
    pub(crate) truncated: bool,
}

/// Parses a `KERN_PROCARGS2` buffer; `None` when it is too short or `argc` is absurd.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub(crate) fn parse(buf: &[u8]) -> Option<ProcArgs> {
    let argc_bytes: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let argc = usize::try_from(i32::from_le_bytes(argc_bytes)).ok()?;
    let rest = buf.get(4..)?;
    if argc > rest.len() {
        return None;
    }
    // Only NUL-terminated strings count: a trailing piece without its NUL was cut off.
    let mut parts = rest
        .split_inclusive(|&b| b == 0)
        .filter_map(|p| p.strip_suffix(&[0]));
    let exec_path = parts.next()?;
    let lossy = |b: &[u8]| OsStr::from_bytes(b).to_string_lossy().into_owned();

    let mut budget = ArgsBudget::default();
    let mut args = Vec::with_capacity(argc.min(64));
    // Skip the padding between the path and argv[0]; then take argc strings.
    let mut parts = parts.skip_while(|p| p.is_empty());
    for _ in 0..argc {
        let Some(arg) = parts.next() else { break };
        budget.push(&mut args, OsStr::from_bytes(arg));
        if budget.truncated() {
            break;
        }
    }
    Some(ProcArgs {
        exec_path: lossy(exec_path),
        args,
        truncated: budget.truncated(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn buf(argc: i32, body: &[u8]) -> Vec<u8> {
        let mut b = argc.to_le_bytes().to_vec();
        b.extend_from_slice(body);
        b
    }

    #[test]
    fn argv_after_padding_environment_ignored() {
        let b = buf(
            3,
            b"/bin/bash\0\0\0\0bash\0-c\0echo hi\0PATH=/usr/bin\0HOME=/var/root\0\0",
        );
        let p = parse(&b).unwrap();
        assert_eq!(p.exec_path, "/bin/bash");
        assert_eq!(p.args, ["bash", "-c", "echo hi"]);
        assert!(!p.truncated);
    }

    #[test]
    fn short_or_absurd_buffers() {
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"\x01\x00"), None);
        assert_eq!(parse(&buf(-1, b"/bin/ls\0ls\0")), None);
        assert_eq!(parse(&buf(1000, b"/bin/ls\0ls\0")), None);
        // argc larger than the strings present: what is there is kept.
        let p = parse(&buf(4, b"/bin/ls\0ls\0-l\0")).unwrap();
        assert_eq!(p.args, ["ls", "-l"]);
        // The path cut off before its NUL.
        assert_eq!(parse(&buf(0, b"/bin/ls")), None);
        // An argument cut off before its NUL is left out.
        let p = parse(&buf(2, b"/bin/ls\0ls\0-")).unwrap();
        assert_eq!(p.args, ["ls"]);
    }
}
