//! The release engine over the in-memory ports (`platform_capstone::fakes`)
//! and a real git remote on disk: each scenario is a named test that runs
//! in milliseconds, asserting what the engine did to the target, the
//! router, the branch and the store — not what it printed.

use platform_capstone::audit::{Note, ReleaseOutcome};
use platform_capstone::config::Env;
use platform_capstone::drill::lab::{self, LIVE_EDIT, Lab};
use platform_capstone::drill::run::{DrillError, Ground, Plan, run_in};
use platform_capstone::drill::{DrillRun, Scenario};
use platform_capstone::engine::rollback::{Done, Landed, RollbackError};
use platform_capstone::engine::store::{Phase, Store};
use platform_capstone::engine::{
    EngineError, EnvOutcome, EnvRelease, ReleaseTrust, Reporter, Services,
};
use platform_capstone::fakes::{
    Answer, ApplyFault, MemRegistry, MemRouter, MemTarget, ScriptedMetrics,
};
use platform_capstone::ports::{Registry as _, TargetError, Track, Workload};
use platform_capstone::rollback::{Request, RequestError, To};
use platform_capstone::signing::{Identity, Signer};
use platform_capstone::source::{FileChange, Git2Repo, GitRepo, TreeReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const IMAGE_REPO: &str = "localhost:5000/platform-capstone/demo";
const REQUESTS: &str = "requests{version=\"{{version}}\",track=\"{{track}}\"}";

/// One env's world: a config repo from the blueprint on a bare remote, the
/// fakes, a state dir, and a cosign key the env trusts.
struct Rig {
    _dir: tempfile::TempDir,
    repo: Git2Repo,
    signer: Signer,
    store: Store,
    target: MemTarget,
    router: MemRouter,
    metrics: ScriptedMetrics,
    registry: MemRegistry,
    cosign: p256::ecdsa::SigningKey,
    /// The daemon's promotion attestation key (`attestation_key`).
    attestation: Option<p256::ecdsa::SigningKey>,
    env: Env,
    /// The next env (staging, from its own branch) and what the release
    /// trusts for promoting into it; `next: None` releases dev alone.
    staging: Env,
    next: bool,
    trust: ReleaseTrust,
    stop: AtomicBool,
    abort: AtomicBool,
    released: usize,
}

/// Builds `version` in `registry`, signed and attested with `key`:
/// `repo@digest`.
fn publish(registry: &MemRegistry, version: &str, key: &p256::ecdsa::SigningKey) -> String {
    let config = serde_json::json!({
        "config": {"Labels": {"org.opencontainers.image.version": version}}
    });
    let digest = registry
        .push_image(
            &format!("{IMAGE_REPO}:{version}"),
            serde_json::to_vec(&config).expect("json"),
            vec![format!("demo {version}").into_bytes()],
        )
        .expect("push");
    platform_capstone::gates::cosign::sign(registry, IMAGE_REPO, &digest, key).expect("sign");
    platform_capstone::gates::cosign::attest(
        registry,
        IMAGE_REPO,
        &digest,
        platform_capstone::gates::cosign::VULN_PREDICATE,
        platform_capstone::local::images::inventory_predicate(chrono::Utc::now()),
        key,
    )
    .expect("attest");
    format!("{IMAGE_REPO}@{digest}")
}

/// `version` answers an error ratio of `errors`, a p99 latency of
/// `latency` seconds and 100 requests per interval.
fn measures(metrics: &ScriptedMetrics, version: &str, errors: f64, latency: f64) {
    let v = format!("version=\"{version}\"");
    metrics.value(&["5..", &v], errors);
    metrics.value(&["histogram_quantile", &v], latency);
    metrics.value(&["requests{", &v], 100.0);
}

/// Records what the engine reported, for the few assertions on output.
#[derive(Default)]
struct Lines(Vec<String>);

impl Reporter for Lines {
    fn step(&mut self, name: &str, result: &str) {
        self.0.push(format!("{name}: {result}"));
    }
    fn info(&mut self, line: &str) {
        self.0.push(line.to_string());
    }
    fn mark(&mut self, event: &str) {
        self.0.push(format!("mark {event}"));
    }
}

impl Rig {
    /// `dev` of the blueprint, trusting a fresh cosign key, with analysis
    /// shrunk to milliseconds (1 interval per step, a 30 ms bake).
    fn new() -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("daemon_key");
        platform_capstone::signing::generate_key(&key, "daemon@example.com").expect("keygen");
        let identity = Identity {
            name: "daemon".into(),
            email: "daemon@example.com".into(),
        };
        let signer = Signer::load(&key, identity.clone()).expect("signer");
        let remote = dir.path().join("remote.git");
        let url = format!("file://{}", remote.display());
        platform_capstone::blueprint::init(
            &dir.path().join("init"),
            Some(&url),
            Some(&signer),
            &identity,
        )
        .expect("init");
        let mut repo = Git2Repo::open_remote(&url, &dir.path().join("cache"), None)
            .expect("open")
            .with_signer(signer.clone());
        repo.fetch().expect("fetch");
        let (cosign_private, cosign_public) =
            platform_capstone::gates::cosign::generate_key_pair().expect("cosign");
        let cosign =
            platform_capstone::gates::cosign::load_signing_key(&cosign_private).expect("key");
        repo.commit_change(
            "env/dev",
            "trust the release key",
            &mut |tree: &dyn TreeReader| {
                let mut trust = tree.read_string("policies/trust.toml")?;
                trust.push_str(
                    "\n[[keys]]\nname = \"release-ci\"\npath = \"keys/release-ci.pub\"\n",
                );
                Ok(Some(vec![
                    FileChange {
                        path: "policies/keys/release-ci.pub".into(),
                        content: Some(cosign_public.clone().into_bytes()),
                    },
                    FileChange {
                        path: "policies/trust.toml".into(),
                        content: Some(trust.into_bytes()),
                    },
                ]))
            },
        )
        .expect("commit trust");
        let head = repo.resolve("env/dev").expect("head");
        let tree = repo.reader(&head).expect("tree");
        let mut env = platform_capstone::config::load_own_env(tree.as_ref(), "dev")
            .unwrap_or_else(|p| panic!("dev: {p:?}"));
        env.rollout.analysis_interval = Duration::from_millis(1);
        env.rollout.intervals_per_step = 1;
        env.rollout.inconclusive_limit = 0;
        env.rollout.min_requests = 10;
        env.rollout.bake = Duration::from_millis(30);
        drop(tree);
        let staging_head = repo.resolve("env/staging").expect("staging head");
        let staging_tree = repo.reader(&staging_head).expect("tree");
        let staging = platform_capstone::config::load_own_env(staging_tree.as_ref(), "staging")
            .unwrap_or_else(|p| panic!("staging: {p:?}"));
        drop(staging_tree);
        let store = Store::new(&dir.path().join("state"));
        Rig {
            repo,
            signer,
            store,
            target: MemTarget::new(),
            router: MemRouter::new(),
            metrics: ScriptedMetrics::new(),
            registry: MemRegistry::new(),
            cosign,
            attestation: None,
            env,
            staging,
            next: false,
            trust: ReleaseTrust::default(),
            stop: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            released: 0,
            _dir: dir,
        }
    }

    /// Builds, signs and attests `version` in the registry; `repo@digest`.
    fn publish(&self, version: &str) -> String {
        publish(&self.registry, version, &self.cosign)
    }

    /// Every SLO and the request count of `version` answer healthy values.
    fn healthy(&self, version: &str) {
        measures(&self.metrics, version, 0.0, 0.02);
    }

    /// Pins `version` on env/dev and runs its release: the commit and the
    /// engine's answer.
    fn release(&mut self, version: &str) -> (String, Result<EnvOutcome, EngineError>, Lines) {
        let image = self.publish(version);
        self.released += 1;
        let id = format!("rel-2026-11-30-{:02}", self.released);
        let commit = self.pin(&image, version, &id);
        let (result, lines) = self.run(&commit, &id);
        (commit, result, lines)
    }

    /// Pins `image` on env/dev as release `id`: the commit.
    fn pin(&mut self, image: &str, version: &str, id: &str) -> String {
        platform_capstone::engine::pin::pin_images(
            &mut self.repo,
            &self.env,
            &[image.to_string()],
            version,
            id,
        )
        .expect("pin")
    }

    /// How many times anything was applied as the canary.
    fn canary_applies(&self) -> usize {
        self.target
            .calls()
            .iter()
            .filter(|c| c.starts_with("apply") && c.contains("canary"))
            .count()
    }

    /// Runs (or resumes) release `id` of `commit`.
    fn run(&mut self, commit: &str, id: &str) -> (Result<EnvOutcome, EngineError>, Lines) {
        let mut lines = Lines::default();
        let result = self.run_with(commit, id, &mut lines);
        (result, lines)
    }

    fn run_with(
        &mut self,
        commit: &str,
        id: &str,
        out: &mut dyn Reporter,
    ) -> Result<EnvOutcome, EngineError> {
        let (env, staging, trust) = (self.env.clone(), self.staging.clone(), self.trust.clone());
        let next = self.next.then_some(&staging);
        self.with_engine(|engine| {
            engine.run(
                &EnvRelease {
                    env: &env,
                    next,
                    commit,
                    release: id,
                    actor: "test",
                    trust: &trust,
                },
                out,
            )
        })
    }

    /// An engine over the rig's fakes, repo and store.
    fn with_engine<R>(
        &mut self,
        f: impl FnOnce(&mut platform_capstone::engine::Engine<'_>) -> R,
    ) -> R {
        let svc = Services {
            target: &self.target,
            router: &self.router,
            metrics: &self.metrics,
            registry: &self.registry,
            traffic: None,
            requests_query: REQUESTS.into(),
            scrape_settle: Duration::ZERO,
            discovery_wait: Duration::from_millis(20),
            attestation_key: self.attestation.as_ref(),
        };
        let now = chrono::Utc::now;
        let mut engine = platform_capstone::engine::Engine {
            repo: &mut self.repo,
            svc: &svc,
            store: &self.store,
            signer: &self.signer,
            now: &now,
            stop: &self.stop,
            abort: &self.abort,
        };
        f(&mut engine)
    }

    fn workload(&self, track: Track) -> Workload {
        Workload {
            namespace: self.env.target.namespace.clone(),
            app: self.env.target.app.clone(),
            track,
        }
    }

    fn head(&self) -> String {
        self.repo.resolve("env/dev").expect("head")
    }

    fn record(&self, commit: &str, id: &str) -> platform_capstone::audit::Record {
        let note = Note::parse(self.repo.note(commit).expect("note").as_deref());
        note.records
            .into_iter()
            .find(|r| r.release == id)
            .unwrap_or_else(|| panic!("no record of {id} in the note of {commit}"))
    }

    /// 1.0.0 live as stable (a first release: full traffic, no canary).
    fn with_stable(&mut self) {
        self.healthy("1.0.0");
        let (_, result, _) = self.release("1.0.0");
        assert_eq!(result.expect("first release"), EnvOutcome::Complete);
    }

    /// 1.0.0 stable, then 1.1.0 (rel-2026-11-30-02) released while the
    /// process shuts down: parked mid-canary, traffic on stable. Its commit.
    fn parked_mid_canary(&mut self) -> String {
        self.with_stable();
        self.healthy("1.1.0");
        self.stop.store(true, Ordering::Relaxed);
        let (commit, result, _) = self.release("1.1.0");
        assert!(
            matches!(result, Err(EngineError::Interrupted)),
            "{result:?}"
        );
        self.stop.store(false, Ordering::Relaxed);
        commit
    }

    /// 1.0.0 stable, then a healthy 1.1.0 pinned on env/dev as release
    /// `rel-2026-11-30-02`, promoting into staging: (commit, release id).
    fn healthy_next_pinned(&mut self) -> (String, &'static str) {
        self.with_stable();
        self.next = true;
        self.healthy("1.1.0");
        let image = self.publish("1.1.0");
        let id = "rel-2026-11-30-02";
        self.released += 1;
        (self.pin(&image, "1.1.0", id), id)
    }

    /// The release the stable track runs.
    fn stable_release(&self) -> String {
        self.target
            .running(&self.workload(Track::Stable))
            .expect("a stable track")
            .release
    }

    fn canary_weights(&self) -> Vec<u8> {
        self.router
            .history()
            .iter()
            .map(|s| s.canary_percent)
            .collect()
    }
}

#[test]
fn a_good_release_goes_through_every_canary_step_bakes_and_becomes_last_good() {
    let mut rig = Rig::new();
    rig.with_stable();
    let stable_before = rig
        .target
        .running(&rig.workload(Track::Stable))
        .expect("stable");
    rig.healthy("1.1.0");
    let (commit, result, lines) = rig.release("1.1.0");
    assert_eq!(result.expect("release"), EnvOutcome::Complete);
    // First release: stable at 0%; then 10, 50, 100 to the canary, and the
    // canary's version as the new stable with all traffic.
    assert_eq!(rig.canary_weights(), vec![0, 10, 50, 100, 0]);
    let stable = rig
        .target
        .running(&rig.workload(Track::Stable))
        .expect("stable");
    assert_eq!(stable.release, "rel-2026-11-30-02");
    assert_ne!(stable.endpoints, stable_before.endpoints);
    assert!(rig.target.running(&rig.workload(Track::Canary)).is_none());
    let steps: Vec<&str> = lines.0.iter().map(String::as_str).collect();
    for s in [
        "canary_10: healthy",
        "canary_50: healthy",
        "full_100: healthy",
        "bake: healthy",
    ] {
        assert!(steps.contains(&s), "{s} missing from {steps:?}");
    }
    let record = rig.record(&commit, "rel-2026-11-30-02");
    assert_eq!(record.outcome, ReleaseOutcome::Complete);
    assert_eq!(record.version, "1.1.0");
    let good = rig.store.last_good("dev").expect("store").expect("good");
    assert_eq!(good.release, "rel-2026-11-30-02");
    assert_eq!(
        good.previous.expect("previous").release,
        "rel-2026-11-30-01"
    );
    assert_eq!(rig.head(), commit, "nothing committed after a good release");
}

#[test]
fn an_unhealthy_canary_goes_back_to_stable_is_reverted_and_quarantined() {
    let mut rig = Rig::new();
    rig.with_stable();
    rig.healthy("1.1.0");
    rig.metrics.value(&["5..", "version=\"1.1.0\""], 0.4);
    let (commit, result, lines) = rig.release("1.1.0");
    let Ok(EnvOutcome::Failed { reason, revert }) = result else {
        panic!("expected a failure, got {result:?}");
    };
    assert!(reason.contains("availability"), "{reason}");
    // Stable took all traffic back before anything else; the canary is gone.
    assert_eq!(rig.canary_weights().last(), Some(&0));
    assert!(rig.target.running(&rig.workload(Track::Canary)).is_none());
    let stable = rig
        .target
        .running(&rig.workload(Track::Stable))
        .expect("stable");
    assert_eq!(stable.release, "rel-2026-11-30-01");
    let marks: Vec<&String> = lines.0.iter().filter(|l| l.starts_with("mark ")).collect();
    assert_eq!(
        marks,
        [
            "mark canary_traffic",
            "mark detected",
            "mark stable",
            "mark reverted"
        ]
    );
    // The revert is the branch's new head, signed, with the evidence.
    let revert = revert.expect("a revert commit");
    assert_eq!(rig.head(), revert);
    let message = rig.repo.message(&revert).expect("message");
    assert!(message.contains(&format!("Reverts: {commit}")), "{message}");
    assert!(message.contains("Evidence: canary_10 at 10%"), "{message}");
    let quarantined = rig.store.quarantine().expect("quarantine");
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].release, "rel-2026-11-30-02");
    let record = rig.record(&commit, "rel-2026-11-30-02");
    assert_eq!(record.outcome, ReleaseOutcome::Failed);
    assert_eq!(
        record.steps[0].result,
        platform_capstone::rollout::StepResult::Unhealthy(reason.clone())
    );
}

