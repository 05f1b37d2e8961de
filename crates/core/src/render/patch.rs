//! Patches: strategic merge (schema-lite: merge keys of the built-in kinds
//! apps use) and JSON6902 (RFC 6902 over the YAML document).
//!
//! Written by hand: the Rust JSON-patch crates work on `serde_json`
//! values and none implements Kubernetes' strategic merge; the merge-key
//! table below is the part of the OpenAPI schema kustomize consults.

use yaml_serde::{Mapping, Value};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PatchError {
    #[error("op {index} ({op}) at {path}: {reason}")]
    Op {
        index: usize,
        op: String,
        path: String,
        reason: String,
    },
    #[error("op {index}: {reason}")]
    Malformed { index: usize, reason: String },
    #[error("directive {0} is not supported; rewrite the patch without it")]
    UnsupportedDirective(String),
}

/// The merge key of a list field, for lists of objects.
fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let has = |k: &str| {
        items
            .iter()
            .any(|i| i.as_mapping().is_some_and(|m| m.contains_key(k)))
    };
    match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => Some("name"),
        "ports" if has("containerPort") => Some("containerPort"),
        "ports" => Some("port"),
        "volumeMounts" => Some("mountPath"),
        "volumeDevices" => Some("devicePath"),
        "hostAliases" => Some("ip"),
        "topologySpreadConstraints" => Some("topologyKey"),
        "readinessGates" => Some("conditionType"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

fn directive(m: &Mapping) -> Option<&str> {
    m.get("$patch").and_then(Value::as_str)
}

/// What a strategic merge does to the object as a whole.
pub enum SmpOutcome {
    Patched,
    /// The patch said `$patch: delete` at the top: remove the object.
    Deleted,
}

/// Applies a strategic-merge patch to `target` in place.
pub fn strategic_merge(target: &mut Mapping, patch: &Mapping) -> Result<SmpOutcome, PatchError> {
    if directive(patch) == Some("delete") {
        return Ok(SmpOutcome::Deleted);
    }
    merge_map(target, patch)?;
    Ok(SmpOutcome::Patched)
}

fn merge_map(target: &mut Mapping, patch: &Mapping) -> Result<(), PatchError> {
    if directive(patch) == Some("replace") {
        *target = strip_directives(patch);
        return Ok(());
    }
    for (k, pv) in patch {
        let Some(key) = k.as_str() else {
            target.insert(k.clone(), pv.clone());
            continue;
        };
        if key == "$patch" || key.starts_with("$setElementOrder/") {
            continue;
        }
        if key.starts_with('$') {
            return Err(PatchError::UnsupportedDirective(key.to_string()));
        }
        if pv.is_null() {
            target.remove(key);
            continue;
        }
        match (target.get_mut(key), pv) {
            (Some(Value::Mapping(tm)), Value::Mapping(pm)) => {
                if directive(pm) == Some("delete") {
                    target.remove(key);
                } else {
                    merge_map(tm, pm)?;
                }
            }
            (Some(Value::Sequence(ts)), Value::Sequence(ps)) => merge_list(key, ts, ps)?,
            (_, Value::Mapping(pm)) if directive(pm) == Some("delete") => {
                target.remove(key);
            }
            (_, pv) => {
                target.insert(k.clone(), strip_value(pv));
            }
        }
    }
    Ok(())
}

fn merge_list(field: &str, target: &mut Vec<Value>, patch: &[Value]) -> Result<(), PatchError> {
    // A `{$patch: replace}` element replaces the whole list.
    if patch.iter().any(|p| {
        p.as_mapping()
            .is_some_and(|m| directive(m) == Some("replace") && m.len() == 1)
    }) {
        *target = patch
            .iter()
            .filter(|p| {
                !p.as_mapping()
                    .is_some_and(|m| directive(m) == Some("replace") && m.len() == 1)
            })
            .map(strip_value)
            .collect();
        return Ok(());
    }
    let all: Vec<Value> = target.iter().chain(patch.iter()).cloned().collect();
    let Some(key) = merge_key(field, &all) else {
        *target = patch.iter().map(strip_value).collect();
        return Ok(());
    };
    // kustomize (kyaml's associative-list merge) emits the patch's items
    // first, in patch order, merged into their originals; then the
    // originals the patch did not name, in their order.
    let key_of = |v: &Value| v.as_mapping().and_then(|m| m.get(key)).cloned();
    let mut remaining: Vec<Option<Value>> = std::mem::take(target).into_iter().map(Some).collect();
    let mut merged = Vec::with_capacity(remaining.len() + patch.len());
    for p in patch {
        let Some(pm) = p.as_mapping() else {
            merged.push(p.clone());
            continue;
        };
        let pk = key_of(p);
        let pos = pk.as_ref().and_then(|pk| {
            remaining
                .iter()
                .position(|t| t.as_ref().and_then(key_of).as_ref() == Some(pk))
        });
        let original = pos.and_then(|i| remaining[i].take());
        if directive(pm) == Some("delete") {
            continue;
        }
        match original {
            Some(Value::Mapping(mut tm)) => {
                merge_map(&mut tm, pm)?;
                merged.push(Value::Mapping(tm));
            }
            _ => merged.push(strip_value(p)),
        }
    }
    merged.extend(remaining.into_iter().flatten());
    *target = merged;
    Ok(())
}

fn strip_directives(m: &Mapping) -> Mapping {
    m.iter()
        .filter(|(k, _)| {
            !k.as_str()
                .is_some_and(|k| k == "$patch" || k.starts_with("$setElementOrder/"))
        })
        .map(|(k, v)| (k.clone(), strip_value(v)))
        .collect()
}

fn strip_value(v: &Value) -> Value {
    match v {
        Value::Mapping(m) => Value::Mapping(strip_directives(m)),
        Value::Sequence(s) => Value::Sequence(s.iter().map(strip_value).collect()),
        other => other.clone(),
    }
}

/// Applies RFC 6902 operations (already parsed from YAML or JSON).
pub fn json6902(doc: &mut Value, ops: &[Value]) -> Result<(), PatchError> {
    for (index, op) in ops.iter().enumerate() {
        let m = op.as_mapping().ok_or(PatchError::Malformed {
            index,
            reason: "an operation must be a mapping with op and path".into(),
        })?;
        let field = |name: &str| -> Result<String, PatchError> {
            m.get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or(PatchError::Malformed {
                    index,
                    reason: format!("missing {name}"),
                })
        };
        let name = field("op")?;
        let path = field("path")?;
        let fail = |reason: String| PatchError::Op {
            index,
            op: name.clone(),
            path: path.clone(),
            reason,
        };
        let value = || {
            m.get("value")
                .cloned()
                .ok_or_else(|| fail("missing value".into()))
        };
        match name.as_str() {
            "add" => add(doc, &path, value()?).map_err(fail)?,
            "remove" => {
                remove(doc, &path).map_err(fail)?;
            }
            "replace" => {
                let v = value()?;
                let slot = pointer_mut(doc, &path).map_err(fail)?;
                *slot = v;
            }
            "move" => {
                let from = field("from")?;
                let v = remove(doc, &from).map_err(fail)?;
                add(doc, &path, v).map_err(fail)?;
            }
            "copy" => {
                let from = field("from")?;
                let v = pointer_mut(doc, &from).map_err(fail)?.clone();
                add(doc, &path, v).map_err(fail)?;
            }
            "test" => {
                let v = value()?;
                let cur = pointer_mut(doc, &path).map_err(fail)?;
                if *cur != v {
                    return Err(fail("test failed: the value differs".into()));
                }
            }
            other => {
                return Err(PatchError::Malformed {
                    index,
                    reason: format!(
                        "unknown op {other:?} (use add, remove, replace, move, copy or test)"
                    ),
                });
            }
        }
    }
    Ok(())
}

fn tokens(path: &str) -> Result<Vec<String>, String> {
    if path.is_empty() {
        return Ok(vec![]);
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| "a JSON pointer starts with '/'".to_string())?;
    Ok(rest
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect())
}

fn index(len: usize, token: &str, allow_end: bool) -> Result<usize, String> {
    if allow_end && token == "-" {
        return Ok(len);
    }
    let i: usize = token
        .parse()
        .map_err(|_| format!("{token:?} is not an array index"))?;
    let max = if allow_end {
        len
    } else {
        len.saturating_sub(1)
    };
    if i > max || (!allow_end && len == 0) {
        return Err(format!("index {i} is out of range (length {len})"));
    }
    Ok(i)
}

fn pointer_mut<'a>(doc: &'a mut Value, path: &str) -> Result<&'a mut Value, String> {
    let mut cur = doc;
    for t in tokens(path)? {
        cur = match cur {
            Value::Mapping(m) => m
                .get_mut(t.as_str())
                .ok_or_else(|| format!("no field {t:?}"))?,
            Value::Sequence(s) => {
                let i = index(s.len(), &t, false)?;
                &mut s[i]
            }
            _ => return Err(format!("{t:?} is below a scalar")),
        };
    }
    Ok(cur)
}

