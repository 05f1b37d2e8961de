//! `platform-capstone status`: what every environment branch says runs.

use super::Output;
use crate::config::{self, DaemonConfig};
use crate::model::{ImagePin, pins_from_kustomization};
use crate::signing::{AllowedSigners, GIT_NAMESPACE};
use crate::source::{Git2Repo, GitRepo, SignatureState, TreeReader};
use crate::wiring;
use anyhow::Context;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "For every environment: its branch head (short sha, author, age), who \
signed it, whether the trust root accepts it, and the image digests pinned in its overlay. \
With --config, the daemon's pinned environments (trust.envs) are fetched from its remote \
into its cache and judged as the daemon judges them: head signed by a pinned signer, \
policies/ and envs/ vouched for by a policy signer, history only moving forward (TRUST \
says ready, untrusted or broken, and why). With --repo (default .), every env/* branch of a \
local repository, signatures checked against --allowed-signers; never against a file in \
the tree being judged (a commit could add its own key there)."
)]
pub struct Args {
    /// A local git repository holding the env branches.
    #[arg(long, conflicts_with = "config")]
    repo: Option<PathBuf>,
    /// Daemon config: fetch its remote (one fetch) and judge its pinned environments.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// allowed_signers file to verify head commits against (with --repo).
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    allowed_signers: Option<PathBuf>,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

#[derive(Debug, Serialize)]
pub struct EnvStatus {
    pub env: Option<String>,
    /// The environment this one promotes into, as its branch defines it.
    pub next: Option<String>,
    pub branch: String,
    pub commit: String,
    pub author: String,
    pub time: i64,
    pub age_seconds: i64,
    pub summary: String,
    pub signature: SignatureReport,
    /// With --config: ready, untrusted, broken or missing, and why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust: Option<TrustReport>,
    pub images: Vec<ImagePin>,
    /// Why the env definition or pins could not be read, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With --config: a manual rollback done live whose commit has not
    /// landed; nothing is released in the env until it does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub held: Option<crate::rollback::Pending>,
}

#[derive(Debug, Serialize)]
pub struct TrustReport {
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct SignatureReport {
    /// verified | unverified | invalid | unsigned
    pub state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let now = chrono::Utc::now().timestamp();
    let mut rows = Vec::new();
    if let Some(path) = &a.config {
        let cfg = DaemonConfig::load(path)?;
        let mut repo = Git2Repo::open_remote(&cfg.remote, &cfg.cache_dir, cfg.ssh_key.as_deref())?
            .with_max_file_size(cfg.max_file_size)
            .with_deadline(cfg.git_timeout);
        // The last fetched state when git does not answer: status matters
        // most during an outage.
        if let Err(e) = repo.fetch() {
            // Nothing fetched ever: nothing to show.
            if !e.is_infrastructure() || repo.heads()?.is_empty() {
                return Err(e.into());
            }
            eprintln!("warning: {e}; showing the last fetched state");
        }
        let store = crate::engine::store::Store::new(&cfg.state_dir);
        let (slots, _) = wiring::slots(&repo, &cfg.trust, Some(&store), false)?;
        for slot in &slots {
            let Some(head) = &slot.head else {
                continue;
            };
            let anchors = cfg.trust.anchors(&slot.name);
            let mut row = branch_status(
                &repo,
                &slot.branch,
                Some(&slot.name),
                anchors.map(|a| (&a.heads, a.heads_file.as_str())),
                now,
            )?;
            debug_assert_eq!(&row.commit, head);
            row.trust = Some(TrustReport {
                status: slot.status(),
                problem: slot.problem(),
            });
            row.held = store.rollback_pending(&slot.name)?;
            rows.push(row);
        }
    } else {
        let path = a.repo.clone().unwrap_or_else(|| PathBuf::from("."));
        let mut repo = Git2Repo::open_local(&path).with_context(|| "status --repo".to_string())?;
        repo.fetch()?;
        let fixed = match &a.allowed_signers {
            Some(p) => {
                let text =
                    std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?;
                Some(AllowedSigners::parse(&text).map_err(|problems| {
                    anyhow::anyhow!(
                        "{}: line {}: {}",
                        p.display(),
                        problems[0].line,
                        problems[0].message
                    )
                })?)
            }
            None => None,
        };
        let shown = a
            .allowed_signers
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        for branch in repo.heads()?.into_keys() {
            let name = branch
                .strip_prefix(crate::source::ENV_BRANCH_PREFIX)
                .map(str::to_string);
            rows.push(branch_status(
                &repo,
                &branch,
                name.as_deref(),
                fixed.as_ref().map(|s| (s, shown.as_str())),
                now,
            )?);
        }
        order_by_chain(&mut rows);
    }
    match a.output {
        o @ (Output::Json | Output::Yaml) => super::print_data(o, &rows)?,
        Output::Text => print_table(&rows),
    }
    Ok(ExitCode::SUCCESS)
}

/// One branch's row: its head, the signature checked against `signers`
/// (pinned outside the tree; `None`: not checked), and env `name` as the
/// branch itself defines it.
fn branch_status(
    repo: &dyn GitRepo,
    branch: &str,
    name: Option<&str>,
    signers: Option<(&AllowedSigners, &str)>,
    now: i64,
) -> anyhow::Result<EnvStatus> {
    let head = repo.head_info(branch)?;
    let reader = repo.reader(&head.commit)?;
    let signature = match (&head.signature, signers) {
        (SignatureState::Unsigned, _) => SignatureReport {
            state: "unsigned",
            principal: None,
            detail: None,
        },
        (SignatureState::Signed { .. }, None) => SignatureReport {
            state: "unverified",
            principal: None,
            detail: Some(
                "no pinned allowed_signers to check against (pass --allowed-signers, or --config); a file in the branch itself proves nothing".into(),
            ),
        },
        (SignatureState::Signed { signature, payload }, Some((s, file))) => {
            match s.verify(GIT_NAMESPACE, payload, signature, Some(head.time)) {
                Ok(v) => SignatureReport {
                    state: "verified",
                    principal: Some(v.principal),
                    detail: Some(v.fingerprint),
                },
                Err(e @ crate::signing::VerifyError::UnknownKey { .. }) => SignatureReport {
                    state: "unverified",
                    principal: None,
                    detail: Some(format!("{e} ({file})")),
                },
                Err(e) => SignatureReport {
                    state: "invalid",
                    principal: None,
                    detail: Some(e.to_string()),
                },
            }
        }
    };
    let (env, next, images, error) = match name {
        None => (
            None,
            None,
            Vec::new(),
            Some(format!("{branch} is not an env/* branch")),
        ),
        Some(n) => match own_pins(reader.as_ref(), n) {
            Ok((next, pins)) => (Some(n.to_string()), next, pins, None),
            Err(e) => (Some(n.to_string()), None, Vec::new(), Some(e)),
        },
    };
    Ok(EnvStatus {
        env,
        next,
        branch: branch.to_string(),
        commit: head.commit,
        author: head.author,
        time: head.time,
        age_seconds: (now - head.time).max(0),
        summary: head.summary,
        signature,
        trust: None,
        images,
        error,
        held: None,
    })
}

/// Env `name` as its own branch defines it: its next env and its pins.
fn own_pins(tree: &dyn TreeReader, name: &str) -> Result<(Option<String>, Vec<ImagePin>), String> {
    let env = config::load_own_env(tree, name).map_err(|p| {
        p.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let file = format!("{}/kustomization.yaml", env.overlay.trim_end_matches('/'));
    let text = tree.read_string(&file).map_err(|e| e.to_string())?;
    let pins = pins_from_kustomization(&file, &text).map_err(|e| e.to_string())?;
    Ok((env.next.clone(), pins))
}

/// Orders rows along the promotion chain the branches declare.
fn order_by_chain(rows: &mut Vec<EnvStatus>) {
    let links: Vec<(String, Option<String>)> = rows
        .iter()
        .map(|r| {
            (
                r.env.clone().unwrap_or_else(|| r.branch.clone()),
                r.next.clone(),
            )
        })
        .collect();
    let mut slots: Vec<Option<EnvStatus>> = rows.drain(..).map(Some).collect();
    rows.extend(
        config::promotion_order(&links)
            .into_iter()
            .filter_map(|i| slots[i].take()),
    );
}

fn age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

fn print_table(rows: &[EnvStatus]) {
    if rows.is_empty() {
        println!("no env/* branches");
        return;
    }
    let header = [
        "ENV",
        "BRANCH",
        "HEAD",
        "AGE",
        "AUTHOR",
        "SIGNATURE",
        "TRUST",
        "IMAGES",
    ];
    let table: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let sig = match &r.signature.principal {
                Some(p) => format!("{} ({p})", r.signature.state),
                None => r.signature.state.to_string(),
            };
            let images = if let Some(e) = &r.error {
                format!("error: {e}")
            } else if r.images.is_empty() {
                "-".into()
            } else {
                r.images
                    .iter()
                    .map(ImagePin::reference)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let trust = r.trust.as_ref().map_or("-", |t| t.status).to_string();
            [
                r.env.clone().unwrap_or_else(|| "?".into()),
                r.branch.clone(),
                r.commit.chars().take(7).collect(),
                age(r.age_seconds),
                r.author.clone(),
                sig,
                trust,
                images,
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &table {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        println!("{out}");
    };
    line(&header.map(String::from));
    for row in &table {
        line(row);
    }
    // Why an env is not ready, or held, in full, under the table.
    for r in rows {
        let name = r.env.as_deref().unwrap_or(&r.branch);
        if let Some(p) = r.trust.as_ref().and_then(|t| t.problem.as_ref()) {
            println!("{name}: {p}");
        }
        if let Some(h) = &r.held {
            println!("{name}: HELD by a pending rollback: {}", h.summary());
        }
    }
}
