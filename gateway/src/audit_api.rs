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
    let query = subject_query(subject, pseudonym);
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

/// The index query of a subject report: the id itself, or the pseudonym
/// principals saw instead of it.
fn subject_query(subject: &str, pseudonym: Option<&str>) -> String {
    let mut query = format!("subject:\"{}\"", escape(subject));
    if let Some(token) = pseudonym {
        query = format!("{query} OR subject:\"{}\"", escape(token));
    }
    query
}

/// The most events one CSV subject report holds; beyond it the caller is
/// asked to narrow the time range rather than get a partial report.
pub const MAX_CSV_EVENTS: usize = 100_000;

/// A subject report as CSV ([`CSV_HEADER`], then one [`csv_row`] per
/// access, newest first): every matching event, not one page. Paged
/// internally over the events durable when it starts (`seq` bound), so
/// events appended meanwhile cannot shift the pages.
pub fn subject_csv(
    log: &AuditLog,
    index: &AuditIndex,
    subject: &str,
    pseudonym: Option<&str>,
    range: TimeRange,
) -> Result<String, RequestError> {
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    let Some(last) = log.size().checked_sub(1) else {
        return Ok(out);
    };
    let query = format!("({}) AND seq:<={last}", subject_query(subject, pseudonym));
    let mut offset = 0;
    loop {
        let page = Page {
            offset,
            limit: MAX_LIMIT,
        };
        let hits = index.search(&query, range, page).map_err(index_error)?;
        if hits.total > MAX_CSV_EVENTS {
            return Err(bad(format!(
                "{} accesses match {subject}: more than the {MAX_CSV_EVENTS} one CSV report holds; narrow the time range (since/until)",
                hits.total
            )));
        }
        for &seq in &hits.seqs {
            let event = log
                .event(seq)
                .map_err(|e| internal(&format!("reading event {seq}"), e))?;
            out.push_str(&csv_row(&event));
            out.push('\n');
        }
        offset += hits.seqs.len();
        if hits.seqs.is_empty() || offset >= hits.total {
            return Ok(out);
        }
    }
}

/// The most buckets a timeline has, and the most events it counts (the
/// newest; `truncated` says when there were more).
pub const MAX_TIMELINE_BUCKETS: usize = 240;
pub const MAX_TIMELINE_EVENTS: usize = 200_000;

/// Per principal and time bucket: requests, denials (outcome `denied`) and
/// anomalies (events the detector acted on: action other than `none`), over
/// `[since_us, until_us)` cut into `buckets` equal buckets. Events without a
/// principal (failed authentication) count under `(unauthenticated)`.
pub fn timeline(
    log: &AuditLog,
    index: &AuditIndex,
    since_us: i64,
    until_us: i64,
    buckets: usize,
) -> Result<Value, RequestError> {
    if until_us <= since_us {
        return Err(bad("the timeline's `until` must be after its `since`"));
    }
    if buckets == 0 || buckets > MAX_TIMELINE_BUCKETS {
        return Err(bad(format!(
            "buckets must be 1 to {MAX_TIMELINE_BUCKETS}, not {buckets}"
        )));
    }
    let span = until_us - since_us;
    let n = i64::try_from(buckets).unwrap_or(1);
    let width = (span / n + i64::from(span % n != 0)).max(1);
    let range = TimeRange {
        since_us: Some(since_us),
        until_us: Some(until_us),
    };
    let search = |page: Page| index.search("*", range, page).map_err(index_error);
    let total = search(Page::first(0))?.total;
    let counted = total.min(MAX_TIMELINE_EVENTS);
    #[derive(Default)]
    struct Row {
        requests: Vec<u64>,
        denials: Vec<u64>,
        anomalies: Vec<u64>,
    }
    let mut rows: std::collections::BTreeMap<String, Row> = std::collections::BTreeMap::new();
    if counted > 0 {
        // Hits are newest first: the newest and the oldest counted seq.
        let newest = search(Page::first(1))?.seqs.first().copied();
        let oldest = search(Page {
            offset: counted - 1,
            limit: 1,
        })?
        .seqs
        .first()
        .copied();
        if let (Some(oldest), Some(newest)) = (oldest, newest) {
            let mut next = oldest;
            while next <= newest {
                let batch = log
                    .read_events(next, 5_000)
                    .map_err(|e| internal("reading the audit log", e))?;
                let Some(last) = batch.last() else {
                    break;
                };
                next = last.seq + 1;
                for event in batch.iter().filter(|e| e.seq <= newest) {
                    if event.time_us < since_us || event.time_us >= until_us {
                        continue;
                    }
                    let Ok(i) = usize::try_from((event.time_us - since_us) / width) else {
                        continue;
                    };
                    let name = event
                        .principal
                        .clone()
                        .unwrap_or_else(|| "(unauthenticated)".to_owned());
                    let row = rows.entry(name).or_insert_with(|| Row {
                        requests: vec![0; buckets],
                        denials: vec![0; buckets],
                        anomalies: vec![0; buckets],
                    });
                    if let Some(slot) = row.requests.get_mut(i) {
                        *slot += 1;
                    }
                    if event.outcome == audit::Outcome::Denied {
                        if let Some(slot) = row.denials.get_mut(i) {
                            *slot += 1;
                        }
                    }
                    if event.anomaly.action != "none" {
                        if let Some(slot) = row.anomalies.get_mut(i) {
                            *slot += 1;
                        }
                    }
                }
            }
        }
    }
    let principals: Vec<Value> = rows
        .into_iter()
        .map(|(principal, row)| {
            json!({
                "principal": principal,
                "totals": {
                    "requests": row.requests.iter().sum::<u64>(),
                    "denials": row.denials.iter().sum::<u64>(),
                    "anomalies": row.anomalies.iter().sum::<u64>(),
                },
                "requests": row.requests,
                "denials": row.denials,
                "anomalies": row.anomalies,
            })
        })
        .collect();
    Ok(json!({
        "since": format_time(since_us),
        "until": format_time(until_us),
        "since_us": since_us,
        "until_us": until_us,
        "bucket_seconds": width as f64 / 1e6,
        "buckets": buckets,
        "events": counted,
        "total": total,
        "truncated": counted < total,
        "principals": principals,
    }))
}

