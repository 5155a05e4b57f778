//! `cargo bench -p gateway --bench export`: transforming and writing an
//! export (pseudonym with the dataset key, hour truncation, two kept
//! columns) to CSV, rows per second, without the source query.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gateway::export::{write_dataset, DatasetSpec, ExportKeys};
use serde_json::Value as Json;

const ROWS: usize = 200_000;

fn bench(c: &mut Criterion) {
    let spec: DatasetSpec = toml::from_str(
        r#"
name = "bench"
source = "SELECT ..."
[columns]
user_id = "pseudonym"
product_id = "keep"
kind = "keep"
ts = "hour"
"#,
    )
    .expect("spec");
    let names: Vec<String> = ["user_id", "product_id", "kind", "ts"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let rows: Vec<Vec<Json>> = (0..ROWS)
        .map(|i| {
            vec![
                Json::from(i % 5000),
                Json::from(i % 250),
                Json::from(["view", "add_to_cart", "purchase"][i % 3]),
                Json::from(format!(
                    "2025-{:02}-{:02}T{:02}:17:42Z",
                    1 + i % 12,
                    1 + i % 28,
                    i % 24
                )),
            ]
        })
        .collect();
    let keys = ExportKeys {
        pseudonym_secret: &[7; 32],
        today: gateway::export::today(),
        progress: false,
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let mut group = c.benchmark_group("export");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS as u64));
    group.bench_function("csv_pseudonym_hour_200k_rows", |b| {
        b.iter(|| write_dataset(&spec, "bench", &names, &rows, &keys, dir.path()).expect("export"))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
