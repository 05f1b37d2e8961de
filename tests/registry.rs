//! Keyed cosign signatures against the real docker-registry (CNCF
//! Distribution, Debian package), started on a loopback port per test:
//! signed, unsigned, wrong key, a signature copied from another digest, a
//! tampered payload, and the registry stopped mid-check — in the legacy
//! `.sig`/`.att` layout and as cosign 3 bundles under the referrers
//! fallback tag (docker-registry 2.8 has no referrers API).

use platform_capstone::adapters::local_registry::LocalRegistry;
use platform_capstone::adapters::registry::OciRegistry;
use platform_capstone::gates::cosign;
use platform_capstone::gates::signature::TrustedKey;
use platform_capstone::gates::trust::TrustPolicy;
use platform_capstone::ports::Registry as _;
use std::path::Path;
use std::process::Command;

/// A registry for one test, storing in its own temp dir.
struct TestRegistry {
    inner: LocalRegistry,
    host: String,
    _dir: tempfile::TempDir,
}

impl TestRegistry {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let inner = LocalRegistry::start(dir.path()).expect("start docker-registry");
        let host = inner.host.clone();
        Self {
            inner,
            host,
            _dir: dir,
        }
    }

    fn stop(&mut self) {
        self.inner.stop();
    }
}

/// Pushes a small image (one layer) and returns its manifest digest.
pub(crate) fn push_image(reg: &OciRegistry, repo: &str, content: &str) -> String {
    reg.push_image(
        &format!("{repo}:{content}"),
        b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec(),
        vec![content.as_bytes().to_vec()],
    )
    .expect("push image")
}

pub(crate) fn keys() -> (p256::ecdsa::SigningKey, TrustedKey) {
    let (private, public) = cosign::generate_key_pair().expect("keygen");
    (
        cosign::load_signing_key(&private).expect("load"),
        TrustedKey::from_pem("release-ci", &public).expect("pem"),
    )
}

