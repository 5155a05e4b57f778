//! SQL analysis: parse exactly one read-only statement, resolve every name
//! through its scopes, and rewrite every base table into its policy view
//! ([`resolve`]). Anything not understood is refused, never passed through.
//!
//! What runs on the backend is the rewritten AST, serialized, never the
//! client's text, so the backend executes exactly what was analyzed
//! (comment and whitespace tricks that parse differently there cannot
//! smuggle anything past).

pub mod fingerprint;
mod functions;
pub mod resolve;

use std::sync::{Arc, OnceLock};

use sqlparser::ast::Statement;
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};

pub use functions::is_allowed as function_allowed;
pub use resolve::{
    blind_index_alias, AccessOracle, ColumnRef, DeniedColumn, Lineage, OutputLineage, PreparedView,
    Resolved, RowFilter, SealedOutput, SubjectColumns, TableView, Usage, ViewColumn,
    SEALED_SEPARATOR,
};

use crate::cache::BoundedCache;
use crate::catalog::Catalog;
use crate::masks::Dialect;

/// A statement that passed analysis, rewritten with policy views.
#[derive(Debug, Clone)]
pub struct AnalyzedQuery {
    /// The SQL to run: the rewritten AST, serialized.
    pub sql: String,
    pub resolved: Resolved,
    /// The client's text as the audit log shows it, computed on first use
    /// (analyses are cached, so a repeated statement is fingerprinted once).
    fingerprint: OnceLock<Option<String>>,
}

impl AnalyzedQuery {
    /// The literal-free fingerprint of `text`, the SQL this analysis is of.
    pub fn fingerprint(&self, text: &str, dialect: Dialect, catalog: &Catalog) -> Option<String> {
        self.fingerprint
            .get_or_init(|| {
                fingerprint::fingerprint(text, dialect, fingerprint::Names::Resolved, catalog)
            })
            .clone()
    }
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
    #[error("unknown column `{name}`")]
    UnknownColumn { name: String },
    #[error("the column name `{name}` is ambiguous: qualify it with a table name or alias")]
    AmbiguousColumn { name: String },
    #[error("the function `{name}` is not allowed in governed queries")]
    FunctionNotAllowed { name: String },
    /// A policy decision: the table or column may not be used this way.
    #[error("{message}")]
    Denied {
        table: String,
        column: Option<String>,
        message: String,
        policy_ids: Vec<String>,
    },
}

/// Parses `sql` (SQLite dialect), resolves every name against `catalog`,
/// asks `oracle` what the principal may see of each table read, and rewrites
/// each base-table reference into its policy view.
pub fn analyze(
    sql: &str,
    catalog: &Catalog,
    oracle: impl AccessOracle,
    dialect: Dialect,
) -> Result<AnalyzedQuery, AnalysisError> {
    let statements = parse_cached(sql, dialect)?;
    let statement = match statements.len() {
        0 => return Err(AnalysisError::Empty),
        1 => statements[0].clone(),
        n => return Err(AnalysisError::MultipleStatements(n)),
    };
    let Statement::Query(mut query) = statement else {
        return Err(AnalysisError::UnsupportedStatement {
            kind: statement_kind(&statement),
        });
    };
    let resolved = resolve::Resolver::new(catalog, oracle, dialect).run(&mut query)?;
    Ok(AnalyzedQuery {
        sql: query.to_string(),
        resolved,
        fingerprint: OnceLock::new(),
    })
}

/// Exactly one statement, parsed (through the parse cache) with the same
/// tokenizer rules as queries: operator bound, reserved names, PostgreSQL
/// case folding.
pub fn parse_one(sql: &str, dialect: Dialect) -> Result<Statement, AnalysisError> {
    let statements = parse_cached(sql, dialect)?;
    match statements.len() {
        0 => Err(AnalysisError::Empty),
        1 => Ok(statements[0].clone()),
        n => Err(AnalysisError::MultipleStatements(n)),
    }
}

/// Parsed statements by exact SQL text. Services send the same statements
/// again and again, and parsing is the largest cost of analysis (sqlparser
/// takes ~40 µs for a 3-way join with GROUP BY). Only the parser's output is
/// cached here, shared by every principal; whole analyses (decisions and
/// rewrite) are cached per principal and context inside the policy snapshot
/// (`Policies::analysis`). Bounded: cleared when full; long texts skipped.
/// A parse is valid for one dialect and one exact text.
type ParseKey = (Dialect, String);

const PARSE_CACHE_ENTRIES: usize = 1024;
const PARSE_CACHE_MAX_SQL: usize = 8 * 1024;

static PARSE_CACHE: OnceLock<BoundedCache<ParseKey, Arc<Vec<Statement>>>> = OnceLock::new();

