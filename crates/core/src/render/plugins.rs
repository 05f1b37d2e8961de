//! `transformers:`: kustomize's built-in transformers configured by hand
//! (`apiVersion: builtin`), run after a kustomization's own fields. The
//! common kinds are supported; any other kind, and any non-builtin plugin
//! (an exec or container plugin would run code), is refused by name.

use super::kustomization::{FieldSpec, Image, Patch, PatchOptions, Target};
use serde::Deserialize;
use std::collections::BTreeMap;
use yaml_serde::Value;

/// One built-in transformer's configuration.
#[derive(Debug, Clone)]
pub enum Plugin {
    Labels {
        pairs: BTreeMap<String, String>,
        specs: Vec<FieldSpec>,
    },
    Annotations {
        pairs: BTreeMap<String, String>,
        specs: Vec<FieldSpec>,
    },
    PrefixSuffix {
        prefix: String,
        suffix: String,
    },
    Namespace(String),
    Patch(Patch),
    Image(Image),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PairsConfig {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default)]
    field_specs: Vec<FieldSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PrefixSuffixConfig {
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    suffix: String,
    #[serde(default)]
    field_specs: Vec<FieldSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchConfig {
    path: Option<String>,
    patch: Option<String>,
    target: Option<Target>,
    options: Option<PatchOptions>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImageConfig {
    image_tag: Image,
}

const SUPPORTED: &str = "LabelTransformer, AnnotationsTransformer, PrefixSuffixTransformer, PrefixTransformer, SuffixTransformer, NamespaceTransformer, PatchTransformer, ImageTagTransformer";

/// Reads one transformer configuration document.
pub fn parse(doc: Value) -> Result<Plugin, String> {
    let m = doc
        .as_mapping()
        .ok_or("a transformer configuration must be a mapping")?;
    let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let (api, kind) = (text("apiVersion"), text("kind"));
    if api != "builtin" {
        return Err(format!(
            "{kind} ({api}): only built-in transformers (apiVersion: builtin) run here; plugins that execute code are refused"
        ));
    }
    let bad = |e: yaml_serde::Error| format!("{kind}: {e}");
    let no_fields_beyond_name = |specs: &[FieldSpec]| {
        specs
            .iter()
            .all(|fs| fs.path == "metadata/name" && fs.kind.is_none() && fs.group.is_none())
    };
    Ok(match kind.as_str() {
        "LabelTransformer" | "AnnotationsTransformer" => {
            let c: PairsConfig = yaml_serde::from_value(doc.clone()).map_err(bad)?;
            if kind == "LabelTransformer" {
                Plugin::Labels {
                    pairs: c.labels,
                    specs: c.field_specs,
                }
            } else {
                Plugin::Annotations {
                    pairs: c.annotations,
                    specs: c.field_specs,
                }
            }
        }
        "PrefixSuffixTransformer" | "PrefixTransformer" | "SuffixTransformer" => {
            let c: PrefixSuffixConfig = yaml_serde::from_value(doc.clone()).map_err(bad)?;
            if !no_fields_beyond_name(&c.field_specs) {
                return Err(format!(
                    "{kind}: only the fieldSpec metadata/name is supported"
                ));
            }
            Plugin::PrefixSuffix {
                prefix: c.prefix,
                suffix: c.suffix,
            }
        }
        "NamespaceTransformer" => {
            let ns = m
                .get("metadata")
                .and_then(|md| md.get("namespace"))
                .and_then(Value::as_str)
                .ok_or(format!("{kind}: metadata.namespace names the namespace"))?;
            Plugin::Namespace(ns.to_string())
        }
        "PatchTransformer" => {
            let c: PatchConfig = yaml_serde::from_value(doc.clone()).map_err(bad)?;
            Plugin::Patch(Patch {
                path: c.path,
                patch: c.patch,
                target: c.target,
                options: c.options,
            })
        }
        "ImageTagTransformer" => {
            let c: ImageConfig = yaml_serde::from_value(doc.clone()).map_err(bad)?;
            Plugin::Image(c.image_tag)
        }
        other => {
            return Err(format!(
                "built-in transformer {other:?} is not supported (supported: {SUPPORTED})"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(text: &str) -> Value {
        yaml_serde::from_str(text).expect("yaml")
    }

    #[test]
    fn builtin_configs_parse_and_anything_else_is_refused_by_name() {
        let p = parse(doc(
            "apiVersion: builtin\nkind: LabelTransformer\nmetadata: {name: x}\nlabels: {a: b}\nfieldSpecs: [{path: metadata/labels, create: true}]\n",
        ))
        .expect("label transformer");
        assert!(
            matches!(p, Plugin::Labels { ref pairs, ref specs } if pairs["a"] == "b" && specs[0].create)
        );
        let e = parse(doc("apiVersion: someteam.example.com/v1\nkind: Exec\n")).unwrap_err();
        assert!(e.contains("only built-in transformers"), "{e}");
        let e = parse(doc(
            "apiVersion: builtin\nkind: HelmChartInflationGenerator\n",
        ))
        .unwrap_err();
        assert!(e.contains("is not supported (supported: "), "{e}");
    }
}