#[test]
fn keyed_signatures_pass_and_every_bad_signature_fails_with_its_reason() {
    let mut registry = TestRegistry::start();
    let reg = OciRegistry::new(std::slice::from_ref(&registry.host)).expect("client");
    let repo = format!("{}/platform-capstone/demo", registry.host);
    let (ci_key, trusted) = keys();
    let (stranger_key, _) = keys();
    let trust = TrustPolicy {
        keys: vec![trusted],
        ..TrustPolicy::default()
    };

    // Unsigned.
    let unsigned = push_image(&reg, &repo, "unsigned");
    let f = cosign::check(&reg, &repo, &unsigned, &trust, chrono::Utc::now())
        .expect("check")
        .expect("must fail");
    assert_eq!(f.rule, "no-signature");

    // Signed by the trusted key: passes; signing twice keeps one layer.
    let good = push_image(&reg, &repo, "good");
    cosign::sign(&reg, &repo, &good, &ci_key).expect("sign");
    cosign::sign(&reg, &repo, &good, &ci_key).expect("sign again");
    assert_eq!(
        cosign::check(&reg, &repo, &good, &trust, chrono::Utc::now()).expect("check"),
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
    let f = cosign::check(&reg, &repo, &foreign, &trust, chrono::Utc::now())
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
    let f = cosign::check(&reg, &repo, &copied, &trust, chrono::Utc::now())
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
    let f = cosign::check(&reg, &repo, &tampered, &trust, chrono::Utc::now())
        .expect("check")
        .expect("must fail");
    assert_eq!(f.rule, "no-valid-signature", "{}", f.message);

    // The registry goes away mid-check: an infrastructure error, never a pass.
    registry.stop();
    let err = cosign::check(&reg, &repo, &good, &trust, chrono::Utc::now())
        .expect_err("registry is down");
    assert!(err.is_infrastructure(), "{err}");
}

#[test]
fn cosign_3_bundles_are_written_and_read_through_the_referrers_fallback_tag() {
    use platform_capstone::gates::oci_bundle::{self, Listing};
    let mut registry = TestRegistry::start();
    let reg = OciRegistry::new(std::slice::from_ref(&registry.host)).expect("client");
    let repo = format!("{}/platform-capstone/demo", registry.host);
    let (ci_key, trusted) = keys();
    let (stranger_key, _) = keys();
    let trust = TrustPolicy {
        keys: vec![trusted],
        ..TrustPolicy::default()
    };
    let now = chrono::Utc::now();

    // docker-registry 2.8 has no referrers API: the writer keeps the tag.
    let good = push_image(&reg, &repo, "bundle-good");
    assert_eq!(
        reg.referrers(&repo, &good).expect("referrers"),
        None,
        "docker-registry answered the referrers API"
    );
    let referrer = oci_bundle::sign(&reg, &repo, &good, &ci_key, now).expect("sign");
    let (listed, how) = oci_bundle::referrers(&reg, &repo, &good).expect("list");
    assert_eq!(how, Listing::FallbackTag);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, referrer);
    assert_eq!(
        listed[0].artifact_type.as_deref(),
        Some(oci_bundle::BUNDLE_V03)
    );
    let (m, _) = reg
        .manifest(&format!("{repo}@{referrer}"))
        .expect("get")
        .expect("referrer manifest");
    assert_eq!(
        m.subject.as_ref().map(|s| s.digest.as_str()),
        Some(good.as_str())
    );
    assert_eq!(m.config.media_type, "application/vnd.oci.empty.v1+json");
    // No .sig manifest at all: the bundle alone passes the gate.
    assert!(
        reg.manifest(&cosign::signature_tag(&repo, &good))
            .expect("get")
            .is_none()
    );
    assert_eq!(
        cosign::check(&reg, &repo, &good, &trust, now).expect("check"),
        None
    );

    // A second bundle (an attestation) is added to the same tag's index.
    oci_bundle::attest(
        &reg,
        &repo,
        &good,
        cosign::VULN_PREDICATE,
        vuln_predicate("LOW", "1.0.1"),
        &ci_key,
        now,
    )
    .expect("attest");
    let (listed, _) = oci_bundle::referrers(&reg, &repo, &good).expect("list");
    assert_eq!(listed.len(), 2);
    let predicate =
        cosign::verified_predicate(&reg, &repo, &good, cosign::VULN_PREDICATE, &trust, now)
            .expect("registry")
            .expect("the bundle's predicate");
    assert_eq!(predicate["scanner"]["version"], "0.57.0");

    // Signed with a key nobody trusts: rejected with the reason.
    let foreign = push_image(&reg, &repo, "bundle-foreign");
    oci_bundle::sign(&reg, &repo, &foreign, &stranger_key, now).expect("sign");
    let f = cosign::check(&reg, &repo, &foreign, &trust, now)
        .expect("check")
        .expect("must fail");
    assert_eq!(f.rule, "no-valid-signature");
    assert!(
        f.message.contains("bundles:") && f.message.contains("does not verify with this key"),
        "{}",
        f.message
    );
    // An attestation alone is not a signature.
    let attested_only = push_image(&reg, &repo, "bundle-attested");
    oci_bundle::attest(
        &reg,
        &repo,
        &attested_only,
        cosign::VULN_PREDICATE,
        vuln_predicate("LOW", "1.0.1"),
        &ci_key,
        now,
    )
    .expect("attest");
    let f = cosign::check(&reg, &repo, &attested_only, &trust, now)
        .expect("check")
        .expect("must fail");
    assert!(f.message.contains(cosign::VULN_PREDICATE), "{}", f.message);
    // Unsigned: the message names both layouts.
    let unsigned = push_image(&reg, &repo, "bundle-unsigned");
    let f = cosign::check(&reg, &repo, &unsigned, &trust, now)
        .expect("check")
        .expect("must fail");
    assert_eq!(f.rule, "no-signature");
    assert!(f.message.contains("no Sigstore bundle"), "{}", f.message);

    registry.stop();
    let err = cosign::check(&reg, &repo, &unsigned, &trust, now).expect_err("registry is down");
    assert!(err.is_infrastructure(), "{err}");
}

