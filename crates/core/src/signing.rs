//! SSH signatures (SSHSIG) for everything the tool signs, and verification
//! against git's `allowed_signers` files.
//!
//! Commits are signed the way `git commit -S` with `gpg.format=ssh` signs
//! them: an armored SSHSIG over the commit buffer, namespace `git`, SHA-512,
//! stored in the `gpgsig` header. Stock `git verify-commit` with an
//! `allowed_signers` file accepts them. Signing and verification are done by
//! the `ssh-key` crate; this module adds key files and the
//! `allowed_signers` parser, which no maintained crate provides (format:
//! ssh-keygen(1), section ALLOWED SIGNERS).

use crate::fsutil;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};
use std::path::{Path, PathBuf};

/// SSHSIG namespace git uses for commit and tag signatures.
pub const GIT_NAMESPACE: &str = "git";

/// Who the tool commits as.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Author and committer name on commits the tool makes.
    pub name: String,
    /// Author and committer email; also the principal in `allowed_signers`.
    pub email: String,
}

impl Default for Identity {
    fn default() -> Self {
        Self {
            name: "platform-capstone".into(),
            email: "platform-capstone@localhost".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error(
        "{path}: cannot read signing key: {source}; create one with `platform-capstone keygen --out {path}`"
    )]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path}: not an OpenSSH private key ({source}); create one with `platform-capstone keygen`"
    )]
    Parse {
        path: String,
        #[source]
        source: ssh_key::Error,
    },
    #[error(
        "{path}: the key is passphrase-protected; the daemon signs unattended, so use an unencrypted key readable only by its user (mode 0600)"
    )]
    Encrypted { path: String },
    #[error(
        "{path}: an {algorithm} key; signing here takes Ed25519 (or ECDSA P-256) OpenSSH keys: create one with `platform-capstone keygen`"
    )]
    Algorithm { path: String, algorithm: String },
    #[error(
        "{path}: refusing to overwrite an existing key; remove it first or choose another --out"
    )]
    Exists { path: String },
    #[error("{path}: cannot write key: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("signing failed: {0}")]
    Sign(#[source] ssh_key::Error),
}

/// A loaded private key plus the identity it signs for.
#[derive(Clone)]
pub struct Signer {
    key: PrivateKey,
    identity: Identity,
    path: PathBuf,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Signer")
            .field("path", &self.path)
            .field("identity", &self.identity)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}

impl Signer {
    /// Loads an unencrypted OpenSSH private key.
    pub fn load(path: &Path, identity: Identity) -> Result<Self, SignError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SignError::Read {
            path: shown.clone(),
            source,
        })?;
        let key = PrivateKey::from_openssh(&text).map_err(|source| SignError::Parse {
            path: shown.clone(),
            source,
        })?;
        if key.is_encrypted() {
            return Err(SignError::Encrypted { path: shown });
        }
        match key.algorithm() {
            Algorithm::Ed25519
            | Algorithm::Ecdsa {
                curve: ssh_key::EcdsaCurve::NistP256,
            } => {}
            other => {
                return Err(SignError::Algorithm {
                    path: shown,
                    algorithm: other.to_string(),
                });
            }
        }
        Ok(Self {
            key,
            identity,
            path: path.to_path_buf(),
        })
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// `SHA256:…` fingerprint, as `ssh-keygen -l` prints it.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// Signs `msg` in `namespace`; returns the armored SSHSIG.
    pub fn sign(&self, namespace: &str, msg: &[u8]) -> Result<String, SignError> {
        let sig = self
            .key
            .sign(namespace, HashAlg::Sha512, msg)
            .map_err(SignError::Sign)?;
        sig.to_pem(LineEnding::LF).map_err(SignError::Sign)
    }

    /// The `allowed_signers` line that trusts this key for git signatures.
    pub fn allowed_signers_line(&self) -> Result<String, SignError> {
        allowed_signers_line(&self.identity.email, GIT_NAMESPACE, self.public_key())
    }
}

/// `<principal> namespaces="<ns>" <key>`: one line of an allowed_signers file.
pub fn allowed_signers_line(
    principal: &str,
    namespace: &str,
    key: &PublicKey,
) -> Result<String, SignError> {
    let key = key.to_openssh().map_err(SignError::Sign)?;
    Ok(format!("{principal} namespaces=\"{namespace}\" {key}"))
}

