//! The built-in transformers, in kustomize's order: namespace, name
//! prefix/suffix, labels, annotations, replicas, images; and the final
//! pass that points references (env, volumes, Ingress backends,
//! scaleTargetRef, RoleBinding subjects…) at renamed objects.
//!
//! Field lists mirror kustomize's default field specs for the built-in
//! kinds; sequences on a path are traversed implicitly, as there.

use super::kustomization::Image;
use super::object::{Object, child_map, get_str, is_cluster_scoped};
use std::collections::{BTreeMap, HashMap};
use yaml_serde::{Mapping, Value};

/// Calls `f` on every node at `path` ("spec/template/metadata/labels"),
/// traversing sequences; creates missing mappings when `create`, never a
/// segment marked as a list (`volumeClaimTemplates[]`, as kustomize
/// writes its field specs).
pub fn for_each_at(v: &mut Value, path: &[&str], create: bool, f: &mut dyn FnMut(&mut Value)) {
    match v {
        Value::Sequence(items) => {
            for item in items {
                for_each_at(item, path, create, f);
            }
        }
        _ if path.is_empty() => f(v),
        Value::Mapping(m) => {
            let (name, list) = match path[0].strip_suffix("[]") {
                Some(n) => (n, true),
                None => (path[0], false),
            };
            let key = Value::String(name.to_string());
            if !m.contains_key(&key) {
                if !create || list {
                    return;
                }
                m.insert(key.clone(), Value::Mapping(Mapping::new()));
            }
            if let Some(child) = m.get_mut(&key) {
                if child.is_null() && create {
                    *child = Value::Mapping(Mapping::new());
                }
                for_each_at(child, &path[1..], create, f);
            }
        }
        _ => {}
    }
}

fn split(path: &str) -> Vec<&str> {
    path.split('/').collect()
}

/// Where a kind keeps its pod spec, if it has one.
pub fn pod_spec_path(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment"
        | "ReplicaSet"
        | "DaemonSet"
        | "StatefulSet"
        | "Job"
        | "ReplicationController" => Some("spec/template/spec"),
        "CronJob" => Some("spec/jobTemplate/spec/template/spec"),
        "Pod" => Some("spec"),
        _ => None,
    }
}

/// kustomize's namespace transformer: every namespaced object moves to
/// `ns`, a `Namespace` object is renamed to it (two of them would collide:
/// an error), and (Cluster)RoleBinding subjects named `default` get it.
/// Other subjects follow the ServiceAccount they name in
/// [`fix_references`].
pub fn namespace(objects: &mut [Object], ns: &str) -> Result<(), String> {
    let namespaces = objects.iter().filter(|o| o.kind() == "Namespace").count();
    if namespaces > 1 {
        return Err(format!(
            "namespace: {ns:?} would rename all {namespaces} Namespace objects to one name; keep one Namespace in this kustomization or drop `namespace`"
        ));
    }
    for o in objects.iter_mut() {
        if matches!(o.kind(), "RoleBinding" | "ClusterRoleBinding") {
            set_default_subject_namespaces(&mut o.doc, ns);
        }
        if o.kind() == "Namespace" {
            o.set_name(ns);
            continue;
        }
        // The services these cluster-scoped kinds call live in the namespace.
        match (o.kind(), o.group()) {
            ("APIService", "apiregistration.k8s.io") => {
                set_field(&mut o.doc, &["spec", "service", "namespace"], ns, true);
            }
            ("CustomResourceDefinition", "apiextensions.k8s.io") => set_field(
                &mut o.doc,
                &[
                    "spec",
                    "conversion",
                    "webhook",
                    "clientConfig",
                    "service",
                    "namespace",
                ],
                ns,
                false,
            ),
            _ => {}
        }
        if is_cluster_scoped(o.kind()) {
            continue;
        }
        o.set_namespace(ns);
    }
    Ok(())
}

