//! Cosign's registry layout, both directions: a signature of
//! `repo@sha256:<hex>` is a layer of the OCI manifest tagged
//! `repo:sha256-<hex>.sig`; the layer blob is the simple-signing payload
//! and its `dev.cosignproject.cosign/signature` annotation the base64
//! signature. Attestations are DSSE envelopes, layers of `…​.att`. A layer
//! that also carries a certificate annotation is keyless and verified by
//! [`keyless`](super::keyless); otherwise by the trusted keys. Reads are
//! capped in count and size.

use super::keyless::{self, KeylessSignature, Logged};
use super::signature::{self, Rejection};
use super::trust::TrustPolicy;
use crate::model::Finding;
use crate::model::oci::{Descriptor as OciDescriptor, Manifest as OciImageManifest, descriptor};
use crate::ports::Registry;
use crate::ports::RegistryError;
use chrono::{DateTime, Utc};
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

/// Loads an unencrypted PKCS#8 PEM ECDSA P-256 private key; anything else
/// is named for what it is.
pub fn load_signing_key(pem: &str) -> Result<p256::ecdsa::SigningKey, String> {
    use p256::pkcs8::DecodePrivateKey;
    p256::ecdsa::SigningKey::from_pkcs8_pem(pem.trim()).map_err(|_| {
        format!(
            "{}, not an unencrypted PKCS#8 ECDSA P-256 private key",
            describe_private_key(pem)
        )
    })
}

/// PEM labels of a cosign-encrypted private key (cosign 2+, and cosign 1).
pub const ENCRYPTED_KEY_LABELS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];
/// Largest scrypt cost accepted from a key file (cosign writes N = 2^15
/// or 2^16, r = 8, p = 1): a hostile file cannot make loading take minutes.
const MAX_SCRYPT_LOG_N: u8 = 20;

/// Whether `pem` is a cosign-encrypted private key.
pub fn is_encrypted_key(pem: &str) -> bool {
    pem_label(pem).is_some_and(|l| ENCRYPTED_KEY_LABELS.contains(&l))
}

fn pem_label(pem: &str) -> Option<&str> {
    pem.lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
}

/// Decrypts a key written by `cosign generate-key-pair`: the PEM body is
/// go-securesystemslib's JSON (`kdf` scrypt with its N/r/p and salt,
/// `cipher` nacl/secretbox with its nonce, `ciphertext`), the plaintext an
/// ECDSA P-256 PKCS#8 key. A wrong password and a damaged file are told
/// apart only as far as the cipher allows (both fail authentication).
pub fn decrypt_key(pem: &str, password: &[u8]) -> Result<p256::ecdsa::SigningKey, String> {
    use base64::Engine;
    use crypto_secretbox::aead::{Aead, KeyInit};
    use p256::pkcs8::DecodePrivateKey;
    #[derive(serde::Deserialize)]
    struct Encrypted {
        kdf: Kdf,
        cipher: Cipher,
        ciphertext: String,
    }
    #[derive(serde::Deserialize)]
    struct Kdf {
        name: String,
        params: KdfParams,
        salt: String,
    }
    #[derive(serde::Deserialize)]
    struct KdfParams {
        #[serde(rename = "N")]
        n: u64,
        r: u32,
        p: u32,
    }
    #[derive(serde::Deserialize)]
    struct Cipher {
        name: String,
        nonce: String,
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    if !is_encrypted_key(pem) {
        return Err(format!(
            "{}, not a cosign-encrypted key",
            describe_private_key(pem)
        ));
    }
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with("-----") && !l.contains(':'))
        .collect();
    let json = b64
        .decode(body.as_bytes())
        .map_err(|e| format!("the encrypted key's PEM body is not base64: {e}"))?;
    let e: Encrypted = serde_json::from_slice(&json).map_err(|e| {
        format!("the encrypted key is not cosign's JSON (kdf, cipher, ciphertext): {e}")
    })?;
    if e.kdf.name != "scrypt" || e.cipher.name != "nacl/secretbox" {
        return Err(format!(
            "the key is encrypted with {}/{}; cosign keys use scrypt/nacl/secretbox",
            e.kdf.name, e.cipher.name
        ));
    }
    let KdfParams { n, r, p } = e.kdf.params;
    if !n.is_power_of_two() || n < 2 {
        return Err(format!("scrypt N = {n} is not a power of two"));
    }
    let log_n = n.trailing_zeros() as u8;
    if log_n > MAX_SCRYPT_LOG_N || r > 32 || p > 16 {
        return Err(format!(
            "scrypt cost N = {n}, r = {r}, p = {p} is over the limit (N ≤ 2^{MAX_SCRYPT_LOG_N}, r ≤ 32, p ≤ 16)"
        ));
    }
    let params = scrypt::Params::new(log_n, r, p, 32)
        .map_err(|e| format!("scrypt parameters N = {n}, r = {r}, p = {p}: {e}"))?;
    let salt = b64
        .decode(e.kdf.salt.as_bytes())
        .map_err(|e| format!("kdf.salt is not base64: {e}"))?;
    let nonce = b64
        .decode(e.cipher.nonce.as_bytes())
        .map_err(|e| format!("cipher.nonce is not base64: {e}"))?;
    if nonce.len() != 24 {
        return Err(format!("cipher.nonce is {} bytes, not 24", nonce.len()));
    }
    let ciphertext = b64
        .decode(e.ciphertext.as_bytes())
        .map_err(|e| format!("ciphertext is not base64: {e}"))?;
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut key).map_err(|e| format!("scrypt: {e}"))?;
    let cipher = crypto_secretbox::XSalsa20Poly1305::new(&key.into());
    let plain = cipher
        .decrypt(
            crypto_secretbox::Nonce::from_slice(&nonce),
            ciphertext.as_slice(),
        )
        .map_err(|_| {
            "the password does not decrypt this key (wrong COSIGN_PASSWORD, or a damaged file)"
                .to_string()
        })?;
    p256::ecdsa::SigningKey::from_pkcs8_der(&plain)
        .map_err(|_| "the decrypted key is not an ECDSA P-256 PKCS#8 key".to_string())
}

