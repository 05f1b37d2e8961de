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
    /// Write a cosign key pair instead (ECDSA P-256, PKCS#8 PEM private,
    /// SPKI PEM public): for `sign`/`attest` and policies/trust.toml.
    #[arg(long)]
    cosign: bool,
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    if a.cosign {
        let (private, public) =
            crate::gates::cosign::generate_key_pair().map_err(anyhow::Error::msg)?;
        let pub_path = PathBuf::from(format!("{}.pub", a.out.display()));
        for p in [&a.out, &pub_path] {
            anyhow::ensure!(
                !p.exists(),
                "{}: refusing to overwrite an existing key; remove it first or choose another --out",
                p.display()
            );
        }
        for (p, bytes, mode) in [
            (&a.out, private.as_bytes(), 0o600),
            (&pub_path, public.as_bytes(), 0o644),
        ] {
            crate::fsutil::write_new(p, bytes, Some(mode)).with_context(|| {
                format!("{}: refusing to overwrite, or cannot write", p.display())
            })?;
        }
        eprintln!(
            "wrote {} (private, mode 0600) and {}",
            a.out.display(),
            pub_path.display()
        );
        eprintln!(
            "trust it: copy {} to policies/keys/ and add a [[keys]] entry to policies/trust.toml",
            pub_path.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
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
