//! The plain record every macOS source produces: one Endpoint Security exec, fork or exit message.
//!
//! Owned, `Send` and free of Endpoint Security types, so the live client's handler can copy a
//! message out and drop it at once, and the eslogger reader can produce the very same thing on
//! any platform. Field names follow Endpoint Security (`es_message_t`, `es_process_t`).

/// One execution of a program within one boot: Endpoint Security's `(pid, pidversion)`.
///
/// The whole audit token is not a key: `euid`/`egid` change on setuid while the execution stays
/// the same; `pidversion` changes on every exec and every fork, never on setuid.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessKey {
    pub pid: u32,
    pub pidversion: u32,
}

/// A process's audit token (`audit_token_t`), by field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct AuditToken {
    /// Audit user id (the login user; `u32::MAX` when unset).
    pub auid: u32,
    pub euid: u32,
    pub egid: u32,
    pub ruid: u32,
    pub rgid: u32,
    pub pid: u32,
    /// Audit session id.
    pub asid: u32,
    pub pidversion: u32,
}

impl AuditToken {
    /// From `audit_token_t.val`, whose order is `[auid, euid, egid, ruid, rgid, pid, asid,
    /// pidversion]` (the order eslogger also writes when it prints a token as an array).
    pub const fn from_val(v: [u32; 8]) -> AuditToken {
        AuditToken {
            auid: v[0],
            euid: v[1],
            egid: v[2],
            ruid: v[3],
            rgid: v[4],
            pid: v[5],
            asid: v[6],
            pidversion: v[7],
        }
    }

    /// Back to `audit_token_t.val` order.
    pub const fn to_val(&self) -> [u32; 8] {
        [
            self.auid,
            self.euid,
            self.egid,
            self.ruid,
            self.rgid,
            self.pid,
            self.asid,
            self.pidversion,
        ]
    }

    pub const fn key(&self) -> ProcessKey {
        ProcessKey {
            pid: self.pid,
            pidversion: self.pidversion,
        }
    }
}

/// What Endpoint Security says of one process (`es_process_t`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Process {
    pub token: AuditToken,
    /// Current parent pid; becomes 1 when the parent dies and the process is reparented.
    pub ppid: u32,
    /// Parent pid at fork time; never changes.
    pub original_ppid: u32,
    /// The parent execution (`parent_audit_token`, message version 4+): the key for parent lookups.
    pub parent: Option<ProcessKey>,
    /// The process macOS holds responsible (`responsible_audit_token`, version 4+): the app behind
    /// an XPC service, the terminal behind a shell. May be the process itself.
    pub responsible: Option<ProcessKey>,
    /// Process group id.
    pub group_id: u32,
    pub session_id: u32,
    pub executable: String,
    /// The kernel cut `executable` short.
    pub executable_truncated: bool,
    /// Code-signing identifier; `None` when unsigned.
    pub signing_id: Option<String>,
    /// Team identifier; `None` when unsigned or signed by Apple without a team.
    pub team_id: Option<String>,
    /// Code directory hash; `None` when unsigned (all zero) or not known.
    pub cdhash: Option<[u8; 20]>,
    /// `CS_*` flags from `<kern/cs_blobs.h>`.
    pub codesigning_flags: u32,
    pub is_platform_binary: bool,
    pub is_es_client: bool,
    /// Controlling terminal device path (`/dev/ttys003`), when there is one (version 2+).
    pub tty: Option<String>,
    /// Process start time, nanoseconds since the epoch (version 3+).
    pub start_time_ns: Option<i64>,
}

impl Process {
    pub fn key(&self) -> ProcessKey {
        self.token.key()
    }
}

/// `CS_VALID`: the code signature was valid when checked.
pub const CS_VALID: u32 = 0x0000_0001;
/// `CS_SIGNED`: the process has a code signature.
pub const CS_SIGNED: u32 = 0x2000_0000;

