//! The live Endpoint Security client: NOTIFY exec, fork and exit into a bounded channel.
//!
//! The `es_client_t` is `!Send` and must be deleted on the thread that created it, so it lives
//! on a thread of its own ("es-client") from `es_new_client` to `es_delete_client`. Endpoint
//! Security calls the handler on its own serial queue; the handler copies the message into an
//! [`EsRecord`] and `try_send`s it — it never blocks, because a slow NOTIFY client just loses
//! messages (counted from sequence-number gaps) and a full channel is counted as overflow.
//!
//! Prerequisites fail as `es_new_client` results ([`NewClientFailure`]): missing Full Disk
//! Access is waited out, retried every [`ClientConfig::retry_interval`]; a missing entitlement or
//! root is fatal. What the handler does with each value is in [`crate::live`], tested off macOS.

use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};
use endpoint_sec::sys::{es_event_type_t, es_mute_path_type_t, NewClientError};
use endpoint_sec::{version, AuditToken as EsToken, Client, Event as EsEvent, Message};

use crate::client_error::{ClientError, NewClientFailure};
use crate::live::{
    collect_args, parse_os_version, system_time_ns, ClientConfig, ClientCounters, ClientState,
    Delivery, ProcessFacts, SharedState,
};
use crate::record::{EsRecord, Event, EventKind, Exec, Exit, Fork, Header, Process};

/// The version assumed when `kern.osproductversion` cannot be read: the oldest macOS the
/// client is built for (endpoint-sec feature `macos_13_0_0`).
const FALLBACK_VERSION: (u64, u64, u64) = (13, 0, 0);

/// A running live client. Dropping it stops the client and waits for its thread.
pub struct EsClient {
    records: Receiver<EsRecord>,
    counters: Arc<ClientCounters>,
    state: Arc<SharedState>,
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<Result<(), ClientError>>>,
}

impl EsClient {
    /// Starts the client thread and waits for its first attempt.
    ///
    /// Returns once the client is subscribed, or is waiting for Full Disk Access (then
    /// [`state`](Self::state) is [`ClientState::WaitingForAccess`] and records start flowing
    /// when access is granted). A fatal failure — no entitlement, not root — is returned here.
    pub fn start(config: ClientConfig) -> Result<EsClient, ClientError> {
        let (tx, records) = bounded(config.channel_capacity.max(1));
        let counters = Arc::new(ClientCounters::default());
        let state = Arc::new(SharedState::default());
        let (stop_tx, stop_rx) = bounded::<()>(1);
        let (first_tx, first_rx) = bounded::<Result<(), ClientError>>(1);

        let thread = std::thread::Builder::new()
            .name("es-client".into())
            .spawn({
                let (counters, state) = (Arc::clone(&counters), Arc::clone(&state));
                move || {
                    let result = run(&config, tx, &counters, &state, &stop_rx, &first_tx);
                    if result.is_err() {
                        state.set(ClientState::Failed);
                    }
                    result
                }
            })
            .map_err(ClientError::Thread)?;

        match first_rx.recv() {
            Ok(Ok(())) => Ok(EsClient {
                records,
                counters,
                state,
                stop: Some(stop_tx),
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => match thread.join() {
                Ok(Err(e)) => Err(e),
                _ => Err(ClientError::ThreadDied),
            },
        }
    }

    /// The records, in Endpoint Security's delivery order.
    pub fn records(&self) -> &Receiver<EsRecord> {
        &self.records
    }

    pub fn counters(&self) -> &Arc<ClientCounters> {
        &self.counters
    }

    pub fn state(&self) -> ClientState {
        self.state.get()
    }

    /// Unsubscribes and deletes the client on its own thread, and waits for it.
    pub fn stop(mut self) -> Result<(), ClientError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ClientError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.try_send(());
        }
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(ClientError::ThreadDied),
        }
    }
}

impl Drop for EsClient {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            log::warn!("Endpoint Security client: {e}");
        }
    }
}

