//! Integration tests, one binary (fast to link, one shared fixture set).
//!
//! Module map — each file is named after what it proves:
//! - `bundles`: Sigstore bundles (v0.1–v0.3, keyed, keyless, DSSE, Rekor v2)
//!   against every case of `../shared/sigstore-conformance/`, and `verify-bundle`
//! - `confinement`: reads never leave the repo (`..`, absolute, symlinks, size)
//! - `git_writes`: signed commits, CAS pushes under concurrency, reverts, notes
//! - `daemon`: the daemon binary: health, readiness, metrics, API, webhook HMAC,
//!   tokens, file watch, SIGHUP reload, SIGTERM
//! - `drift`: config and SLO drift on the real stack: a replaced pod's diff,
//!   Secret values masked everywhere, heal, fault → burn → revert, no data
//! - `drill`: every drill scenario on the real stack; a loose gate fails the drill
//! - `engine`: the release engine's scenarios over the in-memory ports and a
//!   real git remote, in milliseconds: steps, revert, pause, abort, resume
//! - `fetch`: one fetch of every env branch; pruning; stale-lock recovery
//! - `gates`: the admission gate with the blueprint's real policies
//! - `corpus`: the renderer vs the reference kustomize on the 220 real
//!   overlays of `../shared/kustomize-corpus/` (byte-identical, or listed)
//! - `golden`: the renderer vs the reference kustomize on the checked-in cases
//!   (every case compared; the live run is `#[ignore]`d: CI does not build it)
//! - `interop`: upstream Go material (`tests/go/interop`): a key encrypted as
//!   `cosign generate-key-pair` does, a registry with the referrers API, and a
//!   token server in front of docker-registry (the bearer-token flow)
//! - `keyless`: Fulcio/Rekor verification with a local CA and log key
//! - `kubernetes`: the kube target and router, request by request, against a
//!   scripted API server (tower-test); a real-cluster suite, `#[ignore]`d,
//!   for `--ignored` with KUBECONFIG set
//! - `local_stack`: the local stack for real: podman, HAProxy, Prometheus, registry
//! - `registry`: keyed and keyless cosign signatures and attestations
//!   against the real docker-registry
//! - `release`: the release engine through the binary on the real stack:
//!   promotion, windows, approval, abort + revert, gate stop, inconclusive, kill -9
//! - `render`: renderer failure modes, the render cache, diff masking
//! - `systemd`: the unit verifies and scores ≤ 2.5 exposure offline
//! - `trust`: prod is defined only by what its pinned signers signed: hijack
//!   branch, branch swap, self-signed signer list, force push, broken file
//! - `validation`: every env-file problem, table-driven; hostile TOML
//! - `cli`: the binary end to end: init, validate, status, keygen
//!
//! The release, drift and drill tests share one local stack per run of this
//! binary (`support::world::shared_stack`: brought up once, reset between
//! tests, brought down by a watchdog when the process exits), in 1 s
//! analysis intervals; the local-stack test brings up and tears down its own.
//!
//! Everything runs against real git: temp repos, bare remotes on disk, a
//! `git daemon` on loopback for the smart protocol, and the stock git CLI as
//! the independent checker (`git verify-commit`, `git notes`).

mod support;

mod bundles;
mod cli;
mod confinement;
mod corpus;
mod daemon;
mod drift;
mod drill;
mod engine;
mod fetch;
mod gates;
mod git_writes;
mod golden;
mod interop;
mod keyless;
mod kubernetes;
mod local_stack;
mod registry;
mod release;
mod render;
mod rollback;
mod systemd;
mod trust;
mod validation;
