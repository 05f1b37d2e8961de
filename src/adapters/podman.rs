//! The [`Target`] port on podman: rendered manifests run through
//! `podman kube play`, one pod per replica and track, each publishing its
//! first container port on a loopback port of its own (slirp4netns port
//! handler: no iptables, no root network changes) so the router can weight
//! stable and canary replicas individually.
//!
//! Translation, Deployment → pods (everything else in the pod template is
//! passed to podman as written):
//! - `spec.replicas` pods (at most [`SLOTS`](super::haproxy::SLOTS)),
//!   named `<namespace>-<deployment>-<track>-<generation>-<i>`;
//! - `envFrom` and `valueFrom` references to the rendered ConfigMaps and
//!   Secrets resolved into literal env (the pod file is written 0600 and
//!   deleted after `kube play`; a missing reference is an error, as in
//!   Kubernetes);
//! - inventory labels: managed-by, namespace, app, track, release,
//!   generation, object; the published port.
//!
//! Services are the router's business (HAProxy frontends); ServiceAccount,
//! PodDisruptionBudget, HorizontalPodAutoscaler and NetworkPolicy have no
//! meaning on one machine and are accepted and skipped; any other kind is
//! refused by name.
//!
//! A new generation replaces the old one in two moves so traffic never
//! points at nothing: `apply` starts and readies the new pods (removing
//! them again if they do not become ready: nothing half-applied), the
//! router moves, then `settle` removes older generations.
//!
//! Prometheus finds the pods through a file_sd targets file. A pod found
//! that way is scraped only 5–10 s after it started (Prometheus batches
//! discovery updates and reloads its scrape pools on 5 s tickers), and a
//! canary's first interval waits for that. So `local up` gives every
//! route's tracks a pool of [`ScrapeSlot`] ports that are targets from the
//! start (labelled namespace, app, track): a pod published on a free slot
//! is scraped within a second of listening. Without a free, bindable slot
//! a pod gets any free port and a target of its own (the slow path).

use super::process;
use crate::ports::{
    APP_LABEL, LiveObject, MANAGED_BY, MANAGED_BY_VALUE, NAMESPACE_LABEL, RELEASE_LABEL, Readiness,
    TRACK_LABEL, Target, TargetError, Track, Workload,
};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use yaml_serde::{Mapping, Value};

pub const GENERATION_LABEL: &str = "platform-capstone.dev/generation";
pub const OBJECT_LABEL: &str = "platform-capstone.dev/object";
pub const PORT_LABEL: &str = "platform-capstone.dev/port";
pub const PROBE_LABEL: &str = "platform-capstone.dev/readiness-path";

/// Env names whose values came from Secrets (names only, comma-separated).
pub const SECRET_ENV_LABEL: &str = "platform-capstone.dev/secret-env";
const SKIPPED_KINDS: &[&str] = &[
    "Service",
    "ServiceAccount",
    "PodDisruptionBudget",
    "HorizontalPodAutoscaler",
    "NetworkPolicy",
];
/// Env podman or the image sets on its own; not part of the desired state.
pub(crate) const RUNTIME_ENV: &[&str] = &["PATH", "TERM", "container", "HOSTNAME", "HOME"];

/// Where podman's configuration lives (never `/etc`).
#[derive(Debug, Clone)]
pub struct PodmanConfig {
    pub containers_conf: PathBuf,
    pub storage_conf: PathBuf,
    pub registries_conf: PathBuf,
    /// Pod files (briefly) and the Prometheus targets file.
    pub work_dir: PathBuf,
}

pub struct Podman {
    config: PodmanConfig,
    pub ready_timeout: Duration,
    pub command_timeout: Duration,
    http: reqwest::blocking::Client,
}

/// A loopback port that is a Prometheus target of one route's track
/// whether or not a pod listens on it (`scrape-slots.json`, written by
/// `local up`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScrapeSlot {
    pub namespace: String,
    pub app: String,
    pub track: String,
    pub port: u16,
}

/// The slots file in a podman work dir.
pub const SCRAPE_SLOTS_FILE: &str = "scrape-slots.json";

/// The slot ports of `workload` that no pod in `in_use` publishes, in
/// order: where its new pods go first.
pub fn free_slots(slots: &[ScrapeSlot], workload: &Workload, in_use: &[u16]) -> Vec<u16> {
    slots
        .iter()
        .filter(|s| {
            s.namespace == workload.namespace
                && s.app == workload.app
                && s.track == workload.track.as_str()
                && !in_use.contains(&s.port)
        })
        .map(|s| s.port)
        .collect()
}

/// The file_sd target groups: every slot (labelled by its route and
/// track), and each live pod that publishes a port outside the slots.
pub fn scrape_targets(slots: &[ScrapeSlot], pods: &[PodState]) -> Vec<serde_json::Value> {
    let slot_targets = slots.iter().map(|s| {
        serde_json::json!({
            "targets": [format!("127.0.0.1:{}", s.port)],
            "labels": {"namespace": s.namespace, "app": s.app, "track": s.track},
        })
    });
    let pod_targets = pods.iter().filter_map(|p| {
        let port = p.port()?;
        if slots.iter().any(|s| s.port == port) {
            return None;
        }
        Some(serde_json::json!({
            "targets": [format!("127.0.0.1:{port}")],
            "labels": {
                "namespace": p.label(NAMESPACE_LABEL),
                "app": p.label(APP_LABEL),
                "track": p.label(TRACK_LABEL),
                "pod": p.name,
            }
        }))
    });
    slot_targets.chain(pod_targets).collect()
}

/// One pod to start.
#[derive(Debug, Clone)]
pub struct PodPlan {
    pub name: String,
    pub port: u16,
    pub probe: Option<String>,
    pub doc: Value,
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn get<'v>(v: &'v Value, path: &[&str]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, k| v.get(*k))
}

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    get(v, path).and_then(Value::as_str)
}

