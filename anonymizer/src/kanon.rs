//! k-anonymity over declared quasi-identifiers by strict multidimensional
//! Mondrian partitioning (LeFevre, DeWitt & Ramakrishnan, "Mondrian
//! Multidimensional K-Anonymity", ICDE 2006), with a suppression limit,
//! optional distinct l-diversity for one sensitive attribute, and
//! information-loss metrics.
//!
//! # Model
//!
//! A [`Table`] is column-major: one `Vec<i64>` per quasi-identifier (QI)
//! and optionally one `Vec<u32>` of sensitive-value codes. Categorical QIs
//! with a total order (age bands, zip3 prefixes, gender codes) are given as
//! ranks and declared [`QiKind::Ordinal`]; floating-point measurements are
//! quantized first with [`quantize`], which rejects NaN and infinities.
//!
//! [`mondrian`] recursively cuts the table: for a partition it picks the QI
//! with the widest normalized range, splits at the median value, and keeps
//! going while an *allowable* cut exists, i.e. both halves keep at least
//! `k` rows (and at least `l` distinct sensitive values). Cuts are strict:
//! rows sharing a value always land on the same side, so with many equal
//! values the cut moves to the nearest value boundary (`< v | >= v` or
//! `<= v | > v`) that keeps both sides allowable. Every released partition
//! therefore has `>= k` rows by construction; each is published with the
//! tight per-QI interval `[min, max]` of its rows ([`Partition::ranges`],
//! rendered by [`generalized_label`]).
//!
//! # Suppression
//!
//! Because partitions are `>= k` by construction, suppression only matters
//! when the table as a whole cannot satisfy the requirement (fewer than `k`
//! rows, or fewer than `l` distinct sensitive values overall). Then every
//! row would have to be suppressed; that is done if
//! [`MondrianConfig::max_suppressed_fraction`] allows it (i.e. is `1.0`),
//! otherwise [`mondrian`] returns [`KanonError::KUnattainable`] or
//! [`KanonError::LUnattainable`] with the numbers.
//!
//! # Metrics ([`KanonReport`])
//!
//! - **NCP** (normalized certainty penalty, Xu et al. 2006), in `[0, 1]`:
//!   for a numeric QI an interval `[lo, hi]` costs `(hi - lo) / (max - min)`
//!   over the whole table; for an ordinal QI it costs
//!   `(distinct values in [lo, hi] - 1) / (distinct values - 1)`, so gaps
//!   in the rank codes cost nothing. A suppressed row costs 1 per QI; a
//!   constant column costs 0. The report gives the mean over rows and QIs.
//! - **Discernibility** (Bayardo & Agrawal 2005):
//!   `sum |P|^2 + suppressed * rows`.
//!
//! # Cost
//!
//! Rows are never copied during partitioning: Mondrian permutes one
//! `Vec<u32>` of row indices in place (`select_nth_unstable_by_key` plus
//! two linear partition passes per cut), with an explicit work stack, so
//! the work is `O(n * d * log(n / k))` for `n` rows and `d` QIs.

use std::cmp::Ordering;

use thiserror::Error;

/// How a quasi-identifier's `i64` values are interpreted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QiKind {
    /// A measurement (age in years, income, a 5-digit zip as an integer).
    /// Interval cost is its width relative to the column's range.
    Numeric,
    /// A categorical value with a total order, given as ranks (age band
    /// labels, zip3 prefixes, gender codes). Interval cost counts the
    /// distinct values it covers, so unused ranks do not add penalty.
    Ordinal,
}

/// A declared quasi-identifier: an attribute that, combined with others,
/// could re-identify a person by linkage with outside data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuasiIdentifier {
    /// Column name (used in error messages).
    pub name: String,
    /// How the column's values are interpreted.
    pub kind: QiKind,
}

impl QuasiIdentifier {
    /// A [`QiKind::Numeric`] quasi-identifier.
    pub fn numeric(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: QiKind::Numeric,
        }
    }

    /// A [`QiKind::Ordinal`] quasi-identifier.
    pub fn ordinal(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            kind: QiKind::Ordinal,
        }
    }
}

