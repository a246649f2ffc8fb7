//! The double's contract, checked over HTTP on 127.0.0.1 with the exact
//! settings each overlay's ConfigMap gives it (rendered by kustomize).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cbam_static_tier::render::Kustomize;
use reqwest::{Client, Method, StatusCode};
use rstest::rstest;
use serde_json::Value;

const SECRET: &str = "postgres://cbam:do-not-log-me@db/cbam";

/// The ConfigMap data an overlay renders, as the pod's environment.
fn overlay_env(env: &str) -> BTreeMap<String, String> {
    let overlay = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../infra/kustomize/overlays").join(env);
    let yaml = Kustomize::locate(None).expect("kustomize").build(&overlay).expect("render overlay");
    for doc in serde_norway::Deserializer::from_str(&yaml) {
        let value: Value = serde::Deserialize::deserialize(doc).expect("yaml");
        if value["kind"] == "ConfigMap" {
            return serde_json::from_value(value["data"].clone()).expect("string data");
        }
    }
    panic!("no ConfigMap in overlay {env}");
}

/// A running double; killed when dropped.
struct Running {
    child: Child,
    base: String,
    lines: mpsc::Receiver<String>,
    _dirs: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn pump(stdout: ChildStdout, tx: mpsc::Sender<String>) {
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        if tx.send(line).is_err() {
            break;
        }
    }
}

fn start(env: &str, overrides: &[(&str, &str)]) -> Running {
    let dirs = tempfile::tempdir().expect("temp dir");
    let mut command = Command::new(env!("CARGO_BIN_EXE_cbam-api"));
    command.env_clear().envs(overlay_env(env));
    for name in ["data", "logs", "output", "uploads"] {
        let dir: PathBuf = dirs.path().join(name);
        std::fs::create_dir(&dir).expect("volume dir");
        command.env(format!("{}_DIR", name.to_uppercase()), dir);
    }
    command
        .env("PORT", "0")
        .env("LISTEN_HOST", "127.0.0.1")
        .env("DATABASE_URL", SECRET)
        .env("REDIS_URL", "redis://cache:6379/0")
        .env("SHUTDOWN_DELAY_SECONDS", "0.2")
        .env("STARTUP_SECONDS", "0");
    for (k, v) in overrides {
        command.env(k, v);
    }
    let mut child = command.stdout(Stdio::piped()).spawn().expect("start cbam-api");
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || pump(stdout, tx));
    let first = lines.recv_timeout(Duration::from_secs(10)).expect("startup log line");
    let log: Value = serde_json::from_str(&first).expect("JSON log line");
    assert_eq!(log["msg"], "listening", "{first}");
    assert!(!first.contains("do-not-log-me"), "secret value logged: {first}");
    let base = format!("http://{}", log["addr"].as_str().expect("addr"));
    Running { child, base, lines, _dirs: dirs }
}

/// Polls `probe` until it holds or `timeout` passes; names what it waited for.
async fn until<F, Fut>(what: &str, timeout: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !probe().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn active_runs(client: &Client, base: &str) -> i64 {
    let text = client.get(format!("{base}/metrics")).send().await.expect("metrics").text().await.expect("text");
    text.lines()
        .find_map(|l| l.strip_prefix("cbam_pipeline_active_runs "))
        .and_then(|v| v.parse().ok())
        .expect("gauge present")
}

#[rstest]
#[case("dev")]
#[case("staging")]
#[case("production")]
#[tokio::test]
async fn probes_metrics_and_security_headers(#[case] env: &str) {
    let app = start(env, &[]);
    let client = Client::new();
    let health = client.get(format!("{}/health", app.base)).send().await.expect("health");
    assert_eq!(health.status(), StatusCode::OK);
    assert_eq!(health.headers()["x-frame-options"], "DENY");
    assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    assert!(health.headers()["strict-transport-security"].to_str().expect("ascii").starts_with("max-age="));
    assert!(health.headers().contains_key("content-security-policy"));
    assert!(health.headers().contains_key("referrer-policy"));
    let ready = client.get(format!("{}/health/ready", app.base)).send().await.expect("ready");
    assert_eq!(ready.status(), StatusCode::OK);
    let metrics =
        client.get(format!("{}/metrics", app.base)).send().await.expect("metrics").text().await.expect("text");
    for series in
        ["cbam_pipeline_active_runs 0", "cbam_http_requests_total{route=\"/health\"", "process_resident_memory_bytes"]
    {
        assert!(metrics.contains(series), "{series} missing from:\n{metrics}");
    }
    let missing = client.get(format!("{}/nope", app.base)).send().await.expect("404");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.headers()["x-frame-options"], "DENY", "headers on errors too");
    let body: Value = missing.json().await.expect("JSON error");
    assert_eq!(body["error"]["status"], 404);
}

