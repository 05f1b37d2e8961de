//! Drills, the pure half: what a drill run measured, whether the platform
//! behaved, its output lines, and the statistics of repeated runs (success rate,
//! p50/p95 per phase). The scenarios themselves — which break something
//! real on purpose and watch the platform recover — are the shell's
//! `drill::run`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The failure modes a drill can rehearse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// A faulty, properly signed version: the health gate catches it,
    /// traffic goes back to stable, the commit is reverted.
    Rollback,
    /// A version signed by a key nobody trusts never reaches the target.
    BadSignature,
    /// A live edit behind the tool's back is detected (and healed in heal mode).
    ConfigDrift,
    /// The config repo disappears: nothing destructive, recovery when it returns.
    GitOutage,
    /// Prometheus stops during analysis: inconclusive, no promotion, no revert.
    MetricsOutage,
    /// The engine is killed mid-canary; restarted, it resumes cleanly.
    CrashMidRollout,
    /// A wrong but healthy-looking version passes every gate and step; an
    /// operator rolls it back by command: the previous release live at
    /// once, a signed commit, the digests quarantined.
    ManualRollback,
}

impl Scenario {
    pub const ALL: [Scenario; 7] = [
        Scenario::Rollback,
        Scenario::BadSignature,
        Scenario::ConfigDrift,
        Scenario::GitOutage,
        Scenario::MetricsOutage,
        Scenario::CrashMidRollout,
        Scenario::ManualRollback,
    ];

    /// What the drill rehearses, in one line (`drill --help`).
    pub fn about(self) -> &'static str {
        match self {
            Scenario::Rollback => {
                "a faulty, properly signed version: caught, back on stable, reverted"
            }
            Scenario::BadSignature => "a version signed by an untrusted key never runs",
            Scenario::ConfigDrift => "a live edit behind the tool's back is found (and healed)",
            Scenario::GitOutage => "the config repo disappears: nothing destroyed, recovery",
            Scenario::MetricsOutage => {
                "Prometheus stops mid-analysis: inconclusive, no promotion, no revert"
            }
            Scenario::CrashMidRollout => "the engine is killed mid-canary and resumes",
            Scenario::ManualRollback => {
                "a wrong but healthy-looking version is rolled back by an operator's command"
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Rollback => "rollback",
            Scenario::BadSignature => "bad-signature",
            Scenario::ConfigDrift => "config-drift",
            Scenario::GitOutage => "git-outage",
            Scenario::MetricsOutage => "metrics-outage",
            Scenario::CrashMidRollout => "crash-mid-rollout",
            Scenario::ManualRollback => "manual-rollback",
        }
    }
}

impl std::str::FromStr for Scenario {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not a drill; one of: {}",
                    Scenario::ALL.map(Scenario::name).join(", ")
                )
            })
    }
}

/// One check the drill made of the platform's behaviour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

/// One drill run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillRun {
    pub scenario: Scenario,
    pub env: String,
    pub started: DateTime<Utc>,
    /// Phase → milliseconds, in the order they happened.
    pub phases: Vec<(String, u64)>,
    pub checks: Vec<Check>,
    /// The release the drill made, if any (its audit record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    /// Whether the env is back where it started.
    pub restored: bool,
    /// The post-check line (rollback): what PromQL said after recovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_check: Option<String>,
    /// Why the drill could not run or stopped (not the platform's fault).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl DrillRun {
    pub fn new(scenario: Scenario, env: &str, started: DateTime<Utc>) -> Self {
        Self {
            scenario,
            env: env.to_string(),
            started,
            phases: Vec::new(),
            checks: Vec::new(),
            release: None,
            restored: false,
            post_check: None,
            error: None,
        }
    }

    /// The platform behaved: every check passed, nothing went wrong
    /// running the drill, and the env is back where it started.
    pub fn success(&self) -> bool {
        self.error.is_none()
            && self.restored
            && !self.checks.is_empty()
            && self.checks.iter().all(|c| c.ok)
    }

    pub fn check(&mut self, what: &str, ok: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            what: what.to_string(),
            ok,
            detail: detail.into(),
        });
    }

    pub fn phase(&mut self, name: &str, ms: u64) {
        self.phases.push((name.to_string(), ms));
    }

    /// The whole drill's measured time: the `drill` phase (start to end,
    /// image build and post check included), else the sum of the phases.
    pub fn total_ms(&self) -> u64 {
        self.phases
            .iter()
            .find(|(n, _)| n == "drill")
            .map(|(_, v)| *v)
            .unwrap_or_else(|| self.phases.iter().map(|(_, v)| v).sum())
    }

    /// The drill's output lines: `rollback: success in 2m04s`, then the post check.
    pub fn summary_lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "{}: {} in {}",
            self.scenario.name(),
            if self.success() { "success" } else { "failure" },
            mmss(self.total_ms())
        )];
        if let Some(p) = &self.post_check {
            out.push(format!("post_check: {p}"));
        }
        out
    }

    /// The whole report for people.
    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# Drill {} in {} — {}\n\nStarted {}.\n\n",
            self.scenario.name(),
            self.env,
            if self.success() { "success" } else { "FAILURE" },
            self.started.format("%Y-%m-%d %H:%M:%S UTC")
        );
        for l in self.summary_lines() {
            s.push_str(&format!("    {l}\n"));
        }
        s.push_str("\n| phase | time |\n|---|---|\n");
        for (p, ms) in &self.phases {
            s.push_str(&format!("| {p} | {} |\n", human_ms(*ms)));
        }
        s.push_str("\n| check | result | detail |\n|---|---|---|\n");
        for c in &self.checks {
            s.push_str(&format!(
                "| {} | {} | {} |\n",
                c.what,
                if c.ok { "ok" } else { "FAILED" },
                c.detail.replace('|', "/").replace('\n', " ")
            ));
        }
        if let Some(r) = &self.release {
            s.push_str(&format!(
                "\nRelease: {r} (`platform-capstone audit show {r}`).\n"
            ));
        }
        s.push_str(&format!(
            "\nEnvironment back at its starting state: {}.\n",
            if self.restored { "yes" } else { "NO" }
        ));
        if let Some(e) = &self.error {
            s.push_str(&format!("\nDrill error: {e}\n"));
        }
        s
    }
}