/// Errors from building a [`Table`] or running [`mondrian`].
#[derive(Debug, Clone, PartialEq, Error)]
pub enum KanonError {
    /// `k = 0` makes no sense: every release is "0-anonymous".
    #[error("k must be at least 1 (got k = 0)")]
    KZero,
    /// `l = 0` makes no sense.
    #[error("l must be at least 1 (got l = 0)")]
    LZero,
    /// By convention l-diversity is requested with `l <= k`.
    #[error("l = {l} exceeds k = {k}; l-diversity requires l <= k")]
    LExceedsK {
        /// Requested l.
        l: usize,
        /// Requested k.
        k: usize,
    },
    /// l-diversity was requested for a table without a sensitive column.
    #[error("l-diversity (l = {l}) requested but the table declares no sensitive attribute")]
    NoSensitiveAttribute {
        /// Requested l.
        l: usize,
    },
    /// The suppression limit must be a fraction.
    #[error("max_suppressed_fraction must be within [0, 1], got {0}")]
    InvalidSuppressionFraction(f64),
    /// The table has no rows.
    #[error("the table has no rows")]
    NoRows,
    /// No quasi-identifier was declared.
    #[error("no quasi-identifiers declared")]
    NoQuasiIdentifiers,
    /// The number of columns does not match the declared quasi-identifiers.
    #[error("{declared} quasi-identifiers declared but {columns} columns given")]
    ColumnCount {
        /// Declared quasi-identifiers.
        declared: usize,
        /// Columns given.
        columns: usize,
    },
    /// A column's length differs from the first column's.
    #[error("column `{column}` has {len} values but the table has {rows} rows")]
    ColumnLength {
        /// Offending column.
        column: String,
        /// Its length.
        len: usize,
        /// Expected length.
        rows: usize,
    },
    /// Row indices are `u32`.
    #[error("the table has {rows} rows; at most {} are supported", u32::MAX)]
    TooManyRows {
        /// Rows given.
        rows: usize,
    },
    /// A value handed to [`quantize`] was NaN, infinite or out of range.
    #[error("column `{column}` row {row}: value {value} is not finite or does not fit an i64 after scaling")]
    NonFinite {
        /// Column name.
        column: String,
        /// Row index.
        row: usize,
        /// The value.
        value: f64,
    },
    /// The scale handed to [`quantize`] was not a positive finite number.
    #[error("quantization scale must be finite and > 0, got {0}")]
    InvalidScale(f64),
    /// Fewer than `k` rows: only suppressing everything satisfies k, and
    /// the suppression limit forbids it.
    #[error(
        "k = {k} is unattainable: the table has only {rows} rows, so all {rows} would have to be \
         suppressed, but max_suppressed_fraction = {max_fraction} allows at most {allowed}"
    )]
    KUnattainable {
        /// Requested k.
        k: usize,
        /// Rows in the table.
        rows: usize,
        /// Rows the limit allows to suppress.
        allowed: usize,
        /// The configured limit.
        max_fraction: f64,
    },
    /// Fewer than `l` distinct sensitive values in the whole table: no
    /// partition can be l-diverse, and the suppression limit forbids
    /// suppressing everything.
    #[error(
        "l = {l} is unattainable: the sensitive attribute has only {distinct} distinct values in \
         {rows} rows, so all {rows} would have to be suppressed, but max_suppressed_fraction = \
         {max_fraction} allows at most {allowed}"
    )]
    LUnattainable {
        /// Requested l.
        l: usize,
        /// Distinct sensitive values in the table.
        distinct: usize,
        /// Rows in the table.
        rows: usize,
        /// Rows the limit allows to suppress.
        allowed: usize,
        /// The configured limit.
        max_fraction: f64,
    },
}

/// Quantizes a floating-point column to `i64` (`round(value * scale)`),
/// rejecting NaN, infinities and values that do not fit, so that a
/// [`Table`] never holds NaN. Use e.g. `scale = 100.0` for cents.
///
/// # Errors
///
/// [`KanonError::InvalidScale`] for a non-positive or non-finite scale;
/// [`KanonError::NonFinite`] (with the row) for a value that is NaN,
/// infinite or out of `i64` range after scaling.
pub fn quantize(column: &str, values: &[f64], scale: f64) -> Result<Vec<i64>, KanonError> {
    if !scale.is_finite() || scale <= 0.0 {
        return Err(KanonError::InvalidScale(scale));
    }
    // i64::MAX as f64 rounds up to 2^63, so the upper bound is exclusive.
    const LIMIT: f64 = 9_223_372_036_854_775_808.0;
    values
        .iter()
        .enumerate()
        .map(|(row, &value)| {
            let scaled = (value * scale).round();
            if scaled.is_finite() && (-LIMIT..LIMIT).contains(&scaled) {
                Ok(scaled as i64)
            } else {
                Err(KanonError::NonFinite {
                    column: column.to_owned(),
                    row,
                    value,
                })
            }
        })
        .collect()
}

