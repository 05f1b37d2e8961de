//! Secret values never leave the process in clear: before any manifest is
//! diffed, logged or reported, Secret `data`/`stringData` values and the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation (which
//! embeds them) are replaced by a stable digest. Equal values mask equally,
//! so a changed Secret still shows up as a change.

use yaml_serde::{Mapping, Value};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// `<masked sha256:1a2b3c4d5e6f>` for a value.
pub fn mask(value: &[u8]) -> String {
    use sha2::Digest;
    let d = sha2::Sha256::digest(value);
    let hex: String = d.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("<masked sha256:{hex}>")
}

/// Masks one object in place (no-op for non-Secrets, except the annotation).
pub fn mask_object(obj: &mut Value) {
    let Value::Mapping(m) = obj else { return };
    if let Some(Value::Mapping(meta)) = m.get_mut("metadata")
        && let Some(Value::Mapping(ann)) = meta.get_mut("annotations")
        && let Some(v) = ann.get_mut(LAST_APPLIED)
    {
        let raw = v.as_str().unwrap_or_default().as_bytes().to_vec();
        *v = Value::String(mask(&raw));
    }
    if m.get("kind").and_then(Value::as_str) != Some("Secret") {
        return;
    }
    for field in ["data", "stringData"] {
        if let Some(Value::Mapping(data)) = m.get_mut(field) {
            mask_values(data);
        }
    }
}

fn mask_values(data: &mut Mapping) {
    for (_, v) in data.iter_mut() {
        let raw = match &*v {
            Value::String(s) => s.as_bytes().to_vec(),
            other => yaml_serde::to_string(other)
                .unwrap_or_default()
                .into_bytes(),
        };
        *v = Value::String(mask(&raw));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_and_last_applied_are_masked_stably() {
        let mut s: Value = yaml_serde::from_str(
            "kind: Secret\nmetadata:\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"data\":{\"p\":\"aHVudGVyMg==\"}}'\ndata:\n  p: aHVudGVyMg==\nstringData:\n  q: hunter2\n",
        )
        .unwrap();
        mask_object(&mut s);
        let text = yaml_serde::to_string(&s).unwrap();
        assert!(
            !text.contains("hunter2") && !text.contains("aHVudGVyMg"),
            "{text}"
        );
        assert!(text.contains(&mask(b"aHVudGVyMg==")));
        let mut c: Value = yaml_serde::from_str("kind: ConfigMap\ndata:\n  p: visible\n").unwrap();
        mask_object(&mut c);
        assert!(yaml_serde::to_string(&c).unwrap().contains("visible"));
    }
}
