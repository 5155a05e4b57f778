//! Dataset exports end to end (issue 7, first slice): `privet export` with
//! the shipped specs over the demo store, on SQLite and PostgreSQL. The
//! source query runs through the policy pipeline as the ML team (which may
//! read nothing outside an export), every column is transformed, the
//! marketing dataset is k-anonymous, nothing raw leaks into the files, and
//! every export, allowed or refused, is one audit event.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use e2e::{on_both_backends, path_str, privet, Backend, Server};

on_both_backends! {
    shipped_specs_export_anonymized_files => crate::shipped_specs,
}

fn spec(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("datasets")
        .join(format!("{name}.toml"))
}

/// `privet export` of a shipped spec for `principal`; its output.
fn export(server: &Server, name: &str, principal: &str, out: &Path) -> std::process::Output {
    export_spec(server, &spec(name), principal, out)
}

/// `privet export --spec SPEC` for `principal`; its output.
fn export_spec(server: &Server, spec: &Path, principal: &str, out: &Path) -> std::process::Output {
    let mut args = vec![
        "export",
        "--spec",
        path_str(spec),
        "--out",
        path_str(out),
        "--as",
        principal,
        "--data-dir",
        path_str(&server.data_dir),
    ];
    if let Some(pg) = &server.pg {
        args.extend(["--backend", pg.url.as_str(), "--schema", pg.name.as_str()]);
    }
    privet(&args)
}

/// A Parquet file's rows, each value as text (integers as digits, NULL
/// as empty), checking the column types the export promises.
fn read_parquet(path: &Path) -> Vec<Vec<String>> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::record::Field;
    let file = std::fs::File::open(path).expect("parquet file");
    let reader = SerializedFileReader::new(file).expect("a Parquet file");
    let mut rows = Vec::new();
    for row in reader.get_row_iter(None).expect("rows") {
        let row = row.expect("row");
        rows.push(
            row.get_column_iter()
                .map(|(name, field)| match field {
                    Field::Null => String::new(),
                    Field::Str(s) => s.clone(),
                    Field::Long(n) => {
                        assert_eq!(name, "product_id", "only product_id is an integer");
                        n.to_string()
                    }
                    other => panic!("column {name}: unexpected {other:?}"),
                })
                .collect(),
        );
    }
    rows
}

fn csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(path).expect("csv");
    let mut lines = text.lines();
    let header = lines
        .next()
        .expect("header")
        .split(',')
        .map(str::to_owned)
        .collect();
    // The shipped specs produce no quoted fields (no commas in values).
    let rows = lines
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    (header, rows)
}

