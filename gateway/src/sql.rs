//! SQL analysis: parse exactly one read-only statement and resolve every
//! table it reads against the catalog. Anything not understood is refused,
//! never passed through.
//!
//! What runs on the backend is the statement re-serialized from the AST, not
//! the client's text, so the backend executes exactly what was analyzed
//! (comment and whitespace tricks that parse differently there cannot
//! smuggle anything past).

use std::collections::BTreeSet;
use std::ops::ControlFlow;

use sqlparser::ast::{
    ObjectName, ObjectNamePart, Query, SetExpr, Statement, TableFactor, Visit, Visitor,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use crate::catalog::Catalog;

/// A statement that passed analysis.
#[derive(Debug, Clone)]
pub struct AnalyzedQuery {
    /// Canonical names of every base table the statement reads.
    pub tables: BTreeSet<String>,
    /// The SQL to run: re-serialized from the analyzed AST.
    pub sql: String,
}

/// Why a statement was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnalysisError {
    #[error("the request has no SQL statement")]
    Empty,
    #[error("SQL syntax error: {0}")]
    Parse(String),
    #[error("exactly one statement per request is allowed, this request has {0}")]
    MultipleStatements(usize),
    #[error("{kind} statements are not allowed: Privet runs read-only SELECT queries")]
    UnsupportedStatement { kind: String },
    #[error("{0} is not supported")]
    Unsupported(String),
    #[error("unknown table `{name}`: the governed database has no such table")]
    UnknownTable { name: String },
}

/// Parses `sql` (SQLite dialect) and resolves its tables against `catalog`.
pub fn analyze(sql: &str, catalog: &Catalog) -> Result<AnalyzedQuery, AnalysisError> {
    let statements = Parser::parse_sql(&SQLiteDialect {}, sql).map_err(|e| {
        AnalysisError::Parse(
            e.to_string()
                .trim_start_matches("sql parser error: ")
                .to_string(),
        )
    })?;
    let statement = match statements.len() {
        0 => return Err(AnalysisError::Empty),
        1 => statements.into_iter().next().ok_or(AnalysisError::Empty)?,
        n => return Err(AnalysisError::MultipleStatements(n)),
    };
    if !matches!(statement, Statement::Query(_)) {
        return Err(AnalysisError::UnsupportedStatement {
            kind: statement_kind(&statement),
        });
    }
    let mut collector = TableCollector::default();
    if let ControlFlow::Break(err) = statement.visit(&mut collector) {
        return Err(err);
    }
    let mut tables = BTreeSet::new();
    for name in &collector.relations {
        match resolve(name, catalog)? {
            Resolved::Table(t) => {
                tables.insert(t);
            }
            Resolved::Cte if collector.ctes.contains(&fold_last(name)) => {}
            Resolved::Cte => {
                return Err(AnalysisError::UnknownTable {
                    name: name.to_string(),
                })
            }
        }
    }
    Ok(AnalyzedQuery {
        tables,
        sql: statement.to_string(),
    })
}

enum Resolved {
    Table(String),
    /// Not a catalog table: acceptable only as a CTE name.
    Cte,
}

fn fold_last(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(ObjectNamePart::as_ident)
        .map(|i| i.value.to_ascii_lowercase())
        .unwrap_or_default()
}

/// Resolves a relation name as SQLite would: `table` or `main.table`,
/// ASCII-case-insensitively, quoted or not. A name that is both a CTE and a
/// catalog table is treated as the table: that may over-deny, never leak.
fn resolve(name: &ObjectName, catalog: &Catalog) -> Result<Resolved, AnalysisError> {
    let parts: Vec<&str> = name
        .0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(|i| i.value.as_str())
                .ok_or_else(|| AnalysisError::Unsupported(format!("the relation name `{name}`")))
        })
        .collect::<Result<_, _>>()?;
    let table = match parts.as_slice() {
        [table] => *table,
        [schema, table] if schema.eq_ignore_ascii_case("main") => *table,
        _ => {
            return Err(AnalysisError::UnknownTable {
                name: name.to_string(),
            })
        }
    };
    Ok(match catalog.table(table) {
        Some(t) => Resolved::Table(t.name.clone()),
        None if parts.len() == 1 => Resolved::Cte,
        None => {
            return Err(AnalysisError::UnknownTable {
                name: name.to_string(),
            })
        }
    })
}

