//! The [`GitRepo`] port and its git2 adapter.
//!
//! Two modes share one implementation:
//! - **remote**: a bare cache clone under `cache_dir`, fetched with one
//!   fetch of `refs/heads/env/*` plus the audit notes ref; writes are pushed
//!   compare-and-swap (see `push`), and only then recorded in the cache.
//! - **local**: a repository on disk used in place (`--repo PATH`); writes
//!   move the branch with an old-value check under the ref lock.
//!
//! Every write is a loop: read the branch head, let the caller compute the
//! change against that head, commit, sign, publish with CAS. When the
//! branch moved meanwhile: fetch, recompute, retry (bounded). Never forced.

use super::confine::{Lookup, Node};
use super::push::{PushFailure, RefUpdate, push_cas};
use super::{Backend, DEFAULT_MAX_FILE_SIZE, ENV_BRANCH_PREFIX, ReadError, TreeReader};
use crate::signing::{GIT_NAMESPACE, SignError, Signer};
use git2::{ErrorCode, FetchOptions, Oid, Repository};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Notes ref holding the audit trail; fetched and pushed with the branches.
pub const NOTES_REF: &str = "refs/notes/platform-capstone";
/// Attempts of fetch → re-apply → push before giving up on a busy branch.
pub const DEFAULT_PUSH_ATTEMPTS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("{path}: cannot open git repository: {}", words(source))]
    Open {
        path: String,
        #[source]
        source: git2::Error,
    },
    #[error(
        "fetch from {remote} failed: {}; check the remote URL, network and credentials (nothing was changed)",
        words(source)
    )]
    Fetch {
        remote: String,
        #[source]
        source: git2::Error,
    },
    #[error(
        "push to {remote} failed ({context}): {}; nothing was changed on the remote, the write will be retried",
        words(source)
    )]
    Push {
        remote: String,
        context: String,
        #[source]
        source: git2::Error,
    },
    #[error("{remote} rejected the update of {refname}: {reason}")]
    Rejected {
        remote: String,
        refname: String,
        reason: String,
    },
    #[error(
        "branch {branch} kept moving: gave up after {attempts} fetch-and-retry attempts; nothing was pushed"
    )]
    Contended { branch: String, attempts: u32 },
    /// A write that must build on one head found the branch elsewhere.
    #[error("branch {branch} moved to {head} (expected {base}); nothing was pushed")]
    Moved {
        branch: String,
        base: String,
        head: String,
    },
    #[error("branch {branch} does not exist{hint}")]
    UnknownBranch { branch: String, hint: String },
    #[error("revision {rev:?} not found: {}", words(source))]
    UnknownRevision {
        rev: String,
        #[source]
        source: git2::Error,
    },
    #[error(
        "reverting {commit} on {branch} conflicts with later changes ({paths}); revert it by hand in a PR"
    )]
    RevertConflict {
        branch: String,
        commit: String,
        paths: String,
    },
    #[error(
        "cache {path} is in use by another platform-capstone process; stop it or set another cache_dir"
    )]
    Locked { path: String },
    #[error("{path}: {source}")]
    Cache {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "no signing key configured: commits made by platform-capstone must be signed (set signing_key, or pass --signing-key)"
    )]
    NoSigner,
    #[error(transparent)]
    Sign(#[from] SignError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("{0}")]
    Change(String),
    #[error("git {context}: {}", words(source))]
    Git {
        context: String,
        #[source]
        source: git2::Error,
    },
}

/// A libgit2 error in words: its message, and what its class and code
/// mean where the message does not say, instead of `class=Net (12);
/// code=Eof (-20)`.
pub fn git_words(e: &git2::Error) -> String {
    use git2::{ErrorClass as C, ErrorCode as K};
    let hint = match (e.code(), e.class()) {
        (K::Auth, _) => {
            Some("authentication failed: check the key or credentials the remote expects")
        }
        (K::Certificate, _) | (_, C::Ssl) => Some("the remote's TLS certificate is not trusted"),
        (K::Timeout, _) => Some("timed out"),
        (K::Eof, _) => Some("the remote closed the connection"),
        (K::NotFastForward, _) => Some("not a fast-forward: the branch moved"),
        (K::Locked, _) => Some("locked by another process (a stale *.lock file?)"),
        (K::Owner, _) => Some("the repository belongs to another user"),
        (K::NotFound, C::Reference) => Some("no such branch or reference"),
        (_, C::Net | C::Http | C::Ssh) => Some("network error"),
        _ => None,
    };
    let message = e.message().trim_end_matches('.').to_string();
    match hint {
        Some(h) if !message.to_lowercase().contains(&h.to_lowercase()) => {
            format!("{message} ({h})")
        }
        _ => message,
    }
}

/// Formats the `source` of a [`GitError`] variant.
fn words(e: &git2::Error) -> String {
    git_words(e)
}

impl GitError {
    /// Network and remote failures: the caller pauses and alerts, and must
    /// never treat them as a reason to revert.
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self,
            GitError::Fetch { .. } | GitError::Push { .. } | GitError::Locked { .. }
        )
    }

    fn git(context: impl Into<String>) -> impl FnOnce(git2::Error) -> GitError {
        let context = context.into();
        move |source| GitError::Git { context, source }
    }
}

/// One file written or deleted by a commit (`content: None` deletes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileChange {
    pub path: String,
    pub content: Option<Vec<u8>>,
}

/// What a write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed {
        commit: String,
        attempts: u32,
    },
    /// The change was already there (e.g. another writer made it).
    NothingToDo,
}

/// Result of one poll.
#[derive(Debug, Clone, Default)]
pub struct FetchReport {
    /// Env branch → head commit, after the fetch.
    pub heads: BTreeMap<String, String>,
    /// Branches whose head changed (or appeared) in this fetch.
    pub changed: Vec<String>,
    /// Branches that disappeared from the remote.
    pub removed: Vec<String>,
    pub duration: Duration,
}

/// A commit's signature header, unverified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureState {
    Unsigned,
    Signed { signature: String, payload: Vec<u8> },
}

/// What `status` shows about a branch head.
#[derive(Debug, Clone)]
pub struct BranchHead {
    pub branch: String,
    pub commit: String,
    pub author: String,
    pub time: i64,
    pub summary: String,
    pub signature: SignatureState,
}

