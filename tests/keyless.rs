//! Keyless verification with real certificates from a local CA standing in
//! for Fulcio and a local key standing in for Rekor: every rejection has
//! its own reason, a certificate is judged at the signature's logged time
//! (not now), and `trust.toml`'s `[[keyless]]` entries load or say why not.

use crate::support::sigstore::{ISSUER, LeafSpec, SUBJECT, Signed, Sigstore};
use platform_capstone::gates::keyless::{self, KeylessRejection, Logged, Matcher};
use platform_capstone::gates::signature;
use platform_capstone::gates::trust;
use platform_capstone::source::DirReader;

const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";

fn payload() -> Vec<u8> {
    signature::payload_for("registry.local/demo", DIGEST)
}

fn verify(s: &Signed, trust: &[keyless::KeylessTrust]) -> Result<(), KeylessRejection> {
    keyless::verify(&s.view(), trust, chrono::Utc::now()).map(|_| ())
}

#[test]
fn a_fulcio_signature_with_the_pinned_identity_verifies() {
    let store = Sigstore::new();
    let leaf = store.leaf(&LeafSpec::default(), None);
    let signed = Signed::new(&store, &leaf, payload());
    verify(&signed, &[store.exact_trust()]).expect("exact identity");

    // Regex identities, an email SAN and the legacy v1 issuer extension.
    let spec = LeafSpec {
        subject: "release-bot@acme.example".into(),
        email: true,
        issuer_v1: true,
        issuer: "https://accounts.google.com".into(),
        ..LeafSpec::default()
    };
    let signed = Signed::new(&store, &store.leaf(&spec, None), payload());
    let regex = store.trust(
        Matcher::Regex(regex::Regex::new(r"^https://accounts\.google\.com$").expect("re")),
        Matcher::Regex(regex::Regex::new(r"^[a-z-]+@acme\.example$").expect("re")),
    );
    verify(&signed, &[regex]).expect("regex identity");
}

