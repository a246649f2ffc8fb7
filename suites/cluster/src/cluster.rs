//! One interface to the cluster the live tier runs on, whoever made it: the
//! kit (`KitCluster`), kind (`KindCluster`) or an existing one
//! (`ExistingCluster`). The live tier takes `&dyn Cluster`; what a provider
//! cannot do it says, and the check that needs it is "not verified",
//! naming the provider.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use kube::Client;

use crate::docker::{self, DockerError};
use crate::existing::ExistingCluster;
use crate::kind::KindCluster;
use crate::provider::{ClusterError, KitCluster, ServedImage};
use crate::readiness::{self, GateError};
use crate::timeouts::Timeouts;

/// A future a trait object can return.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

pub trait Cluster: Send + Sync {
    /// "kit", "kind" or "existing": named in reports and in what it cannot do.
    fn provider(&self) -> &'static str;
    fn client(&self) -> &Client;
    /// Local ports (127.0.0.1) reaching the ingress controller.
    fn http_port(&self) -> u16;
    fn https_port(&self) -> u16;
    /// The harness made it: it may use any namespace, and it owns the nodes.
    fn owned(&self) -> bool;
    /// Ready for a run: nodes, DNS, storage, metrics, ingress (and, on the
    /// kit, every node component steady).
    fn gate<'a>(&'a self, t: &'a Timeouts) -> Pending<'a, Result<(), GateError>>;
    /// Serves the image archives (the application's, the harness's tool
    /// image) to every node (each node's own registry); None: the cluster
    /// pulls the overlay's own references.
    fn serve_image<'a>(
        &'a self,
        archives: &'a [&'a Path],
        registry: &'a Path,
        timeout: Duration,
    ) -> Option<Pending<'a, Result<(), DockerError>>>;
    /// The nodes the harness may stop and start (node loss), as (node name,
    /// container); Err: why it may not.
    fn stoppable_nodes(&self) -> Result<Vec<(String, String)>, NotStoppable>;
    /// The worker nodes an upgrade changes, by name; Err: why the harness
    /// may not upgrade them.
    fn workers(&self) -> Result<Vec<String>, NotReplaceable>;
    /// How this provider's workers are upgraded.
    fn upgrade_style(&self) -> Result<UpgradeStyle, NotReplaceable>;
    /// A new worker joined (the app image served to it before it takes
    /// pods), of NODE_IMAGE when given (an upgrade's target), else of the
    /// cluster's own image; its node name.
    fn add_worker<'a>(
        &'a self,
        image: ServedImage<'a>,
        node_image: Option<&'a str>,
    ) -> Pending<'a, Result<String, ReplaceError>>;
    /// A drained worker removed: its machine (container), then its Node.
    fn remove_worker<'a>(&'a self, name: &'a str) -> Pending<'a, Result<(), ReplaceError>>;
    /// A drained worker's kubelet stopped and started again (an in-place
    /// upgrade), healthy within TIMEOUT.
    fn restart_kubelet<'a>(&'a self, name: &'a str, timeout: Duration) -> Pending<'a, Result<(), ReplaceError>>;
    /// Each node's own logs (kubelet, container runtime, the pods') under
    /// DIR, for a failed run's evidence; None: the provider has none to give.
    fn node_logs<'a>(&'a self, dir: &'a Path) -> Option<Pending<'a, Result<(), NodeLogsError>>>;
}

/// Why the harness may not stop a cluster's nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotStoppable {
    #[error("stop the nodes of an existing cluster: they are not the harness's to stop")]
    NotOwned,
}

/// How a provider's workers are upgraded, and so which upgrade a run proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeStyle {
    /// New workers join, one per old one; the old are drained and removed
    /// (a managed node pool's surge upgrade): the kit.
    Surge,
    /// Each worker in turn drained, its kubelet stopped and started again,
    /// uncordoned (kubeadm's in-place upgrade): kind, which cannot add a
    /// node to a running cluster.
    InPlace,
}

