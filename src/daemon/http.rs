//! The daemon's HTTP side (axum): `/healthz`, `/readyz`, `/metrics`, the
//! read-only JSON API, the GitHub-style webhook, and the mutating calls.
//!
//! - The webhook body is capped and its `X-Hub-Signature-256` HMAC is
//!   verified over the raw bytes before anything parses them; unknown
//!   events are acknowledged and ignored. No secret configured: 404.
//! - Mutating calls need `Authorization: Bearer <token>`, compared in
//!   constant time (over SHA-256 digests, so length leaks nothing). No
//!   token configured: 403, always. They are `reconcile` (fetch now),
//!   `releases/{id}/approve` (an SSH-signed approval, verified against the
//!   env's approvers before it is stored), `envs/{env}/abort` (park the
//!   running rollout on stable, record `aborted`), `envs/{env}/retry`,
//!   `envs/{env}/drift` (a drift check now) and `envs/{env}/rollback` (an
//!   operator's SSH-signed rollback, verified against the env's pinned
//!   operators before anything is done). Drift reports are read at
//!   `/api/v1/drift[/{env}]` (`?format=markdown` for the Markdown).

use super::{ApiError, Shared, Trigger};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hmac::Mac;
use sha2::Digest;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use subtle::ConstantTimeEq;

/// Largest webhook body read.
pub const MAX_WEBHOOK_BYTES: usize = 1024 * 1024;

/// Whether `header` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
pub fn webhook_signature_ok(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(given) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Constant-time bearer token check.
pub fn token_ok(expected: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(expected) = expected else {
        return false;
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let a = sha2::Sha256::digest(given.as_bytes());
    let b = sha2::Sha256::digest(expected.as_bytes());
    bool::from(a.as_slice().ct_eq(b.as_slice())) && !given.is_empty()
}

/// Most connections served at once; past it new ones are closed at once.
pub const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send a request's headers (and, on a kept-alive
/// connection, the next request's): a slowloris client is cut off.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time one request may take, body included: a body trickled in slowly is
/// answered 408.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest life of one connection, however busy.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Serves `app` on `listener` until `stop` turns true: hyper's HTTP/1
/// with a header-read timeout, a request timeout (body included), a cap on
/// connections and on each connection's life. Written as our own accept
/// loop because `axum::serve` sets none of these.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;
    let app = app.layer(axum::middleware::from_fn(request_deadline));
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(max = MAX_CONNECTIONS, "connection refused: too many open");
            drop(stream);
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let mut stop = stop.clone();
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                _ = tokio::time::timeout(CONNECTION_LIFETIME, conn.as_mut()) => {}
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
                }
            }
            drop(permit);
        });
    }
}

/// Answers 408 when a request (reading its body included) takes longer
/// than [`REQUEST_TIMEOUT`].
async fn request_deadline(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(req)).await {
        Ok(r) => r,
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            "request not completed in time\n",
        )
            .into_response(),
    }
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/envs", get(envs))
        .route("/api/v1/releases", get(releases))
        .route("/api/v1/releases/{id}", get(release))
        .route("/api/v1/reconcile", post(reconcile))
        .route("/api/v1/releases/{id}/approve", post(approve))
        .route("/api/v1/envs/{env}/abort", post(abort))
        .route("/api/v1/envs/{env}/retry", post(retry))
        .route("/api/v1/envs/{env}/rollback", post(rollback))
        .route("/api/v1/envs/{env}/drift", post(drift_now))
        .route("/api/v1/drift", get(drift_all))
        .route("/api/v1/drills", get(drills))
        .route("/api/v1/drift/{env}", get(drift_env))
        .route(
            "/api/v1/webhook",
            post(webhook).layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES)),
        )
        .with_state(shared)
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    match s.ready() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    match s.metrics.encode() {
        Ok(text) => (
            StatusCode::OK,
            [(
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e).into_response(),
    }
}

async fn envs(State(s): State<Arc<Shared>>) -> Response {
    let mut envs = s.envs.lock().map(|e| e.clone()).unwrap_or_default();
    // A hold is read from the state dir as it is now: a rollback done by
    // `rollback --config` on this machine while git is down shows too.
    if let Ok(cfg) = s.cfg.lock().map(|c| c.clone()) {
        let store = crate::engine::store::Store::new(&cfg.state_dir);
        for (name, e) in envs.iter_mut() {
            e.held = match store.rollback_pending(name) {
                Ok(p) => p.map(|p| p.summary()),
                Err(err) => Some(format!("unreadable hold: {err}")),
            };
        }
    }
    axum::Json(envs).into_response()
}

async fn releases(State(s): State<Arc<Shared>>) -> Response {
    let records = s.records.lock().map(|r| r.clone()).unwrap_or_default();
    axum::Json(records).into_response()
}

async fn release(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let records: Vec<crate::audit::Record> = s
        .records
        .lock()
        .map(|r| r.iter().filter(|x| x.release == id).cloned().collect())
        .unwrap_or_default();
    if records.is_empty() {
        return (StatusCode::NOT_FOUND, format!("{id}: no such release\n")).into_response();
    }
    axum::Json(records).into_response()
}

/// `Some(403)` unless the request carries the configured bearer token.
fn refused(s: &Shared, headers: &HeaderMap) -> Option<Response> {
    let token = s.token.lock().ok().and_then(|t| t.clone());
    (!token_ok(token.as_deref(), headers))
        .then(|| (StatusCode::FORBIDDEN, "a valid bearer token is required\n").into_response())
}

async fn reconcile(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    let _ = s.trigger.try_send(Trigger::Api);
    (StatusCode::ACCEPTED, "reconcile requested\n").into_response()
}

/// The body of `POST /api/v1/releases/{id}/approve`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveBody {
    /// The env the release waits to enter.
    pub env: String,
    /// Armored SSHSIG, namespace platform-capstone-approval, over
    /// `platform-capstone approve <id> --env <env>\n`.
    pub signature: String,
}

