//! Signature gate, verification core for keyed cosign signatures: the
//! simple-signing payload (`critical.image.docker-manifest-digest` must be
//! the digest being released, `critical.type` the cosign type) and an
//! ECDSA P-256 / SHA-256 signature over the payload bytes, checked against
//! the trusted keys of `policies/trust.toml`.
//!
//! Each failure says why: malformed payload, signature for another digest,
//! no trusted key verifies it. Fetching the `sha256-<digest>.sig` manifest
//! is `cosign`'s job; keyless (Fulcio/Rekor) signatures are `keyless`'s.

use p256::ecdsa::signature::Verifier;
use p256::ecdsa::{Signature, VerifyingKey};
use p256::pkcs8::DecodePublicKey;
use serde::Deserialize;

/// `critical.type` of a cosign image signature payload.
pub const COSIGN_TYPE: &str = "cosign container image signature";

/// A named trusted public key.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    pub name: String,
    key: VerifyingKey,
    /// A Sigstore bundle signed with this key must carry a verified
    /// transparency-log entry (`require_tlog` in `trust.toml`).
    pub require_tlog: bool,
}

impl TrustedKey {
    /// Parses a PEM "PUBLIC KEY" (SPKI), as `cosign generate-key-pair` writes.
    pub fn from_pem(name: &str, pem: &str) -> Result<Self, String> {
        let key = VerifyingKey::from_public_key_pem(pem.trim()).map_err(|e| {
            format!("{name}: not an ECDSA P-256 public key in PEM (SPKI) form: {e}")
        })?;
        Ok(Self {
            name: name.to_string(),
            key,
            require_tlog: false,
        })
    }

    /// The key as PEM SPKI, as a Sigstore verifier takes it.
    pub fn public_key_pem(&self) -> String {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        self.key
            .to_public_key_pem(LineEnding::LF)
            .unwrap_or_default()
    }
}

impl TrustedKey {
    /// Whether this key verifies `sig` over `msg` (SHA-256 inside).
    pub fn verify_raw(&self, msg: &[u8], sig: &Signature) -> bool {
        self.key.verify(msg, sig).is_ok()
    }
}

/// Why a signature does not count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("payload is not a cosign simple-signing document: {0}")]
    MalformedPayload(String),
    #[error("payload type is {0:?}, not a cosign image signature")]
    WrongType(String),
    #[error("signature is for {signed}, not {expected} (a signature copied from another image)")]
    OtherDigest { signed: String, expected: String },
    #[error("signature is not base64-encoded DER or raw ECDSA: {0}")]
    MalformedSignature(String),
    #[error(
        "no trusted key verifies this signature (signed by another key, or the payload was altered after signing)"
    )]
    NoTrustedKey,
    #[error("keyless: {0}")]
    Keyless(super::keyless::KeylessRejection),
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    image: PayloadImage,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    digest: String,
}

/// Checks that `payload` is a cosign simple-signing document for `digest`.
pub fn check_payload(payload: &[u8], digest: &str) -> Result<(), Rejection> {
    let p: Payload =
        serde_json::from_slice(payload).map_err(|e| Rejection::MalformedPayload(e.to_string()))?;
    if p.critical.kind != COSIGN_TYPE {
        return Err(Rejection::WrongType(p.critical.kind));
    }
    if p.critical.image.digest != digest {
        return Err(Rejection::OtherDigest {
            signed: p.critical.image.digest,
            expected: digest.to_string(),
        });
    }
    Ok(())
}

/// Decodes a base64 signature annotation to its raw bytes.
pub fn decode_signature(signature_b64: &str) -> Result<Vec<u8>, Rejection> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .map_err(|e| Rejection::MalformedSignature(e.to_string()))
}

/// Checks one signature (base64, as in the `dev.cosignproject.cosign/signature`
/// annotation) over `payload` for `digest`; returns the key that verified it.
pub fn verify_keyed<'k>(
    payload: &[u8],
    signature_b64: &str,
    digest: &str,
    keys: &'k [TrustedKey],
) -> Result<&'k TrustedKey, Rejection> {
    check_payload(payload, digest)?;
    let raw = decode_signature(signature_b64)?;
    let sig = Signature::from_der(&raw)
        .or_else(|_| Signature::from_slice(&raw))
        .map_err(|e| Rejection::MalformedSignature(e.to_string()))?;
    keys.iter()
        .find(|k| k.key.verify(payload, &sig).is_ok())
        .ok_or(Rejection::NoTrustedKey)
}

/// The simple-signing payload cosign signs for `reference@digest`.
pub fn payload_for(reference: &str, digest: &str) -> Vec<u8> {
    serde_json::json!({
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"docker-manifest-digest": digest},
            "type": COSIGN_TYPE,
        },
        "optional": null,
    })
    .to_string()
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer;
    use p256::pkcs8::{EncodePublicKey, LineEnding};

    const D1: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    fn keypair(name: &str) -> (SigningKey, TrustedKey) {
        let sk = SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let pem = sk
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        (sk, TrustedKey::from_pem(name, &pem).unwrap())
    }

    fn sign(sk: &SigningKey, payload: &[u8]) -> String {
        let sig: Signature = sk.sign(payload);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }

    #[test]
    fn every_rejection_has_its_reason() {
        let (sk, trusted) = keypair("release-ci");
        let (other_sk, _) = keypair("stranger");
        let keys = vec![trusted];
        let payload = payload_for("reg/app", D1);
        let good = sign(&sk, &payload);
        assert_eq!(
            verify_keyed(&payload, &good, D1, &keys).unwrap().name,
            "release-ci"
        );
        // A valid signature, but for another digest.
        assert!(matches!(
            verify_keyed(&payload, &good, D2, &keys),
            Err(Rejection::OtherDigest { .. })
        ));
        // Signed by a key we do not trust.
        let foreign = sign(&other_sk, &payload);
        assert_eq!(
            verify_keyed(&payload, &foreign, D1, &keys).unwrap_err(),
            Rejection::NoTrustedKey
        );
        // Payload altered after signing (same digest claim, extra field).
        let mut tampered = String::from_utf8(payload.clone()).unwrap();
        tampered = tampered.replace("\"optional\":null", "\"optional\":{\"by\":\"mallory\"}");
        assert_eq!(
            verify_keyed(tampered.as_bytes(), &good, D1, &keys).unwrap_err(),
            Rejection::NoTrustedKey
        );
        // Not a cosign payload / not a signature.
        assert!(matches!(
            verify_keyed(b"{}", &good, D1, &keys),
            Err(Rejection::MalformedPayload(_))
        ));
        let attestation = String::from_utf8(payload_for("reg/app", D1))
            .unwrap()
            .replace(COSIGN_TYPE, "https://in-toto.io/Statement/v0.1");
        assert!(matches!(
            verify_keyed(attestation.as_bytes(), &good, D1, &keys),
            Err(Rejection::WrongType(_))
        ));
        assert!(matches!(
            verify_keyed(&payload, "%%%", D1, &keys),
            Err(Rejection::MalformedSignature(_))
        ));
        assert!(
            TrustedKey::from_pem(
                "bad",
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"
            )
            .is_err()
        );
    }
}
