//! The application's pods as the live tier reads them: the Deployment's own
//! selector, its pods (terminating ones apart or included), readiness, and
//! a GET through the API server's pod proxy. What every check that looks at
//! pods starts from; no check of its own.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use crate::context::LiveContext;

#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkloadError {
    #[error("read {0}")]
    Deployment(String, #[source] kube::Error),
    #[error("list the pods of {0}")]
    Pods(String, #[source] kube::Error),
    #[error("build the request for GET {0}")]
    Request(String, #[source] http::Error),
    #[error("GET {path} from pod {pod}: HTTP {status}")]
    Status { pod: String, path: String, status: u16 },
    #[error("GET {path} from pod {pod}")]
    Proxy {
        pod: String,
        path: String,
        #[source]
        source: kube::Error,
    },
}

/// The Deployment's own label selector, as `k=v,k=v`.
pub(crate) async fn selector(cx: &LiveContext<'_>) -> Result<String, WorkloadError> {
    let deployments: Api<Deployment> = Api::namespaced(cx.client.clone(), cx.namespace());
    let deployment = deployments
        .get(&cx.workload.deployment)
        .await
        .map_err(|e| WorkloadError::Deployment(cx.deployment_label(), e))?;
    let labels = deployment.spec.and_then(|s| s.selector.match_labels).unwrap_or_default();
    Ok(labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","))
}

/// The Deployment's pods that are not terminating, by its own selector.
pub(crate) async fn app_pods(cx: &LiveContext<'_>) -> Result<Vec<Pod>, WorkloadError> {
    Ok(app_pods_with_terminating(cx).await?.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect())
}

/// Every pod of the Deployment's selector, those shutting down included
/// (a pod with a deletion timestamp still answers until its process exits).
pub(crate) async fn app_pods_with_terminating(cx: &LiveContext<'_>) -> Result<Vec<Pod>, WorkloadError> {
    let selector = selector(cx).await?;
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| WorkloadError::Pods(cx.deployment_label(), e))?;
    Ok(list.items)
}

/// A pod whose containers are done for good (an eviction by the kubelet
/// leaves it Failed): it answers nothing and no controller waits on it.
pub(crate) fn has_ended(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()).is_some_and(|p| matches!(p, "Succeeded" | "Failed"))
}

/// The node a pod is bound to.
pub(crate) fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

pub(crate) fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// GET through the API server's pod proxy (works on any cluster, no port-forward).
pub(crate) async fn pod_get(cx: &LiveContext<'_>, pod: &str, port: i32, path: &str) -> Result<String, WorkloadError> {
    let uri = format!("/api/v1/namespaces/{}/pods/{pod}:{port}/proxy{path}", cx.namespace());
    let request = http::Request::get(uri).body(Vec::new()).map_err(|e| WorkloadError::Request(path.to_owned(), e))?;
    cx.client.request_text(request).await.map_err(|e| match e {
        kube::Error::Api(status) => {
            WorkloadError::Status { pod: pod.to_owned(), path: path.to_owned(), status: status.code }
        }
        source => WorkloadError::Proxy { pod: pod.to_owned(), path: path.to_owned(), source },
    })
}

/// Records the restart counts of the app's pods now (in the run's restart
/// log, judged by `live-no-restarts`).
pub(crate) async fn sample_restarts(cx: &LiveContext<'_>) {
    let Ok(selector) = selector(cx).await else { return };
    let pods: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
    if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
        cx.restarts.note(&list.items);
    }
}
