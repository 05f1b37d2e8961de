//! `kustomization.yaml`: the supported subset, parsed strictly. A field
//! outside the subset is an error naming it — never silently ignored,
//! because an ignored `vars:` or `helmCharts:` renders something other
//! than what the author meant.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Fields we render. Anything else in a kustomization is refused.
pub const SUPPORTED_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "resources",
    "components",
    "patches",
    "images",
    "namespace",
    "namePrefix",
    "nameSuffix",
    "labels",
    "commonLabels",
    "commonAnnotations",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
    "replicas",
    "configurations",
    "replacements",
    "transformers",
    "vars",
    "sortOptions",
    // Deprecated aliases, converted as kustomize converts them
    // (`Kustomization::fix`).
    "bases",
    "patchesStrategicMerge",
    "patchesJson6902",
    "imageTags",
];

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Kustomization {
    pub api_version: Option<String>,
    pub kind: Option<String>,
    pub metadata: Option<yaml_serde::Value>,
    #[serde(default)]
    pub resources: Vec<String>,
    /// Directories of `kind: Component` kustomizations.
    #[serde(default)]
    pub components: Vec<String>,
    #[serde(default)]
    pub patches: Vec<Patch>,
    #[serde(default)]
    pub images: Vec<Image>,
    pub namespace: Option<String>,
    pub name_prefix: Option<String>,
    pub name_suffix: Option<String>,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(default)]
    pub common_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub common_annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub config_map_generator: Vec<Generator>,
    #[serde(default)]
    pub secret_generator: Vec<Generator>,
    pub generator_options: Option<GeneratorOptions>,
    #[serde(default)]
    pub replicas: Vec<Replica>,
    /// `$(NAME)` variables (`super::vars`), resolved once at the top.
    #[serde(default)]
    pub vars: Vec<super::vars::Var>,
    /// Built-in transformer configurations (files or inline), run after
    /// the fields' own transformers (`super::plugins`).
    #[serde(default)]
    pub transformers: Vec<String>,
    /// Run last, after images (`super::replace`).
    #[serde(default)]
    pub replacements: Vec<super::replace::Replacement>,
    /// Transformer configuration files (`nameReference`, `varReference`).
    #[serde(default)]
    pub configurations: Vec<String>,
    #[serde(default)]
    pub bases: Vec<String>,
    /// Each a path (when such a file exists) or an inline patch.
    #[serde(default)]
    pub patches_strategic_merge: Vec<String>,
    #[serde(default, rename = "patchesJson6902")]
    pub patches_json6902: Vec<Patch>,
    #[serde(default)]
    pub image_tags: Vec<Image>,
    /// Output order; only the top kustomization's counts, as in kustomize.
    pub sort_options: Option<SortOptions>,
}

/// `sortOptions`: `legacy` (kustomize's default: a fixed rank of kinds,
/// then group/version/kind, namespace and name; `legacySortOptions` give
/// the ranked kinds) or `fifo` (the order resources were accumulated).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct SortOptions {
    #[serde(default)]
    pub order: String,
    pub legacy_sort_options: Option<LegacySortOptions>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct LegacySortOptions {
    #[serde(default)]
    pub order_first: Vec<String>,
    #[serde(default)]
    pub order_last: Vec<String>,
}

/// kustomize's default legacy ranking: these kinds first, in this order…
pub const ORDER_FIRST: &[&str] = &[
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
];
/// …and these last.
pub const ORDER_LAST: &[&str] = &[
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// How the output is ordered.
#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    Fifo,
    Legacy {
        first: Vec<String>,
        last: Vec<String>,
    },
}

