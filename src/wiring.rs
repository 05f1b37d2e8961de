//! Wiring: from a daemon config to a signed repo handle, from the remote
//! to every env (each as defined at the head of its own branch), and from
//! an env's target to its adapters. Shared by `release` and the daemon so
//! both run the engine on exactly the same setup.

use crate::adapters::kubernetes::{Kube, KubeRouter};
use crate::adapters::podman::Podman;
use crate::adapters::prometheus::Prometheus;
use crate::config::trust::{HistoryRewrite, Trust};
use crate::config::{DaemonConfig, Env, TargetKind};
use crate::local::Stack;
use crate::ports::{Metrics, Target, TrafficRouter};
use crate::render::cache::RenderCache;
use crate::signing::{AllowedSigners, Signer};
use crate::source::trust::HeadTrust;
use crate::source::{Git2Repo, GitRepo};
use std::path::Path;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WiringError(pub String);

fn err(e: impl std::fmt::Display) -> WiringError {
    WiringError(e.to_string())
}

/// Renders a workspace keeps: every env's overlay at a couple of heads.
const RENDER_CACHE: usize = 32;

/// Why the images of an overlay at a commit could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ImagesError {
    #[error(transparent)]
    Git(#[from] crate::source::GitError),
    #[error("{overlay}: {source}")]
    Render {
        overlay: String,
        source: crate::render::RenderError,
    },
}

/// What every entry point works on — `release`, `drift`, the drills, and
/// the daemon's workers, drift checks, API and poll: the daemon's signer,
/// a repo handle on a cache of its own, the state dir's store, and every
/// pinned env as the remote showed it at the last fetch. The one place
/// the open → fetch → load-envs recipe is written.
pub struct Workspace {
    pub repo: Git2Repo,
    pub signer: Signer,
    pub store: crate::engine::store::Store,
    pub trust: Trust,
    /// Every pinned env in promotion order, as of the last `refresh`/`reload`.
    pub slots: Vec<EnvSlot>,
    /// Renders memoised by what they read (blob and tree ids): a poll that
    /// finds an overlay's inputs unchanged does not render it again.
    pub renders: RenderCache,
}

impl Workspace {
    /// The signer and a repo handle on `cache_dir`; nothing fetched or
    /// loaded yet (`slots` is empty until `refresh`).
    pub fn new(
        cfg: &DaemonConfig,
        config_file: &Path,
        cache_dir: &Path,
    ) -> Result<Self, WiringError> {
        let signer = signer(cfg, config_file)?;
        let repo = repo(cfg, cache_dir, &signer)?;
        Ok(Workspace {
            repo,
            signer,
            store: crate::engine::store::Store::new(&cfg.state_dir),
            trust: cfg.trust.clone(),
            slots: Vec::new(),
            renders: RenderCache::new(RENDER_CACHE),
        })
    }

    /// `new`, then one fetch and every env loaded. `record`: heads
    /// accepted are remembered (for callers about to act on them);
    /// returns the history rewrites accepted, for the audit trail.
    pub fn open(
        cfg: &DaemonConfig,
        config_file: &Path,
        cache_dir: &Path,
        record: bool,
    ) -> Result<(Self, Vec<Rewrite>), WiringError> {
        let mut ws = Self::new(cfg, config_file, cache_dir)?;
        let rewrites = ws.refresh(record)?;
        Ok((ws, rewrites))
    }

    /// One fetch of every env branch, then every env loaded again.
    pub fn refresh(&mut self, record: bool) -> Result<Vec<Rewrite>, WiringError> {
        self.repo.fetch().map_err(err)?;
        self.reload(record)
    }

    /// For work that must not wait on git (a manual rollback): first
    /// brought up to what the other caches of this config hold on disk
    /// (`others`: the CLI's and the daemon poll's cache dirs), then one
    /// fetch; when that fails, the envs are loaded from what is here and
    /// the fetch error is returned as a warning.
    pub fn refresh_or_local(
        &mut self,
        remote: &str,
        others: &[std::path::PathBuf],
    ) -> Result<Option<String>, WiringError> {
        let own = self.repo.repository().path().to_path_buf();
        for dir in others {
            let path = crate::source::cache_path(remote, dir);
            if path.is_dir()
                && path.canonicalize().ok() != own.canonicalize().ok()
                && let Err(e) = self.repo.sync_from(&path)
            {
                tracing::debug!(cache = %path.display(), error = %e, "cannot sync from this cache");
            }
        }
        match self.refresh(false) {
            Ok(_) => Ok(None),
            Err(e) => {
                self.reload(false)?;
                Ok(Some(e.to_string()))
            }
        }
    }

