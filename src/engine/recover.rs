//! Recover stage: put the last good release back on the target (traffic
//! first, then the pods), then revert the offending commit on the env's
//! branch — signed, CAS-pushed, with the release and the failure evidence
//! in its trailers. A rollback is never blocked by a promotion window.

use super::store::{LastGood, ReleaseState};
use super::{Engine, EngineError, workload};
use crate::config::Env;
use crate::ports::Track;
use crate::source::CommitOutcome;

/// Aborts a canary: all traffic to `stable`, then the canary removed.
/// For a first release (nothing was live before) the new stable is
/// removed. Returns how long traffic took to be back on stable.
pub fn rollback(
    e: &Engine<'_>,
    env: &Env,
    _state: &ReleaseState,
    first_release: bool,
    stable: &[String],
) -> Result<std::time::Duration, EngineError> {
    let t = std::time::Instant::now();
    let target = e.svc.target;
    if first_release {
        target
            .remove(&workload(env, Track::Stable))
            .map_err(Engine::target_err)?;
        return Ok(t.elapsed());
    }
    if !stable.is_empty() {
        e.route(env, stable, &[], 0)?;
    }
    let to_stable = t.elapsed();
    target
        .remove(&workload(env, Track::Canary))
        .map_err(Engine::target_err)?;
    Ok(to_stable)
}

/// After a bad version became stable: re-render the last good commit and
/// run it as stable again (or remove everything when there is none).
pub fn restore_last_good(
    e: &mut Engine<'_>,
    env: &Env,
    _state: &ReleaseState,
) -> Result<(), EngineError> {
    let target = e.svc.target;
    let Some(good) = e.store.last_good(&env.name)? else {
        return target
            .remove(&workload(env, Track::Stable))
            .map_err(Engine::target_err);
    };
    restore(e, env, &good)
}

/// A baked release (the env's last good one) is refused after all: the
/// good release before it runs again and is the last good one; a first
/// release is removed and the env has no good release any more.
pub fn hand_back(e: &mut Engine<'_>, env: &Env, state: &ReleaseState) -> Result<(), EngineError> {
    let Some(good) = e.store.last_good(&env.name)? else {
        return restore_last_good(e, env, state);
    };
    if good.release != state.release {
        return restore(e, env, &good);
    }
    match good.previous {
        Some(previous) => {
            restore(e, env, &previous)?;
            e.store.save_last_good(&env.name, &previous)?;
        }
        None => {
            e.svc
                .target
                .remove(&workload(env, Track::Stable))
                .map_err(Engine::target_err)?;
            e.store.clear_last_good(&env.name)?;
        }
    }
    Ok(())
}

/// Runs `good` as the env's stable again: re-rendered from its commit,
/// applied, all traffic to it, older pods gone.
pub fn restore(e: &mut Engine<'_>, env: &Env, good: &LastGood) -> Result<(), EngineError> {
    let target = e.svc.target;
    let (objects, _) = e.render_at(env, &good.commit)?;
    let r = target
        .apply(&workload(env, Track::Stable), &objects, &good.release)
        .map_err(Engine::target_err)?;
    e.route(env, &r.endpoints, &[], 0)?;
    target
        .settle(&workload(env, Track::Stable))
        .map_err(Engine::target_err)?;
    Ok(())
}

/// The revert commit's message: what failed and the evidence, as trailers.
pub fn revert_message(state: &ReleaseState, env: &Env, reason: &str) -> String {
    let evidence: Vec<String> = state
        .record
        .steps
        .iter()
        .flat_map(|s| s.intervals.iter().map(move |i| (s, i)))
        .filter(|(_, i)| !i.result.is_healthy())
        .take(3)
        .map(|(s, i)| {
            let m: Vec<String> = i
                .measurements
                .iter()
                .map(|m| match m.canary {
                    Some(v) => format!("{}={v:.4}", m.slo),
                    None => format!("{}=none", m.slo),
                })
                .collect();
            format!("{} at {}%: {}", s.name, i.weight, m.join(" "))
        })
        .collect();
    let one_line = reason.replace('\n', " ");
    let mut msg = format!(
        "revert {}: failed in {}\n\n{one_line}\n\nRelease-Id: {}\nReverts: {}\nEnvironment: {}\nFailure: {one_line}\n",
        state.release, env.name, state.release, state.commit, env.name
    );
    for e in evidence {
        msg.push_str(&format!("Evidence: {e}\n"));
    }
    msg
}

/// Reverts the released commit on the env branch. `None`: already reverted.
pub fn revert(
    e: &mut Engine<'_>,
    env: &Env,
    state: &ReleaseState,
    reason: &str,
) -> Result<Option<String>, EngineError> {
    let message = revert_message(state, env, reason);
    match e.repo.revert(&env.branch, &state.commit, &message)? {
        CommitOutcome::Committed { commit, .. } => Ok(Some(commit)),
        CommitOutcome::NothingToDo => Ok(None),
    }
}
