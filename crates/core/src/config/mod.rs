//! Configuration: the environments of a config repo (`envs/<env>.toml`)
//! and the trust root the daemon's own TOML pins (the daemon's TOML itself
//! is parsed by the shell).
//!
//! Parsing is strict (`deny_unknown_fields`), and validation collects every
//! problem — file, field, what is wrong, what to do — instead of stopping
//! at the first, so `platform-capstone validate` can print them all.
//!
//! Must not: read anything but through a [`TreeReader`] (so a config repo
//! can never make us read outside it), or do any network I/O.

mod env;
pub mod trust;

pub use env::{
    BurnWindow, Drift, DriftMode, Env, GateMode, Gates, PromotionPolicy, Rollout, Severity, Slo,
    SloKind, TEMPLATE_VARIABLES, Target, TargetKind,
};

use crate::source::TreeReader;
use std::fmt;

/// Directory holding one TOML file per environment.
pub const ENVS_DIR: &str = "envs";

/// One thing wrong with a config repo.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Repo-relative file, e.g. `envs/dev.toml`.
    pub file: String,
    /// Dotted field path (`rollout.steps`, `slo[1].query`), or empty for the whole file.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub fix: String,
}

impl Problem {
    pub fn new(
        file: impl Into<String>,
        field: impl Into<String>,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            field: field.into(),
            message: message.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file, self.message)?;
        } else {
            write!(f, "{}: {}: {}", self.file, self.field, self.message)?;
        }
        if !self.fix.is_empty() {
            write!(f, "; {}", self.fix)?;
        }
        Ok(())
    }
}

/// Every environment of a repo, valid or not, plus every problem found.
#[derive(Debug, Default)]
pub struct RepoConfig {
    /// Environments that parsed and validated, sorted by promotion order
    /// (each chain from its first environment), then by name.
    pub envs: Vec<Env>,
    pub problems: Vec<Problem>,
}

impl RepoConfig {
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn env(&self, name: &str) -> Option<&Env> {
        self.envs.iter().find(|e| e.name == name)
    }

    /// `dev → staging → prod` for each chain.
    pub fn chains(&self) -> Vec<Vec<String>> {
        let mut chains = Vec::new();
        for first in self
            .envs
            .iter()
            .filter(|e| !self.envs.iter().any(|o| o.next.as_deref() == Some(&e.name)))
        {
            let mut chain = vec![first.name.clone()];
            let mut cur = first;
            while let Some(next) = cur.next.as_deref().and_then(|n| self.env(n)) {
                if chain.contains(&next.name) {
                    break;
                }
                chain.push(next.name.clone());
                cur = next;
            }
            chains.push(chain);
        }
        chains
    }
}

/// Loads and validates every `envs/*.toml` in a tree.
pub fn load_repo(tree: &dyn TreeReader) -> RepoConfig {
    let mut out = RepoConfig::default();
    let names = match tree.list(ENVS_DIR) {
        Ok(n) => n,
        Err(e) => {
            out.problems.push(Problem::new(
                ENVS_DIR,
                "",
                format!("cannot list environments: {e}"),
                "create envs/<env>.toml for each environment (see docs/config.md)",
            ));
            return out;
        }
    };
    let mut parsed = Vec::new();
    for name in names {
        let file = format!("{ENVS_DIR}/{name}");
        let Some(stem) = name.strip_suffix(".toml") else {
            out.problems.push(Problem::new(
                &file,
                "",
                "not a .toml file",
                "envs/ holds only <env>.toml files; move or delete it",
            ));
            continue;
        };
        let text = match tree.read_string(&file) {
            Ok(t) => t,
            Err(e) => {
                out.problems
                    .push(Problem::new(&file, "", e.to_string(), "fix the file"));
                continue;
            }
        };
        match env::parse(stem, &file, &text, tree) {
            Ok((env, problems)) => {
                out.problems.extend(problems);
                parsed.push(env);
            }
            Err(p) => out.problems.push(p),
        }
    }
    if parsed.is_empty() && out.problems.is_empty() {
        out.problems.push(Problem::new(
            ENVS_DIR,
            "",
            "no environments defined",
            "add envs/<env>.toml (see docs/config.md)",
        ));
    }
    out.problems.extend(env::validate_set(&parsed));
    out.problems.extend(check_signer_files(tree, &parsed));
    out.envs = order(parsed);
    out
}

