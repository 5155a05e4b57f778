//! The result of scoring one request: [`Assessment`], its [`Reason`]s and
//! their [`AnomalyKind`].

use serde::{Deserialize, Serialize};

/// Why a request looks anomalous. The snake_case name ([`as_str`],
/// serde) is stable: it goes into audit events and alerts.
///
/// Weights given below are the most a reason can weigh; most rules ramp up
/// to it with the size of the deviation. "Warm" means after the principal's
/// warm-up; the two hard rules also fire during it.
///
/// [`as_str`]: AnomalyKind::as_str
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Many more rows (or distinct subjects) than this principal's high
    /// water mark for the query shape, with directly identifying columns
    /// (not identifiers or pseudonyms), from 3x above it to full weight
    /// (0.85) at 8x; at least 100 rows. Hard rule: `bulk_rows` rows.
    BulkExtraction,
    /// Many different data subjects looked up one at a time within 10
    /// minutes, compared with this principal's usual count (0.8).
    Enumeration,
    /// First read of a classified column by a warm principal, weighted by
    /// classification (card 0.75 ... identifier 0.3).
    NewSensitiveColumn,
    /// First read of a table by a warm principal (0.55).
    NewTable,
    /// A request at an hour (within an hour either side) where the
    /// principal made fewer than 0.2% of its requests (0.65 at none).
    OffHours,
    /// Addresses not yet known for this principal used within an hour:
    /// 0.4 at 3, 0.8 from 4. Hard rule: `max_addresses_per_hour`
    /// distinct addresses.
    ManyAddresses,
    /// More requests in the last 5 minutes, hour or day than this
    /// principal makes at this time of day: more than 3 standard deviations
    /// and twice the usual, full weight (0.8) at 5 and 4x.
    RateSpike,
    /// A query shape (fingerprint) this principal never used; up to 0.35
    /// for a principal whose shapes rarely change, less for one that often
    /// writes new queries.
    NovelQueryShape,
    /// Like bulk extraction but without directly identifying columns
    /// (0.45): large pseudonymous reads are worth a note, not an alert.
    UnusualVolume,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 9] = [
        AnomalyKind::BulkExtraction,
        AnomalyKind::Enumeration,
        AnomalyKind::NewSensitiveColumn,
        AnomalyKind::NewTable,
        AnomalyKind::OffHours,
        AnomalyKind::ManyAddresses,
        AnomalyKind::RateSpike,
        AnomalyKind::NovelQueryShape,
        AnomalyKind::UnusualVolume,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::BulkExtraction => "bulk_extraction",
            AnomalyKind::Enumeration => "enumeration",
            AnomalyKind::NewSensitiveColumn => "new_sensitive_column",
            AnomalyKind::NewTable => "new_table",
            AnomalyKind::OffHours => "off_hours",
            AnomalyKind::ManyAddresses => "many_addresses",
            AnomalyKind::RateSpike => "rate_spike",
            AnomalyKind::NovelQueryShape => "novel_query_shape",
            AnomalyKind::UnusualVolume => "unusual_volume",
        }
    }
}

impl std::fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One contribution to a score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reason {
    pub kind: AnomalyKind,
    /// For humans, e.g. "returned 48,120 rows with email; this query shape
    /// usually returns at most ~1,200".
    pub detail: String,
    /// In (0, 1].
    pub weight: f64,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.detail)
    }
}

/// The score of one request and why.
///
/// The score combines the reasons' weights as independent evidence,
/// `1 - (1 - w1)(1 - w2)...`: one strong reason is enough, several weak
/// ones add up, and the result stays in [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    score: f64,
    reasons: Vec<Reason>,
    warming_up: bool,
}

impl Assessment {
    pub(crate) fn new(mut reasons: Vec<Reason>, warming_up: bool) -> Assessment {
        reasons.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        let keep: f64 = reasons.iter().map(|r| 1.0 - r.weight).product();
        Assessment {
            score: (1.0 - keep).clamp(0.0, 1.0),
            reasons,
            warming_up,
        }
    }

    /// In [0, 1].
    pub fn score(&self) -> f64 {
        self.score
    }

    /// The score as Cedar's `context.anomaly_score` (0 to 100).
    pub fn percent(&self) -> u8 {
        // In [0, 100] by construction.
        (self.score * 100.0).round().clamp(0.0, 100.0) as u8
    }

    /// Heaviest first.
    pub fn reasons(&self) -> &[Reason] {
        &self.reasons
    }

    /// The heaviest reason.
    pub fn top(&self) -> Option<&Reason> {
        self.reasons.first()
    }

    /// The principal was still warming up: only hard rules could fire.
    pub fn warming_up(&self) -> bool {
        self.warming_up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(kind: AnomalyKind, weight: f64) -> Reason {
        Reason {
            kind,
            detail: String::new(),
            weight,
        }
    }

    #[test]
    fn weights_combine_as_independent_evidence() {
        let none = Assessment::new(Vec::new(), false);
        assert_eq!(none.score(), 0.0);
        assert_eq!(none.percent(), 0);
        let two = Assessment::new(
            vec![
                reason(AnomalyKind::NovelQueryShape, 0.3),
                reason(AnomalyKind::NewTable, 0.5),
            ],
            false,
        );
        assert!((two.score() - 0.65).abs() < 1e-12);
        assert_eq!(two.percent(), 65);
        assert_eq!(two.top().map(|r| r.kind), Some(AnomalyKind::NewTable));
    }

    #[test]
    fn kind_names_are_stable_snake_case() {
        for kind in AnomalyKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        assert_eq!(AnomalyKind::ManyAddresses.as_str(), "many_addresses");
    }
}
