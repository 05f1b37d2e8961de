//! `policies/trust.toml`: which signatures count. Keyed entries name a PEM
//! public key under `policies/`; keyless entries name the identity (OIDC
//! issuer + subject, each exact or a regex) a certificate must carry and,
//! for legacy `.sig` signatures, a Fulcio root bundle and a Rekor public
//! key. Sigstore bundles are verified against `policies/trusted_root.json`
//! when the repo has one, else the public-good root. Every problem in the
//! files is reported at once, with its field.

use super::GateError;
use super::bundle::{self, TRUSTED_ROOT_FILE};
use super::keyless::{self, KeylessTrust, Matcher, RekorKey};
use super::signature::TrustedKey;
use crate::source::TreeReader;
use serde::Deserialize;
use sigstore_verify::trust_root::TrustedRoot;

pub const TRUST_FILE: &str = "policies/trust.toml";

/// Everything `trust.toml` trusts.
#[derive(Debug, Clone, Default)]
pub struct TrustPolicy {
    pub keys: Vec<TrustedKey>,
    pub keyless: Vec<KeylessTrust>,
    /// `policies/trusted_root.json` when the repo has one; `None`: the
    /// Sigstore public-good production root.
    pub sigstore_root: Option<std::sync::Arc<TrustedRoot>>,
}

impl TrustPolicy {
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty() && self.keyless.is_empty()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrust {
    #[serde(default)]
    keys: Vec<RawKey>,
    #[serde(default)]
    keyless: Vec<RawKeyless>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKey {
    /// Shown in findings and audit records.
    name: String,
    /// PEM public key, relative to `policies/`.
    path: String,
    /// Refuse a Sigstore bundle signed with this key unless it carries a
    /// verified transparency-log entry (entries present are always
    /// verified; legacy `.sig` signatures carry none).
    #[serde(default)]
    require_tlog: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKeyless {
    name: String,
    /// PEM bundle of trusted Fulcio certificates, relative to `policies/`,
    /// for legacy `.sig` signatures; bundles use the trusted root.
    fulcio_roots: Option<String>,
    /// PEM Rekor public key, relative to `policies/`.
    rekor_key: Option<String>,
    /// Refuse signatures without a verified Rekor entry (default true).
    #[serde(default = "yes")]
    require_tlog: bool,
    issuer: Option<String>,
    issuer_regex: Option<String>,
    subject: Option<String>,
    subject_regex: Option<String>,
}

fn yes() -> bool {
    true
}

fn matcher(field: &str, exact: &Option<String>, regex: &Option<String>) -> Result<Matcher, String> {
    match (exact, regex) {
        (Some(s), None) => Ok(Matcher::Exact(s.clone())),
        (None, Some(r)) => Matcher::regex(r).map_err(|e| format!("{field}_regex: {e}")),
        (Some(_), Some(_)) => Err(format!("{field} and {field}_regex are both set; keep one")),
        (None, None) => Err(format!(
            "{field} (or {field}_regex) is required: an identity must be pinned"
        )),
    }
}

fn load_keyless(
    tree: &dyn TreeReader,
    i: usize,
    k: &RawKeyless,
    problems: &mut Vec<String>,
) -> Option<KeylessTrust> {
    let at = |field: &str, m: String| format!("keyless[{i}].{field}: {m}");
    let mut ok = true;
    let mut fail = |m: String| {
        problems.push(m);
        ok = false;
    };
    // Without fulcio_roots the entry judges Sigstore bundles only, against
    // the trusted root (which carries the Fulcio CAs and the logs' keys).
    let roots = match &k.fulcio_roots {
        None => Vec::new(),
        Some(file) => {
            let roots_path = format!("policies/{file}");
            match tree.read_string(&roots_path) {
                Ok(pem) => keyless::parse_certificates(&pem).unwrap_or_else(|e| {
                    fail(at("fulcio_roots", format!("{roots_path}: {e}")));
                    Vec::new()
                }),
                Err(e) => {
                    fail(at("fulcio_roots", e.to_string()));
                    Vec::new()
                }
            }
        }
    };
    let rekor = match &k.rekor_key {
        None => {
            if k.require_tlog && k.fulcio_roots.is_some() {
                fail(at(
                    "rekor_key",
                    "required while require_tlog = true (the default)".into(),
                ));
            }
            None
        }
        Some(p) => {
            let path = format!("policies/{p}");
            match tree.read_string(&path).map_err(|e| e.to_string()) {
                Ok(pem) => RekorKey::from_pem(&pem)
                    .map_err(|e| fail(at("rekor_key", format!("{path}: {e}"))))
                    .ok(),
                Err(e) => {
                    fail(at("rekor_key", e));
                    None
                }
            }
        }
    };
    let issuer = matcher("issuer", &k.issuer, &k.issuer_regex)
        .map_err(|e| fail(format!("keyless[{i}].{e}")))
        .ok();
    let subject = matcher("subject", &k.subject, &k.subject_regex)
        .map_err(|e| fail(format!("keyless[{i}].{e}")))
        .ok();
    let (Some(issuer), Some(subject), true) = (issuer, subject, ok) else {
        return None;
    };
    Some(KeylessTrust {
        name: k.name.clone(),
        roots,
        rekor,
        issuer,
        subject,
        require_tlog: k.require_tlog,
    })
}

/// Loads the trust policy. Every problem is reported in one error.
pub fn load(tree: &dyn TreeReader) -> Result<TrustPolicy, GateError> {
    let err = |message: String| GateError::Config {
        file: TRUST_FILE.into(),
        message,
    };
    let text = tree.read_string(TRUST_FILE)?;
    let raw: RawTrust = toml::from_str(&text).map_err(|e| err(e.message().trim().to_string()))?;
    let mut problems = Vec::new();
    let mut policy = TrustPolicy::default();
    for (i, k) in raw.keys.iter().enumerate() {
        let path = format!("policies/{}", k.path);
        match tree.read_string(&path) {
            Ok(pem) => match TrustedKey::from_pem(&k.name, &pem) {
                Ok(mut key) => {
                    key.require_tlog = k.require_tlog;
                    policy.keys.push(key)
                }
                Err(e) => problems.push(format!("keys[{i}].path: {path}: {e}")),
            },
            Err(e) => problems.push(format!("keys[{i}].path: {e}")),
        }
    }
    for (i, k) in raw.keyless.iter().enumerate() {
        if let Some(entry) = load_keyless(tree, i, k, &mut problems) {
            policy.keyless.push(entry);
        }
    }
    match tree.exists(TRUSTED_ROOT_FILE) {
        Ok(false) => {}
        Ok(true) => match tree.read_string(TRUSTED_ROOT_FILE) {
            Ok(json) => match bundle::trusted_root(Some(&json)) {
                Ok(root) => policy.sigstore_root = Some(std::sync::Arc::new(root)),
                Err(e) => problems.push(format!("{TRUSTED_ROOT_FILE}: {e}")),
            },
            Err(e) => problems.push(format!("{TRUSTED_ROOT_FILE}: {e}")),
        },
        Err(e) => problems.push(format!("{TRUSTED_ROOT_FILE}: {e}")),
    }
    if !problems.is_empty() {
        return Err(err(problems.join("; ")));
    }
    Ok(policy)
}
