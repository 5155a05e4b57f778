//! Durable append throughput: 1, 16 and 64 concurrent writers (tokio tasks
//! each appending in a loop); every append resolves only once its event is
//! fdatasync'ed, so this measures group commit.
//!
//! `cargo bench -p audit --bench append -- --warm-up-time 1 --measurement-time 5`
//!
//! The log lives in a temporary directory under `/var/tmp` (a real disk, not
//! tmpfs, so fdatasync costs what it costs in production).

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use audit::{AuditLog, LogOptions};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

/// Events appended per criterion iteration, per writer count: enough that
/// each iteration spans many batches.
fn events_per_iteration(writers: usize) -> u64 {
    match writers {
        1 => 50,
        w => 40 * w as u64,
    }
}

fn append(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("append");
    group.sample_size(10);
    for writers in [1usize, 16, 64] {
        let dir = tempfile::Builder::new()
            .prefix("privet-bench-append-")
            .tempdir_in("/var/tmp")
            .unwrap();
        let log = Arc::new(
            AuditLog::open(
                dir.path(),
                LogOptions {
                    checkpoint_interval: None,
                    ..LogOptions::default()
                },
            )
            .unwrap(),
        );
        let per_iter = events_per_iteration(writers);
        group.throughput(Throughput::Elements(per_iter));
        group.bench_function(format!("{writers}_writers"), |b| {
            b.iter_custom(|iters| {
                let total = iters * per_iter;
                let log = log.clone();
                runtime.block_on(async move {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..writers as u64)
                        .map(|w| {
                            let log = log.clone();
                            // Spread the events evenly over the writers.
                            let n = total / writers as u64 + u64::from(w < total % writers as u64);
                            tokio::spawn(async move {
                                for i in 0..n {
                                    log.append(common::event(w * 1_000_000 + i)).await.unwrap();
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.unwrap();
                    }
                    start.elapsed()
                })
            })
        });
        let size = log.size();
        drop(log);
        eprintln!("append/{writers}_writers: {size} events written in total");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = append
}
criterion_main!(benches);
