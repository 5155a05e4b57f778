//! From Cedar decisions to policy views: what a principal, for a purpose,
//! may see of each table (columns plain, masked or denied; which it may
//! filter on; which rows). Decisions are cached per (principal, purpose,
//! table) inside an immutable snapshot, so a policy reload replaces the
//! cache with the policies.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use policies::{
    Action, Decision, PolicyEngine, PolicyError, PolicySource, PrincipalSpec, RequestContext,
    Resource, TableSpec,
};
use sqlparser::ast::{Expr, Query, SelectItem, SetExpr, TableFactor};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use crate::cache::BoundedCache;
use crate::catalog::{Catalog, TableInfo};
use crate::config::PrincipalConfig;
use crate::masks::{Dialect, Mask};
use crate::sql::{
    AccessOracle, AnalysisError, AnalyzedQuery, DeniedColumn, RowFilter, TableView, ViewColumn,
};

/// When several permitting policies name different masks, the most
/// restrictive wins: earlier in this list is more restrictive.
const MASK_STRICTNESS: [Mask; 8] = [
    Mask::Null,
    Mask::Redact,
    Mask::Pseudonym,
    Mask::CardLast4,
    Mask::PhoneLast4,
    Mask::EmailPartial,
    Mask::Zip3,
    Mask::YearOnly,
];

/// The principal and the whole Cedar context: what every cached decision
/// and analysis depends on besides its own subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ContextKey {
    principal: String,
    purpose: String,
    hour: u8,
    source_ip: std::net::IpAddr,
    anomaly_score: u8,
    dataset: Option<String>,
}

impl ContextKey {
    fn of(principal: &PrincipalConfig, ctx: RequestContext<'_>) -> ContextKey {
        ContextKey {
            principal: principal.spec.name.clone(),
            purpose: ctx.purpose.to_string(),
            hour: ctx.hour,
            source_ip: ctx.source_ip,
            anomaly_score: ctx.anomaly_score,
            dataset: ctx.dataset.map(str::to_owned),
        }
    }
}

/// Decisions cached at most; the cache is emptied when full (source
/// addresses and hours make the key space open-ended).
const CACHE_ENTRIES: usize = 4096;

/// Analyses cached at most (emptied when full), and the longest SQL text
/// cached: services repeat their statements, ad-hoc queries need no cache.
const ANALYSIS_ENTRIES: usize = 4096;
const ANALYSIS_MAX_SQL: usize = 8 * 1024;

/// How a column is stored, when not in plaintext.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sealed {
    /// Vault ciphertext: shown decrypted (and maybe masked) or not at all.
    Encrypted,
    /// The blind index of the named column: compared by the gateway for
    /// equality on that column, never shown.
    BlindIndex(String),
}

