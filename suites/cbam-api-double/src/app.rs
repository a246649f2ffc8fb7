//! The HTTP surface of the CBAM API, as the infrastructure sees it.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;

use crate::config::Config;
use crate::cors::Decision;
use crate::logging::{Level, Logger};
use crate::metrics::Metrics;
use crate::pipeline::{Pipeline, RunError, RunRequest};
use crate::readiness::Readiness;

/// Request bodies above this are refused with 413.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug)]
pub struct AppState {
    pub config: Config,
    pub logger: Logger,
    pub metrics: Arc<Metrics>,
    pub pipeline: Arc<Pipeline>,
    pub readiness: Readiness,
}

pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({ "error": { "status": status.as_u16(), "message": message.into() } });
    (status, Json(body)).into_response()
}

async fn health() -> Response {
    Json(json!({ "status": "ok" })).into_response()
}

async fn ready(State(app): State<Arc<AppState>>) -> Response {
    let reasons = app.readiness.reasons();
    if reasons.is_empty() {
        Json(json!({ "ready": true })).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false, "reasons": reasons }))).into_response()
    }
}

async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

/// Whether the caller asked to be answered when the run is over
/// (`?wait=true`) rather than when it starts.
fn waits(uri: &Uri) -> bool {
    uri.query().is_some_and(|q| q.split('&').any(|pair| pair == "wait=true"))
}

async fn start_run(
    State(app): State<Arc<AppState>>,
    uri: Uri,
    body: Result<Json<RunRequest>, JsonRejection>,
) -> Response {
    let Json(req) = match body {
        Ok(req) => req,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    if app.readiness.draining.load(Ordering::SeqCst) {
        return error(StatusCode::SERVICE_UNAVAILABLE, RunError::Draining.to_string());
    }
    match app.pipeline.start(&req) {
        Ok((accepted, done)) => {
            app.logger.log(
                Level::Debug,
                "pipeline run started",
                json!({ "run": accepted.id, "active_runs": accepted.active_runs }),
            );
            if !waits(&uri) {
                return (StatusCode::ACCEPTED, Json(accepted)).into_response();
            }
            // A held answer keeps its connection open, so a graceful
            // shutdown waits for it: the run's end is what the caller hears.
            match done.await {
                Ok(true) => Json(json!({ "id": accepted.id, "outcome": "completed" })).into_response(),
                _ => error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("run {} aborted at the shutdown deadline", accepted.id),
                ),
            }
        }
        Err(err @ (RunError::Busy(_) | RunError::MemoryBudget)) => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, err.to_string());
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            response
        }
        Err(err) => error(StatusCode::UNPROCESSABLE_ENTITY, err.to_string()),
    }
}

async fn runs(State(app): State<Arc<AppState>>) -> Response {
    Json(json!({ "active_runs": app.pipeline.active(), "max_concurrent_runs": app.pipeline.max_runs })).into_response()
}

async fn openapi() -> Response {
    Json(json!({
        "openapi": "3.1.0",
        "info": { "title": "CBAM Importer Copilot API (conformance double)", "version": env!("CARGO_PKG_VERSION") },
        "paths": {
            "/health": { "get": { "summary": "liveness" } },
            "/health/ready": { "get": { "summary": "readiness" } },
            "/metrics": { "get": { "summary": "Prometheus metrics" } },
            "/api/v1/pipeline/runs": {
                "get": { "summary": "active runs" },
                "post": { "summary": "start a run: {duration_seconds, cpu, memory_mib}; ?wait=true answers when it is over (200 completed, 500 aborted)" }
            }
        }
    }))
    .into_response()
}

async fn docs() -> Response {
    Html("<!doctype html><title>CBAM API docs</title><p>OpenAPI: <a href=\"/openapi.json\">/openapi.json</a></p>")
        .into_response()
}

async fn not_found(method: Method, uri: axum::http::Uri) -> Response {
    error(StatusCode::NOT_FOUND, format!("no route for {method} {}", uri.path()))
}

/// A fixed label per route keeps metric cardinality bounded.
fn route_label(path: &str, metrics_path: &str) -> &'static str {
    match path {
        "/health" => "/health",
        "/health/ready" => "/health/ready",
        "/api/v1/pipeline/runs" => "/api/v1/pipeline/runs",
        "/docs" => "/docs",
        "/openapi.json" => "/openapi.json",
        p if p == metrics_path => "/metrics",
        _ => "other",
    }
}

fn apply(headers: &mut HeaderMap, pairs: &[(&'static str, String)]) {
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
}

/// CORS, security headers, metrics and access logs around every request.
async fn edge(State(app): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = route_label(request.uri().path(), &app.config.metrics_path);
    // Owned copies: a borrow of the request (its body is not Sync) must not live across an await.
    let (origin, preflight_method, preflight_headers) = {
        let header = |name| request.headers().get(name).and_then(|v: &HeaderValue| v.to_str().ok()).map(str::to_owned);
        (
            header(header::ORIGIN),
            header(header::ACCESS_CONTROL_REQUEST_METHOD),
            header(header::ACCESS_CONTROL_REQUEST_HEADERS).unwrap_or_default(),
        )
    };
    let mut response = match (&origin, &preflight_method) {
        (Some(origin), Some(wanted)) if method == Method::OPTIONS => {
            match app.config.cors.preflight(origin, wanted, &preflight_headers) {
                Decision::Allow(pairs) => {
                    let mut ok = StatusCode::NO_CONTENT.into_response();
                    apply(ok.headers_mut(), &pairs);
                    ok
                }
                Decision::Refuse => {
                    error(StatusCode::FORBIDDEN, "CORS preflight refused for this origin, method or headers")
                }
            }
        }
        _ => {
            let mut response = next.run(request).await;
            if let Some(Decision::Allow(pairs)) = origin.as_deref().map(|o| app.config.cors.simple(o)) {
                apply(response.headers_mut(), &pairs);
            }
            response
        }
    };
    if let Some(pod) = app.config.served_by.as_deref().and_then(|p| HeaderValue::from_str(p).ok()) {
        response.headers_mut().insert("x-served-by", pod);
    }
    // Which answers a shutting-down pod gave: a prober counts the requests
    // that reached it after its SIGTERM, and the runs it let finish.
    if app.readiness.draining.load(Ordering::SeqCst) {
        response.headers_mut().insert("x-pod-draining", HeaderValue::from_static("true"));
    }
    for (name, value) in &app.config.security_headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    let status = response.status().as_u16();
    app.metrics.observe(route, method.as_str(), status, started.elapsed());
    if app.logger.enabled(Level::Debug) {
        app.logger.log(
            Level::Debug,
            "request",
            json!({ "method": method.as_str(), "route": route, "status": status, "ms": started.elapsed().as_secs_f64() * 1000.0 }),
        );
    }
    response
}

pub fn router(app: Arc<AppState>) -> Router {
    let mut router = Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .route(&app.config.metrics_path, get(metrics))
        .route("/api/v1/pipeline/runs", post(start_run).get(runs));
    if app.config.api_docs {
        router = router.route("/docs", get(docs)).route("/openapi.json", get(openapi));
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(|| async { error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed") })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(app.clone(), edge))
        .with_state(app)
}
