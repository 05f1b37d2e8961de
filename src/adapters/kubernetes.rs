//! The [`Target`] and [`TrafficRouter`] ports on the Kubernetes API (`kube`
//! crate): server-side apply with our field manager (git wins conflicts:
//! `force`), inventory labels on everything applied, prune by inventory,
//! Deployment rollout status, the canary as a second Deployment behind the
//! app's Service, and Gateway API HTTPRoute backend weights.
//!
//! Layout for an app `A` whose Service `S` selects its pods:
//! - stable: the rendered objects, labelled; `A`'s pods carry
//!   `track=stable` and its selector excludes `track=canary` (set on the
//!   first apply: selectors are immutable); a derived Service `S-stable`
//!   selects the stable pods;
//! - canary: Deployment `A-canary` (selector and pods `track=canary`),
//!   the render's ConfigMaps/Secrets, and Service `S-canary`;
//! - `S` itself selects both (replica-ratio split without a gateway); an
//!   HTTPRoute named `A` weights `S-stable` and `S-canary` exactly.
//!
//! No API server can run on the build machines: the exact requests are
//! tested against a scripted mock (tower-test), and a suite runs against a
//! real cluster when `KUBECONFIG` is set.

use crate::ports::{
    APP_LABEL, LiveObject, MANAGED_BY, MANAGED_BY_VALUE, NAMESPACE_LABEL, RELEASE_LABEL, Readiness,
    RouterError, Split, TRACK_LABEL, Target, TargetError, Track, TrafficRouter, Workload,
};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The field manager of every apply.
pub const FIELD_MANAGER: &str = "platform-capstone";
/// Label on objects the target derives (track Services, the canary
/// Deployment): `Kind.name` of the rendered object they come from.
pub const DERIVED_FROM_LABEL: &str = "platform-capstone.dev/derived-from";

/// Kinds the target applies, and where they live in the API.
const KINDS: &[(&str, &str, &str, &str)] = &[
    ("Deployment", "apps", "v1", "deployments"),
    ("Service", "", "v1", "services"),
    ("ConfigMap", "", "v1", "configmaps"),
    ("Secret", "", "v1", "secrets"),
    ("ServiceAccount", "", "v1", "serviceaccounts"),
    (
        "PodDisruptionBudget",
        "policy",
        "v1",
        "poddisruptionbudgets",
    ),
    (
        "HorizontalPodAutoscaler",
        "autoscaling",
        "v2",
        "horizontalpodautoscalers",
    ),
    (
        "NetworkPolicy",
        "networking.k8s.io",
        "v1",
        "networkpolicies",
    ),
];

