//! Normal traffic of the demo principals (gateway/src/demo.rs), one day at
//! a time. Every principal has its own random stream, so its traffic does
//! not depend on the others'.
//!
//! Noise on purpose: a day-to-day volume factor of 0.8-1.2; one result in
//! 200 up to 3x larger than the shape's usual range; services deploy a new
//! version of one query shape on a quarter of the days (a new fingerprint)
//! and have a retry storm (2-3x their rate for 2-10 minutes) on three days
//! in ten; people occasionally write a one-off query (0.5% of the support
//! agent's requests, 2-5% for the others); admin counts a table it rarely
//! touches (4% of its requests); the support agent starts at 07:30 on one
//! day in ten and works late (until 18:30-20:00) on one day in five;
//! services move one of their addresses on one day in ten; people work from
//! an unusual address for 1-3 hours on one day in ten.

use std::net::{IpAddr, Ipv4Addr};

use crate::features::{Classification as C, RequestFeatures, SensitiveColumn, Subjects};
use crate::rng::{mix, Rng};

/// Monday 2026-01-05 00:00 UTC.
pub(crate) const START_MS: u64 = 1_767_571_200_000;
pub(crate) const SEC: u64 = 1_000;
pub(crate) const MIN: u64 = 60 * SEC;
pub(crate) const HOUR: u64 = 60 * MIN;
pub(crate) const DAY: u64 = 24 * HOUR;

/// Customers in the demo store; the EU region holds every fourth.
const CUSTOMERS: u64 = 200_000;
const SUBJECT_KEY: u64 = 0x5eed_c0ff_ee00_0001;

/// The keyed hash the gateway would report for a customer id.
pub(crate) fn subject(customer: u64) -> u64 {
    mix(customer ^ SUBJECT_KEY)
}

pub(crate) fn random_customer(rng: &mut Rng, eu_only: bool) -> u64 {
    if eu_only {
        4 * rng.below(CUSTOMERS / 4)
    } else {
        rng.below(CUSTOMERS)
    }
}

pub(crate) fn is_weekday(day: u64) -> bool {
    // Day 0 is a Monday.
    day % 7 < 5
}

/// The demo principals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Principal {
    Recs,
    Marketing,
    Support,
    Orders,
    Compliance,
    Ml,
    Admin,
}

/// Result size of a shape.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Rows {
    Fixed(u64),
    Uniform(u64, u64),
    LogUniform(u64, u64),
}

/// Distinct subjects of a shape's result.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Subj {
    None,
    /// One customer (the case's, for the support agent).
    One,
    /// One customer per row.
    AsRows,
    /// This fraction of the rows.
    Fraction(f64, f64),
    /// One customer if any row.
    OneIfAny,
}

/// A query the principal sends, literals aside.
#[derive(Debug)]
pub(crate) struct Shape {
    pub(crate) name: &'static str,
    pub(crate) weight: f64,
    pub(crate) tables: &'static [&'static str],
    pub(crate) columns: &'static [(&'static str, C)],
    pub(crate) rows: Rows,
    pub(crate) subjects: Subj,
}

const fn shape(
    name: &'static str,
    weight: f64,
    tables: &'static [&'static str],
    columns: &'static [(&'static str, C)],
    rows: Rows,
    subjects: Subj,
) -> Shape {
    Shape {
        name,
        weight,
        tables,
        columns,
        rows,
        subjects,
    }
}

const CUSTOMER_CONTACT: &[(&str, C)] = &[
    ("customers.id", C::Identifier),
    ("customers.email", C::Email),
    ("customers.full_name", C::Name),
    ("customers.phone", C::Phone),
];

const RECS: &[Shape] = &[
    shape(
        "recs.events_scan",
        0.6,
        &["events"],
        &[("events.customer_id", C::Identifier)],
        Rows::LogUniform(100, 1000),
        Subj::Fraction(0.1, 0.5),
    ),
    shape(
        "recs.events_products",
        0.25,
        &["events", "products"],
        &[("events.customer_id", C::Identifier)],
        Rows::LogUniform(100, 1000),
        Subj::Fraction(0.1, 0.5),
    ),
    shape(
        "recs.copurchase",
        0.15,
        &["orders", "order_items"],
        &[("orders.customer_id", C::Identifier)],
        Rows::LogUniform(100, 1000),
        Subj::Fraction(0.3, 0.9),
    ),
];

