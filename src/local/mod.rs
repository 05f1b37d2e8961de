//! The local stack: everything a release needs on one machine, on
//! loopback, under one state directory — docker-registry, HAProxy (one
//! frontend per env's app, runtime API socket, Prometheus exporter),
//! Prometheus (scraping HAProxy and the app pods every second) and podman
//! with project-local configuration.
//!
//! `up` is idempotent: a component already running from this state dir is
//! kept (restarted only when its generated config changed), a port taken
//! by something else is an error naming it. `down` removes every managed
//! pod and stops every process, then checks that no port is left
//! listening. `status` says what is up and where. Processes are tracked by
//! pid *and* command line, so a recycled pid is never mistaken for ours.
//!
//! Sockets never live under the state dir: a Unix socket path is limited
//! to 107 bytes and a state dir can be any length (a newcomer's default
//! temp dir is already long). HAProxy's runtime socket and podman's tmp
//! and run dirs (slirp4netns puts `<tmp>/<64-hex id>.net` there) go under
//! a short runtime dir derived from the state dir's path ([`runtime_dir`]),
//! created by `up` and removed by `down`.
//!
//! Modules: `config` (the generated files, pure), `images` (the demo
//! images: buildah from scratch, push, sign, attest).

pub mod config;
pub mod images;

use crate::adapters::haproxy::Haproxy;
use crate::adapters::podman::{Podman, PodmanConfig};
use crate::adapters::process;
use config::{Ports, Route};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Every program the stack runs, and the Debian package that has it.
pub const REQUIRED: &[(&str, &str)] = &[
    ("docker-registry", "docker-registry"),
    ("haproxy", "haproxy"),
    ("prometheus", "prometheus"),
    ("podman", "podman"),
    ("buildah", "buildah"),
    ("runc", "runc"),
    ("slirp4netns", "slirp4netns"),
    ("catatonit", "catatonit"),
];

/// Default ports (the blueprint's images name `localhost:5000`).
pub const DEFAULT_PORTS: Ports = Ports {
    registry: 5000,
    prometheus: 9090,
    haproxy_exporter: 8405,
};
/// First frontend port; one per route, counting up.
pub const DEFAULT_ROUTE_PORT: u16 = 18080;
/// Longest path a Unix socket can have (`sun_path` holds 108 bytes with
/// the terminating NUL).
pub const MAX_SOCKET_PATH: usize = 107;
/// What podman appends to its tmp dir for the longest socket it makes
/// there: slirp4netns's API socket, `/<64-hex container id>.net`.
const PODMAN_TMP_SOCKET: usize = 1 + 64 + ".net".len();
/// Overrides where runtime dirs are made (default: `$XDG_RUNTIME_DIR`,
/// else `/run` for root, else `/tmp`).
pub const RUNTIME_DIR_ENV: &str = "PLATFORM_CAPSTONE_RUNTIME_DIR";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error(
        "missing programs: {}; install them: apt-get install -y {}",
        .programs.join(", "), .packages.join(" ")
    )]
    Missing {
        programs: Vec<String>,
        packages: Vec<String>,
    },
    #[error("{0}")]
    Io(String),
    #[error(
        "127.0.0.1:{port} ({component}) is in use by another process; stop it, or run `local up --ports auto`"
    )]
    PortTaken { component: String, port: u16 },
    #[error("{component} did not start: {message}; see its log: {log}")]
    Start {
        component: String,
        message: String,
        log: String,
    },
    #[error("{0}")]
    Podman(String),
    #[error(
        "{path}: a socket here would be {len} bytes, over the {MAX_SOCKET_PATH}-byte limit of Unix sockets; set {RUNTIME_DIR_ENV} to a shorter directory (the stack's sockets go there)"
    )]
    SocketPathTooLong { path: String, len: usize },
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> LocalError + '_ {
    move |e| LocalError::Io(format!("{}: {e}", path.display()))
}

/// What `stack.json` records.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StackState {
    pub ports: Ports,
    pub routes: Vec<Route>,
    /// Component name → pid.
    pub pids: BTreeMap<String, u32>,
    /// The runtime dir podman's storage was set up with (absent: a stack
    /// from before runtime dirs, whose podman state lives in the state dir).
    #[serde(default)]
    pub runtime_dir: Option<PathBuf>,
}

/// How `up` picks ports for a new stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortChoice {
    Default,
    Auto,
}

