//! Kernel audit control on its own socket: status (`AUDIT_GET`/`AUDIT_SET`), the sensor's own exec
//! rules (`struct audit_rule_data`), and a guard that puts back exactly what it changed.
//!
//! Rules are global and shared with auditd and other tools. This module never flushes rules,
//! never touches `failure` (a `-f 2` kernel panics on loss), deletes only rules it added (by their
//! exact bytes), and refuses to act on a locked configuration (`enabled == 2`).

use std::fmt::Write as _;

use crate::arch::Arch;
use crate::error::Error;
use crate::netlink::{
    errno, NlSocket, Reply, AUDIT_ADD_RULE, AUDIT_DEL_RULE, AUDIT_GET, AUDIT_LIST_RULES, AUDIT_SET,
    NLM_F_ACK, NLM_F_REQUEST,
};

/// `struct audit_status` mask bits.
pub mod mask {
    /// `enabled`.
    pub const ENABLED: u32 = 0x01;
    /// `failure` (never set by this crate).
    pub const FAILURE: u32 = 0x02;
    /// `pid`.
    pub const PID: u32 = 0x04;
    /// `rate_limit`.
    pub const RATE_LIMIT: u32 = 0x08;
    /// `backlog_limit`.
    pub const BACKLOG_LIMIT: u32 = 0x10;
    /// `backlog_wait_time`.
    pub const BACKLOG_WAIT_TIME: u32 = 0x20;
    /// `lost` (alone: read and reset).
    pub const LOST: u32 = 0x40;
}

/// Bytes of `struct audit_status` on current kernels (11 × u32).
pub const STATUS_LEN: usize = 44;

/// `struct audit_status`, as `AUDIT_GET` returns it (zero-filled when the kernel sends fewer bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AuditStatus {
    /// Which fields a SET applies.
    pub mask: u32,
    /// 0 off, 1 on, 2 locked.
    pub enabled: u32,
    /// 0 silent, 1 printk, 2 panic on loss.
    pub failure: u32,
    /// The registered audit daemon's pid (0: none).
    pub pid: u32,
    /// Records per second before dropping (0: no limit).
    pub rate_limit: u32,
    /// Records queued in the kernel before waiting or dropping.
    pub backlog_limit: u32,
    /// Records dropped since boot (or since the last reset).
    pub lost: u32,
    /// Records queued now.
    pub backlog: u32,
    /// Features this kernel supports (was `version`).
    pub feature_bitmap: u32,
    /// Jiffies a task waits when the backlog is full.
    pub backlog_wait_time: u32,
    /// Jiffies tasks spent waiting in total.
    pub backlog_wait_time_actual: u32,
}

impl AuditStatus {
    /// Parse, zero-filling a short struct (older kernels send fewer fields).
    pub fn from_bytes(b: &[u8]) -> AuditStatus {
        let mut w = [0u32; 11];
        for (i, chunk) in b.chunks_exact(4).take(11).enumerate() {
            w[i] = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        AuditStatus {
            mask: w[0],
            enabled: w[1],
            failure: w[2],
            pid: w[3],
            rate_limit: w[4],
            backlog_limit: w[5],
            lost: w[6],
            backlog: w[7],
            feature_bitmap: w[8],
            backlog_wait_time: w[9],
            backlog_wait_time_actual: w[10],
        }
    }

    /// The full 44-byte struct (shorter SET payloads are refused for some fields).
    pub fn to_bytes(&self) -> [u8; STATUS_LEN] {
        let w = [
            self.mask,
            self.enabled,
            self.failure,
            self.pid,
            self.rate_limit,
            self.backlog_limit,
            self.lost,
            self.backlog,
            self.feature_bitmap,
            self.backlog_wait_time,
            self.backlog_wait_time_actual,
        ];
        let mut out = [0u8; STATUS_LEN];
        for (i, v) in w.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&v.to_ne_bytes());
        }
        out
    }
}

/// An `AUDIT_SET`: the fields to change and their values. There is deliberately no setter for
/// `failure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusChange {
    status: AuditStatus,
}

impl StatusChange {
    /// Set `enabled` (0 or 1; 2 locks until reboot and is refused by [`AuditConfigGuard`]).
    pub fn enabled(mut self, v: u32) -> Self {
        self.status.mask |= mask::ENABLED;
        self.status.enabled = v;
        self
    }

