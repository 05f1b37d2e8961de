//! The demo workload: a small HTTP service whose health the release engine
//! judges. `/` answers (or fails, by design), `/healthz` reports liveness,
//! `/metrics` exposes Prometheus text: `demo_http_requests_total` by status
//! code and a `demo_http_request_duration_seconds` histogram, both labelled
//! with the `version` this build runs as.
//!
//! Configuration, all from the environment (so an image can carry a fault):
//! - `PORT` (default 8080), `BIND` (default 0.0.0.0)
//! - `VERSION`: the label on every metric (default `dev`)
//! - `FAULT_ERROR_RATIO`: 0.0–1.0, the share of `/` requests answered 500 —
//!   exactly that share of any run of requests (spread evenly, not drawn at
//!   random), so a test or drill judging a faulty version never depends on
//!   luck with a few dozen requests
//! - `FAULT_LATENCY_MS`: latency added to every `/` request
//!
//! An invalid value is refused at start with the variable named: a demo
//! that silently ran without its fault would make a drill pass for nothing.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabels {
    code: String,
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: String,
}

struct Config {
    bind: String,
    port: u16,
    version: String,
    error_ratio: f64,
    latency: Duration,
}

impl Config {
    fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Parses the settings from `lookup` (the environment, or a test's map).
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let port = match var("PORT") {
            None => 8080,
            Some(p) => p
                .trim()
                .parse()
                .map_err(|_| format!("PORT={p:?}: not a port number (1-65535)"))?,
        };
        let error_ratio = match var("FAULT_ERROR_RATIO") {
            None => 0.0,
            Some(r) => match r.trim().parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) => x,
                _ => return Err(format!("FAULT_ERROR_RATIO={r:?}: must be between 0 and 1")),
            },
        };
        let latency = match var("FAULT_LATENCY_MS") {
            None => Duration::ZERO,
            Some(ms) => Duration::from_millis(
                ms.trim()
                    .parse()
                    .map_err(|_| format!("FAULT_LATENCY_MS={ms:?}: must be whole milliseconds"))?,
            ),
        };
        Ok(Self {
            bind: var("BIND").unwrap_or_else(|| "0.0.0.0".into()),
            port,
            version: var("VERSION").unwrap_or_else(|| "dev".into()),
            error_ratio,
            latency,
        })
    }
}

struct App {
    config: Config,
    /// `/` requests answered so far: which ones fail.
    served: std::sync::atomic::AtomicU64,
    registry: Registry,
    requests: Family<CodeLabels, Counter>,
    duration: Family<VersionLabels, Histogram>,
}

async fn root(State(app): State<Arc<App>>) -> impl IntoResponse {
    let started = Instant::now();
    if !app.config.latency.is_zero() {
        tokio::time::sleep(app.config.latency).await;
    }
    let n = app
        .served
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let fail = fails(n, app.config.error_ratio);
    let code = if fail {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    app.requests
        .get_or_create(&CodeLabels {
            code: code.as_u16().to_string(),
            version: app.config.version.clone(),
        })
        .inc();
    app.duration
        .get_or_create(&VersionLabels {
            version: app.config.version.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    let body = if fail {
        format!("injected fault (version {})\n", app.config.version)
    } else {
        format!("hello from version {}\n", app.config.version)
    };
    (code, body)
}

/// Whether request `n` (from 0) fails at `ratio`: request n fails when
/// `floor((n+1)·ratio)` passes `floor(n·ratio)`, so every run of k
/// consecutive requests holds k·ratio failures, give or take one.
fn fails(n: u64, ratio: f64) -> bool {
    ratio > 0.0 && ((n + 1) as f64 * ratio).floor() > (n as f64 * ratio).floor()
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &app.registry) {
        Ok(()) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            out,
        ),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            [("content-type", "text/plain")],
            format!("encoding metrics failed: {e}\n"),
        ),
    }
}

fn app(config: Config) -> Arc<App> {
    let mut registry = Registry::default();
    let requests = Family::<CodeLabels, Counter>::default();
    let duration = Family::<VersionLabels, Histogram>::new_with_constructor(|| {
        Histogram::new([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0])
    });
    registry.register(
        "demo_http_requests",
        "Requests to / by status code",
        requests.clone(),
    );
    registry.register(
        "demo_http_request_duration_seconds",
        "Latency of / in seconds",
        duration.clone(),
    );
    // Seed every series so a fresh pod reports zeros, not "no data".
    for code in ["200", "500"] {
        requests
            .get_or_create(&CodeLabels {
                code: code.into(),
                version: config.version.clone(),
            })
            .inc_by(0);
    }
    drop(duration.get_or_create(&VersionLabels {
        version: config.version.clone(),
    }));
    Arc::new(App {
        config,
        served: std::sync::atomic::AtomicU64::new(0),
        registry,
        requests,
        duration,
    })
}

async fn shutdown() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn main() -> std::process::ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("demo: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("demo: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let addr = format!("{}:{}", config.bind, config.port);
    let banner = format!(
        "demo version {} listening on {addr} (error ratio {}, added latency {:?})",
        config.version, config.error_ratio, config.latency
    );
    let state = app(config);
    let router = Router::new()
        .route("/", get(root))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .with_state(state);
    rt.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(&addr).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("demo: cannot listen on {addr}: {e}");
                return std::process::ExitCode::FAILURE;
            }
        };
        eprintln!("{banner}");
        match axum::serve(listener, router)
            .with_graceful_shutdown(shutdown())
            .await
        {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("demo: server failed: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(vars: &[(&str, &str)]) -> Result<Config, String> {
        Config::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    }

    #[test]
    fn faults_are_spread_evenly_over_any_run_of_requests() {
        let failed = |from: u64, k: u64, r: f64| (from..from + k).filter(|&n| fails(n, r)).count();
        assert_eq!(failed(0, 100, 0.3), 30);
        assert_eq!(failed(0, 1000, 0.0), 0);
        assert_eq!(failed(0, 10, 1.0), 10);
        for from in 0..50 {
            for k in [10, 14, 37] {
                let got = failed(from, k, 0.3) as f64;
                assert!(
                    (got - k as f64 * 0.3).abs() <= 1.0,
                    "{got} of {k} from {from}"
                );
            }
        }
    }

    #[test]
    fn fault_settings_parse_and_bad_ones_are_refused_by_name() {
        let c = parse(&[
            ("FAULT_ERROR_RATIO", "0.25"),
            ("VERSION", "v9"),
            ("FAULT_LATENCY_MS", "300"),
        ])
        .unwrap();
        assert_eq!(
            (c.version.as_str(), c.error_ratio, c.latency.as_millis()),
            ("v9", 0.25, 300)
        );
        let d = parse(&[]).unwrap();
        assert_eq!(
            (d.port, d.error_ratio, d.version.as_str()),
            (8080, 0.0, "dev")
        );
        for (var, value) in [
            ("FAULT_ERROR_RATIO", "1.5"),
            ("FAULT_ERROR_RATIO", "x"),
            ("FAULT_LATENCY_MS", "fast"),
            ("PORT", "99999"),
        ] {
            let err = parse(&[(var, value)]).err().unwrap();
            assert!(err.starts_with(var), "{err}");
        }
    }
}