/// A commit's place in history and who signed it.
#[derive(Debug, Clone)]
pub struct CommitInfo {
    pub commit: String,
    /// First parent first.
    pub parents: Vec<String>,
    /// Committer time, Unix seconds.
    pub time: i64,
    pub signature: SignatureState,
}

/// Computes the files a commit writes, given the branch head's tree
/// (`None`: nothing to do).
pub type ChangeFn<'a> =
    dyn FnMut(&dyn TreeReader) -> Result<Option<Vec<FileChange>>, GitError> + 'a;

/// Computes the tree (and message) of a new commit on a base commit.
type TreeFn<'a> = dyn FnMut(&Git2Repo, Oid) -> Result<Option<(Oid, String)>, GitError> + 'a;

/// The config repository, as the rest of the crate sees it.
pub trait GitRepo {
    /// One fetch of every env branch and the notes ref (no-op for a local repo).
    fn fetch(&mut self) -> Result<FetchReport, GitError>;
    /// Env branch → head commit.
    fn heads(&self) -> Result<BTreeMap<String, String>, GitError>;
    /// A revision (branch, sha, `env/dev~1`) → full commit id.
    fn resolve(&self, rev: &str) -> Result<String, GitError>;
    /// Confined reader over the tree of a commit.
    fn reader(&self, commit: &str) -> Result<Box<dyn TreeReader + '_>, GitError>;
    /// Author, time, summary and signature of a commit on a branch.
    fn head_info(&self, branch: &str) -> Result<BranchHead, GitError>;
    /// Parents, time and signature of any commit.
    fn commit_info(&self, commit: &str) -> Result<CommitInfo, GitError>;
    /// The id of what is at `path` (a tree or a blob) in `commit`'s tree;
    /// `None` when nothing is. Equal ids: equal content.
    fn path_id(&self, commit: &str, path: &str) -> Result<Option<String>, GitError>;
    /// Whether `ancestor` is `commit` itself or in its history.
    fn contains(&self, commit: &str, ancestor: &str) -> Result<bool, GitError>;
    /// Commits a change to `branch`: `change` sees the current head's tree
    /// and returns the files to write (None: nothing to do). Re-run against
    /// the new head whenever the push loses a race.
    fn commit_change(
        &mut self,
        branch: &str,
        message: &str,
        change: &mut ChangeFn<'_>,
    ) -> Result<CommitOutcome, GitError>;
    /// `commit_change`, but only on top of `base`: when the branch is
    /// anywhere else (before the write or after a lost race) the answer is
    /// `GitError::Moved` and nothing is pushed — never re-applied on
    /// another head.
    fn commit_change_on(
        &mut self,
        branch: &str,
        base: &str,
        message: &str,
        change: &mut ChangeFn<'_>,
    ) -> Result<CommitOutcome, GitError>;
    /// Commits the inverse of `commit` on top of `branch`.
    fn revert(
        &mut self,
        branch: &str,
        commit: &str,
        message: &str,
    ) -> Result<CommitOutcome, GitError>;
    /// Sets the audit note of `commit` to `update(existing)`, pushed CAS.
    fn update_note(
        &mut self,
        commit: &str,
        update: &mut dyn FnMut(Option<&str>) -> String,
    ) -> Result<(), GitError>;
    /// The audit note of a commit, if any.
    fn note(&self, commit: &str) -> Result<Option<String>, GitError>;
    /// Every audit note: (annotated commit, note text).
    fn notes(&self) -> Result<Vec<(String, String)>, GitError>;
    /// The full message of a commit (trailers included).
    fn message(&self, commit: &str) -> Result<String, GitError>;
}

/// Network timeouts for every libgit2 connection in this process, so an
/// unreachable remote fails (as an infrastructure error) instead of hanging
/// a poll forever. Only recorded here: they reach libgit2 just before the
/// process's first network operation ([`within`]), so a command that never
/// touches the network never pays libgit2's and OpenSSL's start-up (the
/// system CA bundle, tens of milliseconds).
pub fn set_network_timeouts(connect: Duration, io: Duration) {
    let _ = NETWORK_TIMEOUTS.set((connect, io));
}

static NETWORK_TIMEOUTS: std::sync::OnceLock<(Duration, Duration)> = std::sync::OnceLock::new();

/// Applies the recorded timeouts once, before the first connection.
fn apply_network_timeouts() {
    static APPLIED: std::sync::Once = std::sync::Once::new();
    APPLIED.call_once(|| {
        let Some((connect, io)) = NETWORK_TIMEOUTS.get().copied() else {
            return;
        };
        let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: these set process-global libgit2 options, which libgit2
        // documents as not thread-safe against concurrent connections:
        // every connection starts in `within`, after this `Once` finished.
        #[allow(unsafe_code)]
        unsafe {
            let _ = git2::opts::set_server_connect_timeout_in_milliseconds(ms(connect));
            let _ = git2::opts::set_server_timeout_in_milliseconds(ms(io));
        }
    });
}

/// `file:///x` and plain paths are local; `ssh://`, `https://`, `git://`
/// and scp-like `user@host:path` are not.
pub fn local_path_of(url: &str) -> Option<PathBuf> {
    if let Some(p) = url.strip_prefix("file://") {
        return Some(PathBuf::from(p));
    }
    if url.contains("://") {
        return None;
    }
    // scp-like syntax: a ':' before the first '/'.
    let first_slash = url.find('/').unwrap_or(url.len());
    if url[..first_slash].contains(':') {
        return None;
    }
    Some(PathBuf::from(url))
}

/// Credentials for smart transports: an explicit SSH key, else the agent;
/// for https, git's credential helpers. Bounded so a wrong key fails fast
/// instead of looping.
pub(crate) fn credentials_callback(ssh_key: Option<&Path>) -> git2::RemoteCallbacks<'static> {
    let ssh_key = ssh_key.map(Path::to_path_buf);
    let mut attempts = 0;
    let mut cb = git2::RemoteCallbacks::new();
    cb.credentials(move |url, username, allowed| {
        attempts += 1;
        if attempts > 3 {
            return Err(git2::Error::from_str(
                "authentication failed (tried the configured key, the SSH agent and credential helpers)",
            ));
        }
        let user = username.unwrap_or("git");
        if allowed.contains(git2::CredentialType::SSH_KEY) {
            return match &ssh_key {
                Some(k) => git2::Cred::ssh_key(user, None, k, None),
                None => git2::Cred::ssh_key_from_agent(user),
            };
        }
        if allowed.contains(git2::CredentialType::USER_PASS_PLAINTEXT) {
            let config = git2::Config::open_default()?;
            return git2::Cred::credential_helper(&config, url, username);
        }
        git2::Cred::default()
    });
    cb
}

