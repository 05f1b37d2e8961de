//! Manual rollback, the pure part: the operator's signed request and how
//! it is checked, which release an env goes back to, the commit that
//! records it, and the durable hold that keeps the env still until that
//! commit has landed.
//!
//! A rollback is an operator's statement, SSH-signed (namespace
//! [`NAMESPACE`]) over [`Request::payload`]: which env, back to what, why,
//! when. It is verified against the operators the daemon config pins for
//! the env, never against anything in the repo, and refused when stale or
//! already used (a replayed "roll back to the previous release" must not
//! walk the env further back).

use crate::audit::{Record, ReleaseOutcome};
use crate::model::LastGood;
use crate::signing::AllowedSigners;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The SSH signature namespace of rollback requests.
pub const NAMESPACE: &str = "platform-capstone-rollback";

/// How old (or how far in the future) a signed request may be.
pub const MAX_AGE: chrono::Duration = chrono::Duration::minutes(10);

/// Where to roll back to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum To {
    /// The good release before the one running (or being released).
    Previous,
    /// A release that was good in this env.
    Release(String),
    /// The pins of a commit of the env's branch.
    Commit(String),
}

impl std::fmt::Display for To {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            To::Previous => f.write_str("previous"),
            To::Release(r) => f.write_str(r),
            To::Commit(c) => write!(f, "commit:{c}"),
        }
    }
}

/// A rollback as an operator asks for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub env: String,
    pub to: To,
    pub reason: String,
    /// When it was signed.
    pub at: DateTime<Utc>,
    /// Who signs it (as in the operators file).
    pub principal: String,
    /// The armored SSH signature over [`Request::payload`].
    #[serde(default)]
    pub signature: String,
}

/// Why a rollback request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error(
        "no operators are pinned for {env}: set trust.operators (or trust.env.{env}.operators) in the daemon config to an allowed_signers file of who may roll it back"
    )]
    NoOperators { env: String },
    #[error("the request is not signed: sign it with your key (--key K --principal P)")]
    Unsigned,
    #[error("the signature is not a rollback of {env} by an operator in {file}: {message}")]
    UnknownSigner {
        env: String,
        file: String,
        message: String,
    },
    #[error("the request was signed at {at}, more than {} minutes from now ({now}): sign a new one", MAX_AGE.num_minutes())]
    Stale {
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    #[error("this signed request was already carried out: sign a new one")]
    Replayed,
    #[error("--reason: say why (it goes into the commit and the audit record)")]
    NoReason,
}

impl Request {
    /// The exact bytes the operator signs.
    pub fn payload(&self) -> Vec<u8> {
        let reason = self.reason.replace('\n', " ");
        format!(
            "platform-capstone rollback\nenv: {}\nto: {}\nreason: {reason}\nat: {}\nprincipal: {}\n",
            self.env,
            self.to,
            self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.principal
        )
        .into_bytes()
    }

    /// A short, stable id of this signed request (replay protection).
    pub fn id(&self) -> String {
        crate::model::oci::sha256(self.signature.trim().as_bytes())
    }

    /// Checks the request against the env's pinned operators at `now`,
    /// and that none of `used` (ids of requests carried out) is this one.
    /// Returns the principal it verifies as.
    pub fn verify(
        &self,
        operators: Option<(&AllowedSigners, &str)>,
        now: DateTime<Utc>,
        used: &[String],
    ) -> Result<String, RequestError> {
        if self.reason.trim().is_empty() {
            return Err(RequestError::NoReason);
        }
        let Some((operators, file)) = operators else {
            return Err(RequestError::NoOperators {
                env: self.env.clone(),
            });
        };
        if self.signature.trim().is_empty() {
            return Err(RequestError::Unsigned);
        }
        let verified = operators
            .verify(NAMESPACE, &self.payload(), &self.signature, None)
            .map_err(|e| RequestError::UnknownSigner {
                env: self.env.clone(),
                file: file.to_string(),
                message: e.to_string(),
            })?;
        if verified.principal != self.principal {
            return Err(RequestError::UnknownSigner {
                env: self.env.clone(),
                file: file.to_string(),
                message: format!(
                    "the key is {}'s, the request names {}",
                    verified.principal, self.principal
                ),
            });
        }
        if (now - self.at).abs() > MAX_AGE {
            return Err(RequestError::Stale { at: self.at, now });
        }
        if used.iter().any(|u| *u == self.id()) {
            return Err(RequestError::Replayed);
        }
        Ok(verified.principal)
    }
}

/// What a rollback goes back to and what it leaves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The release rolled back (what runs or is being released now).
    pub from: String,
    /// Its images (quarantined unless the target pins them too).
    pub from_images: Vec<String>,
    /// The release that runs again.
    pub to: LastGood,
}

