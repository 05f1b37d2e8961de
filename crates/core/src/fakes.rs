//! In-memory implementations of the ports: a target, a traffic router, a
//! metrics provider answering from a script, and an OCI registry.
//!
//! They are product code, not test scaffolding: the engine's behaviour
//! (release, revert, pause, abort, resume) is proved over them in
//! milliseconds, and each one can be told to fail the way its real
//! counterpart fails (unreachable, never ready, no data, NaN, provider
//! errors) so the failure paths are exercised without breaking real
//! processes. Every adapter is still tested against the real thing; these
//! never stand in for that proof.
//!
//! Each fake keeps a log of what it was asked, so a test asserts what the
//! engine did (which splits, which applies) rather than what it printed.
//! A fake is a handle: its clones share one state, so the same target or
//! registry can sit behind several engines (two releasers of one env) and
//! the test that looks at it.

use crate::ports::{
    LiveObject, MetricsError, Readiness, Registry, RegistryError, RouterError, Sample, Split,
    Target, TargetError, TrafficRouter, Workload,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// Locks a fake's state; a poisoned lock (a panicking test thread) still
/// hands out the state, which is plain data.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One generation a track runs: the release that applied it, its objects
/// and its endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    pub release: String,
    pub objects: Vec<yaml_serde::Value>,
    pub endpoints: Vec<String>,
}

#[derive(Default)]
struct TargetState {
    current: BTreeMap<Workload, Generation>,
    /// The generation `apply` replaced, until `settle` removes it.
    previous: BTreeMap<Workload, Generation>,
    next_port: u16,
    calls: Vec<String>,
}

/// What the next `apply` does instead of succeeding.
#[derive(Debug, Clone)]
pub enum ApplyFault {
    /// The new pods never become ready: `TargetError::NotReady`.
    NeverReady,
    /// The target answers with this error (kept across calls until cleared).
    Error(TargetError),
}

/// A target holding each track's generation in memory; one replica per
/// track, endpoints `127.0.0.1:<port>` from 20000 up.
#[derive(Default, Clone)]
pub struct MemTarget {
    state: Arc<Mutex<TargetState>>,
    fault: Arc<Mutex<Option<ApplyFault>>>,
    /// Every call fails with `TargetError::Unavailable` while set.
    down: Arc<Mutex<Option<String>>>,
}

impl MemTarget {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `apply` fail as `fault` until `clear_fault`.
    pub fn fail_apply(&self, fault: ApplyFault) {
        *lock(&self.fault) = Some(fault);
    }

    pub fn clear_fault(&self) {
        *lock(&self.fault) = None;
    }

    /// Every call fails with `Unavailable(message)` while set.
    pub fn set_down(&self, message: Option<&str>) {
        *lock(&self.down) = message.map(str::to_string);
    }

    /// The generation a track runs now.
    pub fn running(&self, workload: &Workload) -> Option<Generation> {
        lock(&self.state).current.get(workload).cloned()
    }

    /// Someone edits what `workload` runs by hand (`kubectl edit`, a
    /// live patch): the objects change, nothing else does.
    pub fn edit_live(&self, workload: &Workload, edit: impl FnOnce(&mut Vec<yaml_serde::Value>)) {
        if let Some(g) = lock(&self.state).current.get_mut(workload) {
            edit(&mut g.objects);
        }
    }

    /// Every call so far, as `apply demo-dev/demo (canary) rel-…`.
    pub fn calls(&self) -> Vec<String> {
        lock(&self.state).calls.clone()
    }

    fn check_down(&self) -> Result<(), TargetError> {
        match lock(&self.down).as_ref() {
            Some(m) => Err(TargetError::Unavailable(m.clone())),
            None => Ok(()),
        }
    }
}

fn names(g: &Generation) -> Vec<String> {
    g.objects
        .iter()
        .map(|o| {
            format!(
                "{}/{}",
                o["kind"].as_str().unwrap_or("?"),
                o["metadata"]["name"].as_str().unwrap_or("?")
            )
        })
        .collect()
}

