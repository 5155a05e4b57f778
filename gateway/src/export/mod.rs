//! Dataset exports for ML jobs: a TOML spec names a source query, a
//! transform for every column, and the quasi-identifiers with their k. The
//! source query runs through the gateway's own pipeline as the requesting
//! principal, with `export` on the dataset permitted by Cedar and the
//! dataset named in the Cedar context (so policies can permit reads that
//! only an export makes); every column is transformed, the quasi-identifiers
//! are generalized to k-anonymity (Mondrian), and the result is written as
//! CSV or JSONL with `report.json` and a short `summary.txt`.
//!
//! Fail closed: a result column the spec gives no transform is an error,
//! never passed through; a value a transform cannot read stops the export.

pub mod aggregates;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anonymizer::kanon::{self, MondrianConfig, QuasiIdentifier, Table};
pub use anonymizer::output::Format;
use anonymizer::output::{ColumnType, DatasetWriter, OutputColumn};
use anonymizer::scrub::Scrubber;
use anonymizer::transforms::{self, BoundedNoise, DatasetPseudonymizer, Date, TimeUnit};
use serde::Deserialize;
use serde_json::Value as Json;

/// The directory of specs in a data dir, and where server-side exports go.
pub const DATASETS_DIR: &str = "datasets";
pub const EXPORTS_DIR: &str = "exports";

/// The shipped specs, written into a new demo data dir.
pub const DEMO_SPECS: &[(&str, &str)] = &[
    (
        "recommendations.toml",
        include_str!("../../../datasets/recommendations.toml"),
    ),
    (
        "marketing.toml",
        include_str!("../../../datasets/marketing.toml"),
    ),
];

/// The most rows a k-anonymous export reads (all held in memory for the
/// Mondrian step).
pub const MAX_EXPORT_ROWS: usize = 2_000_000;
/// The most rows a streamed export (no k-anonymity) reads.
pub const MAX_STREAMED_ROWS: usize = 100_000_000;

/// An export is all the source's rows or nothing: a truncated read is an
/// error, never a silently partial dataset.
pub fn check_complete(truncated: bool, max_rows: usize) -> Result<(), crate::error::RequestError> {
    if truncated {
        return Err(crate::error::RequestError::new(
            crate::error::ErrorCode::BadRequest,
            format!(
                "the source query returns more than {max_rows} rows, the most this export reads; narrow it (or split the dataset)"
            ),
        ));
    }
    Ok(())
}

/// Whether `name` can name a dataset (and a file): letters, digits, - and _.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Runs an export for `principal` inside the gateway: loads
/// `datasets_dir/NAME.toml`, checks Cedar `export` on the dataset, runs the
/// source query through the pipeline with the dataset in the Cedar
/// context (filling `record` for the request's audit event), and writes the
/// files into `out`.
pub async fn run(
    gateway: &crate::pipeline::Gateway,
    principal: &crate::config::PrincipalConfig,
    ctx: policies::RequestContext<'_>,
    dataset: &str,
    out: &Path,
    record: &mut crate::audit::AccessRecord,
) -> Result<ExportReport, crate::error::RequestError> {
    use crate::error::{ErrorCode, RequestError};
    if !valid_name(dataset) {
        return Err(RequestError::new(
            ErrorCode::BadRequest,
            format!("`{dataset}` is not a dataset name (letters, digits, - and _)"),
        ));
    }
    let path = gateway
        .config()
        .datasets_dir
        .join(format!("{dataset}.toml"));
    if !path.is_file() {
        return Err(RequestError::new(
            ErrorCode::NotFound,
            format!("no dataset `{dataset}`: no spec {}", path.display()),
        ));
    }
    let spec = DatasetSpec::load(&path)
        .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))?;
    run_spec(gateway, principal, ctx, &spec, out, record, false).await
}

