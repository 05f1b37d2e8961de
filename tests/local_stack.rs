//! The local stack for real, brought up once for this test binary: the
//! demo image built from scratch with buildah, pushed, signed; the
//! blueprint's dev overlay run through `podman kube play`; HAProxy weights
//! observed in HAProxy's own counters through PromQL; the bad version's
//! error ratio seen in PromQL; a killed pod seen as not ready; Prometheus
//! stopped seen as a provider error; and `local down` leaving nothing.
//!
//! One test function, in phases, because the stack is one shared,
//! stateful thing: a guard takes it down even when a phase fails.

use crate::support;
use platform_capstone::adapters::prometheus::Prometheus;
use platform_capstone::adapters::traffic;
use platform_capstone::local::{PortChoice, Stack, images};
use platform_capstone::ports::{
    Metrics, MetricsError, Sample, Split, Target, Track, TrafficRouter, Workload,
};
use std::time::Duration;

struct Down<'a>(&'a Stack);

impl Drop for Down<'_> {
    fn drop(&mut self) {
        let _ = self.0.down(&mut |_| {});
    }
}

const NS: &str = "demo-dev";
const APP: &str = "demo";

fn workload(track: Track) -> Workload {
    Workload {
        namespace: NS.into(),
        app: APP.into(),
        track,
    }
}

/// The blueprint's dev overlay, rendered, its image set to `reference`.
fn dev_objects(reference: &str) -> Vec<yaml_serde::Value> {
    support::blueprint_dev(Some(reference))
}

/// Canary's share of HAProxy's responses between two counter readings.
fn counters(prom: &Prometheus) -> (f64, f64) {
    let q = |server: &str| {
        format!(
            "sum(haproxy_server_http_responses_total{{proxy=\"{NS}.{APP}\",server=~\"{server}.*\"}}) or vector(0)"
        )
    };
    let read = |query: String| match prom.instant(&query, None).expect("prometheus answers") {
        Sample::Value(v) => v,
        other => panic!("{query}: {other}"),
    };
    (read(q("stable")), read(q("canary")))
}

/// Waits until Prometheus has scraped HAProxy after now: counters read
/// then hold everything served before (the scrape's own timestamp says
/// when it started; a second or so with the stack's 1 s scrape interval).
fn settle_scrape(prom: &Prometheus) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64();
    platform_capstone::adapters::process::wait_until(
        "a scrape of HAProxy after now",
        Duration::from_secs(15),
        || {
            matches!(
                prom.instant("max(timestamp(up{job=\"haproxy\"}))", None),
                Ok(Sample::Value(t)) if t > now
            )
        },
    )
    .expect("Prometheus scrapes HAProxy");
}

