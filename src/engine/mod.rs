//! The release engine: for one env and one commit of its branch, render →
//! gates → canary rollout with analysis → the canary becomes stable → bake
//! → promote into the next env. Failures restore the last good release on
//! the target first, then revert the offending commit (signed, with the
//! evidence in trailers) and quarantine its digests; infrastructure errors
//! (git, registry, Prometheus, target unreachable) pause and never revert.
//!
//! The CLI (`release`) and the daemon run this same code. Decisions come
//! from the pure core (`rollout`); this module does the I/O through the
//! ports and persists its state after every transition (`store`).
//!
//! Modules: `store` (state files), `promote` (windows, approvals, the
//! promotion commit and record), `recover` (rollback and revert). The
//! composition root that wires the engine to its adapters is `crate::wiring`.

pub mod pin;
pub mod promote;
pub mod recover;
pub mod rollback;
pub mod store;

use crate::adapters::prometheus::render_query;

use crate::audit::{Commits, IntervalRecord, Note, Record, ReleaseOutcome, StepRecord};
use crate::config::Env;
use crate::gates::run::Checks;
use crate::model::Outcome;
use crate::ports::{Metrics, Registry, Split, Target, Track, TrafficRouter, Workload};
use crate::release::{self, Action, GateVerdict, Observation, Plan, Promotion};
use crate::rollout::{self, IntervalResult, Progress, StepResult};
use crate::signing::Signer;
use crate::source::GitRepo;
use chrono::{DateTime, Utc};
use std::time::{Duration, Instant};
use store::{LastGood, Phase, Quarantined, ReleaseState, Store};

/// The adapters one env's release runs on.
pub struct Services<'a> {
    pub target: &'a dyn Target,
    pub router: &'a dyn TrafficRouter,
    pub metrics: &'a dyn Metrics,
    pub registry: &'a dyn Registry,
    /// A loopback URL to send synthetic traffic to during analysis, when
    /// the env has no real traffic.
    pub traffic: Option<String>,
    /// PromQL template counting a track's requests over `{{interval}}`.
    pub requests_query: String,
    /// Wait after each interval for Prometheus's last scrape of it.
    pub scrape_settle: Duration,
    /// The least time a new version is given to show up in the metrics
    /// before its first interval (Prometheus batches discovery updates
    /// for up to 5 s); three intervals when longer, never over a minute.
    pub discovery_wait: Duration,
    /// Signs a promotion attestation (SLSA VSA) on each promoted digest
    /// before the promotion commit; `None`: promotions are not attested.
    pub attestation_key: Option<&'a p256::ecdsa::SigningKey>,
}

/// What the engine reports as it goes (the release output of
/// docs/operating-model.md, and progress).
pub trait Reporter {
    fn env(&mut self, _env: &str) {}
    fn checks(&mut self, _checks: &Checks) {}
    /// The rollout begins: steps and intervals follow.
    fn rollout(&mut self) {}
    fn step(&mut self, _name: &str, _result: &str) {}
    fn interval(&mut self, _step: &str, _n: usize, _result: &IntervalResult) {}
    fn info(&mut self, _line: &str) {}
    /// A moment drills time: `canary_traffic` (the canary starts taking
    /// traffic), `detected` (the analysis aborted), `stable` (all traffic
    /// back on stable), `reverted` (the revert commit is pushed).
    fn mark(&mut self, _event: &str) {}
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Git, registry, Prometheus or the target could not be reached: the
    /// release is paused where it was; nothing is reverted.
    #[error("paused (infrastructure): {0}")]
    Infrastructure(String),
    #[error("{0}")]
    Invalid(String),
    /// Shut down mid-release: parked, resumes on restart.
    #[error("interrupted by shutdown; parked with all traffic on stable, resumes on restart")]
    Interrupted,
    /// Another process (a second daemon, or `release`) is releasing into
    /// this env right now: nothing was done; try again later.
    #[error("{0}")]
    Busy(String),
    /// A manual rollback holds this env until its commit lands: nothing is
    /// released there meanwhile.
    #[error("held by a manual rollback: {0}")]
    Held(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

impl From<crate::source::GitError> for EngineError {
    fn from(e: crate::source::GitError) -> Self {
        if e.is_infrastructure() {
            EngineError::Infrastructure(e.to_string())
        } else {
            EngineError::Invalid(e.to_string())
        }
    }
}

/// How an env's release ended.
#[derive(Debug, Clone, PartialEq)]
pub enum EnvOutcome {
    /// Live and baked; no next env.
    Complete,
    /// Live and baked; the next env's branch got `commit` (None: the pins
    /// were already there).
    Promoted { env: String, commit: Option<String> },
    /// Live and baked; promotion into `env` waits (window, approval).
    Waiting { env: String, reason: String },
    /// Stopped: a gate failed, or the canary measured bad. Reverted.
    Failed {
        reason: String,
        revert: Option<String>,
    },
    /// Stopped without a verdict (no data): traffic back on stable, no revert.
    Inconclusive { reason: String },
    /// Stopped by an operator: traffic back on stable, no revert, no promotion.
    Aborted { reason: String },
}

/// One env's release: its env, the next env (from the next branch's head),
/// the commit released, the release id and version string.
pub struct EnvRelease<'a> {
    pub env: &'a Env,
    pub next: Option<&'a Env>,
    pub commit: &'a str,
    pub release: &'a str,
    pub actor: &'a str,
    /// What the daemon's config pins for this release.
    pub trust: &'a ReleaseTrust,
}

/// What a release trusts from the daemon's config, never from a tree.
#[derive(Debug, Clone, Default)]
pub struct ReleaseTrust {
    /// Keys whose promotion records count: the daemon's own and the
    /// pinned promotion signers.
    pub promotion_signers: crate::signing::AllowedSigners,
    /// The next env's pinned approvers; `None`: its own
    /// `policies/approvers` at its (trusted) head.
    pub next_approvers: Option<crate::signing::AllowedSigners>,
    /// The pinned next env cannot take a promotion now: (env, why).
    pub next_blocked: Option<(String, String)>,
}

/// Where the new version went: endpoints of both tracks, and whether it
/// is the env's first release (nothing ran before it).
struct Deployed {
    first_release: bool,
    stable: Vec<String>,
    canary: Vec<String>,
}

fn workload(env: &Env, track: Track) -> Workload {
    Workload {
        namespace: env.target.namespace.clone(),
        app: env.target.app.clone(),
        track,
    }
}

/// The version an image says it is (OCI label), else its short digest.
pub fn image_version(reg: &dyn Registry, image: &str) -> String {
    let (_, _, digest) = crate::render::transform::split_image(image);
    let fallback = digest
        .map(|d| d.trim_start_matches("sha256:").chars().take(12).collect())
        .unwrap_or_else(|| image.to_string());
    let label = || -> Option<String> {
        let (m, _) = reg.manifest(image).ok()??;
        let (repo, ..) = crate::render::transform::split_image(image);
        let config = reg.blob(repo, &m.config.digest, 1024 * 1024).ok()?;
        let v: serde_json::Value = serde_json::from_slice(&config).ok()?;
        v["config"]["Labels"]["org.opencontainers.image.version"]
            .as_str()
            .map(str::to_string)
    };
    label().unwrap_or(fallback)
}

pub struct Engine<'a> {
    pub repo: &'a mut dyn GitRepo,
    pub svc: &'a Services<'a>,
    pub store: &'a Store,
    pub signer: &'a Signer,
    pub now: &'a dyn Fn() -> DateTime<Utc>,
    /// Set on shutdown: between intervals the rollout parks (all traffic
    /// to stable, state saved) and returns `Interrupted`; a restart resumes.
    pub stop: &'a std::sync::atomic::AtomicBool,
    /// Set by an operator (the daemon's `abort` call): at the next interval
    /// the canary is removed with all traffic on stable (in bake: the last
    /// good release runs again), the release is recorded `aborted` and
    /// nothing is reverted or promoted.
    pub abort: &'a std::sync::atomic::AtomicBool,
}

