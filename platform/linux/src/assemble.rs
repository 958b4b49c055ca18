//! Records in, events out: a pure state machine with no sockets and no clock of its own.
//!
//! Records of one event share `(time, serial)` and arrive in order, but events interleave and the
//! SYSCALL record is not always first. An event in flight ends:
//! - on `EOE` (netlink and the auditd plugin stream send it; audit.log files do not);
//! - on `PROCTITLE`, the kernel's last record before `EOE`, when the stream has no `EOE`
//!   ([`EventEnd`]);
//! - at once, for a record type outside the syscall range 1300–1399 (user messages, daemon records)
//!   unless its serial is already in flight;
//! - after [`AssemblerConfig::timeout_ms`] of *record* time (time advances with the records pushed and
//!   with [`Assembler::advance_to`]), or when more than [`AssemblerConfig::max_in_flight`] events are
//!   open (the oldest is evicted), or on [`Assembler::flush`]. These are emitted with
//!   `complete: false`, except events made only of records that stand alone (CONFIG_CHANGE,
//!   EVENT_LISTENER outside a syscall).
//!
//! An event is an exec when its SYSCALL is execve/execveat for its arch, or when it has an EXECVE
//! record (its SYSCALL may have been lost). Everything else becomes an [`OtherRecord`], so tamper
//! detection can still see CONFIG_CHANGE. Loss is counted from serial gaps ([`crate::gaps`]).

use std::borrow::Cow;
use std::collections::VecDeque;

use crate::arch;
use crate::gaps::{Seen, SerialGaps};
use crate::record::{fields_of, hex_digit, AuditTime, Field, Fields, ParseError, Record};
use crate::types;

/// Which record closes an event (besides timeout, cap and flush).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventEnd {
    /// Only `EOE` (netlink, auditd plugin stream).
    Eoe,
    /// `EOE`, or `PROCTITLE` (audit.log files, which have no `EOE`).
    EoeOrProctitle,
    /// `PROCTITLE` until the first `EOE` is seen, then only `EOE`. A late `EOE` for an event that
    /// already ended is dropped quietly, so this is safe for any text stream.
    Auto,
}

/// Limits and behaviour of an [`Assembler`].
#[derive(Debug, Clone)]
pub struct AssemblerConfig {
    /// Record time after which an open event is emitted as incomplete (auditbeat and auditd: 2 s).
    pub timeout_ms: u64,
    /// Open events beyond this evict the oldest as incomplete.
    pub max_in_flight: usize,
    /// Bytes kept of one argument; the rest is dropped and `argv_truncated` set.
    pub max_arg_bytes: usize,
    /// Bytes kept of all arguments of one event.
    pub max_argv_bytes: usize,
    /// Arguments kept of one event.
    pub max_args: usize,
    /// PATH records kept of one event.
    pub max_paths: usize,
    /// Bytes kept of PROCTITLE (the kernel sends at most 128 decoded bytes).
    pub max_proctitle_bytes: usize,
    /// Whether non-exec events are emitted as [`OtherRecord`] (otherwise only counted).
    pub keep_other: bool,
    /// Raw text kept per non-exec event.
    pub max_other_bytes: usize,
    /// Which record ends an event.
    pub end: EventEnd,
}

impl Default for AssemblerConfig {
    fn default() -> Self {
        AssemblerConfig {
            timeout_ms: 2000,
            max_in_flight: 128,
            max_arg_bytes: 16 * 1024,
            max_argv_bytes: 256 * 1024,
            max_args: 16 * 1024,
            max_paths: 16,
            max_proctitle_bytes: 4096,
            keep_other: true,
            max_other_bytes: 16 * 1024,
            end: EventEnd::Auto,
        }
    }
}

impl AssemblerConfig {
    /// Defaults for a netlink stream: events end on `EOE` only.
    pub fn netlink() -> Self {
        AssemblerConfig {
            end: EventEnd::Eoe,
            ..Self::default()
        }
    }

    /// Defaults for text (audit.log files or the plugin stream): `PROCTITLE` ends events until an
    /// `EOE` shows the stream has them.
    pub fn text() -> Self {
        Self::default()
    }
}

/// An exec's arguments: one buffer, with the end offset of each argument.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Argv {
    bytes: Vec<u8>,
    ends: Vec<u32>,
}

