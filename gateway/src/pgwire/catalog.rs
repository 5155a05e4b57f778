//! The catalog drivers introspect (`pg_type`, `pg_namespace`, `pg_range`),
//! answered from a fixed view of the types the wire front speaks — never
//! from the real catalog, which would describe the governed database.
//!
//! A statement that reads only these tables (bare or `pg_catalog.`) runs on
//! an in-memory SQLite database holding the fixed rows, read-only; any
//! other `pg_*` table, or a mix with governed tables, goes to the pipeline,
//! which refuses it as an unknown table.

use std::ops::ControlFlow;
use std::sync::{Mutex, OnceLock};

use rusqlite::Connection;
use serde_json::Value;
use sqlparser::ast::{ObjectName, Statement};

/// The catalog tables answered here.
const TABLES: &[&str] = &["pg_type", "pg_namespace", "pg_range"];

/// The fixed rows: `(oid, typname, typlen, typtype, typcategory, typelem, typarray)`.
const TYPES: &[(i64, &str, i64, &str, &str, i64, i64)] = &[
    (16, "bool", 1, "b", "B", 0, 1000),
    (17, "bytea", -1, "b", "U", 0, 1001),
    (19, "name", 64, "b", "S", 0, 1003),
    (20, "int8", 8, "b", "N", 0, 1016),
    (21, "int2", 2, "b", "N", 0, 1005),
    (23, "int4", 4, "b", "N", 0, 1007),
    (25, "text", -1, "b", "S", 0, 1009),
    (26, "oid", 4, "b", "N", 0, 1028),
    (114, "json", -1, "b", "U", 0, 199),
    (700, "float4", 4, "b", "N", 0, 1021),
    (701, "float8", 8, "b", "N", 0, 1022),
    (705, "unknown", -2, "p", "X", 0, 0),
    (1043, "varchar", -1, "b", "S", 0, 1015),
    (1082, "date", 4, "b", "D", 0, 1182),
    (1114, "timestamp", 8, "b", "D", 0, 1115),
    (1184, "timestamptz", 8, "b", "D", 0, 1185),
    (1700, "numeric", -1, "b", "N", 0, 1231),
    (2950, "uuid", 16, "b", "U", 0, 2951),
    (3802, "jsonb", -1, "b", "U", 0, 3807),
];

/// Whether `statement` reads the fixed catalog and nothing else.
pub fn reads_only_catalog(statement: &Statement) -> bool {
    if !matches!(statement, Statement::Query(_)) {
        return false;
    }
    let mut any = false;
    let only = sqlparser::ast::visit_relations(statement, |name: &ObjectName| {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|p| p.as_ident())
            .map(|i| i.value.to_ascii_lowercase())
            .collect();
        let ok = match parts.as_slice() {
            [table] => TABLES.contains(&table.as_str()),
            [schema, table] => schema == "pg_catalog" && TABLES.contains(&table.as_str()),
            _ => false,
        };
        any = true;
        if ok {
            ControlFlow::Continue(())
        } else {
            ControlFlow::Break(())
        }
    });
    any && only.is_continue()
}

/// Why a catalog statement failed.
#[derive(Debug, thiserror::Error)]
#[error("catalog query: {0}")]
pub struct CatalogError(String);

/// Column names, their declared types and the rows of a catalog statement.
pub type CatalogRows = (Vec<String>, Vec<Option<String>>, Vec<Vec<Value>>);

