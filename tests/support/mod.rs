//! Shared fixtures: a config repo made from the blueprint, pushed to a bare
//! remote, and signing keys; plus a git CLI helper with isolated config.

#![allow(dead_code)]

pub mod sigstore;
pub mod world;

use platform_capstone::signing::{self, Identity, Signer};
use platform_capstone::source::Git2Repo;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Real-stack tests take turns: they judge real traffic in short analysis
/// intervals, and two at once on a 2-core CI machine starve each other's
/// intervals into "inconclusive". Hold the guard for the test (the
/// release, drift and drill tests take it with the shared stack:
/// `world::shared_stack`; the local-stack test brings up its own).
pub fn real_stack() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the stock git CLI in `dir` with no user/system config; panics with
/// stderr on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = git_cmd(dir, args).output().expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} failed in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A git command with isolated config, for tests that check the exit code.
pub fn git_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test Engineer")
        .env("GIT_AUTHOR_EMAIL", "eng@example.com")
        .env("GIT_COMMITTER_NAME", "Test Engineer")
        .env("GIT_COMMITTER_EMAIL", "eng@example.com");
    c
}

/// The blueprint written to a fresh temp dir (no git).
pub fn blueprint_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    platform_capstone::blueprint::write_files(dir.path()).expect("write blueprint");
    dir
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// The bare remote every writer pushes to.
    pub remote: PathBuf,
    /// The signing key of the "daemon".
    pub key: PathBuf,
    /// The platform team's key: signed the initial commit (policy signer).
    pub platform_key: PathBuf,
    /// allowed_signers trusting `key` and `platform_key` for git.
    pub allowed_signers: PathBuf,
    /// allowed_signers of the policy signers: `platform_key` only.
    pub policy_signers: PathBuf,
}

pub fn platform_identity() -> Identity {
    Identity {
        name: "Platform Team".into(),
        email: "platform@example.com".into(),
    }
}

pub fn identity() -> Identity {
    Identity {
        name: "platform-capstone".into(),
        email: "daemon@example.com".into(),
    }
}

impl Fixture {
    /// Blueprint repo with main + env/* at one signed commit, pushed to a bare remote.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("signing_key");
        let public = signing::generate_key(&key, "test").expect("keygen");
        let line =
            signing::allowed_signers_line(&identity().email, signing::GIT_NAMESPACE, &public)
                .expect("line");
        let platform_key = dir.path().join("platform_key");
        let platform = signing::generate_key(&platform_key, "platform").expect("keygen");
        let platform_line = signing::allowed_signers_line(
            &platform_identity().email,
            signing::GIT_NAMESPACE,
            &platform,
        )
        .expect("line");
        let allowed_signers = dir.path().join("allowed_signers");
        std::fs::write(&allowed_signers, format!("{line}\n{platform_line}\n")).expect("write");
        let policy_signers = dir.path().join("policy_signers");
        std::fs::write(&policy_signers, format!("{platform_line}\n")).expect("write");
        let remote = dir.path().join("remote.git");
        let signer = Signer::load(&platform_key, platform_identity()).expect("load key");
        platform_capstone::blueprint::init(
            &dir.path().join("work"),
            Some(&format!("file://{}", remote.display())),
            Some(&signer),
            &platform_identity(),
        )
        .expect("init");
        Self {
            dir,
            remote,
            key,
            platform_key,
            allowed_signers,
            policy_signers,
        }
    }

    /// The `[trust]` table of a daemon config for this fixture: the
    /// blueprint's envs; heads by the daemon or the platform, policy by
    /// the platform.
    pub fn trust_section(&self) -> String {
        format!(
            "[trust]\nenvs = [\"dev\", \"staging\", \"prod\"]\nallowed_signers = \"{}\"\npolicy_signers = \"{}\"\n",
            self.allowed_signers.display(),
            self.policy_signers.display()
        )
    }

    /// Writes `daemon.toml` for this fixture (remote, cache, state, the
    /// daemon's key and identity, `extra` top-level lines, and the trust
    /// root with `heads` — default `allowed_signers` — as head signers).
    pub fn daemon_config(&self, extra: &str, heads: Option<&Path>) -> PathBuf {
        let path = self.path("daemon.toml");
        let trust = match heads {
            None => self.trust_section(),
            Some(h) => self.trust_section().replace(
                &self.allowed_signers.display().to_string(),
                &h.display().to_string(),
            ),
        };
        std::fs::write(
            &path,
            format!(
                "remote = \"{}\"\ncache_dir = \"{}\"\nstate_dir = \"{}\"\nsigning_key = \"{}\"\n{extra}[identity]\nname = \"platform-capstone\"\nemail = \"daemon@example.com\"\n{trust}",
                self.url(),
                self.path("cache").display(),
                self.path("state").display(),
                self.key.display(),
            ),
        )
        .expect("daemon.toml");
        path
    }

    /// The platform team's signer (a policy signer).
    pub fn platform(&self) -> Signer {
        Signer::load(&self.platform_key, platform_identity()).expect("load key")
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.remote.display())
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn signer(&self) -> Signer {
        Signer::load(&self.key, identity()).expect("load key")
    }

    /// A writer with its own cache (as a separate daemon would have).
    pub fn writer(&self, cache: &str) -> Git2Repo {
        Git2Repo::open_remote(&self.url(), &self.path(cache), None)
            .expect("open remote")
            .with_signer(self.signer())
    }

    /// `git rev-parse` on the bare remote.
    pub fn remote_rev(&self, rev: &str) -> String {
        git(&self.remote, &["rev-parse", rev])
    }

    /// A fresh clone of the remote with the notes ref fetched too.
    pub fn fresh_clone(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        git(
            self.dir.path(),
            &["clone", "-q", &self.url(), path.to_str().expect("utf8")],
        );
        git(
            &path,
            &["fetch", "-q", "origin", "refs/notes/*:refs/notes/*"],
        );
        path
    }
}

