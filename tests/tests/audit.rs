//! The audit log end to end: the real `privet` binary, real requests, the
//! log and index on disk.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use e2e::{on_both_backends, Backend, Reply, Server};
use serde_json::Value;

const OFFICER: &str = "compliance-officer";

/// `GET /v1/audit/search` as the compliance officer; the events found.
async fn search(server: &Server, query: &str) -> Vec<Value> {
    let reply = server
        .get(
            OFFICER,
            &format!(
                "/v1/audit/search?purpose=compliance&limit=1000&q={}",
                encode(query)
            ),
        )
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()["events"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Percent-encodes a query parameter value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn request_id(reply: &Reply) -> String {
    reply
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id")
        .to_string()
}

/// The one event of a request, found by its request id.
async fn event_of(server: &Server, reply: &Reply) -> Value {
    let id = request_id(reply);
    let found = search(server, &format!("request:\"{id}\"")).await;
    assert_eq!(found.len(), 1, "events of request {id}: {found:?}");
    found[0].clone()
}

/// Every byte under `dir`, file by file.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                out.push((path, bytes));
            }
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

on_both_backends! {
    every_request_is_one_event => crate::every_request_is_one_event,
    literals_leave_no_trace => crate::literals_leave_no_trace,
    subjects_are_recorded_when_their_key_is_not_returned => crate::subjects_without_their_key,
}

fn subject_ids(event: &Value) -> BTreeSet<String> {
    event["subjects"]["ids"]
        .as_array()
        .expect("subject ids")
        .iter()
        .map(|s| s.as_str().expect("subject id").to_string())
        .collect()
}

/// A query the principal may run: its reply, after checking it is 200.
async fn allowed(server: &Server, principal: &str, purpose: &str, sql: &str) -> Reply {
    let reply = server.query(principal, purpose, sql).await;
    assert_eq!(
        reply.status,
        200,
        "{sql}: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply
}

/// A query that returns customers' rows but not their ids still records
/// whose rows they were; the key read for the record never reaches the
/// client; results no key can name are marked unattributed, and subject
/// reports count them.
async fn subjects_without_their_key(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "audit_subjects") else {
        eprintln!("skipped: PRIVET_TEST_POSTGRES is not set");
        return;
    };
    let ids = allowed(
        &server,
        "marketing-service",
        "marketing",
        "SELECT id FROM customers WHERE id < 40",
    )
    .await;
    let truth: BTreeSet<String> = ids.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("customer:{}", r[0]))
        .collect();
    assert!(!truth.is_empty());

    let emails = allowed(
        &server,
        "marketing-service",
        "marketing",
        "SELECT c.email FROM customers c WHERE c.id < 40",
    )
    .await;
    let body = emails.json();
    assert_eq!(body["columns"].as_array().unwrap().len(), 1, "{body}");
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), truth.len());
    assert!(
        rows.iter().all(|r| r.as_array().unwrap().len() == 1),
        "{body}"
    );
    let event = event_of(&server, &emails).await;
    assert_eq!(subject_ids(&event), truth);
    assert_eq!(event["subjects"]["unattributed"], false);

    // Pseudonymous ids for the principal, raw ids in the record.
    let behaviour = allowed(
        &server,
        "recs-service",
        "recommendation",
        "SELECT product_id FROM events WHERE id <= 30",
    )
    .await;
    let event = event_of(&server, &behaviour).await;
    let recorded = subject_ids(&event);
    assert!(!recorded.is_empty());
    assert!(
        recorded
            .iter()
            .all(|s| s.starts_with("customer:") && s["customer:".len()..].parse::<u64>().is_ok()),
        "{recorded:?}"
    );

    // Grouped rows name no subject: unattributed, and counted in reports.
    let grouped = allowed(
        &server,
        "marketing-service",
        "marketing",
        "SELECT country, count(*) FROM customers GROUP BY country",
    )
    .await;
    let event = event_of(&server, &grouped).await;
    assert!(subject_ids(&event).is_empty());
    assert_eq!(event["subjects"]["unattributed"], true);
    let counted = server
        .query(
            "marketing-service",
            "marketing",
            "SELECT count(*) FROM customers",
        )
        .await;
    assert_eq!(
        event_of(&server, &counted).await["subjects"]["unattributed"],
        false
    );

    let first = truth
        .iter()
        .next()
        .unwrap()
        .trim_start_matches("customer:")
        .to_string();
    let report = server
        .get(
            OFFICER,
            &format!("/v1/audit/subjects/{first}?purpose=compliance"),
        )
        .await;
    assert_eq!(report.status, 200);
    let report = report.json();
    let requests: Vec<&str> = report["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap())
        .collect();
    assert!(requests.contains(&request_id(&emails).as_str()), "{report}");
    assert!(
        !requests.contains(&request_id(&grouped).as_str()),
        "{report}"
    );
    assert_eq!(report["unattributed"]["events"], 1, "{report}");
    let listed = search(&server, report["unattributed"]["query"].as_str().unwrap()).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["request_id"], request_id(&grouped).as_str());
}

