//! Promote stage: whether the next env may be promoted into now (its
//! promotion windows; its approval requirement, checked against
//! `policies/approvers` of the next env's branch), the promotion commit
//! itself — one signed commit changing nothing but the digest pins of the
//! next env's overlay, with the trailers listed in docs/operating-model.md — and the signed
//! promotion record the next env re-verifies.

use crate::audit::{self, Approval, Note, PromotionRecord, SignedPromotion};
use crate::config::{APPROVERS_FILE, Env};
use crate::gates::run::Checks;
use crate::model::{Digest, ImagePin, Outcome, pins_from_kustomization, set_digest_pins};
use crate::signing::{AllowedSigners, Signer};
use crate::source::{CommitOutcome, FileChange, GitError, GitRepo, TreeReader};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

/// The approver of `release` into `env`, if a valid approval is in `note`
/// (signed by a key of `approvers` in the approval namespace).
pub fn approved_by(
    note: &Note,
    approvers: &AllowedSigners,
    release: &str,
    env: &str,
) -> Option<String> {
    note.approvals
        .iter()
        .filter(|a| a.release == release && a.env == env)
        .find_map(|a| {
            approvers
                .verify(
                    audit::APPROVAL_NAMESPACE,
                    &audit::approval_payload(release, env),
                    &a.signature,
                    None,
                )
                .ok()
                .map(|v| v.principal)
        })
}

/// Reads an allowed_signers-format file from the tree, or explains.
pub fn signers(tree: &dyn TreeReader, file: &str) -> Result<AllowedSigners, String> {
    let text = tree.read_string(file).map_err(|e| e.to_string())?;
    AllowedSigners::parse(&text).map_err(|p| {
        p.iter()
            .map(|x| format!("{file}:{}: {}", x.line, x.message))
            .collect::<Vec<_>>()
            .join("; ")
    })
}

/// Whether the promotion into `next` may happen now: Ok(approver) or the
/// reason it waits. Rollbacks never come here: a window never blocks one.
///
/// Approvers are `pinned` (the daemon's trust config) when set, else the
/// next env's own `policies/approvers` — read at its head, which the trust
/// check passed, so only a policy signer can have changed it.
pub fn may_promote(
    next: &Env,
    next_tree: &dyn TreeReader,
    pinned: Option<&AllowedSigners>,
    source_note: &Note,
    release: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, String> {
    platform_capstone_core::schedule::windows::check(&next.promotion.windows, now)?;
    if !next.promotion.requires_approval {
        return Ok(None);
    }
    let own;
    let approvers = match pinned {
        Some(p) => p,
        None => {
            own = signers(next_tree, APPROVERS_FILE)?;
            &own
        }
    };
    approved_by(source_note, approvers, release, &next.name)
        .map(Some)
        .ok_or_else(|| {
            format!(
                "needs an approval: platform-capstone approve {release} --env {} --key <approver key>",
                next.name
            )
        })
}

/// Image name (as written in the overlay) → new digest, for every pin of
/// `next`'s overlay whose repository is one of `released`.
fn new_pins(pins: &[ImagePin], released: &[String]) -> BTreeMap<String, Digest> {
    let mut out = BTreeMap::new();
    for image in released {
        let (repo, _tag, digest) = crate::render::transform::split_image(image);
        let Some(Ok(d)) = digest.map(str::parse::<Digest>) else {
            continue;
        };
        for p in pins.iter().filter(|p| p.repository() == repo) {
            out.insert(p.name.clone(), d.clone());
        }
    }
    out
}

/// The commit message of a promotion: images, then its trailers
/// (docs/operating-model.md).
pub fn promotion_message(
    release: &str,
    from: &Env,
    to: &Env,
    source_commit: &str,
    images: &[String],
    checks: &Checks,
    approver: Option<&str>,
) -> String {
    let mut m = format!(
        "promote {release} to {}\n\nImages:\n{}\n\nRelease-Id: {release}\nSource-Branch: {}\nSource-Commit: {source_commit}\n",
        to.name,
        images
            .iter()
            .map(|i| format!("  {i}"))
            .collect::<Vec<_>>()
            .join("\n"),
        from.branch
    );
    for v in checks.verdicts() {
        m.push_str(&format!(
            "Gate-{}: {}\n",
            v.gate.replace('_', "-"),
            outcome(v.outcome)
        ));
    }
    if let Some(a) = approver {
        m.push_str(&format!("Approved-By: {a}\n"));
    }
    m
}

pub fn outcome(o: Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Warn => "warn",
        Outcome::Fail => "fail",
    }
}

