//! Keyless (Fulcio/Rekor) verification of cosign signatures and
//! attestations, entirely offline: the short-lived signing certificate must
//! chain to a configured Fulcio root, carry the expected identity (OIDC
//! issuer + subject, exact or regex), have been valid when Rekor logged the
//! signature, and the Rekor bundle's signed entry timestamp (SET) must
//! verify against the configured Rekor key and bind this very signature.
//!
//! Why by hand: the `sigstore` crate verifies keyless signatures only
//! through its own OCI client and trust-root fetching (TUF over the
//! network), neither of which can run here or fits our registry adapter;
//! what is needed offline is X.509 path validation for ECDSA chains plus
//! one signature over a canonical JSON, done here with `x509-cert` and the
//! RustCrypto curves. Certificate layout (Fulcio OIDs) and the SET
//! canonical form follow the sigstore specs.
//!
//! Registry layout (as cosign writes it): the layer annotations
//! `dev.sigstore.cosign/certificate` (leaf PEM), `dev.sigstore.cosign/chain`
//! (intermediates PEM) and `dev.sigstore.cosign/bundle` (Rekor bundle JSON).

use base64::Engine;
use chrono::{DateTime, Utc};
use regex::Regex;
use serde::Deserialize;
use sha2::Digest as _;
use x509_cert::Certificate;
use x509_cert::der::asn1::Utf8StringRef;
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::{Decode, DecodePem, Encode};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{BasicConstraints, ExtendedKeyUsage, SubjectAltName};

pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
pub const CHAIN_ANNOTATION: &str = "dev.sigstore.cosign/chain";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";

/// Fulcio's OIDC issuer extension (v2, DER UTF8String).
pub const OID_ISSUER_V2: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.8");
/// Fulcio's OIDC issuer extension (v1, raw bytes; deprecated but still issued).
pub const OID_ISSUER_V1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.57264.1.1");
const OID_SAN: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.17");
const OID_EKU: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
const OID_BASIC_CONSTRAINTS: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.19");
const OID_CODE_SIGNING: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.3");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
/// Longest chain followed from the leaf to a root.
const MAX_CHAIN: usize = 5;

/// An exact string or a regex (anchored by the policy author).
#[derive(Debug, Clone)]
pub enum Matcher {
    Exact(String),
    Regex(Regex),
}

impl Matcher {
    /// A regex matcher; the error is the regex crate's description.
    pub fn regex(pattern: &str) -> Result<Matcher, String> {
        Regex::new(pattern)
            .map(Matcher::Regex)
            .map_err(|e| e.to_string())
    }

    pub fn matches(&self, value: &str) -> bool {
        match self {
            Matcher::Exact(s) => s == value,
            Matcher::Regex(r) => r.is_match(value),
        }
    }
}

impl std::fmt::Display for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Matcher::Exact(s) => write!(f, "{s:?}"),
            Matcher::Regex(r) => write!(f, "/{}/", r.as_str()),
        }
    }
}

/// An ECDSA public key (P-256 or P-384), as certificates and Rekor use.
#[derive(Debug, Clone)]
pub enum EcKey {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl EcKey {
    /// From a DER SubjectPublicKeyInfo.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, String> {
        use p256::pkcs8::DecodePublicKey;
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(EcKey::P256(k));
        }
        p384::ecdsa::VerifyingKey::from_public_key_der(der)
            .map(EcKey::P384)
            .map_err(|_| "not an ECDSA P-256 or P-384 public key".to_string())
    }

    /// Verifies a DER (or fixed-size) signature over `msg`, hashed with
    /// SHA-384 when `sha384`, else SHA-256.
    fn verify(&self, msg: &[u8], sig: &[u8], sha384: bool) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier;
        let prehash: Vec<u8> = if sha384 {
            sha2::Sha384::digest(msg).to_vec()
        } else {
            sha2::Sha256::digest(msg).to_vec()
        };
        match self {
            EcKey::P256(k) => p256::ecdsa::Signature::from_der(sig)
                .or_else(|_| p256::ecdsa::Signature::from_slice(sig))
                .is_ok_and(|s| k.verify_prehash(&prehash, &s).is_ok()),
            EcKey::P384(k) => p384::ecdsa::Signature::from_der(sig)
                .or_else(|_| p384::ecdsa::Signature::from_slice(sig))
                .is_ok_and(|s| k.verify_prehash(&prehash, &s).is_ok()),
        }
    }

    /// The natural hash of the curve for payload signatures.
    fn verify_payload(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.verify(msg, sig, matches!(self, EcKey::P384(_)))
    }
}

