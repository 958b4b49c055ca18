//! The configuration file (TOML) and how command-line flags override it.
//!
//! `/etc/execsentry/execsentry.toml` is read when it exists; `--config PATH` names another file,
//! which must exist. Every key is optional and defaults to what a bare `execsentry run` does;
//! unknown keys and bad values are errors with the file, line and column. [`Overrides`] holds
//! what flags set (the binary fills it from its arguments); [`Config::apply`] lays it over the
//! file. The binary then maps the result onto the live run's options; no flag type comes here.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

use crate::eql::ast::Span;
use crate::eql::error::{caret_snippet, line_col};
use crate::rules::{Outcome, Report};
use crate::sink::{FileOptions, Fsync, Rotation};

/// Read when it exists and no `--config` is given.
pub const DEFAULT_PATH: &str = "/etc/execsentry/execsentry.toml";

#[derive(Debug, Error)]
pub enum ConfigError {
    /// (The I/O error is part of the message, not a `source`, so it is shown once.)
    #[error("cannot read config file {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    /// `FILE:LINE:COLUMN: message`, then the line with carets under the bad key or value.
    #[error("{}:{line}:{column}: {message}\n{snippet}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        snippet: String,
    },
}

/// Everything the file can set. Sections and keys mirror `packaging/linux/execsentry.toml`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub source: SourceSection,
    pub rules: RulesSection,
    pub throttle: ThrottleSection,
    pub output: OutputSection,
    pub stats: StatsSection,
    pub pipeline: PipelineSection,
    pub audit: AuditSection,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceSection {
    pub kind: SourceKind,
}

/// Where exec events come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Linux: multicast beside a registered audit daemon, else netlink; macOS: Endpoint
    /// Security.
    #[default]
    Auto,
    /// Become the audit daemon (unicast netlink).
    Netlink,
    /// Listen beside the registered audit daemon.
    Multicast,
    /// Run as an auditd plugin: records on stdin.
    Audisp,
    /// macOS: an Endpoint Security client.
    #[serde(rename = "endpoint-security")]
    EndpointSecurity,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesSection {
    /// Detection-rules TOML files, or directories searched recursively.
    pub paths: Vec<PathBuf>,
    /// Load the rules built into the binary.
    pub builtin: bool,
}

impl Default for RulesSection {
    fn default() -> RulesSection {
        RulesSection {
            paths: Vec::new(),
            builtin: true,
        }
    }
}

/// Replaces every rule's own `max_signals` / `interval` when set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleSection {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_signals: Option<Count>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<RuleInterval>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// Alert file; absent or `-`: standard output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerts: Option<PathBuf>,
    /// Every event as ECS NDJSON, when set (`-`: standard output).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<PathBuf>,
    /// Group (name or number) given read access to the files (mode 0640); else mode 0600.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    pub fsync: FsyncSetting,
    /// Rotate a file before it would pass this size; 0 never rotates (use logrotate).
    pub rotate_size: Size,
    /// Rotated files kept: `alerts.ndjson.1` … `.N`.
    pub rotate_keep: u32,
    /// Alerts held in memory while the alert file cannot be written; past it they are dropped
    /// and counted.
    pub queue: Count,
}

