//! Audit record type numbers and the names auditd writes for them in `type=NAME`.
//!
//! Numbers come from `<linux/audit.h>` (Debian 12 headers, checked against kernel 6.18). Names are the
//! ones auditd prints; a type auditd has no name for is written `UNKNOWN[1335]`, which
//! [`type_from_name`] also accepts. Only the types a sensor meets are listed; any other number still
//! flows through as a plain `u16`.

/// Kernel-side control messages and records, by number.
pub const LOGIN: u16 = 1006;
pub const DAEMON_START: u16 = 1200;
pub const DAEMON_END: u16 = 1201;
pub const DAEMON_ABORT: u16 = 1202;
pub const DAEMON_CONFIG: u16 = 1203;
pub const DAEMON_ROTATE: u16 = 1205;
pub const SYSCALL: u16 = 1300;
pub const PATH: u16 = 1302;
pub const IPC: u16 = 1303;
pub const SOCKETCALL: u16 = 1304;
pub const CONFIG_CHANGE: u16 = 1305;
pub const SOCKADDR: u16 = 1306;
pub const CWD: u16 = 1307;
pub const EXECVE: u16 = 1309;
pub const FD_PAIR: u16 = 1317;
pub const OBJ_PID: u16 = 1318;
pub const TTY: u16 = 1319;
pub const EOE: u16 = 1320;
pub const BPRM_FCAPS: u16 = 1321;
pub const CAPSET: u16 = 1322;
pub const MMAP: u16 = 1323;
pub const NETFILTER_CFG: u16 = 1325;
pub const SECCOMP: u16 = 1326;
pub const PROCTITLE: u16 = 1327;
pub const FEATURE_CHANGE: u16 = 1328;
pub const REPLACE: u16 = 1329;
pub const KERN_MODULE: u16 = 1330;
pub const BPF: u16 = 1334;
pub const EVENT_LISTENER: u16 = 1335;
pub const URINGOP: u16 = 1336;
pub const OPENAT2: u16 = 1337;
pub const AVC: u16 = 1400;
pub const ANOM_PROMISCUOUS: u16 = 1700;
pub const ANOM_ABEND: u16 = 1701;
pub const KERNEL: u16 = 2000;

/// The first record type of the kernel's syscall-event range; records in
/// `SYSCALL_EVENT_FIRST..=SYSCALL_EVENT_LAST` may share a serial with a `SYSCALL` record.
pub const SYSCALL_EVENT_FIRST: u16 = 1300;
/// The last record type of the kernel's syscall-event range.
pub const SYSCALL_EVENT_LAST: u16 = 1399;

/// `(number, auditd name)` for the types listed above plus the common userspace ones.
const NAMES: &[(u16, &str)] = &[
    (1005, "USER"),
    (LOGIN, "LOGIN"),
    (1100, "USER_AUTH"),
    (1101, "USER_ACCT"),
    (1102, "USER_MGMT"),
    (1103, "CRED_ACQ"),
    (1104, "CRED_DISP"),
    (1105, "USER_START"),
    (1106, "USER_END"),
    (1107, "USER_AVC"),
    (1108, "USER_CHAUTHTOK"),
    (1109, "USER_ERR"),
    (1110, "CRED_REFR"),
    (1111, "USYS_CONFIG"),
    (1112, "USER_LOGIN"),
    (1113, "USER_LOGOUT"),
    (1130, "SERVICE_START"),
    (1131, "SERVICE_STOP"),
    (1136, "USER_CMD"),
    (DAEMON_START, "DAEMON_START"),
    (DAEMON_END, "DAEMON_END"),
    (DAEMON_ABORT, "DAEMON_ABORT"),
    (DAEMON_CONFIG, "DAEMON_CONFIG"),
    (DAEMON_ROTATE, "DAEMON_ROTATE"),
    (SYSCALL, "SYSCALL"),
    (PATH, "PATH"),
    (IPC, "IPC"),
    (SOCKETCALL, "SOCKETCALL"),
    (CONFIG_CHANGE, "CONFIG_CHANGE"),
    (SOCKADDR, "SOCKADDR"),
    (CWD, "CWD"),
    (EXECVE, "EXECVE"),
    (FD_PAIR, "FD_PAIR"),
    (OBJ_PID, "OBJ_PID"),
    (TTY, "TTY"),
    (EOE, "EOE"),
    (BPRM_FCAPS, "BPRM_FCAPS"),
    (CAPSET, "CAPSET"),
    (MMAP, "MMAP"),
    (NETFILTER_CFG, "NETFILTER_CFG"),
    (SECCOMP, "SECCOMP"),
    (PROCTITLE, "PROCTITLE"),
    (FEATURE_CHANGE, "FEATURE_CHANGE"),
    (REPLACE, "REPLACE"),
    (KERN_MODULE, "KERN_MODULE"),
    (BPF, "BPF"),
    (EVENT_LISTENER, "EVENT_LISTENER"),
    (URINGOP, "URINGOP"),
    (OPENAT2, "OPENAT2"),
    (AVC, "AVC"),
    (ANOM_PROMISCUOUS, "ANOM_PROMISCUOUS"),
    (ANOM_ABEND, "ANOM_ABEND"),
    (KERNEL, "KERNEL"),
];

/// The auditd name of a record type, if it is one this crate knows.
pub fn type_name(rtype: u16) -> Option<&'static str> {
    NAMES
        .iter()
        .find(|(n, _)| *n == rtype)
        .map(|(_, name)| *name)
}

/// The record type for an auditd `type=` name, including the `UNKNOWN[1335]` form.
pub fn type_from_name(name: &[u8]) -> Option<u16> {
    // The hot names first: a log replay asks this once per line.
    match name {
        b"SYSCALL" => return Some(SYSCALL),
        b"EXECVE" => return Some(EXECVE),
        b"PATH" => return Some(PATH),
        b"CWD" => return Some(CWD),
        b"PROCTITLE" => return Some(PROCTITLE),
        b"EOE" => return Some(EOE),
        _ => {}
    }
    if let Some(rest) = name.strip_prefix(b"UNKNOWN[") {
        let digits = rest.strip_suffix(b"]")?;
        return parse_u16(digits);
    }
    NAMES
        .iter()
        .find(|(_, n)| n.as_bytes() == name)
        .map(|(number, _)| *number)
}

/// Whether a record of this type can belong to a multi-record syscall event (and so must wait
/// for `EOE`, a timeout or the in-flight cap) rather than being an event of its own.
pub fn may_join_syscall_event(rtype: u16) -> bool {
    (SYSCALL_EVENT_FIRST..=SYSCALL_EVENT_LAST).contains(&rtype)
}

fn parse_u16(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 {
        return None;
    }
    let mut v: u32 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(d - b'0');
    }
    u16::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (number, name) in NAMES {
            assert_eq!(type_from_name(name.as_bytes()), Some(*number), "{name}");
            assert_eq!(type_name(*number), Some(*name));
        }
    }

    #[test]
    fn unknown_form() {
        assert_eq!(type_from_name(b"UNKNOWN[1335]"), Some(1335));
        assert_eq!(type_from_name(b"UNKNOWN[99999]"), None);
        assert_eq!(type_from_name(b"UNKNOWN[]"), None);
        assert_eq!(type_from_name(b"UNKNOWN[12a]"), None);
        assert_eq!(type_from_name(b"UNKNOWN[1335"), None);
        assert_eq!(type_from_name(b"NOPE"), None);
    }
}
