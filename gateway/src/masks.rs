//! Column masks, named by Cedar `@mask("...")` annotations.
//!
//! Each mask has two forms that must agree:
//! - an SQL form per dialect ([`sql_expr`]), so policy views compute it
//!   inside the database and every predicate, function and join sees only
//!   masked values;
//! - a Rust form ([`apply`]) on the JSON values backends return, for masks
//!   the database cannot compute and to cross-check the SQL.
//!
//! Both count characters, not bytes (SQLite's and PostgreSQL's `substr`
//! and `length` do on TEXT), and give non-text values as their text
//! (integers in decimal). NULL in → NULL out for every mask.

use std::borrow::Cow;
use std::fmt;
use std::ops::ControlFlow;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};

use base64::Engine as _;
use rusqlite::functions::FunctionFlags;
use rusqlite::types::ValueRef;
use serde_json::Value as Json;
use sqlparser::ast::{visit_expressions_mut, Expr, Value};
use sqlparser::dialect::{PostgreSqlDialect, SQLiteDialect};
use sqlparser::parser::Parser;
use vault::TokenKey;

/// A column mask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mask {
    /// The text `[redacted]`.
    Redact,
    /// NULL, whatever the value.
    Null,
    /// First character of the local part, `***`, then `@` and the domain
    /// (after the last `@`): `jane.doe@example.com` → `j***@example.com`;
    /// no `@` → `***`.
    EmailPartial,
    /// `***` then the last 4 characters.
    PhoneLast4,
    /// `**** **** **** ` then the last 4 characters.
    CardLast4,
    /// The first 4 characters of an ISO date or timestamp: the year.
    YearOnly,
    /// The first 3 characters then `**`: `SW1A 1AA` → `SW1**`.
    Zip3,
    /// A keyed deterministic token ([`TokenKey::pseudonym`]): equal values
    /// give equal tokens within a domain, so joins still match.
    Pseudonym,
}

impl Mask {
    /// Every mask, in declaration order.
    pub const ALL: [Mask; 8] = [
        Mask::Redact,
        Mask::Null,
        Mask::EmailPartial,
        Mask::PhoneLast4,
        Mask::CardLast4,
        Mask::YearOnly,
        Mask::Zip3,
        Mask::Pseudonym,
    ];

    /// The name policies use in `@mask("...")`.
    pub fn name(self) -> &'static str {
        match self {
            Mask::Redact => "redact",
            Mask::Null => "null",
            Mask::EmailPartial => "email_partial",
            Mask::PhoneLast4 => "phone_last4",
            Mask::CardLast4 => "card_last4",
            Mask::YearOnly => "year_only",
            Mask::Zip3 => "zip3",
            Mask::Pseudonym => "pseudonym",
        }
    }

    /// How API responses describe the column's transform, e.g.
    /// `mask:email_partial`.
    pub fn transform_name(self) -> String {
        format!("mask:{}", self.name())
    }
}

