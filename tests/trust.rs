//! The trust model through the binary, with a second clone pushing as
//! "someone else": prod is defined only by `env/prod` and what its pinned
//! signers signed. A hijack branch, a branch swap on env/dev, a
//! self-signed allowed_signers change, a force push backwards and a broken
//! env file each leave the other envs untouched, are reported with the
//! reason, and make `release` refuse before writing anything.

use crate::support::world::{keygen, signed_commit};
use crate::support::{Fixture, git};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_platform-capstone"))
        .current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run platform-capstone")
}

/// (env, status, problem) per pinned env, from `status --config -o json`.
fn statuses(dir: &Path, config: &Path) -> Vec<(String, String, String)> {
    let o = bin(
        dir,
        &[
            "status",
            "--config",
            config.to_str().expect("utf8"),
            "-o",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    rows.as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["env"].as_str().unwrap_or("?").to_string(),
                r["trust"]["status"].as_str().unwrap_or("?").to_string(),
                r["trust"]["problem"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn status_of(rows: &[(String, String, String)], env: &str) -> (String, String) {
    rows.iter()
        .find(|r| r.0 == env)
        .map(|r| (r.1.clone(), r.2.clone()))
        .unwrap_or_else(|| panic!("{env} missing from {rows:?}"))
}

/// Someone else's clone of the remote: their own identity, their pushes.
struct Clone {
    path: PathBuf,
}

impl Clone {
    fn new(f: &Fixture, name: &str) -> Self {
        let path = f.fresh_clone(name);
        Self { path }
    }

    fn edit(&self, branch: &str, file: &str, edit: impl Fn(&str) -> String) {
        git(&self.path, &["fetch", "-q", "origin"]);
        git(
            &self.path,
            &["checkout", "-q", "-B", branch, &format!("origin/{branch}")],
        );
        let p = self.path.join(file);
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        std::fs::write(&p, edit(&text)).expect("write");
    }

    /// Commits everything, signed with `key` (unsigned when `None`), and
    /// pushes `branch` (forced when asked: a rewrite).
    fn push(&self, branch: &str, key: Option<&Path>, message: &str, force: bool) -> String {
        git(&self.path, &["add", "-A"]);
        // (--allow-empty: a signer may vouch for a tree someone else built.)
        match key {
            Some(k) => signed_commit(&self.path, k, &["-q", "--allow-empty", "-m", message]),
            None => {
                git(
                    &self.path,
                    &["commit", "-q", "--allow-empty", "-m", message],
                );
            }
        }
        let mut args = vec!["push", "-q", "origin"];
        let spec = format!("+HEAD:refs/heads/{branch}");
        let plain = format!("HEAD:refs/heads/{branch}");
        args.push(if force { &spec } else { &plain });
        git(&self.path, &args);
        git(&self.path, &["rev-parse", "HEAD"])
    }
}

fn config(f: &Fixture, extra_heads: &str) -> PathBuf {
    let heads = f.path("heads_signers");
    let mut text = std::fs::read_to_string(&f.allowed_signers).expect("read");
    text.push_str(extra_heads);
    std::fs::write(&heads, text).expect("write");
    f.daemon_config("", Some(&heads))
}

#[test]
fn only_what_an_envs_pinned_signers_signed_defines_or_runs_it() {
    let f = Fixture::new();
    let d = f.dir.path();
    // The dev team may sign dev's heads (releases) but not change policy;
    // a stranger is pinned nowhere.
    let dev_team = keygen(d, "dev_key", "dev-team@example.com", "git");
    let _stranger = keygen(d, "stranger_key", "mallory@example.com", "git");
    let cfg = config(&f, &format!("{dev_team}\n"));
    let rows = statuses(d, &cfg);
    assert_eq!(
        rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(),
        vec!["dev", "staging", "prod"]
    );
    assert!(rows.iter().all(|r| r.1 == "ready"), "{rows:?}");
    let prod_head = f.remote_rev("env/prod");
    let release_into = |env: &str| {
        let o = bin(
            d,
            &[
                "release",
                "--version",
                "9.9.9",
                "--env",
                env,
                "--config",
                cfg.to_str().expect("utf8"),
            ],
        );
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };

    // 1. A new branch claiming to be prod: not pinned, never read.
    let mallory = Clone::new(&f, "mallory");
    mallory.edit("env/dev", "envs/prod.toml", |t| {
        t.replace("branch = \"env/prod\"", "branch = \"env/0-hijack\"")
            .replace("requires_approval = true", "requires_approval = false")
    });
    mallory.push(
        "env/0-hijack",
        Some(&d.join("stranger_key")),
        "prod lives here now",
        false,
    );
    let rows = statuses(d, &cfg);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert_eq!(status_of(&rows, "prod").0, "ready");
    assert_eq!(f.remote_rev("env/prod"), prod_head);

    // 2. The branch fields swapped on env/dev and prod's gates loosened
    //    there, signed by the dev team (a head signer, not a policy signer).
    let swap = |c: &Clone| {
        c.edit("env/dev", "envs/dev.toml", |t| {
            t.replace("branch = \"env/dev\"", "branch = \"env/prod\"")
        });
        c.edit("env/dev", "envs/prod.toml", |t| {
            t.replace("branch = \"env/prod\"", "branch = \"env/dev\"")
                .replace("signature = \"enforce\"", "signature = \"warn\"")
                .replace("requires_approval = true", "requires_approval = false")
        });
    };
    let dev_clone = Clone::new(&f, "dev-team");
    swap(&dev_clone);
    dev_clone.push("env/dev", Some(&d.join("dev_key")), "swap", false);
    let rows = statuses(d, &cfg);
    let (dev, why) = status_of(&rows, "dev");
    assert_eq!(dev, "untrusted", "{rows:?}");
    assert!(
        why.contains("changes policies/ or envs/") && why.contains("policy_signers"),
        "{why}"
    );
    assert_eq!(status_of(&rows, "prod").0, "ready");
    let (ok, err) = release_into("dev");
    assert!(!ok && err.contains("dev is untrusted"), "{err}");
    // validate of that tree, against the trust root, says so too.
    let v = bin(
        d,
        &[
            "validate",
            "--repo",
            dev_clone.path.to_str().expect("utf8"),
            "--config",
            cfg.to_str().expect("utf8"),
        ],
    );
    let out = String::from_utf8_lossy(&v.stdout);
    assert!(!v.status.success(), "{out}");
    assert!(
        out.contains("envs/dev.toml: branch:") && out.contains("defined only by its own branch"),
        "{out}"
    );
    // Even a policy signer vouching for the swap only breaks dev: dev
    // names its own branch.
    let platform = Clone::new(&f, "platform");
    swap(&platform);
    platform.push("env/dev", Some(&f.platform_key), "swap, signed", false);
    let rows = statuses(d, &cfg);
    let (dev, why) = status_of(&rows, "dev");
    assert_eq!(dev, "broken", "{rows:?}");
    assert!(why.contains("defined only by its own branch"), "{why}");
    assert_eq!(status_of(&rows, "prod"), ("ready".into(), String::new()));
    assert_eq!(f.remote_rev("env/prod"), prod_head);

    // 3. A stranger adds their own key to policies/allowed_signers and
    //    signs with it: unverified everywhere, refused.
    let staging_head = f.remote_rev("env/staging");
    let line = std::fs::read_to_string(d.join("stranger_key.pub")).expect("pub");
    mallory.edit("env/staging", "policies/allowed_signers", |t| {
        format!("{t}mallory@example.com namespaces=\"git\" {line}")
    });
    let self_signed = mallory.push(
        "env/staging",
        Some(&d.join("stranger_key")),
        "trust me",
        false,
    );
    let rows = statuses(d, &cfg);
    let (staging, why) = status_of(&rows, "staging");
    assert_eq!(staging, "untrusted", "{rows:?}");
    assert!(why.contains("not in allowed_signers"), "{why}");
    let o = bin(
        d,
        &[
            "status",
            "--repo",
            mallory.path.to_str().expect("utf8"),
            "-o",
            "json",
        ],
    );
    let repo_rows: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    let row = repo_rows
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["commit"] == self_signed.as_str())
        .expect("the self-signed head");
    assert_eq!(
        row["signature"]["state"], "unverified",
        "an in-tree file proves nothing: {row}"
    );
    let (ok, err) = release_into("staging");
    assert!(!ok && err.contains("staging is untrusted"), "{err}");
    assert_eq!(f.remote_rev("env/staging"), self_signed);
    assert_ne!(self_signed, staging_head);

    // 4. Prod's owners move prod forward; the daemon's state remembers it;
    //    then someone force-pushes prod back to the older (validly signed)
    //    commit: refused as a rewrite, nothing written.
    platform.edit("env/prod", "overlays/prod/kustomization.yaml", |t| {
        format!("{t}# reviewed\n")
    });
    let moved = platform.push("env/prod", Some(&f.platform_key), "prod: note", false);
    // A release attempt records the heads it accepted (it then fails on the
    // version, before writing anything).
    let (ok, err) = release_into("prod");
    assert!(!ok && !err.contains("untrusted"), "{err}");
    assert_eq!(f.remote_rev("env/prod"), moved);
    git(&mallory.path, &["fetch", "-q", "origin"]);
    git(
        &mallory.path,
        &["checkout", "-q", "-B", "rollback", &prod_head],
    );
    git(
        &mallory.path,
        &["push", "-q", "--force", "origin", "rollback:env/prod"],
    );
    assert_eq!(f.remote_rev("env/prod"), prod_head);
    let rows = statuses(d, &cfg);
    let (prod, why) = status_of(&rows, "prod");
    assert_eq!(prod, "untrusted", "{rows:?}");
    assert!(
        why.contains("was rewritten") && why.contains(&moved[..12]),
        "{why}"
    );
    let (ok, err) = release_into("prod");
    assert!(!ok && err.contains("was rewritten"), "{err}");
    assert_eq!(f.remote_rev("env/prod"), prod_head, "nothing written");

    // 5. A broken env file on dev, signed by a policy signer: dev is
    //    broken, named with the file; the others are judged on their own.
    platform.edit("env/dev", "envs/dev.toml", |_| "branch = [\n".into());
    platform.push("env/dev", Some(&f.platform_key), "oops", false);
    let rows = statuses(d, &cfg);
    let (dev, why) = status_of(&rows, "dev");
    assert_eq!(dev, "broken", "{rows:?}");
    assert!(why.contains("envs/dev.toml"), "{why}");
    assert_eq!(status_of(&rows, "staging").0, "untrusted", "still step 3");
}

#[test]
fn the_daemon_key_must_sign_heads_and_must_not_vouch_for_policy() {
    let f = Fixture::new();
    let d = f.dir.path();
    // Policy signers listing the daemon's key: refused before any work.
    let both = f.path("both");
    std::fs::copy(&f.allowed_signers, &both).expect("copy");
    let cfg = config(&f, "");
    let text = std::fs::read_to_string(&cfg).expect("read").replace(
        &format!("policy_signers = \"{}\"", f.policy_signers.display()),
        &format!("policy_signers = \"{}\"", both.display()),
    );
    std::fs::write(&cfg, text).expect("write");
    let o = bin(
        d,
        &[
            "release",
            "--version",
            "1.0.0",
            "--config",
            cfg.to_str().expect("utf8"),
        ],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("must not vouch for policies/"), "{err}");
}
