//! The parts of the live client that need no macOS: configuration, counters, state, the
//! message → record mapping and the handler's delivery rule.
//!
//! `client.rs` (macOS only) reads endpoint-sec's accessors into `ProcessFacts` and calls
//! `Delivery::deliver`; everything it does with the values is here, compiled and tested on
//! every platform, because macOS code cannot be linked or run in this project's CI.

use std::ffi::OsStr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Sender, TrySendError};

use crate::record::{ArgsBudget, AuditToken, EsRecord, EventKind, Process};
use crate::seq::SeqGaps;

/// How the live client runs.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Records held between the Endpoint Security queue and the consumer; past it records are
    /// dropped and counted, never waited for.
    pub channel_capacity: usize,
    /// How often `es_new_client` is tried again while Full Disk Access is missing.
    pub retry_interval: Duration,
    /// Executables whose own events are muted in the kernel (literal paths of the instigator).
    pub mute_paths: Vec<PathBuf>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            channel_capacity: 16 * 1024,
            retry_interval: Duration::from_secs(30),
            mute_paths: Vec::new(),
        }
    }
}

/// Where the live client is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ClientState {
    Starting = 0,
    /// `es_new_client` said NOT_PERMITTED (or too many clients): retrying.
    WaitingForAccess = 1,
    /// Subscribed; records flow.
    Running = 2,
    Stopped = 3,
    /// Gave up; the thread's result says why.
    Failed = 4,
}

impl ClientState {
    fn from_u8(v: u8) -> ClientState {
        match v {
            0 => ClientState::Starting,
            1 => ClientState::WaitingForAccess,
            2 => ClientState::Running,
            3 => ClientState::Stopped,
            _ => ClientState::Failed,
        }
    }
}

/// The client's state, readable from any thread.
#[derive(Debug, Default)]
pub struct SharedState(AtomicU8);

impl SharedState {
    pub fn get(&self) -> ClientState {
        ClientState::from_u8(self.0.load(Relaxed))
    }

    pub fn set(&self, s: ClientState) {
        self.0.store(s as u8, Relaxed);
    }
}

/// What the handler has seen; shared between the Endpoint Security queue and the consumer.
#[derive(Debug, Default)]
pub struct ClientCounters {
    /// Messages the handler was called with.
    pub received: AtomicU64,
    /// Records handed to the channel.
    pub delivered: AtomicU64,
    /// Records dropped because the channel was full (the consumer fell behind).
    pub overflow: AtomicU64,
    /// Messages of other event types, or that endpoint-sec could not decode.
    pub unmapped: AtomicU64,
    /// Messages the kernel dropped for this client, from sequence-number gaps.
    pub kernel: SeqGaps,
}

/// A plain copy of [`ClientCounters`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    pub received: u64,
    pub delivered: u64,
    pub overflow: u64,
    pub unmapped: u64,
    pub kernel_dropped: u64,
    pub seq_resets: u64,
}

impl ClientCounters {
    pub fn snapshot(&self) -> CountersSnapshot {
        CountersSnapshot {
            received: self.received.load(Relaxed),
            delivered: self.delivered.load(Relaxed),
            overflow: self.overflow.load(Relaxed),
            unmapped: self.unmapped.load(Relaxed),
            kernel_dropped: self.kernel.dropped(),
            seq_resets: self.kernel.resets(),
        }
    }
}

/// The handler's rule: count, check sequence numbers, copy, `try_send`, never block.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub(crate) struct Delivery<'c> {
    pub(crate) tx: &'c Sender<EsRecord>,
    pub(crate) counters: &'c ClientCounters,
}

#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
impl Delivery<'_> {
    /// Takes one message: its kind and sequence numbers (`None` kind for other event types) and
    /// a closure that copies it into a record. Returns whether a record entered the channel.
    pub(crate) fn deliver(
        &self,
        kind: Option<EventKind>,
        seq_num: Option<u64>,
        global_seq_num: Option<u64>,
        copy: impl FnOnce() -> Option<EsRecord>,
    ) -> bool {
        self.counters.received.fetch_add(1, Relaxed);
        self.counters.kernel.observe(kind, seq_num, global_seq_num);
        if kind.is_none() {
            self.counters.unmapped.fetch_add(1, Relaxed);
            return false;
        }
        let Some(record) = copy() else {
            self.counters.unmapped.fetch_add(1, Relaxed);
            return false;
        };
        match self.tx.try_send(record) {
            Ok(()) => {
                self.counters.delivered.fetch_add(1, Relaxed);
                true
            }
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.counters.overflow.fetch_add(1, Relaxed);
                false
            }
        }
    }
}

