//! Differentially private aggregates in an export: counts, sums and means
//! per group, released with discrete Laplace noise
//! ([`anonymizer::dp::Sampler`]) and paid for from the principal's ε
//! budget before the source query runs.
//!
//! Privacy accounting, so the guarantee is the one the report claims:
//! - **Contribution bounding.** The spec names the source column that
//!   identifies the data subject; each subject's rows beyond
//!   `max_rows_per_subject` are left out of every aggregate, and every
//!   value is clamped to the aggregate's `bounds`. Sensitivities follow
//!   from these: a count changes by at most `max_rows_per_subject`, a sum
//!   by `max_rows_per_subject · max(|lo|, |hi|)`.
//! - **Noise.** A count spends the aggregate's whole ε; a sum or a mean
//!   spends half on the noisy count and half on the noisy sum (a mean is
//!   their quotient).
//! - **Which groups appear.** Groups come from the data, so a group is
//!   released only when its noisy count reaches `min_group_size`. That
//!   makes the release (ε, δ)-DP rather than pure ε-DP; the report states
//!   δ, the chance that one subject's rows alone make a group appear. A
//!   threshold that would let δ exceed [`MAX_DELTA`] is refused; without
//!   one, the smallest that keeps δ within it is used.
//!   Nothing is said about the groups withheld.

use std::collections::{BTreeMap, HashMap};

use anonymizer::dp::{self, Sampler};
use serde::{Deserialize, Serialize};

/// The most groups one aggregate may have; beyond, the export stops (it
/// would release almost nothing and hold too much).
pub const MAX_GROUPS: usize = 100_000;

/// The `[dp]` table of a dataset spec.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpSpec {
    /// The source column that identifies the data subject (customer).
    pub subject: String,
    /// Rows of one subject counted at most; the rest are left out.
    #[serde(default = "one")]
    pub max_rows_per_subject: u32,
    pub aggregates: Vec<AggregateSpec>,
}

fn one() -> u32 {
    1
}

/// One released aggregate.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregateSpec {
    pub name: String,
    pub kind: AggregateKind,
    /// The source column summed or averaged (raw values, not transformed).
    pub column: Option<String>,
    /// Each value is clamped to `[lo, hi]` (sums and means).
    pub bounds: Option<[i64; 2]>,
    /// Grouping columns, as the export's transforms release them (an age
    /// band, a zip prefix), so groups are as coarse as the dataset.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// ε as a decimal string (`"0.5"`): exact, never a float.
    pub epsilon: String,
    /// A group is released only when its noisy count reaches this;
    /// default: the smallest that keeps δ within [`MAX_DELTA`].
    pub min_group_size: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateKind {
    Count,
    Sum,
    Mean,
}

/// A checked aggregate: its columns resolved to positions.
#[derive(Debug)]
struct Plan {
    spec: AggregateSpec,
    /// The released groups' minimum noisy count.
    threshold: i64,
    epsilon_micro: u64,
    value_at: Option<usize>,
    bound: i64,
    group_at: Vec<usize>,
    groups: HashMap<Vec<Option<String>>, (i64, i128)>,
}

