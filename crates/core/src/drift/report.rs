//! Drift reports for the platform team: one [`EnvReport`] per env, as JSON
//! (the data) and Markdown (for people, and for the `reports` branch). A
//! report opens with one summary line per env. Pure: nothing here reads
//! the cluster or writes a file. Secret values never reach this module
//! (diffs are masked by the core before they are made).

use super::slo::{SloDrift, SloStatus};
use super::{ObjectDrift, Status};
use crate::config::DriftMode;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvReport {
    pub env: String,
    pub checked_at: DateTime<Utc>,
    pub mode: DriftMode,
    /// The release live in the env, its commit and version.
    pub release: Option<String>,
    pub commit: Option<String>,
    pub version: Option<String>,
    /// Why nothing was compared (release in progress, nothing released).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    /// Live state could not be read: config drift unknown (never "in sync").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
    /// Objects not in sync (modified, missing, extra).
    #[serde(default)]
    pub drifted: Vec<ObjectDrift>,
    pub in_sync: usize,
    /// Desired objects this target cannot observe (podman: all but Deployments).
    #[serde(default)]
    pub not_observable: usize,
    /// Since when config drift has been present without a break.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drifting_since: Option<DateTime<Utc>>,
    #[serde(default)]
    pub slos: Vec<SloDrift>,
    /// `Kind/name` re-applied by heal mode in this check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub healed: Vec<String>,
    /// What the drift stage handed to the release engine (SLO drift right
    /// after a release: rolled back and reverted), or why it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handed_over: Option<String>,
}

impl EnvReport {
    /// A report that compared nothing, and why.
    pub fn skipped(env: &str, mode: DriftMode, now: DateTime<Utc>, why: String) -> Self {
        Self {
            env: env.to_string(),
            checked_at: now,
            mode,
            release: None,
            commit: None,
            version: None,
            skipped: Some(why),
            config_error: None,
            drifted: Vec::new(),
            in_sync: 0,
            not_observable: 0,
            drifting_since: None,
            slos: Vec::new(),
            healed: Vec::new(),
            handed_over: None,
        }
    }

    pub fn config_drifted(&self) -> bool {
        !self.drifted.is_empty()
    }

    /// SLOs burning or regressed (not no-data).
    pub fn slo_drifted(&self) -> Vec<&SloDrift> {
        self.slos
            .iter()
            .filter(|s| {
                matches!(
                    s.status,
                    SloStatus::Burning { .. } | SloStatus::Regressed { .. }
                )
            })
            .collect()
    }

    /// Whether everything was measured and found in order.
    pub fn healthy(&self) -> bool {
        self.skipped.is_none()
            && self.config_error.is_none()
            && self.drifted.is_empty()
            && self.slos.iter().all(SloDrift::is_ok)
    }

    /// The one line this env gets at the top of a report.
    pub fn summary(&self) -> String {
        if let Some(why) = &self.skipped {
            return format!("{}: not checked ({why})", self.env);
        }
        let mut parts = Vec::new();
        if let Some(e) = &self.config_error {
            parts.push(format!("config drift unknown ({e})"));
        } else if self.drifted.is_empty() {
            parts.push("in sync".to_string());
        } else {
            let count =
                |f: fn(&Status) -> bool| self.drifted.iter().filter(|o| f(&o.status)).count();
            let kinds: Vec<String> = [
                ("modified", count(|s| matches!(s, Status::Modified { .. }))),
                ("missing", count(|s| matches!(s, Status::Missing))),
                ("extra", count(|s| matches!(s, Status::Extra))),
            ]
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
            parts.push(format!(
                "{} object{} drifted ({})",
                self.drifted.len(),
                if self.drifted.len() == 1 { "" } else { "s" },
                kinds.join(", ")
            ));
        }
        for s in &self.slos {
            match &s.status {
                SloStatus::Ok => {}
                SloStatus::Burning {
                    severity, alert, ..
                } => parts.push(format!(
                    "SLO {} burning ({}, {alert})",
                    s.slo,
                    serde_json::to_value(severity)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default()
                )),
                SloStatus::Regressed { .. } => parts.push(format!("SLO {} regressed", s.slo)),
                SloStatus::NoData { .. } => parts.push(format!("SLO {} no data", s.slo)),
            }
        }
        if !self.healed.is_empty() {
            parts.push(format!("healed {}", self.healed.len()));
        }
        if let Some(h) = &self.handed_over {
            parts.push(h.clone());
        }
        format!("{}: {}", self.env, parts.join("; "))
    }
}

