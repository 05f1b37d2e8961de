//! Adapters: the I/O edges behind the ports (today: the OCI registry).
//! Nothing here decides anything; the gates and the engine do.
//! (today: the OCI registry client and a loopback docker-registry.)

pub mod local_registry;
pub mod registry;
