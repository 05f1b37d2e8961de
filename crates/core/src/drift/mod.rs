//! Drift stage, config drift's pure core: desired objects (rendered at the
//! commit that is live) against live objects (from the `Target` port),
//! after a documented normalisation that drops server-owned and defaulted
//! fields, with Secret values masked by a stable digest before anything is
//! compared or printed. Each object is in-sync, modified (with a unified
//! diff, `similar`), missing, or extra (ours by inventory label, not
//! desired).
//!
//! The normalisation list ([`DEFAULT_IGNORES`]) is per kind, as JSON-pointer-
//! like paths where `*` matches every list item; an env can add its own
//! (like Argo CD's ignoreDifferences).
//!
//! Modules: [`slo`] (burn rates and regression, pure), [`report`] (the
//! per-env report, Markdown and JSON, pure); the edges (ports in, heal and
//! hand-over through the release engine) are the shell's `drift::run`. [`decide`] is the pure
//! policy between them: what a report asks the platform to do.

pub mod report;
pub mod slo;

use crate::ports::{LiveObject, MANAGED_BY, MANAGED_BY_VALUE};
use std::collections::BTreeMap;
use yaml_serde::Value;

/// Fields servers own or default, ignored for every kind (`*`) or one kind.
pub const DEFAULT_IGNORES: &[(&str, &str)] = &[
    ("*", "/status"),
    ("*", "/metadata/uid"),
    ("*", "/metadata/resourceVersion"),
    ("*", "/metadata/generation"),
    ("*", "/metadata/creationTimestamp"),
    ("*", "/metadata/managedFields"),
    ("*", "/metadata/selfLink"),
    (
        "*",
        "/metadata/annotations/deployment.kubernetes.io~1revision",
    ),
    (
        "*",
        "/metadata/annotations/kubectl.kubernetes.io~1last-applied-configuration",
    ),
    ("Deployment", "/spec/progressDeadlineSeconds"),
    ("Deployment", "/spec/strategy"),
    ("Deployment", "/spec/template/metadata/creationTimestamp"),
    ("Deployment", "/spec/template/spec/dnsPolicy"),
    ("Deployment", "/spec/template/spec/restartPolicy"),
    ("Deployment", "/spec/template/spec/schedulerName"),
    (
        "Deployment",
        "/spec/template/spec/terminationGracePeriodSeconds",
    ),
    (
        "Deployment",
        "/spec/template/spec/containers/*/terminationMessagePath",
    ),
    (
        "Deployment",
        "/spec/template/spec/containers/*/terminationMessagePolicy",
    ),
    (
        "Deployment",
        "/spec/template/spec/containers/*/imagePullPolicy",
    ),
    ("Service", "/spec/clusterIP"),
    ("Service", "/spec/clusterIPs"),
    ("Service", "/spec/ipFamilies"),
    ("Service", "/spec/ipFamilyPolicy"),
    ("Service", "/spec/internalTrafficPolicy"),
    ("Service", "/spec/sessionAffinity"),
    ("Service", "/spec/ports/*/protocol"),
];

/// How one object compares.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    InSync,
    Modified { diff: String },
    Missing,
    Extra,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ObjectDrift {
    pub kind: String,
    pub name: String,
    #[serde(flatten)]
    pub status: Status,
}

fn remove_path(v: &mut Value, path: &[&str]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let key = first.replace("~1", "/").replace("~0", "~");
    if rest.is_empty() {
        if let Some(m) = v.as_mapping_mut() {
            m.remove(key.as_str());
        }
        return;
    }
    if key == "*" {
        if let Some(items) = v.as_sequence_mut() {
            for item in items {
                remove_path(item, rest);
            }
        }
        return;
    }
    if let Some(child) = v.get_mut(key.as_str()) {
        remove_path(child, rest);
    }
}

/// The ignore rules, parsed once: (kind or `*`, path segments).
struct Rules(Vec<(String, Vec<String>)>);

impl Rules {
    fn new(extra: &[(String, String)]) -> Self {
        let parse = |k: &str, p: &str| {
            (
                k.to_string(),
                p.trim_start_matches('/')
                    .split('/')
                    .map(str::to_string)
                    .collect(),
            )
        };
        Self(
            DEFAULT_IGNORES
                .iter()
                .map(|(k, p)| parse(k, p))
                .chain(extra.iter().map(|(k, p)| parse(k, p)))
                .collect(),
        )
    }
}

