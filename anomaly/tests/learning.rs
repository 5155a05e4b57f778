//! Warm-up, what the baseline learns from, risk, and persistence.

mod common;

use std::fs;

use anomaly::{AnomalyKind as K, Detector, DetectorConfig, StateError, Subjects, STATE_VERSION};
use common::*;

#[test]
fn during_warm_up_only_hard_rules_fire_and_warm_up_needs_requests_and_time() {
    let mut d = detector();
    // Every request reads a table it never read: all of it is learning.
    for k in 0..30u64 {
        let table = format!("table_{k}");
        let a = req("fresh", T0 + k * MIN)
            .tables(&[&table])
            .shape(k)
            .score(&mut d);
        assert!(a.warming_up());
        assert_eq!(a.score(), 0.0, "{:?}", kinds(&a));
    }
    // Enough requests, not enough time.
    assert!(!d.is_warm("fresh", T0 + HOUR));
    // Enough time.
    assert!(d.is_warm("fresh", T0 + DAY));
    let a = req("fresh", T0 + DAY).tables(&["never_seen"]).score(&mut d);
    assert!(!a.warming_up());
    assert!(has(&a, K::NewTable), "{:?}", kinds(&a));

    // Enough time, not enough requests.
    let mut d = detector();
    req("rare", T0).score(&mut d);
    req("rare", T0 + 2 * DAY).score(&mut d);
    assert!(!d.is_warm("rare", T0 + 3 * DAY));
    let config = DetectorConfig {
        warmup_requests: 2,
        ..DetectorConfig::default()
    };
    let mut d = Detector::new(config);
    req("rare", T0).score(&mut d);
    req("rare", T0 + 2 * DAY).score(&mut d);
    assert!(d.is_warm("rare", T0 + 3 * DAY));
}

fn warm(d: &mut Detector) -> u64 {
    let end = T0 + 2 * DAY;
    run(d, T0, end, MIN, None, |i, at| {
        req("svc", at).rows(20, Subjects::Many(20)).shape(i % 3)
    });
    end
}

#[test]
fn flagged_requests_do_not_teach_the_baseline_until_they_persist_for_a_day() {
    let mut d = detector();
    let now = warm(&mut d);
    let new_table = |d: &mut Detector, at| req("svc", at).tables(&["payments"]).score(d);
    // Repeated within the hour: still new every time.
    for k in 0..10 {
        let a = new_table(&mut d, now + k * MIN);
        assert!(
            a.score() >= 0.5 && has(&a, K::NewTable),
            "{k}: {:?}",
            kinds(&a)
        );
    }
    // Still in use a day later: accepted as the principal's new normal.
    let later = now + DAY + HOUR;
    new_table(&mut d, later);
    let a = new_table(&mut d, later + MIN);
    assert!(!has(&a, K::NewTable), "{:?}", kinds(&a));
}

#[test]
fn risk_is_the_recent_score_halving_every_ten_minutes() {
    let mut d = detector();
    let now = warm(&mut d);
    assert_eq!(d.risk("svc", now), 0.0);
    assert_eq!(d.risk("nobody", now), 0.0);
    let a = req("svc", now).tables(&["payments"]).score(&mut d);
    assert!(a.score() >= 0.5);
    assert!((d.risk("svc", now) - a.score()).abs() < 1e-9);
    let later = d.risk("svc", now + 10 * MIN);
    assert!((later - a.score() / 2.0).abs() < 1e-9, "{later}");
}

/// A warm detector with a few principals, and a sequence of requests to
/// score next (normal and not).
fn scenario() -> (Detector, Vec<Req>) {
    let mut d = detector();
    let now = warm(&mut d);
    run(&mut d, T0, now, 2 * MIN, Some((9, 17)), |i, at| {
        req("agent", at).rows(1, Subjects::One(i / 3))
    });
    let next = vec![
        req("svc", now).rows(20, Subjects::Many(20)),
        req("svc", now + SEC).tables(&["payments"]),
        req("svc", now + 2 * SEC).rows(9_000, Subjects::Many(9_000)),
        req("agent", now + 3 * HOUR).rows(1, Subjects::One(5)),
        req("agent", now + 10 * HOUR).rows(1, Subjects::One(6)),
        req("svc", now + 3 * MIN).from(ip(77)).shape(1234),
    ];
    (d, next)
}