/// Allowed, denied, unauthenticated and purpose-denied requests each leave
/// one event that says who, what, why and the decision.
async fn every_request_is_one_event(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "audit_events") else {
        eprintln!("skipped: PRIVET_TEST_POSTGRES is not set");
        return;
    };
    // Allowed, with a masked column, a row filter and data subjects.
    let allowed = server
        .query(
            "marketing-service",
            "marketing",
            "SELECT id, email, country FROM customers WHERE id < 40 ORDER BY id",
        )
        .await;
    assert_eq!(
        allowed.status,
        200,
        "{}",
        String::from_utf8_lossy(&allowed.body)
    );
    let returned: BTreeSet<String> = allowed.json()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| format!("customer:{}", r[0]))
        .collect();
    assert!(!returned.is_empty());
    let event = event_of(&server, &allowed).await;
    assert_eq!(event["outcome"], "allowed");
    assert_eq!(event["principal"], "marketing-service");
    assert_eq!(event["purpose"], "marketing");
    assert_eq!(event["endpoint"], "query");
    assert_eq!(event["statement"], "select");
    assert_eq!(event["source"], "127.0.0.1");
    assert_eq!(event["rows"], returned.len() as u64);
    assert_eq!(
        event["fingerprint"],
        "SELECT id, email, country FROM customers WHERE id < ? ORDER BY id"
    );
    let customers = &event["tables"][0];
    assert_eq!(customers["table"], "customers");
    assert_eq!(customers["row_filter"], true);
    let email = customers["columns"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["column"] == "email")
        .expect("email column recorded");
    assert_eq!(email["decision"], "masked");
    assert_eq!(email["mask"], "email_partial");
    assert!(!event["policies"].as_array().unwrap().is_empty());
    let subjects: BTreeSet<String> = event["subjects"]["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    assert_eq!(subjects, returned);
    assert!(event["latency_us"].as_u64().unwrap() > 0);

    // Denied by policy: the column, its decision and the policy.
    let denied = server
        .query(
            "recs-service",
            "recommendation",
            "SELECT email FROM customers",
        )
        .await;
    assert_eq!(denied.status, 403);
    let event = event_of(&server, &denied).await;
    assert_eq!(event["outcome"], "denied");
    assert_eq!(event["error_code"], "policy_denied");
    assert_eq!(event["tables"][0]["table"], "customers");
    assert_eq!(
        event["policies"],
        serde_json::json!(["recs-no-customers-or-payments"])
    );
    assert_eq!(event["rows"], 0);

    // Unauthenticated: no principal, still one event.
    let anonymous = server
        .send(
            "POST",
            "/v1/query",
            &[("authorization", "Bearer not-a-key")],
            r#"{"sql":"SELECT 1","purpose":"x"}"#,
        )
        .await;
    assert_eq!(anonymous.status, 401);
    let event = event_of(&server, &anonymous).await;
    assert_eq!(event["outcome"], "denied");
    assert_eq!(event["error_code"], "unauthenticated");
    assert_eq!(event["principal"], Value::Null);

    // A purpose the principal may not declare.
    let purpose = server
        .query("marketing-service", "fraud", "SELECT id FROM customers")
        .await;
    assert_eq!(purpose.status, 403);
    let event = event_of(&server, &purpose).await;
    assert_eq!(event["error_code"], "purpose_denied");

    // The subject report finds the allowed access by customer id.
    let first = returned.iter().next().unwrap().clone();
    let id = first.trim_start_matches("customer:");
    let report = server
        .get(
            OFFICER,
            &format!("/v1/audit/subjects/{id}?purpose=compliance"),
        )
        .await;
    assert_eq!(report.status, 200);
    let ids: Vec<String> = report.json()["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["request_id"].as_str().unwrap().to_string())
        .collect();
    assert!(ids.contains(&request_id(&allowed)), "{ids:?}");

    // Searches by field: principal and column.
    let found = search(
        &server,
        "principal:marketing-service AND column:customers.email",
    )
    .await;
    assert!(found
        .iter()
        .any(|e| e["request_id"] == request_id(&allowed).as_str()));
    assert!(found.iter().all(|e| e["principal"] == "marketing-service"));

    // Reading the audit log is itself audited.
    let reads = search(&server, "endpoint:audit_search").await;
    assert!(!reads.is_empty());
    assert!(reads.iter().all(|e| e["principal"] == OFFICER));
}

/// A query with an email literal leaves no trace of the email in the log
/// files, the index, or the server's own log — allowed or denied.
async fn literals_leave_no_trace(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "audit_literals") else {
        eprintln!("skipped: PRIVET_TEST_POSTGRES is not set");
        return;
    };
    let secret = "zelda.quux.4711@example.org";
    let allowed = server
        .query(
            "support-agent-eu",
            "support",
            &format!("SELECT id FROM customers WHERE email = '{secret}'"),
        )
        .await;
    let denied = server
        .query(
            "recs-service",
            "recommendation",
            &format!("SELECT id FROM customers WHERE email = '{secret}'"),
        )
        .await;
    assert_eq!(denied.status, 403);
    let broken = server
        .query(
            "marketing-service",
            "marketing",
            &format!("SELECT id FROM customers WHERE email = {secret}"),
        )
        .await;
    assert_eq!(broken.status, 400);
    // The events exist (searched, so the index has them too).
    for reply in [&allowed, &denied, &broken] {
        let event = event_of(&server, reply).await;
        let fingerprint = event["fingerprint"].as_str().unwrap_or_default();
        assert!(!fingerprint.contains("zelda"), "{fingerprint}");
    }
    let audit_dir = server.data_dir.join("audit");
    let files = files_under(&audit_dir);
    assert!(files.len() > 3, "{files:?}");
    for needle in [secret, "zelda", "4711"] {
        for (path, bytes) in &files {
            assert!(
                !contains(bytes, needle.as_bytes()),
                "`{needle}` found in {}",
                path.display()
            );
        }
        assert!(
            !server.log().contains(needle),
            "`{needle}` in the server log"
        );
    }
}

