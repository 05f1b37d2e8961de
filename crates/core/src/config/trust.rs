//! The trust root: what the daemon's own config pins, outside every tree
//! it judges (`[trust]` in the daemon TOML).
//!
//! - `envs`: the environments, in promotion order. Env `E` is defined only
//!   by `envs/E.toml` at the head of branch `env/E`; no other branch and no
//!   other tree can name, redefine or reorder it. An env promotes only into
//!   the env listed right after it (or into none, if its own `next` says
//!   so), never past one.
//! - `allowed_signers`: who may sign env-branch heads (git's format);
//!   per env in `[trust.env.E]`. A head signed by nobody listed is not
//!   released when `require_signed_heads` is on (the default).
//! - `policy_signers`: who may change `policies/` or `envs/`. A head whose
//!   policy differs from its nearest policy-signed ancestor must itself be
//!   signed by one of them. Never the daemon's key: it signs mechanical
//!   changes (pins, reverts) on top of whatever head it builds on, so it
//!   must not be able to vouch for a policy it did not judge.
//! - `approvers`: who may approve promotions into an env (default: the
//!   env's own `policies/approvers`, read only at a trusted head, so only
//!   a policy signer can have changed it).
//! - `operators`: who may roll an env back by hand (`rollback`, namespace
//!   platform-capstone-rollback); per env in `[trust.env.E]`. None
//!   pinned: manual rollback is refused for the env.
//! - `promotion_signers`: other daemons whose promotion records are
//!   trusted; the daemon's own key always is.
//! - `history_rewrite`: a non-fast-forward move of an env branch is
//!   refused (default) or accepted with an audit entry.
//!
//! An in-tree `policies/allowed_signers` never authorises anything: it is
//! documentation for humans and `git verify-commit`.

