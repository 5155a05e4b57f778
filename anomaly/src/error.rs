//! [`StateError`]: saving or loading the detector's state.

use std::io;
use std::path::PathBuf;

/// Why the state file could not be saved or loaded. The gateway decides
/// what a load failure means: refuse to start, or start fresh and warn.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// There is no state file yet (first start).
    #[error("anomaly state {} does not exist", path.display())]
    NotFound { path: PathBuf },
    /// The file exists but could not be read.
    #[error("cannot read anomaly state {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file is not a state this build wrote: truncated, edited, or
    /// another file altogether.
    #[error("anomaly state {} is corrupt: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// Written by a build with another state format.
    #[error("anomaly state {} has format version {found}; this build reads version {expected}", path.display())]
    Version {
        path: PathBuf,
        found: u32,
        expected: u32,
    },
    /// The state could not be written (the previous file, if any, is
    /// left as it was).
    #[error("cannot write anomaly state {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
