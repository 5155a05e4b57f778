//! The search index over audit events: query forms, ranges, paging, order,
//! the data-subject report, errors and catch-up persistence.

use std::path::Path;

use audit::{
    Anomaly, AuditIndex, ColumnAccess, Decision, Event, Hits, IndexError, Outcome, Page, Subjects,
    TableAccess, TimeRange,
};

const T0: i64 = 1_764_000_000_000_000;
const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

fn base(seq: u64, time_us: i64) -> Event {
    Event {
        seq,
        time_us,
        request_id: format!("r-{seq}"),
        principal: None,
        roles: Vec::new(),
        source: "127.0.0.1".into(),
        purpose: None,
        endpoint: "query".into(),
        statement: Some("select".into()),
        fingerprint: None,
        tables: Vec::new(),
        policies: Vec::new(),
        rows: 0,
        subjects: Subjects::default(),
        anomaly: Anomaly::default(),
        latency_us: 100,
        outcome: Outcome::Allowed,
        error_code: None,
    }
}

fn table(name: &str, columns: &[(&str, Decision, Option<&str>)]) -> TableAccess {
    TableAccess {
        table: name.into(),
        columns: columns
            .iter()
            .map(|(c, d, m)| ColumnAccess {
                column: (*c).into(),
                decision: *d,
                mask: m.map(String::from),
            })
            .collect(),
        row_filter: false,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn subjects(v: &[&str]) -> Subjects {
    Subjects {
        ids: strings(v),
        truncated: false,
        unattributed: false,
    }
}

/// Eight events covering every field; the expected hit lists below are
/// derived by hand from this table.
fn events() -> Vec<Event> {
    use Decision::*;
    let mut e0 = base(0, T0);
    e0.principal = Some("marketing-service".into());
    e0.roles = strings(&["service"]);
    e0.purpose = Some("marketing".into());
    e0.fingerprint = Some("SELECT email FROM customers WHERE id = ?".into());
    e0.tables = vec![table(
        "customers",
        &[
            ("email", Masked, Some("email_partial")),
            ("id", Plain, None),
        ],
    )];
    e0.policies = strings(&["marketing-email-masked"]);
    e0.subjects = subjects(&["customer:42"]);
    e0.rows = 1;

    let mut e1 = base(1, T0 + HOUR);
    e1.principal = Some("alice".into());
    e1.roles = strings(&["analyst", "Reader"]);
    e1.purpose = Some("analytics".into());
    e1.fingerprint = Some("SELECT count(*) FROM orders".into());
    e1.tables = vec![table("orders", &[("id", Plain, None)])];
    e1.rows = 100;

    let mut e2 = base(2, T0 + 2 * DAY);
    e2.principal = Some("marketing-service".into());
    e2.purpose = Some("marketing".into());
    e2.fingerprint = Some("SELECT phone FROM customers".into());
    e2.tables = vec![table("customers", &[("phone", Denied, None)])];
    e2.policies = strings(&["marketing-no-phone"]);
    e2.outcome = Outcome::Denied;
    e2.error_code = Some("policy_denied".into());

    let mut e3 = base(3, T0 + 3 * DAY);
    e3.principal = Some("support-agent".into());
    e3.purpose = Some("support".into());
    e3.fingerprint = Some("SELECT name, email FROM customers WHERE id IN (?, ?)".into());
    e3.tables = vec![table(
        "customers",
        &[("name", Plain, None), ("email", Decrypted, None)],
    )];
    e3.policies = strings(&["support-decrypt"]);
    e3.subjects = subjects(&["customer:42", "customer:7"]);
    e3.rows = 2;

    let mut e4 = base(4, T0 + 4 * DAY);
    e4.statement = None;
    e4.outcome = Outcome::Failed;
    e4.error_code = Some("unauthenticated".into());

    let mut e5 = base(5, T0 + 8 * DAY);
    e5.principal = Some("Marketing-Service".into());
    e5.purpose = Some("marketing".into());
    e5.fingerprint = Some("select email from CUSTOMERS".into());
    e5.tables = vec![table(
        "Customers",
        &[("Email", Masked, Some("email_partial"))],
    )];
    e5.policies = strings(&["marketing-email-masked"]);
    e5.subjects = subjects(&["Customer:AbC"]);
    e5.rows = 250;
    e5.anomaly = Anomaly {
        score: 0.9,
        action: "alert".into(),
        reasons: strings(&["volume"]),
    };

    let mut e6 = base(6, T0 + 9 * DAY);
    e6.principal = Some("admin".into());
    e6.roles = strings(&["admin"]);
    e6.endpoint = "policy_reload".into();
    e6.statement = None;

    let mut e7 = base(7, T0 + 10 * DAY);
    e7.principal = Some("billing".into());
    e7.purpose = Some("billing".into());
    e7.source = "10.0.0.9".into();
    e7.fingerprint = Some(
        "SELECT c.email, o.total FROM customers c JOIN orders o ON o.customer_id = c.id".into(),
    );
    e7.tables = vec![
        table("customers", &[("email", Plain, None)]),
        table("orders", &[("total", Plain, None)]),
    ];
    e7.subjects = subjects(&["customer:7"]);
    e7.subjects.unattributed = true;
    e7.rows = 500;

    vec![e0, e1, e2, e3, e4, e5, e6, e7]
}

fn indexed(dir: &Path) -> AuditIndex {
    let index = AuditIndex::open(dir).unwrap();
    index.add(&events()).unwrap();
    index.commit().unwrap();
    index
}

/// All hits of `query`, newest first.
fn find(index: &AuditIndex, query: &str) -> Vec<u64> {
    let hits = index
        .search(query, TimeRange::all(), Page::first(100))
        .unwrap_or_else(|e| panic!("{query:?}: {e}"));
    assert_eq!(hits.total, hits.seqs.len(), "{query:?}");
    hits.seqs
}

fn bad(index: &AuditIndex, query: &str) -> String {
    match index.search(query, TimeRange::all(), Page::first(10)) {
        Err(e @ IndexError::BadQuery(_)) => e.to_string(),
        other => panic!("{query:?} should be a bad query, got {other:?}"),
    }
}

#[test]
fn query_forms_find_exact_hit_sets() {
    let dir = tempfile::tempdir().unwrap();
    let index = indexed(dir.path());
    let cases: &[(&str, &[u64])] = &[
        (
            "principal:marketing-service AND column:customers.email",
            &[5, 0],
        ),
        ("subject:\"customer:42\"", &[3, 0]),
        ("subject:customer:42", &[3, 0]),
        ("subject:customer:7", &[7, 3]),
        ("outcome:denied", &[2]),
        ("table:customers AND NOT purpose:marketing", &[7, 3]),
        ("error:policy_denied", &[2]),
        ("customers", &[7, 5, 3, 2, 0]),
        ("policy:marketing-email-masked", &[5, 0]),
        ("seq:12", &[]),
        ("seq:3", &[3]),
        ("rows:[100 TO *]", &[7, 5, 1]),
        ("rows:[100 TO 500}", &[5, 1]),
        ("rows:{100 TO 500]", &[7, 5]),
        ("rows:>100", &[7, 5]),
        ("rows:>=100", &[7, 5, 1]),
        ("rows:<2", &[6, 4, 2, 0]),
        ("rows:0", &[6, 4, 2]),
        ("rows:*", &[7, 6, 5, 4, 3, 2, 1, 0]),
        ("access:customers.email:masked", &[5, 0]),
        ("access:\"customers.email:decrypted\"", &[3]),
        ("decision:denied", &[2]),
        ("decision:plain", &[7, 3, 1, 0]),
        ("mask:email_partial", &[5, 0]),
        ("role:analyst", &[1]),
        ("endpoint:policy_reload", &[6]),
        ("statement:select", &[7, 5, 3, 2, 1, 0]),
        ("source:10.0.0.9", &[7]),
        ("request:r-3", &[3]),
        ("anomaly:alert", &[5]),
        ("anomaly:none", &[7, 6, 4, 3, 2, 1, 0]),
        ("table:orders", &[7, 1]),
        ("column:orders.total", &[7]),
        // Boolean combinations.
        ("outcome:denied OR outcome:failed", &[4, 2]),
        (
            "(outcome:denied OR outcome:failed) AND principal:marketing-service",
            &[2],
        ),
        (
            "outcome:denied OR outcome:failed AND principal:marketing-service",
            &[2],
        ),
        ("NOT outcome:allowed", &[4, 2]),
        ("-outcome:allowed", &[4, 2]),
        ("table:customers -purpose:marketing", &[7, 3]),
        ("table:customers purpose:marketing", &[5, 2, 0]),
        ("NOT outcome:allowed AND NOT outcome:denied", &[4]),
        ("NOT NOT outcome:denied", &[2]),
        ("outcome:failed OR NOT principal:*", &[4]),
        ("principal:*", &[7, 6, 5, 3, 2, 1, 0]),
        ("NOT principal:*", &[4]),
        ("policy:marketing-*", &[5, 2, 0]),
        ("subject:customer:*", &[7, 5, 3, 0]),
        ("subject:unattributed", &[7]),
        // Full text over the fingerprint.
        ("email", &[7, 5, 3, 0]),
        ("\"from customers where\"", &[3, 0]),
        ("\"FROM Customers\"", &[7, 5, 3, 2, 0]),
        ("custom*", &[7, 5, 3, 2, 0]),
        ("fingerprint:orders", &[7, 1]),
        ("customer_id", &[7]),
        ("phone customers", &[2]),
        ("count AND orders", &[1]),
        ("fingerprint:*", &[7, 5, 3, 2, 1, 0]),
        // Everything.
        ("", &[7, 6, 5, 4, 3, 2, 1, 0]),
        ("   ", &[7, 6, 5, 4, 3, 2, 1, 0]),
        ("*", &[7, 6, 5, 4, 3, 2, 1, 0]),
    ];
    for (query, expected) in cases {
        assert_eq!(find(&index, query), *expected, "query {query:?}");
    }
}

#[test]
fn identifiers_match_case_insensitively() {
    let dir = tempfile::tempdir().unwrap();
    let index = indexed(dir.path());
    // Event 5 was written with upper-case principal, table and column.
    assert_eq!(find(&index, "principal:Marketing-Service"), [5, 2, 0]);
    assert_eq!(find(&index, "PRINCIPAL:MARKETING-SERVICE"), [5, 2, 0]);
    assert_eq!(find(&index, "outcome:DENIED"), [2]);
    assert_eq!(find(&index, "role:reader"), [1]);
    assert_eq!(find(&index, "role:READER"), [1]);
    assert_eq!(find(&index, "column:Customers.Email"), [7, 5, 3, 0]);
    assert_eq!(find(&index, "Policy:Marketing-*"), [5, 2, 0]);
    // Subject entities are case-insensitive, keys are not.
    assert_eq!(find(&index, "subject:CUSTOMER:42"), [3, 0]);
    assert_eq!(find(&index, "subject:customer:AbC"), [5]);
    assert_eq!(find(&index, "subject:customer:abc"), Vec::<u64>::new());
}

#[test]
fn time_range_is_inclusive_since_exclusive_until() {
    let dir = tempfile::tempdir().unwrap();
    let index = indexed(dir.path());
    let range = TimeRange {
        since_us: Some(T0 + 2 * DAY),
        until_us: Some(T0 + 9 * DAY),
    };
    let hits = index.search("", range, Page::first(100)).unwrap();
    assert_eq!(hits.seqs, [5, 4, 3, 2]);
    let hits = index
        .search("principal:marketing-service", range, Page::first(100))
        .unwrap();
    assert_eq!(hits.seqs, [5, 2]);
    let since_only = TimeRange {
        since_us: Some(T0 + 9 * DAY),
        until_us: None,
    };
    assert_eq!(
        index.search("", since_only, Page::first(100)).unwrap().seqs,
        [7, 6]
    );
    let until_only = TimeRange {
        since_us: None,
        until_us: Some(T0 + HOUR),
    };
    assert_eq!(
        index
            .search("*", until_only, Page::first(100))
            .unwrap()
            .seqs,
        [0]
    );
    let empty = TimeRange {
        since_us: Some(T0 + DAY),
        until_us: Some(T0),
    };
    assert_eq!(
        index.search("", empty, Page::first(100)).unwrap(),
        Hits::default()
    );
    // The query language can say the same.
    let q = format!("time:[{} TO {}}}", T0 + 2 * DAY, T0 + 9 * DAY);
    assert_eq!(find(&index, &q), [5, 4, 3, 2]);
}

#[test]
fn paging_reports_total_and_slices_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let index = indexed(dir.path());
    let page = |offset, limit| {
        index
            .search("", TimeRange::all(), Page { offset, limit })
            .unwrap()
    };
    assert_eq!(
        page(0, 3),
        Hits {
            total: 8,
            seqs: vec![7, 6, 5]
        }
    );
    assert_eq!(
        page(2, 3),
        Hits {
            total: 8,
            seqs: vec![5, 4, 3]
        }
    );
    assert_eq!(
        page(6, 3),
        Hits {
            total: 8,
            seqs: vec![1, 0]
        }
    );
    assert_eq!(
        page(8, 3),
        Hits {
            total: 8,
            seqs: vec![]
        }
    );
    assert_eq!(
        page(0, 0),
        Hits {
            total: 8,
            seqs: vec![]
        }
    );
    assert_eq!(
        page(usize::MAX, usize::MAX),
        Hits {
            total: 8,
            seqs: vec![]
        }
    );
    assert_eq!(page(1, usize::MAX).seqs, [6, 5, 4, 3, 2, 1, 0]);
    let hits = index
        .search(
            "customers",
            TimeRange::all(),
            Page {
                offset: 1,
                limit: 2,
            },
        )
        .unwrap();
    assert_eq!(
        hits,
        Hits {
            total: 5,
            seqs: vec![5, 3]
        }
    );
}

#[test]
fn newest_first_across_segments_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let index = AuditIndex::open(dir.path()).unwrap();
    // Many small commits make many segments; the order must still be by seq.
    let mut all = Vec::new();
    for seq in 0..60u64 {
        let mut e = base(seq, T0 + (seq as i64) * HOUR);
        e.principal = Some(if seq % 3 == 0 { "a" } else { "b" }.into());
        all.push(e);
    }
    for chunk in all.chunks(7) {
        index.add(chunk).unwrap();
        index.commit().unwrap();
    }
    let hits = index
        .search("principal:a", TimeRange::all(), Page::first(5))
        .unwrap();
    assert_eq!(
        hits,
        Hits {
            total: 20,
            seqs: vec![57, 54, 51, 48, 45]
        }
    );
    let hits = index
        .search(
            "",
            TimeRange::all(),
            Page {
                offset: 55,
                limit: 10,
            },
        )
        .unwrap();
    assert_eq!(
        hits,
        Hits {
            total: 60,
            seqs: vec![4, 3, 2, 1, 0]
        }
    );
}

