//! Promotion windows, as Argo CD's sync windows: each is a schedule (in
//! its own time zone) opening an interval of `duration` at every firing.
//! While any `deny` window (a freeze) is open nothing is promoted; when an
//! env has `allow` windows, promotions land only while one of them is
//! open; with none, at any time outside a freeze. A rollback never asks.
//! Intervals are half-open, `[firing, firing + duration)`, in real time: a
//! 09:00 window of 8h closes at 17:00 on a DST day too.

use super::cron::Schedule;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowKind {
    Allow,
    Deny,
}

#[derive(Debug, Clone)]
pub struct Window {
    pub kind: WindowKind,
    pub schedule: Schedule,
    pub duration: Duration,
}

/// How far ahead the timeline looks for a change (a window that opens
/// later than this holds promotions "for ever" as far as anyone cares;
/// `validate` refuses schedules that do not fire within it).
pub const HORIZON_DAYS: i64 = 400;

impl Window {
    fn span(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.duration).unwrap_or(chrono::Duration::zero())
    }

    /// `(opened, closes)` of this window when it is open at `t`.
    pub fn open_at(&self, t: DateTime<Utc>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
        // The latest firing at or before `t` closes last: if it does not
        // cover `t`, no earlier one does.
        let fired = self.schedule.last_at_or_before(t)?;
        let closes = fired + self.span();
        (closes > t).then_some((fired, closes))
    }
}

/// Whether promotions may land at `t`.
pub fn is_open(windows: &[Window], t: DateTime<Utc>) -> bool {
    let mut allows = windows
        .iter()
        .filter(|w| w.kind == WindowKind::Allow)
        .peekable();
    let allowed = allows.peek().is_none() || allows.any(|w| w.open_at(t).is_some());
    allowed
        && !windows
            .iter()
            .any(|w| w.kind == WindowKind::Deny && w.open_at(t).is_some())
}

/// The next instant after `t` at which [`is_open`] may change.
fn next_edge(windows: &[Window], t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    windows
        .iter()
        .flat_map(|w| [w.schedule.next_after(t), w.open_at(t).map(|(_, c)| c)])
        .flatten()
        .filter(|x| *x > t)
        .min()
}

/// The instants after `from` at which promotions open (`true`) or close
/// (`false`), in order, up to [`HORIZON_DAYS`] ahead.
pub fn changes(
    windows: &[Window],
    from: DateTime<Utc>,
) -> impl Iterator<Item = (DateTime<Utc>, bool)> + '_ {
    let end = from + chrono::Duration::days(HORIZON_DAYS);
    let mut state = is_open(windows, from);
    let mut t = from;
    std::iter::from_fn(move || {
        loop {
            t = next_edge(windows, t).filter(|x| *x <= end)?;
            let now = is_open(windows, t);
            if now != state {
                state = now;
                return Some((t, now));
            }
        }
    })
}

/// The next instant after `t` at which promotions open (none when there
/// are no windows: always open, or when nothing opens within the horizon).
pub fn next_opening(windows: &[Window], t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    changes(windows, t).find(|(_, open)| *open).map(|(x, _)| x)
}

/// One stretch of time in which promotions may land.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Opening {
    /// `from` itself when open already.
    pub opens: DateTime<Utc>,
    /// None: stays open past the horizon.
    pub closes: Option<DateTime<Utc>>,
}

/// The next `n` stretches in which promotions may land, from `from`.
pub fn openings(windows: &[Window], from: DateTime<Utc>, n: usize) -> Vec<Opening> {
    let mut out: Vec<Opening> = Vec::new();
    let mut open_since = is_open(windows, from).then_some(from);
    for (t, open) in changes(windows, from) {
        match (open, open_since) {
            (true, _) => open_since = Some(t),
            (false, Some(o)) => {
                out.push(Opening {
                    opens: o,
                    closes: Some(t),
                });
                open_since = None;
                if out.len() >= n {
                    return out;
                }
            }
            (false, None) => {}
        }
    }
    if let Some(o) = open_since.filter(|_| out.len() < n) {
        out.push(Opening {
            opens: o,
            closes: None,
        });
    }
    out
}

