//! The errors a request can end with: a stable machine-readable code, the
//! HTTP status it maps to, and a message that says what and why.

use serde::Serialize;

use crate::backend::BackendError;
use crate::sql::AnalysisError;

/// Stable error codes of the API. Clients match on these, so they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    SqlParse,
    UnsupportedStatement,
    UnknownTable,
    UnknownColumn,
    FunctionNotAllowed,
    Unauthenticated,
    PurposeDenied,
    PolicyDenied,
    BackendRefused,
    NotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    RequestTimeout,
    PolicyInvalid,
    QueryFailed,
    BackendBusy,
    BackendUnavailable,
    QueryTimeout,
    AuditUnavailable,
    /// A stored ciphertext failed to decrypt (altered, moved to another
    /// row or column, or under a key the keystore lacks).
    DecryptFailed,
    /// The keystore could not be read.
    KeysUnavailable,
    /// A DP export would spend more ε than the principal has left.
    PrivacyBudgetExhausted,
    /// The anomaly detector's action for this principal throttles it.
    AnomalyThrottled,
    /// The anomaly detector's action for this principal blocks the answer.
    AnomalyBlocked,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::SqlParse => "sql_parse",
            ErrorCode::UnsupportedStatement => "unsupported_statement",
            ErrorCode::UnknownTable => "unknown_table",
            ErrorCode::UnknownColumn => "unknown_column",
            ErrorCode::FunctionNotAllowed => "function_not_allowed",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::PurposeDenied => "purpose_denied",
            ErrorCode::PolicyDenied => "policy_denied",
            ErrorCode::BackendRefused => "backend_refused",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::RequestTimeout => "request_timeout",
            ErrorCode::PolicyInvalid => "policy_invalid",
            ErrorCode::QueryFailed => "query_failed",
            ErrorCode::BackendBusy => "backend_busy",
            ErrorCode::BackendUnavailable => "backend_unavailable",
            ErrorCode::QueryTimeout => "query_timeout",
            ErrorCode::AuditUnavailable => "audit_unavailable",
            ErrorCode::DecryptFailed => "decrypt_failed",
            ErrorCode::KeysUnavailable => "keys_unavailable",
            ErrorCode::PrivacyBudgetExhausted => "privacy_budget_exhausted",
            ErrorCode::AnomalyThrottled => "anomaly_throttled",
            ErrorCode::AnomalyBlocked => "anomaly_blocked",
            ErrorCode::Internal => "internal",
        }
    }

    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::BadRequest
            | ErrorCode::SqlParse
            | ErrorCode::UnsupportedStatement
            | ErrorCode::UnknownTable
            | ErrorCode::UnknownColumn
            | ErrorCode::FunctionNotAllowed
            | ErrorCode::QueryFailed => 400,
            ErrorCode::Unauthenticated => 401,
            ErrorCode::PurposeDenied
            | ErrorCode::PolicyDenied
            | ErrorCode::BackendRefused
            | ErrorCode::PrivacyBudgetExhausted
            | ErrorCode::AnomalyBlocked => 403,
            ErrorCode::AnomalyThrottled => 429,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::RequestTimeout => 408,
            ErrorCode::PolicyInvalid => 422,
            ErrorCode::Internal | ErrorCode::DecryptFailed => 500,
            ErrorCode::BackendBusy
            | ErrorCode::BackendUnavailable
            | ErrorCode::AuditUnavailable
            | ErrorCode::KeysUnavailable => 503,
            ErrorCode::QueryTimeout => 504,
        }
    }
}

/// A refused or failed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub code: ErrorCode,
    pub message: String,
    /// For `policy_denied`: the policies that decided (empty: deny by default).
    pub policy_ids: Vec<String>,
    /// For `policy_denied` / `unknown_table`: the table concerned.
    pub table: Option<String>,
    /// For `policy_denied`: the column concerned, if the denial is about one.
    pub column: Option<String>,
    /// For `anomaly_throttled`: seconds before trying again (`Retry-After`).
    pub retry_after_secs: Option<u32>,
}

impl RequestError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> RequestError {
        RequestError {
            code,
            message: message.into(),
            policy_ids: Vec::new(),
            table: None,
            column: None,
            retry_after_secs: None,
        }
    }
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for RequestError {}

impl From<AnalysisError> for RequestError {
    fn from(e: AnalysisError) -> RequestError {
        let code = match &e {
            AnalysisError::Empty => ErrorCode::BadRequest,
            AnalysisError::Parse(_) => ErrorCode::SqlParse,
            AnalysisError::MultipleStatements(_)
            | AnalysisError::UnsupportedStatement { .. }
            | AnalysisError::Unsupported(_) => ErrorCode::UnsupportedStatement,
            AnalysisError::UnknownTable { .. } => ErrorCode::UnknownTable,
            AnalysisError::UnknownColumn { .. } | AnalysisError::AmbiguousColumn { .. } => {
                ErrorCode::UnknownColumn
            }
            AnalysisError::FunctionNotAllowed { .. } => ErrorCode::FunctionNotAllowed,
            AnalysisError::Denied { .. } => ErrorCode::PolicyDenied,
        };
        let mut err = RequestError::new(code, e.to_string());
        match e {
            AnalysisError::UnknownTable { name } => err.table = Some(name),
            AnalysisError::Denied {
                table,
                column,
                policy_ids,
                ..
            } => {
                err.table = Some(table).filter(|t| !t.is_empty());
                err.column = column;
                err.policy_ids = policy_ids;
            }
            _ => {}
        }
        err
    }
}

impl From<BackendError> for RequestError {
    fn from(e: BackendError) -> RequestError {
        let code = match &e {
            BackendError::Unavailable { .. } => ErrorCode::BackendUnavailable,
            BackendError::Busy { .. } => ErrorCode::BackendBusy,
            BackendError::Timeout { .. } => ErrorCode::QueryTimeout,
            BackendError::Refused { .. } => ErrorCode::BackendRefused,
            BackendError::Query { .. } => ErrorCode::QueryFailed,
            BackendError::Internal { .. } => ErrorCode::Internal,
        };
        RequestError::new(code, e.to_string())
    }
}
