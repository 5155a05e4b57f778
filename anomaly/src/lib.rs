//! Privet's anomaly detection: scores each governed request in [0, 1], with
//! reasons, against what its principal usually does.
//!
//! The gateway extracts [`RequestFeatures`] from a request after it ran and
//! calls [`Detector::score`]; the [`Assessment`] goes into the audit event,
//! [`Detector::risk`] (recent scores, decaying) into Cedar's
//! `context.anomaly_score` for the next request, and [`ActionPolicies`]
//! turn a score into an [`Action`] (log, alert, throttle, block). Nothing
//! here knows HTTP, SQL or Cedar, and nothing reads a clock: time comes
//! with the features, so replays are fast and reproducible.
//!
//! - [`features`]: what the gateway reports per request.
//! - [`Detector`] (detector.rs): one baseline per principal, scoring,
//!   atomic JSON persistence ([`StateError`]).
//! - baseline.rs: what a baseline learns online (log-scale volume per query
//!   shape, known tables, columns, shapes and addresses, hour-of-day
//!   histogram, rate profiles, single-subject lookups), the warm-up, and
//!   the rules, one per [`AnomalyKind`]. Requests scoring at or above
//!   `learn_below` do not teach it; every set and window is capped.
//! - stats.rs: the bounded running statistics it is built from.
//! - [`DetectorConfig`]: warm-up, learning threshold, hard-rule limits.
//! - [`action`]: [`Action`] ladders per principal.
//! - [`evaluate`]: synthetic workload of the demo principals with injected
//!   attacks; recall, precision, false-positive rate
//!   (`cargo run --release -p anomaly --example evaluate -- --seed 1 --full`).

pub mod action;
mod assessment;
mod baseline;
mod config;
mod detector;
mod error;
pub mod evaluate;
pub mod features;
mod rng;
mod stats;

pub use action::{Action, ActionPolicies, ActionPolicy, ActionRule};
pub use assessment::{AnomalyKind, Assessment, Reason};
pub use config::{DetectorConfig, InvalidThreshold, Threshold};
pub use detector::{Detector, STATE_VERSION};
pub use error::StateError;
pub use features::{Classification, RequestFeatures, SensitiveColumn, Subjects};
