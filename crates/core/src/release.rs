//! A release in one env as an explicit machine: `step(state, plan,
//! observation) -> (actions, state)`, from the gates' verdict to the
//! promotion into the next env or the end. The engine is its driver: it
//! performs each action through the ports, turns what happened into the
//! next observation, and persists the state after every step (so a kill -9
//! at any line resumes from the last step). Every decision of the analysis
//! — when to route, measure, advance, switch the canary to stable, bake,
//! roll back, and how a release ends — is made here, from values only: no
//! error text and no clock.
//!
//! ```text
//!   Gated(passed)   Deployed          Measured(healthy…)          BakeOver
//!  Gated ──► Deploy ───────► Canary ────────────────────► Stable ─────────► Baked
//!    │ failed: Fail            │ step by step: Route, Measure │ Measure until │
//!    │ unavailable: Pause      │                              │ the bake ends │
//!    │                         ▼ unhealthy / inconclusive /   ▼ unhealthy / … │
//!    │           RollBack + Fail | Inconclusive | Aborted   RestoreLastGood + …
//!    │               Shutdown (either phase): Park, resumes where it was     │
//!    │                                                        DecidePromotion ▼
//!    │      PromotionDecided: last → Complete; blocked → Wait (Baked, retried);
//!    │                        allowed → Promote → Promoted → PromotedInto
//! ```
//!
//! The gates are re-run on every (re)start, so a resumed release meets
//! today's policy and quarantine; their verdict is the first observation.
//! One they now refuse leaves nothing of itself live: a canary is rolled
//! back, a baking one restores the last good release, a baked one (waiting
//! to promote) hands the env back to the good release before it.
//! What the gates and the promotion rules decide is theirs (`gates`,
//! `promote::may_promote`); this machine decides what follows from it.

use crate::audit::{IntervalRecord, Record, StepRecord};
use crate::config::Rollout;
use crate::ports::Track;
use crate::rollout::{self, AbortKind, IntervalResult, Next, Progress, StepResult};
use serde::{Deserialize, Serialize};

/// Where a release is in its env; persisted with [`ReleaseState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Rendered and gated; nothing applied yet.
    Gated,
    /// The canary runs and is being analysed (`progress` says where).
    Canary,
    /// The new version is stable; baking.
    Stable,
    /// Baked: the next env may be promoted into.
    Baked,
    /// Nothing more to do for this env (complete, promoted, failed).
    Finished,
}

/// One release in one env, as the engine persists it after every step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseState {
    pub release: String,
    pub env: String,
    pub commit: String,
    pub phase: Phase,
    /// The canary's progress through its steps.
    pub progress: Progress,
    /// The bake's intervals so far (a resumed bake starts again).
    #[serde(default)]
    pub bake: Progress,
    pub record: Record,
    /// The version serving as stable baseline during analysis.
    pub baseline_version: Option<String>,
    /// The first env's version string (`release --version`), if any.
    pub version: String,
}

/// What the machine needs to know about the env and the release.
#[derive(Debug, Clone, Copy)]
pub struct Plan<'a> {
    pub rollout: &'a Rollout,
    /// Nothing ran in the env before: the new version goes in as stable
    /// and is analysed at full traffic only; there is no canary to route
    /// to or remove, and no stable to compare with.
    pub first_release: bool,
}

impl Plan<'_> {
    /// The canary weights this release goes through.
    pub fn steps(&self) -> Vec<u8> {
        if self.first_release {
            vec![100]
        } else {
            self.rollout.steps.clone()
        }
    }

    /// The track the new version runs on while it is analysed.
    pub fn track(&self) -> Track {
        if self.first_release {
            Track::Stable
        } else {
            Track::Canary
        }
    }

    fn canary_rollout(&self) -> Rollout {
        let mut r = self.rollout.clone();
        r.steps = self.steps();
        r
    }

    /// The bake judges every interval like a step that never completes.
    fn bake_rollout(&self) -> Rollout {
        let mut r = self.rollout.clone();
        r.steps = vec![100];
        r.intervals_per_step = u32::MAX;
        r
    }
}

