//! The HTTP front: hyper 1.x, one task per connection, a connection cap for
//! backpressure, bounded request bodies, and graceful shutdown.
//!
//! Every error is `{"error": {"code", "message", "request_id", ...}}` with
//! the status of its [`ErrorCode`].

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::audit::{AccessRecord, AuditTrail, RequestFacts};
use crate::config::PrincipalConfig;
use crate::error::{ErrorCode, RequestError};
use crate::metrics::Metrics;
use crate::pipeline::Gateway;

/// Request bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;
/// An oversized body is read and discarded up to this size before the 413,
/// so the client gets the response instead of a connection reset.
const DRAIN_LIMIT: usize = 16 << 20;
/// A client must send its request headers within this time.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// On shutdown, in-flight requests get this long to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Shared by all connections.
pub struct AppState {
    pub gateway: Gateway,
    pub audit: Arc<AuditTrail>,
    pub metrics: Metrics,
    pub(crate) request_ids: RequestIds,
    /// The compliance console's sessions (console.rs).
    pub(crate) console: crate::console::Sessions,
}

impl AppState {
    pub fn new(gateway: Gateway, audit: Arc<AuditTrail>) -> AppState {
        AppState {
            gateway,
            audit,
            metrics: Metrics::default(),
            request_ids: RequestIds::new(),
            console: crate::console::Sessions::default(),
        }
    }
}

/// Request ids: a random per-process prefix and a counter, unique across
/// restarts and replicas without a random draw per request.
pub(crate) struct RequestIds {
    prefix: String,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        let seed: [u8; 6] = crate::keys::random_bytes().unwrap_or_else(|_| {
            // Unreachable in practice; fall back to the clock rather than refuse to serve.
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let b = nanos.to_le_bytes();
            [b[0], b[1], b[2], b[3], b[4], b[5]]
        });
        RequestIds {
            prefix: seed.iter().map(|b| format!("{b:02x}")).collect(),
            next: AtomicU64::new(1),
        }
    }

    pub(crate) fn next(&self) -> String {
        format!(
            "{}{:010x}",
            self.prefix,
            self.next.fetch_add(1, Ordering::Relaxed)
        )
    }
}

/// Accepts connections until `shutdown` completes, then stops accepting and
/// waits (up to a grace period) for in-flight requests.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = Arc::new(Semaphore::new(
        state.gateway.config().limits.max_connections,
    ));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        // Backpressure: at the connection cap, stop accepting; new clients
        // wait in the kernel's listen backlog.
        let permit = tokio::select! {
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small answers go out at once (Nagle would hold them for an ACK).
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
        }
        let state = Arc::clone(&state);
        let service = service_fn(move |req| {
            let state = Arc::clone(&state);
            async move {
                // Each request runs to its end in a task of its own: hyper
                // drops this future when the client hangs up mid-request,
                // which must end only the wait, never the audit of what
                // was asked (and done).
                let task = tokio::spawn({
                    let state = Arc::clone(&state);
                    async move { respond(&state, peer, req).await }
                });
                Ok::<_, Infallible>(task.await.unwrap_or_else(|e| {
                    let failed = RequestError::new(
                        ErrorCode::Internal,
                        format!("the request's task failed: {e}"),
                    );
                    whole(error_response(&failed, &state.request_ids.next()))
                }))
            }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_TIMEOUT)
            .serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections, finishing in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("all connections closed"),
        () = tokio::time::sleep(SHUTDOWN_GRACE) => tracing::warn!("grace period over; closing remaining connections"),
    }
    Ok(())
}

/// A response body: whole (JSON answers) or streamed (export downloads).
type Body = BoxBody<Bytes, std::io::Error>;

/// Routes a request: export downloads stream a file; every other endpoint
/// answers with a whole body.
async fn respond(state: &AppState, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let download = req.method() == Method::GET
        && req.uri().path().starts_with(EXPORTS_PREFIX)
        && req.uri().path().ends_with(DOWNLOAD_SUFFIX);
    if download {
        return export_download(state, peer, req).await;
    }
    whole(handle(state, peer, req).await)
}

