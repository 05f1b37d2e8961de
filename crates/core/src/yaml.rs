//! The one door YAML comes in through, and the one it goes out through.
//!
//! In: bounded by size ([`MAX_YAML_BYTES`]), document count
//! ([`MAX_DOCUMENTS`]), nesting depth and alias expansion (libyaml via
//! `yaml_serde` refuses nesting over 128 levels and "repetition limit
//! exceeded" for alias bombs before expanding them). Every error names
//! the file.
//!
//! Out: keys sorted, sequences not indented under their key, documents
//! separated by `---` — the layout `kubectl kustomize` prints.

use yaml_serde::Value;

/// Largest YAML text accepted, whatever the reader's own limit.
pub const MAX_YAML_BYTES: usize = 8 * 1024 * 1024;
/// Most documents accepted in one file.
pub const MAX_DOCUMENTS: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("{file}: YAML is {size} bytes, over the {limit}-byte limit; split it")]
    TooLarge {
        file: String,
        size: usize,
        limit: usize,
    },
    #[error("{file}: more than {limit} YAML documents; split the file")]
    TooManyDocuments { file: String, limit: usize },
    #[error("{file}: {message}")]
    Parse { file: String, message: String },
}

fn check_size(file: &str, text: &str) -> Result<(), YamlError> {
    if text.len() > MAX_YAML_BYTES {
        return Err(YamlError::TooLarge {
            file: file.to_string(),
            size: text.len(),
            limit: MAX_YAML_BYTES,
        });
    }
    Ok(())
}

fn parse_error(file: &str, e: yaml_serde::Error) -> YamlError {
    let mut message = e.to_string();
    if message.contains("repetition limit") {
        message = format!("{message} (an alias bomb?); expand anchors by hand or remove them");
    } else if message.contains("recursion limit") {
        message = format!("{message}: nesting is too deep");
    }
    YamlError::Parse {
        file: file.to_string(),
        message,
    }
}

/// Deserializes one YAML document.
pub fn from_str<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, YamlError> {
    check_size(file, text)?;
    yaml_serde::from_str(text).map_err(|e| parse_error(file, e))
}

/// Every non-empty document of a multi-document file, its plain scalars
/// resolved as kustomize resolves them (`crate::yaml_go`: `0755` is 493).
pub fn documents(file: &str, text: &str) -> Result<Vec<Value>, YamlError> {
    check_size(file, text)?;
    let mut out = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(text) {
        if out.len() >= MAX_DOCUMENTS {
            return Err(YamlError::TooManyDocuments {
                file: file.to_string(),
                limit: MAX_DOCUMENTS,
            });
        }
        let v = serde::de::DeserializeSeed::deserialize(crate::yaml_go::GoValue { text }, doc)
            .map_err(|e| parse_error(file, e))?;
        if !v.is_null() {
            out.push(v);
        }
    }
    Ok(out)
}

/// Sorts mapping keys recursively (kustomize prints keys sorted).
pub fn sort_keys(v: &mut Value) {
    match v {
        Value::Mapping(m) => {
            let mut entries: Vec<(Value, Value)> = std::mem::take(m).into_iter().collect();
            entries.sort_by_cached_key(|e| key_str(&e.0));
            for (k, mut val) in entries {
                sort_keys(&mut val);
                m.insert(k, val);
            }
        }
        Value::Sequence(s) => s.iter_mut().for_each(sort_keys),
        Value::Tagged(t) => sort_keys(&mut t.value),
        _ => {}
    }
}

fn key_str(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => yaml_serde::to_string(other).unwrap_or_default(),
    }
}

/// Prints documents as `kubectl kustomize` does: sorted keys, go-yaml's
/// quoting and folding, `---` between documents (see `yaml_emit`).
pub fn to_string(docs: &[Value]) -> Result<String, yaml_serde::Error> {
    Ok(crate::yaml_emit::documents(docs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for i in 0..9u8 {
            let prev = (b'a' + i) as char;
            let next = (b'b' + i) as char;
            bomb.push_str(&format!(
                "{next}: &{next} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"
            ));
        }
        let e = documents("bomb.yaml", &bomb).unwrap_err().to_string();
        assert!(
            e.starts_with("bomb.yaml: ") && e.contains("alias bomb"),
            "{e}"
        );
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let e = documents("deep.yaml", &deep).unwrap_err().to_string();
        assert!(e.contains("too deep"), "{e}");
        let many = "a: 1\n---\n".repeat(MAX_DOCUMENTS + 1);
        assert!(matches!(
            documents("many.yaml", &many),
            Err(YamlError::TooManyDocuments { .. })
        ));
    }

    #[test]
    fn output_sorts_keys_and_separates_documents() {
        let docs = documents("x", "b: 1\na:\n  d: [1]\n  c: 2\n---\nz: 0\n").unwrap();
        assert_eq!(
            to_string(&docs).unwrap(),
            "a:\n  c: 2\n  d:\n  - 1\nb: 1\n---\nz: 0\n"
        );
    }
}
