//! Support for tests that need a real PostgreSQL server. Not part of the
//! gateway's API: used by this crate's tests and the end-to-end tests.
//!
//! `PRIVET_TEST_POSTGRES` names the server (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`). Without it PostgreSQL tests
//! print that they were skipped; with `PRIVET_REQUIRE_POSTGRES=1` a missing
//! variable or an unreachable server fails the test loudly.

use std::sync::atomic::{AtomicU32, Ordering};

/// The PostgreSQL server to test against, or None (after printing that
/// `test` was skipped). Panics when PostgreSQL is required but not named.
pub fn postgres_url(test: &str) -> Option<String> {
    match std::env::var("PRIVET_TEST_POSTGRES") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            assert!(
                !postgres_required(),
                "{test}: PRIVET_REQUIRE_POSTGRES=1 but PRIVET_TEST_POSTGRES is not set; \
                 set it to a PostgreSQL URL such as postgres://postgres@127.0.0.1:5432/test"
            );
            eprintln!(
                "{test}: skipped, PRIVET_TEST_POSTGRES is not set (PostgreSQL tests need a server)"
            );
            None
        }
    }
}

/// Whether `PRIVET_REQUIRE_POSTGRES=1` is set.
pub fn postgres_required() -> bool {
    std::env::var("PRIVET_REQUIRE_POSTGRES").is_ok_and(|v| v.trim() == "1")
}

/// A fresh, uniquely named schema name for one test: `privet_t_<pid>_<n>_<tag>`.
/// Lower case ASCII, so it needs no quoting.
pub fn unique_schema_name(tag: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let tag: String = tag
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(20)
        .collect::<String>()
        .to_ascii_lowercase();
    format!(
        "privet_t_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        tag
    )
}

/// Drops `schema` (and everything in it). See [`cleanup`].
pub fn drop_schema(url: &str, schema: &str) {
    cleanup(url, &format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
}

/// Runs cleanup `sql` on a thread of its own, so it can be called from
/// `Drop` inside or outside a tokio runtime. Errors are printed, not
/// raised: cleanup must not mask a test's own failure.
pub fn cleanup(url: &str, sql: &str) {
    let url = url.to_owned();
    let sql = sql.to_owned();
    let joined = std::thread::spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(r) => r,
            Err(e) => return eprintln!("test cleanup `{sql}`: {e}"),
        };
        runtime.block_on(async {
            match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                Ok((client, connection)) => {
                    tokio::spawn(connection);
                    if let Err(e) = client.batch_execute(&sql).await {
                        eprintln!("test cleanup `{sql}`: {e}");
                    }
                }
                Err(e) => eprintln!("test cleanup `{sql}`: {e}"),
            }
        });
    })
    .join();
    if joined.is_err() {
        eprintln!("test cleanup panicked");
    }
}

/// A keystore in a temporary directory, under a fixed test master key.
#[cfg(test)]
pub struct TestKeys {
    pub keys: crate::keyring::OpenKeystore,
    _dir: tempfile::TempDir,
}

#[cfg(test)]
pub fn test_keys() -> TestKeys {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = crate::keyring::open_with(&vault::MasterKey::from_bytes(&[7; 32]), dir.path(), true)
        .expect("test keystore");
    TestKeys { keys, _dir: dir }
}
