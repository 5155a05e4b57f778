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

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anonymizer::kanon::{self, MondrianConfig, QuasiIdentifier, Table};
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

/// The most rows an export reads (held in memory for k-anonymity).
pub const MAX_EXPORT_ROWS: usize = 2_000_000;

/// An export is all the source's rows or nothing: a truncated read is an
/// error, never a silently partial dataset.
pub fn check_complete(
    answer: &crate::pipeline::QueryResult,
) -> Result<(), crate::error::RequestError> {
    if answer.truncated {
        return Err(crate::error::RequestError::new(
            crate::error::ErrorCode::BadRequest,
            format!(
                "the source query returns more than {MAX_EXPORT_ROWS} rows, the most an export reads; narrow it (or split the dataset)"
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
    let answer = gateway
        .query_up_to(principal, ctx, &spec.source, record, MAX_EXPORT_ROWS)
        .await?;
    check_complete(&answer)?;
    let names: Vec<String> = answer
        .columns
        .iter()
        .map(|c| c.column.name.clone())
        .collect();
    let secret = gateway.token_key().to_bytes();
    let keys = ExportKeys {
        pseudonym_secret: &secret,
        today: today(),
        progress,
    };
    let report = write_dataset(spec, &principal.spec.name, &names, &answer.rows, &keys, out)
        .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))?;
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
    #[serde(default)]
    pub format: Format,
    /// Output column (as the source query names it) → transform.
    pub columns: BTreeMap<String, String>,
    pub k_anonymity: Option<KSpec>,
    /// A utility check computed on the raw and on the anonymized rows, so
    /// the report shows what privacy cost.
    pub utility: Option<UtilitySpec>,
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

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Csv,
    Jsonl,
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
}

impl Transform {
    /// `keep`, `drop`, `null`, `redact`, `pseudonym`, `range:N`, `month`,
    /// `year`, `age_band:N`, `zip:N`, `hour`, `day`, `noise:N`, `scrub`.
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
            other => {
                return Err(format!(
                    "unknown transform `{other}`; use keep, drop, null, redact, pseudonym, range:N, month, year, age_band:N, zip:N, hour, day, noise:N or scrub"
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
/// `names` order) per the spec, applies k-anonymity, and writes the files
/// into `out`. Returns the report.
pub fn write_dataset(
    spec: &DatasetSpec,
    principal: &str,
    names: &[String],
    rows: &[Vec<Json>],
    keys: &ExportKeys<'_>,
    out: &Path,
) -> Result<ExportReport, ExportError> {
    let mut plan = Vec::new();
    for name in names {
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
    let pseudonyms = DatasetPseudonymizer::new(keys.pseudonym_secret, &spec.name);
    let scrubber = Scrubber::new();
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
    let mut table: Vec<Vec<Option<String>>> = Vec::with_capacity(rows.len());
    let bar = if keys.progress {
        let bar = indicatif::ProgressBar::new(rows.len() as u64);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} rows ({per_sec}, eta {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(format!("export {}", spec.name));
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    for (n, row) in rows.iter().enumerate() {
        // Per row would cost more than the transforms.
        if n % 4096 == 0 {
            bar.set_position(n as u64);
        }
        let mut out_row = Vec::with_capacity(kept.len());
        for &i in &kept {
            let value = match row.get(i) {
                None | Some(Json::Null) => None,
                Some(Json::String(s)) => Some(s.clone()),
                Some(other) => Some(other.to_string()),
            };
            let column_error = |e: transforms::TransformError| ExportError::Column {
                column: names[i].clone(),
                message: e.to_string(),
            };
            let transformed = match (&plan[i], value) {
                (_, None) | (Transform::Null, _) => None,
                (Transform::Keep, v) => v,
                (Transform::Redact, Some(_)) => Some("[redacted]".to_owned()),
                (Transform::Pseudonym, Some(v)) => Some(pseudonyms.token(&v)),
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
                    Some(transforms::age_band(&v, keys.today, *w).map_err(column_error)?)
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
                (Transform::Noise(b), Some(v)) => match noise.get(b) {
                    Some(n) => Some(n.apply(&v).map_err(column_error)?),
                    None => None,
                },
                (Transform::Scrub, Some(v)) => Some(scrubber.scrub(&v, &[])),
                (Transform::Drop, _) => None,
            };
            out_row.push(transformed);
        }
        table.push(out_row);
    }
    bar.finish_and_clear();
    let out_names: Vec<String> = kept.iter().map(|&i| names[i].clone()).collect();
    // Which source row each output row came from (suppression removes some).
    let mut source_rows: Vec<usize> = (0..table.len()).collect();
    let k_report = match &spec.k_anonymity {
        Some(k) => Some(KReport::from(k_anonymize(
            k,
            &out_names,
            &mut table,
            &mut source_rows,
        )?)),
        None => None,
    };
    let utility = spec.utility.as_ref().map(|u| {
        let raw = |name: &str| -> Vec<Option<String>> {
            let at = names.iter().position(|n| n == name);
            source_rows
                .iter()
                .map(|&r| at.and_then(|i| json_text(&rows[r][i])))
                .collect()
        };
        let anonymized = |name: &str| -> Vec<Option<String>> {
            let at = out_names.iter().position(|n| n == name);
            table
                .iter()
                .map(|row| at.and_then(|i| row[i].clone()))
                .collect()
        };
        utility_check(u, &raw, &anonymized)
    });

    std::fs::create_dir_all(out).map_err(|e| io(out, e))?;
    let file_name = format!(
        "{}.{}",
        spec.name,
        match spec.format {
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
        }
    );
    let path = out.join(&file_name);
    write_rows(&path, spec.format, &out_names, &table)?;
    let report = ExportReport {
        dataset: spec.name.clone(),
        principal: principal.to_owned(),
        purpose: spec.purpose.clone(),
        format: format!("{:?}", spec.format).to_ascii_lowercase(),
        file: file_name,
        rows_read: rows.len(),
        rows_written: table.len(),
        columns: names
            .iter()
            .map(|n| (n.clone(), spec.columns.get(n).cloned().unwrap_or_default()))
            .collect(),
        k_anonymity: k_report,
        utility,
    };
    let report_path = out.join("report.json");
    let json = serde_json::to_vec_pretty(&report).map_err(|e| io(&report_path, e.into()))?;
    std::fs::write(&report_path, json).map_err(|e| io(&report_path, e))?;
    let summary_path = out.join("summary.txt");
    std::fs::write(&summary_path, summary(&report)).map_err(|e| io(&summary_path, e))?;
    Ok(report)
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
    let mut histories: HashMap<&str, Vec<(&str, usize, &str)>> = HashMap::new();
    for (row, ((u, i), t)) in users.iter().zip(items).zip(times).enumerate() {
        if let (Some(u), Some(i)) = (u, i) {
            histories.entry(u.as_str()).or_default().push((
                t.as_deref().unwrap_or(""),
                row,
                i.as_str(),
            ));
        }
    }
    let mut held_out: Vec<(&str, &str)> = Vec::new();
    let mut training: HashMap<&str, Vec<&str>> = HashMap::new();
    for (user, mut history) in histories {
        history.sort();
        if history.len() >= 2 {
            if let Some((_, _, last)) = history.pop() {
                held_out.push((user, last));
            }
        }
        let mut items: Vec<&str> = history.iter().map(|(_, _, i)| *i).collect();
        items.sort_unstable();
        items.dedup();
        training.insert(user, items);
    }
    let mut co: HashMap<&str, HashMap<&str, u32>> = HashMap::new();
    for items in training.values() {
        for a in items {
            for b in items {
                if a != b {
                    *co.entry(a).or_default().entry(b).or_default() += 1;
                }
            }
        }
    }
    let mut hits = 0usize;
    for (user, target) in &held_out {
        let mut scores: HashMap<&str, u32> = HashMap::new();
        for a in training.get(user).map(Vec::as_slice).unwrap_or(&[]) {
            for (b, n) in co.get(a).into_iter().flatten() {
                *scores.entry(b).or_default() += n;
            }
        }
        let mut ranked: Vec<(&str, u32)> = scores.into_iter().collect();
        ranked.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(y.0)));
        if ranked.iter().take(10).any(|(i, _)| i == target) {
            hits += 1;
        }
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

fn write_rows(
    path: &Path,
    format: Format,
    names: &[String],
    table: &[Vec<Option<String>>],
) -> Result<(), ExportError> {
    let file = std::fs::File::create(path).map_err(|e| io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    let result: std::io::Result<()> = (|| {
        match format {
            Format::Csv => {
                writeln!(
                    w,
                    "{}",
                    names
                        .iter()
                        .map(|n| csv_field(n))
                        .collect::<Vec<_>>()
                        .join(",")
                )?;
                for row in table {
                    let line: Vec<String> = row
                        .iter()
                        .map(|v| v.as_deref().map(csv_field).unwrap_or_default())
                        .collect();
                    writeln!(w, "{}", line.join(","))?;
                }
            }
            Format::Jsonl => {
                for row in table {
                    let object: serde_json::Map<String, Json> = names
                        .iter()
                        .zip(row)
                        .map(|(n, v)| (n.clone(), v.clone().map_or(Json::Null, Json::String)))
                        .collect();
                    writeln!(w, "{}", Json::Object(object))?;
                }
            }
        }
        w.flush()?;
        w.get_ref().sync_all()
    })();
    result.map_err(|e| io(path, e))
}

/// RFC 4180 quoting, and a leading `'` before `=`, `+`, `-`, `@` so a
/// spreadsheet never runs a value as a formula.
fn csv_field(value: &str) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@']) && value.parse::<f64>().is_err() {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if guarded.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
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
    fn csv_fields_are_quoted_and_formulas_defused() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("=HYPERLINK(1)"), "'=HYPERLINK(1)");
        assert_eq!(csv_field("-12"), "-12");
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