    /// Set the audit daemon pid (self to register, 0 to release).
    pub fn pid(mut self, v: u32) -> Self {
        self.status.mask |= mask::PID;
        self.status.pid = v;
        self
    }

    /// Set `rate_limit`.
    pub fn rate_limit(mut self, v: u32) -> Self {
        self.status.mask |= mask::RATE_LIMIT;
        self.status.rate_limit = v;
        self
    }

    /// Set `backlog_limit`.
    pub fn backlog_limit(mut self, v: u32) -> Self {
        self.status.mask |= mask::BACKLOG_LIMIT;
        self.status.backlog_limit = v;
        self
    }

    /// Set `backlog_wait_time` (jiffies; 0 drops instead of stalling tasks).
    pub fn backlog_wait_time(mut self, v: u32) -> Self {
        self.status.mask |= mask::BACKLOG_WAIT_TIME;
        self.status.backlog_wait_time = v;
        self
    }

    /// The mask of fields this change sets.
    pub fn mask(&self) -> u32 {
        self.status.mask
    }

    /// The payload sent.
    pub fn to_bytes(&self) -> [u8; STATUS_LEN] {
        self.status.to_bytes()
    }
}

pub(crate) fn get_status(
    nl: &mut NlSocket,
    on_record: &mut dyn FnMut(u16, &[u8]),
) -> Result<AuditStatus, Error> {
    let mut status = None;
    nl.request(
        "AUDIT_GET",
        AUDIT_GET,
        NLM_F_REQUEST,
        &[],
        &mut |reply| match reply {
            Reply::Data(AUDIT_GET, payload) => {
                status = Some(AuditStatus::from_bytes(payload));
                Ok(true)
            }
            Reply::Ack(code) if code < 0 => Err(kernel_error("AUDIT_GET", code)),
            _ => Ok(false),
        },
        on_record,
    )?;
    status.ok_or(Error::Protocol {
        request: "AUDIT_GET",
        detail: "no status in the reply".into(),
    })
}

/// Send an `AUDIT_SET`; returns the ack's value (0, or the old `lost` for a lost reset).
pub(crate) fn set_status(
    nl: &mut NlSocket,
    change: &StatusChange,
    on_record: &mut dyn FnMut(u16, &[u8]),
) -> Result<i32, Error> {
    ack_request(nl, "AUDIT_SET", AUDIT_SET, &change.to_bytes(), on_record)
}

fn ack_request(
    nl: &mut NlSocket,
    name: &'static str,
    ty: u16,
    payload: &[u8],
    on_record: &mut dyn FnMut(u16, &[u8]),
) -> Result<i32, Error> {
    let mut value = 0;
    nl.request(
        name,
        ty,
        NLM_F_REQUEST | NLM_F_ACK,
        payload,
        &mut |reply| match reply {
            Reply::Ack(code) if code < 0 => Err(kernel_error(name, code)),
            Reply::Ack(code) => {
                value = code;
                Ok(true)
            }
            _ => Ok(false),
        },
        on_record,
    )?;
    Ok(value)
}

fn kernel_error(request: &'static str, code: i32) -> Error {
    let errno = errno(code);
    if errno.raw_os_error() == Some(libc::EPERM) {
        return Error::Permission {
            what: request,
            needs: "CAP_AUDIT_CONTROL in the initial user and pid namespaces, and an unlocked configuration",
            errno,
        };
    }
    Error::Kernel { request, errno }
}

fn ignore_records(_: u16, _: &[u8]) {}

/// The control socket: status and rules. Not the socket records arrive on.
pub struct Control {
    nl: NlSocket,
}

impl Control {
    /// Open a control socket.
    pub fn open() -> Result<Control, Error> {
        Ok(Control {
            nl: NlSocket::open(0)?,
        })
    }

    /// `AUDIT_GET`.
    pub fn status(&mut self) -> Result<AuditStatus, Error> {
        get_status(&mut self.nl, &mut ignore_records)
    }

    /// `AUDIT_SET` of the fields in `change`, refused if the configuration is locked.
    pub fn set(&mut self, change: &StatusChange) -> Result<(), Error> {
        if self.status()?.enabled == 2 {
            return Err(Error::Locked);
        }
        set_status(&mut self.nl, change, &mut ignore_records).map(|_| ())
    }

