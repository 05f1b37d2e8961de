//! `platform-capstone windows`: when promotions into an env may land — its
//! allow and deny windows, whether one is open now, and the next openings
//! and closings.

use super::{Output, usage};
use crate::config;
use crate::schedule::cron::{Tz, local, parse_timezone};
use crate::schedule::windows::{self, Opening};
use crate::schedule::{Window, WindowKind};
use crate::source::{DirReader, Git2Repo, GitRepo, TreeReader};
use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Lists when promotions into an environment may land: its promotion \
windows (crontab schedules, each in its own IANA time zone, opening for a duration; \
`allow` windows admit promotions, `deny` windows freeze them and win over allow windows), \
whether promotions may land now, and the next N stretches of time in which they may, with \
their opening and closing times. Times are shown in the windows' time zone when they all \
share one (else UTC, or --tz); JSON gives RFC 3339 instants. Rollbacks ignore windows. \
The env is read from its own branch (env/<ENV>) when --repo is a git repository that has \
it, else from the files of --repo; --rev picks another revision."
)]
pub struct Args {
    /// The environment.
    #[arg(long, value_name = "ENV")]
    env: String,
    /// Config repository (a directory or a git repository).
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// Read the env file at this revision [default: env/<ENV> when the repo has it].
    #[arg(long)]
    rev: Option<String>,
    /// Start from this instant (RFC 3339, e.g. 2026-12-24T08:00:00+01:00) [default: now].
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// How many openings to list.
    #[arg(short = 'n', long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=1000))]
    count: u16,
    /// Show times in this IANA time zone [default: the windows' own zone when they share one, else UTC].
    #[arg(long, value_name = "ZONE")]
    tz: Option<String>,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Debug, Serialize)]
struct WindowView {
    kind: WindowKind,
    schedule: String,
    timezone: String,
    duration: String,
}

#[derive(Debug, Serialize)]
struct Report {
    env: String,
    source: String,
    from: DateTime<Utc>,
    /// Promotions may land at `from`.
    open: bool,
    /// Why not, when closed.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    windows: Vec<WindowView>,
    openings: Vec<Opening>,
}

fn read_env(a: &Args) -> anyhow::Result<(String, config::Env)> {
    let load = |tree: &dyn TreeReader| {
        config::load_own_env(tree, &a.env).map_err(|problems| {
            let lines: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            anyhow::anyhow!("{}", lines.join("\n"))
        })
    };
    let repo = if a.repo.join(".git").exists() || a.rev.is_some() {
        Some(Git2Repo::open_local(&a.repo)?)
    } else {
        None
    };
    let rev = match (&a.rev, &repo) {
        (Some(r), _) => Some(r.clone()),
        (None, Some(repo)) => {
            let branch = format!("env/{}", a.env);
            repo.resolve(&branch).ok().map(|_| branch)
        }
        (None, None) => None,
    };
    match (rev, repo) {
        (Some(rev), Some(repo)) => {
            let commit = repo.resolve(&rev)?;
            let reader = repo.reader(&commit)?;
            Ok((
                format!("{rev} ({})", &commit[..12.min(commit.len())]),
                load(reader.as_ref())?,
            ))
        }
        _ => {
            let reader = DirReader::open(&a.repo).context("windows --repo")?;
            Ok((reader.describe(), load(&reader)?))
        }
    }
}

/// The zone times are shown in.
fn display_zone(a: &Args, ws: &[Window]) -> anyhow::Result<Tz> {
    if let Some(name) = &a.tz {
        return parse_timezone(name).map_err(|e| usage(format!("--tz: {}; {}", e.message, e.fix)));
    }
    let first = ws.first().map(|w| w.schedule.timezone());
    Ok(match first {
        Some(tz) if ws.iter().all(|w| w.schedule.timezone() == tz) => tz,
        _ => Tz::UTC,
    })
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let from = match &a.from {
        None => Utc::now(),
        Some(s) => DateTime::parse_from_rfc3339(s)
            .map_err(|e| {
                usage(format!(
                    "--from {s:?}: {e}; write an RFC 3339 time such as 2026-12-24T08:00:00Z"
                ))
            })?
            .with_timezone(&Utc),
    };
    let (source, env) = read_env(&a)?;
    let ws = &env.promotion.windows;
    let zone = display_zone(&a, ws)?;
    let report = Report {
        env: env.name.clone(),
        source,
        from,
        open: windows::is_open(ws, from),
        reason: windows::check(ws, from).err(),
        windows: ws
            .iter()
            .map(|w| WindowView {
                kind: w.kind,
                schedule: w.schedule.expr().to_string(),
                timezone: w.schedule.timezone().name().to_string(),
                duration: humantime::format_duration(w.duration).to_string(),
            })
            .collect(),
        openings: windows::openings(ws, from, a.count.into()),
    };
    match a.output {
        Output::Text => super::write_stdout(&text(&report, zone))?,
        other => super::print_data(other, &report)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn text(r: &Report, zone: Tz) -> String {
    let mut out = format!("{} ({}): ", r.env, r.source);
    if r.windows.is_empty() {
        out.push_str("no promotion windows: promotions land at any time\n");
        return out;
    }
    out.push_str(&format!("{} promotion window(s)\n", r.windows.len()));
    for w in &r.windows {
        out.push_str(&format!(
            "  {:<5}  {:<20} {:<16} for {}\n",
            match w.kind {
                WindowKind::Allow => "allow",
                WindowKind::Deny => "deny",
            },
            w.schedule,
            w.timezone,
            w.duration
        ));
    }
    match &r.reason {
        None => out.push_str(&format!("now ({}): open\n", local(r.from, zone))),
        Some(why) => out.push_str(&format!("now ({}): closed, {why}\n", local(r.from, zone))),
    }
    if r.openings.is_empty() {
        out.push_str(&format!(
            "no opening within {} days\n",
            windows::HORIZON_DAYS
        ));
        return out;
    }
    out.push_str(&format!("{:<28}  {}\n", "OPENS", "CLOSES"));
    for o in &r.openings {
        let opens = if o.opens == r.from {
            "now".to_string()
        } else {
            local(o.opens, zone)
        };
        let closes = o.closes.map_or_else(
            || format!("not within {} days", windows::HORIZON_DAYS),
            |c| local(c, zone),
        );
        out.push_str(&format!("{opens:<28}  {closes}\n"));
    }
    out
}
