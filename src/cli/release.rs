//! `platform-capstone release`, `approve` and `audit`: the release engine
//! driven from the command line (the daemon runs the same engine).

use super::Output;
use crate::adapters::registry::OciRegistry;
use crate::audit::{self, Record};
use crate::config::trust::Trust;
use crate::config::{DaemonConfig, Env};
use crate::engine::store::Phase;
use crate::engine::{EnvOutcome, EnvRelease, Reporter};
use crate::gates::run::Checks;
use crate::model::{Digest, Outcome, pins_from_kustomization};
use crate::ports::Registry as _;
use crate::rollout::IntervalResult;
use crate::signing::{Identity, Signer};
use crate::source::{Git2Repo, GitRepo};
use crate::wiring::{self, Workspace};
use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::exit;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Releases version V: resolves V once to image digests (the tag V of every \
image pinned in the first environment's overlay, in its registry; or, when V is a file, its \
YAML `images: [repo@sha256:…]`), commits that pin (signed) \
to the first environment's branch — or to --env E — and follows the release: gates \
(signature, vulnerability, admission), canary steps with analysis against the env's SLOs, \
bake, then a signed promotion commit into the next environment, and so on down the chain.\n\n\
Prints the checks and each step as they finish; a failing check or an unhealthy step prints \
the reason, restores the last good release, commits a signed revert on that env's branch and \
exits 1. A promotion outside its window or without a needed approval waits: exit 3; run \
`release --resume ID` once it may go on. Infrastructure errors (git, registry, Prometheus, \
target) pause the release and never revert it: exit 4, resume later.\n\n\
Podman envs run on the local stack (`local up`; --local or $PLATFORM_CAPSTONE_LOCAL) with \
synthetic traffic during analysis; kubernetes envs use the kubeconfig context of the env and \
--prometheus."
)]
pub struct Args {
    /// The version to release (an image tag in the registry).
    #[arg(long, required_unless_present = "resume")]
    version: Option<String>,
    /// Start at this env instead of the first of the chain.
    #[arg(long)]
    env: Option<String>,
    /// Continue release ID where it stopped (after a wait, a pause or a crash).
    #[arg(long, value_name = "ID", conflicts_with = "version")]
    resume: Option<String>,
    /// Stop after this env (do not promote further).
    #[arg(long, value_name = "ENV")]
    until: Option<String>,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, clap::Args)]
