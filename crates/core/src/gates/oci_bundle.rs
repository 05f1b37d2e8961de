//! cosign 3's registry layout: Sigstore bundles attached to an image as
//! OCI 1.1 referrers (cosign's `specs/BUNDLE_SPEC.md`).
//!
//! A bundle is a blob; an OCI image manifest with `artifactType`
//! `application/vnd.dev.sigstore.bundle.v0.3+json`, the empty config, the
//! bundle as its one layer and the image as its `subject` points at it.
//! Registries with the referrers API list it under `GET
//! /v2/<repo>/referrers/<digest>`; on registries without one (the API
//! answers 404, as `docker-registry` 2.8 does) the writer keeps an image
//! index under the fallback tag `sha256-<hex>` and readers read that.
//!
//! An image signature in this layout is a DSSE envelope holding an in-toto
//! statement of predicate type `https://sigstore.dev/cosign/sign/v1` whose
//! subject is the image's digest; an attestation is the same with its own
//! predicate type. Verification is [`bundle`](super::bundle)'s; this module
//! finds, fetches (every read capped in count and size) and writes.
//!
//! The bundle JSON written by [`sign`] and [`attest`] is assembled here
//! (protobuf-specs JSON: `mediaType`, `verificationMaterial.publicKey`,
//! `dsseEnvelope`): `sigstore-verify` verifies bundles but has no keyed
//! signer, and the layout is a dozen lines. Those bundles carry no
//! transparency-log entry (we have no Rekor to log to), like `cosign sign
//! --tlog-upload=false`: a key with `require_tlog = true` refuses them.

use super::bundle::{self, BundleError, Signer, Subject, Verified};
use super::trust::TrustPolicy;
use crate::model::oci::{
    Descriptor, Manifest, OCI_EMPTY, OCI_EMPTY_BYTES, OCI_MANIFEST, descriptor, sha256,
};
use crate::ports::{Registry, RegistryError};
use chrono::{DateTime, SecondsFormat, Utc};
use sigstore_verify::trust_root::TrustedRoot;
use std::collections::BTreeMap;

/// The artifact type (and layer media type) of a v0.3 bundle.
pub const BUNDLE_V03: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// Every bundle media type starts so (v0.1/v0.2 spell a `;version=`).
pub const BUNDLE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The predicate type of a cosign 3 image signature.
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// The in-toto statement type cosign 3 writes.
pub const STATEMENT_V1: &str = "https://in-toto.io/Statement/v1";
pub const CONTENT_ANNOTATION: &str = "dev.sigstore.bundle.content";
pub const PREDICATE_ANNOTATION: &str = "dev.sigstore.bundle.predicateType";
pub const CREATED_ANNOTATION: &str = "org.opencontainers.image.created";
pub const TITLE_ANNOTATION: &str = "org.opencontainers.image.title";
/// Referrers looked at per digest, at most (signatures, attestations,
/// SBOMs…); the rest are not read.
pub const MAX_REFERRERS: usize = 64;
/// Bundles fetched per digest, at most.
pub const MAX_BUNDLES: usize = 16;

/// `repo:sha256-<hex>`: the referrers fallback tag of `digest`.
pub fn fallback_tag(repo: &str, digest: &str) -> String {
    format!("{repo}:{}", digest.replace(':', "-"))
}

/// Where the referrers were listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// The registry's referrers API.
    Api,
    /// The `sha256-<hex>` fallback tag.
    FallbackTag,
    /// Neither has anything.
    Nothing,
}

/// The referrers of `repo@digest`: the registry's API, else the fallback
/// tag's index.
pub fn referrers(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
) -> Result<(Vec<Descriptor>, Listing), RegistryError> {
    if let Some(index) = reg.referrers(repo, digest)?
        && !index.manifests.is_empty()
    {
        return Ok((index.manifests, Listing::Api));
    }
    match reg.index(&fallback_tag(repo, digest))? {
        Some(index) if !index.manifests.is_empty() => Ok((index.manifests, Listing::FallbackTag)),
        _ => Ok((Vec::new(), Listing::Nothing)),
    }
}

