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
    /// Rows read at most; 0 prepares the statement without running it
    /// (describing its columns).
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

/// The governed database.
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

    /// Runs one write in its own transaction; returns the rows affected.
    pub async fn write(&self, write: BackendWrite) -> Result<u64, BackendError> {
        match self {
            Backend::Sqlite(b) => b.write(write).await,
            Backend::Postgres(b) => b.write(write).await,
        }
    }

    /// Runs one analyzed statement.
    pub async fn query(&self, query: BackendQuery) -> Result<QueryOutput, BackendError> {
        match self {
            Backend::Sqlite(b) => {
                b.query(query.sql, query.params, query.tables, query.limits)
                    .await
            }
            Backend::Postgres(b) => b.query(query).await,
        }
    }

    /// Runs one analyzed statement, its rows read as a [`RowStream`].
    pub async fn query_stream(&self, query: BackendQuery) -> Result<RowStream, BackendError> {
        let (sink, rx) = RowSink::channel();
        match self {
            Backend::Sqlite(b) => b.stream(query, sink).await?,
            Backend::Postgres(b) => b.stream(query, sink).await?,
        }
        RowStream::start(rx).await
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

/// Rows per batch of a [`RowStream`].
pub const STREAM_BATCH_ROWS: usize = 1024;
/// Batches a stream buffers ahead of its reader: the backend waits beyond
/// this, so a slow reader bounds memory instead of growing it.
const STREAM_BATCHES_AHEAD: usize = 4;

pub(crate) enum StreamItem {
    Columns(Vec<OutputColumn>),
    Rows(Vec<Vec<serde_json::Value>>),
    Truncated,
}

/// Where a backend's row loop puts its rows, a batch at a time: collected
/// for one reply, or sent on to a [`RowStream`] reader. One loop per
/// backend serves both.
pub(crate) enum RowSink {
    Collect(Vec<Vec<serde_json::Value>>),
    Send {
        tx: StreamSender,
        columns_sent: bool,
    },
}

type StreamMessage = Result<StreamItem, BackendError>;
type StreamSender = tokio::sync::mpsc::Sender<StreamMessage>;

impl RowSink {
    /// A sink for a stream and the stream that reads it.
    fn channel() -> (RowSink, tokio::sync::mpsc::Receiver<StreamMessage>) {
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BATCHES_AHEAD);
        (
            RowSink::Send {
                tx,
                columns_sent: false,
            },
            rx,
        )
    }

    /// How many rows to read before handing them over.
    pub(crate) fn batch_rows(&self) -> usize {
        match self {
            RowSink::Collect(_) => usize::MAX,
            RowSink::Send { .. } => STREAM_BATCH_ROWS,
        }
    }

    /// Keeps a collected batch, or says what to send a stream's reader
    /// (the columns before the first rows), and on which channel.
    fn outgoing(
        &mut self,
        columns: &[OutputColumn],
        batch: Vec<Vec<serde_json::Value>>,
    ) -> Option<(&StreamSender, Vec<StreamItem>)> {
        match self {
            RowSink::Collect(rows) => {
                if rows.is_empty() {
                    *rows = batch;
                } else {
                    rows.extend(batch);
                }
                None
            }
            RowSink::Send { tx, columns_sent } => {
                let mut items = Vec::with_capacity(2);
                if !*columns_sent {
                    *columns_sent = true;
                    items.push(StreamItem::Columns(columns.to_vec()));
                }
                if !batch.is_empty() {
                    items.push(StreamItem::Rows(batch));
                }
                Some((tx, items))
            }
        }
    }

    /// Hands over a batch from a blocking thread; false when the reader is
    /// gone (stop reading).
    pub(crate) fn put_blocking(
        &mut self,
        columns: &[OutputColumn],
        batch: Vec<Vec<serde_json::Value>>,
    ) -> bool {
        match self.outgoing(columns, batch) {
            None => true,
            Some((tx, items)) => items
                .into_iter()
                .all(|item| tx.blocking_send(Ok(item)).is_ok()),
        }
    }

    /// [`RowSink::put_blocking`] from async code.
    pub(crate) async fn put(
        &mut self,
        columns: &[OutputColumn],
        batch: Vec<Vec<serde_json::Value>>,
    ) -> bool {
        if let Some((tx, items)) = self.outgoing(columns, batch) {
            for item in items {
                if tx.send(Ok(item)).await.is_err() {
                    return false;
                }
            }
        }
        true
    }

    /// A stream's last message: truncation or the error (a collected
    /// reply carries both itself; a clean end needs no message).
    fn last(&self, end: Result<bool, BackendError>) -> Option<(&StreamSender, StreamMessage)> {
        match (self, end) {
            (RowSink::Collect(_), _) | (_, Ok(false)) => None,
            (RowSink::Send { tx, .. }, Ok(true)) => Some((tx, Ok(StreamItem::Truncated))),
            (RowSink::Send { tx, .. }, Err(e)) => Some((tx, Err(e))),
        }
    }

    /// Ends a stream from a blocking thread.
    pub(crate) fn end_blocking(&mut self, end: Result<bool, BackendError>) {
        if let Some((tx, message)) = self.last(end) {
            let _ = tx.blocking_send(message);
        }
    }

    /// Ends a stream from async code.
    pub(crate) async fn end(&mut self, end: Result<bool, BackendError>) {
        if let Some((tx, message)) = self.last(end) {
            let _ = tx.send(message).await;
        }
    }
}

/// The rows of a query as the backend reads them, in batches of at most
/// [`STREAM_BATCH_ROWS`], with at most a few batches buffered: exports
/// read millions of rows in bounded memory. The backend's connection is
/// held until the stream ends or is dropped.
pub struct RowStream {
    pub columns: Vec<OutputColumn>,
    rx: tokio::sync::mpsc::Receiver<StreamMessage>,
    truncated: bool,
}

impl RowStream {
    /// Waits for the result's columns (or the query's error).
    async fn start(
        mut rx: tokio::sync::mpsc::Receiver<StreamMessage>,
    ) -> Result<RowStream, BackendError> {
        match rx.recv().await {
            Some(Ok(StreamItem::Columns(columns))) => Ok(RowStream {
                columns,
                rx,
                truncated: false,
            }),
            Some(Err(e)) => Err(e),
            Some(Ok(_)) | None => Err(BackendError::Internal {
                message: "the query's row stream ended before its columns".into(),
            }),
        }
    }

    /// The next batch; `None` at the end.
    pub async fn next_batch(
        &mut self,
    ) -> Option<Result<Vec<Vec<serde_json::Value>>, BackendError>> {
        loop {
            return match self.rx.recv().await? {
                Ok(StreamItem::Rows(rows)) => Some(Ok(rows)),
                Ok(StreamItem::Truncated) => {
                    self.truncated = true;
                    None
                }
                Ok(StreamItem::Columns(_)) => continue,
                Err(e) => Some(Err(e)),
            };
        }
    }

    /// More rows existed than the query's `max_rows` (known at the end).
    pub fn truncated(&self) -> bool {
        self.truncated
    }
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