/// Commits the digest pins of `images` to `to`'s overlay (signed, CAS),
/// then attaches the signed promotion record as the commit's note.
/// Idempotent: a second call after a crash finds the pins in place and
/// returns `None` (never a second promotion commit).
#[allow(clippy::too_many_arguments)]
pub fn promote(
    repo: &mut dyn GitRepo,
    signer: &Signer,
    release: &str,
    from: &Env,
    to: &Env,
    source_commit: &str,
    images: &[String],
    checks: &Checks,
    approver: Option<&str>,
    samples: usize,
) -> Result<Option<String>, GitError> {
    let file = format!("{}/kustomization.yaml", to.overlay.trim_end_matches('/'));
    let message = promotion_message(release, from, to, source_commit, images, checks, approver);
    let images_owned = images.to_vec();
    let f = file.clone();
    let written = repo.commit_change(&to.branch, &message, &mut |tree: &dyn TreeReader| {
        let text = tree.read_string(&f)?;
        let pins =
            pins_from_kustomization(&f, &text).map_err(|e| GitError::Change(e.to_string()))?;
        let wanted = new_pins(&pins, &images_owned);
        if wanted.is_empty() {
            return Err(GitError::Change(format!(
                "{f}: none of {} is pinned in {}'s overlay; nothing to promote",
                images_owned.join(", "),
                to.name
            )));
        }
        if pins.iter().all(|p| {
            wanted
                .get(&p.name)
                .is_none_or(|d| p.digest.as_ref() == Some(d))
        }) {
            return Ok(None);
        }
        let new_text =
            set_digest_pins(&f, &text, &wanted).map_err(|e| GitError::Change(e.to_string()))?;
        Ok(Some(vec![FileChange {
            path: f.clone(),
            content: Some(new_text.into_bytes()),
        }]))
    })?;
    let CommitOutcome::Committed { commit, .. } = written else {
        return Ok(None);
    };
    let record = PromotionRecord {
        release: release.into(),
        from_env: from.name.clone(),
        to_env: to.name.clone(),
        source_commit: source_commit.into(),
        digests: images.to_vec(),
        gates: checks
            .verdicts()
            .iter()
            .map(|v| (v.gate.to_string(), outcome(v.outcome).to_string()))
            .collect(),
        samples,
        approver: approver.map(str::to_string),
    };
    let signature = signer
        .sign(
            audit::PROMOTION_NAMESPACE,
            &audit::promotion_payload(&record),
        )
        .map_err(GitError::Sign)?;
    let signed = SignedPromotion { record, signature };
    repo.update_note(&commit, &mut |old| {
        let mut n = Note::parse(old);
        n.promotion = Some(signed.clone());
        n.to_text()
    })?;
    Ok(Some(commit))
}

/// Re-verifies the promotion record on an env commit, if it carries one:
/// signed by a pinned promotion key (`signers`: the daemon's own and the
/// configured promotion signers — never a file of the tree), naming
/// exactly the images being released. `Ok(None)`: not a promotion commit.
pub fn verify_promotion(
    note: &Note,
    signers: &AllowedSigners,
    env: &str,
    images: &[String],
) -> Result<Option<PromotionRecord>, String> {
    let Some(p) = &note.promotion else {
        return Ok(None);
    };
    signers
        .verify(
            audit::PROMOTION_NAMESPACE,
            &audit::promotion_payload(&p.record),
            &p.signature,
            None,
        )
        .map_err(|e| format!("promotion record of {}: {e}", p.record.release))?;
    if p.record.to_env != env {
        return Err(format!(
            "promotion record is for {}, not {env}",
            p.record.to_env
        ));
    }
    let mut want = images.to_vec();
    let mut got = p.record.digests.clone();
    want.sort();
    got.sort();
    if want != got {
        return Err(format!(
            "the pins released ({}) are not the ones promoted ({})",
            want.join(", "),
            got.join(", ")
        ));
    }
    Ok(Some(p.record.clone()))
}

/// Signs an approval of `release` into `env` and stores it in the note of
/// `commit` (the commit the release was made from).
pub fn approve(
    repo: &mut dyn GitRepo,
    key: &Signer,
    commit: &str,
    release: &str,
    env: &str,
) -> Result<(), GitError> {
    let signature = key
        .sign(
            audit::APPROVAL_NAMESPACE,
            &audit::approval_payload(release, env),
        )
        .map_err(GitError::Sign)?;
    store_approval(
        repo,
        commit,
        Approval {
            release: release.into(),
            env: env.into(),
            approver: key.identity().email.clone(),
            signature,
        },
    )
}

/// Checks an approval signed elsewhere (the daemon's `approve` call)
/// against `approvers`: the principal it verifies as, or why not.
pub fn verify_approval(
    approvers: &AllowedSigners,
    release: &str,
    env: &str,
    signature: &str,
) -> Result<String, String> {
    approvers
        .verify(
            audit::APPROVAL_NAMESPACE,
            &audit::approval_payload(release, env),
            signature,
            None,
        )
        .map(|v| v.principal)
        .map_err(|e| {
            format!(
                "the signature is not an approval of {release} into {env} by a key in {env}'s {APPROVERS_FILE}: {e}"
            )
        })
}

/// Stores `approval` in the note of `commit` (replacing the same
/// approver's earlier one for the same release and env).
pub fn store_approval(
    repo: &mut dyn GitRepo,
    commit: &str,
    approval: Approval,
) -> Result<(), GitError> {
    let (release, env) = (approval.release.clone(), approval.env.clone());
    repo.update_note(commit, &mut |old| {
        let mut n = Note::parse(old);
        n.approvals
            .retain(|a| !(a.release == release && a.env == env && a.approver == approval.approver));
        n.approvals.push(approval.clone());
        n.to_text()
    })
}
