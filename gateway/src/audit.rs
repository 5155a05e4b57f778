//! The gateway's side of the audit log: what one request's event says, and
//! the log and search index behind it (crate `audit`).
//!
//! Invariants:
//! * every request to a data or audit endpoint produces exactly one event,
//!   allowed, denied or failed, and its response is sent only once the event
//!   is durable; when the log cannot be written the request is refused with
//!   503 `audit_unavailable` and no data leaves;
//! * events carry no data values: SQL as a literal-free fingerprint, data
//!   subjects by key only.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use audit::{AuditIndex, AuditLog, ColumnAccess, Decision, Event, Subjects, TableAccess};

use crate::config::{Config, PrincipalConfig};
use crate::error::{ErrorCode, RequestError};
use crate::masks::Dialect;
use crate::sql::fingerprint::{fingerprint, Names};
use crate::sql::{Resolved, SubjectColumns};

/// Where the audit log lives under the data dir.
pub const AUDIT_DIR: &str = "audit";

/// The log's own directory under the audit dir (the index is beside it).
pub const LOG_DIR: &str = "log";

/// Events read from the log per index batch while catching up.
const CATCH_UP_BATCH: usize = 5_000;

/// While the log cannot be opened, requests retry opening it at most this
/// often (each refused with 503 meanwhile).
const REOPEN_EVERY: Duration = Duration::from_secs(1);

/// What the pipeline learned about a request, for its audit event.
#[derive(Debug, Clone)]
pub struct AccessRecord {
    /// The SQL text as sent (fingerprinted before it is written).
    pub sql: Option<String>,
    /// Statement kind (`select`) once the statement parsed as one.
    pub statement: Option<String>,
    /// Whether every name in the statement resolved against the catalog.
    pub names: Names,
    /// The fingerprint, when analysis already computed it.
    pub fingerprint: Option<String>,
    pub tables: Vec<TableAccess>,
    pub policies: BTreeSet<String>,
    pub subjects: Subjects,
    pub rows: u64,
    /// The anomaly detector's verdict, once it ran.
    pub anomaly: Option<audit::Anomaly>,
}

impl Default for AccessRecord {
    fn default() -> Self {
        AccessRecord {
            sql: None,
            statement: None,
            names: Names::Unchecked,
            fingerprint: None,
            tables: Vec::new(),
            policies: BTreeSet::new(),
            subjects: Subjects::default(),
            rows: 0,
            anomaly: None,
        }
    }
}

impl AccessRecord {
    /// Records what analysis decided: every table read, every column used
    /// with its decision, the policies behind them.
    pub fn resolved(&mut self, resolved: &Resolved, rule: crate::catalog::NameRule) {
        self.statement = Some("select".into());
        self.names = Names::Resolved;
        for (table, view) in &resolved.views {
            self.policies.extend(view.policy_ids.iter().cloned());
            let mut columns = Vec::new();
            for column in resolved.uses.keys().filter(|c| &c.table == table) {
                let Some(vc) = view
                    .columns
                    .iter()
                    .find(|c| rule.eq(&c.name, &column.column))
                else {
                    continue;
                };
                self.policies.extend(vc.policy_ids.iter().cloned());
                columns.push(ColumnAccess {
                    column: column.column.clone(),
                    decision: match (vc.mask.is_some(), vc.encrypted) {
                        (true, _) => Decision::Masked,
                        (false, true) => Decision::Decrypted,
                        (false, false) => Decision::Plain,
                    },
                    mask: vc.mask.map(|m| m.name().to_owned()),
                });
            }
            if let Some(filter) = &view.row_filter {
                self.policies.extend(filter.policy_ids.iter().cloned());
            }
            self.tables.push(TableAccess {
                table: table.clone(),
                columns,
                row_filter: view.row_filter.is_some(),
            });
        }
    }

    /// Records a refusal: the table and column it names, as denied.
    pub fn refused(&mut self, error: &RequestError) {
        self.policies.extend(error.policy_ids.iter().cloned());
        if error.code == ErrorCode::PolicyDenied {
            // A policy decided, so resolution got that far.
            self.names = Names::Resolved;
            self.statement.get_or_insert_with(|| "select".into());
        }
        let Some(table) = &error.table else {
            return;
        };
        let columns = error
            .column
            .iter()
            .map(|c| ColumnAccess {
                column: c.clone(),
                decision: Decision::Denied,
                mask: None,
            })
            .collect();
        match self.tables.iter_mut().find(|t| &t.table == table) {
            Some(t) => t.columns.extend(columns),
            None => self.tables.push(TableAccess {
                table: table.clone(),
                columns,
                row_filter: false,
            }),
        }
    }

    /// Records the data subjects of the returned rows, as `domain:key`
    /// (`customer:42`, or `customer:tok_...` where only a pseudonymized key
    /// passed through a derived table), capped at [`audit::MAX_SUBJECTS`],
    /// and whether rows may hold subject data no key names.
    pub fn returned(&mut self, subjects: &SubjectColumns, rows: &[Vec<serde_json::Value>]) {
        self.rows = 0;
        self.subjects.ids.clear();
        self.subjects.truncated = false;
        self.subjects.unattributed = false;
        self.returned_more(subjects, rows);
    }

