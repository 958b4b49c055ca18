//! NETLINK_AUDIT sockets: the record socket (unicast as the audit daemon, or multicast beside one)
//! and the request/reply plumbing the control socket shares. Every `unsafe` of the crate is here.
//!
//! Kernel quirks handled here (see `reference/linux-audit.md` §1, §4):
//! - Records sent to a unicast daemon carry `nlmsg_len` = datagram length − 16 (the kernel forgets
//!   the header); multicast copies are fixed up. Each record is one datagram, so the body is taken
//!   from the datagram length, and trailing NULs are stripped.
//! - `ENOBUFS` means the receive buffer overflowed and datagrams were dropped for this socket. It is
//!   counted and reported as [`Received::Overrun`], never fatal; serial gaps measure what was lost.
//! - A second process trying to register makes the kernel probe the daemon with an `AUDIT_REPLACE`
//!   message; it is ignored.
//! - GET and LIST replies are sent from a kernel thread, so they can arrive after the ack; requests
//!   are matched by sequence number and stale messages dropped.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::types;

/// `NETLINK_AUDIT`, the netlink protocol number.
pub const NETLINK_AUDIT: libc::c_int = 9;
/// The multicast group that carries every record (`AUDIT_NLGRP_READLOG`).
pub const AUDIT_NLGRP_READLOG: u32 = 1;
/// Bytes of a netlink message header.
pub const NLMSG_HDRLEN: usize = 16;

pub(crate) const NLMSG_NOOP: u16 = 1;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
pub(crate) const NLM_F_ACK: u16 = 0x4;

pub(crate) const AUDIT_GET: u16 = 1000;
pub(crate) const AUDIT_SET: u16 = 1001;
pub(crate) const AUDIT_ADD_RULE: u16 = 1011;
pub(crate) const AUDIT_DEL_RULE: u16 = 1012;
pub(crate) const AUDIT_LIST_RULES: u16 = 1013;

/// Largest audit record the kernel formats is ~9 KB; 64 KiB leaves room and catches `MSG_TRUNC`.
const RECV_BUF: usize = 64 * 1024;
/// How long a control request may take before we give up.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The 16-byte netlink header, host byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NlHeader {
    pub len: u32,
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    pub pid: u32,
}

impl NlHeader {
    pub(crate) fn parse(b: &[u8]) -> Option<NlHeader> {
        let h = b.get(..NLMSG_HDRLEN)?;
        Some(NlHeader {
            len: u32::from_ne_bytes([h[0], h[1], h[2], h[3]]),
            ty: u16::from_ne_bytes([h[4], h[5]]),
            flags: u16::from_ne_bytes([h[6], h[7]]),
            seq: u32::from_ne_bytes([h[8], h[9], h[10], h[11]]),
            pid: u32::from_ne_bytes([h[12], h[13], h[14], h[15]]),
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.len.to_ne_bytes());
        out.extend_from_slice(&self.ty.to_ne_bytes());
        out.extend_from_slice(&self.flags.to_ne_bytes());
        out.extend_from_slice(&self.seq.to_ne_bytes());
        out.extend_from_slice(&self.pid.to_ne_bytes());
    }
}

/// Split a datagram of well-formed netlink messages (acks, GET and LIST replies) into
/// `(header, payload)` pairs. Records are not parsed this way (see the unicast length quirk).
pub(crate) fn split_messages(mut d: &[u8]) -> impl Iterator<Item = (NlHeader, &[u8])> {
    std::iter::from_fn(move || {
        let h = NlHeader::parse(d)?;
        let len = h.len as usize;
        if len < NLMSG_HDRLEN || len > d.len() {
            d = &[];
            return None;
        }
        let payload = &d[NLMSG_HDRLEN..len];
        let next = (len + 3) & !3;
        d = d.get(next..).unwrap_or(&[]);
        Some((h, payload))
    })
}

/// Receive-buffer size actually in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RcvBuf {
    /// What was asked for.
    pub requested: usize,
    /// What the kernel reports (it doubles the value for bookkeeping).
    pub effective: usize,
    /// Whether `SO_RCVBUFFORCE` worked (otherwise `SO_RCVBUF`, capped by `net.core.rmem_max`).
    pub forced: bool,
}

