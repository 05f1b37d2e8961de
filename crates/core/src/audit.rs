//! Audit stage: one record per release and environment — every check,
//! every step's measurements, timings, actor and commits — stored as JSON
//! in the git note (`refs/notes/platform-capstone`) of the commit that was
//! released, pushed with the repo by the same CAS loop as commits. Release
//! ids are `rel-YYYY-MM-DD-NN`, NN counting that day's releases across
//! every note, so any clone can answer `audit show` and `audit list`.
//!
//! A note holds `{"records": [...], "promotion": {...}, "approvals": [...]}`;
//! writers merge into it (a record is replaced by release + env), so
//! concurrent writers of different parts never lose each other's work.

use crate::model::{Finding, Outcome, Verdict};
use crate::rollout::{IntervalResult, Measurement, StepResult};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

/// A gate's verdict as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRecord {
    pub gate: String,
    pub outcome: Outcome,
    pub findings: Vec<Finding>,
}

impl From<&Verdict> for CheckRecord {
    fn from(v: &Verdict) -> Self {
        Self {
            gate: v.gate.to_string(),
            outcome: v.outcome,
            findings: v.findings.clone(),
        }
    }
}

/// One analysis interval as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IntervalRecord {
    pub at: DateTime<Utc>,
    pub weight: u8,
    #[serde(with = "crate::rollout::interval_text")]
    pub result: IntervalResult,
    pub requests: Option<f64>,
    pub measurements: Vec<Measurement>,
}

/// A step as the release output prints it, with what it measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub name: String,
    pub result: StepResult,
    pub intervals: Vec<IntervalRecord>,
}

/// Commits a release made or touched in one env.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Commits {
    /// The env commit that was released.
    pub released: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promotion: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revert: Option<String>,
    /// The manual rollback's commit (restoring the pins before it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub release: String,
    pub env: String,
    pub actor: String,
    pub images: Vec<String>,
    pub version: String,
    pub started: DateTime<Utc>,
    pub finished: Option<DateTime<Utc>>,
    pub outcome: ReleaseOutcome,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub checks: Vec<CheckRecord>,
    pub steps: Vec<StepRecord>,
    pub commits: Commits,
    /// Phase → milliseconds.
    #[serde(default)]
    pub timings: std::collections::BTreeMap<String, u64>,
    /// Who rolled it back by hand, when and why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<crate::rollback::RollbackRecord>,
}

/// Where a release stands in one env, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReleaseOutcome {
    /// Gated or in its canary, bake or promotion.
    Running,
    /// Live and baked; promotion into the next env waits (window, approval).
    Waiting,
    /// Stopped without a verdict (no data): on stable, nothing reverted.
    Paused,
    /// Live and baked; no next env.
    Complete,
    /// Live and baked; promoted into the next env.
    Promoted,
    /// A gate failed or the canary measured bad: rolled back and reverted.
    Failed,
    /// Stopped by an operator: on stable, nothing reverted or promoted.
    Aborted,
    /// Rolled back by an operator (`rollback`): the release before it runs
    /// again and its digests are quarantined.
    #[serde(rename = "rolled-back")]
    RolledBack,
}

impl ReleaseOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseOutcome::Running => "running",
            ReleaseOutcome::Waiting => "waiting",
            ReleaseOutcome::Paused => "paused",
            ReleaseOutcome::Complete => "complete",
            ReleaseOutcome::Promoted => "promoted",
            ReleaseOutcome::Failed => "failed",
            ReleaseOutcome::Aborted => "aborted",
            ReleaseOutcome::RolledBack => "rolled-back",
        }
    }

    /// The release is over in this env and is not run again for the same
    /// commit (a paused one resumes; an aborted one only on retry).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            ReleaseOutcome::Complete
                | ReleaseOutcome::Promoted
                | ReleaseOutcome::Failed
                | ReleaseOutcome::RolledBack
        )
    }
}

impl std::fmt::Display for ReleaseOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The signed statement a promotion carries to the next env.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromotionRecord {
    pub release: String,
    pub from_env: String,
    pub to_env: String,
    pub source_commit: String,
    pub digests: Vec<String>,
    pub gates: Vec<(String, String)>,
    pub samples: usize,
    pub approver: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignedPromotion {
    pub record: PromotionRecord,
    /// SSHSIG (armored) over the record's canonical JSON.
    pub signature: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub release: String,
    pub env: String,
    pub approver: String,
    /// SSHSIG (armored) over `approval_payload(release, env)`.
    pub signature: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Note {
    #[serde(default)]
    pub records: Vec<Record>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promotion: Option<SignedPromotion>,
    #[serde(default)]
    pub approvals: Vec<Approval>,
    /// Config drift the drift stage healed on the env running this commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub heals: Vec<Heal>,
    /// Drills that ended with the env at this commit.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drills: Vec<crate::drill::DrillRun>,
    /// History rewrites (force pushes) that ended at this commit, accepted
    /// because `trust.history_rewrite = "accept"`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rewrites: Vec<RewriteRecord>,
}

/// A force push the trust root accepted: the env branch moved from `from`
/// to this commit, which does not contain it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RewriteRecord {
    pub env: String,
    pub from: String,
    pub at: DateTime<Utc>,
    pub actor: String,
}

/// One heal: what drifted (masked diffs) and what was re-applied.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heal {
    pub env: String,
    pub release: String,
    pub at: DateTime<Utc>,
    pub actor: String,
    /// How long the drift had persisted, seconds.
    pub drifted_for_s: u64,
    /// `Kind/name: status` per object healed.
    pub objects: Vec<String>,
    /// The unified diffs healed (Secret values masked).
    pub diff: String,
}