/// A whole-body response as the server's [`Body`] type.
fn whole(response: Response<Full<Bytes>>) -> Response<Body> {
    response.map(|body| body.map_err(|never| match never {}).boxed())
}

async fn handle(
    state: &AppState,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let request_id = state.request_ids.next();
    let path = req.uri().path().to_string();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/healthz") => match state.audit.log() {
            Ok(log) => json_response(
                StatusCode::OK,
                &json!({"status": "ok", "audit_events": log.size()}),
                &request_id,
            ),
            // Every request would be refused: say so, so that load
            // balancers send traffic elsewhere.
            Err(e) => json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "audit_unavailable", "message": e.message}),
                &request_id,
            ),
        },
        (&Method::GET, "/metrics") => {
            let mut response = Response::new(Full::new(Bytes::from(state.metrics.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        (
            &Method::POST,
            path @ ("/v1/query" | "/v1/explain" | "/v1/admin/policies/reload" | "/v1/exports"),
        ) => {
            let endpoint = match path {
                "/v1/query" => Endpoint::Query,
                "/v1/explain" => Endpoint::Explain,
                "/v1/exports" => Endpoint::Export,
                _ => Endpoint::ReloadPolicies,
            };
            let started = Instant::now();
            let time_us = crate::audit::now_us();
            let mut handled = Handled::default();
            let result = query(state, req, &request_id, endpoint, peer, &mut handled).await;
            let at = Started {
                instant: started,
                time_us,
            };
            finish(
                state,
                peer,
                &request_id,
                endpoint.audit_name(),
                at,
                handled,
                result,
            )
            .await
        }
        (&Method::GET, path) if path.starts_with(AUDIT_PREFIX) => {
            let at = Started {
                instant: Instant::now(),
                time_us: crate::audit::now_us(),
            };
            let mut handled = Handled::default();
            let (name, result) = audit_endpoint(state, &req, peer, &mut handled).await;
            match record(state, peer, &request_id, name, at, handled, result).await {
                Ok(crate::audit_api::Answer::Json(body)) => {
                    json_response(StatusCode::OK, &body, &request_id)
                }
                Ok(crate::audit_api::Answer::Csv { filename, text }) => {
                    csv_response(&filename, text, &request_id)
                }
                Err(e) => error_response(&e, &request_id),
            }
        }
        (_, path) if path == crate::console::PREFIX || path.starts_with("/console/") => {
            crate::console::handle(state, peer, req, &request_id).await
        }
        (&Method::GET, path) if path.starts_with(EXPORTS_PREFIX) => {
            let at = Started {
                instant: Instant::now(),
                time_us: crate::audit::now_us(),
            };
            let mut handled = Handled::default();
            let result = export_status(state, &req, &mut handled).map(|(_, status)| status);
            finish(
                state,
                peer,
                &request_id,
                "export_status",
                at,
                handled,
                result,
            )
            .await
        }
        (_, path) if path.starts_with(AUDIT_PREFIX) => method_not_allowed("GET", &request_id),
        (_, "/healthz" | "/metrics") => method_not_allowed("GET", &request_id),
        (_, "/v1/query" | "/v1/explain" | "/v1/admin/policies/reload" | "/v1/exports") => {
            method_not_allowed("POST", &request_id)
        }
        _ => error_response(
            &RequestError::new(ErrorCode::NotFound, format!("no such endpoint: {path}")),
            &request_id,
        ),
    }
}

/// A CSV document as an attachment.
fn csv_response(filename: &str, text: String, request_id: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    no_store(headers);
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    response
}

/// Answers are for their caller only: never cached, never sniffed.
fn no_store(headers: &mut HeaderMap) {
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
}

/// When a request arrived.
#[derive(Clone, Copy)]
pub(crate) struct Started {
    pub(crate) instant: Instant,
    pub(crate) time_us: i64,
}

impl Started {
    pub(crate) fn now() -> Started {
        Started {
            instant: Instant::now(),
            time_us: crate::audit::now_us(),
        }
    }
}

/// Ends an audited request: its event is made durable before the reply; if
/// it cannot be, nothing is sent but the refusal (fail closed). Then
/// metrics, the log line and the response.
async fn finish(
    state: &AppState,
    peer: SocketAddr,
    request_id: &str,
    endpoint: &'static str,
    at: Started,
    handled: Handled,
    result: Result<serde_json::Value, RequestError>,
) -> Response<Full<Bytes>> {
    match record(state, peer, request_id, endpoint, at, handled, result).await {
        Ok(body) => json_response(StatusCode::OK, &body, request_id),
        Err(e) => error_response(&e, request_id),
    }
}

/// The audit, metrics and log of a finished request; the result stands
/// only if its event is durable.
pub(crate) async fn record<T>(
    state: &AppState,
    peer: SocketAddr,
    request_id: &str,
    endpoint: &'static str,
    at: Started,
    mut handled: Handled,
    result: Result<T, RequestError>,
) -> Result<T, RequestError> {
    let result = detect(state, peer, endpoint, at, &mut handled, result);
    let facts = RequestFacts {
        time_us: at.time_us,
        request_id,
        principal: handled.principal.as_deref(),
        source: peer.ip(),
        purpose: handled.purpose.as_deref(),
        endpoint,
        started: at.instant,
    };
    let event = crate::audit::event(
        &facts,
        handled.record,
        result.as_ref().err(),
        state.gateway.backend().dialect(),
        state.gateway.catalog(),
    );
    let result = state.audit.record(event).await.and(result);
    let principal = handled
        .principal
        .as_ref()
        .map_or("anonymous", |p| p.spec.name.as_str());
    let outcome = result.as_ref().map_or_else(|e| e.code.as_str(), |_| "ok");
    let elapsed = at.instant.elapsed();
    state.metrics.observe(principal, outcome, elapsed);
    tracing::info!(
        request_id,
        %peer,
        principal,
        outcome,
        elapsed_us = elapsed.as_micros() as u64,
        endpoint,
        "request"
    );
    result
}

/// Scores a data request (queries, exports) with the anomaly detector and
/// applies the principal's action: throttle (429, `Retry-After`) or block
/// (403) withhold the answer; log and alert let it through. The verdict
/// goes into the audit event and the metrics either way.
fn detect<T>(
    state: &AppState,
    peer: SocketAddr,
    endpoint: &'static str,
    at: Started,
    handled: &mut Handled,
    result: Result<T, RequestError>,
) -> Result<T, RequestError> {
    // The data endpoints of both fronts (HTTP, the PostgreSQL protocol).
    if !matches!(endpoint, "query" | "export" | "pg_query") {
        return result;
    }
    let Some(principal) = handled.principal.as_ref() else {
        return result;
    };
    let gateway = &state.gateway;
    let Some(verdict) = gateway.detection().assess(
        &principal.spec.name,
        peer.ip(),
        at.time_us,
        &handled.record,
        gateway.config(),
        endpoint == "export",
    ) else {
        return result;
    };
    let action = verdict.action;
    let action_name = action.map_or("none", anomaly::Action::as_str);
    if verdict.assessment.score() > 0.0 {
        state.metrics.anomaly(
            verdict.assessment.reasons().iter().map(|r| r.kind.as_str()),
            action_name,
        );
    }
    if matches!(action, Some(anomaly::Action::Alert)) {
        tracing::warn!(
            principal = %principal.spec.name,
            score = verdict.assessment.score(),
            reasons = ?verdict.audit().reasons,
            "anomalous access"
        );
    }
    handled.record.anomaly = Some(verdict.audit());
    let why = || {
        verdict
            .assessment
            .reasons()
            .iter()
            .map(|r| r.detail.clone())
            .collect::<Vec<_>>()
            .join("; ")
    };
    match (action, result) {
        (Some(anomaly::Action::Throttle { retry_after_secs }), Ok(_)) => {
            let mut e = RequestError::new(
                ErrorCode::AnomalyThrottled,
                format!(
                    "{} is throttled: this access looks anomalous (score {:.2}: {}); the answer is withheld, retry after {retry_after_secs} s",
                    principal.spec.name,
                    verdict.assessment.score(),
                    why()
                ),
            );
            e.retry_after_secs = Some(retry_after_secs.get());
            Err(e)
        }
        (Some(anomaly::Action::Block), Ok(_)) => Err(RequestError::new(
            ErrorCode::AnomalyBlocked,
            format!(
                "{} is blocked: this access looks anomalous (score {:.2}: {}); the answer is withheld and the access is audited",
                principal.spec.name,
                verdict.assessment.score(),
                why()
            ),
        )),
        (_, result) => result,
    }
}

/// The audit endpoints, all `GET`, all needing Cedar's `audit_read`.
const AUDIT_PREFIX: &str = "/v1/audit/";

/// `GET /v1/audit/...`: authenticates (Bearer key, or the compliance
/// console's session cookie: console.rs), takes the `purpose` query
/// parameter (a console session's purpose when absent), authorizes
/// `audit_read` on the audit log, answers. Returns the endpoint's audit
/// name and the answer.
async fn audit_endpoint(
    state: &AppState,
    req: &Request<Incoming>,
    peer: SocketAddr,
    handled: &mut Handled,
) -> (&'static str, Result<crate::audit_api::Answer, RequestError>) {
    let path = req.uri().path();
    let rest = path.strip_prefix(AUDIT_PREFIX).unwrap_or_default();
    let params = crate::audit_api::QueryParams::parse(req.uri().query().unwrap_or(""));
    let request = match crate::audit_api::AuditRequest::route(rest, &params) {
        Ok(r) => r,
        Err(e) => return ("audit", Err(e)),
    };
    let name = request.audit_name();
    let result = async {
        let (principal, session_purpose) =
            crate::console::audit_credentials(state, req.headers())?;
        handled.principal = Some(Arc::clone(&principal));
        let purpose = params.get("purpose").map(str::to_owned).or(session_purpose).ok_or_else(|| {
            RequestError::new(
                ErrorCode::BadRequest,
                format!(
                    "missing query parameter `purpose`: declare why you read the audit log (e.g. ?purpose=compliance); {} may declare: {}",
                    principal.spec.name,
                    principal.purposes.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        handled.purpose = Some(purpose.clone());
        let ctx = state.gateway.context(&principal, &purpose, peer.ip());
        state.gateway.authorize_audit_read(&principal, ctx)?;
        let trail = Arc::clone(&state.audit);
        let pseudonymize = state.gateway.subject_pseudonymizer();
        tokio::task::spawn_blocking(move || request.answer(&trail, &pseudonymize))
            .await
            .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))?
    }
    .await;
    (name, result)
}

const EXPORTS_PREFIX: &str = "/v1/exports/";
const DOWNLOAD_SUFFIX: &str = "/download";

/// `GET /v1/exports/{id}`: an export's status and report, for the
/// principal that made it; also the path of its file, for the download.
fn export_status(
    state: &AppState,
    req: &Request<Incoming>,
    handled: &mut Handled,
) -> Result<(std::path::PathBuf, serde_json::Value), RequestError> {
    let principal = authenticate(&state.gateway, req.headers())?;
    handled.principal = Some(Arc::clone(&principal));
    let rest = req
        .uri()
        .path()
        .strip_prefix(EXPORTS_PREFIX)
        .unwrap_or_default();
    let id = rest.strip_suffix(DOWNLOAD_SUFFIX).unwrap_or(rest);
    let not_found = || RequestError::new(ErrorCode::NotFound, format!("no export `{id}`"));
    if !crate::export::valid_name(id) {
        return Err(not_found());
    }
    let dir = state
        .gateway
        .config()
        .data_dir
        .join(crate::export::EXPORTS_DIR)
        .join(id);
    let report: serde_json::Value = std::fs::read(dir.join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(not_found)?;
    // Only its maker may see it: other principals are told nothing more
    // than that it does not exist.
    if report["principal"].as_str() != Some(principal.spec.name.as_str()) {
        return Err(not_found());
    }
    let file = report["file"].as_str().unwrap_or_default();
    if !file
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        || file.starts_with('.')
    {
        return Err(not_found());
    }
    let path = dir.join(file);
    let bytes = std::fs::metadata(&path).map_err(|_| not_found())?.len();
    handled.record.rows = report["rows_written"].as_u64().unwrap_or(0);
    let status = json!({
        "export_id": id,
        "status": "done",
        "report": report,
        "file": file,
        "bytes": bytes,
        "download": format!("{EXPORTS_PREFIX}{id}{DOWNLOAD_SUFFIX}"),
    });
    Ok((path, status))
}

/// `GET /v1/exports/{id}/download`: the export's file, streamed from disk
/// in chunks (never read whole into memory), after its audit event is
/// durable.
async fn export_download(
    state: &AppState,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    let request_id = state.request_ids.next();
    let at = Started {
        instant: Instant::now(),
        time_us: crate::audit::now_us(),
    };
    let mut handled = Handled::default();
    let found = export_status(state, &req, &mut handled).and_then(|(path, status)| {
        let file = std::fs::File::open(&path).map_err(|e| {
            RequestError::new(ErrorCode::Internal, format!("opening the export: {e}"))
        })?;
        Ok((file, status))
    });
    let audited = record(
        state,
        peer,
        &request_id,
        "export_download",
        at,
        handled,
        found
            .as_ref()
            .map(|(_, status)| status.clone())
            .map_err(Clone::clone),
    )
    .await;
    let (file, status) = match (audited, found) {
        (Ok(_), Ok(found)) => found,
        (Err(e), _) | (Ok(_), Err(e)) => {
            return error_response(&e, &request_id)
                .map(|b| b.map_err(|never| match never {}).boxed())
        }
    };
    let name = status["file"].as_str().unwrap_or_default().to_owned();
    let content_type = match name.rsplit('.').next() {
        Some("csv") => "text/csv; charset=utf-8",
        Some("jsonl") => "application/x-ndjson",
        Some("parquet") => "application/vnd.apache.parquet",
        _ => "application/octet-stream",
    };
    let (tx, rx) =
        tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::io::Error>>(4);
    tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let mut file = file;
        loop {
            let mut chunk = vec![0u8; DOWNLOAD_CHUNK];
            match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    chunk.truncate(n);
                    if tx
                        .blocking_send(Ok(hyper::body::Frame::data(Bytes::from(chunk))))
                        .is_err()
                    {
                        break; // the client went away
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    break;
                }
            }
        }
    });
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|frame| (frame, rx))
    });
    let mut response = Response::new(StreamBody::new(frames).boxed());
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(bytes) = status["bytes"].as_u64() {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes));
    }
    if let Ok(disposition) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, disposition);
    }
    if let Ok(id) = HeaderValue::from_str(&request_id) {
        headers.insert("x-request-id", id);
    }
    response
}

