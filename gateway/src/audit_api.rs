//! Compliance questions answered from the audit trail, shared by the HTTP
//! endpoints (`/v1/audit/...`) and the `privet audit` CLI: search, one
//! event, checkpoints, inclusion proofs, verification, subject reports.
//! Answers are JSON; fronts only render them.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use serde_json::{json, Value};

use audit::{AuditIndex, AuditLog, Event, Hits, Page, TimeRange};

use crate::error::{ErrorCode, RequestError};

/// Results per page unless asked otherwise, and the most one page holds.
pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1_000;

fn bad(message: impl Into<String>) -> RequestError {
    RequestError::new(ErrorCode::BadRequest, message)
}

fn internal(what: &str, e: impl std::fmt::Display) -> RequestError {
    RequestError::new(ErrorCode::AuditUnavailable, format!("{what}: {e}"))
}

/// A point in time as users write it: relative to now (`90s`, `30m`, `24h`,
/// `7d`, `2w`: that long ago), a date (`2026-11-25`, midnight UTC) or a UTC
/// time (`2026-11-25T10:00:00Z`). Returns microseconds since the epoch.
pub fn parse_time(text: &str, now_us: i64) -> Result<i64, RequestError> {
    let text = text.trim();
    let explain = || {
        bad(format!(
            "`{text}` is not a time: write 7d, 24h, 30m, 90s or 2w (that long ago), a date (2026-11-25) or a UTC time (2026-11-25T10:00:00Z)"
        ))
    };
    // `7d`: digits and a unit (a date ends in a digit, a time in `Z`).
    let relative = text.len() > 1
        && text[..text.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && text.ends_with(|c: char| c.is_ascii_alphabetic());
    if let Some(unit) = text.chars().last().filter(|_| relative) {
        let number: i64 = text[..text.len() - 1].parse().map_err(|_| explain())?;
        let seconds = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(explain()),
        };
        return number
            .checked_mul(seconds * 1_000_000)
            .and_then(|ago| now_us.checked_sub(ago))
            .filter(|_| number >= 0)
            .ok_or_else(explain);
    }
    let (date, clock) = match text.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (text, None),
    };
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(explain());
    };
    let (y, m, d): (i64, u32, u32) = (
        y.parse().map_err(|_| explain())?,
        m.parse().map_err(|_| explain())?,
        d.parse().map_err(|_| explain())?,
    );
    if !(1..=12).contains(&m) || d == 0 || d > crate::civil::days_in_month(y, m) {
        return Err(explain());
    }
    let mut seconds = crate::civil::days_from_civil(y, m, d) * crate::civil::DAY;
    if let Some(clock) = clock {
        let clock = clock
            .strip_suffix('Z')
            .or_else(|| clock.strip_suffix("+00:00"))
            .ok_or_else(|| {
                bad(format!(
                    "`{text}`: give times in UTC, ending in Z (2026-11-25T10:00:00Z)"
                ))
            })?;
        let fields: Vec<&str> = clock.split(':').collect();
        let (h, min, s): (i64, i64, i64) = match fields.as_slice() {
            [h, m] => (
                h.parse().map_err(|_| explain())?,
                m.parse().map_err(|_| explain())?,
                0,
            ),
            [h, m, s] => (
                h.parse().map_err(|_| explain())?,
                m.parse().map_err(|_| explain())?,
                s.parse().map_err(|_| explain())?,
            ),
            _ => return Err(explain()),
        };
        if !(0..24).contains(&h) || !(0..60).contains(&min) || !(0..60).contains(&s) {
            return Err(explain());
        }
        seconds += h * 3_600 + min * 60 + s;
    }
    seconds.checked_mul(1_000_000).ok_or_else(explain)
}

/// `2026-11-25T10:00:00.123456Z`.
pub fn format_time(time_us: i64) -> String {
    let secs = time_us.div_euclid(1_000_000);
    let micros = time_us.rem_euclid(1_000_000);
    let whole = crate::civil::rfc3339(secs);
    format!("{}.{micros:06}Z", whole.trim_end_matches('Z'))
}

/// An event as the API shows it: its fields plus a readable time.
pub fn event_json(event: &Event) -> Value {
    let mut value = serde_json::to_value(event).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("time".into(), json!(format_time(event.time_us)));
    }
    value
}