/// Loads env `name` as its own branch defines it: `envs/<name>.toml` of
/// `tree` (the head of `env/<name>`), which must say `branch = "env/<name>"`,
/// plus the signer files it relies on. Other envs' files in this tree are
/// not read: they define nothing here.
pub fn load_own_env(tree: &dyn TreeReader, name: &str) -> Result<Env, Vec<Problem>> {
    let file = format!("{ENVS_DIR}/{name}.toml");
    let text = tree.read_string(&file).map_err(|e| {
        vec![Problem::new(
            &file,
            "",
            e.to_string(),
            format!("env/{name} must define {name} in {file}"),
        )]
    })?;
    let (env, mut problems) = env::parse(name, &file, &text, tree).map_err(|p| vec![p])?;
    let own = format!("{}{name}", crate::source::ENV_BRANCH_PREFIX);
    if env.branch != own {
        problems.push(Problem::new(
            &file,
            "branch",
            format!(
                "says {:?}, but {name} is defined only by its own branch {own:?}",
                env.branch
            ),
            format!("set branch = \"{own}\""),
        ));
    }
    problems.extend(check_signer_files(tree, std::slice::from_ref(&env)));
    if problems.is_empty() {
        Ok(env)
    } else {
        Err(problems)
    }
}

/// Files in git's allowed_signers format under `policies/`.
pub const ALLOWED_SIGNERS_FILE: &str = "policies/allowed_signers";
pub const APPROVERS_FILE: &str = "policies/approvers";

/// The signer files parse, and approvers exist where an env needs them.
fn check_signer_files(tree: &dyn TreeReader, envs: &[Env]) -> Vec<Problem> {
    let mut problems = Vec::new();
    for file in [ALLOWED_SIGNERS_FILE, APPROVERS_FILE] {
        match tree.read_string(file) {
            Ok(text) => match crate::signing::AllowedSigners::parse(&text) {
                // An empty approvers file is not an error: promotions into
                // an env that needs approval simply wait (the engine says so).
                Ok(_) => {}
                Err(list) => problems.extend(list.into_iter().map(|p| {
                    Problem::new(
                        file,
                        format!("line {}", p.line),
                        p.message,
                        "use the allowed_signers format: <principal> [namespaces=\"…\"] <key-type> <base64-key>",
                    )
                })),
            },
            Err(crate::source::ReadError::NotFound { .. }) => {
                if file == APPROVERS_FILE && envs.iter().any(|e| e.promotion.requires_approval) {
                    problems.push(Problem::new(
                        file,
                        "",
                        "missing, but an environment has requires_approval = true",
                        "create policies/approvers (allowed_signers format) listing who may approve",
                    ));
                }
            }
            Err(e) => problems.push(Problem::new(file, "", e.to_string(), "fix or remove the file")),
        }
    }
    problems
}

/// Orders environments along their promotion chains.
fn order(envs: Vec<Env>) -> Vec<Env> {
    let links: Vec<(String, Option<String>)> = envs
        .iter()
        .map(|e| (e.name.clone(), e.next.clone()))
        .collect();
    let mut slots: Vec<Option<Env>> = envs.into_iter().map(Some).collect();
    promotion_order(&links)
        .into_iter()
        .filter_map(|i| slots[i].take())
        .collect()
}

/// Indices of `(name, next)` pairs in promotion order: each chain from its
/// first environment (chains sorted by that name), then anything left over
/// (members of a cycle), by name. Every index appears exactly once.
pub fn promotion_order(links: &[(String, Option<String>)]) -> Vec<usize> {
    let mut by_name: Vec<usize> = (0..links.len()).collect();
    by_name.sort_by(|&a, &b| links[a].0.cmp(&links[b].0));
    let is_target = |name: &str| links.iter().any(|(_, n)| n.as_deref() == Some(name));
    let mut seen = vec![false; links.len()];
    let mut out = Vec::with_capacity(links.len());
    for &first in by_name.iter().filter(|&&i| !is_target(&links[i].0)) {
        let mut cur = Some(first);
        while let Some(i) = cur.filter(|&i| !seen[i]) {
            seen[i] = true;
            out.push(i);
            cur = links[i]
                .1
                .as_deref()
                .and_then(|next| links.iter().position(|(n, _)| n == next));
        }
    }
    out.extend(by_name.into_iter().filter(|&i| !seen[i]));
    out
}

#[cfg(test)]
mod tests {
    use super::promotion_order;

    fn names(links: &[(&str, Option<&str>)]) -> Vec<String> {
        let owned: Vec<(String, Option<String>)> = links
            .iter()
            .map(|(n, x)| (n.to_string(), x.map(str::to_string)))
            .collect();
        promotion_order(&owned)
            .into_iter()
            .map(|i| owned[i].0.clone())
            .collect()
    }

    #[test]
    fn chains_first_then_leftovers() {
        assert_eq!(
            names(&[
                ("prod", None),
                ("dev", Some("staging")),
                ("staging", Some("prod"))
            ]),
            vec!["dev", "staging", "prod"]
        );
        assert_eq!(
            names(&[("b", Some("c")), ("c", Some("b")), ("a", None)]),
            vec!["a", "b", "c"]
        );
        assert_eq!(names(&[("x", Some("missing"))]), vec!["x"]);
    }
}