/// What a PEM private key is, for messages: its label, and for PKCS#8 its
/// algorithm and curve (the p256 crate's own error names the OID it
/// expected, not the one it found).
pub fn describe_private_key(pem: &str) -> String {
    use p256::pkcs8::der::Decode;
    let label = pem
        .lines()
        .find_map(|l| l.trim().strip_prefix("-----BEGIN ")?.strip_suffix("-----"))
        .unwrap_or("");
    match label {
        "" => "not a PEM key".into(),
        "OPENSSH PRIVATE KEY" => "an OpenSSH key (for git signing)".into(),
        "ENCRYPTED SIGSTORE PRIVATE KEY" | "ENCRYPTED COSIGN PRIVATE KEY" => {
            "a cosign-encrypted key (its password comes from COSIGN_PASSWORD)".into()
        }
        "ENCRYPTED PRIVATE KEY" => "an encrypted PKCS#8 key".into(),
        "RSA PRIVATE KEY" => "an RSA key".into(),
        "EC PRIVATE KEY" => "a SEC1 EC key (convert: openssl pkcs8 -topk8 -nocrypt)".into(),
        "PRIVATE KEY" => {
            let der = pem
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>();
            use base64::Engine;
            let Ok(der) = base64::engine::general_purpose::STANDARD.decode(der.trim()) else {
                return "a PKCS#8 key that does not decode".into();
            };
            let Ok(info) = p256::pkcs8::PrivateKeyInfo::from_der(&der) else {
                return "a PKCS#8 key that does not parse".into();
            };
            let alg = info.algorithm.oid.to_string();
            let param = info
                .algorithm
                .parameters_oid()
                .map(|o| o.to_string())
                .unwrap_or_default();
            match (alg.as_str(), param.as_str()) {
                ("1.2.840.10045.2.1", "1.2.840.10045.3.1.7") => "an ECDSA P-256 key".into(),
                ("1.2.840.10045.2.1", "1.3.132.0.34") => "an ECDSA P-384 key".into(),
                ("1.2.840.10045.2.1", "1.3.132.0.35") => "an ECDSA P-521 key".into(),
                ("1.2.840.10045.2.1", other) => format!("an ECDSA key on curve {other}"),
                ("1.3.101.112", _) => "an Ed25519 key".into(),
                ("1.2.840.113549.1.1.1", _) => "an RSA key".into(),
                (other, _) => format!("a PKCS#8 key of algorithm {other}"),
            }
        }
        other => format!("a {other}"),
    }
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
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    key: &p256::ecdsa::SigningKey,
) -> Result<String, RegistryError> {
    use p256::ecdsa::signature::Signer;
    let payload = signature::payload_for(repo, digest);
    let sig: p256::ecdsa::Signature = key.sign(&payload);
    add_signature(
        reg,
        repo,
        digest,
        payload,
        sig.to_der().as_bytes(),
        BTreeMap::new(),
    )
}

