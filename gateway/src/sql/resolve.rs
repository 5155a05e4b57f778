//! Scope resolution and the policy-view rewrite, in one pass over the AST.
//!
//! Every base-table reference is replaced, in place, by a subquery (its
//! policy view) that exposes only the columns the principal may see, masked
//! where the policy says so, and only the rows its row filter admits. Every
//! identifier is resolved through scopes (FROM relations, derived tables,
//! CTEs, outer scopes for correlated subqueries, output aliases) to the base
//! columns it derives from, and each use is recorded with its context.
//!
//! Fail closed: any construct not handled here is refused.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use serde::Serialize;
use sqlparser::ast::{
    visit_expressions_mut, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, GroupByExpr,
    Ident, Join, JoinConstraint, JoinOperator, LimitClause, ObjectName, ObjectNamePart, OrderBy,
    OrderByKind, Query, Select, SelectItem, SelectItemQualifiedWildcardKind, SetExpr, TableAlias,
    TableFactor, TableWithJoins, Value, Visit, Visitor, WindowType,
};
use sqlparser::dialect::SQLiteDialect;
use sqlparser::parser::Parser;

use super::functions;
use super::AnalysisError;
use crate::catalog::NameRule;
use crate::catalog::{Catalog, TableInfo};
use crate::masks::{self, Dialect, Mask};

/// How a column is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Usage {
    Projection,
    Predicate,
    Join,
    Group,
    Order,
    Window,
    FunctionArg,
    /// `column = 'literal'` (or `IN`) on an encrypted column, answered by
    /// its blind index.
    BlindIndex,
}

impl Usage {
    /// The use of a value that is compared (`=`, `<`, LIKE, IN, BETWEEN...):
    /// a comparison in the output or a function argument is still a
    /// predicate; in a join, grouping or ordering it keeps that context.
    fn compared(self) -> Usage {
        if self.needs_filter() {
            self
        } else {
            Usage::Predicate
        }
    }

    /// Uses that compare or sort values, and so need the `filter` permission.
    pub fn needs_filter(self) -> bool {
        matches!(
            self,
            Usage::Predicate
                | Usage::Join
                | Usage::Group
                | Usage::Order
                | Usage::Window
                | Usage::BlindIndex
        )
    }
}

/// A base-table column.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ColumnRef {
    pub table: String,
    pub column: String,
}

impl std::fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// The base columns a value derives from; `direct` when it is exactly one
/// column passed through unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Lineage {
    pub sources: BTreeSet<ColumnRef>,
    pub direct: Option<ColumnRef>,
}

impl Lineage {
    fn derived(mut self) -> Lineage {
        self.direct = None;
        self
    }

    fn merge(&mut self, other: Lineage) {
        self.sources.extend(other.sources);
        self.direct = None;
    }
}

/// An output column of the query and what it derives from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutputLineage {
    pub name: String,
    #[serde(flatten)]
    pub lineage: Lineage,
}

/// One column of a policy view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewColumn {
    pub name: String,
    /// `None`: shown plain.
    pub mask: Option<Mask>,
    /// May be used in predicates, joins, grouping, ordering, windows.
    pub may_filter: bool,
    /// The policies that made the column visible.
    pub policy_ids: Vec<String>,
    /// Pseudonym domain, for the pseudonym mask.
    pub domain: String,
    /// Stored as vault ciphertext: the view returns it with its row key,
    /// and the gateway decrypts it (then applies `mask`, if any) after the
    /// query. So it may only be projected as it is, or compared with
    /// literals through its blind index.
    pub encrypted: bool,
}

/// A column the principal may not see, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedColumn {
    pub name: String,
    pub reason: String,
    pub policy_ids: Vec<String>,
}

/// A row filter: an SQL predicate over the table's own columns in which
/// `principal.ATTR` stands for a principal attribute, bound as a parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct RowFilter {
    pub predicate: Expr,
    pub attributes: BTreeMap<String, String>,
    /// The policies the filter comes from.
    pub policy_ids: Vec<String>,
}

/// What a principal may see of one table: its policy view.
#[derive(Debug, Clone, PartialEq)]
pub struct TableView {
    pub table: String,
    /// The policies that permit reading the table.
    pub policy_ids: Vec<String>,
    /// Visible columns in catalog order.
    pub columns: Vec<ViewColumn>,
    pub denied: Vec<DeniedColumn>,
    /// `None`: every row.
    pub row_filter: Option<RowFilter>,
    /// The view's subquery, built on first use and reused: the view is the
    /// same for every query of this principal, context and table.
    pub prebuilt: std::sync::OnceLock<PreparedView>,
}

/// A policy view ready to splice into a query: its subquery with the row
/// filter in place (table names qualified, `principal.ATTR` still to be
/// bound per query), and the tables the filter consults.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedView {
    query: Query,
    filter_tables: Vec<String>,
}

/// Decides what a principal may see of a table (Cedar, behind a cache).
pub trait AccessOracle {
    fn view(&mut self, table: &TableInfo) -> Result<Arc<TableView>, AnalysisError>;

    /// The blind-index token of `value` for the encrypted `table.column`.
    /// Without keys there is none, and equality on the column is refused.
    fn blind_index(&self, table: &str, column: &str, value: &str) -> Result<String, AnalysisError> {
        let _ = value;
        Err(unsupported(format!(
            "comparing the encrypted column {table}.{column}: no keys to compute its blind index"
        )))
    }
}

/// The name under which a policy view exposes the blind index of an
/// encrypted column (reserved: no client query can name it).
pub fn blind_index_alias(column: &str) -> String {
    format!("privet_bidx_{column}")
}

/// Separates an encrypted value from its row key in a policy view's output.
pub const SEALED_SEPARATOR: char = '|';

/// The result of analysis and rewrite.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// Base tables read.
    pub tables: BTreeSet<String>,
    /// Every use of every base column.
    pub uses: BTreeMap<ColumnRef, BTreeSet<Usage>>,
    pub outputs: Vec<OutputLineage>,
    /// The views applied, by table.
    pub views: BTreeMap<String, Arc<TableView>>,
    /// Values for the numbered placeholders of the row filters.
    pub params: Vec<String>,
    /// Every table the rewritten statement reads: `tables` and the tables
    /// row filters consult (`customer_id IN (SELECT id FROM customers ...)`).
    /// The backend's guard admits exactly these.
    pub backend_tables: BTreeSet<String>,
    /// Where the result names its rows' data subjects.
    pub subjects: SubjectColumns,
}

/// Where the data subjects of a result's rows are, for the audit log.
///
/// When each result row is one row of the top-level FROM relations (no
/// DISTINCT, grouping or aggregate), the rewrite appends every relation's
/// subject key as a hidden column: the raw key of a base table (read inside
/// its policy view under a reserved name no query can write), or a derived
/// table's or CTE's column that passes a key through. Otherwise the output
/// columns that are keys are used. Either way `incomplete` says when rows
/// may carry subject data that no key names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectColumns {
    /// Result positions that hold subject keys, with their domains.
    pub keys: Vec<(usize, String)>,
    /// Columns appended after the outputs for the audit log alone: the
    /// gateway removes them before answering.
    pub hidden: usize,
    /// Some output derives from a table with data subjects that no key
    /// column covers (aggregates, DISTINCT, set operations, derived tables
    /// without their key, scalar subqueries).
    pub incomplete: bool,
}

/// A hidden key column: its domain, and the table whose rows it names.
#[derive(Debug, Clone)]
struct HiddenKey {
    domain: String,
    table: String,
}

impl Resolved {
    /// The pseudonym domains the applied views compute.
    pub fn pseudonym_domains(&self) -> BTreeSet<String> {
        self.views
            .values()
            .flat_map(|v| v.columns.iter())
            .filter(|c| c.mask == Some(Mask::Pseudonym))
            .map(|c| c.domain.clone())
            .collect()
    }

    /// The transform each output column shows (`mask:NAME`), for direct
    /// projections of masked columns.
    pub fn transforms(&self) -> Vec<Option<String>> {
        self.outputs
            .iter()
            .map(|o| {
                let direct = o.lineage.direct.as_ref()?;
                let view = self.views.get(&direct.table)?;
                let column = view.columns.iter().find(|c| c.name == direct.column)?;
                match (column.encrypted, column.mask) {
                    (false, mask) => mask.map(|m| m.transform_name()),
                    (true, None) => Some("decrypt".to_owned()),
                    (true, Some(m)) => Some(format!("decrypt+{}", m.transform_name())),
                }
            })
            .collect()
    }

    /// For each output column that is a direct projection of an encrypted
    /// column: its table, column, and the mask to apply after decrypting.
    pub fn sealed_outputs(&self) -> Vec<Option<SealedOutput>> {
        self.outputs
            .iter()
            .map(|o| {
                let direct = o.lineage.direct.as_ref()?;
                let view = self.views.get(&direct.table)?;
                let column = view
                    .columns
                    .iter()
                    .find(|c| c.name == direct.column && c.encrypted)?;
                Some(SealedOutput {
                    table: direct.table.clone(),
                    column: direct.column.clone(),
                    mask: column.mask,
                    domain: column.domain.clone(),
                })
            })
            .collect()
    }
}

/// An output column the gateway decrypts: the view gives it as
/// `ciphertext|row key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedOutput {
    pub table: String,
    pub column: String,
    /// Applied to the plaintext after decrypting.
    pub mask: Option<Mask>,
    /// Pseudonym domain, for the pseudonym mask.
    pub domain: String,
}

