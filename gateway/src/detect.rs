//! Anomaly detection in the gateway (the `anomaly` crate does the
//! scoring): a finished request's access record becomes
//! [`anomaly::RequestFeatures`]; the detector scores it and learns; the
//! configured action for the principal decides what happens to the answer.
//! The baselines persist in `DATA_DIR/anomaly-state.json`, so a restart
//! does not reset them (and does not restart the warm-up).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anomaly::{
    Action, Assessment, Classification, Detector, RequestFeatures, SensitiveColumn, StateError,
    Subjects,
};
use ring::{digest, hmac};

use crate::audit::AccessRecord;
use crate::config::{AnomalyConfig, Config};

/// The baselines' file in the data dir.
pub const STATE_FILE: &str = "anomaly-state.json";

/// The detector's verdict on one request.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub assessment: Assessment,
    /// `None`: the score reached no rung of the principal's ladder.
    pub action: Option<Action>,
}

impl Verdict {
    /// The verdict as the audit event records it.
    pub fn audit(&self) -> audit::Anomaly {
        audit::Anomaly {
            score: self.assessment.score(),
            action: self.action.map_or("none", Action::as_str).to_owned(),
            reasons: self
                .assessment
                .reasons()
                .iter()
                .map(|r| format!("{}: {}", r.kind.as_str(), r.detail))
                .collect(),
        }
    }
}

/// The gateway's detector: one lock around the state (scoring takes about
/// a microsecond), the action ladders, and the key that hashes data
/// subjects so the detector never holds an id.
pub struct Detection {
    detector: Mutex<Detector>,
    config: AnomalyConfig,
    state_path: PathBuf,
    subject_key: hmac::Key,
}

impl Detection {
    /// Loads the baselines from the data dir (none yet: a fresh detector).
    /// A damaged state file stops startup rather than silently resetting
    /// every baseline: the error says to move it aside.
    pub fn open(config: &Config, token_key: &vault::TokenKey) -> Result<Detection, StateError> {
        let state_path = config.data_dir.join(STATE_FILE);
        let detector = match Detector::load(config.anomaly.detector.clone(), &state_path) {
            Ok(d) => d,
            Err(StateError::NotFound { .. }) => Detector::new(config.anomaly.detector.clone()),
            Err(e) => return Err(e),
        };
        let derived = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &token_key.to_bytes()),
            b"privet anomaly subject hash",
        );
        Ok(Detection {
            detector: Mutex::new(detector),
            config: config.anomaly.clone(),
            state_path,
            subject_key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        })
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    /// The principal's recent risk in percent, for Cedar's
    /// `context.anomaly_score` (a request's own score is known only after
    /// it ran).
    pub fn risk_percent(&self, principal: &str, at_unix_ms: u64) -> u8 {
        if !self.config.enabled {
            return 0;
        }
        let risk = self
            .detector
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .risk(principal, at_unix_ms);
        (risk.clamp(0.0, 1.0) * 100.0).round() as u8
    }

    /// Scores a finished request and learns from it. `released_transformed`:
    /// what left the gateway was transformed per column (an export), so no
    /// column reached anyone directly, whatever the source read.
    pub fn assess(
        &self,
        principal: &str,
        source: std::net::IpAddr,
        time_us: i64,
        record: &AccessRecord,
        config: &Config,
        released_transformed: bool,
    ) -> Option<Verdict> {
        if !self.config.enabled {
            return None;
        }
        let features = self.features(
            principal,
            source,
            time_us,
            record,
            config,
            released_transformed,
        );
        let assessment = self
            .detector
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .score(&features);
        let action = self.config.actions.decide(principal, assessment.score());
        Some(Verdict { assessment, action })
    }

    fn features(
        &self,
        principal: &str,
        source: std::net::IpAddr,
        time_us: i64,
        record: &AccessRecord,
        config: &Config,
        released_transformed: bool,
    ) -> RequestFeatures {
        let mut sensitive = Vec::new();
        for table in &record.tables {
            for column in &table.columns {
                let class = classification(config, &table.table, &column.column);
                let Some(class) = class else { continue };
                // A masked or pseudonymized value no longer reaches the
                // person directly: it counts as an identifier.
                let class = match column.decision {
                    _ if released_transformed => Classification::Identifier,
                    audit::Decision::Plain | audit::Decision::Decrypted => class,
                    audit::Decision::Masked => Classification::Identifier,
                    _ => continue,
                };
                sensitive.push(SensitiveColumn::new(
                    format!("{}.{}", table.table, column.column),
                    class,
                ));
            }
        }
        let single = record.subjects.ids.first().map_or(0, |id| {
            first_u64(hmac::sign(&self.subject_key, id.as_bytes()).as_ref())
        });
        let count = if record.subjects.truncated {
            audit::MAX_SUBJECTS as u64 + 1
        } else {
            record.subjects.ids.len() as u64
        };
        RequestFeatures {
            principal: principal.to_owned(),
            at_unix_ms: u64::try_from(time_us / 1000).unwrap_or(0),
            source,
            tables: record.tables.iter().map(|t| t.table.clone()).collect(),
            sensitive_columns: sensitive,
            rows_returned: record.rows,
            subjects: Subjects::from_count(count, single),
            fingerprint: record.fingerprint.as_deref().map_or(0, |f| {
                first_u64(digest::digest(&digest::SHA256, f.as_bytes()).as_ref())
            }),
        }
    }

    /// Writes the baselines (atomically) to the data dir.
    pub fn save(&self) -> Result<(), StateError> {
        if !self.config.enabled {
            return Ok(());
        }
        // Cloned under the lock, written outside it: scoring never waits
        // on the disk.
        let snapshot = self
            .detector
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        snapshot.save(&self.state_path)
    }

    pub fn state_path(&self) -> &Path {
        &self.state_path
    }
}

/// The configured category of `table.column`, as the detector names it
/// (`none` and unclassified columns: `None`).
fn classification(config: &Config, table: &str, column: &str) -> Option<Classification> {
    let key = (table.to_owned(), column.to_owned());
    let class = config.classification.get(&key).or_else(|| {
        config
            .classification
            .get(&(table.to_ascii_lowercase(), column.to_ascii_lowercase()))
    })?;
    Classification::from_name(class.category.as_str())
}

fn first_u64(bytes: &[u8]) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[..8]);
    u64::from_le_bytes(first)
}
