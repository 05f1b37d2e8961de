//! Golden suite: our renderer vs the reference kustomize (v5.5.0).
//!
//! Each directory under `tests/golden/cases/` is a config tree; it renders
//! `overlay/` when present, else itself. `expected.yaml` beside it was
//! produced by the reference kustomize through `scripts/golden-update`. The
//! output must be byte-identical: same objects, order, values, hash
//! suffixes, and the same quoting and line folding.

use platform_capstone::render;
use platform_capstone::source::DirReader;
use platform_capstone::yaml;
use std::path::{Path, PathBuf};
use std::process::Command;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/cases");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/golden/cases")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    out.sort();
    out
}

fn overlay_of(case: &Path) -> &'static str {
    if case.join("overlay").is_dir() {
        "overlay"
    } else {
        ""
    }
}

fn ours(case: &Path) -> Result<String, String> {
    let reader = DirReader::open(case).map_err(|e| e.to_string())?;
    let rendered = render::render(&reader, overlay_of(case)).map_err(|e| e.to_string())?;
    Ok(rendered.to_yaml())
}

/// Parse and re-print: the canonical form both sides are compared in.
fn canonical(name: &str, text: &str) -> String {
    let docs = yaml::documents(name, text).unwrap_or_else(|e| panic!("{name}: {e}"));
    yaml::to_string(&docs).expect("serialise")
}

fn compare(label: &str, mut expected_for: impl FnMut(&Path) -> Option<String>) {
    let cases = cases();
    assert!(
        cases.len() >= 63,
        "the golden suite must have at least 40 cases"
    );
    let mut failures = Vec::new();
    let mut byte_identical = 0;
    let mut compared = 0;
    for case in &cases {
        let name = case
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("?")
            .to_string();
        let Some(expected) = expected_for(case) else {
            continue;
        };
        compared += 1;
        match ours(case) {
            Err(e) => failures.push(format!("{name}: render failed: {e}")),
            Ok(got) => {
                if got == expected {
                    byte_identical += 1;
                }
                // Both sides must parse; then compare the exact bytes.
                let _ = (canonical(&name, &expected), canonical(&name, &got));
                if got != expected {
                    let diff = similar::TextDiff::from_lines(&expected, &got)
                        .unified_diff()
                        .header("kustomize", "platform-capstone")
                        .to_string();
                    failures.push(format!("{name}:\n{diff}"));
                }
            }
        }
    }
    println!(
        "{label}: {compared} cases, {} match, {byte_identical} byte-identical",
        compared - failures.len()
    );
    assert_eq!(
        compared,
        cases.len(),
        "{label}: every case found must be compared; {} have no expected output",
        cases.len() - compared
    );
    assert!(
        failures.is_empty(),
        "{} of {compared} cases differ ({label}):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_golden_case_matches_the_checked_in_reference_output() {
    compare("checked-in", |case| {
        std::fs::read_to_string(case.join("expected.yaml")).ok()
    });
}

/// The reference kustomize `scripts/lib/kustomize.sh` builds (v5.5.0, in a
/// cache dir outside the repo), or `$PC_KUSTOMIZE`.
pub fn reference_kustomize() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("PC_KUSTOMIZE") {
        return Some(PathBuf::from(p));
    }
    let cache = std::env::var_os("PC_TOOLS_CACHE")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_CACHE_HOME")
                .map(|c| PathBuf::from(c).join("platform-capstone/tools"))
        })
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/platform-capstone/tools"))
        })?;
    Some(cache.join("kustomize-v5.5.0/kustomize")).filter(|p| p.is_file())
}

/// Opt-in (`cargo test -- --ignored`): runs the reference kustomize on
/// every case now, which CI does not build (a minute of Go); the
/// checked-in outputs above are the ones `scripts/golden-update` took
/// from it.
#[test]
#[ignore = "needs the reference kustomize: run scripts/golden-update once (it builds it), then --ignored"]
fn every_golden_case_matches_the_reference_kustomize_live() {
    let Some(kustomize) = reference_kustomize() else {
        panic!(
            "the reference kustomize is not built: run scripts/golden-update (or set PC_KUSTOMIZE)"
        );
    };
    compare("live kustomize", |case| {
        let dir = match overlay_of(case) {
            "" => case.to_path_buf(),
            o => case.join(o),
        };
        let out = Command::new(&kustomize)
            .arg("build")
            .arg(&dir)
            .output()
            .expect("kustomize");
        assert!(
            out.status.success(),
            "kustomize build {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    });
}
