//! Admission gate: Rego policies in `policies/admission/*.rego`, evaluated
//! with `regorus` over each rendered object, conftest conventions: rules
//! `deny`, `violation` (and `deny_*`, `violation_*`) in package `main`
//! fail, `warn` (and `warn_*`) warns; a boolean rule that is true fails (or
//! warns) with its name. Before anything is evaluated, `rego_check` refuses
//! recursion and decision rules in packages the gate does not evaluate. A message
//! starts with its rule id (`images-by-digest: …`); `phases.toml` can keep
//! a rule in warn until a date, after which it is enforced — a scheduled
//! warn → enforce, decided against an injected date (never the wall clock
//! inside the gate).

use super::GateError;
use crate::model::{Finding, Verdict};
use crate::source::{ReadError, TreeReader};
use chrono::NaiveDate;
use serde::Deserialize;
use std::collections::BTreeMap;
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
    /// Loads every `.rego` file under `policies/admission/` and the phases.
    /// A policy that does not parse is an error naming file and line.
    pub fn load(tree: &dyn TreeReader) -> Result<Self, GateError> {
        let mut engine = regorus::Engine::new();
        engine.set_strict_builtin_errors(true);
        let mut files = Vec::new();
        let names = match tree.list(ADMISSION_DIR) {
            Ok(n) => n,
            Err(ReadError::NotFound { .. }) => Vec::new(),
            Err(e) => return Err(e.into()),
        };
        for name in names.iter().filter(|n| n.ends_with(".rego")) {
            let file = format!("{ADMISSION_DIR}/{name}");
            let text = tree.read_string(&file)?;
            engine
                .add_policy(file.clone(), text)
                .map_err(|e| policy_error(&file, &e.to_string()))?;
            files.push(file);
        }
        if !files.is_empty() {
            let ast = engine
                .get_ast_as_json()
                .map_err(|e| policy_error(ADMISSION_DIR, &e.to_string()))?;
            super::rego_check::check(&ast)
                .map_err(|(file, message)| GateError::Policy { file, message })?;
        }
        if files.is_empty() {
            return Err(GateError::Config {
                file: ADMISSION_DIR.into(),
                message: "no .rego policies: an admission gate with no policy would pass anything; add policies or set gates.admission = \"warn\"".into(),
            });
        }
        let phases = match tree.read_string(PHASES_FILE) {
            Ok(text) => parse_phases(&text)?,
            Err(ReadError::NotFound { .. }) => BTreeMap::new(),
            Err(e) => return Err(e.into()),
        };
        Ok(Self {
            engine,
            files,
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

    /// Every decision rule of package `main` for the current input, in one
    /// evaluation: `(rule, deny?, message)` per message (an empty message
    /// for a boolean rule that holds).
    fn decisions(&mut self, subject: &str) -> Result<Vec<(String, bool, String)>, GateError> {
        let package = super::rego_check::PACKAGE;
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
        let mut out = Vec::new();
        for r in results.result {
            for expr in r.expressions {
                let json = expr.value.to_json_str().unwrap_or_default();
                let value: serde_json::Value =
                    serde_json::from_str(&json).unwrap_or(serde_json::Value::Null);
                let serde_json::Value::Object(rules) = value else {
                    continue;
                };
                for (rule, value) in rules {
                    if !super::rego_check::is_decision_rule(&rule) {
                        continue;
                    }
                    let deny = !rule.starts_with("warn");
                    match value {
                        serde_json::Value::Array(items) => {
                            for item in items {
                                out.push((rule.clone(), deny, message_of(&item)));
                            }
                        }
                        serde_json::Value::Bool(true) => out.push((rule, deny, String::new())),
                        serde_json::Value::Bool(false) | serde_json::Value::Null => {}
                        other => out.push((rule, deny, message_of(&other))),
                    }
                }
            }
        }
        Ok(out)
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

/// conftest accepts a string or an object with `msg`.
fn message_of(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(m) => m
            .get("msg")
            .and_then(|m| m.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string()),
        other => other.to_string(),
    }
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
