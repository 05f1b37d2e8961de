//! Config drift in the pure core (issue 8): desired vs live for 1,000 and
//! 10,000 objects — the blueprint's Deployment repeated, live copies with
//! server-owned fields added and 1% changed. Goal: 10,000 under 500 ms.
//!
//! `cargo bench --bench drift`

use platform_capstone::ports::LiveObject;
use std::time::Instant;
use yaml_serde::Value;

fn main() {
    let dir = tempfile::tempdir().expect("tmp");
    platform_capstone::blueprint::write_files(dir.path()).expect("blueprint");
    let reader = platform_capstone::source::DirReader::open(dir.path()).expect("reader");
    let objects = platform_capstone::render::render(&reader, "overlays/prod")
        .expect("render")
        .objects;
    let deployment = objects
        .iter()
        .find(|o| o.get("kind").and_then(Value::as_str) == Some("Deployment"))
        .expect("deployment")
        .clone();
    for n in [1_000usize, 10_000] {
        let mut desired = Vec::with_capacity(n);
        let mut live = Vec::with_capacity(n);
        for i in 0..n {
            let mut d = deployment.clone();
            d["metadata"]["name"] = format!("app-{i}").into();
            let mut l = d.clone();
            l["metadata"]["uid"] = format!("uid-{i}").into();
            l["metadata"]["resourceVersion"] = "12345".into();
            l["status"] = yaml_serde::from_str("{replicas: 3, readyReplicas: 3}").expect("yaml");
            if i % 100 == 0 {
                l["spec"]["replicas"] = 9.into();
            }
            live.push(LiveObject {
                kind: "Deployment".into(),
                namespace: "prod".into(),
                name: format!("app-{i}"),
                object: l,
            });
            desired.push(d);
        }
        let t = Instant::now();
        let report = platform_capstone::drift::compare(&desired, &live, &[]);
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let modified = report
            .iter()
            .filter(|r| matches!(r.status, platform_capstone::drift::Status::Modified { .. }))
            .count();
        assert_eq!(modified, n / 100);
        println!("drift, {n:>6} objects: {ms:8.1} ms ({modified} modified; goal 10,000 < 500 ms)");
    }
}
