//! `platform-capstone verify-bundle`: one Sigstore bundle, checked offline
//! as `cosign verify-blob --bundle` checks it.

use super::{Output, exit, usage};
use crate::gates::bundle::{self, BundleError, Signer, Subject};
use crate::gates::keyless::Matcher;
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Verifies a Sigstore bundle (v0.1, v0.2 or v0.3: a message signature or a \
DSSE envelope, as `cosign sign-blob --bundle`, `cosign attest` and cosign 3 write them) \
over FILE_OR_DIGEST, offline: a `sha256:<hex>` argument is a digest (an image's manifest \
digest, or the subject of a DSSE in-toto statement), anything else a file whose bytes \
were signed.\n\n\
With --key the signature must verify with that public key. Otherwise the bundle's \
certificate must chain to a Fulcio CA of the trusted root and have been valid when the \
signature was logged or timestamped, carry valid SCTs, and name the expected OIDC \
issuer and identity (SAN), each exact or a regex. Transparency-log entries (Rekor v1 \
with inclusion proof, signed checkpoint and SET; Rekor v2) and RFC 3161 timestamps are \
checked against the trusted root: --trusted-root FILE, else the Sigstore public-good \
production root built in.\n\n\
Exits 0 when verified, 1 with the reason when not, 2 on a usage error, 4 when a file \
cannot be read.",
    after_help = "Examples:\n  \
platform-capstone verify-bundle --bundle a.txt.sigstore.json --key cosign.pub a.txt\n  \
platform-capstone verify-bundle --bundle att.sigstore.json \\\n    \
--certificate-identity-regexp '^https://github.com/acme/.*' \\\n    \
--certificate-oidc-issuer https://token.actions.githubusercontent.com \\\n    \
sha256:4f1c…"
)]
pub struct Args {
    /// The bundle (JSON).
    #[arg(long, value_name = "FILE")]
    bundle: PathBuf,
    /// A public key (PEM) the signature must verify with.
    #[arg(long, value_name = "PEM", conflicts_with_all = ["certificate_identity", "certificate_identity_regexp", "certificate_oidc_issuer", "certificate_oidc_issuer_regexp"])]
    key: Option<PathBuf>,
    /// The certificate's identity (SAN: an email or a URI), exactly.
    #[arg(
        long,
        value_name = "ID",
        conflicts_with = "certificate_identity_regexp"
    )]
    certificate_identity: Option<String>,
    /// The certificate's identity, as a regex (anchor it: ^…$).
    #[arg(long, value_name = "REGEX")]
    certificate_identity_regexp: Option<String>,
    /// The OIDC issuer that issued the certificate's identity, exactly.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "certificate_oidc_issuer_regexp"
    )]
    certificate_oidc_issuer: Option<String>,
    /// The OIDC issuer, as a regex.
    #[arg(long, value_name = "REGEX")]
    certificate_oidc_issuer_regexp: Option<String>,
    /// With --key: accept a bundle without a transparency-log entry (one
    /// made with `cosign sign --tlog-upload=false`). Entries that are
    /// present are still verified.
    #[arg(long, requires = "key")]
    insecure_ignore_tlog: bool,
    /// A trusted_root.json [default: the Sigstore public-good production root].
    #[arg(long, value_name = "FILE")]
    trusted_root: Option<PathBuf>,
    /// What was signed: a file, or sha256:<hex> for a digest.
    #[arg(value_name = "FILE_OR_DIGEST")]
    subject: String,
    #[arg(short, long, value_enum, default_value_t)]
    output: Output,
}

/// Reads a file the user named, with the flag in the error.
fn read(flag: &str, path: &Path, limit: u64) -> anyhow::Result<Vec<u8>> {
    let meta = std::fs::metadata(path).with_context(|| format!("{flag} {}", path.display()))?;
    anyhow::ensure!(
        meta.len() <= limit,
        "{flag} {}: {} bytes, over the {limit}-byte limit",
        path.display(),
        meta.len()
    );
    std::fs::read(path).with_context(|| format!("{flag} {}", path.display()))
}

