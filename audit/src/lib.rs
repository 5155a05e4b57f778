//! Privet's audit log.
//!
//! One [`Event`] per request, appended to an append-only log whose leaves and
//! tree hashes follow RFC 6962, made durable by group commit before the
//! gateway replies, with Ed25519-signed checkpoints (tree heads), standard
//! inclusion and consistency proofs, and a tantivy index for search. The log
//! is the source of truth; the index can always be rebuilt from it.
//!
//! This crate knows nothing of HTTP, SQL or the CLI: the gateway builds the
//! events and renders the answers.

pub mod event;

pub use event::{
    Anomaly, ColumnAccess, Decision, Event, Outcome, Subjects, TableAccess, MAX_SUBJECTS,
};
