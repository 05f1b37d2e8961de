//! `replacements`: copy a field of one object into fields of others, as
//! kustomize's ReplacementTransformer does (the last transformer of a
//! kustomization, after images).
//!
//! Field paths are kustomize's: dot-separated, a leading dot allowed,
//! `[key=value]` picks list items by a field, a number picks an item by
//! index, `*` every item, and `[a.b/c]` is a key holding dots.

use super::kustomization::Target;
use super::object::Object;
use super::select::Selector;
use serde::Deserialize;
use yaml_serde::{Mapping, Value};

/// One entry of `replacements`: inline, or `path:` to a file of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Replacement {
    pub path: Option<String>,
    pub source: Option<Source>,
    #[serde(default)]
    pub targets: Vec<TargetSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Source {
    pub group: Option<String>,
    pub version: Option<String>,
    pub kind: Option<String>,
    pub name: Option<String>,
    pub namespace: Option<String>,
    pub field_path: Option<String>,
    pub options: Option<FieldOptions>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct TargetSpec {
    pub select: Target,
    #[serde(default)]
    pub reject: Vec<Target>,
    #[serde(default)]
    pub field_paths: Vec<String>,
    pub options: Option<FieldOptions>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct FieldOptions {
    #[serde(default)]
    pub delimiter: String,
    #[serde(default)]
    pub index: i64,
    #[serde(default)]
    pub create: bool,
    /// kustomize's `encoding` (base64): not supported, refused by name.
    pub encoding: Option<String>,
}

const DEFAULT_FIELD_PATH: &str = "metadata.name";

/// One step of a field path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
    Match(String, String),
    All,
}

fn parse_path(path: &str) -> Result<Vec<Step>, String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => {
                depth += 1;
                cur.push(c);
            }
            ']' => {
                depth -= 1;
                cur.push(c);
            }
            '.' if depth == 0 => parts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    parts.push(cur);
    if depth != 0 {
        return Err(format!("field path {path:?}: unbalanced brackets"));
    }
    let bracket = |inner: &str| match inner.split_once('=') {
        Some((k, v)) => Step::Match(k.to_string(), v.to_string()),
        None => match inner.parse::<usize>() {
            Ok(i) => Step::Index(i),
            Err(_) => Step::Key(inner.to_string()),
        },
    };
    let mut steps = Vec::new();
    for (i, p) in parts.into_iter().enumerate() {
        if p.is_empty() {
            if i == 0 {
                continue;
            }
            return Err(format!("field path {path:?}: an empty element"));
        }
        if let Some(inner) = p.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            steps.push(bracket(inner));
        } else if let Some((key, inner)) = p.strip_suffix(']').and_then(|r| r.split_once('[')) {
            // `ports[0]`, `containers[name=app]`: a key, then an item.
            steps.push(Step::Key(key.to_string()));
            steps.push(bracket(inner));
        } else if p == "*" {
            steps.push(Step::All);
        } else {
            steps.push(match p.parse::<usize>() {
                Ok(i) => Step::Index(i),
                Err(_) => Step::Key(p),
            });
        }
    }
    if steps.is_empty() {
        return Err(format!("field path {path:?} is empty"));
    }
    Ok(steps)
}

/// The node at a kustomize field path in `v`, if any.
pub fn lookup_path<'a>(v: &'a Value, path: &str) -> Result<Option<&'a Value>, String> {
    Ok(lookup(v, &parse_path(path)?))
}

/// The node at `steps` (the first when `*` or a match picks several).
fn lookup<'a>(v: &'a Value, steps: &[Step]) -> Option<&'a Value> {
    let Some((step, rest)) = steps.split_first() else {
        return Some(v);
    };
    match (step, v) {
        (Step::Key(k), Value::Mapping(m)) => lookup(m.get(k.as_str())?, rest),
        (Step::Index(i), Value::Sequence(s)) => lookup(s.get(*i)?, rest),
        (Step::Match(k, want), Value::Sequence(s)) => s
            .iter()
            .find(|item| scalar_text(item.get(k.as_str())) == Some(want.clone()))
            .and_then(|item| lookup(item, rest)),
        (Step::All, Value::Sequence(s)) => s.iter().find_map(|item| lookup(item, rest)),
        _ => None,
    }
}