impl Target for MemTarget {
    fn apply(
        &self,
        workload: &Workload,
        objects: &[yaml_serde::Value],
        release: &str,
    ) -> Result<Readiness, TargetError> {
        self.check_down()?;
        let mut s = lock(&self.state);
        s.calls.push(format!("apply {workload} {release}"));
        match lock(&self.fault).clone() {
            Some(ApplyFault::NeverReady) => {
                return Err(TargetError::NotReady {
                    workload: workload.to_string(),
                    seconds: 0,
                    detail: "readiness probe failing".into(),
                });
            }
            Some(ApplyFault::Error(e)) => return Err(e),
            None => {}
        }
        let port = 20000 + s.next_port;
        s.next_port += 1;
        let generation = Generation {
            release: release.to_string(),
            objects: objects.to_vec(),
            endpoints: vec![format!("127.0.0.1:{port}")],
        };
        let endpoints = generation.endpoints.clone();
        if let Some(old) = s.current.insert(workload.clone(), generation) {
            s.previous.insert(workload.clone(), old);
        }
        Ok(Readiness {
            desired: 1,
            ready: 1,
            endpoints,
        })
    }

    fn settle(&self, workload: &Workload) -> Result<Vec<String>, TargetError> {
        self.check_down()?;
        let mut s = lock(&self.state);
        s.calls.push(format!("settle {workload}"));
        Ok(s.previous
            .remove(workload)
            .map(|g| names(&g))
            .unwrap_or_default())
    }

    fn remove(&self, workload: &Workload) -> Result<(), TargetError> {
        self.check_down()?;
        let mut s = lock(&self.state);
        s.calls.push(format!("remove {workload}"));
        s.current.remove(workload);
        s.previous.remove(workload);
        Ok(())
    }

    fn readiness(&self, workload: &Workload) -> Result<Readiness, TargetError> {
        self.check_down()?;
        let s = lock(&self.state);
        Ok(match s.current.get(workload) {
            Some(g) => Readiness {
                desired: 1,
                ready: 1,
                endpoints: g.endpoints.clone(),
            },
            None => Readiness {
                desired: 0,
                ready: 0,
                endpoints: Vec::new(),
            },
        })
    }

    fn live(&self, namespace: &str) -> Result<Vec<LiveObject>, TargetError> {
        self.check_down()?;
        let s = lock(&self.state);
        Ok(s.current
            .iter()
            .filter(|(w, _)| w.namespace == namespace)
            .flat_map(|(_, g)| g.objects.iter())
            .map(|o| LiveObject {
                kind: o["kind"].as_str().unwrap_or_default().to_string(),
                namespace: namespace.to_string(),
                name: o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                object: o.clone(),
            })
            .collect())
    }

    fn prune(&self, _namespace: &str, _keep: &[String]) -> Result<Vec<String>, TargetError> {
        self.check_down()?;
        Ok(Vec::new())
    }
}

/// A router keeping each app's split, and every split it was given.
#[derive(Default, Clone)]
pub struct MemRouter {
    splits: Arc<Mutex<BTreeMap<(String, String), Split>>>,
    history: Arc<Mutex<Vec<Split>>>,
    down: Arc<Mutex<Option<String>>>,
}

impl MemRouter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every split routed, in order.
    pub fn history(&self) -> Vec<Split> {
        lock(&self.history).clone()
    }

    /// Every call fails with `Unavailable(message)` while set.
    pub fn set_down(&self, message: Option<&str>) {
        *lock(&self.down) = message.map(str::to_string);
    }
}

impl TrafficRouter for MemRouter {
    fn route(&self, namespace: &str, app: &str, split: &Split) -> Result<(), RouterError> {
        if let Some(m) = lock(&self.down).as_ref() {
            return Err(RouterError::Unavailable(m.clone()));
        }
        lock(&self.splits).insert((namespace.into(), app.into()), split.clone());
        lock(&self.history).push(split.clone());
        Ok(())
    }

    fn current(&self, namespace: &str, app: &str) -> Result<Split, RouterError> {
        lock(&self.splits)
            .get(&(namespace.to_string(), app.to_string()))
            .cloned()
            .ok_or_else(|| RouterError::UnknownRoute(format!("{namespace}/{app}")))
    }
}

