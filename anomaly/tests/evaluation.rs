//! The targets, measured on the synthetic workload: recall >= 0.95
//! over the injected attacks (overall and per kind, per episode), false
//! positive rate <= 1% of normal requests.

use anomaly::evaluate::{evaluate, normal_workload, Scale, ATTACK_KINDS};

#[test]
fn short_evaluation_meets_the_recall_and_false_positive_targets() {
    let report = evaluate(7, Scale::Short);
    println!("{report}");

    // The run measured something: every kind was injected, and there was
    // normal traffic after warm-up.
    assert!(
        report.normal_requests > 50_000,
        "{}",
        report.normal_requests
    );
    assert_eq!(report.kinds.len(), ATTACK_KINDS.len());
    for (kind, tally) in &report.kinds {
        assert!(tally.episodes >= 9, "{kind}: {} episodes", tally.episodes);
        assert!(
            tally.recall() >= 0.95,
            "{kind}: recall {:.3} ({} of {} episodes)",
            tally.recall(),
            tally.detected,
            tally.episodes
        );
    }
    assert!(
        report.overall.recall() >= 0.95,
        "{:.3}",
        report.overall.recall()
    );
    assert!(
        report.false_positive_rate() <= 0.01,
        "false-positive rate {:.4}",
        report.false_positive_rate()
    );
    assert_eq!(
        report.attack_in_warmup, 0,
        "attacks started after every warm-up"
    );
    // The printed table carries the figures.
    let text = report.to_string();
    for kind in ATTACK_KINDS {
        assert!(text.contains(kind.as_str()));
    }
    assert!(text.contains("false-positive rate"));
}

#[test]
fn the_workload_is_deterministic_per_seed() {
    let a = normal_workload(3, Scale::Short, 2);
    let b = normal_workload(3, Scale::Short, 2);
    let c = normal_workload(4, Scale::Short, 2);
    assert!(a.len() > 5_000);
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert!(a.windows(2).all(|w| w[0].at_unix_ms <= w[1].at_unix_ms));
}