/// Sets the string at `path` (created when `create`, else only replaced).
fn set_field(doc: &mut Mapping, path: &[&str], value: &str, create: bool) {
    let mut v = Value::Mapping(std::mem::take(doc));
    if let Some((last, parents)) = path.split_last() {
        for_each_at(&mut v, parents, create, &mut |node| {
            if let Value::Mapping(m) = node
                && (create || m.contains_key(*last))
            {
                m.insert(
                    Value::String((*last).to_string()),
                    Value::String(value.to_string()),
                );
            }
        });
    }
    if let Value::Mapping(m) = v {
        *doc = m;
    }
}

/// Subjects named `default` (the namespace's default ServiceAccount) move
/// with the namespace, whatever namespace they named.
fn set_default_subject_namespaces(doc: &mut Mapping, ns: &str) {
    let Some(Value::Sequence(subjects)) = doc.get_mut("subjects") else {
        return;
    };
    for s in subjects.iter_mut().filter_map(Value::as_mapping_mut) {
        if get_str(s, "name") == Some("default") {
            s.insert("namespace".into(), Value::String(ns.to_string()));
        }
    }
}

pub fn prefix_suffix(objects: &mut [Object], prefix: &str, suffix: &str) {
    for o in objects.iter_mut() {
        // kustomize leaves CRDs and APIServices (their names are fixed by
        // the API) and Namespaces alone.
        if matches!(o.kind(), "CustomResourceDefinition" | "Namespace")
            || (o.kind() == "APIService" && o.group() == "apiregistration.k8s.io")
        {
            continue;
        }
        let name = format!("{prefix}{}{suffix}", o.name());
        o.set_name(&name);
    }
}

/// (kinds, path, create) of selector and template label fields.
const SELECTOR_FIELDS: &[(&[&str], &str, bool)] = &[
    (&["Service"], "spec/selector", true),
    (&["ReplicationController"], "spec/selector", true),
    (
        &["Deployment", "ReplicaSet", "DaemonSet", "StatefulSet"],
        "spec/selector/matchLabels",
        true,
    ),
    (&["Job"], "spec/selector/matchLabels", false),
    (
        &["CronJob"],
        "spec/jobTemplate/spec/selector/matchLabels",
        false,
    ),
    (&["PodDisruptionBudget"], "spec/selector/matchLabels", false),
    (
        &["Deployment", "StatefulSet"],
        "spec/template/spec/affinity/podAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    (
        &["Deployment", "StatefulSet"],
        "spec/template/spec/affinity/podAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    (
        &["Deployment", "StatefulSet"],
        "spec/template/spec/affinity/podAntiAffinity/preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
        false,
    ),
    (
        &["Deployment", "StatefulSet"],
        "spec/template/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        false,
    ),
    (
        &["Deployment", "StatefulSet"],
        "spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels",
        false,
    ),
    (&["NetworkPolicy"], "spec/podSelector/matchLabels", false),
    (
        &["NetworkPolicy"],
        "spec/ingress/from/podSelector/matchLabels",
        false,
    ),
    (
        &["NetworkPolicy"],
        "spec/egress/to/podSelector/matchLabels",
        false,
    ),
];

/// Kinds whose pod template sits at `spec/template`.
const POD_TEMPLATE_KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "DaemonSet",
    "StatefulSet",
    "Job",
    "ReplicationController",
];

const TEMPLATE_FIELDS: &[(&[&str], &str, bool)] = &[
    (POD_TEMPLATE_KINDS, "spec/template/metadata/labels", true),
    (
        &["StatefulSet"],
        "spec/volumeClaimTemplates[]/metadata/labels",
        true,
    ),
    (&["CronJob"], "spec/jobTemplate/metadata/labels", true),
    (
        &["CronJob"],
        "spec/jobTemplate/spec/template/metadata/labels",
        true,
    ),
];

fn merge_pairs(node: &mut Value, pairs: &BTreeMap<String, String>) {
    if let Value::Mapping(m) = node {
        for (k, v) in pairs {
            m.insert(Value::String(k.clone()), Value::String(v.clone()));
        }
    }
}

