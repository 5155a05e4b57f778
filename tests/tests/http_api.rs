//! The HTTP API end to end: the real `privet` binary, real HTTP, the real
//! SQLite demo store.

use e2e::{on_both_backends, path_str, privet, Backend, Server};

on_both_backends! {
    an_allowed_query_returns_the_rows_of_the_store => super::an_allowed_query_returns_the_rows_of_the_store,
    denied_tables_are_refused_naming_the_policy => super::denied_tables_are_refused_naming_the_policy,
}
use serde_json::{json, Value};

/// The same query run directly on the store, as JSON rows.
fn direct_rows(server: &Server, sql: &str) -> Vec<Vec<Value>> {
    let conn = server.store();
    let mut stmt = conn.prepare(sql).unwrap();
    let width = stmt.column_count();
    stmt.query_map([], |row| {
        (0..width)
            .map(|i| {
                Ok(match row.get_ref(i)? {
                    rusqlite::types::ValueRef::Null => Value::Null,
                    rusqlite::types::ValueRef::Integer(n) => n.into(),
                    rusqlite::types::ValueRef::Real(f) => f.into(),
                    rusqlite::types::ValueRef::Text(t) => {
                        String::from_utf8_lossy(t).into_owned().into()
                    }
                    rusqlite::types::ValueRef::Blob(_) => {
                        unreachable!("the demo store has no blobs")
                    }
                })
            })
            .collect()
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn count(server: &Server, table: &str) -> i64 {
    server
        .store()
        .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

/// On PostgreSQL the same rows come back (the seeder is deterministic and
/// the demo store in SQLite is the ground truth), with PostgreSQL's types.
async fn an_allowed_query_returns_the_rows_of_the_store(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "allowed_query") else {
        return;
    };
    let sql =
        "SELECT id, product_id, kind, ts FROM events WHERE kind = 'purchase' ORDER BY id LIMIT 7";
    let reply = server.query("recs-service", "recommendation", sql).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.json();
    let expected = direct_rows(&server, sql);
    assert!(!expected.is_empty(), "the seeded store has purchase events");
    assert_eq!(body["rows"], json!(expected));
    assert_eq!(body["row_count"], json!(expected.len()));
    assert_eq!(body["truncated"], json!(false));
    let (integer, timestamp) = match backend {
        Backend::Sqlite => ("integer", "text"),
        Backend::Postgres => ("int8", "timestamptz"),
    };
    assert_eq!(
        body["columns"],
        json!([
            {"name": "id", "type": integer, "transform": null},
            {"name": "product_id", "type": integer, "transform": null},
            {"name": "kind", "type": "text", "transform": null},
            {"name": "ts", "type": timestamp, "transform": null},
        ])
    );
    let request_id = body["request_id"].as_str().unwrap();
    assert_eq!(reply.headers["x-request-id"], request_id);

    // A join and an aggregate over two permitted tables.
    let sql = "SELECT o.status, count(*) AS n, sum(i.quantity) AS items FROM orders o \
               JOIN order_items i ON i.order_id = o.id GROUP BY o.status ORDER BY o.status";
    let reply = server.query("recs-service", "recommendation", sql).await;
    assert_eq!(reply.status, 200);
    let mut expected = direct_rows(&server, sql);
    if backend == Backend::Postgres {
        // sum(bigint) is numeric in PostgreSQL, and numerics come back as
        // exact decimal strings.
        for row in &mut expected {
            row[2] = row[2].to_string().into();
        }
    }
    assert_eq!(reply.json()["rows"], json!(expected));
}

async fn denied_tables_are_refused_naming_the_policy(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "denied_tables") else {
        return;
    };

    // An explicit forbid is named. The same text was just allowed for
    // another principal: analyses are cached per principal and context,
    // never shared across them.
    let allowed = server
        .query(
            "marketing-service",
            "marketing",
            "SELECT email FROM customers",
        )
        .await;
    assert_eq!(allowed.status, 200);
    let reply = server
        .query(
            "recs-service",
            "recommendation",
            "SELECT email FROM customers",
        )
        .await;
    assert_eq!(reply.status, 403);
    let error = &reply.json()["error"];
    assert_eq!(error["code"], "policy_denied");
    assert_eq!(
        error["policy_ids"],
        json!(["recs-no-customers-or-payments"])
    );
    assert_eq!(error["table"], "customers");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("recs-no-customers-or-payments") && message.contains("customers"),
        "{message}"
    );
    assert!(error["request_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));

    // Deny by default says so.
    let reply = server
        .query("orders-service", "fulfilment", "SELECT id FROM customers")
        .await;
    assert_eq!(reply.status, 403);
    let error = &reply.json()["error"];
    assert_eq!(error["policy_ids"], json!([]));
    assert!(error["message"]
        .as_str()
        .unwrap()
        .contains("deny by default"));

    // A permitted table for the wrong purpose: the principal may not declare it.
    let reply = server
        .query("recs-service", "marketing", "SELECT id FROM events")
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (403, "purpose_denied")
    );
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("recommendation"));
}

/// Table-level attacks: the denied table hidden in every position a query
/// can read from. Each must be refused, with no row of the table returned.
#[tokio::test]
async fn a_denied_table_is_refused_wherever_it_hides() {
    let server = Server::start_demo();
    for sql in [
        "SELECT id FROM events WHERE customer_id IN (SELECT id FROM customers WHERE email LIKE 'a%')",
        "SELECT e.id, c.email FROM events e JOIN customers c ON c.id = e.customer_id",
        "SELECT (SELECT email FROM customers LIMIT 1) FROM products",
        "SELECT id FROM products WHERE EXISTS (SELECT 1 FROM payments WHERE card_number LIKE '4%')",
        "SELECT kind FROM events UNION SELECT email FROM customers",
        "WITH c AS (SELECT email FROM customers) SELECT * FROM c",
        "WITH customers AS (SELECT 1 AS email) SELECT email FROM main.customers",
        "SELECT * FROM (SELECT * FROM (SELECT card_number FROM payments))",
        "SELECT email FROM \"CUSTOMERS\"",
        "SELECT email FROM main.Customers",
        "select email from customers -- ; select 1",
        "SELECT email FROM/**/customers",
    ] {
        let reply = server.query("recs-service", "recommendation", sql).await;
        assert_eq!(reply.status, 403, "{sql}: {}", String::from_utf8_lossy(&reply.body));
        assert_eq!(reply.error_code(), "policy_denied", "{sql}");
        assert!(!reply.json().to_string().contains('@'), "{sql} leaked an email");
    }
    for (sql, code) in [
        ("SELECT name, sql FROM sqlite_master", "unknown_table"),
        ("SELECT * FROM sqlite_schema", "unknown_table"),
        (
            "SELECT * FROM pragma_table_info('customers')",
            "unsupported_statement",
        ),
        ("SELECT * FROM json_each('[1]')", "unsupported_statement"),
        ("SELECT * FROM temp.customers", "unknown_table"),
        ("ATTACH DATABASE 'x.db' AS x", "unsupported_statement"),
        ("PRAGMA table_info('customers')", "unsupported_statement"),
        ("PRAGMA table_info(customers)", "sql_parse"),
    ] {
        let reply = server.query("recs-service", "recommendation", sql).await;
        assert_eq!(
            reply.status,
            400,
            "{sql}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.error_code(), code, "{sql}");
    }
}

#[tokio::test]
async fn bad_requests_get_their_specific_errors_and_the_server_keeps_serving() {
    let server = Server::start_demo();
    let key = format!("Bearer {}", server.key("recs-service"));
    let auth = [("authorization", key.as_str())];
    let customers_before = count(&server, "customers");

    // (what, headers, body, expected status, expected code)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "bad JSON",
            auth.to_vec(),
            b"{\"sql\": ".to_vec(),
            400,
            "bad_request",
        ),
        (
            "not an object",
            auth.to_vec(),
            b"[1, 2]".to_vec(),
            400,
            "bad_request",
        ),
        (
            "invalid UTF-8",
            auth.to_vec(),
            b"{\"sql\": \"\xff\xfe\", \"purpose\": \"x\"}".to_vec(),
            400,
            "bad_request",
        ),
        (
            "unknown field",
            auth.to_vec(),
            br#"{"sql": "SELECT 1", "purpose": "recommendation", "as": "admin"}"#.to_vec(),
            400,
            "bad_request",
        ),
        (
            "missing purpose",
            auth.to_vec(),
            br#"{"sql": "SELECT 1"}"#.to_vec(),
            400,
            "bad_request",
        ),
        (
            "missing sql",
            auth.to_vec(),
            br#"{"purpose": "recommendation"}"#.to_vec(),
            400,
            "bad_request",
        ),
        (
            "oversized body",
            auth.to_vec(),
            vec![b' '; (1 << 20) + 1],
            413,
            "payload_too_large",
        ),
        (
            "wrong key",
            vec![("authorization", "Bearer pvt_not_a_real_key")],
            br#"{"sql": "SELECT 1", "purpose": "recommendation"}"#.to_vec(),
            401,
            "unauthenticated",
        ),
        (
            "missing header",
            vec![],
            br#"{"sql": "SELECT 1", "purpose": "recommendation"}"#.to_vec(),
            401,
            "unauthenticated",
        ),
        (
            "not bearer",
            vec![("authorization", "Basic cmVjczpwdw==")],
            br#"{"sql": "SELECT 1", "purpose": "recommendation"}"#.to_vec(),
            401,
            "unauthenticated",
        ),
    ];
    for (what, headers, body, status, code) in cases {
        let reply = server.send("POST", "/v1/query", &headers, body).await;
        assert_eq!(
            reply.status,
            status,
            "{what}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.error_code(), code, "{what}");
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!message.is_empty(), "{what}: an error says what is wrong");
        if status == 401 {
            assert_eq!(reply.headers["www-authenticate"], "Bearer realm=\"privet\"");
        }
    }

    let missing_purpose = server
        .send(
            "POST",
            "/v1/query",
            &auth,
            br#"{"sql": "SELECT 1"}"#.to_vec(),
        )
        .await;
    assert!(
        missing_purpose.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("recommendation"),
        "the error lists the purposes the principal may declare"
    );

    for (sql, status, code) in [
        ("SELECT id FROM products; SELECT id FROM events", 400, "unsupported_statement"),
        ("SELECT id FROM products; DROP TABLE customers", 400, "unsupported_statement"),
        // A write no policy permits (writes are parsed: see encryption.rs).
        ("INSERT INTO products (id, sku, name, category, brand, price_cents) VALUES (999999, 'x', 'x', 'x', 'x', 1)", 403, "policy_denied"),
        ("DROP TABLE customers", 400, "unsupported_statement"),
        ("DELETE FROM events", 400, "unsupported_statement"),
        ("UPDATE customers SET email = 'x'", 400, "unsupported_statement"),
        ("SELEKT * FROM events", 400, "sql_parse"),
        ("SELECT * FROM no_such_table", 400, "unknown_table"),
        ("", 400, "bad_request"),
        ("SELECT no_such_column FROM events", 400, "unknown_column"),
        ("SELECT load_extension('x')", 400, "function_not_allowed"),
    ] {
        let reply = server.query("recs-service", "recommendation", sql).await;
        assert_eq!((reply.status, reply.error_code().as_str()), (status, code), "{sql}: {}", String::from_utf8_lossy(&reply.body));
    }
    let reply = server
        .query("recs-service", "recommendation", "DROP TABLE customers")
        .await;
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("DROP TABLE"));

    // Wrong method and unknown paths.
    let reply = server.send("GET", "/v1/query", &auth, Vec::new()).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (405, "method_not_allowed")
    );
    assert_eq!(reply.headers["allow"], "POST");
    let reply = server.send("GET", "/v2/everything", &[], Vec::new()).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (404, "not_found")
    );

    // Still serving, and nothing was written.
    let reply = server
        .query(
            "recs-service",
            "recommendation",
            "SELECT count(*) FROM events",
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(count(&server, "customers"), customers_before);
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

#[tokio::test]
async fn concurrent_queries_all_succeed() {
    let server = std::sync::Arc::new(Server::start_demo());
    let mut tasks = Vec::new();
    for i in 0..32 {
        let server = std::sync::Arc::clone(&server);
        tasks.push(tokio::spawn(async move {
            let sql = format!("SELECT id FROM products WHERE id = {}", i % 10 + 1);
            server
                .query("recs-service", "recommendation", &sql)
                .await
                .status
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn health_and_metrics() {
    let server = Server::start_demo();
    let reply = server.send("GET", "/healthz", &[], Vec::new()).await;
    // No request has been audited yet (health checks are not).
    assert_eq!(
        (reply.status, reply.json()),
        (200, json!({"status": "ok", "audit_events": 0}))
    );

    server
        .query(
            "recs-service",
            "recommendation",
            "SELECT id FROM events LIMIT 1",
        )
        .await;
    server
        .query("recs-service", "recommendation", "SELECT id FROM customers")
        .await;
    server.send("POST", "/v1/query", &[], b"{}".to_vec()).await;

    let reply = server.send("GET", "/metrics", &[], Vec::new()).await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    for line in [
        "privet_requests_total{principal=\"recs-service\",outcome=\"ok\"} 1",
        "privet_requests_total{principal=\"recs-service\",outcome=\"policy_denied\"} 1",
        "privet_requests_total{principal=\"anonymous\",outcome=\"unauthenticated\"} 1",
        "privet_request_duration_seconds_count 3",
        "privet_request_duration_seconds_bucket{le=\"+Inf\"} 3",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in:\n{text}"
        );
    }
}

#[tokio::test]
async fn first_start_prints_keys_once_and_a_restart_reuses_everything() {
    let mut server = Server::start_demo();
    let printed = server.stdout();
    let credentials = server.credentials();
    assert_eq!(credentials.len(), 7, "one key per demo principal");
    for (principal, key) in &credentials {
        assert!(
            printed.contains(key.as_str()),
            "{principal}'s key is printed on first start"
        );
    }
    assert!(
        printed.contains("curl -s http://"),
        "with a ready-to-paste curl example:\n{printed}"
    );
    let dir = server.data_dir.clone();

    let status = server.terminate();
    assert!(
        status.success(),
        "SIGTERM is a clean shutdown, got {status}"
    );

    let again = Server::start_in(&dir, &[]);
    assert_eq!(again.credentials(), credentials, "keys are reused");
    assert!(
        !again.stdout().contains("Demo API keys"),
        "keys are printed once only"
    );
    let reply = again
        .query(
            "marketing-service",
            "marketing",
            "SELECT id FROM customers LIMIT 2",
        )
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
}

#[test]
fn config_errors_name_file_line_and_field_and_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("privet.toml");
    std::fs::write(
        &config,
        "listen = \"127.0.0.1:0\"\n\n[[principals]]\nname = \"svc\"\nkind = \"robot\"\npurposes = [\"x\"]\napi_key_sha256 = \"00\"\n",
    )
    .unwrap();
    let out = privet(&["serve", "--config", path_str(&config)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("privet.toml") && stderr.contains("line 5") && stderr.contains("robot"),
        "{stderr}"
    );

    std::fs::write(&config, "[[principals]]\nname = \"svc\"\nkind = \"service\"\npurposes = [\"x\"]\napi_key_sha256 = \"00\"\n").unwrap();
    let out = privet(&["serve", "--config", path_str(&config)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("line 5") && stderr.contains("principals[0].api_key_sha256"),
        "{stderr}"
    );

    let out = privet(&[
        "serve",
        "--config",
        path_str(&dir.path().join("missing.toml")),
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
}

#[test]
fn an_invalid_policy_stops_startup_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    e2e::seed(&data, "0.01", "3");
    // First start creates the config and policies; stop it, then break a policy.
    let mut server = Server::start_in(&data, &[]);
    assert!(server.terminate().success());
    std::fs::write(
        data.join("policies").join("broken.cedar"),
        "@id(\"broken\")\npermit(principal, action, resource)\nwhen { context.purpse == \"x\" };\n",
    )
    .unwrap();
    let out = privet(&[
        "serve",
        "--data-dir",
        path_str(&data),
        "--listen",
        "127.0.0.1:0",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("broken.cedar:3:") && stderr.contains("purpse"),
        "{stderr}"
    );
}

/// A client that sends its headers and then trickles (here: stops sending)
/// its body gets a 408 after `limits.body_timeout_ms`, and the server keeps
/// serving others meanwhile.
#[tokio::test]
async fn slow_bodies_time_out_with_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut server = Server::start_demo();
    assert!(server.terminate().success());
    let config = server.data_dir.join("privet.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("\n[limits]\nbody_timeout_ms = 300\n");
    std::fs::write(&config, text).unwrap();
    let server = Server::start_in(&server.data_dir.clone(), &[]);

    let key = server.key("recs-service");
    let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let head = format!(
        "POST /v1/query HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-length: 100\r\n\r\n{{\"sql\": "
    );
    stream.write_all(head.as_bytes()).await.unwrap();

    // Others are served while that body is pending.
    let reply = server
        .query("recs-service", "recommendation", "SELECT 1")
        .await;
    assert_eq!(reply.status, 200);

    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert!(
        response.contains("\"code\":\"request_timeout\""),
        "{response}"
    );
}
