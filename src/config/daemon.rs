//! The daemon's own configuration file (`--config FILE`).
//!
//! Every field has a default except `remote`; defaults suit a systemd
//! service (paths under /var). See `systemd/platform-capstone.toml`.

use super::Problem;
use crate::signing::Identity;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn default_cache_dir() -> PathBuf {
    PathBuf::from("/var/cache/platform-capstone")
}
fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/platform-capstone")
}
fn default_listen() -> String {
    "127.0.0.1:8087".into()
}
fn default_poll() -> String {
    "30s".into()
}
fn default_max_file_size() -> u64 {
    crate::source::DEFAULT_MAX_FILE_SIZE
}
fn default_git_timeout() -> String {
    "120s".into()
}
fn default_scrape_settle() -> String {
    "2500ms".into()
}
fn default_log_level() -> String {
    "info".into()
}
fn default_log_format() -> String {
    "json".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    /// Config repository URL: file:///path, ssh://…, https://…, or a path.
    remote: String,
    /// Where the bare cache clone of the remote lives (default /var/cache/platform-capstone).
    #[serde(default = "default_cache_dir")]
    cache_dir: PathBuf,
    /// Rollout state, reports and pending audit records (default /var/lib/platform-capstone).
    #[serde(default = "default_state_dir")]
    state_dir: PathBuf,
    /// OpenSSH private key that signs promotion and revert commits.
    signing_key: Option<PathBuf>,
    /// Name and email on the commits the daemon makes.
    #[serde(default)]
    identity: Identity,
    /// SSH key for ssh:// remotes (default: the SSH agent).
    ssh_key: Option<PathBuf>,
    /// HTTP address for /healthz, /readyz, /metrics, the API and the dashboard (default 127.0.0.1:8087).
    #[serde(default = "default_listen")]
    listen: String,
    /// How often every env branch is fetched, in one fetch (default 30s).
    #[serde(default = "default_poll")]
    poll_interval: String,
    /// Largest file read from the config repo, in bytes (default 4 MiB).
    #[serde(default = "default_max_file_size")]
    max_file_size: u64,
    /// Overall deadline of one fetch or push (default 120s): a remote that
    /// answers slower is an infrastructure error, never a hang.
    #[serde(default = "default_git_timeout")]
    git_timeout: String,
    /// Wait after each analysis interval for Prometheus's last scrape of
    /// it (default 2500ms, for a 1s scrape interval): about one scrape
    /// interval plus the scrape's own duration.
    #[serde(default = "default_scrape_settle")]
    scrape_settle: String,
    /// trace, debug, info, warn or error; RUST_LOG overrides (default info).
    #[serde(default = "default_log_level")]
    log_level: String,
    /// json or text (default json).
    #[serde(default = "default_log_format")]
    log_format: String,
    /// File holding the GitHub webhook secret (HMAC-SHA256); no webhook without it.
    webhook_secret_file: Option<PathBuf>,
    /// File holding the bearer token for mutating API calls; none without it.
    api_token_file: Option<PathBuf>,
    /// The local stack's state dir, for podman envs (default .platform-capstone/local).
    local_stack: Option<PathBuf>,
    /// Prometheus for kubernetes envs.
    prometheus: Option<String>,
    /// Branch of the config repo the daemon commits drift reports to
    /// (`reports/<env>.md` and `.json`); none: reports stay in the state dir.
    reports_branch: Option<String>,
    /// Cosign private key signing the images of scheduled drills (the
    /// release key the envs trust); no scheduled image drills without it.
    drill_key: Option<PathBuf>,
    /// The static demo binary scheduled drills build their images from.
    demo_binary: Option<PathBuf>,
    /// Cosign private key (ECDSA P-256; cosign-encrypted keys take
    /// COSIGN_PASSWORD) signing a promotion attestation on each promoted
    /// digest; none: promotions are not attested.
    attestation_key: Option<PathBuf>,
    /// The trust root: pinned environments and who may sign what.
    trust: Option<super::trust::RawTrust>,
}

/// Where `local up` keeps the stack when nothing says otherwise.
pub const DEFAULT_LOCAL_STACK: &str = ".platform-capstone/local";

