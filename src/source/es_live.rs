//! `execsentry run` on macOS: Endpoint Security exec, fork and exit in, alerts out, until
//! SIGINT/SIGTERM.
//!
//! Threads: Endpoint Security's own queue runs the client's handler, which copies each message
//! and `try_send`s it into a bounded channel (a full channel drops the record, counted; the
//! kernel's own drops show as sequence gaps); the evaluator normalizes, keeps the process table
//! and runs the rules on execs; the sink thread writes alerts; the main thread prints counters
//! and waits for the stop signal. The client subscribes *before* the running processes are
//! listed, so nothing that starts in between is missed: its records wait in the channel until the
//! table is seeded.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use execsentry_macos::client::EsClient;
use execsentry_macos::{process_list, ClientConfig, ClientError, ClientState, EsRecord};
use thiserror::Error;

use crate::event::HostInfo;
use crate::pipeline::{spawn_sink, Counters, SinkThreadOptions, Snapshot, StatsHook};
use crate::process_table::Limits;
use crate::replay::Replay;
use crate::rules::RuleSet;
use crate::sink::Sink;
use crate::source::endpoint_security::EsNormalizer;

/// Settings of a live run.
#[derive(Clone, Debug)]
pub struct EsLiveOptions {
    /// Channel size, Full Disk Access retry interval, muted paths.
    pub client: ClientConfig,
    pub stats_interval: Duration,
    pub table: Limits,
    /// The alert sink thread: channel, failure queue, retry.
    pub sink: SinkThreadOptions,
    /// Called with each periodic counters snapshot (`--stats-json`).
    pub on_stats: Option<StatsHook>,
}

impl Default for EsLiveOptions {
    fn default() -> EsLiveOptions {
        EsLiveOptions {
            client: ClientConfig::default(),
            stats_interval: Duration::from_secs(60),
            table: Limits::default(),
            sink: SinkThreadOptions::alerts(),
            on_stats: None,
        }
    }
}

#[derive(Debug, Error)]
pub enum EsLiveError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// How often dead processes past their grace period leave the table.
const PRUNE_EVERY: Duration = Duration::from_secs(5);

/// Runs until `stop` is set (by a signal) or the client fails; returns the final counters.
pub fn run<S: Sink + Send + 'static>(
    opts: &EsLiveOptions,
    rules: &RuleSet,
    sink: S,
    host: Arc<HostInfo>,
    stop: Arc<AtomicBool>,
) -> Result<Snapshot, EsLiveError> {
    let counters = Arc::new(Counters::default());
    let client = EsClient::start(opts.client.clone())?;
    if client.state() == ClientState::WaitingForAccess {
        eprintln!(
            "execsentry: waiting for Full Disk Access (retrying every {} s); see the log",
            opts.client.retry_interval.as_secs()
        );
    }

    let boot_id = boot_session_uuid().unwrap_or_default();
    let mut normalizer = EsNormalizer::new(host, boot_id, opts.table);
    match process_list::running_processes() {
        Ok(found) => {
            let n = found.processes.len();
            for p in found.processes {
                normalizer.backfill(p);
            }
            log::info!(
                "process table seeded with {n} running processes ({} left out)",
                found.skipped
            );
        }
        Err(e) => log::warn!(
            "cannot list running processes ({e}): parents started before execsentry stay unknown"
        ),
    }
    eprintln!(
        "execsentry: ready (source endpoint-security, {} rules)",
        rules.len()
    );

    let records = client.records().clone();
    thread::scope(|scope| -> Result<Snapshot, EsLiveError> {
        let evaluator = {
            let (counters, sink_opts) = (Arc::clone(&counters), opts.sink);
            thread::Builder::new()
                .name("evaluator".into())
                .spawn_scoped(scope, move || {
                    evaluate(records, rules, sink, normalizer, &counters, sink_opts)
                })?
        };
        let mut last_stats = Instant::now();
        let mut state = client.state();
        while !stop.load(Ordering::Relaxed) && !evaluator.is_finished() {
            thread::sleep(Duration::from_millis(100));
            copy_client_counters(&client, &counters);
            let now = client.state();
            if now != state {
                log::info!("Endpoint Security client: {state:?} → {now:?}");
                state = now;
            }
            if last_stats.elapsed() >= opts.stats_interval {
                last_stats = Instant::now();
                let snapshot = counters.snapshot();
                eprintln!("execsentry: stats {snapshot} client={state:?}");
                if let Some(hook) = &opts.on_stats {
                    hook.call(&snapshot);
                }
            }
        }
        copy_client_counters(&client, &counters);
        let client_counters = Arc::clone(client.counters());
        // Unsubscribes and deletes the client on its own thread; its senders go with it, so the
        // evaluator drains what is queued and ends.
        let stopped = client.stop();
        let snapshot = match evaluator.join() {
            Ok(s) => s,
            Err(_) => {
                log::error!("the evaluator panicked");
                counters.snapshot()
            }
        };
        let c = client_counters.snapshot();
        if c.unmapped > 0 || c.seq_resets > 0 {
            log::info!(
                "Endpoint Security: {} messages not mapped, {} sequence resets",
                c.unmapped,
                c.seq_resets
            );
        }
        stopped?;
        Ok(Snapshot {
            records: c.delivered,
            channel_drops: c.overflow,
            serial_gaps: c.kernel_dropped,
            ..snapshot
        })
    })
}

