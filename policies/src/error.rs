//! Errors of the policies crate.

use std::fmt;
use std::path::PathBuf;

/// A message tied to a place in a policy file. Line and column are 1-based;
/// 0 means the location is not known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub origin: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}:{}: {}",
                self.origin.display(),
                self.line,
                self.column,
                self.message
            )
        } else {
            write!(f, "{}: {}", self.origin.display(), self.message)
        }
    }
}

fn join(errors: &[Located]) -> String {
    errors
        .iter()
        .map(|e| format!("\n  {e}"))
        .collect::<String>()
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policies from {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no *.cedar policy files in {dir}: with no policies every request would be denied; copy the defaults from policies/cedar/ or write your own")]
    NoPolicies { dir: PathBuf },
    #[error("policy syntax error: {0}")]
    Parse(Located),
    #[error("{0}")]
    MissingId(Located),
    #[error("policy id {id:?} is used twice: in {first} and in {second}; ids must be unique")]
    DuplicateId {
        id: String,
        first: PathBuf,
        second: PathBuf,
    },
    #[error("policies do not validate against the Privet Cedar schema:{}", join(.0))]
    Validation(Vec<Located>),
    #[error("cannot build policy entities: {message}")]
    Entities { message: String },
    #[error("invalid authorization request: {message}")]
    Request { message: String },
    #[error("internal policy engine error: {message}")]
    Internal { message: String },
}