/// A validated daemon configuration.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub remote: String,
    pub cache_dir: PathBuf,
    pub state_dir: PathBuf,
    pub signing_key: Option<PathBuf>,
    pub identity: Identity,
    pub ssh_key: Option<PathBuf>,
    pub listen: SocketAddr,
    pub poll_interval: Duration,
    pub max_file_size: u64,
    pub git_timeout: Duration,
    pub scrape_settle: Duration,
    pub log_level: String,
    pub log_json: bool,
    pub webhook_secret_file: Option<PathBuf>,
    pub api_token_file: Option<PathBuf>,
    pub local_stack: Option<PathBuf>,
    pub prometheus: Option<String>,
    pub reports_branch: Option<String>,
    pub drill_key: Option<PathBuf>,
    pub demo_binary: Option<PathBuf>,
    pub attestation_key: Option<PathBuf>,
    /// Pinned environments and signers (see `config::trust`).
    pub trust: super::trust::Trust,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Problem>),
}

impl DaemonConfig {
    /// The local stack's state dir the podman envs run on: `local_stack`,
    /// else `.platform-capstone/local` (as `local up` makes it).
    pub fn local_stack_dir(&self) -> PathBuf {
        self.local_stack
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_LOCAL_STACK))
    }

    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, DaemonConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| DaemonConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse_in(&path.display().to_string(), base, &text).map_err(DaemonConfigError::Invalid)
    }

    /// Parses config text; `file` names it in problems; files it names
    /// (signing key, trust files) are relative to the current directory.
    pub fn parse(file: &str, text: &str) -> Result<Self, Vec<Problem>> {
        Self::parse_in(file, Path::new("."), text)
    }

    /// Parses config text whose relative trust file paths start at `base`.
    pub fn parse_in(file: &str, base: &Path, text: &str) -> Result<Self, Vec<Problem>> {
        let raw: RawDaemon = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| {
                    format!(
                        "line {}",
                        text[..s.start.min(text.len())].matches('\n').count() + 1
                    )
                })
                .unwrap_or_default();
            vec![Problem::new(
                file,
                line,
                e.message().trim().replace('\n', " "),
                "fix the TOML (fields are documented in systemd/platform-capstone.toml)",
            )]
        })?;
        let mut problems = Vec::new();
        if raw.remote.trim().is_empty() {
            problems.push(Problem::new(
                file,
                "remote",
                "empty",
                "set the config repo URL, e.g. \"file:///srv/config.git\"",
            ));
        }
        let listen = raw.listen.parse::<SocketAddr>().unwrap_or_else(|e| {
            problems.push(Problem::new(
                file,
                "listen",
                format!("{:?}: {e}", raw.listen),
                "use host:port, e.g. \"127.0.0.1:8087\"",
            ));
            SocketAddr::from(([127, 0, 0, 1], 8087))
        });
        // A duration field within `range`, else a problem naming it and the
        // fallback (so every other field is still checked).
        let mut duration = |field: &str,
                            text: &str,
                            range: std::ops::RangeInclusive<Duration>,
                            shown: &str,
                            fix: &str,
                            fallback: Duration| {
            match humantime::parse_duration(text) {
                Ok(d) if range.contains(&d) => d,
                Ok(_) => {
                    problems.push(Problem::new(
                        file,
                        field,
                        format!("{text:?} is out of range"),
                        format!("use {shown}"),
                    ));
                    fallback
                }
                Err(e) => {
                    problems.push(Problem::new(file, field, format!("{text:?}: {e}"), fix));
                    fallback
                }
            }
        };
        let (second, hour) = (Duration::from_secs(1), Duration::from_secs(3600));
        let poll_interval = duration(
            "poll_interval",
            &raw.poll_interval,
            second..=hour,
            "1s..1h",
            "write it like \"30s\"",
            Duration::from_secs(30),
        );
        let git_timeout = duration(
            "git_timeout",
            &raw.git_timeout,
            second..=hour,
            "1s..1h",
            "write it like \"120s\"",
            crate::source::DEFAULT_GIT_DEADLINE,
        );
        let scrape_settle = duration(
            "scrape_settle",
            &raw.scrape_settle,
            Duration::ZERO..=Duration::from_secs(300),
            "0s..5m: about your Prometheus scrape interval plus a second",
            "write it like \"2500ms\"",
            Duration::from_millis(2500),
        );
        if !["trace", "debug", "info", "warn", "error"].contains(&raw.log_level.as_str()) {
            problems.push(Problem::new(
                file,
                "log_level",
                format!("{:?} is not a level", raw.log_level),
                "use trace, debug, info, warn or error",
            ));
        }
        let log_json = match raw.log_format.as_str() {
            "json" => true,
            "text" => false,
            other => {
                problems.push(Problem::new(
                    file,
                    "log_format",
                    format!("{other:?} is not a format"),
                    "use json or text",
                ));
                true
            }
        };
        if raw.max_file_size == 0 || raw.max_file_size > 256 * 1024 * 1024 {
            problems.push(Problem::new(
                file,
                "max_file_size",
                format!("{} is out of range", raw.max_file_size),
                "use 1..=268435456 bytes",
            ));
        }
        if !raw.identity.email.contains('@') {
            problems.push(Problem::new(
                file,
                "identity.email",
                format!("{:?} is not an email", raw.identity.email),
                "use the principal of the signing key in allowed_signers",
            ));
        }
        if let Some(b) = &raw.reports_branch
            && (b.starts_with("env/")
                || !git2::Reference::is_valid_name(&format!("refs/heads/{b}")))
        {
            problems.push(Problem::new(
                file,
                "reports_branch",
                format!("{b:?} is not a branch the daemon may write reports to"),
                "name a valid branch outside env/*, e.g. \"reports\"",
            ));
        }
        let trust = super::trust::load(file, base, raw.trust, &mut problems);
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            remote: raw.remote,
            cache_dir: raw.cache_dir,
            state_dir: raw.state_dir,
            signing_key: raw.signing_key,
            identity: raw.identity,
            ssh_key: raw.ssh_key,
            listen,
            poll_interval,
            max_file_size: raw.max_file_size,
            git_timeout,
            scrape_settle,
            log_level: raw.log_level,
            log_json,
            webhook_secret_file: raw.webhook_secret_file,
            api_token_file: raw.api_token_file,
            local_stack: raw.local_stack,
            prometheus: raw.prometheus,
            reports_branch: raw.reports_branch,
            drill_key: raw.drill_key,
            demo_binary: raw.demo_binary,
            attestation_key: raw.attestation_key,
            trust,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Unsigned heads allowed: no signer files needed.
    const TRUST_OPEN: &str = "[trust]\nenvs = [\"dev\"]\nrequire_signed_heads = false\n";

    #[test]
    fn defaults_apply() {
        let text = format!("remote = \"file:///srv/c.git\"\n{TRUST_OPEN}");
        let c = DaemonConfig::parse("d.toml", &text).unwrap();
        assert_eq!(c.poll_interval, Duration::from_secs(30));
        assert_eq!(c.listen.to_string(), "127.0.0.1:8087");
        assert_eq!(c.cache_dir, PathBuf::from("/var/cache/platform-capstone"));
        assert!(c.log_json);
        assert_eq!(c.scrape_settle, Duration::from_millis(2500));
        assert_eq!(c.trust.envs, vec!["dev"]);
        assert_eq!(
            c.trust.history_rewrite,
            super::super::trust::HistoryRewrite::Refuse
        );
    }

    /// Signer files for the trust tests: a key, and a line naming it.
    fn signer_dir() -> (tempfile::TempDir, String) {
        let dir = tempfile::tempdir().unwrap();
        let key = crate::signing::generate_key(&dir.path().join("k"), "t").unwrap();
        let line = crate::signing::allowed_signers_line("a@example.com", "git", &key).unwrap();
        for f in ["heads", "policy", "approvers"] {
            std::fs::write(dir.path().join(f), format!("{line}\n")).unwrap();
        }
        std::fs::write(
            dir.path().join("bad"),
            "nobody ssh-ed25519 AAAA-not-base64\n",
        )
        .unwrap();
        (dir, line)
    }

    #[test]
    fn the_shipped_example_parses() {
        let (dir, _) = signer_dir();
        let text = include_str!("../../systemd/platform-capstone.toml")
            .replace("/etc/platform-capstone/allowed_signers", "heads")
            .replace("/etc/platform-capstone/policy_signers", "policy");
        let c =
            DaemonConfig::parse_in("systemd/platform-capstone.toml", dir.path(), &text).unwrap();
        assert_eq!(c.identity.email, "platform-capstone@localhost");
        assert_eq!(c.trust.envs, vec!["dev", "staging", "prod"]);
        assert_eq!(c.trust.next("staging"), Some("prod"));
        assert_eq!(c.trust.next("prod"), None);
    }

    #[test]
    fn the_trust_root_is_required_and_every_problem_named() {
        let (dir, _) = signer_dir();
        let parse = |trust: &str| {
            DaemonConfig::parse_in("d.toml", dir.path(), &format!("remote = \"x\"\n{trust}"))
        };
        let fields = |trust: &str| -> Vec<String> {
            parse(trust)
                .unwrap_err()
                .into_iter()
                .map(|p| p.field)
                .collect()
        };
        assert_eq!(fields(""), vec!["trust"]);
        assert_eq!(
            fields("[trust]\nallowed_signers = \"heads\"\npolicy_signers = \"policy\"\n"),
            vec!["trust.envs"]
        );
        assert_eq!(
            fields(
                "[trust]\nenvs = [\"Dev\", \"a\", \"a\"]\nallowed_signers = \"heads\"\npolicy_signers = \"policy\"\n"
            ),
            vec!["trust.envs[0]", "trust.envs[2]"]
        );
        assert_eq!(
            fields("[trust]\nenvs = [\"dev\"]\n"),
            vec!["trust.allowed_signers"]
        );
        assert_eq!(
            fields("[trust]\nenvs = [\"dev\"]\nallowed_signers = \"heads\"\n"),
            vec!["trust.policy_signers"]
        );
        assert_eq!(
            fields(
                "[trust]\nenvs = [\"dev\"]\nallowed_signers = \"missing\"\npolicy_signers = \"bad\"\nhistory_rewrite = \"maybe\"\n[trust.env.prod]\napprovers = \"heads\"\n"
            ),
            vec![
                "trust.history_rewrite",
                "trust.env.prod",
                "trust.allowed_signers",
                "trust.policy_signers",
                "trust.allowed_signers"
            ]
        );
        let many: Vec<String> = (0..=super::super::trust::MAX_ENVS)
            .map(|i| format!("\"e{i}\""))
            .collect();
        assert!(
            fields(&format!(
                "[trust]\nenvs = [{}]\nrequire_signed_heads = false\n",
                many.join(",")
            ))
            .contains(&"trust.envs".to_string())
        );
        // Per-env files win over the global ones; approvers stay optional.
        let c = parse("[trust]\nenvs = [\"dev\", \"prod\"]\nallowed_signers = \"heads\"\npolicy_signers = \"policy\"\n[trust.env.prod]\napprovers = \"approvers\"\n").unwrap();
        assert!(c.trust.anchors("dev").unwrap().approvers.is_none());
        assert!(c.trust.anchors("prod").unwrap().approvers.is_some());
        assert_eq!(c.trust.next("dev"), Some("prod"));
        assert!(
            c.trust
                .anchors("dev")
                .unwrap()
                .heads_file
                .ends_with("heads")
        );
    }

    #[test]
    fn the_daemon_key_signs_heads_but_never_vouches_for_policy() {
        let (dir, line) = signer_dir();
        let daemon = crate::signing::generate_key(&dir.path().join("daemon"), "d").unwrap();
        let daemon_line =
            crate::signing::allowed_signers_line("d@example.com", "git", &daemon).unwrap();
        std::fs::write(dir.path().join("both"), format!("{line}\n{daemon_line}\n")).unwrap();
        let cfg = |heads: &str, policy: &str| {
            DaemonConfig::parse_in(
                "d.toml",
                dir.path(),
                &format!("remote = \"x\"\n[trust]\nenvs = [\"dev\"]\nallowed_signers = \"{heads}\"\npolicy_signers = \"{policy}\"\n"),
            )
            .unwrap()
        };
        assert!(
            cfg("both", "policy")
                .trust
                .check_daemon_key(&daemon)
                .is_ok()
        );
        let err = cfg("heads", "policy")
            .trust
            .check_daemon_key(&daemon)
            .unwrap_err();
        assert!(err.contains("does not list the daemon's key"), "{err}");
        let err = cfg("both", "both")
            .trust
            .check_daemon_key(&daemon)
            .unwrap_err();
        assert!(err.contains("must not vouch"), "{err}");
    }

    #[test]
    fn every_problem_is_reported() {
        let text = format!(
            "remote = \"\"\nlisten = \"nope\"\npoll_interval = \"0s\"\nscrape_settle = \"10m\"\nlog_format = \"xml\"\nreports_branch = \"env/reports\"\n{TRUST_OPEN}"
        );
        let problems = DaemonConfig::parse("d.toml", &text).unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "remote",
                "listen",
                "poll_interval",
                "scrape_settle",
                "log_format",
                "reports_branch"
            ]
        );
        let bad = DaemonConfig::parse(
            "d.toml",
            &format!("remote = \"x\"\nreports_branch = \"a..b\"\n{TRUST_OPEN}"),
        )
        .unwrap_err();
        assert_eq!(bad[0].field, "reports_branch");
    }

    #[test]
    fn unknown_fields_are_rejected_with_line() {
        let problems = DaemonConfig::parse("d.toml", "remote = \"x\"\n\nremtoe = 1\n").unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "line 3");
        assert!(
            problems[0].message.contains("remtoe"),
            "{}",
            problems[0].message
        );
    }
}
