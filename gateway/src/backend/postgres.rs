//! The PostgreSQL backend: a bounded pool of tokio-postgres connections,
//! each a read-only session with the statement timeout set, running the
//! analyzer's rewritten SQL with bound parameters and converting results
//! exactly ([`super::pg_values`]).
//!
//! Sessions are hardened once, when opened: `default_transaction_read_only`
//! (whatever gets past the analyzer cannot write), `statement_timeout`,
//! `search_path = pg_catalog` (rewritten statements name every table with
//! its schema; nothing in the governed schema can shadow a function), UTC.
//! The policy views' pseudonym keys are set per domain, when a query first
//! needs them, as bound parameters (never in SQL text). A connection that
//! fails is dropped and a new one opened on the next request, so the
//! gateway recovers by itself when the server comes back.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Statement};

use super::pg_values::{self, RawValue, TextParam};
use super::pool::Pool;
use super::{BackendError, BackendQuery, OutputColumn, QueryOutput, RowSink};
use crate::catalog::{Catalog, ColumnInfo, TableInfo};
use crate::config::{Limits, PostgresUrl};

/// Prepared statements kept per connection (cleared when full).
const STATEMENT_CACHE: usize = 256;

/// Extra time the client waits beyond the server's statement timeout before
/// it gives the connection up (a server that stopped answering).
const CLIENT_GRACE: Duration = Duration::from_secs(5);

/// The PostgreSQL backend. Cheap to clone.
#[derive(Clone)]
pub struct PostgresBackend {
    inner: Arc<Inner>,
}

struct Inner {
    url: PostgresUrl,
    schema: String,
    token_key: Arc<vault::TokenKey>,
    statement_timeout: Duration,
    pool: Pool<PgConnection>,
}

/// One session and what it already holds.
struct PgConnection {
    client: Client,
    statements: HashMap<String, Statement>,
    /// Pseudonym domains whose keys this session has.
    domains: BTreeSet<String>,
}

impl PostgresBackend {
    /// Connects once to check the server, the credentials and the schema.
    pub async fn open(
        url: &PostgresUrl,
        schema: &str,
        limits: &Limits,
        token_key: Arc<vault::TokenKey>,
    ) -> Result<PostgresBackend, BackendError> {
        let inner = Inner {
            url: url.clone(),
            schema: schema.to_owned(),
            token_key,
            statement_timeout: limits.statement_timeout,
            pool: Pool::new(limits.pool_size, limits.pool_wait),
        };
        let conn = inner.connect().await?;
        let exists = conn
            .client
            .query_opt("SELECT 1 FROM pg_namespace WHERE nspname = $1", &[&schema])
            .await
            .map_err(|e| inner.error(&e))?;
        if exists.is_none() {
            return Err(inner.unavailable(format!(
                "the database has no schema `{schema}` (set `schema` in privet.toml, or seed the demo with `privet seed --backend URL --schema {schema}`)"
            )));
        }
        inner.pool.release(conn);
        Ok(PostgresBackend {
            inner: Arc::new(inner),
        })
    }

    /// `postgres://user@host:port/db (schema s)`: never the password.
    pub fn describe(&self) -> String {
        format!("{} (schema {})", self.inner.url, self.inner.schema)
    }