    /// Adds a further batch of a streamed result to what
    /// [`AccessRecord::returned`] recorded.
    pub fn returned_more(&mut self, subjects: &SubjectColumns, rows: &[Vec<serde_json::Value>]) {
        self.rows += rows.len() as u64;
        self.subjects.unattributed |= subjects.incomplete && !rows.is_empty();
        if self.subjects.truncated || subjects.keys.is_empty() {
            return;
        }
        let mut seen: HashSet<String> = self.subjects.ids.iter().cloned().collect();
        'rows: for row in rows {
            for (i, domain) in &subjects.keys {
                let id = match row.get(*i) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Number(n)) => n.to_string(),
                    _ => continue,
                };
                let subject = format!("{domain}:{id}");
                if seen.contains(&subject) {
                    continue;
                }
                if seen.len() == audit::MAX_SUBJECTS {
                    self.subjects.truncated = true;
                    break 'rows;
                }
                seen.insert(subject.clone());
                self.subjects.ids.push(subject);
            }
        }
    }
}

/// Everything an event needs besides the access record.
pub struct RequestFacts<'a> {
    pub time_us: i64,
    pub request_id: &'a str,
    pub principal: Option<&'a PrincipalConfig>,
    pub source: std::net::IpAddr,
    pub purpose: Option<&'a str>,
    pub endpoint: &'a str,
    pub started: Instant,
}

/// Builds the event of a finished request.
pub fn event(
    facts: &RequestFacts<'_>,
    record: AccessRecord,
    error: Option<&RequestError>,
    dialect: Dialect,
    catalog: &crate::catalog::Catalog,
) -> Event {
    let outcome = match error {
        None => audit::Outcome::Allowed,
        Some(e) => match e.code {
            ErrorCode::Unauthenticated
            | ErrorCode::PurposeDenied
            | ErrorCode::PolicyDenied
            | ErrorCode::BackendRefused => audit::Outcome::Denied,
            _ => audit::Outcome::Failed,
        },
    };
    Event {
        seq: 0,
        time_us: facts.time_us,
        request_id: facts.request_id.to_owned(),
        principal: facts.principal.map(|p| p.spec.name.clone()),
        roles: facts
            .principal
            .map(|p| p.spec.roles.clone())
            .unwrap_or_default(),
        source: facts.source.to_string(),
        purpose: facts.purpose.map(str::to_owned),
        endpoint: facts.endpoint.to_owned(),
        statement: record.statement,
        fingerprint: record.fingerprint.or_else(|| {
            record
                .sql
                .as_deref()
                .and_then(|sql| fingerprint(sql, dialect, record.names, catalog))
        }),
        tables: record.tables,
        policies: record.policies.into_iter().collect(),
        rows: record.rows,
        subjects: record.subjects,
        anomaly: record.anomaly.unwrap_or_default(),
        latency_us: u64::try_from(facts.started.elapsed().as_micros()).unwrap_or(u64::MAX),
        outcome,
        error_code: error.map(|e| e.code.as_str().to_owned()),
    }
}

