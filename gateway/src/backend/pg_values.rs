//! PostgreSQL values (binary wire format) to JSON, and text parameters to
//! the types PostgreSQL infers for them.
//!
//! tokio-postgres always asks for binary results, so every cell is decoded
//! here by hand: no chrono/uuid/decimal crates, and no floats for `numeric`.
//! Dates and timestamps use the same text as the SQLite backend
//! (`2024-05-01T10:22:33Z`), so both backends return identical JSON.

use std::error::Error;
use std::fmt::Write as _;
use std::net::{Ipv4Addr, Ipv6Addr};

use base64::Engine as _;
use bytes::{BufMut, BytesMut};
use serde_json::{Number, Value};
use tokio_postgres::types::{to_sql_checked, FromSql, IsNull, Kind, ToSql, Type};

type BoxError = Box<dyn Error + Sync + Send>;

/// Days from 1970-01-01 to PostgreSQL's epoch 2000-01-01.
const PG_EPOCH_DAYS: i64 = 10_957;
const DAY_MICROS: i64 = 86_400_000_000;

/// Why a PostgreSQL value could not be turned into JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error(
        "values of type `{type_name}` cannot be returned; cast the column in the query, \
         e.g. `CAST(col AS TEXT)`"
    )]
    Unsupported { type_name: String },
    #[error("PostgreSQL sent a malformed `{type_name}` value: {reason}")]
    Malformed { type_name: String, reason: String },
}

fn malformed(ty: &Type, reason: impl Into<String>) -> ValueError {
    ValueError::Malformed {
        type_name: ty.name().to_owned(),
        reason: reason.into(),
    }
}

/// The undecoded bytes of a cell of any type, so a row can be read with
/// `row.try_get::<_, Option<RawValue>>(i)` and converted by [`to_json`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawValue<'a>(pub &'a [u8]);

impl<'a> FromSql<'a> for RawValue<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(RawValue(raw))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A bounds-checked reader of big-endian fields.
struct Reader<'a> {
    ty: &'a Type,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ValueError> {
        if n > self.buf.len() {
            return Err(malformed(
                self.ty,
                format!("truncated: {n} bytes needed, {} left", self.buf.len()),
            ));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn bytes<const N: usize>(&mut self) -> Result<[u8; N], ValueError> {
        fixed(self.ty, self.take(N)?)
    }
    fn i16(&mut self) -> Result<i16, ValueError> {
        self.bytes().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Result<i32, ValueError> {
        self.bytes().map(i32::from_be_bytes)
    }
    fn finish(self) -> Result<(), ValueError> {
        match self.buf.len() {
            0 => Ok(()),
            n => Err(malformed(self.ty, format!("{n} unexpected trailing bytes"))),
        }
    }
}

fn fixed<const N: usize>(ty: &Type, raw: &[u8]) -> Result<[u8; N], ValueError> {
    <[u8; N]>::try_from(raw)
        .map_err(|_| malformed(ty, format!("expected {N} bytes, got {}", raw.len())))
}

fn is_text(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::CHAR | Type::UNKNOWN
    ) || matches!(ty.kind(), Kind::Enum(_))
        || ty.name() == "citext"
}

/// Converts one value in PostgreSQL's binary format (`None` = SQL NULL) to
/// JSON. `numeric` becomes a string with PostgreSQL's exact text; dates and
/// times become strings (see the helpers below); `interval` becomes the ISO
/// 8601 text PostgreSQL prints with `IntervalStyle = iso_8601`
/// (`P1Y2M3DT4H5M6.5S`); years before 1 AD get PostgreSQL's ` BC` suffix.
pub fn to_json(ty: &Type, raw: Option<&[u8]>) -> Result<Value, ValueError> {
    let Some(raw) = raw else {
        return Ok(Value::Null);
    };
    match ty.kind() {
        Kind::Array(elem) => return array(ty, elem, raw),
        Kind::Domain(base) => return to_json(base, Some(raw)),
        _ if is_text(ty) => return text(ty, raw).map(Value::from),
        _ => {}
    }
    Ok(match *ty {
        Type::BOOL => Value::Bool(fixed::<1>(ty, raw)?[0] != 0),
        Type::INT2 => i16::from_be_bytes(fixed(ty, raw)?).into(),
        Type::INT4 => i32::from_be_bytes(fixed(ty, raw)?).into(),
        Type::INT8 => i64::from_be_bytes(fixed(ty, raw)?).into(),
        Type::OID => u32::from_be_bytes(fixed(ty, raw)?).into(),
        // The shortest text of the f32 keeps 1.1 as 1.1, not 1.100000023841858.
        Type::FLOAT4 => {
            let v = f32::from_be_bytes(fixed(ty, raw)?);
            float(v.to_string().parse().unwrap_or(f64::from(v)))
        }
        Type::FLOAT8 => float(f64::from_be_bytes(fixed(ty, raw)?)),
        Type::NUMERIC => numeric_text(ty, raw)?.into(),
        Type::DATE => date(i32::from_be_bytes(fixed(ty, raw)?)).into(),
        Type::TIMESTAMP => timestamp(i64::from_be_bytes(fixed(ty, raw)?), "").into(),
        Type::TIMESTAMPTZ => timestamp(i64::from_be_bytes(fixed(ty, raw)?), "Z").into(),
        Type::TIME => {
            let micros = i64::from_be_bytes(fixed(ty, raw)?);
            if !(0..=DAY_MICROS).contains(&micros) {
                return Err(malformed(ty, "time of day out of range"));
            }
            clock(micros).into()
        }
        Type::TIMETZ => {
            let mut r = Reader { ty, buf: raw };
            let (micros, west) = (i64::from_be_bytes(r.bytes()?), r.i32()?);
            r.finish()?;
            if !(0..=DAY_MICROS).contains(&micros) {
                return Err(malformed(ty, "time of day out of range"));
            }
            let (sign, off) = (if west > 0 { '-' } else { '+' }, i64::from(west).abs());
            let (h, m, sec) = (off / 3600, off / 60 % 60, off % 60);
            let mut s = format!("{}{sign}{h:02}", clock(micros));
            if m != 0 || sec != 0 {
                s += &format!(":{m:02}");
            }
            if sec != 0 {
                s += &format!(":{sec:02}");
            }
            s.into()
        }
        Type::INTERVAL => {
            let mut r = Reader { ty, buf: raw };
            let (micros, days, months) = (i64::from_be_bytes(r.bytes()?), r.i32()?, r.i32()?);
            r.finish()?;
            interval(micros, days, months).into()
        }
        Type::BYTEA => base64::engine::general_purpose::STANDARD.encode(raw).into(),
        Type::UUID => {
            let dash = |i| if matches!(i, 4 | 6 | 8 | 10) { "-" } else { "" };
            let bytes = fixed::<16>(ty, raw)?.into_iter().enumerate();
            bytes
                .map(|(i, b)| format!("{}{b:02x}", dash(i)))
                .collect::<String>()
                .into()
        }
        Type::JSON => parse_json(ty, raw)?,
        Type::JSONB => match raw.split_first() {
            Some((1, rest)) => parse_json(ty, rest)?,
            _ => return Err(malformed(ty, "unknown jsonb version")),
        },
        Type::INET | Type::CIDR => inet(ty, raw)?.into(),
        _ => {
            return Err(ValueError::Unsupported {
                type_name: ty.name().into(),
            })
        }
    })
}