#[test]
fn no_data_parks_on_stable_and_reverts_nothing() {
    let mut rig = Rig::new();
    rig.with_stable();
    // The canary's request count answers, its SLOs never do.
    rig.metrics
        .value(&["requests{", "version=\"1.1.0\""], 100.0);
    let (commit, result, _) = rig.release("1.1.0");
    let Ok(EnvOutcome::Inconclusive { reason }) = result else {
        panic!("expected inconclusive, got {result:?}");
    };
    assert!(reason.contains("no data"), "{reason}");
    assert_eq!(
        rig.head(),
        commit,
        "an inconclusive release is never reverted"
    );
    assert!(rig.store.quarantine().expect("quarantine").is_empty());
    assert_eq!(rig.canary_weights().last(), Some(&0));
    assert_eq!(
        rig.record(&commit, "rel-2026-11-30-02").outcome,
        ReleaseOutcome::Paused
    );
}

#[test]
fn a_provider_error_is_never_read_as_healthy() {
    let mut rig = Rig::new();
    rig.with_stable();
    rig.healthy("1.1.0");
    rig.metrics.answer(
        &["5..", "version=\"1.1.0\""],
        Answer::ProviderError("connection refused".into()),
    );
    let (commit, result, _) = rig.release("1.1.0");
    assert!(
        matches!(result, Ok(EnvOutcome::Inconclusive { .. })),
        "{result:?}"
    );
    assert_eq!(rig.head(), commit);
    // Asked once by the warm-up, which stops at the error instead of
    // waiting for discovery, and once by the one interval.
    let asked = rig
        .metrics
        .asked()
        .iter()
        .filter(|q| q.contains("5..") && q.contains("version=\"1.1.0\""))
        .count();
    assert_eq!(asked, 2);
}

#[test]
fn a_target_error_whose_text_says_not_ready_pauses_and_never_reverts() {
    let mut rig = Rig::new();
    rig.with_stable();
    rig.healthy("1.1.0");
    rig.target
        .fail_apply(ApplyFault::Error(TargetError::Unavailable(
            "the API server is not ready: etcd leader changed".into(),
        )));
    let (commit, result, _) = rig.release("1.1.0");
    assert!(
        matches!(result, Err(EngineError::Infrastructure(_))),
        "expected a pause, got {result:?}"
    );
    assert_eq!(rig.head(), commit, "infrastructure never reverts");
    assert!(rig.store.quarantine().expect("quarantine").is_empty());
    let stable = rig
        .target
        .running(&rig.workload(Track::Stable))
        .expect("stable");
    assert_eq!(stable.release, "rel-2026-11-30-01");
    // The same release runs to its end once the target answers again.
    rig.target.clear_fault();
    let (result, _) = rig.run(&commit, "rel-2026-11-30-02");
    assert_eq!(result.expect("resumed"), EnvOutcome::Complete);
}

#[test]
fn a_version_that_never_becomes_ready_fails_and_is_reverted() {
    let mut rig = Rig::new();
    rig.with_stable();
    rig.healthy("1.1.0");
    rig.target.fail_apply(ApplyFault::NeverReady);
    let (commit, result, _) = rig.release("1.1.0");
    let Ok(EnvOutcome::Failed { reason, revert }) = result else {
        panic!("expected a failure, got {result:?}");
    };
    assert!(reason.contains("never became ready"), "{reason}");
    assert_ne!(rig.head(), commit);
    assert_eq!(Some(rig.head()), revert);
    assert_eq!(rig.stable_release(), "rel-2026-11-30-01");
}

