//! The SQLite backend: a bounded pool of read-only connections, each query
//! guarded by an authorizer that admits exactly the tables the analyzer
//! approved, and interrupted at the statement timeout.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use rusqlite::config::DbConfig;
use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::pool::Pool;
use super::{BackendError, BackendQuery, OutputColumn, QueryLimits, QueryOutput, RowSink};
use crate::catalog::{Catalog, ColumnInfo, TableInfo};

/// How many SQLite VM instructions run between deadline checks.
const PROGRESS_INTERVAL: i32 = 1000;

/// The SQLite backend. Cheap to clone.
#[derive(Clone)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    /// Registered as `privet_pseudonym` on every connection, so policy views
    /// compute pseudonyms inside SQLite and joins on them still work.
    token_key: Arc<vault::TokenKey>,
    /// Every real table of the store (lower case), to tell them from CTEs in
    /// the authorizer.
    real_tables: BTreeSet<String>,
    pool: Pool<Connection>,
}

impl SqliteBackend {
    /// Opens the store read-only. It must exist: Privet never creates an
    /// empty database by accident (`privet seed` creates the demo one).
    pub fn open(
        path: &Path,
        pool_size: usize,
        pool_wait: Duration,
        token_key: Arc<vault::TokenKey>,
    ) -> Result<SqliteBackend, BackendError> {
        let mut inner = Inner {
            path: path.to_path_buf(),
            token_key,
            real_tables: BTreeSet::new(),
            pool: Pool::new(pool_size, pool_wait),
        };
        let conn = inner.open_connection()?;
        inner.real_tables = table_names(&conn)?
            .iter()
            .map(|t| t.to_ascii_lowercase())
            .collect();
        inner.pool.release(conn);
        Ok(SqliteBackend {
            inner: Arc::new(inner),
        })
    }

    /// A name for messages and metrics: the file, never more.
    pub fn describe(&self) -> String {
        format!("sqlite:{}", self.inner.path.display())
    }

    /// Reads tables and columns from `sqlite_schema` (internal `sqlite_*`
    /// tables excluded: they are never governed, and never readable).
    pub fn catalog(&self) -> Result<Catalog, BackendError> {
        let conn = self.inner.open_connection()?;
        let names = table_names(&conn)?;
        let mut tables = Vec::with_capacity(names.len());
        let mut columns_stmt = conn
            .prepare("SELECT name, type, pk FROM pragma_table_info(?1) ORDER BY cid")
            .map_err(query_err)?;
        for name in names {
            let columns = columns_stmt
                .query_map([&name], |row| {
                    Ok(ColumnInfo {
                        name: row.get(0)?,
                        decl_type: row.get(1)?,
                        primary_key: row.get::<_, i64>(2)? > 0,
                    })
                })
                .map_err(query_err)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(query_err)?;
            tables.push(TableInfo { name, columns });
        }
        Ok(Catalog::new(tables))
    }

    /// Runs one analyzed SELECT. `tables` are the (canonical) tables the
    /// analyzer approved: the authorizer refuses reads of any other.
    pub async fn query(
        &self,
        sql: String,
        params: Vec<String>,
        tables: BTreeSet<String>,
        limits: QueryLimits,
    ) -> Result<QueryOutput, BackendError> {
        let permit = self.inner.pool.permit().await?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let mut sink = RowSink::Collect(Vec::new());
            let (columns, truncated) = inner.on_connection(|conn, real_tables| {
                run_guarded(conn, &sql, &params, tables, real_tables, &limits, &mut sink)
            })?;
            let rows = match sink {
                RowSink::Collect(rows) => rows,
                RowSink::Send { .. } => Vec::new(),
            };
            Ok(QueryOutput {
                columns,
                rows,
                truncated,
            })
        })
        .await
        .map_err(|e| BackendError::Internal {
            message: format!("query task failed: {e}"),
        })?
    }

    /// Starts `query` on a pooled connection, its rows going to `sink` (a
    /// stream's), which also receives the end: truncation or the error.
    /// The connection is held until the rows are read or the reader goes.
    pub(crate) async fn stream(
        &self,
        query: BackendQuery,
        mut sink: RowSink,
    ) -> Result<(), BackendError> {
        let permit = self.inner.pool.permit().await?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let end = inner
                .on_connection(|conn, real_tables| {
                    run_guarded(
                        conn,
                        &query.sql,
                        &query.params,
                        query.tables,
                        real_tables,
                        &query.limits,
                        &mut sink,
                    )
                })
                .map(|(_, truncated)| truncated);
            sink.end_blocking(end);
        });
        Ok(())
    }
}