impl Plan {
    /// The digests rolled back from: the ones the target does not pin.
    pub fn quarantined(&self) -> Vec<String> {
        self.from_images
            .iter()
            .filter(|i| !self.to.images.contains(i))
            .cloned()
            .collect()
    }
}

/// Why no rollback target could be chosen.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("nothing has been released in {env}: there is nothing to roll back")]
    NothingReleased { env: String },
    #[error(
        "{env} has no good release before {current}: name one with --to rel-ID or --to-commit SHA"
    )]
    NoPrevious { env: String, current: String },
    #[error(
        "{release} never ran good in {env} (its records there: {seen}); pick one `audit list --env {env}` shows complete or promoted"
    )]
    NotGood {
        release: String,
        env: String,
        seen: String,
    },
    #[error("{env} already runs {release}: nothing to roll back")]
    AlreadyThere { env: String, release: String },
}

/// The release running in an env, as far as the rollback is concerned:
/// the one being released if any (a canary, a bake), else the last good.
#[derive(Debug, Clone)]
pub struct Current {
    pub release: String,
    pub images: Vec<String>,
}

/// Chooses the target of a rollback of `env`. `records` are the audit
/// records (any order), `good` the env's last good release (what stable
/// runs), `running` the release in progress there if any, `at_commit` the
/// target for [`To::Commit`] (its pins, resolved by the caller from git),
/// `quarantined` the digests refused in the env: the default target is
/// never a release that pins one (a named one may).
pub fn plan(
    env: &str,
    to: &To,
    records: &[Record],
    good: Option<&LastGood>,
    running: Option<Current>,
    at_commit: Option<LastGood>,
    quarantined: &[String],
) -> Result<Plan, PlanError> {
    let clean = |images: &[String]| {
        !images
            .iter()
            .any(|i| quarantined.iter().any(|q| i.ends_with(q.as_str())))
    };
    let current = match (running, good) {
        (Some(r), _) => r,
        (None, Some(g)) => Current {
            release: g.release.clone(),
            images: g.images.clone(),
        },
        (None, None) => {
            return Err(PlanError::NothingReleased {
                env: env.to_string(),
            });
        }
    };
    let good_here = |r: &Record| {
        r.env == env
            && matches!(
                r.outcome,
                ReleaseOutcome::Complete | ReleaseOutcome::Promoted | ReleaseOutcome::Waiting
            )
    };
    let as_good = |r: &Record| LastGood {
        release: r.release.clone(),
        commit: r.commits.released.clone(),
        images: r.images.clone(),
        version: r.version.clone(),
        baseline: Default::default(),
        since: r.finished,
        previous: None,
    };
    let target = match to {
        To::Commit(_) => at_commit.ok_or_else(|| PlanError::NoPrevious {
            env: env.to_string(),
            current: current.release.clone(),
        })?,
        To::Release(id) => {
            let mine: Vec<&Record> = records
                .iter()
                .filter(|r| r.env == env && r.release == *id)
                .collect();
            match mine.iter().find(|r| good_here(r)) {
                Some(r) => as_good(r),
                // The last good release itself (a first release keeps no record
                // of being good before its record is written).
                None => match good.filter(|g| g.release == *id) {
                    Some(g) => g.clone(),
                    None => {
                        return Err(PlanError::NotGood {
                            release: id.clone(),
                            env: env.to_string(),
                            seen: if mine.is_empty() {
                                "none".into()
                            } else {
                                mine.iter()
                                    .map(|r| r.outcome.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            },
                        });
                    }
                },
            }
        }
        To::Previous => {
            // A release in progress rolls back to what stable runs; a live
            // one to what ran before it (the engine's memory first: it
            // knows restores the audit trail does not, e.g. a drill's).
            let before = good
                .and_then(|g| g.previous.as_deref())
                .filter(|p| clean(&p.images) && p.images != current.images);
            if let Some(g) = good.filter(|g| g.release != current.release) {
                g.clone()
            } else if let Some(p) = before {
                p.clone()
            } else {
                let mut candidates: Vec<&Record> = records
                    .iter()
                    .filter(|r| good_here(r))
                    .filter(|r| r.release != current.release && r.images != current.images)
                    .filter(|r| clean(&r.images))
                    .collect();
                let started = records
                    .iter()
                    .filter(|r| r.env == env && r.release == current.release)
                    .map(|r| r.started)
                    .min();
                if let Some(s) = started {
                    candidates.retain(|r| r.started < s);
                }
                candidates.sort_by_key(|r| r.started);
                match candidates.last() {
                    Some(r) => as_good(r),
                    None => {
                        return Err(PlanError::NoPrevious {
                            env: env.to_string(),
                            current: current.release.clone(),
                        });
                    }
                }
            }
        }
    };
    // The last good release's own memory of the one before carries its
    // SLO baseline: prefer it to a record's copy.
    let target = match good.and_then(|g| g.previous.as_deref()) {
        Some(p) if p.release == target.release && p.images == target.images => p.clone(),
        _ => target,
    };
    if target.release == current.release || target.images == current.images {
        return Err(PlanError::AlreadyThere {
            env: env.to_string(),
            release: target.release,
        });
    }
    Ok(Plan {
        from: current.release,
        from_images: current.images,
        to: target,
    })
}

/// The commit message that restores the target's pins.
pub fn message(plan: &Plan, env: &str, actor: &str, reason: &str) -> String {
    let reason = reason.replace('\n', " ");
    format!(
        "rollback {env}: {} back to {}\n\n{reason}\n\nRelease-Id: {}\nRollback-Of: {}\nActor: {actor}\nReason: {reason}\nEnvironment: {env}\n",
        plan.from, plan.to.release, plan.to.release, plan.from
    )
}

/// Where the rollback's commit stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum CommitState {
    /// Not pushed yet (git unreachable): pushed with compare-and-swap
    /// against `base` when git answers.
    Queued,
    /// The branch moved past `base` meanwhile (to `head`): nothing is
    /// forced; an operator decides (see docs/runbooks.md).
    Conflict { head: String },
}

