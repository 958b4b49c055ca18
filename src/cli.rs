//! What the user typed: flags and arguments only, checked by clap. `main.rs` turns them into
//! rule sets, readers and sinks; no library sees these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    Run(RunArgs),
    /// Replay recorded events through the rules; alerts (NDJSON) to stdout or --alerts.
    Replay(ReplayArgs),
    /// Check or list detection rules.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Print the auditctl lines for the audit rules `run` installs, for hosts where auditd
    /// (augenrules) manages the rules.
    AuditRules(AuditRulesArgs),
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where exec events come from; auto: on Linux multicast beside a registered audit daemon,
    /// else netlink; on macOS endpoint-security.
    #[arg(long, value_enum, default_value_t = SourceArg::Auto)]
    pub source: SourceArg,

    #[command(flatten)]
    pub rules: RuleArgs,

    /// Append alerts to this file (created with mode 0600) instead of writing them to stdout.
    #[arg(long, value_name = "PATH")]
    pub alerts: Option<PathBuf>,

    /// Key of the audit rules the sensor installs (and the only rules it removes).
    #[arg(long, value_name = "KEY", default_value = "execsentry")]
    pub audit_key: String,

    /// Seconds between counter lines on stderr.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    pub stats_interval: u64,
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
    Check(RuleArgs),
    /// Show the rules that load: id, severity, category, name, origin.
    List(RuleArgs),
}

/// Which rules to load.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// A detection-rules TOML file, or a directory searched recursively for *.toml (repeatable).
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