/// Where the outcome of the last full verification is kept, in the audit
/// dir beside the log (not inside it: it is bookkeeping, not log data).
pub const LAST_VERIFICATION_FILE: &str = "last-verification.json";

/// Keeps the outcome of a full verification (HTTP or `privet audit verify`)
/// in `audit_dir` for [`health`]. A failure to write it is logged, never
/// turned into a failed verification.
pub fn record_verification(audit_dir: &std::path::Path, outcome: &Value) {
    let mut record = outcome.clone();
    let now = crate::audit::now_us();
    record["time_us"] = json!(now);
    record["time"] = json!(format_time(now));
    let path = audit_dir.join(LAST_VERIFICATION_FILE);
    let bytes = serde_json::to_vec(&record).unwrap_or_default();
    if let Err(e) = crate::demo::write_atomically(&path, &bytes, 0o644) {
        tracing::warn!(path = %path.display(), error = %e, "could not record the verification time");
    }
}

/// The log's health: its size, the latest signed checkpoint (with the key
/// to check it), and when a full verification last ran and what it found
/// (`null` when none has run since the file was first written).
pub fn health(trail: &crate::audit::AuditTrail) -> Result<Value, RequestError> {
    let log = trail.log()?;
    let key = log.public_key();
    let last = std::fs::read(trail.dir().join(LAST_VERIFICATION_FILE))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok());
    Ok(json!({
        "size": log.size(),
        "latest_checkpoint": log.latest_checkpoint().map(|c| checkpoint_json(&key, &c)),
        "public_key": B64.encode(key.as_bytes()),
        "public_key_pem": key.to_pem(),
        "last_verification": last,
    }))
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
    let reading = |e: &dyn std::fmt::Display| internal(&format!("reading event {seq}"), e);
    // The entry is the exact bytes the leaf hash covers: a reader can hash
    // it (SHA-256(0x00 || entry)) and check the event against a proof
    // without trusting this answer's parsed fields.
    let entry = log.entry(seq).map_err(|e| reading(&e))?;
    let event: Event = serde_json::from_slice(&entry).map_err(|e| reading(&e))?;
    let leaf = log.leaf_hash(seq).map_err(|e| reading(&e))?;
    let mut value = event_json(&event);
    value["leaf_hash"] = json!(B64.encode(leaf));
    value["entry"] = json!(B64.encode(&entry));
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

    /// An event of `principal` at `time_us`.
    fn event_at(
        principal: Option<&str>,
        time_us: i64,
        outcome: audit::Outcome,
        action: &str,
        subject: &str,
    ) -> Event {
        let mut event = crate::audit::shred_event(subject, "x", "r-test");
        event.principal = principal.map(str::to_owned);
        event.time_us = time_us;
        event.outcome = outcome;
        event.anomaly.action = action.to_owned();
        event.endpoint = "query".to_owned();
        event
    }

    #[tokio::test]
    async fn timeline_subject_csv_and_health() {
        use audit::Outcome::{Allowed, Denied};
        let dir = tempfile::tempdir().unwrap();
        let trail = crate::audit::AuditTrail::open(dir.path());
        let hour = 3_600_000_000;
        let min = 60_000_000;
        for event in [
            event_at(Some("b"), NOW - 1, Denied, "none", "customer:7"),
            event_at(Some("a"), NOW + 10 * min, Allowed, "none", "customer:1"),
            event_at(Some("a"), NOW + 20 * min, Denied, "none", "customer:1"),
            event_at(None, NOW + 30 * min, Denied, "none", "customer:1"),
            event_at(Some("a"), NOW + hour + 5, Allowed, "alert", "customer:1"),
            event_at(Some("b"), NOW + 2 * hour + 1, Denied, "none", "customer:7"),
            event_at(Some("b"), NOW + 3 * hour, Allowed, "none", "customer:7"),
        ] {
            trail.record(event).await.unwrap();
        }
        let log = trail.log().unwrap();
        let index = trail.index().unwrap();

        let tl = timeline(&log, &index, NOW, NOW + 3 * hour, 3).unwrap();
        assert_eq!(tl["events"], 5, "{tl}");
        assert_eq!(tl["truncated"], false);
        assert_eq!(tl["bucket_seconds"], 3_600.0);
        let row = |name: &str| {
            tl["principals"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["principal"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("{name} in {tl}"))
        };
        let a = row("a");
        assert_eq!(a["requests"], json!([2, 1, 0]));
        assert_eq!(a["denials"], json!([1, 0, 0]));
        assert_eq!(a["anomalies"], json!([0, 1, 0]));
        assert_eq!(a["totals"]["requests"], 3);
        let b = row("b");
        assert_eq!(b["requests"], json!([0, 0, 1]));
        assert_eq!(b["denials"], json!([0, 0, 1]));
        let anonymous = row("(unauthenticated)");
        assert_eq!(anonymous["denials"], json!([1, 0, 0]));
        assert_eq!(tl["principals"].as_array().unwrap().len(), 3);
        let empty = timeline(&log, &index, NOW + 4 * hour, NOW + 5 * hour, 2).unwrap();
        assert_eq!(empty["events"], 0);
        assert_eq!(empty["principals"], json!([]));
        assert!(timeline(&log, &index, NOW, NOW, 3).is_err());
        assert!(timeline(&log, &index, NOW, NOW + hour, 0).is_err());
        assert!(timeline(&log, &index, NOW, NOW + hour, MAX_TIMELINE_BUCKETS + 1).is_err());

        // Every access of customer:7, however many pages, newest first.
        let csv = subject_csv(&log, &index, "customer:7", None, TimeRange::all()).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], CSV_HEADER);
        assert_eq!(lines.len(), 4, "{csv}");
        assert!(
            lines[1].starts_with("6,") && lines[3].starts_with("0,"),
            "{csv}"
        );
        let none = subject_csv(&log, &index, "customer:8", None, TimeRange::all()).unwrap();
        assert_eq!(none.lines().count(), 1);

        // The event as shown carries the exact bytes its leaf hash covers.
        let shown = show(&log, 3).unwrap();
        let entry = B64.decode(shown["entry"].as_str().unwrap()).unwrap();
        assert_eq!(
            B64.encode(audit::merkle::leaf_hash(&entry)),
            shown["leaf_hash"].as_str().unwrap()
        );

        // Health says when the last full verification ran, once one has.
        assert_eq!(health(&trail).unwrap()["last_verification"], Value::Null);
        let verified = verify(&trail).unwrap();
        assert_eq!(verified["verified"], true, "{verified}");
        let h = health(&trail).unwrap();
        assert_eq!(h["size"], 7);
        assert_eq!(h["last_verification"]["verified"], true, "{h}");
        assert_eq!(h["last_verification"]["events"], 7);
        assert!(h["last_verification"]["time_us"].as_i64().unwrap() > NOW);
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
        /// `format=csv`: every matching access as CSV, not one JSON page.
        csv: bool,
    },
    Timeline {
        since_us: i64,
        until_us: i64,
        buckets: usize,
    },
    Health,
}