fn parent<'a>(doc: &'a mut Value, path: &str) -> Result<(&'a mut Value, String), String> {
    let mut toks = tokens(path)?;
    let last = toks
        .pop()
        .ok_or_else(|| "cannot operate on the whole document".to_string())?;
    let mut p = String::new();
    for t in toks {
        p.push('/');
        p.push_str(&t.replace('~', "~0").replace('/', "~1"));
    }
    Ok((pointer_mut(doc, &p)?, last))
}

fn add(doc: &mut Value, path: &str, v: Value) -> Result<(), String> {
    let (parent, last) = parent(doc, path)?;
    match parent {
        Value::Mapping(m) => {
            m.insert(Value::String(last), v);
        }
        Value::Sequence(s) => {
            let i = index(s.len(), &last, true)?;
            s.insert(i, v);
        }
        _ => return Err("the parent is a scalar".into()),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = parent(doc, path)?;
    match parent {
        Value::Mapping(m) => m
            .remove(last.as_str())
            .ok_or_else(|| format!("no field {last:?}")),
        Value::Sequence(s) => {
            let i = index(s.len(), &last, false)?;
            Ok(s.remove(i))
        }
        _ => Err("the parent is a scalar".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        yaml_serde::from_str(s).unwrap()
    }

    #[test]
    fn smp_merges_containers_by_name_and_deletes() {
        let mut t = y(
            "spec:\n  containers:\n  - name: a\n    image: x\n  - name: b\n    image: y\n  dnsPolicy: ClusterFirst\n",
        );
        let p = y(
            "spec:\n  containers:\n  - name: b\n    image: z\n  - name: a\n    $patch: delete\n  - name: c\n    image: w\n  dnsPolicy: null\n",
        );
        let (Value::Mapping(tm), Value::Mapping(pm)) = (&mut t, &p) else {
            panic!()
        };
        strategic_merge(tm, pm).unwrap();
        assert_eq!(
            t,
            y("spec:\n  containers:\n  - name: b\n    image: z\n  - name: c\n    image: w\n")
        );
    }

    #[test]
    fn json6902_ops() {
        let mut d = y("a:\n  b: [1, 2]\n  c: x\n");
        let ops = y(
            "- {op: add, path: /a/b/-, value: 3}\n- {op: add, path: /a/b/0, value: 0}\n- {op: replace, path: /a/c, value: y}\n- {op: copy, from: /a/c, path: /a/d}\n- {op: move, from: /a/d, path: /e}\n- {op: remove, path: /a/b/1}\n- {op: test, path: /e, value: y}\n- {op: add, path: /a~1b, value: 1}\n",
        );
        json6902(&mut d, ops.as_sequence().unwrap()).unwrap();
        assert_eq!(d, y("a:\n  b: [0, 2, 3]\n  c: y\ne: y\na/b: 1\n"));
        let bad = y("- {op: test, path: /e, value: z}\n");
        assert!(matches!(
            json6902(&mut d, bad.as_sequence().unwrap()),
            Err(PatchError::Op { .. })
        ));
        let bad = y("- {op: remove, path: /nope}\n");
        assert!(json6902(&mut d, bad.as_sequence().unwrap()).is_err());
    }
}
