//! Cost of scoring one request: `cargo bench -p anomaly --bench score`.
//!
//! The detector is warmed up on two days of the full-scale synthetic
//! workload (all seven demo principals, ~270,000 requests); each
//! measurement then scores the third day's requests in order on a copy of
//! it (the copy is not timed), so every request sees a realistic state:
//! warm baselines, live windows, the usual mix of principals.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anomaly::evaluate::{normal_workload, Scale};
use anomaly::{Detector, DetectorConfig, RequestFeatures};
use criterion::{criterion_group, criterion_main, Criterion};

const DAY_MS: u64 = 86_400_000;

fn bench(c: &mut Criterion) {
    let requests = normal_workload(1, Scale::Full, 3);
    let Some(first) = requests.first().map(|r| r.at_unix_ms) else {
        return;
    };
    let split = requests.partition_point(|r| r.at_unix_ms < first + 2 * DAY_MS);
    let (warm_up, next) = requests.split_at(split);
    let mut warm = Detector::new(DetectorConfig::default());
    for r in warm_up {
        warm.score(r);
    }
    println!(
        "warmed up on {} requests; scoring the next {}",
        warm_up.len(),
        next.len()
    );

    let mut group = c.benchmark_group("score");
    group.sample_size(30);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));

    group.bench_function("normal_mix", |b| {
        b.iter_custom(|iters| score_in_order(&warm, next, iters))
    });

    // A request that fires rules (a first read of card numbers) and so
    // formats its reasons.
    let attack: Vec<RequestFeatures> = next
        .iter()
        .filter(|r| r.principal == "recs-service")
        .map(|r| {
            let mut r = r.clone();
            r.tables = vec!["payments".into()];
            r.sensitive_columns = vec![anomaly::SensitiveColumn::new(
                "payments.card_number",
                anomaly::Classification::Card,
            )];
            r
        })
        .collect();
    group.bench_function("flagged", |b| {
        b.iter_custom(|iters| score_in_order(&warm, &attack, iters))
    });
    group.finish();
}

/// Times `iters` requests of `next`, in order, on copies of `warm`.
fn score_in_order(warm: &Detector, next: &[RequestFeatures], iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let mut d = warm.clone();
        let n = left.min(next.len() as u64) as usize;
        let start = Instant::now();
        for r in &next[..n] {
            black_box(d.score(black_box(r)));
        }
        total += start.elapsed();
        left -= n as u64;
    }
    total
}

criterion_group!(benches, bench);
criterion_main!(benches);
