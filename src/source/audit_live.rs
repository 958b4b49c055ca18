//! `execsentry run` on Linux: kernel audit records in, alerts out, until SIGINT/SIGTERM.
//!
//! Setup takes the audit subsystem as it finds it and gives it back: as the audit daemon
//! (unicast) when none is registered, or as a read-only multicast listener beside one; its own
//! execve/execveat rules carry its own key and are the only rules it ever deletes. Everything it
//! changed is restored by guards, also on error.
//!
//! Threads: the reader only receives and batches records (a full queue drops the batch, counted);
//! the evaluator parses, assembles, normalizes and runs the rules; the sink writes alerts; the
//! main thread prints the counters and, on the kernel side, watches for tampering
//! ([`audit_tamper`]). In netlink mode a lost daemon role sends the reader to the multicast
//! group until it is free again ([`crate::source::audit_daemon`]). As an auditd plugin the
//! kernel side is auditd's: the main thread only prints the counters.

use std::io::{self, BufReader, Read};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use execsentry_linux::control::{
    AuditConfigGuard, AuditStatus, Control, LostCounter, StatusChange,
};
use execsentry_linux::netlink::{daemon_alive, Received, RecordSocket, SocketOptions, Stopper};
use execsentry_linux::reader::{LineErrorKind, LineReader};
use execsentry_linux::{parse_body, parse_line, Arch, Assembler, AssemblerConfig, AuditEvent};
use thiserror::Error;

use crate::document::JsonDocument;
use crate::event::HostInfo;
use crate::event::ProcessEvent;
use crate::pipeline::ChannelSink;
use crate::pipeline::{spawn_sink, Counters, SinkThreadOptions, Snapshot, StatsHook};
use crate::process_table::Limits;
use crate::replay::{Flow, Replay, ReplayError};
use crate::rules::RuleSet;
use crate::sink::{EventWriter, Sink};
use crate::source::audit_daemon::{DaemonWatch, RecordSource};
use crate::source::audit_tamper::{self, Watch};
use crate::source::linux_audit::AuditNormalizer;

/// Where records come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceChoice {
    /// Multicast when an audit daemon is registered, otherwise netlink.
    Auto,
    /// Become the audit daemon (unicast netlink).
    Netlink,
    /// Listen beside the registered audit daemon (multicast netlink).
    Multicast,
    /// Run as an auditd plugin: records as text lines on stdin.
    Audisp,
}

/// Settings of a live run.
#[derive(Clone, Debug)]
pub struct LiveOptions {
    pub source: SourceChoice,
    /// Key of the sensor's own audit rules.
    pub key: String,
    pub rcvbuf: usize,
    /// Unicast only: the kernel queue and how long audited syscalls may wait for us (jiffies);
    /// 0 drops (counted in `lost`) rather than stalling every process on the host.
    pub backlog_limit: u32,
    pub backlog_wait_time: u32,
    pub stats_interval: Duration,
    /// Record batches queued between reader and evaluator.
    pub queue_batches: usize,
    pub table: Limits,
    /// The alert and event sink threads: channel, failure queue, retry.
    pub sinks: (SinkThreadOptions, SinkThreadOptions),
    /// Called with each periodic counters snapshot (`--stats-json`).
    pub on_stats: Option<StatsHook>,
}

impl Default for LiveOptions {
    fn default() -> LiveOptions {
        LiveOptions {
            source: SourceChoice::Auto,
            key: "execsentry".into(),
            rcvbuf: 32 * 1024 * 1024,
            backlog_limit: 8192,
            backlog_wait_time: 0,
            stats_interval: Duration::from_secs(60),
            queue_batches: 1024,
            table: Limits::default(),
            sinks: (SinkThreadOptions::alerts(), SinkThreadOptions::events()),
            on_stats: None,
        }
    }
}

