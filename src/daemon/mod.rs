//! The daemon: a long-running reconciler around the release engine.
//!
//! - One fetch of every env branch per poll (its own cache), also
//!   triggered at once by a filesystem watch on file:// remotes and by the
//!   webhook; exponential backoff with jitter when fetching fails. While
//!   git is unreachable nothing is applied, pruned or reverted.
//! - One worker per env, each with its own cache clone: a new head of
//!   `env/E` runs the engine for E (the same `wiring::run_env` as
//!   `release`); a failing env never stalls the others. A release waiting
//!   for a window or an approval is retried every poll and when a
//!   promotion window opens (scheduler).
//! - HTTP (`http`): health, readiness, metrics, JSON API, webhook, token-
//!   protected calls. `sd-notify`: READY=1 once serving, WATCHDOG=1 from
//!   the main loop, STOPPING=1 on shutdown.
//! - SIGTERM: no new work; a running rollout parks at its next interval
//!   (all traffic on stable, state saved) and resumes on restart; exit
//!   within a bound. SIGHUP: reload the config as a validated diff.
//!
//! Modules: `reconcile` (one poll: the snapshot, the scheduled jobs, the
//! dispatch of typed jobs to workers), `worker` (one env's reconcile, the
//! retry policy), `http`, `metrics`; the pure job scheduler is the core's `schedule`.

pub mod http;
pub mod metrics;
mod reconcile;
mod worker;

use crate::schedule;
use worker::Backoff;

use crate::audit::{self, Record};
use crate::config::DaemonConfig;
use crate::engine::Reporter;
use crate::rollout::IntervalResult;
use crate::source::GitRepo;
use crate::wiring;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Config(#[from] crate::config::DaemonConfigError),
    #[error("{0}")]
    Start(String),
}

/// Why a fetch happens now.
#[derive(Debug, Clone, Copy)]
pub enum Trigger {
    Webhook,
    Watch,
    Api,
}

/// What one env's worker last did, for the API.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct EnvState {
    pub branch: String,
    pub head: Option<String>,
    /// `ready`, `broken`, `untrusted` or `missing` (see `wiring::SlotState`).
    pub status: String,
    /// Why the env is not ready; nothing runs there until it is fixed.
    pub problem: Option<String>,
    pub last_fetch: Option<chrono::DateTime<chrono::Utc>>,
    pub release: Option<String>,
    pub outcome: Option<String>,
    pub detail: Option<String>,
    pub busy: bool,
    /// The last release here is live and waits to promote (a window or an
    /// approval): the poll retries it.
    pub waiting: bool,
    /// A manual rollback done live whose commit has not landed: nothing is
    /// released here until it does.
    pub held: Option<String>,
}

/// An operator's hold on one env's worker (the API's `abort` and `retry`).
#[derive(Debug, Default)]
pub struct Control {
    /// Stop the running rollout at its next interval, record `aborted`.
    pub abort: AtomicBool,
    /// Run the head again even if its release ended aborted or paused.
    pub retry: AtomicBool,
}

/// Why an API call was refused (status and message).
#[derive(Debug)]
pub enum ApiError {
    NotFound(String),
    Forbidden(String),
    Conflict(String),
    Unavailable(String),
}

/// What the HTTP side and the loop share.
pub struct Shared {
    pub controls: Mutex<BTreeMap<String, Arc<Control>>>,
    /// The loaded config (SIGHUP replaces it).
    pub cfg: Mutex<DaemonConfig>,
    /// The API's own clone of the config repo (approvals are written there).
    api_repo: Mutex<Option<wiring::Workspace>>,
    /// The daemon config's path, for messages.
    config_file: PathBuf,
    pub metrics: metrics::Metrics,
    pub envs: Mutex<BTreeMap<String, EnvState>>,
    pub records: Mutex<Vec<Record>>,
    pub trigger: mpsc::Sender<Trigger>,
    /// Env names whose drift check should run now (cron or API).
    pub drift: mpsc::Sender<String>,
    /// Envs whose drift check is running (one at a time per env).
    drift_running: Mutex<std::collections::BTreeSet<String>>,
    pub token: Mutex<Option<String>>,
    pub webhook_secret: Mutex<Option<Vec<u8>>>,
    last_fetch_ok: Mutex<Option<Instant>>,
    poll_interval: Mutex<Duration>,
}

impl Shared {
    /// Claims `env` for a drift check or drill: false when one runs there.
    fn claim(&self, env: &str) -> bool {
        self.drift_running
            .lock()
            .map(|mut r| r.insert(env.to_string()))
            .unwrap_or(false)
    }