fn object_id(doc: &Value) -> String {
    format!(
        "{}/{}",
        str_at(doc, &["kind"]).unwrap_or("?"),
        str_at(doc, &["metadata", "name"]).unwrap_or("?")
    )
}

/// ConfigMap and Secret data by name (Secret `data` base64-decoded,
/// `stringData` over it).
fn env_sources(objects: &[Value]) -> Result<Sources, TargetError> {
    use base64::Engine;
    let mut out = BTreeMap::new();
    for o in objects {
        let kind = str_at(o, &["kind"]).unwrap_or_default();
        if kind != "ConfigMap" && kind != "Secret" {
            continue;
        }
        let name = str_at(o, &["metadata", "name"])
            .unwrap_or_default()
            .to_string();
        let mut data = BTreeMap::new();
        let strings = |m: Option<&Value>| -> Vec<(String, String)> {
            m.and_then(Value::as_mapping)
                .into_iter()
                .flatten()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect()
        };
        if kind == "Secret" {
            for (k, v) in strings(o.get("data")) {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(v.trim())
                    .map_err(|_| TargetError::Unsupported {
                        object: format!("Secret/{name}"),
                        message: format!("data.{k} is not base64"),
                    })?;
                data.insert(k, String::from_utf8_lossy(&bytes).into_owned());
            }
            data.extend(strings(o.get("stringData")));
        } else {
            data.extend(strings(o.get("data")));
        }
        out.insert((kind.to_string(), name), data);
    }
    Ok(out)
}

type Sources = BTreeMap<(String, String), BTreeMap<String, String>>;

/// Resolves `envFrom` and `valueFrom` into literal `env` for one container;
/// returns the names whose value came from a Secret.
fn resolve_env(
    container: &mut Mapping,
    sources: &Sources,
    object: &str,
) -> Result<Vec<String>, TargetError> {
    let mut secret_names: Vec<String> = Vec::new();
    let missing = |what: String| TargetError::Unsupported {
        object: object.to_string(),
        message: format!("{what} is not among the rendered objects; add it to the overlay"),
    };
    let mut env: Vec<(String, String)> = Vec::new();
    if let Some(from) = container.remove("envFrom") {
        for f in from.as_sequence().into_iter().flatten() {
            for (key, kind) in [("configMapRef", "ConfigMap"), ("secretRef", "Secret")] {
                if let Some(name) = str_at(f, &[key, "name"]) {
                    let optional =
                        get(f, &[key, "optional"]).and_then(Value::as_bool) == Some(true);
                    match sources.get(&(kind.to_string(), name.to_string())) {
                        Some(data) => {
                            let prefix = str_at(f, &["prefix"]).unwrap_or_default();
                            if kind == "Secret" {
                                secret_names.extend(data.keys().map(|k| format!("{prefix}{k}")));
                            }
                            env.extend(
                                data.iter()
                                    .map(|(k, v)| (format!("{prefix}{k}"), v.clone())),
                            );
                        }
                        None if optional => {}
                        None => return Err(missing(format!("{kind} {name:?} (envFrom)"))),
                    }
                }
            }
        }
    }
    for e in container
        .get("env")
        .and_then(Value::as_sequence)
        .into_iter()
        .flatten()
    {
        let Some(name) = str_at(e, &["name"]) else {
            continue;
        };
        if let Some(v) = str_at(e, &["value"]) {
            env.push((name.to_string(), v.to_string()));
            continue;
        }
        let mut resolved = None;
        for (key, kind) in [("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")] {
            if let Some(r) = get(e, &["valueFrom", key]) {
                let src = str_at(r, &["name"]).unwrap_or_default();
                let k = str_at(r, &["key"]).unwrap_or_default();
                let optional = r.get("optional").and_then(Value::as_bool) == Some(true);
                match sources
                    .get(&(kind.to_string(), src.to_string()))
                    .and_then(|d| d.get(k))
                {
                    Some(v) => {
                        resolved = Some(v.clone());
                        if kind == "Secret" {
                            secret_names.push(name.to_string());
                        }
                    }
                    None if optional => {}
                    None => return Err(missing(format!("{kind} {src:?} key {k:?} (env {name})"))),
                }
            }
        }
        if get(e, &["valueFrom", "fieldRef"]).is_some()
            || get(e, &["valueFrom", "resourceFieldRef"]).is_some()
        {
            return Err(TargetError::Unsupported {
                object: object.to_string(),
                message: format!(
                    "env {name}: fieldRef/resourceFieldRef is not supported by the podman target"
                ),
            });
        }
        if let Some(v) = resolved {
            env.push((name.to_string(), v));
        }
    }
    // Later definitions win, as in Kubernetes (env over envFrom).
    let mut merged: BTreeMap<String, String> = BTreeMap::new();
    let mut order = Vec::new();
    for (k, v) in env {
        if merged.insert(k.clone(), v).is_none() {
            order.push(k);
        }
    }
    let seq: Vec<Value> = order
        .iter()
        .map(|k| {
            let mut m = Mapping::new();
            m.insert(s("name"), s(k));
            m.insert(s("value"), s(&merged[k]));
            Value::Mapping(m)
        })
        .collect();
    if seq.is_empty() {
        container.remove("env");
    } else {
        container.insert(s("env"), Value::Sequence(seq));
    }
    secret_names.sort();
    secret_names.dedup();
    Ok(secret_names)
}

/// Replaces the value of every env entry named in `secret` by its mask.
fn mask_env(container: &mut Mapping, secret: &[String]) {
    for e in container
        .get_mut("env")
        .and_then(Value::as_sequence_mut)
        .into_iter()
        .flatten()
    {
        let named = str_at(e, &["name"]).is_some_and(|n| secret.iter().any(|x| x == n));
        if named
            && let Some(m) = e.as_mapping_mut()
            && let Some(v) = m.get("value").and_then(Value::as_str)
        {
            let masked = crate::redact::mask(v.as_bytes());
            m.insert(s("value"), s(&masked));
        }
    }
}

