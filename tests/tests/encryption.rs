//! Field encryption end to end (issue 6): the real `privet` binary over the
//! demo store, on SQLite and PostgreSQL. Phone and card numbers are stored
//! as vault ciphertext; only `decrypt` shows them; equality goes through the
//! blind index; a moved ciphertext does not decrypt; a shredded customer
//! reads as "[shredded]"; rotation plus an interrupted rewrap loses nothing.

use std::collections::BTreeMap;

use e2e::{on_both_backends, path_str, privet, Backend, Server};
use serde_json::Value;

const ADMIN: &str = "admin";
const SUPPORT: &str = "support-agent-eu";

on_both_backends! {
    stored_values_are_ciphertext_and_only_decrypt_shows_them => crate::only_decrypt_shows_plaintext,
    a_ciphertext_moved_to_another_row_does_not_decrypt => crate::moved_ciphertext_fails,
    shredded_subjects_read_as_a_marker_and_others_are_unaffected => crate::shredding,
    rotation_and_an_interrupted_rewrap_lose_no_value => crate::rotation_and_rewrap,
    writes_are_authorized_per_column_and_encrypted_on_the_way_in => crate::writes,
}

/// Rows of a successful query.
async fn rows(server: &Server, who: &str, purpose: &str, sql: &str) -> Vec<Vec<Value>> {
    server.query(who, purpose, sql).await.rows()
}

/// id → phone as the admin (who may decrypt) sees them.
async fn phones(server: &Server) -> BTreeMap<i64, Option<String>> {
    rows(server, ADMIN, "admin", "SELECT id, phone FROM customers")
        .await
        .into_iter()
        .map(|r| (r[0].as_i64().expect("id"), r[1].as_str().map(str::to_owned)))
        .collect()
}

/// The stored (raw) values of a column, straight from the store.
async fn stored(server: &Server, table: &str, column: &str) -> Vec<(i64, Option<String>)> {
    let sql = format!("SELECT id, {column} FROM {table} ORDER BY id");
    match &server.pg {
        None => {
            let conn = server.store();
            let mut stmt = conn.prepare(&sql).expect("prepare");
            let out = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("query")
                .collect::<Result<_, _>>()
                .expect("rows");
            out
        }
        Some(pg) => {
            let client = pg_client(&pg.url).await;
            let sql = format!(
                "SELECT id, {column} FROM \"{}\".{table} ORDER BY id",
                pg.name
            );
            client
                .query(&sql, &[])
                .await
                .expect("query")
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        }
    }
}

/// Runs an UPDATE directly on the store (the attacker with database access).
async fn tamper(server: &Server, sql: &str) {
    match &server.pg {
        None => {
            let conn = rusqlite::Connection::open(server.data_dir.join("store.sqlite3"))
                .expect("open store");
            conn.execute(sql, []).expect("tamper");
        }
        Some(pg) => {
            let client = pg_client(&pg.url).await;
            client
                .batch_execute(&format!("SET search_path = \"{}\"; {sql}", pg.name))
                .await
                .expect("tamper");
        }
    }
}

