//! The Ingress: host, TLS, issuer, controller class and the controller
//! annotations that carry the redirect and the rate limit.

use k8s_openapi::api::networking::v1::Ingress;

use crate::context::Context;
use crate::outcome::{Recorder, shown};

const ISSUER: &str = "cert-manager.io/cluster-issuer";
const SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/ssl-redirect";
const FORCE_SSL_REDIRECT: &str = "nginx.ingress.kubernetes.io/force-ssl-redirect";
const LIMIT_RPM: &str = "nginx.ingress.kubernetes.io/limit-rpm";
const LIMIT_BURST_MULTIPLIER: &str = "nginx.ingress.kubernetes.io/limit-burst-multiplier";

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

pub(crate) fn class(cx: &Context, r: &mut Recorder) {
    with_ingress(cx, r, |ingress, object, r| {
        let found = ingress.spec.as_ref().and_then(|s| s.ingress_class_name.clone());
        r.equal(object, "ingressClassName", cx.workload.ingress.class.clone(), shown(found));
    });
}
