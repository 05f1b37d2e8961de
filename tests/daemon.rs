//! The daemon binary against a real bare remote: health and readiness,
//! metrics, the JSON API, the webhook (HMAC verified before parsing, body
//! capped, unknown events ignored), token-protected calls, the file watch
//! on a file:// remote, the operator calls (abort, retry, and approve with
//! an SSH-signed approval checked against the env's approvers), SIGHUP
//! with an invalid config (the old one stays), and SIGTERM (a clean exit
//! within its bound).

use crate::support::{Fixture, git};
use platform_capstone::source::{FileChange, GitRepo, TreeReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon {
    child: Child,
    base: String,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn signal(child: &Child, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status();
}

fn hmac_hex(secret: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("key");
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn the_daemon_serves_verifies_watches_reloads_and_stops() {
    let f = Fixture::new();
    let port = platform_capstone::adapters::process::free_port().expect("port");
    std::fs::write(f.path("token"), "t0ken\n").expect("token");
    std::fs::write(f.path("secret"), "hook-secret\n").expect("secret");
    let config = f.daemon_config(
        &format!(
            "listen = \"127.0.0.1:{port}\"\npoll_interval = \"1h\"\nlog_format = \"text\"\napi_token_file = \"{}\"\nwebhook_secret_file = \"{}\"\nlocal_stack = \"{}\"\n",
            f.path("token").display(),
            f.path("secret").display(),
            f.path("no-stack").display(),
        ),
        None,
    );
    let body = std::fs::read_to_string(&config).expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
        .args(["daemon", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start daemon");
    let mut d = Daemon {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    // No connection reuse: the server closes one after refusing a body (413).
    let http = reqwest::blocking::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let get = |path: &str| http.get(format!("{}{path}", d.base)).send();

    wait_for("/healthz", Duration::from_secs(30), || {
        get("/healthz").is_ok_and(|r| r.status() == 200)
    });
    wait_for(
        "/readyz after the first fetch",
        Duration::from_secs(30),
        || get("/readyz").is_ok_and(|r| r.status() == 200),
    );
    let metrics = get("/metrics").expect("metrics").text().expect("text");
    for name in [
        "platform_capstone_last_successful_fetch_timestamp_seconds{env=\"dev\"}",
        "platform_capstone_git_fetch_errors_total 0",
        "platform_capstone_webhook_rejected_total 0",
    ] {
        assert!(metrics.contains(name), "{name} missing:\n{metrics}");
    }
    let envs: serde_json::Value = get("/api/v1/envs").expect("envs").json().expect("json");
    let dev_head = f.remote_rev("env/dev");
    assert_eq!(envs["dev"]["head"], dev_head.as_str(), "{envs}");
    assert_eq!(get("/api/v1/releases").expect("releases").status(), 200);
    assert_eq!(
        get("/api/v1/releases/rel-2026-01-01-01")
            .expect("release")
            .status(),
        404
    );

    // Webhook: the signature is checked before anything else.
    let hook = |event: &str, body: &[u8], sig: Option<String>| {
        let mut r = http
            .post(format!("{}/api/v1/webhook", d.base))
            .header("x-github-event", event)
            .body(body.to_vec());
        if let Some(s) = sig {
            r = r.header("x-hub-signature-256", s);
        }
        r.send().expect("webhook").status().as_u16()
    };
    let push = br#"{"ref":"refs/heads/env/dev"}"#;
    assert_eq!(hook("push", push, None), 401);
    assert_eq!(
        hook(
            "push",
            push,
            Some(format!("sha256={}", hmac_hex(b"wrong", push)))
        ),
        401
    );
    assert_eq!(
        hook(
            "push",
            b"{not json",
            Some(format!("sha256={}", hmac_hex(b"hook-secret", push)))
        ),
        401
    );
    assert_eq!(
        hook(
            "push",
            push,
            Some(format!("sha256={}", hmac_hex(b"hook-secret", push)))
        ),
        202
    );
    assert_eq!(
        hook(
            "ping",
            b"{}",
            Some(format!("sha256={}", hmac_hex(b"hook-secret", b"{}")))
        ),
        200
    );
    assert_eq!(
        hook(
            "issues",
            b"{}",
            Some(format!("sha256={}", hmac_hex(b"hook-secret", b"{}")))
        ),
        202
    );
    let big = vec![b'x'; 2 * 1024 * 1024];
    assert_eq!(
        hook(
            "push",
            &big,
            Some(format!("sha256={}", hmac_hex(b"hook-secret", &big)))
        ),
        413
    );
    let metrics = get("/metrics").expect("metrics").text().expect("text");
    assert!(
        metrics.contains("platform_capstone_webhook_rejected_total 3"),
        "{metrics}"
    );

    // Mutating calls need the token.
    let reconcile = |auth: Option<&str>| {
        let mut r = http.post(format!("{}/api/v1/reconcile", d.base));
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        r.send().expect("reconcile").status().as_u16()
    };
    assert_eq!(reconcile(None), 403);
    assert_eq!(reconcile(Some("Bearer nope")), 403);
    assert_eq!(reconcile(Some("t0ken")), 403);
    assert_eq!(reconcile(Some("Bearer t0ken")), 202);

    // A push to the file:// remote is seen through the file watch (poll is 1h).
    let mut writer = f.writer("writer-cache");
    writer.fetch().expect("fetch");
    writer
        .commit_change(
            "env/dev",
            "a change on dev",
            &mut |tree: &dyn TreeReader| {
                let mut text = tree.read_string("overlays/dev/kustomization.yaml")?;
                text.push_str("# touched\n");
                Ok(Some(vec![FileChange {
                    path: "overlays/dev/kustomization.yaml".into(),
                    content: Some(text.into_bytes()),
                }]))
            },
        )
        .expect("commit");
    let new_head = f.remote_rev("env/dev");
    assert_ne!(new_head, dev_head);
    wait_for(
        "the new dev head through the watch",
        Duration::from_secs(20),
        || {
            get("/api/v1/envs")
                .ok()
                .and_then(|r| r.json::<serde_json::Value>().ok())
                .is_some_and(|v| v["dev"]["head"] == new_head.as_str())
        },
    );
    // Its worker cannot run without the local stack: it says so; the daemon stays up.
    wait_for("the dev worker's error", Duration::from_secs(30), || {
        get("/api/v1/envs")
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .is_some_and(|v| {
                v["dev"]["detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("local stack is not set up"))
            })
    });
    assert_eq!(get("/healthz").expect("healthz").status(), 200);

    // abort and retry name an env and need the token; abort needs a running rollout.
    let call = |path: &str, token: Option<&str>| {
        let mut r = http.post(format!("{}{path}", d.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        r.send().expect("call").status().as_u16()
    };
    assert_eq!(call("/api/v1/envs/dev/abort", None), 403);
    assert_eq!(call("/api/v1/envs/nope/abort", Some("t0ken")), 404);
    assert_eq!(call("/api/v1/envs/dev/abort", Some("t0ken")), 409);
    assert_eq!(call("/api/v1/envs/dev/retry", None), 403);
    assert_eq!(call("/api/v1/envs/dev/retry", Some("t0ken")), 202);

    // A drift check on demand: its report is served (here it says why the
    // target could not be looked at: never "in sync").
    assert_eq!(call("/api/v1/envs/dev/drift", None), 403);
    assert_eq!(get("/api/v1/drift/nope").expect("drift").status(), 404);
    assert_eq!(call("/api/v1/envs/dev/drift", Some("t0ken")), 202);
    wait_for("the drift report", Duration::from_secs(30), || {
        get("/api/v1/drift/dev").is_ok_and(|r| r.status() == 200)
    });
    let report: serde_json::Value = get("/api/v1/drift/dev")
        .expect("drift")
        .json()
        .expect("json");
    assert!(
        report["config_error"]
            .as_str()
            .is_some_and(|e| e.contains("local stack is not set up")),
        "{report}"
    );
    let md = get("/api/v1/drift/dev?format=markdown")
        .expect("markdown")
        .text()
        .expect("text");
    assert!(
        md.starts_with("# Drift report\n\n- dev: config drift unknown"),
        "{md}"
    );
    let all: serde_json::Value = get("/api/v1/drift").expect("all").json().expect("json");
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    let drills: serde_json::Value = get("/api/v1/drills").expect("drills").json().expect("json");
    assert_eq!(drills, serde_json::json!([]), "no drill has run");

    // approve: an approval signed by a key of prod's approvers is accepted
    // and stored on the staging commit the release waits on; anything
    // else is refused and nothing is written.
    let alice = platform_capstone::signing::generate_key(&f.path("alice"), "alice").expect("key");
    platform_capstone::signing::generate_key(&f.path("mallory"), "mallory").expect("key");
    let alice_line = platform_capstone::signing::allowed_signers_line(
        "alice@example.com",
        platform_capstone::audit::APPROVAL_NAMESPACE,
        &alice,
    )
    .expect("line");
    // A policy change (prod's approvers): the platform team signs it.
    let mut platform =
        platform_capstone::source::Git2Repo::open_remote(&f.url(), &f.path("platform-cache"), None)
            .expect("open")
            .with_signer(f.platform());
    platform.fetch().expect("fetch");
    platform
        .commit_change(
            "env/prod",
            "prod: alice approves",
            &mut |tree: &dyn TreeReader| {
                let mut text = tree.read_string("policies/approvers")?;
                text.push_str(&format!("{alice_line}\n"));
                Ok(Some(vec![FileChange {
                    path: "policies/approvers".into(),
                    content: Some(text.into_bytes()),
                }]))
            },
        )
        .expect("approvers");
    let staging = f.remote_rev("env/staging");
    let release_id = "rel-2026-11-25-07";
    let record = platform_capstone::audit::Record {
        release: release_id.into(),
        env: "staging".into(),
        actor: "test".into(),
        images: Vec::new(),
        version: "1.0.0".into(),
        started: chrono::Utc::now(),
        finished: None,
        outcome: platform_capstone::audit::ReleaseOutcome::Waiting,
        reason: Some("needs an approval".into()),
        checks: Vec::new(),
        steps: Vec::new(),
        commits: platform_capstone::audit::Commits {
            released: staging.clone(),
            ..Default::default()
        },
        timings: Default::default(),
        rollback: None,
    };
    writer.fetch().expect("fetch");
    writer
        .update_note(&staging, &mut |old| {
            let mut n = platform_capstone::audit::Note::parse(old);
            n.upsert(record.clone());
            n.to_text()
        })
        .expect("note");
    let approve = |release: &str, key: &str| {
        Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
            .args([
                "approve",
                release,
                "--env",
                "prod",
                "--principal",
                "alice@example.com",
            ])
            .arg("--key")
            .arg(f.path(key))
            .args(["--daemon", &d.base, "--token-file"])
            .arg(f.path("token"))
            .output()
            .expect("approve")
    };
    let note_now = || {
        let mut r = f.writer("check-cache");
        r.fetch().expect("fetch");
        platform_capstone::audit::Note::parse(r.note(&staging).expect("note").as_deref())
    };
    let refused = approve(release_id, "mallory");
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("403") && err.contains("policies/approvers"),
        "{err}"
    );
    let unknown = approve("rel-2026-11-25-99", "alice");
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("404"));
    assert!(
        note_now().approvals.is_empty(),
        "a refused approval was written"
    );
    let bad_body = http
        .post(format!("{}/api/v1/releases/{release_id}/approve", d.base))
        .bearer_auth("t0ken")
        .body("{\"env\": \"prod\"}")
        .send()
        .expect("post");
    assert_eq!(bad_body.status(), 400);
    let ok = approve(release_id, "alice");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let note = note_now();
    assert_eq!(note.approvals.len(), 1);
    let approvers = platform_capstone::signing::AllowedSigners::parse(&format!("{alice_line}\n"))
        .expect("approvers");
    assert_eq!(
        platform_capstone::engine::promote::approved_by(&note, &approvers, release_id, "prod")
            .as_deref(),
        Some("alice@example.com"),
        "the stored approval verifies as the engine checks it"
    );

    // SIGHUP with a broken config: the old one stays.
    std::fs::write(&config, "remote = [not toml").expect("break");
    signal(&d.child, "-HUP");
    // Restored only once the daemon has read the broken file: two quick
    // SIGHUPs could coalesce into one reload of the restored file.
    wait_for("the refused reload", Duration::from_secs(30), || {
        get("/metrics")
            .ok()
            .and_then(|r| r.text().ok())
            .is_some_and(|m| {
                m.contains("platform_capstone_config_reloads_total{result=\"refused\"} 1")
            })
    });
    assert_eq!(get("/healthz").expect("still serving").status(), 200);
    assert_eq!(
        reconcile(Some("Bearer t0ken")),
        202,
        "the old token still works"
    );
    // SIGHUP with a valid new token: it takes effect.
    std::fs::write(f.path("token"), "t0ken-2\n").expect("token");
    std::fs::write(&config, &body).expect("restore");
    signal(&d.child, "-HUP");
    wait_for("the new token", Duration::from_secs(10), || {
        reconcile(Some("Bearer t0ken-2")) == 202
    });
    assert_eq!(reconcile(Some("Bearer t0ken")), 403);

    // A malformed secretGenerator on dev: the render error reaches the
    // API and the log naming the entry, never the value.
    let secret = "Sup3r-s3cret-literal";
    writer.fetch().expect("fetch");
    writer
        .commit_change(
            "env/dev",
            "dev: a db secret",
            &mut |tree: &dyn TreeReader| {
                let mut text = tree.read_string("overlays/dev/kustomization.yaml")?;
                text.push_str(&format!(
                    "secretGenerator:\n  - name: db\n    literals:\n      - {secret}\n"
                ));
                Ok(Some(vec![FileChange {
                    path: "overlays/dev/kustomization.yaml".into(),
                    content: Some(text.into_bytes()),
                }]))
            },
        )
        .expect("commit");
    assert_eq!(reconcile(Some("Bearer t0ken-2")), 202);
    wait_for(
        "dev's render error in the API",
        Duration::from_secs(30),
        || {
            get("/api/v1/envs")
                .ok()
                .and_then(|r| r.text().ok())
                .is_some_and(|t| t.contains("literals[0]"))
        },
    );
    let api = get("/api/v1/envs").expect("envs").text().expect("text");
    assert!(!api.contains(secret), "{api}");

    // A broken env file on env/dev (signed by a policy signer) and a
    // branch claiming to be prod: dev is broken, reported; staging and
    // prod stay ready; the daemon stays ready; the hijack branch defines
    // nothing.
    platform.fetch().expect("fetch");
    let prod_head = f.remote_rev("env/prod");
    for (branch, file, text) in [
        ("env/dev", "envs/dev.toml", "branch = [\n"),
        (
            "env/0-hijack",
            "envs/prod.toml",
            "branch = \"env/0-hijack\"\n",
        ),
    ] {
        if branch == "env/0-hijack" {
            git(&f.remote, &["branch", branch, "env/dev"]);
            platform.fetch().expect("fetch");
        }
        platform
            .commit_change(branch, "an edit", &mut |_: &dyn TreeReader| {
                Ok(Some(vec![FileChange {
                    path: file.into(),
                    content: Some(text.as_bytes().to_vec()),
                }]))
            })
            .expect("commit");
    }
    assert_eq!(reconcile(Some("Bearer t0ken-2")), 202);
    wait_for("dev reported broken", Duration::from_secs(20), || {
        get("/api/v1/envs")
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .is_some_and(|v| v["dev"]["status"] == "broken")
    });
    let envs: serde_json::Value = get("/api/v1/envs").expect("envs").json().expect("json");
    assert!(
        envs["dev"]["problem"]
            .as_str()
            .is_some_and(|p| p.contains("envs/dev.toml")),
        "{envs}"
    );
    assert_eq!(envs["staging"]["status"], "ready", "{envs}");
    assert_eq!(envs["prod"]["status"], "ready", "{envs}");
    assert_eq!(envs["prod"]["head"], prod_head.as_str(), "{envs}");
    assert!(envs.get("0-hijack").is_none(), "{envs}");
    assert_eq!(get("/readyz").expect("readyz").status(), 200);
    let metrics = get("/metrics").expect("metrics").text().expect("text");
    assert!(
        metrics.contains("platform_capstone_env_status{env=\"dev\",status=\"broken\"} 1"),
        "{metrics}"
    );

    // A state dir that cannot be written: not ready (nothing could persist
    // a rollout step), and ready again once it can.
    let state = f.path("state");
    let moved = f.path("state-away");
    std::fs::rename(&state, &moved).expect("move state dir");
    std::fs::write(&state, "not a directory").expect("file");
    let r = get("/readyz").expect("readyz");
    assert_eq!(r.status(), 503);
    assert!(r.text().expect("body").contains("state dir"));
    std::fs::remove_file(&state).expect("rm");
    std::fs::rename(&moved, &state).expect("restore");
    assert_eq!(get("/readyz").expect("readyz").status(), 200);

    // Slowloris: clients that trickle their headers are cut off after the
    // header timeout; the daemon keeps answering everyone else meanwhile.
    let slow: Vec<std::net::TcpStream> = (0..20)
        .map(|_| {
            use std::io::Write;
            let mut s = std::net::TcpStream::connect(d.base.trim_start_matches("http://"))
                .expect("connect");
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .expect("write");
            s
        })
        .collect();
    let started = Instant::now();
    for _ in 0..4 {
        for mut s in slow.iter() {
            use std::io::Write;
            let _ = s.write_all(b"a");
        }
        assert_eq!(get("/healthz").expect("healthz").status(), 200);
        std::thread::sleep(Duration::from_secs(2));
    }
    for mut s in slow {
        use std::io::Read;
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        // Closed by the server (EOF, or a reset), not answered.
        let n = s.read(&mut buf).unwrap_or(0);
        let got = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(
            n == 0 || got.starts_with("HTTP/1.1 408"),
            "a slow client was answered: {got}"
        );
    }
    let cut = started.elapsed();
    assert!(
        cut < Duration::from_secs(25),
        "slow clients were cut only after {cut:?}"
    );

    // SIGTERM: a clean exit within the bound.
    let t = Instant::now();
    signal(&d.child, "-TERM");
    let status = loop {
        if let Some(s) = d.child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "the daemon did not stop within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    let mut err = String::new();
    use std::io::Read;
    d.child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("read");
    assert!(err.contains("keeping the old one"), "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    assert!(!err.contains("t0ken"), "a token leaked into the logs");
    assert!(
        !err.contains("Sup3r-s3cret-literal") && err.contains("literals[0]"),
        "a Secret value reached the log, or its error did not:\n{err}"
    );
    assert_eq!(
        err.matches("env not released until fixed").count(),
        1,
        "a broken env is reported once, not every poll:\n{err}"
    );
    assert!(err.contains("env/0-hijack"), "{err}");
}