struct Remote {
    url: String,
    ssh_key: Option<PathBuf>,
    /// Held for the life of the cache: one process per cache.
    _lock: File,
}

/// The git2 adapter of [`GitRepo`].
pub struct Git2Repo {
    repo: Repository,
    remote: Option<Remote>,
    signer: Option<Signer>,
    max_file_size: u64,
    push_attempts: u32,
    /// Overall deadline of one network operation (fetch, push).
    deadline: Duration,
}

/// Default overall deadline of one fetch or push.
pub const DEFAULT_GIT_DEADLINE: Duration = Duration::from_secs(120);

/// Runs network operation `op` on a thread of its own and waits for it at
/// most `deadline`. libgit2 bounds each read and connect (see
/// [`set_network_timeouts`]), not a whole operation: a peer that trickles a
/// byte at a time would hold a fetch for ever. On timeout the caller gets
/// `None` at once; the thread, which checks the same deadline in every
/// progress callback, ends at the peer's next byte or read timeout and
/// changes nothing but what libgit2 writes atomically (packs, refs).
pub(crate) fn within<T: Send + 'static>(
    deadline: Duration,
    op: impl FnOnce(Instant) -> T + Send + 'static,
) -> Option<T> {
    apply_network_timeouts();
    let until = Instant::now() + deadline;
    let (tx, rx) = std::sync::mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("git-network".into())
        .spawn(move || {
            let _ = tx.send(op(until));
        });
    if spawned.is_err() {
        return None;
    }
    rx.recv_timeout(deadline).ok()
}

/// A libgit2 progress callback's answer: go on until the deadline.
pub(crate) fn before(until: Instant) -> bool {
    Instant::now() < until
}

impl Git2Repo {
    /// Uses a repository on disk in place; writes go straight to its refs.
    pub fn open_local(path: &Path) -> Result<Self, GitError> {
        let repo = Repository::open(path).map_err(|source| GitError::Open {
            path: path.display().to_string(),
            source,
        })?;
        Ok(Self::new(repo, None))
    }

    /// Opens (cloning on first use) the bare cache of `url` under
    /// `cache_dir`. Takes an exclusive lock on the cache and clears lock
    /// files a killed process left behind.
    pub fn open_remote(
        url: &str,
        cache_dir: &Path,
        ssh_key: Option<&Path>,
    ) -> Result<Self, GitError> {
        let cache_err = |path: &Path| {
            let path = path.display().to_string();
            move |source| GitError::Cache { path, source }
        };
        std::fs::create_dir_all(cache_dir).map_err(cache_err(cache_dir))?;
        let id = cache_id(url);
        let lock_path = cache_dir.join(format!("{id}.lock"));
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(cache_err(&lock_path))?;
        acquire(&lock, &lock_path)?;
        let path = cache_dir.join(&id);
        let repo = if path.exists() {
            clear_stale_locks(&path);
            Repository::open_bare(&path).map_err(|source| GitError::Open {
                path: format!("{} (cache of {url}; delete it to re-clone)", path.display()),
                source,
            })?
        } else {
            // Initialise beside the final name, then rename: a kill -9 never
            // leaves a half-made cache at `path`.
            let tmp = tempfile::Builder::new()
                .prefix(".init-")
                .tempdir_in(cache_dir)
                .map_err(cache_err(cache_dir))?;
            Repository::init_bare(tmp.path()).map_err(GitError::git("init cache"))?;
            let tmp = tmp.keep();
            std::fs::rename(&tmp, &path).map_err(cache_err(&path))?;
            Repository::open_bare(&path).map_err(|source| GitError::Open {
                path: path.display().to_string(),
                source,
            })?
        };
        let mut me = Self::new(repo, None);
        me.remote = Some(Remote {
            url: url.to_string(),
            ssh_key: ssh_key.map(Path::to_path_buf),
            _lock: lock,
        });
        Ok(me)
    }

    fn new(repo: Repository, remote: Option<Remote>) -> Self {
        Self {
            repo,
            remote,
            signer: None,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
            push_attempts: DEFAULT_PUSH_ATTEMPTS,
            deadline: DEFAULT_GIT_DEADLINE,
        }
    }

    /// Sets the overall deadline of each fetch and push.
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    pub fn with_signer(mut self, signer: Signer) -> Self {
        self.signer = Some(signer);
        self
    }

    pub fn with_max_file_size(mut self, limit: u64) -> Self {
        self.max_file_size = limit;
        self
    }

    pub fn with_push_attempts(mut self, attempts: u32) -> Self {
        self.push_attempts = attempts.max(1);
        self
    }

    /// The underlying repository (the cache, in remote mode).
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    fn branch_ref(branch: &str) -> String {
        format!("refs/heads/{branch}")
    }

    fn signature_of(&self, oid: Oid) -> Result<SignatureState, GitError> {
        match self.repo.extract_signature(&oid, None) {
            Ok((sig, payload)) => Ok(SignatureState::Signed {
                signature: String::from_utf8_lossy(&sig).into_owned(),
                payload: payload.to_vec(),
            }),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(SignatureState::Unsigned),
            Err(e) => Err(GitError::git("read signature")(e)),
        }
    }

    fn head_of(&self, branch: &str) -> Result<Oid, GitError> {
        match self.repo.refname_to_id(&Self::branch_ref(branch)) {
            Ok(oid) => Ok(oid),
            Err(e) if e.code() == ErrorCode::NotFound => {
                let known: Vec<String> = self.heads()?.into_keys().collect();
                Err(GitError::UnknownBranch {
                    branch: branch.to_string(),
                    hint: if known.is_empty() {
                        "; the repository has no env/* branches (create them with `platform-capstone init`)".into()
                    } else {
                        format!("; known: {}", known.join(", "))
                    },
                })
            }
            Err(e) => Err(GitError::git(format!("read {branch}"))(e)),
        }
    }

