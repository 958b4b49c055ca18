//! Why the live client could not start or stop, and what an administrator should do about it.
//!
//! `es_new_client`'s failures map one to one to missing prerequisites (reference §2): calling it
//! is the only supported way to learn whether Full Disk Access was granted, so `NotPermitted`
//! is a state to wait out — retried until the user or an MDM profile grants access — while a
//! missing entitlement or running without root cannot fix itself and ends the client.
//! Compiled everywhere so the wording is tested on Linux.

use std::fmt;

/// An `es_new_client` failure (`es_new_client_result_t`), independent of endpoint-sec's types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NewClientFailure {
    NotEntitled,
    NotPermitted,
    NotPrivileged,
    TooManyClients,
    InvalidArgument,
    Internal,
    /// The call needs a newer macOS than the runtime version endpoint-sec was told.
    ApiUnavailable,
    /// A result this build does not know (a newer macOS).
    Unknown(u32),
}

impl NewClientFailure {
    /// `true` when waiting can cure it: Full Disk Access may be granted at any time, and another
    /// client may go away. Everything else is a configuration or build error.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            NewClientFailure::NotPermitted | NewClientFailure::TooManyClients
        )
    }

    /// The C name, as Apple's documentation and `eslogger` print it.
    pub fn es_name(self) -> &'static str {
        match self {
            NewClientFailure::NotEntitled => "ES_NEW_CLIENT_RESULT_ERR_NOT_ENTITLED",
            NewClientFailure::NotPermitted => "ES_NEW_CLIENT_RESULT_ERR_NOT_PERMITTED",
            NewClientFailure::NotPrivileged => "ES_NEW_CLIENT_RESULT_ERR_NOT_PRIVILEGED",
            NewClientFailure::TooManyClients => "ES_NEW_CLIENT_RESULT_ERR_TOO_MANY_CLIENTS",
            NewClientFailure::InvalidArgument => "ES_NEW_CLIENT_RESULT_ERR_INVALID_ARGUMENT",
            NewClientFailure::Internal => "ES_NEW_CLIENT_RESULT_ERR_INTERNAL",
            NewClientFailure::ApiUnavailable => "API unavailable for the detected macOS version",
            NewClientFailure::Unknown(_) => "unknown es_new_client_result_t",
        }
    }

    /// What to do about it, in a sentence or two an administrator can act on.
    pub fn guidance(self) -> &'static str {
        match self {
            NewClientFailure::NotPermitted => {
                "Full Disk Access has not been granted. Grant it in System Settings → Privacy & \
                 Security → Full Disk Access to the execsentry system extension (or, when run as a \
                 launchd daemon or from a shell, to the daemon binary or the terminal that started \
                 it), or deploy the PPPC profile packaging/macos/mdm/execsentry-fda.mobileconfig. \
                 execsentry retries every 30 seconds and starts as soon as access is granted; no \
                 restart is needed."
            }
            NewClientFailure::NotEntitled => {
                "the binary is not signed with the com.apple.developer.endpoint-security.client \
                 entitlement, or its embedded provisioning profile does not grant it. Build it with \
                 packaging/macos (the system extension or the app-bundled daemon carries the \
                 profile); for development only, disable SIP and sign ad hoc with the entitlement."
            }
            NewClientFailure::NotPrivileged => {
                "Endpoint Security clients must run as root: start execsentry with sudo, as a \
                 launchd daemon, or as the system extension."
            }
            NewClientFailure::TooManyClients => {
                "the system-wide limit of Endpoint Security clients is reached; stop another \
                 security agent's client or wait for one to exit. execsentry retries."
            }
            NewClientFailure::InvalidArgument => {
                "Endpoint Security rejected the client's arguments; this is a bug in execsentry, \
                 please report it."
            }
            NewClientFailure::Internal => {
                "Endpoint Security failed internally; check `log show --predicate 'subsystem == \
                 \"com.apple.endpointsecurity\"' --last 10m` and try again."
            }
            NewClientFailure::ApiUnavailable => {
                "this macOS is older than the one the client needs (macOS 13 or later)."
            }
            NewClientFailure::Unknown(_) => {
                "this macOS returned a result execsentry does not know; update execsentry."
            }
        }
    }
}

impl fmt::Display for NewClientFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NewClientFailure::Unknown(code) => write!(f, "{} ({code:#x})", self.es_name())?,
            _ => f.write_str(self.es_name())?,
        }
        write!(f, ": {}", self.guidance())
    }
}

/// The live client's errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error("cannot create the Endpoint Security client: {0}")]
    NewClient(NewClientFailure),
    #[error("es_subscribe to exec, fork and exit failed: {0}")]
    Subscribe(String),
    #[error("es_unsubscribe_all or es_delete_client failed on shutdown: {0}")]
    Shutdown(String),
    #[error("cannot start the Endpoint Security thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the Endpoint Security thread ended without a word (it panicked)")]
    ThreadDied,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_access_and_client_limit_are_retried() {
        use NewClientFailure::*;
        for f in [NotPermitted, TooManyClients] {
            assert!(f.is_retryable(), "{f:?}");
        }
        for f in [
            NotEntitled,
            NotPrivileged,
            InvalidArgument,
            Internal,
            ApiUnavailable,
            Unknown(42),
        ] {
            assert!(!f.is_retryable(), "{f:?}");
        }
    }

    #[test]
    fn guidance_names_the_fix() {
        let text = NewClientFailure::NotPermitted.to_string();
        assert!(text.starts_with("ES_NEW_CLIENT_RESULT_ERR_NOT_PERMITTED: "));
        assert!(text.contains("Full Disk Access"));
        assert!(text.contains("every 30 seconds"));
        assert!(NewClientFailure::NotEntitled
            .to_string()
            .contains("com.apple.developer.endpoint-security.client"));
        assert!(NewClientFailure::NotPrivileged.to_string().contains("root"));
        assert_eq!(
            NewClientFailure::Unknown(0x10)
                .to_string()
                .split(':')
                .next(),
            Some("unknown es_new_client_result_t (0x10)")
        );
        let err = ClientError::NewClient(NewClientFailure::NotPrivileged).to_string();
        assert!(err.starts_with(
            "cannot create the Endpoint Security client: ES_NEW_CLIENT_RESULT_ERR_NOT_PRIVILEGED"
        ));
    }
}