#[test]
fn every_keyless_rejection_says_why() {
    let store = Sigstore::new();
    let trust = [store.exact_trust()];
    let leaf = store.leaf(&LeafSpec::default(), None);

    // Payload altered after signing: the certificate's key does not verify it.
    let mut tampered = Signed::new(&store, &leaf, payload());
    tampered.payload = String::from_utf8(tampered.payload)
        .expect("utf8")
        .replace("\"optional\":null", "\"optional\":{\"by\":\"mallory\"}")
        .into_bytes();
    assert_eq!(
        verify(&tampered, &trust),
        Err(KeylessRejection::BadSignature)
    );

    // Someone else's identity, from the right Fulcio.
    let other = LeafSpec {
        subject: "https://github.com/mallory/demo/.github/workflows/x.yml@refs/heads/main".into(),
        ..LeafSpec::default()
    };
    let s = Signed::new(&store, &store.leaf(&other, None), payload());
    match verify(&s, &trust) {
        Err(KeylessRejection::IdentityMismatch { subject, .. }) => {
            assert!(subject.contains("mallory"), "{subject}")
        }
        r => panic!("expected an identity mismatch, got {r:?}"),
    }
    let other_issuer = LeafSpec {
        issuer: "https://evil.example".into(),
        ..LeafSpec::default()
    };
    let s = Signed::new(&store, &store.leaf(&other_issuer, None), payload());
    assert!(
        matches!(verify(&s, &trust), Err(KeylessRejection::IdentityMismatch { ref issuer, .. }) if issuer == "https://evil.example")
    );

    // A certificate from a CA we do not trust, even with the right identity.
    let stranger = Sigstore::stranger_root();
    let s = Signed::new(
        &store,
        &store.leaf(&LeafSpec::default(), Some(&stranger)),
        payload(),
    );
    let err = verify(&s, &trust).expect_err("untrusted");
    assert!(
        matches!(err, KeylessRejection::Untrusted(ref m) if m.contains("does not chain")),
        "{err}"
    );

    // The intermediate missing from the chain: cannot reach the root.
    let mut s = Signed::new(&store, &leaf, payload());
    s.chain = String::new();
    assert!(matches!(
        verify(&s, &trust),
        Err(KeylessRejection::Untrusted(_))
    ));

    // Not a code-signing certificate.
    let tls = LeafSpec {
        code_signing: false,
        ..LeafSpec::default()
    };
    let s = Signed::new(&store, &store.leaf(&tls, None), payload());
    assert!(matches!(
        verify(&s, &trust),
        Err(KeylessRejection::Untrusted(ref m)) if m.contains("code signing")
    ));

    // Expired when it was logged.
    let old = LeafSpec {
        from: -3600,
        to: -3000,
        ..LeafSpec::default()
    };
    let s = Signed::new(&store, &store.leaf(&old, None), payload());
    assert!(matches!(
        verify(&s, &trust),
        Err(KeylessRejection::Expired(_))
    ));

    // No transparency-log entry, while the policy requires one.
    let mut s = Signed::new(&store, &leaf, payload());
    s.bundle = None;
    assert!(matches!(
        verify(&s, &trust),
        Err(KeylessRejection::MissingTlog { .. })
    ));

    // A SET signed by another log, and a genuine entry for another signature.
    let other_log = Sigstore::new();
    let mut s = Signed::new(&store, &leaf, payload());
    s.bundle = Some(other_log.bundle(
        Logged::HashedRekord {
            payload: &s.payload,
        },
        &s.signature,
        &s.cert,
        chrono::Utc::now().timestamp(),
    ));
    assert!(matches!(
        verify(&s, &trust),
        Err(KeylessRejection::BadTlog(ref m)) if m.contains("not the configured Rekor log")
    ));
    let first = Signed::new(&store, &leaf, payload());
    let mut second = Signed::new(
        &store,
        &leaf,
        signature::payload_for("registry.local/other", DIGEST),
    );
    second.bundle = first.bundle.clone();
    assert!(matches!(
        verify(&second, &trust),
        Err(KeylessRejection::BadTlog(ref m)) if m.contains("not this signature")
    ));
    // A SET whose payload was edited after Rekor signed it (time moved).
    let mut s = Signed::new(&store, &leaf, payload());
    let bundle = s.bundle.take().expect("bundle");
    let mut v: serde_json::Value = serde_json::from_str(&bundle).expect("json");
    v["Payload"]["integratedTime"] = (chrono::Utc::now().timestamp() - 10).into();
    s.bundle = Some(v.to_string());
    assert!(matches!(
        verify(&s, &trust),
        Err(KeylessRejection::BadTlog(ref m)) if m.contains("signed entry timestamp")
    ));
}

#[test]
fn a_certificate_is_judged_at_its_logged_time_not_now() {
    let store = Sigstore::new();
    let trust = [store.exact_trust()];
    // Valid from 20 to 10 minutes ago: expired now, as every Fulcio
    // certificate soon is, but it was valid when Rekor logged the signature.
    let spec = LeafSpec {
        from: -1200,
        to: -600,
        ..LeafSpec::default()
    };
    let leaf = store.leaf(&spec, None);
    let mut s = Signed::new(&store, &leaf, payload());
    let logged_at = chrono::Utc::now().timestamp() - 900;
    s.bundle = Some(store.bundle(
        Logged::HashedRekord {
            payload: &s.payload,
        },
        &s.signature,
        &s.cert,
        logged_at,
    ));
    verify(&s, &trust).expect("valid at the integrated time");

    // Without a log entry (and not required) it is judged now: expired.
    let mut lax = store.exact_trust();
    lax.require_tlog = false;
    s.bundle = None;
    assert!(matches!(
        verify(&s, &[lax.clone()]),
        Err(KeylessRejection::Expired(_))
    ));
    let fresh = Signed::new(&store, &store.leaf(&LeafSpec::default(), None), payload());
    let mut fresh_unlogged = fresh;
    fresh_unlogged.bundle = None;
    verify(&fresh_unlogged, &[lax]).expect("not required, valid now");
}