#[derive(Debug, Error)]
pub enum LiveError {
    #[error(
        "kernel audit configuration is locked (enabled=2): rules cannot be added until reboot; \
         use --source multicast to read what the existing rules produce"
    )]
    Locked,
    #[error("another audit daemon (pid {pid}) is registered; use --source multicast (or auto) to run beside it, or --source audisp as its plugin")]
    DaemonRegistered { pid: u32 },
    #[error("kernel audit: {0}")]
    Audit(#[from] execsentry_linux::Error),
    #[error("this architecture has no known audit syscall table")]
    UnknownArch,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// What a SIGHUP hands the evaluator.
#[derive(Debug)]
pub enum Reload {
    /// A new rule set, checked: swapped in between batches.
    Rules(Arc<RuleSet>),
    /// The new rules had errors; the running set stays (counted).
    Refused,
}

/// Records handed from the reader to the evaluator.
enum Batch {
    /// Netlink records: (type, body) pairs packed in one buffer.
    Netlink {
        buf: Vec<u8>,
        spans: Vec<(u16, u32, u32)>,
    },
    /// Text lines (auditd plugin stream).
    Lines {
        buf: Vec<u8>,
        spans: Vec<(u32, u32)>,
    },
    /// Nothing arrived for a while: lets the assembler time out open events.
    Idle,
    /// A change to the audit configuration someone else made (tamper detection), as the
    /// document the rules see.
    Tamper(Box<JsonDocument>),
}

const BATCH_RECORDS: usize = 256;

/// The kernel's longest single argument (MAX_ARG_STRLEN, NUL included).
const MAX_ARG_STRLEN: usize = 128 * 1024;

/// The sensor's size caps on top of the assembler's defaults. No argument is ever cut: padding
/// inside one argument must not push `/dev/tcp/...` past what the rules see. The whole argv is
/// capped (memory per in-flight event is bounded by it), far above what any real command uses.
pub fn sensor_limits(config: AssemblerConfig) -> AssemblerConfig {
    AssemblerConfig {
        max_arg_bytes: MAX_ARG_STRLEN,
        max_argv_bytes: 1024 * 1024,
        ..config
    }
}

/// Where a live run writes: alerts always, every event (ECS NDJSON) when asked.
pub struct Outputs<S> {
    pub alerts: S,
    pub events: Option<S>,
}

/// Runs until `stop` is set (by a signal) or the input ends; returns the final counters.
/// A rule set sent on `reloads` replaces the running one between record batches (see
/// [`Replay::with_rules`]: partial sequence matches of the old set are dropped).
pub fn run<S: Sink + Send + 'static>(
    opts: &LiveOptions,
    rules: Arc<RuleSet>,
    reloads: Receiver<Reload>,
    outputs: Outputs<S>,
    host: Arc<HostInfo>,
    stop: Arc<AtomicBool>,
    stoppers: &StopHandles,
) -> Result<Snapshot, LiveError> {
    let counters = Arc::new(Counters::default());
    let mut normalizer = AuditNormalizer::live(Arc::clone(&host), opts.table);
    let seeded = normalizer.seed_from_proc();
    log::info!("process table seeded with {seeded} running processes");

    if opts.source == SourceChoice::Audisp {
        let (tx, rx) = bounded(opts.queue_batches.max(1));
        let reader = {
            let (stop, counters) = (Arc::clone(&stop), Arc::clone(&counters));
            thread::Builder::new()
                .name("audisp-reader".into())
                .spawn(move || read_lines(PollingStdin { stop }, &tx, &counters))?
        };
        eprintln!(
            "execsentry: ready (source audisp: auditd plugin records on stdin; {} rules)",
            rules.len()
        );
        let snapshot = thread::scope(|scope| -> Result<Snapshot, LiveError> {
            let evaluator = {
                let counters = Arc::clone(&counters);
                thread::Builder::new()
                    .name("evaluator".into())
                    .spawn_scoped(scope, move || {
                        evaluate(
                            rx,
                            rules,
                            reloads,
                            outputs,
                            normalizer,
                            sensor_limits(AssemblerConfig::text()),
                            &counters,
                            opts.sinks,
                        )
                    })?
            };
            // auditd owns the kernel side: nothing to poll there, only the counters line.
            poll_status(
                None,
                None,
                &counters,
                &stop,
                opts.stats_interval,
                opts.on_stats.as_ref(),
                || evaluator.is_finished(),
            );
            Ok(evaluator.join().expect("evaluator panicked"))
        })?;
        drop(reader);
        return Ok(snapshot);
    }

    let native = Arch::native().ok_or(LiveError::UnknownArch)?;
    let mut guard = match AuditConfigGuard::new(Control::open()?) {
        Ok(g) => Some(g),
        Err(execsentry_linux::Error::Locked) if opts.source != SourceChoice::Netlink => None,
        Err(execsentry_linux::Error::Locked) => return Err(LiveError::Locked),
        Err(e) => return Err(e.into()),
    };
    let status = match &mut guard {
        Some(g) => *g.original(),
        None => Control::open()?.status()?,
    };
    let mut watch = None;
    let multicast = match opts.source {
        SourceChoice::Multicast => true,
        SourceChoice::Netlink => false,
        // A registered daemon that is gone (a sensor that was killed) is replaced, not joined.
        _ => (status.pid != 0 && daemon_alive(status.pid)) || guard.is_none(),
    };
    // The guard turns audit on (and back off at exit), not the socket: a socket registered
    // again after a takeover must not take that duty with it.
    let socket_opts = SocketOptions {
        rcvbuf: opts.rcvbuf,
        enable: false,
    };
    if let Some(g) = &mut guard {
        g.ensure_enabled()?;
    }
    let socket = if multicast {
        RecordSocket::multicast(socket_opts)?
    } else {
        match RecordSocket::unicast(socket_opts) {
            Ok(s) => s,
            Err(execsentry_linux::Error::DaemonRegistered { pid }) => {
                return Err(LiveError::DaemonRegistered { pid })
            }
            Err(execsentry_linux::Error::Locked) => return Err(LiveError::Locked),
            Err(e) => return Err(e.into()),
        }
    };
    if let Some(g) = &mut guard {
        if !multicast {
            g.set(
                &StatusChange::default()
                    .backlog_limit(opts.backlog_limit.max(status.backlog_limit))
                    .backlog_wait_time(opts.backlog_wait_time),
            )?;
        }
        // Rules with our key left by a run that was killed: ours to replace.
        for stale in g.control().rules_with_key(opts.key.as_bytes())? {
            log::warn!(
                "removing a stale execsentry audit rule: {}",
                stale.to_auditctl()
            );
            g.control().delete_rule(&stale)?;
        }
        let added = g.install_exec_rules(native, opts.key.as_bytes())?;
        log::info!("installed {added} exec audit rules with key {:?}", opts.key);
        let ours = g.control().rules_with_key(opts.key.as_bytes())?.len();
        watch = Some(Watch::new(&opts.key, native, ours));
    } else {
        log::warn!("audit configuration is locked: reading only what the existing rules produce");
    }
    eprintln!(
        "execsentry: ready (source {}, receive buffer {} bytes, {} rules, audit key {:?})",
        if multicast { "multicast" } else { "netlink" },
        socket.rcvbuf().effective,
        rules.len(),
        opts.key
    );
    let (mut source, link) = RecordSource::new(socket, socket_opts);
    // Beside another daemon the role is not ours to keep.
    let daemon = (!multicast && watch.is_some()).then(|| DaemonWatch::new(link));
    stoppers.set(source.stopper());

    let (tx, rx) = bounded(opts.queue_batches.max(1));
    let tamper_tx = tx.clone();
    let snapshot = thread::scope(|scope| -> Result<Snapshot, LiveError> {
        let reader_counters = Arc::clone(&counters);
        let reader = thread::Builder::new()
            .name("audit-reader".into())
            .spawn_scoped(scope, move || {
                read_netlink(&mut source, &tx, &reader_counters).map(|()| source)
            })?;
        let evaluator = {
            let (counters, sinks) = (Arc::clone(&counters), opts.sinks);
            thread::Builder::new()
                .name("evaluator".into())
                .spawn_scoped(scope, move || {
                    evaluate(
                        rx,
                        rules,
                        reloads,
                        outputs,
                        normalizer,
                        sensor_limits(AssemblerConfig::netlink()),
                        &counters,
                        sinks,
                    )
                })?
        };
        let tamper = watch
            .as_mut()
            .map(|w| Tamper::new(w, daemon, tamper_tx, &host));
        poll_status(
            guard.as_mut(),
            tamper,
            &counters,
            &stop,
            opts.stats_interval,
            opts.on_stats.as_ref(),
            || reader.is_finished(),
        );
        // The source is dropped here: a registration still ours is released.
        let source = reader.join().expect("audit reader panicked");
        let snapshot = evaluator.join().expect("evaluator panicked");
        if let Err(e) = &source {
            log::error!("reading kernel audit failed: {e}");
        }
        Ok(snapshot)
    })?;
    if let Some(mut g) = guard {
        g.restore()?;
    }
    Ok(snapshot)
}

