//! Keeping the audit daemon role in netlink mode, and reading on while another process has it.
//!
//! The kernel sends records to the netlink port of the socket that registered, so the role
//! belongs to the reader thread, which owns that socket ([`RecordSource`]). The kernel refuses a
//! new daemon while a healthy one is registered and lets only the registered process unregister:
//! the role can be taken from a running sensor only once its socket is gone (closed from
//! outside, e.g. by a debugger attached as root). The main thread's tamper poll
//! ([`DaemonWatch`]) sees that in the audit status and decides; the reader carries it out:
//!
//! - role lost (another pid registered, the registration cleared, or the reader's socket
//!   closed): the reader reads the multicast group, which gets every record whoever is
//!   registered, and the watch reports it once;
//! - pid free again (0, or its holder gone) for [`SETTLE`]: the reader registers again;
//! - pid held by a live process: left alone however long (the sensor never fights a healthy
//!   daemon); a different holder later is another takeover, reported again.
//!
//! The switches lose at most the records of a moment: each is made right after the reader
//! drained its socket, the new socket is open before the old one goes, and while both are open
//! a record reaches only the one the kernel routes it to. (On a kernel booted with `audit=1`,
//! records held while no daemon was registered are sent to the new daemon as well, so a few may
//! arrive twice after a re-registration.)

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use execsentry_linux::control::AuditStatus;
use execsentry_linux::netlink::{daemon_alive, RecordSocket, SocketOptions, Stopper};

use crate::pipeline::Counters;
use crate::source::audit_tamper::Finding;

/// How long the pid must stay free before the sensor takes it back, so a daemon that is being
/// handed over (or an attacker's registration a moment after closing the sensor's socket) is
/// not raced. Nothing is lost meanwhile: the reader is on the multicast group.
pub const SETTLE: Duration = Duration::from_secs(1);

/// How often a registration that failed is tried again while the pid stays free.
const RETRY: Duration = Duration::from_secs(5);

/// How long the watch waits for the reader to switch to the multicast group before it reports
/// a lost role (the reader looks at its commands at least every 100 ms).
const SWITCH_WAIT: Duration = Duration::from_secs(1);

/// What the main thread asks of the reader.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Command {
    /// Give the registration up (without unregistering) and read the multicast group.
    Listen,
    /// Become the audit daemon again.
    Register,
}

/// How the reader receives records now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Registered: records come to its own socket.
    Daemon = 0,
    /// On the multicast group, beside whichever daemon is registered.
    Listener = 1,
}

impl Role {
    fn from_u8(v: u8) -> Role {
        if v == Role::Daemon as u8 {
            Role::Daemon
        } else {
            Role::Listener
        }
    }
}

/// The reader's side: the socket records arrive on, switched on command or when it fails.
pub struct RecordSource {
    socket: RecordSocket,
    options: SocketOptions,
    /// One stop handle for every socket it switches between.
    stopper: Stopper,
    commands: Receiver<Command>,
    role: Arc<AtomicU8>,
}

/// The main thread's side: commands to the reader and the role it is in.
pub struct Link {
    commands: Sender<Command>,
    role: Arc<AtomicU8>,
}

impl RecordSource {
    /// `socket` is unicast (registered) or multicast; `options` open the sockets it switches to.
    pub fn new(socket: RecordSocket, options: SocketOptions) -> (RecordSource, Link) {
        let role = match socket.mode() {
            execsentry_linux::netlink::Mode::Unicast => Role::Daemon,
            execsentry_linux::netlink::Mode::Multicast => Role::Listener,
        };
        let role = Arc::new(AtomicU8::new(role as u8));
        let (tx, rx) = bounded(8);
        let stopper = socket.stopper();
        let source = RecordSource {
            socket,
            options,
            stopper,
            commands: rx,
            role: Arc::clone(&role),
        };
        (source, Link { commands: tx, role })
    }

    pub fn socket(&mut self) -> &mut RecordSocket {
        &mut self.socket
    }

    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    fn role(&self) -> Role {
        Role::from_u8(self.role.load(Ordering::Acquire))
    }

    /// Receiving failed with `e`. A socket closed from outside is replaced by the multicast
    /// group (the role is the watch's to take back); any other failure ends the reader.
    pub fn failed(
        &mut self,
        e: execsentry_linux::Error,
        counters: &Counters,
    ) -> Result<(), execsentry_linux::Error> {
        if self.socket.is_intact() {
            return Err(e);
        }
        log::error!("tamper: the audit socket was closed from outside the sensor ({e})");
        self.listen(counters)
    }