/// A relation visible in a FROM scope.
#[derive(Debug, Clone)]
struct Relation {
    /// Alias (or table name) as written, for generated references.
    ident: Ident,
    columns: Vec<(String, Lineage)>,
    /// For a policy view: the table and the columns it leaves out, so a
    /// reference to one is reported as denied rather than unknown.
    denied: Option<Arc<TableView>>,
}

impl Relation {
    fn matches(&self, name: &str, rule: NameRule) -> bool {
        rule.eq(&self.ident.value, name)
    }

    fn column(&self, name: &str, rule: NameRule) -> Option<&Lineage> {
        self.columns
            .iter()
            .find(|(c, _)| rule.eq(c, name))
            .map(|(_, l)| l)
    }
}

/// Name resolution context of one SELECT.
struct Scope<'a> {
    relations: Vec<Relation>,
    /// Output aliases, for ORDER BY / GROUP BY / HAVING.
    aliases: Vec<(String, Lineage)>,
    parent: Option<&'a Scope<'a>>,
    /// How names compare in the backend's dialect.
    rule: NameRule,
}

impl<'a> Scope<'a> {
    fn new(parent: Option<&'a Scope<'a>>, rule: NameRule) -> Scope<'a> {
        Scope {
            relations: Vec::new(),
            aliases: Vec::new(),
            parent,
            rule,
        }
    }
}

/// CTEs visible at a point: name → output columns.
type Ctes = Vec<(String, Vec<(String, Lineage)>)>;

/// Where an identifier may also name an output alias.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AliasRule {
    /// FROM columns only (WHERE, ON, projection).
    No,
    /// Aliases and FROM columns both considered; a name matching both gets
    /// both lineages (over-approximate uses; never under).
    Also,
}

pub struct Resolver<'c, O> {
    catalog: &'c Catalog,
    oracle: O,
    dialect: Dialect,
    uses: BTreeMap<ColumnRef, BTreeSet<Usage>>,
    views: BTreeMap<String, Arc<TableView>>,
    params: Vec<String>,
    filter_tables: BTreeSet<String>,
    generated_aliases: usize,
    /// The next query resolved is the statement itself.
    top_query: bool,
    /// The next SELECT resolved is the statement's body.
    top_select: bool,
    /// The hidden key columns appended to the statement's SELECT, if it is
    /// row-level.
    hidden_keys: Option<Vec<HiddenKey>>,
}

fn unsupported(what: impl std::fmt::Display) -> AnalysisError {
    AnalysisError::Unsupported(what.to_string())
}

impl<'c, O: AccessOracle> Resolver<'c, O> {
    pub fn new(catalog: &'c Catalog, oracle: O, dialect: Dialect) -> Self {
        Resolver {
            catalog,
            oracle,
            dialect,
            uses: BTreeMap::new(),
            views: BTreeMap::new(),
            params: Vec::new(),
            filter_tables: BTreeSet::new(),
            generated_aliases: 0,
            top_query: true,
            top_select: false,
            hidden_keys: None,
        }
    }

    /// Resolves and rewrites `query` in place.
    pub fn run(mut self, query: &mut Query) -> Result<Resolved, AnalysisError> {
        let outputs = self.query(query, &Vec::new(), None)?;
        self.check_uses(&outputs)?;
        let subjects = self.subject_columns(&outputs);
        if self.dialect == Dialect::Postgres {
            bind_literals(query, &mut self.params);
        }
        let tables: BTreeSet<String> = self.views.keys().cloned().collect();
        let backend_tables = tables.union(&self.filter_tables).cloned().collect();
        Ok(Resolved {
            subjects,
            backend_tables,
            tables,
            uses: self.uses,
            outputs: outputs
                .into_iter()
                .map(|(name, lineage)| OutputLineage { name, lineage })
                .collect(),
            views: self.views,
            params: self.params,
        })
    }

    /// Where the result's subject keys are: the hidden columns if the
    /// statement's SELECT got them, else the output columns that are keys.
    fn subject_columns(&mut self, outputs: &[(String, Lineage)]) -> SubjectColumns {
        let mut keys = Vec::new();
        let mut covered = BTreeSet::new();
        let hidden = match self.hidden_keys.take() {
            Some(hidden) => {
                for (i, key) in hidden.iter().enumerate() {
                    keys.push((outputs.len() + i, key.domain.clone()));
                    covered.insert(key.table.clone());
                }
                hidden.len()
            }
            None => {
                for (i, (_, lineage)) in outputs.iter().enumerate() {
                    if let Some(key) = self.key_of(lineage) {
                        keys.push((i, key.domain));
                        covered.insert(key.table);
                    }
                }
                0
            }
        };
        let incomplete = outputs.iter().any(|(_, lineage)| {
            lineage.sources.iter().any(|source| {
                !covered.contains(&source.table)
                    && !self.catalog.subject_keys(&source.table).is_empty()
            })
        });
        SubjectColumns {
            keys,
            hidden,
            incomplete,
        }
    }

    /// The subject key a value is, if it passes a key column through
    /// unchanged or pseudonymized (any other mask makes it no key).
    fn key_of(&self, lineage: &Lineage) -> Option<HiddenKey> {
        let direct = lineage.direct.as_ref()?;
        let rule = self.catalog.name_rule();
        let key = self
            .catalog
            .subject_keys(&direct.table)
            .iter()
            .find(|k| rule.eq(&k.column, &direct.column))?;
        let view = self.views.get(&direct.table)?;
        let column = view
            .columns
            .iter()
            .find(|c| rule.eq(&c.name, &direct.column))?;
        matches!(column.mask, None | Some(Mask::Pseudonym)).then(|| HiddenKey {
            domain: key.domain.clone(),
            table: direct.table.clone(),
        })
    }