#[test]
fn subject_report_lists_events_that_returned_the_subject() {
    let dir = tempfile::tempdir().unwrap();
    let index = indexed(dir.path());
    let all = TimeRange::all();
    assert_eq!(
        index.subject("customer:42", all, Page::first(10)).unwrap(),
        Hits {
            total: 2,
            seqs: vec![3, 0]
        }
    );
    assert_eq!(
        index
            .subject("Customer:42", all, Page::first(10))
            .unwrap()
            .seqs,
        [3, 0]
    );
    assert_eq!(
        index.subject("customer:7", all, Page::first(1)).unwrap(),
        Hits {
            total: 2,
            seqs: vec![7]
        }
    );
    assert_eq!(
        index
            .subject("customer:AbC", all, Page::first(10))
            .unwrap()
            .seqs,
        [5]
    );
    assert_eq!(
        index.subject("customer:abc", all, Page::first(10)).unwrap(),
        Hits::default()
    );
    assert_eq!(
        index.subject("customer:4", all, Page::first(10)).unwrap(),
        Hits::default()
    );
    // Odd input is just a value that matches nothing.
    assert_eq!(
        index
            .subject("\"weird\" (AND)", all, Page::first(10))
            .unwrap(),
        Hits::default()
    );
    let range = TimeRange {
        since_us: Some(T0 + DAY),
        until_us: None,
    };
    assert_eq!(
        index
            .subject("customer:42", range, Page::first(10))
            .unwrap()
            .seqs,
        [3]
    );
}

