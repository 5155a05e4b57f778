//! Parse + analyze + authorize (Cedar, decisions cached as in the server) +
//! rewrite into policy views, for typical queries, without the backend.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use gateway::access::{Policies, RequestOracle};
use gateway::catalog::{Catalog, ColumnInfo, TableInfo};
use gateway::config::Config;
use gateway::masks::Dialect;
use gateway::seed::DemoTable;
use gateway::sql::analyze;

/// The demo schema, from the seeder's own table definitions, as SQLite
/// (`main`) or PostgreSQL (`public`) has it.
fn catalog(dialect: Dialect) -> Catalog {
    let tables = DemoTable::ALL.iter().map(|t| TableInfo {
        name: t.name().to_string(),
        columns: t
            .columns()
            .iter()
            .map(|c| ColumnInfo {
                name: c.to_string(),
                decl_type: "TEXT".to_string(),
                primary_key: *c == "id",
            })
            .collect(),
    });
    match dialect {
        Dialect::Sqlite => Catalog::new(tables),
        Dialect::Postgres => Catalog::postgres("public", tables).expect("demo catalog"),
    }
}

const CONFIG: &str = r#"
[[principals]]
name = "orders-service"
kind = "service"
purposes = ["fulfilment"]
api_key_sha256 = "06a2442e08392c3d5a8ccf1917d5aae76bc7c046839b40fdf21c52fc4af8fda5"

[[principals]]
name = "marketing-service"
kind = "service"
purposes = ["marketing"]
api_key_sha256 = "cbc7bf624cdf9d8c58631798217505542bb2b2c02a0088a751ae8ff9b76dcdb2"
[classification]
"customers.email" = { category = "email" }
"customers.phone" = { category = "phone" }
"customers.birth_date" = { category = "dob" }
"orders.shipping_address" = { category = "address" }
"#;

/// (name, principal index in CONFIG, purpose, SQL). The point lookup and the
/// CTE run as marketing-service: a masked column and a row filter.
const QUERIES: &[(&str, usize, &str, &str)] = &[
    ("point_lookup", 1, "marketing", "SELECT id, email, region FROM customers WHERE id = 42"),
    (
        "join_3way",
        0,
        "fulfilment",
        "SELECT p.category, count(*) AS n, sum(i.quantity * i.unit_price_cents) AS revenue \
         FROM orders o JOIN order_items i ON i.order_id = o.id JOIN products p ON p.id = i.product_id \
         WHERE o.status = 'delivered' GROUP BY p.category ORDER BY revenue DESC",
    ),
    (
        "cte",
        1,
        "marketing",
        "WITH recent AS (SELECT customer_id, count(*) AS n FROM orders WHERE created_at >= '2025-06-01' \
         GROUP BY customer_id) SELECT c.region, avg(r.n) FROM recent r JOIN customers c ON c.id = r.customer_id \
         GROUP BY c.region",
    ),
];

fn bench(c: &mut Criterion) {
    bench_dialect(c, Dialect::Sqlite, "");
    // The same statements analyzed and rewritten for a PostgreSQL backend.
    bench_dialect(c, Dialect::Postgres, "/postgres");
}

fn bench_dialect(c: &mut Criterion, dialect: Dialect, suffix: &str) {
    let catalog = catalog(dialect);
    let config = Config::parse(Path::new("bench.toml"), CONFIG).expect("bench config");
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in policies::DEFAULT_POLICY_FILES {
        std::fs::write(dir.path().join(name), text).expect("write policy");
    }
    let tables = catalog.classify(&config).expect("classification");
    let specs: Vec<_> = config.principals.iter().map(|p| p.spec.clone()).collect();
    let policies = Policies::load(dir.path(), &specs, &tables, &catalog).expect("policies");
    for (name, who, purpose, sql) in QUERIES {
        let principal = &config.principals[*who];
        let run = || {
            let oracle = RequestOracle {
                policies: &policies,
                principal,
                context: policies::RequestContext::local(purpose),
                sealing: None,
            };
            analyze(black_box(sql), &catalog, oracle, dialect)
        };
        if let Err(e) = run() {
            panic!("{name}: {e}");
        }
        // Services repeat statements: the parse cache serves the text.
        c.bench_function(&format!("analyze_authorize_rewrite/{name}{suffix}"), |b| {
            b.iter(run)
        });
        // A statement seen for the first time: parsed too.
        c.bench_function(
            &format!("analyze_authorize_rewrite/{name}{suffix}/uncached"),
            |b| {
                b.iter(|| {
                    gateway::sql::clear_parse_cache();
                    run()
                })
            },
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