impl Default for OutputSection {
    fn default() -> OutputSection {
        OutputSection {
            alerts: None,
            events: None,
            group: None,
            fsync: FsyncSetting(Fsync::Never),
            rotate_size: Size(100 << 20),
            rotate_keep: 5,
            queue: Count(10_000),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsSection {
    /// Between counter lines on stderr (and `json` updates).
    pub interval: Seconds,
    /// The counters as one JSON object, replaced every interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json: Option<PathBuf>,
}

impl Default for StatsSection {
    fn default() -> StatsSection {
        StatsSection {
            interval: Seconds(Duration::from_secs(60)),
            json: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSection {
    /// Record batches (up to 256 records each) between the audit reader and the evaluator;
    /// when full, batches are dropped and counted (`channel_drops`).
    pub record_queue: Count,
    /// Alert lines in flight between the evaluator and the alert writer.
    pub alert_channel: Count,
    /// Processes remembered for `process.parent.*`.
    pub process_table: Count,
}

impl Default for PipelineSection {
    fn default() -> PipelineSection {
        PipelineSection {
            record_queue: Count(1024),
            alert_channel: Count(4096),
            process_table: Count(32_768),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditSection {
    /// Key of the sensor's own audit rules (the only rules it ever removes).
    pub key: AuditKey,
    /// Netlink mode: the kernel's queue of audit records waiting for the sensor.
    pub backlog_limit: u32,
    /// Netlink mode: how long (jiffies) an audited syscall may wait for room in that queue;
    /// 0 drops (counted as `lost`) instead of stalling processes.
    pub backlog_wait_time: u32,
    /// Netlink socket receive buffer.
    pub receive_buffer: Size,
}

impl Default for AuditSection {
    fn default() -> AuditSection {
        AuditSection {
            key: AuditKey("execsentry".into()),
            backlog_limit: 8192,
            backlog_wait_time: 0,
            receive_buffer: Size(32 << 20),
        }
    }
}

/// What flags set; `None` leaves the file's (or the default) value.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    pub source: Option<SourceKind>,
    /// Replaces `rules.paths` when non-empty.
    pub rules: Vec<PathBuf>,
    pub builtin_rules: Option<bool>,
    pub max_signals: Option<Count>,
    pub throttle_interval: Option<RuleInterval>,
    pub alerts: Option<PathBuf>,
    pub events: Option<PathBuf>,
    pub group: Option<String>,
    pub fsync: Option<FsyncSetting>,
    pub rotate_size: Option<Size>,
    pub rotate_keep: Option<u32>,
    pub alert_queue: Option<Count>,
    pub stats_interval: Option<Seconds>,
    pub stats_json: Option<PathBuf>,
    pub record_queue: Option<Count>,
    pub alert_channel: Option<Count>,
    pub process_table: Option<Count>,
    pub audit_key: Option<AuditKey>,
    pub backlog_limit: Option<u32>,
    pub backlog_wait_time: Option<u32>,
    pub receive_buffer: Option<Size>,
}

impl Config {
    /// Reads `explicit` (which must exist), else [`DEFAULT_PATH`] if it exists, else defaults.
    /// Returns the file read, if any.
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let path = match explicit {
            Some(p) => p.to_owned(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => return Ok((Config::default(), None)),
        };
        let text = std::fs::read_to_string(&path).map_err(|error| ConfigError::Read {
            path: path.clone(),
            error,
        })?;
        Ok((Config::parse(&text, &path)?, Some(path)))
    }

    /// Parses `text`; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            let (line, column) = line_col(text, span.start);
            ConfigError::Invalid {
                path: path.to_owned(),
                line,
                column,
                message: e.message().trim_end().to_owned(),
                snippet: caret_snippet(text, Span::new(span.start, span.end)),
            }
        })
    }

    /// Lays the flags over the file.
    pub fn apply(&mut self, o: Overrides) {
        fn set<T>(slot: &mut T, value: Option<T>) {
            if let Some(v) = value {
                *slot = v;
            }
        }
        fn set_opt<T>(slot: &mut Option<T>, value: Option<T>) {
            if value.is_some() {
                *slot = value;
            }
        }
        set(&mut self.source.kind, o.source);
        if !o.rules.is_empty() {
            self.rules.paths = o.rules;
        }
        set(&mut self.rules.builtin, o.builtin_rules);
        set_opt(&mut self.throttle.max_signals, o.max_signals);
        set_opt(&mut self.throttle.interval, o.throttle_interval);
        set_opt(&mut self.output.alerts, o.alerts);
        set_opt(&mut self.output.events, o.events);
        set_opt(&mut self.output.group, o.group);
        set(&mut self.output.fsync, o.fsync);
        set(&mut self.output.rotate_size, o.rotate_size);
        set(&mut self.output.rotate_keep, o.rotate_keep);
        set(&mut self.output.queue, o.alert_queue);
        set(&mut self.stats.interval, o.stats_interval);
        set_opt(&mut self.stats.json, o.stats_json);
        set(&mut self.pipeline.record_queue, o.record_queue);
        set(&mut self.pipeline.alert_channel, o.alert_channel);
        set(&mut self.pipeline.process_table, o.process_table);
        set(&mut self.audit.key, o.audit_key);
        set(&mut self.audit.backlog_limit, o.backlog_limit);
        set(&mut self.audit.backlog_wait_time, o.backlog_wait_time);
        set(&mut self.audit.receive_buffer, o.receive_buffer);
    }

    /// The effective settings as TOML (`run --print-config`).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot show the config: {e}\n"))
    }

    /// How output files are written (the group resolved to its id).
    pub fn file_options(&self) -> io::Result<FileOptions> {
        let group = match &self.output.group {
            Some(g) => Some(crate::sink::file::resolve_group(g)?),
            None => None,
        };
        Ok(FileOptions {
            rotation: (self.output.rotate_size.0 > 0).then_some(Rotation {
                max_bytes: self.output.rotate_size.0,
                keep: self.output.rotate_keep,
            }),
            fsync: self.output.fsync.0,
            group,
        })
    }

    /// A path setting that means "standard output" (absent or `-`).
    pub fn is_stdout(path: Option<&Path>) -> bool {
        path.is_none_or(|p| p == Path::new("-"))
    }
}

impl ThrottleSection {
    /// Sets every loaded rule's `max_signals` / `interval` to the override, where set.
    pub fn apply(&self, reports: &mut [Report]) {
        for report in reports {
            if let Outcome::Ok(rule) = &mut report.outcome {
                if let Some(n) = self.max_signals {
                    rule.meta.max_signals = u32::try_from(n.0).unwrap_or(u32::MAX);
                }
                if let Some(i) = &self.interval {
                    rule.meta.interval = i.text.clone();
                    rule.meta.interval_ns = i.ns;
                }
            }
        }
    }
}

// Value types: each parses from a flag (FromStr) and from the file (Deserialize, with the error
// at the value's position), and prints back the way it is written.

/// A count that must be at least 1 (queue sizes, table size, max_signals).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count(pub usize);

impl FromStr for Count {
    type Err = String;

    fn from_str(s: &str) -> Result<Count, String> {
        match s.trim().parse::<usize>() {
            Ok(0) => Err("must be at least 1".into()),
            Ok(n) => Ok(Count(n)),
            Err(_) => Err(format!("{s:?} is not a whole number")),
        }
    }
}

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Count, D::Error> {
        let n = i64::deserialize(d)?;
        match usize::try_from(n) {
            Ok(n) if n > 0 => Ok(Count(n)),
            _ => Err(de::Error::custom(format!("must be at least 1, not {n}"))),
        }
    }
}

impl Serialize for Count {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0 as u64)
    }
}

/// Bytes: a whole number, or one with a binary unit: `64KiB`, `100MiB`, `1GiB` (`K`, `M`, `G`
/// mean the same).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl FromStr for Size {
    type Err = String;

