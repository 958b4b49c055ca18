//! The live pipeline's shared parts: counters, the sink thread, and stop signals.
//!
//! Threads (design.md §8): a source thread that only reads and hands off, an evaluator thread
//! that assembles, normalizes and runs the rules, and a sink thread that writes alert lines.
//! Channels are bounded. Records may be dropped only at the source edge, each one counted; a
//! slow sink makes the evaluator wait. A *failing* sink (full disk) does not: its thread holds
//! lines in a bounded queue and retries, and only what that queue cannot hold is dropped,
//! counted. Shutdown is dropping senders: the source stops, the evaluator drains and flushes,
//! the sink writes what is left.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use crate::sink::{Sink, SinkError};

/// Every counter the pipeline keeps; each stage adds to its own.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records read from the source.
    pub records: AtomicU64,
    /// Records that could not be parsed.
    pub bad_records: AtomicU64,
    /// Exec events produced.
    pub events: AtomicU64,
    /// Events ended by timeout, cap or shutdown rather than their last record.
    pub incomplete: AtomicU64,
    /// Serials never seen (events lost between the kernel and us).
    pub serial_gaps: AtomicU64,
    /// Receive-buffer overflows reported by the socket.
    pub enobufs: AtomicU64,
    /// The kernel's own `lost` counter, as a delta since start.
    pub kernel_lost: AtomicU64,
    /// Records dropped because the evaluator fell behind.
    pub channel_drops: AtomicU64,
    pub alerts: AtomicU64,
    /// Alerts held back by a rule's `max_signals` per `interval`.
    pub suppressed: AtomicU64,
    /// Failed attempts to write or flush an output.
    pub sink_errors: AtomicU64,
    /// Lines a sink thread gave up: its queue was full while the output failed, the output's
    /// reader went away, or it still failed at exit.
    pub sink_dropped: AtomicU64,
    /// Lines waiting in sink queues now (a gauge).
    pub sink_queued: AtomicU64,
    /// Partial matches held by sequences and samples now, and the join keys they are under.
    pub partial_matches: AtomicU64,
    pub state_keys: AtomicU64,
    /// Partial matches evicted at a rule's state cap (not expired: lost).
    pub state_evicted: AtomicU64,
    /// Events too late for sequences and samples (single-event rules still saw them).
    pub late_events: AtomicU64,
    /// Changes to the audit configuration made by someone else while the sensor runs.
    pub tamper_events: AtomicU64,
    /// Netlink mode: times the sensor lost the audit daemon role (its registration taken or
    /// removed, its socket closed from outside) and read the multicast group instead, and times
    /// it registered again.
    pub daemon_lost: AtomicU64,
    pub daemon_regained: AtomicU64,
    /// Rule sets swapped in by SIGHUP, and reloads refused (the old set kept).
    pub rule_reloads: AtomicU64,
    pub rule_reload_failures: AtomicU64,
}

/// A consistent-enough copy of [`Counters`] for logs, summaries and `--stats-json`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Snapshot {
    pub records: u64,
    pub bad_records: u64,
    pub events: u64,
    pub incomplete: u64,
    pub serial_gaps: u64,
    pub enobufs: u64,
    pub kernel_lost: u64,
    pub channel_drops: u64,
    pub alerts: u64,
    pub suppressed: u64,
    pub sink_errors: u64,
    pub sink_dropped: u64,
    pub sink_queued: u64,
    pub partial_matches: u64,
    pub state_keys: u64,
    pub state_evicted: u64,
    pub late_events: u64,
    pub tamper_events: u64,
    pub daemon_lost: u64,
    pub daemon_regained: u64,
    pub rule_reloads: u64,
    pub rule_reload_failures: u64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Snapshot {
            records: g(&self.records),
            bad_records: g(&self.bad_records),
            events: g(&self.events),
            incomplete: g(&self.incomplete),
            serial_gaps: g(&self.serial_gaps),
            enobufs: g(&self.enobufs),
            kernel_lost: g(&self.kernel_lost),
            channel_drops: g(&self.channel_drops),
            alerts: g(&self.alerts),
            suppressed: g(&self.suppressed),
            sink_errors: g(&self.sink_errors),
            sink_dropped: g(&self.sink_dropped),
            sink_queued: g(&self.sink_queued),
            partial_matches: g(&self.partial_matches),
            state_keys: g(&self.state_keys),
            state_evicted: g(&self.state_evicted),
            late_events: g(&self.late_events),
            tamper_events: g(&self.tamper_events),
            daemon_lost: g(&self.daemon_lost),
            daemon_regained: g(&self.daemon_regained),
            rule_reloads: g(&self.rule_reloads),
            rule_reload_failures: g(&self.rule_reload_failures),
        }
    }
}

