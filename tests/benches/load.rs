//! End-to-end load benchmark: the real `privet` binary under concurrent
//! HTTP load, compared with the same SQL sent directly to the backend.
//!
//! ```sh
//! export CARGO_TARGET_DIR=/var/tmp/privet-target
//! cargo bench -p e2e --bench load                     # SQLite only
//! PRIVET_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench -p e2e --bench load                 # SQLite and PostgreSQL
//! ```
//!
//! For each backend (SQLite always, PostgreSQL when `PRIVET_TEST_POSTGRES`
//! names a server) the benchmark seeds the demo data at `PRIVET_LOAD_SCALE`
//! (default 0.2: 1,000 customers, 50,000 events, 10,000 orders), starts
//! `privet serve` on a free port (the release binary: `cargo bench` builds
//! this file in release and `e2e::privet_bin()` picks the binary of the same
//! profile; the path used is printed) and runs three workloads:
//!
//! * **point lookup**: `marketing-service` / `marketing`,
//!   `SELECT id, email, country FROM customers WHERE id = ?` (the id
//!   inlined), cycling over the opted-in customers. Through the gateway
//!   `email` is masked (`email_partial`) and the row filter
//!   `marketing_opt_in = 1` applies. (`country`, not `city`: the demo
//!   classifies `city` as an address, which marketing may not read.)
//! * **1,000-row scan**: `recs-service` / `recommendation`,
//!   `SELECT id, product_id, kind, ts FROM events ORDER BY id LIMIT 1000
//!   OFFSET k`, k in 0, 100, …, 1500.
//! * **3-way join + aggregate**: `recs-service` / `recommendation`, orders ⋈
//!   order_items ⋈ products over a 201-order id range, grouped by category
//!   (64 different ranges).
//!
//! `PRIVET_LOAD_ONLY=postgres,point` runs only the backends and workloads
//! whose names contain one of the words (for profiling one case).
//!
//! Each workload runs twice with `PRIVET_LOAD_CLIENTS` concurrent clients
//! (default 8) for `PRIVET_LOAD_SECONDS` (default 5) after a one-second
//! warm-up whose requests are not recorded:
//!
//! * **gateway**: `POST /v1/query` over HTTP/1.1, one keep-alive connection
//!   per client (handshake once, requests sent one after the other on it),
//!   the whole response body read. Every response must be HTTP 200; when
//!   more than 1% fail the workload is aborted and reported as failed.
//! * **direct**: the same SQL text straight to the backend, without the
//!   gateway's masks and filters (that difference is the point of the
//!   comparison). SQLite: one thread per client, each with its own read-only
//!   connection to the same store file, statement prepared per query and
//!   every value read, as the gateway's SQLite backend does. PostgreSQL: one
//!   tokio-postgres connection per client with `search_path` set to the
//!   test schema, statements prepared once per connection and text (bounded
//!   at 256, as the gateway's PostgreSQL backend does).
//!
//! Reported per workload: throughput (requests completed in the measured
//! window / its length), p50 and p99 latency in µs (nearest rank over every
//! recorded latency: 4 bytes per request, so memory stays in the low
//! megabytes), gateway/direct throughput ratio and the p50 latency the
//! gateway adds. Load generator, gateway and database share the machine's
//! cores, so read the figures as relative, not as capacity. The PostgreSQL
//! schema is dropped at the end (also when the run fails).

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use e2e::{Backend, PgSchema, Server};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::runtime::Runtime;

/// Seed of the demo data (any fixed value: the same rows on every run).
const SEED: &str = "7";
/// Requests run (but not recorded) before each measurement.
const WARM_UP: Duration = Duration::from_secs(1);
/// A workload is aborted once this many requests failed and they are more
/// than 1% of all sent so far; it fails if more than 1% failed at the end.
const MIN_ERRORS_TO_ABORT: u64 = 20;
/// Prepared statements kept per direct PostgreSQL connection (the gateway
/// keeps as many per pooled session).
const PG_STATEMENT_CACHE: usize = 256;

/// Run parameters, from the environment.
struct Params {
    scale: String,
    clients: usize,
    seconds: u64,
    /// Lower-case words that backend labels and workload names must
    /// contain, from `PRIVET_LOAD_ONLY` (`postgres,point`); empty: all.
    only: Vec<String>,
}