/// Column-major input: one `i64` column per quasi-identifier and an
/// optional sensitive attribute as `u32` codes (any coding; only equality
/// matters).
#[derive(Debug, Clone)]
pub struct Table {
    qis: Vec<QuasiIdentifier>,
    columns: Vec<Vec<i64>>,
    sensitive: Option<(String, Vec<u32>)>,
    rows: usize,
}

impl Table {
    /// Builds a table; `columns[i]` holds the values of `qis[i]`, all
    /// columns of equal length (zero rows is allowed here and rejected by
    /// [`mondrian`]).
    ///
    /// # Errors
    ///
    /// [`KanonError::NoQuasiIdentifiers`], [`KanonError::ColumnCount`],
    /// [`KanonError::ColumnLength`] or [`KanonError::TooManyRows`].
    pub fn new(qis: Vec<QuasiIdentifier>, columns: Vec<Vec<i64>>) -> Result<Self, KanonError> {
        if qis.is_empty() {
            return Err(KanonError::NoQuasiIdentifiers);
        }
        if qis.len() != columns.len() {
            return Err(KanonError::ColumnCount {
                declared: qis.len(),
                columns: columns.len(),
            });
        }
        let rows = columns[0].len();
        for (qi, column) in qis.iter().zip(&columns) {
            if column.len() != rows {
                return Err(KanonError::ColumnLength {
                    column: qi.name.clone(),
                    len: column.len(),
                    rows,
                });
            }
        }
        if u32::try_from(rows).is_err() {
            return Err(KanonError::TooManyRows { rows });
        }
        Ok(Self {
            qis,
            columns,
            sensitive: None,
            rows,
        })
    }

    /// Declares the sensitive attribute (needed for l-diversity and for
    /// [`KanonReport::l_achieved`]).
    ///
    /// # Errors
    ///
    /// [`KanonError::ColumnLength`] if `codes` does not have one entry per row.
    pub fn with_sensitive(
        mut self,
        name: impl Into<String>,
        codes: Vec<u32>,
    ) -> Result<Self, KanonError> {
        let name = name.into();
        if codes.len() != self.rows {
            return Err(KanonError::ColumnLength {
                column: name,
                len: codes.len(),
                rows: self.rows,
            });
        }
        self.sensitive = Some((name, codes));
        Ok(self)
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The declared quasi-identifiers, in column order.
    pub fn quasi_identifiers(&self) -> &[QuasiIdentifier] {
        &self.qis
    }

    /// Values of quasi-identifier `qi` (by declaration index).
    pub fn column(&self, qi: usize) -> Option<&[i64]> {
        self.columns.get(qi).map(Vec::as_slice)
    }

    /// Name and codes of the sensitive attribute, if declared.
    pub fn sensitive(&self) -> Option<(&str, &[u32])> {
        self.sensitive
            .as_ref()
            .map(|(name, codes)| (name.as_str(), codes.as_slice()))
    }
}

/// Parameters of [`mondrian`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MondrianConfig {
    /// Minimum rows per released equivalence class (`>= 1`).
    pub k: usize,
    /// If set, minimum distinct sensitive values per class (`1 <= l <= k`).
    pub l: Option<usize>,
    /// Largest fraction of rows that may be suppressed, in `[0, 1]`.
    pub max_suppressed_fraction: f64,
}

impl MondrianConfig {
    /// k-anonymity without l-diversity and without suppression.
    pub fn new(k: usize) -> Self {
        Self {
            k,
            l: None,
            max_suppressed_fraction: 0.0,
        }
    }

    /// Also require distinct l-diversity.
    pub fn with_l(mut self, l: usize) -> Self {
        self.l = Some(l);
        self
    }

    /// Sets the suppression limit.
    pub fn with_max_suppressed_fraction(mut self, fraction: f64) -> Self {
        self.max_suppressed_fraction = fraction;
        self
    }
}

/// One released equivalence class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    /// Row indices into the input [`Table`], ascending.
    pub rows: Vec<u32>,
    /// Per quasi-identifier (declaration order), the generalized interval
    /// `(min, max)` of this partition's rows; every row is published with
    /// these intervals instead of its own values.
    pub ranges: Vec<(i64, i64)>,
}

