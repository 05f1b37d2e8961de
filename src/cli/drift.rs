//! `platform-capstone drift`: config and SLO drift of each env, as a
//! report for people (Markdown) or scripts (JSON). Read-only unless
//! `--act` (then heal mode and the SLO hand-over run as the daemon runs
//! them).

use super::Output;
use crate::config::DaemonConfig;
use crate::drift::report::{EnvReport, markdown};
use crate::engine::Reporter;
use crate::wiring;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Compares each environment's live state with what it should run: the objects \
rendered at the commit that is live against the target's live objects (server-owned and \
defaulted fields ignored, Secret values masked by a stable hash: a change shows, the value \
never does), and each SLO's error-budget burn rate over the env's burn windows (default: the \
SRE workbook's 1h/5m at 14.4x, 6h/30m at 6x, 3d/6h at 1x) and against the baseline recorded \
when the live release was promoted. No data is never \"ok\".\n\n\
The report opens with one line per env, then the diffs and the SLO table. It is also kept in \
the state dir (reports/<env>/latest.md|json). Read-only by default; with --act, envs in heal \
mode re-apply drift older than their grace, and SLO drift right after a release hands it back \
to the release engine (rollback + signed revert), as the daemon does.\n\n\
Exit: 0 in sync, 1 drift found, 5 not fully measured (no data, live state unreadable), 4 on error."
)]
pub struct Args {
    #[command(flatten)]
    config: super::ConfigArg,
    /// Only this environment (default: all).
    #[arg(long)]
    env: Option<String>,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
    /// Heal (heal-mode envs) and hand SLO drift after a release to the engine.
    #[arg(long)]
    act: bool,
    #[command(flatten)]
    targets: super::Targets,
}

struct Quiet;
impl Reporter for Quiet {
    fn info(&mut self, line: &str) {
        eprintln!("{line}");
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let config = a.config.path()?;
    let cfg = DaemonConfig::load(&config)?;
    let (ws, _) = wiring::Workspace::open(&cfg, &config, &cfg.cache_dir, false)?;
    let wiring::Workspace {
        mut repo,
        signer,
        store,
        slots,
        ..
    } = ws;
    if let Some(e) = &a.env
        && !cfg.trust.pins(e)
    {
        return Err(super::usage(format!(
            "--env {e}: not a pinned environment (trust.envs: {})",
            cfg.trust.envs.join(", ")
        )));
    }
    let actor = format!("{} <{}> (drift)", cfg.identity.name, cfg.identity.email);
    let mut reports: Vec<EnvReport> = Vec::new();
    for slot in slots
        .iter()
        .filter(|s| a.env.as_ref().is_none_or(|n| n == &s.name))
    {
        // An env whose head is broken or untrusted: its own config cannot
        // be relied on to say what drift is.
        let Some(env) = slot.env() else {
            let mut r = EnvReport::skipped(
                &slot.name,
                crate::config::DriftMode::Report,
                chrono::Utc::now(),
                String::new(),
            );
            r.skipped = None;
            r.config_error = Some(format!(
                "{} is {}: {}",
                slot.name,
                slot.status(),
                slot.problem().unwrap_or_default()
            ));
            reports.push(r);
            continue;
        };
        let (local, prometheus) = a.targets.resolve(&cfg);
        let report = match wiring::adapters(env, &local, prometheus.as_deref(), cfg.scrape_settle) {
            Err(e) => {
                let mut r = EnvReport::skipped(
                    &env.name,
                    env.drift.mode,
                    chrono::Utc::now(),
                    String::new(),
                );
                r.skipped = None;
                r.config_error = Some(e.to_string());
                r
            }
            Ok(ad) => crate::drift::run::check(
                &mut repo, &store, &signer, &ad, env, &actor, a.act, &mut Quiet,
            )?,
        };
        reports.push(report);
    }
    match a.output {
        Output::Text => super::write_stdout(&markdown(&reports))?,
        data => super::print_data(data, &reports)?,
    }
    let drift = reports
        .iter()
        .any(|r| r.config_drifted() || !r.slo_drifted().is_empty());
    let unknown = reports.iter().any(|r| {
        r.config_error.is_some()
            || r.slos
                .iter()
                .any(|s| matches!(s.status, crate::drift::slo::SloStatus::NoData { .. }))
    });
    Ok(ExitCode::from(if drift {
        super::exit::NO
    } else if unknown {
        super::exit::UNKNOWN
    } else {
        0
    }))
}