const MARKETING: &[Shape] = &[
    shape(
        "mkt.optin_list",
        0.6,
        &["customers"],
        &[
            ("customers.id", C::Identifier),
            ("customers.email", C::Email),
        ],
        Rows::LogUniform(10, 500),
        Subj::AsRows,
    ),
    shape(
        "mkt.segment",
        0.2,
        &["customers"],
        &[
            ("customers.id", C::Identifier),
            ("customers.birth_date", C::Dob),
            ("customers.zip", C::Address),
        ],
        Rows::LogUniform(10, 500),
        Subj::AsRows,
    ),
    shape(
        "mkt.rfm",
        0.15,
        &["customers", "orders"],
        &[
            ("customers.id", C::Identifier),
            ("orders.customer_id", C::Identifier),
        ],
        Rows::LogUniform(10, 500),
        Subj::Fraction(0.3, 1.0),
    ),
    shape(
        "mkt.products",
        0.05,
        &["products"],
        &[],
        Rows::LogUniform(10, 200),
        Subj::None,
    ),
];

/// The support agent's steps; weights are for attacks replaying them (the
/// normal traffic follows cases, see `support_day`).
pub(crate) const SUPPORT: &[Shape] = &[
    shape(
        "sup.customer_by_id",
        0.4,
        &["customers"],
        CUSTOMER_CONTACT,
        Rows::Fixed(1),
        Subj::One,
    ),
    shape(
        "sup.customer_search",
        0.05,
        &["customers"],
        CUSTOMER_CONTACT,
        Rows::Uniform(0, 3),
        Subj::AsRows,
    ),
    shape(
        "sup.tickets",
        0.3,
        &["support_tickets"],
        &[
            ("support_tickets.customer_id", C::Identifier),
            ("support_tickets.subject", C::FreeText),
            ("support_tickets.body", C::FreeText),
        ],
        Rows::Uniform(1, 12),
        Subj::One,
    ),
    shape(
        "sup.orders",
        0.25,
        &["orders"],
        &[
            ("orders.customer_id", C::Identifier),
            ("orders.shipping_address", C::Address),
        ],
        Rows::Uniform(0, 15),
        Subj::OneIfAny,
    ),
];

const ORDERS: &[Shape] = &[
    shape(
        "ord.by_id",
        0.45,
        &["orders"],
        &[
            ("orders.customer_id", C::Identifier),
            ("orders.shipping_address", C::Address),
            ("orders.shipping_zip", C::Address),
        ],
        Rows::Fixed(1),
        Subj::One,
    ),
    shape(
        "ord.items",
        0.3,
        &["order_items", "products"],
        &[],
        Rows::Uniform(1, 8),
        Subj::None,
    ),
    shape(
        "ord.insert",
        0.15,
        &["orders"],
        &[],
        Rows::Fixed(0),
        Subj::None,
    ),
    shape(
        "ord.product",
        0.1,
        &["products"],
        &[],
        Rows::Uniform(1, 5),
        Subj::None,
    ),
];

/// The compliance officer reads the audit log (searches, subject reports).
const COMPLIANCE: &[Shape] = &[
    shape(
        "cmp.audit_search",
        0.7,
        &["audit_log"],
        &[],
        Rows::LogUniform(10, 200),
        Subj::Fraction(0.0, 0.3),
    ),
    shape(
        "cmp.subject_report",
        0.3,
        &["audit_log"],
        &[],
        Rows::LogUniform(5, 100),
        Subj::One,
    ),
];

/// Dataset exports; identifiers arrive as pseudonyms.
const ML: &[Shape] = &[
    shape(
        "ml.export_recommendations",
        0.6,
        &["events", "orders", "order_items", "products"],
        &[
            ("events.customer_id", C::Identifier),
            ("orders.customer_id", C::Identifier),
        ],
        Rows::LogUniform(50_000, 200_000),
        Subj::Fraction(0.05, 0.2),
    ),
    shape(
        "ml.export_marketing",
        0.4,
        &["customers", "orders"],
        &[
            ("customers.id", C::Identifier),
            ("orders.customer_id", C::Identifier),
        ],
        Rows::LogUniform(20_000, 80_000),
        Subj::Fraction(0.3, 0.6),
    ),
];

