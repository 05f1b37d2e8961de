//! The Kubernetes target and router, request by request, against a
//! scripted API server (tower-test): no API server can run here, so what
//! is tested is exactly what would be sent — server-side apply with our
//! field manager and `force`, inventory labels, the canary as a second
//! Deployment with its own selector, rollout status, prune by inventory,
//! and HTTPRoute weights written with compare-and-swap. A last test runs
//! against a real cluster when `KUBECONFIG` is set.

use crate::support;
use http_body_util::BodyExt;
use kube::client::Body;
use platform_capstone::adapters::kubernetes::{Kube, KubeRouter};
use platform_capstone::ports::{Split, Target, TargetError, Track, TrafficRouter, Workload};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    content_type: String,
    body: Value,
}

type Reply = Box<dyn FnMut(&Seen) -> (u16, Value) + Send>;

/// A Kube target whose API server is `reply`; returns what it was sent.
fn scripted(reply: Reply) -> (Kube, Arc<Mutex<Vec<Seen>>>, std::thread::JoinHandle<()>) {
    let (svc, mut handle) = tower_test::mock::pair::<http::Request<Body>, http::Response<Body>>();
    let mut kube = Kube::from_client(|| kube::Client::new(svc, "default")).expect("client");
    kube.poll = Duration::from_millis(10);
    kube.ready_timeout = Duration::from_millis(300);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let mut reply = reply;
        rt.block_on(async move {
            while let Some((req, send)) = handle.next_request().await {
                let (parts, body) = req.into_parts();
                let bytes = body.collect().await.expect("body").to_bytes();
                let s = Seen {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or_default().to_string(),
                    content_type: parts
                        .headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                };
                let (status, answer) = reply(&s);
                log.lock().expect("lock").push(s);
                send.send_response(
                    http::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                        .expect("response"),
                );
            }
        });
    });
    (kube, seen, server)
}

fn dev_objects() -> Vec<yaml_serde::Value> {
    support::blueprint_dev(None)
}

fn w(track: Track) -> Workload {
    Workload {
        namespace: "demo-dev".into(),
        app: "demo".into(),
        track,
    }
}

fn not_found() -> (u16, Value) {
    (
        404,
        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "not found"}),
    )
}

fn list(items: Vec<Value>) -> (u16, Value) {
    (
        200,
        json!({"kind": "List", "apiVersion": "v1", "metadata": {}, "items": items}),
    )
}

/// A ready Deployment (or not), as the API server would return it.
fn deployment(name: &str, ready: bool) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "demo-dev", "generation": 2},
        "spec": {"replicas": 1},
        "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": if ready {1} else {0}, "availableReplicas": if ready {1} else {0}}
    })
}

/// Echoes applies back, serves Deployments (ready after `ready_after` GETs)
/// and lists nothing.
fn api_server(ready_after: usize) -> Reply {
    let mut gets = 0;
    Box::new(move |s: &Seen| match s.method.as_str() {
        "PATCH" => (200, s.body.clone()),
        "GET" if s.path.contains("/deployments/") => {
            gets += 1;
            let name = s.path.rsplit('/').next().unwrap_or_default().to_string();
            (200, deployment(&name, gets > ready_after))
        }
        "GET" => list(Vec::new()),
        "DELETE" => (
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        ),
        _ => not_found(),
    })
}

fn label<'v>(v: &'v Value, k: &str) -> &'v Value {
    &v["metadata"]["labels"][k]
}

#[test]
fn stable_apply_is_server_side_with_our_field_manager_and_inventory() {
    let (kube, seen, server) = scripted(api_server(1));
    let r = kube
        .apply(&w(Track::Stable), &dev_objects(), "rel-2026-11-25-01")
        .expect("apply");
    assert!(r.is_ready(), "{r:?}");
    drop(kube);
    server.join().expect("server");
    let seen = seen.lock().expect("lock").clone();
    let patches: Vec<&Seen> = seen.iter().filter(|s| s.method == "PATCH").collect();
    let paths: Vec<&str> = patches.iter().map(|s| s.path.as_str()).collect();
    for want in [
        "/apis/apps/v1/namespaces/demo-dev/deployments/demo",
        "/api/v1/namespaces/demo-dev/services/demo",
        "/api/v1/namespaces/demo-dev/serviceaccounts/demo",
        "/api/v1/namespaces/demo-dev/services/demo-stable",
    ] {
        assert!(
            paths.contains(&want),
            "{want} not applied; applied {paths:#?}"
        );
    }
    assert!(
        paths
            .iter()
            .any(|p| p.starts_with("/api/v1/namespaces/demo-dev/configmaps/demo-config-")),
        "{paths:#?}"
    );
    for p in &patches {
        assert_eq!(p.content_type, "application/apply-patch+yaml", "{}", p.path);
        assert!(
            p.query.contains("fieldManager=platform-capstone"),
            "{}",
            p.query
        );
        assert!(p.query.contains("force=true"), "{}", p.query);
        assert_eq!(
            label(&p.body, "app.kubernetes.io/managed-by"),
            "platform-capstone",
            "{}",
            p.path
        );
        assert_eq!(
            label(&p.body, "platform-capstone.dev/release"),
            "rel-2026-11-25-01"
        );
        assert_eq!(p.body["metadata"]["namespace"], "demo-dev");
    }
    let d = &patches
        .iter()
        .find(|p| p.path.ends_with("/deployments/demo"))
        .expect("d")
        .body;
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["platform-capstone.dev/track"],
        "stable"
    );
    assert_eq!(
        d["spec"]["selector"]["matchExpressions"],
        json!([{"key": "platform-capstone.dev/track", "operator": "NotIn", "values": ["canary"]}])
    );
    let svc = &patches
        .iter()
        .find(|p| p.path.ends_with("/services/demo-stable"))
        .expect("svc")
        .body;
    assert_eq!(
        svc["spec"]["selector"]["platform-capstone.dev/track"],
        "stable"
    );
    assert_eq!(
        label(svc, "platform-capstone.dev/derived-from"),
        "Service.demo"
    );
    // Rollout status was polled until ready.
    let polls = seen
        .iter()
        .filter(|s| s.method == "GET" && s.path.ends_with("/deployments/demo"))
        .count();
    assert!(polls >= 2, "{polls} readiness polls");
}

