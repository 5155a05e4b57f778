//! Requests and warmed-up detectors for the tests.

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr};

use anomaly::{
    Assessment, Classification, Detector, DetectorConfig, RequestFeatures, SensitiveColumn,
    Subjects,
};

/// Monday 2026-01-05 00:00 UTC.
pub const T0: u64 = 1_767_571_200_000;
pub const SEC: u64 = 1_000;
pub const MIN: u64 = 60 * SEC;
pub const HOUR: u64 = 60 * MIN;
pub const DAY: u64 = 24 * HOUR;

pub fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(10, 0, 0, last))
}

/// A request builder; defaults to one row of `customers` with an email, from
/// 10.0.0.1.
#[derive(Clone)]
pub struct Req(pub RequestFeatures);

pub fn req(principal: &str, at: u64) -> Req {
    Req(RequestFeatures {
        principal: principal.into(),
        at_unix_ms: at,
        source: ip(1),
        tables: vec!["customers".into()],
        sensitive_columns: vec![
            SensitiveColumn::new("customers.id", Classification::Identifier),
            SensitiveColumn::new("customers.email", Classification::Email),
        ],
        rows_returned: 1,
        subjects: Subjects::One(7),
        fingerprint: 1,
    })
}

impl Req {
    pub fn from(mut self, source: IpAddr) -> Req {
        self.0.source = source;
        self
    }
    pub fn tables(mut self, tables: &[&str]) -> Req {
        self.0.tables = tables.iter().map(|t| (*t).to_owned()).collect();
        self
    }
    pub fn columns(mut self, columns: &[(&str, Classification)]) -> Req {
        self.0.sensitive_columns = columns
            .iter()
            .map(|(c, class)| SensitiveColumn::new(*c, *class))
            .collect();
        self
    }
    pub fn rows(mut self, rows: u64, subjects: Subjects) -> Req {
        self.0.rows_returned = rows;
        self.0.subjects = subjects;
        self
    }
    pub fn shape(mut self, fingerprint: u64) -> Req {
        self.0.fingerprint = fingerprint;
        self
    }
    pub fn score(&self, d: &mut Detector) -> Assessment {
        d.score(&self.0)
    }
}

/// Runs `make(i, at)` every `every` ms over `[from, to)`, on weekdays
/// between `hours.0` and `hours.1` UTC when `hours` is given. Returns the
/// highest score seen.
pub fn run(
    d: &mut Detector,
    from: u64,
    to: u64,
    every: u64,
    hours: Option<(u64, u64)>,
    mut make: impl FnMut(u64, u64) -> Req,
) -> f64 {
    let mut max: f64 = 0.0;
    let mut at = from;
    let mut i = 0;
    while at < to {
        let hour = (at % DAY) / HOUR;
        let weekday = ((at - T0) / DAY) % 7 < 5;
        if hours.is_none_or(|(a, b)| weekday && (a..b).contains(&hour)) {
            max = max.max(make(i, at).score(d).score());
            i += 1;
        }
        at += every;
    }
    max
}

pub fn detector() -> Detector {
    Detector::new(DetectorConfig::default())
}

/// The kinds of an assessment's reasons, for messages.
pub fn kinds(a: &Assessment) -> Vec<&'static str> {
    a.reasons().iter().map(|r| r.kind.as_str()).collect()
}

pub fn has(a: &Assessment, kind: anomaly::AnomalyKind) -> bool {
    a.reasons().iter().any(|r| r.kind == kind)
}
