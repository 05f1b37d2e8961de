//! Drills: the core's pure drill record and statistics, and the scenarios
//! run for real here (`run`), with their fault injector (`tamper`).

pub use platform_capstone_core::drill::*;

pub mod lab;
pub mod run;
pub mod tamper;
