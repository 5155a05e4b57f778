//! Mondrian k-anonymity throughput. Target: 1,000,000 rows x 4
//! quasi-identifiers in <= 10 s (release build, one run).
//!
//! `cargo bench -p anonymizer --bench mondrian -- --warm-up-time 1 --measurement-time 20`

use std::hint::black_box;
use std::time::Duration;

use anonymizer::kanon::{mondrian, MondrianConfig, QuasiIdentifier, Table};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// SplitMix64, so the bench needs no `rand`.
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

/// Census-like table: age 18-90, 5-digit zip, gender 0-2 (ordinal),
/// income skewed towards low values with a long tail.
fn census(n: usize) -> Table {
    let mut rng = Rng(42);
    let mut age = Vec::with_capacity(n);
    let mut zip = Vec::with_capacity(n);
    let mut gender = Vec::with_capacity(n);
    let mut income = Vec::with_capacity(n);
    for _ in 0..n {
        age.push(18 + (rng.next() % 73) as i64);
        zip.push(10_000 + (rng.next() % 90_000) as i64);
        gender.push(match rng.next() % 100 {
            0..=48 => 0,
            49..=97 => 1,
            _ => 2,
        });
        income.push((12_000.0 + 400_000.0 * rng.unit().powi(4)) as i64);
    }
    let qis = vec![
        QuasiIdentifier::numeric("age"),
        QuasiIdentifier::numeric("zip"),
        QuasiIdentifier::ordinal("gender"),
        QuasiIdentifier::numeric("income"),
    ];
    match Table::new(qis, vec![age, zip, gender, income]) {
        Ok(table) => table,
        Err(e) => panic!("bench table: {e}"),
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("mondrian_k10_4qi");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let config = MondrianConfig::new(10);
    for n in [100_000, 1_000_000] {
        let table = census(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &table, |b, table| {
            b.iter(|| black_box(mondrian(black_box(table), &config)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
