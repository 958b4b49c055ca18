//! What the user typed: flags and arguments only, checked by clap. `main.rs` turns them into
//! rule sets, readers and sinks; no library sees these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use execsentry::config::{AuditKey, Count, FsyncSetting, RuleInterval, Seconds, Size};

/// Process executions in, Elastic EQL detections out, as ECS JSON.
#[derive(Debug, Parser)]
#[command(name = "execsentry", version, about, propagate_version = true)]
pub struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch every process execution on this machine and alert (Linux: kernel audit; macOS:
    /// Endpoint Security; as root).
    Run(Box<RunArgs>),
    /// Replay recorded events through the rules; alerts (NDJSON) to stdout or --alerts.
    Replay(ReplayArgs),
    /// Check or list detection rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Print the auditctl lines for the audit rules `run` installs, for hosts where auditd
    /// (augenrules) manages the rules.
    AuditRules(AuditRulesArgs),
}

/// `run`'s flags. Each one that is given overrides the configuration file; the defaults shown
/// are those of a missing file.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Configuration file (TOML) [default: /etc/execsentry/execsentry.toml when it exists].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Print the effective configuration (file, then flags) as TOML and exit.
    #[arg(long)]
    pub print_config: bool,

    /// Where exec events come from [default: auto]; auto: on Linux multicast beside a
    /// registered audit daemon, else netlink; on macOS endpoint-security.
    #[arg(long, value_enum)]
    pub source: Option<SourceArg>,

    #[command(flatten)]
    pub rules: RuleArgs,

    /// Append alerts to this file (created with mode 0600) instead of writing them to stdout;
    /// `-` is stdout.
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub alerts: Option<PathBuf>,

    /// Also append every event (ECS NDJSON, one line each) to this file; `-` is stdout.
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub events: Option<PathBuf>,

    /// Give this group read access to the output files (mode 0640) [default: none, 0600].
    #[arg(long, value_name = "GROUP", help_heading = "Output")]
    pub file_group: Option<String>,

    /// never, always (fdatasync after every line), or an interval such as 5s [default: never].
    #[arg(long, value_name = "POLICY", help_heading = "Output")]
    pub fsync: Option<FsyncSetting>,

    /// Rotate output files before they pass this size, e.g. 100MiB; 0 never [default: 100MiB].
    #[arg(long, value_name = "SIZE", help_heading = "Output")]
    pub rotate_size: Option<Size>,

    /// Rotated files kept (alerts.ndjson.1 ... .N) [default: 5].
    #[arg(long, value_name = "N", help_heading = "Output")]
    pub rotate_keep: Option<u32>,

    /// Alerts held in memory while the alert output fails [default: 10000].
    #[arg(long, value_name = "LINES", help_heading = "Output")]
    pub alert_queue: Option<Count>,

    /// Seconds (or 30s, 5m) between counter lines on stderr [default: 60].
    #[arg(long, value_name = "DURATION", help_heading = "Output")]
    pub stats_interval: Option<Seconds>,

    /// Also write the counters to this file as one JSON object, replaced every interval.
    #[arg(long, value_name = "PATH", help_heading = "Output")]
    pub stats_json: Option<PathBuf>,

    /// Override every rule's max_signals (alerts per rule per interval).
    #[arg(long, value_name = "N", help_heading = "Rules")]
    pub max_signals: Option<Count>,

    /// Override every rule's interval (30s, 5m, 1h, 1d).
    #[arg(long, value_name = "INTERVAL", help_heading = "Rules")]
    pub throttle_interval: Option<RuleInterval>,

    /// Key of the audit rules the sensor installs (and the only rules it removes)
    /// [default: execsentry].
    #[arg(long, value_name = "KEY", help_heading = "Kernel audit")]
    pub audit_key: Option<AuditKey>,

    /// Netlink mode: the kernel's audit backlog limit (raised to this, never lowered)
    /// [default: 8192].
    #[arg(long, value_name = "N", help_heading = "Kernel audit")]
    pub backlog_limit: Option<u32>,

    /// Netlink mode: how long (jiffies) an audited syscall may wait for the sensor; 0 never
    /// stalls processes [default: 0].
    #[arg(long, value_name = "JIFFIES", help_heading = "Kernel audit")]
    pub backlog_wait_time: Option<u32>,

    /// Netlink socket receive buffer, e.g. 32MiB [default: 32MiB].
    #[arg(long, value_name = "SIZE", help_heading = "Kernel audit")]
    pub receive_buffer: Option<Size>,

    /// Record batches queued between the audit reader and the evaluator [default: 1024].
    #[arg(long, value_name = "BATCHES", help_heading = "Tuning")]
    pub record_queue: Option<Count>,

    /// Alert lines in flight between the evaluator and the alert writer [default: 4096].
    #[arg(long, value_name = "LINES", help_heading = "Tuning")]
    pub alert_channel: Option<Count>,

    /// Processes remembered for process.parent.* [default: 32768].
    #[arg(long, value_name = "PROCESSES", help_heading = "Tuning")]
    pub process_table: Option<Count>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SourceArg {
    Auto,
    /// Become the audit daemon (unicast netlink).
    Netlink,
    /// Listen beside the registered audit daemon (multicast netlink).
    Multicast,
    /// Run as an auditd plugin: records on stdin.
    Audisp,
    /// macOS: an Endpoint Security client (exec, fork, exit), as root with Full Disk Access.
    EndpointSecurity,
}

#[derive(Debug, Args)]
pub struct AuditRulesArgs {
    /// Key of the audit rules.
    #[arg(long, value_name = "KEY", default_value = "execsentry")]
    pub audit_key: String,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Load every rule and say, per rule, ok / unsupported / skipped / error (exit 1 on errors).
    Check(RulesArgs),
    /// Show the rules that load: id, severity, category, name, origin.
    List(RulesArgs),
}

/// `rules check` and `rules list`: the rules `run` would load, from the configuration file's
/// `[rules]` with the flags over it.
#[derive(Debug, Args)]
pub struct RulesArgs {
    /// Configuration file (TOML) [default: /etc/execsentry/execsentry.toml when it exists].
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    #[command(flatten)]
    pub rules: RuleArgs,
}

/// Which rules to load (`run` and the `rules` commands: over the configuration file's).
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// A detection-rules TOML file, or a directory searched recursively for *.toml (repeatable;
    /// replaces the configuration's rules.paths).
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,

    /// Do not load the rules built into execsentry.
    #[arg(long)]
    pub no_builtin_rules: bool,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Input format; auto detects it from each input's first non-blank line.
    #[arg(long, value_enum, default_value_t = FormatArg::Auto)]
    pub format: FormatArg,

    #[command(flatten)]
    pub rules: RuleArgs,

    /// Append alerts to this file (created with mode 0600) instead of writing them to stdout.
    #[arg(long, value_name = "PATH")]
    pub alerts: Option<PathBuf>,

    /// Input files; `-` reads standard input.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// Detect per input.
    Auto,
    /// ECS NDJSON: one JSON object per line.
    Ecs,
    /// Linux audit log lines (audit.log raw or ENRICHED, or the auditd plugin stream).
    Audit,
    /// macOS `eslogger exec fork exit` NDJSON.
    Eslogger,
}
