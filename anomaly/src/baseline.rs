//! One principal's learned behaviour ([`Baseline`]) and the rules that
//! compare a request with it.
//!
//! Two kinds of state: the baseline proper (statistics, known items, hour
//! histogram, rate profile), which only learns from requests scoring below
//! `learn_below`; and windows (requests per minute and hour, recent
//! addresses, recent single-subject lookups), which count every request,
//! since they describe what is happening now.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::assessment::{AnomalyKind, Assessment, Reason};
use crate::config::DetectorConfig;
use crate::features::{RequestFeatures, Subjects};
use crate::stats::{
    count_at, ln1p, ramp, LogCount, Moments, Novelty, Ring, Seen, SubjectWindow, SLOW,
};

const MINUTE_MS: u64 = 60_000;
const HOUR_MS: u64 = 3_600_000;
/// Window of the enumeration rule.
pub(crate) const LOOKUP_WINDOW_MS: u64 = 10 * MINUTE_MS;
/// An address is known once used again at least this long after its first
/// use: an attacker's addresses within one hour all stay unknown.
const ADDRESS_CONFIRM_MS: u64 = HOUR_MS;
const RISK_HALF_LIFE_MS: f64 = 10.0 * 60_000.0;

/// Caps per principal: the state stays bounded whatever the traffic.
const SHAPES_CAP: usize = 512;
const TABLES_CAP: usize = 256;
const COLUMNS_CAP: usize = 512;
const SOURCES_CAP: usize = 64;
const RECENT_SOURCES_CAP: usize = 64;
const HISTOGRAM_CAP: f64 = 200_000.0;

/// A query shape's own volume statistics are used from this many samples.
const SHAPE_MIN_SAMPLES: f64 = 30.0;
/// A rate profile bin is used from this many samples.
const RATE_MIN_SAMPLES: f64 = 20.0;
/// Requests counted over 5 minutes, 1 hour, 1 day.
const RATE_WINDOWS: [(&str, usize); 3] = [("5 minutes", 5), ("hour", 60), ("day", 24)];

/// Rows and distinct subjects, log scale.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Volume {
    rows: LogCount,
    subjects: LogCount,
}

impl Volume {
    fn push(&mut self, rows: u64, subjects: u64) {
        self.rows.push(rows);
        self.subjects.push(subjects);
    }
}

/// Learned requests per hour of day (UTC).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct HourHistogram {
    counts: [f64; 24],
    total: f64,
}

impl HourHistogram {
    fn push(&mut self, hour: usize) {
        self.counts[hour] += 1.0;
        self.total += 1.0;
        if self.total > HISTOGRAM_CAP {
            // Halving keeps proportions and lets old habits fade.
            for c in &mut self.counts {
                *c /= 2.0;
            }
            self.total /= 2.0;
        }
    }

    /// How far (hours) one request vouches for nearby hours: 3 while the
    /// histogram is thin (a person seen in three sessions at noon may well
    /// work at ten), 1 once it holds a thousand requests.
    fn bandwidth(&self) -> usize {
        if self.total < 200.0 {
            3
        } else if self.total < 1_000.0 {
            2
        } else {
            1
        }
    }

    fn share(&self, hour: usize) -> f64 {
        if self.total <= 0.0 {
            0.0
        } else {
            self.counts[hour % 24] / self.total
        }
    }

    /// Whether the principal's working day includes `hour` (within the
    /// bandwidth of an hour it works, or between two such hours), and if
    /// not, the largest share of its requests within the bandwidth.
    fn off_hours_share(&self, hour: usize) -> Option<f64> {
        let b = self.bandwidth();
        // The working day is the clock minus the longest quiet gap between
        // active hours, widened by the bandwidth. `gap` is (length, the
        // active hour it starts after).
        let mut first = None;
        let mut previous = 0;
        let mut gap = (0, 0);
        for h in 0..24 {
            if self.counts[h] <= 0.0 || self.share(h) < OFF_HOURS_SHARE {
                continue;
            }
            match first {
                None => first = Some(h),
                Some(_) if h - previous > gap.0 => gap = (h - previous, previous),
                Some(_) => {}
            }
            previous = h;
        }
        let first = first?;
        if first + 24 - previous > gap.0 {
            gap = (first + 24 - previous, previous);
        }
        let offset = (hour + 24 - gap.1) % 24;
        if offset <= b || offset + b >= gap.0 {
            return None;
        }
        let mut near: f64 = 0.0;
        for h in hour + 24 - b..=hour + 24 + b {
            near = near.max(self.share(h));
        }
        Some(near)
    }
}

