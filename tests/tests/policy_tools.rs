//! Explain, policy validation and tests, and hot reload, end to end.

use std::path::PathBuf;

use e2e::{path_str, privet, Server};
use serde_json::json;

fn demo_test_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../policies/demo-policies.test.toml")
}

#[tokio::test]
async fn explain_says_what_and_why_without_running() {
    let server = Server::start_demo();
    let key = format!("Bearer {}", server.key("marketing-service"));
    let body = json!({"sql": "SELECT id, email FROM customers WHERE region = 'EU'", "purpose": "marketing"});
    let reply = server
        .send(
            "POST",
            "/v1/explain",
            &[("authorization", &key)],
            body.to_string(),
        )
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let e = reply.json();
    assert_eq!(e["allowed"], true);
    let customers = &e["tables"][0];
    assert_eq!(customers["table"], "customers");
    assert_eq!(customers["row_filter"]["sql"], "(marketing_opt_in = 1)");
    assert_eq!(
        customers["row_filter"]["policy_ids"],
        json!(["marketing-read-customers"])
    );
    let column = |name: &str| {
        customers["columns"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(column("email")["decision"], "masked");
    assert_eq!(column("email")["mask"], "email_partial");
    assert_eq!(
        column("email")["policy_ids"],
        json!(["marketing-email-partial"])
    );
    assert_eq!(column("phone")["decision"], "denied");
    assert!(column("phone")["reason"]
        .as_str()
        .unwrap()
        .contains("deny by default"));
    assert_eq!(e["outputs"][1]["transform"], "mask:email_partial");
    assert_eq!(e["outputs"][1]["direct"], "customers.email");
    let uses = e["uses"].as_array().unwrap();
    assert!(
        uses.contains(&json!({"column": "customers.region", "uses": ["predicate"]})),
        "{uses:?}"
    );
    let sql = e["rewritten_sql"].as_str().unwrap();
    assert!(
        sql.contains("WHERE (marketing_opt_in = 1)") && !sql.contains("phone"),
        "{sql}"
    );

    // A refusal is explained too, with the view of the table concerned.
    let body = json!({"sql": "SELECT id FROM customers ORDER BY email", "purpose": "marketing"});
    let e = server
        .send(
            "POST",
            "/v1/explain",
            &[("authorization", &key)],
            body.to_string(),
        )
        .await
        .json();
    assert_eq!(e["allowed"], false);
    assert_eq!(e["error"]["code"], "policy_denied");
    assert_eq!(e["error"]["column"], "email");
    assert!(e["error"]["message"].as_str().unwrap().contains("filter"));
    assert_eq!(e["tables"][0]["table"], "customers");

    // The CLI gives the same explanation.
    let out = privet(&[
        "explain",
        "--data-dir",
        path_str(&server.data_dir),
        "--as",
        "marketing-service",
        "--purpose",
        "marketing",
        "SELECT id, email FROM customers WHERE region = 'EU'",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["rewritten_sql"], sql);
}

#[test]
fn the_demo_policy_tests_pass_and_a_wrong_expectation_fails() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    e2e::seed(&data, "0.01", "5");
    let mut server = Server::start_in(&data, &[]);
    assert!(server.terminate().success());

    let out = privet(&[
        "policy",
        "test",
        "--data-dir",
        path_str(&data),
        path_str(&demo_test_file()),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");

    let wrong = dir.path().join("wrong.toml");
    std::fs::write(
        &wrong,
        "[[case]]\nprincipal = \"marketing-service\"\npurpose = \"marketing\"\nsql = \"SELECT email FROM customers\"\nexpect = \"allowed\"\ntransforms = { email = \"none\" }\n",
    )
    .unwrap();
    let out = privet(&[
        "policy",
        "test",
        "--data-dir",
        path_str(&data),
        path_str(&wrong),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL")
            && stdout.contains("expected transform none, got mask:email_partial"),
        "{stdout}"
    );

    let out = privet(&["policy", "validate", "--data-dir", path_str(&data)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("policies valid"));

    std::fs::write(
        data.join("policies/bad.cedar"),
        "@id(\"bad\")\n@mask(\"blur\")\npermit(principal, action, resource);\n",
    )
    .unwrap();
    let out = privet(&["policy", "validate", "--data-dir", path_str(&data)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("bad") && stderr.contains("unknown mask `blur`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn policies_reload_over_http_for_admin_only_and_invalid_sets_are_refused() {
    let server = Server::start_demo();
    let admin = format!("Bearer {}", server.key("admin"));
    let marketing = format!("Bearer {}", server.key("marketing-service"));
    let reload = |auth: String| {
        let server = &server;
        async move {
            server
                .send(
                    "POST",
                    "/v1/admin/policies/reload",
                    &[("authorization", &auth)],
                    json!({"purpose": "admin"}).to_string(),
                )
                .await
        }
    };

    let reply = reload(marketing.clone()).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (403, "purpose_denied")
    );
    let reply = server
        .send(
            "POST",
            "/v1/admin/policies/reload",
            &[("authorization", &marketing)],
            json!({"purpose": "marketing"}).to_string(),
        )
        .await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (403, "policy_denied")
    );

    // Marketing reads masked email now.
    let q = "SELECT email FROM customers LIMIT 1";
    let before = server
        .query("marketing-service", "marketing", q)
        .await
        .json();
    assert_eq!(before["columns"][0]["transform"], "mask:email_partial");

    // An invalid set is refused whole; the old one keeps serving.
    let policies = server.data_dir.join("policies");
    std::fs::write(
        policies.join("broken.cedar"),
        "@id(\"broken\")\npermit(principal, action, resource) when { context.purpse == 1 };\n",
    )
    .unwrap();
    let reply = reload(admin.clone()).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (422, "policy_invalid"),
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(reply.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("previous policies keep serving"));
    let still = server
        .query("marketing-service", "marketing", q)
        .await
        .json();
    assert_eq!(still["columns"][0]["transform"], "mask:email_partial");

    // A valid change takes effect: marketing loses email entirely.
    std::fs::remove_file(policies.join("broken.cedar")).unwrap();
    let marketing_policies = std::fs::read_to_string(policies.join("marketing.cedar")).unwrap();
    let without_email = marketing_policies.replace("@mask(\"email_partial\")", "@mask(\"null\")");
    assert_ne!(without_email, marketing_policies);
    std::fs::write(policies.join("marketing.cedar"), without_email).unwrap();
    let reply = reload(admin).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["reloaded"], true);
    let after = server
        .query("marketing-service", "marketing", q)
        .await
        .json();
    assert_eq!(after["columns"][0]["transform"], "mask:null");
    assert_eq!(after["rows"][0][0], serde_json::Value::Null);
}

#[tokio::test]
async fn sighup_reloads_policies() {
    let server = Server::start_demo();
    let q = "SELECT kind FROM events LIMIT 1";
    assert_eq!(
        server
            .query("recs-service", "recommendation", q)
            .await
            .status,
        200
    );
    let policies = server.data_dir.join("policies");
    let text = std::fs::read_to_string(policies.join("recommendations.cedar")).unwrap();
    std::fs::write(
        policies.join("recommendations.cedar"),
        text.replace("\"recommendation\"", "\"retired\""),
    )
    .unwrap();
    server.signal("HUP");
    // The reload is asynchronous: wait for the log line that reports it
    // (bounded), rather than for a length of time.
    server.wait_for_log("SIGHUP: policies reloaded");
    let reply = server.query("recs-service", "recommendation", q).await;
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (403, "policy_denied")
    );
}
