//! `privet anomaly evaluate`: replays synthetic normal traffic of the demo
//! principals with injected attacks, and measures the detector. The
//! detector is never told which requests are attacks.
//!
//! **Workload** (`workload.rs`): the seven demo principals with the mixes
//! of the demo: recs-service event scans (100-1,000 rows, pseudonymous ids)
//! around the clock with a daily rhythm; marketing-service customer lists
//! (10-500 rows, masked emails) at 30/h in business hours and 3/h at night;
//! the EU support agent's single-customer cases, one after another, 08-18
//! on weekdays (~27 requests/h); orders-service point lookups, item reads
//! and inserts around the clock; a few audit-log sessions a day by the
//! compliance officer; 3-6 pseudonymous exports a day (20k-200k rows) by
//! the ML team; 1-3 sessions of counts a day by admin. Noise: day-to-day
//! volume, larger results, deploys (new query shapes), one-off queries,
//! retry storms, late work, moved and unusual addresses, rarely used tables
//! (details in `workload.rs`).
//!
//! [`Scale::Short`] runs 10 days with the two 24/7 services at a twentieth
//! of their rate (~70,000 normal and ~18,000 attack requests, under 2 s in
//! a debug build), each attack once; [`Scale::Full`] 22 days at full rate
//! (recs-service ~1/s, orders-service ~0.5/s: ~135,000 requests a day,
//! ~3 million in all, a few seconds in release), each attack three times.
//! Both start with 8 attack-free days, which every principal needs to pass
//! its warm-up (the ML team makes ~4 requests a weekday).
//!
//! **Attacks** (`attacks.rs`): seven kinds at three intensities each —
//! bulk extraction of 500 / 5,000 / 50,000 rows of emails (one request);
//! enumeration by 20 / 100 / 1,000 single-customer lookups 0.5-3 s apart;
//! a first read of card numbers (1 / 20 / 500 rows); a first read of
//! another table (1 / 20 / 500 rows, unclassified columns); off-hours
//! bursts of 1 / 5 / 25 of the principal's normal requests between 22:00
//! and 05:00; the key used from 5 / 20 / 100 new addresses within 10-30
//! minutes; rate spikes of 5x / 20x / 100x the principal's usual rate of
//! its normal requests, for 20 minutes (services, the support agent) to 8
//! hours (principals with a few requests a day). Each against every demo
//! principal it applies to: off-hours only against people (services have
//! no off hours); not the 500-row extraction against marketing-service,
//! which lists up to 500 customers with their (masked) emails as its job,
//! so that read is no deviation at all. Attacks come from the target's
//! usual addresses (an insider or a compromised host; except
//! `many_addresses`) and replay its own query shapes where it has suitable
//! ones (the support agent's lookups and searches, marketing's list).
//!
//! **Measurement.** The detector runs over the normal traffic in time
//! order. When an attack episode starts, it is replayed against a copy of
//! the target's baseline at that moment, merged with the target's normal
//! traffic for the episode's duration; the copy is then thrown away. So
//! episodes do not leak into each other (one detected only because an
//! earlier one left the key's windows hot would inflate recall), and the
//! false-positive rate is that of a deployment that learned from normal
//! traffic only. Within an episode the detector does learn from the attack
//! requests that score low, as it would in production.
//!
//! A request is *flagged* when it scores at least [`THRESHOLD`] (0.5, the
//! default alert level). Per kind and overall:
//! - **recall**: episodes with at least one flagged attack request / all
//!   episodes. Per episode, because some attacks cannot be seen in their
//!   first requests (an enumeration is a number of lookups; the first of
//!   many new addresses is just a new address);
//! - **own**: detected episodes with a reason of the attack's own kind
//!   (a bulk read of emails by a principal that never reads emails is also,
//!   and first, a new sensitive column);
//! - **request recall**: flagged attack requests / attack requests;
//! - **precision**: flagged attack requests / all flagged requests (for a
//!   kind, false positives are attributed by their heaviest reason); it
//!   depends on how many attack requests are injected, so read it with the
//!   false-positive rate;
//! - **false-positive rate**: flagged normal requests / normal requests,
//!   counting requests scored after their principal's warm-up (training
//!   days included; requests scored in warm-up are reported separately).
//!
//! **What it cannot show.** The workload is synthetic: the figures say the
//! rules separate these attacks from this noise, not what a production
//! false-positive rate will be. Some accesses are, by construction,
//! indistinguishable from normal work and are not injected: a support
//! agent looking up customers one by one at a human pace, a 500-row read by
//! marketing-service through its own query. A legitimate first read of a
//! table or sensitive column (a new feature) alerts until it has been seen
//! for a day (`accept_after_hours`).

mod attacks;
mod workload;

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::assessment::AnomalyKind;
use crate::config::DetectorConfig;
use crate::detector::Detector;
use crate::features::RequestFeatures;

