//! Parameters of the extended query protocol (`$1`, `$2`, …).
//!
//! The analyzer judges whole statements, literals included (a literal can
//! decide a row filter or a blind-index lookup), so a bound statement is
//! turned into the statement it stands for: each placeholder is replaced,
//! in the parsed tree, by a literal of the parameter's type, and the tree
//! is printed back. Values never pass through SQL text unescaped: a
//! parameter becomes a number only after parsing as one, and anything else
//! a single-quoted string literal, quotes doubled by the printer.
//!
//! Parameter types the client leaves open are inferred from the catalog:
//! `column op $n`, `column IN ($n, …)`, `column BETWEEN $n AND $m`,
//! `$n::type`, `LIMIT`/`OFFSET $n`, `INSERT … (columns) VALUES ($n, …)`
//! and `UPDATE … SET column = $n`; anything else is `text`.

use std::collections::BTreeMap;
use std::ops::ControlFlow;

use ::pgwire::api::portal::Portal;
use ::pgwire::api::Type;
use ::pgwire::error::ErrorInfo;
use sqlparser::ast::{
    visit_expressions_mut, AssignmentTarget, BinaryOperator, DataType, Expr, LimitClause,
    ObjectName, Query, SetExpr, Statement, TableObject, Value, Visit, Visitor,
};

use super::error_info;
use super::types::wire_type;
use crate::catalog::Catalog;
use crate::masks::Dialect;