/// Crash injection for recovery tests and the crash drill: when
/// `PLATFORM_CAPSTONE_CRASH_AT` names this point, the process aborts on
/// the spot — no destructors, no cleanup, as `kill -9` would leave it.
/// Points: `gated`, `canary`, `stable`, `baked` (after each state is
/// persisted) and `promoted` (after the promotion commit, before the
/// record says so).
pub fn crash_point(point: &str) {
    if std::env::var("PLATFORM_CAPSTONE_CRASH_AT").is_ok_and(|v| v == point) {
        std::process::abort();
    }
}

/// SLO → the value the release measured in its last healthy interval
/// (bake or the last canary step): the baseline SLO drift compares to.
pub fn baseline_of(record: &Record) -> std::collections::BTreeMap<String, f64> {
    record
        .steps
        .iter()
        .flat_map(|s| s.intervals.iter())
        .rfind(|i| i.result.is_healthy())
        .map(|i| {
            i.measurements
                .iter()
                .filter_map(|m| {
                    m.canary
                        .filter(|v| v.is_finite())
                        .map(|v| (m.slo.clone(), v))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Why the gates failed: each failing gate with its enforced findings.
fn failed_gates(checks: &Checks) -> String {
    checks
        .verdicts()
        .iter()
        .filter(|v| v.outcome == Outcome::Fail)
        .map(|v| {
            format!(
                "{}: {}",
                v.gate,
                v.findings
                    .iter()
                    .filter(|f| f.enforced)
                    .map(|f| f.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn ms(t: Instant) -> u64 {
    t.elapsed().as_millis() as u64
}

impl Engine<'_> {
    fn save(&self, state: &ReleaseState) -> Result<(), EngineError> {
        self.store.save_release(state)?;
        let point = serde_json::to_value(state.phase).ok();
        if let Some(p) = point.as_ref().and_then(|p| p.as_str()) {
            crash_point(p);
        }
        Ok(())
    }

    /// Writes the record into the note of the released commit.
    fn audit(&mut self, state: &ReleaseState) -> Result<(), EngineError> {
        let record = state.record.clone();
        self.repo.update_note(&state.commit, &mut |old| {
            let mut n = Note::parse(old);
            n.upsert(record.clone());
            n.to_text()
        })?;
        Ok(())
    }

    /// Renders the env at `commit`: (objects, images).
    fn render_at(
        &self,
        env: &Env,
        commit: &str,
    ) -> Result<(Vec<yaml_serde::Value>, Vec<String>), EngineError> {
        let tree = self.repo.reader(commit)?;
        let rendered = crate::render::render(tree.as_ref(), &env.overlay)
            .map_err(|e| EngineError::Invalid(format!("{}: {e}", env.overlay)))?;
        let images = crate::render::images(&rendered);
        Ok((rendered.objects, images))
    }

    /// One analysis interval at `weight`: traffic (synthetic when
    /// configured), then every SLO for the canary and the baseline.
    fn measure(
        &self,
        env: &Env,
        weight: u8,
        canary: (Track, &str),
        baseline: Option<&str>,
    ) -> (IntervalResult, IntervalRecord) {
        let r = &env.rollout;
        let interval = r.analysis_interval;
        let started = (self.now)();
        if let Some(url) = &self.svc.traffic {
            // Enough that the canary's share clears the floor three times
            // over: a count read back through scrapes and `increase()` is
            // noisy, and a floor missed is an inconclusive interval.
            let secs = interval.as_secs_f64().max(1.0);
            let rate = ((r.min_requests as f64 * 3.0 * 100.0 / f64::from(weight.max(1))) / secs)
                .ceil() as u32;
            let rate = rate.clamp(5, crate::adapters::traffic::MAX_RATE);
            // Up to 4 workers whose rates add up to `rate` exactly.
            let workers = rate.min(4);
            let handles: Vec<_> = (0..workers)
                .map(|i| {
                    let url = url.clone();
                    let per = rate / workers + u32::from(i < rate % workers);
                    std::thread::spawn(move || {
                        crate::adapters::traffic::run(&url, per, interval, None)
                    })
                })
                .collect();
            for h in handles {
                let _ = h.join();
            }
        } else {
            std::thread::sleep(interval);
        }
        std::thread::sleep(self.svc.scrape_settle);
        // Rounded up: the window covers all of the interval's traffic.
        let window = format!(
            "{}s",
            ((interval + self.svc.scrape_settle).as_secs_f64().ceil() as u64).max(1)
        );
        let vars = |version: &str, track: Track| -> Vec<(&'static str, String)> {
            vec![
                ("namespace", env.target.namespace.clone()),
                ("app", env.target.app.clone()),
                ("env", env.name.clone()),
                ("version", version.to_string()),
                ("track", track.as_str().to_string()),
                ("interval", window.clone()),
            ]
        };
        let ask = |template: &str, version: &str, track: Track| -> rollout::Answer {
            let v = vars(version, track);
            let refs: Vec<(&str, &str)> = v.iter().map(|(k, x)| (*k, x.as_str())).collect();
            let q = render_query(template, &refs)?;
            self.svc
                .metrics
                .instant(&q, None)
                .map_err(|e| e.to_string())
        };
        let samples: Vec<(rollout::Answer, rollout::Answer)> = env
            .slos
            .iter()
            .map(|slo| {
                let c = ask(&slo.query, canary.1, canary.0);
                let b = match baseline {
                    Some(v) => ask(&slo.query, v, Track::Stable),
                    None => Err("no stable baseline".into()),
                };
                (c, b)
            })
            .collect();
        let requests = ask(&self.svc.requests_query, canary.1, canary.0);
        let (result, measurements) =
            rollout::judge_interval(&env.slos, &samples, &requests, r.min_requests);
        let record = IntervalRecord {
            at: started,
            weight,
            result: result.clone(),
            requests: requests.ok().and_then(|s| match s {
                crate::ports::Sample::Value(v) => Some(v),
                _ => None,
            }),
            measurements,
        };
        (result, record)
    }

    /// Waits until Prometheus scrapes the new version before its first
    /// interval: new pods are not scraped at once (Prometheus batches
    /// discovery updates for up to 5 s), and an interval measured before
    /// that reads 0/0 (NaN) for a version that served traffic. Done when
    /// every SLO query for the version answers with data (a number or
    /// NaN, not "no data" — a rate needs two scrapes), with light
    /// synthetic traffic meanwhile; bounded, after which the intervals
    /// judge what they see (no data is inconclusive, never healthy). A
    /// provider that answers with an error ends the wait at once.
    fn warm_up(&self, env: &Env, version: &str, track: Track) {
        let bound = (env.rollout.analysis_interval * 3)
            .max(self.svc.discovery_wait)
            .min(Duration::from_secs(60));
        let deadline = Instant::now() + bound;
        let window = format!(
            "{}s",
            ((env.rollout.analysis_interval + self.svc.scrape_settle)
                .as_secs_f64()
                .ceil() as u64)
                .max(1)
        );
        let vars = [
            ("namespace", env.target.namespace.as_str()),
            ("app", env.target.app.as_str()),
            ("env", env.name.as_str()),
            ("version", version),
            ("track", track.as_str()),
            ("interval", window.as_str()),
        ];
        // Done when every query has data, or when one cannot be asked at
        // all (the metrics provider is down: waiting for discovery is
        // pointless, and the interval judges the outage inconclusive).
        let done = || {
            let answers: Vec<Result<crate::ports::Sample, String>> = env
                .slos
                .iter()
                .map(|slo| {
                    let q = render_query(&slo.query, &vars)?;
                    self.svc
                        .metrics
                        .instant(&q, None)
                        .map_err(|e| e.to_string())
                })
                .collect();
            answers.iter().any(Result::is_err)
                || answers.iter().all(|a| {
                    matches!(
                        a,
                        Ok(crate::ports::Sample::Value(_) | crate::ports::Sample::NaN)
                    )
                })
        };
        while !done() && Instant::now() < deadline {
            match &self.svc.traffic {
                Some(url) => {
                    let _ = crate::adapters::traffic::run(url, 10, Duration::from_secs(1), None);
                }
                None => std::thread::sleep(Duration::from_secs(1)),
            }
        }
    }

    fn route(
        &self,
        env: &Env,
        stable: &[String],
        canary: &[String],
        percent: u8,
    ) -> Result<(), EngineError> {
        self.svc
            .router
            .route(
                &env.target.namespace,
                &env.target.app,
                &Split {
                    stable: stable.to_vec(),
                    canary: canary.to_vec(),
                    canary_percent: percent,
                },
            )
            .map_err(|e| EngineError::Infrastructure(e.to_string()))
    }

    /// Why `images` may not go into `next` now: a manual rollback holds
    /// it, or one of them was rolled back (or failed) there.
    fn promotion_hold(&self, next: &Env, images: &[String]) -> Result<Option<String>, EngineError> {
        if let Some(p) = self.store.rollback_pending(&next.name)? {
            return Ok(Some(format!(
                "{} is held by a manual rollback ({}); promotions resume once its commit has landed",
                next.name,
                p.summary()
            )));
        }
        let quarantined = self.store.quarantine()?;
        Ok(images.iter().find_map(|i| {
            let q = quarantined
                .iter()
                .find(|q| q.env == next.name && i.ends_with(&q.digest))?;
            Some(format!(
                "{} is quarantined in {} ({}): never promoted there again",
                q.digest, next.name, q.reason
            ))
        }))
    }

    /// Whether a manual rollback holds `env` (the release in progress
    /// stops at its next step, as if aborted). An unreadable hold file
    /// holds too: fail closed.
    fn held(&self, env: &Env) -> bool {
        !matches!(self.store.rollback_pending(&env.name), Ok(None))
    }

    pub(crate) fn target_err(e: crate::ports::TargetError) -> EngineError {
        match e {
            crate::ports::TargetError::Unsupported { .. } => EngineError::Invalid(e.to_string()),
            other => EngineError::Infrastructure(other.to_string()),
        }
    }

    /// Runs (or resumes) one env's release to its end. An infrastructure
    /// pause is recorded like every other outcome: the release's record
    /// says `paused` with the reason (in the state dir at once, in the
    /// audit note when git answers), and the release resumes from its
    /// phase next time.
    pub fn run(
        &mut self,
        r: &EnvRelease<'_>,
        out: &mut dyn Reporter,
    ) -> Result<EnvOutcome, EngineError> {
        if let Some(p) = self.store.rollback_pending(&r.env.name)? {
            return Err(EngineError::Held(p.summary()));
        }
        let result = self.drive(r, out);
        if let Err(EngineError::Infrastructure(why)) = &result {
            self.record_pause(r, why);
        }
        result
    }

    fn record_pause(&mut self, r: &EnvRelease<'_>, why: &str) {
        let Ok(Some(mut state)) = self.store.release(&r.env.name) else {
            return;
        };
        if state.release != r.release || state.commit != r.commit || state.phase == Phase::Finished
        {
            return;
        }
        state.record.outcome = ReleaseOutcome::Paused;
        state.record.reason = Some(format!("infrastructure: {why}"));
        if let Err(e) = self.store.save_release(&state) {
            tracing::warn!(env = %r.env.name, error = %e, "cannot record the pause in the state dir");
            return;
        }
        if let Err(e) = self.audit(&state) {
            tracing::warn!(env = %r.env.name, error = %e, "cannot record the pause in the audit note yet");
        }
    }

    /// The version the release's app image says it is (its OCI label),
    /// else its short digest.
    fn release_version(&self, env: &Env, images: &[String]) -> String {
        images
            .iter()
            .find(|i| {
                i.contains(&format!("/{}@", env.target.app))
                    || i.contains(&format!("{}@", env.target.app))
            })
            .or(images.first())
            .map(|i| image_version(self.svc.registry, i))
            .unwrap_or_default()
    }

    fn drive(
        &mut self,
        r: &EnvRelease<'_>,
        out: &mut dyn Reporter,
    ) -> Result<EnvOutcome, EngineError> {
        let env = r.env;
        out.env(&env.name);
        let (objects, images) = self.render_at(env, r.commit)?;
        let existing = self.store.release(&env.name)?.filter(|s| {
            s.release == r.release && s.commit == r.commit && s.phase != Phase::Finished
        });
        let resumed = existing.is_some();
        let mut state = match existing {
            Some(s) => s,
            None => {
                let version = self.release_version(env, &images);
                ReleaseState {
                    release: r.release.into(),
                    env: env.name.clone(),
                    commit: r.commit.into(),
                    phase: Phase::Gated,
                    progress: Progress::new(),
                    bake: Progress::new(),
                    baseline_version: self.store.last_good(&env.name)?.map(|g| g.version),
                    version: version.clone(),
                    record: Record {
                        release: r.release.into(),
                        env: env.name.clone(),
                        actor: r.actor.into(),
                        images: images.clone(),
                        version,
                        started: (self.now)(),
                        finished: None,
                        outcome: ReleaseOutcome::Running,
                        reason: None,
                        checks: Vec::new(),
                        steps: Vec::new(),
                        commits: Commits {
                            released: r.commit.into(),
                            ..Commits::default()
                        },
                        timings: Default::default(),
                        rollback: None,
                    },
                }
            }
        };
        if resumed {
            out.info(&format!(
                "resuming {} in {} at {:?}",
                r.release, env.name, state.phase
            ));
            state.record.outcome = ReleaseOutcome::Running;
            state.record.reason = None;
        }

        // Gates: always re-run (cheap, and a resumed release must still pass them).
        let t = Instant::now();
        let checks = self.gate(env, r, &objects, &images)?;
        state.record.timings.insert("gates_ms".into(), ms(t));
        state.record.checks = checks.verdicts().iter().map(|v| (*v).into()).collect();
        if state.phase == Phase::Gated {
            out.checks(&checks);
        }
        let verdict = if let Some(infra) = &checks.infrastructure {
            GateVerdict::Unavailable {
                reason: infra.clone(),
            }
        } else if !checks.passed() {
            GateVerdict::Failed {
                reason: failed_gates(&checks),
            }
        } else {
            GateVerdict::Passed
        };
        if resumed && state.phase == Phase::Gated && verdict == GateVerdict::Passed {
            // Nothing runs yet: the version is read again now that the
            // registry answered (a release first seen while it was down
            // has the short digest, which no metric is labelled with).
            state.version = self.release_version(env, &images);
            state.record.version = state.version.clone();
        }
        // What is known before deploying; the gate and promotion
        // transitions do not depend on whether this is a first release.
        let plan = Plan {
            rollout: &env.rollout,
            first_release: false,
        };
        let (actions, next_state) = release::step(&state, &plan, Observation::Gated(verdict));
        state = next_state;
        for action in actions {
            match action {
                Action::Pause { reason } => {
                    // Saved first, so the pause is recorded against this release.
                    self.store.save_release(&state)?;
                    return Err(EngineError::Infrastructure(reason));
                }
                Action::RollBack => {
                    let stable = self
                        .svc
                        .target
                        .readiness(&workload(env, Track::Stable))
                        .map_err(Self::target_err)?;
                    recover::rollback(self, env, &state, false, &stable.endpoints)?;
                }
                Action::RestoreLastGood => recover::restore_last_good(self, env, &state)?,
                Action::HandBack => recover::hand_back(self, env, &state)?,
                Action::Fail { reason } => return self.fail(env, &mut state, &reason, false, out),
                Action::Deploy => {
                    self.save(&state)?;
                    if let Some(outcome) =
                        self.analyse(env, r, &objects, &images, &mut state, out)?
                    {
                        return Ok(outcome);
                    }
                }
                Action::DecidePromotion => self.save(&state)?,
                other => {
                    return Err(EngineError::Invalid(format!(
                        "the release machine asked for {other:?} after the gates"
                    )));
                }
            }
        }
        self.promote(r, &images, &checks, &plan, state, out)
    }

    /// Baked: what the promotion rules say about the next env, then the
    /// promotion commit when it may take the release.
    fn promote(
        &mut self,
        r: &EnvRelease<'_>,
        images: &[String],
        checks: &Checks,
        plan: &Plan<'_>,
        mut state: ReleaseState,
        out: &mut dyn Reporter,
    ) -> Result<EnvOutcome, EngineError> {
        let env = r.env;
        let mut approved = None;
        let hold = match r.next {
            Some(next) => self.promotion_hold(next, images)?,
            None => None,
        };
        let decision = match (r.next, &r.trust.next_blocked) {
            (_, Some((name, why))) => Promotion::Blocked {
                env: name.clone(),
                reason: format!("{name} cannot take it: {why}"),
            },
            (Some(next), None) if hold.is_some() => Promotion::Blocked {
                env: next.name.clone(),
                reason: hold.unwrap_or_default(),
            },
            (None, None) => Promotion::Last,
            (Some(next), None) => {
                let source_note = Note::parse(self.repo.note(r.commit)?.as_deref());
                let next_head = self.repo.resolve(&next.branch)?;
                let next_tree = self.repo.reader(&next_head)?;
                match promote::may_promote(
                    next,
                    next_tree.as_ref(),
                    r.trust.next_approvers.as_ref(),
                    &source_note,
                    r.release,
                    (self.now)(),
                ) {
                    Ok(approver) => {
                        approved = Some((next, approver));
                        Promotion::Allowed {
                            env: next.name.clone(),
                        }
                    }
                    Err(reason) => Promotion::Blocked {
                        env: next.name.clone(),
                        reason,
                    },
                }
            }
        };
        let mut observation = Observation::PromotionDecided(decision);
        loop {
            let (actions, next_state) = release::step(&state, plan, observation);
            state = next_state;
            let mut then = None;
            for action in actions {
                match action {
                    Action::Complete => {
                        return self.finish(
                            &mut state,
                            ReleaseOutcome::Complete,
                            None,
                            EnvOutcome::Complete,
                        );
                    }
                    Action::Wait {
                        env: next_name,
                        reason,
                        record,
                    } => {
                        out.step(
                            &format!("promote_{next_name}"),
                            &format!("waiting ({reason})"),
                        );
                        // The daemon retries every poll: a wait is recorded
                        // once per reason.
                        if record {
                            self.save(&state)?;
                            self.audit(&state)?;
                        }
                        return Ok(EnvOutcome::Waiting {
                            env: next_name,
                            reason,
                        });
                    }
                    Action::Promote { env: next_name } => {
                        let Some((next, approver)) =
                            approved.as_ref().filter(|(n, _)| n.name == next_name)
                        else {
                            return Err(EngineError::Invalid(format!(
                                "the release machine promotes into {next_name}, which the rules did not allow"
                            )));
                        };
                        let t = Instant::now();
                        let samples: usize =
                            state.record.steps.iter().map(|s| s.intervals.len()).sum();
                        if let Some(key) = self.svc.attestation_key {
                            // Before the commit: a promotion is never
                            // committed unattested; an attestation without
                            // its commit (a crash, git down) is still true
                            // and the retry adds another.
                            let p = crate::gates::promotion::Promotion {
                                verifier: &self.signer.identity().email,
                                from_env: &env.name,
                                to_env: &next.name,
                                release: r.release,
                                source_commit: r.commit,
                                gates: checks
                                    .verdicts()
                                    .iter()
                                    .map(|v| {
                                        (
                                            v.gate.to_string(),
                                            promote::outcome(v.outcome).to_string(),
                                        )
                                    })
                                    .collect(),
                                samples,
                                time: (self.now)(),
                            };
                            let attested = crate::gates::promotion::attest_all(
                                self.svc.registry,
                                images,
                                &p,
                                key,
                            )
                            .map_err(|e| {
                                EngineError::Infrastructure(format!(
                                    "promotion attestation of {}: {e}",
                                    images.join(", ")
                                ))
                            })?;
                            state.record.timings.insert("attest_ms".into(), ms(t));
                            out.step(
                                &format!("attest_{next_name}"),
                                &format!(
                                    "{} digest(s) attested (SLSA verification summary)",
                                    attested.len()
                                ),
                            );
                        }
                        let commit = promote::promote(
                            &mut *self.repo,
                            self.signer,
                            r.release,
                            env,
                            next,
                            r.commit,
                            images,
                            checks,
                            approver.as_deref(),
                            samples,
                        )?;
                        state.record.timings.insert("promote_ms".into(), ms(t));
                        crash_point("promoted");
                        out.step(
                            &format!("promote_{next_name}"),
                            &match &commit {
                                Some(c) => format!("committed {}", &c[..12.min(c.len())]),
                                None => "already promoted".into(),
                            },
                        );
                        then = Some(Observation::Promoted {
                            env: next_name,
                            commit,
                        });
                    }
                    Action::PromotedInto {
                        env: next_name,
                        commit,
                    } => {
                        return self.finish(
                            &mut state,
                            ReleaseOutcome::Promoted,
                            None,
                            EnvOutcome::Promoted {
                                env: next_name,
                                commit,
                            },
                        );
                    }
                    other => {
                        return Err(EngineError::Invalid(format!(
                            "the release machine asked for {other:?} while promoting"
                        )));
                    }
                }
            }
            observation = then.ok_or_else(|| {
                EngineError::Invalid(format!(
                    "the release machine stopped in {:?} without an outcome",
                    state.phase
                ))
            })?;
        }
    }

    fn gate(
        &self,
        env: &Env,
        r: &EnvRelease<'_>,
        objects: &[yaml_serde::Value],
        images: &[String],
    ) -> Result<Checks, EngineError> {
        let tree = self.repo.reader(r.commit)?;
        let rendered = crate::render::Rendered {
            objects: objects.to_vec(),
        };
        let mut checks = crate::gates::run::run(
            tree.as_ref(),
            &rendered,
            &env.gates,
            self.svc.registry,
            (self.now)(),
        );
        // Quarantined digests and the promotion record count as artifact checks.
        let quarantine = self.store.quarantine()?;
        let mut extra = Vec::new();
        for image in images {
            if let Some(q) = quarantine.iter().find(|q| image.ends_with(&q.digest)) {
                extra.push(crate::model::Finding {
                    rule: "quarantined".into(),
                    subject: image.clone(),
                    message: format!(
                        "quarantined: {} was reverted in {} ({}); commit a different digest",
                        q.release, q.env, q.reason
                    ),
                    enforced: true,
                    enforced_from: None,
                });
            }
        }
        let note = Note::parse(self.repo.note(r.commit)?.as_deref());
        if let Err(e) =
            promote::verify_promotion(&note, &r.trust.promotion_signers, &env.name, images)
        {
            extra.push(crate::model::Finding {
                rule: "promotion-record".into(),
                subject: r.commit.into(),
                message: e,
                enforced: true,
                enforced_from: None,
            });
        }
        if !extra.is_empty() {
            let mut findings = checks.artifact_signature.findings.clone();
            findings.extend(extra);
            checks.artifact_signature =
                crate::model::Verdict::from_findings("artifact_signature", findings);
        }
        Ok(checks)
    }

    /// Deploys the new version (canary track; stable when nothing runs
    /// yet). `Err(outcome)` when it never became ready: the release failed,
    /// rolled back and reverted.
    fn deploy(
        &mut self,
        env: &Env,
        r: &EnvRelease<'_>,
        objects: &[yaml_serde::Value],
        state: &mut ReleaseState,
        out: &mut dyn Reporter,
    ) -> Result<Result<Deployed, EnvOutcome>, EngineError> {
        let t = Instant::now();
        let target = self.svc.target;
        let stable_now = target
            .readiness(&workload(env, Track::Stable))
            .map_err(Self::target_err)?;
        let first_release = stable_now.desired == 0;
        let track = if first_release {
            Track::Stable
        } else {
            Track::Canary
        };
        // The new version never becoming ready is the release's fault: it
        // fails (rolled back, reverted). Every other target error pauses,
        // whatever its message says.
        let applied = match target.apply(&workload(env, track), objects, r.release) {
            Ok(a) => a,
            Err(e @ crate::ports::TargetError::NotReady { .. }) => {
                return self
                    .fail(
                        env,
                        state,
                        &format!("the new version never became ready: {e}"),
                        true,
                        out,
                    )
                    .map(Err);
            }
            Err(e) => return Err(Self::target_err(e)),
        };
        let d = if first_release {
            Deployed {
                first_release,
                stable: applied.endpoints,
                canary: Vec::new(),
            }
        } else {
            // A canary left by a killed run is replaced, not kept beside.
            target
                .settle(&workload(env, Track::Canary))
                .map_err(Self::target_err)?;
            Deployed {
                first_release,
                stable: stable_now.endpoints,
                canary: applied.endpoints,
            }
        };
        if first_release {
            self.route(env, &d.stable, &[], 0)?;
            target
                .settle(&workload(env, Track::Stable))
                .map_err(Self::target_err)?;
        }
        state.record.timings.insert("deploy_ms".into(), ms(t));
        Ok(Ok(d))
    }

    /// Drives the release machine (`crate::release`) from deployment to
    /// baked: performs each action through the ports, turns what happened
    /// into the next observation, and saves the state after every step's
    /// side effects and before each measurement (the crash points).
    /// `Some(outcome)` when the release ended here; `None` when it is baked
    /// and this release is the env's last good one.
    fn analyse(
        &mut self,
        env: &Env,
        r: &EnvRelease<'_>,
        objects: &[yaml_serde::Value],
        images: &[String],
        state: &mut ReleaseState,
        out: &mut dyn Reporter,
    ) -> Result<Option<EnvOutcome>, EngineError> {
        let d = if state.phase == Phase::Stable {
            // A resumed bake: the new version is stable already.
            Deployed {
                first_release: false,
                stable: Vec::new(),
                canary: Vec::new(),
            }
        } else {
            match self.deploy(env, r, objects, state, out)? {
                Ok(d) => {
                    out.rollout();
                    d
                }
                Err(outcome) => return Ok(Some(outcome)),
            }
        };
        let plan = Plan {
            rollout: &env.rollout,
            first_release: d.first_release,
        };
        let version = state.version.clone();
        let baseline = (!d.first_release)
            .then(|| state.baseline_version.clone())
            .flatten();
        let analysis = Instant::now();
        let mut bake: Option<(Instant, Instant)> = (state.phase == Phase::Stable)
            .then(|| (Instant::now(), Instant::now() + env.rollout.bake));
        let mut observation = Observation::Deployed;
        loop {
            let (actions, next) = release::step(state, &plan, observation);
            *state = next;
            let mut measure = None;
            for action in actions {
                match action {
                    Action::Route { percent } => {
                        self.route(env, &d.stable, &d.canary, percent)?;
                    }
                    Action::WarmUp => {
                        out.mark("canary_traffic");
                        self.warm_up(env, &version, plan.track());
                    }
                    Action::StepDone { name, result } => out.step(&name, &result.to_string()),
                    Action::SwitchToStable => {
                        state
                            .record
                            .timings
                            .insert("analysis_ms".into(), ms(analysis));
                        let t = Instant::now();
                        self.switch_to_stable(env, objects, r.release)?;
                        state.record.timings.insert("switch_ms".into(), ms(t));
                    }
                    Action::RollBack => {
                        state
                            .record
                            .timings
                            .insert("analysis_ms".into(), ms(analysis));
                        out.mark("detected");
                        let detected = Instant::now();
                        // Traffic back on stable and the canary gone, first.
                        let to_stable =
                            recover::rollback(self, env, state, d.first_release, &d.stable)?;
                        out.mark("stable");
                        state
                            .record
                            .timings
                            .insert("to_stable_ms".into(), to_stable.as_millis() as u64);
                        state
                            .record
                            .timings
                            .insert("rollback_ms".into(), ms(detected));
                    }
                    Action::RestoreLastGood => recover::restore_last_good(self, env, state)?,
                    Action::Baked => {
                        if let Some((started, _)) = bake {
                            state.record.timings.insert("bake_ms".into(), ms(started));
                        }
                        // Only a baked release is good enough to come back to.
                        self.store.save_last_good(
                            &env.name,
                            &LastGood {
                                release: r.release.into(),
                                commit: r.commit.into(),
                                images: images.to_vec(),
                                version: state.version.clone(),
                                baseline: baseline_of(&state.record),
                                since: Some((self.now)()),
                                previous: self.store.last_good(&env.name)?.map(|mut p| {
                                    p.previous = None;
                                    Box::new(p)
                                }),
                            },
                        )?;
                    }
                    Action::Fail { reason } => {
                        return self.fail(env, state, &reason, false, out).map(Some);
                    }
                    Action::Inconclusive { reason } => {
                        return self
                            .finish(
                                state,
                                ReleaseOutcome::Paused,
                                Some(reason.clone()),
                                EnvOutcome::Inconclusive { reason },
                            )
                            .map(Some);
                    }
                    Action::Aborted => return self.aborted(state, out).map(Some),
                    Action::Park => {
                        self.save(state)?;
                        return Err(EngineError::Interrupted);
                    }
                    Action::Measure { weight, track } => measure = Some((weight, track)),
                    // Baked: `drive` asks the promotion rules next.
                    Action::DecidePromotion => {}
                    other @ (Action::Pause { .. }
                    | Action::Deploy
                    | Action::HandBack
                    | Action::Wait { .. }
                    | Action::Promote { .. }
                    | Action::Complete
                    | Action::PromotedInto { .. }) => {
                        return Err(EngineError::Invalid(format!(
                            "the release machine asked for {other:?} during the analysis"
                        )));
                    }
                }
            }
            self.save(state)?;
            if state.phase == Phase::Baked {
                return Ok(None);
            }
            let Some((weight, track)) = measure else {
                return Err(EngineError::Invalid(format!(
                    "the release machine stopped in {:?} without a verdict",
                    state.phase
                )));
            };
            observation = if self.abort.load(std::sync::atomic::Ordering::Relaxed) || self.held(env)
            {
                Observation::AbortRequested
            } else if self.stop.load(std::sync::atomic::Ordering::Relaxed) {
                Observation::ShutdownRequested
            } else if state.phase == Phase::Stable
                && bake
                    .get_or_insert_with(|| (Instant::now(), Instant::now() + env.rollout.bake))
                    .1
                    <= Instant::now()
            {
                Observation::BakeOver
            } else {
                let name = if state.phase == Phase::Stable {
                    release::BAKE.to_string()
                } else {
                    rollout::step_name(weight)
                };
                let base = (track == Track::Canary)
                    .then_some(baseline.as_deref())
                    .flatten();
                let (result, record) = self.measure(env, weight, (track, &version), base);
                let n = state
                    .record
                    .steps
                    .last()
                    .filter(|s| s.name == name)
                    .map_or(0, |s| s.intervals.len());
                out.interval(&name, n + 1, &result);
                Observation::Measured { result, record }
            };
        }
    }

    /// The canary becomes stable: new stable pods, traffic to them, then
    /// the canary and the old stable go.
    fn switch_to_stable(
        &self,
        env: &Env,
        objects: &[yaml_serde::Value],
        release: &str,
    ) -> Result<(), EngineError> {
        let target = self.svc.target;
        let stable = target
            .apply(&workload(env, Track::Stable), objects, release)
            .map_err(Self::target_err)?;
        self.route(env, &stable.endpoints, &[], 0)?;
        target
            .remove(&workload(env, Track::Canary))
            .map_err(Self::target_err)?;
        target
            .settle(&workload(env, Track::Stable))
            .map_err(Self::target_err)?;
        Ok(())
    }

    /// A failed release in `env`: revert its commit (signed, with the
    /// evidence), quarantine its digests, record it.
    /// SLO drift found by the drift stage within `drift.revert_within` of
    /// the env's last release finishing: that release is handed back —
    /// the good release before it runs again, then the signed revert with
    /// the burn evidence in its trailers, the digests quarantined, the
    /// record `failed`. Refuses (changing nothing) when there is no earlier
    /// good release to go back to or the release state is gone.
    pub fn revert_live(
        &mut self,
        env: &Env,
        reason: &str,
        evidence: crate::audit::IntervalRecord,
        out: &mut dyn Reporter,
    ) -> Result<EnvOutcome, EngineError> {
        let Some(good) = self.store.last_good(&env.name)? else {
            return Err(EngineError::Invalid(format!(
                "{}: nothing was released here; nothing to roll back",
                env.name
            )));
        };
        let Some(previous) = good.previous.clone() else {
            return Err(EngineError::Invalid(format!(
                "{}: no good release before {} to roll back to; fix forward",
                env.name, good.release
            )));
        };
        let Some(mut state) = self
            .store
            .release(&env.name)?
            .filter(|s| s.release == good.release && s.commit == good.commit)
        else {
            return Err(EngineError::Invalid(format!(
                "{}: the state of {} is gone; roll back by hand (git revert {})",
                env.name, good.release, good.commit
            )));
        };
        out.info(&format!(
            "SLO drift right after {}: rolling back to {}",
            good.release, previous.release
        ));
        recover::restore(self, env, &previous)?;
        self.store.save_last_good(&env.name, &previous)?;
        state.record.steps.push(StepRecord {
            name: "slo-drift".into(),
            result: StepResult::Unhealthy(reason.to_string()),
            intervals: vec![evidence],
        });
        self.fail(env, &mut state, reason, false, out)
    }

    /// An operator stopped the release: live is back on the last good
    /// version (done by the caller); record it, revert nothing.
    fn aborted(
        &mut self,
        state: &mut ReleaseState,
        out: &mut dyn Reporter,
    ) -> Result<EnvOutcome, EngineError> {
        let reason = "aborted by an operator; all traffic on stable, nothing reverted".to_string();
        out.info(&reason);
        self.finish(
            state,
            ReleaseOutcome::Aborted,
            Some(reason.clone()),
            EnvOutcome::Aborted { reason },
        )
    }

    fn fail(
        &mut self,
        env: &Env,
        state: &mut ReleaseState,
        reason: &str,
        rollback_first: bool,
        out: &mut dyn Reporter,
    ) -> Result<EnvOutcome, EngineError> {
        if rollback_first {
            let stable = self
                .svc
                .target
                .readiness(&workload(env, Track::Stable))
                .map_err(Self::target_err)?;
            recover::rollback(self, env, state, false, &stable.endpoints)?;
        }
        let t = Instant::now();
        let revert = recover::revert(self, env, state, reason)?;
        state.record.timings.insert("revert_ms".into(), ms(t));
        out.mark("reverted");
        out.info(&format!(
            "reverted {} on {}: {}",
            &state.commit[..12.min(state.commit.len())],
            env.branch,
            revert.as_deref().unwrap_or("already reverted")
        ));
        let q: Vec<Quarantined> = state
            .record
            .images
            .iter()
            .filter_map(|i| crate::render::transform::split_image(i).2)
            .map(|d| Quarantined {
                digest: d.to_string(),
                release: state.release.clone(),
                env: env.name.clone(),
                reason: reason.to_string(),
            })
            .collect();
        self.store.add_quarantine(q)?;
        state.record.commits.revert = revert.clone();
        self.finish(
            state,
            ReleaseOutcome::Failed,
            Some(reason.to_string()),
            EnvOutcome::Failed {
                reason: reason.to_string(),
                revert,
            },
        )
    }

    fn finish(
        &mut self,
        state: &mut ReleaseState,
        outcome: ReleaseOutcome,
        reason: Option<String>,
        result: EnvOutcome,
    ) -> Result<EnvOutcome, EngineError> {
        state.record.outcome = outcome;
        state.record.reason = reason;
        state.record.finished = Some((self.now)());
        state.phase = Phase::Finished;
        self.save(state)?;
        self.audit(state)?;
        Ok(result)
    }
}
