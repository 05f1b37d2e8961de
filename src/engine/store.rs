//! What the engine keeps on local disk, each file written atomically after
//! every transition so a process killed at any line resumes (or cleanly
//! aborts) and never promotes twice:
//! - `releases/<env>.json`: the release in progress in an env;
//! - `last-good/<env>.json`: what to restore when a release fails;
//! - `quarantine.json`: digests a failed release reverted, refused until a
//!   new commit changes them.
//!
//! Git stays the source of truth for what should run (last-good names a
//! commit, re-rendered on restore); this is the engine's working memory.

use crate::audit::Record;
use crate::rollout::Progress;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Rendered and gated; nothing applied yet.
    Gated,
    /// The canary runs and is being analysed (`progress` says where).
    Canary,
    /// The new version is stable; baking.
    Stable,
    /// Baked: the next env may be promoted into.
    Baked,
    /// Nothing more to do for this env (complete, promoted, failed).
    Finished,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseState {
    pub release: String,
    pub env: String,
    pub commit: String,
    pub phase: Phase,
    pub progress: Progress,
    pub record: Record,
    /// The version serving as stable baseline during analysis.
    pub baseline_version: Option<String>,
    /// The first env's version string (`release --version`), if any.
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastGood {
    pub release: String,
    pub commit: String,
    pub images: Vec<String>,
    pub version: String,
}

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

    pub fn last_good(&self, env: &str) -> Result<Option<LastGood>, StoreError> {
        self.read(&format!("last-good/{env}.json"))
    }

    pub fn save_last_good(&self, env: &str, g: &LastGood) -> Result<(), StoreError> {
        self.write(&format!("last-good/{env}.json"), g)
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