/// Runs the export of `spec` for `principal` (purpose from `ctx`, which
/// must be the spec's): Cedar `export` on the dataset, the source through
/// the pipeline with the dataset in the Cedar context (filling `record`
/// for the audit event), the files into `out`. Shared by `privet export`
/// and `POST /v1/exports`.
pub async fn run_spec(
    gateway: &crate::pipeline::Gateway,
    principal: &crate::config::PrincipalConfig,
    mut ctx: policies::RequestContext<'_>,
    spec: &DatasetSpec,
    out: &Path,
    record: &mut crate::audit::AccessRecord,
    progress: bool,
) -> Result<ExportReport, crate::error::RequestError> {
    use crate::error::{ErrorCode, RequestError};
    record.sql = Some(spec.source.clone());
    if spec.purpose != ctx.purpose {
        let e = RequestError::new(
            ErrorCode::PurposeDenied,
            format!(
                "the dataset {} is exported for purpose `{}`, not `{}`",
                spec.name, spec.purpose, ctx.purpose
            ),
        );
        record.refused(&e);
        return Err(e);
    }
    ctx.dataset = Some(&spec.name);
    if let Err(e) = gateway.authorize_export(principal, ctx, &spec.name) {
        record.refused(&e);
        return Err(e);
    }
    // k-anonymity needs every row at once; everything else streams.
    let max_rows = if spec.k_anonymity.is_some() {
        MAX_EXPORT_ROWS
    } else {
        MAX_STREAMED_ROWS
    };
    let mut stream = gateway
        .query_stream(principal, ctx, &spec.source, record, max_rows)
        .await?;
    let internal = |e: ExportError| RequestError::new(ErrorCode::Internal, e.to_string());
    let columns: Vec<(String, Option<String>)> = stream
        .columns
        .iter()
        .map(|c| (c.column.name.clone(), c.column.type_name.clone()))
        .collect();
    let keys = ExportKeys {
        pseudonym_secret: &gateway.token_key().to_bytes(),
        today: today(),
        progress,
    };
    let writer = ExportWriter::new(spec, &columns, &keys, out).map_err(|e| {
        let e = RequestError::new(ErrorCode::BadRequest, e.to_string());
        record.refused(&e);
        e
    })?;
    if let Some(dp) = &spec.dp {
        // Paid before any row is read: a refused export reads nothing, and
        // a failed one has still spent what it asked for (never less).
        let epsilon = dp
            .epsilon_micro()
            .map_err(|m| RequestError::new(ErrorCode::BadRequest, m))?;
        if let Err(e) = gateway.charge_privacy_budget(principal, epsilon) {
            record.refused(&e);
            return Err(e);
        }
    }
    // Transforms and writing run on a blocking thread, fed batch by batch;
    // `None` says the rows are complete (a closed channel without it
    // abandons the export).
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Option<Vec<Vec<Json>>>>(2);
    let principal_name = principal.spec.name.clone();
    let written = tokio::task::spawn_blocking(move || {
        let mut writer = writer;
        while let Some(message) = rx.blocking_recv() {
            match message {
                Some(rows) => writer.push(&rows)?,
                None => return writer.finish(&principal_name).map(Some),
            }
        }
        writer.abandon();
        Ok(None)
    });
    let mut failed = None;
    while let Some(batch) = stream.next_batch(gateway, record).await {
        match batch {
            Ok(rows) => {
                if tx.send(Some(rows)).await.is_err() {
                    break; // the writer failed: its error is below
                }
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    if failed.is_none() {
        if let Err(e) = check_complete(stream.truncated(), max_rows) {
            failed = Some(e);
        }
    }
    if failed.is_none() {
        let _ = tx.send(None).await;
    }
    drop(tx);
    drop(stream);
    let report = written
        .await
        .map_err(|e| RequestError::new(ErrorCode::Internal, format!("export task failed: {e}")));
    if let Some(e) = failed {
        record.refused(&e);
        return Err(e);
    }
    let report = match report.and_then(|r| r.map_err(internal)) {
        Ok(Some(report)) => report,
        Ok(None) => {
            return Err(RequestError::new(
                ErrorCode::Internal,
                "the export ended before its rows were complete",
            ))
        }
        Err(e) => {
            record.refused(&e);
            return Err(e);
        }
    };
    record.rows = report.rows_written as u64;
    Ok(report)
}

/// A dataset spec (`datasets/NAME.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_purpose")]
    pub purpose: String,
    /// The SQL, run through the policy pipeline as the requesting principal.
    pub source: String,
    #[serde(default = "default_format")]
    pub format: Format,
    /// Output column (as the source query names it) → transform.
    pub columns: BTreeMap<String, String>,
    pub k_anonymity: Option<KSpec>,
    /// A utility check computed on the raw and on the anonymized rows, so
    /// the report shows what privacy cost.
    pub utility: Option<UtilitySpec>,
    /// Differentially private aggregates released with the dataset.
    pub dp: Option<aggregates::DpSpec>,
}

/// Which utility check, over which output columns.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum UtilitySpec {
    /// An item-to-item co-occurrence recommender trained on all but each
    /// user's last interaction; hit-rate@10 on those held-out ones.
    ItemCooccurrence {
        user: String,
        item: String,
        time: String,
    },
    /// Customers in the same recency/frequency/monetary segment (tertiles
    /// of the raw values) before and after anonymization.
    Rfm {
        recency: String,
        frequency: String,
        monetary: String,
    },
}

impl UtilitySpec {
    /// The columns the check reads.
    fn columns(&self) -> Vec<String> {
        match self {
            UtilitySpec::ItemCooccurrence { user, item, time } => {
                vec![user.clone(), item.clone(), time.clone()]
            }
            UtilitySpec::Rfm {
                recency,
                frequency,
                monetary,
            } => vec![recency.clone(), frequency.clone(), monetary.clone()],
        }
    }
}

fn default_format() -> Format {
    Format::Csv
}

fn default_purpose() -> String {
    "analytics".to_owned()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KSpec {
    pub quasi_identifiers: Vec<String>,
    pub k: usize,
    pub sensitive: Option<String>,
    pub l: Option<usize>,
    #[serde(default)]
    pub max_suppressed_fraction: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("dataset spec {}: {message}", path.display())]
    Spec { path: PathBuf, message: String },
    #[error("column `{column}`: {message}")]
    Column { column: String, message: String },
    #[error("k-anonymity: {0}")]
    Kanon(#[from] kanon::KanonError),
    #[error("writing {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Output(#[from] anonymizer::output::OutputError),
    #[error("differential privacy: {0}")]
    Dp(String),
}

impl DatasetSpec {
    /// Reads and checks a spec file.
    pub fn load(path: &Path) -> Result<DatasetSpec, ExportError> {
        let spec_error = |message: String| ExportError::Spec {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| spec_error(e.to_string()))?;
        let spec: DatasetSpec = toml::from_str(&text).map_err(|e| spec_error(e.to_string()))?;
        if !valid_name(&spec.name) {
            return Err(spec_error(format!(
                "`name = \"{}\"`: use letters, digits, - and _",
                spec.name
            )));
        }
        for (column, transform) in &spec.columns {
            Transform::parse(transform)
                .map_err(|m| spec_error(format!("columns.{column}: {m}")))?;
        }
        if let Some(dp) = &spec.dp {
            dp.epsilon_micro()
                .map_err(|m| spec_error(format!("dp: {m}")))?;
        }
        if let Some(k) = &spec.k_anonymity {
            for qi in k.quasi_identifiers.iter().chain(&k.sensitive) {
                match spec.columns.get(qi).map(String::as_str) {
                    None | Some("drop") => {
                        return Err(spec_error(format!(
                            "k_anonymity names `{qi}`, which is not an output column"
                        )))
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(spec)
    }
}

/// One column's transform.
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    Keep,
    Drop,
    Null,
    Redact,
    Pseudonym,
    Range(i64),
    Month,
    Year,
    AgeBand(i32),
    Zip(usize),
    Hour,
    Day,
    Noise(u64),
    Scrub,
    /// One of the policy engine's masks (`mask:email_partial`, ...),
    /// applied by the same code.
    Mask(crate::masks::Mask),
}

impl Transform {
    /// `keep`, `drop`, `null`, `redact`, `pseudonym`, `range:N`, `month`,
    /// `year`, `age_band:N`, `zip:N`, `hour`, `day`, `noise:N`, `scrub`,
    /// `mask:NAME` (a policy mask: `email_partial`, `phone_last4`, ...).
    pub fn parse(text: &str) -> Result<Transform, String> {
        let (name, arg) = match text.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (text, None),
        };
        let number = |what: &str| -> Result<i64, String> {
            arg.and_then(|a| a.parse::<i64>().ok())
                .filter(|n| *n > 0)
                .ok_or_else(|| format!("`{text}`: {what} needs a positive number, e.g. `{name}:5`"))
        };
        Ok(match name {
            "keep" => Transform::Keep,
            "drop" => Transform::Drop,
            "null" => Transform::Null,
            "redact" => Transform::Redact,
            "pseudonym" => Transform::Pseudonym,
            "range" => Transform::Range(number("range")?),
            "month" => Transform::Month,
            "year" => Transform::Year,
            "age_band" => Transform::AgeBand(i32::try_from(number("age_band")?).map_err(|e| e.to_string())?),
            "zip" => Transform::Zip(usize::try_from(number("zip")?).map_err(|e| e.to_string())?),
            "hour" => Transform::Hour,
            "day" => Transform::Day,
            "noise" => Transform::Noise(u64::try_from(number("noise")?).map_err(|e| e.to_string())?),
            "scrub" => Transform::Scrub,
            "mask" => {
                let name = arg.unwrap_or_default();
                match name.parse::<crate::masks::Mask>() {
                    Ok(crate::masks::Mask::Pseudonym) => {
                        return Err("`mask:pseudonym`: use `pseudonym`, whose tokens are keyed per dataset".into())
                    }
                    Ok(mask) => Transform::Mask(mask),
                    Err(e) => return Err(format!("`{text}`: {e}")),
                }
            }
            other => {
                return Err(format!(
                    "unknown transform `{other}`; use keep, drop, null, redact, pseudonym, range:N, month, year, age_band:N, zip:N, hour, day, noise:N, scrub or mask:NAME"
                ))
            }
        })
    }
}

/// Today's date (UTC), for age bands.
pub fn today() -> Date {
    let days = crate::audit::now_us().div_euclid(86_400_000_000);
    let (year, month, day) = crate::civil::civil_from_days(days);
    Date {
        year: i32::try_from(year).unwrap_or(i32::MAX),
        month,
        day,
    }
}

/// What an export needs besides the rows.
pub struct ExportKeys<'a> {
    /// The export secret the per-dataset pseudonym key is derived from.
    pub pseudonym_secret: &'a [u8; 32],
    /// "Today", for age bands.
    pub today: Date,
    /// Show a progress bar on the terminal (the CLI).
    pub progress: bool,
}

/// The outcome of an export, as written to `report.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportReport {
    pub dataset: String,
    pub principal: String,
    pub purpose: String,
    pub format: String,
    pub file: String,
    pub rows_read: usize,
    pub rows_written: usize,
    pub columns: Vec<(String, String)>,
    pub k_anonymity: Option<KReport>,
    pub utility: Option<Json>,
    /// DP aggregates released with the dataset (also in `aggregates.json`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregates: Option<Vec<aggregates::AggregateRelease>>,
}

/// [`kanon::KanonReport`], for `report.json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KReport {
    pub k_requested: usize,
    pub k_achieved: usize,
    pub l_achieved: Option<usize>,
    pub rows_suppressed: usize,
    pub classes: usize,
    /// Normalized certainty penalty in [0, 1] (0: nothing generalized).
    pub ncp: f64,
    pub discernibility: u64,
}

impl From<kanon::KanonReport> for KReport {
    fn from(r: kanon::KanonReport) -> Self {
        KReport {
            k_requested: r.k_requested,
            k_achieved: r.k_achieved,
            l_achieved: r.l_achieved,
            rows_suppressed: r.rows_suppressed,
            classes: r.partitions,
            ncp: r.ncp,
            discernibility: r.discernibility,
        }
    }
}

/// Transforms `rows` (JSON values as the pipeline returned them, in
/// `names` order, all text-typed) per the spec, applies k-anonymity, and
/// writes the files into `out`. Returns the report. (An [`ExportWriter`]
/// fed in one batch.)
pub fn write_dataset(
    spec: &DatasetSpec,
    principal: &str,
    names: &[String],
    rows: &[Vec<Json>],
    keys: &ExportKeys<'_>,
    out: &Path,
) -> Result<ExportReport, ExportError> {
    let columns: Vec<(String, Option<String>)> = names.iter().map(|n| (n.clone(), None)).collect();
    let mut writer = ExportWriter::new(spec, &columns, keys, out)?;
    writer.push(rows)?;
    writer.finish(principal)
}

/// Where transformed rows go: straight into the file, or (k-anonymity
/// needs them all) into memory until the end.
enum Rows {
    Streamed(DatasetWriter),
    Held(Vec<Vec<Option<String>>>),
}

/// The raw and released values of the columns a utility check reads.
struct UtilityColumns {
    names: Vec<String>,
    raw_at: Vec<Option<usize>>,
    released_at: Vec<Option<usize>>,
    raw: Vec<Vec<Option<String>>>,
    /// Streamed exports only: held exports read the released table.
    released: Vec<Vec<Option<String>>>,
}

/// Transforms an export's rows per its spec as they arrive, batch by
/// batch, and writes them: streamed straight to the output file, so memory
/// stays bounded, except when the spec asks for k-anonymity, which holds
/// the transformed rows until [`ExportWriter::finish`]. The utility check
/// keeps its own columns; DP aggregates keep one running sum per group.
pub struct ExportWriter {
    spec: DatasetSpec,
    names: Vec<String>,
    plan: Vec<Transform>,
    kept: Vec<usize>,
    out_columns: Vec<OutputColumn>,
    pseudonyms: DatasetPseudonymizer,
    scrubber: Scrubber,
    noise: HashMap<u64, BoundedNoise>,
    today: Date,
    rows: Rows,
    utility: Option<UtilityColumns>,
    aggregates: Option<aggregates::Aggregator>,
    rows_read: usize,
    bar: indicatif::ProgressBar,
    out: PathBuf,
    file_name: String,
}

/// The output type of a column: numbers stay numbers where the transform
/// keeps them so (Parquet INT64/DOUBLE, JSON numbers); everything else,
/// and every quasi-identifier (Mondrian may turn it into a range), is text.
fn column_type(
    transform: &Transform,
    source_type: Option<&str>,
    quasi_identifier: bool,
) -> ColumnType {
    if quasi_identifier {
        return ColumnType::Text;
    }
    let source = source_type.unwrap_or("").to_ascii_lowercase();
    let integer = matches!(
        source.as_str(),
        "integer" | "int" | "int2" | "int4" | "int8" | "bigint" | "smallint"
    );
    let float = matches!(
        source.as_str(),
        "real" | "float4" | "float8" | "double precision" | "double"
    );
    match transform {
        Transform::Keep | Transform::Noise(_) if integer => ColumnType::Integer,
        Transform::Keep if float => ColumnType::Float,
        _ => ColumnType::Text,
    }
}

impl ExportWriter {
    /// Checks the spec against the source's `columns` (name, type) and
    /// opens the output in `out`.
    pub fn new(
        spec: &DatasetSpec,
        columns: &[(String, Option<String>)],
        keys: &ExportKeys<'_>,
        out: &Path,
    ) -> Result<ExportWriter, ExportError> {
        let names: Vec<String> = columns.iter().map(|(n, _)| n.clone()).collect();
        let mut plan = Vec::new();
        for name in &names {
            let transform = spec.columns.get(name).ok_or_else(|| ExportError::Column {
                column: name.clone(),
                message: "the source query returns it but the spec gives it no transform; add `keep`, `drop` or another".into(),
            })?;
            let t = Transform::parse(transform).map_err(|m| ExportError::Column {
                column: name.clone(),
                message: m,
            })?;
            plan.push(t);
        }
        for column in spec.columns.keys() {
            if !names.contains(column) {
                return Err(ExportError::Column {
                    column: column.clone(),
                    message: "the spec names it but the source query does not return it".into(),
                });
            }
        }
        let noise: HashMap<u64, BoundedNoise> = plan
            .iter()
            .filter_map(|t| match t {
                Transform::Noise(b) => Some(*b),
                _ => None,
            })
            .map(|b| BoundedNoise::new(b).map(|n| (b, n)))
            .collect::<Result<_, _>>()
            .map_err(|e| ExportError::Column {
                column: String::new(),
                message: e.to_string(),
            })?;
        let kept: Vec<usize> = (0..names.len())
            .filter(|i| plan[*i] != Transform::Drop)
            .collect();
        let quasi = |name: &str| {
            spec.k_anonymity
                .as_ref()
                .is_some_and(|k| k.quasi_identifiers.iter().any(|q| q == name))
        };
        let out_columns: Vec<OutputColumn> = kept
            .iter()
            .map(|&i| OutputColumn {
                name: names[i].clone(),
                column_type: column_type(&plan[i], columns[i].1.as_deref(), quasi(&names[i])),
            })
            .collect();
        let out_names: Vec<String> = out_columns.iter().map(|c| c.name.clone()).collect();
        let utility = spec.utility.as_ref().map(|u| {
            let wanted = u.columns();
            UtilityColumns {
                raw_at: wanted
                    .iter()
                    .map(|w| names.iter().position(|n| n == w))
                    .collect(),
                released_at: wanted
                    .iter()
                    .map(|w| out_names.iter().position(|n| n == w))
                    .collect(),
                names: wanted,
                raw: Vec::new(),
                released: Vec::new(),
            }
        });
        let aggregates = match &spec.dp {
            Some(dp) => {
                Some(aggregates::Aggregator::new(dp, &names, &out_names).map_err(ExportError::Dp)?)
            }
            None => None,
        };
        std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
        let file_name = format!("{}.{}", spec.name, spec.format.extension());
        let rows = if spec.k_anonymity.is_some() {
            Rows::Held(Vec::new())
        } else {
            Rows::Streamed(DatasetWriter::create(
                &out.join(&file_name),
                spec.format,
                &out_columns,
            )?)
        };
        let bar = if keys.progress {
            let bar = indicatif::ProgressBar::new_spinner();
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{spinner} {msg}: {pos} rows ({per_sec}, {elapsed})",
            ) {
                bar.set_style(style);
            }
            bar.set_message(format!("export {}", spec.name));
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        Ok(ExportWriter {
            pseudonyms: DatasetPseudonymizer::new(keys.pseudonym_secret, &spec.name),
            spec: spec.clone(),
            names,
            plan,
            kept,
            out_columns,
            scrubber: Scrubber::new(),
            noise,
            today: keys.today,
            rows,
            utility,
            aggregates,
            rows_read: 0,
            bar,
            out: out.to_path_buf(),
            file_name,
        })
    }

    /// Transforms and writes (or holds) a batch of source rows.
    pub fn push(&mut self, rows: &[Vec<Json>]) -> Result<(), ExportError> {
        for row in rows {
            let released = self.transform_row(row)?;
            if let Some(u) = &mut self.utility {
                u.raw.push(
                    u.raw_at
                        .iter()
                        .map(|at| at.and_then(|i| row.get(i).and_then(json_text)))
                        .collect(),
                );
                if matches!(self.rows, Rows::Streamed(_)) {
                    u.released.push(
                        u.released_at
                            .iter()
                            .map(|at| at.and_then(|i| released[i].clone()))
                            .collect(),
                    );
                }
            }
            if let Some(a) = &mut self.aggregates {
                a.add(row, &released).map_err(ExportError::Dp)?;
            }
            match &mut self.rows {
                Rows::Streamed(w) => w.write_row(&released)?,
                Rows::Held(table) => table.push(released),
            }
            self.rows_read += 1;
        }
        self.bar.set_position(self.rows_read as u64);
        Ok(())
    }

    fn transform_row(&self, row: &[Json]) -> Result<Vec<Option<String>>, ExportError> {
        let mut out_row = Vec::with_capacity(self.kept.len());
        for &i in &self.kept {
            // Borrowed: most transforms read the value and make a new one.
            let value: Option<std::borrow::Cow<'_, str>> = match row.get(i) {
                None | Some(Json::Null) => None,
                Some(Json::String(s)) => Some(s.as_str().into()),
                Some(other) => Some(other.to_string().into()),
            };
            let column_error = |e: transforms::TransformError| ExportError::Column {
                column: self.names[i].clone(),
                message: e.to_string(),
            };
            let transformed = match (&self.plan[i], value) {
                (_, None) | (Transform::Null, _) => None,
                (Transform::Keep, v) => v.map(std::borrow::Cow::into_owned),
                (Transform::Redact, Some(_)) => Some("[redacted]".to_owned()),
                (Transform::Pseudonym, Some(v)) => Some(self.pseudonyms.token(&v)),
                (Transform::Range(w), Some(v)) => {
                    Some(transforms::numeric_range(&v, *w).map_err(column_error)?)
                }
                (Transform::Month, Some(v)) => {
                    Some(transforms::date_to_month(&v).map_err(column_error)?)
                }
                (Transform::Year, Some(v)) => {
                    Some(transforms::date_to_year(&v).map_err(column_error)?)
                }
                (Transform::AgeBand(w), Some(v)) => {
                    Some(transforms::age_band(&v, self.today, *w).map_err(column_error)?)
                }
                (Transform::Zip(n), Some(v)) => {
                    Some(transforms::zip_prefix(&v, *n).map_err(column_error)?)
                }
                (Transform::Hour, Some(v)) => {
                    Some(transforms::truncate_time(&v, TimeUnit::Hour).map_err(column_error)?)
                }
                (Transform::Day, Some(v)) => {
                    Some(transforms::truncate_time(&v, TimeUnit::Day).map_err(column_error)?)
                }
                (Transform::Noise(b), Some(v)) => match self.noise.get(b) {
                    Some(n) => Some(n.apply(&v).map_err(column_error)?),
                    None => None,
                },
                (Transform::Scrub, Some(v)) => Some(self.scrubber.scrub(&v, &[])),
                (Transform::Mask(m), Some(v)) => crate::masks::apply_unkeyed(*m, &v),
                (Transform::Drop, _) => None,
            };
            out_row.push(transformed);
        }
        Ok(out_row)
    }

    /// Gives up: the partial output is removed (dropping the writer does
    /// that), so nothing looks complete.
    pub fn abandon(self) {
        self.bar.finish_and_clear();
    }

    /// Applies k-anonymity (held rows), writes what is left, runs the
    /// utility check, releases the DP aggregates, and writes `report.json`
    /// and `summary.txt`.
    pub fn finish(self, principal: &str) -> Result<ExportReport, ExportError> {
        self.bar.finish_and_clear();
        let out_names: Vec<String> = self.out_columns.iter().map(|c| c.name.clone()).collect();
        let path = self.out.join(&self.file_name);
        let (rows_written, k_report, utility) = match self.rows {
            Rows::Streamed(writer) => {
                let written = writer.finish()?;
                let utility =
                    self.utility
                        .as_ref()
                        .zip(self.spec.utility.as_ref())
                        .map(|(u, spec)| {
                            let column =
                                |rows: &[Vec<Option<String>>], name: &str| -> Vec<Option<String>> {
                                    let at = u.names.iter().position(|n| n == name);
                                    rows.iter().map(|r| at.and_then(|i| r[i].clone())).collect()
                                };
                            utility_check(spec, &|n| column(&u.raw, n), &|n| column(&u.released, n))
                        });
                (written.rows as usize, None, utility)
            }
            Rows::Held(mut table) => {
                // Which source row each output row came from (suppression removes some).
                let mut source_rows: Vec<usize> = (0..table.len()).collect();
                let k_report = match &self.spec.k_anonymity {
                    Some(k) => Some(KReport::from(k_anonymize(
                        k,
                        &out_names,
                        &mut table,
                        &mut source_rows,
                    )?)),
                    None => None,
                };
                let utility =
                    self.utility
                        .as_ref()
                        .zip(self.spec.utility.as_ref())
                        .map(|(u, spec)| {
                            let raw = |name: &str| -> Vec<Option<String>> {
                                let at = u.names.iter().position(|n| n == name);
                                source_rows
                                    .iter()
                                    .map(|&r| at.and_then(|i| u.raw[r][i].clone()))
                                    .collect()
                            };
                            let released = |name: &str| -> Vec<Option<String>> {
                                let at = out_names.iter().position(|n| n == name);
                                table
                                    .iter()
                                    .map(|row| at.and_then(|i| row[i].clone()))
                                    .collect()
                            };
                            utility_check(spec, &raw, &released)
                        });
                let mut writer = DatasetWriter::create(&path, self.spec.format, &self.out_columns)?;
                for row in &table {
                    writer.write_row(row)?;
                }
                writer.finish()?;
                (table.len(), k_report, utility)
            }
        };
        let aggregates = match self.aggregates {
            Some(a) => {
                let released = a
                    .release(&anonymizer::dp::Sampler::new())
                    .map_err(|e| ExportError::Dp(e.to_string()))?;
                let path = self.out.join("aggregates.json");
                let json = serde_json::to_vec_pretty(&released).map_err(|e| io(&path, e.into()))?;
                write_synced(&path, &json)?;
                Some(released)
            }
            None => None,
        };
        let report = ExportReport {
            dataset: self.spec.name.clone(),
            principal: principal.to_owned(),
            purpose: self.spec.purpose.clone(),
            format: self.spec.format.extension().to_owned(),
            file: self.file_name.clone(),
            rows_read: self.rows_read,
            rows_written,
            columns: self
                .names
                .iter()
                .map(|n| {
                    (
                        n.clone(),
                        self.spec.columns.get(n).cloned().unwrap_or_default(),
                    )
                })
                .collect(),
            k_anonymity: k_report,
            utility,
            aggregates,
        };
        let report_path = self.out.join("report.json");
        let json = serde_json::to_vec_pretty(&report).map_err(|e| io(&report_path, e.into()))?;
        write_synced(&report_path, &json)?;
        let summary_path = self.out.join("summary.txt");
        write_synced(&summary_path, summary(&report).as_bytes())?;
        Ok(report)
    }
}