pub struct Common {
    #[command(flatten)]
    config: super::ConfigArg,
    #[command(flatten)]
    targets: super::Targets,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

/// The release output (docs/operating-model.md), live. It always goes to stdout, in its order: `checks:`
/// and its gates, then `rollout:` and one line per finished step. Interval
/// progress is a spinner when stdout and stderr are both a terminal;
/// otherwise a plain stderr line under the step, after `rollout:`, so it
/// never lands inside the `checks:` block.
struct Printer {
    json: bool,
    spinner: Option<indicatif::ProgressBar>,
    printed_rollout: bool,
}

impl Printer {
    fn new(json: bool) -> Self {
        use std::io::IsTerminal;
        let live = !json && std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        let spinner = live.then(|| {
            let pb = indicatif::ProgressBar::new_spinner();
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        Self {
            json,
            spinner,
            printed_rollout: false,
        }
    }

    fn line(&self, s: &str) {
        if self.json {
            return;
        }
        match &self.spinner {
            Some(pb) => pb.suspend(|| println!("{s}")),
            None => println!("{s}"),
        }
    }

    /// Progress, not result: the spinner's message, or a stderr line.
    fn progress(&self, s: &str) {
        match &self.spinner {
            Some(pb) => pb.set_message(s.trim().to_string()),
            None if !self.json => eprintln!("{s}"),
            None => {}
        }
    }

    fn rollout_header(&mut self) {
        if !self.printed_rollout {
            self.line("rollout:");
            self.printed_rollout = true;
        }
    }
}

fn outcome_word(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Warn => "warn",
        Outcome::Fail => "fail",
    }
}

impl Reporter for Printer {
    fn env(&mut self, env: &str) {
        self.printed_rollout = false;
        self.line(&format!("env: {env}"));
    }
    fn checks(&mut self, checks: &Checks) {
        self.line("checks:");
        for v in checks.verdicts() {
            let reasons: Vec<String> = v
                .findings
                .iter()
                .map(|f| format!("{}: {}", f.subject, f.message))
                .collect();
            if reasons.is_empty() {
                self.line(&format!("  {}: {}", v.gate, outcome_word(v.outcome)));
            } else {
                self.line(&format!(
                    "  {}: {} ({})",
                    v.gate,
                    outcome_word(v.outcome),
                    reasons.join("; ")
                ));
            }
        }
    }
    fn rollout(&mut self) {
        self.rollout_header();
    }
    fn step(&mut self, name: &str, result: &str) {
        self.rollout_header();
        self.line(&format!("  {name}: {result}"));
    }
    fn interval(&mut self, step: &str, n: usize, result: &IntervalResult) {
        let r = match result {
            IntervalResult::Healthy => "healthy".to_string(),
            IntervalResult::Unhealthy(x) => format!("unhealthy: {x}"),
            IntervalResult::Inconclusive(x) => format!("inconclusive: {x}"),
        };
        self.rollout_header();
        self.progress(&format!("    {step}: interval {n}: {r}"));
    }
    fn info(&mut self, line: &str) {
        if self.json {
            return;
        }
        match &self.spinner {
            Some(pb) => pb.suspend(|| eprintln!("  ({line})")),
            None => eprintln!("  ({line})"),
        }
    }
}

/// Commits the digests of `version` to `env`'s overlay: the release's
/// first commit. Returns (commit, images).
fn pin_version(
    repo: &mut Git2Repo,
    env: &Env,
    version: &str,
    release: &str,
) -> anyhow::Result<(String, Vec<String>)> {
    let head = repo.resolve(&env.branch)?;
    let file = format!("{}/kustomization.yaml", env.overlay.trim_end_matches('/'));
    let text = repo.reader(&head)?.read_string(&file)?;
    let pins = pins_from_kustomization(&file, &text)?;
    if pins.is_empty() {
        bail!("{file}: images: no image pinned; nothing to release");
    }
    let repos: Vec<String> = pins.iter().map(|p| p.repository().to_string()).collect();
    let from_file = release_file(version)?;
    let reg = OciRegistry::new(&wiring::plain_http_hosts(&repos))?;
    let mut digests = BTreeMap::new();
    let mut images = Vec::new();
    for p in &pins {
        let d: Digest = match &from_file {
            Some(listed) => listed
                .iter()
                .find_map(|i| {
                    let (repo, _, digest) = crate::render::transform::split_image(i);
                    (repo == p.repository()).then_some(digest).flatten()
                })
                .with_context(|| {
                    format!(
                        "{version}: images: no digest for {}, which {} pins",
                        p.repository(),
                        env.overlay
                    )
                })?
                .parse()
                .map_err(|e| anyhow::anyhow!("{version}: {e}"))?,
            None => {
                let tagged = format!("{}:{version}", p.repository());
                let (_, digest) = reg.manifest(&tagged)?.with_context(|| {
                    format!(
                        "{tagged}: no such tag in the registry; push the version first (or check --version)"
                    )
                })?;
                digest
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{tagged}: {e}"))?
            }
        };
        images.push(format!("{}@{d}", p.repository()));
        digests.insert(p.name.clone(), d);
    }
    let commit = crate::engine::pin::commit_pins(repo, env, &digests, &images, version, release)?;
    Ok((commit, images))
}

/// A release file: YAML `images: [repo@sha256:…, …]`, when `version`
/// names an existing file (`--version ./release-2026-02-11.yaml`).
fn release_file(version: &str) -> anyhow::Result<Option<Vec<String>>> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct ReleaseFile {
        /// Informational; the file's name is the version.
        #[serde(default, rename = "version")]
        _version: Option<String>,
        images: Vec<String>,
    }
    let path = std::path::Path::new(version);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).with_context(|| version.to_string())?;
    let f: ReleaseFile =
        crate::yaml::from_str(version, &text).map_err(|e| anyhow::anyhow!("{version}: {e}"))?;
    for i in &f.images {
        if crate::render::transform::split_image(i).2.is_none() {
            bail!("{version}: images: {i} is not pinned by digest (repo@sha256:…)");
        }
    }
    Ok(Some(f.images))
}