/// Message facts common to every event (`es_message_t`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// `es_message_t.version`: which fields the kernel filled in.
    pub version: u32,
    /// Message time, nanoseconds since the epoch.
    pub time_ns: i64,
    pub mach_time: Option<u64>,
    /// Per event type sequence number (version 2+); a gap means the kernel dropped messages.
    pub seq_num: Option<u64>,
    /// Per client sequence number across all event types (version 4+).
    pub global_seq_num: Option<u64>,
    pub thread_id: Option<u64>,
}

/// The event types this crate turns into records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    Exec,
    Fork,
    Exit,
}

impl EventKind {
    /// `es_event_type_t` value of the NOTIFY event.
    pub const fn es_event_type(self) -> u32 {
        match self {
            EventKind::Exec => 9,
            EventKind::Fork => 11,
            EventKind::Exit => 15,
        }
    }

    /// The kind for an `es_event_type_t` NOTIFY value; `None` for every other event.
    pub const fn from_es_event_type(t: u64) -> Option<EventKind> {
        match t {
            9 => Some(EventKind::Exec),
            11 => Some(EventKind::Fork),
            15 => Some(EventKind::Exit),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            EventKind::Exec => "exec",
            EventKind::Fork => "fork",
            EventKind::Exit => "exit",
        }
    }
}

/// `es_event_exec_t`: the new image of the instigating process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Exec {
    /// The same pid after the image swap: new executable, new pidversion, and for setuid binaries
    /// a new euid. Signing facts belong to this image, never to the instigator (for launchd
    /// services the instigator is `xpcproxy`).
    pub target: Process,
    /// Full argv, `args[0]` included; capped at [`MAX_ARGS_BYTES`].
    pub args: Vec<String>,
    /// Some arguments were left out to stay within [`MAX_ARGS_BYTES`].
    pub args_truncated: bool,
    /// Working directory at exec time (version 3+).
    pub cwd: Option<String>,
    /// The script file when the image is an interpreter started through a `#!` line (version 2+).
    pub script: Option<String>,
}

/// `es_event_fork_t`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fork {
    /// The new process: a copy of the parent's image with its own pid and pidversion.
    pub child: Process,
}

/// `es_event_exit_t`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exit {
    /// Raw wait(2) status.
    pub stat: i32,
}

impl Exit {
    /// The exit code when the process exited normally (`WIFEXITED`).
    pub const fn exit_code(&self) -> Option<i32> {
        if self.stat & 0x7f == 0 {
            Some((self.stat >> 8) & 0xff)
        } else {
            None
        }
    }

    /// The signal that killed the process (`WIFSIGNALED`).
    pub const fn signal(&self) -> Option<i32> {
        let sig = self.stat & 0x7f;
        if sig != 0 && sig != 0x7f {
            Some(sig)
        } else {
            None
        }
    }
}

/// The event part of a record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    Exec(Exec),
    Fork(Fork),
    Exit(Exit),
}

/// One Endpoint Security message, copied out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EsRecord {
    pub header: Header,
    /// The instigating process (`es_message_t.process`): for an exec the image *before* the swap,
    /// for a fork the parent, for an exit the process that exits.
    pub process: Process,
    pub event: Event,
}

impl EsRecord {
    pub fn kind(&self) -> EventKind {
        match self.event {
            Event::Exec(_) => EventKind::Exec,
            Event::Fork(_) => EventKind::Fork,
            Event::Exit(_) => EventKind::Exit,
        }
    }
}

/// A process found running at start-up, before any event about it (macOS backfill).
///
/// Code-signing facts are not looked up: `signing_id`, `team_id`, `cdhash` are `None`,
/// `codesigning_flags` 0 and `is_platform_binary` false.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunningProcess {
    pub process: Process,
    pub args: Vec<String>,
    pub args_truncated: bool,
    pub cwd: Option<String>,
}

/// Upper bound on the bytes of argv kept per exec (macOS `ARG_MAX` is 1 MiB, shared with the
/// environment); past it arguments are dropped and `args_truncated` set.
pub const MAX_ARGS_BYTES: usize = 256 * 1024;