/// Writes a small file and syncs it, so a report never claims an export
/// the disk does not hold.
fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).map_err(|e| io(path, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| io(path, e))
}

fn io(path: &Path, source: std::io::Error) -> ExportError {
    ExportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Generalizes the quasi-identifier columns of `table` in place to
/// k-anonymous classes (Mondrian over the values' sorted ranks: ordinal),
/// and removes suppressed rows.
fn k_anonymize(
    spec: &KSpec,
    names: &[String],
    table: &mut Vec<Vec<Option<String>>>,
    source_rows: &mut Vec<usize>,
) -> Result<kanon::KanonReport, ExportError> {
    let index = |name: &str| names.iter().position(|n| n == name);
    let qi_cols: Vec<usize> = spec
        .quasi_identifiers
        .iter()
        .filter_map(|q| index(q))
        .collect();
    // Each QI's distinct values, sorted, as ranks (NULL sorts first).
    let mut dictionaries: Vec<Vec<Option<String>>> = Vec::new();
    let mut columns = Vec::new();
    for &c in &qi_cols {
        let mut values: Vec<Option<String>> = table.iter().map(|r| r[c].clone()).collect();
        values.sort();
        values.dedup();
        let rank: HashMap<&Option<String>, i64> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (v, i as i64))
            .collect();
        columns.push(table.iter().map(|r| rank[&r[c]]).collect::<Vec<i64>>());
        dictionaries.push(values);
    }
    let qis = spec
        .quasi_identifiers
        .iter()
        .map(|q| QuasiIdentifier::ordinal(q.clone()))
        .collect();
    let mut data = Table::new(qis, columns)?;
    if let (Some(sensitive), Some(_)) = (&spec.sensitive, spec.l) {
        if let Some(c) = index(sensitive) {
            let mut codes = HashMap::new();
            let values: Vec<u32> = table
                .iter()
                .map(|r| {
                    let n = codes.len() as u32;
                    *codes.entry(r[c].clone()).or_insert(n)
                })
                .collect();
            data = data.with_sensitive(sensitive.clone(), values)?;
        }
    }
    let mut config =
        MondrianConfig::new(spec.k).with_max_suppressed_fraction(spec.max_suppressed_fraction);
    if let Some(l) = spec.l {
        config = config.with_l(l);
    }
    let result = kanon::mondrian(&data, &config)?;
    for partition in &result.partitions {
        let labels: Vec<Option<String>> = partition
            .ranges
            .iter()
            .zip(&dictionaries)
            .map(|((lo, hi), dict)| {
                let at = |i: i64| dict.get(i as usize).cloned().flatten();
                if lo == hi {
                    at(*lo)
                } else {
                    Some(format!(
                        "[{}..{}]",
                        at(*lo).unwrap_or_default(),
                        at(*hi).unwrap_or_default()
                    ))
                }
            })
            .collect();
        for &row in &partition.rows {
            for (&c, label) in qi_cols.iter().zip(&labels) {
                table[row as usize][c] = label.clone();
            }
        }
    }
    let suppressed: std::collections::HashSet<u32> = result.suppressed.iter().copied().collect();
    let mut i = 0u32;
    table.retain(|_| {
        let keep = !suppressed.contains(&i);
        i += 1;
        keep
    });
    let mut i = 0u32;
    source_rows.retain(|_| {
        let keep = !suppressed.contains(&i);
        i += 1;
        keep
    });
    Ok(result.report)
}