    fn from_str(s: &str) -> Result<Size, String> {
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let (digits, unit) = t.split_at(split);
        let shift = match unit.trim() {
            "" | "B" => 0,
            "K" | "KiB" => 10,
            "M" | "MiB" => 20,
            "G" | "GiB" => 30,
            _ => return Err(format!("{s:?} is not a size; expected bytes or a number with KiB, MiB or GiB, like \"100MiB\"")),
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(1 << shift))
            .map(Size)
            .ok_or_else(|| format!("{s:?} is not a size; expected bytes or a number with KiB, MiB or GiB, like \"100MiB\""))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if self.0 != 0 && self.0 % (1 << shift) == 0 {
                return write!(f, "{}{unit}", self.0 >> shift);
            }
        }
        write!(f, "{}", self.0)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Size, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::Number(n) => u64::try_from(n)
                .map(Size)
                .map_err(|_| de::Error::custom(format!("a size cannot be negative ({n})"))),
            NumberOrText::Text(s) => s.parse().map_err(de::Error::custom),
        }
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// A duration in whole seconds: `60`, or `"60s"`, `"5m"`, `"1h"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seconds(pub Duration);

impl FromStr for Seconds {
    type Err = String;

    fn from_str(s: &str) -> Result<Seconds, String> {
        parse_duration(s)
            .filter(|d| !d.is_zero())
            .map(Seconds)
            .ok_or_else(|| {
                format!("{s:?} is not a duration; expected seconds or a number with s, m or h, like \"60s\"")
            })
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Seconds, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::Number(n) if n > 0 => Ok(Seconds(Duration::from_secs(n as u64))),
            NumberOrText::Number(n) => Err(de::Error::custom(format!(
                "must be at least 1 second, not {n}"
            ))),
            NumberOrText::Text(s) => s.parse().map_err(de::Error::custom),
        }
    }
}

