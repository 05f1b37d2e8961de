//! Adapters: the I/O edges behind the ports (today: the OCI registry).
//! Nothing here decides anything; the gates and the engine do.

pub mod registry;
