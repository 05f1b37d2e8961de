//! Whether an env branch head may be acted on, judged only against the
//! anchors the daemon's own config pins (`config::trust`), never against a
//! file in the tree being judged.
//!
//! A head is trusted when
//! 1. it is signed by a key pinned for the env's heads (unless
//!    `require_signed_heads` is off), and
//! 2. its policy — the `policies/` and `envs/` trees — was vouched for by a
//!    policy signer: either the head is signed by one, or it carries exactly
//!    the policy of its nearest first-parent ancestor that is. So a commit
//!    that adds its own key to `policies/allowed_signers`, loosens a gate or
//!    renames a branch needs a policy signer's signature, however many
//!    commits it hides behind.
//!
//! And an env branch only ever moves forward: [`moved_forward`] tells a
//! force push (history rewritten) from a normal move.

use super::{GitError, GitRepo, SignatureState};
use crate::config::trust::EnvAnchors;
use crate::signing::{AllowedSigners, GIT_NAMESPACE};

/// The trees whose content is policy: gates, signers, env definitions.
pub const POLICY_PATHS: [&str; 2] = ["policies", "envs"];
/// How far back the nearest policy-signed ancestor is looked for.
pub const MAX_POLICY_WALK: usize = 1000;

/// The verdict on one head.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum HeadTrust {
    Trusted {
        /// Who signed the head (`None` only with `require_signed_heads` off).
        signer: Option<String>,
    },
    Untrusted {
        reason: String,
    },
}

impl HeadTrust {
    pub fn is_trusted(&self) -> bool {
        matches!(self, HeadTrust::Trusted { .. })
    }
}

fn short(c: &str) -> &str {
    &c[..12.min(c.len())]
}

/// Who signed `commit` among `signers`, or why not (one phrase).
fn signed_by(
    repo: &dyn GitRepo,
    signers: &AllowedSigners,
    commit: &str,
) -> Result<Result<String, String>, GitError> {
    let info = repo.commit_info(commit)?;
    Ok(match &info.signature {
        SignatureState::Unsigned => Err("is not signed".to_string()),
        SignatureState::Signed { signature, payload } => signers
            .verify(GIT_NAMESPACE, payload, signature, Some(info.time))
            .map(|v| v.principal)
            .map_err(|e| format!("is {e}")),
    })
}

/// Whether `a` and `b` carry the same policy trees.
fn same_policy(repo: &dyn GitRepo, a: &str, b: &str) -> Result<bool, GitError> {
    for path in POLICY_PATHS {
        if repo.path_id(a, path)? != repo.path_id(b, path)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Judges `head` of env `env`'s branch. `Err` only when git cannot answer.
pub fn judge_head(
    repo: &dyn GitRepo,
    env: &str,
    anchors: &EnvAnchors,
    require_signed_heads: bool,
    head: &str,
) -> Result<HeadTrust, GitError> {
    let untrusted = |reason: String| Ok(HeadTrust::Untrusted { reason });
    let signer = match signed_by(repo, &anchors.heads, head)? {
        Ok(p) => Some(p),
        Err(why) if require_signed_heads => {
            return untrusted(format!(
                "head {} of env/{env} {why}; only keys in {} may sign env/{env} heads",
                short(head),
                anchors.heads_file
            ));
        }
        Err(_) => None,
    };
    if !require_signed_heads {
        return Ok(HeadTrust::Trusted { signer });
    }
    if signed_by(repo, &anchors.policy, head)?.is_ok() {
        return Ok(HeadTrust::Trusted { signer });
    }
    let mut cur = head.to_string();
    for _ in 0..MAX_POLICY_WALK {
        let Some(parent) = repo.commit_info(&cur)?.parents.first().cloned() else {
            break;
        };
        if signed_by(repo, &anchors.policy, &parent)?.is_ok() {
            return if same_policy(repo, &parent, head)? {
                Ok(HeadTrust::Trusted { signer })
            } else {
                untrusted(format!(
                    "head {} of env/{env} changes policies/ or envs/ since {} (the last commit a policy signer signed) but is not signed by a key in {}",
                    short(head),
                    short(&parent),
                    anchors.policy_file
                ))
            };
        }
        cur = parent;
    }
    untrusted(format!(
        "no commit among the last {MAX_POLICY_WALK} of env/{env} is signed by a key in {}, so nothing vouches for its policies/ and envs/; have a policy signer sign the head",
        anchors.policy_file
    ))
}

/// Whether env branch `branch` moved from `seen` to `head` without
/// rewriting history (`head` contains `seen`).
/// A `seen` commit the cache no longer has cannot be in `head`'s history.
pub fn moved_forward(repo: &dyn GitRepo, seen: &str, head: &str) -> Result<bool, GitError> {
    if repo.commit_info(seen).is_err() {
        return Ok(false);
    }
    repo.contains(head, seen)
}