impl Serialize for Seconds {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}s", self.0.as_secs()))
    }
}

/// `30s`, `5m`, `1h` (and `1d`); a bare number is seconds.
fn parse_duration(s: &str) -> Option<Duration> {
    let t = s.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Some(Duration::from_secs(n));
    }
    crate::rules::load::parse_interval(t)
        .and_then(|ns| u64::try_from(ns).ok())
        .map(Duration::from_nanos)
}

/// `fsync`: `"never"`, `"always"` (after every line), or an interval such as `"5s"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FsyncSetting(pub Fsync);

impl FromStr for FsyncSetting {
    type Err = String;

    fn from_str(s: &str) -> Result<FsyncSetting, String> {
        match s.trim() {
            "never" => Ok(FsyncSetting(Fsync::Never)),
            "always" => Ok(FsyncSetting(Fsync::EveryWrite)),
            other => parse_duration(other)
                .filter(|d| !d.is_zero())
                .map(|d| FsyncSetting(Fsync::Interval(d)))
                .ok_or_else(|| {
                    format!("{s:?} is not an fsync policy; expected \"never\", \"always\" or an interval like \"5s\"")
                }),
        }
    }
}

impl<'de> Deserialize<'de> for FsyncSetting {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FsyncSetting, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

impl Serialize for FsyncSetting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Fsync::Never => s.serialize_str("never"),
            Fsync::EveryWrite => s.serialize_str("always"),
            Fsync::Interval(d) => s.serialize_str(&format!("{}s", d.as_secs())),
        }
    }
}

/// A rule interval as detection rules write it: `30s`, `5m`, `1h`, `1d`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleInterval {
    pub text: String,
    pub ns: i64,
}

impl FromStr for RuleInterval {
    type Err = String;

    fn from_str(s: &str) -> Result<RuleInterval, String> {
        crate::rules::load::parse_interval(s.trim())
            .map(|ns| RuleInterval {
                text: s.trim().to_owned(),
                ns,
            })
            .ok_or_else(|| {
                format!("{s:?} is not an interval; expected a number and a unit, like 30s, 5m, 1h or 1d")
            })
    }
}

impl<'de> Deserialize<'de> for RuleInterval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RuleInterval, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

impl Serialize for RuleInterval {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

/// An audit rule key: what `auditctl -k` accepts and `ausearch -k` finds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditKey(pub String);

/// The kernel's AUDIT_MAX_KEY_LEN.
const MAX_KEY_LEN: usize = 256;

impl FromStr for AuditKey {
    type Err = String;

    fn from_str(s: &str) -> Result<AuditKey, String> {
        if s.is_empty() || s.len() > MAX_KEY_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!(
                "{s:?} is not an audit key; expected 1 to {MAX_KEY_LEN} printable characters without spaces"
            ));
        }
        Ok(AuditKey(s.to_owned()))
    }
}

impl<'de> Deserialize<'de> for AuditKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<AuditKey, D::Error> {
        String::deserialize(d)?.parse().map_err(de::Error::custom)
    }
}