fn result_line(release: &str, outcome: &Result<EnvOutcome, String>) -> (String, u8) {
    match outcome {
        Ok(EnvOutcome::Complete) | Ok(EnvOutcome::Promoted { .. }) => (
            format!("result: release complete with audit trail id {release}"),
            0,
        ),
        Ok(EnvOutcome::Waiting { env, reason }) => (
            format!(
                "result: release waiting before {env} ({reason}); audit trail id {release}; continue with `release --resume {release}`"
            ),
            exit::WAITING,
        ),
        Ok(EnvOutcome::Failed { reason, revert }) => (
            format!(
                "result: release failed ({reason}); rolled back{}; audit trail id {release}",
                revert
                    .as_ref()
                    .map(|c| format!(", reverted in {}", &c[..12.min(c.len())]))
                    .unwrap_or_default()
            ),
            1,
        ),
        Ok(EnvOutcome::Aborted { reason }) => (
            format!("result: release {reason}; audit trail id {release}"),
            1,
        ),
        Ok(EnvOutcome::Inconclusive { reason }) => (
            format!(
                "result: release stopped, inconclusive ({reason}); traffic back on stable, nothing reverted; audit trail id {release}"
            ),
            1,
        ),
        Err(e) => (
            format!(
                "result: release paused ({e}); audit trail id {release}; resume with `release --resume {release}`"
            ),
            exit::ERROR,
        ),
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let config = a.common.config.path()?;
    let cfg = DaemonConfig::load(&config)?;
    let (ws, rewrites) = Workspace::open(&cfg, &config, &cfg.cache_dir, true)?;
    let Workspace {
        mut repo,
        signer,
        store,
        slots,
        ..
    } = ws;
    for r in &rewrites {
        eprintln!(
            "warning: env/{} was rewritten ({} -> {}); accepted as trust.history_rewrite says",
            r.env, r.from, r.to
        );
    }
    let names = &cfg.trust.envs;
    let never = std::sync::atomic::AtomicBool::new(false);
    let actor = format!("{} <{}>", cfg.identity.name, cfg.identity.email);

    // Where to start: a new release's pin commit, or a stopped release's env.
    let (release, mut index, mut commit) = match (&a.resume, &a.version) {
        (Some(id), _) => {
            let mut found = None;
            for (i, e) in names.iter().enumerate() {
                if let Some(s) = store.release(e)?
                    && &s.release == id
                    && (s.phase != Phase::Finished
                        || s.record.outcome == crate::audit::ReleaseOutcome::Paused)
                {
                    found = Some((i, s.commit.clone()));
                    break;
                }
            }
            let (i, c) = found.with_context(|| {
                format!(
                    "{id}: no stopped release with this id in {}",
                    cfg.state_dir.display()
                )
            })?;
            (id.clone(), i, c)
        }
        (None, Some(version)) => {
            let start = match &a.env {
                Some(name) => names.iter().position(|e| e == name).with_context(|| {
                    format!(
                        "--env {name}: not a pinned environment (trust.envs: {})",
                        names.join(", ")
                    )
                })?,
                None => 0,
            };
            // Never commit on top of a head the trust root does not accept.
            let first = wiring::ready_env(&slots, &names[start])?;
            let ids: Vec<String> = audit::all_records(&repo.notes()?)
                .into_iter()
                .map(|r| r.release)
                .collect();
            let release = audit::next_release_id(
                ids.iter().map(String::as_str),
                chrono::Utc::now().date_naive(),
            );
            let (c, _) = pin_version(&mut repo, first, version, &release)?;
            (release, start, c)
        }
        (None, None) => return Err(super::usage("--version V or --resume ID is required")),
    };

    let mut printer = Printer::new(a.common.output.is_data());
    let mut last: Result<EnvOutcome, String>;
    loop {
        // Judged again each env: a promotion moved the next env's head.
        let (slots, _) = wiring::slots(&repo, &cfg.trust, Some(&store), true)?;
        let env = wiring::ready_env(&slots, &names[index])?;
        let until = a.until.as_deref() == Some(env.name.as_str());
        let next = (!until).then(|| wiring::next_of(&slots, env)).flatten();
        let mut trust = wiring::release_trust(&cfg.trust, &signer, &slots, env);
        if until {
            trust.next_blocked = None;
        }
        let (local, prometheus) = a.common.targets.resolve(&cfg);
        let mut ad = wiring::adapters(env, &local, prometheus.as_deref(), cfg.scrape_settle)?;
        ad.attestation_key = wiring::attestation_key(&cfg)?;
        let r = EnvRelease {
            env,
            next,
            commit: &commit,
            release: &release,
            actor: &actor,
            trust: &trust,
        };
        last = wiring::run_env(
            &mut repo,
            &store,
            &signer,
            &ad,
            &r,
            &never,
            &never,
            &mut printer,
        )
        .map_err(|e| e.to_string());
        match &last {
            Ok(EnvOutcome::Promoted { env: to, commit: c }) => {
                index = names
                    .iter()
                    .position(|e| e == to)
                    .context("next env vanished")?;
                commit = match c {
                    Some(c) => c.clone(),
                    None => repo.resolve(&Trust::branch(to))?,
                };
            }
            _ => break,
        }
    }
    if let Some(pb) = &printer.spinner {
        pb.finish_and_clear();
    }
    let (line, code) = result_line(&release, &last);
    if a.common.output.is_data() {
        let records: Vec<Record> = audit::all_records(&repo.notes()?)
            .into_iter()
            .filter(|r| r.release == release)
            .collect();
        super::print_data(
            a.common.output,
            &serde_json::json!({"release": release, "result": line, "records": records}),
        )?;
    } else {
        println!("{line}");
    }
    Ok(ExitCode::from(code))
}

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Approves release ID into environment E: an SSH signature (namespace \
platform-capstone-approval) by your key over the statement, stored in the audit note of the \
commit the release is promoted from. The engine accepts it when the key is in E's \
policies/approvers (allowed_signers format). Then continue the release: \
`release --resume ID`.\n\nWith --daemon URL the approval goes through a running daemon instead (no git push rights \
needed): it is signed here, posted to URL/api/v1/releases/ID/approve with the API token, \
verified by the daemon against E's approvers and stored by it; the waiting release then \
continues on its own."
)]
pub struct ApproveArgs {
    /// The release id, e.g. rel-2026-11-25-01.
    release: String,
    /// The environment the release is waiting to enter.
    #[arg(long)]
    env: String,
    /// Your SSH private key (its public key must be in the env's policies/approvers).
    #[arg(long, value_name = "PATH")]
    key: PathBuf,
    /// Your principal (as in policies/approvers).
    #[arg(long)]
    principal: String,
    #[command(flatten)]
    via: super::Via,
}