impl Argv {
    /// Build from slices (tests, callers that construct records).
    pub fn from_slices<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<[u8]>,
    {
        let mut argv = Argv::default();
        for a in args {
            argv.bytes.extend_from_slice(a.as_ref());
            argv.ends.push(argv.bytes.len() as u32);
        }
        argv
    }

    /// Number of arguments.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// Whether there are no arguments.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Argument `i`, as bytes.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.bytes.get(start..end)
    }

    /// The arguments in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        (0..self.len()).map(move |i| self.get(i).unwrap_or_default())
    }

    /// Total bytes of all arguments.
    pub fn total_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Copies, one `Vec` per argument.
    pub fn to_vecs(&self) -> Vec<Vec<u8>> {
        self.iter().map(<[u8]>::to_vec).collect()
    }

    fn start_arg(&mut self) {
        self.ends.push(self.bytes.len() as u32);
    }

    fn last_len(&self) -> usize {
        let n = self.ends.len();
        match n {
            0 => 0,
            1 => self.bytes.len(),
            _ => self.bytes.len() - self.ends[n - 2] as usize,
        }
    }

    fn sync_last(&mut self) {
        if let Some(last) = self.ends.last_mut() {
            *last = self.bytes.len() as u32;
        }
    }
}

/// The SYSCALL record of an event, decoded field by field.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyscallInfo {
    /// `arch=`, an `AUDIT_ARCH_*` value (see [`crate::Arch`]).
    pub arch: Option<u32>,
    /// `syscall=`, the number on that arch.
    pub nr: Option<u32>,
    /// `success=yes|no`.
    pub success: Option<bool>,
    /// `exit=`, the return value (negative errno on failure).
    pub exit: Option<i64>,
    /// `a0..a3` (for execveat, `a0` is the dirfd).
    pub args: [Option<u64>; 4],
    /// `items=`, the number of PATH records.
    pub items: Option<u32>,
    /// Init-namespace pid of the task.
    pub pid: Option<u32>,
    /// Init-namespace pid of its parent.
    pub ppid: Option<u32>,
    /// Login uid; `u32::MAX` means unset.
    pub auid: Option<u32>,
    /// Real uid.
    pub uid: Option<u32>,
    /// Effective uid.
    pub euid: Option<u32>,
    /// Saved uid.
    pub suid: Option<u32>,
    /// Filesystem uid.
    pub fsuid: Option<u32>,
    /// Real gid.
    pub gid: Option<u32>,
    /// Effective gid.
    pub egid: Option<u32>,
    /// Saved gid.
    pub sgid: Option<u32>,
    /// Filesystem gid.
    pub fsgid: Option<u32>,
    /// Session id; `u32::MAX` means unset.
    pub ses: Option<u32>,
    /// `tty=` (`pts0`), `None` for `(none)`.
    pub tty: Option<Vec<u8>>,
    /// `comm=`, the task's command name (≤ 15 bytes; the *new* image's after a successful exec).
    pub comm: Option<Vec<u8>>,
    /// `exe=`, the task's executable (the new image's after a successful exec).
    pub exe: Option<Vec<u8>>,
    /// `key=`, the filter key(s) of the matching rule, several joined by 0x01.
    pub key: Option<Vec<u8>>,
}

impl SyscallInfo {
    /// Whether this is execve/execveat for its arch.
    pub fn is_exec(&self) -> bool {
        matches!((self.arch, self.nr), (Some(a), Some(n)) if arch::is_exec(a, n))
    }

