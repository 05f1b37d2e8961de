//! The real-stack world the release, drift and drill tests share: a local
//! stack, a config repo initialised from the blueprint with the demo's
//! keys and quick analysis, and the binary run against it.

use super::git;
use platform_capstone::local::{PortChoice, Stack, StackState};
use platform_capstone::ports::Target;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Brings the stack down when dropped.
pub struct Down<'a>(pub &'a Stack);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.down(&mut |_| {});
    }
}

/// The namespaces the worlds release into: one route each on the shared stack.
pub const NAMESPACES: [&str; 3] = ["demo-dev", "demo-staging", "demo-prod"];

/// The one local stack of this test binary (registry, podman, HAProxy,
/// Prometheus), shared by the release, drift and drill tests in turn.
pub struct Shared {
    pub stack: Stack,
    /// Its state dir (what `PLATFORM_CAPSTONE_LOCAL` names for the binary).
    pub local: PathBuf,
    pub registry: String,
    pub state: StackState,
}

/// Takes the real-stack turn and the shared stack, brought up by the first
/// caller and reset for each: a component a test stopped is started again
/// and no pod is left from the test before (the next release is a first
/// release). The stack goes down when the test process exits, however it
/// exits: a watchdog process waits for it and runs `local down`.
pub fn shared_stack() -> (std::sync::MutexGuard<'static, ()>, &'static Shared) {
    static SHARED: std::sync::OnceLock<Result<Shared, String>> = std::sync::OnceLock::new();
    let turn = super::real_stack();
    let shared = match SHARED.get_or_init(bring_up) {
        Ok(s) => s,
        Err(e) => panic!("the shared local stack did not come up: {e}"),
    };
    shared.reset();
    (turn, shared)
}

fn routes() -> Vec<(String, String)> {
    NAMESPACES
        .iter()
        .map(|n| (n.to_string(), "demo".to_string()))
        .collect()
}

