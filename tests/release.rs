//! The release engine end to end, through the binary, on the real local
//! stack (registry, podman, HAProxy, Prometheus) and a real bare remote:
//! a good version promoted dev → staging → prod (a closed window waits, a
//! prod promotion waits for its approval), every tool commit passing
//! `git verify-commit`; a bad version aborted at canary_10, rolled back,
//! reverted, quarantined; a wrongly signed version stopped at the gate.
//! Then the daemon:
//! releases, SIGTERM + resume, a revert, an approval through its API, an
//! operator abort and retry, a second daemon on the same repo (one
//! promotion commit), and a git outage with an operator's rollback through
//! the daemon's API (live at once, the commit pushed by the daemon after).

use crate::support::world::{self, World, live_image, signed_commit};
use crate::support::{self, git};
use platform_capstone::local::images;
use platform_capstone::ports::Target;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[test]
fn releases_promote_revert_gate_and_run_under_the_daemon_on_the_real_stack() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().to_path_buf();
    let (_turn, shared) = world::shared_stack();
    let (stack, local, registry) = (&shared.stack, shared.local.clone(), shared.registry.clone());

    // Keys: the daemon's (commits, promotion records), an approver's, cosign's.
    let (w, keys) = World::create(&dir, &local, &registry, &|_, _| {}, "");
    // The on-call may roll back by command (used during the git outage).
    w.pin_operator("oncall_key", "oncall@example.com");
    let (remote, cosign) = (w.remote.clone(), keys.cosign);
    let (stranger_private, _) =
        platform_capstone::gates::cosign::generate_key_pair().expect("cosign");
    let stranger =
        platform_capstone::gates::cosign::load_signing_key(&stranger_private).expect("key");

    let bin = support::demo_binary();
    let pc = stack.podman_config();
    let mut say = |l: &str| eprintln!("{l}");
    let good = images::publish(
        &pc,
        &bin,
        &registry,
        &images::good_and_bad("1.0.0"),
        &cosign,
        &mut say,
    )
    .expect("1.0.0");
    let next = images::publish(
        &pc,
        &bin,
        &registry,
        &images::good_and_bad("1.1.0"),
        &cosign,
        &mut say,
    )
    .expect("1.1.0");
    let forged = images::publish(
        &pc,
        &bin,
        &registry,
        &images::good_and_bad("1.2.0"),
        &stranger,
        &mut say,
    )
    .expect("1.2.0");

    // 1. A good version down the chain. Staging's window is closed: wait.
    let (code, out) = w.release(&["--version", "1.0.0"]);
    assert_eq!(code, Some(3), "{out}");
    for line in [
        "env: dev",
        "checks:",
        "  artifact_signature: pass",
        "  vulnerability_policy: pass",
        "  admission_policy: pass",
        "rollout:",
        "  full_100: healthy",
        "promote_staging: waiting (outside its promotion windows",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    let rel = World::release_id(&out);
    assert!(
        rel.starts_with("rel-") && rel.len() == "rel-2026-11-25-01".len(),
        "{rel}"
    );
    let staging_before = w.head("env/staging");
    // A PR opens the window (windows = []); the release goes on, then waits for prod's approval.
    let work = dir.join("config");
    git(&work, &["checkout", "-q", "env/staging"]);
    git(&work, &["pull", "-q", "--ff-only", "origin", "env/staging"]);
    let p = work.join("envs/staging.toml");
    let t = std::fs::read_to_string(&p).expect("read");
    std::fs::write(
        &p,
        t.replace(
            "windows = [{ schedule = \"0 0 1 1 *\", duration = \"1m\" }]",
            "windows = []",
        ),
    )
    .expect("write");
    signed_commit(
        &work,
        &dir.join("platform_key"),
        &["-q", "-am", "staging: open promotions"],
    );
    git(&work, &["push", "-q", "origin", "env/staging"]);
    let (code, out) = w.release(&["--resume", &rel]);
    assert_eq!(code, Some(3), "{out}");
    assert!(out.contains("promote_staging: committed"), "{out}");
    assert!(out.contains("env: staging"), "{out}");
    assert!(
        out.contains("promote_prod: waiting (needs an approval"),
        "{out}"
    );
    assert_ne!(w.head("env/staging"), staging_before);
    let (code, out) = w.run(&[
        "approve",
        &rel,
        "--env",
        "prod",
        "--key",
        "approver_key",
        "--principal",
        "alice@example.com",
        "--config",
        "daemon.toml",
    ]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = w.release(&["--resume", &rel]);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!(
            "result: release complete with audit trail id {rel}"
        )),
        "{out}"
    );
    for ns in ["demo-dev", "demo-staging", "demo-prod"] {
        assert_eq!(live_image(stack, ns), good[0].reference, "{ns}");
    }
    // Three tool commits — the pin on dev, the promotions to staging and
    // prod — verify with stock git, and each carries its audit note.
    let pin = w
        .log("env/dev")
        .into_iter()
        .find(|l| l.contains("release 1.0.0 to dev"))
        .expect("pin commit");
    let to_staging = w
        .log("env/staging")
        .into_iter()
        .find(|l| l.contains(&format!("promote {rel} to staging")))
        .expect("promotion");
    let to_prod = w
        .log("env/prod")
        .into_iter()
        .find(|l| l.contains(&format!("promote {rel} to prod")))
        .expect("promotion");
    for line in [&pin, &to_staging, &to_prod] {
        let sha = line.split(' ').next().expect("sha");
        assert!(w.verify(sha), "git verify-commit failed for {line}");
        let note = git(&remote, &["notes", "--ref=platform-capstone", "show", sha]);
        assert!(note.contains(&rel), "no audit note on {line}");
    }
    let body = git(
        &remote,
        &[
            "log",
            "-1",
            "--format=%B",
            to_prod.split(' ').next().expect("sha"),
        ],
    );
    for trailer in [
        format!("Release-Id: {rel}"),
        "Source-Branch: env/staging".into(),
        "Gate-artifact-signature: pass".into(),
        "Approved-By: alice@example.com".into(),
    ] {
        assert!(body.contains(&trailer), "{trailer:?} missing:\n{body}");
    }
    let (code, out) = w.run(&["audit", "show", &rel, "--config", "daemon.toml"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("in prod: complete") && out.contains("full_100: healthy"),
        "{out}"
    );

    // 2. The bad version (30% errors, +300 ms) stops at canary_10.
    let staging_head = w.head("env/staging");
    let (code, out) = w.release(&["--version", "1.0.0-bad"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("  canary_10: unhealthy ("), "{out}");
    assert!(out.contains("result: release failed"), "{out}");
    let bad_rel = World::release_id(&out);
    assert_eq!(
        live_image(stack, "demo-dev"),
        good[0].reference,
        "live is back on the good digest"
    );
    let dev = w.log("env/dev");
    assert!(
        dev[0].contains(&format!("revert {bad_rel}: failed in dev")),
        "{dev:?}"
    );
    assert!(w.verify(dev[0].split(' ').next().expect("sha")));
    let revert_body = git(&remote, &["log", "-1", "--format=%B", "env/dev"]);
    assert!(
        revert_body.contains("Evidence: canary_10 at 10%"),
        "{revert_body}"
    );
    assert_eq!(
        w.head("env/staging"),
        staging_head,
        "nothing reached staging"
    );
    let dev_pins = git(
        &remote,
        &["show", "env/dev:overlays/dev/kustomization.yaml"],
    );
    assert!(
        dev_pins.contains(&good[0].digest) && !dev_pins.contains(&good[1].digest),
        "{dev_pins}"
    );
    let quarantine =
        std::fs::read_to_string(dir.join("state/quarantine.json")).expect("quarantine");
    assert!(quarantine.contains(&good[1].digest), "{quarantine}");
    // The quarantined digest is refused when committed again.
    let (code, out) = w.release(&["--version", "1.0.0-bad", "--until", "dev"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("quarantined"), "{out}");

    // 3. A version signed by a key nobody trusts never reaches the target.
    let (code, out) = w.release(&["--version", "1.2.0", "--until", "dev"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("artifact_signature: fail") && out.contains("no trusted key"),
        "{out}"
    );
    assert!(!out.contains("rollout:"), "{out}");
    assert_eq!(live_image(stack, "demo-dev"), good[0].reference);
    assert!(!live_image(stack, "demo-dev").contains(&forged[0].digest));

    // Killed mid-canary and after the promotion commit: see
    // `engine::killed_mid_canary_and_after_the_promotion_commit_…` (the
    // same crash points over the fakes) and the crash-mid-rollout drill
    // (a real kill -9 on this stack).
    let state_file = dir.join("state/releases/dev.json");
    // 4. The daemon runs the same engine: a commit pushed to env/dev is
    // released and promoted; SIGTERM mid-rollout parks it and a restart
    // resumes it; a bad commit is reverted; with the remote gone nothing is
    // touched and /readyz says so, and it recovers when the remote returns.
    let port = platform_capstone::adapters::process::free_port().expect("port");
    let mut cfg = std::fs::read_to_string(&w.config).expect("config");
    cfg = cfg.replacen(
        "[identity]",
        &format!(
            "listen = \"127.0.0.1:{port}\"\npoll_interval = \"1s\"\nlog_format = \"text\"\nlocal_stack = \"{}\"\napi_token_file = \"{}\"\n[identity]",
            local.display(),
            dir.join("token").display()
        ),
        1,
    );
    std::fs::write(&w.config, &cfg).expect("daemon config");
    std::fs::write(dir.join("token"), "op-token\n").expect("token");
    let start_daemon = |n: usize| DaemonProc::start(&w, &dir.join(format!("daemon-{n}.log")), port);
    let mut daemon = start_daemon(1);
    daemon.wait_ready(true);
    let work = dir.join("config");
    let pin_dev = |digest_from: &str, digest_to: &str, message: &str| {
        git(&work, &["checkout", "-q", "env/dev"]);
        git(&work, &["pull", "-q", "--ff-only", "origin", "env/dev"]);
        let k = work.join("overlays/dev/kustomization.yaml");
        let t = std::fs::read_to_string(&k).expect("read");
        assert!(t.contains(digest_from), "{t}");
        std::fs::write(&k, t.replace(digest_from, digest_to)).expect("write");
        signed_commit(&work, &dir.join("platform_key"), &["-q", "-am", message]);
        git(&work, &["push", "-q", "origin", "env/dev"]);
        git(&work, &["rev-parse", "HEAD"])
    };
    let human = pin_dev(&good[0].digest, &next[0].digest, "dev: 1.1.0 (PR #12)");
    let phase_of = || {
        std::fs::read_to_string(&state_file)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .filter(|v| v["commit"] == human.as_str())
            .map(|v| {
                (
                    v["phase"].as_str().unwrap_or_default().to_string(),
                    v["record"]["outcome"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
    };
    platform_capstone::adapters::process::wait_until(
        "the daemon to start the canary",
        Duration::from_secs(120),
        || phase_of().is_some_and(|(p, _)| p == "canary"),
    )
    .expect("canary started by the daemon");
    daemon.terminate();
    assert_eq!(
        phase_of().map(|(p, _)| p).as_deref(),
        Some("canary"),
        "parked mid-rollout"
    );
    let mut daemon = start_daemon(2);
    platform_capstone::adapters::process::wait_until(
        "the resumed release to promote",
        Duration::from_secs(240),
        || phase_of().is_some_and(|(p, o)| p == "finished" && o == "promoted"),
    )
    .expect("resumed and promoted");
    assert_eq!(live_image(stack, "demo-dev"), next[0].reference);
    let log2 = std::fs::read_to_string(dir.join("daemon-2.log")).unwrap_or_default();
    assert!(
        log2.contains("resuming"),
        "the restart did not resume:\n{log2}"
    );
    let staging_log = w.log("env/staging");
    assert!(staging_log[0].contains("to staging"), "{staging_log:?}");

    // A bad commit (1.1.0-bad) pushed to env/dev is reverted by the daemon.
    let _bad = pin_dev(
        &next[0].digest,
        &next[1].digest,
        "dev: try 1.1.0-bad (PR #13)",
    );
    platform_capstone::adapters::process::wait_until(
        "the daemon to revert the bad commit",
        Duration::from_secs(180),
        || {
            w.log("env/dev")
                .first()
                .is_some_and(|l| l.contains("revert rel-"))
        },
    )
    .expect("reverted");
    assert_eq!(live_image(stack, "demo-dev"), next[0].reference);

    // Staging released what dev promoted and waits for prod's approval:
    // approved through the daemon's API (signed here, verified there), the
    // daemon goes on by itself.
    let api = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let env_detail = |env: &str| -> String {
        api.get(format!("{}/api/v1/envs", daemon.base))
            .send()
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .and_then(|v| v[env]["detail"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    platform_capstone::adapters::process::wait_until(
        "staging to wait for prod's approval",
        Duration::from_secs(240),
        || env_detail("staging").contains("waiting before prod"),
    )
    .expect("staging waits");
    let waiting = env_detail("staging")
        .split(':')
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(waiting.starts_with("rel-"), "{waiting}");
    // Meanwhile a broken env file lands on env/dev (signed by a policy
    // signer): dev is reported broken, and prod is released regardless.
    let env_status = |env: &str| -> String {
        api.get(format!("{}/api/v1/envs", daemon.base))
            .send()
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .and_then(|v| v[env]["status"].as_str().map(str::to_string))
            .unwrap_or_default()
    };
    git(&work, &["checkout", "-q", "env/dev"]);
    git(&work, &["pull", "-q", "--ff-only", "origin", "env/dev"]);
    std::fs::write(work.join("envs/dev.toml"), "branch = [\n").expect("break dev");
    signed_commit(
        &work,
        &dir.join("platform_key"),
        &["-q", "-am", "dev: a broken env file"],
    );
    git(&work, &["push", "-q", "origin", "env/dev"]);
    platform_capstone::adapters::process::wait_until(
        "dev reported broken",
        Duration::from_secs(60),
        || env_status("dev") == "broken",
    )
    .expect("dev broken");
    assert_eq!(env_status("prod"), "ready");
    let (code, out) = w.run(&[
        "approve",
        &waiting,
        "--env",
        "prod",
        "--key",
        "approver_key",
        "--principal",
        "alice@example.com",
        "--daemon",
        &daemon.base,
        "--token-file",
        "token",
    ]);
    assert_eq!(code, Some(0), "{out}");
    // The audit record says so (the env's detail moves on at the next poll).
    let outcome_in = |release: &str, env: &str| -> Option<String> {
        api.get(format!("{}/api/v1/releases/{release}", daemon.base))
            .send()
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())?
            .as_array()?
            .iter()
            .find(|r| r["env"] == env)
            .and_then(|r| r["outcome"].as_str().map(str::to_string))
    };
    platform_capstone::adapters::process::wait_until(
        "the approved release to be promoted into prod",
        Duration::from_secs(240),
        || outcome_in(&waiting, "staging").as_deref() == Some("promoted"),
    )
    .expect("promoted after the API approval");
    assert_eq!(
        env_status("dev"),
        "broken",
        "prod went on while dev was broken"
    );
    // dev repaired by a signed revert; it is ready again.
    git(&work, &["pull", "-q", "--ff-only", "origin", "env/dev"]);
    git(
        &work,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("user.signingkey={}", dir.join("platform_key").display()),
            "revert",
            "-S",
            "--no-edit",
            "HEAD",
        ],
    );
    git(&work, &["push", "-q", "origin", "env/dev"]);
    platform_capstone::adapters::process::wait_until(
        "dev ready again",
        Duration::from_secs(60),
        || env_status("dev") == "ready",
    )
    .expect("dev ready");

    // An operator aborts a rollout through the API: the canary goes, all
    // traffic stays on stable, nothing is reverted; retry runs it again.
    let state_of = |commit: &str| {
        std::fs::read_to_string(&state_file)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .filter(|v| v["commit"] == commit)
            .map(|v| {
                (
                    v["phase"].as_str().unwrap_or_default().to_string(),
                    v["record"]["outcome"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
    };
    let post = |path: &str| {
        api.post(format!("{}{path}", daemon.base))
            .bearer_auth("op-token")
            .send()
            .expect("post")
            .status()
            .as_u16()
    };
    let candidate = pin_dev(
        &next[0].digest,
        &good[0].digest,
        "dev: back to 1.0.0 (PR #14)",
    );
    platform_capstone::adapters::process::wait_until(
        "the canary of 1.0.0",
        Duration::from_secs(120),
        || state_of(&candidate).is_some_and(|(p, _)| p == "canary"),
    )
    .expect("canary");
    assert_eq!(post("/api/v1/envs/dev/abort"), 202);
    platform_capstone::adapters::process::wait_until("the abort", Duration::from_secs(60), || {
        state_of(&candidate).is_some_and(|(p, o)| p == "finished" && o == "aborted")
    })
    .expect("aborted");
    assert_eq!(live_image(stack, "demo-dev"), next[0].reference);
    let canary = platform_capstone::ports::Workload {
        namespace: "demo-dev".into(),
        app: "demo".into(),
        track: platform_capstone::ports::Track::Canary,
    };
    let podman = stack.podman().expect("podman");
    assert_eq!(
        podman.readiness(&canary).expect("readiness").desired,
        0,
        "the canary was removed"
    );
    assert_eq!(w.head("env/dev"), candidate, "an abort reverts nothing");
    assert_eq!(post("/api/v1/envs/dev/abort"), 409, "nothing left to abort");
    assert_eq!(post("/api/v1/envs/dev/retry"), 202);
    platform_capstone::adapters::process::wait_until(
        "the retried release to promote",
        Duration::from_secs(180),
        || state_of(&candidate).is_some_and(|(p, o)| p == "finished" && o == "promoted"),
    )
    .expect("retried and promoted");
    assert_eq!(live_image(stack, "demo-dev"), good[0].reference);

    // A second daemon on the same repo and state dir: the env lock lets one
    // release each commit; one promotion commit.
    let port2 = platform_capstone::adapters::process::free_port().expect("port");
    let config2 = dir.join("daemon-2.toml");
    std::fs::write(
        &config2,
        cfg.replace(&format!("127.0.0.1:{port}"), &format!("127.0.0.1:{port2}"))
            .replace(
                &dir.join("cache").display().to_string(),
                &dir.join("cache-2").display().to_string(),
            ),
    )
    .expect("config 2");
    let log_b = dir.join("daemon-b.log");
    let mut second = DaemonProc::start_with(&w, &log_b, port2, "daemon-2.toml");
    second.wait_ready(true);
    let twice = pin_dev(
        &good[0].digest,
        &next[0].digest,
        "dev: 1.1.0 again (PR #15)",
    );
    platform_capstone::adapters::process::wait_until(
        "one of the daemons to promote",
        Duration::from_secs(180),
        || state_of(&twice).is_some_and(|(p, o)| p == "finished" && o == "promoted"),
    )
    .expect("promoted");
    let logs = || {
        ["daemon-2.log", "daemon-b.log"]
            .iter()
            .map(|f| std::fs::read_to_string(dir.join(f)).unwrap_or_default())
            .collect::<String>()
    };
    platform_capstone::adapters::process::wait_until(
        "the other daemon to find the env taken",
        Duration::from_secs(30),
        || logs().contains("is being released by another process"),
    )
    .expect("serialised by the env lock");
    let release_of_twice = git(&remote, &["log", "-1", "--format=%B", "env/staging"]);
    let id = release_of_twice
        .lines()
        .find_map(|l| l.strip_prefix("Release-Id:"))
        .map(str::trim)
        .expect("a promotion with a Release-Id")
        .to_string();
    // Both daemons settle on that release (the one that found the env taken
    // retries each poll until it sees the release finished): only then can
    // a second promotion be ruled out.
    let settled_on = |base: &str| {
        api.get(format!("{base}/api/v1/envs"))
            .send()
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .is_some_and(|v| {
                v["dev"]["head"] == twice.as_str()
                    && v["dev"]["busy"] == false
                    && v["dev"]["outcome"] == "ok"
                    && v["dev"]["detail"]
                        .as_str()
                        .is_some_and(|d| d.starts_with(&format!("{id}: ")))
            })
    };
    platform_capstone::adapters::process::wait_until(
        "both daemons to settle on the promoted release",
        Duration::from_secs(60),
        || settled_on(&daemon.base) && settled_on(&second.base),
    )
    .expect("settled");
    let promotions = git(&remote, &["log", "--format=%B", "env/staging"])
        .lines()
        .filter(|l| l.trim() == format!("Release-Id: {id}"))
        .count();
    assert_eq!(promotions, 1, "one promotion commit for {id}");
    second.terminate();

    // The remote disappears: not ready, nothing destroyed; it returns: ready.
    let pods_before = stack
        .podman()
        .expect("podman")
        .pods(Some("demo-dev"))
        .expect("pods")
        .len();
    std::fs::rename(&remote, dir.join("remote.git.away")).expect("hide the remote");
    daemon.wait_ready(false);
    assert_eq!(
        live_image(stack, "demo-dev"),
        next[0].reference,
        "nothing was touched"
    );
    assert_eq!(
        stack
            .podman()
            .expect("podman")
            .pods(Some("demo-dev"))
            .expect("pods")
            .len(),
        pods_before
    );
    // An operator rolls dev back through the daemon meanwhile: live at
    // once from the last fetched state, the env held until the daemon
    // pushes the queued commit, once the remote is back.
    let (code, out) = w.run(&[
        "rollback",
        "--env",
        "dev",
        "--reason",
        "rolled back during the outage",
        "--key",
        "oncall_key",
        "--principal",
        "oncall@example.com",
        "--daemon",
        &daemon.base,
        "--token-file",
        "token",
    ]);
    assert_eq!(code, Some(3), "{out}");
    assert_eq!(
        live_image(stack, "demo-dev"),
        good[0].reference,
        "live at once"
    );
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let get = |path: &str| {
        client
            .get(format!("{}{path}", daemon.base))
            .send()
            .and_then(|r| r.text())
            .unwrap_or_default()
    };
    let held = |envs: &str| {
        serde_json::from_str::<serde_json::Value>(envs).unwrap_or_default()["dev"]["held"]
            .as_str()
            .map(str::to_string)
    };
    assert!(
        held(&get("/api/v1/envs")).is_some_and(|h| h.contains("commit queued")),
        "{}",
        get("/api/v1/envs")
    );
    let metrics = get("/metrics");
    assert!(
        metrics
            .contains("platform_capstone_manual_rollbacks_total{env=\"dev\",outcome=\"queued\"} 1")
            && metrics.contains("platform_capstone_env_held{env=\"dev\"}"),
        "{metrics}"
    );
    std::fs::rename(dir.join("remote.git.away"), &remote).expect("bring it back");
    let dev_commits = w.log("env/dev").len();
    daemon.wait_ready(true);
    platform_capstone::adapters::process::wait_until(
        "the daemon to push the queued rollback commit",
        Duration::from_secs(60),
        || held(&get("/api/v1/envs")).is_none(),
    )
    .expect("pushed");
    let dev = w.log("env/dev");
    assert_eq!(dev.len(), dev_commits + 1, "exactly one commit");
    assert!(dev[0].contains("rollback dev: "), "{dev:?}");
    assert!(w.verify(dev[0].split(' ').next().expect("sha")));
    // Nothing re-releases what was rolled back: the daemon finds its
    // commit in sync.
    platform_capstone::adapters::process::wait_until(
        "the daemon to judge the rollback commit",
        Duration::from_secs(60),
        || {
            let envs =
                serde_json::from_str::<serde_json::Value>(&get("/api/v1/envs")).unwrap_or_default();
            envs["dev"]["head"]
                .as_str()
                .is_some_and(|h| !h.is_empty() && dev[0].starts_with(h))
                && envs["dev"]["detail"] == "in sync"
        },
    )
    .expect("in sync");
    assert_eq!(live_image(stack, "demo-dev"), good[0].reference);
    daemon.terminate();
}

/// A daemon process for this test, stopped on drop.
struct DaemonProc {
    child: std::process::Child,
    base: String,
}

impl DaemonProc {
    fn start(w: &World, log: &Path, port: u16) -> Self {
        Self::start_with(w, log, port, "daemon.toml")
    }

    fn start_with(w: &World, log: &Path, port: u16, config: &str) -> Self {
        let log = std::fs::File::create(log).expect("log");
        let child = w
            .cmd(&["daemon", "--config", config])
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start daemon");
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    fn wait_ready(&self, ready: bool) {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .expect("client");
        platform_capstone::adapters::process::wait_until(
            if ready {
                "/readyz to say ready"
            } else {
                "/readyz to say not ready"
            },
            Duration::from_secs(60),
            || {
                client
                    .get(format!("{}/readyz", self.base))
                    .send()
                    .is_ok_and(|r| (r.status() == 200) == ready)
            },
        )
        .expect("readiness");
    }

    fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let t = std::time::Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "daemon exit: {status:?}");
                return;
            }
            assert!(
                t.elapsed() < Duration::from_secs(90),
                "the daemon did not stop within 90 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for DaemonProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