/// Principals without `audit_read` are refused every audit endpoint, and
/// the refusal is audited too.
#[tokio::test]
async fn only_auditors_read_the_log() {
    let server = Server::start_demo();
    for path in [
        "/v1/audit/search?purpose=marketing&q=outcome:allowed",
        "/v1/audit/events/0?purpose=marketing",
        "/v1/audit/checkpoint?purpose=marketing",
        "/v1/audit/proof/0?purpose=marketing",
        "/v1/audit/verify?purpose=marketing",
        "/v1/audit/subjects/1?purpose=marketing",
    ] {
        let reply = server.get("marketing-service", path).await;
        assert_eq!(reply.status, 403, "{path}");
        assert_eq!(reply.error_code(), "policy_denied", "{path}");
    }
    // The compliance officer needs its purpose.
    let reply = server
        .get(
            OFFICER,
            "/v1/audit/search?purpose=marketing&q=outcome:denied",
        )
        .await;
    assert_eq!(reply.error_code(), "purpose_denied");
    let refusals = search(&server, "principal:marketing-service AND outcome:denied").await;
    assert_eq!(refusals.len(), 6, "{refusals:?}");
}

// --- An inclusion-proof verifier of its own (RFC 9162 §2.1.3.2), sharing
// --- no code with the writer.

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

fn verify_inclusion(
    leaf: [u8; 32],
    index: u64,
    size: u64,
    proof: &[[u8; 32]],
    root: [u8; 32],
) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = sha256(&[&[1], p, &r]);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = sha256(&[&[1], &r, p]);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == root
}