/// One bundle attached to an image.
#[derive(Debug, Clone)]
pub struct Attached {
    /// The referrer manifest's digest.
    pub manifest: String,
    pub json: String,
}

/// The bundles attached to `repo@digest`: each fetched bundle, or why a
/// referrer that says it is one does not count. `Err`: the registry could
/// not be read (fails closed).
pub fn bundles(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
) -> Result<Vec<Result<Attached, String>>, RegistryError> {
    let (listed, _) = referrers(reg, repo, digest)?;
    let mut out = Vec::new();
    for d in listed.iter().take(MAX_REFERRERS) {
        // The referrers API of some registries (and oci-client's index
        // type) drops artifactType: an entry without one is looked at.
        if d.artifact_type
            .as_deref()
            .is_some_and(|t| !t.starts_with(BUNDLE_PREFIX))
        {
            continue;
        }
        if out.len() == MAX_BUNDLES {
            out.push(Err(format!(
                "more than {MAX_BUNDLES} bundles: the rest were not read"
            )));
            break;
        }
        let at = format!("{repo}@{}", d.digest);
        // One odd referrer (an index, garbage) is that referrer's reason,
        // not the gate's: only an unreachable registry fails the lookup.
        let m = match reg.manifest(&at) {
            Ok(Some((m, _))) => m,
            Ok(None) => {
                out.push(Err(format!("referrer {at} is listed but missing")));
                continue;
            }
            Err(e) if e.is_infrastructure() => return Err(e),
            Err(e) => {
                out.push(Err(format!("referrer {at}: {e}")));
                continue;
            }
        };
        if !m
            .artifact_type
            .as_deref()
            .is_some_and(|t| t.starts_with(BUNDLE_PREFIX))
        {
            continue;
        }
        if m.subject.as_ref().map(|s| s.digest.as_str()) != Some(digest) {
            out.push(Err(format!(
                "referrer {at} is about {}, not {digest}",
                m.subject.as_ref().map_or("nothing", |s| s.digest.as_str())
            )));
            continue;
        }
        let Some(layer) = m
            .layers
            .first()
            .filter(|l| l.media_type.starts_with(BUNDLE_PREFIX))
        else {
            out.push(Err(format!("referrer {at} has no bundle layer")));
            continue;
        };
        if layer.size < 0 || layer.size as usize > bundle::MAX_BUNDLE_BYTES {
            out.push(Err(format!(
                "bundle {} is {} bytes, over the {}-byte cap",
                layer.digest,
                layer.size,
                bundle::MAX_BUNDLE_BYTES
            )));
            continue;
        }
        match reg.blob(repo, &layer.digest, bundle::MAX_BUNDLE_BYTES) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(json) => out.push(Ok(Attached {
                    manifest: d.digest.clone(),
                    json,
                })),
                Err(_) => out.push(Err(format!("bundle {} is not UTF-8", layer.digest))),
            },
            Err(e) if e.is_infrastructure() => return Err(e),
            Err(e) => out.push(Err(e.to_string())),
        }
    }
    Ok(out)
}

/// Every signer `trust` names, with the name findings show.
fn signers(trust: &TrustPolicy) -> Vec<(String, Signer)> {
    let keys = trust.keys.iter().map(|k| {
        (
            format!("key {}", k.name),
            Signer::Key {
                pem: k.public_key_pem(),
                require_tlog: k.require_tlog,
            },
        )
    });
    let identities = trust.keyless.iter().map(|k| {
        (
            format!("keyless {}", k.name),
            Signer::Identity {
                issuer: k.issuer.clone(),
                subject: k.subject.clone(),
            },
        )
    });
    keys.chain(identities).collect()
}

/// The trusted root `trust` names, else the public-good one.
fn root_of(trust: &TrustPolicy) -> Result<&TrustedRoot, BundleError> {
    match &trust.sigstore_root {
        Some(r) => Ok(r),
        None => bundle::production_root(),
    }
}

/// The outcome of looking for bundles of one predicate type.
#[derive(Debug)]
pub enum Found {
    /// A bundle verified for a trusted signer: who, and what it says.
    Verified {
        signer: String,
        verified: Box<Verified>,
    },
    /// Bundles were there; none verified. Every reason, per bundle.
    Rejected(Vec<String>),
    /// No bundle referrer at all.
    Nothing,
}