async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// `privet keys ARGS` against the server's data dir (and backend).
fn keys(server: &Server, args: &[&str]) -> String {
    let mut all = vec!["keys"];
    all.extend_from_slice(args);
    all.extend(["--data-dir", path_str(&server.data_dir)]);
    if let Some(pg) = &server.pg {
        all.extend(["--backend", pg.url.as_str(), "--schema", pg.name.as_str()]);
    }
    let out = privet(&all);
    assert!(
        out.status.success(),
        "privet {all:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn only_decrypt_shows_plaintext(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "enc_only_decrypt") else {
        return;
    };
    let plain = phones(&server).await;
    let with_phone: Vec<(i64, String)> = plain
        .iter()
        .filter_map(|(id, p)| p.clone().map(|p| (*id, p)))
        .collect();
    assert!(with_phone.len() > 50, "{plain:?}");
    assert!(
        with_phone.iter().all(|(_, p)| p.starts_with('+')),
        "{with_phone:?}"
    );

    // At rest: ciphertext only, and no stored value holds a phone number.
    let raw = stored(&server, "customers", "phone").await;
    for (id, value) in &raw {
        if let Some(v) = value {
            assert!(v.starts_with("pv1."), "customer {id}: {v}");
            assert!(!with_phone.iter().any(|(_, p)| v.contains(&p[1..])), "{v}");
        }
    }
    let cards = stored(&server, "payments", "card_number").await;
    assert!(cards
        .iter()
        .all(|(_, c)| c.as_deref().is_some_and(|c| c.starts_with("pv1."))));

    // Support decrypts the phones of its own region, and they are the real ones.
    let support = rows(
        &server,
        SUPPORT,
        "support",
        "SELECT id, phone FROM customers",
    )
    .await;
    assert!(!support.is_empty());
    for row in &support {
        let id = row[0].as_i64().expect("id");
        assert_eq!(row[1].as_str(), plain[&id].as_deref(), "customer {id}");
    }
    let reply = server
        .query(SUPPORT, "support", "SELECT phone FROM customers LIMIT 1")
        .await;
    assert_eq!(reply.json()["columns"][0]["transform"], "decrypt");

    // Explain says so too.
    let key = format!("Bearer {}", server.key(SUPPORT));
    let body = serde_json::json!({"sql": "SELECT id, phone FROM customers", "purpose": "support"});
    let explained = server
        .send(
            "POST",
            "/v1/explain",
            &[("authorization", &key)],
            body.to_string(),
        )
        .await
        .json();
    let phone = explained["tables"][0]["columns"]
        .as_array()
        .expect("columns")
        .iter()
        .find(|c| c["name"] == "phone")
        .cloned()
        .expect("phone");
    assert_eq!(phone["decision"], "decrypted", "{explained}");
    assert!(
        phone["policy_ids"]
            .to_string()
            .contains("support-decrypt-phone"),
        "{phone}"
    );

    // Equality through the blind index finds exactly the customer.
    let (victim, victim_phone) = with_phone[with_phone.len() / 2].clone();
    let found = rows(
        &server,
        ADMIN,
        "admin",
        &format!("SELECT id FROM customers WHERE phone = '{victim_phone}'"),
    )
    .await;
    let expected: Vec<i64> = with_phone
        .iter()
        .filter(|(_, p)| *p == victim_phone)
        .map(|(id, _)| *id)
        .collect();
    let found: Vec<i64> = found.iter().map(|r| r[0].as_i64().expect("id")).collect();
    assert_eq!(found, expected);
    assert!(found.contains(&victim));
    let found = rows(
        &server,
        ADMIN,
        "admin",
        &format!("SELECT id FROM customers WHERE phone IN ('{victim_phone}', '+0000')"),
    )
    .await;
    assert!(found.iter().any(|r| r[0].as_i64() == Some(victim)));

    // Attacks: every other way of reaching the plaintext or its token is
    // refused, before anything runs.
    let prefix = &victim_phone[..4];
    for (who, purpose, sql) in [
        (ADMIN, "admin", format!("SELECT id FROM customers WHERE phone LIKE '{prefix}%'")),
        (ADMIN, "admin", "SELECT id FROM customers WHERE phone > '+4'".to_string()),
        (ADMIN, "admin", "SELECT substr(phone, 1, 4) FROM customers".to_string()),
        (ADMIN, "admin", "SELECT id FROM customers ORDER BY phone".to_string()),
        (ADMIN, "admin", "SELECT phone, count(*) FROM customers GROUP BY phone".to_string()),
        (ADMIN, "admin", "SELECT a.id FROM customers a JOIN customers b ON a.phone = b.phone".to_string()),
        (ADMIN, "admin", "SELECT phone_bidx FROM customers".to_string()),
        (ADMIN, "admin", "SELECT id FROM customers WHERE phone_bidx IS NOT NULL".to_string()),
        (ADMIN, "admin", "SELECT length(card_number) FROM payments".to_string()),
        (ADMIN, "admin", format!("SELECT id FROM (SELECT id, phone FROM customers) s WHERE s.phone = '{victim_phone}'")),
        (ADMIN, "admin", "SELECT privet_bidx_phone FROM customers".to_string()),
        (SUPPORT, "support", "SELECT card_number FROM payments".to_string()),
        ("marketing-service", "marketing", "SELECT phone FROM customers".to_string()),
        ("marketing-service", "marketing", format!("SELECT id FROM customers WHERE phone = '{victim_phone}'")),
    ] {
        let reply = server.query(who, purpose, &sql).await;
        let body = String::from_utf8_lossy(&reply.body).into_owned();
        assert!(
            reply.status >= 400,
            "{who}: {sql} was answered: {body}"
        );
        assert!(!body.contains(&victim_phone[1..]), "{sql}: {body}");
        assert!(!body.contains("pv1."), "{sql}: {body}");
        assert!(!body.contains("bix_"), "{sql}: {body}");
    }
}

