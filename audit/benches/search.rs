//! Search latency of the audit index at 1,000,000 events.
//!
//! `cargo bench -p audit --bench search`
//!
//! The index is built once from synthetic but realistic events (a handful of
//! services and analysts, skewed access to a few tables, 100,000 customers as
//! data subjects, ~90 days of traffic) and cached under
//! `/var/tmp/privet-bench-audit-index-1m-*` (override with
//! `PRIVET_BENCH_INDEX_DIR`); the name carries the index format and the
//! generator version, so a change of either rebuilds it. Building prints how
//! long indexing took. Before criterion runs, each query is timed 200 times
//! and its median and p95 printed, since criterion reports no percentiles.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use audit::index::INDEX_FORMAT;
use audit::{
    Anomaly, AuditIndex, ColumnAccess, Decision, Event, Outcome, Page, Subjects, TableAccess,
    TimeRange,
};
use criterion::{criterion_group, criterion_main, Criterion};

const EVENTS: u64 = 1_000_000;
/// Bump when the generator changes, so a cached index is rebuilt.
const GENERATOR_VERSION: u32 = 1;
const T0: i64 = 1_760_000_000_000_000;
const DAY_US: i64 = 86_400_000_000;
/// ~90 days of traffic: one event every ~7.8 s on average.
const STEP_US: i64 = 90 * DAY_US / EVENTS as i64;
const BATCH: usize = 10_000;
const COMMIT_EVERY: u64 = 100_000;
const RUNS: usize = 200;

/// SplitMix64: deterministic, dependency-free randomness.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
    /// Picks by weight from (item, weight) pairs.
    fn weighted<'a, T>(&mut self, items: &'a [(T, u64)]) -> &'a T {
        let total: u64 = items.iter().map(|(_, w)| w).sum();
        let mut r = self.below(total);
        for (item, w) in items {
            if r < *w {
                return item;
            }
            r -= w;
        }
        &items[0].0
    }
}

struct Principal {
    name: &'static str,
    roles: &'static [&'static str],
    purposes: &'static [&'static str],
}

const PRINCIPALS: &[(Principal, u64)] = &[
    (
        Principal {
            name: "marketing-service",
            roles: &["service", "marketing"],
            purposes: &["marketing"],
        },
        25,
    ),
    (
        Principal {
            name: "billing-service",
            roles: &["service", "billing"],
            purposes: &["billing"],
        },
        20,
    ),
    (
        Principal {
            name: "support-portal",
            roles: &["service", "support"],
            purposes: &["support"],
        },
        20,
    ),
    (
        Principal {
            name: "reporting-job",
            roles: &["service", "analyst"],
            purposes: &["analytics"],
        },
        10,
    ),
    (
        Principal {
            name: "alice",
            roles: &["analyst"],
            purposes: &["analytics", "fraud"],
        },
        5,
    ),
    (
        Principal {
            name: "bob",
            roles: &["support"],
            purposes: &["support"],
        },
        5,
    ),
    (
        Principal {
            name: "carol",
            roles: &["admin"],
            purposes: &["audit", "support"],
        },
        2,
    ),
    (
        Principal {
            name: "dpo",
            roles: &["dpo"],
            purposes: &["audit"],
        },
        1,
    ),
];

/// (table, columns read, fingerprint, subject entity).
type Template = (
    &'static str,
    &'static [&'static str],
    &'static str,
    Option<&'static str>,
);

const TEMPLATES: &[(Template, u64)] = &[
    (("customers", &["id", "email"], "SELECT id, email FROM customers WHERE segment = ? LIMIT ?", Some("customer")), 20),
    (("customers", &["id", "name", "email", "phone"], "SELECT id, name, email, phone FROM customers WHERE id = ?", Some("customer")), 15),
    (("customers", &["id", "country"], "SELECT country, count(*) FROM customers GROUP BY country", None), 5),
    (("orders", &["id", "customer_id", "total"], "SELECT id, customer_id, total FROM orders WHERE customer_id = ?", Some("customer")), 15),
    (("orders", &["total", "created_at"], "SELECT sum(total) FROM orders WHERE created_at >= ? AND created_at < ?", None), 10),
    (("payments", &["id", "order_id", "card_number", "amount"], "SELECT id, order_id, card_number, amount FROM payments WHERE order_id IN (?)", Some("customer")), 8),
    (("tickets", &["id", "customer_id", "body"], "SELECT id, customer_id, body FROM tickets WHERE status = ? ORDER BY created_at DESC LIMIT ?", Some("customer")), 12),
    (("employees", &["id", "name", "salary"], "SELECT name, salary FROM employees WHERE department = ?", Some("employee")), 3),
    (("customers", &["email", "phone"], "UPDATE customers SET email = ?, phone = ? WHERE id = ?", Some("customer")), 2),
];

