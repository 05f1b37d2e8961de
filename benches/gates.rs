//! Gate benchmark: a release of 10 images / 500 objects, with the registry
//! (docker-registry) on loopback, signatures and vulnerability attestations
//! made by our own `sign`/`attest` code, and the blueprint's Rego policies.
//! Prints ms per gate and admission µs per object. Goals (issue 4): the
//! whole gate run under 200 ms; admission under 1 ms per object.

use platform_capstone::adapters::local_registry::LocalRegistry;
use platform_capstone::adapters::registry::OciRegistry;
use platform_capstone::blueprint;
use platform_capstone::gates::{
    admission::AdmissionGate, cosign, oci_bundle, run, trust, vulnerability,
};
use platform_capstone::ports::Registry as _;
use platform_capstone::render::Rendered;
use platform_capstone::source::DirReader;
use std::time::Instant;

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

fn main() {
    let dir = tempfile::tempdir().expect("tmp");
    let root = dir.path().join("repo");
    blueprint::write_files(&root).expect("write blueprint");
    let registry = match LocalRegistry::start(&dir.path().join("registry")) {
        Ok(r) => r,
        Err(e) => {
            println!("gate benchmark skipped: {e}");
            return;
        }
    };
    let reg = OciRegistry::new(std::slice::from_ref(&registry.host)).expect("client");
    let repo = format!("{}/bench/app", registry.host);
    let (private, public) = cosign::generate_key_pair().expect("keygen");
    let key = cosign::load_signing_key(&private).expect("key");
    std::fs::create_dir_all(root.join("policies/keys")).expect("mkdir");
    std::fs::write(root.join("policies/keys/release-ci.pub"), public).expect("write");
    std::fs::write(
        root.join("policies/trust.toml"),
        "[[keys]]\nname = \"release-ci\"\npath = \"keys/release-ci.pub\"\n",
    )
    .expect("write");

    // 10 images, each signed and attested with a clean, fresh scan.
    let now = chrono::Utc::now();
    let scan = serde_json::json!({"scanner": {"uri": "pkg:github/aquasecurity/trivy", "result": {"Results": []}},
                                  "metadata": {"scanFinishedOn": now.to_rfc3339()}});
    let mut images = Vec::new();
    for i in 0..10 {
        let digest = reg
            .push_image(
                &format!("{repo}:v{i}"),
                b"{}".to_vec(),
                vec![format!("layer {i}").into_bytes()],
            )
            .expect("image");
        cosign::sign(&reg, &repo, &digest, &key).expect("sign");
        cosign::attest(
            &reg,
            &repo,
            &digest,
            cosign::VULN_PREDICATE,
            scan.clone(),
            &key,
        )
        .expect("attest");
        images.push(format!("{repo}@{digest}"));
    }

    // 500 objects: the prod release repeated; Deployments spread over the 10 images.
    let reader = DirReader::open(&root).expect("open");
    let prod = platform_capstone::render::render(&reader, "overlays/prod")
        .expect("render")
        .objects;
    let mut objects = Vec::new();
    let mut n = 0usize;
    while objects.len() < 500 {
        for o in &prod {
            if objects.len() == 500 {
                break;
            }
            let mut o = o.clone();
            if let Some(yaml_serde::Value::Mapping(meta)) = o.get_mut("metadata") {
                meta.insert("name".into(), format!("app-{n}").into());
            }
            if let Some(c) = o
                .get_mut("spec")
                .and_then(|s| s.get_mut("template"))
                .and_then(|t| t.get_mut("spec"))
                .and_then(|s| s.get_mut("containers"))
                .and_then(|c| c.get_mut(0))
            {
                c["image"] = images[n % 10].clone().into();
            }
            objects.push(o);
            n += 1;
        }
    }
    let rendered = Rendered { objects };
    let keys = trust::load(&reader).expect("trust");
    let policy = vulnerability::VulnPolicy::load(&reader).expect("policy");

    // Warm the connection pool once, then time each gate.
    let _ = cosign::check(
        &reg,
        &repo,
        images[0].split('@').nth(1).expect("digest"),
        &keys,
        now,
    );
    let t = Instant::now();
    for image in &images {
        let digest = image.split('@').nth(1).expect("digest");
        assert_eq!(
            cosign::check(&reg, &repo, digest, &keys, now).expect("check"),
            None
        );
    }
    let sig_ms = ms(t);
    let t = Instant::now();
    for image in &images {
        let digest = image.split('@').nth(1).expect("digest");
        let p = cosign::verified_predicate(&reg, &repo, digest, cosign::VULN_PREDICATE, &keys, now)
            .expect("reg")
            .expect("report");
        let report = vulnerability::parse_report(&p).expect("parse");
        assert!(vulnerability::evaluate(&policy, &repo, &report, now).is_empty());
    }
    let vuln_ms = ms(t);
    let t = Instant::now();
    let mut gate = AdmissionGate::load(&reader, &["main".to_string()]).expect("load");
    let v = gate
        .evaluate(&rendered.objects, now.date_naive())
        .expect("evaluate");
    assert_eq!(
        v.outcome,
        platform_capstone::model::Outcome::Pass,
        "{:?}",
        v.findings.first()
    );
    let adm_ms = ms(t);
    let env_gates = platform_capstone::config::load_repo(&reader)
        .env("prod")
        .expect("prod")
        .gates
        .clone();
    let t = Instant::now();
    let checks = run::run(&reader, &rendered, &env_gates, &reg, now);
    let total_ms = ms(t);
    assert!(checks.passed());
    println!("gate benchmark: 10 images, 500 objects, registry on loopback");
    println!("  artifact_signature   {sig_ms:7.1} ms");
    println!("  vulnerability_policy {vuln_ms:7.1} ms");
    println!(
        "  admission_policy     {adm_ms:7.1} ms  ({:.0} µs per object)",
        adm_ms * 1e3 / 500.0
    );
    println!("  all three (gates::run) {total_ms:5.1} ms  (goal < 200 ms)");

    // The same 500 objects over 10 images signed and attested in cosign 3's
    // layout (bundle referrers under the fallback tag: docker-registry has
    // no referrers API, so each lookup also pays its 404).
    let mut bundled = Vec::new();
    for i in 0..10 {
        let digest = reg
            .push_image(
                &format!("{repo}:b{i}"),
                b"{}".to_vec(),
                vec![format!("bundle layer {i}").into_bytes()],
            )
            .expect("image");
        oci_bundle::sign(&reg, &repo, &digest, &key, now).expect("sign");
        oci_bundle::attest(
            &reg,
            &repo,
            &digest,
            cosign::VULN_PREDICATE,
            scan.clone(),
            &key,
            now,
        )
        .expect("attest");
        bundled.push(format!("{repo}@{digest}"));
    }
    let mut objects = rendered.objects.clone();
    for (n, o) in objects.iter_mut().enumerate() {
        if let Some(c) = o
            .get_mut("spec")
            .and_then(|s| s.get_mut("template"))
            .and_then(|t| t.get_mut("spec"))
            .and_then(|s| s.get_mut("containers"))
            .and_then(|c| c.get_mut(0))
        {
            c["image"] = bundled[n % 10].clone().into();
        }
    }
    let rendered = Rendered { objects };
    let t = Instant::now();
    let checks = run::run(&reader, &rendered, &env_gates, &reg, now);
    let bundle_ms = ms(t);
    assert!(checks.passed(), "{:?}", checks.artifact_signature);
    println!("  all three, bundle layout {bundle_ms:5.1} ms  (goal < 200 ms)");
}
