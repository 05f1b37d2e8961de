//! `platform-capstone render`: an overlay → plain manifests.

use super::Output;
use crate::config;
use crate::render;
use crate::source::{DirReader, Git2Repo, GitRepo, TreeReader};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Renders a kustomize overlay into plain Kubernetes manifests, the same \
objects in the same order as `kubectl kustomize` prints them (for the supported subset: \
resources, patches, images, namespace, namePrefix/nameSuffix, labels, commonLabels, \
commonAnnotations, configMapGenerator, secretGenerator, generatorOptions, replicas; any \
other field is an error naming it). Either a plain directory (--overlay DIR, no git \
needed) or an environment's overlay at a revision of the config repo (--env E [--rev \
REV], default: the head of the env's branch). --images prints the image references \
instead (name, tag, digest)."
)]
pub struct Args {
    /// A kustomization directory on disk.
    #[arg(long, conflicts_with_all = ["env", "rev"], required_unless_present = "env")]
    overlay: Option<PathBuf>,
    /// Nothing outside this directory may be read (default: the git work
    /// tree holding --overlay, else the overlay directory itself).
    #[arg(long, requires = "overlay")]
    root: Option<PathBuf>,
    /// An environment of the config repo (its overlay, read from git).
    #[arg(long)]
    env: Option<String>,
    /// Revision to render (default: the head of env/<ENV>).
    #[arg(long, requires = "env")]
    rev: Option<String>,
    /// The config repository (for --env).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Print the normalised image references instead of the manifests.
    #[arg(long)]
    images: bool,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

#[derive(serde::Serialize)]
struct ImageRow {
    reference: String,
    name: String,
    tag: Option<String>,
    digest: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let rendered = match (&a.overlay, &a.env) {
        (Some(dir), _) => {
            let (root, rel) = confinement_root(dir, a.root.as_deref())?;
            let reader = DirReader::open(&root)
                .with_context(|| format!("render --overlay {}", dir.display()))?;
            render::render(&reader, &rel)?
        }
        (None, Some(env)) => {
            let repo = Git2Repo::open_local(&a.repo)?;
            let rev = a.rev.clone().unwrap_or_else(|| format!("env/{env}"));
            let commit = repo.resolve(&rev)?;
            let reader = repo.reader(&commit)?;
            render_env(reader.as_ref(), env)?
        }
        (None, None) => anyhow::bail!("give --overlay DIR or --env ENV"),
    };
    if a.images {
        let rows: Vec<ImageRow> = render::images(&rendered)
            .into_iter()
            .map(|r| {
                let (name, tag, digest) = render::transform::split_image(&r);
                ImageRow {
                    name: name.to_string(),
                    tag: tag.map(str::to_string),
                    digest: digest.map(str::to_string),
                    reference: r.clone(),
                }
            })
            .collect();
        match a.output {
            Output::Json => super::print_json(&rows)?,
            Output::Text => {
                for r in rows {
                    println!(
                        "{}\ttag={}\tdigest={}",
                        r.name,
                        r.tag.as_deref().unwrap_or("-"),
                        r.digest.as_deref().unwrap_or("-")
                    );
                }
            }
        }
    } else {
        match a.output {
            Output::Json => super::print_json(&rendered.objects)?,
            Output::Text => super::write_stdout(&rendered.to_yaml())?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The directory reads are confined to, and the overlay relative to it.
fn confinement_root(
    overlay: &std::path::Path,
    root: Option<&std::path::Path>,
) -> anyhow::Result<(PathBuf, String)> {
    let overlay =
        std::fs::canonicalize(overlay).with_context(|| format!("{}", overlay.display()))?;
    let root = match root {
        Some(r) => std::fs::canonicalize(r).with_context(|| format!("--root {}", r.display()))?,
        None => overlay
            .ancestors()
            .find(|a| a.join(".git").exists())
            .unwrap_or(&overlay)
            .to_path_buf(),
    };
    let rel = overlay.strip_prefix(&root).map_err(|_| {
        anyhow::anyhow!(
            "{}: is outside --root {}",
            overlay.display(),
            root.display()
        )
    })?;
    let rel = rel
        .to_str()
        .context("overlay path is not UTF-8")?
        .to_string();
    Ok((root, rel))
}

/// Renders env `name`'s overlay as defined in `tree` itself.
pub(crate) fn render_env(tree: &dyn TreeReader, name: &str) -> anyhow::Result<render::Rendered> {
    let cfg = config::load_repo(tree);
    let env = cfg.env(name).with_context(|| {
        format!(
            "{}: no environment {name:?} (envs/{name}.toml){}",
            tree.describe(),
            if cfg.problems.is_empty() {
                String::new()
            } else {
                format!("; validate reports: {}", cfg.problems[0])
            }
        )
    })?;
    Ok(render::render(tree, &env.overlay)?)
}
