//! Injected attacks: what each kind sends, at which intensities, against
//! which principals, and when.
//!
//! Attacks deviate from the target's normal traffic only in the dimension
//! they are about: they come from the target's usual addresses (an insider
//! or a compromised host, the harder case) except for `many_addresses`,
//! and replay the target's own query shapes where it has suitable ones.

use std::net::IpAddr;

use crate::assessment::AnomalyKind;
use crate::features::{Classification as C, RequestFeatures, SensitiveColumn, Subjects};
use crate::rng::{mix, Rng};

use super::workload::{
    fingerprint, fresh_public_address, is_weekday, random_customer, request, subject, Principal,
    Shape, ALL_TABLES, DAY, HOUR, MIN, SEC, START_MS, SUPPORT,
};
use super::Params;

/// The kinds of attack injected, in report order.
pub const ATTACK_KINDS: [AnomalyKind; 7] = [
    AnomalyKind::BulkExtraction,
    AnomalyKind::Enumeration,
    AnomalyKind::NewSensitiveColumn,
    AnomalyKind::NewTable,
    AnomalyKind::OffHours,
    AnomalyKind::ManyAddresses,
    AnomalyKind::RateSpike,
];

/// The three intensities of a kind, and what they count.
pub(crate) fn intensities(kind: AnomalyKind) -> ([u64; 3], &'static str) {
    match kind {
        AnomalyKind::BulkExtraction => ([500, 5_000, 50_000], "rows of emails"),
        AnomalyKind::Enumeration => ([20, 100, 1_000], "single-customer lookups"),
        AnomalyKind::NewSensitiveColumn => ([1, 20, 500], "rows of card numbers"),
        AnomalyKind::NewTable => ([1, 20, 500], "rows of a new table"),
        AnomalyKind::OffHours => ([1, 5, 25], "requests at night"),
        AnomalyKind::ManyAddresses => ([5, 20, 100], "new addresses in <30 min"),
        _ => ([5, 20, 100], "x the usual rate"),
    }
}

/// One attack: `intensity` indexes [`intensities`].
#[derive(Debug, Clone)]
pub(crate) struct Episode {
    pub(crate) kind: AnomalyKind,
    pub(crate) intensity: usize,
    pub(crate) target: Principal,
    pub(crate) start: u64,
    /// No attack request at or after this.
    pub(crate) end: u64,
    seed: u64,
}

impl Episode {
    pub(crate) fn value(&self) -> u64 {
        intensities(self.kind).0[self.intensity]
    }
}

/// Whether the attack is a deviation for `p` at all. The only exclusion:
/// marketing-service normally lists up to 500 customers with their (masked)
/// emails, so a 500-row read of emails is its job, not an extraction.
fn eligible(kind: AnomalyKind, value: u64, p: Principal) -> bool {
    match kind {
        AnomalyKind::BulkExtraction => p.email_shape().is_none_or(|(_, max)| value > max),
        AnomalyKind::OffHours => !p.is_service(),
        _ => true,
    }
}

/// How long the attack lasts at most.
fn duration(kind: AnomalyKind, value: u64, p: Principal, params: &Params, rng: &mut Rng) -> u64 {
    match kind {
        AnomalyKind::Enumeration => value * 3 * SEC + SEC,
        AnomalyKind::OffHours => value * 60 * SEC + SEC,
        AnomalyKind::ManyAddresses => 10 * MIN + rng.below(20 * MIN),
        AnomalyKind::RateSpike => rate_spike_duration(p, params),
        _ => SEC,
    }
}

/// Long enough for ten of the principal's usual requests, 20 minutes to 8
/// hours: a spike of a principal that sends a few requests a day is a busy
/// day, not a busy minute.
fn rate_spike_duration(p: Principal, params: &Params) -> u64 {
    let hours = 10.0 / p.typical_per_hour(params.rate_scale);
    ((hours * HOUR as f64) as u64).clamp(20 * MIN, 8 * HOUR)
}