/// One step of a request: what came back for our sequence number.
pub(crate) enum Reply<'a> {
    /// A reply message of type `ty` (GET status, one LIST rule).
    Data(u16, &'a [u8]),
    /// `NLMSG_DONE`.
    Done,
    /// `NLMSG_ERROR`: 0 is an ack, negative an errno, positive a value (lost counter reset).
    Ack(i32),
}

/// A bound NETLINK_AUDIT socket.
pub(crate) struct NlSocket {
    /// `None` once given up without closing (see [`NlSocket::is_intact`]).
    fd: Option<OwnedFd>,
    /// The socket's inode, to tell whether `fd` still refers to it: a process with enough
    /// privilege (a debugger attached as root) can close the descriptor from outside, and the
    /// number may then be reused for another file.
    ino: u64,
    seq: u32,
    buf: Vec<u8>,
}

impl NlSocket {
    /// Open and bind; `groups` is the multicast group bitmask (0 for none).
    pub(crate) fn open(groups: u32) -> Result<NlSocket, Error> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_AUDIT,
            )
        };
        if fd < 0 {
            return Err(Error::last_os("socket(AF_NETLINK, NETLINK_AUDIT)"));
        }
        // SAFETY: `fd` is a fresh descriptor we own; OwnedFd closes it on every path below.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut addr: libc::sockaddr_nl = unsafe { mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        addr.nl_pid = 0;
        addr.nl_groups = groups;
        // SAFETY: `addr` is a valid sockaddr_nl and the length passed is its size.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_nl as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if groups != 0 && e.raw_os_error() == Some(libc::EPERM) {
                return Err(Error::Permission {
                    what: "joining the audit multicast group",
                    needs: "CAP_AUDIT_READ in the initial user namespace (and the initial network namespace to receive)",
                    errno: e,
                });
            }
            return Err(Error::io("bind(NETLINK_AUDIT)", e));
        }
        let ino = inode(fd.as_raw_fd()).ok_or_else(|| Error::last_os("fstat(NETLINK_AUDIT)"))?;
        Ok(NlSocket {
            fd: Some(fd),
            ino,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    /// Whether the descriptor still refers to the socket opened (not closed from outside, its
    /// number not reused).
    pub(crate) fn is_intact(&self) -> bool {
        self.fd.is_some() && inode(self.raw()) == Some(self.ino)
    }

    /// Forgets the descriptor without closing it: once it no longer refers to our socket, its
    /// number may belong to another file of this process, which must not be closed.
    fn forget(&mut self) {
        if let Some(fd) = self.fd.take() {
            let _ = fd.into_raw_fd();
        }
    }

    /// Ask for a large receive buffer: `SO_RCVBUFFORCE` (CAP_NET_ADMIN), else `SO_RCVBUF`.
    pub(crate) fn set_rcvbuf(&self, bytes: usize) -> Result<RcvBuf, Error> {
        let val = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        let set = |opt| {
            // SAFETY: `val` is a c_int that lives across the call; the length is its size.
            unsafe {
                libc::setsockopt(
                    self.raw(),
                    libc::SOL_SOCKET,
                    opt,
                    &val as *const libc::c_int as *const libc::c_void,
                    mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            }
        };
        let forced = set(libc::SO_RCVBUFFORCE) == 0;
        if !forced && set(libc::SO_RCVBUF) != 0 {
            return Err(Error::last_os("setsockopt(SO_RCVBUF)"));
        }
        let mut got: libc::c_int = 0;
        let mut len = mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `got` and `len` are valid for writes of the sizes given.
        let rc = unsafe {
            libc::getsockopt(
                self.raw(),
                libc::SOL_SOCKET,
                libc::SO_RCVBUF,
                &mut got as *mut libc::c_int as *mut libc::c_void,
                &mut len,
            )
        };
        if rc != 0 {
            return Err(Error::last_os("getsockopt(SO_RCVBUF)"));
        }
        Ok(RcvBuf {
            requested: bytes,
            effective: usize::try_from(got).unwrap_or(0),
            forced,
        })
    }

    /// Send one request to the kernel; returns its sequence number.
    pub(crate) fn send(&mut self, ty: u16, flags: u16, payload: &[u8]) -> Result<u32, Error> {
        self.seq = self.seq.wrapping_add(1).max(1);
        let mut msg = Vec::with_capacity(NLMSG_HDRLEN + payload.len());
        NlHeader {
            len: (NLMSG_HDRLEN + payload.len()) as u32,
            ty,
            flags,
            seq: self.seq,
            pid: 0,
        }
        .write(&mut msg);
        msg.extend_from_slice(payload);
        // SAFETY: sockaddr_nl is plain data; all-zero (pid 0, groups 0) addresses the kernel.
        let mut to: libc::sockaddr_nl = unsafe { mem::zeroed() };
        to.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: `msg` and `to` are valid for the lengths passed.
            let n = unsafe {
                libc::sendto(
                    self.raw(),
                    msg.as_ptr() as *const libc::c_void,
                    msg.len(),
                    0,
                    &to as *const libc::sockaddr_nl as *const libc::sockaddr,
                    mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if n >= 0 {
                return Ok(self.seq);
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // The kernel answers requests from a non-initial user namespace this way.
                Some(libc::ECONNREFUSED) => {
                    return Err(Error::Permission {
                        what: "an audit control request",
                        needs: "the initial user and pid namespaces",
                        errno: e,
                    })
                }
                _ => return Err(Error::io("sendto(NETLINK_AUDIT)", e)),
            }
        }
    }

    /// Wait up to `timeout` for the socket (or `stop`) to become readable.
    /// Returns Ok(true) when the socket is readable, Ok(false) on timeout or stop.
    fn wait(&self, timeout: Option<Duration>, stop: Option<RawFd>) -> Result<Wait, Error> {
        let mut fds = [
            libc::pollfd {
                fd: self.raw(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = match timeout {
            None => -1,
            Some(d) => libc::c_int::try_from(d.as_millis()).unwrap_or(libc::c_int::MAX),
        };
        loop {
            // SAFETY: `fds` is a valid array of two pollfds; a negative fd is ignored by poll.
            let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
            if rc >= 0 {
                break;
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::io("poll(NETLINK_AUDIT)", e));
            }
        }
        if fds[1].revents != 0 {
            return Ok(Wait::Stopped);
        }
        if fds[0].revents != 0 {
            return Ok(Wait::Readable);
        }
        Ok(Wait::Timeout)
    }

    /// Read one datagram without blocking into the internal buffer.
    fn recv_datagram(&mut self) -> Datagram {
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut from: libc::sockaddr_nl = unsafe { mem::zeroed() };
        let mut iov = libc::iovec {
            iov_base: self.buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: self.buf.len(),
        };
        // SAFETY: msghdr is plain data; all-zero is a valid starting value.
        let mut msg: libc::msghdr = unsafe { mem::zeroed() };
        msg.msg_name = &mut from as *mut libc::sockaddr_nl as *mut libc::c_void;
        msg.msg_namelen = mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        // SAFETY: `msg` points at `from` and at `iov`, which points into `self.buf`; all live and
        // correctly sized for the duration of the call.
        let n = unsafe { libc::recvmsg(self.raw(), &mut msg, libc::MSG_DONTWAIT) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN | libc::EINTR) => Datagram::Again,
                Some(libc::ENOBUFS) => Datagram::Overrun,
                _ => Datagram::Error(e),
            };
        }
        if msg.msg_flags & libc::MSG_TRUNC != 0 {
            return Datagram::Truncated;
        }
        if from.nl_pid != 0 {
            return Datagram::Foreign;
        }
        Datagram::Ok(n as usize)
    }

    /// Send a request and feed every message answering it to `on_reply` until it returns true
    /// (finished). Records that arrive meanwhile (unicast registration) go to `on_record`.
    pub(crate) fn request(
        &mut self,
        name: &'static str,
        ty: u16,
        flags: u16,
        payload: &[u8],
        on_reply: &mut dyn FnMut(Reply<'_>) -> Result<bool, Error>,
        on_record: &mut dyn FnMut(u16, &[u8]),
    ) -> Result<(), Error> {
        let seq = self.send(ty, flags, payload)?;
        let deadline = Instant::now() + REQUEST_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout {
                    request: name,
                    ms: REQUEST_TIMEOUT.as_millis() as u64,
                });
            }
            if let Wait::Timeout = self.wait(Some(left), None)? {
                continue;
            }
            let n = match self.recv_datagram() {
                Datagram::Ok(n) => n,
                Datagram::Error(e) => return Err(Error::io("recvmsg(NETLINK_AUDIT)", e)),
                _ => continue,
            };
            let datagram = &self.buf[..n];
            let Some(first) = NlHeader::parse(datagram) else {
                continue;
            };
            if first.seq != seq || first.ty >= 1100 {
                // A record (unicast daemon socket) or a stale reply to an earlier request.
                if first.ty >= 1100 && first.ty != types::REPLACE {
                    on_record(first.ty, strip_nuls(&datagram[NLMSG_HDRLEN..]));
                }
                continue;
            }
            for (h, payload) in split_messages(datagram) {
                if h.seq != seq {
                    continue;
                }
                let reply = match h.ty {
                    NLMSG_ERROR => {
                        let code = payload
                            .get(..4)
                            .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                            .ok_or_else(|| Error::Protocol {
                                request: name,
                                detail: "NLMSG_ERROR shorter than 4 bytes".into(),
                            })?;
                        Reply::Ack(code)
                    }
                    NLMSG_DONE => Reply::Done,
                    NLMSG_NOOP => continue,
                    t => Reply::Data(t, payload),
                };
                if on_reply(reply)? {
                    return Ok(());
                }
            }
        }
    }
}

enum Wait {
    Readable,
    Timeout,
    Stopped,
}

enum Datagram {
    Ok(usize),
    Again,
    Overrun,
    Truncated,
    Foreign,
    Error(io::Error),
}

/// The inode of the file `fd` refers to, if it is open.
fn inode(fd: RawFd) -> Option<u64> {
    if fd < 0 {
        return None;
    }
    // SAFETY: `stat` is plain data; fstat writes at most its size and fails cleanly on a bad fd.
    let mut st: libc::stat = unsafe { mem::zeroed() };
    // SAFETY: `st` is valid for writes; a closed or foreign descriptor only makes fstat fail.
    let rc = unsafe { libc::fstat(fd, &mut st) };
    (rc == 0).then_some(st.st_ino as u64)
}

/// Whether the registered audit daemon `pid` (an initial-namespace pid, as ours) still runs.
pub fn daemon_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// Bodies are not NUL-terminated, but some paths pad; strip trailing NULs.
fn strip_nuls(mut b: &[u8]) -> &[u8] {
    while let [head @ .., 0] = b {
        b = head;
    }
    b
}

/// The kernel's errno from an ack code, as an io::Error.
pub(crate) fn errno(code: i32) -> io::Error {
    io::Error::from_raw_os_error(code.saturating_neg())
}

/// Wakes a thread blocked in [`RecordSocket::recv`]; cheap to clone and `Send`. The flag lets
/// a reader that never blocks (a flood of records) see the stop without a syscall.
#[derive(Debug, Clone)]
pub struct Stopper {
    fd: Arc<OwnedFd>,
    stopped: Arc<AtomicBool>,
}

impl Stopper {
    fn new() -> Result<Stopper, Error> {
        // SAFETY: plain eventfd(2) call; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(Error::last_os("eventfd"));
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        Ok(Stopper {
            fd: Arc::new(fd),
            stopped: Arc::new(AtomicBool::new(false)),
        })
    }

    fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Make every current and future `recv` on the socket return [`Received::Stopped`].
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an eventfd we own; failure (counter full)
        // still leaves the fd readable, which is all we need.
        unsafe {
            libc::write(
                self.fd.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            );
        }
    }
}