/// A loaded, validated policy set with its parsed annotations.
pub struct Policies {
    engine: PolicyEngine,
    masks: HashMap<String, Mask>,
    row_filters: HashMap<String, Expr>,
    domains: HashMap<(String, String), String>,
    /// Encrypted columns, and blind-index columns with the column they
    /// index, by (table, column) as the catalog names them.
    sealed: HashMap<(String, String), Sealed>,
    /// Views by context and table.
    cache: BoundedCache<(ContextKey, String), Arc<TableView>>,
    /// Whole analyses (resolution, decisions, rewrite) of statements seen
    /// before, by context, dialect and exact text: valid for this snapshot
    /// only, like the decisions they use.
    analyses: BoundedCache<(ContextKey, Dialect, String), Arc<AnalyzedQuery>>,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// A policy annotation that does not make sense.
fn annotation_error(engine: &PolicyEngine, id: &str, message: String) -> PolicyError {
    PolicyError::Validation(vec![policies::Located {
        origin: engine.origin(id).map(Path::to_path_buf).unwrap_or_default(),
        line: 0,
        column: 0,
        message: format!("policy {id}: {message}"),
    }])
}

impl Policies {
    /// Loads and validates the policies of `dir`: Cedar strictly against the
    /// schema, then every `@mask` names a known mask and every `@row_filter`
    /// parses as an SQL predicate of the supported shape.
    pub fn load(
        dir: &Path,
        principals: &[PrincipalSpec],
        tables: &[TableSpec],
        catalog: &Catalog,
    ) -> Result<Policies, PolicyError> {
        let sources = PolicySource::read_dir(dir)?;
        let engine = PolicyEngine::load(&sources, principals, tables)?;
        let mut masks = HashMap::new();
        for (id, name) in engine.annotated("mask") {
            let mask: Mask = name
                .parse()
                .map_err(|e| annotation_error(&engine, id, format!("@mask: {e}")))?;
            masks.insert(id.to_string(), mask);
        }
        let mut row_filters = HashMap::new();
        for (id, text) in engine.annotated("row_filter") {
            let expr = Parser::new(&SQLiteDialect {})
                .try_with_sql(text)
                .and_then(|mut p| p.parse_expr())
                .map_err(|e| {
                    annotation_error(&engine, id, format!("@row_filter does not parse: {e}"))
                })?;
            check_filter_shape(&expr, catalog)
                .map_err(|m| annotation_error(&engine, id, format!("@row_filter: {m}")))?;
            row_filters.insert(id.to_string(), expr);
        }
        let mut sealed = HashMap::new();
        for table in catalog.tables() {
            for e in catalog.encrypted(&table.name) {
                sealed.insert((table.name.clone(), e.column.clone()), Sealed::Encrypted);
                if let Some(b) = &e.blind_index {
                    sealed.insert(
                        (table.name.clone(), b.clone()),
                        Sealed::BlindIndex(e.column.clone()),
                    );
                }
            }
        }
        Ok(Policies {
            engine,
            masks,
            row_filters,
            sealed,
            domains: HashMap::new(),
            cache: BoundedCache::new(CACHE_ENTRIES),
            analyses: BoundedCache::new(ANALYSIS_ENTRIES),
        })
    }

    /// Pseudonym domains by (table, column), lower case; unlisted columns
    /// use "table.column".
    pub fn with_pseudonym_domains(
        mut self,
        domains: HashMap<(String, String), String>,
    ) -> Policies {
        self.domains = domains;
        self
    }

    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }

    /// The policy view of `table` for `principal` in context `ctx`.
    pub fn view(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        table: &TableInfo,
    ) -> Result<Arc<TableView>, AnalysisError> {
        self.cache
            .get_or_try_insert((ContextKey::of(principal, ctx), table.name.clone()), || {
                self.decide(principal, ctx, table).map(Arc::new)
            })
    }

    /// The analysis of `sql` for `principal` in context `ctx`: from the
    /// cache when this snapshot analyzed the same text in the same context
    /// before, else computed by `analyze` (and cached when it succeeds).
    /// Everything an analysis depends on is in the key or fixed for the
    /// snapshot's lifetime (catalog, principal attributes).
    pub fn analysis(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        dialect: Dialect,
        sql: &str,
        analyze: impl FnOnce() -> Result<AnalyzedQuery, AnalysisError>,
    ) -> Result<Arc<AnalyzedQuery>, AnalysisError> {
        if sql.len() > ANALYSIS_MAX_SQL {
            return analyze().map(Arc::new);
        }
        self.analyses.get_or_try_insert(
            (ContextKey::of(principal, ctx), dialect, sql.to_string()),
            || analyze().map(Arc::new),
        )
    }

