//! Attack corpus: queries that try to learn denied, masked or filtered data,
//! each sent over real HTTP to the real `privet` binary and judged against
//! ground truth read directly from the SQLite store.
//!
//! Every attack states its exact expectation beside it:
//! - `refused(code)` / `denied(table, column)`: a 4xx error with that code
//!   (and, for `denied`, the table and column the error names);
//! - `rows(check)`: an answer whose rows pass `check` (masked values only,
//!   permitted rows only, ...);
//! - `refused_or(check)`: either refused (any 4xx) or an answer passing
//!   `check`: for attacks where refusing and answering harmlessly are both
//!   acceptable, as long as nothing leaks.
//!
//! On top of each expectation, every response body (errors included) is
//! scanned for the principal's secrets: raw email addresses anywhere in the
//! text, and forbidden values (phones, IPs, addresses, ticket bodies, ...)
//! as cells or comma-separated parts of cells.
//!
//! Every attack is replayed over the PostgreSQL wire protocol too (`privet
//! serve --pg-listen`), through both the simple and the extended query
//! protocol: the wire must refuse what HTTP refuses, with the same Privet
//! code, and answer what HTTP answers, the same rows as text; the secrets
//! check runs on what the wire returned as well. HTTP's answers are judged
//! against ground truth, so the wire's are by agreement.
//!
//! Every attack runs; failures are collected and reported together, so one
//! failing attack does not hide the others. Attacks that once leaked or
//! crashed the server are marked `Regression`, with what went wrong.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use e2e::{on_both_backends, Backend, Reply, Server};
use serde_json::Value;

on_both_backends! {
    marketing_sees_only_opted_in_customers_and_masked_contact_data => super::marketing_sees_only_opted_in_customers_and_masked_contact_data,
    recs_sees_only_pseudonyms_and_never_customers_or_payments => super::recs_sees_only_pseudonyms_and_never_customers_or_payments,
    support_agent_sees_only_eu_customers_tickets_and_orders => super::support_agent_sees_only_eu_customers_tickets_and_orders,
    principals_without_access_and_wrong_purposes_are_refused => super::principals_without_access_and_wrong_purposes_are_refused,
    huge_and_deeply_nested_queries_are_refused_or_answered_and_the_server_survives => super::huge_and_deeply_nested_queries_are_refused_or_answered_and_the_server_survives,
}

// ---------------------------------------------------------------------------
// The corpus machinery
// ---------------------------------------------------------------------------

/// A successful answer, parsed.
struct Answer {
    columns: Vec<String>,
    transforms: Vec<Option<String>>,
    rows: Vec<Vec<Value>>,
}

impl Answer {
    fn parse(json: &Value) -> Result<Answer, String> {
        let columns = json["columns"]
            .as_array()
            .ok_or_else(|| format!("no columns in {json}"))?;
        let rows = json["rows"]
            .as_array()
            .ok_or_else(|| format!("no rows in {json}"))?
            .iter()
            .map(|r| r.as_array().cloned().unwrap_or_default())
            .collect();
        Ok(Answer {
            columns: columns
                .iter()
                .map(|c| c["name"].as_str().unwrap_or_default().to_string())
                .collect(),
            transforms: columns
                .iter()
                .map(|c| c["transform"].as_str().map(str::to_string))
                .collect(),
            rows,
        })
    }

    fn column(&self, i: usize) -> impl Iterator<Item = &Value> {
        self.rows.iter().filter_map(move |r| r.get(i))
    }

    /// The first rows, for failure messages.
    fn preview(&self) -> String {
        let shown: Vec<String> = self
            .rows
            .iter()
            .take(3)
            .map(|r| Value::Array(r.clone()).to_string())
            .collect();
        let text = shown.join(", ");
        let text: String = text.chars().take(300).collect();
        format!("{} rows: {text}", self.rows.len())
    }
}

type Check<'a> = Box<dyn Fn(&Answer) -> Result<(), String> + 'a>;

enum Expect<'a> {
    /// Refused (4xx) with exactly this error code.
    Refused(&'static str),
    /// Refused with `policy_denied`, naming this table (and column).
    Denied(&'static str, Option<&'static str>),
    /// Answered (200); the answer passes the check.
    Rows(Check<'a>),
    /// Refused with any 4xx code, or answered with an answer passing the check.
    RefusedOr(Check<'a>),
}

fn refused<'a>(code: &'static str) -> Expect<'a> {
    Expect::Refused(code)
}

fn denied<'a>(table: &'static str, column: Option<&'static str>) -> Expect<'a> {
    Expect::Denied(table, column)
}

fn rows(check: Check<'_>) -> Expect<'_> {
    Expect::Rows(check)
}

fn refused_or(check: Check<'_>) -> Expect<'_> {
    Expect::RefusedOr(check)
}

struct Attack<'a> {
    sql: String,
    expect: Expect<'a>,
    /// What PostgreSQL does instead, where its dialect refuses what SQLite
    /// answers (SQLite-only functions and syntax, stricter types), or the
    /// reverse. Every such difference is stated at the attack.
    on_postgres: Option<Expect<'a>>,
}

fn a<'a>(sql: impl Into<String>, expect: Expect<'a>) -> Attack<'a> {
    Attack {
        sql: sql.into(),
        expect,
        on_postgres: None,
    }
}

impl<'a> Attack<'a> {
    fn on_postgres(mut self, expect: Expect<'a>) -> Attack<'a> {
        self.on_postgres = Some(expect);
        self
    }
}

/// The attack's SQL for `server`'s backend: on PostgreSQL, SQLite's schema
/// name `main` becomes the test's schema, so schema-qualified attacks probe
/// the same thing on both.
fn sql_for(server: &Server, sql: &str) -> String {
    let Some(pg) = &server.pg else {
        return sql.to_string();
    };
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find("main") {
        let (before, after) = rest.split_at(at);
        out.push_str(before);
        let boundary = !out
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let next = after[4..].chars().next();
        if boundary && matches!(next, Some('.') | Some('/')) {
            out.push_str(&pg.name);
        } else {
            out.push_str("main");
        }
        rest = &after[4..];
    }
    out.push_str(rest);
    out
}

/// What must never appear in any response to a principal.
#[derive(Default)]
struct Secrets {
    /// Raw email addresses (lower case), searched for anywhere in the body.
    emails: HashSet<String>,
    /// Forbidden exact values, matched against every text cell and every
    /// comma-separated part of one (group_concat).
    cells: HashSet<String>,
}

impl Secrets {
    fn check(&self, body: &str, answer: Option<&Answer>) -> Result<(), String> {
        for email in emails_in(body) {
            if self.emails.contains(&email.to_ascii_lowercase()) {
                return Err(format!("LEAKED the raw email address {email}"));
            }
        }
        let Some(answer) = answer else {
            return Ok(());
        };
        for row in &answer.rows {
            for cell in row {
                let Some(text) = cell.as_str() else { continue };
                if self.cells.contains(text) {
                    return Err(format!("LEAKED the forbidden value {text:?}"));
                }
                if let Some(part) = text.split(',').find(|p| self.cells.contains(*p)) {
                    return Err(format!(
                        "LEAKED the forbidden value {part:?} inside {text:?}"
                    ));
                }
            }
        }
        Ok(())
    }
}

/// Email-like words in `text`: a non-empty local part of the usual
/// characters, `@`, a domain. Masked values (`j***@example.com`) have no
/// such local part, so they are not found.
fn emails_in(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let local = |c: u8| c.is_ascii_alphanumeric() || b"._%+-".contains(&c);
    let domain = |c: u8| c.is_ascii_alphanumeric() || b".-".contains(&c);
    let mut found = Vec::new();
    for (at, _) in text.match_indices('@') {
        let mut start = at;
        while start > 0 && local(bytes[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < bytes.len() && domain(bytes[end]) {
            end += 1;
        }
        if start < at && end > at + 1 {
            found.push(text[start..end].trim_end_matches('.').to_string());
        }
    }
    found
}

/// Sends one query; a dead server (connection refused or reset) is an
/// `Err`, not a panic, so the rest of the corpus still reports.
async fn send(server: &Arc<Server>, who: &str, purpose: &str, sql: &str) -> Result<Reply, String> {
    let (server, who, purpose, sql) = (
        Arc::clone(server),
        who.to_string(),
        purpose.to_string(),
        sql.to_string(),
    );
    tokio::spawn(async move { server.query(&who, &purpose, &sql).await })
        .await
        .map_err(|e| format!("no reply: the server closed the connection or is gone ({e})"))
}

fn judge(reply: &Reply, expect: &Expect<'_>, secrets: &Secrets) -> Result<(), String> {
    let body = String::from_utf8_lossy(&reply.body);
    let json: Value = serde_json::from_str(&body)
        .map_err(|e| format!("status {}: body is not JSON ({e}): {body}", reply.status))?;
    let answer = match reply.status {
        200 => Some(Answer::parse(&json)?),
        _ => None,
    };
    secrets.check(&body, answer.as_ref())?;
    let refusal = (400..500).contains(&reply.status);
    let error = &json["error"];
    let code = error["code"].as_str().unwrap_or_default();
    let short: String = body.chars().take(400).collect();
    match (expect, answer) {
        (Expect::Refused(want), None) if refusal => match code == *want {
            true => Ok(()),
            false => Err(format!("refused with {code}, expected {want}: {short}")),
        },
        (Expect::Denied(table, column), None) if refusal => {
            let got = (code, error["table"].as_str(), error["column"].as_str());
            match got == ("policy_denied", Some(*table), *column) {
                true => Ok(()),
                false => Err(format!(
                    "expected policy_denied on {table}{}, got {short}",
                    column.map(|c| format!(".{c}")).unwrap_or_default()
                )),
            }
        }
        (Expect::RefusedOr(_), None) if refusal => Ok(()),
        (Expect::Rows(check) | Expect::RefusedOr(check), Some(answer)) => check(&answer),
        (Expect::Refused(want), Some(answer)) => Err(format!(
            "ANSWERED where refusal {want} was expected: {}",
            answer.preview()
        )),
        (Expect::Denied(table, _), Some(answer)) => Err(format!(
            "ANSWERED where policy_denied on {table} was expected: {}",
            answer.preview()
        )),
        _ => Err(format!("unexpected status {}: {short}", reply.status)),
    }
}

/// Statistics of one corpus run.
#[derive(Default)]
struct Tally {
    attacks: usize,
    refusals: usize,
    data: usize,
    failures: Vec<String>,
    /// Wire-protocol sessions by principal and purpose.
    sessions: HashMap<(String, String), tokio_postgres::Client>,
}

/// What a statement got over the wire: column names and rows as text, or
/// the Privet code of the refusal and its message.
#[derive(Debug)]
enum WireOutcome {
    Rows(Vec<String>, Vec<Vec<Option<String>>>),
    Refused(String, String),
}

/// A JSON value as PostgreSQL's text format shows it.
fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(if *b { "t" } else { "f" }.to_string()),
        Value::Number(n) => Some(n.to_string()),
        other => Some(other.to_string()),
    }
}

/// Two cells agree: equal text, or equal numbers however printed.
fn same_cell(a: &Option<String>, b: &Option<String>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if a != b => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
            _ => false,
        },
        _ => a == b,
    }
}

