//! Dataset writer throughput, 500,000 export-like rows to Parquet and to
//! CSV: `cargo bench -p anonymizer --bench output`.
//!
//! The rows are built up front, so this measures the writer alone (type
//! checks, encoding, compression, the file write and fsync); criterion
//! reports rows/s as elements/s.

use std::hint::black_box;

use anonymizer::output::{ColumnType, DatasetWriter, Format, OutputColumn};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const ROWS: usize = 500_000;

const KINDS: &[&str] = &["view", "click", "add_to_cart", "purchase", "return"];

/// (pseudonym, product id, event kind, timestamp), as an export of
/// interactions produces them after pseudonymization.
fn rows() -> Vec<Vec<Option<String>>> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..ROWS)
        .map(|i| {
            // xorshift: pseudonyms that do not compress away.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let user = format!("p_{:016x}{:08x}", state, (state >> 17) as u32);
            let product = 10_000 + (state % 5_000);
            vec![
                Some(user),
                Some(product.to_string()),
                Some(KINDS[i % KINDS.len()].to_owned()),
                Some("2025-03-04T17:00:00Z".to_owned()),
            ]
        })
        .collect()
}

fn columns() -> [OutputColumn; 4] {
    [
        OutputColumn::new("user", ColumnType::Text),
        OutputColumn::new("product_id", ColumnType::Integer),
        OutputColumn::new("kind", ColumnType::Text),
        OutputColumn::new("at", ColumnType::Text),
    ]
}

fn write_throughput(c: &mut Criterion) {
    let rows = rows();
    let columns = columns();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut group = c.benchmark_group("output");
    group.sample_size(10);
    group.throughput(Throughput::Elements(ROWS as u64));
    for format in [Format::Parquet, Format::Csv] {
        let path = dir.path().join(format!("bench.{}", format.extension()));
        group.bench_function(format.extension(), |b| {
            b.iter(|| {
                let mut writer =
                    DatasetWriter::create(&path, format, &columns).expect("create the dataset");
                for row in &rows {
                    writer.write_row(black_box(row)).expect("write a row");
                }
                black_box(writer.finish().expect("finish the dataset"))
            })
        });
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        println!("output/{}: {ROWS} rows, {size} bytes", format.extension());
    }
    group.finish();
}

criterion_group!(benches, write_throughput);
criterion_main!(benches);