/// Markdown for a set of env reports: summary lines first, then details.
pub fn markdown(reports: &[EnvReport]) -> String {
    let mut out = String::from("# Drift report\n\n");
    for r in reports {
        out.push_str(&format!("- {}\n", r.summary()));
    }
    for r in reports {
        out.push_str(&format!("\n## {}\n\n", r.env));
        out.push_str(&format!(
            "Checked {} in `{}` mode",
            r.checked_at.format("%Y-%m-%d %H:%M:%S UTC"),
            match r.mode {
                DriftMode::Report => "report",
                DriftMode::Heal => "heal",
            }
        ));
        if let (Some(rel), Some(c)) = (&r.release, &r.commit) {
            out.push_str(&format!(
                "; live: {rel} ({}) at `{}`",
                r.version.as_deref().unwrap_or("?"),
                &c[..12.min(c.len())]
            ));
        }
        out.push_str(".\n");
        if let Some(why) = &r.skipped {
            out.push_str(&format!("\nNot checked: {why}.\n"));
            continue;
        }
        out.push_str("\n### Config\n\n");
        if let Some(e) = &r.config_error {
            out.push_str(&format!("Live state unreadable: {e}\n"));
        } else {
            out.push_str(&format!(
                "{} in sync, {} drifted{}.\n",
                r.in_sync,
                r.drifted.len(),
                if r.not_observable > 0 {
                    format!(", {} not observable on this target", r.not_observable)
                } else {
                    String::new()
                }
            ));
            if let Some(since) = r.drifting_since {
                out.push_str(&format!(
                    "Drifting since {}.\n",
                    since.format("%Y-%m-%d %H:%M:%S UTC")
                ));
            }
            for o in &r.drifted {
                match &o.status {
                    Status::Modified { diff } => out.push_str(&format!(
                        "\n- **{}/{}** modified:\n\n```diff\n{}```\n",
                        o.kind, o.name, diff
                    )),
                    Status::Missing => out.push_str(&format!(
                        "\n- **{}/{}** missing (desired, not live)\n",
                        o.kind, o.name
                    )),
                    Status::Extra => out.push_str(&format!(
                        "\n- **{}/{}** extra (ours by inventory label, not desired)\n",
                        o.kind, o.name
                    )),
                    Status::InSync => {}
                }
            }
        }
        if !r.slos.is_empty() {
            out.push_str("\n### SLOs\n\n| SLO | status | burn rates | now | at promotion |\n|---|---|---|---|---|\n");
            for s in &r.slos {
                let status = match &s.status {
                    SloStatus::Ok => "ok".to_string(),
                    SloStatus::Burning {
                        severity,
                        alert,
                        burn_long,
                        burn_short,
                    } => format!(
                        "burning ({}: {alert}; {burn_long:.1}x / {burn_short:.1}x)",
                        match severity {
                            crate::config::Severity::Page => "page",
                            crate::config::Severity::Ticket => "ticket",
                        }
                    ),
                    SloStatus::Regressed { detail } => format!("regressed: {detail}"),
                    SloStatus::NoData { reason } => format!("no data: {reason}"),
                };
                let rates: Vec<String> = s
                    .burn_rates
                    .iter()
                    .map(|(w, b)| match b {
                        Some(b) => format!("{w} {b:.2}x"),
                        None => format!("{w} —"),
                    })
                    .collect();
                let num = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or("—".into());
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    s.slo,
                    status.replace('|', "/"),
                    rates.join(", "),
                    num(s.current),
                    num(s.baseline)
                ));
            }
        }
        if !r.healed.is_empty() {
            out.push_str(&format!("\nHealed: {}.\n", r.healed.join(", ")));
        }
        if let Some(h) = &r.handed_over {
            out.push_str(&format!("\nHanded to the release engine: {h}.\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_say_in_sync_drifted_burning_or_why_not_checked() {
        let now = Utc::now();
        let mut r = EnvReport::skipped("dev", DriftMode::Report, now, String::new());
        r.skipped = None;
        assert_eq!(r.summary(), "dev: in sync");
        r.drifted.push(ObjectDrift {
            kind: "Deployment".into(),
            name: "demo".into(),
            status: Status::Modified {
                diff: "-a\n+b\n".into(),
            },
        });
        r.drifted.push(ObjectDrift {
            kind: "Deployment".into(),
            name: "api".into(),
            status: Status::Missing,
        });
        r.slos.push(SloDrift {
            slo: "availability".into(),
            status: SloStatus::Burning {
                severity: crate::config::Severity::Page,
                alert: "1h/5m at 14.4x".into(),
                burn_long: 20.0,
                burn_short: 30.0,
            },
            burn_rates: Default::default(),
            current: Some(0.02),
            baseline: Some(0.0),
        });
        assert_eq!(
            r.summary(),
            "dev: 2 objects drifted (1 modified, 1 missing); SLO availability burning (page, 1h/5m at 14.4x)"
        );
        let md = markdown(std::slice::from_ref(&r));
        assert!(
            md.starts_with("# Drift report\n\n- dev: 2 objects drifted"),
            "{md}"
        );
        assert!(md.contains("```diff\n-a\n+b\n```"), "{md}");
        assert!(!r.healthy());
        let back: EnvReport = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        let skipped = EnvReport::skipped(
            "prod",
            DriftMode::Heal,
            now,
            "a release is in progress".into(),
        );
        assert_eq!(
            skipped.summary(),
            "prod: not checked (a release is in progress)"
        );
    }
}