/// A short name for a statement's kind, for error messages ("INSERT", "DROP TABLE").
fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    let mut words = text.split_whitespace();
    let first = words.next().unwrap_or("this").to_ascii_uppercase();
    match (first.as_str(), words.next()) {
        ("CREATE" | "DROP" | "ALTER", Some(second)) => {
            format!("{first} {}", second.to_ascii_uppercase())
        }
        _ => first,
    }
}

/// Walks the whole AST: collects every relation name and CTE name, and
/// refuses constructs the analyzer does not govern.
#[derive(Default)]
struct TableCollector {
    relations: Vec<ObjectName>,
    ctes: BTreeSet<String>,
    statements: usize,
}

impl Visitor for TableCollector {
    type Break = AnalysisError;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<AnalysisError> {
        self.statements += 1;
        if self.statements > 1 {
            return ControlFlow::Break(AnalysisError::UnsupportedStatement {
                kind: format!("nested {}", statement_kind(statement)),
            });
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<AnalysisError> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_ascii_lowercase());
            }
        }
        check_set_expr(&query.body)
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<AnalysisError> {
        self.relations.push(relation.clone());
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<AnalysisError> {
        match factor {
            TableFactor::Table { args: None, .. }
            | TableFactor::Derived { .. }
            | TableFactor::NestedJoin { .. } => ControlFlow::Continue(()),
            TableFactor::Table {
                name,
                args: Some(_),
                ..
            } => ControlFlow::Break(AnalysisError::Unsupported(format!(
                "the table-valued function `{name}`"
            ))),
            other => ControlFlow::Break(AnalysisError::Unsupported(format!(
                "the FROM item `{other}`"
            ))),
        }
    }
}

