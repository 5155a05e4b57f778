//! Anomaly detection: per-principal baselines and rules (being written).
