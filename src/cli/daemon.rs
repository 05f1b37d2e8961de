//! `platform-capstone daemon`: the long-running reconciler.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Runs the reconciler until SIGTERM: one fetch of every env/* branch per \
poll_interval (and at once on a webhook push event or, for file:// remotes, a filesystem \
change), one worker per environment running the release engine on every new head (gates, \
canary, bake, signed promotion; rollback and signed revert on failure), promotion windows \
on cron schedules, and an HTTP server on `listen`: /healthz, /readyz, /metrics, \
/api/v1/envs, /api/v1/releases[/ID], POST /api/v1/webhook (HMAC-SHA256), POST \
/api/v1/reconcile (bearer token).\n\n\
Logs are JSON (or text) on stderr, level from the config or RUST_LOG. Under systemd \
(Type=notify) it reports READY=1 and pings the watchdog. SIGHUP reloads the config when the \
new one is valid (and keeps the old one, saying why, when not); SIGTERM parks running \
rollouts with all traffic on stable and exits; a restart resumes them."
)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigArg,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    crate::daemon::run(&a.config.path()?)?;
    Ok(ExitCode::SUCCESS)
}