/// Counters of the record socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketStats {
    /// Records delivered.
    pub records: u64,
    /// `ENOBUFS`: the receive buffer overflowed and datagrams were dropped.
    pub enobufs: u64,
    /// Datagrams larger than the buffer (dropped).
    pub truncated: u64,
    /// `AUDIT_REPLACE` probes from a process trying to take over (ignored).
    pub replace: u64,
    /// Datagrams not from the kernel, shorter than a header, or control messages (ignored).
    pub ignored: u64,
}

/// How records reach us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// We are the registered audit daemon: kernel queueing and the `lost` counter apply, and the
    /// kernel waits (`backlog_wait_time`) when we fall behind.
    Unicast,
    /// Read-only listener on `AUDIT_NLGRP_READLOG`, beside any daemon; drops are ours alone.
    Multicast,
}

/// Options for opening a [`RecordSocket`].
#[derive(Debug, Clone, Copy)]
pub struct SocketOptions {
    /// Receive buffer to ask for.
    pub rcvbuf: usize,
    /// Unicast only: also set `enabled=1` if audit is off (restored on drop).
    pub enable: bool,
}

impl Default for SocketOptions {
    fn default() -> Self {
        SocketOptions {
            rcvbuf: 16 * 1024 * 1024,
            enable: true,
        }
    }
}