    /// Tables (and views) of the governed schema with their columns, types
    /// and primary keys, in column order.
    pub async fn catalog(&self) -> Result<Catalog, BackendError> {
        let _permit = self.inner.pool.permit().await?;
        let conn = self.inner.take().await?;
        let rows = conn
            .client
            .query(
                "SELECT c.relname::text, a.attname::text, \
                        format_type(a.atttypid, a.atttypmod), \
                        COALESCE(a.attnum = ANY (i.indkey), false) \
                 FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
                 LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary \
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'v', 'm', 'p', 'f') \
                 ORDER BY c.relname, a.attnum",
                &[&self.inner.schema],
            )
            .await
            .map_err(|e| self.inner.error(&e))?;
        self.inner.pool.release(conn);
        let mut tables: Vec<TableInfo> = Vec::new();
        for row in rows {
            let (table, column, decl_type, primary_key): (String, String, String, bool) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            if tables.last().is_none_or(|t| t.name != table) {
                tables.push(TableInfo {
                    name: table,
                    columns: Vec::new(),
                });
            }
            if let Some(t) = tables.last_mut() {
                t.columns.push(ColumnInfo {
                    name: column,
                    decl_type,
                    primary_key,
                });
            }
        }
        Catalog::postgres(&self.inner.schema, tables).map_err(|e| BackendError::Internal {
            message: e.to_string(),
        })
    }

    /// Runs one write in a read-write transaction of its own (sessions
    /// are read-only by default). The database role's grants still apply.
    pub async fn write(&self, write: super::BackendWrite) -> Result<u64, BackendError> {
        let _permit = self.inner.pool.permit().await?;
        let conn = self.inner.take().await?;
        let deadline = write.timeout + CLIENT_GRACE;
        let run = async {
            conn.client
                .batch_execute("START TRANSACTION READ WRITE")
                .await
                .map_err(|e| self.inner.error(&e))?;
            let params = write.params.iter().map(|p| TextParam(p));
            let affected = conn.client.execute_raw(write.sql.as_str(), params).await;
            match affected {
                Ok(n) => {
                    conn.client
                        .batch_execute("COMMIT")
                        .await
                        .map_err(|e| self.inner.error(&e))?;
                    Ok(n)
                }
                Err(e) => {
                    let _ = conn.client.batch_execute("ROLLBACK").await;
                    Err(self.inner.error(&e))
                }
            }
        };
        match tokio::time::timeout(deadline, run).await {
            Ok(Ok(n)) => {
                self.inner.pool.release(conn);
                Ok(n)
            }
            Ok(Err(e)) => {
                if matches!(e, BackendError::Query { .. } | BackendError::Refused { .. })
                    && !conn.client.is_closed()
                {
                    self.inner.pool.release(conn);
                }
                Err(e)
            }
            Err(_) => Err(self
                .inner
                .unavailable(format!("no answer within {} ms", deadline.as_millis()))),
        }
    }

    /// Runs one analyzed statement with its parameters bound.
    pub async fn query(&self, query: BackendQuery) -> Result<QueryOutput, BackendError> {
        let mut sink = RowSink::Collect(Vec::new());
        let (columns, truncated) = self.inner.execute(&query, &mut sink).await?;
        Ok(QueryOutput {
            columns,
            rows: match sink {
                RowSink::Collect(rows) => rows,
                RowSink::Send { .. } => Vec::new(),
            },
            truncated,
        })
    }

    /// Starts `query`, its rows going to `sink` (a stream's), which also
    /// receives the end: truncation or the error. A session and a pool
    /// permit are held until the rows are read or the reader goes.
    pub(crate) async fn stream(
        &self,
        query: BackendQuery,
        mut sink: RowSink,
    ) -> Result<(), BackendError> {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            let end = inner.execute(&query, &mut sink).await;
            sink.end(end.map(|(_, truncated)| truncated)).await;
        });
        Ok(())
    }
}

impl Inner {
    /// Runs `query` on a pooled session within its deadline, its rows into
    /// `sink`; returns the columns and whether the result was truncated.
    async fn execute(
        &self,
        query: &BackendQuery,
        sink: &mut RowSink,
    ) -> Result<(Vec<OutputColumn>, bool), BackendError> {
        let _permit = self.pool.permit().await?;
        let mut conn = self.take().await?;
        let deadline = query.limits.timeout + CLIENT_GRACE;
        match tokio::time::timeout(deadline, self.run(&mut conn, query, sink)).await {
            Ok(Ok((columns, truncated))) => {
                // A truncated read cancelled the rest; the cancel could race
                // with a later statement on this session, so it is not reused.
                if !truncated {
                    self.pool.release(conn);
                }
                Ok((columns, truncated))
            }
            Ok(Err(e)) => {
                // A statement error leaves the session usable; anything else
                // (the server went away, a timeout mid-stream) does not.
                if matches!(e, BackendError::Query { .. } | BackendError::Timeout { .. })
                    && !conn.client.is_closed()
                {
                    self.pool.release(conn);
                } else {
                    self.pool.clear_idle();
                }
                Err(e)
            }
            Err(_) => {
                Err(self.unavailable(format!("no answer within {} ms", deadline.as_millis())))
            }
        }
    }

    fn unavailable(&self, message: String) -> BackendError {
        BackendError::Unavailable {
            backend: self.url.redacted().to_owned(),
            message,
        }
    }

    /// Maps a driver error. The server's messages name no credential; the
    /// connection string is never part of them.
    fn error(&self, e: &tokio_postgres::Error) -> BackendError {
        let Some(db) = e.as_db_error() else {
            return self.unavailable(e.to_string());
        };
        let code = db.code();
        if *code == SqlState::QUERY_CANCELED {
            BackendError::Timeout {
                timeout_ms: self.statement_timeout.as_millis(),
            }
        } else if *code == SqlState::INSUFFICIENT_PRIVILEGE {
            // The database's own grants held: the second wall.
            BackendError::Refused {
                message: db.message().to_owned(),
            }
        } else if code.code().starts_with("08")
            || code.code().starts_with("28")
            || code.code().starts_with("53")
            || code.code().starts_with("57P")
        {
            self.unavailable(db.message().to_owned())
        } else {
            BackendError::Query {
                message: db.message().to_owned(),
            }
        }
    }

    /// An idle session that is still open, or a new one.
    async fn take(&self) -> Result<PgConnection, BackendError> {
        while let Some(conn) = self.pool.take_idle() {
            if !conn.client.is_closed() {
                return Ok(conn);
            }
        }
        self.connect().await
    }