impl Serialize for AuditKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[derive(Deserialize)]
#[serde(untagged, expecting = "a number or a string")]
enum NumberOrText {
    Number(i64),
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/execsentry/execsentry.toml"))
    }

    /// `(line, column, message)` of a config error.
    fn error_at(text: &str) -> (usize, usize, String) {
        match parse(text) {
            Err(ConfigError::Invalid {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            other => panic!("expected an error, got {other:?}"),
        }
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(parse("# nothing\n[output]\n").unwrap(), Config::default());
    }

    /// The shipped file documents the defaults. It differs from a bare `execsentry run` in two
    /// deliberate ways only: a service writes alerts to a file and stats for monitoring.
    #[test]
    fn the_shipped_config_is_the_defaults_plus_service_paths() {
        let text = include_str!("../packaging/linux/execsentry.toml");
        let shipped = Config::parse(text, Path::new("packaging/linux/execsentry.toml")).unwrap();
        let mut expected = Config::default();
        expected.output.alerts = Some("/var/log/execsentry/alerts.ndjson".into());
        expected.stats.json = Some("/run/execsentry/stats.json".into());
        assert_eq!(shipped, expected);
    }

    #[test]
    fn every_key_parses() {
        let c = parse(
            r#"
[source]
kind = "multicast"
[rules]
paths = ["/etc/execsentry/rules", "/opt/rules/x.toml"]
builtin = false
[throttle]
max_signals = 5
interval = "1h"
[output]
alerts = "/var/log/es/alerts.ndjson"
events = "/var/log/es/events.ndjson"
group = "adm"
fsync = "5s"
rotate_size = "10MiB"
rotate_keep = 3
queue = 100
[stats]
interval = "2m"
json = "/run/es/stats.json"
[pipeline]
record_queue = 16
alert_channel = 32
process_table = 1000
[audit]
key = "k1"
backlog_limit = 65536
backlog_wait_time = 60000
receive_buffer = 8388608
"#,
        )
        .unwrap();
        assert_eq!(c.source.kind, SourceKind::Multicast);
        assert_eq!(c.rules.paths.len(), 2);
        assert!(!c.rules.builtin);
        assert_eq!(c.throttle.max_signals, Some(Count(5)));
        assert_eq!(c.throttle.interval.as_ref().unwrap().ns, 3_600_000_000_000);
        assert_eq!(
            c.output.fsync,
            FsyncSetting(Fsync::Interval(Duration::from_secs(5)))
        );
        assert_eq!(c.output.rotate_size, Size(10 << 20));
        assert_eq!(c.output.rotate_keep, 3);
        assert_eq!(c.output.queue, Count(100));
        assert_eq!(c.stats.interval, Seconds(Duration::from_secs(120)));
        assert_eq!(c.pipeline.process_table, Count(1000));
        assert_eq!(c.audit.key, AuditKey("k1".into()));
        assert_eq!(c.audit.receive_buffer, Size(8 << 20));
        // What --print-config shows reads back the same.
        assert_eq!(parse(&c.to_toml()).unwrap(), c);
    }

    #[test]
    fn unknown_keys_are_errors_at_the_key() {
        let (line, col, msg) = error_at("[output]\nalerts = \"/tmp/a\"\nrotate_sise = 5\n");
        assert_eq!((line, col), (3, 1), "{msg}");
        assert!(msg.contains("unknown field `rotate_sise`"), "{msg}");
        assert!(msg.contains("rotate_size"), "lists what is expected: {msg}");
        let (line, col, msg) = error_at("[outputs]\n");
        assert_eq!((line, col), (1, 2), "{msg}");
        assert!(msg.contains("unknown field `outputs`"), "{msg}");
    }

    #[test]
    fn bad_types_are_errors_at_the_value() {
        let (line, col, msg) = error_at("[audit]\nbacklog_limit = \"lots\"\n");
        assert_eq!((line, col), (2, 17), "{msg}");
        assert!(
            msg.contains("invalid type: string \"lots\", expected u32"),
            "{msg}"
        );
        let (line, col, msg) = error_at("[rules]\nbuiltin = 1\n");
        assert_eq!((line, col), (2, 11), "{msg}");
        assert!(msg.contains("expected a boolean"), "{msg}");
    }

    #[test]
    fn bad_values_are_errors_at_the_value() {
        let cases: &[(&str, (usize, usize), &str)] = &[
            (
                "[source]\nkind = \"kernel\"\n",
                (2, 8),
                "unknown variant `kernel`",
            ),
            (
                "[output]\nfsync = \"sometimes\"\n",
                (2, 9),
                "not an fsync policy",
            ),
            (
                "[output]\nrotate_size = \"10 parsecs\"\n",
                (2, 15),
                "not a size",
            ),
            (
                "[output]\nrotate_size = -1\n",
                (2, 15),
                "cannot be negative",
            ),
            ("[output]\nqueue = 0\n", (2, 9), "at least 1"),
            ("[stats]\ninterval = 0\n", (2, 12), "at least 1 second"),
            (
                "[throttle]\ninterval = \"5 minutes\"\n",
                (2, 12),
                "not an interval",
            ),
            ("[audit]\nkey = \"has space\"\n", (2, 7), "not an audit key"),
            ("[audit]\nbacklog_limit = -5\n", (2, 17), "u32"),
            ("[output\n", (1, 8), ""),
        ];
        for (text, at, needle) in cases {
            let (line, col, msg) = error_at(text);
            assert_eq!((line, col), *at, "{text}: {msg}");
            assert!(msg.contains(needle), "{text}: {msg}");
        }
    }

    #[test]
    fn errors_name_the_file_line_and_column_with_carets() {
        let e = parse("[output]\n\nqueue = \"many\"\n").unwrap_err();
        let shown = e.to_string();
        assert!(
            shown.starts_with("/etc/execsentry/execsentry.toml:3:9: "),
            "{shown}"
        );
        assert!(
            shown.contains("\n  queue = \"many\"\n          ^^^^^^"),
            "{shown}"
        );
    }

    #[test]
    fn a_missing_explicit_file_is_an_error() {
        let e = Config::load(Some(Path::new("/nonexistent/execsentry.toml"))).unwrap_err();
        assert!(matches!(e, ConfigError::Read { .. }), "{e}");
        assert!(e.to_string().contains("/nonexistent/execsentry.toml"));
    }

    #[test]
    fn flags_override_the_file() {
        let mut c = parse(
            "[source]\nkind = \"netlink\"\n[rules]\npaths = [\"/a\"]\n[output]\nalerts = \"/x\"\nrotate_keep = 9\n[audit]\nkey = \"file\"\n",
        )
        .unwrap();
        c.apply(Overrides {
            source: Some(SourceKind::Audisp),
            rules: vec!["/b".into()],
            builtin_rules: Some(false),
            alerts: Some("-".into()),
            audit_key: Some("flag".parse().unwrap()),
            stats_json: Some("/run/s.json".into()),
            ..Overrides::default()
        });
        assert_eq!(c.source.kind, SourceKind::Audisp);
        assert_eq!(c.rules.paths, [PathBuf::from("/b")]);
        assert!(!c.rules.builtin);
        assert!(Config::is_stdout(c.output.alerts.as_deref()));
        assert_eq!(c.audit.key.0, "flag");
        assert_eq!(c.stats.json.as_deref(), Some(Path::new("/run/s.json")));
        // Untouched by flags: the file's values stay.
        assert_eq!(c.output.rotate_keep, 9);
    }

    #[test]
    fn value_types_parse_and_print_back() {
        assert_eq!("100MiB".parse::<Size>().unwrap(), Size(100 << 20));
        assert_eq!("64K".parse::<Size>().unwrap(), Size(64 << 10));
        assert_eq!("123".parse::<Size>().unwrap(), Size(123));
        assert_eq!(Size(100 << 20).to_string(), "100MiB");
        assert_eq!(Size(1000).to_string(), "1000");
        assert!("1.5G".parse::<Size>().is_err());
        assert!("99999999999999G".parse::<Size>().is_err(), "overflow");
        assert_eq!(
            "always".parse::<FsyncSetting>().unwrap(),
            FsyncSetting(Fsync::EveryWrite)
        );
        assert_eq!(
            "90".parse::<Seconds>().unwrap(),
            Seconds(Duration::from_secs(90))
        );
        assert!("0s".parse::<Seconds>().is_err());
        assert!("0".parse::<Count>().is_err());
        assert!("".parse::<AuditKey>().is_err());
        assert!("x".repeat(257).parse::<AuditKey>().is_err());
    }

    #[test]
    fn throttle_override_reaches_every_rule() {
        let mut reports = crate::rules::load_builtin(&crate::eql::Options::default());
        let t = ThrottleSection {
            max_signals: Some(Count(3)),
            interval: Some("1h".parse().unwrap()),
        };
        t.apply(&mut reports);
        let mut seen = 0;
        for r in &reports {
            if let Outcome::Ok(rule) = &r.outcome {
                assert_eq!(rule.meta.max_signals, 3);
                assert_eq!(rule.meta.interval, "1h");
                assert_eq!(rule.meta.interval_ns, 3_600_000_000_000);
                seen += 1;
            }
        }
        assert!(seen > 0);
    }
}