/// A page request with its bounds checked.
pub fn page(limit: Option<usize>, offset: Option<usize>) -> Result<Page, RequestError> {
    let limit = limit.unwrap_or(DEFAULT_LIMIT);
    if limit == 0 || limit > MAX_LIMIT {
        return Err(bad(format!("limit must be 1 to {MAX_LIMIT}, not {limit}")));
    }
    Ok(Page {
        offset: offset.unwrap_or(0),
        limit,
    })
}

/// The events of a hit list, read from the log (the source of truth).
fn hits_json(log: &AuditLog, hits: &Hits, page: &Page) -> Result<Value, RequestError> {
    let mut events = Vec::with_capacity(hits.seqs.len());
    for &seq in &hits.seqs {
        let event = log
            .event(seq)
            .map_err(|e| internal(&format!("reading event {seq}"), e))?;
        events.push(event_json(&event));
    }
    let next = page.offset + hits.seqs.len();
    Ok(json!({
        "total": hits.total,
        "offset": page.offset,
        "events": events,
        "next_offset": (next < hits.total).then_some(next),
    }))
}

/// `search QUERY` over the index.
pub fn search(
    log: &AuditLog,
    index: &AuditIndex,
    query: &str,
    range: TimeRange,
    page: Page,
) -> Result<Value, RequestError> {
    let hits = index.search(query, range, page).map_err(index_error)?;
    hits_json(log, &hits, &page)
}

/// Every access that returned this subject's rows: as the id itself and as
/// the pseudonym principals saw instead of it (`customer:tok_...`).
pub fn subject(
    log: &AuditLog,
    index: &AuditIndex,
    subject: &str,
    pseudonym: Option<&str>,
    range: TimeRange,
    page: Page,
) -> Result<Value, RequestError> {
    let mut query = format!("subject:\"{}\"", escape(subject));
    if let Some(token) = pseudonym {
        query = format!("{query} OR subject:\"{}\"", escape(token));
    }
    let hits = index.search(&query, range, page).map_err(index_error)?;
    let mut answer = hits_json(log, &hits, &page)?;
    answer["subject"] = json!(subject);
    if let Some(token) = pseudonym {
        answer["pseudonym"] = json!(token);
    }
    // Reads whose rows no key named (aggregates, DISTINCT, ...) may have
    // included this subject: the report says how many, and how to list them.
    let unattributed_query = format!("subject:{}", audit::UNATTRIBUTED);
    let unattributed = index
        .search(&unattributed_query, range, Page::first(0))
        .map_err(index_error)?;
    answer["unattributed"] = json!({
        "events": unattributed.total,
        "query": unattributed_query,
    });
    Ok(answer)
}

fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn index_error(e: audit::IndexError) -> RequestError {
    match e {
        audit::IndexError::BadQuery(_) => bad(e.to_string()),
        other => internal("audit index", other),
    }
}

/// One event, with its leaf hash.
pub fn show(log: &AuditLog, seq: u64) -> Result<Value, RequestError> {
    if seq >= log.size() {
        return Err(RequestError::new(
            ErrorCode::NotFound,
            format!(
                "no audit event {seq}: the log holds 0 to {}",
                log.size().saturating_sub(1)
            ),
        ));
    }
    let event = log
        .event(seq)
        .map_err(|e| internal(&format!("reading event {seq}"), e))?;
    let leaf = log
        .leaf_hash(seq)
        .map_err(|e| internal(&format!("reading event {seq}"), e))?;
    let mut value = event_json(&event);
    value["leaf_hash"] = json!(B64.encode(leaf));
    Ok(value)
}

/// A signed checkpoint as JSON, with the key to check it.
pub fn checkpoint_json(key: &audit::PublicKey, checkpoint: &audit::SignedCheckpoint) -> Value {
    json!({
        "size": checkpoint.size,
        "root": B64.encode(checkpoint.root),
        "time_us": checkpoint.time_us,
        "time": format_time(checkpoint.time_us),
        "signature": B64.encode(&checkpoint.signature),
        "signed_message": String::from_utf8_lossy(&checkpoint.signed_message()),
        "public_key": B64.encode(key.as_bytes()),
        "algorithm": "Ed25519",
    })
}