pub fn labels(
    objects: &mut [Object],
    pairs: &BTreeMap<String, String>,
    selectors: bool,
    templates: bool,
) {
    if pairs.is_empty() {
        return;
    }
    let mut fields: Vec<(&[&str], &str, bool)> = Vec::new();
    if selectors {
        fields.extend(SELECTOR_FIELDS.iter().copied());
    }
    if selectors || templates {
        fields.extend(TEMPLATE_FIELDS.iter().copied());
    }
    set_pairs(objects, "labels", &fields, pairs);
}

/// Merges `pairs` into `metadata.<field>` of every object and into the
/// kind-specific `fields` (kinds, path, create).
fn set_pairs(
    objects: &mut [Object],
    field: &str,
    fields: &[(&[&str], &str, bool)],
    pairs: &BTreeMap<String, String>,
) {
    for o in objects.iter_mut() {
        let kind = o.kind().to_string();
        o.edit(|doc| {
            for_each_at(doc, &["metadata", field], true, &mut |n| {
                merge_pairs(n, pairs)
            });
            for (kinds, path, create) in fields {
                if kinds.contains(&kind.as_str()) {
                    for_each_at(doc, &split(path), *create, &mut |n| merge_pairs(n, pairs));
                }
            }
        });
    }
}

const ANNOTATION_FIELDS: &[(&[&str], &str, bool)] = &[
    (
        POD_TEMPLATE_KINDS,
        "spec/template/metadata/annotations",
        true,
    ),
    (&["CronJob"], "spec/jobTemplate/metadata/annotations", true),
    (
        &["CronJob"],
        "spec/jobTemplate/spec/template/metadata/annotations",
        true,
    ),
];

pub fn annotations(objects: &mut [Object], pairs: &BTreeMap<String, String>) {
    if !pairs.is_empty() {
        set_pairs(objects, "annotations", ANNOTATION_FIELDS, pairs);
    }
}

/// Merges `pairs` into the map at each field spec's path (of the objects
/// its kind and group select), creating it where the spec says so: the
/// `fieldSpecs` of a built-in LabelTransformer or AnnotationsTransformer.
pub fn pairs_at(
    objects: &mut [Object],
    pairs: &BTreeMap<String, String>,
    specs: &[super::kustomization::FieldSpec],
) {
    for o in objects.iter_mut() {
        let (kind, group) = (o.kind().to_string(), o.group().to_string());
        o.edit(|doc| {
            for fs in specs {
                if fs.kind.as_deref().is_some_and(|k| k != kind)
                    || fs.group.as_deref().is_some_and(|g| g != group)
                {
                    continue;
                }
                for_each_at(doc, &split(&fs.path), fs.create, &mut |n| {
                    merge_pairs(n, pairs)
                });
            }
        });
    }
}

/// Sets `spec.replicas` of the workloads named (by any name they had).
pub fn replicas(objects: &mut [Object], name: &str, count: i64) -> bool {
    let mut found = false;
    for o in objects.iter_mut() {
        if matches!(
            o.kind(),
            "Deployment" | "ReplicaSet" | "StatefulSet" | "ReplicationController"
        ) && o.had_name(name)
        {
            child_map(&mut o.doc, "spec").insert("replicas".into(), Value::Number(count.into()));
            found = true;
        }
    }
    found
}

/// `name[:tag][@digest]` → (name, tag, digest).
pub fn split_image(image: &str) -> (&str, Option<&str>, Option<&str>) {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    match rest[last_slash..].rfind(':') {
        Some(i) => (
            &rest[..last_slash + i],
            Some(&rest[last_slash + i + 1..]),
            digest,
        ),
        None => (rest, None, digest),
    }
}

