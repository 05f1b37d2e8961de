//! Gates stage: what must hold before anything is applied or committed.
//!
//! Each gate returns a [`Verdict`](crate::model::Verdict), or an error
//! when it could not evaluate — a policy that does not parse, an
//! evaluation over budget — which callers treat as a failure: gates fail
//! closed, they never pass or skip on error.
//!
//! Modules: `admission` (Rego, severity phases), `bundle` (Sigstore
//! bundles, verified by the Sigstore project's `sigstore-verify`), `vulnerability` (policy
//! and report decision), `signature` (keyed cosign verification),
//! `keyless` (Fulcio certificate chain, identity and Rekor bundle, offline),
//! `rego_check` (recursion and unevaluated rules, refused before evaluation),
//! `trust` (trusted keys and identities), `cosign` (the legacy `.sig`/`.att`
//! registry layout of signatures and attestations), `oci_bundle` (cosign 3's
//! layout: bundles as OCI 1.1 referrers or under the fallback tag), `promotion`
//! (a promotion as a SLSA verification summary on each digest), `run`
//! (all three for one render).

pub mod admission;
pub mod bundle;
pub mod cosign;
pub mod keyless;
pub mod oci_bundle;
pub mod promotion;
pub mod rego_check;
pub mod run;
pub mod signature;
pub mod trust;
pub mod vulnerability;

/// Why a gate could not evaluate. Every variant fails the gate.
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error("{file}: {message}; fix the policy (the gate fails until it loads)")]
    Policy { file: String, message: String },
    #[error("{file}: {message}")]
    Config { file: String, message: String },
    #[error("{policy} on {subject}: evaluation failed: {message}; the gate fails closed")]
    Evaluation {
        policy: String,
        subject: String,
        message: String,
    },
    #[error(
        "{subject}: evaluation exceeded its {budget_ms} ms budget; simplify the policy (the gate fails closed)"
    )]
    Budget { subject: String, budget_ms: u128 },
    #[error(transparent)]
    Read(#[from] crate::source::ReadError),
}
