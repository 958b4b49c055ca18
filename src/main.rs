//! The `execsentry` command line: glue from flags to rule sets, readers and sinks.
//!
//! Exit codes: 0 success; 1 `rules check` found rule errors; 2 the command could not do its job
//! (bad arguments, a missing input or rules path, an unreadable input, a failing alert sink).

mod cli;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::Parser;

use cli::{
    AuditRulesArgs, Cli, Command, FormatArg, ReplayArgs, RuleArgs, RulesArgs, RulesCommand, RunArgs,
};
use execsentry::config::{Config, Overrides, SourceKind};
use execsentry::eql;
use execsentry::pipeline::{SinkThreadOptions, Snapshot, StatsHook};
use execsentry::replay::{Flow, FormatChoice, Replay, ReplayError};
use execsentry::rules::load::{load_all, Outcome, Report};
use execsentry::rules::{coverage, RuleSet};
use execsentry::sink::stats::StatsFile;
use execsentry::sink::{FileOptions, FileSink, Sink, StdoutSink};
use execsentry::source::Format;

fn main() -> ExitCode {
    let cli = match system_extension_invocation() {
        Some(args) => Cli::parse_from(args),
        None => Cli::parse(),
    };
    init_logging(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("execsentry: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Where alerts and the log go when macOS starts execsentry with no arguments
/// (packaging/macos/README.md; the launchd daemon writes the same files).
#[cfg(target_os = "macos")]
const SYSTEM_EXTENSION_ALERTS: &str = "/Library/Logs/ExecSentry/alerts.ndjson";
#[cfg(target_os = "macos")]
const SYSTEM_EXTENSION_LOG: &str = "/Library/Logs/ExecSentry/execsentry.log";

/// macOS starts the system extension's executable with no arguments: it then runs as
/// `execsentry -v run --source endpoint-security --alerts /Library/Logs/ExecSentry/alerts.ndjson`,
/// creating the directory if the installer did not. Nobody reads a system extension's standard
/// error, so unless it is a terminal it is appended to `execsentry.log` beside the alerts.
#[cfg(target_os = "macos")]
fn system_extension_invocation() -> Option<Vec<std::ffi::OsString>> {
    let mut args = std::env::args_os();
    let argv0 = args.next().unwrap_or_else(|| "execsentry".into());
    if args.next().is_some() {
        return None;
    }
    if let Some(dir) = Path::new(SYSTEM_EXTENSION_ALERTS).parent() {
        if let Err(e) = std::fs::create_dir_all(dir) {
            eprintln!("execsentry: cannot create {}: {e}", dir.display());
        }
    }
    // SAFETY: isatty only inspects descriptor 2.
    if unsafe { libc::isatty(2) } == 0 {
        if let Err(e) = redirect_stderr(Path::new(SYSTEM_EXTENSION_LOG)) {
            eprintln!("execsentry: cannot log to {SYSTEM_EXTENSION_LOG}: {e}");
        }
    }
    let rest = [
        "-v",
        "run",
        "--source",
        "endpoint-security",
        "--alerts",
        SYSTEM_EXTENSION_ALERTS,
    ];
    Some(
        std::iter::once(argv0)
            .chain(rest.iter().map(Into::into))
            .collect(),
    )
}

/// Points standard error (the log, and every `eprintln!`) at `path`, appending.
#[cfg(target_os = "macos")]
fn redirect_stderr(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)?;
    // SAFETY: both descriptors are open; afterwards descriptor 2 refers to the log file, which
    // stays open after `file` is dropped.
    if unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(not(target_os = "macos"))]
fn system_extension_invocation() -> Option<Vec<std::ffi::OsString>> {
    None
}

fn init_logging(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .target(env_logger::Target::Stderr)
        .init();
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run_live(*args),
        Command::AuditRules(args) => audit_rules(&args),
        Command::Replay(args) => replay(args),
        Command::Rules(RulesCommand::Check(args)) => rules_check(&args),
        Command::Rules(RulesCommand::List(args)) => rules_list(&args),
    }
}

fn load_reports(args: &RuleArgs) -> Result<Vec<Report>> {
    Ok(load_all(
        !args.no_builtin_rules,
        &args.rules,
        &eql::Options::default(),
    )?)
}

/// The rules `run` would load: the config file's `[rules]` and `[throttle]`, flags over them.
fn configured_reports(args: &RulesArgs) -> Result<Vec<Report>> {
    let (mut config, file) = Config::load(args.config.as_deref())?;
    if let Some(path) = &file {
        log::info!("rules as configured in {}", path.display());
    }
    config.apply(Overrides {
        rules: args.rules.rules.clone(),
        builtin_rules: args.rules.no_builtin_rules.then_some(false),
        ..Overrides::default()
    });
    rule_reports(&config)
}

/// Every rule the config names, as loaded, with its throttle override applied.
fn rule_reports(config: &Config) -> Result<Vec<Report>> {
    let mut reports = load_all(
        config.rules.builtin,
        &config.rules.paths,
        &eql::Options::default(),
    )?;
    config.throttle.apply(&mut reports);
    Ok(reports)
}

/// Writes to stdout; a reader that went away (`| head`) ends the output quietly.
fn print(text: &str) -> Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other.context("writing to stdout")?),
    }
}