impl fmt::Display for Mask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A mask name that is not one of [`Mask::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown mask `{name}`; the masks are: {}", valid_names())]
pub struct UnknownMask {
    pub name: String,
}

fn valid_names() -> String {
    Mask::ALL.map(Mask::name).join(", ")
}

impl FromStr for Mask {
    type Err = UnknownMask;

    /// Parses a mask name exactly as [`Mask::name`] spells it.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mask::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| UnknownMask { name: s.to_owned() })
    }
}

/// The SQL dialect a mask expression is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The SQLite function computing pseudonyms, registered by
/// [`register_sqlite_functions`]. Anyone who can call it can compute the
/// token of any guessed value, so client SQL must never be allowed to call
/// it: only policy views may.
pub const PSEUDONYM_FUNCTION: &str = "privet_pseudonym";

// Template placeholders. Templates are constants, so these identifiers only
// ever come from them; client names are substituted in afterwards and never
// re-scanned.
/// The column expression itself.
const COLUMN: &str = "privet_column";
/// The column as TEXT: masks operate on the value's text.
const TEXT: &str = "privet_text";
/// The pseudonym domain, as a string literal.
const DOMAIN: &str = "privet_domain";

/// The masks' SQL templates. Every function and operator used is strict
/// (NULL in → NULL out), so only `redact` needs an explicit NULL case.
/// `substr`/`length`/`rtrim`/`replace` count characters on TEXT in both
/// databases. The email domain starts after the last `@`, found portably as
/// `rtrim(v, <every non-@ character of v>)`: the prefix up to that `@`.
fn template(mask: Mask, dialect: Dialect) -> Option<&'static str> {
    use Dialect::{Postgres, Sqlite};
    Some(match (mask, dialect) {
        (Mask::Redact, _) => "CASE WHEN privet_column IS NULL THEN NULL ELSE '[redacted]' END",
        (Mask::Null, _) => "NULL",
        (Mask::EmailPartial, Sqlite) => {
            "CASE WHEN instr(privet_text, '@') = 0 THEN '***' \
             ELSE SUBSTR(privet_text, 1, min(1, length(rtrim(privet_text, replace(privet_text, '@', ''))) - 1)) \
             || '***@' || SUBSTR(privet_text, length(rtrim(privet_text, replace(privet_text, '@', ''))) + 1) END"
        }
        (Mask::EmailPartial, Postgres) => {
            "CASE WHEN strpos(privet_text, '@') = 0 THEN '***' \
             ELSE SUBSTR(privet_text, 1, LEAST(1, length(rtrim(privet_text, replace(privet_text, '@', ''))) - 1)) \
             || '***@' || SUBSTR(privet_text, length(rtrim(privet_text, replace(privet_text, '@', ''))) + 1) END"
        }
        // SQLite has no right(); a negative start counts from the end (and
        // PostgreSQL's substr does not do that).
        (Mask::PhoneLast4, Sqlite) => "'***' || SUBSTR(privet_text, -4)",
        (Mask::PhoneLast4, Postgres) => "'***' || right(privet_text, 4)",
        (Mask::CardLast4, Sqlite) => "'**** **** **** ' || SUBSTR(privet_text, -4)",
        (Mask::CardLast4, Postgres) => "'**** **** **** ' || right(privet_text, 4)",
        (Mask::YearOnly, _) => "SUBSTR(privet_text, 1, 4)",
        (Mask::Zip3, _) => "SUBSTR(privet_text, 1, 3) || '**'",
        (Mask::Pseudonym, Sqlite) => "privet_pseudonym(privet_domain, privet_column)",
        // HMAC-SHA256 from sha256(): the session setting named by
        // privet_domain holds the domain key's HMAC pads (see
        // `pseudonym_setting`). Then "tok_" + URL-safe base64 of 16 bytes,
        // exactly as `TokenKey::pseudonym`.
        (Mask::Pseudonym, Postgres) => {
            "'tok_' || rtrim(translate(encode(substr(sha256(\
             substr(decode(current_setting(privet_domain), 'hex'), 65, 64) || sha256(\
             substr(decode(current_setting(privet_domain), 'hex'), 1, 64) || convert_to(privet_text, 'UTF8'))), \
             1, 16), 'base64'), '+/', '-_'), '=')"
        }
    })
}

/// The column as TEXT, so integers, dates and timestamps are masked as
/// their text (PostgreSQL's text functions do not accept other types).
const TEXT_TEMPLATE: &str = "CAST(privet_column AS TEXT)";

fn parse_template(sql: &str, dialect: Dialect) -> Option<Expr> {
    let parsed = match dialect {
        Dialect::Sqlite => Parser::new(&SQLiteDialect {}).try_with_sql(sql),
        Dialect::Postgres => Parser::new(&PostgreSqlDialect {}).try_with_sql(sql),
    };
    parsed.and_then(|mut p| p.parse_expr()).ok()
}

/// One dialect's parsed templates.
struct Templates {
    /// [`TEXT_TEMPLATE`].
    text: Option<Expr>,
    /// Indexed by `Mask as usize`.
    masks: [Option<Expr>; Mask::ALL.len()],
}

/// The templates, parsed once, indexed by `Dialect as usize`. A template
/// that fails to parse yields None (the mask is then applied in Rust, still
/// masked); `every_template_parses` checks none does.
fn templates(dialect: Dialect) -> &'static Templates {
    static TEMPLATES: OnceLock<[Templates; 2]> = OnceLock::new();
    let all = TEMPLATES.get_or_init(|| {
        [Dialect::Sqlite, Dialect::Postgres].map(|dialect| Templates {
            text: parse_template(TEXT_TEMPLATE, dialect),
            masks: Mask::ALL
                .map(|mask| template(mask, dialect).and_then(|t| parse_template(t, dialect))),
        })
    });
    &all[dialect as usize]
}

/// `template` with each placeholder identifier replaced by its expression.
fn substitute(template: &Expr, replacements: &[(&str, &Expr)]) -> Expr {
    let mut expr = template.clone();
    // Post-order: a replaced node is not visited again, so a client column
    // that happens to be named like a placeholder is never substituted.
    let _ = visit_expressions_mut(&mut expr, |e| {
        if let Expr::Identifier(ident) = e {
            if ident.quote_style.is_none() {
                if let Some((_, with)) = replacements.iter().find(|(n, _)| *n == ident.value) {
                    *e = (*with).clone();
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    expr
}

/// The PostgreSQL session setting holding the pseudonym key of `domain`
/// (hex, so any domain gives a valid setting name).
pub fn pseudonym_setting(domain: &str) -> String {
    let mut name = String::from("privet.pseudonym_");
    for b in domain.as_bytes() {
        name.push_str(&format!("{b:02x}"));
    }
    name
}

/// The value of [`pseudonym_setting`]: the HMAC inner and outer pads of the
/// domain's key (RFC 2104, 64-byte blocks), hex. This is the domain key in
/// another form: it is only ever sent as a bound parameter, on the
/// gateway's own connections, and only client SQL that may call
/// `current_setting` could read it back (the analyzer allows no such call).
pub fn pseudonym_setting_value(key: &TokenKey, domain: &str) -> String {
    let domain_key = key.domain_key(domain);
    let mut pads = [0u8; 128];
    for (i, pad) in pads.iter_mut().enumerate() {
        let k = domain_key.get(i % 64).copied().unwrap_or(0);
        *pad = k ^ if i < 64 { 0x36 } else { 0x5c };
    }
    pads.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `dialect` computes `mask` inside the database; when not, the
/// mask is applied to results and the column may only be projected as it is.
pub fn computed_in_sql(mask: Mask, dialect: Dialect) -> bool {
    templates(dialect).masks[mask as usize].is_some()
}

/// The SQL expression computing the masked value of `column` (an
/// already-qualified column expression), as an AST built from a constant
/// template: names and values are substituted as nodes, never spliced into
/// text. `domain` is the pseudonym domain (`"table.column"`).
///
/// Returns None when this database cannot compute the mask (Pseudonym on
/// PostgreSQL: the key never leaves the gateway). The caller then applies
/// it with [`apply`] and must restrict that column to direct projection.
pub fn sql_expr(mask: Mask, column: Expr, domain: &str, dialect: Dialect) -> Option<Expr> {
    let templates = templates(dialect);
    let template = templates.masks[mask as usize].as_ref()?;
    // The AST prints without adding parentheses, so a compound expression
    // needs them to keep its meaning next to operators like IS NULL.
    let column = match column {
        e @ (Expr::Identifier(_) | Expr::CompoundIdentifier(_) | Expr::Nested(_)) => e,
        e => Expr::Nested(Box::new(e)),
    };
    let text = substitute(templates.text.as_ref()?, &[(COLUMN, &column)]);
    let domain = Expr::value(Value::SingleQuotedString(match dialect {
        Dialect::Sqlite => domain.to_owned(),
        Dialect::Postgres => pseudonym_setting(domain),
    }));
    Some(substitute(
        template,
        &[(COLUMN, &column), (TEXT, &text), (DOMAIN, &domain)],
    ))
}

/// The Rust form of `mask`, on a JSON value as the backends return it.
///
/// Text masks read strings as they are and other values as their JSON text
/// (numbers in decimal, `true`/`false`), like the SQL form's `CAST(... AS
/// TEXT)` on the database's values. (Known divergence: a REAL that SQLite
/// prints in exponent form, e.g. `1.0e+20`, reads `1e20` here; BLOBs reach
/// Rust as base64 but SQL text masks see their bytes.)
pub fn apply(mask: Mask, value: &Json, domain: &str, key: &TokenKey) -> Json {
    let text = match value {
        Json::Null => return Json::Null,
        Json::String(s) => Cow::Borrowed(s.as_str()),
        other => Cow::Owned(other.to_string()),
    };
    match mask {
        Mask::Pseudonym => Json::String(key.pseudonym(domain, text.as_bytes())),
        other => apply_unkeyed(other, &text).map_or(Json::Null, Json::String),
    }
}

/// The masks that need no key, on text (`None`: NULL). Also the export
/// path's `mask:NAME` transforms, so a dataset masks exactly as a query
/// does. [`Mask::Pseudonym`] is keyed: here it redacts, never passes the
/// value through.
pub fn apply_unkeyed(mask: Mask, text: &str) -> Option<String> {
    Some(match mask {
        Mask::Redact | Mask::Pseudonym => "[redacted]".to_owned(),
        Mask::Null => return None,
        Mask::EmailPartial => email_partial(text),
        Mask::PhoneLast4 => format!("***{}", last_chars(text, 4)),
        Mask::CardLast4 => format!("**** **** **** {}", last_chars(text, 4)),
        Mask::YearOnly => first_chars(text, 4).to_owned(),
        Mask::Zip3 => format!("{}**", first_chars(text, 3)),
    })
}

fn email_partial(text: &str) -> String {
    match text.rsplit_once('@') {
        None => "***".to_owned(),
        Some((local, domain)) => format!("{}***@{domain}", first_chars(local, 1)),
    }
}

/// The first `n` characters (not bytes) of `s`.
fn first_chars(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((end, _)) => &s[..end],
        None => s,
    }
}

/// The last `n` characters (not bytes) of `s`.
fn last_chars(s: &str, n: usize) -> &str {
    match n.checked_sub(1).and_then(|k| s.char_indices().nth_back(k)) {
        Some((start, _)) => &s[start..],
        None if n == 0 => "",
        None => s,
    }
}

/// Registers the SQL functions masks need on an SQLite connection:
/// [`PSEUDONYM_FUNCTION`]`(domain TEXT, value ANY) -> TEXT`, equal to
/// [`apply`]`(Mask::Pseudonym, ...)` on the value as the SQLite backend
/// returns it in JSON (integers in decimal, so `42` and `'42'` give the same
/// token and joins between an id and its pseudonymized foreign key match;
/// REALs as JSON numbers; BLOBs as standard base64). NULL in → NULL out.
///
/// Deterministic and innocuous, so policy views and indexes may use it even
/// with `trusted_schema` off.
pub fn register_sqlite_functions(
    conn: &rusqlite::Connection,
    key: Arc<TokenKey>,
) -> rusqlite::Result<()> {
    // The domain's key, derived once per connection and domain: a join
    // on pseudonyms computes one token per row and domain, and the
    // derivation would cost more than the token. (A connection is used by
    // one thread at a time: the lock is never contended.)
    // Only the last domain is kept: a statement's tokens come in runs of
    // one domain, and comparing bytes is cheaper than hashing.
    let last: std::sync::Mutex<Option<(Vec<u8>, vault::DomainTokenKey)>> =
        std::sync::Mutex::default();
    conn.create_scalar_function(
        PSEUDONYM_FUNCTION,
        2,
        FunctionFlags::SQLITE_UTF8
            | FunctionFlags::SQLITE_DETERMINISTIC
            | FunctionFlags::SQLITE_INNOCUOUS,
        move |ctx| {
            let domain = ctx.get_raw(0).as_str().map_err(|e| {
                rusqlite::Error::UserFunctionError(format!("pseudonym domain: {e}").into())
            })?;
            let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
            let domain_key = match &mut *last {
                Some((d, k)) if d.as_slice() == domain.as_bytes() => k,
                slot => {
                    &mut slot
                        .insert((domain.as_bytes().to_vec(), key.for_domain(domain)))
                        .1
                }
            };
            let text: Cow<'_, [u8]> = match ctx.get_raw(1) {
                ValueRef::Null => return Ok(None),
                ValueRef::Integer(i) => Cow::Owned(i.to_string().into_bytes()),
                ValueRef::Real(f) => match serde_json::Number::from_f64(f) {
                    Some(n) => Cow::Owned(n.to_string().into_bytes()),
                    // The backend returns non-finite REALs as NULL.
                    None => return Ok(None),
                },
                ValueRef::Text(t) => Cow::Borrowed(t),
                ValueRef::Blob(b) => Cow::Owned(
                    base64::engine::general_purpose::STANDARD
                        .encode(b)
                        .into_bytes(),
                ),
            };
            Ok(Some(domain_key.pseudonym(&text)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::Connection;
    use sqlparser::ast::Ident;

    fn key() -> Arc<TokenKey> {
        Arc::new(TokenKey::from_bytes(&[7; 32]))
    }

    fn column(name: &str) -> Expr {
        Expr::Identifier(Ident::new(name))
    }

    fn sql(mask: Mask, dialect: Dialect) -> Option<String> {
        sql_expr(mask, column("v"), "t.v", dialect).map(|e| e.to_string())
    }

    /// As the SQLite backend converts values to JSON.
    fn to_json(value: ValueRef<'_>) -> Json {
        match value {
            ValueRef::Null => Json::Null,
            ValueRef::Integer(i) => i.into(),
            ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Json::Null, Into::into),
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
            ValueRef::Blob(b) => base64::engine::general_purpose::STANDARD.encode(b).into(),
        }
    }

    fn connection(key: Arc<TokenKey>) -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        register_sqlite_functions(&conn, key).unwrap();
        conn
    }

    const TEXT_INPUTS: &[&str] = &[
        "jane.doe@example.com",
        "",
        "a",
        "ab",
        "abc",
        "abcd",
        "abcde",
        "@",
        "@@",
        "a@",
        "@example.com",
        "no at sign",
        "a@b@example.com",
        "\"a@b\"@example.com",
        "zoë@exämple.com",
        "zoe\u{308}@exa\u{308}mple.com",
        "東京都港区",
        "東@京",
        "+44 20 7946 0958",
        "4111 1111 1111 1111",
        "1984-07-02",
        "2024-02-29T10:30:00Z",
        "SW1A 1AA",
        "😀",
        "x😀y😀z",
        "42",
    ];

    /// A table `t(v)` (no declared type, so values keep theirs) holding
    /// every test input: texts, integers, a REAL and NULL.
    fn inputs_table(conn: &Connection) {
        conn.execute_batch("CREATE TABLE t(v)").unwrap();
        let mut insert = conn.prepare("INSERT INTO t(v) VALUES (?1)").unwrap();
        for text in TEXT_INPUTS {
            insert.execute([text]).unwrap();
        }
        for int in [0i64, 42, -7, 1234567, i64::MAX] {
            insert.execute([int]).unwrap();
        }
        insert.execute([2.5f64]).unwrap();
        insert.execute([rusqlite::types::Null]).unwrap();
    }

    #[test]
    fn sql_and_rust_forms_agree_on_sqlite() {
        let key = key();
        let conn = connection(key.clone());
        inputs_table(&conn);
        for mask in Mask::ALL {
            let expr = sql(mask, Dialect::Sqlite).unwrap();
            let mut stmt = conn
                .prepare(&format!("SELECT v, {expr} FROM t ORDER BY rowid"))
                .unwrap();
            let mut rows = stmt.query([]).unwrap();
            let mut checked = 0;
            while let Some(row) = rows.next().unwrap() {
                let input = to_json(row.get_ref(0).unwrap());
                let from_sql = to_json(row.get_ref(1).unwrap());
                assert_eq!(
                    from_sql,
                    apply(mask, &input, "t.v", &key),
                    "{mask} on {input}: {expr}"
                );
                checked += 1;
            }
            assert_eq!(checked, TEXT_INPUTS.len() + 7);
        }
    }

    #[test]
    fn rust_form_examples() {
        let key = key();
        let m = |mask: Mask, v: Json| apply(mask, &v, "t.v", &key);
        let s = |v: &str| Json::from(v);
        assert_eq!(m(Mask::Redact, s("x")), s("[redacted]"));
        assert_eq!(m(Mask::Null, s("x")), Json::Null);
        assert_eq!(
            m(Mask::EmailPartial, s("jane.doe@example.com")),
            s("j***@example.com")
        );
        assert_eq!(
            m(Mask::EmailPartial, s("zoë@exämple.com")),
            s("z***@exämple.com")
        );
        assert_eq!(m(Mask::EmailPartial, s("a@b@c.org")), s("a***@c.org"));
        assert_eq!(m(Mask::EmailPartial, s("@c.org")), s("***@c.org"));
        assert_eq!(m(Mask::EmailPartial, s("nobody")), s("***"));
        assert_eq!(m(Mask::PhoneLast4, s("+44 20 7946 0958")), s("***0958"));
        assert_eq!(m(Mask::PhoneLast4, s("東京都港区")), s("***京都港区"));
        assert_eq!(m(Mask::PhoneLast4, s("12")), s("***12"));
        assert_eq!(
            m(Mask::CardLast4, s("4111 1111 1111 1234")),
            s("**** **** **** 1234")
        );
        assert_eq!(m(Mask::YearOnly, s("1984-07-02")), s("1984"));
        assert_eq!(m(Mask::Zip3, s("SW1A 1AA")), s("SW1**"));
        assert_eq!(m(Mask::Zip3, s("東京都港区")), s("東京都**"));
        assert_eq!(m(Mask::Zip3, Json::from(90210)), s("902**"));
        assert_eq!(m(Mask::YearOnly, Json::from(true)), s("true"));
        for mask in Mask::ALL {
            assert_eq!(m(mask, Json::Null), Json::Null, "{mask}");
        }
    }

    #[test]
    fn char_helpers_count_characters() {
        assert_eq!(first_chars("zoë", 3), "zoë");
        assert_eq!(first_chars("zoë", 2), "zo");
        assert_eq!(first_chars("", 2), "");
        assert_eq!(last_chars("ëab", 3), "ëab");
        assert_eq!(last_chars("xëab", 3), "ëab");
        assert_eq!(last_chars("ab", 4), "ab");
        assert_eq!(last_chars("ab", 0), "");
        assert_eq!(last_chars("", 4), "");
    }

    #[test]
    fn sqlite_sql_text() {
        let expected = [
            (
                Mask::Redact,
                "CASE WHEN v IS NULL THEN NULL ELSE '[redacted]' END",
            ),
            (Mask::Null, "NULL"),
            (
                Mask::EmailPartial,
                "CASE WHEN instr(CAST(v AS TEXT), '@') = 0 THEN '***' \
                 ELSE SUBSTR(CAST(v AS TEXT), 1, min(1, length(rtrim(CAST(v AS TEXT), \
                 replace(CAST(v AS TEXT), '@', ''))) - 1)) || '***@' || SUBSTR(CAST(v AS TEXT), \
                 length(rtrim(CAST(v AS TEXT), replace(CAST(v AS TEXT), '@', ''))) + 1) END",
            ),
            (Mask::PhoneLast4, "'***' || SUBSTR(CAST(v AS TEXT), -4)"),
            (
                Mask::CardLast4,
                "'**** **** **** ' || SUBSTR(CAST(v AS TEXT), -4)",
            ),
            (Mask::YearOnly, "SUBSTR(CAST(v AS TEXT), 1, 4)"),
            (Mask::Zip3, "SUBSTR(CAST(v AS TEXT), 1, 3) || '**'"),
            (Mask::Pseudonym, "privet_pseudonym('t.v', v)"),
        ];
        for (mask, sql_text) in expected {
            assert_eq!(
                sql(mask, Dialect::Sqlite).as_deref(),
                Some(sql_text),
                "{mask}"
            );
        }
    }

    #[test]
    fn postgres_sql_text() {
        let expected = [
            (
                Mask::Redact,
                "CASE WHEN v IS NULL THEN NULL ELSE '[redacted]' END",
            ),
            (Mask::Null, "NULL"),
            (
                Mask::EmailPartial,
                "CASE WHEN strpos(CAST(v AS TEXT), '@') = 0 THEN '***' \
                 ELSE SUBSTR(CAST(v AS TEXT), 1, LEAST(1, length(rtrim(CAST(v AS TEXT), \
                 replace(CAST(v AS TEXT), '@', ''))) - 1)) || '***@' || SUBSTR(CAST(v AS TEXT), \
                 length(rtrim(CAST(v AS TEXT), replace(CAST(v AS TEXT), '@', ''))) + 1) END",
            ),
            (Mask::PhoneLast4, "'***' || right(CAST(v AS TEXT), 4)"),
            (
                Mask::CardLast4,
                "'**** **** **** ' || right(CAST(v AS TEXT), 4)",
            ),
            (Mask::YearOnly, "SUBSTR(CAST(v AS TEXT), 1, 4)"),
            (Mask::Zip3, "SUBSTR(CAST(v AS TEXT), 1, 3) || '**'"),
        ];
        for (mask, sql_text) in expected {
            assert_eq!(
                sql(mask, Dialect::Postgres).as_deref(),
                Some(sql_text),
                "{mask}"
            );
        }
        // The pseudonym reads its key from a session setting named after the
        // domain, never from the statement.
        let pseudonym = sql(Mask::Pseudonym, Dialect::Postgres).unwrap();
        assert!(
            pseudonym.contains("current_setting('privet.pseudonym_742e76')"),
            "{pseudonym}"
        );
        assert!(
            pseudonym.contains("convert_to(CAST(v AS TEXT), 'UTF8')"),
            "{pseudonym}"
        );
    }

    #[test]
    fn pseudonym_setting_holds_the_hmac_pads_of_the_domain_key() {
        let key = TokenKey::from_bytes(&[7; 32]);
        let value = pseudonym_setting_value(&key, "customer");
        assert_eq!(value.len(), 256);
        let pads: Vec<u8> = (0..128)
            .map(|i| u8::from_str_radix(&value[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        // HMAC by hand from the pads equals the vault's MAC.
        let inner = ring::digest::digest(
            &ring::digest::SHA256,
            &[&pads[..64], b"42".as_slice()].concat(),
        );
        let outer = ring::digest::digest(
            &ring::digest::SHA256,
            &[&pads[64..], inner.as_ref()].concat(),
        );
        assert_eq!(outer.as_ref(), key.mac("customer", b"42"));
        assert_eq!(
            pseudonym_setting("customers.id"),
            "privet.pseudonym_637573746f6d6572732e6964"
        );
    }

    #[test]
    fn every_template_parses() {
        // Templates are indexed by discriminant, built in `ALL` order.
        for (i, mask) in Mask::ALL.into_iter().enumerate() {
            assert_eq!(mask as usize, i);
        }
        for dialect in [Dialect::Sqlite, Dialect::Postgres] {
            let parsed = templates(dialect);
            assert!(parsed.text.is_some(), "{dialect:?} TEXT cast");
            for mask in Mask::ALL {
                assert_eq!(
                    parsed.masks[mask as usize].is_some(),
                    template(mask, dialect).is_some(),
                    "{mask} {dialect:?}"
                );
            }
        }
    }

    #[test]
    fn column_and_domain_are_substituted_as_nodes() {
        // A qualified, quoted column and a domain with a quote stay intact.
        let col = Expr::CompoundIdentifier(vec![
            Ident::with_quote('"', "c"),
            Ident::with_quote('"', "privet_column"),
        ]);
        let expr = sql_expr(Mask::Pseudonym, col, "o'brien.id", Dialect::Sqlite).unwrap();
        assert_eq!(
            expr.to_string(),
            "privet_pseudonym('o''brien.id', \"c\".\"privet_column\")"
        );
        // A column named like a placeholder is not substituted again.
        let expr = sql_expr(Mask::Zip3, column("privet_text"), "t.v", Dialect::Sqlite).unwrap();
        assert_eq!(
            expr.to_string(),
            "SUBSTR(CAST(privet_text AS TEXT), 1, 3) || '**'"
        );
        // A compound expression is parenthesized so IS NULL applies to all of it.
        let concat = parse_template("a || b", Dialect::Sqlite).unwrap();
        let expr = sql_expr(Mask::Redact, concat, "t.v", Dialect::Sqlite).unwrap();
        assert_eq!(
            expr.to_string(),
            "CASE WHEN (a || b) IS NULL THEN NULL ELSE '[redacted]' END"
        );
    }

    #[test]
    fn pseudonyms_join_and_separate() {
        let key = key();
        let conn = connection(key.clone());
        conn.execute_batch(
            "CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT);
             CREATE TABLE orders(id INTEGER PRIMARY KEY, customer_id TEXT);
             INSERT INTO customers VALUES (42, 'Ann'), (7, 'Bo');
             INSERT INTO orders VALUES (1, '42'), (2, '7'), (3, '42');",
        )
        .unwrap();
        let id = sql_expr(
            Mask::Pseudonym,
            parse_template("c.id", Dialect::Sqlite).unwrap(),
            "customers.id",
            Dialect::Sqlite,
        )
        .unwrap();
        let fk = sql_expr(
            Mask::Pseudonym,
            parse_template("o.customer_id", Dialect::Sqlite).unwrap(),
            "customers.id",
            Dialect::Sqlite,
        )
        .unwrap();
        let joined: Vec<(String, i64)> = conn
            .prepare(&format!(
                "SELECT c.name, o.id FROM customers c JOIN orders o ON {id} = {fk} ORDER BY o.id"
            ))
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            joined,
            [("Ann".into(), 1), ("Bo".into(), 2), ("Ann".into(), 3)]
        );

        // Integer and decimal text give one token, in SQL and in Rust.
        let token = key.pseudonym("customers.id", b"42");
        let p = |mask_input: Json| apply(Mask::Pseudonym, &mask_input, "customers.id", &key);
        assert_eq!(p(Json::from(42)), Json::from(token.clone()));
        assert_eq!(p(Json::from("42")), Json::from(token.clone()));
        let from_sql: String = conn
            .query_row("SELECT privet_pseudonym('customers.id', 42)", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(from_sql, token);

        // Other domains and other keys give unrelated tokens.
        assert_ne!(
            apply(Mask::Pseudonym, &Json::from(42), "orders.id", &key),
            Json::from(token.clone())
        );
        let other = TokenKey::from_bytes(&[8; 32]);
        assert_ne!(
            apply(Mask::Pseudonym, &Json::from(42), "customers.id", &other),
            Json::from(token)
        );
    }

    #[test]
    fn sqlite_pseudonym_function_values() {
        let key = key();
        let conn = connection(key.clone());
        let one = |sql: &str| -> Option<String> { conn.query_row(sql, [], |r| r.get(0)).unwrap() };
        assert_eq!(one("SELECT privet_pseudonym('t.v', NULL)"), None);
        // BLOBs as the backend returns them: standard base64.
        assert_eq!(
            one("SELECT privet_pseudonym('t.v', x'00ff10')"),
            Some(key.pseudonym("t.v", b"AP8Q"))
        );
        assert!(conn
            .query_row("SELECT privet_pseudonym(1, 'x')", [], |r| r
                .get::<_, String>(0))
            .is_err());
    }

    #[test]
    fn sqlite_pseudonym_usable_in_views_and_indexes() {
        let conn = connection(key());
        // Innocuous: allowed in a view even when the schema is untrusted.
        // Deterministic: allowed in an index expression.
        conn.execute_batch(
            "PRAGMA trusted_schema = OFF;
             CREATE TABLE t(v);
             INSERT INTO t VALUES ('a'), (1);
             CREATE VIEW masked AS SELECT privet_pseudonym('t.v', v) AS v FROM t;
             CREATE INDEX t_token ON t(privet_pseudonym('t.v', v));",
        )
        .unwrap();
        let n: i64 = conn
            .query_row("SELECT count(DISTINCT v) FROM masked", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 2);
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_listed() {
        for mask in Mask::ALL {
            assert_eq!(mask.name().parse::<Mask>(), Ok(mask));
            assert_eq!(mask.transform_name(), format!("mask:{}", mask.name()));
        }
        assert_eq!(Mask::EmailPartial.transform_name(), "mask:email_partial");
        for bad in ["", "Redact", "email", " zip3", "mask:zip3"] {
            let err = bad.parse::<Mask>().unwrap_err();
            assert_eq!(err.name, bad);
            assert_eq!(
                err.to_string(),
                format!(
                    "unknown mask `{bad}`; the masks are: redact, null, email_partial, \
                     phone_last4, card_last4, year_only, zip3, pseudonym"
                )
            );
        }
    }
}
