//! Admission gate: Rego policies under `policies/admission/` evaluated with
//! `regorus` over each rendered object, with conftest's semantics:
//!
//! - the namespaces evaluated are the env's `gates.admission_namespaces`
//!   (default `main`), each with every package under it (`main.k8s`);
//! - rules `deny`, `violation` (and `deny_*`, `violation_*`) fail, `warn`
//!   (and `warn_*`) warns; a message is a string or an object with a
//!   string `msg`; a boolean rule that is true fails (or warns) with its
//!   name;
//! - `exception contains rules if { …; rules := ["foo"] }` in the same
//!   package exempts the input from `deny_foo`, `violation_foo` and
//!   `warn_foo` (`""` exempts the bare `deny`/`violation`/`warn`);
//! - JSON and YAML files under `policies/admission/` are `data`, rooted at
//!   their directory (`exclusions/teams.yaml` → `data.exclusions`), and
//!   `.rego` files are read from subdirectories too.
//!
//! Before anything is evaluated, `rego_check` refuses recursion, decision
//! rules in packages the gate does not evaluate and rules it cannot
//! classify; at evaluation a decision or exception value of the wrong
//! shape is an error naming the rule — a gate never passes what it did not
//! understand. A message starts with its rule id (`images-by-digest: …`);
//! `phases.toml` can keep a rule in warn until a date, after which it is
//! enforced — a scheduled warn → enforce, decided against an injected date
//! (never the wall clock inside the gate).

use super::GateError;
use crate::model::{Finding, Verdict};
use crate::source::{ReadError, TreeReader};
use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub const ADMISSION_DIR: &str = "policies/admission";
pub const PHASES_FILE: &str = "policies/admission/phases.toml";
/// Evaluation budget per object, unless configured otherwise.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(250);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PhasesFile {
    #[serde(default)]
    rules: BTreeMap<String, RawPhase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPhase {
    /// Last day (UTC, YYYY-MM-DD, exclusive) the rule only warns.
    warn_until: String,
    /// Why the rule is phased in, shown with its warnings.
    reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Phase {
    pub warn_until: NaiveDate,
    pub reason: Option<String>,
}

/// The loaded admission policies of one tree.
pub struct AdmissionGate {
    engine: regorus::Engine,
    files: Vec<String>,
    classified: super::rego_check::Classified,
    phases: BTreeMap<String, Phase>,
    budget: Duration,
}

impl std::fmt::Debug for AdmissionGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdmissionGate")
            .field("files", &self.files)
            .field("phases", &self.phases)
            .finish()
    }
}

