//! `platform-capstone rollback`: an operator's signed rollback, carried out
//! here (`--config`) or by a running daemon (`--daemon`).

use super::Output;
use crate::config::DaemonConfig;
use crate::engine::rollback::{Done, Landed};
use crate::rollback::{NAMESPACE, Request, To};
use crate::signing::{Identity, Signer};
use crate::wiring::{self, Workspace};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Rolls environment E back to a good release at once: a running canary is \
aborted (traffic to stable first, then the canary removed), the chosen release runs as stable \
with all traffic — no canary steps, no bake, no window or approval in the way — and a signed \
commit on env/E restores its pins (trailers Rollback-Of, Actor, Reason, Release-Id). The \
digests rolled back from are quarantined (never released or promoted into E again) and the \
release's audit record says rolled-back, by whom and why.\n\n\
The default target is the good release before the one running; --to rel-ID picks a release \
that ran good in E, --to-commit SHA the pins of a commit of env/E. The target's digests must \
still verify their signatures.\n\n\
The request is signed with your SSH key (namespace platform-capstone-rollback) and checked \
against the operators the daemon config pins (trust.operators or trust.env.E.operators); it \
is valid for 10 minutes and once.\n\n\
With git unreachable the live rollback still happens at once from the last fetched state; the \
commit is queued and E is held (nothing is released there) until it lands: the daemon pushes \
it at its next poll, or run `rollback --env E --pending`. If env/E moved meanwhile, nothing \
is forced: the conflict is reported and E stays held (docs/runbooks.md).\n\n\
Exit 0: rolled back and committed; 3: rolled back live, commit pending; 1: refused or failed."
)]
pub struct Args {
    /// The environment to roll back.
    #[arg(long)]
    env: String,
    /// A release that ran good in the env [default: the one before what runs].
    #[arg(long, value_name = "ID", conflicts_with = "to_commit")]
    to: Option<String>,
    /// A commit of env/E whose pins run again.
    #[arg(long, value_name = "SHA")]
    to_commit: Option<String>,
    /// Why (goes into the commit and the audit record).
    #[arg(long, required_unless_present = "pending")]
    reason: Option<String>,
    /// Your SSH private key (its public key must be in the pinned operators).
    #[arg(long, value_name = "PATH", required_unless_present = "pending")]
    key: Option<PathBuf>,
    /// Your principal (as in the operators file).
    #[arg(long, required_unless_present = "pending")]
    principal: Option<String>,
    /// Show the env's pending rollback and push its commit now if git answers.
    #[arg(long, conflicts_with_all = ["to", "to_commit", "reason", "key", "principal", "daemon"])]
    pending: bool,
    #[command(flatten)]
    via: super::Via,
    /// How long a release in progress in another process gets to stop, seconds.
    #[arg(long, value_name = "SECS", default_value_t = 120)]
    wait: u64,
    #[command(flatten)]
    targets: super::Targets,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.pending {
        return pending(&a);
    }
    let request = sign(&a)?;
    let done = match (&a.via.daemon, &a.via.token_file) {
        (Some(url), Some(token)) => via_daemon(url, token, &request)?,
        _ => here(&a, &request)?,
    };
    print(&done, a.output)?;
    Ok(exit_code(&done.commit))
}

/// The request, signed with the operator's key.
fn sign(a: &Args) -> anyhow::Result<Request> {
    let (Some(key), Some(principal), Some(reason)) = (&a.key, &a.principal, &a.reason) else {
        return Err(super::usage("--key, --principal and --reason are required"));
    };
    let signer = Signer::load(
        key,
        Identity {
            name: principal.clone(),
            email: principal.clone(),
        },
    )
    .with_context(|| format!("--key {}", key.display()))?;
    let mut request = Request {
        env: a.env.clone(),
        to: match (&a.to, &a.to_commit) {
            (Some(r), _) => To::Release(r.clone()),
            (None, Some(c)) => To::Commit(c.clone()),
            (None, None) => To::Previous,
        },
        reason: reason.clone(),
        at: chrono::Utc::now(),
        principal: principal.clone(),
        signature: String::new(),
    };
    request.signature = signer.sign(NAMESPACE, &request.payload())?;
    Ok(request)
}

/// The rollback's own workspace (`cache_dir/rollback`: a release running
/// from this config holds the CLI's cache), brought up to what this
/// machine's other caches hold, then fetched; from the last fetched state
/// when git does not answer (a rollback must not wait for git).
fn workspace(cfg: &DaemonConfig, config: &std::path::Path) -> anyhow::Result<Workspace> {
    let mut ws = Workspace::new(cfg, config, &cfg.cache_dir.join("rollback"))?;
    let others = [cfg.cache_dir.clone(), cfg.cache_dir.join("poll")];
    if let Some(warning) = ws.refresh_or_local(&cfg.remote, &others)? {
        eprintln!("warning: {warning}; working from the last fetched state");
    }
    Ok(ws)
}

