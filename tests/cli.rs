//! The binary end to end: what a user types and sees.

use crate::support::Fixture;
use std::path::Path;
use std::process::{Command, Output};

fn bin(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
        .current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run platform-capstone")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn init_then_status_shows_every_env_signed_with_its_pins() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    let k = bin(
        d,
        &["keygen", "--out", "key", "--principal", "ops@example.com"],
    );
    assert!(k.status.success(), "{}", stderr(&k));
    let line = stdout(&k);
    assert!(
        line.starts_with("ops@example.com namespaces=\"git\" ssh-ed25519 "),
        "{line}"
    );
    std::fs::write(d.join("signers"), &line).expect("write");

    let i = bin(
        d,
        &[
            "init",
            "repo",
            "--remote",
            "remote.git",
            "--signing-key",
            "key",
            "--email",
            "ops@example.com",
        ],
    );
    assert!(i.status.success(), "{}", stderr(&i));
    assert!(
        stdout(&i).contains("branches: main, env/dev, env/staging, env/prod"),
        "{}",
        stdout(&i)
    );
    assert!(
        d.join("remote.git/refs/heads/env/prod").exists()
            || d.join("remote.git/packed-refs").exists()
    );

    let s = bin(
        d,
        &[
            "status",
            "--repo",
            "repo",
            "--allowed-signers",
            "signers",
            "-o",
            "json",
        ],
    );
    assert!(s.status.success(), "{}", stderr(&s));
    let rows: serde_json::Value = serde_json::from_slice(&s.stdout).expect("json");
    let rows = rows.as_array().expect("array");
    let envs: Vec<&str> = rows
        .iter()
        .map(|r| r["env"].as_str().expect("env"))
        .collect();
    assert_eq!(envs, vec!["dev", "staging", "prod"]);
    for r in rows {
        assert_eq!(r["signature"]["state"], "verified", "{r}");
        assert_eq!(r["signature"]["principal"], "ops@example.com");
        let digest = r["images"][0]["digest"].as_str().expect("digest");
        assert!(
            digest.starts_with("sha256:") && digest.len() == 71,
            "{digest}"
        );
    }

    // Without a trusted key file the signature is reported, not trusted.
    let t = bin(d, &["status", "--repo", "repo"]);
    assert!(t.status.success());
    let text = stdout(&t);
    assert!(
        text.lines().next().expect("header").starts_with("ENV"),
        "{text}"
    );
    assert!(text.contains("unverified"), "{text}");
}

#[test]
fn status_through_a_daemon_config_fetches_the_remote() {
    let f = Fixture::new();
    let config = f.daemon_config("", None);
    let s = bin(
        f.dir.path(),
        &["status", "--config", config.to_str().expect("utf8")],
    );
    assert!(s.status.success(), "{}", stderr(&s));
    let out = stdout(&s);
    // Checked against the pinned anchors, each env judged from its own branch.
    assert_eq!(
        out.matches("verified (platform@example.com)").count(),
        3,
        "{out}"
    );
    assert_eq!(out.matches(" ready ").count(), 3, "{out}");
}

