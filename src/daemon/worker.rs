//! One env's worker: it takes the poll's `Job` (a head and the envs as
//! that poll judged them), runs the engine for it on its own cache clone
//! (synced from the poll's cache on disk, not fetched again),
//! reports what happened to the shared state, and retries with the
//! daemon's one `Backoff` policy. A failing env never stalls another.

use super::{Control, LogReporter, Shared, release_trailer};
use crate::audit;
use crate::config::DaemonConfig;
use crate::engine::{EnvOutcome, EnvRelease};
use crate::source::GitRepo;
use crate::wiring;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What a worker's reconcile did.
#[derive(Debug)]
pub(super) enum Reconciled {
    /// The env runs what its head pins.
    InSync,
    /// The branch moved after the poll that dispatched this run.
    MovedOn,
    /// A manual rollback holds the env until its commit lands.
    Held(String),
    /// This release already ended here (`outcome`); nothing left to do.
    Done {
        release: String,
        outcome: crate::audit::ReleaseOutcome,
    },
    /// The engine ran the release to `outcome`.
    Ran {
        release: String,
        outcome: EnvOutcome,
    },
}

impl Reconciled {
    fn waiting(&self) -> bool {
        matches!(
            self,
            Reconciled::Ran {
                outcome: EnvOutcome::Waiting { .. },
                ..
            }
        )
    }
}

impl std::fmt::Display for Reconciled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reconciled::InSync => f.write_str("in sync"),
            Reconciled::Held(why) => write!(f, "held by a manual rollback: {why}"),
            Reconciled::MovedOn => {
                f.write_str("the branch moved on since the poll; the next poll judges its new head")
            }
            Reconciled::Done { release, outcome } => {
                write!(f, "{release}: {outcome} (nothing left to do)")
            }
            Reconciled::Ran { release, outcome } => match outcome {
                EnvOutcome::Complete => write!(f, "{release}: complete"),
                EnvOutcome::Promoted { env, .. } => write!(f, "{release}: promoted to {env}"),
                EnvOutcome::Waiting { env, reason } => {
                    write!(f, "{release}: waiting before {env}: {reason}")
                }
                EnvOutcome::Failed { reason, .. } => {
                    write!(f, "{release}: failed and reverted: {reason}")
                }
                EnvOutcome::Inconclusive { reason } => {
                    write!(f, "{release}: inconclusive: {reason}")
                }
                EnvOutcome::Aborted { reason } => write!(f, "{release}: {reason}"),
            },
        }
    }
}

