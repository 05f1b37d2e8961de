//! configMapGenerator / secretGenerator, and the content-hash name suffix
//! exactly as kustomize v5 computes it: SHA-256 over Go's `json.Marshal`
//! of `{data[, binaryData], kind, name}` (Secrets: `{data[, stringData],
//! kind, name, type}`), sorted keys, HTML-escaped like Go; the first 10 hex
//! digits with 0→g, 1→h, 3→k, a→m, e→t (kubectl's "no bad words" encoding).
//!
//! `name` is always the empty string: kustomize's hasher looks the name up
//! with `yaml.Lookup("metadata/name")`, which treats the path as one field
//! name and finds nothing (api/hasher/hasher.go). Verified against
//! `kubectl kustomize` in the golden suite; copying the quirk is what keeps
//! our suffixes identical.

use super::kustomization::{Generator, GeneratorOptions};
use super::object::{Object, get_str};
use base64::Engine;
use std::collections::BTreeMap;
use yaml_serde::{Mapping, Value};

/// Where a generator's inputs come from: reads relative to the kustomization dir.
pub trait Files {
    fn read(&self, path: &str) -> Result<Vec<u8>, String>;
}

/// Builds the object a generator entry describes.
pub fn generate(
    kind: &str,
    g: &Generator,
    global: Option<&GeneratorOptions>,
    files: &dyn Files,
) -> Result<Object, String> {
    // Errors name the source and position of a bad entry, never its
    // content: a Secret's value (or a key that swallowed it) would land in
    // `validate`, the daemon's log and the API.
    let secret = kind == "Secret";
    let mut data: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut put = |k: String, v: Vec<u8>, source: &str| -> Result<(), String> {
        if !valid_key(&k) {
            return Err(if secret {
                format!(
                    "{source}: the key is not valid (letters, digits, '-', '_', '.'); not shown, as it may hold the value"
                )
            } else {
                format!("{source}: {k:?} is not a valid key (letters, digits, '-', '_', '.')")
            });
        }
        if data.insert(k.clone(), v).is_some() {
            return Err(format!("{source}: key {k:?} is defined twice"));
        }
        Ok(())
    };
    for env in &g.envs {
        let bytes = files.read(env)?;
        let text = String::from_utf8(bytes).map_err(|_| format!("envs: {env} is not UTF-8"))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // A bare name takes its value from the process environment in
            // kustomize ("" when unset). A render here never reads the
            // environment (it must be reproducible): a ConfigMap's bare
            // name is "" as with kustomize in a clean environment; a
            // Secret's is refused — rendering an empty secret where the
            // author meant an injected one would deploy it silently.
            let (k, v) = match line.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None if secret => {
                    return Err(format!(
                        "envs: {env}:{}: the line has no '=' (kustomize would read it from the environment; a render here never does); write KEY=VALUE",
                        n + 1
                    ));
                }
                None => (line.trim_end().to_string(), String::new()),
            };
            put(k, v.into_bytes(), &format!("envs: {env}:{}", n + 1))?;
        }
    }
    for (i, lit) in g.literals.iter().enumerate() {
        let (k, v) = lit
            .split_once('=')
            .ok_or_else(|| format!("literals[{i}]: has no '='; write KEY=VALUE"))?;
        put(
            k.to_string(),
            unquote(v).as_bytes().to_vec(),
            &format!("literals[{i}]"),
        )?;
    }
    for f in &g.files {
        let (key, path) = match f.split_once('=') {
            Some((k, p)) => (k.to_string(), p.to_string()),
            None => (f.rsplit('/').next().unwrap_or(f).to_string(), f.clone()),
        };
        let bytes = files.read(&path)?;
        put(key, bytes, "files")?;
    }

    let mut opts = global.cloned().unwrap_or_default();
    if let Some(local) = &g.options {
        opts.labels.extend(local.labels.clone());
        opts.annotations.extend(local.annotations.clone());
        // kustomize ORs the flags: a local `false` cannot re-enable a
        // hash the kustomization-wide options disabled.
        if local.disable_name_suffix_hash == Some(true) {
            opts.disable_name_suffix_hash = Some(true);
        }
        if local.immutable.is_some() {
            opts.immutable = local.immutable;
        }
    }

    let mut doc = Mapping::new();
    doc.insert("apiVersion".into(), "v1".into());
    doc.insert("kind".into(), kind.into());
    let mut meta = Mapping::new();
    meta.insert("name".into(), g.name.clone().into());
    if let Some(ns) = &g.namespace {
        meta.insert("namespace".into(), ns.clone().into());
    }
    let to_map = |m: &BTreeMap<String, String>| -> Mapping {
        m.iter()
            .map(|(k, v)| (Value::String(k.clone()), Value::String(v.clone())))
            .collect()
    };
    if !opts.labels.is_empty() {
        meta.insert("labels".into(), Value::Mapping(to_map(&opts.labels)));
    }
    if !opts.annotations.is_empty() {
        meta.insert(
            "annotations".into(),
            Value::Mapping(to_map(&opts.annotations)),
        );
    }
    doc.insert("metadata".into(), Value::Mapping(meta));
    put_data(&mut doc, kind, data);
    if kind == "Secret" {
        doc.insert(
            "type".into(),
            g.kind.clone().unwrap_or_else(|| "Opaque".into()).into(),
        );
    } else if g.kind.is_some() {
        return Err("type: only secretGenerator entries have a type".into());
    }
    if opts.immutable == Some(true) {
        doc.insert("immutable".into(), Value::Bool(true));
    }
    let mut o = Object::new(doc);
    o.hash_suffix = opts.disable_name_suffix_hash != Some(true);
    Ok(o)
}