/// Generates an Ed25519 key pair: private key at `path` (mode 0600),
/// public key at `path.pub`. Never overwrites either file.
pub fn generate_key(path: &Path, comment: &str) -> Result<PublicKey, SignError> {
    let shown = path.display().to_string();
    let pub_path = PathBuf::from(format!("{shown}.pub"));
    for p in [path, pub_path.as_path()] {
        if p.exists() {
            return Err(SignError::Exists {
                path: p.display().to_string(),
            });
        }
    }
    let mut key = PrivateKey::random(&mut ssh_key::rand_core::OsRng, Algorithm::Ed25519)
        .map_err(SignError::Sign)?;
    key.set_comment(comment);
    let private = key.to_openssh(LineEnding::LF).map_err(SignError::Sign)?;
    let public = key.public_key().to_openssh().map_err(SignError::Sign)?;
    let write = |p: &Path, bytes: &[u8], mode| {
        fsutil::write_new(p, bytes, Some(mode)).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                SignError::Exists {
                    path: p.display().to_string(),
                }
            } else {
                SignError::Write {
                    path: p.display().to_string(),
                    source,
                }
            }
        })
    };
    write(path, private.as_bytes(), 0o600)?;
    write(&pub_path, format!("{public}\n").as_bytes(), 0o644)?;
    Ok(key.public_key().clone())
}

/// One problem in an allowed_signers file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignersProblem {
    pub line: usize,
    pub message: String,
}

/// A parsed `allowed_signers` file.
#[derive(Debug, Clone, Default)]
pub struct AllowedSigners {
    entries: Vec<SignerEntry>,
}

#[derive(Debug, Clone)]
struct SignerEntry {
    principals: String,
    namespaces: Option<Vec<String>>,
    valid_after: Option<i64>,
    valid_before: Option<i64>,
    key: PublicKey,
}

/// A signature that verified, and whose key it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub principal: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("malformed signature: {0}")]
    Malformed(String),
    #[error("signed by {fingerprint}, a key not in allowed_signers")]
    UnknownKey { fingerprint: String },
    #[error("key {fingerprint} ({principal}) is not allowed to sign in namespace {namespace:?}")]
    NamespaceNotAllowed {
        fingerprint: String,
        principal: String,
        namespace: String,
    },
    #[error("key {fingerprint} ({principal}) is outside its valid-after/valid-before window")]
    Expired {
        fingerprint: String,
        principal: String,
    },
    #[error("signature by {fingerprint} does not match the signed content (tampered?)")]
    BadSignature { fingerprint: String },
}