#[rstest]
#[case("dev", StatusCode::OK)]
#[case("staging", StatusCode::OK)]
#[case("production", StatusCode::NOT_FOUND)]
#[tokio::test]
async fn api_docs_only_where_enabled(#[case] env: &str, #[case] expected: StatusCode) {
    let app = start(env, &[]);
    let client = Client::new();
    for path in ["/docs", "/openapi.json"] {
        let status = client.get(format!("{}{path}", app.base)).send().await.expect("docs").status();
        assert_eq!(status, expected, "{env} {path}");
    }
}

/// (env, origin, preflight method, preflight answered?, Access-Control-Allow-Origin on a simple request)
#[rstest]
#[case("dev", "https://anyone.example", "DELETE", true, Some("*"))]
#[case("staging", "https://admin-staging.greenlang.io", "PUT", true, Some("https://admin-staging.greenlang.io"))]
#[case("staging", "https://evil.example", "GET", false, None)]
#[case("production", "https://cbam.greenlang.io", "POST", true, Some("https://cbam.greenlang.io"))]
#[case("production", "https://cbam.greenlang.io", "DELETE", false, Some("https://cbam.greenlang.io"))]
#[case("production", "https://cbam-staging.greenlang.io", "GET", false, None)]
#[tokio::test]
async fn cors_follows_the_environment_policy(
    #[case] env: &str,
    #[case] origin: &str,
    #[case] method: &str,
    #[case] preflight_ok: bool,
    #[case] allow_origin: Option<&str>,
) {
    let app = start(env, &[]);
    let client = Client::new();
    let preflight = client
        .request(Method::OPTIONS, format!("{}/api/v1/pipeline/runs", app.base))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header("Access-Control-Request-Headers", "Content-Type")
        .send()
        .await
        .expect("preflight");
    if preflight_ok {
        assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
        assert_eq!(
            preflight.headers().get("access-control-allow-origin").map(|v| v.to_str().expect("ascii")),
            allow_origin
        );
        assert!(preflight.headers()["access-control-allow-methods"].to_str().expect("ascii").contains(method));
    } else {
        assert_eq!(preflight.status(), StatusCode::FORBIDDEN, "preflight must be refused");
        assert!(!preflight.headers().contains_key("access-control-allow-origin"));
    }
    let simple = client.get(format!("{}/health", app.base)).header("Origin", origin).send().await.expect("simple");
    let found = simple.headers().get("access-control-allow-origin").map(|v| v.to_str().expect("ascii").to_owned());
    assert_eq!(found.as_deref(), allow_origin);
    // Credentials only with a listed origin (never with `*`).
    let credentials = simple.headers().contains_key("access-control-allow-credentials");
    assert_eq!(credentials, allow_origin.is_some_and(|o| o != "*"));
}

#[rstest]
#[case::malformed_json("{not json", StatusCode::BAD_REQUEST)]
#[case::unknown_field(r#"{"duration_seconds": 1, "priority": 9}"#, StatusCode::UNPROCESSABLE_ENTITY)]
#[case::too_long(r#"{"duration_seconds": 601}"#, StatusCode::UNPROCESSABLE_ENTITY)]
#[case::cpu_over_one_core(r#"{"duration_seconds": 1, "cpu": 2}"#, StatusCode::UNPROCESSABLE_ENTITY)]
#[case::too_much_memory(r#"{"duration_seconds": 1, "memory_mib": 4096}"#, StatusCode::UNPROCESSABLE_ENTITY)]
#[tokio::test]
async fn bad_pipeline_requests_get_a_4xx_json_error(#[case] body: &str, #[case] status: StatusCode) {
    let app = start("production", &[]);
    let response = Client::new()
        .post(format!("{}/api/v1/pipeline/runs", app.base))
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), status);
    let json: Value = response.json().await.expect("JSON error body");
    assert_eq!(json["error"]["status"], status.as_u16());
}

