//! The ports: the small traits the release engine and drift talk through,
//! so the decision core is tested without I/O and each edge is tested
//! against the real thing (podman, HAProxy, Prometheus) or, for the
//! Kubernetes API that cannot run here, against its exact requests.
//!
//! - [`Target`]: where manifests run (podman locally, Kubernetes in production)
//! - [`TrafficRouter`]: how traffic splits between stable and canary
//! - [`Metrics`]: where SLO queries are answered (Prometheus)
//! - [`Registry`]: where images, signatures and attestations live (an OCI registry)
//!
//! Everything is synchronous: each call is one bounded exchange with a
//! local process or service; the daemon runs them on blocking threads.

use std::fmt;

/// Label on everything the tool manages: the inventory prune works from.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY_VALUE: &str = "platform-capstone";
/// Label naming the app (the traffic-split unit) an object belongs to.
pub const APP_LABEL: &str = "platform-capstone.dev/app";
/// Label naming the track: `stable` or `canary`.
pub const TRACK_LABEL: &str = "platform-capstone.dev/track";
/// Label naming the env (its namespace) an object belongs to.
pub const NAMESPACE_LABEL: &str = "platform-capstone.dev/namespace";
/// Label naming the release that applied an object.
pub const RELEASE_LABEL: &str = "platform-capstone.dev/release";

/// Stable serves the last good release; canary the one under analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    Stable,
    Canary,
}

impl Track {
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Stable => "stable",
            Track::Canary => "canary",
        }
    }
}

impl fmt::Display for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One workload placement: an app of an env, on a track.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Workload {
    pub namespace: String,
    pub app: String,
    pub track: Track,
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{} ({})", self.namespace, self.app, self.track)
    }
}

/// What the target reached after an apply: the endpoints serving the
/// workload (for the router) and how many replicas are ready.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    pub desired: usize,
    pub ready: usize,
    /// `host:port` of every replica (podman), or the Service (Kubernetes).
    pub endpoints: Vec<String>,
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.desired > 0 && self.ready >= self.desired
    }
}

/// A live object read back from the target, in Kubernetes shape, with the
/// labels that say what manages it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveObject {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub object: yaml_serde::Value,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TargetError {
    /// The manifests cannot run on this target; fix the overlay.
    #[error("{object}: {message}")]
    Unsupported { object: String, message: String },
    /// The target could not be reached or failed: infrastructure, never a
    /// reason to revert.
    #[error("target unavailable: {0}")]
    Unavailable(String),
    #[error("{workload}: not ready within {seconds} s: {detail}")]
    NotReady {
        workload: String,
        seconds: u64,
        detail: String,
    },
}

/// Where rendered manifests run.
pub trait Target {
    /// Runs `objects` (one env's rendered Deployment/Service/ConfigMap/
    /// Secret) as `track` of `workload.app`, replacing what that track ran
    /// before. `release` is recorded on everything applied.
    fn apply(
        &self,
        workload: &Workload,
        objects: &[yaml_serde::Value],
        release: &str,
    ) -> Result<Readiness, TargetError>;
    /// After the router moved to what `apply` returned: removes what the
    /// workload ran before (older generations). Returns what was removed.
    fn settle(&self, workload: &Workload) -> Result<Vec<String>, TargetError>;
    /// Removes a track (e.g. the canary after an abort). Idempotent.
    fn remove(&self, workload: &Workload) -> Result<(), TargetError>;
    /// Readiness of a track now.
    fn readiness(&self, workload: &Workload) -> Result<Readiness, TargetError>;
    /// Every live object this tool manages in `namespace`.
    fn live(&self, namespace: &str) -> Result<Vec<LiveObject>, TargetError>;
    /// Removes managed objects of `namespace` whose `kind/name` is not in
    /// `keep`; returns what was removed.
    fn prune(&self, namespace: &str, keep: &[String]) -> Result<Vec<String>, TargetError>;
    /// `desired` as `live` would report it, for drift. A target that shows
    /// less than it was given (podman) projects; the default is identity.
    fn observable(
        &self,
        _namespace: &str,
        desired: &[yaml_serde::Value],
    ) -> Result<Vec<yaml_serde::Value>, TargetError> {
        Ok(desired.to_vec())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("{0}: no route for this app; add it to the traffic router's configuration")]
    UnknownRoute(String),
    #[error("traffic router unavailable: {0}")]
    Unavailable(String),
    #[error("traffic router refused {command:?}: {answer}")]
    Refused { command: String, answer: String },
}

/// A traffic split: the canary's share in percent, the rest to stable.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Split {
    pub stable: Vec<String>,
    pub canary: Vec<String>,
    pub canary_percent: u8,
}

/// How traffic is split between the tracks.
pub trait TrafficRouter {
    /// Points the app's route at these endpoints with these weights,
    /// without reloads or dropped connections.
    fn route(&self, namespace: &str, app: &str, split: &Split) -> Result<(), RouterError>;
    /// The split in effect now, as the router reports it.
    fn current(&self, namespace: &str, app: &str) -> Result<Split, RouterError>;
}

/// One query answer. No data and NaN are distinct answers, never a number;
/// a provider error is an `Err`. None of them is ever read as healthy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sample {
    Value(f64),
    NoData,
    NaN,
}

