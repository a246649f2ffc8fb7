//! The Ingress: host, TLS, issuer, controller class and the controller
//! annotations that carry the redirect and the rate limit.

use k8s_openapi::api::networking::v1::{HTTPIngressPath, Ingress, IngressBackend};

use crate::context::Context;
use cbam_model::outcome::{Recorder, shown};

const ISSUER: &str = "cert-manager.io/cluster-issuer";
const SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
const FORCE_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/force-ssl-redirect";
const LIMIT_RPM: &str = "nginx.ingress.kubernetes.io/limit-rpm";
const LIMIT_BURST_MULTIPLIER: &str = "nginx.ingress.kubernetes.io/limit-burst-multiplier";
const CONNECT_TIMEOUT: &str = "nginx.ingress.kubernetes.io/proxy-connect-timeout";
const NEXT_UPSTREAM: &str = "nginx.ingress.kubernetes.io/proxy-next-upstream";
const NEXT_UPSTREAM_TRIES: &str = "nginx.ingress.kubernetes.io/proxy-next-upstream-tries";

fn with_ingress(cx: &Context, r: &mut Recorder, check: impl FnOnce(&Ingress, &str, &mut Recorder)) {
    let object = cx.label_of("Ingress", &cx.workload.ingress.name);
    match cx.ingress().filter(|i| i.metadata.name.as_deref() == Some(&cx.workload.ingress.name)) {
        Some(ingress) => check(ingress, &object, r),
        None => r.missing(&object, "object"),
    }
}

fn annotation(ingress: &Ingress, key: &str) -> Option<String> {
    ingress.metadata.annotations.as_ref()?.get(key).cloned()
}

pub(crate) fn rule_hosts(ingress: &Ingress) -> Vec<String> {
    ingress.spec.iter().flat_map(|s| s.rules.iter().flatten()).filter_map(|rule| rule.host.clone()).collect()
}

pub(crate) fn host(cx: &Context, r: &mut Recorder) {
    with_ingress(cx, r, |ingress, object, r| {
        r.equal(object, "rule hosts", cx.fixture.hostname.clone(), rule_hosts(ingress).join(","));
    });
}

pub(crate) fn tls(cx: &Context, r: &mut Recorder) {
    with_ingress(cx, r, |ingress, object, r| {
        let entries = ingress.spec.as_ref().and_then(|s| s.tls.clone()).unwrap_or_default();
        let entry = entries.iter().find(|t| t.hosts.iter().flatten().any(|h| *h == cx.fixture.hostname));
        r.record(
            object,
            &format!("tls entry for {}", cx.fixture.hostname),
            "present",
            if entry.is_some() { "present" } else { "absent" },
            entry.is_some(),
        );
        r.equal(
            object,
            "tls secretName",
            cx.workload.ingress.tls_secret.clone(),
            shown(entry.and_then(|t| t.secret_name.clone())),
        );
    });
}

pub(crate) fn tls_issuer(cx: &Context, r: &mut Recorder) {
    with_ingress(cx, r, |ingress, object, r| {
        r.equal(object, ISSUER, cx.fixture.tls_issuer.clone(), shown(annotation(ingress, ISSUER)));
    });
}

pub(crate) fn https_redirect(cx: &Context, r: &mut Recorder) {
    with_ingress(cx, r, |ingress, object, r| {
        let want = cx.workload.ingress.ssl_redirect.to_string();
        r.equal(object, SSL_REDIRECT, want.clone(), shown(annotation(ingress, SSL_REDIRECT)));
        r.equal(object, FORCE_SSL_REDIRECT, want, shown(annotation(ingress, FORCE_SSL_REDIRECT)));
    });
}

pub(crate) fn rate_limit(cx: &Context, r: &mut Recorder) {
    with_ingress(cx, r, |ingress, object, r| {
        let want = cx.workload.ingress.rate_limit_per_minute.to_string();
        r.equal(object, LIMIT_RPM, want, shown(annotation(ingress, LIMIT_RPM)));
        // Absent means ingress-nginx's default of 5: a burst of 5x the limit.
        let burst = cx.workload.ingress.rate_limit_burst_multiplier.to_string();
        r.equal(object, LIMIT_BURST_MULTIPLIER, burst, shown(annotation(ingress, LIMIT_BURST_MULTIPLIER)));
    });
}

/// A connection to a dead endpoint is given up quickly and the idempotent
/// request retried on another: the documented connect timeout, and retries
/// not switched off (absent, the controllers retry on "error timeout", up
/// to 3 tries).
pub(crate) fn failover(cx: &Context, r: &mut Recorder) {
    with_ingress(cx, r, |ingress, object, r| {
        let want = cx.workload.ingress.connect_timeout_seconds.to_string();
        r.equal(object, CONNECT_TIMEOUT, want, shown(annotation(ingress, CONNECT_TIMEOUT)));
        let upstream = annotation(ingress, NEXT_UPSTREAM);
        let retries = upstream.as_deref().is_none_or(|u| u.split_whitespace().any(|c| c == "error" || c == "timeout"));
        r.record(object, NEXT_UPSTREAM, "absent, or retrying on error or timeout", shown(upstream.as_ref()), retries);
        let tries = annotation(ingress, NEXT_UPSTREAM_TRIES);
        let more_than_one = tries.as_deref().is_none_or(|t| t.trim().parse::<u32>().is_ok_and(|n| n != 1));
        r.record(object, NEXT_UPSTREAM_TRIES, "absent, or not 1", shown(tries.as_ref()), more_than_one);
    });
}