fn parse_cached(sql: &str, dialect: Dialect) -> Result<Arc<Vec<Statement>>, AnalysisError> {
    if sql.len() > PARSE_CACHE_MAX_SQL {
        return parse(sql, dialect).map(Arc::new);
    }
    PARSE_CACHE
        .get_or_init(|| BoundedCache::new(PARSE_CACHE_ENTRIES))
        .get_or_try_insert((dialect, sql.to_string()), || {
            parse(sql, dialect).map(Arc::new)
        })
}

/// Empties the parse cache (benchmarks measure the uncached path with it).
pub fn clear_parse_cache() {
    if let Some(cache) = PARSE_CACHE.get() {
        cache.clear();
    }
}

/// Tokenizes once, bounds the operator count, and parses the same tokens.
///
/// For PostgreSQL, unquoted identifiers are folded to lower case here, as
/// PostgreSQL folds them, and compared exactly from then on: `Customers`
/// and `customers` are one name, `"Customers"` another. Comparing
/// case-insensitively instead would let `WITH "Customers" AS (...) SELECT *
/// FROM customers` look like a read of the CTE to the analyzer and of the
/// real table to PostgreSQL.
fn parse(sql: &str, dialect: Dialect) -> Result<Vec<Statement>, AnalysisError> {
    let mut tokens = match dialect {
        Dialect::Sqlite => Tokenizer::new(&SQLiteDialect {}, sql).tokenize_with_location(),
        Dialect::Postgres => Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize_with_location(),
    }
    .map_err(|e| AnalysisError::Parse(e.to_string()))?;
    check_complexity(&tokens)?;
    check_reserved(&tokens)?;
    if dialect == Dialect::Postgres {
        for token in &mut tokens {
            if let Token::Word(word) = &mut token.token {
                if word.quote_style.is_none() {
                    word.value.make_ascii_lowercase();
                }
            }
        }
    }
    let parser = match dialect {
        Dialect::Sqlite => Parser::new(&SQLiteDialect {}),
        Dialect::Postgres => Parser::new(&PostgreSqlDialect {}),
    };
    parser
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .map_err(|e| {
            AnalysisError::Parse(
                e.to_string()
                    .trim_start_matches("sql parser error: ")
                    .to_string(),
            )
        })
}

/// Whether `name` is reserved for the names the rewrite generates (hidden
/// subject-key columns, subquery aliases): it starts with `privet_`, in any
/// case. A query that could write one could, say, NATURAL JOIN on a hidden
/// raw key, so no query may define one.
pub fn is_reserved_name(name: &str) -> bool {
    name.get(..7)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("privet_"))
}

/// Refuses reserved names ([`is_reserved_name`]) wherever a query could
/// define one.
fn check_reserved(tokens: &[TokenWithSpan]) -> Result<(), AnalysisError> {
    for (i, token) in tokens.iter().enumerate() {
        let Token::Word(word) = &token.token else {
            continue;
        };
        if !is_reserved_name(&word.value) {
            continue;
        }
        let next = tokens[i + 1..]
            .iter()
            .find(|t| !matches!(t.token, Token::Whitespace(_)))
            .map(|t| &t.token);
        if next == Some(&Token::Period) {
            // A qualifier (`privet_prod.customers`), never a definition: the
            // analyzer checks schemas against the catalog and refuses
            // columns of relations so named.
            continue;
        }
        return Err(if next == Some(&Token::LParen) {
            // Privet's internal SQL functions (the pseudonym) are never callable.
            AnalysisError::FunctionNotAllowed {
                name: word.value.clone(),
            }
        } else {
            AnalysisError::Unsupported(format!(
                "the name `{}`: names starting with `privet_` are reserved for the gateway",
                word.value
            ))
        });
    }
    Ok(())
}

/// Operators (and AND/OR) one statement may contain. sqlparser bounds
/// nesting, but a flat chain `a OR b OR c ...` parses iteratively into an AST
/// as deep as it is long, and every recursive walk of it (ours, and
/// sqlparser's clone, print and drop) needs stack in proportion. Counting
/// tokens first, without recursion, bounds that depth.
pub const MAX_OPERATORS: usize = 1000;

/// Stack for threads that analyze SQL (runtime workers, the CLI). With
/// [`MAX_OPERATORS`] it leaves headroom even in unoptimized builds, whose
/// stack frames are several times larger.
pub const ANALYSIS_STACK_BYTES: usize = 16 << 20;

