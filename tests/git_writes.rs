//! Writes to env branches: signed, compare-and-swap, never forced, never lost.

use crate::support::{Fixture, git, git_cmd};
use platform_capstone::source::{CommitOutcome, FileChange, Git2Repo, GitError, GitRepo};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn write_file(repo: &mut Git2Repo, branch: &str, path: &str, content: &str) -> CommitOutcome {
    let message = format!("Write {path}\n");
    repo.commit_change(branch, &message, &mut |_tree| {
        Ok(Some(vec![FileChange {
            path: path.to_string(),
            content: Some(content.as_bytes().to_vec()),
        }]))
    })
    .expect("commit_change")
}

fn committed(o: CommitOutcome) -> String {
    match o {
        CommitOutcome::Committed { commit, .. } => commit,
        CommitOutcome::NothingToDo => panic!("expected a commit"),
    }
}

fn verify_commit(repo: &Path, allowed: &Path, rev: &str) -> bool {
    git_cmd(
        repo,
        &[
            "-c",
            "gpg.format=ssh",
            "-c",
            &format!("gpg.ssh.allowedSignersFile={}", allowed.display()),
            "verify-commit",
            rev,
        ],
    )
    .stderr(Stdio::null())
    .status()
    .expect("run git verify-commit")
    .success()
}