/// The client thread: create (retrying while access is missing), mute, subscribe, wait for
/// stop, unsubscribe, delete.
fn run(
    config: &ClientConfig,
    tx: Sender<EsRecord>,
    counters: &Arc<ClientCounters>,
    state: &SharedState,
    stop: &Receiver<()>,
    first: &Sender<Result<(), ClientError>>,
) -> Result<(), ClientError> {
    let (major, minor, patch) = runtime_version();
    // Before Client::new: endpoint-sec otherwise assumes 10.15 and refuses 11+ fields.
    version::set_runtime_version(major, minor, patch);
    log::info!("Endpoint Security: macOS {major}.{minor}.{patch}");

    let mut client = loop {
        match new_client(tx.clone(), Arc::clone(counters)) {
            Ok(client) => break client,
            Err(failure) if failure.is_retryable() => {
                if state.get() != ClientState::WaitingForAccess {
                    log::warn!("Endpoint Security client not started: {failure}");
                    state.set(ClientState::WaitingForAccess);
                    let _ = first.try_send(Ok(()));
                }
                match stop.recv_timeout(config.retry_interval) {
                    Err(RecvTimeoutError::Timeout) => continue,
                    Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                        state.set(ClientState::Stopped);
                        return Ok(());
                    }
                }
            }
            Err(failure) => {
                log::error!("Endpoint Security client not started: {failure}");
                let _ = first.try_send(Err(ClientError::NewClient(failure)));
                return Err(ClientError::NewClient(failure));
            }
        }
    };

    // Our own process is muted in the kernel; the handler also drops anything that slips by.
    match EsToken::from_pid(std::process::id() as libc::pid_t) {
        Ok(me) => {
            if let Err(e) = client.mute_process(&me) {
                log::warn!("es_mute_process(self): {e}; relying on the handler to skip our events");
            }
        }
        Err(kr) => log::warn!("audit token of self: kern_return {kr}; relying on the handler"),
    }
    for path in &config.mute_paths {
        if let Err(e) = client.mute_path(
            path.as_os_str(),
            es_mute_path_type_t::ES_MUTE_PATH_TYPE_LITERAL,
        ) {
            log::warn!("es_mute_path({}): {e}", path.display());
        }
    }

    let events = [
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_EXEC,
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_FORK,
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_EXIT,
    ];
    if let Err(e) = client.subscribe(&events) {
        let err = ClientError::Subscribe(e.to_string());
        let _ = client.delete();
        let _ = first.try_send(Err(ClientError::Subscribe(e.to_string())));
        return Err(err);
    }
    state.set(ClientState::Running);
    let _ = first.try_send(Ok(()));
    log::info!("Endpoint Security client subscribed to exec, fork and exit");

    // Until stop is asked for, or the EsClient is gone.
    let _ = stop.recv();
    let unsubscribed = client.unsubscribe_all();
    let deleted = client.delete();
    state.set(ClientState::Stopped);
    match (unsubscribed, deleted) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), _) | (_, Err(e)) => Err(ClientError::Shutdown(e.to_string())),
    }
}

/// `es_new_client` with the copying handler.
fn new_client(
    tx: Sender<EsRecord>,
    counters: Arc<ClientCounters>,
) -> Result<Client<'static>, NewClientFailure> {
    let me = std::process::id() as libc::pid_t;
    Client::new(move |client: &mut Client<'_>, msg: Message| {
        // Runs on Endpoint Security's serial queue; panics here are swallowed by endpoint-sec,
        // so nothing below indexes or unwraps.
        let token = msg.process().audit_token();
        if token.pid() == me {
            let _ = client.mute_process(&token);
            return;
        }
        let delivery = Delivery {
            tx: &tx,
            counters: &counters,
        };
        delivery.deliver(
            kind_of(msg.event_type()),
            msg.seq_num(),
            msg.global_seq_num(),
            || copy_message(&msg),
        );
    })
    .map_err(failure)
}

fn kind_of(t: es_event_type_t) -> Option<EventKind> {
    match t {
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_EXEC => Some(EventKind::Exec),
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_FORK => Some(EventKind::Fork),
        es_event_type_t::ES_EVENT_TYPE_NOTIFY_EXIT => Some(EventKind::Exit),
        _ => None,
    }
}

