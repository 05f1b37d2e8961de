//! Registry credentials, found where docker, podman and cosign find them:
//! the first of `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`
//! (podman), `$DOCKER_CONFIG/config.json`, `~/.docker/config.json` that
//! exists, and in it, for a registry host: `credHelpers[host]` (runs
//! `docker-credential-<helper> get`), else `auths[host]` (`auth` =
//! base64 `user:password`, or `username` + `password`, or an
//! `identitytoken`), else `credsStore` (a helper for every host), else
//! anonymous.
//!
//! Hand-written: no maintained crate reads docker's config and speaks the
//! credential-helper protocol (`docker_credential` does the first half and
//! is unmaintained); it is a JSON file and one child process. Secrets
//! never appear in errors or logs: an error names the file, the host and
//! the field, never the value; a helper's stderr is cut to its first line.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long a credential helper may take.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(10);

/// What a registry is reached with.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    Anonymous,
    Basic {
        username: String,
        password: String,
    },
    /// An OAuth2 refresh/identity token (`identitytoken`, or a helper's
    /// `<token>` user): sent as a bearer token.
    Token(String),
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Anonymous => write!(f, "Anonymous"),
            Credential::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credential::Token(_) => write!(f, "Token(***)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    #[error("credential helper docker-credential-{helper} for {host}: {message}")]
    Helper {
        helper: String,
        host: String,
        message: String,
    },
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default)]
    cred_helpers: BTreeMap<String, String>,
    creds_store: Option<String>,
}

#[derive(Debug, Default, serde::Deserialize)]
struct AuthEntry {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    identitytoken: Option<String>,
}

/// Where credentials are looked up.
#[derive(Debug, Clone, Default)]
pub struct Keychain {
    /// The config file read (the first of the candidates that exists).
    file: Option<PathBuf>,
    /// Directories searched for `docker-credential-*` before `$PATH`
    /// (tests put a helper there).
    helper_path: Option<std::ffi::OsString>,
}

impl Keychain {
    /// The keychain docker/podman/cosign would use in this environment.
    pub fn from_env() -> Self {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let candidates = [
            var("REGISTRY_AUTH_FILE"),
            var("XDG_RUNTIME_DIR").map(|d| d.join("containers/auth.json")),
            var("DOCKER_CONFIG").map(|d| d.join("config.json")),
            var("HOME").map(|h| h.join(".docker/config.json")),
        ];
        Self {
            file: candidates.into_iter().flatten().find(|p| p.is_file()),
            helper_path: None,
        }
    }

    /// A keychain reading exactly `file` (and helpers from `$PATH`).
    pub fn from_file(file: &Path) -> Self {
        Self {
            file: Some(file.to_path_buf()),
            helper_path: None,
        }
    }

    /// The config file in use, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// The credential for `registry` (`host[:port]`, as in an image
    /// reference; docker.io's aliases are one registry).
    pub fn resolve(&self, registry: &str) -> Result<Credential, AuthError> {
        let Some(file) = &self.file else {
            return Ok(Credential::Anonymous);
        };
        let shown = file.display().to_string();
        let config_err = |message: String| AuthError::Config {
            file: shown.clone(),
            message,
        };
        let meta = std::fs::metadata(file).map_err(|e| config_err(e.to_string()))?;
        if meta.len() > 1024 * 1024 {
            return Err(config_err("over 1 MiB: not a registry auth file".into()));
        }
        let text = std::fs::read_to_string(file).map_err(|e| config_err(e.to_string()))?;
        let config: ConfigFile = serde_json::from_str(&text)
            .map_err(|e| config_err(format!("not a docker/podman auth file: {e}")))?;
        let host = normalize(registry);
        if let Some((_, helper)) = config
            .cred_helpers
            .iter()
            .find(|(k, _)| normalize(k) == host)
        {
            return self.helper(helper, registry);
        }
        if let Some((key, entry)) = config.auths.iter().find(|(k, _)| normalize(k) == host) {
            return entry_credential(entry).map_err(|m| config_err(format!("auths[{key:?}]: {m}")));
        }
        match &config.creds_store {
            Some(store) if !store.is_empty() => self.helper(store, registry),
            _ => Ok(Credential::Anonymous),
        }
    }