fn text(ty: &Type, raw: &[u8]) -> Result<String, ValueError> {
    String::from_utf8(raw.to_vec()).map_err(|_| malformed(ty, "invalid UTF-8"))
}

fn parse_json(ty: &Type, raw: &[u8]) -> Result<Value, ValueError> {
    serde_json::from_slice(raw).map_err(|e| malformed(ty, format!("invalid JSON: {e}")))
}

/// A JSON number, or "NaN"/"Infinity"/"-Infinity" which JSON cannot hold.
fn float(v: f64) -> Value {
    match Number::from_f64(v) {
        Some(n) => Value::Number(n),
        None if v.is_nan() => "NaN".into(),
        None if v > 0.0 => "Infinity".into(),
        None => "-Infinity".into(),
    }
}

/// The decimal text of a binary `numeric`: header (ndigits, weight, sign,
/// dscale) then base-10000 digits, the first worth 10000^weight.
fn numeric_text(ty: &Type, raw: &[u8]) -> Result<String, ValueError> {
    let mut r = Reader { ty, buf: raw };
    let (ndigits, weight, sign, dscale) = (r.i16()?, r.i16()?, r.i16()? as u16, r.i16()? as u16);
    let negative = match sign {
        0x0000 => false,
        0x4000 => true,
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => return Err(malformed(ty, format!("unknown sign 0x{sign:04X}"))),
    };
    let ndigits = usize::try_from(ndigits).map_err(|_| malformed(ty, "negative digit count"))?;
    let mut digits = Vec::with_capacity(ndigits.min(r.buf.len() / 2));
    for _ in 0..ndigits {
        match r.i16()? {
            d @ 0..=9999 => digits.push(d),
            d => return Err(malformed(ty, format!("digit {d} out of range"))),
        }
    }
    r.finish()?;
    let digit = |i: i32| usize::try_from(i).ok().and_then(|i| digits.get(i)).copied();
    let digit = |i: i32| digit(i).unwrap_or(0);
    let mut s = String::from(if negative { "-" } else { "" });
    if weight < 0 {
        s.push('0');
    }
    for i in 0..=i32::from(weight) {
        let width = if i == 0 { 1 } else { 4 };
        let _ = write!(s, "{:0width$}", digit(i));
    }
    if dscale > 0 {
        s.push('.');
        let end = s.len() + usize::from(dscale);
        let mut i = i32::from(weight) + 1;
        while s.len() < end {
            let _ = write!(s, "{:04}", digit(i));
            i += 1;
        }
        s.truncate(end);
    }
    Ok(s)
}