/// Adds one signature layer (payload blob, base64 signature annotation,
/// plus `extra` annotations such as a keyless certificate and bundle) to
/// the `.sig` manifest of `repo@digest`. Returns the manifest digest.
pub fn add_signature(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    payload: Vec<u8>,
    signature: &[u8],
    mut extra: BTreeMap<String, String>,
) -> Result<String, RegistryError> {
    use base64::Engine;
    let sig_b64 = base64::engine::general_purpose::STANDARD.encode(signature);
    extra.insert(SIGNATURE_ANNOTATION.to_string(), sig_b64);
    let layer = descriptor(SIMPLESIGNING, &payload, Some(extra));
    reg.push_blob(repo, payload)?;
    push_layer(reg, &signature_tag(repo, digest), layer)
}

/// The keyless view of a layer, when it carries a certificate.
fn keyless_parts(layer: &OciDescriptor) -> Option<(&str, Option<&str>, Option<&str>)> {
    let a = layer.annotations.as_ref()?;
    let cert = a.get(keyless::CERTIFICATE_ANNOTATION)?;
    Some((
        cert.as_str(),
        a.get(keyless::CHAIN_ANNOTATION).map(String::as_str),
        a.get(keyless::BUNDLE_ANNOTATION).map(String::as_str),
    ))
}

/// A layer's blob, read only when its declared size is within `cap` (and
/// capped again while reading). `Ok(Err(reason))`: this layer does not
/// count; `Err`: the registry could not be read (fails closed).
fn fetch_layer(
    reg: &dyn Registry,
    repo: &str,
    layer: &OciDescriptor,
    cap: usize,
) -> Result<Result<Vec<u8>, String>, RegistryError> {
    if layer.size < 0 || layer.size as usize > cap {
        return Ok(Err(format!(
            "layer {} is {} bytes, over the {cap}-byte cap",
            layer.digest, layer.size
        )));
    }
    match reg.blob(repo, &layer.digest, cap) {
        Ok(b) => Ok(Ok(b)),
        Err(e) if e.is_infrastructure() => Err(e),
        Err(e) => Ok(Err(e.to_string())),
    }
}

/// Checks the signatures of `repo@digest` against `trust`, in both
/// layouts — legacy `.sig` layers, then cosign 3 bundles attached as
/// referrers ([`oci_bundle`](super::oci_bundle)): `Ok(None)` when one
/// verifies, `Ok(Some(finding))` with every rejection reason of both when
/// none does, `Err` when the registry could not be read (fails closed).
pub fn check(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    trust: &TrustPolicy,
    now: DateTime<Utc>,
) -> Result<Option<Finding>, RegistryError> {
    use super::oci_bundle::{self, Found};
    let Some(mut legacy) = check_legacy(reg, repo, digest, trust, now)? else {
        return Ok(None);
    };
    match oci_bundle::find_verified(reg, repo, digest, oci_bundle::SIGN_PREDICATE, trust)? {
        Found::Verified { .. } => Ok(None),
        Found::Nothing if legacy.rule == "no-signature" => {
            legacy.message = "no cosign signature found: no .sig manifest and no Sigstore bundle \
                 (OCI referrer or sha256-<hex> referrers tag) for this digest; sign it"
                .into();
            Ok(Some(legacy))
        }
        Found::Nothing => Ok(Some(legacy)),
        Found::Rejected(reasons) => {
            let bundles = format!("bundles: {}", reasons.join("; "));
            if legacy.rule == "no-signature" {
                legacy.rule = "no-valid-signature".into();
                legacy.message = bundles;
            } else {
                legacy.message = format!(".sig: {}; {bundles}", legacy.message);
            }
            Ok(Some(legacy))
        }
    }
}