    /// The rule keys (`-k a -k b` arrive as one key `a\x01b`).
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.key
            .as_deref()
            .into_iter()
            .flat_map(|k| k.split(|&b| b == 0x01))
    }

    fn apply(&mut self, f: &Field<'_>) -> Result<(), ParseError> {
        let id = |f: &Field<'_>| f.u32_dec();
        match f.key {
            b"arch" => self.arch = f.num(16)?.and_then(|v| u32::try_from(v).ok()),
            b"syscall" => self.nr = id(f)?,
            b"success" => {
                self.success = match f.raw {
                    b"yes" => Some(true),
                    b"no" => Some(false),
                    _ => None,
                }
            }
            b"exit" => self.exit = f.signed()?,
            b"a0" => self.args[0] = f.num(16)?,
            b"a1" => self.args[1] = f.num(16)?,
            b"a2" => self.args[2] = f.num(16)?,
            b"a3" => self.args[3] = f.num(16)?,
            b"items" => self.items = id(f)?,
            b"ppid" => self.ppid = id(f)?,
            b"pid" => self.pid = id(f)?,
            b"auid" => self.auid = id(f)?,
            b"uid" => self.uid = id(f)?,
            b"gid" => self.gid = id(f)?,
            b"euid" => self.euid = id(f)?,
            b"suid" => self.suid = id(f)?,
            b"fsuid" => self.fsuid = id(f)?,
            b"egid" => self.egid = id(f)?,
            b"sgid" => self.sgid = id(f)?,
            b"fsgid" => self.fsgid = id(f)?,
            b"ses" => self.ses = id(f)?,
            b"tty" => self.tty = (!f.is_absent()).then(|| f.raw.to_vec()),
            b"comm" => self.comm = f.string()?.map(Cow::into_owned),
            b"exe" => self.exe = f.string()?.map(Cow::into_owned),
            b"key" => self.key = f.string()?.map(Cow::into_owned),
            _ => {}
        }
        Ok(())
    }
}

/// `nametype=` of a PATH record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameType {
    /// The file looked up (the executable, item 0 of an exec).
    Normal,
    /// A lookup that failed (a failed exec's path).
    Unknown,
    /// The parent directory of a created or deleted name.
    Parent,
    /// A created name.
    Create,
    /// A deleted name.
    Delete,
    /// Anything else.
    Other,
}

/// One PATH record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathItem {
    /// `item=`, its position among the event's PATH records.
    pub item: Option<u32>,
    /// `name=`, the path as passed (may be relative, or empty for fexecve).
    pub name: Option<Vec<u8>>,
    /// `inode=`.
    pub inode: Option<u64>,
    /// `mode=` (octal in the text), file type and permission bits.
    pub mode: Option<u32>,
    /// `ouid=`, the file owner.
    pub ouid: Option<u32>,
    /// `ogid=`, the file group.
    pub ogid: Option<u32>,
    /// `nametype=`.
    pub nametype: Option<NameType>,
}

impl PathItem {
    fn apply(&mut self, f: &Field<'_>) -> Result<(), ParseError> {
        match f.key {
            b"item" => self.item = f.u32_dec()?,
            b"name" => self.name = f.string()?.map(Cow::into_owned),
            b"inode" => self.inode = f.num(10)?,
            b"mode" => self.mode = f.num(8)?.and_then(|m| u32::try_from(m).ok()),
            b"ouid" => self.ouid = f.u32_dec()?,
            b"ogid" => self.ogid = f.u32_dec()?,
            b"nametype" => {
                self.nametype = Some(match f.raw {
                    b"NORMAL" => NameType::Normal,
                    b"UNKNOWN" => NameType::Unknown,
                    b"PARENT" => NameType::Parent,
                    b"CREATE" => NameType::Create,
                    b"DELETE" => NameType::Delete,
                    _ => NameType::Other,
                })
            }
            _ => {}
        }
        Ok(())
    }
}

/// One exec, assembled from all records of its serial.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRecord {
    /// The audit serial (event id within a boot).
    pub serial: u32,
    /// The audit timestamp.
    pub time: AuditTime,
    /// The SYSCALL record (all `None` if it never arrived; see `record_types`).
    pub syscall: SyscallInfo,
    /// `argc=` of the EXECVE record.
    pub argc: Option<u32>,
    /// Arguments, rebuilt from every EXECVE record of the serial, hex decoded.
    pub argv: Argv,
    /// Some argument bytes were dropped by the configured size caps.
    pub argv_truncated: bool,
    /// The arguments match `argc` and every split argument arrived whole.
    pub argv_consistent: bool,
    /// The CWD record.
    pub cwd: Option<Vec<u8>>,
    /// PATH records, in order (item 0 is the file exec'd; a script adds the interpreter).
    pub paths: Vec<PathItem>,
    /// PROCTITLE (the new image's cmdline, NUL-separated, ≤ 128 bytes; process-controlled).
    pub proctitle: Option<Vec<u8>>,
    /// Ended by `EOE` (or `PROCTITLE` on streams without `EOE`), not by timeout, cap or flush.
    pub complete: bool,
    /// Record types seen, each once, in arrival order.
    pub record_types: Vec<u16>,
    /// Fields that could not be decoded (skipped).
    pub bad_fields: u32,
}

