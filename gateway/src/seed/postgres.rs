//! The demo store in PostgreSQL: schema and COPY loader.
//!
//! [`seed_postgres`] loads exactly the rows [`super::seed_sqlite`] writes for
//! the same `(scale, seed)` into one schema, with native column types. Every
//! statement runs in one transaction, so a failure or a crash leaves the
//! schema as it was. Rows are generated on a blocking thread and streamed to
//! the server with `COPY ... FROM STDIN` while the next chunk is built.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::SinkExt;
use indicatif::ProgressBar;
use tokio::sync::mpsc;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls, Transaction};

use crate::write::quote as quote_ident;

use super::{
    generate, progress_bar, DemoDataset, DemoTable, SeedError, SeedOptions, SeedSummary, Value,
};

// As in the SQLite seeder, one literal serves both as the public schema and,
// split in three, as "tables first; indexes and foreign keys after the bulk
// load". Checking foreign keys row by row during COPY would triple the load
// time; adding them afterwards validates each with one join.
macro_rules! pg_tables_sql {
    () => {
        "CREATE TABLE customers (
    id BIGINT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL,
    phone TEXT,
    birth_date DATE,
    gender TEXT,
    zip TEXT,
    city TEXT,
    country TEXT,
    region TEXT,
    created_at TIMESTAMPTZ,
    marketing_opt_in BIGINT NOT NULL,
    phone_bidx TEXT
);
CREATE TABLE products (
    id BIGINT PRIMARY KEY,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    brand TEXT NOT NULL,
    price_cents BIGINT NOT NULL
);
CREATE TABLE orders (
    id BIGINT PRIMARY KEY,
    customer_id BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    status TEXT NOT NULL,
    total_cents BIGINT NOT NULL,
    shipping_address TEXT NOT NULL,
    shipping_zip TEXT NOT NULL
);
CREATE TABLE order_items (
    order_id BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    quantity BIGINT NOT NULL,
    unit_price_cents BIGINT NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE TABLE payments (
    id BIGINT PRIMARY KEY,
    order_id BIGINT NOT NULL,
    card_number TEXT NOT NULL,
    card_last4 TEXT NOT NULL,
    amount_cents BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE events (
    id BIGINT PRIMARY KEY,
    customer_id BIGINT,
    product_id BIGINT,
    kind TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    session_id TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    user_agent TEXT NOT NULL
);
CREATE TABLE support_tickets (
    id BIGINT PRIMARY KEY,
    customer_id BIGINT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE reviews (
    id BIGINT PRIMARY KEY,
    customer_id BIGINT NOT NULL,
    product_id BIGINT NOT NULL,
    rating BIGINT NOT NULL,
    body TEXT NOT NULL
);
"
    };
}

macro_rules! pg_indexes_sql {
    () => {
        "CREATE INDEX idx_customers_phone_bidx ON customers(phone_bidx);
CREATE INDEX idx_orders_customer_id ON orders(customer_id);
CREATE INDEX idx_order_items_product_id ON order_items(product_id);
CREATE INDEX idx_payments_order_id ON payments(order_id);
CREATE INDEX idx_events_customer_id ON events(customer_id);
CREATE INDEX idx_events_product_id ON events(product_id);
CREATE INDEX idx_support_tickets_customer_id ON support_tickets(customer_id);
CREATE INDEX idx_reviews_customer_id ON reviews(customer_id);
CREATE INDEX idx_reviews_product_id ON reviews(product_id);
"
    };
}

macro_rules! pg_foreign_keys_sql {
    () => {
        "ALTER TABLE orders ADD FOREIGN KEY (customer_id) REFERENCES customers(id);
ALTER TABLE order_items ADD FOREIGN KEY (order_id) REFERENCES orders(id);
ALTER TABLE order_items ADD FOREIGN KEY (product_id) REFERENCES products(id);
ALTER TABLE payments ADD FOREIGN KEY (order_id) REFERENCES orders(id);
ALTER TABLE events ADD FOREIGN KEY (customer_id) REFERENCES customers(id);
ALTER TABLE events ADD FOREIGN KEY (product_id) REFERENCES products(id);
ALTER TABLE support_tickets ADD FOREIGN KEY (customer_id) REFERENCES customers(id);
ALTER TABLE reviews ADD FOREIGN KEY (customer_id) REFERENCES customers(id);
ALTER TABLE reviews ADD FOREIGN KEY (product_id) REFERENCES products(id);
"
    };
}

/// The DDL of the demo schema in PostgreSQL: [`super::DEMO_SCHEMA_SQL`] with
/// native types (`BIGINT`, `DATE`, `TIMESTAMPTZ`; `marketing_opt_in` stays an
/// integer because policies compare it with `= 1`): tables, the indexes on
/// the foreign-key columns, then the foreign keys (the same constraints as
/// the inline `REFERENCES` there). Names are unqualified: run it with the
/// target schema first on the `search_path`.
pub const DEMO_SCHEMA_POSTGRES_SQL: &str =
    concat!(pg_tables_sql!(), pg_indexes_sql!(), pg_foreign_keys_sql!());

const TABLES_SQL: &str = pg_tables_sql!();
const INDEXES_SQL: &str = pg_indexes_sql!();
const FOREIGN_KEYS_SQL: &str = pg_foreign_keys_sql!();

/// COPY data is sent in chunks of about this size.
const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks generated ahead of the server: bounds memory at ~0.5 MiB.
const CHUNKS_AHEAD: usize = 8;
/// PostgreSQL silently truncates longer identifiers (NAMEDATALEN - 1).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// Creates the demo tables with synthetic data in `schema` of the PostgreSQL
/// database `config` points to, creating the schema if needed.
///
/// Loads the same rows as [`super::seed_sqlite`] for the same options. All
/// of it (dropping old tables when `replace`, creating, loading, indexing)
/// is one transaction, so a failure leaves the schema as it was; the tables
/// are analyzed after the commit. If any demo table already exists in
/// `schema`: [`SeedError::AlreadyExistsIn`] unless `replace` is true.
///
/// `display` names the server in messages and logs; it must not contain
/// credentials (the password in `config` is never printed).
pub async fn seed_postgres(
    config: &tokio_postgres::Config,
    display: &str,
    schema: &str,
    opts: &SeedOptions,
    replace: bool,
    keys: &mut crate::keyring::OpenKeystore,
) -> Result<SeedSummary, SeedError> {
    generate::validate_scale(opts.scale)?;
    // `display` is a tracing macro helper: use another name inside.
    let backend = display;
    validate_schema_name(schema)?;
    let started = Instant::now();

    let (mut client, connection) = config
        .connect(NoTls)
        .await
        .map_err(pg_error(backend, "connecting"))?;
    tokio::spawn(async move {
        // Any error also reaches the pending client call, which reports it.
        if let Err(e) = connection.await {
            tracing::debug!(error = %describe(&e), "PostgreSQL connection ended with an error");
        }
    });

    let summary = seed_with(&mut client, backend, schema, opts, replace, keys).await?;
    analyze(&client, backend, schema).await;

    tracing::info!(
        backend,
        schema,
        scale = opts.scale,
        seed = opts.seed,
        rows = summary.total_rows(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "seeded demo store"
    );
    Ok(summary)
}

/// Everything up to and including the commit. Dropping the transaction on
/// an error path rolls it back.
async fn seed_with(
    client: &mut Client,
    backend: &str,
    schema: &str,
    opts: &SeedOptions,
    replace: bool,
    keys: &mut crate::keyring::OpenKeystore,
) -> Result<SeedSummary, SeedError> {
    let quoted = quote_ident(schema);
    let tx = client
        .transaction()
        .await
        .map_err(pg_error(backend, "starting a transaction"))?;
    tx.batch_execute("SET LOCAL TimeZone = 'UTC'")
        .await
        .map_err(pg_error(backend, "setting the time zone"))?;

    // Fail fast, before spending seconds on generation.
    let (schema_exists, existing) = existing_tables(&tx, schema)
        .await
        .map_err(pg_error(backend, "looking for existing demo tables"))?;
    if !existing.is_empty() && !replace {
        return Err(already_exists(backend, schema, existing));
    }
    if !schema_exists {
        // Only when missing: CREATE SCHEMA needs the CREATE privilege on
        // the database even when the schema exists.
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {quoted}"))
            .await
            .map_err(pg_error(backend, "creating the schema"))?;
    }
    if !existing.is_empty() {
        // No CASCADE: objects of others that depend on the demo tables (views,
        // foreign keys) make this fail rather than vanish silently.
        let tables: Vec<String> = existing
            .iter()
            .map(|t| format!("{quoted}.{}", quote_ident(t)))
            .collect();
        tx.batch_execute(&format!("DROP TABLE {}", tables.join(", ")))
            .await
            .map_err(pg_error(backend, "dropping the old demo tables"))?;
    }
    // pg_temp last, so no temporary table can stand in for a demo table.
    tx.batch_execute(&format!(
        "SET LOCAL search_path = {quoted}, pg_catalog, pg_temp"
    ))
    .await
    .map_err(pg_error(backend, "setting the search path"))?;
    tx.batch_execute(TABLES_SQL).await.map_err(|e| {
        if e.code() == Some(&SqlState::DUPLICATE_TABLE) {
            // Someone else created them since we looked.
            let tables = DemoTable::ALL.iter().map(|t| t.name().to_owned()).collect();
            already_exists(backend, schema, tables)
        } else {
            pg_error(backend, "creating the tables")(e)
        }
    })?;

    let (scale, seed) = (opts.scale, opts.seed);
    let dataset = tokio::task::spawn_blocking(move || DemoDataset::new(scale, seed))
        .await
        .map_err(join_error(backend))??;
    let sealer = Arc::new(super::StoreSealer::prepare(keys, &dataset)?);
    let dataset = Arc::new(dataset);

    let bar = progress_bar(opts.progress, dataset.total_rows());
    let loaded = load(&tx, backend, &quoted, dataset, sealer, &bar).await;
    bar.finish_and_clear();
    let summary = loaded?;

    tx.commit().await.map_err(pg_error(backend, "committing"))?;
    Ok(summary)
}

/// Streams every table into the server with COPY, then builds the indexes
/// and adds the foreign keys.
async fn load(
    tx: &Transaction<'_>,
    backend: &str,
    quoted_schema: &str,
    dataset: Arc<DemoDataset>,
    sealer: Arc<super::StoreSealer>,
    bar: &ProgressBar,
) -> Result<SeedSummary, SeedError> {
    let (sender, receiver) = mpsc::channel(CHUNKS_AHEAD);
    let producer = tokio::task::spawn_blocking(move || produce(&dataset, &sealer, &sender));
    // `copy_all` owns the receiver: when it fails, the producer's next send
    // fails and the producer stops.
    let copied = copy_all(tx, backend, quoted_schema, receiver, bar).await;
    producer.await.map_err(join_error(backend))?;
    let tables = copied?;

    // Building indexes and validating foreign keys once over the loaded data
    // is much faster than doing it row by row.
    bar.set_message("indexes");
    tx.batch_execute(INDEXES_SQL)
        .await
        .map_err(pg_error(backend, "creating the indexes"))?;
    bar.set_message("foreign keys");
    tx.batch_execute(FOREIGN_KEYS_SQL)
        .await
        .map_err(pg_error(backend, "adding the foreign keys"))?;
    Ok(SeedSummary { tables })
}

/// What the generator thread sends, table by table in [`DemoTable::ALL`]
/// order: data chunks, then the end of the table.
enum Chunk {
    Rows {
        data: Bytes,
        rows: u64,
    },
    End {
        rows: u64,
    },
    /// Sealing a row failed: the load stops with this error.
    Failed(SeedError),
}

/// Renders every table as COPY text and sends it in ~[`CHUNK_BYTES`]
/// chunks. Returns early when the receiver is gone (the load failed).
fn produce(dataset: &DemoDataset, sealer: &super::StoreSealer, sender: &mpsc::Sender<Chunk>) {
    enum Stop {
        Closed,
        Seal(SeedError),
    }
    impl From<SeedError> for Stop {
        fn from(e: SeedError) -> Self {
            Stop::Seal(e)
        }
    }
    let send = |chunk| sender.blocking_send(chunk).map_err(|_| Stop::Closed);
    let new_buffer = || Vec::with_capacity(CHUNK_BYTES + 4096);
    for table in DemoTable::ALL {
        let mut buf = new_buffer();
        let mut pending = 0;
        let sent: Result<u64, Stop> = sealer.for_each_row(dataset, table, |row| {
            encode_row(row, &mut buf);
            pending += 1;
            if buf.len() >= CHUNK_BYTES {
                let data = Bytes::from(std::mem::replace(&mut buf, new_buffer()));
                send(Chunk::Rows {
                    data,
                    rows: std::mem::take(&mut pending),
                })?;
            }
            Ok(())
        });
        let rows = match sent {
            Ok(rows) => rows,
            Err(Stop::Seal(e)) => {
                let _ = send(Chunk::Failed(e));
                return;
            }
            Err(Stop::Closed) => return,
        };
        if !buf.is_empty() {
            let chunk = Chunk::Rows {
                data: Bytes::from(buf),
                rows: pending,
            };
            if send(chunk).is_err() {
                return;
            }
        }
        if send(Chunk::End { rows }).is_err() {
            return;
        }
    }
}

/// Runs one COPY per table, feeding it the producer's chunks.
async fn copy_all(
    tx: &Transaction<'_>,
    backend: &str,
    quoted_schema: &str,
    mut receiver: mpsc::Receiver<Chunk>,
    bar: &ProgressBar,
) -> Result<Vec<(String, u64)>, SeedError> {
    let mut tables = Vec::with_capacity(DemoTable::ALL.len());
    for table in DemoTable::ALL {
        bar.set_message(table.name());
        let step = format!("copying {}", table.name());
        let sink = tx
            .copy_in::<_, Bytes>(&copy_sql(quoted_schema, table))
            .await
            .map_err(pg_error(backend, &step))?;
        let mut sink = std::pin::pin!(sink);
        let rows = loop {
            match receiver.recv().await {
                Some(Chunk::Rows { data, rows }) => {
                    sink.send(data).await.map_err(pg_error(backend, &step))?;
                    bar.inc(rows);
                }
                Some(Chunk::End { rows }) => break rows,
                Some(Chunk::Failed(e)) => return Err(e),
                // The producer panicked; the caller reports it.
                None => {
                    return Err(SeedError::Postgres {
                        backend: backend.to_owned(),
                        message: format!("{step}: the row generator stopped"),
                    })
                }
            }
        };
        let copied = sink
            .as_mut()
            .finish()
            .await
            .map_err(pg_error(backend, &step))?;
        if copied != rows {
            return Err(SeedError::Postgres {
                backend: backend.to_owned(),
                message: format!("{step}: the server stored {copied} rows instead of {rows}"),
            });
        }
        tracing::debug!(table = table.name(), rows, "table loaded");
        tables.push((table.name().to_owned(), rows));
    }
    Ok(tables)
}

fn copy_sql(quoted_schema: &str, table: DemoTable) -> String {
    format!(
        "COPY {quoted_schema}.{} ({}) FROM STDIN WITH (FORMAT text)",
        table.name(),
        table.columns().join(", ")
    )
}

/// Appends `row` as one line of COPY text format: tab-separated, `\N` for
/// NULL, backslash escapes for the characters that are special in it.
fn encode_row(row: &[Value], buf: &mut Vec<u8>) {
    for (i, value) in row.iter().enumerate() {
        if i > 0 {
            buf.push(b'\t');
        }
        match value {
            Value::Null => buf.extend_from_slice(b"\\N"),
            // Writing to a Vec cannot fail.
            Value::Integer(v) => {
                let _ = write!(buf, "{v}");
            }
            Value::Text(s) => encode_text(s, buf),
        }
    }
    buf.push(b'\n');
}

/// Escapes `s` for COPY text format. Byte-wise is safe: the bytes of a
/// multi-byte UTF-8 sequence are never ASCII.
fn encode_text(s: &str, buf: &mut Vec<u8>) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(escaped);
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

/// Whether `schema` exists, and which demo table names are taken in it
/// (by a relation of any kind), in [`DemoTable::ALL`] order.
async fn existing_tables(
    tx: &Transaction<'_>,
    schema: &str,
) -> Result<(bool, Vec<String>), tokio_postgres::Error> {
    let names: Vec<&str> = DemoTable::ALL.iter().map(|t| t.name()).collect();
    let rows = tx
        .query(
            "SELECT c.relname::text
             FROM pg_catalog.pg_class c
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1::text AND c.relname = ANY($2::text[])",
            &[&schema, &names],
        )
        .await?;
    let taken: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    let existing = names
        .iter()
        .filter(|n| taken.iter().any(|t| t == *n))
        .map(|n| (*n).to_owned())
        .collect();
    let schema_exists = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1::text)",
            &[&schema],
        )
        .await?
        .get(0);
    Ok((schema_exists, existing))
}

/// Refreshes the planner statistics of the new tables. The data are already
/// committed, so a failure here is only worth a warning.
async fn analyze(client: &Client, backend: &str, schema: &str) {
    let quoted = quote_ident(schema);
    let sql: String = DemoTable::ALL
        .iter()
        .map(|t| format!("ANALYZE {quoted}.{};", t.name()))
        .collect();
    if let Err(e) = client.batch_execute(&sql).await {
        tracing::warn!(backend, schema, error = %describe(&e), "could not analyze the demo tables");
    }
}

fn validate_schema_name(schema: &str) -> Result<(), SeedError> {
    let reason = if schema.is_empty() {
        "it is empty"
    } else if schema.contains('\0') {
        "it contains a NUL character"
    } else if schema.len() > MAX_IDENTIFIER_BYTES {
        "it is longer than 63 bytes, and PostgreSQL would truncate it"
    } else {
        return Ok(());
    };
    Err(SeedError::BadSchemaName {
        schema: schema.to_owned(),
        reason,
    })
}

fn already_exists(backend: &str, schema: &str, tables: Vec<String>) -> SeedError {
    SeedError::AlreadyExistsIn {
        backend: backend.to_owned(),
        schema: schema.to_owned(),
        tables,
    }
}

fn pg_error<'a>(
    backend: &'a str,
    step: &'a str,
) -> impl FnOnce(tokio_postgres::Error) -> SeedError + 'a {
    move |e| SeedError::Postgres {
        backend: backend.to_owned(),
        message: format!("{step}: {}", describe(&e)),
    }
}