/// [`check`] over the legacy `.sig` layout alone.
fn check_legacy(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    trust: &TrustPolicy,
    now: DateTime<Utc>,
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
        let payload = match fetch_layer(reg, repo, layer, MAX_PAYLOAD_BYTES)? {
            Ok(p) => p,
            Err(reason) => {
                reasons.push(reason);
                continue;
            }
        };
        let verdict = match keyless_parts(layer) {
            None => signature::verify_keyed(&payload, sig, digest, &trust.keys).map(|_| ()),
            Some((cert, chain, bundle)) => signature::check_payload(&payload, digest)
                .and_then(|()| signature::decode_signature(sig))
                .and_then(|raw| {
                    let s = KeylessSignature {
                        signed: &payload,
                        signature: &raw,
                        certificate_pem: cert,
                        chain_pem: chain,
                        bundle_json: bundle,
                        logged: Logged::HashedRekord { payload: &payload },
                    };
                    keyless::verify(&s, &trust.keyless, now)
                        .map(|_| ())
                        .map_err(Rejection::Keyless)
                }),
        };
        match verdict {
            Ok(()) => return Ok(None),
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

pub const DSSE_ENVELOPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const IN_TOTO: &str = "application/vnd.in-toto+json";
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v0.1";
/// cosign's vulnerability predicate type (`cosign attest --type vuln`).
pub const VULN_PREDICATE: &str = "https://cosign.sigstore.dev/attestation/vuln/v1";
/// Bytes read per attestation envelope, at most.
pub const MAX_ENVELOPE_BYTES: usize = 4 * 1024 * 1024;

/// `repo:sha256-<hex>.att` for `digest`.
pub fn attestation_tag(repo: &str, digest: &str) -> String {
    format!("{repo}:{}.att", digest.replace(':', "-"))
}

/// DSSE pre-authentication encoding, the bytes a DSSE signature covers.
fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        payload.len()
    )
    .into_bytes();
    out.extend_from_slice(payload);
    out
}

/// Writes a signed in-toto attestation of `predicate` (of `predicate_type`)
/// about `repo@digest` to its `.att` manifest. Returns the manifest digest.
pub fn attest(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    predicate_type: &str,
    predicate: serde_json::Value,
    key: &p256::ecdsa::SigningKey,
) -> Result<String, RegistryError> {
    use p256::ecdsa::signature::Signer;
    let statement = statement_for(repo, digest, predicate_type, predicate);
    let sig: p256::ecdsa::Signature = key.sign(&pae(IN_TOTO, &statement));
    let envelope = envelope(&statement, sig.to_der().as_bytes());
    add_attestation(reg, repo, digest, predicate_type, envelope, BTreeMap::new())
}

/// The in-toto statement (JSON bytes) of `predicate` about `repo@digest`.
pub fn statement_for(
    repo: &str,
    digest: &str,
    predicate_type: &str,
    predicate: serde_json::Value,
) -> Vec<u8> {
    let hex = digest.trim_start_matches("sha256:");
    serde_json::json!({
        "_type": STATEMENT_TYPE,
        "predicateType": predicate_type,
        "subject": [{"name": repo, "digest": {"sha256": hex}}],
        "predicate": predicate,
    })
    .to_string()
    .into_bytes()
}

/// The bytes a DSSE signature of an in-toto `statement` covers.
pub fn statement_pae(statement: &[u8]) -> Vec<u8> {
    pae(IN_TOTO, statement)
}

/// A DSSE envelope around `statement` with one signature.
pub fn envelope(statement: &[u8], signature: &[u8]) -> Vec<u8> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    serde_json::json!({
        "payloadType": IN_TOTO,
        "payload": b64.encode(statement),
        "signatures": [{"keyid": "", "sig": b64.encode(signature)}],
    })
    .to_string()
    .into_bytes()
}

/// Adds one attestation layer (a DSSE envelope, plus `extra` annotations
/// such as a keyless certificate and bundle) to the `.att` manifest of
/// `repo@digest`. Returns the manifest digest.
pub fn add_attestation(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    predicate_type: &str,
    envelope: Vec<u8>,
    mut extra: BTreeMap<String, String>,
) -> Result<String, RegistryError> {
    extra.insert("predicateType".to_string(), predicate_type.to_string());
    let layer = descriptor(DSSE_ENVELOPE, &envelope, Some(extra));
    reg.push_blob(repo, envelope)?;
    push_layer(reg, &attestation_tag(repo, digest), layer)
}

