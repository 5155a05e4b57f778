//! Result columns on the wire: which PostgreSQL type each column is
//! described as, and its values encoded in text or binary format.
//!
//! A small, exact set: integers, floating point, booleans and text. A
//! masked, tokenized or decrypted column is `text` whatever its declared
//! type (a mask turns `1985-03-02` into `1985-**-**`). Types the set does
//! not cover (numeric, dates, timestamps, uuid, json, bytea, arrays) are
//! described as `text` and sent as the gateway's JSON shows them: numeric
//! exactly as a decimal string, timestamps in RFC 3339, bytea in base64.

use ::pgwire::api::portal::Format;
use ::pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo};
use ::pgwire::api::Type;
use ::pgwire::error::PgWireResult;
use ::pgwire::messages::data::DataRow;
use serde_json::Value;

use crate::masks::Dialect;
use crate::pipeline::DescribedColumn;

/// The wire type of a column the backend types `decl` (a declared type,
/// in any case, or the type of the values seen) with `transform` applied;
/// `None`: the backend does not tell, so `text`.
pub fn wire_type(decl: Option<&str>, transform: Option<&str>, dialect: Dialect) -> Type {
    if transform.is_some() {
        return Type::TEXT;
    }
    let Some(decl) = decl else {
        return Type::TEXT;
    };
    let decl = decl.trim().to_ascii_lowercase();
    match dialect {
        // SQLite's affinity rules (https://sqlite.org/datatype3.html §3.1):
        // every integer is 64-bit.
        Dialect::Sqlite => {
            if decl.contains("int") {
                Type::INT8
            } else if decl.contains("real") || decl.contains("floa") || decl.contains("doub") {
                Type::FLOAT8
            } else if decl.starts_with("bool") {
                Type::BOOL
            } else {
                Type::TEXT
            }
        }
        // Type names as tokio-postgres reports them (`int8`) or as
        // `format_type` prints them (`bigint`).
        Dialect::Postgres => match decl.as_str() {
            "smallint" | "int2" => Type::INT2,
            "integer" | "int4" => Type::INT4,
            "bigint" | "int8" => Type::INT8,
            "real" | "float4" => Type::FLOAT4,
            "double precision" | "float8" => Type::FLOAT8,
            "boolean" | "bool" => Type::BOOL,
            _ => Type::TEXT,
        },
    }
}

/// The wire types of described columns; `counted` marks the columns that
/// are `count(...)`: `bigint`, though SQLite does not say so before running.
pub fn described_types(
    columns: &[DescribedColumn],
    counted: &[bool],
    dialect: Dialect,
) -> Vec<Type> {
    columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if c.type_name.is_none() && c.transform.is_none() && counted.get(i) == Some(&true) {
                Type::INT8
            } else {
                wire_type(c.type_name.as_deref(), c.transform.as_deref(), dialect)
            }
        })
        .collect()
}

/// Field descriptions of `names` typed `types`, in the formats the client
/// asked for (`None`: text, as in the simple query protocol).
pub fn fields(names: &[String], types: &[Type], formats: Option<&Format>) -> Vec<FieldInfo> {
    names
        .iter()
        .zip(types)
        .enumerate()
        .map(|(i, (name, ty))| {
            let format = formats.map_or(FieldFormat::Text, |f| f.format_for(i));
            FieldInfo::new(name.clone(), None, None, ty.clone(), format)
        })
        .collect()
}

/// Why a value does not fit the type its column was described as.
#[derive(Debug, thiserror::Error)]
#[error(
    "column {column}: the value {value} does not fit the type {ty} the column was described as"
)]
pub struct Misfit {
    pub column: String,
    pub value: String,
    pub ty: String,
}