fn hash(value: &Value) -> [u8; 32] {
    let bytes = B64
        .decode(value.as_str().expect("base64 string"))
        .expect("base64");
    bytes.try_into().expect("32 bytes")
}

/// Inclusion proofs and the signed checkpoint check out with an
/// independent verifier; an event's leaf is the hash of exactly its entry.
#[tokio::test]
async fn proofs_verify_against_signed_checkpoints() {
    let server = Server::start_demo();
    for i in 0..9 {
        let reply = server
            .query(
                "orders-service",
                "fulfilment",
                &format!("SELECT id, status FROM orders WHERE id = {i}"),
            )
            .await;
        assert_eq!(reply.status, 200);
    }
    for seq in [0u64, 3, 8] {
        let reply = server
            .get(
                OFFICER,
                &format!("/v1/audit/proof/{seq}?purpose=compliance"),
            )
            .await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        let proof = reply.json();
        assert_eq!(proof["leafIdx"], seq);
        let size = proof["treeSize"].as_u64().unwrap();
        assert!(size > seq);
        let path: Vec<[u8; 32]> = proof["proof"]
            .as_array()
            .unwrap()
            .iter()
            .map(hash)
            .collect();
        let root = hash(&proof["root"]);
        let leaf = hash(&proof["leafHash"]);
        assert!(verify_inclusion(leaf, seq, size, &path, root), "seq {seq}");
        // A wrong leaf or index does not verify.
        assert!(!verify_inclusion(sha256(&[b"x"]), seq, size, &path, root));
        assert!(!verify_inclusion(leaf, seq + 1, size, &path, root) || size == 1);
        // The checkpoint's signature covers exactly that size and root.
        let checkpoint = &proof["checkpoint"];
        assert_eq!(checkpoint["size"], size);
        assert_eq!(hash(&checkpoint["root"]), root);
        let key = B64
            .decode(checkpoint["public_key"].as_str().unwrap())
            .unwrap();
        let signature = B64
            .decode(checkpoint["signature"].as_str().unwrap())
            .unwrap();
        let message = checkpoint["signed_message"].as_str().unwrap();
        assert!(message.contains(&size.to_string()));
        let key = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, key);
        assert!(key.verify(message.as_bytes(), &signature).is_ok());
        assert!(key.verify(b"size 1", &signature).is_err());
    }
    let verify = server
        .get(OFFICER, "/v1/audit/verify?purpose=compliance")
        .await;
    assert_eq!(verify.status, 200);
    assert_eq!(verify.json()["verified"], true, "{}", verify.json());
}

/// The gateway crashes (SIGKILL) under concurrent load; after it, the log
/// reopens and holds every event whose request was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_a_crash() {
    let mut server = Server::start_demo();
    let key = server.key("orders-service");
    let addr = server.addr;
    let acknowledged = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for client in 0..16u64 {
        let acknowledged = Arc::clone(&acknowledged);
        let key = key.clone();
        clients.push(tokio::spawn(async move {
            for i in 0..10_000u64 {
                let sql = format!(
                    "SELECT id, status FROM orders WHERE id = {}",
                    client * 10_000 + i
                );
                match e2e::post_query(addr, &key, "fulfilment", &sql).await {
                    Some((200, id)) => acknowledged.lock().unwrap().push(id),
                    Some(_) => {}
                    // The server is gone.
                    None => return,
                }
            }
        }));
    }
    // Kill once enough requests were acknowledged, with clients in flight.
    loop {
        if acknowledged.lock().unwrap().len() >= 300 {
            break;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.kill();
    for c in clients {
        c.await.unwrap();
    }
    let acknowledged: BTreeSet<String> = acknowledged.lock().unwrap().iter().cloned().collect();
    assert!(acknowledged.len() >= 300);

    // Reopen the log as the next start would, with the audit crate.
    let log_dir = server.data_dir.join("audit").join("log");
    let log = audit::AuditLog::open(&log_dir, audit::LogOptions::default()).expect("reopen");
    let events = log.read_events(0, usize::MAX).expect("read events");
    assert_eq!(events.len() as u64, log.size());
    let logged: BTreeSet<String> = events.iter().map(|e| e.request_id.clone()).collect();
    let missing: Vec<&String> = acknowledged.difference(&logged).collect();
    assert!(
        missing.is_empty(),
        "acknowledged but not logged: {missing:?}"
    );
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e.seq, i as u64);
    }
    drop(log);
    let verify = e2e::privet(&[
        "audit",
        "verify",
        "--data-dir",
        e2e::path_str(&server.data_dir),
    ]);
    assert!(
        verify.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    // The gateway starts again on the recovered log, and its index catches
    // up by itself: a search sees every event written before the crash.
    let size = events.len();
    let restarted = Server::start_in(&server.data_dir, &[]);
    let reply = restarted
        .get(
            OFFICER,
            "/v1/audit/search?purpose=compliance&q=endpoint:query&limit=1",
        )
        .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["total"], size as u64);
}