impl Params {
    /// Whether `PRIVET_LOAD_ONLY` lets `name` run: some word of the filter
    /// matches it, or no word of the filter matches anything of its kind.
    fn selects(&self, name: &str, kind: &[&str]) -> bool {
        let name = name.to_ascii_lowercase();
        let relevant: Vec<&String> = self
            .only
            .iter()
            .filter(|w| {
                kind.iter()
                    .any(|k| k.to_ascii_lowercase().contains(w.as_str()))
            })
            .collect();
        relevant.is_empty() || relevant.iter().any(|w| name.contains(w.as_str()))
    }
}

impl Params {
    fn from_env() -> Params {
        let scale = env_or("PRIVET_LOAD_SCALE", "0.2");
        let parsed: f64 = scale
            .parse()
            .unwrap_or_else(|e| panic!("PRIVET_LOAD_SCALE={scale}: {e}"));
        assert!(parsed > 0.0, "PRIVET_LOAD_SCALE must be positive");
        let clients = env_or("PRIVET_LOAD_CLIENTS", "8");
        let seconds = env_or("PRIVET_LOAD_SECONDS", "5");
        Params {
            only: env_or("PRIVET_LOAD_ONLY", "")
                .split(',')
                .map(|w| w.trim().to_ascii_lowercase())
                .filter(|w| !w.is_empty())
                .collect(),
            scale,
            clients: clients
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or_else(|| panic!("PRIVET_LOAD_CLIENTS={clients}: want a count > 0")),
            seconds: seconds
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .unwrap_or_else(|| panic!("PRIVET_LOAD_SECONDS={seconds}: want seconds > 0")),
        }
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let started = Instant::now();
    let params = Params::from_env();
    println!("Privet end-to-end load benchmark (gateway with its durable audit log: every request waits for its event's fsync)");
    println!("machine: {}", machine_info());
    println!(
        "parameters: scale {}, {} clients, {} s measured after {} s warm-up per run \
         (PRIVET_LOAD_SCALE, PRIVET_LOAD_CLIENTS, PRIVET_LOAD_SECONDS)",
        params.scale,
        params.clients,
        params.seconds,
        WARM_UP.as_secs()
    );
    print_binary();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut failed = 0;
    for backend in [Backend::Sqlite, Backend::Postgres] {
        let label = match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgresql",
        };
        if !params.selects(label, &["sqlite", "postgresql"]) {
            continue;
        }
        let Some(run) = BackendRun::start(backend, &params, &runtime) else {
            continue;
        };
        failed += run.measure(&params, &runtime);
        // Kills the server, drops the PostgreSQL schema, removes the data dir.
        drop(run);
    }
    println!("\ntotal time: {:.1?}", started.elapsed());
    if failed > 0 {
        eprintln!("{failed} workload(s) failed");
        std::process::exit(1);
    }
}

/// Cores, CPU model, memory and OS, as far as the system tells.
fn machine_info() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU", |(_, m)| m.trim())
        .to_string();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_gib = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(String::from("? GiB"), |kib| {
            format!("{:.0} GiB", kib as f64 / 1024.0 / 1024.0)
        });
    format!(
        "{cores} cores ({model}), {mem_gib}, {} {}",
        std::env::consts::OS,
        std::env::consts::ARCH
    )
}

/// Prints which `privet` binary is used and warns when it is not a release
/// build (`e2e::privet_bin()` follows the profile of this executable).
fn print_binary() {
    let exe = std::env::current_exe().expect("bench executable path");
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .and_then(Path::file_name)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Runs `cargo build` for the binary: a no-op when it is fresh, a
    // rebuild when the gateway changed since.
    let built = Instant::now();
    let bin = e2e::privet_bin();
    println!("bench executable: {}", exe.display());
    println!(
        "privet binary: {} (profile `{profile}`; cargo build took {:.1?})",
        bin.display(),
        built.elapsed()
    );
    if profile != "release" && std::env::var_os("PRIVET_BIN").is_none() {
        println!("WARNING: not a release build; these numbers say little about production");
    }
}

/// What the direct clients connect to.
enum Direct {
    Sqlite { path: PathBuf },
    Postgres { url: String, schema: String },
}

/// One backend under test: the running server and what the direct clients
/// need. Fields drop in order: the server (and its PostgreSQL schema) first,
/// then the temporary data dir.
struct BackendRun {
    label: &'static str,
    server: Server,
    direct: Direct,
    _temp: tempfile::TempDir,
}