/// What one [`RecordSocket::recv`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Received<'a> {
    /// One record: its type (from the netlink header) and body (`audit(...): ...`).
    Record {
        /// Record type.
        rtype: u16,
        /// The body, sliced by the datagram length, trailing NULs stripped.
        body: &'a [u8],
    },
    /// The receive buffer overflowed (`ENOBUFS`): records were lost. Keep reading.
    Overrun,
    /// Nothing within the timeout.
    Idle,
    /// The [`Stopper`] fired.
    Stopped,
}

/// The socket records arrive on.
pub struct RecordSocket {
    nl: NlSocket,
    mode: Mode,
    stopper: Stopper,
    rcvbuf: RcvBuf,
    /// Records that arrived while a registration request was in flight.
    pending: VecDeque<(u16, Vec<u8>)>,
    stats: SocketStats,
    /// Set while we are the registered daemon: the `enabled` value to put back, if we changed it.
    registered: Option<Option<u32>>,
}

impl RecordSocket {
    /// Become the audit daemon: `AUDIT_SET pid=self` (and `enabled=1` if asked and audit is off).
    ///
    /// Fails with [`Error::DaemonRegistered`] if another process holds the audit pid and with
    /// [`Error::Locked`] if the configuration is locked. Dropping the socket (or
    /// [`RecordSocket::release`]) sets `pid=0` and puts `enabled` back.
    pub fn unicast(opts: SocketOptions) -> Result<RecordSocket, Error> {
        let nl = NlSocket::open(0)?;
        let mut sock = RecordSocket::new(nl, Mode::Unicast, opts.rcvbuf)?;
        let status = sock.get_status()?;
        if status.enabled == 2 {
            return Err(Error::Locked);
        }
        let me = std::process::id();
        if status.pid != 0 && status.pid != me && daemon_alive(status.pid) {
            // Asking anyway would only make the kernel probe that daemon and log a refusal.
            return Err(Error::DaemonRegistered { pid: status.pid });
        }
        // A registered pid that no longer runs is a daemon that died without unregistering
        // (killed, crashed): the kernel forgets it only at its next failed send, but lets a new
        // daemon replace it at once (its AUDIT_REPLACE probe is refused), so ask. Our own pid
        // there is a registration of ours whose socket is gone (closed from outside): the same.
        let mut change = crate::control::StatusChange::default().pid(me);
        let restore_enabled = (opts.enable && status.enabled == 0).then_some(status.enabled);
        if restore_enabled.is_some() {
            change = change.enabled(1);
        }
        match sock.set_status(&change) {
            Ok(_) => {}
            Err(Error::Kernel { errno, .. }) if errno.raw_os_error() == Some(libc::EEXIST) => {
                let pid = sock.get_status().map(|s| s.pid).unwrap_or(0);
                return Err(Error::DaemonRegistered { pid });
            }
            Err(Error::Kernel { errno, .. }) if errno.raw_os_error() == Some(libc::EPERM) => {
                return Err(Error::Permission {
                    what: "registering as the audit daemon",
                    needs: "CAP_AUDIT_CONTROL in the initial user and pid namespaces",
                    errno,
                })
            }
            Err(e) => return Err(e),
        }
        sock.registered = Some(restore_enabled);
        Ok(sock)
    }

