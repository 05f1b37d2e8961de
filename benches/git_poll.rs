//! Poll benchmark: one fetch of every env branch (+ reading each branch's
//! env file) from a local bare remote, beside the git CLI's `git fetch` of
//! the same refspec on the same remote, in the same run.
//!
//! `cargo bench --bench git_poll` prints median and p95 per poll for 3 and
//! 1,000 env branches. Goal (issue 2): a no-op poll of 1,000 branches
//! within 2x of the git CLI.

use platform_capstone::source::{Git2Repo, GitRepo};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const ROUNDS: usize = 30;

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .current_dir(dir)
        .args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "git {args:?} failed");
}

/// A bare remote with `n` env branches, each at its own commit holding an
/// env file, refs packed as a server's would be.
fn remote_with_branches(dir: &Path, n: usize) -> String {
    let path = dir.join(format!("remote-{n}.git"));
    let repo = git2::Repository::init_bare(&path).expect("init");
    let sig = git2::Signature::now("bench", "bench@example.com").expect("sig");
    for i in 0..n {
        let env = format!("e{i:04}");
        let blob = repo
            .blob(format!("branch = \"env/{env}\"\noverlay = \"overlays/{env}\"\n").as_bytes())
            .expect("blob");
        let mut envs = repo.treebuilder(None).expect("tb");
        envs.insert(format!("{env}.toml"), blob, 0o100644)
            .expect("insert");
        let envs = envs.write().expect("tree");
        let mut root = repo.treebuilder(None).expect("tb");
        root.insert("envs", envs, 0o040000).expect("insert");
        let tree = repo.find_tree(root.write().expect("tree")).expect("tree");
        let commit = repo
            .commit(None, &sig, &sig, &format!("env {env}"), &tree, &[])
            .expect("commit");
        repo.reference(&format!("refs/heads/env/{env}"), commit, false, "bench")
            .expect("ref");
    }
    git(&path, &["pack-refs", "--all"]);
    format!("file://{}", path.display())
}

struct Stats {
    median: Duration,
    p95: Duration,
}

fn measure(mut f: impl FnMut()) -> Stats {
    f(); // warm
    let mut samples: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    Stats {
        median: samples[ROUNDS / 2],
        p95: samples[(ROUNDS * 95) / 100],
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn main() {
    let dir = tempfile::tempdir().expect("tmp");
    println!("git poll benchmark ({ROUNDS} rounds each; median / p95 in ms)");
    println!(
        "{:<9} {:>14} {:>18} {:>18} {:>16} {:>9}",
        "branches", "first poll", "no-op fetch", "no-op fetch+read", "git CLI fetch", "ratio"
    );
    for n in [3usize, 1000] {
        let url = remote_with_branches(dir.path(), n);
        let cache = dir.path().join(format!("cache-{n}"));
        let t = Instant::now();
        let mut repo = Git2Repo::open_remote(&url, &cache, None).expect("open");
        let first = repo.fetch().expect("fetch");
        let first_poll = t.elapsed();
        assert_eq!(first.heads.len(), n);

        let fetch_only = measure(|| {
            let r = repo.fetch().expect("fetch");
            assert!(r.changed.is_empty());
        });
        let fetch_read = measure(|| {
            let r = repo.fetch().expect("fetch");
            for (branch, commit) in &r.heads {
                let env = branch.trim_start_matches("env/");
                let reader = repo.reader(commit).expect("reader");
                let text = reader.read(&format!("envs/{env}.toml")).expect("read");
                assert!(!text.is_empty());
            }
        });

        // The peer: git CLI fetching the same refspec into its own bare clone.
        let peer = dir.path().join(format!("peer-{n}.git"));
        git(
            dir.path(),
            &["init", "-q", "--bare", peer.to_str().expect("utf8")],
        );
        let spec = "+refs/heads/env/*:refs/heads/env/*";
        git(&peer, &["fetch", "-q", &url, spec]);
        let cli = measure(|| {
            git(
                &peer,
                &[
                    "fetch",
                    "-q",
                    "--no-auto-gc",
                    "--no-write-fetch-head",
                    &url,
                    spec,
                ],
            )
        });

        println!(
            "{:<9} {:>14} {:>18} {:>18} {:>16} {:>8.2}x",
            n,
            ms(first_poll),
            format!("{} / {}", ms(fetch_only.median), ms(fetch_only.p95)),
            format!("{} / {}", ms(fetch_read.median), ms(fetch_read.p95)),
            format!("{} / {}", ms(cli.median), ms(cli.p95)),
            fetch_only.median.as_secs_f64() / cli.median.as_secs_f64()
        );
    }
    println!(
        "ratio = our no-op fetch median / git CLI no-op fetch median (goal: <= 2x at 1,000 branches)"
    );
}