/// Adds `layer` to the manifest at `tag` (creating it), keeping existing layers.
fn push_layer(
    reg: &dyn Registry,
    tag: &str,
    layer: OciDescriptor,
) -> Result<String, RegistryError> {
    let repo = tag.rsplit_once(':').map(|(r, _)| r).unwrap_or(tag);
    let config = b"{}".to_vec();
    let config_descriptor = descriptor("application/vnd.oci.image.config.v1+json", &config, None);
    reg.push_blob(repo, config)?;
    let mut layers = match reg.manifest(tag)? {
        Some((m, _)) => m.layers,
        None => Vec::new(),
    };
    if !layers
        .iter()
        .any(|l| l.digest == layer.digest && l.annotations == layer.annotations)
    {
        layers.push(layer);
    }
    let manifest = OciImageManifest {
        schema_version: 2,
        media_type: Some(crate::model::oci::OCI_MANIFEST.into()),
        config: config_descriptor,
        layers,
        subject: None,
        artifact_type: None,
        annotations: None,
    };
    reg.push_manifest(tag, &manifest)
}

/// The verified predicate of the newest attestation of `predicate_type`
/// about `repo@digest`, in either layout — a cosign 3 bundle referrer
/// first, then the legacy `.att` layers: `Ok(Err(reason))` when there is
/// none that verifies (every reason joined), `Err` when the registry could
/// not be read.
pub fn verified_predicate(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    predicate_type: &str,
    trust: &TrustPolicy,
    now: DateTime<Utc>,
) -> Result<Result<serde_json::Value, String>, RegistryError> {
    use super::oci_bundle::{self, Found};
    let bundles = match oci_bundle::find_verified(reg, repo, digest, predicate_type, trust)? {
        Found::Verified { verified, .. } => {
            return Ok(oci_bundle::predicate_of(&verified)
                .cloned()
                .ok_or_else(|| "the verified statement has no predicate".to_string()));
        }
        Found::Rejected(reasons) => Some(format!("bundles: {}", reasons.join("; "))),
        Found::Nothing => None,
    };
    match verified_legacy_predicate(reg, repo, digest, predicate_type, trust, now)? {
        Ok(p) => Ok(Ok(p)),
        Err(legacy) => Ok(Err(match bundles {
            Some(b) => format!(".att: {legacy}; {b}"),
            None => legacy,
        })),
    }
}

