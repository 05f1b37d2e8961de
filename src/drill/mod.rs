//! Drills: the core's pure drill record and statistics, and the scenarios
//! run for real here (`run`).

pub use platform_capstone_core::drill::*;

pub mod run;
