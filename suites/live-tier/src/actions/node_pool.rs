//! The cluster's worker pool, as an upgrade changes it: a new worker joined
//! (the app image served to it first) and Ready, a drained worker removed
//! (its machine, then its Node), the cordon struck off the journal with it,
//! or a drained worker's kubelet restarted in place and Ready. What the
//! provider cannot do it says (`ReplaceError::Not`).

use cbam_cluster::cluster::ReplaceError;
use cbam_cluster::provider::{ServedImage, registry_beside};
use cbam_cluster::wait::{Poll, WaitError, until};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;

use crate::context::LiveContext;
use crate::journal::{JournalError, Undo};

#[derive(Debug, thiserror::Error)]
pub(crate) enum NodePoolError {
    #[error(transparent)]
    Provider(#[from] ReplaceError),
    #[error(transparent)]
    Wait(#[from] WaitError),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Whether the node's Ready condition is True; None while it cannot be read.
pub(crate) async fn node_ready(cx: &LiveContext<'_>, node: &str) -> Option<bool> {
    let nodes: Api<Node> = Api::all(cx.client.clone());
    let n = nodes.get(node).await.ok()?;
    let conditions = n.status.and_then(|s| s.conditions).unwrap_or_default();
    Some(conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The node's kubelet version as it reports it.
pub(crate) async fn kubelet_version(cx: &LiveContext<'_>, node: &str) -> Option<String> {
    let nodes: Api<Node> = Api::all(cx.client.clone());
    Some(nodes.get(node).await.ok()?.status?.node_info?.kubelet_version)
}

/// Waits until `node` is Ready.
async fn ready(cx: &LiveContext<'_>, node: &str) -> Result<(), WaitError> {
    until(&format!("node {node} Ready"), cx.timeouts.nodes_ready, || async {
        match node_ready(cx, node).await {
            Some(true) => Poll::Done(()),
            other => Poll::Pending(format!("Ready: {other:?}")),
        }
    })
    .await
}

/// Joins a new worker and waits until it is Ready; its node name.
pub(crate) async fn add_worker(cx: &LiveContext<'_>) -> Result<String, NodePoolError> {
    let registry = registry_beside(cx.app_image);
    let archives: Vec<&std::path::Path> =
        [cx.app_image, cx.tool_archive].into_iter().filter(|a| *a == cx.app_image || a.is_file()).collect();
    let image = ServedImage { archives: &archives, registry: &registry, timeout: cx.timeouts.node_component };
    let name = cx.cluster.add_worker(image, cx.upgrade_to).await?;
    ready(cx, &name).await?;
    Ok(name)
}

/// Restarts a drained worker's kubelet (an in-place upgrade's step) and
/// waits until its Node is Ready.
pub(crate) async fn restart_kubelet(cx: &LiveContext<'_>, node: &str) -> Result<(), NodePoolError> {
    cx.cluster.restart_kubelet(node, cx.timeouts.node_component).await?;
    ready(cx, node).await?;
    Ok(())
}

/// Removes a drained worker; the cordon the run journalled for it goes with
/// it (there is nothing left to uncordon).
pub(crate) async fn remove_worker(cx: &LiveContext<'_>, node: &str) -> Result<(), NodePoolError> {
    cx.cluster.remove_worker(node).await?;
    cx.journal.done(&Undo::Uncordon { node: node.to_owned() })?;
    Ok(())
}
