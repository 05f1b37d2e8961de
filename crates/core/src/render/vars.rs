//! `vars` (deprecated in kustomize for `replacements`, still common):
//! `$(NAME)` in the fields kustomize's varReference table lists (plus any
//! `varReference` of a `configurations` file) becomes a field of another
//! object, read after every transformer ran (so a prefixed name is seen
//! prefixed). Expansion follows Kubernetes' `$(VAR)` syntax: `$$` is a
//! literal `$`, an undefined `$(X)` stays as written.
//!
//! [`DEFAULT_REFERENCES`] is kustomize's default varReference table (its
//! `builtinpluginconsts`), as data: which fields of which kinds expand.

use super::kustomization::FieldSpec;
use super::object::Object;
use super::replace;
use super::transform::for_each_at;
use serde::Deserialize;
use std::collections::BTreeMap;
use yaml_serde::Value;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Var {
    pub name: String,
    pub objref: ObjRef,
    pub fieldref: Option<FieldRef>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ObjRef {
    pub kind: String,
    pub name: String,
    pub api_version: Option<String>,
    pub group: Option<String>,
    pub version: Option<String>,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRef {
    pub fieldpath: String,
}

/// (kind, or "" for every kind; path) where `$(VAR)` expands by default.
pub const DEFAULT_REFERENCES: &[(&str, &str)] = &[
    (
        "CronJob",
        "spec/jobTemplate/spec/template/spec/containers/args",
    ),
    (
        "CronJob",
        "spec/jobTemplate/spec/template/spec/containers/command",
    ),
    (
        "CronJob",
        "spec/jobTemplate/spec/template/spec/containers/env/value",
    ),
    (
        "CronJob",
        "spec/jobTemplate/spec/template/spec/containers/volumeMounts/mountPath",
    ),
    (
        "CronJob",
        "spec/jobTemplate/spec/template/spec/initContainers/args",
    ),
    (
        "CronJob",
        "spec/jobTemplate/spec/template/spec/initContainers/command",
    ),
    (
        "CronJob",
        "spec/jobTemplate/spec/template/spec/initContainers/env/value",
    ),
    (
        "CronJob",
        "spec/jobTemplate/spec/template/spec/initContainers/volumeMounts/mountPath",
    ),
    (
        "CronJob",
        "spec/jobTemplate/spec/template/volumes/nfs/server",
    ),
    ("DaemonSet", "spec/template/spec/containers/args"),
    ("DaemonSet", "spec/template/spec/containers/command"),
    ("DaemonSet", "spec/template/spec/containers/env/value"),
    (
        "DaemonSet",
        "spec/template/spec/containers/volumeMounts/mountPath",
    ),
    ("DaemonSet", "spec/template/spec/initContainers/args"),
    ("DaemonSet", "spec/template/spec/initContainers/command"),
    ("DaemonSet", "spec/template/spec/initContainers/env/value"),
    (
        "DaemonSet",
        "spec/template/spec/initContainers/volumeMounts/mountPath",
    ),
    ("DaemonSet", "spec/template/spec/volumes/nfs/server"),
    ("Deployment", "spec/template/spec/containers/args"),
    ("Deployment", "spec/template/spec/containers/command"),
    ("Deployment", "spec/template/spec/containers/env/value"),
    (
        "Deployment",
        "spec/template/spec/containers/volumeMounts/mountPath",
    ),
    ("Deployment", "spec/template/spec/initContainers/args"),
    ("Deployment", "spec/template/spec/initContainers/command"),
    ("Deployment", "spec/template/spec/initContainers/env/value"),
    (
        "Deployment",
        "spec/template/spec/initContainers/volumeMounts/mountPath",
    ),
    ("Deployment", "spec/template/spec/volumes/nfs/server"),
    ("Deployment", "spec/template/metadata/annotations"),
    ("Ingress", "spec/rules/host"),
    ("Ingress", "spec/tls/hosts"),
    ("Ingress", "spec/tls/secretName"),
    ("Job", "spec/template/spec/containers/args"),
    ("Job", "spec/template/spec/containers/command"),
    ("Job", "spec/template/spec/containers/env/value"),
    (
        "Job",
        "spec/template/spec/containers/volumeMounts/mountPath",
    ),
    ("Job", "spec/template/spec/initContainers/args"),
    ("Job", "spec/template/spec/initContainers/command"),
    ("Job", "spec/template/spec/initContainers/env/value"),
    (
        "Job",
        "spec/template/spec/initContainers/volumeMounts/mountPath",
    ),
    ("Job", "spec/template/spec/volumes/nfs/server"),
    ("Pod", "spec/containers/args"),
    ("Pod", "spec/containers/command"),
    ("Pod", "spec/containers/env/value"),
    ("Pod", "spec/containers/volumeMounts/mountPath"),
    ("Pod", "spec/initContainers/args"),
    ("Pod", "spec/initContainers/command"),
    ("Pod", "spec/initContainers/env/value"),
    ("Pod", "spec/initContainers/volumeMounts/mountPath"),
    ("Pod", "spec/volumes/nfs/server"),
    ("ReplicaSet", "spec/template/spec/containers/args"),
    ("ReplicaSet", "spec/template/spec/containers/command"),
    ("ReplicaSet", "spec/template/spec/containers/env/value"),
    (
        "ReplicaSet",
        "spec/template/spec/containers/volumeMounts/mountPath",
    ),
    ("ReplicaSet", "spec/template/spec/initContainers/args"),
    ("ReplicaSet", "spec/template/spec/initContainers/command"),
    ("ReplicaSet", "spec/template/spec/initContainers/env/value"),
    (
        "ReplicaSet",
        "spec/template/spec/initContainers/volumeMounts/mountPath",
    ),
    ("ReplicaSet", "spec/template/spec/volumes/nfs/server"),
    ("Service", "spec/ports/port"),
    ("Service", "spec/ports/targetPort"),
    ("StatefulSet", "spec/template/spec/containers/args"),
    ("StatefulSet", "spec/template/spec/containers/command"),
    ("StatefulSet", "spec/template/spec/containers/env/value"),
    (
        "StatefulSet",
        "spec/template/spec/containers/volumeMounts/mountPath",
    ),
    ("StatefulSet", "spec/template/spec/initContainers/args"),
    ("StatefulSet", "spec/template/spec/initContainers/command"),
    ("StatefulSet", "spec/template/spec/initContainers/env/value"),
    (
        "StatefulSet",
        "spec/template/spec/initContainers/volumeMounts/mountPath",
    ),
    ("StatefulSet", "spec/volumeClaimTemplates/spec/nfs/server"),
    ("PersistentVolume", "spec/nfs/server"),
    ("", "metadata/labels"),
    ("", "metadata/annotations"),
];

fn resolve(objects: &[Object], v: &Var) -> Result<String, String> {
    let r = &v.objref;
    let found: Vec<&Object> = objects
        .iter()
        .filter(|o| {
            o.kind() == r.kind
                && o.ids.iter().any(|id| id.name == r.name)
                && r.api_version
                    .as_deref()
                    .is_none_or(|a| a == o.api_version())
                && r.group.as_deref().is_none_or(|g| g == o.group())
                && r.version.as_deref().is_none_or(|x| x == o.version())
                && r.namespace
                    .as_deref()
                    .is_none_or(|n| o.ids.iter().any(|id| id.namespace.as_deref() == Some(n)))
        })
        .collect();
    let o = match found.as_slice() {
        [o] => *o,
        [] => {
            return Err(format!(
                "var {}: no {} named {:?} to read it from",
                v.name, r.kind, r.name
            ));
        }
        many => {
            return Err(format!(
                "var {}: {} objects match {}/{}; give apiVersion or namespace",
                v.name,
                many.len(),
                r.kind,
                r.name
            ));
        }
    };
    let path = v
        .fieldref
        .as_ref()
        .map(|f| f.fieldpath.as_str())
        .unwrap_or("metadata.name");
    let doc = Value::Mapping(o.doc.clone());
    match replace::lookup_path(&doc, path)? {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Number(n)) => Ok(n.to_string()),
        Some(Value::Bool(b)) => Ok(b.to_string()),
        Some(_) => Err(format!(
            "var {}: {path} of {} is not a scalar",
            v.name,
            o.describe()
        )),
        None => Err(format!("var {}: {} has no {path}", v.name, o.describe())),
    }
}

/// Kubernetes' `$(VAR)` expansion over `text`.
pub fn expand(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match values.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn expand_node(n: &mut Value, values: &BTreeMap<String, String>) {
    match n {
        Value::String(s) if s.contains('$') => *s = expand(s, values),
        Value::Mapping(m) => {
            for (_, v) in m.iter_mut() {
                if let Value::String(s) = v
                    && s.contains('$')
                {
                    *s = expand(s, values);
                }
            }
        }
        _ => {}
    }
}

/// Resolves every var against the final objects and expands them in the
/// default fields and the `extra` varReference field specs.
pub fn apply(objects: &mut [Object], vars: &[Var], extra: &[FieldSpec]) -> Result<(), String> {
    if vars.is_empty() {
        return Ok(());
    }
    let mut values = BTreeMap::new();
    for v in vars {
        values.insert(v.name.clone(), resolve(objects, v)?);
    }
    for o in objects.iter_mut() {
        let (kind, group) = (o.kind().to_string(), o.group().to_string());
        o.edit(|doc| {
            for (k, path) in DEFAULT_REFERENCES {
                if k.is_empty() || *k == kind {
                    let steps: Vec<&str> = path.split('/').collect();
                    for_each_at(doc, &steps, false, &mut |n| expand_node(n, &values));
                }
            }
            for fs in extra {
                if fs.kind.as_deref().is_none_or(|k| k == kind)
                    && fs.group.as_deref().is_none_or(|g| g == group)
                {
                    let steps: Vec<&str> = fs.path.split('/').collect();
                    for_each_at(doc, &steps, false, &mut |n| expand_node(n, &values));
                }
            }
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes_syntax() {
        let values = BTreeMap::from([("DB".to_string(), "demo-mysql".to_string())]);
        assert_eq!(
            expand("echo $(DB); $(NOPE) $$(DB) $", &values),
            "echo demo-mysql; $(NOPE) $(DB) $"
        );
        assert_eq!(expand("$(DB", &values), "$(DB");
    }
}
