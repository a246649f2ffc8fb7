//! The gate before any suite runs: nodes Ready, CoreDNS, the metrics API,
//! the ingress controller serving on the published port, exactly one
//! default StorageClass and its provisioner, and on a kit cluster every
//! node's components steady. Each is a named wait that reports what it last
//! saw; a component that crash-loops meanwhile stops the gate at once,
//! naming it.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use kube::Client;
use kube::api::{Api, ListParams};

use crate::addons::{PROVISIONER_DEPLOYMENT, PROVISIONER_NAMESPACE};
use crate::components::{self, CrashLoop};
use crate::provider::KitCluster;
use crate::timeouts::Timeouts;
use crate::wait::{Poll, WaitError, until};

#[derive(Debug, thiserror::Error)]
pub enum GateError {
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error(transparent)]
    CrashLoop(CrashLoop),
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub async fn nodes_ready(client: &Client, expected: usize, timeout: Duration) -> Result<Vec<String>, WaitError> {
    let api: Api<Node> = Api::all(client.clone());
    until(&format!("{expected} nodes Ready"), timeout, || {
        let api = api.clone();
        async move {
            match api.list(&ListParams::default()).await {
                Ok(list) => {
                    let names: Vec<String> =
                        list.items.iter().filter(|n| ready(n)).filter_map(|n| n.metadata.name.clone()).collect();
                    if names.len() == expected {
                        Poll::Done(names)
                    } else {
                        Poll::Pending(format!("{} of {} listed nodes Ready: {names:?}", names.len(), list.items.len()))
                    }
                }
                Err(e) => Poll::failed(format!("list nodes: {e}"), &e),
            }
        }
    })
    .await
}

async fn deployment_available(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<(), WaitError> {
    deployment_until(client, ns, name, "available", timeout, available).await
}

fn available(d: &Deployment) -> Poll<()> {
    let available = d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
    if available >= 1 { Poll::Done(()) } else { Poll::Pending(format!("{available} available replicas")) }
}

/// Waits until CONDITION (named WHAT) holds for Deployment NS/NAME.
async fn deployment_until(
    client: &Client,
    ns: &str,
    name: &str,
    what: &str,
    timeout: Duration,
    condition: fn(&Deployment) -> Poll<()>,
) -> Result<(), WaitError> {
    let api: Api<Deployment> = Api::namespaced(client.clone(), ns);
    until(&format!("Deployment {ns}/{name} {what}"), timeout, || {
        let api = api.clone();
        async move {
            match api.get(name).await {
                Ok(d) => condition(&d),
                Err(e) => Poll::failed(format!("get: {e}"), &e),
            }
        }
    })
    .await
}

/// One poll of an aggregated API: Done when its APIService is Available,
/// else what its Available condition says.
pub async fn api_service_available(client: &Client, name: &str) -> Poll<()> {
    let api: Api<APIService> = Api::all(client.clone());
    match api.get(name).await {
        Ok(s) => {
            let conditions = s.status.and_then(|s| s.conditions).unwrap_or_default();
            match conditions.iter().find(|c| c.type_ == "Available") {
                Some(c) if c.status == "True" => Poll::Done(()),
                Some(c) => Poll::Pending(format!(
                    "APIService {name} Available={} ({})",
                    c.status,
                    c.message.clone().unwrap_or_default()
                )),
                None => Poll::Pending(format!("APIService {name} has no Available condition")),
            }
        }
        Err(e) => Poll::failed(format!("get APIService {name}: {e}"), &e),
    }
}

async fn metrics_api(client: &Client, timeout: Duration) -> Result<(), WaitError> {
    until("APIService v1beta1.metrics.k8s.io Available and node metrics served", timeout, || {
        let client = client.clone();
        async move {
            match api_service_available(&client, "v1beta1.metrics.k8s.io").await {
                Poll::Done(()) => {}
                not_yet => return not_yet,
            }
            let request = match http::Request::get("/apis/metrics.k8s.io/v1beta1/nodes").body(Vec::new()) {
                Ok(r) => r,
                Err(e) => return Poll::Pending(e.to_string()),
            };
            match client.request::<serde_json::Value>(request).await {
                Ok(v) if v["items"].as_array().is_some_and(|i| !i.is_empty()) => Poll::Done(()),
                Ok(_) => Poll::Pending("no node metrics yet".into()),
                Err(e) => Poll::failed(format!("node metrics: {e}"), &e),
            }
        }
    })
    .await
}

/// The ingress controller answering on 127.0.0.1:HTTP_PORT within BOUND
/// (each request within `t.request`). `kit`: also require the kit's Traefik
/// DaemonSet Ready (an existing cluster's controller is reached through a
/// port-forward instead).
pub async fn ingress_serving(
    client: &Client,
    http_port: u16,
    t: &Timeouts,
    bound: Duration,
    kit: bool,
) -> Result<(), WaitError> {
    let api: Api<DaemonSet> = Api::namespaced(client.clone(), "traefik");
    let http = reqwest::Client::builder()
        .timeout(t.request)
        .build()
        .map_err(|e| WaitError::Refused { condition: "an HTTP client".into(), reason: e.to_string() })?;
    until(&format!("ingress controller answering on 127.0.0.1:{http_port}"), bound, || {
        let (api, http) = (api.clone(), http.clone());
        async move {
            let ready = api.get("traefik").await.ok().and_then(|d| d.status).map_or(0, |s| s.number_ready);
            if kit && ready < 1 {
                return Poll::Pending("Traefik DaemonSet has no ready pod".into());
            }
            // No Ingress matches `/` on an unknown host: Traefik answers 404 itself.
            match http.get(format!("http://127.0.0.1:{http_port}/")).send().await {
                Ok(_) => Poll::Done(()),
                Err(e) => Poll::Pending(format!("GET: {e}")),
            }
        }
    })
    .await
}

/// Whether CLASS is marked the cluster's default StorageClass.
pub fn is_default_class(class: &StorageClass) -> bool {
    class
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get("storageclass.kubernetes.io/is-default-class"))
        .is_some_and(|v| v == "true")
}