/// Wakes whatever the live run is blocked on, from the signal thread. A stop that arrives before
/// the socket exists is remembered and applied when it is set, so an early SIGTERM cannot leave
/// the reader blocked.
#[derive(Default)]
pub struct StopHandles {
    state: std::sync::Mutex<(Option<Stopper>, bool)>,
}

impl StopHandles {
    fn set(&self, s: Stopper) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.1 {
            s.stop();
        }
        state.0 = Some(s);
    }

    pub fn stop(&self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 = true;
        if let Some(s) = &state.0 {
            s.stop();
        }
    }
}

/// How long the reader naps after draining a burst, so the records of the next few execs are
/// read together instead of waking the thread once per record (the kernel sends each record on
/// its own). Bounds the latency it adds; the receive buffer holds far more than a nap's worth.
const COALESCE: Duration = Duration::from_millis(2);

/// How long the reader waits for a record before telling the evaluator time moved on.
const IDLE_TICK: Duration = Duration::from_millis(100);

/// The reader thread: receive, batch, hand off; never waits for the evaluator. Each drained
/// burst is handed off at once (so an alert never waits for more records) and followed by a
/// short nap ([`COALESCE`]); only when a nap brought nothing does it block on the socket. With
/// the socket drained it carries out what the tamper watch asked (see [`RecordSource`]).
fn read_netlink(
    source: &mut RecordSource,
    tx: &Sender<Batch>,
    counters: &Counters,
) -> Result<(), execsentry_linux::Error> {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut spans = Vec::with_capacity(BATCH_RECORDS);
    let (mut busy, mut poll_now) = (false, false);
    loop {
        let wait = if poll_now { Duration::ZERO } else { IDLE_TICK };
        let received = match source.socket().recv(Some(wait)) {
            Ok(r) => r,
            Err(e) => {
                source.failed(e, counters)?;
                continue;
            }
        };
        match received {
            Received::Record { rtype, body } => {
                let start = buf.len() as u32;
                buf.extend_from_slice(body);
                spans.push((rtype, start, buf.len() as u32));
                Counters::add(&counters.records, 1);
                (busy, poll_now) = (true, true);
            }
            Received::Overrun => {
                Counters::add(&counters.enobufs, 1);
                (busy, poll_now) = (true, true);
            }
            Received::Stopped => break,
            Received::Idle => {
                if !spans.is_empty() {
                    hand_off_records(tx, &mut buf, &mut spans, counters);
                }
                if !poll_now {
                    // A whole tick without records: cheap to check the socket is still ours.
                    source.check(counters)?;
                }
                source.obey(counters);
                if busy {
                    busy = false;
                    thread::sleep(COALESCE);
                } else if poll_now {
                    poll_now = false;
                } else {
                    let _ = tx.try_send(Batch::Idle);
                }
                continue;
            }
        }
        if spans.len() >= BATCH_RECORDS {
            hand_off_records(tx, &mut buf, &mut spans, counters);
            source.obey(counters);
        }
    }
    if !spans.is_empty() {
        let _ = tx.send(Batch::Netlink { buf, spans });
    }
    Ok(())
}

