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
    assert_eq!(o.status.code(), Some(4));
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
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains("refusing to overwrite"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(d.join("k")).expect("read"), before);

    // a missing signing key names the file and the fix
    let o = bin(d, &["init", "fresh", "--signing-key", "nope"]);
    assert_eq!(o.status.code(), Some(4));
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
    assert_eq!(o.status.code(), Some(4));
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
        "validate",
        "init",
        "status",
        "keygen",
        "render",
        "diff",
        "check",
        "sign",
        "attest",
        "local",
        "release",
        "approve",
        "audit",
        "rollback",
        "drift",
        "drill",
        "windows",
        "daemon",
        "verify-bundle",
    ] {
        assert!(top.contains(cmd), "{cmd} missing from --help");
        let h = bin(d, &[cmd, "--help"]);
        assert!(h.status.success());
        assert!(
            stdout(&h).len() > 400,
            "{cmd} --help is too thin:\n{}",
            stdout(&h)
        );
        // `-h` starts with its own summary, as listed at the top; `--help`
        // with its long explanation.
        let short = stdout(&bin(d, &[cmd, "-h"]));
        let first = short.lines().next().unwrap_or_default().to_string();
        assert_ne!(
            stdout(&h).lines().next(),
            Some(first.as_str()),
            "{cmd} --help lost its long explanation"
        );
        let listed = top
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{cmd} ")))
            .unwrap_or_default()
            .to_string();
        assert!(
            listed.trim_end().ends_with(first.trim()),
            "{cmd} --help starts with {first:?}, the list says {listed:?}"
        );
    }
    assert!(top.contains("Exit codes (every command)"), "{top}");
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

/// One row of the exit-code table: arguments, `$PLATFORM_CAPSTONE_CONFIG`
/// (None: unset), the code, and a fragment of stderr (or stdout for 0/1).
type Case<'a> = (Vec<&'a str>, Option<&'a Path>, i32, &'a str);