/// Collects argv up to [`MAX_ARGS_BYTES`]; returns whether anything was left out.
#[derive(Debug, Default)]
pub(crate) struct ArgsBudget {
    used: usize,
    truncated: bool,
}

impl ArgsBudget {
    /// Pushes `arg` if it fits; an argument that does not fit is dropped whole, as are all after it,
    /// so `args` stays a prefix of the real argv.
    pub(crate) fn push(&mut self, args: &mut Vec<String>, arg: impl AsArg) {
        if self.truncated {
            return;
        }
        let len = arg.len();
        if self.used + len > MAX_ARGS_BYTES {
            self.truncated = true;
            return;
        }
        self.used += len;
        args.push(arg.into_string());
    }

    pub(crate) fn truncated(&self) -> bool {
        self.truncated
    }
}

/// An argument as a source hands it over: owned (eslogger) or borrowed (live client, backfill).
pub(crate) trait AsArg {
    fn len(&self) -> usize;
    fn into_string(self) -> String;
}

impl AsArg for String {
    fn len(&self) -> usize {
        String::len(self)
    }
    fn into_string(self) -> String {
        self
    }
}

impl AsArg for &std::ffi::OsStr {
    fn len(&self) -> usize {
        std::ffi::OsStr::len(self)
    }
    fn into_string(self) -> String {
        self.to_string_lossy().into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_val_order_is_audit_token_t() {
        let t = AuditToken::from_val([501, 0, 20, 501, 20, 4242, 100_017, 77]);
        assert_eq!(
            (t.auid, t.euid, t.egid, t.ruid, t.rgid),
            (501, 0, 20, 501, 20)
        );
        assert_eq!((t.pid, t.asid, t.pidversion), (4242, 100_017, 77));
        assert_eq!(t.to_val(), [501, 0, 20, 501, 20, 4242, 100_017, 77]);
        assert_eq!(
            t.key(),
            ProcessKey {
                pid: 4242,
                pidversion: 77
            }
        );
    }

    #[test]
    fn exit_status_decodes_like_wait() {
        // exit(3): status 0x0300.
        assert_eq!(Exit { stat: 0x0300 }.exit_code(), Some(3));
        assert_eq!(Exit { stat: 0x0300 }.signal(), None);
        // killed by SIGKILL (9), with and without a core dump bit.
        assert_eq!(Exit { stat: 9 }.exit_code(), None);
        assert_eq!(Exit { stat: 9 }.signal(), Some(9));
        assert_eq!(Exit { stat: 0x80 | 11 }.signal(), Some(11));
        // stopped (0x7f) is neither.
        assert_eq!(Exit { stat: 0x137f }.signal(), None);
        assert_eq!(Exit { stat: 0x137f }.exit_code(), None);
    }

    #[test]
    fn event_types_round_trip() {
        for k in [EventKind::Exec, EventKind::Fork, EventKind::Exit] {
            assert_eq!(
                EventKind::from_es_event_type(u64::from(k.es_event_type())),
                Some(k)
            );
        }
        assert_eq!(EventKind::from_es_event_type(10), None);
    }

    #[test]
    fn args_budget_keeps_a_prefix() {
        let mut budget = ArgsBudget::default();
        let mut args = Vec::new();
        budget.push(&mut args, "a".repeat(MAX_ARGS_BYTES - 10));
        budget.push(&mut args, "b".repeat(20)); // does not fit
        budget.push(&mut args, "c".to_string()); // would fit, but must not skip "b"
        assert_eq!(args.len(), 1);
        assert!(budget.truncated());

        let mut budget = ArgsBudget::default();
        let mut args = Vec::new();
        budget.push(&mut args, std::ffi::OsStr::new("/bin/ls"));
        budget.push(&mut args, "-l".to_string());
        assert_eq!(args, ["/bin/ls", "-l"]);
        assert!(!budget.truncated());
    }
}
