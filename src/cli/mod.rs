//! The command line. One file per subcommand; each parses its own flags,
//! builds the adapters it needs, calls the library and prints. Errors are
//! printed as one line naming the file, field and fix; exit code 1 for a
//! failed command, 2 for bad usage (clap).

mod check;
mod daemon;
mod diff;
mod drift;
mod drill;
mod init;
mod keygen;
mod local;
mod release;
mod render;
mod rollback;
mod sign;
mod status;
mod validate;

use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "platform-capstone",
    version,
    about = "Git-native GitOps reconciler: env branches in, gated canary releases out",
    long_about = "platform-capstone watches a config repository with one branch per \
environment (env/dev, env/staging, env/prod), renders each environment's overlay, \
enforces signature, vulnerability and admission gates, rolls changes out as canaries \
with metric health gates, promotes image digests by signed commits to the next \
environment's branch, and reverts on failure.\n\n\
Start with `platform-capstone init DIR` for a new config repo, `platform-capstone \
validate --repo DIR` to check one, and `platform-capstone status` to see what each \
environment pins."
)]
pub struct Cli {
    /// Log verbosity on stderr (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a config repo: every env file, the promotion chain, the signer files.
    Validate(validate::Args),
    /// Create a new config repo from the reference blueprint.
    Init(init::Args),
    /// Show each environment's branch head, its signature and the pinned image digests.
    Status(status::Args),
    /// Generate an Ed25519 SSH key pair for signing commits and approvals.
    Keygen(keygen::Args),
    /// Render an overlay into plain manifests (kubectl kustomize compatible).
    Render(render::Args),
    /// Unified diff of rendered manifests between revisions or environments (Secrets masked).
    Diff(diff::Args),
    /// Run the release gates (signature, vulnerability, admission) for an environment.
    Check(check::Args),
    /// Sign an image digest into the registry (cosign-compatible, keyed).
    Sign(sign::SignArgs),
    /// Attest a predicate (e.g. a vulnerability report) about an image digest.
    Attest(sign::AttestArgs),
    Local(local::Args),
    Release(release::Args),
    Approve(release::ApproveArgs),
    /// Roll an environment back at once to a good release (signed by an operator; works while git is down).
    Rollback(rollback::Args),
    Audit(release::AuditArgs),
    /// Config and SLO drift per environment: a report, or heal with --act.
    Drift(drift::Args),
    /// Rehearse a failure for real (rollback, bad signature, drift, outages, crash) and time recovery.
    Drill(drill::Args),
    Daemon(daemon::Args),
}

/// Where an env's target and metrics are, for the commands that reach them.
#[derive(Debug, clap::Args)]
pub struct Targets {
    /// The local stack's state dir (podman envs) [default: the daemon config's
    /// `local_stack`, else .platform-capstone/local].
    #[arg(long, value_name = "DIR", env = "PLATFORM_CAPSTONE_LOCAL")]
    local: Option<PathBuf>,
    /// Prometheus for kubernetes envs [default: the daemon config's `prometheus`].
    #[arg(long, value_name = "URL")]
    prometheus: Option<String>,
}

impl Targets {
    /// (local stack dir, Prometheus URL): flags, then the config, then defaults.
    pub fn resolve(&self, cfg: &crate::config::DaemonConfig) -> (PathBuf, Option<String>) {
        (
            self.local.clone().unwrap_or_else(|| cfg.local_stack_dir()),
            self.prometheus.clone().or_else(|| cfg.prometheus.clone()),
        )
    }
}

/// Where an operator's signed action (an approval, a rollback) is carried
/// out: from this machine with the daemon config, or by a running daemon.
#[derive(Debug, clap::Args)]
pub struct Via {
    /// The daemon config (to act from this machine, writing to the config
    /// repo yourself).
    #[arg(long, value_name = "FILE", required_unless_present = "daemon")]
    pub config: Option<PathBuf>,
    /// A running daemon's URL (e.g. http://127.0.0.1:8087): post the signed
    /// request there instead (no git push rights needed).
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "config",
        requires = "token_file"
    )]
    pub daemon: Option<String>,
    /// The daemon's API token (a file holding it), with --daemon.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl Via {
    /// POSTs `body` (JSON) to `path` of the daemon (`--daemon`) with the
    /// API token (`--token-file`) within `timeout`: (endpoint, answer body)
    /// of a 2xx answer, else an error naming the endpoint and the answer.
    pub fn post(
        url: &str,
        token_file: &std::path::Path,
        path: &str,
        body: &impl serde::Serialize,
        timeout: std::time::Duration,
    ) -> anyhow::Result<(String, String)> {
        use anyhow::Context;
        let token = std::fs::read_to_string(token_file)
            .with_context(|| format!("--token-file {}", token_file.display()))?;
        let endpoint = format!("{}{path}", url.trim_end_matches('/'));
        let resp = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .build()?
            .post(&endpoint)
            .bearer_auth(token.trim())
            .json(body)
            .send()
            .with_context(|| format!("POST {endpoint}"))?;
        let status = resp.status();
        let text = resp.text().unwrap_or_default();
        if !status.is_success() {
            anyhow::bail!("POST {endpoint}: {status}: {}", text.trim());
        }
        Ok((endpoint, text))
    }
}

/// Output format of commands whose output is data.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable text.
    #[default]
    Text,
    /// JSON on stdout, for scripts.
    Json,
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon sets up its own (JSON) logging from its config.
    if !matches!(cli.command, Command::Daemon(_)) {
        init_logging(cli.verbose);
    }
    crate::source::set_network_timeouts(
        std::time::Duration::from_secs(10),
        std::time::Duration::from_secs(60),
    );
    let result = match cli.command {
        Command::Validate(a) => validate::run(a),
        Command::Init(a) => init::run(a),
        Command::Status(a) => status::run(a),
        Command::Keygen(a) => keygen::run(a),
        Command::Render(a) => render::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Check(a) => check::run(a),
        Command::Sign(a) => sign::run_sign(a),
        Command::Attest(a) => sign::run_attest(a),
        Command::Local(a) => local::run(a),
        Command::Release(a) => release::run(a),
        Command::Approve(a) => release::approve(a),
        Command::Rollback(a) => rollback::run(a),
        Command::Audit(a) => release::audit(a),
        Command::Drift(a) => drift::run(a),
        Command::Drill(a) => drill::run(a),
        Command::Daemon(a) => daemon::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // anyhow's alternate format prints the whole context chain on one line.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Prints JSON to stdout.
fn print_json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    write_stdout(&format!("{}\n", serde_json::to_string_pretty(value)?))
}

/// Writes bulk output; a closed pipe (`| head`) ends output quietly
/// instead of panicking like `print!` would.
fn write_stdout(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