fn rewrite_image(value: &str, img: &Image) -> Option<String> {
    let (name, tag, digest) = split_image(value);
    if name != img.name {
        return None;
    }
    let name = img.new_name.as_deref().unwrap_or(name);
    let (tag, digest) = match (&img.new_tag, &img.digest) {
        (Some(t), Some(d)) => (Some(t.as_str()), Some(d.as_str())),
        (Some(t), None) => (Some(t.as_str()), None),
        (None, Some(d)) => (None, Some(d.as_str())),
        (None, None) => (tag, digest),
    };
    let mut out = name.to_string();
    if let Some(t) = tag {
        out.push(':');
        out.push_str(t);
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(d);
    }
    Some(out)
}

/// Rewrites `image:` of every container and init container, in any kind.
pub fn images(objects: &mut [Object], images: &[Image]) {
    if images.is_empty() {
        return;
    }
    fn walk(v: &mut Value, images: &[Image]) {
        match v {
            Value::Mapping(m) => {
                for (k, child) in m.iter_mut() {
                    if matches!(
                        k.as_str(),
                        Some("containers" | "initContainers" | "ephemeralContainers")
                    ) && let Value::Sequence(cs) = child
                    {
                        for c in cs.iter_mut().filter_map(Value::as_mapping_mut) {
                            if let Some(Value::String(image)) = c.get_mut("image") {
                                for img in images {
                                    if let Some(new) = rewrite_image(image, img) {
                                        *image = new;
                                        break;
                                    }
                                }
                            }
                        }
                    } else {
                        walk(child, images);
                    }
                }
            }
            Value::Sequence(s) => s.iter_mut().for_each(|c| walk(c, images)),
            _ => {}
        }
    }
    for o in objects.iter_mut() {
        o.edit(|doc| walk(doc, images));
    }
}

/// Pod-spec-relative fields that name another object, by the referred kind.
const POD_REFS: &[(&str, &str)] = &[
    ("ConfigMap", "volumes/configMap/name"),
    ("ConfigMap", "volumes/projected/sources/configMap/name"),
    ("ConfigMap", "containers/env/valueFrom/configMapKeyRef/name"),
    (
        "ConfigMap",
        "initContainers/env/valueFrom/configMapKeyRef/name",
    ),
    ("ConfigMap", "containers/envFrom/configMapRef/name"),
    ("ConfigMap", "initContainers/envFrom/configMapRef/name"),
    ("Secret", "volumes/secret/secretName"),
    ("Secret", "volumes/projected/sources/secret/name"),
    ("Secret", "containers/env/valueFrom/secretKeyRef/name"),
    ("Secret", "initContainers/env/valueFrom/secretKeyRef/name"),
    ("Secret", "containers/envFrom/secretRef/name"),
    ("Secret", "initContainers/envFrom/secretRef/name"),
    ("Secret", "imagePullSecrets/name"),
    ("ServiceAccount", "serviceAccountName"),
    ("ServiceAccount", "serviceAccount"),
    (
        "PersistentVolumeClaim",
        "volumes/persistentVolumeClaim/claimName",
    ),
    ("PriorityClass", "priorityClassName"),
];

/// (referrer kind, path, referred kind) outside pod specs.
const OTHER_REFS: &[(&str, &str, &str)] = &[
    ("Ingress", "spec/tls/secretName", "Secret"),
    (
        "Ingress",
        "spec/rules/http/paths/backend/service/name",
        "Service",
    ),
    ("Ingress", "spec/defaultBackend/service/name", "Service"),
    (
        "Ingress",
        "spec/rules/http/paths/backend/serviceName",
        "Service",
    ),
    ("Ingress", "spec/backend/serviceName", "Service"),
    ("StatefulSet", "spec/serviceName", "Service"),
    ("APIService", "spec/service/name", "Service"),
    ("ServiceAccount", "secrets/name", "Secret"),
    ("ServiceAccount", "imagePullSecrets/name", "Secret"),
];

/// An object that had an id it no longer has.
struct Moved {
    /// The namespace it had with the old name.
    was_in: Option<String>,
    namespace: Option<String>,
    name: String,
}