/// Drops ignored fields (defaults plus `extra` for this env), masks
/// Secrets, and drops emptied maps so `{}` and absent compare equal.
pub fn normalize(obj: &Value, extra: &[(String, String)]) -> Value {
    normalize_with(obj, &Rules::new(extra))
}

fn normalize_with(obj: &Value, rules: &Rules) -> Value {
    let mut v = obj.clone();
    crate::redact::mask_object(&mut v);
    let kind = v
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    for (k, path) in &rules.0 {
        if k == "*" || *k == kind {
            let parts: Vec<&str> = path.iter().map(String::as_str).collect();
            remove_path(&mut v, &parts);
        }
    }
    prune_empty(&mut v);
    v
}

fn prune_empty(v: &mut Value) {
    match v {
        Value::Mapping(m) => {
            for (_, child) in m.iter_mut() {
                prune_empty(child);
            }
            m.retain(|_, child| {
                !matches!(child, Value::Mapping(c) if c.is_empty()) && !child.is_null()
            });
        }
        Value::Sequence(s) => s.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

fn id(v: &Value) -> (String, String) {
    (
        v.get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        v.get("metadata")
            .and_then(|m| m.get("name"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
    )
}

fn is_ours(v: &Value) -> bool {
    v.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(|l| l.get(MANAGED_BY))
        .and_then(Value::as_str)
        == Some(MANAGED_BY_VALUE)
}

/// Compares desired with live. Objects the tool adds on its own
/// (inventory labels) are expected on live objects, so labels/annotations
/// present only live and named in `ours_only` are ignored.
pub fn compare(
    desired: &[Value],
    live: &[LiveObject],
    extra_ignores: &[(String, String)],
) -> Vec<ObjectDrift> {
    let live_by_id: BTreeMap<(String, String), &Value> = live
        .iter()
        .map(|l| ((l.kind.clone(), l.name.clone()), &l.object))
        .collect();
    let rules = Rules::new(extra_ignores);
    let one = |d: &Value| -> ObjectDrift {
        let key = id(d);
        let status = match live_by_id.get(&key) {
            None => Status::Missing,
            Some(l) => {
                let want = normalize_with(d, &rules);
                let mut have = normalize_with(l, &rules);
                strip_inventory(&mut have, &want);
                if want == have {
                    Status::InSync
                } else {
                    let a = crate::yaml::to_string(std::slice::from_ref(&want)).unwrap_or_default();
                    let b = crate::yaml::to_string(std::slice::from_ref(&have)).unwrap_or_default();
                    let diff = similar::TextDiff::from_lines(&a, &b)
                        .unified_diff()
                        .header(
                            &format!("desired {}/{}", key.0, key.1),
                            &format!("live {}/{}", key.0, key.1),
                        )
                        .to_string();
                    Status::Modified { diff }
                }
            }
        };
        ObjectDrift {
            kind: key.0,
            name: key.1,
            status,
        }
    };
    // Objects are independent: compare them on every core, keeping order.
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    let chunk = desired.len().div_ceil(threads).max(256);
    let mut out: Vec<ObjectDrift> = std::thread::scope(|s| {
        let handles: Vec<_> = desired
            .chunks(chunk)
            .map(|c| s.spawn(|| c.iter().map(one).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let seen: std::collections::BTreeSet<(String, String)> = out
        .iter()
        .map(|o| (o.kind.clone(), o.name.clone()))
        .collect();
    for l in live {
        let key = (l.kind.clone(), l.name.clone());
        if !seen.contains(&key) && is_ours(&l.object) {
            out.push(ObjectDrift {
                kind: key.0,
                name: key.1,
                status: Status::Extra,
            });
        }
    }
    out
}

/// What a drift report asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Re-apply the live release: config drift in heal mode, past its grace.
    Heal,
    /// Hand the live release back to the engine (roll back + revert): SLO
    /// drift within `revert_within` of it becoming the env's release.
    Revert { reason: String },
}

/// The policy, pure. Config drift is healed only in heal mode, only once
/// it has lasted `grace`; SLO drift is never healed (re-applying the same
/// version cannot fix behaviour) but, right after a release, hands that
/// release back to the engine when there is an earlier good release to
/// return to. No data never triggers anything.
pub fn decide(
    env: &crate::config::Env,
    report: &report::EnvReport,
    good: &crate::model::LastGood,
    now: chrono::DateTime<chrono::Utc>,
) -> Vec<Action> {
    let mut out = Vec::new();
    if report.skipped.is_some() {
        return out;
    }
    let burning = report.slo_drifted();
    let recent = good.since.is_some_and(|t| {
        now.signed_duration_since(t).to_std().unwrap_or_default() <= env.drift.revert_within
    });
    if !burning.is_empty() && recent && good.previous.is_some() {
        let what: Vec<String> = burning
            .iter()
            .map(|s| match &s.status {
                slo::SloStatus::Burning { alert, .. } => format!("{} burning ({alert})", s.slo),
                slo::SloStatus::Regressed { detail } => format!("{} regressed: {detail}", s.slo),
                _ => s.slo.clone(),
            })
            .collect();
        out.push(Action::Revert {
            reason: format!("SLO drift after release: {}", what.join("; ")),
        });
        // Rolling back replaces the live objects anyway.
        return out;
    }
    if env.drift.mode == crate::config::DriftMode::Heal
        && report.config_drifted()
        && report.config_error.is_none()
        && report.drifting_since.is_some_and(|s| {
            now.signed_duration_since(s).to_std().unwrap_or_default() >= env.drift.grace
        })
    {
        out.push(Action::Heal);
    }
    out
}

/// Labels the tool itself puts on live objects (inventory, track, release)
/// are not drift when the desired object does not carry them.
fn strip_inventory(have: &mut Value, want: &Value) {
    for path in [
        &["metadata", "labels"][..],
        &["spec", "template", "metadata", "labels"][..],
    ] {
        let want_labels = path
            .iter()
            .try_fold(want, |v, k| v.get(*k))
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        let mut cur = Some(&mut *have);
        for k in path {
            cur = cur.and_then(|v| v.get_mut(*k));
        }
        if let Some(Value::Mapping(m)) = cur {
            m.retain(|k, _| {
                let k = k.as_str().unwrap_or_default();
                want_labels.contains_key(k)
                    || !(k.starts_with("platform-capstone.dev/") || k == MANAGED_BY)
            });
        }
    }
    prune_empty(have);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Value {
        yaml_serde::from_str(s).unwrap()
    }

    fn live(kind: &str, name: &str, obj: Value) -> LiveObject {
        LiveObject {
            kind: kind.into(),
            namespace: "ns".into(),
            name: name.into(),
            object: obj,
        }
    }

    #[test]
    fn heal_waits_for_grace_and_slo_drift_reverts_only_a_recent_release() {
        use crate::model::LastGood;
        // The blueprint's dev env, as the repo root ships it.
        let tree = crate::source::MemTree::new()
            .file("envs/dev.toml", include_str!("../../../../envs/dev.toml"))
            .file("overlays/dev/kustomization.yaml", "resources: []\n");
        let mut env = crate::config::load_own_env(&tree, "dev").unwrap();
        env.drift.mode = crate::config::DriftMode::Heal;
        env.drift.grace = std::time::Duration::from_secs(300);
        env.drift.revert_within = std::time::Duration::from_secs(600);
        let now = chrono::Utc::now();
        let mins = |m: i64| now - chrono::Duration::minutes(m);
        let mut good = LastGood {
            release: "rel-2026-11-25-02".into(),
            commit: "c".repeat(40),
            images: Vec::new(),
            version: "1.1.0".into(),
            baseline: Default::default(),
            since: Some(mins(2)),
            previous: None,
        };
        let mut r = report::EnvReport::skipped("dev", env.drift.mode, now, String::new());
        r.skipped = None;
        assert!(decide(&env, &r, &good, now).is_empty(), "in sync: nothing");
        r.drifted.push(ObjectDrift {
            kind: "Deployment".into(),
            name: "demo".into(),
            status: Status::Missing,
        });
        r.drifting_since = Some(mins(1));
        assert!(decide(&env, &r, &good, now).is_empty(), "inside the grace");
        r.drifting_since = Some(mins(6));
        assert_eq!(decide(&env, &r, &good, now), vec![Action::Heal]);
        let mut report_mode = env.clone();
        report_mode.drift.mode = crate::config::DriftMode::Report;
        assert!(
            decide(&report_mode, &r, &good, now).is_empty(),
            "report mode never heals"
        );

        // SLO drift: never healed; handed back only right after a release
        // with an earlier good one to return to.
        r.drifted.clear();
        r.slos.push(slo::SloDrift {
            slo: "availability".into(),
            status: slo::SloStatus::Burning {
                severity: crate::config::Severity::Page,
                alert: "1h/5m at 14.4x".into(),
                burn_long: 30.0,
                burn_short: 40.0,
            },
            burn_rates: Default::default(),
            current: Some(0.3),
            baseline: Some(0.0),
        });
        assert!(
            decide(&env, &r, &good, now).is_empty(),
            "no previous release"
        );
        good.previous = Some(Box::new(good.clone()));
        match decide(&env, &r, &good, now).as_slice() {
            [Action::Revert { reason }] => {
                assert!(reason.contains("availability burning"), "{reason}")
            }
            other => panic!("{other:?}"),
        }
        good.since = Some(mins(30));
        assert!(
            decide(&env, &r, &good, now).is_empty(),
            "long after the release"
        );
        good.since = Some(mins(2));
        r.slos[0].status = slo::SloStatus::NoData {
            reason: "connection refused".into(),
        };
        assert!(
            decide(&env, &r, &good, now).is_empty(),
            "no data never acts"
        );
    }

    #[test]
    fn server_fields_are_ignored_changes_are_diffed_and_secrets_masked() {
        let desired = vec![
            v(
                "kind: Deployment\nmetadata: {name: demo}\nspec: {replicas: 2, template: {spec: {containers: [{name: demo, image: 'reg/demo@sha256:aa'}]}}}",
            ),
            v("kind: Secret\nmetadata: {name: creds}\nstringData: {password: hunter2}"),
            v("kind: ConfigMap\nmetadata: {name: gone}\ndata: {a: b}"),
        ];
        let live_objects = vec![
            live(
                "Deployment",
                "demo",
                v(
                    "kind: Deployment\nmetadata: {name: demo, uid: x, resourceVersion: '7', labels: {app.kubernetes.io/managed-by: platform-capstone, platform-capstone.dev/track: stable}}\nspec: {replicas: 3, progressDeadlineSeconds: 600, template: {spec: {dnsPolicy: ClusterFirst, containers: [{name: demo, image: 'reg/demo@sha256:aa', imagePullPolicy: IfNotPresent}]}}}\nstatus: {readyReplicas: 3}",
                ),
            ),
            live(
                "Secret",
                "creds",
                v(
                    "kind: Secret\nmetadata: {name: creds}\nstringData: {password: changed-behind-our-back}",
                ),
            ),
            live(
                "Service",
                "stray",
                v(
                    "kind: Service\nmetadata: {name: stray, labels: {app.kubernetes.io/managed-by: platform-capstone}}",
                ),
            ),
            live(
                "Service",
                "not-ours",
                v("kind: Service\nmetadata: {name: not-ours}"),
            ),
        ];
        let r = compare(&desired, &live_objects, &[]);
        let by = |n: &str| r.iter().find(|o| o.name == n).unwrap().status.clone();
        match by("demo") {
            Status::Modified { diff } => {
                assert!(
                    diff.contains("-  replicas: 2") && diff.contains("+  replicas: 3"),
                    "{diff}"
                );
                assert!(
                    !diff.contains("uid")
                        && !diff.contains("progressDeadline")
                        && !diff.contains("imagePullPolicy")
                        && !diff.contains("managed-by"),
                    "{diff}"
                );
            }
            other => panic!("{other:?}"),
        }
        match by("creds") {
            Status::Modified { diff } => {
                assert!(
                    !diff.contains("hunter2") && !diff.contains("changed-behind"),
                    "{diff}"
                );
                assert!(diff.contains("<masked hmac:"), "{diff}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(by("gone"), Status::Missing);
        assert_eq!(by("stray"), Status::Extra);
        assert!(
            r.iter().all(|o| o.name != "not-ours"),
            "objects that are not ours are not extra"
        );
        // An env's own ignore rule silences a field.
        let r = compare(
            &desired[..1],
            &live_objects[..1],
            &[("Deployment".into(), "/spec/replicas".into())],
        );
        assert_eq!(r[0].status, Status::InSync);
    }
}