    async fn connect(&self) -> Result<PgConnection, BackendError> {
        let (client, connection) = self
            .url
            .connect_config()
            .connect(NoTls)
            .await
            .map_err(|e| self.error(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "PostgreSQL connection ended");
            }
        });
        let setup = format!(
            "SET default_transaction_read_only = on; \
             SET statement_timeout = {}; \
             SET search_path = pg_catalog; \
             SET TimeZone = 'UTC'; \
             SET DateStyle = 'ISO, YMD'; \
             SET IntervalStyle = 'iso_8601'",
            self.statement_timeout.as_millis()
        );
        client
            .batch_execute(&setup)
            .await
            .map_err(|e| self.error(&e))?;
        Ok(PgConnection {
            client,
            statements: HashMap::new(),
            domains: BTreeSet::new(),
        })
    }

    /// Runs `query` on `conn`; also says whether the session may be reused.
    async fn run(
        &self,
        conn: &mut PgConnection,
        query: &BackendQuery,
        sink: &mut RowSink,
    ) -> Result<(Vec<OutputColumn>, bool), BackendError> {
        self.give_keys(conn, &query.pseudonym_domains).await?;
        let statement = match conn.statements.get(&query.sql) {
            Some(s) => s.clone(),
            None => {
                let s = conn
                    .client
                    .prepare(&query.sql)
                    .await
                    .map_err(|e| self.error(&e))?;
                if conn.statements.len() >= STATEMENT_CACHE {
                    conn.statements.clear();
                }
                conn.statements.insert(query.sql.clone(), s.clone());
                s
            }
        };
        if statement.params().len() != query.params.len() {
            return Err(BackendError::Internal {
                message: format!(
                    "the statement has {} parameters, {} were given",
                    statement.params().len(),
                    query.params.len()
                ),
            });
        }
        let columns: Vec<OutputColumn> = statement
            .columns()
            .iter()
            .map(|c| OutputColumn {
                name: c.name().to_owned(),
                type_name: Some(c.type_().name().to_owned()),
            })
            .collect();
        if query.limits.max_rows == 0 {
            return Ok((columns, false));
        }
        let params = query.params.iter().map(|p| TextParam(p));
        let stream = conn
            .client
            .query_raw(&statement, params)
            .await
            .map_err(|e| self.error(&e))?;
        let mut stream = std::pin::pin!(stream);
        let batch_rows = sink.batch_rows();
        let mut batch = Vec::new();
        let mut count = 0;
        let mut truncated = false;
        while let Some(row) = stream.next().await {
            let row = row.map_err(|e| self.error(&e))?;
            if count == query.limits.max_rows {
                truncated = true;
                break;
            }
            let mut values = Vec::with_capacity(columns.len());
            for (i, column) in statement.columns().iter().enumerate() {
                let raw: Option<RawValue<'_>> =
                    row.try_get(i).map_err(|e| BackendError::Internal {
                        message: format!("reading column {}: {e}", column.name()),
                    })?;
                let value = pg_values::to_json(column.type_(), raw.map(|r| r.0)).map_err(|e| {
                    BackendError::Query {
                        message: format!("column `{}`: {e}", column.name()),
                    }
                })?;
                values.push(value);
            }
            batch.push(values);
            count += 1;
            if batch.len() >= batch_rows && !sink.put(&columns, std::mem::take(&mut batch)).await {
                // The reader went away: stop the rest, as for truncation.
                truncated = true;
                break;
            }
        }
        if !truncated {
            sink.put(&columns, batch).await;
        }
        if truncated {
            // Stop the server sending the rest. The cancel could race with a
            // later statement on this session, so the session is not reused.
            let cancel = conn.client.cancel_token();
            tokio::spawn(async move {
                let _ = cancel.cancel_query(NoTls).await;
            });
        }
        Ok((columns, truncated))
    }

    /// Sets the pseudonym keys of `domains` this session does not have yet,
    /// in one round trip, as bound parameters.
    async fn give_keys(
        &self,
        conn: &mut PgConnection,
        domains: &BTreeSet<String>,
    ) -> Result<(), BackendError> {
        let missing: Vec<String> = domains.difference(&conn.domains).cloned().collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut values: Vec<String> = Vec::with_capacity(missing.len() * 2);
        let mut calls = Vec::with_capacity(missing.len());
        for (i, domain) in missing.iter().enumerate() {
            values.push(crate::masks::pseudonym_setting(domain));
            values.push(crate::masks::pseudonym_setting_value(
                &self.token_key,
                domain,
            ));
            calls.push(format!(
                "set_config(${}::text, ${}::text, false)",
                2 * i + 1,
                2 * i + 2
            ));
        }
        let sql = format!("SELECT {}", calls.join(", "));
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        conn.client
            .query(&sql, &params)
            .await
            .map_err(|e| self.error(&e))?;
        conn.domains.extend(missing);
        Ok(())
    }
}