/// Why a worker's reconcile did not run the release. `Busy` is retried at
/// the next poll; everything else pauses the env's worker with backoff.
#[derive(Debug, thiserror::Error)]
pub(super) enum ReconcileError {
    /// Another process releases this env now.
    #[error("busy: {0}")]
    Busy(String),
    /// Git (fetch, objects, notes) did not answer or refused.
    #[error(transparent)]
    Git(#[from] crate::source::GitError),
    /// The env cannot be acted on (broken, untrusted, missing) or its
    /// adapters cannot be made.
    #[error(transparent)]
    Env(#[from] wiring::WiringError),
    /// The env's overlay at the commit cannot be read or does not render.
    #[error(transparent)]
    Images(#[from] wiring::ImagesError),
    #[error("state dir: {0}")]
    Store(#[from] crate::engine::store::StoreError),
    /// The engine paused the release (infrastructure) or refused it.
    #[error(transparent)]
    Engine(crate::engine::EngineError),
}

/// Everything one env's worker needs.
pub(super) struct Worker {
    pub(super) env: String,
    pub(super) cfg: DaemonConfig,
    pub(super) config_file: PathBuf,
    pub(super) shared: Arc<Shared>,
    pub(super) stop: Arc<AtomicBool>,
    pub(super) control: Arc<Control>,
}

/// What the poll hands a worker: the head to reconcile and every env as
/// that poll judged it (loaded and trust-checked once per poll, not once
/// per worker).
#[derive(Debug, Clone)]
pub(super) struct Job {
    pub(super) commit: String,
    pub(super) slots: Arc<Vec<wiring::EnvSlot>>,
    /// The poll's cache, which fetched `commit`.
    pub(super) source: Arc<PathBuf>,
}

impl Worker {
    /// Runs the engine for the job's commit of this env. Blocking. The
    /// worker's own cache (it writes from there) is synced from the poll's
    /// on disk, not fetched again; the envs are the poll's.
    fn reconcile(
        &self,
        ws: &mut wiring::Workspace,
        job: &Job,
    ) -> Result<Reconciled, ReconcileError> {
        let commit = job.commit.as_str();
        let synced = ws.repo.sync_from(&job.source)?;
        let slots = job.slots.as_slice();
        let env = wiring::ready_env(slots, &self.env)?;
        // Our own write (a revert, a promotion) may be ahead of the poll.
        if synced.heads.get(&env.branch).map(String::as_str) != Some(commit) {
            return Ok(Reconciled::MovedOn);
        }
        let images = ws.images_at(commit, &env.overlay)?;
        let (repo, signer, store) = (&mut ws.repo, &ws.signer, &ws.store);
        let next = wiring::next_of(slots, env);
        let trust = wiring::release_trust(&self.cfg.trust, signer, slots, env);
        let retry = self.control.retry.swap(false, Ordering::Relaxed);
        let in_progress = store.release(&env.name)?.filter(|s| s.commit == commit);
        // What runs is what the branch says (e.g. after a revert): nothing to do.
        if in_progress.is_none()
            && store
                .last_good(&env.name)?
                .is_some_and(|g| g.images == images)
        {
            return Ok(Reconciled::InSync);
        }
        // Finished here already (the state dir may be shared with another
        // daemon whose note has not reached our poll yet): done. Its record
        // goes to git if it is not there (an outage at its end).
        if let Some(s) = in_progress.as_ref().filter(|s| {
            s.phase == crate::engine::store::Phase::Finished
                && (s.record.outcome.is_final()
                    || (s.record.outcome == crate::audit::ReleaseOutcome::Aborted && !retry))
        }) {
            let note = audit::Note::parse(repo.note(commit)?.as_deref());
            if !note.records.contains(&s.record) {
                let record = s.record.clone();
                repo.update_note(commit, &mut |old| {
                    let mut n = audit::Note::parse(old);
                    n.upsert(record.clone());
                    n.to_text()
                })?;
            }
            return Ok(Reconciled::Done {
                release: s.release.clone(),
                outcome: s.record.outcome,
            });
        }
        let notes = repo.notes()?;
        let release = match (&in_progress, release_trailer(&repo.message(commit)?)) {
            (Some(s), _) => s.release.clone(),
            (None, Some(id)) => id,
            (None, None) => {
                let ids: Vec<String> = audit::all_records(&notes)
                    .into_iter()
                    .map(|r| r.release)
                    .collect();
                audit::next_release_id(
                    ids.iter().map(String::as_str),
                    chrono::Utc::now().date_naive(),
                )
            }
        };
        let note = audit::Note::parse(repo.note(commit)?.as_deref());
        let done = note.records.iter().find(|r| {
            r.release == release
                && r.env == env.name
                && (r.outcome.is_final()
                    || (r.outcome == crate::audit::ReleaseOutcome::Aborted && !retry))
        });
        if let Some(r) = done {
            // Say what happened, not only that nothing is left to do.
            return Ok(Reconciled::Done {
                release,
                outcome: r.outcome,
            });
        }
        let local = self.cfg.local_stack_dir();
        let mut adapters = wiring::adapters(
            env,
            &local,
            self.cfg.prometheus.as_deref(),
            self.cfg.scrape_settle,
        )?;
        adapters.attestation_key = wiring::attestation_key(&self.cfg)?;
        let actor = format!(
            "{} <{}> (daemon)",
            self.cfg.identity.name, self.cfg.identity.email
        );
        let r = EnvRelease {
            env,
            next,
            commit,
            release: &release,
            actor: &actor,
            trust: &trust,
        };
        if let Ok(mut e) = self.shared.envs.lock()
            && let Some(s) = e.get_mut(&self.env)
        {
            s.release = Some(release.clone());
            s.busy = true;
        }
        let span = tracing::info_span!("reconcile", env = %env.name, release = %release, commit = %&commit[..12.min(commit.len())]);
        let _guard = span.enter();
        let started = Instant::now();
        let result = wiring::run_env(
            repo,
            store,
            signer,
            &adapters,
            &r,
            &self.stop,
            &self.control.abort,
            &mut LogReporter,
        );
        // An abort asked for is spent by this run, whatever ended it.
        self.control.abort.store(false, Ordering::Relaxed);
        self.shared
            .metrics
            .observe(&env.name, started.elapsed(), &result, store, &release);
        match result {
            Ok(outcome) => Ok(Reconciled::Ran { release, outcome }),
            Err(crate::engine::EngineError::Busy(m)) => Err(ReconcileError::Busy(m)),
            Err(crate::engine::EngineError::Held(m)) => Ok(Reconciled::Held(m)),
            Err(e) => Err(ReconcileError::Engine(e)),
        }
    }

    /// The worker loop: runs on its own thread, one reconcile at a time.
    pub(super) fn run(self, mut rx: watch::Receiver<Option<Job>>) {
        let cache = self.cfg.cache_dir.join(format!("env-{}", self.env));
        let mut handle: Option<wiring::Workspace> = None;
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(300));
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let Some(job) = rx.borrow_and_update().clone() else {
                if futures_wait(&mut rx, &self.stop) {
                    continue;
                }
                return;
            };
            if handle.is_none() {
                match wiring::Workspace::new(&self.cfg, &self.config_file, &cache) {
                    Ok(h) => handle = Some(h),
                    Err(e) => {
                        tracing::warn!(env = %self.env, error = %e, "cannot open the repo; retrying");
                        if !pause(backoff.failed(), &self.stop) {
                            return;
                        }
                        continue;
                    }
                }
            }
            let Some(ws) = handle.as_mut() else {
                continue;
            };
            let outcome = self.reconcile(ws, &job);
            let waiting = matches!(&outcome, Ok(r) if r.waiting());
            if let Ok(mut e) = self.shared.envs.lock()
                && let Some(s) = e.get_mut(&self.env)
            {
                s.busy = false;
                s.waiting = waiting;
                match &outcome {
                    Ok(m) => {
                        s.outcome = Some("ok".into());
                        s.detail = Some(m.to_string());
                    }
                    Err(m) => {
                        s.outcome = Some("error".into());
                        s.detail = Some(m.to_string());
                    }
                }
            }
            match outcome {
                Ok(m) => {
                    tracing::info!(env = %self.env, "{m}");
                    backoff.succeeded();
                }
                Err(m @ ReconcileError::Busy(_)) => {
                    // Another process releases this env: look again each poll.
                    tracing::info!(env = %self.env, "{m}; retrying");
                    if !pause_or_change(self.cfg.poll_interval, &self.stop, &mut rx) {
                        return;
                    }
                    continue;
                }
                Err(m) => {
                    // Infrastructure or config trouble: pause, retry with backoff.
                    tracing::warn!(env = %self.env, error = %m, "reconcile paused");
                    // A new head ends the pause early; shutdown ends it at once.
                    if !pause_or_change(backoff.failed(), &self.stop, &mut rx) {
                        return;
                    }
                    continue;
                }
            }
            if waiting {
                tracing::debug!(env = %self.env, "waiting release: retried on the next poll or window");
            }
            if !futures_wait(&mut rx, &self.stop) {
                return;
            }
        }
    }
}

/// Blocks this (non-async) thread until the watch changes or stop is set.
pub(super) fn futures_wait(rx: &mut watch::Receiver<Option<Job>>, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        match rx.has_changed() {
            Ok(true) => return true,
            Ok(false) => std::thread::sleep(Duration::from_millis(200)),
            Err(_) => return false,
        }
    }
}

/// Whether `env` runs what its head pins: its last good release has the
/// same images as the head renders, and no release is in progress there.
pub(super) fn in_sync(
    ws: &mut wiring::Workspace,
    env: &crate::config::Env,
    head: Option<&String>,
) -> bool {
    let Some(head) = head else { return true };
    if ws
        .store
        .release(&env.name)
        .ok()
        .flatten()
        .is_some_and(|s| s.phase != crate::engine::store::Phase::Finished)
    {
        return false;
    }
    let Ok(Some(good)) = ws.store.last_good(&env.name) else {
        return false;
    };
    ws.images_at(head, &env.overlay)
        .is_ok_and(|images| images == good.images)
}

/// Sleeps `d` in small steps; false when stop was set.
pub(super) fn pause(d: Duration, stop: &AtomicBool) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    !stop.load(Ordering::Relaxed)
}

