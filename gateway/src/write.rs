//! INSERT and UPDATE through the gateway, in the narrow shapes a service
//! needs, so every write is authorized per table and column and every
//! encrypted column is encrypted (and its blind index kept) on the way in.
//!
//! Accepted, and nothing else (fail closed):
//! - `INSERT INTO t (c1, c2, ...) VALUES (literal, ...), (...)`: an
//!   explicit column list, literal values only;
//! - `UPDATE t SET c = literal, ... WHERE pk = literal`: one row, by its
//!   single-column primary key (ciphertexts are bound to it).
//!
//! No subqueries, RETURNING, ON CONFLICT, DEFAULT or expressions: a write
//! that could read data would need the read path's policy views. The
//! statement the backend runs is built here from the parsed parts, with
//! every value bound as a parameter.

use std::collections::BTreeSet;

use sqlparser::ast::{
    AssignmentTarget, BinaryOperator, Expr, ObjectName, SetExpr, Statement, TableFactor,
    TableObject, UnaryOperator, Value,
};

use crate::catalog::{Catalog, TableInfo};
use crate::masks::Dialect;
use crate::sql::AnalysisError;

/// The kind of write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    Insert,
    Update,
}

impl WriteKind {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteKind::Insert => "insert",
            WriteKind::Update => "update",
        }
    }

    pub fn action(self) -> policies::Action {
        match self {
            WriteKind::Insert => policies::Action::Insert,
            WriteKind::Update => policies::Action::Update,
        }
    }
}

/// A parsed write: the table (canonical name), the columns written (as the
/// catalog names them) and, per row, their values (`None`: NULL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedWrite {
    pub kind: WriteKind,
    pub table: String,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
    /// UPDATE: the primary key column and the value naming the row.
    pub key: Option<(String, String)>,
}

/// Whether `sql` is meant as a write: its first word is INSERT or UPDATE.
/// (Anything else goes to the read path, which refuses non-SELECTs.)
pub fn is_write(sql: &str) -> bool {
    let word: String = sql
        .trim_start()
        .chars()
        .take_while(char::is_ascii_alphabetic)
        .collect();
    word.eq_ignore_ascii_case("insert") || word.eq_ignore_ascii_case("update")
}

fn unsupported(what: impl Into<String>) -> AnalysisError {
    AnalysisError::Unsupported(what.into())
}

const SHAPES: &str = "writes take the forms `INSERT INTO t (columns) VALUES (literals), ...` and \
     `UPDATE t SET column = literal, ... WHERE primary_key = literal`";

/// A literal as text (`None` for NULL); anything else is refused.
fn literal(e: &Expr) -> Result<Option<String>, AnalysisError> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Null => Ok(None),
            Value::Number(n, _) => Ok(Some(n.clone())),
            Value::SingleQuotedString(s) => Ok(Some(s.clone())),
            Value::Boolean(b) => Ok(Some(b.to_string())),
            other => Err(unsupported(format!("the value `{other}` ({SHAPES})"))),
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                Value::Number(n, _) => Ok(Some(format!("-{n}"))),
                _ => Err(unsupported(format!("the value `{e}` ({SHAPES})"))),
            },
            _ => Err(unsupported(format!("the value `{e}` ({SHAPES})"))),
        },
        other => Err(unsupported(format!(
            "the expression `{other}` as a value (only literals may be written; {SHAPES})"
        ))),
    }
}

fn table_of<'c>(catalog: &'c Catalog, name: &ObjectName) -> Result<&'c TableInfo, AnalysisError> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
        .collect();
    let [table] = parts.as_slice() else {
        return Err(unsupported(format!(
            "the table name `{name}` (name the table without a schema)"
        )));
    };
    catalog
        .table(table)
        .ok_or_else(|| AnalysisError::UnknownTable {
            name: table.clone(),
        })
}

fn column_of(table: &TableInfo, catalog: &Catalog, name: &str) -> Result<String, AnalysisError> {
    if crate::sql::is_reserved_name(name) {
        return Err(AnalysisError::UnknownColumn {
            name: name.to_owned(),
        });
    }
    let column = table
        .columns
        .iter()
        .find(|c| catalog.name_rule().eq(&c.name, name))
        .ok_or_else(|| AnalysisError::UnknownColumn {
            name: format!("{}.{name}", table.name),
        })?;
    if let Some(of) = catalog.blind_index_of(&table.name, &column.name) {
        return Err(AnalysisError::Denied {
            table: table.name.clone(),
            column: Some(column.name.clone()),
            message: format!(
                "column {}.{} is the blind index of {}.{}: the gateway writes it when {} is written",
                table.name, column.name, table.name, of.column, of.column
            ),
            policy_ids: Vec::new(),
        });
    }
    Ok(column.name.clone())
}

/// The table's single primary-key column.
fn primary_key(table: &TableInfo) -> Result<&str, AnalysisError> {
    let keys: Vec<&str> = table
        .columns
        .iter()
        .filter(|c| c.primary_key)
        .map(|c| c.name.as_str())
        .collect();
    match keys.as_slice() {
        [key] => Ok(key),
        _ => Err(unsupported(format!(
            "writing {} (the gateway writes tables with a single-column primary key only)",
            table.name
        ))),
    }
}