    fn unclaim(&self, env: &str) {
        if let Ok(mut r) = self.drift_running.lock() {
            r.remove(env);
        }
    }

    /// The control of `env`, created on first use.
    pub fn control(&self, env: &str) -> Arc<Control> {
        match self.controls.lock() {
            Ok(mut c) => c.entry(env.to_string()).or_default().clone(),
            Err(_) => Arc::new(Control::default()),
        }
    }

    /// Carries out an operator's signed rollback of `env` (see
    /// `engine::rollback`): from the last fetched state when git does not
    /// answer. A release this daemon runs there stops at its next step.
    /// Blocking.
    pub fn rollback(
        &self,
        env: &str,
        request: &crate::rollback::Request,
    ) -> Result<crate::engine::rollback::Done, ApiError> {
        self.with_api_workspace(|cfg, ws| self.rollback_in(cfg, ws, env, request))
    }

    fn rollback_in(
        &self,
        cfg: &DaemonConfig,
        ws: &mut wiring::Workspace,
        env: &str,
        request: &crate::rollback::Request,
    ) -> Result<crate::engine::rollback::Done, ApiError> {
        use crate::engine::rollback::RollbackError as E;
        let unavailable = |e: &dyn std::fmt::Display| ApiError::Unavailable(e.to_string());
        let others = [cfg.cache_dir.join("poll")];
        if let Some(e) = ws
            .refresh_or_local(&cfg.remote, &others)
            .map_err(|e| unavailable(&e))?
        {
            tracing::warn!(env, error = %e, "rollback from the last fetched state");
        }
        let target = ws
            .env(env)
            .map_err(|e| ApiError::Conflict(e.to_string()))?
            .clone();
        // A release running here stops at its next step: the hold.
        let adapters = wiring::adapters(
            &target,
            &cfg.local_stack_dir(),
            cfg.prometheus.as_deref(),
            cfg.scrape_settle,
        )
        .map_err(|e| unavailable(&e))?;
        let result = wiring::rollback(ws, &adapters, &target, request, Duration::from_secs(120));
        let label = match &result {
            Ok(d) => match d.commit {
                crate::engine::rollback::Landed::Pushed { .. } => "pushed",
                crate::engine::rollback::Landed::Queued { .. } => "queued",
                crate::engine::rollback::Landed::Conflict { .. } => "conflict",
            },
            Err(_) => "refused",
        };
        self.metrics
            .rollbacks
            .get_or_create(&metrics::OutcomeLabels {
                env: env.to_string(),
                outcome: label.to_string(),
            })
            .inc();
        let done = result.map_err(|e| match e {
            E::Request(_) => ApiError::Forbidden(e.to_string()),
            E::Plan(_) | E::Pending { .. } | E::Signature { .. } => {
                ApiError::Conflict(e.to_string())
            }
            other => ApiError::Unavailable(other.to_string()),
        })?;
        tracing::info!(env, from = %done.from, to = %done.to, by = %done.by, commit = ?done.commit, "rolled back by an operator");
        let held = ws.store.rollback_pending(env).ok().flatten();
        if let Ok(mut m) = self.envs.lock()
            && let Some(s) = m.get_mut(env)
        {
            s.held = held.map(|p| p.summary());
        }
        Ok(done)
    }

    /// Accepts an approval signed elsewhere: `release` into `env`, an SSH
    /// signature (namespace platform-capstone-approval) over
    /// `platform-capstone approve <release> --env <env>\n`. Verified
    /// against `env`'s pinned approvers, or its policies/approvers at a
    /// branch head the trust root accepts, then stored
    /// in the note of the commit the release is promoted from (pushed with
    /// compare-and-swap). Blocking. The approver's principal on success.
    pub fn accept_approval(
        &self,
        release: &str,
        env: &str,
        signature: &str,
    ) -> Result<String, ApiError> {
        self.with_api_workspace(|cfg, ws| Self::approval_in(cfg, ws, release, env, signature))
    }