fn wire_refusal(e: &tokio_postgres::Error) -> Result<WireOutcome, String> {
    let Some(db) = e.as_db_error() else {
        return Err(format!("the wire connection failed: {e}"));
    };
    let code = db
        .detail()
        .and_then(|d| d.strip_prefix("privet error: "))
        .map(|d| d.split(';').next().unwrap_or(d).to_string())
        .unwrap_or_else(|| format!("sqlstate {}", db.code().code()));
    Ok(WireOutcome::Refused(code, db.message().to_string()))
}

/// One statement through the simple query protocol.
async fn wire_simple(client: &tokio_postgres::Client, sql: &str) -> Result<WireOutcome, String> {
    use tokio_postgres::SimpleQueryMessage;
    let messages = match client.simple_query(sql).await {
        Ok(messages) => messages,
        Err(e) => return wire_refusal(&e),
    };
    let mut columns = Vec::new();
    let mut rows = Vec::new();
    for message in messages {
        match message {
            SimpleQueryMessage::RowDescription(description) => {
                columns = description.iter().map(|c| c.name().to_string()).collect();
            }
            SimpleQueryMessage::Row(row) => rows.push(
                (0..row.len())
                    .map(|i| row.get(i).map(str::to_string))
                    .collect(),
            ),
            _ => {}
        }
    }
    Ok(WireOutcome::Rows(columns, rows))
}

/// One statement through the extended protocol (Parse, Describe, Bind,
/// Execute), its typed binary values turned into text.
async fn wire_extended(client: &tokio_postgres::Client, sql: &str) -> Result<WireOutcome, String> {
    use tokio_postgres::types::Type;
    let statement = match client.prepare(sql).await {
        Ok(statement) => statement,
        Err(e) => return wire_refusal(&e),
    };
    let rows = match client.query(&statement, &[]).await {
        Ok(rows) => rows,
        Err(e) => return wire_refusal(&e),
    };
    let columns: Vec<String> = statement
        .columns()
        .iter()
        .map(|c| c.name().to_string())
        .collect();
    let mut out = Vec::new();
    for row in &rows {
        let mut cells = Vec::new();
        for (i, column) in row.columns().iter().enumerate() {
            let ty = column.type_();
            let cell = match *ty {
                Type::INT2 => row
                    .try_get::<_, Option<i16>>(i)
                    .map(|v| v.map(|v| v.to_string())),
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(i)
                    .map(|v| v.map(|v| v.to_string())),
                Type::INT8 => row
                    .try_get::<_, Option<i64>>(i)
                    .map(|v| v.map(|v| v.to_string())),
                Type::FLOAT4 => row
                    .try_get::<_, Option<f32>>(i)
                    .map(|v| v.map(|v| v.to_string())),
                Type::FLOAT8 => row
                    .try_get::<_, Option<f64>>(i)
                    .map(|v| v.map(|v| v.to_string())),
                Type::BOOL => row
                    .try_get::<_, Option<bool>>(i)
                    .map(|v| v.map(|b| if b { "t" } else { "f" }.to_string())),
                _ => row.try_get::<_, Option<String>>(i),
            };
            cells.push(cell.map_err(|e| format!("column {i} ({ty}): {e}"))?);
        }
        out.push(cells);
    }
    Ok(WireOutcome::Rows(columns, out))
}

impl Tally {
    async fn run(
        &mut self,
        server: &Arc<Server>,
        who: &str,
        purpose: &str,
        secrets: &Secrets,
        attacks: Vec<Attack<'_>>,
    ) {
        for attack in attacks {
            self.attacks += 1;
            let expect = match (server.backend, attack.on_postgres) {
                (Backend::Postgres, Some(expect)) => expect,
                _ => attack.expect,
            };
            match expect {
                Expect::Refused(_) | Expect::Denied(..) => self.refusals += 1,
                Expect::Rows(_) | Expect::RefusedOr(_) => self.data += 1,
            }
            let sql = sql_for(server, &attack.sql);
            let reply = send(server, who, purpose, &sql).await;
            let outcome = match &reply {
                Ok(reply) => judge(reply, &expect, secrets),
                Err(e) => Err(e.clone()),
            };
            let outcome = match (outcome, &reply) {
                (Ok(()), Ok(reply)) => {
                    self.wire_agrees(server, who, purpose, &sql, reply, secrets)
                        .await
                }
                (outcome, _) => outcome,
            };
            if let Err(why) = outcome {
                let sql: String = attack.sql.chars().take(200).collect();
                self.failures.push(format!("[{who}] {sql}\n    => {why}"));
            }
        }
    }

