//! What the engine keeps on local disk, each file written atomically after
//! every transition so a process killed at any line resumes (or cleanly
//! aborts) and never promotes twice:
//! - `releases/<env>.json`: the release in progress in an env;
//! - `last-good/<env>.json`: what to restore when a release fails;
//! - `quarantine.json`: digests a failed release reverted, refused until a
//!   new commit changes them;
//! - `drift/<env>.json`: since when config drift has been seen (heal's grace);
//! - `rollbacks/<env>.json`: a manual rollback done live whose commit has
//!   not landed yet (git down, or the branch moved): the env is held until
//!   it does; `rollbacks/used.json`: the signed requests carried out;
//! - `reports/<env>/`: drift reports, `latest.json` + `latest.md` and history;
//! - `locks/<env>.lock`: held (an OS file lock, released by the kernel
//!   even on kill -9) by the one process releasing into the env, so two
//!   daemons — or a daemon and `release` — sharing a state dir never run
//!   the same env at once. Across machines the CAS push keeps promotions
//!   single; running replicas apart is Kubernetes Leases' job.
//!
//! Git stays the source of truth for what should run (last-good names a
//! commit, re-rendered on restore); this is the engine's working memory.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

pub use crate::release::{Phase, ReleaseState};

pub use crate::model::LastGood;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    pub digest: String,
    pub release: String,
    pub env: String,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct StoreError {
    pub path: String,
    pub message: String,
}

pub struct Store {
    dir: PathBuf,
}

/// Drift reports kept per env.
pub const REPORT_HISTORY: usize = 200;

/// One env's release lock (see the module doc); dropped: released.
#[derive(Debug)]
pub struct EnvLock {
    _file: std::fs::File,
}

