//! Sigstore bundle verification: bundles v0.1–v0.3 (`application/vnd.dev.
//! sigstore.bundle+json;version=0.1|0.2`, `…bundle.v0.3+json`) holding a
//! message signature or a DSSE envelope, signed with a key or keylessly,
//! checked offline against a `trusted_root.json`.
//!
//! The cryptography is the Sigstore project's own: `sigstore-verify`
//! (sigstore/sigstore-rust) checks the certificate chain to a Fulcio CA and
//! its validity at the log or timestamp time, the SCTs against the CT logs,
//! Rekor v1 entries (inclusion proof, signed checkpoint, SET) and Rekor v2
//! entries, RFC 3161 timestamps against the TSAs, the signature over the
//! artifact or the DSSE PAE, and that the log entry describes this very
//! signature. It is used without its TUF client: no trust material is
//! fetched, the root is the public-good production root the crate embeds
//! or a file the caller names.
//!
//! What is ours, and why: the identity policy. `sigstore-verify` matches
//! a SAN and an issuer exactly, and its mismatch error does not say which
//! flag or policy field to fix; our trust policy (`policies/trust.toml`,
//! `verify-bundle --certificate-identity-regexp`) also allows a regex for
//! each. So the library verifies everything cryptographic for any
//! identity, and the issuer and SAN of the certificate it verified are
//! matched here (exact or regex), the error naming what was found and what
//! was expected. A keyless result without a verified certificate, identity
//! or issuer is refused — a gate never passes what it did not evaluate.

use super::keyless::Matcher;
use chrono::{DateTime, Utc};
use sigstore_verify::trust_root::{SIGSTORE_PRODUCTION_TRUSTED_ROOT, TrustedRoot};
use sigstore_verify::types::{Artifact, Bundle, DerPublicKey, Sha256Hash, SignatureContent};
use sigstore_verify::{PublicKeyVerificationPolicy, VerificationPolicy, Verifier};

/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// Where a config repo may replace the public-good trusted root.
pub const TRUSTED_ROOT_FILE: &str = "policies/trusted_root.json";

/// Largest bundle accepted (real ones are a few KiB; a DSSE attestation
/// with a big predicate a few hundred).
pub const MAX_BUNDLE_BYTES: usize = 4 * 1024 * 1024;

/// What was signed: the artifact's bytes, or its SHA-256 digest (an
/// image's manifest digest, or a DSSE in-toto statement's subject).
#[derive(Debug, Clone)]
pub enum Subject {
    Bytes(Vec<u8>),
    Sha256([u8; 32]),
}

impl Subject {
    /// `sha256:<64 hex>` as a digest; `None` for anything else.
    pub fn parse_digest(s: &str) -> Option<Subject> {
        let hex = s.strip_prefix("sha256:")?;
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, chunk) in hex.as_bytes().chunks(2).enumerate() {
            let pair = std::str::from_utf8(chunk).ok()?;
            out[i] = u8::from_str_radix(pair, 16).ok()?;
        }
        Some(Subject::Sha256(out))
    }
}

/// Who must have signed.
#[derive(Debug, Clone)]
pub enum Signer {
    /// A public key (PEM SPKI: ECDSA P-256/P-384, Ed25519, RSA). The
    /// bundle's transparency-log entries are verified whenever it has
    /// any; `require_tlog` also refuses a bundle without one (a signature
    /// made with `--tlog-upload=false`).
    Key { pem: String, require_tlog: bool },
    /// A Fulcio certificate for this OIDC issuer and subject (SAN).
    Identity { issuer: Matcher, subject: Matcher },
}

/// What a verified bundle says.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verified {
    pub media_type: String,
    /// `message-signature`, or `dsse` with its payload type.
    pub content: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_type: Option<String>,
    /// The in-toto statement's `predicateType` (DSSE in-toto bundles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub predicate_type: Option<String>,
    /// The verified in-toto statement (DSSE in-toto bundles): what an
    /// attestation gate reads its predicate from.
    #[serde(skip)]
    pub statement: Option<serde_json::Value>,
    /// The certificate's SAN (keyless).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The certificate's OIDC issuer (keyless).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Rekor v1's integrated time, when inclusion was verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub integrated_time: Option<DateTime<Utc>>,
    /// Every authenticated time verification used (log, TSA).
    pub verified_times: Vec<DateTime<Utc>>,
    pub certificate_verified: bool,
    pub sct_verified: bool,
    pub tlog_verified: bool,
}

/// Why a bundle was not verified.
#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the bundle is not a Sigstore bundle: {0}")]
    Malformed(String),
    #[error("the trusted root cannot be used: {0}")]
    TrustedRoot(String),
    #[error("the public key cannot be read: {0}; give a PEM public key (cosign.pub)")]
    Key(String),
    #[error("{0}")]
    Rejected(String),
    #[error(
        "the certificate's {what} {found:?} does not match the policy's {expected}; check --certificate-{what} (or the trust policy)"
    )]
    Identity {
        what: &'static str,
        found: String,
        expected: String,
    },
}