/// An audit answer: JSON, or a CSV document (subject reports).
#[derive(Debug, Clone)]
pub enum Answer {
    Json(Value),
    Csv { filename: String, text: String },
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
                csv: match params.get("format") {
                    None | Some("json") => false,
                    Some("csv") => true,
                    Some(other) => {
                        return Err(bad(format!("format must be json or csv, not `{other}`")))
                    }
                },
            }),
            ["timeline"] => {
                let range = params.range(now)?;
                Ok(AuditRequest::Timeline {
                    since_us: range.since_us.unwrap_or(now - 86_400_000_000),
                    until_us: range.until_us.unwrap_or(now),
                    buckets: params.number("buckets")?.unwrap_or(24),
                })
            }
            ["health"] => Ok(AuditRequest::Health),
            _ => Err(RequestError::new(
                ErrorCode::NotFound,
                format!(
                    "no such audit endpoint: /v1/audit/{rest}; there are search, events/SEQ, checkpoint, proof/SEQ, verify, subjects/ID, timeline and health"
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
            AuditRequest::Timeline { .. } => "audit_timeline",
            AuditRequest::Health => "audit_health",
        }
    }

    /// Answers from the trail (blocking: file reads, index search).
    pub fn answer(
        self,
        trail: &crate::audit::AuditTrail,
        pseudonymize: &Pseudonymizer,
    ) -> Result<Answer, RequestError> {
        let log = trail.log()?;
        match self {
            AuditRequest::Search { query, range, page } => {
                search(&log, &*trail.index()?, &query, range, page).map(Answer::Json)
            }
            AuditRequest::Event(seq) => show(&log, seq).map(Answer::Json),
            AuditRequest::Checkpoint => checkpoint(&log).map(Answer::Json),
            AuditRequest::Proof(seq) => prove(&log, seq).map(Answer::Json),
            AuditRequest::Verify => verify(trail).map(Answer::Json),
            AuditRequest::Subject {
                id,
                range,
                page,
                csv,
            } => {
                let token = pseudonymize(&id);
                let index = trail.index()?;
                if csv {
                    let text = subject_csv(&log, &index, &id, token.as_deref(), range)?;
                    let safe: String = id
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                        .collect();
                    return Ok(Answer::Csv {
                        filename: format!("subject-{safe}.csv"),
                        text,
                    });
                }
                subject(&log, &index, &id, token.as_deref(), range, page).map(Answer::Json)
            }
            AuditRequest::Timeline {
                since_us,
                until_us,
                buckets,
            } => timeline(&log, &*trail.index()?, since_us, until_us, buckets).map(Answer::Json),
            AuditRequest::Health => health(trail).map(Answer::Json),
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
    let result = audit::verify(&trail.log_dir());
    let Some(outcome) = verification_json(&result) else {
        let why = result.err().map(|e| e.to_string()).unwrap_or_default();
        return Err(internal("verifying the audit log", why));
    };
    record_verification(trail.dir(), &outcome);
    Ok(outcome)
}

/// The outcome of a full verification as JSON (intact, or tampered with the
/// first bad seq); `None` when it could not run (an I/O error, no log).
pub fn verification_json(result: &Result<audit::VerifyReport, audit::LogError>) -> Option<Value> {
    match result {
        Ok(report) => Some(json!({
            "verified": true,
            "events": report.events,
            "segments": report.segments,
            "checkpoints": report.checkpoints,
            "root": B64.encode(report.root),
            "latest_checkpoint": report.latest_checkpoint.as_ref().map(|c| checkpoint_json(&report.public_key, c)),
            "torn_tail_bytes": report.torn_tail_bytes,
        })),
        Err(audit::LogError::Tampered { seq, what }) => Some(json!({
            "verified": false,
            "first_bad_seq": seq,
            "problem": what,
        })),
        Err(_) => None,
    }
}
