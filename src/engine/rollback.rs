//! Manual rollback, the driver (the decisions are `crate::rollback`'s):
//! an operator's signed request takes an env back to a good release at
//! once — no gates beyond the target's signatures, no canary steps, no
//! bake, never blocked by a window or an approval — and the commit that
//! records it lands when git answers.
//!
//! In this order, each step durable before the next:
//! 1. the request verified against the env's pinned operators, fresh and
//!    never used before; the target chosen; its digests' signatures
//!    verified (quarantine never blocks a rollback target);
//! 2. the hold written (`rollbacks/<env>.json`): from here nothing is
//!    released in the env, and a release in progress stops at its next
//!    step as if aborted — in this process or another sharing the state
//!    dir;
//! 3. live, at once: a canary loses its traffic and goes, then the target
//!    runs as stable with all traffic (this does not wait for the env's
//!    lock; once the lock is free the live state is asserted again under
//!    it, in case a stopping release moved something meanwhile);
//! 4. under the lock: last good = the target, the release rolled back is
//!    finished, its digests quarantined;
//! 5. [`flush`]: a signed commit restoring the target's pins on top of the
//!    head the rollback saw (compare-and-swap, never forced; a branch that
//!    moved is a reported conflict), then the audit record of the release
//!    rolled back, then the hold ends. With git down the hold stays and
//!    the daemon (every poll) or `rollback --pending` flushes it later.

use super::store::{EnvLock, Phase, Quarantined, Store};
use super::{Engine, EngineError, workload};
use crate::audit::{self, Note, Record, ReleaseOutcome};
use crate::config::Env;
use crate::model::{LastGood, Outcome};
use crate::ports::Track;
use crate::rollback::{
    CommitState, Current, Pending, PlanError, Request, RequestError, RollbackRecord, To,
};
use crate::signing::AllowedSigners;
use crate::source::{CommitOutcome, GitError, GitRepo};
use serde::Serialize;
use std::time::{Duration, Instant};

/// The trailer naming the signed request a rollback commit carries out
/// (two flushes of one rollback never make two commits).
pub const REQUEST_TRAILER: &str = "Rollback-Request";

/// Why a rollback was refused or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RollbackError {
    #[error("refused: {0}")]
    Request(RequestError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(
        "{env} is already held by a rollback: {summary}; push it with `rollback --env {env} --pending` or resolve it (docs/runbooks.md)"
    )]
    Pending { env: String, summary: String },
    #[error(
        "the release to go back to ({release}) no longer verifies: {detail}; pick another with --to, or fix the signatures"
    )]
    Signature { release: String, detail: String },
    #[error(
        "the live rollback of {env} failed, nothing was committed and the env is not held: {cause}"
    )]
    Live { env: String, cause: EngineError },
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Store(#[from] super::store::StoreError),
    #[error(transparent)]
    Git(#[from] GitError),
}

// By hand, not `#[from]`: the message already says it (no source chain
// printing it twice).
impl From<RequestError> for RollbackError {
    fn from(e: RequestError) -> Self {
        RollbackError::Request(e)
    }
}

/// Where the rollback's commit is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum Landed {
    /// Pushed, and the audit record written.
    Pushed { commit: String },
    /// Git did not answer: queued; the env is held until it lands.
    Queued { why: String },
    /// The branch moved past the head the rollback saw: nothing forced;
    /// the env is held until an operator resolves it.
    Conflict { head: String },
}

/// What a rollback did.
#[derive(Debug, Clone, Serialize)]
pub struct Done {
    pub env: String,
    pub from: String,
    pub to: String,
    pub to_commit: String,
    pub by: String,
    /// Request → all traffic on the target release, milliseconds.
    pub to_stable_ms: u64,
    pub quarantined: Vec<String>,
    pub commit: Landed,
}

