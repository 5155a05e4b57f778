//! The session statements drivers send (`SET`, `SHOW`, `SELECT version()`,
//! `BEGIN`/`COMMIT`/`ROLLBACK`), answered here, before the pipeline.

use super::*;
use ::pgwire::messages::response::TransactionStatus;

use super::query::{text_field, text_rows};

/// Settings drivers set on connect: accepted, without effect.
pub(super) const HARMLESS_SETTINGS: &[&str] = &[
    "application_name",
    "extra_float_digits",
    "datestyle",
    "client_encoding",
    "client_min_messages",
    "intervalstyle",
    "timezone",
    "search_path",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "bytea_output",
];

/// Answers the session statements drivers send (`SET`, `SHOW`, `SELECT
/// version()`), or `None` for a statement for the pipeline.
pub(super) fn session_statement(
    session: &Session,
    sql: &str,
) -> Option<Result<Response, Box<ErrorInfo>>> {
    let words: Vec<&str> = sql.split_whitespace().collect();
    let first = words.first()?.to_ascii_lowercase();
    match first.as_str() {
        "set" => Some(set(session, &words[1..])),
        "show" => Some(show(session, &words[1..])),
        "select" if is_version_call(&words[1..]) => Some(Ok(text_rows(
            vec![text_field("version")],
            std::iter::once(vec![Some(version())]),
        ))),
        _ => None,
    }
}

/// The result columns of a session statement, or `None` for a statement
/// for the pipeline (`Some(vec![])`: a statement without rows).
pub(super) fn result_columns(sql: &str) -> Option<Vec<String>> {
    if Control::of(sql).is_some() {
        return Some(Vec::new());
    }
    let words: Vec<&str> = sql.split_whitespace().collect();
    let first = words.first()?.to_ascii_lowercase();
    match first.as_str() {
        "set" => Some(Vec::new()),
        "show" => Some(vec![words.get(1..)?.join(" ").to_ascii_lowercase()]),
        "select" if is_version_call(&words[1..]) => Some(vec!["version".to_owned()]),
        _ => None,
    }
}

/// Transaction control. Every statement Privet runs is read-only or its own
/// transaction, so a block only groups reads: `BEGIN` opens it, `COMMIT`
/// and `ROLLBACK` close it, and after an error in it everything else is
/// refused until it is closed, as PostgreSQL does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Control {
    Begin,
    Commit,
    Rollback,
}

impl Control {
    /// `BEGIN [TRANSACTION | WORK] [modes]`, `START TRANSACTION [modes]`,
    /// `COMMIT`/`END`, `ROLLBACK`/`ABORT` (`[TRANSACTION | WORK]`).
    pub(super) fn of(sql: &str) -> Option<Control> {
        // Three words decide; longer statements are not transaction control.
        let words: Vec<String> = sql
            .split_whitespace()
            .take(4)
            .map(str::to_ascii_lowercase)
            .collect();
        let rest_is = |from: usize| {
            words[from..].is_empty()
                || (words.len() == from + 1
                    && matches!(words[from].as_str(), "transaction" | "work"))
        };
        match words.first()?.as_str() {
            "begin" => Some(Control::Begin),
            "start" if words.get(1).map(String::as_str) == Some("transaction") => {
                Some(Control::Begin)
            }
            "commit" | "end" if rest_is(1) => Some(Control::Commit),
            "rollback" | "abort" if rest_is(1) => Some(Control::Rollback),
            _ => None,
        }
    }

    /// The answer in transaction state `status`; `COMMIT` of a failed block
    /// rolls it back, and says so.
    pub(super) fn response(self, status: TransactionStatus) -> Response {
        match self {
            Control::Begin => Response::TransactionStart(Tag::new("BEGIN")),
            Control::Commit if status == TransactionStatus::Error => {
                Response::TransactionEnd(Tag::new("ROLLBACK"))
            }
            Control::Commit => Response::TransactionEnd(Tag::new("COMMIT")),
            Control::Rollback => Response::TransactionEnd(Tag::new("ROLLBACK")),
        }
    }
}

/// `SELECT version()` in any spacing or case.
pub(super) fn is_version_call(rest: &[&str]) -> bool {
    rest.concat().eq_ignore_ascii_case("version()")
}

pub(super) fn version() -> String {
    format!(
        "PostgreSQL {SERVER_VERSION} (Privet {} privacy gateway)",
        env!("CARGO_PKG_VERSION")
    )
}