/// A checkpoint covering every event durable now (signed on demand).
pub fn checkpoint(log: &AuditLog) -> Result<Value, RequestError> {
    let current = match log.latest_checkpoint() {
        Some(c) if c.size == log.size() => c,
        _ => log
            .checkpoint()
            .map_err(|e| internal("signing a checkpoint", e))?,
    };
    Ok(checkpoint_json(&log.public_key(), &current))
}

/// The inclusion proof of event `seq` against the latest signed checkpoint
/// (a new one is signed when the latest does not cover `seq`), in the
/// field names of the transparency-dev test vectors.
pub fn prove(log: &AuditLog, seq: u64) -> Result<Value, RequestError> {
    check_seq(log, seq)?;
    let checkpoint = match log.latest_checkpoint() {
        Some(c) if c.size > seq => c,
        _ => log
            .checkpoint()
            .map_err(|e| internal("signing a checkpoint", e))?,
    };
    proof_json(log, seq, &checkpoint)
}

/// As [`prove`], against checkpoints already signed (for readers that may
/// not sign: the CLI beside a running gateway).
pub fn prove_existing(log: &AuditLog, seq: u64) -> Result<Value, RequestError> {
    check_seq(log, seq)?;
    let checkpoint = log
        .checkpoints()
        .map_err(|e| internal("reading checkpoints", e))?
        .into_iter()
        .rev()
        .find(|c| c.size > seq && c.size <= log.size())
        .ok_or_else(|| {
            RequestError::new(
                ErrorCode::NotFound,
                format!(
                    "event {seq} is not covered by a signed checkpoint yet; a running gateway signs one every minute, or ask GET /v1/audit/checkpoint"
                ),
            )
        })?;
    proof_json(log, seq, &checkpoint)
}

fn check_seq(log: &AuditLog, seq: u64) -> Result<(), RequestError> {
    if seq < log.size() {
        return Ok(());
    }
    Err(RequestError::new(
        ErrorCode::NotFound,
        format!(
            "no audit event {seq}: the log holds {} event(s)",
            log.size()
        ),
    ))
}

fn proof_json(
    log: &AuditLog,
    seq: u64,
    checkpoint: &audit::SignedCheckpoint,
) -> Result<Value, RequestError> {
    let proof = log
        .inclusion_proof(seq, checkpoint.size)
        .map_err(|e| internal("building the proof", e))?;
    let leaf = log
        .leaf_hash(seq)
        .map_err(|e| internal(&format!("reading event {seq}"), e))?;
    Ok(json!({
        "leafIdx": seq,
        "treeSize": checkpoint.size,
        "leafHash": B64.encode(leaf),
        "proof": proof.iter().map(|h| B64.encode(h)).collect::<Vec<_>>(),
        "root": B64.encode(checkpoint.root),
        "checkpoint": checkpoint_json(&log.public_key(), checkpoint),
    }))
}

/// Columns of the CSV renderings (search results, subject reports, exports).
pub const CSV_HEADER: &str = "seq,time,request_id,principal,roles,source,purpose,endpoint,outcome,error_code,statement,fingerprint,tables,columns,policies,rows,subjects,anomaly_score,anomaly_action,latency_us";

