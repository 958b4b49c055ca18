//! The crate's error type for everything that talks to the kernel or reads input streams.
//! Record parsing has its own [`ParseError`](crate::ParseError) with a byte offset.

use std::io;

/// What went wrong, in terms an operator can act on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A system call failed.
    #[error("{op}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The OS error.
        source: io::Error,
    },
    /// Unicast registration refused because another process is the audit daemon.
    #[error(
        "another audit daemon (pid {pid}) is registered with the kernel; stop it or read in multicast mode"
    )]
    DaemonRegistered {
        /// The registered daemon's pid (0 if it could not be read).
        pid: u32,
    },
    /// `enabled == 2`.
    #[error(
        "kernel audit configuration is locked (enabled=2, `auditctl -e 2`) until reboot: rules and status cannot change and no new audit daemon can register; read in multicast mode with rules that are already loaded"
    )]
    Locked,
    /// Missing capability or namespace.
    #[error("{what} was refused ({errno}): it needs {needs}")]
    Permission {
        /// The operation.
        what: &'static str,
        /// The capability or condition required.
        needs: &'static str,
        /// The kernel's answer.
        errno: io::Error,
    },
    /// The kernel answered a request with an error.
    #[error("kernel refused {request}: {errno}")]
    Kernel {
        /// The request.
        request: &'static str,
        /// The kernel's answer.
        errno: io::Error,
    },
    /// A reply the protocol does not allow.
    #[error("malformed netlink reply to {request}: {detail}")]
    Protocol {
        /// The request.
        request: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// No reply in time.
    #[error("no reply to {request} from the kernel within {ms} ms")]
    Timeout {
        /// The request.
        request: &'static str,
        /// How long we waited.
        ms: u64,
    },
}

impl Error {
    pub(crate) fn io(op: &'static str, source: io::Error) -> Self {
        Error::Io { op, source }
    }

    pub(crate) fn last_os(op: &'static str) -> Self {
        Error::Io {
            op,
            source: io::Error::last_os_error(),
        }
    }
}