fn hand_off_records(
    tx: &Sender<Batch>,
    buf: &mut Vec<u8>,
    spans: &mut Vec<(u16, u32, u32)>,
    counters: &Counters,
) {
    let batch = Batch::Netlink {
        buf: std::mem::replace(buf, Vec::with_capacity(64 * 1024)),
        spans: std::mem::replace(spans, Vec::with_capacity(BATCH_RECORDS)),
    };
    hand_off(tx, batch, counters);
}

fn hand_off(tx: &Sender<Batch>, batch: Batch, counters: &Counters) {
    let n = match &batch {
        Batch::Netlink { spans, .. } => spans.len(),
        Batch::Lines { spans, .. } => spans.len(),
        Batch::Idle | Batch::Tamper(_) => 0,
    };
    if let Err(TrySendError::Full(_)) = tx.try_send(batch) {
        Counters::add(&counters.channel_drops, n as u64);
    }
}

/// The reader thread for the plugin stream: lines, batched. It waits for the evaluator rather
/// than dropping: auditd queues behind us, and its own overflow policy applies.
fn read_lines<R: Read>(input: R, tx: &Sender<Batch>, counters: &Counters) {
    let mut input = BufReader::with_capacity(256 * 1024, input);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut spans = Vec::with_capacity(BATCH_RECORDS);
    let mut line = Vec::new();
    loop {
        line.clear();
        match io::BufRead::read_until(&mut input, b'\n', &mut line) {
            Ok(0) => break,
            Ok(_) => {
                let start = buf.len() as u32;
                buf.extend_from_slice(line.strip_suffix(b"\n").unwrap_or(&line));
                spans.push((start, buf.len() as u32));
                Counters::add(&counters.records, 1);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::error!("reading audit records from stdin: {e}");
                break;
            }
        }
        if spans.len() >= BATCH_RECORDS || input.buffer().is_empty() {
            let batch = Batch::Lines {
                buf: std::mem::take(&mut buf),
                spans: std::mem::take(&mut spans),
            };
            if tx.send(batch).is_err() {
                return;
            }
        }
    }
    if !spans.is_empty() {
        let _ = tx.send(Batch::Lines { buf, spans });
    }
}