/// One `es_process_t`, as plain values borrowed from the message.
#[derive(Clone, Debug)]
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub(crate) struct ProcessFacts<'a> {
    /// `audit_token_t.val`.
    pub(crate) token: [u32; 8],
    pub(crate) parent_token: Option<[u32; 8]>,
    pub(crate) responsible_token: Option<[u32; 8]>,
    pub(crate) ppid: i32,
    pub(crate) original_ppid: i32,
    pub(crate) group_id: i32,
    pub(crate) session_id: i32,
    pub(crate) executable: &'a OsStr,
    pub(crate) executable_truncated: bool,
    pub(crate) signing_id: &'a OsStr,
    pub(crate) team_id: &'a OsStr,
    pub(crate) cdhash: [u8; 20],
    pub(crate) codesigning_flags: u32,
    pub(crate) is_platform_binary: bool,
    pub(crate) is_es_client: bool,
    pub(crate) tty: Option<&'a OsStr>,
    pub(crate) start_time: Option<SystemTime>,
}

#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
impl ProcessFacts<'_> {
    /// Copies into an owned [`Process`]: paths and ids lossily as UTF-8, empty signing
    /// strings and an all-zero cdhash as `None`, negative pids (never seen) as 0.
    pub(crate) fn to_process(&self) -> Process {
        let non_empty = |s: &OsStr| (!s.is_empty()).then(|| s.to_string_lossy().into_owned());
        Process {
            token: AuditToken::from_val(self.token),
            ppid: pid(self.ppid),
            original_ppid: pid(self.original_ppid),
            parent: self.parent_token.map(|v| AuditToken::from_val(v).key()),
            responsible: self
                .responsible_token
                .map(|v| AuditToken::from_val(v).key()),
            group_id: pid(self.group_id),
            session_id: pid(self.session_id),
            executable: self.executable.to_string_lossy().into_owned(),
            executable_truncated: self.executable_truncated,
            signing_id: non_empty(self.signing_id),
            team_id: non_empty(self.team_id),
            cdhash: (self.cdhash != [0; 20]).then_some(self.cdhash),
            codesigning_flags: self.codesigning_flags,
            is_platform_binary: self.is_platform_binary,
            is_es_client: self.is_es_client,
            tty: self.tty.map(|t| t.to_string_lossy().into_owned()),
            start_time_ns: self.start_time.map(system_time_ns),
        }
    }
}

fn pid(p: i32) -> u32 {
    u32::try_from(p).unwrap_or(0)
}

/// Nanoseconds since the epoch; times before it are negative, times past `i64` saturate.
pub(crate) fn system_time_ns(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_nanos()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// argv within [`crate::record::MAX_ARGS_BYTES`]; whether some were left out.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub(crate) fn collect_args<'a>(args: impl Iterator<Item = &'a OsStr>) -> (Vec<String>, bool) {
    let mut budget = ArgsBudget::default();
    let mut list = Vec::new();
    for a in args {
        budget.push(&mut list, a);
        if budget.truncated() {
            break;
        }
    }
    (list, budget.truncated())
}

/// The lowest version endpoint-sec accepts; it panics below it.
const MIN_RUNTIME: (u64, u64, u64) = (10, 15, 0);