impl ExecRecord {
    /// The exec failed (`success=no`; such events have no EXECVE record).
    pub fn failed(&self) -> bool {
        self.syscall.success == Some(false)
    }

    /// Whether a record of this type was part of the event.
    pub fn has(&self, rtype: u16) -> bool {
        self.record_types.contains(&rtype)
    }
}

/// A non-exec record's text, kept so later consumers (tamper detection) can read its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    /// Record type.
    pub rtype: u16,
    /// The `key=value ...` text after `audit(...):`.
    pub text: Vec<u8>,
}

impl RawRecord {
    /// The record's fields, lazily (error offsets are relative to `text`).
    pub fn fields(&self) -> Fields<'_> {
        fields_of(self.rtype, &self.text)
    }
}

/// Any event that is not an exec: other syscalls, CONFIG_CHANGE, EVENT_LISTENER, user messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtherRecord {
    /// The audit serial.
    pub serial: u32,
    /// The audit timestamp.
    pub time: AuditTime,
    /// The SYSCALL record, when the event had one.
    pub syscall: Option<SyscallInfo>,
    /// Texts of the records other than SYSCALL/CWD/PATH/PROCTITLE/EOE, up to a size cap.
    pub records: Vec<RawRecord>,
    /// Ended by `EOE`/`PROCTITLE`, or a record that stands alone; not by timeout, cap or flush.
    pub complete: bool,
    /// Record types seen, each once, in arrival order.
    pub record_types: Vec<u16>,
}

impl OtherRecord {
    /// The first field `key` of the first kept record of type `rtype`.
    pub fn field(&self, rtype: u16, key: &[u8]) -> Option<Field<'_>> {
        self.records
            .iter()
            .filter(|r| r.rtype == rtype)
            .flat_map(|r| r.fields().map_while(Result::ok))
            .find(|f| f.key == key)
    }
}

/// What the assembler emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditEvent {
    /// An execve/execveat (successful or failed).
    Exec(Box<ExecRecord>),
    /// Anything else.
    Other(Box<OtherRecord>),
}

impl AuditEvent {
    /// The event's serial.
    pub fn serial(&self) -> u32 {
        match self {
            AuditEvent::Exec(e) => e.serial,
            AuditEvent::Other(o) => o.serial,
        }
    }

    /// The exec, if this is one.
    pub fn as_exec(&self) -> Option<&ExecRecord> {
        match self {
            AuditEvent::Exec(e) => Some(e),
            AuditEvent::Other(_) => None,
        }
    }
}

/// Counters, all monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AssemblerStats {
    /// Records pushed.
    pub records: u64,
    /// Exec events emitted.
    pub exec_events: u64,
    /// Non-exec events ended (emitted when `keep_other`).
    pub other_events: u64,
    /// Events emitted with `complete: false`.
    pub incomplete: u64,
    /// ...of which because of the timeout.
    pub timed_out: u64,
    /// ...of which evicted by the in-flight cap.
    pub evicted: u64,
    /// Records for a serial that had already been emitted (dropped), including lone `EOE`s.
    pub late_records: u64,
    /// Serials that never arrived (gaps, u32 wrap aware).
    pub lost_serials: u64,
    /// Times the serial sequence restarted (a new boot in a log).
    pub serial_restarts: u64,
    /// Fields that could not be decoded.
    pub bad_fields: u64,
    /// Exec events whose argv hit a size cap.
    pub argv_truncated: u64,
    /// Exec events whose argv does not match `argc` or lost a split piece.
    pub argv_inconsistent: u64,
}

/// One event being assembled.
struct InFlight {
    rec: ExecRecord,
    has_syscall: bool,
    has_execve: bool,
    args: ArgState,
    raw: Vec<RawRecord>,
    raw_bytes: usize,
    deadline_ms: u64,
}

/// Progress through the EXECVE `aN` / `aN_len` + `aN[i]` fields.
#[derive(Default)]
struct ArgState {
    open: Option<OpenArg>,
    /// An argument index or chunk out of sequence, a length mismatch, or bad hex.
    broken: bool,
}

