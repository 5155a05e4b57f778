//! The PostgreSQL wire-protocol front (issue 9): services connect with
//! their ordinary drivers; every statement goes through the same
//! [`Gateway`](crate::pipeline::Gateway) pipeline as `POST /v1/query`.
//!
//! What it does:
//! - startup: user = principal name, password = its API key, checked by
//!   SCRAM-SHA-256 against the principal's `pg_scram_sha256` verifier (over
//!   TLS also SCRAM-SHA-256-PLUS, channel binding); no md5, cleartext or
//!   trust; unknown users and principals without a verifier run a mock
//!   exchange and get the same 28P01 as a wrong key (the log says which);
//!   database `privet`;
//! - TLS (rustls): the configured certificate or a self-signed one made on
//!   first start; required off loopback unless `[pg] require_tls = false`
//!   (a plaintext startup then gets FATAL 28000);
//! - cancel requests (pgwire's `ConnectionManager`): the running statement
//!   ends with 57014, the session goes on;
//! - an idle limit (`[pg] idle_timeout_secs`): FATAL 57P05, then close;
//! - the simple query protocol (several statements per Query, in order) and
//!   the extended one (`extended.rs`: `$n` parameters typed and put in as
//!   literals, `params.rs`; portals with row limits), columns typed as the
//!   backend describes them, masked ones `text` (`types.rs`);
//! - `BEGIN`/`COMMIT`/`ROLLBACK` around reads; the type lookups drivers
//!   make, from a fixed catalog view (`catalog.rs`);
//! - the purpose from `options='-c privet.purpose=X'` or `SET privet.purpose = 'X'`;
//! - the session statements drivers send (harmless `SET`s, `SHOW`,
//!   `SELECT version()`) answered here, before the pipeline;
//! - errors as `ErrorResponse` with a SQLSTATE mapped from [`ErrorCode`];
//! - a connection cap with a clear refusal (SQLSTATE 53300) beyond it.
//!
//! The audit, anomaly detection, metrics and log of a statement are
//! HTTP's own (`http::record`), with endpoint `pg_query`; statements
//! refused at Describe are audited as `pg_describe`, catalog lookups as
//! `pg_catalog`, refused logins as `pg_startup`.
//!
//! `[pg]` in the config or `privet serve --pg-listen ADDR` starts it beside
//! HTTP, on the same shutdown signal. Not yet: COPY, writes inside a
//! transaction block, client certificates; a canceled statement runs on
//! (bounded by the statement timeout) and is audited, the client is
//! answered at once.

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::pgwire::api::auth::mechanism::AuthMechanismFactory;
use ::pgwire::api::auth::{
    AuthDriver, AuthOutcome, AuthSource, DefaultServerParameterProvider, LoginInfo, Password,
    StartupHandler,
};
use ::pgwire::api::cancel::{CancelHandler, DefaultCancelHandler};
use ::pgwire::api::query::SimpleQueryHandler;
use ::pgwire::api::results::{
    DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
use ::pgwire::api::{
    ClientInfo, ClientPortalStore, ConnectionManager, PgWireServerHandlers, Type, METADATA_DATABASE,
};
use ::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use ::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use async_trait::async_trait;
use futures_util::sink::Sink;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::audit::AccessRecord;
use crate::config::PrincipalConfig;
use crate::error::{ErrorCode, RequestError};
use crate::http::{record, AppState, Handled, Started};

mod auth;
mod catalog;
mod connection;
mod extended;
mod params;
mod query;
mod session;
pub mod tls;
#[cfg(test)]
mod tls_client;
mod types;

use auth::Startup;
use query::Queries;

/// The only database name clients may connect to.
pub const DATABASE: &str = "privet";
/// The session setting that declares the purpose.
const PURPOSE_SETTING: &str = "privet.purpose";
/// What `SELECT version()` and `server_version` answer.
const SERVER_VERSION: &str = "16.6";
/// On shutdown, open connections get this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The audit endpoint name of a statement received over the wire protocol.
const ENDPOINT_QUERY: &str = "pg_query";
/// The audit endpoint name of a failed wire-protocol login.
const ENDPOINT_STARTUP: &str = "pg_startup";
/// The audit endpoint name of a statement refused when described (extended
/// protocol), before it could run.
const ENDPOINT_DESCRIBE: &str = "pg_describe";
/// The audit endpoint name of a read of the fixed catalog view.
const ENDPOINT_CATALOG: &str = "pg_catalog";

/// How the front serves connections: TLS, whether plaintext logins are
/// refused, and the idle limit.
#[derive(Clone, Debug)]
pub struct Front {
    /// `None` only in tests: then every client is plaintext.
    pub tls: Option<tls::Tls>,
    /// Plaintext startups get FATAL 28000 (use `sslmode=require`).
    pub require_tls: bool,
    /// No message for this long: FATAL 57P05, connection closed.
    pub idle_timeout: Duration,
}

impl Front {
    /// The front of `[pg]` (or of `--pg-listen` alone) on `listen`: the
    /// configured certificate, or the self-signed one in `DATA_DIR/pg-tls/`
    /// (generated on first start).
    pub fn from_config(
        pg: &crate::config::PgConfig,
        listen: SocketAddr,
        data_dir: &std::path::Path,
    ) -> Result<Front, tls::TlsError> {
        Ok(Front {
            tls: Some(tls::load_or_generate(pg, data_dir)?),
            require_tls: pg.requires_tls(listen),
            idle_timeout: pg.idle_timeout,
        })
    }
}

/// Accepts PostgreSQL connections until `shutdown` completes, then stops
/// accepting and gives open connections a grace period. Beyond the
/// connection cap (`limits.max_connections`, shared in size with HTTP but
/// counted separately) a client is told so (SQLSTATE 53300) and closed.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    front: Front,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let max = state.gateway.config().limits.max_connections;
    // Said once at startup, so an operator upgrading an older data dir
    // learns why those logins fail (clients only hear 28P01).
    let unverified: Vec<&str> = state
        .gateway
        .config()
        .principals
        .iter()
        .filter(|p| p.pg_scram_sha256.is_none())
        .map(|p| p.spec.name.as_str())
        .collect();
    if !unverified.is_empty() {
        tracing::warn!(
            principals = %unverified.join(", "),
            "pg: these principals have no pg_scram_sha256 and cannot log in over the wire \
             protocol; `privet keys pg-verifier` prints one for an API key"
        );
    }
    let connections = Arc::new(Semaphore::new(max));
    let handlers =
        Arc::new(Handlers::new(Arc::clone(&state), &front).map_err(std::io::Error::other)?);
    let front = Arc::new(front);
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "pg: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            () = &mut shutdown => break,
        };
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tracing::warn!(%peer, max, "pg: connection refused, at the connection cap");
            tasks.spawn(refuse_too_many(stream, max));
            continue;
        };
        let handlers = Arc::clone(&handlers);
        let front = Arc::clone(&front);
        tasks.spawn(async move {
            let _permit = permit;
            if let Err(e) = connection::serve_connection(stream, &front, &*handlers).await {
                tracing::debug!(%peer, error = %e, "pg: connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("pg: shutting down, no new connections");
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        tracing::warn!("pg: grace period over; closing remaining connections");
        tasks.abort_all();
    }
    Ok(())
}

/// Tells a client beyond the cap why it is refused: a FATAL ErrorResponse
/// (`too_many_connections`), written before reading its startup message
/// (libpq and tokio-postgres read it as the answer to their startup).
async fn refuse_too_many(mut stream: TcpStream, max: usize) {
    let message = format!(
        "too many connections: Privet serves at most {max} PostgreSQL connections at once; retry later"
    );
    let mut body = Vec::new();
    for (field, value) in [
        (b'S', "FATAL"),
        (b'V', "FATAL"),
        (b'C', "53300"),
        (b'M', &message),
    ] {
        body.push(field);
        body.extend_from_slice(value.as_bytes());
        body.push(0);
    }
    body.push(0);
    let Ok(len) = i32::try_from(body.len() + 4) else {
        return;
    };
    let mut frame = Vec::with_capacity(body.len() + 5);
    frame.push(b'E');
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&body);
    let write = async {
        stream.write_all(&frame).await?;
        stream.shutdown().await
    };
    if let Err(e) = tokio::time::timeout(Duration::from_secs(2), write)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    {
        tracing::debug!(error = %e, "pg: could not send the refusal");
    }
}

/// The handlers every connection shares (cheap: `Arc`s). Statements go to
/// `queries`; idle tracking needs no hook in them, the connection loop
/// (`connection.rs`) sees every message.
struct Handlers {
    startup: Arc<Startup>,
    queries: Arc<Queries>,
    cancel: Arc<DefaultCancelHandler>,
}

impl Handlers {
    fn new(state: Arc<AppState>, front: &Front) -> Result<Handlers, crate::keys::RandomError> {
        // Startup registers each connection here; cancel requests find it.
        let connections = Arc::new(ConnectionManager::new());
        Ok(Handlers {
            startup: Arc::new(Startup::new(
                Arc::clone(&state),
                front,
                Arc::clone(&connections),
            )?),
            queries: Arc::new(Queries::new(state)),
            cancel: Arc::new(DefaultCancelHandler::new(connections)),
        })
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn extended_query_handler(&self) -> Arc<impl ::pgwire::api::query::ExtendedQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

/// A connection's authenticated session, kept in pgwire's session extensions.
struct Session {
    principal: Arc<PrincipalConfig>,
    purpose: Mutex<Option<String>>,
}

impl Session {
    fn purpose(&self) -> Option<String> {
        self.purpose
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set_purpose(&self, purpose: Option<String>) {
        *self.purpose.lock().unwrap_or_else(|p| p.into_inner()) = purpose;
    }
}

fn error_info(code: &str, message: String) -> Box<ErrorInfo> {
    Box::new(ErrorInfo::new("ERROR".to_owned(), code.to_owned(), message))
}

fn fatal(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "FATAL".to_owned(),
        code.to_owned(),
        message,
    )))
}

fn error_response(info: Box<ErrorInfo>) -> Response {
    Response::Error(info)
}

/// The SQLSTATE of an [`ErrorCode`].
pub fn sqlstate(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::PolicyDenied
        | ErrorCode::PurposeDenied
        | ErrorCode::BackendRefused
        | ErrorCode::FunctionNotAllowed
        | ErrorCode::PrivacyBudgetExhausted
        | ErrorCode::AnomalyBlocked => "42501",
        ErrorCode::SqlParse => "42601",
        ErrorCode::UnsupportedStatement => "0A000",
        ErrorCode::UnknownTable => "42P01",
        ErrorCode::UnknownColumn => "42703",
        ErrorCode::QueryTimeout | ErrorCode::RequestTimeout => "57014",
        ErrorCode::BackendUnavailable => "08006",
        ErrorCode::Unauthenticated => "28000",
        ErrorCode::BadRequest => "22023",
        ErrorCode::QueryFailed => "22000",
        ErrorCode::BackendBusy => "53000",
        ErrorCode::AnomalyThrottled => "53400",
        ErrorCode::PayloadTooLarge => "54000",
        ErrorCode::AuditUnavailable | ErrorCode::KeysUnavailable => "58000",
        ErrorCode::DecryptFailed => "XX001",
        ErrorCode::NotFound
        | ErrorCode::MethodNotAllowed
        | ErrorCode::PolicyInvalid
        | ErrorCode::Internal => "XX000",
    }
}

