//! Wiring: from a daemon config to a signed repo handle, from the remote
//! to every env (each as defined at the head of its own branch), and from
//! an env's target to its adapters. Shared by `release` and the daemon so
//! both run the engine on exactly the same setup.

use crate::adapters::haproxy::Haproxy;
use crate::adapters::kubernetes::{Kube, KubeRouter};
use crate::adapters::podman::Podman;
use crate::adapters::prometheus::Prometheus;
use crate::config::{DaemonConfig, Env, TargetKind};
use crate::local::Stack;
use crate::ports::{Metrics, Target, TrafficRouter};
use crate::signing::Signer;
use crate::source::{Git2Repo, GitRepo};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WiringError(pub String);

fn err(e: impl std::fmt::Display) -> WiringError {
    WiringError(e.to_string())
}

/// The daemon's signer and a repo handle on `cache_dir` (fetched).
pub fn open(
    cfg: &DaemonConfig,
    config_file: &Path,
    cache_dir: &Path,
) -> Result<(Git2Repo, Signer), WiringError> {
    let key = cfg.signing_key.clone().ok_or_else(|| {
        WiringError(format!(
            "{}: signing_key: required to commit releases; set it to the daemon's SSH key",
            config_file.display()
        ))
    })?;
    let signer = Signer::load(&key, cfg.identity.clone())
        .map_err(|e| WiringError(format!("{}: {e}", key.display())))?;
    let mut repo = Git2Repo::open_remote(&cfg.remote, cache_dir, cfg.ssh_key.as_deref())
        .map_err(err)?
        .with_max_file_size(cfg.max_file_size)
        .with_signer(signer.clone());
    repo.fetch().map_err(err)?;
    Ok((repo, signer))
}

/// Every env, each as defined at the head of its own branch, in chain order.
pub fn envs(repo: &dyn GitRepo) -> Result<Vec<Env>, WiringError> {
    let heads = repo.heads().map_err(err)?;
    let Some((_, any_head)) = heads.iter().next() else {
        return Err(WiringError(
            "the remote has no env/* branch: run `platform-capstone init --remote`".into(),
        ));
    };
    let tree = repo.reader(any_head).map_err(err)?;
    let overview = crate::config::load_repo(tree.as_ref());
    let mut out = Vec::new();
    for chain in overview.chains() {
        for name in chain {
            let Some(e) = overview.env(&name) else {
                continue;
            };
            let head = repo.resolve(&e.branch).map_err(err)?;
            let t = repo.reader(&head).map_err(err)?;
            let own = crate::config::load_repo(t.as_ref());
            if let Some(p) = own.problems.first() {
                return Err(WiringError(format!(
                    "{} at {}: {p}",
                    e.branch,
                    &head[..12.min(head.len())]
                )));
            }
            match own.env(&name) {
                Some(env) => out.push(env.clone()),
                None => {
                    return Err(WiringError(format!(
                        "{}: envs/{name}.toml is missing on its own branch",
                        e.branch
                    )));
                }
            }
        }
    }
    Ok(out)
}

/// The adapters of an env's target.
pub struct Adapters {
    pub target: Box<dyn Target + Send>,
    kube: Option<Box<Kube>>,
    haproxy: Option<Haproxy>,
    pub metrics: Box<dyn Metrics + Send>,
    pub traffic: Option<String>,
    pub requests_query: String,
}

impl Adapters {
    /// Runs `f` with the env's traffic router.
    pub fn with_router<R>(&self, f: impl FnOnce(&dyn TrafficRouter) -> R) -> R {
        match (&self.haproxy, &self.kube) {
            (Some(h), _) => f(h),
            (None, Some(k)) => f(&KubeRouter {
                kube: k,
                attempts: 5,
            }),
            (None, None) => unreachable!("adapters always carry a router"),
        }
    }
}

