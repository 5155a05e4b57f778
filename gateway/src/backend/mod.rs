//! Backends: where governed queries run. The embedded default is SQLite;
//! every backend returns rows already converted to JSON values.

pub mod pg_values;
pub mod sqlite;

use serde::Serialize;

pub use sqlite::SqliteBackend;

/// A result column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputColumn {
    pub name: String,
    /// The declared type (lower case) or, for expressions, the type of the
    /// values seen; `None` when nothing tells.
    #[serde(rename = "type")]
    pub type_name: Option<String>,
}

/// The rows of a query, converted for JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryOutput {
    pub columns: Vec<OutputColumn>,
    pub rows: Vec<Vec<serde_json::Value>>,
    /// More rows existed than the configured `max_rows`.
    pub truncated: bool,
}

/// Why a backend could not answer.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The database cannot be reached or opened. The message names the
    /// backend but never a credential.
    #[error("the backend {backend} is unavailable: {message}")]
    Unavailable { backend: String, message: String },
    /// Every pooled connection stayed busy for the configured wait.
    #[error("all {pool_size} backend connections stayed busy for {waited_ms} ms; retry later")]
    Busy { pool_size: usize, waited_ms: u128 },
    #[error("the query ran longer than the statement timeout of {timeout_ms} ms and was stopped")]
    Timeout { timeout_ms: u128 },
    /// The backend's own guard (SQLite authorizer) refused the statement:
    /// the second wall held where the analyzer should already have refused.
    #[error("the backend's access guard refused the statement: {message}")]
    Refused { message: String },
    /// The database rejected the statement (type error, missing column, ...).
    #[error("the database rejected the query: {message}")]
    Query { message: String },
    #[error("internal backend error: {message}")]
    Internal { message: String },
}