impl fmt::Display for Sample {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sample::Value(v) => write!(f, "{v}"),
            Sample::NoData => f.write_str("no data"),
            Sample::NaN => f.write_str("NaN"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// Prometheus unreachable, timing out, or answering an error: the
    /// analysis is inconclusive, never healthy.
    #[error("metrics provider error: {0}")]
    Provider(String),
    /// The query itself is wrong (bad PromQL, a template variable missing,
    /// several series where one was expected): fix the env's SLO.
    #[error("query {query:?}: {message}")]
    Query { query: String, message: String },
}

/// Where SLO queries are answered.
pub trait Metrics {
    /// Evaluates `query` at `at` (now when `None`), expecting one series.
    fn instant(
        &self,
        query: &str,
        at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<Sample, MetricsError>;
    /// Evaluates `query` over a range, expecting one series; the samples
    /// in time order (seconds since the epoch, value).
    fn range(
        &self,
        query: &str,
        start: chrono::DateTime<chrono::Utc>,
        end: chrono::DateTime<chrono::Utc>,
        step: std::time::Duration,
    ) -> Result<Vec<(i64, Sample)>, MetricsError>;
}

/// An OCI registry: what the signature and vulnerability gates read
/// (manifests and blobs, capped and digest-checked by the adapter) and
/// what signing and attesting write.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    #[error("{reference}: not a valid image reference: {message}")]
    Reference { reference: String, message: String },
    #[error(
        "registry {registry} unreachable or failing ({message}); nothing was decided, the gate fails closed"
    )]
    Unavailable { registry: String, message: String },
    #[error("{reference}: {message}")]
    Invalid { reference: String, message: String },
    #[error(
        "registry {registry}: no usable credentials ({message}); fix the docker/podman auth file or its credential helper"
    )]
    Credentials { registry: String, message: String },
}

impl RegistryError {
    /// Registry down or failing, or its credentials unusable: an
    /// operations problem, not the release's: pause and alert, never revert.
    pub fn is_infrastructure(&self) -> bool {
        matches!(
            self,
            RegistryError::Unavailable { .. } | RegistryError::Credentials { .. }
        )
    }
}

pub trait Registry {
    /// The OCI image manifest at `reference` (`repo:tag` or `repo@digest`)
    /// and its digest; `None` when the registry says it does not exist.
    fn manifest(
        &self,
        reference: &str,
    ) -> Result<Option<(crate::model::oci::Manifest, String)>, RegistryError>;
    /// A blob of `repo`, at most `cap` bytes, checked against `digest`.
    fn blob(&self, repo: &str, digest: &str, cap: usize) -> Result<Vec<u8>, RegistryError>;
    /// Uploads a blob to `repo`; returns its digest.
    fn push_blob(&self, repo: &str, bytes: Vec<u8>) -> Result<String, RegistryError>;
    /// Uploads a manifest under `reference` (a tag); returns its digest as
    /// the registry computed it.
    fn push_manifest(
        &self,
        reference: &str,
        manifest: &crate::model::oci::Manifest,
    ) -> Result<String, RegistryError>;
    /// The OCI 1.1 referrers of `repo@digest` from the registry's
    /// referrers API (`GET /v2/<repo>/referrers/<digest>`); `Ok(None)` when
    /// the registry has no referrers API (it answers 404), so the caller
    /// falls back to the referrers tag.
    fn referrers(
        &self,
        repo: &str,
        digest: &str,
    ) -> Result<Option<crate::model::oci::Index>, RegistryError>;
    /// The descriptor (media type, digest, size) of the manifest at
    /// `reference`, as a referrer's `subject` names it; `None` when it
    /// does not exist.
    fn manifest_descriptor(
        &self,
        reference: &str,
    ) -> Result<Option<crate::model::oci::Descriptor>, RegistryError>;
    /// The image index at `reference`; `None` when it does not exist.
    fn index(&self, reference: &str) -> Result<Option<crate::model::oci::Index>, RegistryError>;
    /// Uploads an image index under `reference` (a tag); returns its digest.
    fn push_index(
        &self,
        reference: &str,
        index: &crate::model::oci::Index,
    ) -> Result<String, RegistryError>;
    /// Pushes an image: its config and layer blobs, then an OCI manifest
    /// tagged `reference` (`repo:tag`). Returns the manifest digest.
    fn push_image(
        &self,
        reference: &str,
        config: Vec<u8>,
        layers: Vec<Vec<u8>>,
    ) -> Result<String, RegistryError> {
        let repo = reference.rsplit_once(':').map_or(reference, |(r, _)| r);
        let config_descriptor = crate::model::oci::descriptor(
            "application/vnd.oci.image.config.v1+json",
            &config,
            None,
        );
        self.push_blob(repo, config)?;
        let mut descriptors = Vec::new();
        for layer in layers {
            descriptors.push(crate::model::oci::descriptor(
                "application/vnd.oci.image.layer.v1.tar",
                &layer,
                None,
            ));
            self.push_blob(repo, layer)?;
        }
        let manifest = crate::model::oci::Manifest {
            schema_version: 2,
            media_type: Some(crate::model::oci::OCI_MANIFEST.into()),
            config: config_descriptor,
            layers: descriptors,
            subject: None,
            artifact_type: None,
            annotations: None,
        };
        self.push_manifest(reference, &manifest)
    }
}