async fn moved_ciphertext_fails(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "enc_moved") else {
        return;
    };
    let plain = phones(&server).await;
    let ids: Vec<i64> = plain
        .iter()
        .filter(|(_, p)| p.is_some())
        .map(|(id, _)| *id)
        .take(2)
        .collect();
    let (victim, thief) = (ids[0], ids[1]);
    // Copy the victim's ciphertext into the thief's row.
    tamper(
        &server,
        &format!("UPDATE customers SET phone = (SELECT phone FROM customers WHERE id = {victim}) WHERE id = {thief}"),
    )
    .await;
    let reply = server
        .query(
            ADMIN,
            "admin",
            &format!("SELECT phone FROM customers WHERE id = {thief}"),
        )
        .await;
    let body = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(reply.status, 500, "{body}");
    assert_eq!(reply.error_code(), "decrypt_failed", "{body}");
    let victim_phone = plain[&victim].clone().expect("phone");
    assert!(!body.contains(&victim_phone[1..]), "{body}");
    // Into another column: a card number's ciphertext as a phone.
    tamper(
        &server,
        &format!("UPDATE customers SET phone = (SELECT card_number FROM payments WHERE id = 1) WHERE id = {victim}"),
    )
    .await;
    let reply = server
        .query(
            ADMIN,
            "admin",
            &format!("SELECT phone FROM customers WHERE id = {victim}"),
        )
        .await;
    assert_eq!(reply.error_code(), "decrypt_failed");
    // An altered byte.
    let stored_value = stored(&server, "customers", "phone")
        .await
        .into_iter()
        .find(|(id, p)| *id != victim && *id != thief && p.is_some())
        .expect("another customer with a phone");
    let (other, value) = (stored_value.0, stored_value.1.expect("phone"));
    let mut altered = value.into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    let altered = String::from_utf8(altered).expect("ASCII");
    tamper(
        &server,
        &format!("UPDATE customers SET phone = '{altered}' WHERE id = {other}"),
    )
    .await;
    let reply = server
        .query(
            ADMIN,
            "admin",
            &format!("SELECT phone FROM customers WHERE id = {other}"),
        )
        .await;
    assert_eq!(reply.error_code(), "decrypt_failed");
    // The server is fine: untouched rows still decrypt.
    let untouched: Vec<i64> = plain
        .iter()
        .filter(|(id, p)| p.is_some() && ![victim, thief, other].contains(id))
        .map(|(id, _)| *id)
        .take(3)
        .collect();
    for id in untouched {
        let got = rows(
            &server,
            ADMIN,
            "admin",
            &format!("SELECT phone FROM customers WHERE id = {id}"),
        )
        .await;
        assert_eq!(got[0][0].as_str(), plain[&id].as_deref());
    }
}