/// A trivy-shaped report scanned an hour ago: `max_scan_age` is judged
/// against the wall clock by the CLI, so a fixed date would expire.
fn vuln_predicate(severity: &str, fixed: &str) -> serde_json::Value {
    let finished = chrono::Utc::now() - chrono::Duration::hours(1);
    let started = finished - chrono::Duration::minutes(1);
    serde_json::json!({
        "scanner": {"uri": "pkg:github/aquasecurity/trivy", "version": "0.57.0",
            "result": {"Results": [{"Target": "demo", "Vulnerabilities": [
                {"VulnerabilityID": "CVE-2026-4242", "PkgName": "libfoo", "InstalledVersion": "1.0",
                 "FixedVersion": fixed, "Severity": severity}]}]}},
        "metadata": {"scanStartedOn": started.to_rfc3339(), "scanFinishedOn": finished.to_rfc3339()}
    })
}

#[test]
fn vulnerability_attestations_are_verified_then_judged() {
    use platform_capstone::gates::vulnerability::{self, VulnPolicy};
    let registry = TestRegistry::start();
    let reg = OciRegistry::new(std::slice::from_ref(&registry.host)).expect("client");
    let repo = format!("{}/platform-capstone/demo", registry.host);
    let (ci_key, trusted) = keys();
    let (stranger_key, _) = keys();
    let trust = TrustPolicy {
        keys: vec![trusted],
        ..TrustPolicy::default()
    };
    let policy = VulnPolicy::parse(include_str!("../policies/vulnerability.toml")).expect("policy");
    let now = chrono::Utc::now();
    let judge = |digest: &str| {
        let predicate = cosign::verified_predicate(
            &reg,
            &repo,
            digest,
            cosign::VULN_PREDICATE,
            &trust,
            chrono::Utc::now(),
        )
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
        cosign::verified_predicate(
            &reg,
            &repo,
            digest,
            cosign::VULN_PREDICATE,
            &trust,
            chrono::Utc::now(),
        )
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

fn bin(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run platform-capstone")
}

/// Pins `repo@digest` for dev and trusts `pubkey`, committed on env/dev.
fn pin_dev(work: &std::path::Path, repo: &str, digest: &str, pubkey: &std::path::Path) {
    use crate::support::git;
    git(work, &["checkout", "-q", "env/dev"]);
    let k = work.join("overlays/dev/kustomization.yaml");
    let text = std::fs::read_to_string(&k).expect("read");
    let start = text.find("\nimages:\n").expect("images") + 1;
    let end = start + text[start..].find("replicas:").expect("replicas");
    let mut new = text.clone();
    new.replace_range(
        start..end,
        &format!("images:\n  - name: localhost:5000/platform-capstone/demo\n    newName: {repo}\n    digest: {digest}\n"),
    );
    std::fs::write(&k, new).expect("write");
    std::fs::create_dir_all(work.join("policies/keys")).expect("mkdir");
    std::fs::copy(pubkey, work.join("policies/keys/release-ci.pub")).expect("copy key");
    std::fs::write(
        work.join("policies/trust.toml"),
        "[[keys]]\nname = \"release-ci\"\npath = \"keys/release-ci.pub\"\n",
    )
    .expect("trust");
    git(work, &["add", "-A"]);
    git(work, &["commit", "-qm", "pin"]);
}

#[test]
fn check_prints_the_checks_block_and_fails_an_unsigned_release() {
    let registry = TestRegistry::start();
    let reg = OciRegistry::new(std::slice::from_ref(&registry.host)).expect("client");
    let repo = format!("{}/platform-capstone/demo", registry.host);
    let f = crate::support::Fixture::new();
    let d = f.dir.path();
    assert!(
        bin(d, &["keygen", "--cosign", "--out", "cosign.key"])
            .status
            .success()
    );

    let good = push_image(&reg, &repo, "release-1");
    let image = format!("{repo}@{good}");
    let s = bin(d, &["sign", &image, "--key", "cosign.key", "--plain-http"]);
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    std::fs::write(
        d.join("scan.json"),
        vuln_predicate("LOW", "1.0.1").to_string(),
    )
    .expect("write");
    let a = bin(
        d,
        &[
            "attest",
            &image,
            "--predicate",
            "scan.json",
            "--type",
            "vuln",
            "--key",
            "cosign.key",
            "--plain-http",
        ],
    );
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));

    let work = f.path("work");
    let check = || {
        let repo_dir = work.to_str().expect("utf8");
        bin(
            d,
            &[
                "check",
                "--repo",
                repo_dir,
                "--env",
                "dev",
                "--plain-http",
                &registry.host,
            ],
        )
    };
    pin_dev(&work, &repo, &good, &d.join("cosign.key.pub"));
    let c = check();
    assert_eq!(
        String::from_utf8_lossy(&c.stdout),
        "checks:\n  artifact_signature: pass\n  vulnerability_policy: pass\n  admission_policy: pass\n",
        "{}",
        String::from_utf8_lossy(&c.stderr)
    );
    assert!(c.status.success());

    // A promotion attestation on the digest is shown, with who signed it.
    let key =
        cosign::load_signing_key(&std::fs::read_to_string(d.join("cosign.key")).expect("key"))
            .expect("load");
    let promotion = platform_capstone::gates::promotion::Promotion {
        verifier: "daemon@example.com",
        from_env: "dev",
        to_env: "staging",
        release: "rel-2026-12-02-01",
        source_commit: "0123456789abcdef0123",
        gates: Default::default(),
        samples: 3,
        time: chrono::Utc::now(),
    };
    platform_capstone::gates::promotion::attest_all(
        &reg,
        std::slice::from_ref(&image),
        &promotion,
        &key,
    )
    .expect("attest the promotion");
    let c = check();
    let out = String::from_utf8_lossy(&c.stdout);
    assert!(
        out.contains(&format!(
            "promotions:\n  {image}:\n    out of dev into staging (release rel-2026-12-02-01, commit 0123456789ab), "
        )) && out.contains("signed by key release-ci"),
        "{out}"
    );

    // An unsigned, unscanned digest: both artifact gates fail, with reasons.
    let unsigned = push_image(&reg, &repo, "release-2");
    pin_dev(&work, &repo, &unsigned, &d.join("cosign.key.pub"));
    let c = check();
    let out = String::from_utf8_lossy(&c.stdout);
    assert_eq!(c.status.code(), Some(1), "{out}");
    assert!(
        out.starts_with("checks:\n  artifact_signature: fail\n    "),
        "{out}"
    );
    assert!(out.contains("no cosign signature found"), "{out}");
    assert!(
        out.contains("  vulnerability_policy: fail\n") && out.contains("no attestation found"),
        "{out}"
    );
    assert!(out.contains("  admission_policy: pass\n"), "{out}");
}