/// The static demo binary, built once (release, crt-static) into its own
/// target dir so it never waits on the lock of the build running the tests.
pub fn demo_binary() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target_dir = root.join("target/demo-static");
        let status = Command::new(env!("CARGO"))
            .current_dir(root)
            .args([
                "build",
                "--release",
                "--locked",
                "-p",
                "platform-capstone-demo",
                "--target",
                "x86_64-unknown-linux-gnu",
                "--target-dir",
            ])
            .arg(&target_dir)
            .env("RUSTFLAGS", "-C target-feature=+crt-static")
            // Built as `scripts/lib/deps.sh` builds it (CI lints through a
            // workspace wrapper; the demo build it made must be reused).
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CLIPPY_ARGS")
            .status()
            .expect("run cargo build for the demo");
        assert!(status.success(), "building the static demo binary failed");
        target_dir.join("x86_64-unknown-linux-gnu/release/demo")
    })
    .clone()
}

/// The blueprint's dev overlay rendered; with `image`, every workload's
/// first container runs it.
pub fn blueprint_dev(image: Option<&str>) -> Vec<yaml_serde::Value> {
    let dir = blueprint_dir();
    let reader = platform_capstone::source::DirReader::open(dir.path()).expect("open");
    let rendered = platform_capstone::render::render(&reader, "overlays/dev").expect("render");
    rendered
        .objects
        .into_iter()
        .map(|mut o| {
            if let (Some(image), Some(c)) = (
                image,
                o.get_mut("spec")
                    .and_then(|s| s.get_mut("template"))
                    .and_then(|t| t.get_mut("spec"))
                    .and_then(|s| s.get_mut("containers"))
                    .and_then(|c| c.get_mut(0)),
            ) {
                c["image"] = image.into();
            }
            o
        })
        .collect()
}

/// The Go interop helper (`tests/go/interop`: cosign's key encryption from
/// go-securesystemslib, go-containerregistry's registry with the referrers
/// API): `$PC_INTEROP` as `scripts/test` built it, else built (once, into
/// the tools cache) by `scripts/lib/gotools.sh`.
pub fn interop() -> PathBuf {
    static BIN: std::sync::OnceLock<Result<PathBuf, String>> = std::sync::OnceLock::new();
    let built = BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("PC_INTEROP") {
            return Ok(PathBuf::from(p));
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let out = Command::new("bash")
            .arg("-c")
            .arg("source scripts/lib/gotools.sh && pc_interop")
            .current_dir(root)
            .output()
            .map_err(|e| format!("cannot run bash: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
    });
    match built {
        Ok(p) => p.clone(),
        Err(e) => {
            panic!("the Go interop helper did not build (needs Go and the module proxy): {e}")
        }
    }
}
