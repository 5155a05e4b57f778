//! One-shot scale check of the performance target (1,000,000 rows x 4
//! quasi-identifiers, k = 10, <= 10 s) with an independent k recount.
//! Ignored by default; run in release:
//!
//! `cargo test --release -p anonymizer --test kanon_scale -- --ignored --nocapture`

use std::collections::HashMap;
use std::time::Instant;

use anonymizer::kanon::{mondrian, MondrianConfig, QuasiIdentifier, Table};

/// SplitMix64, so the test needs no `rand`.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
#[ignore = "1M rows; run with --release --ignored"]
fn one_million_rows_four_qis_within_ten_seconds() {
    let n = 1_000_000;
    let mut rng = Rng(42);
    let mut columns: Vec<Vec<i64>> = (0..4).map(|_| Vec::with_capacity(n)).collect();
    let sensitive: Vec<u32> = (0..n)
        .map(|_| {
            columns[0].push(18 + (rng.next() % 73) as i64);
            columns[1].push(10_000 + (rng.next() % 90_000) as i64);
            columns[2].push((rng.next() % 3) as i64);
            columns[3].push((12_000.0 + 400_000.0 * rng.unit().powi(4)) as i64);
            (rng.next() % 10) as u32
        })
        .collect();
    let qis = vec![
        QuasiIdentifier::numeric("age"),
        QuasiIdentifier::numeric("zip"),
        QuasiIdentifier::ordinal("gender"),
        QuasiIdentifier::numeric("income"),
    ];
    let table = Table::new(qis, columns.clone())
        .unwrap()
        .with_sensitive("s", sensitive)
        .unwrap();

    for config in [MondrianConfig::new(10), MondrianConfig::new(10).with_l(3)] {
        let start = Instant::now();
        let out = mondrian(&table, &config).unwrap();
        let elapsed = start.elapsed();
        println!("{config:?}: {elapsed:?} {:?}", out.report);
        assert!(elapsed.as_secs_f64() <= 10.0, "took {elapsed:?}");

        // Independent recount of generalized tuples.
        let mut classes: HashMap<Vec<(i64, i64)>, usize> = HashMap::new();
        let mut released = 0;
        for p in &out.partitions {
            for &r in &p.rows {
                for (col, &(lo, hi)) in columns.iter().zip(&p.ranges) {
                    let v = col[r as usize];
                    assert!(lo <= v && v <= hi);
                }
                *classes.entry(p.ranges.clone()).or_default() += 1;
                released += 1;
            }
        }
        assert_eq!(released, n);
        assert!(classes.values().all(|&c| c >= 10));
    }
}