#[test]
fn an_unreachable_registry_pauses_at_the_gates() {
    let mut rig = Rig::new();
    rig.with_stable();
    rig.healthy("1.1.0");
    let image = rig.publish("1.1.0");
    let commit = rig.pin(&image, "1.1.0", "rel-2026-11-30-02");
    rig.registry.set_down(Some("connection refused"));
    let (result, _) = rig.run(&commit, "rel-2026-11-30-02");
    assert!(
        matches!(result, Err(EngineError::Infrastructure(_))),
        "{result:?}"
    );
    assert_eq!(rig.head(), commit);
    assert_eq!(rig.canary_applies(), 0, "nothing ran as the canary");
    // The pause is on record, with its reason; once the registry answers
    // the same release runs to its end and the record says so.
    let paused = rig.record(&commit, "rel-2026-11-30-02");
    assert_eq!(paused.outcome, ReleaseOutcome::Paused);
    let reason = paused.reason.expect("a reason");
    assert!(reason.starts_with("infrastructure: "), "{reason}");
    assert!(reason.contains("connection refused"), "{reason}");
    rig.registry.set_down(None);
    let (result, _) = rig.run(&commit, "rel-2026-11-30-02");
    assert_eq!(result.expect("resumed"), EnvOutcome::Complete);
    let done = rig.record(&commit, "rel-2026-11-30-02");
    assert_eq!(
        (done.outcome, done.reason),
        (ReleaseOutcome::Complete, None)
    );
}

#[test]
fn an_unsigned_image_fails_the_gate_before_anything_runs() {
    let mut rig = Rig::new();
    rig.with_stable();
    let digest = rig
        .registry
        .push_image(
            &format!("{IMAGE_REPO}:unsigned"),
            b"{}".to_vec(),
            vec![b"x".to_vec()],
        )
        .expect("push");
    let commit = rig.pin(
        &format!("{IMAGE_REPO}@{digest}"),
        "unsigned",
        "rel-2026-11-30-02",
    );
    let (result, _) = rig.run(&commit, "rel-2026-11-30-02");
    let Ok(EnvOutcome::Failed { reason, revert }) = result else {
        panic!("expected a gate failure, got {result:?}");
    };
    assert!(reason.starts_with("artifact_signature"), "{reason}");
    assert_eq!(Some(rig.head()), revert);
    assert_eq!(rig.canary_applies(), 0, "nothing ran as the canary");
}

#[test]
fn an_operator_abort_parks_on_stable_and_records_aborted() {
    let mut rig = Rig::new();
    rig.with_stable();
    rig.healthy("1.1.0");
    rig.abort.store(true, Ordering::Relaxed);
    let (commit, result, _) = rig.release("1.1.0");
    assert!(
        matches!(result, Ok(EnvOutcome::Aborted { .. })),
        "{result:?}"
    );
    assert_eq!(rig.head(), commit, "an abort reverts nothing");
    assert!(rig.target.running(&rig.workload(Track::Canary)).is_none());
    assert_eq!(
        rig.record(&commit, "rel-2026-11-30-02").outcome,
        ReleaseOutcome::Aborted
    );
}

#[test]
fn a_shutdown_mid_canary_parks_on_stable_and_the_release_resumes() {
    let mut rig = Rig::new();
    let commit = rig.parked_mid_canary();
    let state = rig.store.release("dev").expect("store").expect("state");
    assert_eq!(state.phase, Phase::Canary);
    assert_eq!(rig.canary_weights().last(), Some(&0), "parked on stable");
    let (result, lines) = rig.run(&commit, "rel-2026-11-30-02");
    assert_eq!(result.expect("resumed"), EnvOutcome::Complete);
    assert!(
        lines
            .0
            .iter()
            .any(|l| l.starts_with("resuming rel-2026-11-30-02")),
        "{:?}",
        lines.0
    );
    assert_eq!(
        rig.record(&commit, "rel-2026-11-30-02").outcome,
        ReleaseOutcome::Complete
    );
}

/// Dies where a kill -9 would find the release: at the first `mark` or
/// `step` whose name is `at`, unwinding out of the engine without a word
/// (the state on disk is whatever it last saved).
struct DieAt(&'static str);

impl Reporter for DieAt {
    fn step(&mut self, name: &str, _: &str) {
        if name == self.0 {
            std::panic::panic_any("killed");
        }
    }
    fn mark(&mut self, event: &str) {
        if event == self.0 {
            std::panic::panic_any("killed");
        }
    }
}

#[test]
fn killed_mid_canary_and_after_the_promotion_commit_it_resumes_and_promotes_once() {
    let mut rig = Rig::new();
    let (commit, id) = rig.healthy_next_pinned();
    let die = |rig: &mut Rig, at: &'static str| {
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            rig.run_with(&commit, id, &mut DieAt(at))
        }));
        assert!(died.is_err(), "the release went past {at}: {died:?}");
    };
    // 1. Killed after the first canary step, 10% of traffic on it.
    die(&mut rig, "canary_10");
    let state = rig.store.release("dev").expect("store").expect("state");
    assert_eq!((state.phase, state.release.as_str()), (Phase::Canary, id));
    assert!(
        rig.canary_weights().last() > Some(&0),
        "died with canary traffic"
    );
    // 2. Resumed, killed again after the promotion commit, before its
    // record says so.
    die(&mut rig, "promote_staging");
    let staging = rig.repo.resolve("env/staging").expect("staging");
    assert!(
        rig.repo.message(&staging).expect("message").contains(id),
        "the promotion commit landed"
    );
    // 3. Resumed: promoted once, nothing left on the canary.
    let (result, lines) = rig.run(&commit, id);
    assert!(
        matches!(result, Ok(EnvOutcome::Promoted { ref env, .. }) if env == "staging"),
        "{result:?}"
    );
    assert!(
        lines
            .0
            .iter()
            .any(|l| l == "promote_staging: already promoted"),
        "{:?}",
        lines.0
    );
    assert_eq!(rig.repo.resolve("env/staging").expect("head"), staging);
    assert_eq!(rig.canary_weights().last(), Some(&0));
    assert!(rig.target.running(&rig.workload(Track::Canary)).is_none());
    assert_eq!(
        rig.record(&commit, id).outcome,
        ReleaseOutcome::Promoted,
        "the record says what happened"
    );
}

/// Holds the release at step `at` until told to go on.
struct HoldAt {
    at: &'static str,
    held: std::sync::mpsc::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
}

impl Reporter for HoldAt {
    fn step(&mut self, name: &str, _: &str) {
        if name == self.at {
            let _ = self.held.send(());
            let _ = self.go.recv_timeout(Duration::from_secs(60));
        }
    }
}

#[test]
fn two_releasers_of_one_env_one_holds_it_the_other_is_told_and_one_promotion_lands() {
    let mut rig = Rig::new();
    let (commit, id) = rig.healthy_next_pinned();
    // The second releaser (another daemon): its own cache of the remote,
    // the same state dir, the same target, router, metrics and registry.
    let url = format!("file://{}", rig._dir.path().join("remote.git").display());
    let mut repo_b = Git2Repo::open_remote(&url, &rig._dir.path().join("cache-b"), None)
        .expect("open")
        .with_signer(rig.signer.clone());
    repo_b.fetch().expect("fetch");
    let store_b = Store::new(&rig._dir.path().join("state"));
    let (adapters_a, adapters_b) = (rig.adapters(), rig.adapters());
    let (held_tx, held) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel();
    let Rig {
        repo,
        signer,
        store,
        env,
        staging,
        trust,
        stop,
        abort,
        ..
    } = &mut rig;
    let (signer, store, stop, abort) = (&*signer, &*store, &*stop, &*abort);
    let release = &EnvRelease {
        env,
        next: Some(staging),
        commit: &commit,
        release: id,
        actor: "test",
        trust,
    };
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(move || {
            platform_capstone::wiring::run_env(
                repo,
                store,
                signer,
                &adapters_a,
                release,
                stop,
                abort,
                &mut HoldAt {
                    at: "canary_10",
                    held: held_tx,
                    go: go_rx,
                },
            )
        });
        held.recv_timeout(Duration::from_secs(60))
            .expect("the first releaser reached canary_10 within a minute");
        let b = platform_capstone::wiring::run_env(
            &mut repo_b,
            &store_b,
            signer,
            &adapters_b,
            release,
            stop,
            abort,
            &mut Lines::default(),
        );
        let _ = go.send(());
        (a.join().expect("the first releaser"), b)
    });
    let Err(EngineError::Busy(holder)) = &b else {
        panic!("the second releaser ran beside the first: {b:?}");
    };
    assert!(
        holder.contains(&std::process::id().to_string()),
        "names the holder: {holder}"
    );
    let Ok(EnvOutcome::Promoted {
        commit: Some(promotion),
        ..
    }) = a
    else {
        panic!("the first releaser: {a:?}");
    };
    // One promotion commit, seen from the second releaser's cache too.
    repo_b.fetch().expect("fetch");
    assert_eq!(repo_b.resolve("env/staging").expect("staging"), promotion);
    let log = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(rig._dir.path().join("remote.git"))
        .args(["log", "--format=%B", "env/staging"])
        .output()
        .expect("git log");
    let promotions = String::from_utf8_lossy(&log.stdout)
        .lines()
        .filter(|l| l.trim() == format!("Release-Id: {id}"))
        .count();
    assert_eq!(promotions, 1);
    assert_eq!(
        rig.canary_applies(),
        1,
        "one canary, by the releaser holding the env"
    );
}