#[test]
fn bad_queries_explain_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let index = indexed(dir.path());

    let msg = bad(&index, "principl:marketing-service");
    assert!(msg.contains("unknown field `principl`"), "{msg}");
    for field in [
        "principal",
        "subject",
        "column",
        "access",
        "fingerprint",
        "rows",
    ] {
        assert!(msg.contains(field), "{msg} should list {field}");
    }
    assert!(msg.contains("Query syntax"), "{msg}");

    // A subject written without the field reads as an unknown field.
    let msg = bad(&index, "customer:42");
    assert!(msg.contains("unknown field `customer`"), "{msg}");

    let msg = bad(&index, "(outcome:denied OR outcome:failed");
    assert!(msg.contains("`(` is never closed"), "{msg}");
    let msg = bad(&index, "outcome:denied)");
    assert!(msg.contains("`)`"), "{msg}");
    let msg = bad(&index, "outcome:");
    assert!(msg.contains("`outcome:` needs a value"), "{msg}");
    let msg = bad(&index, "outcome: denied");
    assert!(msg.contains("`outcome:` needs a value"), "{msg}");
    let msg = bad(&index, "rows:many");
    assert!(msg.contains("`many` is not a whole number"), "{msg}");
    let msg = bad(&index, "rows:[1 TO x]");
    assert!(msg.contains("`x` is not a whole number"), "{msg}");
    let msg = bad(&index, "rows:[1 2]");
    assert!(msg.contains("not a range"), "{msg}");
    let msg = bad(&index, "rows:[1 TO 2");
    assert!(msg.contains("never closed"), "{msg}");
    let msg = bad(&index, "table:[a TO b]");
    assert!(
        msg.contains("ranges only work on the numeric fields"),
        "{msg}"
    );
    let msg = bad(&index, "subject:\"customer:42");
    assert!(msg.contains("quote"), "{msg}");
    let msg = bad(&index, "outcome:denied AND");
    assert!(msg.contains("`AND`"), "{msg}");
    let msg = bad(&index, "OR outcome:denied");
    assert!(msg.contains("`OR`"), "{msg}");
    let msg = bad(&index, "NOT");
    assert!(msg.contains("`NOT`"), "{msg}");
    let msg = bad(&index, "()");
    assert!(msg.contains("empty"), "{msg}");
    let msg = bad(&index, "?");
    assert!(msg.contains("no word"), "{msg}");
    let msg = bad(&index, &"(".repeat(200));
    assert!(msg.contains("deep"), "{msg}");
    let msg = bad(&index, &"x ".repeat(10_000));
    assert!(msg.contains("limit"), "{msg}");
}

