//! Precision and recall of the anonymizer's PII scrubber on the demo data
//! set's support tickets and reviews, whose generator records where it put
//! the PII (`DemoDataset::ticket_body_with_pii`).
//!
//! Span-level metrics: a ground-truth span is found when a finding of the
//! same kind covers it; a finding is a true positive when it overlaps a
//! ground-truth span of the same kind. Run with `--nocapture` for the table.

use std::collections::BTreeMap;
use std::ops::Range;

use anonymizer::scrub::{Finding, PiiKind, Scrubber};
use gateway::seed::{DemoDataset, DemoTable, Value};

/// Which scrubber kind a generator field is (see `PII_FIELDS` in
/// `seed/texts.rs`).
fn kind_of(field: &str) -> PiiKind {
    match field {
        "email" | "alt_email" => PiiKind::Email,
        "phone" => PiiKind::Phone,
        "card" => PiiKind::Card,
        "name" | "first" => PiiKind::Name,
        other => panic!("unexpected PII field {other}"),
    }
}

#[derive(Default, Debug, Clone, Copy)]
struct Counts {
    truth: usize,
    found: usize,
    findings: usize,
    true_positive: usize,
}

impl Counts {
    fn add(&mut self, o: Counts) {
        self.truth += o.truth;
        self.found += o.found;
        self.findings += o.findings;
        self.true_positive += o.true_positive;
    }
    fn recall(&self) -> f64 {
        ratio(self.found, self.truth)
    }
    fn precision(&self) -> f64 {
        ratio(self.true_positive, self.findings)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 {
        1.0
    } else {
        a as f64 / b as f64
    }
}

struct Doc {
    table: &'static str,
    id: u64,
    body: String,
    truth: Vec<(&'static str, Range<usize>)>,
    names: (String, String),
}

fn int(v: &Value) -> u64 {
    match v {
        Value::Integer(i) => u64::try_from(*i).unwrap(),
        other => panic!("not an integer: {other:?}"),
    }
}

fn text(v: &Value) -> &str {
    match v {
        Value::Text(s) => s,
        other => panic!("not text: {other:?}"),
    }
}

/// Every ticket and review body with its ground truth, checked against the
/// rows the generator emits (recording must not change the text).
fn documents(ds: &DemoDataset) -> Vec<Doc> {
    let mut docs = Vec::new();
    for (table, body_col) in [(DemoTable::SupportTickets, 4), (DemoTable::Reviews, 4)] {
        ds.for_each_row(table, |row| {
            let id = int(&row[0]);
            let customer = int(&row[1]);
            let (body, truth) = match table {
                DemoTable::SupportTickets => ds.ticket_body_with_pii(id),
                _ => ds.review_body_with_pii(id),
            };
            assert_eq!(body, text(&row[body_col]), "{} {id}", table.name());
            for (field, r) in &truth {
                assert!(
                    body.get(r.clone()).is_some_and(|s| !s.is_empty()),
                    "{field} {r:?}"
                );
            }
            docs.push(Doc {
                table: table.name(),
                id,
                body,
                truth,
                names: ds.customer_names(customer),
            });
            Ok::<_, std::convert::Infallible>(())
        })
        .unwrap();
    }
    docs
}

#[test]
fn scrubber_precision_and_recall_on_seeded_tickets() {
    let ds = DemoDataset::new(0.2, 42).unwrap();
    let docs = documents(&ds);
    let scrubber = Scrubber::new();
    let mut per_kind: BTreeMap<PiiKind, Counts> = BTreeMap::new();
    let mut misses = Vec::new();
    let mut false_positives = Vec::new();
    let mut survivors = Vec::new();

    for doc in &docs {
        let names = [doc.names.0.as_str(), doc.names.1.as_str()];
        let findings: Vec<Finding> = scrubber.find(&doc.body, &names);
        for (field, r) in &doc.truth {
            let kind = kind_of(field);
            let c = per_kind.entry(kind).or_default();
            c.truth += 1;
            let covered = findings
                .iter()
                .any(|f| f.kind == kind && f.range.start <= r.start && r.end <= f.range.end);
            if covered {
                c.found += 1;
            } else {
                misses.push(format!(
                    "{} {}: {field} {:?}",
                    doc.table,
                    doc.id,
                    &doc.body[r.clone()]
                ));
            }
        }
        for f in &findings {
            let c = per_kind.entry(f.kind).or_default();
            c.findings += 1;
            let tp = doc.truth.iter().any(|(field, r)| {
                kind_of(field) == f.kind && f.range.start < r.end && r.start < f.range.end
            });
            if tp {
                c.true_positive += 1;
            } else {
                false_positives.push(format!(
                    "{} {}: {} {:?}",
                    doc.table,
                    doc.id,
                    f.kind,
                    &doc.body[f.range.clone()]
                ));
            }
        }
        // No e-mail, card or phone number from the ground truth survives.
        let scrubbed = scrubber.scrub(&doc.body, &names);
        for (field, r) in &doc.truth {
            let value = &doc.body[r.clone()];
            if matches!(
                kind_of(field),
                PiiKind::Email | PiiKind::Card | PiiKind::Phone
            ) && scrubbed.contains(value)
            {
                survivors.push(format!("{} {}: {field} {value:?}", doc.table, doc.id));
            }
        }
    }

    let mut total = Counts::default();
    println!(
        "PII scrubber on {} tickets+reviews (scale 0.2, seed 42)",
        docs.len()
    );
    println!(
        "{:<6} {:>6} {:>6} {:>9} {:>6} {:>8} {:>9}",
        "kind", "truth", "found", "findings", "tp", "recall", "precision"
    );
    for (kind, c) in &per_kind {
        total.add(*c);
        println!(
            "{:<6} {:>6} {:>6} {:>9} {:>6} {:>8.4} {:>9.4}",
            kind.to_string(),
            c.truth,
            c.found,
            c.findings,
            c.true_positive,
            c.recall(),
            c.precision()
        );
    }
    println!(
        "{:<6} {:>6} {:>6} {:>9} {:>6} {:>8.4} {:>9.4}",
        "all",
        total.truth,
        total.found,
        total.findings,
        total.true_positive,
        total.recall(),
        total.precision()
    );
    for m in misses.iter().take(20) {
        println!("miss  {m}");
    }
    for f in false_positives.iter().take(20) {
        println!("fp    {f}");
    }

    assert!(
        total.truth > 500,
        "too little ground truth: {}",
        total.truth
    );
    assert!(
        survivors.is_empty(),
        "PII survived scrubbing: {survivors:#?}"
    );
    assert!(total.recall() >= 0.99, "recall {:.4}", total.recall());
    assert!(
        total.precision() >= 0.95,
        "precision {:.4}",
        total.precision()
    );
}