#[test]
fn validate_prints_every_problem_and_fails() {
    let f = Fixture::new();
    let work = f.path("work");
    let ok = bin(&work, &["validate"]);
    assert!(ok.status.success(), "{}", stdout(&ok));
    assert!(
        stdout(&ok).starts_with("ok: 3 environment(s)"),
        "{}",
        stdout(&ok)
    );

    let dev = work.join("envs/dev.toml");
    let text = std::fs::read_to_string(&dev).expect("read");
    std::fs::write(
        &dev,
        text.replace("steps = [10, 50, 100]", "steps = [10, 50]")
            .replace("mode = \"report\"", "mode = \"nope\""),
    )
    .expect("write");
    let bad = bin(&work, &["validate"]);
    assert_eq!(bad.status.code(), Some(1));
    let out = stdout(&bad);
    assert!(
        out.contains(
            "envs/dev.toml: rollout.steps: the last step is not 100; end the steps with 100"
        ),
        "{out}"
    );
    assert!(out.contains("envs/dev.toml: drift.mode:"), "{out}");
    assert!(
        out.trim_end().ends_with("2 problem(s) in 1 file(s)"),
        "{out}"
    );

    // The committed tree is still valid: --rev reads git, not the disk.
    let rev = bin(&work, &["validate", "--rev", "env/dev"]);
    assert!(rev.status.success(), "{}", stdout(&rev));

    // An overlay that does not render is a problem too, named by env file.
    let k = work.join("overlays/prod/kustomization.yaml");
    let before = std::fs::read_to_string(&k).expect("read");
    std::fs::write(&k, format!("{before}helmCharts: []\n")).expect("write");
    let out = stdout(&bin(&work, &["validate"]));
    assert!(
        out.contains("envs/prod.toml: overlay: overlays/prod does not render: overlays/prod/kustomization.yaml: field `helmCharts` is not supported"),
        "{out}"
    );
    std::fs::write(&k, before).expect("restore");

    // So is a policy that does not parse: the admission gate would fail every release.
    let rego = work.join("policies/admission/images.rego");
    let before = std::fs::read_to_string(&rego).expect("read");
    std::fs::write(
        &rego,
        before.replace("deny contains msg if {", "deny contains msg if"),
    )
    .expect("write");
    let out = stdout(&bin(&work, &["validate"]));
    assert!(out.contains("policies/admission/images.rego:"), "{out}");
    std::fs::write(&rego, before).expect("restore");

    // And a trusted key that is not there.
    let trust = work.join("policies/trust.toml");
    let before = std::fs::read_to_string(&trust).expect("read");
    std::fs::write(
        &trust,
        "[[keys]]\nname = \"ci\"\npath = \"keys/missing.pub\"\n",
    )
    .expect("write");
    let out = stdout(&bin(&work, &["validate"]));
    assert!(
        out.contains("policies/trust.toml: keys[0].path: policies/keys/missing.pub: not found"),
        "{out}"
    );
    std::fs::write(&trust, before).expect("restore");

    let json = bin(&work, &["validate", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(v["valid"], false);
    assert_eq!(v["problems"].as_array().expect("problems").len(), 2);
}

#[test]
fn bad_input_fails_with_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // init into a non-empty directory
    std::fs::create_dir(d.join("busy")).expect("mkdir");
    std::fs::write(d.join("busy/file"), "keep").expect("write");
    let o = bin(d, &["init", "busy"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("busy: already exists and is not empty"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(d.join("busy")).expect("ls").count(), 1);

    // keygen over an existing key
    assert!(bin(d, &["keygen", "--out", "k"]).status.success());
    let before = std::fs::read(d.join("k")).expect("read");
    let o = bin(d, &["keygen", "--out", "k"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("refusing to overwrite"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(d.join("k")).expect("read"), before);

    // a missing signing key names the file and the fix
    let o = bin(d, &["init", "fresh", "--signing-key", "nope"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("nope: cannot read signing key") && e.contains("keygen"),
        "{e}"
    );
    assert!(!d.join("fresh").exists());

    // init pushing to a remote that already has the branches
    assert!(
        bin(d, &["init", "one", "--remote", "shared.git"])
            .status
            .success()
    );
    let o = bin(d, &["init", "two", "--remote", "shared.git"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("init only pushes to an empty repository"),
        "{}",
        stderr(&o)
    );
    assert!(
        !d.join("two").exists(),
        "a failed init leaves nothing behind"
    );
    assert_eq!(stderr(&o).lines().count(), 1, "one line: {}", stderr(&o));
}

#[test]
fn help_explains_every_command() {
    let d = Path::new(".");
    let top = stdout(&bin(d, &["--help"]));
    for cmd in [
        "validate", "init", "status", "keygen", "render", "diff", "check", "sign", "attest",
        "local", "release", "approve", "audit",
    ] {
        assert!(top.contains(cmd), "{cmd} missing from --help");
        let h = bin(d, &[cmd, "--help"]);
        assert!(h.status.success());
        assert!(
            stdout(&h).len() > 400,
            "{cmd} --help is too thin:\n{}",
            stdout(&h)
        );
    }
}

#[test]
fn local_commands_say_what_is_missing_and_what_is_not_set_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("stack");
    let state = state.to_str().expect("utf8");
    // Not set up: status says so and fails; down has nothing to stop.
    let o = bin(dir.path(), &["local", "status", "--state-dir", state]);
    assert!(!o.status.success());
    assert!(
        stdout(&o).contains("not set up: run `platform-capstone local up`"),
        "{}",
        stdout(&o)
    );
    let o = bin(dir.path(), &["local", "down", "--state-dir", state]);
    assert!(o.status.success(), "{}", stderr(&o));
    // No programs on PATH: one message naming every apt package, nothing started.
    let o = Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
        .current_dir(dir.path())
        .args(["local", "up", "--state-dir", state, "--ports", "auto"])
        .env("PATH", dir.path())
        .output()
        .expect("run");
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("apt-get install -y docker-registry haproxy prometheus podman buildah runc slirp4netns catatonit"),
        "{err}"
    );
    assert!(
        !dir.path().join("stack/stack.json").exists(),
        "state written on failure"
    );
    let o = bin(
        dir.path(),
        &["local", "up", "--state-dir", state, "--route", "no-slash"],
    );
    assert!(
        stderr(&o).contains("--route \"no-slash\": expected NAMESPACE/APP"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn release_refuses_bad_versions_before_writing_anything() {
    let f = Fixture::new();
    let config = f.daemon_config("", None);
    let config = config.to_str().expect("utf8");
    let before = f.remote_rev("env/dev");
    // A release file naming a tag, not a digest.
    let tagged = f.path("tagged.yaml");
    std::fs::write(
        &tagged,
        "images:\n  - localhost:5000/platform-capstone/demo:latest\n",
    )
    .expect("write");
    let o = bin(
        f.dir.path(),
        &[
            "release",
            "--config",
            config,
            "--version",
            tagged.to_str().expect("utf8"),
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("is not pinned by digest"),
        "{}",
        stderr(&o)
    );
    // A release file that does not cover the pinned image.
    let other = f.path("other.yaml");
    std::fs::write(
        &other,
        "images:\n  - localhost:5000/other@sha256:1111111111111111111111111111111111111111111111111111111111111111\n",
    )
    .expect("write");
    let o = bin(
        f.dir.path(),
        &[
            "release",
            "--config",
            config,
            "--version",
            other.to_str().expect("utf8"),
        ],
    );
    assert!(
        stderr(&o).contains("no digest for localhost:5000/platform-capstone/demo"),
        "{}",
        stderr(&o)
    );
    // Unknown env, unknown resume id.
    let o = bin(
        f.dir.path(),
        &[
            "release",
            "--config",
            config,
            "--version",
            "1.0.0",
            "--env",
            "qa",
        ],
    );
    assert!(
        stderr(&o).contains("--env qa: not a pinned environment"),
        "{}",
        stderr(&o)
    );
    let o = bin(
        f.dir.path(),
        &[
            "release",
            "--config",
            config,
            "--resume",
            "rel-2026-01-01-01",
        ],
    );
    assert!(
        stderr(&o).contains("no stopped release with this id"),
        "{}",
        stderr(&o)
    );
    assert_eq!(f.remote_rev("env/dev"), before, "nothing was committed");
}