async fn shredding(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "enc_shred") else {
        return;
    };
    let plain = phones(&server).await;
    let (victim, _) = plain
        .iter()
        .find(|(_, p)| p.is_some())
        .map(|(id, p)| (*id, p.clone()))
        .expect("a customer with a phone");
    let cards_before = rows(
        &server,
        ADMIN,
        "admin",
        &format!("SELECT p.id, p.card_number FROM payments p JOIN orders o ON o.id = p.order_id WHERE o.customer_id = {victim}"),
    )
    .await;

    let out = keys(
        &server,
        &["shred", "--subject", &format!("customer:{victim}")],
    );
    assert!(out.contains("key destroyed"), "{out}");

    // The very next request sees it: the keystore changed on disk.
    let after = phones(&server).await;
    assert_eq!(after[&victim].as_deref(), Some("[shredded]"));
    for (id, phone) in &plain {
        if *id != victim {
            assert_eq!(&after[id], phone, "customer {id} must be unaffected");
        }
    }
    // The column says how many of its values were shredded.
    let reply = server
        .query(
            ADMIN,
            "admin",
            &format!("SELECT phone FROM customers WHERE id = {victim}"),
        )
        .await;
    assert_eq!(reply.json()["columns"][0]["transform"], "decrypt");
    assert_eq!(reply.json()["columns"][0]["shredded"], 1);
    let reply = server
        .query(
            ADMIN,
            "admin",
            &format!("SELECT phone FROM customers WHERE id <> {victim}"),
        )
        .await;
    assert_eq!(reply.status, 200);
    assert!(reply.json()["columns"][0].get("shredded").is_none());
    let cards_after = rows(
        &server,
        ADMIN,
        "admin",
        &format!("SELECT p.id, p.card_number FROM payments p JOIN orders o ON o.id = p.order_id WHERE o.customer_id = {victim}"),
    )
    .await;
    assert_eq!(cards_after.len(), cards_before.len());
    assert!(
        cards_after.iter().all(|r| r[1] == "[shredded]"),
        "{cards_after:?}"
    );
    // A second shred is a no-op, not an error.
    let out = keys(
        &server,
        &["shred", "--subject", &format!("customer:{victim}")],
    );
    assert!(out.contains("already shredded"), "{out}");

    // The running gateway records the shredding in its audit log.
    let subject = format!("customer:{victim}");
    server.wait_for_log("crypto-shredding recorded");
    let reply = server
        .get(
            "compliance-officer",
            "/v1/audit/search?purpose=compliance&q=endpoint:keys.shred",
        )
        .await;
    let found = reply.json()["events"].as_array().is_some_and(|events| {
        events.iter().any(|e| {
            e["subjects"]["ids"]
                .as_array()
                .is_some_and(|ids| ids.iter().any(|s| s.as_str() == Some(subject.as_str())))
        })
    });
    assert!(
        found,
        "no keys.shred event for {subject}: {}",
        String::from_utf8_lossy(&reply.body)
    );

    // `keys list` shows the shredded key, and no key material.
    let listing = keys(&server, &["list"]);
    assert!(listing.contains("1 shredded"), "{listing}");
    let keystore = std::fs::read(server.data_dir.join("keystore.pvk")).expect("keystore");
    assert!(!listing.contains("pv1."));
    assert!(!String::from_utf8_lossy(&keystore).contains(&subject));
}

