//! One rendered object plus the identity history kustomize keeps for it:
//! every (name, namespace) it has had, so patches written against a base
//! name and references to a renamed ConfigMap still find it.

use yaml_serde::{Mapping, Value};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Id {
    pub name: String,
    pub namespace: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Object {
    pub doc: Mapping,
    /// Identity history, oldest first; the last entry is current.
    pub ids: Vec<Id>,
    /// A generated ConfigMap/Secret that gets the content-hash suffix at the end.
    pub hash_suffix: bool,
}

pub fn get<'a>(m: &'a Mapping, key: &str) -> Option<&'a Value> {
    m.get(key)
}

pub fn get_str<'a>(m: &'a Mapping, key: &str) -> Option<&'a str> {
    m.get(key).and_then(Value::as_str)
}

/// The mapping at `key`, created when missing (or replaced when not a mapping).
pub fn child_map<'a>(m: &'a mut Mapping, key: &str) -> &'a mut Mapping {
    let k = Value::String(key.to_string());
    if !matches!(m.get(&k), Some(Value::Mapping(_))) {
        m.insert(k.clone(), Value::Mapping(Mapping::new()));
    }
    match m.get_mut(&k) {
        Some(Value::Mapping(c)) => c,
        _ => unreachable!("inserted above"),
    }
}

impl Object {
    pub fn new(doc: Mapping) -> Self {
        let name = doc
            .get("metadata")
            .and_then(Value::as_mapping)
            .and_then(|m| get_str(m, "name"))
            .unwrap_or("")
            .to_string();
        let namespace = doc
            .get("metadata")
            .and_then(Value::as_mapping)
            .and_then(|m| get_str(m, "namespace"))
            .map(str::to_string);
        Self {
            doc,
            ids: vec![Id { name, namespace }],
            hash_suffix: false,
        }
    }

    pub fn api_version(&self) -> &str {
        get_str(&self.doc, "apiVersion").unwrap_or("")
    }

    pub fn kind(&self) -> &str {
        get_str(&self.doc, "kind").unwrap_or("")
    }

    /// API group ("" for the core group).
    pub fn group(&self) -> &str {
        match self.api_version().rsplit_once('/') {
            Some((g, _)) => g,
            None => "",
        }
    }

    pub fn version(&self) -> &str {
        match self.api_version().rsplit_once('/') {
            Some((_, v)) => v,
            None => self.api_version(),
        }
    }

    pub fn metadata(&self) -> Option<&Mapping> {
        self.doc.get("metadata").and_then(Value::as_mapping)
    }

    pub fn metadata_mut(&mut self) -> &mut Mapping {
        child_map(&mut self.doc, "metadata")
    }

    pub fn name(&self) -> &str {
        self.metadata()
            .and_then(|m| get_str(m, "name"))
            .unwrap_or("")
    }

    pub fn namespace(&self) -> Option<&str> {
        self.metadata().and_then(|m| get_str(m, "namespace"))
    }

    pub fn set_name(&mut self, name: &str) {
        self.metadata_mut()
            .insert("name".into(), Value::String(name.to_string()));
        self.record_id();
    }

    pub fn set_namespace(&mut self, ns: &str) {
        self.metadata_mut()
            .insert("namespace".into(), Value::String(ns.to_string()));
        self.record_id();
    }

    /// Edits the document as a [`Value`] (for path walkers and patches).
    pub fn edit<T>(&mut self, f: impl FnOnce(&mut Value) -> T) -> T {
        let mut doc = Value::Mapping(std::mem::take(&mut self.doc));
        let out = f(&mut doc);
        if let Value::Mapping(m) = doc {
            self.doc = m;
        }
        out
    }

    /// Appends the current identity to the history when it changed.
    pub fn record_id(&mut self) {
        let id = Id {
            name: self.name().to_string(),
            namespace: self.namespace().map(str::to_string),
        };
        if self.ids.last() != Some(&id) {
            self.ids.push(id);
        }
    }

    /// Whether the object ever had this name.
    pub fn had_name(&self, name: &str) -> bool {
        self.ids.iter().any(|i| i.name == name)
    }

    pub fn labels(&self) -> Option<&Mapping> {
        self.metadata()
            .and_then(|m| m.get("labels"))
            .and_then(Value::as_mapping)
    }

    pub fn annotations(&self) -> Option<&Mapping> {
        self.metadata()
            .and_then(|m| m.get("annotations"))
            .and_then(Value::as_mapping)
    }

    /// `kind/name` (with namespace when set), for messages.
    pub fn describe(&self) -> String {
        match self.namespace() {
            Some(ns) => format!("{}/{} in {ns}", self.kind(), self.name()),
            None => format!("{}/{}", self.kind(), self.name()),
        }
    }
}

/// Kinds that live outside namespaces: the namespace transformer skips them.
pub fn is_cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace"
            | "ClusterRole"
            | "ClusterRoleBinding"
            | "CustomResourceDefinition"
            | "PersistentVolume"
            | "StorageClass"
            | "PriorityClass"
            | "IngressClass"
            | "RuntimeClass"
            | "ValidatingWebhookConfiguration"
            | "MutatingWebhookConfiguration"
            | "ValidatingAdmissionPolicy"
            | "ValidatingAdmissionPolicyBinding"
            | "APIService"
            | "CSIDriver"
            | "CSINode"
            | "VolumeAttachment"
            | "PodSecurityPolicy"
            | "ComponentStatus"
            | "Node"
            | "CertificateSigningRequest"
            | "FlowSchema"
            | "PriorityLevelConfiguration"
    )
}
