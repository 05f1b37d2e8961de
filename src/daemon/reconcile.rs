//! The reconcile shell, one poll at a time: one [`Snapshot`] of the config
//! repo (heads, every pinned env judged from its own branch, the audit
//! records, which envs already run their head), then [`dispatch`] hands
//! each env that has work a typed [`Job`] on its worker's channel. Nothing
//! here fetches, loads or renders twice: workers get the judged envs with
//! the job, and sync their own cache (they write from it) from the poll's
//! on disk instead of fetching the remote again. The scheduler's job list comes from the envs ([`scheduled_jobs`]).

use super::worker::{Job, Worker, in_sync};
use super::{Shared, metrics};
use crate::audit::{self, Record};
use crate::config::{DaemonConfig, Env, trust::Trust};
use crate::source::GitRepo;
use crate::wiring;
use platform_capstone_core::schedule::{Recurrence, scheduler::Openings};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// The config repo as one poll saw it.
pub struct Snapshot {
    /// Branch → head commit.
    pub heads: BTreeMap<String, String>,
    /// Every pinned env, judged from its own branch head.
    pub slots: Vec<wiring::EnvSlot>,
    /// The ready ones.
    pub envs: Vec<Env>,
    pub records: Vec<Record>,
    /// Env → whether it already runs what its branch says.
    pub in_sync: BTreeMap<String, bool>,
    /// The cache the poll fetched into: workers sync their own from it.
    pub source: Arc<PathBuf>,
    /// Env → the manual rollback holding it (its commit not landed yet).
    pub held: BTreeMap<String, String>,
}

/// Fetches and judges (blocking: run it off the async runtime). History
/// rewrites the trust root accepts are recorded in the notes as `actor`.
pub fn snapshot(ws: &mut wiring::Workspace, trust: Trust, actor: &str) -> Result<Snapshot, String> {
    // The trust root as the config says now (SIGHUP may change it).
    ws.trust = trust;
    // Each pinned env from its own branch only; a bad one is reported and
    // skipped, never in the way of the others.
    let rewrites = ws.refresh(true).map_err(|e| e.to_string())?;
    // Manual rollbacks whose commit waited for git: pushed now.
    let held = flush_rollbacks(ws)?;
    let slots = ws.slots.clone();
    let heads = ws.repo.heads().map_err(|e| e.to_string())?;
    for rw in rewrites {
        tracing::warn!(env = %rw.env, from = %rw.from, to = %rw.to, "env branch history rewritten; accepted (trust.history_rewrite = accept) and recorded");
        let entry = audit::RewriteRecord {
            env: rw.env.clone(),
            from: rw.from.clone(),
            at: chrono::Utc::now(),
            actor: actor.to_string(),
        };
        if let Err(e) = ws.repo.update_note(&rw.to, &mut |old| {
            let mut n = audit::Note::parse(old);
            n.rewrites.push(entry.clone());
            n.to_text()
        }) {
            tracing::warn!(env = %rw.env, error = %e, "cannot record the accepted rewrite");
        }
    }
    let envs = wiring::ready(&slots);
    let records = audit::all_records(&ws.repo.notes().map_err(|e| e.to_string())?);
    // Which envs already run what their branch says: no worker needed.
    let in_sync = envs
        .iter()
        .map(|e| (e.name.clone(), in_sync(ws, e, heads.get(&e.branch))))
        .collect();
    Ok(Snapshot {
        heads,
        slots,
        envs,
        records,
        in_sync,
        source: Arc::new(ws.repo.repository().path().to_path_buf()),
        held,
    })
}

/// Pushes the commit of every pending manual rollback (each env held until
/// its commit lands; a conflict stays held for an operator). Env → why it
/// is still held. The envs are loaded again when one landed.
fn flush_rollbacks(ws: &mut wiring::Workspace) -> Result<BTreeMap<String, String>, String> {
    use crate::engine::rollback::{Landed, flush};
    let mut held = BTreeMap::new();
    let mut landed = false;
    for env in wiring::ready(&ws.slots) {
        let summary = || {
            ws.store
                .rollback_pending(&env.name)
                .ok()
                .flatten()
                .map(|p| p.summary())
                .unwrap_or_default()
        };
        match flush(&mut ws.repo, &ws.store, &env) {
            Ok(None) => {}
            Ok(Some(Landed::Pushed { commit })) => {
                tracing::info!(env = %env.name, %commit, "manual rollback committed; the env is no longer held");
                landed = true;
            }
            Ok(Some(Landed::Queued { why })) => {
                tracing::warn!(env = %env.name, %why, "manual rollback commit still queued; the env stays held");
                held.insert(env.name.clone(), summary());
            }
            Ok(Some(Landed::Conflict { head })) => {
                tracing::error!(env = %env.name, %head, "manual rollback commit conflicts: the branch moved; nothing forced, the env stays held (docs/runbooks.md)");
                held.insert(env.name.clone(), summary());
            }
            Err(e) => {
                tracing::warn!(env = %env.name, error = %e, "manual rollback commit failed; the env stays held");
                held.insert(env.name.clone(), summary());
            }
        }
    }
    if landed {
        ws.reload(true).map_err(|e| e.to_string())?;
    }
    Ok(held)
}

/// What the scheduler runs: each env's promotion-window openings (an
/// allow window opening or a freeze ending retries a waiting release),
/// drift checks and drills, named `window:E`, `drift:E`, `drill:E:SCENARIO`.
pub fn scheduled_jobs(envs: &[Env]) -> Vec<(String, Arc<dyn Recurrence>)> {
    let mut jobs: Vec<(String, Arc<dyn Recurrence>)> = Vec::new();
    for e in envs {
        if !e.promotion.windows.is_empty() {
            let openings = Openings(e.promotion.windows.clone());
            jobs.push((format!("window:{}", e.name), Arc::new(openings)));
        }
        if let Some(s) = &e.drift.schedule {
            jobs.push((format!("drift:{}", e.name), Arc::new(s.clone())));
        }
        for (s, sc) in &e.drills {
            jobs.push((
                format!("drill:{}:{}", e.name, sc.name()),
                Arc::new(s.clone()),
            ));
        }
    }
    jobs
}

