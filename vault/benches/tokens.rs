use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use vault::TokenKey;

fn tokens(c: &mut Criterion) {
    let key = TokenKey::from_bytes(&[7; 32]);
    c.bench_function("pseudonym/email", |b| {
        b.iter(|| {
            key.pseudonym(
                black_box("customers.email"),
                black_box(b"jane.doe@example.com"),
            )
        })
    });
    c.bench_function("pseudonym/id", |b| {
        b.iter(|| key.pseudonym(black_box("customers.id"), black_box(b"1234567")))
    });
}

criterion_group!(benches, tokens);
criterion_main!(benches);
