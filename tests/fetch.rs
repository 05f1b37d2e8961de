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