    /// At an idle moment: whether the descriptor still is our socket (closed from outside and
    /// reused for another file, `recv` would not fail on it).
    pub fn check(&mut self, counters: &Counters) -> Result<(), execsentry_linux::Error> {
        if self.socket.is_intact() {
            return Ok(());
        }
        log::error!("tamper: the audit socket was closed from outside the sensor");
        self.listen(counters)
    }

    /// Carries out what the watch asked, if anything. Called when the socket was just drained.
    pub fn obey(&mut self, counters: &Counters) {
        while let Ok(command) = self.commands.try_recv() {
            let done = match (command, self.role()) {
                (Command::Listen, Role::Daemon) => self.listen(counters),
                (Command::Register, Role::Listener) => self.register(counters),
                _ => Ok(()),
            };
            if let Err(e) = done {
                log::error!("switching the audit socket: {e}");
            }
        }
    }

    /// Onto the multicast group; the old socket is given up without unregistering (the pid is
    /// not ours any more, or will be dropped by the kernel at its next failed send).
    fn listen(&mut self, counters: &Counters) -> Result<(), execsentry_linux::Error> {
        let mut multicast = RecordSocket::multicast(self.options)?;
        multicast.set_stopper(self.stopper.clone());
        let old = std::mem::replace(&mut self.socket, multicast);
        old.abandon();
        if self.role() == Role::Daemon {
            Counters::add(&counters.daemon_lost, 1);
            log::warn!(
                "reading the audit multicast group while this sensor is not the audit daemon"
            );
        }
        self.role.store(Role::Listener as u8, Ordering::Release);
        Ok(())
    }