    /// Runs `docker-credential-<helper> get` for `registry`, bounded by
    /// [`HELPER_TIMEOUT`].
    fn helper(&self, helper: &str, registry: &str) -> Result<Credential, AuthError> {
        let err = |message: String| AuthError::Helper {
            helper: helper.to_string(),
            host: registry.to_string(),
            message,
        };
        if helper.is_empty()
            || !helper
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(err("not a helper name (letters, digits, - _ .)".into()));
        }
        let mut cmd = Command::new(format!("docker-credential-{helper}"));
        if let Some(path) = &self.helper_path {
            let mut p = path.clone();
            if let Some(rest) = std::env::var_os("PATH") {
                p.push(":");
                p.push(rest);
            }
            cmd.env("PATH", p);
        }
        let mut child = cmd
            .arg("get")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| err(format!("cannot run it ({e}); is it installed and on PATH?")))?;
        if let Some(mut stdin) = child.stdin.take() {
            // The server URL on stdin, as docker sends it.
            let _ = stdin.write_all(registry.as_bytes());
        }
        let deadline = Instant::now() + HELPER_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(err(format!(
                        "no answer within {} s",
                        HELPER_TIMEOUT.as_secs()
                    )));
                }
                Err(e) => return Err(err(e.to_string())),
            }
        }
        let out = child.wait_with_output().map_err(|e| err(e.to_string()))?;
        if !out.status.success() {
            let first = String::from_utf8_lossy(&out.stdout)
                .lines()
                .chain(String::from_utf8_lossy(&out.stderr).lines())
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .chars()
                .take(200)
                .collect::<String>();
            // "credentials not found": the helper knows nothing of this
            // host, which is anonymous access, as docker treats it.
            if first.to_ascii_lowercase().contains("credentials not found") {
                return Ok(Credential::Anonymous);
            }
            return Err(err(format!("exited with {}: {first}", out.status)));
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(rename = "Username")]
            username: String,
            #[serde(rename = "Secret")]
            secret: String,
        }
        let a: Answer = serde_json::from_slice(&out.stdout)
            .map_err(|_| err("its answer is not {\"Username\", \"Secret\"} JSON".into()))?;
        Ok(if a.username == "<token>" {
            Credential::Token(a.secret)
        } else {
            Credential::Basic {
                username: a.username,
                password: a.secret,
            }
        })
    }

    /// Looks for helpers in `dir` first (tests).
    pub fn with_helper_dir(mut self, dir: &Path) -> Self {
        self.helper_path = Some(dir.as_os_str().to_owned());
        self
    }
}

fn entry_credential(e: &AuthEntry) -> Result<Credential, String> {
    use base64::Engine;
    if let Some(token) = e.identitytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Credential::Token(token.to_string()));
    }
    if let Some(auth) = e.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| "auth is not base64 (of user:password)".to_string())?;
        let text =
            String::from_utf8(raw).map_err(|_| "auth is not UTF-8 user:password".to_string())?;
        let (user, password) = text
            .split_once(':')
            .ok_or_else(|| "auth is not user:password".to_string())?;
        return Ok(Credential::Basic {
            username: user.to_string(),
            password: password.to_string(),
        });
    }
    match (&e.username, &e.password) {
        (Some(u), Some(p)) => Ok(Credential::Basic {
            username: u.clone(),
            password: p.clone(),
        }),
        _ => Ok(Credential::Anonymous),
    }
}

/// A registry key as config files spell it (`https://host/v1/`, `host`)
/// reduced to the host, docker.io's aliases to one name.
fn normalize(key: &str) -> String {
    let k = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = k.split('/').next().unwrap_or(k).to_ascii_lowercase();
    match host.as_str() {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => "docker.io".into(),
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keychain(json: &str) -> (tempfile::TempDir, Keychain) {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("config.json");
        std::fs::write(&file, json).expect("write");
        let k = Keychain::from_file(&file);
        (dir, k)
    }

    #[test]
    fn auths_are_matched_by_host_in_every_spelling() {
        let (_d, k) = keychain(
            r#"{"auths": {
                "https://index.docker.io/v1/": {"auth": "YWxpY2U6czNjcmV0"},
                "127.0.0.1:5000": {"username": "ci", "password": "pw"},
                "ghcr.io": {"identitytoken": "tok"}
            }}"#,
        );
        assert_eq!(
            k.resolve("index.docker.io").expect("ok"),
            Credential::Basic {
                username: "alice".into(),
                password: "s3cret".into()
            }
        );
        assert!(
            matches!(k.resolve("127.0.0.1:5000"), Ok(Credential::Basic { username, .. }) if username == "ci")
        );
        assert_eq!(
            k.resolve("ghcr.io").expect("ok"),
            Credential::Token("tok".into())
        );
        assert_eq!(k.resolve("quay.io").expect("ok"), Credential::Anonymous);
    }

    #[test]
    fn a_broken_entry_names_the_file_and_host_never_the_secret() {
        let (_d, k) = keychain(r#"{"auths": {"r.test": {"auth": "bm9jb2xvbg=="}}}"#);
        let err = k.resolve("r.test").expect_err("no colon").to_string();
        assert!(
            err.contains("config.json") && err.contains("r.test") && err.contains("user:password"),
            "{err}"
        );
        assert!(
            !err.contains("bm9jb2xvbg") && !err.contains("nocolon"),
            "{err}"
        );
        let (_d, k) = keychain("{");
        assert!(
            k.resolve("r.test")
                .expect_err("bad json")
                .to_string()
                .contains("not a docker/podman auth file")
        );
        let (_d, k) = keychain(r#"{"credHelpers": {"r.test": "../evil"}}"#);
        assert!(
            k.resolve("r.test")
                .expect_err("bad name")
                .to_string()
                .contains("not a helper name")
        );
    }

    #[test]
    fn a_credential_never_prints_its_secret() {
        let c = Credential::Basic {
            username: "ci".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(!format!("{:?}", Credential::Token("t0k".into())).contains("t0k"));
    }
}
