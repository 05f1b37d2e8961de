//! The Rego input builder and the admission gate: any YAML objects are
//! evaluated by the blueprint's policies to a verdict or an error, never a
//! panic or a crash (the evaluation budget bounds each object).
#![no_main]
use libfuzzer_sys::fuzz_target;
use platform_capstone::gates::admission::AdmissionGate;
use std::sync::{Mutex, OnceLock};

fn gate() -> &'static Mutex<AdmissionGate> {
    static GATE: OnceLock<Mutex<AdmissionGate>> = OnceLock::new();
    GATE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("pc-fuzz-blueprint-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        platform_capstone::blueprint::write_files(&dir).expect("blueprint");
        let reader = platform_capstone::source::DirReader::open(&dir).expect("open");
        Mutex::new(AdmissionGate::load(&reader, &["main".to_string()]).expect("policies"))
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(objects) = platform_capstone::yaml::documents("fuzz.yaml", text) else {
        return;
    };
    let Some(day) = chrono::NaiveDate::from_ymd_opt(2026, 11, 30) else {
        return;
    };
    if let Ok(mut g) = gate().lock() {
        let _ = g.evaluate(&objects, day);
    }
});