/// An hour holding less than this share of a principal's requests is
/// quiet.
const OFF_HOURS_SHARE: f64 = 0.002;

/// Requests in each rate window as seen by this principal's own learned
/// requests, per hour of day and overall. Sampling at requests (rather than
/// per clock interval) compares like with like: the rule also looks at the
/// windows from a request, and a principal that works in bursts (people) is
/// compared with its own bursts, not with its idle nights and weekends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct RateProfile {
    by_hour: [[Moments; 3]; 24],
    all: [Moments; 3],
}

impl RateProfile {
    const HOUR_HORIZON: f64 = 2_000.0;
    const ALL_HORIZON: f64 = 5_000.0;

    /// Learns the window counts seen by a request. A count more than 2
    /// standard deviations above the usual figure counts a tenth and is
    /// clipped to 3: a burst that stayed below the alert level cannot drag
    /// the profile up quickly, while a lasting change is learned in time.
    /// The reference is the hour's own figure (the day window: the overall
    /// one) once it has enough samples; during warm-up everything counts
    /// fully.
    fn push(&mut self, hour: usize, counts: [u32; 3], warm: bool) {
        for (i, &c) in counts.iter().enumerate() {
            let own = if i < 2 {
                self.by_hour[hour][i]
            } else {
                self.all[i]
            };
            let reference = Some(own).filter(|m| warm && m.n() >= RATE_MIN_SAMPLES);
            let (c, weight) = slowed(f64::from(c), reference.as_ref());
            self.by_hour[hour][i].push_weighted(c, RateProfile::HOUR_HORIZON, weight);
            self.all[i].push_weighted(c, RateProfile::ALL_HORIZON, weight);
        }
    }

    /// What window `i` usually holds at `hour`: for the 5-minute and hourly
    /// windows the busiest of the hour and its neighbours (tolerates shifts
    /// of the daily rhythm), for the daily window the overall figure.
    fn usual(&self, hour: usize, i: usize) -> Option<Moments> {
        let mut best: Option<Moments> = None;
        if i < 2 {
            for h in [hour + 23, hour, hour + 1] {
                let m = self.by_hour[h % 24][i];
                if m.n() >= RATE_MIN_SAMPLES && best.is_none_or(|b| m.mean() > b.mean()) {
                    best = Some(m);
                }
            }
        }
        best.or_else(|| Some(self.all[i]).filter(|m| m.n() >= RATE_MIN_SAMPLES))
    }
}

/// Standard deviation of a count, at least that of a Poisson count with the
/// same mean (and at least 1).
fn spread(m: &Moments) -> f64 {
    m.var().max(m.mean()).max(1.0).sqrt()
}

/// A count to learn and its weight, given what is usual: above 2 standard
/// deviations it counts a tenth, clipped to 3.
fn slowed(x: f64, usual: Option<&Moments>) -> (f64, f64) {
    match usual {
        Some(m) if x > m.mean() + 2.0 * spread(m) => (x.min(m.mean() + 3.0 * spread(m)), SLOW),
        _ => (x, 1.0),
    }
}

/// Everything the detector knows about one principal. Bounded: every set
/// and window has a cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Baseline {
    first_ms: u64,
    latest_ms: u64,
    /// Requests the baseline learned from.
    learned: u64,
    volume: Volume,
    /// Query shapes, with each shape's own volume statistics.
    shapes: Novelty<u64, Volume>,
    tables: Novelty<String, ()>,
    columns: Novelty<String, ()>,
    sources: Novelty<IpAddr, ()>,
    /// Share of learned requests that used a new query shape.
    novel_shapes: Moments,
    hours: HourHistogram,
    rate: RateProfile,
    /// Distinct subjects looked up one at a time in the enumeration
    /// window, as seen by learned single-subject lookups.
    lookups: Moments,
    minutes: Ring,
    hour_slots: Ring,
    recent_sources: Vec<(IpAddr, u64)>,
    recent_lookups: SubjectWindow,
    risk: f64,
    risk_ms: u64,
}