/// One event as a CSV row (RFC 4180 quoting).
pub fn csv_row(event: &Event) -> String {
    let columns: Vec<String> = event
        .tables
        .iter()
        .flat_map(|t| {
            t.columns.iter().map(move |c| match &c.mask {
                Some(mask) => format!("{}.{}:{}({mask})", t.table, c.column, c.decision.as_str()),
                None => format!("{}.{}:{}", t.table, c.column, c.decision.as_str()),
            })
        })
        .collect();
    let fields = [
        event.seq.to_string(),
        format_time(event.time_us),
        event.request_id.clone(),
        event.principal.clone().unwrap_or_default(),
        event.roles.join(" "),
        event.source.clone(),
        event.purpose.clone().unwrap_or_default(),
        event.endpoint.clone(),
        event.outcome.as_str().to_owned(),
        event.error_code.clone().unwrap_or_default(),
        event.statement.clone().unwrap_or_default(),
        event.fingerprint.clone().unwrap_or_default(),
        event
            .tables
            .iter()
            .map(|t| t.table.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        columns.join(" "),
        event.policies.join(" "),
        event.rows.to_string(),
        event.subjects.ids.join(" ") + if event.subjects.truncated { " ..." } else { "" },
        event.anomaly.score.to_string(),
        event.anomaly.action.clone(),
        event.latency_us.to_string(),
    ];
    fields
        .iter()
        .map(|f| csv_field(f))
        .collect::<Vec<_>>()
        .join(",")
}

fn csv_field(text: &str) -> String {
    // A leading = + - @ would make a spreadsheet evaluate the cell.
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

/// One line saying what an event was about: `customers(email:masked, id)`,
/// or the error code.
pub fn summary(event: &Value) -> String {
    let mut parts = Vec::new();
    for table in event["tables"].as_array().into_iter().flatten() {
        let columns: Vec<String> = table["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                let name = c["column"].as_str().unwrap_or_default();
                match c["decision"].as_str().unwrap_or_default() {
                    "plain" => name.to_owned(),
                    decision => format!("{name}:{decision}"),
                }
            })
            .collect();
        parts.push(format!(
            "{}({})",
            table["table"].as_str().unwrap_or_default(),
            columns.join(", ")
        ));
    }
    let mut text = format!(
        "{} {}",
        event["endpoint"].as_str().unwrap_or_default(),
        parts.join(" ")
    );
    if let Some(code) = event["error_code"].as_str() {
        text.push_str(&format!(" [{code}]"));
    }
    text.trim_end().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_764_072_000_000_000; // 2025-11-25T12:00:00Z

    #[test]
    fn relative_and_absolute_times() {
        assert_eq!(parse_time("7d", NOW).unwrap(), NOW - 7 * 86_400_000_000);
        assert_eq!(parse_time("90s", NOW).unwrap(), NOW - 90_000_000);
        assert_eq!(
            parse_time("2025-11-25", NOW).unwrap(),
            NOW - 12 * 3_600_000_000
        );
        assert_eq!(parse_time("2025-11-25T12:00:00Z", NOW).unwrap(), NOW);
        assert_eq!(parse_time("2025-11-25T12:00Z", NOW).unwrap(), NOW);
        assert_eq!(format_time(NOW + 5), "2025-11-25T12:00:00.000005Z");
        for bad in [
            "",
            "7x",
            "d",
            "-3d",
            "2025-13-01",
            "2025-02-30",
            "2025-11-25T25:00:00Z",
            "2025-11-25T10:00:00+02:00",
            "yesterday",
            "99999999999999999d",
        ] {
            let e = parse_time(bad, NOW).unwrap_err();
            assert_eq!(e.code, ErrorCode::BadRequest, "{bad}");
        }
    }

    #[test]
    fn pages_are_bounded() {
        assert!(page(Some(0), None).is_err());
        assert!(page(Some(MAX_LIMIT + 1), None).is_err());
        assert_eq!(page(None, Some(5)).unwrap().limit, DEFAULT_LIMIT);
    }
}

/// Decoded `?a=b&c=d` query parameters (`+` and `%XX` decoded; invalid
/// escapes kept as written).
#[derive(Debug, Default, Clone)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub fn parse(query: &str) -> QueryParams {
        QueryParams(
            query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect(),
        )
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn number(&self, name: &str) -> Result<Option<usize>, RequestError> {
        self.get(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| bad(format!("`{name}` must be a whole number, not `{v}`")))
            })
            .transpose()
    }

    fn range(&self, now_us: i64) -> Result<TimeRange, RequestError> {
        Ok(TimeRange {
            since_us: self
                .get("since")
                .map(|t| parse_time(t, now_us))
                .transpose()?,
            until_us: self
                .get("until")
                .map(|t| parse_time(t, now_us))
                .transpose()?,
        })
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One audit question, routed from `/v1/audit/REST`.
#[derive(Debug, Clone)]
pub enum AuditRequest {
    Search {
        query: String,
        range: TimeRange,
        page: Page,
    },
    Event(u64),
    Checkpoint,
    Proof(u64),
    Verify,
    Subject {
        id: String,
        range: TimeRange,
        page: Page,
    },
}

/// Computes the pseudonym principals saw instead of a subject id
/// (`customer:42` → `customer:tok_...`).
pub type Pseudonymizer = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

impl AuditRequest {
    /// Routes `rest` (the path after `/v1/audit/`) with its parameters.
    pub fn route(rest: &str, params: &QueryParams) -> Result<AuditRequest, RequestError> {
        let now = crate::audit::now_us();
        let seq = |text: &str| {
            text.parse::<u64>().map_err(|_| {
                bad(format!(
                    "`{text}` is not an event sequence number (a whole number)"
                ))
            })
        };
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            ["search"] => Ok(AuditRequest::Search {
                query: params
                    .get("q")
                    .filter(|q| !q.trim().is_empty())
                    .ok_or_else(|| {
                        bad("missing query parameter `q`: e.g. q=principal:marketing-service AND column:customers.email")
                    })?
                    .to_owned(),
                range: params.range(now)?,
                page: page(params.number("limit")?, params.number("offset")?)?,
            }),
            ["events", n] => Ok(AuditRequest::Event(seq(n)?)),
            ["checkpoint"] => Ok(AuditRequest::Checkpoint),
            ["proof", n] => Ok(AuditRequest::Proof(seq(n)?)),
            ["verify"] => Ok(AuditRequest::Verify),
            ["subjects", id] if !id.is_empty() => Ok(AuditRequest::Subject {
                id: subject_id(&percent_decode(id)),
                range: params.range(now)?,
                page: page(params.number("limit")?, params.number("offset")?)?,
            }),
            _ => Err(RequestError::new(
                ErrorCode::NotFound,
                format!(
                    "no such audit endpoint: /v1/audit/{rest}; there are search, events/SEQ, checkpoint, proof/SEQ, verify and subjects/ID"
                ),
            )),
        }
    }

    /// The endpoint as audit events name it.
    pub fn audit_name(&self) -> &'static str {
        match self {
            AuditRequest::Search { .. } => "audit_search",
            AuditRequest::Event(_) => "audit_event",
            AuditRequest::Checkpoint => "audit_checkpoint",
            AuditRequest::Proof(_) => "audit_proof",
            AuditRequest::Verify => "audit_verify",
            AuditRequest::Subject { .. } => "audit_subject",
        }
    }

    /// Answers from the trail (blocking: file reads, index search).
    pub fn answer(
        self,
        trail: &crate::audit::AuditTrail,
        pseudonymize: &Pseudonymizer,
    ) -> Result<Value, RequestError> {
        let log = trail.log()?;
        match self {
            AuditRequest::Search { query, range, page } => {
                search(&log, &*trail.index()?, &query, range, page)
            }
            AuditRequest::Event(seq) => show(&log, seq),
            AuditRequest::Checkpoint => checkpoint(&log),
            AuditRequest::Proof(seq) => prove(&log, seq),
            AuditRequest::Verify => verify(trail),
            AuditRequest::Subject { id, range, page } => {
                let token = pseudonymize(&id);
                subject(&log, &*trail.index()?, &id, token.as_deref(), range, page)
            }
        }
    }
}

/// `42` means `customer:42` (the demo's data subjects); `domain:id` as is.
pub fn subject_id(text: &str) -> String {
    if text.contains(':') {
        text.to_owned()
    } else {
        format!("customer:{text}")
    }
}

/// Full verification of the log on disk.
pub fn verify(trail: &crate::audit::AuditTrail) -> Result<Value, RequestError> {
    match audit::verify(&trail.log_dir()) {
        Ok(report) => Ok(json!({
            "verified": true,
            "events": report.events,
            "segments": report.segments,
            "checkpoints": report.checkpoints,
            "root": B64.encode(report.root),
            "latest_checkpoint": report.latest_checkpoint.as_ref().map(|c| checkpoint_json(&report.public_key, c)),
            "torn_tail_bytes": report.torn_tail_bytes,
        })),
        Err(audit::LogError::Tampered { seq, what }) => Ok(json!({
            "verified": false,
            "first_bad_seq": seq,
            "problem": what,
        })),
        Err(e) => Err(internal("verifying the audit log", e)),
    }
}