/// Looks for a bundle about `repo@digest` with an in-toto statement of
/// `predicate_type` that verifies for a signer `trust` names.
pub fn find_verified(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    predicate_type: &str,
    trust: &TrustPolicy,
) -> Result<Found, RegistryError> {
    find_verified_where(reg, repo, digest, predicate_type, trust, &|_| Ok(()))
}

/// [`find_verified`], where a verified statement must also satisfy
/// `accept` (its reason is kept when it does not).
pub fn find_verified_where(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    predicate_type: &str,
    trust: &TrustPolicy,
    accept: &dyn Fn(&Verified) -> Result<(), String>,
) -> Result<Found, RegistryError> {
    let attached = bundles(reg, repo, digest)?;
    if attached.is_empty() {
        return Ok(Found::Nothing);
    }
    let subject = match Subject::parse_digest(digest) {
        Some(s) => s,
        None => {
            return Ok(Found::Rejected(vec![format!(
                "{digest} is not a sha256 digest"
            )]));
        }
    };
    let root = match root_of(trust) {
        Ok(r) => r,
        Err(e) => return Ok(Found::Rejected(vec![e.to_string()])),
    };
    let signers = signers(trust);
    let mut reasons = Vec::new();
    // Newest last in a fallback tag's index: try from the end.
    for a in attached.into_iter().rev() {
        let a = match a {
            Ok(a) => a,
            Err(reason) => {
                reasons.push(reason);
                continue;
            }
        };
        let mut why = Vec::new();
        for (name, signer) in &signers {
            match bundle::verify(&a.json, &subject, signer, root) {
                Ok(v) if v.predicate_type.as_deref() == Some(predicate_type) => match accept(&v) {
                    Ok(()) => {
                        return Ok(Found::Verified {
                            signer: name.clone(),
                            verified: Box::new(v),
                        });
                    }
                    Err(why_not) => {
                        why = vec![format!("verified for {name}, but {why_not}")];
                        break;
                    }
                },
                Ok(v) => {
                    // Verified, but it is not what is looked for (an
                    // attestation of another type, or a message signature):
                    // say so once and stop trying other signers.
                    why = vec![format!(
                        "verified for {name}, but it is {}, not {predicate_type}",
                        v.predicate_type
                            .map(|t| format!("an in-toto statement of {t}"))
                            .unwrap_or_else(|| format!("a {}", v.content))
                    )];
                    break;
                }
                Err(e) => why.push(format!("{name}: {e}")),
            }
        }
        reasons.push(format!("bundle {}: {}", a.manifest, why.join("; ")));
    }
    Ok(Found::Rejected(reasons))
}

/// Every bundle about `repo@digest` that verifies, for the first signer
/// of `trust` it verifies for, as an in-toto statement of `predicate_type`.
pub fn verified_all(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    predicate_type: &str,
    trust: &TrustPolicy,
) -> Result<Vec<(String, Verified)>, RegistryError> {
    let Some(subject) = Subject::parse_digest(digest) else {
        return Ok(Vec::new());
    };
    let Ok(root) = root_of(trust) else {
        return Ok(Vec::new());
    };
    let signers = signers(trust);
    let mut out = Vec::new();
    for a in bundles(reg, repo, digest)?.into_iter().flatten() {
        let hit = signers.iter().find_map(|(name, signer)| {
            bundle::verify(&a.json, &subject, signer, root)
                .ok()
                .filter(|v| v.predicate_type.as_deref() == Some(predicate_type))
                .map(|v| (name.clone(), v))
        });
        out.extend(hit);
    }
    Ok(out)
}

/// The in-toto statement (v1) of `predicate` about `repo@digest`.
pub fn statement(
    repo: &str,
    digest: &str,
    predicate_type: &str,
    predicate: serde_json::Value,
) -> Vec<u8> {
    serde_json::json!({
        "_type": STATEMENT_V1,
        "subject": [{"name": repo, "digest": {"sha256": digest.trim_start_matches("sha256:")}}],
        "predicateType": predicate_type,
        "predicate": predicate,
    })
    .to_string()
    .into_bytes()
}