/// Refuses set-expression forms that are not plain reads.
fn check_set_expr(body: &SetExpr) -> ControlFlow<AnalysisError> {
    match body {
        SetExpr::Select(select) => {
            if select.into.is_some() {
                return ControlFlow::Break(AnalysisError::UnsupportedStatement {
                    kind: "SELECT INTO".into(),
                });
            }
            ControlFlow::Continue(())
        }
        SetExpr::Query(_) | SetExpr::Values(_) => ControlFlow::Continue(()),
        SetExpr::SetOperation { left, right, .. } => {
            check_set_expr(left)?;
            check_set_expr(right)
        }
        other => ControlFlow::Break(AnalysisError::Unsupported(format!(
            "the query form `{}`",
            other.to_string().chars().take(40).collect::<String>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ColumnInfo, TableInfo};

    fn catalog() -> Catalog {
        let table = |name: &str| TableInfo {
            name: name.to_string(),
            columns: vec![ColumnInfo {
                name: "id".into(),
                decl_type: "INTEGER".into(),
                primary_key: true,
            }],
        };
        Catalog::new([table("customers"), table("orders"), table("payments")])
    }

    fn tables(sql: &str) -> Vec<String> {
        analyze(sql, &catalog())
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .tables
            .into_iter()
            .collect()
    }

    fn refused(sql: &str) -> AnalysisError {
        analyze(sql, &catalog()).expect_err(sql)
    }

    #[test]
    fn finds_tables_in_every_position() {
        assert_eq!(tables("SELECT id FROM customers"), ["customers"]);
        assert_eq!(tables("SELECT * FROM main.Customers AS c"), ["customers"]);
        assert_eq!(tables("SELECT * FROM \"CUSTOMERS\""), ["customers"]);
        assert_eq!(
            tables("SELECT 1 FROM orders o JOIN customers c ON c.id = o.id"),
            ["customers", "orders"]
        );
        assert_eq!(
            tables("SELECT (SELECT max(id) FROM payments) FROM orders"),
            ["orders", "payments"]
        );
        assert_eq!(
            tables("SELECT id FROM orders WHERE id IN (SELECT id FROM payments)"),
            ["orders", "payments"]
        );
        assert_eq!(
            tables("SELECT id FROM orders WHERE EXISTS (SELECT 1 FROM customers)"),
            ["customers", "orders"]
        );
        assert_eq!(
            tables("SELECT id FROM orders UNION SELECT id FROM payments"),
            ["orders", "payments"]
        );
        assert_eq!(
            tables("SELECT * FROM (SELECT id FROM payments) AS p"),
            ["payments"]
        );
        assert_eq!(tables("SELECT 1"), Vec::<String>::new());
    }

    #[test]
    fn ctes_are_not_tables_but_the_tables_inside_them_are() {
        assert_eq!(
            tables("WITH x AS (SELECT id FROM payments) SELECT * FROM x"),
            ["payments"]
        );
        // A CTE shadowing a table name is still checked as the table: over-deny, never leak.
        assert_eq!(
            tables("WITH customers AS (SELECT 1 AS id) SELECT * FROM customers"),
            ["customers"]
        );
        assert!(matches!(
            refused("WITH x AS (SELECT 1) SELECT * FROM y"),
            AnalysisError::UnknownTable { .. }
        ));
    }

    #[test]
    fn refuses_everything_but_one_select() {
        assert_eq!(refused(""), AnalysisError::Empty);
        assert_eq!(
            refused("SELECT 1; SELECT 2"),
            AnalysisError::MultipleStatements(2)
        );
        assert_eq!(
            refused("SELECT 1; DROP TABLE customers"),
            AnalysisError::MultipleStatements(2)
        );
        for (sql, kind) in [
            ("INSERT INTO customers VALUES (1)", "INSERT"),
            ("DROP TABLE customers", "DROP TABLE"),
            ("UPDATE customers SET id = 2", "UPDATE"),
            ("DELETE FROM customers", "DELETE"),
            ("CREATE TABLE x (a INT)", "CREATE TABLE"),
            ("ATTACH DATABASE 'x.db' AS x", "ATTACH"),
            ("PRAGMA table_info('customers')", "PRAGMA"),
        ] {
            assert_eq!(
                refused(sql),
                AnalysisError::UnsupportedStatement { kind: kind.into() },
                "{sql}"
            );
        }
        // sqlparser cannot parse every PRAGMA form; not understood means refused.
        assert!(matches!(
            refused("PRAGMA table_info(customers)"),
            AnalysisError::Parse(_)
        ));
        assert!(matches!(
            refused("SELEC id FROM customers"),
            AnalysisError::Parse(_)
        ));
    }

    #[test]
    fn refuses_catalogs_unknown_tables_and_table_functions() {
        for sql in [
            "SELECT * FROM sqlite_master",
            "SELECT * FROM sqlite_schema",
            "SELECT * FROM temp.customers",
            "SELECT * FROM other.customers",
            "SELECT * FROM customer",
        ] {
            assert!(
                matches!(refused(sql), AnalysisError::UnknownTable { .. }),
                "{sql}"
            );
        }
        for sql in [
            "SELECT * FROM pragma_table_info('customers')",
            "SELECT * FROM json_each('[1]')",
        ] {
            assert!(
                matches!(refused(sql), AnalysisError::Unsupported(_)),
                "{sql}: {:?}",
                refused(sql)
            );
        }
    }

    #[test]
    fn runs_the_reserialized_statement() {
        let q = analyze("SELECT id /* x */ FROM customers -- trailing", &catalog()).unwrap();
        assert_eq!(q.sql, "SELECT id FROM customers");
    }

    #[test]
    fn deeply_nested_input_is_an_error_not_a_crash() {
        let sql = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(matches!(refused(&sql), AnalysisError::Parse(_)));
    }
}
