//! Harness for the end-to-end tests: builds and starts the real `privet`
//! binary on a free port with a temporary data dir, and talks to it over real
//! HTTP (hyper's client).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// How long a server may take to start before the test fails.
const STARTUP_LIMIT: Duration = Duration::from_secs(120);

/// The `privet` binary, built once per test process with the same profile as
/// the tests (a no-op when it is fresh). `PRIVET_BIN` overrides.
pub fn privet_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Ok(bin) = std::env::var("PRIVET_BIN") {
            return PathBuf::from(bin);
        }
        // target/<profile>/deps/e2e-<hash> → target/<profile>/privet
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable lives in target/<profile>/deps");
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "--quiet", "-p", "gateway", "--bin", "privet"]);
        if release {
            build.arg("--release");
        }
        if let Some(target) = profile_dir.parent() {
            build.env("CARGO_TARGET_DIR", target);
        }
        let status = build
            .status()
            .expect("running cargo build for the privet binary");
        assert!(status.success(), "building privet failed: {status}");
        profile_dir.join(format!("privet{}", std::env::consts::EXE_SUFFIX))
    })
    .clone()
}

/// Runs `privet ARGS` to completion.
pub fn privet(args: &[&str]) -> std::process::Output {
    Command::new(privet_bin())
        .args(args)
        .output()
        .expect("running privet")
}

/// Creates a small deterministic demo store in `dir`.
pub fn seed(dir: &Path, scale: &str, seed: &str) {
    let out = privet(&[
        "seed",
        "--data-dir",
        path_str(dir),
        "--scale",
        scale,
        "--seed",
        seed,
    ]);
    assert!(
        out.status.success(),
        "privet seed failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Seeds the demo data into `schema` of the PostgreSQL database at `url`.
pub fn seed_postgres(dir: &Path, url: &str, schema: &str, scale: &str, seed: &str) {
    let out = privet(&[
        "seed",
        "--data-dir",
        path_str(dir),
        "--backend",
        url,
        "--schema",
        schema,
        "--scale",
        scale,
        "--seed",
        seed,
    ]);
    assert!(
        out.status.success(),
        "privet seed --backend failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}

/// `POST /v1/query` on a new connection, without panicking when the server
/// is gone (crash tests): the status and request id, or None when the
/// connection failed.
pub async fn post_query(
    addr: SocketAddr,
    key: &str,
    purpose: &str,
    sql: &str,
) -> Option<(u16, String)> {
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    tokio::spawn(conn);
    let body = serde_json::json!({"sql": sql, "purpose": purpose}).to_string();
    let req = Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/v1/query"))
        .header("host", addr.to_string())
        .header("authorization", format!("Bearer {key}"))
        .body(Full::new(Bytes::from(body)))
        .ok()?;
    let resp = sender.send_request(req).await.ok()?;
    let status = resp.status().as_u16();
    let id = resp
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    // The whole body, so the response was really delivered.
    resp.into_body().collect().await.ok()?;
    Some((status, id))
}

/// Which database a test server governs. End-to-end tests of the policy
/// engine run the same body on both ([`on_both_backends!`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A PostgreSQL schema of one test, dropped with it.
pub struct PgSchema {
    pub url: String,
    pub name: String,
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        gateway::testing::drop_schema(&self.url, &self.name);
    }
}

/// Defines `mod NAME { sqlite, postgres }`: two tests running
/// `BODY(Backend)`, so one test body covers both backends.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident => $body:path),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                $body($crate::Backend::Sqlite).await
            }
            #[tokio::test]
            async fn postgres() {
                $body($crate::Backend::Postgres).await
            }
        }
    )*};
}

/// A running `privet serve`. Killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    pub backend: Backend,
    /// Everything the server printed on stdout so far.
    stdout: Arc<Mutex<String>>,
    /// Dropped after the server (fields drop in order).
    pub pg: Option<PgSchema>,
    _temp: Option<tempfile::TempDir>,
}

