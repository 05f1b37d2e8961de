//! The command line. One file per subcommand; each parses its own flags,
//! builds the adapters it needs, calls the library and prints. Errors are
//! printed once, as one line naming the file, field and fix. Exit codes are
//! the same for every command ([`exit`], docs/cli.md): 0 ok, 1 a difference
//! / drift / failed check, 2 bad usage, 3 waiting, 4 a runtime error,
//! 5 could not be measured.

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
mod verify_bundle;
mod windows;

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
environment pins.",
    after_long_help = "Exit codes (every command): 0 ok / no difference; 1 a difference, drift, a \
failed check or release, a refused request; 2 usage error; 3 waiting (a promotion window, an \
approval, a rollback queued until git answers); 4 runtime error (git, network, disk, a service \
down); 5 not measured (no metrics, live state unreadable). See docs/cli.md.\n\n\
Environment: PLATFORM_CAPSTONE_CONFIG (the daemon config when --config is not given; default \
/etc/platform-capstone/platform-capstone.toml), PLATFORM_CAPSTONE_LOCAL (the local stack's state \
dir), RUST_LOG (log filter)."
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
    #[command(about = "Check a config repo: every env file, the promotion chain, the signer files")]
    Validate(validate::Args),
    #[command(about = "Create a new config repo from the reference blueprint")]
    Init(init::Args),
    #[command(
        about = "Show each environment's branch head, its signature and the pinned image digests"
    )]
    Status(status::Args),
    #[command(about = "Generate an Ed25519 SSH key pair for signing commits and approvals")]
    Keygen(keygen::Args),
    #[command(about = "Render an overlay into plain manifests (kubectl kustomize compatible)")]
    Render(render::Args),
    #[command(
        about = "Unified diff of rendered manifests between revisions or environments (Secrets masked)"
    )]
    Diff(diff::Args),
    #[command(
        about = "Run the release gates (signature, vulnerability, admission) for an environment"
    )]
    Check(check::Args),
    #[command(about = "Sign an image digest into the registry (cosign-compatible, keyed)")]
    Sign(sign::SignArgs),
    #[command(
        about = "Verify a Sigstore bundle (keyed or keyless) over a file or a digest, offline"
    )]
    VerifyBundle(verify_bundle::Args),
    #[command(about = "Attest a predicate (e.g. a vulnerability report) about an image digest")]
    Attest(sign::AttestArgs),
    #[command(
        about = "Run the local stack (registry, HAProxy, Prometheus, podman) on loopback: up, down, status"
    )]
    Local(local::Args),
    #[command(
        about = "Release a version: gates, canary, bake and signed promotion down the env chain"
    )]
    Release(release::Args),
    #[command(about = "Sign an approval of a release into an environment that requires one")]
    Approve(release::ApproveArgs),
    #[command(
        about = "Roll an environment back at once to a good release (signed by an operator; works while git is down)"
    )]
    Rollback(rollback::Args),
    #[command(
        about = "Read the audit trail: list releases, show one release's every check and step"
    )]
    Audit(release::AuditArgs),
    #[command(about = "Config and SLO drift per environment: a report, or heal with --act")]
    Drift(drift::Args),
    #[command(
        about = "Rehearse a failure for real (rollback, bad signature, drift, outages, crash) and time recovery"
    )]
    Drill(drill::Args),
    #[command(
        about = "When promotions into an environment may land: its allow/deny windows and next openings"
    )]
    Windows(windows::Args),
    #[command(
        about = "Run the reconciler: watch env branches, release, promote, detect drift, serve HTTP"
    )]
    Daemon(daemon::Args),
    #[command(about = "Print a shell completion script (bash, zsh, fish, elvish, powershell)")]
    Completions(CompletionsArgs),
    #[command(about = "Write man pages for every command into a directory")]
    Man(ManArgs),
}

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Prints the completion script for SHELL on stdout. Install, e.g.:\n  \
bash: platform-capstone completions bash > /etc/bash_completion.d/platform-capstone\n  \
zsh:  platform-capstone completions zsh > \"${fpath[1]}/_platform-capstone\"\n  \
fish: platform-capstone completions fish > ~/.config/fish/completions/platform-capstone.fish"
)]
pub struct CompletionsArgs {
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Debug, clap::Args)]
#[command(long_about = "Writes platform-capstone.1 and one page per command \
(platform-capstone-release.1, …) into DIR, from the same text as --help. Read one with \
`man -l DIR/platform-capstone-release.1`, or install them under /usr/local/share/man/man1.")]
pub struct ManArgs {
    /// Directory to write the pages into (created if missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
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

/// The daemon config file, for commands that need it.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// The daemon config file (remote, cache and state dirs, signing key,
    /// trust) [default: $PLATFORM_CAPSTONE_CONFIG, else
    /// /etc/platform-capstone/platform-capstone.toml].
    #[arg(long = "config", value_name = "FILE", env = "PLATFORM_CAPSTONE_CONFIG")]
    file: Option<PathBuf>,
}

impl ConfigArg {
    /// The file: the flag, the environment, or the default path.
    pub fn path(&self) -> anyhow::Result<PathBuf> {
        config_path(self.file.as_deref())
    }
}

/// Where an operator's signed action (an approval, a rollback) is carried
/// out: from this machine with the daemon config, or by a running daemon.
#[derive(Debug, clap::Args)]
pub struct Via {
    /// The daemon config (to act from this machine, writing to the config
    /// repo yourself) [default: $PLATFORM_CAPSTONE_CONFIG, else
    /// /etc/platform-capstone/platform-capstone.toml].
    #[arg(long, value_name = "FILE", env = "PLATFORM_CAPSTONE_CONFIG")]
    pub config: Option<PathBuf>,
    /// A running daemon's URL (e.g. http://127.0.0.1:8087): post the signed
    /// request there instead (no git push rights needed; wins over --config).
    #[arg(long, value_name = "URL", requires = "token_file")]
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
    #[value(alias = "markdown")]
    Text,
    /// JSON on stdout, for scripts.
    Json,
    /// YAML on stdout (the same document as JSON).
    Yaml,
}