async fn approve(
    State(s): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    let body: ApproveBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("body: {e}; expected {{\"env\": \"…\", \"signature\": \"-----BEGIN SSH SIGNATURE-----…\"}}\n"),
            )
                .into_response();
        }
    };
    let shared = s.clone();
    let (env, signature) = (body.env.clone(), body.signature);
    let id2 = id.clone();
    let res = tokio::task::spawn_blocking(move || shared.accept_approval(&id2, &env, &signature))
        .await
        .unwrap_or_else(|e| Err(ApiError::Unavailable(e.to_string())));
    match res {
        Ok(approver) => {
            // The waiting release is retried on this fetch.
            let _ = s.trigger.try_send(Trigger::Api);
            axum::Json(serde_json::json!({
                "release": id, "env": body.env, "approver": approver,
            }))
            .into_response()
        }
        Err(e) => api_error(e),
    }
}

/// An operator's signed rollback (`crate::rollback::Request` as JSON, the
/// same the `rollback` command signs). 200 with what was done when the
/// commit landed, 202 when the rollback is live and its commit pending
/// (git down, or a conflict: the env is held), 403 when the signature is
/// not a pinned operator's, 409 when there is nothing to roll back to.
async fn rollback(
    State(s): State<Arc<Shared>>,
    Path(env): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    let request: crate::rollback::Request = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("body: {e}; expected a signed rollback request (see `platform-capstone rollback --help`)\n"),
            )
                .into_response();
        }
    };
    if request.env != env {
        return (
            StatusCode::BAD_REQUEST,
            format!(
                "the request rolls back {}, the URL names {env}\n",
                request.env
            ),
        )
            .into_response();
    }
    if let Err(e) = known_env(&s, &env) {
        return api_error(e);
    }
    let shared = s.clone();
    let res = tokio::task::spawn_blocking(move || shared.rollback(&env, &request))
        .await
        .unwrap_or_else(|e| Err(ApiError::Unavailable(e.to_string())));
    match res {
        Ok(done) => {
            let _ = s.trigger.try_send(Trigger::Api);
            let code = match done.commit {
                crate::engine::rollback::Landed::Pushed { .. } => StatusCode::OK,
                _ => StatusCode::ACCEPTED,
            };
            (code, axum::Json(done)).into_response()
        }
        Err(e) => api_error(e),
    }
}

fn api_error(e: ApiError) -> Response {
    let (code, m) = match e {
        ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
        ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
        ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
        ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
    };
    (code, m + "\n").into_response()
}

fn known_env(s: &Shared, env: &str) -> Result<bool, ApiError> {
    let envs = s
        .envs
        .lock()
        .map_err(|_| ApiError::Unavailable("state poisoned".into()))?;
    match envs.get(env) {
        None => Err(ApiError::NotFound(format!("{env}: no such environment"))),
        Some(e) => Ok(e.busy),
    }
}

/// Aborts the rollout running in `env`: at its next interval all traffic
/// goes to stable, the canary is removed, the release is recorded
/// `aborted`; nothing is reverted or promoted. 409 when nothing runs.
async fn abort(
    State(s): State<Arc<Shared>>,
    Path(env): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    match known_env(&s, &env) {
        Err(e) => api_error(e),
        Ok(false) => api_error(ApiError::Conflict(format!(
            "{env}: no rollout is running; nothing to abort"
        ))),
        Ok(true) => {
            s.control(&env).abort.store(true, Ordering::Relaxed);
            tracing::warn!(env, "abort requested through the API");
            (
                StatusCode::ACCEPTED,
                format!("{env}: abort requested; the rollout stops at its next interval\n"),
            )
                .into_response()
        }
    }
}

fn store(s: &Shared) -> Option<crate::engine::store::Store> {
    let cfg = s.cfg.lock().ok()?;
    Some(crate::engine::store::Store::new(&cfg.state_dir))
}

/// The latest drift report of every env, newest data the daemon has.
async fn drift_all(State(s): State<Arc<Shared>>) -> Response {
    let names: Vec<String> = s
        .envs
        .lock()
        .map(|e| e.keys().cloned().collect())
        .unwrap_or_default();
    let Some(store) = store(&s) else {
        return api_error(ApiError::Unavailable("state poisoned".into()));
    };
    let reports: Vec<_> = names
        .iter()
        .filter_map(|n| store.latest_report(n).ok().flatten())
        .collect();
    axum::Json(reports).into_response()
}

