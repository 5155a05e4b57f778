//! What the gateway does about a score: [`Action`], chosen by a per-principal
//! [`ActionPolicy`] from [`ActionPolicies`].
//!
//! In privet.toml (the gateway maps its config onto these types):
//!
//! ```toml
//! [anomaly.actions]
//! default = [
//!   { threshold = 0.3, action = "log" },
//!   { threshold = 0.5, action = "alert" },
//!   { threshold = 0.8, action = "throttle", retry_after_secs = 60 },
//! ]
//! [anomaly.actions.principals]
//! admin = [{ threshold = 0.5, action = "block" }]
//! ```

use std::collections::BTreeMap;
use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use crate::config::Threshold;

/// What to do with a request that scored at least a rule's threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Record the score and reasons in the audit event only.
    Log,
    /// Also raise an alert (log line, metric) for a human to look at.
    Alert,
    /// Refuse with 429 Too Many Requests and this `Retry-After`.
    Throttle { retry_after_secs: NonZeroU32 },
    /// Refuse the request.
    Block,
}

impl Action {
    /// The audit log's name of the action (`log`, `alert`, `throttle`,
    /// `block`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Log => "log",
            Action::Alert => "alert",
            Action::Throttle { .. } => "throttle",
            Action::Block => "block",
        }
    }

    /// Whether the request must be refused.
    pub fn refuses(self) -> bool {
        matches!(self, Action::Throttle { .. } | Action::Block)
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a ladder: `action` from `threshold` on. Written flat:
/// `{ threshold = 0.8, action = "throttle", retry_after_secs = 60 }`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RuleRepr", into = "RuleRepr")]
pub struct ActionRule {
    pub threshold: Threshold,
    pub action: Action,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ActionName {
    Log,
    Alert,
    Throttle,
    Block,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleRepr {
    threshold: Threshold,
    action: ActionName,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    retry_after_secs: Option<NonZeroU32>,
}

impl TryFrom<RuleRepr> for ActionRule {
    type Error = &'static str;
    fn try_from(r: RuleRepr) -> Result<Self, Self::Error> {
        let action = match (r.action, r.retry_after_secs) {
            (ActionName::Throttle, Some(retry_after_secs)) => Action::Throttle { retry_after_secs },
            (ActionName::Throttle, None) => return Err("throttle needs retry_after_secs"),
            (_, Some(_)) => return Err("only throttle takes retry_after_secs"),
            (ActionName::Log, None) => Action::Log,
            (ActionName::Alert, None) => Action::Alert,
            (ActionName::Block, None) => Action::Block,
        };
        Ok(ActionRule {
            threshold: r.threshold,
            action,
        })
    }
}

impl From<ActionRule> for RuleRepr {
    fn from(rule: ActionRule) -> Self {
        let (action, retry_after_secs) = match rule.action {
            Action::Log => (ActionName::Log, None),
            Action::Alert => (ActionName::Alert, None),
            Action::Throttle { retry_after_secs } => (ActionName::Throttle, Some(retry_after_secs)),
            Action::Block => (ActionName::Block, None),
        };
        RuleRepr {
            threshold: rule.threshold,
            action,
            retry_after_secs,
        }
    }
}

/// Rules of one principal, kept sorted by threshold: a score gets the
/// action of the highest threshold it reaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "Vec<ActionRule>", into = "Vec<ActionRule>")]
pub struct ActionPolicy {
    rules: Vec<ActionRule>,
}

impl ActionPolicy {
    pub fn new(rules: impl IntoIterator<Item = ActionRule>) -> ActionPolicy {
        let mut rules: Vec<ActionRule> = rules.into_iter().collect();
        // Stable: with equal thresholds the later rule wins, as written.
        rules.sort_by(|a, b| a.threshold.get().total_cmp(&b.threshold.get()));
        ActionPolicy { rules }
    }

    /// The action for `score`, or `None` below every threshold.
    pub fn decide(&self, score: f64) -> Option<Action> {
        self.rules
            .iter()
            .rev()
            .find(|rule| score >= rule.threshold.get())
            .map(|rule| rule.action)
    }

    pub fn rules(&self) -> &[ActionRule] {
        &self.rules
    }
}

impl Default for ActionPolicy {
    /// Log from 0.3, alert from 0.5, throttle for a minute from 0.8. No
    /// block: refusing every request of a key on a statistical signal is a
    /// decision for the operator to write down.
    fn default() -> Self {
        const MINUTE: NonZeroU32 = NonZeroU32::new(60).unwrap();
        ActionPolicy::new([
            ActionRule {
                threshold: const { Threshold::constant(0.3) },
                action: Action::Log,
            },
            ActionRule {
                threshold: Threshold::HALF,
                action: Action::Alert,
            },
            ActionRule {
                threshold: const { Threshold::constant(0.8) },
                action: Action::Throttle {
                    retry_after_secs: MINUTE,
                },
            },
        ])
    }
}

impl From<Vec<ActionRule>> for ActionPolicy {
    fn from(rules: Vec<ActionRule>) -> Self {
        ActionPolicy::new(rules)
    }
}

impl From<ActionPolicy> for Vec<ActionRule> {
    fn from(policy: ActionPolicy) -> Self {
        policy.rules
    }
}

/// The default policy and per-principal overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionPolicies {
    pub default: ActionPolicy,
    /// Replace (not extend) the default for these principals.
    pub principals: BTreeMap<String, ActionPolicy>,
}

impl ActionPolicies {
    pub fn policy_for(&self, principal: &str) -> &ActionPolicy {
        self.principals.get(principal).unwrap_or(&self.default)
    }

    pub fn decide(&self, principal: &str, score: f64) -> Option<Action> {
        self.policy_for(principal).decide(score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_threshold_reached_wins() {
        let policy = ActionPolicy::default();
        assert_eq!(policy.decide(0.1), None);
        assert_eq!(policy.decide(0.3), Some(Action::Log));
        assert_eq!(policy.decide(0.6), Some(Action::Alert));
        assert_eq!(policy.decide(1.0).map(Action::as_str), Some("throttle"));
    }

    #[test]
    fn per_principal_policies_parse_from_json_and_replace_the_default() {
        let json = r#"{
            "principals": {
                "admin": [
                    {"threshold": 0.9, "action": "block"},
                    {"threshold": 0.4, "action": "throttle", "retry_after_secs": 30}
                ]
            }
        }"#;
        let policies: ActionPolicies = serde_json::from_str(json).unwrap();
        assert_eq!(policies.decide("admin", 0.3), None);
        assert_eq!(
            policies.decide("admin", 0.5),
            Some(Action::Throttle {
                retry_after_secs: NonZeroU32::new(30).unwrap()
            })
        );
        assert_eq!(policies.decide("admin", 0.95), Some(Action::Block));
        assert_eq!(policies.decide("recs-service", 0.5), Some(Action::Alert));
        let back: ActionPolicies =
            serde_json::from_str(&serde_json::to_string(&policies).unwrap()).unwrap();
        assert_eq!(back, policies);
    }

    #[test]
    fn invalid_rules_are_rejected() {
        for bad in [
            r#"[{"threshold": 1.5, "action": "log"}]"#,
            r#"[{"threshold": 0.5, "action": "throttle"}]"#,
            r#"[{"threshold": 0.5, "action": "throttle", "retry_after_secs": 0}]"#,
            r#"[{"threshold": 0.5, "action": "shout"}]"#,
            r#"[{"threshold": 0.5, "action": "log", "retry_after_secs": 5}]"#,
            r#"[{"threshold": 0.5, "action": "log", "colour": "red"}]"#,
        ] {
            assert!(serde_json::from_str::<ActionPolicy>(bad).is_err(), "{bad}");
        }
    }
}