impl BackendRun {
    /// Seeds the demo data at the requested scale and starts the gateway;
    /// None when PostgreSQL is not configured.
    fn start(backend: Backend, params: &Params, runtime: &Runtime) -> Option<BackendRun> {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("data");
        let started = Instant::now();
        match backend {
            Backend::Sqlite => {
                e2e::seed(&dir, &params.scale, SEED);
                let server = Server::start_in(&dir, &[]);
                println!(
                    "\n== SQLite: {} seeded and gateway started in {:.1?}",
                    dir.join("store.sqlite3").display(),
                    started.elapsed()
                );
                Some(BackendRun {
                    label: "SQLite",
                    direct: Direct::Sqlite {
                        path: server.data_dir.join("store.sqlite3"),
                    },
                    server,
                    _temp: temp,
                })
            }
            Backend::Postgres => {
                let Some(url) = std::env::var("PRIVET_TEST_POSTGRES")
                    .ok()
                    .filter(|u| !u.trim().is_empty())
                else {
                    println!("\n== PostgreSQL: skipped, PRIVET_TEST_POSTGRES is not set");
                    return None;
                };
                // The SQLite store keeps `serve` from seeding a scale-1 demo
                // store of its own; the data dir also holds config and keys.
                e2e::seed(&dir, &params.scale, SEED);
                // Created before seeding, so a failure still drops the schema.
                let schema = PgSchema {
                    url: url.clone(),
                    name: gateway::testing::unique_schema_name("load"),
                };
                e2e::seed_postgres(&dir, &url, &schema.name, &params.scale, SEED);
                let name = schema.name.clone();
                let mut server =
                    Server::start_in(&dir, &["--backend", &url, "--schema", &schema.name]);
                server.backend = Backend::Postgres;
                server.pg = Some(schema);
                let version = runtime.block_on(async {
                    let client = pg_connect(&url, &name).await;
                    let row = client
                        .query_one("SHOW server_version", &[])
                        .await
                        .expect("server version");
                    row.get::<_, String>(0)
                });
                println!(
                    "\n== PostgreSQL {version}: schema {name} seeded and gateway started in {:.1?}",
                    started.elapsed()
                );
                Some(BackendRun {
                    label: "PostgreSQL",
                    direct: Direct::Postgres { url, schema: name },
                    server,
                    _temp: temp,
                })
            }
        }
    }

    /// Runs the workloads, prints the table; returns how many failed.
    fn measure(&self, params: &Params, runtime: &Runtime) -> usize {
        let shape = self.shape(runtime);
        println!(
            "data: {} customers ({} opted in), {} events, {} orders (ids {}..={})",
            shape.customers,
            shape.opted_in.len(),
            shape.events,
            shape.orders,
            shape.order_ids.0,
            shape.order_ids.1
        );
        let mut rows = Vec::new();
        let mut failed = 0;
        let all = workloads(&shape);
        let names: Vec<&str> = all.iter().map(|w| w.name).collect();
        for workload in all.iter().filter(|w| params.selects(w.name, &names)) {
            println!("-- {}: {}", workload.name, workload.sqls[0]);
            match self.measure_one(workload, params, runtime) {
                Ok(row) => rows.push(row),
                Err(message) => {
                    println!("   FAILED: {message}");
                    failed += 1;
                }
            }
        }
        println!(
            "\n{} (scale {}, {} clients, {} s per run):\n",
            self.label, params.scale, params.clients, params.seconds
        );
        print_table(&rows);
        failed
    }

    /// One workload through the gateway, then directly.
    fn measure_one(
        &self,
        workload: &Workload,
        params: &Params,
        runtime: &Runtime,
    ) -> Result<ResultRow, String> {
        // One request each way first: the gateway must answer 200, and the
        // row counts say what each path returns.
        let reply = runtime.block_on(self.server.query(
            workload.principal,
            workload.purpose,
            &workload.sqls[0],
        ));
        if reply.status != 200 {
            return Err(format!(
                "the gateway answered HTTP {} to the first request: {}",
                reply.status,
                String::from_utf8_lossy(&reply.body)
            ));
        }
        let json = reply.json();
        let transforms: Vec<String> = json["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| {
                let transform = c["transform"].as_str()?;
                Some(format!(
                    "{} {}",
                    c["name"].as_str().unwrap_or("?"),
                    transform
                ))
            })
            .collect();
        let direct_rows = self.direct_once(&workload.sqls[0], runtime);
        println!(
            "   rows per request: gateway {} (transforms: {}), direct {direct_rows}",
            json["row_count"],
            if transforms.is_empty() {
                "none".to_string()
            } else {
                transforms.join(", ")
            }
        );