/// Runs `sql` (a statement [`reads_only_catalog`] accepted) on the fixed view.
pub fn query(sql: &str) -> Result<CatalogRows, CatalogError> {
    static VIEW: OnceLock<Result<Mutex<Connection>, String>> = OnceLock::new();
    let view = VIEW
        .get_or_init(|| open().map(Mutex::new).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| CatalogError(e.clone()))?;
    let conn = view.lock().unwrap_or_else(|p| p.into_inner());
    let mut statement = conn.prepare(sql).map_err(|e| CatalogError(e.to_string()))?;
    let names: Vec<String> = statement
        .column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    let decls: Vec<Option<String>> = statement
        .columns()
        .iter()
        .map(|c| c.decl_type().map(str::to_owned))
        .collect();
    let width = names.len();
    let mut rows = Vec::new();
    let mut cursor = statement
        .query([])
        .map_err(|e| CatalogError(e.to_string()))?;
    while let Some(row) = cursor.next().map_err(|e| CatalogError(e.to_string()))? {
        let mut out = Vec::with_capacity(width);
        for i in 0..width {
            use rusqlite::types::ValueRef;
            out.push(
                match row.get_ref(i).map_err(|e| CatalogError(e.to_string()))? {
                    ValueRef::Null => Value::Null,
                    ValueRef::Integer(n) => Value::from(n),
                    ValueRef::Real(x) => Value::from(x),
                    ValueRef::Text(t) | ValueRef::Blob(t) => {
                        Value::String(String::from_utf8_lossy(t).into_owned())
                    }
                },
            );
        }
        rows.push(out);
        // The view is tiny; a statement producing more rows than this is a
        // cross join of it with itself, not a driver's lookup.
        if rows.len() > 10_000 {
            return Err(CatalogError("more than 10,000 rows".into()));
        }
    }
    Ok((names, decls, rows))
}

fn open() -> rusqlite::Result<Connection> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch(
        "ATTACH DATABASE ':memory:' AS pg_catalog;
         CREATE TABLE pg_catalog.pg_namespace (oid INTEGER, nspname TEXT);
         INSERT INTO pg_catalog.pg_namespace VALUES (11, 'pg_catalog'), (2200, 'public');
         CREATE TABLE pg_catalog.pg_range (rngtypid INTEGER, rngsubtype INTEGER);
         CREATE TABLE pg_catalog.pg_type (
             oid INTEGER, typname TEXT, typnamespace INTEGER, typlen INTEGER,
             typtype TEXT, typcategory TEXT, typelem INTEGER, typarray INTEGER,
             typbasetype INTEGER, typrelid INTEGER, typnotnull BOOLEAN);",
    )?;
    for (oid, name, len, kind, category, elem, array) in TYPES {
        conn.execute(
            "INSERT INTO pg_catalog.pg_type VALUES (?1, ?2, 11, ?3, ?4, ?5, ?6, ?7, 0, 0, 0)",
            rusqlite::params![oid, name, len, kind, category, elem, array],
        )?;
    }
    // Read-only from here on; the view holds nothing but the rows above.
    conn.execute_batch("PRAGMA query_only = ON;")?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::masks::Dialect;

    fn parse(sql: &str) -> Statement {
        crate::sql::parse_one(sql, Dialect::Postgres).expect("parses")
    }

    #[test]
    fn only_the_fixed_tables_are_catalog_reads() {
        assert!(reads_only_catalog(&parse(
            "SELECT t.typname FROM pg_catalog.pg_type t JOIN pg_namespace n ON t.typnamespace = n.oid WHERE t.oid = 20"
        )));
        assert!(!reads_only_catalog(&parse("SELECT * FROM pg_class")));
        assert!(!reads_only_catalog(&parse(
            "SELECT * FROM pg_type, customers"
        )));
        assert!(!reads_only_catalog(&parse("SELECT 1")));
        assert!(!reads_only_catalog(&parse(
            "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r, pg_type"
        )));
    }

    #[test]
    fn the_type_lookup_of_tokio_postgres_is_answered() {
        // tokio-postgres' typeinfo query, with its parameter put in.
        let (names, _, rows) = query(
            "SELECT t.typname, t.typtype, t.typelem, r.rngsubtype, t.typbasetype, n.nspname, t.typrelid \
             FROM pg_catalog.pg_type t \
             LEFT OUTER JOIN pg_catalog.pg_range r ON r.rngtypid = t.oid \
             INNER JOIN pg_catalog.pg_namespace n ON t.typnamespace = n.oid \
             WHERE t.oid = '20'",
        )
        .expect("runs");
        assert_eq!(names[0], "typname");
        assert_eq!(
            rows,
            vec![vec![
                Value::from("int8"),
                Value::from("b"),
                Value::from(0),
                Value::Null,
                Value::from(0),
                Value::from("pg_catalog"),
                Value::from(0)
            ]]
        );
        assert!(query("DELETE FROM pg_type").is_err(), "read-only");
    }
}