    fn signed_commit(&self, tree: Oid, parent: Oid, message: &str) -> Result<Oid, GitError> {
        let signer = self.signer.as_ref().ok_or(GitError::NoSigner)?;
        write_commit(
            &self.repo,
            Some(signer),
            &signer.identity().clone(),
            tree,
            &[parent],
            message,
        )
    }

    /// Moves `refname` from `old` to `new` on the remote (CAS), then in the
    /// cache; in local mode, CAS on the local ref. `Ok(false)`: lost a race.
    fn publish(&self, refname: &str, old: Option<Oid>, new: Oid) -> Result<bool, GitError> {
        if let Some(remote) = &self.remote {
            let update = RefUpdate {
                name: refname.to_string(),
                old,
                new,
            };
            match push_cas(
                &self.repo,
                &remote.url,
                remote.ssh_key.as_deref(),
                &[update],
                self.deadline,
            ) {
                Ok(()) => {}
                Err(PushFailure::Stale { .. }) => return Ok(false),
                Err(PushFailure::Error(e)) => return Err(e),
            }
            // The remote has it; the cache follows (forced: the cache is a copy).
            self.repo
                .reference(refname, new, true, "platform-capstone: pushed")
                .map_err(GitError::git(format!("update cache {refname}")))?;
            return Ok(true);
        }
        let r = match old {
            Some(old) => self
                .repo
                .reference_matching(refname, new, true, old, "platform-capstone")
                .map(|_| ()),
            None => self
                .repo
                .reference(refname, new, false, "platform-capstone")
                .map(|_| ()),
        };
        match r {
            Ok(()) => Ok(true),
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::Modified | ErrorCode::Exists | ErrorCode::Locked
                ) =>
            {
                Ok(false)
            }
            Err(e) => Err(GitError::git(format!("update {refname}"))(e)),
        }
    }

    /// One fetch of `specs` from `remote` (no tags, no FETCH_HEAD).
    fn fetch_specs(
        &self,
        remote: &Remote,
        specs: &[String],
        prune: bool,
    ) -> Result<(), git2::Error> {
        self.fetch_url(&remote.url, remote.ssh_key.as_deref(), specs, prune)
    }

    /// One fetch of `specs` from `url` within the deadline.
    fn fetch_url(
        &self,
        url: &str,
        key: Option<&Path>,
        specs: &[String],
        prune: bool,
    ) -> Result<(), git2::Error> {
        // Its own handle on the cache, on its own thread: the deadline
        // holds even against a peer that trickles.
        let path = self.repo.path().to_path_buf();
        let (url, key) = (url.to_string(), key.map(Path::to_path_buf));
        let specs = specs.to_vec();
        let deadline = self.deadline;
        within(deadline, move |until| {
            let repo = Repository::open_bare(&path)?;
            let mut r = repo.remote_anonymous(&url)?;
            let mut callbacks = credentials_callback(key.as_deref());
            callbacks.transfer_progress(move |_| before(until));
            callbacks.sideband_progress(move |_| before(until));
            let mut opts = FetchOptions::new();
            opts.remote_callbacks(callbacks)
                .update_fetchhead(false)
                .download_tags(git2::AutotagOption::None);
            if prune {
                opts.prune(git2::FetchPrune::On);
            }
            r.fetch(&specs, Some(&mut opts), None)
        })
        .unwrap_or_else(|| {
            Err(git2::Error::from_str(&format!(
                "no answer within {}s (the remote is unreachable or too slow); raise git_timeout if it is only slow",
                deadline.as_secs()
            )))
        })
    }

    /// `commit_change`; with `only_on`, the branch must be at that commit.
    fn commit_change_if(
        &mut self,
        branch: &str,
        only_on: Option<&str>,
        message: &str,
        change: &mut ChangeFn<'_>,
    ) -> Result<CommitOutcome, GitError> {
        self.write_loop(branch, &mut |me, base| {
            if let Some(want) = only_on
                && base.to_string() != want
            {
                return Err(GitError::Moved {
                    branch: branch.to_string(),
                    base: want.to_string(),
                    head: base.to_string(),
                });
            }
            let reader = me.reader(&base.to_string())?;
            let Some(changes) = change(reader.as_ref())? else {
                return Ok(None);
            };
            let base_tree = me
                .repo
                .find_commit(base)
                .and_then(|c| c.tree())
                .map_err(GitError::git("read tree"))?;
            let mut index = git2::Index::new().map_err(GitError::git("index"))?;
            index
                .read_tree(&base_tree)
                .map_err(GitError::git("index"))?;
            me.stage(&mut index, &changes)?;
            let tree = index
                .write_tree_to(&me.repo)
                .map_err(GitError::git("write tree"))?;
            Ok(Some((tree, message.to_string())))
        })
    }

    /// Brings this cache to what `source` holds — another cache of the
    /// same remote on this machine (the daemon's poll cache): its env
    /// branches and notes, objects copied from disk, nothing asked of the
    /// remote. A ref this cache already moved past (a write of ours the
    /// source has not fetched yet) is kept, never moved back; any other
    /// difference (the source is ahead, or the branch was rewritten) takes
    /// the source's. Env branches the source lacks are removed.
    pub fn sync_from(&mut self, source: &Path) -> Result<FetchReport, GitError> {
        const STAGE: &str = "refs/platform-capstone-sync/";
        let start = Instant::now();
        let before = self.heads()?;
        let url = source.display().to_string();
        let staged_notes = format!("{STAGE}notes");
        let specs = [
            format!("+refs/heads/{ENV_BRANCH_PREFIX}*:{STAGE}heads/{ENV_BRANCH_PREFIX}*"),
            format!("+{NOTES_REF}:{staged_notes}"),
        ];
        // The source may not have notes yet: then fetch the branches alone.
        let fetched = self
            .fetch_url(&url, None, &specs, false)
            .or_else(|_| self.fetch_url(&url, None, &specs[..1], false));
        fetched.map_err(|source| GitError::Fetch {
            remote: url.clone(),
            source,
        })?;
        let staged = |glob: &str| -> Result<Vec<(String, Oid)>, GitError> {
            let mut out = Vec::new();
            for r in self
                .repo
                .references_glob(glob)
                .map_err(GitError::git("list synced refs"))?
            {
                let r = r.map_err(GitError::git("list synced refs"))?;
                if let (Ok(name), Some(oid)) = (r.name(), r.target()) {
                    out.push((name.to_string(), oid));
                }
            }
            Ok(out)
        };
        let mut wanted: Vec<(String, Oid)> = staged(&format!("{STAGE}heads/*"))?
            .into_iter()
            .map(|(name, oid)| (name.replacen(STAGE, "refs/", 1), oid))
            .collect();
        wanted.extend(
            staged(&staged_notes)?
                .into_iter()
                .map(|(_, oid)| (NOTES_REF.to_string(), oid)),
        );
        for (name, theirs) in &wanted {
            let ours = self.repo.refname_to_id(name).ok();
            let ahead = ours.is_some_and(|o| {
                o == *theirs || self.repo.graph_descendant_of(o, *theirs).unwrap_or(false)
            });
            if !ahead {
                self.repo
                    .reference(name, *theirs, true, "sync from the poll's cache")
                    .map_err(GitError::git(format!("update {name}")))?;
            }
        }
        for branch in before.keys() {
            let name = Self::branch_ref(branch);
            if !wanted.iter().any(|(n, _)| *n == name)
                && let Ok(mut r) = self.repo.find_reference(&name)
            {
                r.delete()
                    .map_err(GitError::git(format!("remove {name}")))?;
            }
        }
        for (name, _) in staged(&format!("{STAGE}*"))? {
            if let Ok(mut r) = self.repo.find_reference(&name) {
                let _ = r.delete();
            }
        }
        let heads = self.heads()?;
        Ok(FetchReport {
            changed: heads
                .iter()
                .filter(|(b, c)| before.get(*b) != Some(*c))
                .map(|(b, _)| b.clone())
                .collect(),
            removed: before
                .keys()
                .filter(|b| !heads.contains_key(*b))
                .cloned()
                .collect(),
            heads,
            duration: start.elapsed(),
        })
    }

    /// Stages `changes` into an in-memory `index`: paths confined (no `..`,
    /// `.`, absolute), content written as blobs (an in-memory index cannot
    /// hash content itself), `None` removes the path.
    fn stage(&self, index: &mut git2::Index, changes: &[FileChange]) -> Result<(), GitError> {
        for ch in changes {
            let comps = super::confine::split(&ch.path)?;
            if comps.iter().any(|c| c == ".." || c == ".") {
                return Err(ReadError::Escapes {
                    path: ch.path.clone(),
                }
                .into());
            }
            let path = comps.join("/");
            match &ch.content {
                Some(bytes) => {
                    let blob = self
                        .repo
                        .blob(bytes)
                        .map_err(GitError::git(format!("write {path}")))?;
                    let entry = git2::IndexEntry {
                        ctime: git2::IndexTime::new(0, 0),
                        mtime: git2::IndexTime::new(0, 0),
                        dev: 0,
                        ino: 0,
                        mode: 0o100644,
                        uid: 0,
                        gid: 0,
                        file_size: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
                        id: blob,
                        flags: 0,
                        flags_extended: 0,
                        path: path.clone().into_bytes(),
                    };
                    index
                        .add(&entry)
                        .map_err(GitError::git(format!("stage {path}")))?;
                }
                None => index
                    .remove_path(Path::new(&path))
                    .map_err(GitError::git(format!("remove {path}")))?,
            }
        }
        Ok(())
    }

    /// Writes `files` (whole files, repo-relative, confined) to `branch`
    /// outside `env/*` — the drift `reports` branch — as one signed commit,
    /// creating the branch as a root commit when the remote has none. CAS
    /// like every write: a lost race re-reads the branch and goes again.
    pub fn commit_side_branch(
        &mut self,
        branch: &str,
        message: &str,
        files: &[FileChange],
    ) -> Result<CommitOutcome, GitError> {
        if branch.starts_with(ENV_BRANCH_PREFIX) {
            return Err(GitError::UnknownBranch {
                branch: branch.to_string(),
                hint: format!("; reports cannot go to an {ENV_BRANCH_PREFIX}* branch"),
            });
        }
        let signer = self.signer.clone().ok_or(GitError::NoSigner)?;
        let refname = Self::branch_ref(branch);
        for attempt in 1..=self.push_attempts {
            // The branch as the remote has it now (absent: None).
            if let Some(remote) = &self.remote {
                let spec = format!("+{refname}:{refname}");
                if let Err(e) = self.fetch_specs(remote, &[spec], false) {
                    // A branch the remote does not have is created below.
                    if !e.message().contains("couldn't find remote ref") {
                        return Err(GitError::Fetch {
                            remote: remote.url.clone(),
                            source: e,
                        });
                    }
                    if let Ok(mut stale) = self.repo.find_reference(&refname) {
                        let _ = stale.delete();
                    }
                }
            }
            let base = self.repo.refname_to_id(&refname).ok();
            let mut index = git2::Index::new().map_err(GitError::git("index"))?;
            if let Some(b) = base {
                let tree = self
                    .repo
                    .find_commit(b)
                    .and_then(|c| c.tree())
                    .map_err(GitError::git("read tree"))?;
                index.read_tree(&tree).map_err(GitError::git("index"))?;
            }
            self.stage(&mut index, files)?;
            let tree = index
                .write_tree_to(&self.repo)
                .map_err(GitError::git("write tree"))?;
            if let Some(b) = base {
                let same = self
                    .repo
                    .find_commit(b)
                    .map(|c| c.tree_id() == tree)
                    .unwrap_or(false);
                if same {
                    return Ok(CommitOutcome::NothingToDo);
                }
            }
            let parents: Vec<Oid> = base.into_iter().collect();
            let commit = write_commit(
                &self.repo,
                Some(&signer),
                &signer.identity().clone(),
                tree,
                &parents,
                message,
            )?;
            if self.publish(&refname, base, commit)? {
                return Ok(CommitOutcome::Committed {
                    commit: commit.to_string(),
                    attempts: attempt,
                });
            }
        }
        Err(GitError::Contended {
            branch: branch.to_string(),
            attempts: self.push_attempts,
        })
    }

    /// The shared write loop: compute a tree on the current head, commit,
    /// publish; on a lost race fetch and go again.
    fn write_loop(
        &mut self,
        branch: &str,
        compute: &mut TreeFn<'_>,
    ) -> Result<CommitOutcome, GitError> {
        if self.signer.is_none() {
            return Err(GitError::NoSigner);
        }
        let refname = Self::branch_ref(branch);
        for attempt in 1..=self.push_attempts {
            let base = self.head_of(branch)?;
            let Some((tree, message)) = compute(self, base)? else {
                return Ok(CommitOutcome::NothingToDo);
            };
            let base_tree = self
                .repo
                .find_commit(base)
                .and_then(|c| c.tree())
                .map_err(GitError::git("read base tree"))?
                .id();
            if tree == base_tree {
                return Ok(CommitOutcome::NothingToDo);
            }
            let commit = self.signed_commit(tree, base, &message)?;
            if self.publish(&refname, Some(base), commit)? {
                tracing::info!(branch, commit = %commit, attempt, "commit published");
                return Ok(CommitOutcome::Committed {
                    commit: commit.to_string(),
                    attempts: attempt,
                });
            }
            tracing::info!(
                branch,
                attempt,
                "branch moved under us; fetching and retrying"
            );
            self.fetch()?;
        }
        Err(GitError::Contended {
            branch: branch.to_string(),
            attempts: self.push_attempts,
        })
    }

    fn commit_id(&self, rev: &str) -> Result<Oid, GitError> {
        let obj = self
            .repo
            .revparse_single(rev)
            .map_err(|source| GitError::UnknownRevision {
                rev: rev.to_string(),
                source,
            })?;
        obj.peel_to_commit()
            .map(|c| c.id())
            .map_err(|source| GitError::UnknownRevision {
                rev: rev.to_string(),
                source,
            })
    }

    fn notes_head(&self) -> Option<Oid> {
        self.repo.refname_to_id(NOTES_REF).ok()
    }

    /// A signed notes commit on top of `old` that sets the note of
    /// `target` to `text`; no ref the tool reads moves. libgit2 lays the
    /// notes tree out (fanout included) on a scratch ref, which is dropped
    /// at once; the commit is then written again, signed, with the same
    /// tree and parent. The notes ref itself moves only in `publish`,
    /// after the remote accepted the commit.
    fn signed_notes_commit(
        &self,
        old: Option<Oid>,
        target: Oid,
        text: &str,
    ) -> Result<Oid, GitError> {
        const SCRATCH: &str = "refs/platform-capstone/notes-scratch";
        let who = {
            let id = self
                .signer
                .as_ref()
                .map(|s| s.identity().clone())
                .unwrap_or_default();
            git2::Signature::now(&id.name, &id.email).map_err(GitError::git("signature"))?
        };
        match old {
            Some(o) => {
                self.repo
                    .reference(SCRATCH, o, true, "platform-capstone: note scratch")
                    .map_err(GitError::git("note scratch ref"))?;
            }
            None => {
                if let Ok(mut r) = self.repo.find_reference(SCRATCH) {
                    r.delete().map_err(GitError::git("note scratch ref"))?;
                }
            }
        }
        let written = self
            .repo
            .note(&who, &who, Some(SCRATCH), target, text, true)
            .map_err(GitError::git("write note"));
        let unsigned = self.repo.refname_to_id(SCRATCH);
        if let Ok(mut r) = self.repo.find_reference(SCRATCH) {
            let _ = r.delete();
        }
        written?;
        let unsigned = self
            .repo
            .find_commit(unsigned.map_err(GitError::git("note scratch ref"))?)
            .map_err(GitError::git("read notes commit"))?;
        let signer = self.signer.as_ref().ok_or(GitError::NoSigner)?;
        let parents: Vec<Oid> = old.into_iter().collect();
        write_commit(
            &self.repo,
            Some(signer),
            &signer.identity().clone(),
            unsigned.tree_id(),
            &parents,
            &format!("Notes added by platform-capstone for {target}\n"),
        )
    }
}

