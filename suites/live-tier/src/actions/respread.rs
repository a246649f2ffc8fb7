//! The app's pods back where its anti-affinity places them. The checks that
//! drain or upgrade nodes leave pods where the evictions moved them, and a
//! preferred anti-affinity never moves them back (the scheduler decides
//! only when a pod is created), so two of three replicas can share a node
//! long after. A check whose premise is the documented placement (node
//! loss: one node lost is one replica lost) restores it first, as a
//! descheduler would: one pod evicted from the fullest node through the
//! Eviction API (the budget binds) while another node hosts none, its
//! replacement scheduled by the deployment's own rules.

use std::collections::BTreeMap;

use cbam_cluster::wait::{Poll, WaitError, until};
use cbam_error_chain::render as chain;

use crate::actions::node_drain::{EvictionError, evict};
use crate::app_pods::{WorkloadError, app_pods, is_ready, node_of};
use crate::context::LiveContext;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RespreadError {
    #[error("list the app pods")]
    Pods(#[source] WorkloadError),
    #[error("move a stacked pod")]
    Evict(#[source] EvictionError),
    #[error(transparent)]
    Wait(#[from] WaitError),
}

/// App pods per node of NODES (every one listed, zero included), and the
/// fullest node's first pod when it hosts two or more while a node hosts
/// none.
fn stacked(pods: &[(String, String)], nodes: &[String]) -> Option<(String, String, usize)> {
    let mut on: BTreeMap<&str, Vec<&str>> = nodes.iter().map(|n| (n.as_str(), Vec::new())).collect();
    for (pod, node) in pods {
        on.entry(node.as_str()).or_default().push(pod.as_str());
    }
    let empty = on.values().any(Vec::is_empty);
    let (node, here) = on.iter().max_by_key(|(_, here)| here.len())?;
    (empty && here.len() >= 2).then(|| (node.to_string(), here[0].to_owned(), here.len()))
}

/// Moves stacked app pods, one at a time, until no node of NODES hosts two
/// while another hosts none (at most one move per replica). Says what it
/// moved, each as "POD off NODE (N there)".
pub(crate) async fn respread(cx: &LiveContext<'_>, nodes: &[String]) -> Result<Vec<String>, RespreadError> {
    let want = usize::try_from(cx.replicas_at_rest()).unwrap_or(0);
    let mut moved = Vec::new();
    for _ in 0..want {
        let pods = app_pods(cx).await.map_err(RespreadError::Pods)?;
        let placed: Vec<(String, String)> =
            pods.iter().filter_map(|p| Some((p.metadata.name.clone()?, node_of(p)?.to_owned()))).collect();
        let Some((node, pod, there)) = stacked(&placed, nodes) else { break };
        evict(cx, &pod).await.map_err(RespreadError::Evict)?;
        moved.push(format!("{pod} off {node} ({there} there)"));
        until(&format!("{pod} replaced and {want} app pods Ready"), cx.timeouts.rollout, || async {
            match app_pods(cx).await {
                Ok(pods) => {
                    let ready = pods.iter().filter(|p| is_ready(p)).count();
                    let gone = !pods.iter().any(|p| p.metadata.name.as_deref() == Some(pod.as_str()));
                    if gone && ready >= want {
                        Poll::Done(())
                    } else {
                        Poll::Pending(format!("{ready} Ready; {pod} {}", if gone { "gone" } else { "still there" }))
                    }
                }
                Err(e) => Poll::failed(chain(&e), &e),
            }
        })
        .await?;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placed(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(p, n)| (p.to_string(), n.to_string())).collect()
    }

    #[test]
    fn two_on_one_node_with_an_empty_one_are_stacked() {
        let nodes = ["cp".to_string(), "w1".to_string(), "w2".to_string()];
        let found = stacked(&placed(&[("a", "w1"), ("b", "w2"), ("c", "w2")]), &nodes);
        assert_eq!(found, Some(("w2".to_string(), "b".to_string(), 2)));
        assert_eq!(stacked(&placed(&[("a", "w1"), ("b", "w2"), ("c", "cp")]), &nodes), None);
        // Five replicas on three nodes: none empty, nothing to move.
        let five = placed(&[("a", "w1"), ("b", "w2"), ("c", "cp"), ("d", "w1"), ("e", "w2")]);
        assert_eq!(stacked(&five, &nodes), None);
    }
}
