//! The compliance console: a browser UI over the audit endpoints, served by
//! the HTTP front at `/console`.
//!
//! * Static assets (`console/index.html`, `console.js`, `console.css`) are
//!   compiled into the binary; no build step, no CDN.
//! * `POST /console/session` takes an API key and a purpose, authenticates
//!   and authorizes Cedar `audit_read` exactly as `/v1/audit/...` does, and
//!   sets an `HttpOnly; SameSite=Strict` session cookie (random 256-bit id;
//!   only its SHA-256 is held, in memory, for 30 minutes idle and 8 hours
//!   at most). `DELETE /console/session` signs out.
//! * The console's script calls the existing `/v1/audit/...` endpoints with
//!   that cookie instead of a Bearer key (see [`audit_credentials`]): the
//!   same handler, the same `audit_read` decision on every call, the same
//!   audit event per read. A cookie counts only together with the header
//!   `X-Privet-Console: 1`, which a cross-site page cannot send without a
//!   CORS preflight this server never approves (defence in depth beside
//!   `SameSite=Strict`).
//! * Every console response carries a strict Content-Security-Policy (no
//!   inline script or style), `nosniff`, `no-referrer`, and session
//!   responses `Cache-Control: no-store`.
//!
//! The HTTP front serves plaintext only (TLS is configured for the wire
//! front), so the cookie is marked `Secure` when the console is served over
//! TLS by a terminating proxy in front of it, which says so with
//! `X-Forwarded-Proto: https` ([`served_over_tls`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::json;

use crate::config::PrincipalConfig;
use crate::error::{ErrorCode, RequestError};
use crate::http::{AppState, Handled, Started};

/// Path prefix of everything the console serves.
pub const PREFIX: &str = "/console";
/// The session cookie's name.
pub const COOKIE_NAME: &str = "privet_console";
/// The header that must accompany the session cookie (CSRF defence).
pub const CONSOLE_HEADER: &str = "x-privet-console";
/// A session unused this long ends.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after sign-in, used or not.
pub const MAX_LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// Sessions held at most; sign-in is refused (503) beyond it.
const MAX_SESSIONS: usize = 10_000;
/// Whether the console is served over TLS, which decides the cookie's
/// `Secure` flag. The HTTP front itself is plaintext; a TLS-terminating
/// proxy in front of it (needed for anything but loopback) says
/// `X-Forwarded-Proto: https`. Believing a client that claims it without a
/// proxy is harmless: it only makes the cookie stricter (its own browser
/// then keeps it off plain HTTP).
pub fn served_over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// The Content-Security-Policy of every console response.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const INDEX_HTML: &str = include_str!("console/index.html");
const CONSOLE_JS: &str = include_str!("console/console.js");
const CONSOLE_CSS: &str = include_str!("console/console.css");

/// A signed-in console user.
struct Session {
    principal: Arc<PrincipalConfig>,
    purpose: String,
    created: Instant,
    last_used: Instant,
}

impl Session {
    fn live(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_used) < IDLE_TIMEOUT
            && now.saturating_duration_since(self.created) < MAX_LIFETIME
    }
}

/// The console's sessions, keyed by the SHA-256 of the session id (the id
/// itself is only ever in the user's cookie).
#[derive(Default)]
pub struct Sessions {
    by_hash: Mutex<HashMap<[u8; 32], Session>>,
}

fn session_hash(id: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, id.as_bytes()).as_ref());
    out
}