pub use attacks::ATTACK_KINDS;
use workload::{Principal, Traffic, DAY, START_MS};

/// Score from which a request counts as flagged.
pub const THRESHOLD: f64 = 0.5;

/// How much traffic to replay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// 10 days, 24/7 services at 1/20 of their rate, each attack once:
    /// for tests (about 100,000 requests).
    Short,
    /// 22 days at full rate, each attack three times.
    Full,
}

impl fmt::Display for Scale {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scale::Short => "short",
            Scale::Full => "full",
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Params {
    pub(crate) training_days: u32,
    pub(crate) test_days: u32,
    pub(crate) rate_scale: f64,
    pub(crate) repetitions: u32,
    /// Most requests of one rate-spike episode.
    pub(crate) spike_cap: usize,
}

impl Params {
    fn of(scale: Scale) -> Params {
        match scale {
            Scale::Short => Params {
                training_days: 8,
                test_days: 2,
                rate_scale: 0.05,
                repetitions: 1,
                spike_cap: 1_000,
            },
            Scale::Full => Params {
                training_days: 8,
                test_days: 14,
                rate_scale: 1.0,
                repetitions: 3,
                spike_cap: 5_000,
            },
        }
    }

    fn days(&self) -> u32 {
        self.training_days + self.test_days
    }
}

/// Counts for one attack kind, one intensity, or overall.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Tally {
    pub episodes: u64,
    /// Episodes with at least one flagged attack request.
    pub detected: u64,
    /// Detected episodes whose flagged requests include a reason of the
    /// attack's own kind.
    pub own_reason: u64,
    pub requests: u64,
    pub flagged: u64,
    /// Flagged normal requests attributed to this kind (by their heaviest
    /// reason); overall: all of them.
    pub false_positives: u64,
}

impl Tally {
    /// Per episode.
    pub fn recall(&self) -> f64 {
        ratio(self.detected, self.episodes)
    }

    pub fn request_recall(&self) -> f64 {
        ratio(self.flagged, self.requests)
    }

    pub fn precision(&self) -> f64 {
        ratio(self.flagged, self.flagged + self.false_positives)
    }

    fn add(&mut self, other: &Tally) {
        self.episodes += other.episodes;
        self.detected += other.detected;
        self.own_reason += other.own_reason;
        self.requests += other.requests;
        self.flagged += other.flagged;
        self.false_positives += other.false_positives;
    }
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        // Nothing to find or nothing flagged: nothing missed.
        1.0
    } else {
        a as f64 / b as f64
    }
}

/// One intensity of one kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntensityTally {
    pub kind: AnomalyKind,
    pub value: u64,
    pub unit: &'static str,
    pub tally: Tally,
}

/// Normal traffic of one principal.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PrincipalTally {
    /// Scored after warm-up.
    pub requests: u64,
    pub flagged: u64,
    pub warming_up: u64,
}

/// An attack episode no request of which was flagged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Missed {
    pub kind: AnomalyKind,
    pub value: u64,
    pub unit: &'static str,
    pub principal: &'static str,
    pub start_unix_ms: u64,
    /// Highest score among its requests.
    pub max_score: f64,
    /// Reasons of the highest-scoring request.
    pub reasons: Vec<String>,
}

/// What [`evaluate`] measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvaluationReport {
    pub seed: u64,
    pub scale: Scale,
    pub threshold: f64,
    pub days: u32,
    pub training_days: u32,
    /// Normal requests scored after their principal's warm-up.
    pub normal_requests: u64,
    pub false_positives: u64,
    /// Normal requests scored while their principal was warming up.
    pub normal_in_warmup: u64,
    /// Attack requests scored while their target was warming up (0 unless
    /// a principal was still warming up when the attacks started).
    pub attack_in_warmup: u64,
    pub by_principal: BTreeMap<&'static str, PrincipalTally>,
    /// False positives by heaviest reason.
    pub false_positives_by_reason: BTreeMap<AnomalyKind, u64>,
    /// Per attack kind, in [`ATTACK_KINDS`] order.
    pub kinds: Vec<(AnomalyKind, Tally)>,
    pub intensities: Vec<IntensityTally>,
    pub overall: Tally,
    pub missed: Vec<Missed>,
}

impl EvaluationReport {
    /// Flagged normal requests / normal requests (after warm-up).
    pub fn false_positive_rate(&self) -> f64 {
        if self.normal_requests == 0 {
            0.0
        } else {
            self.false_positives as f64 / self.normal_requests as f64
        }
    }

    pub fn kind(&self, kind: AnomalyKind) -> Option<&Tally> {
        self.kinds.iter().find(|(k, _)| *k == kind).map(|(_, t)| t)
    }
}

