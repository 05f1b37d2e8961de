//! platform-capstone's core: the domain model, config parsing and
//! validation, rendering, gate decisions, the canary and drift maths, the
//! schedule, redaction, YAML, and the ports every edge implements — with no
//! git, no async runtime, no HTTP and no Kubernetes client (CI checks the
//! dependency tree: `scripts/lib/core-deps.sh`). The shell crate
//! (`platform-capstone`) drives these through its adapters.
//!
//! Module map:
//! - [`model`]: domain types (digests, image pins, verdicts, last good release, OCI manifests)
//! - [`config`]: `envs/<env>.toml` and the trust root; strict parsing, every problem reported
//! - [`source`]: the `TreeReader` port and its confinement (`..`, absolute, symlinks, `.git`)
//! - [`render`]: kustomize-compatible overlay rendering
//! - [`gates`]: signature (keyed and keyless cosign), vulnerability, admission (Rego)
//! - [`rollout`]: the canary decision core: interval judgement and the step machine
//! - [`release`]: a release in one env as a machine, `step(state, plan, observation) -> (actions, state)`
//! - [`rollback`]: manual rollback, pure: the signed request, the target, the commit, the hold
//! - [`drift`]: config and SLO drift, pure: normalisation, masking, diff, burn rates
//! - [`drill`]: drill records and statistics
//! - [`schedule`]: cron firing, pure
//! - [`audit`]: release records, promotion records, approvals; release ids
//! - [`signing`]: SSH signatures and `allowed_signers`
//! - [`ports`]: `Target`, `TrafficRouter`, `Metrics`, `Registry`, each with its own error
//! - [`fakes`]: in-memory implementations of every port
//! - [`redact`]: Secret masking; [`yaml`]: the one bounded door for YAML; [`fsutil`]: atomic writes

#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod audit;
pub mod config;
pub mod drift;
pub mod drill;
pub mod fakes;
pub mod fsutil;
pub mod gates;
pub mod model;
pub mod ports;
pub mod redact;
pub mod release;
pub mod render;
pub mod rollback;
pub mod rollout;
pub mod schedule;
pub mod signing;
pub mod source;
pub mod yaml;
mod yaml_emit;
pub mod yaml_go;