/// Writes a commit object (not moving any ref), SSH-signed when a signer
/// is given, exactly as `git commit -S` with `gpg.format=ssh` would.
pub(crate) fn write_commit(
    repo: &Repository,
    signer: Option<&Signer>,
    identity: &crate::signing::Identity,
    tree: Oid,
    parents: &[Oid],
    message: &str,
) -> Result<Oid, GitError> {
    let who = git2::Signature::now(&identity.name, &identity.email)
        .map_err(GitError::git("make signature"))?;
    let tree = repo.find_tree(tree).map_err(GitError::git("find tree"))?;
    let parents = parents
        .iter()
        .map(|p| repo.find_commit(*p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(GitError::git("find parent"))?;
    let parent_refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    let Some(signer) = signer else {
        return repo
            .commit(None, &who, &who, message, &tree, &parent_refs)
            .map_err(GitError::git("write commit"));
    };
    let buf = repo
        .commit_create_buffer(&who, &who, message, &tree, &parent_refs)
        .map_err(GitError::git("create commit"))?;
    let content = std::str::from_utf8(&buf)
        .map_err(|_| GitError::Change("commit message is not UTF-8".into()))?;
    let sig = signer.sign(GIT_NAMESPACE, content.as_bytes())?;
    repo.commit_signed(content, &sig, None)
        .map_err(GitError::git("write signed commit"))
}

/// Where `open_remote(url, cache_dir, …)` keeps its repository.
pub fn cache_path(url: &str, cache_dir: &Path) -> PathBuf {
    cache_dir.join(cache_id(url))
}

fn cache_id(url: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(url.as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    // A readable tail helps an operator find the right cache.
    let tail: String = url
        .rsplit(['/', ':'])
        .find(|s| !s.is_empty())
        .unwrap_or("repo")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_' || *c == '.')
        .take(40)
        .collect();
    format!("{tail}-{hex}")
}

/// Waits up to 10 s for the cache lock (a CLI command beside a busy daemon).
fn acquire(lock: &File, path: &Path) -> Result<(), GitError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(GitError::Locked {
                    path: path.display().to_string(),
                });
            }
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(GitError::Cache {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
    }
}

/// Removes `*.lock` files under the cache's refs (and top-level lock
/// files). Safe only because we hold the cache's exclusive lock: any lock
/// file now is debris from a killed process, and would block every later
/// ref update.
fn clear_stale_locks(repo: &Path) {
    fn walk(dir: &Path) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in rd.flatten() {
            let p = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => walk(&p),
                Ok(t) if t.is_file() && p.extension().is_some_and(|e| e == "lock") => {
                    tracing::warn!(path = %p.display(), "removing stale lock file left by a killed process");
                    let _ = std::fs::remove_file(&p);
                }
                _ => {}
            }
        }
    }
    walk(&repo.join("refs"));
    for f in [
        "packed-refs.lock",
        "config.lock",
        "HEAD.lock",
        "index.lock",
        "shallow.lock",
    ] {
        let p = repo.join(f);
        if p.exists() {
            tracing::warn!(path = %p.display(), "removing stale lock file left by a killed process");
            let _ = std::fs::remove_file(p);
        }
    }
}