#[test]
fn the_canary_is_a_second_deployment_with_its_own_selector_and_service() {
    let (kube, seen, server) = scripted(api_server(0));
    kube.apply(&w(Track::Canary), &dev_objects(), "rel-2026-11-25-02")
        .expect("apply canary");
    drop(kube);
    server.join().expect("server");
    let seen = seen.lock().expect("lock").clone();
    let patched: Vec<&str> = seen
        .iter()
        .filter(|s| s.method == "PATCH")
        .map(|s| s.path.as_str())
        .collect();
    assert!(patched.contains(&"/apis/apps/v1/namespaces/demo-dev/deployments/demo-canary"));
    assert!(patched.contains(&"/api/v1/namespaces/demo-dev/services/demo-canary"));
    // The stable Deployment, the shared Service and the ServiceAccount are left alone.
    for untouched in [
        "/deployments/demo",
        "/services/demo",
        "/serviceaccounts/demo",
    ] {
        assert!(
            !patched.iter().any(|p| p.ends_with(untouched)),
            "{untouched} applied: {patched:#?}"
        );
    }
    let d = &seen
        .iter()
        .find(|s| s.path.ends_with("/deployments/demo-canary"))
        .expect("d")
        .body;
    assert_eq!(
        d["spec"]["selector"]["matchLabels"]["platform-capstone.dev/track"],
        "canary"
    );
    assert_eq!(
        d["spec"]["template"]["metadata"]["labels"]["platform-capstone.dev/track"],
        "canary"
    );
    assert_eq!(
        label(d, "platform-capstone.dev/derived-from"),
        "Deployment.demo"
    );
}

#[test]
fn a_canary_that_never_becomes_ready_is_deleted() {
    let (kube, seen, server) = scripted(api_server(usize::MAX));
    let err = kube
        .apply(&w(Track::Canary), &dev_objects(), "rel-x")
        .expect_err("never ready");
    assert!(matches!(err, TargetError::NotReady { .. }), "{err}");
    drop(kube);
    server.join().expect("server");
    let seen = seen.lock().expect("lock").clone();
    assert!(
        seen.iter()
            .any(|s| s.method == "DELETE" && s.path.ends_with("/deployments/demo-canary")),
        "the canary was not deleted: {:#?}",
        seen.iter()
            .map(|s| format!("{} {}", s.method, s.path))
            .collect::<Vec<_>>()
    );
}

#[test]
fn unsupported_kinds_are_refused_before_any_request() {
    let (kube, seen, server) = scripted(api_server(0));
    let mut objects = dev_objects();
    objects.push(
        yaml_serde::from_str("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: x}")
            .expect("yaml"),
    );
    let err = kube
        .apply(&w(Track::Stable), &objects, "rel-x")
        .expect_err("refused")
        .to_string();
    assert!(
        err.contains("CronJob/x") && err.contains("kind CronJob"),
        "{err}"
    );
    drop(kube);
    server.join().expect("server");
    assert!(seen.lock().expect("lock").is_empty(), "requests were sent");
}