/// Replays the workload at `scale` with `seed` and measures the detector
/// with its default configuration. Deterministic: the same seed gives the
/// same report.
pub fn evaluate(seed: u64, scale: Scale) -> EvaluationReport {
    let params = Params::of(scale);
    let mut detector = Detector::new(DetectorConfig::default());
    let episodes = attacks::plan(seed, &params);
    let mut traffic = Traffic::new(seed, params.rate_scale);

    let mut report = EvaluationReport {
        seed,
        scale,
        threshold: THRESHOLD,
        days: params.days(),
        training_days: params.training_days,
        normal_requests: 0,
        false_positives: 0,
        normal_in_warmup: 0,
        attack_in_warmup: 0,
        by_principal: BTreeMap::new(),
        false_positives_by_reason: BTreeMap::new(),
        kinds: Vec::new(),
        intensities: Vec::new(),
        overall: Tally::default(),
        missed: Vec::new(),
    };
    let mut per_intensity: BTreeMap<(AnomalyKind, usize), Tally> = BTreeMap::new();

    let mut today = traffic.day(0);
    let mut tomorrow = traffic.day(1);
    let mut next = 0;
    for day in 0..u64::from(params.days()) {
        if day > 0 {
            today = std::mem::replace(&mut tomorrow, traffic.day(day + 1));
        }
        let day_end = START_MS + (day + 1) * DAY;
        for request in &today {
            while let Some(e) = episodes.get(next).filter(|e| e.start <= request.at_unix_ms) {
                let tally = per_intensity.entry((e.kind, e.intensity)).or_default();
                run_episode(
                    &detector,
                    e,
                    &params,
                    [&today, &tomorrow],
                    tally,
                    &mut report,
                );
                next += 1;
            }
            let a = detector.score(request);
            let name = principal_name(&request.principal);
            let entry = report.by_principal.entry(name).or_default();
            if a.warming_up() {
                report.normal_in_warmup += 1;
                entry.warming_up += 1;
                continue;
            }
            report.normal_requests += 1;
            entry.requests += 1;
            if a.score() >= THRESHOLD {
                report.false_positives += 1;
                entry.flagged += 1;
                if let Some(top) = a.top() {
                    *report
                        .false_positives_by_reason
                        .entry(top.kind)
                        .or_insert(0) += 1;
                }
            }
        }
        while let Some(e) = episodes.get(next).filter(|e| e.start < day_end) {
            let tally = per_intensity.entry((e.kind, e.intensity)).or_default();
            run_episode(
                &detector,
                e,
                &params,
                [&today, &tomorrow],
                tally,
                &mut report,
            );
            next += 1;
        }
    }

    // Episodes starting after the last scored request (a night at the end).
    for e in &episodes[next.min(episodes.len())..] {
        let tally = per_intensity.entry((e.kind, e.intensity)).or_default();
        run_episode(
            &detector,
            e,
            &params,
            [&today, &tomorrow],
            tally,
            &mut report,
        );
    }

    for kind in ATTACK_KINDS {
        let mut tally = Tally {
            false_positives: report
                .false_positives_by_reason
                .get(&kind)
                .copied()
                .unwrap_or(0),
            ..Tally::default()
        };
        let (values, unit) = attacks::intensities(kind);
        for (i, value) in values.iter().enumerate() {
            let t = per_intensity.remove(&(kind, i)).unwrap_or_default();
            tally.add(&t);
            report.intensities.push(IntensityTally {
                kind,
                value: *value,
                unit,
                tally: t,
            });
        }
        report.overall.add(&Tally {
            false_positives: 0,
            ..tally.clone()
        });
        report.kinds.push((kind, tally));
    }
    report.overall.false_positives = report.false_positives;
    report
}

fn principal_name(name: &str) -> &'static str {
    Principal::ALL
        .iter()
        .map(|p| p.name())
        .find(|n| *n == name)
        .unwrap_or("other")
}