fn rules_check(args: &RulesArgs) -> Result<ExitCode> {
    let reports = configured_reports(args)?;
    let mut out = String::new();
    let mut counts = [0usize; 4];
    let mut cover = [Tally::default(), Tally::default()];
    for report in &reports {
        let origin = &report.origin;
        let name = report.outcome.name().unwrap_or("-");
        match &report.outcome {
            Outcome::Ok(rule) => {
                counts[0] += 1;
                let _ = writeln!(out, "ok           {origin}  {name}");
                let verdicts: Vec<String> = coverage::SOURCES
                    .iter()
                    .zip(cover.iter_mut())
                    .map(|(source, tally)| {
                        let v = coverage::assess(rule, source);
                        tally.add(&v);
                        format!("{}: {v}", source.name)
                    })
                    .collect();
                let _ = writeln!(out, "             {}", verdicts.join(" | "));
            }
            Outcome::Unsupported { problem, .. } => {
                counts[1] += 1;
                let at = problem
                    .position
                    .map(|(l, c)| format!(" at {l}:{c}"))
                    .unwrap_or_default();
                let _ = writeln!(
                    out,
                    "unsupported  {origin}  {name} ({}{at})",
                    problem.message
                );
            }
            Outcome::Skipped { reason, .. } => {
                counts[2] += 1;
                let _ = writeln!(out, "skipped      {origin}  {name} ({reason})");
            }
            Outcome::Error { problems, .. } => {
                counts[3] += 1;
                for (i, problem) in problems.iter().enumerate() {
                    let word = if i == 0 { "error      " } else { "  and      " };
                    let _ = writeln!(out, "{word}  {}", problem.located(origin));
                    if !problem.snippet.is_empty() {
                        for line in problem.snippet.lines() {
                            let _ = writeln!(out, "             {line}");
                        }
                    }
                }
            }
        }
    }
    if counts[0] > 0 {
        let _ = writeln!(
            out,
            "coverage of the {} loaded (never fed: by first reason):",
            plural(counts[0], "rule")
        );
        for (source, tally) in coverage::SOURCES.iter().zip(&cover) {
            let _ = writeln!(
                out,
                "  {:<6} {} fed, {} never fed",
                format!("{}:", source.name),
                tally.fed,
                tally.never
            );
            let mut reasons: Vec<(&String, &usize)> = tally.reasons.iter().collect();
            reasons.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (why, n) in reasons.iter().take(COVERAGE_REASONS) {
                let _ = writeln!(out, "           {n:>4}  {why}");
            }
            if reasons.len() > COVERAGE_REASONS {
                let _ = writeln!(
                    out,
                    "           ... and {} other reasons",
                    reasons.len() - COVERAGE_REASONS
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "{}: {} ok, {} unsupported, {} skipped, {}",
        plural(reports.len(), "rule"),
        counts[0],
        counts[1],
        counts[2],
        plural(counts[3], "error"),
    );
    print(&out)?;
    Ok(if counts[3] > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// How many reasons for "never fed" the coverage summary lists per source.
const COVERAGE_REASONS: usize = 8;

/// Coverage counts for one source.
#[derive(Default)]
struct Tally {
    fed: usize,
    never: usize,
    /// First reason → rules it keeps from being fed.
    reasons: std::collections::HashMap<String, usize>,
}

impl Tally {
    fn add(&mut self, v: &coverage::Verdict) {
        match v {
            coverage::Verdict::Fed { .. } => self.fed += 1,
            coverage::Verdict::Never { reasons } => {
                self.never += 1;
                if let Some(first) = reasons.first() {
                    *self.reasons.entry(first.clone()).or_default() += 1;
                }
            }
        }
    }
}

fn rules_list(args: &RulesArgs) -> Result<ExitCode> {
    let (set, rest) = RuleSet::from_reports(configured_reports(args)?);
    let rows: Vec<[String; 5]> = set
        .rules()
        .iter()
        .map(|r| {
            [
                r.meta.rule_id.clone(),
                r.meta.severity.to_string(),
                r.shape(),
                r.meta.name.clone(),
                r.origin.to_string(),
            ]
        })
        .collect();
    let header = ["RULE ID", "SEVERITY", "CATEGORY", "NAME", "ORIGIN"].map(str::to_owned);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(&rows) {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    let _ = write!(out, "{} loaded", plural(set.len(), "rule"));
    if rest.is_empty() {
        out.push('\n');
    } else {
        let _ = writeln!(
            out,
            "; {} not loaded (see `execsentry rules check`)",
            rest.len()
        );
    }
    print(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// `1 rule`, `2 rules`.
fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// An input as named on the command line, opened before any work starts so a typo fails fast.
struct Input {
    name: String,
    reader: Box<dyn Read>,
}

fn open_inputs(files: &[PathBuf]) -> Result<Vec<Input>> {
    let mut stdin_used = false;
    files
        .iter()
        .map(|path| {
            if path == Path::new("-") {
                if stdin_used {
                    bail!("standard input (-) can be read only once");
                }
                stdin_used = true;
                return Ok(Input {
                    name: "-".into(),
                    reader: Box::new(io::stdin().lock()),
                });
            }
            let file =
                File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
            if file.metadata().is_ok_and(|m| m.is_dir()) {
                bail!("cannot read {}: it is a directory", path.display());
            }
            Ok(Input {
                name: path.display().to_string(),
                reader: Box::new(file),
            })
        })
        .collect()
}

fn replay(args: ReplayArgs) -> Result<ExitCode> {
    let (rules, rest) = RuleSet::from_reports(load_reports(&args.rules)?);
    warn_not_loaded(&rest);
    if rules.is_empty() {
        bail!("no rules loaded; drop --no-builtin-rules or pass --rules PATH");
    }
    let inputs = open_inputs(&args.files)?;
    let sink: Box<dyn Sink> = match &args.alerts {
        Some(path) => Box::new(
            FileSink::open(path)
                .with_context(|| format!("cannot open alerts file {}", path.display()))?,
        ),
        None => Box::new(StdoutSink::new()),
    };
    let format = match args.format {
        FormatArg::Auto => FormatChoice::Auto,
        FormatArg::Ecs => FormatChoice::Fixed(Format::Ecs),
        FormatArg::Audit => FormatChoice::Fixed(Format::Audit),
        FormatArg::Eslogger => FormatChoice::Fixed(Format::Eslogger),
    };
    let mut replay = Replay::new(&rules, sink);
    // Audit and eslogger records are process events only, as live: sequences that need
    // network or file events could never complete, so they are not run.
    if let FormatChoice::Fixed(Format::Audit | Format::Eslogger) = format {
        replay = replay.source_produces(&["process"]);
    }
    let mut failure: Option<ReplayError> = None;
    for input in inputs {
        match replay.input(&input.name, input.reader, format) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Stop) => {
                log::info!("alert output closed; stopping");
                break;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if failure.is_none() {
        if let Err(e) = replay.end_of_input() {
            failure = Some(e);
        }
    }
    eprint!("{}", summary(&replay, &rules));
    if let Err(e) = replay.finish() {
        failure.get_or_insert(e);
    }
    match failure {
        Some(e) => Err(e.into()),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// Rule errors are warnings in `replay` (the other rules still run); unsupported and skipped
/// rules are expected when pointing at Elastic's whole rule tree, so they are counted, and
/// listed with -v.
fn warn_not_loaded(rest: &[Report]) {
    let (mut unsupported, mut skipped) = (0, 0);
    for report in rest {
        match &report.outcome {
            Outcome::Error { problems, .. } => {
                if let Some(p) = problems.first() {
                    log::warn!("rule not loaded: {}", p.located(&report.origin));
                }
            }
            Outcome::Unsupported { problem, .. } => {
                unsupported += 1;
                log::info!("rule unsupported: {}", problem.located(&report.origin));
            }
            Outcome::Skipped { reason, .. } => {
                skipped += 1;
                log::info!("rule skipped: {}: {reason}", report.origin);
            }
            Outcome::Ok(_) => {}
        }
    }
    if unsupported + skipped > 0 {
        log::warn!(
            "{unsupported} unsupported and {skipped} skipped rules not loaded (see `execsentry rules check`)"
        );
    }
}

fn summary<S: Sink>(replay: &Replay<'_, S>, rules: &RuleSet) -> String {
    let s = replay.stats();
    let elapsed = replay.elapsed().as_secs_f64();
    let rate = if elapsed > 0.0 {
        s.events as f64 / elapsed
    } else {
        0.0
    };
    let mut out = String::from("replay summary\n");
    let _ = writeln!(out, "  files:       {}", s.files);
    let _ = writeln!(out, "  events:      {}", s.events);
    let _ = writeln!(out, "  malformed:   {}", s.malformed);
    for sample in &s.malformed_samples {
        let _ = writeln!(out, "    {sample}");
    }
    if s.malformed > s.malformed_samples.len() as u64 {
        let _ = writeln!(
            out,
            "    ... and {} more",
            s.malformed - s.malformed_samples.len() as u64
        );
    }
    if s.es_seq_gaps > 0 {
        let _ = writeln!(
            out,
            "  lost:        {} Endpoint Security messages (eslogger sequence-number gaps)",
            s.es_seq_gaps
        );
    }
    let _ = writeln!(out, "  alerts:      {}", s.alerts);
    let _ = writeln!(out, "  suppressed:  {} by throttle", s.suppressed);
    for (rule, n) in replay.throttle().suppressed_by_rule(rules) {
        let _ = writeln!(
            out,
            "    {} {} (max_signals {} per {}): {n}",
            rule.meta.rule_id, rule.meta.name, rule.meta.max_signals, rule.meta.interval
        );
    }
    if rules.stateful_count() > 0 {
        let st = replay.state_stats();
        let _ = writeln!(
            out,
            "  stateful:    {} rules (sequences, samples, pipes): {} results, {} partial matches held (peak {}), {} keys",
            rules.stateful_count(),
            st.completed,
            st.pending,
            st.peak_pending,
            st.keys
        );
        let _ = writeln!(
            out,
            "    dropped:   {} expired (maxspan), {} by until, {} by missing events, {} overwritten, {} out of order, {} late events",
            st.expired, st.until, st.missing, st.overwritten, st.out_of_order, s.late
        );
        let _ = writeln!(
            out,
            "    evicted:   {} keys holding {} partial matches (state caps)",
            st.evicted_keys, st.evicted_pending
        );
    }
    let _ = writeln!(out, "  elapsed:     {elapsed:.3} s");
    let _ = writeln!(out, "  events/s:    {rate:.0}");
    out
}

/// `execsentry run`: the configuration file, overridden by flags; then the live sensor.
fn run_live(args: RunArgs) -> Result<ExitCode> {
    let print_config = args.print_config;
    let (config, file) = effective_config(args)?;
    if print_config {
        let from = match &file {
            Some(path) => format!("# {} with flags applied\n", path.display()),
            None => "# no config file; defaults with flags applied\n".to_owned(),
        };
        print(&format!("{from}{}", config.to_toml()))?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = &file {
        log::info!("configuration from {}", path.display());
    }
    run_sensor(&config)
}

/// The config file (explicit, default path, or none) with the flags laid over it.
fn effective_config(args: RunArgs) -> Result<(Config, Option<PathBuf>)> {
    let (mut config, file) = Config::load(args.config.as_deref())?;
    config.apply(Overrides {
        source: args.source.map(|s| match s {
            cli::SourceArg::Auto => SourceKind::Auto,
            cli::SourceArg::Netlink => SourceKind::Netlink,
            cli::SourceArg::Multicast => SourceKind::Multicast,
            cli::SourceArg::Audisp => SourceKind::Audisp,
            cli::SourceArg::EndpointSecurity => SourceKind::EndpointSecurity,
        }),
        rules: args.rules.rules,
        builtin_rules: args.rules.no_builtin_rules.then_some(false),
        max_signals: args.max_signals,
        throttle_interval: args.throttle_interval,
        alerts: args.alerts,
        events: args.events,
        group: args.file_group,
        fsync: args.fsync,
        rotate_size: args.rotate_size,
        rotate_keep: args.rotate_keep,
        alert_queue: args.alert_queue,
        stats_interval: args.stats_interval,
        stats_json: args.stats_json,
        record_queue: args.record_queue,
        alert_channel: args.alert_channel,
        process_table: args.process_table,
        audit_key: args.audit_key,
        backlog_limit: args.backlog_limit,
        backlog_wait_time: args.backlog_wait_time,
        receive_buffer: args.receive_buffer,
    });
    Ok((config, file))
}

// What every live sensor does with the config: rules, outputs, the stats file, the last word.
// (Only Linux and macOS have a live sensor; elsewhere these go unused.)

/// The rules the config names, with the throttle override; an empty set is an error.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
fn load_rules(config: &Config) -> Result<RuleSet> {
    let (rules, rest) = RuleSet::from_reports(rule_reports(config)?);
    warn_not_loaded(&rest);
    if rules.is_empty() {
        bail!(
            "no rules loaded; drop --no-builtin-rules (rules.builtin = false) or pass --rules PATH"
        );
    }
    Ok(rules)
}

/// The rules again for SIGHUP: the same paths, built-in switch and throttle override as at
/// start. Any rule error refuses the whole set (the running one is kept) and says where each
/// error is; an empty set is refused too.
#[cfg(target_os = "linux")]
fn reload_rules(config: &Config) -> std::result::Result<RuleSet, String> {
    let mut reports = load_all(
        config.rules.builtin,
        &config.rules.paths,
        &eql::Options::default(),
    )
    .map_err(|e| e.to_string())?;
    let errors: Vec<String> = reports
        .iter()
        .filter_map(|r| match &r.outcome {
            Outcome::Error { problems, .. } => Some(
                problems
                    .iter()
                    .map(|p| p.located(&r.origin))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            _ => None,
        })
        .collect();
    if !errors.is_empty() {
        return Err(format!(
            "{}: {}",
            plural(errors.len(), "rule error"),
            errors.join("; ")
        ));
    }
    config.throttle.apply(&mut reports);
    let (rules, rest) = RuleSet::from_reports(reports);
    warn_not_loaded(&rest);
    if rules.is_empty() {
        return Err("the new rule set is empty".into());
    }
    Ok(rules)
}

/// How output files are written, with the group resolved.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
fn file_options(config: &Config) -> Result<FileOptions> {
    config.file_options().with_context(|| {
        format!(
            "output.group {:?}",
            config.output.group.as_deref().unwrap_or("")
        )
    })
}

/// An output named in the config: a file written as the config says, or stdout for `-`.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
fn open_output(
    path: Option<&Path>,
    what: &str,
    options: &FileOptions,
) -> Result<Box<dyn Sink + Send>> {
    Ok(match path {
        Some(p) if !Config::is_stdout(Some(p)) => Box::new(
            FileSink::with_options(p, options.clone())
                .with_context(|| format!("cannot open {what} file {}", p.display()))?,
        ),
        _ => Box::new(StdoutSink::new()),
    })
}

/// `stats.json`: written once now, so a bad path fails before the sensor starts; then by the
/// returned hook at every stats interval.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
fn stats_hook(config: &Config) -> Result<Option<StatsHook>> {
    let Some(path) = &config.stats.json else {
        return Ok(None);
    };
    let file = StatsFile::create(path, &Snapshot::default())
        .with_context(|| format!("cannot write stats file {}", path.display()))?;
    Ok(Some(StatsHook::new(move |snapshot| {
        if let Err(e) = file.write(snapshot) {
            log::warn!("cannot write stats file {}: {e}", file.path().display());
        }
    })))
}

/// The final counters: to the stats file, and a warning for output lines given up.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
fn finish_stats(counters: &Snapshot, hook: Option<&StatsHook>) {
    if let Some(hook) = hook {
        hook.call(counters);
    }
    if counters.sink_dropped > 0 {
        eprintln!(
            "execsentry: warning: {} output lines were not written (the output failed for longer than its queue could hold; {} write errors)",
            counters.sink_dropped, counters.sink_errors
        );
    }
}

/// The alert sink thread as the config sizes it.
#[cfg_attr(not(any(target_os = "linux", target_os = "macos")), allow(dead_code))]
fn alert_sink_thread(config: &Config) -> SinkThreadOptions {
    SinkThreadOptions {
        channel: config.pipeline.alert_channel.0,
        queue: config.output.queue.0,
        ..SinkThreadOptions::alerts()
    }
}

/// `execsentry run` on Linux: kernel audit, until SIGINT/SIGTERM.
#[cfg(target_os = "linux")]
fn run_sensor(config: &Config) -> Result<ExitCode> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use execsentry::process_table::Limits;
    use execsentry::source::audit_live::{self, LiveOptions, SourceChoice, StopHandles};

    let source = match config.source.kind {
        SourceKind::Auto => SourceChoice::Auto,
        SourceKind::Netlink => SourceChoice::Netlink,
        SourceKind::Multicast => SourceChoice::Multicast,
        SourceKind::Audisp => SourceChoice::Audisp,
        SourceKind::EndpointSecurity => bail!("source endpoint-security exists only on macOS"),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let stoppers = Arc::new(StopHandles::default());
    let (reload_tx, reloads) = crossbeam_channel::bounded(1);
    let rules = Arc::new(load_rules(config)?);
    let loaded = Arc::new(std::sync::atomic::AtomicUsize::new(rules.len()));
    {
        let (stop, stoppers) = (Arc::clone(&stop), Arc::clone(&stoppers));
        let config = config.clone();
        execsentry::pipeline::on_signals(
            move |sig| {
                log::info!("signal {sig}: stopping");
                stop.store(true, Ordering::Relaxed);
                stoppers.stop();
            },
            move || {
                let msg = match reload_rules(&config) {
                    Ok(set) => {
                        let n = set.len();
                        log::warn!("SIGHUP: loaded {n} rules; swapping them in");
                        loaded.store(n, Ordering::Relaxed);
                        audit_live::Reload::Rules(Arc::new(set))
                    }
                    Err(why) => {
                        log::error!(
                            "rules reload failed, keeping {} rules: {why}",
                            loaded.load(Ordering::Relaxed)
                        );
                        audit_live::Reload::Refused
                    }
                };
                // Waits while the evaluator has not taken the previous reload yet.
                let _ = reload_tx.send(msg);
            },
        )
        .context("installing signal handling")?;
    }
    let file_options = file_options(config)?;
    let outputs = audit_live::Outputs {
        alerts: open_output(config.output.alerts.as_deref(), "alerts", &file_options)?,
        events: match config.output.events.as_deref() {
            Some(p) => Some(open_output(Some(p), "events", &file_options)?),
            None => None,
        },
    };
    let on_stats = stats_hook(config)?;
    let opts = LiveOptions {
        source,
        key: config.audit.key.0.clone(),
        rcvbuf: usize::try_from(config.audit.receive_buffer.0).unwrap_or(usize::MAX),
        backlog_limit: config.audit.backlog_limit,
        backlog_wait_time: config.audit.backlog_wait_time,
        stats_interval: config.stats.interval.0,
        queue_batches: config.pipeline.record_queue.0,
        table: Limits {
            capacity: config.pipeline.process_table.0,
            ..Limits::default()
        },
        sinks: (
            alert_sink_thread(config),
            SinkThreadOptions {
                channel: config.pipeline.alert_channel.0,
                ..SinkThreadOptions::events()
            },
        ),
        on_stats: on_stats.clone(),
    };
    let host = Arc::new(execsentry::host::local());
    let counters = audit_live::run(&opts, rules, reloads, outputs, host, stop, &stoppers)?;
    eprintln!("execsentry: stopped; {counters}");
    if counters.lost() > 0 {
        eprintln!(
            "execsentry: warning: {} exec events may have been missed (serial gaps {}, kernel lost {}, queue drops {})",
            counters.lost(),
            counters.serial_gaps,
            counters.kernel_lost,
            counters.channel_drops
        );
    }
    finish_stats(&counters, on_stats.as_ref());
    Ok(ExitCode::SUCCESS)
}

/// `execsentry run` on macOS: an Endpoint Security client, until SIGINT/SIGTERM.
#[cfg(target_os = "macos")]
fn run_sensor(config: &Config) -> Result<ExitCode> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    use execsentry::process_table::Limits;
    use execsentry::source::es_live::{self, EsLiveOptions};

    match config.source.kind {
        SourceKind::Auto | SourceKind::EndpointSecurity => {}
        other => bail!("source {other:?} is a Linux audit source; on macOS use endpoint-security"),
    }
    if config.output.events.is_some() {
        bail!("output.events (--events) is not written by the macOS sensor yet");
    }
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        execsentry::pipeline::on_stop_signal(move |sig| {
            log::info!("signal {sig}: stopping");
            stop.store(true, Ordering::Relaxed);
        })
        .context("installing signal handling")?;
    }
    let rules = load_rules(config)?;
    let sink = open_output(
        config.output.alerts.as_deref(),
        "alerts",
        &file_options(config)?,
    )?;
    let on_stats = stats_hook(config)?;
    let opts = EsLiveOptions {
        stats_interval: config.stats.interval.0,
        table: Limits {
            capacity: config.pipeline.process_table.0,
            ..Limits::default()
        },
        sink: alert_sink_thread(config),
        on_stats: on_stats.clone(),
        ..EsLiveOptions::default()
    };
    let host = Arc::new(execsentry::host::local());
    let counters = es_live::run(&opts, &rules, sink, host, stop)?;
    eprintln!("execsentry: stopped; {counters}");
    if counters.lost() > 0 {
        eprintln!(
            "execsentry: warning: {} events may have been missed (dropped by the kernel {}, queue drops {})",
            counters.lost(),
            counters.serial_gaps,
            counters.channel_drops
        );
    }
    finish_stats(&counters, on_stats.as_ref());
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn run_sensor(_config: &Config) -> Result<ExitCode> {
    bail!("the live sensor is not available on this platform; use `execsentry replay`")
}

/// `execsentry audit-rules`: what `run` would install, as auditctl lines.
#[cfg(target_os = "linux")]
fn audit_rules(args: &AuditRulesArgs) -> Result<ExitCode> {
    let arch =
        execsentry_linux::Arch::native().context("no audit syscall table for this architecture")?;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# execsentry exec rules ({}); for /etc/audit/rules.d/execsentry.rules",
        arch.name()
    );
    for line in execsentry_linux::control::exec_rules_auditctl(arch, args.audit_key.as_bytes()) {
        let _ = writeln!(out, "{line}");
    }
    print(&out)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(target_os = "linux"))]
fn audit_rules(_args: &AuditRulesArgs) -> Result<ExitCode> {
    bail!("audit rules exist only on Linux")
}
