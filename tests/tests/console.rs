//! The compliance console end to end: the real `privet` binary, its pages
//! and session over HTTP, and the console itself in headless Chromium
//! (`tests/browser/console.mjs`, playwright-core).

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{Reply, Server};
use serde_json::{json, Value};

const OFFICER: &str = "compliance-officer";
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn header<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

/// `POST /console/session` with the principal's demo key.
async fn sign_in(server: &Server, principal: &str, purpose: &str) -> Reply {
    let body = json!({"api_key": server.key(principal), "purpose": purpose}).to_string();
    server
        .send(
            "POST",
            "/console/session",
            &[
                ("content-type", "application/json"),
                ("x-privet-console", "1"),
            ],
            body,
        )
        .await
}

/// `privet_console=ID` from a sign-in's `Set-Cookie`.
fn session_cookie(reply: &Reply) -> String {
    let set = header(reply, "set-cookie");
    let pair = set.split(';').next().unwrap_or_default().trim();
    assert!(pair.starts_with("privet_console="), "{set}");
    assert!(pair.len() > "privet_console=".len() + 40, "{set}");
    pair.to_string()
}

/// `GET path` with a console cookie (and the console header unless told
/// otherwise).
async fn with_cookie(server: &Server, path: &str, cookie: &str, console_header: bool) -> Reply {
    let mut headers = vec![("cookie", cookie)];
    if console_header {
        headers.push(("x-privet-console", "1"));
    }
    server.send("GET", path, &headers, Vec::new()).await
}

fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(
        reply.status,
        status,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.error_code(), code, "{}", reply.json());
    assert!(reply.json()["error"]["message"].as_str().is_some());
    assert!(header(reply, "content-type").starts_with("application/json"));
}