    /// Read and reset the kernel's `lost` counter (an `AUDIT_SET` whose mask is exactly `LOST`).
    /// Other tools watching `lost` will see it drop; prefer [`LostCounter`] deltas.
    pub fn reset_lost(&mut self) -> Result<u32, Error> {
        let change = StatusChange {
            status: AuditStatus {
                mask: mask::LOST,
                ..AuditStatus::default()
            },
        };
        let v = set_status(&mut self.nl, &change, &mut ignore_records)?;
        Ok(u32::try_from(v).unwrap_or(0))
    }

    /// `AUDIT_ADD_RULE`. A rule that already exists gives `Error::Kernel` with `EEXIST`.
    pub fn add_rule(&mut self, rule: &AuditRule) -> Result<(), Error> {
        ack_request(
            &mut self.nl,
            "AUDIT_ADD_RULE",
            AUDIT_ADD_RULE,
            &rule.encode(),
            &mut ignore_records,
        )
        .map(|_| ())
    }

    /// `AUDIT_DEL_RULE` of exactly this rule (the kernel compares every field, mask and string).
    pub fn delete_rule(&mut self, rule: &AuditRule) -> Result<(), Error> {
        ack_request(
            &mut self.nl,
            "AUDIT_DEL_RULE",
            AUDIT_DEL_RULE,
            &rule.encode(),
            &mut ignore_records,
        )
        .map(|_| ())
    }

    /// `AUDIT_LIST_RULES`: every loaded syscall-filter rule, in kernel order.
    pub fn list_rules(&mut self) -> Result<Vec<AuditRule>, Error> {
        let mut rules = Vec::new();
        let mut bad = None;
        self.nl.request(
            "AUDIT_LIST_RULES",
            AUDIT_LIST_RULES,
            NLM_F_REQUEST,
            &[],
            &mut |reply| match reply {
                Reply::Data(AUDIT_LIST_RULES, payload) => {
                    match AuditRule::decode(payload) {
                        Ok(r) => rules.push(r),
                        Err(e) => bad = Some(e),
                    }
                    Ok(false)
                }
                Reply::Done => Ok(true),
                Reply::Ack(code) if code < 0 => Err(kernel_error("AUDIT_LIST_RULES", code)),
                _ => Ok(false),
            },
            &mut ignore_records,
        )?;
        match bad {
            Some(detail) => Err(Error::Protocol {
                request: "AUDIT_LIST_RULES",
                detail,
            }),
            None => Ok(rules),
        }
    }

    /// Loaded rules carrying `key` (alone or among several keys).
    pub fn rules_with_key(&mut self, key: &[u8]) -> Result<Vec<AuditRule>, Error> {
        Ok(self
            .list_rules()?
            .into_iter()
            .filter(|r| r.keys().any(|k| k == key))
            .collect())
    }
}

/// Turns successive `lost` readings into deltas, noticing when another tool reset the counter.
#[derive(Debug, Clone, Copy, Default)]
pub struct LostCounter {
    last: Option<u32>,
    total: u64,
    resets: u64,
}

impl LostCounter {
    /// Feed a status; returns how many records were lost since the previous one. The first call
    /// returns 0 (losses before we started are not ours).
    pub fn update(&mut self, status: &AuditStatus) -> u64 {
        let now = status.lost;
        let delta = match self.last {
            None => 0,
            Some(prev) if now >= prev => u64::from(now - prev),
            Some(_) => {
                // Reset behind our back (mask LOST): at least `now` were lost since.
                self.resets += 1;
                u64::from(now)
            }
        };
        self.last = Some(now);
        self.total += delta;
        delta
    }

    /// Lost records counted since the first update.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Resets noticed.
    pub fn resets(&self) -> u64 {
        self.resets
    }
}

/// Rule list: `AUDIT_FILTER_EXIT` (`-a ...,exit`).
pub const AUDIT_FILTER_EXIT: u32 = 0x04;
/// Flag ORed into the list to prepend (`-A`).
pub const AUDIT_FILTER_PREPEND: u32 = 0x10;
/// Action `always`.
pub const AUDIT_ALWAYS: u32 = 2;
/// Action `never`.
pub const AUDIT_NEVER: u32 = 0;
/// Field `arch`.
pub const AUDIT_ARCH: u32 = 11;
/// Field `key` (a string in `buf`; its value is the string length).
pub const AUDIT_FILTERKEY: u32 = 210;
/// Operator `=`.
pub const AUDIT_EQUAL: u32 = 0x4000_0000;
/// Operator `!=`.
pub const AUDIT_NOT_EQUAL: u32 = 0x3000_0000;

