//! Draining a node as `kubectl drain` does, through the Eviction API (the
//! PDB honoured, never deleting pods): cordon and uncordon (journalled), one
//! eviction and what refused it, a node emptied while the budget refuses,
//! and the wait for the evicted pods' replacements elsewhere.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use cbam_cluster::wait::{Poll, WaitError, until};
use cbam_error_chain::render as chain;
use kube::api::Api;
use serde_json::json;

use crate::app_pods::{WorkloadError, app_pods, app_pods_with_terminating, has_ended, is_ready, node_of};
use crate::context::LiveContext;
use crate::journal::{self, JournalError, Undo};
use k8s_openapi::api::core::v1::Pod;

#[derive(Debug, thiserror::Error)]
pub(crate) enum EvictionError {
    #[error("build the eviction of pod {0}")]
    Request(String, #[source] http::Error),
    #[error("evict pod {pod}: HTTP {code}: {message}")]
    Refused { pod: String, code: u16, message: String },
    #[error("evict pod {pod}")]
    Send {
        pod: String,
        #[source]
        source: kube::Error,
    },
}

/// Cordons (registered in the journal first, so an interrupted run is
/// undone) or uncordons (struck off the journal once done) a node.
pub(crate) async fn cordon(cx: &LiveContext<'_>, node: &str, unschedulable: bool) -> Result<(), JournalError> {
    let undo = Undo::Uncordon { node: node.to_owned() };
    if unschedulable {
        cx.journal.record(undo.clone())?;
    }
    journal::set_unschedulable(&cx.client, node, unschedulable).await?;
    if !unschedulable {
        cx.journal.done(&undo)?;
    }
    Ok(())
}

/// The budget as the disruption controller last computed it.
pub(crate) async fn pdb_status(cx: &LiveContext<'_>) -> String {
    let api: Api<k8s_openapi::api::policy::v1::PodDisruptionBudget> =
        Api::namespaced(cx.client.clone(), cx.namespace());
    match api.get(&cx.governance.pdb.name).await.ok().and_then(|p| p.status) {
        Some(s) => format!(
            "disruptionsAllowed {}, currentHealthy {}, desiredHealthy {}, expectedPods {}, disruptedPods {}",
            s.disruptions_allowed,
            s.current_healthy,
            s.desired_healthy,
            s.expected_pods,
            s.disrupted_pods.map_or(0, |d| d.len())
        ),
        None => "no status".to_owned(),
    }
}

/// POST a policy/v1 Eviction (kube-rs 5's `evict` sends a body without
/// apiVersion/kind, which this API server does not treat as a policy/v1
/// Eviction). A refusal carries the HTTP status and the causes.
pub(crate) async fn evict(cx: &LiveContext<'_>, pod: &str) -> Result<(), EvictionError> {
    evict_in(cx, cx.namespace(), pod).await
}

async fn evict_in(cx: &LiveContext<'_>, namespace: &str, pod: &str) -> Result<(), EvictionError> {
    let body =
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}});
    let request = http::Request::post(format!("/api/v1/namespaces/{namespace}/pods/{pod}/eviction"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
        .map_err(|e| EvictionError::Request(pod.to_owned(), e))?;
    match cx.client.request_text(request).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => {
            // The causes name the budget that refused (type DisruptionBudget).
            let causes: Vec<String> = status
                .details
                .iter()
                .flat_map(|d| d.causes.iter())
                .map(|c| format!("[{}] {}", c.reason, c.message))
                .collect();
            let message = format!("{} {}", status.message, causes.join(" ")).trim().to_owned();
            Err(EvictionError::Refused { pod: pod.to_owned(), code: status.code, message })
        }
        Err(source) => Err(EvictionError::Send { pod: pod.to_owned(), source }),
    }
}

/// A refusal by the documented budget: 429 with a DisruptionBudget cause
/// naming it. API Priority and Fairness also answers 429 ("too many
/// requests"), which proves nothing about the PDB.
pub(crate) fn refused_by_budget(code: u16, message: &str, pdb: &str) -> bool {
    code == 429 && message.contains("[DisruptionBudget]") && message.contains(&format!("disruption budget {pdb} "))
}

