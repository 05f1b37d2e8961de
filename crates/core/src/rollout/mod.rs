//! Rollout stage, the pure decision core: judging one analysis interval
//! from SLO samples, and the canary state machine that turns interval
//! results into the next move. State in, decision out; no clock, no I/O —
//! the shell's engine feeds it measurements and persists what it
//! returns after every transition.
//!
//! Rules (docs/config.md, `[rollout]` and `[[slo]]`):
//! - an interval is `healthy` only when every SLO has a number for the
//!   canary, meets its objective and does not regress past
//!   `max_regression` against the stable baseline, and the canary served
//!   at least `min_requests`;
//! - no data, NaN, a provider error or too little traffic is
//!   `inconclusive` — never healthy;
//! - too little (or an unknown amount of) traffic is `inconclusive` even
//!   when a ratio breaches: two requests that both failed say nothing
//!   about a 30% fault, and judging them made the verdict depend on how
//!   fast the machine drove traffic;
//! - `intervals_per_step` healthy intervals move to the next step;
//!   more than `failure_limit` unhealthy intervals abort (the release is
//!   bad: revert); more than `inconclusive_limit` inconclusive intervals
//!   abort without a verdict on the release (pause: no revert).

use crate::config::{Rollout, Slo, SloKind};
use crate::ports::Sample;
use serde::{Deserialize, Serialize};

/// One interval's verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", content = "reason", rename_all = "lowercase")]
pub enum IntervalResult {
    Healthy,
    Unhealthy(String),
    Inconclusive(String),
}

impl IntervalResult {
    /// `healthy`, `unhealthy: <reason>`, `inconclusive: <reason>`: how an
    /// interval is printed and recorded in the audit note.
    pub fn text(&self) -> String {
        match self {
            IntervalResult::Healthy => "healthy".into(),
            IntervalResult::Unhealthy(r) => format!("unhealthy: {r}"),
            IntervalResult::Inconclusive(r) => format!("inconclusive: {r}"),
        }
    }

    /// The inverse of [`IntervalResult::text`]; `None` for anything else.
    pub fn from_text(s: &str) -> Option<Self> {
        if s == "healthy" {
            return Some(IntervalResult::Healthy);
        }
        let (kind, reason) = s.split_once(": ")?;
        match kind {
            "unhealthy" => Some(IntervalResult::Unhealthy(reason.into())),
            "inconclusive" => Some(IntervalResult::Inconclusive(reason.into())),
            _ => None,
        }
    }

    pub fn is_healthy(&self) -> bool {
        *self == IntervalResult::Healthy
    }
}

/// Serde for an [`IntervalResult`] as its one-line text (the audit note's
/// format), typed in memory.
pub mod interval_text {
    use super::IntervalResult;

    pub fn serialize<S: serde::Serializer>(r: &IntervalResult, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&r.text())
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IntervalResult, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        IntervalResult::from_text(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "interval result {s:?}: expected healthy, unhealthy: <reason> or inconclusive: <reason>"
            ))
        })
    }
}

/// How a step (a canary weight, or the bake) ended, or that it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    Running,
    Healthy,
    Unhealthy(String),
    Inconclusive(String),
}

impl StepResult {
    /// The metric label: `running`, `healthy`, `unhealthy`, `inconclusive`.
    pub fn label(&self) -> &'static str {
        match self {
            StepResult::Running => "running",
            StepResult::Healthy => "healthy",
            StepResult::Unhealthy(_) => "unhealthy",
            StepResult::Inconclusive(_) => "inconclusive",
        }
    }

    /// A step stopped by an abort of `kind`.
    pub fn aborted(kind: AbortKind, reason: &str) -> Self {
        match kind {
            AbortKind::Unhealthy => StepResult::Unhealthy(reason.into()),
            AbortKind::Inconclusive => StepResult::Inconclusive(reason.into()),
        }
    }
}