/// The evaluator: records → assembled execs → events → rules → alert lines to the sink thread
/// (and, when asked, every event to its own sink thread). Between batches it takes a reloaded
/// rule set, if one was sent: the assembler and process table carry over, so no exec is lost to
/// a reload; the stateful rules start over (partial sequence matches of the old set are
/// dropped, not completed) and so does the throttle.
#[allow(clippy::too_many_arguments)]
fn evaluate<S: Sink + Send + 'static>(
    rx: Receiver<Batch>,
    rules: Arc<RuleSet>,
    reloads: Receiver<Reload>,
    outputs: Outputs<S>,
    normalizer: AuditNormalizer,
    config: AssemblerConfig,
    counters: &Arc<Counters>,
    sinks: (SinkThreadOptions, SinkThreadOptions),
) -> Snapshot {
    let (channel_sink, sink_thread) = spawn_sink(outputs.alerts, sinks.0, Arc::clone(counters));
    let events = outputs.events.map(|sink| {
        let (tx, thread) = spawn_sink(sink, sinks.1, Arc::clone(counters));
        (EventWriter::new(tx), thread)
    });
    let mut asm = Assembler::new(config);
    let mut stage = Stage {
        normalizer,
        recycler: asm.recycler(),
        events,
        last_prune: Instant::now(),
        last_publish: Instant::now(),
    };
    let no_rules = RuleSet::new(Vec::new());
    let mut current = rules;
    // The replay between rule sets: its sink and totals, on an empty set.
    let mut parked = Replay::new(&no_rules, channel_sink);
    loop {
        let mut replay = parked.with_rules(&current).source_produces(&["process"]);
        match pump(&rx, &reloads, &mut asm, &mut replay, &mut stage, counters) {
            Some(next) => {
                parked = replay.with_rules(&no_rules);
                Counters::add(&counters.rule_reloads, 1);
                log::warn!(
                    "rules reloaded: {} rules (was {}); partial sequence matches dropped",
                    next.len(),
                    current.len()
                );
                current = next;
            }
            None => {
                asm.flush(&mut |ev| stage.take(ev, &mut replay));
                store_assembler_stats(&asm, counters);
                if let Err(e) = replay.end_of_input() {
                    log::error!("{e}");
                }
                replay.publish(counters);
                match replay.finish() {
                    Ok(channel_sink) => drop(channel_sink),
                    Err(e) => log::error!("{e}"),
                }
                break;
            }
        }
    }
    if sink_thread.join().is_err() {
        log::error!("the sink thread panicked");
    }
    if let Some((writer, thread)) = stage.events {
        if let Err(e) = writer.finish() {
            log::error!("{e}");
        }
        if thread.join().is_err() {
            log::error!("the event sink thread panicked");
        }
    }
    counters.snapshot()
}

