//! The drills' hands: what a scenario does to the world beyond the ports
//! (build a faulty image, edit live pods behind the tool's back, take git
//! or Prometheus away, run the CLI in a child process killed on purpose,
//! send traffic, let time pass). The scenarios in [`super::run`] decide
//! and check; a [`Lab`] only acts. [`LocalLab`] acts on the local stack
//! (podman, buildah, the registry, the stack's Prometheus); the engine
//! scenarios (tests/engine.rs) give the drills a lab over the in-memory
//! fakes, so every drill's decisions run in milliseconds.

use super::run::{DrillContext, DrillError};
use crate::config::{Env, TargetKind};
use crate::local::Stack;
use crate::local::images::{self, Variant};
use std::path::PathBuf;
use std::time::Duration;

/// The env var the config-drift drill sets on live pods behind the
/// tool's back (its diff must name it).
pub const LIVE_EDIT: (&str, &str) = ("DRILL_EDIT", "1");

/// What a drill does to the world. Every method either does it or says
/// why it cannot here (`DrillError::Precondition`), never pretends.
pub trait Lab {
    /// A demo image tagged `tag` whose process runs with `vars` (the
    /// faults: `FAULT_ERROR_RATIO`, `FAULT_LATENCY_MS`), pushed to the
    /// env's registry and signed and attested with `key`:
    /// `host/repo@sha256:…`.
    fn publish(
        &mut self,
        env: &Env,
        tag: &str,
        vars: &[(String, String)],
        key: &p256::ecdsa::SigningKey,
        say: &mut dyn FnMut(&str),
    ) -> Result<String, DrillError>;

    /// Changes every live pod of `env` behind the tool's back: the
    /// containers get [`LIVE_EDIT`] in their environment.
    fn edit_live(&mut self, env: &Env) -> Result<(), DrillError>;

    /// Makes the config repo unreachable.
    fn take_git_away(&mut self, say: &mut dyn FnMut(&str)) -> Result<(), DrillError>;

    /// Makes it reachable again.
    fn bring_git_back(&mut self) -> Result<(), DrillError>;

    /// Makes sure the metrics provider of `env` can be stopped (called
    /// before anything is built, so a drill that cannot run says so early).
    fn arm_metrics_outage(&mut self, env: &Env) -> Result<(), DrillError>;

    /// Stops the metrics provider at once (kill -9); called mid-analysis.
    fn stop_metrics(&mut self);

    /// Starts it again (the caller then waits until it answers).
    fn start_metrics(&mut self) -> Result<(), DrillError>;

    /// Synthetic traffic to `url` at `rate` requests/s for `window`.
    fn traffic(&mut self, url: &str, rate: u32, window: Duration);

    /// Lets `d` pass (scrapes, rate windows, a poll interval).
    fn pause(&mut self, d: Duration);

    /// Gives back whatever was taken away and not given back yet (a
    /// scenario that ended early): the remote, the metrics provider.
    fn give_back(&mut self) -> Result<(), DrillError>;

    /// This program run with `args` (and `--config`) in a child process;
    /// `crash_at`: killed at that engine crash point.
    fn cli(
        &mut self,
        args: &[&str],
        crash_at: Option<&str>,
    ) -> Result<std::process::Output, DrillError>;
}

/// The lab of the local stack: images built with buildah from the static
/// demo binary, live edits through podman, the `file://` remote renamed
/// away, the stack's Prometheus killed and started again.
pub struct LocalLab<'c> {
    ctx: &'c DrillContext<'c>,
    prometheus: Option<u32>,
    metrics_down: bool,
    /// The remote while it is away: (where it belongs, where it is).
    remote_away: Option<(PathBuf, PathBuf)>,
}

impl<'c> LocalLab<'c> {
    pub fn new(ctx: &'c DrillContext<'c>) -> Self {
        Self {
            ctx,
            prometheus: None,
            metrics_down: false,
            remote_away: None,
        }
    }

    fn stack(&self, env: &Env, what: &str) -> Result<Stack, DrillError> {
        if env.target.kind != TargetKind::Podman {
            return Err(DrillError::Precondition(format!(
                "the {what} drill runs on the local stack (podman envs); {} is {:?}",
                env.name, env.target.kind
            )));
        }
        Stack::new(&self.ctx.local).map_err(DrillError::from)
    }
}