    /// Every env loaded again from what was last fetched (a promotion of
    /// ours moved the next env's head).
    pub fn reload(&mut self, record: bool) -> Result<Vec<Rewrite>, WiringError> {
        let (slots, rewrites) = slots(&self.repo, &self.trust, Some(&self.store), record)?;
        self.slots = slots;
        Ok(rewrites)
    }

    /// The ready env `name`, or why it cannot be acted on.
    pub fn env(&self, name: &str) -> Result<&Env, WiringError> {
        ready_env(&self.slots, name)
    }

    /// The images `overlay` pins at `commit` (through the render cache).
    pub fn images_at(&mut self, commit: &str, overlay: &str) -> Result<Vec<String>, ImagesError> {
        let tree = self.repo.reader(commit)?;
        let rendered = self
            .renders
            .render(tree.as_ref(), overlay)
            .map_err(|source| ImagesError::Render {
                overlay: overlay.to_string(),
                source,
            })?;
        Ok(crate::render::images(&rendered))
    }

    /// The head of env `name`'s branch as last fetched.
    pub fn head(&self, name: &str) -> Option<&str> {
        self.slots
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.head.as_deref())
    }
}

/// The daemon's signer: its key loaded and checked against the trust
/// root, and the installation's mask key in place.
pub fn signer(cfg: &DaemonConfig, config_file: &Path) -> Result<Signer, WiringError> {
    let key = cfg.signing_key.clone().ok_or_else(|| {
        WiringError(format!(
            "{}: signing_key: required to commit releases; set it to the daemon's SSH key",
            config_file.display()
        ))
    })?;
    let signer = Signer::load(&key, cfg.identity.clone())
        .map_err(|e| WiringError(format!("{}: {e}", key.display())))?;
    cfg.trust
        .check_daemon_key(signer.public_key())
        .map_err(|e| WiringError(format!("{}: trust: {e}", config_file.display())))?;
    // Masks in reports and diffs compare across runs of this installation.
    crate::redact::use_key_file(&cfg.state_dir).map_err(|e| {
        WiringError(format!(
            "{}: state_dir {}: mask key: {e}",
            config_file.display(),
            cfg.state_dir.display()
        ))
    })?;
    Ok(signer)
}

/// A handle on the config repo with its own cache under `cache_dir`, the
/// config's limits and deadline, signing as `signer`; not fetched yet.
pub fn repo(
    cfg: &DaemonConfig,
    cache_dir: &Path,
    signer: &Signer,
) -> Result<Git2Repo, WiringError> {
    Ok(
        Git2Repo::open_remote(&cfg.remote, cache_dir, cfg.ssh_key.as_deref())
            .map_err(err)?
            .with_max_file_size(cfg.max_file_size)
            .with_deadline(cfg.git_timeout)
            .with_signer(signer.clone()),
    )
}

/// One pinned env as the remote shows it now.
#[derive(Debug, Clone)]
pub struct EnvSlot {
    pub name: String,
    /// Always `env/<name>`: nothing else defines the env.
    pub branch: String,
    pub head: Option<String>,
    pub state: SlotState,
}

/// Whether a pinned env can be acted on, and why not.
#[derive(Debug, Clone)]
pub enum SlotState {
    Ready(Box<Env>),
    /// No such branch on the remote.
    Missing,
    /// Its own files at its head are invalid.
    Broken(String),
    /// Its head is not trusted: signature, policy signer, or history.
    Untrusted(String),
}

impl EnvSlot {
    pub fn env(&self) -> Option<&Env> {
        match &self.state {
            SlotState::Ready(e) => Some(e),
            _ => None,
        }
    }

    /// `ready`, `missing`, `broken` or `untrusted`.
    pub fn status(&self) -> &'static str {
        match self.state {
            SlotState::Ready(_) => "ready",
            SlotState::Missing => "missing",
            SlotState::Broken(_) => "broken",
            SlotState::Untrusted(_) => "untrusted",
        }
    }

    /// Why the env cannot be acted on (`None` when ready).
    pub fn problem(&self) -> Option<String> {
        match &self.state {
            SlotState::Ready(_) => None,
            SlotState::Missing => Some(format!("{}: no such branch on the remote", self.branch)),
            SlotState::Broken(why) | SlotState::Untrusted(why) => Some(why.clone()),
        }
    }
}

/// A non-fast-forward move of an env branch that the trust root accepts:
/// the caller records it in the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    pub env: String,
    pub from: String,
    pub to: String,
}

