//! `POST /v1/explain` and `privet explain`: what the gateway would do with a
//! query and why — every table and column decision with the policies behind
//! it, the masks and row filters, the lineage of each output, and the
//! rewritten SQL — without running it.

use policies::RequestContext;
use serde::Serialize;

use crate::config::PrincipalConfig;
use crate::error::RequestError;
use crate::pipeline::Gateway;
use crate::sql::{AnalyzedQuery, TableView, Usage};

#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub principal: String,
    pub purpose: String,
    /// Whether the query would run.
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ExplainedError>,
    /// The policy view of each table read.
    pub tables: Vec<ExplainedTable>,
    /// Every use of every column.
    pub uses: Vec<ExplainedUse>,
    pub outputs: Vec<ExplainedOutput>,
    /// What the database would run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rewritten_sql: Option<String>,
    /// Bound parameters of the row filters (principal attributes).
    pub params: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainedError {
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    pub policy_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainedTable {
    pub table: String,
    /// Policies permitting the table read.
    pub policy_ids: Vec<String>,
    pub row_filter: Option<ExplainedFilter>,
    pub columns: Vec<ExplainedColumn>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainedFilter {
    pub sql: String,
    pub policy_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainedColumn {
    pub name: String,
    /// plain, decrypted, masked or denied.
    pub decision: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// May be used in predicates, joins, grouping, ordering, windows.
    pub may_filter: bool,
    pub policy_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainedUse {
    pub column: String,
    pub uses: Vec<Usage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExplainedOutput {
    pub name: String,
    pub sources: Vec<String>,
    pub direct: Option<String>,
    pub transform: Option<String>,
}

fn explain_table(view: &TableView) -> ExplainedTable {
    let mut columns: Vec<ExplainedColumn> = view
        .columns
        .iter()
        .map(|c| ExplainedColumn {
            name: c.name.clone(),
            // Encrypted columns are decrypted after the query; a mask, if
            // any, applies to the plaintext.
            decision: match (c.mask.is_some(), c.encrypted) {
                (true, _) => "masked",
                (false, true) => "decrypted",
                (false, false) => "plain",
            },
            mask: c.mask.map(|m| m.name().to_string()),
            may_filter: c.may_filter,
            policy_ids: c.policy_ids.clone(),
            reason: None,
        })
        .collect();
    columns.extend(view.denied.iter().map(|d| ExplainedColumn {
        name: d.name.clone(),
        decision: "denied",
        mask: None,
        may_filter: false,
        policy_ids: d.policy_ids.clone(),
        reason: Some(d.reason.clone()),
    }));
    ExplainedTable {
        table: view.table.clone(),
        policy_ids: view.policy_ids.clone(),
        row_filter: view.row_filter.as_ref().map(|f| ExplainedFilter {
            sql: f.predicate.to_string(),
            policy_ids: f.policy_ids.clone(),
        }),
        columns,
    }
}

pub(crate) fn explain(
    gateway: &Gateway,
    principal: &PrincipalConfig,
    ctx: RequestContext<'_>,
    analyzed: Result<std::sync::Arc<AnalyzedQuery>, RequestError>,
) -> Explanation {
    let mut explanation = Explanation {
        principal: principal.spec.name.clone(),
        purpose: ctx.purpose.to_string(),
        allowed: false,
        error: None,
        tables: Vec::new(),
        uses: Vec::new(),
        outputs: Vec::new(),
        rewritten_sql: None,
        params: Vec::new(),
    };
    match analyzed {
        Ok(q) => {
            let r = &q.resolved;
            explanation.allowed = true;
            explanation.tables = r.views.values().map(|v| explain_table(v)).collect();
            explanation.uses = r
                .uses
                .iter()
                .map(|(c, u)| ExplainedUse {
                    column: c.to_string(),
                    uses: u.iter().copied().collect(),
                })
                .collect();
            explanation.outputs = r
                .outputs
                .iter()
                .zip(r.transforms())
                .map(|(o, transform)| ExplainedOutput {
                    name: o.name.clone(),
                    sources: o.lineage.sources.iter().map(ToString::to_string).collect(),
                    direct: o.lineage.direct.as_ref().map(ToString::to_string),
                    transform,
                })
                .collect();
            explanation.params = r.params.clone();
            explanation.rewritten_sql = Some(q.sql.clone());
        }
        Err(e) => {
            // Show the view of the table the refusal concerns, when the
            // table itself may be read: that is usually the "why".
            if let Some(info) = e.table.as_deref().and_then(|t| gateway.catalog().table(t)) {
                if let Ok(view) = gateway.policies().view(principal, ctx, info) {
                    explanation.tables.push(explain_table(&view));
                }
            }
            explanation.error = Some(ExplainedError {
                code: e.code.as_str(),
                message: e.message,
                table: e.table,
                column: e.column,
                policy_ids: e.policy_ids,
            });
        }
    }
    explanation
}