const AUDIT_MAX_FIELDS: usize = 64;
const AUDIT_BITMASK_SIZE: usize = 64;
/// Bytes before `buf` in `struct audit_rule_data`.
pub const RULE_FIXED_LEN: usize = 4 * (3 + AUDIT_BITMASK_SIZE + 3 * AUDIT_MAX_FIELDS + 1);
/// The kernel's limit on a key (`AUDIT_MAX_KEY_LEN`).
pub const AUDIT_MAX_KEY_LEN: usize = 256;

/// One `(field, op, value)` triple of a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleField {
    /// `AUDIT_*` field number.
    pub field: u32,
    /// Operator (`AUDIT_EQUAL`...).
    pub op: u32,
    /// The value, or for string fields the string's length.
    pub value: u32,
}

/// Whether a rule field's value is a string stored in `buf`.
fn is_string_field(field: u32) -> bool {
    // SUBJ_USER..SUBJ_CLR, OBJ_USER..OBJ_LEV_HIGH, WATCH, DIR, EXE, FILTERKEY.
    matches!(field, 13..=17 | 19..=23 | 105 | 107 | 112 | AUDIT_FILTERKEY)
}

/// `struct audit_rule_data`, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRule {
    /// The list (`AUDIT_FILTER_EXIT`), possibly with `AUDIT_FILTER_PREPEND`.
    pub flags: u32,
    /// `AUDIT_ALWAYS` or `AUDIT_NEVER`.
    pub action: u32,
    /// Syscall bitmap: bit `nr % 32` of word `nr / 32`.
    pub mask: [u32; AUDIT_BITMASK_SIZE],
    /// Field triples, in order.
    pub fields: Vec<RuleField>,
    /// String values of string fields, concatenated in field order, no NULs.
    pub buf: Vec<u8>,
}

impl AuditRule {
    /// `-a always,exit -F arch=<abi> -S execve,execveat -k <key>`.
    pub fn exec(arch: Arch, key: &[u8]) -> AuditRule {
        let mut rule = AuditRule {
            flags: AUDIT_FILTER_EXIT,
            action: AUDIT_ALWAYS,
            mask: [0; AUDIT_BITMASK_SIZE],
            fields: vec![RuleField {
                field: AUDIT_ARCH,
                op: AUDIT_EQUAL,
                value: arch.audit_value(),
            }],
            buf: Vec::new(),
        };
        rule.add_syscall(arch.execve());
        rule.add_syscall(arch.execveat());
        rule.fields.push(RuleField {
            field: AUDIT_FILTERKEY,
            op: AUDIT_EQUAL,
            value: key.len() as u32,
        });
        rule.buf.extend_from_slice(key);
        rule
    }

    /// The exec rules for a host of architecture `host`: the native ABI and its 32-bit compat ABI.
    pub fn exec_rules(host: Arch, key: &[u8]) -> [AuditRule; 2] {
        host.host_abis().map(|abi| AuditRule::exec(abi, key))
    }

    /// Set the bit for syscall `nr`.
    pub fn add_syscall(&mut self, nr: u32) {
        if let Some(w) = self.mask.get_mut((nr / 32) as usize) {
            *w |= 1 << (nr % 32);
        }
    }

    /// Syscall numbers whose bit is set.
    pub fn syscalls(&self) -> Vec<u32> {
        (0..(AUDIT_BITMASK_SIZE as u32 * 32))
            .filter(|nr| self.mask[(nr / 32) as usize] & (1 << (nr % 32)) != 0)
            .collect()
    }

    /// The `arch=` field's value, if the rule has one.
    pub fn arch(&self) -> Option<u32> {
        self.fields
            .iter()
            .find(|f| f.field == AUDIT_ARCH && f.op == AUDIT_EQUAL)
            .map(|f| f.value)
    }

    /// The raw key string (several keys are joined by 0x01).
    pub fn key(&self) -> Option<&[u8]> {
        self.strings()
            .find(|(f, _)| *f == AUDIT_FILTERKEY)
            .map(|(_, s)| s)
    }

