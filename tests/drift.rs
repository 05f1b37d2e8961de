//! Drift on the real local stack, through the binary: a release live in
//! dev, then changes behind the tool's back made with podman directly.
//! A replaced pod is reported with its exact diff; a Secret-derived value
//! shows only as a masked hash (and appears in no output, report, note or
//! log); the demo switched to its fault mode after the release burns its
//! error budget and the release is handed back to the engine (rolled back
//! and reverted), but not while Prometheus is down (no data, no revert);
//! heal mode restores a modified and a deleted pod and audits the diff.

use crate::support::world::{self, World, live_image, signed_commit};
use crate::support::{self, git};
use platform_capstone::drill::tamper::{EnvEdit, tamper};
use platform_capstone::local::{PortChoice, Stack, images};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const SECRET_ONE: &str = "s3cr3t-one-7f3a";
const SECRET_TWO: &str = "s3cr3t-two-91c2";

/// dev gets a Secret its pods read through envFrom, and drift settings
/// short enough for a test (10s/5s burn windows at 2x).
fn dev_extras(work: &Path, _branch: &str) {
    let k = work.join("overlays/dev/kustomization.yaml");
    let mut t = std::fs::read_to_string(&k).expect("kustomization");
    t.push_str(&format!(
        "secretGenerator:\n  - name: demo-secrets\n    literals:\n      - API_TOKEN={SECRET_ONE}\npatches:\n  - path: secret-env.yaml\n"
    ));
    std::fs::write(&k, t).expect("write");
    std::fs::write(
        work.join("overlays/dev/secret-env.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: demo\nspec:\n  template:\n    spec:\n      containers:\n        - name: demo\n          envFrom:\n            - configMapRef:\n                name: demo-config\n            - secretRef:\n                name: demo-secrets\n",
    )
    .expect("patch");
    let e = work.join("envs/dev.toml");
    let mut t = std::fs::read_to_string(&e).expect("env");
    assert!(
        t.trim_end()
            .lines()
            .rev()
            .take(3)
            .any(|l| l.starts_with("mode")),
        "[drift] is the last table of envs/dev.toml"
    );
    t.push_str("grace = \"0s\"\nburn_windows = [{ long = \"10s\", short = \"5s\", factor = 2.0, severity = \"page\" }]\nregression_window = \"5s\"\nrevert_within = \"1h\"\n");
    std::fs::write(&e, t).expect("write");
}

/// Replaces every dev pod behind the tool's back (podman directly):
/// same name, labels, image and port; env edited by `edit`.
fn replace_pods(stack: &Stack, edit: &EnvEdit<'_>) {
    let replaced = tamper(&stack.podman().expect("podman"), "demo-dev", edit).expect("tamper");
    assert!(!replaced.is_empty(), "no dev pods to replace");
}

fn set(env: &mut Vec<(String, String)>, k: &str, v: &str) {
    env.retain(|(x, _)| x != k);
    env.push((k.to_string(), v.to_string()));
}

/// `drift --env dev` with `extra`: (exit code, stdout, stderr).
fn drift(w: &World, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec!["drift", "--config", "daemon.toml", "--env", "dev"];
    args.extend_from_slice(extra);
    let o = w.cmd(&args).output().expect("drift");
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    );
    eprintln!("$ platform-capstone {}\n{out}{err}", args.join(" "));
    (o.status.code(), out, err)
}

fn json(out: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(out).expect("drift json");
    v[0].clone()
}

/// Commits `edit` of envs/dev.toml to env/dev (a PR merged).
fn edit_dev_env(dir: &Path, from: &str, to: &str) {
    let work = dir.join("config");
    git(&work, &["checkout", "-q", "env/dev"]);
    git(&work, &["pull", "-q", "--ff-only", "origin", "env/dev"]);
    let p = work.join("envs/dev.toml");
    let t = std::fs::read_to_string(&p).expect("read");
    assert!(t.contains(from), "{t}");
    std::fs::write(&p, t.replacen(from, to, 1)).expect("write");
    signed_commit(
        &work,
        &dir.join("platform_key"),
        &["-q", "-am", "dev: drift settings (PR #21)"],
    );
    git(&work, &["push", "-q", "origin", "env/dev"]);
}