    /// The statement over the wire, both protocols, agrees with HTTP's
    /// (judged) `reply` and leaks none of `secrets`.
    async fn wire_agrees(
        &mut self,
        server: &Arc<Server>,
        who: &str,
        purpose: &str,
        sql: &str,
        reply: &Reply,
        secrets: &Secrets,
    ) -> Result<(), String> {
        // The protocol's query strings are NUL-terminated: such an attack
        // cannot be sent over the wire at all (tokio-postgres refuses to).
        if sql.contains('\0') {
            return Ok(());
        }
        let key = (who.to_string(), purpose.to_string());
        if self.sessions.get(&key).is_none_or(|c| c.is_closed()) {
            let client = server
                .pg_connect(who, purpose)
                .await
                .map_err(|e| format!("could not connect over the wire protocol: {e}"))?;
            self.sessions.insert(key.clone(), client);
        }
        let Some(client) = self.sessions.get(&key) else {
            return Err("no wire session".to_string());
        };
        let http: Value = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
        for (protocol, outcome) in [
            ("simple", wire_simple(client, sql).await),
            ("extended", wire_extended(client, sql).await),
        ] {
            let outcome = outcome.map_err(|e| format!("{protocol} protocol: {e}"))?;
            let (body, answer) = match &outcome {
                WireOutcome::Refused(code, message) => (format!("{code} {message}"), None),
                WireOutcome::Rows(columns, rows) => (
                    format!("{columns:?} {rows:?}"),
                    Some(Answer {
                        columns: columns.clone(),
                        transforms: Vec::new(),
                        rows: rows
                            .iter()
                            .map(|r| {
                                r.iter()
                                    .map(|c| c.clone().map_or(Value::Null, Value::String))
                                    .collect()
                            })
                            .collect(),
                    }),
                ),
            };
            secrets
                .check(&body, answer.as_ref())
                .map_err(|e| format!("over the wire ({protocol} protocol): {e}"))?;
            match (reply.status, outcome) {
                (200, WireOutcome::Rows(columns, rows)) => {
                    let http_answer = Answer::parse(&http)?;
                    let http_rows: Vec<Vec<Option<String>>> = http_answer
                        .rows
                        .iter()
                        .map(|r| r.iter().map(as_text).collect())
                        .collect();
                    if columns != http_answer.columns {
                        return Err(format!(
                            "{protocol} protocol: columns {columns:?}, HTTP {:?}",
                            http_answer.columns
                        ));
                    }
                    let agree = rows.len() == http_rows.len()
                        && rows.iter().zip(&http_rows).all(|(a, b)| {
                            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_cell(x, y))
                        });
                    if !agree {
                        let show =
                            |r: &[Vec<Option<String>>]| format!("{:?}", &r[..r.len().min(3)]);
                        return Err(format!(
                            "{protocol} protocol: {} rows {}, HTTP {} rows {}",
                            rows.len(),
                            show(&rows),
                            http_rows.len(),
                            show(&http_rows)
                        ));
                    }
                }
                (400..=499, WireOutcome::Refused(code, message)) => {
                    let want = http["error"]["code"].as_str().unwrap_or_default();
                    // The wire splits a multi-statement Query and refuses
                    // the first statement it refuses; HTTP refuses the lot.
                    if code != want && !sql.contains(';') {
                        return Err(format!(
                            "{protocol} protocol: refused with {code} ({message}), HTTP with {want}"
                        ));
                    }
                }
                (status, outcome) => {
                    return Err(format!(
                        "{protocol} protocol: {outcome:?} where HTTP answered {status}"
                    ))
                }
            }
        }
        Ok(())
    }

    /// The server must still be up and must not have panicked.
    async fn server_survived(&mut self, server: &Arc<Server>) {
        let alive = {
            let server = Arc::clone(server);
            tokio::spawn(async move { server.send("GET", "/healthz", &[], Vec::new()).await }).await
        };
        match alive {
            Ok(reply) if reply.status == 200 => {}
            _ => self
                .failures
                .push("the server is no longer answering /healthz".to_string()),
        }
        let log = server.log();
        if log.contains("panicked") || log.contains("overflowed its stack") {
            let tail: String = log
                .lines()
                .filter(|l| l.contains("panicked") || l.contains("overflow"))
                .collect::<Vec<_>>()
                .join("\n");
            self.failures
                .push(format!("the server log shows a crash:\n{tail}"));
        }
    }

    fn finish(self, name: &str) {
        eprintln!(
            "{name}: {} attacks ({} expecting refusal, {} expecting masked/filtered data), {} failed",
            self.attacks,
            self.refusals,
            self.data,
            self.failures.len()
        );
        assert!(
            self.failures.is_empty(),
            "{} of {} attacks failed:\n{}",
            self.failures.len(),
            self.attacks,
            self.failures.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------
// Checks on answers
// ---------------------------------------------------------------------------

fn all(checks: Vec<Check<'_>>) -> Check<'_> {
    Box::new(move |answer| checks.iter().try_for_each(|c| c(answer)))
}

fn empty<'a>() -> Check<'a> {
    Box::new(|answer| match answer.rows.is_empty() {
        true => Ok(()),
        false => Err(format!("expected no rows, got {}", answer.preview())),
    })
}

/// Exactly one row of one value.
fn scalar<'a>(want: impl Into<Value>) -> Check<'a> {
    let want = want.into();
    Box::new(move |answer| match answer.rows.as_slice() {
        [row] if row.as_slice() == [want.clone()] => Ok(()),
        _ => Err(format!("expected [[{want}]], got {}", answer.preview())),
    })
}

fn row_count<'a>(n: usize) -> Check<'a> {
    Box::new(move |answer| match answer.rows.len() == n {
        true => Ok(()),
        false => Err(format!("expected {n} rows, got {}", answer.preview())),
    })
}

/// Every value of column `i` satisfies `ok`.
fn each<'a>(i: usize, what: &'a str, ok: impl Fn(&Value) -> bool + 'a) -> Check<'a> {
    Box::new(move |answer| {
        let name = answer
            .columns
            .get(i)
            .ok_or_else(|| format!("no column {i}: {:?}", answer.columns))?;
        match answer.column(i).find(|v| !ok(v)) {
            None => Ok(()),
            Some(v) => Err(format!("column {name} holds {v}, expected {what}")),
        }
    })
}

fn is_masked_email(s: &str) -> bool {
    if s == "***" {
        return true;
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return false;
    };
    let local_ok = local == "***" || (local.chars().count() == 4 && local.ends_with("***"));
    local_ok && !domain.is_empty()
}

fn is_token(s: &str) -> bool {
    s.len() > 10
        && s.starts_with("tok_")
        && s[4..]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Column `i` holds only masked emails (`x***@domain`, any case) or NULL.
fn masked_emails<'a>(i: usize) -> Check<'a> {
    each(i, "a masked email (x***@domain) or NULL", |v| {
        v.is_null() || v.as_str().is_some_and(is_masked_email)
    })
}

/// Column `i` holds only pseudonym tokens or NULL.
fn tokens<'a>(i: usize) -> Check<'a> {
    each(i, "a pseudonym token (tok_...) or NULL", |v| {
        v.is_null() || v.as_str().is_some_and(is_token)
    })
}

/// Column `i` holds only ids from `allowed`.
fn ids_within<'a>(i: usize, allowed: &'a BTreeSet<i64>, what: &'a str) -> Check<'a> {
    each(i, what, move |v| {
        v.as_i64().is_some_and(|n| allowed.contains(&n))
    })
}

/// Column `i` holds exactly the ids of `expected` (as a set).
fn ids_exactly(i: usize, expected: &BTreeSet<i64>) -> Check<'_> {
    Box::new(move |answer| {
        let got: BTreeSet<i64> = answer.column(i).filter_map(Value::as_i64).collect();
        match &got == expected {
            true => Ok(()),
            false => Err(format!(
                "expected the {} permitted ids, got {} ids; not permitted: {:?}",
                expected.len(),
                got.len(),
                got.difference(expected).take(10).collect::<Vec<_>>()
            )),
        }
    })
}

/// The column names (and transforms) of the answer.
fn columns_are<'a>(names: &'a [&'a str], transforms: &'a [(&'a str, &'a str)]) -> Check<'a> {
    Box::new(move |answer| {
        if answer.columns != names {
            return Err(format!("columns {:?}, expected {names:?}", answer.columns));
        }
        for (column, transform) in transforms {
            let i = names.iter().position(|n| n == column).unwrap_or(usize::MAX);
            if answer.transforms.get(i).cloned().flatten().as_deref() != Some(*transform) {
                return Err(format!(
                    "column {column} has transform {:?}, expected {transform}",
                    answer.transforms.get(i)
                ));
            }
        }
        Ok(())
    })
}

fn hex_decode(s: &str) -> Option<String> {
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect();
    String::from_utf8(bytes?).ok()
}

fn base64_decode(s: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let (mut out, mut acc, mut bits) = (Vec::new(), 0u32, 0u32);
    for c in s.bytes().take_while(|c| *c != b'=') {
        acc = (acc << 6) | ALPHABET.iter().position(|a| *a == c)? as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The email_partial mask, for ground truth: first character of the local
/// part, `***@`, the domain after the last `@`.
fn mask_email(email: &str) -> String {
    match email.rsplit_once('@') {
        None => "***".to_string(),
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
    }
}

// ---------------------------------------------------------------------------
// Ground truth from the store
// ---------------------------------------------------------------------------

fn ints(server: &Server, sql: &str) -> BTreeSet<i64> {
    let conn = server.store();
    let mut stmt = conn.prepare(sql).unwrap();
    let ids = stmt
        .query_map([], |r| r.get::<_, i64>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    ids
}

fn texts(server: &Server, sql: &str) -> Vec<String> {
    let conn = server.store();
    let mut stmt = conn.prepare(sql).unwrap();
    let values = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    values
}

fn pairs(server: &Server, sql: &str) -> Vec<(i64, i64)> {
    let conn = server.store();
    let mut stmt = conn.prepare(sql).unwrap();
    let values = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    values
}

fn id_list(ids: &BTreeSet<i64>) -> String {
    ids.iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// A CTE of the digits 0..9, and the expression that, over `d a, d b, d c`,
/// yields every id 0..999 without reading any table.
const DIGITS: &str = "d(x) AS (VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9))";
const THOUSAND: &str = "a.x * 100 + b.x * 10 + c.x";

// ---------------------------------------------------------------------------
// marketing-service: opted-in rows only, email partial, birth year, zip3
// ---------------------------------------------------------------------------

async fn marketing_sees_only_opted_in_customers_and_masked_contact_data(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "marketing_sees_only_") else {
        return;
    };
    let server = Arc::new(server);
    let (who, purpose) = ("marketing-service", "marketing");

    let opted_in = ints(
        &server,
        "SELECT id FROM customers WHERE marketing_opt_in = 1",
    );
    let opted_out = ints(
        &server,
        "SELECT id FROM customers WHERE marketing_opt_in <> 1",
    );
    assert!(
        !opted_in.is_empty() && !opted_out.is_empty(),
        "the demo store has both"
    );
    let raw_emails = texts(&server, "SELECT email FROM customers");
    let masked_in: BTreeSet<String> = texts(
        &server,
        "SELECT email FROM customers WHERE marketing_opt_in = 1",
    )
    .iter()
    .map(|e| mask_email(e))
    .collect();
    let max_masked_len = masked_in.iter().map(|m| m.chars().count()).max().unwrap();
    let names_in: HashSet<String> = texts(
        &server,
        "SELECT full_name FROM customers WHERE marketing_opt_in = 1",
    )
    .into_iter()
    .collect();
    let mut secrets = Secrets {
        emails: raw_emails.iter().map(|e| e.to_ascii_lowercase()).collect(),
        ..Secrets::default()
    };
    secrets.cells.extend(texts(
        &server,
        "SELECT phone FROM customers WHERE phone IS NOT NULL",
    ));
    secrets.cells.extend(texts(
        &server,
        "SELECT birth_date FROM customers WHERE birth_date IS NOT NULL",
    ));
    secrets
        .cells
        .extend(texts(&server, "SELECT shipping_address FROM orders"));
    // Names of opted-out customers (unless an opted-in customer shares one).
    secrets.cells.extend(
        texts(
            &server,
            "SELECT full_name FROM customers WHERE marketing_opt_in <> 1",
        )
        .into_iter()
        .filter(|n| !names_in.contains(n)),
    );
    let guess = texts(
        &server,
        "SELECT email FROM customers WHERE marketing_opt_in = 1 ORDER BY id LIMIT 1",
    )
    .remove(0);
    let raw_zip = texts(
        &server,
        "SELECT zip FROM customers WHERE marketing_opt_in = 1 AND zip IS NOT NULL ORDER BY id LIMIT 1",
    )
    .remove(0);
    let product_names: HashSet<String> = texts(&server, "SELECT name FROM products")
        .into_iter()
        .collect();
    let out_list = id_list(&opted_out);
    let n_in = opted_in.len();

    let email_col = Some("email");
    let attacks = vec![
        // Baseline: the permitted view itself: opted-in ids only, email masked.
        a("SELECT id, email FROM customers", rows(all(vec![ids_exactly(0, &opted_in), masked_emails(1)]))),
        // `*` must expand to the permitted columns only (no phone, no city), masks applied.
        a("SELECT * FROM customers", rows(all(vec![
            columns_are(
                &["id", "email", "full_name", "birth_date", "gender", "zip", "country", "region", "created_at", "marketing_opt_in"],
                &[("email", "mask:email_partial"), ("birth_date", "mask:year_only"), ("zip", "mask:zip3")],
            ),
            ids_exactly(0, &opted_in),
            masked_emails(1),
        ]))),

        // --- predicates on the masked email (no `filter` permission) ---
        // Prefix probe on the email.
        a("SELECT id FROM customers WHERE email LIKE 'a%'", denied("customers", email_col)),
        // Length probe.
        a("SELECT id FROM customers WHERE length(email) > 10", denied("customers", email_col)),
        // Character probe through substr.
        a("SELECT id FROM customers WHERE substr(email, 2, 1) = 'a'", denied("customers", email_col)),
        // instr probe for a dot in the local part.
        a("SELECT id FROM customers WHERE instr(email, '.') > 0", denied("customers", email_col))
            // PostgreSQL: SQLite-only function.
            .on_postgres(refused("function_not_allowed")),
        // Equality probe with an exact guess.
        a(format!("SELECT id FROM customers WHERE email = '{guess}'"), denied("customers", email_col)),
        // IN-list probe with an exact guess.
        a(format!("SELECT id FROM customers WHERE email IN ('{guess}', 'x@y.z')"), denied("customers", email_col)),
        // Row-value comparison hides the email in a tuple.
        a("SELECT id FROM customers WHERE (email, 1) = ('a', 1)", denied("customers", email_col)),
        // Concatenation inside the predicate.
        a("SELECT id FROM customers WHERE 'x' || email = 'xa'", denied("customers", email_col)),
        // Case-folding through COLLATE in a predicate.
        a("SELECT id FROM customers WHERE email COLLATE NOCASE = 'x'", denied("customers", email_col)),
        // Double-quoted identifier (not a string) in the predicate.
        a("SELECT id FROM customers c WHERE c.\"email\" IS NULL", denied("customers", email_col)),
        // HAVING on an aggregate of the email.
        a("SELECT count(*) FROM customers GROUP BY region HAVING max(email) > 'm'", denied("customers", email_col)),
        // CASE condition as a hidden predicate.
        a("SELECT CASE WHEN email LIKE 'a%' THEN 1 END FROM customers", denied("customers", email_col)),
        // Aggregate FILTER clause as a hidden predicate.
        a("SELECT count(*) FILTER (WHERE email LIKE 'a%') FROM customers", denied("customers", email_col)),
        // A predicate hidden in a function argument (iif/LIKE): refused, or computed on masked values only
        // (no masked local part has a dot; every masked value contains ***@).
        a("SELECT sum(iif(email LIKE '%.%@%', 1, 0)), sum(email LIKE '%***@%') FROM customers",
          refused_or(all(vec![scalar_row(vec![0.into(), (n_in as i64).into()])]))),
        // An equality oracle in the projection instead of WHERE: refused, or compared on masked values (never equal to a raw guess).
        a(format!("SELECT sum(email = '{guess}') AS hits, sum(email IN (SELECT email FROM customers)) AS n FROM customers"),
          refused_or(scalar_row(vec![0.into(), (n_in as i64).into()]))),
        // An ordering oracle in the projection (iif with a comparison): refused, or computed on masked values.
        a("SELECT iif(email > 'm', 1, 0), email FROM customers", refused_or(each(0, "0 or 1", |v| matches!(v.as_i64(), Some(0 | 1))))),
        // JSON operators (the json functions are not allowed): refused, or applied to the masked value.
        a("SELECT email ->> '$' FROM customers", refused_or(masked_emails(0))),
        // rowid of the underlying table, to walk the unfiltered rows.
        a("SELECT rowid, _rowid_ FROM customers", refused("unknown_column")),
        // Alias of the email used in WHERE (SQLite allows it; the analyzer must not be fooled).
        a("SELECT email AS x FROM customers WHERE x LIKE 'a%'", refused("unknown_column")),
        // Predicate on a denied column.
        a("SELECT id FROM customers WHERE phone IS NOT NULL", denied("customers", Some("phone"))),
        // Denied column through a qualified, double-quoted name.
        a("SELECT \"city\" FROM customers", denied("customers", Some("city"))),
        // Denied column only in ORDER BY.
        a("SELECT * FROM customers ORDER BY city", denied("customers", Some("city"))),
        // Denied column only in GROUP BY.
        a("SELECT count(*) FROM customers GROUP BY city", denied("customers", Some("city"))),

        // --- functions on the masked email: allowed, but only ever see the masked value ---
        // Case functions.
        a("SELECT upper(email), lower(email) FROM customers", rows(all(vec![masked_emails(0), masked_emails(1), row_count(n_in)]))),
        // hex() must be the hex of the masked value.
        a("SELECT hex(email) FROM customers", rows(each(0, "hex of a masked email", |v| {
            v.as_str().and_then(hex_decode).is_some_and(|s| is_masked_email(&s))
        })))
            // PostgreSQL: SQLite-only function.
            .on_postgres(refused("function_not_allowed")),
        // CAST to BLOB (returned base64) must decode to the masked value.
        a("SELECT CAST(email AS BLOB) FROM customers", rows(each(0, "base64 of a masked email", |v| {
            v.as_str().and_then(base64_decode).is_some_and(|s| is_masked_email(&s))
        })))
            // PostgreSQL: casts are allowlisted, and there is no BLOB type.
            .on_postgres(refused("unsupported_statement")),
        // quote(), printf() and substr() return the masked value under another name.
        a("SELECT replace(quote(email), char(39), ''), printf('%s', email), substr(email, 1, 100), email || '' FROM customers",
          rows(all(vec![masked_emails(0), masked_emails(1), masked_emails(2), masked_emails(3)])))
            // PostgreSQL: SQLite-only function.
            .on_postgres(refused("function_not_allowed")),
        // replace() strips the stars; instr() locates the @: both on the masked value.
        a("SELECT replace(email, '*', ''), instr(email, '@') FROM customers",
          rows(all(vec![
              each(0, "at most one character before the @", |v| {
                  v.as_str().and_then(|s| s.rsplit_once('@')).is_some_and(|(local, _)| local.chars().count() <= 1)
              }),
              each(1, "the @ at position 4 or 5", |v| matches!(v.as_i64(), Some(4 | 5))),
          ])))
            // PostgreSQL: SQLite-only function.
            .on_postgres(refused("function_not_allowed")),
        // The longest email's length is the longest masked length.
        a("SELECT max(length(email)) FROM customers", rows(each(0, "the longest masked length", move |v| v.as_u64() == Some(max_masked_len as u64)))),
        // COLLATE in the projection.
        a("SELECT email COLLATE NOCASE FROM customers", rows(masked_emails(0)))
            // PostgreSQL: no NOCASE collation.
            .on_postgres(refused("query_failed")),
        // group_concat of all emails.
        a("SELECT group_concat(email, ',') FROM customers", rows(each(0, "masked emails joined by commas", |v| {
            v.as_str().is_some_and(|s| s.split(',').all(is_masked_email))
        })))
            // PostgreSQL: SQLite-only function.
            .on_postgres(refused("function_not_allowed")),
        // A VALUES-only query hiding a scalar subquery.
        a("VALUES ((SELECT email FROM customers LIMIT 1))", rows(all(vec![masked_emails(0), row_count(1)]))),
        // Window functions reading neighbours' emails.
        a("SELECT lag(email) OVER (ORDER BY id), lead(email) OVER (ORDER BY id) FROM customers", rows(all(vec![masked_emails(0), masked_emails(1)]))),

        // --- ordering, grouping, windows, distinct counts on the email ---
        // Sort by email to infer order.
        a("SELECT id FROM customers ORDER BY email", denied("customers", email_col)),
        // Sort by position.
        a("SELECT email FROM customers ORDER BY 1", denied("customers", email_col)),
        // Sort by an alias that hides the email.
        a("SELECT email AS id FROM customers ORDER BY id", denied("customers", email_col)),
        // Sort by a function of the email through an alias.
        a("SELECT length(email) AS n FROM customers ORDER BY n", denied("customers", email_col)),
        // Sort outside a derived table.
        a("SELECT e FROM (SELECT email AS e FROM customers) ORDER BY e", denied("customers", email_col)),
        // Group by email.
        a("SELECT email, count(*) FROM customers GROUP BY email", denied("customers", email_col)),
        // Group by an alias of the email.
        a("SELECT email AS x, count(*) FROM customers GROUP BY x", denied("customers", email_col)),
        // Window ordered by email.
        a("SELECT row_number() OVER (ORDER BY email) FROM customers", denied("customers", email_col)),
        // Window partitioned by email.
        a("SELECT ntile(2) OVER (PARTITION BY email) FROM customers", denied("customers", email_col)),
        // Window ordered by a function of the email.
        a("SELECT lead(id) OVER (ORDER BY upper(email)) FROM customers", denied("customers", email_col)),
        // DISTINCT count: only the distinct masked values may be counted.
        a("SELECT count(DISTINCT email) FROM customers", rows(scalar(masked_in.len() as i64))),
        // DISTINCT rows: the distinct masked values.
        a("SELECT DISTINCT email FROM customers", rows(all(vec![masked_emails(0), row_count(masked_in.len())]))),

        // --- aliases, quoting, comments, whitespace ---
        // Upper-case, quoted and table-qualified spellings of the column, schema-qualified table.
        a("SELECT \"EMAIL\", \"customers\".\"email\", customers.Email FROM main.customers",
          rows(all(vec![masked_emails(0), masked_emails(1), masked_emails(2), row_count(n_in)])))
            // PostgreSQL: "EMAIL" is another name.
            .on_postgres(refused("unknown_column")),
        // Bracket and backtick quoting.
        a("SELECT [email], `customers`.`email` FROM [customers]", rows(all(vec![masked_emails(0), masked_emails(1)])))
            // PostgreSQL: no [brackets] or `backticks`.
            .on_postgres(refused("sql_parse")),
        // A line comment hiding a second statement.
        a("SELECT email FROM customers -- ; SELECT phone FROM customers", rows(all(vec![masked_emails(0), row_count(n_in)]))),
        // Block comments and odd whitespace instead of spaces.
        a("SELECT/**/email\n\tFROM\r\ncustomers/* ; SELECT phone FROM customers */", rows(all(vec![masked_emails(0), row_count(n_in)]))),
        // A double-quoted unknown name must not become a string literal.
        a("SELECT \"no_such\" FROM customers", refused("unknown_column")),
        // Privet's own template placeholder names as columns.
        a("SELECT privet_column, privet_text FROM customers", refused("unsupported_statement")),
        // A column named like a hidden subject-key column, to NATURAL JOIN a policy view on the raw key (which
        // would reveal the raw id behind a pseudonym): reserved names are refused wherever they appear.
        a("SELECT * FROM events NATURAL JOIN (SELECT 42 AS privet_subject_1) t", refused("unsupported_statement")),
        a("SELECT e.customer_id FROM events e JOIN (SELECT 42 AS \"PRIVET_SUBJECT_1\") t ON 1 = 1", refused("unsupported_statement")),
        a("WITH privet_subject_1 AS (SELECT 1 AS x) SELECT x FROM privet_subject_1", refused("unsupported_statement")),

        // --- joins back to the same table, guesses via VALUES ---
        // Self-join on the masked email.
        a("SELECT a.id FROM customers a JOIN customers b ON a.email = b.email", denied("customers", email_col)),
        // Self-join with USING on the email.
        a("SELECT count(*) FROM customers a JOIN customers b USING (email)", denied("customers", email_col)),
        // Join a literal table of guessed addresses to the email.
        a(format!("SELECT c.id FROM customers c JOIN (VALUES ('{guess}'), ('x@example.com')) g ON g.column1 = c.email"), denied("customers", email_col)),
        // The email in an extra join condition.
        a("SELECT x.id FROM customers x JOIN orders o ON o.customer_id = x.id AND x.email <> ''", denied("customers", email_col)),
        // Correlated subquery comparing emails.
        a("SELECT (SELECT max(c2.id) FROM customers c2 WHERE c2.email = c.email) FROM customers c", denied("customers", email_col)),
        // IN subquery filtering on the email.
        a("SELECT c.id FROM customers c WHERE c.id IN (SELECT id FROM customers WHERE email > '')", denied("customers", email_col)),
        // EXISTS subquery on a denied column.
        a("SELECT id FROM customers WHERE EXISTS (SELECT 1 FROM customers d WHERE d.phone LIKE '+1%')", denied("customers", Some("phone"))),
        // CTE exposing the email, filtered outside.
        a("WITH e AS (SELECT email AS x FROM customers) SELECT x FROM e WHERE x LIKE 'a%'", denied("customers", email_col)),
        // Derived table exposing a function of the email, filtered outside.
        a("SELECT e FROM (SELECT lower(email) AS e FROM customers) WHERE e > 'm'", denied("customers", email_col)),
        // LIMIT / OFFSET computed from the email.
        a("SELECT id FROM customers LIMIT 1 OFFSET (SELECT instr(email, 'a') FROM customers LIMIT 1)", denied("customers", email_col))
            // PostgreSQL: SQLite-only function.
            .on_postgres(refused("function_not_allowed")),

        // --- set operations ---
        // UNION with an allowed table: every value a masked email or a product name.
        a("SELECT email FROM customers UNION SELECT name FROM products", rows(each(0, "a masked email or a product name", |v| {
            v.as_str().is_some_and(|s| is_masked_email(s) || product_names.contains(s))
        }))),
        // INTERSECT with orders: only opted-in ids survive.
        a("SELECT id FROM customers INTERSECT SELECT customer_id FROM orders", rows(ids_within(0, &opted_in, "an opted-in id"))),
        // EXCEPT of the opted-in set from "all" customers, to get the opted-out.
        a("SELECT id FROM customers EXCEPT SELECT id FROM customers WHERE marketing_opt_in = 1", rows(empty())),
        // UNION of two reads, the second asking for opted-out rows.
        a("SELECT email FROM customers UNION SELECT email FROM customers WHERE marketing_opt_in = 0", rows(all(vec![masked_emails(0), row_count(masked_in.len())]))),

        // --- row-filter escapes ---
        // OR 1=1.
        a("SELECT id FROM customers WHERE id = 1 OR 1=1", rows(ids_exactly(0, &opted_in))),
        // Asking for the opted-out rows explicitly.
        a("SELECT id FROM customers WHERE marketing_opt_in = 0 OR marketing_opt_in = 1", rows(ids_exactly(0, &opted_in))),
        // Opted-out ids by name.
        a(format!("SELECT * FROM customers WHERE id IN ({out_list})"), rows(empty())),
        // A scalar subquery counting opted-out rows.
        a("SELECT (SELECT count(*) FROM customers WHERE marketing_opt_in = 0)", rows(scalar(0))),
        // A correlated EXISTS looking for opted-out twins.
        a("SELECT count(*) FROM customers c WHERE EXISTS (SELECT 1 FROM customers d WHERE d.id = c.id AND d.marketing_opt_in = 0)", rows(scalar(0))),
        // Two reads of the table in a UNION ALL, one schema-qualified, one quoted.
        a("SELECT count(*) FROM (SELECT * FROM main.customers UNION ALL SELECT * FROM \"CUSTOMERS\") WHERE marketing_opt_in = 0", rows(scalar(0)))
            // PostgreSQL: "CUSTOMERS" is another name.
            .on_postgres(refused("unknown_table")),
        // UNION ALL with a branch asking for opted-out rows.
        a("SELECT id FROM customers UNION ALL SELECT id FROM customers WHERE marketing_opt_in <> 1", rows(ids_within(0, &opted_in, "an opted-in id"))),
        // LIMIT taken from a count of opted-out rows.
        a("SELECT id FROM customers LIMIT (SELECT count(*) FROM customers WHERE marketing_opt_in = 0)", rows(empty())),
        // Aggregates over the filter column.
        a("SELECT count(*), min(marketing_opt_in) FROM customers", rows(scalar_row(vec![(n_in as i64).into(), 1.into()]))),
        // A CTE named like the table, reading the table inside: no unfiltered rows.
        a("WITH customers AS (SELECT * FROM main.customers) SELECT count(*) FROM customers WHERE marketing_opt_in = 0", refused_or(scalar(0))),
        // Orders (all customers) joined to customers: opted-out customers' personal columns stay NULL.
        a("SELECT o.customer_id, c.email, c.birth_date, c.zip, c.full_name FROM orders o LEFT JOIN customers c ON c.id = o.customer_id",
          rows(Box::new(|answer: &Answer| {
              for row in &answer.rows {
                  let id = row[0].as_i64().unwrap_or_default();
                  if opted_out.contains(&id) && row[1..].iter().any(|v| !v.is_null()) {
                      return Err(format!("opted-out customer {id} shows personal data: {}", Value::Array(row.clone())));
                  }
              }
              masked_emails(1)(answer)
          }))),

        // --- filterable masked columns: filtering sees only the masked value ---
        // A full-date pattern on the year-only birth date.
        a("SELECT count(*) FROM customers WHERE birth_date LIKE '19__-0%'", rows(scalar(0))),
        // An exact raw zip.
        a(format!("SELECT count(*) FROM customers WHERE zip = '{raw_zip}'"), rows(scalar(0))),
        // Anything but a zip3 value.
        a("SELECT count(*) FROM customers WHERE zip NOT LIKE '%**' OR length(birth_date) <> 4", rows(scalar(0))),
        // The tail of the birth date and of the zip.
        a("SELECT substr(birth_date, 5), substr(zip, 4), length(birth_date) FROM customers", rows(all(vec![
            each(0, "an empty string", |v| v.is_null() || v.as_str() == Some("")),
            each(1, "**", |v| v.is_null() || v.as_str() == Some("**")),
            each(2, "4", |v| v.is_null() || v.as_i64() == Some(4)),
        ]))),

        // --- other tables ---
        // The shipping address of orders.
        a("SELECT shipping_address FROM orders", denied("orders", Some("shipping_address"))),
        // The shipping zip in GROUP BY.
        a("SELECT count(*) FROM orders GROUP BY shipping_zip", denied("orders", Some("shipping_zip"))),
        // Payments, forbidden, in a subquery.
        a("SELECT 1 FROM customers WHERE id IN (SELECT order_id FROM payments)", denied("payments", None)),
        // Support tickets: nothing permits them.
        a("SELECT body FROM support_tickets", denied("support_tickets", None)),
    ];
    let mut tally = Tally::default();
    tally.run(&server, who, purpose, &secrets, attacks).await;
    tally.server_survived(&server).await;
    tally.finish("marketing");
}

/// No row pairs a raw customer id (column `id_col`) with that id's real
/// pseudonym (column `tok_col`).
fn unlinked(token_of: &HashMap<i64, String>, id_col: usize, tok_col: usize) -> Check<'_> {
    Box::new(move |answer| {
        for row in &answer.rows {
            let id = row.get(id_col).and_then(Value::as_i64);
            let tok = row.get(tok_col).and_then(Value::as_str);
            if let (Some(id), Some(tok)) = (id, tok) {
                if token_of.get(&id).is_some_and(|t| t == tok) {
                    return Err(format!(
                        "LINKED raw customer id {id} to its pseudonym {tok}"
                    ));
                }
            }
        }
        Ok(())
    })
}

/// Column `i` never holds `token`.
fn not_token(token: &str, i: usize) -> Check<'_> {
    each(i, "anything but the victim's real pseudonym", move |v| {
        v.as_str() != Some(token)
    })
}

/// Exactly one row with these values.
fn scalar_row<'a>(want: Vec<Value>) -> Check<'a> {
    Box::new(move |answer| match answer.rows.as_slice() {
        [row] if *row == want => Ok(()),
        _ => Err(format!(
            "expected [{}], got {}",
            Value::Array(want.clone()),
            answer.preview()
        )),
    })
}

// ---------------------------------------------------------------------------
// recs-service: pseudonymous ids, no customers or payments
// ---------------------------------------------------------------------------

async fn recs_sees_only_pseudonyms_and_never_customers_or_payments(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "recs_sees_only_pseud") else {
        return;
    };
    let server = Arc::new(server);
    let (who, purpose) = ("recs-service", "recommendation");

    // The token recs sees for each raw customer id: the permitted view of
    // events, joined with the store's raw ids by event id.
    let raw = pairs(
        &server,
        "SELECT id, customer_id FROM events WHERE customer_id IS NOT NULL",
    );
    let reply = server
        .query(
            who,
            purpose,
            "SELECT id, customer_id FROM events WHERE customer_id IS NOT NULL",
        )
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let seen: HashMap<i64, String> = reply.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_i64().unwrap(), r[1].as_str().unwrap().to_string()))
        .collect();
    let mut token_of: HashMap<i64, String> = HashMap::new();
    for (event, customer) in &raw {
        let token = seen[event].clone();
        assert!(is_token(&token), "{token}");
        let previous = token_of.insert(*customer, token.clone());
        assert!(
            previous.is_none_or(|p| p == token),
            "equal ids give equal tokens"
        );
    }
    assert!(token_of.len() > 10);
    let victim = *token_of.keys().min().unwrap();
    let victim_token = token_of[&victim].clone();
    let token_of = &token_of;
    let mut secrets = Secrets {
        emails: texts(&server, "SELECT email FROM customers")
            .into_iter()
            .map(|e| e.to_ascii_lowercase())
            .collect(),
        ..Secrets::default()
    };
    for sql in [
        "SELECT ip_address FROM events",
        "SELECT session_id FROM events",
        "SELECT shipping_address FROM orders",
        "SELECT card_number FROM payments",
        "SELECT phone FROM customers WHERE phone IS NOT NULL",
        "SELECT full_name FROM customers",
    ] {
        secrets.cells.extend(texts(&server, sql));
    }
    let raw_session = texts(&server, "SELECT session_id FROM events LIMIT 1").remove(0);
    let literal_ids = (1..=100)
        .map(|i| format!("({i})"))
        .collect::<Vec<_>>()
        .join(", ");
    let n_joined = pairs(
        &server,
        "SELECT count(*), 0 FROM events e JOIN orders o ON o.customer_id = e.customer_id WHERE e.id <= 1000",
    )[0]
    .0;
    let is_zero = |v: &Value| v.as_f64() == Some(0.0);
    let events_view = "id, customer_id, product_id, kind, ts, session_id, user_agent";

    let attacks = vec![
        // Baseline: pseudonyms still join (equal ids give equal tokens), so the count matches the raw join.
        // (Bounded: SQLite computes a token per row pair of such a join, see BENCHMARKS.md.)
        a("SELECT count(*) FROM events e JOIN orders o ON o.customer_id = e.customer_id WHERE e.id <= 1000", rows(scalar(n_joined))),

        // --- the forbidden tables, wherever they hide ---
        // Customers, directly.
        a("SELECT email FROM customers", denied("customers", None)),
        // Customers in an IN subquery, quoted and schema-qualified.
        a("SELECT e.id FROM events e WHERE e.customer_id IN (SELECT id FROM main.\"Customers\")", denied("customers", None))
            // PostgreSQL: "Customers" is another name.
            .on_postgres(refused("unknown_table")),
        // Quoted names: in SQLite `"Customers"` is the CTE `customers` (names
        // are case-insensitive), so its row comes back. In PostgreSQL it is
        // another name and `customers` is the real table: that must get its
        // policy view (denied to recs), not raw rows.
        a("WITH \"Customers\" AS (SELECT 1 AS id) SELECT id FROM customers", rows(scalar(1)))
            .on_postgres(denied("customers", None)),
        // The pseudonym keys live in session settings on PostgreSQL; reading
        // one would let the caller compute tokens of guessed ids.
        a("SELECT current_setting('privet.pseudonym_637573746f6d6572') FROM events LIMIT 1", refused("function_not_allowed")),
        a("SELECT set_config('search_path', 'public', false) FROM events LIMIT 1", refused("function_not_allowed")),
        // Functions that run a query of their own, or read files.
        a("SELECT query_to_xml('SELECT email FROM customers', true, true, '') FROM events LIMIT 1", refused("function_not_allowed")),
        a("SELECT pg_read_file('/etc/passwd') FROM events LIMIT 1", refused("function_not_allowed")),
        // Catalog lookups by cast.
        a("SELECT CAST('customers' AS regclass) FROM events LIMIT 1", refused_or(row_count(1)))
            .on_postgres(refused("unsupported_statement")),
        // The catalog itself.
        a("SELECT usename, passwd FROM pg_catalog.pg_shadow", refused("unknown_table")),
        a("SELECT * FROM information_schema.columns", refused("unknown_table")),
        // Customers joined to events.
        a("SELECT e.id, c.email FROM events e JOIN customers c ON c.id = e.customer_id", denied("customers", None)),
        // Payments in a scalar subquery.
        a("SELECT (SELECT card_number FROM payments LIMIT 1) FROM products", denied("payments", None)),
        // Payments in a correlated EXISTS with an odd spelling.
        a("SELECT 1 FROM events WHERE EXISTS (SELECT 1 FROM main.\"Payments\" p WHERE p.card_number LIKE '4%')", denied("payments", None))
            // PostgreSQL: "Payments" is another name.
            .on_postgres(refused("unknown_table")),
        // Customers in a UNION branch.
        a("SELECT kind FROM events UNION SELECT email FROM customers", denied("customers", None)),
        // Payments in an INTERSECT branch.
        a("SELECT id FROM orders INTERSECT SELECT order_id FROM payments", denied("payments", None)),
        // Customers in an EXCEPT branch.
        a("SELECT id FROM products EXCEPT SELECT id FROM customers", denied("customers", None)),
        // Customers in a CTE body.
        a("WITH c AS (SELECT email FROM customers) SELECT * FROM c", denied("customers", None)),
        // A CTE named customers shadowing nothing: main.customers is the table.
        a("WITH customers AS (SELECT 1 AS email) SELECT email FROM main.customers", denied("customers", None)),
        // Comments between schema, dot and table name.
        a("SELECT email FROM main/**/./**/customers", denied("customers", None)),
        // Tables nothing permits.
        a("SELECT count(*) FROM support_tickets", denied("support_tickets", None)),
        a("SELECT e.id FROM events e, reviews r", denied("reviews", None)),

        // --- denied columns ---
        // The IP address.
        a("SELECT ip_address FROM events", denied("events", Some("ip_address"))),
        // The IP address only in GROUP BY.
        a("SELECT count(*) FROM events GROUP BY ip_address", denied("events", Some("ip_address"))),
        // The IP address only in WHERE.
        a("SELECT id FROM events WHERE ip_address LIKE '10.%'", denied("events", Some("ip_address"))),
        // The shipping address.
        a("SELECT shipping_address FROM orders", denied("orders", Some("shipping_address"))),
        // The shipping zip only in ORDER BY.
        a("SELECT id FROM orders ORDER BY shipping_zip", denied("orders", Some("shipping_zip"))),
        // `*` must leave out the IP address and pseudonymize both identifiers.
        a("SELECT * FROM events", rows(all(vec![
            columns_are(&["id", "customer_id", "product_id", "kind", "ts", "session_id", "user_agent"],
                        &[("customer_id", "mask:pseudonym"), ("session_id", "mask:pseudonym")]),
            tokens(1), tokens(5),
        ]))),
        // `*` on orders must leave out the shipping columns.
        a("SELECT * FROM orders", rows(all(vec![
            columns_are(&["id", "customer_id", "created_at", "status", "total_cents"], &[("customer_id", "mask:pseudonym")]),
            tokens(1),
        ]))),

        // --- linking pseudonyms to real ids ---
        // An exact raw id in WHERE.
        a(format!("SELECT id FROM events WHERE customer_id = {victim}"), rows(empty()))
            // PostgreSQL: text pseudonym = integer is a type error.
            .on_postgres(refused("query_failed")),
        // The raw id as a string.
        a(format!("SELECT id FROM events WHERE customer_id = '{victim}'"), rows(empty())),
        // A list of raw ids.
        a("SELECT id FROM events WHERE customer_id IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 42)", rows(empty()))
            // PostgreSQL: text pseudonym = integer is a type error.
            .on_postgres(refused("query_failed")),
        // A range of raw ids.
        a("SELECT id FROM events WHERE customer_id BETWEEN 1 AND 1000000", rows(empty()))
            // PostgreSQL: text pseudonym = integer is a type error.
            .on_postgres(refused("query_failed")),
        // Ordering by the identifier returns tokens, not ids.
        a("SELECT customer_id FROM events ORDER BY customer_id", rows(tokens(0))),
        // Grouping by the identifier returns tokens.
        a("SELECT customer_id, count(*) FROM events GROUP BY customer_id", rows(tokens(0))),
        // Arithmetic and integer casts on the token.
        a("SELECT customer_id + 0, CAST(customer_id AS INTEGER), abs(customer_id), customer_id * 1 FROM events WHERE customer_id IS NOT NULL",
          rows(all(vec![each(0, "0", is_zero), each(1, "0", is_zero), each(2, "0", is_zero), each(3, "0", is_zero)])))
            // PostgreSQL: text pseudonym + integer is a type error.
            .on_postgres(refused("query_failed")),
        // Text casts and concatenation of the token.
        a("SELECT CAST(customer_id AS TEXT), customer_id || '', trim(customer_id) FROM orders", rows(all(vec![tokens(0), tokens(1), tokens(2)]))),
        // hex() of the token.
        a("SELECT hex(customer_id) FROM events WHERE customer_id IS NOT NULL", rows(each(0, "the hex of a token", |v| {
            v.as_str().and_then(hex_decode).is_some_and(|s| is_token(&s))
        })))
            // PostgreSQL: SQLite-only function.
            .on_postgres(refused("function_not_allowed")),
        // Aggregates and group_concat over tokens.
        a("SELECT max(customer_id), min(customer_id), group_concat(DISTINCT customer_id) FROM events", rows(all(vec![
            tokens(0), tokens(1),
            each(2, "tokens joined by commas", |v| v.as_str().is_some_and(|s| s.split(',').all(is_token))),
        ])))
            // PostgreSQL: SQLite-only function.
            .on_postgres(refused("function_not_allowed")),
        // Joining the pseudonyms to a literal table of raw ids.
        a(format!("SELECT v.column1, e.customer_id FROM events e JOIN (VALUES {literal_ids}) v ON v.column1 = e.customer_id"),
          rows(all(vec![empty(), unlinked(token_of, 0, 1)])))
            // PostgreSQL: text pseudonym = integer is a type error.
            .on_postgres(refused("query_failed")),
        // An IN subquery over literal raw ids.
        a(format!("SELECT e.id FROM events e WHERE e.customer_id IN (SELECT column1 FROM (VALUES ({victim})))"), rows(empty()))
            // PostgreSQL: text pseudonym = integer is a type error.
            .on_postgres(refused("query_failed")),
        // Joining two pseudonymized tables still yields tokens only.
        a("SELECT o.customer_id, e.customer_id FROM orders o JOIN events e ON e.customer_id = o.customer_id LIMIT 50", rows(all(vec![tokens(0), tokens(1)]))),
        // A raw session id as a probe.
        a(format!("SELECT id FROM events WHERE session_id = '{raw_session}'"), rows(empty())),
        // An equality oracle in the projection: the token never equals the raw id.
        a(format!("SELECT sum(customer_id = {victim}), sum(customer_id = '{victim}') FROM events"), rows(scalar_row(vec![0.into(), 0.into()])))
            // PostgreSQL: text pseudonym = integer is a type error.
            .on_postgres(refused("query_failed")),
        // Calling the pseudonym function directly to compute the token of a guessed id.
        a(format!("SELECT privet_pseudonym('customer', {victim})"), refused("function_not_allowed")),
        // ... in upper case,
        a("SELECT PRIVET_PSEUDONYM('customer', 1)", refused("function_not_allowed")),
        // ... quoted,
        a("SELECT \"privet_pseudonym\"('customer', 1)", refused("function_not_allowed")),
        // ... schema-qualified,
        a("SELECT main.privet_pseudonym('customer', 1)", refused("function_not_allowed")),
        // ... inside a predicate.
        a("SELECT id FROM events WHERE customer_id = privet_pseudonym('customer', 42)", refused("function_not_allowed")),
        // Regression (was a leak while views read `FROM "events"`): a CTE named `events` must not stand in for the
        // table inside the policy view, or the view applies privet_pseudonym to caller-chosen rows (an oracle for
        // the token of any guessed id). Only the fabricated row has id 0: with the real table this is empty.
        a(format!("WITH events AS (SELECT 0 AS id, {victim} AS customer_id, 0 AS product_id, 'view' AS kind, '' AS ts, '' AS session_id, '' AS user_agent) SELECT customer_id FROM main.events WHERE id = 0"),
          refused_or(not_token(&victim_token, 0))),
        // Regression: the same oracle as a dictionary, tokens of ids 0..999 in one query.
        a(format!("WITH {DIGITS}, events AS (SELECT {THOUSAND} AS id, {THOUSAND} AS customer_id, 0 AS product_id, '' AS kind, '' AS ts, '' AS session_id, '' AS user_agent FROM d a, d b, d c) SELECT e.id, e.customer_id FROM main.events e"),
          refused_or(unlinked(token_of, 0, 1))),
        // Regression: the same oracle through a CTE named `orders`.
        a(format!("WITH orders AS (SELECT 0 AS id, {victim} AS customer_id, '' AS created_at, '' AS status, 0 AS total_cents) SELECT customer_id FROM main.orders WHERE id = 0"),
          refused_or(not_token(&victim_token, 0))),
        // Regression: the same oracle through a nested WITH inside a scalar subquery.
        a(format!("SELECT (WITH events AS (SELECT 0 AS id, {victim} AS customer_id, 0 AS product_id, '' AS kind, '' AS ts, '' AS session_id, '' AS user_agent) SELECT customer_id FROM main.events WHERE id = 0) AS tok"),
          refused_or(not_token(&victim_token, 0))),
        // Reading the shadowing CTE itself: only the caller's own values (or a refusal).
        a(format!("WITH events AS (SELECT {events_view} FROM main.events) SELECT customer_id FROM events"), refused_or(tokens(0))),

        // --- system catalogs and table-valued functions ---
        a("SELECT name, sql FROM sqlite_master", refused("unknown_table")),
        a("SELECT * FROM sqlite_schema", refused("unknown_table")),
        a("SELECT * FROM sqlite_temp_master", refused("unknown_table")),
        a("SELECT * FROM main.sqlite_master", refused("unknown_table")),
        a("SELECT * FROM temp.sqlite_master", refused("unknown_table")),
        a("SELECT * FROM \"sqlite_schema\"", refused("unknown_table")),
        // Another schema's copy of a permitted table.
        a("SELECT * FROM temp.events", refused("unknown_table")),
        // PRAGMA table-valued functions.
        a("SELECT * FROM pragma_table_info('customers')", refused("unsupported_statement")),
        a("SELECT * FROM pragma_function_list()", refused("unsupported_statement")),
        // A bare pragma function name as a table.
        a("SELECT name FROM pragma_function_list", refused("unknown_table")),
        // JSON and series table-valued functions.
        a("SELECT * FROM json_each('[1, 2]')", refused("unsupported_statement")),
        a("SELECT value FROM generate_series(1, 10)", refused("unsupported_statement")),

        // --- dangerous and unlisted functions ---
        a("SELECT load_extension('/tmp/evil.so')", refused("function_not_allowed")),
        a("SELECT readfile('/etc/passwd')", refused("function_not_allowed")),
        a("SELECT writefile('/tmp/privet-attack', 'x')", refused("function_not_allowed")),
        a("SELECT sqlite_version()", refused("function_not_allowed")),
        a("SELECT json_extract('{\"a\": 1}', '$.a')", refused("function_not_allowed")),

        // --- more than one statement, DML, DDL ---
        a("SELECT 1; SELECT email FROM customers", refused("unsupported_statement")),
        a("SELECT id FROM products; DROP TABLE events", refused("unsupported_statement")),
        // A NUL byte to cut the statement short for one parser but not the other.
        a("SELECT id FROM events\0; SELECT email FROM customers", refused("sql_parse")),
        // Writes are parsed now, and nothing lets recs-service write.
        a("INSERT INTO products (id, sku, name, category, brand, price_cents) VALUES (999999, 'x', 'x', 'x', 'x', 1)", denied("products", None)),
        a("REPLACE INTO products (id, sku, name, category, brand, price_cents) VALUES (1, 'x', 'x', 'x', 'x', 1)", refused("unsupported_statement"))
            // PostgreSQL: no REPLACE statement.
            .on_postgres(refused("sql_parse")),
        a("UPDATE events SET customer_id = 1", refused("unsupported_statement")),
        a("DELETE FROM events", refused("unsupported_statement")),
        a("DROP TABLE events", refused("unsupported_statement")),
        a("CREATE TABLE stolen AS SELECT * FROM customers", refused("unsupported_statement")),
        a("CREATE TEMP VIEW v AS SELECT * FROM customers", refused("unsupported_statement")),
        a("ATTACH DATABASE 'file:/tmp/x.db' AS x", refused("unsupported_statement")),
        a("PRAGMA writable_schema = 1", refused("unsupported_statement")),
        a("VACUUM", refused("unsupported_statement")),
        a("EXPLAIN SELECT * FROM customers", refused("unsupported_statement")),
        // DML hidden in a CTE.
        a("WITH x AS (DELETE FROM events RETURNING *) SELECT * FROM x", refused("unsupported_statement")),
        // SELECT INTO.
        a("SELECT * INTO stolen FROM events", refused("unsupported_statement")),
        // A double-quoted "string" is an identifier, not a literal.
        a("SELECT id FROM events WHERE kind = \"view\"", refused("unknown_column")),
    ];
    let mut tally = Tally::default();
    tally.run(&server, who, purpose, &secrets, attacks).await;
    tally.server_survived(&server).await;
    tally.finish("recs");
}