/// Like `pause`, but a change of the watched head ends it early.
pub(super) fn pause_or_change(
    d: Duration,
    stop: &AtomicBool,
    rx: &mut watch::Receiver<Option<Job>>,
) -> bool {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        if rx.has_changed().unwrap_or(false) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    !stop.load(Ordering::Relaxed)
}

/// The daemon's one retry policy, for the poll's fetch and every worker:
/// after `n` failures in a row wait `base × 2^n`, jittered ±50 % so
/// replicas and envs do not retry in step, never over `cap`. The poll's
/// base is the poll interval (cap 10 minutes); a worker's is 1 s (cap 5
/// minutes). A success resets it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Backoff {
    pub(super) base: Duration,
    cap: Duration,
    failures: u32,
}

impl Backoff {
    pub(super) fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap,
            failures: 0,
        }
    }

    /// One more failure: how long to wait before trying again.
    pub(super) fn failed(&mut self) -> Duration {
        let d = self
            .base
            .saturating_mul(2u32.saturating_pow(self.failures.min(16)));
        self.failures = self.failures.saturating_add(1);
        jitter(d.min(self.cap)).min(self.cap)
    }

    pub(super) fn succeeded(&mut self) {
        self.failures = 0;
    }
}

/// ±50% jitter.
pub(super) fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let f = 0.5 + (nanos % 1000) as f64 / 1000.0;
    d.mul_f64(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_caps_and_resets() {
        let base = Duration::from_secs(2);
        let mut b = Backoff::new(base, Duration::from_secs(60));
        for n in 0..10u32 {
            let d = b.failed();
            let nominal = base
                .saturating_mul(2u32.pow(n))
                .min(Duration::from_secs(60));
            assert!(
                d >= nominal / 2 && d <= nominal.mul_f64(1.5).min(Duration::from_secs(60)),
                "failure {n}: {d:?} vs {nominal:?}"
            );
        }
        b.succeeded();
        assert!(b.failed() <= base.mul_f64(1.5));
    }
}