/// The gates' verdict on a release, summed up by the driver.
#[derive(Debug, Clone, PartialEq)]
pub enum GateVerdict {
    Passed,
    /// An enforced finding: the release fails.
    Failed {
        reason: String,
    },
    /// A gate could not evaluate (registry down): nothing is decided.
    Unavailable {
        reason: String,
    },
}

/// Where a baked release may go, as the promotion rules say.
#[derive(Debug, Clone, PartialEq)]
pub enum Promotion {
    /// The env is the last of its chain (or the release stops here).
    Last,
    /// The next env cannot take it yet (window, approval, broken env).
    Blocked {
        env: String,
        reason: String,
    },
    Allowed {
        env: String,
    },
}

/// What the driver saw since the last step.
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// The gates ran (again, on a resumed release).
    Gated(GateVerdict),
    /// The new version is applied and ready (or was, before a restart).
    Deployed,
    /// One analysis interval (canary or bake), judged.
    Measured {
        result: IntervalResult,
        record: IntervalRecord,
    },
    /// The bake time is over.
    BakeOver,
    /// An operator asked to abort.
    AbortRequested,
    /// The process is shutting down.
    ShutdownRequested,
    /// The promotion rules answered for the next env.
    PromotionDecided(Promotion),
    /// The promotion commit landed (`None`: it already had).
    Promoted { env: String, commit: Option<String> },
}

/// What the driver does next, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// A gate could not evaluate: keep the state, stop, decide nothing.
    Pause { reason: String },
    /// Apply the new version (or pick up where a restart left it) and
    /// answer `Deployed`.
    Deploy,
    /// Ask the promotion rules about the next env.
    DecidePromotion,
    /// The next env cannot take it yet: report it (recording the wait when
    /// `record`: not again for the same reason on every retry).
    Wait {
        env: String,
        reason: String,
        record: bool,
    },
    /// Commit the release's pins into the next env and answer `Promoted`.
    Promote { env: String },
    /// The last env: the release is complete.
    Complete,
    /// Promoted into `env`: the release is done here.
    PromotedInto { env: String, commit: Option<String> },
    /// `percent` of the traffic to the canary, the rest to stable.
    Route { percent: u8 },
    /// The first interval is near: give the metrics time to see the new version.
    WarmUp,
    /// Measure one interval of the new version at `weight`% on `track`
    /// (the driver may answer with an abort or a shutdown instead).
    Measure { weight: u8, track: Track },
    /// A step ended: report it.
    StepDone { name: String, result: StepResult },
    /// The canary becomes stable: new stable pods, all traffic to them,
    /// the canary and the old stable gone.
    SwitchToStable,
    /// Traffic back on stable and the canary gone (on a first release:
    /// the last good release applied again, if any).
    RollBack,
    /// During the bake: the last good release runs again.
    RestoreLastGood,
    /// Baked (it is the env's last good release itself): the good release
    /// before it runs again and becomes the last good one (nothing, for a
    /// first release).
    HandBack,
    /// Baked: this release is now the env's last good one.
    Baked,
    /// The release failed (live is already back on stable): revert its
    /// commit, quarantine its digests, record it `failed`.
    Fail { reason: String },
    /// No verdict (no data): record it `paused`; nothing is reverted.
    Inconclusive { reason: String },
    /// An operator stopped it: record it `aborted`; nothing is reverted.
    Aborted,
    /// Shutting down: all traffic on stable, the state kept; a restart
    /// resumes here.
    Park,
}