/// A rollback done live whose commit has not landed: the env is held
/// (nothing is released there) until it does. Kept in the state dir,
/// written atomically before the live change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    pub request: Request,
    pub plan: Plan,
    /// The env head the commit is built on (as last fetched).
    pub base: String,
    pub state: CommitState,
    /// When the live rollback was done.
    pub at: DateTime<Utc>,
    /// The state dir says so too (last good, the release finished, the
    /// quarantine): done under the env's lock, before the commit.
    #[serde(default)]
    pub settled: bool,
}

impl Pending {
    /// One line for `status` and the API.
    pub fn summary(&self) -> String {
        let what = format!(
            "rolled back {} → {} by {} at {}",
            self.plan.from,
            self.plan.to.release,
            self.request.principal,
            self.at.format("%Y-%m-%d %H:%M:%SZ")
        );
        match &self.state {
            CommitState::Queued => format!("{what}; commit queued until git answers"),
            CommitState::Conflict { head } => format!(
                "{what}; commit NOT pushed: the branch moved to {} meanwhile (nothing forced; see docs/runbooks.md)",
                &head[..12.min(head.len())]
            ),
        }
    }
}

/// What the audit record of the rolled-back release says about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackRecord {
    pub by: String,
    pub reason: String,
    pub at: DateTime<Utc>,
    /// The release that runs again.
    pub to: String,
    /// The operator's signed request.
    pub signature: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Commits, Record};

    fn record(release: &str, env: &str, outcome: ReleaseOutcome, day: u32, image: &str) -> Record {
        Record {
            release: release.into(),
            env: env.into(),
            actor: "ci".into(),
            images: vec![image.into()],
            version: release.into(),
            started: format!("2026-11-{day:02}T10:00:00Z").parse().unwrap(),
            finished: None,
            outcome,
            reason: None,
            checks: Vec::new(),
            steps: Vec::new(),
            commits: Commits {
                released: format!("c-{release}"),
                promotion: None,
                revert: None,
                rollback: None,
            },
            timings: Default::default(),
            rollback: None,
        }
    }

    fn good(release: &str, image: &str) -> LastGood {
        LastGood {
            release: release.into(),
            commit: format!("c-{release}"),
            images: vec![image.into()],
            version: release.into(),
            baseline: Default::default(),
            since: None,
            previous: None,
        }
    }

    fn history() -> Vec<Record> {
        vec![
            record("rel-1", "prod", ReleaseOutcome::Complete, 1, "a@1"),
            record("rel-2", "prod", ReleaseOutcome::Failed, 2, "a@2"),
            record("rel-3", "prod", ReleaseOutcome::Complete, 3, "a@3"),
            record("rel-3", "staging", ReleaseOutcome::Promoted, 3, "a@3"),
            record("rel-4", "prod", ReleaseOutcome::Complete, 4, "a@4"),
        ]
    }

    /// The default target in prod, rel-4 running, with `quarantined`.
    fn previous_of_rel_4(quarantined: &[String]) -> Plan {
        plan(
            "prod",
            &To::Previous,
            &history(),
            Some(&good("rel-4", "a@4")),
            None,
            None,
            quarantined,
        )
        .unwrap()
    }

    #[test]
    fn previous_is_the_good_release_before_the_running_one_skipping_failures() {
        let p = previous_of_rel_4(&[]);
        assert_eq!((p.from.as_str(), p.to.release.as_str()), ("rel-4", "rel-3"));
        assert_eq!(p.quarantined(), vec!["a@4".to_string()]);
        // Mid-canary, the previous release is what stable runs.
        let running = Current {
            release: "rel-5".into(),
            images: vec!["a@5".into()],
        };
        let p = plan(
            "prod",
            &To::Previous,
            &history(),
            Some(&good("rel-4", "a@4")),
            Some(running),
            None,
            &[],
        )
        .unwrap();
        assert_eq!((p.from.as_str(), p.to.release.as_str()), ("rel-5", "rel-4"));
        // The engine's memory of what ran before wins over the records
        // (a restore the audit trail does not show).
        let mut live = good("rel-4", "a@4");
        live.previous = Some(Box::new(good("rel-1", "a@1")));
        let p = plan(
            "prod",
            &To::Previous,
            &history(),
            Some(&live),
            None,
            None,
            &[],
        )
        .unwrap();
        assert_eq!(p.to.release, "rel-1");
        // A release whose digests are quarantined is never the default.
        let p = previous_of_rel_4(&["@3".to_string()]);
        assert_eq!(p.to.release, "rel-1");
    }

    #[test]
    fn a_named_release_must_have_run_good_in_this_env() {
        let h = history();
        let named = |id: &str| {
            plan(
                "prod",
                &To::Release(id.into()),
                &h,
                Some(&good("rel-4", "a@4")),
                None,
                None,
                &[],
            )
        };
        assert_eq!(named("rel-1").unwrap().to.commit, "c-rel-1");
        let e = named("rel-2").unwrap_err();
        assert!(e.to_string().contains("failed"), "{e}");
        let e = named("rel-9").unwrap_err();
        assert!(matches!(e, PlanError::NotGood { .. }), "{e}");
        let e = named("rel-4").unwrap_err();
        assert!(matches!(e, PlanError::AlreadyThere { .. }), "{e}");
        // Nothing live: nothing to roll back.
        let e = plan("dev", &To::Previous, &h, None, None, None, &[]).unwrap_err();
        assert!(matches!(e, PlanError::NothingReleased { .. }), "{e}");
        let e = plan(
            "prod",
            &To::Previous,
            &h[..1],
            Some(&good("rel-1", "a@1")),
            None,
            None,
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, PlanError::NoPrevious { .. }), "{e}");
    }

    #[test]
    fn the_commit_carries_the_trailers() {
        let p = previous_of_rel_4(&[]);
        let m = message(&p, "prod", "alice", "errors\nup");
        for t in [
            "Release-Id: rel-3",
            "Rollback-Of: rel-4",
            "Actor: alice",
            "Reason: errors up",
        ] {
            assert!(m.lines().any(|l| l == t), "{t} in {m}");
        }
    }

    #[test]
    fn requests_verify_against_pinned_operators_only_fresh_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("k");
        let public = crate::signing::generate_key(&key, "alice").unwrap();
        let signer = crate::signing::Signer::load(
            &key,
            crate::signing::Identity {
                name: "alice".into(),
                email: "alice".into(),
            },
        )
        .unwrap();
        let operators =
            AllowedSigners::parse(&format!("alice {}", public.to_openssh().unwrap())).unwrap();
        let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        let mut r = Request {
            env: "prod".into(),
            to: To::Previous,
            reason: "errors up".into(),
            at: now,
            principal: "alice".into(),
            signature: String::new(),
        };
        let pinned = Some((&operators, "operators"));
        assert_eq!(r.verify(pinned, now, &[]), Err(RequestError::Unsigned));
        r.signature = signer.sign(NAMESPACE, &r.payload()).unwrap();
        assert_eq!(r.verify(pinned, now, &[]).as_deref(), Ok("alice"));
        assert!(matches!(
            r.verify(None, now, &[]),
            Err(RequestError::NoOperators { .. })
        ));
        assert!(matches!(
            r.verify(pinned, now + chrono::Duration::minutes(11), &[]),
            Err(RequestError::Stale { .. })
        ));
        assert_eq!(
            r.verify(pinned, now, &[r.id()]),
            Err(RequestError::Replayed)
        );
        // Any change to what was signed breaks it.
        let mut other = r.clone();
        other.to = To::Release("rel-1".into());
        assert!(matches!(
            other.verify(pinned, now, &[]),
            Err(RequestError::UnknownSigner { .. })
        ));
        // A stranger's key.
        let stranger_key = dir.path().join("s");
        crate::signing::generate_key(&stranger_key, "mallory").unwrap();
        let stranger = crate::signing::Signer::load(
            &stranger_key,
            crate::signing::Identity {
                name: "alice".into(),
                email: "alice".into(),
            },
        )
        .unwrap();
        let mut forged = r.clone();
        forged.signature = stranger.sign(NAMESPACE, &forged.payload()).unwrap();
        let e = forged.verify(pinned, now, &[]).unwrap_err();
        assert!(matches!(e, RequestError::UnknownSigner { .. }), "{e}");
        assert!(e.to_string().contains("operators"), "{e}");
    }
}
