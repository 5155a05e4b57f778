//! Privet's Cedar model: the schema, the entities built from the gateway's
//! principals and catalog, policy loading and strict validation, and
//! authorization decisions that name the policies that made them.
//!
//! This crate knows nothing of HTTP, SQL or the CLI: the gateway tells it who
//! asks, for what purpose, to do what on which table or column, and gets a
//! [`Decision`] back. Deny by default: with no permitting policy the answer is
//! no, and any evaluation error is a no as well.

mod engine;
mod error;
mod model;

pub use engine::{schema, PolicyEngine, PolicySource, DEFAULT_POLICY_FILES, SCHEMA_SRC};
pub use error::{Located, PolicyError};
pub use model::{
    Action, Category, ColumnSpec, Decision, PrincipalKind, PrincipalSpec, RequestContext, Resource,
    TableSpec,
};

#[cfg(test)]
mod tests;
