//! A schedule as people write it in a crontab: five fields (`minute hour
//! day-of-month month day-of-week`, day-of-week 0 or 7 = Sunday), the
//! `@daily`-style macros, evaluated in an IANA time zone (default `UTC`).
//!
//! Matching and the next-firing search are `croner`'s (Vixie/OCPS cron
//! semantics, including its DST rules: a time skipped by a spring-forward
//! fires at the first instant after the gap, a time repeated by a fall-back
//! fires once, an hourly-or-finer field fires in both halves); the zone
//! rules are `chrono-tz`'s compiled IANA database. What is ours is the
//! refusal of forms that read one way and fire another — the 6/7-field
//! Quartz form (its day-of-week counts 1 = Sunday), Quartz's `?`, and a
//! restricted day-of-month together with a restricted day-of-week (crontab
//! fires when *either* matches) — each with a one-line fix.

use chrono::{DateTime, Utc};
pub use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds};
use std::fmt;

/// A parsed, validated schedule in a time zone.
#[derive(Clone)]
pub struct Schedule {
    expr: String,
    cron: croner::Cron,
    tz: Tz,
}

/// Why an expression or a time zone was refused, and the one-line fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub message: String,
    pub fix: String,
}

impl Invalid {
    fn new(message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            fix: fix.into(),
        }
    }
}

impl fmt::Debug for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schedule({:?} {})", self.expr, self.tz.name())
    }
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.expr, self.tz.name())
    }
}

const MACROS: [(&str, &str); 7] = [
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
];

const FIVE_FIELDS: &str =
    "write five fields: minute hour day-of-month month day-of-week, e.g. \"0 9 * * 1-5\"";

impl Schedule {
    /// Parses `expr` (crontab syntax) in the IANA zone `timezone`.
    pub fn parse(expr: &str, timezone: &str) -> Result<Self, Invalid> {
        let tz = parse_timezone(timezone)?;
        let expr = expr.trim();
        let fields = expand(expr)?;
        if fields.iter().any(|f| f.contains('?')) {
            let fixed = fields.join(" ").replace('?', "*");
            return Err(Invalid::new(
                format!("{expr:?} uses `?`, a Quartz marker crontab does not have"),
                format!("write \"{fixed}\""),
            ));
        }
        let (dom, dow) = (&fields[2], &fields[4]);
        if dom != "*" && dow != "*" && !dow.starts_with('+') {
            return Err(Invalid::new(
                format!(
                    "{expr:?} restricts both day-of-month ({dom}) and day-of-week ({dow}): crontab fires on a day matching either"
                ),
                "restrict one of them (for \"the first Monday\" write day-of-week 1#1 with day-of-month *)",
            ));
        }
        let cron = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .build()
            .parse(&fields.join(" "))
            .map_err(|e| {
                Invalid::new(
                    format!("{expr:?} is not a cron expression ({e})"),
                    FIVE_FIELDS,
                )
            })?;
        Ok(Self {
            expr: expr.to_string(),
            cron,
            tz,
        })
    }

    /// The expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    /// The first firing strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&t.with_timezone(&self.tz), false)
            .ok()
            .map(|x| x.with_timezone(&Utc))
    }

    /// The last firing at or before `t`.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_previous_occurrence(&t.with_timezone(&self.tz), true)
            .ok()
            .map(|x| x.with_timezone(&Utc))
    }

    /// Firings strictly after `t`, in order.
    pub fn after(&self, t: DateTime<Utc>) -> impl Iterator<Item = DateTime<Utc>> + '_ {
        std::iter::successors(self.next_after(t), move |x| self.next_after(*x))
    }

    /// `t` as a wall-clock time in this schedule's zone, e.g.
    /// `Mon 2026-03-30 09:00 CEST`.
    pub fn local(&self, t: DateTime<Utc>) -> String {
        local(t, self.tz)
    }
}

/// `t` as a wall-clock time in `tz`, with the weekday and the zone's abbreviation.
pub fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%a %Y-%m-%d %H:%M %Z")
        .to_string()
}