/// One row, each value encoded as its field's type and format.
pub fn encode_row(
    encoder: &mut DataRowEncoder,
    fields: &[FieldInfo],
    row: &[Value],
) -> Result<PgWireResult<DataRow>, Misfit> {
    for (field, value) in fields.iter().zip(row) {
        let misfit = || Misfit {
            column: field.name().to_owned(),
            value: truncated(value),
            ty: field.datatype().name().to_owned(),
        };
        let encoded = match (field.datatype(), value) {
            (_, Value::Null) => encoder.encode_field(&None::<i64>),
            // Text is text: a value SQLite stored against its column's
            // declared type still reads as what it is.
            _ if field.format() == FieldFormat::Text => encoder.encode_field(&text_value(value)),
            (&Type::INT2, v) => {
                let n = integer(v)
                    .and_then(|n| i16::try_from(n).ok())
                    .ok_or_else(misfit)?;
                encoder.encode_field(&n)
            }
            (&Type::INT4, v) => {
                let n = integer(v)
                    .and_then(|n| i32::try_from(n).ok())
                    .ok_or_else(misfit)?;
                encoder.encode_field(&n)
            }
            (&Type::INT8, v) => encoder.encode_field(&integer(v).ok_or_else(misfit)?),
            (&Type::FLOAT4, v) => {
                // f32 columns arrive widened to f64: narrowing gives the
                // stored value back.
                encoder.encode_field(&(float(v).ok_or_else(misfit)? as f32))
            }
            (&Type::FLOAT8, v) => encoder.encode_field(&float(v).ok_or_else(misfit)?),
            (&Type::BOOL, v) => encoder.encode_field(&boolean(v).ok_or_else(misfit)?),
            (_, v) => encoder.encode_field(&text_value(v)),
        };
        if let Err(e) = encoded {
            return Ok(Err(e));
        }
    }
    Ok(Ok(encoder.take_row()))
}

fn truncated(value: &Value) -> String {
    let text = value.to_string();
    match text.char_indices().nth(40) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

fn integer(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Bool(b) => Some(i64::from(*b)),
        _ => None,
    }
}

fn float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn boolean(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        // SQLite stores booleans as 0 and 1.
        Value::Number(n) => match n.as_i64() {
            Some(0) => Some(false),
            Some(1) => Some(true),
            _ => None,
        },
        _ => None,
    }
}

/// A JSON value in PostgreSQL's text format: strings as they are, numbers
/// as written, booleans `t`/`f`, null as NULL, arrays and objects as JSON.
pub fn text_value(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "t" } else { "f" }.to_owned()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_and_unknown_columns_are_text() {
        assert_eq!(
            wire_type(Some("INTEGER"), None, Dialect::Sqlite),
            Type::INT8
        );
        assert_eq!(
            wire_type(Some("INTEGER"), Some("mask:last4"), Dialect::Sqlite),
            Type::TEXT
        );
        assert_eq!(
            wire_type(Some("integer"), None, Dialect::Postgres),
            Type::INT4
        );
        assert_eq!(
            wire_type(Some("numeric(10,2)"), None, Dialect::Postgres),
            Type::TEXT
        );
        assert_eq!(
            wire_type(Some("DOUBLE"), None, Dialect::Sqlite),
            Type::FLOAT8
        );
        assert_eq!(wire_type(None, None, Dialect::Sqlite), Type::TEXT);
    }

    #[test]
    fn values_are_encoded_as_described_or_refused() {
        let names = vec!["n".to_owned(), "t".to_owned()];
        let binary = Format::UnifiedBinary;
        let fields = std::sync::Arc::new(fields(&names, &[Type::INT4, Type::TEXT], Some(&binary)));
        let mut encoder = DataRowEncoder::new(std::sync::Arc::clone(&fields));
        let row = encode_row(&mut encoder, &fields, &[Value::from(7), Value::from("x")])
            .expect("fits")
            .expect("encodes");
        assert_eq!(row.field_count, 2);
        // 4-byte length + 4-byte big-endian int, then 4-byte length + "x".
        assert_eq!(&row.data[..8], &[0, 0, 0, 4, 0, 0, 0, 7]);
        let too_big = encode_row(
            &mut encoder,
            &fields,
            &[Value::from(1i64 << 40), Value::Null],
        );
        let Err(misfit) = too_big else {
            panic!("a 2^40 must not pass as int4")
        };
        assert!(misfit.to_string().contains("int4"), "{misfit}");
    }
}