/// One step of the release: the state after `observation`, and what the
/// driver must do now.
pub fn step(
    state: &ReleaseState,
    plan: &Plan<'_>,
    observation: Observation,
) -> (Vec<Action>, ReleaseState) {
    let mut s = state.clone();
    let actions = match (state.phase, observation) {
        (Phase::Finished, _) => Vec::new(),
        (_, Observation::Gated(GateVerdict::Unavailable { reason })) => {
            vec![Action::Pause { reason }]
        }
        (phase, Observation::Gated(GateVerdict::Failed { reason })) => match phase {
            // A resumed release the gates now refuse leaves nothing of it
            // live that was not live before it.
            Phase::Canary => vec![Action::RollBack, Action::Fail { reason }],
            Phase::Stable => vec![Action::RestoreLastGood, Action::Fail { reason }],
            Phase::Baked => vec![Action::HandBack, Action::Fail { reason }],
            _ => vec![Action::Fail { reason }],
        },
        (Phase::Baked, Observation::Gated(GateVerdict::Passed)) => vec![Action::DecidePromotion],
        (_, Observation::Gated(GateVerdict::Passed)) => vec![Action::Deploy],
        (Phase::Baked, Observation::PromotionDecided(p)) => match p {
            Promotion::Last => vec![Action::Complete],
            Promotion::Allowed { env } => vec![Action::Promote { env }],
            Promotion::Blocked { env, reason } => {
                let record = !(s.record.outcome == crate::audit::ReleaseOutcome::Waiting
                    && s.record.reason.as_deref() == Some(reason.as_str()));
                s.record.outcome = crate::audit::ReleaseOutcome::Waiting;
                s.record.reason = Some(reason.clone());
                vec![Action::Wait {
                    env,
                    reason,
                    record,
                }]
            }
        },
        (Phase::Baked, Observation::Promoted { env, commit }) => {
            s.record.commits.promotion = commit.clone();
            vec![Action::PromotedInto { env, commit }]
        }
        (Phase::Gated | Phase::Canary, Observation::Deployed) => {
            s.phase = Phase::Canary;
            next_measurement(&s, plan, true)
        }
        (Phase::Stable, Observation::Deployed) => {
            // A resumed bake starts again.
            s.bake = Progress::new();
            vec![measure_bake()]
        }
        (Phase::Canary, Observation::Measured { result, record }) => {
            canary_interval(&mut s, plan, result, record)
        }
        (Phase::Stable, Observation::Measured { result, record }) => {
            bake_interval(&mut s, plan, result, record)
        }
        (Phase::Stable, Observation::BakeOver) => {
            let mut a = Vec::new();
            if let Some(bake) = s.record.steps.last_mut().filter(|b| b.name == BAKE) {
                bake.result = StepResult::Healthy;
                a.push(Action::StepDone {
                    name: BAKE.into(),
                    result: StepResult::Healthy,
                });
            }
            s.phase = Phase::Baked;
            a.push(Action::Baked);
            a.push(Action::DecidePromotion);
            a
        }
        (Phase::Canary, Observation::AbortRequested) => vec![Action::RollBack, Action::Aborted],
        (Phase::Stable, Observation::AbortRequested) => {
            vec![Action::RestoreLastGood, Action::Aborted]
        }
        (Phase::Canary, Observation::ShutdownRequested) => {
            if plan.first_release {
                vec![Action::Park]
            } else {
                vec![Action::Route { percent: 0 }, Action::Park]
            }
        }
        (Phase::Stable, Observation::ShutdownRequested) => vec![Action::Park],
        // Nothing to analyse in any other phase: the driver asked out of turn.
        _ => Vec::new(),
    };
    (actions, s)
}

/// The bake's step name in the record and the output.
pub const BAKE: &str = "bake";

fn measure_bake() -> Action {
    Action::Measure {
        weight: 100,
        track: Track::Stable,
    }
}