/// `SET [SESSION] name {=|TO} value`: `privet.purpose` sets the purpose
/// (`DEFAULT` clears it); harmless settings are accepted and ignored.
pub(super) fn set(session: &Session, rest: &[&str]) -> Result<Response, Box<ErrorInfo>> {
    let text = rest.join(" ");
    let text = text
        .strip_prefix("SESSION ")
        .or_else(|| text.strip_prefix("session "))
        .unwrap_or(&text);
    let (name, value) = text
        .split_once('=')
        .map(|(n, v)| (n.trim(), v.trim()))
        .or_else(|| {
            let (n, v) = text.split_once(char::is_whitespace)?;
            let v = v.trim_start();
            let v = v
                .get(..3)
                .filter(|k| k.eq_ignore_ascii_case("to "))
                .map(|_| &v[3..])?;
            Some((n.trim(), v.trim()))
        })
        .ok_or_else(|| {
            error_info(
                "42601",
                "syntax error in SET: write SET name = value or SET name TO value".into(),
            )
        })?;
    let name = name.to_ascii_lowercase();
    if name == PURPOSE_SETTING {
        let purpose = if value.eq_ignore_ascii_case("default") {
            None
        } else {
            Some(unquote(value).ok_or_else(|| {
                error_info(
                    "42601",
                    format!("{PURPOSE_SETTING} takes one name, e.g. SET {PURPOSE_SETTING} = 'marketing'"),
                )
            })?)
        };
        session.set_purpose(purpose);
    } else if !HARMLESS_SETTINGS.contains(&name.as_str()) {
        return Err(error_info(
            "0A000",
            format!("Privet does not support setting \"{name}\""),
        ));
    }
    Ok(Response::Execution(Tag::new("SET")))
}

/// A `SET` value: a quoted string or a single bare word.
pub(super) fn unquote(value: &str) -> Option<String> {
    let inner = value
        .strip_prefix('\'')
        .and_then(|v| v.strip_suffix('\''))
        .map(|v| v.replace("''", "'"))
        .or_else(|| (!value.contains(char::is_whitespace)).then(|| value.to_owned()))?;
    (!inner.is_empty()).then_some(inner)
}

/// `SHOW name`: fixed values (the session's purpose for `privet.purpose`).
pub(super) fn show(session: &Session, rest: &[&str]) -> Result<Response, Box<ErrorInfo>> {
    let [name] = rest else {
        return Err(error_info("42601", "write SHOW name".into()));
    };
    let key = name.to_ascii_lowercase();
    let value = match key.as_str() {
        PURPOSE_SETTING => session.purpose(),
        "server_version" => Some(SERVER_VERSION.to_owned()),
        "server_encoding" | "client_encoding" => Some("UTF8".to_owned()),
        "datestyle" => Some("ISO, MDY".to_owned()),
        "timezone" => Some("UTC".to_owned()),
        "transaction_read_only" | "default_transaction_read_only" => Some("on".to_owned()),
        "standard_conforming_strings" | "integer_datetimes" => Some("on".to_owned()),
        "transaction_isolation" | "default_transaction_isolation" => {
            Some("read committed".to_owned())
        }
        "search_path" => Some("public".to_owned()),
        _ => {
            return Err(error_info(
                "42704",
                format!("unrecognized configuration parameter \"{name}\""),
            ))
        }
    };
    Ok(text_rows(
        vec![text_field(&key)],
        std::iter::once(vec![value]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_control_words() {
        assert_eq!(Control::of("BEGIN"), Some(Control::Begin));
        assert_eq!(Control::of("begin read only"), Some(Control::Begin));
        assert_eq!(
            Control::of("START TRANSACTION ISOLATION LEVEL SERIALIZABLE"),
            Some(Control::Begin)
        );
        assert_eq!(Control::of("commit work"), Some(Control::Commit));
        assert_eq!(Control::of("END"), Some(Control::Commit));
        assert_eq!(Control::of("ABORT"), Some(Control::Rollback));
        assert_eq!(Control::of("ROLLBACK TO SAVEPOINT a"), None);
        assert_eq!(Control::of("SELECT 1"), None);
        assert!(matches!(
            Control::Commit.response(TransactionStatus::Error),
            Response::TransactionEnd(_)
        ));
    }
}