/// The app pods on `node` now (not shutting down), by name.
pub(crate) async fn app_pods_on(cx: &LiveContext<'_>, node: &str) -> Result<Vec<String>, WorkloadError> {
    Ok(app_pods(cx).await?.into_iter().filter(|p| node_of(p) == Some(node)).filter_map(|p| p.metadata.name).collect())
}

/// Drains `node` as `kubectl drain` does: evicts every app pod on it,
/// retrying while the budget refuses (429), until none is left. Returns
/// (evicted, refusals).
pub(crate) async fn empty_node(cx: &LiveContext<'_>, node: &str) -> Result<(usize, usize), WaitError> {
    empty_nodes(cx, &[node.to_owned()]).await
}

/// Drains `nodes` at once, as one batch of a node pool's drain: evicts every
/// app pod on any of them, retrying while the budget refuses (429), until
/// none is left (pods shutting down are gone from the app's list). Returns
/// (evicted, refusals).
pub(crate) async fn empty_nodes(cx: &LiveContext<'_>, nodes: &[String]) -> Result<(usize, usize), WaitError> {
    let (evicted, refused) = empty_nodes_named(cx, nodes).await?;
    Ok((evicted.len(), refused))
}

/// As `empty_nodes`, with the evicted pods by name (a pod scheduled onto a
/// cordoned node meanwhile is among them).
pub(crate) async fn empty_nodes_named(
    cx: &LiveContext<'_>,
    nodes: &[String],
) -> Result<(Vec<String>, usize), WaitError> {
    let refused_on_node = Arc::new(AtomicUsize::new(0));
    let evicted_on_node = Arc::new(std::sync::Mutex::new(Vec::new()));
    let named = nodes.join(", ");
    until(&format!("every app pod on {named} evicted"), cx.timeouts.drain, || {
        let (refused, evicted, named) = (refused_on_node.clone(), evicted_on_node.clone(), named.clone());
        async move {
            let pods = match app_pods(cx).await {
                Ok(p) => p,
                Err(e) => return Poll::failed(chain(&e), &e),
            };
            let on_nodes: Vec<String> = pods
                .iter()
                .filter(|p| node_of(p).is_some_and(|n| nodes.iter().any(|x| x == n)))
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            if on_nodes.is_empty() {
                return Poll::Done(());
            }
            for pod in &on_nodes {
                match evict(cx, pod).await {
                    Ok(()) => {
                        if let Ok(mut names) = evicted.lock() {
                            names.push(pod.clone());
                        }
                    }
                    Err(EvictionError::Refused { code: 429, .. }) => {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => return Poll::failed(chain(&e), &e),
                }
            }
            Poll::Pending(format!("{} app pods left on {named}", on_nodes.len()))
        }
    })
    .await?;
    let evicted = evicted_on_node.lock().map(|names| names.clone()).unwrap_or_default();
    Ok((evicted, refused_on_node.load(Ordering::SeqCst)))
}

/// The pods on `node` a drain moves: not a DaemonSet's or a static (mirror)
/// pod, which go with the node, and not one that has ended.
async fn movable_on(cx: &LiveContext<'_>, node: &str) -> Result<Vec<Pod>, kube::Error> {
    let pods: Api<Pod> = Api::all(cx.client.clone());
    let on_node = kube::api::ListParams::default().fields(&format!("spec.nodeName={node}"));
    Ok(pods
        .list(&on_node)
        .await?
        .items
        .into_iter()
        .filter(|p| {
            let owners = p.metadata.owner_references.as_deref().unwrap_or_default();
            !owners.iter().any(|o| o.kind == "DaemonSet" || o.kind == "Node") && !has_ended(p)
        })
        .collect())
}

/// Waits until every app pod a drain moved off `node` is gone, shut down
/// and deleted (as `kubectl drain` waits before it reports the node
/// drained): removing the machine earlier would kill pods still finishing
/// their runs. The platform's pods are evicted, not waited for: one of them
/// (the metrics adapter) once stayed in its shutdown past 120 s, and what
/// the check judges is the app.
pub(crate) async fn app_pods_gone(cx: &LiveContext<'_>, node: &str) -> Result<(), WaitError> {
    until(&format!("every app pod on {node} gone"), cx.timeouts.drain, || async {
        match app_pods_with_terminating(cx).await {
            Ok(pods) => {
                // Once the node is emptied, a pod on it not shutting down was
                // scheduled there since: it tolerates the cordon.
                let left: Vec<String> = pods
                    .iter()
                    .filter(|p| node_of(p) == Some(node) && !has_ended(p))
                    .filter_map(|p| {
                        let name = p.metadata.name.as_deref()?;
                        Some(match p.metadata.deletion_timestamp {
                            Some(_) => format!("{name} (shutting down)"),
                            None => format!("{name} (scheduled onto the cordoned node)"),
                        })
                    })
                    .collect();
                if left.is_empty() {
                    Poll::Done(())
                } else {
                    Poll::Pending(format!("{} on {node}: {}", left.len(), left.join(", ")))
                }
            }
            Err(e) => Poll::failed(chain(&e), &e),
        }
    })
    .await
}

/// Evicts every other pod on `node` as `kubectl drain` does once the app's
/// are gone (the platform's addons: none has a budget). Returns how many
/// were evicted.
pub(crate) async fn evict_the_rest(cx: &LiveContext<'_>, node: &str) -> Result<usize, WaitError> {
    let evicted = Arc::new(AtomicUsize::new(0));
    until(&format!("every other pod on {node} evicted"), cx.timeouts.drain, || {
        let evicted = evicted.clone();
        async move {
            let movable: Vec<(String, String)> = match movable_on(cx, node).await {
                Ok(pods) => pods
                    .into_iter()
                    .filter(|p| p.metadata.deletion_timestamp.is_none())
                    .filter_map(|p| Some((p.metadata.namespace?, p.metadata.name?)))
                    .collect(),
                Err(e) => return Poll::failed(chain(&e), &e),
            };
            if movable.is_empty() {
                return Poll::Done(());
            }
            let mut left = Vec::new();
            for (namespace, pod) in &movable {
                match evict_in(cx, namespace, pod).await {
                    Ok(()) => {
                        evicted.fetch_add(1, Ordering::SeqCst);
                        left.push(format!("{namespace}/{pod} (evicted)"));
                    }
                    // Gone meanwhile, or a budget of someone's: the next poll sees.
                    Err(EvictionError::Refused { code: code @ (404 | 429), .. }) => {
                        left.push(format!("{namespace}/{pod} (eviction answered {code})"));
                    }
                    Err(e) => return Poll::failed(chain(&e), &e),
                }
            }
            Poll::Pending(format!("{} pods left on {node}: {}", movable.len(), left.join(", ")))
        }
    })
    .await?;
    Ok(evicted.load(Ordering::SeqCst))
}

/// Waits until no app pod is on `node` and `want` are Ready elsewhere.
pub(crate) async fn replaced_elsewhere(cx: &LiveContext<'_>, node: &str, want: usize) -> Result<(), WaitError> {
    until(&format!("node {node} drained and {want} replicas Ready elsewhere"), cx.timeouts.drain, || async {
        match app_pods(cx).await {
            Ok(pods) => {
                let on_node = pods.iter().filter(|p| node_of(p) == Some(node)).count();
                let ready = pods.iter().filter(|p| is_ready(p)).count();
                if on_node == 0 && ready >= want {
                    Poll::Done(())
                } else {
                    Poll::Pending(format!("{on_node} app pods on {node}, {ready} Ready"))
                }
            }
            Err(e) => Poll::failed(chain(&e), &e),
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::refused_by_budget;

    #[test]
    fn only_the_named_budget_refusing_counts() {
        let by_budget = "Cannot evict pod as it would violate the pod's disruption budget. [DisruptionBudget] The disruption budget cbam-api-pdb needs 2 healthy pods and has 2 currently";
        assert!(refused_by_budget(429, by_budget, "cbam-api-pdb"));
        assert!(!refused_by_budget(429, by_budget, "other-pdb"));
        assert!(!refused_by_budget(429, "Too many requests, please try again later.", "cbam-api-pdb"));
        assert!(!refused_by_budget(500, by_budget, "cbam-api-pdb"));
    }
}