#[test]
fn every_command_follows_the_exit_code_convention() {
    let f = Fixture::new();
    let config = f.daemon_config("", None);
    let cfg = config.to_str().expect("utf8");
    let work = f.path("work");
    let w = work.to_str().expect("utf8");
    let missing = "/nonexistent/platform-capstone.toml";
    let tmp = tempfile::tempdir().expect("tmp");
    let man = tmp.path().join("man");
    let man_dir = man.to_str().expect("utf8");
    let key = tmp.path().join("k");
    std::fs::write(&key, "not a key").expect("write");
    let k = key.to_str().expect("utf8");
    let predicate = tmp.path().join("predicate.json");
    std::fs::write(&predicate, "{}").expect("write");
    let p = predicate.to_str().expect("utf8");
    let dev_overlay = format!("{w}/overlays/dev");
    let nope_overlay = format!("{w}/overlays/nope");
    let cases: Vec<Case> = vec![
        // validate: 0 valid, 1 invalid (validate_prints_every_problem_and_fails), 2, 4
        (
            vec!["validate", "--repo", w],
            None,
            0,
            "ok: 3 environment(s)",
        ),
        (vec!["validate", "--bogus"], None, 2, "unexpected argument"),
        (
            vec!["validate", "--repo", w, "--rev", "nope"],
            None,
            4,
            "revision \"nope\" not found",
        ),
        // init / keygen (bad_input_fails_with_one_line_and_writes_nothing: 4)
        (vec!["init"], None, 2, "required"),
        (vec!["keygen", "--out"], None, 2, "a value is required"),
        // status
        (
            vec!["status", "--repo", w, "--config", cfg],
            None,
            2,
            "cannot be used with",
        ),
        (
            vec!["status", "--repo", "/nonexistent"],
            None,
            4,
            "cannot open git repository",
        ),
        (vec!["status", "--config", cfg], None, 0, "env/prod"),
        // render
        (vec!["render", "--root", w], None, 2, "required"),
        (
            vec!["render", "--root", w, "--overlay", &dev_overlay],
            None,
            0,
            "kind: Deployment",
        ),
        (
            vec!["render", "--root", w, "--overlay", &nope_overlay],
            None,
            4,
            "overlays/nope",
        ),
        // diff: 1 when different (render::diff_* tests)
        (
            vec![
                "diff", "--repo", w, "--env", "dev", "--from", "env/dev", "--to", "env/dev",
            ],
            None,
            0,
            "",
        ),
        (
            vec![
                "diff", "--repo", w, "--env", "dev", "--from", "nope", "--to", "env/dev",
            ],
            None,
            4,
            "nope",
        ),
        (vec!["diff", "--repo", w], None, 2, "required"),
        // check: 1 when a gate fails (gates.rs)
        (vec!["check"], None, 2, "required"),
        (
            vec!["check", "--env", "dev", "--repo", "/nonexistent"],
            None,
            4,
            "cannot open git repository",
        ),
        // sign / attest
        (vec!["sign"], None, 2, "required"),
        (
            vec![
                "attest",
                "localhost:1/x@sha256:0000000000000000000000000000000000000000000000000000000000000000",
                "--key",
                k,
                "--predicate",
                p,
            ],
            None,
            4,
            "not a PEM key",
        ),
        // local: 1 when not up (local_commands_say_…)
        (
            vec!["local", "up", "--state-dir", man_dir, "--route", "no-slash"],
            None,
            2,
            "expected NAMESPACE/APP",
        ),
        // release: 3 waiting, 1 failed (release.rs)
        (
            vec!["release", "--config", cfg],
            None,
            2,
            "--version <VERSION>",
        ),
        (
            vec!["release", "--version", "1.0.0", "--config", missing],
            None,
            4,
            "cannot read config",
        ),
        (
            vec!["release", "--version", "1.0.0"],
            None,
            2,
            "no daemon config",
        ),
        // approve / rollback: 1 refused, 3 queued (rollback.rs)
        (vec!["approve", "--env", "prod"], None, 2, "required"),
        (
            vec!["rollback", "--env", "dev", "--config", cfg],
            None,
            2,
            "--reason <REASON>",
        ),
        // audit, with the config from the environment
        (vec!["audit", "list"], Some(config.as_path()), 0, "RELEASE"),
        (
            vec!["audit", "show", "nope"],
            Some(config.as_path()),
            4,
            "no such release",
        ),
        (
            vec!["audit", "list", "--config", missing],
            Some(config.as_path()),
            4,
            "cannot read config",
        ),
        // drift: 1 drift, 5 not measured (drift.rs)
        (
            vec!["drift", "--config", cfg, "--env", "qa"],
            None,
            2,
            "not a pinned environment",
        ),
        (
            vec!["drift", "--config", missing],
            None,
            4,
            "cannot read config",
        ),
        // drill: 1 a failed run (drill.rs)
        (
            vec![
                "drill",
                "--scenario",
                "rollback",
                "--config",
                cfg,
                "--fault-error-ratio",
                "2",
            ],
            None,
            2,
            "must be between 0 and 1",
        ),
        // windows
        (
            vec!["windows", "--env", "prod", "--repo", w],
            None,
            0,
            "promotion window(s)",
        ),
        (
            vec![
                "windows", "--env", "prod", "--repo", w, "--from", "tomorrow",
            ],
            None,
            2,
            "RFC 3339",
        ),
        (
            vec!["windows", "--env", "qa", "--repo", w],
            None,
            4,
            "envs/qa.toml",
        ),
        // daemon
        (
            vec!["daemon", "--config", missing],
            None,
            4,
            "cannot read config",
        ),
        (vec!["daemon", "--bogus"], None, 2, "unexpected argument"),
        // completions, man
        (vec!["completions", "bash"], None, 0, "complete -F"),
        (vec!["completions", "tcsh"], None, 2, "invalid value"),
        (vec!["man", "--dir", man_dir], None, 0, "man pages in"),
        (vec!["no-such-command"], None, 2, "unrecognized subcommand"),
    ];
    for (args, env, code, fragment) in cases {
        let mut c = Command::new(env!("CARGO_BIN_EXE_platform-capstone"));
        c.current_dir(tmp.path()).args(&args).env_remove("RUST_LOG");
        match env {
            Some(p) => c.env("PLATFORM_CAPSTONE_CONFIG", p),
            None => c.env_remove("PLATFORM_CAPSTONE_CONFIG"),
        };
        let o = c.output().expect("run");
        let (out, err) = (stdout(&o), stderr(&o));
        assert_eq!(
            o.status.code(),
            Some(code),
            "{args:?}\nstdout: {out}\nstderr: {err}"
        );
        let said = if code <= 1 { &out } else { &err };
        assert!(
            said.contains(fragment),
            "{args:?}: {fragment:?} not in\n{said}"
        );
        if code >= 2 {
            // One error line (clap's usage errors bring their own help lines).
            assert_eq!(err.matches("error:").count(), 1, "{args:?}: {err}");
            assert!(!err.contains("class="), "libgit2 noise: {err}");
        }
    }
    // The man pages are real roff, one per command.
    let release = std::fs::read_to_string(man.join("platform-capstone-release.1")).expect("page");
    assert!(
        release.starts_with(".ie \\n(.g .ds Aq") || release.contains(".TH"),
        "{release}"
    );
    assert!(release.contains("promotion"), "{release}");
}