/// [`verified_predicate`] over the legacy `.att` layout alone.
fn verified_legacy_predicate(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    predicate_type: &str,
    trust: &TrustPolicy,
    now: DateTime<Utc>,
) -> Result<Result<serde_json::Value, String>, RegistryError> {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let Some((manifest, _)) = reg.manifest(&attestation_tag(repo, digest))? else {
        return Ok(Err(
            "no attestation found (no .att manifest and no Sigstore bundle for this digest)".into(),
        ));
    };
    if manifest.layers.len() > MAX_SIGNATURES {
        return Ok(Err(format!(
            "{} attestations, over the cap of {MAX_SIGNATURES}",
            manifest.layers.len()
        )));
    }
    let hex = digest.trim_start_matches("sha256:");
    let mut reasons = Vec::new();
    // Newest last: try from the end.
    for layer in manifest.layers.iter().rev() {
        let declared = layer
            .annotations
            .as_ref()
            .and_then(|a| a.get("predicateType"))
            .map(String::as_str);
        if declared != Some(predicate_type) {
            reasons.push(format!(
                "attestation of type {} is not {predicate_type}",
                declared.unwrap_or("(none)")
            ));
            continue;
        }
        let bytes = match fetch_layer(reg, repo, layer, MAX_ENVELOPE_BYTES)? {
            Ok(b) => b,
            Err(reason) => {
                reasons.push(reason);
                continue;
            }
        };
        let check = || -> Result<serde_json::Value, String> {
            let env: serde_json::Value =
                serde_json::from_slice(&bytes).map_err(|e| format!("not a DSSE envelope: {e}"))?;
            let payload_type = env["payloadType"].as_str().unwrap_or_default();
            let payload = b64
                .decode(env["payload"].as_str().unwrap_or_default())
                .map_err(|e| format!("payload is not base64: {e}"))?;
            let signed = pae(payload_type, &payload);
            let sigs: Vec<Vec<u8>> = env["signatures"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["sig"].as_str().and_then(|x| b64.decode(x).ok()))
                .collect();
            match keyless_parts(layer) {
                None => {
                    let verified = sigs.iter().any(|sig| {
                        p256::ecdsa::Signature::from_der(sig)
                            .or_else(|_| p256::ecdsa::Signature::from_slice(sig))
                            .is_ok_and(|sig| trust.keys.iter().any(|k| k.verify_raw(&signed, &sig)))
                    });
                    if !verified {
                        return Err("no trusted key verifies the attestation (signed by another key, or altered)".into());
                    }
                }
                Some((cert, chain, bundle)) => {
                    let mut last = "the envelope carries no signature".to_string();
                    let verified = sigs.iter().any(|sig| {
                        let s = KeylessSignature {
                            signed: &signed,
                            signature: sig,
                            certificate_pem: cert,
                            chain_pem: chain,
                            bundle_json: bundle,
                            logged: Logged::Intoto { payload: &payload },
                        };
                        keyless::verify(&s, &trust.keyless, now)
                            .map_err(|r| last = r.to_string())
                            .is_ok()
                    });
                    if !verified {
                        return Err(last);
                    }
                }
            }
            let st: serde_json::Value = serde_json::from_slice(&payload)
                .map_err(|e| format!("statement is not JSON: {e}"))?;
            if st["predicateType"].as_str() != Some(predicate_type) {
                return Err(format!(
                    "signed statement is of type {}, not {predicate_type}",
                    st["predicateType"]
                ));
            }
            let about_us = st["subject"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| s["digest"]["sha256"].as_str() == Some(hex));
            if !about_us {
                return Err(format!(
                    "the attestation is about another digest, not {digest}"
                ));
            }
            Ok(st["predicate"].clone())
        };
        match check() {
            Ok(p) => return Ok(Ok(p)),
            Err(r) => reasons.push(r),
        }
    }
    Ok(Err(reasons.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn encrypted(json: &str) -> String {
        let b64 = base64::engine::general_purpose::STANDARD.encode(json);
        format!(
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n{b64}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n"
        )
    }

    #[test]
    fn a_hostile_or_foreign_encrypted_key_is_refused_before_any_work() {
        let salt = "AAAA";
        let nonce = base64::engine::general_purpose::STANDARD.encode([0u8; 24]);
        let doc = |n: u64, kdf: &str| {
            encrypted(&format!(
                r#"{{"kdf":{{"name":"{kdf}","params":{{"N":{n},"r":8,"p":1}},"salt":"{salt}"}},"cipher":{{"name":"nacl/secretbox","nonce":"{nonce}"}},"ciphertext":"AAAA"}}"#
            ))
        };
        let err = decrypt_key(&doc(1 << 30, "scrypt"), b"pw").expect_err("too costly");
        assert!(err.contains("over the limit"), "{err}");
        let err = decrypt_key(&doc(1000, "scrypt"), b"pw").expect_err("not a power of two");
        assert!(err.contains("power of two"), "{err}");
        let err = decrypt_key(&doc(1 << 10, "argon2"), b"pw").expect_err("other kdf");
        assert!(err.contains("argon2"), "{err}");
        let err = decrypt_key(&doc(1 << 10, "scrypt"), b"pw").expect_err("bad ciphertext");
        assert!(err.contains("does not decrypt"), "{err}");
        let err = decrypt_key(&encrypted("not json"), b"pw").expect_err("not json");
        assert!(err.contains("not cosign's JSON"), "{err}");
        let (private, _) = generate_key_pair().expect("keygen");
        assert!(!is_encrypted_key(&private));
        let err = decrypt_key(&private, b"pw").expect_err("plain key");
        assert!(err.contains("not a cosign-encrypted key"), "{err}");
        assert!(describe_private_key(&doc(2, "scrypt")).contains("COSIGN_PASSWORD"));
    }
}
