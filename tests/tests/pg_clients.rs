//! Ordinary PostgreSQL clients against the real binary's wire front
//! (`privet serve --pg-listen`): the real `psql` running the README tour,
//! and tokio-postgres with prepared statements, binary parameters,
//! portals with row limits and transaction blocks.

use std::process::Command;

use e2e::Server;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;

/// `psql` as `principal` (its demo key in PGPASSWORD) declaring `purpose`,
/// unaligned, tuples only; (exit code, stdout, stderr).
fn psql(
    server: &Server,
    principal: &str,
    purpose: Option<&str>,
    sql: &str,
) -> (i32, String, String) {
    let addr = server.pg_addr().expect("pg address");
    let mut conninfo = format!(
        "host={} port={} dbname=privet user={principal} connect_timeout=10",
        addr.ip(),
        addr.port()
    );
    if let Some(purpose) = purpose {
        conninfo.push_str(&format!(" options='-c privet.purpose={purpose}'"));
    }
    let out = Command::new("psql")
        .args([&conninfo, "-X", "-A", "-t", "-F", "|", "-c", sql])
        .env("PGPASSWORD", server.key(principal))
        .env_remove("PGSSLMODE")
        .output()
        .expect("running psql");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn psql_runs_the_readme_tour() {
    if Command::new("psql").arg("--version").output().is_err() {
        eprintln!("SKIPPED psql_runs_the_readme_tour: no psql (apt-get install postgresql-client)");
        return;
    }
    let server = Server::start_demo();
    let store = server.store();

    // An allowed query.
    let (code, out, err) = psql(
        &server,
        "recs-service",
        Some("recommendation"),
        "SELECT product_id, kind, ts FROM events ORDER BY id LIMIT 3",
    );
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    let first: String = store
        .query_row("SELECT coalesce(product_id, '') || '|' || kind || '|' || ts FROM events ORDER BY id LIMIT 1", [], |r| r.get(0))
        .expect("ground truth");
    assert_eq!(lines[0], first);

    // A denied one: the message names the table and the policy.
    let (code, _, err) = psql(
        &server,
        "recs-service",
        Some("recommendation"),
        "SELECT e.id FROM events e WHERE e.customer_id IN (SELECT id FROM customers WHERE email LIKE 'a%')",
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("may not read table customers")
            && err.contains("recs-no-customers-or-payments"),
        "{err}"
    );

    // Masked columns and filtered rows.
    let (code, out, err) = psql(
        &server,
        "marketing-service",
        Some("marketing"),
        "SELECT id, email, zip, birth_date, marketing_opt_in FROM customers ORDER BY id LIMIT 2",
    );
    assert_eq!(code, 0, "{err}");
    for line in out.lines() {
        let cells: Vec<&str> = line.split('|').collect();
        assert_eq!(cells.len(), 5, "{line}");
        assert!(cells[1].contains("***@"), "email masked: {line}");
        assert!(cells[2].ends_with("**"), "zip masked: {line}");
        assert_eq!(cells[3].len(), 4, "birth year only: {line}");
        assert_eq!(cells[4], "1", "opted in only: {line}");
    }

    // The support agent's region filter, with the purpose set in-session.
    let (code, out, err) = psql(
        &server,
        "support-agent-eu",
        None,
        "SET privet.purpose = 'support'; SELECT region, count(*) AS customers FROM customers GROUP BY region",
    );
    assert_eq!(code, 0, "{err}");
    let eu: i64 = store
        .query_row(
            "SELECT count(*) FROM customers WHERE region = 'EU'",
            [],
            |r| r.get(0),
        )
        .expect("ground truth");
    // psql prints SET's tag, then the row.
    assert_eq!(
        out.trim().lines().last(),
        Some(format!("EU|{eu}").as_str()),
        "{out}"
    );

    // Decrypted phone numbers.
    let (code, out, err) = psql(
        &server,
        "support-agent-eu",
        Some("support"),
        "SELECT id, phone FROM customers ORDER BY id LIMIT 2",
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .all(|l| l.split('|').nth(1).is_some_and(|p| p.starts_with('+'))),
        "{out}"
    );

    // Other refusals, each with its own message.
    let (code, _, err) = psql(&server, "recs-service", Some("marketing"), "SELECT 1");
    assert_ne!(code, 0);
    assert!(
        err.contains("may not declare the purpose `marketing`"),
        "{err}"
    );
    let (code, out, err) = psql(
        &server,
        "recs-service",
        Some("recommendation"),
        "SELECT 1; DROP TABLE events",
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("DROP") && err.contains("not allowed"),
        "{out} {err}"
    );
    let (code, _, err) = psql(
        &server,
        "recs-service",
        Some("recommendation"),
        "SELECT sql FROM sqlite_master",
    );
    assert_ne!(code, 0);
    assert!(err.contains("sqlite_master"), "{err}");
    let (code, _, err) = psql(&server, "recs-service", None, "SELECT 1");
    assert_ne!(code, 0);
    assert!(err.contains("no purpose declared"), "{err}");

    // A wrong key.
    let addr = server.pg_addr().expect("pg address");
    let out = Command::new("psql")
        .args([
            &format!(
                "host={} port={} dbname=privet user=recs-service",
                addr.ip(),
                addr.port()
            ),
            "-X",
            "-c",
            "SELECT 1",
        ])
        .env("PGPASSWORD", "not-the-key")
        .output()
        .expect("running psql");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("password authentication failed"), "{err}");
}

