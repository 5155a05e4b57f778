//! The audit event: one per request, allowed, denied or failed.
//!
//! An event never carries data values: the SQL is stored as a fingerprint
//! with every literal replaced by a placeholder, and data subjects only by
//! their primary key (`customer:42`), so the log is not a second copy of the
//! personal data it protects.
//!
//! The log stores each event as its JSON serialization (the RFC 6962 leaf
//! entry), so field names here are part of the on-disk format: add fields
//! with `#[serde(default)]`, never rename them.

use serde::{Deserialize, Serialize};

/// At most this many data-subject ids are kept per event; beyond it the
/// event says the list was truncated.
pub const MAX_SUBJECTS: usize = 1_000;

/// One request as the audit log records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log (the leaf index), assigned by the log on append;
    /// whatever the caller sets is overwritten.
    pub seq: u64,
    /// When the request arrived, microseconds since the Unix epoch (UTC).
    pub time_us: i64,
    pub request_id: String,
    /// The authenticated principal; `None` when authentication failed.
    pub principal: Option<String>,
    #[serde(default)]
    pub roles: Vec<String>,
    /// The client's address (IP, no port).
    pub source: String,
    pub purpose: Option<String>,
    /// What was asked: `query`, `explain`, `policy_reload`, `audit_search`, ...
    pub endpoint: String,
    /// The kind of SQL statement (`select`), when there was one that parsed.
    pub statement: Option<String>,
    /// The SQL with every literal replaced by a placeholder.
    pub fingerprint: Option<String>,
    #[serde(default)]
    pub tables: Vec<TableAccess>,
    /// Ids of the policies behind the decisions.
    #[serde(default)]
    pub policies: Vec<String>,
    /// Rows returned to the client.
    pub rows: u64,
    #[serde(default)]
    pub subjects: Subjects,
    #[serde(default)]
    pub anomaly: Anomaly,
    pub latency_us: u64,
    pub outcome: Outcome,
    /// The error code of a refused or failed request (`policy_denied`, ...).
    pub error_code: Option<String>,
}

/// How a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Allowed,
    Denied,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::Failed => "failed",
        }
    }
}

/// A table the request read, with the decision for each column it used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableAccess {
    /// `customers`, as the catalog names it.
    pub table: String,
    pub columns: Vec<ColumnAccess>,
    /// Whether a row filter restricted the rows read.
    #[serde(default)]
    pub row_filter: bool,
}

/// One column and what the policies decided for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnAccess {
    pub column: String,
    pub decision: Decision,
    /// The mask applied, when the decision is `masked`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
}

/// The decision for one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    Plain,
    Masked,
    Decrypted,
    Denied,
    /// Written by an INSERT or UPDATE (encrypted on the way in where the
    /// column is encrypted).
    Written,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Plain => "plain",
            Decision::Masked => "masked",
            Decision::Decrypted => "decrypted",
            Decision::Denied => "denied",
            Decision::Written => "written",
        }
    }
}

/// The data subjects whose rows were returned, by primary key
/// (`customer:42`), capped at [`MAX_SUBJECTS`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subjects {
    pub ids: Vec<String>,
    /// More subjects were returned than `ids` holds.
    #[serde(default)]
    pub truncated: bool,
    /// Rows came back whose data subjects no key column named (aggregates,
    /// DISTINCT, set operations, derived tables without their key): they
    /// may include anyone's data. Subject reports list these too.
    #[serde(default)]
    pub unattributed: bool,
}

/// The anomaly detector's verdict (score 0 and action `none` until it runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anomaly {
    /// In [0, 1].
    pub score: f64,
    /// `none`, `log`, `alert`, `throttle` or `block`.
    pub action: String,
    #[serde(default)]
    pub reasons: Vec<String>,
}

impl Default for Anomaly {
    fn default() -> Self {
        Anomaly {
            score: 0.0,
            action: "none".into(),
            reasons: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_json() {
        let event = Event {
            seq: 7,
            time_us: 1_764_000_000_000_000,
            request_id: "r-1".into(),
            principal: Some("marketing-service".into()),
            roles: vec!["service".into()],
            source: "127.0.0.1".into(),
            purpose: Some("marketing".into()),
            endpoint: "query".into(),
            statement: Some("select".into()),
            fingerprint: Some("SELECT email FROM customers WHERE id = ?".into()),
            tables: vec![TableAccess {
                table: "customers".into(),
                columns: vec![ColumnAccess {
                    column: "email".into(),
                    decision: Decision::Masked,
                    mask: Some("email_partial".into()),
                }],
                row_filter: true,
            }],
            policies: vec!["marketing-email-masked".into()],
            rows: 1,
            subjects: Subjects {
                ids: vec!["customer:42".into()],
                truncated: false,
                unattributed: false,
            },
            anomaly: Anomaly::default(),
            latency_us: 250,
            outcome: Outcome::Allowed,
            error_code: None,
        };
        let json = serde_json::to_string(&event).unwrap();
        let back: Event = serde_json::from_str(&json).unwrap();
        assert_eq!(back, event);
        assert!(json.contains("\"decision\":\"masked\""));
    }
}