/// Why the harness may not upgrade a cluster's nodes, or not this way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotReplaceable {
    #[error("add a node to a kind cluster: kind cannot add one to a running cluster (its upgrade is in place)")]
    KindCannotAdd,
    #[error("restart a kit node's kubelet: the kit upgrades by replacing its workers")]
    KitReplaces,
    #[error("upgrade the nodes of an existing cluster: they are not the harness's to change")]
    NotOwned,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplaceError {
    #[error(transparent)]
    Not(#[from] NotReplaceable),
    #[error("add a worker")]
    Add(#[source] ClusterError),
    #[error("remove worker {0}")]
    Remove(String, #[source] ClusterError),
    #[error("restart the kubelet of {0}")]
    Restart(String, #[source] crate::kind::KindError),
}

/// Bound on copying every node's logs: seconds for three nodes; longer is a
/// stuck engine.
const NODE_LOGS_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, thiserror::Error)]
pub enum NodeLogsError {
    #[error("create {0}")]
    Directory(String, #[source] std::io::Error),
    #[error("copy the logs of node {0}")]
    Copy(String, #[source] DockerError),
    #[error("copy the nodes' logs: not done after {NODE_LOGS_TIMEOUT:?}")]
    TimedOut,
    #[error("export kind's logs")]
    Kind(#[source] crate::kind::KindError),
}

impl Cluster for KitCluster {
    fn provider(&self) -> &'static str {
        "kit"
    }
    fn client(&self) -> &Client {
        &self.client
    }
    fn http_port(&self) -> u16 {
        self.http_port
    }
    fn https_port(&self) -> u16 {
        self.https_port
    }
    fn owned(&self) -> bool {
        true
    }
    fn gate<'a>(&'a self, t: &'a Timeouts) -> Pending<'a, Result<(), GateError>> {
        Box::pin(readiness::gate(self, t))
    }
    fn serve_image<'a>(
        &'a self,
        archives: &'a [&'a Path],
        registry: &'a Path,
        timeout: Duration,
    ) -> Option<Pending<'a, Result<(), DockerError>>> {
        Some(Box::pin(KitCluster::serve_image(self, archives, registry, timeout)))
    }
    fn stoppable_nodes(&self) -> Result<Vec<(String, String)>, NotStoppable> {
        Ok(self.nodes().into_iter().map(|n| (n.name, n.container)).collect())
    }
    fn workers(&self) -> Result<Vec<String>, NotReplaceable> {
        Ok(self.nodes().into_iter().skip(1).map(|n| n.name).collect())
    }
    fn upgrade_style(&self) -> Result<UpgradeStyle, NotReplaceable> {
        Ok(UpgradeStyle::Surge)
    }
    fn add_worker<'a>(
        &'a self,
        image: ServedImage<'a>,
        node_image: Option<&'a str>,
    ) -> Pending<'a, Result<String, ReplaceError>> {
        Box::pin(async move {
            self.workers()?;
            KitCluster::add_worker(self, &image, node_image).await.map(|n| n.name).map_err(ReplaceError::Add)
        })
    }
    fn remove_worker<'a>(&'a self, name: &'a str) -> Pending<'a, Result<(), ReplaceError>> {
        Box::pin(async move {
            self.workers()?;
            KitCluster::remove_worker(self, name).await.map_err(|e| ReplaceError::Remove(name.to_owned(), e))
        })
    }
    fn restart_kubelet<'a>(&'a self, _name: &'a str, _timeout: Duration) -> Pending<'a, Result<(), ReplaceError>> {
        Box::pin(async { Err(NotReplaceable::KitReplaces.into()) })
    }
    fn node_logs<'a>(&'a self, dir: &'a Path) -> Option<Pending<'a, Result<(), NodeLogsError>>> {
        // Each node's supervisor logs every component to /var/log/cbam
        // (ci/kit/node/cbam-node); its contents go to DIR/NODE.
        Some(Box::pin(async move {
            std::fs::create_dir_all(dir).map_err(|e| NodeLogsError::Directory(dir.display().to_string(), e))?;
            let copies = async {
                for node in self.nodes() {
                    let from = format!("{}:/var/log/cbam/.", node.container);
                    let to = dir.join(&node.name);
                    let to = to.to_string_lossy();
                    docker::docker(&["cp", &from, &to]).await.map_err(|e| NodeLogsError::Copy(node.name.clone(), e))?;
                }
                Ok(())
            };
            tokio::time::timeout(NODE_LOGS_TIMEOUT, copies).await.map_err(|_| NodeLogsError::TimedOut)?
        }))
    }
}