fn write(dir: &std::path::Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, text).expect("write");
}

#[test]
fn trust_toml_loads_keyless_entries_or_names_each_problem() {
    let store = Sigstore::new();
    let dir = tempfile::tempdir().expect("tmp");
    write(dir.path(), "policies/keys/fulcio.pem", &store.root.pem);
    write(dir.path(), "policies/keys/rekor.pub", &store.rekor_pem);
    write(
        dir.path(),
        "policies/trust.toml",
        &format!(
            r#"
[[keyless]]
name = "github-release"
fulcio_roots = "keys/fulcio.pem"
rekor_key = "keys/rekor.pub"
issuer = "{ISSUER}"
subject_regex = "^https://github\\.com/acme/demo/"
"#
        ),
    );
    let reader = DirReader::open(dir.path()).expect("open");
    let policy = trust::load(&reader).expect("loads");
    assert_eq!(policy.keyless.len(), 1);
    let leaf = store.leaf(&LeafSpec::default(), None);
    let s = Signed::new(&store, &leaf, payload());
    assert!(SUBJECT.starts_with("https://github.com/acme/demo/"));
    verify(&s, &policy.keyless).expect("the loaded entry verifies");

    write(
        dir.path(),
        "policies/trust.toml",
        r#"
[[keyless]]
name = "broken"
fulcio_roots = "keys/missing.pem"
issuer = "https://x"
issuer_regex = "x"
subject_regex = "("
"#,
    );
    let reader = DirReader::open(dir.path()).expect("open");
    let err = trust::load(&reader).expect_err("broken").to_string();
    for want in [
        "policies/trust.toml",
        "keyless[0].fulcio_roots",
        "keyless[0].rekor_key: required while require_tlog",
        "issuer and issuer_regex are both set",
        "keyless[0].subject_regex",
    ] {
        assert!(err.contains(want), "{want:?} missing from: {err}");
    }

    write(dir.path(), "policies/keys/notacert.pem", "hello");
    write(
        dir.path(),
        "policies/trust.toml",
        r#"
[[keyless]]
name = "no-identity"
fulcio_roots = "keys/notacert.pem"
require_tlog = false
"#,
    );
    let reader = DirReader::open(dir.path()).expect("open");
    let err = trust::load(&reader).expect_err("broken").to_string();
    for want in [
        "keys/notacert.pem: not a PEM certificate bundle",
        "keyless[0].issuer (or issuer_regex) is required",
        "keyless[0].subject (or subject_regex) is required",
    ] {
        assert!(err.contains(want), "{want:?} missing from: {err}");
    }

    // An entry for Sigstore bundles only: no fulcio_roots, no rekor_key
    // (the trusted root carries both); the public-good root by default.
    write(
        dir.path(),
        "policies/trust.toml",
        &format!(
            "[[keyless]]\nname = \"bundles\"\nissuer = \"{ISSUER}\"\nsubject = \"{SUBJECT}\"\n"
        ),
    );
    let reader = DirReader::open(dir.path()).expect("open");
    let policy = trust::load(&reader).expect("a bundle-only entry loads");
    assert!(policy.keyless[0].roots.is_empty() && policy.sigstore_root.is_none());
    // A trusted_root.json in policies/ replaces it, or is named when broken.
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/sigstore-conformance/trusted_root.production.json");
    let root = std::fs::read_to_string(&shared).expect("the shared production trusted root");
    write(dir.path(), "policies/trusted_root.json", &root);
    let reader = DirReader::open(dir.path()).expect("open");
    assert!(trust::load(&reader).expect("loads").sigstore_root.is_some());
    write(
        dir.path(),
        "policies/trusted_root.json",
        "{\"mediaType\": 3}",
    );
    let reader = DirReader::open(dir.path()).expect("open");
    let err = trust::load(&reader).expect_err("broken root").to_string();
    assert!(err.contains("policies/trusted_root.json"), "{err}");
}