impl Inner {
    /// Runs `f` on a pooled read-only connection (opened when none is
    /// idle) and returns the connection, its per-query hooks removed.
    fn on_connection<T>(
        &self,
        f: impl FnOnce(&Connection, &BTreeSet<String>) -> Result<T, BackendError>,
    ) -> Result<T, BackendError> {
        let conn = match self.pool.take_idle() {
            Some(conn) => conn,
            None => self.open_connection()?,
        };
        let result = f(&conn, &self.real_tables);
        // Hooks are per query; never leave one installed on a pooled connection.
        conn.authorizer(None::<fn(AuthContext<'_>) -> Authorization>);
        conn.progress_handler(0, None::<fn() -> bool>);
        self.pool.release(conn);
        result
    }
}

impl SqliteBackend {
    /// Runs one write on a read-write connection of its own, opened for it:
    /// the pooled connections stay read-only. Its authorizer admits writes
    /// to the one table and nothing else.
    pub async fn write(&self, write: super::BackendWrite) -> Result<u64, BackendError> {
        let permit = self.inner.pool.permit().await?;
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let unavailable = |message: String| BackendError::Unavailable {
                backend: format!("sqlite:{}", inner.path.display()),
                message,
            };
            let conn = Connection::open_with_flags(
                &inner.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| unavailable(e.to_string()))?;
            harden(&conn, write.timeout)
                .map_err(|e| unavailable(format!("hardening the connection: {e}")))?;
            let table = write.table.to_ascii_lowercase();
            let refused: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
            let refused_in_hook = Arc::clone(&refused);
            conn.authorizer(Some(move |ctx: AuthContext<'_>| {
                let ours =
                    |t: &str| t.eq_ignore_ascii_case(&table) && ctx.database_name == Some("main");
                let allowed = match ctx.action {
                    AuthAction::Insert { table_name } => ours(table_name),
                    AuthAction::Update { table_name, .. } => ours(table_name),
                    // The statement is the gateway's own, not the client's:
                    // reads are foreign-key checks, which return nothing.
                    AuthAction::Read { .. } => ctx.database_name == Some("main"),
                    AuthAction::Transaction { .. } => true,
                    _ => false,
                };
                if allowed {
                    Authorization::Allow
                } else {
                    let mut slot = refused_in_hook.lock().unwrap_or_else(|p| p.into_inner());
                    slot.get_or_insert(format!("{:?}", ctx.action));
                    Authorization::Deny
                }
            }));
            let deadline = Instant::now() + write.timeout;
            conn.progress_handler(PROGRESS_INTERVAL, Some(move || Instant::now() >= deadline));
            conn.execute(&write.sql, rusqlite::params_from_iter(&write.params))
                .map(|n| n as u64)
                .map_err(|e| statement_error(&e, write.timeout, &refused))
        })
        .await
        .map_err(|e| BackendError::Internal {
            message: format!("write task failed: {e}"),
        })?
    }
}

impl Inner {
    fn open_connection(&self) -> Result<Connection, BackendError> {
        let unavailable = |message: String| BackendError::Unavailable {
            backend: format!("sqlite:{}", self.path.display()),
            message,
        };
        if !self.path.is_file() {
            return Err(unavailable(
                "the database file does not exist (create the demo store with `privet seed`)"
                    .into(),
            ));
        }
        // Read-only at the file level: whatever gets past the analyzer, it
        // cannot write.
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| unavailable(e.to_string()))?;
        harden(&conn, Duration::from_secs(5))
            .and_then(|()| {
                crate::masks::register_sqlite_functions(&conn, Arc::clone(&self.token_key))
            })
            .map_err(|e| unavailable(format!("hardening the connection: {e}")))?;
        Ok(conn)
    }
}

/// The settings every connection gets, reading or writing.
fn harden(conn: &Connection, busy: Duration) -> rusqlite::Result<()> {
    // A double-quoted identifier that matches no column must be an error,
    // not silently a string literal.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, false)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
    conn.busy_timeout(busy)?;
    Ok(())
}