        let key = self.server.key(workload.principal);
        let gateway = runtime.block_on(run_gateway(
            self.server.addr,
            &key,
            workload,
            params.clients,
            params.seconds,
        ))?;
        println!("   gateway: {gateway}");
        let direct = match &self.direct {
            Direct::Sqlite { path } => {
                run_sqlite_direct(path, &workload.sqls, params.clients, params.seconds)
            }
            Direct::Postgres { url, schema } => runtime.block_on(run_pg_direct(
                url,
                schema,
                &workload.sqls,
                params.clients,
                params.seconds,
            )),
        }?;
        println!("   direct:  {direct}");
        Ok(ResultRow {
            workload: workload.name,
            gateway,
            direct,
        })
    }

    /// Sizes and keys of the seeded data, read directly.
    fn shape(&self, runtime: &Runtime) -> Shape {
        const IDS: &str = "SELECT id FROM customers WHERE marketing_opt_in = 1 ORDER BY id";
        const COUNTS: &str = "SELECT (SELECT count(*) FROM customers), \
             (SELECT count(*) FROM events), (SELECT count(*) FROM orders), \
             (SELECT min(id) FROM orders), (SELECT max(id) FROM orders)";
        let (opted_in, counts): (Vec<i64>, [i64; 5]) = match &self.direct {
            Direct::Sqlite { path } => {
                let conn = sqlite_open(path);
                let mut stmt = conn.prepare(IDS).expect("opted-in ids");
                let ids = stmt
                    .query_map([], |r| r.get(0))
                    .and_then(|rows| rows.collect())
                    .expect("opted-in ids");
                let counts = conn
                    .query_row(COUNTS, [], |r| {
                        Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?])
                    })
                    .expect("table sizes");
                (ids, counts)
            }
            Direct::Postgres { url, schema } => runtime.block_on(async {
                let client = pg_connect(url, schema).await;
                let ids = client
                    .query(IDS, &[])
                    .await
                    .expect("opted-in ids")
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                let r = client.query_one(COUNTS, &[]).await.expect("table sizes");
                (ids, [r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)])
            }),
        };
        assert!(!opted_in.is_empty(), "no opted-in customers at this scale");
        let [customers, events, orders, min_order, max_order] = counts;
        Shape {
            opted_in,
            customers,
            events,
            orders,
            order_ids: (min_order, max_order),
        }
    }

    /// Runs `sql` once directly; returns the number of rows.
    fn direct_once(&self, sql: &str, runtime: &Runtime) -> usize {
        match &self.direct {
            Direct::Sqlite { path } => sqlite_query(&sqlite_open(path), sql)
                .unwrap_or_else(|e| panic!("direct SQLite query failed: {e}\n{sql}")),
            Direct::Postgres { url, schema } => runtime.block_on(async {
                let client = pg_connect(url, schema).await;
                client
                    .query(sql, &[])
                    .await
                    .map(|rows| rows.len())
                    .unwrap_or_else(|e| {
                        panic!("direct PostgreSQL query failed: {}\n{sql}", pg_error(&e))
                    })
            }),
        }
    }
}

/// What the workloads are built from.
struct Shape {
    opted_in: Vec<i64>,
    customers: i64,
    events: i64,
    orders: i64,
    order_ids: (i64, i64),
}

/// A principal, a purpose and the SQL texts its clients cycle through.
struct Workload {
    name: &'static str,
    principal: &'static str,
    purpose: &'static str,
    sqls: Arc<Vec<String>>,
}

