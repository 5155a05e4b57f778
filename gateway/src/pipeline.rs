//! The request pipeline: authenticate → analyze → authorize → execute.
//! One pipeline for every front (HTTP now, the PostgreSQL wire protocol
//! later): fronts only translate requests and errors.

use std::collections::HashMap;
use std::sync::Arc;

use policies::PolicyError;

use crate::access::{Policies, RequestOracle};
use crate::backend::sqlite::QueryLimits;
use crate::backend::{BackendError, OutputColumn, SqliteBackend};
use crate::catalog::Catalog;
use crate::config::{BackendConfig, Config, ConfigError, PrincipalConfig};
use crate::error::{ErrorCode, RequestError};
use crate::keys::KeyHash;
use crate::masks::Dialect;
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
    #[error("pseudonym key: {0}")]
    Key(#[from] vault::VaultError),
}

/// The key of the pseudonym mask, in the data dir (mode 0600). The vault's
/// key hierarchy will wrap it; until then it is a plain key file.
pub const PSEUDONYM_KEY_FILE: &str = "pseudonym.key";

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
    policies: Policies,
    catalog: Catalog,
    backend: SqliteBackend,
}

impl Gateway {
    /// Opens the backend, reads its catalog, applies the classification and
    /// loads the policies. Any problem stops startup: a gateway that cannot
    /// enforce its policies must not serve.
    pub fn start(config: Config) -> Result<Gateway, StartError> {
        let token_key = Arc::new(vault::TokenKey::load_or_create(
            &config.data_dir.join(PSEUDONYM_KEY_FILE),
        )?);
        let backend = match &config.backend {
            BackendConfig::Sqlite { path } => SqliteBackend::open(
                path,
                config.limits.pool_size,
                config.limits.pool_wait,
                token_key,
            )?,
        };
        let catalog = backend.catalog()?;
        let tables = catalog.classify(&config)?;
        let principals: Vec<_> = config.principals.iter().map(|p| p.spec.clone()).collect();
        let policies = Policies::load(&config.policies_dir, &principals, &tables, &catalog)?
            .with_pseudonym_domains(config.pseudonym_domains());
        for warning in policies.engine().warnings() {
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
            policies = policies.engine().policy_ids().len(),
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
        let oracle = RequestOracle {
            policies: &self.policies,
            principal,
            purpose,
        };
        let analyzed = sql::analyze(sql_text, &self.catalog, oracle, Dialect::Sqlite)?;
        let limits = QueryLimits {
            max_rows: self.config.limits.max_rows,
            timeout: self.config.limits.statement_timeout,
        };
        let resolved = analyzed.resolved;
        let output = self
            .backend
            .query(
                analyzed.sql,
                resolved.params.clone(),
                resolved.backend_tables.clone(),
                limits,
            )
            .await?;
        if output.columns.len() != resolved.outputs.len() {
            // The analysis and the database disagree on the result's shape:
            // refuse rather than label columns wrongly.
            return Err(RequestError::new(
                ErrorCode::Internal,
                format!(
                    "the query returned {} columns where analysis expected {}",
                    output.columns.len(),
                    resolved.outputs.len()
                ),
            ));
        }
        let transforms = resolved.outputs.iter().map(|o| {
            let direct = o.lineage.direct.as_ref()?;
            let view = resolved.views.get(&direct.table)?;
            let column = view.columns.iter().find(|c| c.name == direct.column)?;
            column.mask.map(|m| m.transform_name())
        });
        Ok(QueryResult {
            columns: output
                .columns
                .into_iter()
                .zip(transforms)
                .map(|(column, transform)| ResultColumn { column, transform })
                .collect(),
            rows: output.rows,
            truncated: output.truncated,
        })
    }
}