/// Drill history (newest first, at most 100): what the state dir keeps.
async fn drills(State(s): State<Arc<Shared>>) -> Response {
    let Some(store) = store(&s) else {
        return api_error(ApiError::Unavailable("state poisoned".into()));
    };
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(store.dir().join("drills"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort_by(|a, b| b.file_name().cmp(&a.file_name()));
    let runs: Vec<crate::drill::DrillRun> = files
        .iter()
        .take(100)
        .filter_map(|p| serde_json::from_slice(&std::fs::read(p).ok()?).ok())
        .collect();
    axum::Json(runs).into_response()
}

/// One env's latest drift report: JSON, or Markdown with `?format=markdown`.
async fn drift_env(
    State(s): State<Arc<Shared>>,
    Path(env): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::BTreeMap<String, String>>,
) -> Response {
    if let Err(e) = known_env(&s, &env) {
        return api_error(e);
    }
    let Some(store) = store(&s) else {
        return api_error(ApiError::Unavailable("state poisoned".into()));
    };
    match store.latest_report(&env) {
        Ok(Some(r)) if q.get("format").is_some_and(|f| f == "markdown") => (
            [("content-type", "text/markdown; charset=utf-8")],
            crate::drift::report::markdown(std::slice::from_ref(&r)),
        )
            .into_response(),
        Ok(Some(r)) => axum::Json(r).into_response(),
        Ok(None) => api_error(ApiError::NotFound(format!(
            "{env}: no drift report yet (POST /api/v1/envs/{env}/drift runs one)"
        ))),
        Err(e) => api_error(ApiError::Unavailable(e.to_string())),
    }
}

/// Runs `env`'s drift check now (heal and hand-over as configured).
async fn drift_now(
    State(s): State<Arc<Shared>>,
    Path(env): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    if let Err(e) = known_env(&s, &env) {
        return api_error(e);
    }
    match s.drift.try_send(env.clone()) {
        Ok(()) => (
            StatusCode::ACCEPTED,
            format!("{env}: drift check started; GET /api/v1/drift/{env} for the report\n"),
        )
            .into_response(),
        Err(e) => api_error(ApiError::Unavailable(e.to_string())),
    }
}

/// Runs `env`'s head again, even when its release ended aborted or paused.
async fn retry(
    State(s): State<Arc<Shared>>,
    Path(env): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refused(&s, &headers) {
        return r;
    }
    match known_env(&s, &env) {
        Err(e) => api_error(e),
        Ok(true) => api_error(ApiError::Conflict(format!(
            "{env}: a rollout is running; retry once it ended"
        ))),
        Ok(false) => {
            s.control(&env).retry.store(true, Ordering::Relaxed);
            let _ = s.trigger.try_send(Trigger::Api);
            (StatusCode::ACCEPTED, format!("{env}: retry requested\n")).into_response()
        }
    }
}

async fn webhook(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let secret = s.webhook_secret.lock().ok().and_then(|t| t.clone());
    let Some(secret) = secret else {
        return (StatusCode::NOT_FOUND, "no webhook configured\n").into_response();
    };
    let sig = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !webhook_signature_ok(&secret, &body, sig) {
        s.metrics.webhook_rejected.inc();
        return (
            StatusCode::UNAUTHORIZED,
            "bad or missing X-Hub-Signature-256\n",
        )
            .into_response();
    }
    // Only now is the body looked at.
    match headers.get("x-github-event").and_then(|v| v.to_str().ok()) {
        Some("ping") => (StatusCode::OK, "pong\n").into_response(),
        Some("push") => {
            let _ = s.trigger.try_send(Trigger::Webhook);
            (StatusCode::ACCEPTED, "fetch scheduled\n").into_response()
        }
        _ => (StatusCode::ACCEPTED, "event ignored\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_signatures_and_tokens_are_checked_exactly() {
        let secret = b"s3cret";
        let body = br#"{"ref":"refs/heads/env/dev"}"#;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(body);
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(webhook_signature_ok(
            secret,
            body,
            Some(&format!("sha256={hex}"))
        ));
        assert!(!webhook_signature_ok(
            secret,
            b"{}",
            Some(&format!("sha256={hex}"))
        ));
        assert!(!webhook_signature_ok(
            b"other",
            body,
            Some(&format!("sha256={hex}"))
        ));
        assert!(!webhook_signature_ok(secret, body, Some(&hex)));
        assert!(!webhook_signature_ok(secret, body, Some("sha256=zz")));
        assert!(!webhook_signature_ok(secret, body, None));
        let mut h = HeaderMap::new();
        h.insert("authorization", "Bearer t0ken".parse().unwrap());
        assert!(token_ok(Some("t0ken"), &h));
        assert!(!token_ok(Some("t0ken2"), &h));
        assert!(!token_ok(None, &h));
        assert!(!token_ok(Some("t0ken"), &HeaderMap::new()));
    }
}
