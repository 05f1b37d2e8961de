//! Polling: one fetch brings every env branch and the notes; branches
//! deleted upstream disappear; an unreachable remote is an infrastructure
//! error; a cache left locked by a killed process recovers.

use crate::support::{Fixture, git};
use platform_capstone::source::{GitRepo, NOTES_REF};

#[test]
fn one_fetch_brings_every_env_branch_and_reports_changes() {
    let f = Fixture::new();
    let mut w = f.writer("cache");
    let first = w.fetch().expect("fetch");
    assert_eq!(
        first.heads.keys().cloned().collect::<Vec<_>>(),
        vec!["env/dev", "env/prod", "env/staging"]
    );
    assert_eq!(first.changed.len(), 3);
    assert!(
        !first.heads.contains_key("main"),
        "main is not an env branch"
    );

    let again = w.fetch().expect("fetch");
    assert!(again.changed.is_empty(), "a no-op poll changes nothing");

    // Upstream: a new commit on staging, a new env branch, a deleted one.
    let work = f.path("work");
    git(&work, &["checkout", "-q", "env/staging"]);
    std::fs::write(work.join("touch"), "x").expect("write");
    git(&work, &["add", "touch"]);
    git(&work, &["commit", "-qm", "touch"]);
    git(
        &work,
        &[
            "push",
            "-q",
            "origin",
            "env/staging",
            "env/staging:env/qa",
            ":env/prod",
        ],
    );
    let r = w.fetch().expect("fetch");
    assert_eq!(r.changed, vec!["env/qa", "env/staging"]);
    assert_eq!(r.removed, vec!["env/prod"]);
    assert_eq!(r.heads["env/staging"], f.remote_rev("env/staging"));
}

#[test]
fn an_unreachable_remote_is_an_infrastructure_error() {
    let f = Fixture::new();
    let mut w = f.writer("cache");
    w.fetch().expect("fetch");
    let heads = w.heads().expect("heads");
    std::fs::rename(&f.remote, f.path("moved.git")).expect("hide remote");
    let err = w.fetch().expect_err("remote is gone");
    assert!(err.is_infrastructure(), "{err}");
    assert!(err.to_string().contains("remote.git"), "{err}");
    // The last known heads are still there to keep serving.
    assert_eq!(w.heads().expect("heads"), heads);
}

#[test]
fn a_cache_is_used_by_one_process_and_stale_locks_are_cleared() {
    let f = Fixture::new();
    let mut w = f.writer("cache");
    w.fetch().expect("fetch");
    // While `w` holds the cache, a second user waits, then gives up.
    let err = platform_capstone::source::Git2Repo::open_remote(&f.url(), &f.path("cache"), None)
        .err()
        .expect("cache is locked");
    assert!(err.to_string().contains("in use"), "{err}");
    drop(w);
    // A kill -9 mid-update leaves a ref lock file behind.
    let cache_repo = std::fs::read_dir(f.path("cache"))
        .expect("ls")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .expect("cache repo");
    std::fs::create_dir_all(cache_repo.join("refs/heads/env")).expect("mkdir");
    std::fs::write(cache_repo.join("refs/heads/env/dev.lock"), "").expect("lock");
    let mut w = f.writer("cache");
    w.fetch().expect("fetch after stale lock");
    assert!(!cache_repo.join("refs/heads/env/dev.lock").exists());
    assert!(
        w.repository().refname_to_id(NOTES_REF).is_err(),
        "no notes yet"
    );
}

/// A git server that answers every connection with one byte every
/// `every`, for ever: each read succeeds, so only an overall deadline
/// stops a client. Returns its `git://` URL.
fn trickling_server(every: std::time::Duration) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = stream;
                // A pkt-line length that promises more than ever comes.
                for b in b"00ff".iter().cycle() {
                    if s.write_all(&[*b]).is_err() {
                        return;
                    }
                    std::thread::sleep(every);
                }
            });
        }
    });
    format!("git://127.0.0.1:{port}/config.git")
}

