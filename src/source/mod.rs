//! Source stage: the config repository.
//!
//! Owns everything git: the cache clone of the remote, the one fetch per
//! poll of every env branch, confined reads of files at a commit, signed
//! commits pushed with compare-and-swap, reverts, and the audit notes ref.
//! The rest sees only the [`GitRepo`] port and the core's [`TreeReader`]
//! port; nothing else touches `git2` or the filesystem of the repo.
//!
//! Must not: interpret file contents (that is `config` and `render`), or
//! ever force-push a ref on the remote.

pub use platform_capstone_core::source::*;

mod git;
mod push;
pub mod trust;

pub(crate) use git::write_commit;
pub use git::{
    BranchHead, ChangeFn, CommitInfo, CommitOutcome, DEFAULT_GIT_DEADLINE, DEFAULT_PUSH_ATTEMPTS,
    FetchReport, FileChange, Git2Repo, GitError, GitRepo, GitTreeReader, NOTES_REF, SignatureState,
    cache_path, git_words, local_path_of, set_network_timeouts,
};
pub(crate) use push::{PushFailure, RefUpdate, push_cas};