/// Sorts a container's env by name: podman does not keep the order a pod
/// file gave (`kube play` builds it from a map), so neither side of a
/// comparison may depend on it.
fn sort_env(container: &mut Mapping) {
    if let Some(env) = container.get_mut("env").and_then(Value::as_sequence_mut) {
        env.sort_by(|a, b| str_at(a, &["name"]).cmp(&str_at(b, &["name"])));
    }
}

/// Desired objects as [`Podman::live`] reports them, for drift: each
/// Deployment reduced to what a pod shows (replicas, template labels, and
/// per container name, image, resolved env (sorted by name: podman keeps
/// no order) and args), Secret-derived env values masked. Other kinds are
/// not observable here and are left out.
pub fn observable(namespace: &str, objects: &[Value]) -> Result<Vec<Value>, TargetError> {
    let sources = env_sources(objects)?;
    let mut out = Vec::new();
    for d in objects
        .iter()
        .filter(|o| str_at(o, &["kind"]) == Some("Deployment"))
    {
        let id = object_id(d);
        let name = str_at(d, &["metadata", "name"]).unwrap_or_default();
        let replicas = get(d, &["spec", "replicas"])
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let labels = get(d, &["spec", "template", "metadata", "labels"])
            .cloned()
            .unwrap_or(Value::Mapping(Mapping::new()));
        let mut containers = Vec::new();
        for c in get(d, &["spec", "template", "spec", "containers"])
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
        {
            let Some(mut full) = c.as_mapping().cloned() else {
                continue;
            };
            let secret = resolve_env(&mut full, &sources, &id)?;
            mask_env(&mut full, &secret);
            sort_env(&mut full);
            let mut m = Mapping::new();
            for key in ["name", "image", "env", "args"] {
                if let Some(v) = full.get(key) {
                    m.insert(s(key), v.clone());
                }
            }
            containers.push(Value::Mapping(m));
        }
        let doc = serde_json::json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"replicas": replicas, "template": {"spec": {}}},
        });
        let mut doc: Value =
            yaml_serde::to_value(doc).map_err(|e| TargetError::Unavailable(e.to_string()))?;
        if let Some(t) = doc.get_mut("spec").and_then(|s| s.get_mut("template")) {
            t["metadata"] = Value::Mapping(Mapping::new());
            t["metadata"]["labels"] = labels;
            t["spec"]["containers"] = Value::Sequence(containers);
        }
        out.push(doc);
    }
    Ok(out)
}

/// The pods that run `objects` for `workload`: pure, given a port source.
pub fn plan_pods(
    workload: &Workload,
    objects: &[Value],
    release: &str,
    generation: &str,
    mut port: impl FnMut() -> Result<u16, String>,
) -> Result<Vec<PodPlan>, TargetError> {
    for o in objects {
        let kind = str_at(o, &["kind"]).unwrap_or_default();
        if !matches!(kind, "Deployment" | "ConfigMap" | "Secret") && !SKIPPED_KINDS.contains(&kind)
        {
            return Err(TargetError::Unsupported {
                object: object_id(o),
                message: format!(
                    "kind {kind} cannot run on the podman target (it runs Deployment, ConfigMap, Secret; skips {})",
                    SKIPPED_KINDS.join(", ")
                ),
            });
        }
    }
    let sources = env_sources(objects)?;
    let deployments: Vec<&Value> = objects
        .iter()
        .filter(|o| str_at(o, &["kind"]) == Some("Deployment"))
        .filter(|o| {
            workload.track == Track::Stable
                || str_at(o, &["metadata", "name"]) == Some(workload.app.as_str())
        })
        .collect();
    if deployments.is_empty() {
        return Err(TargetError::Unsupported {
            object: format!("Deployment/{}", workload.app),
            message: format!("no Deployment to run for {workload}"),
        });
    }
    let mut plans = Vec::new();
    for d in deployments {
        let id = object_id(d);
        let name = str_at(d, &["metadata", "name"]).unwrap_or_default();
        let replicas = get(d, &["spec", "replicas"])
            .and_then(Value::as_u64)
            .unwrap_or(1) as usize;
        if replicas > super::haproxy::SLOTS {
            return Err(TargetError::Unsupported {
                object: id,
                message: format!(
                    "{replicas} replicas: the local target runs at most {} per track",
                    super::haproxy::SLOTS
                ),
            });
        }
        let template = get(d, &["spec", "template"])
            .cloned()
            .unwrap_or(Value::Null);
        let mut spec = template.get("spec").cloned().unwrap_or(Value::Null);
        let Some(spec_map) = spec.as_mapping_mut() else {
            return Err(TargetError::Unsupported {
                object: id,
                message: "spec.template.spec is missing".into(),
            });
        };
        let containers = spec_map
            .get_mut("containers")
            .and_then(Value::as_sequence_mut)
            .filter(|c| !c.is_empty())
            .ok_or_else(|| TargetError::Unsupported {
                object: id.clone(),
                message: "spec.template.spec.containers is empty".into(),
            })?;
        let mut secret_env = Vec::new();
        for c in containers.iter_mut() {
            if let Some(m) = c.as_mapping_mut() {
                secret_env.extend(resolve_env(m, &sources, &id)?);
            }
        }
        // The first container's first port (named `http` if there is one) is published.
        let first = &containers[0];
        let ports = first
            .get("ports")
            .and_then(Value::as_sequence)
            .cloned()
            .unwrap_or_default();
        let published = ports
            .iter()
            .find(|p| str_at(p, &["name"]) == Some("http"))
            .or(ports.first())
            .cloned()
            .ok_or_else(|| TargetError::Unsupported {
                object: id.clone(),
                message: "the first container declares no port: nothing to route traffic to".into(),
            })?;
        let container_port = published
            .get("containerPort")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        let probe = str_at(first, &["readinessProbe", "httpGet", "path"]).map(str::to_string);
        let mut labels = get(&template, &["metadata", "labels"])
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        let annotations = get(&template, &["metadata", "annotations"])
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        for (k, v) in [
            (MANAGED_BY, MANAGED_BY_VALUE),
            (NAMESPACE_LABEL, workload.namespace.as_str()),
            (APP_LABEL, workload.app.as_str()),
            (TRACK_LABEL, workload.track.as_str()),
            (RELEASE_LABEL, release),
            (GENERATION_LABEL, generation),
            (OBJECT_LABEL, &format!("Deployment.{name}")),
        ] {
            labels.insert(s(k), s(v));
        }
        if !secret_env.is_empty() {
            // Names only: `live` masks these values.
            labels.insert(s(SECRET_ENV_LABEL), s(&secret_env.join(",")));
        }
        for i in 0..replicas {
            let host_port = port().map_err(TargetError::Unavailable)?;
            let mut spec = spec.clone();
            if let Some(c) = spec
                .get_mut("containers")
                .and_then(Value::as_sequence_mut)
                .and_then(|c| c.first_mut())
                .and_then(Value::as_mapping_mut)
            {
                let ports: Vec<Value> = ports
                    .iter()
                    .map(|p| {
                        let mut p = p.clone();
                        if p.get("containerPort").and_then(Value::as_u64) == Some(container_port)
                            && let Some(m) = p.as_mapping_mut()
                        {
                            m.insert(s("hostPort"), Value::from(host_port));
                            m.insert(s("hostIP"), s("127.0.0.1"));
                        }
                        p
                    })
                    .collect();
                c.insert(s("ports"), Value::Sequence(ports));
            }
            let mut labels = labels.clone();
            labels.insert(s(PORT_LABEL), s(&host_port.to_string()));
            if let Some(p) = &probe {
                labels.insert(s(PROBE_LABEL), s(p));
            }
            let pod_name = format!(
                "{}-{name}-{}-{generation}-{i}",
                workload.namespace, workload.track
            );
            let mut meta = Mapping::new();
            meta.insert(s("name"), s(&pod_name));
            meta.insert(s("labels"), Value::Mapping(labels));
            meta.insert(s("annotations"), Value::Mapping(annotations.clone()));
            let mut doc = Mapping::new();
            doc.insert(s("apiVersion"), s("v1"));
            doc.insert(s("kind"), s("Pod"));
            doc.insert(s("metadata"), Value::Mapping(meta));
            doc.insert(s("spec"), spec);
            plans.push(PodPlan {
                name: pod_name,
                port: host_port,
                probe: probe.clone(),
                doc: Value::Mapping(doc),
            });
        }
    }
    Ok(plans)
}