impl AdmissionGate {
    /// Loads every `.rego` and data file under `policies/admission/` and
    /// the phases, for the given namespaces (`["main"]` unless the env
    /// lists others). A policy that does not parse, a data file that is not
    /// JSON/YAML, a rule the gate cannot classify: an error naming the file.
    pub fn load(tree: &dyn TreeReader, namespaces: &[String]) -> Result<Self, GateError> {
        let mut engine = regorus::Engine::new();
        engine.set_strict_builtin_errors(true);
        let mut files = Vec::new();
        let mut data_files = Vec::new();
        walk(tree, ADMISSION_DIR, 0, &mut |file| {
            if file.ends_with(".rego") {
                files.push(file.to_string());
            } else if [".json", ".yaml", ".yml"].iter().any(|e| file.ends_with(e)) {
                data_files.push(file.to_string());
            }
        })?;
        for file in &files {
            let text = tree.read_string(file)?;
            engine
                .add_policy(file.clone(), text)
                .map_err(|e| policy_error(file, &e.to_string()))?;
        }
        if files.is_empty() {
            return Err(GateError::Config {
                file: ADMISSION_DIR.into(),
                message: "no .rego policies: an admission gate with no policy would pass anything; add policies or set gates.admission = \"warn\"".into(),
            });
        }
        for file in &data_files {
            let document = load_data(tree, file)?;
            engine.add_data(document).map_err(|e| GateError::Config {
                file: file.clone(),
                message: format!(
                    "cannot be merged into data: {}; two data files set the same key",
                    one_line(&e.to_string())
                ),
            })?;
        }
        let ast = engine
            .get_ast_as_json()
            .map_err(|e| policy_error(ADMISSION_DIR, &e.to_string()))?;
        let classified = super::rego_check::check(&ast, namespaces)
            .map_err(|(file, message)| GateError::Policy { file, message })?;
        let phases = match tree.read_string(PHASES_FILE) {
            Ok(text) => parse_phases(&text)?,
            Err(ReadError::NotFound { .. }) => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            engine,
            files,
            classified,
            phases,
            budget: DEFAULT_BUDGET,
        })
    }

    /// Sets the per-object evaluation budget.
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    pub fn phases(&self) -> &BTreeMap<String, Phase> {
        &self.phases
    }

    /// Evaluates every object; `today` decides severity phases.
    pub fn evaluate(
        &mut self,
        objects: &[yaml_serde::Value],
        today: NaiveDate,
    ) -> Result<Verdict, GateError> {
        self.engine
            .set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
                limit: self.budget,
                check_interval: std::num::NonZeroU32::MIN,
            });
        let mut findings = Vec::new();
        for obj in objects {
            let subject = describe(obj);
            let json = serde_json::to_string(obj).map_err(|e| GateError::Evaluation {
                policy: ADMISSION_DIR.into(),
                subject: subject.clone(),
                message: e.to_string(),
            })?;
            self.engine
                .set_input_json(&json)
                .map_err(|e| GateError::Evaluation {
                    policy: ADMISSION_DIR.into(),
                    subject: subject.clone(),
                    message: one_line(&e.to_string()),
                })?;
            for (rule, deny, message) in self.decisions(&subject)? {
                let message = if message.is_empty() { rule } else { message };
                findings.push(self.finding(&subject, message, deny, today));
            }
        }
        Ok(Verdict::from_findings("admission_policy", findings))
    }

    /// Every decision rule of the evaluated packages for the current
    /// input, one query per package: `(rule, deny?, message)` per message
    /// (an empty message for a boolean rule that holds), minus what the
    /// package's `exception` rule exempts.
    fn decisions(&mut self, subject: &str) -> Result<Vec<(String, bool, String)>, GateError> {
        let mut out = Vec::new();
        for package in self.classified.packages.clone() {
            let results = self
                .engine
                .eval_query(format!("data.{package}"), false)
                .map_err(|e| {
                    let message = one_line(&e.to_string());
                    if message.contains("time limit") || message.contains("execution exceeded") {
                        GateError::Budget {
                            subject: subject.to_string(),
                            budget_ms: self.budget.as_millis(),
                        }
                    } else {
                        GateError::Evaluation {
                            policy: format!("data.{package}"),
                            subject: subject.to_string(),
                            message,
                        }
                    }
                })?;
            for r in results.result {
                for expr in r.expressions {
                    let json = expr
                        .value
                        .to_json_str()
                        .map_err(|e| GateError::Evaluation {
                            policy: format!("data.{package}"),
                            subject: subject.to_string(),
                            message: one_line(&e.to_string()),
                        })?;
                    let value: serde_json::Value =
                        serde_json::from_str(&json).map_err(|e| GateError::Evaluation {
                            policy: format!("data.{package}"),
                            subject: subject.to_string(),
                            message: e.to_string(),
                        })?;
                    let serde_json::Value::Object(rules) = value else {
                        continue;
                    };
                    self.collect(&package, subject, &rules, &mut out)?;
                }
            }
        }
        Ok(out)
    }

    /// The decisions of one package's evaluated rules.
    fn collect(
        &self,
        package: &str,
        subject: &str,
        rules: &serde_json::Map<String, serde_json::Value>,
        out: &mut Vec<(String, bool, String)>,
    ) -> Result<(), GateError> {
        use super::rego_check::{EXCEPTION, exception_key, is_decision_rule};
        let shape_error = |rule: &str, expected: &str, got: &serde_json::Value| {
            let place = self
                .classified
                .places
                .get(&format!("{package}.{rule}"))
                .cloned()
                .unwrap_or_else(|| format!("data.{package}"));
            GateError::Evaluation {
                policy: place,
                subject: subject.to_string(),
                message: format!(
                    "rule {rule} in package {package} gave {}; {expected}",
                    shape_of(got)
                ),
            }
        };
        let mut exempt = BTreeSet::new();
        if let Some(v) = rules.get(EXCEPTION) {
            let serde_json::Value::Array(sets) = v else {
                return Err(shape_error(EXCEPTION, EXCEPTION_SHAPE, v));
            };
            for names in sets {
                let serde_json::Value::Array(names) = names else {
                    return Err(shape_error(EXCEPTION, EXCEPTION_SHAPE, names));
                };
                for n in names {
                    let serde_json::Value::String(n) = n else {
                        return Err(shape_error(EXCEPTION, EXCEPTION_SHAPE, n));
                    };
                    exempt.insert(n.clone());
                }
            }
        }
        for (rule, value) in rules {
            if !is_decision_rule(rule) || exempt.contains(exception_key(rule)) {
                continue;
            }
            let deny = !rule.starts_with("warn");
            match value {
                serde_json::Value::Array(items) => {
                    for item in items {
                        match message_of(item) {
                            Some(m) => out.push((rule.clone(), deny, m)),
                            None => return Err(shape_error(rule, MESSAGE_SHAPE, item)),
                        }
                    }
                }
                serde_json::Value::Bool(true) => out.push((rule.clone(), deny, String::new())),
                serde_json::Value::Bool(false) => {}
                other => return Err(shape_error(rule, MESSAGE_SHAPE, other)),
            }
        }
        Ok(())
    }

    fn finding(&self, subject: &str, message: String, deny: bool, today: NaiveDate) -> Finding {
        let rule = rule_id(&message);
        let phase = self.phases.get(&rule);
        let in_warn_phase = phase.is_some_and(|p| today < p.warn_until);
        Finding {
            rule,
            subject: subject.to_string(),
            message,
            enforced: deny && !in_warn_phase,
            enforced_from: phase
                .filter(|_| deny && in_warn_phase)
                .map(|p| match &p.reason {
                    Some(r) => format!("{} ({r})", p.warn_until),
                    None => p.warn_until.to_string(),
                }),
        }
    }
}

