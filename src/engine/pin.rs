//! A release's first commit: the digests of a version written into an
//! env's overlay (`images:` pins only), signed, pushed with compare-and-
//! swap. `release` resolves the version to digests first; drills pin the
//! image they just built; a manual rollback writes the pins it restores.

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
    let message = format!(
        "release {version} to {}\n\nImages:\n{}\n\nRelease-Id: {release}\nVersion: {version}\n",
        env.name,
        images
            .iter()
            .map(|i| format!("  {i}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let file = overlay_file(env);
    let outcome = repo.commit_change(&env.branch, &message, &mut set_pins(&file, digests))?;
    Ok(match outcome {
        CommitOutcome::Committed { commit, .. } => commit,
        CommitOutcome::NothingToDo => repo.resolve(&env.branch)?,
    })
}

/// Writes `images` (`repo@sha256:…`) back into `env`'s overlay as one
/// commit on top of `base` only (a manual rollback: the branch anywhere
/// else is `GitError::Moved`, nothing re-applied elsewhere).
pub fn restore_pins(
    repo: &mut dyn GitRepo,
    env: &Env,
    base: &str,
    images: &[String],
    message: &str,
) -> Result<CommitOutcome, GitError> {
    let file = overlay_file(env);
    let digests =
        digests_for(repo, env, base, images).map_err(|e| GitError::Change(e.to_string()))?;
    repo.commit_change_on(&env.branch, base, message, &mut set_pins(&file, &digests))
}

fn overlay_file(env: &Env) -> String {
    format!("{}/kustomization.yaml", env.overlay.trim_end_matches('/'))
}

/// The change that sets `digests` in `file` (nothing when they are there).
fn set_pins<'a>(
    file: &'a str,
    digests: &'a BTreeMap<String, Digest>,
) -> impl FnMut(&dyn TreeReader) -> Result<Option<Vec<FileChange>>, GitError> + 'a {
    move |tree: &dyn TreeReader| {
        let text = tree.read_string(file)?;
        let new =
            set_digest_pins(file, &text, digests).map_err(|e| GitError::Change(e.to_string()))?;
        Ok((new != text).then(|| {
            vec![FileChange {
                path: file.to_string(),
                content: Some(new.into_bytes()),
            }]
        }))
    }
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
    let digests = digests_for(repo, env, &head, images)?;
    commit_pins(repo, env, &digests, images, version, release)
}

/// Image name (as `env`'s overlay pins it at `commit`) → digest, for
/// `images` given as `repo@sha256:…`; every image must replace a pin.
fn digests_for(
    repo: &dyn GitRepo,
    env: &Env,
    commit: &str,
    images: &[String],
) -> Result<BTreeMap<String, Digest>, EngineError> {
    let file = overlay_file(env);
    let text = repo
        .reader(commit)?
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
    Ok(digests)
}
