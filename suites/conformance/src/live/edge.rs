//! Live checks through the real ingress controller, on 127.0.0.1 with the
//! environment's hostname as SNI and Host: TLS, the HTTP to HTTPS redirect,
//! security headers, CORS, API docs and the rate limit.

use std::time::{Duration, Instant};

use reqwest::redirect::Policy;
use reqwest::{Certificate, Client, Method, Response};

use crate::fixtures::CorsPolicy;
use crate::live::context::LiveContext;
use crate::live::tls_versions::{self, Answer};
use crate::outcome::Recorder;

/// An origin no environment allows.
const FOREIGN_ORIGIN: &str = "https://foreign.conformance.invalid";

fn ingress_label(cx: &LiveContext<'_>) -> String {
    format!("Ingress {}/{} via https://{}", cx.namespace(), cx.workload.ingress.name, cx.fixture.hostname)
}

/// Trusts only the run's CA; offers TLS 1.2 and 1.3 only (rustls).
pub(crate) fn https(cx: &LiveContext<'_>) -> Result<Client, String> {
    let ca = Certificate::from_pem(cx.ca_pem.as_bytes()).map_err(|e| e.to_string())?;
    Client::builder()
        .tls_certs_only([ca])
        .resolve(&cx.fixture.hostname, cx.https)
        .redirect(Policy::none())
        .timeout(cx.timeouts.request)
        .build()
        .map_err(|e| e.to_string())
}

pub(crate) fn url(cx: &LiveContext<'_>, path: &str) -> String {
    format!("https://{}:{}{path}", cx.fixture.hostname, cx.https.port())
}

async fn get(cx: &LiveContext<'_>, method: Method, path: &str, headers: &[(&str, &str)]) -> Result<Response, String> {
    let client = https(cx)?;
    let mut request = client.request(method, url(cx, path));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().await.map_err(|e| error_chain(&e))
}