/// A managed pod as `podman pod ps` reports it.
#[derive(Debug, Clone)]
pub struct PodState {
    pub name: String,
    pub running: bool,
    pub labels: BTreeMap<String, String>,
    pub containers: Vec<String>,
}

impl PodState {
    fn label(&self, k: &str) -> &str {
        self.labels.get(k).map(String::as_str).unwrap_or_default()
    }
    fn endpoint(&self) -> Option<String> {
        self.port().map(|p| format!("127.0.0.1:{p}"))
    }
    fn port(&self) -> Option<u16> {
        self.labels.get(PORT_LABEL)?.parse().ok()
    }
}

impl Podman {
    pub fn new(config: PodmanConfig) -> Result<Self, TargetError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(1))
            .build()
            .map_err(|e| TargetError::Unavailable(format!("http client: {e}")))?;
        Ok(Self {
            config,
            ready_timeout: Duration::from_secs(60),
            command_timeout: Duration::from_secs(120),
            http,
        })
    }

    /// `podman` with the project-local configuration.
    pub fn command(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.config.containers_conf)
            .env("CONTAINERS_STORAGE_CONF", &self.config.storage_conf)
            .env("CONTAINERS_REGISTRIES_CONF", &self.config.registries_conf);
        c
    }

    pub(crate) fn podman(&self, args: &[&str]) -> Result<String, TargetError> {
        process::run(self.command().args(args), self.command_timeout, None)
            .map(|o| o.stdout)
            .map_err(TargetError::Unavailable)
    }

    /// `podman kube play` of a pod file written as `name` in the work dir:
    /// owner-only (resolved Secret values are in it) and gone after play.
    pub(crate) fn play(&self, name: &str, content: &[u8]) -> Result<(), TargetError> {
        let dir = &self.config.work_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| TargetError::Unavailable(format!("{}: {e}", dir.display())))?;
        let file = dir.join(name);
        crate::fsutil::write_atomic(&file, content, Some(0o600))
            .map_err(|e| TargetError::Unavailable(format!("{}: {e}", file.display())))?;
        let played = self.podman(&[
            "kube",
            "play",
            "--network",
            "slirp4netns:port_handler=slirp4netns",
            &file.to_string_lossy(),
        ]);
        let _ = std::fs::remove_file(&file);
        played.map(|_| ())
    }

    /// Every pod this tool manages, optionally only of one namespace.
    pub fn pods(&self, namespace: Option<&str>) -> Result<Vec<PodState>, TargetError> {
        let mut args = vec![
            "pod".to_string(),
            "ps".into(),
            "--format".into(),
            "json".into(),
            "--filter".into(),
            format!("label={MANAGED_BY}={MANAGED_BY_VALUE}"),
        ];
        if let Some(ns) = namespace {
            args.push("--filter".into());
            args.push(format!("label={NAMESPACE_LABEL}={ns}"));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.podman(&args)?;
        let list: Vec<serde_json::Value> = serde_json::from_str(out.trim())
            .or_else(|_| {
                if out.trim().is_empty() {
                    Ok(Vec::new())
                } else {
                    Err(())
                }
            })
            .map_err(|_| {
                TargetError::Unavailable(format!("podman pod ps: not JSON: {}", out.trim()))
            })?;
        Ok(list
            .iter()
            .map(|p| PodState {
                name: p["Name"].as_str().unwrap_or_default().to_string(),
                running: p["Status"].as_str() == Some("Running"),
                labels: p["Labels"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                    .collect(),
                containers: p["Containers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| !c["Names"].as_str().unwrap_or_default().ends_with("-infra"))
                    .filter_map(|c| c["Id"].as_str().map(str::to_string))
                    .collect(),
            })
            .collect())
    }

    fn workload_pods(&self, w: &Workload) -> Result<Vec<PodState>, TargetError> {
        Ok(self
            .pods(Some(&w.namespace))?
            .into_iter()
            .filter(|p| p.label(APP_LABEL) == w.app && p.label(TRACK_LABEL) == w.track.as_str())
            .collect())
    }

    /// Removes every pod this tool manages here: what `local down` does.
    /// Returns how many there were.
    pub fn remove_all_pods(&self) -> Result<usize, TargetError> {
        let names: Vec<String> = self.pods(None)?.into_iter().map(|p| p.name).collect();
        self.remove_pods(&names)?;
        Ok(names.len())
    }

    pub(crate) fn remove_pods(&self, names: &[String]) -> Result<(), TargetError> {
        if names.is_empty() {
            return Ok(());
        }
        // Stopped first: `pod rm --force` on a running pod holds its locks
        // while conmon's cleanup waits for them, and then spends 3 s on
        // removing the pod's cgroup about every other time (podman 4.3,
        // cgroupfs). Stopping first lets the cleanup run; the removal
        // then takes milliseconds. The stop is best effort: `rm --force`
        // stops whatever is still running and reports what fails.
        let mut stop = vec!["pod", "stop", "--time", "5"];
        stop.extend(names.iter().map(String::as_str));
        let _ = self.podman(&stop);
        let mut args = vec!["pod", "rm", "--force", "--time", "5"];
        args.extend(names.iter().map(String::as_str));
        self.podman(&args).map(|_| ())
    }

    /// Whether one pod answers its readiness probe (or runs, without one).
    fn pod_ready(&self, pod: &PodState, probe: Option<&str>) -> bool {
        if !pod.running {
            return false;
        }
        match (probe, pod.endpoint()) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(path), Some(ep)) => self
                .http
                .get(format!("http://{ep}{path}"))
                .send()
                .is_ok_and(|r| r.status().is_success() || r.status().is_redirection()),
        }
    }

    /// The stack's scrape slots; none (every pod on the slow path) when
    /// the file is missing or unreadable.
    fn slots(&self) -> Vec<ScrapeSlot> {
        let path = self.config.work_dir.join(SCRAPE_SLOTS_FILE);
        let Ok(text) = std::fs::read(&path) else {
            return Vec::new();
        };
        serde_json::from_slice(&text).unwrap_or_else(|e| {
            tracing::warn!(
                "{}: {e}; pods get ports outside the scrape slots (scraped 5-10 s later); `platform-capstone local up` writes it again",
                path.display()
            );
            Vec::new()
        })
    }

    /// Rewrites the Prometheus file_sd targets: the slots and the live
    /// pods outside them.
    pub fn write_scrape_targets(&self) -> Result<(), TargetError> {
        let targets = scrape_targets(&self.slots(), &self.pods(None)?);
        let path = self.config.work_dir.join("scrape-targets.json");
        let body = serde_json::to_vec_pretty(&targets)
            .map_err(|e| TargetError::Unavailable(e.to_string()))?;
        crate::fsutil::write_atomic(&path, &body, None)
            .map_err(|e| TargetError::Unavailable(format!("{}: {e}", path.display())))
    }

    fn newest_generation(pods: &[PodState]) -> Option<String> {
        // Generations are zero-padded hex of a nanosecond clock: they sort.
        pods.iter()
            .map(|p| p.label(GENERATION_LABEL).to_string())
            .max()
    }

    pub(crate) fn inspect_containers(
        &self,
        ids: &[String],
    ) -> Result<Vec<serde_json::Value>, TargetError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec!["container", "inspect", "--format", "json"];
        args.extend(ids.iter().map(String::as_str));
        let out = self.podman(&args)?;
        serde_json::from_str(&out)
            .map_err(|e| TargetError::Unavailable(format!("podman container inspect: {e}")))
    }

    fn image_env(&self, image: &str) -> Vec<String> {
        self.podman(&["image", "inspect", "--format", "json", image])
            .ok()
            .and_then(|o| serde_json::from_str::<serde_json::Value>(&o).ok())
            .and_then(|v| v[0]["Config"]["Env"].as_array().cloned())
            .into_iter()
            .flatten()
            .filter_map(|e| e.as_str().map(str::to_string))
            .collect()
    }
}