impl Output {
    /// JSON or YAML: a document for a program, not lines for a person.
    pub fn is_data(self) -> bool {
        self != Output::Text
    }
}

/// Exit codes, the same for every command (docs/cli.md).
pub mod exit {
    /// Done; no difference, nothing drifted, every check passed.
    pub const OK: u8 = 0;
    /// Done, and the answer is "no": a difference, drift, a failed check or
    /// gate, a failed or aborted release, invalid config, a refused push.
    pub const NO: u8 = 1;
    /// The command line was wrong (clap's code too).
    pub const USAGE: u8 = 2;
    /// Waiting on something that is not an error: a promotion window, an
    /// approval, a rollback queued until git answers.
    pub const WAITING: u8 = 3;
    /// The command could not do its job: git, network, disk, a service down.
    pub const ERROR: u8 = 4;
    /// It ran, but part of the answer could not be measured (no metrics,
    /// live state unreadable) and nothing else was found.
    pub const UNKNOWN: u8 = 5;
}

/// A mistake in the command line found after parsing (two flags that do
/// not go together, a value of the wrong shape): exit 2, like clap's own.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// A usage error, for `Err(usage(..))?` and `.map_err(usage)`.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// The daemon config file: `--config`, else `$PLATFORM_CAPSTONE_CONFIG`
/// (clap fills it), else the default path when it exists.
pub const DEFAULT_CONFIG: &str = "/etc/platform-capstone/platform-capstone.toml";

pub fn config_path(flag: Option<&std::path::Path>) -> anyhow::Result<PathBuf> {
    if let Some(p) = flag {
        return Ok(p.to_path_buf());
    }
    let default = PathBuf::from(DEFAULT_CONFIG);
    if default.exists() {
        return Ok(default);
    }
    Err(usage(format!(
        "no daemon config: pass --config FILE, set PLATFORM_CAPSTONE_CONFIG, or create {DEFAULT_CONFIG}"
    )))
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
        Command::VerifyBundle(a) => verify_bundle::run(a),
        Command::Local(a) => local::run(a),
        Command::Release(a) => release::run(a),
        Command::Approve(a) => release::approve(a),
        Command::Rollback(a) => rollback::run(a),
        Command::Audit(a) => release::audit(a),
        Command::Drift(a) => drift::run(a),
        Command::Drill(a) => drill::run(a),
        Command::Windows(a) => windows::run(a),
        Command::Daemon(a) => daemon::run(a),
        Command::Completions(a) => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut out = Vec::new();
            clap_complete::generate(a.shell, &mut cmd, "platform-capstone", &mut out);
            write_stdout(&String::from_utf8_lossy(&out)).map(|()| ExitCode::SUCCESS)
        }
        Command::Man(a) => man(&a.dir),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_line(&e));
            let code = exit_code_of(&e);
            if code == exit::USAGE {
                eprintln!("(see --help)");
            }
            ExitCode::from(code)
        }
    }
}

/// The exit code of a command that ended in `e`: 2 for a usage error, 1
/// for a signed request refused (not an outage: the answer is no), else 4.
fn exit_code_of(e: &anyhow::Error) -> u8 {
    use crate::engine::rollback::RollbackError;
    if e.downcast_ref::<UsageError>().is_some() {
        return exit::USAGE;
    }
    match e.downcast_ref::<RollbackError>() {
        Some(RollbackError::Request(_) | RollbackError::Signature { .. }) => exit::NO,
        _ => exit::ERROR,
    }
}

/// The error and its causes on one line, each cause once: a cause whose
/// words an outer message already carries (`…: {source}` formats) is not
/// repeated, and libgit2's `class=… (n); code=… (n)` suffix is put in words.
pub fn error_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = match cause.downcast_ref::<git2::Error>() {
            Some(g) => crate::source::git_words(g),
            None => cause.to_string(),
        };
        let text = text.trim();
        if text.is_empty() || out.contains(text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(text);
    }
    out
}

/// Man pages for the command and each subcommand (recursively).
fn man(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut written = 0;
    fn walk(
        cmd: &clap::Command,
        name: String,
        dir: &std::path::Path,
        written: &mut usize,
    ) -> anyhow::Result<()> {
        use anyhow::Context;
        let page = cmd
            .clone()
            .name(name.clone())
            .bin_name(name.replace('-', " "));
        let mut buf = Vec::new();
        clap_mangen::Man::new(page).render(&mut buf)?;
        let path = dir.join(format!("{name}.1"));
        crate::fsutil::write_atomic(&path, &buf, Some(0o644))
            .with_context(|| format!("write {}", path.display()))?;
        *written += 1;
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub, format!("{name}-{}", sub.get_name()), dir, written)?;
        }
        Ok(())
    }
    walk(&cmd, "platform-capstone".into(), dir, &mut written)?;
    println!("{written} man pages in {}", dir.display());
    Ok(ExitCode::SUCCESS)
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

/// Prints a document as JSON or YAML (`Text` prints JSON too: callers
/// print their own text).
fn print_data<T: serde::Serialize>(output: Output, value: &T) -> anyhow::Result<()> {
    match output {
        Output::Yaml => write_stdout(&yaml_serde::to_string(value)?),
        Output::Json | Output::Text => {
            write_stdout(&format!("{}\n", serde_json::to_string_pretty(value)?))
        }
    }
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