#[test]
fn keyless_signatures_and_attestations_verify_through_the_registry() {
    use crate::support::sigstore::{LeafSpec, Signed, Sigstore};
    use p256::ecdsa::signature::Signer;
    use platform_capstone::gates::keyless::{self, Logged};
    let registry = TestRegistry::start();
    let reg = OciRegistry::new(std::slice::from_ref(&registry.host)).expect("client");
    let repo = format!("{}/platform-capstone/demo", registry.host);
    let store = Sigstore::new();
    let trust = TrustPolicy {
        keys: Vec::new(),
        keyless: vec![store.exact_trust()],
        ..TrustPolicy::default()
    };
    let now = chrono::Utc::now();
    let leaf = store.leaf(&LeafSpec::default(), None);

    // A keyless signature, as cosign writes it, passes.
    let good = push_image(&reg, &repo, "keyless-good");
    let s = Signed::new(
        &store,
        &leaf,
        platform_capstone::gates::signature::payload_for(&repo, &good),
    );
    cosign::add_signature(
        &reg,
        &repo,
        &good,
        s.payload.clone(),
        &s.signature,
        s.annotations(),
    )
    .expect("push signature");
    assert_eq!(
        cosign::check(&reg, &repo, &good, &trust, now).expect("check"),
        None
    );

    // Signed by someone else's workflow: the finding names the mismatch.
    let other = push_image(&reg, &repo, "keyless-other");
    let mallory = store.leaf(
        &LeafSpec {
            subject: "https://github.com/mallory/x/.github/workflows/r.yml@refs/heads/main".into(),
            ..LeafSpec::default()
        },
        None,
    );
    let s = Signed::new(
        &store,
        &mallory,
        platform_capstone::gates::signature::payload_for(&repo, &other),
    );
    cosign::add_signature(
        &reg,
        &repo,
        &other,
        s.payload.clone(),
        &s.signature,
        s.annotations(),
    )
    .expect("push signature");
    let f = cosign::check(&reg, &repo, &other, &trust, now)
        .expect("check")
        .expect("a finding");
    assert!(f.message.contains("identity mismatch"), "{}", f.message);
    assert!(f.message.contains("mallory"), "{}", f.message);

    // A keyless vulnerability attestation, logged as an intoto entry.
    let statement = cosign::statement_for(
        &repo,
        &good,
        cosign::VULN_PREDICATE,
        vuln_predicate("LOW", ""),
    );
    let sig: p256::ecdsa::Signature = leaf.key.sign(&cosign::statement_pae(&statement));
    let sig = sig.to_der().as_bytes().to_vec();
    let bundle = store.bundle(
        Logged::Intoto {
            payload: &statement,
        },
        &sig,
        &leaf.pem,
        now.timestamp(),
    );
    let annotations = std::collections::BTreeMap::from([
        (
            keyless::CERTIFICATE_ANNOTATION.to_string(),
            leaf.pem.clone(),
        ),
        (keyless::CHAIN_ANNOTATION.to_string(), store.chain_pem()),
        (keyless::BUNDLE_ANNOTATION.to_string(), bundle),
    ]);
    cosign::add_attestation(
        &reg,
        &repo,
        &good,
        cosign::VULN_PREDICATE,
        cosign::envelope(&statement, &sig),
        annotations.clone(),
    )
    .expect("attest");
    let predicate =
        cosign::verified_predicate(&reg, &repo, &good, cosign::VULN_PREDICATE, &trust, now)
            .expect("registry")
            .expect("verified");
    assert_eq!(predicate["scanner"]["version"], "0.57.0");

    // The same envelope and certificate on another digest: the statement is
    // about `good`, and its log entry does not match a re-signed copy.
    let mut lax = annotations;
    lax.remove(keyless::BUNDLE_ANNOTATION);
    cosign::add_attestation(
        &reg,
        &repo,
        &other,
        cosign::VULN_PREDICATE,
        cosign::envelope(&statement, &sig),
        lax,
    )
    .expect("attest");
    let reason =
        cosign::verified_predicate(&reg, &repo, &other, cosign::VULN_PREDICATE, &trust, now)
            .expect("registry")
            .expect_err("not verified");
    assert!(
        reason.contains("missing transparency-log entry"),
        "{reason}"
    );
}