/// Whether a pod could publish `port` now.
fn bindable(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

fn generation_now() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    // 12 hex digits of 2^-4 ms resolution: sortable, short enough for names.
    format!("{:012x}", (nanos >> 16) & 0xffff_ffff_ffff)
}

impl Target for Podman {
    fn apply(
        &self,
        w: &Workload,
        objects: &[Value],
        release: &str,
    ) -> Result<Readiness, TargetError> {
        let generation = generation_now();
        let in_use: Vec<u16> = self.pods(None)?.iter().filter_map(PodState::port).collect();
        let mut slots = free_slots(&self.slots(), w, &in_use).into_iter();
        // A slot something else took since `local up` is passed over.
        let port = move || match slots.find(|p| bindable(*p)) {
            Some(p) => Ok(p),
            None => process::free_port(),
        };
        let plans = plan_pods(w, objects, release, &generation, port)?;
        std::fs::create_dir_all(&self.config.work_dir).map_err(|e| {
            TargetError::Unavailable(format!("{}: {e}", self.config.work_dir.display()))
        })?;
        let started: Vec<String> = plans.iter().map(|p| p.name.clone()).collect();
        let result = (|| {
            for plan in &plans {
                let yaml = crate::yaml::to_string(std::slice::from_ref(&plan.doc))
                    .map_err(|e| TargetError::Unavailable(e.to_string()))?;
                self.play(&format!("{}.yaml", plan.name), yaml.as_bytes())?;
            }
            let probes: BTreeMap<&str, Option<&str>> = plans
                .iter()
                .map(|p| (p.name.as_str(), p.probe.as_deref()))
                .collect();
            let ready = |me: &Self| -> Result<usize, TargetError> {
                let pods = me.workload_pods(w)?;
                Ok(pods
                    .iter()
                    .filter(|p| {
                        probes
                            .get(p.name.as_str())
                            .is_some_and(|probe| me.pod_ready(p, *probe))
                    })
                    .count())
            };
            let mut last = 0;
            let waited = process::wait_until(&w.to_string(), self.ready_timeout, || {
                last = ready(self).unwrap_or(0);
                last == plans.len()
            });
            if waited.is_err() {
                return Err(TargetError::NotReady {
                    workload: w.to_string(),
                    seconds: self.ready_timeout.as_secs(),
                    detail: format!(
                        "{last} of {} pods ready; the new pods were removed",
                        plans.len()
                    ),
                });
            }
            Ok(())
        })();
        if let Err(e) = result {
            // Never leave a half-applied release behind.
            let _ = self.remove_pods(&started);
            let _ = self.write_scrape_targets();
            return Err(e);
        }
        self.write_scrape_targets()?;
        Ok(Readiness {
            desired: plans.len(),
            ready: plans.len(),
            endpoints: plans
                .iter()
                .map(|p| format!("127.0.0.1:{}", p.port))
                .collect(),
        })
    }

