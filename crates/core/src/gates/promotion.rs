//! The promotion itself as an attestation: when a release is promoted out
//! of an env, each promoted image digest gets a signed in-toto statement
//! whose predicate is a SLSA verification summary (VSA v1) saying the
//! digest passed that env — its gates and its canary analysis — so a
//! cluster's admission controller can require "passed staging" with stock
//! policy tools, and the next env's signature gate can too
//! (`gates.require_promotion_from`).
//!
//! The VSA fields carry the answer stock tools check: `verificationResult`
//! `PASSED`, `policy.uri` `platform-capstone:env/<env>`, `resourceUri` the
//! image by digest. Ours are under `platformCapstone`: the env promoted
//! from and into, the release id, the source commit, each gate's outcome
//! and the number of analysis intervals measured. The statement is a
//! cosign 3 bundle referrer ([`oci_bundle`](super::oci_bundle)).

use super::bundle::Verified;
use super::oci_bundle::{self, Found};
use super::trust::TrustPolicy;
use crate::ports::{Registry, RegistryError};
use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::BTreeMap;

/// SLSA verification summary v1.
pub const PREDICATE: &str = "https://slsa.dev/verification_summary/v1";

/// `policy.uri` of a promotion out of `env`.
pub fn policy_uri(env: &str) -> String {
    format!("platform-capstone:env/{env}")
}

/// What a promotion says about one digest.
#[derive(Debug, Clone)]
pub struct Promotion<'a> {
    /// Who verified: the daemon's identity (its signing principal).
    pub verifier: &'a str,
    pub from_env: &'a str,
    pub to_env: &'a str,
    pub release: &'a str,
    pub source_commit: &'a str,
    /// Gate → `pass` / `warn` / `fail`.
    pub gates: BTreeMap<String, String>,
    /// Analysis intervals measured (canary steps and bake).
    pub samples: usize,
    pub time: DateTime<Utc>,
}

/// The VSA predicate of `p` for `repo@digest`.
pub fn predicate(p: &Promotion<'_>, repo: &str, digest: &str) -> serde_json::Value {
    serde_json::json!({
        "verifier": {"id": format!("platform-capstone:{}", p.verifier)},
        "timeVerified": p.time.to_rfc3339_opts(SecondsFormat::Secs, true),
        "resourceUri": format!("{repo}@{digest}"),
        "policy": {"uri": policy_uri(p.from_env)},
        "inputAttestations": [],
        "verificationResult": "PASSED",
        "verifiedLevels": [],
        "platformCapstone": {
            "env": p.from_env,
            "promotedTo": p.to_env,
            "releaseId": p.release,
            "sourceCommit": p.source_commit,
            "gates": p.gates,
            "analysisIntervals": p.samples,
        },
    })
}

/// Attests `p` on each of `images` (`repo@sha256:…`), signed with `key`.
/// Returns the referrer digests. An image not pinned by digest is an
/// error: a promotion only ever moves digests.
pub fn attest_all(
    reg: &dyn Registry,
    images: &[String],
    p: &Promotion<'_>,
    key: &p256::ecdsa::SigningKey,
) -> Result<Vec<String>, RegistryError> {
    let mut out = Vec::new();
    for image in images {
        let Some((repo, digest)) = image.split_once('@') else {
            return Err(RegistryError::Reference {
                reference: image.clone(),
                message: "not pinned by digest; a promotion attests digests only".into(),
            });
        };
        out.push(oci_bundle::attest(
            reg,
            repo,
            digest,
            PREDICATE,
            predicate(p, repo, digest),
            key,
            p.time,
        )?);
    }
    Ok(out)
}

/// What a verified promotion attestation says.
#[derive(Debug, Clone)]
pub struct Attested {
    pub signer: String,
    pub predicate: serde_json::Value,
}

/// A verified promotion of `repo@digest` out of `from_env`, signed by a
/// key `trust` names: `Ok(Ok)` with it, `Ok(Err(reason))` when there is
/// none (every reason), `Err` when the registry could not be read.
pub fn find(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    from_env: &str,
    trust: &TrustPolicy,
) -> Result<Result<Attested, String>, RegistryError> {
    let want = policy_uri(from_env);
    let accept = |v: &Verified| -> Result<(), String> {
        let p = oci_bundle::predicate_of(v).ok_or("the statement has no predicate")?;
        if p.pointer("/policy/uri").and_then(|u| u.as_str()) != Some(want.as_str()) {
            return Err(format!(
                "a promotion out of {}, not {from_env}",
                p.pointer("/platformCapstone/env")
                    .and_then(|e| e.as_str())
                    .unwrap_or("another env")
            ));
        }
        if p.get("verificationResult").and_then(|r| r.as_str()) != Some("PASSED") {
            return Err("its verificationResult is not PASSED".into());
        }
        Ok(())
    };
    Ok(
        match oci_bundle::find_verified_where(reg, repo, digest, PREDICATE, trust, &accept)? {
            Found::Verified { signer, verified } => Ok(Attested {
                signer,
                predicate: oci_bundle::predicate_of(&verified)
                    .cloned()
                    .unwrap_or_default(),
            }),
            Found::Rejected(reasons) => Err(reasons.join("; ")),
            Found::Nothing => Err(format!(
                "no promotion attestation: the digest was not promoted out of {from_env} by a daemon with an attestation key"
            )),
        },
    )
}

