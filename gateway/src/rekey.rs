//! `privet keys rewrap`: re-encrypts the stored values of an encrypted
//! column to its current key version, in batches, in the store itself.
//!
//! Each batch is one transaction: it selects (in primary-key order) the
//! next values not yet at the current version, re-encrypts them, and
//! updates them. An interruption loses at most the batch in flight, which
//! was never committed; running the command again picks up the values still
//! at an old version, so it resumes where it stopped and never rewrites a
//! value twice. Values of shredded subjects cannot be decrypted and are left
//! as they are (skipped and counted).

use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use vault::{CipherError, Field, FieldCipher};

use crate::config::BackendConfig;
use crate::write::quote;

/// What a rewrap did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RewrapReport {
    pub table: String,
    pub column: String,
    /// The version values were re-encrypted to.
    pub version: u32,
    /// Values re-encrypted by this run.
    pub rewrapped: u64,
    /// Values left as they were: their subject was shredded.
    pub shredded: u64,
    /// Values (non-NULL) already at the current version before this run.
    pub already_current: u64,
    /// Set when the run stopped early (`stop_after_batches`).
    pub interrupted: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RewrapError {
    #[error("{table}.{column}: {message}")]
    Store {
        table: String,
        column: String,
        message: String,
    },
    #[error("{table}.{column} of the row with key {row_key} does not decrypt ({source}); fix or restore that value, then run rewrap again")]
    Decrypt {
        table: String,
        column: String,
        row_key: String,
        #[source]
        source: CipherError,
    },
}

/// The column to rewrap: its table's single-column primary key and its
/// declared type (PostgreSQL casts the key back from text with it).
pub struct RewrapTarget {
    pub table: String,
    pub column: String,
    pub key_column: String,
    pub key_type: String,
}

/// Options of a run.
pub struct RewrapOptions {
    pub batch: usize,
    /// Stop after this many batches, as if interrupted (for tests and for
    /// spreading the work over several runs).
    pub stop_after_batches: Option<u64>,
    pub progress: bool,
}

/// The header every value at the column's current version starts with.
fn current_prefix(
    cipher: &FieldCipher,
    target: &RewrapTarget,
) -> Result<(String, u32), RewrapError> {
    let store_error = |message: String| RewrapError::Store {
        table: target.table.clone(),
        column: target.column.clone(),
        message,
    };
    let probe = cipher
        .encrypt(
            &Field {
                table: &target.table,
                column: &target.column,
                row_key: "",
            },
            None,
            b"",
        )
        .map_err(|e| store_error(format!("no key for this column: {e}")))?;
    let info = vault::ciphertext_info(&probe).map_err(|e| store_error(e.to_string()))?;
    Ok((
        format!("pv{}.{}.{}.", info.format, info.column_key_id, info.version),
        info.version,
    ))
}

/// One value: re-encrypted, or None when its subject was shredded.
fn reencrypt(
    cipher: &FieldCipher,
    target: &RewrapTarget,
    row_key: &str,
    ciphertext: &str,
) -> Result<Option<String>, RewrapError> {
    let field = Field {
        table: &target.table,
        column: &target.column,
        row_key,
    };
    match cipher.reencrypt(&field, ciphertext) {
        Ok(new) => Ok(Some(new)),
        Err(CipherError::Shredded) => Ok(None),
        Err(source) => Err(RewrapError::Decrypt {
            table: target.table.clone(),
            column: target.column.clone(),
            row_key: row_key.to_owned(),
            source,
        }),
    }
}

/// The report and progress bar of a run that found `total` values, of
/// which `stale` are not at the current `version`.
fn start(
    target: &RewrapTarget,
    opts: &RewrapOptions,
    version: u32,
    total: i64,
    stale: i64,
) -> (RewrapReport, ProgressBar) {
    let report = RewrapReport {
        table: target.table.clone(),
        column: target.column.clone(),
        version,
        already_current: u64::try_from(total - stale).unwrap_or(0),
        ..RewrapReport::default()
    };
    (
        report,
        bar(opts.progress, u64::try_from(stale).unwrap_or(0), target),
    )
}

fn bar(enabled: bool, total: u64, target: &RewrapTarget) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} values ({per_sec}, eta {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!("rewrap {}.{}", target.table, target.column));
    bar
}

/// Rewraps `target` in the store of `backend`.
pub async fn rewrap(
    backend: &BackendConfig,
    target: RewrapTarget,
    cipher: Arc<FieldCipher>,
    opts: RewrapOptions,
) -> Result<RewrapReport, RewrapError> {
    match backend {
        BackendConfig::Sqlite { path } => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || rewrap_sqlite(&path, &target, &cipher, &opts))
                .await
                .map_err(|e| RewrapError::Store {
                    table: String::new(),
                    column: String::new(),
                    message: format!("the rewrap task stopped: {e}"),
                })?
        }
        BackendConfig::Postgres { url, schema } => {
            rewrap_postgres(&url.connect_config(), schema, &target, &cipher, &opts).await
        }
    }
}