impl Lab for LocalLab<'_> {
    fn publish(
        &mut self,
        env: &Env,
        tag: &str,
        vars: &[(String, String)],
        key: &p256::ecdsa::SigningKey,
        say: &mut dyn FnMut(&str),
    ) -> Result<String, DrillError> {
        let stack = self.stack(env, "image-building")?;
        let state = stack.load().ok_or_else(|| {
            DrillError::Precondition(
                "the local stack is not up: run `platform-capstone local up`".into(),
            )
        })?;
        let binary = self.ctx.demo_binary.as_ref().ok_or_else(|| {
            DrillError::Precondition("--demo-binary is required to build drill images".into())
        })?;
        let mut env_vars = vec![("VERSION".to_string(), tag.to_string())];
        env_vars.extend(vars.iter().cloned());
        let mut out = images::publish(
            &stack.podman_config(),
            binary,
            &Stack::registry_host(&state),
            &[Variant {
                tag: tag.to_string(),
                env: env_vars,
            }],
            key,
            &mut |l| say(l),
        )
        .map_err(DrillError::Image)?;
        out.pop()
            .map(|p| p.reference)
            .ok_or_else(|| DrillError::Image("nothing was published".into()))
    }

    fn edit_live(&mut self, env: &Env) -> Result<(), DrillError> {
        let podman = self.stack(env, "config-drift")?.podman()?;
        super::tamper::tamper(&podman, &env.target.namespace, &|vars| {
            vars.push((LIVE_EDIT.0.into(), LIVE_EDIT.1.into()));
        })?;
        Ok(())
    }

    fn take_git_away(&mut self, say: &mut dyn FnMut(&str)) -> Result<(), DrillError> {
        let Some(path) = crate::source::local_path_of(&self.ctx.cfg.remote) else {
            return Err(DrillError::Precondition(format!(
                "the git-outage drill takes a file:// remote away by renaming it; {} is not one (block it at the network instead)",
                self.ctx.cfg.remote
            )));
        };
        say(&format!("taking the remote away ({})", path.display()));
        let aside = path.with_extension("drill-away");
        rename(&path, &aside)?;
        self.remote_away = Some((path, aside));
        Ok(())
    }

    fn bring_git_back(&mut self) -> Result<(), DrillError> {
        match self.remote_away.take() {
            Some((path, aside)) => rename(&aside, &path),
            None => Ok(()),
        }
    }

    fn arm_metrics_outage(&mut self, env: &Env) -> Result<(), DrillError> {
        let pid = self
            .stack(env, "metrics-outage")?
            .load()
            .and_then(|s| s.pids.get("prometheus").copied())
            .ok_or_else(|| {
                DrillError::Precondition("the local stack's Prometheus is not running".into())
            })?;
        self.prometheus = Some(pid);
        Ok(())
    }

    fn stop_metrics(&mut self) {
        if let Some(pid) = self.prometheus {
            self.metrics_down = true;
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
        }
    }

    fn start_metrics(&mut self) -> Result<(), DrillError> {
        self.metrics_down = false;
        Stack::new(&self.ctx.local)?
            .up(&[], crate::local::PortChoice::Auto, &mut |_| {})
            .map(drop)
            .map_err(DrillError::Local)
    }

    fn traffic(&mut self, url: &str, rate: u32, window: Duration) {
        let _ = crate::adapters::traffic::run(url, rate, window, None);
    }

    fn pause(&mut self, d: Duration) {
        std::thread::sleep(d);
    }

    fn give_back(&mut self) -> Result<(), DrillError> {
        self.bring_git_back()?;
        if self.metrics_down {
            self.start_metrics()?;
        }
        Ok(())
    }

    fn cli(
        &mut self,
        args: &[&str],
        crash_at: Option<&str>,
    ) -> Result<std::process::Output, DrillError> {
        let mut c = std::process::Command::new(&self.ctx.exe);
        c.args(args)
            .arg("--config")
            .arg(self.ctx.config_file)
            .env("PLATFORM_CAPSTONE_LOCAL", &self.ctx.local)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        match crash_at {
            Some(p) => c.env("PLATFORM_CAPSTONE_CRASH_AT", p),
            None => c.env_remove("PLATFORM_CAPSTONE_CRASH_AT"),
        };
        c.output().map_err(|source| DrillError::Io {
            path: self.ctx.exe.clone(),
            source,
        })
    }
}

/// Renames `from` to `to`, the error naming both.
pub fn rename(from: &std::path::Path, to: &std::path::Path) -> Result<(), DrillError> {
    std::fs::rename(from, to).map_err(|source| DrillError::Io {
        path: from.to_path_buf(),
        source,
    })
}