    /// Registers a new unicast socket, then drops the multicast one: from the registration on
    /// records reach both, and the unicast copy is the one read.
    fn register(&mut self, counters: &Counters) -> Result<(), execsentry_linux::Error> {
        let mut unicast = match RecordSocket::unicast(self.options) {
            Ok(s) => s,
            Err(execsentry_linux::Error::DaemonRegistered { pid }) => {
                log::warn!("process {pid} registered as the audit daemon first; still reading the multicast group");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        unicast.set_stopper(self.stopper.clone());
        drop(std::mem::replace(&mut self.socket, unicast));
        Counters::add(&counters.daemon_regained, 1);
        self.role.store(Role::Daemon as u8, Ordering::Release);
        log::warn!(
            "tamper: re-armed: registered again as the audit daemon (pid {})",
            std::process::id()
        );
        Ok(())
    }
}

impl Link {
    fn role(&self) -> Role {
        Role::from_u8(self.role.load(Ordering::Acquire))
    }

    fn send(&self, command: Command) {
        // Commands are idempotent: a full queue already holds what is asked.
        let _ = self.commands.try_send(command);
    }

    /// Asks the reader onto the multicast group and waits (bounded) until it is there.
    fn listen(&self) -> bool {
        self.send(Command::Listen);
        let start = Instant::now();
        while self.role() != Role::Listener {
            if start.elapsed() >= SWITCH_WAIT {
                return false;
            }
            thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

/// Whether the sensor holds the role, as the main thread tracks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Held,
    /// Lost; `holder` is the last live daemon seen (0: none), the one not to report again.
    Away {
        holder: u32,
        free_since: Option<Instant>,
        last_try: Option<Instant>,
    },
}

/// The main thread's side of the role: read from each tamper poll's status.
pub struct DaemonWatch {
    ours: u32,
    link: Link,
    state: State,
    settle: Duration,
}

impl DaemonWatch {
    pub fn new(link: Link) -> DaemonWatch {
        DaemonWatch {
            ours: std::process::id(),
            link,
            state: State::Held,
            settle: SETTLE,
        }
    }

    /// One poll with the status just read: what to report, at most once per takeover. A lost
    /// role is reported only once the reader is on the multicast group, so an exec after the
    /// alert is seen.
    pub fn poll(&mut self, status: &AuditStatus) -> Option<Finding> {
        let (ours, now) = (self.ours, status.pid);
        let role = self.link.role();
        match &mut self.state {
            State::Held => {
                if now == ours && role == Role::Daemon {
                    return None;
                }
                if !self.link.listen() {
                    log::error!(
                        "tamper: the audit reader did not switch to the multicast group within {SWITCH_WAIT:?}"
                    );
                }
                self.state = State::Away {
                    holder: if now == ours { 0 } else { now },
                    free_since: None,
                    last_try: None,
                };
                Some(if now == ours {
                    // The kernel still names us: it drops a dead socket at its next failed send.
                    Finding::SocketClosed { ours }
                } else {
                    Finding::PidTaken { ours, now }
                })
            }
            State::Away {
                holder,
                free_since,
                last_try,
            } => {
                if now == ours && role == Role::Daemon {
                    self.state = State::Held;
                    return None;
                }
                let free = now == 0 || now == ours || !daemon_alive(now);
                if !free {
                    *free_since = None;
                    if now == *holder {
                        return None;
                    }
                    *holder = now;
                    log::error!(
                        "tamper: process {now} is the audit daemon; reading the multicast group until the role is free"
                    );
                    return Some(Finding::PidTaken { ours, now });
                }
                let since = *free_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.settle && last_try.is_none_or(|t| t.elapsed() >= RETRY) {
                    *last_try = Some(Instant::now());
                    self.link.send(Command::Register);
                }
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A stand-in reader: goes to the multicast group when asked, and records what it was asked.
    fn watch() -> (DaemonWatch, Arc<AtomicU8>, Arc<Mutex<Vec<Command>>>) {
        let (tx, rx) = bounded::<Command>(8);
        let role = Arc::new(AtomicU8::new(Role::Daemon as u8));
        let asked = Arc::new(Mutex::new(Vec::new()));
        {
            let (role, asked) = (Arc::clone(&role), Arc::clone(&asked));
            thread::spawn(move || {
                for c in rx {
                    if c == Command::Listen {
                        role.store(Role::Listener as u8, Ordering::Release);
                    }
                    asked.lock().unwrap().push(c);
                }
            });
        }
        let mut w = DaemonWatch::new(Link {
            commands: tx,
            role: Arc::clone(&role),
        });
        w.settle = Duration::ZERO;
        (w, role, asked)
    }

    fn status(pid: u32) -> AuditStatus {
        AuditStatus {
            enabled: 1,
            pid,
            ..AuditStatus::default()
        }
    }

    /// How many registrations were asked for, once `want` were (or two seconds passed).
    fn registers(asked: &Mutex<Vec<Command>>, want: usize) -> usize {
        let count = || {
            asked
                .lock()
                .unwrap()
                .iter()
                .filter(|c| **c == Command::Register)
                .count()
        };
        let start = Instant::now();
        while count() < want && start.elapsed() < Duration::from_secs(2) {
            thread::sleep(Duration::from_millis(5));
        }
        // Time for an unwanted extra one to arrive too.
        thread::sleep(Duration::from_millis(20));
        count()
    }

    #[test]
    fn one_report_per_takeover_and_no_fight_with_a_live_holder() {
        let (mut w, role, asked) = watch();
        let ours = std::process::id();
        assert_eq!(w.poll(&status(ours)), None, "ours: nothing to say");

        // pid 1 always runs: a live holder.
        assert_eq!(w.poll(&status(1)), Some(Finding::PidTaken { ours, now: 1 }));
        assert_eq!(
            Role::from_u8(role.load(Ordering::Acquire)),
            Role::Listener,
            "on the multicast group before the report"
        );
        for _ in 0..5 {
            assert_eq!(w.poll(&status(1)), None, "reported once");
        }
        assert_eq!(registers(&asked, 0), 0, "a live holder is left alone");

        // Another live holder (our parent) is another takeover.
        let parent = std::os::unix::process::parent_id();
        assert_eq!(
            w.poll(&status(parent)),
            Some(Finding::PidTaken { ours, now: parent })
        );

        // Free again: the reader is asked to register (once per retry period).
        assert_eq!(w.poll(&status(0)), None);
        assert_eq!(w.poll(&status(0)), None);
        assert_eq!(registers(&asked, 1), 1);

        // It did: held again; a second loss is reported again.
        role.store(Role::Daemon as u8, Ordering::Release);
        assert_eq!(w.poll(&status(ours)), None);
        assert_eq!(w.poll(&status(ours)), None);
        assert_eq!(w.poll(&status(0)), Some(Finding::PidTaken { ours, now: 0 }));
    }

    #[test]
    fn a_closed_socket_is_reported_while_the_kernel_still_names_us() {
        let (mut w, role, asked) = watch();
        let ours = std::process::id();
        // The reader found its socket closed and went to the multicast group by itself.
        role.store(Role::Listener as u8, Ordering::Release);
        assert_eq!(w.poll(&status(ours)), Some(Finding::SocketClosed { ours }));
        // Our dead registration counts as free: taken back (the kernel's probe drops it).
        assert_eq!(w.poll(&status(ours)), None);
        assert_eq!(registers(&asked, 1), 1);
    }
}
