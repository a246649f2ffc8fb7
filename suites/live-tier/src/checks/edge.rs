//! Live checks through the real ingress controller, on 127.0.0.1 with the
//! environment's hostname as SNI and Host: TLS, the HTTP to HTTPS redirect,
//! security headers, CORS, API docs and the rate limit.

use std::time::Instant;

use cbam_cluster::wait::{Poll, until};
use reqwest::redirect::Policy;
use reqwest::{Client, Method};

use crate::context::LiveContext;
use crate::judges::rate_bucket::{self, Limit};
use crate::traffic::https::{EdgeError, get, header, https, rate_limited, routing_version, url};
use crate::traffic::tls_versions::{self, Answer};
use cbam_error_chain::render as chain;
use cbam_model::fixtures::CorsPolicy;
use cbam_model::outcome::Recorder;

/// An origin no environment allows.
const FOREIGN_ORIGIN: &str = "https://foreign.conformance.invalid";

fn ingress_label(cx: &LiveContext<'_>) -> String {
    format!("Ingress {}/{} via https://{}", cx.namespace(), cx.workload.ingress.name, cx.fixture.hostname)
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
            Err(e) => chain(e),
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
            Err(e) => (chain(&e), false),
        };
        r.record(&object, &format!("a ClientHello offering only {}", tls_versions::name(legacy)), "refused", text, ok);
    }
    let modern = [tls_versions::TLS1_3, tls_versions::TLS1_2];
    let (text, ok) = match tls_versions::offer(cx.https, host, &modern, cx.timeouts.request).await {
        Ok(Answer::Accepted(v)) => (format!("negotiated {}", tls_versions::name(v)), v >= tls_versions::TLS1_2),
        Ok(Answer::Refused(how)) => (format!("refused ({how})"), false),
        Err(e) => (chain(&e), false),
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
        Ok(c) => c.get(&target).send().await.map_err(|source| EdgeError::Request {
            method: Method::GET,
            url: target.clone(),
            source,
        }),
        Err(e) => Err(EdgeError::Client(e)),
    };
    let (text, ok) = match &found {
        Ok(resp) => {
            let location = header(resp, "location").unwrap_or_default();
            let ok =
                resp.status().is_redirection() && location.starts_with(&format!("https://{}", cx.fixture.hostname));
            (format!("HTTP {} Location {location:?}", resp.status().as_u16()), ok)
        }
        Err(e) => (chain(e), false),
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
        Err(e) => r.record(&object, "response headers", "a response", chain(&e), false),
    }
}

/// The Access-Control-Allow-Origin answered to a GET from `origin`.
async fn allowed_origin(cx: &LiveContext<'_>, origin: &str) -> Result<String, EdgeError> {
    let resp = get(cx, Method::GET, &cx.workload.probes.liveness, &[("Origin", origin)]).await?;
    Ok(header(&resp, "access-control-allow-origin").unwrap_or_else(|| "absent".into()))
}