fn parse_phases(text: &str) -> Result<BTreeMap<String, Phase>, GateError> {
    let err = |message: String| GateError::Config {
        file: PHASES_FILE.into(),
        message,
    };
    let raw: PhasesFile = toml::from_str(text).map_err(|e| err(one_line(e.message())))?;
    raw.rules
        .into_iter()
        .map(|(id, p)| {
            let warn_until =
                NaiveDate::parse_from_str(&p.warn_until, "%Y-%m-%d").map_err(|_| {
                    err(format!(
                        "rules.{id}.warn_until: {:?} is not a date; write YYYY-MM-DD",
                        p.warn_until
                    ))
                })?;
            Ok((
                id,
                Phase {
                    warn_until,
                    reason: p.reason,
                },
            ))
        })
        .collect()
}

const MESSAGE_SHAPE: &str =
    "a decision rule yields messages: strings, or objects with a string msg (conftest's shapes)";
const EXCEPTION_SHAPE: &str = "an exception yields lists of rule names: `exception contains rules if { …; rules := [\"foo\"] }`";

/// conftest accepts a string or an object with a string `msg`.
fn message_of(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(m) => m.get("msg").and_then(|m| m.as_str()).map(str::to_string),
        _ => None,
    }
}

fn shape_of(v: &serde_json::Value) -> String {
    let text = v.to_string();
    let short: String = text.chars().take(80).collect();
    let kind = match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    };
    if short.len() < text.len() {
        format!("{kind} ({short}…)")
    } else {
        format!("{kind} ({short})")
    }
}