/// Route (unless it is a first release), warm up before the very first
/// interval, then measure at the current step's weight.
fn next_measurement(s: &ReleaseState, plan: &Plan<'_>, route: bool) -> Vec<Action> {
    let steps = plan.steps();
    let Some(&weight) = steps.get(s.progress.step) else {
        // Every step already done (resumed after the last interval).
        return switch(plan);
    };
    let mut a = Vec::new();
    if route && !plan.first_release {
        a.push(Action::Route { percent: weight });
    }
    if s.record.steps.is_empty() {
        a.push(Action::WarmUp);
    }
    a.push(Action::Measure {
        weight,
        track: plan.track(),
    });
    a
}

fn switch(plan: &Plan<'_>) -> Vec<Action> {
    let mut a = Vec::new();
    if !plan.first_release {
        a.push(Action::SwitchToStable);
    }
    a.push(measure_bake());
    a
}

/// The record's step for this interval (a new one when the step changed).
fn record_interval(s: &mut ReleaseState, name: &str, record: IntervalRecord) {
    if s.record.steps.last().is_none_or(|x| x.name != name) {
        s.record.steps.push(StepRecord {
            name: name.to_string(),
            result: StepResult::Running,
            intervals: Vec::new(),
        });
    }
    if let Some(x) = s.record.steps.last_mut() {
        x.intervals.push(record);
    }
}

fn canary_interval(
    s: &mut ReleaseState,
    plan: &Plan<'_>,
    result: IntervalResult,
    record: IntervalRecord,
) -> Vec<Action> {
    let steps = plan.steps();
    let Some(&weight) = steps.get(s.progress.step) else {
        return Vec::new();
    };
    record_interval(s, &rollout::step_name(weight), record);
    let next = rollout::on_interval(&mut s.progress, &plan.canary_rollout(), &result);
    let mut a = Vec::new();
    // The step that just ended, if one did.
    if let Some((done, res)) = s.progress.finished.last().cloned()
        && let Some(x) = s.record.steps.iter_mut().find(|x| x.name == done)
        && x.result == StepResult::Running
    {
        x.result = res.clone();
        a.push(Action::StepDone {
            name: done,
            result: res,
        });
    }
    match next {
        Next::Measure => a.extend(next_measurement(s, plan, false)),
        Next::Advance { .. } => a.extend(next_measurement(s, plan, true)),
        Next::Complete => {
            s.phase = Phase::Stable;
            s.bake = Progress::new();
            a.extend(switch(plan));
        }
        Next::Abort { kind, reason } => {
            a.push(Action::RollBack);
            a.push(verdict(kind, reason));
        }
    }
    a
}

fn bake_interval(
    s: &mut ReleaseState,
    plan: &Plan<'_>,
    result: IntervalResult,
    record: IntervalRecord,
) -> Vec<Action> {
    record_interval(s, BAKE, record);
    match rollout::on_interval(&mut s.bake, &plan.bake_rollout(), &result) {
        Next::Abort { kind, reason } => {
            let result = StepResult::aborted(kind, &reason);
            if let Some(x) = s.record.steps.last_mut() {
                x.result = result.clone();
            }
            let reason = match kind {
                AbortKind::Unhealthy => format!("bake: {reason}"),
                AbortKind::Inconclusive => reason,
            };
            vec![
                Action::StepDone {
                    name: BAKE.into(),
                    result,
                },
                Action::RestoreLastGood,
                verdict(kind, reason),
            ]
        }
        _ => vec![measure_bake()],
    }
}

