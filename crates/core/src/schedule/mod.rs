//! Time, pure: crontab schedules in IANA time zones ([`cron`]), promotion
//! allow/deny windows ([`windows`]) and the daemon's job scheduler
//! ([`scheduler`]).

pub mod cron;
pub mod scheduler;
pub mod windows;

pub use cron::{Invalid, Schedule};
pub use scheduler::{Recurrence, Scheduler};
pub use windows::{Window, WindowKind};
