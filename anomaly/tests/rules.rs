//! Each rule fires on its attack shape and not on the normal shape, after a
//! warm-up on normal traffic. The attacks here would pass every hard limit:
//! only the learned baseline tells them apart.

mod common;

use anomaly::{AnomalyKind as K, Classification as C, Detector, Subjects};
use common::*;

/// A service reading 50-200 customers (ids and emails) every 30 s around
/// the clock from two addresses with two query shapes, for three days.
/// Returns when it stopped.
fn warm_service(d: &mut Detector) -> u64 {
    let end = T0 + 3 * DAY;
    let max = run(d, T0, end, 30 * SEC, None, normal_service);
    assert!(max < 0.5, "normal traffic scored {max}");
    end
}

fn normal_service(i: u64, at: u64) -> Req {
    let rows = 50 + (i * 37) % 151;
    req("svc", at)
        .from(ip(1 + (i % 2) as u8))
        .rows(rows, Subjects::Many(rows))
        .shape(1 + i % 2)
}

/// A person looking up single customers (each three times, one after
/// another) every 2 minutes, 09-17 on weekdays, for a week. Returns Monday
/// 00:00 of the next week.
fn warm_agent(d: &mut Detector) -> u64 {
    let end = T0 + 7 * DAY;
    let max = run(d, T0, end, 2 * MIN, Some((9, 17)), |i, at| {
        req("agent", at).rows(1, Subjects::One(i / 3))
    });
    assert!(max < 0.5, "normal traffic scored {max}");
    end
}

#[test]
fn bulk_extraction_of_emails_below_the_hard_limit_is_flagged() {
    let mut d = detector();
    let now = warm_service(&mut d);
    let normal = normal_service(0, now).score(&mut d);
    assert!(normal.score() < 0.5, "{:?}", kinds(&normal));
    assert!(!has(&normal, K::BulkExtraction));

    // 5,000 rows of emails: half the hard limit, 25x the usual.
    let attack = normal_service(1, now + SEC)
        .rows(5_000, Subjects::Many(5_000))
        .score(&mut d);
    assert!(attack.score() >= 0.5, "{:?}", kinds(&attack));
    assert_eq!(attack.top().map(|r| r.kind), Some(K::BulkExtraction));
    let detail = &attack.top().map(|r| r.detail.clone()).unwrap_or_default();
    assert!(detail.contains("5,000 rows with email"), "{detail}");
}

#[test]
fn the_hard_bulk_rule_fires_during_warm_up() {
    let mut d = detector();
    let first = req("new-key", T0)
        .rows(20_000, Subjects::Many(20_000))
        .score(&mut d);
    assert!(first.warming_up());
    assert!(first.score() >= 0.5);
    assert!(has(&first, K::BulkExtraction));
    // The same volume of pseudonymous identifiers is no bulk extraction.
    let ids = req("new-key", T0 + SEC)
        .columns(&[("customers.id", C::Identifier)])
        .rows(20_000, Subjects::Many(20_000))
        .score(&mut d);
    assert_eq!(ids.score(), 0.0, "{:?}", kinds(&ids));
}

#[test]
fn large_pseudonymous_reads_are_noted_but_not_alerted() {
    let mut d = detector();
    let now = warm_service(&mut d);
    let a = normal_service(0, now)
        .columns(&[("customers.id", C::Identifier)])
        .rows(50_000, Subjects::Many(50_000))
        .score(&mut d);
    assert!(has(&a, K::UnusualVolume), "{:?}", kinds(&a));
    assert!(!has(&a, K::BulkExtraction));
    assert!(a.score() < 0.5);
}

#[test]
fn enumeration_of_single_customers_is_flagged_after_a_few_lookups() {
    let mut d = detector();
    let monday = warm_agent(&mut d);
    let at = monday + 10 * HOUR;
    let normal = req("agent", at).rows(1, Subjects::One(1)).score(&mut d);
    assert!(normal.score() < 0.5);

    // 40 different customers, one every 2 seconds: each request alone is
    // the agent's ordinary lookup.
    let scores: Vec<f64> = (0..40)
        .map(|k| {
            req("agent", at + MIN + k * 2 * SEC)
                .rows(1, Subjects::One(1_000_000 + k))
                .score(&mut d)
                .score()
        })
        .collect();
    assert!(scores[..5].iter().all(|s| *s < 0.5), "{scores:?}");
    let first = scores.iter().position(|s| *s >= 0.5);
    assert!(first.is_some_and(|i| i < 25), "{scores:?}");
    let last = req("agent", at + 3 * MIN)
        .rows(1, Subjects::One(2_000_000))
        .score(&mut d);
    assert!(has(&last, K::Enumeration), "{:?}", kinds(&last));
}

#[test]
fn a_new_sensitive_column_is_flagged() {
    let mut d = detector();
    let now = warm_service(&mut d);
    let a = normal_service(0, now)
        .columns(&[
            ("customers.id", C::Identifier),
            ("customers.email", C::Email),
            ("customers.phone", C::Phone),
        ])
        .score(&mut d);
    assert!(a.score() >= 0.5, "{:?}", kinds(&a));
    assert_eq!(a.top().map(|r| r.kind), Some(K::NewSensitiveColumn));
    assert!(!has(&a, K::NewTable));
    // Card numbers weigh more than a phone number.
    let cards = normal_service(1, now + SEC)
        .tables(&["payments"])
        .columns(&[("payments.card_number", C::Card)])
        .score(&mut d);
    let weight = |a: &anomaly::Assessment| {
        a.reasons()
            .iter()
            .find(|r| r.kind == K::NewSensitiveColumn)
            .map_or(0.0, |r| r.weight)
    };
    assert!(weight(&cards) > weight(&a));
    assert!(has(&cards, K::NewTable));
}