/// The cluster's one default StorageClass, by name. Two defaults are
/// refused at once: a claim without a class would go to either, and
/// nothing heals that.
async fn default_storage_class(client: &Client, timeout: Duration) -> Result<String, WaitError> {
    let api: Api<StorageClass> = Api::all(client.clone());
    until("exactly one default StorageClass", timeout, || {
        let api = api.clone();
        async move {
            match api.list(&ListParams::default()).await {
                Ok(list) => one_default(&list.items),
                Err(e) => Poll::failed(format!("list: {e}"), &e),
            }
        }
    })
    .await
}

/// One poll of `default_storage_class` over CLASSES.
fn one_default(classes: &[StorageClass]) -> Poll<String> {
    let defaults: Vec<String> =
        classes.iter().filter(|sc| is_default_class(sc)).filter_map(|sc| sc.metadata.name.clone()).collect();
    match defaults.as_slice() {
        [one] => Poll::Done(one.clone()),
        [] => Poll::Pending(format!("{} classes, none default", classes.len())),
        many => Poll::Refused(format!("{} default StorageClasses: {}", many.len(), many.join(", "))),
    }
}

/// Deployment NS/NAME rolled out: every replica of its newest template
/// available and no older one left (a restarted storage provisioner serves
/// only its new configuration).
async fn deployment_rolled_out(client: &Client, ns: &str, name: &str, timeout: Duration) -> Result<(), WaitError> {
    deployment_until(client, ns, name, "rolled out", timeout, rolled_out).await
}

fn rolled_out(d: &Deployment) -> Poll<()> {
    let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = d.status.as_ref() else { return Poll::Pending("no status yet".into()) };
    let seen = status.observed_generation.unwrap_or(0);
    let (total, updated, available) =
        (status.replicas.unwrap_or(0), status.updated_replicas.unwrap_or(0), status.available_replicas.unwrap_or(0));
    if seen >= generation && updated == want && available == want && total == want {
        Poll::Done(())
    } else {
        Poll::Pending(format!(
            "generation {seen} of {generation} seen; {updated} updated, {available} available, {total} in all, of {want}"
        ))
    }
}

