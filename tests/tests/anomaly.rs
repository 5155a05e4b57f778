//! Anomaly detection end to end (issue 8): a support agent's key used to
//! enumerate customers one at a time is caught by the enumeration rule,
//! the configured action withholds the answers (429 with Retry-After), the
//! verdict and its reasons are in the audit event and in `/metrics`, a
//! Cedar policy on `context.anomaly_score` refuses the agent from then on,
//! and the baselines survive a restart.

use e2e::{path_str, privet, Server};

#[tokio::test]
async fn enumeration_is_throttled_audited_and_counted() {
    let mut server = Server::start_demo();
    server.terminate();
    let config = server.data_dir.join("privet.toml");
    let mut text = std::fs::read_to_string(&config).expect("generated config");
    // A short warm-up for the test, and a throttle from score 0.5 for the
    // support agent (the default ladder throttles from 0.8).
    text.push_str(
        "\n[anomaly.detector]\nwarmup_requests = 5\nwarmup_hours = 0\n\n\
         [anomaly.actions.principals]\n\
         \"support-agent-eu\" = [{ threshold = 0.3, action = \"log\" }, { threshold = 0.5, action = \"throttle\", retry_after_secs = 30 }]\n",
    );
    std::fs::write(&config, text).expect("config");
    // And a policy that reads the detector's risk: once the agent's recent
    // score is high, Cedar itself refuses it.
    std::fs::write(
        server.data_dir.join("policies/anomaly.cedar"),
        "@id(\"anomalous-support-forbidden\")\n\
         forbid (principal == Privet::User::\"support-agent-eu\", action, resource)\n\
         when { context.anomaly_score >= 50 };\n",
    )
    .expect("policy");
    let dir = server.data_dir.clone();
    let temp = server.take_temp();
    drop(server);
    let mut server_temp = temp;
    let mut server = Server::start_in(&dir, &[]);

    // EU customers: the agent's row filter lets it see these.
    let ids: Vec<i64> = {
        let store = server.store();
        let mut stmt = store
            .prepare("SELECT id FROM customers WHERE region = 'EU' ORDER BY id LIMIT 40")
            .expect("prepare");
        let rows = stmt.query_map([], |r| r.get(0)).expect("query");
        rows.map(|r| r.expect("id")).collect()
    };
    assert!(ids.len() >= 30, "{} EU customers", ids.len());
    let lookup = |id: i64| format!("SELECT id, region, city FROM customers WHERE id = {id}");

    // Normal work: the same customer's record, a few times (the warm-up).
    for _ in 0..6 {
        let reply = server
            .query("support-agent-eu", "support", &lookup(ids[0]))
            .await;
        assert_eq!(
            reply.status,
            200,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    // The attack: one customer after another.
    let mut answered = 0;
    let mut throttled = None;
    for &id in &ids[1..] {
        let reply = server
            .query("support-agent-eu", "support", &lookup(id))
            .await;
        match reply.status {
            200 => answered += 1,
            429 => {
                throttled = Some(reply);
                break;
            }
            other => panic!("{other}: {}", String::from_utf8_lossy(&reply.body)),
        }
    }
    let reply = throttled.expect("the enumeration was never throttled");
    // The rule needs 10 distinct subjects within 10 minutes (the warm-up's
    // customer counts): the first lookups pass, the 10th subject does not.
    assert!(
        (8..=20).contains(&answered),
        "throttled after {answered} new customers"
    );
    assert_eq!(reply.error_code(), "anomaly_throttled");
    assert_eq!(
        reply.headers.get("retry-after").map(|v| v.as_bytes()),
        Some(&b"30"[..])
    );
    // The answer is withheld: no customer row in the refusal.
    let body = String::from_utf8_lossy(&reply.body);
    assert!(!body.contains("\"rows\""), "{body}");
    assert!(body.contains("looked up one at a time"), "{body}");

    // From now on its risk is high: Cedar's forbid holds even for the
    // customer it looked at all along.
    let denied = server
        .query("support-agent-eu", "support", &lookup(ids[0]))
        .await;
    assert_eq!(
        denied.status,
        403,
        "{}",
        String::from_utf8_lossy(&denied.body)
    );
    assert_eq!(denied.error_code(), "policy_denied");
    assert!(
        String::from_utf8_lossy(&denied.body).contains("anomalous-support-forbidden"),
        "{}",
        String::from_utf8_lossy(&denied.body)
    );

    let metrics = String::from_utf8_lossy(&server.get("admin", "/metrics").await.body).into_owned();
    assert!(
        metrics.contains("privet_anomalies_total{kind=\"enumeration\",action=\"throttle\"}"),
        "{metrics}"
    );

    server.terminate();
    drop(server);
    // The baselines were saved at shutdown.
    let state = std::fs::read_to_string(dir.join("anomaly-state.json")).expect("baselines");
    assert!(state.contains("support-agent-eu"));
    // The throttled request's audit event carries the verdict and why.
    let tail = privet(&[
        "audit",
        "tail",
        "-n",
        "3",
        "--format",
        "json",
        "--data-dir",
        path_str(&dir),
    ]);
    let text = String::from_utf8_lossy(&tail.stdout);
    let tail: serde_json::Value = serde_json::from_str(&text).expect("audit tail JSON");
    let event = tail["events"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["error_code"] == "anomaly_throttled")
        .unwrap_or_else(|| panic!("no throttled event in:\n{text}"))
        .clone();
    assert_eq!(event["anomaly"]["action"], "throttle");
    assert!(event["anomaly"]["score"].as_f64().expect("score") >= 0.5);
    assert!(
        event["anomaly"]["reasons"]
            .as_array()
            .expect("reasons")
            .iter()
            .any(|r| r.as_str().is_some_and(|r| r.starts_with("enumeration"))),
        "{event}"
    );

    // A restart does not reset the baselines: the agent's risk is still
    // high, so the next lookup is still refused.
    let mut server = Server::start_in(&dir, &[]);
    if let Some(temp) = server_temp.take() {
        server.adopt_temp(temp);
    }
    let next = ids[answered + 2];
    let reply = server
        .query("support-agent-eu", "support", &lookup(next))
        .await;
    assert_eq!(
        reply.status,
        403,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.error_code(), "policy_denied");
}