    /// Listen on the audit multicast group (needs CAP_AUDIT_READ; records reach only the initial
    /// network namespace). Does not change any audit setting.
    pub fn multicast(opts: SocketOptions) -> Result<RecordSocket, Error> {
        let nl = NlSocket::open(1 << (AUDIT_NLGRP_READLOG - 1))?;
        RecordSocket::new(nl, Mode::Multicast, opts.rcvbuf)
    }

    fn new(nl: NlSocket, mode: Mode, rcvbuf: usize) -> Result<RecordSocket, Error> {
        let rcvbuf = nl.set_rcvbuf(rcvbuf)?;
        Ok(RecordSocket {
            nl,
            mode,
            stopper: Stopper::new()?,
            rcvbuf,
            pending: VecDeque::new(),
            stats: SocketStats::default(),
            registered: None,
        })
    }

    /// Unicast or multicast.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The receive buffer in force.
    pub fn rcvbuf(&self) -> RcvBuf {
        self.rcvbuf
    }

    /// Counters.
    pub fn stats(&self) -> SocketStats {
        self.stats
    }

    /// A handle that wakes and ends `recv` from another thread.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Makes `stopper` (another socket's) wake and end this socket's `recv` instead of its own:
    /// one handle for every socket a reader switches between.
    pub fn set_stopper(&mut self, stopper: Stopper) {
        self.stopper = stopper;
    }