    /// Each key of the rule.
    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.key().into_iter().flat_map(|k| k.split(|&b| b == 0x01))
    }

    /// `(field, string)` for each string field, in order.
    pub fn strings(&self) -> impl Iterator<Item = (u32, &[u8])> {
        let mut at = 0usize;
        self.fields
            .iter()
            .filter(|f| is_string_field(f.field))
            .map(move |f| {
                let start = at.min(self.buf.len());
                let end = at.saturating_add(f.value as usize).min(self.buf.len());
                at = end;
                (f.field, &self.buf[start..end])
            })
    }

    /// The bytes of `struct audit_rule_data` (fixed 1040 bytes, then `buf`).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(RULE_FIXED_LEN + self.buf.len());
        let mut put = |v: u32| out.extend_from_slice(&v.to_ne_bytes());
        put(self.flags);
        put(self.action);
        put(self.fields.len().min(AUDIT_MAX_FIELDS) as u32);
        for w in self.mask {
            put(w);
        }
        for pick in [
            |f: &RuleField| f.field,
            |f: &RuleField| f.value,
            |f: &RuleField| f.op,
        ] {
            for i in 0..AUDIT_MAX_FIELDS {
                put(self.fields.get(i).map(pick).unwrap_or(0));
            }
        }
        put(self.buf.len() as u32);
        out.extend_from_slice(&self.buf);
        out
    }

    /// Parse `struct audit_rule_data` (an `AUDIT_LIST_RULES` reply).
    pub fn decode(b: &[u8]) -> Result<AuditRule, String> {
        if b.len() < RULE_FIXED_LEN {
            return Err(format!(
                "rule of {} bytes, shorter than the {RULE_FIXED_LEN}-byte fixed part",
                b.len()
            ));
        }
        let word =
            |i: usize| u32::from_ne_bytes([b[i * 4], b[i * 4 + 1], b[i * 4 + 2], b[i * 4 + 3]]);
        let field_count = word(2) as usize;
        if field_count > AUDIT_MAX_FIELDS {
            return Err(format!("field_count {field_count} > {AUDIT_MAX_FIELDS}"));
        }
        let mut mask = [0u32; AUDIT_BITMASK_SIZE];
        for (i, w) in mask.iter_mut().enumerate() {
            *w = word(3 + i);
        }
        let fields_at = 3 + AUDIT_BITMASK_SIZE;
        let values_at = fields_at + AUDIT_MAX_FIELDS;
        let ops_at = values_at + AUDIT_MAX_FIELDS;
        let fields: Vec<RuleField> = (0..field_count)
            .map(|i| RuleField {
                field: word(fields_at + i),
                value: word(values_at + i),
                op: word(ops_at + i),
            })
            .collect();
        let buflen = word(ops_at + AUDIT_MAX_FIELDS) as usize;
        let buf = b
            .get(RULE_FIXED_LEN..RULE_FIXED_LEN.saturating_add(buflen))
            .ok_or_else(|| format!("buflen {buflen} beyond the {}-byte message", b.len()))?
            .to_vec();
        let strings: usize = fields
            .iter()
            .filter(|f| is_string_field(f.field))
            .map(|f| f.value as usize)
            .sum();
        if strings != buflen {
            return Err(format!(
                "string lengths add up to {strings}, buflen is {buflen}"
            ));
        }
        Ok(AuditRule {
            flags: word(0),
            action: word(1),
            mask,
            fields,
            buf,
        })
    }

    /// The equivalent `auditctl` line, e.g.
    /// `-a always,exit -F arch=b64 -S execve,execveat -k execsentry`.
    pub fn to_auditctl(&self) -> String {
        let mut s = String::new();
        let add = if self.flags & AUDIT_FILTER_PREPEND != 0 {
            "-A"
        } else {
            "-a"
        };
        let action = if self.action == AUDIT_ALWAYS {
            "always"
        } else {
            "never"
        };
        let list = match self.flags & !AUDIT_FILTER_PREPEND {
            0 => "user",
            1 => "task",
            AUDIT_FILTER_EXIT => "exit",
            5 => "exclude",
            7 => "filesystem",
            _ => "unknown",
        };
        let _ = write!(s, "{add} {action},{list}");
        let arch = self.arch().and_then(Arch::from_audit_value);
        for f in &self.fields {
            if is_string_field(f.field) {
                continue;
            }
            let op = match f.op {
                AUDIT_EQUAL => "=",
                AUDIT_NOT_EQUAL => "!=",
                0x1000_0000 => "<",
                0x2000_0000 => ">",
                0x5000_0000 => "<=",
                0x6000_0000 => ">=",
                0x0800_0000 => "&",
                0x4800_0000 => "&=",
                _ => "?",
            };
            match (f.field, arch) {
                (AUDIT_ARCH, Some(a)) => {
                    let _ = write!(s, " -F arch{op}{}", a.auditctl_bits());
                }
                (AUDIT_ARCH, None) => {
                    let _ = write!(s, " -F arch{op}0x{:x}", f.value);
                }
                (9, _) => {
                    let _ = write!(s, " -F auid{op}{}", f.value as i32);
                }
                (n, _) => {
                    let _ = write!(s, " -F field{n}{op}{}", f.value);
                }
            }
        }
        let calls = self.syscalls();
        if calls.len() == AUDIT_BITMASK_SIZE * 32 {
            s.push_str(" -S all");
        } else if !calls.is_empty() {
            let names: Vec<String> = calls
                .iter()
                .map(|&nr| match arch {
                    Some(a) if nr == a.execve() => "execve".to_string(),
                    Some(a) if nr == a.execveat() => "execveat".to_string(),
                    _ => nr.to_string(),
                })
                .collect();
            let _ = write!(s, " -S {}", names.join(","));
        }
        for (field, value) in self.strings() {
            let name = match field {
                AUDIT_FILTERKEY => {
                    for k in value.split(|&b| b == 0x01) {
                        let _ = write!(s, " -k {}", String::from_utf8_lossy(k));
                    }
                    continue;
                }
                112 => "exe",
                107 => "dir",
                105 => "path",
                _ => "string",
            };
            let _ = write!(s, " -F {name}={}", String::from_utf8_lossy(value));
        }
        s
    }
}

