//! Drift stage: the core's pure drift (normalisation, masking, diff, SLO
//! burn) and its edges here (`run`): desired vs live through the target,
//! SLO windows through the metrics provider, heal and hand-over.

pub use platform_capstone_core::drift::*;

pub mod run;