#[test]
fn the_local_stack_runs_routes_measures_and_leaves_nothing_behind() {
    let state_dir = tempfile::tempdir().expect("tmp");
    let _turn = crate::support::real_stack();
    let stack = Stack::new(state_dir.path()).expect("stack");
    let _down = Down(&stack);
    let routes = vec![(NS.to_string(), APP.to_string())];
    let state = stack
        .up(&routes, PortChoice::Auto, &mut |l| eprintln!("{l}"))
        .expect("local up");
    // Idempotent: a second up keeps every process.
    let again = stack
        .up(&[], PortChoice::Auto, &mut |_| {})
        .expect("up again");
    assert_eq!(again.pids, state.pids, "a second up restarted something");
    let front = format!("http://127.0.0.1:{}/", state.routes[0].port);

    // Demo images: good and bad, pushed, signed, attested.
    let keys = tempfile::tempdir().expect("tmp");
    let (private, _public) = platform_capstone::gates::cosign::generate_key_pair().expect("keygen");
    let _ = keys;
    let sk = platform_capstone::gates::cosign::load_signing_key(&private).expect("key");
    let published = images::publish(
        &stack.podman_config(),
        &support::demo_binary(),
        &Stack::registry_host(&state),
        &images::good_and_bad("1.0.0"),
        &sk,
        &mut |l| eprintln!("{l}"),
    )
    .expect("demo images");
    let (good, bad) = (&published[0], &published[1]);

    let podman = stack.podman().expect("podman");
    let router = stack.router();
    let prom =
        Prometheus::new(&Stack::prometheus_url(&state), Duration::from_secs(5)).expect("prom");

    // 1. The good version as stable, answering through HAProxy.
    let stable = podman
        .apply(
            &workload(Track::Stable),
            &dev_objects(&good.reference),
            "rel-test-01",
        )
        .expect("apply stable");
    assert!(stable.is_ready(), "{stable:?}");
    router
        .route(
            NS,
            APP,
            &Split {
                stable: stable.endpoints.clone(),
                canary: vec![],
                canary_percent: 0,
            },
        )
        .expect("route to stable");
    let answer = reqwest::blocking::get(&front)
        .expect("frontend")
        .text()
        .expect("body");
    assert!(answer.contains("hello from version 1.0.0"), "{answer}");

    // 2. The bad version as canary; weights 10/50/100 observed in HAProxy's
    // own counters, read through PromQL.
    let canary = podman
        .apply(
            &workload(Track::Canary),
            &dev_objects(&bad.reference),
            "rel-test-02",
        )
        .expect("apply canary");
    for pct in [10u8, 50, 100] {
        let split = Split {
            stable: stable.endpoints.clone(),
            canary: canary.endpoints.clone(),
            canary_percent: pct,
        };
        router.route(NS, APP, &split).expect("route");
        assert_eq!(
            router.current(NS, APP).expect("current").canary_percent,
            pct
        );
        settle_scrape(&prom);
        let (s0, c0) = counters(&prom);
        let sent = traffic::run(&front, 100, Duration::from_secs(4), None).expect("traffic");
        settle_scrape(&prom);
        let (s1, c1) = counters(&prom);
        let share = (c1 - c0) * 100.0 / ((s1 - s0) + (c1 - c0));
        eprintln!(
            "weight {pct}%: canary served {share:.1}% of {} requests ({sent:?})",
            (s1 - s0) + (c1 - c0)
        );
        assert!(
            (share - f64::from(pct)).abs() <= 6.0,
            "weight {pct}%: canary served {share:.1}%"
        );
    }

    // 3. The bad version's error ratio, in PromQL, from the demo's metrics.
    let q = format!(
        "sum(rate(demo_http_requests_total{{namespace=\"{NS}\",version=\"{}\",code=\"500\"}}[15s])) / sum(rate(demo_http_requests_total{{namespace=\"{NS}\",version=\"{}\"}}[15s]))",
        bad.tag, bad.tag
    );
    match prom.instant(&q, None).expect("query") {
        Sample::Value(ratio) => assert!((0.1..=0.5).contains(&ratio), "bad error ratio {ratio}"),
        other => panic!("bad version's error ratio: {other}"),
    }
    let q_good = q.replace(&bad.tag, &good.tag);
    // Stable served only 50% and 90% phases: a number, and near zero.
    match prom.instant(&q_good, None).expect("query") {
        Sample::Value(ratio) => assert!(ratio < 0.01, "good error ratio {ratio}"),
        other => panic!("good version's error ratio: {other}"),
    }

    // No data and NaN are answers of their own, never numbers; a range
    // query returns the series in time order.
    assert_eq!(
        prom.instant("sum(no_such_metric_anywhere)", None)
            .expect("query"),
        Sample::NoData
    );
    assert_eq!(
        prom.instant("vector(0) / vector(0)", None).expect("query"),
        Sample::NaN
    );
    let now = chrono::Utc::now();
    let series = prom
        .range(
            &format!("sum(haproxy_server_http_responses_total{{proxy=\"{NS}.{APP}\"}})"),
            now - chrono::Duration::seconds(10),
            now,
            Duration::from_secs(1),
        )
        .expect("range");
    assert!(series.len() >= 5, "{series:?}");
    assert!(series.windows(2).all(|w| w[0].0 < w[1].0), "{series:?}");
    assert!(matches!(
        prom.instant("sum(rate(x[5m]", None),
        Err(MetricsError::Query { .. })
    ));

    // Back to stable; the canary removed.
    router
        .route(
            NS,
            APP,
            &Split {
                stable: stable.endpoints.clone(),
                canary: vec![],
                canary_percent: 0,
            },
        )
        .expect("route back");
    podman
        .remove(&workload(Track::Canary))
        .expect("remove canary");
    assert_eq!(
        podman
            .readiness(&workload(Track::Canary))
            .expect("readiness")
            .desired,
        0
    );

    // Live state reads back what runs.
    let live = podman.live(NS).expect("live");
    let demo = live.iter().find(|o| o.name == APP).expect("live demo");
    let image = demo.object["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("image");
    assert_eq!(image, good.reference);
    let env = format!(
        "{:?}",
        demo.object["spec"]["template"]["spec"]["containers"][0]["env"]
    );
    assert!(env.contains("LOG_LEVEL") && env.contains("debug"), "{env}");

    // Prune by inventory: what is still desired stays, the rest goes.
    assert!(
        podman
            .prune(NS, &["Deployment/demo".to_string()])
            .expect("prune")
            .is_empty()
    );
    let before = podman.pods(Some(NS)).expect("pods").len();
    assert!(before > 0);

    // 4. A killed pod: readiness drops.
    let pods = podman.pods(Some(NS)).expect("pods");
    let victim = &pods[0].name;
    platform_capstone::adapters::process::run(
        podman.command().args(["pod", "kill", victim]),
        Duration::from_secs(30),
        None,
    )
    .expect("kill pod");
    let r = podman
        .readiness(&workload(Track::Stable))
        .expect("readiness");
    assert!(!r.is_ready(), "{r:?}");

    let pruned = podman.prune(NS, &[]).expect("prune");
    assert_eq!(pruned.len(), before, "{pruned:?}");
    assert!(podman.pods(Some(NS)).expect("pods").is_empty());

    // 5. Prometheus stopped: a provider error, never a number.
    let pid = state.pids["prometheus"];
    let _ = std::process::Command::new("kill")
        .arg(pid.to_string())
        .status();
    platform_capstone::adapters::process::wait_until(
        "prometheus to stop",
        Duration::from_secs(15),
        || !platform_capstone::adapters::process::listening(state.ports.prometheus),
    )
    .expect("prometheus stops");
    match prom.instant("vector(1)", None) {
        Err(MetricsError::Provider(m)) => eprintln!("provider error as expected: {m}"),
        other => panic!("expected a provider error, got {other:?}"),
    }
    // `up` brings back what is missing and keeps the rest.
    let restored = stack
        .up(&[], PortChoice::Auto, &mut |l| eprintln!("{l}"))
        .expect("up restores");
    assert_ne!(restored.pids["prometheus"], pid);
    assert_eq!(restored.pids["haproxy"], state.pids["haproxy"]);

    // 6. Down leaves no process, pod, container or port.
    stack.down(&mut |l| eprintln!("{l}")).expect("down");
    for (name, pid) in &restored.pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/cmdline"))
                    .unwrap_or_default()
                    .is_empty(),
            "{name} (pid {pid}) still runs"
        );
    }
    let left = platform_capstone::adapters::process::run(
        podman
            .command()
            .args(["ps", "--all", "--format", "{{.Names}}"]),
        Duration::from_secs(30),
        None,
    )
    .expect("podman ps");
    assert_eq!(left.stdout.trim(), "", "containers left behind");
    let mut ports = vec![
        state.ports.registry,
        state.ports.prometheus,
        state.ports.haproxy_exporter,
    ];
    ports.extend(state.routes.iter().map(|r| r.port));
    ports.extend(
        stable
            .endpoints
            .iter()
            .filter_map(|e| e.rsplit(':').next()?.parse::<u16>().ok()),
    );
    for p in ports {
        assert!(
            !platform_capstone::adapters::process::listening(p),
            "port {p} still listening"
        );
    }
}

#[test]
fn a_missing_program_names_its_package() {
    let err = platform_capstone::local::check_programs(&[
        ("git", "git"),
        ("no-such-program-xyz", "no-such-package-xyz"),
    ])
    .expect_err("missing")
    .to_string();
    assert!(
        err.contains("no-such-program-xyz")
            && err.contains("apt-get install -y no-such-package-xyz"),
        "{err}"
    );
    assert!(!err.contains("git,"), "{err}");
}
