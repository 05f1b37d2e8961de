//! The daemon's own Prometheus metrics (`/metrics`, OpenMetrics text):
//! reconcile durations, gate outcomes, rollout steps, promotions, reverts,
//! git fetch errors, rejected webhooks, last successful fetch per env.

use crate::engine::store::Store;
use crate::engine::{EngineError, EnvOutcome};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnvLabel {
    pub env: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GateLabels {
    pub env: String,
    pub gate: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StepLabels {
    pub env: String,
    pub step: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub env: String,
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    pub reconcile_seconds: Family<EnvLabel, Histogram>,
    pub reconciles: Family<OutcomeLabels, Counter>,
    pub gates: Family<GateLabels, Counter>,
    pub steps: Family<StepLabels, Counter>,
    pub promotions: Family<EnvLabel, Counter>,
    pub reverts: Family<EnvLabel, Counter>,
    pub fetch_errors: Counter,
    pub webhook_rejected: Counter,
    pub last_fetch: Family<EnvLabel, Gauge>,
    /// 1 for the env's current status (ready, broken, untrusted, missing).
    pub env_status: Family<StatusLabels, Gauge>,
    /// SIGHUP reloads by result: `applied` or `refused` (the old config stays).
    pub config_reloads: Family<ResultLabel, Counter>,
    /// Manual rollbacks through the API, by env and result: `pushed`,
    /// `queued`, `conflict` or `refused`.
    pub rollbacks: Family<OutcomeLabels, Counter>,
    /// 1 while a manual rollback holds the env (its commit not landed).
    pub held: Family<EnvLabel, Gauge>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub env: String,
    pub status: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("platform_capstone");
        let reconcile_seconds = Family::<EnvLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([0.1, 1.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0])
        });
        let m = Self {
            registry: Registry::default(),
            reconcile_seconds: reconcile_seconds.clone(),
            reconciles: Family::default(),
            gates: Family::default(),
            steps: Family::default(),
            promotions: Family::default(),
            reverts: Family::default(),
            fetch_errors: Counter::default(),
            webhook_rejected: Counter::default(),
            last_fetch: Family::default(),
            env_status: Family::default(),
            config_reloads: Family::default(),
            rollbacks: Family::default(),
            held: Family::default(),
        };
        registry.register(
            "reconcile_duration_seconds",
            "Duration of one env's reconcile",
            reconcile_seconds,
        );
        registry.register(
            "reconciles",
            "Reconciles by env and outcome",
            m.reconciles.clone(),
        );
        registry.register(
            "gate_outcomes",
            "Gate verdicts by env, gate and outcome",
            m.gates.clone(),
        );
        registry.register(
            "rollout_steps",
            "Finished rollout steps by env, step and result",
            m.steps.clone(),
        );
        registry.register(
            "promotions",
            "Promotion commits made, by source env",
            m.promotions.clone(),
        );
        registry.register("reverts", "Revert commits made, by env", m.reverts.clone());
        registry.register(
            "git_fetch_errors",
            "Failed fetches of the config repo",
            m.fetch_errors.clone(),
        );
        registry.register(
            "webhook_rejected",
            "Webhook calls with a bad or missing signature",
            m.webhook_rejected.clone(),
        );
        registry.register(
            "last_successful_fetch_timestamp_seconds",
            "Unix time of the last successful fetch, per env",
            m.last_fetch.clone(),
        );
        registry.register(
            "env_status",
            "1 for each env's status: ready, broken (its own files are invalid), untrusted (signature, policy signer or rewritten history) or missing",
            m.env_status.clone(),
        );
        registry.register(
            "config_reloads",
            "SIGHUP config reloads by result: applied, or refused (invalid; the old config stays)",
            m.config_reloads.clone(),
        );
        registry.register(
            "manual_rollbacks",
            "Manual rollbacks through the API by env and result: pushed, queued (git down), conflict, refused",
            m.rollbacks.clone(),
        );
        registry.register(
            "env_held",
            "1 while a manual rollback holds the env (its commit has not landed)",
            m.held.clone(),
        );
        Self { registry, ..m }
    }

    pub fn encode(&self) -> Result<String, String> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .map_err(|e| e.to_string())?;
        Ok(out)
    }

    /// Counts one reconcile from its outcome and the record the engine saved.
    pub fn observe(
        &self,
        env: &str,
        took: Duration,
        result: &Result<EnvOutcome, EngineError>,
        store: &Store,
        release: &str,
    ) {
        let e = EnvLabel {
            env: env.to_string(),
        };
        self.reconcile_seconds
            .get_or_create(&e)
            .observe(took.as_secs_f64());
        let outcome = match result {
            Ok(EnvOutcome::Complete) => "complete",
            Ok(EnvOutcome::Promoted { .. }) => "promoted",
            Ok(EnvOutcome::Waiting { .. }) => "waiting",
            Ok(EnvOutcome::Failed { .. }) => "failed",
            Ok(EnvOutcome::Inconclusive { .. }) => "inconclusive",
            Ok(EnvOutcome::Aborted { .. }) => "aborted",
            Err(EngineError::Interrupted) => "interrupted",
            Err(EngineError::Busy(_)) => "busy",
            Err(_) => "paused",
        };
        self.reconciles
            .get_or_create(&OutcomeLabels {
                env: env.to_string(),
                outcome: outcome.into(),
            })
            .inc();
        if let Ok(EnvOutcome::Promoted {
            commit: Some(_), ..
        }) = result
        {
            self.promotions.get_or_create(&e).inc();
        }
        if let Ok(EnvOutcome::Failed {
            revert: Some(_), ..
        }) = result
        {
            self.reverts.get_or_create(&e).inc();
        }
        if let Ok(Some(state)) = store.release(env)
            && state.release == release
        {
            for c in &state.record.checks {
                self.gates
                    .get_or_create(&GateLabels {
                        env: env.to_string(),
                        gate: c.gate.clone(),
                        outcome: c.outcome.to_string(),
                    })
                    .inc();
            }
            for s in state.record.steps.iter() {
                if s.result == crate::rollout::StepResult::Running {
                    continue;
                }
                let result = s.result.label().to_string();
                self.steps
                    .get_or_create(&StepLabels {
                        env: env.to_string(),
                        step: s.name.clone(),
                        result,
                    })
                    .inc();
            }
        }
    }
}
