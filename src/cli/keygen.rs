//! `platform-capstone keygen`: an Ed25519 key pair for signing.

use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Writes an Ed25519 OpenSSH key pair: the private key at --out (mode \
0600) and the public key at --out.pub. Prints the allowed_signers line that makes \
`git verify-commit` (and platform-capstone) trust commits signed with it: add it to \
policies/allowed_signers for a daemon key, or to policies/approvers (with \
namespaces=\"platform-capstone-approval\") for a person who approves promotions. \
Never overwrites an existing key."
)]
pub struct Args {
    /// Where to write the private key (the public key goes to PATH.pub).
    #[arg(long, value_name = "PATH")]
    out: PathBuf,
    /// Principal (email) for the allowed_signers line.
    #[arg(long, default_value = "platform-capstone@localhost")]
    principal: String,
    /// Namespace the key may sign in ("git" for commits).
    #[arg(long, default_value = crate::signing::GIT_NAMESPACE)]
    namespace: String,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let key = crate::signing::generate_key(&a.out, &a.principal)
        .with_context(|| format!("keygen --out {}", a.out.display()))?;
    let line = crate::signing::allowed_signers_line(&a.principal, &a.namespace, &key)?;
    eprintln!(
        "wrote {} (private, mode 0600) and {}.pub",
        a.out.display(),
        a.out.display()
    );
    eprintln!("fingerprint: {}", key.fingerprint(ssh_key::HashAlg::Sha256));
    eprintln!("allowed_signers line (add to policies/allowed_signers):");
    println!("{line}");
    Ok(ExitCode::SUCCESS)
}
