//! Material from upstream Go code we did not write (`tests/go/interop`,
//! built from pinned modules): a key encrypted exactly as `cosign
//! generate-key-pair` encrypts it (go-securesystemslib), and
//! go-containerregistry's registry, which serves the OCI 1.1 referrers API
//! that the Debian `docker-registry` lacks; and a token server of the
//! distribution token protocol in front of `docker-registry`, for the
//! bearer-token flow of a private registry.

use crate::registry::{keys, push_image};
use crate::support::interop;
use platform_capstone::adapters::registry::OciRegistry;
use platform_capstone::gates::cosign;
use platform_capstone::gates::oci_bundle::{self, Listing};
use platform_capstone::gates::signature::TrustedKey;
use platform_capstone::gates::trust::TrustPolicy;
use platform_capstone::ports::Registry as _;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// go-containerregistry's registry on a loopback port, killed on drop.
struct GgcrRegistry {
    _process: Listening,
    host: String,
}

impl GgcrRegistry {
    fn start() -> Self {
        let process = Listening::start(&["registry", "127.0.0.1:0"], Path::new("."));
        let host = process.addr.clone();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&host).is_err() {
            assert!(
                Instant::now() < deadline,
                "the interop registry at {host} does not accept connections"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            _process: process,
            host,
        }
    }
}

/// A fresh release key, and a trust policy naming it.
fn release_key() -> (p256::ecdsa::SigningKey, TrustPolicy) {
    let (key, trusted) = keys();
    let trust = TrustPolicy {
        keys: vec![trusted],
        ..TrustPolicy::default()
    };
    (key, trust)
}

#[test]
fn bundles_are_listed_by_a_registry_with_the_referrers_api() {
    let registry = GgcrRegistry::start();
    let reg = OciRegistry::new(std::slice::from_ref(&registry.host)).expect("client");
    let repo = format!("{}/platform-capstone/demo", registry.host);
    let (key, trust) = release_key();
    let now = chrono::Utc::now();
    let digest = push_image(&reg, &repo, "v1");
    let api = reg.referrers(&repo, &digest).expect("referrers API");
    assert!(
        api.as_ref().is_some_and(|i| i.manifests.is_empty()),
        "an empty referrers list expected, got {api:?}"
    );
    let referrer = oci_bundle::sign(&reg, &repo, &digest, &key, now).expect("sign");
    let (listed, how) = oci_bundle::referrers(&reg, &repo, &digest).expect("list");
    assert_eq!(how, Listing::Api);
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].digest, referrer);
    // With the API there is no fallback tag to keep.
    assert!(
        reg.index(&oci_bundle::fallback_tag(&repo, &digest))
            .expect("tag")
            .is_none()
    );
    assert_eq!(
        cosign::check(&reg, &repo, &digest, &trust, now).expect("check"),
        None
    );

    // Another image's bundle is not this one's.
    let other = push_image(&reg, &repo, "v2");
    let f = cosign::check(&reg, &repo, &other, &trust, now)
        .expect("check")
        .expect("unsigned");
    assert_eq!(f.rule, "no-signature");
}

fn bin(dir: &Path, args: &[&str], password: Option<&str>) -> std::process::Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_platform-capstone"));
    c.current_dir(dir).args(args).env_remove("COSIGN_PASSWORD");
    if let Some(p) = password {
        c.env("COSIGN_PASSWORD", p);
    }
    c.output().expect("run platform-capstone")
}

