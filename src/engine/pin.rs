//! A release's first commit: the digests of a version written into an
//! env's overlay (`images:` pins only), signed, pushed with compare-and-
//! swap. `release` resolves the version to digests first; drills pin the
//! image they just built.

use super::EngineError;
use crate::config::Env;
use crate::model::{Digest, set_digest_pins};
use crate::source::{CommitOutcome, FileChange, GitError, GitRepo, TreeReader};
use std::collections::BTreeMap;

/// Commits `digests` (image name as pinned → digest) to `env`'s overlay
/// with the release trailers. The commit (the head when the pins were
/// already there).
pub fn commit_pins(
    repo: &mut dyn GitRepo,
    env: &Env,
    digests: &BTreeMap<String, Digest>,
    images: &[String],
    version: &str,
    release: &str,
) -> Result<String, EngineError> {
    let file = format!("{}/kustomization.yaml", env.overlay.trim_end_matches('/'));
    let message = format!(
        "release {version} to {}\n\nImages:\n{}\n\nRelease-Id: {release}\nVersion: {version}\n",
        env.name,
        images
            .iter()
            .map(|i| format!("  {i}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let f = file.clone();
    let outcome = repo.commit_change(&env.branch, &message, &mut |tree: &dyn TreeReader| {
        let text = tree.read_string(&f)?;
        let new =
            set_digest_pins(&f, &text, digests).map_err(|e| GitError::Change(e.to_string()))?;
        Ok((new != text).then(|| {
            vec![FileChange {
                path: f.clone(),
                content: Some(new.into_bytes()),
            }]
        }))
    })?;
    Ok(match outcome {
        CommitOutcome::Committed { commit, .. } => commit,
        CommitOutcome::NothingToDo => repo.resolve(&env.branch)?,
    })
}

/// `commit_pins` for images given as `repo@sha256:…`: each replaces the
/// pin of the same repository in `env`'s overlay (at its branch head).
pub fn pin_images(
    repo: &mut dyn GitRepo,
    env: &Env,
    images: &[String],
    version: &str,
    release: &str,
) -> Result<String, EngineError> {
    let head = repo.resolve(&env.branch)?;
    let file = format!("{}/kustomization.yaml", env.overlay.trim_end_matches('/'));
    let text = repo
        .reader(&head)?
        .read_string(&file)
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
    let pins = crate::model::pins_from_kustomization(&file, &text)
        .map_err(|e| EngineError::Invalid(e.to_string()))?;
    let mut digests = BTreeMap::new();
    for i in images {
        let (repo_name, _, digest) = crate::render::transform::split_image(i);
        let d: Digest = digest
            .ok_or_else(|| EngineError::Invalid(format!("{i}: not pinned by digest")))?
            .parse()
            .map_err(|e| EngineError::Invalid(format!("{i}: {e}")))?;
        let mut matched = false;
        for p in pins.iter().filter(|p| p.repository() == repo_name) {
            digests.insert(p.name.clone(), d.clone());
            matched = true;
        }
        if !matched {
            return Err(EngineError::Invalid(format!(
                "{file}: images: nothing pins {repo_name}"
            )));
        }
    }
    commit_pins(repo, env, &digests, images, version, release)
}