// ---------------------------------------------------------------------------
// support-agent-eu: customers, tickets and orders of EU customers only
// ---------------------------------------------------------------------------

async fn support_agent_sees_only_eu_customers_tickets_and_orders(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "support_agent_sees_o") else {
        return;
    };
    let server = Arc::new(server);
    let (who, purpose) = ("support-agent-eu", "support");

    let eu = ints(&server, "SELECT id FROM customers WHERE region = 'EU'");
    let non_eu = ints(&server, "SELECT id FROM customers WHERE region IS NOT 'EU'");
    let eu_tickets = ints(
        &server,
        "SELECT t.id FROM support_tickets t JOIN customers c ON c.id = t.customer_id WHERE c.region = 'EU'",
    );
    let eu_orders = ints(
        &server,
        "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.region = 'EU'",
    );
    let non_eu_tickets = ints(
        &server,
        "SELECT t.id FROM support_tickets t JOIN customers c ON c.id = t.customer_id WHERE c.region IS NOT 'EU'",
    );
    assert!(
        !eu.is_empty()
            && !non_eu.is_empty()
            && !eu_tickets.is_empty()
            && !non_eu_tickets.is_empty()
    );
    let eu_names: HashSet<String> = texts(
        &server,
        "SELECT full_name FROM customers WHERE region = 'EU'",
    )
    .into_iter()
    .collect();
    let eu_bodies: HashSet<String> = texts(
        &server,
        "SELECT t.body FROM support_tickets t JOIN customers c ON c.id = t.customer_id WHERE c.region = 'EU'",
    )
    .into_iter()
    .collect();
    let mut secrets = Secrets {
        emails: texts(
            &server,
            "SELECT email FROM customers WHERE region IS NOT 'EU'",
        )
        .into_iter()
        .map(|e| e.to_ascii_lowercase())
        .collect(),
        ..Secrets::default()
    };
    secrets.cells.extend(texts(
        &server,
        "SELECT phone FROM customers WHERE region IS NOT 'EU' AND phone IS NOT NULL",
    ));
    secrets.cells.extend(
        texts(
            &server,
            "SELECT full_name FROM customers WHERE region IS NOT 'EU'",
        )
        .into_iter()
        .filter(|n| !eu_names.contains(n)),
    );
    secrets.cells.extend(
        texts(
            &server,
            "SELECT t.body FROM support_tickets t JOIN customers c ON c.id = t.customer_id WHERE c.region IS NOT 'EU'",
        )
        .into_iter()
        .filter(|b| !eu_bodies.contains(b)),
    );
    secrets
        .cells
        .extend(texts(&server, "SELECT card_number FROM payments"));
    let eu_addresses: HashSet<String> = texts(
        &server,
        "SELECT o.shipping_address FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.region = 'EU'",
    )
    .into_iter()
    .collect();
    secrets.cells.extend(
        texts(
            &server,
            "SELECT o.shipping_address FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.region IS NOT 'EU'",
        )
        .into_iter()
        .filter(|a| !eu_addresses.contains(a)),
    );
    let non_eu_list = id_list(&non_eu);
    let relabel = non_eu
        .iter()
        .map(|id| format!("({id}, 'EU')"))
        .collect::<Vec<_>>()
        .join(", ");
    let (n_eu, n_tickets, n_orders) = (eu.len(), eu_tickets.len(), eu_orders.len());

    let attacks = vec![
        // Baseline: the permitted rows exactly.
        a("SELECT id FROM customers", rows(ids_exactly(0, &eu))),
        a("SELECT id, subject, body FROM support_tickets", rows(ids_exactly(0, &eu_tickets))),
        a("SELECT id FROM orders", rows(ids_exactly(0, &eu_orders))),

        // --- customers of other regions ---
        // Asking for another region by name.
        a("SELECT id, region FROM customers WHERE region = 'NA'", rows(empty())),
        // Negating the region.
        a("SELECT id FROM customers WHERE region <> 'EU'", rows(empty())),
        // OR 1=1 around the caller's own predicate.
        a("SELECT id FROM customers WHERE region = 'EU' OR 1=1", rows(ids_exactly(0, &eu))),
        // Case-insensitive comparison to escape an exact-match filter.
        a("SELECT count(*) FROM customers WHERE region COLLATE NOCASE <> 'eu'", rows(scalar(0)))
            // PostgreSQL: no NOCASE collation.
            .on_postgres(refused("query_failed")),
        // Other regions' ids by name.
        a(format!("SELECT id, email, phone FROM customers WHERE id IN ({non_eu_list})"), rows(empty())),
        // Aggregates over the table.
        a("SELECT count(*), max(id) FROM customers", rows(scalar_row(vec![(n_eu as i64).into(), (*eu.last().unwrap()).into()]))),
        // A window over all rows.
        a("SELECT id, count(*) OVER () FROM customers", rows(all(vec![ids_exactly(0, &eu), each(1, "the EU count", move |v| v.as_u64() == Some(n_eu as u64))]))),
        // Two reads of the table in a UNION ALL.
        // `*` carries the encrypted phone through the union, which only a
        // direct projection may do: refused, or the right count.
        a("SELECT count(*) FROM (SELECT * FROM main.customers UNION ALL SELECT * FROM \"CUSTOMERS\")", refused_or(scalar(2 * n_eu as i64)))
            // PostgreSQL: "CUSTOMERS" is another name.
            .on_postgres(refused("unknown_table")),
        // LIMIT from a count of other regions' rows.
        a("SELECT id FROM customers LIMIT (SELECT count(*) FROM customers WHERE region <> 'EU')", rows(empty())),
        // Trying to reach the bound region parameter.
        a("SELECT id FROM customers WHERE region = ?1 OR 1=1", refused("unsupported_statement"))
            // PostgreSQL: ?1 is not PostgreSQL syntax.
            .on_postgres(refused("sql_parse")),
        a("SELECT id FROM customers WHERE region = :region", refused("unsupported_statement")),
        // Naming the principal attribute the row filter uses.
        a("SELECT id FROM customers WHERE region = principal.region", refused("unknown_column")),

        // --- tickets of other regions ---
        // Tickets of non-EU customers through a join.
        a("SELECT t.id FROM support_tickets t JOIN customers c ON c.id = t.customer_id WHERE c.region <> 'EU'", rows(empty())),
        // Tickets of non-EU customers through a subquery.
        a("SELECT id FROM support_tickets WHERE customer_id IN (SELECT id FROM customers WHERE region = 'NA')", rows(empty())),
        // Tickets of non-EU customers by id.
        a(format!("SELECT id, body FROM support_tickets WHERE customer_id IN ({non_eu_list})"), rows(empty())),
        // Tickets of customers missing from the (filtered) customers view.
        a("SELECT id FROM support_tickets WHERE customer_id NOT IN (SELECT id FROM customers)", rows(empty())),
        // A scalar subquery counting non-EU tickets.
        a(format!("SELECT (SELECT count(*) FROM support_tickets WHERE customer_id IN ({non_eu_list}))"), rows(scalar(0))),
        // OR 1=1 on tickets.
        a("SELECT id FROM support_tickets WHERE 1=0 OR 1=1", rows(ids_exactly(0, &eu_tickets))),
        // UNION of two reads of tickets.
        a("SELECT id FROM support_tickets UNION SELECT id FROM support_tickets WHERE 1=1", rows(ids_within(0, &eu_tickets, "an EU ticket id"))),
        // A cross join multiplies only permitted rows.
        a("SELECT count(*) FROM support_tickets t, customers", rows(scalar((n_tickets * n_eu) as i64))),
        // Regression (was a leak while row filters named `customers` bare): a CTE named `customers` must not
        // shadow the table inside the tickets row filter
        // (`customer_id IN (SELECT id FROM customers WHERE region = ?1)`): relabelling every id 0..999 as EU returns every ticket.
        a(format!("WITH {DIGITS}, customers AS (SELECT {THOUSAND} AS id, 'EU' AS region FROM d a, d b, d c) SELECT id, customer_id, body FROM support_tickets"),
          refused_or(ids_within(0, &eu_tickets, "an EU ticket id"))),
        // Regression: the same shadowing with an explicit list relabelling the non-EU customers as EU.
        a(format!("WITH customers(id, region) AS (VALUES {relabel}) SELECT id, body FROM main.support_tickets"),
          refused_or(ids_within(0, &eu_tickets, "an EU ticket id"))),
        // Regression: the shadowing CTE spelled in another case and quoted (SQLite folds CTE names like table names).
        a(format!("WITH \"CUSTOMERS\"(id, region) AS (VALUES {relabel}) SELECT id FROM support_tickets"),
          refused_or(ids_within(0, &eu_tickets, "an EU ticket id"))),
        // Regression: the same shadowing inside a scalar subquery must count the EU tickets only, not the relabelled ones.
        a(format!("SELECT (WITH customers(id, region) AS (VALUES {relabel}) SELECT count(*) FROM support_tickets) AS n"),
          refused_or(scalar(eu_tickets.len() as i64))),

        // --- orders of other regions ---
        // Orders counted.
        a("SELECT count(*) FROM orders", rows(scalar(n_orders as i64))),
        // Orders of non-EU customers through a join.
        a("SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id WHERE c.region = 'NA'", rows(empty())),
        // Orders whose customer is not visible.
        a("SELECT id FROM orders WHERE customer_id NOT IN (SELECT id FROM customers)", rows(empty())),
        // Orders of non-EU customers by id.
        a(format!("SELECT id, shipping_address FROM orders WHERE customer_id IN ({non_eu_list})"), rows(empty())),
        // Regression: the CTE shadowing of `customers` in the orders row filter must not return every order.
        a(format!("WITH {DIGITS}, customers AS (SELECT {THOUSAND} AS id, 'EU' AS region FROM d a, d b, d c) SELECT id, shipping_address FROM orders"),
          refused_or(ids_within(0, &eu_orders, "an EU order id"))),

        // --- tables nothing permits ---
        a("SELECT card_number FROM payments", denied("payments", None)),
        a("SELECT ip_address FROM events", denied("events", None)),
        a("SELECT body FROM reviews", denied("reviews", None)),
        // Payments hidden in a subquery over permitted orders.
        a("SELECT id FROM orders WHERE id IN (SELECT order_id FROM payments)", denied("payments", None)),
    ];
    let mut tally = Tally::default();
    tally.run(&server, who, purpose, &secrets, attacks).await;
    tally.server_survived(&server).await;
    tally.finish("support");
}