impl GitRepo for Git2Repo {
    fn fetch(&mut self) -> Result<FetchReport, GitError> {
        let start = Instant::now();
        let before = self.heads()?;
        if let Some(remote) = &self.remote {
            let specs = [
                format!("+refs/heads/{ENV_BRANCH_PREFIX}*:refs/heads/{ENV_BRANCH_PREFIX}*"),
                format!("+{NOTES_REF}:{NOTES_REF}"),
            ];
            self.fetch_specs(remote, &specs, true)
                .map_err(|source| GitError::Fetch {
                    remote: remote.url.clone(),
                    source,
                })?;
        }
        let heads = self.heads()?;
        let changed = heads
            .iter()
            .filter(|(b, c)| before.get(*b) != Some(*c))
            .map(|(b, _)| b.clone())
            .collect();
        let removed = before
            .keys()
            .filter(|b| !heads.contains_key(*b))
            .cloned()
            .collect();
        Ok(FetchReport {
            heads,
            changed,
            removed,
            duration: start.elapsed(),
        })
    }

    fn heads(&self) -> Result<BTreeMap<String, String>, GitError> {
        let mut out = BTreeMap::new();
        let glob = format!("refs/heads/{ENV_BRANCH_PREFIX}*");
        let refs = self
            .repo
            .references_glob(&glob)
            .map_err(GitError::git("list branches"))?;
        for r in refs {
            let r = r.map_err(GitError::git("list branches"))?;
            if let (Ok(name), Some(target)) = (r.name(), r.target()) {
                let branch = name.trim_start_matches("refs/heads/").to_string();
                out.insert(branch, target.to_string());
            }
        }
        Ok(out)
    }