/// `Ok(closes)` when promotions may land at `now` (`closes`: when that
/// ends, if it does); else why not, with the next opening. Pure.
pub fn check(windows: &[Window], now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>, String> {
    if is_open(windows, now) {
        return Ok(changes(windows, now).next().map(|(t, _)| t));
    }
    let next = match next_opening(windows, now) {
        Some(t) => format!("the next opens at {}", t.to_rfc3339()),
        None => format!("none opens within {HORIZON_DAYS} days"),
    };
    let freeze = windows
        .iter()
        .filter(|w| w.kind == WindowKind::Deny)
        .find_map(|w| w.open_at(now).map(|(_, c)| (w, c)));
    Err(match freeze {
        Some((w, closes)) => format!(
            "inside a deny window ({}) until {}; {next}",
            w.schedule,
            closes.to_rfc3339()
        ),
        None => format!("outside its promotion windows; {next}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn w(kind: WindowKind, expr: &str, tz: &str, hours: u64) -> Window {
        Window {
            kind,
            schedule: Schedule::parse(expr, tz).unwrap(),
            duration: Duration::from_secs(hours * 3600),
        }
    }

    #[test]
    fn an_allow_window_opens_for_its_duration_in_local_time_across_dst() {
        let ws = [w(WindowKind::Allow, "0 9 * * 1-5", "Europe/Berlin", 8)];
        // Friday before the spring change: 09:00 CET = 08:00Z … 16:00Z.
        assert!(is_open(&ws, at("2026-03-27T08:00:00Z")));
        assert!(is_open(&ws, at("2026-03-27T15:59:59Z")));
        assert!(!is_open(&ws, at("2026-03-27T16:00:00Z")));
        assert!(!is_open(&ws, at("2026-03-28T10:00:00Z"))); // Saturday
        // Monday after: 09:00 CEST = 07:00Z.
        assert!(!is_open(&ws, at("2026-03-30T06:59:59Z")));
        assert!(is_open(&ws, at("2026-03-30T07:00:00Z")));
        let o = openings(&ws, at("2026-03-27T12:00:00Z"), 3);
        assert_eq!(
            o,
            vec![
                Opening {
                    opens: at("2026-03-27T12:00:00Z"),
                    closes: Some(at("2026-03-27T16:00:00Z"))
                },
                Opening {
                    opens: at("2026-03-30T07:00:00Z"),
                    closes: Some(at("2026-03-30T15:00:00Z"))
                },
                Opening {
                    opens: at("2026-03-31T07:00:00Z"),
                    closes: Some(at("2026-03-31T15:00:00Z"))
                },
            ]
        );
        // Across the autumn change, Friday CEST then Monday CET.
        let o = openings(&ws, at("2026-10-23T20:00:00Z"), 1);
        assert_eq!(o[0].opens, at("2026-10-26T08:00:00Z"));
    }

    #[test]
    fn a_deny_window_freezes_inside_allow_windows_and_without_them() {
        let allow = w(WindowKind::Allow, "0 9 * * 1-5", "UTC", 8);
        // A freeze from Friday 12:00 for 3 days (till Monday 12:00).
        let freeze = w(WindowKind::Deny, "0 12 * * 5", "UTC", 72);
        let ws = [allow.clone(), freeze.clone()];
        assert!(is_open(&ws, at("2026-12-04T11:59:00Z"))); // Fri morning
        let e = check(&ws, at("2026-12-04T13:00:00Z")).unwrap_err();
        assert!(
            e.starts_with(
                "inside a deny window (0 12 * * 5 (UTC)) until 2026-12-07T12:00:00+00:00"
            ),
            "{e}"
        );
        assert!(
            e.contains("the next opens at 2026-12-07T12:00:00+00:00"),
            "{e}"
        );
        assert!(!is_open(&ws, at("2026-12-07T09:30:00Z")));
        assert_eq!(
            check(&ws, at("2026-12-07T12:00:00Z")),
            Ok(Some(at("2026-12-07T17:00:00Z")))
        );
        // Only a freeze: open except during it.
        let only = [freeze];
        assert!(is_open(&only, at("2026-12-03T03:00:00Z")));
        assert!(!is_open(&only, at("2026-12-05T03:00:00Z")));
        assert_eq!(
            next_opening(&only, at("2026-12-05T03:00:00Z")),
            Some(at("2026-12-07T12:00:00Z"))
        );
        let o = openings(&only, at("2026-12-01T00:00:00Z"), 2);
        assert_eq!(
            o[0],
            Opening {
                opens: at("2026-12-01T00:00:00Z"),
                closes: Some(at("2026-12-04T12:00:00Z"))
            }
        );
        assert_eq!(o[1].opens, at("2026-12-07T12:00:00Z"));
        // No windows: always open, nothing ever changes.
        assert_eq!(check(&[], at("2026-12-05T03:00:00Z")), Ok(None));
        assert_eq!(
            openings(&[], at("2026-12-05T03:00:00Z"), 3),
            vec![Opening {
                opens: at("2026-12-05T03:00:00Z"),
                closes: None
            }]
        );
    }

    #[test]
    fn overlapping_firings_extend_a_window_and_closed_reasons_name_the_next_opening() {
        // Every 4 hours for 6 hours: always open once started.
        let ws = [w(WindowKind::Allow, "0 */4 * * *", "UTC", 6)];
        assert!(is_open(&ws, at("2026-12-01T05:30:00Z")));
        assert!(
            openings(&ws, at("2026-12-01T05:30:00Z"), 1)[0]
                .closes
                .is_none()
        );
        let ws = [w(WindowKind::Allow, "0 9 * * 1-5", "UTC", 8)];
        let e = check(&ws, at("2026-12-05T10:00:00Z")).unwrap_err();
        assert_eq!(
            e,
            "outside its promotion windows; the next opens at 2026-12-07T09:00:00+00:00"
        );
        // A window that only opens in the far future.
        let ws = [w(WindowKind::Allow, "0 0 29 2 *", "UTC", 1)];
        assert!(
            check(&ws, at("2026-12-05T10:00:00Z"))
                .unwrap_err()
                .contains("none opens within 400 days")
        );
        assert!(
            check(&ws, at("2027-12-05T10:00:00Z"))
                .unwrap_err()
                .contains("the next opens at 2028-02-29T00:00:00")
        );
    }
}
