//! Drills, the edges: each scenario breaks something real on purpose —
//! a faulty but properly signed version, a version signed by a stranger,
//! a live edit through podman, the config repo gone, Prometheus killed,
//! the engine killed mid-canary — and checks that the platform behaves,
//! timing each phase. Every drill releases only into its own env (never
//! promotes) and returns the env to where it started; a drill that cannot
//! (or whose checks fail) is a failure.
//!
//! The scenarios decide and check; what they do to the world goes through
//! a [`Lab`] ([`LocalLab`] on the local stack, a lab over the in-memory
//! fakes in the engine scenarios), and everything else through the ports
//! in [`Ground`]. The scenarios that build images or kill components need
//! the local stack (podman envs); on other targets they say so instead of
//! running.

use super::lab::{LIVE_EDIT, Lab, LocalLab};
use super::{DrillRun, Scenario};
use crate::audit::{self, Note};
use crate::config::{BurnWindow, DaemonConfig, Env, Severity};
use crate::drift::slo;
use crate::engine::rollback::Landed;
use crate::engine::store::{LastGood, Phase, Store};
use crate::engine::{EngineError, EnvOutcome, EnvRelease, Reporter};
use crate::ports::{Track, Workload};
use crate::rollback::{Request, To};
use crate::rollout::IntervalResult;
use crate::signing::Signer;
use crate::source::{Git2Repo, GitRepo};
use crate::wiring::{self, Adapters};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