/// `healthy`, `unhealthy (<reason>)`: how the release output prints a step
/// (docs/operating-model.md).
impl std::fmt::Display for StepResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepResult::Running | StepResult::Healthy => f.write_str(self.label()),
            StepResult::Unhealthy(r) | StepResult::Inconclusive(r) => {
                write!(f, "{} ({r})", self.label())
            }
        }
    }
}

impl std::str::FromStr for StepResult {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "running" => return Ok(StepResult::Running),
            "healthy" => return Ok(StepResult::Healthy),
            _ => {}
        }
        let reason = |prefix: &str| {
            s.strip_prefix(prefix)
                .and_then(|r| r.strip_prefix(" ("))
                .and_then(|r| r.strip_suffix(')'))
                .map(str::to_string)
        };
        if let Some(r) = reason("unhealthy") {
            return Ok(StepResult::Unhealthy(r));
        }
        if let Some(r) = reason("inconclusive") {
            return Ok(StepResult::Inconclusive(r));
        }
        Err(format!(
            "step result {s:?}: expected running, healthy, unhealthy (<reason>) or inconclusive (<reason>)"
        ))
    }
}

/// Recorded as its text (`unhealthy (<reason>)`), typed in memory.
impl Serialize for StepResult {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StepResult {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// What was measured for one SLO in one interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub slo: String,
    pub canary: Option<f64>,
    pub baseline: Option<f64>,
    pub note: String,
}

/// A query answer as the engine got it: a sample, or the provider's error.
pub type Answer = Result<Sample, String>;

fn number(a: &Answer) -> Result<f64, String> {
    match a {
        Ok(Sample::Value(v)) if v.is_finite() => Ok(*v),
        Ok(Sample::Value(v)) => Err(format!("{v}")),
        Ok(other) => Err(other.to_string()),
        Err(e) => Err(format!("provider error: {e}")),
    }
}

/// Judges one interval. `samples[i]` is (canary, baseline) for `slos[i]`;
/// `requests` the canary's request count in the interval.
pub fn judge_interval(
    slos: &[Slo],
    samples: &[(Answer, Answer)],
    requests: &Answer,
    min_requests: u64,
) -> (IntervalResult, Vec<Measurement>) {
    let mut measurements = Vec::new();
    let mut unhealthy = Vec::new();
    let mut inconclusive = Vec::new();
    // Without enough traffic no measurement is evidence either way.
    let too_little = match number(requests) {
        Ok(n) if n < min_requests as f64 => Some(format!(
            "{n:.1} requests to the canary, under the floor of {min_requests}"
        )),
        Ok(_) => None,
        Err(e) => Some(format!("request count: {e}")),
    };
    for (slo, (canary, baseline)) in slos.iter().zip(samples) {
        let base = number(baseline).ok();
        let c = match number(canary) {
            Ok(c) => c,
            Err(e) => {
                inconclusive.push(format!("{}: {e}", slo.name));
                measurements.push(Measurement {
                    slo: slo.name.clone(),
                    canary: None,
                    baseline: base,
                    note: e,
                });
                continue;
            }
        };
        let mut notes = Vec::new();
        match slo.kind {
            SloKind::ErrorRatio => {
                let budget = 1.0 - slo.objective;
                if c > budget {
                    notes.push(format!("error ratio {c:.4} over {budget:.4}"));
                }
                if let (Some(b), Some(max)) = (base, slo.max_regression)
                    && c - b > max
                {
                    notes.push(format!(
                        "error ratio {c:.4} regresses {:.4} over stable {b:.4} (max {max})",
                        c - b
                    ));
                }
            }
            SloKind::Latency => {
                if let Some(t) = slo.threshold
                    && c > t.as_secs_f64()
                {
                    notes.push(format!(
                        "{:.0} ms over {:.0} ms",
                        c * 1000.0,
                        t.as_secs_f64() * 1000.0
                    ));
                }
                if let (Some(b), Some(max)) = (base, slo.max_regression)
                    && b > 0.0
                    && c > b * (1.0 + max)
                    && c - b > slo.min_regression.as_secs_f64()
                {
                    notes.push(format!(
                        "{:.0} ms regresses over stable {:.0} ms by more than {:.0}%",
                        c * 1000.0,
                        b * 1000.0,
                        max * 100.0
                    ));
                }
            }
        }
        let note = if notes.is_empty() {
            "ok".to_string()
        } else {
            unhealthy.push(format!("{}: {}", slo.name, notes.join("; ")));
            notes.join("; ")
        };
        measurements.push(Measurement {
            slo: slo.name.clone(),
            canary: Some(c),
            baseline: base,
            note,
        });
    }
    // Enough traffic: a measured breach outranks missing data elsewhere.
    let result = if let Some(why) = too_little {
        IntervalResult::Inconclusive(why)
    } else if !unhealthy.is_empty() {
        IntervalResult::Unhealthy(unhealthy.join("; "))
    } else if !inconclusive.is_empty() {
        IntervalResult::Inconclusive(inconclusive.join("; "))
    } else {
        IntervalResult::Healthy
    };
    (result, measurements)
}

/// Why a rollout stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AbortKind {
    /// The canary measured bad: roll back and revert.
    Unhealthy,
    /// No verdict (no data, provider down): roll back, pause, never revert.
    Inconclusive,
}