impl AllowedSigners {
    /// Parses the file; every bad line is reported, not only the first.
    pub fn parse(text: &str) -> Result<Self, Vec<SignersProblem>> {
        let mut entries = Vec::new();
        let mut problems = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_entry(line) {
                Ok(e) => entries.push(e),
                Err(message) => problems.push(SignersProblem {
                    line: i + 1,
                    message,
                }),
            }
        }
        if problems.is_empty() {
            Ok(Self { entries })
        } else {
            Err(problems)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// One key, for `principal`, in every namespace.
    pub fn of_key(principal: &str, key: &PublicKey) -> Self {
        Self {
            entries: vec![SignerEntry {
                principals: principal.to_string(),
                namespaces: None,
                valid_after: None,
                valid_before: None,
                key: key.clone(),
            }],
        }
    }

    /// Whether `key` is listed (in any namespace).
    pub fn lists(&self, key: &PublicKey) -> bool {
        self.entries
            .iter()
            .any(|e| e.key.key_data() == key.key_data())
    }

    /// These signers and `other`'s.
    pub fn with(mut self, other: &AllowedSigners) -> Self {
        self.entries.extend(other.entries.iter().cloned());
        self
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Verifies an armored SSHSIG over `msg` in `namespace`. `at` (Unix
    /// seconds) is checked against valid-after/valid-before when given.
    pub fn verify(
        &self,
        namespace: &str,
        msg: &[u8],
        armored: &str,
        at: Option<i64>,
    ) -> Result<Verified, VerifyError> {
        let sig = SshSig::from_pem(armored.trim().as_bytes())
            .map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let fingerprint = sig.public_key().fingerprint(HashAlg::Sha256).to_string();
        let mut matching = self
            .entries
            .iter()
            .filter(|e| e.key.key_data() == sig.public_key())
            .peekable();
        if matching.peek().is_none() {
            return Err(VerifyError::UnknownKey { fingerprint });
        }
        let mut last = None;
        for entry in matching {
            if let Some(ns) = &entry.namespaces
                && !ns.iter().any(|n| n == namespace)
            {
                last = Some(VerifyError::NamespaceNotAllowed {
                    fingerprint: fingerprint.clone(),
                    principal: entry.principals.clone(),
                    namespace: namespace.to_string(),
                });
                continue;
            }
            if let Some(t) = at
                && (entry.valid_after.is_some_and(|a| t < a)
                    || entry.valid_before.is_some_and(|b| t > b))
            {
                last = Some(VerifyError::Expired {
                    fingerprint: fingerprint.clone(),
                    principal: entry.principals.clone(),
                });
                continue;
            }
            return match entry.key.verify(namespace, msg, &sig) {
                Ok(()) => Ok(Verified {
                    principal: entry.principals.clone(),
                    fingerprint,
                }),
                Err(_) => Err(VerifyError::BadSignature { fingerprint }),
            };
        }
        Err(last.unwrap_or(VerifyError::UnknownKey { fingerprint }))
    }
}

/// Splits `s` at characters for which `is_sep` holds, outside double
/// quotes (quotes are kept); empty pieces are dropped.
fn split_unquoted(s: &str, is_sep: impl Fn(char) -> bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for ch in s.chars() {
        if ch == '"' {
            quoted = !quoted;
        }
        if is_sep(ch) && !quoted {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(ch);
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn is_key_type(t: &str) -> bool {
    t.starts_with("ssh-") || t.starts_with("ecdsa-sha2-") || t.starts_with("sk-")
}

fn parse_entry(line: &str) -> Result<SignerEntry, String> {
    let toks = split_unquoted(line, char::is_whitespace);
    let principals = toks
        .first()
        .ok_or("empty entry")?
        .trim_matches('"')
        .to_string();
    let mut i = 1;
    let mut namespaces = None;
    let mut valid_after = None;
    let mut valid_before = None;
    if toks.get(i).is_some_and(|t| !is_key_type(t)) {
        for opt in split_unquoted(&toks[i], |c| c == ',') {
            let (name, value) = match opt.split_once('=') {
                Some((n, v)) => (
                    n.to_ascii_lowercase(),
                    Some(v.trim_matches('"').to_string()),
                ),
                None => (opt.to_ascii_lowercase(), None),
            };
            match (name.as_str(), value) {
                ("namespaces", Some(v)) => {
                    namespaces = Some(v.split(',').map(|s| s.trim().to_string()).collect())
                }
                ("valid-after", Some(v)) => valid_after = Some(parse_ssh_time(&v)?),
                ("valid-before", Some(v)) => valid_before = Some(parse_ssh_time(&v)?),
                ("cert-authority", None) => {
                    return Err("cert-authority entries are not supported; list the signing keys themselves".into());
                }
                (other, _) => return Err(format!("unknown option {other:?}")),
            }
        }
        i += 1;
    }
    let kind = toks
        .get(i)
        .ok_or("missing key type and key (expected e.g. `ssh-ed25519 AAAA…`)")?;
    let b64 = toks
        .get(i + 1)
        .ok_or("missing base64 key after the key type")?;
    let key = PublicKey::from_openssh(&format!("{kind} {b64}"))
        .map_err(|e| format!("invalid {kind} key: {e}"))?;
    Ok(SignerEntry {
        principals,
        namespaces,
        valid_after,
        valid_before,
        key,
    })
}

/// `YYYYMMDD[HHMM[SS]]`, UTC when suffixed with `Z` (and, here, always).
fn parse_ssh_time(v: &str) -> Result<i64, String> {
    let digits = v.trim_end_matches(['Z', 'z']);
    let fmt = match digits.len() {
        8 => format!("{digits}000000"),
        12 => format!("{digits}00"),
        14 => digits.to_string(),
        _ => return Err(format!("invalid time {v:?}: expected YYYYMMDD[HHMM[SS]]")),
    };
    chrono::NaiveDateTime::parse_from_str(&fmt, "%Y%m%d%H%M%S")
        .map(|t| t.and_utc().timestamp())
        .map_err(|_| format!("invalid time {v:?}: expected YYYYMMDD[HHMM[SS]]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(dir: &Path, name: &str) -> Signer {
        let p = dir.join(name);
        generate_key(&p, "test").unwrap();
        Signer::load(&p, Identity::default()).unwrap()
    }

    #[test]
    fn keys_of_other_algorithms_are_named_for_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let rsa = dir.path().join("rsa");
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "1024", "-N", "", "-f"])
            .arg(&rsa)
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            let err = Signer::load(&rsa, Identity::default())
                .err()
                .unwrap()
                .to_string();
            assert!(
                err.contains("an ssh-rsa key") && err.contains("Ed25519"),
                "{err}"
            );
        }
        let p384 = "-----BEGIN PRIVATE KEY-----\nMIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDBNjh9qGdB3h52cmvQ3\nXXsYZ5Ql1dTgdNuB6V3a8TDd3O5o+a7t/5AY95+fFNAdEEihZANiAASe9vaUGqeU\nE2l+d0P6y5xZaoW7JBhV1tUSDsI6iC6jtmsyTfaEMcGxEU7NpAU+NAy9UXRzYz14\nOSG8XLW1Kv8bQvrr+7Ppp8xP85LcsvIdD1+WIOrwh8mz2RNrdTxsCaE=\n-----END PRIVATE KEY-----\n";
        let err = crate::gates::cosign::load_signing_key(p384).unwrap_err();
        assert!(err.starts_with("an ECDSA P-384 key"), "{err}");
    }

    #[test]
    fn sign_then_verify_and_tamper() {
        let d = tempfile::tempdir().unwrap();
        let s = signer(d.path(), "k");
        let signers = AllowedSigners::parse(&s.allowed_signers_line().unwrap()).unwrap();
        let sig = s.sign(GIT_NAMESPACE, b"hello").unwrap();
        let v = signers.verify(GIT_NAMESPACE, b"hello", &sig, None).unwrap();
        assert_eq!(v.principal, "platform-capstone@localhost");
        assert_eq!(v.fingerprint, s.fingerprint());
        assert!(matches!(
            signers.verify(GIT_NAMESPACE, b"hellO", &sig, None),
            Err(VerifyError::BadSignature { .. })
        ));
        assert!(matches!(
            signers.verify("other", b"hello", &sig, None),
            Err(VerifyError::NamespaceNotAllowed { .. })
        ));
        let other = signer(d.path(), "k2");
        let sig2 = other.sign(GIT_NAMESPACE, b"hello").unwrap();
        assert!(matches!(
            signers.verify(GIT_NAMESPACE, b"hello", &sig2, None),
            Err(VerifyError::UnknownKey { .. })
        ));
    }

    #[test]
    fn generate_refuses_overwrite_and_sets_mode() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        generate_key(&p, "c").unwrap();
        assert!(matches!(
            generate_key(&p, "c"),
            Err(SignError::Exists { .. })
        ));
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn allowed_signers_problems_are_all_reported_with_lines() {
        let text = "# comment\n\
                    a@x cert-authority ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGtest\n\
                    b@x\n\
                    c@x bogus=1 ssh-ed25519 AAAA\n";
        let problems = AllowedSigners::parse(text).unwrap_err();
        let lines: Vec<usize> = problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, vec![2, 3, 4]);
    }

    #[test]
    fn validity_window_is_enforced() {
        let d = tempfile::tempdir().unwrap();
        let s = signer(d.path(), "k");
        let key = s.public_key().to_openssh().unwrap();
        let text = format!("p@x valid-after=\"20260101\",valid-before=\"20261231\" {key}");
        let signers = AllowedSigners::parse(&text).unwrap();
        let sig = s.sign("git", b"m").unwrap();
        let inside = parse_ssh_time("20260601").unwrap();
        let after = parse_ssh_time("20270101").unwrap();
        assert!(signers.verify("git", b"m", &sig, Some(inside)).is_ok());
        assert!(matches!(
            signers.verify("git", b"m", &sig, Some(after)),
            Err(VerifyError::Expired { .. })
        ));
    }
}
