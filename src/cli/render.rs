//! `platform-capstone render`: an overlay → plain manifests.

use super::Output;
use crate::config;
use crate::render;
use crate::source::{DirReader, Git2Repo, GitRepo, TreeReader};
use anyhow::Context;
use std::path::{Path, PathBuf};
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
    /// Nothing outside this directory may be read. Default: the git work
    /// tree holding --overlay when it also holds every base and component
    /// the overlay uses; otherwise the nearest directory holding the
    /// overlay and all of them (as `kubectl kustomize` reads bases in
    /// parent directories). A `.git` directory is never read.
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
            render::render(&reader, &rel).map_err(|e| with_root_hint(e, &root))?
        }
        (None, Some(env)) => {
            let repo = Git2Repo::open_local(&a.repo)?;
            let rev = a.rev.clone().unwrap_or_else(|| format!("env/{env}"));
            let commit = repo.resolve(&rev)?;
            let reader = repo.reader(&commit)?;
            render_env(reader.as_ref(), env)?
        }
        (None, None) => return Err(super::usage("give --overlay DIR or --env ENV")),
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
            o @ (Output::Json | Output::Yaml) => super::print_data(o, &rows)?,
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
            o @ (Output::Json | Output::Yaml) => super::print_data(o, &rendered.objects)?,
            Output::Text => super::write_stdout(&rendered.to_yaml())?,
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The directory reads are confined to, and the overlay relative to it.
fn confinement_root(overlay: &Path, root: Option<&Path>) -> anyhow::Result<(PathBuf, String)> {
    let overlay =
        std::fs::canonicalize(overlay).with_context(|| format!("{}", overlay.display()))?;
    let root = match root {
        Some(r) => std::fs::canonicalize(r).with_context(|| format!("--root {}", r.display()))?,
        None => {
            let dirs = kustomization_dirs(&overlay);
            let common = common_ancestor(&dirs).unwrap_or_else(|| overlay.clone());
            match overlay.ancestors().find(|a| a.join(".git").exists()) {
                Some(tree) if common.starts_with(tree) => tree.to_path_buf(),
                _ => common,
            }
        }
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

/// Kustomization files are looked for under these names, in this order.
const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];
/// Bounds of the walk: a hostile overlay cannot make it read forever.
const MAX_WALKED_DIRS: usize = 1000;

/// `overlay` and every local directory it uses as a base or component,
/// transitively (canonical paths). Only to choose the confinement root:
/// what is unreadable here is left for the confined render to report.
fn kustomization_dirs(overlay: &Path) -> Vec<PathBuf> {
    let mut seen = vec![overlay.to_path_buf()];
    let mut queue = vec![overlay.to_path_buf()];
    while let Some(dir) = queue.pop() {
        let Some(text) = KUSTOMIZATION_FILES.iter().find_map(|name| {
            let f = dir.join(name);
            let small = std::fs::metadata(&f)
                .is_ok_and(|m| m.is_file() && m.len() <= crate::source::DEFAULT_MAX_FILE_SIZE);
            small.then(|| std::fs::read_to_string(&f).ok()).flatten()
        }) else {
            continue;
        };
        let Ok(k) = crate::yaml::from_str::<yaml_serde::Value>(&dir.display().to_string(), &text)
        else {
            continue;
        };
        for field in ["resources", "bases", "components"] {
            let entries = k.get(field).and_then(|v| v.as_sequence());
            for entry in entries.into_iter().flatten().filter_map(|e| e.as_str()) {
                if entry.contains("://") || entry.split('/').any(|c| c == ".git") {
                    continue;
                }
                let Ok(path) = std::fs::canonicalize(dir.join(entry)) else {
                    continue;
                };
                if path.is_dir() && !seen.contains(&path) && seen.len() < MAX_WALKED_DIRS {
                    seen.push(path.clone());
                    queue.push(path);
                }
            }
        }
    }
    seen
}

/// The deepest directory holding every one of `dirs`.
fn common_ancestor(dirs: &[PathBuf]) -> Option<PathBuf> {
    let (first, rest) = dirs.split_first()?;
    let mut common = first.clone();
    for d in rest {
        while !d.starts_with(&common) {
            common = common.parent()?.to_path_buf();
        }
    }
    Some(common)
}

/// A read that left the root: name the root and the flag that widens it.
fn with_root_hint(e: render::RenderError, root: &Path) -> anyhow::Error {
    use crate::source::ReadError;
    let escaped = matches!(
        &e,
        render::RenderError::Read(
            ReadError::Escapes { .. }
                | ReadError::SymlinkEscapes { .. }
                | ReadError::Absolute { .. }
        )
    );
    if escaped {
        anyhow::anyhow!(
            "{e} (reads are confined to {}; to allow it, pass --root with a directory that holds the file)",
            root.display()
        )
    } else {
        e.into()
    }
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