    /// Appends the hidden key columns to the statement's (row-level)
    /// SELECT: each base table's raw keys, read inside its policy view under
    /// a reserved `privet_subject_N` name, and each derived relation's key
    /// columns.
    fn append_subject_keys(
        &mut self,
        s: &mut Select,
        scope: &Scope<'_>,
    ) -> Result<(), AnalysisError> {
        let mut hidden = Vec::new();
        for relation in &scope.relations {
            match &relation.denied {
                Some(view) => {
                    for key in self.catalog.subject_keys(&view.table) {
                        self.generated_aliases += 1;
                        let name = Ident::with_quote(
                            '"',
                            format!("privet_subject_{}", self.generated_aliases),
                        );
                        let view_select = view_select_mut(&mut s.from, &relation.ident)
                            .ok_or_else(|| unsupported("internal: a policy view not in FROM"))?;
                        view_select.projection.push(SelectItem::ExprWithAlias {
                            expr: Expr::Identifier(Ident::with_quote('"', key.column.clone())),
                            alias: name.clone(),
                        });
                        s.projection
                            .push(SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![
                                relation.ident.clone(),
                                name,
                            ])));
                        hidden.push(HiddenKey {
                            domain: key.domain.clone(),
                            table: view.table.clone(),
                        });
                    }
                }
                None => {
                    for (name, lineage) in &relation.columns {
                        let unique = relation
                            .columns
                            .iter()
                            .filter(|(other, _)| scope.rule.eq(other, name))
                            .count()
                            == 1;
                        let Some(key) = self.key_of(lineage).filter(|_| unique) else {
                            continue;
                        };
                        s.projection
                            .push(SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![
                                relation.ident.clone(),
                                Ident::with_quote('"', name.clone()),
                            ])));
                        hidden.push(key);
                    }
                }
            }
        }
        self.hidden_keys = Some(hidden);
        Ok(())
    }

    /// Uses the views forbid: comparing or sorting without `filter`, and any
    /// use but direct projection of a column masked outside SQL.
    fn check_uses(&self, outputs: &[(String, Lineage)]) -> Result<(), AnalysisError> {
        for (column, uses) in &self.uses {
            let Some(view) = self.views.get(&column.table) else {
                continue;
            };
            let Some(vc) = view
                .columns
                .iter()
                .find(|c| self.catalog.name_rule().eq(&c.name, &column.column))
            else {
                continue;
            };
            if let Some(usage) = uses.iter().find(|u| u.needs_filter()) {
                if !vc.may_filter {
                    return Err(AnalysisError::Denied {
                        table: column.table.clone(),
                        column: Some(column.column.clone()),
                        message: format!(
                            "column {column} may be read{} but not used in {}: that needs the `filter` permission",
                            vc.mask.map(|m| format!(" masked ({})", m.name())).unwrap_or_default(),
                            usage_phrase(*usage),
                        ),
                        policy_ids: Vec::new(),
                    });
                }
            }
            if vc.encrypted {
                if !only_passed_through(column, uses, outputs, Some(Usage::BlindIndex)) {
                    return Err(AnalysisError::Denied {
                        table: column.table.clone(),
                        column: Some(column.column.clone()),
                        message: format!(
                            "column {column} is stored encrypted and decrypted after the query, so it may only be selected as it is, or compared for equality with literals (`{} = '...'`, `IN (...)`) where it has a blind index; not used in expressions, other predicates, joins, grouping or ordering",
                            column.column
                        ),
                        policy_ids: Vec::new(),
                    });
                }
                continue;
            }
            if let Some(mask) = vc
                .mask
                .filter(|m| !masks::computed_in_sql(*m, self.dialect))
            {
                if !only_passed_through(column, uses, outputs, None) {
                    return Err(AnalysisError::Denied {
                        table: column.table.clone(),
                        column: Some(column.column.clone()),
                        message: format!(
                            "column {column} is masked ({}) after the query, so it may only be selected as it is, not used in expressions, predicates, joins or ordering",
                            mask.name()
                        ),
                        policy_ids: Vec::new(),
                    });
                }
            }
        }
        Ok(())
    }

    fn record(&mut self, lineage: &Lineage, usage: Usage, in_function: bool) {
        for source in &lineage.sources {
            let entry = self.uses.entry(source.clone()).or_default();
            entry.insert(usage);
            if in_function {
                entry.insert(Usage::FunctionArg);
            }
        }
    }

    fn query(
        &mut self,
        q: &mut Query,
        ctes: &Ctes,
        outer: Option<&Scope<'_>>,
    ) -> Result<Vec<(String, Lineage)>, AnalysisError> {
        let top = std::mem::take(&mut self.top_query);
        if q.fetch.is_some()
            || !q.locks.is_empty()
            || q.for_clause.is_some()
            || q.settings.is_some()
            || q.format_clause.is_some()
            || !q.pipe_operators.is_empty()
        {
            return Err(unsupported(
                "FETCH / FOR / SETTINGS / FORMAT / pipe clauses",
            ));
        }
        let mut env = ctes.clone();
        if let Some(with) = &mut q.with {
            if with.recursive {
                return Err(unsupported("WITH RECURSIVE"));
            }
            for cte in &mut with.cte_tables {
                if cte.materialized.is_some() || cte.from.is_some() {
                    return Err(unsupported("CTE materialization hints"));
                }
                let mut columns = self.query(&mut cte.query, &env, outer)?;
                if !cte.alias.columns.is_empty() {
                    if cte.alias.columns.len() != columns.len() {
                        return Err(unsupported(format!(
                            "CTE {} with a column list of the wrong length",
                            cte.alias.name
                        )));
                    }
                    for (col, def) in columns.iter_mut().zip(&cte.alias.columns) {
                        col.0 = def.name.value.clone();
                    }
                }
                env.push((cte.alias.name.value.clone(), columns));
            }
        }
        self.top_select = top && matches!(q.body.as_ref(), SetExpr::Select(_));
        let outputs = self.set_expr(&mut q.body, &env, outer, q.order_by.as_mut())?;
        if let Some(limit) = &mut q.limit_clause {
            let scope = Scope::new(outer, self.catalog.name_rule());
            match limit {
                LimitClause::LimitOffset {
                    limit,
                    offset,
                    limit_by,
                } => {
                    if !limit_by.is_empty() {
                        return Err(unsupported("LIMIT BY"));
                    }
                    if let Some(e) = limit {
                        self.expr(e, &scope, &env, Usage::Predicate, false, AliasRule::No)?;
                    }
                    if let Some(o) = offset {
                        self.expr(
                            &mut o.value,
                            &scope,
                            &env,
                            Usage::Predicate,
                            false,
                            AliasRule::No,
                        )?;
                    }
                }
                LimitClause::OffsetCommaLimit { offset, limit } => {
                    self.expr(offset, &scope, &env, Usage::Predicate, false, AliasRule::No)?;
                    self.expr(limit, &scope, &env, Usage::Predicate, false, AliasRule::No)?;
                }
            }
        }
        Ok(outputs)
    }

    fn set_expr(
        &mut self,
        body: &mut SetExpr,
        ctes: &Ctes,
        outer: Option<&Scope<'_>>,
        order_by: Option<&mut OrderBy>,
    ) -> Result<Vec<(String, Lineage)>, AnalysisError> {
        match body {
            SetExpr::Select(select) => self.select(select, ctes, outer, order_by),
            SetExpr::Query(q) => {
                let outputs = self.query(q, ctes, outer)?;
                self.order_by_outputs(order_by, &outputs, ctes, outer)?;
                Ok(outputs)
            }
            SetExpr::SetOperation { left, right, .. } => {
                let mut outputs = self.set_expr(left, ctes, outer, None)?;
                let right = self.set_expr(right, ctes, outer, None)?;
                if outputs.len() != right.len() {
                    return Err(unsupported(
                        "set operation branches with different column counts",
                    ));
                }
                for (l, (_, r)) in outputs.iter_mut().zip(right) {
                    l.1.merge(r);
                }
                self.order_by_outputs(order_by, &outputs, ctes, outer)?;
                Ok(outputs)
            }
            SetExpr::Values(values) => {
                let scope = Scope::new(outer, self.catalog.name_rule());
                let mut outputs: Vec<(String, Lineage)> = Vec::new();
                for row in &mut values.rows {
                    for (i, e) in row.iter_mut().enumerate() {
                        let l = self
                            .expr(e, &scope, ctes, Usage::Projection, false, AliasRule::No)?
                            .derived();
                        match outputs.get_mut(i) {
                            Some(o) => o.1.merge(l),
                            None => outputs.push((format!("column{}", i + 1), l)),
                        }
                    }
                }
                self.order_by_outputs(order_by, &outputs, ctes, outer)?;
                Ok(outputs)
            }
            other => Err(unsupported(format!(
                "the query form `{}`",
                other.to_string().chars().take(40).collect::<String>()
            ))),
        }
    }

    /// ORDER BY over a set operation: output names and positions only.
    fn order_by_outputs(
        &mut self,
        order_by: Option<&mut OrderBy>,
        outputs: &[(String, Lineage)],
        ctes: &Ctes,
        outer: Option<&Scope<'_>>,
    ) -> Result<(), AnalysisError> {
        let Some(order_by) = order_by else {
            return Ok(());
        };
        let mut scope = Scope::new(outer, self.catalog.name_rule());
        scope.aliases = outputs.to_vec();
        self.order_by(order_by, &scope, ctes, outputs)
    }

    fn order_by(
        &mut self,
        order_by: &mut OrderBy,
        scope: &Scope<'_>,
        ctes: &Ctes,
        outputs: &[(String, Lineage)],
    ) -> Result<(), AnalysisError> {
        if order_by.interpolate.is_some() {
            return Err(unsupported("ORDER BY INTERPOLATE"));
        }
        let OrderByKind::Expressions(items) = &mut order_by.kind else {
            return Err(unsupported("ORDER BY ALL"));
        };
        for item in items {
            if item.with_fill.is_some() {
                return Err(unsupported("ORDER BY WITH FILL"));
            }
            self.sort_key(&mut item.expr, scope, ctes, outputs, Usage::Order)?;
        }
        Ok(())
    }

    /// An ORDER BY / GROUP BY term: a position, an output alias or an expression.
    fn sort_key(
        &mut self,
        e: &mut Expr,
        scope: &Scope<'_>,
        ctes: &Ctes,
        outputs: &[(String, Lineage)],
        usage: Usage,
    ) -> Result<(), AnalysisError> {
        if let Expr::Value(v) = e {
            if let Value::Number(n, _) = &v.value {
                let position: usize = n
                    .parse()
                    .map_err(|_| unsupported(format!("the sort position {n}")))?;
                let lineage = position
                    .checked_sub(1)
                    .and_then(|i| outputs.get(i))
                    .map(|(_, l)| l.clone())
                    .ok_or_else(|| {
                        unsupported(format!(
                            "the position {n}: there are {} output columns",
                            outputs.len()
                        ))
                    })?;
                self.record(&lineage, usage, false);
                return Ok(());
            }
        }
        self.expr(e, scope, ctes, usage, false, AliasRule::Also)?;
        Ok(())
    }

    fn select(
        &mut self,
        s: &mut Select,
        ctes: &Ctes,
        outer: Option<&Scope<'_>>,
        order_by: Option<&mut OrderBy>,
    ) -> Result<Vec<(String, Lineage)>, AnalysisError> {
        if s.top.is_some()
            || s.into.is_some()
            || !s.lateral_views.is_empty()
            || s.prewhere.is_some()
            || !s.cluster_by.is_empty()
            || !s.distribute_by.is_empty()
            || !s.sort_by.is_empty()
            || s.qualify.is_some()
            || !s.named_window.is_empty()
            || s.connect_by.is_some()
            || s.value_table_mode.is_some()
            || s.exclude.is_some()
        {
            return Err(unsupported(format!(
                "this SELECT form ({})",
                if s.into.is_some() {
                    "SELECT INTO"
                } else {
                    "TOP / INTO / WINDOW / QUALIFY / ..."
                }
            )));
        }
        let attribute = std::mem::take(&mut self.top_select) && row_level(s, order_by.as_deref());
        let mut scope = Scope::new(outer, self.catalog.name_rule());
        for twj in &mut s.from {
            self.table_with_joins(twj, &mut scope, ctes)?;
        }
        if let Some(selection) = &mut s.selection {
            self.expr(
                selection,
                &scope,
                ctes,
                Usage::Predicate,
                false,
                AliasRule::No,
            )?;
        }
        if let Some(sqlparser::ast::Distinct::On(exprs)) = &mut s.distinct {
            for e in exprs {
                self.expr(e, &scope, ctes, Usage::Group, false, AliasRule::No)?;
            }
        }
        let mut outputs = Vec::new();
        let mut expanded = Vec::with_capacity(s.projection.len());
        for item in std::mem::take(&mut s.projection) {
            match item {
                SelectItem::UnnamedExpr(mut e) => {
                    let lineage = self.expr(
                        &mut e,
                        &scope,
                        ctes,
                        Usage::Projection,
                        false,
                        AliasRule::No,
                    )?;
                    outputs.push((output_name(&e), lineage));
                    expanded.push(SelectItem::UnnamedExpr(e));
                }
                SelectItem::ExprWithAlias { mut expr, alias } => {
                    let lineage = self.expr(
                        &mut expr,
                        &scope,
                        ctes,
                        Usage::Projection,
                        false,
                        AliasRule::No,
                    )?;
                    outputs.push((alias.value.clone(), lineage));
                    expanded.push(SelectItem::ExprWithAlias { expr, alias });
                }
                SelectItem::Wildcard(options) => {
                    if !wildcard_options_empty(&options) {
                        return Err(unsupported("* with EXCLUDE / EXCEPT / REPLACE / RENAME"));
                    }
                    if scope.relations.is_empty() {
                        return Err(unsupported("* without a FROM clause"));
                    }
                    for relation in &scope.relations {
                        self.expand(relation, &mut outputs, &mut expanded);
                    }
                }
                SelectItem::QualifiedWildcard(kind, options) => {
                    if !wildcard_options_empty(&options) {
                        return Err(unsupported("t.* with EXCLUDE / EXCEPT / REPLACE / RENAME"));
                    }
                    let SelectItemQualifiedWildcardKind::ObjectName(name) = &kind else {
                        return Err(unsupported("expression.*"));
                    };
                    let target = relation_name(name)?;
                    let relation = scope
                        .relations
                        .iter()
                        .find(|r| r.matches(&target, scope.rule))
                        .ok_or_else(|| AnalysisError::UnknownColumn {
                            name: format!("{name}.*"),
                        })?
                        .clone();
                    self.expand(&relation, &mut outputs, &mut expanded);
                }
            }
        }
        s.projection = expanded;
        for (name, lineage) in &outputs {
            self.record(lineage, Usage::Projection, false);
            scope.aliases.push((name.clone(), lineage.clone()));
        }
        match &mut s.group_by {
            GroupByExpr::Expressions(exprs, modifiers) => {
                if !modifiers.is_empty() {
                    return Err(unsupported("GROUP BY modifiers"));
                }
                for e in exprs {
                    self.sort_key(e, &scope, ctes, &outputs, Usage::Group)?;
                }
            }
            GroupByExpr::All(_) => return Err(unsupported("GROUP BY ALL")),
        }
        if let Some(having) = &mut s.having {
            self.expr(
                having,
                &scope,
                ctes,
                Usage::Predicate,
                false,
                AliasRule::Also,
            )?;
        }
        if let Some(order_by) = order_by {
            self.order_by(order_by, &scope, ctes, &outputs)?;
        }
        if attribute {
            self.append_subject_keys(s, &scope)?;
        }
        Ok(outputs)
    }

    /// `*` and `t.*` become explicit column references, so the output
    /// columns are exactly the analyzed ones.
    fn expand(
        &mut self,
        relation: &Relation,
        outputs: &mut Vec<(String, Lineage)>,
        expanded: &mut Vec<SelectItem>,
    ) {
        for (name, lineage) in &relation.columns {
            outputs.push((name.clone(), lineage.clone()));
            expanded.push(SelectItem::UnnamedExpr(Expr::CompoundIdentifier(vec![
                relation.ident.clone(),
                Ident::with_quote('"', name.clone()),
            ])));
        }
    }

    fn table_with_joins(
        &mut self,
        twj: &mut TableWithJoins,
        scope: &mut Scope<'_>,
        ctes: &Ctes,
    ) -> Result<(), AnalysisError> {
        let relation = self.factor(&mut twj.relation, scope, ctes)?;
        push_relation(scope, relation)?;
        for join in &mut twj.joins {
            self.join(join, scope, ctes)?;
        }
        Ok(())
    }

    fn join(
        &mut self,
        join: &mut Join,
        scope: &mut Scope<'_>,
        ctes: &Ctes,
    ) -> Result<(), AnalysisError> {
        if join.global {
            return Err(unsupported("GLOBAL JOIN"));
        }
        let relation = self.factor(&mut join.relation, scope, ctes)?;
        let constraint = match &mut join.join_operator {
            JoinOperator::Join(c)
            | JoinOperator::Inner(c)
            | JoinOperator::Left(c)
            | JoinOperator::LeftOuter(c)
            | JoinOperator::Right(c)
            | JoinOperator::RightOuter(c)
            | JoinOperator::FullOuter(c)
            | JoinOperator::CrossJoin(c) => c,
            other => {
                return Err(unsupported(
                    format!("the join `{other:?}`")
                        .chars()
                        .take(60)
                        .collect::<String>(),
                ))
            }
        };
        match constraint {
            JoinConstraint::None => push_relation(scope, relation)?,
            JoinConstraint::On(on) => {
                push_relation(scope, relation)?;
                self.expr(on, scope, ctes, Usage::Join, false, AliasRule::No)?;
            }
            JoinConstraint::Using(names) => {
                for name in names.iter() {
                    let column = relation_name(name)?;
                    let right = relation
                        .column(&column, scope.rule)
                        .ok_or_else(|| AnalysisError::UnknownColumn {
                            name: column.clone(),
                        })?
                        .clone();
                    let left =
                        lookup_in(&scope.relations, &column, scope.rule)?.ok_or_else(|| {
                            AnalysisError::UnknownColumn {
                                name: column.clone(),
                            }
                        })?;
                    self.record(&right, Usage::Join, false);
                    self.record(&left, Usage::Join, false);
                }
                push_relation(scope, relation)?;
            }
            JoinConstraint::Natural => {
                for (column, right) in &relation.columns {
                    if let Some(left) = lookup_in(&scope.relations, column, scope.rule)? {
                        self.record(right, Usage::Join, false);
                        self.record(&left, Usage::Join, false);
                    }
                }
                push_relation(scope, relation)?;
            }
        }
        Ok(())
    }

    fn factor(
        &mut self,
        factor: &mut TableFactor,
        scope: &Scope<'_>,
        ctes: &Ctes,
    ) -> Result<Relation, AnalysisError> {
        match factor {
            TableFactor::Table {
                name,
                alias,
                args,
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                index_hints,
            } => {
                if args.is_some() {
                    return Err(unsupported(format!("the table-valued function `{name}`")));
                }
                if !with_hints.is_empty()
                    || version.is_some()
                    || *with_ordinality
                    || !partitions.is_empty()
                    || json_path.is_some()
                    || sample.is_some()
                    || !index_hints.is_empty()
                {
                    return Err(unsupported(format!("table hints on `{name}`")));
                }
                let parts = name_parts(name)?;
                let alias_columns = alias.as_ref().map(|a| a.columns.len()).unwrap_or(0);
                if alias_columns > 0 {
                    return Err(unsupported("a column list in a table alias"));
                }
                // A single name that is a CTE in scope is the CTE; SQLite
                // resolves CTE names before tables.
                if let [single] = parts.as_slice() {
                    if let Some((_, columns)) = ctes
                        .iter()
                        .rev()
                        .find(|(n, _)| self.catalog.name_rule().eq(n, &single.value))
                    {
                        let ident = alias
                            .as_ref()
                            .map(|a| a.name.clone())
                            .unwrap_or_else(|| single.clone());
                        return Ok(Relation {
                            ident,
                            columns: columns.clone(),
                            denied: None,
                        });
                    }
                }
                let table_ident = match parts.as_slice() {
                    [table] => table.clone(),
                    [schema, table]
                        if self
                            .catalog
                            .name_rule()
                            .eq(&schema.value, self.catalog.schema()) =>
                    {
                        table.clone()
                    }
                    _ => {
                        return Err(AnalysisError::UnknownTable {
                            name: name.to_string(),
                        })
                    }
                };
                let info = self.catalog.table(&table_ident.value).ok_or_else(|| {
                    AnalysisError::UnknownTable {
                        name: name.to_string(),
                    }
                })?;
                let view = self.view(info)?;
                let ident = alias
                    .as_ref()
                    .map(|a| a.name.clone())
                    .unwrap_or(table_ident);
                let columns = view
                    .columns
                    .iter()
                    .map(|c| {
                        let source = ColumnRef {
                            table: view.table.clone(),
                            column: c.name.clone(),
                        };
                        (
                            c.name.clone(),
                            Lineage {
                                sources: BTreeSet::from([source.clone()]),
                                direct: Some(source),
                            },
                        )
                    })
                    .collect();
                *factor = self.view_factor(&view, ident.clone())?;
                Ok(Relation {
                    ident,
                    columns,
                    denied: Some(view),
                })
            }
            TableFactor::Derived {
                lateral,
                subquery,
                alias,
            } => {
                if *lateral {
                    return Err(unsupported("LATERAL subqueries"));
                }
                let mut columns = self.query(subquery, ctes, scope.parent)?;
                let alias = match alias {
                    Some(a) => {
                        if !a.columns.is_empty() {
                            if a.columns.len() != columns.len() {
                                return Err(unsupported(
                                    "a derived-table column list of the wrong length",
                                ));
                            }
                            for (col, def) in columns.iter_mut().zip(&a.columns) {
                                col.0 = def.name.value.clone();
                            }
                        }
                        a
                    }
                    None => {
                        // Unaliased subqueries get a name so `*` can be expanded to explicit references.
                        self.generated_aliases += 1;
                        alias.insert(TableAlias {
                            name: Ident::with_quote(
                                '"',
                                format!("privet_subquery_{}", self.generated_aliases),
                            ),
                            columns: Vec::new(),
                        })
                    }
                };
                Ok(Relation {
                    ident: alias.name.clone(),
                    columns,
                    denied: None,
                })
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                if alias.is_some() {
                    return Err(unsupported("an aliased parenthesized join"));
                }
                // The nested join's relations join the enclosing scope; return
                // them merged as one relation list via a nested scope.
                let mut nested = Scope::new(scope.parent, scope.rule);
                self.table_with_joins(table_with_joins, &mut nested, ctes)?;
                if nested.relations.len() == 1 {
                    return nested
                        .relations
                        .pop()
                        .ok_or_else(|| unsupported("an empty join"));
                }
                Err(unsupported("parenthesized joins of several tables"))
            }
            other => Err(unsupported(format!("the FROM item `{other}`"))),
        }
    }

    fn view(&mut self, info: &TableInfo) -> Result<Arc<TableView>, AnalysisError> {
        if let Some(view) = self.views.get(&info.name) {
            return Ok(Arc::clone(view));
        }
        let view = self.oracle.view(info)?;
        self.views.insert(info.name.clone(), Arc::clone(&view));
        Ok(view)
    }

    /// The policy view of a table, as a derived-table FROM item.
    fn view_factor(
        &mut self,
        view: &TableView,
        alias: Ident,
    ) -> Result<TableFactor, AnalysisError> {
        let prepared = match view.prebuilt.get() {
            Some(p) => p,
            None => {
                let p = self.build_view(view)?;
                view.prebuilt.get_or_init(|| p)
            }
        };
        self.filter_tables
            .extend(prepared.filter_tables.iter().cloned());
        let mut query = prepared.query.clone();
        if let (Some(filter), SetExpr::Select(select)) = (&view.row_filter, query.body.as_mut()) {
            if let Some(selection) = &mut select.selection {
                self.bind_filter(selection, filter)?;
            }
        }
        Ok(TableFactor::Derived {
            lateral: false,
            subquery: Box::new(query),
            alias: Some(TableAlias {
                name: alias,
                columns: Vec::new(),
            }),
        })
    }

    /// `SELECT <visible columns, masked> FROM main."table" WHERE <row filter>`,
    /// the filter's attributes left to bind per query.
    fn build_view(&self, view: &TableView) -> Result<PreparedView, AnalysisError> {
        let mut query = skeleton()?;
        let SetExpr::Select(select) = query.body.as_mut() else {
            return Err(unsupported("internal: view skeleton"));
        };
        let mut blind_indexes = Vec::new();
        select.projection = view
            .columns
            .iter()
            .map(|c| {
                let column = Expr::Identifier(Ident::with_quote('"', c.name.clone()));
                if c.encrypted {
                    let sealed = self
                        .catalog
                        .encrypted_column(&view.table, &c.name)
                        .ok_or_else(|| {
                            unsupported(format!(
                                "internal: {}.{} is not an encrypted column",
                                view.table, c.name
                            ))
                        })?;
                    if let (Some(b), true) = (&sealed.blind_index, c.may_filter) {
                        blind_indexes.push(SelectItem::ExprWithAlias {
                            expr: Expr::Identifier(Ident::with_quote('"', b.clone())),
                            alias: Ident::with_quote('"', blind_index_alias(&c.name)),
                        });
                    }
                    // `ciphertext|key`: the row key the ciphertext is bound
                    // to travels with it (NULL stays NULL).
                    let mut expr = column;
                    for key in &sealed.row_key {
                        let concat = |l: Expr, r: Expr| Expr::BinaryOp {
                            left: Box::new(l),
                            op: sqlparser::ast::BinaryOperator::StringConcat,
                            right: Box::new(r),
                        };
                        let key_text = Expr::Cast {
                            kind: sqlparser::ast::CastKind::Cast,
                            expr: Box::new(Expr::Identifier(Ident::with_quote('"', key.clone()))),
                            data_type: sqlparser::ast::DataType::Text,
                            format: None,
                        };
                        expr = concat(
                            concat(
                                expr,
                                Expr::value(Value::SingleQuotedString(
                                    SEALED_SEPARATOR.to_string(),
                                )),
                            ),
                            key_text,
                        );
                    }
                    return Ok(SelectItem::ExprWithAlias {
                        expr: Expr::Nested(Box::new(expr)),
                        alias: Ident::with_quote('"', c.name.clone()),
                    });
                }
                Ok(
                    match c
                        .mask
                        .and_then(|m| masks::sql_expr(m, column.clone(), &c.domain, self.dialect))
                    {
                        Some(masked) => SelectItem::ExprWithAlias {
                            expr: masked,
                            alias: Ident::with_quote('"', c.name.clone()),
                        },
                        None => SelectItem::UnnamedExpr(column),
                    },
                )
            })
            .collect::<Result<Vec<_>, AnalysisError>>()?;
        select.projection.extend(blind_indexes);
        if select.projection.is_empty() {
            // A table with no visible column still has rows (for count(*)).
            select.projection = vec![SelectItem::UnnamedExpr(Expr::value(Value::Null))];
        }
        if let Some(TableWithJoins {
            relation: TableFactor::Table { name, .. },
            ..
        }) = select.from.first_mut()
        {
            *name = base_table_name(self.catalog.schema(), &view.table);
        }
        let mut filter_tables = Vec::new();
        if let Some(filter) = &view.row_filter {
            let mut predicate = filter.predicate.clone();
            // Tables in row-filter subqueries are named `main."t"` too: a
            // caller's CTE named like the table must not stand in for it.
            let _ = sqlparser::ast::visit_relations_mut(&mut predicate, |name| {
                if let Some(t) = self.catalog.table(&name.to_string()) {
                    *name = base_table_name(self.catalog.schema(), &t.name);
                    filter_tables.push(t.name.clone());
                }
                std::ops::ControlFlow::<()>::Continue(())
            });
            select.selection = Some(match predicate {
                nested @ Expr::Nested(_) => nested,
                other => Expr::Nested(Box::new(other)),
            });
        }
        Ok(PreparedView {
            query,
            filter_tables,
        })
    }

    /// Replaces `principal.ATTR` in a row filter by numbered placeholders
    /// whose values go to `params`: attribute values are bound, never spliced.
    fn bind_filter(
        &mut self,
        predicate: &mut Expr,
        filter: &RowFilter,
    ) -> Result<(), AnalysisError> {
        let mut missing = None;
        let _ = visit_expressions_mut(predicate, |e| {
            if let Expr::CompoundIdentifier(parts) = e {
                if let [p, attr] = parts.as_slice() {
                    if p.value.eq_ignore_ascii_case("principal") {
                        match filter.attributes.get(&attr.value) {
                            Some(value) => {
                                self.params.push(value.clone());
                                let placeholder = match self.dialect {
                                    Dialect::Sqlite => format!("?{}", self.params.len()),
                                    Dialect::Postgres => format!("${}", self.params.len()),
                                };
                                *e = Expr::value(Value::Placeholder(placeholder));
                            }
                            None => missing = Some(attr.value.clone()),
                        }
                    }
                }
            }
            std::ops::ControlFlow::<()>::Continue(())
        });
        match missing {
            // Fail closed: a filter that cannot be bound admits no rows.
            Some(attr) => Err(AnalysisError::Denied {
                table: String::new(),
                column: None,
                message: format!(
                    "the row filter of policy {} needs the principal attribute `{attr}`, which this principal does not have",
                    filter.policy_ids.join(", ")
                ),
                policy_ids: filter.policy_ids.clone(),
            }),
            None => Ok(()),
        }
    }

    /// `col = 'literal'`, `'literal' = col` or `col IN ('a', 'b')` where
    /// `col` is an encrypted column of a policy view: rewritten in place to
    /// compare the view's blind index with the literals' tokens. Returns
    /// whether it was (false: not this shape, resolve as usual). Comparing an
    /// encrypted column any other way is refused by `check_uses`.
    fn blind_index_equality(
        &mut self,
        e: &mut Expr,
        scope: &Scope<'_>,
        aliases: AliasRule,
    ) -> Result<bool, AnalysisError> {
        fn column_parts(e: &Expr) -> Option<&[Ident]> {
            match e {
                Expr::Identifier(i) => Some(std::slice::from_ref(i)),
                Expr::CompoundIdentifier(parts) => Some(parts),
                _ => None,
            }
        }
        fn literal(e: &Expr) -> Option<&str> {
            match e {
                Expr::Value(v) => match &v.value {
                    Value::SingleQuotedString(s) => Some(s),
                    _ => None,
                },
                _ => None,
            }
        }
        // Which side is the column, and the literals.
        let (column_side, literals): (&Expr, Vec<&str>) = match &*e {
            Expr::BinaryOp { left, right, .. } => match (literal(left), literal(right)) {
                (None, Some(l)) => (left, vec![l]),
                (Some(l), None) => (right, vec![l]),
                _ => return Ok(false),
            },
            Expr::InList { expr, list, .. } => {
                let Some(ls) = list.iter().map(literal).collect::<Option<Vec<_>>>() else {
                    return Ok(false);
                };
                (expr, ls)
            }
            _ => return Ok(false),
        };
        let Some(parts) = column_parts(column_side) else {
            return Ok(false);
        };
        let lineage = lookup(scope, parts, aliases)?;
        let Some(source) = lineage.direct.clone() else {
            return Ok(false);
        };
        let Some(sealed) = self.catalog.encrypted_column(&source.table, &source.column) else {
            return Ok(false);
        };
        let refuse = |why: String| AnalysisError::Denied {
            table: source.table.clone(),
            column: Some(source.column.clone()),
            message: why,
            policy_ids: Vec::new(),
        };
        let Some(view) = self.views.get(&source.table).cloned() else {
            return Ok(false);
        };
        let Some(vc) = view.columns.iter().find(|c| c.name == sealed.column) else {
            return Ok(false);
        };
        if !vc.may_filter {
            return Err(refuse(format!(
                "column {source} may be read but not compared: that needs the `filter` permission"
            )));
        }
        if sealed.blind_index.is_none() {
            return Err(refuse(format!(
                "column {source} is stored encrypted without a blind index column ({}_bidx), so it cannot be compared",
                sealed.column
            )));
        }
        // The reference must reach the policy view itself: a derived table
        // or CTE does not carry the blind index.
        let on_view = relation_of(scope, parts)
            .is_some_and(|r| r.denied.as_ref().is_some_and(|v| v.table == source.table));
        if !on_view {
            return Err(refuse(format!(
                "compare the encrypted column {source} on its table directly: through a subquery or CTE its blind index is not available"
            )));
        }
        let tokens = literals
            .iter()
            .map(|l| self.oracle.blind_index(&source.table, &sealed.column, l))
            .collect::<Result<Vec<_>, _>>()?;
        let mut renamed = parts.to_vec();
        if let Some(last) = renamed.last_mut() {
            *last = Ident::with_quote('"', blind_index_alias(&sealed.column));
        }
        let renamed = match renamed.len() {
            1 => Expr::Identifier(renamed.remove(0)),
            _ => Expr::CompoundIdentifier(renamed),
        };
        let token = |t: String| Expr::value(Value::SingleQuotedString(t));
        match e {
            Expr::BinaryOp { left, right, .. } => {
                let mut tokens = tokens.into_iter();
                let t = tokens.next().map(token).unwrap_or(Expr::value(Value::Null));
                **left = renamed;
                **right = t;
            }
            Expr::InList { expr, list, .. } => {
                **expr = renamed;
                *list = tokens.into_iter().map(token).collect();
            }
            _ => return Ok(false),
        }
        self.uses
            .entry(source)
            .or_default()
            .insert(Usage::BlindIndex);
        Ok(true)
    }

    /// Resolves an expression; returns its lineage.
    fn expr(
        &mut self,
        e: &mut Expr,
        scope: &Scope<'_>,
        ctes: &Ctes,
        usage: Usage,
        in_function: bool,
        aliases: AliasRule,
    ) -> Result<Lineage, AnalysisError> {
        // Recurse into children with the same context.
        macro_rules! sub {
            ($x:expr) => {
                self.expr($x, scope, ctes, usage, in_function, aliases)?
            };
        }
        if matches!(
            e,
            Expr::BinaryOp {
                op: sqlparser::ast::BinaryOperator::Eq,
                ..
            } | Expr::InList { negated: false, .. }
        ) && self.blind_index_equality(e, scope, aliases)?
        {
            return Ok(Lineage::default());
        }
        // Only the arms that long chains recurse through live here, so each
        // level of `a OR b OR ...` costs a small stack frame even in
        // unoptimized builds; everything else is in `expr_other`.
        let lineage = match e {
            Expr::Identifier(ident) => {
                let lineage = lookup(scope, std::slice::from_ref(ident), aliases)?;
                self.record(&lineage, usage, in_function);
                lineage
            }
            Expr::CompoundIdentifier(parts) => {
                let lineage = lookup(scope, parts, aliases)?;
                self.record(&lineage, usage, in_function);
                lineage
            }
            Expr::Value(v) => {
                if matches!(v.value, Value::Placeholder(_)) {
                    return Err(unsupported("query parameters"));
                }
                Lineage::default()
            }
            Expr::TypedString(_) => Lineage::default(),
            Expr::Nested(inner) => sub!(inner),
            Expr::UnaryOp { expr, op } => {
                check_unary(op)?;
                sub!(expr).derived()
            }
            Expr::BinaryOp { left, op, right } => {
                check_binary(op)?;
                // A comparison reveals an order or an equality: it is a
                // predicate use wherever it appears (SELECT list, iif(), ...).
                let usage = if is_comparison(op) {
                    usage.compared()
                } else {
                    usage
                };
                let mut l = self.expr(left, scope, ctes, usage, in_function, aliases)?;
                l.merge(self.expr(right, scope, ctes, usage, in_function, aliases)?);
                l
            }
            _ => return self.expr_other(e, scope, ctes, usage, in_function, aliases),
        };
        Ok(lineage)
    }

    #[inline(never)]
    fn expr_other(
        &mut self,
        e: &mut Expr,
        scope: &Scope<'_>,
        ctes: &Ctes,
        usage: Usage,
        in_function: bool,
        aliases: AliasRule,
    ) -> Result<Lineage, AnalysisError> {
        macro_rules! sub {
            ($x:expr) => {
                self.expr($x, scope, ctes, usage, in_function, aliases)?
            };
        }
        let lineage = match e {
            Expr::IsNull(x)
            | Expr::IsNotNull(x)
            | Expr::IsTrue(x)
            | Expr::IsNotTrue(x)
            | Expr::IsFalse(x)
            | Expr::IsNotFalse(x)
            | Expr::IsUnknown(x)
            | Expr::IsNotUnknown(x) => sub!(x).derived(),
            Expr::IsDistinctFrom(a, b) | Expr::IsNotDistinctFrom(a, b) => {
                let mut l = self.expr(a, scope, ctes, usage.compared(), in_function, aliases)?;
                l.merge(self.expr(b, scope, ctes, usage.compared(), in_function, aliases)?);
                l
            }
            Expr::InList { expr, list, .. } => {
                let mut l = sub!(expr).derived();
                for item in list {
                    l.merge(sub!(item));
                }
                l
            }
            Expr::Between {
                expr, low, high, ..
            } => {
                let mut l = sub!(expr).derived();
                l.merge(sub!(low));
                l.merge(sub!(high));
                l
            }
            Expr::Like {
                expr, pattern, any, ..
            }
            | Expr::ILike {
                expr, pattern, any, ..
            } => {
                if *any {
                    return Err(unsupported("LIKE ANY"));
                }
                let mut l = sub!(expr).derived();
                l.merge(sub!(pattern));
                l
            }
            Expr::Cast {
                expr,
                format,
                data_type,
                ..
            } => {
                if format.is_some() {
                    return Err(unsupported("CAST ... FORMAT"));
                }
                if self.dialect == Dialect::Postgres && !postgres_cast_allowed(data_type) {
                    return Err(unsupported(format!("a cast to `{data_type}`")));
                }
                sub!(expr).derived()
            }
            Expr::Collate { expr, .. } => sub!(expr).derived(),
            Expr::Case {
                operand,
                conditions,
                else_result,
                ..
            } => {
                let mut l = Lineage::default();
                if let Some(op) = operand {
                    l.merge(self.expr(op, scope, ctes, usage.compared(), in_function, aliases)?);
                }
                for when in conditions {
                    l.merge(self.expr(
                        &mut when.condition,
                        scope,
                        ctes,
                        Usage::Predicate,
                        in_function,
                        aliases,
                    )?);
                    l.merge(sub!(&mut when.result));
                }
                if let Some(x) = else_result {
                    l.merge(sub!(x));
                }
                l.derived()
            }
            Expr::Substring {
                expr,
                substring_from,
                substring_for,
                ..
            } => {
                let mut l = self
                    .expr(expr, scope, ctes, usage, true, aliases)?
                    .derived();
                for x in [substring_from, substring_for].into_iter().flatten() {
                    l.merge(self.expr(x, scope, ctes, usage, true, aliases)?);
                }
                l
            }
            Expr::Trim {
                expr,
                trim_what,
                trim_characters,
                ..
            } => {
                let mut l = self
                    .expr(expr, scope, ctes, usage, true, aliases)?
                    .derived();
                if let Some(x) = trim_what {
                    l.merge(self.expr(x, scope, ctes, usage, true, aliases)?);
                }
                for x in trim_characters.iter_mut().flatten() {
                    l.merge(self.expr(x, scope, ctes, usage, true, aliases)?);
                }
                l
            }
            Expr::Tuple(items) => {
                let mut l = Lineage::default();
                for item in items {
                    l.merge(sub!(item));
                }
                l
            }
            Expr::Function(f) => self.function(f, scope, ctes, usage, aliases)?,
            Expr::Subquery(q) => {
                let outputs = self.query(q, ctes, Some(scope))?;
                let mut l = Lineage::default();
                for (_, o) in outputs {
                    l.merge(o);
                }
                self.record(&l, usage, in_function);
                l
            }
            Expr::Exists { subquery, .. } => {
                // EXISTS yields no column values; the subquery's own
                // predicates are recorded as it is resolved.
                self.query(subquery, ctes, Some(scope))?;
                Lineage::default()
            }
            Expr::InSubquery { expr, subquery, .. } => {
                let mut l = self
                    .expr(expr, scope, ctes, usage.compared(), in_function, aliases)?
                    .derived();
                let outputs = self.query(subquery, ctes, Some(scope))?;
                for (_, o) in outputs {
                    self.record(&o, usage.compared(), in_function);
                    l.merge(o);
                }
                l
            }
            other => {
                return Err(unsupported(format!(
                    "the expression `{}`",
                    other.to_string().chars().take(60).collect::<String>()
                )))
            }
        };
        Ok(lineage)
    }

    fn function(
        &mut self,
        f: &mut sqlparser::ast::Function,
        scope: &Scope<'_>,
        ctes: &Ctes,
        usage: Usage,
        aliases: AliasRule,
    ) -> Result<Lineage, AnalysisError> {
        let name = match f.name.0.as_slice() {
            [ObjectNamePart::Identifier(ident)] => ident.value.clone(),
            _ => {
                return Err(AnalysisError::FunctionNotAllowed {
                    name: f.name.to_string(),
                })
            }
        };
        if !functions::is_allowed(&name, self.dialect) {
            return Err(AnalysisError::FunctionNotAllowed { name });
        }
        if f.uses_odbc_syntax
            || !matches!(f.parameters, FunctionArguments::None)
            || f.null_treatment.is_some()
            || !f.within_group.is_empty()
        {
            return Err(unsupported(format!("this form of {name}()")));
        }
        let mut l = Lineage::default();
        match &mut f.args {
            FunctionArguments::None => {}
            FunctionArguments::Subquery(_) => return Err(unsupported(format!("{name}(subquery)"))),
            FunctionArguments::List(list) => {
                if !list.clauses.is_empty() {
                    return Err(unsupported(format!("clauses inside {name}()")));
                }
                for arg in &mut list.args {
                    match arg {
                        FunctionArg::Unnamed(FunctionArgExpr::Expr(x)) => {
                            l.merge(self.expr(x, scope, ctes, usage, true, aliases)?);
                        }
                        // count(*) reads no column values.
                        FunctionArg::Unnamed(FunctionArgExpr::Wildcard)
                            if name.eq_ignore_ascii_case("count") => {}
                        _ => return Err(unsupported(format!("this argument form of {name}()"))),
                    }
                }
            }
        }
        if let Some(filter) = &mut f.filter {
            self.expr(filter, scope, ctes, Usage::Predicate, false, aliases)?;
        }
        match &mut f.over {
            None => {}
            Some(WindowType::NamedWindow(_)) => return Err(unsupported("named windows")),
            Some(WindowType::WindowSpec(spec)) => {
                if spec.window_name.is_some() {
                    return Err(unsupported("named windows"));
                }
                for e in &mut spec.partition_by {
                    self.expr(e, scope, ctes, Usage::Window, false, aliases)?;
                }
                for o in &mut spec.order_by {
                    self.expr(&mut o.expr, scope, ctes, Usage::Window, false, aliases)?;
                }
                if spec
                    .window_frame
                    .as_ref()
                    .is_some_and(|fr| !frame_is_simple(fr))
                {
                    return Err(unsupported("window frames with expressions"));
                }
            }
        }
        Ok(l.derived())
    }
}