async fn rotation_and_rewrap(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "enc_rewrap") else {
        return;
    };
    let before = phones(&server).await;
    let version_of = |v: &str| v.split('.').nth(2).map(str::to_owned);
    let raw = stored(&server, "customers", "phone").await;
    assert!(raw
        .iter()
        .flatten_values()
        .all(|v| version_of(v).as_deref() == Some("1")));

    let out = keys(&server, &["rotate", "--column", "customers.phone"]);
    assert!(out.contains("version 2"), "{out}");
    // Rotation alone changes nothing stored; everything still decrypts.
    assert_eq!(phones(&server).await, before);

    // Interrupted after two batches of 7.
    let out = keys(
        &server,
        &[
            "rewrap",
            "--column",
            "customers.phone",
            "--batch",
            "7",
            "--stop-after-batches",
            "2",
        ],
    );
    assert!(out.contains("stopped early"), "{out}");
    let raw = stored(&server, "customers", "phone").await;
    let at_v2 = raw
        .iter()
        .flatten_values()
        .filter(|v| version_of(v).as_deref() == Some("2"))
        .count();
    assert_eq!(at_v2, 14, "two batches of 7 were committed");
    assert_eq!(phones(&server).await, before, "mixed versions all decrypt");

    // Run again: it finishes the rest.
    let out = keys(&server, &["rewrap", "--column", "customers.phone"]);
    assert!(out.contains("14 already current"), "{out}");
    let raw = stored(&server, "customers", "phone").await;
    assert!(raw
        .iter()
        .flatten_values()
        .all(|v| version_of(v).as_deref() == Some("2")));
    assert_eq!(phones(&server).await, before, "no value lost or changed");
    // A third run has nothing to do.
    let out = keys(&server, &["rewrap", "--column", "customers.phone"]);
    assert!(out.contains(": 0 values re-encrypted"), "{out}");

    let listing = keys(&server, &["list"]);
    assert!(
        listing.contains("v1 retired") && listing.contains("v2 active"),
        "{listing}"
    );
}

