//! PostgreSQL-only behaviour, end to end: the gateway losing its database
//! and recovering without a restart, statement timeouts, pool exhaustion,
//! and connection strings whose passwords never show. (The policy engine's
//! tests and the attack corpus run on both backends in their own files.)

use std::sync::Arc;

use e2e::{seed, seed_postgres, PgSchema, Server};
use tokio_postgres::NoTls;

/// An admin connection to the test server.
async fn admin(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!("PRIVET_TEST_POSTGRES is set but the server is unreachable: {e}")
        });
    tokio::spawn(connection);
    client
}

/// A login role of this test's own, dropped at the end.
struct Role {
    url: String,
    name: String,
}

impl Drop for Role {
    fn drop(&mut self) {
        gateway::testing::cleanup(
            &self.url,
            &format!(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{r}'; \
                 DROP OWNED BY {r}; DROP ROLE IF EXISTS {r}",
                r = self.name
            ),
        );
    }
}

/// `url` with `user:password@` in place of its user.
fn url_as(url: &str, user: &str, password: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("a postgres:// URL");
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    format!("{scheme}://{user}:{password}@{host}")
}

/// The demo seeded into a fresh schema, and a gateway connecting as a role
/// of its own (SELECT-only) with a password in its connection string.
/// `limits` is appended to the generated config before the final start.
async fn start(test: &str, limits: &str) -> Option<(Server, Role, String)> {
    let url = gateway::testing::postgres_url(test)?;
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    seed(&dir, "0.02", "7");
    let schema = PgSchema {
        url: url.clone(),
        name: gateway::testing::unique_schema_name(test),
    };
    seed_postgres(&dir, &url, &schema.name, "0.02", "7");
    let role = Role {
        url: url.clone(),
        name: schema.name.replace("privet_t_", "privet_r_"),
    };
    admin(&url)
        .await
        .batch_execute(&format!(
            "CREATE ROLE {r} LOGIN PASSWORD 'pg-s3cret-word'; \
             GRANT USAGE ON SCHEMA {s} TO {r}; \
             GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {r}",
            r = role.name,
            s = schema.name
        ))
        .await
        .expect("creating the test role");
    let backend = url_as(&url, &role.name, "pg-s3cret-word");
    let args = [
        "--backend",
        backend.as_str(),
        "--schema",
        schema.name.as_str(),
    ];
    // First start generates the config; then the limits are added.
    let mut first = Server::start_in(&dir, &args);
    first.terminate();
    let config = dir.join("privet.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(limits);
    std::fs::write(&config, text).expect("config");
    let mut server = Server::start_in(&dir, &args);
    server.backend = e2e::Backend::Postgres;
    server.pg = Some(schema);
    server.adopt_temp(temp);
    Some((server, role, url))
}

const POINT: &str = "SELECT id, product_id, kind FROM events WHERE id = 42";

/// A cross join the server cannot finish before a short statement timeout.
const SLOW: &str = "SELECT count(*) FROM events a, events b, events c";

/// Waits until PostgreSQL reports a `count(*)` statement of `role` running.
async fn wait_until_counting(admin: &tokio_postgres::Client, role: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let active: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND state = 'active' \
                 AND query LIKE '%count(*)%'",
                &[&role],
            )
            .await
            .unwrap()
            .get(0);
        if active > 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the slow query never started"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn losing_postgres_gives_clean_503s_and_the_gateway_recovers_by_itself() {
    let Some((server, role, url)) = start("pg_outage", "").await else {
        return;
    };
    let before = server.query("recs-service", "recommendation", POINT).await;
    assert_eq!(
        before.status,
        200,
        "{}",
        String::from_utf8_lossy(&before.body)
    );

    // The database goes away for this gateway: its sessions are killed and
    // no new one is allowed in.
    let admin = admin(&url).await;
    admin
        .batch_execute(&format!(
            "ALTER ROLE {r} NOLOGIN; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{r}'",
            r = role.name
        ))
        .await
        .unwrap();
    for _ in 0..3 {
        let reply = server.query("recs-service", "recommendation", POINT).await;
        assert_eq!(
            reply.status,
            503,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let body = reply.json();
        assert_eq!(body["error"]["code"], "backend_unavailable", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("postgres://{}@", role.name)),
            "the error names the backend: {message}"
        );
        assert!(!message.contains("pg-s3cret-word"), "{message}");
    }

    // Back: the next request succeeds, without a restart.
    admin
        .batch_execute(&format!("ALTER ROLE {} LOGIN", role.name))
        .await
        .unwrap();
    let after = server.query("recs-service", "recommendation", POINT).await;
    assert_eq!(
        after.status,
        200,
        "{}",
        String::from_utf8_lossy(&after.body)
    );
    assert_eq!(after.json()["rows"], before.json()["rows"]);

    let printed = format!("{}{}", server.stdout(), server.log());
    assert!(
        printed.contains(&format!("postgres://{}@", role.name)),
        "{printed}"
    );
    assert!(
        !printed.contains("pg-s3cret-word"),
        "a password reached the output:\n{printed}"
    );
}