    /// Whether the descriptor still refers to this socket. A process with enough privilege can
    /// close it from outside (a debugger attached as root); `recv` then fails.
    pub fn is_intact(&self) -> bool {
        self.nl.is_intact()
    }

    /// Gives the socket up without unregistering: for a registration that is no longer ours
    /// (another process holds the pid, or the kernel dropped it). A descriptor that no longer
    /// refers to this socket is left open: its number may belong to another file by now.
    pub fn abandon(mut self) {
        self.registered = None;
        if !self.nl.is_intact() {
            self.nl.forget();
        }
    }

    /// Whether we are (still) registered as the audit daemon.
    pub fn is_registered(&self) -> bool {
        self.registered.is_some()
    }

    /// The next record, waiting at most `timeout` (`None`: until a record or a stop).
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Received<'_>, Error> {
        if let Some((rtype, body)) = self.pending.pop_front() {
            let n = body.len().min(self.nl.buf.len());
            self.nl.buf[..n].copy_from_slice(&body[..n]);
            self.stats.records += 1;
            return Ok(Received::Record {
                rtype,
                body: &self.nl.buf[..n],
            });
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            // Read first and wait only when there is nothing: under load that is one syscall
            // per record instead of two.
            if self.stopper.is_stopped() {
                return Ok(Received::Stopped);
            }
            let n = match self.nl.recv_datagram() {
                Datagram::Ok(n) => n,
                Datagram::Again => {
                    let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
                    match self.nl.wait(left, Some(self.stopper.fd.as_raw_fd()))? {
                        Wait::Stopped => return Ok(Received::Stopped),
                        Wait::Timeout => return Ok(Received::Idle),
                        Wait::Readable => continue,
                    }
                }
                Datagram::Overrun => {
                    self.stats.enobufs += 1;
                    return Ok(Received::Overrun);
                }
                Datagram::Truncated => {
                    self.stats.truncated += 1;
                    continue;
                }
                Datagram::Foreign => {
                    self.stats.ignored += 1;
                    continue;
                }
                Datagram::Error(e) => return Err(Error::io("recvmsg(NETLINK_AUDIT)", e)),
            };
            let Some(h) = NlHeader::parse(&self.nl.buf[..n]) else {
                self.stats.ignored += 1;
                continue;
            };
            if h.ty == types::REPLACE {
                self.stats.replace += 1;
                continue;
            }
            if h.ty < 1100 {
                // Acks and replies to our own requests, or NOOP/DONE.
                self.stats.ignored += 1;
                continue;
            }
            self.stats.records += 1;
            // The unicast nlmsg_len is 16 short: trust the datagram length instead.
            return Ok(Received::Record {
                rtype: h.ty,
                body: strip_nuls(&self.nl.buf[NLMSG_HDRLEN..n]),
            });
        }
    }

    /// Stop being the audit daemon (`pid=0`) and put `enabled` back; also done on drop. A pid
    /// the kernel no longer names as ours is left alone (never release another's registration).
    pub fn release(&mut self) -> Result<(), Error> {
        let Some(restore_enabled) = self.registered.take() else {
            return Ok(());
        };
        let unregister = crate::control::StatusChange::default().pid(0);
        let r1 = match self.get_status() {
            Ok(s) if s.pid == std::process::id() => self.set_status(&unregister),
            Ok(_) => Ok(0),
            Err(e) => Err(e),
        };
        let r2 = match restore_enabled {
            Some(e) => self
                .set_status(&crate::control::StatusChange::default().enabled(e))
                .map(|_| ()),
            None => Ok(()),
        };
        r1.map(|_| ())?;
        r2
    }

    fn get_status(&mut self) -> Result<crate::control::AuditStatus, Error> {
        let pending = &mut self.pending;
        crate::control::get_status(&mut self.nl, &mut |t, b| pending.push_back((t, b.to_vec())))
    }

    fn set_status(&mut self, change: &crate::control::StatusChange) -> Result<i32, Error> {
        let pending = &mut self.pending;
        crate::control::set_status(&mut self.nl, change, &mut |t, b| {
            pending.push_back((t, b.to_vec()))
        })
    }
}