#[test]
fn prune_deletes_only_managed_objects_no_longer_desired() {
    let managed = |kind: &str, name: &str, derived: Option<&str>| {
        let mut labels = json!({"app.kubernetes.io/managed-by": "platform-capstone"});
        if let Some(d) = derived {
            labels["platform-capstone.dev/derived-from"] = json!(d);
        }
        json!({"apiVersion": "v1", "kind": kind, "metadata": {"name": name, "namespace": "demo-dev", "labels": labels}})
    };
    let reply: Reply = Box::new(move |s: &Seen| match (s.method.as_str(), s.path.as_str()) {
        ("GET", p) if p.ends_with("/configmaps") => list(vec![
            managed("ConfigMap", "demo-config-new", None),
            managed("ConfigMap", "demo-config-old", None),
        ]),
        ("GET", p) if p.ends_with("/services") => list(vec![
            managed("Service", "demo", None),
            managed("Service", "demo-stable", Some("Service.demo")),
        ]),
        ("GET", _) => list(Vec::new()),
        ("DELETE", _) => (
            200,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        ),
        _ => not_found(),
    });
    let (kube, seen, server) = scripted(reply);
    let removed = kube
        .prune(
            "demo-dev",
            &[
                "ConfigMap/demo-config-new".to_string(),
                "Service/demo".to_string(),
            ],
        )
        .expect("prune");
    assert_eq!(removed, vec!["ConfigMap/demo-config-old".to_string()]);
    drop(kube);
    server.join().expect("server");
    let seen = seen.lock().expect("lock").clone();
    for s in seen.iter().filter(|s| s.method == "GET") {
        assert!(
            s.query
                .contains("labelSelector=app.kubernetes.io%2Fmanaged-by%3Dplatform-capstone"),
            "{} {}",
            s.path,
            s.query
        );
    }
    let deletes: Vec<&str> = seen
        .iter()
        .filter(|s| s.method == "DELETE")
        .map(|s| s.path.as_str())
        .collect();
    assert_eq!(
        deletes,
        vec!["/api/v1/namespaces/demo-dev/configmaps/demo-config-old"]
    );
}

#[test]
fn httproute_weights_are_written_with_compare_and_swap() {
    let route = |rv: &str| {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "demo", "namespace": "demo-dev", "resourceVersion": rv},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [{"name": "demo-stable", "port": 80, "weight": 100}]}
            ]}
        })
    };
    let mut puts = 0;
    let reply: Reply = Box::new(move |s: &Seen| match s.method.as_str() {
        "GET" => (200, route(if puts == 0 { "41" } else { "42" })),
        "PUT" => {
            puts += 1;
            if puts == 1 {
                // Someone else wrote the route between our read and write.
                (
                    409,
                    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "Conflict", "code": 409, "message": "conflict"}),
                )
            } else {
                (200, s.body.clone())
            }
        }
        _ => not_found(),
    });
    let (kube, seen, server) = scripted(reply);
    let router = KubeRouter {
        kube: &kube,
        attempts: 3,
    };
    router
        .route(
            "demo-dev",
            "demo",
            &Split {
                stable: vec!["demo-stable".into()],
                canary: vec!["demo-canary".into()],
                canary_percent: 10,
            },
        )
        .expect("route");
    drop(kube);
    server.join().expect("server");
    let seen = seen.lock().expect("lock").clone();
    let puts: Vec<&Seen> = seen.iter().filter(|s| s.method == "PUT").collect();
    assert_eq!(puts.len(), 2, "a conflict is retried once");
    assert_eq!(puts[0].body["metadata"]["resourceVersion"], "41");
    assert_eq!(puts[1].body["metadata"]["resourceVersion"], "42");
    assert_eq!(
        puts[1].path,
        "/apis/gateway.networking.k8s.io/v1/namespaces/demo-dev/httproutes/demo"
    );
    let rule = &puts[1].body["spec"]["rules"][0];
    assert_eq!(
        rule["backendRefs"],
        json!([{"name": "demo-stable", "port": 80, "weight": 90}, {"name": "demo-canary", "port": 80, "weight": 10}])
    );
    assert_eq!(
        rule["matches"][0]["path"]["value"], "/",
        "the rest of the rule is kept"
    );
}

/// Opt-in (`--ignored`, with KUBECONFIG set): runs against namespace
/// `$PLATFORM_CAPSTONE_TEST_NAMESPACE` (default `platform-capstone-test`,
/// which must exist) and image `$PLATFORM_CAPSTONE_TEST_IMAGE`.
#[test]
#[ignore = "needs a cluster: set KUBECONFIG and run with --ignored"]
fn against_a_real_cluster_when_kubeconfig_is_set() {
    assert!(
        std::env::var_os("KUBECONFIG").is_some(),
        "KUBECONFIG is not set: point it at a cluster to run this suite"
    );
    let ns = std::env::var("PLATFORM_CAPSTONE_TEST_NAMESPACE")
        .unwrap_or_else(|_| "platform-capstone-test".into());
    let image = std::env::var("PLATFORM_CAPSTONE_TEST_IMAGE")
        .expect("set PLATFORM_CAPSTONE_TEST_IMAGE to an image serving /healthz on 8080");
    let kube = Kube::from_kubeconfig(None).expect("kubeconfig");
    let objects = support::blueprint_dev(Some(&image));
    let wl = Workload {
        namespace: ns.clone(),
        app: "demo".into(),
        track: Track::Stable,
    };
    let r = kube.apply(&wl, &objects, "rel-test").expect("apply");
    assert!(r.is_ready(), "{r:?}");
    let live = kube.live(&ns).expect("live");
    assert!(
        live.iter()
            .any(|o| o.kind == "Deployment" && o.name == "demo")
    );
    let removed = kube.prune(&ns, &[]).expect("prune everything we applied");
    assert!(
        removed.iter().any(|r| r == "Deployment/demo"),
        "{removed:?}"
    );
}
