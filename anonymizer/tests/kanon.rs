//! k-anonymity tests. The central check (`verify_release`) is independent
//! of Mondrian's bookkeeping: it publishes every released row with its
//! partition's labels, recounts equivalence classes with a HashMap from the
//! test's own copy of the data, and checks k, l, coverage and containment.

use std::collections::{HashMap, HashSet};

use anonymizer::kanon::{
    generalized_label, mondrian, quantize, Anonymized, KanonError, MondrianConfig, QuasiIdentifier,
    Table,
};

/// SplitMix64: small deterministic PRNG so the tests need no `rand`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % ((hi - lo + 1) as u64)) as i64
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn numeric_qis(d: usize) -> Vec<QuasiIdentifier> {
    (0..d)
        .map(|i| QuasiIdentifier::numeric(format!("q{i}")))
        .collect()
}

/// Independent check of a release. Returns the size of the smallest
/// equivalence class (0 if nothing released).
fn verify_release(
    columns: &[Vec<i64>],
    sensitive: Option<&[u32]>,
    out: &Anonymized,
    k: usize,
    l: Option<usize>,
) -> usize {
    let n = columns[0].len();
    // Every row is released exactly once or suppressed.
    let mut seen = vec![0u8; n];
    for p in &out.partitions {
        for &r in &p.rows {
            seen[r as usize] += 1;
        }
    }
    for &r in &out.suppressed {
        seen[r as usize] += 1;
    }
    assert!(
        seen.iter().all(|&c| c == 1),
        "rows not covered exactly once"
    );

    // Publish each released row as its generalized tuple and recount.
    let mut classes: HashMap<Vec<String>, (usize, HashSet<u32>)> = HashMap::new();
    for p in &out.partitions {
        assert_eq!(p.ranges.len(), columns.len());
        for &r in &p.rows {
            let r = r as usize;
            let key: Vec<String> = columns
                .iter()
                .zip(&p.ranges)
                .map(|(col, &(lo, hi))| {
                    assert!(
                        lo <= col[r] && col[r] <= hi,
                        "row {r}: value {} outside its interval [{lo}, {hi}]",
                        col[r]
                    );
                    generalized_label((lo, hi))
                })
                .collect();
            let entry = classes.entry(key).or_default();
            entry.0 += 1;
            if let Some(s) = sensitive {
                entry.1.insert(s[r]);
            }
        }
    }
    for (key, (count, values)) in &classes {
        assert!(*count >= k, "class {key:?} has {count} rows < k = {k}");
        if let Some(l) = l {
            assert!(
                values.len() >= l,
                "class {key:?} has {} distinct sensitive values < l = {l}",
                values.len()
            );
        }
    }

    // The report agrees with the release.
    let report = &out.report;
    assert_eq!(report.rows, n);
    assert_eq!(report.rows_suppressed, out.suppressed.len());
    assert_eq!(report.partitions, out.partitions.len());
    let min_size = out
        .partitions
        .iter()
        .map(|p| p.rows.len())
        .min()
        .unwrap_or(0);
    assert_eq!(
        report.k_achieved, min_size,
        "k_achieved != smallest partition"
    );
    if let Some(s) = sensitive {
        let min_l = out
            .partitions
            .iter()
            .map(|p| {
                p.rows
                    .iter()
                    .map(|&r| s[r as usize])
                    .collect::<HashSet<_>>()
                    .len()
            })
            .min()
            .unwrap_or(0);
        assert_eq!(report.l_achieved, Some(min_l));
    } else {
        assert_eq!(report.l_achieved, None);
    }
    let disc: u64 = out
        .partitions
        .iter()
        .map(|p| (p.rows.len() as u64).pow(2))
        .sum::<u64>()
        + (out.suppressed.len() * n) as u64;
    assert_eq!(report.discernibility, disc);
    assert!((0.0..=1.0).contains(&report.ncp), "ncp {}", report.ncp);
    classes.values().map(|c| c.0).min().unwrap_or(0)
}