/// Progress through the steps, persisted by the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Index into `rollout.steps`.
    pub step: usize,
    pub healthy: u32,
    pub unhealthy: u32,
    pub inconclusive: u32,
    /// The result of each finished step, in order.
    pub finished: Vec<(String, StepResult)>,
}

impl Progress {
    pub fn new() -> Self {
        Self {
            step: 0,
            healthy: 0,
            unhealthy: 0,
            inconclusive: 0,
            finished: Vec::new(),
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

/// What to do after an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Another interval at the same weight.
    Measure,
    /// Move traffic to the next step's weight.
    Advance {
        weight: u8,
    },
    /// Every step healthy: the canary becomes stable.
    Complete,
    Abort {
        kind: AbortKind,
        reason: String,
    },
}

/// `canary_10`, `canary_50`, `full_100`: how the release output names a step.
pub fn step_name(weight: u8) -> String {
    if weight >= 100 {
        "full_100".into()
    } else {
        format!("canary_{weight}")
    }
}

/// The state machine: one interval's result in, the next move out.
pub fn on_interval(p: &mut Progress, rollout: &Rollout, result: &IntervalResult) -> Next {
    let Some(&weight) = rollout.steps.get(p.step) else {
        return Next::Complete;
    };
    let name = step_name(weight);
    match result {
        IntervalResult::Healthy => {
            p.healthy += 1;
            if p.healthy < rollout.intervals_per_step {
                return Next::Measure;
            }
            p.finished.push((name, StepResult::Healthy));
            p.step += 1;
            p.healthy = 0;
            p.unhealthy = 0;
            p.inconclusive = 0;
            match rollout.steps.get(p.step) {
                Some(&w) => Next::Advance { weight: w },
                None => Next::Complete,
            }
        }
        IntervalResult::Unhealthy(reason) => {
            p.unhealthy += 1;
            if p.unhealthy > rollout.failure_limit {
                p.finished
                    .push((name, StepResult::Unhealthy(reason.clone())));
                Next::Abort {
                    kind: AbortKind::Unhealthy,
                    reason: reason.clone(),
                }
            } else {
                Next::Measure
            }
        }
        IntervalResult::Inconclusive(reason) => {
            p.inconclusive += 1;
            if p.inconclusive > rollout.inconclusive_limit {
                p.finished
                    .push((name, StepResult::Inconclusive(reason.clone())));
                Next::Abort {
                    kind: AbortKind::Inconclusive,
                    reason: reason.clone(),
                }
            } else {
                Next::Measure
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::time::Duration;

    fn slos() -> Vec<Slo> {
        vec![
            Slo {
                name: "availability".into(),
                kind: SloKind::ErrorRatio,
                objective: 0.995,
                threshold: None,
                max_regression: Some(0.01),
                min_regression: Duration::ZERO,
                query: String::new(),
            },
            Slo {
                name: "latency-p99".into(),
                kind: SloKind::Latency,
                objective: 0.99,
                threshold: Some(Duration::from_millis(250)),
                max_regression: Some(0.25),
                min_regression: Duration::from_millis(25),
                query: String::new(),
            },
        ]
    }

    /// A canary of three steps, two intervals each (shared with `release`'s tests).
    pub(crate) fn rollout() -> Rollout {
        Rollout {
            steps: vec![10, 50, 100],
            analysis_interval: Duration::from_secs(5),
            intervals_per_step: 2,
            failure_limit: 0,
            inconclusive_limit: 1,
            min_requests: 20,
            bake: Duration::from_secs(0),
        }
    }

    fn v(x: f64) -> Answer {
        Ok(Sample::Value(x))
    }

    #[test]
    fn healthy_only_with_numbers_within_objectives_and_enough_traffic() {
        let s = slos();
        let good = [(v(0.0), v(0.0)), (v(0.012), v(0.010))];
        assert_eq!(
            judge_interval(&s, &good, &v(100.0), 20).0,
            IntervalResult::Healthy
        );
        // Too little traffic, no data, NaN, provider down: inconclusive.
        assert!(
            matches!(judge_interval(&s, &good, &v(3.0), 20).0, IntervalResult::Inconclusive(r) if r.contains("floor"))
        );
        let nodata = [(Ok(Sample::NoData), v(0.0)), (v(0.01), v(0.01))];
        assert!(
            matches!(judge_interval(&s, &nodata, &v(100.0), 20).0, IntervalResult::Inconclusive(r) if r.contains("no data"))
        );
        let nan = [(Ok(Sample::NaN), v(0.0)), (v(0.01), v(0.01))];
        assert!(
            matches!(judge_interval(&s, &nan, &v(100.0), 20).0, IntervalResult::Inconclusive(r) if r.contains("NaN"))
        );
        let down = [
            (Err("connection refused".into()), v(0.0)),
            (v(0.01), v(0.01)),
        ];
        assert!(
            matches!(judge_interval(&s, &down, &v(100.0), 20).0, IntervalResult::Inconclusive(r) if r.contains("provider error"))
        );
        assert!(matches!(
            judge_interval(&s, &good, &Err("down".into()), 20).0,
            IntervalResult::Inconclusive(_)
        ));
        // Over the objective, over the threshold, regressing: unhealthy.
        let errors = [(v(0.3), v(0.0)), (v(0.01), v(0.01))];
        assert!(
            matches!(judge_interval(&s, &errors, &v(100.0), 20).0, IntervalResult::Unhealthy(r) if r.contains("availability"))
        );
        let slow = [(v(0.0), v(0.0)), (v(0.31), v(0.01))];
        assert!(
            matches!(judge_interval(&s, &slow, &v(100.0), 20).0, IntervalResult::Unhealthy(r) if r.contains("latency-p99"))
        );
        // A relative regression smaller than min_regression is noise: a
        // 5 ms p99 that reads 7.5 ms after one slow request.
        let noise = [(v(0.0), v(0.0)), (v(0.0075), v(0.005))];
        assert_eq!(
            judge_interval(&s, &noise, &v(100.0), 20).0,
            IntervalResult::Healthy
        );
        let regress = [(v(0.0), v(0.0)), (v(0.2), v(0.1))];
        assert!(
            matches!(judge_interval(&s, &regress, &v(100.0), 20).0, IntervalResult::Unhealthy(r) if r.contains("regresses"))
        );
        // Too few requests to judge: a breach is no verdict either (two
        // failed requests out of two say nothing about a 30% fault).
        let all_failed = [(v(1.0), v(0.0)), (v(0.9), v(0.01))];
        assert!(
            matches!(judge_interval(&s, &all_failed, &v(2.0), 20).0, IntervalResult::Inconclusive(r) if r.contains("floor"))
        );
        assert!(matches!(
            judge_interval(&s, &all_failed, &Err("down".into()), 20).0,
            IntervalResult::Inconclusive(r) if r.contains("request count")
        ));
        let (_, measured) = judge_interval(&s, &all_failed, &v(2.0), 20);
        assert_eq!(measured[0].canary, Some(1.0), "still recorded");
        // With enough traffic, a breach outranks missing data elsewhere.
        let mixed = [(v(0.3), v(0.0)), (Ok(Sample::NoData), v(0.01))];
        assert!(matches!(
            judge_interval(&s, &mixed, &v(100.0), 20).0,
            IntervalResult::Unhealthy(_)
        ));
        // No baseline (stable has no traffic): objectives alone decide.
        let no_base = [(v(0.0), Ok(Sample::NoData)), (v(0.01), Ok(Sample::NoData))];
        assert_eq!(
            judge_interval(&s, &no_base, &v(100.0), 20).0,
            IntervalResult::Healthy
        );
    }

    #[test]
    fn steps_advance_on_healthy_intervals_and_abort_past_the_limits() {
        let r = rollout();
        let mut p = Progress::new();
        assert_eq!(
            on_interval(&mut p, &r, &IntervalResult::Healthy),
            Next::Measure
        );
        assert_eq!(
            on_interval(&mut p, &r, &IntervalResult::Healthy),
            Next::Advance { weight: 50 }
        );
        assert_eq!(
            on_interval(&mut p, &r, &IntervalResult::Inconclusive("x".into())),
            Next::Measure
        );
        assert_eq!(
            on_interval(&mut p, &r, &IntervalResult::Healthy),
            Next::Measure
        );
        assert_eq!(
            on_interval(&mut p, &r, &IntervalResult::Healthy),
            Next::Advance { weight: 100 }
        );
        on_interval(&mut p, &r, &IntervalResult::Healthy);
        assert_eq!(
            on_interval(&mut p, &r, &IntervalResult::Healthy),
            Next::Complete
        );
        assert_eq!(
            p.finished,
            vec![
                ("canary_10".to_string(), StepResult::Healthy),
                ("canary_50".to_string(), StepResult::Healthy),
                ("full_100".to_string(), StepResult::Healthy)
            ]
        );
        // failure_limit 0: the first unhealthy interval aborts, as unhealthy.
        let mut p = Progress::new();
        assert!(matches!(
            on_interval(&mut p, &r, &IntervalResult::Unhealthy("errors".into())),
            Next::Abort {
                kind: AbortKind::Unhealthy,
                ..
            }
        ));
        assert_eq!(p.finished[0].0, "canary_10");
        // inconclusive_limit 1: the second inconclusive aborts, as inconclusive.
        let mut p = Progress::new();
        on_interval(&mut p, &r, &IntervalResult::Inconclusive("no data".into()));
        assert!(matches!(
            on_interval(&mut p, &r, &IntervalResult::Inconclusive("no data".into())),
            Next::Abort {
                kind: AbortKind::Inconclusive,
                ..
            }
        ));
    }

    #[test]
    fn step_and_interval_results_round_trip_through_their_text() {
        for r in [
            StepResult::Running,
            StepResult::Healthy,
            StepResult::Unhealthy("availability: 0.2 > 0.005 (x) ok".into()),
            StepResult::Inconclusive("request count: no data".into()),
        ] {
            assert_eq!(r.to_string().parse::<StepResult>(), Ok(r.clone()));
            let json = serde_json::to_string(&r).expect("json");
            assert_eq!(serde_json::from_str::<StepResult>(&json).expect("back"), r);
        }
        for r in [
            IntervalResult::Healthy,
            IntervalResult::Unhealthy("a: b".into()),
            IntervalResult::Inconclusive("no data".into()),
        ] {
            assert_eq!(IntervalResult::from_text(&r.text()), Some(r));
        }
        assert!("unhealthy".parse::<StepResult>().is_err());
        assert_eq!(IntervalResult::from_text("fine"), None);
    }
}
