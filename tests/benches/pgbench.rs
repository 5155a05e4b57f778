//! `pgbench` through Privet's PostgreSQL front and, in the same run,
//! directly against PostgreSQL (issue 9).
//!
//! ```sh
//! export CARGO_TARGET_DIR=/var/tmp/privet-target
//! PRIVET_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench -p e2e --bench pgbench
//! ```
//!
//! Seeds the demo data into a fresh schema (`PRIVET_PGBENCH_SCALE`, default
//! 0.2: 1,000 customers), starts the release `privet serve --backend URL
//! --pg-listen 127.0.0.1:0` (audit on, as always), and runs
//! `pgbench -n -M prepared -f point_lookup.sql -c C -T S` twice:
//!
//! * **privet**: user `marketing-service` with its key, purpose `marketing`
//!   in `PGOPTIONS`; `email` is masked and the opt-in row filter applies;
//! * **direct**: the same script against PostgreSQL, `search_path` set to
//!   the schema.
//!
//! `point_lookup.sql`:
//!
//! ```text
//! \set id random(1, CUSTOMERS)
//! SELECT id, email, country FROM customers WHERE id = :id;
//! ```
//!
//! C = `PRIVET_PGBENCH_CLIENTS` (default 16), S = `PRIVET_PGBENCH_SECONDS`
//! (default 15). Prints pgbench's TPS and average latency for both and
//! their ratio. pgbench, gateway and database share the machine's cores.

use std::process::Command;

use e2e::{PgSchema, Server};

fn main() {
    let Some(url) = std::env::var("PRIVET_TEST_POSTGRES")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("SKIPPED: set PRIVET_TEST_POSTGRES to a PostgreSQL server to run pgbench");
        return;
    };
    if Command::new("pgbench").arg("--version").output().is_err() {
        eprintln!("SKIPPED: no pgbench (apt-get install postgresql-client)");
        return;
    }
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let scale = env("PRIVET_PGBENCH_SCALE", "0.2");
    let clients = env("PRIVET_PGBENCH_CLIENTS", "16");
    let seconds = env("PRIVET_PGBENCH_SECONDS", "15");

    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    let schema = PgSchema {
        url: url.clone(),
        name: gateway::testing::unique_schema_name("pgbench"),
    };
    e2e::seed_postgres(&dir, &url, &schema.name, &scale, "7");
    let server = Server::start_on_postgres(&dir, &url, &schema.name);
    println!("privet binary: {}", e2e::privet_bin().display());
    let addr = server.pg_addr().expect("the PostgreSQL address");
    let customers = (5000.0 * scale.parse::<f64>().expect("scale")).round() as u64;
    let script = temp.path().join("point_lookup.sql");
    std::fs::write(
        &script,
        format!(
            "\\set id random(1, {customers})\nSELECT id, email, country FROM customers WHERE id = :id;\n"
        ),
    )
    .expect("script");
    let script = script.to_str().expect("utf-8 path").to_owned();

    let run = |name: &str, conninfo: String, password: Option<String>, options: String| {
        let mut command = Command::new("pgbench");
        command
            .args([
                "-n", "-M", "prepared", "-f", &script, "-c", &clients, "-j", "2",
            ])
            .args(["-T", &seconds, &conninfo])
            .env("PGOPTIONS", options)
            .env("PGSSLMODE", "disable");
        if let Some(password) = password {
            command.env("PGPASSWORD", password);
        }
        let out = command.output().expect("running pgbench");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "pgbench {name} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let number = |prefix: &str| -> f64 {
            stdout
                .lines()
                .find_map(|l| l.trim().strip_prefix(prefix))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("no `{prefix}` in pgbench's output:\n{stdout}"))
        };
        let tps = number("tps = ");
        let latency_ms = number("latency average = ");
        let failed = stdout
            .lines()
            .find_map(|l| l.trim().strip_prefix("number of failed transactions: "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        assert_eq!(failed, 0, "pgbench {name}: failed transactions:\n{stdout}");
        println!("{name:>7}: {tps:>9.0} TPS, latency average {latency_ms:.3} ms");
        tps
    };
    println!(
        "pgbench -n -M prepared -c {clients} -j 2 -T {seconds}, point lookup on {customers} customers"
    );
    let privet = run(
        "privet",
        format!(
            "host={} port={} dbname=privet user=marketing-service",
            addr.ip(),
            addr.port()
        ),
        Some(server.key("marketing-service")),
        "-c privet.purpose=marketing".into(),
    );
    let direct = run(
        "direct",
        url.clone(),
        None,
        format!("-c search_path={}", schema.name),
    );
    println!("ratio privet/direct: {:.2}", privet / direct);
    drop(server);
}