/// Summary of an anonymization run.
#[derive(Debug, Clone, PartialEq)]
pub struct KanonReport {
    /// `k` as configured.
    pub k_requested: usize,
    /// Smallest released partition; 0 if nothing is released.
    pub k_achieved: usize,
    /// Fewest distinct sensitive values in a released partition, if the
    /// table declares a sensitive attribute (0 if nothing is released).
    pub l_achieved: Option<usize>,
    /// Rows in the input.
    pub rows: usize,
    /// Rows withheld from the release.
    pub rows_suppressed: usize,
    /// Number of released partitions.
    pub partitions: usize,
    /// Normalized certainty penalty in `[0, 1]`, averaged over rows and
    /// quasi-identifiers (suppressed rows cost 1); see the module docs.
    pub ncp: f64,
    /// `sum |P|^2 + rows_suppressed * rows`.
    pub discernibility: u64,
}

/// Result of [`mondrian`].
#[derive(Debug, Clone, PartialEq)]
pub struct Anonymized {
    /// Released equivalence classes, each with `>= k` rows.
    pub partitions: Vec<Partition>,
    /// Suppressed row indices, ascending.
    pub suppressed: Vec<u32>,
    /// Metrics.
    pub report: KanonReport,
}

/// Renders a generalized interval: the single value if `lo == hi`, else
/// `"[lo-hi]"`.
pub fn generalized_label(range: (i64, i64)) -> String {
    let (lo, hi) = range;
    if lo == hi {
        lo.to_string()
    } else {
        format!("[{lo}-{hi}]")
    }
}

/// Per-QI domain of the whole table, for normalization.
struct Domain {
    min: i64,
    max: i64,
    /// Sorted distinct values, for ordinal QIs only.
    distinct: Option<Vec<i64>>,
}

impl Domain {
    fn new(kind: QiKind, column: &[i64]) -> Self {
        let (min, max) = column
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
        let distinct = match kind {
            QiKind::Numeric => None,
            QiKind::Ordinal => {
                let mut values = column.to_vec();
                values.sort_unstable();
                values.dedup();
                Some(values)
            }
        };
        Self { min, max, distinct }
    }

    /// Normalized certainty penalty of the interval `[lo, hi]`, in `[0, 1]`.
    fn penalty(&self, (lo, hi): (i64, i64)) -> f64 {
        match &self.distinct {
            None => {
                if self.max == self.min {
                    0.0
                } else {
                    // i128: `hi - lo` can overflow i64 for extreme values.
                    (hi as i128 - lo as i128) as f64 / (self.max as i128 - self.min as i128) as f64
                }
            }
            Some(values) => {
                if values.len() <= 1 {
                    return 0.0;
                }
                let covered =
                    values.partition_point(|&v| v <= hi) - values.partition_point(|&v| v < lo);
                covered.saturating_sub(1) as f64 / (values.len() - 1) as f64
            }
        }
    }
}

/// Distinct-value counting over dense sensitive codes, with a generation
/// stamp per code so the scratch array is never cleared.
struct DistinctCounter {
    codes: Vec<u32>,
    stamp: Vec<u32>,
    generation: u32,
}

impl DistinctCounter {
    /// Re-codes `raw` densely to `0..distinct`.
    fn new(raw: &[u32]) -> Self {
        let mut values = raw.to_vec();
        values.sort_unstable();
        values.dedup();
        let codes = raw
            .iter()
            .map(|c| values.partition_point(|v| v < c) as u32)
            .collect();
        Self {
            codes,
            stamp: vec![0; values.len()],
            generation: 0,
        }
    }

    fn distinct_total(&self) -> usize {
        self.stamp.len()
    }

    /// Distinct codes among `rows`, counting stops early at `cap`.
    fn count(&mut self, rows: &[u32], cap: usize) -> usize {
        self.generation = self.generation.wrapping_add(1);
        if self.generation == 0 {
            self.stamp.fill(0);
            self.generation = 1;
        }
        let mut distinct = 0;
        for &r in rows {
            let code = self.codes[r as usize] as usize;
            if self.stamp[code] != self.generation {
                self.stamp[code] = self.generation;
                distinct += 1;
                if distinct >= cap {
                    break;
                }
            }
        }
        distinct
    }
}