impl Rig {
    /// The rig's fakes as a release's adapters (shared: what the rig
    /// sees is what they did).
    fn adapters(&self) -> platform_capstone::wiring::Adapters {
        platform_capstone::wiring::Adapters {
            target: Box::new(self.target.clone()),
            router: Box::new(self.router.clone()),
            metrics: Box::new(self.metrics.clone()),
            registry: Some(Box::new(self.registry.clone())),
            traffic: None,
            requests_query: REQUESTS.into(),
            scrape_settle: Duration::ZERO,
            attestation_key: self.attestation.clone().map(std::sync::Arc::new),
        }
    }

    fn drift_check(&mut self, act: bool) -> platform_capstone::drift::report::EnvReport {
        let adapters = self.adapters();
        platform_capstone::drift::run::check(
            &mut self.repo,
            &self.store,
            &self.signer,
            &adapters,
            &self.env,
            "test",
            act,
            &mut Lines::default(),
        )
        .expect("drift check")
    }
}

#[test]
fn a_hand_edit_of_the_live_state_is_reported_and_healed_back_to_the_last_good_release() {
    let mut rig = Rig::new();
    rig.env.drift.mode = platform_capstone::config::DriftMode::Heal;
    rig.env.drift.grace = Duration::ZERO;
    rig.with_stable();
    let stable = rig.workload(Track::Stable);
    let desired = rig.target.running(&stable).expect("stable").objects;
    assert!(
        rig.drift_check(false).drifted.is_empty(),
        "in sync after the release"
    );
    rig.target.edit_live(&stable, |objects| {
        for o in objects.iter_mut().filter(|o| o["kind"] == "Deployment") {
            o["spec"]["replicas"] = 7.into();
        }
    });
    // Reported, not touched, without `act`.
    let report = rig.drift_check(false);
    assert!(
        report.drifted.iter().any(|d| d.kind == "Deployment"),
        "{:?}",
        report.drifted
    );
    assert!(report.healed.is_empty());
    assert_ne!(rig.target.running(&stable).expect("live").objects, desired);
    // Healed with it: the last good release applied again, all traffic on it.
    let healed = rig.drift_check(true);
    assert!(!healed.healed.is_empty(), "{healed:?}");
    assert_eq!(rig.target.running(&stable).expect("live").objects, desired);
    assert_eq!(rig.canary_weights().last(), Some(&0));
    assert!(rig.drift_check(false).drifted.is_empty(), "in sync again");
}

#[test]
fn slo_burn_soon_after_a_release_hands_it_back_and_the_previous_good_release_runs_again() {
    let mut rig = Rig::new();
    rig.with_stable();
    rig.healthy("1.1.0");
    let (commit, result, _) = rig.release("1.1.0");
    assert_eq!(result.expect("1.1.0"), EnvOutcome::Complete);
    assert_eq!(rig.stable_release(), "rel-2026-11-30-02");
    assert!(
        rig.drift_check(true).handed_over.is_none(),
        "healthy: nothing to do"
    );
    // 1.1.0 starts failing a third of its requests, minutes after it baked.
    rig.metrics.value(&["5..", "version=\"1.1.0\""], 0.3);
    let report = rig.drift_check(true);
    let handed = report.handed_over.clone().unwrap_or_default();
    assert!(
        handed.starts_with(
            "rel-2026-11-30-02 rolled back to the previous good release and reverted in "
        ),
        "{report:?}"
    );
    assert_eq!(
        rig.stable_release(),
        "rel-2026-11-30-01",
        "1.0.0 runs again"
    );
    assert_eq!(rig.canary_weights().last(), Some(&0));
    let head = rig.head();
    assert_ne!(head, commit, "the release commit is reverted");
    assert!(
        rig.repo.message(&head).expect("message").contains("revert"),
        "{}",
        rig.repo.message(&head).unwrap_or_default()
    );
    let good = rig
        .store
        .last_good("dev")
        .expect("store")
        .expect("last good");
    assert_eq!(good.release, "rel-2026-11-30-01");
    // Without `act` the same burn is only reported.
    let mut quiet = Rig::new();
    quiet.with_stable();
    quiet.healthy("1.1.0");
    let (commit, _, _) = quiet.release("1.1.0");
    quiet.metrics.value(&["5..", "version=\"1.1.0\""], 0.3);
    let report = quiet.drift_check(false);
    assert!(
        report.handed_over.is_none() && !report.slo_drifted().is_empty(),
        "{report:?}"
    );
    assert_eq!(quiet.head(), commit);
}

#[test]
fn a_parked_canary_the_gates_refuse_on_resume_is_removed_before_the_release_fails() {
    let mut rig = Rig::new();
    let commit = rig.parked_mid_canary();
    let canary = rig.workload(Track::Canary);
    assert!(
        rig.target.running(&canary).is_some(),
        "parked with its canary"
    );
    // Meanwhile its digest is quarantined (another env reverted it).
    let parked = rig
        .store
        .release("dev")
        .expect("store")
        .expect("parked state");
    let digest = parked.record.images[0]
        .rsplit_once('@')
        .expect("pinned")
        .1
        .to_string();
    rig.store
        .add_quarantine(vec![platform_capstone::engine::store::Quarantined {
            digest,
            release: "rel-2026-11-30-02".into(),
            env: "staging".into(),
            reason: "reverted in staging".into(),
        }])
        .expect("quarantine");
    let (result, _) = rig.run(&commit, "rel-2026-11-30-02");
    assert!(
        matches!(&result, Ok(EnvOutcome::Failed { reason, revert: Some(_) }) if reason.contains("quarantined")),
        "{result:?}"
    );
    assert!(rig.target.running(&canary).is_none(), "the canary is gone");
    assert_eq!(rig.canary_weights().last(), Some(&0));
    assert_eq!(rig.stable_release(), "rel-2026-11-30-01");
    assert_ne!(rig.head(), commit, "reverted");
}

/// Turns 1.1.0's error ratio bad once the canary finished its last step:
/// the version goes bad while it bakes as the whole stable.
struct BadAfterCanary(ScriptedMetrics, Lines);

impl Reporter for BadAfterCanary {
    fn step(&mut self, name: &str, result: &str) {
        if name == "full_100" {
            self.0.value(&["5..", "version=\"1.1.0\""], 0.3);
        }
        self.1.step(name, result);
    }
}

#[test]
fn an_unhealthy_bake_restores_the_last_good_release_and_reverts() {
    let mut rig = Rig::new();
    rig.with_stable();
    rig.healthy("1.1.0");
    rig.env.rollout.bake = Duration::from_secs(5);
    let image = rig.publish("1.1.0");
    let commit = rig.pin(&image, "1.1.0", "rel-2026-11-30-02");
    let mut reporter = BadAfterCanary(rig.metrics.clone(), Lines::default());
    let result = rig.run_with(&commit, "rel-2026-11-30-02", &mut reporter);
    let Ok(EnvOutcome::Failed { reason, revert }) = result else {
        panic!("expected a bake failure, got {result:?}");
    };
    assert!(reason.starts_with("bake: "), "{reason}");
    assert!(reporter.1.0.contains(&"full_100: healthy".to_string()));
    // 1.0.0 runs again as stable with all traffic; the revert is pushed.
    let stable = rig
        .target
        .running(&rig.workload(Track::Stable))
        .expect("stable");
    assert_eq!(stable.release, "rel-2026-11-30-01");
    assert_eq!(rig.canary_weights().last(), Some(&0));
    assert_eq!(Some(rig.head()), revert);
    let good = rig.store.last_good("dev").expect("store").expect("good");
    assert_eq!(
        good.release, "rel-2026-11-30-01",
        "a failed bake is never last good"
    );
}

#[test]
fn a_baked_release_is_promoted_by_one_signed_commit_of_pins_with_trailers() {
    let mut rig = Rig::new();
    rig.next = true;
    rig.healthy("1.0.0");
    let (commit, result, _) = rig.release("1.0.0");
    let Ok(EnvOutcome::Promoted {
        env,
        commit: Some(promotion),
    }) = result
    else {
        panic!("expected a promotion, got {result:?}");
    };
    assert_eq!(env, "staging");
    assert_eq!(rig.repo.resolve("env/staging").expect("head"), promotion);
    let message = rig.repo.message(&promotion).expect("message");
    for trailer in [
        "Release-Id: rel-2026-11-30-01",
        "Source-Branch: env/dev",
        &format!("Source-Commit: {commit}"),
        "Gate-artifact-signature: pass",
        "Gate-vulnerability-policy: pass",
        "Gate-admission-policy: pass",
    ] {
        assert!(message.contains(trailer), "{trailer} missing:\n{message}");
    }
    // Only the pins changed, to the digest dev released.
    let record = rig.record(&commit, "rel-2026-11-30-01");
    assert_eq!(record.outcome, ReleaseOutcome::Promoted);
    assert_eq!(
        record.commits.promotion.as_deref(),
        Some(promotion.as_str())
    );
    let tree = rig.repo.reader(&promotion).expect("tree");
    let pins = tree
        .read_string("overlays/staging/kustomization.yaml")
        .expect("overlay");
    drop(tree);
    let digest = record.images[0].rsplit_once('@').expect("pinned").1;
    assert!(pins.contains(digest), "{pins}");
    // Running it again promotes nothing twice.
    let (again, _) = rig.run(&commit, "rel-2026-11-30-01");
    assert!(again.is_ok(), "{again:?}");
    assert_eq!(rig.repo.resolve("env/staging").expect("head"), promotion);
}