/// Types a PostgreSQL query may cast to: values, not catalog lookups (a
/// cast to `regclass` or `regproc` would read the catalog by name).
fn postgres_cast_allowed(data_type: &sqlparser::ast::DataType) -> bool {
    use sqlparser::ast::DataType as T;
    matches!(
        data_type,
        T::Character(_)
            | T::Char(_)
            | T::CharacterVarying(_)
            | T::CharVarying(_)
            | T::Varchar(_)
            | T::Text
            | T::Uuid
            | T::Numeric(_)
            | T::Decimal(_)
            | T::Dec(_)
            | T::Float(_)
            | T::Real
            | T::Float4
            | T::Float8
            | T::Double(_)
            | T::DoublePrecision
            | T::Int2(_)
            | T::SmallInt(_)
            | T::Int(_)
            | T::Int4(_)
            | T::Integer(_)
            | T::Int8(_)
            | T::BigInt(_)
            | T::Bool
            | T::Boolean
            | T::Date
            | T::Time(..)
            | T::Timestamp(..)
            | T::Interval { .. }
            | T::JSON
            | T::JSONB
            | T::Bytea
    )
}

/// Operators a query may use: arithmetic, comparison, logic, concatenation,
/// bitwise. Others (JSON `->` / `->>`, dialect extensions) are refused, as
/// the functions they stand for are.
#[inline(never)]
fn check_binary(op: &sqlparser::ast::BinaryOperator) -> Result<(), AnalysisError> {
    use sqlparser::ast::BinaryOperator as B;
    match op {
        B::Plus
        | B::Minus
        | B::Multiply
        | B::Divide
        | B::Modulo
        | B::StringConcat
        | B::Gt
        | B::Lt
        | B::GtEq
        | B::LtEq
        | B::Spaceship
        | B::Eq
        | B::NotEq
        | B::And
        | B::Or
        | B::BitwiseOr
        | B::BitwiseAnd
        | B::PGBitwiseShiftLeft
        | B::PGBitwiseShiftRight => Ok(()),
        other => Err(unsupported(format!("the operator `{other}`"))),
    }
}

