//! `platform-capstone sign` and `attest`: cosign-compatible signatures and
//! in-toto attestations written to the registry, without the cosign binary.

use crate::adapters::registry::OciRegistry;
use crate::gates::{cosign, oci_bundle};
use anyhow::Context;
use std::path::PathBuf;
use std::process::ExitCode;

/// Which registry layout a signature or attestation is written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum BundleFormat {
    /// cosign 3: a Sigstore bundle (v0.3, DSSE in-toto statement) attached
    /// as an OCI 1.1 referrer, and under the `sha256-<hex>` referrers tag
    /// on registries without the referrers API.
    #[default]
    V3,
    /// cosign 1–2: a layer of the `sha256-<hex>.sig` / `.att` manifest.
    Legacy,
}

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Signs IMAGE@DIGEST the way `cosign sign --key` does, with an ECDSA P-256 \
key: unencrypted PKCS#8 PEM (`platform-capstone keygen --cosign`), or a key from \
`cosign generate-key-pair`, whose password is read from COSIGN_PASSWORD as cosign does. \
Existing signatures are kept; the signature gate reads both layouts.\n\n\
--bundle-format v3 (the default, as cosign 3): a Sigstore bundle holding a DSSE in-toto \
statement of type https://sigstore.dev/cosign/sign/v1 about the digest, attached as an \
OCI 1.1 referrer of the image (and listed under the `sha256-<hex>` tag on registries \
without the referrers API). The bundle carries no transparency-log entry, like `cosign \
sign --tlog-upload=false`: verify it with `cosign verify --key K --insecure-ignore-tlog` \
or `platform-capstone verify-bundle --key K --insecure-ignore-tlog`.\n\n\
--bundle-format legacy (cosign 1–2): a simple-signing payload naming the digest, stored \
as a layer of the `sha256-<hex>.sig` manifest beside the image."
)]
pub struct SignArgs {
    /// The image, pinned by digest: registry/repo@sha256:…
    image: String,
    /// Private key: PKCS#8 PEM, or cosign-encrypted (password from COSIGN_PASSWORD).
    #[arg(long, value_name = "PATH")]
    key: PathBuf,
    /// Registry layout: v3 (Sigstore bundle referrer) or legacy (.sig).
    #[arg(long, value_enum, default_value_t)]
    bundle_format: BundleFormat,
    /// Reach the image's registry over plain HTTP (loopback registries).
    #[arg(long)]
    plain_http: bool,
}

#[derive(Debug, clap::Args)]
#[command(
    long_about = "Attests a predicate about IMAGE@DIGEST the way `cosign attest --key` \
does: an in-toto statement in a DSSE envelope signed with the key. With --bundle-format \
v3 (the default, as cosign 3) it is a Sigstore bundle attached as an OCI 1.1 referrer \
(or under the `sha256-<hex>` referrers tag); with legacy, a layer of the \
`sha256-<hex>.att` manifest. --type vuln marks a vulnerability report (cosign vuln \
predicate, or a bare Trivy/Grype JSON), which the vulnerability gate reads in either \
layout."
)]
pub struct AttestArgs {
    /// Registry layout: v3 (Sigstore bundle referrer) or legacy (.att).
    #[arg(long, value_enum, default_value_t)]
    bundle_format: BundleFormat,
    /// The image, pinned by digest: registry/repo@sha256:…
    image: String,
    /// Predicate file (JSON).
    #[arg(long, value_name = "FILE")]
    predicate: PathBuf,
    /// `vuln`, or a predicate type URI.
    #[arg(long = "type", default_value = "vuln")]
    kind: String,
    /// Private key: PKCS#8 PEM, or cosign-encrypted (password from COSIGN_PASSWORD).
    #[arg(long, value_name = "PATH")]
    key: PathBuf,
    /// Reach the image's registry over plain HTTP (loopback registries).
    #[arg(long)]
    plain_http: bool,
}

fn target(image: &str, plain_http: bool) -> anyhow::Result<(String, String, OciRegistry)> {
    let (repo, _tag, digest) = crate::render::transform::split_image(image);
    let digest = digest.with_context(|| {
        format!("{image}: give the image by digest (repo@sha256:…); tags can move")
    })?;
    digest
        .parse::<crate::model::Digest>()
        .map_err(|e| anyhow::anyhow!("{image}: {e}"))?;
    let host = repo.split('/').next().unwrap_or_default().to_string();
    let plain: Vec<String> = if plain_http { vec![host] } else { vec![] };
    Ok((
        repo.to_string(),
        digest.to_string(),
        OciRegistry::new(&plain)?,
    ))
}

fn key(path: &std::path::Path) -> anyhow::Result<p256::ecdsa::SigningKey> {
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read key", path.display()))?;
    crate::cosign_key::load(&pem).map_err(|e| {
        if cosign::is_encrypted_key(&pem) {
            anyhow::anyhow!("{}: {e}", path.display())
        } else {
            anyhow::anyhow!(
                "{}: {e}; create one with `platform-capstone keygen --cosign` or `cosign generate-key-pair`",
                path.display()
            )
        }
    })
}

pub fn run_sign(a: SignArgs) -> anyhow::Result<ExitCode> {
    let (repo, digest, reg) = target(&a.image, a.plain_http)?;
    let key = key(&a.key)?;
    match a.bundle_format {
        BundleFormat::V3 => {
            let referrer = oci_bundle::sign(&reg, &repo, &digest, &key, chrono::Utc::now())?;
            println!("signed {repo}@{digest} (Sigstore bundle, referrer {repo}@{referrer})");
        }
        BundleFormat::Legacy => {
            let manifest = cosign::sign(&reg, &repo, &digest, &key)?;
            println!(
                "signed {repo}@{digest} ({} @ {manifest})",
                cosign::signature_tag(&repo, &digest)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_attest(a: AttestArgs) -> anyhow::Result<ExitCode> {
    let (repo, digest, reg) = target(&a.image, a.plain_http)?;
    let key = key(&a.key)?;
    let text = std::fs::read_to_string(&a.predicate)
        .with_context(|| format!("{}", a.predicate.display()))?;
    let predicate: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not JSON", a.predicate.display()))?;
    let predicate_type = match a.kind.as_str() {
        "vuln" => {
            crate::gates::vulnerability::parse_report(&predicate)
                .map_err(|e| anyhow::anyhow!("{}: {e}", a.predicate.display()))?;
            cosign::VULN_PREDICATE.to_string()
        }
        uri if uri.contains("://") => uri.to_string(),
        other => {
            return Err(super::usage(format!(
                "--type {other:?}: use vuln or a predicate type URI"
            )));
        }
    };
    match a.bundle_format {
        BundleFormat::V3 => {
            let referrer = oci_bundle::attest(
                &reg,
                &repo,
                &digest,
                &predicate_type,
                predicate,
                &key,
                chrono::Utc::now(),
            )?;
            println!(
                "attested {predicate_type} for {repo}@{digest} (Sigstore bundle, referrer {repo}@{referrer})"
            );
        }
        BundleFormat::Legacy => {
            let manifest = cosign::attest(&reg, &repo, &digest, &predicate_type, predicate, &key)?;
            println!(
                "attested {predicate_type} for {repo}@{digest} ({} @ {manifest})",
                cosign::attestation_tag(&repo, &digest)
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