/// The binary `numeric` of a decimal text (`-12.50`, `1e3`, `NaN`,
/// `Infinity`), keeping the number of fraction digits as the scale like
/// PostgreSQL's own input function.
fn numeric_binary(text: &str) -> Result<Vec<u8>, String> {
    let header = |ndigits: i16, weight: i16, sign: u16, dscale: u16| {
        [ndigits, weight, sign as i16, dscale as i16]
            .map(i16::to_be_bytes)
            .concat()
    };
    let bad = || "the parameter is not a valid `numeric`".to_owned();
    match text.to_ascii_lowercase().as_str() {
        "nan" => return Ok(header(0, 0, 0xC000, 0)),
        "infinity" | "+infinity" | "inf" | "+inf" => return Ok(header(0, 0, 0xD000, 0)),
        "-infinity" | "-inf" => return Ok(header(0, 0, 0xF000, 0)),
        _ => {}
    }
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exp) = match body.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().map_err(|_| bad())?),
        None => (body, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all = || int.bytes().chain(frac.bytes());
    if (int.is_empty() && frac.is_empty()) || !all().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    // `point`: how many of the digits stand before the decimal point.
    let point = int.len() as i64 + i64::from(exp);
    let dscale = (frac.len() as i64 - i64::from(exp)).max(0);
    if point > 131_072 || dscale > 16_383 {
        return Err("the numeric parameter is out of range".to_owned());
    }
    // Left-pad so the point falls on a group boundary, right-pad to whole groups.
    let lead = (4 - point.rem_euclid(4)) % 4;
    let mut ds = vec![0; lead as usize];
    ds.extend(all().map(|b| b - b'0'));
    let len = (ds.len() as i64).max(point + lead);
    ds.resize(((len + 3) / 4 * 4) as usize, 0);
    let group = |c: &[u8]| c.iter().fold(0, |a, &d| a * 10 + i16::from(d));
    let mut groups: Vec<i16> = ds.chunks(4).map(group).collect();
    let mut weight = (point + lead) / 4 - 1;
    let leading = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..leading);
    weight -= leading as i64;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let out_of_range = |_| "the numeric parameter is out of range".to_owned();
    let ndigits = i16::try_from(groups.len()).map_err(out_of_range)?;
    let weight = i16::try_from(weight).map_err(out_of_range)?;
    let sign = if negative && !groups.is_empty() {
        0x4000
    } else {
        0
    };
    let mut out = header(ndigits, weight, sign, dscale as u16);
    out.extend(groups.iter().flat_map(|g| g.to_be_bytes()));
    Ok(out)
}

/// Days since 1970-01-01 of a proleptic Gregorian date ([`crate::civil`]).
/// `m` and `d` come from two-digit fields, so they fit any integer type.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    crate::civil::days_from_civil(y, m as u32, d as u32)
}

/// The `(year, month, day)` of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let (y, m, d) = crate::civil::civil_from_days(z);
    (y, i64::from(m), i64::from(d))
}

/// `YYYY-MM-DD` plus PostgreSQL's era suffix (` BC`, year 0 = 1 BC).
fn ymd(days_since_1970: i64) -> (String, &'static str) {
    let (y, m, d) = civil_from_days(days_since_1970);
    let (year, era) = if y > 0 { (y, "") } else { (1 - y, " BC") };
    (format!("{year:04}-{m:02}-{d:02}"), era)
}

/// A `date` (days since 2000-01-01) as `YYYY-MM-DD`.
fn date(days: i32) -> String {
    match days {
        i32::MAX => "infinity".into(),
        i32::MIN => "-infinity".into(),
        _ => {
            let (date, era) = ymd(i64::from(days) + PG_EPOCH_DAYS);
            date + era
        }
    }
}

/// A timestamp (micros since 2000-01-01) as `YYYY-MM-DDTHH:MM:SS[.f]` + `zone`.
fn timestamp(micros: i64, zone: &str) -> String {
    match micros {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        _ => {
            let (date, era) = ymd(micros.div_euclid(DAY_MICROS) + PG_EPOCH_DAYS);
            format!("{date}T{}{zone}{era}", clock(micros.rem_euclid(DAY_MICROS)))
        }
    }
}

/// `HH:MM:SS` plus the fraction of a second without trailing zeros.
fn clock(micros: i64) -> String {
    let (s, f) = (micros / 1_000_000, fraction(micros));
    format!("{:02}:{:02}:{:02}{f}", s / 3600, s / 60 % 60, s % 60)
}

fn fraction(micros: i64) -> String {
    match (micros % 1_000_000).abs() {
        0 => String::new(),
        f => format!(".{f:06}").trim_end_matches('0').to_owned(),
    }
}

/// An interval as PostgreSQL prints it with `IntervalStyle = iso_8601`.
fn interval(micros: i64, days: i32, months: i32) -> String {
    if (micros, days, months) == (0, 0, 0) {
        return "PT0S".into();
    }
    let (months, days) = (i64::from(months), i64::from(days));
    let (hours, mins) = (micros / 3_600_000_000, micros / 60_000_000 % 60);
    let date = [(months / 12, 'Y'), (months % 12, 'M'), (days, 'D')];
    let part = |&(v, unit): &(i64, char)| match v {
        0 => String::new(),
        v => format!("{v}{unit}"),
    };
    let mut s: String = "P".to_owned() + &date.iter().map(part).collect::<String>();
    if micros != 0 {
        s.push('T');
    }
    s.extend([(hours, 'H'), (mins, 'M')].iter().map(part));
    if micros % 60_000_000 != 0 {
        let sign = if micros < 0 { "-" } else { "" };
        let secs = (micros / 1_000_000 % 60).abs();
        s += &format!("{sign}{secs}{}S", fraction(micros));
    }
    s
}

/// `inet`/`cidr`: family, bits, is_cidr, address length, address.
fn inet(ty: &Type, raw: &[u8]) -> Result<String, ValueError> {
    let mut r = Reader { ty, buf: raw };
    let [family, bits, _is_cidr, len] = r.bytes()?;
    let (addr, max) = match (family, len) {
        (2, 4) => (Ipv4Addr::from(r.bytes::<4>()?).to_string(), 32),
        (3, 16) => (Ipv6Addr::from(r.bytes::<16>()?).to_string(), 128),
        _ => {
            return Err(malformed(
                ty,
                format!("unknown address family {family}/{len}"),
            ))
        }
    };
    r.finish()?;
    let cidr = bits != max || *ty == Type::CIDR;
    Ok(if cidr { format!("{addr}/{bits}") } else { addr })
}