/// At most one reason per kind: the heaviest.
#[derive(Default)]
struct Reasons(Vec<Reason>);

impl Reasons {
    fn add(&mut self, kind: AnomalyKind, weight: f64, detail: impl FnOnce() -> String) {
        if weight <= 0.0 {
            return;
        }
        match self.0.iter_mut().find(|r| r.kind == kind) {
            Some(r) if r.weight >= weight => {}
            Some(r) => {
                r.weight = weight;
                r.detail = detail();
            }
            None => self.0.push(Reason {
                kind,
                detail: detail(),
                weight,
            }),
        }
    }
}

/// Window counts and lookups of the current request, computed before the
/// rules and reused when learning.
struct Now {
    at: u64,
    hour: usize,
    counts: [u32; 3],
    distinct_sources: usize,
    unknown_sources: usize,
    lookups: Option<usize>,
}

impl Baseline {
    pub(crate) fn new(at: u64) -> Baseline {
        Baseline {
            first_ms: at,
            latest_ms: at,
            learned: 0,
            volume: Volume::default(),
            shapes: Novelty::default(),
            tables: Novelty::default(),
            columns: Novelty::default(),
            sources: Novelty::default(),
            novel_shapes: Moments::default(),
            hours: HourHistogram::default(),
            rate: RateProfile::default(),
            lookups: Moments::default(),
            minutes: Ring::new(60),
            hour_slots: Ring::new(24),
            recent_sources: Vec::new(),
            recent_lookups: SubjectWindow::default(),
            risk: 0.0,
            risk_ms: at,
        }
    }