#[test]
fn arbitrary_input_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let index = indexed(dir.path());
    let pieces = [
        "(",
        ")",
        "\"",
        "\\",
        ":",
        "*",
        "-",
        "[",
        "]",
        "{",
        "}",
        " TO ",
        ">",
        "<=",
        "AND ",
        "OR ",
        "NOT ",
        "rows:",
        "seq:",
        "subject:",
        "x",
        "42",
        " ",
        "é",
        "time:",
        "fingerprint:",
        "?",
        "18446744073709551616",
        "-9223372036854775809",
    ];
    // A fixed linear congruential sequence keeps the test deterministic.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..3_000 {
        let mut q = String::new();
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        let len = (state >> 60) as usize + 1;
        for _ in 0..len {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            q.push_str(pieces[(state >> 33) as usize % pieces.len()]);
        }
        match index.search(&q, TimeRange::all(), Page::first(5)) {
            Ok(_) | Err(IndexError::BadQuery(_)) => {}
            Err(e) => panic!("{q:?}: unexpected error {e}"),
        }
    }
}

#[test]
fn next_seq_is_persisted_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let index = AuditIndex::open(dir.path()).unwrap();
        assert_eq!(index.next_seq(), 0);
        index.add(&events()[..5]).unwrap();
        // Buffered is not committed.
        assert_eq!(index.next_seq(), 0);
        index.commit().unwrap();
        assert_eq!(index.next_seq(), 5);
        // Buffered but never committed: lost on "crash", re-fed later.
        index.add(&events()[5..7]).unwrap();
    }
    let index = AuditIndex::open(dir.path()).unwrap();
    assert_eq!(index.next_seq(), 5);
    assert_eq!(find(&index, ""), [4, 3, 2, 1, 0]);
    // Catch-up from next_seq.
    let next = index.next_seq() as usize;
    index.add(&events()[next..]).unwrap();
    index.commit().unwrap();
    assert_eq!(index.next_seq(), 8);
    drop(index);
    let index = AuditIndex::open(dir.path()).unwrap();
    assert_eq!(index.next_seq(), 8);
    assert_eq!(find(&index, ""), [7, 6, 5, 4, 3, 2, 1, 0]);
}