/// What the report says of one released aggregate.
#[derive(Debug, Clone, Serialize)]
pub struct AggregateRelease {
    pub name: String,
    pub kind: AggregateKind,
    pub column: Option<String>,
    pub group_by: Vec<String>,
    pub epsilon: String,
    /// The chance one subject alone makes a group appear (see the module
    /// docs), as a decimal in scientific notation.
    pub delta: String,
    pub min_group_size: i64,
    pub groups: Vec<ReleasedGroup>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ReleasedGroup {
    pub group: BTreeMap<String, Option<String>>,
    /// The noisy count, or sum; for a mean, noisy sum / noisy count.
    pub value: serde_json::Value,
}

/// Accumulates the aggregates of a [`DpSpec`] over an export's rows.
#[derive(Debug)]
pub struct Aggregator {
    subject_at: usize,
    max_rows_per_subject: u32,
    per_subject: HashMap<String, u32>,
    plans: Vec<Plan>,
}

impl DpSpec {
    /// The total ε the spec spends, in millionths, after checking every
    /// aggregate's parameters.
    pub fn epsilon_micro(&self) -> Result<u64, String> {
        let mut total: u64 = 0;
        for a in &self.aggregates {
            let e = dp::parse_epsilon(&a.epsilon)
                .map_err(|e| format!("aggregate `{}`: epsilon: {e}", a.name))?;
            total = total
                .checked_add(e)
                .ok_or_else(|| "the aggregates' ε overflows".to_owned())?;
        }
        Ok(total)
    }
}

impl Aggregator {
    /// Checks `spec` against the source's columns (`names`, raw) and the
    /// released columns (`released`: what the dataset keeps).
    pub fn new(spec: &DpSpec, names: &[String], released: &[String]) -> Result<Aggregator, String> {
        let source_at = |column: &str| {
            names
                .iter()
                .position(|n| n == column)
                .ok_or_else(|| format!("`{column}` is not a column of the source query"))
        };
        if spec.max_rows_per_subject == 0 {
            return Err("max_rows_per_subject must be at least 1".into());
        }
        if spec.aggregates.is_empty() {
            return Err("[dp] names no aggregates".into());
        }
        let mut plans = Vec::new();
        for a in &spec.aggregates {
            let context = |m: String| format!("aggregate `{}`: {m}", a.name);
            let epsilon_micro =
                dp::parse_epsilon(&a.epsilon).map_err(|e| context(e.to_string()))?;
            let (value_at, bound) = match a.kind {
                AggregateKind::Count => {
                    if a.column.is_some() || a.bounds.is_some() {
                        return Err(context("a count takes no column or bounds".into()));
                    }
                    (None, 0)
                }
                AggregateKind::Sum | AggregateKind::Mean => {
                    let column = a.column.as_deref().ok_or_else(|| {
                        context("a sum or mean needs `column`, the source column it adds up".into())
                    })?;
                    let [lo, hi] = a.bounds.ok_or_else(|| {
                        context("a sum or mean needs `bounds = [lo, hi]`: each value is clamped to them, which bounds what one subject can change".into())
                    })?;
                    if lo > hi {
                        return Err(context(format!("bounds [{lo}, {hi}] are reversed")));
                    }
                    let bound = lo.unsigned_abs().max(hi.unsigned_abs());
                    let bound = i64::try_from(bound)
                        .map_err(|_| context("bounds too large".into()))?
                        .max(1);
                    (Some(source_at(column).map_err(context)?), bound)
                }
            };
            let count_eps = match a.kind {
                AggregateKind::Count => epsilon_micro,
                AggregateKind::Sum | AggregateKind::Mean => (epsilon_micro / 2).max(1),
            };
            let per_subject = u64::from(spec.max_rows_per_subject);
            let threshold = a
                .min_group_size
                .unwrap_or_else(|| min_threshold(per_subject, count_eps));
            let d = delta(per_subject, count_eps, threshold);
            if d > MAX_DELTA {
                return Err(context(format!(
                    "with ε = {} and min_group_size = {threshold}, one subject alone would make a group appear with probability δ = {d:.1e} (at most {MAX_DELTA:e} is allowed); raise min_group_size to at least {} (or leave it out) or raise ε",
                    a.epsilon,
                    min_threshold(per_subject, count_eps)
                )));
            }
            let mut group_at = Vec::new();
            for g in &a.group_by {
                let at = released.iter().position(|n| n == g).ok_or_else(|| {
                    context(format!(
                        "group_by `{g}` is not a column the dataset releases (dropped columns cannot group)"
                    ))
                })?;
                group_at.push(at);
            }
            plans.push(Plan {
                threshold,
                spec: a.clone(),
                epsilon_micro,
                value_at,
                bound,
                group_at,
                groups: HashMap::new(),
            });
        }
        Ok(Aggregator {
            subject_at: source_at(&spec.subject).map_err(|m| format!("[dp] subject: {m}"))?,
            max_rows_per_subject: spec.max_rows_per_subject,
            per_subject: HashMap::new(),
            plans,
        })
    }

    /// Adds one row: `raw` as the source returned it, `released` as the
    /// transforms made it (the dataset's columns).
    pub fn add(
        &mut self,
        raw: &[serde_json::Value],
        released: &[Option<String>],
    ) -> Result<(), String> {
        let subject = match raw.get(self.subject_at) {
            None | Some(serde_json::Value::Null) => return Ok(()),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        };
        let seen = self.per_subject.entry(subject).or_insert(0);
        if *seen >= self.max_rows_per_subject {
            return Ok(());
        }
        *seen += 1;
        for plan in &mut self.plans {
            let value: i64 = match plan.value_at {
                None => 0,
                Some(i) => match raw.get(i) {
                    None | Some(serde_json::Value::Null) => 0,
                    Some(v) => {
                        let n = match v {
                            serde_json::Value::Number(n) => n.as_i64(),
                            serde_json::Value::String(s) => s.trim().parse::<i64>().ok(),
                            _ => None,
                        }
                        .ok_or_else(|| {
                            format!(
                                "aggregate `{}`: a value of `{}` is not an integer",
                                plan.spec.name,
                                plan.spec.column.as_deref().unwrap_or_default()
                            )
                        })?;
                        let [lo, hi] = plan.spec.bounds.unwrap_or([0, 0]);
                        n.clamp(lo, hi)
                    }
                },
            };
            let key: Vec<Option<String>> = plan
                .group_at
                .iter()
                .map(|&i| released.get(i).cloned().flatten())
                .collect();
            if !plan.groups.contains_key(&key) && plan.groups.len() >= MAX_GROUPS {
                return Err(format!(
                    "aggregate `{}` has more than {MAX_GROUPS} groups; group by coarser columns",
                    plan.spec.name
                ));
            }
            let entry = plan.groups.entry(key).or_insert((0, 0));
            entry.0 += 1;
            entry.1 += i128::from(value);
        }
        Ok(())
    }

