//! Cost of one Cedar decision with the default demo policies.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use policies::{
    Action, Category, ColumnSpec, PolicyEngine, PolicySource, PrincipalKind, PrincipalSpec,
    RequestContext, Resource, TableSpec,
};

fn engine() -> PolicyEngine {
    let principals = ["recs-service", "marketing-service", "orders-service"]
        .iter()
        .map(|name| PrincipalSpec {
            name: name.to_string(),
            kind: PrincipalKind::Service,
            roles: Vec::new(),
            attributes: BTreeMap::new(),
        })
        .collect::<Vec<_>>();
    let tables = [
        "customers",
        "events",
        "orders",
        "order_items",
        "payments",
        "products",
    ]
    .iter()
    .map(|t| TableSpec {
        name: t.to_string(),
        columns: (0..10)
            .map(|i| ColumnSpec {
                name: format!("c{i}"),
                category: Category::None,
                encrypted: false,
            })
            .collect(),
    })
    .collect::<Vec<_>>();
    PolicyEngine::load(&PolicySource::defaults(), &principals, &tables).expect("demo policies load")
}

fn bench(c: &mut Criterion) {
    let engine = engine();
    let ctx = RequestContext::local("recommendation");
    c.bench_function("authorize/table_allow", |b| {
        b.iter(|| {
            engine.authorize(
                black_box("recs-service"),
                Action::Read,
                Resource::Table("events"),
                ctx,
            )
        })
    });
    c.bench_function("authorize/table_forbid", |b| {
        b.iter(|| {
            engine.authorize(
                black_box("recs-service"),
                Action::Read,
                Resource::Table("customers"),
                ctx,
            )
        })
    });
    c.bench_function("authorize/column_allow", |b| {
        let column = Resource::Column {
            table: "events",
            column: "c3",
        };
        b.iter(|| engine.authorize(black_box("recs-service"), Action::Read, column, ctx))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
