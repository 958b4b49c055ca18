//! The live pipeline's shared parts: counters, the sink thread, and stop signals.
//!
//! Threads (design.md §8): a source thread that only reads and hands off, an evaluator thread
//! that assembles, normalizes and runs the rules, and a sink thread that writes alert lines.
//! Channels are bounded. Records may be dropped only at the source edge, each one counted;
//! alerts are never dropped (the evaluator waits for the sink instead). Shutdown is dropping
//! senders: the source stops, the evaluator drains and flushes, the sink writes what is left.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

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
    pub sink_errors: AtomicU64,
    /// Partial matches held by sequences and samples now, and the join keys they are under.
    pub partial_matches: AtomicU64,
    pub state_keys: AtomicU64,
    /// Partial matches evicted at a rule's state cap (not expired: lost).
    pub state_evicted: AtomicU64,
    /// Events too late for sequences and samples (single-event rules still saw them).
    pub late_events: AtomicU64,
}

/// A consistent-enough copy of [`Counters`] for logs and summaries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
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
    pub partial_matches: u64,
    pub state_keys: u64,
    pub state_evicted: u64,
    pub late_events: u64,
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
            partial_matches: g(&self.partial_matches),
            state_keys: g(&self.state_keys),
            state_evicted: g(&self.state_evicted),
            late_events: g(&self.late_events),
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
             channel_drops={} alerts={} suppressed={} sink_errors={} partial_matches={} \
             state_keys={} state_evicted={} late_events={}",
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
            self.partial_matches,
            self.state_keys,
            self.state_evicted,
            self.late_events
        )
    }
}

/// A [`Sink`] that hands each line to the sink thread, waiting when it is behind: alerts are
/// never dropped.
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

/// Starts the sink thread. It writes every line it receives, flushes whenever it has nothing
/// left to write, and ends (flushing) when every [`ChannelSink`] is gone. A failing write is
/// counted and logged, and the line retried once a second until it goes through or the
/// pipeline stops, so a full disk delays alerts instead of losing them.
pub fn spawn_sink<S: Sink + Send + 'static>(
    mut sink: S,
    capacity: usize,
    counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
) -> (ChannelSink, JoinHandle<S>) {
    let (tx, rx): (Sender<Vec<u8>>, Receiver<Vec<u8>>) = bounded(capacity.max(1));
    let handle = thread::Builder::new()
        .name("sink".into())
        .spawn(move || {
            let mut dirty = false;
            loop {
                let line = match rx.recv_timeout(Duration::from_millis(200)) {
                    Ok(line) => line,
                    Err(RecvTimeoutError::Timeout) => {
                        if dirty {
                            dirty = flush(&mut sink, &counters).is_err();
                        }
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                while let Err(e) = sink.write_line(&line) {
                    Counters::add(&counters.sink_errors, 1);
                    if matches!(e, SinkError::Closed) {
                        log::warn!(
                            "alert output closed by its reader; alerts are no longer written"
                        );
                        break;
                    }
                    log::error!("cannot write alert (will retry): {e}");
                    if stop.load(Ordering::Relaxed) && rx.is_empty() {
                        break;
                    }
                    thread::sleep(Duration::from_secs(1));
                }
                dirty = true;
                if rx.is_empty() {
                    dirty = flush(&mut sink, &counters).is_err();
                }
            }
            let _ = flush(&mut sink, &counters);
            sink
        })
        .expect("spawning the sink thread");
    (ChannelSink { tx }, handle)
}

fn flush<S: Sink>(sink: &mut S, counters: &Counters) -> Result<(), SinkError> {
    sink.flush().inspect_err(|e| {
        Counters::add(&counters.sink_errors, 1);
        log::error!("cannot flush alerts: {e}");
    })
}

/// SIGINT, SIGTERM (stop) and SIGHUP (reload, later) delivered to one thread by `sigwait`,
/// so no code runs in signal-handler context. Call before spawning any other thread: the
/// signals are blocked in the caller, and threads inherit that.
#[cfg(unix)]
pub fn on_stop_signal(on_stop: impl Fn(i32) + Send + 'static) -> std::io::Result<()> {
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
                    log::warn!(
                        "SIGHUP: rule reload is not supported yet; keeping the loaded rules"
                    );
                    continue;
                }
                on_stop(sig);
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_thread_writes_everything_then_returns_the_sink() {
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (mut tx, handle) = spawn_sink(Vec::<u8>::new(), 2, Arc::clone(&counters), stop);
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
        assert_eq!(counters.snapshot().sink_errors, 0);
    }

    /// A sink that fails its first writes: lines are retried, counted, and not lost.
    struct Flaky {
        fail: u32,
        lines: Vec<Vec<u8>>,
    }

    impl Sink for Flaky {
        fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
            if self.fail > 0 {
                self.fail -= 1;
                return Err(SinkError::from_io(
                    "test",
                    std::io::Error::other("disk full"),
                ));
            }
            self.lines.push(line.to_vec());
            Ok(())
        }

        fn flush(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
    }

    #[test]
    fn failing_writes_are_retried_and_counted() {
        let counters = Arc::new(Counters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (mut tx, handle) = spawn_sink(
            Flaky {
                fail: 2,
                lines: vec![],
            },
            4,
            Arc::clone(&counters),
            stop,
        );
        tx.write_line(b"a\n").unwrap();
        tx.write_line(b"b\n").unwrap();
        drop(tx);
        let sink = handle.join().unwrap();
        assert_eq!(sink.lines, vec![b"a\n".to_vec(), b"b\n".to_vec()]);
        assert_eq!(counters.snapshot().sink_errors, 2);
    }
}