fn workloads(shape: &Shape) -> Vec<Workload> {
    let point = shape
        .opted_in
        .iter()
        .map(|id| format!("SELECT id, email, country FROM customers WHERE id = {id}"))
        .collect();
    let scan = (0..16)
        .map(|k| {
            format!(
                "SELECT id, product_id, kind, ts FROM events ORDER BY id LIMIT 1000 OFFSET {}",
                k * 100
            )
        })
        .collect();
    let (first, last) = shape.order_ids;
    let span = (last - 200 - first).max(0);
    let join = (0..64)
        .map(|i| {
            let a = first + span * i / 63;
            format!(
                "SELECT p.category, count(*), sum(i.quantity) FROM orders o \
                 JOIN order_items i ON i.order_id = o.id \
                 JOIN products p ON p.id = i.product_id \
                 WHERE o.id BETWEEN {a} AND {} GROUP BY p.category",
                a + 200
            )
        })
        .collect();
    vec![
        Workload {
            name: "point lookup (customers, masked email)",
            principal: "marketing-service",
            purpose: "marketing",
            sqls: Arc::new(point),
        },
        Workload {
            name: "1,000-row scan (events)",
            principal: "recs-service",
            purpose: "recommendation",
            sqls: Arc::new(scan),
        },
        Workload {
            name: "3-way join + aggregate",
            principal: "recs-service",
            purpose: "recommendation",
            sqls: Arc::new(join),
        },
    ]
}

// ---------------------------------------------------------------------------
// Timing and recording, shared by every kind of client.

/// The measurement window: requests started before `measure_from` are
/// warm-up; no request starts after `end`.
#[derive(Clone, Copy)]
struct Phases {
    measure_from: Instant,
    end: Instant,
}

impl Phases {
    fn starting_now(seconds: u64) -> Phases {
        let measure_from = Instant::now() + WARM_UP;
        Phases {
            measure_from,
            end: measure_from + Duration::from_secs(seconds),
        }
    }
}

/// Counters of all clients of one run, for the 1% error rule.
#[derive(Default)]
struct Shared {
    sent: AtomicU64,
    errors: AtomicU64,
    aborted: AtomicBool,
}

/// One client's record: its latencies and errors.
struct Recorder {
    phases: Phases,
    shared: Arc<Shared>,
    latencies: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

impl Recorder {
    fn new(phases: Phases, shared: Arc<Shared>) -> Recorder {
        Recorder {
            phases,
            shared,
            latencies: Vec::with_capacity(1 << 14),
            errors: 0,
            first_error: None,
        }
    }

    fn keep_going(&self) -> bool {
        Instant::now() < self.phases.end && !self.shared.aborted.load(Ordering::Relaxed)
    }

    /// Records a request that started at `started` and just finished.
    fn record(&mut self, started: Instant, outcome: Result<(), String>) {
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        let sent = self.shared.sent.fetch_add(1, Ordering::Relaxed) + 1;
        match outcome {
            Ok(()) => {
                if started >= self.phases.measure_from {
                    self.latencies.push(micros);
                }
            }
            Err(message) => {
                self.errors += 1;
                self.first_error.get_or_insert(message);
                let errors = self.shared.errors.fetch_add(1, Ordering::Relaxed) + 1;
                if errors >= MIN_ERRORS_TO_ABORT && errors * 100 > sent {
                    self.shared.aborted.store(true, Ordering::Relaxed);
                }
            }
        }
    }

    fn finish(self) -> ClientResult {
        ClientResult {
            latencies: self.latencies,
            errors: self.errors,
            first_error: self.first_error,
            finished: Instant::now(),
        }
    }
}

struct ClientResult {
    latencies: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
    finished: Instant,
}

/// Throughput and latency of one run.
struct Summary {
    requests: usize,
    per_second: f64,
    p50: u32,
    p99: u32,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests, {:.0} req/s, p50 {} µs, p99 {} µs",
            self.requests, self.per_second, self.p50, self.p99
        )
    }
}

/// Merges the clients' records; an error when more than 1% failed.
fn summarize(
    what: &str,
    phases: Phases,
    shared: &Shared,
    results: Vec<ClientResult>,
) -> Result<Summary, String> {
    let sent = shared.sent.load(Ordering::Relaxed);
    let errors: u64 = results.iter().map(|r| r.errors).sum();
    if errors * 100 > sent || shared.aborted.load(Ordering::Relaxed) {
        let first = results
            .iter()
            .find_map(|r| r.first_error.clone())
            .unwrap_or_default();
        return Err(format!(
            "{what}: {errors} of {sent} requests failed (more than 1%), aborted; first error: {first}"
        ));
    }
    let finished = results
        .iter()
        .map(|r| r.finished)
        .max()
        .unwrap_or(phases.end);
    let window = finished.saturating_duration_since(phases.measure_from);
    let mut all: Vec<u32> = results.into_iter().flat_map(|r| r.latencies).collect();
    if all.is_empty() {
        return Err(format!(
            "{what}: no request completed in the measured window"
        ));
    }
    all.sort_unstable();
    Ok(Summary {
        requests: all.len(),
        per_second: all.len() as f64 / window.as_secs_f64(),
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    })
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u32], p: f64) -> u32 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