/// Rolls `env` back as `request` asks; `operators` are the env's pinned
/// operators; a release in progress elsewhere gets up to `wait` to stop.
pub fn rollback(
    e: &mut Engine<'_>,
    env: &Env,
    request: &Request,
    operators: Option<(&AllowedSigners, &str)>,
    wait: Duration,
) -> Result<Done, RollbackError> {
    let started = Instant::now();
    let now = (e.now)();
    let by = request.verify(operators, now, &e.store.rollbacks_used()?)?;
    if let Some(p) = e.store.rollback_pending(&env.name)? {
        return Err(RollbackError::Pending {
            env: env.name.clone(),
            summary: p.summary(),
        });
    }
    // What runs, from the state dir and the last fetched notes: no fetch,
    // so this works while git is down.
    let records = audit::all_records(&e.repo.notes()?);
    let good = e.store.last_good(&env.name)?;
    let running = e
        .store
        .release(&env.name)?
        .filter(|s| s.phase != Phase::Finished);
    let at_commit = match &request.to {
        To::Commit(sha) => Some(at_commit(e, env, sha, &records)?),
        _ => None,
    };
    let plan = crate::rollback::plan(
        &env.name,
        &request.to,
        &records,
        good.as_ref(),
        running.as_ref().map(|s| Current {
            release: s.release.clone(),
            images: s.record.images.clone(),
        }),
        at_commit,
        &e.store
            .quarantine()?
            .into_iter()
            .filter(|q| q.env == env.name)
            .map(|q| q.digest)
            .collect::<Vec<_>>(),
    )?;
    verify_target(e, env, &plan.to)?;
    let pending = Pending {
        request: request.clone(),
        plan: plan.clone(),
        base: e.repo.resolve(&env.branch)?,
        state: CommitState::Queued,
        at: now,
        settled: false,
    };
    // The hold and the queued commit, before anything changes live.
    e.store.save_rollback_pending(&pending)?;
    e.store.add_rollback_used(&request.id())?;
    let lock = e.store.lock_env(&env.name)?;
    // Stable's release now: a canary runs beside last good; a release past
    // its canary runs as stable itself.
    let stable_runs = match &running {
        Some(s) if s.phase != Phase::Gated && s.phase != Phase::Canary => Some(s.release.clone()),
        _ => good.as_ref().map(|g| g.release.clone()),
    };
    let live = |e: &mut Engine<'_>| live(e, env, &plan.to, stable_runs.as_deref());
    if let Err(cause) = live(e) {
        let _ = e.store.clear_rollback_pending(&env.name);
        return Err(RollbackError::Live {
            env: env.name.clone(),
            cause,
        });
    }
    let to_stable_ms = started.elapsed().as_millis() as u64;
    let commit = match lock {
        Ok(_lock) => flush_with(e.repo, e.store, env, true)?,
        // Another releaser stops at its next step (the hold); then the
        // live state is asserted again under the lock, and the rest done.
        Err(holder) => match wait_for_lock(e.store, &env.name, wait) {
            Some(_lock) => {
                live(e).map_err(RollbackError::Engine)?;
                flush_with(e.repo, e.store, env, true)?
            }
            None => Some(Landed::Queued {
                why: format!(
                    "{holder} and has not stopped yet (it stops at its next step); the rest follows once it has"
                ),
            }),
        },
    }
    .unwrap_or(Landed::Queued {
        why: "the hold disappeared before the commit".into(),
    });
    Ok(Done {
        env: env.name.clone(),
        from: plan.from.clone(),
        to: plan.to.release.clone(),
        to_commit: plan.to.commit.clone(),
        by,
        to_stable_ms,
        quarantined: plan.quarantined(),
        commit,
    })
}

