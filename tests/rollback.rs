//! Manual rollback end to end, through the binary, on the real local stack
//! and a real bare remote: after a complete release (the previous digests
//! live, a signed commit with the trailers, quarantine, the audit record);
//! a stranger's signature (refused, nothing changed); mid-canary (the
//! canary gone, the release stopped); with the remote renamed away (live at
//! once, `status` shows the hold) and a push in between (a conflict,
//! nothing forced). Through a daemon's API during a git outage, the commit
//! pushed by the daemon once git is back: `release::releases_…`.

use crate::support::world::{self, World, keygen, live_image, signed_commit};
use crate::support::{self, git};
use platform_capstone::local::images::{self, Variant};
use std::time::Duration;

#[test]
fn manual_rollback_is_live_at_once_committed_signed_and_survives_a_git_outage() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_path_buf();
    let (_turn, shared) = world::shared_stack();
    let (stack, local, registry) = (&shared.stack, shared.local.clone(), shared.registry.clone());
    let (w, keys) = World::create(&dir, &local, &registry, &|_, _| {}, "");
    // The on-call is a pinned operator; a stranger has a key of their own.
    w.pin_operator("oncall_key", "oncall@example.com");
    keygen(
        &dir,
        "stranger_key",
        "oncall@example.com",
        "platform-capstone-rollback",
    );

    let versions = ["1.0.0", "1.1.0", "1.2.0", "1.3.0"];
    let published = images::publish(
        &stack.podman_config(),
        &support::demo_binary(),
        &registry,
        &versions
            .iter()
            .map(|v| Variant {
                tag: v.to_string(),
                env: vec![("VERSION".into(), v.to_string())],
            })
            .collect::<Vec<_>>(),
        &keys.cosign,
        &mut |l| eprintln!("{l}"),
    )
    .expect("images");
    let image = |v: &str| {
        published
            .iter()
            .find(|p| p.tag == v)
            .expect("published")
            .clone()
    };
    let release = |v: &str| {
        let (code, out) = w.release(&["--version", v, "--until", "dev"]);
        assert_eq!(code, Some(0), "{out}");
        World::release_id(&out)
    };
    let rollback = |key: &str, extra: &[&str]| {
        let mut args = vec![
            "rollback",
            "--env",
            "dev",
            "--reason",
            "bad config value",
            "--key",
            key,
            "--principal",
            "oncall@example.com",
            "--config",
            "daemon.toml",
        ];
        args.extend_from_slice(extra);
        w.run(&args)
    };

    let pending = || {
        w.run(&[
            "rollback",
            "--env",
            "dev",
            "--pending",
            "--config",
            "daemon.toml",
        ])
    };

    // 1. After a complete release: the one before runs again, at once.
    let first = release("1.0.0");
    let second = release("1.1.0");
    assert_eq!(live_image(stack, "demo-dev"), image("1.1.0").reference);
    let head = w.head("env/dev");
    let (code, out) = rollback("stranger_key", &[]);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(w.head("env/dev"), head, "a stranger changes nothing");
    assert_eq!(live_image(stack, "demo-dev"), image("1.1.0").reference);
    let (code, out) = rollback("oncall_key", &["-o", "json"]);
    assert_eq!(code, Some(0), "{out}");
    let done: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(done["from"], second.as_str());
    assert_eq!(done["to"], first.as_str());
    assert_eq!(live_image(stack, "demo-dev"), image("1.0.0").reference);
    let commit = done["commit"]["commit"]
        .as_str()
        .expect("pushed")
        .to_string();
    assert_eq!(w.head("env/dev"), commit);
    assert!(w.verify(&commit), "git verify-commit {commit}");
    let body = git(&w.remote, &["log", "-1", "--format=%B", &commit]);
    for t in [
        format!("Release-Id: {first}"),
        format!("Rollback-Of: {second}"),
        "Actor: oncall@example.com (operator)".to_string(),
        "Reason: bad config value".to_string(),
    ] {
        assert!(body.lines().any(|l| l == t), "{t:?} missing:\n{body}");
    }
    let pins = git(
        &w.remote,
        &["show", "env/dev:overlays/dev/kustomization.yaml"],
    );
    assert!(pins.contains(&image("1.0.0").digest), "{pins}");
    let quarantine =
        std::fs::read_to_string(dir.join("state/quarantine.json")).expect("quarantine");
    assert!(quarantine.contains(&image("1.1.0").digest), "{quarantine}");
    let (code, out) = w.run(&["audit", "show", &second, "--config", "daemon.toml"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("rolled-back"), "{out}");

    // 2. Mid-canary: the running release stops, its canary goes first.
    let state_file = dir.join("state/releases/dev.json");
    let mut running = w
        .cmd(&[
            "release",
            "--config",
            "daemon.toml",
            "--version",
            "1.2.0",
            "--until",
            "dev",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("release");
    platform_capstone::adapters::process::wait_until(
        "the 1.2.0 canary to run",
        Duration::from_secs(120),
        || {
            std::fs::read_to_string(&state_file)
                .is_ok_and(|s| s.contains("\"phase\": \"canary\"") && s.contains("1.2.0"))
        },
    )
    .expect("canary");
    let (code, out) = rollback("oncall_key", &[]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(&format!("→ {first}")), "{out}");
    let status = running.wait().expect("release exits");
    assert!(
        !status.success(),
        "the release did not finish as if nothing happened"
    );
    assert_eq!(live_image(stack, "demo-dev"), image("1.0.0").reference);
    let pods = stack
        .podman()
        .expect("podman")
        .pods(Some("demo-dev"))
        .expect("pods");
    assert!(
        pods.iter().all(|p| !p.name.contains("canary")),
        "a canary pod is left: {pods:?}"
    );

    // 3. Git down: live at once, held (`status` says so); a push in
    // between: the queued commit is a reported conflict, nothing forced.
    // (Git back with nothing in between, through the daemon: the release
    // test's git outage.)
    let third = release("1.3.0");
    let away = dir.join("remote.away");
    std::fs::rename(&w.remote, &away).expect("git down");
    let (code, out) = rollback("oncall_key", &[]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("queued"), "{out}");
    assert_eq!(live_image(stack, "demo-dev"), image("1.0.0").reference);
    let (_, status_out) = w.run(&["status", "--config", "daemon.toml"]);
    assert!(
        status_out.contains(&format!(
            "dev: HELD by a pending rollback: rolled back {third} → {first}"
        )),
        "{status_out}"
    );
    std::fs::rename(&away, &w.remote).expect("git back");
    let work = dir.join("config");
    git(&work, &["checkout", "-q", "env/dev"]);
    git(&work, &["pull", "-q", "--ff-only", "origin", "env/dev"]);
    std::fs::write(work.join("NOTES.md"), "a hand edit\n").expect("write");
    git(&work, &["add", "NOTES.md"]);
    signed_commit(
        &work,
        &dir.join("platform_key"),
        &["-q", "-m", "docs: notes"],
    );
    git(&work, &["push", "-q", "origin", "env/dev"]);
    let theirs = w.head("env/dev");
    let (code, out) = pending();
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("NOT pushed"), "{out}");
    assert_eq!(w.head("env/dev"), theirs, "nothing forced");
    let (_, status_out) = w.run(&["status", "--config", "daemon.toml"]);
    assert!(status_out.contains("dev: HELD"), "{status_out}");
}