fn put_data(doc: &mut Mapping, kind: &str, data: BTreeMap<String, Vec<u8>>) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut text = Mapping::new();
    let mut binary = Mapping::new();
    for (k, v) in data {
        if kind == "Secret" {
            text.insert(k.into(), b64.encode(&v).into());
        } else {
            match String::from_utf8(v) {
                Ok(s) => {
                    text.insert(k.into(), s.into());
                }
                Err(e) => {
                    binary.insert(k.into(), wrap_base64(&b64.encode(e.as_bytes())).into());
                }
            }
        }
    }
    // A Secret always has its data map, even empty (a ConfigMap does not).
    if !text.is_empty() || kind == "Secret" {
        doc.insert("data".into(), Value::Mapping(text));
    }
    if !binary.is_empty() {
        doc.insert("binaryData".into(), Value::Mapping(binary));
    }
}

/// kustomize's binaryData encoding: base64 over 70 characters is cut into
/// 70-character lines, each ending in a line break (a literal block).
fn wrap_base64(encoded: &str) -> String {
    const LINE: usize = 70;
    if encoded.len() <= LINE {
        return encoded.to_string();
    }
    let mut out = String::with_capacity(encoded.len() + encoded.len() / LINE + 1);
    for chunk in encoded.as_bytes().chunks(LINE) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out
}

/// Merges (behavior: merge) or replaces (behavior: replace) the data of
/// an existing generated object with a new one's.
pub fn apply_behavior(existing: &mut Object, new: Object, replace: bool) {
    for field in ["data", "binaryData"] {
        match (replace, new.doc.get(field)) {
            (true, Some(v)) => {
                existing.doc.insert(field.into(), v.clone());
            }
            (true, None) => {
                existing.doc.remove(field);
            }
            (false, Some(Value::Mapping(nm))) => {
                let target = super::object::child_map(&mut existing.doc, field);
                for (k, v) in nm {
                    target.insert(k.clone(), v.clone());
                }
            }
            (false, _) => {}
        }
    }
    for field in ["labels", "annotations"] {
        if let Some(Value::Mapping(nm)) = new.metadata().and_then(|m| m.get(field)) {
            let nm = nm.clone();
            let target = super::object::child_map(existing.metadata_mut(), field);
            for (k, v) in nm {
                target.insert(k, v);
            }
        }
    }
    if let Some(t) = new.doc.get("type").filter(|_| existing.kind() == "Secret") {
        existing.doc.insert("type".into(), t.clone());
    }
    existing.hash_suffix = existing.hash_suffix && new.hash_suffix;
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

fn unquote(v: &str) -> &str {
    let b = v.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        &v[1..v.len() - 1]
    } else {
        v
    }
}

/// kustomize's name suffix for a ConfigMap or Secret object.
pub fn content_hash(o: &Object) -> String {
    let map_of = |field: &str| -> BTreeMap<String, String> {
        match o.doc.get(field) {
            Some(Value::Mapping(m)) => m
                .iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), scalar(v))))
                .collect(),
            _ => BTreeMap::new(),
        }
    };
    let mut m = serde_json::Map::new();
    m.insert("kind".into(), o.kind().into());
    m.insert("name".into(), "".into());
    m.insert("data".into(), data_value(o, "data"));
    if o.kind() == "Secret" {
        m.insert("type".into(), get_str(&o.doc, "type").unwrap_or("").into());
        if matches!(o.doc.get("stringData"), Some(Value::Mapping(_))) {
            m.insert(
                "stringData".into(),
                serde_json::to_value(map_of("stringData")).unwrap_or_default(),
            );
        }
    } else {
        let binary = map_of("binaryData");
        if !binary.is_empty() {
            m.insert(
                "binaryData".into(),
                serde_json::to_value(binary).unwrap_or_default(),
            );
        }
    }
    // serde_json's Map is sorted (BTreeMap), like Go's map encoding.
    let json = go_html_escape(&serde_json::Value::Object(m).to_string());
    use sha2::Digest;
    let hex: String = sha2::Sha256::digest(json.as_bytes())
        .iter()
        .take(5)
        .map(|b| format!("{b:02x}"))
        .collect();
    hex.chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// A missing data map hashes as "" (kustomize's getNodeValues), a present one as a map.
fn data_value(o: &Object, field: &str) -> serde_json::Value {
    match o.doc.get(field) {
        Some(Value::Mapping(m)) => serde_json::Value::Object(
            m.iter()
                .filter_map(|(k, v)| {
                    Some((
                        k.as_str()?.to_string(),
                        serde_json::Value::String(scalar(v)),
                    ))
                })
                .collect(),
        ),
        _ => serde_json::Value::String(String::new()),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => yaml_serde::to_string(other).unwrap_or_default(),
    }
}

/// Go's json.Marshal escapes these even inside strings.
fn go_html_escape(s: &str) -> String {
    s.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}
