//! Ready replicas over time: the app's pods that are Ready and not
//! terminating, per node, sampled until stopped (what a disruption leaves
//! serving, and where).

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::app_pods::{is_ready, node_of};
use crate::context::LiveContext;
use crate::judges::disruption::PerNode;

/// How often: four samples in a readiness probe's period (5 s) and more.
const EVERY: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub(crate) struct ReadySampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<Vec<(Instant, PerNode)>>,
}

impl ReadySampler {
    /// Samples the pods `selector` selects in the environment's namespace.
    pub(crate) fn start(cx: &LiveContext<'_>, selector: String) -> Self {
        let pods: Api<Pod> = Api::namespaced(cx.client.clone(), cx.namespace());
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut samples = Vec::new();
            while !*stopped.borrow() {
                if let Ok(list) = pods.list(&ListParams::default().labels(&selector)).await {
                    let mut ready = PerNode::new();
                    for p in list.items.iter().filter(|p| p.metadata.deletion_timestamp.is_none() && is_ready(p)) {
                        *ready.entry(node_of(p).unwrap_or("?").to_owned()).or_default() += 1;
                    }
                    samples.push((Instant::now(), ready));
                }
                let _ = tokio::time::timeout(EVERY, stopped.changed()).await;
            }
            samples
        });
        ReadySampler { stop, task }
    }

    /// Every sample's count, in time order.
    pub(crate) async fn stop(self) -> Vec<(Instant, usize)> {
        self.stop_per_node().await.into_iter().map(|(at, nodes)| (at, nodes.values().sum())).collect()
    }

    /// Every sample, per node, in time order.
    pub(crate) async fn stop_per_node(self) -> Vec<(Instant, PerNode)> {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

/// The lowest count and how many samples there were.
pub(crate) fn lowest(samples: &[(Instant, usize)]) -> Option<usize> {
    samples.iter().map(|(_, n)| *n).min()
}
