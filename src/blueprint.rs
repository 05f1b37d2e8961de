//! The reference blueprint (this repo's `envs/`, `overlays/`, `policies/`),
//! compiled into the binary, and `init`, which makes a new config repo from it.

use crate::config;
use crate::signing::{Identity, Signer};
use crate::source::{self, DirReader, GitError, PushFailure, RefUpdate};
use include_dir::{Dir, include_dir};
use std::path::{Path, PathBuf};

static ENVS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/envs");
static OVERLAYS: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/overlays");
static POLICIES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/policies");

const README: &str = "# Config repository\n\n\
Managed by platform-capstone. One branch per environment (`env/<env>`)\n\
carries the whole tree; `main` is where shared config changes start.\n\n\
- `envs/<env>.toml`: environment definitions\n\
- `overlays/base`, `overlays/<env>`: kustomize overlays (images pinned by digest)\n\
- `policies/`: admission (Rego), vulnerability, signature trust, approvers\n\n\
Check it with `platform-capstone validate --repo .`\n";

/// Every file of the blueprint: repo-relative path → contents.
pub fn files() -> Vec<(String, &'static [u8])> {
    let mut out = vec![("README.md".to_string(), README.as_bytes())];
    for (prefix, dir) in [
        ("envs", &ENVS),
        ("overlays", &OVERLAYS),
        ("policies", &POLICIES),
    ] {
        collect(prefix, dir, &mut out);
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Writes every blueprint file under `dir` (creating directories).
pub fn write_files(dir: &Path) -> std::io::Result<()> {
    for (path, bytes) in files() {
        let p = dir.join(&path);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d)?;
        }
        std::fs::write(&p, bytes)?;
    }
    Ok(())
}

fn collect(prefix: &str, dir: &'static Dir<'static>, out: &mut Vec<(String, &'static [u8])>) {
    for f in dir.files() {
        out.push((format!("{prefix}/{}", f.path().display()), f.contents()));
    }
    for d in dir.dirs() {
        collect(prefix, d, out);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{path}: already exists and is not empty; choose a new directory")]
    NotEmpty { path: String },
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the blueprint does not validate (a bug): {0}")]
    Blueprint(String),
    #[error("remote {url} already has {refname}; init only pushes to an empty repository")]
    RemoteNotEmpty { url: String, refname: String },
    #[error(transparent)]
    Git(#[from] GitError),
}

/// What `init` made.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Initialised {
    pub path: PathBuf,
    pub commit: String,
    pub branches: Vec<String>,
    pub signed: bool,
    pub remote: Option<String>,
}

/// Creates a config repo at `dir` from the blueprint: `main` plus one
/// `env/<env>` branch per environment, all at the same first commit. Built
/// in a temporary sibling directory and renamed into place, so a failure
/// or kill leaves nothing at `dir`. With `remote`, pushes every branch
/// there (creating a bare repo if the path does not exist).
pub fn init(
    dir: &Path,
    remote: Option<&str>,
    signer: Option<&Signer>,
    identity: &Identity,
) -> Result<Initialised, InitError> {
    let io = |p: &Path| {
        let path = p.display().to_string();
        move |source| InitError::Io { path, source }
    };
    if dir.exists() {
        let empty = std::fs::read_dir(dir).map_err(io(dir))?.next().is_none();
        if !empty {
            return Err(InitError::NotEmpty {
                path: dir.display().to_string(),
            });
        }
    }
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&parent).map_err(io(&parent))?;
    let tmp = tempfile::Builder::new()
        .prefix(".init-")
        .tempdir_in(&parent)
        .map_err(io(&parent))?;
    write_files(tmp.path()).map_err(io(tmp.path()))?;

    // The blueprint must validate; it decides which env branches exist.
    let reader = DirReader::open(tmp.path()).map_err(|e| InitError::Blueprint(e.to_string()))?;
    let cfg = config::load_repo(&reader);
    if !cfg.is_valid() {
        let problems: Vec<String> = cfg.problems.iter().map(|p| p.to_string()).collect();
        return Err(InitError::Blueprint(problems.join("; ")));
    }

    let mut opts = git2::RepositoryInitOptions::new();
    opts.initial_head("main");
    let repo = git2::Repository::init_opts(tmp.path(), &opts).map_err(|e| GitError::Git {
        context: "init".into(),
        source: e,
    })?;
    let git = |context: &'static str| {
        move |source| GitError::Git {
            context: context.into(),
            source,
        }
    };
    let mut index = repo.index().map_err(git("index"))?;
    index
        .add_all(["*"], git2::IndexAddOption::DEFAULT, None)
        .map_err(git("add files"))?;
    index.write().map_err(git("write index"))?;
    let tree = index.write_tree().map_err(git("write tree"))?;
    let commit = source::write_commit(
        &repo,
        signer,
        identity,
        tree,
        &[],
        "Initial config from the platform-capstone blueprint\n",
    )?;
    let mut branches = vec!["main".to_string()];
    repo.reference("refs/heads/main", commit, false, "init")
        .map_err(git("create main"))?;
    for env in &cfg.envs {
        repo.reference(&format!("refs/heads/{}", env.branch), commit, false, "init")
            .map_err(git("create env branch"))?;
        branches.push(env.branch.clone());
    }

    if let Some(url) = remote {
        if let Some(path) = source::local_path_of(url)
            && !path.exists()
        {
            git2::Repository::init_bare(&path).map_err(git("create bare remote"))?;
        }
        repo.remote("origin", url).map_err(git("add remote"))?;
        let updates: Vec<RefUpdate> = branches
            .iter()
            .map(|b| RefUpdate {
                name: format!("refs/heads/{b}"),
                old: None,
                new: commit,
            })
            .collect();
        match source::push_cas(&repo, url, None, &updates, source::DEFAULT_GIT_DEADLINE) {
            Ok(()) => {}
            Err(PushFailure::Stale { name }) => {
                return Err(InitError::RemoteNotEmpty {
                    url: url.to_string(),
                    refname: name,
                });
            }
            Err(PushFailure::Error(e)) => return Err(e.into()),
        }
        for b in &branches {
            // Tracking config only; the remote-tracking refs appear on first fetch.
            let mut cfg = repo.config().map_err(git("config"))?;
            cfg.set_str(&format!("branch.{b}.remote"), "origin")
                .map_err(git("config"))?;
            cfg.set_str(&format!("branch.{b}.merge"), &format!("refs/heads/{b}"))
                .map_err(git("config"))?;
        }
    }
    drop(repo);
    let built = tmp.keep();
    if dir.exists() {
        std::fs::remove_dir(dir).map_err(io(dir))?; // empty, checked above
    }
    std::fs::rename(&built, dir).map_err(io(dir))?;
    Ok(Initialised {
        path: dir.to_path_buf(),
        commit: commit.to_string(),
        branches,
        signed: signer.is_some(),
        remote: remote.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blueprint_holds_the_three_trees() {
        let files = files();
        let names: Vec<&str> = files.iter().map(|(p, _)| p.as_str()).collect();
        for want in [
            "envs/dev.toml",
            "envs/prod.toml",
            "overlays/base/kustomization.yaml",
            "policies/approvers",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
    }
}
