//! The autoscaling precondition: the custom-metrics pipeline serves the
//! documented Pods metric for every Ready pod of the workload (APIService
//! Available, then the metric listed through custom.metrics.k8s.io).

use std::time::Duration;

use cbam_cluster::readiness;
use cbam_cluster::wait::{Poll, WaitError, until};
use kube::Client;

use cbam_error_chain::render as chain;

/// The custom metrics API version the HPA controller prefers.
const API_SERVICE: &str = "v1beta2.custom.metrics.k8s.io";

#[derive(Debug, thiserror::Error)]
enum MetricsError {
    #[error("build the request for {0}")]
    Request(String, #[source] http::Error),
    #[error("list {0}")]
    List(String, #[source] kube::Error),
}

/// Pods for which the metric is served, by name.
async fn served_pods(client: &Client, namespace: &str, metric: &str) -> Result<Vec<String>, MetricsError> {
    let path = format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/{namespace}/pods/*/{metric}");
    let request = http::Request::get(&path).body(Vec::new()).map_err(|e| MetricsError::Request(path.clone(), e))?;
    let list: serde_json::Value = client.request(request).await.map_err(|e| MetricsError::List(path, e))?;
    Ok(list["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|i| i["describedObject"]["name"].as_str().map(str::to_owned)).collect())
        .unwrap_or_default())
}

/// Waits until the APIService is Available and `metric` is served for
/// every pod in `pods`.
pub(crate) async fn ready(
    client: &Client,
    namespace: &str,
    metric: &str,
    pods: &[String],
    timeout: Duration,
) -> Result<(), WaitError> {
    until(&format!("custom metric {metric} served for {} pods of {namespace}", pods.len()), timeout, || async {
        if let Poll::Pending(seen) = readiness::api_service_available(client, API_SERVICE).await {
            return Poll::Pending(seen);
        }
        match served_pods(client, namespace, metric).await {
            Ok(served) => {
                let missing: Vec<&String> = pods.iter().filter(|p| !served.contains(p)).collect();
                if missing.is_empty() {
                    Poll::Done(())
                } else {
                    Poll::Pending(format!("served for {served:?}; missing {missing:?}"))
                }
            }
            Err(e) => Poll::failed(chain(&e), &e),
        }
    })
    .await
}