pub fn approve(a: ApproveArgs) -> anyhow::Result<ExitCode> {
    let key = Signer::load(
        &a.key,
        Identity {
            name: a.principal.clone(),
            email: a.principal.clone(),
        },
    )?;
    if let (Some(url), Some(token_file)) = (&a.via.daemon, &a.via.token_file) {
        return approve_via_daemon(&a, &key, url, token_file);
    }
    let config = &super::config_path(a.via.config.as_deref())?;
    let cfg = DaemonConfig::load(config)?;
    let mut repo = Workspace::new(&cfg, config, &cfg.cache_dir)?.repo;
    repo.fetch()?;
    let names = &cfg.trust.envs;
    let source = names
        .iter()
        .position(|e| e == &a.env)
        .filter(|&i| i > 0)
        .map(|i| &names[i - 1])
        .with_context(|| {
            format!(
                "--env {}: no pinned environment promotes into it (trust.envs: {})",
                a.env,
                names.join(", ")
            )
        })?;
    let record = audit::all_records(&repo.notes()?)
        .into_iter()
        .find(|r| r.release == a.release && &r.env == source)
        .with_context(|| format!("{}: no record of this release in {source}", a.release))?;
    crate::engine::promote::approve(
        &mut repo,
        &key,
        &record.commits.released,
        &a.release,
        &a.env,
    )?;
    println!(
        "approved {} into {} as {} (note on {}); continue with `release --resume {}`",
        a.release,
        a.env,
        a.principal,
        &record.commits.released[..12],
        a.release
    );
    Ok(ExitCode::SUCCESS)
}

fn approve_via_daemon(
    a: &ApproveArgs,
    key: &Signer,
    url: &str,
    token_file: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let signature = key.sign(
        audit::APPROVAL_NAMESPACE,
        &audit::approval_payload(&a.release, &a.env),
    )?;
    super::Via::post(
        url,
        token_file,
        &format!("/api/v1/releases/{}/approve", a.release),
        &serde_json::json!({ "env": a.env, "signature": signature }),
        std::time::Duration::from_secs(60),
    )?;
    println!(
        "approved {} into {} as {} through {url}; the daemon continues the release",
        a.release, a.env, a.principal
    );
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Reads the audit trail: one record per release and environment, stored as \
git notes (refs/notes/platform-capstone) on the commits released, so any clone of the config \
repo can answer. `audit list` shows releases newest first; `audit show ID` shows every check, \
step, interval measurement, timing, actor and commit of one release."
)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Releases, newest first.
    List {
        #[arg(long)]
        env: Option<String>,
        #[command(flatten)]
        config: super::ConfigArg,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
    /// One release in full.
    Show {
        release: String,
        #[command(flatten)]
        config: super::ConfigArg,
        #[arg(short, long, value_enum, default_value_t)]
        output: Output,
    },
}

