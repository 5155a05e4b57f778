//! [`Detector`]: the per-principal baselines, scoring, and persistence.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use serde::de::Error as _;
use serde::{Deserialize, Serialize, Serializer};

use crate::assessment::Assessment;
use crate::baseline::Baseline;
use crate::config::DetectorConfig;
use crate::error::StateError;
use crate::features::RequestFeatures;
use crate::stats::{sorted, FastMap};

/// Format version of the state file; bump on any change to the per-principal
/// baseline (baseline.rs).
pub const STATE_VERSION: u32 = 1;

/// Scores requests against what each principal usually does, and learns.
///
/// Not thread-safe by itself (`score` takes `&mut self`): the gateway keeps
/// it behind a mutex; a call costs a few microseconds.
#[derive(Debug, Clone)]
pub struct Detector {
    config: DetectorConfig,
    principals: FastMap<String, Baseline>,
}

impl Detector {
    pub fn new(config: DetectorConfig) -> Detector {
        Detector {
            config,
            principals: FastMap::default(),
        }
    }

    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// Scores `request` against its principal's baseline, then learns from
    /// it unless it scored at or above `learn_below` (see
    /// [`DetectorConfig`]). A principal seen for the first time starts its
    /// warm-up.
    pub fn score(&mut self, request: &RequestFeatures) -> Assessment {
        let principal = request.principal.as_str();
        if !self.principals.contains_key(principal) {
            self.principals
                .insert(principal.to_owned(), Baseline::new(request.at_unix_ms));
        }
        match self.principals.get_mut(principal) {
            Some(baseline) => baseline.score(&self.config, request),
            // Inserted above.
            None => Assessment::new(Vec::new(), true),
        }
    }

    /// The principal's recent risk at `at_unix_ms`: the highest recent
    /// score, halving every 10 minutes. Row counts are only known after a
    /// request ran, so this is what the gateway can put into Cedar's
    /// `context.anomaly_score` (and throttle on) before running the next
    /// one. 0 for an unknown principal.
    pub fn risk(&self, principal: &str, at_unix_ms: u64) -> f64 {
        self.principals
            .get(principal)
            .map_or(0.0, |b| b.risk(at_unix_ms))
    }

    /// Whether the principal is past its warm-up at `at_unix_ms`.
    pub fn is_warm(&self, principal: &str, at_unix_ms: u64) -> bool {
        self.principals
            .get(principal)
            .is_some_and(|b| b.is_warm(&self.config, at_unix_ms))
    }

    /// Principals with a baseline, in no particular order.
    pub fn principals(&self) -> impl Iterator<Item = &str> {
        self.principals.keys().map(String::as_str)
    }

    /// A detector holding only `principal`'s baseline (or none), for
    /// replaying what-ifs without touching this one.
    pub(crate) fn fork(&self, principal: &str) -> Detector {
        let mut principals = FastMap::default();
        if let Some(b) = self.principals.get(principal) {
            principals.insert(principal.to_owned(), b.clone());
        }
        Detector {
            config: self.config.clone(),
            principals,
        }
    }

    /// Writes the state to `path` atomically: a temporary file in the same
    /// directory, synced, then renamed over `path`, so a crash leaves the
    /// old state or the new one, never half of one.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let tmp = temp_path(path);
        let written = self.write_to(&tmp).and_then(|()| fs::rename(&tmp, path));
        if let Err(source) = written {
            let _ = fs::remove_file(&tmp);
            return Err(StateError::Write {
                path: path.to_owned(),
                source,
            });
        }
        sync_dir(path).map_err(|source| StateError::Write {
            path: path.to_owned(),
            source,
        })
    }

    fn write_to(&self, tmp: &Path) -> io::Result<()> {
        let file = fs::File::create(tmp)?;
        let mut out = io::BufWriter::new(file);
        let state = StateOut {
            version: STATE_VERSION,
            principals: &self.principals,
        };
        serde_json::to_writer(&mut out, &state).map_err(io::Error::other)?;
        out.flush()?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()
    }

    /// Loads a state written by [`Detector::save`], with `config` (the
    /// config is not part of the state: it comes from privet.toml).
    pub fn load(config: DetectorConfig, path: &Path) -> Result<Detector, StateError> {
        let bytes = fs::read(path).map_err(|source| match source.kind() {
            io::ErrorKind::NotFound => StateError::NotFound {
                path: path.to_owned(),
            },
            _ => StateError::Read {
                path: path.to_owned(),
                source,
            },
        })?;
        let corrupt = |source| StateError::Corrupt {
            path: path.to_owned(),
            source,
        };
        let version: VersionOnly = serde_json::from_slice(&bytes).map_err(corrupt)?;
        if version.version != STATE_VERSION {
            return Err(StateError::Version {
                path: path.to_owned(),
                found: version.version,
                expected: STATE_VERSION,
            });
        }
        let state: StateIn = serde_json::from_slice(&bytes).map_err(corrupt)?;
        let mut principals = FastMap::default();
        for (name, baseline) in state.principals {
            baseline
                .check()
                .map_err(|what| corrupt(serde_json::Error::custom(format!("{name}: {what}"))))?;
            principals.insert(name, baseline);
        }
        Ok(Detector { config, principals })
    }
}

#[derive(Serialize)]
struct StateOut<'a> {
    version: u32,
    #[serde(serialize_with = "sorted_ref")]
    principals: &'a FastMap<String, Baseline>,
}

fn sorted_ref<S: Serializer>(
    map: &&FastMap<String, Baseline>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    sorted::serialize(map, serializer)
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StateIn {
    #[serde(rename = "version")]
    _version: u32,
    principals: Vec<(String, Baseline)>,
}

/// `dir/.name.tmp`: same directory, so the rename is atomic.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "anomaly-state".into());
    path.with_file_name(format!(".{name}.tmp"))
}

/// Makes the rename durable.
#[cfg(unix)]
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_path: &Path) -> io::Result<()> {
    Ok(())
}