use super::Problem;
use crate::signing::AllowedSigners;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Most environments one daemon serves (each costs a fetch refspec, a
/// worker and its caches).
pub const MAX_ENVS: usize = 256;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrust {
    /// The environments, in promotion order (each promotes into the next).
    #[serde(default)]
    envs: Vec<String>,
    /// allowed_signers file: who may sign env-branch heads.
    allowed_signers: Option<PathBuf>,
    /// allowed_signers file: who may change `policies/` and `envs/`.
    policy_signers: Option<PathBuf>,
    /// allowed_signers file: who may approve promotions (namespace
    /// platform-capstone-approval).
    approvers: Option<PathBuf>,
    /// allowed_signers file: who may roll an env back by hand (namespace
    /// platform-capstone-rollback).
    operators: Option<PathBuf>,
    /// allowed_signers file: other daemons whose promotion records count.
    promotion_signers: Option<PathBuf>,
    /// Release only heads signed by a pinned signer (default true).
    #[serde(default = "yes")]
    require_signed_heads: bool,
    /// "refuse" (default) or "accept" a non-fast-forward env branch move.
    #[serde(default = "refuse")]
    history_rewrite: String,
    /// Per-env overrides of the signer files.
    #[serde(default)]
    env: BTreeMap<String, RawEnvTrust>,
}

fn yes() -> bool {
    true
}
fn refuse() -> String {
    "refuse".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvTrust {
    allowed_signers: Option<PathBuf>,
    policy_signers: Option<PathBuf>,
    approvers: Option<PathBuf>,
    operators: Option<PathBuf>,
}

/// What to do when an env branch moves to a commit that does not contain
/// the head seen before (a force push).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryRewrite {
    Refuse,
    Accept,
}

/// One env's pinned signer sets, loaded.
#[derive(Debug, Clone, Default)]
pub struct EnvAnchors {
    /// Who may sign the env branch's heads.
    pub heads: AllowedSigners,
    /// Where `heads` came from, for messages.
    pub heads_file: String,
    /// Who may change `policies/` and `envs/`.
    pub policy: AllowedSigners,
    pub policy_file: String,
    /// Pinned approvers; `None`: the env's own `policies/approvers`.
    pub approvers: Option<AllowedSigners>,
}

/// The validated `[trust]` section, its files loaded.
#[derive(Debug, Clone)]
pub struct Trust {
    /// The environments in promotion order.
    pub envs: Vec<String>,
    pub require_signed_heads: bool,
    pub history_rewrite: HistoryRewrite,
    /// Extra keys trusted for promotion records (besides the daemon's own).
    pub promotion_signers: AllowedSigners,
    anchors: BTreeMap<String, EnvAnchors>,
    /// Env → who may roll it back by hand, and the file they came from.
    operators: BTreeMap<String, (AllowedSigners, String)>,
}

impl Trust {
    /// Env `name`'s anchors (every pinned env has some).
    pub fn anchors(&self, name: &str) -> Option<&EnvAnchors> {
        self.anchors.get(name)
    }

    /// Who may roll env `name` back by hand (and the file listing them);
    /// `None`: nobody, manual rollback is refused.
    pub fn operators(&self, name: &str) -> Option<(&AllowedSigners, &str)> {
        self.operators.get(name).map(|(s, f)| (s, f.as_str()))
    }

    /// The branch that alone defines env `name`.
    pub fn branch(name: &str) -> String {
        format!("{}{name}", crate::source::ENV_BRANCH_PREFIX)
    }

    /// The env after `name` in the pinned order.
    pub fn next(&self, name: &str) -> Option<&str> {
        let i = self.envs.iter().position(|e| e == name)?;
        self.envs.get(i + 1).map(String::as_str)
    }

    /// Whether `name` is pinned.
    pub fn pins(&self, name: &str) -> bool {
        self.envs.iter().any(|e| e == name)
    }

    /// The daemon's own key must be a head signer of every env (its pins,
    /// promotions and reverts must be trusted) and a policy signer of none.
    pub fn check_daemon_key(&self, key: &ssh_key::PublicKey) -> Result<(), String> {
        for (env, a) in &self.anchors {
            if self.require_signed_heads && !a.heads.lists(key) {
                return Err(format!(
                    "{}: does not list the daemon's key (signing_key) for env/{env}: its pins, promotions and reverts would not be trusted; add the line `platform-capstone keygen` printed for it",
                    a.heads_file
                ));
            }
            if a.policy.lists(key) {
                return Err(format!(
                    "{}: lists the daemon's key (signing_key): the daemon signs mechanical changes on top of any head and must not vouch for policies/ or envs/; remove it",
                    a.policy_file
                ));
            }
        }
        Ok(())
    }

    /// A trust root for tests and tools that pin everything by hand.
    pub fn pinned(envs: &[&str], heads: AllowedSigners, policy: AllowedSigners) -> Self {
        let anchors = envs
            .iter()
            .map(|e| {
                (
                    e.to_string(),
                    EnvAnchors {
                        heads: heads.clone(),
                        heads_file: "allowed_signers".into(),
                        policy: policy.clone(),
                        policy_file: "policy_signers".into(),
                        approvers: None,
                    },
                )
            })
            .collect();
        Self {
            envs: envs.iter().map(|e| e.to_string()).collect(),
            require_signed_heads: true,
            history_rewrite: HistoryRewrite::Refuse,
            promotion_signers: AllowedSigners::default(),
            anchors,
            operators: BTreeMap::new(),
        }
    }

    /// This trust root with `operators` pinned for every env.
    pub fn with_operators(mut self, operators: AllowedSigners) -> Self {
        self.operators = self
            .envs
            .iter()
            .map(|e| (e.clone(), (operators.clone(), "operators".to_string())))
            .collect();
        self
    }
}

/// Reads and parses an allowed_signers file named in the config.
fn load_signers(
    file: &str,
    field: &str,
    base: &Path,
    path: &Path,
    problems: &mut Vec<Problem>,
) -> Option<(AllowedSigners, String)> {
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    };
    let shown = full.display().to_string();
    match std::fs::read_to_string(&full) {
        Ok(text) => match AllowedSigners::parse(&text) {
            Ok(s) => Some((s, shown)),
            Err(list) => {
                for p in list {
                    problems.push(Problem::new(
                        file,
                        field,
                        format!("{shown}: line {}: {}", p.line, p.message),
                        "use git's allowed_signers format: <principal> [namespaces=\"…\"] <key-type> <base64-key>",
                    ));
                }
                None
            }
        },
        Err(e) => {
            problems.push(Problem::new(
                file,
                field,
                format!("{shown}: {e}"),
                "point it at a readable allowed_signers file",
            ));
            None
        }
    }
}

fn valid_env_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-')
}