fn resource(kind: &str) -> Option<ApiResource> {
    KINDS
        .iter()
        .find(|k| k.0 == kind)
        .map(|(kind, group, version, plural)| ApiResource {
            group: group.to_string(),
            version: version.to_string(),
            api_version: if group.is_empty() {
                version.to_string()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.to_string(),
            plural: plural.to_string(),
        })
}

fn httproute() -> ApiResource {
    ApiResource {
        group: "gateway.networking.k8s.io".into(),
        version: "v1".into(),
        api_version: "gateway.networking.k8s.io/v1".into(),
        kind: "HTTPRoute".into(),
        plural: "httproutes".into(),
    }
}

fn name_of(v: &Value) -> &str {
    v["metadata"]["name"].as_str().unwrap_or_default()
}

fn kind_of(v: &Value) -> &str {
    v["kind"].as_str().unwrap_or_default()
}

fn set_labels(v: &mut Value, labels: &[(&str, &str)]) {
    if !v["metadata"]["labels"].is_object() {
        v["metadata"]["labels"] = json!({});
    }
    for (k, val) in labels {
        v["metadata"]["labels"][*k] = json!(val);
    }
}

/// Whether Service `svc` selects the pods of `deployment`.
fn selects(svc: &Value, deployment: &Value) -> bool {
    let Some(sel) = svc["spec"]["selector"]
        .as_object()
        .filter(|s| !s.is_empty())
    else {
        return false;
    };
    let labels = &deployment["spec"]["template"]["metadata"]["labels"];
    sel.iter().all(|(k, v)| labels[k] == *v)
}

/// The objects to apply for `w`, labelled and placed: pure.
pub fn plan_apply(
    w: &Workload,
    objects: &[yaml_serde::Value],
    release: &str,
) -> Result<Vec<Value>, TargetError> {
    let mut docs = Vec::new();
    for o in objects {
        let v = serde_json::to_value(o).map_err(|e| TargetError::Unsupported {
            object: "?".into(),
            message: format!("not representable as JSON: {e}"),
        })?;
        if resource(kind_of(&v)).is_none() {
            return Err(TargetError::Unsupported {
                object: format!("{}/{}", kind_of(&v), name_of(&v)),
                message: format!(
                    "kind {} is not applied by the kubernetes target (it applies {})",
                    kind_of(&v),
                    KINDS.iter().map(|k| k.0).collect::<Vec<_>>().join(", ")
                ),
            });
        }
        docs.push(v);
    }
    let app = docs
        .iter()
        .find(|d| kind_of(d) == "Deployment" && name_of(d) == w.app)
        .cloned()
        .ok_or_else(|| TargetError::Unsupported {
            object: format!("Deployment/{}", w.app),
            message: format!("no Deployment named {:?} in the render (target.app)", w.app),
        })?;
    let track = w.track.as_str();
    let inventory = |v: &mut Value| {
        v["metadata"]["namespace"] = json!(w.namespace);
        set_labels(
            v,
            &[
                (MANAGED_BY, MANAGED_BY_VALUE),
                (NAMESPACE_LABEL, &w.namespace),
                (APP_LABEL, &w.app),
                (RELEASE_LABEL, release),
            ],
        );
    };
    let mut out = Vec::new();
    // Services in front of the app get a per-track copy for weighted routing.
    let fronting: Vec<Value> = docs
        .iter()
        .filter(|d| kind_of(d) == "Service" && selects(d, &app))
        .cloned()
        .collect();
    for mut d in docs {
        let kind = kind_of(&d).to_string();
        let is_app = kind == "Deployment" && name_of(&d) == w.app;
        match (w.track, is_app) {
            (Track::Canary, false) if kind != "ConfigMap" && kind != "Secret" => continue,
            (Track::Canary, true) => {
                let source = format!("Deployment.{}", name_of(&d));
                d["metadata"]["name"] = json!(format!("{}-canary", w.app));
                d["spec"]["selector"]["matchLabels"][TRACK_LABEL] = json!("canary");
                d["spec"]["template"]["metadata"]["labels"][TRACK_LABEL] = json!("canary");
                set_labels(
                    &mut d,
                    &[(TRACK_LABEL, track), (DERIVED_FROM_LABEL, &source)],
                );
            }
            (Track::Stable, true) => {
                d["spec"]["template"]["metadata"]["labels"][TRACK_LABEL] = json!("stable");
                let exprs = d["spec"]["selector"]["matchExpressions"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut exprs: Vec<Value> = exprs
                    .into_iter()
                    .filter(|e| e["key"] != TRACK_LABEL)
                    .collect();
                exprs.push(json!({"key": TRACK_LABEL, "operator": "NotIn", "values": ["canary"]}));
                d["spec"]["selector"]["matchExpressions"] = json!(exprs);
                set_labels(&mut d, &[(TRACK_LABEL, track)]);
            }
            _ => {}
        }
        inventory(&mut d);
        out.push(d);
    }
    for svc in fronting {
        let mut s = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": format!("{}-{track}", name_of(&svc))},
            "spec": {
                "selector": svc["spec"]["selector"].clone(),
                "ports": svc["spec"]["ports"].clone(),
            }
        });
        s["spec"]["selector"][TRACK_LABEL] = json!(track);
        inventory(&mut s);
        set_labels(
            &mut s,
            &[
                (TRACK_LABEL, track),
                (DERIVED_FROM_LABEL, &format!("Service.{}", name_of(&svc))),
            ],
        );
        out.push(s);
    }
    Ok(out)
}

pub struct Kube {
    client: kube::Client,
    rt: tokio::runtime::Runtime,
    pub ready_timeout: Duration,
    pub poll: Duration,
}