    /// Adds the noise and releases the groups that pass the threshold.
    pub fn release(self, sampler: &Sampler) -> Result<Vec<AggregateRelease>, dp::DpError> {
        let per_subject = u64::from(self.max_rows_per_subject);
        let mut out = Vec::new();
        for plan in self.plans {
            let (count_eps, sum_eps) = match plan.spec.kind {
                AggregateKind::Count => (plan.epsilon_micro, 0),
                AggregateKind::Sum | AggregateKind::Mean => {
                    let half = (plan.epsilon_micro / 2).max(1);
                    (half, half)
                }
            };
            let sum_sensitivity = per_subject.saturating_mul(plan.bound.unsigned_abs());
            let mut groups = Vec::new();
            // Sorted, so the output does not reveal hash order.
            let mut keys: Vec<_> = plan.groups.into_iter().collect();
            keys.sort_by(|a, b| a.0.cmp(&b.0));
            for (key, (count, sum)) in keys {
                let noisy_count = sampler.noisy(count, per_subject, count_eps)?;
                if noisy_count < plan.threshold {
                    continue;
                }
                let value = match plan.spec.kind {
                    AggregateKind::Count => serde_json::Value::from(noisy_count),
                    AggregateKind::Sum | AggregateKind::Mean => {
                        let exact =
                            i64::try_from(sum).unwrap_or(if sum < 0 { i64::MIN } else { i64::MAX });
                        let noisy_sum = sampler.noisy(exact, sum_sensitivity, sum_eps)?;
                        if plan.spec.kind == AggregateKind::Sum {
                            serde_json::Value::from(noisy_sum)
                        } else {
                            // Post-processing of two DP values: free.
                            let mean = noisy_sum as f64 / noisy_count.max(1) as f64;
                            serde_json::Number::from_f64((mean * 100.0).round() / 100.0)
                                .map(serde_json::Value::Number)
                                .unwrap_or(serde_json::Value::Null)
                        }
                    }
                };
                groups.push(ReleasedGroup {
                    group: plan.spec.group_by.iter().cloned().zip(key).collect(),
                    value,
                });
            }
            out.push(AggregateRelease {
                delta: format!("{:.1e}", delta(per_subject, count_eps, plan.threshold)),
                name: plan.spec.name,
                kind: plan.spec.kind,
                column: plan.spec.column,
                group_by: plan.spec.group_by,
                epsilon: plan.spec.epsilon,
                min_group_size: plan.threshold,
                groups,
            });
        }
        Ok(out)
    }
}

/// The largest δ an aggregate may have (the threshold's guarantee).
pub const MAX_DELTA: f64 = 1e-5;

/// The smallest `min_group_size` keeping δ within [`MAX_DELTA`].
fn min_threshold(per_subject: u64, epsilon_micro: u64) -> i64 {
    let b = per_subject as f64 * dp::MICRO as f64 / epsilon_micro.max(1) as f64;
    let k = -b * (MAX_DELTA * (1.0 + (-1.0 / b).exp())).ln();
    per_subject as i64 + k.ceil() as i64
}

/// P[a group made of one subject's rows alone is released]: its count is at
/// most Δ = `per_subject`, so it needs noise ≥ τ − Δ, and for the discrete
/// Laplace with scale b = Δ/ε, P[X ≥ k] = e^(−k/b) / (1 + e^(−1/b)).
fn delta(per_subject: u64, epsilon_micro: u64, threshold: i64) -> f64 {
    let b = per_subject as f64 * dp::MICRO as f64 / epsilon_micro.max(1) as f64;
    let k = (threshold - per_subject as i64).max(0) as f64;
    (-k / b).exp() / (1.0 + (-1.0 / b).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(toml_text: &str) -> DpSpec {
        toml::from_str(toml_text).unwrap()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn contributions_are_bounded_per_subject_and_values_clamped() {
        let spec = spec(
            r#"
subject = "customer"
max_rows_per_subject = 2
[[aggregates]]
name = "spend"
kind = "sum"
column = "cents"
bounds = [0, 100]
epsilon = "1"
"#,
        );
        let source = names(&["customer", "cents"]);
        let mut agg = Aggregator::new(&spec, &source, &[]).unwrap();
        // Customer 1 sends five rows of 1,000,000: two count, each clamped to 100.
        for _ in 0..5 {
            agg.add(&[1.into(), 1_000_000.into()], &[]).unwrap();
        }
        agg.add(&[2.into(), 50.into()], &[]).unwrap();
        let (count, sum) = agg.plans[0].groups[&Vec::new()];
        assert_eq!((count, sum), (3, 250));
    }

    #[test]
    fn bad_specs_are_refused_with_the_reason() {
        let source = names(&["customer", "cents"]);
        for (text, needle) in [
            ("subject = \"nobody\"\n[[aggregates]]\nname = \"n\"\nkind = \"count\"\nepsilon = \"1\"", "subject"),
            ("subject = \"customer\"\n[[aggregates]]\nname = \"s\"\nkind = \"sum\"\ncolumn = \"cents\"\nepsilon = \"1\"", "bounds"),
            ("subject = \"customer\"\n[[aggregates]]\nname = \"s\"\nkind = \"sum\"\nbounds = [0, 1]\nepsilon = \"1\"", "column"),
            ("subject = \"customer\"\n[[aggregates]]\nname = \"c\"\nkind = \"count\"\nepsilon = \"0\"", "epsilon"),
            ("subject = \"customer\"\n[[aggregates]]\nname = \"c\"\nkind = \"count\"\ngroup_by = [\"zip\"]\nepsilon = \"1\"", "releases"),
            ("subject = \"customer\"\nmax_rows_per_subject = 0\n[[aggregates]]\nname = \"c\"\nkind = \"count\"\nepsilon = \"1\"", "max_rows"),
        ] {
            let err = Aggregator::new(&spec(text), &source, &[]).unwrap_err();
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    /// Small groups stay hidden; large ones come out close to the truth.
    #[test]
    fn release_thresholds_small_groups_and_noises_the_rest() {
        let spec = spec(
            r#"
subject = "customer"
[[aggregates]]
name = "by_region"
kind = "count"
group_by = ["region"]
epsilon = "1"
min_group_size = 20
"#,
        );
        let source = names(&["customer", "region"]);
        let released = names(&["region"]);
        let mut agg = Aggregator::new(&spec, &source, &released).unwrap();
        let mut id = 0;
        for (region, n) in [("EU", 5000), ("US", 3000), ("tiny", 2)] {
            for _ in 0..n {
                id += 1;
                agg.add(&[id.into(), region.into()], &[Some(region.into())])
                    .unwrap();
            }
        }
        let out = agg.release(&Sampler::new()).unwrap();
        let groups = &out[0].groups;
        assert_eq!(groups.len(), 2, "{groups:?}");
        for g in groups {
            let truth = match g.group["region"].as_deref() {
                Some("EU") => 5000,
                Some("US") => 3000,
                other => panic!("released {other:?}"),
            };
            let v = g.value.as_i64().unwrap();
            // Scale 1: |noise| > 30 has probability ~1e-13.
            assert!((v - truth).abs() < 30, "{v} vs {truth}");
        }
        let d: f64 = out[0].delta.parse().unwrap();
        assert!(d > 0.0 && d < 1e-7, "{d}");
    }

    /// A threshold too low for its ε would let one person's rows show
    /// through: refused, with the threshold that would do.
    #[test]
    fn a_weak_threshold_is_refused_with_the_one_that_would_do() {
        let text = "subject = \"customer\"\n[[aggregates]]\nname = \"c\"\nkind = \"count\"\nepsilon = \"0.25\"\nmin_group_size = 20";
        let err = Aggregator::new(&spec(text), &names(&["customer"]), &[]).unwrap_err();
        assert!(err.contains("raise min_group_size to at least 45"), "{err}");
        let ok = text.replace("min_group_size = 20", "min_group_size = 45");
        assert!(Aggregator::new(&spec(&ok), &names(&["customer"]), &[]).is_ok());
        let default = text.replace("\nmin_group_size = 20", "");
        let agg = Aggregator::new(&spec(&default), &names(&["customer"]), &[]).unwrap();
        assert_eq!(agg.plans[0].threshold, 45);
        assert!(delta(1, 250_000, 45) <= MAX_DELTA);
        assert!(delta(1, 250_000, 44) > MAX_DELTA);
    }

    #[test]
    fn total_epsilon_adds_up_exactly() {
        let spec = spec(
            "subject = \"c\"\n[[aggregates]]\nname = \"a\"\nkind = \"count\"\nepsilon = \"0.1\"\n[[aggregates]]\nname = \"b\"\nkind = \"count\"\nepsilon = \"0.2\"",
        );
        assert_eq!(spec.epsilon_micro().unwrap(), 300_000);
    }
}