fn failure(e: NewClientError) -> NewClientFailure {
    match e {
        NewClientError::NotEntitled => NewClientFailure::NotEntitled,
        NewClientError::NotPermitted => NewClientFailure::NotPermitted,
        NewClientError::NotPrivileged => NewClientFailure::NotPrivileged,
        NewClientError::TooManyClients => NewClientFailure::TooManyClients,
        NewClientError::InvalidArgument => NewClientFailure::InvalidArgument,
        NewClientError::Internal => NewClientFailure::Internal,
        NewClientError::ApiUnavailable => NewClientFailure::ApiUnavailable,
        NewClientError::Unknown(code) => NewClientFailure::Unknown(code.0),
    }
}

/// Copies one message out; `None` when endpoint-sec cannot decode its event.
fn copy_message(msg: &Message) -> Option<EsRecord> {
    let header = Header {
        version: msg.version(),
        time_ns: system_time_ns(msg.time()),
        mach_time: Some(msg.raw_mach_time()),
        seq_num: msg.seq_num(),
        global_seq_num: msg.global_seq_num(),
        thread_id: msg.thread().map(|t| t.thread_id()),
    };
    let event = match msg.event()? {
        EsEvent::NotifyExec(exec) => {
            let (args, args_truncated) = collect_args(exec.args());
            Event::Exec(Exec {
                target: copy_process(&exec.target()),
                args,
                args_truncated,
                cwd: exec.cwd().map(|f| f.path().to_string_lossy().into_owned()),
                script: exec
                    .script()
                    .map(|f| f.path().to_string_lossy().into_owned()),
            })
        }
        EsEvent::NotifyFork(fork) => Event::Fork(Fork {
            child: copy_process(&fork.child()),
        }),
        EsEvent::NotifyExit(exit) => Event::Exit(Exit { stat: exit.stat() }),
        _ => return None,
    };
    Some(EsRecord {
        header,
        process: copy_process(&msg.process()),
        event,
    })
}

fn copy_process(p: &endpoint_sec::Process<'_>) -> Process {
    let executable = p.executable();
    let tty = p.tty();
    ProcessFacts {
        token: p.audit_token().raw_token().val,
        parent_token: p.parent_audit_token().map(|t| t.raw_token().val),
        responsible_token: p.responsible_audit_token().map(|t| t.raw_token().val),
        ppid: p.ppid(),
        original_ppid: p.original_ppid(),
        group_id: p.group_id(),
        session_id: p.session_id(),
        executable: executable.path(),
        executable_truncated: executable.path_truncated(),
        signing_id: p.signing_id(),
        team_id: p.team_id(),
        cdhash: p.cdhash(),
        codesigning_flags: p.codesigning_flags(),
        is_platform_binary: p.is_platform_binary(),
        is_es_client: p.is_es_client(),
        tty: tty.as_ref().map(|f| f.path()),
        start_time: p.start_time(),
    }
    .to_process()
}

/// macOS version from `kern.osproductversion`, for `set_runtime_version`.
fn runtime_version() -> (u64, u64, u64) {
    let mut buf = [0u8; 32];
    let mut len = buf.len();
    // SAFETY: the name is NUL-terminated; `buf`/`len` describe writable memory that sysctl
    // fills and `len` is updated to the bytes written.
    let rc = unsafe {
        libc::sysctlbyname(
            c"kern.osproductversion".as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    let text = (rc == 0)
        .then(|| buf.get(..len))
        .flatten()
        .map(|b| String::from_utf8_lossy(b).into_owned());
    match text.as_deref().and_then(parse_os_version) {
        Some(v) => v,
        None => {
            log::warn!(
                "cannot read kern.osproductversion ({text:?}); assuming macOS {}.{}.{}",
                FALLBACK_VERSION.0,
                FALLBACK_VERSION.1,
                FALLBACK_VERSION.2
            );
            FALLBACK_VERSION
        }
    }
}