impl Snapshot {
    /// Everything that means an exec may have gone unseen.
    pub fn lost(&self) -> u64 {
        self.serial_gaps + self.kernel_lost + self.channel_drops
    }
}

impl fmt::Display for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "records={} bad_records={} events={} incomplete={} serial_gaps={} enobufs={} kernel_lost={} \
             channel_drops={} alerts={} suppressed={} sink_errors={} sink_dropped={} sink_queued={} \
             partial_matches={} state_keys={} state_evicted={} late_events={} \
             tamper_events={} daemon_lost={} daemon_regained={} rule_reloads={} \
             rule_reload_failures={}",
            self.records,
            self.bad_records,
            self.events,
            self.incomplete,
            self.serial_gaps,
            self.enobufs,
            self.kernel_lost,
            self.channel_drops,
            self.alerts,
            self.suppressed,
            self.sink_errors,
            self.sink_dropped,
            self.sink_queued,
            self.partial_matches,
            self.state_keys,
            self.state_evicted,
            self.late_events,
            self.tamper_events,
            self.daemon_lost,
            self.daemon_regained,
            self.rule_reloads,
            self.rule_reload_failures
        )
    }
}

/// A [`Sink`] that hands each line to the sink thread, waiting when it is behind: alerts are
/// never dropped here.
pub struct ChannelSink {
    tx: Sender<Vec<u8>>,
}

impl Sink for ChannelSink {
    fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
        self.tx.send(line.to_vec()).map_err(|_| SinkError::Closed)
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// How a sink thread buffers, and how it holds lines while its output fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SinkThreadOptions {
    /// What it writes (`alerts`, `events`): the thread's name and the word its logs use.
    pub name: &'static str,
    /// Lines in flight from the evaluator. A slow (not failing) output makes the evaluator
    /// wait here: backpressure, never loss.
    pub channel: usize,
    /// Lines held in memory while the output fails. Past this, new lines are dropped and
    /// counted (`sink_dropped`); the oldest are kept, and written first once it recovers.
    pub queue: usize,
    /// Pause between attempts on a failing output.
    pub retry: Duration,
    /// At most one error log line per this long while failing (the rest are counted).
    pub report_every: Duration,
    /// At shutdown, how long queued lines are retried before they are given up (and counted).
    pub drain: Duration,
}

impl SinkThreadOptions {
    /// Alert lines: a few KB each, so the default queue holds about 30 MB.
    pub fn alerts() -> SinkThreadOptions {
        SinkThreadOptions {
            name: "alerts",
            channel: 4096,
            queue: 10_000,
            retry: Duration::from_secs(1),
            report_every: Duration::from_secs(30),
            drain: Duration::from_secs(5),
        }
    }

    /// Every event: many more lines, and the alerts matter more than they do.
    pub fn events() -> SinkThreadOptions {
        SinkThreadOptions {
            name: "events",
            ..SinkThreadOptions::alerts()
        }
    }
}

impl Default for SinkThreadOptions {
    fn default() -> SinkThreadOptions {
        SinkThreadOptions::alerts()
    }
}

/// How often the sink thread wakes when nothing arrives (flush, [`Sink::idle`]).
const IDLE_TICK: Duration = Duration::from_millis(200);