    /// The API's own workspace (`cache_dir/api`, signing with the daemon's
    /// key: approvals land in notes, rollbacks commit), made on first use,
    /// with the trust root as the config says now.
    fn with_api_workspace<R>(
        &self,
        f: impl FnOnce(&DaemonConfig, &mut wiring::Workspace) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let cfg = self
            .cfg
            .lock()
            .map_err(|_| ApiError::Unavailable("state poisoned".into()))?
            .clone();
        let mut slot = self
            .api_repo
            .lock()
            .map_err(|_| ApiError::Unavailable("state poisoned".into()))?;
        if slot.is_none() {
            let ws = wiring::Workspace::new(&cfg, &self.config_file, &cfg.cache_dir.join("api"))
                .map_err(|e| ApiError::Unavailable(e.to_string()))?;
            *slot = Some(ws);
        }
        let Some(ws) = slot.as_mut() else {
            return Err(ApiError::Unavailable("no repo".into()));
        };
        ws.trust = cfg.trust.clone();
        f(&cfg, ws)
    }

    fn approval_in(
        cfg: &DaemonConfig,
        ws: &mut wiring::Workspace,
        release: &str,
        env: &str,
        signature: &str,
    ) -> Result<String, ApiError> {
        let unavailable = |e: &dyn std::fmt::Display| ApiError::Unavailable(e.to_string());
        ws.refresh(false).map_err(|e| unavailable(&e))?;
        let (repo, slots) = (&mut ws.repo, &ws.slots);
        let names = &cfg.trust.envs;
        let Some(i) = names.iter().position(|e| e == env) else {
            return Err(ApiError::NotFound(format!(
                "{env}: not a pinned environment"
            )));
        };
        let Some(source) = i.checked_sub(1).map(|s| &names[s]) else {
            return Err(ApiError::NotFound(format!(
                "{env}: no environment promotes into it"
            )));
        };
        let record = audit::all_records(&repo.notes().map_err(|e| unavailable(&e))?)
            .into_iter()
            .find(|r| r.release == release && &r.env == source)
            .ok_or_else(|| ApiError::NotFound(format!("{release}: no record of it in {source}")))?;
        // Approvers as the engine will check them: pinned, or the env's
        // own file at a head the trust root accepts.
        let pinned = cfg.trust.anchors(env).and_then(|a| a.approvers.clone());
        let approvers = match pinned {
            Some(a) => a,
            None => {
                let own = slots.iter().find(|s| s.name == env);
                let Some(head) = own
                    .filter(|s| s.env().is_some())
                    .and_then(|s| s.head.clone())
                else {
                    return Err(ApiError::Conflict(format!(
                        "{env} is {}: {}",
                        own.map_or("missing", |s| s.status()),
                        own.and_then(|s| s.problem()).unwrap_or_default()
                    )));
                };
                let tree = repo.reader(&head).map_err(|e| unavailable(&e))?;
                crate::engine::promote::signers(tree.as_ref(), crate::config::APPROVERS_FILE)
                    .map_err(ApiError::Forbidden)?
            }
        };
        let principal =
            crate::engine::promote::verify_approval(&approvers, release, env, signature)
                .map_err(ApiError::Forbidden)?;
        crate::engine::promote::store_approval(
            repo,
            &record.commits.released,
            audit::Approval {
                release: release.into(),
                env: env.into(),
                approver: principal.clone(),
                signature: signature.trim().to_string() + "\n",
            },
        )
        .map_err(|e| unavailable(&e))?;
        tracing::info!(release, env, approver = %principal, "approval accepted");
        Ok(principal)
    }

    /// Ready: the config loaded and the repo fetched within three intervals.
    /// Also: the state dir takes a write (a release persists every step
    /// there; read-only or full, nothing could run safely). Broken or
    /// untrusted envs do not make the daemon unready: they are reported
    /// per env and the others run.
    pub fn ready(&self) -> Result<(), String> {
        let state_dir = self
            .cfg
            .lock()
            .map_err(|_| "state poisoned")?
            .state_dir
            .clone();
        let probe = state_dir.join(".readyz");
        crate::fsutil::write_atomic(&probe, b"ok\n", None).map_err(|e| {
            format!(
                "the state dir {} cannot be written ({e}); rollouts cannot persist their steps",
                state_dir.display()
            )
        })?;
        let last = *self.last_fetch_ok.lock().map_err(|_| "state poisoned")?;
        let poll = *self.poll_interval.lock().map_err(|_| "state poisoned")?;
        match last {
            None => Err("the config repo has not been fetched yet".into()),
            Some(t) if t.elapsed() > poll * 3 => Err(format!(
                "last successful fetch {} s ago (poll interval {} s)",
                t.elapsed().as_secs(),
                poll.as_secs()
            )),
            Some(_) => Ok(()),
        }
    }
}