#[test]
fn a_promotion_is_attested_on_each_digest_and_the_next_env_can_require_it() {
    use platform_capstone::gates::{promotion, run, trust};
    let mut rig = Rig::new();
    rig.next = true;
    rig.attestation = Some(rig.cosign.clone());
    rig.healthy("1.0.0");
    let (commit, result, lines) = rig.release("1.0.0");
    assert!(
        matches!(result, Ok(EnvOutcome::Promoted { .. })),
        "{result:?}"
    );
    assert!(
        lines
            .0
            .iter()
            .any(|l| l.starts_with("attest_staging: 1 digest(s) attested")),
        "{:?}",
        lines.0
    );
    let record = rig.record(&commit, "rel-2026-11-30-01");
    let image = record.images[0].clone();
    let (repo, digest) = image.rsplit_once('@').expect("pinned");

    // What dev's trust policy (the release key) makes of it.
    let head = rig.repo.resolve("env/dev").expect("head");
    let tree = rig.repo.reader(&head).expect("tree");
    let trusted = trust::load(tree.as_ref()).expect("trust");
    let found = promotion::find(&rig.registry, repo, digest, "dev", &trusted)
        .expect("registry")
        .expect("a verified promotion out of dev");
    let p = &found.predicate;
    assert_eq!(p["verificationResult"], "PASSED");
    assert_eq!(p["policy"]["uri"], "platform-capstone:env/dev");
    assert_eq!(p["resourceUri"], image.as_str());
    assert_eq!(p["platformCapstone"]["releaseId"], "rel-2026-11-30-01");
    assert_eq!(p["platformCapstone"]["sourceCommit"], commit.as_str());
    assert_eq!(p["platformCapstone"]["promotedTo"], "staging");
    assert_eq!(p["platformCapstone"]["gates"]["artifact_signature"], "pass");

    // The next env's signature gate, requiring a promotion out of dev:
    // the promoted digest passes, a digest dev never promoted does not.
    let mut modes = rig.staging.gates.clone();
    modes.require_promotion_from = Some("dev".into());
    let now = chrono::Utc::now();
    let (v, _) = run::signatures(
        tree.as_ref(),
        std::slice::from_ref(&image),
        &modes,
        &rig.registry,
        now,
    );
    assert_eq!(v.outcome, platform_capstone::model::Outcome::Pass, "{v:?}");
    let fresh = rig.publish("2.0.0");
    let (v, _) = run::signatures(
        tree.as_ref(),
        std::slice::from_ref(&fresh),
        &modes,
        &rig.registry,
        now,
    );
    assert_eq!(v.outcome, platform_capstone::model::Outcome::Fail, "{v:?}");
    assert!(
        v.findings
            .iter()
            .any(|f| f.rule == "no-promotion-attestation"
                && f.message.contains("not promoted out of dev")),
        "{v:?}"
    );
    modes.require_promotion_from = Some("staging".into());
    let (v, _) = run::signatures(
        tree.as_ref(),
        std::slice::from_ref(&image),
        &modes,
        &rig.registry,
        now,
    );
    assert!(
        v.findings
            .iter()
            .any(|f| f.message.contains("out of dev, not staging")),
        "{v:?}"
    );
}

#[test]
fn a_closed_window_or_a_missing_approval_waits_and_an_approval_lets_it_through() {
    let mut rig = Rig::new();
    rig.next = true;
    rig.healthy("1.0.0");
    // Staging's window opens on January 1st only.
    rig.staging.promotion.windows = vec![platform_capstone::schedule::Window {
        kind: platform_capstone::schedule::WindowKind::Allow,
        schedule: platform_capstone::schedule::Schedule::parse("0 0 1 1 *", "UTC").expect("cron"),
        duration: Duration::from_secs(60),
    }];
    let staging_before = rig.repo.resolve("env/staging").expect("head");
    let (commit, result, _) = rig.release("1.0.0");
    let Ok(EnvOutcome::Waiting { env, reason }) = result else {
        panic!("expected to wait, got {result:?}");
    };
    assert_eq!(env, "staging");
    assert!(reason.contains("window"), "{reason}");
    assert_eq!(
        rig.repo.resolve("env/staging").expect("head"),
        staging_before
    );
    assert_eq!(
        rig.record(&commit, "rel-2026-11-30-01").outcome,
        ReleaseOutcome::Waiting
    );

    // Window open, approval required: still waiting, with the command to run.
    rig.staging.promotion.windows.clear();
    rig.staging.promotion.requires_approval = true;
    let dir = tempfile::tempdir().expect("tmp");
    let key = dir.path().join("alice");
    let public = platform_capstone::signing::generate_key(&key, "alice").expect("key");
    rig.trust.next_approvers = Some(platform_capstone::signing::AllowedSigners::of_key(
        "alice@example.com",
        &public,
    ));
    let (result, _) = rig.run(&commit, "rel-2026-11-30-01");
    let Ok(EnvOutcome::Waiting { reason, .. }) = result else {
        panic!("expected to wait for an approval, got {result:?}");
    };
    assert!(
        reason.contains("platform-capstone approve rel-2026-11-30-01 --env staging"),
        "{reason}"
    );
    // An approval by someone else does not count; alice's does.
    let mallory_key = dir.path().join("mallory");
    platform_capstone::signing::generate_key(&mallory_key, "mallory").expect("key");
    let as_signer = |path: &std::path::Path, who: &str| {
        Signer::load(
            path,
            Identity {
                name: who.into(),
                email: format!("{who}@example.com"),
            },
        )
        .expect("signer")
    };
    platform_capstone::engine::promote::approve(
        &mut rig.repo,
        &as_signer(&mallory_key, "mallory"),
        &commit,
        "rel-2026-11-30-01",
        "staging",
    )
    .expect("approve");
    let (result, _) = rig.run(&commit, "rel-2026-11-30-01");
    assert!(
        matches!(result, Ok(EnvOutcome::Waiting { .. })),
        "{result:?}"
    );
    platform_capstone::engine::promote::approve(
        &mut rig.repo,
        &as_signer(&key, "alice"),
        &commit,
        "rel-2026-11-30-01",
        "staging",
    )
    .expect("approve");
    let (result, _) = rig.run(&commit, "rel-2026-11-30-01");
    let Ok(EnvOutcome::Promoted {
        commit: Some(promotion),
        ..
    }) = result
    else {
        panic!("expected a promotion, got {result:?}");
    };
    let message = rig.repo.message(&promotion).expect("message");
    assert!(
        message.contains("Approved-By: alice@example.com"),
        "{message}"
    );
}

#[test]
fn a_quarantined_digest_never_runs_again() {
    let mut rig = Rig::new();
    rig.with_stable();
    rig.healthy("1.1.0");
    rig.metrics.value(&["5..", "version=\"1.1.0\""], 0.4);
    let (_, result, _) = rig.release("1.1.0");
    assert!(
        matches!(result, Ok(EnvOutcome::Failed { .. })),
        "{result:?}"
    );
    let applies = rig.canary_applies();
    // The same digest pinned again (a re-push of the bad build): refused
    // at the gates, nothing applied.
    let image = format!(
        "{IMAGE_REPO}@{}",
        rig.store.quarantine().expect("quarantine")[0].digest
    );
    let commit = rig.pin(&image, "1.1.0", "rel-2026-11-30-03");
    let (result, _) = rig.run(&commit, "rel-2026-11-30-03");
    let Ok(EnvOutcome::Failed { reason, .. }) = result else {
        panic!("expected a refusal, got {result:?}");
    };
    assert!(reason.contains("quarantine"), "{reason}");
    assert_eq!(rig.canary_applies(), applies, "nothing more ran");
}

// Drills over the fakes: each drill's decisions and checks, in
// milliseconds. The drills' real runs (tests/it/drill.rs, the quickstart)
// prove the local lab; the crash drill's decision is
// `killed_mid_canary_and_after_the_promotion_commit_it_resumes_and_promotes_once`.

/// The drills' lab over the fakes: images go to the in-memory registry,
/// their faults become their version's scripted metrics, live edits go
/// through `MemTarget::edit_live`, git goes away by renaming the bare
/// remote, the metrics provider by answering errors; time passes at once.
struct FakeLab {
    registry: MemRegistry,
    target: MemTarget,
    metrics: ScriptedMetrics,
    remote: std::path::PathBuf,
    away: bool,
    /// Set: the fault `publish` ships is not seen by the metrics (a fault
    /// the health gate cannot catch).
    hide_faults: bool,
    paused: Duration,
}

impl FakeLab {
    fn of(rig: &Rig) -> FakeLab {
        // A provider that scrapes something (the metrics-outage drill waits for it).
        rig.metrics.value(&["sum(up)"], 1.0);
        FakeLab {
            registry: rig.registry.clone(),
            target: rig.target.clone(),
            metrics: rig.metrics.clone(),
            remote: rig._dir.path().join("remote.git"),
            away: false,
            hide_faults: false,
            paused: Duration::ZERO,
        }
    }
}