/// A peer trickling a byte every 2 s: `status` fails within its git
/// deadline with a message naming it, and a daemon polling it still
/// answers health checks and exits on SIGTERM within 5 s.
#[test]
fn a_trickling_peer_is_bounded_by_the_git_deadline() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let f = Fixture::new();
    let url = trickling_server(Duration::from_secs(2));
    let port = platform_capstone::adapters::process::free_port().expect("port");
    let config = f.daemon_config(
        &format!("listen = \"127.0.0.1:{port}\"\npoll_interval = \"1s\"\ngit_timeout = \"3s\"\nlog_format = \"text\"\n"),
        None,
    );
    let text = std::fs::read_to_string(&config).expect("read");
    std::fs::write(&config, text.replace(&f.url(), &url)).expect("point at the trickler");
    let t = Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .expect("status");
    let took = t.elapsed();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("no answer within 3s"), "{err}");
    assert!(took < Duration::from_secs(20), "status took {took:?}");

    let mut daemon = Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
        .args(["daemon", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon");
    let health = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::blocking::get(&health).is_ok_and(|r| r.status() == 200) {
        assert!(
            Instant::now() < deadline,
            "the daemon never served /healthz"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Mid-fetch (the poll started at once and the peer trickles).
    std::thread::sleep(Duration::from_millis(1500));
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let t = Instant::now();
    let status = loop {
        if let Some(s) = daemon.try_wait().expect("wait") {
            break s;
        }
        if t.elapsed() > Duration::from_secs(5) {
            let _ = daemon.kill();
            panic!("the daemon did not exit within 5 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_worker_cache_syncs_from_the_poll_cache_on_disk_and_never_loses_its_own_newer_writes() {
    use platform_capstone::source::{CommitOutcome, FileChange, TreeReader};
    let f = Fixture::new();
    let mut poll = f.writer("poll");
    let heads = poll.fetch().expect("fetch").heads;
    poll.update_note(&heads["env/dev"], &mut |_| "from the poll\n".into())
        .expect("note");
    let source = poll.repository().path().to_path_buf();
    let notes_of =
        |r: &platform_capstone::source::Git2Repo| r.repository().refname_to_id(NOTES_REF).ok();
    // Everything the poll has, the remote not asked: it is gone.
    let mut worker = f.writer("worker");
    std::fs::rename(&f.remote, f.path("away.git")).expect("hide remote");
    let first = worker.sync_from(&source).expect("sync");
    assert_eq!(first.heads, heads);
    assert_eq!(first.changed.len(), 3);
    assert_eq!(notes_of(&worker), notes_of(&poll));
    assert_eq!(
        worker.note(&heads["env/dev"]).expect("note").as_deref(),
        Some("from the poll\n")
    );
    std::fs::rename(f.path("away.git"), &f.remote).expect("restore remote");

    // The worker writes (a commit, a note) before the poll fetched them:
    // syncing from the older poll cache keeps both.
    let ours = match worker
        .commit_change("env/dev", "ours", &mut |_: &dyn TreeReader| {
            Ok(Some(vec![FileChange {
                path: "touch".into(),
                content: Some(b"x".to_vec()),
            }]))
        })
        .expect("commit")
    {
        CommitOutcome::Committed { commit, .. } => commit,
        CommitOutcome::NothingToDo => panic!("nothing committed"),
    };
    worker
        .update_note(&ours, &mut |_| "from the worker\n".into())
        .expect("note");
    let notes = notes_of(&worker);
    let kept = worker.sync_from(&source).expect("sync");
    assert_eq!(kept.heads["env/dev"], ours);
    assert!(kept.changed.is_empty(), "{:?}", kept.changed);
    assert_eq!(notes_of(&worker), notes);

    // Upstream rewrites staging and deletes prod; once the poll fetched,
    // the worker takes the rewrite and loses prod.
    let work = f.path("work");
    git(&work, &["fetch", "-q", "origin"]);
    git(
        &work,
        &["checkout", "-q", "-B", "env/staging", "origin/env/staging"],
    );
    git(&work, &["commit", "-q", "--amend", "-m", "rewritten"]);
    git(
        &work,
        &[
            "push",
            "-q",
            "--force",
            "origin",
            "env/staging",
            ":env/prod",
        ],
    );
    poll.fetch().expect("fetch");
    let r = worker.sync_from(&source).expect("sync");
    assert_eq!(r.heads["env/staging"], f.remote_rev("env/staging"));
    assert_eq!(r.removed, vec!["env/prod"]);
    assert_eq!(r.heads["env/dev"], ours, "the poll has our commit now");
    assert_eq!(notes_of(&worker), notes_of(&poll));
    // Nothing of the sync's staging refs is left behind.
    let left: Vec<String> = worker
        .repository()
        .references()
        .expect("refs")
        .filter_map(|r| r.ok()?.name().ok().map(str::to_string))
        .filter(|n| n.contains("sync"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