/// A preflight from `origin`: (status, allow-origin).
async fn preflight(cx: &LiveContext<'_>, origin: &str, method: &str) -> Result<(u16, Option<String>), EdgeError> {
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
            Err(e) => r.record(&object, &format!("GET with Origin {origin}"), "a response", chain(&e), false),
        }
        let (text, ok) = match preflight(cx, &origin, method).await {
            Ok((status, acao)) => {
                let ok = match &want {
                    Some(w) => (200..300).contains(&status) && acao.as_deref() == Some(w.as_str()),
                    None => acao.is_none(),
                };
                (format!("HTTP {status}, allow-origin {}", acao.unwrap_or_else(|| "absent".into())), ok)
            }
            Err(e) => (chain(&e), false),
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
                r.record(&ingress_label(cx), &subject, expected, chain(&e), false);
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

/// The clock uncertainty of the model, in tokens: our send time against the
/// controller's arrival time differs by the hop over loopback and Docker's
/// port proxy; 0.05 tokens = 30 ms at 100 per minute allows for it. Only a
/// request within that of the threshold may go either way.
const CLOCK_MARGIN_TOKENS: f64 = 0.05;

/// One burst: the send times up to the first 429 (inclusive), whether one
/// came, or the error that stopped it.
/// A burst as sent: each request's send time, the longest round trip of
/// any (each request met the controller between its send and its answer),
/// and whether the last was refused.
#[derive(Debug)]
struct Burst {
    times: Vec<Instant>,
    longest_round_trip: std::time::Duration,
    refused: bool,
}

async fn burst(cx: &LiveContext<'_>, client: &Client, budget: u32) -> Result<Burst, EdgeError> {
    let mut b = Burst { times: Vec::new(), longest_round_trip: std::time::Duration::ZERO, refused: false };
    for n in 1..=budget {
        let sent = Instant::now();
        b.times.push(sent);
        let answer = client.get(url(cx, &cx.workload.probes.liveness)).send().await;
        b.longest_round_trip = b.longest_round_trip.max(sent.elapsed());
        match answer {
            Ok(resp) if rate_limited(&resp) => {
                cx.ingress_log.record(sent, false);
                b.refused = true;
                return Ok(b);
            }
            Ok(_) => cx.ingress_log.record(sent, true),
            Err(source) => return Err(EdgeError::Burst { n, source }),
        }
    }
    Ok(b)
}

/// The model's clock uncertainty for a burst, in tokens: the controller saw
/// each request somewhere between its send and its answer, so the time
/// between two arrivals is known to within the longest round trip. Over
/// loopback and Docker's port proxy that is a few milliseconds (the floor,
/// CLOCK_MARGIN_TOKENS, holds); through an existing cluster's port-forward
/// (the API server in between) a first request of a new stream can take
/// tens of milliseconds longer than the rest, which the floor alone judged
/// as a refusal one request early.
fn clock_margin(limit: Limit, longest_round_trip: std::time::Duration) -> f64 {
    CLOCK_MARGIN_TOKENS.max(limit.per_minute / 60.0 * longest_round_trip.as_secs_f64())
}

/// Traefik applies a provider's change up to its `providersThrottleDuration`
/// (2 s by default) after the change, and rebuilds its middlewares (a new
/// rate-limit bucket) then: routing must have been still for longer than
/// that before a burst, or the rebuild lands inside it. Seen when the burst
/// followed the autoscaling check's last pod turning Ready: the first 429 at
/// request 204, two buckets' worth.
const ROUTING_QUIET: std::time::Duration = std::time::Duration::from_secs(5);

/// The routing version once it has not changed for [`ROUTING_QUIET`]; after
/// the `routing_settle` timeout, the last seen (said on stderr: the burst's
/// own before/after comparison then decides). Every change is logged.
async fn settled_routing(cx: &LiveContext<'_>) -> String {
    // The version and when it was first seen; empty: nothing seen yet.
    let seen = std::cell::RefCell::new((String::new(), Instant::now()));
    let condition = format!("routing (endpoints, Ingress) unchanged for {} s", ROUTING_QUIET.as_secs());
    let settled = until(&condition, cx.timeouts.routing_settle, || async {
        let version = routing_version(cx).await;
        let mut s = seen.borrow_mut();
        if version != s.0 {
            *s = (version.clone(), Instant::now());
            cx.ingress_log.routing(s.1, version);
        }
        let still = s.1.elapsed();
        if still >= ROUTING_QUIET {
            Poll::Done(s.0.clone())
        } else {
            Poll::Pending(format!("last change {:.1} s ago", still.as_secs_f64()))
        }
    })
    .await;
    settled.unwrap_or_else(|e| {
        eprintln!("live-rate-limit: {e}; the burst goes ahead and is judged by its own routing comparison");
        seen.into_inner().0
    })
}

pub(crate) async fn rate_limit(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = ingress_label(cx);
    let per_minute = cx.workload.ingress.rate_limit_per_minute;
    let limit = Limit {
        per_minute: f64::from(per_minute),
        burst: f64::from(per_minute * cx.workload.ingress.rate_limit_burst_multiplier),
    };
    let client = match https(cx) {
        Ok(c) => c,
        Err(e) => return r.record(&object, "rate limit", "a client", chain(&e), false),
    };
    // Bounded: one client, at most twice the documented burst, so a larger
    // allowance (ingress-nginx's default multiplier is 5) shows as "no 429"
    // rather than running on.
    #[expect(clippy::cast_possible_truncation, clippy::cast_sign_loss, reason = "a small request count")]
    let budget = (2.0 * limit.burst) as u32 + 10;
    let subject = format!("{per_minute} requests per minute per client, burst {}", limit.burst);
    // The precondition: no endpoint or Ingress change during the burst (the
    // controller would start a new bucket). One retry once the bucket is
    // full again; a second change leaves the limit not verified.
    for attempt in 1..=2 {
        let before = settled_routing(cx).await;
        // The controller rebuilt its middlewares at the last routing change:
        // requests before it met another bucket. Requests sent while the
        // change was under way may have met either: then the burst waits
        // until a minute after them, when any bucket is full again.
        let mut earlier = cx.ingress_log.passages();
        if let Some(change) = cx.ingress_log.last_change() {
            let unsure = earlier
                .iter()
                .filter(|p| p.passed && change.before.is_none_or(|b| p.at > b) && p.at <= change.seen)
                .map(|p| p.at)
                .max();
            if let Some(last) = unsure {
                let full = last + std::time::Duration::from_secs(61);
                eprintln!(
                    "live-rate-limit: requests were sent while the routing changed; waiting {:.0} s for a full bucket",
                    full.saturating_duration_since(Instant::now()).as_secs_f64()
                );
                tokio::time::sleep_until(full.into()).await;
            }
            earlier.retain(|p| p.at > change.seen);
        }
        // Progress (the interrupt test waits for it): the burst starts now.
        eprintln!("live-rate-limit: burst of at most {budget} requests");
        let started = Instant::now();
        let Burst { times, longest_round_trip, refused } = match burst(cx, &client, budget).await {
            Ok(b) => b,
            Err(e) => return r.record(&object, &subject, "responses", chain(&e), false),
        };
        let elapsed = started.elapsed().as_secs_f64();
        if routing_version(cx).await != before {
            if attempt == 1 {
                eprintln!(
                    "live-rate-limit: endpoints or the Ingress changed during the burst; again once the bucket is full"
                );
                tokio::time::sleep(std::time::Duration::from_secs(61)).await;
                continue;
            }
            return r.skip(
                &object,
                &subject,
                "a burst with stable routing",
                "endpoints or the Ingress changed during both bursts (the controller restarts its bucket)",
            );
        }
        let margin = clock_margin(limit, longest_round_trip);
        let j = rate_bucket::judge(limit, &earlier, &times, refused, margin);
        let expected = format!(
            "first 429 at request {} (a bucket of {} refilled at {per_minute}/min; {} earlier requests of this run in the last minute; a request within {margin:.2} tokens of the threshold may go either way, the longest round trip being {} ms)",
            j.predicted.map_or_else(|| "none".into(), |n| n.to_string()),
            limit.burst,
            j.earlier_in_last_minute,
            longest_round_trip.as_millis()
        );
        let found = if refused {
            format!("first 429 at request {} ({elapsed:.1} s)", times.len())
        } else {
            format!("no 429: {} requests answered in {elapsed:.1} s", times.len())
        };
        if !refused && controller_lacks_limit_rpm(&cx.controller) {
            let why =
                format!("{found}: the test cluster's controller ({}) does not implement limit-rpm", cx.controller);
            return r.skip(&object, &subject, expected, why);
        }
        return r.record(&object, &subject, expected, found, j.consistent);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_margin_is_the_longest_round_trip_in_tokens_and_never_below_the_floor() {
        let limit = Limit { per_minute: 100.0, burst: 100.0 };
        assert!((clock_margin(limit, std::time::Duration::from_millis(3)) - CLOCK_MARGIN_TOKENS).abs() < 1e-9);
        // 120 ms over a port-forward: 0.2 tokens at 100 per minute.
        assert!((clock_margin(limit, std::time::Duration::from_millis(120)) - 0.2).abs() < 1e-9);
    }

    #[test]
    fn knows_which_traefik_lacks_limit_rpm() {
        assert!(controller_lacks_limit_rpm("docker.io/library/traefik:v3.6.12"));
        assert!(!controller_lacks_limit_rpm("docker.io/library/traefik:v3.7.1"));
        assert!(!controller_lacks_limit_rpm("registry.k8s.io/ingress-nginx/controller:v1.12.0"));
    }
}