/// The `auditctl` lines equivalent to the rules [`AuditConfigGuard::install_exec_rules`] loads, for
/// hosts where auditd manages the rules (`execsentry audit-rules`).
pub fn exec_rules_auditctl(host: Arch, key: &[u8]) -> Vec<String> {
    AuditRule::exec_rules(host, key)
        .iter()
        .map(AuditRule::to_auditctl)
        .collect()
}

/// Restores kernel audit state on drop: deletes the rules it added (exact bytes, newest first) and
/// puts back every status field it changed, to the value read when it was created.
pub struct AuditConfigGuard {
    control: Control,
    original: AuditStatus,
    changed: u32,
    added: Vec<AuditRule>,
}

impl AuditConfigGuard {
    /// Read the current status; refuse a locked configuration.
    pub fn new(mut control: Control) -> Result<AuditConfigGuard, Error> {
        let original = control.status()?;
        if original.enabled == 2 {
            return Err(Error::Locked);
        }
        Ok(AuditConfigGuard {
            control,
            original,
            changed: 0,
            added: Vec::new(),
        })
    }

    /// The status as it was when the guard was created.
    pub fn original(&self) -> &AuditStatus {
        &self.original
    }

    /// The control socket, for reads.
    pub fn control(&mut self) -> &mut Control {
        &mut self.control
    }

    /// Rules this guard added and will delete.
    pub fn added_rules(&self) -> &[AuditRule] {
        &self.added
    }

    /// Apply a status change, remembering the fields for restoration (`pid` is not restorable
    /// here: the record socket owns its registration).
    pub fn set(&mut self, change: &StatusChange) -> Result<(), Error> {
        let m = change.mask() & !mask::PID;
        self.control.set(change)?;
        self.changed |= m;
        Ok(())
    }

    /// Turn audit on if it is off.
    pub fn ensure_enabled(&mut self) -> Result<(), Error> {
        if self.control.status()?.enabled == 0 {
            self.set(&StatusChange::default().enabled(1))?;
        }
        Ok(())
    }