/// Every pinned env in promotion order, each loaded from its own branch
/// head and judged against the pinned anchors; a bad env never hides or
/// blocks another. With a `store`, heads are checked against the last head
/// accepted (a force push is refused, or accepted as configured and
/// returned for the audit trail) and, when `record`, accepted heads are
/// remembered. `Err` only when git cannot list the branches.
pub fn slots(
    repo: &dyn GitRepo,
    trust: &Trust,
    store: Option<&crate::engine::store::Store>,
    record: bool,
) -> Result<(Vec<EnvSlot>, Vec<Rewrite>), WiringError> {
    let heads = repo.heads().map_err(err)?;
    let mut out = Vec::new();
    let mut rewrites = Vec::new();
    for name in &trust.envs {
        let branch = Trust::branch(name);
        let head = heads.get(&branch).cloned();
        let state = match &head {
            None => SlotState::Missing,
            Some(h) => judge(repo, trust, store, record, name, h, &mut rewrites),
        };
        out.push(EnvSlot {
            name: name.clone(),
            branch,
            head,
            state,
        });
    }
    Ok((out, rewrites))
}

fn judge(
    repo: &dyn GitRepo,
    trust: &Trust,
    store: Option<&crate::engine::store::Store>,
    record: bool,
    name: &str,
    head: &str,
    rewrites: &mut Vec<Rewrite>,
) -> SlotState {
    let Some(anchors) = trust.anchors(name) else {
        return SlotState::Untrusted(format!("{name}: no trust anchors pinned"));
    };
    match crate::source::trust::judge_head(repo, name, anchors, trust.require_signed_heads, head) {
        Ok(HeadTrust::Trusted { .. }) => {}
        Ok(HeadTrust::Untrusted { reason }) => return SlotState::Untrusted(reason),
        Err(e) => return SlotState::Broken(format!("env/{name}: {e}")),
    }
    if let Some(store) = store {
        let seen = store.seen_head(name).ok().flatten();
        if let Some(seen) = seen.filter(|s| s != head) {
            let forward = crate::source::trust::moved_forward(repo, &seen, head).unwrap_or(false);
            if !forward {
                match trust.history_rewrite {
                    HistoryRewrite::Refuse => {
                        return SlotState::Untrusted(format!(
                            "env/{name} was rewritten: its head moved from {} to {}, which does not contain it (a force push); push a commit on top of {} instead, or set trust.history_rewrite = \"accept\"",
                            &seen[..12.min(seen.len())],
                            &head[..12.min(head.len())],
                            &seen[..12.min(seen.len())]
                        ));
                    }
                    HistoryRewrite::Accept => rewrites.push(Rewrite {
                        env: name.to_string(),
                        from: seen,
                        to: head.to_string(),
                    }),
                }
            }
        }
        if record && let Err(e) = store.save_seen_head(name, head) {
            tracing::warn!(env = name, error = %e, "cannot remember the accepted head");
        }
    }
    let env = match repo.reader(head) {
        Ok(tree) => crate::config::load_own_env(tree.as_ref(), name),
        Err(e) => return SlotState::Broken(format!("env/{name}: {e}")),
    };
    let env = match env {
        Ok(env) => env,
        Err(problems) => {
            let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            return SlotState::Broken(format!(
                "env/{name} at {}: {}",
                &head[..12.min(head.len())],
                list.join("; ")
            ));
        }
    };
    // An env promotes into the env after it in the pinned order, or into
    // nothing: never past one, never into one that is not pinned.
    let pinned = trust.next(name);
    if let Some(next) = env.next.as_deref()
        && Some(next) != pinned
    {
        return SlotState::Broken(format!(
            "{}: next: says {next:?}, but the pinned order (trust.envs) allows only {}; fix envs/{name}.toml on env/{name}",
            env.file,
            pinned.map_or("none".into(), |n| format!("{n:?}")),
        ));
    }
    SlotState::Ready(Box::new(env))
}

/// The ready envs of `slots`, in promotion order.
pub fn ready(slots: &[EnvSlot]) -> Vec<Env> {
    slots.iter().filter_map(|s| s.env().cloned()).collect()
}