/// The events of a search, as the compliance officer with a Bearer key.
async fn events(server: &Server, query: &str) -> Vec<Value> {
    let body = server
        .audit_search(&format!(
            "{}&limit=1000",
            query.replace(' ', "%20").replace('"', "%22")
        ))
        .await;
    serde_json::from_str::<Value>(&body).expect("search JSON")["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Pages and assets carry the strict headers; sign-in refuses wrong keys,
/// principals without `audit_read` and requests without the console header;
/// the session cookie is HttpOnly and SameSite=Strict, opens the audit API
/// (audited as the officer), only with the console header, and dies at
/// sign-out; a forged cookie opens nothing.
#[tokio::test]
async fn console_pages_sessions_and_refusals() {
    let server = Server::start_demo();

    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
    ] {
        let reply = server.send("GET", path, &[], Vec::new()).await;
        assert_eq!(reply.status, 200, "{path}");
        assert!(header(&reply, "content-type").starts_with(kind), "{path}");
        assert_eq!(header(&reply, "content-security-policy"), CSP, "{path}");
        assert_eq!(header(&reply, "x-content-type-options"), "nosniff");
        assert_eq!(header(&reply, "referrer-policy"), "no-referrer");
        assert_eq!(header(&reply, "x-frame-options"), "DENY");
    }
    let page = server.send("GET", "/console", &[], Vec::new()).await;
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.contains("<script src=\"/console/console.js\" defer></script>"));
    assert!(!html.contains("<style") && !html.contains("style="));
    let missing = server.send("GET", "/console/nope", &[], Vec::new()).await;
    assert_error(&missing, 404, "not_found");
    assert_eq!(header(&missing, "content-security-policy"), CSP);

    // A wrong key: 401 JSON, no cookie.
    let wrong = server
        .send(
            "POST",
            "/console/session",
            &[("x-privet-console", "1")],
            r#"{"api_key":"pvt_not-a-key","purpose":"compliance"}"#,
        )
        .await;
    assert_error(&wrong, 401, "unauthenticated");
    assert!(wrong.headers.get("set-cookie").is_none());
    assert_eq!(header(&wrong, "cache-control"), "no-store");
    // Without the console header (a cross-site form cannot add it).
    let body = json!({"api_key": server.key(OFFICER), "purpose": "compliance"}).to_string();
    let bare = server
        .send("POST", "/console/session", &[], body.clone())
        .await;
    assert_error(&bare, 400, "bad_request");
    assert!(bare.headers.get("set-cookie").is_none());
    let junk = server
        .send(
            "POST",
            "/console/session",
            &[("x-privet-console", "1")],
            "api_key=x",
        )
        .await;
    assert_error(&junk, 400, "bad_request");
    // A principal without audit_read, and the officer with another purpose.
    let marketing = sign_in(&server, "marketing-service", "marketing").await;
    assert_error(&marketing, 403, "policy_denied");
    assert!(marketing.headers.get("set-cookie").is_none());
    let purpose = sign_in(&server, OFFICER, "marketing").await;
    assert_error(&purpose, 403, "purpose_denied");

    // The officer signs in.
    let signed = sign_in(&server, OFFICER, "compliance").await;
    assert_eq!(
        signed.status,
        200,
        "{}",
        String::from_utf8_lossy(&signed.body)
    );
    assert_eq!(signed.json()["principal"], OFFICER);
    let set = header(&signed, "set-cookie");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=28800"] {
        assert!(set.split("; ").any(|f| f == flag), "{flag} in {set}");
    }
    // The HTTP front is plaintext: a Secure cookie would never come back.
    assert!(!set.contains("Secure"), "{set}");
    assert_eq!(header(&signed, "cache-control"), "no-store");
    assert_eq!(header(&signed, "content-security-policy"), CSP);
    let cookie = session_cookie(&signed);
    // Behind a TLS-terminating proxy the cookie is Secure.
    let proxied = server
        .send(
            "POST",
            "/console/session",
            &[("x-privet-console", "1"), ("x-forwarded-proto", "https")],
            body.clone(),
        )
        .await;
    assert_eq!(proxied.status, 200);
    assert!(
        header(&proxied, "set-cookie").ends_with("; Secure"),
        "{}",
        header(&proxied, "set-cookie")
    );

    // Who am I.
    let me = with_cookie(&server, "/console/session", &cookie, true).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["purpose"], "compliance");

    // The audit API with the cookie: the purpose comes from the session.
    let found = with_cookie(&server, "/v1/audit/search?q=*", &cookie, true).await;
    assert_eq!(
        found.status,
        200,
        "{}",
        String::from_utf8_lossy(&found.body)
    );
    assert_eq!(header(&found, "cache-control"), "no-store");
    let read_id = header(&found, "x-request-id").to_string();
    for path in [
        "/v1/audit/timeline?since=1h&buckets=12",
        "/v1/audit/health",
        "/v1/audit/events/0",
        "/v1/audit/proof/0",
        "/v1/audit/checkpoint",
    ] {
        let reply = with_cookie(&server, path, &cookie, true).await;
        assert_eq!(
            reply.status,
            200,
            "{path}: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    // Without the console header the cookie counts for nothing.
    let no_header = with_cookie(&server, "/v1/audit/search?q=*", &cookie, false).await;
    assert_error(&no_header, 401, "unauthenticated");
    // Every call is authorized again: another purpose is refused.
    let other = with_cookie(
        &server,
        "/v1/audit/search?q=*&purpose=marketing",
        &cookie,
        true,
    )
    .await;
    assert_error(&other, 403, "purpose_denied");
    // A forged or mangled session id.
    let forged = "privet_console=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_error(
        &with_cookie(&server, "/v1/audit/search?q=*", forged, true).await,
        401,
        "unauthenticated",
    );
    let mangled = format!("{cookie}x");
    assert_error(
        &with_cookie(&server, "/v1/audit/health", &mangled, true).await,
        401,
        "unauthenticated",
    );
    assert_error(
        &with_cookie(&server, "/console/session", forged, true).await,
        401,
        "unauthenticated",
    );
    // A principal without audit_read is refused the console's API calls
    // with its Bearer key, new endpoints included.
    for path in [
        "/v1/audit/timeline?purpose=marketing",
        "/v1/audit/health?purpose=marketing",
        "/v1/audit/subjects/1?purpose=marketing&format=csv",
    ] {
        let reply = server.get("marketing-service", path).await;
        assert_error(&reply, 403, "policy_denied");
    }

    // Sign out: the cookie is cleared and the session is gone.
    let out = server
        .send(
            "DELETE",
            "/console/session",
            &[("cookie", &cookie), ("x-privet-console", "1")],
            Vec::new(),
        )
        .await;
    assert_eq!(out.status, 200, "{}", String::from_utf8_lossy(&out.body));
    assert!(header(&out, "set-cookie").contains("Max-Age=0"));
    assert_error(
        &with_cookie(&server, "/v1/audit/search?q=*", &cookie, true).await,
        401,
        "unauthenticated",
    );

    // All of it is in the audit log: the cookie read as the officer, the
    // sign-ins (refused ones too), the refusals, the sign-out.
    let read = events(&server, &format!("request:\"{read_id}\"")).await;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0]["principal"], OFFICER);
    assert_eq!(read[0]["purpose"], "compliance");
    assert_eq!(read[0]["endpoint"], "audit_search");
    let sign_ins = events(&server, "endpoint:console_sign_in").await;
    let outcomes: Vec<(&str, &str)> = sign_ins
        .iter()
        .map(|e| {
            (
                e["principal"].as_str().unwrap_or("-"),
                e["error_code"].as_str().unwrap_or("ok"),
            )
        })
        .collect();
    for expected in [
        ("-", "unauthenticated"),
        ("marketing-service", "policy_denied"),
        (OFFICER, "purpose_denied"),
        (OFFICER, "ok"),
    ] {
        assert!(outcomes.contains(&expected), "{expected:?} in {outcomes:?}");
    }
    let refused = events(
        &server,
        "endpoint:audit_search AND error:unauthenticated AND NOT principal:*",
    )
    .await;
    assert!(refused.len() >= 3, "{refused:?}");
    let out_events = events(&server, "endpoint:console_sign_out").await;
    assert_eq!(out_events.len(), 1);
    assert_eq!(out_events[0]["principal"], OFFICER);
    let api_key = server.key(OFFICER);
    let log = std::fs::read_dir(server.data_dir.join("audit/log"))
        .expect("log dir")
        .flatten()
        .filter_map(|f| std::fs::read(f.path()).ok())
        .any(|bytes| {
            bytes
                .windows(api_key.len())
                .any(|w| w == api_key.as_bytes())
        });
    assert!(!log, "the API key must never reach the audit log");
}