// ---------------------------------------------------------------------------
// Clients driven by the tokio runtime: HTTP to the gateway, PostgreSQL.

/// One request of an async client, given its sequence number.
trait Op: Send + 'static {
    fn run(&mut self, i: usize) -> impl Future<Output = Result<(), String>> + Send;
}

/// Runs `ops` concurrently (one tokio task each) through warm-up and the
/// measured window.
async fn drive<O: Op>(
    what: &str,
    ops: Vec<O>,
    seconds: u64,
    cycle: usize,
) -> Result<Summary, String> {
    let shared = Arc::new(Shared::default());
    let phases = Phases::starting_now(seconds);
    let clients = ops.len();
    let tasks: Vec<_> = ops
        .into_iter()
        .enumerate()
        .map(|(c, mut op)| {
            let mut recorder = Recorder::new(phases, Arc::clone(&shared));
            // Clients start at different points of the cycle.
            let mut i = c * cycle / clients;
            tokio::spawn(async move {
                while recorder.keep_going() {
                    let started = Instant::now();
                    let outcome = op.run(i).await;
                    recorder.record(started, outcome);
                    i += 1;
                }
                recorder.finish()
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(
            task.await
                .map_err(|e| format!("{what}: client task: {e}"))?,
        );
    }
    summarize(what, phases, &shared, results)
}

/// A gateway client: one keep-alive HTTP/1.1 connection.
struct HttpOp {
    addr: SocketAddr,
    host: HeaderValue,
    auth: HeaderValue,
    bodies: Arc<Vec<Bytes>>,
    sender: SendRequest<Full<Bytes>>,
}

async fn http_connect(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream
        .set_nodelay(true)
        .map_err(|e| format!("TCP_NODELAY: {e}"))?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP handshake with {addr}: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

impl Op for HttpOp {
    async fn run(&mut self, i: usize) -> Result<(), String> {
        if self.sender.is_closed() {
            // The server closed the connection (after an error): reconnect.
            self.sender = http_connect(self.addr).await?;
        }
        self.sender
            .ready()
            .await
            .map_err(|e| format!("connection not ready: {e}"))?;
        let request = Request::post("/v1/query")
            .header(HOST, self.host.clone())
            .header(AUTHORIZATION, self.auth.clone())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(self.bodies[i % self.bodies.len()].clone()))
            .map_err(|e| format!("building the request: {e}"))?;
        let response = self
            .sender
            .send_request(request)
            .await
            .map_err(|e| format!("sending the request: {e}"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("reading the response: {e}"))?
            .to_bytes();
        if status != hyper::StatusCode::OK {
            return Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(500)])
            ));
        }
        black_box(body);
        Ok(())
    }
}

/// The workload through the gateway.
async fn run_gateway(
    addr: SocketAddr,
    key: &str,
    workload: &Workload,
    clients: usize,
    seconds: u64,
) -> Result<Summary, String> {
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        workload
            .sqls
            .iter()
            .map(|sql| {
                Bytes::from(
                    serde_json::json!({"sql": sql, "purpose": workload.purpose}).to_string(),
                )
            })
            .collect(),
    );
    let host = HeaderValue::from_str(&addr.to_string()).map_err(|e| e.to_string())?;
    let auth = HeaderValue::from_str(&format!("Bearer {key}")).map_err(|e| e.to_string())?;
    let mut ops = Vec::with_capacity(clients);
    for _ in 0..clients {
        ops.push(HttpOp {
            addr,
            host: host.clone(),
            auth: auth.clone(),
            bodies: Arc::clone(&bodies),
            sender: http_connect(addr).await?,
        });
    }
    drive("gateway", ops, seconds, bodies.len()).await
}

/// A direct PostgreSQL client: its own connection and statement cache.
struct PgOp {
    client: tokio_postgres::Client,
    sqls: Arc<Vec<String>>,
    statements: HashMap<String, tokio_postgres::Statement>,
}