/// A configured Rekor log: its key, and the log id derived from it.
#[derive(Debug, Clone)]
pub struct RekorKey {
    key: EcKey,
    /// Hex SHA-256 of the key's DER SPKI, as Rekor names its log.
    pub log_id: String,
}

impl RekorKey {
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let (label, der) = pem_decode(pem)?;
        if label != "PUBLIC KEY" {
            return Err(format!("expected a PEM PUBLIC KEY, found {label}"));
        }
        Ok(Self {
            key: EcKey::from_spki_der(&der)?,
            log_id: hex(&sha2::Sha256::digest(&der)),
        })
    }
}

fn pem_decode(pem: &str) -> Result<(String, Vec<u8>), String> {
    let mut label = None;
    let mut body = String::new();
    for line in pem.lines().map(str::trim) {
        if let Some(l) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        {
            label = Some(l.to_string());
        } else if line.starts_with("-----END ") {
            break;
        } else if label.is_some() {
            body.push_str(line);
        }
    }
    let label = label.ok_or("not PEM (no BEGIN line)")?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|e| format!("PEM body is not base64: {e}"))?;
    Ok((label, der))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// One `[[keyless]]` entry of `policies/trust.toml`.
#[derive(Debug, Clone)]
pub struct KeylessTrust {
    pub name: String,
    /// Trust anchors: Fulcio root (and, optionally, its intermediates).
    pub roots: Vec<Certificate>,
    pub rekor: Option<RekorKey>,
    pub issuer: Matcher,
    pub subject: Matcher,
    /// A signature without a verified Rekor entry is refused.
    pub require_tlog: bool,
}

/// Parses a PEM bundle of certificates.
pub fn parse_certificates(pem: &str) -> Result<Vec<Certificate>, String> {
    // x509-cert 0.2.5 computes `len - 1` after stripping trailing line
    // breaks: nothing but line breaks overflows (a panic with overflow
    // checks on; found by the `signatures` fuzz target).
    if pem.trim_end_matches(['\r', '\n']).is_empty() {
        return Err("no certificate in the PEM bundle".into());
    }
    let certs = Certificate::load_pem_chain(pem.as_bytes())
        .map_err(|e| format!("not a PEM certificate bundle: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in the PEM bundle".into());
    }
    Ok(certs)
}

/// What the Rekor entry must say about the signature it logs.
#[derive(Debug, Clone, Copy)]
pub enum Logged<'a> {
    /// `hashedrekord`: the signed blob (a simple-signing payload).
    HashedRekord { payload: &'a [u8] },
    /// `intoto`: the DSSE payload (the in-toto statement).
    Intoto { payload: &'a [u8] },
}

/// A keyless signature as found in the registry.
#[derive(Debug, Clone, Copy)]
pub struct KeylessSignature<'a> {
    /// The bytes the signature covers (payload, or DSSE PAE).
    pub signed: &'a [u8],
    /// The raw (DER) signature.
    pub signature: &'a [u8],
    pub certificate_pem: &'a str,
    pub chain_pem: Option<&'a str>,
    pub bundle_json: Option<&'a str>,
    pub logged: Logged<'a>,
}

/// Why a keyless signature does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeylessRejection {
    #[error("signing certificate is unreadable: {0}")]
    BadCertificate(String),
    #[error(
        "the signature does not verify with the certificate's key (payload altered after signing)"
    )]
    BadSignature,
    #[error("missing transparency-log entry: no Rekor bundle, and {policy} requires one")]
    MissingTlog { policy: String },
    #[error("transparency-log entry rejected: {0}")]
    BadTlog(String),
    #[error("untrusted certificate: {0}")]
    Untrusted(String),
    #[error("expired or not yet valid certificate: {0}")]
    Expired(String),
    #[error(
        "identity mismatch: certificate is for {subject:?} from issuer {issuer:?}; {policy} wants subject {want_subject} from issuer {want_issuer}"
    )]
    IdentityMismatch {
        policy: String,
        issuer: String,
        subject: String,
        want_issuer: String,
        want_subject: String,
    },
}