/// Every (kind, intensity, eligible target) `params.repetitions` times, at
/// random times of the test days: in working hours on weekdays for people
/// (off-hours attacks between 22:00 and 05:00), any time for services.
pub(crate) fn plan(seed: u64, params: &Params) -> Vec<Episode> {
    let mut rng = Rng::new(mix(seed ^ 0xa77a_c4ed));
    let mut episodes = Vec::new();
    for kind in ATTACK_KINDS {
        for (intensity, &value) in intensities(kind).0.iter().enumerate() {
            for p in Principal::ALL {
                if !eligible(kind, value, p) {
                    continue;
                }
                for _ in 0..params.repetitions {
                    let length = duration(kind, value, p, params, &mut rng);
                    let start = start_time(kind, p, length, params, &mut rng);
                    episodes.push(Episode {
                        kind,
                        intensity,
                        target: p,
                        start,
                        end: start + length,
                        seed: rng.next_u64(),
                    });
                }
            }
        }
    }
    episodes.sort_by_key(|e| e.start);
    episodes
}

fn start_time(kind: AnomalyKind, p: Principal, length: u64, params: &Params, rng: &mut Rng) -> u64 {
    let first = u64::from(params.training_days);
    let days: Vec<u64> = (first..first + u64::from(params.test_days)).collect();
    let pick_day = |rng: &mut Rng, weekdays: bool| {
        let candidates: Vec<u64> = days
            .iter()
            .copied()
            .filter(|d| !weekdays || is_weekday(*d))
            .collect();
        let pool = if candidates.is_empty() {
            &days
        } else {
            &candidates
        };
        rng.pick(pool).copied().unwrap_or(first)
    };
    if kind == AnomalyKind::OffHours {
        let day = pick_day(rng, false);
        return START_MS + day * DAY + 22 * HOUR + rng.below(7 * HOUR);
    }
    match p.work_hours() {
        Some((from, to)) => {
            let day = pick_day(rng, true);
            let window = ((to - from) * HOUR).saturating_sub(length);
            START_MS + day * DAY + from * HOUR + rng.below(window.max(1))
        }
        None => {
            let day = pick_day(rng, false);
            let last_day = first + u64::from(params.test_days) - 1;
            let span = if day == last_day {
                DAY.saturating_sub(length)
            } else {
                DAY
            };
            START_MS + day * DAY + rng.below(span.max(1))
        }
    }
}