/// Starts a sink thread. It writes every line it receives, flushes whenever it has nothing left
/// to write, and ends (flushing) when every [`ChannelSink`] is gone.
///
/// While the output fails (a full disk, a removed directory) the thread keeps taking lines, so
/// the evaluator never stalls on it: they wait, in order, in a queue of at most
/// `options.queue` lines, retried every `options.retry`; each failed attempt counts in
/// `sink_errors`, what the queue cannot hold in `sink_dropped`, and the error is logged at most
/// once per `options.report_every`. A reader that went away ([`SinkError::Closed`]) ends the
/// output: later lines are counted as dropped.
pub fn spawn_sink<S: Sink + Send + 'static>(
    sink: S,
    options: SinkThreadOptions,
    counters: Arc<Counters>,
) -> (ChannelSink, JoinHandle<S>) {
    let (tx, rx): (Sender<Vec<u8>>, Receiver<Vec<u8>>) = bounded(options.channel.max(1));
    let handle = thread::Builder::new()
        .name(format!("sink-{}", options.name))
        .spawn(move || {
            let mut w = SinkWriter::new(sink, options, counters);
            loop {
                let wait = if w.pending.is_empty() {
                    IDLE_TICK
                } else {
                    w.next_retry
                        .saturating_duration_since(Instant::now())
                        .min(IDLE_TICK)
                };
                let timed_out = match rx.recv_timeout(wait) {
                    Ok(line) => {
                        w.offer(line);
                        false
                    }
                    Err(RecvTimeoutError::Timeout) => true,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                if !w.pending.is_empty() && Instant::now() >= w.next_retry {
                    w.retry();
                }
                if rx.is_empty() {
                    w.settle(timed_out);
                }
            }
            w.finish()
        })
        .expect("spawning a sink thread");
    (ChannelSink { tx }, handle)
}

/// The sink thread's state: the output, the lines waiting for it, and what to report.
struct SinkWriter<S> {
    sink: S,
    options: SinkThreadOptions,
    counters: Arc<Counters>,
    pending: VecDeque<Vec<u8>>,
    /// `pending.len()` as last added to the shared `sink_queued` gauge.
    gauge: u64,
    next_retry: Instant,
    /// Lines written since the last flush.
    dirty: bool,
    closed: bool,
    /// Since when the output fails, and what happened since the last log line.
    failing_since: Option<Instant>,
    last_report: Option<Instant>,
    failures_unreported: u64,
    dropped_unreported: u64,
}

impl<S: Sink> SinkWriter<S> {
    fn new(sink: S, options: SinkThreadOptions, counters: Arc<Counters>) -> SinkWriter<S> {
        SinkWriter {
            sink,
            options,
            counters,
            pending: VecDeque::new(),
            gauge: 0,
            next_retry: Instant::now(),
            dirty: false,
            closed: false,
            failing_since: None,
            last_report: None,
            failures_unreported: 0,
            dropped_unreported: 0,
        }
    }

    /// A new line: written now when nothing waits before it, else queued (or dropped, counted).
    fn offer(&mut self, line: Vec<u8>) {
        if self.closed {
            self.drop_lines(1);
            return;
        }
        if self.pending.is_empty() {
            match self.sink.write_line(&line) {
                Ok(()) => {
                    self.dirty = true;
                    return;
                }
                Err(e) => {
                    self.failed(&e);
                    if self.closed {
                        self.drop_lines(1);
                        return;
                    }
                }
            }
        }
        if self.pending.len() < self.options.queue.max(1) {
            self.pending.push_back(line);
        } else {
            self.drop_lines(1);
        }
        self.update_gauge();
    }

    /// Writes queued lines in order until one fails.
    fn retry(&mut self) {
        while let Some(line) = self.pending.front() {
            match self.sink.write_line(line) {
                Ok(()) => {
                    self.pending.pop_front();
                    self.dirty = true;
                }
                Err(e) => {
                    self.failed(&e);
                    break;
                }
            }
        }
        if self.pending.is_empty() {
            if let Some(since) = self.failing_since.take() {
                log::warn!(
                    "{} output works again after {:.0?}; {} failed attempts and {} lines dropped since the last report",
                    self.options.name,
                    since.elapsed(),
                    self.failures_unreported,
                    self.dropped_unreported
                );
                self.failures_unreported = 0;
                self.dropped_unreported = 0;
                self.last_report = None;
            }
        }
        self.update_gauge();
    }

    fn failed(&mut self, e: &SinkError) {
        Counters::add(&self.counters.sink_errors, 1);
        if matches!(e, SinkError::Closed) {
            log::warn!(
                "{} output closed by its reader; {} lines are no longer written",
                self.options.name,
                self.options.name
            );
            self.closed = true;
            let n = self.pending.len() as u64;
            self.pending.clear();
            self.drop_lines(n);
            self.update_gauge();
            return;
        }
        let now = Instant::now();
        self.next_retry = now + self.options.retry;
        self.failing_since.get_or_insert(now);
        self.failures_unreported += 1;
        if self
            .last_report
            .is_none_or(|t| now.duration_since(t) >= self.options.report_every)
        {
            log::error!(
                "cannot write {}: {e}; {} lines wait in memory (room for {}), {} failed attempts and {} lines dropped since the last report; retrying every {:?}",
                self.options.name,
                self.pending.len(),
                self.options.queue,
                self.failures_unreported,
                self.dropped_unreported,
                self.options.retry
            );
            self.last_report = Some(now);
            self.failures_unreported = 0;
            self.dropped_unreported = 0;
        }
    }

    fn drop_lines(&mut self, n: u64) {
        Counters::add(&self.counters.sink_dropped, n);
        self.dropped_unreported += n;
    }

    fn update_gauge(&mut self) {
        let now = self.pending.len() as u64;
        if now > self.gauge {
            Counters::add(&self.counters.sink_queued, now - self.gauge);
        } else {
            self.counters
                .sink_queued
                .fetch_sub(self.gauge - now, Ordering::Relaxed);
        }
        self.gauge = now;
    }

    /// Nothing more to read for now: flush what was written, or do the sink's idle work.
    fn settle(&mut self, timed_out: bool) {
        if self.closed {
            return;
        }
        if self.dirty {
            match self.sink.flush() {
                Ok(()) => self.dirty = false,
                Err(e) => self.failed(&e),
            }
        } else if timed_out {
            if let Err(e) = self.sink.idle() {
                self.failed(&e);
            }
        }
    }

    /// The channel closed: retry what waits for up to `options.drain`, then flush.
    fn finish(mut self) -> S {
        let deadline = Instant::now() + self.options.drain;
        while !self.pending.is_empty() && !self.closed {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            thread::sleep(
                self.next_retry
                    .saturating_duration_since(now)
                    .min(deadline - now),
            );
            self.retry();
        }
        if !self.pending.is_empty() {
            let n = self.pending.len() as u64;
            log::error!(
                "{n} {} lines could not be written before exit: {} output still failing",
                self.options.name,
                self.options.name
            );
            self.pending.clear();
            self.drop_lines(n);
            self.update_gauge();
        }
        if !self.closed {
            if let Err(e) = self.sink.flush() {
                Counters::add(&self.counters.sink_errors, 1);
                log::error!("cannot flush {}: {e}", self.options.name);
            }
        }
        self.sink
    }
}

/// Called with every periodic counters snapshot (e.g. to write `--stats-json`).
#[derive(Clone)]
pub struct StatsHook(Arc<dyn Fn(&Snapshot) + Send + Sync>);

impl StatsHook {
    pub fn new(f: impl Fn(&Snapshot) + Send + Sync + 'static) -> StatsHook {
        StatsHook(Arc::new(f))
    }

    pub fn call(&self, snapshot: &Snapshot) {
        (self.0)(snapshot)
    }
}

impl fmt::Debug for StatsHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StatsHook")
    }
}