/// What turns assembled records into evaluated events, kept across rule reloads.
struct Stage<S> {
    normalizer: AuditNormalizer,
    recycler: execsentry_linux::assemble::Recycler,
    events: Option<(EventWriter<ChannelSink>, thread::JoinHandle<S>)>,
    last_prune: Instant,
    /// When the rules' counters (alerts, state) were last copied out for the stats line.
    last_publish: Instant,
}

impl<S> Stage<S> {
    fn take(&mut self, ev: AuditEvent, replay: &mut Replay<'_, ChannelSink>) {
        let AuditEvent::Exec(rec) = ev else {
            return;
        };
        let event = self.normalizer.exec(&rec);
        self.recycler.give(rec);
        if let Some((writer, _)) = &mut self.events {
            if let Err(e) = writer.write(&event) {
                log::error!("{e}");
            }
        }
        if let Err(e) = replay.event(&event) {
            log::error!("{e}");
        }
        if self.last_prune.elapsed() > Duration::from_secs(5) {
            self.normalizer.prune(crate::time::now_ns());
            self.last_prune = Instant::now();
        }
    }
}

/// Runs batches through `replay` until the input ends (`None`) or a new rule set arrives.
fn pump<S>(
    rx: &Receiver<Batch>,
    reloads: &Receiver<Reload>,
    asm: &mut Assembler,
    replay: &mut Replay<'_, ChannelSink>,
    stage: &mut Stage<S>,
    counters: &Counters,
) -> Option<Arc<RuleSet>> {
    loop {
        match reloads.try_recv() {
            Ok(Reload::Rules(next)) => return Some(next),
            Ok(Reload::Refused) => Counters::add(&counters.rule_reload_failures, 1),
            Err(_) => {}
        }
        let batch = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(b) => b,
            Err(RecvTimeoutError::Timeout) => Batch::Idle,
            Err(RecvTimeoutError::Disconnected) => return None,
        };
        let mut emit = |ev: AuditEvent| stage.take(ev, replay);
        match batch {
            Batch::Netlink { buf, spans } => {
                for (rtype, start, end) in spans {
                    match parse_body(rtype, &buf[start as usize..end as usize]) {
                        Ok(rec) => asm.push(&rec, &mut emit),
                        Err(_) => Counters::add(&counters.bad_records, 1),
                    }
                }
            }
            Batch::Lines { buf, spans } => {
                for (start, end) in spans {
                    let line = &buf[start as usize..end as usize];
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    match parse_line(line) {
                        Ok(rec) => asm.push(&rec, &mut emit),
                        Err(_) => Counters::add(&counters.bad_records, 1),
                    }
                }
            }
            Batch::Idle => {
                asm.advance_to(crate::time::now_ns() as u64 / 1_000_000, &mut emit);
            }
            Batch::Tamper(doc) => {
                if let Err(e) = replay.event(&*doc) {
                    log::error!("{e}");
                }
            }
        }
        store_assembler_stats(asm, counters);
        if stage.last_publish.elapsed() >= PUBLISH_EVERY {
            replay.publish(counters);
            stage.last_publish = Instant::now();
        }
    }
}

/// How often the evaluator copies the rules' counters out, so the periodic stats line (at
/// least a second apart) shows alerts as they happen, not only at exit.
const PUBLISH_EVERY: Duration = Duration::from_millis(250);

fn store_assembler_stats(asm: &Assembler, counters: &Counters) {
    let s = asm.stats();
    counters.events.store(s.exec_events, Ordering::Relaxed);
    counters.incomplete.store(s.incomplete, Ordering::Relaxed);
    counters
        .serial_gaps
        .store(s.lost_serials, Ordering::Relaxed);
}

/// Tamper detection's part of the main thread: what to watch, and where findings go.
struct Tamper<'a> {
    watch: &'a mut Watch,
    /// Netlink mode: the daemon role.
    daemon: Option<DaemonWatch>,
    tx: Sender<Batch>,
    host: &'a HostInfo,
    /// Kinds of change found by the last poll: a change that persists (a re-arm that keeps
    /// failing) is reported once, and retried every [`REARM_RETRY`].
    last: Vec<std::mem::Discriminant<audit_tamper::Finding>>,
    last_rearm: Instant,
}

