//! Backends: where governed queries run. The embedded default is SQLite;
//! PostgreSQL is the production backend. Every backend returns rows already
//! converted to JSON values, and speaks its own SQL dialect: the analyzer
//! parses and rewrites in [`Backend::dialect`].

pub mod pg_values;
mod pool;
pub mod postgres;
pub mod sqlite;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use postgres::PostgresBackend;
pub use sqlite::SqliteBackend;

use crate::catalog::Catalog;
use crate::config::{BackendConfig, Limits};
use crate::masks::Dialect;

/// What one query may do, handed to the backend with the SQL.
#[derive(Debug, Clone)]
pub struct QueryLimits {
    pub max_rows: usize,
    pub timeout: Duration,
}

/// One analyzed, rewritten statement for the backend.
#[derive(Debug, Clone)]
pub struct BackendQuery {
    /// The rewritten SQL, in the backend's dialect.
    pub sql: String,
    /// Bound parameters (row-filter principal attributes), as text.
    pub params: Vec<String>,
    /// The (canonical) tables the analyzer approved: the SQLite backend's
    /// authorizer refuses reads of any other.
    pub tables: BTreeSet<String>,
    /// Pseudonym domains the policy views compute (PostgreSQL sessions are
    /// given these domains' keys).
    pub pseudonym_domains: BTreeSet<String>,
    pub limits: QueryLimits,
}

/// The governed database.
/// One write the gateway built (`INSERT`/`UPDATE` of one table), its
/// values bound as text parameters.
#[derive(Debug, Clone)]
pub struct BackendWrite {
    pub sql: String,
    pub params: Vec<String>,
    /// The canonical name of the one table written.
    pub table: String,
    pub timeout: Duration,
}

#[derive(Clone)]
pub enum Backend {
    Sqlite(SqliteBackend),
    Postgres(PostgresBackend),
}

impl Backend {
    /// Opens the configured backend and checks that it answers.
    pub async fn open(
        config: &BackendConfig,
        limits: &Limits,
        token_key: Arc<vault::TokenKey>,
    ) -> Result<Backend, BackendError> {
        Ok(match config {
            BackendConfig::Sqlite { path } => Backend::Sqlite(SqliteBackend::open(
                path,
                limits.pool_size,
                limits.pool_wait,
                token_key,
            )?),
            BackendConfig::Postgres { url, schema } => {
                Backend::Postgres(PostgresBackend::open(url, schema, limits, token_key).await?)
            }
        })
    }

    /// A name for messages and metrics, never a credential.
    pub fn describe(&self) -> String {
        match self {
            Backend::Sqlite(b) => b.describe(),
            Backend::Postgres(b) => b.describe(),
        }
    }

    /// The SQL dialect the backend runs.
    pub fn dialect(&self) -> Dialect {
        match self {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The governed tables, from the database's own catalog.
    pub async fn catalog(&self) -> Result<Catalog, BackendError> {
        match self {
            Backend::Sqlite(b) => b.catalog(),
            Backend::Postgres(b) => b.catalog().await,
        }
    }

    /// Runs one analyzed statement.
    /// Runs one write in its own transaction; returns the rows affected.
    pub async fn write(&self, write: BackendWrite) -> Result<u64, BackendError> {
        match self {
            Backend::Sqlite(b) => b.write(write).await,
            Backend::Postgres(b) => b.write(write).await,
        }
    }

    pub async fn query(&self, query: BackendQuery) -> Result<QueryOutput, BackendError> {
        match self {
            Backend::Sqlite(b) => {
                b.query(query.sql, query.params, query.tables, query.limits)
                    .await
            }
            Backend::Postgres(b) => b.query(query).await,
        }
    }
}

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