fn unavailable(e: kube::Error) -> TargetError {
    TargetError::Unavailable(e.to_string())
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Kube {
    /// A client for `context` of the kubeconfig (`KUBECONFIG` or
    /// `~/.kube/config`).
    pub fn from_kubeconfig(context: Option<&str>) -> Result<Self, TargetError> {
        let rt = runtime()?;
        let options = kube::config::KubeConfigOptions {
            context: context.map(str::to_string),
            ..Default::default()
        };
        let client = rt.block_on(async {
            let config = kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|e| TargetError::Unavailable(format!("kubeconfig: {e}")))?;
            kube::Client::try_from(config).map_err(unavailable)
        })?;
        Ok(Self::with(client, rt))
    }

    /// Over a client `make` builds (inside this target's runtime): tests
    /// pass a tower-test mock.
    pub fn from_client(make: impl FnOnce() -> kube::Client) -> Result<Self, TargetError> {
        let rt = runtime()?;
        let client = rt.block_on(async { make() });
        Ok(Self::with(client, rt))
    }

    fn with(client: kube::Client, rt: tokio::runtime::Runtime) -> Self {
        Self {
            client,
            rt,
            ready_timeout: Duration::from_secs(300),
            poll: Duration::from_secs(2),
        }
    }

    fn api(&self, kind: &str, ns: &str) -> Result<Api<DynamicObject>, TargetError> {
        let ar = resource(kind).ok_or_else(|| TargetError::Unsupported {
            object: kind.to_string(),
            message: "unknown kind".into(),
        })?;
        Ok(Api::namespaced_with(self.client.clone(), ns, &ar))
    }

    fn deployment_name(w: &Workload) -> String {
        match w.track {
            Track::Stable => w.app.clone(),
            Track::Canary => format!("{}-canary", w.app),
        }
    }

    /// Managed objects of one kind in `ns`.
    fn managed(&self, kind: &str, ns: &str) -> Result<Vec<DynamicObject>, TargetError> {
        let api = self.api(kind, ns)?;
        let lp = ListParams::default().labels(&format!("{MANAGED_BY}={MANAGED_BY_VALUE}"));
        Ok(self.rt.block_on(api.list(&lp)).map_err(unavailable)?.items)
    }

    fn delete(&self, kind: &str, ns: &str, name: &str) -> Result<(), TargetError> {
        let api = self.api(kind, ns)?;
        match self
            .rt
            .block_on(api.delete(name, &DeleteParams::background()))
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(unavailable(e)),
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, TargetError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| TargetError::Unavailable(format!("runtime: {e}")))
}

/// Rollout status of a Deployment object, as `kubectl rollout status` reads it.
pub fn deployment_readiness(d: &Value) -> (usize, usize) {
    let desired = d["spec"]["replicas"].as_u64().unwrap_or(1) as usize;
    let status = &d["status"];
    let observed = status["observedGeneration"].as_i64().unwrap_or(0)
        >= d["metadata"]["generation"].as_i64().unwrap_or(0);
    let updated = status["updatedReplicas"].as_u64().unwrap_or(0) as usize;
    let available = status["availableReplicas"].as_u64().unwrap_or(0) as usize;
    let total = status["replicas"].as_u64().unwrap_or(0) as usize;
    // Old replicas still running mean the rollout is not done.
    let ready = if observed && total <= updated {
        updated.min(available)
    } else {
        0
    };
    (desired, ready)
}

impl Target for Kube {
    fn apply(
        &self,
        w: &Workload,
        objects: &[yaml_serde::Value],
        release: &str,
    ) -> Result<Readiness, TargetError> {
        let plan = plan_apply(w, objects, release)?;
        let pp = PatchParams::apply(FIELD_MANAGER).force();
        for obj in &plan {
            let api = self.api(kind_of(obj), &w.namespace)?;
            self.rt
                .block_on(api.patch(name_of(obj), &pp, &Patch::Apply(obj)))
                .map_err(|e| {
                    TargetError::Unavailable(format!(
                        "apply {}/{}: {e}",
                        kind_of(obj),
                        name_of(obj)
                    ))
                })?;
        }
        let deadline = Instant::now() + self.ready_timeout;
        loop {
            let r = self.readiness(w)?;
            if r.is_ready() {
                return Ok(r);
            }
            if Instant::now() >= deadline {
                if w.track == Track::Canary {
                    // A canary that never became ready is removed: nothing half-applied.
                    let _ = self.remove(w);
                }
                return Err(TargetError::NotReady {
                    workload: w.to_string(),
                    seconds: self.ready_timeout.as_secs(),
                    detail: format!("{} of {} replicas ready", r.ready, r.desired),
                });
            }
            std::thread::sleep(self.poll);
        }
    }