fn verdict(kind: AbortKind, reason: String) -> Action {
    match kind {
        AbortKind::Unhealthy => Action::Fail { reason },
        AbortKind::Inconclusive => Action::Inconclusive { reason },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Commits, ReleaseOutcome};

    use crate::rollout::tests::rollout;

    fn plan(rollout: &Rollout, first_release: bool) -> Plan<'_> {
        Plan {
            rollout,
            first_release,
        }
    }

    fn state() -> ReleaseState {
        ReleaseState {
            release: "rel-2026-11-30-01".into(),
            env: "dev".into(),
            commit: "c0ffee".into(),
            phase: Phase::Gated,
            progress: Progress::new(),
            bake: Progress::new(),
            record: Record {
                release: "rel-2026-11-30-01".into(),
                env: "dev".into(),
                actor: "test".into(),
                images: Vec::new(),
                version: "1.1.0".into(),
                started: chrono::DateTime::UNIX_EPOCH,
                finished: None,
                outcome: ReleaseOutcome::Running,
                reason: None,
                checks: Vec::new(),
                steps: Vec::new(),
                commits: Commits::default(),
                timings: Default::default(),
                rollback: None,
            },
            baseline_version: Some("1.0.0".into()),
            version: "1.1.0".into(),
        }
    }

    fn measured(result: IntervalResult, weight: u8) -> Observation {
        Observation::Measured {
            record: IntervalRecord {
                at: chrono::DateTime::UNIX_EPOCH,
                weight,
                result: result.clone(),
                requests: Some(10.0),
                measurements: Vec::new(),
            },
            result,
        }
    }

    fn canary(weight: u8) -> Action {
        Action::Measure {
            weight,
            track: Track::Canary,
        }
    }

    /// Feeds healthy intervals until the machine stops asking for them.
    fn run_healthy(mut s: ReleaseState, plan: &Plan<'_>) -> (Vec<Action>, ReleaseState) {
        let (mut all, next) = step(&s, plan, Observation::Deployed);
        s = next;
        let mut last = all.clone();
        while let Some(Action::Measure { weight, .. }) = last.last().cloned() {
            if s.phase == Phase::Stable {
                break;
            }
            let (a, next) = step(&s, plan, measured(IntervalResult::Healthy, weight));
            s = next;
            all.extend(a.clone());
            last = a;
        }
        (all, s)
    }

    #[test]
    fn a_healthy_canary_routes_each_step_switches_to_stable_and_bakes() {
        let r = rollout();
        let plan = plan(&r, false);
        let (actions, s) = run_healthy(state(), &plan);
        let routes: Vec<u8> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Route { percent } => Some(*percent),
                _ => None,
            })
            .collect();
        assert_eq!(routes, vec![10, 50, 100]);
        assert_eq!(
            actions.iter().filter(|a| **a == Action::WarmUp).count(),
            1,
            "one warm-up, before the first interval"
        );
        assert_eq!(actions.iter().filter(|a| **a == canary(10)).count(), 2);
        assert!(actions.contains(&Action::SwitchToStable));
        assert_eq!(s.phase, Phase::Stable);
        let names: Vec<_> = s.record.steps.iter().map(|x| x.name.as_str()).collect();
        assert_eq!(names, ["canary_10", "canary_50", "full_100"]);
        assert!(
            s.record
                .steps
                .iter()
                .all(|x| x.result == StepResult::Healthy)
        );
        // The bake: healthy intervals until the driver says the time is over.
        let (a, s) = step(&s, &plan, measured(IntervalResult::Healthy, 100));
        assert_eq!(
            a,
            vec![Action::Measure {
                weight: 100,
                track: Track::Stable
            }]
        );
        let (a, s) = step(&s, &plan, Observation::BakeOver);
        assert_eq!(s.phase, Phase::Baked);
        assert_eq!(a[a.len() - 2..], [Action::Baked, Action::DecidePromotion]);
        assert_eq!(
            s.record.steps.last().map(|x| &x.result),
            Some(&StepResult::Healthy)
        );
    }

    #[test]
    fn a_first_release_is_measured_at_full_traffic_as_stable_never_routed() {
        let r = rollout();
        let plan = plan(&r, true);
        let (actions, s) = run_healthy(state(), &plan);
        assert!(!actions.iter().any(|a| matches!(a, Action::Route { .. })));
        assert!(!actions.contains(&Action::SwitchToStable));
        assert!(actions.contains(&Action::Measure {
            weight: 100,
            track: Track::Stable
        }));
        assert_eq!(s.phase, Phase::Stable);
        assert_eq!(s.record.steps.len(), 1);
        let (a, _) = step(&s, &plan, Observation::ShutdownRequested);
        assert_eq!(a, vec![Action::Park], "nothing to route on a first release");
    }

    #[test]
    fn unhealthy_rolls_back_then_fails_and_no_data_is_inconclusive() {
        let r = rollout();
        let plan = plan(&r, false);
        let (_, s) = step(&state(), &plan, Observation::Deployed);
        let (a, after) = step(
            &s,
            &plan,
            measured(IntervalResult::Unhealthy("errors 30%".into()), 10),
        );
        assert_eq!(
            a,
            vec![
                Action::StepDone {
                    name: "canary_10".into(),
                    result: StepResult::Unhealthy("errors 30%".into())
                },
                Action::RollBack,
                Action::Fail {
                    reason: "errors 30%".into()
                }
            ],
            "traffic back on stable before anything is reverted"
        );
        assert_eq!(after.phase, Phase::Canary, "the driver finishes it");
        // No data: measured again up to the limit, then inconclusive; never a revert.
        let nodata = || measured(IntervalResult::Inconclusive("no data".into()), 10);
        let (a, s) = step(&s, &plan, nodata());
        assert_eq!(a, vec![canary(10)]);
        let (a, _) = step(&s, &plan, nodata());
        assert!(a.contains(&Action::RollBack));
        assert!(a.contains(&Action::Inconclusive {
            reason: "no data".into()
        }));
        assert!(!a.iter().any(|x| matches!(x, Action::Fail { .. })));
    }

    #[test]
    fn abort_and_shutdown_are_handled_in_either_phase() {
        let r = rollout();
        let plan = plan(&r, false);
        let (_, s) = step(&state(), &plan, Observation::Deployed);
        assert_eq!(
            step(&s, &plan, Observation::AbortRequested).0,
            vec![Action::RollBack, Action::Aborted]
        );
        assert_eq!(
            step(&s, &plan, Observation::ShutdownRequested).0,
            vec![Action::Route { percent: 0 }, Action::Park]
        );
        let (_, baking) = run_healthy(s, &plan);
        assert_eq!(
            step(&baking, &plan, Observation::AbortRequested).0,
            vec![Action::RestoreLastGood, Action::Aborted]
        );
        assert_eq!(
            step(&baking, &plan, Observation::ShutdownRequested).0,
            vec![Action::Park]
        );
        let (a, _) = step(
            &baking,
            &plan,
            measured(IntervalResult::Unhealthy("p99 900ms".into()), 100),
        );
        assert_eq!(
            &a[1..],
            &[
                Action::RestoreLastGood,
                Action::Fail {
                    reason: "bake: p99 900ms".into()
                }
            ]
        );
    }

    #[test]
    fn a_resumed_canary_carries_on_at_its_step_without_a_second_warm_up() {
        let r = rollout();
        let plan = plan(&r, false);
        let (_, s) = step(&state(), &plan, Observation::Deployed);
        let (_, s) = step(&s, &plan, measured(IntervalResult::Healthy, 10));
        let (_, s) = step(&s, &plan, measured(IntervalResult::Healthy, 10));
        assert_eq!(s.progress.step, 1);
        // Killed here; the restart deploys again and resumes.
        let saved: ReleaseState =
            serde_json::from_str(&serde_json::to_string(&s).expect("json")).expect("parse");
        let (a, s) = step(&saved, &plan, Observation::Deployed);
        assert_eq!(a, vec![Action::Route { percent: 50 }, canary(50)]);
        assert_eq!(s.record.steps.len(), 1);
        // Out-of-turn observations change nothing.
        let mut finished = s.clone();
        finished.phase = Phase::Finished;
        let (a, same) = step(&finished, &plan, Observation::BakeOver);
        assert!(a.is_empty());
        assert_eq!(same, finished);
    }

    fn in_phase(phase: Phase) -> ReleaseState {
        ReleaseState { phase, ..state() }
    }

    #[test]
    fn the_gates_verdict_deploys_fails_or_pauses_and_a_refused_resume_leaves_nothing_live() {
        let r = rollout();
        let plan = plan(&r, false);
        let gated = |phase, v: GateVerdict| step(&in_phase(phase), &plan, Observation::Gated(v)).0;
        let failed = || GateVerdict::Failed {
            reason: "artifact_signature: quarantined".into(),
        };
        let fail = Action::Fail {
            reason: "artifact_signature: quarantined".into(),
        };
        assert_eq!(gated(Phase::Gated, GateVerdict::Passed), [Action::Deploy]);
        assert_eq!(gated(Phase::Canary, GateVerdict::Passed), [Action::Deploy]);
        assert_eq!(gated(Phase::Stable, GateVerdict::Passed), [Action::Deploy]);
        assert_eq!(
            gated(Phase::Baked, GateVerdict::Passed),
            [Action::DecidePromotion],
            "a baked release resumes at its promotion"
        );
        assert_eq!(gated(Phase::Gated, failed()), std::slice::from_ref(&fail));
        assert_eq!(
            gated(Phase::Canary, failed()),
            [Action::RollBack, fail.clone()]
        );
        assert_eq!(
            gated(Phase::Stable, failed()),
            [Action::RestoreLastGood, fail.clone()]
        );
        assert_eq!(
            gated(Phase::Baked, failed()),
            [Action::HandBack, fail.clone()],
            "a baked release waiting to promote hands the env back"
        );
        for phase in [Phase::Gated, Phase::Canary, Phase::Stable, Phase::Baked] {
            assert_eq!(
                gated(
                    phase,
                    GateVerdict::Unavailable {
                        reason: "registry down".into()
                    }
                ),
                [Action::Pause {
                    reason: "registry down".into()
                }],
                "{phase:?}: a gate that could not look decides nothing"
            );
        }
        assert!(gated(Phase::Finished, GateVerdict::Passed).is_empty());
    }

    #[test]
    fn a_baked_release_completes_waits_once_per_reason_or_is_promoted() {
        let r = rollout();
        let plan = plan(&r, false);
        let baked = in_phase(Phase::Baked);
        let (a, _) = step(
            &baked,
            &plan,
            Observation::PromotionDecided(Promotion::Last),
        );
        assert_eq!(a, [Action::Complete]);
        let blocked = |reason: &str| {
            Observation::PromotionDecided(Promotion::Blocked {
                env: "prod".into(),
                reason: reason.into(),
            })
        };
        let (a, waiting) = step(&baked, &plan, blocked("needs an approval"));
        assert_eq!(
            a,
            [Action::Wait {
                env: "prod".into(),
                reason: "needs an approval".into(),
                record: true
            }]
        );
        assert_eq!(waiting.record.outcome, ReleaseOutcome::Waiting);
        assert_eq!(waiting.phase, Phase::Baked, "retried at the next attempt");
        let (a, _) = step(&waiting, &plan, blocked("needs an approval"));
        assert!(
            matches!(&a[..], [Action::Wait { record: false, .. }]),
            "the same wait is not recorded again: {a:?}"
        );
        let (a, _) = step(&waiting, &plan, blocked("outside its promotion windows"));
        assert!(
            matches!(&a[..], [Action::Wait { record: true, .. }]),
            "{a:?}"
        );
        let (a, s) = step(
            &waiting,
            &plan,
            Observation::PromotionDecided(Promotion::Allowed { env: "prod".into() }),
        );
        assert_eq!(a, [Action::Promote { env: "prod".into() }]);
        let (a, s) = step(
            &s,
            &plan,
            Observation::Promoted {
                env: "prod".into(),
                commit: Some("beef".into()),
            },
        );
        assert_eq!(
            a,
            [Action::PromotedInto {
                env: "prod".into(),
                commit: Some("beef".into())
            }]
        );
        assert_eq!(s.record.commits.promotion.as_deref(), Some("beef"));
    }
}