async fn shipped_specs(backend: Backend) {
    let Some(mut server) = Server::start_demo_on(backend, "exports_shipped") else {
        return;
    };
    // The ML team may not read raw rows outside an export.
    let reply = server
        .query(
            "ml-team",
            "analytics",
            "SELECT customer_id FROM events LIMIT 1",
        )
        .await;
    assert_eq!(
        reply.status,
        403,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    // Secrets to look for in the output files: e-mails, names, raw ids.
    let admin_rows = |sql: &'static str| {
        let server = &server;
        async move {
            server
                .query("admin", "admin", sql)
                .await
                .rows()
                .iter()
                .map(|r| {
                    r[0].as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| r[0].to_string())
                })
                .collect::<Vec<String>>()
        }
    };
    let mut secrets: Vec<String> = admin_rows("SELECT email FROM customers").await;
    secrets.extend(admin_rows("SELECT full_name FROM customers").await);
    secrets.extend(
        admin_rows("SELECT phone FROM customers")
            .await
            .into_iter()
            .filter(|p| p.starts_with('+'))
            .map(|p| p[1..].to_owned()),
    );
    secrets.extend(admin_rows("SELECT card_number FROM payments").await);

    // Through the running gateway: POST /v1/exports, then fetch it.
    let ml_key = format!("Bearer {}", server.key("ml-team"));
    let body = serde_json::json!({"dataset": "marketing", "purpose": "analytics"}).to_string();
    let reply = server
        .send(
            "POST",
            "/v1/exports",
            &[("authorization", &ml_key)],
            body.clone(),
        )
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let made = reply.json();
    assert!(
        made["report"]["k_anonymity"]["k_achieved"]
            .as_u64()
            .expect("k")
            >= 10
    );
    // Its status and report, then the file itself, streamed.
    let status_url = made["status_url"].as_str().expect("status path").to_owned();
    let status = server
        .send("GET", &status_url, &[("authorization", &ml_key)], "")
        .await;
    assert_eq!(status.status, 200);
    assert_eq!(status.json()["status"], "done");
    assert_eq!(
        status.json()["report"]["rows_written"],
        made["report"]["rows_written"]
    );
    let download = made["download"].as_str().expect("download path").to_owned();
    let fetched = server
        .send("GET", &download, &[("authorization", &ml_key)], "")
        .await;
    assert_eq!(fetched.status, 200);
    assert_eq!(
        fetched.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"text/csv; charset=utf-8"[..])
    );
    assert_eq!(
        fetched
            .headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()),
        Some(fetched.body.len().to_string().as_str()),
    );
    let content = String::from_utf8(fetched.body.to_vec()).expect("CSV is UTF-8");
    assert!(content.starts_with("customer,birth_date,"), "{content}");
    assert_eq!(
        content.lines().count() as u64,
        1 + made["report"]["rows_written"].as_u64().expect("rows")
    );
    for secret in &secrets {
        assert!(!content.contains(secret.as_str()), "{secret} leaked");
    }
    // Another principal: told nothing about it, and may not export.
    let other_key = format!("Bearer {}", server.key("marketing-service"));
    for path in [&status_url, &download] {
        let other = server
            .send("GET", path, &[("authorization", &other_key)], "")
            .await;
        assert_eq!(other.status, 404, "{path}");
    }
    let denied = server
        .send(
            "POST",
            "/v1/exports",
            &[("authorization", &other_key)],
            body,
        )
        .await;
    assert_eq!(
        denied.status,
        403,
        "{}",
        String::from_utf8_lossy(&denied.body)
    );
    let traversal = server
        .send(
            "GET",
            "/v1/exports/..%2F..%2Fprivet.toml",
            &[("authorization", &ml_key)],
            "",
        )
        .await;
    assert_eq!(traversal.status, 404);

    // While the gateway runs it holds the audit log: the CLI refuses.
    let out = tempfile::tempdir().expect("out dir");
    let refused = export(&server, "marketing", "ml-team", out.path());
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("audit"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    server.terminate();

    // Marketing: k-anonymous over age band, gender and zip3 (k = 10),
    // checked here by counting, not by the exporter's own report.
    let marketing = out.path().join("marketing");
    let run = export(&server, "marketing", "ml-team", &marketing);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (header, rows) = csv(&marketing.join("marketing.csv"));
    assert_eq!(
        header,
        [
            "customer",
            "birth_date",
            "gender",
            "region",
            "zip",
            "last_order",
            "orders",
            "spent_cents"
        ]
    );
    assert!(rows.len() > 30, "{} rows", rows.len());
    let mut classes: HashMap<(String, String, String), usize> = HashMap::new();
    for row in &rows {
        *classes
            .entry((row[1].clone(), row[2].clone(), row[4].clone()))
            .or_default() += 1;
        assert!(row[0].starts_with("p_"), "{row:?}");
        assert!(row[5].len() == 7 || row[5].is_empty(), "month: {row:?}");
    }
    assert!(classes.values().all(|n| *n >= 10), "{classes:?}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(marketing.join("report.json")).expect("report"))
            .expect("report JSON");
    assert!(report["k_anonymity"]["k_achieved"].as_u64().expect("k") >= 10);
    assert_eq!(report["rows_written"].as_u64(), Some(rows.len() as u64));
    let same = report["utility"]["same_segment_fraction"]
        .as_f64()
        .expect("RFM check");
    assert!((0.5..=1.0).contains(&same), "{}", report["utility"]);
    assert!(marketing.join("summary.txt").exists());

    // DP aggregates: released beside the dataset, groups above the
    // threshold only, and paid for: the POST and this export each spent
    // ε = 0.5 of ml-team's 10.
    let aggregates: serde_json::Value = serde_json::from_slice(
        &std::fs::read(marketing.join("aggregates.json")).expect("aggregates.json"),
    )
    .expect("aggregates JSON");
    // (On this small store most groups stay under the threshold, and
    // which do is up to the noise: only what holds for any draw is checked.)
    let by_region = &aggregates[0];
    assert_eq!(by_region["name"], "customers_by_region");
    assert_eq!(aggregates[1]["name"], "mean_spend_by_gender");
    let threshold = by_region["min_group_size"].as_i64().expect("threshold");
    for g in by_region["groups"].as_array().expect("groups") {
        assert!(g["value"].as_i64().expect("count") >= threshold, "{g}");
    }
    let delta: f64 = aggregates[1]["delta"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("delta");
    assert!(delta > 0.0 && delta <= 1e-5, "{delta}");
    let ledger = std::fs::read_to_string(server.data_dir.join("privacy-budget.tsv"))
        .expect("privacy budget ledger");
    assert_eq!(ledger, "ml-team\t10000000\t1000000\n");
    // A spec that would overspend is refused before it reads anything.
    let greedy_spec = out.path().join("greedy.toml");
    std::fs::write(
        &greedy_spec,
        std::fs::read_to_string(spec("marketing"))
            .expect("spec")
            .replace("epsilon = \"0.25\"", "epsilon = \"5\""),
    )
    .expect("write spec");
    let greedy_out = out.path().join("greedy");
    let greedy = export_spec(&server, &greedy_spec, "ml-team", &greedy_out);
    assert!(!greedy.status.success());
    let stderr = String::from_utf8_lossy(&greedy.stderr);
    assert!(stderr.contains("privacy_budget_exhausted"), "{stderr}");
    assert!(!greedy_out.join("marketing.csv").exists());
    assert_eq!(
        std::fs::read_to_string(server.data_dir.join("privacy-budget.tsv")).expect("ledger"),
        ledger,
        "a refused export spends nothing"
    );

    // Recommendations: pseudonymous users, hours, no other columns.
    let recs = out.path().join("recs");
    let run = export(&server, "recommendations", "ml-team", &recs);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (header, interactions) = csv(&recs.join("recommendations.csv"));
    assert_eq!(header, ["user_id", "product_id", "kind", "ts"]);
    assert!(interactions.iter().all(|r| r[3].ends_with(":00:00Z")));
    assert!(interactions.iter().any(|r| r[2] == "purchase"));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(recs.join("report.json")).expect("report"))
            .expect("report JSON");
    let utility = &report["utility"];
    assert!(
        utility["users_evaluated"].as_u64().expect("users") > 10,
        "{utility}"
    );
    for key in ["hit_rate_at_10_raw", "hit_rate_at_10_anonymized"] {
        let rate = utility[key].as_f64().expect("rate");
        assert!((0.0..=1.0).contains(&rate), "{utility}");
    }

    // Pseudonyms: stable within a dataset (a second run gives the same
    // tokens), unlinkable across datasets.
    let again = out.path().join("recs-again");
    assert!(export(&server, "recommendations", "ml-team", &again)
        .status
        .success());
    let users = |rows: &[Vec<String>]| rows.iter().map(|r| r[0].clone()).collect::<HashSet<_>>();
    let (_, interactions_again) = csv(&again.join("recommendations.csv"));
    assert_eq!(users(&interactions), users(&interactions_again));
    assert!(users(&interactions).is_disjoint(&users(&rows)));

    // The same dataset as Parquet, streamed: typed columns, the same rows.
    let parquet_spec = out.path().join("recs-parquet.toml");
    std::fs::write(
        &parquet_spec,
        std::fs::read_to_string(spec("recommendations"))
            .expect("spec")
            .replace("format = \"csv\"", "format = \"parquet\""),
    )
    .expect("write spec");
    let recs_parquet = out.path().join("recs-parquet");
    let run = export_spec(&server, &parquet_spec, "ml-team", &recs_parquet);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let parquet_rows = read_parquet(&recs_parquet.join("recommendations.parquet"));
    assert_eq!(parquet_rows.len(), interactions.len());
    let as_text = |rows: &[Vec<String>]| {
        let mut rows = rows.to_vec();
        rows.sort();
        rows
    };
    assert_eq!(as_text(&parquet_rows), as_text(&interactions));
    for row in &parquet_rows {
        for secret in &secrets {
            assert!(
                !row.iter().any(|v| v.contains(secret.as_str())),
                "{secret} leaked"
            );
        }
    }

    // Nothing raw in any file.
    for dir in [&marketing, &recs] {
        for entry in std::fs::read_dir(dir).expect("out") {
            let text = std::fs::read_to_string(entry.expect("entry").path()).expect("file");
            for secret in &secrets {
                assert!(!text.contains(secret.as_str()), "{secret} leaked");
            }
        }
    }

    // A principal without `export`: refused, no files, and audited.
    let denied_dir = out.path().join("denied");
    let denied = export(&server, "marketing", "marketing-service", &denied_dir);
    assert!(!denied.status.success());
    assert!(!denied_dir.join("marketing.csv").exists());
    // (The log itself: the search index catches up when the gateway runs.)
    let search = privet(&[
        "audit",
        "tail",
        "-n",
        "10",
        "--format",
        "json",
        "--data-dir",
        path_str(&server.data_dir),
    ]);
    let text = String::from_utf8_lossy(&search.stdout);
    assert!(
        text.contains("\"principal\":\"ml-team\"") || text.contains("\"principal\": \"ml-team\""),
        "{text}"
    );
    assert!(text.contains("marketing-service"), "{text}");
}