/// When the audit log cannot be written the gateway refuses every request
/// with 503 `audit_unavailable` and returns no data; it recovers once the
/// log is writable again.
#[tokio::test]
async fn unwritable_log_refuses_requests() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    e2e::seed(&dir, "0.02", "7");
    // Start once so the config and keys exist, then make the audit
    // directory read-only before the next start.
    let mut server = Server::start_in(&dir, &[]);
    let ok = server
        .query(
            "orders-service",
            "fulfilment",
            "SELECT id FROM orders WHERE id = 1",
        )
        .await;
    assert_eq!(ok.status, 200);
    server.terminate();
    let audit = dir.join("audit");
    std::fs::remove_dir_all(&audit).unwrap();
    std::fs::create_dir(&audit).unwrap();
    let guard = ReadOnly::new(&audit);
    let server = Server::start_in(&dir, &[]);
    let refused = server
        .query(
            "orders-service",
            "fulfilment",
            "SELECT id, status FROM orders",
        )
        .await;
    assert_eq!(
        refused.status,
        503,
        "{}",
        String::from_utf8_lossy(&refused.body)
    );
    assert_eq!(refused.error_code(), "audit_unavailable");
    assert!(refused.json().get("rows").is_none());
    assert!(!String::from_utf8_lossy(&refused.body).contains("\"status\""));
    assert!(refused.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("audit"));
    let health = server.send("GET", "/healthz", &[], Vec::new()).await;
    assert_eq!(health.status, 503);
    assert_eq!(health.json()["status"], "audit_unavailable");
    // Writable again: the gateway recovers by itself.
    drop(guard);
    let mut status = 0;
    for _ in 0..200 {
        let reply = server
            .query(
                "orders-service",
                "fulfilment",
                "SELECT id FROM orders WHERE id = 1",
            )
            .await;
        status = reply.status;
        if status == 200 {
            break;
        }
        // Reopening is retried at most once a second.
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
}

/// Makes a directory unwritable for this process: immutable when running as
/// root (root ignores permission bits), mode 0500 otherwise. Undone on drop.
struct ReadOnly {
    path: std::path::PathBuf,
    immutable: bool,
}

impl ReadOnly {
    fn new(path: &Path) -> ReadOnly {
        use std::os::unix::fs::PermissionsExt;
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
            .unwrap_or(false);
        if root {
            let status = std::process::Command::new("chattr")
                .args(["+i", e2e::path_str(path)])
                .status()
                .expect("chattr (e2fsprogs) is needed to make a directory read-only as root");
            assert!(status.success(), "chattr +i failed");
        } else {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o500)).unwrap();
        }
        ReadOnly {
            path: path.to_path_buf(),
            immutable: root,
        }
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.immutable {
            let _ = std::process::Command::new("chattr")
                .args(["-i", e2e::path_str(&self.path)])
                .status();
        } else {
            let _ = std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o700));
        }
    }
}