#[test]
fn a_key_from_cosign_generate_key_pair_signs_with_cosign_password() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let out = Command::new(interop())
        .args(["encrypt-key", "correct horse", "cosign.key", "cosign.pub"])
        .current_dir(d)
        .output()
        .expect("run interop");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pem = std::fs::read_to_string(d.join("cosign.key")).expect("key");
    assert!(pem.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----"));

    // In the core: the right password gives the key whose public half
    // cosign wrote; a wrong one is named as such.
    let key = cosign::decrypt_key(&pem, b"correct horse").expect("decrypts");
    let public = std::fs::read_to_string(d.join("cosign.pub")).expect("pub");
    let trusted = TrustedKey::from_pem("cosign", &public).expect("pub");
    let payload = b"payload";
    use p256::ecdsa::signature::Signer as _;
    let sig: p256::ecdsa::Signature = key.sign(payload);
    assert!(
        trusted.verify_raw(payload, &sig),
        "the decrypted key is not the pair's"
    );
    let err = cosign::decrypt_key(&pem, b"wrong").expect_err("wrong password");
    assert!(err.contains("COSIGN_PASSWORD"), "{err}");

    // Through the CLI, against a registry: signs with COSIGN_PASSWORD, and
    // says what to do without it or with a wrong one (exit 4, nothing pushed).
    let registry = GgcrRegistry::start();
    let reg = OciRegistry::new(std::slice::from_ref(&registry.host)).expect("client");
    let repo = format!("{}/platform-capstone/demo", registry.host);
    let digest = push_image(&reg, &repo, "v1");
    let image = format!("{repo}@{digest}");
    let args = [
        "sign",
        image.as_str(),
        "--key",
        "cosign.key",
        "--plain-http",
    ];
    let o = bin(d, &args, None);
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cosign.key") && err.contains("set COSIGN_PASSWORD"),
        "{err}"
    );
    let o = bin(d, &args, Some("wrong"));
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not decrypt"));
    let (listed, _) = oci_bundle::referrers(&reg, &repo, &digest).expect("list");
    assert!(
        listed.is_empty(),
        "a refused key pushed something: {listed:?}"
    );
    let o = bin(d, &args, Some("correct horse"));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let trust = TrustPolicy {
        keys: vec![trusted],
        ..TrustPolicy::default()
    };
    assert_eq!(
        cosign::check(&reg, &repo, &digest, &trust, chrono::Utc::now()).expect("check"),
        None
    );
}

/// A child process that prints `listening on ADDR` first; killed on drop.
struct Listening {
    child: Child,
    addr: String,
}

impl Listening {
    fn start(args: &[&str], cwd: &Path) -> Self {
        let mut child = Command::new(interop())
            .args(args)
            .current_dir(cwd)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the interop helper");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| {
                panic!("interop {args:?} did not say where it listens within 20 s")
            });
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line from interop {args:?}: {line:?}"))
            .to_string();
        Self { child, addr }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_registry_behind_token_auth_is_reached_through_the_bearer_flow() {
    use platform_capstone::adapters::local_registry::LocalRegistry;
    use platform_capstone::adapters::registry_auth::Keychain;
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let password = "t0ken-Pa55";
    let tokens = Listening::start(
        &["token-server", "127.0.0.1:0", "issuer.pem", "ci", password],
        d,
    );
    let registry = LocalRegistry::start_with_token_auth(
        &d.join("registry"),
        &format!("http://{}/token", tokens.addr),
        "platform-capstone-test",
        "platform-capstone-test",
        &d.join("issuer.pem"),
    )
    .expect("start docker-registry with token auth");
    let host = registry.host.clone();
    let repo = format!("{host}/platform-capstone/tokens");
    let config = |name: &str, user_password: &str| {
        use base64::Engine;
        let p = d.join(name).join("config.json");
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        let auth = base64::engine::general_purpose::STANDARD.encode(user_password);
        std::fs::write(
            &p,
            serde_json::json!({"auths": {host.clone(): {"auth": auth}}}).to_string(),
        )
        .expect("write");
        p
    };
    // The registry answers 401 with a Bearer challenge; the client takes
    // the credentials to the token realm and comes back with the token.
    let good = config("good", &format!("ci:{password}"));
    let reg = OciRegistry::with_keychain(std::slice::from_ref(&host), Keychain::from_file(&good))
        .expect("client");
    let digest = push_image(&reg, &repo, "v1");
    let (key, trust) = release_key();
    let now = chrono::Utc::now();
    oci_bundle::sign(&reg, &repo, &digest, &key, now).expect("sign through the bearer flow");
    assert_eq!(
        cosign::check(&reg, &repo, &digest, &trust, now).expect("check"),
        None
    );

    // Credentials the token server refuses: no token, a typed error.
    let bad = config("bad", "ci:wrong");
    let reg = OciRegistry::with_keychain(std::slice::from_ref(&host), Keychain::from_file(&bad))
        .expect("client");
    let err = cosign::check(&reg, &repo, &digest, &trust, now).expect_err("refused");
    assert!(err.is_infrastructure(), "{err}");
    assert!(!err.to_string().contains("wrong"), "{err}");
}