/// The trusted root: `json` when given, else the public-good production
/// root (a snapshot embedded in `sigstore-trust-root`).
pub fn trusted_root(json: Option<&str>) -> Result<TrustedRoot, BundleError> {
    TrustedRoot::from_json(json.unwrap_or(SIGSTORE_PRODUCTION_TRUSTED_ROOT))
        .map_err(|e| BundleError::TrustedRoot(e.to_string()))
}

/// The public-good production root, parsed once per process.
pub fn production_root() -> Result<&'static TrustedRoot, BundleError> {
    static ROOT: std::sync::OnceLock<Result<TrustedRoot, String>> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| trusted_root(None).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| BundleError::TrustedRoot(e.clone()))
}

/// Verifies `bundle_json` over `subject` for `signer` against `root`.
pub fn verify(
    bundle_json: &str,
    subject: &Subject,
    signer: &Signer,
    root: &TrustedRoot,
) -> Result<Verified, BundleError> {
    if bundle_json.len() > MAX_BUNDLE_BYTES {
        return Err(BundleError::Malformed(format!(
            "{} bytes, over the {MAX_BUNDLE_BYTES}-byte limit",
            bundle_json.len()
        )));
    }
    let bundle =
        Bundle::from_json(bundle_json).map_err(|e| BundleError::Malformed(e.to_string()))?;
    let verifier = Verifier::new(root).map_err(|e| BundleError::TrustedRoot(e.to_string()))?;
    let artifact = match subject {
        Subject::Bytes(b) => Artifact::from_blob(b),
        Subject::Sha256(d) => Artifact::from_digest(Sha256Hash::new(*d)),
    };
    let rejected = |e: sigstore_verify::Error| BundleError::Rejected(e.to_string());
    let unlogged = bundle.verification_material.tlog_entries.is_empty()
        && bundle
            .verification_material
            .timestamp_verification_data
            .rfc3161_timestamps
            .is_empty();
    let result = match signer {
        Signer::Key { pem, require_tlog } if unlogged => {
            if *require_tlog {
                return Err(BundleError::Rejected(
                    "the bundle has no transparency-log entry, and the policy requires one (require_tlog)"
                        .into(),
                ));
            }
            verify_unlogged_dsse(&bundle, subject, pem)?;
            None
        }
        Signer::Key { pem, .. } => {
            let key = DerPublicKey::from_pem(pem).map_err(|e| BundleError::Key(e.to_string()))?;
            Some(
                verifier
                    .verify(artifact, &bundle, &PublicKeyVerificationPolicy::new(key))
                    .map_err(rejected)?,
            )
        }
        Signer::Identity { issuer, subject } => {
            let policy = VerificationPolicy::any_identity();
            let result = verifier
                .verify(artifact, &bundle, &policy)
                .map_err(rejected)?;
            if !result.certificate_verified() {
                return Err(BundleError::Rejected(
                    "the bundle has no verified signing certificate; keyless verification needs one"
                        .into(),
                ));
            }
            let found = result.identity().map(|s| s.as_str().to_string());
            match found {
                Some(f) if subject.matches(&f) => {}
                f => {
                    return Err(BundleError::Identity {
                        what: "identity",
                        found: f.unwrap_or_default(),
                        expected: subject.to_string(),
                    });
                }
            }
            match result.issuer() {
                Some(f) if issuer.matches(f) => {}
                f => {
                    return Err(BundleError::Identity {
                        what: "oidc-issuer",
                        found: f.unwrap_or_default().to_string(),
                        expected: issuer.to_string(),
                    });
                }
            }
            Some(result)
        }
    };
    let (content, payload_type, statement) = match &bundle.content {
        SignatureContent::MessageSignature(_) => ("message-signature".to_string(), None, None),
        SignatureContent::DsseEnvelope(e) => {
            // The payload whose PAE the library just verified.
            let statement = (e.payload_type == IN_TOTO)
                .then(|| serde_json::from_slice::<serde_json::Value>(e.payload.as_bytes()).ok())
                .flatten();
            ("dsse".to_string(), Some(e.payload_type.clone()), statement)
        }
        #[allow(unreachable_patterns)]
        _ => ("other".to_string(), None, None),
    };
    let predicate_type = statement
        .as_ref()
        .and_then(|s| s.get("predicateType"))
        .and_then(|t| t.as_str())
        .map(str::to_string);
    Ok(Verified {
        media_type: bundle.media_type.as_str().to_string(),
        content,
        payload_type,
        predicate_type,
        statement,
        identity: result
            .as_ref()
            .and_then(|r| r.identity())
            .map(|s| s.as_str().to_string()),
        issuer: result.as_ref().and_then(|r| r.issuer()).map(str::to_string),
        integrated_time: result
            .as_ref()
            .and_then(|r| r.integrated_time())
            .and_then(to_chrono),
        verified_times: result
            .as_ref()
            .map(|r| {
                r.verified_timestamps()
                    .iter()
                    .filter_map(|t| to_chrono(*t))
                    .collect()
            })
            .unwrap_or_default(),
        certificate_verified: result.as_ref().is_some_and(|r| r.certificate_verified()),
        sct_verified: result.as_ref().is_some_and(|r| r.sct_verified()),
        tlog_verified: result.as_ref().is_some_and(|r| r.tlog_verified()),
    })
}