fn privet_ok(args: &[&str]) -> String {
    let out = e2e::privet(args);
    assert!(
        out.status.success(),
        "privet {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `privet audit ...` on the files, beside the running gateway and after it
/// stopped; `verify` names the first bad event once a byte is flipped.
#[tokio::test]
async fn audit_cli_searches_proves_and_catches_tampering() {
    let mut server = Server::start_demo();
    let dir = e2e::path_str(&server.data_dir).to_string();
    let mut returned = Vec::new();
    for i in 0..5 {
        let reply = server
            .query(
                "marketing-service",
                "marketing",
                &format!(
                    "SELECT id, email FROM customers WHERE id >= {} LIMIT 1",
                    10 + i * 10
                ),
            )
            .await;
        assert_eq!(reply.status, 200);
        returned.push(reply.json()["rows"][0][0].as_u64().expect("a customer id"));
    }
    let denied = server
        .query(
            "recs-service",
            "recommendation",
            "SELECT email FROM customers",
        )
        .await;
    assert_eq!(denied.status, 403);
    // A checkpoint covering everything so far, asked of the running gateway.
    let checkpoint = server
        .get(OFFICER, "/v1/audit/checkpoint?purpose=compliance")
        .await;
    assert_eq!(checkpoint.status, 200);
    let size = checkpoint.json()["size"].as_u64().unwrap();
    assert!(size >= 6);

    // While the gateway runs: verify, prove, show.
    assert!(privet_ok(&["audit", "verify", "--data-dir", &dir]).starts_with("ok: "));
    let proof: Value = serde_json::from_str(&privet_ok(&[
        "audit",
        "prove",
        "2",
        "--json",
        "--data-dir",
        &dir,
    ]))
    .unwrap();
    for field in ["leafIdx", "treeSize", "leafHash", "proof", "root"] {
        assert!(proof.get(field).is_some(), "{field} in {proof}");
    }
    let path: Vec<Vec<u8>> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| B64.decode(h.as_str().unwrap()).unwrap())
        .collect();
    assert!(audit::verifier::verify_inclusion(
        &B64.decode(proof["leafHash"].as_str().unwrap()).unwrap(),
        2,
        proof["treeSize"].as_u64().unwrap(),
        &path,
        &B64.decode(proof["root"].as_str().unwrap()).unwrap(),
    )
    .is_ok());
    let shown: Value =
        serde_json::from_str(&privet_ok(&["audit", "show", "0", "--data-dir", &dir])).unwrap();
    assert_eq!(shown["seq"], 0);
    assert_eq!(shown["principal"], "marketing-service");

    // Stop the gateway: the index has everything; search and reports.
    server.terminate();
    let denials = || -> Value {
        let args = [
            "audit",
            "search",
            "outcome:denied AND principal:recs-service",
            "--format",
            "json",
            "--data-dir",
            &dir,
        ];
        serde_json::from_str(&privet_ok(&args)).unwrap()
    };
    let json = denials();
    assert_eq!(json["total"], 1, "{json}");
    assert_eq!(json["events"][0]["error_code"], "policy_denied");
    let subject = format!("customer:{}", returned[2]);
    let csv = privet_ok(&[
        "audit",
        "subject",
        &subject,
        "--format",
        "csv",
        "--data-dir",
        &dir,
    ]);
    let lines: Vec<&str> = csv.lines().collect();
    let accesses = returned.iter().filter(|&&id| id == returned[2]).count();
    assert_eq!(lines.len(), 1 + accesses, "{csv}");
    assert!(lines[0].starts_with("seq,time,request_id,principal"));
    assert!(lines[1..].iter().all(|l| l.contains(&subject)));
    let export = privet_ok(&["audit", "export", "--format", "jsonl", "--data-dir", &dir]);
    let exported = export.lines().count() as u64;
    assert!(
        exported > size,
        "{exported} events exported, {size} checkpointed"
    );
    let table = privet_ok(&["audit", "tail", "-n", "3", "--data-dir", &dir]);
    assert!(table.contains("3 of 3 event(s)"), "{table}");

    // Reindex rebuilds the same answers from the log.
    privet_ok(&["audit", "reindex", "--data-dir", &dir]);
    assert_eq!(denials()["total"], 1);

    // Flip one byte inside event 3's entry: verify exits 1 naming seq 3.
    let log_dir = server.data_dir.join("audit").join("log");
    let segment = std::fs::read_dir(&log_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "log"))
        .expect("a segment file");
    let mut bytes = std::fs::read(&segment).unwrap();
    let needle = b"{\"seq\":3,";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("event 3 in the segment");
    bytes[at + 40] ^= 0x01;
    std::fs::write(&segment, &bytes).unwrap();
    let out = e2e::privet(&["audit", "verify", "--data-dir", &dir]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("TAMPERED at seq 3"), "{stdout}");
}