pub(crate) fn class(cx: &Context, r: &mut Recorder) {
    with_ingress(cx, r, |ingress, object, r| {
        let found = ingress.spec.as_ref().and_then(|s| s.ingress_class_name.clone());
        r.equal(object, "ingressClassName", cx.workload.ingress.class.clone(), shown(found));
    });
}

/// Whether an Ingress path matches a request path, by the Ingress API's
/// rules: `Exact` is the whole path, case-sensitive; `Prefix` compares
/// `/`-separated elements (`/api` matches `/api` and `/api/v1`, not
/// `/apis`), a trailing `/` ignored. None for `ImplementationSpecific`: its
/// meaning is the controller's.
fn path_matches(path_type: &str, path: &str, request: &str) -> Option<bool> {
    let elements = |p: &str| p.split('/').filter(|e| !e.is_empty()).map(str::to_owned).collect::<Vec<_>>();
    match path_type {
        "Exact" => Some(path == request),
        "Prefix" => {
            let (want, got) = (elements(path), elements(request));
            Some(got.len() >= want.len() && got[..want.len()] == want[..])
        }
        _ => None,
    }
}

/// A rule whose matching only the controller knows.
#[derive(Debug, thiserror::Error)]
#[error("path {0} is ImplementationSpecific: its matching is the controller's")]
struct ControllerDecides(String);

/// The path a request to `request` on `host` takes: the longest matching
/// path of the rules for that host (an `Exact` before a `Prefix` of the same
/// length), else the default backend. Err names an `ImplementationSpecific`
/// path that could decide it.
fn route<'a>(
    ingress: &'a Ingress,
    host: &str,
    request: &str,
) -> Result<Option<(&'a IngressBackend, String)>, ControllerDecides> {
    let Some(spec) = ingress.spec.as_ref() else { return Ok(None) };
    let mut best: Option<(&HTTPIngressPath, usize, bool)> = None;
    let rules = spec.rules.iter().flatten().filter(|r| r.host.as_deref().is_none_or(|h| h == host));
    for path in rules.filter_map(|r| r.http.as_ref()).flat_map(|h| h.paths.iter()) {
        let text = path.path.clone().unwrap_or_else(|| "/".to_owned());
        match path_matches(&path.path_type, &text, request) {
            None => return Err(ControllerDecides(text)),
            Some(false) => {}
            Some(true) => {
                let (length, exact) = (text.trim_end_matches('/').len(), path.path_type == "Exact");
                if best.is_none_or(|(_, l, e)| length > l || (length == l && exact && !e)) {
                    best = Some((path, length, exact));
                }
            }
        }
    }
    Ok(match best {
        Some((path, _, _)) => {
            Some((&path.backend, format!("{} {}", path.path_type, path.path.as_deref().unwrap_or("/"))))
        }
        None => spec.default_backend.as_ref().map(|b| (b, "the default backend".to_owned())),
    })
}

fn backend_text(backend: &IngressBackend) -> String {
    match &backend.service {
        Some(service) => {
            let port = service.port.as_ref();
            let port = port.and_then(|p| p.name.clone().or(p.number.map(|n| n.to_string()))).unwrap_or_default();
            format!("Service {} port {port}", service.name)
        }
        None => "a resource backend".to_owned(),
    }
}

pub(crate) fn routes(cx: &Context, r: &mut Recorder) {
    with_ingress(cx, r, |ingress, object, r| {
        let service = &cx.workload.service;
        for request in &cx.workload.ingress.routes {
            let subject = format!("route {}{request}", cx.fixture.hostname);
            // The Service, by name: whether the port exists is wiring-ingress-backend's.
            let expected = format!("Service {}", service.name);
            match route(ingress, &cx.fixture.hostname, request) {
                Err(reason) => r.at("paths").skip(object, &subject, expected, reason),
                Ok(None) => r.at("paths").record(object, &subject, expected, "no rule or default backend", false),
                Ok(Some((backend, via))) => {
                    let to_service = backend.service.as_ref().is_some_and(|s| s.name == service.name);
                    let found = format!("{} via {via}", backend_text(backend));
                    r.at("paths").record(object, &subject, expected, found, to_service);
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::path_matches;

    #[test]
    fn prefix_matches_whole_elements_and_exact_the_whole_path() {
        assert_eq!(path_matches("Prefix", "/", "/health"), Some(true));
        assert_eq!(path_matches("Prefix", "/api", "/api/v1/pipeline/runs"), Some(true));
        assert_eq!(path_matches("Prefix", "/api/", "/api"), Some(true));
        assert_eq!(path_matches("Prefix", "/api", "/apis"), Some(false));
        assert_eq!(path_matches("Prefix", "/health/ready", "/health"), Some(false));
        assert_eq!(path_matches("Exact", "/health", "/health"), Some(true));
        assert_eq!(path_matches("Exact", "/health", "/health/"), Some(false));
        assert_eq!(path_matches("ImplementationSpecific", "/", "/health"), None);
    }
}