/// One verified promotion of a digest, for display.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub from_env: String,
    pub to_env: String,
    pub release: String,
    pub source_commit: String,
    pub signer: String,
    pub time_verified: String,
}

/// Every verified promotion of `repo@digest`, by a signer `trust` names.
pub fn list(
    reg: &dyn Registry,
    repo: &str,
    digest: &str,
    trust: &TrustPolicy,
) -> Result<Vec<Listed>, RegistryError> {
    let mut out = Vec::new();
    for (signer, v) in oci_bundle::verified_all(reg, repo, digest, PREDICATE, trust)? {
        let Some(p) = oci_bundle::predicate_of(&v) else {
            continue;
        };
        if p.get("verificationResult").and_then(|r| r.as_str()) != Some("PASSED") {
            continue;
        }
        let field = |ptr: &str| {
            p.pointer(ptr)
                .and_then(|x| x.as_str())
                .unwrap_or_default()
                .to_string()
        };
        out.push(Listed {
            from_env: field("/platformCapstone/env"),
            to_env: field("/platformCapstone/promotedTo"),
            release: field("/platformCapstone/releaseId"),
            source_commit: field("/platformCapstone/sourceCommit"),
            signer,
            time_verified: field("/timeVerified"),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::MemRegistry;
    use crate::gates::signature::TrustedKey;

    #[test]
    fn a_promotion_is_found_for_its_env_only_and_only_from_a_trusted_key() {
        use p256::pkcs8::{EncodePublicKey, LineEnding};
        let reg = MemRegistry::new();
        let digest = reg
            .push_image("r.test/app:1", b"{}".to_vec(), vec![b"l".to_vec()])
            .expect("push");
        let key = p256::ecdsa::SigningKey::random(&mut p256::elliptic_curve::rand_core::OsRng);
        let pem = key
            .verifying_key()
            .to_public_key_pem(LineEnding::LF)
            .expect("pem");
        let trust = TrustPolicy {
            keys: vec![TrustedKey::from_pem("promotions", &pem).expect("key")],
            ..TrustPolicy::default()
        };
        let p = Promotion {
            verifier: "daemon@example.com",
            from_env: "dev",
            to_env: "staging",
            release: "r-1",
            source_commit: "abc",
            gates: BTreeMap::from([("artifact_signature".into(), "pass".into())]),
            samples: 7,
            time: DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default(),
        };
        let image = format!("r.test/app@{digest}");
        assert!(
            find(&reg, "r.test/app", &digest, "dev", &trust)
                .expect("read")
                .is_err()
        );
        attest_all(&reg, std::slice::from_ref(&image), &p, &key).expect("attest");
        let found = find(&reg, "r.test/app", &digest, "dev", &trust)
            .expect("read")
            .expect("found");
        assert_eq!(found.signer, "key promotions");
        assert_eq!(found.predicate["platformCapstone"]["releaseId"], "r-1");
        assert_eq!(found.predicate["resourceUri"], image.as_str());
        let listed = list(&reg, "r.test/app", &digest, &trust).expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!(
            (listed[0].from_env.as_str(), listed[0].to_env.as_str()),
            ("dev", "staging")
        );
        assert!(
            list(&reg, "r.test/app", &digest, &TrustPolicy::default())
                .expect("list")
                .is_empty()
        );
        // Out of dev is not out of staging.
        let err = find(&reg, "r.test/app", &digest, "staging", &trust)
            .expect("read")
            .expect_err("not staging");
        assert!(err.contains("out of dev, not staging"), "{err}");
        // A key the policy does not name.
        let err = find(&reg, "r.test/app", &digest, "dev", &TrustPolicy::default())
            .expect("read")
            .expect_err("untrusted");
        assert!(err.contains("bundle"), "{err}");
        // A tag is not a digest.
        assert!(attest_all(&reg, &["r.test/app:1".into()], &p, &key).is_err());
    }
}
