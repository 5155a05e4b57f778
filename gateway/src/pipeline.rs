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
    #[error("anomaly baselines: {0} (move the file aside to start with fresh baselines)")]
    Anomaly(#[from] anomaly::StateError),
}

/// A result column with the transform applied to it (none yet: masks come
/// with column-level policies).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ResultColumn {
    #[serde(flatten)]
    pub column: OutputColumn,
    pub transform: Option<String>,
    /// For a decrypted column: how many of its values belong to a
    /// crypto-shredded subject and read as [`crate::sealing::SHREDDED`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shredded: Option<u64>,
}

/// A result column as [`Gateway::describe`] knows it before running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedColumn {
    pub name: String,
    /// The type the backend gives the column before running: PostgreSQL
    /// types every column, SQLite only direct column references (their
    /// declared type); `None` when it does not tell.
    pub type_name: Option<String>,
    /// The mask or decryption applied (see [`ResultColumn::transform`]).
    pub transform: Option<String>,
}

/// The answer to a governed query.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<ResultColumn>,
    pub rows: Vec<Vec<serde_json::Value>>,
    pub truncated: bool,
    /// For INSERT and UPDATE: the rows written.
    pub rows_affected: Option<u64>,
}

/// The rows of a governed read, a batch at a time (see
/// [`Gateway::query_stream`]).
pub struct GovernedStream {
    /// The result's columns and their transforms (`shredded` is not known
    /// until the end: see [`GovernedStream::shredded`]).
    pub columns: Vec<ResultColumn>,
    shredded: Vec<u64>,
    analyzed: Arc<sql::AnalyzedQuery>,
    rows: crate::backend::RowStream,
}

impl GovernedStream {
    /// The next batch, rows handled as [`Gateway::query`] handles them and
    /// added to `record`; `None` at the end. An error ends the stream and is
    /// recorded as the request's refusal.
    pub async fn next_batch(
        &mut self,
        gateway: &Gateway,
        record: &mut crate::audit::AccessRecord,
    ) -> Option<Result<Vec<Vec<serde_json::Value>>, RequestError>> {
        let batch = match self.rows.next_batch().await? {
            Ok(rows) => rows,
            Err(e) => {
                let e = RequestError::from(e);
                record.refused(&e);
                return Some(Err(e));
            }
        };
        let mut rows = batch;
        match gateway.finish_rows(&self.analyzed, &mut rows, record) {
            Ok(shredded) => {
                for (total, n) in self.shredded.iter_mut().zip(shredded) {
                    *total += n;
                }
                Some(Ok(rows))
            }
            Err(e) => {
                record.refused(&e);
                Some(Err(e))
            }
        }
    }

    /// More rows existed than the stream's `max_rows` (known at the end).
    pub fn truncated(&self) -> bool {
        self.rows.truncated()
    }

    /// Per column, how many values so far read as crypto-shredded.
    pub fn shredded(&self) -> &[u64] {
        &self.shredded
    }
}

/// The privacy budget ledger, in the data dir.
pub const PRIVACY_LEDGER: &str = "privacy-budget.tsv";

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
    /// One charge of the privacy budget ledger at a time (read, check,
    /// write), so concurrent exports cannot both spend the last ε.
    budget: std::sync::Mutex<()>,
    /// The anomaly detector and its baselines.
    detection: crate::detect::Detection,
}

