//! Sigstore bundles against the public Sigstore conformance suite's cases
//! (`../shared/sigstore-conformance/bundle-verify/`, read at test time):
//! every case gives the expected result, in-process and through
//! `platform-capstone verify-bundle`.

use platform_capstone::gates::bundle::{self, BundleError, Signer, Subject};
use platform_capstone::gates::keyless::Matcher;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const DEFAULT_IDENTITY: &str = "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main";
const DEFAULT_ISSUER: &str = "https://token.actions.githubusercontent.com";

fn suite() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/sigstore-conformance");
    assert!(
        dir.join("bundle-verify").is_dir(),
        "the Sigstore conformance cases are not at {}: CI checks the repository out beside ../shared",
        dir.display()
    );
    dir
}

/// One conformance case, with the suite's defaults filled in.
struct Case {
    name: String,
    bundle: PathBuf,
    artifact: PathBuf,
    trusted_root: PathBuf,
    key: Option<PathBuf>,
    identity: String,
    issuer: String,
    must_fail: bool,
}

fn cases() -> Vec<Case> {
    let suite = suite();
    let dir = suite.join("bundle-verify");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("bundle-verify") {
        let path = entry.expect("entry").path();
        if !path.is_dir() {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let or = |file: &str, default: PathBuf| {
            let p = path.join(file);
            if p.exists() { p } else { default }
        };
        let text = |file: &str, default: &str| {
            std::fs::read_to_string(path.join(file))
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| default.to_string())
        };
        out.push(Case {
            name: name.to_string(),
            bundle: path.join("bundle.sigstore.json"),
            artifact: or("artifact", dir.join("a.txt")),
            trusted_root: or(
                "trusted_root.json",
                suite.join("trusted_root.production.json"),
            ),
            key: Some(path.join("key.pub")).filter(|p| p.exists()),
            identity: text("identity", DEFAULT_IDENTITY),
            issuer: text("issuer", DEFAULT_ISSUER),
            must_fail: name.ends_with("_fail"),
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

fn verify(case: &Case) -> Result<bundle::Verified, BundleError> {
    let json =
        std::fs::read_to_string(&case.bundle).map_err(|e| BundleError::Malformed(e.to_string()))?;
    let root = std::fs::read_to_string(&case.trusted_root).expect("trusted root");
    let root = bundle::trusted_root(Some(&root))?;
    let signer = match &case.key {
        Some(k) => Signer::Key {
            pem: std::fs::read_to_string(k).expect("key.pub"),
            require_tlog: true,
        },
        None => Signer::Identity {
            issuer: Matcher::Exact(case.issuer.clone()),
            subject: Matcher::Exact(case.identity.clone()),
        },
    };
    let artifact = std::fs::read(&case.artifact).expect("artifact");
    bundle::verify(&json, &Subject::Bytes(artifact), &signer, &root)
}

#[test]
fn every_conformance_case_gives_the_expected_result() {
    let cases = cases();
    assert!(
        cases.len() >= 70,
        "expected the suite's 70 cases, found {}",
        cases.len()
    );
    let (mut passed, mut failed, mut wrong) = (0, 0, Vec::new());
    for case in &cases {
        match (verify(case), case.must_fail) {
            (Ok(_), false) => passed += 1,
            (Err(_), true) => failed += 1,
            (Ok(_), true) => wrong.push(format!("{}: verified, must be rejected", case.name)),
            (Err(e), false) => wrong.push(format!("{}: rejected, must verify: {e}", case.name)),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} conformance cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    assert!(
        passed > 20 && failed > 40,
        "{passed} verified, {failed} rejected"
    );
}

fn case(name: &str) -> Case {
    cases()
        .into_iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no conformance case {name}"))
}

#[test]
fn a_wrong_identity_is_rejected_naming_the_identity_found() {
    let mut c = case("happy-path-v0.3");
    c.identity =
        "https://github.com/acme/deploy/.github/workflows/release.yml@refs/heads/main".into();
    let err = verify(&c).expect_err("wrong identity");
    let msg = err.to_string();
    assert!(msg.contains("extremely-dangerous-oidc-beacon"), "{msg}");
    assert!(msg.contains("acme/deploy"), "{msg}");

    let mut c = case("happy-path-v0.3");
    c.issuer = "https://accounts.google.com".into();
    let msg = verify(&c).expect_err("wrong issuer").to_string();
    assert!(
        msg.contains("oidc-issuer") && msg.contains(DEFAULT_ISSUER),
        "{msg}"
    );
}

#[test]
fn identity_regexes_are_matched_against_the_verified_certificate() {
    let c = case("happy-path-v0.3");
    let json = std::fs::read_to_string(&c.bundle).expect("bundle");
    let root = bundle::trusted_root(Some(
        &std::fs::read_to_string(&c.trusted_root).expect("root"),
    ))
    .expect("root");
    let artifact = Subject::Bytes(std::fs::read(&c.artifact).expect("artifact"));
    let with = |subject: &str, issuer: &str| {
        bundle::verify(
            &json,
            &artifact,
            &Signer::Identity {
                subject: Matcher::regex(subject).expect("regex"),
                issuer: Matcher::regex(issuer).expect("regex"),
            },
            &root,
        )
    };
    let v = with(
        r"^https://github\.com/sigstore-conformance/.*@refs/heads/main$",
        r"^https://token\.actions\.githubusercontent\.com$",
    )
    .expect("regex identity verifies");
    assert_eq!(v.identity.as_deref(), Some(DEFAULT_IDENTITY));
    assert!(v.certificate_verified && v.tlog_verified, "{v:?}");
    let err = with(r"^https://github\.com/acme/", ".*").expect_err("other org");
    assert!(
        matches!(
            err,
            BundleError::Identity {
                what: "identity",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_dsse_bundle_verifies_against_its_subject_digest() {
    let c = case("happy-path-intoto-in-dsse-v3");
    let json = std::fs::read_to_string(&c.bundle).expect("bundle");
    let artifact = std::fs::read(&c.artifact).expect("artifact");
    let digest = format!("sha256:{}", sha256_hex(&artifact));
    let root = bundle::trusted_root(Some(
        &std::fs::read_to_string(&c.trusted_root).expect("root"),
    ))
    .expect("root");
    let signer = Signer::Identity {
        issuer: Matcher::Exact(c.issuer.clone()),
        subject: Matcher::Exact(c.identity.clone()),
    };
    let subject = Subject::parse_digest(&digest).expect("digest");
    let v = bundle::verify(&json, &subject, &signer, &root).expect("verifies by digest");
    assert_eq!(v.content, "dsse");
    assert_eq!(
        v.payload_type.as_deref(),
        Some("application/vnd.in-toto+json")
    );
    let other = Subject::parse_digest(&format!("sha256:{}", "0".repeat(64))).expect("digest");
    assert!(bundle::verify(&json, &other, &signer, &root).is_err());
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
        .args(args)
        .output()
        .expect("run platform-capstone")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn verify_bundle_exits_0_1_2_and_4() {
    // Keyless, verified, text and JSON.
    let c = case("happy-path-v0.3");
    let keyless = [
        "verify-bundle",
        "--bundle",
        s(&c.bundle),
        "--certificate-identity",
        DEFAULT_IDENTITY,
        "--certificate-oidc-issuer",
        DEFAULT_ISSUER,
        "--trusted-root",
        s(&c.trusted_root),
        s(&c.artifact),
    ];
    let o = cli(&keyless);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.starts_with(
            "verified: a message signature by https://github.com/sigstore-conformance/"
        ),
        "{out}"
    );
    let o = cli(&[&keyless[..], &["-o", "json"]].concat());
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(doc["verified"], true);
    assert_eq!(doc["identity"], DEFAULT_IDENTITY);
    assert_eq!(doc["tlog_verified"], true);

    // The default trusted root is the production one: the same case
    // verifies without --trusted-root when its root is the production one.
    let prod = case("happy-path-v0.2");
    if prod.trusted_root.ends_with("trusted_root.production.json") {
        let o = cli(&[
            "verify-bundle",
            "--bundle",
            s(&prod.bundle),
            "--certificate-identity-regexp",
            "^https://github.com/sigstore-conformance/",
            "--certificate-oidc-issuer",
            DEFAULT_ISSUER,
            s(&prod.artifact),
        ]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }

    // Keyed.
    let k = case("managed-key-happy-path");
    let key = k.key.as_ref().expect("key.pub");
    let o = cli(&[
        "verify-bundle",
        "--bundle",
        s(&k.bundle),
        "--key",
        s(key),
        "--trusted-root",
        s(&k.trusted_root),
        s(&k.artifact),
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("by the given key"));

    // Not verified: exit 1 with the reason, and {"verified": false} as data.
    let bad = case("signature-mismatch_fail");
    let args = [
        "verify-bundle",
        "--bundle",
        s(&bad.bundle),
        "--certificate-identity",
        &bad.identity,
        "--certificate-oidc-issuer",
        &bad.issuer,
        "--trusted-root",
        s(&bad.trusted_root),
        s(&bad.artifact),
    ];
    let o = cli(&args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("not verified: ") && err.contains("bundle.sigstore.json"),
        "{err}"
    );
    let o = cli(&[&args[..], &["-o", "json"]].concat());
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(doc["verified"], false);
    assert!(
        doc["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "{doc}"
    );

    // Usage: neither a key nor an identity; a malformed digest.
    let o = cli(&["verify-bundle", "--bundle", s(&c.bundle), s(&c.artifact)]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("--certificate-identity"));
    let o = cli(&[&keyless[..9], &["sha256:abc"]].concat());
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A file that cannot be read is a runtime error, not "not verified".
    let o = cli(&[&keyless[..9], &["/nonexistent/artifact"]].concat());
    assert_eq!(
        o.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/artifact"));
}

#[test]
fn a_bundle_without_a_log_entry_needs_insecure_ignore_tlog() {
    use platform_capstone::gates::{cosign, oci_bundle};
    let dir = tempfile::tempdir().expect("tmp");
    let (private, public) = cosign::generate_key_pair().expect("keygen");
    let key = cosign::load_signing_key(&private).expect("key");
    let digest = format!("sha256:{}", "ab".repeat(32));
    let statement = oci_bundle::statement(
        "r.test/app",
        &digest,
        oci_bundle::SIGN_PREDICATE,
        serde_json::json!({}),
    );
    let bundle_path = dir.path().join("b.sigstore.json");
    let key_path = dir.path().join("cosign.pub");
    std::fs::write(&bundle_path, oci_bundle::keyed_bundle(&statement, &key)).expect("write");
    std::fs::write(&key_path, public).expect("write");
    let args = |extra: &[&str], subject: &str| {
        let mut v = vec![
            "verify-bundle".to_string(),
            "--bundle".into(),
            s(&bundle_path).into(),
            "--key".into(),
            s(&key_path).into(),
        ];
        v.extend(extra.iter().map(|x| x.to_string()));
        v.push(subject.into());
        v
    };
    let run = |v: Vec<String>| {
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        cli(&v)
    };
    let o = run(args(&["--insecure-ignore-tlog", "-o", "json"], &digest));
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(doc["predicate_type"], oci_bundle::SIGN_PREDICATE);
    assert_eq!(doc["tlog_verified"], false);
    // Without the flag a log entry is required.
    let o = run(args(&[], &digest));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("transparency-log"));
    // Another digest is not the statement's subject.
    let other = format!("sha256:{}", "cd".repeat(32));
    let o = run(args(&["--insecure-ignore-tlog"], &other));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("do not name"));
}

#[test]
fn a_keyless_bundle_found_in_the_registry_verifies_for_its_identity_only() {
    use platform_capstone::fakes::MemRegistry;
    use platform_capstone::gates::keyless::KeylessTrust;
    use platform_capstone::gates::trust::TrustPolicy;
    use platform_capstone::gates::{cosign, oci_bundle};
    use platform_capstone::model::oci::{Descriptor, OCI_MANIFEST};
    // The conformance suite's keyless DSSE attestation (SLSA provenance
    // about a.txt, Fulcio certificate, Rekor entry, public-good root),
    // attached as cosign 3 would attach it to an artifact of that digest.
    let c = case("happy-path-intoto-in-dsse-v3");
    let json = std::fs::read(&c.bundle).expect("bundle");
    let artifact = std::fs::read(&c.artifact).expect("artifact");
    let digest = format!("sha256:{}", sha256_hex(&artifact));
    let repo = "r.test/conformance";
    let reg = MemRegistry::new();
    let subject = Descriptor {
        media_type: OCI_MANIFEST.into(),
        digest: digest.clone(),
        size: artifact.len() as i64,
        urls: None,
        annotations: None,
        artifact_type: None,
    };
    let provenance = "https://slsa.dev/provenance/v1";
    oci_bundle::attach_to(
        &reg,
        repo,
        subject,
        json,
        "dsse-envelope",
        Some(provenance),
        chrono::Utc::now(),
    )
    .expect("attach");
    let identity = |subject: Matcher| TrustPolicy {
        keyless: vec![KeylessTrust {
            name: "conformance-beacon".into(),
            roots: Vec::new(),
            rekor: None,
            issuer: Matcher::Exact(DEFAULT_ISSUER.into()),
            subject,
            require_tlog: true,
        }],
        ..TrustPolicy::default()
    };
    let now = chrono::Utc::now();

    // The pinned identity: the attestation gate reads its predicate.
    let trusted =
        identity(Matcher::regex(r"^https://github\.com/sigstore-conformance/").expect("regex"));
    let predicate = cosign::verified_predicate(&reg, repo, &digest, provenance, &trusted, now)
        .expect("registry")
        .expect("verified for the pinned identity");
    assert!(predicate.is_object(), "{predicate}");

    // Another identity: rejected, naming the identity the certificate has.
    let other = identity(Matcher::Exact(
        "https://github.com/acme/deploy/.github/workflows/release.yml@refs/heads/main".into(),
    ));
    let reason = cosign::verified_predicate(&reg, repo, &digest, provenance, &other, now)
        .expect("registry")
        .expect_err("another identity");
    assert!(
        reason.contains("keyless conformance-beacon")
            && reason.contains(DEFAULT_IDENTITY)
            && reason.contains("acme/deploy"),
        "{reason}"
    );
    // And it is no image signature: the signature gate says what it is.
    let f = cosign::check(&reg, repo, &digest, &trusted, now)
        .expect("registry")
        .expect("not a signature");
    assert!(f.message.contains(provenance), "{}", f.message);
}