/// Moves the rows satisfying `pred` to the front; returns how many did.
fn partition_in_place(rows: &mut [u32], pred: impl Fn(u32) -> bool) -> usize {
    let mut front = 0;
    for i in 0..rows.len() {
        if pred(rows[i]) {
            rows.swap(front, i);
            front += 1;
        }
    }
    front
}

/// Tight per-QI `(min, max)` of `rows`.
fn bounds(columns: &[Vec<i64>], rows: &[u32]) -> Vec<(i64, i64)> {
    columns
        .iter()
        .map(|column| {
            rows.iter().fold((i64::MAX, i64::MIN), |(lo, hi), &r| {
                let x = column[r as usize];
                (lo.min(x), hi.max(x))
            })
        })
        .collect()
}

/// Pending or finished partition: a range of the row permutation.
struct Span {
    start: usize,
    end: usize,
    ranges: Vec<(i64, i64)>,
}

/// Anonymizes `table` to k-anonymity (and optionally distinct
/// l-diversity) by strict multidimensional Mondrian partitioning; see the
/// module docs for the algorithm, suppression rule and metrics.
///
/// The result is deterministic: ties between equally wide QIs go to the
/// earlier-declared one.
///
/// # Errors
///
/// Invalid configuration ([`KanonError::KZero`], [`KanonError::LZero`],
/// [`KanonError::LExceedsK`], [`KanonError::NoSensitiveAttribute`],
/// [`KanonError::InvalidSuppressionFraction`]), an empty table
/// ([`KanonError::NoRows`]), or a requirement the whole table cannot meet
/// within the suppression limit ([`KanonError::KUnattainable`],
/// [`KanonError::LUnattainable`]).
pub fn mondrian(table: &Table, config: &MondrianConfig) -> Result<Anonymized, KanonError> {
    let k = config.k;
    if k == 0 {
        return Err(KanonError::KZero);
    }
    if let Some(l) = config.l {
        if l == 0 {
            return Err(KanonError::LZero);
        }
        if l > k {
            return Err(KanonError::LExceedsK { l, k });
        }
        if table.sensitive.is_none() {
            return Err(KanonError::NoSensitiveAttribute { l });
        }
    }
    let fraction = config.max_suppressed_fraction;
    if !(0.0..=1.0).contains(&fraction) {
        // Also rejects NaN.
        return Err(KanonError::InvalidSuppressionFraction(fraction));
    }
    let n = table.rows;
    if n == 0 {
        return Err(KanonError::NoRows);
    }
    // Table::new caps rows at u32::MAX, so indices fit.
    let mut perm: Vec<u32> = (0..n as u32).collect();
    let columns = &table.columns;
    let domains: Vec<Domain> = table
        .qis
        .iter()
        .zip(columns)
        .map(|(qi, column)| Domain::new(qi.kind, column))
        .collect();
    let mut counter = table
        .sensitive
        .as_ref()
        .map(|(_, codes)| DistinctCounter::new(codes));

    // The root partition is the coarsest possible release; if it violates
    // k or l, so does every partitioning, and only full suppression helps.
    let allowed = ((fraction * n as f64).floor() as usize).min(n);
    let l_total = counter.as_ref().map_or(0, DistinctCounter::distinct_total);
    let root_violation = if n < k {
        Some(KanonError::KUnattainable {
            k,
            rows: n,
            allowed,
            max_fraction: fraction,
        })
    } else {
        match config.l {
            Some(l) if l_total < l => Some(KanonError::LUnattainable {
                l,
                distinct: l_total,
                rows: n,
                allowed,
                max_fraction: fraction,
            }),
            _ => None,
        }
    };
    if let Some(error) = root_violation {
        if allowed < n {
            return Err(error);
        }
        return Ok(Anonymized {
            partitions: Vec::new(),
            suppressed: perm,
            report: KanonReport {
                k_requested: k,
                k_achieved: 0,
                l_achieved: counter.as_ref().map(|_| 0),
                rows: n,
                rows_suppressed: n,
                partitions: 0,
                ncp: 1.0,
                discernibility: (n as u64) * (n as u64),
            },
        });
    }

    let l = config.l.unwrap_or(1);
    let mut order: Vec<usize> = (0..columns.len()).collect();
    let mut widths = vec![0.0f64; columns.len()];
    let mut leaves: Vec<Span> = Vec::new();
    let mut stack = vec![Span {
        start: 0,
        end: n,
        ranges: domains.iter().map(|d| (d.min, d.max)).collect(),
    }];
    while let Some(span) = stack.pop() {
        let rows = &mut perm[span.start..span.end];
        let m = rows.len();
        // Both halves need >= k rows, so smaller partitions are leaves.
        let cut = if m >= 2 * k {
            for (width, (domain, &range)) in widths.iter_mut().zip(domains.iter().zip(&span.ranges))
            {
                *width = domain.penalty(range);
            }
            order.sort_by(|&a, &b| {
                widths[b]
                    .partial_cmp(&widths[a])
                    .unwrap_or(Ordering::Equal)
                    .then(a.cmp(&b))
            });
            find_cut(rows, columns, &order, &span.ranges, k, l, counter.as_mut())
        } else {
            None
        };
        match cut {
            Some(cut) => {
                let (left, right) = rows.split_at(cut);
                let left_ranges = bounds(columns, left);
                let right_ranges = bounds(columns, right);
                let mid = span.start + cut;
                // Right first so the left half is processed (and emitted) first.
                stack.push(Span {
                    start: mid,
                    end: span.end,
                    ranges: right_ranges,
                });
                stack.push(Span {
                    start: span.start,
                    end: mid,
                    ranges: left_ranges,
                });
            }
            None => leaves.push(span),
        }
    }

    let mut k_achieved = usize::MAX;
    let mut l_achieved = usize::MAX;
    let mut penalty_sum = 0.0f64;
    let mut discernibility = 0u64;
    let mut partitions = Vec::with_capacity(leaves.len());
    for span in leaves {
        let mut rows = perm[span.start..span.end].to_vec();
        rows.sort_unstable();
        let size = rows.len();
        k_achieved = k_achieved.min(size);
        if let Some(counter) = counter.as_mut() {
            l_achieved = l_achieved.min(counter.count(&rows, usize::MAX));
        }
        let cost: f64 = domains
            .iter()
            .zip(&span.ranges)
            .map(|(domain, &range)| domain.penalty(range))
            .sum();
        penalty_sum += cost * size as f64;
        discernibility += (size as u64) * (size as u64);
        partitions.push(Partition {
            rows,
            ranges: span.ranges,
        });
    }
    let report = KanonReport {
        k_requested: k,
        k_achieved,
        l_achieved: counter.map(|_| l_achieved),
        rows: n,
        rows_suppressed: 0,
        partitions: partitions.len(),
        ncp: penalty_sum / (n as f64 * columns.len() as f64),
        discernibility,
    };
    Ok(Anonymized {
        partitions,
        suppressed: Vec::new(),
        report,
    })
}