/// Bytes read per chunk of a download.
const DOWNLOAD_CHUNK: usize = 256 * 1024;

/// The body of `POST /v1/query`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryBody {
    sql: Option<String>,
    purpose: Option<String>,
    /// `POST /v1/exports`: the dataset to export.
    dataset: Option<String>,
}

/// The authenticated JSON endpoints.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Query,
    Explain,
    ReloadPolicies,
    Export,
}

impl Endpoint {
    /// The endpoint as audit events name it.
    fn audit_name(self) -> &'static str {
        match self {
            Endpoint::Query => "query",
            Endpoint::Explain => "explain",
            Endpoint::ReloadPolicies => "policy_reload",
            Endpoint::Export => "export",
        }
    }
}

/// What a request revealed about itself, for its audit event.
#[derive(Default)]
pub(crate) struct Handled {
    pub(crate) principal: Option<Arc<PrincipalConfig>>,
    pub(crate) purpose: Option<String>,
    pub(crate) record: AccessRecord,
}

/// Handles the authenticated JSON endpoints: the response body or the
/// error; what it learns on the way (principal, purpose, access) goes to
/// `handled` for metrics, logs and the audit event.
async fn query(
    state: &AppState,
    req: Request<Incoming>,
    request_id: &str,
    endpoint: Endpoint,
    peer: SocketAddr,
    handled: &mut Handled,
) -> Result<serde_json::Value, RequestError> {
    let (parts, body) = req.into_parts();
    // Read (bounded) before anything else, so every refusal is a clean
    // response rather than a reset connection with the body unread.
    // Slow senders must not hold connection slots.
    let body_timeout = state.gateway.config().limits.body_timeout;
    let body = tokio::time::timeout(body_timeout, read_body(body, &parts.headers))
        .await
        .unwrap_or_else(|_| {
            Err(RequestError::new(
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} ms",
                    body_timeout.as_millis()
                ),
            ))
        })?;
    let principal = authenticate(&state.gateway, &parts.headers)?;
    handled.principal = Some(Arc::clone(&principal));
    run_query(
        state, &principal, &body, request_id, endpoint, peer, handled,
    )
    .await
}