/// A v0.3 bundle of `statement` signed with `key` (DSSE, a public-key
/// hint, no log entry).
pub fn keyed_bundle(statement: &[u8], key: &p256::ecdsa::SigningKey) -> Vec<u8> {
    use base64::Engine;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey;
    let b64 = base64::engine::general_purpose::STANDARD;
    let sig: p256::ecdsa::Signature = key.sign(&super::cosign::statement_pae(statement));
    let hint = key
        .verifying_key()
        .to_public_key_der()
        .map(|der| {
            use sha2::Digest;
            b64.encode(sha2::Sha256::digest(der.as_bytes()))
        })
        .unwrap_or_default();
    serde_json::json!({
        "mediaType": BUNDLE_V03,
        "verificationMaterial": {"publicKey": {"hint": hint}, "tlogEntries": []},
        "dsseEnvelope": {
            "payload": b64.encode(statement),
            "payloadType": bundle::IN_TOTO,
            "signatures": [{"sig": b64.encode(sig.to_der().as_bytes()), "keyid": ""}],
        },
    })
    .to_string()
    .into_bytes()
}

/// Attaches `bundle_json` to `repo@digest` as a referrer (and to the
/// fallback tag's index when the registry has no referrers API). Returns
/// the referrer manifest's digest. Attaching the same bundle twice adds it
/// once.
pub fn attach(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    bundle_json: Vec<u8>,
    content: &str,
    predicate_type: Option<&str>,
    created: DateTime<Utc>,
) -> Result<String, RegistryError> {
    let Some(subject) = reg.manifest_descriptor(&format!("{repo}@{digest}"))? else {
        return Err(RegistryError::Invalid {
            reference: format!("{repo}@{digest}"),
            message: "no such image: push it before signing it".into(),
        });
    };
    attach_to(
        reg,
        repo,
        subject,
        bundle_json,
        content,
        predicate_type,
        created,
    )
}

/// [`attach`], to the manifest `subject` describes (its digest, media
/// type and size, as the registry serves it).
pub fn attach_to(
    reg: &dyn Registry,
    repo: &str,
    mut subject: Descriptor,
    bundle_json: Vec<u8>,
    content: &str,
    predicate_type: Option<&str>,
    created: DateTime<Utc>,
) -> Result<String, RegistryError> {
    subject.annotations = None;
    let digest = subject.digest.clone();
    let digest = digest.as_str();
    let title = BTreeMap::from([(
        TITLE_ANNOTATION.to_string(),
        format!("{}.sigstore.json", sha256(&bundle_json).replace(':', "-")),
    )]);
    let layer = descriptor(BUNDLE_V03, &bundle_json, Some(title));
    reg.push_blob(repo, bundle_json)?;
    reg.push_blob(repo, OCI_EMPTY_BYTES.to_vec())?;
    let mut annotations = BTreeMap::from([
        (CONTENT_ANNOTATION.to_string(), content.to_string()),
        (
            CREATED_ANNOTATION.to_string(),
            created.to_rfc3339_opts(SecondsFormat::Millis, true),
        ),
    ]);
    if let Some(t) = predicate_type {
        annotations.insert(PREDICATE_ANNOTATION.to_string(), t.to_string());
    }
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(OCI_MANIFEST.into()),
        config: descriptor(OCI_EMPTY, OCI_EMPTY_BYTES, None),
        layers: vec![layer],
        subject: Some(subject),
        artifact_type: Some(BUNDLE_V03.into()),
        annotations: Some(annotations.clone()),
    };
    let bytes = serde_json::to_vec(&manifest).map_err(|e| RegistryError::Invalid {
        reference: repo.to_string(),
        message: format!("referrer manifest does not serialize: {e}"),
    })?;
    let manifest_digest = reg.push_manifest(&format!("{repo}@{}", sha256(&bytes)), &manifest)?;
    if reg.referrers(repo, digest)?.is_none() {
        // No referrers API: keep the fallback tag's index, adding ours.
        // Registries have no compare-and-swap on tags: two writers at the
        // same instant can lose one entry; re-running `sign` restores it.
        let tag = fallback_tag(repo, digest);
        let mut index = reg.index(&tag)?.unwrap_or_default();
        if !index.manifests.iter().any(|m| m.digest == manifest_digest) {
            index.manifests.push(Descriptor {
                media_type: OCI_MANIFEST.into(),
                digest: manifest_digest.clone(),
                size: bytes.len() as i64,
                urls: None,
                annotations: Some(annotations),
                artifact_type: Some(BUNDLE_V03.into()),
            });
            reg.push_index(&tag, &index)?;
        }
    }
    Ok(manifest_digest)
}

