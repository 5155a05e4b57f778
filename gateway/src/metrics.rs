//! Prometheus metrics in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Histogram bucket upper bounds, in seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// Request counters and the latency histogram.
#[derive(Default)]
pub struct Metrics {
    /// (principal, outcome) → count. Cardinality is bounded: principals come
    /// from the config (plus "anonymous"), outcomes from the error codes.
    requests: Mutex<BTreeMap<(String, &'static str), u64>>,
    /// (anomaly kind, action) → count; both from fixed sets.
    anomalies: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    buckets: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl Metrics {
    /// Records one handled request.
    pub fn observe(&self, principal: &str, outcome: &'static str, elapsed: Duration) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((principal.to_string(), outcome))
            .or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }

    /// Records an anomalous request: one count per reason kind, with the
    /// action taken (`none` when no rung was reached).
    pub fn anomaly(&self, kinds: impl IntoIterator<Item = &'static str>, action: &'static str) {
        let mut anomalies = self.anomalies.lock().unwrap_or_else(|p| p.into_inner());
        for kind in kinds {
            *anomalies.entry((kind, action)).or_default() += 1;
        }
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP privet_requests_total Requests handled, by principal and outcome (ok or the error code).\n");
        out.push_str("# TYPE privet_requests_total counter\n");
        for ((principal, outcome), n) in self
            .requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "privet_requests_total{{principal=\"{}\",outcome=\"{}\"}} {n}",
                escape(principal),
                escape(outcome)
            );
        }
        out.push_str("# HELP privet_request_duration_seconds Time from receiving a request to having its response ready.\n");
        out.push_str("# TYPE privet_request_duration_seconds histogram\n");
        for (bound, bucket) in BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "privet_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.load(Ordering::Relaxed)
            );
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "privet_request_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let _ = writeln!(out, "privet_request_duration_seconds_sum {sum}");
        let _ = writeln!(out, "privet_request_duration_seconds_count {count}");
        out.push_str("# HELP privet_anomalies_total Requests the anomaly detector flagged, by reason kind and the action taken.\n");
        out.push_str("# TYPE privet_anomalies_total counter\n");
        for ((kind, action), n) in self
            .anomalies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            let _ = writeln!(
                out,
                "privet_anomalies_total{{kind=\"{kind}\",action=\"{action}\"}} {n}"
            );
        }
        out
    }
}

/// Escapes a label value: backslash, double quote and newline.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_cumulative_buckets() {
        let m = Metrics::default();
        m.observe("recs-service", "ok", Duration::from_micros(300));
        m.observe("recs-service", "ok", Duration::from_millis(20));
        m.observe("anonymous", "unauthenticated", Duration::from_secs(10));
        let text = m.render();
        assert!(
            text.contains("privet_requests_total{principal=\"recs-service\",outcome=\"ok\"} 2\n"),
            "{text}"
        );
        assert!(text.contains(
            "privet_requests_total{principal=\"anonymous\",outcome=\"unauthenticated\"} 1\n"
        ));
        assert!(
            text.contains("privet_request_duration_seconds_bucket{le=\"0.0005\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("privet_request_duration_seconds_bucket{le=\"0.025\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("privet_request_duration_seconds_bucket{le=\"5\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("privet_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("privet_request_duration_seconds_count 3\n"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
