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
directories exist inside the repo; the promotion chain (next) names existing \
environments and has no cycle; every overlay renders; the admission policies \
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
    /// Also check this daemon config file.
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
    match crate::gates::admission::AdmissionGate::load(tree) {
        Ok(_) => {}
        Err(crate::gates::GateError::Policy { file, message }) => cfg.problems.push(Problem::new(
            file,
            "",
            message,
            "fix the policy: the admission gate fails every release until it loads",
        )),
        Err(e) => cfg.problems.push(Problem::new(
            crate::gates::admission::ADMISSION_DIR,
            "",
            e.to_string(),
            "",
        )),
    }
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
            Ok(_) => {}
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
        Output::Json => super::print_json(&report)?,
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
        ExitCode::FAILURE
    })
}