/// Counts; `events` rarely, so it may not have been seen by the end of
/// the warm-up.
const ADMIN: &[Shape] = &[
    shape(
        "adm.count_events",
        0.04,
        &["events"],
        &[],
        Rows::Fixed(1),
        Subj::None,
    ),
    shape(
        "adm.count_payments",
        0.3,
        &["payments"],
        &[],
        Rows::Fixed(1),
        Subj::None,
    ),
    shape(
        "adm.count_orders",
        0.3,
        &["orders"],
        &[],
        Rows::Fixed(1),
        Subj::None,
    ),
    shape(
        "adm.count_customers",
        0.3,
        &["customers"],
        &[],
        Rows::Fixed(1),
        Subj::None,
    ),
    shape(
        "adm.orders_by_status",
        0.1,
        &["orders"],
        &[],
        Rows::Uniform(3, 10),
        Subj::None,
    ),
];

/// Tables of the demo store (and the audit log).
pub(crate) const ALL_TABLES: &[&str] = &[
    "customers",
    "orders",
    "order_items",
    "products",
    "payments",
    "events",
    "support_tickets",
    "reviews",
    "audit_log",
];

impl Principal {
    pub(crate) const ALL: [Principal; 7] = [
        Principal::Recs,
        Principal::Marketing,
        Principal::Support,
        Principal::Orders,
        Principal::Compliance,
        Principal::Ml,
        Principal::Admin,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Principal::Recs => "recs-service",
            Principal::Marketing => "marketing-service",
            Principal::Support => "support-agent-eu",
            Principal::Orders => "orders-service",
            Principal::Compliance => "compliance-officer",
            Principal::Ml => "ml-team",
            Principal::Admin => "admin",
        }
    }

    fn index(self) -> u64 {
        match self {
            Principal::Recs => 0,
            Principal::Marketing => 1,
            Principal::Support => 2,
            Principal::Orders => 3,
            Principal::Compliance => 4,
            Principal::Ml => 5,
            Principal::Admin => 6,
        }
    }

    pub(crate) fn shapes(self) -> &'static [Shape] {
        match self {
            Principal::Recs => RECS,
            Principal::Marketing => MARKETING,
            Principal::Support => SUPPORT,
            Principal::Orders => ORDERS,
            Principal::Compliance => COMPLIANCE,
            Principal::Ml => ML,
            Principal::Admin => ADMIN,
        }
    }

    /// Services run around the clock; people have hours with no traffic.
    pub(crate) fn is_service(self) -> bool {
        matches!(
            self,
            Principal::Recs | Principal::Marketing | Principal::Orders
        )
    }

    /// Working hours (UTC) of people; they work on weekdays.
    pub(crate) fn work_hours(self) -> Option<(u64, u64)> {
        match self {
            Principal::Support => Some((8, 18)),
            Principal::Compliance | Principal::Ml | Principal::Admin => Some((9, 17)),
            _ => None,
        }
    }

    /// Requests per hour while active, at full scale: the unit of rate
    /// spikes.
    pub(crate) fn typical_per_hour(self, rate_scale: f64) -> f64 {
        match self {
            Principal::Recs => 3600.0 * rate_scale,
            Principal::Orders => 1800.0 * rate_scale,
            Principal::Marketing => 30.0,
            Principal::Support => 27.0,
            // 1-2 sessions of 3-8 requests over 8 hours.
            Principal::Compliance => 1.0,
            // 3-6 exports over 8 hours.
            Principal::Ml => 0.56,
            // 1-3 sessions of 1-4 counts over 8 hours.
            Principal::Admin => 0.63,
        }
    }

    /// Tables its normal traffic reads.
    pub(crate) fn tables(self) -> Vec<&'static str> {
        let mut tables: Vec<&str> = self
            .shapes()
            .iter()
            .flat_map(|s| s.tables.iter().copied())
            .collect();
        tables.sort_unstable();
        tables.dedup();
        tables
    }

    /// Its first shape that returns emails, and the most rows that shape
    /// normally returns.
    pub(crate) fn email_shape(self) -> Option<(&'static Shape, u64)> {
        self.shapes()
            .iter()
            .find(|s| {
                s.columns.iter().any(|(_, c)| *c == C::Email) && s.name != "sup.customer_by_id"
            })
            .map(|s| {
                let max = match s.rows {
                    Rows::Fixed(n) => n,
                    Rows::Uniform(_, hi) | Rows::LogUniform(_, hi) => hi,
                };
                (s, max)
            })
    }

    /// Its addresses when the run starts: services 2-3 fixed ones, people
    /// an office and a VPN exit.
    pub(crate) fn addresses(self) -> Vec<IpAddr> {
        let i = self.index() as u8;
        let v4 = |a, b, c, d| IpAddr::V4(Ipv4Addr::new(a, b, c, d));
        match self {
            Principal::Recs | Principal::Orders => (1..=3).map(|h| v4(10, 0, 10 + i, h)).collect(),
            Principal::Marketing => (1..=2).map(|h| v4(10, 0, 10 + i, h)).collect(),
            _ => vec![v4(192, 168, 20 + i, 10), v4(198, 51, 100, 20 + i)],
        }
    }

    fn novel_query_rate(self) -> f64 {
        match self {
            Principal::Support => 0.005,
            Principal::Compliance => 0.03,
            Principal::Ml => 0.02,
            Principal::Admin => 0.05,
            _ => 0.0,
        }
    }
}

