//! The PDB during a drain: cordon a node that hosts an app pod, evict it
//! through the Eviction API while sampling available replicas; a second
//! eviction that would break the budget must be refused with 429 by that
//! budget (its DisruptionBudget cause naming it); the drain
//! completes once the replacement is Ready on another node.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use cbam_cluster::wait::{Poll, WaitError, until};
use kube::api::Api;
use serde_json::json;

use crate::cli::chain;
use crate::live::context::LiveContext;
use crate::live::journal::{self, JournalError, Undo};
use crate::live::ready_sampler::{ReadySampler, lowest};
use crate::live::workload::{app_pods, is_ready, selector};
use crate::outcome::Recorder;

#[derive(Debug, thiserror::Error)]
enum EvictionError {
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
async fn pdb_status(cx: &LiveContext<'_>) -> String {
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
async fn evict(cx: &LiveContext<'_>, pod: &str) -> Result<(), EvictionError> {
    let body =
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod, "namespace": cx.namespace()}});
    let request = http::Request::post(format!("/api/v1/namespaces/{}/pods/{pod}/eviction", cx.namespace()))
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
fn refused_by_budget(code: u16, message: &str, pdb: &str) -> bool {
    code == 429 && message.contains("[DisruptionBudget]") && message.contains(&format!("disruption budget {pdb} "))
}

/// Drains `node` as `kubectl drain` does: evicts every app pod on it,
/// retrying while the budget refuses (429), until none is left. Returns
/// (evicted, refusals).
pub(crate) async fn empty_node(cx: &LiveContext<'_>, node: &str) -> Result<(usize, usize), WaitError> {
    let refused_on_node = Arc::new(AtomicUsize::new(0));
    let evicted_on_node = Arc::new(AtomicUsize::new(0));
    until(&format!("every app pod on {node} evicted"), cx.timeouts.drain, || {
        let (refused, evicted) = (refused_on_node.clone(), evicted_on_node.clone());
        async move {
            let pods = match app_pods(cx).await {
                Ok(p) => p,
                Err(e) => return Poll::failed(chain(&e), &e),
            };
            let on_node: Vec<String> = pods
                .iter()
                .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            if on_node.is_empty() {
                return Poll::Done(());
            }
            for pod in &on_node {
                match evict(cx, pod).await {
                    Ok(()) => {
                        evicted.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(EvictionError::Refused { code: 429, .. }) => {
                        refused.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) => return Poll::failed(chain(&e), &e),
                }
            }
            Poll::Pending(format!("{} app pods left on {node}", on_node.len()))
        }
    })
    .await?;
    Ok((evicted_on_node.load(Ordering::SeqCst), refused_on_node.load(Ordering::SeqCst)))
}

/// Waits until no app pod is on `node` and `want` are Ready elsewhere.
pub(crate) async fn replaced_elsewhere(cx: &LiveContext<'_>, node: &str, want: usize) -> Result<(), WaitError> {
    until(&format!("node {node} drained and {want} replicas Ready elsewhere"), cx.timeouts.drain, || async {
        match app_pods(cx).await {
            Ok(pods) => {
                let on_node =
                    pods.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)).count();
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

pub(crate) async fn pdb_during_drain(cx: &LiveContext<'_>, r: &mut Recorder) {
    let object = format!("PodDisruptionBudget {}/{}", cx.namespace(), cx.governance.pdb.name);
    let min_available = usize::try_from(cx.governance.pdb.min_available).unwrap_or(0);
    let pods = match app_pods(cx).await {
        Ok(p) => p,
        Err(e) => return r.record(&object, "drain", "pods to drain", chain(&e), false),
    };
    let Some(victim) = pods.iter().find(|p| is_ready(p)).cloned() else {
        return r.record(&object, "drain", "a Ready pod", "none", false);
    };
    let node = victim.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
    let victim_name = victim.metadata.name.clone().unwrap_or_default();
    let selector = match selector(cx).await {
        Ok(s) => s,
        Err(e) => return r.record(&object, "drain", "the Deployment's selector", chain(&e), false),
    };
    // Sample available (Ready, not terminating) replicas while the drain runs.
    let sampler = ReadySampler::start(cx, selector);
    let started = Instant::now();
    if let Err(e) = cordon(cx, &node, true).await {
        sampler.stop().await;
        return r.record(&object, "cordon", "node cordoned", chain(&e), false);
    }
    let emptied = empty_node(cx, &node).await;
    r.record(
        &object,
        &format!("evict the app pods on {node} (first: {victim_name})"),
        "all evicted, refusals only while the budget is spent",
        match &emptied {
            Ok((evicted, refused)) => format!("{evicted} evicted, {refused} refusals (429) retried"),
            Err(e) => e.to_string(),
        },
        emptied.is_ok(),
    );
    let budget = pdb_status(cx).await;
    let pdb = &cx.governance.pdb.name;
    let (mut allowed, mut refusal, mut error) = (0usize, None, None);
    for _ in 0..16 {
        let ready: Vec<String> = match app_pods(cx).await {
            Ok(pods) => pods.iter().filter(|p| is_ready(p)).filter_map(|p| p.metadata.name.clone()).collect(),
            Err(e) => {
                error = Some(chain(&e));
                break;
            }
        };
        let Some(next) = ready.into_iter().find(|p| *p != victim_name) else { break };
        match evict(cx, &next).await {
            Ok(()) => allowed += 1,
            Err(EvictionError::Refused { code, message, .. }) if refused_by_budget(code, &message, pdb) => {
                refusal = Some(format!("{next}: {message}"));
                break;
            }
            Err(e) => {
                error = Some(chain(&e));
                break;
            }
        }
    }
    r.record(
        &object,
        &format!("further evictions while {victim_name} is replaced"),
        format!("one refused with 429 by the disruption budget {pdb} once it is spent"),
        match (&refusal, &error) {
            (Some(pod), _) => format!("{allowed} allowed, then {pod} refused with 429 (PDB before: {budget})"),
            (None, Some(e)) => format!("{allowed} allowed, then {e} (PDB before: {budget})"),
            (None, None) => format!("{allowed} allowed, none refused (PDB before: {budget})"),
        },
        refusal.is_some(),
    );
    let want = usize::try_from(cx.replicas_at_rest()).unwrap_or(0);
    let drained = replaced_elsewhere(cx, &node, want).await;
    let samples = sampler.stop().await;
    let uncordoned = cordon(cx, &node, false).await;
    r.record(
        &object,
        &format!("drain of {node} completes"),
        "replacements Ready on other nodes",
        drained
            .as_ref()
            .map_or_else(|e| e.to_string(), |_| format!("done in {:.1} s", started.elapsed().as_secs_f64())),
        drained.is_ok(),
    );
    r.record(
        &object,
        &format!("available replicas during the drain ({} samples)", samples.len()),
        format!(">= {min_available}"),
        lowest(&samples).map_or_else(|| "no sample".to_owned(), |n| format!("lowest {n}")),
        lowest(&samples).is_some_and(|n| n >= min_available),
    );
    if let Err(e) = uncordoned {
        r.record(&object, "uncordon", "node schedulable again", chain(&e), false);
    }
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
