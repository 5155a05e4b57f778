//! The request pipeline: authenticate → analyze → authorize → execute.
//! One pipeline for every front (HTTP now, the PostgreSQL wire protocol
//! later): fronts only translate requests and errors.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use policies::{Action, PolicyError, RequestContext, Resource, TableSpec};

use crate::access::{Policies, RequestOracle};
use crate::backend::{Backend, BackendError, BackendQuery, OutputColumn, QueryLimits};
use crate::catalog::Catalog;
use crate::config::{Config, ConfigError, PrincipalConfig};
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
    #[error("pseudonym key: {0}")]
    Key(#[from] vault::VaultError),
    #[error(transparent)]
    Keys(#[from] crate::keyring::KeyringError),
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
    /// Swapped whole on reload: a request holds one snapshot throughout.
    policies: RwLock<Arc<Policies>>,
    /// What the policies are loaded against, kept for reloads.
    tables: Vec<TableSpec>,
    catalog: Catalog,
    backend: Backend,
    /// The pseudonym key, also needed to find a data subject's pseudonyms
    /// in the audit log.
    token_key: Arc<vault::TokenKey>,
    /// The keystore snapshot encrypted columns are decrypted with.
    sealing: crate::sealing::Sealing,
}

/// The Cedar context of a request arriving now from `source`. The anomaly
/// score is 0 until the detector exists.
pub fn request_context(purpose: &str, source: std::net::IpAddr) -> RequestContext<'_> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    RequestContext {
        purpose,
        hour: u8::try_from(seconds / 3600 % 24).unwrap_or(0),
        source_ip: source,
        anomaly_score: 0,
    }
}

/// Loads the policies of `dir` against the config's principals and the
/// database's tables. One loader for startup, reload and `policy validate`.
fn load_policies(
    config: &Config,
    dir: &std::path::Path,
    tables: &[TableSpec],
    catalog: &Catalog,
) -> Result<Policies, PolicyError> {
    let principals: Vec<_> = config.principals.iter().map(|p| p.spec.clone()).collect();
    Ok(Policies::load(dir, &principals, tables, catalog)?
        .with_pseudonym_domains(config.pseudonym_domains()))
}

/// Validates the policies of `dir` for `config` without starting a gateway.
pub async fn validate_policies(
    config: &Config,
    dir: &std::path::Path,
) -> Result<Reloaded, StartError> {
    let key = Arc::new(vault::TokenKey::from_bytes(&[0; 32]));
    let limits = crate::config::Limits {
        pool_size: 1,
        ..config.limits.clone()
    };
    let backend = Backend::open(&config.backend, &limits, key).await?;
    let catalog = backend.catalog().await?;
    let tables = catalog.classify(config)?;
    let mut catalog = catalog;
    catalog.set_encrypted(config)?;
    let policies = load_policies(config, dir, &tables, &catalog)?;
    Ok(Reloaded {
        policies: policies.engine().policy_ids().len(),
        warnings: policies.engine().warnings().to_vec(),
    })
}

/// The outcome of a policy reload.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reloaded {
    pub policies: usize,
    pub warnings: Vec<String>,
}

