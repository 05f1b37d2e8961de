//! The drills on the real local stack, through the binary — rollback and
//! the ones whose lab breaks something else for real (a live edit through
//! podman, Prometheus killed, the engine killed): each passes, its report
//! holds measured timings, and the env is back where it started; a fault the gate cannot catch (SLOs set too loose on
//! purpose) makes the rollback drill fail and exit non-zero.

use crate::support::world::{self, World, live_image, signed_commit};
use crate::support::{self, git};
use platform_capstone::local::images;
use std::path::Path;

fn drill(
    w: &World,
    scenario: &str,
    key: &Path,
    extra: &[&str],
) -> (Option<i32>, serde_json::Value) {
    let bin = support::demo_binary();
    let o = w
        .cmd(&[
            "drill",
            "--config",
            "daemon.toml",
            "--env",
            "dev",
            "--scenario",
            scenario,
            "-o",
            "json",
        ])
        .arg("--key")
        .arg(key)
        .arg("--demo-binary")
        .arg(&bin)
        .args(extra)
        .output()
        .expect("drill");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!(
        "$ platform-capstone drill --scenario {scenario}\n{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&out).expect("drill json");
    (o.status.code(), v["runs"][0].clone())
}

fn phase(run: &serde_json::Value, name: &str) -> u64 {
    run["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p[0] == name)
        .and_then(|p| p[1].as_u64())
        .unwrap_or_else(|| panic!("no phase {name}: {run}"))
}

#[test]
fn the_drills_pass_on_the_real_stack_and_a_loose_gate_fails_the_rollback_drill() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_path_buf();
    let (_turn, shared) = world::shared_stack();
    let (stack, local, registry) = (&shared.stack, shared.local.clone(), shared.registry.clone());
    let (w, keys) = World::create(
        &dir,
        &local,
        &registry,
        &|_, _| {},
        "poll_interval = \"2s\"\n",
    );
    let (remote, cosign) = (w.remote.clone(), keys.cosign);
    let key_file = dir.join("cosign.key");
    std::fs::write(&key_file, &keys.cosign_private).expect("key");
    let good = images::publish(
        &stack.podman_config(),
        &support::demo_binary(),
        &registry,
        &[images::good_and_bad("1.0.0")[0].clone()],
        &cosign,
        &mut |l| eprintln!("{l}"),
    )
    .expect("publish")
    .remove(0);
    let (code, out) = w.release(&["--version", "1.0.0", "--until", "dev"]);
    assert_eq!(code, Some(0), "{out}");
    let start_head_tree = git(&remote, &["rev-parse", "env/dev^{tree}"]);

    // rollback: the drill's output lines from real measurements, and the
    // same run's report (JSON, as `-o json` prints it) in the state dir.
    let text = w
        .cmd(&[
            "drill",
            "--config",
            "daemon.toml",
            "--scenario",
            "rollback",
            "--env",
            "dev",
        ])
        .arg("--key")
        .arg(&key_file)
        .arg("--demo-binary")
        .arg(support::demo_binary())
        .output()
        .expect("drill text");
    let stdout = String::from_utf8_lossy(&text.stdout);
    eprintln!(
        "$ platform-capstone drill --scenario rollback\n{stdout}{}",
        String::from_utf8_lossy(&text.stderr)
    );
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("rollback: success in "),
        "the drill's first line:\n{stdout}"
    );
    assert!(
        stdout.lines().nth(1).is_some_and(
            |l| l.starts_with("post_check: error budget and latency returned to baseline")
        ),
        "{stdout}"
    );
    assert!(text.status.success());
    let report = std::fs::read_dir(dir.join("state/drills/dev"))
        .expect("reports")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-rollback.json"))
        .expect("the rollback drill's JSON report");
    let run: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("report json");
    assert_eq!(run["restored"], true);
    for p in [
        "detect",
        "to_stable",
        "fault_to_stable",
        "revert",
        "healthy",
        "recovery",
        "drill",
    ] {
        assert!(phase(&run, p) > 0 || p == "to_stable", "{p}: {run}");
    }
    assert!(phase(&run, "recovery") >= phase(&run, "detect"));
    assert!(phase(&run, "drill") >= phase(&run, "recovery"));
    let post = run["post_check"].as_str().expect("post check");
    assert!(
        post.starts_with("error budget and latency returned to baseline (availability"),
        "{post}"
    );
    let revert = git(&remote, &["log", "--format=%s", "-3", "env/dev"]);
    assert!(revert.contains("revert rel-"), "{revert}");
    assert_eq!(
        git(&remote, &["rev-parse", "env/dev^{tree}"]),
        start_head_tree,
        "dev's tree is back where it started"
    );
    assert_eq!(live_image(stack, "demo-dev"), good.reference);
    let reports: Vec<_> = std::fs::read_dir(dir.join("state/drills/dev"))
        .expect("reports")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        reports.iter().any(|f| f.ends_with("-rollback.md"))
            && reports.iter().any(|f| f.ends_with("-rollback.json")),
        "{reports:?}"
    );
    let note = git(
        &remote,
        &["notes", "--ref", "platform-capstone", "show", "env/dev"],
    );
    assert!(
        note.contains("\"drills\"") && note.contains("\"rollback\""),
        "{note}"
    );

    // The scenarios whose lab breaks something else for real pass and
    // leave dev as they found it: a live edit through podman, Prometheus
    // killed and started again, the engine killed in a child process. The
    // others act only through what the rollback drill above and
    // tests/rollback.rs already do for real (publish an image, rename the
    // remote, roll back by command); their decisions are the engine
    // scenarios' `*_drill_*` over the fakes, and all seven run 10/10 on the
    // quickstart's stack.
    for scenario in ["config-drift", "metrics-outage", "crash-mid-rollout"] {
        let (code, run) = drill(&w, scenario, &key_file, &[]);
        assert_eq!(code, Some(0), "{scenario}: {run}");
        assert_eq!(run["restored"], true, "{scenario}");
        assert!(
            !run["phases"].as_array().expect("phases").is_empty(),
            "{scenario}: measured phases"
        );
        assert_eq!(live_image(stack, "demo-dev"), good.reference, "{scenario}");
    }

    // SLOs set too loose on purpose: the fault passes the gate, the drill
    // says so, exits non-zero, and still puts dev back.
    let work = dir.join("config");
    git(&work, &["checkout", "-q", "env/dev"]);
    git(&work, &["pull", "-q", "--ff-only", "origin", "env/dev"]);
    let p = work.join("envs/dev.toml");
    let t = std::fs::read_to_string(&p).expect("env");
    // Availability alone, and loose: the latency SLO goes (a p99 against a
    // few-millisecond baseline is at the mercy of a busy machine), and the
    // error budget swallows the 30% fault whole.
    let latency = t
        .find("[[slo]]\nname = \"latency-p99\"")
        .expect("latency slo");
    let gates = t.find("[gates]").expect("gates");
    let loose = format!("{}{}", &t[..latency], &t[gates..])
        .replace("objective = 0.995", "objective = 0.1")
        .replace("max_regression = 0.01", "max_regression = 1.0");
    assert!(loose.contains("objective = 0.1") && !loose.contains("latency-p99"));
    std::fs::write(&p, loose).expect("write");
    signed_commit(
        &work,
        &dir.join("platform_key"),
        &["-q", "-am", "dev: SLOs loosened (drill test)"],
    );
    git(&work, &["push", "-q", "origin", "env/dev"]);
    let (code, run) = drill(&w, "rollback", &key_file, &["--fault-latency-ms", "0"]);
    assert_eq!(code, Some(1), "{run}");
    let caught = run["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["what"] == "fault caught by the health gate")
        .expect("check")
        .clone();
    assert_eq!(caught["ok"], false, "{run}");
    assert_eq!(run["restored"], true, "{run}");
    assert_eq!(live_image(stack, "demo-dev"), good.reference);

    // The runbooks' first looks after a drill: the audit trail and the stack.
    let (code, out) = w.run(&["audit", "list", "--env", "dev", "--config", "daemon.toml"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("failed"),
        "the drills' reverted releases are listed:\n{out}"
    );
    let (code, out) = w.run(&["local", "status"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("demo-dev"), "{out}");
}