/// An IANA zone name; a near miss in case is answered with the right spelling.
pub fn parse_timezone(name: &str) -> Result<Tz, Invalid> {
    if let Ok(tz) = name.parse::<Tz>() {
        return Ok(tz);
    }
    let near = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().eq_ignore_ascii_case(name.trim()));
    let fix = match near {
        Some(tz) => format!("write \"{}\"", tz.name()),
        None => {
            "use an IANA time zone name such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\""
                .to_string()
        }
    };
    Err(Invalid::new(
        format!("{name:?} is not an IANA time zone"),
        fix,
    ))
}

/// The five crontab fields of `expr` (a macro expanded); 6 and 7 fields
/// (Quartz) are refused with the equivalent crontab form.
fn expand(expr: &str) -> Result<Vec<String>, Invalid> {
    if expr.starts_with('@') {
        let lower = expr.to_ascii_lowercase();
        return match MACROS.iter().find(|(m, _)| *m == lower) {
            Some((_, five)) => Ok(five.split(' ').map(str::to_string).collect()),
            None => Err(Invalid::new(
                format!("{expr:?} is not a schedule macro"),
                "use @yearly, @monthly, @weekly, @daily or @hourly, or five cron fields",
            )),
        };
    }
    let fields: Vec<&str> = expr.split_whitespace().collect();
    match fields.len() {
        5 => Ok(fields.into_iter().map(str::to_string).collect()),
        6 | 7 => Err(quartz(expr, &fields)),
        0 => Err(Invalid::new("the schedule is empty", FIVE_FIELDS)),
        n => Err(Invalid::new(
            format!("{expr:?} is not a cron expression: it has {n} fields, not 5"),
            FIVE_FIELDS,
        )),
    }
}

/// A Quartz expression (`sec min hour dom month dow [year]`, day-of-week
/// 1 = Sunday … 7 = Saturday, `?` for "no value") refused with the crontab
/// expression that fires at the same times, where there is one.
fn quartz(expr: &str, f: &[&str]) -> Invalid {
    let n = f.len();
    let message = format!(
        "{expr:?} has {n} fields: that is Quartz syntax (seconds first, day-of-week 1 = Sunday), not crontab"
    );
    if f[0] != "0" {
        return Invalid::new(
            message,
            "windows and checks start on a minute: drop the seconds field and write five fields, e.g. \"0 9 * * 1-5\"",
        );
    }
    if n == 7 && f[6] != "*" {
        return Invalid::new(
            message,
            "crontab has no year field: drop it and write five fields, e.g. \"0 9 * * 1-5\"",
        );
    }
    let unq = |s: &str| {
        if s == "?" {
            "*".to_string()
        } else {
            s.to_string()
        }
    };
    let dow = quartz_weekdays(f[5]);
    let five = [
        f[1].to_string(),
        f[2].to_string(),
        unq(f[3]),
        f[4].to_string(),
        dow,
    ];
    let same = if five[4] != unq(f[5]) {
        " (crontab numbers days 0-6 from Sunday)"
    } else {
        ""
    };
    Invalid::new(message, format!("write \"{}\"{same}", five.join(" ")))
}