fn error_chain(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

fn header(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

pub(crate) async fn tls(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = ingress_label(cx);
    let host = &cx.fixture.hostname;
    let found = get(cx, Method::GET, &cx.workload.probes.liveness, &[]).await;
    r.record(
        &object,
        &format!("TLS {host} (SNI), chained to the run's CA"),
        "handshake and 200",
        match &found {
            Ok(resp) => format!("handshake ok, HTTP {}", resp.status().as_u16()),
            Err(e) => e.clone(),
        },
        found.as_ref().is_ok_and(|resp| resp.status().is_success()),
    );
    // TLS >= 1.2: the versions below are offered alone and must be refused;
    // the version a modern client gets is recorded.
    for legacy in [tls_versions::TLS1_0, tls_versions::TLS1_1] {
        let answer = tls_versions::offer(cx.https, host, &[legacy], cx.timeouts.request).await;
        let (text, ok) = match answer {
            Ok(Answer::Refused(how)) => (format!("refused ({how})"), true),
            Ok(Answer::Accepted(v)) => (format!("accepted: ServerHello {}", tls_versions::name(v)), false),
            Err(e) => (e, false),
        };
        r.record(&object, &format!("a ClientHello offering only {}", tls_versions::name(legacy)), "refused", text, ok);
    }
    let modern = [tls_versions::TLS1_3, tls_versions::TLS1_2];
    let (text, ok) = match tls_versions::offer(cx.https, host, &modern, cx.timeouts.request).await {
        Ok(Answer::Accepted(v)) => (format!("negotiated {}", tls_versions::name(v)), v >= tls_versions::TLS1_2),
        Ok(Answer::Refused(how)) => (format!("refused ({how})"), false),
        Err(e) => (e, false),
    };
    r.record(&object, "a ClientHello offering TLS 1.3 and 1.2", "TLS 1.2 or 1.3 negotiated", text, ok);
}

pub(crate) async fn https_redirect(cx: &LiveContext<'_>, r: &mut Recorder) {
    let client = Client::builder()
        .resolve(&cx.fixture.hostname, cx.http)
        .redirect(Policy::none())
        .timeout(cx.timeouts.request)
        .build();
    let target = format!("http://{}:{}/health", cx.fixture.hostname, cx.http.port());
    let found = match client {
        Ok(c) => c.get(&target).send().await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    let (text, ok) = match &found {
        Ok(resp) => {
            let location = header(resp, "location").unwrap_or_default();
            let ok =
                resp.status().is_redirection() && location.starts_with(&format!("https://{}", cx.fixture.hostname));
            (format!("HTTP {} Location {location:?}", resp.status().as_u16()), ok)
        }
        Err(e) => (e.clone(), false),
    };
    r.record(&ingress_label(cx), &format!("GET {target}"), "a redirect to https://", text, ok);
}

pub(crate) async fn security_headers(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = ingress_label(cx);
    match get(cx, Method::GET, &cx.workload.probes.liveness, &[]).await {
        Ok(resp) => {
            for (name, value) in &cx.workload.security_headers {
                r.equal(
                    &object,
                    &format!("response header {name}"),
                    value.clone(),
                    header(&resp, name).unwrap_or_else(|| "absent".into()),
                );
            }
        }
        Err(e) => r.record(&object, "response headers", "a response", e, false),
    }
}

/// The Access-Control-Allow-Origin answered to a GET from `origin`.
async fn allowed_origin(cx: &LiveContext<'_>, origin: &str) -> Result<String, String> {
    let resp = get(cx, Method::GET, &cx.workload.probes.liveness, &[("Origin", origin)]).await?;
    Ok(header(&resp, "access-control-allow-origin").unwrap_or_else(|| "absent".into()))
}

/// A preflight from `origin`: (status, allow-origin).
async fn preflight(cx: &LiveContext<'_>, origin: &str, method: &str) -> Result<(u16, Option<String>), String> {
    let headers = [("Origin", origin), ("Access-Control-Request-Method", method)];
    let resp = get(cx, Method::OPTIONS, "/api/v1/pipeline/runs", &headers).await?;
    Ok((resp.status().as_u16(), header(&resp, "access-control-allow-origin")))
}

pub(crate) async fn cors(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = ingress_label(cx);
    let policy = &cx.fixture.app.cors;
    let method = policy.methods.first().map_or("GET", String::as_str);
    let allowed = match policy.policy {
        CorsPolicy::Permissive => "https://any-origin.conformance.invalid".to_owned(),
        _ => policy.origins.first().cloned().unwrap_or_default(),
    };
    let expected = if policy.policy == CorsPolicy::Permissive { "*".to_owned() } else { allowed.clone() };
    // Origins to try: the allowed one (echoed or `*`, preflight answered), and
    // a foreign one (refused) everywhere but under the permissive policy.
    let mut cases = vec![(allowed.clone(), Some(expected))];
    if policy.policy != CorsPolicy::Permissive {
        cases.push((FOREIGN_ORIGIN.to_owned(), None));
    }
    for (origin, want) in cases {
        let shown = want.clone().unwrap_or_else(|| "absent".into());
        match allowed_origin(cx, &origin).await {
            Ok(found) => r.equal(&object, &format!("Access-Control-Allow-Origin for {origin}"), shown.clone(), found),
            Err(e) => r.record(&object, &format!("GET with Origin {origin}"), "a response", e, false),
        }
        let (text, ok) = match preflight(cx, &origin, method).await {
            Ok((status, acao)) => {
                let ok = match &want {
                    Some(w) => (200..300).contains(&status) && acao.as_deref() == Some(w.as_str()),
                    None => acao.is_none(),
                };
                (format!("HTTP {status}, allow-origin {}", acao.unwrap_or_else(|| "absent".into())), ok)
            }
            Err(e) => (e, false),
        };
        let expectation =
            if want.is_some() { format!("2xx, allow-origin {shown}") } else { "refused (no allow-origin)".to_owned() };
        r.record(&object, &format!("preflight {method} from {origin}"), expectation, text, ok);
    }
}

/// Docs on: 200. Docs off: the application's own 404, a JSON error body; a
/// 404 from the ingress controller (a misrouted path) proves nothing.
pub(crate) async fn api_docs(cx: &LiveContext<'_>, r: &mut Recorder) {
    let on = cx.fixture.app.api_docs;
    let expected = if on { "HTTP 200" } else { "HTTP 404 from the application (JSON error body)" };
    for path in ["/docs", "/openapi.json"] {
        let subject = format!("GET {path}");
        let resp = match get(cx, Method::GET, path, &[]).await {
            Ok(resp) => resp,
            Err(e) => {
                r.record(&ingress_label(cx), &subject, expected, e, false);
                continue;
            }
        };
        let status = resp.status().as_u16();
        let content_type = header(&resp, "content-type").unwrap_or_else(|| "none".into());
        let body = resp.text().await.unwrap_or_default();
        let from_app = serde_json::from_str::<serde_json::Value>(&body).is_ok_and(|v| v.is_object());
        let ok = if on { status == 200 } else { status == 404 && from_app };
        let found = format!("HTTP {status}, {content_type}, body {:?}", body.chars().take(80).collect::<String>());
        r.record(&ingress_label(cx), &subject, expected, found, ok);
    }
}

/// Traefik's Kubernetes Ingress NGINX provider before v3.7 does not read
/// `limit-rpm`; a controller known not to implement it cannot prove it.
fn controller_lacks_limit_rpm(image: &str) -> bool {
    let Some(version) = image.rsplit_once(":v").map(|(_, v)| v) else { return false };
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    image.contains("traefik") && matches!((parts.next(), parts.next()), (Some(3), Some(minor)) if minor < 7)
}

pub(crate) async fn rate_limit(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = ingress_label(cx);
    let limit = cx.workload.ingress.rate_limit_per_minute;
    let burst = limit * cx.workload.ingress.rate_limit_burst_multiplier;
    let client = match https(cx) {
        Ok(c) => c,
        Err(e) => return r.record(&object, "rate limit", "a client", e, false),
    };
    // Bounded: one client, at most twice the documented burst, so a larger
    // allowance (ingress-nginx's default multiplier is 5) shows as "no 429"
    // rather than running on.
    let budget = 2 * burst + 10;
    let started = Instant::now();
    let mut first_429 = None;
    for n in 1..=budget {
        match client.get(url(cx, &cx.workload.probes.liveness)).send().await {
            Ok(resp) if resp.status().as_u16() == 429 => {
                first_429 = Some(n);
                break;
            }
            Ok(_) => {}
            Err(e) => {
                return r.record(&object, &format!("rate limit, request {n}"), "responses", error_chain(&e), false);
            }
        }
    }
    let verdict = RateVerdict::judge(limit, burst, first_429, budget, started.elapsed());
    let subject = format!("{limit} requests per minute per client");
    match first_429 {
        None if controller_lacks_limit_rpm(&cx.controller) => r.skip(
            &object,
            &subject,
            verdict.expected,
            format!(
                "{budget} requests, no 429: the test cluster's controller ({}) does not implement limit-rpm",
                cx.controller
            ),
        ),
        _ => r.record(&object, &subject, verdict.expected, verdict.found, verdict.ok),
    }
}

/// What one client's burst of requests shows about a per-minute limit.
struct RateVerdict {
    expected: String,
    found: String,
    ok: bool,
}

impl RateVerdict {
    /// The limit is a token bucket of `burst` requests refilled at `limit`
    /// per minute: a burst gets `burst` answers, plus what refilled while it
    /// ran, and then 429. Requests sent through the ingress shortly before
    /// (the autoscaling load's last arrivals, a few probes) may bring the
    /// first 429 forward, never back.
    fn judge(limit: u32, burst: u32, first_429: Option<u32>, sent: u32, elapsed: Duration) -> Self {
        const EARLIER_REQUESTS: u32 = 20;
        let refilled = (elapsed.as_secs_f64() * f64::from(limit) / 60.0).floor() as u32;
        let latest = burst + 1 + refilled;
        let earliest = burst.saturating_sub(EARLIER_REQUESTS).max(2);
        let expected = if refilled == 0 {
            format!("HTTP 429 at request {latest}")
        } else {
            format!(
                "HTTP 429 by request {latest} ({burst} + 1 + {refilled} refilled in {:.1} s)",
                elapsed.as_secs_f64()
            )
        };
        let (found, ok) = match first_429 {
            None => (format!("no 429: {sent} requests answered in {:.1} s", elapsed.as_secs_f64()), false),
            Some(n) => (format!("first 429 at request {n}"), (earliest..=latest).contains(&n)),
        };
        Self { expected, found, ok }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_exactly_the_limit_passes() {
        let v = RateVerdict::judge(100, 100, Some(101), 210, Duration::from_millis(400));
        assert!(v.ok, "{}", v.found);
        assert_eq!(v.expected, "HTTP 429 at request 101");
    }

    #[test]
    fn tokens_refilled_during_a_slow_burst_are_allowed() {
        let v = RateVerdict::judge(100, 100, Some(104), 210, Duration::from_secs(2));
        assert!(v.ok);
        assert!(v.expected.contains("by request 104"), "{}", v.expected);
        assert!(!RateVerdict::judge(100, 100, Some(105), 210, Duration::from_secs(2)).ok);
    }

    #[test]
    fn a_burst_allowance_above_the_limit_fails() {
        let v = RateVerdict::judge(100, 100, None, 210, Duration::from_secs(1));
        assert!(!v.ok);
        assert_eq!(v.found, "no 429: 210 requests answered in 1.0 s");
        assert!(!RateVerdict::judge(100, 100, Some(150), 210, Duration::from_secs(1)).ok);
    }

    #[test]
    fn a_documented_burst_multiplier_moves_the_first_429() {
        assert!(RateVerdict::judge(100, 200, Some(201), 410, Duration::from_millis(300)).ok);
        assert!(!RateVerdict::judge(100, 200, Some(101), 410, Duration::from_millis(300)).ok);
    }

    #[test]
    fn a_limit_far_below_the_documented_one_fails() {
        assert!(!RateVerdict::judge(100, 100, Some(11), 210, Duration::from_millis(100)).ok);
        assert!(RateVerdict::judge(100, 100, Some(85), 210, Duration::from_millis(100)).ok);
    }

    #[test]
    fn knows_which_traefik_lacks_limit_rpm() {
        assert!(controller_lacks_limit_rpm("docker.io/library/traefik:v3.6.12"));
        assert!(!controller_lacks_limit_rpm("docker.io/library/traefik:v3.7.1"));
        assert!(!controller_lacks_limit_rpm("registry.k8s.io/ingress-nginx/controller:v1.12.0"));
    }
}