/// An argument announced by `aN_len` whose chunks are still arriving.
struct OpenArg {
    index: u32,
    /// Encoded length announced by `aN_len` (hex digits, or bytes when quoted).
    expected: u64,
    seen: u64,
    next_chunk: u32,
    /// A hex digit left over at a chunk boundary.
    nibble: Option<u8>,
    /// This argument is a duplicate or beyond `max_args`: consume its chunks, keep nothing.
    skip: bool,
}

enum ArgKey {
    Whole(u32),
    Len(u32),
    Chunk(u32, u32),
}

fn parse_arg_key(key: &[u8]) -> Option<ArgKey> {
    let rest = key.strip_prefix(b"a")?;
    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    let index = parse_u32(&rest[..n])?;
    match &rest[n..] {
        b"" => Some(ArgKey::Whole(index)),
        b"_len" => Some(ArgKey::Len(index)),
        [b'[', inner @ .., b']'] => Some(ArgKey::Chunk(index, parse_u32(inner)?)),
        _ => None,
    }
}

fn parse_u32(d: &[u8]) -> Option<u32> {
    if d.is_empty() || d.len() > 10 || !d.iter().all(u8::is_ascii_digit) {
        return None;
    }
    d.iter().try_fold(0u32, |v, &c| {
        v.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

/// Standalone-capable types in the syscall range: alone (no SYSCALL) they are whole events.
fn stands_alone(rtype: u16) -> bool {
    matches!(
        rtype,
        types::CONFIG_CHANGE | types::EVENT_LISTENER | types::FEATURE_CHANGE
    )
}

impl InFlight {
    fn new(serial: u32, time: AuditTime, timeout_ms: u64) -> Self {
        InFlight {
            rec: ExecRecord {
                serial,
                time,
                ..ExecRecord::default()
            },
            has_syscall: false,
            has_execve: false,
            args: ArgState::default(),
            raw: Vec::new(),
            raw_bytes: 0,
            deadline_ms: time.as_millis().saturating_add(timeout_ms),
        }
    }

    fn add(&mut self, rec: &Record<'_>, cfg: &AssemblerConfig) {
        if !self.rec.record_types.contains(&rec.rtype) {
            self.rec.record_types.push(rec.rtype);
        }
        let mut bad = 0u32;
        match rec.rtype {
            types::SYSCALL => {
                self.has_syscall = true;
                for f in rec.fields() {
                    match f {
                        Ok(f) => bad += u32::from(self.rec.syscall.apply(&f).is_err()),
                        Err(_) => bad += 1,
                    }
                }
            }
            types::EXECVE => {
                self.has_execve = true;
                for f in rec.fields() {
                    match f {
                        Ok(f) => bad += u32::from(self.execve_field(&f, cfg).is_err()),
                        Err(_) => bad += 1,
                    }
                }
            }
            types::CWD => {
                for f in rec.fields() {
                    match f {
                        Ok(f) if f.key == b"cwd" => match f.string() {
                            Ok(s) => self.rec.cwd = s.map(Cow::into_owned),
                            Err(_) => bad += 1,
                        },
                        Ok(_) => {}
                        Err(_) => bad += 1,
                    }
                }
            }
            types::PATH => {
                if self.rec.paths.len() < cfg.max_paths {
                    let mut item = PathItem::default();
                    for f in rec.fields() {
                        match f {
                            Ok(f) => bad += u32::from(item.apply(&f).is_err()),
                            Err(_) => bad += 1,
                        }
                    }
                    self.rec.paths.push(item);
                }
            }
            types::PROCTITLE => {
                for f in rec.fields() {
                    match f {
                        Ok(f) if f.key == b"proctitle" => match f.string() {
                            Ok(Some(s)) => {
                                let mut title = s.into_owned();
                                title.truncate(cfg.max_proctitle_bytes);
                                self.rec.proctitle = Some(title);
                            }
                            Ok(None) => {}
                            Err(_) => bad += 1,
                        },
                        Ok(_) => {}
                        Err(_) => bad += 1,
                    }
                }
            }
            types::EOE | types::BPRM_FCAPS => {}
            _ => {
                let text = rec.fields_text();
                if cfg.keep_other && self.raw_bytes + text.len() <= cfg.max_other_bytes {
                    self.raw_bytes += text.len();
                    self.raw.push(RawRecord {
                        rtype: rec.rtype,
                        text: text.to_vec(),
                    });
                }
            }
        }
        self.rec.bad_fields = self.rec.bad_fields.saturating_add(bad);
    }

    fn execve_field(&mut self, f: &Field<'_>, cfg: &AssemblerConfig) -> Result<(), ParseError> {
        if f.key == b"argc" {
            self.rec.argc = f.u32_dec()?;
            return Ok(());
        }
        let Some(key) = parse_arg_key(f.key) else {
            return Ok(());
        };
        match key {
            ArgKey::Whole(i) => {
                self.close_open_arg();
                if self.begin_arg(i, cfg) {
                    self.append_value(f, cfg, None)?;
                }
            }
            ArgKey::Len(i) => {
                self.close_open_arg();
                let expected = f.num(10)?.unwrap_or(0);
                let keep = self.begin_arg(i, cfg);
                self.args.open = Some(OpenArg {
                    index: i,
                    expected,
                    seen: 0,
                    next_chunk: 0,
                    nibble: None,
                    skip: !keep,
                });
            }
            ArgKey::Chunk(i, c) => {
                let Some(mut open) = self.args.open.take() else {
                    self.args.broken = true;
                    return Ok(());
                };
                if open.index != i || open.next_chunk != c {
                    self.args.broken = true;
                    self.args.open = Some(open);
                    return Ok(());
                }
                open.next_chunk += 1;
                let encoded = f.quoted().unwrap_or(f.raw).len() as u64;
                open.seen = open.seen.saturating_add(encoded);
                let result = if open.skip {
                    Ok(())
                } else {
                    self.append_value(f, cfg, Some(&mut open.nibble))
                };
                self.args.open = Some(open);
                result?;
            }
        }
        Ok(())
    }

    /// Start argument `index`; false when it must be skipped (duplicate, or over `max_args`).
    fn begin_arg(&mut self, index: u32, cfg: &AssemblerConfig) -> bool {
        let argv = &mut self.rec.argv;
        let have = argv.len();
        let index = index as usize;
        if index < have {
            self.args.broken = true;
            return false;
        }
        if index > have {
            // An EXECVE record went missing: keep positions, mark the gap.
            self.args.broken = true;
        }
        while argv.len() <= index {
            if argv.len() >= cfg.max_args {
                self.rec.argv_truncated = true;
                return false;
            }
            argv.start_arg();
        }
        true
    }

    fn close_open_arg(&mut self) {
        if let Some(open) = self.args.open.take() {
            if open.seen != open.expected || open.nibble.is_some() {
                self.args.broken = true;
            }
        }
    }

    /// Append a quoted or hex value to the last argument, within the size caps.
    fn append_value(
        &mut self,
        f: &Field<'_>,
        cfg: &AssemblerConfig,
        nibble: Option<&mut Option<u8>>,
    ) -> Result<(), ParseError> {
        let argv = &mut self.rec.argv;
        let room_arg = cfg.max_arg_bytes.saturating_sub(argv.last_len());
        let room_all = cfg.max_argv_bytes.saturating_sub(argv.total_bytes());
        let mut room = room_arg.min(room_all);
        let mut truncated = false;
        if let Some(inner) = f.quoted() {
            let take = inner.len().min(room);
            truncated = take < inner.len();
            argv.bytes.extend_from_slice(&inner[..take]);
        } else {
            let mut carry = None;
            let nibble = match nibble {
                Some(n) => n,
                None => &mut carry,
            };
            let bad_hex = |i: usize| ParseError {
                offset: f.offset + i,
                kind: crate::record::ParseErrorKind::BadHex,
            };
            let mut digits = f.raw;
            let mut at = 0;
            // A digit left over from the previous chunk pairs with this chunk's first.
            if let (Some(hi), Some(&d)) = (*nibble, digits.first()) {
                let Some(lo) = hex_digit(d) else {
                    argv.sync_last();
                    self.args.broken = true;
                    return Err(bad_hex(0));
                };
                *nibble = None;
                if room > 0 {
                    argv.bytes.push(hi << 4 | lo);
                    room -= 1;
                } else {
                    truncated = true;
                }
                digits = &digits[1..];
                at = 1;
            }
            let pairs = digits.len() / 2;
            let keep = pairs.min(room);
            let start = argv.bytes.len();
            argv.bytes.resize(start + keep, 0);
            let mut checked = crate::record::decode_hex_pairs(digits, &mut argv.bytes[start..]);
            if checked.is_ok() && keep < pairs {
                // Over the cap: the rest is dropped, but must still be hex.
                truncated = true;
                checked = match digits[2 * keep..2 * pairs]
                    .iter()
                    .position(|&d| hex_digit(d).is_none())
                {
                    Some(i) => Err(2 * keep + i),
                    None => Ok(()),
                };
            }
            if checked.is_ok() && digits.len() % 2 == 1 {
                let last = digits.len() - 1;
                match hex_digit(digits[last]) {
                    Some(v) => *nibble = Some(v),
                    None => checked = Err(last),
                }
            }
            if let Err(i) = checked {
                argv.bytes.truncate(start + (i / 2).min(keep));
                argv.sync_last();
                self.args.broken = true;
                return Err(bad_hex(at + i));
            }
            if carry.is_some() {
                self.args.broken = true;
            }
        }
        argv.sync_last();
        if truncated {
            self.rec.argv_truncated = true;
        }
        Ok(())
    }

    fn into_event(
        mut self,
        ended: bool,
        cfg: &AssemblerConfig,
        stats: &mut AssemblerStats,
    ) -> Option<AuditEvent> {
        self.close_open_arg();
        stats.bad_fields += u64::from(self.rec.bad_fields);
        let is_exec = (self.has_syscall && self.rec.syscall.is_exec()) || self.has_execve;
        let complete =
            ended || (!self.has_syscall && self.rec.record_types.iter().all(|&t| stands_alone(t)));
        if !complete {
            stats.incomplete += 1;
        }
        if is_exec {
            let mut rec = self.rec;
            rec.complete = complete;
            rec.argv_consistent =
                !self.args.broken && rec.argc.is_some_and(|n| n as usize == rec.argv.len());
            stats.exec_events += 1;
            stats.argv_truncated += u64::from(rec.argv_truncated);
            stats.argv_inconsistent += u64::from(!rec.argv_consistent && self.has_execve);
            Some(AuditEvent::Exec(Box::new(rec)))
        } else {
            stats.other_events += 1;
            cfg.keep_other.then(|| {
                AuditEvent::Other(Box::new(OtherRecord {
                    serial: self.rec.serial,
                    time: self.rec.time,
                    syscall: self.has_syscall.then_some(self.rec.syscall),
                    records: self.raw,
                    complete,
                    record_types: self.rec.record_types,
                }))
            })
        }
    }
}

/// Assembles records into events. Feed it [`Record`]s in arrival order; it calls `emit` for each
/// finished event.
pub struct Assembler {
    config: AssemblerConfig,
    in_flight: VecDeque<InFlight>,
    /// Earliest deadline among open events (may be stale-low; only ever causes an extra scan).
    next_deadline: u64,
    gaps: SerialGaps,
    now_ms: u64,
    saw_eoe: bool,
    stats: AssemblerStats,
}

impl Assembler {
    /// A new assembler.
    pub fn new(config: AssemblerConfig) -> Self {
        let config = AssemblerConfig {
            max_in_flight: config.max_in_flight.max(1),
            max_argv_bytes: config.max_argv_bytes.min(u32::MAX as usize),
            ..config
        };
        Assembler {
            config,
            in_flight: VecDeque::new(),
            next_deadline: u64::MAX,
            gaps: SerialGaps::new(),
            now_ms: 0,
            saw_eoe: false,
            stats: AssemblerStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> AssemblerStats {
        AssemblerStats {
            lost_serials: self.gaps.lost(),
            serial_restarts: self.gaps.resets(),
            ..self.stats
        }
    }

    /// Events currently open.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The newest record time seen (milliseconds since the epoch).
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Add one record.
    pub fn push(&mut self, rec: &Record<'_>, emit: &mut impl FnMut(AuditEvent)) {
        self.stats.records += 1;
        let t = rec.time.as_millis();
        let newer = t > self.now_ms;
        if newer {
            self.now_ms = t;
            self.expire(emit);
        }
        if rec.rtype == types::EOE {
            self.saw_eoe = true;
        }
        if let Some(i) = self
            .in_flight
            .iter()
            .rposition(|e| e.rec.serial == rec.serial && e.rec.time == rec.time)
        {
            if rec.rtype == types::EOE {
                if let Some(mut ev) = self.in_flight.remove(i) {
                    ev.rec.record_types.push(types::EOE);
                    self.finish(ev, true, emit);
                }
                return;
            }
            let Some(ev) = self.in_flight.get_mut(i) else {
                return;
            };
            ev.add(rec, &self.config);
            if rec.rtype == types::PROCTITLE && self.proctitle_ends() {
                if let Some(ev) = self.in_flight.remove(i) {
                    self.finish(ev, true, emit);
                }
            }
            return;
        }
        if rec.rtype == types::EOE {
            // A lone EOE: its event already ended (by PROCTITLE, timeout or cap).
            self.stats.late_records += 1;
            return;
        }
        if self.gaps.observe(rec.serial) == Seen::Late {
            if newer {
                // Behind in serial but ahead in time: the serial counter restarted (reboot).
                self.gaps.restart(rec.serial);
            } else {
                self.stats.late_records += 1;
                return;
            }
        }
        let mut ev = InFlight::new(rec.serial, rec.time, self.config.timeout_ms);
        ev.add(rec, &self.config);
        if !types::may_join_syscall_event(rec.rtype)
            || (rec.rtype == types::PROCTITLE && self.proctitle_ends())
        {
            self.finish(ev, true, emit);
            return;
        }
        if self.in_flight.len() >= self.config.max_in_flight {
            if let Some(old) = self.in_flight.pop_front() {
                self.stats.evicted += 1;
                self.finish(old, false, emit);
            }
        }
        self.next_deadline = self.next_deadline.min(ev.deadline_ms);
        self.in_flight.push_back(ev);
    }

    /// Move record time forward without a record (e.g. from the wall clock while the socket is
    /// idle), emitting events whose timeout passed.
    pub fn advance_to(&mut self, time_ms: u64, emit: &mut impl FnMut(AuditEvent)) {
        if time_ms > self.now_ms {
            self.now_ms = time_ms;
            self.expire(emit);
        }
    }

    /// End of input: emit every open event (incomplete), in serial order, and count the serial
    /// gaps that remain.
    pub fn flush(&mut self, emit: &mut impl FnMut(AuditEvent)) {
        let mut open: Vec<InFlight> = self.in_flight.drain(..).collect();
        open.sort_by_key(|e| e.rec.serial);
        for ev in open {
            self.finish(ev, false, emit);
        }
        self.next_deadline = u64::MAX;
        self.gaps.finish();
    }

    fn proctitle_ends(&self) -> bool {
        match self.config.end {
            EventEnd::Eoe => false,
            EventEnd::EoeOrProctitle => true,
            EventEnd::Auto => !self.saw_eoe,
        }
    }

    fn expire(&mut self, emit: &mut impl FnMut(AuditEvent)) {
        if self.now_ms < self.next_deadline {
            return;
        }
        let now = self.now_ms;
        let mut next = u64::MAX;
        let mut settle = None::<u32>;
        let mut i = 0;
        while i < self.in_flight.len() {
            let deadline = self.in_flight[i].deadline_ms;
            if deadline <= now {
                if let Some(ev) = self.in_flight.remove(i) {
                    let s = ev.rec.serial;
                    settle = Some(match settle {
                        Some(prev) if prev.wrapping_sub(s) < 1 << 31 => prev,
                        _ => s,
                    });
                    self.stats.timed_out += 1;
                    self.finish(ev, false, emit);
                }
            } else {
                next = next.min(deadline);
                i += 1;
            }
        }
        self.next_deadline = next;
        if let Some(s) = settle {
            // Anything older than an event that timed out had the same time to arrive.
            self.gaps.settle_below(s);
        }
    }

    fn finish(&mut self, ev: InFlight, ended: bool, emit: &mut impl FnMut(AuditEvent)) {
        if let Some(out) = ev.into_event(ended, &self.config, &mut self.stats) {
            emit(out);
        }
    }
}

#[cfg(test)]
mod tests;