/// The event of a data subject's key being destroyed (crypto-shredding),
/// recorded by `privet keys shred` or, when the gateway was running, by the
/// gateway once it sees the keystore change. It names the subject, so the
/// subject's access report shows when their data became unreadable.
pub fn shred_event(subject: &str, by: &str, request_id: &str) -> Event {
    Event {
        seq: 0,
        time_us: now_us(),
        request_id: request_id.to_owned(),
        principal: Some(by.to_owned()),
        roles: Vec::new(),
        source: "local".to_owned(),
        purpose: Some("erasure".to_owned()),
        endpoint: "keys.shred".to_owned(),
        statement: None,
        fingerprint: None,
        tables: Vec::new(),
        policies: Vec::new(),
        rows: 0,
        subjects: audit::Subjects {
            ids: vec![subject.to_owned()],
            ..audit::Subjects::default()
        },
        anomaly: audit::Anomaly::default(),
        latency_us: 0,
        outcome: audit::Outcome::Allowed,
        error_code: None,
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Why the audit trail is not usable.
#[derive(Debug, thiserror::Error)]
pub enum TrailError {
    #[error("audit log: {0}")]
    Log(#[from] audit::LogError),
    #[error("audit index: {0}")]
    Index(#[from] audit::IndexError),
}

/// The open log and its index.
struct Open {
    log: Arc<AuditLog>,
    index: Arc<AuditIndex>,
}

/// The audit log and its search index, as the server uses them. The log may
/// be unavailable (it could not be opened); then every request is refused
/// and opening is retried.
pub struct AuditTrail {
    dir: PathBuf,
    open: Mutex<Result<Arc<Open>, (Instant, String)>>,
    /// One catch-up at a time.
    indexing: Mutex<()>,
}

impl AuditTrail {
    /// Opens the trail in `dir` (`DATA_DIR/audit`). A log that cannot be
    /// opened does not stop the server: it is reported, and requests are
    /// refused until it can be.
    pub fn open(dir: &Path) -> AuditTrail {
        let state = match open_parts(dir) {
            Ok(open) => Ok(Arc::new(open)),
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "the audit log cannot be opened: every request will be refused until it can");
                Err((Instant::now(), e.to_string()))
            }
        };
        let trail = AuditTrail {
            dir: dir.to_path_buf(),
            open: Mutex::new(state),
            indexing: Mutex::new(()),
        };
        if let Err(e) = trail.catch_up() {
            tracing::warn!(error = %e, "audit index catch-up failed; search may lag");
        }
        trail
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the log's segments and checkpoints are.
    pub fn log_dir(&self) -> PathBuf {
        self.dir.join(LOG_DIR)
    }

    /// The open log and index, reopening when the last attempt failed long
    /// enough ago.
    fn parts(&self) -> Result<Arc<Open>, RequestError> {
        let mut state = self.open.lock().unwrap_or_else(|p| p.into_inner());
        match &*state {
            Ok(open) => return Ok(Arc::clone(open)),
            Err((at, message)) if at.elapsed() < REOPEN_EVERY => {
                return Err(unavailable(&self.dir, message));
            }
            Err(_) => {}
        }
        match open_parts(&self.dir) {
            Ok(open) => {
                tracing::info!(dir = %self.dir.display(), "audit log opened");
                let open = Arc::new(open);
                *state = Ok(Arc::clone(&open));
                Ok(open)
            }
            Err(e) => {
                let message = e.to_string();
                *state = Err((Instant::now(), message.clone()));
                Err(unavailable(&self.dir, &message))
            }
        }
    }

    /// The log, or 503 `audit_unavailable`.
    pub fn log(&self) -> Result<Arc<AuditLog>, RequestError> {
        Ok(Arc::clone(&self.parts()?.log))
    }

    /// Appends `event` and waits until it is durable. Any failure is
    /// 503 `audit_unavailable`: the caller must not send the response.
    pub async fn record(&self, event: Event) -> Result<u64, RequestError> {
        let log = self.log()?;
        log.append(event).await.map_err(|e| {
            tracing::error!(error = %e, "audit append failed: refusing the request");
            unavailable(&self.dir, &e.to_string())
        })
    }

    /// Indexes every durable event the index does not have yet; returns the
    /// index's next sequence number.
    pub fn catch_up(&self) -> Result<u64, TrailError> {
        let Ok(open) = self.parts() else {
            return Ok(0);
        };
        let _one = self.indexing.lock().unwrap_or_else(|p| p.into_inner());
        let size = open.log.size();
        // next_seq() is the committed position; what is added but not yet
        // committed is tracked here.
        let mut next = open.index.next_seq();
        let mut added = false;
        while next < size {
            let events = open.log.read_events(next, CATCH_UP_BATCH)?;
            let Some(last) = events.last() else {
                break;
            };
            next = last.seq + 1;
            open.index.add(&events)?;
            added = true;
        }
        if added {
            open.index.commit()?;
        }
        Ok(open.index.next_seq())
    }

    /// The index, caught up with the log first, so a search sees every
    /// event acknowledged before it.
    pub fn index(&self) -> Result<Arc<AuditIndex>, RequestError> {
        let open = self.parts()?;
        self.catch_up().map_err(|e| {
            RequestError::new(
                ErrorCode::AuditUnavailable,
                format!("the audit index could not catch up with the log: {e}; `privet audit reindex` rebuilds it"),
            )
        })?;
        Ok(Arc::clone(&open.index))
    }
}

fn open_parts(dir: &Path) -> Result<Open, TrailError> {
    let log = AuditLog::open(&dir.join(LOG_DIR), audit::LogOptions::default())?;
    let index_dir = dir.join("index");
    let index = match AuditIndex::open(&index_dir) {
        Ok(index) => index,
        Err(e) if e.needs_rebuild() => {
            // Derived data: rebuild it from the log rather than refuse.
            tracing::warn!(error = %e, "the audit index cannot be used; rebuilding it from the log");
            AuditIndex::recreate(&index_dir)?
        }
        Err(e) => return Err(e.into()),
    };
    Ok(Open {
        log: Arc::new(log),
        index: Arc::new(index),
    })
}

fn unavailable(dir: &Path, message: &str) -> RequestError {
    RequestError::new(
        ErrorCode::AuditUnavailable,
        format!(
            "the audit log in {} cannot be written ({message}); requests are refused until it can",
            dir.display()
        ),
    )
}

/// The audit log directory of a config.
pub fn audit_dir(config: &Config) -> PathBuf {
    config.data_dir.join(AUDIT_DIR)
}