    /// Authorizes writing `columns` of `table` (`insert` or `update`): the
    /// table-level action and each column's must be permitted. Row filters
    /// do not apply to writes, so a write permitted only by a policy with a
    /// `@row_filter` is refused rather than let through unfiltered. Returns
    /// the permitting policies.
    pub fn authorize_write(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        table: &str,
        action: Action,
        columns: &[String],
    ) -> Result<Vec<String>, AnalysisError> {
        let who = principal.spec.name.as_str();
        let purpose = ctx.purpose;
        let denied = |column: Option<&str>, decision: &Decision| AnalysisError::Denied {
            table: table.to_string(),
            column: column.map(str::to_owned),
            message: format!(
                "{who} may not {action} {} for purpose `{purpose}`: {}",
                match column {
                    Some(c) => format!("column {table}.{c}"),
                    None => format!("table {table}"),
                },
                why(decision)
            ),
            policy_ids: decision.policy_ids.clone(),
        };
        let decision = self.authorize(who, action, Resource::Table(table), ctx)?;
        if !decision.allowed {
            return Err(denied(None, &decision));
        }
        if let Some(filtered) = decision
            .policy_ids
            .iter()
            .find(|id| self.row_filters.contains_key(*id))
        {
            return Err(AnalysisError::Denied {
                table: table.to_string(),
                column: None,
                message: format!(
                    "policy {filtered} permits {action} on {table} with a row filter, which writes cannot honour; refused"
                ),
                policy_ids: vec![filtered.clone()],
            });
        }
        let mut policy_ids = decision.policy_ids;
        for column in columns {
            let d = self.authorize(who, action, Resource::Column { table, column }, ctx)?;
            if !d.allowed {
                return Err(denied(Some(column), &d));
            }
            policy_ids.extend(d.policy_ids);
        }
        policy_ids.sort();
        policy_ids.dedup();
        Ok(policy_ids)
    }

    fn authorize(
        &self,
        who: &str,
        action: Action,
        resource: Resource<'_>,
        ctx: RequestContext<'_>,
    ) -> Result<Decision, AnalysisError> {
        self.engine
            .authorize(who, action, resource, ctx)
            .map_err(|e| AnalysisError::Denied {
                table: String::new(),
                column: None,
                message: format!("policy evaluation failed, so access is refused: {e}"),
                policy_ids: Vec::new(),
            })
    }

