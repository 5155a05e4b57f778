//! [`DetectorConfig`] and the validated [`Threshold`].

use std::num::{NonZeroU32, NonZeroU64};

use serde::{Deserialize, Serialize};

/// A score threshold: a finite number in [0, 1].
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Threshold(f64);

/// A threshold outside [0, 1] (or not a number).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("threshold {0} is not a number in [0, 1]")]
pub struct InvalidThreshold(pub f64);

impl Threshold {
    /// 0.5: the default alert level, and the level from which a request no
    /// longer teaches the baseline.
    pub const HALF: Threshold = Threshold(0.5);

    /// For constants: out of range fails the build.
    pub(crate) const fn constant(value: f64) -> Threshold {
        assert!(value >= 0.0 && value <= 1.0);
        Threshold(value)
    }

    pub fn new(value: f64) -> Result<Threshold, InvalidThreshold> {
        if (0.0..=1.0).contains(&value) {
            Ok(Threshold(value))
        } else {
            Err(InvalidThreshold(value))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Threshold {
    type Error = InvalidThreshold;
    fn try_from(value: f64) -> Result<Self, Self::Error> {
        Threshold::new(value)
    }
}

impl From<Threshold> for f64 {
    fn from(t: Threshold) -> f64 {
        t.0
    }
}

/// Settings of the [`crate::Detector`]. Everything else (window lengths,
/// rule weights) is fixed and documented on [`crate::AnomalyKind`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectorConfig {
    /// A principal is warming up until it has made this many requests...
    pub warmup_requests: u32,
    /// ...and this many hours have passed since its first one. While it
    /// warms up, the detector learns and only the hard rules can fire.
    pub warmup_hours: u32,
    /// Requests scoring at or above this do not update the baseline, so an
    /// attacker cannot quickly teach the detector that an attack is normal.
    /// Windows (rates, addresses, lookups) count every request regardless.
    pub learn_below: Threshold,
    /// Hard rule, also during warm-up: a result with this many rows of
    /// directly identifying columns (not identifiers or pseudonyms) is a
    /// bulk extraction whatever the baseline.
    pub bulk_rows: NonZeroU64,
    /// Hard rule, also during warm-up: this many distinct source addresses
    /// for one principal within an hour.
    pub max_addresses_per_hour: NonZeroU32,
    /// A table, column, query shape or address seen only in flagged
    /// requests is accepted as normal once it has kept appearing for this
    /// many hours (at least 3 sightings): legitimate change stops alerting
    /// after a day; an attacker needs a day of alerts to get there.
    pub accept_after_hours: u32,
}

// Evaluated at compile time.
const DEFAULT_BULK_ROWS: NonZeroU64 = NonZeroU64::new(10_000).unwrap();
const DEFAULT_MAX_ADDRESSES: NonZeroU32 = NonZeroU32::new(10).unwrap();

impl Default for DetectorConfig {
    fn default() -> Self {
        DetectorConfig {
            warmup_requests: 20,
            warmup_hours: 24,
            learn_below: Threshold::HALF,
            bulk_rows: DEFAULT_BULK_ROWS,
            max_addresses_per_hour: DEFAULT_MAX_ADDRESSES,
            accept_after_hours: 24,
        }
    }
}

impl DetectorConfig {
    pub(crate) fn warmup_ms(&self) -> u64 {
        u64::from(self.warmup_hours) * 3_600_000
    }

    pub(crate) fn accept_after_ms(&self) -> u64 {
        u64::from(self.accept_after_hours) * 3_600_000
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_outside_the_unit_interval_are_rejected() {
        assert!(Threshold::new(0.0).is_ok());
        assert!(Threshold::new(1.0).is_ok());
        assert!(Threshold::new(1.01).is_err());
        assert!(Threshold::new(-0.1).is_err());
        assert!(Threshold::new(f64::NAN).is_err());
        let err = serde_json::from_str::<DetectorConfig>(r#"{"learn_below": 2.0}"#);
        assert!(err.is_err());
    }

    #[test]
    fn config_defaults_fill_missing_fields_and_unknown_fields_are_errors() {
        let config: DetectorConfig = serde_json::from_str(r#"{"warmup_requests": 5}"#).unwrap();
        assert_eq!(config.warmup_requests, 5);
        assert_eq!(config.warmup_hours, DetectorConfig::default().warmup_hours);
        assert!(serde_json::from_str::<DetectorConfig>(r#"{"warmup": 5}"#).is_err());
        assert!(serde_json::from_str::<DetectorConfig>(r#"{"bulk_rows": 0}"#).is_err());
    }
}