/// The Cedar context of a request arriving now from `source`, with no
/// anomaly score (tools, offline runs; requests use [`Gateway::context`]).
pub fn request_context(purpose: &str, source: std::net::IpAddr) -> RequestContext<'_> {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    RequestContext {
        purpose,
        hour: u8::try_from(seconds / 3600 % 24).unwrap_or(0),
        source_ip: source,
        anomaly_score: 0,
        dataset: None,
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
        let detection = crate::detect::Detection::open(&config, &token_key)?;
        Ok(Gateway {
            config,
            keys,
            policies: RwLock::new(Arc::new(policies)),
            tables,
            catalog,
            backend,
            token_key,
            sealing,
            budget: std::sync::Mutex::new(()),
            detection,
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

    /// Whether `principal` may export `dataset` (Cedar `export` on
    /// `Privet::Dataset::"NAME"`).
    pub fn authorize_export(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        dataset: &str,
    ) -> Result<(), RequestError> {
        self.authorize_on(
            principal,
            ctx,
            Action::Export,
            Resource::Dataset(dataset),
            &format!("export the dataset {dataset}"),
        )
    }

    /// The anomaly detector.
    pub fn detection(&self) -> &crate::detect::Detection {
        &self.detection
    }

    /// The Cedar context of `principal`'s request arriving now from
    /// `source`, with its recent anomaly risk as `context.anomaly_score`.
    pub fn context<'a>(
        &self,
        principal: &PrincipalConfig,
        purpose: &'a str,
        source: std::net::IpAddr,
    ) -> RequestContext<'a> {
        let mut ctx = request_context(purpose, source);
        let now_ms = u64::try_from(crate::audit::now_us() / 1000).unwrap_or(0);
        ctx.anomaly_score = self.detection.risk_percent(&principal.spec.name, now_ms);
        ctx
    }

    /// Charges `epsilon_micro` of ε to `principal`'s privacy budget (its
    /// `privacy_budget`), recorded in `DATA_DIR/privacy-budget.tsv` before
    /// this returns; refused when it would overspend or none is configured.
    pub fn charge_privacy_budget(
        &self,
        principal: &PrincipalConfig,
        epsilon_micro: u64,
    ) -> Result<u64, RequestError> {
        let name = &principal.spec.name;
        let Some(limit) = principal.privacy_budget_micro else {
            return Err(RequestError::new(
                ErrorCode::PrivacyBudgetExhausted,
                format!(
                    "{name} has no privacy budget for differentially private aggregates; set `privacy_budget` in its [[principals]] entry"
                ),
            ));
        };
        let _one_at_a_time = self.budget.lock().unwrap_or_else(|p| p.into_inner());
        let path = self.config.data_dir.join(PRIVACY_LEDGER);
        let mut ledger = anonymizer::dp::BudgetLedger::open(&path)
            .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))?;
        ledger
            .charge(name, limit, epsilon_micro)
            .map_err(|e| match e {
                anonymizer::dp::DpError::BudgetExceeded { .. } => {
                    RequestError::new(ErrorCode::PrivacyBudgetExhausted, e.to_string())
                }
                other => RequestError::new(ErrorCode::Internal, other.to_string()),
            })
    }

    /// The pseudonym key, from which exports derive their per-dataset keys.
    pub fn token_key(&self) -> &vault::TokenKey {
        &self.token_key
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

    /// The result columns a read would have, without running it: analysis,
    /// authorization and rewrite as for [`Gateway::query`], then the
    /// rewritten statement prepared (not executed) on the backend, which
    /// names and types its columns. Writes have none. Refusals are the
    /// query's own; nothing is audited here (the caller does).
    pub async fn describe(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        sql_text: &str,
    ) -> Result<Vec<DescribedColumn>, RequestError> {
        if crate::write::is_write(sql_text) {
            return Ok(Vec::new());
        }
        let mut record = crate::audit::AccessRecord::default();
        // max_rows 0: prepare only (see `QueryLimits::max_rows`).
        let (analyzed, query) = self.prepare(principal, ctx, sql_text, &mut record, 0)?;
        let output = self.backend.query(query).await?;
        Self::check_shape(&analyzed, &output.columns)?;
        Ok(output
            .columns
            .into_iter()
            .zip(analyzed.resolved.transforms())
            .map(|(column, transform)| DescribedColumn {
                name: column.name,
                type_name: column.type_name,
                transform,
            })
            .collect())
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
        self.query_up_to(
            principal,
            ctx,
            sql_text,
            record,
            self.config.limits.max_rows,
        )
        .await
    }

    /// [`Gateway::query`] returning at most `max_rows` rows (exports read
    /// more than a request may).
    pub async fn query_up_to(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        sql_text: &str,
        record: &mut crate::audit::AccessRecord,
        max_rows: usize,
    ) -> Result<QueryResult, RequestError> {
        let result = if crate::write::is_write(sql_text) {
            self.run_write(principal, ctx, sql_text, record).await
        } else {
            self.run(principal, ctx, sql_text, record, max_rows).await
        };
        if let Err(e) = &result {
            record.refused(e);
        }
        result
    }

    /// An INSERT or UPDATE (see [`crate::write`]): parsed, authorized per
    /// table and column, encrypted columns encrypted (under the row's data
    /// subject's key when the table names one) with their blind indexes
    /// kept, then run as a statement built here with every value bound.
    async fn run_write(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        sql_text: &str,
        record: &mut crate::audit::AccessRecord,
    ) -> Result<QueryResult, RequestError> {
        use crate::write::{placeholder, quote, WriteKind};
        Self::check_purpose(principal, ctx.purpose)?;
        let dialect = self.backend.dialect();
        let parsed = crate::write::parse(sql_text, &self.catalog, dialect)?;
        record.statement = Some(parsed.kind.as_str().into());
        record.names = sql::fingerprint::Names::Resolved;
        let policy_ids = self.policies().authorize_write(
            principal,
            ctx,
            &parsed.table,
            parsed.kind.action(),
            &parsed.columns,
        )?;
        record.policies.extend(policy_ids.iter().cloned());
        record.tables.push(audit::TableAccess {
            table: parsed.table.clone(),
            columns: parsed
                .columns
                .iter()
                .map(|c| audit::ColumnAccess {
                    column: c.clone(),
                    decision: audit::Decision::Written,
                    mask: None,
                })
                .collect(),
            row_filter: false,
        });
        let table = self.catalog.table(&parsed.table).ok_or_else(|| {
            RequestError::new(
                ErrorCode::UnknownTable,
                format!("no table {}", parsed.table),
            )
        })?;
        let rule = self.catalog.name_rule();
        let pk = table
            .columns
            .iter()
            .find(|c| c.primary_key)
            .map(|c| c.name.clone());
        let subject_key = self.catalog.subject_keys(&parsed.table).first().cloned();
        // Blind-index columns written alongside their encrypted column.
        let mut columns = parsed.columns.clone();
        for column in &parsed.columns {
            if let Some(b) = self
                .catalog
                .encrypted_column(&parsed.table, column)
                .and_then(|e| e.blind_index.clone())
            {
                columns.push(b);
            }
        }
        let mut rows = Vec::with_capacity(parsed.rows.len());
        let mut subjects = std::collections::BTreeSet::new();
        for row in &parsed.rows {
            let value_of = |name: &str| -> Option<&str> {
                if let Some((key, value)) = &parsed.key {
                    if rule.eq(key, name) {
                        return Some(value.as_str());
                    }
                }
                parsed
                    .columns
                    .iter()
                    .position(|c| rule.eq(c, name))
                    .and_then(|i| row[i].as_deref())
            };
            let row_key = pk.as_deref().and_then(value_of);
            let subject = subject_key
                .as_ref()
                .and_then(|k| value_of(&k.column).map(|v| format!("{}:{v}", k.domain)));
            if let Some(s) = &subject {
                subjects.insert(s.clone());
            }
            let mut out = row.clone();
            let mut blind = Vec::new();
            for (i, column) in parsed.columns.iter().enumerate() {
                let Some(sealed) = self.catalog.encrypted_column(&parsed.table, column) else {
                    continue;
                };
                let Some(row_key) = row_key else {
                    return Err(RequestError::new(
                        ErrorCode::UnsupportedStatement,
                        format!(
                            "writing the encrypted column {}.{column} needs the row's primary key {} among the values: the ciphertext is bound to it",
                            parsed.table,
                            pk.as_deref().unwrap_or("(none)")
                        ),
                    ));
                };
                let field = vault::Field {
                    table: &parsed.table,
                    column,
                    row_key,
                };
                if sealed.blind_index.is_some() {
                    blind.push(match &row[i] {
                        Some(plain) => {
                            Some(self.sealing.blind_index(&parsed.table, column, plain)?)
                        }
                        None => None,
                    });
                }
                if let Some(plain) = &row[i] {
                    out[i] = Some(self.sealing.encrypt(&field, subject.as_deref(), plain)?);
                }
            }
            out.extend(blind);
            rows.push(out);
        }
        let decl = |name: &str| {
            table
                .columns
                .iter()
                .find(|c| rule.eq(&c.name, name))
                .map(|c| c.decl_type.clone())
                .unwrap_or_default()
        };
        let mut params = Vec::new();
        let mut value_sql =
            |value: &Option<String>, column: &str| -> Result<String, RequestError> {
                Ok(match value {
                    None => "NULL".to_owned(),
                    Some(v) => {
                        params.push(v.clone());
                        placeholder(dialect, params.len(), &decl(column))?
                    }
                })
            };
        let target = format!("{}.{}", quote(self.catalog.schema()), quote(&parsed.table));
        let sql = match parsed.kind {
            WriteKind::Insert => {
                let mut values = Vec::new();
                for row in &rows {
                    let cells = row
                        .iter()
                        .zip(&columns)
                        .map(|(v, c)| value_sql(v, c))
                        .collect::<Result<Vec<_>, _>>()?;
                    values.push(format!("({})", cells.join(", ")));
                }
                format!(
                    "INSERT INTO {target} ({}) VALUES {}",
                    columns
                        .iter()
                        .map(|c| quote(c))
                        .collect::<Vec<_>>()
                        .join(", "),
                    values.join(", ")
                )
            }
            WriteKind::Update => {
                let row = rows.first().cloned().unwrap_or_default();
                let sets = row
                    .iter()
                    .zip(&columns)
                    .map(|(v, c)| Ok(format!("{} = {}", quote(c), value_sql(v, c)?)))
                    .collect::<Result<Vec<_>, RequestError>>()?;
                let (key, value) = parsed.key.clone().unwrap_or_default();
                let key_sql = value_sql(&Some(value), &key)?;
                format!(
                    "UPDATE {target} SET {} WHERE {} = {key_sql}",
                    sets.join(", "),
                    quote(&key)
                )
            }
        };
        let affected = self
            .backend
            .write(crate::backend::BackendWrite {
                sql,
                params,
                table: parsed.table.clone(),
                timeout: self.config.limits.statement_timeout,
            })
            .await?;
        record.rows = affected;
        record.subjects.ids = subjects.into_iter().collect();
        Ok(QueryResult {
            columns: Vec::new(),
            rows: Vec::new(),
            truncated: false,
            rows_affected: Some(affected),
        })
    }

    /// Analysis through to the statement for the backend (shared by
    /// [`Gateway::query`] and [`Gateway::query_stream`]).
    fn prepare(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        sql_text: &str,
        record: &mut crate::audit::AccessRecord,
        max_rows: usize,
    ) -> Result<(Arc<sql::AnalyzedQuery>, BackendQuery), RequestError> {
        let analyzed = self.analyze(principal, ctx, sql_text)?;
        record.resolved(&analyzed.resolved, self.catalog.name_rule());
        record.fingerprint = analyzed.fingerprint(sql_text, self.backend.dialect(), &self.catalog);
        let resolved = &analyzed.resolved;
        let query = BackendQuery {
            sql: analyzed.sql.clone(),
            params: resolved.params.clone(),
            tables: resolved.backend_tables.clone(),
            pseudonym_domains: resolved.pseudonym_domains(),
            limits: QueryLimits {
                max_rows,
                timeout: self.config.limits.statement_timeout,
            },
        };
        Ok((analyzed, query))
    }

    /// Refuses a result whose shape the analysis did not predict.
    fn check_shape(
        analyzed: &sql::AnalyzedQuery,
        columns: &[OutputColumn],
    ) -> Result<(), RequestError> {
        let expected = analyzed.resolved.outputs.len() + analyzed.resolved.subjects.hidden;
        if columns.len() != expected {
            // The analysis and the database disagree on the result's shape:
            // refuse rather than label columns wrongly.
            return Err(RequestError::new(
                ErrorCode::Internal,
                format!(
                    "the query returned {} columns where analysis expected {expected}",
                    columns.len(),
                ),
            ));
        }
        Ok(())
    }

    /// What the gateway does to rows before anyone sees them: adds their
    /// data subjects to the record (started by `AccessRecord::returned`),
    /// removes the hidden subject-key columns, unseals decrypted columns.
    /// Returns per column how many values were shredded.
    fn finish_rows(
        &self,
        analyzed: &sql::AnalyzedQuery,
        rows: &mut [Vec<serde_json::Value>],
        record: &mut crate::audit::AccessRecord,
    ) -> Result<Vec<u64>, RequestError> {
        let resolved = &analyzed.resolved;
        record.returned_more(&resolved.subjects, rows);
        // The hidden subject-key columns were for the audit record alone.
        let shown = resolved.outputs.len();
        if resolved.subjects.hidden > 0 {
            for row in rows.iter_mut() {
                row.truncate(shown);
            }
        }
        self.sealing
            .unseal_rows(&resolved.sealed_outputs(), rows, &self.token_key)
    }

    fn result_columns(
        analyzed: &sql::AnalyzedQuery,
        columns: Vec<OutputColumn>,
        shredded: &[u64],
    ) -> Vec<ResultColumn> {
        columns
            .into_iter()
            .zip(analyzed.resolved.transforms())
            .enumerate()
            .map(|(i, (column, transform))| ResultColumn {
                column,
                transform,
                shredded: shredded.get(i).copied().filter(|n| *n > 0),
            })
            .collect()
    }

    async fn run(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        sql_text: &str,
        record: &mut crate::audit::AccessRecord,
        max_rows: usize,
    ) -> Result<QueryResult, RequestError> {
        let (analyzed, query) = self.prepare(principal, ctx, sql_text, record, max_rows)?;
        let output = self.backend.query(query).await?;
        Self::check_shape(&analyzed, &output.columns)?;
        let mut rows = output.rows;
        record.returned(&analyzed.resolved.subjects, &[]);
        let shredded = self.finish_rows(&analyzed, &mut rows, record)?;
        Ok(QueryResult {
            columns: Self::result_columns(&analyzed, output.columns, &shredded),
            rows,
            truncated: output.truncated,
            rows_affected: None,
        })
    }

    /// A governed read whose rows arrive in batches (exports): the same
    /// analysis, authorization and rewrite as [`Gateway::query`], and every
    /// batch passes through the same row handling before the caller sees
    /// it. Reads only; at most `max_rows` rows.
    pub async fn query_stream(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        sql_text: &str,
        record: &mut crate::audit::AccessRecord,
        max_rows: usize,
    ) -> Result<GovernedStream, RequestError> {
        let started = async {
            if crate::write::is_write(sql_text) {
                return Err(RequestError::new(
                    ErrorCode::BadRequest,
                    "a streamed read takes a SELECT, not a write",
                ));
            }
            let (analyzed, query) = self.prepare(principal, ctx, sql_text, record, max_rows)?;
            let stream = self.backend.query_stream(query).await?;
            Self::check_shape(&analyzed, &stream.columns)?;
            Ok((analyzed, stream))
        }
        .await;
        match started {
            Ok((analyzed, rows)) => {
                record.returned(&analyzed.resolved.subjects, &[]);
                let shown = analyzed.resolved.outputs.len();
                Ok(GovernedStream {
                    columns: Self::result_columns(&analyzed, rows.columns[..shown].to_vec(), &[]),
                    shredded: vec![0; shown],
                    analyzed,
                    rows,
                })
            }
            Err(e) => {
                record.refused(&e);
                Err(e)
            }
        }
    }
}
