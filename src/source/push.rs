//! Compare-and-swap ref updates on the remote.
//!
//! Smart transports (ssh, https, git) push through libgit2; the
//! `push_negotiation` callback refuses the push unless the remote's current
//! value of the ref is the one we built on, and the server's receive-pack
//! applies the update under its own lock with the same old value. So a
//! concurrent writer always makes our push fail, never lose their commit.
//!
//! Local remotes (file:// or a path) are written by hand: libgit2's local
//! transport updates the remote ref with `force = 1` and no old-value check
//! (libgit2 `transports/local.c`, `local_push_update_remote_ref`), which
//! silently drops a concurrent writer's commit. Here objects are copied as a
//! pack into the remote's object database first, then the ref is moved with
//! `git_reference_create_matching`, which checks the old value under the ref
//! lock, the same lock `git receive-pack` takes.

use super::git::{GitError, credentials_callback};
use git2::{ErrorCode, Oid, Repository};
use std::cell::RefCell;
use std::io::Write;
use std::path::Path;

/// One ref to move on the remote: from `old` (None: must not exist) to `new`.
#[derive(Debug, Clone)]
pub struct RefUpdate {
    pub name: String,
    pub old: Option<Oid>,
    pub new: Oid,
}

/// Why a push did not happen.
pub enum PushFailure {
    /// The remote ref is not at `old` any more: fetch, re-apply, retry.
    Stale { name: String },
    /// Anything else: network, permissions, server hook.
    Error(GitError),
}

/// Pushes every update, each compare-and-swap on its old value.
/// A push to a network remote has `deadline` overall (see `git::within`).
pub fn push_cas(
    local: &Repository,
    url: &str,
    ssh_key: Option<&Path>,
    updates: &[RefUpdate],
    deadline: std::time::Duration,
) -> Result<(), PushFailure> {
    match super::git::local_path_of(url) {
        Some(path) => push_local(local, url, &path, updates),
        None => {
            let path = local.path().to_path_buf();
            let (url2, key) = (url.to_string(), ssh_key.map(Path::to_path_buf));
            let updates = updates.to_vec();
            super::git::within(deadline, move |until| {
                let local = Repository::open(&path).map_err(|e| {
                    PushFailure::Error(GitError::Push {
                        remote: url2.clone(),
                        context: "open the cache".into(),
                        source: e,
                    })
                })?;
                push_smart(&local, &url2, key.as_deref(), &updates, until)
            })
            .unwrap_or_else(|| {
                Err(PushFailure::Error(GitError::Push {
                    remote: url.to_string(),
                    context: "push".into(),
                    source: git2::Error::from_str(&format!(
                        "no answer within {}s (the remote is unreachable or too slow); nothing was forced, the next attempt starts over",
                        deadline.as_secs()
                    )),
                }))
            })
        }
    }
}