/// Replays one episode against a copy of the target's baseline.
fn run_episode(
    detector: &Detector,
    e: &attacks::Episode,
    params: &Params,
    days: [&[RequestFeatures]; 2],
    tally: &mut Tally,
    report: &mut EvaluationReport,
) {
    let name = e.target.name();
    let mut fork = detector.fork(name);
    let attack = attacks::requests(e, params);
    let normal = days.iter().flat_map(|day| {
        let from = day.partition_point(|r| r.at_unix_ms < e.start);
        day[from..]
            .iter()
            .take_while(|r| r.at_unix_ms < e.end)
            .filter(|r| r.principal == name)
    });
    let mut normal = normal.peekable();

    tally.episodes += 1;
    let mut detected = false;
    let mut own = false;
    let mut best: Option<(f64, Vec<String>)> = None;
    for a in &attack {
        while let Some(n) = normal.next_if(|n| n.at_unix_ms < a.at_unix_ms) {
            fork.score(n);
        }
        let assessment = fork.score(a);
        tally.requests += 1;
        if assessment.warming_up() {
            report.attack_in_warmup += 1;
        }
        if assessment.score() >= THRESHOLD {
            tally.flagged += 1;
            detected = true;
            own |= assessment.reasons().iter().any(|r| r.kind == e.kind);
        }
        if best.as_ref().is_none_or(|(s, _)| assessment.score() > *s) {
            let reasons = assessment.reasons().iter().map(|r| r.to_string()).collect();
            best = Some((assessment.score(), reasons));
        }
    }
    if detected {
        tally.detected += 1;
        tally.own_reason += u64::from(own);
    } else {
        let (max_score, reasons) = best.unwrap_or_default();
        let (_, unit) = attacks::intensities(e.kind);
        report.missed.push(Missed {
            kind: e.kind,
            value: e.value(),
            unit,
            principal: name,
            start_unix_ms: e.start,
            max_score,
            reasons,
        });
    }
}

/// `days` days of the normal workload (no attacks), for benchmarks and
/// experiments.
pub fn normal_workload(seed: u64, scale: Scale, days: u32) -> Vec<RequestFeatures> {
    let params = Params::of(scale);
    let mut traffic = Traffic::new(seed, params.rate_scale);
    (0..u64::from(days)).flat_map(|d| traffic.day(d)).collect()
}

impl fmt::Display for EvaluationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "anomaly evaluation: seed {}, scale {}, {} days ({} attack-free training), threshold {:.2}",
            self.seed, self.scale, self.days, self.training_days, self.threshold
        )?;
        writeln!(
            f,
            "normal requests after warm-up: {}, flagged: {}, false-positive rate: {:.3}%  ({} more scored during warm-up)",
            self.normal_requests,
            self.false_positives,
            100.0 * self.false_positive_rate(),
            self.normal_in_warmup
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<22} {:>8} {:>8} {:>7} {:>6} {:>9} {:>8} {:>8} {:>7} {:>9}",
            "attack kind",
            "episodes",
            "detected",
            "recall",
            "own",
            "requests",
            "flagged",
            "req-rec",
            "FP",
            "precision"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, label: &str, t: &Tally| {
            writeln!(
                f,
                "{:<22} {:>8} {:>8} {:>7.3} {:>6} {:>9} {:>8} {:>8.3} {:>7} {:>9.3}",
                label,
                t.episodes,
                t.detected,
                t.recall(),
                t.own_reason,
                t.requests,
                t.flagged,
                t.request_recall(),
                t.false_positives,
                t.precision()
            )
        };
        for (kind, tally) in &self.kinds {
            row(f, kind.as_str(), tally)?;
        }
        row(f, "overall", &self.overall)?;
        writeln!(f)?;
        writeln!(f, "by intensity:")?;
        for i in &self.intensities {
            writeln!(
                f,
                "  {:<22} {:>7} {:<26} episodes {:>3}  detected {:>3}  recall {:.3}  request recall {:.3}",
                i.kind.as_str(),
                i.value,
                i.unit,
                i.tally.episodes,
                i.tally.detected,
                i.tally.recall(),
                i.tally.request_recall()
            )?;
        }
        writeln!(f)?;
        writeln!(f, "normal traffic by principal (after warm-up):")?;
        for (name, t) in &self.by_principal {
            writeln!(
                f,
                "  {:<20} requests {:>9}  flagged {:>5}  ({:.3}%)  in warm-up {:>6}",
                name,
                t.requests,
                t.flagged,
                100.0 * ratio(t.flagged, t.requests.max(1)),
                t.warming_up
            )?;
        }
        if !self.false_positives_by_reason.is_empty() {
            let list: Vec<String> = self
                .false_positives_by_reason
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(f, "false positives by heaviest reason: {}", list.join(", "))?;
        }
        if self.attack_in_warmup > 0 {
            writeln!(
                f,
                "attack requests scored while their target was warming up: {}",
                self.attack_in_warmup
            )?;
        }
        if !self.missed.is_empty() {
            writeln!(f)?;
            writeln!(f, "missed episodes:")?;
            for m in &self.missed {
                let t = m.start_unix_ms.saturating_sub(START_MS);
                writeln!(
                    f,
                    "  {} {} {} against {} (day {} {:02}:{:02} UTC): max score {:.2}{}{}",
                    m.kind,
                    m.value,
                    m.unit,
                    m.principal,
                    t / DAY,
                    (t % DAY) / workload::HOUR,
                    (t % workload::HOUR) / workload::MIN,
                    m.max_score,
                    if m.reasons.is_empty() { "" } else { "; " },
                    m.reasons.join("; ")
                )?;
            }
        }
        Ok(())
    }
}
