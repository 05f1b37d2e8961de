//! Local stack figures ("local up cold and warm; time to deploy one
//! version; time for a weight change to show in traffic"), on a fresh
//! state dir with free ports. Needs the static demo binary: run
//! `source scripts/lib/deps.sh && pc_build_demo` (scripts/test does) or set
//! PLATFORM_CAPSTONE_DEMO_BIN.
//!
//! `cargo bench --bench local_stack`

use platform_capstone::local::{PortChoice, Stack, images};
use platform_capstone::ports::{Split, Target, Track, TrafficRouter, Workload};
use std::time::{Duration, Instant};

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let bin = std::env::var("PLATFORM_CAPSTONE_DEMO_BIN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/demo-static/x86_64-unknown-linux-gnu/release/demo")
        });
    assert!(
        bin.is_file(),
        "{}: build it with pc_build_demo (scripts/lib/deps.sh)",
        bin.display()
    );
    let dir = tempfile::tempdir().expect("tmp");
    let stack = Stack::new(dir.path()).expect("stack");
    let routes = vec![("bench".to_string(), "demo".to_string())];

    let t = Instant::now();
    let state = stack
        .up(&routes, PortChoice::Auto, &mut |_| {})
        .expect("up");
    let cold = ms(t);
    let t = Instant::now();
    stack.up(&[], PortChoice::Auto, &mut |_| {}).expect("up");
    let warm = ms(t);

    let (private, _) = platform_capstone::gates::cosign::generate_key_pair().expect("key");
    let sk = platform_capstone::gates::cosign::load_signing_key(&private).expect("key");
    let t = Instant::now();
    let published = images::publish(
        &stack.podman_config(),
        &bin,
        &Stack::registry_host(&state),
        &images::good_and_bad("1.0.0"),
        &sk,
        &mut |_| {},
    )
    .expect("images");
    let images_ms = ms(t);

    let objects = |image: &str| -> Vec<yaml_serde::Value> {
        yaml_serde::from_str::<Vec<yaml_serde::Value>>(&format!(
            "- apiVersion: apps/v1
  kind: Deployment
  metadata: {{name: demo}}
  spec:
    replicas: 1
    template:
      metadata: {{labels: {{app: demo}}}}
      spec:
        containers:
          - name: demo
            image: {image}
            ports: [{{name: http, containerPort: 8080}}]
            readinessProbe: {{httpGet: {{path: /healthz, port: http}}}}
"
        ))
        .expect("yaml")
    };
    let podman = stack.podman().expect("podman");
    let w = |track| Workload {
        namespace: "bench".into(),
        app: "demo".into(),
        track,
    };
    let mut deploy = Vec::new();
    let mut stable = None;
    for i in 0..3 {
        let t = Instant::now();
        let r = podman
            .apply(
                &w(Track::Stable),
                &objects(&published[0].reference),
                &format!("bench-{i}"),
            )
            .expect("apply");
        deploy.push(ms(t));
        podman.settle(&w(Track::Stable)).expect("settle");
        stable = Some(r);
    }
    let stable = stable.expect("stable");
    let canary = podman
        .apply(
            &w(Track::Canary),
            &objects(&published[1].reference),
            "bench-canary",
        )
        .expect("canary");
    let router = stack.router();
    let front = format!("http://127.0.0.1:{}/", state.routes[0].port);
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let (mut to_canary, mut to_stable) = (Vec::new(), Vec::new());
    for round in 0..10 {
        let (pct, want) = if round % 2 == 0 {
            (100, "1.0.0-bad")
        } else {
            (0, "version 1.0.0\n")
        };
        let split = Split {
            stable: stable.endpoints.clone(),
            canary: canary.endpoints.clone(),
            canary_percent: pct,
        };
        let t = Instant::now();
        router.route("bench", "demo", &split).expect("route");
        loop {
            if let Ok(body) = client.get(&front).send().and_then(|r| r.text())
                && body.contains(want)
            {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "weight change never showed"
            );
        }
        if pct == 100 {
            to_canary.push(ms(t));
        } else {
            to_stable.push(ms(t));
        }
    }
    stack.down(&mut |_| {}).expect("down");

    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    println!("local up, cold (3 processes, fresh dir):  {cold:>8.0} ms");
    println!("local up, warm (all running):             {warm:>8.0} ms");
    println!("demo images, build+push+sign+attest (2):  {images_ms:>8.0} ms");
    println!(
        "deploy one version, kube play -> ready:    {:>8.0} ms (median of {}; {:?})",
        median(&mut deploy.clone()),
        deploy.len(),
        deploy.iter().map(|d| d.round()).collect::<Vec<_>>()
    );
    // The bad canary answers 300 ms late by design: that is in its figure.
    println!(
        "weight 0 -> 100% canary, first canary answer: {:>5.1} ms (median of {}; the bad canary adds 300 ms per request)",
        median(&mut to_canary.clone()),
        to_canary.len()
    );
    println!(
        "weight 100 -> 0% canary, first stable answer: {:>5.1} ms (median of {})",
        median(&mut to_stable.clone()),
        to_stable.len()
    );
}