    fn resolve(&self, rev: &str) -> Result<String, GitError> {
        self.commit_id(rev).map(|o| o.to_string())
    }

    fn reader(&self, commit: &str) -> Result<Box<dyn TreeReader + '_>, GitError> {
        let oid = self.commit_id(commit)?;
        let c = self
            .repo
            .find_commit(oid)
            .map_err(GitError::git("find commit"))?;
        let tree = c.tree().map_err(GitError::git("read tree"))?;
        Ok(Box::new(GitTreeReader {
            repo: &self.repo,
            tree,
            label: format!("{commit}@{}", &oid.to_string()[..7]),
            max_file_size: self.max_file_size,
        }))
    }

    fn commit_info(&self, commit: &str) -> Result<CommitInfo, GitError> {
        let oid = self.commit_id(commit)?;
        let c = self
            .repo
            .find_commit(oid)
            .map_err(GitError::git("find commit"))?;
        Ok(CommitInfo {
            commit: oid.to_string(),
            parents: c.parent_ids().map(|p| p.to_string()).collect(),
            time: c.time().seconds(),
            signature: self.signature_of(oid)?,
        })
    }

    fn path_id(&self, commit: &str, path: &str) -> Result<Option<String>, GitError> {
        let oid = self.commit_id(commit)?;
        let tree = self
            .repo
            .find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(GitError::git("read tree"))?;
        match tree.get_path(Path::new(path)) {
            Ok(entry) => Ok(Some(entry.id().to_string())),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(GitError::git(format!("read {path}"))(e)),
        }
    }

    fn contains(&self, commit: &str, ancestor: &str) -> Result<bool, GitError> {
        let (c, a) = (self.commit_id(commit)?, self.commit_id(ancestor)?);
        if c == a {
            return Ok(true);
        }
        self.repo
            .graph_descendant_of(c, a)
            .map_err(GitError::git("walk history"))
    }

    fn head_info(&self, branch: &str) -> Result<BranchHead, GitError> {
        let oid = self.head_of(branch)?;
        let c = self
            .repo
            .find_commit(oid)
            .map_err(GitError::git("find commit"))?;
        let signature = self.signature_of(oid)?;
        let author = c.author();
        Ok(BranchHead {
            branch: branch.to_string(),
            commit: oid.to_string(),
            author: format!(
                "{} <{}>",
                author.name().unwrap_or("?"),
                author.email().unwrap_or("?")
            ),
            time: c.time().seconds(),
            summary: c.summary().ok().flatten().unwrap_or("").to_string(),
            signature,
        })
    }

    fn commit_change(
        &mut self,
        branch: &str,
        message: &str,
        change: &mut ChangeFn<'_>,
    ) -> Result<CommitOutcome, GitError> {
        self.commit_change_if(branch, None, message, change)
    }

    fn commit_change_on(
        &mut self,
        branch: &str,
        base: &str,
        message: &str,
        change: &mut ChangeFn<'_>,
    ) -> Result<CommitOutcome, GitError> {
        self.commit_change_if(branch, Some(base), message, change)
    }

    fn revert(
        &mut self,
        branch: &str,
        commit: &str,
        message: &str,
    ) -> Result<CommitOutcome, GitError> {
        let bad = self.commit_id(commit)?;
        self.write_loop(branch, &mut |me, base| {
            let bad_c = me
                .repo
                .find_commit(bad)
                .map_err(GitError::git("find commit"))?;
            let base_c = me
                .repo
                .find_commit(base)
                .map_err(GitError::git("find commit"))?;
            let mut index = me
                .repo
                .revert_commit(&bad_c, &base_c, 0, None)
                .map_err(GitError::git(format!("revert {bad}")))?;
            if index.has_conflicts() {
                let paths: Vec<String> = index
                    .conflicts()
                    .map_err(GitError::git("read conflicts"))?
                    .flatten()
                    .filter_map(|c| c.our.or(c.their).or(c.ancestor))
                    .map(|e| String::from_utf8_lossy(&e.path).into_owned())
                    .collect();
                return Err(GitError::RevertConflict {
                    branch: branch.to_string(),
                    commit: bad.to_string(),
                    paths: paths.join(", "),
                });
            }
            let tree = index
                .write_tree_to(&me.repo)
                .map_err(GitError::git("write tree"))?;
            Ok(Some((tree, message.to_string())))
        })
    }

    fn update_note(
        &mut self,
        commit: &str,
        update: &mut dyn FnMut(Option<&str>) -> String,
    ) -> Result<(), GitError> {
        let target = self.commit_id(commit)?;
        if self.signer.is_none() {
            return Err(GitError::NoSigner);
        }
        for attempt in 1..=self.push_attempts {
            let old = self.notes_head();
            let existing = self.note(commit)?;
            let text = update(existing.as_deref());
            if existing.as_deref() == Some(text.as_str()) {
                // Already so (another writer got there first): no commit.
                return Ok(());
            }
            let new = self.signed_notes_commit(old, target, &text)?;
            if self.publish(NOTES_REF, old, new)? {
                return Ok(());
            }
            tracing::info!(
                commit,
                attempt,
                "notes ref moved under us; fetching and retrying"
            );
            self.fetch()?;
        }
        Err(GitError::Contended {
            branch: NOTES_REF.to_string(),
            attempts: self.push_attempts,
        })
    }

    fn note(&self, commit: &str) -> Result<Option<String>, GitError> {
        let target = self.commit_id(commit)?;
        match self.repo.find_note(Some(NOTES_REF), target) {
            Ok(n) => Ok(Some(
                String::from_utf8_lossy(n.message_bytes()).into_owned(),
            )),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(GitError::git("read note")(e)),
        }
    }

    fn message(&self, commit: &str) -> Result<String, GitError> {
        let id = self.commit_id(commit)?;
        let c = self
            .repo
            .find_commit(id)
            .map_err(GitError::git("read commit"))?;
        Ok(String::from_utf8_lossy(c.message_bytes()).into_owned())
    }

    fn notes(&self) -> Result<Vec<(String, String)>, GitError> {
        let iter = match self.repo.notes(Some(NOTES_REF)) {
            Ok(i) => i,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(GitError::git("list notes")(e)),
        };
        let mut out = Vec::new();
        for item in iter {
            let (_blob, annotated) = item.map_err(GitError::git("list notes"))?;
            if let Some(text) = self.note(&annotated.to_string())? {
                out.push((annotated.to_string(), text));
            }
        }
        Ok(out)
    }
}

