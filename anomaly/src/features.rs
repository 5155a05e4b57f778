//! What the gateway tells the detector about one governed request.
//!
//! Everything is extracted by the gateway; the crate never reads a clock, so
//! a replay of recorded features scores exactly as the live run did.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Classification of a personal-data column, as in the gateway's catalog
/// (`[classification]` of privet.toml; columns without one are not
/// reported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Classification {
    Email,
    Phone,
    Name,
    Address,
    Card,
    Dob,
    Ip,
    FreeText,
    /// An identifier, or any value delivered as a pseudonym: it links rows
    /// to a person without saying who the person is.
    Identifier,
}

impl Classification {
    pub const ALL: [Classification; 9] = [
        Classification::Email,
        Classification::Phone,
        Classification::Name,
        Classification::Address,
        Classification::Card,
        Classification::Dob,
        Classification::Ip,
        Classification::FreeText,
        Classification::Identifier,
    ];

    /// The catalog's name of the classification (`free_text`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Classification::Email => "email",
            Classification::Phone => "phone",
            Classification::Name => "name",
            Classification::Address => "address",
            Classification::Card => "card",
            Classification::Dob => "dob",
            Classification::Ip => "ip",
            Classification::FreeText => "free_text",
            Classification::Identifier => "identifier",
        }
    }

    /// Parses a catalog name; `None` for unknown names (and for the
    /// catalog's `none`, which is not personal data).
    pub fn from_name(name: &str) -> Option<Classification> {
        Classification::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether the value describes or reaches a person directly, as opposed
    /// to an identifier or pseudonym. Only these count as a bulk extraction.
    pub fn is_direct(self) -> bool {
        self != Classification::Identifier
    }

    /// Weight of the first read of such a column by a warm principal: card
    /// numbers are the worst, pseudonymous identifiers barely matter.
    pub(crate) fn novelty_weight(self) -> f64 {
        match self {
            Classification::Card => 0.75,
            Classification::Email
            | Classification::Phone
            | Classification::Name
            | Classification::Address
            | Classification::Dob => 0.6,
            Classification::Ip | Classification::FreeText => 0.55,
            Classification::Identifier => 0.3,
        }
    }
}

impl std::fmt::Display for Classification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A classified column in the result, with the classification of what the
/// caller received: a column delivered as a pseudonym is reported as
/// [`Classification::Identifier`]; a partially masked column keeps its own
/// classification; a column masked to nothing may be left out.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SensitiveColumn {
    /// Canonical `table.column`.
    pub column: String,
    pub class: Classification,
}

impl SensitiveColumn {
    pub fn new(column: impl Into<String>, class: Classification) -> Self {
        SensitiveColumn {
            column: column.into(),
            class,
        }
    }
}

/// The distinct data subjects (customers) in the result. A single subject
/// carries a keyed hash of its id, so that lookups of many different
/// subjects one at a time (enumeration) can be told from repeated lookups of
/// the same one, without the detector ever holding an id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subjects {
    /// No row about a data subject (an aggregate, a catalogue read, an
    /// insert), or unknown.
    None,
    /// Exactly one data subject: a keyed hash of its id.
    One(u64),
    /// This many distinct data subjects; values below 2 are read as 2.
    Many(u64),
}

impl Subjects {
    /// The number of distinct subjects.
    pub fn count(self) -> u64 {
        match self {
            Subjects::None => 0,
            Subjects::One(_) => 1,
            Subjects::Many(n) => n.max(2),
        }
    }

    /// `count` distinct subjects, `single` being the hash to use when there
    /// is exactly one.
    pub fn from_count(count: u64, single: u64) -> Subjects {
        match count {
            0 => Subjects::None,
            1 => Subjects::One(single),
            n => Subjects::Many(n),
        }
    }
}

/// One governed request, as seen after it ran (row and subject counts are
/// only known then).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestFeatures {
    /// The authenticated principal (API key owner).
    pub principal: String,
    /// When the request arrived, in Unix milliseconds. Requests of one
    /// principal that arrive out of order are counted at the latest time
    /// already seen for it.
    pub at_unix_ms: u64,
    /// Client address.
    pub source: IpAddr,
    /// Canonical names of the tables read or written.
    pub tables: Vec<String>,
    /// Classified columns in the result.
    pub sensitive_columns: Vec<SensitiveColumn>,
    pub rows_returned: u64,
    pub subjects: Subjects,
    /// Shape of the statement with literals removed (the gateway's SQL
    /// fingerprint), hashed.
    pub fingerprint: u64,
}

impl RequestFeatures {
    /// Whether any column describes or reaches a person directly.
    pub fn has_direct_columns(&self) -> bool {
        self.sensitive_columns.iter().any(|c| c.class.is_direct())
    }
}
