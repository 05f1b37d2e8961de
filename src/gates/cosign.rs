//! Cosign's registry layout, both directions, for keyed signatures: a
//! signature of `repo@sha256:<hex>` is a layer of the OCI manifest tagged
//! `repo:sha256-<hex>.sig`; the layer blob is the simple-signing payload
//! and its `dev.cosignproject.cosign/signature` annotation the base64
//! signature. Reads are capped in count and size.

use super::signature::{self, Rejection, TrustedKey};
use crate::adapters::registry::{OciRegistry, RegistryError};
use crate::model::Finding;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use std::collections::BTreeMap;

pub const SIMPLESIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Signatures read per digest, at most.
pub const MAX_SIGNATURES: usize = 16;
/// Bytes read per signature payload, at most.
pub const MAX_PAYLOAD_BYTES: usize = 64 * 1024;

/// `repo:sha256-<hex>.sig` for `digest`.
pub fn signature_tag(repo: &str, digest: &str) -> String {
    format!("{repo}:{}.sig", digest.replace(':', "-"))
}

/// Loads an unencrypted PKCS#8 PEM ECDSA P-256 private key.
pub fn load_signing_key(pem: &str) -> Result<p256::ecdsa::SigningKey, String> {
    use p256::pkcs8::DecodePrivateKey;
    p256::ecdsa::SigningKey::from_pkcs8_pem(pem.trim())
        .map_err(|e| format!("not an unencrypted PKCS#8 ECDSA P-256 private key: {e}"))
}

/// Writes a new cosign key pair (PKCS#8 private, SPKI public) as PEM.
pub fn generate_key_pair() -> Result<(String, String), String> {
    use p256::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    let sk = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
    let private = sk.to_pkcs8_pem(LineEnding::LF).map_err(|e| e.to_string())?;
    let public = sk
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| e.to_string())?;
    Ok((private.to_string(), public))
}

/// Signs `repo@digest` and adds the signature to its `.sig` manifest
/// (keeping signatures already there). Returns the manifest digest.
pub fn sign(
    reg: &OciRegistry,
    repo: &str,
    digest: &str,
    key: &p256::ecdsa::SigningKey,
) -> Result<String, RegistryError> {
    use base64::Engine;
    use p256::ecdsa::signature::Signer;
    let payload = signature::payload_for(repo, digest);
    let sig: p256::ecdsa::Signature = key.sign(&payload);
    let sig_b64 = base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes());
    let payload_len = payload.len() as i64;
    let payload_digest = reg.push_blob(repo, payload)?;
    let config = serde_json::json!({
        "architecture": "", "os": "", "config": {}, "created": "0001-01-01T00:00:00Z",
        "rootfs": {"type": "layers", "diff_ids": [payload_digest]},
    })
    .to_string()
    .into_bytes();
    let config_len = config.len() as i64;
    let config_digest = reg.push_blob(repo, config)?;
    let tag = signature_tag(repo, digest);
    let mut layers = match reg.manifest(&tag)? {
        Some((m, _)) => m.layers,
        None => Vec::new(),
    };
    let layer = OciDescriptor {
        media_type: SIMPLESIGNING.into(),
        digest: payload_digest,
        size: payload_len,
        urls: None,
        annotations: Some(BTreeMap::from([(
            SIGNATURE_ANNOTATION.to_string(),
            sig_b64,
        )])),
        artifact_type: None,
    };
    if !layers
        .iter()
        .any(|l| l.digest == layer.digest && l.annotations == layer.annotations)
    {
        layers.push(layer);
    }
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(crate::adapters::registry::OCI_MANIFEST.into()),
        config: OciDescriptor {
            media_type: "application/vnd.oci.image.config.v1+json".into(),
            digest: config_digest,
            size: config_len,
            urls: None,
            annotations: None,
            artifact_type: None,
        },
        layers,
        subject: None,
        artifact_type: None,
        annotations: None,
    };
    reg.push_manifest(&tag, &manifest)
}

/// Checks the signatures of `repo@digest` against `keys`: `Ok(None)` when
/// one verifies, `Ok(Some(finding))` with every rejection reason when none
/// does, `Err` when the registry could not be read (fails closed).
pub fn check(
    reg: &OciRegistry,
    repo: &str,
    digest: &str,
    keys: &[TrustedKey],
) -> Result<Option<Finding>, RegistryError> {
    let subject = format!("{repo}@{digest}");
    let fail = |rule: &str, message: String| {
        Some(Finding {
            rule: rule.into(),
            subject: subject.clone(),
            message,
            enforced: true,
            enforced_from: None,
        })
    };
    let Some((manifest, _)) = reg.manifest(&signature_tag(repo, digest))? else {
        return Ok(fail(
            "no-signature",
            "no cosign signature found (no .sig manifest for this digest); sign it".into(),
        ));
    };
    if manifest.layers.len() > MAX_SIGNATURES {
        return Ok(fail(
            "too-many-signatures",
            format!(
                "{} signatures, over the cap of {MAX_SIGNATURES}: refusing to read them",
                manifest.layers.len()
            ),
        ));
    }
    let mut reasons = Vec::new();
    let mut other_digest = false;
    for layer in &manifest.layers {
        if layer.media_type != SIMPLESIGNING {
            reasons.push(format!(
                "layer {} is {}, not a signature",
                layer.digest, layer.media_type
            ));
            continue;
        }
        if layer.size < 0 || layer.size as usize > MAX_PAYLOAD_BYTES {
            reasons.push(format!(
                "payload {} is {} bytes, over the cap",
                layer.digest, layer.size
            ));
            continue;
        }
        let Some(sig) = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get(SIGNATURE_ANNOTATION))
        else {
            reasons.push(format!(
                "payload {} carries no signature annotation",
                layer.digest
            ));
            continue;
        };
        let payload = match reg.blob(repo, &layer.digest, MAX_PAYLOAD_BYTES) {
            Ok(p) => p,
            Err(e) if e.is_infrastructure() => return Err(e),
            Err(e) => {
                reasons.push(e.to_string());
                continue;
            }
        };
        match signature::verify_keyed(&payload, sig, digest, keys) {
            Ok(_) => return Ok(None),
            Err(r @ Rejection::OtherDigest { .. }) => {
                other_digest = true;
                reasons.push(r.to_string());
            }
            Err(r) => reasons.push(r.to_string()),
        }
    }
    let rule = if other_digest {
        "signature-for-other-digest"
    } else {
        "no-valid-signature"
    };
    Ok(fail(rule, reasons.join("; ")))
}