/// SIGINT and SIGTERM (stop) delivered to one thread by `sigwait`,
/// so no code runs in signal-handler context. Call before spawning any other thread: the
/// signals are blocked in the caller, and threads inherit that.
#[cfg(unix)]
pub fn on_stop_signal(on_stop: impl Fn(i32) + Send + 'static) -> std::io::Result<()> {
    on_signals(on_stop, || {
        log::warn!("SIGHUP: rule reload is not supported by this sensor; keeping the loaded rules")
    })
}

#[cfg(unix)]
/// SIGINT, SIGTERM (stop) and SIGHUP (reload) delivered to one thread by `sigwait`; SIGHUP calls `on_reload` (on the signal thread: it may take its
/// time, a second SIGHUP waits for it).
pub fn on_signals(
    on_stop: impl Fn(i32) + Send + 'static,
    on_reload: impl Fn() + Send + 'static,
) -> std::io::Result<()> {
    // SAFETY: sigset operations on a zeroed, local sigset_t; pthread_sigmask changes only the
    // calling thread's mask (inherited by threads spawned afterwards).
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(std::io::Error::from_raw_os_error(rc));
        }
        set
    };
    thread::Builder::new()
        .name("signals".into())
        .spawn(move || loop {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` is a valid, initialized sigset; `sig` is a live out-parameter.
            let rc = unsafe { libc::sigwait(&set, &mut sig) };
            if rc == 0 {
                if sig == libc::SIGHUP {
                    on_reload();
                } else {
                    on_stop(sig);
                }
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;

    fn quick(queue: usize) -> SinkThreadOptions {
        SinkThreadOptions {
            name: "test",
            channel: 2,
            queue,
            retry: Duration::from_millis(10),
            report_every: Duration::from_secs(30),
            drain: Duration::from_millis(200),
        }
    }

    #[test]
    fn sink_thread_writes_everything_then_returns_the_sink() {
        let counters = Arc::new(Counters::default());
        let (mut tx, handle) = spawn_sink(Vec::<u8>::new(), quick(4), Arc::clone(&counters));
        for i in 0..100 {
            tx.write_line(format!("{{\"n\":{i}}}\n").as_bytes())
                .unwrap();
        }
        drop(tx);
        let out = String::from_utf8(handle.join().unwrap()).unwrap();
        assert_eq!(out.lines().count(), 100);
        assert!(out
            .lines()
            .enumerate()
            .all(|(i, l)| l == format!("{{\"n\":{i}}}")));
        let s = counters.snapshot();
        assert_eq!((s.sink_errors, s.sink_dropped, s.sink_queued), (0, 0, 0));
    }

    /// A sink that fails while `broken` is set (or its first `fail` writes), or reports its
    /// reader gone when `closed` is set.
    #[derive(Default)]
    struct Flaky {
        fail: u32,
        broken: Arc<AtomicBool>,
        closed: bool,
        lines: Vec<Vec<u8>>,
    }

    impl Sink for Flaky {
        fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
            if self.closed {
                return Err(SinkError::Closed);
            }
            if self.fail > 0 || self.broken.load(Ordering::SeqCst) {
                self.fail = self.fail.saturating_sub(1);
                return Err(SinkError::from_io(
                    "test",
                    std::io::Error::from_raw_os_error(libc::ENOSPC),
                ));
            }
            self.lines.push(line.to_vec());
            Ok(())
        }

        fn flush(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
    }

    fn wait_for(what: &str, f: impl Fn() -> bool) {
        let until = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < until, "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn failing_writes_are_retried_and_counted() {
        let counters = Arc::new(Counters::default());
        let flaky = Flaky {
            fail: 2,
            ..Flaky::default()
        };
        let (mut tx, handle) = spawn_sink(flaky, quick(4), Arc::clone(&counters));
        tx.write_line(b"a\n").unwrap();
        tx.write_line(b"b\n").unwrap();
        drop(tx);
        let sink = handle.join().unwrap();
        assert_eq!(sink.lines, vec![b"a\n".to_vec(), b"b\n".to_vec()]);
        let s = counters.snapshot();
        assert_eq!((s.sink_errors, s.sink_dropped), (2, 0));
    }

    #[test]
    fn a_failing_output_queues_in_order_drops_the_overflow_and_never_blocks_the_sender() {
        let counters = Arc::new(Counters::default());
        let broken = Arc::new(AtomicBool::new(true));
        let flaky = Flaky {
            broken: Arc::clone(&broken),
            ..Flaky::default()
        };
        let (mut tx, handle) = spawn_sink(flaky, quick(10), Arc::clone(&counters));
        let started = Instant::now();
        for i in 0..50 {
            tx.write_line(format!("{i}\n").as_bytes()).unwrap();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the sender waited for a failing output"
        );
        wait_for("every line queued or dropped", || {
            let s = counters.snapshot();
            s.sink_queued + s.sink_dropped == 50
        });
        let s = counters.snapshot();
        assert_eq!((s.sink_queued, s.sink_dropped), (10, 40));
        assert!(s.sink_errors >= 1);
        broken.store(false, Ordering::SeqCst);
        wait_for("the queue to drain", || {
            counters.snapshot().sink_queued == 0
        });
        tx.write_line(b"after\n").unwrap();
        drop(tx);
        let sink = handle.join().unwrap();
        let got: Vec<String> = sink
            .lines
            .iter()
            .map(|l| String::from_utf8_lossy(l).trim_end().to_owned())
            .collect();
        let mut want: Vec<String> = (0..10).map(|i| i.to_string()).collect();
        want.push("after".into());
        assert_eq!(got, want, "the oldest lines are kept, in order");
        assert_eq!(counters.snapshot().sink_dropped, 40);
    }

    #[test]
    fn lines_still_failing_at_exit_are_given_up_after_the_drain_time_and_counted() {
        let counters = Arc::new(Counters::default());
        let flaky = Flaky {
            broken: Arc::new(AtomicBool::new(true)),
            ..Flaky::default()
        };
        let (mut tx, handle) = spawn_sink(flaky, quick(100), Arc::clone(&counters));
        for i in 0..5 {
            tx.write_line(format!("{i}\n").as_bytes()).unwrap();
        }
        drop(tx);
        let started = Instant::now();
        let sink = handle.join().unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(sink.lines.is_empty());
        let s = counters.snapshot();
        assert_eq!((s.sink_dropped, s.sink_queued), (5, 0));
        assert!(s.sink_errors >= 2, "retried during the drain: {s}");
    }

    #[test]
    fn a_closed_reader_ends_the_output_and_counts_what_follows() {
        let counters = Arc::new(Counters::default());
        let flaky = Flaky {
            closed: true,
            ..Flaky::default()
        };
        let (mut tx, handle) = spawn_sink(flaky, quick(100), Arc::clone(&counters));
        for _ in 0..3 {
            tx.write_line(b"x\n").unwrap();
        }
        drop(tx);
        handle.join().unwrap();
        let s = counters.snapshot();
        assert_eq!((s.sink_errors, s.sink_dropped, s.sink_queued), (1, 3, 0));
    }

    /// The file sink behind the sink thread: a removed directory holds alerts in memory until it
    /// is back, and the file then holds every line, whole.
    #[test]
    fn a_removed_directory_holds_alerts_until_it_reappears() {
        let dir = std::env::temp_dir().join(format!("execsentry-pipeline-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("alerts.ndjson");
        let sink = crate::sink::FileSink::open(&path).unwrap();
        let counters = Arc::new(Counters::default());
        let (mut tx, handle) = spawn_sink(sink, quick(100), Arc::clone(&counters));
        let line = |i: u32| format!("{{\"n\":{i},\"pad\":\"{}\"}}\n", "z".repeat(100));
        tx.write_line(line(0).as_bytes()).unwrap();
        wait_for("the first line", || {
            std::fs::read_to_string(&path).is_ok_and(|t| t == line(0))
        });
        std::fs::remove_dir_all(&dir).unwrap();
        for i in 1..20 {
            tx.write_line(line(i).as_bytes()).unwrap();
        }
        wait_for("lines queued", || counters.snapshot().sink_queued == 19);
        assert!(counters.snapshot().sink_errors >= 1);
        std::fs::create_dir_all(&dir).unwrap();
        wait_for("the queue to drain", || {
            counters.snapshot().sink_queued == 0
        });
        drop(tx);
        drop(handle.join().unwrap());
        let text = std::fs::read_to_string(&path).unwrap();
        let expected: String = (1..20).map(line).collect();
        assert_eq!(text, expected);
        assert_eq!(counters.snapshot().sink_dropped, 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `/dev/full`: every attempt fails with ENOSPC, nothing is written, everything is counted.
    #[test]
    fn dev_full_is_counted_not_fatal() {
        let sink = crate::sink::FileSink::open(std::path::Path::new("/dev/full")).unwrap();
        let counters = Arc::new(Counters::default());
        let (mut tx, handle) = spawn_sink(sink, quick(3), Arc::clone(&counters));
        for _ in 0..5 {
            tx.write_line(b"{}\n").unwrap();
        }
        drop(tx);
        drop(handle.join().unwrap());
        let s = counters.snapshot();
        assert_eq!((s.sink_dropped, s.sink_queued), (5, 0), "{s}");
        assert!(s.sink_errors >= 2, "{s}");
    }
}