/// (kind, old name) → every object that had that name and moved since.
type Renames = HashMap<(String, String), Vec<Moved>>;
/// (referred kind, name as written, referrer's namespace) → new name.
type Lookup<'a> = dyn Fn(&str, &str, Option<&str>) -> Option<String> + 'a;

/// A name reference a `configurations` file adds: in objects of
/// `referrer_kind` (and group; any when unset), the field at `path` names
/// an object of `referred_kind`.
#[derive(Debug, Clone)]
pub struct ExtraRef {
    pub referrer_kind: Option<String>,
    pub referrer_group: Option<String>,
    pub path: String,
    pub referred_kind: String,
}

/// Points references at the current names of renamed objects (the
/// built-in table plus `extra`). Runs once, after generators' hash
/// suffixes are added.
pub fn fix_references(objects: &mut [Object], extra: &[ExtraRef]) {
    let mut renamed: Renames = HashMap::new();
    for o in objects.iter() {
        let (name, namespace) = (o.name().to_string(), o.namespace().map(str::to_string));
        for id in &o.ids {
            if id.name == name && id.namespace == namespace {
                continue;
            }
            let moved = renamed
                .entry((o.kind().to_string(), id.name.clone()))
                .or_default();
            if !moved
                .iter()
                .any(|m| m.was_in == id.namespace && m.name == name && m.namespace == namespace)
            {
                moved.push(Moved {
                    was_in: id.namespace.clone(),
                    namespace: namespace.clone(),
                    name: name.clone(),
                });
            }
        }
    }
    if renamed.is_empty() {
        return;
    }
    let lookup = |kind: &str, old: &str, ns: Option<&str>| -> Option<String> {
        let candidates = renamed.get(&(kind.to_string(), old.to_string()))?;
        let found = candidates
            .iter()
            .find(|m| m.namespace.as_deref() == ns || m.was_in.as_deref() == ns)
            .or_else(|| {
                let first = candidates.first()?;
                candidates
                    .iter()
                    .all(|m| m.name == first.name)
                    .then_some(first)
            })?;
        (found.name != old).then(|| found.name.clone())
    };
    for o in objects.iter_mut() {
        let kind = o.kind().to_string();
        let group = o.group().to_string();
        let ns = o.namespace().map(str::to_string);
        let first_ns = o.ids.first().and_then(|id| id.namespace.clone());
        let fix = |referred: &str, path: &str, doc: &mut Value| {
            for_each_at(doc, &split(path), false, &mut |n| {
                if let Value::String(s) = n
                    && let Some(new) = lookup(referred, s, ns.as_deref())
                {
                    *s = new;
                }
            });
        };
        o.edit(|doc| {
            if let Some(pod) = pod_spec_path(&kind) {
                for (referred, rel) in POD_REFS {
                    fix(referred, &format!("{pod}/{rel}"), doc);
                }
            }
            for (referrer, path, referred) in OTHER_REFS {
                if *referrer == kind {
                    fix(referred, path, doc);
                }
            }
            for e in extra {
                if e.referrer_kind.as_deref().is_none_or(|k| k == kind)
                    && e.referrer_group.as_deref().is_none_or(|g| g == group)
                {
                    fix(&e.referred_kind, &e.path, doc);
                }
            }
        });
        fix_typed_refs(&mut o.doc, &kind, ns.as_deref(), &lookup);
        if matches!(kind.as_str(), "RoleBinding" | "ClusterRoleBinding") {
            fix_subjects(&mut o.doc, first_ns.as_deref(), &renamed);
        }
        if matches!(
            kind.as_str(),
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration"
        ) && group == "admissionregistration.k8s.io"
        {
            o.edit(|doc| {
                for_each_at(
                    doc,
                    &["webhooks", "clientConfig", "service"],
                    false,
                    &mut |n| {
                        if let Value::Mapping(m) = n {
                            follow_moved(m, "Service", None, &renamed);
                        }
                    },
                )
            });
        }
    }
}