fn rewrap_sqlite(
    path: &std::path::Path,
    target: &RewrapTarget,
    cipher: &FieldCipher,
    opts: &RewrapOptions,
) -> Result<RewrapReport, RewrapError> {
    let store_error = |e: rusqlite::Error| RewrapError::Store {
        table: target.table.clone(),
        column: target.column.clone(),
        message: e.to_string(),
    };
    let (prefix, version) = current_prefix(cipher, target)?;
    let mut conn = rusqlite::Connection::open(path).map_err(store_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(store_error)?;
    let (t, c, k) = (
        quote(&target.table),
        quote(&target.column),
        quote(&target.key_column),
    );
    let stale = format!("{c} IS NOT NULL AND substr({c}, 1, {}) <> ?1", prefix.len());
    let (total, stale_count): (i64, i64) = conn
        .query_row(
            &format!("SELECT count({c}), count(CASE WHEN {stale} THEN 1 END) FROM {t}"),
            [&prefix],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map_err(store_error)?;
    let (mut report, bar) = start(target, opts, version, total, stale_count);
    let select = format!(
        "SELECT CAST({k} AS TEXT), {c} FROM {t} WHERE {stale} ORDER BY {k} LIMIT ?2 OFFSET ?3"
    );
    let update = format!("UPDATE {t} SET {c} = ?1 WHERE {k} = ?2");
    let mut batches = 0u64;
    loop {
        if opts.stop_after_batches.is_some_and(|n| batches >= n) {
            report.interrupted = true;
            break;
        }
        let tx = conn.transaction().map_err(store_error)?;
        let rows: Vec<(String, String)> = {
            let mut stmt = tx.prepare(&select).map_err(store_error)?;
            let rows = stmt
                .query_map(
                    rusqlite::params![prefix, opts.batch as i64, report.shredded as i64],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(store_error)?;
            rows.collect::<Result<_, _>>().map_err(store_error)?
        };
        if rows.is_empty() {
            break;
        }
        {
            let mut stmt = tx.prepare(&update).map_err(store_error)?;
            for (key, value) in &rows {
                match reencrypt(cipher, target, key, value)? {
                    Some(new) => {
                        stmt.execute(rusqlite::params![new, key])
                            .map_err(store_error)?;
                        report.rewrapped += 1;
                    }
                    None => report.shredded += 1,
                }
            }
        }
        tx.commit().map_err(store_error)?;
        bar.inc(rows.len() as u64);
        batches += 1;
    }
    bar.finish_and_clear();
    Ok(report)
}

async fn rewrap_postgres(
    config: &tokio_postgres::Config,
    schema: &str,
    target: &RewrapTarget,
    cipher: &FieldCipher,
    opts: &RewrapOptions,
) -> Result<RewrapReport, RewrapError> {
    let store_error = |e: tokio_postgres::Error| RewrapError::Store {
        table: target.table.clone(),
        column: target.column.clone(),
        message: e
            .as_db_error()
            .map_or_else(|| e.to_string(), |d| d.message().to_owned()),
    };
    if !target
        .key_type
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || ch == ' ' || ch == '_')
    {
        return Err(RewrapError::Store {
            table: target.table.clone(),
            column: target.column.clone(),
            message: format!("unsupported primary key type `{}`", target.key_type),
        });
    }
    let (prefix, version) = current_prefix(cipher, target)?;
    let (mut client, connection) = config
        .connect(tokio_postgres::NoTls)
        .await
        .map_err(store_error)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %e, "PostgreSQL connection ended with an error");
        }
    });
    let t = format!("{}.{}", quote(schema), quote(&target.table));
    let (c, k) = (quote(&target.column), quote(&target.key_column));
    let stale = format!("{c} IS NOT NULL AND substr({c}, 1, {}) <> $1", prefix.len());
    let row = client
        .query_one(
            &format!("SELECT count({c}), count(CASE WHEN {stale} THEN 1 END) FROM {t}"),
            &[&prefix],
        )
        .await
        .map_err(store_error)?;
    let (total, stale_count): (i64, i64) = (row.get(0), row.get(1));
    let (mut report, bar) = start(target, opts, version, total, stale_count);
    let select = format!(
        "SELECT CAST({k} AS TEXT), {c} FROM {t} WHERE {stale} ORDER BY {k} LIMIT $2 OFFSET $3"
    );
    let update = format!(
        "UPDATE {t} SET {c} = $1 WHERE {k} = CAST(CAST($2 AS TEXT) AS {})",
        target.key_type
    );
    let mut batches = 0u64;
    loop {
        if opts.stop_after_batches.is_some_and(|n| batches >= n) {
            report.interrupted = true;
            break;
        }
        let tx = client.transaction().await.map_err(store_error)?;
        let limit = i64::try_from(opts.batch).unwrap_or(i64::MAX);
        let offset = i64::try_from(report.shredded).unwrap_or(i64::MAX);
        let rows = tx
            .query(&select, &[&prefix, &limit, &offset])
            .await
            .map_err(store_error)?;
        if rows.is_empty() {
            break;
        }
        let stmt = tx.prepare(&update).await.map_err(store_error)?;
        for row in &rows {
            let (key, value): (String, String) = (row.get(0), row.get(1));
            match reencrypt(cipher, target, &key, &value)? {
                Some(new) => {
                    tx.execute(&stmt, &[&new, &key])
                        .await
                        .map_err(store_error)?;
                    report.rewrapped += 1;
                }
                None => report.shredded += 1,
            }
        }
        tx.commit().await.map_err(store_error)?;
        bar.inc(rows.len() as u64);
        batches += 1;
    }
    bar.finish_and_clear();
    Ok(report)
}
