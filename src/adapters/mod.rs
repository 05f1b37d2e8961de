//! Adapters: the I/O edges behind the ports ([`crate::ports`]). Nothing
//! here decides anything; the gates and the engine do.
//!
//! - `registry`: OCI registry client (oci-client); `local_registry`: a
//!   loopback docker-registry for tests and benches
//! - `podman`: the `Target` port on `podman kube play`
//! - `kubernetes`: `Target` (server-side apply, prune, rollout status) and
//!   `TrafficRouter` (Gateway API HTTPRoute weights) on the `kube` crate
//! - `haproxy`: the `TrafficRouter` port on HAProxy's runtime API
//! - `prometheus`: the `Metrics` port on the Prometheus HTTP API
//! - `traffic`: a bounded loopback traffic generator
//! - `process`: running external tools with bounded waits

pub mod haproxy;
pub mod kubernetes;
pub mod local_registry;
pub mod podman;
pub mod process;
pub mod prometheus;
pub mod registry;
pub mod registry_auth;
pub mod traffic;