#[tokio::test]
async fn slow_queries_time_out_with_504_and_a_full_pool_refuses_with_503() {
    let limits = "\n[limits]\nstatement_timeout_ms = 1500\npool_size = 1\npool_wait_ms = 100\n";
    let Some((server, role, url)) = start("pg_timeout", limits).await else {
        return;
    };
    let server = Arc::new(server);
    let running = {
        let server = Arc::clone(&server);
        tokio::spawn(async move { server.query("recs-service", "recommendation", SLOW).await })
    };
    // Wait until PostgreSQL reports the slow statement running: the one
    // pooled connection is then busy.
    let admin = admin(&url).await;
    wait_until_counting(&admin, &role.name).await;
    let busy = server.query("recs-service", "recommendation", POINT).await;
    assert_eq!(busy.status, 503, "{}", String::from_utf8_lossy(&busy.body));
    assert_eq!(busy.json()["error"]["code"], "backend_busy");

    let timed_out = running.await.unwrap();
    assert_eq!(
        timed_out.status,
        504,
        "{}",
        String::from_utf8_lossy(&timed_out.body)
    );
    assert_eq!(timed_out.json()["error"]["code"], "query_timeout");

    // The session survived the cancelled statement and serves again.
    let again = server.query("recs-service", "recommendation", POINT).await;
    assert_eq!(
        again.status,
        200,
        "{}",
        String::from_utf8_lossy(&again.body)
    );
}

/// A client that hangs up while its query runs is still audited: the
/// request runs to its end (here the statement timeout) whatever the
/// connection does, and its event is written. Before requests ran in tasks
/// of their own, hyper dropped the request with the connection and the
/// event was never written.
#[tokio::test]
async fn a_client_hanging_up_mid_query_is_still_audited() {
    use tokio::io::AsyncWriteExt as _;
    let limits = "\n[limits]\nstatement_timeout_ms = 1000\n";
    let Some((server, role, url)) = start("pg_hang_up", limits).await else {
        return;
    };
    let body = serde_json::json!({"sql": SLOW, "purpose": "recommendation"}).to_string();
    let request = format!(
        "POST /v1/query HTTP/1.1\r\nHost: privet\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        server.key("recs-service"),
        body.len()
    );
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    // Hang up once the statement is running, without reading the answer.
    wait_until_counting(&admin(&url).await, &role.name).await;
    drop(stream);
    // The request's log line comes after its event is durable.
    server.wait_for_log("\"recs-service\"");
    let found = server.audit_search("principal:%22recs-service%22").await;
    let found: serde_json::Value = serde_json::from_str(&found).expect("search JSON");
    let events = found["events"].as_array().cloned().unwrap_or_default();
    assert_eq!(events.len(), 1, "{found}");
    assert_eq!(events[0]["error_code"], "query_timeout", "{found}");
    assert!(
        events[0]["fingerprint"]
            .as_str()
            .is_some_and(|f| f.contains("count")),
        "{found}"
    );
}

#[tokio::test]
async fn values_of_every_column_type_come_back_exactly() {
    let Some((server, _role, _url)) = start("pg_types", "").await else {
        return;
    };
    // bigint and timestamptz columns of the demo through a policy view, and
    // a date computed by PostgreSQL.
    let reply = server
        .query(
            "recs-service",
            "recommendation",
            "SELECT id, ts, CAST(ts AS DATE) AS day, product_id FROM events WHERE id = 1",
        )
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.json();
    let direct: (i64, String, Option<i64>) = server
        .store()
        .query_row(
            "SELECT id, ts, product_id FROM events WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let row = &body["rows"][0];
    assert_eq!(row[0], direct.0);
    assert_eq!(row[1], direct.1.as_str(), "timestamptz as RFC 3339 UTC");
    assert_eq!(row[2], &direct.1[..10], "date as YYYY-MM-DD");
    assert_eq!(row[3], serde_json::json!(direct.2));
    let types: Vec<&str> = body["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(types, ["int8", "timestamptz", "date", "int8"]);

    // Exact numerics, booleans, arrays, json and NULL from expressions.
    let reply = server
        .query(
            "recs-service",
            "recommendation",
            "SELECT CAST('12345678901234567890.125' AS NUMERIC) AS n, 1 < 2 AS b, \
             CAST('{\"a\": [1, 2]}' AS JSONB) AS j, CAST(NULL AS TEXT) AS nothing, \
             CAST(product_id AS NUMERIC) / 4 AS quarter FROM events WHERE id = 1",
        )
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let row = &reply.json()["rows"][0];
    assert_eq!(row[0], "12345678901234567890.125");
    assert_eq!(row[1], true);
    assert_eq!(row[2], serde_json::json!({"a": [1, 2]}));
    assert_eq!(row[3], serde_json::Value::Null);
    assert!(
        row[4].is_string() || row[4].is_null(),
        "numeric is a string: {row}"
    );
}