fn notes_of(config: &std::path::Path) -> anyhow::Result<Vec<(String, String)>> {
    let cfg = DaemonConfig::load(config)?;
    let mut repo = Git2Repo::open_remote(&cfg.remote, &cfg.cache_dir, cfg.ssh_key.as_deref())?
        .with_deadline(cfg.git_timeout);
    repo.fetch()?;
    Ok(repo.notes()?)
}

pub fn audit(a: AuditArgs) -> anyhow::Result<ExitCode> {
    match a.command {
        AuditCommand::List {
            env,
            config,
            output,
        } => {
            let records: Vec<Record> = audit::all_records(&notes_of(&config.path()?)?)
                .into_iter()
                .filter(|r| env.as_ref().is_none_or(|e| &r.env == e))
                .collect();
            if output.is_data() {
                super::print_data(output, &records)?;
            } else {
                let mut out = format!(
                    "{:<20} {:<10} {:<10} {:<10} {:<25} {}\n",
                    "RELEASE", "ENV", "OUTCOME", "VERSION", "STARTED", "COMMIT"
                );
                for r in &records {
                    out.push_str(&format!(
                        "{:<20} {:<10} {:<10} {:<10} {:<25} {}\n",
                        r.release,
                        r.env,
                        r.outcome,
                        r.version,
                        r.started.format("%Y-%m-%d %H:%M:%S UTC"),
                        &r.commits.released[..12.min(r.commits.released.len())]
                    ));
                }
                super::write_stdout(&out)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Show {
            release,
            config,
            output,
        } => {
            let notes = notes_of(&config.path()?)?;
            let mut records: Vec<Record> = audit::all_records(&notes)
                .into_iter()
                .filter(|r| r.release == release)
                .collect();
            if records.is_empty() {
                bail!("{release}: no such release in the audit trail (see `audit list`)");
            }
            records.sort_by_key(|r| r.started);
            if output.is_data() {
                super::print_data(output, &records)?;
                return Ok(ExitCode::SUCCESS);
            }
            let mut out = String::new();
            for r in &records {
                out.push_str(&format!(
                    "{} in {}: {}{}\n  actor: {}\n  version: {}\n  images: {}\n  started: {}  finished: {}\n",
                    r.release,
                    r.env,
                    r.outcome,
                    r.reason.as_ref().map(|x| format!(" ({x})")).unwrap_or_default(),
                    r.actor,
                    r.version,
                    r.images.join(", "),
                    r.started.to_rfc3339(),
                    r.finished.map(|f| f.to_rfc3339()).unwrap_or_else(|| "-".into())
                ));
                out.push_str("  checks:\n");
                for c in &r.checks {
                    out.push_str(&format!("    {}: {}\n", c.gate, outcome_word(c.outcome)));
                    for f in &c.findings {
                        out.push_str(&format!(
                            "      - {} {}: {}\n",
                            f.rule, f.subject, f.message
                        ));
                    }
                }
                out.push_str("  steps:\n");
                for s in &r.steps {
                    out.push_str(&format!("    {}: {}\n", s.name, s.result));
                    for i in &s.intervals {
                        let m: Vec<String> = i
                            .measurements
                            .iter()
                            .map(|m| {
                                format!(
                                    "{}={}",
                                    m.slo,
                                    m.canary
                                        .map(|v| format!("{v:.4}"))
                                        .unwrap_or_else(|| "none".into())
                                )
                            })
                            .collect();
                        out.push_str(&format!(
                            "      {} {}% {} requests={} {}\n",
                            i.at.format("%H:%M:%S"),
                            i.weight,
                            i.result.text(),
                            i.requests
                                .map(|v| format!("{v:.0}"))
                                .unwrap_or_else(|| "?".into()),
                            m.join(" ")
                        ));
                    }
                }
                out.push_str(&format!("  commits: released {}", &r.commits.released));
                if let Some(p) = &r.commits.promotion {
                    out.push_str(&format!(", promotion {p}"));
                }
                if let Some(v) = &r.commits.revert {
                    out.push_str(&format!(", revert {v}"));
                }
                out.push('\n');
                if !r.timings.is_empty() {
                    let t: Vec<String> =
                        r.timings.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    out.push_str(&format!("  timings: {}\n", t.join(" ")));
                }
            }
            super::write_stdout(&out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