fn read_secret(path: &Option<PathBuf>) -> Result<Option<String>, String> {
    match path {
        None => Ok(None),
        Some(p) => std::fs::read_to_string(p)
            .map(|s| Some(s.trim().to_string()).filter(|s| !s.is_empty()))
            .map_err(|e| format!("{}: {e}", p.display())),
    }
}

/// Logs what the engine reports, as structured events.
struct LogReporter;

impl Reporter for LogReporter {
    fn checks(&mut self, checks: &crate::gates::run::Checks) {
        for v in checks.verdicts() {
            tracing::info!(gate = v.gate, outcome = %v.outcome, findings = v.findings.len(), "gate");
        }
    }
    fn step(&mut self, name: &str, result: &str) {
        tracing::info!(step = name, result, "rollout step");
    }
    fn interval(&mut self, step: &str, n: usize, result: &IntervalResult) {
        tracing::debug!(step, interval = n, result = ?result, "analysis interval");
    }
    fn info(&mut self, line: &str) {
        tracing::info!("{line}");
    }
}

/// The release id a commit carries (`Release-Id:` trailer), if any.
pub fn release_trailer(message: &str) -> Option<String> {
    message
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("Release-Id:"))
        .map(|v| v.trim().to_string())
        .filter(|v| v.starts_with("rel-"))
}

fn notify_systemd(state: &[sd_notify::NotifyState]) {
    let _ = sd_notify::notify(state);
}

/// Runs the daemon until SIGTERM.
pub fn run(config_file: &Path) -> Result<(), DaemonError> {
    let cfg = DaemonConfig::load(config_file)?;
    init_logging(&cfg);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| DaemonError::Start(format!("runtime: {e}")))?;
    rt.block_on(serve(cfg, config_file.to_path_buf()))
}

fn init_logging(cfg: &DaemonConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&cfg.log_level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = if cfg.log_json {
        builder.json().with_current_span(true).try_init()
    } else {
        builder.try_init()
    };
}