fn check_complexity(tokens: &[TokenWithSpan]) -> Result<(), AnalysisError> {
    use sqlparser::keywords::Keyword;
    let operators = tokens
        .iter()
        .filter(|t| match &t.token {
            Token::Word(w) => matches!(w.keyword, Keyword::AND | Keyword::OR | Keyword::NOT),
            Token::Whitespace(_)
            | Token::Number(..)
            | Token::SingleQuotedString(_)
            | Token::DoubleQuotedString(_)
            | Token::Comma
            | Token::LParen
            | Token::RParen
            | Token::Period
            | Token::SemiColon
            | Token::EOF => false,
            _ => true,
        })
        .count();
    if operators > MAX_OPERATORS {
        return Err(AnalysisError::Unsupported(format!(
            "a statement with {operators} operators (the limit is {MAX_OPERATORS}); split the query or use IN (...) lists"
        )));
    }
    Ok(())
}

/// A short name for a statement's kind, for error messages ("INSERT", "DROP TABLE").
pub fn statement_kind(statement: &Statement) -> String {
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

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;

    use super::*;
    use crate::catalog::{ColumnInfo, TableInfo};
    use crate::masks::Mask;

    fn catalog() -> Catalog {
        Catalog::new(test_tables())
    }

    /// The same tables in PostgreSQL schema `public`.
    fn pg_catalog() -> Catalog {
        Catalog::postgres("public", test_tables()).unwrap()
    }

    fn test_tables() -> Vec<TableInfo> {
        let table = |name: &str, columns: &[&str]| TableInfo {
            name: name.to_string(),
            columns: columns
                .iter()
                .map(|c| ColumnInfo {
                    name: c.to_string(),
                    decl_type: "TEXT".into(),
                    primary_key: *c == "id",
                })
                .collect(),
        };
        vec![
            table("customers", &["id", "email", "phone", "region", "opt_in"]),
            table("orders", &["id", "customer_id", "total"]),
            table("payments", &["id", "order_id", "card"]),
        ]
    }

    /// A test policy: per table, column → Some(mask) visible / None denied;
    /// `no_filter` columns may not be filtered on; an optional row filter.
    #[derive(Default)]
    struct Policy {
        masks: BTreeMap<&'static str, Mask>,
        denied: BTreeSet<&'static str>,
        no_filter: BTreeSet<&'static str>,
        forbidden_tables: BTreeSet<&'static str>,
        row_filter: Option<(&'static str, &'static str)>,
    }

    impl AccessOracle for &Policy {
        fn view(&mut self, table: &TableInfo) -> Result<Arc<TableView>, AnalysisError> {
            if self.forbidden_tables.contains(table.name.as_str()) {
                return Err(AnalysisError::Denied {
                    table: table.name.clone(),
                    column: None,
                    message: format!("table {} denied", table.name),
                    policy_ids: vec!["p".into()],
                });
            }
            let key = |c: &str| format!("{}.{c}", table.name);
            let mut columns = Vec::new();
            let mut denied = Vec::new();
            for c in &table.columns {
                let k = key(&c.name);
                if self.denied.contains(k.as_str()) {
                    denied.push(DeniedColumn {
                        name: c.name.clone(),
                        reason: "no policy permits it".into(),
                        policy_ids: vec![],
                    });
                } else {
                    columns.push(ViewColumn {
                        name: c.name.clone(),
                        mask: self.masks.get(k.as_str()).copied(),
                        may_filter: !self.no_filter.contains(k.as_str()),
                        policy_ids: vec![],
                        domain: k.clone(),
                        encrypted: false,
                    });
                }
            }
            let row_filter = self
                .row_filter
                .filter(|(t, _)| *t == table.name)
                .map(|(_, f)| RowFilter {
                    predicate: Parser::new(&SQLiteDialect {})
                        .try_with_sql(f)
                        .unwrap()
                        .parse_expr()
                        .unwrap(),
                    attributes: BTreeMap::from([("region".to_string(), "EU".to_string())]),
                    policy_ids: vec!["rf".into()],
                });
            Ok(Arc::new(TableView {
                table: table.name.clone(),
                policy_ids: vec![],
                columns,
                denied,
                row_filter,
                prebuilt: std::sync::OnceLock::new(),
            }))
        }
    }

    fn run(sql: &str, policy: &Policy) -> Result<AnalyzedQuery, AnalysisError> {
        analyze(sql, &catalog(), policy, Dialect::Sqlite)
    }

    fn tables(sql: &str) -> Vec<String> {
        run(sql, &Policy::default())
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .resolved
            .tables
            .into_iter()
            .collect()
    }

    fn refused(sql: &str) -> AnalysisError {
        run(sql, &Policy::default()).expect_err(sql)
    }

    fn col(table: &str, column: &str) -> ColumnRef {
        ColumnRef {
            table: table.into(),
            column: column.into(),
        }
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
    fn ctes_shadow_tables_and_the_tables_inside_them_are_read() {
        assert_eq!(
            tables("WITH x AS (SELECT id FROM payments) SELECT * FROM x"),
            ["payments"]
        );
        // As in SQLite, a CTE named like a table shadows it: no table is read.
        assert_eq!(
            tables("WITH customers AS (SELECT 1 AS email) SELECT email FROM customers"),
            Vec::<String>::new()
        );
        // ...but `main.customers` is the table.
        assert_eq!(
            tables("WITH customers AS (SELECT 1 AS email) SELECT email FROM main.customers"),
            ["customers"]
        );
        assert!(matches!(
            refused("WITH x AS (SELECT 1) SELECT * FROM y"),
            AnalysisError::UnknownTable { .. }
        ));
        assert!(matches!(
            refused(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT * FROM n"
            ),
            AnalysisError::Unsupported(_)
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
    fn refuses_catalogs_unknown_names_functions_and_table_functions() {
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
        for sql in [
            "SELECT load_extension('x')",
            "SELECT sqlite_version()",
            "SELECT privet_pseudonym('customers.id', 42)",
            "SELECT readfile('/etc/passwd')",
        ] {
            assert!(
                matches!(refused(sql), AnalysisError::FunctionNotAllowed { .. }),
                "{sql}"
            );
        }
        assert!(matches!(
            refused("SELECT nope FROM customers"),
            AnalysisError::UnknownColumn { .. }
        ));
        assert!(matches!(
            refused("SELECT id FROM customers c JOIN orders o ON o.customer_id = c.id"),
            AnalysisError::AmbiguousColumn { .. }
        ));
        assert!(matches!(
            refused("SELECT id FROM customers WHERE id = ?"),
            AnalysisError::Unsupported(_)
        ));
    }

    #[test]
    fn lineage_and_uses_follow_names_through_every_scope() {
        let q = run(
            "WITH big AS (SELECT customer_id AS who, total FROM orders WHERE total > 100) \
             SELECT c.email, lower(c.region) AS r, b.total FROM customers c JOIN big b ON b.who = c.id \
             WHERE c.opt_in = 1 ORDER BY r",
            &Policy::default(),
        )
        .unwrap();
        let outputs = &q.resolved.outputs;
        assert_eq!(outputs[0].name, "email");
        assert_eq!(outputs[0].lineage.direct, Some(col("customers", "email")));
        assert_eq!(outputs[1].lineage.direct, None);
        assert_eq!(
            outputs[1].lineage.sources,
            BTreeSet::from([col("customers", "region")])
        );
        assert_eq!(outputs[2].lineage.direct, Some(col("orders", "total")));
        let uses = &q.resolved.uses;
        // Projected inside the CTE (as `who`), joined on outside.
        assert_eq!(
            uses[&col("orders", "customer_id")],
            BTreeSet::from([Usage::Projection, Usage::Join])
        );
        assert_eq!(
            uses[&col("orders", "total")],
            BTreeSet::from([Usage::Predicate, Usage::Projection])
        );
        assert_eq!(
            uses[&col("customers", "region")],
            BTreeSet::from([Usage::Projection, Usage::FunctionArg, Usage::Order])
        );
        assert_eq!(
            uses[&col("customers", "opt_in")],
            BTreeSet::from([Usage::Predicate])
        );
        assert_eq!(uses[&col("customers", "id")], BTreeSet::from([Usage::Join]));
    }

    #[test]
    fn star_expands_to_visible_columns_only() {
        let policy = Policy {
            denied: BTreeSet::from(["customers.phone"]),
            ..Policy::default()
        };
        let q = run("SELECT * FROM customers", &policy).unwrap();
        let names: Vec<_> = q.resolved.outputs.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["id", "email", "region", "opt_in"]);
        assert!(!q.sql.contains("phone"), "{}", q.sql);
        assert!(
            q.sql
                .starts_with("SELECT customers.\"id\", customers.\"email\""),
            "{}",
            q.sql
        );
    }

    #[test]
    fn denied_columns_are_refused_wherever_referenced() {
        let policy = Policy {
            denied: BTreeSet::from(["customers.phone"]),
            ..Policy::default()
        };
        for sql in [
            "SELECT phone FROM customers",
            "SELECT c.phone FROM customers c",
            "SELECT id FROM customers WHERE phone LIKE '+44%'",
            "SELECT id FROM customers ORDER BY phone",
            "SELECT count(*) FROM customers GROUP BY phone",
            "SELECT (SELECT max(phone) FROM customers) FROM orders",
            "SELECT id FROM orders o WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = o.customer_id AND c.phone > '')",
            "WITH x AS (SELECT phone FROM customers) SELECT * FROM x",
        ] {
            match run(sql, &policy) {
                Err(AnalysisError::Denied { table, column, .. }) => {
                    assert_eq!((table.as_str(), column.as_deref()), ("customers", Some("phone")), "{sql}");
                }
                other => panic!("{sql}: {other:?}"),
            }
        }
    }

    #[test]
    fn filtering_needs_the_filter_permission() {
        let policy = Policy {
            masks: BTreeMap::from([("customers.email", Mask::EmailPartial)]),
            no_filter: BTreeSet::from(["customers.email"]),
            ..Policy::default()
        };
        assert!(run("SELECT email, upper(email) FROM customers", &policy).is_ok());
        for sql in [
            "SELECT id FROM customers WHERE email LIKE 'a%'",
            "SELECT id FROM customers ORDER BY email",
            "SELECT email, count(*) FROM customers GROUP BY email",
            "SELECT c.id FROM customers c JOIN orders o ON o.id = length(c.email)",
            "SELECT row_number() OVER (ORDER BY email) FROM customers",
            "SELECT e FROM (SELECT lower(email) AS e FROM customers) WHERE e > 'm'",
            "SELECT id FROM customers WHERE id IN (SELECT length(email) FROM customers)",
            "SELECT email AS e FROM customers ORDER BY e",
            "SELECT email FROM customers ORDER BY 1",
            "SELECT CASE WHEN email LIKE 'a%' THEN 1 ELSE 0 END FROM customers",
        ] {
            match run(sql, &policy) {
                Err(AnalysisError::Denied {
                    column, message, ..
                }) => {
                    assert_eq!(column.as_deref(), Some("email"), "{sql}");
                    assert!(message.contains("filter"), "{sql}: {message}");
                }
                other => panic!("{sql}: {other:?}"),
            }
        }
    }

    #[test]
    fn views_mask_filter_rows_and_bind_attributes() {
        let policy = Policy {
            masks: BTreeMap::from([("customers.email", Mask::EmailPartial)]),
            denied: BTreeSet::from(["customers.phone"]),
            row_filter: Some(("customers", "region = principal.region")),
            ..Policy::default()
        };
        let q = run("SELECT c.email FROM customers AS c WHERE c.id = 7", &policy).unwrap();
        assert_eq!(q.resolved.params, ["EU"]);
        assert!(
            q.sql
                .contains("FROM \"main\".\"customers\" WHERE (region = ?1)) AS c"),
            "{}",
            q.sql
        );
        assert!(
            q.sql.contains("AS \"email\""),
            "masked in the view: {}",
            q.sql
        );
        assert!(
            !q.sql.contains("phone") && !q.sql.contains("EU"),
            "{}",
            q.sql
        );
        // The user's alias keeps outer references working; a bare table keeps its name.
        let q = run("SELECT customers.id FROM customers", &policy).unwrap();
        assert!(q.sql.ends_with(") AS customers"), "{}", q.sql);
    }

    #[test]
    fn forbidden_tables_are_refused_wherever_they_hide() {
        let policy = Policy {
            forbidden_tables: BTreeSet::from(["payments"]),
            ..Policy::default()
        };
        for sql in [
            "SELECT * FROM payments",
            "SELECT id FROM orders WHERE id IN (SELECT order_id FROM payments)",
            "SELECT id FROM orders UNION SELECT id FROM payments",
            "WITH p AS (SELECT card FROM payments) SELECT 1",
            "SELECT (SELECT count(*) FROM main.payments)",
        ] {
            assert!(
                matches!(run(sql, &policy), Err(AnalysisError::Denied { .. })),
                "{sql}"
            );
        }
    }

    /// Pseudonyms are computed inside the view on both backends, so every
    /// use of the token (joins, grouping, comparisons) sees only tokens. On
    /// PostgreSQL the key comes from a session setting, never the statement.
    #[test]
    fn pseudonyms_are_computed_in_the_view_on_both_backends() {
        let policy = Policy {
            masks: BTreeMap::from([("orders.customer_id", Mask::Pseudonym)]),
            ..Policy::default()
        };
        for mask in Mask::ALL {
            for dialect in [Dialect::Sqlite, Dialect::Postgres] {
                assert!(
                    crate::masks::computed_in_sql(mask, dialect),
                    "{mask} {dialect:?}"
                );
            }
        }
        let sql = "SELECT customer_id FROM orders WHERE customer_id = 'tok_x' GROUP BY customer_id";
        let pg = analyze(sql, &pg_catalog(), &policy, Dialect::Postgres).unwrap();
        assert!(
            pg.sql.contains("current_setting('privet.pseudonym_")
                && pg.sql.contains("FROM \"public\".\"orders\""),
            "{}",
            pg.sql
        );
        assert_eq!(
            pg.resolved.pseudonym_domains(),
            std::collections::BTreeSet::from(["orders.customer_id".to_string()])
        );
        let sqlite = analyze(sql, &catalog(), &policy, Dialect::Sqlite).unwrap();
        assert!(
            sqlite.sql.contains("privet_pseudonym('orders.customer_id'"),
            "{}",
            sqlite.sql
        );
    }

    /// PostgreSQL folds unquoted names to lower case and keeps quoted ones:
    /// a quoted CTE name that differs in case does not shadow the table.
    #[test]
    fn postgres_names_fold_like_postgresql() {
        let policy = Policy::default();
        let pg = |sql: &str| analyze(sql, &pg_catalog(), &policy, Dialect::Postgres);
        let q = pg("WITH \"Orders\" AS (SELECT 1 AS id) SELECT id FROM ORDERS").unwrap();
        assert!(
            q.sql.contains("FROM \"public\".\"orders\""),
            "the view applies: {}",
            q.sql
        );
        assert!(matches!(
            pg("SELECT id FROM main.orders"),
            Err(AnalysisError::UnknownTable { .. })
        ));
        assert!(matches!(
            pg("SELECT id FROM \"ORDERS\""),
            Err(AnalysisError::UnknownTable { .. })
        ));
        assert!(pg("SELECT ID FROM Orders").is_ok());
        assert!(matches!(
            pg("SELECT current_setting('x') FROM orders"),
            Err(AnalysisError::FunctionNotAllowed { .. })
        ));
        assert!(matches!(
            pg("SELECT CAST(id AS regclass) FROM orders"),
            Err(AnalysisError::Unsupported(_))
        ));
    }

    /// The parse cache holds parser output only: the same text analyzed for
    /// two principals gets each principal's own views.
    #[test]
    fn the_parse_cache_never_carries_decisions() {
        let sql = "SELECT id, email FROM customers WHERE id < 100";
        let plain = run(sql, &Policy::default()).unwrap();
        let masked = run(
            sql,
            &Policy {
                masks: BTreeMap::from([("customers.email", Mask::EmailPartial)]),
                ..Policy::default()
            },
        )
        .unwrap();
        let forbidden = run(
            sql,
            &Policy {
                forbidden_tables: BTreeSet::from(["customers"]),
                ..Policy::default()
            },
        );
        assert!(!plain.sql.contains("***"), "{}", plain.sql);
        assert!(masked.sql.contains("***"), "{}", masked.sql);
        assert!(matches!(forbidden, Err(AnalysisError::Denied { .. })));
        assert!(
            run("SELECT 1; SELECT 2", &Policy::default()).is_err(),
            "errors are not cached as success"
        );
        assert!(run("SELECT 1; SELECT 2", &Policy::default()).is_err());
    }

    #[test]
    fn deeply_nested_input_is_an_error_not_a_crash() {
        let sql = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(matches!(refused(&sql), AnalysisError::Parse(_)));
        // Long flat chains are as deep as they are long once parsed.
        let chain = format!(
            "SELECT id FROM customers WHERE {}",
            vec!["id = 1"; 2000].join(" OR ")
        );
        assert!(
            matches!(refused(&chain), AnalysisError::Unsupported(m) if m.contains("operators"))
        );
        let sum = format!("SELECT {}", vec!["1"; 5000].join(" + "));
        assert!(matches!(refused(&sum), AnalysisError::Unsupported(_)));
        // Just under the limit is analyzed on a thread of the stack size the
        // server and the CLI use.
        let ok = format!(
            "SELECT id FROM customers WHERE {}",
            vec!["1"; MAX_OPERATORS].join(" + ")
        );
        std::thread::Builder::new()
            .stack_size(ANALYSIS_STACK_BYTES)
            .spawn(move || run(&ok, &Policy::default()).map(|q| q.sql.len()))
            .unwrap()
            .join()
            .expect("no stack overflow")
            .unwrap();
        // Long IN lists are flat vectors, not deep: fine.
        let list = format!(
            "SELECT id FROM customers WHERE id IN ({})",
            vec!["1"; 20000].join(", ")
        );
        run(&list, &Policy::default()).unwrap();
    }

    #[test]
    fn a_cte_named_like_a_table_cannot_stand_in_for_it_inside_views() {
        let policy = Policy {
            masks: BTreeMap::from([("orders.customer_id", Mask::Pseudonym)]),
            row_filter: Some((
                "orders",
                "customer_id IN (SELECT id FROM customers WHERE region = principal.region)",
            )),
            ..Policy::default()
        };
        let q = run(
            "WITH orders AS (SELECT 1 AS id, 42 AS customer_id, 0 AS total), customers AS (SELECT 42 AS id, 'EU' AS region) \
             SELECT customer_id FROM main.orders",
            &policy,
        )
        .unwrap();
        assert!(q.sql.contains("FROM \"main\".\"orders\""), "{}", q.sql);
        assert!(
            q.sql
                .contains("SELECT id FROM \"main\".\"customers\" WHERE region = ?1"),
            "{}",
            q.sql
        );
        assert!(
            !q.sql.contains("FROM \"orders\"") && !q.sql.contains("FROM customers"),
            "{}",
            q.sql
        );
    }

    /// The test catalog with customer ids as subject keys.
    fn keyed_catalog() -> Catalog {
        let config = crate::config::Config::parse(
            std::path::Path::new("p.toml"),
            "[classification]\n\
             \"customers.id\" = { category = \"identifier\", domain = \"customer\" }\n\
             \"orders.customer_id\" = { category = \"identifier\", domain = \"customer\" }\n",
        )
        .unwrap();
        let mut catalog = catalog();
        catalog.set_subject_keys(&config);
        catalog
    }

    fn subjects(sql: &str, policy: &Policy) -> (SubjectColumns, String) {
        let q = analyze(sql, &keyed_catalog(), policy, Dialect::Sqlite)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        (q.resolved.subjects, q.sql)
    }

    fn keys(positions: &[usize]) -> Vec<(usize, String)> {
        positions.iter().map(|&i| (i, "customer".into())).collect()
    }

    #[test]
    fn row_level_queries_get_hidden_raw_keys_even_when_the_key_is_not_asked_for() {
        // customers.id denied: the raw key is still read, inside the view
        // under a reserved name, and appended after the outputs.
        let policy = Policy {
            denied: BTreeSet::from(["customers.id"]),
            ..Policy::default()
        };
        let (s, sql) = subjects("SELECT email FROM customers WHERE region = 'EU'", &policy);
        assert_eq!((s.keys, s.hidden, s.incomplete), (keys(&[1]), 1, false));
        assert!(sql.contains("\"id\" AS \"privet_subject_1\""), "{sql}");
        assert!(sql.contains("customers.\"privet_subject_1\" FROM"), "{sql}");

        // Every relation of a join contributes its keys.
        let (s, _) = subjects(
            "SELECT c.email, o.total FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY 2 LIMIT 5",
            &Policy::default(),
        );
        assert_eq!((s.keys, s.hidden, s.incomplete), (keys(&[2, 3]), 2, false));

        // Window functions keep rows: still row-level.
        let (s, _) = subjects(
            "SELECT email, count(*) OVER () FROM customers",
            &Policy::default(),
        );
        assert_eq!((s.hidden, s.incomplete), (1, false));

        // A derived table passes its key through by name.
        let (s, sql) = subjects(
            "SELECT t.email FROM (SELECT id, email FROM customers) t",
            &Policy::default(),
        );
        assert_eq!((s.keys, s.hidden, s.incomplete), (keys(&[1]), 1, false));
        assert!(sql.ends_with("t.\"id\" FROM (SELECT id, email FROM (SELECT \"id\", \"email\", \"phone\", \"region\", \"opt_in\" FROM \"main\".\"customers\") AS customers) AS t"), "{sql}");

        // Tables without subjects need nothing.
        let (s, _) = subjects("SELECT card FROM payments", &Policy::default());
        assert_eq!((s.keys, s.hidden, s.incomplete), (vec![], 0, false));
    }

    #[test]
    fn results_no_key_names_are_marked_incomplete() {
        for sql in [
            "SELECT region, count(*) FROM customers GROUP BY region",
            "SELECT DISTINCT email FROM customers",
            "SELECT email FROM customers UNION SELECT email FROM customers",
            "SELECT t.email FROM (SELECT email FROM customers) t",
            "SELECT max(email) FROM customers",
        ] {
            let (s, _) = subjects(sql, &Policy::default());
            assert!(s.incomplete, "{sql}");
            assert_eq!(s.hidden, 0, "{sql}");
        }
        // A scalar subquery returns a customer's email in rows keyed by orders.
        let (s, _) = subjects(
            "SELECT total, (SELECT email FROM customers WHERE id = 1) FROM orders",
            &Policy::default(),
        );
        assert_eq!((s.keys, s.hidden, s.incomplete), (keys(&[2]), 1, true));
        // Aggregates without a subject's data are not.
        let (s, _) = subjects("SELECT count(*) FROM customers", &Policy::default());
        assert_eq!((s.keys, s.hidden, s.incomplete), (vec![], 0, false));
        // Grouped by the key: the output key names every row.
        let (s, _) = subjects(
            "SELECT customer_id, sum(total) FROM orders GROUP BY customer_id",
            &Policy::default(),
        );
        assert_eq!((s.keys, s.hidden, s.incomplete), (keys(&[0]), 0, false));
        // A key under a mask other than the pseudonym names nobody.
        let policy = Policy {
            masks: BTreeMap::from([("customers.id", Mask::Redact)]),
            ..Policy::default()
        };
        let (s, _) = subjects("SELECT DISTINCT id, email FROM customers", &policy);
        assert_eq!((s.keys, s.incomplete), (vec![], true));
        let (s, _) = subjects(
            "SELECT DISTINCT id, email FROM customers",
            &Policy::default(),
        );
        assert_eq!((s.keys, s.incomplete), (keys(&[0]), false));
    }

    #[test]
    fn reserved_names_are_refused_wherever_they_appear() {
        for sql in [
            "SELECT * FROM customers NATURAL JOIN (SELECT 1 AS privet_subject_1) t",
            "SELECT 1 AS \"Privet_Subject_2\" FROM customers",
            "WITH privet_x AS (SELECT 1 AS a) SELECT a FROM privet_x",
            "SELECT c.email FROM customers privet_subquery_1 JOIN customers c ON 1 = 1",
            "SELECT t.a FROM (SELECT 1) AS t(privet_subject_1)",
        ] {
            assert!(
                matches!(run(sql, &Policy::default()), Err(AnalysisError::Unsupported(m)) if m.contains("reserved")),
                "{sql}"
            );
        }
        // As a qualifier the name is only looked up: a schema of that name
        // is the catalog's or unknown, a generated alias is not readable.
        assert!(matches!(
            run(
                "SELECT email FROM privet_prod.customers",
                &Policy::default()
            ),
            Err(AnalysisError::UnknownTable { .. })
        ));
        assert!(matches!(
            run(
                "SELECT privet_subquery_1.email FROM (SELECT email FROM customers)",
                &Policy::default()
            ),
            Err(AnalysisError::UnknownColumn { .. })
        ));
    }

    #[test]
    fn postgres_statements_bind_compared_literals_keeping_their_types() {
        let policy = Policy {
            row_filter: Some(("customers", "region = principal.region AND opt_in = 1")),
            ..Policy::default()
        };
        let pg = |sql: &str, policy: &Policy| {
            analyze(sql, &pg_catalog(), policy, Dialect::Postgres).unwrap()
        };
        let q = pg(
            "SELECT email FROM customers WHERE id = 42 AND email IN ('a', 'b') \
             AND id BETWEEN 1 AND 99999999999 AND id < 1.5 AND 7 = 7",
            &policy,
        );
        // The row filter's attribute first, then every bound literal in order.
        assert_eq!(
            q.resolved.params,
            ["EU", "1", "42", "a", "b", "1", "99999999999"],
            "{}",
            q.sql
        );
        for part in [
            "region = $1 AND opt_in = CAST($2 AS INTEGER)",
            "id = CAST($3 AS INTEGER)",
            "email IN ($4, $5)",
            "id BETWEEN CAST($6 AS INTEGER) AND CAST($7 AS BIGINT)",
            // A decimal keeps its numeric literal; no column, no binding.
            "id < 1.5 AND 7 = 7",
        ] {
            assert!(q.sql.contains(part), "{part}: {}", q.sql);
        }
        // Statements differing only in compared values are one statement.
        let other = pg(
            "SELECT email FROM customers WHERE id = 43 AND email IN ('c', 'd') \
             AND id BETWEEN 2 AND 99999999998 AND id < 1.5 AND 7 = 7",
            &policy,
        );
        assert_eq!(other.sql, q.sql);
        // SQLite keeps its literals: bound text would compare differently
        // against values without affinity.
        // A huge IN list stays within PostgreSQL's parameter limit.
        let ids: Vec<String> = (0..12_000).map(|i| i.to_string()).collect();
        let huge = pg(
            &format!(
                "SELECT email FROM customers WHERE id IN ({})",
                ids.join(", ")
            ),
            &Policy::default(),
        );
        assert_eq!(huge.resolved.params.len(), 10_000);
        assert!(
            huge.sql.ends_with("11998, 11999)"),
            "{}",
            &huge.sql[huge.sql.len() - 40..]
        );
        let sqlite = run(
            "SELECT email FROM customers WHERE id = 42",
            &Policy::default(),
        )
        .unwrap();
        assert!(sqlite.sql.ends_with("WHERE id = 42"), "{}", sqlite.sql);
    }
}