/// A session does not outlive the permission it was opened with: after a
/// policy reload that withdraws the officer's `audit_read`, the next
/// console call is refused.
#[tokio::test]
async fn console_calls_are_authorized_every_time() {
    let server = Server::start_demo();
    let signed = sign_in(&server, OFFICER, "compliance").await;
    assert_eq!(signed.status, 200);
    let cookie = session_cookie(&signed);
    let before = with_cookie(&server, "/v1/audit/health", &cookie, true).await;
    assert_eq!(before.status, 200);

    let file = server.data_dir.join("policies/governance.cedar");
    let text = std::fs::read_to_string(&file).expect("governance policies");
    let permit = "action == Privet::Action::\"audit_read\",\n  resource == Privet::AuditLog::\"audit\"\n)\nwhen { context.purpose == \"compliance\" };";
    assert!(text.contains(permit), "the demo's audit_read permit");
    std::fs::write(
        &file,
        text.replace(
            permit,
            &permit.replace("\"compliance\" }", "\"never-granted\" }"),
        ),
    )
    .expect("rewrite policies");
    let reload = server
        .send(
            "POST",
            "/v1/admin/policies/reload",
            &[("authorization", &format!("Bearer {}", server.key("admin")))],
            r#"{"purpose":"admin"}"#,
        )
        .await;
    assert_eq!(
        reload.status,
        200,
        "{}",
        String::from_utf8_lossy(&reload.body)
    );

    let after = with_cookie(&server, "/v1/audit/health", &cookie, true).await;
    assert_error(&after, 403, "policy_denied");
    let again = sign_in(&server, OFFICER, "compliance").await;
    assert_error(&again, 403, "policy_denied");
}