impl Op for PgOp {
    async fn run(&mut self, i: usize) -> Result<(), String> {
        let sql = &self.sqls[i % self.sqls.len()];
        let statement = match self.statements.get(sql) {
            Some(s) => s.clone(),
            None => {
                let s = self.client.prepare(sql).await.map_err(|e| pg_error(&e))?;
                if self.statements.len() >= PG_STATEMENT_CACHE {
                    self.statements.clear();
                }
                self.statements.insert(sql.clone(), s.clone());
                s
            }
        };
        let rows = self
            .client
            .query(&statement, &[])
            .await
            .map_err(|e| pg_error(&e))?;
        black_box(rows);
        Ok(())
    }
}

/// The workload's SQL directly on PostgreSQL.
async fn run_pg_direct(
    url: &str,
    schema: &str,
    sqls: &Arc<Vec<String>>,
    clients: usize,
    seconds: u64,
) -> Result<Summary, String> {
    let mut ops = Vec::with_capacity(clients);
    for _ in 0..clients {
        ops.push(PgOp {
            client: pg_connect(url, schema).await,
            sqls: Arc::clone(sqls),
            statements: HashMap::new(),
        });
    }
    drive("direct PostgreSQL", ops, seconds, sqls.len()).await
}

/// A connection whose unqualified names resolve in `schema`.
async fn pg_connect(url: &str, schema: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connecting to {url}: {}", pg_error(&e)));
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET search_path TO \"{schema}\""))
        .await
        .unwrap_or_else(|e| panic!("setting search_path: {}", pg_error(&e)));
    client
}

/// The server's message when there is one ("db error" alone says little).
fn pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => db.to_string(),
        None => e.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Direct SQLite clients: one thread and connection each.

fn sqlite_open(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()))
}

/// Prepares and runs `sql`, reading every value; returns the row count.
fn sqlite_query(conn: &rusqlite::Connection, sql: &str) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare(sql)?;
    let width = stmt.column_count();
    let mut rows = stmt.query([])?;
    let mut count = 0;
    while let Some(row) = rows.next()? {
        for i in 0..width {
            black_box(row.get_ref(i)?);
        }
        count += 1;
    }
    Ok(count)
}

/// The workload's SQL directly on the SQLite store.
fn run_sqlite_direct(
    path: &Path,
    sqls: &[String],
    clients: usize,
    seconds: u64,
) -> Result<Summary, String> {
    let connections: Vec<_> = (0..clients).map(|_| sqlite_open(path)).collect();
    let shared = Arc::new(Shared::default());
    let phases = Phases::starting_now(seconds);
    let results = std::thread::scope(|scope| {
        let threads: Vec<_> = connections
            .into_iter()
            .enumerate()
            .map(|(c, conn)| {
                let mut recorder = Recorder::new(phases, Arc::clone(&shared));
                let mut i = c * sqls.len() / clients;
                scope.spawn(move || {
                    while recorder.keep_going() {
                        let started = Instant::now();
                        let outcome = sqlite_query(&conn, &sqls[i % sqls.len()])
                            .map(drop)
                            .map_err(|e| e.to_string());
                        recorder.record(started, outcome);
                        i += 1;
                    }
                    recorder.finish()
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().expect("SQLite client thread panicked"))
            .collect()
    });
    summarize("direct SQLite", phases, &shared, results)
}

// ---------------------------------------------------------------------------
// Report.

struct ResultRow {
    workload: &'static str,
    gateway: Summary,
    direct: Summary,
}

/// A Markdown table, ready for BENCHMARKS.md.
fn print_table(rows: &[ResultRow]) {
    println!(
        "| workload | gateway req/s | gateway p50 µs | gateway p99 µs | direct req/s | direct p50 µs | direct p99 µs | gateway/direct throughput | added p50 µs |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let (g, d) = (&row.gateway, &row.direct);
        println!(
            "| {} | {:.0} | {} | {} | {:.0} | {} | {} | {:.2} | {:+} |",
            row.workload,
            g.per_second,
            g.p50,
            g.p99,
            d.per_second,
            d.p50,
            d.p99,
            g.per_second / d.per_second,
            i64::from(g.p50) - i64::from(d.p50)
        );
    }
}
