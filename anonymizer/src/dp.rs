//! Differential privacy for aggregate outputs: the discrete Laplace
//! mechanism, sampled exactly (Canonne, Kamath and Steinke, "The Discrete
//! Gaussian for Differential Privacy", 2020, Algorithms 1 and 2) from the
//! operating system's CSPRNG, with only integer arithmetic: no floating
//! point anywhere in the sampler, so none of the floating-point Laplace
//! attacks (Mironov 2012) apply. And a per-consumer privacy budget ledger
//! that persists and refuses an export that would overspend.
//!
//! Epsilon is handled in millionths (`micro`), an exact integer: the
//! mechanism's scale is then the rational Δ / ε = Δ·10⁶ / ε_micro.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use ring::rand::{SecureRandom, SystemRandom};

/// One epsilon in millionths.
pub const MICRO: u64 = 1_000_000;

#[derive(Debug, thiserror::Error)]
pub enum DpError {
    #[error("the system random number generator failed")]
    Random,
    #[error("{0}")]
    BadParameter(String),
    #[error(
        "{consumer} has spent ε = {} of its budget ε = {}; this export needs ε = {} more, so it is refused",
        micro_str(*spent), micro_str(*limit), micro_str(*requested)
    )]
    BudgetExceeded {
        consumer: String,
        spent: u64,
        limit: u64,
        requested: u64,
    },
    #[error("privacy budget ledger {}: {source}", path.display())]
    Ledger {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("privacy budget ledger {} is damaged ({reason}); it is never reset silently: restore it from backup", path.display())]
    LedgerCorrupt { path: PathBuf, reason: String },
}

/// `1500000` → `"1.5"`.
pub fn micro_str(micro: u64) -> String {
    let whole = micro / MICRO;
    let frac = micro % MICRO;
    if frac == 0 {
        whole.to_string()
    } else {
        let digits = format!("{frac:06}");
        format!("{whole}.{}", digits.trim_end_matches('0'))
    }
}

/// Parses a decimal epsilon (`"0.5"`, `"1"`, at most 6 decimals) into
/// millionths.
pub fn parse_epsilon(text: &str) -> Result<u64, DpError> {
    let bad = || {
        DpError::BadParameter(format!(
            "`{text}` is not an epsilon such as 0.5 (positive, at most 6 decimals)"
        ))
    };
    let (whole, frac) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if frac.len() > 6 || (whole.is_empty() && frac.is_empty()) {
        return Err(bad());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| bad())?
    };
    let frac_value: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().map_err(|_| bad())?
    };
    let micro = whole
        .checked_mul(MICRO)
        .and_then(|w| w.checked_add(frac_value))
        .ok_or_else(bad)?;
    if micro == 0 {
        return Err(bad());
    }
    Ok(micro)
}

/// Exact samplers over a CSPRNG.
pub struct Sampler {
    rng: SystemRandom,
}

impl Default for Sampler {
    fn default() -> Self {
        Sampler::new()
    }
}

impl Sampler {
    pub fn new() -> Sampler {
        Sampler {
            rng: SystemRandom::new(),
        }
    }

    /// Uniform in `[0, n)`, by rejection (no modulo bias).
    fn uniform(&self, n: u64) -> Result<u64, DpError> {
        debug_assert!(n > 0);
        let limit = u64::MAX - (u64::MAX % n);
        loop {
            let mut bytes = [0u8; 8];
            self.rng.fill(&mut bytes).map_err(|_| DpError::Random)?;
            let x = u64::from_le_bytes(bytes);
            if x < limit {
                return Ok(x % n);
            }
        }
    }

    /// Bernoulli(num / den), `num <= den`.
    fn bernoulli(&self, num: u64, den: u64) -> Result<bool, DpError> {
        Ok(self.uniform(den)? < num)
    }

    /// Bernoulli(exp(-num/den)) for `0 <= num/den <= 1` (CKS Algorithm 1,
    /// first part): K = 1, 2, ... while Bernoulli(γ/K); true iff K is odd.
    fn bernoulli_exp_le1(&self, num: u64, den: u64) -> Result<bool, DpError> {
        let mut k: u64 = 1;
        // When den·K overflows, γ/K is below 1/u64::MAX: the draw is false.
        while let Some(kden) = den.checked_mul(k) {
            if !self.bernoulli(num, kden)? {
                break;
            }
            k += 1;
        }
        Ok(k % 2 == 1)
    }

    /// Bernoulli(exp(-num/den)) for any `num/den >= 0`.
    fn bernoulli_exp(&self, num: u64, den: u64) -> Result<bool, DpError> {
        let whole = num / den;
        for _ in 0..whole {
            if !self.bernoulli_exp_le1(1, 1)? {
                return Ok(false);
            }
        }
        self.bernoulli_exp_le1(num % den, den)
    }

