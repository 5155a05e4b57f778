//! [`LogError`]: everything that can go wrong with the audit log.

use std::io;
use std::path::{Path, PathBuf};

/// Renders an optional sequence number for error messages.
fn at_seq(seq: &Option<u64>) -> String {
    match seq {
        Some(seq) => format!(" at seq {seq}"),
        None => String::new(),
    }
}

/// Why an audit log operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A file of the log could not be read or written while opening,
    /// reading or verifying it.
    #[error("audit log file {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// `open` found damage it must not repair: a bad record followed by
    /// good ones (tampering or media damage, not a torn write), a
    /// checkpoint that does not match the log, or a log shorter than a
    /// signed checkpoint. The log refuses to open rather than drop events.
    #[error("audit log is corrupt{}: {what}", at_seq(.seq))]
    Corrupt {
        /// The first sequence number affected, when one is known.
        seq: Option<u64>,
        /// What is wrong, and where.
        what: String,
    },
    /// [`crate::verify`] found the log altered: names the first bad
    /// sequence number (or the checkpoint) and what is wrong.
    #[error("audit log verification failed{}: {what}", at_seq(.seq))]
    Tampered {
        /// The first bad sequence number; `None` when the fault is in a
        /// checkpoint or the key rather than in an event.
        seq: Option<u64>,
        /// What is wrong, and where.
        what: String,
    },
    /// The event was not logged: the log cannot write durably right now
    /// (disk full, I/O error, writer stopped). Nothing of the failed batch
    /// is in the log; callers must fail closed.
    #[error("audit log unavailable: {reason}")]
    Unavailable {
        /// Why, including the operating system's error.
        reason: String,
    },
    /// Another process (or another `AuditLog` in this one) has the log open.
    #[error("audit log {} is already open elsewhere (lock file held)", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// The signing key file is readable by group or others.
    #[error(
        "audit signing key {} is accessible by group or others (mode {mode:04o}); \
         restrict it with `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    InsecureKey {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A key file exists but does not hold a usable key.
    #[error("audit key file {}: {reason}", path.display())]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A sequence number or tree size beyond the log, or sizes in the wrong
    /// order.
    #[error("{what}")]
    OutOfRange {
        /// Which argument, and the log's size.
        what: String,
    },
    /// The event cannot be logged as given (too large, or its JSON does not
    /// start with the `seq` field the format relies on).
    #[error("invalid audit event: {reason}")]
    InvalidEvent {
        /// What is wrong.
        reason: String,
    },
}

impl LogError {
    pub(crate) fn io(path: &Path, source: io::Error) -> LogError {
        LogError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    pub(crate) fn unavailable(reason: impl Into<String>) -> LogError {
        LogError::Unavailable {
            reason: reason.into(),
        }
    }

    pub(crate) fn out_of_range(what: impl Into<String>) -> LogError {
        LogError::OutOfRange { what: what.into() }
    }
}