#[tokio::test]
async fn oversized_bodies_and_wrong_methods_are_refused() {
    let app = start("production", &[]);
    let client = Client::new();
    let big = format!(r#"{{"duration_seconds": 1, "pad": "{}"}}"#, "x".repeat(100 * 1024));
    let response = client
        .post(format!("{}/api/v1/pipeline/runs", app.base))
        .header("Content-Type", "application/json")
        .body(big)
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let response = client.delete(format!("{}/health", app.base)).send().await.expect("delete");
    assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
    let json: Value = response.json().await.expect("JSON error body");
    assert_eq!(json["error"]["status"], 405);
}

#[tokio::test]
async fn pipeline_runs_move_the_gauge_and_are_bounded() {
    let app = start("production", &[("PIPELINE_MAX_CONCURRENT_RUNS", "2")]);
    let client = Client::new();
    let runs = format!("{}/api/v1/pipeline/runs", app.base);
    for _ in 0..2 {
        let r = client
            .post(&runs)
            .json(&serde_json::json!({"duration_seconds": 1.0, "cpu": 0.2}))
            .send()
            .await
            .expect("run");
        assert_eq!(r.status(), StatusCode::ACCEPTED);
    }
    assert_eq!(active_runs(&client, &app.base).await, 2);
    let busy = client.post(&runs).json(&serde_json::json!({"duration_seconds": 1.0})).send().await.expect("run");
    assert_eq!(busy.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(busy.headers()["retry-after"], "1");
    until("runs to finish", Duration::from_secs(10), || async { active_runs(&client, &app.base).await == 0 }).await;
    let metrics = client.get(format!("{}/metrics", app.base)).send().await.expect("m").text().await.expect("t");
    assert!(metrics.contains("cbam_pipeline_runs_total{outcome=\"completed\"} 2"), "{metrics}");
    assert!(metrics.contains("cbam_pipeline_runs_total{outcome=\"rejected\"} 1"), "{metrics}");
}

#[tokio::test]
async fn not_ready_without_secrets_or_writable_volumes() {
    let app = start("production", &[("DATABASE_URL", ""), ("DATA_DIR", "/nonexistent/data")]);
    let response = Client::new().get(format!("{}/health/ready", app.base)).send().await.expect("ready");
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = response.json().await.expect("json");
    let reasons = body["reasons"].to_string();
    assert!(reasons.contains("DATABASE_URL") && reasons.contains("DATA_DIR"), "{reasons}");
    let live = Client::new().get(format!("{}/health", app.base)).send().await.expect("health");
    assert_eq!(live.status(), StatusCode::OK, "liveness stays up");
}

fn terminate(child: &Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
    assert!(status.success());
}

/// Waits for the process to exit, within `timeout`.
fn exit_within(child: &mut Child, timeout: Duration) -> (std::process::ExitStatus, Duration) {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return (status, started.elapsed());
        }
        assert!(started.elapsed() < timeout, "process still running {timeout:?} after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn shutdown_log(app: &Running) -> Value {
    let line = app.lines.iter().find(|l| l.contains("shutdown: done")).expect("shutdown log line");
    serde_json::from_str(&line).expect("json")
}

#[tokio::test]
async fn sigterm_unreadies_at_once_and_finishes_in_flight_runs() {
    let mut app = start("production", &[("SHUTDOWN_DELAY_SECONDS", "1")]);
    let client = Client::new();
    let r = client
        .post(format!("{}/api/v1/pipeline/runs", app.base))
        .json(&serde_json::json!({"duration_seconds": 1.5}))
        .send()
        .await
        .expect("run");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    terminate(&app.child);
    until("readiness to fail after SIGTERM", Duration::from_secs(2), || async {
        client
            .get(format!("{}/health/ready", app.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == StatusCode::SERVICE_UNAVAILABLE)
    })
    .await;
    let refused = client
        .post(format!("{}/api/v1/pipeline/runs", app.base))
        .json(&serde_json::json!({"duration_seconds": 1}))
        .send()
        .await
        .expect("run while draining");
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = exit_within(&mut app.child, Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert_eq!(shutdown_log(&app)["aborted_runs"], 0);
}

#[tokio::test]
async fn sigterm_aborts_runs_that_outlive_the_deadline() {
    let mut app = start("production", &[("SHUTDOWN_TIMEOUT_SECONDS", "1")]);
    let client = Client::new();
    let r = client
        .post(format!("{}/api/v1/pipeline/runs", app.base))
        .json(&serde_json::json!({"duration_seconds": 120}))
        .send()
        .await
        .expect("run");
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    terminate(&app.child);
    let (status, elapsed) = exit_within(&mut app.child, Duration::from_secs(5));
    assert!(status.success());
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
    assert_eq!(shutdown_log(&app)["aborted_runs"], 1);
}

/// `?wait=true` answers when the run is over. A run in flight at SIGTERM
/// completes and is answered, by a pod that says it is draining, inside the
/// deadline; one that outlives the deadline is answered as aborted, and the
/// process still exits on time (the held connection does not keep it).
#[rstest]
#[case("25", StatusCode::OK, "completed")]
#[case("0.5", StatusCode::INTERNAL_SERVER_ERROR, "aborted")]
#[tokio::test]
async fn a_waited_run_is_answered_when_it_is_over_even_across_a_sigterm(
    #[case] deadline: &str,
    #[case] status: StatusCode,
    #[case] outcome: &str,
) {
    let mut app = start("production", &[("SHUTDOWN_TIMEOUT_SECONDS", deadline)]);
    let client = Client::new();
    let request = client
        .post(format!("{}/api/v1/pipeline/runs?wait=true", app.base))
        .json(&serde_json::json!({"duration_seconds": 1.5}))
        .send();
    let pending = tokio::spawn(request);
    until("the run to start", Duration::from_secs(2), || async { active_runs(&client, &app.base).await == 1 }).await;
    terminate(&app.child);
    let response = pending.await.expect("join").expect("the run is answered, not cut");
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["x-pod-draining"], "true");
    let body = response.text().await.expect("body");
    assert!(body.contains(outcome), "{body}");
    let (exit, elapsed) = exit_within(&mut app.child, Duration::from_secs(10));
    assert!(exit.success(), "{exit}");
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[rstest]
#[case("dev", true)]
#[case("production", false)]
#[tokio::test]
async fn request_logs_follow_the_log_level(#[case] env: &str, #[case] debug: bool) {
    let app = start(env, &[]);
    Client::new().get(format!("{}/health", app.base)).send().await.expect("health");
    let mut saw_request_log = false;
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        if let Ok(line) = app.lines.recv_timeout(Duration::from_millis(50)) {
            let log: Value = serde_json::from_str(&line).expect("every line is JSON");
            assert!(!line.contains("do-not-log-me"));
            saw_request_log |= log["msg"] == "request";
        }
    }
    assert_eq!(saw_request_log, debug);
}

/// The port is bound only after the startup work (a pod Ready too early
/// refuses connections), and every answer names the pod that gave it.
#[tokio::test]
async fn listens_after_its_startup_and_names_its_pod() {
    let started = Instant::now();
    let app = start("production", &[("STARTUP_SECONDS", "0.5"), ("HOSTNAME", "cbam-api-7d9f-abcde")]);
    assert!(started.elapsed() >= Duration::from_millis(500), "listening after {:?}", started.elapsed());
    let response = Client::new().get(format!("{}/health", app.base)).send().await.expect("health");
    assert_eq!(response.headers()["x-served-by"], "cbam-api-7d9f-abcde");
}
