//! `privet policy test FILE`: checks that principals get exactly the
//! outcome a test file expects — allowed with these transforms, or denied
//! naming this table, column and policy — using explain (nothing runs).
//!
//! ```toml
//! [[case]]
//! principal = "marketing-service"
//! purpose = "marketing"
//! sql = "SELECT id, email FROM customers"
//! expect = "allowed"
//! transforms = { email = "mask:email_partial", id = "none" }
//!
//! [[case]]
//! principal = "recs-service"
//! purpose = "recommendation"
//! sql = "SELECT email FROM customers"
//! expect = "denied"
//! code = "policy_denied"
//! table = "customers"
//! policy = "recs-no-customers-or-payments"
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::pipeline::Gateway;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestFile {
    #[serde(rename = "case", default)]
    pub cases: Vec<TestCase>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Expect {
    Allowed,
    Denied,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub principal: String,
    pub purpose: String,
    pub sql: String,
    pub expect: Expect,
    /// For allowed: output column → transform (`mask:NAME`, or `none`).
    #[serde(default)]
    pub transforms: BTreeMap<String, String>,
    /// For denied: the error code (e.g. `policy_denied`).
    pub code: Option<String>,
    pub table: Option<String>,
    pub column: Option<String>,
    /// A policy id the denial must name.
    pub policy: Option<String>,
}

/// One case's outcome: `None` passed, `Some(why)` failed.
pub fn run_case(gateway: &Gateway, case: &TestCase) -> Option<String> {
    let Some(principal) = gateway.principal(&case.principal) else {
        return Some(format!("unknown principal `{}`", case.principal));
    };
    let ctx = policies::RequestContext::local(&case.purpose);
    let e = gateway.explain(&principal, ctx, &case.sql);
    let mut failures = Vec::new();
    match (case.expect, &e.error) {
        (Expect::Allowed, Some(err)) => failures.push(format!(
            "expected allowed, got {}: {}",
            err.code, err.message
        )),
        (Expect::Denied, None) => failures.push("expected denied, but it is allowed".to_string()),
        (Expect::Allowed, None) => {
            for (name, want) in &case.transforms {
                match e.outputs.iter().find(|o| &o.name == name) {
                    None => failures.push(format!("no output column `{name}`")),
                    Some(o) => {
                        let got = o.transform.as_deref().unwrap_or("none");
                        if got != want {
                            failures.push(format!(
                                "column `{name}`: expected transform {want}, got {got}"
                            ));
                        }
                    }
                }
            }
        }
        (Expect::Denied, Some(err)) => {
            if let Some(code) = &case.code {
                if code != err.code {
                    failures.push(format!(
                        "expected code {code}, got {}: {}",
                        err.code, err.message
                    ));
                }
            }
            if case.table.is_some() && case.table != err.table {
                failures.push(format!(
                    "expected table {:?}, got {:?}",
                    case.table, err.table
                ));
            }
            if case.column.is_some() && case.column != err.column {
                failures.push(format!(
                    "expected column {:?}, got {:?}",
                    case.column, err.column
                ));
            }
            if let Some(policy) = &case.policy {
                if !err.policy_ids.contains(policy) {
                    failures.push(format!(
                        "expected policy {policy} among {:?}",
                        err.policy_ids
                    ));
                }
            }
        }
    }
    (!failures.is_empty()).then(|| failures.join("; "))
}