/// One env's worker: the channel its jobs go to, and its thread.
pub type WorkerHandle = (watch::Sender<Option<Job>>, std::thread::JoinHandle<()>);

/// What [`dispatch`] needs besides the snapshot.
pub struct Dispatch<'a> {
    pub shared: &'a Arc<Shared>,
    pub cfg: &'a DaemonConfig,
    pub config_file: &'a Path,
    pub stop: &'a Arc<AtomicBool>,
    /// A promotion window opened in this poll: waiting releases retry.
    pub window_opened: bool,
}

/// Publishes each env's head and hands every env with work a job: a new
/// head, a release waiting (window, approval), an operator's retry.
/// Workers start on first work: an env in sync costs nothing.
pub fn dispatch(
    d: &Dispatch<'_>,
    snap: &Snapshot,
    slots: &Arc<Vec<wiring::EnvSlot>>,
    workers: &mut BTreeMap<String, WorkerHandle>,
) {
    let now = chrono::Utc::now();
    for env in &snap.envs {
        let head = snap.heads.get(&env.branch).cloned();
        let label = metrics::EnvLabel {
            env: env.name.clone(),
        };
        let held = snap.held.get(&env.name).cloned();
        let m = &d.shared.metrics;
        m.last_fetch.get_or_create(&label).set(now.timestamp());
        m.held.get_or_create(&label).set(i64::from(held.is_some()));
        if let Ok(mut m) = d.shared.envs.lock() {
            let s = m.entry(env.name.clone()).or_default();
            s.branch = env.branch.clone();
            s.head = head.clone();
            s.last_fetch = Some(now);
            s.held = held.clone();
        }
        if held.is_some() {
            // Nothing is released in a held env; its rollback's commit
            // is pushed by the poll.
            continue;
        }
        let waiting = d
            .shared
            .envs
            .lock()
            .ok()
            .and_then(|m| m.get(&env.name).map(|s| s.waiting))
            .unwrap_or(false);
        let synced = snap.in_sync.get(&env.name).copied().unwrap_or(false);
        let known = workers
            .get(&env.name)
            .map(|w| w.0.borrow().as_ref().map(|j| j.commit.clone()));
        let changed = known.as_ref() != Some(&head);
        let control = d.shared.control(&env.name);
        let retry = control.retry.load(Ordering::Relaxed);
        if synced && !waiting && !retry && (known.is_none() || !changed) {
            continue;
        }
        let entry = workers.entry(env.name.clone()).or_insert_with(|| {
            let (tx, rx) = watch::channel(None);
            let w = Worker {
                env: env.name.clone(),
                cfg: d.cfg.clone(),
                config_file: d.config_file.to_path_buf(),
                shared: d.shared.clone(),
                stop: d.stop.clone(),
                control: control.clone(),
            };
            let handle = std::thread::spawn(move || w.run(rx));
            (tx, handle)
        });
        if changed || waiting || retry || d.window_opened {
            entry.0.send_replace(head.map(|commit| Job {
                commit,
                slots: slots.clone(),
                source: snap.source.clone(),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An env of the blueprint, loaded as the daemon loads it.
    fn blueprint_env(name: &str) -> Env {
        let tree = crate::blueprint::files()
            .into_iter()
            .fold(crate::source::MemTree::new(), |t, (path, content)| {
                t.file(&path, content)
            });
        crate::config::load_own_env(&tree, name).unwrap_or_else(|p| panic!("{name}: {p:?}"))
    }

    #[test]
    fn every_window_drift_check_and_drill_of_an_env_is_a_named_job() {
        let envs = [blueprint_env("dev"), blueprint_env("prod")];
        let jobs = scheduled_jobs(&envs);
        let names: Vec<String> = jobs.iter().map(|(n, _)| n.clone()).collect();
        let windows = &envs[1].promotion.windows;
        assert!(
            windows.len() > 1,
            "the blueprint's prod has an allow and a deny window"
        );
        // One job per env for all its windows: due when promotions open.
        let window_jobs: Vec<_> = jobs.iter().filter(|(n, _)| n == "window:prod").collect();
        assert_eq!(window_jobs.len(), 1, "{names:?}");
        // Inside the blueprint's year-end freeze, the job is due when it ends
        // and an allow window is open: Monday 2027-01-04 09:00 UTC.
        let christmas = chrono::DateTime::parse_from_rfc3339("2026-12-24T12:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        assert_eq!(
            window_jobs[0]
                .1
                .next_after(christmas)
                .map(|t| t.to_rfc3339()),
            Some("2027-01-04T09:00:00+00:00".to_string())
        );
        assert!(!names.iter().any(|n| n == "window:dev"), "dev has none");
        for env in ["dev", "prod"] {
            assert!(names.contains(&format!("drift:{env}")), "{names:?}");
        }
        let drills: usize = envs.iter().map(|e| e.drills.len()).sum();
        assert_eq!(
            names.iter().filter(|n| n.starts_with("drill:")).count(),
            drills
        );
        let mut none = envs[0].clone();
        none.promotion.windows.clear();
        none.drift.schedule = None;
        none.drills.clear();
        assert!(
            scheduled_jobs(&[none]).is_empty(),
            "nothing scheduled, no jobs"
        );
    }
}