#[test]
fn random_uniform_data_is_k_anonymous() {
    let mut rng = Rng(1);
    let n = 5_000;
    let columns: Vec<Vec<i64>> = vec![
        (0..n).map(|_| rng.range(0, 1_000)).collect(),
        (0..n).map(|_| rng.range(-50, 50)).collect(),
        (0..n).map(|_| rng.range(0, 9)).collect(),
    ];
    let table = Table::new(numeric_qis(3), columns.clone()).unwrap();
    for k in [1, 2, 5, 10, 50, 2_500, 5_000] {
        let out = mondrian(&table, &MondrianConfig::new(k)).unwrap();
        let min_class = verify_release(&columns, None, &out, k, None);
        assert!(min_class >= k);
        assert!(out.suppressed.is_empty());
        // Mondrian should actually partition, not release one big class.
        assert!(out.partitions.len() >= n / (2 * k).max(1) / 4, "k = {k}");
    }
}

#[test]
fn distinct_values_give_partitions_between_k_and_2k() {
    // With all-distinct values, every median cut is allowable until a
    // partition has < 2k rows, so sizes land in [k, 2k).
    let n = 10_000i64;
    let mut rng = Rng(7);
    let mut values: Vec<i64> = (0..n).collect();
    for i in (1..values.len()).rev() {
        let j = rng.range(0, i as i64) as usize;
        values.swap(i, j);
    }
    let columns = vec![values];
    let table = Table::new(numeric_qis(1), columns.clone()).unwrap();
    for k in [1, 3, 10, 100] {
        let out = mondrian(&table, &MondrianConfig::new(k)).unwrap();
        verify_release(&columns, None, &out, k, None);
        for p in &out.partitions {
            assert!(
                p.rows.len() >= k && p.rows.len() < 2 * k,
                "size {}",
                p.rows.len()
            );
        }
    }
    // k = 1 on distinct values loses nothing.
    let out = mondrian(&table, &MondrianConfig::new(1)).unwrap();
    assert_eq!(out.partitions.len(), n as usize);
    assert_eq!(out.report.ncp, 0.0);
}

#[test]
fn skewed_data_is_k_anonymous() {
    let mut rng = Rng(2);
    let n = 4_000;
    let skewed = |rng: &mut Rng, common: i64, lo: i64, hi: i64| -> Vec<i64> {
        (0..n)
            .map(|_| {
                if rng.unit() < 0.9 {
                    common
                } else {
                    rng.range(lo, hi)
                }
            })
            .collect()
    };
    let columns = vec![
        skewed(&mut rng, 30, 18, 90),
        skewed(&mut rng, 10_115, 10_000, 99_999),
        skewed(&mut rng, 1, 0, 2),
    ];
    let sensitive: Vec<u32> = (0..n).map(|_| (rng.next() % 6) as u32).collect();
    let qis = vec![
        QuasiIdentifier::numeric("age"),
        QuasiIdentifier::numeric("zip"),
        QuasiIdentifier::ordinal("gender"),
    ];
    let table = Table::new(qis, columns.clone())
        .unwrap()
        .with_sensitive("diagnosis", sensitive.clone())
        .unwrap();
    for (k, l) in [(2, None), (5, Some(2)), (20, Some(4)), (100, Some(6))] {
        let mut config = MondrianConfig::new(k);
        config.l = l;
        let out = mondrian(&table, &config).unwrap();
        verify_release(&columns, Some(&sensitive), &out, k, l);
        assert!(
            out.partitions.len() > 1,
            "k = {k}: skew should still allow cuts"
        );
    }
    // All rows identical: one class, nothing to cut, zero loss.
    let same = vec![vec![5i64; 100], vec![7i64; 100]];
    let out = mondrian(
        &Table::new(numeric_qis(2), same.clone()).unwrap(),
        &MondrianConfig::new(3),
    )
    .unwrap();
    verify_release(&same, None, &out, 3, None);
    assert_eq!(out.partitions.len(), 1);
    assert_eq!(out.report.ncp, 0.0);
    assert_eq!(out.report.discernibility, 100 * 100);
}

