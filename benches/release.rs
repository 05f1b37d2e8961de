//! Release decision latency, analysis excluded (issue 6): for the
//! blueprint, render an env at a commit from git, run the three gates
//! against a loopback registry, and make the signed promotion commit +
//! CAS push + signed promotion note to the next env's branch on a bare
//! file:// remote. Goal: under 500 ms.
//!
//! `cargo bench --bench release`

use platform_capstone::adapters::local_registry::LocalRegistry;
use platform_capstone::adapters::registry::OciRegistry;
use platform_capstone::config::load_repo;
use platform_capstone::engine::promote;
use platform_capstone::gates::{cosign, run};
use platform_capstone::ports::Registry as _;
use platform_capstone::signing::{Identity, Signer};
use platform_capstone::source::{FileChange, Git2Repo, GitRepo, TreeReader};
use std::time::Instant;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let dir = tempfile::tempdir().expect("tmp");
    let registry = match LocalRegistry::start(&dir.path().join("registry")) {
        Ok(r) => r,
        Err(e) => {
            println!("release benchmark skipped: {e}");
            return;
        }
    };
    let host = registry.host.clone();
    let reg = OciRegistry::new(std::slice::from_ref(&host)).expect("client");
    let repo_name = format!("{host}/platform-capstone/demo");
    let (private, public) = cosign::generate_key_pair().expect("keygen");
    let key = cosign::load_signing_key(&private).expect("key");
    let scan = serde_json::json!({"scanner": {"uri": "pkg:github/aquasecurity/trivy", "result": {"Results": []}},
                                  "metadata": {"scanFinishedOn": chrono::Utc::now().to_rfc3339()}});
    let mut digests = Vec::new();
    for i in 0..2 {
        let d = reg
            .push_image(
                &format!("{repo_name}:v{i}"),
                b"{}".to_vec(),
                vec![format!("layer {i}").into_bytes()],
            )
            .expect("image");
        cosign::sign(&reg, &repo_name, &d, &key).expect("sign");
        cosign::attest(
            &reg,
            &repo_name,
            &d,
            cosign::VULN_PREDICATE,
            scan.clone(),
            &key,
        )
        .expect("attest");
        digests.push(d);
    }

    // The blueprint on a bare remote, with the release key trusted and the
    // loopback registry's name, on every env branch.
    let key_path = dir.path().join("signing_key");
    platform_capstone::signing::generate_key(&key_path, "bench").expect("ssh key");
    let identity = Identity {
        name: "platform-capstone".into(),
        email: "daemon@example.com".into(),
    };
    let signer = Signer::load(&key_path, identity.clone()).expect("signer");
    let remote = dir.path().join("remote.git");
    platform_capstone::blueprint::init(
        &dir.path().join("work"),
        Some(&format!("file://{}", remote.display())),
        Some(&signer),
        &identity,
    )
    .expect("init");
    let mut repo = Git2Repo::open_remote(
        &format!("file://{}", remote.display()),
        &dir.path().join("cache"),
        None,
    )
    .expect("open")
    .with_signer(Signer::load(&key_path, identity).expect("signer"));
    repo.fetch().expect("fetch");
    let daemon_line = signer.allowed_signers_line().expect("line");
    for branch in ["env/dev", "env/staging"] {
        let (public, host, daemon_line, first) = (
            public.clone(),
            host.clone(),
            daemon_line.clone(),
            digests[0].clone(),
        );
        repo.commit_change(branch, "bench setup", &mut |tree: &dyn TreeReader| {
            let mut changes = vec![
                FileChange {
                    path: "policies/keys/release-ci.pub".into(),
                    content: Some(public.clone().into_bytes()),
                },
                FileChange {
                    path: "policies/trust.toml".into(),
                    content: Some(
                        b"[[keys]]\nname = \"release-ci\"\npath = \"keys/release-ci.pub\"\n"
                            .to_vec(),
                    ),
                },
                FileChange {
                    path: "policies/allowed_signers".into(),
                    content: Some(format!("{daemon_line}\n").into_bytes()),
                },
            ];
            for f in [
                "overlays/base/deployment.yaml",
                "overlays/dev/kustomization.yaml",
                "overlays/staging/kustomization.yaml",
            ] {
                let text = tree.read_string(f)?.replace("localhost:5000", &host);
                let text = text.replace(
                    "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                    &first,
                );
                changes.push(FileChange {
                    path: f.into(),
                    content: Some(text.into_bytes()),
                });
            }
            Ok(Some(changes))
        })
        .expect("setup commit");
    }

    let mut render_ms = Vec::new();
    let mut gates_ms = Vec::new();
    let mut promote_ms = Vec::new();
    let mut total_ms = Vec::new();
    for i in 0..10 {
        // Alternate the digest on dev so every promotion is a real commit.
        let d = digests[(i + 1) % 2].clone();
        let dev_head = {
            let prev = digests[i % 2].clone();
            repo.commit_change("env/dev", "bench: pin", &mut |tree: &dyn TreeReader| {
                let f = "overlays/dev/kustomization.yaml";
                let text = tree.read_string(f)?.replace(&prev, &d);
                Ok(Some(vec![FileChange {
                    path: f.into(),
                    content: Some(text.into_bytes()),
                }]))
            })
            .expect("pin");
            repo.resolve("env/dev").expect("head")
        };
        let total = Instant::now();
        let t = Instant::now();
        let tree = repo.reader(&dev_head).expect("tree");
        let cfg = load_repo(tree.as_ref());
        let dev = cfg.env("dev").expect("dev").clone();
        let staging = cfg.env("staging").expect("staging").clone();
        let rendered =
            platform_capstone::render::render(tree.as_ref(), &dev.overlay).expect("render");
        let images = platform_capstone::render::images(&rendered);
        render_ms.push(ms(t));
        let t = Instant::now();
        let checks = run::run(
            tree.as_ref(),
            &rendered,
            &dev.gates,
            &reg,
            chrono::Utc::now(),
        );
        assert!(checks.passed(), "{checks:?}");
        gates_ms.push(ms(t));
        drop(tree);
        let t = Instant::now();
        let c = promote::promote(
            &mut repo,
            &signer,
            "rel-bench",
            &dev,
            &staging,
            &dev_head,
            &images,
            &checks,
            None,
            0,
        )
        .expect("promote");
        assert!(c.is_some(), "no promotion commit");
        promote_ms.push(ms(t));
        total_ms.push(ms(total));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!("release decision for the blueprint (median of 10, analysis excluded):");
    println!(
        "  render at a commit (git):                 {:>7.1} ms",
        median(&mut render_ms)
    );
    println!(
        "  gates (signature, vulnerability, Rego):   {:>7.1} ms",
        median(&mut gates_ms)
    );
    println!(
        "  promotion commit + CAS push + note:       {:>7.1} ms",
        median(&mut promote_ms)
    );
    println!(
        "  total:                                    {:>7.1} ms (goal < 500 ms)",
        median(&mut total_ms)
    );
}
