//! The PostgreSQL wire-protocol front (issue 9, first slice): services
//! connect with their ordinary drivers; every statement goes through the
//! same [`Gateway`](crate::pipeline::Gateway) pipeline as `POST /v1/query`.
//!
//! What this slice does:
//! - startup: user = principal name, password = its API key (cleartext
//!   password exchange: no TLS and no SCRAM-SHA-256 yet), database `privet`;
//! - the simple query protocol, rows sent as text, every column typed `text`;
//! - the purpose from `options='-c privet.purpose=X'` or `SET privet.purpose = 'X'`;
//! - the session statements drivers send (harmless `SET`s, `SHOW`,
//!   `SELECT version()`) answered here, before the pipeline;
//! - errors as `ErrorResponse` with a SQLSTATE mapped from [`ErrorCode`];
//! - a connection cap with a clear refusal (SQLSTATE 53300) beyond it.
//!
//! The audit, anomaly detection, metrics and log of a statement are
//! HTTP's own (`http::record`), with endpoint `pg_query`.
//!
//! `privet serve --pg-listen ADDR` starts it beside HTTP, on the same
//! shutdown signal. Not yet: the extended protocol, TLS, SCRAM, cancel
//! requests, idle limits, `BEGIN`/`COMMIT`, the catalog view drivers
//! introspect, a `pg_listen` config key.

use std::fmt::Debug;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::pgwire::api::auth::cleartext::CleartextPasswordAuth;
use ::pgwire::api::auth::mechanism::AuthMechanismFactory;
use ::pgwire::api::auth::{
    AuthDriver, AuthOutcome, AuthSource, DefaultServerParameterProvider, LoginInfo, Password,
    StartupHandler,
};
use ::pgwire::api::query::SimpleQueryHandler;
use ::pgwire::api::results::{
    DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response, Tag,
};
use ::pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type, METADATA_DATABASE};
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
mod extended;
mod params;
mod query;
mod session;
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

/// Accepts PostgreSQL connections until `shutdown` completes, then stops
/// accepting and gives open connections a grace period. Beyond the
/// connection cap (`limits.max_connections`, shared in size with HTTP but
/// counted separately) a client is told so (SQLSTATE 53300) and closed.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let max = state.gateway.config().limits.max_connections;
    let connections = Arc::new(Semaphore::new(max));
    let handlers = Arc::new(Handlers::new(Arc::clone(&state)));
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
        tasks.spawn(async move {
            let _permit = permit;
            if let Err(e) = ::pgwire::tokio::process_socket(stream, None, handlers).await {
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

/// The handlers of every connection.
struct Handlers {
    startup: Arc<Startup>,
    queries: Arc<Queries>,
}

impl Handlers {
    fn new(state: Arc<AppState>) -> Handlers {
        Handlers {
            startup: Arc::new(Startup::new(Arc::clone(&state))),
            queries: Arc::new(Queries::new(state)),
        }
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

    /// A gateway over a fresh demo data dir, serving the wire protocol on
    /// 127.0.0.1:0: its address, the demo keys, and the shutdown trigger.
    struct Server {
        addr: SocketAddr,
        keys: std::collections::BTreeMap<String, String>,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
        _dir: tempfile::TempDir,
    }

    impl Server {
        async fn start() -> Server {
            let dir = tempfile::tempdir().expect("temp dir");
            let data = dir.path().join("data");
            let boot = crate::demo::bootstrap(&data, false).expect("demo bootstrap");
            let keys = boot.new_credentials.expect("fresh demo keys");
            let config =
                crate::config::Config::load(&boot.config_path, Some(&data)).expect("demo config");
            let audit_dir = crate::audit::audit_dir(&config);
            let trail =
                tokio::task::spawn_blocking(move || crate::audit::AuditTrail::open(&audit_dir))
                    .await
                    .expect("audit trail");
            let gateway = crate::pipeline::Gateway::start(config)
                .await
                .expect("gateway");
            let state = Arc::new(AppState::new(gateway, Arc::new(trail)));
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let addr = listener.local_addr().expect("address");
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(serve(state, listener, async {
                let _ = stopped.await;
            }));
            Server {
                addr,
                keys,
                stop: Some(stop),
                task,
                _dir: dir,
            }
        }

        async fn connect(
            &self,
            user: &str,
            password: &str,
            options: Option<&str>,
        ) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
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
            let (client, connection) = config.connect(NoTls).await?;
            tokio::spawn(connection);
            Ok(client)
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
        let server = Server::start().await;

        let wrong = server
            .connect("marketing-service", "not-a-key", None)
            .await
            .expect_err("a wrong password is refused");
        assert_eq!(wrong.code(), Some(&SqlState::INVALID_PASSWORD), "{wrong:?}");

        // Another principal's key does not log in as this one.
        let other = server
            .connect("marketing-service", server.key("recs-service"), None)
            .await
            .expect_err("someone else's key is refused");
        assert_eq!(other.code(), Some(&SqlState::INVALID_PASSWORD), "{other:?}");

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
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(server.addr.port())
            .user("recs-service")
            .password(server.key("recs-service"))
            .dbname("postgres");
        let wrong_db = config
            .connect(NoTls)
            .await
            .err()
            .expect("another database is refused");
        assert_eq!(
            wrong_db.code(),
            Some(&SqlState::INVALID_CATALOG_NAME),
            "{wrong_db:?}"
        );

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