/// One component's health, as `status` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComponentStatus {
    pub name: String,
    pub address: String,
    pub pid: Option<u32>,
    pub up: bool,
    pub detail: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct StackStatus {
    pub state_dir: String,
    /// Sockets and podman's runtime state.
    pub runtime_dir: String,
    pub components: Vec<ComponentStatus>,
    pub routes: Vec<Route>,
    pub pods: Vec<PodStatus>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct PodStatus {
    pub name: String,
    pub running: bool,
    pub namespace: String,
    pub app: String,
    pub track: String,
    pub release: String,
}

#[derive(Debug)]
pub struct Stack {
    pub dir: PathBuf,
    /// Sockets and podman's runtime state ([`runtime_dir`]).
    pub run: PathBuf,
}

/// The effective user id (the owner of `/proc/self`), without `unsafe`.
fn euid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

/// Where runtime dirs are made: `$PLATFORM_CAPSTONE_RUNTIME_DIR`, else
/// `$XDG_RUNTIME_DIR`, else `/run` when root can write it, else `/tmp`.
fn runtime_base() -> PathBuf {
    let dir = |v: &str| {
        std::env::var_os(v)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.is_dir())
    };
    if let Some(d) = dir(RUNTIME_DIR_ENV).or_else(|| dir("XDG_RUNTIME_DIR")) {
        return d;
    }
    let run = Path::new("/run");
    if euid() == 0 && run.is_dir() && tempfile::tempdir_in(run).is_ok() {
        return run.to_path_buf();
    }
    PathBuf::from("/tmp")
}

/// The runtime dir of the stack whose (canonical) state dir is `state_dir`:
/// `<base>/pc-<12 hex>`, the hex a digest of the state dir and the user,
/// so two stacks never share one and its length never depends on the
/// state dir's.
pub fn runtime_dir(base: &Path, state_dir: &Path, uid: u32) -> PathBuf {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(state_dir.as_os_str().as_encoded_bytes());
    h.update(uid.to_be_bytes());
    let hex: String = h.finalize()[..6]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    base.join(format!("pc-{hex}"))
}

/// Every socket path the stack will create under `run`, with its length
/// (the podman one as the longest it can be).
fn socket_paths(run: &Path) -> Vec<(PathBuf, usize)> {
    let haproxy = run.join("haproxy.sock");
    let tmp = run.join("tmp");
    vec![
        (haproxy.clone(), haproxy.as_os_str().len()),
        (tmp.clone(), tmp.as_os_str().len() + PODMAN_TMP_SOCKET),
    ]
}

/// Every socket under `run` fits a Unix socket path, or the error names the fix.
fn check_socket_paths(run: &Path) -> Result<(), LocalError> {
    for (path, len) in socket_paths(run) {
        if len > MAX_SOCKET_PATH {
            return Err(LocalError::SocketPathTooLong {
                path: path.display().to_string(),
                len,
            });
        }
    }
    Ok(())
}

/// Makes `dir` (mode 0700) or checks that the one there is a real
/// directory of ours that nobody else can write: in `/tmp` anyone could
/// have made it first.
fn ensure_private_dir(dir: &Path) -> Result<(), LocalError> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(dir)(e)),
    }
    let m = std::fs::symlink_metadata(dir).map_err(io(dir))?;
    if !m.file_type().is_dir() || m.uid() != euid() || m.mode() & 0o022 != 0 {
        return Err(LocalError::Io(format!(
            "{}: exists but is not a private directory of this user; remove it, or set {RUNTIME_DIR_ENV}",
            dir.display()
        )));
    }
    Ok(())
}

/// Whether `program` is on PATH.
fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false)
}