impl Sessions {
    /// A new session for `principal` declaring `purpose`; returns its id
    /// (32 random bytes, base64url).
    fn create(
        &self,
        principal: Arc<PrincipalConfig>,
        purpose: String,
        now: Instant,
    ) -> Result<String, RequestError> {
        let bytes: [u8; 32] = crate::keys::random_bytes()
            .map_err(|e| RequestError::new(ErrorCode::Internal, format!("no session id: {e}")))?;
        let id = B64URL.encode(bytes);
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, s| s.live(now));
        if map.len() >= MAX_SESSIONS {
            return Err(RequestError::new(
                ErrorCode::BackendBusy,
                format!("{MAX_SESSIONS} console sessions are open; try again later"),
            ));
        }
        map.insert(
            session_hash(&id),
            Session {
                principal,
                purpose,
                created: now,
                last_used: now,
            },
        );
        Ok(id)
    }

    /// The live session with this id (marking it used), or `None`; an
    /// expired one is removed.
    fn lookup(&self, id: &str, now: Instant) -> Option<(Arc<PrincipalConfig>, String)> {
        let hash = session_hash(id);
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        let session = map.get_mut(&hash)?;
        if !session.live(now) {
            map.remove(&hash);
            return None;
        }
        session.last_used = now;
        Some((Arc::clone(&session.principal), session.purpose.clone()))
    }

    /// Ends the session; whether there was one.
    fn end(&self, id: &str) -> bool {
        let mut map = self.by_hash.lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&session_hash(id)).is_some()
    }
}

/// The session id in the request's cookies, if any.
fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim())
}

fn unauthenticated(message: &str) -> RequestError {
    RequestError::new(ErrorCode::Unauthenticated, message)
}

/// The principal behind the console session of this request: the cookie
/// must name a live session and come with `X-Privet-Console: 1`.
fn session_of(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Arc<PrincipalConfig>, String), RequestError> {
    let id =
        session_cookie(headers).ok_or_else(|| unauthenticated("not signed in to the console"))?;
    if headers.get(CONSOLE_HEADER).map(HeaderValue::as_bytes) != Some(&b"1"[..]) {
        return Err(unauthenticated(
            "a console session counts only with the header `X-Privet-Console: 1`",
        ));
    }
    state.console.lookup(id, Instant::now()).ok_or_else(|| {
        unauthenticated("the console session is unknown or has expired: sign in again")
    })
}

/// Who is asking, for the `/v1/audit/...` endpoints: a Bearer key when the
/// request has an `Authorization` header (or no console cookie), else the
/// console session, with the purpose declared at sign-in. Authorization
/// (`audit_read`) is decided by the caller on every request either way.
pub(crate) fn audit_credentials(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<(Arc<PrincipalConfig>, Option<String>), RequestError> {
    if headers.contains_key(header::AUTHORIZATION) || session_cookie(headers).is_none() {
        return crate::http::authenticate(&state.gateway, headers).map(|p| (p, None));
    }
    session_of(state, headers).map(|(p, purpose)| (p, Some(purpose)))
}

/// The `Set-Cookie` value of a new session, or (`id` `None`) of signing out.
pub fn cookie(id: Option<&str>, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    match id {
        Some(id) => format!(
            "{COOKIE_NAME}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
            MAX_LIFETIME.as_secs()
        ),
        None => format!("{COOKIE_NAME}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
    }
}

/// Adds the console's security headers.
fn harden<B>(response: &mut Response<B>, no_store: bool) {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if no_store { "no-store" } else { "no-cache" }),
    );
}

fn asset(content_type: &'static str, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    harden(&mut response, false);
    response
}

/// Routes a request under `/console`.
pub(crate) async fn handle(
    state: &AppState,
    peer: SocketAddr,
    req: Request<Incoming>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let mut response = match (req.method(), path.as_str()) {
        (&Method::GET, "/console" | "/console/" | "/console/index.html") => {
            return asset("text/html; charset=utf-8", INDEX_HTML)
        }
        (&Method::GET, "/console/console.js") => {
            return asset("text/javascript; charset=utf-8", CONSOLE_JS)
        }
        (&Method::GET, "/console/console.css") => {
            return asset("text/css; charset=utf-8", CONSOLE_CSS)
        }
        (&Method::POST, "/console/session") => sign_in(state, peer, req, request_id).await,
        (&Method::DELETE, "/console/session") => sign_out(state, peer, &req, request_id).await,
        (&Method::GET, "/console/session") => match session_of(state, req.headers()) {
            Ok((principal, purpose)) => crate::http::json_response(
                StatusCode::OK,
                &json!({"principal": principal.spec.name, "purpose": purpose}),
                request_id,
            ),
            Err(e) => crate::http::error_response(&e, request_id),
        },
        (_, "/console/session") => crate::http::method_not_allowed("GET, POST, DELETE", request_id),
        (_, "/console" | "/console/" | "/console/index.html")
        | (_, "/console/console.js" | "/console/console.css") => {
            crate::http::method_not_allowed("GET", request_id)
        }
        _ => crate::http::error_response(
            &RequestError::new(ErrorCode::NotFound, format!("no such console page: {path}")),
            request_id,
        ),
    };
    harden(&mut response, true);
    response
}

