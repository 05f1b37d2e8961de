//! SLO behaviour drift, pure: what the live version's SLOs measure now
//! against their error budget (multi-window burn rates, Google SRE
//! workbook ch. 5) and against the baseline recorded when it was promoted.
//!
//! - `error_ratio` SLOs: burn rate = error ratio over the window / error
//!   budget (1 − objective). A window pair is burning when both its long
//!   and its short window burn faster than its factor (the short window
//!   makes the alert reset quickly once the cause is gone).
//! - `latency` SLOs: the query answers a quantile, not a ratio, so the
//!   "burn" of a window is quantile / threshold; a pair is burning when
//!   the quantile is over the threshold in both windows (factor is not
//!   used). For a true latency burn rate, write the SLO as an
//!   `error_ratio` of slow requests (histogram buckets over `le`).
//! - Regression: the value over the regression window against the
//!   baseline, with the SLO's `max_regression` (absolute points for error
//!   ratios, relative for latency).
//!
//! No data (empty answer, NaN, provider down) is never ok: an SLO that
//! cannot be measured is `no_data`, unless a window that was measured
//! already shows it burning (a measured breach outranks missing data).

use crate::config::{BurnWindow, Severity, Slo, SloKind};
use crate::ports::Sample;
use std::collections::BTreeMap;
use std::time::Duration;

/// A query answer: a sample or the provider's error.
pub type Answer = Result<Sample, String>;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SloStatus {
    Ok,
    Burning {
        severity: Severity,
        /// e.g. `1h/5m at 14.4x`.
        alert: String,
        burn_long: f64,
        burn_short: f64,
    },
    Regressed {
        detail: String,
    },
    NoData {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SloDrift {
    pub slo: String,
    #[serde(flatten)]
    pub status: SloStatus,
    /// Window (humantime) → burn rate measured, if any.
    pub burn_rates: BTreeMap<String, Option<f64>>,
    pub current: Option<f64>,
    pub baseline: Option<f64>,
}

impl SloDrift {
    pub fn is_ok(&self) -> bool {
        self.status == SloStatus::Ok
    }
}

/// Every window a judgement needs, longest first, without repeats.
pub fn windows_needed(windows: &[BurnWindow], regression: Duration) -> Vec<Duration> {
    let mut out: Vec<Duration> = windows
        .iter()
        .flat_map(|w| [w.long, w.short])
        .chain([regression])
        .collect();
    out.sort_by(|a, b| b.cmp(a));
    out.dedup();
    out
}

/// `1h`, `5m`, `3d`: the shortest exact unit (PromQL range syntax).
pub fn promql_duration(d: Duration) -> String {
    let s = d.as_secs().max(1);
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60)] {
        if s.is_multiple_of(n) {
            return format!("{}{unit}", s / n);
        }
    }
    format!("{s}s")
}

fn value(a: Option<&Answer>) -> Result<f64, String> {
    match a {
        None => Err("not queried".into()),
        Some(Err(e)) => Err(e.clone()),
        Some(Ok(Sample::Value(v))) if v.is_finite() => Ok(*v),
        Some(Ok(Sample::Value(_))) | Some(Ok(Sample::NaN)) => {
            Err("NaN (no requests in the window)".into())
        }
        Some(Ok(Sample::NoData)) => Err("no data".into()),
    }
}