#[test]
fn a_private_registry_is_reached_with_docker_config_auths_and_credential_helpers() {
    use platform_capstone::adapters::registry_auth::Keychain;
    use platform_capstone::gates::oci_bundle;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let password = "s3cret-Pa55";
    let hash = bcrypt::hash(password, 5).expect("bcrypt");
    std::fs::write(d.join("htpasswd"), format!("ci:{hash}\n")).expect("htpasswd");
    let mut registry = LocalRegistry::start_with_htpasswd(&d.join("registry"), &d.join("htpasswd"))
        .expect("start a private docker-registry");
    let host = registry.host.clone();
    let repo = format!("{host}/platform-capstone/private");
    let plain = std::slice::from_ref(&host);
    let write = |name: &str, json: serde_json::Value| {
        let p = d.join(name);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, json.to_string()).expect("write");
        p
    };
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);

    // Anonymous: refused, and the gate cannot pass what it cannot read.
    let none = write("none/config.json", serde_json::json!({}));
    let anonymous = OciRegistry::with_keychain(plain, Keychain::from_file(&none)).expect("client");
    let digest_for = |reg: &OciRegistry, tag: &str| {
        reg.push_image(
            &format!("{repo}:{tag}"),
            b"{\"architecture\":\"amd64\",\"os\":\"linux\"}".to_vec(),
            vec![tag.as_bytes().to_vec()],
        )
    };
    assert!(
        digest_for(&anonymous, "anon").is_err(),
        "anonymous push to a private registry"
    );

    // docker's config.json `auths`, in the https://host/v1/ spelling.
    let auths = write(
        "auths/config.json",
        serde_json::json!({"auths": {format!("https://{host}/v1/"): {"auth": b64(&format!("ci:{password}"))}}}),
    );
    let reg = OciRegistry::with_keychain(plain, Keychain::from_file(&auths)).expect("client");
    let digest = digest_for(&reg, "v1").expect("push with config.json credentials");
    let (ci_key, trusted) = keys();
    let trust = TrustPolicy {
        keys: vec![trusted],
        ..TrustPolicy::default()
    };
    let now = chrono::Utc::now();
    oci_bundle::sign(&reg, &repo, &digest, &ci_key, now).expect("sign");
    assert_eq!(
        cosign::check(&reg, &repo, &digest, &trust, now).expect("check"),
        None
    );
    let err = cosign::check(&anonymous, &repo, &digest, &trust, now).expect_err("anonymous read");
    assert!(err.is_infrastructure(), "{err}");

    // A credential helper (`credHelpers`), given the host on stdin.
    let helpers = d.join("bin");
    std::fs::create_dir_all(&helpers).expect("mkdir");
    let helper = helpers.join("docker-credential-pcfake");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 3\nread host\n[ \"$host\" = \"{host}\" ] || {{ echo \"credentials not found in native keychain\"; exit 1; }}\nprintf '{{\"ServerURL\":\"%s\",\"Username\":\"ci\",\"Secret\":\"{password}\"}}' \"$host\"\n"
        ),
    )
    .expect("helper");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let with_helper = write(
        "helper/config.json",
        serde_json::json!({"credHelpers": {host.clone(): "pcfake"}}),
    );
    let reg = OciRegistry::with_keychain(
        plain,
        Keychain::from_file(&with_helper).with_helper_dir(&helpers),
    )
    .expect("client");
    assert_eq!(
        cosign::check(&reg, &repo, &digest, &trust, now).expect("check"),
        None
    );

    // A wrong password: refused, and the message does not carry it.
    let wrong = write(
        "wrong/config.json",
        serde_json::json!({"auths": {host.clone(): {"username": "ci", "password": "not-the-password"}}}),
    );
    let reg = OciRegistry::with_keychain(plain, Keychain::from_file(&wrong)).expect("client");
    let err = cosign::check(&reg, &repo, &digest, &trust, now).expect_err("wrong password");
    assert!(!err.to_string().contains("not-the-password"), "{err}");
    assert!(
        err.to_string().contains("refused access") && err.to_string().contains("wrong/config.json"),
        "{err}"
    );

    // The CLI reads $DOCKER_CONFIG, as docker and cosign do.
    let v2 = digest_for(
        &OciRegistry::with_keychain(plain, Keychain::from_file(&auths)).expect("client"),
        "v2",
    )
    .expect("push");
    let (private, _) = cosign::generate_key_pair().expect("keygen");
    std::fs::write(d.join("cosign.key"), private).expect("key");
    let sign = |docker_config: &Path| {
        Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
            .current_dir(d)
            .args([
                "sign",
                &format!("{repo}@{v2}"),
                "--key",
                "cosign.key",
                "--plain-http",
            ])
            .env("DOCKER_CONFIG", docker_config)
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("XDG_RUNTIME_DIR")
            .output()
            .expect("run")
    };
    let o = sign(none.parent().expect("dir"));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("no usable credentials"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = sign(auths.parent().expect("dir"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    registry.stop();
}