async fn run_query(
    state: &AppState,
    principal: &PrincipalConfig,
    body: &[u8],
    request_id: &str,
    endpoint: Endpoint,
    peer: SocketAddr,
    handled: &mut Handled,
) -> Result<serde_json::Value, RequestError> {
    let bad = |m: String| RequestError::new(ErrorCode::BadRequest, m);
    let text = std::str::from_utf8(body)
        .map_err(|e| bad(format!("the request body is not valid UTF-8: {e}")))?;
    let parsed: QueryBody = serde_json::from_str(text).map_err(|e| {
        bad(format!(
            "the request body is not the JSON this endpoint takes ({e}); send {{\"sql\": \"SELECT ...\", \"purpose\": \"...\"}}"
        ))
    })?;
    let purposes: Vec<&str> = principal.purposes.iter().map(String::as_str).collect();
    handled.record.sql = parsed.sql.clone();
    handled.purpose = parsed.purpose.clone();
    let purpose = parsed.purpose.ok_or_else(|| {
        bad(format!(
            "missing field `purpose`: declare why you need the data; {} may declare: {}",
            principal.spec.name,
            purposes.join(", ")
        ))
    })?;
    if endpoint == Endpoint::ReloadPolicies {
        let ctx = state.gateway.context(principal, &purpose, peer.ip());
        state.gateway.authorize_admin(principal, ctx)?;
        let reloaded = state.gateway.reload_policies().map_err(|e| {
            RequestError::new(
                ErrorCode::PolicyInvalid,
                format!("{e}; the previous policies keep serving"),
            )
        })?;
        return Ok(
            json!({"request_id": request_id, "reloaded": true, "policies": reloaded.policies, "warnings": reloaded.warnings}),
        );
    }
    if endpoint == Endpoint::Export {
        let dataset = parsed.dataset.ok_or_else(|| {
            bad(
                "missing field `dataset`: send {\"dataset\": \"NAME\", \"purpose\": \"...\"}"
                    .into(),
            )
        })?;
        let ctx = state.gateway.context(principal, &purpose, peer.ip());
        let out = state
            .gateway
            .config()
            .data_dir
            .join(crate::export::EXPORTS_DIR)
            .join(request_id);
        let report = crate::export::run(
            &state.gateway,
            principal,
            ctx,
            &dataset,
            &out,
            &mut handled.record,
        )
        .await?;
        return Ok(json!({
            "request_id": request_id,
            "export_id": request_id,
            "status": "done",
            "report": report,
            "status_url": format!("{EXPORTS_PREFIX}{request_id}"),
            "download": format!("{EXPORTS_PREFIX}{request_id}{DOWNLOAD_SUFFIX}"),
        }));
    }
    let sql = parsed.sql.ok_or_else(|| {
        bad("missing field `sql`: send {\"sql\": \"SELECT ...\", \"purpose\": \"...\"}".into())
    })?;
    if endpoint == Endpoint::Explain {
        let mut explanation = serde_json::to_value(state.gateway.explain(
            principal,
            state.gateway.context(principal, &purpose, peer.ip()),
            &sql,
        ))
        .map_err(|e| RequestError::new(ErrorCode::Internal, e.to_string()))?;
        explanation["request_id"] = json!(request_id);
        return Ok(explanation);
    }
    let ctx = state.gateway.context(principal, &purpose, peer.ip());
    let result = state
        .gateway
        .query(principal, ctx, &sql, &mut handled.record)
        .await?;
    if let Some(affected) = result.rows_affected {
        return Ok(json!({
            "request_id": request_id,
            "rows_affected": affected,
        }));
    }
    Ok(json!({
        "request_id": request_id,
        "columns": result.columns,
        "row_count": result.rows.len(),
        "truncated": result.truncated,
        "rows": result.rows,
    }))
}