async fn writes(backend: Backend) {
    let Some(server) = Server::start_demo_on(backend, "enc_writes") else {
        return;
    };
    const ORDERS: &str = "orders-service";
    let plain = phones(&server).await;
    let mut ids = plain.keys().copied();
    let (target, erased) = (
        ids.next().expect("a customer"),
        ids.next().expect("another"),
    );
    let new_phone = "+493011122233";

    // orders-service updates a phone number: encrypted on the way in.
    let reply = server
        .query(
            ORDERS,
            "fulfilment",
            &format!("UPDATE customers SET phone = '{new_phone}' WHERE id = {target}"),
        )
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["rows_affected"], 1);
    let raw = stored(&server, "customers", "phone").await;
    let stored_value = raw
        .iter()
        .find(|(id, _)| *id == target)
        .and_then(|(_, v)| v.clone())
        .expect("stored phone");
    assert!(stored_value.starts_with("pv1."), "{stored_value}");
    assert!(!stored_value.contains(&new_phone[1..]));
    // The admin reads it decrypted, and finds it by the blind index.
    let after = phones(&server).await;
    assert_eq!(after[&target].as_deref(), Some(new_phone));
    for (id, phone) in &plain {
        if *id != target {
            assert_eq!(&after[id], phone);
        }
    }
    let found = rows(
        &server,
        ADMIN,
        "admin",
        &format!("SELECT id FROM customers WHERE phone = '{new_phone}'"),
    )
    .await;
    assert_eq!(found, vec![vec![Value::from(target)]]);

    // An order inserted.
    let reply = server
        .query(
            ORDERS,
            "fulfilment",
            &format!(
                "INSERT INTO orders (id, customer_id, created_at, status, total_cents, shipping_address, shipping_zip) \
                 VALUES (900001, {target}, '2026-11-26T10:00:00Z', 'placed', 4200, 'Hauptstr. 1', '10115')"
            ),
        )
        .await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(reply.json()["rows_affected"], 1);
    let order = rows(
        &server,
        ADMIN,
        "admin",
        "SELECT status, total_cents FROM orders WHERE id = 900001",
    )
    .await;
    assert_eq!(order, vec![vec![Value::from("placed"), Value::from(4200)]]);

    // Attacks: refused before anything is written.
    for (who, purpose, sql) in [
        // What orders-service may not write.
        (ORDERS, "fulfilment", format!("UPDATE customers SET email = 'x@example.com' WHERE id = {target}")),
        (ORDERS, "fulfilment", "INSERT INTO customers (id, email, full_name, marketing_opt_in) VALUES (999999, 'a@b.c', 'A B', 0)".to_string()),
        (ORDERS, "fulfilment", "UPDATE payments SET card_number = '4111111111111111' WHERE id = 1".to_string()),
        ("marketing-service", "marketing", format!("UPDATE customers SET phone = '+1' WHERE id = {target}")),
        // Shapes that could read, or write many rows.
        (ORDERS, "fulfilment", "UPDATE customers SET phone = '+1' WHERE region = 'EU'".to_string()),
        (ORDERS, "fulfilment", format!("UPDATE customers SET phone = '+1' WHERE id = {target} OR 1 = 1")),
        (ORDERS, "fulfilment", "UPDATE customers SET phone = '+1'".to_string()),
        (ORDERS, "fulfilment", format!("UPDATE customers SET phone = (SELECT email FROM customers WHERE id = 2) WHERE id = {target}")),
        (ORDERS, "fulfilment", format!("UPDATE customers SET phone = email WHERE id = {target}")),
        (ORDERS, "fulfilment", "INSERT INTO orders (id, customer_id) SELECT id, id FROM customers".to_string()),
        (ORDERS, "fulfilment", "INSERT INTO orders VALUES (900002, 1, '2026-11-26T10:00:00Z', 'placed', 1, 'x', 'y')".to_string()),
        (ORDERS, "fulfilment", format!("UPDATE customers SET phone_bidx = 'bix_x' WHERE id = {target}")),
        (ORDERS, "fulfilment", format!("UPDATE customers SET id = 5 WHERE id = {target}")),
        (ORDERS, "fulfilment", "INSERT INTO orders (id, customer_id, status) VALUES (900003, 1, 'placed') RETURNING *".to_string()),
        (ORDERS, "fulfilment", "UPDATE orders SET status = 'x' WHERE id = 1; DELETE FROM orders".to_string()),
        (ORDERS, "fulfilment", "DELETE FROM orders WHERE id = 1".to_string()),
    ] {
        let reply = server.query(who, purpose, &sql).await;
        assert!(
            (400..500).contains(&reply.status),
            "{who}: {sql} => {} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        );
    }
    assert_eq!(
        phones(&server).await,
        after,
        "no refused write changed anything"
    );
    let count = rows(
        &server,
        ADMIN,
        "admin",
        "SELECT count(*) FROM orders WHERE id > 900001",
    )
    .await;
    assert_eq!(count, vec![vec![Value::from(0)]]);

    // A shredded customer's fields cannot be written again.
    keys(
        &server,
        &["shred", "--subject", &format!("customer:{erased}")],
    );
    let reply = server
        .query(
            ORDERS,
            "fulfilment",
            &format!("UPDATE customers SET phone = '+4930999' WHERE id = {erased}"),
        )
        .await;
    assert_eq!(
        reply.status,
        400,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    assert!(String::from_utf8_lossy(&reply.body).contains("erased"));

    // The audit log has the write, with its subject, but not the number.
    let search = server
        .get(
            "compliance-officer",
            "/v1/audit/search?purpose=compliance&q=statement:update",
        )
        .await;
    let events = search.json()["events"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        events.iter().any(|e| e["outcome"] == "allowed"
            && e["subjects"]["ids"][0] == format!("customer:{target}").as_str()),
        "{events:?}"
    );
    let log_dir = server.data_dir.join("audit").join("log");
    for entry in std::fs::read_dir(&log_dir).expect("log dir") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("segment");
        assert!(
            !bytes
                .windows(new_phone.len() - 1)
                .any(|w| w == &new_phone.as_bytes()[1..]),
            "the phone number is in the audit log"
        );
    }
}

/// The non-NULL values of `(id, value)` pairs.
trait FlattenValues<'a> {
    fn flatten_values(self) -> impl Iterator<Item = &'a String>;
}

impl<'a, I: Iterator<Item = &'a (i64, Option<String>)>> FlattenValues<'a> for I {
    fn flatten_values(self) -> impl Iterator<Item = &'a String> {
        self.filter_map(|(_, v)| v.as_ref())
    }
}