async fn serve(cfg: DaemonConfig, config_file: PathBuf) -> Result<(), DaemonError> {
    let (trigger_tx, mut trigger_rx) = mpsc::channel::<Trigger>(16);
    let (drift_tx, mut drift_rx) = mpsc::channel::<String>(64);
    let shared = Arc::new(Shared::new(
        &cfg,
        &config_file,
        trigger_tx.clone(),
        drift_tx,
    )?);
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| DaemonError::Start(format!("listen on {}: {e}", cfg.listen)))?;
    let (http_stop_tx, http_stop_rx) = watch::channel(false);
    let app = http::router(shared.clone());
    let server = tokio::spawn(http::serve(listener, app, http_stop_rx));
    tracing::info!(listen = %cfg.listen, remote = %cfg.remote, "daemon started");
    notify_systemd(&[sd_notify::NotifyState::Ready]);

    let _watcher = watch_remote(&cfg.remote, trigger_tx.clone());

    let stop = Arc::new(AtomicBool::new(false));
    let mut cfg = cfg;
    let mut poll_repo: Option<Arc<Mutex<wiring::Workspace>>> = None;
    let mut workers: BTreeMap<String, reconcile::WorkerHandle> = BTreeMap::new();
    let mut backoff = Backoff::new(cfg.poll_interval, Duration::from_secs(600));
    let mut reported = BTreeMap::new();
    // A deadline, not a duration: other wake-ups must not push the poll back.
    let mut poll_at = tokio::time::Instant::now();
    let mut scheduler = schedule::Scheduler::new(Vec::new(), chrono::Utc::now());
    let mut job_key: Vec<(String, String)> = Vec::new();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| DaemonError::Start(format!("SIGTERM handler: {e}")))?;
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| DaemonError::Start(format!("SIGHUP handler: {e}")))?;
    let mut watchdog = tokio::time::interval(Duration::from_secs(10));
    loop {
        let wake = scheduler
            .next_wake()
            .and_then(|t| (t - chrono::Utc::now()).to_std().ok())
            .unwrap_or(Duration::from_secs(3600));
        let mut due_jobs = Vec::new();
        tokio::select! {
            _ = tokio::time::sleep_until(poll_at) => {}
            Some(t) = trigger_rx.recv() => { tracing::debug!(trigger = ?t, "fetch triggered"); }
            _ = tokio::time::sleep(wake) => { due_jobs = scheduler.due(chrono::Utc::now()); }
            _ = watchdog.tick() => {
                notify_systemd(&[sd_notify::NotifyState::Watchdog]);
                continue;
            }
            Some(env) = drift_rx.recv() => {
                start_drift(&shared, &cfg, &config_file, &env);
                continue;
            }
            _ = term.recv() => break,
            _ = hup.recv() => {
                reload(&config_file, &mut cfg, &shared);
                backoff.base = cfg.poll_interval;
                continue;
            }
        }
        // Drift checks and drills start on their own threads; window
        // openings retry waiting releases below.
        due_jobs.retain(|job| {
            tracing::info!(job, "scheduled job due");
            !start_job(&shared, &cfg, &config_file, job)
        });
        // One fetch for every env branch.
        let repo = match &poll_repo {
            Some(r) => r.clone(),
            None => {
                let (c, f, file) = (cfg.clone(), cfg.cache_dir.join("poll"), config_file.clone());
                // Signing: the poll records accepted history rewrites in notes.
                match tokio::task::spawn_blocking(move || wiring::Workspace::new(&c, &file, &f))
                    .await
                {
                    Ok(Ok(r)) => {
                        let r = Arc::new(Mutex::new(r));
                        poll_repo = Some(r.clone());
                        r
                    }
                    other => {
                        let e = match other {
                            Ok(Err(e)) => e.to_string(),
                            Err(e) => e.to_string(),
                            Ok(Ok(_)) => String::new(),
                        };
                        tracing::warn!(error = %e, "cannot open the config repo");
                        shared.metrics.fetch_errors.inc();
                        poll_at = tokio::time::Instant::now() + backoff.failed();
                        continue;
                    }
                }
            }
        };
        let trust = cfg.trust.clone();
        let actor = format!("{} <{}> (daemon)", cfg.identity.name, cfg.identity.email);
        let mut fetching = tokio::task::spawn_blocking(move || {
            let mut ws = repo.lock().map_err(|_| "poisoned".to_string())?;
            reconcile::snapshot(&mut ws, trust, &actor)
        });
        // The fetch runs on its own (bounded by git_timeout); meanwhile
        // the watchdog is fed, SIGTERM is heard and scheduled drift checks
        // and drills start — none of them waits on git.
        let mut stopping = false;
        let fetched = loop {
            let wake = scheduler
                .next_wake()
                .and_then(|t| (t - chrono::Utc::now()).to_std().ok())
                .unwrap_or(Duration::from_secs(3600));
            tokio::select! {
                r = &mut fetching => break r.unwrap_or_else(|e| Err(e.to_string())),
                _ = watchdog.tick() => notify_systemd(&[sd_notify::NotifyState::Watchdog]),
                _ = tokio::time::sleep(wake) => {
                    for job in scheduler.due(chrono::Utc::now()) {
                        if !start_job(&shared, &cfg, &config_file, &job) {
                            due_jobs.push(job);
                        }
                    }
                }
                _ = term.recv() => {
                    stopping = true;
                    break Err("shutting down".to_string());
                }
            }
        };
        if stopping {
            break;
        }
        let snap = match fetched {
            Ok(x) => x,
            Err(e) => {
                // Git unreachable: the last known good stays; nothing is dispatched.
                shared.metrics.fetch_errors.inc();
                let wait = backoff.failed();
                poll_at = tokio::time::Instant::now() + wait;
                tracing::warn!(error = %e, retry_in_s = wait.as_secs(), "fetch failed; keeping the last known good state");
                continue;
            }
        };
        backoff.succeeded();
        poll_at = tokio::time::Instant::now() + cfg.poll_interval;
        if let Ok(mut t) = shared.last_fetch_ok.lock() {
            *t = Some(Instant::now());
        }
        if let Ok(mut r) = shared.records.lock() {
            *r = snap.records.clone();
        }
        report_slots(&shared, &snap.slots, &mut reported);
        let slots = Arc::new(snap.slots.clone());
        // env/* branches nobody pinned define nothing: said once each.
        for branch in snap.heads.keys() {
            let name = branch.trim_start_matches(crate::source::ENV_BRANCH_PREFIX);
            if !cfg.trust.pins(name) && reported.insert(branch.clone(), (None, None)).is_none() {
                tracing::warn!(branch = %branch, "an env/* branch for no pinned environment (trust.envs); ignored");
            }
        }
        // A new job list (added, removed or re-timed jobs) restarts the scheduler.
        let jobs = reconcile::scheduled_jobs(&snap.envs);
        let key: Vec<(String, String)> = jobs
            .iter()
            .map(|(n, s)| (n.clone(), s.describe()))
            .collect();
        if key != job_key {
            scheduler = schedule::Scheduler::new(jobs, chrono::Utc::now());
            job_key = key;
        }
        let d = reconcile::Dispatch {
            shared: &shared,
            cfg: &cfg,
            config_file: &config_file,
            stop: &stop,
            window_opened: !due_jobs.is_empty(),
        };
        reconcile::dispatch(&d, &snap, &slots, &mut workers);
    }

    // SIGTERM: no new work; running rollouts park at their next interval.
    tracing::info!("SIGTERM: stopping; running rollouts park at their next interval");
    notify_systemd(&[sd_notify::NotifyState::Stopping]);
    stop.store(true, Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(75);
    for (env, (_, handle)) in workers {
        while !handle.is_finished() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !handle.is_finished() {
            tracing::warn!(
                env,
                "worker still busy at the shutdown deadline; its state is saved and resumes on restart"
            );
        }
    }
    let _ = http_stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    tracing::info!("stopped");
    Ok(())
}