/// Finds an allowable strict cut of `rows`, trying QIs in `order` (widest
/// normalized range first). On success the rows are permuted so that
/// `rows[..cut]` is the left side and `cut` is returned.
fn find_cut(
    rows: &mut [u32],
    columns: &[Vec<i64>],
    order: &[usize],
    ranges: &[(i64, i64)],
    k: usize,
    l: usize,
    mut counter: Option<&mut DistinctCounter>,
) -> Option<usize> {
    let m = rows.len();
    let mid = m / 2;
    for &q in order {
        if ranges[q].0 == ranges[q].1 {
            // A constant QI cannot be cut.
            continue;
        }
        let column = &columns[q];
        rows.select_nth_unstable_by_key(mid, |&r| column[r as usize]);
        let median = column[rows[mid] as usize];
        // Three-way layout [< v][== v][> v]: the left of `mid` holds
        // values <= v, the right values >= v.
        let below = partition_in_place(&mut rows[..mid], |r| column[r as usize] < median);
        let equal_right =
            partition_in_place(&mut rows[mid + 1..], |r| column[r as usize] == median);
        let at_most = mid + 1 + equal_right;
        // Equal values stay together, so the cut is at one of the two
        // boundaries of the median's run; prefer the more balanced one.
        let mut candidates = [below, at_most];
        candidates.sort_by_key(|&c| c.abs_diff(mid));
        for cut in candidates {
            if cut < k || m - cut < k {
                continue;
            }
            if l > 1 {
                if let Some(counter) = counter.as_deref_mut() {
                    if counter.count(&rows[..cut], l) < l || counter.count(&rows[cut..], l) < l {
                        continue;
                    }
                }
            }
            return Some(cut);
        }
    }
    None
}