/// The ready env `name` of `slots`, or why it cannot be acted on.
pub fn ready_env<'a>(slots: &'a [EnvSlot], name: &str) -> Result<&'a Env, WiringError> {
    let slot = slots.iter().find(|s| s.name == name).ok_or_else(|| {
        WiringError(format!(
            "{name}: not a pinned environment (trust.envs: {})",
            slots
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    slot.env().ok_or_else(|| {
        WiringError(format!(
            "{name} is {}: {}",
            slot.status(),
            slot.problem().unwrap_or_default()
        ))
    })
}

/// What a release of `env` trusts beyond its own tree: promotion records
/// by the daemon's own key or a pinned promotion signer, the pinned
/// approvers of the next env, and whether the next env can take a
/// promotion at all.
pub fn release_trust(
    trust: &Trust,
    signer: &Signer,
    slots: &[EnvSlot],
    env: &Env,
) -> crate::engine::ReleaseTrust {
    let own = AllowedSigners::of_key(&signer.identity().email, signer.public_key());
    let next = env.next.as_deref();
    crate::engine::ReleaseTrust {
        promotion_signers: own.with(&trust.promotion_signers),
        next_approvers: next
            .and_then(|n| trust.anchors(n))
            .and_then(|a| a.approvers.clone()),
        next_blocked: next.and_then(|n| {
            let slot = slots.iter().find(|s| s.name == n)?;
            slot.problem().map(|p| (n.to_string(), p))
        }),
    }
}

/// The env `env` promotes into, when it is ready.
pub fn next_of<'a>(slots: &'a [EnvSlot], env: &Env) -> Option<&'a Env> {
    let n = env.next.as_deref()?;
    slots.iter().find(|s| s.name == n)?.env()
}

/// The ports one env's release runs on: built from its target by
/// [`adapters`], or from fakes by a test.
pub struct Adapters {
    pub target: Box<dyn Target + Send>,
    pub router: Box<dyn TrafficRouter + Send>,
    pub metrics: Box<dyn Metrics + Send>,
    /// The registry the gates read; `None`: an OCI client for the hosts of
    /// the release's images.
    pub registry: Option<Box<dyn crate::ports::Registry + Send>>,
    pub traffic: Option<String>,
    pub requests_query: String,
    /// Wait after each interval for the metrics' last scrape of it.
    pub scrape_settle: Duration,
    /// Signs a promotion attestation on each promoted digest; set by the
    /// caller from the daemon config's `attestation_key`.
    pub attestation_key: Option<std::sync::Arc<p256::ecdsa::SigningKey>>,
}

/// The daemon config's `attestation_key`, loaded (`None` when unset).
pub fn attestation_key(
    cfg: &crate::config::DaemonConfig,
) -> Result<Option<std::sync::Arc<p256::ecdsa::SigningKey>>, WiringError> {
    let Some(path) = &cfg.attestation_key else {
        return Ok(None);
    };
    let pem = std::fs::read_to_string(path)
        .map_err(|e| WiringError(format!("attestation_key {}: {e}", path.display())))?;
    crate::cosign_key::load(&pem)
        .map(|k| Some(std::sync::Arc::new(k)))
        .map_err(|e| WiringError(format!("attestation_key {}: {e}", path.display())))
}

/// Podman envs run on the local stack under `local`; kubernetes envs on
/// their kubeconfig context with `prometheus`.
pub fn adapters(
    env: &Env,
    local: &Path,
    prometheus: Option<&str>,
    scrape_settle: Duration,
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
                router: Box::new(stack.router()),
                registry: None,
                metrics: Box::new(Prometheus::new(&Stack::prometheus_url(&state), Duration::from_secs(10)).map_err(err)?),
                traffic: Some(format!("http://127.0.0.1:{}/", route.port)),
                requests_query: "sum(increase(haproxy_server_http_responses_total{proxy=\"{{namespace}}.{{app}}\",server=~\"{{track}}.*\"}[{{interval}}]))".into(),
                scrape_settle,
                attestation_key: None,
            })
        }
        TargetKind::Kubernetes => {
            let url = prometheus.ok_or_else(|| WiringError("a Prometheus URL is required for kubernetes envs (--prometheus, or `prometheus` in the daemon config)".into()))?;
            Ok(Adapters {
                target: Box::new(Kube::from_kubeconfig(env.target.context.as_deref()).map_err(err)?),
                router: Box::new(KubeRouter {
                    kube: Kube::from_kubeconfig(env.target.context.as_deref()).map_err(err)?,
                    attempts: 5,
                }),
                registry: None,
                metrics: Box::new(Prometheus::new(url, Duration::from_secs(10)).map_err(err)?),
                traffic: None,
                requests_query: "sum(increase(gateway_http_requests_total{namespace=\"{{namespace}}\",service=~\"{{app}}-{{track}}\"}[{{interval}}]))".into(),
                scrape_settle,
                attestation_key: None,
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

/// What may interrupt an engine: shutdown (`stop`) and an operator's
/// abort.
#[derive(Debug, Clone, Copy)]
pub struct Signals<'a> {
    pub stop: &'a std::sync::atomic::AtomicBool,
    pub abort: &'a std::sync::atomic::AtomicBool,
}

impl Signals<'static> {
    /// For work nobody stops half-way: putting a good release back, a
    /// hand-over after SLO drift.
    pub fn none() -> Self {
        static NEVER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        Signals {
            stop: &NEVER,
            abort: &NEVER,
        }
    }
}

/// Runs `f` with an engine on `adapters` for `env` (its router, metrics,
/// target, and a registry client for the images of `commit`).
#[allow(clippy::too_many_arguments)]
pub fn with_engine<R>(
    repo: &mut dyn GitRepo,
    store: &crate::engine::store::Store,
    signer: &Signer,
    adapters: &Adapters,
    env: &Env,
    commit: &str,
    signals: Signals<'_>,
    f: impl FnOnce(&mut crate::engine::Engine<'_>) -> Result<R, crate::engine::EngineError>,
) -> Result<R, crate::engine::EngineError> {
    let Signals { stop, abort } = signals;
    let oci;
    let registry: &dyn crate::ports::Registry = match &adapters.registry {
        Some(r) => r.as_ref(),
        None => {
            let images = {
                let tree = repo.reader(commit)?;
                let rendered = crate::render::render(tree.as_ref(), &env.overlay).map_err(|e| {
                    crate::engine::EngineError::Invalid(format!("{}: {e}", env.overlay))
                })?;
                crate::render::images(&rendered)
            };
            oci = crate::adapters::registry::OciRegistry::new(&plain_http_hosts(&images))
                .map_err(|e| crate::engine::EngineError::Infrastructure(e.to_string()))?;
            &oci
        }
    };
    let now = chrono::Utc::now;
    let svc = crate::engine::Services {
        target: adapters.target.as_ref(),
        router: adapters.router.as_ref(),
        metrics: adapters.metrics.as_ref(),
        registry,
        traffic: adapters.traffic.clone(),
        requests_query: adapters.requests_query.clone(),
        scrape_settle: adapters.scrape_settle,
        discovery_wait: Duration::from_secs(10),
        attestation_key: adapters.attestation_key.as_deref(),
    };
    let mut engine = crate::engine::Engine {
        repo,
        svc: &svc,
        store,
        signer,
        now: &now,
        stop,
        abort,
    };
    f(&mut engine)
}

/// Runs `good` as `env`'s stable again (re-rendered from its commit,
/// applied, all traffic to it): what heal and drills use to put an env
/// back. Not under the env lock: callers that race a release take it.
pub fn restore_good(
    repo: &mut dyn GitRepo,
    store: &crate::engine::store::Store,
    signer: &Signer,
    adapters: &Adapters,
    env: &Env,
    good: &crate::engine::store::LastGood,
) -> Result<(), crate::engine::EngineError> {
    with_engine(
        repo,
        store,
        signer,
        adapters,
        env,
        &good.commit,
        Signals::none(),
        |e| crate::engine::recover::restore(e, env, good),
    )
}

/// Rolls `env` back as the operator's `request` asks (see
/// `engine::rollback`), with the env's pinned operators and adapters,
/// from what `ws` last fetched. `wait`: how long a release in progress in
/// another process gets to stop.
pub fn rollback(
    ws: &mut Workspace,
    adapters: &Adapters,
    env: &Env,
    request: &crate::rollback::Request,
    wait: Duration,
) -> Result<crate::engine::rollback::Done, crate::engine::rollback::RollbackError> {
    let head = ws.repo.resolve(&env.branch)?;
    let operators = ws.trust.operators(&env.name);
    with_engine(
        &mut ws.repo,
        &ws.store,
        &ws.signer,
        adapters,
        env,
        &head,
        Signals::none(),
        |e| {
            Ok(crate::engine::rollback::rollback(
                e, env, request, operators, wait,
            ))
        },
    )?
}

/// Runs one env's release with its adapters: what `release` and the
/// daemon both call. Holds the env's lock (see `Store::lock_env`).
#[allow(clippy::too_many_arguments)]
pub fn run_env(
    repo: &mut dyn GitRepo,
    store: &crate::engine::store::Store,
    signer: &Signer,
    adapters: &Adapters,
    release: &crate::engine::EnvRelease<'_>,
    stop: &std::sync::atomic::AtomicBool,
    abort: &std::sync::atomic::AtomicBool,
    out: &mut dyn crate::engine::Reporter,
) -> Result<crate::engine::EnvOutcome, crate::engine::EngineError> {
    let _lock = store
        .lock_env(&release.env.name)?
        .map_err(crate::engine::EngineError::Busy)?;
    with_engine(
        repo,
        store,
        signer,
        adapters,
        release.env,
        release.commit,
        Signals { stop, abort },
        |engine| engine.run(release, out),
    )
}
