//! `platform-capstone validate`: check a config repo, report every problem.

use super::Output;
use crate::config::{self, DaemonConfig, Problem};
use crate::source::{DirReader, Git2Repo, GitRepo, TreeReader};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Checks a config repository and prints every problem found, one per \
line as `file: field: what is wrong; what to do`, not only the first. Checks: every \
envs/<env>.toml parses strictly (unknown fields are errors); names, branches (env/…), \
durations, cron expressions, canary steps and SLO objectives are valid; overlay \
directories exist inside the repo; each env names its own branch (env/<name>); the \
promotion chain (next) names existing environments and has no cycle; every overlay renders; the admission policies \
(policies/admission/*.rego, phases.toml), policies/vulnerability.toml, policies/trust.toml, \
policies/allowed_signers and policies/approvers load. \
Reads the working directory by default, or the tree of a commit with --rev. Exits 1 \
when anything is wrong."
)]
pub struct Args {
    /// Config repository (a directory; with --rev, a git repository).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Check the tree at this revision (e.g. env/prod) instead of the files on disk.
    #[arg(long)]
    rev: Option<String>,
    /// Also check this daemon config file, and the repo's envs against its
    /// trust root (pinned envs defined, nothing unpinned, promotion order).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

#[derive(serde::Serialize)]
struct Report<'a> {
    valid: bool,
    source: String,
    environments: Vec<&'a str>,
    chains: Vec<Vec<String>>,
    problems: &'a [Problem],
}

/// Config problems, plus a render of every environment's overlay.
fn check(tree: &dyn TreeReader) -> config::RepoConfig {
    let mut cfg = config::load_repo(tree);
    let mut render_problems = Vec::new();
    for env in &cfg.envs {
        if let Err(e) = crate::render::render(tree, &env.overlay) {
            render_problems.push(Problem::new(
                &env.file,
                "overlay",
                format!("{} does not render: {e}", env.overlay),
                "fix the overlay (render it with `platform-capstone render --overlay DIR`)",
            ));
        }
    }
    cfg.problems.extend(render_problems);
    // The gates' policy files must load: a broken policy fails every release.
    // Once per distinct namespace list: each env's gate must load.
    // With no env that loads, the policies are still checked as `main`.
    let mut namespace_sets: Vec<Vec<String>> = cfg
        .envs
        .iter()
        .map(|e| e.gates.admission_namespaces.clone())
        .collect();
    if namespace_sets.is_empty() {
        namespace_sets.push(vec![crate::gates::rego_check::PACKAGE.to_string()]);
    }
    namespace_sets.sort();
    namespace_sets.dedup();
    let mut policy_problems = Vec::new();
    for namespaces in namespace_sets {
        match crate::gates::admission::AdmissionGate::load(tree, &namespaces) {
            Ok(_) => {}
            Err(crate::gates::GateError::Policy { file, message }) => {
                policy_problems.push(Problem::new(
                    file,
                    "",
                    message,
                    "fix the policy: the admission gate fails every release until it loads",
                ))
            }
            Err(e) => policy_problems.push(Problem::new(
                crate::gates::admission::ADMISSION_DIR,
                "",
                e.to_string(),
                "",
            )),
        }
    }
    policy_problems.dedup_by(|a, b| a.file == b.file && a.message == b.message);
    cfg.problems.extend(policy_problems);
    if let Err(e) = crate::gates::trust::load(tree) {
        cfg.problems.push(Problem::new(
            crate::gates::trust::TRUST_FILE,
            "",
            e.to_string(),
            "",
        ));
    }
    if let Err(e) = crate::gates::vulnerability::VulnPolicy::load(tree) {
        cfg.problems.push(Problem::new(
            crate::gates::vulnerability::POLICY_FILE,
            "",
            e.to_string(),
            "",
        ));
    }
    cfg
}

/// The repo's envs against the daemon's pinned ones: every pinned env is
/// defined, nothing unpinned pretends to be an env, and each env promotes
/// only into the env pinned right after it.
fn against_trust(
    cfg: &config::RepoConfig,
    daemon: &DaemonConfig,
    file: &std::path::Path,
) -> Vec<Problem> {
    let trust = &daemon.trust;
    let shown = file.display().to_string();
    let mut problems = Vec::new();
    for name in &trust.envs {
        if cfg.env(name).is_none()
            && !cfg
                .problems
                .iter()
                .any(|p| p.file == format!("envs/{name}.toml"))
        {
            problems.push(Problem::new(
                &shown,
                "trust.envs",
                format!("pins {name}, but envs/{name}.toml does not define it"),
                format!("add envs/{name}.toml (on env/{name}), or unpin it"),
            ));
        }
    }
    for env in &cfg.envs {
        if !trust.pins(&env.name) {
            problems.push(Problem::new(
                &env.file,
                "",
                format!(
                    "{} is not pinned in {shown} (trust.envs); the daemon ignores it",
                    env.name
                ),
                "pin it in the daemon's trust.envs, or remove the file",
            ));
        } else if let Some(next) = &env.next
            && trust.next(&env.name) != Some(next.as_str())
        {
            problems.push(Problem::new(
                &env.file,
                "next",
                format!(
                    "{next:?}, but the pinned order allows only {}",
                    trust
                        .next(&env.name)
                        .map_or("none".into(), |n| format!("{n:?}"))
                ),
                "promote into the env pinned right after this one, or into none",
            ));
        }
    }
    problems
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let (source, mut cfg) = match &a.rev {
        Some(rev) => {
            let repo = Git2Repo::open_local(&a.repo)?;
            let commit = repo.resolve(rev)?;
            let reader = repo.reader(&commit)?;
            (reader.describe(), check(reader.as_ref()))
        }
        None => {
            let reader = DirReader::open(&a.repo).with_context(|| "validate --repo".to_string())?;
            (reader.describe(), check(&reader))
        }
    };
    if let Some(path) = &a.config {
        match DaemonConfig::load(path) {
            Ok(daemon) => cfg.problems.extend(against_trust(&cfg, &daemon, path)),
            Err(config::DaemonConfigError::Invalid(list)) => cfg.problems.extend(list),
            Err(e) => cfg.problems.push(Problem::new(
                path.display().to_string(),
                "",
                e.to_string(),
                "",
            )),
        }
    }
    let report = Report {
        valid: cfg.is_valid(),
        source,
        environments: cfg.envs.iter().map(|e| e.name.as_str()).collect(),
        chains: cfg.chains(),
        problems: &cfg.problems,
    };
    match a.output {
        o @ (Output::Json | Output::Yaml) => super::print_data(o, &report)?,
        Output::Text => {
            for p in report.problems {
                println!("{p}");
            }
            if report.valid {
                let chains: Vec<String> = report.chains.iter().map(|c| c.join(" → ")).collect();
                println!(
                    "ok: {} environment(s) in {}: {}",
                    report.environments.len(),
                    report.source,
                    chains.join("; ")
                );
            } else {
                let files: std::collections::BTreeSet<&str> =
                    report.problems.iter().map(|p| p.file.as_str()).collect();
                println!(
                    "{} problem(s) in {} file(s)",
                    report.problems.len(),
                    files.len()
                );
            }
        }
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::exit::NO)
    })
}