#[test]
fn add_skips_indexed_events_and_rejects_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let index = indexed(dir.path());
    assert_eq!(index.next_seq(), 8);
    // Re-feeding an overlap indexes only the new events.
    let more: Vec<Event> = (3..10).map(|s| base(s, T0 + 20 * DAY)).collect();
    index.add(&more).unwrap();
    index.add(&more).unwrap();
    index.commit().unwrap();
    assert_eq!(index.next_seq(), 10);
    assert_eq!(find(&index, "").len(), 10);
    assert_eq!(find(&index, "seq:3"), [3]);
    assert_eq!(find(&index, "seq:9"), [9]);

    // A gap is refused and buffers nothing of the batch.
    let gap = [base(10, T0), base(12, T0)];
    match index.add(&gap) {
        Err(IndexError::Gap {
            expected: 11,
            got: 12,
        }) => {}
        other => panic!("expected a gap error, got {other:?}"),
    }
    match index.add(&[base(11, T0)]) {
        Err(IndexError::Gap {
            expected: 10,
            got: 11,
        }) => {}
        other => panic!("expected a gap error, got {other:?}"),
    }
    index.add(&[base(10, T0), base(11, T0)]).unwrap();
    index.commit().unwrap();
    assert_eq!(index.next_seq(), 12);
    // Committing with nothing buffered is harmless.
    index.commit().unwrap();
    assert_eq!(index.next_seq(), 12);
    assert_eq!(find(&index, "").len(), 12);
}