/// Podman envs run on the local stack under `local`; kubernetes envs on
/// their kubeconfig context with `prometheus`.
pub fn adapters(
    env: &Env,
    local: &Path,
    prometheus: Option<&str>,
) -> Result<Adapters, WiringError> {
    match env.target.kind {
        TargetKind::Podman => {
            let stack = Stack::new(local).map_err(err)?;
            let state = stack.load().ok_or_else(|| {
                WiringError(format!(
                    "{}: the local stack is not set up; run `platform-capstone local up`",
                    local.display()
                ))
            })?;
            let route = state
                .routes
                .iter()
                .find(|r| r.namespace == env.target.namespace && r.app == env.target.app)
                .ok_or_else(|| {
                    WiringError(format!(
                        "the local stack has no route for {ns}/{app}: run `platform-capstone local up --route {ns}/{app}`",
                        ns = env.target.namespace,
                        app = env.target.app
                    ))
                })?;
            let target = Podman::new(stack.podman_config()).map_err(err)?;
            Ok(Adapters {
                target: Box::new(target),
                kube: None,
                haproxy: Some(stack.router()),
                metrics: Box::new(Prometheus::new(&Stack::prometheus_url(&state), Duration::from_secs(10)).map_err(err)?),
                traffic: Some(format!("http://127.0.0.1:{}/", route.port)),
                requests_query: "sum(increase(haproxy_server_http_responses_total{proxy=\"{{namespace}}.{{app}}\",server=~\"{{track}}.*\"}[{{interval}}]))".into(),
            })
        }
        TargetKind::Kubernetes => {
            let url = prometheus.ok_or_else(|| WiringError("a Prometheus URL is required for kubernetes envs (--prometheus, or `prometheus` in the daemon config)".into()))?;
            Ok(Adapters {
                target: Box::new(Kube::from_kubeconfig(env.target.context.as_deref()).map_err(err)?),
                kube: Some(Box::new(Kube::from_kubeconfig(env.target.context.as_deref()).map_err(err)?)),
                haproxy: None,
                metrics: Box::new(Prometheus::new(url, Duration::from_secs(10)).map_err(err)?),
                traffic: None,
                requests_query: "sum(increase(gateway_http_requests_total{namespace=\"{{namespace}}\",service=~\"{{app}}-{{track}}\"}[{{interval}}]))".into(),
            })
        }
    }
}

/// Plain-HTTP registries: loopback hosts among the images.
pub fn plain_http_hosts(images: &[String]) -> Vec<String> {
    let mut hosts: Vec<String> = images
        .iter()
        .filter_map(|i| i.split('/').next())
        .filter(|h| h.starts_with("localhost") || h.starts_with("127."))
        .map(str::to_string)
        .collect();
    hosts.sort();
    hosts.dedup();
    hosts
}

/// Runs `f` with an engine on `adapters` for `env` (its router, metrics,
/// target, and a registry client for the images of `commit`).
#[allow(clippy::too_many_arguments)]
pub fn with_engine<R>(
    repo: &mut dyn GitRepo,
    store: &super::store::Store,
    signer: &Signer,
    adapters: &Adapters,
    env: &Env,
    commit: &str,
    stop: &std::sync::atomic::AtomicBool,
    abort: &std::sync::atomic::AtomicBool,
    f: impl FnOnce(&mut super::Engine<'_>) -> Result<R, super::EngineError>,
) -> Result<R, super::EngineError> {
    let images = {
        let tree = repo.reader(commit)?;
        let rendered = crate::render::render(tree.as_ref(), &env.overlay)
            .map_err(|e| super::EngineError::Invalid(format!("{}: {e}", env.overlay)))?;
        crate::render::images(&rendered)
    };
    let registry = crate::adapters::registry::OciRegistry::new(&plain_http_hosts(&images))
        .map_err(|e| super::EngineError::Infrastructure(e.to_string()))?;
    let now = chrono::Utc::now;
    adapters.with_router(|router| {
        let svc = super::Services {
            target: adapters.target.as_ref(),
            router,
            metrics: adapters.metrics.as_ref(),
            registry: &registry,
            traffic: adapters.traffic.clone(),
            requests_query: adapters.requests_query.clone(),
            scrape_settle: Duration::from_millis(2500),
        };
        let mut engine = super::Engine {
            repo,
            svc: &svc,
            store,
            signer,
            now: &now,
            stop,
            abort,
        };
        f(&mut engine)
    })
}

/// Runs `good` as `env`'s stable again (re-rendered from its commit,
/// applied, all traffic to it): what heal and drills use to put an env
/// back. Not under the env lock: callers that race a release take it.
pub fn restore_good(
    repo: &mut dyn GitRepo,
    store: &super::store::Store,
    signer: &Signer,
    adapters: &Adapters,
    env: &Env,
    good: &super::store::LastGood,
) -> Result<(), super::EngineError> {
    let idle = std::sync::atomic::AtomicBool::new(false);
    with_engine(
        repo,
        store,
        signer,
        adapters,
        env,
        &good.commit,
        &idle,
        &idle,
        |e| super::recover::restore(e, env, good),
    )
}

/// Runs one env's release with its adapters: what `release` and the
/// daemon both call. Holds the env's lock (see `Store::lock_env`).
#[allow(clippy::too_many_arguments)]
pub fn run_env(
    repo: &mut dyn GitRepo,
    store: &super::store::Store,
    signer: &Signer,
    adapters: &Adapters,
    release: &super::EnvRelease<'_>,
    stop: &std::sync::atomic::AtomicBool,
    abort: &std::sync::atomic::AtomicBool,
    out: &mut dyn super::Reporter,
) -> Result<super::EnvOutcome, super::EngineError> {
    let _lock = store
        .lock_env(&release.env.name)?
        .map_err(super::EngineError::Busy)?;
    with_engine(
        repo,
        store,
        signer,
        adapters,
        release.env,
        release.commit,
        stop,
        abort,
        |engine| engine.run(release, out),
    )
}