    fn settle(&self, _w: &Workload) -> Result<Vec<String>, TargetError> {
        // The Deployment controller retires old ReplicaSets itself.
        Ok(Vec::new())
    }

    fn remove(&self, w: &Workload) -> Result<(), TargetError> {
        let track = w.track.as_str();
        self.delete("Deployment", &w.namespace, &Self::deployment_name(w))?;
        for svc in self.managed("Service", &w.namespace)? {
            let labels = svc.metadata.labels.clone().unwrap_or_default();
            if labels.get(TRACK_LABEL).map(String::as_str) == Some(track)
                && labels.get(APP_LABEL) == Some(&w.app)
                && labels.contains_key(DERIVED_FROM_LABEL)
            {
                self.delete(
                    "Service",
                    &w.namespace,
                    svc.metadata.name.as_deref().unwrap_or_default(),
                )?;
            }
        }
        Ok(())
    }

    fn readiness(&self, w: &Workload) -> Result<Readiness, TargetError> {
        let api = self.api("Deployment", &w.namespace)?;
        let name = Self::deployment_name(w);
        let Some(d) = self.rt.block_on(api.get_opt(&name)).map_err(unavailable)? else {
            return Ok(Readiness {
                desired: 0,
                ready: 0,
                endpoints: Vec::new(),
            });
        };
        let v = serde_json::to_value(&d).map_err(|e| TargetError::Unavailable(e.to_string()))?;
        let (desired, ready) = deployment_readiness(&v);
        let endpoints = self
            .managed("Service", &w.namespace)?
            .into_iter()
            .filter(|s| {
                let l = s.metadata.labels.clone().unwrap_or_default();
                l.get(TRACK_LABEL).map(String::as_str) == Some(w.track.as_str())
                    && l.get(APP_LABEL) == Some(&w.app)
            })
            .filter_map(|s| s.metadata.name)
            .collect();
        Ok(Readiness {
            desired,
            ready,
            endpoints,
        })
    }

    fn live(&self, namespace: &str) -> Result<Vec<LiveObject>, TargetError> {
        let mut out = Vec::new();
        for (kind, ..) in KINDS {
            for o in self.managed(kind, namespace)? {
                let object = yaml_serde::to_value(&o)
                    .map_err(|e| TargetError::Unavailable(e.to_string()))?;
                out.push(LiveObject {
                    kind: kind.to_string(),
                    namespace: namespace.to_string(),
                    name: o.metadata.name.clone().unwrap_or_default(),
                    object,
                });
            }
        }
        Ok(out)
    }

    fn prune(&self, namespace: &str, keep: &[String]) -> Result<Vec<String>, TargetError> {
        let mut removed = Vec::new();
        for (kind, ..) in KINDS {
            for o in self.managed(kind, namespace)? {
                let name = o.metadata.name.clone().unwrap_or_default();
                let labels = o.metadata.labels.clone().unwrap_or_default();
                // Derived objects live as long as what they derive from.
                let id = match labels.get(DERIVED_FROM_LABEL) {
                    Some(src) => src.replacen('.', "/", 1),
                    None => format!("{kind}/{name}"),
                };
                if !keep.contains(&id) {
                    self.delete(kind, namespace, &name)?;
                    removed.push(format!("{kind}/{name}"));
                }
            }
        }
        Ok(removed)
    }
}

/// Gateway API weights on the app's HTTPRoute (named after the app), on
/// its own [`Kube`] or a borrowed one.
pub struct KubeRouter<K: std::borrow::Borrow<Kube> = Kube> {
    pub kube: K,
    /// Attempts when another writer changed the route in between.
    pub attempts: usize,
}