/// Fingerprint of version `version` of a shape.
pub(crate) fn fingerprint(name: &str, version: u64) -> u64 {
    // FNV-1a, then mixed with the version.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h ^ version.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// Builds one request of `shape`. `customer` is the data subject when the
/// shape returns exactly one (the support agent's case).
#[allow(clippy::too_many_arguments)]
pub(crate) fn request(
    p: Principal,
    shape: &Shape,
    fingerprint: u64,
    at: u64,
    source: IpAddr,
    customer: Option<u64>,
    larger: bool,
    rng: &mut Rng,
) -> RequestFeatures {
    let mut rows = match shape.rows {
        Rows::Fixed(n) => n,
        Rows::Uniform(lo, hi) => rng.between(lo, hi),
        Rows::LogUniform(lo, hi) => rng.log_uniform(lo, hi),
    };
    if larger && !matches!(shape.rows, Rows::Fixed(_)) {
        rows = (rows as f64 * rng.range(1.0, 3.0)).round() as u64;
    }
    let eu = p == Principal::Support;
    let one = |rng: &mut Rng| subject(customer.unwrap_or_else(|| random_customer(rng, eu)));
    let subjects = match shape.subjects {
        Subj::None => Subjects::None,
        Subj::One => Subjects::One(one(rng)),
        Subj::OneIfAny if rows == 0 => Subjects::None,
        Subj::OneIfAny => Subjects::One(one(rng)),
        Subj::AsRows => {
            let s = one(rng);
            Subjects::from_count(rows, s)
        }
        Subj::Fraction(lo, hi) => {
            let n = (rows as f64 * rng.range(lo, hi)).round() as u64;
            let s = one(rng);
            Subjects::from_count(n, s)
        }
    };
    RequestFeatures {
        principal: p.name().to_owned(),
        at_unix_ms: at,
        source,
        tables: shape.tables.iter().map(|t| (*t).to_owned()).collect(),
        sensitive_columns: shape
            .columns
            .iter()
            .map(|(c, class)| SensitiveColumn::new(*c, *class))
            .collect(),
        rows_returned: rows,
        subjects,
        fingerprint,
    }
}

/// One principal's generator.
struct Generator {
    p: Principal,
    rng: Rng,
    /// Current version of each shape (services deploy new ones).
    versions: Vec<u64>,
    addresses: Vec<IpAddr>,
}

/// A day's normal traffic of every principal, sorted by time.
pub(crate) struct Traffic {
    generators: Vec<Generator>,
    rate_scale: f64,
}

impl Traffic {
    pub(crate) fn new(seed: u64, rate_scale: f64) -> Traffic {
        let generators = Principal::ALL
            .iter()
            .map(|&p| Generator {
                p,
                rng: Rng::new(mix(seed ^ mix(p.index() + 1))),
                versions: vec![0; p.shapes().len()],
                addresses: p.addresses(),
            })
            .collect();
        Traffic {
            generators,
            rate_scale,
        }
    }

    pub(crate) fn day(&mut self, day: u64) -> Vec<RequestFeatures> {
        let mut out = Vec::new();
        for g in &mut self.generators {
            g.day(day, self.rate_scale, &mut out);
        }
        out.sort_by_key(|r| r.at_unix_ms);
        out
    }
}

/// A deploy: from `at`, shape `shape` has a new version.
struct Deploy {
    at: u64,
    shape: usize,
    done: bool,
}

impl Generator {
    fn day(&mut self, day: u64, rate_scale: f64, out: &mut Vec<RequestFeatures>) {
        let start = START_MS + day * DAY;
        let factor = self.rng.range(0.8, 1.2);
        match self.p {
            Principal::Recs => self.service_day(start, 3600.0 * rate_scale * factor, 0.5, 20, out),
            Principal::Orders => {
                self.service_day(start, 1800.0 * rate_scale * factor, 0.3, 14, out)
            }
            Principal::Marketing => self.service_day(start, 30.0 * factor, -1.0, 0, out),
            Principal::Support if is_weekday(day) => self.support_day(start, out),
            Principal::Compliance if is_weekday(day) => {
                self.sessions_day(start, (1, 2), (3, 8), (30, 120), out)
            }
            Principal::Admin if is_weekday(day) => {
                self.sessions_day(start, (1, 3), (1, 4), (10, 60), out)
            }
            Principal::Ml if is_weekday(day) => self.ml_day(start, out),
            _ => {}
        }
    }

    /// Services: a Poisson process around the clock. `amplitude` >= 0 is a
    /// sinusoidal daily rhythm peaking at `peak`; a negative amplitude
    /// means business hours (08-18 at the full rate, a tenth at night).
    fn service_day(
        &mut self,
        start: u64,
        per_hour: f64,
        amplitude: f64,
        peak: u64,
        out: &mut Vec<RequestFeatures>,
    ) {
        let mut deploy = self.rng.chance(0.25).then(|| Deploy {
            at: start + self.rng.below(DAY),
            shape: self.rng.below(self.versions.len() as u64) as usize,
            done: false,
        });
        if self.rng.chance(0.1) && !self.addresses.is_empty() {
            // A moved pod: one address replaced for good (from midnight,
            // for simplicity).
            let i = self.rng.below(self.addresses.len() as u64) as usize;
            self.addresses[i] = fresh_private_address(&mut self.rng);
        }
        // A retry storm (a dependency timed out): 2-3x the rate for 2-10
        // minutes, on three days in ten.
        let storm = self.rng.chance(0.3).then(|| {
            let from = start + self.rng.below(DAY);
            (
                from,
                from + 2 * MIN + self.rng.below(8 * MIN),
                self.rng.range(2.0, 3.0),
            )
        });
        let max = per_hour * (1.0 + amplitude.max(0.0)) * 3.0;
        let rate = |t: u64| {
            let hour = ((t % DAY) / HOUR) as f64;
            let storm = match storm {
                Some((from, to, factor)) if (from..to).contains(&t) => factor,
                _ => 1.0,
            };
            storm
                * if amplitude >= 0.0 {
                    let phase = 2.0 * std::f64::consts::PI * (hour - peak as f64) / 24.0;
                    per_hour * (1.0 + amplitude * phase.cos())
                } else if (8.0..18.0).contains(&hour) {
                    per_hour
                } else {
                    per_hour / 10.0
                }
        };
        let mean_gap_ms = HOUR as f64 / max;
        let mut t = start as f64;
        loop {
            t += self.rng.exponential(mean_gap_ms);
            let at = t as u64;
            if at >= start + DAY {
                break;
            }
            if !self.rng.chance(rate(at) / max) {
                continue;
            }
            if let Some(d) = deploy.as_mut().filter(|d| !d.done && at >= d.at) {
                self.versions[d.shape] += 1;
                d.done = true;
            }
            let source = self.pick_address();
            let r = self.random_request(at, source, None);
            out.push(r);
        }
        if let Some(d) = deploy.filter(|d| !d.done) {
            self.versions[d.shape] += 1;
        }
    }

    fn pick_address(&mut self) -> IpAddr {
        let i = self.rng.below(self.addresses.len() as u64) as usize;
        self.addresses
            .get(i)
            .copied()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// A request of a shape picked by weight (people: sometimes a one-off
    /// query of the same tables).
    fn random_request(
        &mut self,
        at: u64,
        source: IpAddr,
        customer: Option<u64>,
    ) -> RequestFeatures {
        let shapes = self.p.shapes();
        let weights: Vec<f64> = shapes.iter().map(|s| s.weight).collect();
        let i = self.rng.weighted(&weights);
        self.request_of(i, at, source, customer)
    }

    fn request_of(
        &mut self,
        i: usize,
        at: u64,
        source: IpAddr,
        customer: Option<u64>,
    ) -> RequestFeatures {
        let shape = &self.p.shapes()[i];
        let fp = if self.rng.chance(self.p.novel_query_rate()) {
            self.rng.next_u64()
        } else {
            fingerprint(shape.name, self.versions[i])
        };
        let larger = self.rng.chance(0.005);
        request(
            self.p,
            shape,
            fp,
            at,
            source,
            customer,
            larger,
            &mut self.rng,
        )
    }

    /// The address of a person for the day: usually the office, some days
    /// the VPN, and on one day in ten an unusual one (home, hotel) for 1-3
    /// hours from `window.0`.
    fn person_addresses(&mut self, start: u64) -> (IpAddr, Option<(u64, u64, IpAddr)>) {
        let usual = if self.rng.chance(0.7) {
            self.addresses[0]
        } else {
            self.addresses[self.addresses.len() - 1]
        };
        let unusual = self.rng.chance(0.1).then(|| {
            let from = start + 9 * HOUR + self.rng.below(7 * HOUR);
            let to = from + HOUR + self.rng.below(2 * HOUR);
            (from, to, fresh_public_address(&mut self.rng))
        });
        (usual, unusual)
    }

    /// Support agent: one case after another (a person works one at a
    /// time): a customer lookup (by id, or a search) then 1-3 tickets or
    /// orders reads 20-90 s apart, then on average 5 minutes (exponential)
    /// before the next case; a 30-60 minute lunch break. About 9 cases and
    /// 27 requests an hour.
    fn support_day(&mut self, start: u64, out: &mut Vec<RequestFeatures>) {
        let (usual, unusual) = self.person_addresses(start);
        let from = if self.rng.chance(0.1) {
            start + 7 * HOUR + 30 * MIN + self.rng.below(30 * MIN)
        } else {
            start + 8 * HOUR
        };
        let to = if self.rng.chance(0.2) {
            start + 18 * HOUR + 30 * MIN + self.rng.below(90 * MIN)
        } else {
            start + 18 * HOUR
        };
        let lunch = start + 12 * HOUR + self.rng.below(HOUR);
        let mut lunched = false;
        let mut at = from;
        while at < to {
            if !lunched && at >= lunch {
                lunched = true;
                at += 30 * MIN + self.rng.below(30 * MIN);
                continue;
            }
            let customer = random_customer(&mut self.rng, true);
            let steps = 1 + self.rng.between(1, 3);
            for step in 0..steps {
                let source = match unusual {
                    Some((a, b, addr)) if (a..b).contains(&at) => addr,
                    _ => usual,
                };
                let i = match step {
                    0 if self.rng.chance(0.1) => 1,
                    0 => 0,
                    _ => 2 + self.rng.below(2) as usize,
                };
                out.push(self.request_of(i, at, source, Some(customer)));
                at += 20 * SEC + self.rng.below(70 * SEC);
            }
            at += (self.rng.exponential(5.0 * MIN as f64) as u64).max(30 * SEC);
        }
    }

    /// Compliance officer and admin: a few sessions a day in working hours.
    fn sessions_day(
        &mut self,
        start: u64,
        sessions: (u64, u64),
        per_session: (u64, u64),
        gap_secs: (u64, u64),
        out: &mut Vec<RequestFeatures>,
    ) {
        let (usual, unusual) = self.person_addresses(start);
        let n = self.rng.between(sessions.0, sessions.1);
        for _ in 0..n {
            let mut at = start + 9 * HOUR + self.rng.below(7 * HOUR + 30 * MIN);
            for _ in 0..self.rng.between(per_session.0, per_session.1) {
                let source = match unusual {
                    Some((a, b, addr)) if (a..b).contains(&at) => addr,
                    _ => usual,
                };
                out.push(self.random_request(at, source, None));
                at += SEC * self.rng.between(gap_secs.0, gap_secs.1);
            }
        }
    }

    /// ML team: 3-6 exports spread over working hours.
    fn ml_day(&mut self, start: u64, out: &mut Vec<RequestFeatures>) {
        let (usual, unusual) = self.person_addresses(start);
        for _ in 0..self.rng.between(3, 6) {
            let at = start + 9 * HOUR + self.rng.below(8 * HOUR);
            let source = match unusual {
                Some((a, b, addr)) if (a..b).contains(&at) => addr,
                _ => usual,
            };
            out.push(self.random_request(at, source, None));
        }
    }
}

fn fresh_private_address(rng: &mut Rng) -> IpAddr {
    let x = rng.next_u64();
    IpAddr::V4(Ipv4Addr::new(
        10,
        1 + (x % 200) as u8,
        (x >> 8) as u8,
        1 + (x >> 16) as u8 % 250,
    ))
}

/// A random address outside the principals' networks.
pub(crate) fn fresh_public_address(rng: &mut Rng) -> IpAddr {
    let x = rng.next_u64();
    IpAddr::V4(Ipv4Addr::new(
        [85, 91, 141, 176, 185, 203][(x % 6) as usize],
        (x >> 8) as u8,
        (x >> 16) as u8,
        1 + (x >> 24) as u8 % 250,
    ))
}