/// The missing programs and their packages, in one error.
pub fn check_programs(programs: &[(&str, &str)]) -> Result<(), LocalError> {
    let missing: Vec<&(&str, &str)> = programs.iter().filter(|(p, _)| !on_path(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<String> = missing.iter().map(|(_, k)| k.to_string()).collect();
    packages.dedup();
    Err(LocalError::Missing {
        programs: missing.iter().map(|(p, _)| p.to_string()).collect(),
        packages,
    })
}

/// Whether `pid` is alive and running with `marker` on its command line.
fn ours(pid: u32, marker: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).contains(marker))
        .unwrap_or(false)
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A process the stack runs.
struct Component {
    name: &'static str,
    program: &'static str,
    args: Vec<String>,
    /// On the command line: how `ours` recognises it.
    config: PathBuf,
    port: u16,
}

impl Stack {
    /// The stack under `dir` (created if missing; made absolute).
    pub fn new(dir: &Path) -> Result<Self, LocalError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let dir = std::fs::canonicalize(dir).map_err(io(dir))?;
        let run = runtime_dir(&runtime_base(), &dir, euid());
        check_socket_paths(&run)?;
        Ok(Self { dir, run })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }
    fn state_file(&self) -> PathBuf {
        self.path("stack.json")
    }
    pub fn haproxy_socket(&self) -> PathBuf {
        self.run.join("haproxy.sock")
    }
    fn podman_dir(&self) -> PathBuf {
        self.path("podman")
    }

    pub fn podman_config(&self) -> PodmanConfig {
        let d = self.podman_dir();
        PodmanConfig {
            containers_conf: d.join("containers.conf"),
            storage_conf: d.join("storage.conf"),
            registries_conf: d.join("registries.conf"),
            work_dir: d,
        }
    }

    pub fn podman(&self) -> Result<Podman, LocalError> {
        Podman::new(self.podman_config()).map_err(|e| LocalError::Podman(e.to_string()))
    }

    pub fn router(&self) -> Haproxy {
        Haproxy::new(self.haproxy_socket())
    }

    pub fn load(&self) -> Option<StackState> {
        let text = std::fs::read_to_string(self.state_file()).ok()?;
        serde_json::from_str(&text).ok()
    }

    fn save(&self, state: &StackState) -> Result<(), LocalError> {
        let path = self.state_file();
        let body = serde_json::to_vec_pretty(state).map_err(|e| LocalError::Io(e.to_string()))?;
        crate::fsutil::write_atomic(&path, &body, None).map_err(io(&path))
    }

    pub fn prometheus_url(state: &StackState) -> String {
        format!("http://127.0.0.1:{}", state.ports.prometheus)
    }

    /// `localhost:<port>`: the registry as images name it.
    pub fn registry_host(state: &StackState) -> String {
        format!("localhost:{}", state.ports.registry)
    }

    fn components(&self, state: &StackState) -> Vec<Component> {
        let registry_cfg = self.path("registry/registry.yml");
        let haproxy_cfg = self.path("haproxy/haproxy.cfg");
        let prom_cfg = self.path("prometheus/prometheus.yml");
        vec![
            Component {
                name: "registry",
                program: "docker-registry",
                args: vec!["serve".into(), registry_cfg.to_string_lossy().into()],
                config: registry_cfg,
                port: state.ports.registry,
            },
            Component {
                name: "haproxy",
                program: "haproxy",
                args: vec![
                    "-db".into(),
                    "-f".into(),
                    haproxy_cfg.to_string_lossy().into(),
                ],
                config: haproxy_cfg,
                port: state.ports.haproxy_exporter,
            },
            Component {
                name: "prometheus",
                program: "prometheus",
                args: vec![
                    format!("--config.file={}", prom_cfg.display()),
                    format!(
                        "--storage.tsdb.path={}",
                        self.path("prometheus/data").display()
                    ),
                    format!("--web.listen-address=127.0.0.1:{}", state.ports.prometheus),
                    "--storage.tsdb.retention.time=2d".into(),
                    "--web.enable-lifecycle".into(),
                ],
                config: prom_cfg,
                port: state.ports.prometheus,
            },
        ]
    }

    /// The generated files, path → content.
    fn files(&self, state: &StackState) -> Vec<(PathBuf, String)> {
        let pd = self.podman_dir();
        vec![
            (
                self.path("registry/registry.yml"),
                config::registry_yml(&self.path("registry/data"), state.ports.registry),
            ),
            (
                self.path("haproxy/haproxy.cfg"),
                config::haproxy_cfg(&self.haproxy_socket(), &state.ports, &state.routes),
            ),
            (
                self.path("prometheus/prometheus.yml"),
                config::prometheus_yml(&state.ports, &pd.join("scrape-targets.json")),
            ),
            (
                pd.join(crate::adapters::podman::SCRAPE_SLOTS_FILE),
                serde_json::to_string_pretty(&config::scrape_slots(&state.routes))
                    .unwrap_or_default(),
            ),
            (
                pd.join("containers.conf"),
                config::containers_conf(&pd, &self.run),
            ),
            (
                pd.join("storage.conf"),
                config::storage_conf(&pd, &self.run),
            ),
            (
                pd.join("registries.conf"),
                config::registries_conf(state.ports.registry),
            ),
        ]
    }

    fn plan(
        &self,
        routes: &[(String, String)],
        ports: PortChoice,
    ) -> Result<StackState, LocalError> {
        let existing = self.load();
        let pick = |default: u16| -> Result<u16, LocalError> {
            match ports {
                PortChoice::Default => Ok(default),
                PortChoice::Auto => process::free_port().map_err(LocalError::Io),
            }
        };
        let base = match &existing {
            Some(s) => s.ports.clone(),
            None => Ports {
                registry: pick(DEFAULT_PORTS.registry)?,
                prometheus: pick(DEFAULT_PORTS.prometheus)?,
                haproxy_exporter: pick(DEFAULT_PORTS.haproxy_exporter)?,
            },
        };
        let old_routes = existing
            .as_ref()
            .map(|s| s.routes.clone())
            .unwrap_or_default();
        let wanted: Vec<(String, String)> = if routes.is_empty() {
            old_routes
                .iter()
                .map(|r| (r.namespace.clone(), r.app.clone()))
                .collect()
        } else {
            routes.to_vec()
        };
        let mut used: Vec<u16> = vec![base.registry, base.prometheus, base.haproxy_exporter];
        let mut next = DEFAULT_ROUTE_PORT;
        let mut out = Vec::new();
        used.extend(
            old_routes
                .iter()
                .flat_map(|r| r.stable_slots.iter().chain(&r.canary_slots)),
        );
        for (ns, app) in wanted {
            let old = old_routes
                .iter()
                .find(|r| r.namespace == ns && r.app == app);
            // A route keeps its port across `up`s.
            let port = match old {
                Some(r) => r.port,
                None => match ports {
                    PortChoice::Auto => process::free_port().map_err(LocalError::Io)?,
                    PortChoice::Default => {
                        while used.contains(&next) || old_routes.iter().any(|r| r.port == next) {
                            next += 1;
                        }
                        next
                    }
                },
            };
            used.push(port);
            // And its slots (any free ports: nobody types them).
            let mut slots = |old: Option<&Vec<u16>>| -> Result<Vec<u16>, LocalError> {
                if let Some(s) = old.filter(|s| s.len() == config::SCRAPE_SLOTS_PER_TRACK) {
                    return Ok(s.clone());
                }
                let mut out = Vec::new();
                while out.len() < config::SCRAPE_SLOTS_PER_TRACK {
                    let p = process::free_port().map_err(LocalError::Io)?;
                    if !used.contains(&p) {
                        used.push(p);
                        out.push(p);
                    }
                }
                Ok(out)
            };
            let stable_slots = slots(old.map(|r| &r.stable_slots))?;
            let canary_slots = slots(old.map(|r| &r.canary_slots))?;
            out.push(Route {
                namespace: ns,
                app,
                port,
                stable_slots,
                canary_slots,
            });
        }
        Ok(StackState {
            ports: base,
            routes: out,
            runtime_dir: existing.as_ref().and_then(|s| s.runtime_dir.clone()),
            pids: existing.map(|s| s.pids).unwrap_or_default(),
        })
    }

    fn healthy(&self, c: &Component, state: &StackState) -> bool {
        match c.name {
            "haproxy" => self
                .router()
                .command("show info")
                .is_ok_and(|i| i.contains("Name: HAProxy")),
            "prometheus" => http_ok(&format!(
                "http://127.0.0.1:{}/-/ready",
                state.ports.prometheus
            )),
            "registry" => http_ok(&format!("http://127.0.0.1:{}/v2/", state.ports.registry)),
            _ => process::listening(c.port),
        }
    }

    fn start(&self, c: &Component, state: &StackState) -> Result<u32, LocalError> {
        if process::listening(c.port) {
            return Err(LocalError::PortTaken {
                component: c.name.into(),
                port: c.port,
            });
        }
        let logs = self.path("logs");
        std::fs::create_dir_all(&logs).map_err(io(&logs))?;
        let log_path = logs.join(format!("{}.log", c.name));
        let log = std::fs::File::create(&log_path).map_err(io(&log_path))?;
        let err = log.try_clone().map_err(io(&log_path))?;
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(c.program)
            .args(&c.args)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            // Its own process group: a Ctrl-C at the terminal that ran
            // `local up` does not take the stack down with it.
            .process_group(0)
            .spawn()
            .map_err(|e| LocalError::Start {
                component: c.name.into(),
                message: format!("cannot run {}: {e}", c.program),
                log: log_path.display().to_string(),
            })?;
        let pid = child.id();
        let waited = process::wait_until(c.name, START_TIMEOUT, || {
            matches!(child.try_wait(), Ok(None)) && self.healthy(c, state)
        });
        if let Err(message) = waited {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LocalError::Start {
                component: c.name.into(),
                message,
                log: log_path.display().to_string(),
            });
        }
        // Reap it when it exits, so a stopped component is not a zombie
        // that still looks alive to this process.
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(pid)
    }

    fn stop_pid(&self, name: &str, pid: u32, marker: &str) -> Result<(), LocalError> {
        if !ours(pid, marker) {
            return Ok(());
        }
        signal(pid, "-TERM");
        if process::wait_until(name, STOP_TIMEOUT, || !ours(pid, marker)).is_err() {
            signal(pid, "-KILL");
            process::wait_until(name, STOP_TIMEOUT, || !ours(pid, marker))
                .map_err(LocalError::Io)?;
        }
        Ok(())
    }

    /// Brings the stack up (or keeps what is up); `progress` hears each step.
    pub fn up(
        &self,
        routes: &[(String, String)],
        ports: PortChoice,
        progress: &mut dyn FnMut(&str),
    ) -> Result<StackState, LocalError> {
        check_programs(REQUIRED)?;
        let mut state = self.plan(routes, ports)?;
        ensure_private_dir(&self.run)?;
        if state.runtime_dir.as_deref() != Some(self.run.as_path()) {
            self.move_podman_runtime(&state, progress)?;
            state.runtime_dir = Some(self.run.clone());
        }
        let mut changed = Vec::new();
        for (path, content) in self.files(&state) {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            if std::fs::read_to_string(&path).ok().as_deref() != Some(content.as_str()) {
                crate::fsutil::write_atomic(&path, content.as_bytes(), None).map_err(io(&path))?;
                changed.push(path);
            }
        }
        let targets = self.podman_dir().join("scrape-targets.json");
        if !targets.exists() {
            crate::fsutil::write_atomic(&targets, b"[]", None).map_err(io(&targets))?;
        }
        for c in self.components(&state) {
            let marker = c.config.to_string_lossy().to_string();
            let running = state
                .pids
                .get(c.name)
                .copied()
                .filter(|p| ours(*p, &marker));
            match running {
                Some(pid) if !changed.contains(&c.config) && self.healthy(&c, &state) => {
                    progress(&format!(
                        "{}: already up (pid {pid}) on 127.0.0.1:{}",
                        c.name, c.port
                    ));
                    continue;
                }
                Some(pid) => {
                    progress(&format!("{}: restarting (configuration changed)", c.name));
                    self.stop_pid(c.name, pid, &marker)?;
                }
                None => {}
            }
            let pid = self.start(&c, &state)?;
            state.pids.insert(c.name.to_string(), pid);
            self.save(&state)?;
            progress(&format!(
                "{}: up (pid {pid}) on 127.0.0.1:{}",
                c.name, c.port
            ));
        }
        // podman: the configuration loads and the runtime answers.
        let podman = self.podman()?;
        process::run(
            podman
                .command()
                .args(["info", "--format", "{{.Host.OCIRuntime.Name}}"]),
            Duration::from_secs(60),
            None,
        )
        .map_err(LocalError::Podman)?;
        // Prometheus scrapes the routes' slots from now on.
        podman
            .write_scrape_targets()
            .map_err(|e| LocalError::Podman(e.to_string()))?;
        progress("podman: configured (runc, cgroupfs, project-local storage)");
        for r in &state.routes {
            progress(&format!(
                "route {}/{}: http://127.0.0.1:{}/",
                r.namespace, r.app, r.port
            ));
        }
        self.save(&state)?;
        Ok(state)
    }

    /// Podman records its tmp and run dirs in its database and refuses to
    /// start with others: a stack set up elsewhere (an older layout, or a
    /// state dir that moved) has its pods removed and podman's storage
    /// reset with the configuration it was made with. Images come back
    /// from the registry; releases re-apply what they need.
    fn move_podman_runtime(
        &self,
        state: &StackState,
        progress: &mut dyn FnMut(&str),
    ) -> Result<(), LocalError> {
        let pd = self.podman_dir();
        if !pd.join("storage").exists() {
            return Ok(());
        }
        progress(&format!(
            "podman: runtime state moves to {}; resetting the stack's podman storage once",
            self.run.display()
        ));
        if on_path("podman") && self.podman_config().containers_conf.exists() {
            let podman = self.podman()?;
            let _ = process::run(
                podman
                    .command()
                    .args(["pod", "rm", "--all", "--force", "--time", "5"]),
                Duration::from_secs(120),
                None,
            );
            let _ = process::run(
                podman.command().args(["system", "reset", "--force"]),
                Duration::from_secs(120),
                None,
            );
        }
        let mut dirs = vec![pd.join("storage"), pd.join("run"), pd.join("tmp")];
        dirs.extend(state.runtime_dir.iter().cloned());
        for d in dirs {
            match std::fs::remove_dir_all(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&d)(e)),
            }
        }
        Ok(())
    }

    /// Removes every managed pod and stops every process; then checks that
    /// nothing listens any more.
    pub fn down(&self, progress: &mut dyn FnMut(&str)) -> Result<(), LocalError> {
        let Some(mut state) = self.load() else {
            progress("nothing to stop: no stack.json in the state dir");
            return Ok(());
        };
        if on_path("podman") && self.podman_config().containers_conf.exists() {
            let podman = self.podman()?;
            let removed = podman
                .remove_all_pods()
                .map_err(|e| LocalError::Podman(e.to_string()))?;
            if removed > 0 {
                progress(&format!("podman: removed {removed} pods"));
            }
            let _ = podman.write_scrape_targets();
        }
        for c in self.components(&state).iter().rev() {
            if let Some(pid) = state.pids.get(c.name).copied() {
                self.stop_pid(c.name, pid, &c.config.to_string_lossy())?;
                progress(&format!("{}: stopped", c.name));
            }
        }
        state.pids.clear();
        self.save(&state)?;
        let mut ports = vec![
            state.ports.registry,
            state.ports.prometheus,
            state.ports.haproxy_exporter,
        ];
        ports.extend(state.routes.iter().map(|r| r.port));
        // A process's sockets close a moment after its command line goes.
        let _ = process::wait_until("ports to close", Duration::from_secs(5), || {
            !ports.iter().any(|p| process::listening(*p))
        });
        let still: Vec<u16> = ports
            .into_iter()
            .filter(|p| process::listening(*p))
            .collect();
        if !still.is_empty() {
            return Err(LocalError::Io(format!(
                "after down, something still listens on 127.0.0.1:{:?} (not started by this stack?)",
                still
            )));
        }
        // Podman keeps nothing there that outlives its pods; the next
        // `up` makes it again.
        match std::fs::remove_dir_all(&self.run) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&self.run)(e)),
        }
        Ok(())
    }

    pub fn status(&self) -> StackStatus {
        let state = self.load();
        let mut components = Vec::new();
        let mut pods = Vec::new();
        if let Some(state) = &state {
            for c in self.components(state) {
                let pid = state
                    .pids
                    .get(c.name)
                    .copied()
                    .filter(|p| ours(*p, &c.config.to_string_lossy()));
                let up = pid.is_some() && self.healthy(&c, state);
                components.push(ComponentStatus {
                    name: c.name.into(),
                    address: format!("127.0.0.1:{}", c.port),
                    pid,
                    up,
                    detail: match (pid, up) {
                        (None, _) => "not running".into(),
                        (Some(_), false) => "running but not answering".into(),
                        (Some(_), true) => "healthy".into(),
                    },
                });
            }
            if let Ok(podman) = self.podman()
                && let Ok(list) = podman.pods(None)
            {
                pods = list
                    .into_iter()
                    .map(|p| PodStatus {
                        running: p.running,
                        namespace: p
                            .labels
                            .get(crate::ports::NAMESPACE_LABEL)
                            .cloned()
                            .unwrap_or_default(),
                        app: p
                            .labels
                            .get(crate::ports::APP_LABEL)
                            .cloned()
                            .unwrap_or_default(),
                        track: p
                            .labels
                            .get(crate::ports::TRACK_LABEL)
                            .cloned()
                            .unwrap_or_default(),
                        release: p
                            .labels
                            .get(crate::ports::RELEASE_LABEL)
                            .cloned()
                            .unwrap_or_default(),
                        name: p.name,
                    })
                    .collect();
            }
        }
        StackStatus {
            state_dir: self.dir.display().to_string(),
            runtime_dir: self.run.display().to_string(),
            components,
            routes: state.map(|s| s.routes).unwrap_or_default(),
            pods,
        }
    }
}