impl Lab for FakeLab {
    fn publish(
        &mut self,
        _env: &Env,
        tag: &str,
        vars: &[(String, String)],
        key: &p256::ecdsa::SigningKey,
        _say: &mut dyn FnMut(&str),
    ) -> Result<String, DrillError> {
        let var = |name: &str| -> f64 {
            vars.iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse().ok())
                .filter(|_| !self.hide_faults)
                .unwrap_or(0.0)
        };
        measures(
            &self.metrics,
            tag,
            var("FAULT_ERROR_RATIO"),
            0.02 + var("FAULT_LATENCY_MS") / 1000.0,
        );
        Ok(publish(&self.registry, tag, key))
    }

    fn edit_live(&mut self, env: &Env) -> Result<(), DrillError> {
        let stable = Workload {
            namespace: env.target.namespace.clone(),
            app: env.target.app.clone(),
            track: Track::Stable,
        };
        let (name, value) = LIVE_EDIT;
        self.target.edit_live(&stable, |objects| {
            for o in objects.iter_mut().filter(|o| o["kind"] == "Deployment") {
                let containers = &mut o["spec"]["template"]["spec"]["containers"];
                for c in containers.as_sequence_mut().into_iter().flatten() {
                    let var: yaml_serde::Value =
                        yaml_serde::from_str(&format!("{{name: {name}, value: \"{value}\"}}"))
                            .expect("yaml");
                    match c["env"].as_sequence_mut() {
                        Some(list) => list.push(var),
                        None => c["env"] = yaml_serde::Value::Sequence(vec![var]),
                    }
                }
            }
        });
        Ok(())
    }

    fn take_git_away(&mut self, _say: &mut dyn FnMut(&str)) -> Result<(), DrillError> {
        lab::rename(&self.remote, &self.remote.with_extension("away"))?;
        self.away = true;
        Ok(())
    }

    fn bring_git_back(&mut self) -> Result<(), DrillError> {
        if std::mem::take(&mut self.away) {
            lab::rename(&self.remote.with_extension("away"), &self.remote)?;
        }
        Ok(())
    }

    fn arm_metrics_outage(&mut self, _env: &Env) -> Result<(), DrillError> {
        Ok(())
    }

    fn stop_metrics(&mut self) {
        self.metrics.set_down(Some("connection refused"));
    }

    fn start_metrics(&mut self) -> Result<(), DrillError> {
        self.metrics.set_down(None);
        Ok(())
    }

    fn traffic(&mut self, _url: &str, _rate: u32, window: Duration) {
        self.paused += window;
    }

    fn pause(&mut self, d: Duration) {
        self.paused += d;
    }

    fn give_back(&mut self) -> Result<(), DrillError> {
        self.metrics.set_down(None);
        self.bring_git_back()
    }

    fn cli(
        &mut self,
        _args: &[&str],
        _crash_at: Option<&str>,
    ) -> Result<std::process::Output, DrillError> {
        Err(DrillError::Precondition(
            "the crash drill runs this program in child processes; the fake lab has none".into(),
        ))
    }
}

impl Rig {
    /// `scenario` drilled on dev with `lab`.
    fn drill(&mut self, lab: &mut FakeLab, scenario: Scenario) -> DrillRun {
        self.drill_as(lab, scenario, None)
    }

    /// `drill`, with `operator` pinned for dev and signing the drill's
    /// rollbacks by command.
    fn drill_as(
        &mut self,
        lab: &mut FakeLab,
        scenario: Scenario,
        operator: Option<&Operator>,
    ) -> DrillRun {
        let key = self.cosign.clone();
        let state = self._dir.path().join("state");
        let plan = Plan {
            key: Some(&key),
            fault_error_ratio: 0.3,
            fault_latency_ms: 300,
            outage_watch: Duration::from_secs(5),
            state_dir: &state,
            operator: operator.map(|o| &o.signer),
        };
        let adapters = self.adapters();
        let mut g = Ground::new(
            &mut self.repo,
            &self.signer,
            &self.store,
            self.env.clone(),
            adapters,
        )
        .expect("a quiet env with a good release");
        g.operators = operator.map(|o| (o.pinned.clone(), "operators".to_string()));
        let mut said = Vec::new();
        let run = run_in(&mut g, lab, &plan, scenario, &mut |l| {
            said.push(l.to_string())
        });
        assert!(
            run.restored,
            "{} left the env changed: {run:?}\n{}",
            scenario.name(),
            said.join("\n")
        );
        run
    }
}

fn failed_checks(run: &DrillRun) -> Vec<String> {
    run.checks
        .iter()
        .filter(|c| !c.ok)
        .map(|c| format!("{}: {}", c.what, c.detail))
        .collect()
}

#[test]
fn rollback_drill_the_fault_is_caught_reverted_and_the_env_returns() {
    let mut rig = Rig::new();
    rig.with_stable();
    let mut lab = FakeLab::of(&rig);
    let run = rig.drill(&mut lab, Scenario::Rollback);
    assert!(run.success(), "{:?} {:?}", failed_checks(&run), run.error);
    assert!(
        run.phases.iter().any(|(p, _)| p == "detect"),
        "{:?}",
        run.phases
    );
    // The faulty version ran as the canary, and the stable release runs again.
    assert!(rig.canary_applies() >= 1);
    assert_eq!(rig.stable_release(), "rel-2026-11-30-01");
    // The post check watched the stable version over its window.
    assert!(lab.paused >= Duration::from_secs(10), "{:?}", lab.paused);
}

#[test]
fn rollback_drill_fails_when_the_health_gate_lets_the_fault_through() {
    let mut rig = Rig::new();
    rig.with_stable();
    let mut lab = FakeLab::of(&rig);
    lab.hide_faults = true;
    let run = rig.drill(&mut lab, Scenario::Rollback);
    assert!(!run.success());
    assert_eq!(
        failed_checks(&run)
            .iter()
            .filter(|c| c.starts_with("fault caught by the health gate")
                || c.starts_with("live healthy on the last good release"))
            .count(),
        2,
        "{:?}",
        failed_checks(&run)
    );
    // The drill put the env back all the same.
    assert_eq!(rig.stable_release(), "rel-2026-11-30-01");
}

#[test]
fn bad_signature_drill_the_gate_stops_a_strangers_image_before_the_target() {
    let mut rig = Rig::new();
    rig.with_stable();
    let mut lab = FakeLab::of(&rig);
    let applies = rig.target.calls().len();
    let run = rig.drill(&mut lab, Scenario::BadSignature);
    assert!(run.success(), "{:?} {:?}", failed_checks(&run), run.error);
    assert!(
        !rig.target.calls()[applies..]
            .iter()
            .any(|c| c.starts_with("apply")),
        "{:?}",
        &rig.target.calls()[applies..]
    );
}

#[test]
fn config_drift_drill_the_live_edit_is_found_with_its_diff_and_healed() {
    let mut rig = Rig::new();
    rig.env.drift.mode = platform_capstone::config::DriftMode::Heal;
    rig.env.drift.grace = Duration::ZERO;
    rig.with_stable();
    let desired = rig
        .target
        .running(&rig.workload(Track::Stable))
        .expect("stable")
        .objects;
    let mut lab = FakeLab::of(&rig);
    let run = rig.drill(&mut lab, Scenario::ConfigDrift);
    assert!(run.success(), "{:?} {:?}", failed_checks(&run), run.error);
    assert!(run.checks.iter().any(|c| c.what == "healed (heal mode)"));
    assert_eq!(
        rig.target
            .running(&rig.workload(Track::Stable))
            .expect("live")
            .objects,
        desired
    );
}

#[test]
fn git_outage_drill_the_outage_pauses_nothing_changes_and_fetching_resumes() {
    let mut rig = Rig::new();
    rig.with_stable();
    let calls = rig.target.calls().len();
    let mut lab = FakeLab::of(&rig);
    let run = rig.drill(&mut lab, Scenario::GitOutage);
    assert!(run.success(), "{:?} {:?}", failed_checks(&run), run.error);
    assert!(
        rig.target.calls()[calls..]
            .iter()
            .all(|c| !c.starts_with("apply"))
    );
    assert!(lab.remote.exists(), "the remote is back");
}

#[test]
fn metrics_outage_drill_analysis_goes_inconclusive_nothing_reverts_or_promotes() {
    let mut rig = Rig::new();
    rig.with_stable();
    let head = rig.head();
    let mut lab = FakeLab::of(&rig);
    let run = rig.drill(&mut lab, Scenario::MetricsOutage);
    assert!(run.success(), "{:?} {:?}", failed_checks(&run), run.error);
    assert!(
        run.phases.iter().any(|(p, _)| p == "outage_to_stop"),
        "{:?}",
        run.phases
    );
    // The drill's pin commit is reverted by the drill's restore, never by
    // the engine (no `Reverts:` from a failure).
    assert_ne!(rig.head(), head);
    assert_eq!(rig.stable_release(), "rel-2026-11-30-01");
}

#[test]
fn a_drill_that_cannot_run_here_says_why_and_leaves_the_env_as_it_was() {
    let mut rig = Rig::new();
    rig.with_stable();
    let head = rig.head();
    let mut lab = FakeLab::of(&rig);
    let run = rig.drill(&mut lab, Scenario::CrashMidRollout);
    assert!(!run.success());
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains("child processes")),
        "{:?}",
        run.error
    );
    // Its image was pinned before the lab refused: the pin is reverted.
    assert_eq!(rig.stable_release(), "rel-2026-11-30-01");
    assert!(
        rig.head() == head
            || rig
                .repo
                .message(&rig.head())
                .expect("msg")
                .contains("drill: return dev")
    );
}

// Manual rollback over the fakes (the driver: engine::rollback).

/// An operator: their signer, and the operators file pinning them.
struct Operator {
    _dir: tempfile::TempDir,
    signer: Signer,
    pinned: platform_capstone::signing::AllowedSigners,
}

fn operator(who: &str) -> Operator {
    let dir = tempfile::tempdir().expect("tmp");
    let key = dir.path().join(who);
    let public = platform_capstone::signing::generate_key(&key, who).expect("key");
    let signer = Signer::load(
        &key,
        Identity {
            name: who.into(),
            email: who.into(),
        },
    )
    .expect("signer");
    Operator {
        _dir: dir,
        signer,
        pinned: platform_capstone::signing::AllowedSigners::of_key(who, &public),
    }
}