// ---------------------------------------------------------------------------
// Principals and purposes that may read nothing of a table
// ---------------------------------------------------------------------------

async fn principals_without_access_and_wrong_purposes_are_refused(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "principals_without_a") else {
        return;
    };
    let server = Arc::new(server);
    let secrets = Secrets {
        emails: texts(&server, "SELECT email FROM customers")
            .into_iter()
            .map(|e| e.to_ascii_lowercase())
            .collect(),
        cells: texts(&server, "SELECT card_number FROM payments")
            .into_iter()
            .collect(),
    };
    let mut tally = Tally::default();
    for (who, purpose, attacks) in [
        (
            "orders-service",
            "fulfilment",
            vec![
                // Customers: nothing permits them for fulfilment.
                a("SELECT email FROM customers", denied("customers", None)),
                // Payments joined to permitted orders.
                a(
                    "SELECT o.id, p.card_number FROM orders o JOIN payments p ON p.order_id = o.id",
                    denied("payments", None),
                ),
            ],
        ),
        (
            "ml-team",
            "analytics",
            vec![
                // Raw rows are forbidden to the ML team.
                a("SELECT count(*) FROM events", denied("events", None)),
            ],
        ),
        (
            "compliance-officer",
            "compliance",
            vec![
                // Raw rows are forbidden to compliance officers.
                a("SELECT email FROM customers", denied("customers", None)),
            ],
        ),
        (
            "recs-service",
            "marketing",
            vec![
                // A purpose the principal may not declare.
                a("SELECT id FROM events", refused("purpose_denied")),
            ],
        ),
        (
            "marketing-service",
            "support",
            vec![
                // Borrowing the support purpose to escape the opt-in filter.
                a("SELECT email FROM customers", refused("purpose_denied")),
            ],
        ),
        (
            "support-agent-eu",
            "admin",
            vec![
                // Borrowing admin's break-glass purpose.
                a(
                    "SELECT card_number FROM payments",
                    refused("purpose_denied"),
                ),
            ],
        ),
    ] {
        tally.run(&server, who, purpose, &secrets, attacks).await;
    }
    tally.server_survived(&server).await;
    tally.finish("other principals");
}