/// Binary arrays: ndim, has-null flag, element oid, (length, lower bound)
/// per dimension, then each element as an i32 length (-1 = NULL) and bytes.
fn array(ty: &Type, elem: &Type, raw: &[u8]) -> Result<Value, ValueError> {
    let mut r = Reader { ty, buf: raw };
    let (ndim, _has_null, _oid) = (r.i32()?, r.i32()?, r.i32()?);
    if !(0..=6).contains(&ndim) {
        return Err(malformed(ty, format!("{ndim} dimensions")));
    }
    let mut dims = Vec::new();
    for _ in 0..ndim {
        let (len, _lower) = (r.i32()?, r.i32()?);
        let len = usize::try_from(len).ok().filter(|&l| l > 0);
        dims.push(len.ok_or_else(|| malformed(ty, "bad dimension length"))?);
    }
    // Every element takes at least 4 bytes: refuse before allocating.
    let count = dims.iter().try_fold(1usize, |n, &l| n.checked_mul(l));
    if ndim > 0 && count.is_none_or(|n| n > r.buf.len() / 4) {
        return Err(malformed(ty, "more elements than bytes"));
    }
    let value = nested(&dims, elem, &mut r)?;
    r.finish()?;
    Ok(value)
}

/// The elements of `dims` (outermost first) as nested JSON arrays.
fn nested(dims: &[usize], elem: &Type, r: &mut Reader<'_>) -> Result<Value, ValueError> {
    let Some((&len, inner)) = dims.split_first() else {
        return Ok(Value::Array(Vec::new()));
    };
    (0..len)
        .map(|_| {
            if !inner.is_empty() {
                return nested(inner, elem, r);
            }
            match r.i32()? {
                -1 => Ok(Value::Null),
                n => match usize::try_from(n) {
                    Ok(n) => to_json(elem, Some(r.take(n)?)),
                    Err(_) => Err(malformed(r.ty, "negative element length")),
                },
            }
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Value::Array)
}

/// A parameter Privet holds as text, sent in the binary format of the type
/// PostgreSQL inferred for its placeholder (text, integers, bool, floats,
/// numeric, date, enums, and domains over those).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextParam<'a>(pub &'a str);

/// `YYYY-MM-DD` (or ±infinity) as days since 2000-01-01.
fn parse_date(s: &str) -> Option<i32> {
    match s.to_ascii_lowercase().as_str() {
        "infinity" => return Some(i32::MAX),
        "-infinity" => return Some(i32::MIN),
        _ => {}
    }
    let mut parts = s.split('-');
    let mut num = |len: usize| {
        let p = parts.next().filter(|p| p.len() == len)?;
        p.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| p.parse::<i64>().ok())?
    };
    let (y, m, d) = (num(4)?, num(2)?, num(2)?);
    let days = days_from_civil(y, m, d);
    if parts.next().is_some() || y < 1 || civil_from_days(days) != (y, m, d) {
        return None;
    }
    i32::try_from(days - PG_EPOCH_DAYS).ok()
}

/// The non-text types a [`TextParam`] can be sent as.
const PARAM_TYPES: &[Type] = &[
    Type::BOOL,
    Type::INT2,
    Type::INT4,
    Type::INT8,
    Type::OID,
    Type::FLOAT4,
    Type::FLOAT8,
    Type::NUMERIC,
    Type::DATE,
];