/// The client's counters into the pipeline's: delivered records, channel overflow, and messages
/// the kernel dropped (sequence gaps).
fn copy_client_counters(client: &EsClient, counters: &Counters) {
    let c = client.counters().snapshot();
    counters.records.store(c.delivered, Ordering::Relaxed);
    counters.channel_drops.store(c.overflow, Ordering::Relaxed);
    counters
        .serial_gaps
        .store(c.kernel_dropped, Ordering::Relaxed);
}

/// The evaluator: records → events (every record updates the table) → rules (execs only) →
/// alert lines to the sink thread.
fn evaluate<S: Sink + Send + 'static>(
    rx: Receiver<EsRecord>,
    rules: &RuleSet,
    sink: S,
    mut normalizer: EsNormalizer,
    counters: &Arc<Counters>,
    sink_opts: SinkThreadOptions,
) -> Snapshot {
    let (channel_sink, sink_thread) = spawn_sink(sink, sink_opts, Arc::clone(counters));
    let mut replay = Replay::new(rules, channel_sink).source_produces(&["process"]);
    let mut last_prune = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(500)) {
            Ok(rec) => {
                if let Some(event) = normalizer.for_rules(rec) {
                    Counters::add(&counters.events, 1);
                    if let Err(e) = replay.event(&event) {
                        log::error!("{e}");
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_prune.elapsed() >= PRUNE_EVERY {
            normalizer.prune(crate::time::now_ns(), is_alive);
            last_prune = Instant::now();
            replay.publish(counters);
        }
    }
    if let Err(e) = replay.end_of_input() {
        log::error!("{e}");
    }
    replay.publish(counters);
    match replay.finish() {
        Ok(channel_sink) => drop(channel_sink),
        Err(e) => log::error!("{e}"),
    }
    if sink_thread.join().is_err() {
        log::error!("the sink thread panicked");
    }
    counters.snapshot()
}

/// Whether `pid` still exists (an exit message may have been dropped).
fn is_alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks that the process exists and may be signalled.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// `kern.bootsessionuuid`: a new value every boot, as pidversions restart at every boot.
fn boot_session_uuid() -> Option<String> {
    let mut buf = [0u8; 64];
    let mut len = buf.len();
    // SAFETY: the name is NUL-terminated; `buf`/`len` describe writable memory that sysctl fills
    // and `len` is updated to the bytes written.
    let rc = unsafe {
        libc::sysctlbyname(
            c"kern.bootsessionuuid".as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    let bytes = buf.get(..len)?;
    let text = String::from_utf8_lossy(bytes);
    let id = text.trim_end_matches('\0').trim();
    (!id.is_empty()).then(|| id.to_owned())
}