/// An HTTP response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The rows of a successful query answer (panics on anything else).
    pub fn rows(&self) -> Vec<Vec<Value>> {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
        self.json()["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r.as_array().expect("row").clone())
            .collect()
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `error.code` of an error response.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

impl Server {
    /// Seeds a small store (scale 0.02, seed 7) in a fresh temp dir and
    /// starts the server there with no config: the zero-config demo path.
    pub fn start_demo() -> Server {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = temp.path().join("data");
        seed(&dir, "0.02", "7");
        let mut server = Server::start_in(&dir, &["--pg-listen", "127.0.0.1:0"]);
        server._temp = Some(temp);
        server
    }

    /// The demo on `backend`; None when PostgreSQL tests are skipped (no
    /// `PRIVET_TEST_POSTGRES`). On PostgreSQL the same data (scale 0.02,
    /// seed 7) are seeded into a schema of this test's own, dropped with the
    /// server; the SQLite store is seeded too, as ground truth for
    /// [`Server::store`] (the seeder is deterministic, and a gateway unit
    /// test checks both stores hold the same rows).
    pub fn start_demo_on(backend: Backend, test: &str) -> Option<Server> {
        match backend {
            Backend::Sqlite => Some(Server::start_demo()),
            Backend::Postgres => {
                let url = gateway::testing::postgres_url(test)?;
                let temp = tempfile::tempdir().expect("temp dir");
                let dir = temp.path().join("data");
                seed(&dir, "0.02", "7");
                let schema = PgSchema {
                    url: url.clone(),
                    name: gateway::testing::unique_schema_name(test),
                };
                seed_postgres(&dir, &url, &schema.name, "0.02", "7");
                let mut server = Server::start_on_postgres(&dir, &url, &schema.name);
                server.pg = Some(schema);
                server._temp = Some(temp);
                Some(server)
            }
        }
    }

    /// Serves `schema` of the PostgreSQL server at `url` (data dir `dir`),
    /// HTTP and the wire protocol on free ports.
    pub fn start_on_postgres(dir: &Path, url: &str, schema: &str) -> Server {
        let mut server = Server::start_in(
            dir,
            &[
                "--backend",
                url,
                "--schema",
                schema,
                "--pg-listen",
                "127.0.0.1:0",
            ],
        );
        server.backend = Backend::Postgres;
        server
    }

    /// Starts `privet serve --data-dir DIR --listen 127.0.0.1:0 EXTRA...`.
    pub fn start_in(dir: &Path, extra: &[&str]) -> Server {
        std::fs::create_dir_all(dir).expect("data dir");
        // Logs go to a file, not the test's stderr: a server must never hold
        // the test runner's output pipe open.
        let log = std::fs::File::create(dir.join("privet.log")).expect("log file");
        let mut child = Command::new(privet_bin())
            .args([
                "serve",
                "--data-dir",
                path_str(dir),
                "--listen",
                "127.0.0.1:0",
            ])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("starting privet serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let printed = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&printed);
        // Keep draining stdout for the server's whole life, so it never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("privet listening on http://") {
                    let _ = tx.send(addr.trim().to_string());
                }
                let mut s = sink.lock().unwrap_or_else(|p| p.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        let addr = match rx.recv_timeout(STARTUP_LIMIT) {
            Ok(addr) => addr.parse().expect("listen address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "privet did not report its address; stdout so far:\n{}\nlog:\n{}",
                    printed.lock().unwrap_or_else(|p| p.into_inner()),
                    std::fs::read_to_string(dir.join("privet.log")).unwrap_or_default()
                );
            }
        };
        Server {
            child,
            addr,
            data_dir: dir.to_path_buf(),
            backend: Backend::Sqlite,
            stdout: printed,
            pg: None,
            _temp: None,
        }
    }

    /// Hands over the data dir's temp parent (to restart in it with
    /// [`Server::start_in`] and [`Server::adopt_temp`]).
    pub fn take_temp(&mut self) -> Option<tempfile::TempDir> {
        self._temp.take()
    }

    /// Keeps `temp` (the data dir's parent) alive as long as the server.
    pub fn adopt_temp(&mut self, temp: tempfile::TempDir) {
        self._temp = Some(temp);
    }

    /// What the server printed on stdout so far.
    pub fn stdout(&self) -> String {
        self.stdout
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("privet.log")).unwrap_or_default()
    }

    /// principal → API key, from `DIR/demo-credentials.json`.
    pub fn credentials(&self) -> BTreeMap<String, String> {
        let text =
            std::fs::read(self.data_dir.join("demo-credentials.json")).expect("credentials file");
        serde_json::from_slice(&text).expect("credentials JSON")
    }

    pub fn key(&self, principal: &str) -> String {
        self.credentials()
            .get(principal)
            .unwrap_or_else(|| panic!("no key for {principal}"))
            .clone()
    }

    /// The compliance officer's audit search for `query` (purpose
    /// `compliance`): the response body, asserted to be a 200.
    pub async fn audit_search(&self, query: &str) -> String {
        let reply = self
            .get(
                "compliance-officer",
                &format!("/v1/audit/search?q={query}&purpose=compliance"),
            )
            .await;
        let body = String::from_utf8_lossy(&reply.body).into_owned();
        assert_eq!(reply.status, 200, "{body}");
        body
    }

    /// The PostgreSQL-protocol address the server printed (started with
    /// `--pg-listen`).
    pub fn pg_addr(&self) -> Option<SocketAddr> {
        self.stdout()
            .lines()
            .find_map(|l| l.strip_prefix("privet PostgreSQL protocol on "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
    }

    /// A tokio-postgres session over the wire protocol as `principal`
    /// (its demo key as the password) declaring `purpose`; the connection
    /// runs on a task of its own.
    pub async fn pg_connect(
        &self,
        principal: &str,
        purpose: &str,
    ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let addr = self
            .pg_addr()
            .expect("the server was started with --pg-listen");
        let (client, connection) = tokio_postgres::Config::new()
            .host(addr.ip().to_string())
            .port(addr.port())
            .user(principal)
            .password(self.key(principal))
            .dbname("privet")
            .options(format!("-c privet.purpose={purpose}"))
            .connect(tokio_postgres::NoTls)
            .await?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// The demo store, opened directly (read-only) to compare results with.
    pub fn store(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.data_dir.join("store.sqlite3"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open store")
    }

    /// Sends one request on a new connection.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: impl Into<Bytes>,
    ) -> Reply {
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("HTTP handshake");
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(format!("http://{}{path}", self.addr))
            .header("host", self.addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body.into())).expect("request");
        let resp = sender.send_request(req).await.expect("send request");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .expect("read body")
            .to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    /// `POST /v1/query` as `principal`.
    pub async fn query(&self, principal: &str, purpose: &str, sql: &str) -> Reply {
        let body = serde_json::json!({"sql": sql, "purpose": purpose}).to_string();
        let auth = format!("Bearer {}", self.key(principal));
        self.send(
            "POST",
            "/v1/query",
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await
    }

    /// Sends a signal (`HUP`, `TERM`, ...) to the server.
    pub fn signal(&self, name: &str) {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("kill");
        assert!(sent.success(), "kill -{name} {pid}");
    }

    /// Waits until the server's log contains `needle`, polling the file;
    /// fails the test after [`STARTUP_LIMIT`]. For events that have no
    /// response to wait on (signals).
    pub fn wait_for_log(&self, needle: &str) {
        let deadline = std::time::Instant::now() + STARTUP_LIMIT;
        while !self.log().contains(needle) {
            assert!(
                std::time::Instant::now() < deadline,
                "`{needle}` never appeared in the log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server with SIGKILL (a crash: no shutdown code runs) and
    /// waits for it. The data dir stays until the `Server` is dropped.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `GET path` as `principal`.
    pub async fn get(&self, principal: &str, path: &str) -> Reply {
        let auth = format!("Bearer {}", self.key(principal));
        self.send("GET", path, &[("authorization", &auth)], Vec::new())
            .await
    }

    /// Sends SIGTERM and waits for the process to exit. The data dir stays
    /// until the `Server` is dropped, so a test can restart in it.
    pub fn terminate(&mut self) -> ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(sent.success());
        self.child.wait().expect("wait for privet")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