/// A refused or failed statement as an ErrorResponse: the Privet code and
/// deciding policies in the detail, the table and column in their fields.
fn to_error_info(e: &RequestError) -> Box<ErrorInfo> {
    let mut info = error_info(sqlstate(e.code), e.message.clone());
    let mut detail = format!("privet error: {}", e.code.as_str());
    if !e.policy_ids.is_empty() {
        detail.push_str(&format!("; policies: {}", e.policy_ids.join(", ")));
    }
    info.detail = Some(detail);
    info.table = e.table.clone();
    info.column = e.column.clone();
    if let Some(secs) = e.retry_after_secs {
        info.hint = Some(format!("retry after {secs} s"));
    }
    info
}

#[cfg(test)]
mod tests {
    use super::auth::purpose_option;
    use super::*;
    use tokio_postgres::error::SqlState;
    use tokio_postgres::{NoTls, SimpleQueryMessage};

    /// How a test server differs from the default (TLS offered, not
    /// required; idle limit 600 s; every demo principal has a verifier).
    #[derive(Default)]
    struct Options {
        require_tls: bool,
        idle_timeout: Option<Duration>,
        /// This principal's `pg_scram_sha256` is removed.
        without_verifier: Option<&'static str>,
        statement_timeout: Option<Duration>,
    }

