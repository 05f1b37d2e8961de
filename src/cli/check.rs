//! `platform-capstone check`: the three release gates for an environment.

use super::Output;
use crate::adapters::registry::OciRegistry;
use crate::config;
use crate::gates::promotion;
use crate::gates::run::{self, Checks};
use crate::model::Outcome;
use crate::source::{Git2Repo, GitRepo};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Runs the release gates for an environment at a revision, before \
anything is applied or committed, and prints the `checks:` block: artifact_signature \
(every image digest in the rendered overlay carries a cosign signature by a key in \
policies/trust.toml), vulnerability_policy (each digest's signed vulnerability \
attestation satisfies policies/vulnerability.toml), admission_policy (policies/admission/*.rego \
over every object, with severity phases). Each line is pass, warn or fail, with the \
reasons indented under it. A gate that cannot evaluate (registry unreachable, policy \
broken) fails. Exits 1 when any gate fails, 4 when the check itself could not run."
)]
pub struct Args {
    /// The environment to check.
    #[arg(long)]
    env: String,
    /// Revision (default: the head of env/<ENV>).
    #[arg(long)]
    rev: Option<String>,
    /// The config repository.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Registry host:port reached over plain HTTP (loopback test registries); repeatable.
    #[arg(long, value_name = "HOST")]
    plain_http: Vec<String>,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let repo = Git2Repo::open_local(&a.repo)?;
    let rev = a.rev.clone().unwrap_or_else(|| format!("env/{}", a.env));
    let commit = repo.resolve(&rev)?;
    let tree = repo.reader(&commit)?;
    let cfg = config::load_repo(tree.as_ref());
    let env = cfg
        .env(&a.env)
        .with_context(|| format!("{}: no environment {:?}", tree.describe(), a.env))?;
    let rendered = super::render::render_env(tree.as_ref(), &a.env)?;
    let registry = OciRegistry::new(&a.plain_http)?;
    let checks = run::run(
        tree.as_ref(),
        &rendered,
        &env.gates,
        &registry,
        chrono::Utc::now(),
    );
    let promotions = promotions(tree.as_ref(), &rendered, &registry);
    match a.output {
        o @ (Output::Json | Output::Yaml) => super::print_data(
            o,
            &Report {
                checks: &checks,
                promotions: &promotions,
            },
        )?,
        Output::Text => {
            let mut text = format_checks(&checks);
            text.push_str(&format_promotions(&promotions));
            super::write_stdout(&text)?
        }
    }
    Ok(if checks.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(super::exit::NO)
    })
}

/// `check`'s data: the checks, and the verified promotions of each image.
#[derive(serde::Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    checks: &'a Checks,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    promotions: &'a [Promoted],
}

/// The verified promotions of one image.
#[derive(serde::Serialize)]
struct Promoted {
    image: String,
    promotions: Vec<promotion::Listed>,
}

/// The verified promotion attestations of each pinned image (by the keys
/// of the tree's `policies/trust.toml`); none when the trust policy does
/// not load or the registry cannot be read (the checks already say why).
fn promotions(
    tree: &dyn crate::source::TreeReader,
    rendered: &crate::render::Rendered,
    registry: &OciRegistry,
) -> Vec<Promoted> {
    let Ok(trusted) = crate::gates::trust::load(tree) else {
        return Vec::new();
    };
    crate::render::images(rendered)
        .into_iter()
        .filter_map(|image| {
            let (repo, digest) = image.split_once('@')?;
            let found = promotion::list(registry, repo, digest, &trusted).ok()?;
            (!found.is_empty()).then(|| Promoted {
                image: image.clone(),
                promotions: found,
            })
        })
        .collect()
}

/// The `promotions:` block, when an image carries any.
fn format_promotions(promotions: &[Promoted]) -> String {
    if promotions.is_empty() {
        return String::new();
    }
    let mut out = String::from("promotions:\n");
    for Promoted { image, promotions } in promotions {
        out.push_str(&format!("  {image}:\n"));
        for p in promotions {
            out.push_str(&format!(
                "    out of {} into {} (release {}, commit {}), {}, signed by {}\n",
                p.from_env,
                p.to_env,
                p.release,
                &p.source_commit[..12.min(p.source_commit.len())],
                p.time_verified,
                p.signer
            ));
        }
    }
    out
}

/// The `checks:` block: one line per gate, reasons indented under non-pass lines.
pub fn format_checks(checks: &Checks) -> String {
    let mut out = String::from("checks:\n");
    for v in checks.verdicts() {
        out.push_str(&format!("  {}: {}\n", v.gate, v.outcome));
        if v.outcome == Outcome::Pass {
            continue;
        }
        for f in &v.findings {
            let when = match (&f.enforced_from, f.enforced) {
                (Some(d), false) => format!(" (warn until {d}, then enforced)"),
                _ => String::new(),
            };
            out.push_str(&format!("    {}: {}{when}\n", f.subject, f.message));
        }
    }
    out
}
