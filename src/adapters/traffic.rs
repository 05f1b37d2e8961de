//! A bounded synthetic traffic generator for analysis when an env has no
//! real traffic: loopback targets only, rate and duration capped, and it
//! stops early when asked. It reports what it saw (by status class) so a
//! caller can tell "the app failed" from "nothing was sent".

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Requests per second, at most.
pub const MAX_RATE: u32 = 500;
/// Longest run.
pub const MAX_DURATION: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct TrafficReport {
    pub sent: u64,
    pub ok: u64,
    pub client_errors: u64,
    pub server_errors: u64,
    /// Connection failures and timeouts.
    pub failed: u64,
}

/// Refuses anything but `http://` to a loopback address.
pub fn check_loopback(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// loopback URLs are allowed"))?;
    let authority = rest.split('/').next().unwrap_or_default();
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!(
            "{url}: the traffic generator only targets loopback addresses (127.0.0.0/8, ::1, localhost)"
        ));
    }
    Ok(())
}

/// Sends GET `url` at `rate` per second for `duration`, or until `stop`.
pub fn run(
    url: &str,
    rate: u32,
    duration: Duration,
    stop: Option<Arc<AtomicBool>>,
) -> Result<TrafficReport, String> {
    check_loopback(url)?;
    if rate == 0 || rate > MAX_RATE {
        return Err(format!("rate {rate}/s: must be 1..={MAX_RATE}"));
    }
    if duration > MAX_DURATION {
        return Err(format!(
            "duration {duration:?}: at most {} s",
            MAX_DURATION.as_secs()
        ));
    }
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| format!("http client: {e}"))?;
    let gap = Duration::from_secs_f64(1.0 / f64::from(rate));
    let start = Instant::now();
    let mut report = TrafficReport::default();
    let mut next = start;
    while start.elapsed() < duration {
        if stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed)) {
            break;
        }
        report.sent += 1;
        match client.get(url).send() {
            Ok(r) if r.status().is_server_error() => report.server_errors += 1,
            Ok(r) if r.status().is_client_error() => report.client_errors += 1,
            Ok(_) => report.ok += 1,
            Err(_) => report.failed += 1,
        }
        next += gap;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Behind schedule (slow answers): do not burst to catch up.
            next = now;
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_targets_and_bounded_runs() {
        for ok in [
            "http://127.0.0.1:8080/",
            "http://localhost:1/x",
            "http://[::1]:80/",
            "http://127.1.2.3",
        ] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://10.0.0.1/",
            "https://127.0.0.1/",
            "http://example.com/",
            "http://127.0.0.1.evil.com/",
        ] {
            assert!(check_loopback(bad).is_err(), "{bad}");
        }
        assert!(
            run("http://127.0.0.1:1/", 0, Duration::from_secs(1), None)
                .unwrap_err()
                .contains("rate")
        );
        assert!(
            run("http://127.0.0.1:1/", 10, Duration::from_secs(3600), None)
                .unwrap_err()
                .contains("duration")
        );
        // Nothing listens on port 1: every request fails, none is "ok".
        let r = run("http://127.0.0.1:1/", 50, Duration::from_millis(200), None).unwrap();
        assert!(r.sent > 0 && r.failed == r.sent && r.ok == 0, "{r:?}");
    }
}