#[test]
fn a_new_table_is_flagged() {
    let mut d = detector();
    let now = warm_service(&mut d);
    let a = normal_service(0, now)
        .tables(&["reviews"])
        .columns(&[])
        .rows(1, Subjects::None)
        .shape(99)
        .score(&mut d);
    assert!(a.score() >= 0.5, "{:?}", kinds(&a));
    assert!(has(&a, K::NewTable));
    let normal = normal_service(1, now + SEC).score(&mut d);
    assert!(!has(&normal, K::NewTable));
}

#[test]
fn off_hours_access_is_flagged_for_a_person_not_for_a_service() {
    let mut d = detector();
    let monday = warm_agent(&mut d);
    let day = req("agent", monday + 10 * HOUR).score(&mut d);
    assert!(day.score() < 0.5, "{:?}", kinds(&day));
    // The same ordinary lookup at 03:00.
    let night = req("agent", monday + DAY + 3 * HOUR).score(&mut d);
    assert!(night.score() >= 0.5, "{:?}", kinds(&night));
    assert_eq!(night.top().map(|r| r.kind), Some(K::OffHours));

    let mut d = detector();
    let now = warm_service(&mut d);
    let at_three = now - now % DAY + DAY + 3 * HOUR;
    let service = normal_service(0, at_three).score(&mut d);
    assert!(!has(&service, K::OffHours));
}

#[test]
fn one_key_from_many_new_addresses_is_flagged() {
    let mut d = detector();
    let now = warm_service(&mut d);
    // One new address (a moved pod): fine.
    let moved = normal_service(0, now).from(ip(50)).score(&mut d);
    assert!(moved.score() < 0.5, "{:?}", kinds(&moved));
    // Five more within ten minutes, each sending an ordinary request.
    let scores: Vec<anomaly::Assessment> = (0..5)
        .map(|k| {
            normal_service(k, now + (k + 1) * 2 * MIN)
                .from(ip(100 + k as u8))
                .score(&mut d)
        })
        .collect();
    let last = scores.last().map(|a| a.score()).unwrap_or(0.0);
    assert!(
        last >= 0.5,
        "{:?}",
        scores.iter().map(kinds).collect::<Vec<_>>()
    );
    assert!(scores.iter().any(|a| has(a, K::ManyAddresses)));
}

#[test]
fn a_rate_spike_is_flagged_and_normal_jitter_is_not() {
    let mut d = detector();
    let now = warm_service(&mut d);
    // 1.5x for five minutes: not a spike.
    let jitter = run(&mut d, now, now + 5 * MIN, 20 * SEC, None, |i, at| {
        normal_service(i, at)
    });
    assert!(jitter < 0.5, "{jitter}");
    // Then one request a second (30x) for five minutes.
    let spike = run(
        &mut d,
        now + 10 * MIN,
        now + 15 * MIN,
        SEC,
        None,
        normal_service,
    );
    assert!(spike >= 0.5, "{spike}");
    let last = normal_service(0, now + 15 * MIN).score(&mut d);
    assert!(has(&last, K::RateSpike), "{:?}", kinds(&last));
}

#[test]
fn a_novel_query_shape_is_noted_once_and_learned() {
    let mut d = detector();
    let now = warm_service(&mut d);
    let first = normal_service(0, now).shape(77).score(&mut d);
    assert!(has(&first, K::NovelQueryShape));
    assert!(first.score() < 0.5, "a new shape alone is no alert");
    let again = normal_service(0, now + SEC).shape(77).score(&mut d);
    assert!(!has(&again, K::NovelQueryShape));
}

#[test]
fn a_slowly_growing_extraction_is_caught_before_it_gets_far() {
    let mut d = detector();
    let now = warm_service(&mut d);
    // Each request 1.5x the previous: every step looks only a little
    // larger than the last.
    let mut rows = 200.0f64;
    let mut caught_at = None;
    for k in 0..30 {
        let n = rows as u64;
        let a = normal_service(k, now + k * 30 * SEC)
            .rows(n, Subjects::Many(n))
            .score(&mut d);
        if a.score() >= 0.5 {
            caught_at = Some(n);
            break;
        }
        rows *= 1.5;
    }
    // Normal results go up to 200 rows.
    assert!(caught_at.is_some_and(|n| n <= 2_000), "{caught_at:?}");
}

#[test]
fn a_busy_day_of_a_principal_that_sends_a_few_requests_a_day_is_a_rate_spike() {
    // Two sessions of three counts a day, on weekdays, for two weeks.
    let mut d = detector();
    let mut max: f64 = 0.0;
    for day in 0..14 {
        if day % 7 >= 5 {
            continue;
        }
        for session in [10, 14] {
            for k in 0..3 {
                let at = T0 + day * DAY + session * HOUR + k * MIN;
                let a = req("rare", at)
                    .tables(&["orders"])
                    .columns(&[])
                    .rows(1, Subjects::None)
                    .score(&mut d);
                max = max.max(a.score());
            }
        }
    }
    assert!(max < 0.5, "{max}");
    // Then five times that: 30 ordinary requests spread over the working
    // day, each alone unremarkable. Every one that scores low is learned:
    // they must not teach the detector faster than it notices.
    let monday = T0 + 14 * DAY;
    let scores: Vec<f64> = (0..30)
        .map(|k| {
            let at = monday + 9 * HOUR + k * 16 * MIN;
            req("rare", at)
                .tables(&["orders"])
                .columns(&[])
                .rows(1, Subjects::None)
                .score(&mut d)
                .score()
        })
        .collect();
    let first = scores.iter().position(|s| *s >= 0.5);
    assert!(first.is_some_and(|i| i < 20), "{scores:?}");
}