    fn decide(
        &self,
        principal: &PrincipalConfig,
        ctx: RequestContext<'_>,
        table: &TableInfo,
    ) -> Result<TableView, AnalysisError> {
        let who = principal.spec.name.as_str();
        let purpose = ctx.purpose;
        let t = table.name.as_str();
        let decision = self.authorize(who, Action::Read, Resource::Table(t), ctx)?;
        if !decision.allowed {
            return Err(AnalysisError::Denied {
                table: t.to_string(),
                column: None,
                message: format!(
                    "{who} may not read table {t} for purpose `{purpose}`: {}",
                    why(&decision)
                ),
                policy_ids: decision.policy_ids,
            });
        }
        let mut columns = Vec::new();
        let mut denied = Vec::new();
        for column in &table.columns {
            let resource = Resource::Column {
                table: t,
                column: &column.name,
            };
            let sealed = self.sealed.get(&(t.to_string(), column.name.clone()));
            if let Some(Sealed::BlindIndex(of)) = sealed {
                denied.push(DeniedColumn {
                    name: column.name.clone(),
                    reason: format!(
                        "it is the blind index of the encrypted column {t}.{of}: the gateway compares it for `{of} = ...` and never returns it"
                    ),
                    policy_ids: Vec::new(),
                });
                continue;
            }
            let encrypted = sealed == Some(&Sealed::Encrypted);
            let read = self.authorize(who, Action::Read, resource, ctx)?;
            let mut undecryptable = false;
            if read.allowed {
                let decrypt = if encrypted {
                    Some(self.authorize(who, Action::Decrypt, resource, ctx)?)
                } else {
                    None
                };
                match decrypt {
                    None => {
                        columns.push(ViewColumn {
                            name: column.name.clone(),
                            mask: None,
                            may_filter: true,
                            policy_ids: read.policy_ids,
                            domain: String::new(),
                            encrypted: false,
                        });
                        continue;
                    }
                    Some(d) if d.allowed => {
                        let mut policy_ids = read.policy_ids.clone();
                        policy_ids.extend(d.policy_ids);
                        columns.push(ViewColumn {
                            name: column.name.clone(),
                            mask: None,
                            may_filter: true,
                            policy_ids,
                            domain: String::new(),
                            encrypted: true,
                        });
                        continue;
                    }
                    // Readable but not decryptable: masked if a policy
                    // says how, else denied below.
                    Some(_) => undecryptable = true,
                }
            }
            let masked = self.authorize(who, Action::ReadMasked, resource, ctx)?;
            if masked.allowed {
                // A read_masked permit without @mask shows nothing: fail closed.
                let mask = masked
                    .policy_ids
                    .iter()
                    .filter_map(|id| self.masks.get(id))
                    .min_by_key(|m| MASK_STRICTNESS.iter().position(|s| s == *m))
                    .copied()
                    .unwrap_or(Mask::Redact);
                let filter = self.authorize(who, Action::Filter, resource, ctx)?;
                let domain = self
                    .domains
                    .get(&(t.to_string(), column.name.to_ascii_lowercase()))
                    .cloned()
                    .unwrap_or_else(|| format!("{t}.{}", column.name));
                columns.push(ViewColumn {
                    name: column.name.clone(),
                    mask: Some(mask),
                    may_filter: filter.allowed,
                    policy_ids: masked.policy_ids,
                    domain,
                    encrypted,
                });
                continue;
            }
            // The forbids that decided, or nothing permitting: say which.
            let decisive = if read.policy_ids.is_empty() {
                masked.policy_ids
            } else {
                read.policy_ids
            };
            let reason = if undecryptable {
                format!(
                    "it is stored encrypted and no policy lets {who} decrypt it (or read it masked) for purpose `{purpose}`"
                )
            } else if decisive.is_empty() {
                format!("no policy lets {who} read it for purpose `{purpose}` (deny by default)")
            } else {
                format!("forbidden by policy {}", decisive.join(", "))
            };
            denied.push(DeniedColumn {
                name: column.name.clone(),
                reason,
                policy_ids: decisive,
            });
        }
        Ok(TableView {
            table: t.to_string(),
            policy_ids: decision.policy_ids.clone(),
            columns,
            denied,
            row_filter: self.row_filter(&decision.policy_ids, principal),
            prebuilt: std::sync::OnceLock::new(),
        })
    }

    /// The rows a principal may see: the union of the row filters of the
    /// permitting policies; a permit without a filter admits every row.
    fn row_filter(&self, permits: &[String], principal: &PrincipalConfig) -> Option<RowFilter> {
        let mut filters = Vec::new();
        for id in permits {
            filters.push((id, self.row_filters.get(id)?));
        }
        let mut iter = filters.into_iter();
        let (first_id, first) = iter.next()?;
        let mut predicate = Expr::Nested(Box::new(first.clone()));
        let mut policy_ids = vec![first_id.clone()];
        for (id, f) in iter {
            predicate = Expr::BinaryOp {
                left: Box::new(predicate),
                op: sqlparser::ast::BinaryOperator::Or,
                right: Box::new(Expr::Nested(Box::new(f.clone()))),
            };
            policy_ids.push(id.clone());
        }
        Some(RowFilter {
            predicate,
            attributes: principal
                .spec
                .attributes
                .clone()
                .into_iter()
                .collect::<BTreeMap<_, _>>(),
            policy_ids,
        })
    }
}

fn why(decision: &Decision) -> String {
    if !decision.errors.is_empty() {
        format!(
            "policy evaluation failed ({}), so access is refused",
            decision.errors.join("; ")
        )
    } else if decision.policy_ids.is_empty() {
        "no policy permits it (deny by default)".to_string()
    } else {
        format!("forbidden by policy {}", decision.policy_ids.join(", "))
    }
}