/// The subject report's CSV over the API: every access that returned the
/// customer, under the CSV header, as an attachment.
#[tokio::test]
async fn subject_report_csv() {
    let server = Server::start_demo();
    let reply = server
        .query(
            "marketing-service",
            "marketing",
            "SELECT id, email FROM customers WHERE id < 40 ORDER BY id",
        )
        .await;
    let rows = reply.rows();
    let id = rows[0][0].as_u64().expect("customer id");
    let request = header(&reply, "x-request-id").to_string();
    let csv = server
        .get(
            OFFICER,
            &format!("/v1/audit/subjects/{id}?purpose=compliance&format=csv"),
        )
        .await;
    assert_eq!(csv.status, 200, "{}", String::from_utf8_lossy(&csv.body));
    assert_eq!(header(&csv, "content-type"), "text/csv; charset=utf-8");
    assert_eq!(
        header(&csv, "content-disposition"),
        format!("attachment; filename=\"subject-customer-{id}.csv\"")
    );
    let text = String::from_utf8_lossy(&csv.body);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(gateway::audit_api::CSV_HEADER));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(rows[0].contains(&request) && rows[0].contains("marketing-service"));
    let bad = server
        .get(
            OFFICER,
            &format!("/v1/audit/subjects/{id}?purpose=compliance&format=xml"),
        )
        .await;
    assert_error(&bad, 400, "bad_request");
}

/// `GET /v1/audit/health` as the officer.
async fn health(server: &Server) -> Value {
    let reply = server
        .get(OFFICER, "/v1/audit/health?purpose=compliance")
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()
}

/// Log health says when the log was last verified in full, whether over
/// HTTP or with `privet audit verify` beside the running gateway.
#[tokio::test]
async fn log_health_tracks_full_verifications() {
    let server = Server::start_demo();
    let read = server
        .query(
            "marketing-service",
            "marketing",
            "SELECT id FROM customers WHERE id < 3",
        )
        .await;
    assert_eq!(read.status, 200);
    let before = health(&server).await;
    assert_eq!(before["last_verification"], Value::Null, "{before}");
    assert!(before["size"].as_u64().unwrap() >= 1);
    assert!(before["public_key_pem"]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN PUBLIC KEY-----"));

    let dir = server.data_dir.to_str().expect("UTF-8 path").to_string();
    let out = e2e::privet(&["audit", "verify", "--data-dir", &dir]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after_cli = health(&server).await;
    let last = &after_cli["last_verification"];
    assert_eq!(last["verified"], true, "{after_cli}");
    let cli_events = last["events"].as_u64().unwrap();
    assert!(cli_events >= 2, "{after_cli}");

    let verified = server
        .get(OFFICER, "/v1/audit/verify?purpose=compliance")
        .await;
    assert_eq!(verified.json()["verified"], true);
    let after_http = health(&server).await;
    let last = &after_http["last_verification"];
    assert!(
        last["events"].as_u64().unwrap() > cli_events,
        "{after_http}"
    );
    assert!(last["time_us"].as_i64() > after_cli["last_verification"]["time_us"].as_i64());
}

/// What the browser test needs, or why it cannot run.
fn browser_setup(root: &Path) -> Result<(PathBuf, String), String> {
    let chromium = std::env::var("PRIVET_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Err(format!("{chromium} is missing (apt-get install chromium)"));
    }
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => return Err("node is missing".into()),
    }
    let browser = root.join("tests/browser");
    if !browser.join("node_modules/playwright-core").is_dir() {
        return Err(format!(
            "{}/node_modules is missing (npm ci --prefix tests/browser)",
            browser.display()
        ));
    }
    Ok((browser.join("console.mjs"), chromium))
}

/// Where the screenshots go: `$CARGO_TARGET_DIR/console-screenshots`
/// (the target dir of this test binary).
fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            // target/<profile>/deps/console-<hash>
            std::env::current_exe()
                .ok()
                .and_then(|exe| exe.parent()?.parent()?.parent().map(Path::to_path_buf))
        })
        .unwrap_or_else(std::env::temp_dir);
    target.join("console-screenshots")
}

/// Markup an attacker would like the console to render (tried as a
/// column alias here, as a subject id in the browser test).
const XSS_PAYLOAD: &str = "<img src=x onerror=window.pwned=1>";