/// ServiceAccount subjects follow the account they name: matched by its
/// name and namespace as written (a subject without one means the
/// binding's own as first written; none at all is `default`), they take its current name and
/// namespace. A subject naming an account elsewhere is left alone.
fn fix_subjects(doc: &mut Mapping, binding_ns: Option<&str>, renamed: &Renames) {
    let Some(Value::Sequence(subjects)) = doc.get_mut("subjects") else {
        return;
    };
    for s in subjects.iter_mut().filter_map(Value::as_mapping_mut) {
        if get_str(s, "kind") == Some("ServiceAccount") {
            follow_moved(s, "ServiceAccount", binding_ns, renamed);
        }
    }
}

/// A `{name, namespace}` reference to an object of `kind` follows it when
/// it moved: matched by the name and namespace as written (none means
/// `fallback_ns`, and none at all `default`), it takes the object's
/// current name and namespace. A reference to one elsewhere is left alone.
fn follow_moved(r: &mut Mapping, kind: &str, fallback_ns: Option<&str>, renamed: &Renames) {
    let Some(name) = get_str(r, "name").map(str::to_string) else {
        return;
    };
    let wanted = get_str(r, "namespace").map(str::to_string);
    let wanted = wanted.as_deref().or(fallback_ns).unwrap_or("default");
    let Some(m) = renamed.get(&(kind.to_string(), name)).and_then(|c| {
        c.iter()
            .find(|m| m.was_in.as_deref().unwrap_or("default") == wanted)
    }) else {
        return;
    };
    r.insert("name".into(), Value::String(m.name.clone()));
    if let Some(ns) = &m.namespace {
        r.insert("namespace".into(), Value::String(ns.clone()));
    }
}

/// References whose target kind is given beside the name.
fn fix_typed_refs(doc: &mut Mapping, kind: &str, ns: Option<&str>, lookup: &Lookup<'_>) {
    let rename = |m: &mut Mapping, kind_key: &str, ns: Option<&str>| {
        let Some(target_kind) = get_str(m, kind_key).map(str::to_string) else {
            return;
        };
        if let Some(Value::String(name)) = m.get_mut("name")
            && let Some(new) = lookup(&target_kind, name, ns)
        {
            *name = new;
        }
    };
    match kind {
        "RoleBinding" | "ClusterRoleBinding" => {
            if let Some(Value::Mapping(r)) = doc.get_mut("roleRef") {
                rename(r, "kind", ns);
            }
        }
        "HorizontalPodAutoscaler" => {
            if let Some(Value::Mapping(spec)) = doc.get_mut("spec")
                && let Some(Value::Mapping(t)) = spec.get_mut("scaleTargetRef")
            {
                rename(t, "kind", ns);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_and_rewrite_like_kustomize() {
        assert_eq!(split_image("nginx"), ("nginx", None, None));
        assert_eq!(split_image("nginx:1.2"), ("nginx", Some("1.2"), None));
        assert_eq!(
            split_image("reg:5000/a/b:v@sha256:x"),
            ("reg:5000/a/b", Some("v"), Some("sha256:x"))
        );
        assert_eq!(split_image("reg:5000/a/b"), ("reg:5000/a/b", None, None));
        let img = |n: Option<&str>, t: Option<&str>, d: Option<&str>| Image {
            name: "app".into(),
            new_name: n.map(Into::into),
            new_tag: t.map(Into::into),
            digest: d.map(Into::into),
            tag_suffix: None,
        };
        assert_eq!(
            rewrite_image("app:1", &img(None, None, Some("sha256:a"))).as_deref(),
            Some("app@sha256:a")
        );
        assert_eq!(
            rewrite_image("app@sha256:a", &img(Some("r/app"), Some("2"), None)).as_deref(),
            Some("r/app:2")
        );
        assert_eq!(
            rewrite_image("app:1", &img(None, Some("2"), Some("sha256:b"))).as_deref(),
            Some("app:2@sha256:b")
        );
        assert_eq!(rewrite_image("apple:1", &img(None, Some("2"), None)), None);
    }
}
