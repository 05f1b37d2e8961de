//! platform-capstone: a Git-native GitOps reconciler.
//!
//! It watches a config repo's environment branches, renders overlays,
//! enforces signature / vulnerability / admission gates, rolls changes out
//! as canaries with metric health gates, promotes image digests by signed
//! commits to the next environment's branch, and reverts on failure.
//!
//! Two crates (see docs/architecture.md): the pure core
//! (`platform-capstone-core`, re-exported here as `audit`, `fakes`,
//! `fsutil`, `gates`, `model`, `ports`, `redact`, `release`, `render`, `rollout`,
//! `signing`, `yaml`, and under `config`, `source`, `drift`, `drill`) and
//! this shell, which owns every edge:
//! - [`source`]: the config repo over git2: fetch, signed CAS commits, reverts, notes; trust of heads
//! - [`config`]: the daemon's own TOML (the env files are the core's)
//! - [`blueprint`]: the reference config repo compiled in; `init`
//! - [`adapters`]: the I/O edges: registry, podman, Kubernetes, HAProxy, Prometheus, traffic
//! - [`local`]: the local stack (registry, HAProxy, Prometheus, podman) and demo images
//! - [`engine`]: the release driver: gates, then the `release` machine's actions through the ports, then promotion; rollback and revert
//! - [`drift`]: drift's edges (`drift::run`); [`drill`]: the drill scenarios (`drill::run`) and their hands (`drill::lab`)
//! - [`wiring`]: the composition root: daemon config → `Workspace` (signer, repo, store, envs) and an env's target → its adapters
//! - [`daemon`]: the long-running reconciler: polling, watch, webhook, workers per env, HTTP, metrics
//! - [`cli`]: the command line, one file per subcommand

#![deny(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub use platform_capstone_core::{
    audit, fakes, fsutil, gates, model, ports, redact, release, render, rollback, rollout,
    schedule, signing, yaml,
};

pub mod adapters;
pub mod blueprint;
pub mod cli;
pub mod config;
pub mod cosign_key;
pub mod daemon;
pub mod drift;
pub mod drill;
pub mod engine;
pub mod local;
pub mod source;
pub mod wiring;