/// The body of `POST /console/session`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    api_key: String,
    purpose: String,
}

/// `POST /console/session`: checks the key and `audit_read` for the
/// purpose, then opens a session. Audited (`console_sign_in`), refusals
/// included; the key itself is never recorded.
async fn sign_in(
    state: &AppState,
    peer: SocketAddr,
    req: Request<Incoming>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let at = Started::now();
    let mut handled = Handled::default();
    let (parts, body) = req.into_parts();
    let secure = served_over_tls(&parts.headers);
    let result = async {
        if parts.headers.get(CONSOLE_HEADER).map(HeaderValue::as_bytes) != Some(&b"1"[..]) {
            return Err(RequestError::new(
                ErrorCode::BadRequest,
                "console sign-in needs the header `X-Privet-Console: 1`",
            ));
        }
        let body_timeout = state.gateway.config().limits.body_timeout;
        let body = tokio::time::timeout(body_timeout, crate::http::read_body(body, &parts.headers))
            .await
            .unwrap_or_else(|_| {
                Err(RequestError::new(
                    ErrorCode::RequestTimeout,
                    "the request body did not arrive in time",
                ))
            })?;
        let form: SignIn = serde_json::from_slice(&body).map_err(|e| {
            RequestError::new(
                ErrorCode::BadRequest,
                format!("send {{\"api_key\": \"...\", \"purpose\": \"...\"}} ({e})"),
            )
        })?;
        let principal = state
            .gateway
            .authenticate(form.api_key.trim())
            .ok_or_else(|| unauthenticated("unknown API key"))?;
        handled.principal = Some(Arc::clone(&principal));
        handled.purpose = Some(form.purpose.clone());
        let ctx = state.gateway.context(&principal, &form.purpose, peer.ip());
        state.gateway.authorize_audit_read(&principal, ctx)?;
        let id =
            state
                .console
                .create(Arc::clone(&principal), form.purpose.clone(), Instant::now())?;
        Ok((
            id,
            json!({
                "principal": principal.spec.name,
                "purpose": form.purpose,
                "idle_timeout_secs": IDLE_TIMEOUT.as_secs(),
                "max_lifetime_secs": MAX_LIFETIME.as_secs(),
            }),
        ))
    }
    .await;
    let audited = crate::http::record(
        state,
        peer,
        request_id,
        "console_sign_in",
        at,
        handled,
        result,
    )
    .await;
    match audited {
        Ok((id, body)) => {
            let mut response = crate::http::json_response(StatusCode::OK, &body, request_id);
            if let Ok(value) = HeaderValue::from_str(&cookie(Some(&id), secure)) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(e) => crate::http::error_response(&e, request_id),
    }
}

/// `DELETE /console/session`: ends the session and clears the cookie.
/// Audited (`console_sign_out`).
async fn sign_out(
    state: &AppState,
    peer: SocketAddr,
    req: &Request<Incoming>,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let at = Started::now();
    let mut handled = Handled::default();
    let result = session_of(state, req.headers()).map(|(principal, purpose)| {
        handled.principal = Some(principal);
        handled.purpose = Some(purpose);
        if let Some(id) = session_cookie(req.headers()) {
            state.console.end(id);
        }
        json!({"signed_out": true})
    });
    let audited = crate::http::record(
        state,
        peer,
        request_id,
        "console_sign_out",
        at,
        handled,
        result,
    )
    .await;
    let mut response = match audited {
        Ok(body) => crate::http::json_response(StatusCode::OK, &body, request_id),
        Err(e) => crate::http::error_response(&e, request_id),
    };
    if let Ok(value) = HeaderValue::from_str(&cookie(None, served_over_tls(req.headers()))) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal() -> Arc<PrincipalConfig> {
        let config = crate::config::Config::parse(
            std::path::Path::new("/etc/privet/privet.toml"),
            &format!(
                "[[principals]]\nname = \"officer\"\nkind = \"service\"\npurposes = [\"compliance\"]\napi_key_sha256 = \"{}\"\n",
                "ab".repeat(32)
            ),
        )
        .unwrap();
        Arc::new(config.principals[0].clone())
    }

    #[test]
    fn sessions_expire_when_idle_and_at_their_lifetime() {
        let sessions = Sessions::default();
        let t0 = Instant::now();
        let id = sessions
            .create(principal(), "compliance".into(), t0)
            .unwrap();
        assert_eq!(B64URL.decode(&id).unwrap().len(), 32);
        let (p, purpose) = sessions.lookup(&id, t0 + Duration::from_secs(60)).unwrap();
        assert_eq!(p.spec.name, "officer");
        assert_eq!(purpose, "compliance");
        // Kept alive by use, up to the lifetime.
        let mut t = t0;
        while t + IDLE_TIMEOUT / 2 < t0 + MAX_LIFETIME {
            t += IDLE_TIMEOUT / 2;
            assert!(sessions.lookup(&id, t).is_some());
        }
        assert!(sessions.lookup(&id, t0 + MAX_LIFETIME).is_none());
        // Idle too long.
        let id = sessions
            .create(principal(), "compliance".into(), t0)
            .unwrap();
        assert!(sessions.lookup(&id, t0 + IDLE_TIMEOUT).is_none());
        // Ended, unknown, or another id.
        let id = sessions
            .create(principal(), "compliance".into(), t0)
            .unwrap();
        assert!(sessions.lookup("forged", t0).is_none());
        assert!(sessions.end(&id));
        assert!(!sessions.end(&id));
        assert!(sessions.lookup(&id, t0).is_none());
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_over_tls() {
        let set = cookie(Some("abc"), false);
        assert_eq!(
            set,
            "privet_console=abc; HttpOnly; SameSite=Strict; Path=/; Max-Age=28800"
        );
        assert!(cookie(Some("abc"), true).ends_with("; Secure"));
        assert!(cookie(None, false).contains("Max-Age=0"));
        let mut headers = HeaderMap::new();
        assert!(!served_over_tls(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS"));
        assert!(served_over_tls(&headers));
        headers.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert!(!served_over_tls(&headers));
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=b; privet_console=xyz"),
        );
        assert_eq!(session_cookie(&headers), Some("xyz"));
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("privet_console_x=1"),
        );
        assert_eq!(session_cookie(&headers), None);
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        assert!(INDEX_HTML.contains("<script src=\"/console/console.js\" defer></script>"));
        assert!(!INDEX_HTML.contains("style="));
        assert!(!INDEX_HTML.contains("<style"));
        // No inline event handlers (` onclick=` and the like).
        let handlers = INDEX_HTML.split(" on").skip(1).filter(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert_eq!(handlers.count(), 0);
        // Every control has a label naming it.
        let mut controls = 0;
        for tag in ["<input id=\"", "<select id=\""] {
            for rest in INDEX_HTML.split(tag).skip(1) {
                let id = rest.split('"').next().unwrap();
                assert!(
                    INDEX_HTML.contains(&format!("<label for=\"{id}\">")),
                    "no label for #{id}"
                );
                controls += 1;
            }
        }
        assert!(controls >= 12, "{controls}");
        assert!(
            !INDEX_HTML.contains("<input name"),
            "inputs carry ids first"
        );
        assert_eq!(INDEX_HTML.matches("<script").count(), 1);
        assert!(
            !CONSOLE_JS.contains("innerHTML"),
            "DOM built with textContent only"
        );
        assert!(!CONSOLE_JS.contains("eval("));
    }
}