    fn settle(&self, w: &Workload) -> Result<Vec<String>, TargetError> {
        let pods = self.workload_pods(w)?;
        let newest = Self::newest_generation(&pods);
        let old: Vec<String> = pods
            .iter()
            .filter(|p| Some(p.label(GENERATION_LABEL).to_string()) != newest)
            .map(|p| p.name.clone())
            .collect();
        self.remove_pods(&old)?;
        self.write_scrape_targets()?;
        Ok(old)
    }

    fn remove(&self, w: &Workload) -> Result<(), TargetError> {
        let names: Vec<String> = self.workload_pods(w)?.into_iter().map(|p| p.name).collect();
        self.remove_pods(&names)?;
        self.write_scrape_targets()
    }

    fn readiness(&self, w: &Workload) -> Result<Readiness, TargetError> {
        let pods = self.workload_pods(w)?;
        let newest = Self::newest_generation(&pods);
        let current: Vec<&PodState> = pods
            .iter()
            .filter(|p| Some(p.label(GENERATION_LABEL).to_string()) == newest)
            .collect();
        let ready = current
            .iter()
            .filter(|p| self.pod_ready(p, p.labels.get(PROBE_LABEL).map(String::as_str)))
            .count();
        Ok(Readiness {
            desired: current.len(),
            ready,
            endpoints: current.iter().filter_map(|p| p.endpoint()).collect(),
        })
    }

