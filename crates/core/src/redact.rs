//! Secret values never leave the process in clear: before any manifest is
//! diffed, logged or reported, Secret `data`/`stringData` — whatever their
//! shape — and the `kubectl.kubernetes.io/last-applied-configuration`
//! annotation (which embeds them) are replaced by a keyed digest. Equal
//! values mask equally, so a changed Secret still shows up as a change; the
//! digest is an HMAC under a per-installation key (the daemon's state dir,
//! [`use_key_file`]) or a per-process random one, so a weak secret cannot
//! be guessed offline from a diff.

use std::sync::OnceLock;
use yaml_serde::{Mapping, Value};

const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The mask key's file in a state dir.
pub const KEY_FILE: &str = "mask.key";

static KEY: OnceLock<[u8; 32]> = OnceLock::new();

fn random_key() -> [u8; 32] {
    use std::io::Read;
    let mut k = [0u8; 32];
    // The kernel's CSPRNG; if it cannot be read, a key from the clock and
    // pid still differs per process (masks then only compare within one).
    if std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut k))
        .is_err()
    {
        use sha2::Digest;
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        k.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes()));
    }
    k
}

/// Masks with the key in `dir/mask.key` (created, owner-only, when
/// missing): equal values mask equally across runs of this installation.
/// Call before anything is masked; a later call cannot change the key.
pub fn use_key_file(dir: &std::path::Path) -> Result<(), std::io::Error> {
    let path = dir.join(KEY_FILE);
    let key = match std::fs::read(&path) {
        Ok(bytes) if bytes.len() == 32 => {
            let mut k = [0u8; 32];
            k.copy_from_slice(&bytes);
            k
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{}: not a 32-byte mask key; delete it to make a new one",
                    path.display()
                ),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let k = random_key();
            std::fs::create_dir_all(dir)?;
            crate::fsutil::write_atomic(&path, &k, Some(0o600))?;
            k
        }
        Err(e) => return Err(e),
    };
    let _ = KEY.set(key);
    Ok(())
}

/// `<masked hmac:1a2b3c4d5e6f>` for a value.
pub fn mask(value: &[u8]) -> String {
    use hmac::Mac;
    let key = KEY.get_or_init(random_key);
    let hex: String = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(value);
            mac.finalize()
                .into_bytes()
                .iter()
                .take(6)
                .map(|b| format!("{b:02x}"))
                .collect()
        }
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => "000000000000".into(),
    };
    format!("<masked hmac:{hex}>")
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
    for field in ["data", "stringData", "binaryData"] {
        match m.get_mut(field) {
            Some(Value::Mapping(data)) => mask_values(data),
            None | Some(Value::Null) => {}
            // A string, a list, a number: not what a Secret holds, but
            // whatever it is, it is the Secret's content.
            Some(other) => {
                let raw = yaml_serde::to_string(other).unwrap_or_default();
                *other = Value::String(mask(raw.as_bytes()));
            }
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
        // data and stringData of any other shape: masked whole.
        for shape in [
            "data: hunter2",
            "stringData: [hunter2]",
            "data: {p: [hunter2]}",
            "stringData: 1234",
        ] {
            let mut s: Value = yaml_serde::from_str(&format!("kind: Secret\n{shape}\n")).unwrap();
            mask_object(&mut s);
            let text = yaml_serde::to_string(&s).unwrap();
            assert!(
                !text.contains("hunter2") && !text.contains("1234"),
                "{shape}: {text}"
            );
            assert!(text.contains("<masked hmac:"), "{shape}: {text}");
        }
    }

    #[test]
    fn masks_are_keyed_not_a_bare_hash() {
        use sha2::Digest;
        let bare: String = sha2::Sha256::digest(b"hunter2")
            .iter()
            .take(6)
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(
            !mask(b"hunter2").contains(&bare),
            "an offline guess must not match"
        );
        assert_eq!(mask(b"hunter2"), mask(b"hunter2"), "stable within a key");
        assert_ne!(mask(b"hunter2"), mask(b"hunter3"));
    }
}
