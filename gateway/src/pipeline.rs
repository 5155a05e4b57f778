//! The request pipeline: authenticate → analyze → authorize → execute.
//! One pipeline for every front (HTTP now, the PostgreSQL wire protocol
//! later): fronts only translate requests and errors.

use std::collections::HashMap;
use std::sync::Arc;

use policies::{Action, PolicyEngine, PolicyError, PolicySource, RequestContext, Resource};

use crate::backend::sqlite::QueryLimits;
use crate::backend::{BackendError, OutputColumn, SqliteBackend};
use crate::catalog::Catalog;
use crate::config::{BackendConfig, Config, ConfigError, PrincipalConfig};
use crate::error::{ErrorCode, RequestError};
use crate::keys::KeyHash;
use crate::sql;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// A result column with the transform applied to it (none yet: masks come
/// with column-level policies).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResultColumn {
    #[serde(flatten)]
    pub column: OutputColumn,
    pub transform: Option<String>,
}

/// The answer to a governed query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<ResultColumn>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub truncated: bool,
}

/// Everything a request needs, built once at startup.
pub struct Gateway {
    config: Config,
    keys: HashMap<KeyHash, Arc<PrincipalConfig>>,
    policies: PolicyEngine,
    catalog: Catalog,
    backend: SqliteBackend,
}

impl Gateway {
    /// Opens the backend, reads its catalog, applies the classification and
    /// loads the policies. Any problem stops startup: a gateway that cannot
    /// enforce its policies must not serve.
    pub fn start(config: Config) -> Result<Gateway, StartError> {
        let backend = match &config.backend {
            BackendConfig::Sqlite { path } => {
                SqliteBackend::open(path, config.limits.pool_size, config.limits.pool_wait)?
            }
        };
        let catalog = backend.catalog()?;
        let tables = catalog.classify(&config)?;
        let principals: Vec<_> = config.principals.iter().map(|p| p.spec.clone()).collect();
        let sources = PolicySource::read_dir(&config.policies_dir)?;
        let policies = PolicyEngine::load(&sources, &principals, &tables)?;
        for warning in policies.warnings() {
            tracing::warn!("{warning}");
        }
        let keys = config
            .principals
            .iter()
            .map(|p| (p.api_key_sha256, Arc::new(p.clone())))
            .collect();
        tracing::info!(
            backend = %backend.describe(),
            tables = catalog.tables().count(),
            principals = config.principals.len(),
            policies = policies.policy_ids().len(),
            "gateway ready"
        );
        Ok(Gateway {
            config,
            keys,
            policies,
            catalog,
            backend,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The principal an API key belongs to.
    pub fn authenticate(&self, api_key: &str) -> Option<Arc<PrincipalConfig>> {
        self.keys.get(&KeyHash::of(api_key)).cloned()
    }

    /// Runs one governed query for `principal` and `purpose`.
    pub async fn query(
        &self,
        principal: &PrincipalConfig,
        purpose: &str,
        sql_text: &str,
    ) -> Result<QueryResult, RequestError> {
        let name = &principal.spec.name;
        if !principal.purposes.contains(purpose) {
            let allowed: Vec<&str> = principal.purposes.iter().map(String::as_str).collect();
            return Err(RequestError::new(
                ErrorCode::PurposeDenied,
                format!(
                    "{name} may not declare the purpose `{purpose}`; its purposes are: {}",
                    allowed.join(", ")
                ),
            ));
        }
        let analyzed = sql::analyze(sql_text, &self.catalog)?;
        for table in &analyzed.tables {
            let decision = self
                .policies
                .authorize(
                    name,
                    Action::Read,
                    Resource::Table(table),
                    RequestContext { purpose },
                )
                .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))?;
            if !decision.allowed {
                let why = if !decision.errors.is_empty() {
                    format!(
                        "policy evaluation failed ({}), so access is refused",
                        decision.errors.join("; ")
                    )
                } else if decision.policy_ids.is_empty() {
                    "no policy permits it (deny by default)".to_string()
                } else {
                    format!("forbidden by policy {}", decision.policy_ids.join(", "))
                };
                return Err(RequestError {
                    code: ErrorCode::PolicyDenied,
                    message: format!(
                        "{name} may not read table {table} for purpose `{purpose}`: {why}"
                    ),
                    policy_ids: decision.policy_ids,
                    table: Some(table.clone()),
                });
            }
        }
        let limits = QueryLimits {
            max_rows: self.config.limits.max_rows,
            timeout: self.config.limits.statement_timeout,
        };
        let output = self
            .backend
            .query(analyzed.sql, analyzed.tables, limits)
            .await?;
        Ok(QueryResult {
            columns: output
                .columns
                .into_iter()
                .map(|column| ResultColumn {
                    column,
                    transform: None,
                })
                .collect(),
            rows: output.rows,
            truncated: output.truncated,
        })
    }
}