impl Store {
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read<T: for<'de> Deserialize<'de>>(&self, rel: &str) -> Result<Option<T>, StoreError> {
        let path = self.dir.join(rel);
        let err = |m: String| StoreError {
            path: path.display().to_string(),
            message: m,
        };
        match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| err(format!("unreadable ({e}); move it aside to start over"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(err(e.to_string())),
        }
    }

    fn write<T: Serialize>(&self, rel: &str, value: &T) -> Result<(), StoreError> {
        let path = self.dir.join(rel);
        let err = |m: String| StoreError {
            path: path.display().to_string(),
            message: m,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
        }
        let body = serde_json::to_vec_pretty(value).map_err(|e| err(e.to_string()))?;
        crate::fsutil::write_atomic(&path, &body, None).map_err(|e| err(e.to_string()))
    }

    pub fn release(&self, env: &str) -> Result<Option<ReleaseState>, StoreError> {
        self.read(&format!("releases/{env}.json"))
    }

    pub fn save_release(&self, s: &ReleaseState) -> Result<(), StoreError> {
        self.write(&format!("releases/{}.json", s.env), s)
    }

    /// The last head of `env`'s branch the daemon accepted (a later head
    /// that does not contain it is a rewritten history).
    pub fn seen_head(&self, env: &str) -> Result<Option<String>, StoreError> {
        self.read(&format!("heads/{env}.json"))
    }

    pub fn save_seen_head(&self, env: &str, head: &str) -> Result<(), StoreError> {
        self.write(&format!("heads/{env}.json"), &head)
    }

    pub fn last_good(&self, env: &str) -> Result<Option<LastGood>, StoreError> {
        self.read(&format!("last-good/{env}.json"))
    }

    pub fn save_last_good(&self, env: &str, g: &LastGood) -> Result<(), StoreError> {
        self.write(&format!("last-good/{env}.json"), g)
    }

    /// `env` has no good release any more (its only one was handed back).
    pub fn clear_last_good(&self, env: &str) -> Result<(), StoreError> {
        self.remove(&format!("last-good/{env}.json"))
    }

    fn remove(&self, rel: &str) -> Result<(), StoreError> {
        let path = self.dir.join(rel);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError {
                path: path.display().to_string(),
                message: e.to_string(),
            }),
        }
    }

    /// Takes `env`'s lock: `Ok(None)` when another process holds it (its
    /// pid is in `holder`). The lock lasts as long as the returned guard.
    pub fn lock_env(&self, env: &str) -> Result<Result<EnvLock, String>, StoreError> {
        use std::io::{Seek, Write};
        let path = self.dir.join(format!("locks/{env}.lock"));
        let err = |m: String| StoreError {
            path: path.display().to_string(),
            message: m,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| err(e.to_string()))?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| err(e.to_string()))?;
        match file.try_lock() {
            Ok(()) => {
                let _ = file.set_len(0);
                let _ = file.rewind();
                let _ = writeln!(file, "{}", std::process::id());
                Ok(Ok(EnvLock { _file: file }))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                Ok(Err(format!(
                    "{env} is being released by another process (pid {}, lock {})",
                    holder.trim(),
                    path.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(err(e.to_string())),
        }
    }

    /// Since when config drift has been seen in `env` without a break.
    pub fn drift_since(
        &self,
        env: &str,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
        Ok(self
            .read::<Option<chrono::DateTime<chrono::Utc>>>(&format!("drift/{env}.json"))?
            .flatten())
    }

    pub fn save_drift_since(
        &self,
        env: &str,
        since: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), StoreError> {
        self.write(&format!("drift/{env}.json"), &since)
    }

    /// Keeps `report` as `env`'s latest (JSON and Markdown) and in its
    /// history (`reports/<env>/<time>.json`, the newest [`REPORT_HISTORY`]).
    pub fn save_report(
        &self,
        env: &str,
        report: &crate::drift::report::EnvReport,
        markdown: &str,
    ) -> Result<(), StoreError> {
        let stamp = report.checked_at.format("%Y%m%dT%H%M%S%.3fZ");
        self.write(&format!("reports/{env}/{stamp}.json"), report)?;
        self.write(&format!("reports/{env}/latest.json"), report)?;
        let path = self.dir.join(format!("reports/{env}/latest.md"));
        crate::fsutil::write_atomic(&path, markdown.as_bytes(), None).map_err(|e| StoreError {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        // History: oldest first by name; keep the newest.
        let dir = self.dir.join(format!("reports/{env}"));
        let mut old: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| {
                        p.extension().is_some_and(|x| x == "json")
                            && p.file_stem().is_some_and(|s| s != "latest")
                    })
                    .collect()
            })
            .unwrap_or_default();
        old.sort();
        let excess = old.len().saturating_sub(REPORT_HISTORY);
        for p in old.into_iter().take(excess) {
            let _ = std::fs::remove_file(p);
        }
        Ok(())
    }

    pub fn latest_report(
        &self,
        env: &str,
    ) -> Result<Option<crate::drift::report::EnvReport>, StoreError> {
        self.read(&format!("reports/{env}/latest.json"))
    }

    /// The manual rollback of `env` whose commit has not landed (the env
    /// is held while there is one).
    pub fn rollback_pending(
        &self,
        env: &str,
    ) -> Result<Option<crate::rollback::Pending>, StoreError> {
        self.read(&format!("rollbacks/{env}.json"))
    }

    pub fn save_rollback_pending(&self, p: &crate::rollback::Pending) -> Result<(), StoreError> {
        self.write(&format!("rollbacks/{}.json", p.request.env), p)
    }

    /// The commit landed (or an operator dropped it): the hold ends.
    pub fn clear_rollback_pending(&self, env: &str) -> Result<(), StoreError> {
        self.remove(&format!("rollbacks/{env}.json"))
    }

    /// Ids of the signed rollback requests carried out (newest last).
    pub fn rollbacks_used(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.read("rollbacks/used.json")?.unwrap_or_default())
    }

    /// Remembers request `id` as carried out (the newest 1000 are kept;
    /// older ones are stale anyway).
    pub fn add_rollback_used(&self, id: &str) -> Result<(), StoreError> {
        let mut all = self.rollbacks_used()?;
        all.push(id.to_string());
        let excess = all.len().saturating_sub(1000);
        all.drain(..excess);
        self.write("rollbacks/used.json", &all)
    }

    pub fn quarantine(&self) -> Result<Vec<Quarantined>, StoreError> {
        Ok(self.read("quarantine.json")?.unwrap_or_default())
    }

    pub fn add_quarantine(&self, q: Vec<Quarantined>) -> Result<(), StoreError> {
        let mut all = self.quarantine()?;
        for item in q {
            if !all.iter().any(|x| x.digest == item.digest) {
                all.push(item);
            }
        }
        self.write("quarantine.json", &all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two daemons (or a daemon and `release`) sharing a state dir: the
    /// second one to reach an env is told who holds it and does nothing;
    /// it gets the env once the first lets go (or dies: the kernel drops
    /// an OS lock with its process).
    #[test]
    fn one_releaser_per_env_the_second_is_told_who_holds_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::new(dir.path());
        let first = store.lock_env("dev").expect("io").expect("free");
        let busy = store.lock_env("dev").expect("io").expect_err("held");
        assert!(
            busy.contains("dev is being released by another process")
                && busy.contains(&std::process::id().to_string()),
            "{busy}"
        );
        // Another env is not in the way.
        let _staging = store.lock_env("staging").expect("io").expect("free");
        drop(first);
        assert!(store.lock_env("dev").expect("io").is_ok());
    }
}
