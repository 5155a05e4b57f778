//! The demo commerce store: schema, deterministic synthetic data, and a
//! crash-safe SQLite writer.
//!
//! Generation ([`DemoDataset`]) is separate from storage: it hands out each
//! table's rows as slices of [`Value`]s, so other backends can load exactly
//! the same rows. [`seed_sqlite`] writes them into a temporary file beside the
//! target in one transaction and renames it into place only once complete.
//!
//! The data depend only on `(scale, seed)`: our own PRNG, integer arithmetic
//! and a fixed time window (2022-01-01 to 2025-12-31 UTC), never the clock.

mod catalog;
mod generate;
mod geo;
mod names;
mod postgres;
mod rng;
mod texts;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{Connection, ToSql};

pub use generate::{DemoDataset, DemoTable, Value};
pub use postgres::{seed_postgres, DEMO_SCHEMA_POSTGRES_SQL};

/// Options for generating the demo commerce store.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedOptions {
    /// 1.0 ≈ 5,000 customers, 500 products, 50,000 orders, 250,000 events,
    /// 2,000 support tickets and 10,000 reviews; order items and payments
    /// follow from the orders. Fractional scales are allowed: each directly
    /// sized table gets `max(1, round(base * scale))` rows.
    pub scale: f64,
    /// PRNG seed: the same `(scale, seed)` gives byte-for-byte the same rows
    /// on every machine and with every version of the dependencies.
    pub seed: u64,
    /// Show a progress bar on stderr (hidden when stderr is not a terminal).
    pub progress: bool,
}

/// What [`seed_sqlite`] created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedSummary {
    /// `(table name, row count)` in creation order.
    pub tables: Vec<(String, u64)>,
}

impl SeedSummary {
    /// Rows over all tables.
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }

    /// Rows of one table, if it exists.
    pub fn rows(&self, table: &str) -> Option<u64> {
        self.tables
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, n)| *n)
    }
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    /// The target exists and replacing it was not requested.
    #[error("the store {path} already exists; pass --force to replace it")]
    AlreadyExists { path: PathBuf },
    /// The scale is not a finite number in `(0, 100]`.
    #[error("scale must be a finite number greater than 0 and at most 100, got {0}")]
    BadScale(f64),
    /// SQLite failed while building the store (the target is untouched).
    #[error("SQLite error while seeding {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// Demo tables already exist in the PostgreSQL schema and replacing them
    /// was not requested. `backend` names the server without credentials.
    #[error(
        "the demo tables already exist in schema {schema} on {backend} ({}); pass --force to replace them",
        tables.join(", ")
    )]
    AlreadyExistsIn {
        backend: String,
        schema: String,
        tables: Vec<String>,
    },
    /// The PostgreSQL schema name cannot be used as given.
    #[error("invalid PostgreSQL schema name {schema:?}: {reason}")]
    BadSchemaName {
        schema: String,
        reason: &'static str,
    },
    /// PostgreSQL failed while seeding (the transaction was rolled back, so
    /// the schema is untouched). `backend` names the server without
    /// credentials; `message` says which step failed and why.
    #[error("PostgreSQL error while seeding {backend}: {message}")]
    Postgres { backend: String, message: String },
    /// The keystore could not give the demo's keys.
    #[error(transparent)]
    Keys(#[from] crate::keyring::KeyringError),
    /// Encrypting a classified value failed (the key of a column or subject
    /// is missing, or the random number generator failed).
    #[error("encrypting {table}.{column} of row {row}: {source}")]
    Encrypt {
        table: &'static str,
        column: &'static str,
        row: String,
        #[source]
        source: vault::CipherError,
    },
    /// A file-system operation failed on `path`.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

// The DDL lives in macros so that one literal can serve both as the public
// schema and, split in two, as "tables first, indexes after the bulk load".
macro_rules! demo_tables_sql {
    () => {
        "CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    full_name TEXT NOT NULL,
    phone TEXT,
    birth_date TEXT,
    gender TEXT,
    zip TEXT,
    city TEXT,
    country TEXT,
    region TEXT,
    created_at TEXT,
    marketing_opt_in INTEGER NOT NULL,
    phone_bidx TEXT
);
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    sku TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    brand TEXT NOT NULL,
    price_cents INTEGER NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    created_at TEXT NOT NULL,
    status TEXT NOT NULL,
    total_cents INTEGER NOT NULL,
    shipping_address TEXT NOT NULL,
    shipping_zip TEXT NOT NULL
);
CREATE TABLE order_items (
    order_id INTEGER NOT NULL REFERENCES orders(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    unit_price_cents INTEGER NOT NULL,
    PRIMARY KEY (order_id, product_id)
);
CREATE TABLE payments (
    id INTEGER PRIMARY KEY,
    order_id INTEGER NOT NULL REFERENCES orders(id),
    card_number TEXT NOT NULL,
    card_last4 TEXT NOT NULL,
    amount_cents INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER REFERENCES customers(id),
    product_id INTEGER REFERENCES products(id),
    kind TEXT NOT NULL,
    ts TEXT NOT NULL,
    session_id TEXT NOT NULL,
    ip_address TEXT NOT NULL,
    user_agent TEXT NOT NULL
);
CREATE TABLE support_tickets (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    created_at TEXT NOT NULL,
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE reviews (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    rating INTEGER NOT NULL,
    body TEXT NOT NULL
);
"
    };
}

macro_rules! demo_indexes_sql {
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

/// The DDL of the demo schema (SQLite dialect): tables, then the indexes on
/// the foreign-key columns.
pub const DEMO_SCHEMA_SQL: &str = concat!(demo_tables_sql!(), demo_indexes_sql!());

const TABLES_SQL: &str = demo_tables_sql!();
const INDEXES_SQL: &str = demo_indexes_sql!();

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
        }))
    }
}