/// Validates `[trust]` and loads the files it names (relative paths from
/// `base`, the config file's directory). Every problem is reported.
pub fn load(file: &str, base: &Path, raw: Option<RawTrust>, problems: &mut Vec<Problem>) -> Trust {
    let Some(raw) = raw else {
        problems.push(Problem::new(
            file,
            "trust",
            "missing: the daemon needs a trust root outside the config repo",
            "add [trust] with envs = [\"dev\", \"staging\", \"prod\"] (promotion order) and allowed_signers = \"<file>\" (who may sign env-branch heads); see docs/security.md",
        ));
        return Trust::pinned(&[], AllowedSigners::default(), AllowedSigners::default());
    };
    let mut envs = Vec::new();
    if raw.envs.is_empty() {
        problems.push(Problem::new(
            file,
            "trust.envs",
            "no environments pinned",
            "list them in promotion order: envs = [\"dev\", \"staging\", \"prod\"]",
        ));
    }
    if raw.envs.len() > MAX_ENVS {
        problems.push(Problem::new(
            file,
            "trust.envs",
            format!(
                "{} environments, over the limit of {MAX_ENVS}",
                raw.envs.len()
            ),
            "run several daemons, each with its own set of environments",
        ));
    }
    for (i, e) in raw.envs.iter().enumerate() {
        if !valid_env_name(e) {
            problems.push(Problem::new(
                file,
                format!("trust.envs[{i}]"),
                format!("{e:?} is not an environment name"),
                "use lower-case letters, digits and '-' (the branch is env/<name>)",
            ));
        } else if envs.contains(e) {
            problems.push(Problem::new(
                file,
                format!("trust.envs[{i}]"),
                format!("{e:?} is listed twice"),
                "list each environment once, in promotion order",
            ));
        } else {
            envs.push(e.clone());
        }
    }
    let history_rewrite = match raw.history_rewrite.as_str() {
        "refuse" => HistoryRewrite::Refuse,
        "accept" => HistoryRewrite::Accept,
        other => {
            problems.push(Problem::new(
                file,
                "trust.history_rewrite",
                format!("{other:?} is not a valid value"),
                "use \"refuse\" (default) or \"accept\"",
            ));
            HistoryRewrite::Refuse
        }
    };
    for name in raw.env.keys() {
        if !envs.contains(name) {
            problems.push(Problem::new(
                file,
                format!("trust.env.{name}"),
                "is not in trust.envs",
                "add it to trust.envs or remove the section",
            ));
        }
    }
    let load = |field: &str, path: &Option<PathBuf>, problems: &mut Vec<Problem>| {
        path.as_ref()
            .and_then(|p| load_signers(file, field, base, p, problems))
    };
    let heads = load("trust.allowed_signers", &raw.allowed_signers, problems);
    let policy = load("trust.policy_signers", &raw.policy_signers, problems);
    let approvers = load("trust.approvers", &raw.approvers, problems);
    let promotion = load("trust.promotion_signers", &raw.promotion_signers, problems);
    let operators_all = load("trust.operators", &raw.operators, problems);
    let mut anchors = BTreeMap::new();
    let mut operators = BTreeMap::new();
    for name in &envs {
        let own = raw.env.get(name);
        let own_operators = own.and_then(|o| {
            load(
                &format!("trust.env.{name}.operators"),
                &o.operators,
                problems,
            )
        });
        if let Some(o) = own_operators.or_else(|| operators_all.clone()) {
            operators.insert(name.clone(), o);
        }
        let own_heads = own.and_then(|o| {
            load(
                &format!("trust.env.{name}.allowed_signers"),
                &o.allowed_signers,
                problems,
            )
        });
        let own_policy = own.and_then(|o| {
            load(
                &format!("trust.env.{name}.policy_signers"),
                &o.policy_signers,
                problems,
            )
        });
        let own_approvers = own.and_then(|o| {
            load(
                &format!("trust.env.{name}.approvers"),
                &o.approvers,
                problems,
            )
        });
        let Some((heads, heads_file)) = own_heads.or_else(|| heads.clone()) else {
            if raw.require_signed_heads {
                problems.push(Problem::new(
                    file,
                    "trust.allowed_signers",
                    format!("no signers pinned for {name}'s branch heads"),
                    "set trust.allowed_signers (or trust.env.<env>.allowed_signers); require_signed_heads = false releases unsigned heads and is not recommended",
                ));
            }
            anchors.insert(name.clone(), EnvAnchors::default());
            continue;
        };
        let Some((policy, policy_file)) = own_policy.or_else(|| policy.clone()) else {
            if !raw.require_signed_heads {
                anchors.insert(name.clone(), EnvAnchors::default());
                continue;
            }
            problems.push(Problem::new(
                file,
                "trust.policy_signers",
                format!("no policy signers pinned for {name}"),
                "set trust.policy_signers (or trust.env.<env>.policy_signers): the people who may change policies/ and envs/ — not the daemon's key",
            ));
            anchors.insert(name.clone(), EnvAnchors::default());
            continue;
        };
        anchors.insert(
            name.clone(),
            EnvAnchors {
                heads,
                heads_file,
                policy,
                policy_file,
                approvers: own_approvers.or_else(|| approvers.clone()).map(|(a, _)| a),
            },
        );
    }
    Trust {
        envs,
        require_signed_heads: raw.require_signed_heads,
        history_rewrite,
        promotion_signers: promotion.map(|(s, _)| s).unwrap_or_default(),
        anchors,
        operators,
    }
}