#[test]
fn a_saved_and_loaded_detector_scores_exactly_like_the_original() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("anomaly.json");
    let (mut original, next) = scenario();
    original.save(&path).unwrap();
    let mut loaded = Detector::load(DetectorConfig::default(), &path).unwrap();
    let mut principals: Vec<&str> = loaded.principals().collect();
    principals.sort_unstable();
    assert_eq!(principals, ["agent", "svc"]);
    let mut flagged = 0;
    for r in &next {
        let a = r.score(&mut original);
        let b = r.score(&mut loaded);
        // JSON keeps floats to within an ulp.
        assert!((a.score() - b.score()).abs() < 1e-9, "{a:?} vs {b:?}");
        assert_eq!(kinds(&a), kinds(&b));
        assert_eq!(a.warming_up(), b.warming_up());
        flagged += usize::from(a.score() >= 0.5);
    }
    assert!(flagged >= 2, "the scenario exercises the rules");
    // Saving again over the old file works and leaves no temporary file.
    loaded.save(&path).unwrap();
    let names: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["anomaly.json"]);
}

#[test]
fn unreadable_or_corrupt_state_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("anomaly.json");
    let config = DetectorConfig::default;

    let missing = Detector::load(config(), &path);
    assert!(
        matches!(missing, Err(StateError::NotFound { .. })),
        "{missing:?}"
    );

    let (d, _) = scenario();
    d.save(&path).unwrap();
    let good = fs::read(&path).unwrap();

    fs::write(&path, &good[..good.len() / 2]).unwrap();
    let truncated = Detector::load(config(), &path);
    assert!(
        matches!(truncated, Err(StateError::Corrupt { .. })),
        "{truncated:?}"
    );

    fs::write(&path, b"not json at all").unwrap();
    assert!(matches!(
        Detector::load(config(), &path),
        Err(StateError::Corrupt { .. })
    ));

    let text = String::from_utf8(good.clone()).unwrap();
    let other_version = text.replacen(
        &format!("\"version\":{STATE_VERSION}"),
        &format!("\"version\":{}", STATE_VERSION + 1),
        1,
    );
    fs::write(&path, other_version).unwrap();
    let err = Detector::load(config(), &path).unwrap_err();
    assert!(matches!(err, StateError::Version { found, .. } if found == STATE_VERSION + 1));
    assert!(err.to_string().contains("version"));

    // Well-formed JSON that breaks an invariant: a one-hour window of 3
    // minutes.
    let start = text.find("\"minutes\":{\"slots\":[").unwrap() + "\"minutes\":{\"slots\":[".len();
    let end = start + text[start..].find(']').unwrap();
    let broken = format!("{}0,0,0{}", &text[..start], &text[end..]);
    fs::write(&path, broken).unwrap();
    let err = Detector::load(config(), &path).unwrap_err();
    assert!(matches!(err, StateError::Corrupt { .. }), "{err:?}");

    // A directory where the file should be is unreadable, not missing.
    let dir_path = dir.path().join("a-directory");
    fs::create_dir(&dir_path).unwrap();
    assert!(matches!(
        Detector::load(config(), &dir_path),
        Err(StateError::Read { .. })
    ));
    // Saving into a missing directory fails cleanly.
    let nowhere = dir.path().join("missing").join("anomaly.json");
    assert!(matches!(d.save(&nowhere), Err(StateError::Write { .. })));
}

#[test]
fn state_stays_bounded_under_a_flood_of_new_shapes_addresses_and_subjects() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("anomaly.json");
    let mut d = detector();
    let now = warm(&mut d);
    let flood = |d: &mut Detector, from: u64, n: u64| {
        for k in from..from + n {
            let source = std::net::IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + k as u32));
            let table = format!("t{k}");
            let column = format!("t{k}.c");
            req("svc", now + k * SEC)
                .from(source)
                .tables(&[&table])
                .columns(&[(&column, anomaly::Classification::Email)])
                .rows(1, Subjects::One(k))
                .shape(1_000_000 + k)
                .score(d);
        }
    };
    flood(&mut d, 0, 2_000);
    d.save(&path).unwrap();
    let after_2k = fs::metadata(&path).unwrap().len();
    flood(&mut d, 2_000, 8_000);
    d.save(&path).unwrap();
    let after_10k = fs::metadata(&path).unwrap().len();
    assert!(
        after_10k < after_2k + after_2k / 5,
        "{after_2k} bytes after 2,000 new items, {after_10k} after 10,000"
    );
    // The flood was evicted before the items the principal uses.
    let a = req("svc", now + 3 * HOUR)
        .rows(20, Subjects::Many(20))
        .shape(1)
        .score(&mut d);
    assert!(
        !has(&a, K::NewTable) && !has(&a, K::NovelQueryShape),
        "{:?}",
        kinds(&a)
    );
}