/// Every file under `dir`, depth-first, sorted (the tree lists sorted).
fn walk(
    tree: &dyn TreeReader,
    dir: &str,
    depth: usize,
    f: &mut dyn FnMut(&str),
) -> Result<(), GateError> {
    const MAX_DEPTH: usize = 8;
    let names = match tree.list(dir) {
        Ok(n) => n,
        Err(ReadError::NotFound { .. }) if depth == 0 => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    for name in names {
        let path = format!("{dir}/{name}");
        if tree.is_dir(&path)? {
            if depth + 1 >= MAX_DEPTH {
                return Err(GateError::Config {
                    file: path,
                    message: format!("policies nested deeper than {MAX_DEPTH} directories"),
                });
            }
            walk(tree, &path, depth + 1, f)?;
        } else {
            f(&path);
        }
    }
    Ok(())
}

/// A JSON or YAML data file as a document rooted at its directory under
/// `policies/admission/` (conftest/OPA's loader convention).
fn load_data(tree: &dyn TreeReader, file: &str) -> Result<regorus::Value, GateError> {
    let err = |message: String| GateError::Config {
        file: file.to_string(),
        message,
    };
    let text = tree.read_string(file)?;
    let mut value: serde_json::Value = if file.ends_with(".json") {
        serde_json::from_str(&text).map_err(|e| err(format!("not JSON: {e}")))?
    } else {
        let v: yaml_serde::Value =
            yaml_serde::from_str(&text).map_err(|e| err(format!("not YAML: {e}")))?;
        serde_json::to_value(v).map_err(|e| err(format!("not a JSON-compatible document: {e}")))?
    };
    if !value.is_object() {
        return Err(err(format!(
            "a data file is an object of named values (it is merged into data); this one is {}",
            shape_of(&value)
        )));
    }
    let rel = file
        .strip_prefix(ADMISSION_DIR)
        .unwrap_or(file)
        .trim_start_matches('/');
    let dirs: Vec<&str> = rel.split('/').collect();
    for d in dirs[..dirs.len().saturating_sub(1)].iter().rev() {
        value = serde_json::json!({ *d: value });
    }
    regorus::Value::from_json_str(&value.to_string())
        .map_err(|e| err(format!("not usable as data: {}", one_line(&e.to_string()))))
}

/// `images-by-digest: …` → `images-by-digest`.
fn rule_id(message: &str) -> String {
    match message.split_once(':') {
        Some((id, _))
            if !id.is_empty()
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-') =>
        {
            id.to_string()
        }
        _ => "unnamed".into(),
    }
}

fn describe(obj: &yaml_serde::Value) -> String {
    let get = |k: &str| obj.get(k).and_then(|v| v.as_str()).unwrap_or("?");
    let meta = obj.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(|v| v.as_str())
        .unwrap_or("?");
    match meta
        .and_then(|m| m.get("namespace"))
        .and_then(|v| v.as_str())
    {
        Some(ns) => format!("{}/{name} in {ns}", get("kind")),
        None => format!("{}/{name}", get("kind")),
    }
}

/// regorus reports `--> file:line:col | … | ^ error: message`; keep
/// `file:line:col` as the place and the message after `error:`.
fn policy_error(file: &str, raw: &str) -> GateError {
    let place = raw
        .split("--> ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or(file)
        .to_string();
    let message = raw
        .rsplit_once("error: ")
        .map(|(_, m)| one_line(m))
        .unwrap_or_else(|| one_line(raw));
    GateError::Policy {
        file: place,
        message,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