/// Verifies `sig` against the keyless entries; returns the entry that
/// accepts it, or the reason each one refused (first the most specific).
pub fn verify<'t>(
    sig: &KeylessSignature<'_>,
    trust: &'t [KeylessTrust],
    now: DateTime<Utc>,
) -> Result<&'t KeylessTrust, KeylessRejection> {
    let leaf = Certificate::from_pem(sig.certificate_pem.trim().as_bytes())
        .map_err(|e| KeylessRejection::BadCertificate(e.to_string()))?;
    let leaf_key = spki_key(&leaf).map_err(KeylessRejection::BadCertificate)?;
    if !leaf_key.verify_payload(sig.signed, sig.signature) {
        return Err(KeylessRejection::BadSignature);
    }
    check_leaf_usage(&leaf).map_err(KeylessRejection::Untrusted)?;
    let intermediates = match sig.chain_pem {
        Some(p) if !p.trim().is_empty() => {
            parse_certificates(p).map_err(KeylessRejection::BadCertificate)?
        }
        _ => Vec::new(),
    };
    let mut last = None;
    for entry in trust {
        match verify_with(sig, &leaf, &intermediates, entry, now) {
            Ok(()) => return Ok(entry),
            Err(r) => {
                // Keep the most telling reason: identity over chain problems.
                let rank = |r: &KeylessRejection| match r {
                    KeylessRejection::IdentityMismatch { .. } => 3,
                    KeylessRejection::Expired(_) => 2,
                    KeylessRejection::BadTlog(_) | KeylessRejection::MissingTlog { .. } => 1,
                    _ => 0,
                };
                if last.as_ref().is_none_or(|l| rank(&r) >= rank(l)) {
                    last = Some(r);
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        KeylessRejection::Untrusted("no [[keyless]] entry in policies/trust.toml".into())
    }))
}

fn verify_with(
    sig: &KeylessSignature<'_>,
    leaf: &Certificate,
    intermediates: &[Certificate],
    entry: &KeylessTrust,
    now: DateTime<Utc>,
) -> Result<(), KeylessRejection> {
    // When was the signature made? Rekor's integrated time, if logged.
    let at = match (sig.bundle_json, &entry.rekor) {
        (Some(bundle), Some(rekor)) => verify_bundle(bundle, rekor, sig, leaf)?,
        (Some(_), None) if entry.require_tlog => {
            return Err(KeylessRejection::BadTlog(format!(
                "{} requires a transparency log but names no rekor key",
                entry.name
            )));
        }
        (None, _) if entry.require_tlog => {
            return Err(KeylessRejection::MissingTlog {
                policy: entry.name.clone(),
            });
        }
        _ => now,
    };
    verify_chain(leaf, intermediates, &entry.roots, at)?;
    let (issuer, subject) = identity(leaf).map_err(KeylessRejection::Untrusted)?;
    if !entry.issuer.matches(&issuer) || !entry.subject.matches(&subject) {
        return Err(KeylessRejection::IdentityMismatch {
            policy: entry.name.clone(),
            issuer,
            subject,
            want_issuer: entry.issuer.to_string(),
            want_subject: entry.subject.to_string(),
        });
    }
    Ok(())
}

fn spki_key(cert: &Certificate) -> Result<EcKey, String> {
    let der = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| e.to_string())?;
    EcKey::from_spki_der(&der)
}

fn extension(cert: &Certificate, oid: ObjectIdentifier) -> Option<&[u8]> {
    cert.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == oid)
        .map(|e| e.extn_value.as_bytes())
}

fn check_leaf_usage(leaf: &Certificate) -> Result<(), String> {
    let eku = extension(leaf, OID_EKU)
        .and_then(|b| ExtendedKeyUsage::from_der(b).ok())
        .ok_or("the signing certificate has no extended key usage")?;
    if !eku.0.contains(&OID_CODE_SIGNING) {
        return Err("the signing certificate is not for code signing".into());
    }
    Ok(())
}

fn is_ca(cert: &Certificate) -> bool {
    extension(cert, OID_BASIC_CONSTRAINTS)
        .and_then(|b| BasicConstraints::from_der(b).ok())
        .is_some_and(|bc| bc.ca)
}

fn subject_name(cert: &Certificate) -> String {
    cert.tbs_certificate.subject.to_string()
}

fn valid_at(cert: &Certificate, at: DateTime<Utc>) -> Result<(), KeylessRejection> {
    let v = &cert.tbs_certificate.validity;
    let secs = |t: x509_cert::time::Time| t.to_unix_duration().as_secs() as i64;
    let (from, to) = (secs(v.not_before), secs(v.not_after));
    let t = at.timestamp();
    if t < from || t > to {
        let show = |s: i64| {
            DateTime::from_timestamp(s, 0)
                .map(|d| d.to_rfc3339())
                .unwrap_or_else(|| s.to_string())
        };
        return Err(KeylessRejection::Expired(format!(
            "{} is valid {} .. {}, the signature was made at {}",
            subject_name(cert),
            show(from),
            show(to),
            at.to_rfc3339()
        )));
    }
    Ok(())
}

