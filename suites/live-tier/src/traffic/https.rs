//! The HTTPS client of the checks that go through the real ingress
//! controller from this host: it trusts only the run's CA, resolves the
//! environment's hostname to 127.0.0.1 (SNI and Host as users send them),
//! and records every request in the run's ingress log (the rate limit's
//! budget is shared by every check sending through it).

use std::time::Instant;

use reqwest::redirect::Policy;
use reqwest::{Certificate, Client, Method, Response};

use crate::context::LiveContext;

#[derive(Debug, thiserror::Error)]
pub(crate) enum EdgeError {
    #[error("read the run's CA certificate")]
    Ca(#[source] reqwest::Error),
    #[error("build the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("{method} {url}")]
    Request {
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("send request {n} of the burst")]
    Burst {
        n: u32,
        #[source]
        source: reqwest::Error,
    },
}

/// Trusts only the run's CA; offers TLS 1.2 and 1.3 only (rustls).
pub(crate) fn https(cx: &LiveContext<'_>) -> Result<Client, EdgeError> {
    let ca = Certificate::from_pem(cx.ca_pem.as_bytes()).map_err(EdgeError::Ca)?;
    Client::builder()
        .tls_certs_only([ca])
        .resolve(&cx.fixture.hostname, cx.https)
        .redirect(Policy::none())
        .timeout(cx.timeouts.request)
        .build()
        .map_err(EdgeError::Client)
}

pub(crate) fn url(cx: &LiveContext<'_>, path: &str) -> String {
    format!("https://{}:{}{path}", cx.fixture.hostname, cx.https.port())
}

pub(crate) async fn get(
    cx: &LiveContext<'_>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Result<Response, EdgeError> {
    let client = https(cx)?;
    let url = url(cx, path);
    let mut request = client.request(method.clone(), &url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let sent = Instant::now();
    let response = request.send().await.map_err(|source| EdgeError::Request { method, url, source })?;
    cx.ingress_log.record(sent, !rate_limited(&response));
    Ok(response)
}

/// A 429 from the ingress' rate limit (the application's own carry a JSON body).
pub(crate) fn rate_limited(response: &Response) -> bool {
    response.status().as_u16() == 429
        && !response.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"application/json"))
}

pub(crate) fn header(response: &Response, name: &str) -> Option<String> {
    response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

/// A fingerprint of what makes the controller rebuild its middlewares (and
/// so start the bucket again): the Service's EndpointSlices and the Ingress.
pub(crate) async fn routing_version(cx: &LiveContext<'_>) -> String {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use k8s_openapi::api::networking::v1::Ingress;
    let selector = format!("kubernetes.io/service-name={}", cx.workload.service.name);
    let slices: kube::Api<EndpointSlice> = kube::Api::namespaced(cx.client.clone(), cx.namespace());
    let ingresses: kube::Api<Ingress> = kube::Api::namespaced(cx.client.clone(), cx.namespace());
    let mut parts: Vec<String> = slices
        .list(&kube::api::ListParams::default().labels(&selector))
        .await
        .map(|l| l.items.iter().map(|s| s.metadata.resource_version.clone().unwrap_or_default()).collect())
        .unwrap_or_else(|e| vec![e.to_string()]);
    parts.sort();
    if let Ok(i) = ingresses.get(&cx.workload.ingress.name).await {
        parts.push(i.metadata.resource_version.unwrap_or_default());
    }
    parts.join(",")
}