impl Drop for RecordSocket {
    fn drop(&mut self) {
        if let Err(e) = self.release() {
            log::warn!("could not release the audit daemon registration: {e}");
        }
    }
}

/// A machine-wide lock serializing programs and tests that change kernel audit state
/// (`flock` on a file; released when dropped or when the process dies).
#[derive(Debug)]
pub struct AuditLock {
    _file: File,
}

/// Where [`AuditLock::acquire`] locks by default.
pub const AUDIT_LOCK_PATH: &str = "/tmp/execsentry-audit.lock";

impl AuditLock {
    /// Block until the lock at `path` is ours.
    pub fn acquire(path: &Path) -> Result<AuditLock, Error> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| Error::io("open audit lock file", e))?;
        loop {
            // SAFETY: flock on a descriptor owned by `file`, which outlives the call.
            let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
            if rc == 0 {
                return Ok(AuditLock { _file: file });
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                return Err(Error::io("flock(audit lock)", e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        NlHeader {
            len: (NLMSG_HDRLEN + payload.len()) as u32,
            ty,
            flags: 0,
            seq,
            pid: 0,
        }
        .write(&mut v);
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn header_round_trip_and_split() {
        let mut d = msg(1013, 7, b"abcde");
        d.extend_from_slice(&[0; 3]); // alignment padding
        d.extend(msg(NLMSG_DONE, 7, &[0; 4]));
        let parts: Vec<_> = split_messages(&d).collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].0.ty, 1013);
        assert_eq!(parts[0].1, b"abcde");
        assert_eq!(parts[1].0.ty, NLMSG_DONE);
        assert_eq!(parts[1].0.seq, 7);
    }

    #[test]
    fn split_stops_at_bad_lengths() {
        let mut d = msg(1000, 1, b"xy");
        d[0] = 200; // longer than the datagram
        assert_eq!(split_messages(&d).count(), 0);
        let mut d = msg(1000, 1, b"xy");
        d[0] = 3; // shorter than a header
        assert_eq!(split_messages(&d).count(), 0);
        assert_eq!(split_messages(&[1, 2, 3]).count(), 0);
    }

    #[test]
    fn nuls_are_stripped() {
        assert_eq!(strip_nuls(b"audit(1.0:1): \0\0"), b"audit(1.0:1): ");
        assert_eq!(strip_nuls(b"\0"), b"");
    }
}