fn matcher(exact: &Option<String>, regex: &Option<String>, flag: &str) -> anyhow::Result<Matcher> {
    match (exact, regex) {
        (Some(s), _) => Ok(Matcher::Exact(s.clone())),
        (None, Some(r)) => {
            Matcher::regex(r).map_err(|e| usage(format!("--{flag}-regexp {r:?}: {e}")))
        }
        (None, None) => Err(usage(format!(
            "keyless verification needs --{flag} or --{flag}-regexp (or give --key)"
        ))),
    }
}

pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let signer = match &a.key {
        Some(path) => Signer::Key {
            pem: String::from_utf8(read("--key", path, 1024 * 1024)?)
                .map_err(|_| usage(format!("--key {}: not a PEM text file", path.display())))?,
            require_tlog: !a.insecure_ignore_tlog,
        },
        None => Signer::Identity {
            subject: matcher(
                &a.certificate_identity,
                &a.certificate_identity_regexp,
                "certificate-identity",
            )?,
            issuer: matcher(
                &a.certificate_oidc_issuer,
                &a.certificate_oidc_issuer_regexp,
                "certificate-oidc-issuer",
            )?,
        },
    };
    let subject = match Subject::parse_digest(&a.subject) {
        Some(d) => d,
        None if a.subject.starts_with("sha256:") => {
            return Err(usage(format!(
                "{}: a digest is sha256: and 64 hex digits",
                a.subject
            )));
        }
        None => Subject::Bytes(read("the file", Path::new(&a.subject), 1 << 30)?),
    };
    let bundle_json = String::from_utf8(read(
        "--bundle",
        &a.bundle,
        bundle::MAX_BUNDLE_BYTES as u64,
    )?)
    .map_err(|_| anyhow::anyhow!("--bundle {}: not UTF-8 JSON", a.bundle.display()));
    let root_json = match &a.trusted_root {
        Some(p) => Some(
            String::from_utf8(read("--trusted-root", p, 16 * 1024 * 1024)?)
                .map_err(|_| anyhow::anyhow!("--trusted-root {}: not UTF-8 JSON", p.display()))?,
        ),
        None => None,
    };
    let outcome = bundle_json
        .map_err(|e| BundleError::Malformed(e.to_string()))
        .and_then(|json| {
            let root = bundle::trusted_root(root_json.as_deref())?;
            bundle::verify(&json, &subject, &signer, &root)
        });
    let root_name = a
        .trusted_root
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the Sigstore public-good production root".into());
    match outcome {
        Ok(v) => {
            if a.output.is_data() {
                let mut doc = serde_json::to_value(&v)?;
                doc["verified"] = serde_json::Value::Bool(true);
                super::print_data(a.output, &doc)?;
            } else {
                let who = match (&v.identity, &v.issuer) {
                    (Some(id), Some(iss)) => format!("{id} (issuer {iss})"),
                    _ => "the given key".to_string(),
                };
                let what = match &v.payload_type {
                    Some(t) => format!("a DSSE envelope ({t})"),
                    None => "a message signature".to_string(),
                };
                let mut checked = vec!["signature"];
                if v.certificate_verified {
                    checked.push("certificate chain");
                }
                if v.sct_verified {
                    checked.push("SCT");
                }
                if v.tlog_verified {
                    checked.push("transparency log");
                }
                if !v.verified_times.is_empty() {
                    checked.push("signed time");
                }
                super::write_stdout(&format!(
                    "verified: {what} by {who}\n  bundle: {}\n  checked: {} against {root_name}\n{}",
                    v.media_type,
                    checked.join(", "),
                    v.integrated_time
                        .map(|t| format!("  logged: {}\n", t.to_rfc3339()))
                        .unwrap_or_default()
                ))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(BundleError::TrustedRoot(e)) => {
            anyhow::bail!("trusted root {root_name}: {e}")
        }
        Err(e) => {
            if a.output.is_data() {
                super::print_data(
                    a.output,
                    &serde_json::json!({ "verified": false, "reason": e.to_string() }),
                )?;
            }
            eprintln!("not verified: {}: {e}", a.bundle.display());
            Ok(ExitCode::from(exit::NO))
        }
    }
}