impl SortOptions {
    /// The order these options ask for, or kustomize's own error.
    pub fn order(&self) -> Result<Order, String> {
        match (self.order.as_str(), &self.legacy_sort_options) {
            ("fifo", None) => Ok(Order::Fifo),
            ("fifo", Some(_)) => Err(
                "sortOptions.legacySortOptions is set but sortOptions.order is fifo, not legacy; drop one".into(),
            ),
            ("legacy", Some(l)) => Ok(Order::Legacy {
                first: l.order_first.clone(),
                last: l.order_last.clone(),
            }),
            ("legacy", None) => Ok(Order::default()),
            (other, _) => Err(format!(
                "sortOptions.order {other:?} must be one of [fifo, legacy]"
            )),
        }
    }
}

impl Default for Order {
    fn default() -> Self {
        Order::Legacy {
            first: ORDER_FIRST.iter().map(|s| s.to_string()).collect(),
            last: ORDER_LAST.iter().map(|s| s.to_string()).collect(),
        }
    }
}

impl Kustomization {
    /// The deprecated aliases folded into their successors, in kustomize's
    /// order: `bases` after `resources`, `imageTags` after `images`,
    /// generators' `env` after their `envs`, `patchesJson6902` and then
    /// `patchesStrategicMerge` after `patches` (an entry naming a file that
    /// exists, per `is_file`, is a path; otherwise an inline patch).
    pub fn fix(&mut self, is_file: &dyn Fn(&str) -> bool) {
        self.resources.append(&mut self.bases);
        self.images.append(&mut self.image_tags);
        for g in self
            .config_map_generator
            .iter_mut()
            .chain(self.secret_generator.iter_mut())
        {
            if let Some(env) = g.env.take() {
                g.envs.push(env);
            }
        }
        self.patches.append(&mut self.patches_json6902);
        for p in std::mem::take(&mut self.patches_strategic_merge) {
            let (path, patch) = if is_file(&p) {
                (Some(p), None)
            } else {
                (None, Some(p))
            };
            self.patches.push(Patch {
                path,
                patch,
                target: None,
                options: None,
            });
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Patch {
    pub path: Option<String>,
    pub patch: Option<String>,
    pub target: Option<Target>,
    pub options: Option<PatchOptions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PatchOptions {
    #[serde(default)]
    pub allow_name_change: bool,
    #[serde(default)]
    pub allow_kind_change: bool,
}

/// A patch target selector; `name`, `namespace` and `kind` are anchored regexes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Target {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub annotation_selector: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Image {
    pub name: String,
    pub new_name: Option<String>,
    pub new_tag: Option<String>,
    pub digest: Option<String>,
    /// Refused (`check_image`): kustomize v5.5.0 appends it twice to a
    /// Deployment's containers; matching that would deploy a tag nobody meant.
    pub tag_suffix: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Label {
    #[serde(default)]
    pub pairs: BTreeMap<String, String>,
    #[serde(default)]
    pub include_selectors: bool,
    #[serde(default)]
    pub include_templates: bool,
    /// Further field specs the pairs go to (beside `metadata/labels` and
    /// what `includeSelectors` / `includeTemplates` add).
    #[serde(default)]
    pub fields: Vec<FieldSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Generator {
    pub name: String,
    pub namespace: Option<String>,
    pub behavior: Option<String>,
    #[serde(default)]
    pub literals: Vec<String>,
    #[serde(default)]
    pub files: Vec<String>,
    #[serde(default)]
    pub envs: Vec<String>,
    /// Deprecated single `env` (kustomize appends it to `envs`).
    pub env: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub options: Option<GeneratorOptions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GeneratorOptions {
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    pub disable_name_suffix_hash: Option<bool>,
    pub immutable: Option<bool>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Replica {
    pub name: String,
    pub count: i64,
}

/// Why a field kustomize knows is refused, where there is more to say
/// than "unsupported".
fn refusal_reason(field: &str) -> Option<&'static str> {
    Some(match field {
        "helmCharts" | "helmGlobals" | "helmChartInflationGenerator" => {
            "kustomize inflates charts only with --enable-helm, by running the helm binary; platform-capstone runs no program the tree names: commit the output of `helm template` and list it under resources"
        }
        "openapi" | "crds" => {
            "a schema that changes how patches merge lists of custom types; patch those lists with a JSON6902 patch (or write the whole list) instead"
        }
        "buildMetadata" => {
            "it writes kustomize's build provenance into the objects (origin and transformer annotations, app.kubernetes.io/managed-by: kustomize-vX); platform-capstone records provenance in git and its audit trail instead"
        }
        "generators" | "validators" => {
            "generator and validator plugins run code; list what they produce under resources"
        }
        _ => return None,
    })
}

/// The top-level fields of a kustomization outside [`SUPPORTED_FIELDS`].
pub fn unsupported_names(doc: &yaml_serde::Value) -> Vec<String> {
    doc.as_mapping()
        .into_iter()
        .flat_map(|m| m.keys())
        .filter_map(yaml_serde::Value::as_str)
        .filter(|k| !SUPPORTED_FIELDS.contains(k))
        .map(str::to_string)
        .collect()
}

/// One message for every unsupported field of every kustomization file of
/// a tree (`(file, fields)`), so one edit fixes them all: the fields, the
/// reason where there is more to say than "unsupported", what to do.
pub fn describe_unsupported(found: &[(String, Vec<String>)]) -> String {
    let quote = |fields: &[String]| {
        fields
            .iter()
            .map(|k| format!("`{k}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let all: Vec<&String> = found.iter().flat_map(|(_, f)| f).collect();
    let mut reasons: Vec<String> = Vec::new();
    for f in &all {
        if let Some(r) = refusal_reason(f)
            && !reasons.iter().any(|x| x.ends_with(r))
        {
            reasons.push(format!("{f}: {r}"));
        }
    }
    let why = if reasons.is_empty() {
        String::new()
    } else {
        format!(" ({})", reasons.join("; "))
    };
    let supported = SUPPORTED_FIELDS.join(", ");
    match found {
        [(file, fields)] => {
            let subject = match fields.len() {
                1 => format!("field {} is", quote(fields)),
                _ => format!("fields {} are", quote(fields)),
            };
            let it = if fields.len() == 1 { "it" } else { "them" };
            format!(
                "{file}: {subject} not supported by platform-capstone's renderer{why}; drop {it} (supported: {supported})"
            )
        }
        _ => {
            let each: Vec<String> = found
                .iter()
                .map(|(file, fields)| format!("{file}: {}", quote(fields)))
                .collect();
            format!(
                "{} kustomization files use fields platform-capstone's renderer does not support: {}{why}; drop them (supported: {supported})",
                found.len(),
                each.join("; ")
            )
        }
    }
}

/// An `images` entry we can render as kustomize does, or why not.
pub fn check_image(img: &Image) -> Result<(), String> {
    if img.tag_suffix.is_some() {
        return Err(format!(
            "images ({}): tagSuffix is not supported — kustomize v5.5.0 appends it twice to a Deployment's containers (app:1.4 → app:1.4-x-x); write newTag with the full tag instead",
            img.name
        ));
    }
    Ok(())
}

/// A transformer configuration file listed under `configurations`: the
/// sections we apply. Any other section (custom `commonLabels`, `images`,
/// `namespace`… field specs) is refused by name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TransformerConfig {
    #[serde(default)]
    pub name_reference: Vec<NameReference>,
    /// More fields where `$(VAR)` expands (`super::vars`).
    #[serde(default)]
    pub var_reference: Vec<FieldSpec>,
}

/// Objects of `kind` (and `group`/`version`) are referred to by name at
/// each field spec: renaming one updates them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NameReference {
    pub kind: String,
    pub group: Option<String>,
    pub version: Option<String>,
    #[serde(default)]
    pub field_specs: Vec<FieldSpec>,
}

/// A field in objects of a kind: `path` is `/`-separated, sequences on
/// the way are traversed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FieldSpec {
    pub kind: Option<String>,
    pub group: Option<String>,
    pub version: Option<String>,
    pub path: String,
    #[serde(default)]
    pub create: bool,
}
