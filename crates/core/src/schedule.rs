//! The daemon's scheduler, pure: named jobs on `cron` schedules, asked
//! "what is due at `now`?" and "when is the next one?". A job whose time
//! passed while the daemon was busy or down runs once, not once per missed
//! firing; each firing is reported exactly once.

use chrono::{DateTime, Utc};

pub struct Job {
    pub name: String,
    pub schedule: cron::Schedule,
    next: Option<DateTime<Utc>>,
}

pub struct Scheduler {
    jobs: Vec<Job>,
}

impl Scheduler {
    /// Jobs start counting from `now`: nothing is due before its first firing after it.
    pub fn new(jobs: Vec<(String, cron::Schedule)>, now: DateTime<Utc>) -> Self {
        Self {
            jobs: jobs
                .into_iter()
                .map(|(name, schedule)| {
                    let next = schedule.after(&now).next();
                    Job {
                        name,
                        schedule,
                        next,
                    }
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
                j.next = j.schedule.after(&now).next();
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
    use std::str::FromStr;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn jobs_fire_once_per_due_time_and_missed_firings_coalesce() {
        let every_15 = cron::Schedule::from_str("0 */15 * * * *").unwrap();
        let nine = cron::Schedule::from_str("0 0 9 * * Mon-Thu").unwrap();
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
            vec![(
                "window:prod".into(),
                cron::Schedule::from_str("0 0 9 * * Mon-Thu").unwrap(),
            )],
            at("2026-11-26T09:30:00Z"),
        );
        assert_eq!(s.next_wake(), Some(at("2026-11-30T09:00:00Z")));
        assert!(s.due(at("2026-11-27T09:00:00Z")).is_empty());
    }
}