    /// Invariants serde cannot express, checked after loading.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.minutes.len() != 60 || self.hour_slots.len() != 24 {
            return Err("rate windows of the wrong length".into());
        }
        if self.shapes.len() > SHAPES_CAP
            || self.tables.len() > TABLES_CAP
            || self.columns.len() > COLUMNS_CAP
            || self.sources.len() > SOURCES_CAP
            || self.recent_sources.len() > RECENT_SOURCES_CAP
        {
            return Err("a set above its cap".into());
        }
        Ok(())
    }

    pub(crate) fn is_warm(&self, config: &DetectorConfig, at: u64) -> bool {
        self.learned >= u64::from(config.warmup_requests)
            && at.saturating_sub(self.first_ms) >= config.warmup_ms()
    }

    /// Decayed maximum of recent scores at `at`.
    pub(crate) fn risk(&self, at: u64) -> f64 {
        let age = at.saturating_sub(self.risk_ms) as f64;
        self.risk * 0.5f64.powf(age / RISK_HALF_LIFE_MS)
    }

    pub(crate) fn score(&mut self, config: &DetectorConfig, f: &RequestFeatures) -> Assessment {
        let at = f.at_unix_ms.max(self.latest_ms);
        self.latest_ms = at;
        let warm = self.is_warm(config, at);
        let now = self.count(f, at);

        let mut reasons = Reasons::default();
        self.hard_rules(config, f, &now, &mut reasons);
        let hard = !reasons.0.is_empty();
        if warm {
            self.novelty_rules(f, &mut reasons);
            self.volume_rules(f, &mut reasons);
            self.enumeration_rule(&now, &mut reasons);
            self.off_hours_rule(&now, &mut reasons);
            self.rate_rule(&now, &mut reasons);
            self.address_rule(&now, &mut reasons);
        }
        let assessment = Assessment::new(reasons.0, !warm);

        // During warm-up everything but hard-rule hits is learned; after it,
        // only what scored below `learn_below`.
        let learn = if warm {
            assessment.score() < config.learn_below.get()
        } else {
            !hard
        };
        self.remember(config, f, &now, learn, warm, assessment.reasons());
        self.risk = self.risk(at).max(assessment.score());
        self.risk_ms = at;
        assessment
    }

    /// Updates the windows with this request and reads them.
    fn count(&mut self, f: &RequestFeatures, at: u64) -> Now {
        self.minutes.add(at / MINUTE_MS);
        self.hour_slots.add(at / HOUR_MS);
        let counts = [
            self.minutes.recent(RATE_WINDOWS[0].1),
            self.minutes.recent(RATE_WINDOWS[1].1),
            self.hour_slots.recent(RATE_WINDOWS[2].1),
        ];

        match self.recent_sources.iter_mut().find(|(a, _)| *a == f.source) {
            Some(entry) => entry.1 = at,
            None => {
                if self.recent_sources.len() >= RECENT_SOURCES_CAP {
                    if let Some(oldest) =
                        (0..self.recent_sources.len()).min_by_key(|&i| self.recent_sources[i].1)
                    {
                        self.recent_sources.swap_remove(oldest);
                    }
                }
                self.recent_sources.push((f.source, at));
            }
        }
        let hour_ago = at.saturating_sub(HOUR_MS);
        let mut distinct_sources = 0;
        let mut unknown_sources = 0;
        for (addr, last) in &self.recent_sources {
            if *last > hour_ago {
                distinct_sources += 1;
                if !self.sources.is_known(addr) {
                    unknown_sources += 1;
                }
            }
        }

        let lookups = match f.subjects {
            Subjects::One(subject) => {
                self.recent_lookups.push(at, subject, LOOKUP_WINDOW_MS);
                Some(self.recent_lookups.distinct())
            }
            _ => None,
        };
        Now {
            at,
            hour: ((at / HOUR_MS) % 24) as usize,
            counts,
            distinct_sources,
            unknown_sources,
            lookups,
        }
    }

    /// The rules that need no baseline and fire during warm-up too.
    fn hard_rules(
        &self,
        config: &DetectorConfig,
        f: &RequestFeatures,
        now: &Now,
        reasons: &mut Reasons,
    ) {
        let limit = config.bulk_rows.get();
        if f.rows_returned >= limit && f.has_direct_columns() {
            reasons.add(AnomalyKind::BulkExtraction, 0.85, || {
                format!(
                    "returned {} rows with {} (hard limit {})",
                    group(f.rows_returned),
                    direct_classes(f),
                    group(limit)
                )
            });
        }
        let max = config.max_addresses_per_hour.get() as usize;
        if now.distinct_sources >= max {
            reasons.add(AnomalyKind::ManyAddresses, 0.8, || {
                format!(
                    "{} distinct source addresses in the last hour (hard limit {max})",
                    now.distinct_sources
                )
            });
        }
    }

    fn novelty_rules(&self, f: &RequestFeatures, reasons: &mut Reasons) {
        let new_tables: Vec<&str> = f
            .tables
            .iter()
            .map(String::as_str)
            .filter(|t| !self.tables.is_known(*t))
            .collect();
        if !new_tables.is_empty() {
            reasons.add(AnomalyKind::NewTable, 0.55, || {
                let s = if new_tables.len() > 1 { "s" } else { "" };
                format!("first read of table{s} {}", new_tables.join(", "))
            });
        }

        let mut new_columns = f
            .sensitive_columns
            .iter()
            .filter(|c| !self.columns.is_known(c.column.as_str()))
            .peekable();
        if new_columns.peek().is_some() {
            let new_columns: Vec<_> = new_columns.collect();
            let weight = new_columns
                .iter()
                .map(|c| c.class.novelty_weight())
                .fold(0.0, f64::max);
            reasons.add(AnomalyKind::NewSensitiveColumn, weight, || {
                let list: Vec<String> = new_columns
                    .iter()
                    .map(|c| format!("{} ({})", c.column, c.class))
                    .collect();
                format!("first read of {}", list.join(", "))
            });
        }

        if !self.shapes.is_known(&f.fingerprint) {
            // A principal that often sends new shapes (a person writing
            // queries) gets little weight for one more.
            let rate = self.novel_shapes.mean();
            let weight = 0.35 * (1.0 - rate / 0.02).clamp(0.0, 1.0);
            reasons.add(AnomalyKind::NovelQueryShape, weight, || {
                format!(
                    "query shape {:016x} never used by this principal ({:.2}% of its requests use a new shape)",
                    f.fingerprint,
                    100.0 * rate
                )
            });
        }
    }

    fn volume_rules(&self, f: &RequestFeatures, reasons: &mut Reasons) {
        // The shape's own figures when it has enough, else the principal's.
        let (basis, whose) = match self.shapes.get(&f.fingerprint) {
            Some(Seen {
                value, known: true, ..
            }) if value.rows.n() >= SHAPE_MIN_SAMPLES => (value, "this query shape"),
            _ => (&self.volume, "this principal"),
        };
        let subjects = f.subjects.count();
        let over_rows = ln1p(f.rows_returned) - basis.rows.high();
        let over_subjects = ln1p(subjects) - basis.subjects.high();
        let (excess, n, unit, usual) = if over_rows >= over_subjects {
            (over_rows, f.rows_returned, "rows", basis.rows.high())
        } else {
            (
                over_subjects,
                subjects,
                "data subjects",
                basis.subjects.high(),
            )
        };
        if excess <= 3f64.ln() {
            return;
        }
        let detail = || {
            format!(
                "returned {} {unit}{}; {whose} usually returns at most ~{}",
                group(n),
                if f.has_direct_columns() {
                    format!(" with {}", direct_classes(f))
                } else {
                    String::new()
                },
                group(count_at(usual))
            )
        };
        if f.has_direct_columns() && f.rows_returned.max(subjects) >= 100 {
            let weight = 0.85 * ramp(excess, 3f64.ln(), 8f64.ln());
            reasons.add(AnomalyKind::BulkExtraction, weight, detail);
        } else {
            let weight = 0.45 * ramp(excess, 3f64.ln(), 30f64.ln());
            reasons.add(AnomalyKind::UnusualVolume, weight, detail);
        }
    }

    fn enumeration_rule(&self, now: &Now, reasons: &mut Reasons) {
        let Some(distinct) = now.lookups else {
            return;
        };
        if distinct < 10 {
            return;
        }
        let usual = if self.lookups.n() >= RATE_MIN_SAMPLES {
            (self.lookups.mean() + 3.0 * self.lookups.sd().max(1.0)).max(3.0)
        } else {
            3.0
        };
        let weight = 0.8 * ramp(distinct as f64 / usual, 1.5, 3.0);
        reasons.add(AnomalyKind::Enumeration, weight, || {
            format!(
                "{distinct} different data subjects looked up one at a time in 10 minutes; usually at most ~{usual:.0}"
            )
        });
    }

    fn off_hours_rule(&self, now: &Now, reasons: &mut Reasons) {
        let Some(share) = self.hours.off_hours_share(now.hour) else {
            return;
        };
        let weight = 0.65 * (1.0 - share / OFF_HOURS_SHARE).clamp(0.0, 1.0);
        reasons.add(AnomalyKind::OffHours, weight, || {
            let minute = (now.at / MINUTE_MS) % 60;
            format!(
                "request at {:02}:{minute:02} UTC, outside this principal's working day ({:.2}% of its requests near that hour)",
                now.hour,
                100.0 * share
            )
        });
    }

    fn rate_rule(&self, now: &Now, reasons: &mut Reasons) {
        for (i, (window, _)) in RATE_WINDOWS.iter().enumerate() {
            let Some(usual) = self.rate.usual(now.hour, i) else {
                continue;
            };
            let count = f64::from(now.counts[i]);
            let expected = usual.mean();
            let z = (count - expected) / spread(&usual);
            let ratio = count / expected.max(1.0);
            let weight = 0.8 * ramp(z, 3.0, 5.0).min(ramp(ratio, 2.0, 4.0));
            reasons.add(AnomalyKind::RateSpike, weight, || {
                format!(
                    "{} requests in the last {window}; usually about {expected:.0} at this hour",
                    now.counts[i]
                )
            });
        }
    }

    fn address_rule(&self, now: &Now, reasons: &mut Reasons) {
        let weight = 0.8 * ramp(now.unknown_sources as f64, 2.0, 4.0);
        reasons.add(AnomalyKind::ManyAddresses, weight, || {
            format!(
                "{} source addresses new for this principal in the last hour ({} in all)",
                now.unknown_sources, now.distinct_sources
            )
        });
    }

    /// Learns from the request if `learn`; otherwise only records the
    /// sightings that let a persistent change be accepted after
    /// `accept_after_hours`. Even when learning, a statistic does not learn
    /// from a value its own rule found suspicious (a rate spike, say, that
    /// stayed below the alert level on its own): otherwise an attack that
    /// ramps up slowly would teach the detector as it goes.
    fn remember(
        &mut self,
        config: &DetectorConfig,
        f: &RequestFeatures,
        now: &Now,
        learn: bool,
        warm: bool,
        fired: &[Reason],
    ) {
        let fired = |kind: AnomalyKind| fired.iter().any(|r| r.kind == kind);
        let at = now.at;
        let accept_ms = config.accept_after_ms();
        fn accept<V>(seen: &mut Seen<V>, learn: bool, at: u64, accept_ms: u64) {
            if learn || (seen.hits >= 3 && at.saturating_sub(seen.first_ms) >= accept_ms) {
                seen.known = true;
            }
        }
        for table in &f.tables {
            if let Some(seen) = self.tables.sight(table.as_str(), at, TABLES_CAP) {
                accept(seen, learn, at, accept_ms);
            }
        }
        for column in &f.sensitive_columns {
            if let Some(seen) = self.columns.sight(column.column.as_str(), at, COLUMNS_CAP) {
                accept(seen, learn, at, accept_ms);
            }
        }
        let new_shape = !self.shapes.is_known(&f.fingerprint);
        if let Some(seen) = self.shapes.sight(&f.fingerprint, at, SHAPES_CAP) {
            if learn && !fired(AnomalyKind::BulkExtraction) && !fired(AnomalyKind::UnusualVolume) {
                seen.value.push(f.rows_returned, f.subjects.count());
            }
            accept(seen, learn, at, accept_ms);
        }
        if let Some(seen) = self.sources.sight(&f.source, at, SOURCES_CAP) {
            let confirmed = learn && at.saturating_sub(seen.first_ms) >= ADDRESS_CONFIRM_MS;
            accept(seen, confirmed, at, accept_ms);
        }
        if !learn {
            return;
        }
        self.learned += 1;
        if !fired(AnomalyKind::BulkExtraction) && !fired(AnomalyKind::UnusualVolume) {
            self.volume.push(f.rows_returned, f.subjects.count());
        }
        self.novel_shapes
            .push(if new_shape { 1.0 } else { 0.0 }, 1_000.0);
        if !fired(AnomalyKind::OffHours) {
            self.hours.push(now.hour);
        }
        if !fired(AnomalyKind::RateSpike) {
            self.rate.push(now.hour, now.counts, warm);
        }
        if let Some(distinct) = now.lookups.filter(|_| !fired(AnomalyKind::Enumeration)) {
            let usual = Some(self.lookups).filter(|m| warm && m.n() >= RATE_MIN_SAMPLES);
            let (distinct, weight) = slowed(distinct as f64, usual.as_ref());
            self.lookups.push_weighted(distinct, 2_000.0, weight);
        }
    }
}

