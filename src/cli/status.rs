//! `platform-capstone status`: what every environment branch says runs.

use super::Output;
use crate::config::{self, DaemonConfig};
use crate::model::{ImagePin, pins_from_kustomization};
use crate::signing::{AllowedSigners, GIT_NAMESPACE};
use crate::source::{Git2Repo, GitRepo, SignatureState, TreeReader};
use anyhow::Context;
use serde::Serialize;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "For every env/* branch: its head commit (short sha, author, age), \
whether the commit is signed by a key in allowed_signers, and the image digests pinned \
in the environment's overlay. Reads a local repository (--repo, default .) or, with \
--config, fetches the daemon's remote into its cache first. Signatures are checked \
against --allowed-signers, or else against policies/allowed_signers in each branch's \
own tree."
)]
pub struct Args {
    /// A local git repository holding the env branches.
    #[arg(long, conflicts_with = "config")]
    repo: Option<PathBuf>,
    /// Daemon config: fetch its remote (one fetch) into its cache and report that.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// allowed_signers file to verify head commits against.
    #[arg(long, value_name = "FILE")]
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
    pub images: Vec<ImagePin>,
    /// Why the env definition or pins could not be read, if so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
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
    let mut repo = match &a.config {
        Some(path) => {
            let cfg = DaemonConfig::load(path)?;
            let repo = Git2Repo::open_remote(&cfg.remote, &cfg.cache_dir, cfg.ssh_key.as_deref())?
                .with_max_file_size(cfg.max_file_size);
            Box::new(repo) as Box<dyn GitRepo>
        }
        None => {
            let path = a.repo.clone().unwrap_or_else(|| PathBuf::from("."));
            Box::new(Git2Repo::open_local(&path).with_context(|| "status --repo".to_string())?)
        }
    };
    repo.fetch()?;
    let fixed_signers = match &a.allowed_signers {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("{}", p.display()))?;
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
    let now = chrono::Utc::now().timestamp();
    let mut rows = Vec::new();
    for branch in repo.heads()?.into_keys() {
        rows.push(branch_status(
            repo.as_ref(),
            &branch,
            fixed_signers.as_ref(),
            now,
        )?);
    }
    order_by_chain(&mut rows);
    match a.output {
        Output::Json => super::print_json(&rows)?,
        Output::Text => print_table(&rows),
    }
    Ok(ExitCode::SUCCESS)
}

fn branch_status(
    repo: &dyn GitRepo,
    branch: &str,
    fixed: Option<&AllowedSigners>,
    now: i64,
) -> anyhow::Result<EnvStatus> {
    let head = repo.head_info(branch)?;
    let reader = repo.reader(&head.commit)?;
    let own_signers;
    let signers = match fixed {
        Some(s) => Some(s),
        None => {
            own_signers = reader
                .read_string(config::ALLOWED_SIGNERS_FILE)
                .ok()
                .and_then(|t| AllowedSigners::parse(&t).ok());
            own_signers.as_ref()
        }
    };
    let signature = match (&head.signature, signers) {
        (SignatureState::Unsigned, _) => SignatureReport {
            state: "unsigned",
            principal: None,
            detail: None,
        },
        (SignatureState::Signed { .. }, None) => SignatureReport {
            state: "unverified",
            principal: None,
            detail: Some("no allowed_signers to check against".into()),
        },
        (SignatureState::Signed { signature, payload }, Some(s)) => {
            match s.verify(GIT_NAMESPACE, payload, signature, Some(head.time)) {
                Ok(v) => SignatureReport {
                    state: "verified",
                    principal: Some(v.principal),
                    detail: Some(v.fingerprint),
                },
                Err(e @ crate::signing::VerifyError::UnknownKey { .. }) => SignatureReport {
                    state: "unverified",
                    principal: None,
                    detail: Some(e.to_string()),
                },
                Err(e) => SignatureReport {
                    state: "invalid",
                    principal: None,
                    detail: Some(e.to_string()),
                },
            }
        }
    };
    let (env, next, images, error) = match env_and_pins(reader.as_ref(), branch) {
        Ok((env, next, pins)) => (Some(env), next, pins, None),
        Err(e) => (None, None, Vec::new(), Some(e)),
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
        images,
        error,
    })
}

/// The env whose branch this is (as defined on the branch itself) and its pins.
fn env_and_pins(
    tree: &dyn TreeReader,
    branch: &str,
) -> Result<(String, Option<String>, Vec<ImagePin>), String> {
    let cfg = config::load_repo(tree);
    let env = cfg
        .envs
        .iter()
        .find(|e| e.branch == branch)
        .ok_or_else(|| format!("no envs/*.toml on {branch} names branch {branch}"))?;
    let file = format!("{}/kustomization.yaml", env.overlay.trim_end_matches('/'));
    let text = tree.read_string(&file).map_err(|e| e.to_string())?;
    let pins = pins_from_kustomization(&file, &text).map_err(|e| e.to_string())?;
    Ok((env.name.clone(), env.next.clone(), pins))
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
        "IMAGES",
    ];
    let table: Vec<[String; 7]> = rows
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
            [
                r.env.clone().unwrap_or_else(|| "?".into()),
                r.branch.clone(),
                r.commit.chars().take(7).collect(),
                age(r.age_seconds),
                r.author.clone(),
                sig,
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
}
