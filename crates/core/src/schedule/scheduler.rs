//! The daemon's scheduler, pure: named jobs on recurrences (a cron
//! schedule, or the openings of an env's promotion windows), asked "what
//! is due at `now`?" and "when is the next one?". A job whose time passed
//! while the daemon was busy or down runs once, not once per missed
//! firing; each firing is reported exactly once.

use super::cron::Schedule;
use super::windows::{self, Window};
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Something that happens again: the first time strictly after `t`.
pub trait Recurrence: Send + Sync {
    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>>;
    /// What it is, in words; equal descriptions recur alike.
    fn describe(&self) -> String;
}

impl Recurrence for Schedule {
    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        Schedule::next_after(self, t)
    }
    fn describe(&self) -> String {
        self.to_string()
    }
}

/// The instants promotions open under a set of windows (an allow window
/// opening, a freeze ending).
pub struct Openings(pub Vec<Window>);

impl Recurrence for Openings {
    fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        windows::next_opening(&self.0, t)
    }
    fn describe(&self) -> String {
        let each: Vec<String> = self
            .0
            .iter()
            .map(|w| format!("{:?} {} for {:?}", w.kind, w.schedule, w.duration))
            .collect();
        format!("openings of [{}]", each.join(", "))
    }
}

pub struct Job {
    pub name: String,
    pub when: Arc<dyn Recurrence>,
    next: Option<DateTime<Utc>>,
}

pub struct Scheduler {
    jobs: Vec<Job>,
}

impl Scheduler {
    /// Jobs start counting from `now`: nothing is due before its first firing after it.
    pub fn new(jobs: Vec<(String, Arc<dyn Recurrence>)>, now: DateTime<Utc>) -> Self {
        Self {
            jobs: jobs
                .into_iter()
                .map(|(name, when)| {
                    let next = when.next_after(now);
                    Job { name, when, next }
                })
                .collect(),
        }
    }

    /// Names of the jobs due at `now`; each is then scheduled after `now`.
    pub fn due(&mut self, now: DateTime<Utc>) -> Vec<String> {
        let mut out = Vec::new();
        for j in &mut self.jobs {
            if j.next.is_some_and(|t| t <= now) {
                out.push(j.name.clone());
                j.next = j.when.next_after(now);
            }
        }
        out
    }

    /// The earliest next firing, if any job will fire again.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        self.jobs.iter().filter_map(|j| j.next).min()
    }

    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.jobs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::WindowKind;
    use std::time::Duration;

    fn cron(expr: &str) -> Arc<dyn Recurrence> {
        Arc::new(Schedule::parse(expr, "UTC").unwrap())
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn jobs_fire_once_per_due_time_and_missed_firings_coalesce() {
        let every_15 = cron("*/15 * * * *");
        let nine = cron("0 9 * * Mon-Thu");
        let mut s = Scheduler::new(
            vec![("drift:dev".into(), every_15), ("window:prod".into(), nine)],
            at("2026-11-25T08:50:00Z"),
        );
        assert_eq!(s.next_wake(), Some(at("2026-11-25T09:00:00Z")));
        assert!(s.due(at("2026-11-25T08:59:59Z")).is_empty());
        let mut due = s.due(at("2026-11-25T09:00:00Z"));
        due.sort();
        assert_eq!(due, vec!["drift:dev", "window:prod"]);
        // Reported once.
        assert!(s.due(at("2026-11-25T09:00:01Z")).is_empty());
        // Down for an hour: drift runs once, not four times.
        assert_eq!(s.due(at("2026-11-25T10:05:00Z")), vec!["drift:dev"]);
        assert_eq!(s.next_wake(), Some(at("2026-11-25T10:15:00Z")));
        // Thursday 09:00 is next for the window, Friday is not.
        let mut s = Scheduler::new(
            vec![("window:prod".into(), cron("0 9 * * Mon-Thu"))],
            at("2026-11-26T09:30:00Z"),
        );
        assert_eq!(s.next_wake(), Some(at("2026-11-30T09:00:00Z")));
        assert!(s.due(at("2026-11-27T09:00:00Z")).is_empty());
    }

    #[test]
    fn a_window_job_is_due_when_promotions_open_including_the_end_of_a_freeze() {
        let freeze = Window {
            kind: WindowKind::Deny,
            schedule: Schedule::parse("0 18 * * 5", "Europe/Berlin").unwrap(),
            duration: Duration::from_secs(62 * 3600),
        };
        let mut s = Scheduler::new(
            vec![("window:prod".into(), Arc::new(Openings(vec![freeze])))],
            at("2026-12-04T18:00:00Z"),
        );
        // Friday 18:00 CET + 62h = Monday 08:00 CET = 07:00Z.
        assert_eq!(s.next_wake(), Some(at("2026-12-07T07:00:00Z")));
        assert_eq!(s.due(at("2026-12-07T07:00:00Z")), vec!["window:prod"]);
    }
}