/// `Authorization: Bearer KEY` → the principal.
pub(crate) fn authenticate(
    gateway: &Gateway,
    headers: &HeaderMap,
) -> Result<Arc<PrincipalConfig>, RequestError> {
    let unauthenticated = |m: &str| RequestError::new(ErrorCode::Unauthenticated, m);
    let value = headers.get(header::AUTHORIZATION).ok_or_else(|| {
        unauthenticated("missing Authorization header: send `Authorization: Bearer <API key>`")
    })?;
    let value = value
        .to_str()
        .map_err(|_| unauthenticated("the Authorization header is not valid text"))?;
    let key = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, key)| key.trim())
        .filter(|key| !key.is_empty())
        .ok_or_else(|| unauthenticated("the Authorization header must be `Bearer <API key>`"))?;
    gateway
        .authenticate(key)
        .ok_or_else(|| unauthenticated("unknown API key"))
}

/// Reads the body, refusing more than [`MAX_BODY_BYTES`].
pub(crate) async fn read_body(
    mut body: Incoming,
    headers: &HeaderMap,
) -> Result<Bytes, RequestError> {
    let too_large = || {
        RequestError::new(
            ErrorCode::PayloadTooLarge,
            format!("the request body is larger than the limit of {MAX_BODY_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT as u64) {
        return Err(too_large());
    }
    let mut buf = BytesMut::new();
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            RequestError::new(
                ErrorCode::BadRequest,
                format!("could not read the request body: {e}"),
            )
        })?;
        if let Ok(data) = frame.into_data() {
            received += data.len();
            if received <= MAX_BODY_BYTES {
                buf.extend_from_slice(&data);
            } else if received > DRAIN_LIMIT {
                break;
            }
        }
    }
    if received > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(buf.freeze())
}