#[tokio::test]
async fn prepared_statements_with_binary_parameters_portals_and_transactions() {
    let server = Server::start_demo();
    let store = server.store();
    let client = server
        .pg_connect("marketing-service", "marketing")
        .await
        .expect("login");

    // Parameter and result types: the id compared with $1 is an integer
    // column; email is masked, so it is text whatever it was.
    let statement = client
        .prepare("SELECT id, email, marketing_opt_in FROM customers WHERE id = $1")
        .await
        .expect("prepare");
    assert_eq!(statement.params(), &[Type::INT8]);
    let types: Vec<&Type> = statement.columns().iter().map(|c| c.type_()).collect();
    assert_eq!(types, [&Type::INT8, &Type::TEXT, &Type::INT8]);
    let opted_in: i64 = store
        .query_row(
            "SELECT id FROM customers WHERE marketing_opt_in = 1 ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("ground truth");
    let rows = client
        .query(&statement, &[&opted_in])
        .await
        .expect("query with a binary int8 parameter");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, i64>(0), opted_in);
    assert!(rows[0].get::<_, String>(1).contains("***@"));
    // The row filter holds whatever the parameter asks for.
    let opted_out: i64 = store
        .query_row(
            "SELECT id FROM customers WHERE marketing_opt_in <> 1 ORDER BY id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("ground truth");
    assert!(client
        .query(&statement, &[&opted_out])
        .await
        .expect("query")
        .is_empty());

    // A parameter is a value, never SQL.
    let injection = "x' OR '1'='1";
    let rows = client
        .query("SELECT CAST($1 AS TEXT) AS v", &[&injection])
        .await
        .expect("query");
    assert_eq!(rows[0].get::<_, String>(0), injection);

    // LIMIT from a parameter; text-format parameters too (simple strings).
    let rows = client
        .query("SELECT id FROM customers ORDER BY id LIMIT $1", &[&3i64])
        .await
        .expect("limit parameter");
    assert_eq!(rows.len(), 3);

    // A denied statement is refused when prepared, with its SQLSTATE.
    let denied = client
        .prepare("SELECT phone FROM customers")
        .await
        .expect_err("phone is denied to marketing");
    assert_eq!(
        denied.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{denied}"
    );

    // Portals with a row limit, inside a transaction block.
    let mut client = client;
    let transaction = client.transaction().await.expect("BEGIN");
    let statement = transaction
        .prepare("SELECT id FROM customers ORDER BY id LIMIT 5")
        .await
        .expect("prepare");
    let portal = transaction.bind(&statement, &[]).await.expect("bind");
    let first = transaction.query_portal(&portal, 2).await.expect("2 rows");
    let rest = transaction
        .query_portal(&portal, 10)
        .await
        .expect("the rest");
    assert_eq!((first.len(), rest.len()), (2, 3));
    assert!(first[1].get::<_, i64>(0) < rest[0].get::<_, i64>(0));
    // A write inside the block is refused, and the block is then aborted.
    let write = transaction
        .execute(
            "UPDATE customers SET marketing_opt_in = 0 WHERE id = 1",
            &[],
        )
        .await
        .expect_err("no writes in a block");
    assert_eq!(
        write.code(),
        Some(&SqlState::FEATURE_NOT_SUPPORTED),
        "{write}"
    );
    let aborted = transaction
        .query("SELECT 1", &[])
        .await
        .expect_err("aborted block");
    assert_eq!(
        aborted.code(),
        Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
        "{aborted}"
    );
    transaction.rollback().await.expect("ROLLBACK");
    // The session goes on.
    let n: i64 = client
        .query_one("SELECT count(*) FROM customers", &[])
        .await
        .expect("after ROLLBACK")
        .get(0);
    let want: i64 = store
        .query_row(
            "SELECT count(*) FROM customers WHERE marketing_opt_in = 1",
            [],
            |r| r.get(0),
        )
        .expect("ground truth");
    assert_eq!(n, want);

    // The refused prepare was audited, as a describe of the wire front.
    drop(client);
    let text = server.audit_search("endpoint:pg_describe").await;
    assert!(text.contains("phone"), "{text}");
}

#[test]
fn psycopg_binds_parameters_and_survives_refusals() {
    let python = "/usr/bin/python3";
    let has_psycopg = Command::new(python)
        .args(["-c", "import psycopg"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_psycopg {
        eprintln!(
            "SKIPPED psycopg_binds_parameters_and_survives_refusals: no psycopg for {python} (apt-get install python3-psycopg)"
        );
        return;
    }
    let server = Server::start_demo();
    let store = server.store();
    let id = |sql: &str| -> i64 {
        store
            .query_row(sql, [], |r| r.get(0))
            .expect("ground truth")
    };
    let opted_in = id("SELECT id FROM customers WHERE marketing_opt_in = 1 ORDER BY id LIMIT 1");
    let opted_out = id("SELECT id FROM customers WHERE marketing_opt_in <> 1 ORDER BY id LIMIT 1");
    let addr = server.pg_addr().expect("pg address");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/psycopg_client.py");
    let out = Command::new(python)
        .arg(script)
        .env("PRIVET_PG_HOST", addr.ip().to_string())
        .env("PRIVET_PG_PORT", addr.port().to_string())
        .env("PRIVET_PG_KEY", server.key("marketing-service"))
        .env("PRIVET_OPTED_IN", opted_in.to_string())
        .env("PRIVET_OPTED_OUT", opted_out.to_string())
        .output()
        .expect("running python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim() == "ok",
        "psycopg client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