/// A one-line description of `e` with its causes: tokio-postgres' own
/// `Display` shows only the kind of error ("db error").
fn describe(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.to_string().replace('\n', "; ");
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A panic in the generator is a bug: re-raise it. Cancellation only happens
/// when the runtime shuts down.
fn join_error(backend: &str) -> impl FnOnce(tokio::task::JoinError) -> SeedError + '_ {
    move |e| {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        SeedError::Postgres {
            backend: backend.to_owned(),
            message: "the row generator was cancelled".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::ValueRef;

    /// `(table, columns)` of every `CREATE TABLE` in `ddl`, in order.
    fn parse_tables(ddl: &str) -> Vec<(String, Vec<String>)> {
        let mut tables: Vec<(String, Vec<String>)> = Vec::new();
        for line in ddl.lines() {
            if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                let name = rest.trim_end_matches(" (");
                tables.push((name.to_owned(), Vec::new()));
            } else if let Some(column) = line.strip_prefix("    ") {
                let name = column.split_whitespace().next().unwrap();
                if name != "PRIMARY" {
                    tables.last_mut().unwrap().1.push(name.to_owned());
                }
            }
        }
        tables
    }

    #[test]
    fn schema_matches_the_generator() {
        let tables = parse_tables(DEMO_SCHEMA_POSTGRES_SQL);
        let expected: Vec<(String, Vec<String>)> = DemoTable::ALL
            .iter()
            .map(|t| {
                let columns = t.columns().iter().map(|c| (*c).to_owned()).collect();
                (t.name().to_owned(), columns)
            })
            .collect();
        assert_eq!(tables, expected);
    }

    /// The PostgreSQL DDL is the SQLite DDL line for line, with only the
    /// column types changed as documented and each inline `REFERENCES`
    /// moved to an `ALTER TABLE ... ADD FOREIGN KEY` of its own.
    #[test]
    fn schema_matches_the_sqlite_schema() {
        assert_eq!(INDEXES_SQL, super::super::INDEXES_SQL);
        let sqlite: Vec<&str> = super::super::TABLES_SQL.lines().collect();
        let pg: Vec<&str> = TABLES_SQL.lines().collect();
        assert_eq!(pg.len(), sqlite.len());
        let mut table = "";
        let mut foreign_keys = Vec::new();
        for (lite, pg) in sqlite.iter().zip(&pg) {
            if let Some(rest) = lite.strip_prefix("CREATE TABLE ") {
                table = rest.trim_end_matches(" (");
            }
            let is_column = lite.starts_with("    ") && !lite.starts_with("    PRIMARY KEY");
            if !is_column {
                assert_eq!(lite, pg);
                continue;
            }
            let comma = if lite.ends_with(',') { "," } else { "" };
            let lite = lite.trim_end_matches(',');
            let lite = match lite.split_once(" REFERENCES ") {
                Some((definition, target)) => {
                    let column = definition.split_whitespace().next().unwrap();
                    foreign_keys.push(format!(
                        "ALTER TABLE {table} ADD FOREIGN KEY ({column}) REFERENCES {target};"
                    ));
                    definition
                }
                None => lite,
            };
            let lite_words: Vec<&str> = lite.split_whitespace().collect();
            let pg_words: Vec<&str> = pg.trim_end_matches(',').split_whitespace().collect();
            let column = lite_words[0];
            let expected = match (lite_words[1], column) {
                ("INTEGER", _) => "BIGINT",
                ("TEXT", "birth_date") => "DATE",
                ("TEXT", "created_at" | "ts") => "TIMESTAMPTZ",
                ("TEXT", _) => "TEXT",
                other => panic!("unexpected SQLite type {other:?}"),
            };
            let mut expected_words = lite_words.clone();
            expected_words[1] = expected;
            assert_eq!(pg_words, expected_words, "{table}.{column}");
            assert_eq!(pg.ends_with(','), !comma.is_empty(), "{pg}");
        }
        let pg_foreign_keys: Vec<&str> = FOREIGN_KEYS_SQL.lines().collect();
        assert_eq!(pg_foreign_keys, foreign_keys);
        assert!(!foreign_keys.is_empty());
    }

    #[test]
    fn copy_text_escaping() {
        let mut buf = Vec::new();
        encode_row(
            &[
                Value::Integer(-42),
                Value::Null,
                Value::Text("a\\b\tc\nd\re".into()),
                Value::Text(String::new()),
                Value::Text("\\N".into()),
                Value::Text("Zoë \\. Łódź".into()),
            ],
            &mut buf,
        );
        encode_row(
            &[Value::Integer(i64::MAX), Value::Text("x".into())],
            &mut buf,
        );
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "-42\t\\N\ta\\\\b\\tc\\nd\\re\t\t\\\\N\tZoë \\\\. Łódź\n\
             9223372036854775807\tx\n"
        );
    }

    #[test]
    fn identifiers_are_quoted_and_checked() {
        assert_eq!(quote_ident("demo"), "\"demo\"");
        assert_eq!(
            quote_ident("My \"odd\" schema"),
            "\"My \"\"odd\"\" schema\""
        );
        assert!(validate_schema_name("demo").is_ok());
        assert!(validate_schema_name(&"x".repeat(63)).is_ok());
        for bad in ["", "a\0b", &"x".repeat(64)] {
            match validate_schema_name(bad) {
                Err(SeedError::BadSchemaName { schema, .. }) => assert_eq!(schema, bad),
                other => panic!("{bad:?}: expected BadSchemaName, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn errors_name_the_server_not_the_password() {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(1)
            .user("privet")
            .password("pw-sentinel-4711")
            .dbname("demo")
            .connect_timeout(std::time::Duration::from_secs(5));
        let err = seed_postgres(
            &config,
            "127.0.0.1:1/demo",
            "demo",
            &opts(0.01, 1),
            false,
            &mut crate::testing::test_keys().keys,
        )
        .await
        .unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(matches!(err, SeedError::Postgres { .. }), "{text}");
        assert!(
            text.contains("127.0.0.1:1/demo") && text.contains("connecting"),
            "{text}"
        );
        assert!(!text.contains("pw-sentinel-4711"), "{text}");
    }

    /// Drops the test schema when the test ends, passed or failed.
    struct SchemaGuard {
        url: String,
        schema: String,
    }

    impl Drop for SchemaGuard {
        fn drop(&mut self) {
            crate::testing::drop_schema(&self.url, &self.schema);
        }
    }

    fn opts(scale: f64, seed: u64) -> SeedOptions {
        SeedOptions {
            scale,
            seed,
            progress: false,
        }
    }

    fn order_by(table: DemoTable) -> &'static str {
        match table {
            DemoTable::OrderItems => "t.order_id, t.product_id",
            _ => "t.id",
        }
    }

    type Rows = Vec<Vec<Option<String>>>;

    /// Every row of `table` as text, the timestamps as RFC 3339 in UTC.
    async fn pg_rows(client: &Client, schema: &str, table: DemoTable) -> Rows {
        let columns: Vec<String> = table
            .columns()
            .iter()
            .map(|c| match *c {
                "created_at" | "ts" => {
                    format!("to_char({c} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')")
                }
                "birth_date" => format!("to_char({c}, 'YYYY-MM-DD')"),
                _ => format!("{c}::text"),
            })
            .collect();
        let sql = format!(
            // Qualified ORDER BY: a bare `id` would sort by the text output.
            "SELECT {} FROM {}.{} t ORDER BY {}",
            columns.join(", "),
            quote_ident(schema),
            table.name(),
            order_by(table)
        );
        let rows = client.query(&sql, &[]).await.unwrap();
        rows.iter()
            .map(|r| (0..r.len()).map(|i| r.get(i)).collect())
            .collect()
    }

    fn sqlite_rows(conn: &rusqlite::Connection, table: DemoTable) -> Rows {
        let sql = format!(
            "SELECT {} FROM {} t ORDER BY {}",
            table.columns().join(", "),
            table.name(),
            order_by(table)
        );
        let mut stmt = conn.prepare(&sql).unwrap();
        let n = stmt.column_count();
        let mut rows = stmt.query([]).unwrap();
        let mut out = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            let cells = (0..n)
                .map(|i| match row.get_ref(i).unwrap() {
                    ValueRef::Null => None,
                    ValueRef::Integer(v) => Some(v.to_string()),
                    ValueRef::Text(t) => Some(String::from_utf8(t.to_vec()).unwrap()),
                    other => panic!("unexpected value {other:?}"),
                })
                .collect();
            out.push(cells);
        }
        out
    }

    #[tokio::test]
    async fn live_seed_matches_sqlite() {
        let Some(url) = crate::testing::postgres_url("seed::postgres::live") else {
            return;
        };
        // Upper case and a space: the schema name must be quoted everywhere.
        let schema = format!("{} Demo", crate::testing::unique_schema_name("seed"));
        let _guard = SchemaGuard {
            url: url.clone(),
            schema: schema.clone(),
        };
        let config: tokio_postgres::Config = url.parse().unwrap();
        let display = "test-server";

        // Both stores under one keystore: same keys, so equal plaintexts
        // and blind indexes (ciphertexts differ by their random nonces).
        let keys_dir = tempfile::tempdir().unwrap();
        let summary = seed_postgres(
            &config,
            display,
            &schema,
            &opts(0.02, 7),
            false,
            &mut super::super::tests::keys_in(keys_dir.path()),
        )
        .await
        .unwrap();
        let path = keys_dir.path().join("store.db");
        let lite_summary = super::super::seed_sqlite(
            &path,
            &opts(0.02, 7),
            false,
            &mut super::super::tests::keys_in(keys_dir.path()),
        )
        .unwrap();
        let cipher = super::super::tests::cipher_in(keys_dir.path());
        assert_eq!(summary, lite_summary);

        let (client, connection) = config.connect(NoTls).await.unwrap();
        tokio::spawn(connection);
        let lite = rusqlite::Connection::open(&path).unwrap();
        for table in DemoTable::ALL {
            let pg = pg_rows(&client, &schema, table).await;
            let sq = sqlite_rows(&lite, table);
            assert_eq!(pg.len(), sq.len(), "{}", table.name());
            assert_eq!(Some(pg.len() as u64), summary.rows(table.name()));
            assert!(!pg.is_empty(), "{}", table.name());
            for (i, (p, s)) in pg.iter().zip(&sq).enumerate() {
                for (c, column) in table.columns().iter().enumerate() {
                    let plain = |row: &[Option<String>]| match (&row[c], &row[0]) {
                        (Some(v), Some(id)) => Some(super::super::tests::unseal(
                            &cipher,
                            table.name(),
                            column,
                            id,
                            v,
                        )),
                        (v, _) => v.clone(),
                    };
                    assert_eq!(plain(p), plain(s), "{}.{column}, row {i}", table.name());
                }
            }
        }

        // Native types, and the same secondary indexes.
        let row = client
            .query_one(
                "SELECT
                   (SELECT data_type FROM information_schema.columns
                    WHERE table_schema = $1 AND table_name = 'customers'
                      AND column_name = 'marketing_opt_in'),
                   (SELECT data_type FROM information_schema.columns
                    WHERE table_schema = $1 AND table_name = 'events' AND column_name = 'ts'),
                   (SELECT count(*) FROM pg_indexes
                    WHERE schemaname = $1 AND indexname LIKE 'idx\\_%'),
                   (SELECT count(*) FROM information_schema.table_constraints
                    WHERE table_schema = $1 AND constraint_type = 'FOREIGN KEY')",
                &[&schema],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "bigint");
        assert_eq!(row.get::<_, String>(1), "timestamp with time zone");
        assert_eq!(row.get::<_, i64>(2), 9);
        assert_eq!(row.get::<_, i64>(3), 9);

        // Again without replace: refused, data untouched.
        let count_customers = format!("SELECT count(*) FROM {}.customers", quote_ident(&schema));
        match seed_postgres(
            &config,
            display,
            &schema,
            &opts(0.01, 8),
            false,
            &mut crate::testing::test_keys().keys,
        )
        .await
        {
            Err(e @ SeedError::AlreadyExistsIn { .. }) => {
                assert!(e.to_string().contains("--force"), "{e}");
                let SeedError::AlreadyExistsIn {
                    backend,
                    schema: s,
                    tables,
                } = e
                else {
                    unreachable!()
                };
                assert_eq!((backend.as_str(), s.as_str()), (display, schema.as_str()));
                let all: Vec<&str> = DemoTable::ALL.iter().map(|t| t.name()).collect();
                assert_eq!(tables, all);
            }
            other => panic!("expected AlreadyExistsIn, got {other:?}"),
        }
        assert_eq!(
            client
                .query_one(&count_customers, &[])
                .await
                .unwrap()
                .get::<_, i64>(0),
            100
        );

        // With replace: the new data set replaces the old one.
        let replaced = seed_postgres(
            &config,
            display,
            &schema,
            &opts(0.01, 8),
            true,
            &mut crate::testing::test_keys().keys,
        )
        .await
        .unwrap();
        assert_eq!(replaced.rows("customers"), Some(50));
        assert_eq!(
            client
                .query_one(&count_customers, &[])
                .await
                .unwrap()
                .get::<_, i64>(0),
            50
        );

        // A failure rolls everything back: a view of someone else's on the
        // demo tables makes the DROP fail, and the old data stay.
        client
            .batch_execute(&format!(
                "CREATE VIEW {q}.opted_in AS SELECT id FROM {q}.customers WHERE marketing_opt_in = 1",
                q = quote_ident(&schema)
            ))
            .await
            .unwrap();
        match seed_postgres(
            &config,
            display,
            &schema,
            &opts(0.02, 9),
            true,
            &mut crate::testing::test_keys().keys,
        )
        .await
        {
            Err(SeedError::Postgres { backend, message }) => {
                assert_eq!(backend, display);
                assert!(
                    message.starts_with("dropping the old demo tables: "),
                    "{message}"
                );
            }
            other => panic!("expected a PostgreSQL error, got {other:?}"),
        }
        assert_eq!(
            client
                .query_one(&count_customers, &[])
                .await
                .unwrap()
                .get::<_, i64>(0),
            50
        );

        // COPY escaping survives the trip through a real server.
        let scratch = format!("{}.escapes", quote_ident(&schema));
        client
            .batch_execute(&format!("CREATE TABLE {scratch} (id bigint, v text)"))
            .await
            .unwrap();
        let values = [
            None,
            Some(""),
            Some("\\N"),
            Some("a\\b\tc\nd\re\\."),
            Some("Zoë Łódź 東京"),
        ];
        let mut buf = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let v = v.map_or(Value::Null, Value::from);
            encode_row(&[Value::Integer(i as i64), v], &mut buf);
        }
        let sink = client
            .copy_in::<_, Bytes>(&format!("COPY {scratch} FROM STDIN"))
            .await
            .unwrap();
        let mut sink = std::pin::pin!(sink);
        sink.send(Bytes::from(buf)).await.unwrap();
        assert_eq!(sink.as_mut().finish().await.unwrap(), values.len() as u64);
        let back: Vec<Option<String>> = client
            .query(&format!("SELECT v FROM {scratch} ORDER BY id"), &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        let expected: Vec<Option<String>> = values.iter().map(|v| v.map(str::to_owned)).collect();
        assert_eq!(back, expected);
    }
}
