//! `platform-capstone init`: a new config repo from the blueprint.

use super::Output;
use crate::signing::{Identity, Signer};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Creates a git repository at DIR holding the reference blueprint \
(envs/, overlays/, policies/: dev → staging → prod for the demo service), with the \
branches main, env/dev, env/staging and env/prod at one first commit. With --remote, \
pushes every branch there (a local path that does not exist becomes a new bare \
repository); the remote must not have those branches yet. DIR must be new or empty; \
on any failure nothing is left at DIR."
)]
pub struct Args {
    /// Directory for the new repository.
    dir: PathBuf,
    /// Remote to push the branches to (file:///path, ssh://…, https://…).
    #[arg(long, value_name = "URL")]
    remote: Option<String>,
    /// Sign the first commit with this OpenSSH private key.
    #[arg(long, value_name = "PATH")]
    signing_key: Option<PathBuf>,
    /// Committer name.
    #[arg(long, default_value = "platform-capstone")]
    name: String,
    /// Committer email (the principal of the signing key).
    #[arg(long, default_value = "platform-capstone@localhost")]
    email: String,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let identity = Identity {
        name: a.name,
        email: a.email,
    };
    let signer = a
        .signing_key
        .as_deref()
        .map(|p| Signer::load(p, identity.clone()))
        .transpose()?;
    let done = crate::blueprint::init(&a.dir, a.remote.as_deref(), signer.as_ref(), &identity)
        .with_context(|| format!("init {}", a.dir.display()))?;
    match a.output {
        o @ (Output::Json | Output::Yaml) => super::print_data(o, &done)?,
        Output::Text => {
            println!(
                "initialised {} at {} ({})",
                done.path.display(),
                &done.commit[..7],
                if done.signed { "signed" } else { "unsigned" }
            );
            println!("branches: {}", done.branches.join(", "));
            if let Some(r) = &done.remote {
                println!("pushed to {r}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