/// The direct classifications of a request's columns, for messages.
fn direct_classes(f: &RequestFeatures) -> String {
    let mut classes: Vec<&str> = f
        .sensitive_columns
        .iter()
        .filter(|c| c.class.is_direct())
        .map(|c| c.class.as_str())
        .collect();
    classes.sort_unstable();
    classes.dedup();
    classes.join(", ")
}

/// `48120` as `48,120`.
pub(crate) fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        assert_eq!(group(0), "0");
        assert_eq!(group(999), "999");
        assert_eq!(group(48_120), "48,120");
        assert_eq!(group(1_000_000), "1,000,000");
    }

    #[test]
    fn off_hours_are_outside_the_working_day_widened_by_the_bandwidth() {
        let mut h = HourHistogram::default();
        for hour in [12, 13, 14] {
            for _ in 0..10 {
                h.push(hour);
            }
        }
        // Thin histogram: 3 hours either side.
        assert_eq!(h.bandwidth(), 3);
        assert_eq!(h.off_hours_share(9), None);
        assert_eq!(h.off_hours_share(17), None);
        assert_eq!(h.off_hours_share(18), Some(0.0));
        assert_eq!(h.off_hours_share(3), Some(0.0));
        for _ in 0..1000 {
            h.push(8);
            h.push(17);
        }
        assert_eq!(h.bandwidth(), 1);
        assert_eq!(h.off_hours_share(12), None);
        assert_eq!(h.off_hours_share(18), None);
        assert!(h.off_hours_share(19).is_some());
        assert!(h.off_hours_share(6).is_some());
        assert_eq!(h.off_hours_share(7), None);
    }

    #[test]
    fn a_principal_active_around_the_clock_has_no_off_hours() {
        let mut h = HourHistogram::default();
        for hour in 0..24 {
            h.push(hour);
        }
        assert!((0..24).all(|hour| h.off_hours_share(hour).is_none()));
    }
}