/// Parses and checks the shape of a write against the catalog.
pub fn parse(sql: &str, catalog: &Catalog, dialect: Dialect) -> Result<ParsedWrite, AnalysisError> {
    let statement = crate::sql::parse_one(sql, dialect)?;
    match statement {
        Statement::Insert(insert) => {
            if insert.or.is_some()
                || insert.ignore
                || insert.overwrite
                || insert.on.is_some()
                || insert.returning.is_some()
                || insert.partitioned.is_some()
                || !insert.after_columns.is_empty()
                || insert.table_alias.is_some()
                || insert.replace_into
                || insert.priority.is_some()
                || insert.insert_alias.is_some()
                || !insert.assignments.is_empty()
                || insert.settings.is_some()
                || insert.format_clause.is_some()
            {
                return Err(unsupported(format!("this form of INSERT ({SHAPES})")));
            }
            let TableObject::TableName(name) = &insert.table else {
                return Err(unsupported(format!(
                    "INSERT into a table function ({SHAPES})"
                )));
            };
            let table = table_of(catalog, name)?;
            if insert.columns.is_empty() {
                return Err(unsupported(format!(
                    "INSERT without a column list (name the columns; {SHAPES})"
                )));
            }
            let columns = insert
                .columns
                .iter()
                .map(|c| column_of(table, catalog, &c.value))
                .collect::<Result<Vec<_>, _>>()?;
            let distinct: BTreeSet<&String> = columns.iter().collect();
            if distinct.len() != columns.len() {
                return Err(unsupported("a column named twice in one INSERT"));
            }
            let Some(source) = &insert.source else {
                return Err(unsupported(format!("INSERT without VALUES ({SHAPES})")));
            };
            if source.with.is_some() || source.order_by.is_some() || source.limit_clause.is_some() {
                return Err(unsupported(format!("this form of INSERT ({SHAPES})")));
            }
            let SetExpr::Values(values) = source.body.as_ref() else {
                return Err(unsupported(format!(
                    "INSERT ... SELECT (a write may not read data; {SHAPES})"
                )));
            };
            let rows = values
                .rows
                .iter()
                .map(|row| {
                    if row.len() != columns.len() {
                        return Err(unsupported(format!(
                            "a VALUES row with {} values for {} columns",
                            row.len(),
                            columns.len()
                        )));
                    }
                    row.iter().map(literal).collect::<Result<Vec<_>, _>>()
                })
                .collect::<Result<Vec<_>, _>>()?;
            if rows.is_empty() {
                return Err(unsupported("INSERT without rows"));
            }
            Ok(ParsedWrite {
                kind: WriteKind::Insert,
                table: table.name.clone(),
                columns,
                rows,
                key: None,
            })
        }
        Statement::Update {
            table,
            assignments,
            from,
            selection,
            returning,
            or,
            limit,
        } => {
            if from.is_some() || returning.is_some() || or.is_some() || limit.is_some() {
                return Err(unsupported(format!("this form of UPDATE ({SHAPES})")));
            }
            let TableFactor::Table {
                name, alias: None, ..
            } = &table.relation
            else {
                return Err(unsupported(format!("UPDATE of this target ({SHAPES})")));
            };
            if !table.joins.is_empty() {
                return Err(unsupported(format!("UPDATE with joins ({SHAPES})")));
            }
            let info = table_of(catalog, name)?;
            let pk = primary_key(info)?;
            let mut columns = Vec::new();
            let mut values = Vec::new();
            for assignment in &assignments {
                let AssignmentTarget::ColumnName(target) = &assignment.target else {
                    return Err(unsupported(format!("tuple assignments ({SHAPES})")));
                };
                let [part] = target.0.as_slice() else {
                    return Err(unsupported(format!(
                        "the column `{target}` (name it alone)"
                    )));
                };
                let Some(ident) = part.as_ident() else {
                    return Err(unsupported(format!("the column `{target}`")));
                };
                let column = column_of(info, catalog, &ident.value)?;
                if columns.contains(&column) {
                    return Err(unsupported("a column set twice in one UPDATE"));
                }
                if catalog.name_rule().eq(&column, pk) {
                    return Err(unsupported(format!(
                        "changing the primary key {}.{pk} (encrypted values are bound to it)",
                        info.name
                    )));
                }
                columns.push(column);
                values.push(literal(&assignment.value)?);
            }
            let key = match &selection {
                Some(Expr::BinaryOp {
                    left,
                    op: BinaryOperator::Eq,
                    right,
                }) => match (left.as_ref(), right.as_ref()) {
                    (Expr::Identifier(id), value) | (value, Expr::Identifier(id))
                        if catalog.name_rule().eq(&id.value, pk) =>
                    {
                        literal(value)?
                    }
                    _ => None,
                },
                _ => None,
            };
            let Some(key) = key else {
                return Err(unsupported(format!(
                    "UPDATE without `WHERE {pk} = <literal>` (the gateway updates one row at a time, by its primary key)"
                )));
            };
            Ok(ParsedWrite {
                kind: WriteKind::Update,
                table: info.name.clone(),
                columns,
                rows: vec![values],
                key: Some((pk.to_owned(), key)),
            })
        }
        other => Err(AnalysisError::UnsupportedStatement {
            kind: crate::sql::statement_kind(&other),
        }),
    }
}

/// `"name"` with embedded double quotes doubled: an identifier that means
/// exactly `name` in SQLite and PostgreSQL, whatever its case or characters.
pub fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// A placeholder for parameter `n` (1-based) of a column of type
/// `decl_type`: SQLite converts by column affinity; PostgreSQL gets the
/// parameter as text and casts it to the column's type.
pub fn placeholder(dialect: Dialect, n: usize, decl_type: &str) -> Result<String, AnalysisError> {
    match dialect {
        Dialect::Sqlite => Ok(format!("?{n}")),
        Dialect::Postgres => {
            if decl_type.is_empty()
                || !decl_type
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '(' | ')' | ','))
            {
                return Err(unsupported(format!(
                    "writing a column of type `{decl_type}`"
                )));
            }
            Ok(format!("CAST(CAST(${n} AS TEXT) AS {decl_type})"))
        }
    }
}