/// Judges one SLO from its answers per window (`answers[window]`) and the
/// baseline recorded at promotion.
pub fn judge(
    slo: &Slo,
    windows: &[BurnWindow],
    regression_window: Duration,
    answers: &BTreeMap<Duration, Answer>,
    baseline: Option<f64>,
) -> SloDrift {
    let burn = |v: f64| -> f64 {
        match slo.kind {
            SloKind::ErrorRatio => v / (1.0 - slo.objective).max(f64::EPSILON),
            SloKind::Latency => {
                let t = slo.threshold.map(|d| d.as_secs_f64()).unwrap_or(f64::MAX);
                v / t.max(f64::EPSILON)
            }
        }
    };
    let mut burn_rates = BTreeMap::new();
    for w in windows_needed(windows, regression_window) {
        burn_rates.insert(promql_duration(w), value(answers.get(&w)).ok().map(burn));
    }
    let mut missing: Option<String> = None;
    let mut burning: Option<SloStatus> = None;
    for w in windows {
        let (long, short) = (value(answers.get(&w.long)), value(answers.get(&w.short)));
        let (l, s) = match (long, short) {
            (Ok(l), Ok(s)) => (burn(l), burn(s)),
            (Err(e), _) | (_, Err(e)) => {
                missing.get_or_insert(format!(
                    "{}/{}: {e}",
                    promql_duration(w.long),
                    promql_duration(w.short)
                ));
                continue;
            }
        };
        let limit = match slo.kind {
            SloKind::ErrorRatio => w.factor,
            SloKind::Latency => 1.0,
        };
        let worse = |b: &Option<SloStatus>| match b {
            Some(SloStatus::Burning { severity, .. }) => {
                *severity == Severity::Ticket && w.severity == Severity::Page
            }
            _ => true,
        };
        if l > limit && s > limit && worse(&burning) {
            burning = Some(SloStatus::Burning {
                severity: w.severity,
                alert: format!(
                    "{}/{} at {}x",
                    promql_duration(w.long),
                    promql_duration(w.short),
                    w.factor
                ),
                burn_long: l,
                burn_short: s,
            });
        }
    }
    let current = value(answers.get(&regression_window));
    let status = if let Some(b) = burning {
        b
    } else if let Some(reason) = missing {
        SloStatus::NoData { reason }
    } else {
        match (&current, baseline, slo.max_regression) {
            (Err(e), ..) => SloStatus::NoData {
                reason: format!("{}: {e}", promql_duration(regression_window)),
            },
            (Ok(now), Some(base), Some(max)) => {
                let (limit, how) = match slo.kind {
                    SloKind::ErrorRatio => (base + max, format!("+{max}")),
                    SloKind::Latency => (
                        (base * (1.0 + max)).max(base + slo.min_regression.as_secs_f64()),
                        format!(
                            "+{:.0}%, at least +{} ms",
                            max * 100.0,
                            slo.min_regression.as_millis()
                        ),
                    ),
                };
                if *now > limit {
                    SloStatus::Regressed {
                        detail: format!(
                            "{now:.4} over {} against {base:.4} at promotion (allowed {how}, limit {limit:.4})",
                            promql_duration(regression_window)
                        ),
                    }
                } else {
                    SloStatus::Ok
                }
            }
            (Ok(_), ..) => SloStatus::Ok,
        }
    };
    SloDrift {
        slo: slo.name.clone(),
        status,
        burn_rates,
        current: current.ok(),
        baseline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn availability() -> Slo {
        Slo {
            name: "availability".into(),
            kind: SloKind::ErrorRatio,
            objective: 0.999,
            threshold: None,
            max_regression: Some(0.01),
            min_regression: Duration::ZERO,
            query: String::new(),
        }
    }

    fn answers(v: &[(u64, Answer)]) -> BTreeMap<Duration, Answer> {
        v.iter()
            .map(|(s, a)| (Duration::from_secs(*s), a.clone()))
            .collect()
    }

    const H: u64 = 3600;
    const M: u64 = 60;

    fn all(ratio: f64) -> BTreeMap<Duration, Answer> {
        answers(&[
            (H, Ok(Sample::Value(ratio))),
            (5 * M, Ok(Sample::Value(ratio))),
            (6 * H, Ok(Sample::Value(ratio))),
            (30 * M, Ok(Sample::Value(ratio))),
            (72 * H, Ok(Sample::Value(ratio))),
        ])
    }

    #[test]
    fn burn_rates_follow_the_workbook_windows() {
        let w = BurnWindow::workbook();
        let slo = availability();
        // 0.0005 errors on a 0.001 budget: 0.5x, fine.
        let ok = judge(
            &slo,
            &w,
            Duration::from_secs(5 * M),
            &all(0.0005),
            Some(0.0004),
        );
        assert_eq!(ok.status, SloStatus::Ok, "{ok:?}");
        let b = ok.burn_rates["1h"].unwrap();
        assert!((b - 0.5).abs() < 1e-9, "{b}");
        // 2% errors: 20x over both 1h and 5m: page.
        let page = judge(&slo, &w, Duration::from_secs(5 * M), &all(0.02), None);
        match &page.status {
            SloStatus::Burning {
                severity: Severity::Page,
                alert,
                ..
            } => assert_eq!(alert, "1h/5m at 14.4x"),
            other => panic!("{other:?}"),
        }
        // 0.2%: 2x, only the 3d/6h ticket fires.
        let ticket = judge(&slo, &w, Duration::from_secs(5 * M), &all(0.002), None);
        assert!(
            matches!(
                ticket.status,
                SloStatus::Burning {
                    severity: Severity::Ticket,
                    ..
                }
            ),
            "{ticket:?}"
        );
        // A spike in the short window only (the long window is calm): no page.
        let mut a = all(0.0005);
        a.insert(Duration::from_secs(5 * M), Ok(Sample::Value(0.5)));
        let spike = judge(&slo, &w, Duration::from_secs(30 * M), &a, None);
        assert_eq!(spike.status, SloStatus::Ok, "{spike:?}");
    }

    #[test]
    fn no_data_is_never_ok_but_a_measured_burn_outranks_it() {
        let w = BurnWindow::workbook();
        let slo = availability();
        let mut a = all(0.0005);
        a.insert(Duration::from_secs(72 * H), Ok(Sample::NoData));
        let r = judge(&slo, &w, Duration::from_secs(5 * M), &a, None);
        assert!(matches!(r.status, SloStatus::NoData { .. }), "{r:?}");
        let down = answers(&[]);
        let r = judge(&slo, &w, Duration::from_secs(5 * M), &down, None);
        assert!(matches!(r.status, SloStatus::NoData { .. }), "{r:?}");
        let mut a = all(0.05);
        a.insert(
            Duration::from_secs(72 * H),
            Err("connection refused".into()),
        );
        a.insert(Duration::from_secs(6 * H), Ok(Sample::NaN));
        let r = judge(&slo, &w, Duration::from_secs(5 * M), &a, None);
        assert!(matches!(r.status, SloStatus::Burning { .. }), "{r:?}");
    }

    #[test]
    fn regression_against_the_promotion_baseline() {
        let w = BurnWindow::workbook();
        let slo = availability();
        // 0.0009 is within budget, and only +0.0005 over the baseline.
        let r = judge(
            &slo,
            &w,
            Duration::from_secs(5 * M),
            &all(0.0009),
            Some(0.0004),
        );
        assert_eq!(r.status, SloStatus::Ok);
        // Latency: p99 0.2 s under a 250 ms threshold, but +100% on 0.1 s.
        let lat = Slo {
            name: "latency-p99".into(),
            kind: SloKind::Latency,
            objective: 0.99,
            threshold: Some(Duration::from_millis(250)),
            max_regression: Some(0.25),
            min_regression: Duration::from_millis(25),
            query: String::new(),
        };
        // +50% on a 5 ms baseline is under the 25 ms floor: not a regression.
        let r = judge(
            &lat,
            &w,
            Duration::from_secs(5 * M),
            &all(0.0075),
            Some(0.005),
        );
        assert_eq!(r.status, SloStatus::Ok);
        let r = judge(&lat, &w, Duration::from_secs(5 * M), &all(0.2), Some(0.1));
        match &r.status {
            SloStatus::Regressed { detail } => assert!(detail.contains("+25%"), "{detail}"),
            other => panic!("{other:?}"),
        }
        // Over the threshold in both windows: burning.
        let r = judge(&lat, &w, Duration::from_secs(5 * M), &all(0.4), Some(0.1));
        assert!(matches!(r.status, SloStatus::Burning { .. }), "{r:?}");
    }

    #[test]
    fn promql_durations_use_the_largest_exact_unit() {
        assert_eq!(promql_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(promql_duration(Duration::from_secs(300)), "5m");
        assert_eq!(promql_duration(Duration::from_secs(259_200)), "3d");
        assert_eq!(promql_duration(Duration::from_secs(90)), "90s");
    }
}
