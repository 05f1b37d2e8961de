//! Gate benchmark (the parts that exist): the admission gate with the
//! blueprint's real Rego policies over 500 rendered objects, µs per
//! object. Goal (issue 4): admission under 1 ms per object.

use platform_capstone::blueprint;
use platform_capstone::gates::admission::AdmissionGate;
use platform_capstone::source::DirReader;
use std::time::Instant;

fn main() {
    let dir = tempfile::tempdir().expect("tmp");
    blueprint::write_files(dir.path()).expect("write blueprint");
    let reader = DirReader::open(dir.path()).expect("open");
    let prod = platform_capstone::render::render(&reader, "overlays/prod")
        .expect("render")
        .objects;
    // 500 objects: the prod release repeated under distinct names.
    let mut objects = Vec::new();
    for i in 0.. {
        for o in &prod {
            if objects.len() == 500 {
                break;
            }
            let mut o = o.clone();
            if let Some(serde_yaml::Value::Mapping(meta)) = o.get_mut("metadata") {
                meta.insert("name".into(), format!("demo-{i}").into());
            }
            objects.push(o);
        }
        if objects.len() == 500 {
            break;
        }
    }
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 25).expect("date");
    let t = Instant::now();
    let mut gate = AdmissionGate::load(&reader).expect("load");
    let load = t.elapsed();
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        let v = gate.evaluate(&objects, today).expect("evaluate");
        assert_eq!(v.outcome, platform_capstone::model::Outcome::Pass);
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "admission gate: load {:.1} ms; 500 objects in {:.1} ms = {:.0} µs per object (best of 5)",
        load.as_secs_f64() * 1e3,
        best * 1e3,
        best * 1e6 / 500.0
    );
}