/// How often a re-arm that failed is tried again.
const REARM_RETRY: Duration = Duration::from_secs(5);

impl<'a> Tamper<'a> {
    fn new(
        watch: &'a mut Watch,
        daemon: Option<DaemonWatch>,
        tx: Sender<Batch>,
        host: &'a HostInfo,
    ) -> Tamper<'a> {
        Tamper {
            watch,
            daemon,
            tx,
            host,
            last: Vec::new(),
            last_rearm: Instant::now(),
        }
    }

    /// One poll; each new change becomes an event for the rules, then the sensor re-arms.
    /// (The daemon watch reports each takeover once by itself and re-arms through the reader.)
    fn poll(&mut self, guard: &mut AuditConfigGuard, counters: &Counters) {
        let (findings, status) = match self.watch.check(guard) {
            Ok(found) => found,
            Err(e) => {
                log::warn!("polling audit status for tampering: {e}");
                return;
            }
        };
        let kinds: Vec<_> = findings.iter().map(std::mem::discriminant).collect();
        let mut fresh = false;
        for (f, kind) in findings.iter().zip(&kinds) {
            if !self.last.contains(kind) {
                fresh = true;
                self.report(f, &status, counters);
            }
        }
        if let Some(f) = self.daemon.as_mut().and_then(|d| d.poll(&status)) {
            self.report(&f, &status, counters);
        }
        if !findings.is_empty() && (fresh || self.last_rearm.elapsed() >= REARM_RETRY) {
            self.last_rearm = Instant::now();
            self.watch.rearm(guard, &findings);
        }
        self.last = kinds;
    }

    fn report(&self, f: &audit_tamper::Finding, status: &AuditStatus, counters: &Counters) {
        Counters::add(&counters.tamper_events, 1);
        log::error!("tamper: {}", f.message(self.watch.key()));
        let doc = f.document(self.watch.key(), status, self.host, crate::time::now_ns());
        // Waits when the evaluator is behind: a tamper alert is never dropped here.
        let _ = self.tx.send(Batch::Tamper(Box::new(doc)));
    }
}

/// The main thread while the pipeline runs: tamper checks every [`audit_tamper::POLL`], kernel
/// `lost` polled from the control socket (so it is seen even when the pipeline is stuck) and a
/// counters line every `interval`.
fn poll_status(
    mut guard: Option<&mut AuditConfigGuard>,
    mut tamper: Option<Tamper<'_>>,
    counters: &Counters,
    stop: &AtomicBool,
    interval: Duration,
    on_stats: Option<&StatsHook>,
    finished: impl Fn() -> bool,
) {
    let mut lost = LostCounter::default();
    if let Some(g) = guard.as_deref_mut() {
        if let Ok(s) = g.control().status() {
            lost.update(&s);
        }
    }
    let mut last_stats = Instant::now();
    let mut last_poll = Instant::now();
    let mut last_tamper = Instant::now();
    while !stop.load(Ordering::Relaxed) && !finished() {
        thread::sleep(Duration::from_millis(50));
        if let (Some(g), Some(t)) = (guard.as_deref_mut(), tamper.as_mut()) {
            if last_tamper.elapsed() >= audit_tamper::POLL {
                last_tamper = Instant::now();
                t.poll(g, counters);
            }
        }
        if last_poll.elapsed() >= Duration::from_secs(2) {
            last_poll = Instant::now();
            if let Some(g) = guard.as_deref_mut() {
                match g.control().status() {
                    Ok(s) => {
                        lost.update(&s);
                        counters.kernel_lost.store(lost.total(), Ordering::Relaxed);
                    }
                    Err(e) => log::warn!("polling audit status: {e}"),
                }
            }
        }
        if last_stats.elapsed() >= interval {
            last_stats = Instant::now();
            let snapshot = counters.snapshot();
            eprintln!("execsentry: stats {snapshot}");
            if let Some(hook) = on_stats {
                hook.call(&snapshot);
            }
        }
    }
    if let Some(g) = guard {
        if let Ok(s) = g.control().status() {
            lost.update(&s);
            counters.kernel_lost.store(lost.total(), Ordering::Relaxed);
        }
    }
}