fn query_err(e: rusqlite::Error) -> BackendError {
    BackendError::Internal {
        message: format!("reading the catalog: {e}"),
    }
}

/// Names of the user tables and views (internal `sqlite_*` ones excluded).
fn table_names(conn: &Connection) -> Result<Vec<String>, BackendError> {
    let mut stmt = conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type IN ('table', 'view') \
             AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name",
        )
        .map_err(query_err)?;
    let names = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .map_err(query_err)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(query_err)?;
    Ok(names)
}

/// The authorizer's rule for a table read. SQLite reports reads of real
/// tables with their database ("main"), and two kinds of read without one:
/// a table whose rows are visited but no column extracted (`count(*)`, rowid
/// scans), and CTEs. Unapproved real tables are refused in every form, so
/// not even their row count leaks.
fn read_allowed(
    table: &str,
    database: Option<&str>,
    approved: &BTreeSet<String>,
    real: &BTreeSet<String>,
) -> bool {
    let table = table.to_ascii_lowercase();
    match database {
        Some("main") => approved.contains(&table),
        Some(_) => false,
        None => {
            approved.contains(&table) || !(real.contains(&table) || table.starts_with("sqlite_"))
        }
    }
}

/// Prepares and runs `sql` under the authorizer and the deadline.
fn run_guarded(
    conn: &Connection,
    sql: &str,
    params: &[String],
    tables: BTreeSet<String>,
    real_tables: &BTreeSet<String>,
    limits: &QueryLimits,
    sink: &mut RowSink,
) -> Result<(Vec<OutputColumn>, bool), BackendError> {
    let real_tables = real_tables.clone();
    let refused: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let refused_in_hook = Arc::clone(&refused);
    conn.authorizer(Some(move |ctx: AuthContext<'_>| {
        let verdict = match ctx.action {
            AuthAction::Select | AuthAction::Function { .. } | AuthAction::Recursive => None,
            AuthAction::Read { table_name, .. } => {
                if read_allowed(table_name, ctx.database_name, &tables, &real_tables) {
                    None
                } else {
                    Some(format!("read of table {table_name}"))
                }
            }
            other => Some(format!("{other:?}")),
        };
        match verdict {
            None => Authorization::Allow,
            Some(what) => {
                let mut slot = refused_in_hook.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert(what);
                Authorization::Deny
            }
        }
    }));
    let deadline = Instant::now() + limits.timeout;
    conn.progress_handler(PROGRESS_INTERVAL, Some(move || Instant::now() >= deadline));

    let map_err = |e: rusqlite::Error| statement_error(&e, limits.timeout, &refused);

    let mut stmt = conn.prepare(sql).map_err(map_err)?;
    let mut columns: Vec<OutputColumn> = stmt
        .columns()
        .iter()
        .map(|c| OutputColumn {
            name: c.name().to_string(),
            type_name: c.decl_type().map(|t| t.to_ascii_lowercase()),
        })
        .collect();
    if limits.max_rows == 0 {
        return Ok((columns, false));
    }
    let width = columns.len();
    let batch_rows = sink.batch_rows();
    let mut batch = Vec::new();
    let mut count = 0;
    let mut truncated = false;
    let mut cursor = stmt
        .query(rusqlite::params_from_iter(params.iter()))
        .map_err(map_err)?;
    while let Some(row) = cursor.next().map_err(map_err)? {
        if count == limits.max_rows {
            truncated = true;
            break;
        }
        let mut values = Vec::with_capacity(width);
        for (i, column) in columns.iter_mut().enumerate() {
            let value = row.get_ref(i).map_err(map_err)?;
            if column.type_name.is_none() {
                column.type_name = value_type(value).map(str::to_string);
            }
            values.push(to_json(value));
        }
        batch.push(values);
        count += 1;
        if batch.len() >= batch_rows && !sink.put_blocking(&columns, std::mem::take(&mut batch)) {
            // The reader went away: stop reading.
            return Ok((columns, false));
        }
    }
    sink.put_blocking(&columns, batch);
    Ok((columns, truncated))
}