/// Confined reader over one commit's tree.
pub struct GitTreeReader<'r> {
    repo: &'r Repository,
    tree: git2::Tree<'r>,
    label: String,
    max_file_size: u64,
}

impl Lookup for GitTreeReader<'_> {
    fn lookup(&self, components: &[String]) -> Result<Node, ReadError> {
        let shown = components.join("/");
        let entry = match self.tree.get_path(Path::new(&shown)) {
            Ok(e) => e,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(Node::Missing),
            Err(source) => {
                return Err(ReadError::Git {
                    path: shown,
                    message: source.message().to_string(),
                });
            }
        };
        let git_err = |source: git2::Error| ReadError::Git {
            path: shown.clone(),
            message: source.message().to_string(),
        };
        match entry.filemode() {
            0o040000 => Ok(Node::Dir),
            0o120000 => {
                let blob = self.repo.find_blob(entry.id()).map_err(git_err)?;
                let target =
                    std::str::from_utf8(blob.content()).map_err(|_| ReadError::InvalidPath {
                        path: shown.clone(),
                        reason: "symlink target is not UTF-8".into(),
                    })?;
                Ok(Node::Symlink {
                    target: target.to_string(),
                })
            }
            0o160000 => Err(ReadError::Unsupported {
                path: shown.clone(),
                what: "a git submodule".into(),
            }),
            _ => {
                // Size from the object header: a huge blob is refused unread.
                let odb = self.repo.odb().map_err(git_err)?;
                let (size, _) = odb.read_header(entry.id()).map_err(git_err)?;
                Ok(Node::File { size: size as u64 })
            }
        }
    }
}

impl Backend for GitTreeReader<'_> {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn entry_id(&self, components: &[String]) -> Option<String> {
        if components.is_empty() {
            return Some(self.tree.id().to_string());
        }
        self.tree
            .get_path(Path::new(&components.join("/")))
            .ok()
            .map(|e| e.id().to_string())
    }

    fn max_file_size(&self) -> u64 {
        self.max_file_size
    }

    fn read_resolved(&self, shown: &str, components: &[String]) -> Result<Vec<u8>, ReadError> {
        let git_err = |source: git2::Error| ReadError::Git {
            path: shown.to_string(),
            message: source.message().to_string(),
        };
        let entry = self
            .tree
            .get_path(Path::new(&components.join("/")))
            .map_err(git_err)?;
        let blob = self.repo.find_blob(entry.id()).map_err(git_err)?;
        Ok(blob.content().to_vec())
    }

    fn list_resolved(&self, shown: &str, components: &[String]) -> Result<Vec<String>, ReadError> {
        let git_err = |source: git2::Error| ReadError::Git {
            path: shown.to_string(),
            message: source.message().to_string(),
        };
        let tree = if components.is_empty() {
            self.tree.clone()
        } else {
            let entry = self
                .tree
                .get_path(Path::new(&components.join("/")))
                .map_err(git_err)?;
            self.repo.find_tree(entry.id()).map_err(git_err)?
        };
        let mut names: Vec<String> = tree
            .iter()
            .filter_map(|e| e.name().ok().map(str::to_string))
            .collect();
        names.sort();
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_and_urls() {
        assert_eq!(
            local_path_of("file:///srv/x.git"),
            Some(PathBuf::from("/srv/x.git"))
        );
        assert_eq!(
            local_path_of("/srv/x.git"),
            Some(PathBuf::from("/srv/x.git"))
        );
        assert_eq!(local_path_of("rel/x.git"), Some(PathBuf::from("rel/x.git")));
        assert_eq!(local_path_of("ssh://git@host/x.git"), None);
        assert_eq!(local_path_of("https://host/x.git"), None);
        assert_eq!(local_path_of("git@host:org/x.git"), None);
    }

    #[test]
    fn cache_ids_are_stable_and_distinct() {
        let a = cache_id("file:///srv/config.git");
        assert_eq!(a, cache_id("file:///srv/config.git"));
        assert!(a.starts_with("config.git-"));
        assert_ne!(a, cache_id("file:///srv/other/config.git"));
    }
}