fn here(a: &Args, request: &Request) -> anyhow::Result<Done> {
    let config = &super::config_path(a.via.config.as_deref())?;
    let cfg = DaemonConfig::load(config)?;
    let mut ws = workspace(&cfg, config)?;
    let env = ws.env(&a.env)?.clone();
    let (local, prometheus) = a.targets.resolve(&cfg);
    let adapters = wiring::adapters(&env, &local, prometheus.as_deref(), cfg.scrape_settle)?;
    Ok(wiring::rollback(
        &mut ws,
        &adapters,
        &env,
        request,
        Duration::from_secs(a.wait),
    )?)
}

fn via_daemon(url: &str, token_file: &std::path::Path, request: &Request) -> anyhow::Result<Done> {
    let path = format!("/api/v1/envs/{}/rollback", request.env);
    let (endpoint, body) =
        super::Via::post(url, token_file, &path, request, Duration::from_secs(300))?;
    let v: serde_json::Value =
        serde_json::from_str(&body).with_context(|| format!("POST {endpoint}: answer"))?;
    done_from_json(&v).with_context(|| format!("POST {endpoint}: unexpected answer {body}"))
}

fn done_from_json(v: &serde_json::Value) -> Option<Done> {
    let s = |k: &str| v[k].as_str().map(str::to_string);
    let commit = match v["commit"]["state"].as_str()? {
        "pushed" => Landed::Pushed {
            commit: v["commit"]["commit"].as_str()?.to_string(),
        },
        "queued" => Landed::Queued {
            why: v["commit"]["why"].as_str()?.to_string(),
        },
        "conflict" => Landed::Conflict {
            head: v["commit"]["head"].as_str()?.to_string(),
        },
        _ => return None,
    };
    Some(Done {
        env: s("env")?,
        from: s("from")?,
        to: s("to")?,
        to_commit: s("to_commit")?,
        by: s("by")?,
        to_stable_ms: v["to_stable_ms"].as_u64()?,
        quarantined: v["quarantined"]
            .as_array()?
            .iter()
            .filter_map(|q| q.as_str().map(str::to_string))
            .collect(),
        commit,
    })
}

fn print(d: &Done, output: Output) -> anyhow::Result<()> {
    if output.is_data() {
        return super::print_data(output, d);
    }
    println!("rollback {}: {} → {} (by {})", d.env, d.from, d.to, d.by);
    println!(
        "  live: all traffic on {} after {:.1} s",
        d.to,
        d.to_stable_ms as f64 / 1000.0
    );
    if !d.quarantined.is_empty() {
        println!("  quarantined: {}", d.quarantined.join(", "));
    }
    println!("  commit: {}", landed_line(&d.env, &d.commit));
    Ok(())
}

fn landed_line(env: &str, l: &Landed) -> String {
    match l {
        Landed::Pushed { commit } => format!(
            "{commit} pushed to env/{env} (signed; check: git verify-commit {})",
            &commit[..12.min(commit.len())]
        ),
        Landed::Queued { why } => format!(
            "queued ({why}); {env} is held until it lands: the daemon pushes it at its next poll, or run `rollback --env {env} --pending`"
        ),
        Landed::Conflict { head } => format!(
            "NOT pushed: env/{env} moved to {} since; nothing forced, {env} stays held (docs/runbooks.md: a rollback conflict)",
            &head[..12.min(head.len())]
        ),
    }
}

fn exit_code(l: &Landed) -> ExitCode {
    match l {
        Landed::Pushed { .. } => ExitCode::SUCCESS,
        Landed::Queued { .. } => ExitCode::from(super::exit::WAITING),
        Landed::Conflict { .. } => ExitCode::from(super::exit::NO),
    }
}

/// `--pending`: the env's held rollback, pushed now when git answers.
fn pending(a: &Args) -> anyhow::Result<ExitCode> {
    let config = &super::config_path(a.via.config.as_deref())?;
    let cfg = DaemonConfig::load(config)?;
    let mut ws = workspace(&cfg, config)?;
    let env = ws.env(&a.env)?.clone();
    let Some(p) = ws.store.rollback_pending(&env.name)? else {
        if a.output.is_data() {
            super::print_data(
                a.output,
                &serde_json::json!({ "env": env.name, "pending": null }),
            )?;
        } else {
            println!("{}: no pending rollback", env.name);
        }
        return Ok(ExitCode::SUCCESS);
    };
    let landed =
        crate::engine::rollback::flush(&mut ws.repo, &ws.store, &env)?.unwrap_or(Landed::Queued {
            why: "the hold disappeared".into(),
        });
    if a.output.is_data() {
        super::print_data(
            a.output,
            &serde_json::json!({ "env": env.name, "pending": p, "commit": landed }),
        )?;
    } else {
        println!("{}: {}", env.name, p.summary());
        println!("  commit: {}", landed_line(&env.name, &landed));
    }
    Ok(exit_code(&landed))
}
