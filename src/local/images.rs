//! The demo images: the static demo binary built into an OCI image from
//! scratch with buildah, pushed to the local registry, signed (cosign
//! keyed signature) and given a signed vulnerability attestation — one
//! "good" version and one "bad" whose fault (error ratio, added latency)
//! is baked into the image's environment, so it is a correctly signed
//! artifact that misbehaves.
//!
//! The attestation is honest about what it is: no vulnerability scanner
//! can be fetched on these machines, so its scanner is "static image
//! inventory" and it lists no findings for an image that holds one static
//! binary and nothing else.

use crate::adapters::podman::PodmanConfig;
use crate::adapters::process;
use crate::adapters::registry::OciRegistry;
use crate::gates::cosign;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Repository path of the demo under the registry host.
pub const DEMO_REPO: &str = "platform-capstone/demo";

/// One image to build.
#[derive(Debug, Clone)]
pub struct Variant {
    pub tag: String,
    pub env: Vec<(String, String)>,
}

/// `VERSION` (good) and `VERSION-bad` (30% errors, +300 ms).
pub fn good_and_bad(version: &str) -> Vec<Variant> {
    let bad = format!("{version}-bad");
    vec![
        Variant {
            tag: version.to_string(),
            env: vec![("VERSION".into(), version.to_string())],
        },
        Variant {
            tag: bad.clone(),
            env: vec![
                ("VERSION".into(), bad),
                ("FAULT_ERROR_RATIO".into(), "0.3".into()),
                ("FAULT_LATENCY_MS".into(), "300".into()),
            ],
        },
    ]
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Published {
    pub tag: String,
    /// `host/repo@sha256:…`
    pub reference: String,
    pub digest: String,
}

fn buildah(config: &PodmanConfig, args: &[&str]) -> Result<String, String> {
    let mut c = Command::new("buildah");
    c.env("CONTAINERS_CONF", &config.containers_conf)
        .env("CONTAINERS_STORAGE_CONF", &config.storage_conf)
        .env("CONTAINERS_REGISTRIES_CONF", &config.registries_conf)
        .args(args);
    process::run(&mut c, Duration::from_secs(300), None).map(|o| o.stdout.trim().to_string())
}

/// The vulnerability predicate for an image of one static binary.
pub fn inventory_predicate(now: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    serde_json::json!({
        "invocation": {"uri": "platform-capstone local demo-images", "parameters": null},
        "scanner": {
            "uri": "pkg:generic/platform-capstone/static-image-inventory",
            "version": env!("CARGO_PKG_VERSION"),
            "result": {"SchemaVersion": 2, "ArtifactType": "container_image", "Results": []}
        },
        "metadata": {"scanStartedOn": now.to_rfc3339(), "scanFinishedOn": now.to_rfc3339()}
    })
}

/// Builds, pushes, signs and attests every variant.
pub fn publish(
    config: &PodmanConfig,
    binary: &Path,
    registry_host: &str,
    variants: &[Variant],
    key: &p256::ecdsa::SigningKey,
    progress: &mut dyn FnMut(&str),
) -> Result<Vec<Published>, String> {
    if !binary.is_file() {
        return Err(format!(
            "{}: no demo binary; build it with scripts/demo-images (a static build of demo/)",
            binary.display()
        ));
    }
    let reg = OciRegistry::new(&[registry_host.to_string()]).map_err(|e| e.to_string())?;
    let repo = format!("{registry_host}/{DEMO_REPO}");
    let mut out = Vec::new();
    for v in variants {
        let ctr = buildah(config, &["from", "scratch"])?;
        let result = (|| {
            buildah(config, &["copy", &ctr, &binary.to_string_lossy(), "/demo"])?;
            let mut args: Vec<String> = [
                "config",
                "--entrypoint",
                "[\"/demo\"]",
                "--port",
                "8080",
                "--user",
                "65532:65532",
                "--label",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            args.push(format!("org.opencontainers.image.version={}", v.tag));
            for (k, val) in &v.env {
                args.push("--env".into());
                args.push(format!("{k}={val}"));
            }
            args.push(ctr.clone());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            buildah(config, &args)?;
            let local = format!("localhost/platform-capstone-demo:{}", v.tag);
            buildah(config, &["commit", "--quiet", &ctr, &local])?;
            let digest_file = config.work_dir.join(format!("digest-{}", v.tag));
            buildah(
                config,
                &[
                    "push",
                    "--quiet",
                    "--digestfile",
                    &digest_file.to_string_lossy(),
                    &local,
                    &format!("docker://{repo}:{}", v.tag),
                ],
            )?;
            let digest = std::fs::read_to_string(&digest_file)
                .map_err(|e| format!("{}: {e}", digest_file.display()))?
                .trim()
                .to_string();
            let _ = std::fs::remove_file(&digest_file);
            Ok::<String, String>(digest)
        })();
        let _ = buildah(config, &["rm", &ctr]);
        let digest = result?;
        progress(&format!("built and pushed {repo}:{} = {digest}", v.tag));
        cosign::sign(&reg, &repo, &digest, key).map_err(|e| e.to_string())?;
        cosign::attest(
            &reg,
            &repo,
            &digest,
            cosign::VULN_PREDICATE,
            inventory_predicate(chrono::Utc::now()),
            key,
        )
        .map_err(|e| e.to_string())?;
        progress(&format!("signed and attested {repo}@{digest}"));
        out.push(Published {
            tag: v.tag.clone(),
            reference: format!("{repo}@{digest}"),
            digest,
        });
    }
    Ok(out)
}
