//! Configuration: the core's env files and trust root, and the daemon's
//! own TOML (`daemon.rs`), which names the remote, the directories, the keys
//! and the listeners of this installation.

pub use platform_capstone_core::config::*;

mod daemon;

pub use daemon::{DEFAULT_LOCAL_STACK, DaemonConfig, DaemonConfigError};