    /// A gateway over a fresh demo data dir, serving the wire protocol on
    /// 127.0.0.1:0: its address, the demo keys, and the shutdown trigger.
    struct Server {
        addr: SocketAddr,
        keys: std::collections::BTreeMap<String, String>,
        /// The server certificate (DER), for the pinning TLS client.
        cert_der: Vec<u8>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
        _dir: tempfile::TempDir,
    }

    impl Server {
        async fn start() -> Server {
            Server::start_with(Options::default()).await
        }

        async fn start_with(options: Options) -> Server {
            let dir = tempfile::tempdir().expect("temp dir");
            let data = dir.path().join("data");
            let boot = crate::demo::bootstrap(&data, false).expect("demo bootstrap");
            let keys = boot.new_credentials.expect("fresh demo keys");
            let mut config =
                crate::config::Config::load(&boot.config_path, Some(&data)).expect("demo config");
            if let Some(name) = options.without_verifier {
                for p in config.principals.iter_mut().filter(|p| p.spec.name == name) {
                    p.pg_scram_sha256 = None;
                }
            }
            if let Some(timeout) = options.statement_timeout {
                config.limits.statement_timeout = timeout;
            }
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address");
            let pg = crate::config::PgConfig {
                require_tls: Some(options.require_tls),
                idle_timeout: options
                    .idle_timeout
                    .unwrap_or(crate::config::DEFAULT_PG_IDLE_TIMEOUT),
                ..crate::config::PgConfig::at(addr)
            };
            let front = Front::from_config(&pg, addr, &data).expect("TLS setup");
            let cert_der = front
                .tls
                .as_ref()
                .and_then(|tls| {
                    use ::pgwire::tokio::tokio_rustls::rustls::pki_types::pem::PemObject as _;
                    ::pgwire::tokio::tokio_rustls::rustls::pki_types::CertificateDer::pem_slice_iter(
                        &tls.cert_pem,
                    )
                    .next()
                })
                .expect("a certificate")
                .expect("PEM")
                .to_vec();
            let audit_dir = crate::audit::audit_dir(&config);
            let trail =
                tokio::task::spawn_blocking(move || crate::audit::AuditTrail::open(&audit_dir))
                    .await
                    .expect("audit trail");
            let gateway = crate::pipeline::Gateway::start(config)
                .await
                .expect("gateway");
            let state = Arc::new(AppState::new(gateway, Arc::new(trail)));
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(serve(state, listener, front, async {
                let _ = stopped.await;
            }));
            Server {
                addr,
                keys,
                cert_der,
                stop: Some(stop),
                task,
                _dir: dir,
            }
        }