/// SSH signature namespace of approvals (`keygen --namespace` for approvers).
pub const APPROVAL_NAMESPACE: &str = "platform-capstone-approval";
/// Promotion records are signed by the daemon's commit key in the `git`
/// namespace, so the `allowed_signers` line that lets it sign env-branch
/// commits also lets it vouch for promotions. No cross-use is possible: a
/// record is JSON and a commit object never is.
pub const PROMOTION_NAMESPACE: &str = crate::signing::GIT_NAMESPACE;

impl Note {
    /// Parses a note; text that is not ours is kept out (never an error:
    /// a foreign note must not block a release).
    pub fn parse(text: Option<&str>) -> Self {
        text.and_then(|t| serde_json::from_str(t).ok())
            .unwrap_or_default()
    }

    pub fn to_text(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into())
    }

    /// Replaces the record of the same release and env, or adds it.
    pub fn upsert(&mut self, record: Record) {
        self.records
            .retain(|r| !(r.release == record.release && r.env == record.env));
        self.records.push(record);
    }
}

/// The canonical bytes a promotion record's signature covers.
pub fn promotion_payload(r: &PromotionRecord) -> Vec<u8> {
    serde_json::to_vec(r).unwrap_or_default()
}

/// The bytes an approval signs.
pub fn approval_payload(release: &str, env: &str) -> Vec<u8> {
    format!("platform-capstone approve {release} --env {env}\n").into_bytes()
}

/// `rel-YYYY-MM-DD-NN`, NN one past the day's highest among `existing`.
pub fn next_release_id<'a>(existing: impl Iterator<Item = &'a str>, day: NaiveDate) -> String {
    let prefix = format!("rel-{}-", day.format("%Y-%m-%d"));
    let n = existing
        .filter_map(|id| id.strip_prefix(&prefix))
        .filter_map(|nn| nn.parse::<u32>().ok())
        .max()
        .unwrap_or(0);
    format!("{prefix}{:02}", n + 1)
}

/// Every record in every note, newest first.
pub fn all_records(notes: &[(String, String)]) -> Vec<Record> {
    let mut out: Vec<Record> = notes
        .iter()
        .flat_map(|(_, text)| Note::parse(Some(text)).records)
        .collect();
    out.sort_by(|a, b| b.started.cmp(&a.started).then(b.release.cmp(&a.release)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn release_ids_count_the_days_releases() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        assert_eq!(next_release_id([].into_iter(), day), "rel-2026-11-25-01");
        let ids = [
            "rel-2026-11-25-01",
            "rel-2026-11-25-07",
            "rel-2026-11-24-09",
            "junk",
        ];
        assert_eq!(next_release_id(ids.into_iter(), day), "rel-2026-11-25-08");
    }

    #[test]
    fn records_merge_by_release_and_env_and_foreign_notes_are_ignored() {
        let rec = |env: &str, outcome: ReleaseOutcome| Record {
            release: "rel-2026-11-25-01".into(),
            env: env.into(),
            actor: "a".into(),
            images: vec![],
            version: "1".into(),
            started: Utc::now(),
            finished: None,
            outcome,
            reason: None,
            checks: vec![],
            steps: vec![],
            commits: Commits::default(),
            timings: Default::default(),
            rollback: None,
        };
        let mut n = Note::parse(Some("not json, someone else's note"));
        n.upsert(rec("dev", ReleaseOutcome::Running));
        n.upsert(rec("staging", ReleaseOutcome::Running));
        n.upsert(rec("dev", ReleaseOutcome::Complete));
        assert_eq!(n.records.len(), 2);
        let back = Note::parse(Some(&n.to_text()));
        assert_eq!(
            back.records
                .iter()
                .find(|r| r.env == "dev")
                .unwrap()
                .outcome,
            ReleaseOutcome::Complete
        );
        let json: serde_json::Value = serde_json::from_str(&n.to_text()).unwrap();
        assert_eq!(json["records"][1]["outcome"], "complete");
    }
}