impl Operator {
    fn request(&self, env: &str, to: To, reason: &str) -> Request {
        let principal = self.signer.identity().email.clone();
        let mut r = Request {
            env: env.into(),
            to,
            reason: reason.into(),
            at: chrono::Utc::now(),
            principal,
            signature: String::new(),
        };
        r.signature = self
            .signer
            .sign(platform_capstone::rollback::NAMESPACE, &r.payload())
            .expect("sign");
        r
    }
}

impl Rig {
    /// `request` carried out in dev with `pinned` as dev's operators.
    fn rollback(
        &mut self,
        request: &Request,
        pinned: &platform_capstone::signing::AllowedSigners,
    ) -> Result<Done, RollbackError> {
        let env = self.env.clone();
        self.with_engine(|e| {
            platform_capstone::engine::rollback::rollback(
                e,
                &env,
                request,
                Some((pinned, "operators")),
                Duration::from_secs(2),
            )
        })
    }

    /// 1.0.0 then 1.1.0 released and complete in dev: 1.1.0's image.
    fn two_releases(&mut self) -> String {
        self.with_stable();
        self.healthy("1.1.0");
        let (_, result, _) = self.release("1.1.0");
        assert_eq!(result.expect("1.1.0"), EnvOutcome::Complete);
        self.publish("1.1.0")
    }

    fn commits_on_dev(&self) -> usize {
        let mut n = 0;
        let mut c = Some(self.head());
        while let Some(id) = c {
            n += 1;
            c = self
                .repo
                .repository()
                .find_commit(id.parse().expect("oid"))
                .ok()
                .and_then(|c| c.parent_id(0).ok())
                .map(|p| p.to_string());
        }
        n
    }
}

#[test]
fn rollback_after_a_full_release_runs_the_previous_one_commits_quarantines_and_records() {
    let mut rig = Rig::new();
    let bad = rig.two_releases();
    let alice = operator("alice");
    let splits = rig.router.history().len();
    let done = rig
        .rollback(
            &alice.request("dev", To::Previous, "errors up after 1.1.0"),
            &alice.pinned,
        )
        .expect("rollback");
    assert_eq!(
        (done.from.as_str(), done.to.as_str()),
        ("rel-2026-11-30-02", "rel-2026-11-30-01")
    );
    // Live at once: 1.0.0 is stable with all traffic, no canary step on the way.
    assert_eq!(rig.stable_release(), "rel-2026-11-30-01");
    assert!(
        rig.router.history()[splits..]
            .iter()
            .all(|s| s.canary_percent == 0)
    );
    // The commit restores 1.0.0's pins, signed, with the trailers.
    let Landed::Pushed { commit } = &done.commit else {
        panic!("{:?}", done.commit);
    };
    assert_eq!(&rig.head(), commit);
    let message = rig.repo.message(commit).expect("message");
    for t in [
        "Release-Id: rel-2026-11-30-01",
        "Rollback-Of: rel-2026-11-30-02",
        "Actor: alice (operator)",
        "Reason: errors up after 1.1.0",
    ] {
        assert!(message.lines().any(|l| l == t), "{t} in {message}");
    }
    let good = rig.store.last_good("dev").expect("store").expect("good");
    assert_eq!(good.release, "rel-2026-11-30-01");
    let tree = rig.repo.reader(commit).expect("tree");
    let images = platform_capstone::render::images(
        &platform_capstone::render::render(tree.as_ref(), &rig.env.overlay).expect("render"),
    );
    assert_eq!(
        images, good.images,
        "the head pins what runs: nothing to re-release"
    );
    drop(tree);
    // 1.1.0 is quarantined, and its record says who and why.
    let digest = bad.rsplit('@').next().expect("digest");
    assert!(
        rig.store
            .quarantine()
            .expect("q")
            .iter()
            .any(|q| q.digest == digest && q.env == "dev"),
    );
    let records = platform_capstone::audit::all_records(&rig.repo.notes().expect("notes"));
    let rec = records
        .iter()
        .find(|r| r.release == "rel-2026-11-30-02" && r.env == "dev")
        .expect("record");
    assert_eq!(rec.outcome, ReleaseOutcome::RolledBack);
    let rb = rec.rollback.as_ref().expect("rollback record");
    assert_eq!(
        (rb.by.as_str(), rb.reason.as_str()),
        ("alice", "errors up after 1.1.0")
    );
    assert_eq!(rec.commits.rollback.as_deref(), Some(commit.as_str()));
    assert!(rig.store.rollback_pending("dev").expect("store").is_none());
    // The same signed request again: refused, nothing changes.
    let again = alice.request("dev", To::Previous, "errors up after 1.1.0");
    let head = rig.head();
    let mut replay = again.clone();
    replay.signature = again.signature.clone();
    rig.store.add_rollback_used(&again.id()).expect("used");
    let e = rig.rollback(&replay, &alice.pinned).expect_err("replayed");
    assert!(
        matches!(e, RollbackError::Request(RequestError::Replayed)),
        "{e}"
    );
    assert_eq!(rig.head(), head);
}

#[test]
fn rollback_mid_canary_takes_traffic_off_the_canary_first_and_keeps_stable() {
    let mut rig = Rig::new();
    let _ = rig.parked_mid_canary();
    assert!(rig.target.running(&rig.workload(Track::Canary)).is_some());
    let stable_applies = rig
        .target
        .calls()
        .iter()
        .filter(|c| c.starts_with("apply") && c.contains("stable"))
        .count();
    let alice = operator("alice");
    let done = rig
        .rollback(
            &alice.request("dev", To::Previous, "canary looks wrong"),
            &alice.pinned,
        )
        .expect("rollback");
    assert_eq!(done.from, "rel-2026-11-30-02");
    assert_eq!(done.to, "rel-2026-11-30-01");
    assert!(
        rig.target.running(&rig.workload(Track::Canary)).is_none(),
        "canary gone"
    );
    assert_eq!(rig.canary_weights().last(), Some(&0));
    // Stable already ran 1.0.0: not applied again.
    assert_eq!(
        rig.target
            .calls()
            .iter()
            .filter(|c| c.starts_with("apply") && c.contains("stable"))
            .count(),
        stable_applies
    );
    let state = rig.store.release("dev").expect("store").expect("state");
    assert_eq!(state.phase, Phase::Finished);
    assert_eq!(state.record.outcome, ReleaseOutcome::RolledBack);
    // The release is never resumed: the engine finds it finished.
    assert!(
        matches!(done.commit, Landed::Pushed { .. }),
        "{:?}",
        done.commit
    );
}

#[test]
fn rollback_with_git_down_is_live_at_once_holds_the_env_and_commits_once_when_git_is_back() {
    let mut rig = Rig::new();
    rig.two_releases();
    let before = rig.commits_on_dev();
    let remote = rig._dir.path().join("remote.git");
    let away = rig._dir.path().join("remote.away");
    std::fs::rename(&remote, &away).expect("git down");
    let alice = operator("alice");
    let done = rig
        .rollback(&alice.request("dev", To::Previous, "outage"), &alice.pinned)
        .expect("rollback");
    assert!(
        matches!(done.commit, Landed::Queued { .. }),
        "{:?}",
        done.commit
    );
    assert_eq!(rig.stable_release(), "rel-2026-11-30-01", "live at once");
    let pending = rig
        .store
        .rollback_pending("dev")
        .expect("store")
        .expect("held");
    assert!(pending.settled);
    // Held: nothing is released in dev meanwhile, whatever the head says.
    let head = rig.head();
    let (held, _) = rig.run(&head, "rel-2026-11-30-09");
    assert!(matches!(held, Err(EngineError::Held(_))), "{held:?}");
    // Git back: one commit, and the hold ends.
    std::fs::rename(&away, &remote).expect("git back");
    let env = rig.env.clone();
    let landed =
        platform_capstone::engine::rollback::flush(&mut rig.repo, &rig.store, &env).expect("flush");
    assert!(matches!(landed, Some(Landed::Pushed { .. })), "{landed:?}");
    assert_eq!(rig.commits_on_dev(), before + 1);
    assert!(rig.store.rollback_pending("dev").expect("store").is_none());
    let again =
        platform_capstone::engine::rollback::flush(&mut rig.repo, &rig.store, &env).expect("flush");
    assert_eq!(again, None, "nothing left to push");
    assert_eq!(rig.commits_on_dev(), before + 1, "exactly one commit");
}

#[test]
fn a_branch_moved_while_git_was_down_is_a_reported_conflict_and_nothing_is_forced() {
    let mut rig = Rig::new();
    rig.two_releases();
    let remote = rig._dir.path().join("remote.git");
    let away = rig._dir.path().join("remote.away");
    std::fs::rename(&remote, &away).expect("git down");
    let alice = operator("alice");
    let done = rig
        .rollback(&alice.request("dev", To::Previous, "outage"), &alice.pinned)
        .expect("rollback");
    assert!(matches!(done.commit, Landed::Queued { .. }));
    std::fs::rename(&away, &remote).expect("git back");
    // Someone else pushes to env/dev in between (another clone).
    let mut other = Git2Repo::open_remote(
        &format!("file://{}", remote.display()),
        &rig._dir.path().join("other"),
        None,
    )
    .expect("open")
    .with_signer(rig.signer.clone());
    other.fetch().expect("fetch");
    other
        .commit_change("env/dev", "someone else", &mut |_: &dyn TreeReader| {
            Ok(Some(vec![FileChange {
                path: "NOTES.md".into(),
                content: Some(b"hand edit\n".to_vec()),
            }]))
        })
        .expect("push");
    let theirs = other.resolve("env/dev").expect("head");
    let env = rig.env.clone();
    let landed =
        platform_capstone::engine::rollback::flush(&mut rig.repo, &rig.store, &env).expect("flush");
    assert_eq!(
        landed,
        Some(Landed::Conflict {
            head: theirs.clone()
        })
    );
    // Nothing forced: the remote keeps their commit; dev stays held.
    other.fetch().expect("fetch");
    assert_eq!(other.resolve("env/dev").expect("head"), theirs);
    let p = rig
        .store
        .rollback_pending("dev")
        .expect("store")
        .expect("held");
    assert!(p.summary().contains("NOT pushed"), "{}", p.summary());
}