/// Functions a row filter may call: those allowed on every backend, so a
/// policy set works unchanged on SQLite and PostgreSQL.
fn portable_function(name: &str) -> bool {
    use crate::masks::Dialect;
    crate::sql::function_allowed(name, Dialect::Sqlite)
        && crate::sql::function_allowed(name, Dialect::Postgres)
}

/// A row filter is a predicate over its table's columns, literals,
/// `principal.ATTR`, and `col IN (SELECT col FROM table WHERE ...)` over
/// other governed tables (e.g. a customer's tickets by the customer's region).
/// Column existence is checked by the database when the view first runs.
fn check_filter_shape(expr: &Expr, catalog: &Catalog) -> Result<(), String> {
    let mut error = None;
    let _ = sqlparser::ast::visit_expressions(expr, |e| {
        let problem = match e {
            Expr::CompoundIdentifier(parts) => match parts.as_slice() {
                [p, _] if p.value.eq_ignore_ascii_case("principal") => None,
                _ => Some(format!(
                    "`{e}`: use the table's own column names and principal.ATTR"
                )),
            },
            Expr::Function(f) if !portable_function(&f.name.to_string()) => {
                Some(format!("the function `{}` is not allowed", f.name))
            }
            Expr::Subquery(_) | Expr::Exists { .. } => {
                Some("only `column IN (SELECT ...)` subqueries are allowed".to_string())
            }
            Expr::InSubquery { subquery, .. } => check_filter_subquery(subquery, catalog).err(),
            Expr::Value(v) if matches!(v.value, sqlparser::ast::Value::Placeholder(_)) => {
                Some("placeholders: use principal.ATTR".to_string())
            }
            _ => None,
        };
        match problem {
            Some(p) => {
                error = Some(p);
                std::ops::ControlFlow::Break(())
            }
            None => std::ops::ControlFlow::Continue(()),
        }
    });
    error.map_or(Ok(()), Err)
}

fn check_filter_subquery(q: &Query, catalog: &Catalog) -> Result<(), String> {
    let shape = "the subquery must be `SELECT column FROM table [WHERE ...]`";
    let SetExpr::Select(select) = q.body.as_ref() else {
        return Err(shape.into());
    };
    if q.with.is_some()
        || select.from.len() != 1
        || !select.from[0].joins.is_empty()
        || select.projection.len() != 1
    {
        return Err(shape.into());
    }
    if !matches!(
        select.projection[0],
        SelectItem::UnnamedExpr(Expr::Identifier(_))
    ) {
        return Err(shape.into());
    }
    let TableFactor::Table {
        name, args: None, ..
    } = &select.from[0].relation
    else {
        return Err(shape.into());
    };
    if catalog.table(&name.to_string()).is_none() {
        return Err(format!(
            "the subquery reads `{name}`, which the database does not have"
        ));
    }
    Ok(())
}

/// The oracle for one request.
pub struct RequestOracle<'a> {
    pub policies: &'a Policies,
    pub principal: &'a PrincipalConfig,
    pub context: RequestContext<'a>,
    /// Blind-index tokens for equality on encrypted columns; `None`: such
    /// comparisons are refused.
    pub sealing: Option<&'a crate::sealing::Sealing>,
}

impl AccessOracle for RequestOracle<'_> {
    fn view(&mut self, table: &TableInfo) -> Result<Arc<TableView>, AnalysisError> {
        self.policies.view(self.principal, self.context, table)
    }

    fn blind_index(&self, table: &str, column: &str, value: &str) -> Result<String, AnalysisError> {
        match self.sealing {
            Some(s) => s
                .blind_index(table, column, value)
                .map_err(|e| AnalysisError::Unsupported(e.message)),
            None => Err(AnalysisError::Unsupported(format!(
                "comparing the encrypted column {table}.{column}: no keys to compute its blind index"
            ))),
        }
    }
}