    /// A discrete Laplace sample with scale `t / s` (CKS Algorithm 2):
    /// P[Y = y] ∝ exp(-|y| s / t).
    pub fn discrete_laplace(&self, s: u64, t: u64) -> Result<i64, DpError> {
        if s == 0 || t == 0 {
            return Err(DpError::BadParameter(
                "a discrete Laplace scale must be positive".into(),
            ));
        }
        loop {
            let u = self.uniform(t)?;
            if !self.bernoulli_exp(u, t)? {
                continue;
            }
            let mut v: u64 = 0;
            while self.bernoulli_exp(1, 1)? {
                v += 1;
            }
            let x = u.saturating_add(t.saturating_mul(v));
            let y = x / s;
            let negative = self.bernoulli(1, 2)?;
            if negative && y == 0 {
                continue;
            }
            let y = i64::try_from(y).unwrap_or(i64::MAX);
            return Ok(if negative { -y } else { y });
        }
    }

    /// `value` plus discrete Laplace noise for `epsilon_micro`-DP when one
    /// person changes the value by at most `sensitivity` (counts: 1; sums:
    /// the clamp bound on each contribution).
    pub fn noisy(&self, value: i64, sensitivity: u64, epsilon_micro: u64) -> Result<i64, DpError> {
        if sensitivity == 0 || epsilon_micro == 0 {
            return Err(DpError::BadParameter(
                "sensitivity and epsilon must be positive".into(),
            ));
        }
        // Scale Δ/ε = Δ·10⁶ / ε_micro = t / s.
        let t = sensitivity.checked_mul(MICRO).ok_or_else(|| {
            DpError::BadParameter(format!("sensitivity {sensitivity} is too large"))
        })?;
        let noise = self.discrete_laplace(epsilon_micro, t)?;
        Ok(value.saturating_add(noise))
    }
}

/// The per-consumer privacy budget, in a JSON-lines-free flat file:
/// `consumer<TAB>limit_micro<TAB>spent_micro` per line, rewritten
/// atomically (temp file, fsync, rename, fsync dir) on every charge.
pub struct BudgetLedger {
    path: PathBuf,
    entries: BTreeMap<String, (u64, u64)>,
}