    /// Add a rule unless an identical one is loaded. Returns whether this guard added it (and so
    /// will delete it); an identical rule someone else loaded is left alone.
    pub fn add_rule(&mut self, rule: &AuditRule) -> Result<bool, Error> {
        match self.control.add_rule(rule) {
            Ok(()) => {
                self.added.push(rule.clone());
                Ok(true)
            }
            Err(Error::Kernel { errno, .. }) if errno.raw_os_error() == Some(libc::EEXIST) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Install the exec rules for `host` with `key`. The native rule must succeed; the compat
    /// (32-bit) rule may be refused on kernels without it, which is logged and skipped.
    pub fn install_exec_rules(&mut self, host: Arch, key: &[u8]) -> Result<usize, Error> {
        if key.is_empty() || key.len() > AUDIT_MAX_KEY_LEN {
            return Err(Error::Protocol {
                request: "AUDIT_ADD_RULE",
                detail: format!("key must be 1..={AUDIT_MAX_KEY_LEN} bytes"),
            });
        }
        let [native, compat] = AuditRule::exec_rules(host, key);
        let mut added = usize::from(self.add_rule(&native)?);
        match self.add_rule(&compat) {
            Ok(a) => added += usize::from(a),
            Err(Error::Kernel { errno, .. }) if errno.raw_os_error() == Some(libc::EINVAL) => {
                log::warn!(
                    "kernel refused the 32-bit exec rule ({errno}); 32-bit execs are not audited"
                );
            }
            Err(e) => return Err(e),
        }
        Ok(added)
    }

    /// Delete added rules and restore changed fields now; the guard then has nothing left to do.
    pub fn restore(&mut self) -> Result<(), Error> {
        let mut first_err = None;
        while let Some(rule) = self.added.pop() {
            if let Err(e) = self.control.delete_rule(&rule) {
                // Already gone (someone ran auditctl -D) is fine; anything else is reported.
                let gone = matches!(&e, Error::Kernel { errno, .. } if errno.raw_os_error() == Some(libc::ENOENT));
                if !gone {
                    first_err.get_or_insert(e);
                }
            }
        }
        if self.changed != 0 {
            let o = self.original;
            let mut change = StatusChange::default();
            if self.changed & mask::ENABLED != 0 {
                change = change.enabled(o.enabled);
            }
            if self.changed & mask::RATE_LIMIT != 0 {
                change = change.rate_limit(o.rate_limit);
            }
            if self.changed & mask::BACKLOG_LIMIT != 0 {
                change = change.backlog_limit(o.backlog_limit);
            }
            if self.changed & mask::BACKLOG_WAIT_TIME != 0 {
                change = change.backlog_wait_time(o.backlog_wait_time);
            }
            match set_status(&mut self.control.nl, &change, &mut ignore_records) {
                Ok(_) => self.changed = 0,
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for AuditConfigGuard {
    fn drop(&mut self) {
        if let Err(e) = self.restore() {
            log::error!("could not restore kernel audit state: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn word(b: &[u8], i: usize) -> u32 {
        u32::from_ne_bytes(b[i * 4..i * 4 + 4].try_into().unwrap())
    }

    const MASK_AT: usize = 3;
    const FIELDS_AT: usize = MASK_AT + 64;
    const VALUES_AT: usize = FIELDS_AT + 64;
    const OPS_AT: usize = VALUES_AT + 64;
    const BUFLEN_AT: usize = OPS_AT + 64;

    #[test]
    fn b64_exec_rule_layout_matches_the_reference() {
        let r = AuditRule::exec(Arch::X86_64, b"rsrpy");
        let b = r.encode();
        assert_eq!(RULE_FIXED_LEN, 1040);
        assert_eq!(b.len(), 1040 + 5);
        assert_eq!(word(&b, 0), 0x04, "AUDIT_FILTER_EXIT");
        assert_eq!(word(&b, 1), 2, "AUDIT_ALWAYS");
        assert_eq!(word(&b, 2), 2, "arch and key");
        for i in 0..64 {
            let want = match i {
                1 => 0x0800_0000,  // execve 59
                10 => 0x0000_0004, // execveat 322
                _ => 0,
            };
            assert_eq!(word(&b, MASK_AT + i), want, "mask word {i}");
        }
        assert_eq!(word(&b, FIELDS_AT), 11, "AUDIT_ARCH");
        assert_eq!(word(&b, VALUES_AT), 0xC000_003E);
        assert_eq!(word(&b, OPS_AT), 0x4000_0000);
        assert_eq!(word(&b, FIELDS_AT + 1), 210, "AUDIT_FILTERKEY");
        assert_eq!(word(&b, VALUES_AT + 1), 5, "key length");
        assert_eq!(word(&b, OPS_AT + 1), 0x4000_0000);
        assert_eq!(word(&b, FIELDS_AT + 2), 0);
        assert_eq!(word(&b, BUFLEN_AT), 5);
        assert_eq!(&b[1040..], b"rsrpy");
    }

    #[test]
    fn b32_exec_rule_layout_matches_the_reference() {
        let b = AuditRule::exec(Arch::I386, b"k").encode();
        for i in 0..64 {
            let want = match i {
                0 => 0x800, // execve 11
                11 => 0x40, // execveat 358
                _ => 0,
            };
            assert_eq!(word(&b, MASK_AT + i), want, "mask word {i}");
        }
        assert_eq!(word(&b, VALUES_AT), 0x4000_0003);
    }

    #[test]
    fn aarch64_rules() {
        let [native, compat] = AuditRule::exec_rules(Arch::Aarch64, b"k");
        assert_eq!(native.syscalls(), [221, 281]);
        assert_eq!(native.arch(), Some(0xc000_00b7));
        assert_eq!(compat.syscalls(), [11, 387]);
        assert_eq!(compat.arch(), Some(0x4000_0028));
    }

    #[test]
    fn decode_round_trips_and_finds_keys() {
        let mut r = AuditRule::exec(Arch::X86_64, b"a\x01execsentry");
        r.fields.insert(
            1,
            RuleField {
                field: 9,
                op: AUDIT_NOT_EQUAL,
                value: u32::MAX,
            },
        );
        let back = AuditRule::decode(&r.encode()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.keys().collect::<Vec<_>>(), [&b"a"[..], b"execsentry"]);
        assert_eq!(
            back.to_auditctl(),
            "-a always,exit -F arch=b64 -F auid!=-1 -S execve,execveat -k a -k execsentry"
        );
    }

    #[test]
    fn decode_rejects_bad_lengths() {
        let r = AuditRule::exec(Arch::X86_64, b"key");
        let b = r.encode();
        assert!(AuditRule::decode(&b[..1000]).is_err());
        assert!(AuditRule::decode(&b[..1041]).is_err(), "buf cut short");
        let mut b2 = b.clone();
        b2[8] = 65; // field_count
        assert!(AuditRule::decode(&b2).is_err());
        let mut b3 = b;
        b3[BUFLEN_AT * 4] = 2; // buflen disagrees with the key length
        assert!(AuditRule::decode(&b3[..1042]).is_err());
    }

    #[test]
    fn auditctl_lines_for_the_sensor() {
        let [a, b] = AuditRule::exec_rules(Arch::X86_64, b"execsentry");
        assert_eq!(
            a.to_auditctl(),
            "-a always,exit -F arch=b64 -S execve,execveat -k execsentry"
        );
        assert_eq!(
            b.to_auditctl(),
            "-a always,exit -F arch=b32 -S execve,execveat -k execsentry"
        );
    }

    #[test]
    fn status_bytes() {
        let s = AuditStatus::from_bytes(&[1, 0, 0, 0, 1, 0, 0, 0, 1, 0]);
        assert_eq!(
            (s.mask, s.enabled, s.failure),
            (1, 1, 0),
            "short struct zero-filled"
        );
        let c = StatusChange::default()
            .enabled(1)
            .backlog_wait_time(0)
            .backlog_limit(8192);
        let b = c.to_bytes();
        assert_eq!(b.len(), 44);
        let back = AuditStatus::from_bytes(&b);
        assert_eq!(
            back.mask,
            mask::ENABLED | mask::BACKLOG_WAIT_TIME | mask::BACKLOG_LIMIT
        );
        assert_eq!(
            (back.enabled, back.backlog_limit, back.backlog_wait_time),
            (1, 8192, 0)
        );
    }

    #[test]
    fn lost_deltas_and_resets() {
        let mut c = LostCounter::default();
        let st = |lost| AuditStatus {
            lost,
            ..AuditStatus::default()
        };
        assert_eq!(
            c.update(&st(100)),
            0,
            "losses before we started are not ours"
        );
        assert_eq!(c.update(&st(130)), 30);
        assert_eq!(c.update(&st(5)), 5, "someone reset it");
        assert_eq!((c.total(), c.resets()), (35, 1));
    }
}