    fn live(&self, namespace: &str) -> Result<Vec<LiveObject>, TargetError> {
        let pods = self.pods(Some(namespace))?;
        let mut by_object: BTreeMap<(String, String), Vec<&PodState>> = BTreeMap::new();
        for p in &pods {
            let object = p.label(OBJECT_LABEL).to_string();
            by_object
                .entry((object, p.label(TRACK_LABEL).to_string()))
                .or_default()
                .push(p);
        }
        let mut out = Vec::new();
        for ((object, track), group) in by_object {
            let name = object.trim_start_matches("Deployment.").to_string();
            let first = group[0];
            let secret: Vec<String> = first
                .label(SECRET_ENV_LABEL)
                .split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect();
            let inspected = self.inspect_containers(&first.containers)?;
            let mut containers = Vec::new();
            for c in &inspected {
                let image = c["ImageName"].as_str().unwrap_or_default().to_string();
                let image_env = self.image_env(&image);
                let env: Vec<Value> = c["Config"]["Env"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e.as_str())
                    .filter(|e| !image_env.iter().any(|i| i == e))
                    .filter_map(|e| e.split_once('='))
                    .filter(|(k, _)| !RUNTIME_ENV.contains(k))
                    .map(|(k, v)| {
                        let mut m = Mapping::new();
                        m.insert(s("name"), s(k));
                        m.insert(s("value"), s(v));
                        Value::Mapping(m)
                    })
                    .collect();
                let mut m = Mapping::new();
                // podman names containers <pod>-<container>.
                let cname = c["Name"].as_str().unwrap_or_default();
                let short = cname
                    .strip_prefix(&format!("{}-", first.name))
                    .unwrap_or(cname);
                m.insert(s("name"), s(short));
                m.insert(s("image"), s(&image));
                if !env.is_empty() {
                    m.insert(s("env"), Value::Sequence(env));
                }
                mask_env(&mut m, &secret);
                sort_env(&mut m);
                let args: Vec<Value> = c["Config"]["Cmd"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|a| a.as_str().map(s))
                    .collect();
                if !args.is_empty() {
                    m.insert(s("args"), Value::Sequence(args));
                }
                containers.push(Value::Mapping(m));
            }
            let labels: Mapping = first
                .labels
                .iter()
                .filter(|(k, _)| {
                    ![PORT_LABEL, GENERATION_LABEL, PROBE_LABEL, SECRET_ENV_LABEL]
                        .contains(&k.as_str())
                })
                .map(|(k, v)| (s(k), s(v)))
                .collect();
            let doc = yaml_serde::to_value(serde_json::json!({
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "replicas": group.len(),
                    "template": {"metadata": {"labels": {}}, "spec": {"containers": []}},
                },
            }))
            .map_err(|e| TargetError::Unavailable(e.to_string()))?;
            let mut doc = doc;
            if let Some(t) = doc.get_mut("spec").and_then(|s| s.get_mut("template")) {
                t["metadata"]["labels"] = Value::Mapping(labels);
                t["spec"]["containers"] = Value::Sequence(containers);
            }
            out.push(LiveObject {
                kind: "Deployment".into(),
                namespace: namespace.to_string(),
                name: if track == "canary" {
                    format!("{name} (canary)")
                } else {
                    name
                },
                object: doc,
            });
        }
        Ok(out)
    }

    fn prune(&self, namespace: &str, keep: &[String]) -> Result<Vec<String>, TargetError> {
        let pods = self.pods(Some(namespace))?;
        let doomed: Vec<String> = pods
            .iter()
            .filter(|p| {
                let id = p.label(OBJECT_LABEL).replacen('.', "/", 1);
                !keep.contains(&id)
            })
            .map(|p| p.name.clone())
            .collect();
        self.remove_pods(&doomed)?;
        self.write_scrape_targets()?;
        Ok(doomed)
    }

    fn observable(&self, namespace: &str, desired: &[Value]) -> Result<Vec<Value>, TargetError> {
        observable(namespace, desired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "hunter2-in-a-pod";

    /// A Deployment with a ConfigMap and a Secret for its env, a Service
    /// and a ServiceAccount (skipped here), as a render hands them over.
    fn objects(replicas: u32, extra: &str) -> Vec<Value> {
        let secret_b64 = {
            use base64::Engine;
            base64::engine::general_purpose::STANDARD.encode(SECRET)
        };
        let text = format!(
            "apiVersion: v1
kind: ConfigMap
metadata: {{name: demo-config}}
data: {{LOG_LEVEL: debug, MODE: canary}}
---
apiVersion: v1
kind: Secret
metadata: {{name: db}}
data: {{PASSWORD: {secret_b64}}}
---
apiVersion: v1
kind: Service
metadata: {{name: demo}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: demo}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: demo}}
spec:
  replicas: {replicas}
  template:
    metadata:
      labels: {{app: demo}}
      annotations: {{team: web}}
    spec:
      containers:
        - name: demo
          image: localhost:5000/demo@sha256:{zeros}
          ports:
            - {{name: metrics, containerPort: 9090}}
            - {{name: http, containerPort: 8080}}
          readinessProbe:
            httpGet: {{path: /healthz, port: 8080}}
          envFrom:
            - configMapRef: {{name: demo-config}}
          env:
            - {{name: MODE, value: stable}}
            - name: DB_PASSWORD
              valueFrom:
                secretKeyRef: {{name: db, key: PASSWORD}}
{extra}",
            zeros = "0".repeat(64)
        );
        crate::yaml::documents("test.yaml", &text).expect("yaml")
    }

    fn workload(track: Track) -> Workload {
        Workload {
            namespace: "demo-dev".into(),
            app: "demo".into(),
            track,
        }
    }

    fn ports() -> impl FnMut() -> Result<u16, String> {
        let mut next = 30000;
        move || {
            next += 1;
            Ok(next)
        }
    }

    fn env_of(plan: &PodPlan) -> Vec<(String, String)> {
        plan.doc["spec"]["containers"][0]["env"]
            .as_sequence()
            .expect("env")
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap_or_default().to_string(),
                    e["value"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    #[test]
    fn a_deployment_becomes_one_labelled_pod_per_replica_on_loopback_ports() {
        let plans = plan_pods(
            &workload(Track::Canary),
            &objects(2, ""),
            "rel-2026-11-30-01",
            "g1",
            ports(),
        )
        .expect("plan");
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].name, "demo-dev-demo-canary-g1-0");
        assert_eq!(plans[1].name, "demo-dev-demo-canary-g1-1");
        assert_eq!((plans[0].port, plans[1].port), (30001, 30002));
        let p = &plans[1];
        assert_eq!(p.probe.as_deref(), Some("/healthz"));
        let labels = &p.doc["metadata"]["labels"];
        for (k, v) in [
            (MANAGED_BY, MANAGED_BY_VALUE),
            (NAMESPACE_LABEL, "demo-dev"),
            (APP_LABEL, "demo"),
            (TRACK_LABEL, "canary"),
            (RELEASE_LABEL, "rel-2026-11-30-01"),
            (GENERATION_LABEL, "g1"),
            (OBJECT_LABEL, "Deployment.demo"),
            (PORT_LABEL, "30002"),
            (PROBE_LABEL, "/healthz"),
            ("app", "demo"),
        ] {
            assert_eq!(labels[k].as_str(), Some(v), "label {k}");
        }
        assert_eq!(
            p.doc["metadata"]["annotations"]["team"].as_str(),
            Some("web")
        );
        // Only the `http` port is published, on loopback.
        let published = &p.doc["spec"]["containers"][0]["ports"];
        assert_eq!(published[1]["hostPort"].as_u64(), Some(30002));
        assert_eq!(published[1]["hostIP"].as_str(), Some("127.0.0.1"));
        assert!(published[0].get("hostPort").is_none());
    }

    fn slot(track: &str, port: u16) -> ScrapeSlot {
        ScrapeSlot {
            namespace: "demo-dev".into(),
            app: "demo".into(),
            track: track.into(),
            port,
        }
    }

    fn pod(name: &str, track: &str, port: u16) -> PodState {
        PodState {
            name: name.into(),
            running: true,
            labels: [
                (NAMESPACE_LABEL, "demo-dev"),
                (APP_LABEL, "demo"),
                (TRACK_LABEL, track),
                (PORT_LABEL, &port.to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            containers: Vec::new(),
        }
    }

    #[test]
    fn new_pods_take_their_tracks_free_slots_in_order() {
        let slots = [
            slot("stable", 41001),
            slot("stable", 41002),
            slot("canary", 41003),
            slot("canary", 41004),
            ScrapeSlot {
                app: "other".into(),
                ..slot("canary", 41005)
            },
        ];
        assert_eq!(
            free_slots(&slots, &workload(Track::Canary), &[41003]),
            vec![41004],
            "the slot of the running canary is taken; other routes' never offered"
        );
        assert_eq!(
            free_slots(&slots, &workload(Track::Stable), &[]),
            vec![41001, 41002]
        );
        assert!(free_slots(&slots, &workload(Track::Canary), &[41003, 41004]).is_empty());
        assert!(free_slots(&[], &workload(Track::Stable), &[]).is_empty());
    }

    #[test]
    fn every_slot_is_a_target_and_only_pods_outside_them_get_their_own() {
        let slots = [slot("stable", 41001), slot("canary", 41002)];
        let pods = [
            pod("demo-dev-demo-stable-g1-0", "stable", 41001),
            pod("demo-dev-demo-canary-g2-0", "canary", 39999),
        ];
        let targets = scrape_targets(&slots, &pods);
        assert_eq!(
            targets,
            vec![
                serde_json::json!({"targets": ["127.0.0.1:41001"], "labels": {"namespace": "demo-dev", "app": "demo", "track": "stable"}}),
                serde_json::json!({"targets": ["127.0.0.1:41002"], "labels": {"namespace": "demo-dev", "app": "demo", "track": "canary"}}),
                serde_json::json!({"targets": ["127.0.0.1:39999"], "labels": {"namespace": "demo-dev", "app": "demo", "track": "canary", "pod": "demo-dev-demo-canary-g2-0"}}),
            ]
        );
        // No slots (a stack from before them): every pod, as before.
        assert_eq!(scrape_targets(&[], &pods).len(), 2);
    }

    #[test]
    fn env_from_config_maps_and_secrets_is_resolved_and_only_secret_names_are_labelled() {
        let plans =
            plan_pods(&workload(Track::Stable), &objects(1, ""), "r", "g", ports()).expect("plan");
        let env = env_of(&plans[0]);
        // env wins over envFrom, as in Kubernetes; envFrom keys come first.
        assert_eq!(
            env,
            vec![
                ("LOG_LEVEL".to_string(), "debug".to_string()),
                ("MODE".to_string(), "stable".to_string()),
                ("DB_PASSWORD".to_string(), SECRET.to_string()),
            ]
        );
        assert!(
            plans[0].doc["spec"]["containers"][0]
                .get("envFrom")
                .is_none()
        );
        let labels = &plans[0].doc["metadata"]["labels"];
        assert_eq!(labels[SECRET_ENV_LABEL].as_str(), Some("DB_PASSWORD"));
        let text = crate::yaml::to_string(std::slice::from_ref(&labels.clone())).expect("yaml");
        assert!(!text.contains(SECRET), "a Secret value in a label: {text}");
    }

    #[test]
    fn what_cannot_run_here_is_refused_by_name_before_any_port_is_taken() {
        let refuse = |objects: Vec<Value>, track: Track| {
            let mut taken = 0;
            let err = plan_pods(&workload(track), &objects, "r", "g", || {
                taken += 1;
                Ok(40000)
            })
            .expect_err("refused");
            (err.to_string(), taken)
        };
        let (e, taken) = refuse(
            objects(
                1,
                "---\napiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: db}\n",
            ),
            Track::Stable,
        );
        assert!(
            e.contains("StatefulSet/db") && e.contains("kind StatefulSet"),
            "{e}"
        );
        assert_eq!(taken, 0);
        let (e, _) = refuse(objects(5, ""), Track::Stable);
        assert!(e.contains("5 replicas"), "{e}");
        let mut without_secret = objects(1, "");
        without_secret.remove(1);
        let (e, _) = refuse(without_secret, Track::Stable);
        assert!(e.contains("Secret \"db\" key \"PASSWORD\""), "{e}");
        assert!(e.contains("add it to the overlay"), "{e}");
        let mut other_app = objects(1, "");
        other_app[4]["metadata"]["name"] = s("worker");
        let (e, _) = refuse(other_app, Track::Canary);
        assert!(
            e.contains("no Deployment to run for demo-dev/demo (canary)"),
            "{e}"
        );
    }

    #[test]
    fn a_field_ref_env_is_refused_not_dropped() {
        let mut objs = objects(1, "");
        let env = objs[4]["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence_mut()
            .expect("env");
        env.push(
            crate::yaml::from_str(
                "t",
                "{name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}",
            )
            .expect("yaml"),
        );
        let err =
            plan_pods(&workload(Track::Stable), &objs, "r", "g", ports()).expect_err("refused");
        assert!(err.to_string().contains("env POD: fieldRef"), "{err}");
    }

    #[test]
    fn the_observable_form_masks_secret_env_and_sorts_it() {
        let obs = observable("demo-dev", &objects(2, "")).expect("observable");
        assert_eq!(obs.len(), 1, "only the Deployment is observable");
        let d = &obs[0];
        assert_eq!(d["metadata"]["namespace"].as_str(), Some("demo-dev"));
        assert_eq!(d["spec"]["replicas"].as_u64(), Some(2));
        let text = crate::yaml::to_string(std::slice::from_ref(d)).expect("yaml");
        assert!(!text.contains(SECRET), "{text}");
        let names: Vec<&str> = d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_sequence()
            .expect("env")
            .iter()
            .filter_map(|e| e["name"].as_str())
            .collect();
        assert_eq!(names, ["DB_PASSWORD", "LOG_LEVEL", "MODE"]);
        // The same value masks the same way: drift compares masks.
        let again = observable("demo-dev", &objects(2, "")).expect("observable");
        assert_eq!(obs, again);
    }
}
