//! The systemd unit: `systemd-analyze verify` is clean and the offline
//! security exposure is 2.5 or lower (issue 7). ExecStart points at the
//! binary under test so verify can check it exists and is executable.

use std::process::Command;

#[test]
fn the_unit_verifies_and_scores_low_exposure() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/systemd/platform-capstone.service"
    ))
    .expect("unit");
    assert!(
        unit.contains("Type=notify") && unit.contains("WatchdogSec="),
        "{unit}"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("platform-capstone.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/platform-capstone",
            env!("CARGO_BIN_EXE_platform-capstone"),
        ),
    )
    .expect("write");
    let verify = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (apt-get install systemd)");
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(verify.status.success(), "verify failed:\n{out}");
    assert!(
        !out.contains(path.to_str().expect("utf8")),
        "verify complained about the unit:\n{out}"
    );
    let security = Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&path)
        .output()
        .expect("systemd-analyze security");
    let text = String::from_utf8_lossy(&security.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("exposure level for platform-capstone.service:")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    eprintln!("systemd-analyze security --offline=true: {score}");
    assert!(score <= 2.5, "exposure {score} > 2.5:\n{text}");
}
