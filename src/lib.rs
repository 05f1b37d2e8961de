//! platform-capstone: a Git-native GitOps reconciler.
//!
//! It watches a config repo's environment branches, renders overlays,
//! enforces signature / vulnerability / admission gates, rolls changes out
//! as canaries with metric health gates, promotes image digests by signed
//! commits to the next environment's branch, and reverts on failure.
//!
//! Module map (pipeline order; see docs/architecture.md):
//! - [`config`]: `envs/<env>.toml` and the daemon config; strict parsing, validation
//! - [`model`]: domain types (digests, image pins)
//! - [`source`]: the config repo: fetch, confined reads, signed CAS commits, reverts, notes
//! - [`signing`]: SSH signatures and `allowed_signers`
//! - [`blueprint`]: the reference config repo compiled in; `init`
//! - [`gates`]: signature (keyed cosign), vulnerability, admission (Rego); `check`
//! - [`ports`]: the `Target`, `TrafficRouter`, `Metrics` and `Registry` traits the engine talks through
//! - [`fakes`]: in-memory target, router, metrics and registry (the engine's fast tests)
//! - [`adapters`]: the I/O edges: registry, podman, HAProxy, Prometheus, traffic generator
//! - [`local`]: the local stack (registry, HAProxy, Prometheus, podman) and demo images
//! - [`render`]: kustomize-compatible overlay rendering (pure)
//! - [`rollout`]: the canary decision core: interval judgement and the step state machine (pure)
//! - [`redact`]: Secret masking for diffs, logs and reports
//! - [`yaml`]: the one bounded door for YAML
//! - [`fsutil`]: atomic file writes
//! - [`engine`]: the release engine: gates → canary → bake → promote, rollback and revert
//! - [`drift`]: config drift's pure core: normalisation, masking, diff (issue 8, partial)
//! - [`audit`]: release records as git notes, release ids
//! - [`daemon`]: the long-running reconciler: polling, watch, webhook, workers per env, HTTP, metrics
//! - [`cli`]: the command line, one file per subcommand

#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod adapters;
pub mod audit;
pub mod blueprint;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod drift;
pub mod drill;
pub mod engine;
pub mod fakes;
pub mod fsutil;
pub mod gates;
pub mod local;
pub mod model;
pub mod ports;
pub mod redact;
pub mod render;
pub mod rollout;
pub mod signing;
pub mod source;
pub mod yaml;
mod yaml_emit;