/// The route with `split`'s backends and weights in the rule that already
/// routes to either track (or the first rule): pure.
pub fn weighted_route(route: &Value, split: &Split) -> Result<Value, String> {
    let mut route = route.clone();
    let ours = |r: &Value| {
        r["backendRefs"].as_array().into_iter().flatten().any(|b| {
            let n = b["name"].as_str().unwrap_or_default();
            split.stable.iter().chain(&split.canary).any(|e| e == n)
        })
    };
    let rules = route["spec"]["rules"]
        .as_array_mut()
        .ok_or("HTTPRoute has no spec.rules")?;
    let idx = rules.iter().position(ours).unwrap_or(0);
    let rule = rules.get_mut(idx).ok_or("HTTPRoute has no rule")?;
    let port = rule["backendRefs"][0]["port"].clone();
    let stable = split.stable.first().ok_or("no stable backend")?;
    let mut refs = vec![json!({"name": stable, "weight": 100 - u32::from(split.canary_percent)})];
    if let Some(canary) = split.canary.first() {
        refs.push(json!({"name": canary, "weight": u32::from(split.canary_percent)}));
    } else if split.canary_percent > 0 {
        return Err(format!(
            "{}% for a canary with no backend",
            split.canary_percent
        ));
    }
    if !port.is_null() {
        for r in &mut refs {
            r["port"] = port.clone();
        }
    }
    rule["backendRefs"] = json!(refs);
    Ok(route)
}

impl<K: std::borrow::Borrow<Kube>> TrafficRouter for KubeRouter<K> {
    fn route(&self, namespace: &str, app: &str, split: &Split) -> Result<(), RouterError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.kube.borrow().client.clone(), namespace, &httproute());
        let unavailable = |e: kube::Error| RouterError::Unavailable(e.to_string());
        for _ in 0..self.attempts.max(1) {
            let current = self
                .kube
                .borrow()
                .rt
                .block_on(api.get_opt(app))
                .map_err(unavailable)?
                .ok_or_else(|| RouterError::UnknownRoute(format!("HTTPRoute {namespace}/{app}")))?;
            let value = serde_json::to_value(&current)
                .map_err(|e| RouterError::Unavailable(e.to_string()))?;
            let updated = weighted_route(&value, split).map_err(|e| RouterError::Refused {
                command: format!("route {namespace}/{app}"),
                answer: e,
            })?;
            let obj: DynamicObject = serde_json::from_value(updated)
                .map_err(|e| RouterError::Unavailable(e.to_string()))?;
            // A replace carries the resourceVersion read: compare-and-swap.
            match self
                .kube
                .borrow()
                .rt
                .block_on(api.replace(app, &PostParams::default(), &obj))
            {
                Ok(_) => return Ok(()),
                Err(e) if is_conflict(&e) => continue,
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(RouterError::Unavailable(format!(
            "HTTPRoute {namespace}/{app} kept changing under us ({} attempts)",
            self.attempts
        )))
    }

    fn current(&self, namespace: &str, app: &str) -> Result<Split, RouterError> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.kube.borrow().client.clone(), namespace, &httproute());
        let route = self
            .kube
            .borrow()
            .rt
            .block_on(api.get_opt(app))
            .map_err(|e| RouterError::Unavailable(e.to_string()))?
            .ok_or_else(|| RouterError::UnknownRoute(format!("HTTPRoute {namespace}/{app}")))?;
        let value =
            serde_json::to_value(&route).map_err(|e| RouterError::Unavailable(e.to_string()))?;
        let mut split = Split {
            stable: Vec::new(),
            canary: Vec::new(),
            canary_percent: 0,
        };
        let (mut sw, mut cw) = (0u64, 0u64);
        for rule in value["spec"]["rules"].as_array().into_iter().flatten() {
            for b in rule["backendRefs"].as_array().into_iter().flatten() {
                let name = b["name"].as_str().unwrap_or_default().to_string();
                let weight = b["weight"].as_u64().unwrap_or(1);
                if name.ends_with("-canary") {
                    split.canary.push(name);
                    cw += weight;
                } else {
                    split.stable.push(name);
                    sw += weight;
                }
            }
        }
        if sw + cw > 0 {
            split.canary_percent = ((cw as f64) * 100.0 / ((sw + cw) as f64)).round() as u8;
        }
        Ok(split)
    }
}