/// `2m04s`, `41s`, `850ms`.
pub fn mmss(ms: u64) -> String {
    let s = ms / 1000;
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s > 0 {
        format!("{s}s")
    } else {
        format!("{ms}ms")
    }
}

fn human_ms(ms: u64) -> String {
    if ms >= 1000 {
        format!("{:.1} s", ms as f64 / 1000.0)
    } else {
        format!("{ms} ms")
    }
}

/// Nearest-rank percentile of `v` (sorted here), `p` in (0, 100].
pub fn percentile(v: &[u64], p: f64) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_unstable();
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s.get(rank.min(s.len()) - 1).copied()
}

/// Repeated runs: success rate and p50/p95 per phase (successful runs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub scenario: Scenario,
    pub runs: usize,
    pub successes: usize,
    /// Phase → (p50 ms, p95 ms), phases in first-seen order.
    pub phases: Vec<(String, u64, u64)>,
}

pub fn summarize(runs: &[DrillRun]) -> Option<Summary> {
    let scenario = runs.first()?.scenario;
    let mut order: Vec<String> = Vec::new();
    let mut by: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in runs.iter().filter(|r| r.success()) {
        for (p, ms) in &r.phases {
            if !order.contains(p) {
                order.push(p.clone());
            }
            by.entry(p.clone()).or_default().push(*ms);
        }
    }
    Some(Summary {
        scenario,
        runs: runs.len(),
        successes: runs.iter().filter(|r| r.success()).count(),
        phases: order
            .into_iter()
            .filter_map(|p| {
                let v = by.get(&p)?;
                Some((p, percentile(v, 50.0)?, percentile(v, 95.0)?))
            })
            .collect(),
    })
}

impl Summary {
    pub fn lines(&self) -> Vec<String> {
        let mut out = vec![format!(
            "{}: {}/{} succeeded ({:.0}%)",
            self.scenario.name(),
            self.successes,
            self.runs,
            100.0 * self.successes as f64 / self.runs.max(1) as f64
        )];
        for (p, p50, p95) in &self.phases {
            out.push(format!(
                "  {p}: p50 {} p95 {}",
                human_ms(*p50),
                human_ms(*p95)
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_percentiles_and_success() {
        assert_eq!(mmss(124_000), "2m04s");
        assert_eq!(mmss(41_200), "41s");
        assert_eq!(mmss(850), "850ms");
        assert_eq!(percentile(&[5, 1, 4, 2, 3], 50.0), Some(3));
        assert_eq!(percentile(&[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95.0), Some(10));
        assert_eq!(percentile(&[], 50.0), None);

        let mut ok = DrillRun::new(Scenario::Rollback, "dev", Utc::now());
        ok.phase("detect", 12_000);
        ok.phase("drill", 30_000);
        ok.check("reverted", true, "abc");
        ok.restored = true;
        ok.post_check = Some("error budget and latency returned to baseline".into());
        assert!(ok.success());
        assert_eq!(
            ok.summary_lines(),
            vec![
                "rollback: success in 30s".to_string(),
                "post_check: error budget and latency returned to baseline".to_string()
            ]
        );
        let mut bad = ok.clone();
        bad.check(
            "fault caught by the health gate",
            false,
            "release completed",
        );
        assert!(!bad.success());
        assert!(bad.summary_lines()[0].starts_with("rollback: failure in"));
        let mut unrestored = ok.clone();
        unrestored.restored = false;
        assert!(
            !unrestored.success(),
            "a drill that leaves the env changed failed"
        );
        let s = summarize(&[ok.clone(), bad, ok]).unwrap();
        assert_eq!((s.runs, s.successes), (3, 2));
        assert_eq!(s.phases[0], ("detect".to_string(), 12_000, 12_000));
        assert!(
            s.lines()[0].contains("2/3 succeeded (67%)"),
            "{:?}",
            s.lines()
        );
    }
}