fn scalar_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Calls `f` on every node at `steps`; with `create`, missing map keys are
/// made (as mappings on the way, an empty string at the end).
fn for_each_mut(
    v: &mut Value,
    steps: &[Step],
    create: bool,
    f: &mut dyn FnMut(&mut Value) -> Result<(), String>,
) -> Result<(), String> {
    let Some((step, rest)) = steps.split_first() else {
        return f(v);
    };
    match (step, v) {
        (Step::Key(k), Value::Mapping(m)) => {
            let key = Value::String(k.clone());
            if !m.contains_key(&key) {
                if !create {
                    return Ok(());
                }
                let fresh = if rest.is_empty() {
                    Value::String(String::new())
                } else {
                    Value::Mapping(Mapping::new())
                };
                m.insert(key.clone(), fresh);
            }
            match m.get_mut(&key) {
                Some(child) => {
                    if child.is_null() && create && !rest.is_empty() {
                        *child = Value::Mapping(Mapping::new());
                    }
                    for_each_mut(child, rest, create, f)
                }
                None => Ok(()),
            }
        }
        (Step::Index(i), Value::Sequence(s)) => match s.get_mut(*i) {
            Some(child) => for_each_mut(child, rest, create, f),
            None => Ok(()),
        },
        (Step::Match(k, want), Value::Sequence(s)) => {
            for item in s.iter_mut() {
                if scalar_text(item.get(k.as_str())) == Some(want.clone()) {
                    for_each_mut(item, rest, create, f)?;
                }
            }
            Ok(())
        }
        (Step::All, Value::Sequence(s)) => {
            for item in s.iter_mut() {
                for_each_mut(item, rest, create, f)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The source object's value (a delimited part of it with `options`).
fn source_value(objects: &[Object], s: &Source) -> Result<Value, String> {
    let selector = Selector::new(&Target {
        group: s.group.clone(),
        version: s.version.clone(),
        kind: s.kind.clone(),
        name: s.name.clone(),
        namespace: s.namespace.clone(),
        ..Target::default()
    })?;
    let found: Vec<&Object> = objects.iter().filter(|o| selector.matches(o)).collect();
    let o = match found.as_slice() {
        [o] => *o,
        [] => return Err(format!("source {}: no object matches", describe(s))),
        many => {
            return Err(format!(
                "source {}: {} objects match; name exactly one",
                describe(s),
                many.len()
            ));
        }
    };
    let path = s.field_path.as_deref().unwrap_or(DEFAULT_FIELD_PATH);
    let doc = Value::Mapping(o.doc.clone());
    let v = lookup(&doc, &parse_path(path)?)
        .cloned()
        .ok_or_else(|| format!("source {}: {} has no {path}", describe(s), o.describe()))?;
    match &s.options {
        Some(opts) if !opts.delimiter.is_empty() => {
            let text = scalar_text(Some(&v)).ok_or_else(|| {
                format!("source {}: delimiter needs a scalar at {path}", describe(s))
            })?;
            let parts: Vec<&str> = text.split(opts.delimiter.as_str()).collect();
            let part = usize::try_from(opts.index)
                .ok()
                .and_then(|i| parts.get(i))
                .ok_or_else(|| {
                    format!(
                        "source {}: index {} is outside the {} parts of {path}",
                        describe(s),
                        opts.index,
                        parts.len()
                    )
                })?;
            Ok(Value::String((*part).to_string()))
        }
        _ => Ok(v),
    }
}

fn describe(s: &Source) -> String {
    format!(
        "{}/{}",
        s.kind.as_deref().unwrap_or("*"),
        s.name.as_deref().unwrap_or("*")
    )
}

/// kustomize's setFieldValue: with a delimiter, one part of the target's
/// text is replaced (a negative index prepends, past the end appends); a
/// scalar target keeps its type where the new text allows it.
fn set_value(target: &mut Value, value: &Value, opts: &FieldOptions) -> Result<(), String> {
    let mut value = value.clone();
    if !opts.delimiter.is_empty() {
        let current = match &*target {
            Value::Null => String::new(),
            other => scalar_text(Some(other))
                .ok_or("the delimiter option needs a scalar target".to_string())?,
        };
        let v = scalar_text(Some(&value)).ok_or("the delimiter option needs a scalar source")?;
        let mut parts: Vec<String> = current
            .split(opts.delimiter.as_str())
            .map(str::to_string)
            .collect();
        match usize::try_from(opts.index) {
            Err(_) => parts.insert(0, v),
            Ok(i) if i >= parts.len() => parts.push(v),
            Ok(i) => parts[i] = v,
        }
        value = Value::String(parts.join(&opts.delimiter));
    }
    *target = match (&*target, &value) {
        (Value::Number(_), Value::String(s)) => s
            .parse::<i64>()
            .map(|n| Value::Number(n.into()))
            .unwrap_or(value.clone()),
        (Value::String(_), Value::Number(_) | Value::Bool(_)) => {
            Value::String(scalar_text(Some(&value)).unwrap_or_default())
        }
        _ => value,
    };
    Ok(())
}

/// Applies `replacements` (entries from files already read) in order.
pub fn apply(objects: &mut [Object], replacements: &[Replacement]) -> Result<(), String> {
    for (i, r) in replacements.iter().enumerate() {
        let at = |e: String| format!("replacements[{i}]: {e}");
        let source = r
            .source
            .as_ref()
            .ok_or_else(|| at("needs a source".into()))?;
        for o in [&source.options]
            .into_iter()
            .chain(r.targets.iter().map(|t| &t.options))
            .flatten()
        {
            if o.encoding.is_some() {
                return Err(at("options.encoding is not supported".into()));
            }
        }
        let value = source_value(objects, source).map_err(at)?;
        for (t_i, t) in r.targets.iter().enumerate() {
            let select = Selector::new(&t.select).map_err(at)?;
            let rejects = t
                .reject
                .iter()
                .map(Selector::new)
                .collect::<Result<Vec<_>, _>>()
                .map_err(at)?;
            let opts = t.options.clone().unwrap_or_default();
            let paths: Vec<Vec<Step>> = if t.field_paths.is_empty() {
                vec![parse_path(DEFAULT_FIELD_PATH).map_err(at)?]
            } else {
                t.field_paths
                    .iter()
                    .map(|p| parse_path(p))
                    .collect::<Result<_, _>>()
                    .map_err(at)?
            };
            for o in objects
                .iter_mut()
                .filter(|o| select.matches(o) && !rejects.iter().any(|r| r.matches(o)))
            {
                let described = o.describe();
                o.edit(|doc| {
                    for steps in &paths {
                        for_each_mut(doc, steps, opts.create, &mut |node| {
                            set_value(node, &value, &opts)
                        })?;
                    }
                    Ok::<(), String>(())
                })
                .map_err(|e| at(format!("targets[{t_i}] {described}: {e}")))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_parse_as_kustomize_writes_them() {
        assert_eq!(
            parse_path(".metadata.annotations.[cert-manager.io/inject-ca-from]").unwrap(),
            vec![
                Step::Key("metadata".into()),
                Step::Key("annotations".into()),
                Step::Key("cert-manager.io/inject-ca-from".into())
            ]
        );
        assert_eq!(
            parse_path("spec.containers.[name=app].image").unwrap(),
            vec![
                Step::Key("spec".into()),
                Step::Key("containers".into()),
                Step::Match("name".into(), "app".into()),
                Step::Key("image".into())
            ]
        );
        assert_eq!(parse_path("spec.dnsNames.0").unwrap()[2], Step::Index(0));
        assert_eq!(
            parse_path("spec.ports[0].port").unwrap(),
            vec![
                Step::Key("spec".into()),
                Step::Key("ports".into()),
                Step::Index(0),
                Step::Key("port".into())
            ]
        );
        assert!(parse_path("a.[b").is_err());
    }

    #[test]
    fn delimited_parts_are_replaced_prepended_or_appended() {
        let opts = |index| FieldOptions {
            delimiter: ".".into(),
            index,
            ..FieldOptions::default()
        };
        let mut t = Value::String("SERVICE.NS.svc".into());
        set_value(&mut t, &Value::String("web".into()), &opts(0)).unwrap();
        assert_eq!(t, Value::String("web.NS.svc".into()));
        let mut t = Value::String(String::new());
        set_value(&mut t, &Value::String("ns".into()), &opts(0)).unwrap();
        set_value(&mut t, &Value::String("cert".into()), &opts(1)).unwrap();
        assert_eq!(t, Value::String("ns.cert".into()));
        set_value(&mut t, &Value::String("x".into()), &opts(-1)).unwrap();
        assert_eq!(t, Value::String("x.ns.cert".into()));
    }
}