/// Signs `repo@digest` as cosign 3 does (a DSSE in-toto statement of
/// [`SIGN_PREDICATE`]) and attaches the bundle. Returns the referrer's digest.
pub fn sign(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    key: &p256::ecdsa::SigningKey,
    now: DateTime<Utc>,
) -> Result<String, RegistryError> {
    attest(
        reg,
        repo,
        digest,
        SIGN_PREDICATE,
        serde_json::json!({}),
        key,
        now,
    )
}

/// Attests `predicate` of `predicate_type` about `repo@digest` as a bundle
/// referrer. Returns the referrer's digest.
pub fn attest(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    predicate_type: &str,
    predicate: serde_json::Value,
    key: &p256::ecdsa::SigningKey,
    now: DateTime<Utc>,
) -> Result<String, RegistryError> {
    let st = statement(repo, digest, predicate_type, predicate);
    let b = keyed_bundle(&st, key);
    attach(
        reg,
        repo,
        digest,
        b,
        "dsse-envelope",
        Some(predicate_type),
        now,
    )
}

/// A verified statement's predicate.
pub fn predicate_of(v: &Verified) -> Option<&serde_json::Value> {
    v.statement.as_ref()?.get("predicate")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixed "now": the module itself never reads the clock.
    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }
    use crate::fakes::MemRegistry;
    use crate::gates::signature::TrustedKey;
    use crate::model::oci::Index;

    fn key() -> (p256::ecdsa::SigningKey, TrustedKey) {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let sk = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let pem = sk
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        (sk, TrustedKey::from_pem("release-ci", &pem).expect("key"))
    }

    fn image(reg: &MemRegistry) -> String {
        reg.push_image("r.test/app:1", b"{}".to_vec(), vec![b"layer".to_vec()])
            .expect("push")
    }

    fn trust(keys: Vec<TrustedKey>) -> TrustPolicy {
        TrustPolicy {
            keys,
            ..TrustPolicy::default()
        }
    }

    #[test]
    fn a_signature_is_found_through_the_api_and_through_the_fallback_tag() {
        for reg in [MemRegistry::with_referrers_api(), MemRegistry::new()] {
            let digest = image(&reg);
            let (sk, tk) = key();
            assert!(matches!(
                find_verified(
                    &reg,
                    "r.test/app",
                    &digest,
                    SIGN_PREDICATE,
                    &trust(vec![tk.clone()])
                ),
                Ok(Found::Nothing)
            ));
            sign(&reg, "r.test/app", &digest, &sk, t0()).expect("sign");
            let (listed, how) = referrers(&reg, "r.test/app", &digest).expect("list");
            assert_eq!(listed.len(), 1);
            assert_eq!(listed[0].artifact_type.as_deref(), Some(BUNDLE_V03));
            let api = reg.referrers("r.test/app", &digest).expect("api").is_some();
            assert_eq!(
                how,
                if api {
                    Listing::Api
                } else {
                    Listing::FallbackTag
                }
            );
            // The fallback tag is written only without the API.
            assert_eq!(
                reg.index(&fallback_tag("r.test/app", &digest))
                    .expect("tag")
                    .is_some(),
                !api
            );
            match find_verified(
                &reg,
                "r.test/app",
                &digest,
                SIGN_PREDICATE,
                &trust(vec![tk.clone()]),
            ) {
                Ok(Found::Verified { signer, verified }) => {
                    assert_eq!(signer, "key release-ci");
                    assert_eq!(verified.predicate_type.as_deref(), Some(SIGN_PREDICATE));
                }
                other => panic!("not verified: {other:?}"),
            }
            // Signing again adds nothing new to the listing.
            sign(&reg, "r.test/app", &digest, &sk, t0()).expect("sign");
            let (listed, _) = referrers(&reg, "r.test/app", &digest).expect("list");
            assert_eq!(
                listed.len(),
                1,
                "the same bundle at the same time is one referrer"
            );
        }
    }

    #[test]
    fn rejections_say_why() {
        let reg = MemRegistry::new();
        let digest = image(&reg);
        let other = reg
            .push_image("r.test/app:2", b"{}".to_vec(), vec![b"other".to_vec()])
            .expect("push");
        let (sk, tk) = key();
        let (_, stranger) = key();
        sign(&reg, "r.test/app", &digest, &sk, t0()).expect("sign");
        // Another key.
        let Ok(Found::Rejected(r)) = find_verified(
            &reg,
            "r.test/app",
            &digest,
            SIGN_PREDICATE,
            &trust(vec![stranger]),
        ) else {
            panic!("a stranger's key verified");
        };
        assert!(r[0].contains("key release-ci"), "{r:?}");
        // An attestation is not a signature.
        attest(
            &reg,
            "r.test/app",
            &other,
            "https://example.com/p",
            serde_json::json!({}),
            &sk,
            t0(),
        )
        .expect("attest");
        let Ok(Found::Rejected(r)) = find_verified(
            &reg,
            "r.test/app",
            &other,
            SIGN_PREDICATE,
            &trust(vec![tk.clone()]),
        ) else {
            panic!("an attestation passed as a signature");
        };
        assert!(r[0].contains("https://example.com/p"), "{r:?}");
        // A key that requires a log entry refuses a bundle without one.
        let mut strict = tk.clone();
        strict.require_tlog = true;
        assert!(matches!(
            find_verified(
                &reg,
                "r.test/app",
                &digest,
                SIGN_PREDICATE,
                &trust(vec![strict])
            ),
            Ok(Found::Rejected(_))
        ));
        // A bundle for another digest, listed under this one's tag.
        let (listed, _) = referrers(&reg, "r.test/app", &digest).expect("list");
        reg.push_index(
            &fallback_tag("r.test/app", &other),
            &Index {
                manifests: listed,
                ..Index::new()
            },
        )
        .expect("push");
        let Ok(Found::Rejected(r)) =
            find_verified(&reg, "r.test/app", &other, SIGN_PREDICATE, &trust(vec![tk]))
        else {
            panic!("a copied referrer passed");
        };
        assert!(r.iter().any(|m| m.contains("is about")), "{r:?}");
    }

    #[test]
    fn an_odd_referrer_does_not_hide_a_good_signature() {
        let reg = MemRegistry::new();
        let digest = image(&reg);
        let (sk, tk) = key();
        sign(&reg, "r.test/app", &digest, &sk, t0()).expect("sign");
        // An index (not a manifest) listed under the same tag, no artifactType.
        let odd = reg
            .push_index("r.test/app:odd", &Index::new())
            .expect("push");
        let tag = fallback_tag("r.test/app", &digest);
        let mut index = reg.index(&tag).expect("read").expect("tag");
        index.manifests.insert(
            0,
            crate::model::oci::Descriptor {
                media_type: crate::model::oci::OCI_INDEX.into(),
                digest: odd,
                size: 2,
                urls: None,
                annotations: None,
                artifact_type: None,
            },
        );
        reg.push_index(&tag, &index).expect("push");
        assert!(matches!(
            find_verified(
                &reg,
                "r.test/app",
                &digest,
                SIGN_PREDICATE,
                &trust(vec![tk])
            ),
            Ok(Found::Verified { .. })
        ));
    }

    #[test]
    fn an_unreachable_registry_is_an_error_not_a_rejection() {
        let reg = MemRegistry::new();
        let digest = image(&reg);
        reg.set_down(Some("connection refused"));
        let (_, tk) = key();
        assert!(
            find_verified(
                &reg,
                "r.test/app",
                &digest,
                SIGN_PREDICATE,
                &trust(vec![tk])
            )
            .is_err()
        );
    }
}