/// Whether `issuer` signed `cert`.
fn signed_by(cert: &Certificate, issuer: &Certificate) -> bool {
    if cert.tbs_certificate.issuer != issuer.tbs_certificate.subject {
        return false;
    }
    let sha384 = match cert.signature_algorithm.oid {
        OID_ECDSA_SHA256 => false,
        OID_ECDSA_SHA384 => true,
        _ => return false,
    };
    let (Ok(tbs), Ok(key)) = (cert.tbs_certificate.to_der(), spki_key(issuer)) else {
        return false;
    };
    key.verify(&tbs, cert.signature.raw_bytes(), sha384)
}

/// Follows `leaf` up through `intermediates` to one of `roots`, every
/// certificate valid at `at`, every issuer a CA.
fn verify_chain(
    leaf: &Certificate,
    intermediates: &[Certificate],
    roots: &[Certificate],
    at: DateTime<Utc>,
) -> Result<(), KeylessRejection> {
    let mut current = leaf;
    for _ in 0..MAX_CHAIN {
        valid_at(current, at)?;
        if let Some(root) = roots.iter().find(|r| signed_by(current, r)) {
            if !is_ca(root) {
                return Err(KeylessRejection::Untrusted(format!(
                    "trust anchor {} is not a CA",
                    subject_name(root)
                )));
            }
            return valid_at(root, at);
        }
        match intermediates
            .iter()
            .find(|c| signed_by(current, c) && is_ca(c))
        {
            Some(next) => current = next,
            None => {
                return Err(KeylessRejection::Untrusted(format!(
                    "{} (issued by {}) does not chain to a configured Fulcio root",
                    subject_name(current),
                    current.tbs_certificate.issuer
                )));
            }
        }
    }
    Err(KeylessRejection::Untrusted(format!(
        "chain longer than {MAX_CHAIN} certificates"
    )))
}

/// The OIDC issuer and subject (email or URI SAN) Fulcio wrote.
fn identity(leaf: &Certificate) -> Result<(String, String), String> {
    let issuer = if let Some(b) = extension(leaf, OID_ISSUER_V2) {
        Utf8StringRef::from_der(b)
            .map(|s| s.as_str().to_string())
            .map_err(|e| format!("issuer extension is not a UTF8String: {e}"))?
    } else if let Some(b) = extension(leaf, OID_ISSUER_V1) {
        String::from_utf8(b.to_vec()).map_err(|_| "issuer extension is not UTF-8".to_string())?
    } else {
        return Err("the certificate carries no Fulcio OIDC issuer extension".into());
    };
    let san = extension(leaf, OID_SAN)
        .and_then(|b| SubjectAltName::from_der(b).ok())
        .ok_or("the certificate has no subject alternative name")?;
    let subject = san
        .0
        .iter()
        .find_map(|n| match n {
            GeneralName::Rfc822Name(s) => Some(s.to_string()),
            GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
            _ => None,
        })
        .ok_or("the certificate has no email or URI identity")?;
    Ok((issuer, subject))
}

#[derive(Deserialize)]
struct Bundle {
    #[serde(rename = "SignedEntryTimestamp")]
    set: String,
    #[serde(rename = "Payload")]
    payload: BundlePayload,
}

#[derive(Deserialize)]
struct BundlePayload {
    body: String,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

/// The canonical (RFC 8785) JSON of the bundle payload, which the SET signs.
fn canonical_payload(p: &BundlePayload) -> String {
    format!(
        "{{\"body\":{},\"integratedTime\":{},\"logID\":{},\"logIndex\":{}}}",
        serde_json::Value::from(p.body.as_str()),
        p.integrated_time,
        serde_json::Value::from(p.log_id.as_str()),
        p.log_index
    )
}

/// Builds the bundle annotation for a logged entry, signing the SET with
/// `rekor_key`: what a Rekor log returns, for tests and offline fixtures.
pub fn bundle_for(
    body: &serde_json::Value,
    integrated_time: i64,
    log_index: i64,
    log_id: &str,
    sign_set: impl FnOnce(&[u8]) -> Vec<u8>,
) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let payload = BundlePayload {
        body: b64.encode(body.to_string()),
        integrated_time,
        log_index,
        log_id: log_id.to_string(),
    };
    let set = sign_set(canonical_payload(&payload).as_bytes());
    serde_json::json!({
        "SignedEntryTimestamp": b64.encode(set),
        "Payload": {
            "body": payload.body,
            "integratedTime": integrated_time,
            "logIndex": log_index,
            "logID": log_id,
        }
    })
    .to_string()
}