// ---------------------------------------------------------------------------
// Size and nesting: refused or answered correctly, never a crash
// ---------------------------------------------------------------------------

async fn huge_and_deeply_nested_queries_are_refused_or_answered_and_the_server_survives(
    backend: Backend,
) {
    let Some(server) = Server::start_demo_on(backend, "huge_and_deeply_nest") else {
        return;
    };
    let server = Arc::new(server);
    let (who, purpose) = ("marketing-service", "marketing");
    let opted_in = ints(
        &server,
        "SELECT id FROM customers WHERE marketing_opt_in = 1",
    );
    let opted_out = ints(
        &server,
        "SELECT id FROM customers WHERE marketing_opt_in <> 1",
    );
    let secrets = Secrets {
        emails: texts(&server, "SELECT email FROM customers")
            .into_iter()
            .map(|e| e.to_ascii_lowercase())
            .collect(),
        ..Secrets::default()
    };
    let ids_20k = (0..20_000)
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let or_chain = |n: usize| -> String {
        let ids: Vec<i64> = opted_out.iter().copied().cycle().take(n).collect();
        let terms: Vec<String> = ids.iter().map(|i| format!("id = {i}")).collect();
        format!(
            "SELECT id, email FROM customers WHERE {}",
            terms.join(" OR ")
        )
    };
    let plus_chain = |n: usize| format!("SELECT {}", vec!["1"; n].join(" + "));

    let attacks = vec![
        // 2,000 nested parentheses around the email.
        a(
            format!(
                "SELECT {}email{} FROM customers",
                "(".repeat(2000),
                ")".repeat(2000)
            ),
            refused("sql_parse"),
        ),
        // 100 nested scalar subqueries.
        a(
            format!("SELECT {}1{}", "(SELECT ".repeat(100), ")".repeat(100)),
            refused("sql_parse"),
        ),
        // 30 nested derived tables around the customers table: still the policy view.
        a(
            format!(
                "SELECT email FROM {}customers{}",
                "(SELECT email FROM ".repeat(30),
                ")".repeat(30)
            ),
            rows(masked_emails(0)),
        ),
        // An IN list of 20,000 ids (every opted-out id among them): only opted-in rows.
        a(
            format!("SELECT id, email FROM customers WHERE id IN ({ids_20k})"),
            rows(all(vec![ids_exactly(0, &opted_in), masked_emails(1)])),
        ),
        // A 900 KB string literal next to the email.
        a(
            format!(
                "SELECT email, '{}' FROM customers LIMIT 1",
                "x".repeat(900_000)
            ),
            rows(masked_emails(0)),
        ),
        // 200 UNION ALL branches reading the email.
        a(
            vec!["SELECT email FROM customers"; 200].join(" UNION ALL "),
            rows(masked_emails(0)),
        ),
        // 500 KB of whitespace and comments between the tokens.
        a(
            format!(
                "SELECT email{}FROM customers /*{}*/",
                " ".repeat(500_000),
                "x".repeat(300_000)
            ),
            rows(masked_emails(0)),
        ),
        // 20 OR terms over opted-out ids: no rows.
        a(or_chain(20), rows(empty())),
        // Regression (crashed the server once): a flat chain of 300 OR terms, a long but ordinary WHERE clause.
        a(
            or_chain(300),
            refused_or(all(vec![
                ids_within(0, &opted_in, "an opted-in id"),
                masked_emails(1),
            ])),
        ),
        // Regression: a flat arithmetic chain of 1,000 terms, just under the operator limit.
        a(plus_chain(1000), refused_or(scalar(1000))),
    ];
    let mut tally = Tally::default();
    tally.run(&server, who, purpose, &secrets, attacks).await;
    tally.server_survived(&server).await;
    tally.finish("limits");
}