/// Everything a suite needs on a kit cluster, or the first thing that is
/// not there. A component crash-looping on any node ends it first (where
/// the node image's supervisor records its components: the kit's).
/// A cluster with the harness's addons is ready: NODES nodes Ready, CoreDNS
/// available, exactly one default StorageClass and its provisioner rolled
/// out, the metrics API serving node metrics,
/// and the ingress controller (the addons' Traefik DaemonSet) answering on
/// 127.0.0.1:HTTP_PORT. The kit's gate and kind's.
pub async fn platform_ready(client: &Client, nodes: usize, http_port: u16, t: &Timeouts) -> Result<(), WaitError> {
    nodes_ready(client, nodes, t.nodes_ready).await?;
    deployment_available(client, "kube-system", "coredns", t.addons_ready).await?;
    default_storage_class(client, t.addons_ready).await?;
    deployment_rolled_out(client, PROVISIONER_NAMESPACE, PROVISIONER_DEPLOYMENT, t.addons_ready).await?;
    metrics_api(client, t.addons_ready).await?;
    ingress_serving(client, http_port, t, t.addons_ready, true).await
}

pub async fn gate(cluster: &KitCluster, t: &Timeouts) -> Result<(), GateError> {
    let client = &cluster.client;
    let window = t.crash_window;
    let waits = async {
        platform_ready(client, cluster.nodes().len(), cluster.http_port, t).await?;
        // Last, as nothing above needs every component (kube-proxy, say):
        // each is running, and one that restarted has run a whole window.
        if cluster.supervised {
            until("every kit node's components running", t.nodes_ready + window, || {
                components::poll_steady(cluster, window)
            })
            .await?;
        }
        Ok::<(), WaitError>(())
    };
    let crash_loop = async {
        if cluster.supervised {
            components::first_crash_loop(cluster, window).await
        } else {
            std::future::pending().await
        }
    };
    tokio::select! {
        result = waits => Ok(result?),
        looping = crash_loop => Err(GateError::CrashLoop(looping)),
    }
}

/// The gate on a cluster the harness did not create: every node it has
/// Ready. What the checks need beyond that (storage, metrics APIs, the
/// ingress, the tool image) is the live tier's preflight, which makes the
/// checks needing what is missing "not verified" instead of stopping the
/// run (DNS is the cluster's own business).
pub async fn gate_existing(client: &Client, t: &Timeouts) -> Result<(), WaitError> {
    let api: Api<Node> = Api::all(client.clone());
    let count = api.list(&ListParams::default()).await.map_or(0, |l| l.items.len()).max(1);
    nodes_ready(client, count, t.nodes_ready).await.map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(name: &str, default: bool) -> StorageClass {
        let mut sc = StorageClass::default();
        sc.metadata.name = Some(name.into());
        if default {
            sc.metadata.annotations =
                Some([("storageclass.kubernetes.io/is-default-class".to_owned(), "true".to_owned())].into());
        }
        sc
    }

    #[test]
    fn exactly_one_default_class_is_ready_and_two_are_refused() {
        assert!(matches!(one_default(&[class("standard", true), class("x", false)]), Poll::Done(n) if n == "standard"));
        assert!(matches!(one_default(&[class("x", false)]), Poll::Pending(_)));
        match one_default(&[class("standard", true), class("local-path", true)]) {
            Poll::Refused(why) => assert_eq!(why, "2 default StorageClasses: standard, local-path"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_deployment_with_an_old_replica_left_is_not_rolled_out() {
        let d: Deployment = serde_json::from_value(serde_json::json!({
            "metadata": {"generation": 2},
            "spec": {"replicas": 1, "selector": {}, "template": {}},
            "status": {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 1, "availableReplicas": 1},
        }))
        .expect("a deployment");
        assert!(matches!(rolled_out(&d), Poll::Pending(_)));
        let mut done = d.clone();
        done.status.as_mut().expect("status").replicas = Some(1);
        assert!(matches!(rolled_out(&done), Poll::Done(())));
    }
}