fn push_local(
    local: &Repository,
    url: &str,
    path: &Path,
    updates: &[RefUpdate],
) -> Result<(), PushFailure> {
    let err = |context: &str, source: git2::Error| {
        PushFailure::Error(GitError::Push {
            remote: url.to_string(),
            context: context.to_string(),
            source,
        })
    };
    let remote = Repository::open_bare(path).map_err(|e| err("open the remote repository", e))?;
    // Copy the objects the remote may lack. Objects it already has are
    // cheap duplicates in the pack; packing is idempotent.
    let mut walk = local.revwalk().map_err(|e| err("walk history", e))?;
    for u in updates {
        walk.push(u.new).map_err(|e| err("walk history", e))?;
        if let Some(old) = u.old
            && local.find_commit(old).is_ok()
        {
            walk.hide(old).map_err(|e| err("walk history", e))?;
        }
    }
    let mut pb = local.packbuilder().map_err(|e| err("build a pack", e))?;
    pb.insert_walk(&mut walk)
        .map_err(|e| err("build a pack", e))?;
    if pb.object_count() > 0 {
        let odb = remote
            .odb()
            .map_err(|e| err("open the remote object database", e))?;
        let mut writer = odb.packwriter().map_err(|e| err("write the pack", e))?;
        let mut write_error = None;
        pb.foreach(|chunk| match writer.write_all(chunk) {
            Ok(()) => true,
            Err(e) => {
                write_error = Some(e);
                false
            }
        })
        .map_err(|e| err("write the pack", e))?;
        if let Some(e) = write_error {
            return Err(err("write the pack", git2::Error::from_str(&e.to_string())));
        }
        writer.commit().map_err(|e| err("write the pack", e))?;
    }
    for u in updates {
        let result = match u.old {
            Some(old) => remote
                .reference_matching(&u.name, u.new, true, old, "platform-capstone push")
                .map(|_| ()),
            None => remote
                .reference(&u.name, u.new, false, "platform-capstone push")
                .map(|_| ()),
        };
        match result {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.code(),
                    ErrorCode::Modified
                        | ErrorCode::Exists
                        | ErrorCode::NotFound
                        | ErrorCode::Locked
                ) =>
            {
                return Err(PushFailure::Stale {
                    name: u.name.clone(),
                });
            }
            Err(e) => return Err(err(&format!("update {}", u.name), e)),
        }
    }
    Ok(())
}

fn push_smart(
    local: &Repository,
    url: &str,
    ssh_key: Option<&Path>,
    updates: &[RefUpdate],
    until: std::time::Instant,
) -> Result<(), PushFailure> {
    let mut remote = local.remote_anonymous(url).map_err(|e| {
        PushFailure::Error(GitError::Push {
            remote: url.to_string(),
            context: "set up the remote".into(),
            source: e,
        })
    })?;
    let stale: RefCell<Option<String>> = RefCell::new(None);
    let rejected: RefCell<Option<(String, String)>> = RefCell::new(None);
    let mut callbacks = credentials_callback(ssh_key);
    callbacks.push_negotiation(|remote_updates| {
        for ru in remote_updates {
            let Ok(dst) = ru.dst_refname() else { continue };
            if let Some(u) = updates.iter().find(|u| u.name == dst) {
                let expected = u.old.unwrap_or(Oid::ZERO_SHA1);
                if ru.src() != expected {
                    *stale.borrow_mut() = Some(dst.to_string());
                    return Err(git2::Error::from_str("remote ref moved"));
                }
            }
        }
        Ok(())
    });
    callbacks.sideband_progress(move |_| super::git::before(until));
    callbacks.push_update_reference(|name, status| {
        if let Some(msg) = status {
            *rejected.borrow_mut() = Some((name.to_string(), msg.to_string()));
        }
        Ok(())
    });
    let mut opts = git2::PushOptions::new();
    opts.remote_callbacks(callbacks);
    let specs: Vec<String> = updates
        .iter()
        .map(|u| format!("{}:{}", u.new, u.name))
        .collect();
    let result = remote.push(&specs, Some(&mut opts));
    drop(opts);
    if let Some(name) = stale.into_inner() {
        return Err(PushFailure::Stale { name });
    }
    if let Some((name, msg)) = rejected.into_inner() {
        // receive-pack's words for losing the race: its old-value check or
        // ref lock failed, or the update is no longer a fast-forward.
        const LOST_RACE: [&str; 6] = [
            "fast-forward",
            "fetch first",
            "stale info",
            "failed to update ref",
            "failed to lock",
            "cannot lock ref",
        ];
        if LOST_RACE.iter().any(|m| msg.contains(m)) {
            return Err(PushFailure::Stale { name });
        }
        return Err(PushFailure::Error(GitError::Rejected {
            remote: url.to_string(),
            refname: name,
            reason: msg,
        }));
    }
    result.map_err(|e| {
        PushFailure::Error(GitError::Push {
            remote: url.to_string(),
            context: "push".into(),
            source: e,
        })
    })
}