fn http_ok(url: &str) -> bool {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .ok()
        .and_then(|c| c.get(url).send().ok())
        .is_some_and(|r| r.status().is_success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_dirs_are_short_whatever_the_state_dir_and_never_shared() {
        let long = PathBuf::from(format!("/tmp/{}", "state-dir-".repeat(30)));
        for base in ["/run", "/tmp", "/run/user/1000"] {
            let a = runtime_dir(Path::new(base), &long, 0);
            assert_eq!(a.as_os_str().len(), base.len() + "/pc-".len() + 12);
            assert!(check_socket_paths(&a).is_ok(), "{}", a.display());
            assert_eq!(a, runtime_dir(Path::new(base), &long, 0), "stable");
            assert_ne!(a, runtime_dir(Path::new(base), Path::new("/srv/x"), 0));
            assert_ne!(a, runtime_dir(Path::new(base), &long, 1000), "per user");
        }
        // A base too long for slirp4netns's `<tmp>/<64 hex>.net`: refused
        // up front, naming the variable that fixes it.
        let deep = PathBuf::from(format!("/{}", "d".repeat(40)));
        let err = check_socket_paths(&runtime_dir(&deep, &long, 0))
            .expect_err("too long")
            .to_string();
        assert!(
            err.contains("over the 107-byte limit") && err.contains(RUNTIME_DIR_ENV),
            "{err}"
        );
    }

    #[test]
    fn a_runtime_dir_made_by_someone_else_is_refused() {
        let tmp = tempfile::tempdir().expect("tmp");
        let d = tmp.path().join("pc-x");
        ensure_private_dir(&d).expect("made");
        ensure_private_dir(&d).expect("ours: reused");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        assert!(ensure_private_dir(&d).is_err(), "world-writable");
        let link = tmp.path().join("pc-link");
        std::os::unix::fs::symlink(tmp.path(), &link).expect("symlink");
        assert!(ensure_private_dir(&link).is_err(), "a symlink");
    }

    #[test]
    fn every_route_gets_distinct_scrape_slots_that_stay_across_ups() {
        let tmp = tempfile::tempdir().expect("tmp");
        let stack = Stack::new(tmp.path()).expect("stack");
        let routes = [
            ("demo-dev".to_string(), "demo".to_string()),
            ("demo-prod".to_string(), "demo".to_string()),
        ];
        let first = stack.plan(&routes, PortChoice::Auto).expect("plan");
        let mut all: Vec<u16> = vec![
            first.ports.registry,
            first.ports.prometheus,
            first.ports.haproxy_exporter,
        ];
        for r in &first.routes {
            assert_eq!(r.stable_slots.len(), config::SCRAPE_SLOTS_PER_TRACK);
            assert_eq!(r.canary_slots.len(), config::SCRAPE_SLOTS_PER_TRACK);
            all.push(r.port);
            all.extend(r.stable_slots.iter().chain(&r.canary_slots));
        }
        let n = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), n, "no port is used twice");
        assert_eq!(
            config::scrape_slots(&first.routes).len(),
            4 * config::SCRAPE_SLOTS_PER_TRACK
        );
        stack.save(&first).expect("save");
        let again = stack.plan(&[], PortChoice::Auto).expect("plan again");
        assert_eq!(again.routes, first.routes, "slots kept across ups");
        // A stack from before slots gets them at its next `up`.
        let mut old = first.clone();
        old.routes[0].stable_slots.clear();
        old.routes[0].canary_slots.clear();
        stack.save(&old).expect("save");
        let upgraded = stack.plan(&[], PortChoice::Auto).expect("plan");
        assert_eq!(
            upgraded.routes[0].stable_slots.len(),
            config::SCRAPE_SLOTS_PER_TRACK
        );
        assert_eq!(upgraded.routes[1], first.routes[1]);
    }
}