/// A keyed DSSE in-toto bundle with neither a log entry nor a timestamp
/// (`cosign sign --tlog-upload=false`, our own `sign --bundle-format v3`):
/// `sigstore-verify` refuses it for want of signing-time evidence, which a
/// keyed signature does not need. The key alone decides, as for a legacy
/// `.sig` signature: the ECDSA P-256 signature over the DSSE PAE, and a
/// statement subject naming `subject`'s SHA-256.
fn verify_unlogged_dsse(bundle: &Bundle, subject: &Subject, pem: &str) -> Result<(), BundleError> {
    use p256::ecdsa::signature::Verifier as _;
    use p256::pkcs8::DecodePublicKey;
    let SignatureContent::DsseEnvelope(e) = &bundle.content else {
        return Err(BundleError::Rejected(
            "a message signature without a transparency-log entry or timestamp cannot be verified offline; sign with a log, or as a DSSE statement".into(),
        ));
    };
    if e.payload_type != IN_TOTO {
        return Err(BundleError::Rejected(format!(
            "the DSSE payload is {:?}, not an in-toto statement",
            e.payload_type
        )));
    }
    let key = p256::ecdsa::VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
        BundleError::Key(format!(
            "{e}: a bundle without a log entry is verified with ECDSA P-256 keys only"
        ))
    })?;
    let raw = e.signature.sig.as_bytes();
    let sig = p256::ecdsa::Signature::from_der(raw)
        .or_else(|_| p256::ecdsa::Signature::from_slice(raw))
        .map_err(|_| BundleError::Rejected("the DSSE signature is not ECDSA".into()))?;
    let payload = e.payload.as_bytes();
    if key
        .verify(&super::cosign::statement_pae(payload), &sig)
        .is_err()
    {
        return Err(BundleError::Rejected(
            "the DSSE signature does not verify with this key".into(),
        ));
    }
    let want = match subject {
        Subject::Sha256(d) => *d,
        Subject::Bytes(b) => {
            use sha2::Digest;
            sha2::Sha256::digest(b).into()
        }
    };
    let want_hex: String = want.iter().map(|b| format!("{b:02x}")).collect();
    let statement: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| BundleError::Rejected(format!("the in-toto statement is not JSON: {e}")))?;
    let names_it = statement
        .get("subject")
        .and_then(|s| s.as_array())
        .is_some_and(|subjects| {
            subjects.iter().any(|s| {
                s.pointer("/digest/sha256")
                    .and_then(|d| d.as_str())
                    .is_some_and(|d| d.eq_ignore_ascii_case(&want_hex))
            })
        });
    if !names_it {
        return Err(BundleError::Rejected(format!(
            "the in-toto statement's subjects do not name sha256:{want_hex}"
        )));
    }
    Ok(())
}

fn to_chrono(t: jiff::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.as_second(), t.subsec_nanosecond().max(0) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_argument_is_sha256_and_64_hex_digits() {
        let hex = "a".repeat(64);
        assert!(matches!(
            Subject::parse_digest(&format!("sha256:{hex}")),
            Some(Subject::Sha256(d)) if d == [0xaa; 32]
        ));
        for bad in [
            hex.clone(),
            format!("sha512:{hex}"),
            format!("sha256:{}", &hex[1..]),
            format!("sha256:{}g", &hex[1..]),
        ] {
            assert!(Subject::parse_digest(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn the_embedded_production_root_loads() {
        assert!(trusted_root(None).is_ok());
        assert!(matches!(
            trusted_root(Some("{")),
            Err(BundleError::TrustedRoot(_))
        ));
    }

    #[test]
    fn garbage_is_not_a_bundle() {
        let root = trusted_root(None).expect("root");
        let signer = Signer::Key {
            pem: String::new(),
            require_tlog: true,
        };
        let err = verify("{}", &Subject::Bytes(vec![]), &signer, &root).expect_err("garbage");
        assert!(matches!(err, BundleError::Malformed(_)), "{err}");
    }
}