impl Cluster for KindCluster {
    fn provider(&self) -> &'static str {
        "kind"
    }
    fn client(&self) -> &Client {
        &self.client
    }
    fn http_port(&self) -> u16 {
        self.http_port
    }
    fn https_port(&self) -> u16 {
        self.https_port
    }
    fn owned(&self) -> bool {
        true
    }
    fn gate<'a>(&'a self, t: &'a Timeouts) -> Pending<'a, Result<(), GateError>> {
        Box::pin(async move {
            readiness::platform_ready(&self.client, self.nodes.len(), self.http_port, t).await.map_err(GateError::from)
        })
    }
    fn serve_image<'a>(
        &'a self,
        archives: &'a [&'a Path],
        registry: &'a Path,
        timeout: Duration,
    ) -> Option<Pending<'a, Result<(), DockerError>>> {
        Some(Box::pin(async move {
            for node in &self.nodes {
                crate::node_exec::serve_image(node, archives, registry, timeout.as_secs().max(1)).await?;
            }
            Ok(())
        }))
    }
    /// kind's node name is its container's; kind's own entrypoint brings a
    /// node started again back, on a new address if Docker gives it one.
    fn stoppable_nodes(&self) -> Result<Vec<(String, String)>, NotStoppable> {
        Ok(self.nodes.iter().map(|n| (n.clone(), n.clone())).collect())
    }
    fn workers(&self) -> Result<Vec<String>, NotReplaceable> {
        Ok(KindCluster::workers(self))
    }
    fn upgrade_style(&self) -> Result<UpgradeStyle, NotReplaceable> {
        Ok(UpgradeStyle::InPlace)
    }
    fn add_worker<'a>(
        &'a self,
        _image: ServedImage<'a>,
        _node_image: Option<&'a str>,
    ) -> Pending<'a, Result<String, ReplaceError>> {
        Box::pin(async { Err(NotReplaceable::KindCannotAdd.into()) })
    }
    fn remove_worker<'a>(&'a self, _name: &'a str) -> Pending<'a, Result<(), ReplaceError>> {
        Box::pin(async { Err(NotReplaceable::KindCannotAdd.into()) })
    }
    fn restart_kubelet<'a>(&'a self, name: &'a str, timeout: Duration) -> Pending<'a, Result<(), ReplaceError>> {
        Box::pin(async move {
            KindCluster::restart_kubelet(self, name, timeout)
                .await
                .map_err(|e| ReplaceError::Restart(name.to_owned(), e))
        })
    }
    fn node_logs<'a>(&'a self, dir: &'a Path) -> Option<Pending<'a, Result<(), NodeLogsError>>> {
        Some(Box::pin(async move { self.export_logs(dir, NODE_LOGS_TIMEOUT).await.map_err(NodeLogsError::Kind) }))
    }
}

impl Cluster for ExistingCluster {
    fn provider(&self) -> &'static str {
        "existing"
    }
    fn client(&self) -> &Client {
        &self.client
    }
    fn http_port(&self) -> u16 {
        self.http_port
    }
    fn https_port(&self) -> u16 {
        self.https_port
    }
    fn owned(&self) -> bool {
        false
    }
    fn gate<'a>(&'a self, t: &'a Timeouts) -> Pending<'a, Result<(), GateError>> {
        Box::pin(async move { readiness::gate_existing(&self.client, t).await.map_err(GateError::from) })
    }
    fn serve_image<'a>(
        &'a self,
        _archives: &'a [&'a Path],
        _registry: &'a Path,
        _timeout: Duration,
    ) -> Option<Pending<'a, Result<(), DockerError>>> {
        None
    }
    fn stoppable_nodes(&self) -> Result<Vec<(String, String)>, NotStoppable> {
        Err(NotStoppable::NotOwned)
    }
    fn workers(&self) -> Result<Vec<String>, NotReplaceable> {
        Err(NotReplaceable::NotOwned)
    }
    fn upgrade_style(&self) -> Result<UpgradeStyle, NotReplaceable> {
        Err(NotReplaceable::NotOwned)
    }
    fn add_worker<'a>(
        &'a self,
        _image: ServedImage<'a>,
        _node_image: Option<&'a str>,
    ) -> Pending<'a, Result<String, ReplaceError>> {
        Box::pin(async { Err(NotReplaceable::NotOwned.into()) })
    }
    fn remove_worker<'a>(&'a self, _name: &'a str) -> Pending<'a, Result<(), ReplaceError>> {
        Box::pin(async { Err(NotReplaceable::NotOwned.into()) })
    }
    fn restart_kubelet<'a>(&'a self, _name: &'a str, _timeout: Duration) -> Pending<'a, Result<(), ReplaceError>> {
        Box::pin(async { Err(NotReplaceable::NotOwned.into()) })
    }
    fn node_logs<'a>(&'a self, _dir: &'a Path) -> Option<Pending<'a, Result<(), NodeLogsError>>> {
        None
    }
}
