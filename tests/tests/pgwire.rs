//! The PostgreSQL wire-protocol front of the real binary (issue 9, first
//! slice): `privet serve --pg-listen`, a tokio-postgres client logging in
//! with its API key, a governed query and a policy denial (SQLSTATE 42501),
//! and both audited.

use e2e::Server;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, SimpleQueryMessage};

#[tokio::test]
async fn a_postgres_driver_queries_through_the_policy_pipeline() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    e2e::seed(&dir, "0.02", "7");
    let mut server = Server::start_in(&dir, &["--pg-listen", "127.0.0.1:0"]);
    server.adopt_temp(temp);
    let addr = server
        .stdout()
        .lines()
        .find_map(|l| l.strip_prefix("privet PostgreSQL protocol on "))
        .and_then(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .expect("the PostgreSQL address line");
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let key = server.key("marketing-service");
    let connect = |password: String| {
        let mut config = tokio_postgres::Config::new();
        config
            .host(host)
            .port(port.parse().expect("port"))
            .user("marketing-service")
            .password(password)
            .dbname("privet")
            .options("-c privet.purpose=marketing");
        async move { config.connect(NoTls).await }
    };

    let wrong = connect("not-the-key".into()).await.err().expect("refused");
    assert_eq!(wrong.code(), Some(&SqlState::INVALID_PASSWORD), "{wrong}");

    let (client, connection) = connect(key).await.expect("login with the API key");
    tokio::spawn(connection);
    let rows: Vec<_> = client
        .simple_query("SELECT id, region, marketing_opt_in FROM customers ORDER BY id LIMIT 3")
        .await
        .expect("an allowed query")
        .into_iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(r) => Some(r.get("marketing_opt_in").map(str::to_owned)),
            _ => None,
        })
        .collect();
    assert_eq!(rows.len(), 3);
    // The policy's row filter held: opted-in customers only.
    assert!(rows.iter().all(|v| v.as_deref() == Some("1")), "{rows:?}");
    let Err(denied) = client
        .simple_query("SELECT phone FROM customers LIMIT 1")
        .await
    else {
        panic!("phone is denied to marketing, yet the query succeeded");
    };
    assert_eq!(
        denied.code(),
        Some(&SqlState::INSUFFICIENT_PRIVILEGE),
        "{denied}"
    );
    // The session survives a refused statement.
    assert!(client
        .simple_query("SELECT count(*) FROM customers")
        .await
        .is_ok());
    drop(client);

    // Both statements are audit events of the wire front.
    let audit = server
        .get(
            "compliance-officer",
            "/v1/audit/search?q=endpoint:pg_query&purpose=compliance",
        )
        .await;
    assert_eq!(
        audit.status,
        200,
        "{}",
        String::from_utf8_lossy(&audit.body)
    );
    let text = String::from_utf8_lossy(&audit.body);
    assert!(text.contains("policy_denied"), "{text}");
}