fn decision_for(rng: &mut Rng, purpose: &str, column: &str) -> (Decision, Option<&'static str>) {
    let sensitive = matches!(
        column,
        "email" | "phone" | "card_number" | "salary" | "body"
    );
    if !sensitive {
        return (Decision::Plain, None);
    }
    match (purpose, column) {
        ("marketing", "email") => (Decision::Masked, Some("email_partial")),
        ("marketing", _) => (Decision::Denied, None),
        ("billing", "card_number") => (Decision::Masked, Some("last4")),
        ("support", "email" | "phone") if rng.below(10) == 0 => (Decision::Decrypted, None),
        ("support", _) => (Decision::Masked, Some("partial")),
        ("audit", _) => (Decision::Decrypted, None),
        (_, "salary") => (Decision::Denied, None),
        _ => (Decision::Masked, Some("hash")),
    }
}

fn event(rng: &mut Rng, seq: u64) -> Event {
    let principal = rng.weighted(PRINCIPALS);
    let purpose = *rng.pick(principal.purposes);
    let (table, columns, fingerprint, entity) = *rng.weighted(TEMPLATES);
    let mut tables = vec![TableAccess {
        table: table.into(),
        columns: columns
            .iter()
            .map(|c| {
                let (decision, mask) = decision_for(rng, purpose, c);
                ColumnAccess {
                    column: (*c).into(),
                    decision,
                    mask: mask.map(String::from),
                }
            })
            .collect(),
        row_filter: rng.below(4) == 0,
    }];
    if table == "orders" && rng.below(5) == 0 {
        tables.push(TableAccess {
            table: "customers".into(),
            columns: vec![ColumnAccess {
                column: "email".into(),
                decision: decision_for(rng, purpose, "email").0,
                mask: None,
            }],
            row_filter: false,
        });
    }
    let denied = tables
        .iter()
        .flat_map(|t| &t.columns)
        .any(|c| c.decision == Decision::Denied);
    let failed = !denied && rng.below(50) == 0;
    let outcome = if denied {
        Outcome::Denied
    } else if failed {
        Outcome::Failed
    } else {
        Outcome::Allowed
    };
    let rows = match outcome {
        Outcome::Allowed if entity.is_some() && fingerprint.contains("id = ?") => 1,
        Outcome::Allowed => [1, 3, 10, 25, 50, 100, 500, 2_000][rng.below(8) as usize],
        _ => 0,
    };
    // Subjects: skewed toward low ids (some customers are looked up a lot).
    let subjects = match entity {
        Some(entity) if outcome == Outcome::Allowed => {
            let n = rows.min(20);
            (0..n)
                .map(|_| {
                    let r = rng.below(100_000);
                    let id = if rng.below(2) == 0 { r % 1_000 } else { r };
                    format!("{entity}:{id}")
                })
                .collect()
        }
        _ => Vec::new(),
    };
    let mut policies: Vec<String> = tables
        .iter()
        .flat_map(|t| &t.columns)
        .filter(|c| c.decision != Decision::Plain)
        .map(|c| format!("{purpose}-{}-{}", c.column, c.decision.as_str()))
        .collect();
    policies.sort();
    policies.dedup();
    let jitter = rng.below(STEP_US as u64) as i64;
    Event {
        seq,
        time_us: T0 + seq as i64 * STEP_US + jitter,
        request_id: format!("{:016x}", rng.next()),
        principal: Some(principal.name.into()),
        roles: principal.roles.iter().map(|r| r.to_string()).collect(),
        source: format!("10.0.{}.{}", rng.below(4), rng.below(250)),
        purpose: Some(purpose.into()),
        endpoint: "query".into(),
        statement: Some(
            if fingerprint.starts_with("UPDATE") {
                "update"
            } else {
                "select"
            }
            .into(),
        ),
        fingerprint: Some(fingerprint.into()),
        tables,
        policies,
        rows,
        subjects: Subjects {
            ids: subjects,
            truncated: false,
            unattributed: false,
        },
        anomaly: if rng.below(200) == 0 {
            Anomaly {
                score: 0.8,
                action: "alert".into(),
                reasons: vec!["unusual volume".into()],
            }
        } else {
            Anomaly::default()
        },
        latency_us: 200 + rng.below(5_000),
        outcome,
        error_code: match outcome {
            Outcome::Denied => Some("policy_denied".into()),
            Outcome::Failed => Some("backend_error".into()),
            Outcome::Allowed => None,
        },
    }
}