impl Gateway {
    /// Opens the backend, reads its catalog, applies the classification and
    /// loads the policies. Any problem stops startup: a gateway that cannot
    /// enforce its policies must not serve.
    pub async fn start(config: Config) -> Result<Gateway, StartError> {
        let master =
            crate::keyring::master_key(&config.data_dir, config.master_key_file.as_deref(), true)?;
        let mut keys = crate::keyring::open_with(&master, &config.data_dir, true)?;
        let token_key = keys.keystore.token_key();
        let backend =
            Backend::open(&config.backend, &config.limits, Arc::clone(&token_key)).await?;
        let mut catalog = backend.catalog().await?;
        let tables = catalog.classify(&config)?;
        catalog.set_subject_keys(&config);
        catalog.set_encrypted(&config)?;
        let encrypted: Vec<(String, String)> = catalog
            .tables()
            .flat_map(|t| {
                catalog
                    .encrypted(&t.name)
                    .iter()
                    .map(|e| (t.name.clone(), e.column.clone()))
            })
            .collect();
        crate::keyring::ensure_columns(
            &mut keys,
            encrypted.iter().map(|(t, c)| (t.as_str(), c.as_str())),
        )?;
        let sealing = crate::sealing::Sealing::new(
            crate::keyring::keystore_path(&config.data_dir),
            master,
            &keys.keystore,
        )
        .map_err(|e| {
            StartError::Keys(crate::keyring::KeyringError::Keystore {
                path: crate::keyring::keystore_path(&config.data_dir),
                source: vault::VaultError::Io {
                    path: crate::keyring::keystore_path(&config.data_dir),
                    source: e,
                },
            })
        })?;
        // The lock is for writers; serving only reads the file.
        drop(keys);
        let policies = load_policies(&config, &config.policies_dir, &tables, &catalog)?;
        for warning in policies.engine().warnings() {
            tracing::warn!("{warning}");
        }
        for table in catalog.tables() {
            let reserved = std::iter::once(&table.name)
                .chain(table.columns.iter().map(|c| &c.name))
                .filter(|name| sql::is_reserved_name(name))
                .collect::<Vec<_>>();
            if !reserved.is_empty() {
                tracing::warn!(
                    table = %table.name,
                    "names starting with `privet_` are reserved for the gateway's rewrite; queries naming {reserved:?} are refused (rename them to govern them)"
                );
            }
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
            policies: RwLock::new(Arc::new(policies)),
            tables,
            catalog,
            backend,
            token_key,
            sealing,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The principal an API key belongs to.
    pub fn authenticate(&self, api_key: &str) -> Option<Arc<PrincipalConfig>> {
        self.keys.get(&KeyHash::of(api_key)).cloned()
    }

    /// The current policy snapshot.
    pub fn policies(&self) -> Arc<Policies> {
        Arc::clone(&self.policies.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Reloads the policy directory. The new set is validated whole first;
    /// if it is invalid the old one keeps serving and the errors come back.
    pub fn reload_policies(&self) -> Result<Reloaded, PolicyError> {
        let policies = load_policies(
            &self.config,
            &self.config.policies_dir,
            &self.tables,
            &self.catalog,
        )?;
        let reloaded = Reloaded {
            policies: policies.engine().policy_ids().len(),
            warnings: policies.engine().warnings().to_vec(),
        };
        *self.policies.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policies);
        tracing::info!(policies = reloaded.policies, "policies reloaded");
        Ok(reloaded)
    }

    /// Whether `principal` may perform an administrative action.
    pub fn authorize_admin(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
    ) -> Result<(), RequestError> {
        self.authorize_on(
            principal,
            ctx,
            Action::Admin,
            Resource::Gateway,
            "administer the gateway",
        )
    }

    /// Whether `principal` may read the audit log (search, events, proofs,
    /// subject reports).
    pub fn authorize_audit_read(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
    ) -> Result<(), RequestError> {
        self.authorize_on(
            principal,
            ctx,
            Action::AuditRead,
            Resource::AuditLog,
            "read the audit log",
        )
    }

    /// One Cedar decision on a singleton resource; `doing` says what was
    /// refused.
    fn authorize_on(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        action: Action,
        resource: Resource<'_>,
        doing: &str,
    ) -> Result<(), RequestError> {
        let purpose = ctx.purpose;
        Self::check_purpose(principal, purpose)?;
        let policies = self.policies();
        let decision = policies
            .engine()
            .authorize(&principal.spec.name, action, resource, ctx)
            .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))?;
        if decision.allowed {
            return Ok(());
        }
        let mut err = RequestError::new(
            ErrorCode::PolicyDenied,
            format!(
                "{} may not {doing} for purpose `{purpose}`",
                principal.spec.name
            ),
        );
        err.policy_ids = decision.policy_ids;
        Err(err)
    }

    /// Maps a data subject (`customer:42`) to the pseudonym principals saw
    /// in its place (`customer:tok_...`), for subject reports.
    pub fn subject_pseudonymizer(&self) -> crate::audit_api::Pseudonymizer {
        let key = Arc::clone(&self.token_key);
        Arc::new(move |subject: &str| {
            let (domain, id) = subject.split_once(':')?;
            Some(format!("{domain}:{}", key.pseudonym(domain, id.as_bytes())))
        })
    }

    fn check_purpose(principal: &PrincipalConfig, purpose: &str) -> Result<(), RequestError> {
        if principal.purposes.contains(purpose) {
            return Ok(());
        }
        let allowed: Vec<&str> = principal.purposes.iter().map(String::as_str).collect();
        Err(RequestError::new(
            ErrorCode::PurposeDenied,
            format!(
                "{} may not declare the purpose `{purpose}`; its purposes are: {}",
                principal.spec.name,
                allowed.join(", ")
            ),
        ))
    }

    /// Analysis, authorization and rewrite, without executing; cached in
    /// the policy snapshot per principal, context and SQL text.
    fn analyze(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        sql_text: &str,
    ) -> Result<Arc<sql::AnalyzedQuery>, RequestError> {
        Self::check_purpose(principal, ctx.purpose)?;
        let policies = self.policies();
        let dialect = self.backend.dialect();
        Ok(policies.analysis(principal, ctx, dialect, sql_text, || {
            let oracle = RequestOracle {
                policies: &policies,
                principal,
                context: ctx,
                sealing: Some(&self.sealing),
            };
            sql::analyze(sql_text, &self.catalog, oracle, dialect)
        })?)
    }

    /// What the gateway would do with a query, and why, without running it.
    pub fn explain(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        sql_text: &str,
    ) -> crate::explain::Explanation {
        crate::explain::explain(self, principal, ctx, self.analyze(principal, ctx, sql_text))
    }

    /// A configured principal by name.
    pub fn principal(&self, name: &str) -> Option<Arc<PrincipalConfig>> {
        self.keys.values().find(|p| p.spec.name == name).cloned()
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// The keystore snapshot encrypted columns are decrypted with.
    pub fn sealing(&self) -> &crate::sealing::Sealing {
        &self.sealing
    }

    /// The backend, for describing it.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Runs one governed query for `principal` in context `ctx`.
    pub async fn query(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        sql_text: &str,
        record: &mut crate::audit::AccessRecord,
    ) -> Result<QueryResult, RequestError> {
        let result = self.run(principal, ctx, sql_text, record).await;
        if let Err(e) = &result {
            record.refused(e);
        }
        result
    }

    async fn run(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        sql_text: &str,
        record: &mut crate::audit::AccessRecord,
    ) -> Result<QueryResult, RequestError> {
        let analyzed = self.analyze(principal, ctx, sql_text)?;
        record.resolved(&analyzed.resolved, self.catalog.name_rule());
        record.fingerprint = analyzed.fingerprint(sql_text, self.backend.dialect(), &self.catalog);
        let limits = QueryLimits {
            max_rows: self.config.limits.max_rows,
            timeout: self.config.limits.statement_timeout,
        };
        let resolved = &analyzed.resolved;
        let output = self
            .backend
            .query(BackendQuery {
                sql: analyzed.sql.clone(),
                params: resolved.params.clone(),
                tables: resolved.backend_tables.clone(),
                pseudonym_domains: resolved.pseudonym_domains(),
                limits,
            })
            .await?;
        let shown = resolved.outputs.len();
        if output.columns.len() != shown + resolved.subjects.hidden {
            // The analysis and the database disagree on the result's shape:
            // refuse rather than label columns wrongly.
            return Err(RequestError::new(
                ErrorCode::Internal,
                format!(
                    "the query returned {} columns where analysis expected {}",
                    output.columns.len(),
                    shown + resolved.subjects.hidden
                ),
            ));
        }
        record.returned(&resolved.subjects, &output.rows);
        // The hidden subject-key columns were for the audit record alone.
        let mut rows = output.rows;
        if resolved.subjects.hidden > 0 {
            for row in &mut rows {
                row.truncate(shown);
            }
        }
        self.sealing
            .unseal_rows(&resolved.sealed_outputs(), &mut rows, &self.token_key)?;
        let transforms = resolved.transforms();
        Ok(QueryResult {
            columns: output
                .columns
                .into_iter()
                .zip(transforms)
                .map(|(column, transform)| ResultColumn { column, transform })
                .collect(),
            rows,
            truncated: output.truncated,
        })
    }
}
