//! Keyed cosign signatures against the real docker-registry (CNCF
//! Distribution, Debian package), started on a loopback port per test:
//! signed, unsigned, wrong key, a signature copied from another digest, a
//! tampered payload, and the registry stopped mid-check.

use oci_client::manifest::{OciDescriptor, OciImageManifest};
use platform_capstone::adapters::registry::{OciRegistry, sha256};
use platform_capstone::gates::cosign;
use platform_capstone::gates::signature::TrustedKey;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct LocalRegistry {
    child: Child,
    host: String,
    _dir: tempfile::TempDir,
}

impl LocalRegistry {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("bind")
            .local_addr()
            .expect("addr")
            .port();
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
                dir.path().join("data").display()
            ),
        )
        .expect("write config");
        let child = Command::new("docker-registry")
            .args(["serve", config.to_str().expect("utf8")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "docker-registry not found: apt-get install docker-registry (scripts/test does)",
            );
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {port} within 15 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            child,
            host: format!("127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn descriptor(media_type: &str, bytes: &[u8]) -> OciDescriptor {
    OciDescriptor {
        media_type: media_type.into(),
        digest: sha256(bytes),
        size: bytes.len() as i64,
        urls: None,
        annotations: None,
        artifact_type: None,
    }
}

/// Pushes a small image (one layer) and returns its manifest digest.
fn push_image(reg: &OciRegistry, repo: &str, content: &str) -> String {
    let config = b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec();
    let layer = content.as_bytes().to_vec();
    reg.push_blob(repo, config.clone()).expect("push config");
    reg.push_blob(repo, layer.clone()).expect("push layer");
    let m = OciImageManifest {
        schema_version: 2,
        media_type: Some("application/vnd.oci.image.manifest.v1+json".into()),
        config: descriptor("application/vnd.oci.image.config.v1+json", &config),
        layers: vec![descriptor("application/vnd.oci.image.layer.v1.tar", &layer)],
        subject: None,
        artifact_type: None,
        annotations: None,
    };
    reg.push_manifest(&format!("{repo}:{content}"), &m)
        .expect("push manifest")
}

fn keys() -> (p256::ecdsa::SigningKey, TrustedKey) {
    let (private, public) = cosign::generate_key_pair().expect("keygen");
    (
        cosign::load_signing_key(&private).expect("load"),
        TrustedKey::from_pem("release-ci", &public).expect("pem"),
    )
}

#[test]
fn keyed_signatures_pass_and_every_bad_signature_fails_with_its_reason() {
    let mut registry = LocalRegistry::start();
    let reg = OciRegistry::new(std::slice::from_ref(&registry.host)).expect("client");
    let repo = format!("{}/platform-capstone/demo", registry.host);
    let (ci_key, trusted) = keys();
    let (stranger_key, _) = keys();
    let trust = vec![trusted];

    // Unsigned.
    let unsigned = push_image(&reg, &repo, "unsigned");
    let f = cosign::check(&reg, &repo, &unsigned, &trust)
        .expect("check")
        .expect("must fail");
    assert_eq!(f.rule, "no-signature");

    // Signed by the trusted key: passes; signing twice keeps one layer.
    let good = push_image(&reg, &repo, "good");
    cosign::sign(&reg, &repo, &good, &ci_key).expect("sign");
    cosign::sign(&reg, &repo, &good, &ci_key).expect("sign again");
    assert_eq!(
        cosign::check(&reg, &repo, &good, &trust).expect("check"),
        None
    );
    let (sig, _) = reg
        .manifest(&cosign::signature_tag(&repo, &good))
        .expect("get")
        .expect("exists");
    assert_eq!(
        sig.layers.len(),
        1,
        "RFC 6979 signatures are deterministic: re-signing adds no layer"
    );

    // Signed by a key nobody trusts.
    let foreign = push_image(&reg, &repo, "foreign");
    cosign::sign(&reg, &repo, &foreign, &stranger_key).expect("sign");
    let f = cosign::check(&reg, &repo, &foreign, &trust)
        .expect("check")
        .expect("must fail");
    assert_eq!(f.rule, "no-valid-signature");
    assert!(
        f.message.contains("no trusted key verifies"),
        "{}",
        f.message
    );

    // The good image's signature copied onto another digest's .sig tag.
    let copied = push_image(&reg, &repo, "copied");
    let (sig_manifest, _) = reg
        .manifest(&cosign::signature_tag(&repo, &good))
        .expect("get")
        .expect("exists");
    reg.push_manifest(&cosign::signature_tag(&repo, &copied), &sig_manifest)
        .expect("copy");
    let f = cosign::check(&reg, &repo, &copied, &trust)
        .expect("check")
        .expect("must fail");
    assert_eq!(f.rule, "signature-for-other-digest");
    assert!(
        f.message.contains(&good) && f.message.contains(&copied),
        "{}",
        f.message
    );

    // A payload altered after signing: same annotation, different blob.
    let tampered = push_image(&reg, &repo, "tampered");
    cosign::sign(&reg, &repo, &tampered, &ci_key).expect("sign");
    let tag = cosign::signature_tag(&repo, &tampered);
    let (mut m, _) = reg.manifest(&tag).expect("get").expect("exists");
    let original = reg
        .blob(&repo, &m.layers[0].digest, 65536)
        .expect("payload");
    let altered = String::from_utf8(original)
        .expect("utf8")
        .replace("\"optional\":null", "\"optional\":{\"by\":\"mallory\"}");
    let altered_digest = reg
        .push_blob(&repo, altered.clone().into_bytes())
        .expect("push");
    m.layers[0].digest = altered_digest;
    m.layers[0].size = altered.len() as i64;
    reg.push_manifest(&tag, &m).expect("push");
    let f = cosign::check(&reg, &repo, &tampered, &trust)
        .expect("check")
        .expect("must fail");
    assert_eq!(f.rule, "no-valid-signature", "{}", f.message);

    // The registry goes away mid-check: an infrastructure error, never a pass.
    registry.stop();
    let err = cosign::check(&reg, &repo, &good, &trust).expect_err("registry is down");
    assert!(err.is_infrastructure(), "{err}");
}

fn vuln_predicate(severity: &str, fixed: &str) -> serde_json::Value {
    serde_json::json!({
        "scanner": {"uri": "pkg:github/aquasecurity/trivy", "version": "0.57.0",
            "result": {"Results": [{"Target": "demo", "Vulnerabilities": [
                {"VulnerabilityID": "CVE-2026-4242", "PkgName": "libfoo", "InstalledVersion": "1.0",
                 "FixedVersion": fixed, "Severity": severity}]}]}},
        "metadata": {"scanStartedOn": "2026-11-24T10:00:00Z", "scanFinishedOn": "2026-11-24T10:01:00Z"}
    })
}

#[test]
fn vulnerability_attestations_are_verified_then_judged() {
    use platform_capstone::gates::vulnerability::{self, VulnPolicy};
    let registry = LocalRegistry::start();
    let reg = OciRegistry::new(std::slice::from_ref(&registry.host)).expect("client");
    let repo = format!("{}/platform-capstone/demo", registry.host);
    let (ci_key, trusted) = keys();
    let (stranger_key, _) = keys();
    let trust = vec![trusted];
    let policy = VulnPolicy::parse(include_str!("../policies/vulnerability.toml")).expect("policy");
    let now = chrono::DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
        .expect("time")
        .with_timezone(&chrono::Utc);
    let judge = |digest: &str| {
        let predicate =
            cosign::verified_predicate(&reg, &repo, digest, cosign::VULN_PREDICATE, &trust)
                .expect("registry")
                .expect("a verified report");
        let report = vulnerability::parse_report(&predicate).expect("report");
        vulnerability::verdict(vulnerability::evaluate(&policy, &repo, &report, now))
    };

    // A clean report (only an unfixable critical, fixable_only = true) passes.
    let clean = push_image(&reg, &repo, "clean");
    cosign::attest(
        &reg,
        &repo,
        &clean,
        cosign::VULN_PREDICATE,
        vuln_predicate("CRITICAL", ""),
        &ci_key,
    )
    .expect("attest");
    assert_eq!(
        judge(&clean).outcome,
        platform_capstone::model::Outcome::Pass
    );

    // A fixable critical fails the policy.
    let vulnerable = push_image(&reg, &repo, "vulnerable");
    cosign::attest(
        &reg,
        &repo,
        &vulnerable,
        cosign::VULN_PREDICATE,
        vuln_predicate("CRITICAL", "1.0.1"),
        &ci_key,
    )
    .expect("attest");
    let v = judge(&vulnerable);
    assert_eq!(v.outcome, platform_capstone::model::Outcome::Fail);
    assert!(
        v.findings[0].message.contains("CVE-2026-4242"),
        "{:?}",
        v.findings
    );

    // No report, a report signed by a stranger, an attestation of the wrong type.
    let none = push_image(&reg, &repo, "none");
    let reason = |digest: &str| {
        cosign::verified_predicate(&reg, &repo, digest, cosign::VULN_PREDICATE, &trust)
            .expect("registry")
            .expect_err("no verified report")
    };
    assert!(reason(&none).contains("no attestation found"));
    let foreign = push_image(&reg, &repo, "foreign-report");
    cosign::attest(
        &reg,
        &repo,
        &foreign,
        cosign::VULN_PREDICATE,
        vuln_predicate("LOW", ""),
        &stranger_key,
    )
    .expect("attest");
    assert!(
        reason(&foreign).contains("no trusted key verifies"),
        "{}",
        reason(&foreign)
    );
    let provenance = push_image(&reg, &repo, "provenance-only");
    cosign::attest(
        &reg,
        &repo,
        &provenance,
        "https://slsa.dev/provenance/v0.2",
        serde_json::json!({}),
        &ci_key,
    )
    .expect("attest");
    assert!(
        reason(&provenance).contains("is not https://cosign.sigstore.dev/attestation/vuln/v1"),
        "{}",
        reason(&provenance)
    );
}