/// The env's lock once its holder let go, at most `wait`.
fn wait_for_lock(store: &Store, env: &str, wait: Duration) -> Option<EnvLock> {
    let until = Instant::now() + wait;
    loop {
        if let Ok(Ok(l)) = store.lock_env(env) {
            return Some(l);
        }
        if Instant::now() >= until {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The target of `--to-commit sha`: its pins, and the release that made
/// it when the audit trail knows one.
fn at_commit(
    e: &Engine<'_>,
    env: &Env,
    sha: &str,
    records: &[Record],
) -> Result<LastGood, RollbackError> {
    let commit = e.repo.resolve(sha)?;
    if !e.repo.contains(&e.repo.resolve(&env.branch)?, &commit)? {
        return Err(RollbackError::Plan(PlanError::NotGood {
            release: commit,
            env: env.name.clone(),
            seen: format!("not in the history of {}", env.branch),
        }));
    }
    let (_, images) = e.render_at(env, &commit)?;
    let known = records
        .iter()
        .find(|r| r.env == env.name && r.commits.released == commit);
    Ok(LastGood {
        release: known
            .map(|r| r.release.clone())
            .unwrap_or_else(|| format!("commit-{}", &commit[..12.min(commit.len())])),
        version: known.map(|r| r.version.clone()).unwrap_or_default(),
        commit,
        images,
        baseline: Default::default(),
        since: None,
        previous: None,
    })
}

/// The target's digests must still verify against the keys the env's
/// head trusts (in the env's signature gate mode). Quarantine is not
/// consulted: it never blocks going back.
fn verify_target(e: &Engine<'_>, env: &Env, to: &LastGood) -> Result<(), RollbackError> {
    let head = e.repo.resolve(&env.branch)?;
    let tree = e.repo.reader(&head)?;
    let (verdict, infrastructure) = crate::gates::run::signatures(
        tree.as_ref(),
        &to.images,
        &env.gates,
        e.svc.registry,
        (e.now)(),
    );
    if verdict.outcome == Outcome::Fail {
        let mut detail: Vec<String> = verdict
            .findings
            .iter()
            .filter(|f| f.enforced)
            .map(|f| format!("{}: {}", f.subject, f.message))
            .collect();
        if let Some(i) = infrastructure {
            detail.push(format!("(the registry did not answer: {i})"));
        }
        return Err(RollbackError::Signature {
            release: to.release.clone(),
            detail: detail.join("; "),
        });
    }
    Ok(())
}

/// Traffic to stable first and the canary gone; then `to` runs as
/// stable with all traffic (unless stable already runs it).
fn live(
    e: &mut Engine<'_>,
    env: &Env,
    to: &LastGood,
    stable_runs: Option<&str>,
) -> Result<(), EngineError> {
    let target = e.svc.target;
    let canary = workload(env, Track::Canary);
    if target
        .readiness(&canary)
        .map_err(Engine::target_err)?
        .desired
        > 0
    {
        let stable = target
            .readiness(&workload(env, Track::Stable))
            .map_err(Engine::target_err)?;
        if !stable.endpoints.is_empty() {
            e.route(env, &stable.endpoints, &[], 0)?;
        }
        target.remove(&canary).map_err(Engine::target_err)?;
    }
    if stable_runs != Some(to.release.as_str()) {
        super::recover::restore(e, env, to)?;
    }
    Ok(())
}

/// Under the env's lock: the target is the env's good release, the
/// release rolled back is over, its digests quarantined.
fn settle_state(
    store: &Store,
    env: &Env,
    plan: &crate::rollback::Plan,
    by: &str,
    request: &Request,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), RollbackError> {
    if let Some(mut s) = store.release(&env.name)?
        && s.release == plan.from
    {
        s.phase = Phase::Finished;
        s.record.outcome = ReleaseOutcome::RolledBack;
        s.record.finished.get_or_insert(now);
        s.record.rollback = Some(rollback_record(plan, by, request, now));
        store.save_release(&s)?;
    }
    let mut good = plan.to.clone();
    good.since = Some(now);
    good.previous = None;
    store.save_last_good(&env.name, &good)?;
    store.add_quarantine(
        plan.quarantined()
            .into_iter()
            .filter_map(|image| {
                let (_, _, digest) = crate::render::transform::split_image(&image);
                digest.map(|d| Quarantined {
                    digest: d.to_string(),
                    release: plan.from.clone(),
                    env: env.name.clone(),
                    reason: format!("rolled back by {by}: {}", request.reason),
                })
            })
            .collect(),
    )?;
    Ok(())
}

fn rollback_record(
    plan: &crate::rollback::Plan,
    by: &str,
    request: &Request,
    at: chrono::DateTime<chrono::Utc>,
) -> RollbackRecord {
    RollbackRecord {
        by: by.to_string(),
        reason: request.reason.clone(),
        at,
        to: plan.to.release.clone(),
        signature: request.signature.clone(),
    }
}

/// Pushes the pending rollback of `env`, if any: the commit restoring its
/// pins on top of the head it saw (CAS; a moved branch is a conflict,
/// nothing forced), the audit record of the release rolled back, then the
/// hold ends. `None`: nothing pending. Git unreachable: still queued.
pub fn flush(
    repo: &mut dyn GitRepo,
    store: &Store,
    env: &Env,
) -> Result<Option<Landed>, RollbackError> {
    flush_with(repo, store, env, false)
}

/// `flush`; `locked`: the caller holds the env's lock already.
fn flush_with(
    repo: &mut dyn GitRepo,
    store: &Store,
    env: &Env,
    locked: bool,
) -> Result<Option<Landed>, RollbackError> {
    let Some(mut p) = store.rollback_pending(&env.name)? else {
        return Ok(None);
    };
    if let CommitState::Conflict { head } = &p.state {
        return Ok(Some(Landed::Conflict { head: head.clone() }));
    }
    if !p.settled {
        // Under the env's lock: a release that was running there has stopped.
        let _lock = if locked {
            None
        } else {
            match store.lock_env(&env.name)? {
                Ok(l) => Some(l),
                Err(_) => {
                    return Ok(Some(Landed::Queued {
                        why: format!(
                            "the release in progress in {} has not stopped yet",
                            env.name
                        ),
                    }));
                }
            }
        };
        settle_state(store, env, &p.plan, &p.request.principal, &p.request, p.at)?;
        p.settled = true;
        store.save_rollback_pending(&p)?;
    }
    match repo.fetch() {
        Err(e) if e.is_infrastructure() => {
            return Ok(Some(Landed::Queued { why: e.to_string() }));
        }
        other => {
            other?;
        }
    }
    let id = p.request.id();
    let actor = format!("{} (operator)", p.request.principal);
    let mut message = crate::rollback::message(&p.plan, &env.name, &actor, &p.request.reason);
    message.push_str(&format!("{REQUEST_TRAILER}: {id}\n"));
    let commit = match super::pin::restore_pins(repo, env, &p.base, &p.plan.to.images, &message) {
        Ok(CommitOutcome::Committed { commit, .. }) => commit,
        // The head already pins the target.
        Ok(CommitOutcome::NothingToDo) => p.base.clone(),
        Err(GitError::Moved { head, .. }) => {
            // Our own earlier flush (another process) is not a conflict.
            if repo
                .message(&head)
                .is_ok_and(|m| m.lines().any(|l| l == format!("{REQUEST_TRAILER}: {id}")))
            {
                head
            } else {
                p.state = CommitState::Conflict { head: head.clone() };
                store.save_rollback_pending(&p)?;
                return Ok(Some(Landed::Conflict { head }));
            }
        }
        Err(e) if e.is_infrastructure() => {
            return Ok(Some(Landed::Queued { why: e.to_string() }));
        }
        Err(e) => return Err(e.into()),
    };
    record(repo, store, env, &p, &commit)?;
    store.clear_rollback_pending(&env.name)?;
    Ok(Some(Landed::Pushed { commit }))
}

/// The audit record of the release rolled back says so: outcome
/// `rolled-back`, who, why, when, the commit. Kept in the note of the
/// commit it was released from (a release that never wrote a record gets
/// one there, from the state dir when it knows it).
fn record(
    repo: &mut dyn GitRepo,
    store: &Store,
    env: &Env,
    p: &Pending,
    commit: &str,
) -> Result<(), RollbackError> {
    let records = audit::all_records(&repo.notes()?);
    let mut rec = records
        .into_iter()
        .find(|r| r.release == p.plan.from && r.env == env.name)
        .or_else(|| {
            store
                .release(&env.name)
                .ok()
                .flatten()
                .filter(|s| s.release == p.plan.from)
                .map(|s| s.record)
        })
        .unwrap_or_else(|| Record {
            release: p.plan.from.clone(),
            env: env.name.clone(),
            actor: String::new(),
            images: p.plan.from_images.clone(),
            version: String::new(),
            started: p.at,
            finished: None,
            outcome: ReleaseOutcome::RolledBack,
            reason: None,
            checks: Vec::new(),
            steps: Vec::new(),
            commits: audit::Commits {
                released: p.base.clone(),
                ..Default::default()
            },
            timings: Default::default(),
            rollback: None,
        });
    rec.outcome = ReleaseOutcome::RolledBack;
    rec.finished.get_or_insert(p.at);
    rec.reason = Some(format!(
        "rolled back by {} to {}: {}",
        p.request.principal, p.plan.to.release, p.request.reason
    ));
    rec.rollback = Some(rollback_record(
        &p.plan,
        &p.request.principal,
        &p.request,
        p.at,
    ));
    rec.commits.rollback = Some(commit.to_string());
    let on = rec.commits.released.clone();
    repo.update_note(&on, &mut |old| {
        let mut n = Note::parse(old);
        n.upsert(rec.clone());
        n.to_text()
    })?;
    Ok(())
}