impl Shared {
    fn new(
        cfg: &DaemonConfig,
        config_file: &Path,
        trigger: mpsc::Sender<Trigger>,
        drift: mpsc::Sender<String>,
    ) -> Result<Self, DaemonError> {
        Ok(Shared {
            drift,
            drift_running: Mutex::new(Default::default()),
            controls: Mutex::new(BTreeMap::new()),
            cfg: Mutex::new(cfg.clone()),
            api_repo: Mutex::new(None),
            config_file: config_file.to_path_buf(),
            metrics: metrics::Metrics::new(),
            envs: Mutex::new(BTreeMap::new()),
            records: Mutex::new(Vec::new()),
            trigger,
            token: Mutex::new(read_secret(&cfg.api_token_file).map_err(DaemonError::Start)?),
            webhook_secret: Mutex::new(
                read_secret(&cfg.webhook_secret_file)
                    .map_err(DaemonError::Start)?
                    .map(String::into_bytes),
            ),
            last_fetch_ok: Mutex::new(None),
            poll_interval: Mutex::new(cfg.poll_interval),
        })
    }
}

/// File watch on file:// remotes: a push there triggers a fetch at once.
fn watch_remote(
    remote: &str,
    trigger: mpsc::Sender<Trigger>,
) -> Option<notify::RecommendedWatcher> {
    use notify::Watcher;
    let path = crate::source::local_path_of(remote)?;
    let mut w = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        // Writes only: our own fetches read the remote, and reacting to
        // reads would fetch forever.
        use notify::event::{EventKind, ModifyKind};
        let write = |k: &EventKind| {
            matches!(
                k,
                EventKind::Create(_)
                    | EventKind::Remove(_)
                    | EventKind::Modify(
                        ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any
                    )
            )
        };
        if ev.is_ok_and(|e| {
            write(&e.kind) && e.paths.iter().any(|p| p.to_string_lossy().contains("refs"))
        }) {
            let _ = trigger.try_send(Trigger::Watch);
        }
    })
    .ok()?;
    w.watch(&path, notify::RecursiveMode::Recursive).ok()?;
    Some(w)
}

/// Starts a scheduled drift check (`drift:E`) or drill (`drill:E:S`) on a
/// thread of its own; false for any other job (a window opening).
fn start_job(shared: &Arc<Shared>, cfg: &DaemonConfig, config_file: &Path, job: &str) -> bool {
    if let Some(env) = job.strip_prefix("drift:") {
        start_drift(shared, cfg, config_file, env);
        true
    } else if let Some((env, scenario)) = job.strip_prefix("drill:").and_then(|j| j.split_once(':'))
    {
        start_drill(shared, cfg, config_file, env, scenario);
        true
    } else {
        false
    }
}

/// Publishes each pinned env's status (API, metrics) and logs a problem
/// once per env, head and reason, not every poll.
fn report_slots(
    shared: &Shared,
    slots: &[wiring::EnvSlot],
    reported: &mut BTreeMap<String, (Option<String>, Option<String>)>,
) {
    for slot in slots {
        let problem = slot.problem();
        let key = (slot.head.clone(), problem.clone());
        if reported.get(&slot.name) != Some(&key) {
            match &problem {
                Some(p) => {
                    tracing::warn!(env = %slot.name, status = slot.status(), problem = %p, "env not released until fixed")
                }
                None if reported.contains_key(&slot.name) => {
                    tracing::info!(env = %slot.name, "env ready again")
                }
                None => {}
            }
            reported.insert(slot.name.clone(), key);
        }
        for status in ["ready", "broken", "untrusted", "missing"] {
            shared
                .metrics
                .env_status
                .get_or_create(&metrics::StatusLabels {
                    env: slot.name.clone(),
                    status: status.into(),
                })
                .set(i64::from(status == slot.status()));
        }
        if let Ok(mut m) = shared.envs.lock() {
            let s = m.entry(slot.name.clone()).or_default();
            s.branch = slot.branch.clone();
            s.head = slot.head.clone();
            s.status = slot.status().into();
            s.problem = problem;
        }
    }
}