#[test]
fn windows_lists_weekday_openings_at_nine_berlin_time_across_the_dst_change() {
    let dir = crate::support::blueprint_dir();
    let prod = dir.path().join("envs/prod.toml");
    let text = std::fs::read_to_string(&prod).expect("read");
    let text = text.replace(
        "{ schedule = \"0 9 * * Mon-Thu\", duration = \"7h\", timezone = \"UTC\" }",
        "{ schedule = \"0 9 * * 1-5\", duration = \"8h\", timezone = \"Europe/Berlin\" }",
    );
    assert!(text.contains("Europe/Berlin\" }"), "{text}");
    std::fs::write(&prod, text).expect("write");
    let repo = dir.path().to_str().expect("utf8");
    // Thursday before the spring change (Sunday 2026-03-29).
    let args = ["windows", "--env", "prod", "--repo", repo];
    let o = bin(
        dir.path(),
        &[
            &args[..],
            &["--from", "2026-03-26T12:00:00Z", "-n", "4", "-o", "json"],
        ]
        .concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["open"], true, "{v}");
    let spans: Vec<(String, String)> = v["openings"]
        .as_array()
        .expect("openings")
        .iter()
        .map(|o| {
            (
                o["opens"].as_str().unwrap_or("").into(),
                o["closes"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    let span = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        spans,
        vec![
            span("2026-03-26T12:00:00Z", "2026-03-26T16:00:00Z"), // Thu, open now, 17:00 CET
            span("2026-03-27T08:00:00Z", "2026-03-27T16:00:00Z"), // Fri 09:00 CET
            span("2026-03-30T07:00:00Z", "2026-03-30T15:00:00Z"), // Mon 09:00 CEST
            span("2026-03-31T07:00:00Z", "2026-03-31T15:00:00Z"), // Tue
        ]
    );
    // The text says it in local time, with the zone, and the closed reason.
    let o = bin(
        dir.path(),
        &[&args[..], &["--from", "2026-10-24T10:00:00Z", "-n", "2"]].concat(),
    );
    let out = stdout(&o);
    assert!(
        out.contains(
            "closed, outside its promotion windows; the next opens at 2026-10-26T08:00:00+00:00"
        ),
        "{out}"
    );
    assert!(out.contains("Mon 2026-10-26 09:00 CET"), "{out}");
    assert!(out.contains("Tue 2026-10-27 17:00 CET"), "{out}");
    // Inside the year-end freeze, it says so.
    let o = bin(
        dir.path(),
        &[&args[..], &["--from", "2026-12-22T10:00:00Z", "-o", "yaml"]].concat(),
    );
    let out = stdout(&o);
    assert!(out.contains("reason: inside a deny window (0 0 20 12 * (Europe/Berlin)) until 2027-01-01T23:00:00+00:00"), "{out}");
    assert!(out.contains("opens: 2027-01-04T08:00:00Z"), "{out}");
}