#[test]
fn a_commit_by_the_tool_passes_git_verify_commit_and_a_tampered_one_fails() {
    let f = Fixture::new();
    let mut w = f.writer("cache");
    w.fetch().expect("fetch");
    let commit = committed(write_file(
        &mut w,
        "env/dev",
        "overlays/dev/pin.txt",
        "v2\n",
    ));
    assert_eq!(f.remote_rev("env/dev"), commit);

    let clone = f.fresh_clone("clone");
    assert!(verify_commit(&clone, &f.allowed_signers, &commit));

    // Same signature header, altered message: a forged commit.
    let raw = git(&clone, &["cat-file", "commit", &commit]);
    let forged = raw.replace("Write overlays/dev/pin.txt", "Write overlays/prod/pin.txt");
    assert_ne!(raw, forged);
    let mut hash = git_cmd(&clone, &["hash-object", "-t", "commit", "-w", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("hash-object");
    use std::io::Write;
    hash.stdin
        .take()
        .expect("stdin")
        .write_all(format!("{forged}\n").as_bytes())
        .expect("write");
    let out = hash.wait_with_output().expect("hash-object");
    let forged_id = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(!verify_commit(&clone, &f.allowed_signers, &forged_id));

    // Our own verifier agrees with git on both.
    git(&clone, &["branch", "env/forged", &forged_id]);
    let local = Git2Repo::open_local(&clone).expect("open");
    let text = std::fs::read_to_string(&f.allowed_signers).expect("read");
    let signers = platform_capstone::signing::AllowedSigners::parse(&text).expect("parse");
    let head = local.head_info("env/forged").expect("head");
    let platform_capstone::source::SignatureState::Signed { signature, payload } = head.signature
    else {
        panic!("forged commit lost its signature header");
    };
    assert!(matches!(
        signers.verify("git", &payload, &signature, None),
        Err(platform_capstone::signing::VerifyError::BadSignature { .. })
    ));
    git(&clone, &["branch", "env/dev", "origin/env/dev"]);
    let head = local.head_info("env/dev").expect("head");
    let platform_capstone::source::SignatureState::Signed { signature, payload } = head.signature
    else {
        panic!("unsigned");
    };
    assert!(signers.verify("git", &payload, &signature, None).is_ok());
}

/// Two writers with separate caches race on one branch: every commit of
/// both lands, history stays linear, and nothing is forced.
fn race(url: &str, f: &Fixture) {
    let n = 6;
    let run = |who: &'static str| {
        let url = url.to_string();
        let cache = f.path(&format!("cache-{who}"));
        let signer = f.signer();
        std::thread::spawn(move || {
            let mut w = Git2Repo::open_remote(&url, &cache, None)
                .expect("open")
                .with_signer(signer)
                .with_push_attempts(50);
            w.fetch().expect("fetch");
            (0..n)
                .map(|i| {
                    committed(write_file(
                        &mut w,
                        "env/dev",
                        &format!("race/{who}-{i}"),
                        who,
                    ))
                })
                .collect::<Vec<String>>()
        })
    };
    let (a, b) = (run("a"), run("b"));
    let a = a.join().expect("writer a");
    let b = b.join().expect("writer b");
    let history = git(&f.remote, &["rev-list", "--first-parent", "env/dev"]);
    let history: Vec<&str> = history.lines().collect();
    let merges = git(&f.remote, &["rev-list", "--merges", "env/dev"]);
    assert!(merges.is_empty(), "history must stay linear");
    for list in [&a, &b] {
        let positions: Vec<usize> = list
            .iter()
            .map(|c| {
                history
                    .iter()
                    .position(|h| h == c)
                    .unwrap_or_else(|| panic!("commit {c} was lost"))
            })
            .collect();
        // rev-list is newest first: each writer's commits appear in order.
        assert!(positions.windows(2).all(|w| w[0] > w[1]), "{positions:?}");
    }
    let files = git(&f.remote, &["ls-tree", "--name-only", "env/dev", "race/"]);
    assert_eq!(files.lines().count(), 2 * n);
}

#[test]
fn concurrent_writers_on_a_local_remote_both_land_in_order() {
    let f = Fixture::new();
    race(&f.url(), &f);
}

/// `git daemon` on loopback with receive-pack: the smart protocol path.
struct GitDaemon(Child);

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn git_daemon(base: &Path) -> (GitDaemon, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    // Run git-daemon itself: killing the `git daemon` wrapper would orphan it.
    let exec_path = String::from_utf8(
        Command::new("git")
            .arg("--exec-path")
            .output()
            .expect("git --exec-path")
            .stdout,
    )
    .expect("utf8");
    let child = Command::new(Path::new(exec_path.trim()).join("git-daemon"))
        .args([
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            "--listen=127.0.0.1",
            &format!("--port={port}"),
            &format!("--base-path={}", base.display()),
            &base.display().to_string(),
        ])
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start git daemon");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "git daemon did not listen on {port} within 10s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (GitDaemon(child), port)
}

#[test]
fn concurrent_writers_over_the_git_protocol_both_land_in_order() {
    let f = Fixture::new();
    let (_daemon, port) = git_daemon(f.dir.path());
    race(&format!("git://127.0.0.1:{port}/remote.git"), &f);
}

#[test]
fn a_stale_push_over_the_git_protocol_is_refused_not_forced() {
    let f = Fixture::new();
    let (_daemon, port) = git_daemon(f.dir.path());
    let url = format!("git://127.0.0.1:{port}/remote.git");
    let mut slow = Git2Repo::open_remote(&url, &f.path("slow"), None)
        .expect("open")
        .with_signer(f.signer())
        .with_push_attempts(1);
    slow.fetch().expect("fetch");
    // Someone else moves the branch after `slow` fetched.
    let mut other = f.writer("other");
    other.fetch().expect("fetch");
    let theirs = committed(write_file(&mut other, "env/dev", "x", "theirs"));
    let err = slow
        .commit_change("env/dev", "mine\n", &mut |_| {
            Ok(Some(vec![FileChange {
                path: "y".into(),
                content: Some(b"mine".to_vec()),
            }]))
        })
        .expect_err("a single attempt must lose the race");
    assert!(matches!(err, GitError::Contended { .. }), "{err}");
    assert_eq!(f.remote_rev("env/dev"), theirs, "their commit must survive");
}

#[test]
fn revert_produces_the_inverse_change_and_is_signed() {
    let f = Fixture::new();
    let mut w = f.writer("cache");
    w.fetch().expect("fetch");
    let before = f.remote_rev("env/dev^{tree}");
    let bad = committed(write_file(
        &mut w,
        "env/dev",
        "overlays/dev/kustomization.yaml",
        "broken: true\n",
    ));
    assert_ne!(f.remote_rev("env/dev^{tree}"), before);
    let message =
        format!("Revert \"bad\"\n\nThis reverts commit {bad}.\n\nRelease-Id: rel-2026-11-25-01\n");
    let revert = committed(w.revert("env/dev", &bad, &message).expect("revert"));
    assert_eq!(f.remote_rev("env/dev"), revert);
    assert_eq!(
        f.remote_rev("env/dev^{tree}"),
        before,
        "revert restores the tree"
    );
    assert_eq!(
        f.remote_rev("env/dev^"),
        bad,
        "revert is a new commit on top"
    );
    let clone = f.fresh_clone("clone");
    assert!(verify_commit(&clone, &f.allowed_signers, &revert));
    // Reverting again is a no-op: the change is already undone.
    assert_eq!(
        w.revert("env/dev", &bad, &message).expect("revert"),
        CommitOutcome::NothingToDo
    );
}

#[test]
fn notes_survive_push_to_a_bare_remote_and_a_fresh_clone() {
    let f = Fixture::new();
    let mut a = f.writer("a");
    let mut b = f.writer("b");
    a.fetch().expect("fetch");
    b.fetch().expect("fetch");
    let c1 = committed(write_file(&mut a, "env/dev", "one", "1"));
    b.fetch().expect("fetch");
    let c2 = committed(write_file(&mut b, "env/dev", "two", "2"));
    // Both write notes from stale notes heads: the second must fetch and retry.
    a.update_note(&c1, &mut |_| "{\"release\":\"rel-2026-11-25-01\"}".into())
        .expect("note a");
    b.update_note(&c2, &mut |_| "{\"release\":\"rel-2026-11-25-02\"}".into())
        .expect("note b");
    // Appending keeps the earlier text.
    a.update_note(&c1, &mut |old| {
        format!("{}\n{{\"step\":\"canary_10\"}}", old.unwrap_or(""))
    })
    .expect("append");

    let clone = f.fresh_clone("clone");
    let n1 = git(&clone, &["notes", "--ref=platform-capstone", "show", &c1]);
    let n2 = git(&clone, &["notes", "--ref=platform-capstone", "show", &c2]);
    assert_eq!(
        n1,
        "{\"release\":\"rel-2026-11-25-01\"}\n{\"step\":\"canary_10\"}"
    );
    assert_eq!(n2, "{\"release\":\"rel-2026-11-25-02\"}");

    // A brand-new cache sees them after its first fetch.
    let mut fresh = f.writer("fresh");
    fresh.fetch().expect("fetch");
    assert_eq!(
        fresh.note(&c2).expect("note").as_deref(),
        Some("{\"release\":\"rel-2026-11-25-02\"}")
    );
}

#[test]
fn writes_that_escape_the_tree_or_are_unsigned_change_nothing() {
    let f = Fixture::new();
    let head = f.remote_rev("env/dev");
    let mut w = f.writer("cache");
    w.fetch().expect("fetch");
    for path in ["../outside", "/etc/passwd", "a/../../b"] {
        let err = w
            .commit_change("env/dev", "x\n", &mut |_| {
                Ok(Some(vec![FileChange {
                    path: path.into(),
                    content: Some(b"x".to_vec()),
                }]))
            })
            .expect_err(path);
        assert!(err.to_string().contains(path), "{err} should name {path}");
    }
    let mut unsigned = Git2Repo::open_remote(&f.url(), &f.path("unsigned"), None).expect("open");
    unsigned.fetch().expect("fetch");
    let err = unsigned
        .commit_change("env/dev", "x\n", &mut |_| Ok(Some(vec![])))
        .expect_err("unsigned");
    assert!(matches!(err, GitError::NoSigner));
    assert_eq!(f.remote_rev("env/dev"), head, "nothing was pushed");
    // Writing what is already there makes no commit.
    let current = git(&f.remote, &["show", "env/dev:envs/dev.toml"]) + "\n";
    let outcome = write_file(&mut w, "env/dev", "envs/dev.toml", &current);
    assert_eq!(outcome, CommitOutcome::NothingToDo);
    assert_eq!(f.remote_rev("env/dev"), head);
}

#[test]
fn two_daemons_promoting_the_same_release_make_one_promotion_commit() {
    use platform_capstone::engine::promote;
    use platform_capstone::gates::run::Checks;
    use platform_capstone::model::Verdict;
    let f = Fixture::new();
    let mut probe = f.writer("probe");
    probe.fetch().expect("fetch");
    let head = probe.resolve("env/dev").expect("dev");
    let tree = probe.reader(&head).expect("tree");
    let cfg = platform_capstone::config::load_repo(tree.as_ref());
    let (dev, staging) = (
        cfg.env("dev").expect("dev").clone(),
        cfg.env("staging").expect("staging").clone(),
    );
    drop(tree);
    let image = "localhost:5000/platform-capstone/demo@sha256:1111111111111111111111111111111111111111111111111111111111111111".to_string();
    let checks = Checks {
        infrastructure: None,
        artifact_signature: Verdict::from_findings("artifact_signature", vec![]),
        vulnerability_policy: Verdict::from_findings("vulnerability_policy", vec![]),
        admission_policy: Verdict::from_findings("admission_policy", vec![]),
    };
    let before = f.remote_rev("env/staging");
    // Two daemons, each with its own cache, promote the same release at once.
    let results: Vec<Option<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = ["daemon-a", "daemon-b"]
            .iter()
            .map(|cache| {
                let (f, dev, staging, head, image, checks) =
                    (&f, &dev, &staging, &head, &image, &checks);
                s.spawn(move || {
                    let mut repo = f.writer(cache);
                    repo.fetch().expect("fetch");
                    promote::promote(
                        &mut repo,
                        &f.signer(),
                        "rel-2026-11-25-01",
                        dev,
                        staging,
                        head,
                        std::slice::from_ref(image),
                        checks,
                        None,
                        0,
                    )
                    .expect("promote")
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        results.iter().filter(|r| r.is_some()).count(),
        1,
        "exactly one daemon committed: {results:?}"
    );
    let log = git(
        &f.remote,
        &["log", "--format=%s", &format!("{before}..env/staging")],
    );
    assert_eq!(log.lines().count(), 1, "{log}");
    assert!(
        log.contains("promote rel-2026-11-25-01 to staging"),
        "{log}"
    );
}

#[test]
fn drift_reports_go_to_their_own_branch_created_once_and_committed_only_on_change() {
    let f = Fixture::new();
    let mut w = f.writer("cache");
    w.fetch().expect("fetch");
    let report = |text: &str| {
        vec![FileChange {
            path: "reports/dev.md".into(),
            content: Some(text.as_bytes().to_vec()),
        }]
    };
    // No `reports` branch yet: created as a root commit, signed.
    let first = committed(
        w.commit_side_branch("reports", "drift: dev: in sync", &report("in sync\n"))
            .expect("first report"),
    );
    assert_eq!(f.remote_rev("reports"), first);
    assert_eq!(
        git(&f.remote, &["rev-list", "--count", "reports"]),
        "1",
        "a root commit, unrelated to the env branches"
    );
    assert!(verify_commit(&f.remote, &f.allowed_signers, "reports"));
    // Same content: nothing to commit. New content: one more commit on top.
    assert!(matches!(
        w.commit_side_branch("reports", "drift: dev: in sync", &report("in sync\n"))
            .expect("same"),
        CommitOutcome::NothingToDo
    ));
    let mut other = f.writer("other-cache");
    let second = committed(
        other
            .commit_side_branch("reports", "drift: dev: 1 drifted", &report("1 drifted\n"))
            .expect("second"),
    );
    assert_eq!(git(&f.remote, &["rev-parse", "reports~1"]), first);
    assert_eq!(f.remote_rev("reports"), second);
    // Env branches are never a report destination; paths stay confined.
    let env_before = f.remote_rev("env/dev");
    assert!(w.commit_side_branch("env/dev", "x", &report("x")).is_err());
    assert!(
        w.commit_side_branch(
            "reports",
            "x",
            &[FileChange {
                path: "../escape.md".into(),
                content: Some(b"x".to_vec()),
            }],
        )
        .is_err()
    );
    assert_eq!(f.remote_rev("env/dev"), env_before);
    assert_eq!(f.remote_rev("reports"), second);
}

#[test]
fn notes_are_signed_and_move_in_the_cache_only_after_the_remote_accepts_them() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new();
    let (_daemon, port) = git_daemon(f.dir.path());
    let url = format!("git://127.0.0.1:{port}/remote.git");
    let mut w = Git2Repo::open_remote(&url, &f.path("cache"), None)
        .expect("open")
        .with_signer(f.signer())
        .with_push_attempts(2);
    w.fetch().expect("fetch");
    let c1 = committed(write_file(&mut w, "env/dev", "one", "1"));
    w.update_note(&c1, &mut |_| "first".into()).expect("note");
    let accepted = f.remote_rev("refs/notes/platform-capstone");
    // The remote refuses every notes update (a server-side hook).
    let hook = f.dir.path().join("remote.git/hooks/pre-receive");
    std::fs::create_dir_all(hook.parent().expect("hooks dir")).expect("hooks dir");
    std::fs::write(
        &hook,
        "#!/bin/sh\nwhile read old new ref; do case \"$ref\" in refs/notes/*) echo refused >&2; exit 1;; esac; done\n",
    )
    .expect("hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let err = w
        .update_note(&c1, &mut |_| "second".into())
        .expect_err("the remote refuses");
    assert!(!err.to_string().is_empty());
    // Nothing moved: neither the remote nor the cache shows the refused note.
    assert_eq!(f.remote_rev("refs/notes/platform-capstone"), accepted);
    assert_eq!(w.note(&c1).expect("note").as_deref(), Some("first"));
    std::fs::remove_file(&hook).expect("unhook");
    w.update_note(&c1, &mut |old| format!("{}+second", old.unwrap_or("")))
        .expect("note");
    assert_eq!(w.note(&c1).expect("note").as_deref(), Some("first+second"));
    // Every notes commit is signed like every other commit the tool makes.
    let clone = f.fresh_clone("clone");
    for rev in [
        "refs/notes/platform-capstone",
        "refs/notes/platform-capstone~1",
    ] {
        assert!(
            verify_commit(&clone, &f.allowed_signers, rev),
            "{rev} is not signed by the daemon's key"
        );
    }
    assert_eq!(
        git(&clone, &["notes", "--ref=platform-capstone", "show", &c1]),
        "first+second"
    );
}
