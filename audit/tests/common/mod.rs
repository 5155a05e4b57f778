//! Shared by the integration tests and benches: realistic events and a
//! reader of the documented on-disk record format (see `audit::format`).
#![allow(dead_code)]

use std::ops::Range;
use std::path::{Path, PathBuf};

use audit::{Anomaly, ColumnAccess, Decision, Event, LogOptions, Outcome, Subjects, TableAccess};

/// A realistic event, about 600 bytes of JSON: a masked read of customers
/// joined with orders.
pub fn event(n: u64) -> Event {
    Event {
        seq: 424_242, // overwritten by the log
        time_us: 1_764_000_000_000_000 + n as i64 * 1_000,
        request_id: format!("req-{n:012x}"),
        principal: Some("marketing-service".into()),
        roles: vec!["service".into(), "marketing".into()],
        source: format!("10.0.{}.{}", (n / 250) % 250, n % 250),
        purpose: Some("marketing".into()),
        endpoint: "query".into(),
        statement: Some("select".into()),
        fingerprint: Some(
            "SELECT c.email, o.total FROM customers c JOIN orders o \
             ON o.customer_id = c.id WHERE c.id = ?"
                .into(),
        ),
        tables: vec![TableAccess {
            table: "customers".into(),
            columns: vec![ColumnAccess {
                column: "email".into(),
                decision: Decision::Masked,
                mask: Some("email_partial".into()),
            }],
            row_filter: true,
        }],
        policies: vec!["marketing-email-masked".into()],
        rows: n % 17,
        subjects: Subjects {
            ids: vec![
                format!("customer:{}", n % 10_000),
                format!("customer:{}", (n * 7) % 10_000),
            ],
            truncated: false,
            unattributed: false,
        },
        anomaly: Anomaly::default(),
        latency_us: 180 + n % 300,
        outcome: if n.is_multiple_of(11) {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
        error_code: n.is_multiple_of(11).then(|| "policy_denied".to_string()),
    }
}

/// Options without the periodic checkpoint, so tests decide when
/// checkpoints are written.
pub fn options() -> LogOptions {
    LogOptions {
        checkpoint_interval: None,
        ..LogOptions::default()
    }
}

/// The first segment file of a log.
pub fn first_segment(dir: &Path) -> PathBuf {
    dir.join(audit::format::segment_file_name(0))
}

/// Byte ranges of the records in a segment, read from the documented
/// format: a 20-byte header whose bytes 4..8 are the entry length (u32 LE),
/// the entry, then the 32-byte leaf hash. Stops at zero bytes (a running
/// writer's preallocated space).
pub fn records(segment: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 20 <= segment.len() {
        if segment[off..off + 4] == [0; 4] {
            break;
        }
        assert_eq!(
            &segment[off..off + 4],
            &[0xF7, b'P', b'A', b'R'],
            "record marker"
        );
        let len = u32::from_le_bytes(segment[off + 4..off + 8].try_into().unwrap()) as usize;
        let end = off + 20 + len + 32;
        if end > segment.len() {
            break;
        }
        out.push(off..end);
        off = end;
    }
    out
}

/// Where entry `i` (its JSON) is in the segment.
pub fn entry_range(segment: &[u8], i: usize) -> Range<usize> {
    let r = records(segment)[i].clone();
    r.start + 20..r.end - 32
}