/// Standard input that reports end of input once `stop` is set, so a blocked plugin read never
/// keeps the sensor from shutting down.
struct PollingStdin {
    stop: Arc<AtomicBool>,
}

impl Read for PollingStdin {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(0);
            }
            let mut fd = libc::pollfd {
                fd: 0,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, count 1.
            let rc = unsafe { libc::poll(&mut fd, 1, 200) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if rc > 0 {
                // SAFETY: `out` is a live, writable buffer of `out.len()` bytes.
                let n = unsafe { libc::read(0, out.as_mut_ptr().cast(), out.len()) };
                if n < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
                return Ok(n as usize);
            }
        }
    }
}

/// `replay --format audit`: audit.log text (raw or ENRICHED) through the same assembler and
/// normalizer as the live source, with the process table built from the records alone.
pub fn replay_log<R: Read, S: Sink>(
    input: R,
    name: &str,
    replay: &mut Replay<'_, S>,
    normalizer: &mut AuditNormalizer,
) -> Result<(ReplayLogStats, Flow), ReplayError> {
    read_log(input, name, normalizer, |event| replay.event(event))
}

/// Reads audit log text and hands each exec event to `on_event` until the input ends, it returns
/// [`Flow::Stop`], or it fails (that error is returned). Events come in the order they complete.
pub fn read_log<R: Read>(
    input: R,
    name: &str,
    normalizer: &mut AuditNormalizer,
    mut on_event: impl FnMut(&ProcessEvent) -> Result<Flow, ReplayError>,
) -> Result<(ReplayLogStats, Flow), ReplayError> {
    let mut reader = LineReader::new(BufReader::with_capacity(256 * 1024, input));
    let mut asm = Assembler::new(sensor_limits(AssemblerConfig::text()));
    let recycler = asm.recycler();
    let mut stats = ReplayLogStats::default();
    let mut outcome: Result<Flow, ReplayError> = Ok(Flow::Continue);
    let going = std::cell::Cell::new(true);
    // Each event is built over the previous one (see `AuditNormalizer::exec_into`).
    let mut last: Option<ProcessEvent> = None;
    let mut emit = |ev: AuditEvent| {
        if !going.get() {
            return;
        }
        if let AuditEvent::Exec(rec) = ev {
            let event = match &mut last {
                Some(event) => {
                    normalizer.exec_into(&rec, event);
                    event
                }
                None => last.insert(normalizer.exec(&rec)),
            };
            recycler.give(rec);
            outcome = on_event(event);
            going.set(matches!(outcome, Ok(Flow::Continue)));
        }
    };
    loop {
        let item = reader.next_record().map_err(|source| ReplayError::Read {
            name: name.to_owned(),
            source,
        })?;
        match item {
            None => break,
            Some(Ok(rec)) => asm.push(&rec, &mut emit),
            Some(Err(bad)) => {
                if stats.malformed_samples.len() < crate::replay::MALFORMED_SAMPLES {
                    let why = match &bad.kind {
                        LineErrorKind::Parse(e) => e.kind.to_string(),
                        LineErrorKind::TooLong { len } => {
                            format!("line of {len} bytes is over the limit")
                        }
                    };
                    stats
                        .malformed_samples
                        .push(format!("{name}:{}:{}: {why}", bad.line, bad.column));
                }
            }
        }
        if !going.get() {
            break;
        }
    }
    asm.flush(&mut emit);
    let flow = outcome?;
    let r = reader.stats();
    let a = asm.stats();
    stats.lines = r.lines;
    stats.malformed = r.bad_lines;
    stats.incomplete = a.incomplete;
    stats.lost_serials = a.lost_serials;
    Ok((stats, flow))
}

/// What an audit log replay adds to the summary.
#[derive(Clone, Debug, Default)]
pub struct ReplayLogStats {
    pub lines: u64,
    pub malformed: u64,
    pub malformed_samples: Vec<String>,
    pub incomplete: u64,
    pub lost_serials: u64,
}
