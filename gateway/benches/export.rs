//! `cargo bench -p gateway --bench export`: transforming and writing an
//! export, rows per second, without the source query.
//!
//! - `csv_pseudonym_hour_200k_rows`: pseudonym with the dataset key, hour
//!   truncation, two kept columns, to CSV, rows held in one batch.
//! - `parquet_streamed_pseudonym_mask_500k_rows`: the streamed path as
//!   exports run it (batches of 1,024 rows through [`ExportWriter`]):
//!   pseudonym, a policy mask (`mask:email_partial`), hour truncation, an
//!   integer and a text column kept, to Parquet (Snappy), on one thread.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gateway::export::{write_dataset, DatasetSpec, ExportKeys, ExportWriter};
use serde_json::Value as Json;

const ROWS: usize = 200_000;
const STREAMED_ROWS: usize = 500_000;
const BATCH: usize = 1024;

fn timestamp(i: usize) -> Json {
    Json::from(format!(
        "2025-{:02}-{:02}T{:02}:17:42Z",
        1 + i % 12,
        1 + i % 28,
        i % 24
    ))
}

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
                timestamp(i),
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

    let streamed: DatasetSpec = toml::from_str(
        r#"
name = "bench_parquet"
source = "SELECT ..."
format = "parquet"
[columns]
user_id = "pseudonym"
email = "mask:email_partial"
product_id = "keep"
kind = "keep"
ts = "hour"
"#,
    )
    .expect("spec");
    let columns: Vec<(String, Option<String>)> = [
        ("user_id", "integer"),
        ("email", "text"),
        ("product_id", "integer"),
        ("kind", "text"),
        ("ts", "text"),
    ]
    .iter()
    .map(|(n, t)| (n.to_string(), Some(t.to_string())))
    .collect();
    let batches: Vec<Vec<Vec<Json>>> = (0..STREAMED_ROWS)
        .map(|i| {
            vec![
                Json::from(i % 50_000),
                Json::from(format!("customer{}@example.com", i % 50_000)),
                Json::from(i % 250),
                Json::from(["view", "add_to_cart", "purchase"][i % 3]),
                timestamp(i),
            ]
        })
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(<[_]>::to_vec)
        .collect();
    group.throughput(Throughput::Elements(STREAMED_ROWS as u64));
    group.bench_function("parquet_streamed_pseudonym_mask_500k_rows", |b| {
        b.iter(|| {
            let mut writer =
                ExportWriter::new(&streamed, &columns, &keys, dir.path()).expect("writer");
            for batch in &batches {
                writer.push(batch).expect("push");
            }
            writer.finish("bench").expect("finish")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