#[inline(never)]
fn check_unary(op: &sqlparser::ast::UnaryOperator) -> Result<(), AnalysisError> {
    use sqlparser::ast::UnaryOperator as U;
    match op {
        U::Plus | U::Minus | U::Not | U::PGBitwiseNot => Ok(()),
        other => Err(unsupported(format!("the operator `{other}`"))),
    }
}

fn is_comparison(op: &sqlparser::ast::BinaryOperator) -> bool {
    use sqlparser::ast::BinaryOperator as B;
    matches!(
        op,
        B::Eq | B::NotEq | B::Lt | B::LtEq | B::Gt | B::GtEq | B::Spaceship
    )
}

fn frame_is_simple(frame: &sqlparser::ast::WindowFrame) -> bool {
    use sqlparser::ast::WindowFrameBound;
    let simple = |b: &WindowFrameBound| match b {
        WindowFrameBound::CurrentRow => true,
        WindowFrameBound::Preceding(x) | WindowFrameBound::Following(x) => x
            .as_deref()
            .is_none_or(|e| matches!(e, Expr::Value(v) if matches!(v.value, Value::Number(..)))),
    };
    simple(&frame.start_bound) && frame.end_bound.as_ref().is_none_or(simple)
}

fn wildcard_options_empty(o: &sqlparser::ast::WildcardAdditionalOptions) -> bool {
    o.opt_ilike.is_none()
        && o.opt_exclude.is_none()
        && o.opt_except.is_none()
        && o.opt_replace.is_none()
        && o.opt_rename.is_none()
}