        fn config(
            &self,
            user: &str,
            password: &str,
            options: Option<&str>,
        ) -> tokio_postgres::Config {
            let mut config = tokio_postgres::Config::new();
            config
                .host("127.0.0.1")
                .port(self.addr.port())
                .user(user)
                .password(password)
                .dbname(DATABASE);
            if let Some(options) = options {
                config.options(options);
            }
            config
        }

        async fn connect(
            &self,
            user: &str,
            password: &str,
            options: Option<&str>,
        ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
            let (client, connection) = self.config(user, password, options).connect(NoTls).await?;
            tokio::spawn(connection);
            Ok(client)
        }

        /// A TLS client pinning this server's certificate, requiring
        /// SCRAM-SHA-256-PLUS (channel binding).
        fn tls(&self) -> super::tls_client::PinnedTls {
            super::tls_client::PinnedTls::new(self.cert_der.clone())
        }

        fn key(&self, principal: &str) -> &str {
            self.keys.get(principal).expect("demo key")
        }

        async fn stop(mut self) {
            if let Some(stop) = self.stop.take() {
                let _ = stop.send(());
            }
            let _ = tokio::time::timeout(Duration::from_secs(15), &mut self.task).await;
        }
    }

    fn rows(messages: &[SimpleQueryMessage]) -> Vec<Vec<Option<String>>> {
        messages
            .iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).map(str::to_owned))
                        .collect(),
                ),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn simple_queries_go_through_the_pipeline() {
        let server = Server::start().await;
        let client = server
            .connect(
                "marketing-service",
                server.key("marketing-service"),
                Some("-c privet.purpose=marketing"),
            )
            .await
            .expect("connect with the API key");

        // Allowed: opted-in customers only (the policy's row filter).
        let answer = client
            .simple_query("SELECT id, region, marketing_opt_in FROM customers ORDER BY id LIMIT 3")
            .await
            .expect("allowed query");
        let got = rows(&answer);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(
            got.iter().all(|row| row[2].as_deref() == Some("1")),
            "{got:?}"
        );

        // Denied column: 42501, and the connection stays usable.
        let denied = client
            .simple_query("SELECT phone FROM customers LIMIT 1")
            .await
            .expect_err("phone is denied to marketing");
        let db = denied.as_db_error().expect("an ErrorResponse");
        assert_eq!(db.code(), &SqlState::INSUFFICIENT_PRIVILEGE, "{db:?}");
        assert!(
            db.detail().unwrap_or_default().contains("policy_denied"),
            "{db:?}"
        );

        // Parse error: 42601.
        let bad = client.simple_query("SELEC 1").await.expect_err("not SQL");
        assert_eq!(bad.code(), Some(&SqlState::SYNTAX_ERROR), "{bad:?}");

        // Session statements drivers send.
        client
            .simple_query("SET application_name = 'tests'")
            .await
            .expect("harmless SET");
        client
            .simple_query("SET extra_float_digits TO 3")
            .await
            .expect("harmless SET TO");
        let version = rows(
            &client
                .simple_query("SELECT version()")
                .await
                .expect("version"),
        );
        assert!(
            version[0][0]
                .as_deref()
                .unwrap_or_default()
                .starts_with("PostgreSQL "),
            "{version:?}"
        );
        let purpose = rows(
            &client
                .simple_query("SHOW privet.purpose")
                .await
                .expect("show"),
        );
        assert_eq!(purpose, vec![vec![Some("marketing".to_owned())]]);

        // A purpose the principal may not declare is refused by the pipeline.
        client
            .simple_query("SET privet.purpose = 'analytics'")
            .await
            .expect("SET purpose");
        let refused = client
            .simple_query("SELECT id FROM customers LIMIT 1")
            .await
            .expect_err("undeclared purpose");
        assert_eq!(
            refused.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{refused:?}"
        );

        drop(client);
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn logins_need_the_principals_own_key_and_database() {
        let server = Server::start_with(Options {
            without_verifier: Some("orders-service"),
            ..Options::default()
        })
        .await;

        // Every refusal says the same, so a client cannot probe which
        // principals exist or have a verifier.
        let refused = |user: &str, e: tokio_postgres::Error| {
            let db = e.as_db_error().cloned().expect("an ErrorResponse");
            assert_eq!(db.code(), &SqlState::INVALID_PASSWORD, "{db:?}");
            assert_eq!(
                db.message(),
                format!("password authentication failed for user \"{user}\""),
            );
            assert_eq!(db.severity(), "FATAL");
        };
        let wrong = server
            .connect("marketing-service", "not-a-key", None)
            .await
            .expect_err("a wrong password is refused");
        refused("marketing-service", wrong);

        // Another principal's key does not log in as this one.
        let other = server
            .connect("marketing-service", server.key("recs-service"), None)
            .await
            .expect_err("someone else's key is refused");
        refused("marketing-service", other);

        let unknown = server
            .connect("nobody", server.key("recs-service"), None)
            .await
            .expect_err("an unknown user is refused");
        refused("nobody", unknown);

        // A principal without a verifier cannot log in, even with its key.
        let unverified = server
            .connect("orders-service", server.key("orders-service"), None)
            .await
            .expect_err("no verifier, no login");
        refused("orders-service", unverified);

        // No purpose: statements are refused, not run.
        let client = server
            .connect("recs-service", server.key("recs-service"), None)
            .await
            .expect("connect");
        let refused = client
            .simple_query("SELECT product_id FROM events LIMIT 1")
            .await
            .expect_err("no purpose");
        assert_eq!(
            refused.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{refused:?}"
        );
        drop(client);

        // Only the database `privet` exists.
        let mut config = server.config("recs-service", server.key("recs-service"), None);
        config.dbname("postgres");
        let Err(wrong_db) = config.connect(NoTls).await else {
            panic!("another database is refused");
        };
        assert_eq!(
            wrong_db.code(),
            Some(&SqlState::INVALID_CATALOG_NAME),
            "{wrong_db:?}"
        );

        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tls_logins_bind_the_channel_and_plaintext_is_refused_when_tls_is_required() {
        let server = Server::start_with(Options {
            require_tls: true,
            ..Options::default()
        })
        .await;

        let Err(plain) = server
            .connect("marketing-service", server.key("marketing-service"), None)
            .await
        else {
            panic!("plaintext is refused when TLS is required");
        };
        let db = plain.as_db_error().expect("an ErrorResponse");
        assert_eq!(
            db.code(),
            &SqlState::INVALID_AUTHORIZATION_SPECIFICATION,
            "{db:?}"
        );
        assert!(db.message().contains("sslmode=require"), "{db:?}");

        // TLS with channel binding required: only SCRAM-SHA-256-PLUS passes.
        let mut config = server.config(
            "marketing-service",
            server.key("marketing-service"),
            Some("-c privet.purpose=marketing"),
        );
        config
            .ssl_mode(tokio_postgres::config::SslMode::Require)
            .channel_binding(tokio_postgres::config::ChannelBinding::Require);
        let (client, connection) = config.connect(server.tls()).await.expect("TLS login");
        tokio::spawn(connection);
        let got = rows(
            &client
                .simple_query("SELECT id FROM customers ORDER BY id LIMIT 2")
                .await
                .expect("a query over TLS"),
        );
        assert_eq!(got.len(), 2, "{got:?}");
        drop(client);

        // A wrong key over TLS is refused as in plaintext.
        let mut config = server.config("marketing-service", "not-a-key", None);
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
        let Err(wrong) = config.connect(server.tls()).await else {
            panic!("a wrong key is refused over TLS too");
        };
        assert_eq!(wrong.code(), Some(&SqlState::INVALID_PASSWORD), "{wrong:?}");

        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn idle_connections_are_closed_with_57p05() {
        let server = Server::start_with(Options {
            idle_timeout: Some(Duration::from_secs(1)),
            ..Options::default()
        })
        .await;
        let config = server.config(
            "marketing-service",
            server.key("marketing-service"),
            Some("-c privet.purpose=marketing"),
        );
        let (client, connection) = config.connect(NoTls).await.expect("connect");
        let connection = tokio::spawn(connection);
        // Activity keeps it open: a statement, then it idles.
        client
            .simple_query("SELECT id FROM customers LIMIT 1")
            .await
            .expect("a statement");
        // The connection ends by itself with the server's FATAL; the bound
        // only keeps a broken test from hanging.
        let ended = tokio::time::timeout(Duration::from_secs(20), connection)
            .await
            .expect("closed within the idle limit")
            .expect("connection task");
        let error = ended.expect_err("the server ended the session");
        assert_eq!(
            error.code(),
            Some(&SqlState::IDLE_SESSION_TIMEOUT),
            "{error:?}"
        );
        assert!(client.is_closed());

        // Over TLS the FATAL goes through the TLS stream.
        let mut config = server.config("marketing-service", server.key("marketing-service"), None);
        config.ssl_mode(tokio_postgres::config::SslMode::Require);
        let (_client, connection) = config.connect(server.tls()).await.expect("TLS connect");
        let connection = tokio::spawn(connection);
        let ended = tokio::time::timeout(Duration::from_secs(20), connection)
            .await
            .expect("closed within the idle limit")
            .expect("connection task");
        let error = ended.expect_err("the server ended the session");
        assert_eq!(
            error.code(),
            Some(&SqlState::IDLE_SESSION_TIMEOUT),
            "{error:?}"
        );
        server.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancel_request_stops_the_running_statement() {
        let server = Server::start_with(Options {
            // Bounds the abandoned backend scan after the cancel.
            statement_timeout: Some(Duration::from_secs(10)),
            ..Options::default()
        })
        .await;
        let client = server
            .connect(
                "admin",
                server.key("admin"),
                Some("-c privet.purpose=admin"),
            )
            .await
            .expect("connect");
        let cancel = client.cancel_token();
        // A cross join far too large to finish before the statement timeout.
        let slow = tokio::spawn(async move {
            let result = client
                .simple_query("SELECT count(*) FROM payments a, payments b, payments c")
                .await;
            (client, result)
        });
        // The cancel request may overtake the statement (nothing to cancel
        // yet): repeat it until the statement ends. Bounded by the timeout.
        let started = std::time::Instant::now();
        let mut slow = slow;
        let (client, result) = loop {
            cancel
                .cancel_query(NoTls)
                .await
                .expect("cancel request sent");
            match tokio::time::timeout(Duration::from_millis(200), &mut slow).await {
                Ok(done) => break done.expect("statement task"),
                Err(_) => assert!(
                    started.elapsed() < Duration::from_secs(8),
                    "the statement was never canceled"
                ),
            }
        };
        let error = result.expect_err("canceled");
        assert_eq!(error.code(), Some(&SqlState::QUERY_CANCELED), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(8));
        // The session survives the cancel.
        let version = client
            .simple_query("SELECT version()")
            .await
            .expect("still usable");
        assert!(!rows(&version).is_empty());
        drop(client);
        server.stop().await;
    }

    #[test]
    fn purpose_from_startup_options() {
        assert_eq!(
            purpose_option("-c privet.purpose=marketing").as_deref(),
            Some("marketing")
        );
        assert_eq!(
            purpose_option("-cprivet.purpose=x -c a=b").as_deref(),
            Some("x")
        );
        assert_eq!(purpose_option("--privet.purpose=y").as_deref(), Some("y"));
        assert_eq!(purpose_option("-c application_name=z"), None);
        assert_eq!(purpose_option("-c privet.purpose="), None);
    }

    #[test]
    fn sqlstates_of_the_issue() {
        assert_eq!(sqlstate(ErrorCode::PolicyDenied), "42501");
        assert_eq!(sqlstate(ErrorCode::PurposeDenied), "42501");
        assert_eq!(sqlstate(ErrorCode::SqlParse), "42601");
        assert_eq!(sqlstate(ErrorCode::UnsupportedStatement), "0A000");
        assert_eq!(sqlstate(ErrorCode::QueryTimeout), "57014");
        assert_eq!(sqlstate(ErrorCode::BackendUnavailable), "08006");
    }
}