fn index_dir() -> PathBuf {
    match std::env::var_os("PRIVET_BENCH_INDEX_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(format!(
            "/var/tmp/privet-bench-audit-index-1m-f{INDEX_FORMAT}-g{GENERATOR_VERSION}"
        )),
    }
}

/// Opens the cached index, or builds it (printing the time it took).
fn prepare() -> AuditIndex {
    let dir = index_dir();
    if let Ok(index) = AuditIndex::open(&dir) {
        if index.next_seq() == EVENTS {
            eprintln!("using cached index at {}", dir.display());
            return index;
        }
    }
    let index = AuditIndex::recreate(&dir).expect("recreate bench index");
    let mut rng = Rng(42);
    let started = Instant::now();
    let mut generating = Duration::ZERO;
    let mut seq = 0;
    while seq < EVENTS {
        let t = Instant::now();
        let batch: Vec<Event> = (seq..(seq + BATCH as u64).min(EVENTS))
            .map(|s| event(&mut rng, s))
            .collect();
        generating += t.elapsed();
        seq += batch.len() as u64;
        index.add(&batch).expect("add");
        if seq % COMMIT_EVERY == 0 || seq == EVENTS {
            index.commit().expect("commit");
        }
    }
    let total = started.elapsed();
    eprintln!(
        "indexed {EVENTS} events in {:.1} s ({:.1} s of it generating events) = {:.0} events/s of indexing, at {}",
        total.as_secs_f64(),
        generating.as_secs_f64(),
        EVENTS as f64 / (total - generating).as_secs_f64(),
        dir.display()
    );
    index
}

/// (name, query, time range, page).
fn queries() -> Vec<(&'static str, &'static str, TimeRange, Page)> {
    let end = T0 + EVENTS as i64 * STEP_US;
    let last_week = TimeRange {
        since_us: Some(end - 7 * DAY_US),
        until_us: Some(end),
    };
    vec![
        (
            "subject",
            "subject:\"customer:123\"",
            TimeRange::all(),
            Page::first(50),
        ),
        (
            "principal_and_column",
            "principal:marketing-service AND column:customers.email",
            TimeRange::all(),
            Page::first(50),
        ),
        (
            "denied_last_7_days",
            "outcome:denied",
            last_week,
            Page::first(50),
        ),
        ("fulltext_word", "salary", TimeRange::all(), Page::first(50)),
        (
            "fulltext_common_word",
            "customers",
            TimeRange::all(),
            Page::first(50),
        ),
        (
            "boolean_not",
            "table:customers AND NOT purpose:marketing",
            TimeRange::all(),
            Page::first(50),
        ),
        (
            "rows_range",
            "rows:[500 TO *]",
            TimeRange::all(),
            Page::first(50),
        ),
        (
            "all_page_100",
            "",
            TimeRange::all(),
            Page {
                offset: 100,
                limit: 50,
            },
        ),
    ]
}

fn percentiles(c: &mut Criterion) {
    let index = prepare();
    eprintln!(
        "{:<24} {:>9} {:>10} {:>10} {:>10}",
        "query", "total", "median", "p95", "max"
    );
    for (name, query, range, page) in queries() {
        let mut times = Vec::with_capacity(RUNS);
        let mut total = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let hits = index.search(query, range, page).expect("search");
            times.push(t.elapsed());
            total = hits.total;
        }
        times.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        eprintln!(
            "{name:<24} {total:>9} {:>8.2}ms {:>8.2}ms {:>8.2}ms",
            ms(times[RUNS / 2]),
            ms(times[RUNS * 95 / 100]),
            ms(times[RUNS - 1]),
        );
    }
    let subject_report = index
        .subject("customer:123", TimeRange::all(), Page::first(50))
        .expect("subject");
    eprintln!(
        "subject report for customer:123: {} events",
        subject_report.total
    );

    let mut group = c.benchmark_group("audit_search_1m");
    group.sample_size(50);
    for (name, query, range, page) in queries() {
        group.bench_function(name, |b| {
            b.iter(|| index.search(query, range, page).expect("search"))
        });
    }
    group.bench_function("subject_report", |b| {
        b.iter(|| {
            index
                .subject("customer:123", TimeRange::all(), Page::first(50))
                .expect("subject")
        })
    });
    group.finish();
}

criterion_group!(benches, percentiles);
criterion_main!(benches);