fn name_parts(name: &ObjectName) -> Result<Vec<Ident>, AnalysisError> {
    name.0
        .iter()
        .map(|p| {
            p.as_ident()
                .cloned()
                .ok_or_else(|| unsupported(format!("the name `{name}`")))
        })
        .collect()
}

/// A single-part name (relation or column in USING / t.*).
fn relation_name(name: &ObjectName) -> Result<String, AnalysisError> {
    match name_parts(name)?.as_slice() {
        [one] => Ok(one.value.clone()),
        _ => Err(unsupported(format!("the qualified name `{name}` here"))),
    }
}

/// Turns the literals a comparison holds against a column (`id = 42`,
/// `ts >= '2026-01-01'`, `id IN (1, 2)`, `id BETWEEN 1 AND 9`) into bound
/// parameters, so that statements differing only in those values share one
/// prepared statement and plan on PostgreSQL. Meaning is kept: an integer
/// becomes `CAST($n AS INTEGER)` / `BIGINT`, the type PostgreSQL gives the
/// literal; a string stays untyped, as the literal is (`unknown`, resolved
/// from the column). Decimals, negatives and everything else stay literal.
fn bind_literals(query: &mut Query, params: &mut Vec<String>) {
    fn is_column(e: &Expr) -> bool {
        matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_))
    }
    fn bind(e: &mut Expr, params: &mut Vec<String>) {
        // PostgreSQL takes at most 65,535 parameters; huge IN lists keep
        // their literals past this many.
        const MAX_BOUND: usize = 10_000;
        let Expr::Value(v) = e else { return };
        if params.len() >= MAX_BOUND {
            return;
        }
        let (text, data_type) = match &v.value {
            Value::Number(n, false) if n.bytes().all(|b| b.is_ascii_digit()) => {
                let data_type = if n.parse::<i32>().is_ok() {
                    sqlparser::ast::DataType::Integer(None)
                } else if n.parse::<i64>().is_ok() {
                    sqlparser::ast::DataType::BigInt(None)
                } else {
                    return;
                };
                (n.clone(), Some(data_type))
            }
            Value::SingleQuotedString(text) => (text.clone(), None),
            _ => return,
        };
        params.push(text);
        let placeholder = Expr::value(Value::Placeholder(format!("${}", params.len())));
        *e = match data_type {
            Some(data_type) => Expr::Cast {
                kind: sqlparser::ast::CastKind::Cast,
                expr: Box::new(placeholder),
                data_type,
                format: None,
            },
            None => placeholder,
        };
    }
    let _ = visit_expressions_mut(query, |e| {
        match e {
            Expr::BinaryOp { left, op, right } if is_comparison(op) => {
                if is_column(left) {
                    bind(right, params);
                } else if is_column(right) {
                    bind(left, params);
                }
            }
            Expr::InList { expr, list, .. } if is_column(expr) => {
                for item in list {
                    bind(item, params);
                }
            }
            Expr::Between {
                expr, low, high, ..
            } if is_column(expr) => {
                bind(low, params);
                bind(high, params);
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Whether each result row of `s` is one row of its FROM relations (no
/// DISTINCT, grouping or aggregate), so that columns can be appended
/// without changing which rows come back.
fn row_level(s: &Select, order_by: Option<&OrderBy>) -> bool {
    if s.distinct.is_some() || s.having.is_some() {
        return false;
    }
    if !matches!(&s.group_by, GroupByExpr::Expressions(exprs, _) if exprs.is_empty()) {
        return false;
    }
    let mut finder = AggregateFinder { depth: 0 };
    let aggregated = s.projection.visit(&mut finder).is_break()
        || order_by.is_some_and(|o| o.visit(&mut finder).is_break());
    !aggregated
}

/// Finds an aggregate call outside subqueries (`count(*)`, not
/// `count(*) OVER ()`, not `(SELECT count(*) ...)`).
struct AggregateFinder {
    depth: usize,
}

impl Visitor for AggregateFinder {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth += 1;
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.depth -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let (0, Expr::Function(f)) = (self.depth, expr) {
            let args = match &f.args {
                FunctionArguments::List(list) => list.args.len(),
                _ => 0,
            };
            if f.over.is_none() && functions::is_aggregate(&f.name.to_string(), args) {
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

/// The SELECT of the policy view aliased `alias` among `from`'s items.
fn view_select_mut<'f>(from: &'f mut [TableWithJoins], alias: &Ident) -> Option<&'f mut Select> {
    for twj in from {
        let factors =
            std::iter::once(&mut twj.relation).chain(twj.joins.iter_mut().map(|j| &mut j.relation));
        for factor in factors {
            match factor {
                TableFactor::Derived {
                    subquery,
                    alias: Some(a),
                    ..
                } if a.name.value == alias.value && a.name.quote_style == alias.quote_style => {
                    if let SetExpr::Select(select) = subquery.body.as_mut() {
                        return Some(select);
                    }
                }
                TableFactor::NestedJoin {
                    table_with_joins, ..
                } => {
                    if let Some(select) =
                        view_select_mut(std::slice::from_mut(table_with_joins.as_mut()), alias)
                    {
                        return Some(select);
                    }
                }
                _ => {}
            }
        }
    }
    None
}

fn push_relation(scope: &mut Scope<'_>, relation: Relation) -> Result<(), AnalysisError> {
    if scope
        .relations
        .iter()
        .any(|r| r.matches(&relation.ident.value, scope.rule))
    {
        return Err(unsupported(format!(
            "the name `{}` used for two tables in one FROM clause; give one an alias",
            relation.ident.value
        )));
    }
    scope.relations.push(relation);
    Ok(())
}

/// A column by name among relations; ambiguity is an error.
fn lookup_in(
    relations: &[Relation],
    column: &str,
    rule: NameRule,
) -> Result<Option<Lineage>, AnalysisError> {
    let mut found = relations.iter().filter_map(|r| r.column(column, rule));
    match (found.next(), found.next()) {
        (Some(l), None) => Ok(Some(l.clone())),
        (Some(_), Some(_)) => Err(AnalysisError::AmbiguousColumn {
            name: column.to_string(),
        }),
        (None, _) => Ok(None),
    }
}

/// Whether `column` is only ever an output of its own, unchanged (a direct
/// projection that reaches the result), besides uses of the `extra` kind:
/// what a column transformed after the query may be.
fn only_passed_through(
    column: &ColumnRef,
    uses: &BTreeSet<Usage>,
    outputs: &[(String, Lineage)],
    extra: Option<Usage>,
) -> bool {
    let projected = uses.contains(&Usage::Projection);
    uses.iter()
        .all(|u| *u == Usage::Projection || Some(*u) == extra)
        && (!projected
            || outputs
                .iter()
                .any(|(_, l)| l.direct.as_ref() == Some(column)))
        && !outputs
            .iter()
            .any(|(_, l)| l.direct.as_ref() != Some(column) && l.sources.contains(column))
}

/// The relation `col` or `rel.col` resolves to (the nearest scope that
/// has it), if exactly one.
fn relation_of<'s>(scope: &'s Scope<'_>, parts: &[Ident]) -> Option<&'s Relation> {
    let mut current = Some(scope);
    while let Some(s) = current {
        match parts {
            [column] => {
                let mut found = s
                    .relations
                    .iter()
                    .filter(|r| r.column(&column.value, s.rule).is_some());
                match (found.next(), found.next()) {
                    (Some(r), None) => return Some(r),
                    (Some(_), Some(_)) => return None,
                    (None, _) => {}
                }
            }
            [relation, _] => {
                if let Some(r) = s
                    .relations
                    .iter()
                    .find(|r| r.matches(&relation.value, s.rule))
                {
                    return Some(r);
                }
            }
            _ => return None,
        }
        current = s.parent;
    }
    None
}

/// Resolves `col` or `rel.col` through the scope chain.
fn lookup(
    scope: &Scope<'_>,
    parts: &[Ident],
    aliases: AliasRule,
) -> Result<Lineage, AnalysisError> {
    let display = parts
        .iter()
        .map(|p| p.value.as_str())
        .collect::<Vec<_>>()
        .join(".");
    if parts.iter().any(|p| super::is_reserved_name(&p.value)) {
        return Err(AnalysisError::UnknownColumn { name: display });
    }
    let mut current = Some(scope);
    let mut first = true;
    while let Some(s) = current {
        match parts {
            [column] => {
                let from = lookup_in(&s.relations, &column.value, s.rule)?;
                let alias = if first && aliases == AliasRule::Also {
                    s.aliases
                        .iter()
                        .find(|(a, _)| s.rule.eq(a, &column.value))
                        .map(|(_, l)| l.clone())
                } else {
                    None
                };
                match (from, alias) {
                    (Some(mut l), Some(a)) => {
                        l.merge(a);
                        return Ok(l);
                    }
                    (Some(l), None) | (None, Some(l)) => return Ok(l),
                    (None, None) => {}
                }
            }
            [relation, column] => {
                if let Some(r) = s
                    .relations
                    .iter()
                    .find(|r| r.matches(&relation.value, s.rule))
                {
                    return r.column(&column.value, s.rule).cloned().ok_or_else(|| {
                        denied_reference(scope, parts).unwrap_or(AnalysisError::UnknownColumn {
                            name: display.clone(),
                        })
                    });
                }
            }
            _ => {
                return Err(unsupported(format!(
                    "the column reference `{display}`; write `table.column` or `alias.column`"
                )))
            }
        }
        first = false;
        current = s.parent;
    }
    Err(denied_reference(scope, parts).unwrap_or(AnalysisError::UnknownColumn { name: display }))
}

/// If an unresolved reference names a column a policy view left out, the
/// denial (with its reason and policies) is the useful error.
fn denied_reference(scope: &Scope<'_>, parts: &[Ident]) -> Option<AnalysisError> {
    let (relation, column) = match parts {
        [column] => (None, column),
        [relation, column] => (Some(relation), column),
        _ => return None,
    };
    let mut current = Some(scope);
    while let Some(s) = current {
        for r in &s.relations {
            if relation.is_some_and(|name| !r.matches(&name.value, s.rule)) {
                continue;
            }
            let Some(view) = &r.denied else { continue };
            if let Some(d) = view
                .denied
                .iter()
                .find(|d| s.rule.eq(&d.name, &column.value))
            {
                return Some(AnalysisError::Denied {
                    table: view.table.clone(),
                    column: Some(d.name.clone()),
                    message: format!("column {}.{} is denied: {}", view.table, d.name, d.reason),
                    policy_ids: d.policy_ids.clone(),
                });
            }
        }
        current = s.parent;
    }
    None
}

/// The name SQLite gives an unaliased output column.
fn output_name(e: &Expr) -> String {
    match e {
        Expr::Identifier(i) => i.value.clone(),
        Expr::CompoundIdentifier(parts) => {
            parts.last().map(|p| p.value.clone()).unwrap_or_default()
        }
        other => other.to_string(),
    }
}

fn usage_phrase(u: Usage) -> &'static str {
    match u {
        Usage::Predicate => "a predicate (WHERE / HAVING / CASE)",
        Usage::Join => "a join condition",
        Usage::Group => "GROUP BY / DISTINCT ON",
        Usage::Order => "ORDER BY",
        Usage::Window => "a window (PARTITION BY / ORDER BY)",
        Usage::Projection => "the output",
        Usage::FunctionArg => "a function",
        Usage::BlindIndex => "an equality comparison (through its blind index)",
    }
}

/// `main."table"`: the base table itself. Schema-qualified, because a bare
/// name inside the rewritten statement would resolve to a caller's CTE of
/// the same name (CTE names shadow tables), letting the caller substitute
/// rows of its own under a view's masks and filters.
fn base_table_name(schema: &str, table: &str) -> ObjectName {
    ObjectName::from(vec![
        Ident::with_quote('"', schema.to_string()),
        Ident::with_quote('"', table.to_string()),
    ])
}

/// `SELECT 1 FROM t`: the skeleton of a policy view, filled in as AST.
fn skeleton() -> Result<Query, AnalysisError> {
    let statement = Parser::new(&SQLiteDialect {})
        .try_with_sql("SELECT 1 FROM t")
        .and_then(|mut p| p.parse_query())
        .map_err(|e| unsupported(format!("internal: view skeleton: {e}")))?;
    Ok(*statement)
}