/// What a scripted query answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    Sample(Sample),
    /// A provider error (Prometheus down or failing).
    ProviderError(String),
}

/// Query fragments, and the answer to a query containing every one.
type Rule = (Vec<String>, Answer);

/// A metrics provider answering from rules: the first rule whose every
/// fragment occurs in the query answers it; no rule matching is "no
/// data" (the honest answer of a Prometheus that never saw the series).
#[derive(Default, Clone)]
pub struct ScriptedMetrics {
    rules: Arc<Mutex<Vec<Rule>>>,
    asked: Arc<Mutex<Vec<String>>>,
    down: Arc<Mutex<Option<String>>>,
}

impl ScriptedMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queries containing every one of `fragments` answer `answer`. The
    /// rule with the most fragments wins, then the newest; a rule with the
    /// same fragments is replaced.
    pub fn answer(&self, fragments: &[&str], answer: Answer) {
        let key: Vec<String> = fragments.iter().map(|f| f.to_string()).collect();
        let mut rules = lock(&self.rules);
        rules.retain(|(k, _)| *k != key);
        let at = rules
            .iter()
            .position(|(k, _)| k.len() <= key.len())
            .unwrap_or(rules.len());
        rules.insert(at, (key, answer));
    }

    /// `answer` with a number.
    pub fn value(&self, fragments: &[&str], v: f64) {
        self.answer(fragments, Answer::Sample(Sample::Value(v)));
    }

    /// Every query asked so far.
    pub fn asked(&self) -> Vec<String> {
        lock(&self.asked).clone()
    }

    /// Every query fails with a provider error while set (the provider
    /// killed), whatever the rules say.
    pub fn set_down(&self, message: Option<&str>) {
        *lock(&self.down) = message.map(str::to_string);
    }

    fn lookup(&self, query: &str) -> Result<Sample, MetricsError> {
        lock(&self.asked).push(query.to_string());
        if let Some(m) = lock(&self.down).as_ref() {
            return Err(MetricsError::Provider(m.clone()));
        }
        let rules = lock(&self.rules);
        let hit = rules
            .iter()
            .find(|(fragments, _)| fragments.iter().all(|f| query.contains(f.as_str())));
        match hit.map(|(_, a)| a) {
            None => Ok(Sample::NoData),
            Some(Answer::Sample(s)) => Ok(*s),
            Some(Answer::ProviderError(m)) => Err(MetricsError::Provider(m.clone())),
        }
    }
}

impl crate::ports::Metrics for ScriptedMetrics {
    fn instant(
        &self,
        query: &str,
        _at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Sample, MetricsError> {
        self.lookup(query)
    }

    fn range(
        &self,
        query: &str,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
        step: std::time::Duration,
    ) -> Result<Vec<(i64, Sample)>, MetricsError> {
        let sample = self.lookup(query)?;
        if sample == Sample::NoData {
            return Ok(Vec::new());
        }
        let step = step.as_secs().max(1) as i64;
        Ok((start.timestamp()..=end.timestamp())
            .step_by(step as usize)
            .map(|t| (t, sample))
            .collect())
    }
}

/// `repo:tag` or `repo@digest` → repo (a registry host may carry a port).
fn repo_of(reference: &str) -> &str {
    if let Some((repo, _)) = reference.split_once('@') {
        return repo;
    }
    match reference.rfind(':') {
        Some(i) if !reference[i..].contains('/') => &reference[..i],
        _ => reference,
    }
}

#[derive(Default)]
struct RegistryState {
    /// Reference (`repo:tag` and `repo@digest`) → manifest bytes.
    manifests: HashMap<String, Vec<u8>>,
    /// Digest → blob.
    blobs: HashMap<String, Vec<u8>>,
}

/// An OCI registry in memory: manifests by tag and digest, blobs by
/// digest, with the adapter's caps and digest checks.
#[derive(Default, Clone)]
pub struct MemRegistry {
    state: Arc<Mutex<RegistryState>>,
    down: Arc<Mutex<Option<String>>>,
    /// Serves the OCI 1.1 referrers API (otherwise it answers 404, as
    /// `docker-registry` 2.8 does).
    referrers_api: bool,
}

impl MemRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry with the OCI 1.1 referrers API.
    pub fn with_referrers_api() -> Self {
        Self {
            referrers_api: true,
            ..Self::default()
        }
    }

