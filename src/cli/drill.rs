//! `platform-capstone drill`: rehearse a failure mode for real and measure
//! how the platform recovers (docs/runbooks.md).

use super::Output;
use crate::config::DaemonConfig;
use crate::drill::run::DrillContext;
use crate::drill::{DrillRun, Scenario, summarize};
use crate::wiring;
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Breaks something real on purpose in one environment and checks that the \
platform behaves, timing every phase:\n\n\
  rollback           a faulty but properly signed version (--fault-*) is released; the health \
gate must catch it, put all traffic back on stable and revert the commit; then PromQL must show \
the error ratio and latency back at the baseline and the burn rate under 1x\n\
  bad-signature      a version signed by a key nobody trusts must never reach the target\n\
  config-drift       a live edit through podman must be detected (and healed in heal mode)\n\
  git-outage         the (file://) remote disappears: nothing destructive, recovery when it returns; \
with --operator-key, a version is released first and rolled back by command during the outage (live \
at once, the commit pushed once git is back)\n\
  metrics-outage     Prometheus is killed during analysis: inconclusive, no promotion, no revert\n\
  crash-mid-rollout  the engine is killed mid-canary; restarted, it resumes and completes\n\
  manual-rollback    a wrong but healthy-looking version completes; an operator rolls it back by \
command (--operator-key): the previous release live at once, a signed commit, quarantine\n\n\
A drill releases only into its env (never promotes) and returns the env to where it started. \
Each run writes a report (state dir drills/<env>/, Markdown + JSON) and an audit entry (the \
note of the env's head). --repeat N prints the success rate and p50/p95 of each phase. \
Exit 0 when every run succeeded, 1 otherwise, 4 when no drill could start."
)]
pub struct Args {
    #[arg(long, value_enum)]
    scenario: ScenarioArg,
    #[command(flatten)]
    config: super::ConfigArg,
    /// The environment (default: the first of the promotion chain).
    #[arg(long)]
    env: Option<String>,
    /// Run the drill N times; report success rate and percentiles.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat: u32,
    /// Cosign private key signing drill images (the release key the env trusts).
    #[arg(long, value_name = "PATH")]
    key: Option<PathBuf>,
    /// The static demo binary drill images are built from.
    #[arg(long, value_name = "PATH")]
    demo_binary: Option<PathBuf>,
    /// An operator's SSH key signing the drill's rollback (manual-rollback,
    /// git-outage); its public key must be in the pinned trust.operators.
    #[arg(long, value_name = "PATH", requires = "operator")]
    operator_key: Option<PathBuf>,
    /// The operator's principal (as in the operators file).
    #[arg(long, requires = "operator_key")]
    operator: Option<String>,
    /// Share of requests the faulty version fails (rollback).
    #[arg(long, default_value_t = 0.3)]
    fault_error_ratio: f64,
    /// Latency the faulty version adds, milliseconds (rollback).
    #[arg(long, default_value_t = 300)]
    fault_latency_ms: u64,
    #[command(flatten)]
    targets: super::Targets,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if !(0.0..=1.0).contains(&a.fault_error_ratio) {
        return Err(super::usage(format!(
            "--fault-error-ratio {}: must be between 0 and 1",
            a.fault_error_ratio
        )));
    }
    let config = a.config.path()?;
    let cfg = DaemonConfig::load(&config)?;
    let env = match &a.env {
        Some(e) => e.clone(),
        None => {
            wiring::Workspace::new(&cfg, &config, &cfg.cache_dir)?;
            cfg.trust
                .envs
                .first()
                .cloned()
                .context("trust.envs pins no environment")?
        }
    };
    let cosign_key = match &a.key {
        Some(p) => {
            let pem =
                std::fs::read_to_string(p).with_context(|| format!("--key {}", p.display()))?;
            Some(
                crate::cosign_key::load(&pem)
                    .map_err(|e| anyhow::anyhow!("--key {}: {e}", p.display()))?,
            )
        }
        None => None,
    };
    let (local, prometheus) = a.targets.resolve(&cfg);
    let operator = match (&a.operator_key, &a.operator) {
        (Some(k), Some(p)) => Some(
            crate::signing::Signer::load(
                k,
                crate::signing::Identity {
                    name: p.clone(),
                    email: p.clone(),
                },
            )
            .with_context(|| format!("--operator-key {}", k.display()))?,
        ),
        _ => None,
    };
    let ctx = DrillContext {
        cfg: &cfg,
        operator,
        config_file: &config,
        local,
        prometheus,
        cosign_key,
        demo_binary: a.demo_binary.clone(),
        fault_error_ratio: a.fault_error_ratio,
        fault_latency_ms: a.fault_latency_ms,
        exe: std::env::current_exe().context("this program's path")?,
    };
    let json = a.output.is_data();
    let mut runs: Vec<DrillRun> = Vec::new();
    for i in 0..a.repeat {
        if a.repeat > 1 {
            eprintln!("== {} run {}/{}", a.scenario.0.name(), i + 1, a.repeat);
        }
        let r = crate::drill::run::run(&ctx, a.scenario.0, &env, &mut |l| eprintln!("{l}"));
        if !json {
            for l in r.summary_lines() {
                println!("{l}");
            }
            let split: Vec<String> = r
                .phases
                .iter()
                .map(|(p, ms)| format!("{p} {}", crate::drill::mmss(*ms)))
                .collect();
            if !split.is_empty() {
                println!("  phases: {}", split.join(", "));
            }
            for c in r.checks.iter().filter(|c| !c.ok) {
                println!("  FAILED: {}: {}", c.what, c.detail);
            }
            if let Some(e) = &r.error {
                println!("  error: {e}");
            }
            if !r.restored {
                println!(
                    "  the env is NOT back at its starting state; see the report in the state dir"
                );
            }
        }
        runs.push(r);
    }
    let summary = summarize(&runs);
    if json {
        super::print_data(
            a.output,
            &serde_json::json!({"runs": runs, "summary": summary}),
        )?;
    } else if a.repeat > 1
        && let Some(s) = &summary
    {
        for l in s.lines() {
            println!("{l}");
        }
    }
    Ok(ExitCode::from(if runs.iter().all(DrillRun::success) {
        super::exit::OK
    } else {
        super::exit::NO
    }))
}

/// `--scenario`: a drill scenario with its values and help from the drill
/// core (which knows nothing of the command line).
#[derive(Debug, Clone, Copy)]
pub struct ScenarioArg(pub Scenario);

const SCENARIO_ARGS: [ScenarioArg; 7] = {
    let s = Scenario::ALL;
    [
        ScenarioArg(s[0]),
        ScenarioArg(s[1]),
        ScenarioArg(s[2]),
        ScenarioArg(s[3]),
        ScenarioArg(s[4]),
        ScenarioArg(s[5]),
        ScenarioArg(s[6]),
    ]
};

impl clap::ValueEnum for ScenarioArg {
    fn value_variants<'a>() -> &'a [Self] {
        &SCENARIO_ARGS
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.0.name()).help(self.0.about()))
    }
}