#[test]
fn a_rollback_signed_by_a_stranger_or_unsigned_is_refused_and_changes_nothing() {
    let mut rig = Rig::new();
    rig.two_releases();
    let alice = operator("alice");
    let mallory = operator("alice-lookalike");
    let calls = rig.target.calls().len();
    let head = rig.head();
    let mut forged = mallory.request("dev", To::Previous, "trust me");
    forged.principal = "alice".into();
    let e = rig.rollback(&forged, &alice.pinned).expect_err("stranger");
    assert!(
        matches!(
            e,
            RollbackError::Request(RequestError::UnknownSigner { .. })
        ),
        "{e}"
    );
    let mut unsigned = alice.request("dev", To::Previous, "no signature");
    unsigned.signature.clear();
    let e = rig
        .rollback(&unsigned, &alice.pinned)
        .expect_err("unsigned");
    assert!(
        matches!(e, RollbackError::Request(RequestError::Unsigned)),
        "{e}"
    );
    assert_eq!(
        rig.target.calls().len(),
        calls,
        "the target was not touched"
    );
    assert_eq!(rig.head(), head);
    assert_eq!(rig.stable_release(), "rel-2026-11-30-02");
    assert!(rig.store.rollback_pending("dev").expect("store").is_none());
    assert!(rig.store.quarantine().expect("q").is_empty());
}

#[test]
fn windows_and_approvals_never_delay_a_rollback_and_a_held_env_takes_no_promotion() {
    let mut rig = Rig::new();
    // dev's own promotions would need a window that never opens and an
    // approval, and a freeze (hourly for 2h: always on) holds them too.
    use platform_capstone::schedule::{Schedule, Window, WindowKind};
    rig.env.promotion.windows = vec![
        Window {
            kind: WindowKind::Allow,
            schedule: Schedule::parse("0 0 1 1 *", "UTC").expect("cron"),
            duration: Duration::from_secs(60),
        },
        Window {
            kind: WindowKind::Deny,
            schedule: Schedule::parse("@hourly", "Europe/Berlin").expect("cron"),
            duration: Duration::from_secs(7200),
        },
    ];
    rig.env.promotion.requires_approval = true;
    rig.two_releases();
    let alice = operator("alice");
    let done = rig
        .rollback(&alice.request("dev", To::Previous, "now"), &alice.pinned)
        .expect("rollback");
    assert!(matches!(done.commit, Landed::Pushed { .. }));
    assert_eq!(rig.stable_release(), "rel-2026-11-30-01");

    // A held staging takes no promotion from dev until the hold ends.
    rig.env.promotion.windows.clear();
    rig.env.promotion.requires_approval = false;
    rig.next = true;
    let hold = platform_capstone::rollback::Pending {
        request: alice.request("staging", To::Previous, "staging is on fire"),
        plan: platform_capstone::rollback::Plan {
            from: "rel-2026-11-29-01".into(),
            from_images: Vec::new(),
            to: platform_capstone::model::LastGood {
                release: "rel-2026-11-28-01".into(),
                commit: "0".repeat(40),
                images: Vec::new(),
                version: "0.9.0".into(),
                baseline: Default::default(),
                since: None,
                previous: None,
            },
        },
        base: "0".repeat(40),
        state: platform_capstone::rollback::CommitState::Queued,
        at: chrono::Utc::now(),
        settled: true,
    };
    rig.store.save_rollback_pending(&hold).expect("hold");
    let staging_head = rig.repo.resolve("env/staging").expect("head");
    rig.healthy("1.2.0");
    let (_, result, _) = rig.release("1.2.0");
    let Ok(EnvOutcome::Waiting { env, reason }) = result else {
        panic!("expected to wait, got {result:?}");
    };
    assert_eq!(env, "staging");
    assert!(reason.contains("held by a manual rollback"), "{reason}");
    assert_eq!(rig.repo.resolve("env/staging").expect("head"), staging_head);
}

#[test]
fn manual_rollback_drill_a_wrong_healthy_release_is_rolled_back_by_command() {
    let mut rig = Rig::new();
    rig.with_stable();
    let mut lab = FakeLab::of(&rig);
    let alice = operator("alice");
    let run = rig.drill_as(&mut lab, Scenario::ManualRollback, Some(&alice));
    assert!(run.success(), "{:?} {:?}", failed_checks(&run), run.error);
    for phase in ["to_stable", "to_commit"] {
        assert!(
            run.phases.iter().any(|(p, _)| p == phase),
            "{:?}",
            run.phases
        );
    }
    assert_eq!(rig.stable_release(), "rel-2026-11-30-01");
    // Without an operator's key it says so, and leaves the env as it was.
    let run = rig.drill(&mut lab, Scenario::ManualRollback);
    assert!(!run.success());
    assert!(
        run.error
            .as_deref()
            .is_some_and(|e| e.contains("--operator-key")),
        "{:?}",
        run.error
    );
}

#[test]
fn git_outage_drill_with_an_operator_rolls_back_during_the_outage_and_commits_after() {
    let mut rig = Rig::new();
    rig.with_stable();
    let mut lab = FakeLab::of(&rig);
    let alice = operator("alice");
    let run = rig.drill_as(&mut lab, Scenario::GitOutage, Some(&alice));
    assert!(run.success(), "{:?} {:?}", failed_checks(&run), run.error);
    assert!(
        run.checks
            .iter()
            .any(|c| c.what == "its commit queued while git is away, the env held"),
        "{:?}",
        run.checks
    );
    assert!(rig.store.rollback_pending("dev").expect("store").is_none());
    assert_eq!(rig.stable_release(), "rel-2026-11-30-01");
}

#[test]
fn a_rollback_target_whose_digests_no_longer_verify_is_refused_before_anything_changes() {
    let mut rig = Rig::new();
    rig.two_releases();
    // A commit of env/dev pinning an image nobody signed.
    let config = serde_json::json!({"config": {"Labels": {}}});
    let digest = rig
        .registry
        .push_image(
            &format!("{IMAGE_REPO}:9.9.9"),
            serde_json::to_vec(&config).expect("json"),
            vec![b"unsigned".to_vec()],
        )
        .expect("push");
    let unsigned = rig.pin(
        &format!("{IMAGE_REPO}@{digest}"),
        "9.9.9",
        "rel-2026-11-30-09",
    );
    let calls = rig.target.calls().len();
    let alice = operator("alice");
    let e = rig
        .rollback(
            &alice.request("dev", To::Commit(unsigned), "back to that commit"),
            &alice.pinned,
        )
        .expect_err("unsigned target");
    assert!(matches!(e, RollbackError::Signature { .. }), "{e}");
    assert_eq!(rig.target.calls().len(), calls, "nothing applied");
    assert_eq!(rig.stable_release(), "rel-2026-11-30-02");
    assert!(rig.store.rollback_pending("dev").expect("store").is_none());
}

#[test]
fn a_waiting_release_rolled_back_in_the_next_env_is_stopped_and_its_env_handed_back() {
    let mut rig = Rig::new();
    rig.with_stable();
    rig.next = true;
    // 1.1.0 is live in dev and waits for staging's window...
    rig.staging.promotion.windows = vec![platform_capstone::schedule::Window {
        kind: platform_capstone::schedule::WindowKind::Allow,
        schedule: platform_capstone::schedule::Schedule::parse("0 0 1 1 *", "UTC").expect("cron"),
        duration: Duration::from_secs(60),
    }];
    rig.healthy("1.1.0");
    let image = rig.publish("1.1.0");
    let (commit, result, _) = rig.release("1.1.0");
    assert!(
        matches!(result, Ok(EnvOutcome::Waiting { .. })),
        "{result:?}"
    );
    // ...meanwhile an operator rolled 1.1.0 back in staging.
    rig.store
        .add_quarantine(vec![platform_capstone::engine::store::Quarantined {
            digest: image.rsplit('@').next().expect("digest").to_string(),
            release: "rel-2026-11-30-02".into(),
            env: "staging".into(),
            reason: "rolled back by alice: wrong config".into(),
        }])
        .expect("quarantine");
    rig.staging.promotion.windows.clear();
    let staging = rig.repo.resolve("env/staging").expect("head");
    // Resumed, its gates refuse it (quarantine counts everywhere): stopped
    // and reverted in dev, never promoted.
    let (result, _) = rig.run(&commit, "rel-2026-11-30-02");
    let Ok(EnvOutcome::Failed { reason, .. }) = result else {
        panic!("expected it stopped, got {result:?}");
    };
    assert!(reason.contains("rolled back by alice"), "{reason}");
    assert_eq!(rig.repo.resolve("env/staging").expect("head"), staging);
    // The env is handed back: the release before runs and is good again.
    assert_eq!(rig.stable_release(), "rel-2026-11-30-01");
    let good = rig.store.last_good("dev").expect("store").expect("good");
    assert_eq!(good.release, "rel-2026-11-30-01");
}