/// A JSON cell as text (`None` for NULL).
fn json_text(value: &Json) -> Option<String> {
    match value {
        Json::Null => None,
        Json::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Runs a utility check on the raw and the anonymized columns.
fn utility_check(
    spec: &UtilitySpec,
    raw: &dyn Fn(&str) -> Vec<Option<String>>,
    anonymized: &dyn Fn(&str) -> Vec<Option<String>>,
) -> Json {
    match spec {
        UtilitySpec::ItemCooccurrence { user, item, time } => {
            let (raw_rate, users) = hit_rate_at_10(&raw(user), &raw(item), &raw(time));
            let (anon_rate, _) =
                hit_rate_at_10(&anonymized(user), &anonymized(item), &anonymized(time));
            serde_json::json!({
                "check": "item-to-item co-occurrence recommender, last interaction of each user held out",
                "users_evaluated": users,
                "hit_rate_at_10_raw": raw_rate,
                "hit_rate_at_10_anonymized": anon_rate,
            })
        }
        UtilitySpec::Rfm {
            recency,
            frequency,
            monetary,
        } => {
            let (same, total) = rfm_agreement(
                [&raw(recency), &raw(frequency), &raw(monetary)],
                [
                    &anonymized(recency),
                    &anonymized(frequency),
                    &anonymized(monetary),
                ],
            );
            serde_json::json!({
                "check": "RFM segment (tertiles of the raw recency, frequency, monetary value) raw vs anonymized",
                "customers": total,
                "same_segment": same,
                "same_segment_fraction": if total == 0 { 0.0 } else { same as f64 / total as f64 },
            })
        }
    }
}

/// Hit-rate@10 of an item co-occurrence recommender: for each user with at
/// least two interactions the latest (by `time`, ties by row order) is held
/// out; item pairs co-occurring in the remaining histories are counted;
/// a user's top 10 items by summed co-occurrence with their history are
/// recommended. Returns (rate, users evaluated).
fn hit_rate_at_10(
    users: &[Option<String>],
    items: &[Option<String>],
    times: &[Option<String>],
) -> (f64, usize) {
    // Items as dense ids: the counting below runs millions of times.
    let mut ids: HashMap<&str, u32> = HashMap::new();
    let mut names: Vec<&str> = Vec::new();
    // Per user: (time, row, item) of each interaction.
    type History<'a> = Vec<(&'a str, usize, u32)>;
    let mut histories: HashMap<&str, History<'_>> = HashMap::new();
    for (row, ((u, i), t)) in users.iter().zip(items).zip(times).enumerate() {
        if let (Some(u), Some(i)) = (u, i) {
            let id = *ids.entry(i.as_str()).or_insert_with(|| {
                names.push(i.as_str());
                (names.len() - 1) as u32
            });
            histories
                .entry(u.as_str())
                .or_default()
                .push((t.as_deref().unwrap_or(""), row, id));
        }
    }
    // Users in a fixed order, so the result does not depend on hashing.
    let mut histories: Vec<(&str, History<'_>)> = histories.into_iter().collect();
    histories.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut held_out: Vec<(usize, u32)> = Vec::new();
    let mut training: Vec<Vec<u32>> = Vec::new();
    for (_, mut history) in histories {
        history.sort();
        if history.len() >= 2 {
            if let Some((_, _, last)) = history.pop() {
                held_out.push((training.len(), last));
            }
        }
        let mut items: Vec<u32> = history.iter().map(|(_, _, i)| *i).collect();
        items.sort_unstable();
        items.dedup();
        training.push(items);
    }
    // Pair counts: a dense matrix for catalogues of up to 4,096 items
    // (64 MiB at most), a map beyond.
    let n_items = names.len();
    let mut co: Vec<Vec<(u32, u32)>> = vec![Vec::new(); n_items];
    if n_items <= 4096 {
        let mut matrix = vec![0u32; n_items * n_items];
        for items in &training {
            for &a in items {
                let row = &mut matrix[a as usize * n_items..(a as usize + 1) * n_items];
                for &b in items {
                    row[b as usize] += 1;
                }
            }
        }
        for (a, row) in matrix.chunks(n_items.max(1)).enumerate() {
            co[a] = row
                .iter()
                .enumerate()
                .filter(|&(b, n)| *n > 0 && b != a)
                .map(|(b, n)| (b as u32, *n))
                .collect();
        }
    } else {
        let mut pairs: HashMap<(u32, u32), u32> = HashMap::new();
        for items in &training {
            for &a in items {
                for &b in items {
                    if a != b {
                        *pairs.entry((a, b)).or_default() += 1;
                    }
                }
            }
        }
        for ((a, b), n) in pairs {
            co[a as usize].push((b, n));
        }
    }
    let mut scores = vec![0u32; names.len()];
    let mut touched: Vec<u32> = Vec::new();
    let mut hits = 0usize;
    for &(user, target) in &held_out {
        for &a in &training[user] {
            for &(b, n) in &co[a as usize] {
                if scores[b as usize] == 0 {
                    touched.push(b);
                }
                scores[b as usize] += n;
            }
        }
        // Top 10 by score, ties by item name.
        touched.sort_unstable_by(|x, y| {
            scores[*y as usize]
                .cmp(&scores[*x as usize])
                .then(names[*x as usize].cmp(names[*y as usize]))
        });
        if touched.iter().take(10).any(|&i| i == target) {
            hits += 1;
        }
        for &b in &touched {
            scores[b as usize] = 0;
        }
        touched.clear();
    }
    let n = held_out.len();
    (if n == 0 { 0.0 } else { hits as f64 / n as f64 }, n)
}

/// A value as a number for ordering: a number, the midpoint of a `lo-hi`
/// range, or (for dates and months) the digits of `YYYY-MM[-DD]` as
/// YYYYMM.DD.
fn ordinal(value: &str) -> Option<f64> {
    if let Ok(v) = value.parse::<f64>() {
        return Some(v);
    }
    if let Some((lo, hi)) = value.split_once('-').filter(|(lo, _)| !lo.is_empty()) {
        // `2025-06` splits like a range too: a range ends above its start.
        if let (Ok(lo), Ok(hi)) = (lo.parse::<f64>(), hi.parse::<f64>()) {
            if hi >= lo {
                return Some((lo + hi) / 2.0);
            }
        }
    }
    let date = value.get(..7)?;
    let year: f64 = date.get(..4)?.parse().ok()?;
    let month: f64 = date.get(5..7)?.parse().ok()?;
    let day: f64 = value
        .get(8..10)
        .and_then(|d| d.parse().ok())
        .unwrap_or(15.0);
    Some(year * 100.0 + month + day / 100.0)
}

/// How many rows fall in the same (R, F, M) tertile segment raw and
/// anonymized; tertile bounds come from the raw values.
fn rfm_agreement(
    raw: [&Vec<Option<String>>; 3],
    anonymized: [&Vec<Option<String>>; 3],
) -> (usize, usize) {
    let bounds: Vec<(f64, f64)> = raw
        .iter()
        .map(|column| {
            let mut v: Vec<f64> = column.iter().flatten().filter_map(|s| ordinal(s)).collect();
            v.sort_by(f64::total_cmp);
            let at = |q: usize| v.get(v.len() * q / 3).copied().unwrap_or(0.0);
            (at(1), at(2))
        })
        .collect();
    let segment = |columns: [&Vec<Option<String>>; 3], row: usize| -> Vec<u8> {
        columns
            .iter()
            .zip(&bounds)
            .map(
                |(c, (t1, t2))| match c.get(row).cloned().flatten().and_then(|s| ordinal(&s)) {
                    None => 0,
                    Some(v) if v < *t1 => 1,
                    Some(v) if v < *t2 => 2,
                    Some(_) => 3,
                },
            )
            .collect()
    };
    let n = raw[0].len().min(anonymized[0].len());
    let same = (0..n)
        .filter(|&r| segment(raw, r) == segment(anonymized, r))
        .count();
    (same, n)
}

fn summary(report: &ExportReport) -> String {
    let mut s = format!(
        "Dataset {} for {} ({}): {} of {} rows written to {}.\n",
        report.dataset,
        report.principal,
        report.purpose,
        report.rows_written,
        report.rows_read,
        report.file
    );
    for (column, transform) in &report.columns {
        s.push_str(&format!("  {column}: {transform}\n"));
    }
    if let Some(k) = &report.k_anonymity {
        s.push_str(&format!(
            "k-anonymity: k = {} requested, {} achieved; {} rows suppressed; {} classes; NCP {:.4}; discernibility {}.\n",
            k.k_requested, k.k_achieved, k.rows_suppressed, k.classes, k.ncp, k.discernibility
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms_parse_and_unknown_ones_are_refused() {
        assert_eq!(
            Transform::parse("age_band:5").unwrap(),
            Transform::AgeBand(5)
        );
        assert_eq!(Transform::parse("zip:3").unwrap(), Transform::Zip(3));
        assert!(Transform::parse("zip").is_err());
        assert!(Transform::parse("range:-1").is_err());
        assert!(Transform::parse("hash")
            .unwrap_err()
            .contains("unknown transform"));
        assert_eq!(
            Transform::parse("mask:email_partial").unwrap(),
            Transform::Mask(crate::masks::Mask::EmailPartial)
        );
        assert!(Transform::parse("mask:pseudonym").is_err());
        assert!(Transform::parse("mask:nope")
            .unwrap_err()
            .contains("unknown mask"));
    }

    #[test]
    fn the_recommender_check_counts_held_out_hits() {
        let s = |v: &str| Some(v.to_owned());
        // u1 and u2: a, b, then c (held out); u3: a, then b (held out).
        // Training histories [a, b], [a, b], [a] give co(a, b) = 2, so u3
        // gets b recommended (a hit); u1 and u2 get a and b, never c.
        let users = [
            s("u1"),
            s("u1"),
            s("u1"),
            s("u2"),
            s("u2"),
            s("u2"),
            s("u3"),
            s("u3"),
        ];
        let items = [
            s("a"),
            s("b"),
            s("c"),
            s("a"),
            s("b"),
            s("c"),
            s("a"),
            s("b"),
        ];
        let times = [
            s("1"),
            s("2"),
            s("3"),
            s("1"),
            s("2"),
            s("3"),
            s("1"),
            s("2"),
        ];
        let (rate, n) = hit_rate_at_10(&users, &items, &times);
        assert_eq!(n, 3);
        assert!((rate - 1.0 / 3.0).abs() < 1e-9, "{rate}");
        // Other times change what is held out: u1 and u2 hold out b
        // (training [a, c]), u3 holds out a (training [b], no pairs); b
        // co-occurs with nothing in training: no hits at all.
        let times = [
            s("1"),
            s("3"),
            s("2"),
            s("1"),
            s("3"),
            s("2"),
            s("2"),
            s("1"),
        ];
        assert_eq!(hit_rate_at_10(&users, &items, &times), (0.0, 3));
    }

    #[test]
    fn rfm_agreement_compares_segments_of_generalized_values() {
        let col = |v: &[&str]| v.iter().map(|x| Some(x.to_string())).collect::<Vec<_>>();
        let r = col(&["2025-01-10", "2025-06-10", "2025-11-10"]);
        let f = col(&["1", "5", "9"]);
        let m = col(&["1000", "50000", "90000"]);
        let ar = col(&["2025-01", "2025-06", "2025-11"]);
        let am = col(&["0-4999", "50000-54999", "90000-94999"]);
        assert_eq!(rfm_agreement([&r, &f, &m], [&ar, &f, &am]), (3, 3));
        let shifted = col(&["2025-11", "2025-06", "2025-01"]);
        assert_eq!(rfm_agreement([&r, &f, &m], [&shifted, &f, &am]), (1, 3));
    }

    #[test]
    fn every_column_needs_a_transform_and_k_holds_on_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let spec: DatasetSpec = toml::from_str(
            r#"
name = "t"
source = "SELECT ..."
[columns]
id = "pseudonym"
age = "range:10"
zip = "zip:3"
secret = "drop"
[k_anonymity]
quasi_identifiers = ["age", "zip"]
k = 3
"#,
        )
        .unwrap();
        let names: Vec<String> = ["id", "age", "zip", "secret"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let rows: Vec<Vec<Json>> = (0..40)
            .map(|i| {
                vec![
                    Json::from(i),
                    Json::from(20 + (i * 7) % 50),
                    Json::from(format!("{}", 10000 + (i * 131) % 900)),
                    Json::from("s3cret"),
                ]
            })
            .collect();
        let keys = ExportKeys {
            pseudonym_secret: &[1; 32],
            today: Date::parse("2026-11-26").unwrap(),
            progress: false,
        };
        let report = write_dataset(&spec, "ml-team", &names, &rows, &keys, dir.path()).unwrap();
        let k = report.k_anonymity.unwrap();
        assert!(k.k_achieved >= 3);
        let text = std::fs::read_to_string(dir.path().join("t.csv")).unwrap();
        assert!(!text.contains("s3cret"));
        let mut classes: HashMap<String, usize> = HashMap::new();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split(',').collect();
            *classes
                .entry(format!("{}|{}", fields[1], fields[2]))
                .or_default() += 1;
        }
        assert!(classes.values().all(|n| *n >= 3), "{classes:?}");
        // A column without a transform stops the export.
        let mut names2 = names.clone();
        names2.push("extra".into());
        let rows2: Vec<Vec<Json>> = rows
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.push(Json::from(1));
                r
            })
            .collect();
        assert!(matches!(
            write_dataset(&spec, "ml-team", &names2, &rows2, &keys, dir.path()),
            Err(ExportError::Column { .. })
        ));
    }
}
