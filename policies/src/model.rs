//! What the gateway tells the policy engine about the world: principals from
//! the config, tables and columns from the governed database's catalog.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Whether a principal is a machine or a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    Service,
    User,
}

impl PrincipalKind {
    /// The Cedar entity type of this kind of principal.
    pub(crate) fn entity_type(self) -> &'static str {
        match self {
            PrincipalKind::Service => "Privet::Service",
            PrincipalKind::User => "Privet::User",
        }
    }
}

/// A principal as the policy engine sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrincipalSpec {
    pub name: String,
    pub kind: PrincipalKind,
    /// Cedar `Privet::Role` parents.
    pub roles: Vec<String>,
    /// Become Cedar entity tags (`principal.getTag("region")`).
    pub attributes: BTreeMap<String, String>,
}

/// What kind of personal data a column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Email,
    Phone,
    Name,
    Address,
    Card,
    Dob,
    Ip,
    FreeText,
    Identifier,
    None,
}

impl Category {
    pub const ALL: [Category; 10] = [
        Category::Email,
        Category::Phone,
        Category::Name,
        Category::Address,
        Category::Card,
        Category::Dob,
        Category::Ip,
        Category::FreeText,
        Category::Identifier,
        Category::None,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Email => "email",
            Category::Phone => "phone",
            Category::Name => "name",
            Category::Address => "address",
            Category::Card => "card",
            Category::Dob => "dob",
            Category::Ip => "ip",
            Category::FreeText => "free_text",
            Category::Identifier => "identifier",
            Category::None => "none",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Category::ALL.iter().map(|c| c.as_str()).collect();
                format!(
                    "unknown category `{s}`, expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// A column of a governed table with its classification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: String,
    pub category: Category,
    pub encrypted: bool,
}

/// A governed table: becomes a `Privet::Table` entity, its columns
/// `Privet::Column` entities with the table as parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub name: String,
    pub columns: Vec<ColumnSpec>,
}

/// The actions of the Cedar schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Read,
    ReadMasked,
    Decrypt,
    Filter,
    /// INSERT rows into a table; per column, write that column.
    Insert,
    /// UPDATE a table's rows; per column, change that column.
    Update,
    Export,
    AuditRead,
    Admin,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::ReadMasked => "read_masked",
            Action::Decrypt => "decrypt",
            Action::Filter => "filter",
            Action::Insert => "insert",
            Action::Update => "update",
            Action::Export => "export",
            Action::AuditRead => "audit_read",
            Action::Admin => "admin",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an action is performed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    Table(&'a str),
    Column { table: &'a str, column: &'a str },
    Dataset(&'a str),
    AuditLog,
    Gateway,
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Table(t) => write!(f, "table {t}"),
            Resource::Column { table, column } => write!(f, "column {table}.{column}"),
            Resource::Dataset(d) => write!(f, "dataset {d}"),
            Resource::AuditLog => f.write_str("the audit log"),
            Resource::Gateway => f.write_str("the gateway"),
        }
    }
}

/// The request context passed to Cedar as `context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestContext<'a> {
    pub purpose: &'a str,
    /// Hour of day, UTC, 0-23.
    pub hour: u8,
    pub source_ip: std::net::IpAddr,
    /// 0 (normal) to 100.
    pub anomaly_score: u8,
    /// The dataset an export reads for (`context.dataset` in Cedar), so
    /// policies can permit reads that only an authorized export makes.
    pub dataset: Option<&'a str>,
}

impl<'a> RequestContext<'a> {
    /// A request from this machine at noon UTC with no anomaly: for tools
    /// that ask "what would happen" and for tests.
    pub fn local(purpose: &'a str) -> RequestContext<'a> {
        RequestContext {
            purpose,
            hour: 12,
            source_ip: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
            anomaly_score: 0,
            dataset: None,
        }
    }
}

/// An authorization decision and the policies that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// For an allow: the permit policies that matched. For a deny: the forbid
    /// policies that matched; empty means nothing permitted it (deny by default).
    pub policy_ids: Vec<String>,
    /// Evaluation errors. Any error makes the decision a deny (fail closed),
    /// even where Cedar would have skipped the failing policy.
    pub errors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_round_trips_through_its_name() {
        for c in Category::ALL {
            assert_eq!(c.as_str().parse::<Category>(), Ok(c));
        }
        let err = "mail".parse::<Category>().unwrap_err();
        assert!(err.contains("unknown category `mail`"), "{err}");
        assert!(err.contains("free_text"), "{err}");
    }
}