/// Quartz day-of-week numbers (1 = Sunday … 7 = Saturday) as crontab's
/// (0 = Sunday … 6 = Saturday); names, `*`, steps and `#n` kept.
fn quartz_weekdays(field: &str) -> String {
    if field == "?" {
        return "*".into();
    }
    let mut out = String::new();
    let mut num = String::new();
    // Digits after `/` (a step) or `#` (nth) are counts, not days.
    let mut counting = false;
    let flush = |num: &mut String, out: &mut String, counting: bool| {
        if !num.is_empty() {
            match (counting, num.parse::<u32>()) {
                (false, Ok(d)) if (1..=7).contains(&d) => out.push_str(&(d - 1).to_string()),
                _ => out.push_str(num),
            }
            num.clear();
        }
    };
    for c in field.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        flush(&mut num, &mut out, counting);
        match c {
            '/' | '#' => counting = true,
            ',' | '-' => counting = false,
            _ => {}
        }
        out.push(c);
    }
    flush(&mut num, &mut out, counting);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn next_n(s: &Schedule, from: &str, n: usize) -> Vec<String> {
        s.after(at(from)).take(n).map(|t| s.local(t)).collect()
    }

    #[test]
    fn weekdays_at_nine_in_berlin_stay_at_nine_across_both_dst_changes() {
        let s = Schedule::parse("0 9 * * 1-5", "Europe/Berlin").unwrap();
        // Spring forward on Sunday 2026-03-29: 09:00 CET is 08:00Z, 09:00 CEST 07:00Z.
        let spring: Vec<_> = s.after(at("2026-03-26T00:00:00Z")).take(4).collect();
        assert_eq!(
            spring,
            vec![
                at("2026-03-26T08:00:00Z"), // Thu
                at("2026-03-27T08:00:00Z"), // Fri
                at("2026-03-30T07:00:00Z"), // Mon, after the change
                at("2026-03-31T07:00:00Z"),
            ]
        );
        // Fall back on Sunday 2026-10-25.
        assert_eq!(
            next_n(&s, "2026-10-22T12:00:00Z", 3),
            vec![
                "Fri 2026-10-23 09:00 CEST",
                "Mon 2026-10-26 09:00 CET",
                "Tue 2026-10-27 09:00 CET",
            ]
        );
        assert_eq!(
            s.next_after(at("2026-10-26T07:59:59Z")),
            Some(at("2026-10-26T08:00:00Z"))
        );
    }

    #[test]
    fn crontab_day_of_week_numbers_sunday_as_0_and_7() {
        // 2026-11-29 is a Sunday.
        for expr in ["0 12 * * 0", "0 12 * * 7", "0 12 * * Sun"] {
            let s = Schedule::parse(expr, "UTC").unwrap();
            assert_eq!(
                s.next_after(at("2026-11-25T00:00:00Z")),
                Some(at("2026-11-29T12:00:00Z")),
                "{expr}"
            );
        }
        let s = Schedule::parse("0 9 * * 1-5", "UTC").unwrap();
        assert_eq!(
            next_n(&s, "2026-11-27T10:00:00Z", 2),
            vec!["Mon 2026-11-30 09:00 UTC", "Tue 2026-12-01 09:00 UTC"]
        );
        // Last Friday of the month and the first Monday.
        let s = Schedule::parse("0 18 * * 5#L", "UTC").unwrap();
        assert_eq!(
            s.next_after(at("2026-12-01T00:00:00Z")),
            Some(at("2026-12-25T18:00:00Z"))
        );
        let s = Schedule::parse("0 9 * * 1#1", "UTC").unwrap();
        assert_eq!(
            s.next_after(at("2026-12-01T00:00:00Z")),
            Some(at("2026-12-07T09:00:00Z"))
        );
    }

    #[test]
    fn a_time_skipped_by_spring_forward_fires_after_the_gap_and_a_repeated_one_once() {
        let s = Schedule::parse("30 2 * * *", "Europe/Berlin").unwrap();
        assert_eq!(
            next_n(&s, "2026-03-28T12:00:00Z", 2),
            vec!["Sun 2026-03-29 03:00 CEST", "Mon 2026-03-30 02:30 CEST"]
        );
        assert_eq!(
            next_n(&s, "2026-10-24T12:00:00Z", 2),
            vec!["Sun 2026-10-25 02:30 CEST", "Mon 2026-10-26 02:30 CET"]
        );
        // In New York (a different day and hour) the same rules hold.
        let s = Schedule::parse("0 9 * * *", "America/New_York").unwrap();
        assert_eq!(
            s.next_after(at("2026-03-08T00:00:00Z")),
            Some(at("2026-03-08T13:00:00Z"))
        );
        assert_eq!(
            s.next_after(at("2026-03-07T00:00:00Z")),
            Some(at("2026-03-07T14:00:00Z"))
        );
    }

    #[test]
    fn macros_expand_to_their_crontab_forms() {
        let daily = Schedule::parse("@daily", "UTC").unwrap();
        let midnight = Schedule::parse("@midnight", "Europe/Berlin").unwrap();
        assert_eq!(
            daily.next_after(at("2026-12-01T10:00:00Z")),
            Some(at("2026-12-02T00:00:00Z"))
        );
        assert_eq!(
            midnight.next_after(at("2026-12-01T10:00:00Z")),
            Some(at("2026-12-01T23:00:00Z"))
        );
        let weekly = Schedule::parse("@weekly", "UTC").unwrap();
        assert_eq!(
            weekly.next_after(at("2026-12-01T10:00:00Z")),
            Some(at("2026-12-06T00:00:00Z"))
        );
        assert!(Schedule::parse("@reboot", "UTC").is_err());
    }

    #[test]
    fn quartz_forms_are_refused_with_the_crontab_equivalent() {
        let e = Schedule::parse("0 0 9 * * 1-5", "UTC").unwrap_err();
        assert!(
            e.message.contains("6 fields") && e.message.contains("Quartz"),
            "{e:?}"
        );
        assert_eq!(
            e.fix,
            "write \"0 9 * * 0-4\" (crontab numbers days 0-6 from Sunday)"
        );
        let e = Schedule::parse("0 0 9 ? * Mon-Fri", "UTC").unwrap_err();
        assert_eq!(e.fix, "write \"0 9 * * Mon-Fri\"");
        let e = Schedule::parse("0 */15 * * * *", "UTC").unwrap_err();
        assert_eq!(e.fix, "write \"*/15 * * * *\"");
        let e = Schedule::parse("0 0 10 ? * 2#1,7/2", "UTC").unwrap_err();
        assert_eq!(
            e.fix,
            "write \"0 10 * * 1#1,6/2\" (crontab numbers days 0-6 from Sunday)"
        );
        let e = Schedule::parse("30 0 9 * * *", "UTC").unwrap_err();
        assert!(e.fix.contains("drop the seconds"), "{e:?}");
        let e = Schedule::parse("0 0 0 1 1 * 2020", "UTC").unwrap_err();
        assert!(e.fix.contains("no year field"), "{e:?}");
        let e = Schedule::parse("0 9 ? * 1", "UTC").unwrap_err();
        assert_eq!(e.fix, "write \"0 9 * * 1\"");
        // Each fix is one line.
        for bad in [
            "0 0 9 * * 1-5",
            "0 9 1-7 * 1",
            "wednesdays",
            "0 9 * * 1-5 x y z",
        ] {
            let e = Schedule::parse(bad, "UTC").unwrap_err();
            assert!(!e.message.contains('\n') && !e.fix.contains('\n'), "{e:?}");
        }
    }

    #[test]
    fn both_day_fields_restricted_is_refused_as_ambiguous() {
        let e = Schedule::parse("0 9 1-7 * 1", "UTC").unwrap_err();
        assert!(e.message.contains("either"), "{e:?}");
        assert!(e.fix.contains("1#1"), "{e:?}");
        // Explicit AND is fine.
        let s = Schedule::parse("0 9 1-7 * +1", "UTC").unwrap();
        assert_eq!(
            s.next_after(at("2026-12-01T00:00:00Z")),
            Some(at("2026-12-07T09:00:00Z"))
        );
    }

    #[test]
    fn time_zones_are_iana_names_with_the_spelling_suggested() {
        let e = Schedule::parse("0 9 * * *", "europe/berlin").unwrap_err();
        assert_eq!(e.fix, "write \"Europe/Berlin\"");
        let e = Schedule::parse("0 9 * * *", "Mars/Olympus").unwrap_err();
        assert!(e.message.contains("not an IANA time zone"), "{e:?}");
        assert!(Schedule::parse("0 9 * * *", "Asia/Kolkata").is_ok());
        let e = Schedule::parse("every day", "UTC").unwrap_err();
        assert!(e.message.contains("2 fields"), "{e:?}");
    }
}