/// The 1-based numbers of the `$n` placeholders in `statement`, checked:
/// other placeholder styles (`?`, `:name`) are refused.
pub fn count(statement: &Statement) -> Result<usize, Box<ErrorInfo>> {
    let mut highest = 0usize;
    let mut bad = None;
    let _ = sqlparser::ast::visit_expressions(statement, |e| {
        if let Some(p) = placeholder(e) {
            match number(p) {
                Some(n) => highest = highest.max(n),
                None => {
                    bad = Some(p.to_owned());
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    });
    match bad {
        Some(p) => Err(error_info(
            "42601",
            format!("the placeholder {p} is not supported: number parameters $1, $2, …"),
        )),
        None => Ok(highest),
    }
}

fn placeholder(e: &Expr) -> Option<&str> {
    match e {
        Expr::Value(v) => match &v.value {
            Value::Placeholder(p) => Some(p.as_str()),
            _ => None,
        },
        _ => None,
    }
}

fn number(p: &str) -> Option<usize> {
    p.strip_prefix('$')?.parse().ok().filter(|n| *n >= 1)
}

/// The types of the `n` parameters of `statement`, inferred from how they
/// are used (see the module documentation).
pub fn infer(statement: &Statement, n: usize, catalog: &Catalog, dialect: Dialect) -> Vec<Type> {
    let mut tables = Vec::new();
    let _ = sqlparser::ast::visit_relations(statement, |name: &ObjectName| {
        if let Some(table) = last_part(name).and_then(|t| catalog.table(&t)) {
            tables.push(table);
        }
        ControlFlow::<()>::Continue(())
    });
    let rule = catalog.name_rule();
    let column_type = |column: &str| -> Option<Type> {
        tables.iter().find_map(|t| {
            t.columns
                .iter()
                .find(|c| rule.eq(&c.name, column))
                .map(|c| wire_type(Some(&c.decl_type), None, dialect))
        })
    };
    let mut inference = Inference {
        found: BTreeMap::new(),
        column_type: &column_type,
    };
    let _ = statement.visit(&mut inference);
    let mut found = inference.found;
    match statement {
        Statement::Insert(insert) => {
            if let Some(SetExpr::Values(values)) = insert.source.as_ref().map(|q| q.body.as_ref()) {
                let table = match &insert.table {
                    TableObject::TableName(name) => last_part(name).and_then(|t| catalog.table(&t)),
                    _ => None,
                };
                for row in &values.rows {
                    for (value, column) in row.iter().zip(&insert.columns) {
                        if let (Some(n), Some(table)) = (placeholder(value).and_then(number), table)
                        {
                            if let Some(c) = table
                                .columns
                                .iter()
                                .find(|c| rule.eq(&c.name, &column.value))
                            {
                                found.entry(n).or_insert_with(|| {
                                    wire_type(Some(&c.decl_type), None, dialect)
                                });
                            }
                        }
                    }
                }
            }
        }
        Statement::Update { assignments, .. } => {
            for a in assignments {
                if let (AssignmentTarget::ColumnName(name), Some(n)) =
                    (&a.target, placeholder(&a.value).and_then(number))
                {
                    if let Some(ty) = last_part(name).and_then(|c| column_type(&c)) {
                        found.entry(n).or_insert(ty);
                    }
                }
            }
        }
        _ => {}
    }
    (1..=n)
        .map(|i| found.get(&i).cloned().unwrap_or(Type::TEXT))
        .collect()
}

fn last_part(name: &ObjectName) -> Option<String> {
    name.0
        .last()
        .and_then(|part| part.as_ident())
        .map(|ident| ident.value.clone())
}

struct Inference<'a> {
    found: BTreeMap<usize, Type>,
    column_type: &'a dyn Fn(&str) -> Option<Type>,
}

impl Inference<'_> {
    /// `column` compared with `value`: a placeholder takes the column's type.
    fn pair(&mut self, column: &Expr, value: &Expr) {
        let Some(n) = placeholder(value).and_then(number) else {
            return;
        };
        let name = match column {
            Expr::Identifier(ident) => Some(ident.value.as_str()),
            Expr::CompoundIdentifier(parts) => parts.last().map(|p| p.value.as_str()),
            Expr::Nested(inner) => return self.pair(inner, value),
            _ => None,
        };
        if let Some(ty) = name.and_then(|c| (self.column_type)(c)) {
            self.found.entry(n).or_insert(ty);
        }
    }

    fn set(&mut self, value: &Expr, ty: Type) {
        if let Some(n) = placeholder(value).and_then(number) {
            self.found.entry(n).or_insert(ty);
        }
    }
}

impl Visitor for Inference<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        match &query.limit_clause {
            Some(LimitClause::LimitOffset { limit, offset, .. }) => {
                if let Some(limit) = limit {
                    self.set(limit, Type::INT8);
                }
                if let Some(offset) = offset {
                    self.set(&offset.value, Type::INT8);
                }
            }
            Some(LimitClause::OffsetCommaLimit { offset, limit }) => {
                self.set(offset, Type::INT8);
                self.set(limit, Type::INT8);
            }
            None => {}
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        match expr {
            Expr::BinaryOp { left, op, right } if typed_by_operand(op) => {
                self.pair(left, right);
                self.pair(right, left);
            }
            Expr::InList { expr, list, .. } => {
                for item in list {
                    self.pair(expr, item);
                }
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                self.pair(expr, low);
                self.pair(expr, high);
            }
            Expr::Like { pattern, .. } | Expr::ILike { pattern, .. } => {
                self.set(pattern, Type::TEXT);
            }
            Expr::Cast {
                expr, data_type, ..
            } => {
                if let Some(ty) = cast_type(data_type) {
                    self.set(expr, ty);
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

/// Operators whose operands share a type.
fn typed_by_operand(op: &BinaryOperator) -> bool {
    use BinaryOperator::*;
    matches!(
        op,
        Eq | NotEq | Lt | LtEq | Gt | GtEq | Plus | Minus | Multiply | Divide | Modulo
    )
}

fn cast_type(data_type: &DataType) -> Option<Type> {
    use DataType::*;
    Some(match data_type {
        SmallInt(_) | Int2(_) => Type::INT2,
        Int(_) | Integer(_) | Int4(_) => Type::INT4,
        BigInt(_) | Int8(_) => Type::INT8,
        Real | Float4 => Type::FLOAT4,
        DoublePrecision | Float8 | Double(_) => Type::FLOAT8,
        Boolean | Bool => Type::BOOL,
        Text | Varchar(_) | CharacterVarying(_) => Type::TEXT,
        _ => return None,
    })
}

/// The type parameter `i` (0-based) is read as: the client's, when it
/// named one, else the inferred one.
pub fn effective_type(client: &[Option<Type>], inferred: &[Type], i: usize) -> Type {
    client
        .get(i)
        .cloned()
        .flatten()
        .filter(|t| *t != Type::UNKNOWN)
        .or_else(|| inferred.get(i).cloned())
        .unwrap_or(Type::TEXT)
}

/// A bound parameter as a literal of its type.
pub fn literal<S: Clone>(portal: &Portal<S>, i: usize, ty: &Type) -> Result<Value, Box<ErrorInfo>> {
    let invalid = |e: &dyn std::fmt::Display| {
        error_info(
            "22P02",
            format!(
                "parameter ${}: invalid input for type {}: {e}",
                i + 1,
                ty.name()
            ),
        )
    };
    let Some(raw) = portal.parameters.get(i) else {
        return Err(error_info(
            "08P01",
            format!("parameter ${} was not bound", i + 1),
        ));
    };
    if raw.is_none() {
        return Ok(Value::Null);
    }
    let number = |n: String| Value::Number(n, false);
    Ok(match *ty {
        Type::INT2 => number(decoded::<_, i16>(portal, i, ty).map_err(|e| invalid(&e))?.to_string()),
        Type::INT4 => number(decoded::<_, i32>(portal, i, ty).map_err(|e| invalid(&e))?.to_string()),
        Type::INT8 => number(decoded::<_, i64>(portal, i, ty).map_err(|e| invalid(&e))?.to_string()),
        Type::FLOAT4 | Type::FLOAT8 => {
            let v = if *ty == Type::FLOAT4 {
                portal
                    .parameter::<f32>(i, ty)
                    .map_err(|e| invalid(&e))?
                    .map(f64::from)
            } else {
                portal.parameter::<f64>(i, ty).map_err(|e| invalid(&e))?
            }
            .unwrap_or_default();
            if !v.is_finite() {
                return Err(invalid(&"only finite numbers are supported"));
            }
            number(format!("{v:?}"))
        }
        Type::BOOL => Value::Boolean(
            portal
                .parameter::<bool>(i, ty)
                .map_err(|e| invalid(&e))?
                .unwrap_or_default(),
        ),
        Type::NUMERIC if !portal.parameter_format.is_binary(i) => {
            let text = text_parameter(portal, i).map_err(|e| invalid(&e))?;
            if !is_decimal(text.trim()) {
                return Err(invalid(&format!("\"{text}\" is not a decimal number")));
            }
            number(text.trim().to_owned())
        }
        _ if portal.parameter_format.is_binary(i) && !is_text_type(ty) => {
            return Err(error_info(
                "0A000",
                format!(
                    "parameter ${}: binary parameters of type {} are not supported; send it in text format",
                    i + 1,
                    ty.name()
                ),
            ))
        }
        _ => Value::SingleQuotedString(text_parameter(portal, i).map_err(|e| invalid(&e))?),
    })
}

/// Parameter `i` (not NULL) decoded as `T` by the type's own decoder, from
/// text or binary format as bound.
fn decoded<'a, S: Clone, T>(
    portal: &'a Portal<S>,
    i: usize,
    ty: &Type,
) -> Result<T, ::pgwire::error::PgWireError>
where
    T: tokio_postgres::types::FromSqlOwned + ::pgwire::types::FromSqlText<'a> + Default,
{
    portal.parameter::<T>(i, ty).map(Option::unwrap_or_default)
}

fn is_text_type(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN
    )
}

/// A parameter's bytes as text (text format, or binary of a text type: the
/// same UTF-8 bytes), refusing NUL, which no PostgreSQL text may hold.
fn text_parameter<S>(portal: &Portal<S>, i: usize) -> Result<String, String> {
    let bytes = portal
        .parameters
        .get(i)
        .and_then(|b| b.as_ref())
        .map(|b| b.as_ref())
        .unwrap_or_default();
    let text = std::str::from_utf8(bytes).map_err(|_| "not valid UTF-8".to_owned())?;
    if text.contains('\0') {
        return Err("text may not contain NUL (0x00)".to_owned());
    }
    Ok(text.to_owned())
}

fn is_decimal(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (mantissa, exponent) = match s.split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(e)),
        None => (s, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok =
        (!whole.is_empty() || !fraction.is_empty()) && digits(whole) && digits(fraction);
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

/// `statement` with each `$n` replaced by `values[n - 1]`, printed.
pub fn substitute(statement: &Statement, values: &[Value]) -> Result<String, Box<ErrorInfo>> {
    let mut statement = statement.clone();
    let mut missing = None;
    let _ = visit_expressions_mut(&mut statement, |e| {
        if let Some(n) = placeholder(e).and_then(number) {
            match values.get(n - 1) {
                Some(v) => *e = Expr::value(v.clone()),
                None => {
                    missing = Some(n);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    });
    match missing {
        Some(n) => Err(error_info(
            "08P01",
            format!(
                "bind message supplies {} parameters, but the statement uses ${n}",
                values.len()
            ),
        )),
        None => Ok(statement.to_string()),
    }
}

/// A stand-in value of each type, for describing a statement before its
/// parameters are bound.
pub fn placeholder_value(ty: &Type) -> Value {
    match *ty {
        Type::INT2 | Type::INT4 | Type::INT8 | Type::NUMERIC => Value::Number("0".into(), false),
        Type::FLOAT4 | Type::FLOAT8 => Value::Number("0.0".into(), false),
        Type::BOOL => Value::Boolean(false),
        _ => Value::SingleQuotedString(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        use crate::catalog::{ColumnInfo, TableInfo};
        let column = |name: &str, decl: &str| ColumnInfo {
            name: name.into(),
            decl_type: decl.into(),
            primary_key: name == "id",
        };
        Catalog::new([TableInfo {
            name: "customers".into(),
            columns: vec![
                column("id", "INTEGER"),
                column("email", "TEXT"),
                column("country", "TEXT"),
            ],
        }])
    }

    fn parse(sql: &str) -> Statement {
        crate::sql::parse_one(sql, Dialect::Sqlite).expect("parses")
    }

    #[test]
    fn types_come_from_the_columns_compared() {
        let s = parse(
            "SELECT email FROM customers WHERE id = $1 AND email LIKE $2 AND $3 < id \
             AND country IN ($4, $5) LIMIT $6",
        );
        let n = count(&s).expect("numbered");
        assert_eq!(n, 6);
        let types = infer(&s, n, &catalog(), Dialect::Sqlite);
        assert_eq!(
            types,
            vec![
                Type::INT8,
                Type::TEXT,
                Type::INT8,
                Type::TEXT,
                Type::TEXT,
                Type::INT8
            ]
        );
    }

    #[test]
    fn other_placeholder_styles_are_refused() {
        let s = parse("SELECT id FROM customers WHERE id = ?");
        assert!(count(&s).is_err());
    }

    #[test]
    fn substituted_strings_stay_strings() {
        let s = parse("SELECT id FROM customers WHERE email = $1 AND id = $2");
        let sql = substitute(
            &s,
            &[
                Value::SingleQuotedString("x' OR '1'='1".into()),
                Value::Number("7".into(), false),
            ],
        )
        .expect("substitutes");
        assert_eq!(
            sql,
            "SELECT id FROM customers WHERE email = 'x'' OR ''1''=''1' AND id = 7"
        );
        let reparsed = parse(&sql);
        assert_eq!(count(&reparsed).expect("no placeholders"), 0);
    }

    #[test]
    fn decimals() {
        for ok in ["1", "-1.5", ".5", "1e10", "+3.", "2E-3"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in ["", ".", "1e", "1;DROP", "0x10", "1 2", "e5"] {
            assert!(!is_decimal(bad), "{bad}");
        }
    }
}