#[test]
fn drift_is_reported_masked_healed_and_slo_burn_reverts_on_the_real_stack() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_path_buf();
    let (_turn, shared) = world::shared_stack();
    let (stack, local, registry, state) = (
        &shared.stack,
        shared.local.clone(),
        shared.registry.clone(),
        &shared.state,
    );
    let route = format!(
        "http://127.0.0.1:{}/",
        state
            .routes
            .iter()
            .find(|r| r.namespace == "demo-dev")
            .expect("route")
            .port
    );
    let (w, keys) = World::create(&dir, &local, &registry, &dev_extras, "");
    let (remote, cosign) = (w.remote.clone(), keys.cosign);
    let bin = support::demo_binary();
    let pc = stack.podman_config();
    let mut say = |l: &str| eprintln!("{l}");
    let mut versions = Vec::new();
    for v in ["1.0.0", "1.1.0"] {
        versions.push(
            images::publish(
                &pc,
                &bin,
                &registry,
                &[images::good_and_bad(v)[0].clone()],
                &cosign,
                &mut say,
            )
            .expect("publish")
            .remove(0),
        );
    }
    let mut all_output = String::new();
    for v in ["1.0.0", "1.1.0"] {
        let (code, out) = w.release(&["--version", v, "--until", "dev"]);
        assert_eq!(code, Some(0), "{out}");
        all_output.push_str(&out);
    }
    assert_eq!(live_image(stack, "demo-dev"), versions[1].reference);

    // 1. Right after the release: in sync; the SLOs still see the
    //    analysis traffic (ok) or nothing (no data, exit 5), never drift.
    let (code, out, err) = drift(&w, &["-o", "json"]);
    all_output.push_str(&(out.clone() + &err));
    let r = json(&out);
    assert!(matches!(code, Some(0) | Some(5)), "{out}");
    assert_eq!(r["drifted"], serde_json::json!([]), "{r}");
    assert_eq!(r["in_sync"], 1);
    assert_eq!(
        r["not_observable"], 4,
        "ConfigMap, Secret, Service, ServiceAccount"
    );
    assert!(
        r["slos"]
            .as_array()
            .expect("slos")
            .iter()
            .all(|s| s["status"] == "ok" || s["status"] == "no_data"),
        "{r}"
    );

    // 2. A pod replaced with a modified manifest through podman: the
    //    exact diff; the Secret-derived value only as a masked hash.
    replace_pods(stack, &|env| {
        set(env, "LOG_LEVEL", "trace");
        set(env, "API_TOKEN", SECRET_TWO);
    });
    let (code, out, err) = drift(&w, &["--act"]);
    all_output.push_str(&(out.clone() + &err));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("- dev: 1 object drifted (1 modified)"),
        "{out}"
    );
    let minus: Vec<&str> = out.lines().filter(|l| l.starts_with('-')).collect();
    let plus: Vec<&str> = out.lines().filter(|l| l.starts_with('+')).collect();
    assert!(
        minus.iter().any(|l| l.trim_end().ends_with("value: debug")),
        "{out}"
    );
    assert!(
        plus.iter().any(|l| l.trim_end().ends_with("value: trace")),
        "{out}"
    );
    assert!(
        minus.iter().any(|l| l.contains("value: <masked hmac:"))
            && plus.iter().any(|l| l.contains("value: <masked hmac:")),
        "the Secret-derived value changed, shown masked on both sides:\n{out}"
    );
    assert!(
        !out.contains("Healed"),
        "report mode never heals, even with --act"
    );

    // 3. The demo switched to its fault mode after the release, while
    //    Prometheus is down: no data, nothing reverted.
    replace_pods(stack, &|env| {
        set(env, "LOG_LEVEL", "debug");
        set(env, "API_TOKEN", SECRET_ONE);
        set(env, "FAULT_ERROR_RATIO", "0.5");
    });
    let dev_head = w.head("env/dev");
    let prom_pid = stack.load().expect("state").pids["prometheus"];
    let _ = Command::new("kill")
        .args(["-9", &prom_pid.to_string()])
        .status();
    let (_, out, err) = drift(&w, &["--act", "-o", "json"]);
    all_output.push_str(&(out.clone() + &err));
    let r = json(&out);
    assert!(
        r["slos"]
            .as_array()
            .expect("slos")
            .iter()
            .all(|s| s["status"] == "no_data"),
        "{r}"
    );
    assert!(r.get("handed_over").is_none(), "{r}");
    assert_eq!(w.head("env/dev"), dev_head, "nothing reverted without data");
    stack
        .up(&[], PortChoice::Auto, &mut |_| {})
        .expect("prometheus back");

    // 4. With Prometheus back and traffic flowing, the error budget burns:
    //    the release is handed back — 1.0.0 live again, 1.1.0 reverted
    //    with the burn evidence.
    //    (Traffic a little longer than the 10 s long window: Prometheus
    //    was restarted, the window holds only what it scraped since.)
    let _ = platform_capstone::adapters::traffic::run(&route, 40, Duration::from_secs(13), None)
        .expect("traffic");
    let (code, out, err) = drift(&w, &["--act", "-o", "json"]);
    all_output.push_str(&(out.clone() + &err));
    let r = json(&out);
    assert_eq!(code, Some(1), "{out}");
    let availability = r["slos"]
        .as_array()
        .expect("slos")
        .iter()
        .find(|s| s["slo"] == "availability")
        .expect("availability")
        .clone();
    assert_eq!(availability["status"], "burning", "{r}");
    assert_eq!(availability["severity"], "page", "{r}");
    let handed = r["handed_over"].as_str().expect("handed over");
    assert!(handed.contains("reverted"), "{handed}");
    let revert = git(&remote, &["log", "-1", "--format=%B", "env/dev"]);
    assert!(revert.starts_with("revert rel-"), "{revert}");
    assert!(
        revert.contains("Failure: SLO drift after release: availability burning"),
        "{revert}"
    );
    assert!(
        revert.contains("Evidence: slo-drift at 100%: availability="),
        "{revert}"
    );
    assert!(w.verify(&w.head("env/dev")), "the revert is signed");
    assert_eq!(live_image(stack, "demo-dev"), versions[0].reference);

    // 5. Heal mode: a modified pod is put back as the live release says,
    //    and the healed diff is audited on the live commit.
    edit_dev_env(&dir, "mode = \"report\"", "mode = \"heal\"");
    replace_pods(stack, &|env| set(env, "LOG_LEVEL", "trace"));
    let (code, out, err) = drift(&w, &["--act", "-o", "json"]);
    all_output.push_str(&(out.clone() + &err));
    let r = json(&out);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(r["healed"], serde_json::json!(["Deployment/demo"]), "{r}");
    let live_commit = r["commit"].as_str().expect("commit").to_string();
    let (_, out, err) = drift(&w, &["-o", "json"]);
    all_output.push_str(&(out.clone() + &err));
    assert_eq!(
        json(&out)["drifted"],
        serde_json::json!([]),
        "healed:\n{out}"
    );
    let note = git(
        &remote,
        &["notes", "--ref", "platform-capstone", "show", &live_commit],
    );
    assert!(
        note.contains("\"heals\"") && note.contains("value: trace"),
        "{note}"
    );
    all_output.push_str(&note);

    // 6. Every managed pod deleted: missing; heal brings them back.
    let podman = stack.podman().expect("podman");
    for p in podman.pods(Some("demo-dev")).expect("pods") {
        let _ = podman.command().args(["pod", "rm", "-f", &p.name]).output();
    }
    let (code, out, err) = drift(&w, &[]);
    all_output.push_str(&(out.clone() + &err));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("**Deployment/demo** missing"), "{out}");
    let (_, out, err) = drift(&w, &["--act", "-o", "json"]);
    all_output.push_str(&(out.clone() + &err));
    assert_eq!(json(&out)["healed"], serde_json::json!(["Deployment/demo"]));
    assert_eq!(live_image(stack, "demo-dev"), versions[0].reference);

    // No Secret value anywhere: outputs, logs, reports, notes.
    let mut kept = String::new();
    for entry in walk_files(&dir.join("state")) {
        kept.push_str(&std::fs::read_to_string(entry).unwrap_or_default());
    }
    kept.push_str(
        &git(&remote, &["log", "--all", "-p", "--format=%B"])
            .replace(&format!("API_TOKEN={SECRET_ONE}"), ""),
    );
    for secret in [SECRET_ONE, SECRET_TWO] {
        assert!(!all_output.contains(secret), "{secret} leaked into output");
        assert!(
            !kept.contains(secret),
            "{secret} leaked into the state dir or git"
        );
    }
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}