impl BudgetLedger {
    /// Opens the ledger at `path` (an absent file is an empty ledger).
    pub fn open(path: &Path) -> Result<BudgetLedger, DpError> {
        let io = |source| DpError::Ledger {
            path: path.to_path_buf(),
            source,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io(e)),
        };
        let mut entries = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let corrupt = |reason: String| DpError::LedgerCorrupt {
                path: path.to_path_buf(),
                reason: format!("line {}: {reason}", i + 1),
            };
            let mut parts = line.split('\t');
            let (Some(consumer), Some(limit), Some(spent), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(corrupt("expected consumer, limit, spent".into()));
            };
            let limit: u64 = limit
                .parse()
                .map_err(|_| corrupt(format!("bad limit `{limit}`")))?;
            let spent: u64 = spent
                .parse()
                .map_err(|_| corrupt(format!("bad spent `{spent}`")))?;
            entries.insert(consumer.to_owned(), (limit, spent));
        }
        Ok(BudgetLedger {
            path: path.to_path_buf(),
            entries,
        })
    }

    /// (limit, spent) of a consumer, in millionths of ε.
    pub fn balance(&self, consumer: &str) -> Option<(u64, u64)> {
        self.entries.get(consumer).copied()
    }

    /// Charges `epsilon_micro` to `consumer` under its `limit_micro`
    /// (a lower limit than recorded tightens it; a higher one does not
    /// loosen what was spent). Refused, and nothing recorded, when it would
    /// overspend; persisted before it returns otherwise.
    pub fn charge(
        &mut self,
        consumer: &str,
        limit_micro: u64,
        epsilon_micro: u64,
    ) -> Result<u64, DpError> {
        let (_, spent) = self
            .entries
            .get(consumer)
            .copied()
            .unwrap_or((limit_micro, 0));
        let after = spent.saturating_add(epsilon_micro);
        if after > limit_micro {
            return Err(DpError::BudgetExceeded {
                consumer: consumer.to_owned(),
                spent,
                limit: limit_micro,
                requested: epsilon_micro,
            });
        }
        let previous = self
            .entries
            .insert(consumer.to_owned(), (limit_micro, after));
        if let Err(e) = self.save() {
            // Not recorded: the export must not run.
            match previous {
                Some(p) => self.entries.insert(consumer.to_owned(), p),
                None => self.entries.remove(consumer),
            };
            return Err(e);
        }
        Ok(limit_micro - after)
    }

    fn save(&self) -> Result<(), DpError> {
        let io = |source| DpError::Ledger {
            path: self.path.clone(),
            source,
        };
        let mut text = String::new();
        for (consumer, (limit, spent)) in &self.entries {
            text.push_str(&format!("{consumer}\t{limit}\t{spent}\n"));
        }
        let tmp = self.path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epsilons_parse_exactly() {
        assert_eq!(parse_epsilon("0.5").unwrap(), 500_000);
        assert_eq!(parse_epsilon("1").unwrap(), MICRO);
        assert_eq!(parse_epsilon("2.000001").unwrap(), 2_000_001);
        assert_eq!(parse_epsilon(".25").unwrap(), 250_000);
        for bad in ["0", "-1", "abc", "0.0000001", "", "1e-3"] {
            assert!(parse_epsilon(bad).is_err(), "{bad}");
        }
        assert_eq!(micro_str(1_500_000), "1.5");
        assert_eq!(micro_str(2_000_000), "2");
    }

    /// The empirical distribution matches P[Y=y] ∝ exp(-|y|/b): symmetric,
    /// the right variance, the right mass at 0.
    #[test]
    fn discrete_laplace_has_the_right_distribution() {
        let sampler = Sampler::new();
        let n = 20_000;
        // Scale b = t/s = 2.
        let (s, t) = (1, 2);
        let mut counts = BTreeMap::new();
        let mut sum = 0i64;
        let mut sum_sq = 0i64;
        for _ in 0..n {
            let y = sampler.discrete_laplace(s, t).unwrap();
            *counts.entry(y).or_insert(0u64) += 1;
            sum += y;
            sum_sq += y * y;
        }
        let q = (-0.5f64).exp();
        // P[0] = (1-q)/(1+q); variance = 2q/(1-q)^2.
        let p0 = (1.0 - q) / (1.0 + q);
        let var = 2.0 * q / (1.0 - q).powi(2);
        let got_p0 = counts[&0] as f64 / n as f64;
        let mean = sum as f64 / n as f64;
        let got_var = sum_sq as f64 / n as f64 - mean * mean;
        // Generous bounds (> 5 standard errors) so the test does not flake,
        // tight enough to catch a wrong scale (b = 1 or b = 4 fail them).
        assert!((got_p0 - p0).abs() < 0.02, "P[0] {got_p0} vs {p0}");
        assert!(mean.abs() < 0.15, "mean {mean}");
        assert!(
            (got_var - var).abs() / var < 0.12,
            "variance {got_var} vs {var}"
        );
        let pos: u64 = counts.range(1..).map(|(_, c)| c).sum();
        let neg: u64 = counts.range(..0).map(|(_, c)| c).sum();
        assert!(
            (pos as f64 / neg as f64 - 1.0).abs() < 0.1,
            "{pos} vs {neg}"
        );
    }

    #[test]
    fn noise_shrinks_as_epsilon_grows() {
        let sampler = Sampler::new();
        let spread = |eps: u64| {
            (0..2000)
                .map(|_| (sampler.noisy(1000, 1, eps).unwrap() - 1000).abs())
                .sum::<i64>()
        };
        assert!(spread(100_000) > 5 * spread(5 * MICRO));
        assert!(sampler.noisy(1, 0, MICRO).is_err());
        assert!(sampler.noisy(1, 1, 0).is_err());
    }

    #[test]
    fn the_budget_ledger_persists_and_refuses_overspending() {
        let dir = std::env::temp_dir().join(format!("privet-ledger-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("budget.tsv");
        let _ = std::fs::remove_file(&path);
        let mut ledger = BudgetLedger::open(&path).unwrap();
        assert_eq!(ledger.charge("ml-team", MICRO, 400_000).unwrap(), 600_000);
        assert_eq!(ledger.charge("ml-team", MICRO, 600_000).unwrap(), 0);
        let err = ledger.charge("ml-team", MICRO, 1).unwrap_err();
        assert!(
            matches!(
                err,
                DpError::BudgetExceeded {
                    spent: 1_000_000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("refused"));
        // Another consumer has its own budget.
        ledger.charge("marketing", 2 * MICRO, MICRO).unwrap();
        // Reopened: the spending survived, and is still enforced.
        let mut reopened = BudgetLedger::open(&path).unwrap();
        assert_eq!(reopened.balance("ml-team"), Some((MICRO, MICRO)));
        assert_eq!(reopened.balance("marketing"), Some((2 * MICRO, MICRO)));
        assert!(reopened.charge("ml-team", MICRO, 1).is_err());
        // A damaged ledger is an error, never an empty (reset) budget.
        std::fs::write(&path, "ml-team\tlots\t0\n").unwrap();
        assert!(matches!(
            BudgetLedger::open(&path),
            Err(DpError::LedgerCorrupt { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