/// The attack's requests, sorted by time.
pub(crate) fn requests(e: &Episode, params: &Params) -> Vec<RequestFeatures> {
    let mut rng = Rng::new(e.seed);
    let p = e.target;
    let home = p.addresses();
    let usual = |rng: &mut Rng| {
        rng.pick(&home)
            .copied()
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))
    };
    let value = e.value();
    let mut out = Vec::new();
    match e.kind {
        AnomalyKind::BulkExtraction => {
            let source = usual(&mut rng);
            let (shape, fp) = match p.email_shape() {
                Some((shape, _)) => (shape, fingerprint(shape.name, 0)),
                None => (&ATTACKER_EMAILS, fingerprint(ATTACKER_EMAILS.name, 0)),
            };
            let mut r = request(p, shape, fp, e.start, source, None, false, &mut rng);
            r.rows_returned = value;
            r.subjects = Subjects::Many(value);
            out.push(r);
        }
        AnomalyKind::Enumeration => {
            let shape = if p == Principal::Support {
                &SUPPORT[0]
            } else {
                &ATTACKER_LOOKUP
            };
            let fp = fingerprint(shape.name, 0);
            let source = usual(&mut rng);
            let mut at = e.start;
            let mut seen = std::collections::HashSet::new();
            while out.len() < value as usize {
                let customer = random_customer(&mut rng, p == Principal::Support);
                if !seen.insert(customer) {
                    continue;
                }
                out.push(request(
                    p,
                    shape,
                    fp,
                    at,
                    source,
                    Some(customer),
                    false,
                    &mut rng,
                ));
                at += SEC / 2 + rng.below(5 * SEC / 2);
            }
        }
        AnomalyKind::NewSensitiveColumn => {
            let source = usual(&mut rng);
            let customer = random_customer(&mut rng, false);
            out.push(RequestFeatures {
                principal: p.name().to_owned(),
                at_unix_ms: e.start,
                source,
                tables: vec!["payments".into()],
                sensitive_columns: vec![
                    SensitiveColumn::new("payments.card_number", C::Card),
                    SensitiveColumn::new("payments.card_last4", C::Card),
                ],
                rows_returned: value,
                subjects: Subjects::from_count(value, subject(customer)),
                fingerprint: fingerprint("attacker.cards", 0),
            });
        }
        AnomalyKind::NewTable => {
            let known = p.tables();
            let unknown: Vec<&str> = ALL_TABLES
                .iter()
                .copied()
                .filter(|t| !known.contains(t))
                .collect();
            let table = rng.pick(&unknown).copied().unwrap_or("reviews");
            // Unclassified columns only: a new table, not a new column.
            out.push(RequestFeatures {
                principal: p.name().to_owned(),
                at_unix_ms: e.start,
                source: usual(&mut rng),
                tables: vec![table.to_owned()],
                sensitive_columns: Vec::new(),
                rows_returned: value,
                subjects: Subjects::None,
                fingerprint: fingerprint(table, 7),
            });
        }
        AnomalyKind::OffHours => {
            let source = usual(&mut rng);
            let mut at = e.start;
            for _ in 0..value {
                out.push(normal_like(p, at, source, &mut rng));
                at += 10 * SEC + rng.below(50 * SEC);
            }
        }
        AnomalyKind::ManyAddresses => {
            let length = e.end - e.start;
            for _ in 0..value {
                let source = fresh_public_address(&mut rng);
                for _ in 0..rng.between(1, 2) {
                    let at = e.start + rng.below(length);
                    out.push(normal_like(p, at, source, &mut rng));
                }
            }
        }
        _ => {
            // Rate spike: (k - 1) times the usual rate on top of the
            // normal traffic, normal requests from the usual addresses.
            let extra_per_hour = (value - 1) as f64 * p.typical_per_hour(params.rate_scale);
            let mean_gap = HOUR as f64 / extra_per_hour;
            let mut t = e.start as f64;
            loop {
                t += rng.exponential(mean_gap);
                let at = t as u64;
                if at >= e.end || out.len() >= params.spike_cap {
                    break;
                }
                let source = usual(&mut rng);
                out.push(normal_like(p, at, source, &mut rng));
            }
        }
    }
    out.sort_by_key(|r| r.at_unix_ms);
    out
}

/// A request of one of the target's own shapes (first version).
fn normal_like(p: Principal, at: u64, source: IpAddr, rng: &mut Rng) -> RequestFeatures {
    let shapes = p.shapes();
    let weights: Vec<f64> = shapes.iter().map(|s| s.weight).collect();
    let shape = &shapes[rng.weighted(&weights)];
    request(
        p,
        shape,
        fingerprint(shape.name, 0),
        at,
        source,
        None,
        false,
        rng,
    )
}

/// The attacker's own statements, for targets without a suitable shape.
const ATTACKER_EMAILS: Shape = Shape {
    name: "attacker.customer_emails",
    weight: 1.0,
    tables: &["customers"],
    columns: &[
        ("customers.id", C::Identifier),
        ("customers.email", C::Email),
    ],
    rows: super::workload::Rows::Fixed(1),
    subjects: super::workload::Subj::AsRows,
};

const ATTACKER_LOOKUP: Shape = Shape {
    name: "attacker.customer_by_id",
    weight: 1.0,
    tables: &["customers"],
    columns: &[
        ("customers.id", C::Identifier),
        ("customers.email", C::Email),
        ("customers.full_name", C::Name),
        ("customers.phone", C::Phone),
    ],
    rows: super::workload::Rows::Fixed(1),
    subjects: super::workload::Subj::One,
};