    /// Every call fails with `Unavailable` while set.
    pub fn set_down(&self, message: Option<&str>) {
        *lock(&self.down) = message.map(str::to_string);
    }

    /// Stores a manifest or index under `reference` and under its digest.
    fn store(&self, reference: &str, doc: &impl serde::Serialize) -> Result<String, RegistryError> {
        let bytes = serde_json::to_vec(doc).map_err(|e| RegistryError::Invalid {
            reference: reference.to_string(),
            message: format!("does not serialize: {e}"),
        })?;
        let digest = crate::model::oci::sha256(&bytes);
        let mut state = lock(&self.state);
        state
            .manifests
            .insert(format!("{}@{digest}", repo_of(reference)), bytes.clone());
        state.manifests.insert(reference.to_string(), bytes);
        Ok(digest)
    }

    fn check_down(&self, reference: &str) -> Result<(), RegistryError> {
        match lock(&self.down).as_ref() {
            Some(m) => Err(RegistryError::Unavailable {
                registry: reference.split('/').next().unwrap_or_default().to_string(),
                message: m.clone(),
            }),
            None => Ok(()),
        }
    }
}

impl Registry for MemRegistry {
    fn manifest(
        &self,
        reference: &str,
    ) -> Result<Option<(crate::model::oci::Manifest, String)>, RegistryError> {
        self.check_down(reference)?;
        let bytes = match lock(&self.state).manifests.get(reference) {
            Some(b) => b.clone(),
            None => return Ok(None),
        };
        let m = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Invalid {
            reference: reference.to_string(),
            message: format!("not an OCI image manifest: {e}"),
        })?;
        Ok(Some((m, crate::model::oci::sha256(&bytes))))
    }

    fn blob(&self, repo: &str, digest: &str, cap: usize) -> Result<Vec<u8>, RegistryError> {
        self.check_down(repo)?;
        let state = lock(&self.state);
        let bytes = state
            .blobs
            .get(digest)
            .ok_or_else(|| RegistryError::Invalid {
                reference: format!("{repo}@{digest}"),
                message: "blob unknown".into(),
            })?;
        if bytes.len() > cap {
            return Err(RegistryError::Invalid {
                reference: format!("{repo}@{digest}"),
                message: format!("blob is over the {cap}-byte cap"),
            });
        }
        Ok(bytes.clone())
    }

    fn push_blob(&self, repo: &str, bytes: Vec<u8>) -> Result<String, RegistryError> {
        self.check_down(repo)?;
        let digest = crate::model::oci::sha256(&bytes);
        lock(&self.state).blobs.insert(digest.clone(), bytes);
        Ok(digest)
    }

    fn push_manifest(
        &self,
        reference: &str,
        manifest: &crate::model::oci::Manifest,
    ) -> Result<String, RegistryError> {
        self.check_down(reference)?;
        self.store(reference, manifest)
    }

    fn referrers(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<crate::model::oci::Index>, RegistryError> {
        self.check_down(repo)?;
        if !self.referrers_api {
            return Ok(None);
        }
        let state = lock(&self.state);
        let prefix = format!("{repo}@");
        let mut index = crate::model::oci::Index::new();
        let mut keys: Vec<&String> = state
            .manifests
            .keys()
            .filter(|k| k.starts_with(&prefix))
            .collect();
        keys.sort();
        for key in keys {
            let bytes = &state.manifests[key];
            let Ok(m) = serde_json::from_slice::<crate::model::oci::Manifest>(bytes) else {
                continue;
            };
            if m.subject.as_ref().is_some_and(|s| s.digest == digest) {
                let mut d = crate::model::oci::descriptor(
                    crate::model::oci::OCI_MANIFEST,
                    bytes,
                    m.annotations.clone(),
                );
                d.artifact_type = m.artifact_type.clone();
                index.manifests.push(d);
            }
        }
        Ok(Some(index))
    }

    fn manifest_descriptor(
        &self,
        reference: &str,
    ) -> Result<Option<crate::model::oci::Descriptor>, RegistryError> {
        self.check_down(reference)?;
        Ok(lock(&self.state)
            .manifests
            .get(reference)
            .map(|b| crate::model::oci::described(b, crate::model::oci::sha256(b))))
    }

    fn index(&self, reference: &str) -> Result<Option<crate::model::oci::Index>, RegistryError> {
        self.check_down(reference)?;
        let Some(bytes) = lock(&self.state).manifests.get(reference).cloned() else {
            return Ok(None);
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| RegistryError::Invalid {
                reference: reference.to_string(),
                message: format!("not an OCI image index: {e}"),
            })
    }

    fn push_index(
        &self,
        reference: &str,
        index: &crate::model::oci::Index,
    ) -> Result<String, RegistryError> {
        self.check_down(reference)?;
        self.store(reference, index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{Metrics, Track};

    #[test]
    fn repo_of_keeps_a_registry_port() {
        assert_eq!(repo_of("127.0.0.1:5000/demo:1.0"), "127.0.0.1:5000/demo");
        assert_eq!(repo_of("127.0.0.1:5000/demo"), "127.0.0.1:5000/demo");
        assert_eq!(
            repo_of("127.0.0.1:5000/demo@sha256:ab"),
            "127.0.0.1:5000/demo"
        );
    }

    #[test]
    fn the_registry_finds_an_image_by_tag_and_by_digest() {
        let reg = MemRegistry::new();
        let digest = reg
            .push_image("r.test/demo:1.0", b"{}".to_vec(), vec![b"layer".to_vec()])
            .expect("push");
        let (by_tag, d) = reg
            .manifest("r.test/demo:1.0")
            .expect("read")
            .expect("found");
        assert_eq!(d, digest);
        let (by_digest, _) = reg
            .manifest(&format!("r.test/demo@{digest}"))
            .expect("read")
            .expect("found");
        assert_eq!(by_tag.layers[0].digest, by_digest.layers[0].digest);
        assert!(reg.manifest("r.test/demo:2.0").expect("read").is_none());
        assert!(
            reg.blob("r.test/demo", &by_tag.layers[0].digest, 2)
                .is_err()
        );
        reg.set_down(Some("connection refused"));
        let err = reg.manifest("r.test/demo:1.0").expect_err("down");
        assert!(err.is_infrastructure());
    }

    #[test]
    fn scripted_metrics_answer_by_fragments_and_default_to_no_data() {
        let m = ScriptedMetrics::new();
        m.value(&["errors", "canary"], 0.5);
        m.value(&["errors"], 0.0);
        assert_eq!(
            m.instant("errors{track=canary}", None).expect("a"),
            Sample::Value(0.5)
        );
        assert_eq!(
            m.instant("errors{track=stable}", None).expect("a"),
            Sample::Value(0.0)
        );
        assert_eq!(m.instant("latency", None).expect("a"), Sample::NoData);
        m.answer(&["latency"], Answer::ProviderError("down".into()));
        assert!(m.instant("latency", None).is_err());
        assert_eq!(m.asked().len(), 4);
    }

    #[test]
    fn the_target_keeps_generations_until_settled() {
        let t = MemTarget::new();
        let w = Workload {
            namespace: "ns".into(),
            app: "demo".into(),
            track: Track::Stable,
        };
        let obj: yaml_serde::Value =
            crate::yaml::from_str("t", "kind: Deployment\nmetadata: {name: demo}").expect("yaml");
        let first = t
            .apply(&w, std::slice::from_ref(&obj), "rel-1")
            .expect("apply");
        let second = t.apply(&w, &[obj], "rel-2").expect("apply");
        assert_ne!(first.endpoints, second.endpoints);
        assert_eq!(t.settle(&w).expect("settle"), vec!["Deployment/demo"]);
        assert_eq!(t.running(&w).expect("runs").release, "rel-2");
        t.fail_apply(ApplyFault::NeverReady);
        assert!(matches!(
            t.apply(&w, &[], "rel-3"),
            Err(TargetError::NotReady { .. })
        ));
        t.set_down(Some("socket gone"));
        assert!(matches!(t.readiness(&w), Err(TargetError::Unavailable(_))));
    }
}
