//! The PostgreSQL wire-protocol front of the real binary (issue 9):
//! `privet serve --pg-listen`, a tokio-postgres client logging in with its
//! API key by SCRAM-SHA-256 (the demo config's verifiers), a governed query
//! and a policy denial (SQLSTATE 42501), both audited; psql over TLS with
//! channel binding; `privet keys pg-verifier`.

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
    // The self-signed certificate of the first start, announced with its
    // fingerprint; its key readable by the owner only.
    let stdout = server.stdout();
    assert!(
        stdout.contains("privet PostgreSQL TLS certificate ") && stdout.contains(" SHA-256 "),
        "{stdout}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("pg-tls").join("key.pem"))
            .expect("the generated key")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
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
    // An unknown user hears the same; the server log says why.
    let mut unknown = tokio_postgres::Config::new();
    unknown
        .host(host)
        .port(port.parse().expect("port"))
        .user("nobody")
        .password("pvt_guess")
        .dbname("privet");
    let Err(unknown) = unknown.connect(NoTls).await else {
        panic!("an unknown user logged in");
    };
    assert_eq!(
        unknown.code(),
        Some(&SqlState::INVALID_PASSWORD),
        "{unknown}"
    );
    server.wait_for_log("no principal is named");

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
    let text = server.audit_search("endpoint:pg_query").await;
    assert!(text.contains("policy_denied"), "{text}");

    // psql, where installed: TLS and SCRAM-SHA-256-PLUS, as documented.
    let psql = std::path::Path::new("/usr/bin/psql");
    if psql.exists() {
        let output = std::process::Command::new(psql)
            .arg(format!(
                "host={host} port={port} dbname=privet user=marketing-service sslmode=require \
                 channel_binding=require options='-c privet.purpose=marketing'"
            ))
            .args(["-At", "-c", "SELECT id FROM customers ORDER BY id LIMIT 1"])
            .env("PGPASSWORD", server.key("marketing-service"))
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("running psql");
        assert!(
            output.status.success(),
            "psql: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 1);
    } else {
        eprintln!("no /usr/bin/psql: the psql TLS check is skipped");
    }
}

#[test]
fn pg_verifier_prints_a_verifier_of_the_key_from_the_environment() {
    let output = std::process::Command::new(e2e::privet_bin())
        .args(["keys", "pg-verifier"])
        .env("PRIVET_API_KEY", "pvt_example_key")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running privet keys pg-verifier");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .trim()
        .strip_prefix("pg_scram_sha256 = \"")
        .and_then(|l| l.strip_suffix('"'))
        .expect("a config line");
    let verifier = gateway::keys::ScramVerifier::parse(line).expect("a verifier");
    assert_eq!(
        gateway::keys::ScramVerifier::derive(
            "pvt_example_key",
            &verifier.salt,
            verifier.iterations
        ),
        verifier
    );
}

/// `[pg]` in the config serves the wire front without `--pg-listen`, with
/// its `require_tls`; a principal whose entry predates verifiers cannot log
/// in, and the log says why.
#[tokio::test]
async fn the_pg_section_serves_the_wire_front_on_every_start() {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = temp.path().join("data");
    e2e::seed(&dir, "0.02", "7");
    let mut first = Server::start_in(&dir, &[]);
    assert!(!first.stdout().contains("PostgreSQL protocol"));
    first.terminate();
    drop(first);

    let config_path = dir.join("privet.toml");
    let text = std::fs::read_to_string(&config_path).expect("demo config");
    let mut edited = String::new();
    let mut principal = "";
    for line in text.lines() {
        if let Some(name) = line.strip_prefix("name = ") {
            principal = name.trim_matches('"');
        }
        if principal == "orders-service" && line.starts_with("pg_scram_sha256") {
            continue;
        }
        edited.push_str(line);
        edited.push('\n');
    }
    edited.push_str("\n[pg]\nlisten = \"127.0.0.1:0\"\nrequire_tls = true\n");
    std::fs::write(&config_path, edited).expect("config written");

    let mut server = Server::start_in(&dir, &[]);
    server.adopt_temp(temp);
    let stdout = server.stdout();
    let addr = stdout
        .lines()
        .find_map(|l| l.strip_prefix("privet PostgreSQL protocol on "))
        .map(str::to_owned)
        .expect("the PostgreSQL address line");
    assert!(addr.contains("TLS required"), "{addr}");
    let addr = addr.split_whitespace().next().expect("address");
    // Startup names the principals that cannot log in there.
    server.wait_for_log("cannot log in over the wire");
    let log = server.log();
    let warned = log
        .lines()
        .find(|l| l.contains("cannot log in over the wire"))
        .unwrap_or_default();
    assert!(
        warned.contains("orders-service") && !warned.contains("marketing-service"),
        "{warned}"
    );
    let (host, port) = addr.rsplit_once(':').expect("host:port");

    // TLS is required even on loopback, as configured.
    let mut plain = tokio_postgres::Config::new();
    plain
        .host(host)
        .port(port.parse().expect("port"))
        .user("marketing-service")
        .password(server.key("marketing-service"))
        .dbname("privet");
    let Err(refused) = plain.connect(NoTls).await else {
        panic!("plaintext logged in though TLS is required");
    };
    assert_eq!(
        refused.code(),
        Some(&SqlState::INVALID_AUTHORIZATION_SPECIFICATION),
        "{refused}"
    );
    let message = refused
        .as_db_error()
        .map(|e| e.message())
        .unwrap_or_default();
    assert!(message.contains("sslmode=require"), "{message}");

    let psql = std::path::Path::new("/usr/bin/psql");
    if !psql.exists() {
        eprintln!("no /usr/bin/psql: the TLS logins are not checked here");
        return;
    }
    let login = |user: &str| {
        std::process::Command::new(psql)
            .arg(format!(
                "host={host} port={port} dbname=privet user={user} sslmode=require"
            ))
            .args(["-At", "-c", "SELECT version()"])
            .env("PGPASSWORD", server.key(user))
            .env("PGCONNECT_TIMEOUT", "10")
            .output()
            .expect("running psql")
    };
    let ok = login("marketing-service");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let no_verifier = login("orders-service");
    assert!(!no_verifier.status.success());
    let said = String::from_utf8_lossy(&no_verifier.stderr);
    assert!(
        said.contains("password authentication failed for user \"orders-service\""),
        "{said}"
    );
    server.wait_for_log("has no pg_scram_sha256 verifier");
}