/// Creates a new SQLite store at `path` with the demo schema and synthetic data.
///
/// Writes to a temporary file beside `path` and renames it into place only
/// when complete, so a crash never leaves a half-seeded store at `path`. If
/// `path` exists: [`SeedError::AlreadyExists`] unless `replace` is true.
/// Missing parent directories are created.
pub fn seed_sqlite(
    path: &Path,
    opts: &SeedOptions,
    replace: bool,
    keys: &mut crate::keyring::OpenKeystore,
) -> Result<SeedSummary, SeedError> {
    generate::validate_scale(opts.scale)?;
    // Fail fast, before spending seconds on generation.
    if !replace && exists(path)? {
        return Err(SeedError::AlreadyExists {
            path: path.to_path_buf(),
        });
    }
    let started = Instant::now();
    let dataset = DemoDataset::new(opts.scale, opts.seed)?;
    let sealer = StoreSealer::prepare(keys, &dataset)?;

    let dir = parent_dir(path);
    fs::create_dir_all(&dir).map_err(io_error(&dir))?;
    let temp = TempFile::create(path, &dir)?;
    let summary = write_store(temp.path(), path, &dataset, &sealer, opts.progress)?;
    // The data must be on disk before the rename makes them visible.
    fs::File::open(temp.path())
        .and_then(|f| f.sync_all())
        .map_err(io_error(temp.path()))?;
    install(temp, path, replace)?;
    sync_dir(&dir)?;

    tracing::info!(
        path = %path.display(),
        scale = opts.scale,
        seed = opts.seed,
        rows = summary.total_rows(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "seeded demo store"
    );
    Ok(summary)
}

/// Creates the schema, loads every table and builds the indexes in `temp`.
/// Errors name `target`, the path the user knows about.
fn write_store(
    temp: &Path,
    target: &Path,
    dataset: &DemoDataset,
    sealer: &StoreSealer,
    progress: bool,
) -> Result<SeedSummary, SeedError> {
    let sql_error = |source| SeedError::Sqlite {
        path: target.to_path_buf(),
        source,
    };
    let mut conn = Connection::open(temp).map_err(sql_error)?;
    // Durability is pointless while building a file nobody can see yet; it is
    // made durable as a whole before being renamed into place.
    conn.execute_batch(
        "PRAGMA journal_mode = OFF;
         PRAGMA synchronous = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -65536;",
    )
    .map_err(sql_error)?;

    let bar = progress_bar(progress, dataset.total_rows());
    let loaded = load(&mut conn, dataset, sealer, &bar);
    bar.finish_and_clear();
    let summary = loaded.map_err(|e| match e {
        Loaded::Sqlite(e) => sql_error(e),
        Loaded::Seal(e) => e,
    })?;

    // Leave a normal rollback-journal database behind for its users.
    conn.execute_batch("PRAGMA journal_mode = DELETE;")
        .map_err(sql_error)?;
    conn.close().map_err(|(_, e)| sql_error(e))?;
    Ok(summary)
}

/// Why loading the SQLite store stopped.
enum Loaded {
    Sqlite(rusqlite::Error),
    Seal(SeedError),
}

impl From<rusqlite::Error> for Loaded {
    fn from(e: rusqlite::Error) -> Self {
        Loaded::Sqlite(e)
    }
}

impl From<SeedError> for Loaded {
    fn from(e: SeedError) -> Self {
        Loaded::Seal(e)
    }
}

fn load(
    conn: &mut Connection,
    dataset: &DemoDataset,
    sealer: &StoreSealer,
    bar: &ProgressBar,
) -> Result<SeedSummary, Loaded> {
    // Updating the bar per row would cost more than the insert.
    const BAR_STEP: u64 = 4096;
    let tx = conn.transaction()?;
    tx.execute_batch(TABLES_SQL)?;
    let mut tables = Vec::with_capacity(DemoTable::ALL.len());
    for table in DemoTable::ALL {
        bar.set_message(table.name());
        let mut stmt = tx.prepare_cached(&insert_sql(table))?;
        let mut pending = 0;
        let rows = sealer.for_each_row(dataset, table, |row| {
            stmt.execute(rusqlite::params_from_iter(row))?;
            pending += 1;
            if pending == BAR_STEP {
                bar.inc(pending);
                pending = 0;
            }
            Ok::<_, Loaded>(())
        })?;
        bar.inc(pending);
        tracing::debug!(table = table.name(), rows, "table loaded");
        tables.push((table.name().to_owned(), rows));
    }
    // Building indexes once over sorted data is much faster than keeping
    // them up to date row by row.
    bar.set_message("indexes");
    tx.execute_batch(INDEXES_SQL)?;
    tx.commit()?;
    Ok(SeedSummary { tables })
}

/// Encrypts the demo's classified columns on their way into the store:
/// `customers.phone` under each customer's subject key (with its blind index
/// in `phone_bidx`) and `payments.card_number` under the paying customer's,
/// each bound to its table, column and row id. The generator stays in
/// plaintext; only stored rows are sealed.
pub struct StoreSealer {
    cipher: vault::FieldCipher,
}

/// The subject a customer id names, as keystore and audit log write it.
pub fn customer_subject(id: i64) -> String {
    format!("customer:{id}")
}

impl StoreSealer {
    /// Makes sure the encrypted columns and every customer have keys (saved
    /// once), and returns the sealer over a snapshot of them.
    pub fn prepare(
        keys: &mut crate::keyring::OpenKeystore,
        dataset: &DemoDataset,
    ) -> Result<StoreSealer, SeedError> {
        crate::keyring::ensure_columns(keys, crate::keyring::DEMO_ENCRYPTED.iter().copied())?;
        let path = keys.keystore.path().to_path_buf();
        let store_error = |source| crate::keyring::KeyringError::Keystore {
            path: path.clone(),
            source,
        };
        let customers = dataset.row_count(DemoTable::Customers);
        let mut added = false;
        for id in 1..=customers {
            let subject = customer_subject(i64::try_from(id).unwrap_or(i64::MAX));
            // A shredded customer stays shredded: reseeding writes their
            // fields under no key rather than bringing them back.
            if keys.keystore.is_shredded(&subject) {
                continue;
            }
            added |= keys
                .keystore
                .ensure_subject(&subject)
                .map_err(store_error)?;
        }
        if added {
            keys.keystore.save().map_err(store_error)?;
        }
        Ok(StoreSealer {
            cipher: keys.keystore.cipher(),
        })
    }

    /// `dataset.for_each_row` with the row sealed as stored.
    pub fn for_each_row<E: From<SeedError>>(
        &self,
        dataset: &DemoDataset,
        table: DemoTable,
        mut sink: impl FnMut(&[Value]) -> Result<(), E>,
    ) -> Result<u64, E> {
        if !matches!(table, DemoTable::Customers | DemoTable::Payments) {
            return dataset.for_each_row(table, sink);
        }
        let mut sealed = Vec::new();
        dataset.for_each_row(table, |row| {
            sealed.clear();
            sealed.extend_from_slice(row);
            self.seal(dataset, table, &mut sealed)?;
            sink(&sealed)
        })
    }

    fn seal(
        &self,
        dataset: &DemoDataset,
        table: DemoTable,
        row: &mut [Value],
    ) -> Result<(), SeedError> {
        let (column, subject_of): (&'static str, fn(&DemoDataset, i64) -> i64) = match table {
            DemoTable::Customers => ("phone", |_, id| id),
            DemoTable::Payments => ("card_number", |d, id| {
                // One payment per order, sharing its id.
                i64::try_from(d.order_customer(u64::try_from(id).unwrap_or(0))).unwrap_or(0)
            }),
            _ => return Ok(()),
        };
        let columns = table.columns();
        let position = |name: &str| columns.iter().position(|c| *c == name);
        let (Some(at), Some(Value::Integer(id))) = (position(column), row.first().cloned()) else {
            return Ok(());
        };
        let Value::Text(plain) = &row[at] else {
            // NULL stays NULL (a customer without a phone).
            return Ok(());
        };
        let row_key = id.to_string();
        let field = vault::Field {
            table: table.name(),
            column,
            row_key: &row_key,
        };
        let fail = |source| SeedError::Encrypt {
            table: table.name(),
            column,
            row: row_key.clone(),
            source,
        };
        let subject = customer_subject(subject_of(dataset, id));
        let bidx = match position(&format!("{column}_bidx")) {
            Some(b) => Some((
                b,
                self.cipher
                    .blind_index(table.name(), column, plain.as_bytes())
                    .map_err(fail)?,
            )),
            None => None,
        };
        let sealed = self
            .cipher
            .encrypt(&field, Some(&subject), plain.as_bytes())
            .map_err(fail)?;
        row[at] = Value::Text(sealed);
        if let Some((b, token)) = bidx {
            row[b] = Value::Text(token);
        }
        Ok(())
    }
}

fn insert_sql(table: DemoTable) -> String {
    let columns = table.columns();
    let placeholders: Vec<String> = (1..=columns.len()).map(|i| format!("?{i}")).collect();
    format!(
        "INSERT INTO {} ({}) VALUES ({})",
        table.name(),
        columns.join(", "),
        placeholders.join(", ")
    )
}

fn progress_bar(enabled: bool, total: u64) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    // `ProgressBar::new` draws on stderr and stays invisible when stderr is
    // not a terminal.
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template(
        "{spinner} seeding {msg:<16} [{bar:40}] {human_pos}/{human_len} rows ({per_sec}, {eta} left)",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Moves the finished temporary file to `path`.
fn install(temp: TempFile, path: &Path, replace: bool) -> Result<(), SeedError> {
    if replace {
        // A hot journal or WAL of the old store would be applied to the new
        // file by the next opener and corrupt it: remove them first.
        for suffix in ["-journal", "-wal", "-shm"] {
            let mut sidecar = path.as_os_str().to_owned();
            sidecar.push(suffix);
            let sidecar = PathBuf::from(sidecar);
            match fs::remove_file(&sidecar) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(io_error(&sidecar)(e));
                }
                _ => {}
            }
        }
        fs::rename(temp.path(), path).map_err(io_error(path))?;
        temp.disarm();
        return Ok(());
    }
    // A hard link never clobbers an existing file, so a store created by
    // someone else while we were generating is not overwritten.
    match fs::hard_link(temp.path(), path) {
        Ok(()) => {
            if let Err(e) = fs::remove_file(temp.path()) {
                tracing::warn!(path = %temp.path().display(), error = %e, "could not remove temporary file");
            }
            temp.disarm();
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(SeedError::AlreadyExists {
            path: path.to_path_buf(),
        }),
        Err(_) => {
            // No hard links on this file system: check, then rename.
            if exists(path)? {
                return Err(SeedError::AlreadyExists {
                    path: path.to_path_buf(),
                });
            }
            fs::rename(temp.path(), path).map_err(io_error(path))?;
            temp.disarm();
            Ok(())
        }
    }
}

/// The temporary store beside the target; deleted on drop unless disarmed.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    /// Claims `.<name>.<pid>.seeding` in `dir`. `create_new` makes sure we
    /// never build on top of a file someone else is writing.
    fn create(target: &Path, dir: &Path) -> Result<Self, SeedError> {
        let name = target.file_name().ok_or_else(|| SeedError::Io {
            path: target.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::InvalidInput,
                "the store path has no file name",
            ),
        })?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.seeding", std::process::id()));
        let path = dir.join(temp_name);
        let open = || {
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
        };
        match open() {
            Ok(_) => {}
            // Only a crashed earlier run with our pid can have left this name.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                fs::remove_file(&path).map_err(io_error(&path))?;
                open().map_err(io_error(&path))?;
            }
            Err(e) => return Err(io_error(&path)(e)),
        }
        Ok(Self { path, armed: true })
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            // Best effort: we are already on an error path.
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn exists(path: &Path) -> Result<bool, SeedError> {
    // symlink_metadata: a dangling symlink still occupies the name.
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_error(path)(e)),
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Makes the rename itself durable.
fn sync_dir(dir: &Path) -> Result<(), SeedError> {
    #[cfg(unix)]
    {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(dir))?;
    }
    #[cfg(not(unix))]
    let _ = dir; // Directories cannot be opened for syncing here.
    Ok(())
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> SeedError + '_ {
    move |source| SeedError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::ValueRef;

    fn opts(scale: f64, seed: u64) -> SeedOptions {
        SeedOptions {
            scale,
            seed,
            progress: false,
        }
    }

    /// Seeds `<dir>/store.db`.
    fn seed_in(dir: &Path, scale: f64, seed: u64) -> (PathBuf, SeedSummary) {
        let path = dir.join("store.db");
        let summary = seed_sqlite(&path, &opts(scale, seed), false, &mut keys_in(dir)).unwrap();
        (path, summary)
    }

    fn test_master() -> vault::MasterKey {
        vault::MasterKey::from_bytes(&[7; 32])
    }

    /// The keystore beside a test store (created on first use).
    pub(crate) fn keys_in(dir: &Path) -> crate::keyring::OpenKeystore {
        crate::keyring::open_with(&test_master(), dir, true).unwrap()
    }

    /// The cipher of the keystore in `dir`.
    pub(crate) fn cipher_in(dir: &Path) -> vault::FieldCipher {
        vault::Keystore::open(&dir.join(vault::Keystore::FILE_NAME), &test_master())
            .unwrap()
            .cipher()
    }

    /// A stored value as the generator made it: sealed columns decrypted.
    pub(crate) fn unseal(
        cipher: &vault::FieldCipher,
        table: &str,
        column: &str,
        id: &str,
        value: &str,
    ) -> String {
        if !matches!(
            (table, column),
            ("customers", "phone") | ("payments", "card_number")
        ) {
            return value.to_owned();
        }
        let field = vault::Field {
            table,
            column,
            row_key: id,
        };
        String::from_utf8(cipher.decrypt(&field, value).unwrap()).unwrap()
    }

    /// The store read-only, with `plain(table, column, id, value)`
    /// decrypting sealed values with the keystore beside it.
    fn open(path: &Path) -> Connection {
        let conn =
            Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let dir = path.parent().unwrap();
        if !dir.join(vault::Keystore::FILE_NAME).exists() {
            return conn;
        }
        let cipher = cipher_in(dir);
        conn.create_scalar_function(
            "plain",
            4,
            rusqlite::functions::FunctionFlags::SQLITE_UTF8,
            move |ctx| {
                let table: String = ctx.get(0)?;
                let column: String = ctx.get(1)?;
                let id: i64 = ctx.get(2)?;
                let value: Option<String> = ctx.get(3)?;
                Ok(value.map(|v| unseal(&cipher, &table, &column, &id.to_string(), &v)))
            },
        )
        .unwrap();
        conn
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    fn fnv(hash: &mut u64, bytes: &[u8]) {
        for b in bytes {
            *hash ^= u64::from(*b);
            *hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
        }
    }

    /// FNV-1a over every value of every table, read back from the file.
    /// Sealed values are decrypted, and each blind index is checked against
    /// its plaintext and then counted as the NULL the generator emits.
    fn content_hash(path: &Path) -> u64 {
        let conn = open(path);
        let cipher = cipher_in(path.parent().unwrap());
        let mut hash = 0xCBF2_9CE4_8422_2325;
        for table in DemoTable::ALL {
            fnv(&mut hash, table.name().as_bytes());
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM {} ORDER BY rowid", table.name()))
                .unwrap();
            let n = stmt.column_count();
            let names: Vec<String> = stmt.column_names().iter().map(|s| s.to_string()).collect();
            let mut rows = stmt.query([]).unwrap();
            while let Some(row) = rows.next().unwrap() {
                let id = match row.get_ref(0).unwrap() {
                    ValueRef::Integer(v) => v.to_string(),
                    _ => String::new(),
                };
                let mut last_plain: Option<String> = None;
                for (i, name) in names.iter().enumerate().take(n) {
                    let value = row.get_ref(i).unwrap();
                    if name == "phone_bidx" {
                        let expected = last_plain.take().map(|p| {
                            cipher
                                .blind_index("customers", "phone", p.as_bytes())
                                .unwrap()
                        });
                        let got = match value {
                            ValueRef::Text(t) => Some(String::from_utf8(t.to_vec()).unwrap()),
                            _ => None,
                        };
                        assert_eq!(got, expected, "blind index of customer {id}");
                        fnv(&mut hash, b"N");
                        continue;
                    }
                    let unsealed;
                    let value = match value {
                        ValueRef::Text(t) => {
                            let text = std::str::from_utf8(t).unwrap();
                            unsealed = unseal(&cipher, table.name(), name, &id, text);
                            if name == "phone" {
                                last_plain = Some(unsealed.clone());
                            }
                            ValueRef::Text(unsealed.as_bytes())
                        }
                        other => other,
                    };
                    match value {
                        ValueRef::Null => fnv(&mut hash, b"N"),
                        ValueRef::Integer(v) => {
                            fnv(&mut hash, b"I");
                            fnv(&mut hash, &v.to_le_bytes());
                        }
                        ValueRef::Text(t) => {
                            fnv(&mut hash, b"T");
                            fnv(&mut hash, &(t.len() as u64).to_le_bytes());
                            fnv(&mut hash, t);
                        }
                        other => panic!("unexpected value {other:?}"),
                    }
                }
            }
        }
        hash
    }

    /// The same fingerprint computed straight from the generator.
    fn generator_hash(scale: f64, seed: u64) -> u64 {
        let ds = DemoDataset::new(scale, seed).unwrap();
        let mut hash = 0xCBF2_9CE4_8422_2325;
        for table in DemoTable::ALL {
            fnv(&mut hash, table.name().as_bytes());
            ds.for_each_row(table, |row| {
                for v in row {
                    match v {
                        Value::Null => fnv(&mut hash, b"N"),
                        Value::Integer(i) => {
                            fnv(&mut hash, b"I");
                            fnv(&mut hash, &i.to_le_bytes());
                        }
                        Value::Text(t) => {
                            fnv(&mut hash, b"T");
                            fnv(&mut hash, &(t.len() as u64).to_le_bytes());
                            fnv(&mut hash, t.as_bytes());
                        }
                    }
                }
                Ok::<_, ()>(())
            })
            .unwrap();
        }
        hash
    }

    fn luhn_valid(number: &str) -> bool {
        let mut sum = 0;
        for (i, c) in number.chars().rev().enumerate() {
            let Some(mut d) = c.to_digit(10) else {
                return false;
            };
            if i % 2 == 1 {
                d *= 2;
                if d > 9 {
                    d -= 9;
                }
            }
            sum += d;
        }
        sum % 10 == 0
    }

    #[test]
    fn same_scale_and_seed_give_identical_stores() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (pa, sa) = seed_in(a.path(), 0.02, 7);
        let (pb, sb) = seed_in(b.path(), 0.02, 7);
        assert_eq!(sa, sb);
        assert_eq!(content_hash(&pa), content_hash(&pb));
        // The file holds exactly what the generator produced, row for row.
        assert_eq!(content_hash(&pa), generator_hash(0.02, 7));
    }

    #[test]
    fn different_seeds_give_different_data() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (pa, _) = seed_in(a.path(), 0.01, 1);
        let (pb, _) = seed_in(b.path(), 0.01, 2);
        assert_ne!(content_hash(&pa), content_hash(&pb));
        // Not just one column: the customers themselves differ.
        let emails = |p: &Path| -> Vec<String> {
            let conn = open(p);
            let mut stmt = conn
                .prepare("SELECT email FROM customers ORDER BY id")
                .unwrap();
            let rows = stmt.query_map([], |r| r.get(0)).unwrap();
            rows.map(Result::unwrap).collect()
        };
        let (ea, eb) = (emails(&pa), emails(&pb));
        let same = ea.iter().zip(&eb).filter(|(x, y)| x == y).count();
        assert!(same < ea.len() / 4, "{same} of {} e-mails equal", ea.len());
    }

    #[test]
    fn generator_output_is_pinned() {
        // Guards "the same rows on every machine and version": any change to
        // the PRNG, the word lists or the generation logic changes this
        // fingerprint. Update it only for a deliberate change of the data set.
        assert_eq!(generator_hash(0.01, 42), GOLDEN_HASH_0_01_SEED_42);
    }

    // Changed once deliberately: customers gained the `phone_bidx` column
    // (NULL in the generator's rows), the values are the same.
    const GOLDEN_HASH_0_01_SEED_42: u64 = 4_673_431_352_721_696_856;

    #[test]
    fn row_counts_follow_the_scale_formula() {
        for (scale, expected) in [
            (0.01, [50, 5, 500, 2_500, 20, 100]),
            (0.05, [250, 25, 2_500, 12_500, 100, 500]),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let (path, summary) = seed_in(dir.path(), scale, 11);
            let names: Vec<&str> = summary.tables.iter().map(|(t, _)| t.as_str()).collect();
            let all: Vec<&str> = DemoTable::ALL.iter().map(|t| t.name()).collect();
            assert_eq!(names, all, "creation order");

            let conn = open(&path);
            let rows = |t: &str| count(&conn, &format!("SELECT COUNT(*) FROM {t}")) as u64;
            for (table, n) in &summary.tables {
                assert_eq!(rows(table), *n, "{table} at {scale}");
            }
            let direct = [
                "customers",
                "products",
                "orders",
                "events",
                "support_tickets",
                "reviews",
            ];
            for (table, want) in direct.iter().zip(expected) {
                assert_eq!(rows(table), want, "{table} at {scale}");
            }
            let orders = rows("orders");
            assert_eq!(rows("payments"), orders);
            let items = rows("order_items");
            assert!(
                items > orders && items <= 4 * orders,
                "{items} items for {orders} orders"
            );
            assert_eq!(
                count(&conn, "SELECT COUNT(*) FROM (SELECT order_id, COUNT(*) n FROM order_items GROUP BY order_id HAVING n BETWEEN 1 AND 4)"),
                orders as i64,
                "every order has 1-4 items"
            );
        }
    }

    #[test]
    fn tiny_scales_still_give_every_table_a_row() {
        let ds = DemoDataset::new(0.000_01, 5).unwrap();
        for table in DemoTable::ALL {
            assert!(ds.row_count(table) >= 1, "{}", table.name());
            let emitted = ds.for_each_row(table, |_| Ok::<_, ()>(())).unwrap();
            assert_eq!(emitted, ds.row_count(table), "{}", table.name());
        }
    }

    #[test]
    fn card_numbers_are_luhn_valid_with_matching_last4() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = seed_in(dir.path(), 0.05, 3);
        let conn = open(&path);
        let mut stmt = conn
            .prepare("SELECT plain('payments', 'card_number', id, card_number), card_last4 FROM payments")
            .unwrap();
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .unwrap();
        let mut n = 0;
        for row in rows {
            let (card, last4) = row.unwrap();
            assert_eq!(card.len(), 16, "{card}");
            assert!(luhn_valid(&card), "{card} fails Luhn");
            assert_eq!(&card[12..], last4);
            let prefix2: u32 = card[..2].parse().unwrap();
            let prefix4: u32 = card[..4].parse().unwrap();
            assert!(
                card.starts_with('4')
                    || (51..=55).contains(&prefix2)
                    || (2221..=2720).contains(&prefix4),
                "{card} has no Visa/Mastercard prefix"
            );
            n += 1;
        }
        assert_eq!(n, 2_500);
        assert!(!luhn_valid("4111111111111112"));
    }

    #[test]
    fn order_totals_equal_the_sum_of_their_items() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = seed_in(dir.path(), 0.05, 4);
        let conn = open(&path);
        let mismatched = count(
            &conn,
            "SELECT COUNT(*) FROM orders o WHERE o.total_cents <>
               (SELECT SUM(quantity * unit_price_cents) FROM order_items i WHERE i.order_id = o.id)",
        );
        assert_eq!(mismatched, 0);
        let unpaid = count(
            &conn,
            "SELECT COUNT(*) FROM orders o JOIN payments p ON p.order_id = o.id
             WHERE p.amount_cents <> o.total_cents OR p.created_at < o.created_at",
        );
        assert_eq!(unpaid, 0);
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM orders WHERE total_cents <= 0"),
            0
        );
    }

    #[test]
    fn every_region_appears_at_the_smallest_test_scale() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = seed_in(dir.path(), 0.01, 99);
        let conn = open(&path);
        let mut stmt = conn
            .prepare("SELECT region FROM customers ORDER BY id LIMIT 4")
            .unwrap();
        let first: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(first, ["EU", "NA", "APAC", "LATAM"]);
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM customers WHERE region NOT IN ('EU','NA','APAC','LATAM')"
            ),
            0
        );
        // The region follows from the country.
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM (SELECT country FROM customers GROUP BY country HAVING COUNT(DISTINCT region) > 1)"),
            0
        );
    }

    #[test]
    fn emails_are_unique_and_plausible() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = seed_in(dir.path(), 0.05, 8);
        let conn = open(&path);
        assert_eq!(
            count(&conn, "SELECT COUNT(DISTINCT email) FROM customers"),
            count(&conn, "SELECT COUNT(*) FROM customers")
        );
        let mut stmt = conn.prepare("SELECT email FROM customers").unwrap();
        for email in stmt.query_map([], |r| r.get::<_, String>(0)).unwrap() {
            let email = email.unwrap();
            let (local, domain) = email.split_once('@').unwrap();
            assert!(!local.is_empty() && domain.contains('.'), "{email}");
            assert!(
                email
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "@._-".contains(c)),
                "{email}"
            );
        }
    }

    #[test]
    fn existing_store_needs_replace() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = seed_in(dir.path(), 0.01, 1);
        let before = content_hash(&path);
        match seed_sqlite(
            &path,
            &opts(0.01, 2),
            false,
            &mut keys_in(path.parent().unwrap()),
        ) {
            Err(SeedError::AlreadyExists { path: p }) => assert_eq!(p, path),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
        assert_eq!(
            content_hash(&path),
            before,
            "the existing store is untouched"
        );

        // A stale WAL of the old store must not survive the replacement.
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        fs::write(&wal, b"stale").unwrap();
        seed_sqlite(
            &path,
            &opts(0.01, 2),
            true,
            &mut keys_in(path.parent().unwrap()),
        )
        .unwrap();
        assert!(!Path::new(&wal).exists());
        let other_dir = tempfile::tempdir().unwrap();
        let (fresh, _) = seed_in(other_dir.path(), 0.01, 2);
        assert_eq!(content_hash(&path), content_hash(&fresh));
    }

    #[test]
    fn bad_scales_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        for scale in [
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1000.0,
            100.5,
        ] {
            match seed_sqlite(
                &path,
                &opts(scale, 1),
                false,
                &mut crate::testing::test_keys().keys,
            ) {
                Err(SeedError::BadScale(s)) => assert!(s.is_nan() || s == scale),
                other => panic!("scale {scale}: expected BadScale, got {other:?}"),
            }
        }
        assert!(generate::validate_scale(100.0).is_ok());
        assert!(generate::validate_scale(1e-9).is_ok());
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "nothing created"
        );
    }

    #[test]
    fn no_temporary_file_is_left_behind() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("privet-data").join("demo.db");
        seed_sqlite(
            &nested,
            &opts(0.01, 5),
            false,
            &mut crate::testing::test_keys().keys,
        )
        .unwrap();
        let listing = |d: &Path| -> Vec<String> {
            let mut names: Vec<String> = fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        let data_dir = dir.path().join("privet-data");
        assert_eq!(listing(&data_dir), ["demo.db"]);
        // Failed attempts clean up too.
        assert!(seed_sqlite(
            &nested,
            &opts(0.01, 5),
            false,
            &mut crate::testing::test_keys().keys
        )
        .is_err());
        seed_sqlite(
            &nested,
            &opts(0.01, 6),
            true,
            &mut crate::testing::test_keys().keys,
        )
        .unwrap();
        assert_eq!(listing(&data_dir), ["demo.db"]);
        // The result is an ordinary rollback-journal database.
        let conn = open(&nested);
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "delete");
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    #[test]
    fn unusable_paths_fail_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, b"x").unwrap();
        let err = seed_sqlite(
            &file.join("store.db"),
            &opts(0.01, 1),
            false,
            &mut crate::testing::test_keys().keys,
        )
        .unwrap_err();
        assert!(matches!(err, SeedError::Io { .. }), "{err:?}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn schema_matches_the_generator() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(DEMO_SCHEMA_SQL).unwrap();
        for table in DemoTable::ALL {
            let mut stmt = conn
                .prepare(&format!(
                    "SELECT name FROM pragma_table_info('{}') ORDER BY cid",
                    table.name()
                ))
                .unwrap();
            let columns: Vec<String> = stmt
                .query_map([], |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert_eq!(columns, table.columns(), "{}", table.name());
        }
        let indexes = count(
            &conn,
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name LIKE 'idx_%'",
        );
        assert_eq!(indexes, 9);
    }

    #[test]
    fn references_and_timestamps_are_consistent() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = seed_in(dir.path(), 0.05, 21);
        let conn = open(&path);
        let mut stmt = conn.prepare("PRAGMA foreign_key_check").unwrap();
        assert!(
            stmt.query([]).unwrap().next().unwrap().is_none(),
            "dangling foreign keys"
        );

        // Fixed-width RFC 3339 strings compare like the instants they denote.
        let rfc3339 = "'____-__-__T__:__:__Z'";
        for (table, column, from) in [
            ("customers", "created_at", "2022-01-01T00:00:00Z"),
            ("orders", "created_at", "2024-01-01T00:00:00Z"),
            ("payments", "created_at", "2024-01-01T00:00:00Z"),
            ("events", "ts", "2024-01-01T00:00:00Z"),
            ("support_tickets", "created_at", "2024-01-01T00:00:00Z"),
        ] {
            let bad = count(
                &conn,
                &format!(
                    "SELECT COUNT(*) FROM {table} WHERE {column} NOT LIKE {rfc3339}
                     OR {column} < '{from}' OR {column} > '2025-12-31T23:59:59Z'"
                ),
            );
            assert_eq!(bad, 0, "{table}.{column}");
        }
        // Nobody orders, browses or writes in before signing up.
        for (table, column) in [
            ("orders", "created_at"),
            ("events", "ts"),
            ("support_tickets", "created_at"),
        ] {
            let early = count(
                &conn,
                &format!("SELECT COUNT(*) FROM {table} x JOIN customers c ON c.id = x.customer_id WHERE x.{column} < c.created_at"),
            );
            assert_eq!(early, 0, "{table}");
        }
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM reviews WHERE rating NOT BETWEEN 1 AND 5"
            ),
            0
        );
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM customers WHERE marketing_opt_in NOT IN (0, 1) OR birth_date NOT LIKE '____-__-__'"),
            0
        );
    }

    #[test]
    fn activity_is_skewed_and_coherent() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = seed_in(dir.path(), 0.05, 13);
        let conn = open(&path);
        // The busiest tenth of the customers place a large share of the orders.
        let top = count(
            &conn,
            "SELECT SUM(n) FROM (SELECT COUNT(*) n FROM orders GROUP BY customer_id ORDER BY n DESC LIMIT 25)",
        );
        assert!(
            top * 100 > 30 * 2_500,
            "top 10% placed only {top} of 2500 orders"
        );
        // Every purchase event is a product the customer really ordered.
        let orphans = count(
            &conn,
            "SELECT COUNT(*) FROM events e WHERE kind = 'purchase' AND NOT EXISTS (
               SELECT 1 FROM orders o JOIN order_items i ON i.order_id = o.id
               WHERE o.customer_id = e.customer_id AND i.product_id = e.product_id)",
        );
        assert_eq!(orphans, 0);
        assert!(count(&conn, "SELECT COUNT(*) FROM events WHERE kind = 'purchase'") > 0);
        // Searches have no product; some visitors are anonymous.
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM events WHERE kind = 'search' AND product_id IS NOT NULL"
            ),
            0
        );
        assert!(
            count(
                &conn,
                "SELECT COUNT(*) FROM events WHERE customer_id IS NULL"
            ) > 0
        );
        assert!(
            count(
                &conn,
                "SELECT COUNT(*) FROM events WHERE ip_address LIKE '%:%'"
            ) > 0
        );
    }

    #[test]
    fn free_text_carries_realistic_pii() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = seed_in(dir.path(), 0.05, 17);
        let conn = open(&path);
        let tickets = count(&conn, "SELECT COUNT(*) FROM support_tickets");
        let with_email = count(
            &conn,
            "SELECT COUNT(*) FROM support_tickets t JOIN customers c ON c.id = t.customer_id
             WHERE instr(t.body, c.email) > 0",
        );
        assert!(
            with_email * 4 > tickets,
            "{with_email} of {tickets} mention the e-mail"
        );
        let with_name = count(
            &conn,
            "SELECT COUNT(*) FROM support_tickets t JOIN customers c ON c.id = t.customer_id
             WHERE instr(t.body, c.full_name) > 0",
        );
        assert!(with_name > 0);
        let with_card = count(
            &conn,
            "SELECT COUNT(DISTINCT t.id) FROM support_tickets t
             JOIN orders o ON o.customer_id = t.customer_id JOIN payments p ON p.order_id = o.id
             WHERE instr(replace(replace(t.body, ' ', ''), '-', ''), plain('payments', 'card_number', p.id, p.card_number)) > 0",
        );
        assert!(with_card > 0, "no ticket quotes a card number");
        let with_phone = count(
            &conn,
            "SELECT COUNT(*) FROM support_tickets WHERE body GLOB '*[0-9][0-9][0-9]*[0-9][0-9][0-9][0-9]*'",
        );
        assert!(with_phone * 3 > tickets);
        let subjects = count(&conn, "SELECT COUNT(DISTINCT subject) FROM support_tickets");
        assert!(subjects >= 12, "only {subjects} distinct subjects");
        let reviews_with_contact = count(
            &conn,
            "SELECT COUNT(*) FROM reviews WHERE body LIKE '%@%' OR body GLOB '*[0-9][0-9][0-9] *[0-9][0-9]*'",
        );
        assert!(reviews_with_contact > 0);
    }
}