/// Why a drill could not run or finish; its report carries the message as
/// `error`, and a drill that ends this way is a failure.
#[derive(Debug, thiserror::Error)]
pub enum DrillError {
    /// The drill cannot run here as things are: what is missing, what to do.
    #[error("{0}")]
    Precondition(String),
    #[error(transparent)]
    Wiring(#[from] wiring::WiringError),
    #[error(transparent)]
    Git(#[from] crate::source::GitError),
    #[error("state dir: {0}")]
    Store(#[from] crate::engine::store::StoreError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The drill's release stopped before it could show anything (paused).
    #[error("the release did not run: {0}")]
    ReleaseNotRun(String),
    #[error("target: {0}")]
    Target(#[from] crate::ports::TargetError),
    #[error("local stack: {0}")]
    Local(#[from] crate::local::LocalError),
    /// Building, signing or pushing a drill image.
    #[error("drill image: {0}")]
    Image(String),
    #[error("render: {0}")]
    Render(#[from] crate::render::RenderError),
    #[error("drift: {0}")]
    Drift(#[from] crate::drift::run::DriftError),
    #[error("rollback: {0}")]
    Rollback(#[from] crate::engine::rollback::RollbackError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What drills need beyond the daemon config.
pub struct DrillContext<'a> {
    pub cfg: &'a DaemonConfig,
    pub config_file: &'a Path,
    /// The local stack's state dir (podman envs).
    pub local: PathBuf,
    pub prometheus: Option<String>,
    /// Signs drill images; its public key must be trusted by the env
    /// (`policies/trust.toml`), as the release CI key is.
    pub cosign_key: Option<p256::ecdsa::SigningKey>,
    /// The static demo binary drill images are built from.
    pub demo_binary: Option<PathBuf>,
    /// The fault the rollback drill ships.
    pub fault_error_ratio: f64,
    pub fault_latency_ms: u64,
    /// This program, for the crash drill's child processes.
    pub exe: PathBuf,
    /// An operator's key (and principal) signing the drills' rollbacks by
    /// command; `None`: those drills say so instead of rolling back.
    pub operator: Option<Signer>,
}

/// Called at each engine mark (the metrics-outage drill kills Prometheus there).
type OnMark<'a> = Box<dyn FnMut(&str) + 'a>;

/// Progress lines and the moments the engine marks.
struct Marks<'a> {
    at: Vec<(String, Instant)>,
    on_mark: Option<OnMark<'a>>,
    say: &'a mut dyn FnMut(&str),
}

impl<'a> Marks<'a> {
    fn new(say: &'a mut dyn FnMut(&str)) -> Self {
        Self {
            at: Vec::new(),
            on_mark: None,
            say,
        }
    }

    fn when(&self, e: &str) -> Option<Instant> {
        self.at.iter().find(|(n, _)| n == e).map(|(_, t)| *t)
    }
}

impl Reporter for Marks<'_> {
    fn step(&mut self, name: &str, result: &str) {
        (self.say)(&format!("  {name}: {result}"));
    }
    fn interval(&mut self, step: &str, n: usize, result: &IntervalResult) {
        let r = match result {
            IntervalResult::Healthy => "healthy".to_string(),
            IntervalResult::Unhealthy(why) => format!("unhealthy: {why}"),
            IntervalResult::Inconclusive(why) => format!("inconclusive: {why}"),
        };
        (self.say)(&format!("  {step}: interval {n}: {r}"));
    }
    fn info(&mut self, line: &str) {
        (self.say)(&format!("  {line}"));
    }
    fn mark(&mut self, event: &str) {
        self.at.push((event.to_string(), Instant::now()));
        if let Some(f) = self.on_mark.as_mut() {
            f(event);
        }
    }
}

fn ms_between(a: Option<Instant>, b: Option<Instant>) -> Option<u64> {
    Some(b?.checked_duration_since(a?)?.as_millis() as u64)
}

/// Everything a scenario works with: the env's repo, signer, state and
/// ports, and the release it started from (where the drill returns it).
pub struct Ground<'w> {
    pub repo: &'w mut Git2Repo,
    pub signer: &'w Signer,
    pub store: &'w Store,
    pub env: Env,
    pub adapters: Adapters,
    /// The env's pinned operators (a rollback by command checks them).
    pub operators: Option<(crate::signing::AllowedSigners, String)>,
    start: LastGood,
}

impl<'w> Ground<'w> {
    /// The env must be quiet (no release in progress) and have a last good
    /// release to come back to.
    pub fn new(
        repo: &'w mut Git2Repo,
        signer: &'w Signer,
        store: &'w Store,
        env: Env,
        adapters: Adapters,
    ) -> Result<Self, DrillError> {
        if let Some(s) = store.release(&env.name)?
            && s.phase != Phase::Finished
        {
            return Err(DrillError::Precondition(format!(
                "{} is in progress in {}; drill when the env is quiet",
                s.release, env.name
            )));
        }
        let start = store
            .last_good(&env.name)?
            .ok_or_else(|| {
                DrillError::Precondition(format!(
                    "nothing has been released in {} yet: release a good version first (a drill needs a stable release to come back to)",
                    env.name
                ))
            })?;
        Ok(Ground {
            repo,
            signer,
            store,
            env,
            adapters,
            operators: None,
            start,
        })
    }
}

/// The scenarios' settings.
pub struct Plan<'a> {
    /// Signs drill images; its public key must be trusted by the env
    /// (`policies/trust.toml`), as the release CI key is.
    pub key: Option<&'a p256::ecdsa::SigningKey>,
    /// The fault the rollback drill ships.
    pub fault_error_ratio: f64,
    pub fault_latency_ms: u64,
    /// How long the git-outage drill watches the env without git (the
    /// daemon's poll interval, at most 5 s).
    pub outage_watch: Duration,
    /// Where the crash drill writes its version file.
    pub state_dir: &'a Path,
    /// Signs the drills' rollbacks by command.
    pub operator: Option<&'a Signer>,
}

impl<'a> Plan<'a> {
    pub fn of(ctx: &'a DrillContext<'a>) -> Self {
        Plan {
            key: ctx.cosign_key.as_ref(),
            fault_error_ratio: ctx.fault_error_ratio,
            fault_latency_ms: ctx.fault_latency_ms,
            outage_watch: ctx.cfg.poll_interval.min(Duration::from_secs(5)),
            state_dir: &ctx.cfg.state_dir,
            operator: ctx.operator.as_ref(),
        }
    }

    fn key(&self) -> Result<&'a p256::ecdsa::SigningKey, DrillError> {
        self.key.ok_or_else(|| {
            DrillError::Precondition(
                "--key (the release signing key the env trusts) is required".into(),
            )
        })
    }
}

fn release_id(g: &Ground) -> Result<String, DrillError> {
    let ids: Vec<String> = audit::all_records(&g.repo.notes()?)
        .into_iter()
        .map(|r| r.release)
        .collect();
    Ok(audit::next_release_id(
        ids.iter().map(String::as_str),
        chrono::Utc::now().date_naive(),
    ))
}

/// The drill's release: `img` pinned in the env's overlay under a new
/// release id (recorded in `run`). (pin commit, release id).
fn pin(
    g: &mut Ground,
    run: &mut DrillRun,
    img: &str,
    tag: &str,
) -> Result<(String, String), DrillError> {
    let release = release_id(g)?;
    let commit = crate::engine::pin::pin_images(g.repo, &g.env, &[img.to_string()], tag, &release)?;
    run.release = Some(release.clone());
    Ok((commit, release))
}

/// Runs the engine for `commit` in the env only (no promotion).
fn engine_run(
    g: &mut Ground,
    commit: &str,
    release: &str,
    marks: &mut Marks<'_>,
) -> Result<EnvOutcome, EngineError> {
    // The drill stays in its env: no promotion, nothing to trust beyond it.
    let trust = crate::engine::ReleaseTrust::default();
    let r = EnvRelease {
        env: &g.env,
        next: None,
        commit,
        release,
        actor: "platform-capstone drill",
        trust: &trust,
    };
    let never = AtomicBool::new(false);
    wiring::run_env(
        g.repo,
        g.store,
        g.signer,
        &g.adapters,
        &r,
        &never,
        &never,
        marks,
    )
}

/// The images `commit` of the env renders.
fn images_at(g: &Ground, commit: &str) -> Result<Vec<String>, DrillError> {
    let tree = g.repo.reader(commit)?;
    crate::render::render(tree.as_ref(), &g.env.overlay)
        .map(|r| crate::render::images(&r))
        .map_err(DrillError::from)
}

fn live_images(g: &Ground) -> Result<Vec<String>, DrillError> {
    let live = g.adapters.target.live(&g.env.target.namespace)?;
    let mut out: Vec<String> = live
        .iter()
        .flat_map(|o| {
            o.object["spec"]["template"]["spec"]["containers"]
                .as_sequence()
                .into_iter()
                .flatten()
                .filter_map(|c| c["image"].as_str().map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Puts the env back where the drill found it: the starting release live
/// and known good, and the branch pinning its images (a signed revert of
/// the drill's pin commit when it is still there). Returns what it did.
fn restore(g: &mut Ground, pin: Option<&str>) -> Result<Vec<String>, DrillError> {
    let mut did = Vec::new();
    g.repo.fetch()?;
    let head = g.repo.resolve(&g.env.branch)?;
    if let Some(pin) = pin
        && images_at(g, &head)? != g.start.images
    {
        let msg = format!(
            "drill: return {} to its starting state\n\nThe drill's release commit {pin} is reverted; {} runs again.\n\nReverts: {pin}\n",
            g.env.name, g.start.release
        );
        g.repo.revert(&g.env.branch, pin, &msg)?;
        did.push(format!("reverted {}", &pin[..12.min(pin.len())]));
    }
    let current = g.store.last_good(&g.env.name)?;
    let live = live_images(g)?;
    let start_images: Vec<String> = {
        let mut v = g.start.images.clone();
        v.sort();
        v
    };
    let live_ok = start_images.iter().all(|i| live.contains(i)) && live.len() == start_images.len();
    if current.as_ref().map(|c| (&c.release, &c.commit))
        != Some((&g.start.release, &g.start.commit))
        || !live_ok
    {
        wiring::restore_good(g.repo, g.store, g.signer, &g.adapters, &g.env, &g.start)?;
        g.store.save_last_good(&g.env.name, &g.start)?;
        did.push(format!("{} live again", g.start.release));
    }
    Ok(did)
}

/// Whether the env is where the drill found it.
fn is_restored(g: &mut Ground) -> Result<bool, DrillError> {
    g.repo.fetch()?;
    let head = g.repo.resolve(&g.env.branch)?;
    let mut want = g.start.images.clone();
    want.sort();
    let mut at_head = images_at(g, &head)?;
    at_head.sort();
    let good = g.store.last_good(&g.env.name)?;
    // And live matches what git says, field by field (a drill's live edit is gone).
    let (report, _) = crate::drift::run::observe(
        g.repo,
        g.store,
        g.adapters.target.as_ref(),
        g.adapters.metrics.as_ref(),
        &g.env,
        chrono::Utc::now(),
    )?;
    Ok(at_head == want
        && live_images(g)? == want
        && good.is_some_and(|x| x.release == g.start.release)
        && report.config_error.is_none()
        && report.drifted.is_empty())
}

/// Traffic (when the env has synthetic traffic) over `window`, then each
/// SLO of the stable version judged over it: burn below 1x and no
/// regression against the baseline recorded at promotion.
fn post_check(g: &Ground, lab: &mut dyn Lab, window: Duration) -> (bool, String) {
    if let Some(url) = &g.adapters.traffic {
        let rate = (g.env.rollout.min_requests * 4 / window.as_secs().max(1)).clamp(10, 100) as u32;
        lab.traffic(url, rate, window);
        lab.pause(Duration::from_millis(2500));
    } else {
        lab.pause(window);
    }
    let span = window + Duration::from_millis(2500);
    let w = BurnWindow {
        long: span,
        short: span,
        factor: 1.0,
        severity: Severity::Ticket,
    };
    let mut parts = Vec::new();
    let mut ok = true;
    for s in &g.env.slos {
        let vars = [
            ("namespace", g.env.target.namespace.as_str()),
            ("app", g.env.target.app.as_str()),
            ("env", g.env.name.as_str()),
            ("version", g.start.version.as_str()),
            ("track", "stable"),
            ("interval", &slo::promql_duration(span)),
        ];
        let answer = crate::adapters::prometheus::render_query(&s.query, &vars).and_then(|q| {
            g.adapters
                .metrics
                .instant(&q, None)
                .map_err(|e| e.to_string())
        });
        let answers = [(span, answer)].into_iter().collect();
        let judged = slo::judge(
            s,
            std::slice::from_ref(&w),
            span,
            &answers,
            g.start.baseline.get(&s.name).copied(),
        );
        let num = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or("none".into());
        let burn = judged
            .burn_rates
            .values()
            .next()
            .copied()
            .flatten()
            .map(|b| format!("{b:.2}x"))
            .unwrap_or("—".into());
        parts.push(format!(
            "{} {} (baseline {}, burn {burn}){}",
            s.name,
            num(judged.current),
            num(judged.baseline),
            if judged.is_ok() { "" } else { " NOT BACK" }
        ));
        ok &= judged.is_ok();
    }
    let line = if ok {
        format!(
            "error budget and latency returned to baseline ({})",
            parts.join("; ")
        )
    } else {
        format!("not back at baseline: {}", parts.join("; "))
    };
    (ok, line)
}

/// Polls (every 50 ms, at most `timeout`) until the env's route answers
/// 200 ten times in a row (or the target says stable is ready, without
/// synthetic traffic).
fn wait_healthy(g: &Ground, lab: &mut dyn Lab, timeout: Duration) -> Option<Instant> {
    const EVERY: Duration = Duration::from_millis(50);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let stable = Workload {
        namespace: g.env.target.namespace.clone(),
        app: g.env.target.app.clone(),
        track: Track::Stable,
    };
    let mut streak = 0;
    for _ in 0..(timeout.as_millis() / EVERY.as_millis()).max(1) {
        let ready = g
            .adapters
            .target
            .readiness(&stable)
            .is_ok_and(|r| r.desired > 0 && r.ready == r.desired);
        let answered = match &g.adapters.traffic {
            Some(url) => client
                .get(url)
                .send()
                .is_ok_and(|r| r.status().is_success()),
            None => true,
        };
        if ready && answered {
            streak += 1;
            if streak >= 10 {
                return Some(Instant::now());
            }
        } else {
            streak = 0;
        }
        lab.pause(EVERY);
    }
    None
}

fn stamp() -> String {
    chrono::Utc::now().format("%Y%m%d%H%M%S").to_string()
}

/// Runs one drill on `env` of the config: the ports the env's target
/// names, the local stack's lab; the report saved in the state dir and
/// the notes. Never panics, never returns without a report.
pub fn run(
    ctx: &DrillContext<'_>,
    scenario: Scenario,
    env: &str,
    say: &mut dyn FnMut(&str),
) -> DrillRun {
    let started = chrono::Utc::now();
    let opened = (|| {
        let (ws, _) = wiring::Workspace::open(
            ctx.cfg,
            ctx.config_file,
            &ctx.cfg.cache_dir.join("drill"),
            true,
        )?;
        let env = ws.env(env)?.clone();
        let adapters = wiring::adapters(
            &env,
            &ctx.local,
            ctx.prometheus.as_deref(),
            ctx.cfg.scrape_settle,
        )?;
        Ok::<_, DrillError>((ws, env, adapters))
    })();
    let ran = opened.and_then(|(mut ws, env, adapters)| {
        let operators = ws
            .trust
            .operators(&env.name)
            .map(|(s, f)| (s.clone(), f.to_string()));
        let mut g = Ground::new(&mut ws.repo, &ws.signer, &ws.store, env, adapters)?;
        g.operators = operators;
        let run = run_in(
            &mut g,
            &mut LocalLab::new(ctx),
            &Plan::of(ctx),
            scenario,
            say,
        );
        save(&ctx.cfg.state_dir, &mut g, &run);
        Ok(run)
    });
    ran.unwrap_or_else(|e| {
        let mut run = DrillRun::new(scenario, env, started);
        run.error = Some(e.to_string());
        run
    })
}

/// Runs one drill on the ground with the lab and returns its report
/// (not saved): the scenario, then the env put back where it was found,
/// then a look whether it is.
pub fn run_in(
    g: &mut Ground<'_>,
    lab: &mut dyn Lab,
    plan: &Plan<'_>,
    scenario: Scenario,
    say: &mut dyn FnMut(&str),
) -> DrillRun {
    let mut run = DrillRun::new(scenario, &g.env.name, chrono::Utc::now());
    let result = match scenario {
        Scenario::Rollback => rollback(plan, lab, g, &mut run, say),
        Scenario::BadSignature => bad_signature(lab, g, &mut run, say),
        Scenario::ConfigDrift => config_drift(lab, g, &mut run, say),
        Scenario::GitOutage => git_outage(plan, lab, g, &mut run, say),
        Scenario::MetricsOutage => metrics_outage(plan, lab, g, &mut run, say),
        Scenario::CrashMidRollout => crash_mid_rollout(plan, lab, g, &mut run, say),
        Scenario::ManualRollback => manual_rollback(plan, lab, g, &mut run, say),
    };
    if let Err(e) = result {
        run.error = Some(e.to_string());
    }
    // A lab that took something away gives it back before anything else.
    if let Err(e) = lab.give_back() {
        run.error.get_or_insert(e.to_string());
    }
    // Whatever happened, the env goes back; then we look.
    let pin = run.release.as_ref().and_then(|_| {
        g.store
            .release(&g.env.name)
            .ok()
            .flatten()
            .map(|s| s.commit)
    });
    match restore(g, pin.as_deref()) {
        Ok(did) if !did.is_empty() => say(&format!("restored: {}", did.join(", "))),
        Ok(_) => {}
        Err(e) => {
            run.error
                .get_or_insert(format!("could not restore {}: {e}", g.env.name));
        }
    }
    run.restored = is_restored(g).unwrap_or(false);
    let whole = (chrono::Utc::now() - run.started).num_milliseconds().max(0) as u64;
    run.phase("drill", whole);
    run
}

/// The report in the state dir and the audit entry in the notes.
fn save(state_dir: &Path, g: &mut Ground, run: &DrillRun) {
    let stamp = run.started.format("%Y%m%dT%H%M%SZ");
    let dir = state_dir.join("drills").join(&run.env);
    let _ = std::fs::create_dir_all(&dir);
    let base = dir.join(format!("{stamp}-{}", run.scenario.name()));
    if let Ok(j) = serde_json::to_vec_pretty(run) {
        let _ = crate::fsutil::write_atomic(&base.with_extension("json"), &j, None);
    }
    let _ =
        crate::fsutil::write_atomic(&base.with_extension("md"), run.markdown().as_bytes(), None);
    // The audit entry: on the env head the drill ended at.
    if let Ok(head) = g.repo.resolve(&g.env.branch) {
        let record = run.clone();
        let _ = g.repo.update_note(&head, &mut |old| {
            let mut n = Note::parse(old);
            n.drills.push(record.clone());
            n.to_text()
        });
    }
}

fn rollback(
    plan: &Plan<'_>,
    lab: &mut dyn Lab,
    g: &mut Ground,
    run: &mut DrillRun,
    say: &mut dyn FnMut(&str),
) -> Result<(), DrillError> {
    let key = plan.key()?;
    let tag = format!("drill-{}-bad", stamp());
    say(&format!(
        "building {tag}: {:.0}% errors, +{} ms, signed with the release key",
        plan.fault_error_ratio * 100.0,
        plan.fault_latency_ms
    ));
    let faults = [
        (
            "FAULT_ERROR_RATIO".to_string(),
            plan.fault_error_ratio.to_string(),
        ),
        (
            "FAULT_LATENCY_MS".to_string(),
            plan.fault_latency_ms.to_string(),
        ),
    ];
    let img = lab.publish(&g.env, &tag, &faults, key, say)?;
    let (pin, release) = pin(g, run, &img, &tag)?;
    say(&format!("releasing {tag} into {} as {release}", g.env.name));
    let mut marks = Marks::new(say);
    let outcome = engine_run(g, &pin, &release, &mut marks);
    let caught = matches!(
        &outcome,
        Ok(EnvOutcome::Failed {
            revert: Some(_),
            ..
        })
    );
    // The last good release runs again only when the fault was caught; a
    // fault that got through stays live until the drill restores the env,
    // and waiting for it to look healthy would only run out the clock.
    let healthy = caught
        .then(|| wait_healthy(g, lab, Duration::from_secs(120)))
        .flatten();
    let (fault, detected, stable, reverted) = (
        marks.when("canary_traffic"),
        marks.when("detected"),
        marks.when("stable"),
        marks.when("reverted"),
    );
    match &outcome {
        Ok(EnvOutcome::Failed {
            reason,
            revert: Some(c),
        }) => {
            run.check("fault caught by the health gate", true, reason.clone());
            run.check("revert commit pushed", true, c.clone());
        }
        Ok(other) => {
            run.check(
                "fault caught by the health gate",
                false,
                format!("the faulty version was not stopped: {other:?}"),
            );
        }
        Err(e) => return Err(DrillError::ReleaseNotRun(e.to_string())),
    }
    run.check(
        "live healthy on the last good release",
        healthy.is_some(),
        if healthy.is_some() {
            "stable ready and answering"
        } else if caught {
            "not healthy within 120 s"
        } else {
            "not checked: the faulty version was not stopped (live until the drill restores the env)"
        },
    );
    // The engine times the route change itself; the mark also covers
    // removing the canary.
    let to_stable = g
        .store
        .release(&g.env.name)
        .ok()
        .flatten()
        .filter(|s| s.release == release)
        .and_then(|s| s.record.timings.get("to_stable_ms").copied())
        .or(ms_between(detected, stable));
    let detect = ms_between(fault, detected);
    for (name, v) in [
        ("detect", detect),
        ("to_stable", to_stable),
        ("fault_to_stable", detect.zip(to_stable).map(|(a, b)| a + b)),
        ("revert", ms_between(detected, reverted)),
        ("healthy", ms_between(detected, healthy)),
        ("recovery", ms_between(fault, healthy)),
    ] {
        if let Some(v) = v {
            run.phase(name, v);
        }
    }
    let window = (g.env.rollout.analysis_interval * 2).max(Duration::from_secs(10));
    let (ok, line) = post_check(g, lab, window);
    run.check("post check (PromQL)", ok, line.clone());
    run.post_check = Some(line);
    Ok(())
}

fn bad_signature(
    lab: &mut dyn Lab,
    g: &mut Ground,
    run: &mut DrillRun,
    say: &mut dyn FnMut(&str),
) -> Result<(), DrillError> {
    let (pem, _) = crate::gates::cosign::generate_key_pair().map_err(DrillError::Image)?;
    let stranger = crate::gates::cosign::load_signing_key(&pem).map_err(DrillError::Image)?;
    let tag = format!("drill-{}-untrusted", stamp());
    say(&format!("building {tag}, signed by a key nobody trusts"));
    let img = lab.publish(&g.env, &tag, &[], &stranger, say)?;
    let (pin, release) = pin(g, run, &img, &tag)?;
    let t = Instant::now();
    let mut marks = Marks::new(say);
    let outcome = engine_run(g, &pin, &release, &mut marks);
    run.phase("gate", t.elapsed().as_millis() as u64);
    match outcome {
        Ok(EnvOutcome::Failed { reason, revert }) => {
            run.check(
                "stopped by the signature gate",
                reason.contains("artifact_signature"),
                reason.clone(),
            );
            run.check(
                "the commit reverted",
                revert.is_some(),
                revert.unwrap_or_else(|| "no revert".into()),
            );
        }
        other => run.check("stopped by the signature gate", false, format!("{other:?}")),
    }
    let live = live_images(g)?;
    run.check(
        "never reached the target",
        !live.contains(&img),
        format!("live: {}", live.join(", ")),
    );
    Ok(())
}

fn config_drift(
    lab: &mut dyn Lab,
    g: &mut Ground,
    run: &mut DrillRun,
    say: &mut dyn FnMut(&str),
) -> Result<(), DrillError> {
    let (var, value) = LIVE_EDIT;
    say(&format!(
        "editing live pods behind the tool's back: {var}={value}"
    ));
    let t = Instant::now();
    lab.edit_live(&g.env)?;
    let edited = Instant::now();
    run.phase("edit", t.elapsed().as_millis() as u64);
    let heal = g.env.drift.mode == crate::config::DriftMode::Heal;
    let actor = "platform-capstone drill";
    let mut quiet = Marks::new(say);
    let report = crate::drift::run::check(
        g.repo,
        g.store,
        g.signer,
        &g.adapters,
        &g.env,
        actor,
        heal,
        &mut quiet,
    )?;
    run.phase("detect", edited.elapsed().as_millis() as u64);
    let found = report.drifted.iter().any(
        |o| matches!(&o.status, crate::drift::Status::Modified { diff } if diff.contains(var)),
    );
    run.check("live edit detected with its diff", found, report.summary());
    if !heal {
        // Report mode leaves the edit to people; the drill undoes its own.
        wiring::restore_good(g.repo, g.store, g.signer, &g.adapters, &g.env, &g.start)?;
    } else {
        let healed = !report.healed.is_empty();
        run.check("healed (heal mode)", healed, report.healed.join(", "));
        let again = crate::drift::run::observe(
            g.repo,
            g.store,
            g.adapters.target.as_ref(),
            g.adapters.metrics.as_ref(),
            &g.env,
            chrono::Utc::now(),
        )?
        .0;
        run.check(
            "in sync after healing",
            again.drifted.is_empty(),
            again.summary(),
        );
        run.phase("heal", edited.elapsed().as_millis() as u64);
    }
    Ok(())
}

fn git_outage(
    plan: &Plan<'_>,
    lab: &mut dyn Lab,
    g: &mut Ground,
    run: &mut DrillRun,
    say: &mut dyn FnMut(&str),
) -> Result<(), DrillError> {
    // With an operator's key: a version goes live first, to be rolled back
    // by command while git is away.
    let extended = match (plan.operator, plan.key) {
        (Some(_), Some(key)) => {
            let tag = format!("drill-{}", stamp());
            let img = lab.publish(&g.env, &tag, &[], key, say)?;
            match release_live(g, run, &img, &tag, "a version live before the outage", say)? {
                Some(release) => Some(release),
                None => return Ok(()),
            }
        }
        _ => {
            say("no --operator-key: the rollback during the outage is not rehearsed");
            None
        }
    };
    let before = live_images(g)?;
    let good_before = g.store.last_good(&g.env.name)?.map(|x| x.release);
    let head = g.repo.resolve(&g.env.branch)?;
    lab.take_git_away(say)?;
    let t = Instant::now();
    let fetched = g.repo.fetch();
    let infra = matches!(&fetched, Err(e) if e.is_infrastructure());
    run.check(
        "the outage is an infrastructure error (pause, never revert)",
        infra,
        match &fetched {
            Err(e) => e.to_string(),
            Ok(_) => "fetch succeeded with the remote gone".into(),
        },
    );
    // The daemon fetches before every reconcile and dispatches nothing
    // when that fails: the live release must stay as it is meanwhile.
    lab.pause(plan.outage_watch);
    let still = live_images(g)?;
    run.check(
        "the last good release keeps running",
        still == before,
        format!("live: {}", still.join(", ")),
    );
    let good = g.store.last_good(&g.env.name)?.map(|x| x.release);
    run.check(
        "nothing reverted or replaced while git is away",
        good == good_before && g.repo.resolve(&g.env.branch).ok() == Some(head.clone()),
        "",
    );
    if let Some(release) = &extended {
        let done = rollback_by_command(plan, g, "drill: rollback during a git outage")?;
        run.phase("rollback_to_stable", done.to_stable_ms);
        let live = live_images(g)?;
        run.check(
            "rolled back by command during the outage, live at once",
            done.from == *release && live == sorted(&g.start.images),
            format!("{} → {}; live: {}", done.from, done.to, live.join(", ")),
        );
        run.check(
            "its commit queued while git is away, the env held",
            matches!(done.commit, Landed::Queued { .. })
                && g.store.rollback_pending(&g.env.name)?.is_some(),
            format!("{:?}", done.commit),
        );
    }
    lab.bring_git_back()?;
    run.phase("outage", t.elapsed().as_millis() as u64);
    let back = Instant::now();
    let ok = g.repo.fetch().is_ok();
    run.phase("recover", back.elapsed().as_millis() as u64);
    run.check("fetches again once the remote is back", ok, "");
    if extended.is_some() {
        let t = Instant::now();
        let landed = crate::engine::rollback::flush(g.repo, g.store, &g.env)?;
        let again = crate::engine::rollback::flush(g.repo, g.store, &g.env)?;
        run.phase("git_back_to_commit", t.elapsed().as_millis() as u64);
        run.check(
            "the queued commit pushed once git is back, once",
            matches!(landed, Some(Landed::Pushed { .. }))
                && again.is_none()
                && g.store.rollback_pending(&g.env.name)?.is_none(),
            format!("{landed:?}"),
        );
    }
    Ok(())
}

/// `img` pinned and released into the env to its end; checked (as `what`)
/// to have completed: its release id, or `None` when it did not.
fn release_live(
    g: &mut Ground,
    run: &mut DrillRun,
    img: &str,
    tag: &str,
    what: &str,
    say: &mut dyn FnMut(&str),
) -> Result<Option<String>, DrillError> {
    let (pin, release) = pin(g, run, img, tag)?;
    say(&format!("releasing {tag} into {} as {release}", g.env.name));
    let outcome = engine_run(g, &pin, &release, &mut Marks::new(say));
    let live = matches!(outcome, Ok(EnvOutcome::Complete));
    run.check(what, live, format!("{outcome:?}"));
    Ok(live.then_some(release))
}

/// `v` sorted (live image lists are).
fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// The env rolled back by command to the release before the one running,
/// signed with the plan's operator key and checked against the env's
/// pinned operators, as `rollback` does.
fn rollback_by_command(
    plan: &Plan<'_>,
    g: &mut Ground,
    reason: &str,
) -> Result<crate::engine::rollback::Done, DrillError> {
    let operator = plan.operator.ok_or_else(no_operator)?;
    let mut request = Request {
        env: g.env.name.clone(),
        to: To::Previous,
        reason: reason.to_string(),
        at: chrono::Utc::now(),
        principal: operator.identity().email.clone(),
        signature: String::new(),
    };
    request.signature = operator
        .sign(crate::rollback::NAMESPACE, &request.payload())
        .map_err(|e| DrillError::Precondition(format!("--operator-key: {e}")))?;
    let head = g.repo.resolve(&g.env.branch)?;
    let operators = g.operators.as_ref().map(|(s, f)| (s, f.as_str()));
    let env = &g.env;
    Ok(wiring::with_engine(
        g.repo,
        g.store,
        g.signer,
        &g.adapters,
        env,
        &head,
        wiring::Signals::none(),
        |e| {
            Ok(crate::engine::rollback::rollback(
                e,
                env,
                &request,
                operators,
                Duration::from_secs(60),
            ))
        },
    )??)
}

fn no_operator() -> DrillError {
    DrillError::Precondition(
        "--operator-key and --operator are required: this drill rolls back by command, signed by an operator the config pins (trust.operators)".into(),
    )
}

fn manual_rollback(
    plan: &Plan<'_>,
    lab: &mut dyn Lab,
    g: &mut Ground,
    run: &mut DrillRun,
    say: &mut dyn FnMut(&str),
) -> Result<(), DrillError> {
    let key = plan.key()?;
    plan.operator.ok_or_else(no_operator)?;
    let tag = format!("drill-{}-wrong", stamp());
    say(&format!(
        "building {tag}: healthy-looking but wrong (DRILL_WRONG=1), signed with the release key"
    ));
    let img = lab.publish(
        &g.env,
        &tag,
        &[("DRILL_WRONG".to_string(), "1".to_string())],
        key,
        say,
    )?;
    let what = "the wrong version passed every gate and step";
    let Some(release) = release_live(g, run, &img, &tag, what, say)? else {
        return Ok(());
    };
    say("rolling it back by command");
    let t = Instant::now();
    let done = rollback_by_command(plan, g, "drill: wrong but healthy-looking version")?;
    let to_commit = t.elapsed().as_millis() as u64;
    run.phase("to_stable", done.to_stable_ms);
    let live = live_images(g)?;
    run.check(
        "the release before runs again, live at once",
        done.to == g.start.release && live == sorted(&g.start.images),
        format!(
            "{} → {} in {} ms; live: {}",
            done.from,
            done.to,
            done.to_stable_ms,
            live.join(", ")
        ),
    );
    match &done.commit {
        Landed::Pushed { commit } => {
            run.phase("to_commit", to_commit);
            let message = g.repo.message(commit)?;
            run.check(
                "a signed commit restores its pins, with the trailers",
                message
                    .lines()
                    .any(|l| l == format!("Rollback-Of: {release}"))
                    && message
                        .lines()
                        .any(|l| l == format!("Release-Id: {}", g.start.release)),
                commit.clone(),
            );
        }
        other => run.check(
            "a signed commit restores its pins, with the trailers",
            false,
            format!("{other:?}"),
        ),
    }
    let (_, _, digest) = crate::render::transform::split_image(&img);
    let quarantined = g
        .store
        .quarantine()?
        .iter()
        .any(|q| Some(q.digest.as_str()) == digest && q.env == g.env.name);
    run.check("the wrong digest quarantined", quarantined, img.clone());
    let recorded = audit::all_records(&g.repo.notes()?).iter().any(|r| {
        r.release == release
            && r.env == g.env.name
            && r.outcome == crate::audit::ReleaseOutcome::RolledBack
            && r.rollback.is_some()
    });
    run.check(
        "the audit record says rolled-back, by whom and why",
        recorded,
        "",
    );
    Ok(())
}

fn metrics_outage(
    plan: &Plan<'_>,
    lab: &mut dyn Lab,
    g: &mut Ground,
    run: &mut DrillRun,
    say: &mut dyn FnMut(&str),
) -> Result<(), DrillError> {
    let key = plan.key()?;
    lab.arm_metrics_outage(&g.env)?;
    let tag = format!("drill-{}", stamp());
    let img = lab.publish(&g.env, &tag, &[], key, say)?;
    let (pin, release) = pin(g, run, &img, &tag)?;
    let next_head = g
        .env
        .next
        .as_ref()
        .and_then(|n| g.repo.heads().ok()?.get(&format!("env/{n}")).cloned());
    let killed = std::cell::Cell::new(None::<Instant>);
    let outcome = {
        let mut marks = Marks {
            at: Vec::new(),
            on_mark: Some(Box::new(|e: &str| {
                if e == "canary_traffic" && killed.get().is_none() {
                    lab.stop_metrics();
                    killed.set(Some(Instant::now()));
                }
            })),
            say,
        };
        engine_run(g, &pin, &release, &mut marks)
    };
    let killed_at = killed.get();
    let stopped = Instant::now();
    // Prometheus back before anything else, and scraping again: the drill
    // leaves the env as it found it, metrics included.
    let back = Instant::now();
    lab.start_metrics()?;
    let scraping = crate::adapters::process::wait_until(
        "Prometheus to scrape the env again",
        Duration::from_secs(60),
        || {
            matches!(
                g.adapters.metrics.instant("sum(up)", None),
                Ok(crate::ports::Sample::Value(v)) if v > 0.0
            )
        },
    );
    run.check(
        "Prometheus back and scraping",
        scraping.is_ok(),
        format!("{} ms", back.elapsed().as_millis()),
    );
    // Rate windows need a few samples before analysis can trust them.
    lab.pause(g.env.rollout.analysis_interval.max(Duration::from_secs(3)));
    match &outcome {
        Ok(EnvOutcome::Inconclusive { reason }) => {
            run.check("analysis inconclusive", true, reason.clone());
        }
        other => run.check("analysis inconclusive", false, format!("{other:?}")),
    }
    let head = g.repo.resolve(&g.env.branch)?;
    run.check(
        "nothing reverted",
        head == pin,
        format!("{} head {}", g.env.branch, &head[..12]),
    );
    let next_now = g
        .env
        .next
        .as_ref()
        .and_then(|n| g.repo.heads().ok()?.get(&format!("env/{n}")).cloned());
    run.check("nothing promoted", next_now == next_head, "");
    let live = live_images(g)?;
    run.check(
        "traffic back on the last good release",
        !live.contains(&img),
        live.join(", "),
    );
    if let Some(k) = killed_at {
        run.phase(
            "outage_to_stop",
            stopped.duration_since(k).as_millis() as u64,
        );
    } else {
        run.check(
            "Prometheus killed during analysis",
            false,
            "the canary never took traffic",
        );
    }
    Ok(())
}

fn crash_mid_rollout(
    plan: &Plan<'_>,
    lab: &mut dyn Lab,
    g: &mut Ground,
    run: &mut DrillRun,
    say: &mut dyn FnMut(&str),
) -> Result<(), DrillError> {
    let key = plan.key()?;
    let tag = format!("drill-{}", stamp());
    let img = lab.publish(&g.env, &tag, &[], key, say)?;
    let file = plan.state_dir.join(format!("drills/{tag}.yaml"));
    if let Some(p) = file.parent() {
        std::fs::create_dir_all(p).map_err(|source| DrillError::Io {
            path: p.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(&file, format!("images:\n  - {img}\n")).map_err(|source| DrillError::Io {
        path: file.clone(),
        source,
    })?;
    say(&format!(
        "releasing {tag} into {}; the engine is killed when the canary is up",
        g.env.name
    ));
    let t = Instant::now();
    let file_s = file.to_string_lossy().to_string();
    let first = lab.cli(
        &[
            "release",
            "--version",
            &file_s,
            "--env",
            &g.env.name,
            "--until",
            &g.env.name,
        ],
        Some("canary"),
    )?;
    run.phase("to_crash", t.elapsed().as_millis() as u64);
    let state = g.store.release(&g.env.name)?;
    let crashed =
        !first.status.success() && state.as_ref().is_some_and(|s| s.phase == Phase::Canary);
    run.check(
        "killed mid-canary (state saved at canary)",
        crashed,
        format!("exit {:?}", first.status.code()),
    );
    let Some(state) = state else {
        return Err(DrillError::Precondition(
            "no release state after the crash: the killed release saved nothing".into(),
        ));
    };
    run.release = Some(state.release.clone());
    let t = Instant::now();
    let second = lab.cli(
        &[
            "release",
            "--resume",
            &state.release,
            "--until",
            &g.env.name,
        ],
        None,
    )?;
    run.phase("resume_to_done", t.elapsed().as_millis() as u64);
    let out = String::from_utf8_lossy(&second.stdout);
    run.check(
        "resumed and completed",
        second.status.success() && out.contains("release complete"),
        out.lines().last().unwrap_or_default().to_string(),
    );
    let canary = Workload {
        namespace: g.env.target.namespace.clone(),
        app: g.env.target.app.clone(),
        track: Track::Canary,
    };
    let left = g
        .adapters
        .target
        .readiness(&canary)
        .map(|r| r.desired)
        .unwrap_or(1);
    run.check(
        "no canary left behind",
        left == 0,
        format!("{left} canary pods"),
    );
    g.repo.fetch()?;
    let log = g
        .repo
        .notes()
        .map(|n| audit::all_records(&n))
        .unwrap_or_default();
    let records = log
        .iter()
        .filter(|r| r.release == state.release && r.env == g.env.name)
        .count();
    run.check(
        "one audit record for the release",
        records == 1,
        format!("{records}"),
    );
    let _ = std::fs::remove_file(&file);
    Ok(())
}
