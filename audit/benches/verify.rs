//! Offline verification rate: `audit::verify` over a log of 200,000
//! realistic events (~600 bytes of JSON each) with checkpoints every 20,000.
//!
//! `cargo bench -p audit --bench verify -- --warm-up-time 1 --measurement-time 5`
//!
//! The log is built once per run (64 concurrent writers, durable appends)
//! in a temporary directory under `/var/tmp`.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use audit::{AuditLog, LogOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const EVENTS: u64 = 200_000;
const WRITERS: u64 = 64;
const CHECKPOINT_EVERY: u64 = 20_000;

fn build(dir: &std::path::Path) {
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let log = Arc::new(
        AuditLog::open(
            dir,
            LogOptions {
                checkpoint_interval: None,
                ..LogOptions::default()
            },
        )
        .unwrap(),
    );
    for chunk in 0..EVENTS / CHECKPOINT_EVERY {
        let base = chunk * CHECKPOINT_EVERY;
        runtime.block_on(async {
            let tasks: Vec<_> = (0..WRITERS)
                .map(|w| {
                    let log = log.clone();
                    tokio::spawn(async move {
                        let mut i = w;
                        while i < CHECKPOINT_EVERY {
                            log.append(common::event(base + i)).await.unwrap();
                            i += WRITERS;
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
        });
        log.checkpoint().unwrap();
    }
    eprintln!(
        "built a log of {} events in {:.1?}",
        log.size(),
        started.elapsed()
    );
}

fn verify(c: &mut Criterion) {
    let dir = tempfile::Builder::new()
        .prefix("privet-bench-verify-")
        .tempdir_in("/var/tmp")
        .unwrap();
    build(dir.path());
    let report = audit::verify(dir.path()).unwrap();
    assert_eq!(report.events, EVENTS);
    eprintln!(
        "one verify: {} events, {} checkpoints in {:.1?} ({:.0} events/s)",
        report.events, report.checkpoints, report.elapsed, report.events_per_sec
    );
    let mut group = c.benchmark_group("verify");
    group.sample_size(10);
    group.throughput(Throughput::Elements(EVENTS));
    group.bench_function("200k_events", |b| {
        b.iter(|| audit::verify(dir.path()).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = verify
}
criterion_main!(benches);