/// The Rekor entry body for a signature: `hashedrekord` for a signed blob,
/// `intoto` for a DSSE attestation.
pub fn entry_body(
    logged: Logged<'_>,
    signature: &[u8],
    certificate_pem: &str,
) -> serde_json::Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let cert = b64.encode(certificate_pem);
    match logged {
        Logged::HashedRekord { payload } => serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {"algorithm": "sha256", "value": hex(&sha2::Sha256::digest(payload))}},
                "signature": {"content": b64.encode(signature), "publicKey": {"content": cert}},
            }
        }),
        Logged::Intoto { payload } => serde_json::json!({
            "apiVersion": "0.0.2",
            "kind": "intoto",
            "spec": {"content": {
                "envelope": {"payloadType": super::cosign::IN_TOTO,
                             "signatures": [{"sig": b64.encode(b64.encode(signature)), "publicKey": cert}]},
                "payloadHash": {"algorithm": "sha256", "value": hex(&sha2::Sha256::digest(payload))},
            }}
        }),
    }
}

/// Verifies the Rekor bundle: the SET signature by the configured log, and
/// that the logged entry is this signature by this certificate. Returns
/// the integrated time.
fn verify_bundle(
    bundle_json: &str,
    rekor: &RekorKey,
    sig: &KeylessSignature<'_>,
    leaf: &Certificate,
) -> Result<DateTime<Utc>, KeylessRejection> {
    let bad = |m: String| KeylessRejection::BadTlog(m);
    let b64 = base64::engine::general_purpose::STANDARD;
    let bundle: Bundle =
        serde_json::from_str(bundle_json).map_err(|e| bad(format!("bundle is not JSON: {e}")))?;
    if bundle.payload.log_id != rekor.log_id {
        return Err(bad(format!(
            "logged by {}, not the configured Rekor log {}",
            bundle.payload.log_id, rekor.log_id
        )));
    }
    let set = b64
        .decode(bundle.set.trim())
        .map_err(|e| bad(format!("SignedEntryTimestamp is not base64: {e}")))?;
    if !rekor
        .key
        .verify_payload(canonical_payload(&bundle.payload).as_bytes(), &set)
    {
        return Err(bad(
            "the signed entry timestamp does not verify with the configured Rekor key".into(),
        ));
    }
    let body: serde_json::Value = b64
        .decode(&bundle.payload.body)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| bad("entry body is not base64 JSON".into()))?;
    let logged_cert = |v: &serde_json::Value| -> bool {
        v.as_str()
            .and_then(|s| b64.decode(s).ok())
            .and_then(|pem| Certificate::from_pem(&pem).ok())
            .is_some_and(|c| &c == leaf)
    };
    let (kind, ok) = match sig.logged {
        Logged::HashedRekord { payload } => {
            let spec = &body["spec"];
            let hash_ok = spec["data"]["hash"]["value"].as_str()
                == Some(hex(&sha2::Sha256::digest(payload)).as_str());
            let sig_ok = spec["signature"]["content"]
                .as_str()
                .and_then(|s| b64.decode(s).ok())
                .is_some_and(|s| s == sig.signature);
            let cert_ok = logged_cert(&spec["signature"]["publicKey"]["content"]);
            ("hashedrekord", hash_ok && sig_ok && cert_ok)
        }
        Logged::Intoto { payload } => {
            let content = &body["spec"]["content"];
            let hash_ok = content["payloadHash"]["value"].as_str()
                == Some(hex(&sha2::Sha256::digest(payload)).as_str());
            let cert_ok = content["envelope"]["signatures"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| logged_cert(&s["publicKey"]));
            ("intoto", hash_ok && cert_ok)
        }
    };
    if body["kind"].as_str() != Some(kind) || !ok {
        return Err(bad(format!(
            "the logged {} entry is not this signature by this certificate",
            body["kind"].as_str().unwrap_or("(unknown)")
        )));
    }
    DateTime::from_timestamp(bundle.payload.integrated_time, 0)
        .ok_or_else(|| bad("integratedTime out of range".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_or_blank_bundle_is_an_error_not_a_panic() {
        for pem in ["", "\n", "\r\n\n", " "] {
            assert!(parse_certificates(pem).is_err(), "{pem:?}");
        }
    }
}