fn bring_up() -> Result<Shared, String> {
    let dir = tempfile::Builder::new()
        .prefix("pc-shared-stack-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    // A state dir far longer than a Unix socket path may be: the stack's
    // sockets live in its short runtime dir, never under the state dir.
    let local = dir.join(format!("local-state-{}", "long".repeat(40)));
    let stack = Stack::new(&local).map_err(|e| e.to_string())?;
    if stack.haproxy_socket().as_os_str().len() >= 90 || stack.run.starts_with(&dir) {
        return Err(format!(
            "the stack's sockets live under its state dir: {stack:?}"
        ));
    }
    watchdog(&local, &dir)?;
    let state = stack
        .up(&routes(), PortChoice::Auto, &mut |l| {
            eprintln!("shared stack: {l}")
        })
        .map_err(|e| e.to_string())?;
    Ok(Shared {
        registry: Stack::registry_host(&state),
        stack,
        local,
        state,
    })
}

/// A process that outlives this one only to bring the stack down and
/// remove its dir once this process has exited (even by kill -9 or a
/// panic), with its output detached so nothing waits for it.
fn watchdog(local: &Path, dir: &Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    Command::new("sh")
        .args([
            "-c",
            r#"while kill -0 "$1" 2>/dev/null; do sleep 1; done; "$2" local down >/dev/null 2>&1; rm -rf "$3""#,
            "watchdog",
        ])
        .arg(std::process::id().to_string())
        .arg(env!("CARGO_BIN_EXE_platform-capstone"))
        .arg(dir)
        .env("PLATFORM_CAPSTONE_LOCAL", local)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .spawn()
        .map(|_| ())
        .map_err(|e| format!("cannot start the stack's watchdog: {e}"))
}

impl Shared {
    fn reset(&self) {
        self.stack
            .up(&routes(), PortChoice::Auto, &mut |_| {})
            .expect("the shared stack comes back up");
        let podman = self.stack.podman().expect("podman");
        podman
            .remove_all_pods()
            .expect("the last test's pods are removed");
        podman.write_scrape_targets().expect("scrape targets");
    }
}

/// A test's world: its dir, local stack, bare remote, daemon config, allowed_signers.
pub struct World {
    pub dir: PathBuf,
    pub local: PathBuf,
    pub remote: PathBuf,
    pub config: PathBuf,
    pub allowed: PathBuf,
}

/// The keys a world's config trusts.
pub struct Keys {
    /// Cosign private key (PEM) signing the demo images, and the key.
    pub cosign_private: String,
    pub cosign: p256::ecdsa::SigningKey,
}

impl World {
    /// A config repo under `dir` from the blueprint, configured for the demo
    /// on `registry` (release key trusted, daemon key `signing_key`, approver
    /// `approver_key` for alice@example.com, quick analysis, `extra` edits
    /// per branch), pushed to `dir/remote.git`, and `dir/daemon.toml` with
    /// `daemon_extra` lines before `[identity]`.
    pub fn create(
        dir: &Path,
        local: &Path,
        registry: &str,
        extra: &dyn Fn(&Path, &str),
        daemon_extra: &str,
    ) -> (World, Keys) {
        let daemon_line = keygen(dir, "signing_key", "daemon@example.com", "git");
        let approver_line = keygen(
            dir,
            "approver_key",
            "alice@example.com",
            "platform-capstone-approval",
        );
        // The platform team's key: signs the demo configuration (a policy
        // change) on every branch; the daemon's key signs only its own
        // mechanical commits and never vouches for policy.
        let platform_line = keygen(dir, "platform_key", "platform@example.com", "git");
        let allowed = dir.join("allowed_signers");
        std::fs::write(&allowed, format!("{daemon_line}\n{platform_line}\n")).expect("write");
        std::fs::write(dir.join("policy_signers"), format!("{platform_line}\n")).expect("write");
        let (cosign_private, cosign_public) =
            platform_capstone::gates::cosign::generate_key_pair().expect("cosign");
        let cosign =
            platform_capstone::gates::cosign::load_signing_key(&cosign_private).expect("key");
        let remote = dir.join("remote.git");
        let w = World {
            dir: dir.to_path_buf(),
            local: local.to_path_buf(),
            remote: remote.clone(),
            config: dir.join("daemon.toml"),
            allowed,
        };
        let (code, _) = w.run(&[
            "init",
            "config",
            "--remote",
            &format!("file://{}", remote.display()),
            "--signing-key",
            "signing_key",
        ]);
        assert_eq!(code, Some(0));
        configure(
            &dir.join("config"),
            &dir.join("platform_key"),
            registry,
            &cosign_public,
            &daemon_line,
            &approver_line,
            extra,
        );
        std::fs::write(
            &w.config,
            format!(
                "remote = \"file://{}\"\ncache_dir = \"{}\"\nstate_dir = \"{}\"\nsigning_key = \"{}\"\nscrape_settle = \"1500ms\"\n{daemon_extra}[identity]\nname = \"platform-capstone\"\nemail = \"daemon@example.com\"\n{}",
                remote.display(),
                dir.join("cache").display(),
                dir.join("state").display(),
                dir.join("signing_key").display(),
                trust_section(dir)
            ),
        )
        .expect("daemon.toml");
        (
            w,
            Keys {
                cosign_private,
                cosign,
            },
        )
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_platform-capstone"));
        c.current_dir(&self.dir)
            .args(args)
            .env("PLATFORM_CAPSTONE_LOCAL", &self.local)
            .env_remove("PLATFORM_CAPSTONE_CRASH_AT")
            .env_remove("RUST_LOG");
        c
    }

    pub fn run(&self, args: &[&str]) -> (Option<i32>, String) {
        let o: Output = self.cmd(args).output().expect("run platform-capstone");
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        eprintln!(
            "$ platform-capstone {}\n{out}{}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
        (o.status.code(), out)
    }

    pub fn release(&self, extra: &[&str]) -> (Option<i32>, String) {
        let mut args = vec!["release", "--config", "daemon.toml"];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    pub fn log(&self, branch: &str) -> Vec<String> {
        git(&self.remote, &["log", "--format=%H %s", branch])
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn head(&self, branch: &str) -> String {
        git(&self.remote, &["rev-parse", branch])
    }

    pub fn verify(&self, commit: &str) -> bool {
        super::git_cmd(
            &self.remote,
            &[
                "-c",
                "gpg.format=ssh",
                "-c",
                &format!("gpg.ssh.allowedSignersFile={}", self.allowed.display()),
                "verify-commit",
                commit,
            ],
        )
        .status()
        .expect("git verify-commit")
        .success()
    }

    /// An operator key `dir/<key>` for `principal`, pinned as the config's
    /// `trust.operators` (who may roll back by command).
    pub fn pin_operator(&self, key: &str, principal: &str) {
        let line = keygen(&self.dir, key, principal, "platform-capstone-rollback");
        let file = self.dir.join("operators");
        std::fs::write(&file, format!("{line}\n")).expect("operators");
        let mut cfg = std::fs::read_to_string(&self.config).expect("config");
        // `[trust]` is the config's last table.
        cfg.push_str(&format!("operators = \"{}\"\n", file.display()));
        std::fs::write(&self.config, cfg).expect("config");
    }

    pub fn release_id(out: &str) -> String {
        out.split_whitespace()
            .find(|w| w.starts_with("rel-"))
            .map(|w| w.trim_end_matches([';', ',', ')', '`']).to_string())
            .expect("a release id in the output")
    }
}

/// The `[trust]` table of a world's daemon config: the blueprint's envs,
/// heads signed by the daemon or the platform key, policy by the platform.
pub fn trust_section(dir: &Path) -> String {
    format!(
        "[trust]\nenvs = [\"dev\", \"staging\", \"prod\"]\nallowed_signers = \"{}\"\npolicy_signers = \"{}\"\n",
        dir.join("allowed_signers").display(),
        dir.join("policy_signers").display()
    )
}

/// `git commit` signed with the SSH key at `key`, as a platform engineer
/// with commit signing set up would.
pub fn signed_commit(work: &Path, key: &Path, args: &[&str]) {
    let signing = format!("user.signingkey={}", key.display());
    let mut all = vec!["-c", "gpg.format=ssh", "-c", &signing, "commit", "-S"];
    all.extend_from_slice(args);
    git(work, &all);
}

pub fn keygen(dir: &Path, name: &str, principal: &str, namespace: &str) -> String {
    let key = dir.join(name);
    let public = platform_capstone::signing::generate_key(&key, principal).expect("keygen");
    platform_capstone::signing::allowed_signers_line(principal, namespace, &public).expect("line")
}

/// The demo configuration on every branch: the release key trusted, the
/// daemon and an approver known, quick analysis (canary 10 % then 100 %,
/// one 1 s interval each, no bake), the registry's port, and staging's
/// promotion window closed.
pub fn configure(
    work: &Path,
    platform_key: &Path,
    registry: &str,
    cosign_pub: &str,
    daemon: &str,
    approver: &str,
    extra: &dyn Fn(&Path, &str),
) {
    for branch in ["main", "env/dev", "env/staging", "env/prod"] {
        git(work, &["checkout", "-q", branch]);
        std::fs::create_dir_all(work.join("policies/keys")).expect("mkdir");
        std::fs::write(work.join("policies/keys/release-ci.pub"), cosign_pub).expect("write");
        let trust = work.join("policies/trust.toml");
        let mut t = std::fs::read_to_string(&trust).expect("trust");
        t.push_str("\n[[keys]]\nname = \"release-ci\"\npath = \"keys/release-ci.pub\"\n");
        std::fs::write(&trust, t).expect("write");
        for (file, line) in [
            ("policies/allowed_signers", daemon),
            ("policies/approvers", approver),
        ] {
            let p = work.join(file);
            let mut t = std::fs::read_to_string(&p).expect("read");
            t.push_str(&format!("{line}\n"));
            std::fs::write(&p, t).expect("write");
        }
        for entry in walk(work) {
            let text = std::fs::read_to_string(&entry).unwrap_or_default();
            if text.contains("localhost:5000") {
                std::fs::write(&entry, text.replace("localhost:5000", registry)).expect("write");
            }
        }
        for env in ["dev", "staging", "prod"] {
            let p = work.join(format!("envs/{env}.toml"));
            let mut out = String::new();
            let mut in_windows = false;
            for line in std::fs::read_to_string(&p).expect("env").lines() {
                let l = if in_windows {
                    if line.trim() == "]" {
                        in_windows = false;
                    }
                    continue;
                } else if line.starts_with("steps = [") {
                    // Two canary steps: every interval costs the suite
                    // 2.5 s (1 s of traffic, 1.5 s of scrape settle).
                    "steps = [10, 100]".to_string()
                } else if line.starts_with("analysis_interval") {
                    "analysis_interval = \"1s\"".to_string()
                } else if line.starts_with("intervals_per_step") {
                    "intervals_per_step = 1".to_string()
                } else if line.starts_with("min_requests") {
                    "min_requests = 5".to_string()
                } else if line.starts_with("bake") {
                    "bake = \"0s\"".to_string()
                } else if line.starts_with("windows = [") {
                    in_windows = !line.trim_end().ends_with(']');
                    if env == "staging" {
                        // Opens on January 1st only: closed today.
                        "windows = [{ schedule = \"0 0 1 1 *\", duration = \"1m\" }]".to_string()
                    } else {
                        "windows = []".to_string()
                    }
                } else {
                    line.to_string()
                };
                out.push_str(&l);
                out.push('\n');
            }
            std::fs::write(&p, out).expect("write");
        }
        extra(work, branch);
        git(work, &["add", "-A"]);
        signed_commit(
            work,
            platform_key,
            &[
                "-q",
                "-m",
                "demo: trust the release key, daemon and approver; quick analysis",
            ],
        );
    }
    git(
        work,
        &[
            "push",
            "-q",
            "origin",
            "main",
            "env/dev",
            "env/staging",
            "env/prod",
        ],
    );
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).expect("readdir").flatten() {
        let p = e.path();
        if p.file_name().is_some_and(|n| n == ".git") {
            continue;
        }
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

pub fn live_image(stack: &Stack, ns: &str) -> String {
    let podman = stack.podman().expect("podman");
    let live = podman.live(ns).expect("live");
    live.iter()
        .find(|o| o.name == "demo")
        .and_then(|o| {
            o.object["spec"]["template"]["spec"]["containers"][0]["image"]
                .as_str()
                .map(str::to_string)
        })
        .unwrap_or_default()
}
