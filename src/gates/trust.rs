//! `policies/trust.toml`: which signatures count. Keyed entries name a PEM
//! public key under `policies/`; keyless entries (Fulcio issuer + subject)
//! are parsed but refused until keyless verification lands, so a policy
//! that relies on them fails closed instead of silently passing.

use super::GateError;
use super::signature::TrustedKey;
use crate::source::TreeReader;
use serde::Deserialize;

pub const TRUST_FILE: &str = "policies/trust.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    #[serde(default)]
    keys: Vec<RawKey>,
    #[serde(default)]
    keyless: Vec<toml::Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    /// Shown in findings and audit records.
    name: String,
    /// PEM public key, relative to `policies/`.
    path: String,
}

/// Loads the trusted keys. Every problem is reported in one error.
pub fn load(tree: &dyn TreeReader) -> Result<Vec<TrustedKey>, GateError> {
    let err = |message: String| GateError::Config {
        file: TRUST_FILE.into(),
        message,
    };
    let text = tree.read_string(TRUST_FILE)?;
    let raw: RawTrust = toml::from_str(&text).map_err(|e| err(e.message().trim().to_string()))?;
    let mut problems = Vec::new();
    if !raw.keyless.is_empty() {
        problems.push(
            "keyless: keyless (Fulcio/Rekor) verification is not supported yet; use [[keys]]"
                .to_string(),
        );
    }
    let mut keys = Vec::new();
    for (i, k) in raw.keys.iter().enumerate() {
        let path = format!("policies/{}", k.path);
        match tree.read_string(&path) {
            Ok(pem) => match TrustedKey::from_pem(&k.name, &pem) {
                Ok(key) => keys.push(key),
                Err(e) => problems.push(format!("keys[{i}].path: {path}: {e}")),
            },
            Err(e) => problems.push(format!("keys[{i}].path: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(err(problems.join("; ")));
    }
    Ok(keys)
}