pub(crate) fn json_response(
    status: StatusCode,
    body: &serde_json::Value,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    no_store(headers);
    if let Ok(id) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", id);
    }
    response
}

pub(crate) fn error_response(error: &RequestError, request_id: &str) -> Response<Full<Bytes>> {
    let mut body = json!({
        "code": error.code.as_str(),
        "message": error.message,
        "request_id": request_id,
    });
    if error.code == ErrorCode::PolicyDenied {
        body["policy_ids"] = json!(error.policy_ids);
    }
    if let Some(table) = &error.table {
        body["table"] = json!(table);
    }
    if let Some(column) = &error.column {
        body["column"] = json!(column);
    }
    let status =
        StatusCode::from_u16(error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, &json!({ "error": body }), request_id);
    let headers = response.headers_mut();
    match error.code {
        ErrorCode::Unauthenticated => {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"privet\""),
            );
        }
        ErrorCode::BackendBusy | ErrorCode::BackendUnavailable | ErrorCode::AuditUnavailable => {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        ErrorCode::AnomalyThrottled => {
            let secs = error.retry_after_secs.unwrap_or(60);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        ErrorCode::PayloadTooLarge | ErrorCode::RequestTimeout => {
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        _ => {}
    }
    response
}

pub(crate) fn method_not_allowed(allow: &'static str, request_id: &str) -> Response<Full<Bytes>> {
    let error = RequestError::new(
        ErrorCode::MethodNotAllowed,
        format!("this endpoint takes {allow} only"),
    );
    let mut response = error_response(&error, request_id);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}