/// The console in headless Chromium: sign in, search, a verified proof and
/// tampered ones refused, timeline, log health, subject report and CSV,
/// narrow window, sign out. Skipped (said so) without chromium, node or
/// `tests/browser/node_modules`, unless `PRIVET_REQUIRE_BROWSER=1`.
#[tokio::test]
async fn console_in_headless_chromium() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let (script, chromium) = match browser_setup(root) {
        Ok(found) => found,
        Err(why) => {
            assert!(
                std::env::var("PRIVET_REQUIRE_BROWSER").as_deref() != Ok("1"),
                "PRIVET_REQUIRE_BROWSER=1 but the browser test cannot run: {why}"
            );
            eprintln!("skipped: the console browser test cannot run: {why}");
            return;
        }
    };
    let server = Server::start_demo();
    // Events to look at: an allowed read of known customers, a denied one.
    let allowed = server
        .query(
            "marketing-service",
            "marketing",
            "SELECT id, email, country FROM customers WHERE id < 40 ORDER BY id",
        )
        .await;
    let customer = allowed.rows()[0][0].as_u64().expect("customer id");
    let allowed_id = header(&allowed, "x-request-id").to_string();
    for _ in 0..2 {
        let denied = server
            .query(
                "recs-service",
                "recommendation",
                "SELECT email FROM customers",
            )
            .await;
        assert_eq!(denied.status, 403);
    }

    // An attack on the officer's browser would put markup into what the
    // console shows. A principal's own words never reach the log: the
    // fingerprint drops the alias, as it drops literals.
    let hostile = server
        .query(
            "marketing-service",
            "marketing",
            &format!("SELECT country AS \"{XSS_PAYLOAD}\" FROM customers WHERE id < 3"),
        )
        .await;
    assert_eq!(hostile.status, 200);
    let request_id = header(&hostile, "x-request-id");
    let logged = events(&server, "principal:\"marketing-service\"")
        .await
        .into_iter()
        .find(|e| e["request_id"] == request_id)
        .expect("the hostile query's event")
        .to_string();
    assert!(
        logged.contains("SELECT country AS ? FROM customers"),
        "{logged}"
    );
    assert!(!logged.contains("onerror"), "{logged}");

    let shots = screenshot_dir();
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    eprintln!("console screenshots: {}", shots.display());
    let base = format!("http://{}", server.addr);
    let started = std::time::Instant::now();
    let out = tokio::task::spawn_blocking({
        let key = server.key(OFFICER);
        let shots = shots.clone();
        move || {
            Command::new("node")
                .arg(&script)
                .arg(&base)
                .arg(&key)
                .arg(&shots)
                .arg(customer.to_string())
                .env("PRIVET_CHROMIUM", &chromium)
                .output()
                .expect("running node")
        }
    })
    .await
    .expect("browser task");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!(
        "browser test ({:.1} s):\n{stdout}{stderr}",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "the browser test failed: {stdout}{stderr}"
    );
    assert!(stdout.contains("PASS: console browser test"));

    // Screenshots of each step, the narrow one included.
    let pngs: Vec<String> = std::fs::read_dir(&shots)
        .expect("screenshots")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    for step in [
        "sign-in",
        "search-denied",
        "event-verified",
        "event-tampered-proof",
        "timeline",
        "log-health",
        "subject-report",
        "hostile-markup-as-text",
        "narrow-search",
        "signed-out",
    ] {
        assert!(
            pngs.iter().any(|n| n.ends_with(&format!("-{step}.png"))),
            "{step} in {pngs:?}"
        );
    }
    // The CSV the browser downloaded names the customer's access.
    let csv = std::fs::read_to_string(shots.join("subject.csv")).expect("downloaded CSV");
    assert!(csv.starts_with(gateway::audit_api::CSV_HEADER), "{csv}");
    assert!(csv.contains(&allowed_id), "{csv}");
    assert!(csv.contains("marketing-service"));

    // The console's reads were audited as the officer, proofs included.
    for endpoint in [
        "audit_search",
        "audit_event",
        "audit_proof",
        "audit_timeline",
        "audit_health",
        "audit_verify",
        "audit_subject",
        "console_sign_in",
        "console_sign_out",
    ] {
        let found = events(
            &server,
            &format!("endpoint:{endpoint} AND principal:{OFFICER}"),
        )
        .await;
        assert!(!found.is_empty(), "{endpoint} audited");
    }
    // After sign-out the page's own call was refused, and audited so.
    let refused = events(
        &server,
        "endpoint:audit_search AND error:unauthenticated AND NOT principal:*",
    )
    .await;
    assert!(!refused.is_empty());
}