/// `kern.osproductversion` ("15.4.1", "26.0") as the triple endpoint-sec's
/// `set_runtime_version` takes; `None` when it is not a version or below 10.15.
pub fn parse_os_version(s: &str) -> Option<(u64, u64, u64)> {
    let s = s.trim_end_matches('\0').trim();
    let mut parts = s.split('.');
    let mut next = |required: bool| -> Option<u64> {
        match parts.next() {
            Some(p) => p.parse().ok(),
            None if required => None,
            None => Some(0),
        }
    };
    let v = (next(true)?, next(false)?, next(false)?);
    if parts.next().is_some() || v < MIN_RUNTIME {
        return None;
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Event, Exit, Header};
    use std::os::unix::ffi::OsStrExt;

    fn facts(exe: &[u8]) -> ProcessFacts<'_> {
        ProcessFacts {
            token: [501, 0, 20, 501, 20, 4242, 100_017, 9001],
            parent_token: Some([501, 501, 20, 501, 20, 4000, 100_017, 8000]),
            responsible_token: None,
            ppid: 4000,
            original_ppid: 4000,
            group_id: 4242,
            session_id: 4000,
            executable: OsStr::from_bytes(exe),
            executable_truncated: false,
            signing_id: OsStr::new(""),
            team_id: OsStr::new("ABCDE12345"),
            cdhash: [0; 20],
            codesigning_flags: 0x2000_0001,
            is_platform_binary: false,
            is_es_client: false,
            tty: Some(OsStr::new("/dev/ttys001")),
            start_time: Some(UNIX_EPOCH + Duration::new(1_754_572_895, 877_422_000)),
        }
    }

    #[test]
    fn facts_map_to_a_process() {
        let p = facts(b"/usr/bin/sudo").to_process();
        assert_eq!(p.token.pid, 4242);
        assert_eq!(p.token.pidversion, 9001);
        assert_eq!((p.token.ruid, p.token.euid), (501, 0));
        assert_eq!(p.parent.map(|k| (k.pid, k.pidversion)), Some((4000, 8000)));
        assert_eq!(p.responsible, None);
        assert_eq!(p.executable, "/usr/bin/sudo");
        assert_eq!(p.signing_id, None, "empty signing id means unsigned");
        assert_eq!(p.team_id.as_deref(), Some("ABCDE12345"));
        assert_eq!(p.cdhash, None, "all-zero cdhash means none");
        assert_eq!(p.tty.as_deref(), Some("/dev/ttys001"));
        assert_eq!(p.start_time_ns, Some(1_754_572_895_877_422_000));
        assert_eq!((p.ppid, p.group_id, p.session_id), (4000, 4242, 4000));
    }

    #[test]
    fn non_utf8_paths_and_negative_pids_do_not_fail() {
        let mut f = facts(b"/tmp/\xff\xfeevil");
        f.ppid = -1;
        let p = f.to_process();
        assert_eq!(p.executable, "/tmp/\u{fffd}\u{fffd}evil");
        assert_eq!(p.ppid, 0);
    }

    #[test]
    fn times_before_the_epoch_are_negative() {
        assert_eq!(system_time_ns(UNIX_EPOCH - Duration::from_nanos(5)), -5);
        assert_eq!(
            system_time_ns(UNIX_EPOCH + Duration::from_secs(2)),
            2_000_000_000
        );
    }

    #[test]
    fn args_are_capped() {
        let big = "x".repeat(200 * 1024);
        let args = [OsStr::new("/bin/echo"), OsStr::new(&big), OsStr::new(&big)];
        let (list, truncated) = collect_args(args.into_iter());
        assert_eq!(list.len(), 2);
        assert!(truncated);
        let (list, truncated) = collect_args([OsStr::new("ls")].into_iter());
        assert_eq!((list, truncated), (vec!["ls".to_string()], false));
    }

    #[test]
    fn os_versions() {
        assert_eq!(parse_os_version("15.4.1"), Some((15, 4, 1)));
        assert_eq!(parse_os_version("26.0\0"), Some((26, 0, 0)));
        assert_eq!(parse_os_version("13"), Some((13, 0, 0)));
        assert_eq!(parse_os_version("10.15"), Some((10, 15, 0)));
        assert_eq!(
            parse_os_version("10.14.6"),
            None,
            "endpoint-sec panics below 10.15"
        );
        assert_eq!(parse_os_version("15.x"), None);
        assert_eq!(parse_os_version("1.2.3.4"), None);
        assert_eq!(parse_os_version(""), None);
    }

    fn exit_record(global: u64) -> EsRecord {
        EsRecord {
            header: Header {
                global_seq_num: Some(global),
                ..Header::default()
            },
            process: facts(b"/bin/sh").to_process(),
            event: Event::Exit(Exit { stat: 0 }),
        }
    }

    #[test]
    fn delivery_counts_overflow_gaps_and_other_events() {
        let counters = ClientCounters::default();
        let (tx, rx) = crossbeam_channel::bounded(2);
        let d = Delivery {
            tx: &tx,
            counters: &counters,
        };
        let exit = Some(EventKind::Exit);
        assert!(d.deliver(exit, Some(1), Some(1), || Some(exit_record(1))));
        assert!(d.deliver(exit, Some(2), Some(2), || Some(exit_record(2))));
        // Channel full: dropped and counted, without blocking.
        assert!(!d.deliver(exit, Some(3), Some(3), || Some(exit_record(3))));
        // Kernel skipped 4..=6.
        assert!(!d.deliver(exit, Some(7), Some(7), || Some(exit_record(7))));
        // Another event type: never copied.
        assert!(!d.deliver(None, None, Some(8), || panic!("must not copy")));
        // A message endpoint-sec could not decode.
        assert!(!d.deliver(exit, Some(9), Some(9), || None));
        let s = counters.snapshot();
        assert_eq!(
            s,
            CountersSnapshot {
                received: 6,
                delivered: 2,
                overflow: 2,
                unmapped: 2,
                kernel_dropped: 3,
                seq_resets: 0,
            }
        );
        let got: Vec<u64> = rx
            .try_iter()
            .filter_map(|r| r.header.global_seq_num)
            .collect();
        assert_eq!(got, [1, 2]);
    }

    #[test]
    fn state_round_trips() {
        let s = SharedState::default();
        assert_eq!(s.get(), ClientState::Starting);
        for st in [
            ClientState::WaitingForAccess,
            ClientState::Running,
            ClientState::Stopped,
            ClientState::Failed,
        ] {
            s.set(st);
            assert_eq!(s.get(), st);
        }
    }
}
