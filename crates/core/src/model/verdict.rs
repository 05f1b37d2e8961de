//! What a gate decides. A gate returns a [`Verdict`]; an `Err` from a gate
//! means "could not evaluate", which every caller treats as a failure
//! (gates fail closed).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Warn,
    Fail,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "pass",
            Outcome::Warn => "warn",
            Outcome::Fail => "fail",
        })
    }
}

/// One thing a gate found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Rule (or check) that produced it, e.g. `images-by-digest`.
    pub rule: String,
    /// What it is about: `Deployment/demo in demo-dev`, an image digest…
    pub subject: String,
    pub message: String,
    /// Whether it fails the gate (false: reported as a warning).
    pub enforced: bool,
    /// When a warning turns into a failure, for phased rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforced_from: Option<String>,
}

/// A gate's decision with its evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub gate: &'static str,
    pub outcome: Outcome,
    pub findings: Vec<Finding>,
}

impl Verdict {
    /// The outcome the findings imply: any enforced finding fails, any
    /// other warns, none passes.
    pub fn from_findings(gate: &'static str, findings: Vec<Finding>) -> Self {
        let outcome = if findings.iter().any(|f| f.enforced) {
            Outcome::Fail
        } else if findings.is_empty() {
            Outcome::Pass
        } else {
            Outcome::Warn
        };
        Self {
            gate,
            outcome,
            findings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(enforced: bool) -> Finding {
        Finding {
            rule: "r".into(),
            subject: "s".into(),
            message: "m".into(),
            enforced,
            enforced_from: None,
        }
    }

    #[test]
    fn outcome_follows_the_worst_finding() {
        assert_eq!(Verdict::from_findings("g", vec![]).outcome, Outcome::Pass);
        assert_eq!(
            Verdict::from_findings("g", vec![f(false)]).outcome,
            Outcome::Warn
        );
        assert_eq!(
            Verdict::from_findings("g", vec![f(false), f(true)]).outcome,
            Outcome::Fail
        );
    }
}
