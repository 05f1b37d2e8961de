//! Drift stage, the edges: reads the desired state (rendered at the commit
//! that is live, from git), the live objects (the `Target` port) and the
//! SLO windows (the `Metrics` port), runs the pure judgements, and carries
//! out what [`super::decide`] asks for with the release engine:
//! - heal: the live release re-applied (the same path a rollback takes),
//!   the healed diff audited in the note of the live commit;
//! - SLO drift right after a release: the release handed back to the
//!   engine (`Engine::revert_live`: previous good restored, signed revert
//!   with the burn evidence, quarantine).
//!
//! A check holds the env's lock (`Store::lock_env`), so it never looks at
//! (or heals) an env while a release runs there: it says so instead.

use super::report::EnvReport;
use super::slo::{self, Answer};
use super::{Action, compare};
use crate::audit::{self, Heal, IntervalRecord};
use crate::config::Env;
use crate::engine::store::{LastGood, Phase, Store};
use crate::engine::{EngineError, Reporter};
use crate::ports::{Metrics, Target};
use crate::signing::Signer;
use crate::source::GitRepo;
use crate::wiring::{self, Adapters};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum DriftError {
    #[error(transparent)]
    Store(#[from] crate::engine::store::StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Looks, changes nothing: the report for `env` now.
pub fn observe(
    repo: &dyn GitRepo,
    store: &Store,
    target: &dyn Target,
    metrics: &dyn Metrics,
    env: &Env,
    now: DateTime<Utc>,
) -> Result<(EnvReport, Option<LastGood>), DriftError> {
    let skipped = |why: String| EnvReport::skipped(&env.name, env.drift.mode, now, why);
    if let Some(s) = store.release(&env.name)?
        && s.phase != Phase::Finished
    {
        return Ok((
            skipped(format!("{} is in progress ({:?})", s.release, s.phase).to_lowercase()),
            None,
        ));
    }
    let Some(good) = store.last_good(&env.name)? else {
        return Ok((skipped("nothing has been released here yet".into()), None));
    };
    let mut report = skipped(String::new());
    report.skipped = None;
    report.release = Some(good.release.clone());
    report.commit = Some(good.commit.clone());
    report.version = Some(good.version.clone());

    // Config drift.
    let desired = repo
        .reader(&good.commit)
        .map_err(|e| e.to_string())
        .and_then(|t| {
            crate::render::render(t.as_ref(), &env.overlay)
                .map(|r| r.objects)
                .map_err(|e| format!("{}: {e}", env.overlay))
        });
    let observed = desired.and_then(|d| {
        let seen = target
            .observable(&env.target.namespace, &d)
            .map_err(|e| e.to_string())?;
        let live = target
            .live(&env.target.namespace)
            .map_err(|e| e.to_string())?;
        Ok((d.len(), seen, live))
    });
    match observed {
        Err(e) => report.config_error = Some(e),
        Ok((all, seen, live)) => {
            report.not_observable = all.saturating_sub(seen.len());
            let result = compare(&seen, &live, &env.drift.ignore);
            report.in_sync = result
                .iter()
                .filter(|o| o.status == super::Status::InSync)
                .count();
            report.drifted = result
                .into_iter()
                .filter(|o| o.status != super::Status::InSync)
                .collect();
        }
    }

    // SLO drift.
    for s in &env.slos {
        let mut answers: BTreeMap<std::time::Duration, Answer> = BTreeMap::new();
        for w in slo::windows_needed(&env.drift.burn_windows, env.drift.regression_window) {
            let vars = [
                ("namespace", env.target.namespace.as_str()),
                ("app", env.target.app.as_str()),
                ("env", env.name.as_str()),
                ("version", good.version.as_str()),
                ("track", "stable"),
                ("interval", &slo::promql_duration(w)),
            ];
            let answer = crate::adapters::prometheus::render_query(&s.query, &vars)
                .and_then(|q| metrics.instant(&q, None).map_err(|e| e.to_string()));
            answers.insert(w, answer);
        }
        report.slos.push(slo::judge(
            s,
            &env.drift.burn_windows,
            env.drift.regression_window,
            &answers,
            good.baseline.get(&s.name).copied(),
        ));
    }
    Ok((report, Some(good)))
}

/// The evidence an SLO hand-over carries into the revert's trailers.
fn evidence(report: &EnvReport, now: DateTime<Utc>) -> IntervalRecord {
    IntervalRecord {
        at: now,
        weight: 100,
        result: crate::rollout::IntervalResult::Unhealthy(report.summary()),
        requests: None,
        measurements: report
            .slos
            .iter()
            .map(|s| crate::rollout::Measurement {
                slo: s.slo.clone(),
                canary: s.current,
                baseline: s.baseline,
                note: serde_json::to_value(&s.status)
                    .ok()
                    .and_then(|v| v["status"].as_str().map(str::to_string))
                    .unwrap_or_default(),
            })
            .collect(),
    }
}

/// One env's drift check as the daemon (and `drift --act`) runs it:
/// observe, remember since when config drift lasts, act as `decide` says
/// when `act` is set, keep the report. The report is returned even when
/// acting failed (it says why).
#[allow(clippy::too_many_arguments)]
pub fn check(
    repo: &mut dyn GitRepo,
    store: &Store,
    signer: &Signer,
    adapters: &Adapters,
    env: &Env,
    actor: &str,
    act: bool,
    out: &mut dyn Reporter,
) -> Result<EnvReport, DriftError> {
    let now = Utc::now();
    let lock = match store.lock_env(&env.name)? {
        Ok(l) => l,
        Err(busy) => {
            let r = EnvReport::skipped(&env.name, env.drift.mode, now, busy);
            store.save_report(
                &env.name,
                &r,
                &super::report::markdown(std::slice::from_ref(&r)),
            )?;
            return Ok(r);
        }
    };
    let (mut report, good) = observe(
        &*repo,
        store,
        adapters.target.as_ref(),
        adapters.metrics.as_ref(),
        env,
        now,
    )?;
    if report.skipped.is_none() && report.config_error.is_none() {
        let since = if report.config_drifted() {
            Some(store.drift_since(&env.name)?.unwrap_or(now))
        } else {
            None
        };
        store.save_drift_since(&env.name, since)?;
        report.drifting_since = since;
    }
    if let (true, Some(good)) = (act, good) {
        for action in super::decide(env, &report, &good, now) {
            match action {
                Action::Heal => {
                    let objects: Vec<String> = report
                        .drifted
                        .iter()
                        .map(|o| format!("{}/{}", o.kind, o.name))
                        .collect();
                    let diff: String = report
                        .drifted
                        .iter()
                        .map(|o| match &o.status {
                            super::Status::Modified { diff } => diff.clone(),
                            other => format!("{}/{}: {other:?}\n", o.kind, o.name),
                        })
                        .collect();
                    let healed = wiring::restore_good(repo, store, signer, adapters, env, &good);
                    match healed {
                        Ok(()) => {
                            let heal = Heal {
                                env: env.name.clone(),
                                release: good.release.clone(),
                                at: now,
                                actor: actor.to_string(),
                                drifted_for_s: report
                                    .drifting_since
                                    .map(|s| (now - s).num_seconds().max(0) as u64)
                                    .unwrap_or(0),
                                objects: objects.clone(),
                                diff,
                            };
                            repo.update_note(&good.commit, &mut |old| {
                                let mut n = audit::Note::parse(old);
                                n.heals.push(heal.clone());
                                n.to_text()
                            })
                            .map_err(EngineError::from)?;
                            store.save_drift_since(&env.name, None)?;
                            out.info(&format!("{}: healed {}", env.name, objects.join(", ")));
                            report.healed = objects;
                        }
                        Err(e) => {
                            report.handed_over = Some(format!("heal failed: {e}"));
                        }
                    }
                }
                Action::Revert { reason } => {
                    let ev = evidence(&report, now);
                    let r = wiring::with_engine(
                        repo,
                        store,
                        signer,
                        adapters,
                        env,
                        &good.commit,
                        wiring::Signals::none(),
                        |e| e.revert_live(env, &reason, ev, out),
                    );
                    report.handed_over = Some(match r {
                        Ok(crate::engine::EnvOutcome::Failed { revert, .. }) => format!(
                            "{} rolled back to the previous good release and reverted{}",
                            good.release,
                            revert
                                .map(|c| format!(" in {}", &c[..12.min(c.len())]))
                                .unwrap_or_default()
                        ),
                        Ok(other) => format!("{}: {other:?}", good.release),
                        Err(e) => format!("could not roll back {}: {e}", good.release),
                    });
                }
            }
        }
    }
    drop(lock);
    store.save_report(
        &env.name,
        &report,
        &super::report::markdown(std::slice::from_ref(&report)),
    )?;
    Ok(report)
}
