//! Privet's audit log.
//!
//! One [`Event`] per request, appended to an append-only log whose leaves and
//! tree hashes follow RFC 6962, made durable by group commit before the
//! gateway replies, with Ed25519-signed checkpoints (tree heads), standard
//! inclusion and consistency proofs, and a tantivy index for search. The log
//! is the source of truth; the index can always be rebuilt from it.
//!
//! The log is [`AuditLog`] (its files are described in [`mod@format`] and
//! [`checkpoint`]); [`merkle`] builds the RFC 6962 tree and proofs, which
//! the independent [`verifier`] checks; [`verify()`] audits a log directory
//! offline.
//!
//! This crate knows nothing of HTTP, SQL or the CLI: the gateway builds the
//! events and renders the answers.

pub mod checkpoint;
mod error;
pub mod event;
pub mod format;
pub mod index;
mod log;
pub mod merkle;
mod query;
pub mod verifier;
mod verify;

pub use checkpoint::{PublicKey, SignedCheckpoint};
pub use error::LogError;
pub use event::{
    Anomaly, ColumnAccess, Decision, Event, Outcome, Subjects, TableAccess, MAX_SUBJECTS,
};
pub use index::{AuditIndex, Hits, IndexError, Page, TimeRange, QUERY_SYNTAX, UNATTRIBUTED};
pub use log::{AuditLog, LogOptions, Recovery};
pub use merkle::Hash;
pub use verify::{verify, verify_with_key, VerifyReport};