#[test]
fn recreate_empties_the_index_and_spares_other_files() {
    let dir = tempfile::tempdir().unwrap();
    drop(indexed(dir.path()));
    let other = dir.path().join("notes.txt");
    std::fs::write(&other, "not the index").unwrap();
    let index = AuditIndex::recreate(dir.path()).unwrap();
    assert_eq!(index.next_seq(), 0);
    assert_eq!(find(&index, ""), Vec::<u64>::new());
    assert!(other.exists());
    index.add(&events()).unwrap();
    index.commit().unwrap();
    assert_eq!(find(&index, "outcome:denied"), [2]);
    drop(index);
    // Recreating a directory that does not exist yet just creates it.
    let fresh = dir.path().join("sub").join("index");
    assert_eq!(AuditIndex::recreate(&fresh).unwrap().next_seq(), 0);
}

#[test]
fn corrupt_or_incompatible_index_asks_for_a_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    drop(indexed(dir.path()));
    let meta = dir.path().join("meta.json");
    let original = std::fs::read_to_string(&meta).unwrap();

    // Another format version in the commit payload.
    let other = original.replace("\\\"format\\\":1", "\\\"format\\\":999");
    assert_ne!(other, original, "payload not found in {original}");
    std::fs::write(&meta, &other).unwrap();
    let err = AuditIndex::open(dir.path()).unwrap_err();
    assert!(matches!(err, IndexError::Incompatible { .. }), "{err:?}");
    assert!(err.needs_rebuild());
    assert!(err.to_string().contains("reindex"), "{err}");

    // Garbage metadata.
    std::fs::write(&meta, "{ not json").unwrap();
    let err = AuditIndex::open(dir.path()).unwrap_err();
    assert!(err.needs_rebuild(), "{err:?}");

    // A missing segment file.
    std::fs::write(&meta, &original).unwrap();
    let segment = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .unwrap();
    std::fs::remove_file(segment).unwrap();
    let err = AuditIndex::open(dir.path()).unwrap_err();
    assert!(err.needs_rebuild(), "{err:?}");

    // The cure.
    let index = AuditIndex::recreate(dir.path()).unwrap();
    index.add(&events()).unwrap();
    index.commit().unwrap();
    assert_eq!(find(&index, "outcome:denied"), [2]);
}

#[test]
fn second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = AuditIndex::open(dir.path()).unwrap();
    let err = AuditIndex::open(dir.path()).unwrap_err();
    assert!(matches!(err, IndexError::Locked(_)), "{err:?}");
    assert!(!err.needs_rebuild());
}

#[test]
fn searches_run_while_another_thread_indexes() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<AuditIndex>();

    let dir = tempfile::tempdir().unwrap();
    let index = AuditIndex::open(dir.path()).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            for seq in 0..200u64 {
                index.add(&[base(seq, T0 + seq as i64)]).unwrap();
                if seq % 20 == 19 {
                    index.commit().unwrap();
                }
            }
        });
        s.spawn(|| {
            let mut last = 0;
            for _ in 0..50 {
                let hits = index.search("", TimeRange::all(), Page::first(1)).unwrap();
                assert!(hits.total >= last, "committed events never disappear");
                last = hits.total;
                if let Some(&newest) = hits.seqs.first() {
                    assert_eq!(newest as usize, hits.total - 1);
                }
            }
        });
    });
    assert_eq!(index.next_seq(), 200);
}
