//! Daemon figures (issue 7): idle RSS and CPU with 3 envs and with 300
//! generated envs (every env in sync, as a long-running daemon mostly is),
//! and push-to-decision latency — the time from a push to the daemon
//! acting on the new head — by polling (git:// remote, 2 s interval), by
//! the file watch (file:// remote) and by the webhook. Goals: idle RSS
//! under 30 MiB at 3 envs and under 150 MiB at 300; push-to-decision
//! under 1 s via notify and webhook.
//!
//! `cargo bench --bench daemon`

use platform_capstone::engine::store::{LastGood, Store};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .expect("git");
    assert!(
        o.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

/// Commits what is staged, signed with the SSH key at `key`.
fn signed_commit(work: &Path, key: &Path, message: &str) {
    let signing = format!("user.signingkey={}", key.display());
    git(
        work,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &signing,
            "commit",
            "-S",
            "-q",
            "-m",
            message,
        ],
    );
}

/// A config repo with `n` envs (3: the blueprint; else generated copies of
/// dev), pushed to a bare remote; every env's last good release recorded
/// so the daemon starts in sync. Returns (work clone, remote).
fn repo(root: &Path, n: usize, state: &Path) -> (PathBuf, PathBuf) {
    let work = root.join("work");
    platform_capstone::blueprint::write_files(&work).expect("blueprint");
    let mut names = vec!["dev".to_string(), "staging".into(), "prod".into()];
    if n != 3 {
        let dev = std::fs::read_to_string(work.join("envs/dev.toml")).expect("dev");
        for f in ["dev", "staging", "prod"] {
            std::fs::remove_file(work.join(format!("envs/{f}.toml"))).expect("rm");
        }
        names = (1..=n).map(|i| format!("e{i:03}")).collect();
        for name in &names {
            let text: String = dev
                .lines()
                .filter(|l| !l.starts_with("next"))
                .map(|l| {
                    if l.starts_with("branch") {
                        format!("branch = \"env/{name}\"")
                    } else if l.starts_with("overlay") {
                        format!("overlay = \"overlays/{name}\"")
                    } else {
                        l.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            std::fs::write(work.join(format!("envs/{name}.toml")), text).expect("env");
            // Every env has its own overlay (promotions write pins into it).
            std::fs::create_dir_all(work.join(format!("overlays/{name}"))).expect("mkdir");
            std::fs::copy(
                work.join("overlays/dev/kustomization.yaml"),
                work.join(format!("overlays/{name}/kustomization.yaml")),
            )
            .expect("overlay");
        }
    }
    // The trust root: heads by the daemon or the platform key, policy by
    // the platform key, which signs the config commit.
    let line = |key: &Path, who: &str| {
        let public = platform_capstone::signing::generate_key(key, who).expect("key");
        platform_capstone::signing::allowed_signers_line(who, "git", &public).expect("line")
    };
    let platform = root.join("platform_key");
    let platform_line = line(&platform, "platform@example.com");
    let daemon_line = line(&root.join("key"), "bench@example.com");
    std::fs::write(
        root.join("allowed_signers"),
        format!("{daemon_line}\n{platform_line}\n"),
    )
    .expect("signers");
    std::fs::write(root.join("policy_signers"), format!("{platform_line}\n")).expect("signers");
    let envs: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    std::fs::write(
        root.join("trust.toml"),
        format!(
            "[trust]\nenvs = [{}]\nallowed_signers = \"{}\"\npolicy_signers = \"{}\"\n",
            envs.join(", "),
            root.join("allowed_signers").display(),
            root.join("policy_signers").display()
        ),
    )
    .expect("trust");
    git(&work, &["init", "-q", "-b", "main"]);
    git(&work, &["add", "-A"]);
    signed_commit(&work, &platform, "config");
    let branches: Vec<String> = names.iter().map(|n| format!("env/{n}")).collect();
    for b in &branches {
        git(&work, &["branch", b]);
    }
    let remote = root.join("remote.git");
    git(
        root,
        &["init", "-q", "--bare", remote.to_str().expect("utf8")],
    );
    git(
        &work,
        &["remote", "add", "origin", remote.to_str().expect("utf8")],
    );
    git(&work, &["push", "-q", "origin", "--all"]);
    // In sync: last good = what each head renders.
    let reader = platform_capstone::source::DirReader::open(&work).expect("reader");
    let cfg = platform_capstone::config::load_repo(&reader);
    let store = Store::new(state);
    for e in &cfg.envs {
        let images = platform_capstone::render::images(
            &platform_capstone::render::render(&reader, &e.overlay).expect("render"),
        );
        store
            .save_last_good(
                &e.name,
                &LastGood {
                    release: "rel-bench".into(),
                    commit: "0".repeat(40),
                    images,
                    version: "1".into(),
                    baseline: Default::default(),
                    since: None,
                    previous: None,
                },
            )
            .expect("last good");
    }
    (work, remote)
}

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

fn start(root: &Path, remote: &str, state: &Path, poll: &str, secret: Option<&Path>) -> Daemon {
    let port = platform_capstone::adapters::process::free_port().expect("port");
    let key = root.join("key");
    let mut cfg = format!(
        "remote = \"{remote}\"\ncache_dir = \"{}\"\nstate_dir = \"{}\"\nsigning_key = \"{}\"\nlisten = \"127.0.0.1:{port}\"\npoll_interval = \"{poll}\"\nlog_level = \"warn\"\nlocal_stack = \"{}\"\n",
        root.join(format!("cache-{port}")).display(),
        state.display(),
        key.display(),
        root.join("no-stack").display()
    );
    if let Some(s) = secret {
        cfg.push_str(&format!("webhook_secret_file = \"{}\"\n", s.display()));
    }
    cfg.push_str("[identity]\nname = \"bench\"\nemail = \"bench@example.com\"\n");
    cfg.push_str(&std::fs::read_to_string(root.join("trust.toml")).expect("trust"));
    let path = root.join(format!("daemon-{port}.toml"));
    std::fs::write(&path, cfg).expect("config");
    let child = Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
        .args(["daemon", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(root.join(format!("daemon-{port}.log"))).expect("log"))
        .spawn()
        .expect("daemon");
    let d = Daemon {
        child,
        base: format!("http://127.0.0.1:{port}"),
    };
    let t = Instant::now();
    while !reqwest::blocking::get(format!("{}/readyz", d.base)).is_ok_and(|r| r.status() == 200) {
        if t.elapsed() > Duration::from_secs(120) {
            let log = std::fs::read_to_string(root.join(format!("daemon-{port}.log")))
                .unwrap_or_default();
            panic!(
                "daemon not ready within 120 s; its log:\n{}",
                &log[log.len().saturating_sub(3000)..]
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    d
}

/// (RSS MiB, CPU % of one core over `over`).
fn idle(pid: u32, over: Duration) -> (f64, f64) {
    let ticks = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let after = stat.rsplit(')').next().unwrap_or_default();
        let f: Vec<&str> = after.split_whitespace().collect();
        f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
            + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
    };
    let t0 = ticks();
    std::thread::sleep(over);
    let cpu = (ticks() - t0) as f64 / 100.0 / over.as_secs_f64() * 100.0;
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0;
    (rss, cpu)
}

/// Pushes a commit to env/dev; returns its sha.
fn push(work: &Path) -> String {
    git(work, &["checkout", "-q", "env/dev"]);
    let f = work.join("overlays/dev/kustomization.yaml");
    let mut t = std::fs::read_to_string(&f).expect("read");
    t.push_str("# bump\n");
    std::fs::write(&f, t).expect("write");
    git(work, &["add", "-A"]);
    signed_commit(
        work,
        &work.parent().expect("root").join("platform_key"),
        "bump",
    );
    git(work, &["push", "-q", "origin", "env/dev"]);
    git(work, &["rev-parse", "HEAD"])
}

fn seen(d: &Daemon, head: &str) -> bool {
    reqwest::blocking::get(format!("{}/api/v1/envs", d.base))
        .ok()
        .and_then(|r| r.json::<serde_json::Value>().ok())
        .is_some_and(|v| v["dev"]["head"] == head)
}

fn latency(d: &Daemon, work: &Path, after_push: impl Fn()) -> f64 {
    let head = push(work);
    let t = Instant::now();
    after_push();
    while !seen(d, &head) {
        assert!(t.elapsed() < Duration::from_secs(30), "push never seen");
        std::thread::sleep(Duration::from_millis(5));
    }
    t.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    // Idle at 3 and at 300 envs.
    for n in [3usize, 300] {
        let root = tempfile::tempdir().expect("tmp");
        let state = root.path().join("state");
        let (_, remote) = repo(root.path(), n, &state);
        let d = start(
            root.path(),
            &format!("file://{}", remote.display()),
            &state,
            "30s",
            None,
        );
        std::thread::sleep(Duration::from_secs(5));
        let (rss, cpu) = idle(d.child.id(), Duration::from_secs(20));
        println!(
            "idle, {n:>3} envs: RSS {rss:6.1} MiB, CPU {cpu:5.2}% of one core (goal < {} MiB)",
            if n == 3 { 30 } else { 150 }
        );
    }

    // Push to decision.
    let root = tempfile::tempdir().expect("tmp");
    let state = root.path().join("state");
    let (work, remote) = repo(root.path(), 3, &state);
    let median = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    {
        let d = start(
            root.path(),
            &format!("file://{}", remote.display()),
            &state,
            "1h",
            None,
        );
        let v: Vec<f64> = (0..5).map(|_| latency(&d, &work, || {})).collect();
        println!(
            "push -> decision, file watch (notify):  {:7.1} ms (median of 5)",
            median(v)
        );
    }
    // git:// remote (no file watch): polling, then webhook.
    let port = platform_capstone::adapters::process::free_port().expect("port");
    let mut gitd = Command::new("git")
        .args([
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--listen=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", root.path().display()))
        .arg(root.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git daemon");
    std::thread::sleep(Duration::from_millis(500));
    let url = format!("git://127.0.0.1:{port}/remote.git");
    {
        let d = start(root.path(), &url, &state, "2s", None);
        // Pushes land at different points of the interval.
        let v: Vec<f64> = (0..5)
            .map(|i| {
                std::thread::sleep(Duration::from_millis(400 * i));
                latency(&d, &work, || {})
            })
            .collect();
        println!(
            "push -> decision, polling every 2 s:     {:7.1} ms (median of 5)",
            median(v)
        );
    }
    {
        let secret = root.path().join("secret");
        std::fs::write(&secret, "s").expect("secret");
        let d = start(root.path(), &url, &state, "1h", Some(&secret));
        let base = d.base.clone();
        let hook = move || {
            use hmac::Mac;
            let body = br#"{"ref":"refs/heads/env/dev"}"#;
            let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"s").expect("key");
            mac.update(body);
            let sig: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let r = reqwest::blocking::Client::new()
                .post(format!("{base}/api/v1/webhook"))
                .header("x-github-event", "push")
                .header("x-hub-signature-256", format!("sha256={sig}"))
                .body(body.to_vec())
                .send()
                .expect("webhook");
            assert_eq!(r.status(), 202);
        };
        let v: Vec<f64> = (0..5).map(|_| latency(&d, &work, &hook)).collect();
        println!(
            "push -> decision, webhook:               {:7.1} ms (median of 5)",
            median(v)
        );
    }
    let _ = gitd.kill();
    let _ = gitd.wait();
}