#[test]
fn tiny_inputs_error_or_fully_suppress() {
    let columns = vec![vec![1i64, 2, 3], vec![10i64, 20, 30]];
    let table = Table::new(numeric_qis(2), columns.clone()).unwrap();

    let err = mondrian(&table, &MondrianConfig::new(5)).unwrap_err();
    assert_eq!(
        err,
        KanonError::KUnattainable {
            k: 5,
            rows: 3,
            allowed: 0,
            max_fraction: 0.0
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("k = 5") && msg.contains("only 3 rows"),
        "{msg}"
    );

    // 0.9 * 3 = 2.7 -> at most 2 rows: still not enough.
    let err = mondrian(
        &table,
        &MondrianConfig::new(5).with_max_suppressed_fraction(0.9),
    )
    .unwrap_err();
    assert!(err.to_string().contains("at most 2"), "{err}");

    let out = mondrian(
        &table,
        &MondrianConfig::new(5).with_max_suppressed_fraction(1.0),
    )
    .unwrap();
    verify_release(&columns, None, &out, 5, None);
    assert!(out.partitions.is_empty());
    assert_eq!(out.suppressed, vec![0, 1, 2]);
    assert_eq!(out.report.rows_suppressed, 3);
    assert_eq!(out.report.k_achieved, 0);
    assert_eq!(out.report.ncp, 1.0);
    assert_eq!(out.report.discernibility, 9);

    // n == k: a single class.
    let out = mondrian(&table, &MondrianConfig::new(3)).unwrap();
    verify_release(&columns, None, &out, 3, None);
    assert_eq!(out.partitions.len(), 1);
    assert_eq!(out.partitions[0].ranges, vec![(1, 3), (10, 30)]);

    // A single row with k = 1.
    let one = vec![vec![42i64]];
    let out = mondrian(
        &Table::new(numeric_qis(1), one.clone()).unwrap(),
        &MondrianConfig::new(1),
    )
    .unwrap();
    verify_release(&one, None, &out, 1, None);
    assert_eq!(out.report.k_achieved, 1);

    // l unattainable: only 2 distinct sensitive values overall.
    let table = table.with_sensitive("s", vec![1, 1, 2]).unwrap();
    let err = mondrian(&table, &MondrianConfig::new(3).with_l(3)).unwrap_err();
    assert_eq!(
        err,
        KanonError::LUnattainable {
            l: 3,
            distinct: 2,
            rows: 3,
            allowed: 0,
            max_fraction: 0.0
        }
    );
    assert!(err.to_string().contains("only 2 distinct values"), "{err}");
    let out = mondrian(
        &table,
        &MondrianConfig::new(3)
            .with_l(3)
            .with_max_suppressed_fraction(1.0),
    )
    .unwrap();
    assert_eq!(out.report.rows_suppressed, 3);
    assert_eq!(out.report.l_achieved, Some(0));
}

#[test]
fn census_like_table() {
    let mut rng = Rng(3);
    let n = 20_000;
    let zips: Vec<i64> = (0..40).map(|_| rng.range(10_000, 99_999)).collect();
    let age: Vec<i64> = (0..n).map(|_| rng.range(18, 90)).collect();
    let zip: Vec<i64> = (0..n).map(|_| zips[(rng.next() % 40) as usize]).collect();
    let gender: Vec<i64> = (0..n)
        .map(|_| match rng.next() % 100 {
            0..=48 => 0,
            49..=97 => 1,
            _ => 2,
        })
        .collect();
    // Skewed income: most low, a long tail; quantized from f64.
    let income_f: Vec<f64> = (0..n)
        .map(|_| 12_000.0 + 400_000.0 * rng.unit().powi(4))
        .collect();
    let income = quantize("income", &income_f, 1.0).unwrap();
    let diagnosis: Vec<u32> = (0..n).map(|_| (rng.next() % 8) as u32 * 17).collect();
    let columns = vec![age, zip, gender, income];
    let qis = vec![
        QuasiIdentifier::numeric("age"),
        QuasiIdentifier::numeric("zip"),
        QuasiIdentifier::ordinal("gender"),
        QuasiIdentifier::numeric("income"),
    ];
    let table = Table::new(qis, columns.clone())
        .unwrap()
        .with_sensitive("diagnosis", diagnosis.clone())
        .unwrap();
    let out = mondrian(&table, &MondrianConfig::new(10).with_l(3)).unwrap();
    verify_release(&columns, Some(&diagnosis), &out, 10, Some(3));
    assert!(out.report.l_achieved.unwrap() >= 3);
    assert!(out.report.ncp < 0.2, "ncp {}", out.report.ncp);

    let plain = mondrian(&table, &MondrianConfig::new(10)).unwrap();
    verify_release(&columns, Some(&diagnosis), &plain, 10, None);
    // Adding a diversity constraint can only coarsen the release.
    assert!(plain.report.discernibility <= out.report.discernibility);
}

#[test]
fn metrics_match_hand_computation() {
    // age numeric 20..41 (width 21); grade ordinal with gaps {1, 5, 9}.
    // Root: both QIs have normalized width 1, tie -> age (declared first).
    // Median index 3 of sorted ages 20 21 30 31 40 41 is 31: cuts at
    // `< 31` (3 | 3) and `<= 31` (4 | 2); the balanced one wins.
    // Left {20, 21, 30} x grades {1, 5, 1}; right {31, 40, 41} x {5, 9, 9};
    // 3 < 2k so both are leaves.
    // NCP per row: age 10/21, grade (2 covered - 1)/(3 - 1) = 1/2.
    // Mean over 6 rows x 2 QIs = (10/21 + 1/2) / 2 = 41/84.
    let columns = vec![vec![20i64, 41, 30, 31, 40, 21], vec![1i64, 9, 1, 5, 9, 5]];
    let qis = vec![
        QuasiIdentifier::numeric("age"),
        QuasiIdentifier::ordinal("grade"),
    ];
    let table = Table::new(qis, columns.clone()).unwrap();
    let out = mondrian(&table, &MondrianConfig::new(2)).unwrap();
    verify_release(&columns, None, &out, 2, None);
    assert_eq!(out.partitions.len(), 2);
    assert_eq!(out.partitions[0].rows, vec![0, 2, 5]);
    assert_eq!(out.partitions[0].ranges, vec![(20, 30), (1, 5)]);
    assert_eq!(out.partitions[1].rows, vec![1, 3, 4]);
    assert_eq!(out.partitions[1].ranges, vec![(31, 41), (5, 9)]);
    assert!(
        (out.report.ncp - 41.0 / 84.0).abs() < 1e-12,
        "ncp {}",
        out.report.ncp
    );
    assert_eq!(out.report.discernibility, 9 + 9);
    assert_eq!(out.report.k_achieved, 3);
    assert_eq!(out.report.partitions, 2);

    // Ordinal vs numeric: with grades {1, 2, 9} the same split gives
    // left [1, 2] and right [2, 9]. Ordinal: each covers 2 of 3 values
    // (1/2). Numeric: 1/8 and 7/8 of the range 1..9.
    let columns = vec![vec![20i64, 41, 30, 31, 40, 21], vec![1i64, 9, 1, 2, 9, 2]];
    let ordinal = Table::new(
        vec![
            QuasiIdentifier::numeric("age"),
            QuasiIdentifier::ordinal("grade"),
        ],
        columns.clone(),
    )
    .unwrap();
    let numeric = Table::new(numeric_qis(2), columns.clone()).unwrap();
    let o = mondrian(&ordinal, &MondrianConfig::new(2)).unwrap();
    let nm = mondrian(&numeric, &MondrianConfig::new(2)).unwrap();
    let expect_o = (3.0 * (10.0 / 21.0 + 0.5) * 2.0) / 12.0;
    let expect_n = (3.0 * (10.0 / 21.0 + 1.0 / 8.0) + 3.0 * (10.0 / 21.0 + 7.0 / 8.0)) / 12.0;
    assert!((o.report.ncp - expect_o).abs() < 1e-12, "{}", o.report.ncp);
    assert!(
        (nm.report.ncp - expect_n).abs() < 1e-12,
        "{}",
        nm.report.ncp
    );

    // Uneven split at a value boundary: 7 rows of value 5 and 3 of 9, k = 3.
    // Median (index 5) is 5: `< 5` leaves 0 rows, `<= 5` gives 7 | 3.
    let columns = vec![vec![5i64, 9, 5, 5, 9, 5, 5, 9, 5, 5]];
    let out = mondrian(
        &Table::new(numeric_qis(1), columns.clone()).unwrap(),
        &MondrianConfig::new(3),
    )
    .unwrap();
    verify_release(&columns, None, &out, 3, None);
    let sizes: Vec<usize> = out.partitions.iter().map(|p| p.rows.len()).collect();
    assert_eq!(sizes, vec![7, 3]);
    assert_eq!(out.report.ncp, 0.0);
    assert_eq!(out.report.discernibility, 49 + 9);
    assert_eq!(out.report.k_achieved, 3);
    // With k = 4 the 3 nines cannot stand alone.
    let out = mondrian(
        &Table::new(numeric_qis(1), columns).unwrap(),
        &MondrianConfig::new(4),
    )
    .unwrap();
    assert_eq!(out.partitions.len(), 1);
    assert_eq!(out.report.ncp, 1.0);
    assert_eq!(out.report.discernibility, 100);
}

#[test]
fn l_diversity_blocks_cuts_that_would_lose_diversity() {
    // Left half (x < 10) has only sensitive value 0: a cut there would be
    // 4-anonymous but not 2-diverse.
    let columns = vec![vec![1i64, 2, 3, 4, 11, 12, 13, 14]];
    let sensitive = vec![0u32, 0, 0, 0, 1, 2, 1, 2];
    let table = Table::new(numeric_qis(1), columns.clone())
        .unwrap()
        .with_sensitive("s", sensitive.clone())
        .unwrap();
    let k_only = mondrian(&table, &MondrianConfig::new(4)).unwrap();
    assert_eq!(k_only.partitions.len(), 2);
    assert_eq!(k_only.report.l_achieved, Some(1));
    let diverse = mondrian(&table, &MondrianConfig::new(4).with_l(2)).unwrap();
    verify_release(&columns, Some(&sensitive), &diverse, 4, Some(2));
    assert_eq!(diverse.partitions.len(), 1);
    assert_eq!(diverse.report.l_achieved, Some(3));
}

#[test]
fn random_small_tables_property() {
    let mut rng = Rng(0xC0FFEE);
    let mut released = 0;
    for case in 0..200 {
        let n = rng.range(1, 80) as usize;
        let d = rng.range(1, 4) as usize;
        let columns: Vec<Vec<i64>> = (0..d)
            .map(|_| {
                // Small value ranges force ties; occasional wide ones.
                let hi = [1, 3, 10, 1_000][rng.range(0, 3) as usize];
                (0..n).map(|_| rng.range(-hi, hi)).collect()
            })
            .collect();
        let kinds: Vec<QuasiIdentifier> = (0..d)
            .map(|i| {
                if rng.next().is_multiple_of(2) {
                    QuasiIdentifier::numeric(format!("q{i}"))
                } else {
                    QuasiIdentifier::ordinal(format!("q{i}"))
                }
            })
            .collect();
        let sens_values = rng.range(1, 6) as u64;
        let sensitive: Vec<u32> = (0..n).map(|_| (rng.next() % sens_values) as u32).collect();
        let k = rng.range(1, 10) as usize;
        let l = if rng.next().is_multiple_of(2) {
            Some(rng.range(1, k as i64) as usize)
        } else {
            None
        };
        let fraction = [0.0, 0.5, 1.0][rng.range(0, 2) as usize];
        let table = Table::new(kinds, columns.clone())
            .unwrap()
            .with_sensitive("s", sensitive.clone())
            .unwrap();
        let config = MondrianConfig {
            k,
            l,
            max_suppressed_fraction: fraction,
        };
        let distinct = sensitive.iter().collect::<HashSet<_>>().len();
        let feasible = n >= k && l.is_none_or(|l| distinct >= l);
        match mondrian(&table, &config) {
            Ok(out) => {
                verify_release(&columns, Some(&sensitive), &out, k, l);
                if feasible {
                    assert!(out.suppressed.is_empty(), "case {case}");
                    released += 1;
                } else {
                    assert_eq!(fraction, 1.0, "case {case}");
                    assert_eq!(out.suppressed.len(), n, "case {case}");
                }
            }
            Err(KanonError::KUnattainable { .. }) => {
                assert!(n < k && fraction < 1.0, "case {case}")
            }
            Err(KanonError::LUnattainable { .. }) => {
                assert!(
                    n >= k && distinct < l.unwrap() && fraction < 1.0,
                    "case {case}"
                )
            }
            Err(e) => panic!("case {case}: unexpected error {e}"),
        }
    }
    assert!(released > 100, "only {released} feasible cases");
}

#[test]
fn configuration_and_input_errors() {
    let table = Table::new(numeric_qis(1), vec![vec![1, 2, 3]]).unwrap();
    assert_eq!(
        mondrian(&table, &MondrianConfig::new(0)).unwrap_err(),
        KanonError::KZero
    );
    assert_eq!(
        mondrian(&table, &MondrianConfig::new(2).with_l(0)).unwrap_err(),
        KanonError::LZero
    );
    let err = mondrian(&table, &MondrianConfig::new(2).with_l(3)).unwrap_err();
    assert_eq!(err, KanonError::LExceedsK { l: 3, k: 2 });
    assert!(err.to_string().contains("l = 3 exceeds k = 2"));
    assert_eq!(
        mondrian(&table, &MondrianConfig::new(2).with_l(2)).unwrap_err(),
        KanonError::NoSensitiveAttribute { l: 2 }
    );
    for bad in [-0.1, 1.5, f64::NAN] {
        let err = mondrian(
            &table,
            &MondrianConfig::new(1).with_max_suppressed_fraction(bad),
        )
        .unwrap_err();
        assert!(
            matches!(err, KanonError::InvalidSuppressionFraction(_)),
            "{err}"
        );
    }
    let empty = Table::new(numeric_qis(2), vec![vec![], vec![]]).unwrap();
    assert_eq!(
        mondrian(&empty, &MondrianConfig::new(1)).unwrap_err(),
        KanonError::NoRows
    );

    assert_eq!(
        Table::new(vec![], vec![]).unwrap_err(),
        KanonError::NoQuasiIdentifiers
    );
    assert_eq!(
        Table::new(numeric_qis(2), vec![vec![1]]).unwrap_err(),
        KanonError::ColumnCount {
            declared: 2,
            columns: 1
        }
    );
    let err = Table::new(numeric_qis(2), vec![vec![1, 2], vec![1]]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "column `q1` has 1 values but the table has 2 rows"
    );
    assert!(Table::new(numeric_qis(1), vec![vec![1, 2]])
        .unwrap()
        .with_sensitive("s", vec![1])
        .is_err());

    let err = quantize("income", &[1.0, f64::NAN], 100.0).unwrap_err();
    assert!(matches!(err, KanonError::NonFinite { row: 1, .. }), "{err}");
    assert!(err.to_string().contains("income"));
    assert!(quantize("x", &[f64::INFINITY], 1.0).is_err());
    assert!(quantize("x", &[1e300], 1.0).is_err());
    assert!(quantize("x", &[1.0], 0.0).is_err());
    assert_eq!(
        quantize("x", &[1.234, -0.5, 2.0], 100.0).unwrap(),
        vec![123, -50, 200]
    );
}

#[test]
fn labels() {
    assert_eq!(generalized_label((5, 5)), "5");
    assert_eq!(generalized_label((18, 90)), "[18-90]");
    assert_eq!(generalized_label((-5, 3)), "[-5-3]");
}

#[test]
fn extreme_values_do_not_overflow() {
    let columns = vec![vec![i64::MIN, i64::MAX, 0, 1, -1, i64::MAX - 1]];
    let table = Table::new(numeric_qis(1), columns.clone()).unwrap();
    let out = mondrian(&table, &MondrianConfig::new(2)).unwrap();
    verify_release(&columns, None, &out, 2, None);
    assert!(out.report.ncp.is_finite());
}