impl ToSql for TextParam<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        if let Kind::Domain(base) = ty.kind() {
            return self.to_sql(base, out);
        }
        if is_text(ty) {
            out.put_slice(self.0.as_bytes());
            return Ok(IsNull::No);
        }
        let v = self.0.trim();
        let bad = || -> BoxError { format!("the parameter is not a valid `{}`", ty.name()).into() };
        match *ty {
            Type::BOOL => out.put_u8(match v.to_ascii_lowercase().as_str() {
                "true" | "t" | "1" => 1,
                "false" | "f" | "0" => 0,
                _ => return Err(bad()),
            }),
            Type::INT2 => out.put_i16(v.parse().map_err(|_| bad())?),
            Type::INT4 => out.put_i32(v.parse().map_err(|_| bad())?),
            Type::INT8 => out.put_i64(v.parse().map_err(|_| bad())?),
            Type::OID => out.put_u32(v.parse().map_err(|_| bad())?),
            Type::FLOAT4 => out.put_f32(v.parse().map_err(|_| bad())?),
            Type::FLOAT8 => out.put_f64(v.parse().map_err(|_| bad())?),
            Type::NUMERIC => out.put_slice(&numeric_binary(v)?),
            Type::DATE => out.put_i32(parse_date(v).ok_or_else(bad)?),
            _ => {
                let hint = "cast the placeholder, e.g. `CAST($1 AS TEXT)`";
                return Err(
                    format!("a text parameter cannot be sent as `{}`; {hint}", ty.name()).into(),
                );
            }
        }
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        match ty.kind() {
            Kind::Domain(base) => Self::accepts(base),
            _ => is_text(ty) || PARAM_TYPES.contains(ty),
        }
    }

    to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn j(ty: &Type, raw: &[u8]) -> Value {
        to_json(ty, Some(raw)).unwrap()
    }

    fn is_malformed(ty: &Type, raw: &[u8]) -> bool {
        matches!(to_json(ty, Some(raw)), Err(ValueError::Malformed { .. }))
    }

    fn days(y: i64, m: i64, d: i64) -> i64 {
        days_from_civil(y, m, d) - PG_EPOCH_DAYS
    }

    fn be(fields: &[i64], widths: &[usize]) -> Vec<u8> {
        let bytes = fields
            .iter()
            .zip(widths)
            .map(|(f, w)| f.to_be_bytes()[8 - w..].to_vec());
        bytes.collect::<Vec<_>>().concat()
    }

    fn num(weight: i64, sign: i64, dscale: i64, digits: &[i64]) -> Vec<u8> {
        let fields = [&[digits.len() as i64, weight, sign, dscale][..], digits].concat();
        be(&fields, &[2; 64])
    }

    fn arr(dims: &[i32], oid: u32, elems: &[Option<&[u8]>]) -> Vec<u8> {
        let mut v = [dims.len() as i32, 1, oid as i32]
            .map(i32::to_be_bytes)
            .concat();
        v.extend(dims.iter().flat_map(|d| [*d, 1]).flat_map(i32::to_be_bytes));
        for e in elems {
            v.extend(e.map_or(-1, |e| e.len() as i32).to_be_bytes());
            v.extend(e.unwrap_or_default());
        }
        v
    }

    fn custom(name: &str, kind: Kind) -> Type {
        Type::new(name.into(), 90_000, kind, "public".into())
    }

    #[test]
    fn scalars() {
        let uuid = "a0eebc999c0b4ef8bb6d6bb9bd380a11";
        let uuid: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(&uuid[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let v6 = [&[3, 128, 0, 16][..], &[0; 15], &[1]].concat();
        let cases: Vec<(Type, Vec<u8>, Value)> = vec![
            (Type::BOOL, vec![1], json!(true)),
            (Type::BOOL, vec![0], json!(false)),
            (Type::INT2, be(&[-2], &[2]), json!(-2)),
            (Type::INT4, be(&[7], &[4]), json!(7)),
            (Type::INT8, be(&[i64::MIN], &[8]), json!(i64::MIN)),
            (Type::OID, be(&[u32::MAX.into()], &[4]), json!(u32::MAX)),
            (Type::FLOAT4, 1.1f32.to_be_bytes().into(), json!(1.1)),
            (Type::FLOAT8, 1e300f64.to_be_bytes().into(), json!(1e300)),
            (Type::FLOAT8, f64::NAN.to_be_bytes().into(), json!("NaN")),
            (
                Type::FLOAT4,
                f32::INFINITY.to_be_bytes().into(),
                json!("Infinity"),
            ),
            (
                Type::FLOAT8,
                f64::NEG_INFINITY.to_be_bytes().into(),
                json!("-Infinity"),
            ),
            (Type::TEXT, "héllo".into(), json!("héllo")),
            (Type::VARCHAR, "x".into(), json!("x")),
            (Type::BPCHAR, "ab ".into(), json!("ab ")),
            (Type::NAME, "n".into(), json!("n")),
            (Type::CHAR, "c".into(), json!("c")),
            (Type::UNKNOWN, "u".into(), json!("u")),
            (custom("citext", Kind::Simple), "Ab".into(), json!("Ab")),
            (
                custom("mood", Kind::Enum(vec!["ok".into()])),
                "ok".into(),
                json!("ok"),
            ),
            (
                custom("pos", Kind::Domain(Type::INT4)),
                be(&[5], &[4]),
                json!(5),
            ),
            (Type::BYTEA, vec![0, 0xff], json!("AP8=")),
            (Type::BYTEA, vec![], json!("")),
            (
                Type::UUID,
                uuid,
                json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            ),
            (Type::JSON, br#"{"a":[1,2]}"#.into(), json!({"a": [1, 2]})),
            (Type::JSONB, b"\x01{\"b\":null}".into(), json!({"b": null})),
            (
                Type::INET,
                vec![2, 24, 0, 4, 192, 168, 0, 1],
                json!("192.168.0.1/24"),
            ),
            (
                Type::INET,
                vec![2, 32, 0, 4, 10, 0, 0, 1],
                json!("10.0.0.1"),
            ),
            (
                Type::CIDR,
                vec![2, 8, 1, 4, 10, 0, 0, 0],
                json!("10.0.0.0/8"),
            ),
            (Type::INET, v6, json!("::1")),
        ];
        for (ty, raw, expected) in cases {
            assert_eq!(j(&ty, &raw), expected, "{ty}");
        }
        assert_eq!(to_json(&Type::TEXT, None).unwrap(), Value::Null);
    }

    #[test]
    fn malformed_and_unsupported() {
        let fixed = [
            Type::BOOL,
            Type::INT2,
            Type::INT4,
            Type::INT8,
            Type::OID,
            Type::FLOAT4,
            Type::FLOAT8,
        ];
        let more = [
            Type::DATE,
            Type::TIMESTAMP,
            Type::TIMESTAMPTZ,
            Type::TIME,
            Type::TIMETZ,
            Type::INTERVAL,
        ];
        for ty in fixed
            .into_iter()
            .chain(more)
            .chain([Type::UUID, Type::INET, Type::NUMERIC])
        {
            assert!(
                is_malformed(&ty, &[]) && is_malformed(&ty, &[0; 17]),
                "{ty}"
            );
        }
        let cases: [(Type, &[u8]); 8] = [
            (Type::TEXT, &[0xff, 0xfe]),
            (custom("pos", Kind::Domain(Type::INT4)), &[0, 5]),
            (Type::TIME, &(-1i64).to_be_bytes()),
            (Type::JSON, b"{"),
            (Type::JSONB, b"\x02{}"),
            (Type::INET, &[2, 32]),
            (Type::INET, &[3, 128, 0, 4, 1, 2, 3, 4]),
            (Type::INET, &[2, 32, 0, 4, 1, 2, 3, 4, 5]),
        ];
        for (ty, raw) in cases {
            assert!(is_malformed(&ty, raw), "{ty} {raw:?}");
        }
        let err = to_json(&Type::TS_VECTOR, Some(b"x")).unwrap_err();
        assert_eq!(
            err,
            ValueError::Unsupported {
                type_name: "tsvector".into()
            }
        );
        let hint = "values of type `tsvector` cannot be returned; cast the column in the query, e.g. `CAST(col AS TEXT)`";
        assert_eq!(err.to_string(), hint);
        let err = to_json(&Type::INT4, Some(&[1])).unwrap_err().to_string();
        assert_eq!(
            err,
            "PostgreSQL sent a malformed `int4` value: expected 4 bytes, got 1"
        );
    }

    #[test]
    fn numeric_decoding() {
        let big = [12, 3456, 7890, 1234, 5678, 9012, 3456, 7890, 1230];
        let cases = [
            (num(0, 0, 0, &[]), "0"),
            (num(0, 0, 2, &[]), "0.00"),
            (num(0, 0, 2, &[1, 5000]), "1.50"),
            (num(-1, 0x4000, 3, &[10]), "-0.001"),
            (num(-1, 0, 4, &[1]), "0.0001"),
            (num(-2, 0, 5, &[1000]), "0.00001"),
            (num(0, 0, 0, &[100]), "100"),
            (num(1, 0, 0, &[1]), "10000"),
            (num(7, 0, 3, &big), "123456789012345678901234567890.123"),
            (num(0, 0xC000, 0, &[]), "NaN"),
            (num(0, 0xD000, 0, &[]), "Infinity"),
            (num(0, 0xF000, 0, &[]), "-Infinity"),
        ];
        for (raw, text) in cases {
            assert_eq!(j(&Type::NUMERIC, &raw), json!(text));
        }
        for bad in [
            num(0, 0x1234, 0, &[]),
            num(0, 0, 0, &[10_000]),
            num(0, 0, 0, &[1])[..9].to_vec(),
            be(&[-1, 0, 0, 0], &[2; 4]),
        ] {
            assert!(is_malformed(&Type::NUMERIC, &bad), "{bad:?}");
        }
    }

    #[test]
    fn numeric_round_trip() {
        let cases =
            "0=0 -0=0 0.000=0.000 1.50=1.50 -0.001=-0.001 +7=7 007.50=7.50 .5=0.5 5.=5 100=100 \
            0.0001=0.0001 123456789012345678901234567890.123=123456789012345678901234567890.123 \
            -12345678901234567890.123456789=-12345678901234567890.123456789 1e3=1000 1.5E-3=0.0015 \
            1.50e1=15.0 1e-9=0.000000001 NaN=NaN infinity=Infinity -Infinity=-Infinity";
        for (input, text) in cases.split_whitespace().filter_map(|c| c.split_once('=')) {
            let raw = numeric_binary(input).unwrap();
            assert_eq!(numeric_text(&Type::NUMERIC, &raw).unwrap(), text, "{input}");
        }
        assert_eq!(numeric_binary("1.50").unwrap(), num(0, 0, 2, &[1, 5000]));
        assert_eq!(numeric_binary("-0.001").unwrap(), num(-1, 0x4000, 3, &[10]));
        for bad in [
            "", ".", "abc", "1.2.3", "1e", "--1", "1 2", "1e999999", "1e-20000",
        ] {
            assert!(numeric_binary(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dates_and_times() {
        let at = days(2024, 5, 1) * DAY_MICROS + 37_353_000_000;
        let (d, t) = (|v: i64| be(&[v], &[4]), |v: i64| be(&[v], &[8]));
        let tz = |micros: i64, west: i64| be(&[micros, west], &[8, 4]);
        let iv = |micros: i64, days: i64, months: i64| be(&[micros, days, months], &[8, 4, 4]);
        let cases = [
            (Type::DATE, d(0), "2000-01-01"),
            (Type::DATE, d(days(2024, 2, 29)), "2024-02-29"),
            (Type::DATE, d(days(1969, 12, 31)), "1969-12-31"),
            (Type::DATE, d(days(-43, 3, 15)), "0044-03-15 BC"),
            (Type::DATE, d(i32::MAX.into()), "infinity"),
            (Type::DATE, d(i32::MIN.into()), "-infinity"),
            (Type::TIMESTAMP, t(at), "2024-05-01T10:22:33"),
            (Type::TIMESTAMP, t(at + 500_000), "2024-05-01T10:22:33.5"),
            (Type::TIMESTAMPTZ, t(at), "2024-05-01T10:22:33Z"),
            (Type::TIMESTAMPTZ, t(at + 120), "2024-05-01T10:22:33.00012Z"),
            (Type::TIMESTAMP, t(-1), "1999-12-31T23:59:59.999999"),
            (Type::TIMESTAMPTZ, t(i64::MAX), "infinity"),
            (Type::TIMESTAMP, t(i64::MIN), "-infinity"),
            (Type::TIME, t(0), "00:00:00"),
            (Type::TIME, t(37_353_250_000), "10:22:33.25"),
            (Type::TIME, t(DAY_MICROS), "24:00:00"),
            (Type::TIMETZ, tz(37_353_000_000, -19_800), "10:22:33+05:30"),
            (Type::TIMETZ, tz(37_353_000_000, 7200), "10:22:33-02"),
            (Type::TIMETZ, tz(0, 0), "00:00:00+00"),
            (
                Type::INTERVAL,
                iv(14_706_500_000, 3, 14),
                "P1Y2M3DT4H5M6.5S",
            ),
            (Type::INTERVAL, iv(0, 0, 0), "PT0S"),
            (Type::INTERVAL, iv(-1_500_000, -1, 0), "P-1DT-1.5S"),
            (Type::INTERVAL, iv(0, 0, -14), "P-1Y-2M"),
            (Type::INTERVAL, iv(3_600_000_000, 0, 0), "PT1H"),
        ];
        for (ty, raw, text) in cases {
            assert_eq!(j(&ty, &raw), json!(text), "{ty}");
        }
        assert!(j(&Type::DATE, &d(i64::from(i32::MIN) + 1)).is_string());
        assert!(j(&Type::TIMESTAMP, &t(i64::MIN + 1)).is_string());
        assert!(j(&Type::INTERVAL, &iv(i64::MIN, -1, -1)).is_string());
    }

    #[test]
    fn arrays() {
        let (one, three) = (1i32.to_be_bytes(), 3i32.to_be_bytes());
        let good = arr(&[3], 23, &[Some(&one), None, Some(&three)]);
        assert_eq!(j(&Type::INT4_ARRAY, &good), json!([1, null, 3]));
        let raw = arr(
            &[2, 2],
            25,
            &[Some(b"a"), Some(b"b"), Some(b"c"), Some(b"d")],
        );
        assert_eq!(j(&Type::TEXT_ARRAY, &raw), json!([["a", "b"], ["c", "d"]]));
        assert_eq!(j(&Type::INT4_ARRAY, &arr(&[], 23, &[])), json!([]));
        let raw = arr(&[1], 1700, &[Some(&num(0, 0, 2, &[1, 5000]))]);
        assert_eq!(j(&Type::NUMERIC_ARRAY, &raw), json!(["1.50"]));
        let mut neg_len = arr(&[1], 23, &[Some(&one)]);
        neg_len[20..24].copy_from_slice(&(-5i32).to_be_bytes());
        let bad = [
            [&good[..], &[0]].concat(),
            neg_len,
            arr(&[i32::MAX, i32::MAX], 23, &[]),
            arr(&[-1], 23, &[]),
            arr(&[0], 23, &[]),
            arr(&[1; 7], 23, &[Some(&one)]),
            arr(&[1], 23, &[Some(&[1, 2])]),
        ];
        let truncated = [0, 5, 12, 20, good.len() - 1].map(|cut| good[..cut].to_vec());
        for raw in bad.into_iter().chain(truncated) {
            assert!(is_malformed(&Type::INT4_ARRAY, &raw), "{raw:?}");
        }
    }

    #[test]
    fn raw_value_and_text_params() {
        assert!(<RawValue as FromSql>::accepts(&Type::TS_VECTOR));
        assert_eq!(
            RawValue::from_sql(&Type::TEXT, b"ab").unwrap(),
            RawValue(b"ab")
        );
        let send = |ty: &Type, s: &str| {
            let mut out = BytesMut::new();
            TextParam(s)
                .to_sql_checked(ty, &mut out)
                .map(|_| out.to_vec())
        };
        let cases = [
            (Type::TEXT, " héllo", " héllo".as_bytes().to_vec()),
            (custom("mood", Kind::Enum(vec![])), "ok", b"ok".to_vec()),
            (Type::INT2, " -2 ", be(&[-2], &[2])),
            (Type::INT4, "7", be(&[7], &[4])),
            (Type::INT8, "41", be(&[41], &[8])),
            (Type::OID, "42", be(&[42], &[4])),
            (Type::FLOAT8, "1.5", 1.5f64.to_be_bytes().into()),
            (Type::FLOAT4, "1.5", 1.5f32.to_be_bytes().into()),
            (Type::NUMERIC, "1.50", num(0, 0, 2, &[1, 5000])),
            (Type::DATE, "2024-02-29", be(&[days(2024, 2, 29)], &[4])),
            (Type::DATE, "infinity", be(&[i32::MAX.into()], &[4])),
            (custom("d", Kind::Domain(Type::INT8)), "3", be(&[3], &[8])),
        ];
        let bools = [
            ("true", 1),
            ("T", 1),
            ("1", 1),
            ("false", 0),
            ("f", 0),
            ("0", 0),
        ];
        let bools = bools.map(|(s, b)| (Type::BOOL, s, vec![b]));
        for (ty, s, bytes) in cases.into_iter().chain(bools) {
            assert_eq!(send(&ty, s).unwrap(), bytes, "{ty} {s}");
        }
        let bad = [
            (Type::INT2, "40000"),
            (Type::INT8, "abc"),
            (Type::INT4, "1.5"),
            (Type::BOOL, "yes"),
            (Type::NUMERIC, "x"),
        ];
        let dates =
            ["2023-02-29", "2024-2-1", "0000-01-01", "2024-01-01-"].map(|d| (Type::DATE, d));
        for (ty, s) in bad.into_iter().chain(dates) {
            let err = send(&ty, s).unwrap_err().to_string();
            assert_eq!(
                err,
                format!("the parameter is not a valid `{}`", ty.name()),
                "{s}"
            );
        }
        assert!(!<TextParam as ToSql>::accepts(&Type::UUID));
        assert!(send(&Type::UUID, "x").is_err());
        let err = TextParam("x")
            .to_sql(&Type::UUID, &mut BytesMut::new())
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("as `uuid`; cast the placeholder"),
            "{err}"
        );
    }

    fn values(row: &tokio_postgres::Row) -> Vec<Result<Value, ValueError>> {
        let raw = |i| row.try_get::<_, Option<RawValue>>(i).unwrap().map(|r| r.0);
        (0..row.len())
            .map(|i| to_json(row.columns()[i].type_(), raw(i)))
            .collect()
    }

    fn ok_values(row: &tokio_postgres::Row) -> Value {
        Value::Array(values(row).into_iter().map(Result::unwrap).collect())
    }

    /// Literals of every supported type through a real server, decoded with
    /// [`RawValue`] + [`to_json`], and [`TextParam`] round trips.
    #[tokio::test]
    async fn live() {
        let Some(url) = crate::testing::postgres_url("pg_values::live") else {
            return;
        };
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute("SET TimeZone = 'UTC'; SET IntervalStyle = iso_8601")
            .await
            .unwrap();
        let sql = r#"SELECT 1::int2, 2::int4, 3::int8, 1.50::numeric, '-0.001'::numeric, 'NaN'::numeric,
            1e300::float8, 'NaN'::float8, true, 'héllo'::text, 'x'::varchar(3), 'ab'::char(3),
            DATE '2024-02-29', TIMESTAMP '2024-05-01 10:22:33.5', TIMESTAMPTZ '2024-05-01 10:22:33+02',
            '\x00ff'::bytea, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid, '{"a":[1,2]}'::json,
            '{"b":null}'::jsonb, ARRAY[1,NULL,3], ARRAY[['a','b'],['c','d']], '{}'::int4[], NULL::text,
            'infinity'::timestamptz, 12345678901234567890.123456789::numeric, 0::numeric, 100::numeric,
            0.0001::numeric, 'Infinity'::numeric, 1.1::float4, 'x'::"char", 'n'::name, 42::oid,
            TIME '10:22:33.25', INTERVAL '1 year 2 months 3 days 04:05:06.5', '192.168.0.1/24'::inet,
            '10.0.0.0/8'::cidr, DATE '0044-03-15 BC', 'a b'::tsvector"#;
        let mut got = values(&client.query_one(sql, &[]).await.unwrap());
        let unsupported = got.pop().unwrap().unwrap_err();
        assert_eq!(
            unsupported,
            ValueError::Unsupported {
                type_name: "tsvector".into()
            }
        );
        let expected = json!([1, 2, 3, "1.50", "-0.001", "NaN", 1e300, "NaN", true, "héllo", "x", "ab ",
            "2024-02-29", "2024-05-01T10:22:33.5", "2024-05-01T08:22:33Z", "AP8=",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", {"a": [1, 2]}, {"b": null}, [1, null, 3],
            [["a", "b"], ["c", "d"]], [], null, "infinity", "12345678901234567890.123456789", "0", "100",
            "0.0001", "Infinity", 1.1, "x", "n", 42, "10:22:33.25", "P1Y2M3DT4H5M6.5S", "192.168.0.1/24",
            "10.0.0.0/8", "0044-03-15 BC"]);
        assert_eq!(
            Value::Array(got.into_iter().map(Result::unwrap).collect()),
            expected
        );

        // Where PostgreSQL's own text has the same format, compare with it;
        // numerics go through the TextParam encoder first.
        let sql = "SELECT $1::numeric, $1::numeric::text";
        for n in [
            "-12.500",
            "1e3",
            "0.000",
            "99999999.000000001",
            "-1.5e-7",
            "1234567890123456789012",
        ] {
            let row = client.query_one(sql, &[&TextParam(n)]).await.unwrap();
            assert_eq!(ok_values(&row)[0], json!(row.get::<_, String>(1)), "{n}");
        }
        let literals = [
            "'-1 day -00:00:01.5'::interval",
            "'-14 months 1 hour'::interval",
            "'10:22:33+05:30'::timetz",
            "'::1/64'::inet",
            "'4713-01-01 BC'::date",
        ];
        for lit in literals {
            let row = client
                .query_one(&format!("SELECT {lit}, {lit}::text"), &[])
                .await
                .unwrap();
            assert_eq!(ok_values(&row)[0], json!(row.get::<_, String>(1)), "{lit}");
        }

        // Enums and domains need a schema of their own.
        let schema = crate::testing::unique_schema_name("pg_values");
        let ddl = format!("CREATE SCHEMA {schema}; CREATE TYPE {schema}.mood AS ENUM ('ok'); CREATE DOMAIN {schema}.pos AS int4[]");
        client.batch_execute(&ddl).await.unwrap();
        let sql = format!("SELECT 'ok'::{schema}.mood, '{{1,2}}'::{schema}.pos, $1::{schema}.mood");
        let row = client.query_one(&sql, &[&TextParam("ok")]).await;
        crate::testing::drop_schema(&url, &schema);
        assert_eq!(ok_values(&row.unwrap()), json!(["ok", [1, 2], "ok"]));

        let sql = "SELECT $1::int8 + 1, $2::numeric, $3::text, $4::bool, $5::date, $6::float8";
        let params = ["41", "-12.500", "héllo", "t", "2024-02-29", "2.5"].map(TextParam);
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let row = client.query_one(sql, &refs).await.unwrap();
        assert_eq!(
            ok_values(&row),
            json!([42, "-12.500", "héllo", true, "2024-02-29", 2.5])
        );
        let err = client
            .query_one("SELECT $1::int8", &[&TextParam("abc")])
            .await
            .unwrap_err();
        let source = err.source().map(ToString::to_string).unwrap_or_default();
        assert_eq!(source, "the parameter is not a valid `int8`", "{err}");
    }
}