/// Runs `env`'s drift check on a thread of its own (one at a time per
/// env): heal and SLO hand-over as the env's config says, the report kept
/// in the state dir and, with `reports_branch`, committed there.
fn start_drift(shared: &Arc<Shared>, cfg: &DaemonConfig, config_file: &Path, env: &str) {
    if !shared.claim(env) {
        tracing::debug!(env, "drift check already running");
        return;
    }
    let (shared, cfg, config_file, env) = (
        shared.clone(),
        cfg.clone(),
        config_file.to_path_buf(),
        env.to_string(),
    );
    std::thread::spawn(move || {
        let span = tracing::info_span!("drift", env = %env);
        let _g = span.enter();
        let started = Instant::now();
        match drift_once(&cfg, &config_file, &env) {
            Ok(summary) => {
                tracing::info!(took_ms = started.elapsed().as_millis() as u64, "{summary}");
            }
            Err(e) => tracing::warn!(error = %e, "drift check failed"),
        }
        shared.unclaim(&env);
    });
}

/// A scheduled drill (game day) on a thread of its own; one at a time per
/// env (it shares the drift guard: a drill and a drift check never overlap).
fn start_drill(
    shared: &Arc<Shared>,
    cfg: &DaemonConfig,
    config_file: &Path,
    env: &str,
    scenario: &str,
) {
    let Ok(scenario) = scenario.parse::<crate::drill::Scenario>() else {
        return;
    };
    if !shared.claim(env) {
        tracing::info!(env, "drill skipped: a drift check or drill is running");
        return;
    }
    let (shared, cfg, config_file, env) = (
        shared.clone(),
        cfg.clone(),
        config_file.to_path_buf(),
        env.to_string(),
    );
    std::thread::spawn(move || {
        let span = tracing::info_span!("drill", env = %env, scenario = scenario.name());
        let _g = span.enter();
        let key = cfg.drill_key.as_ref().and_then(|p| {
            let pem = std::fs::read_to_string(p)
                .map_err(
                    |e| tracing::warn!(error = %e, path = %p.display(), "drill_key unreadable"),
                )
                .ok()?;
            crate::cosign_key::load(&pem)
                .map_err(|e| tracing::warn!(error = %e, "drill_key is not a cosign key"))
                .ok()
        });
        let ctx = crate::drill::run::DrillContext {
            cfg: &cfg,
            // The daemon holds no operator's key: the drills that roll
            // back by command say so instead of running.
            operator: None,
            config_file: &config_file,
            local: cfg.local_stack_dir(),
            prometheus: cfg.prometheus.clone(),
            cosign_key: key,
            demo_binary: cfg.demo_binary.clone(),
            fault_error_ratio: 0.3,
            fault_latency_ms: 300,
            exe: std::env::current_exe().unwrap_or_else(|_| PathBuf::from("platform-capstone")),
        };
        let run = crate::drill::run::run(&ctx, scenario, &env, &mut |l| tracing::debug!("{l}"));
        for l in run.summary_lines() {
            if run.success() {
                tracing::info!("{l}");
            } else {
                tracing::warn!(error = ?run.error, "{l}");
            }
        }
        shared.unclaim(&env);
    });
}