/// A failed statement as a backend error: interrupted at the deadline
/// (timeout), refused by the authorizer (naming what it refused, as the
/// hook recorded it), or rejected by SQLite.
fn statement_error(
    e: &rusqlite::Error,
    timeout: Duration,
    refused: &Mutex<Option<String>>,
) -> BackendError {
    match e.sqlite_error_code() {
        Some(ErrorCode::OperationInterrupted) => BackendError::Timeout {
            timeout_ms: timeout.as_millis(),
        },
        Some(ErrorCode::AuthorizationForStatementDenied) => BackendError::Refused {
            message: refused
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
                .unwrap_or_else(|| e.to_string()),
        },
        _ => BackendError::Query {
            message: e.to_string(),
        },
    }
}

fn value_type(value: ValueRef<'_>) -> Option<&'static str> {
    match value {
        ValueRef::Null => None,
        ValueRef::Integer(_) => Some("integer"),
        ValueRef::Real(_) => Some("real"),
        ValueRef::Text(_) => Some("text"),
        ValueRef::Blob(_) => Some("blob"),
    }
}

/// SQLite value → JSON: integers and reals as numbers, text as strings
/// (invalid UTF-8 replaced, never a panic), blobs as base64.
fn to_json(value: ValueRef<'_>) -> serde_json::Value {
    match value {
        ValueRef::Null => serde_json::Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => {
            serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)
        }
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
        ValueRef::Blob(b) => base64::engine::general_purpose::STANDARD.encode(b).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, SqliteBackend) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.sqlite3");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE customers(id INTEGER PRIMARY KEY, email TEXT, score REAL, photo BLOB);
             INSERT INTO customers VALUES (1, 'a@example.com', 1.5, x'0102'), (2, 'b@example.com', NULL, NULL);
             CREATE TABLE secrets(id INTEGER PRIMARY KEY, value TEXT);
             INSERT INTO secrets VALUES (1, 'top secret');",
        )
        .unwrap();
        drop(conn);
        let backend =
            SqliteBackend::open(&path, 2, Duration::from_millis(200), test_key()).unwrap();
        (dir, backend)
    }

    fn test_key() -> Arc<vault::TokenKey> {
        Arc::new(vault::TokenKey::from_bytes(&[7; 32]))
    }

    fn limits() -> QueryLimits {
        QueryLimits {
            max_rows: 100,
            timeout: Duration::from_secs(5),
        }
    }

    fn allow(tables: &[&str]) -> BTreeSet<String> {
        tables.iter().map(|t| t.to_string()).collect()
    }

    #[tokio::test]
    async fn catalog_lists_user_tables_only() {
        let (_dir, backend) = store();
        let catalog = backend.catalog().unwrap();
        let names: Vec<_> = catalog.tables().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["customers", "secrets"]);
        let customers = catalog.table("customers").unwrap();
        assert!(customers.columns[0].primary_key);
        assert_eq!(customers.columns[1].decl_type, "TEXT");
    }

    #[tokio::test]
    async fn values_convert_to_json() {
        let (_dir, backend) = store();
        let out = backend
            .query(
                "SELECT id, email, score, photo, id * 2 AS twice FROM customers ORDER BY id".into(),
                vec![],
                allow(&["customers"]),
                limits(),
            )
            .await
            .unwrap();
        assert_eq!(
            serde_json::json!(out.rows[0]),
            serde_json::json!([1, "a@example.com", 1.5, "AQI=", 2])
        );
        assert_eq!(out.rows[1][2], serde_json::Value::Null);
        assert_eq!(out.columns[1].type_name.as_deref(), Some("text"));
        assert_eq!(
            out.columns[4].type_name.as_deref(),
            Some("integer"),
            "inferred from values"
        );
        assert!(!out.truncated);
    }

    #[tokio::test]
    async fn max_rows_truncates() {
        let (_dir, backend) = store();
        let out = backend
            .query(
                "SELECT id FROM customers".into(),
                vec![],
                allow(&["customers"]),
                QueryLimits {
                    max_rows: 1,
                    ..limits()
                },
            )
            .await
            .unwrap();
        assert_eq!((out.rows.len(), out.truncated), (1, true));
    }

    /// The second wall: a statement the analyzer would have refused is
    /// refused by the backend too.
    #[tokio::test]
    async fn the_authorizer_refuses_tables_writes_and_pragmas_not_approved() {
        let (_dir, backend) = store();
        for sql in [
            "SELECT value FROM secrets",
            "SELECT count(*) FROM secrets",
            "SELECT id FROM secrets",
            "WITH s AS (SELECT id FROM secrets) SELECT count(*) FROM s",
            "SELECT c.id FROM customers c JOIN secrets s ON s.id = c.id",
            "SELECT (SELECT value FROM secrets) FROM customers",
            "PRAGMA table_info(secrets)",
            "SELECT name FROM sqlite_schema",
            "ATTACH DATABASE ':memory:' AS other",
            "DELETE FROM customers",
        ] {
            let err = backend
                .query(sql.into(), vec![], allow(&["customers"]), limits())
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    BackendError::Refused { .. } | BackendError::Query { .. }
                ),
                "{sql}: {err}"
            );
            assert!(!err.to_string().contains("top secret"));
        }
        let err = backend
            .query(
                "SELECT value FROM secrets".into(),
                vec![],
                allow(&["customers"]),
                limits(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackendError::Refused { ref message } if message.contains("secrets")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn ctes_and_row_counts_of_approved_tables_work() {
        let (_dir, backend) = store();
        for sql in [
            "SELECT count(*) FROM customers",
            "WITH c AS (SELECT id FROM customers) SELECT count(*) FROM c",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n LIMIT 2) SELECT count(*) FROM n",
        ] {
            let out = backend.query(sql.into(), vec![], allow(&["customers"]), limits()).await.unwrap();
            assert_eq!(out.rows, vec![vec![serde_json::Value::from(2)]], "{sql}");
        }
    }

    #[test]
    fn read_rule() {
        let approved = allow(&["customers"]);
        let real = allow(&["customers", "secrets"]);
        assert!(read_allowed("Customers", Some("main"), &approved, &real));
        assert!(!read_allowed("secrets", Some("main"), &approved, &real));
        assert!(!read_allowed("customers", Some("temp"), &approved, &real));
        assert!(read_allowed("customers", None, &approved, &real));
        assert!(
            !read_allowed("secrets", None, &approved, &real),
            "no row counts of unapproved tables"
        );
        assert!(!read_allowed("sqlite_schema", None, &approved, &real));
        assert!(read_allowed("my_cte", None, &approved, &real));
    }

    #[tokio::test]
    async fn writes_fail_even_when_authorized_because_the_file_is_read_only() {
        let (_dir, backend) = store();
        let conn = backend.inner.open_connection().unwrap();
        let err = conn.execute("DELETE FROM customers", []).unwrap_err();
        assert_eq!(err.sqlite_error_code(), Some(ErrorCode::ReadOnly));
    }

    #[tokio::test]
    async fn double_quoted_unknown_identifiers_are_errors_not_strings() {
        let (_dir, backend) = store();
        let err = backend
            .query(
                "SELECT \"no_such_column\" FROM customers".into(),
                vec![],
                allow(&["customers"]),
                limits(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackendError::Query { ref message } if message.contains("no_such_column")),
            "{err}"
        );
    }

    #[tokio::test]
    async fn long_queries_time_out() {
        let (_dir, backend) = store();
        let sql = "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n";
        let err = backend
            .query(
                sql.into(),
                vec![],
                allow(&[]),
                QueryLimits {
                    timeout: Duration::from_millis(50),
                    ..limits()
                },
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, BackendError::Timeout { timeout_ms: 50 }),
            "{err}"
        );
        // The connection is usable afterwards, its hooks reset.
        let out = backend
            .query("SELECT 1".into(), vec![], allow(&[]), limits())
            .await
            .unwrap();
        assert_eq!(out.rows, vec![vec![serde_json::Value::from(1)]]);
    }

    #[tokio::test]
    async fn a_missing_store_is_unavailable_and_says_how_to_create_one() {
        let dir = tempfile::tempdir().unwrap();
        let err = SqliteBackend::open(
            &dir.path().join("nope.sqlite3"),
            1,
            Duration::ZERO,
            test_key(),
        )
        .err()
        .unwrap();
        assert!(
            matches!(err, BackendError::Unavailable { ref message, .. } if message.contains("privet seed")),
            "{err}"
        );
    }
}
