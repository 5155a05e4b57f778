//! Bulk AES-256-GCM throughput and the per-field cost of FieldCipher.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;
use vault::{aead, Field, Keystore, MasterKey};

fn bulk(c: &mut Criterion) {
    let key = [7u8; 32];
    let nonce = [1u8; 12];
    let data = vec![0x5au8; 1 << 20];
    let mut buf = Vec::with_capacity(data.len() + 16);
    let mut group = c.benchmark_group("aead");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_function("seal_aes256gcm_1MiB", |b| {
        b.iter(|| {
            buf.clear();
            buf.extend_from_slice(&data);
            aead::seal(black_box(&key), &nonce, b"", &mut buf).unwrap();
            black_box(&buf);
        })
    });
    group.finish();
}

fn field(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(Keystore::FILE_NAME);
    let mut ks = Keystore::create(&path, &MasterKey::from_bytes(&[3; 32])).unwrap();
    ks.ensure_column("customers", "email").unwrap();
    ks.ensure_subject("customer:42").unwrap();
    let cipher = ks.cipher();
    let field = Field {
        table: "customers",
        column: "email",
        row_key: "42",
    };
    let value = *b"jane@example.com"; // 16 bytes
    c.bench_function("field/round_trip_16B_subject", |b| {
        b.iter(|| {
            let ct = cipher
                .encrypt(black_box(&field), Some("customer:42"), black_box(&value))
                .unwrap();
            cipher.decrypt(&field, black_box(&ct)).unwrap()
        })
    });
    c.bench_function("field/round_trip_16B_no_subject", |b| {
        b.iter(|| {
            let ct = cipher
                .encrypt(black_box(&field), None, black_box(&value))
                .unwrap();
            cipher.decrypt(&field, black_box(&ct)).unwrap()
        })
    });
    c.bench_function("field/blind_index_16B", |b| {
        b.iter(|| {
            cipher
                .blind_index("customers", "email", black_box(&value))
                .unwrap()
        })
    });
}

criterion_group!(benches, bulk, field);
criterion_main!(benches);