/// One drift check of `env` (blocking): the report's summary line.
fn drift_once(cfg: &DaemonConfig, config_file: &Path, env: &str) -> Result<String, String> {
    let cache = cfg.cache_dir.join(format!("drift-{env}"));
    let (ws, _) =
        wiring::Workspace::open(cfg, config_file, &cache, false).map_err(|e| e.to_string())?;
    let e = &ws.env(env).map_err(|e| e.to_string())?.clone();
    let wiring::Workspace {
        mut repo,
        signer,
        store,
        ..
    } = ws;
    let local = cfg.local_stack_dir();
    let adapters = match wiring::adapters(e, &local, cfg.prometheus.as_deref(), cfg.scrape_settle) {
        Ok(a) => a,
        Err(err) => {
            // The target cannot be looked at: a report that says so.
            let mut r = crate::drift::report::EnvReport::skipped(
                env,
                e.drift.mode,
                chrono::Utc::now(),
                String::new(),
            );
            r.skipped = None;
            r.config_error = Some(err.to_string());
            let md = crate::drift::report::markdown(std::slice::from_ref(&r));
            store.save_report(env, &r, &md).map_err(|e| e.to_string())?;
            return Err(err.to_string());
        }
    };
    let actor = format!("{} <{}> (daemon)", cfg.identity.name, cfg.identity.email);
    let before = store.latest_report(env).ok().flatten();
    let report = crate::drift::run::check(
        &mut repo,
        &store,
        &signer,
        &adapters,
        e,
        &actor,
        true,
        &mut LogReporter,
    )
    .map_err(|e| e.to_string())?;
    // The branch gets a commit when what the report says changed, not
    // every time it was checked.
    let changed = before.is_none_or(|mut b| {
        b.checked_at = report.checked_at;
        b != report
    });
    if let Some(branch) = cfg.reports_branch.as_ref().filter(|_| changed) {
        let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
        let md = crate::drift::report::markdown(std::slice::from_ref(&report));
        let files = vec![
            crate::source::FileChange {
                path: format!("reports/{env}.json"),
                content: Some(json.into_bytes()),
            },
            crate::source::FileChange {
                path: format!("reports/{env}.md"),
                content: Some(md.into_bytes()),
            },
        ];
        repo.commit_side_branch(branch, &format!("drift: {}", report.summary()), &files)
            .map_err(|e| format!("{branch}: {e}"))?;
    }
    Ok(report.summary())
}

/// SIGHUP: the new config replaces the old only if it loads; what cannot
/// change without a restart is said so.
fn reload(config_file: &Path, cfg: &mut DaemonConfig, shared: &Shared) {
    let applied = apply_reload(config_file, cfg, shared);
    shared
        .metrics
        .config_reloads
        .get_or_create(&metrics::ResultLabel {
            result: if applied { "applied" } else { "refused" }.into(),
        })
        .inc();
}

/// Whether the new config replaced the old.
fn apply_reload(config_file: &Path, cfg: &mut DaemonConfig, shared: &Shared) -> bool {
    let new = match DaemonConfig::load(config_file) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: the new config is invalid; keeping the old one");
            return false;
        }
    };
    let token = match read_secret(&new.api_token_file) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: api_token_file unreadable; keeping the old config");
            return false;
        }
    };
    let secret = match read_secret(&new.webhook_secret_file) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "SIGHUP: webhook_secret_file unreadable; keeping the old config");
            return false;
        }
    };
    for (field, changed) in [
        ("remote", new.remote != cfg.remote),
        ("listen", new.listen != cfg.listen),
        ("cache_dir", new.cache_dir != cfg.cache_dir),
        ("state_dir", new.state_dir != cfg.state_dir),
    ] {
        if changed {
            tracing::warn!(field, "SIGHUP: this field changes only on restart");
        }
    }
    if let Ok(mut t) = shared.token.lock() {
        *t = token;
    }
    if let Ok(mut s) = shared.webhook_secret.lock() {
        *s = secret.map(String::into_bytes);
    }
    if let Ok(mut p) = shared.poll_interval.lock() {
        *p = new.poll_interval;
    }
    if let Ok(mut c) = shared.cfg.lock() {
        *c = DaemonConfig {
            remote: cfg.remote.clone(),
            cache_dir: cfg.cache_dir.clone(),
            state_dir: cfg.state_dir.clone(),
            ..new.clone()
        };
    }
    tracing::info!(
        poll_interval_s = new.poll_interval.as_secs(),
        "SIGHUP: config reloaded"
    );
    let keep = (
        cfg.remote.clone(),
        cfg.listen,
        cfg.cache_dir.clone(),
        cfg.state_dir.clone(),
    );
    *cfg = new;
    (cfg.remote, cfg.listen, cfg.cache_dir, cfg.state_dir) = keep;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_ids_come_from_trailers() {
        assert_eq!(
            release_trailer("promote x\n\nRelease-Id: rel-2026-11-25-03\nSource-Branch: env/dev\n")
                .as_deref(),
            Some("rel-2026-11-25-03")
        );
        assert_eq!(release_trailer("fix the overlay\n"), None);
        assert_eq!(release_trailer("x\n\nRelease-Id: nonsense\n"), None);
    }
}
